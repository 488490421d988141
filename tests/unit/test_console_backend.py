"""The engine's console backend (``seats/backend.py``) on a real ``Acd`` and database.

No Asterisk: the ACD works without AMI until it rings, and calls are put on seats directly
(``ActiveCall``/``Waiter``, as the ACD itself builds them). A fake AMI client stands in where
the backend listens to Asterisk's events; a fake back office answers customer look-ups.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from pydantic import SecretStr, ValidationError

from callcenter.acd.service import Acd, ActiveCall, SeatRuntime, Waiter
from callcenter.broker.interface import Cash, Customer, Tier
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import BrokerError, ConsoleError, TelephonyError
from callcenter.seats import protocol as p
from callcenter.seats.backend import EngineConsoleBackend
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.state import SeatState
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, ChannelInfo, DialBegin, Hangup

ACCOUNT = "31000088"
OTHER_ACCOUNT = "31000099"
PHONE = "13800138000"
ME = AgentIdentity("1001", "Li Lei", p.Role.AGENT)
COLLEAGUE = AgentIdentity("1002", "Wang Fang", p.Role.AGENT)
CONSULTED = "Local/1777@outbound-00000001;1"


class FakeBackOffice:
    """The back office calls backend.py makes: customer, cash, positions."""

    def __init__(self) -> None:
        self.customers = {
            account: Customer(account, name, Tier.GOLD, (PHONE,), None, "zh")
            for account, name in ((ACCOUNT, "王五"), (OTHER_ACCOUNT, "赵六"))
        }
        self.asked: list[str] = []

    async def customer(self, account: str) -> Customer:
        self.asked.append(account)
        try:
            return self.customers[account]
        except KeyError:
            raise BrokerError(f"no customer {account}") from None

    async def cash(self, account: str) -> Cash:
        return Cash(Decimal("1000.00"), Decimal("1000.00"), Decimal(0))

    async def positions(self, account: str) -> list[Any]:
        return []


class FakeAmi:
    """Handlers called in order, like ``AmiClient``; actions recorded; every ring fails."""

    def __init__(self) -> None:
        self.handlers: list[Callable[[AmiEvent], None]] = []
        self.actions: list[tuple[str, dict[str, Any]]] = []

    def add_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        self.handlers.append(handler)

    def remove_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        self.handlers.remove(handler)

    def feed(self, event: AmiEvent) -> None:
        for handler in list(self.handlers):
            handler(event)

    async def action(self, name: str, **headers: Any) -> dict[str, str]:
        self.actions.append((name, headers))
        return {}

    async def originate(self, **headers: Any) -> tuple[dict[str, str], dict[str, str]]:
        raise TelephonyError("no phone in unit tests")


class Pushes:
    """A ``ConsolePush`` that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.ended: list[tuple[str, str]] = []

    def to_agent(self, agent_id: str, event: p.Event) -> None:
        self.events.append((agent_id, event.event, event.data))

    def to_role(self, role: p.Role, event: p.Event) -> None:
        self.events.append((f"role:{role.value}", event.event, event.data))

    def end_sessions(self, agent_id: str, reason: str) -> None:
        self.ended.append((agent_id, reason))

    def of(self, agent_id: str, name: str) -> list[dict[str, Any]]:
        return [data for who, kind, data in self.events if who == agent_id and kind == name]


class Clock:
    def __init__(self) -> None:
        self.now = 1_718_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    def __init__(self, db: aiosqlite.Connection, acd: Acd, ami: FakeAmi,
                 backend: EngineConsoleBackend, backoffice: FakeBackOffice,
                 pushes: Pushes, clock: Clock) -> None:
        self.db, self.acd, self.ami, self.backend = db, acd, ami, backend
        self.backoffice, self.pushes, self.clock = backoffice, pushes, clock

    def seat(self, agent_id: str) -> SeatRuntime:
        return self.acd.seat(agent_id)

    def give_call(self, agent_id: str, call_id: str = "c-1", *, account: str = ACCOUNT,
                  phone: str = PHONE, state: SeatState = SeatState.ON_CALL,
                  last: bool = False, recording: str = "/rec/c-1.wav") -> ActiveCall:
        """A connected call on the seat (or, with ``last``, the seat's last call)."""
        now = self.clock()
        waiter = Waiter(call_id, "general", Tier.GOLD, now - 30, "PJSIP/trunk-0001",
                        f"{call_id}-uid", account=account, phone=phone)
        call = ActiveCall(waiter, f"acd-{call_id}", now - 20, recording=recording,
                          agent_channel=f"PJSIP/{agent_id}-0001", connected_at=now - 15)
        rt = self.seat(agent_id)
        rt.seat.state, rt.seat.since = state, now - 5
        if last:
            rt.last_call = call
        else:
            rt.call = call
            self.acd._uniqueids[call.agent_uniqueid] = ("agent", agent_id)
        return call

    async def command(self, agent: AgentIdentity, request: dict[str, Any]) -> dict[str, Any]:
        parsed = p.REQUEST.validate_python({"v": 1, "id": "t", **request})
        return await self.backend.command(agent, parsed)

    async def refused(self, agent: AgentIdentity, request: dict[str, Any]) -> ConsoleError:
        with pytest.raises(ConsoleError) as caught:
            await self.command(agent, request)
        return caught.value


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = await open_db(tmp_path / "cc.db")
    for agent in (ME, COLLEAGUE):
        await save_agent(db, AgentRecord(agent.agent_id, agent.name, "agent",
                                         f"PJSIP/{agent.agent_id}"),
                         SecretStr(f"pw-{agent.agent_id}"))
    clock = Clock()
    settings = AcdSettings(queues=[QueueSettings(name="general", target_s=20,
                                                 target_share=0.9),
                                   QueueSettings(name="vip", target_s=10)],
                           wrap_up_s=45)
    acd = Acd(settings, db, clock=clock)
    await acd.start()
    ami = FakeAmi()
    acd.attach(ami)  # type: ignore[arg-type]
    backoffice = FakeBackOffice()
    backend = EngineConsoleBackend(acd, db, backoffice)  # type: ignore[arg-type]
    pushes = Pushes()
    backend.push = pushes
    try:
        yield World(db, acd, ami, backend, backoffice, pushes, clock)
    finally:
        await backend.close()
        await acd.close()
        await db.close()


async def rows(db: aiosqlite.Connection, sql: str) -> list[tuple[Any, ...]]:
    async with db.execute(sql) as cur:
        return [tuple(r) for r in await cur.fetchall()]


def channel(name: str, uniqueid: str = "") -> ChannelInfo:
    return ChannelInfo(uniqueid or name, uniqueid or name, name, 6, "Up", "", "", "", "")


# -- acting on the customer of a call --------------------------------------------------------


async def test_send_message_by_call_uses_the_calls_account(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")
    reply = await world.command(ME, {"type": "send_message", "call_id": "c-1",
                                     "channel": "email", "template": "statement"})
    assert reply["ref"]
    assert world.backoffice.asked == [ACCOUNT]
    [(kind, call_id, account)] = await rows(
        world.db, "SELECT kind, call_id, account FROM service_requests")
    assert (kind, call_id, account) == ("statement", "c-1", ACCOUNT)
    [(payload,)] = await rows(world.db, "SELECT payload FROM outbox")
    assert json.loads(payload)["account"] == ACCOUNT


async def test_send_message_by_last_call_after_it_ended(world: World) -> None:
    world.give_call(ME.agent_id, "c-9", state=SeatState.WRAP_UP, last=True)
    reply = await world.command(ME, {"type": "send_message", "call_id": "c-9",
                                     "channel": "sms", "template": "note", "text": "hi"})
    assert reply["ref"]
    assert world.backoffice.asked == [ACCOUNT]


async def test_send_message_by_account_still_works(world: World) -> None:
    await world.command(ME, {"type": "send_message", "account": OTHER_ACCOUNT,
                             "channel": "fax", "template": "statement"})
    assert world.backoffice.asked == [OTHER_ACCOUNT]


@pytest.mark.parametrize("fields", [
    {"call_id": "c-404"},                           # no such call
    {"call_id": "c-2"},                             # the colleague's call
    {"call_id": "c-1", "account": OTHER_ACCOUNT},   # not that call's customer
])
async def test_send_message_refuses_calls_that_are_not_mine(world: World,
                                                           fields: dict[str, str]) -> None:
    world.give_call(ME.agent_id, "c-1")
    world.give_call(COLLEAGUE.agent_id, "c-2", account=OTHER_ACCOUNT)
    error = await world.refused(ME, {"type": "send_message", "channel": "sms",
                                     "template": "note", **fields})
    assert error.code == "not_found"
    assert ACCOUNT not in error.message and OTHER_ACCOUNT not in error.message
    assert world.backoffice.asked == []
    assert await rows(world.db, "SELECT ref FROM service_requests") == []


async def test_send_message_for_an_unidentified_caller(world: World) -> None:
    world.give_call(ME.agent_id, "c-1", account="")
    error = await world.refused(ME, {"type": "send_message", "call_id": "c-1",
                                     "channel": "sms", "template": "note"})
    assert error.code == "not_found"


def test_send_message_needs_an_account_or_a_call() -> None:
    with pytest.raises(ValidationError, match="account or call_id"):
        p.REQUEST.validate_python({"type": "send_message", "channel": "sms",
                                   "template": "note"})
    with pytest.raises(ValidationError, match="number, or call_id"):
        p.REQUEST.validate_python({"type": "click_to_call"})


async def test_create_task_by_call_fills_account_and_phone(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")
    reply = await world.command(ME, {"type": "create_task", "text": "call back",
                                     "call_id": "c-1", "agent_id": COLLEAGUE.agent_id})
    assert reply["task_id"]
    assert await rows(world.db, "SELECT created_by, agent_id, account, phone FROM tasks") == [
        (ME.agent_id, COLLEAGUE.agent_id, ACCOUNT, PHONE)]
    # a phone given by the agent wins over the caller's number
    await world.command(ME, {"type": "create_task", "text": "fax", "call_id": "c-1",
                             "phone": "95555"})
    assert (await rows(world.db, "SELECT account, phone FROM tasks ORDER BY id"))[-1] == (
        ACCOUNT, "95555")


async def test_create_task_with_a_foreign_call_is_refused(world: World) -> None:
    world.give_call(COLLEAGUE.agent_id, "c-2")
    error = await world.refused(ME, {"type": "create_task", "text": "x", "call_id": "c-2"})
    assert error.code == "not_found"
    assert await rows(world.db, "SELECT id FROM tasks") == []


async def test_click_to_call_back_the_last_caller(world: World) -> None:
    world.give_call(ME.agent_id, "c-1", last=True, state=SeatState.READY)
    reply = await world.command(ME, {"type": "click_to_call", "call_id": "c-1"})
    rt = world.seat(ME.agent_id)
    assert rt.call is not None and rt.call.call_id == reply["call_id"]
    assert (rt.call.waiter.phone, rt.call.waiter.account) == (PHONE, ACCOUNT)
    assert rt.seat.state is SeatState.RINGING
    # the agent's phone does not answer here (no Asterisk): the seat goes not ready
    async with asyncio.timeout(5):
        while rt.seat.state is SeatState.RINGING:
            await asyncio.sleep(0.01)
    assert [e["call_id"] for e in world.pushes.of(ME.agent_id, "call_ended")] == [
        reply["call_id"]]


async def test_click_to_call_an_other_number_for_the_calls_customer(world: World) -> None:
    world.give_call(ME.agent_id, "c-1", last=True, state=SeatState.READY)
    await world.command(ME, {"type": "click_to_call", "call_id": "c-1", "number": "95555"})
    rt = world.seat(ME.agent_id)
    assert rt.call is not None
    assert (rt.call.waiter.phone, rt.call.waiter.account) == ("95555", ACCOUNT)


async def test_click_to_call_refusals(world: World) -> None:
    world.give_call(ME.agent_id, "c-1", last=True, state=SeatState.READY, phone="")
    world.give_call(COLLEAGUE.agent_id, "c-2", last=True, state=SeatState.READY)
    assert (await world.refused(ME, {"type": "click_to_call", "call_id": "c-2"})).code \
        == "not_found"
    assert (await world.refused(ME, {"type": "click_to_call", "call_id": "c-1"})).code \
        == "not_found"  # no number known for the call
    assert world.seat(ME.agent_id).call is None
    # on a call: the ACD refuses whatever the number
    world.give_call(ME.agent_id, "c-3")
    assert (await world.refused(ME, {"type": "click_to_call", "call_id": "c-3"})).code \
        == "invalid_state"


# -- the login reply's call ------------------------------------------------------------------


async def test_snapshot_of_a_talking_call(world: World) -> None:
    call = world.give_call(ME.agent_id, "c-1")
    snap = await world.backend.snapshot(ME)
    assert snap["call"] == {"call_id": "c-1", "state": "talking", "recording": "on",
                            "consult": None, "connected_at": call.connected_at,
                            "wrap_up_until": None}
    call.recording_paused = True
    call.held = True
    world.seat(ME.agent_id).seat.state = SeatState.ON_HOLD
    world.acd._emit(ME.agent_id, "consult", {"call_id": "c-1", "state": "ringing",
                                             "target": "1002"})
    snap = await world.backend.snapshot(ME)
    assert (snap["call"]["state"], snap["call"]["recording"], snap["call"]["consult"]) == (
        "held", "paused", "ringing")
    call.recording = ""
    assert (await world.backend.snapshot(ME))["call"]["recording"] == "off"


async def test_snapshot_in_wrap_up_has_the_deadline(world: World) -> None:
    world.give_call(ME.agent_id, "c-1", state=SeatState.WRAP_UP, last=True)
    since = world.seat(ME.agent_id).seat.since
    snap = await world.backend.snapshot(ME)
    assert snap["call"]["state"] == "wrap_up"
    assert snap["call"]["wrap_up_until"] == since + 45
    assert snap["call"]["consult"] is None


async def test_snapshot_keeps_the_screen_pop(world: World) -> None:
    world.backend.pops["c-1"] = {"call_id": "c-1", "queue": "general", "customer": None}
    world.give_call(ME.agent_id, "c-1")
    call = (await world.backend.snapshot(ME))["call"]
    assert (call["queue"], call["state"]) == ("general", "talking")
    assert (await world.backend.snapshot(COLLEAGUE))["call"] is None


# -- consultations from Asterisk's events ----------------------------------------------------


async def test_consult_rings_then_talks_then_ends(world: World) -> None:
    call = world.give_call(ME.agent_id, "c-1")
    call.consulting = True  # what CallControl.consult sets before redirecting the legs
    world.acd._emit(ME.agent_id, "consult", {"call_id": "c-1", "state": "ringing",
                                             "target": "1777"})
    # the agent's leg dials the consulted party: the ACD notes the channel
    world.ami.feed(DialBegin(channel(call.agent_channel, call.agent_uniqueid),
                             channel(CONSULTED), "Local/1777@outbound"))
    assert call.consult_channel == CONSULTED
    world.ami.feed(BridgeEnter(channel(call.agent_channel, call.agent_uniqueid), "b1"))
    assert [e["state"] for e in world.pushes.of(ME.agent_id, "consult")] == ["ringing"]
    world.ami.feed(BridgeEnter(channel(CONSULTED), "b1"))
    world.ami.feed(BridgeEnter(channel(CONSULTED), "b2"))  # told once only
    assert world.pushes.of(ME.agent_id, "consult")[1:] == [
        {"call_id": "c-1", "state": "talking", "target": "1777"}]
    assert (await world.backend.snapshot(ME))["call"]["consult"] == "talking"
    world.ami.feed(Hangup(channel(CONSULTED), 16, "Normal Clearing"))
    assert world.pushes.of(ME.agent_id, "consult")[-1] == {
        "call_id": "c-1", "state": "ended", "target": "1777"}
    assert (await world.backend.snapshot(ME))["call"]["consult"] is None


async def test_consult_answer_seen_before_the_ring_event(world: World) -> None:
    """DialBegin may be read before the ACD's consult() goes on to emit "ringing"."""
    call = world.give_call(ME.agent_id, "c-1")
    call.consulting = True
    world.ami.feed(DialBegin(channel(call.agent_channel, call.agent_uniqueid),
                             channel(CONSULTED), "Local/1777@outbound"))
    world.acd._emit(ME.agent_id, "consult", {"call_id": "c-1", "state": "ringing",
                                             "target": "1777"})
    world.ami.feed(BridgeEnter(channel(CONSULTED), "b1"))
    assert [e["state"] for e in world.pushes.of(ME.agent_id, "consult")] == [
        "ringing", "talking"]


async def test_a_call_back_dialling_the_customer_is_no_consult(world: World) -> None:
    call = world.give_call(ME.agent_id, "out-1")
    world.ami.feed(DialBegin(channel(call.agent_channel, call.agent_uniqueid),
                             channel(CONSULTED), "Local/13800138000@outbound"))
    world.ami.feed(BridgeEnter(channel(CONSULTED), "b1"))
    world.ami.feed(Hangup(channel(CONSULTED), 16, "Normal Clearing"))
    assert world.pushes.of(ME.agent_id, "consult") == []


async def test_call_end_forgets_the_consult(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")
    world.acd._emit(ME.agent_id, "consult", {"call_id": "c-1", "state": "ringing",
                                             "target": "1777"})
    world.acd._emit(ME.agent_id, "ended", {"call_id": "c-1", "wrap_up_s": 45,
                                           "answered": True})
    assert world.backend.consults == {}
    [ended] = world.pushes.of(ME.agent_id, "call_ended")
    assert ended == {"call_id": "c-1", "wrap_up_s": 45, "answered": True,
                     "disposition_required": True}


async def test_close_stops_listening_to_asterisk(world: World) -> None:
    assert world.backend.on_ami_event in world.ami.handlers
    await world.backend.close()
    assert world.backend.on_ami_event not in world.ami.handlers


# -- queue figures ---------------------------------------------------------------------------


async def test_queue_figures_carry_the_target_share(world: World) -> None:
    figures = {q["name"]: q for q in world.backend.queue_figures()}
    assert (figures["general"]["target_s"], figures["general"]["target_share"]) == (20, 0.9)
    assert figures["vip"]["target_share"] == 0.8
    assert world.backend.wallboard()["queues"] == world.backend.queue_figures()
