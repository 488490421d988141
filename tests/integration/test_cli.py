"""The command line against the real Asterisk: one-line errors, a simulated call, clean stop."""

from __future__ import annotations

import asyncio
import os
import shutil
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
        lines: list[bytes] = []
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


async def test_strategies_reload_takes_a_hand_edit_without_a_restart(settings: Settings,
                                                                     tmp_path: Path) -> None:
    """An operator edits the strategies by hand: ``callcenter strategies reload`` checks them
    and the running engine takes them (``SIGUSR1``), and its log says so, a scheduler that a
    bad file kept off at the start included; a set with a problem is refused by the check
    before the engine hears of it, and by the engine if it does. The flows' ``SIGHUP`` leaves
    the strategies alone."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    shipped = Path(__file__).resolve().parents[2] / "strategies"
    shutil.copy(shipped / "complaint-callback.yaml", folder)
    bad = folder / "bad.yaml"
    bad.write_text("title: {zh: x, en: x}\npopulation: {}\n", "utf-8")
    env = {"CALLCENTER_DB_PATH": str(tmp_path / "run.db"),
           "CALLCENTER_BACKOFFICE_PATH": str(tmp_path / "backoffice.db"),
           "CALLCENTER_CHANNELS__ENABLED": "false",
           "CALLCENTER_CONSOLE__PORT": "0",
           "CALLCENTER_STRATEGIES__ENABLED": "true",
           "CALLCENTER_STRATEGIES__DIR": str(folder),
           "CALLCENTER_STRATEGIES__INTERVAL_S": "3600"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "run", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **env})
    assert proc.stdout is not None and proc.stderr is not None
    log: list[str] = []
    heard = asyncio.Event()

    async def read_log(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            log.append(line.decode(errors="replace"))
            heard.set()

    async def logged(text: str, times: int = 1) -> None:
        """Until ``text`` is in ``times`` lines of the engine's log."""
        async with asyncio.timeout(30):
            while sum(text in line for line in log) < times:
                heard.clear()
                await heard.wait()

    reader = asyncio.create_task(read_log(proc.stderr))
    try:
        while b"callcenter engine running" not in (
                line := await asyncio.wait_for(proc.stdout.readline(), 30)):
            assert line, "".join(log)   # the engine ended before it ran
        await logged("strategies: 1 problem(s); no strategy runs")   # kept off at the start
        bad.unlink()
        code, _, err = await _cli("strategies", "reload", env=env)
        assert code == 0, err
        await logged("strategies: 1 enabled of 1")                       # started now
        await logged("SIGUSR1: strategies in service")
        shutil.copy(shipped / "morning-note.yaml", folder)
        proc.send_signal(signal.SIGHUP)                                  # the flows' reload
        await logged("SIGHUP: flows version")
        code, out, err = await _cli("strategies", "reload", env=env)
        assert code == 0, err
        assert "2 strategies checked; engine" in out
        await logged("strategies: reloaded, 2 enabled of 2")
        await logged("SIGUSR1: strategies in service", times=2)
        bad.write_text("title: {zh: x, en: x}\npopulation: {}\n", "utf-8")
        code, _, err = await _cli("strategies", "reload", env=env)
        assert code == 1 and "bad.yaml:1:1: 'action' is missing" in err
        proc.send_signal(signal.SIGUSR1)   # told anyway: the engine refuses the set itself
        await logged("strategies: 1 problem(s); the running ones are kept")
        # the flows' SIGHUP above reloaded no strategy: the one reload is strategies reload's
        assert sum("strategies: reloaded" in line for line in log) == 1
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await asyncio.wait_for(reader, 10)
    assert proc.returncode == 0, "".join(log)
    assert not any("Traceback" in line for line in log), "".join(log)
