"""``callcenter call`` and ``doctor`` against the real sandbox Asterisk, as a newcomer runs them:
Ctrl-C hangs up the call it placed (simulated and SIP), and "not running" reads differently
from "did not answer"."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.telephony.ami import AmiClient
from tests.integration.conftest import wait_no_channels


async def _cli(*args: str, env: dict[str, str] | None = None,
               within_s: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), within_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _channels(ami: AmiClient) -> list[dict[str, str]]:
    return [dict(r) for r in await ami.action_list("CoreShowChannels")]


def _sipp_running() -> bool:
    """Is a SIPp started by ``callcenter call --sip`` (its scenario in cc-sipp-*) alive?"""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"sipp" in cmdline and b"cc-sipp-" in cmdline:
                return True
    return False


def _as_in_a_terminal() -> None:
    """Run the command as from a terminal: Ctrl-C (SIGINT) at its default. A test run started
    in the background by a non-interactive shell (CI) inherits SIGINT ignored, and Python then
    leaves it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _interrupt_when(proc: asyncio.subprocess.Process, marker: str) -> str:
    """Read stdout until ``marker``, then Ctrl-C (SIGINT to the command only)."""
    assert proc.stdout is not None
    seen = ""
    while marker not in seen:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, seen
        seen += line.decode()
    return seen


async def test_ctrl_c_hangs_up_the_simulated_call(engine: Engine, settings: Settings) -> None:
    assert engine.ami is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "call", "9500", "--hold", "300",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CALLCENTER_DB_PATH": str(settings.database)},
        preexec_fn=_as_in_a_terminal)
    try:
        seen = await _interrupt_when(proc, "placed to 9500")
        call_id = seen.split("call ", 1)[1].split()[0]
        assert any(c.get("Uniqueid") == call_id for c in await _channels(engine.ami))
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err.decode()
    assert f"call {call_id} hung up" in out.decode()
    assert b"Traceback" not in err
    # gone now, not when --hold runs out
    assert await wait_no_channels(engine.ami, within_s=10) == []


async def test_ctrl_c_hangs_up_the_sip_call_and_stops_sipp(engine: Engine,
                                                          settings: Settings) -> None:
    assert engine.ami is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "call", "95500", "--sip", "--hold", "300",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CALLCENTER_DB_PATH": str(settings.database)},
        preexec_fn=_as_in_a_terminal)
    try:
        await _interrupt_when(proc, "SIP call to 95500")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not any(c.get("Channel", "").startswith("PJSIP/carrier-")
                      for c in await _channels(engine.ami)):
            assert loop.time() < deadline, "the SIP call never reached Asterisk"
            await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err.decode()
    assert "hung up (interrupted)" in out.decode()
    assert await wait_no_channels(engine.ami, within_s=10) == []
    assert not _sipp_running()


async def test_engine_not_running_and_no_such_extension_read_differently(
        settings: Settings, tmp_path: Path) -> None:
    env = {"CALLCENTER_DB_PATH": str(tmp_path / "cli.db")}
    # the PBX is up, the engine is not
    code, _, err = await _cli("call", "9500", env=env)
    assert code == 3, err
    assert "engine is not running" in err and "callcenter run" in err
    code, out, _ = await _cli("doctor", env=env)
    assert code == 1
    [line] = [line for line in out.splitlines() if "engine not running" in line]
    assert line.startswith("[FAIL]"), out
    # and no Asterisk at all
    code, _, err = await _cli("call", "9500", env={**env, "CALLCENTER_AMI__PORT": "1"})
    assert code == 3 and "Asterisk is not running" in err and "./dev up" in err


async def test_no_such_extension_says_which_number_answers(engine: Engine,
                                                           settings: Settings) -> None:
    env = {"CALLCENTER_DB_PATH": str(settings.database)}
    code, out, err = await _cli("call", "12345", env=env)
    assert code == 1, out + err
    assert "12345 did not answer" in err and "9500" in err and "not running" not in err
    # a healthy setup: the PBX and the engine up
    code, out, _ = await _cli("doctor", env=env)
    assert code == 0 and "[FAIL]" not in out, out
    assert "[ok] engine running: FastAGI on" in out
