"""Helpers for ACD tests: agents in the test database, a movable ACD clock, waiting on the ACD."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.simcall import SimCaller
from tests.asterisk_queue_log import QueueLogLine, parse_file

AGENT_PASSWORD = "test-agent-pw"

ORDINARY_PHONE = "13800000001"
SILVER_PHONE = "13800000002"
GOLD_PHONE = "13800000003"       # manager A1001
PLATINUM_PHONE = "13800000004"   # manager A1002


class Clock:
    """The ACD's clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        import time

        self._time = time.time
        self.offset = 0.0

    def __call__(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def agent(agent_id: str, phone: str, kind: str = "agent-answer", *, vip: bool = False,
          role: str = "agent", skills: dict[str, int] | None = None) -> AgentRecord:
    return AgentRecord(agent_id, f"Agent {agent_id}", role, f"Local/{phone}@{kind}",
                       skills or {"general": 5}, vip_team=vip)


async def add_agents(settings: Settings, agents: list[AgentRecord]) -> None:
    db = await open_db(settings.database)
    try:
        for a in agents:
            await save_agent(db, a, SecretStr(AGENT_PASSWORD))
    finally:
        await db.close()


async def until(engine: Engine, check: Callable[[], Any], within_s: float = 30.0,
                what: str = "") -> Any:
    """Wait until ``check()`` is truthy: re-checked on every ACD or AMI event, and twice a
    second."""
    assert engine.acd is not None and engine.ami is not None
    changed = asyncio.Event()

    def poke(*_args: object) -> None:
        changed.set()

    # the phones' own AMI link brings registrations (ContactStatus)
    links = [engine.ami, *([engine.phones.ami] if engine.phones is not None else [])]
    engine.acd.listeners.append(poke)
    for link in links:
        link.add_handler(poke)
    try:
        async with asyncio.timeout(within_s):
            while True:
                result = check()
                if result:
                    return result
                changed.clear()
                # also every half second: what is checked may change with no event at all (a
                # FastAGI session ending; the AMI user hears only the events the engine uses)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await changed.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or check}") from None
    finally:
        engine.acd.listeners.remove(poke)
        for link in links:
            link.remove_handler(poke)


async def press_while_waiting(engine: Engine, call_id: str, digit: str = "1",
                              application: str = "WaitExten") -> None:
    """The waiting caller presses ``digit``, once their channel is in ``[queue-hold]``'s
    ``application`` (a key pressed while the hand-off is still moving the channel there is
    heard by nobody, as on a real phone). Waits on Asterisk's channel list, with a deadline."""
    assert engine.acd is not None and engine.ami is not None and engine.controller is not None
    waiter = engine.acd.find_waiter(call_id=call_id)
    assert waiter is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        rows = await engine.ami.action_list("CoreShowChannels")
        if any(r.get("Uniqueid") == waiter.uniqueid and r.get("Application") == application
               for r in rows):
            break
        if loop.time() >= deadline:
            raise AssertionError(f"{call_id} never reached {application} in [queue-hold]")
        await asyncio.sleep(0.05)
    await engine.ami.action("PlayDTMF", Channel=engine.controller.model.channels[call_id].name,
                            Digit=digit, Duration="120")


def waiting_ids(engine: Engine, queue: str = "general") -> list[str]:
    assert engine.acd is not None
    return list(engine.acd.waiting[queue])


async def queue_to_agent(engine: Engine, caller: SimCaller, phone: str, *,
                         hold_s: int = 90) -> str:
    """A caller dials the hotline and presses 0 at once: they end up waiting in the queue."""
    call_id = await caller.place("9500", "0", hold_s=hold_s, wait_s=1, caller_id=phone,
                                 gap_ms=60, tone_ms=60)
    await until(engine, lambda: call_id in waiting_ids(engine), 40, f"{call_id} queued")
    return call_id


async def queue_log(engine: Engine, event: str | None = None) -> list[dict[str, Any]]:
    assert engine.acd is not None and engine.db is not None
    await engine.acd.flush()
    sql = "SELECT at, queue, call_id, event, agent_id, tier, wait_s, talk_s FROM queue_log"
    args: tuple[str, ...] = ()
    if event:
        sql += " WHERE event = ?"
        args = (event,)
    async with engine.db.execute(sql + " ORDER BY id", args) as cur:
        cols = ["at", "queue", "call_id", "event", "agent_id", "tier", "wait_s", "talk_s"]
        return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]


async def hang_up_all(engine: Engine) -> None:
    assert engine.ami is not None
    rows = await engine.ami.action_list("CoreShowChannels")
    for row in rows:
        with contextlib.suppress(Exception):
            await engine.ami.action("Hangup", Channel=row["Channel"])


async def hang_up(engine: Engine, channel: str, timeout_s: float = 10.0) -> None:
    """Hang up ``channel`` (a name or a uniqueid) and return once Asterisk no longer lists it.

    A Hangup can miss while a channel is moved out of dialplan into a bridge (AMI ``Bridge`` or
    the agent leg's ``Bridge()``): the masquerade that moves it takes it out of the channel
    list for a moment ("No such channel" although it lives on), and a soft hang-up set on the
    object it retires is not carried over (Asterisk's ``channel_do_masquerade``). The second is
    the suspected cause of a caller left bridged to a desk phone after an accepted Hangup. So
    the Hangup is sent again (the moved channel keeps its name and uniqueid) until it is gone."""
    from callcenter.errors import AmiActionError

    assert engine.ami is not None
    ami, loop = engine.ami, asyncio.get_running_loop()
    deadline = loop.time() + timeout_s

    async def listed() -> bool:
        rows = await ami.action_list("CoreShowChannels")
        return any(channel in (r.get("Channel"), r.get("Uniqueid")) for r in rows)

    while True:
        try:
            await ami.action("Hangup", Channel=channel)
        except AmiActionError as exc:
            if "No such channel" not in str(exc):
                raise
        retry_at = min(deadline, loop.time() + 1.0)
        while True:
            if not await listed():
                return
            if loop.time() >= retry_at:
                break
            await asyncio.sleep(0.1)
        if loop.time() >= deadline:
            raise AssertionError(f"{channel} is still there {timeout_s:.0f} s after Hangup")


async def direct_caller(engine: Engine, phone: str = "13700000009",
                        queue: str = "general") -> tuple[str, str]:
    """A caller put straight into [queue-hold] and the queue (no IVR: for call-control tests).

    Returns (call id, the caller's channel name in [queue-hold])."""
    from callcenter.telephony.simcall import new_call_id

    assert engine.ami is not None and engine.acd is not None and engine.controller is not None
    call_id = new_call_id()
    await engine.ami.originate(Channel="Local/s@queue-hold", Context="caller-sim", Exten="s",
                               Priority="1", ChannelId=call_id, OtherChannelId=f"{call_id}-b",
                               CallerID=f'"sim" <{phone}>', Variable=["CALLER_HOLD=120"],
                               Timeout="10000")
    model = engine.controller.model
    await until(engine, lambda: f"{call_id}-b" in model.channels, 10, "caller in queue-hold")
    name = model.channels[f"{call_id}-b"].name
    engine.acd.enqueue(call_id, queue, name, f"{call_id}-b", {"lang": "zh"}, phone=phone)
    return call_id, name


async def channel_row(engine: Engine, uniqueid: str) -> dict[str, str]:
    assert engine.ami is not None
    rows = await engine.ami.action_list("CoreShowChannels")
    return next((dict(r) for r in rows if r.get("Uniqueid") == uniqueid), {})


async def desk_agent(engine: Engine, agent_id: str, extension: str) -> str:
    """A new agent with a desk phone, pushed to Asterisk and seated in the ACD; the phone's
    one-time secret."""
    from callcenter.phones.identity import PhoneKind
    from callcenter.store.phones import save_phone

    assert engine.db is not None and engine.acd is not None and engine.phones is not None
    record = AgentRecord(agent_id, f"Desk {agent_id}", "agent", f"PJSIP/{extension}",
                         {"general": 5})
    await save_agent(engine.db, record, SecretStr(AGENT_PASSWORD))
    secret = await save_phone(engine.db, agent_id, extension, PhoneKind.DESK,
                              engine.settings.sip.realm)
    assert secret is not None
    await engine.phones.sync()
    engine.acd.add_agent(record)
    return secret


#: starts an engine for a test: ``await start(agents, clock=None, **settings_args)``
Factory = Callable[..., Awaitable[Engine]]


@contextlib.asynccontextmanager
async def engines_for(make_settings: Callable[..., Settings],
                      default_clock: Callable[[], float] | None = None
                      ) -> AsyncIterator[Factory]:
    """A test's engines on the real sandbox Asterisk: the first start saves the agents; each
    engine runs the demo back office; at the end every call is hung up, Asterisk must be empty
    and every engine is stopped."""
    from callcenter.broker.sandbox import SandboxBackOffice
    from callcenter.broker.seed import seed_demo
    from tests.integration.conftest import trading_clock, wait_no_channels

    engines: list[Engine] = []

    async def start(agents: list[AgentRecord], clock: Callable[[], float] | None = None,
                    **extra: Any) -> Engine:
        settings = with_queue_log(make_settings(**extra))
        if not engines:
            await add_agents(settings, agents)
        eng = Engine(settings, backoffice_clock=trading_clock, acd_clock=clock or default_clock)
        await eng.start()
        assert isinstance(eng.backoffice, SandboxBackOffice)
        await seed_demo(eng.backoffice)
        engines.append(eng)
        return eng

    try:
        yield start
    finally:
        leftovers: list[str] = []
        live = [e for e in engines if e.ami is not None]
        if live:
            await hang_up_all(live[-1])
            leftovers = await wait_no_channels(live[-1].ami)  # type: ignore[arg-type]
        for eng in engines:
            await eng.stop()
        assert leftovers == [], f"channels left in Asterisk after the test: {leftovers}"
    # every ACD test's Asterisk-format queue_log parses line by line as Asterisk's format
    for path in {e.settings.queue_log_path for e in engines}:
        check_queue_log(path)


def with_queue_log(settings: Settings) -> Settings:
    """The settings with the Asterisk-format queue_log next to the test's database (not in the
    state directory the tests share)."""
    if settings.acd.queue_log_file is not None or not settings.acd.queue_log:
        return settings
    acd = settings.acd.model_copy(
        update={"queue_log_file": settings.database.parent / "queue_log"})
    return settings.model_copy(update={"acd": acd})


def check_queue_log(path: Path | None) -> list[QueueLogLine]:
    """The file's lines, each checked against Asterisk's format (``tests/asterisk_queue_log``);
    the engine that wrote it opened it with QUEUESTART."""
    assert path is not None
    lines = parse_file(path.read_text(encoding="utf-8"))
    assert lines and lines[0].event == "QUEUESTART", f"{path}: no QUEUESTART first"
    return lines
