"""The command line against the real Asterisk: one-line errors, a simulated call, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from callcenter.config import Settings
from callcenter.engine import Engine


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


def _one_line_error(code: int, err: str) -> str:
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("callcenter: error:")]
    assert len(lines) == 1, err
    return lines[0]


async def test_wrong_secret_and_unreachable_asterisk_are_one_line_errors(
        settings: Settings, tmp_path: Path) -> None:
    db = {"CALLCENTER_DB_PATH": str(tmp_path / "cli.db")}
    code, out, err = await _cli("doctor", env={**db, "CALLCENTER_AMI__SECRET": "wrong"})
    assert code == 1 and "Traceback" not in out + err
    assert "[FAIL] Asterisk refused the AMI login" in out

    code, _, err = await _cli("run", env={**db, "CALLCENTER_AMI__SECRET": "wrong"})
    assert "refused the AMI login" in _one_line_error(code, err)

    code, _, err = await _cli("run", env={**db, "CALLCENTER_AMI__PORT": "1"})
    assert "cannot reach Asterisk AMI at 127.0.0.1:1" in _one_line_error(code, err)

    code, _, err = await _cli("call", "9500", "--dtmf", "1\r\nAction: Originate", env=db)
    assert "refused" in _one_line_error(code, err)


async def test_doctor_passes_on_a_healthy_setup(engine: Engine, settings: Settings) -> None:
    code, out, _ = await _cli("doctor", env={"CALLCENTER_DB_PATH": str(settings.database)})
    assert code == 0, out
    assert "[FAIL]" not in out and "[ok] AMI answers Ping" in out


async def test_call_command_prints_the_call_and_its_digits(engine: Engine,
                                                           settings: Settings) -> None:
    code, out, err = await _cli("call", "9502", "--dtmf", "1w2w3#",
                                env={"CALLCENTER_DB_PATH": str(settings.database)})
    assert code == 0, err
    assert "placed to 9502" in out
    assert "cause 16" in out
    assert "ivr.digits digits=123 count=3" in out


async def test_call_sip_places_a_real_sip_call_and_prints_what_the_ivr_heard(
        engine: Engine, settings: Settings) -> None:
    env = {"CALLCENTER_DB_PATH": str(settings.database)}
    code, out, err = await _cli("call", "95500", "--sip", "--caller-id", "13800000004",
                                "--dtmf", "1w600519", "--hold", "8", env=env)
    assert code == 0, err
    assert "ivr.input node=main_menu digits=1" in out
    assert "ivr.input node=ask_code digits=600519" in out
    code, out, err = await _cli("call", "12345", "--sip", "--hold", "3", env=env)
    assert code == 1 and "is 12345 a hotline DID (95500)?" in err


async def test_run_serves_calls_and_stops_cleanly_on_sigterm(settings: Settings,
                                                             tmp_path: Path) -> None:
    env = {**os.environ, "CALLCENTER_DB_PATH": str(tmp_path / "run.db")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "run",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    try:
        # first the sandbox's channel peers report where mail and texts land, then the engine
        lines = []
        while not lines or b"callcenter engine running" not in lines[-1]:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, b"".join(lines)
            lines.append(line)
        assert b"uvloop event loop" in lines[-1]  # the engine runs on uvloop by default
        code, out, err = await _cli("call", "9502", "--dtmf", "5#",
                                    env={"CALLCENTER_DB_PATH": str(tmp_path / "run.db")})
        assert code == 0, err
        assert "ivr.digits digits=5 count=1" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err_bytes.decode()
    assert b"Traceback" not in err_bytes
