"""Records that survive crashes, write errors and outages, through the real Asterisk.

- ``kill -9`` of a real ``callcenter run`` mid-call: the sandbox peers die with it (and never had
  a password on their command line); the restarted engine closes the call left "live" with the
  time it last knew the engine alive and the reason.
- A database that refuses writes while calls happen: call records and queue-log lines go to a
  0600 spool and reach the database exactly once when it takes writes again.
- An AMI outage during a call with an agent: the call's end and the agent's talk time are the
  moment the link was lost, not the moment it came back.
- File modes: ``callcenter doctor`` warns about a world-readable database or state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import pytest

from callcenter.acd.seat import SeatState
from callcenter.atcc.model import CAUSE_LOST
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.errors import AmiActionError
from callcenter.store.calls import get_call
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.acd_helpers import (
    ORDINARY_PHONE,
    add_agents,
    agent,
    queue_log,
    queue_to_agent,
    until,
    waiting_ids,
)
from tests.integration.conftest import trading_clock, wait_no_channels
from tests.integration.proxy import TcpProxy
from tests.ports import free_port

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def _eventually(check: Callable[[], Awaitable[T]], within_s: float, what: str) -> T:
    """Re-check ``check`` (a state outside this process: files, /proc) until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# -- kill -9 of the engine mid-call --------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


async def _start_run(env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "run", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    seen = b""
    while b"callcenter engine running" not in seen:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, seen
        seen += line
    return proc


async def _record(db_path: Path, call_id: str) -> Any:
    async with aiosqlite.connect(db_path) as db:  # reads only (the engine migrated it)
        db.row_factory = aiosqlite.Row
        async with db.execute("SELECT * FROM calls WHERE id = ?", (call_id,)) as cur:
            return await cur.fetchone()


async def test_kill_9_mid_call_peers_die_and_the_restart_closes_the_call(
        pbx: Pbx, tmp_path: Path) -> None:
    base = load_settings()
    db_path = tmp_path / "run.db"
    # Our own broker port and state directory: no developer's engine or broker is touched.
    env = {**os.environ, "CALLCENTER_DB_PATH": str(db_path),
           "CALLCENTER_STATE_DIR": str(tmp_path / "state"),
           "CALLCENTER_AMI__SECRET_FILE": str(base.ami_secret_file),
           "CALLCENTER_CONSOLE__ENABLED": "false",
           "CALLCENTER_CHANNELS__MQTT_PORT": str(free_port())}
    if (base.state_dir / "agi.key").exists():
        env["CALLCENTER_AGI__KEY_FILE"] = str(base.state_dir / "agi.key")
    ami = AmiClient(base.ami, base.ami_secret())
    await ami.connect()
    problems: list[str] = []
    procs: list[asyncio.subprocess.Process] = []
    peers: list[int] = []
    try:
        first = await _start_run(env)
        procs.append(first)
        peers = [p for p in _children(first.pid)
                 if b"mail_sink" in _cmdline(p) or b"smsc_sim" in _cmdline(p)]
        assert len(peers) == 2, [_cmdline(p) for p in _children(first.pid)]
        for pid in peers:
            if b"password" in _cmdline(pid).lower():
                problems.append(f"a password on the command line of {_cmdline(pid)!r}")

        caller = SimCaller(ami)
        call_id = await caller.place("9502", "", hold_s=60)
        await _eventually(lambda: _record(db_path, call_id), 30, "the call's record")
        first.send_signal(signal.SIGKILL)
        await first.wait()

        async def peers_gone() -> bool:
            return not any(_alive(p) for p in peers)

        try:
            await _eventually(peers_gone, 10, "the peers to die with the engine")
        except AssertionError as exc:
            problems.append(str(exc))
        # The IVR's FastAGI session died with the engine: Asterisk ends the call by itself.
        assert await wait_no_channels(ami, 30) == []
        row = await _record(db_path, call_id)
        assert row is not None and row["ended_at"] is None  # nobody closed it
        before_restart = time.time()

        second = await _start_run(env)
        procs.append(second)

        async def closed() -> Any:
            row = await _record(db_path, call_id)
            return row if row is not None and row["ended_at"] is not None else None

        try:
            row = await _eventually(closed, 30, "the restarted engine to close the call")
        except AssertionError as exc:
            problems.append(str(exc))
        else:
            assert row["end_reason"] == "ended while the engine was down"
            assert row["end_cause"] == CAUSE_LOST
            # the moment the engine was last known alive: after the start, before the restart
            assert row["started_at"] <= row["ended_at"] <= before_restart
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for pid in peers:  # orphans of the first engine, if the fix is missing
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        from callcenter.channels.mosquitto import Mosquitto

        state = load_settings(state_dir=tmp_path / "state")
        await asyncio.to_thread(Mosquitto(state.channels, state.state_dir).down)
        await ami.close()
    assert problems == []


# -- a database that refuses writes ----------------------------------------------------------------

async def test_records_and_queue_log_survive_a_database_that_refuses_writes(
        engine: Engine, caller: SimCaller, settings: Settings) -> None:
    assert engine.recorder is not None and engine.acd is not None and engine.db is not None
    engine.recorder.retry_s = engine.acd.log.retry_s = 0.5
    blocker = sqlite3.connect(settings.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock past every busy timeout
    try:
        call_id = await queue_to_agent(engine, caller, ORDINARY_PHONE, hold_s=10)
        await until(engine, lambda: not waiting_ids(engine), 40, "the caller to give up")
        await caller.wait_end(call_id, 30)
        await engine.controller.wait_call_ended(call_id)  # type: ignore[union-attr]
        await engine.recorder.flush()
        await engine.acd.flush()
        for name in ("call-recorder", "acd-log"):
            spool = settings.database.with_name(f"{settings.database.name}.{name}.spool.jsonl")
            assert spool.exists(), name
            assert stat.S_IMODE(spool.stat().st_mode) == 0o600
            assert call_id in spool.read_text()
        async with engine.db.execute("SELECT COUNT(*) FROM queue_log WHERE call_id = ?",
                                     (call_id,)) as cur:
            counted = await cur.fetchone()
            assert counted is not None and counted[0] == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await asyncio.wait_for(engine.recorder.drained(), 40)
    await asyncio.wait_for(engine.acd.log.drained(), 40)
    events = [e["event"] for e in await queue_log(engine) if e["call_id"] == call_id]
    assert events == ["enter", "abandon"]  # each once
    record = await get_call(engine.db, call_id)
    assert record is not None and record.ended_at is not None
    assert record.kinds().count("ivr.transfer") <= 1
    news = [e for e in record.events if e.kind == "channel.new"]
    assert len(news) == len({e.detail["channel"] for e in news})  # no line twice


# -- an AMI outage during a call with an agent -----------------------------------------------------

def _acd_settings(tmp_path: Path) -> Settings:
    return load_settings(
        db_path=tmp_path / "callcenter.db", channels={"enabled": False},
        backoffice_path=tmp_path / "backoffice.db", console={"enabled": False, "port": 0},
        acd={"queues": [{"name": "general", "announce_every_s": 0, "manager_first_s": 0,
                         "vip_team_s": 0}], "ring_timeout_s": 5, "wrap_up_s": 1,
                         "require_disposition": False})


async def _hang_up_everything(ami: AmiClient) -> None:
    for row in await ami.action_list("CoreShowChannels"):
        with contextlib.suppress(AmiActionError):  # a Local pair's other half goes too
            await ami.action("Hangup", Channel=row["Channel"])
    assert await wait_no_channels(ami) == []


@pytest.fixture
async def proxied(pbx: Pbx, tmp_path: Path) -> AsyncIterator[tuple[Engine, TcpProxy]]:
    base = load_settings()
    proxy = TcpProxy(base.ami.host, base.ami.port)
    await proxy.start()
    ami = base.ami.model_copy(update={"port": proxy.port, "ping_interval": 0.5,
                                      "ping_timeout": 1.5, "action_timeout": 3.0})
    settings = _acd_settings(tmp_path).model_copy(update={"ami": ami})
    await add_agents(settings, [agent("A1", "1001")])
    eng = Engine(settings, backoffice_clock=trading_clock)
    await eng.start()
    try:
        yield eng, proxy
    finally:
        await eng.stop()
        await proxy.close()


async def test_an_ami_outage_does_not_stretch_end_and_talk_times(
        proxied: tuple[Engine, TcpProxy], pbx: Pbx) -> None:
    engine, proxy = proxied
    assert engine.ami is not None and engine.acd is not None and engine.db is not None
    base = load_settings()
    direct = AmiClient(base.ami, base.ami_secret())
    await direct.connect()
    try:
        caller = SimCaller(engine.ami)
        call_id = await queue_to_agent(engine, caller, ORDINARY_PHONE, hold_s=120)
        engine.acd.set_state("A1", "ready")
        await until(engine, lambda: engine.acd.seats["A1"].seat.state  # type: ignore[union-attr]
                    is SeatState.ON_CALL, 30, "the agent on the call")
        proxy.blackhole()
        await asyncio.wait_for(engine.ami.disconnected.wait(), 10)
        seen_down = time.time()
        await _hang_up_everything(direct)  # the call ends while the engine cannot see it
        proxy.blackhole(False)
        await asyncio.wait_for(engine.ami.connected.wait(), 20)
        await until(engine, lambda: engine.acd.seats["A1"].seat.state  # type: ignore[union-attr]
                    is not SeatState.ON_CALL, 10, "the seat to leave the call")
        complete = [e for e in await queue_log(engine, "complete") if e["call_id"] == call_id]
        assert len(complete) == 1
        assert complete[0]["at"] <= seen_down  # not the moment the link came back
        connect = next(e for e in await queue_log(engine, "connect")
                       if e["call_id"] == call_id)
        assert complete[0]["talk_s"] == pytest.approx(complete[0]["at"] - connect["at"])
        assert engine.recorder is not None
        await engine.recorder.flush()
        record = await get_call(engine.db, call_id)
        assert record is not None and record.ended_at is not None
        assert record.ended_at <= seen_down
        assert record.end_reason == "ended while AMI was down"
        hangups = [e for e in record.events if e.kind == "channel.hangup"]
        assert hangups and all(e.detail.get("approximate") == "yes" for e in hangups
                               if e.detail.get("reason") == "ended while AMI was down")
    finally:
        await direct.close()


async def test_a_call_with_an_agent_ended_while_the_engine_was_down_keeps_its_talk_time(
        pbx: Pbx, tmp_path: Path) -> None:
    settings = _acd_settings(tmp_path)
    await add_agents(settings, [agent("A1", "1001")])
    base = load_settings()
    direct = AmiClient(base.ami, base.ami_secret())
    await direct.connect()
    engines: list[Engine] = []
    try:
        engine = Engine(settings, backoffice_clock=trading_clock)
        engines.append(engine)
        await engine.start()
        assert engine.acd is not None and engine.ami is not None
        call_id = await queue_to_agent(engine, SimCaller(engine.ami), ORDINARY_PHONE,
                                       hold_s=120)
        engine.acd.set_state("A1", "ready")
        await until(engine, lambda: engine.acd.seats["A1"].seat.state  # type: ignore[union-attr]
                    is SeatState.ON_CALL, 30, "the agent on the call")
        connect = next(e for e in await queue_log(engine, "connect") if e["call_id"] == call_id)
        await engine.stop()  # as a crash would, for the ACD: the seat was on the call
        stopped = time.time()
        await _hang_up_everything(direct)  # the call ends while no engine runs

        engine = Engine(settings, backoffice_clock=trading_clock)
        engines.append(engine)
        await engine.start()
        complete = [e for e in await queue_log(engine, "complete") if e["call_id"] == call_id]
        assert len(complete) == 1, "the talk time was lost"
        assert connect["at"] <= complete[0]["at"] <= stopped
        assert complete[0]["talk_s"] == pytest.approx(complete[0]["at"] - connect["at"])
    finally:
        for eng in engines:
            await eng.stop()
        await direct.close()


# -- file modes ------------------------------------------------------------------------------------

async def test_doctor_warns_about_world_readable_state(pbx: Pbx, tmp_path: Path) -> None:
    base = load_settings()
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    (state / "callcenter.db").write_bytes(b"")
    (state / "callcenter.db").chmod(0o644)
    env = {**os.environ, "CALLCENTER_STATE_DIR": str(state),
           "CALLCENTER_AMI__SECRET_FILE": str(base.ami_secret_file)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "doctor", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    warned = [line for line in text.splitlines() if line.startswith("[WARN]")]
    assert any(str(state) in line and "0755" in line for line in warned), text
    assert any("callcenter.db" in line and "0644" in line for line in warned), text
    # doctor only looks: it changes nothing
    assert stat.S_IMODE((state / "callcenter.db").stat().st_mode) == 0o644
