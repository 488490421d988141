"""The engine's console backend (``seats/backend.py``) on a real ``Acd`` and database.

No Asterisk: the ACD works without AMI until it rings, and calls are put on seats directly
(``ActiveCall``/``Waiter``, as the ACD itself builds them). A fake AMI client stands in where
the backend listens to Asterisk's events; a fake back office answers customer look-ups.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from pydantic import SecretStr, ValidationError

from callcenter.acd.calls import CallInput, CallLife, CallState
from callcenter.acd.notices import CallConnected, CallEnded, ConsultChanged
from callcenter.acd.records import ActiveCall, SeatRuntime, Waiter
from callcenter.acd.seat import SeatInput, SeatState
from callcenter.acd.service import Acd
from callcenter.broker.interface import Cash, Customer, RefusalCode, Tier
from callcenter.channels.documents import NO_ADDRESS
from callcenter.channels.messages import DeliveryState, Inbound
from callcenter.channels.relay import ContactArrived, DeliveryUpdate, OutboxState
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import BrokerError, BrokerRefusal, ConsoleError, TelephonyError
from callcenter.seats import protocol as p
from callcenter.seats.backend import EngineConsoleBackend
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.presence import Presence, PresenceAction
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, ChannelInfo, DialBegin, Hangup

ACCOUNT = "31000088"
OTHER_ACCOUNT = "31000099"
#: a customer with neither a phone nor an e-mail address on file
NOWHERE_ACCOUNT = "31000077"
PHONE = "13800138000"
EMAIL = "wangwu@example.com"
ME = AgentIdentity("1001", "Li Lei", p.Role.AGENT)
COLLEAGUE = AgentIdentity("1002", "Wang Fang", p.Role.AGENT)
CONSULTED = "Local/1777@outbound-00000001;1"


class FakeBackOffice:
    """The back office calls backend.py makes: customer, cash, positions, and what a
    statement's data needs (orders and fills of the day), and security look-ups."""

    def __init__(self) -> None:
        self.customers = {
            ACCOUNT: Customer(ACCOUNT, "王五", Tier.GOLD, (PHONE,), None, "zh", EMAIL),
            OTHER_ACCOUNT: Customer(OTHER_ACCOUNT, "赵六", Tier.GOLD, (PHONE,), None, "en"),
            NOWHERE_ACCOUNT: Customer(NOWHERE_ACCOUNT, "钱七", Tier.SILVER, (), None, "zh"),
        }
        self.asked: list[str] = []

    async def customer(self, account: str) -> Customer:
        self.asked.append(account)
        try:
            return self.customers[account]
        except KeyError:
            raise BrokerError(f"no customer {account}") from None

    async def cash(self, account: str) -> Cash:
        return Cash(Decimal("1000.00"), Decimal("1000.00"), Decimal(0), Decimal("1000.00"))

    async def positions(self, account: str) -> list[Any]:
        return []

    async def orders_today(self, account: str) -> list[Any]:
        return []

    async def fills_today(self, account: str) -> list[Any]:
        return []

    async def security(self, code: str) -> Any:
        if code != "600519":
            raise BrokerRefusal(RefusalCode.UNKNOWN_CODE.value, f"no security {code}")
        return object()


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
        self.changed = asyncio.Event()

    def to_agent(self, agent_id: str, event: p.Event) -> None:
        self.events.append((agent_id, event.event, event.data))
        self.changed.set()

    def to_role(self, role: p.Role, event: p.Event) -> None:
        self.events.append((f"role:{role.value}", event.event, event.data))
        self.changed.set()

    def state_to_role(self, role: p.Role, event: p.Event) -> None:
        self.to_role(role, event)

    async def until(self, check: Callable[[], Any], within_s: float = 10.0) -> Any:
        """Wait for a push after which ``check()`` is truthy."""
        async with asyncio.timeout(within_s):
            while not (result := check()):
                self.changed.clear()
                await self.changed.wait()
        return result

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
        self.kicks = 0

    def kicked(self) -> None:
        """The backend's ``on_outbox`` hook (the engine's ``relay.kick``)."""
        self.kicks += 1

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
                          agent_channel=f"PJSIP/{agent_id}-0001", connected_at=now - 15,
                          state=CallState.HELD if state is SeatState.ON_HOLD
                          else CallState.CONNECTED)
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
    world = World(db, acd, ami, backend, backoffice, pushes, clock)
    backend.on_outbox = world.kicked
    try:
        yield world
    finally:
        await backend.close()
        await acd.close()
        await db.close()


async def rows(db: aiosqlite.Connection, sql: str) -> list[tuple[Any, ...]]:
    async with db.execute(sql) as cur:
        return [tuple(r) for r in await cur.fetchall()]


def channel(name: str, uniqueid: str = "") -> ChannelInfo:
    return ChannelInfo(uniqueid or name, uniqueid or name, name, 6, "Up", "", "", "", "")


def seat_state(rt: SeatRuntime) -> SeatState:
    """The seat's state, read afresh (a command moved it meanwhile)."""
    return rt.seat.state


def seat_call(rt: SeatRuntime) -> ActiveCall | None:
    """The seat's call, read afresh (an event moved it meanwhile)."""
    return rt.call


# -- acting on the customer of a call --------------------------------------------------------


async def test_send_message_by_call_uses_the_calls_account(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")
    reply = await world.command(ME, {"type": "send_message", "call_id": "c-1",
                                     "channel": "email", "template": "statement"})
    assert reply["ref"]
    assert set(world.backoffice.asked) == {ACCOUNT}  # the statement's data asks again
    [(kind, call_id, account)] = await rows(
        world.db, "SELECT kind, call_id, account FROM service_requests")
    assert (kind, call_id, account) == ("statement", "c-1", ACCOUNT)
    [(payload,)] = await rows(world.db, "SELECT payload FROM outbox")
    assert json.loads(payload)["account"] == ACCOUNT
    assert world.kicks == 1


async def test_send_message_by_last_call_after_it_ended(world: World) -> None:
    world.give_call(ME.agent_id, "c-9", state=SeatState.WRAP_UP, last=True)
    reply = await world.command(ME, {"type": "send_message", "call_id": "c-9",
                                     "channel": "sms", "template": "note", "text": "hi"})
    assert reply["ref"]
    assert world.backoffice.asked == [ACCOUNT]


async def test_send_message_by_account_still_works(world: World) -> None:
    await world.command(ME, {"type": "send_message", "account": OTHER_ACCOUNT,
                             "channel": "fax", "template": "statement", "fax": "02155550000"})
    assert world.backoffice.asked[0] == OTHER_ACCOUNT


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
                                     "template": "note", "text": "hi", **fields})
    assert error.code == "not_found"
    assert ACCOUNT not in error.message and OTHER_ACCOUNT not in error.message
    assert world.backoffice.asked == []
    assert await rows(world.db, "SELECT ref FROM service_requests") == []


async def test_send_message_for_an_unidentified_caller(world: World) -> None:
    world.give_call(ME.agent_id, "c-1", account="")
    error = await world.refused(ME, {"type": "send_message", "call_id": "c-1",
                                     "channel": "sms", "template": "note", "text": "hi"})
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
        while seat_state(rt) is SeatState.RINGING:
            await asyncio.sleep(0.01)
    assert [e["call_id"] for e in world.pushes.of(ME.agent_id, "call_ended")] == [
        reply["call_id"]]


async def test_click_to_call_an_other_number_for_the_calls_customer(world: World) -> None:
    world.give_call(ME.agent_id, "c-1", last=True, state=SeatState.READY)
    await world.command(ME, {"type": "click_to_call", "call_id": "c-1",
                             "number": "+8613912345678"})
    rt = world.seat(ME.agent_id)
    assert rt.call is not None
    assert (rt.call.waiter.phone, rt.call.waiter.account) == ("13912345678", ACCOUNT)


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
                            "disposition_required": False, "wrap_up_until": None}
    call.recording_paused = True
    call.life = CallLife("c-1", state=CallState.CONSULTING)  # as CallControl.consult leaves it
    call.consult_target = "1002"
    world.seat(ME.agent_id).seat.state = SeatState.ON_HOLD
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


def consulting(call: ActiveCall, target: str) -> None:
    """The call as ``CallControl.consult`` leaves it before Asterisk's events come."""
    call.consult_target = target
    call.life = CallLife(call.call_id, state=CallState.CONSULTING)


async def test_consult_rings_then_talks_then_ends(world: World) -> None:
    call = world.give_call(ME.agent_id, "c-1")
    consulting(call, "1777")
    world.acd.notify(ConsultChanged(ME.agent_id, "c-1", "ringing", "1777"))
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
    # the caller stays on hold until the agent takes them back
    assert call.life.state is CallState.HELD
    assert (await world.backend.snapshot(ME))["call"]["consult"] is None


async def test_consult_answer_seen_before_the_consultation_is_proven(world: World) -> None:
    """The consulted party may answer before ``consult`` saw its proof and moved the call:
    "talking" then follows "ringing" at once (``Acd.call_moved``)."""
    call = world.give_call(ME.agent_id, "c-1")
    call.consult_target = "1777"
    world.ami.feed(DialBegin(channel(call.agent_channel, call.agent_uniqueid),
                             channel(CONSULTED), "Local/1777@outbound"))
    world.ami.feed(BridgeEnter(channel(CONSULTED), "b1"))
    assert world.pushes.of(ME.agent_id, "consult") == []
    world.acd.call_moved(world.seat(ME.agent_id), CallInput.CONSULT, SeatInput.HOLD,
                         by=ME.agent_id)
    assert [e["state"] for e in world.pushes.of(ME.agent_id, "consult")] == [
        "ringing", "talking"]


async def test_a_call_back_dialling_the_customer_is_no_consult(world: World) -> None:
    call = world.give_call(ME.agent_id, "out-1")
    world.ami.feed(DialBegin(channel(call.agent_channel, call.agent_uniqueid),
                             channel(CONSULTED), "Local/13800138000@outbound"))
    world.ami.feed(BridgeEnter(channel(CONSULTED), "b1"))
    world.ami.feed(Hangup(channel(CONSULTED), 16, "Normal Clearing"))
    assert world.pushes.of(ME.agent_id, "consult") == []
    assert call.consult_channel == ""


async def test_call_ended_says_whether_a_disposition_is_required(world: World) -> None:
    world.acd.notify(CallEnded(ME.agent_id, "c-1", 45, answered=True,
                               disposition_required=True))
    [ended] = world.pushes.of(ME.agent_id, "call_ended")
    assert ended == {"call_id": "c-1", "wrap_up_s": 45, "answered": True,
                     "disposition_required": True}


async def test_the_backend_does_not_listen_to_asterisk(world: World) -> None:
    """One AMI intake: the ACD's. The console learns of calls from the ACD's notices only."""
    assert world.ami.handlers == [world.acd.on_ami_event]


# -- queue figures ---------------------------------------------------------------------------


async def test_queue_figures_carry_the_target_share(world: World) -> None:
    figures = {q["name"]: q for q in world.backend.queue_figures()}
    assert (figures["general"]["target_s"], figures["general"]["target_share"]) == (20, 0.9)
    assert figures["vip"]["target_share"] == 0.8
    assert world.backend.wallboard()["queues"] == world.backend.queue_figures()


# -- messages: the bus convention, addresses -------------------------------------------------


async def outbox_payloads(db: aiosqlite.Connection) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in await rows(db, "SELECT payload FROM outbox ORDER BY id")]


async def test_statement_by_email_follows_the_bus_convention(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")
    reply = await world.command(ME, {"type": "send_message", "call_id": "c-1",
                                     "channel": "email", "template": "statement"})
    [payload] = await outbox_payloads(world.db)
    assert set(payload) == {"to", "template", "lang", "account", "data", "ref"}
    assert (payload["to"], payload["template"], payload["lang"], payload["account"],
            payload["ref"]) == (EMAIL, "statement", "zh", ACCOUNT, reply["ref"])
    data = payload["data"]
    # document_data's shape: money as decimal strings, the date on the engine's clock
    assert (data["customer"], data["account"], data["cash_balance"]) == (
        "王五", ACCOUNT, "1000.00")
    assert data["as_of"].startswith("2024-06-10T")
    assert (data["positions"], data["orders"], data["fills"]) == ([], [], [])
    [(channel, topic, ref)] = await rows(world.db, "SELECT channel, topic, ref FROM outbox")
    assert (channel, topic, ref) == ("email", "callcenter/outbox/email", reply["ref"])
    assert world.kicks == 1


async def test_confirmations_and_note_by_sms(world: World) -> None:
    await world.command(ME, {"type": "send_message", "account": OTHER_ACCOUNT,
                             "channel": "sms", "template": "confirmations"})
    await world.command(ME, {"type": "send_message", "account": OTHER_ACCOUNT,
                             "channel": "sms", "template": "note", "text": "转账已受理"})
    confirmations, note = await outbox_payloads(world.db)
    assert (confirmations["to"], confirmations["lang"]) == (PHONE, "en")
    assert set(confirmations["data"]) == {"customer", "account", "as_of", "fills"}
    assert note["data"] == {"customer": "赵六", "text": "转账已受理"}
    assert (note["to"], note["template"]) == (PHONE, "note")
    assert world.kicks == 2


async def test_fax_goes_to_the_number_the_agent_gives(world: World) -> None:
    await world.command(ME, {"type": "send_message", "account": ACCOUNT, "channel": "fax",
                             "template": "statement", "fax": "+862155550000"})
    [payload] = await outbox_payloads(world.db)
    assert payload["to"] == "+862155550000"


@pytest.mark.parametrize(("fields", "why"), [
    ({"channel": "fax", "template": "statement"}, "fax number"),
    ({"channel": "fax", "template": "statement", "fax": "021-5555"}, "fax"),
    ({"channel": "sms", "template": "statement", "fax": "02155550000"}, "fax channel only"),
    ({"channel": "sms", "template": "note"}, "a note needs its text"),
    ({"channel": "sms", "template": "note", "text": "  "}, "a note needs its text"),
    ({"channel": "sms", "template": "statement", "text": "hi"}, "with a note only"),
])
def test_send_message_fields_are_checked(fields: dict[str, str], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        p.REQUEST.validate_python({"type": "send_message", "account": ACCOUNT, **fields})


@pytest.mark.parametrize(("account", "channel", "what"), [
    (OTHER_ACCOUNT, "email", "e-mail address"),
    (NOWHERE_ACCOUNT, "sms", "mobile number"),
])
async def test_no_address_on_file_is_refused(world: World, account: str, channel: str,
                                            what: str) -> None:
    error = await world.refused(ME, {"type": "send_message", "account": account,
                                     "channel": channel, "template": "note", "text": "hi"})
    assert error.code == "not_found"
    assert error.message.startswith(NO_ADDRESS) and what in error.message
    assert account not in error.message
    assert await rows(world.db, "SELECT ref FROM service_requests") == []
    assert await rows(world.db, "SELECT id FROM outbox") == []
    assert world.kicks == 0


async def test_statement_when_the_back_office_fails(world: World) -> None:
    async def broken(account: str) -> Cash:
        raise BrokerError("link down")

    world.backoffice.cash = broken  # type: ignore[method-assign]
    error = await world.refused(ME, {"type": "send_message", "account": ACCOUNT,
                                     "channel": "email", "template": "statement"})
    assert error.code == "unavailable"
    assert await rows(world.db, "SELECT id FROM outbox") == []


# -- deliveries per customer -----------------------------------------------------------------


async def test_deliveries_of_the_calls_customer_with_their_states(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")
    first = await world.command(ME, {"type": "send_message", "call_id": "c-1",
                                     "channel": "sms", "template": "note", "text": "hi"})
    await world.command(ME, {"type": "send_message", "call_id": "c-1", "channel": "email",
                             "template": "statement"})
    await world.command(ME, {"type": "send_message", "account": OTHER_ACCOUNT,
                             "channel": "sms", "template": "note", "text": "other"})
    # the SMS failed at the channel server (what the relay records on a report)
    await world.db.execute("UPDATE outbox SET state = 'failed', last_error = 'SMSC: unknown"
                           " subscriber', updated_at = created_at + 5 WHERE ref = ?",
                           (first["ref"],))
    await world.db.commit()

    reply = await world.command(ME, {"type": "deliveries", "call_id": "c-1"})
    statement, note = reply["deliveries"]
    assert (statement["template"], statement["channel"], statement["state"]) == (
        "statement", "email", "queued")
    assert statement["to"] == "w***@example.com"
    assert (note["template"], note["state"], note["reason"], note["ref"]) == (
        "note", "failed", "SMSC: unknown subscriber", first["ref"])
    assert note["to"] == "*******8000"
    assert note["subscription_id"] is None and isinstance(note["created_at"], float)
    assert ACCOUNT not in json.dumps(reply) and PHONE not in json.dumps(reply)

    limited = await world.command(ME, {"type": "deliveries", "account": ACCOUNT, "limit": 1})
    assert [d["template"] for d in limited["deliveries"]] == ["statement"]
    # another agent's call names nobody
    world.give_call(COLLEAGUE.agent_id, "c-2", account=OTHER_ACCOUNT)
    assert (await world.refused(ME, {"type": "deliveries", "call_id": "c-2"})).code == \
        "not_found"
    with pytest.raises(ValidationError, match="account or call_id"):
        p.REQUEST.validate_python({"type": "deliveries"})


# -- financial-secretary subscriptions -------------------------------------------------------


async def test_subscribe_list_and_unsubscribe_through_the_call(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")
    request = {"type": "subscribe", "call_id": "c-1", "kind": "price_above",
               "channel": "sms", "code": "600519", "price": "1800.5",
               "quiet_start": "22:00", "quiet_end": "07:30"}
    reply = await world.command(ME, request)
    assert (reply["new"], reply["address"]) == (True, "on_file")
    again = await world.command(ME, request)
    assert (again["subscription_id"], again["new"]) == (reply["subscription_id"], False)
    await world.command(ME, {"type": "subscribe", "call_id": "c-1", "kind": "fill",
                             "channel": "fax", "fax": "02155550000"})

    listed = (await world.command(ME, {"type": "subscriptions", "call_id": "c-1"}))[
        "subscriptions"]
    alert, fills = listed
    assert alert == {"subscription_id": reply["subscription_id"], "kind": "price_above",
                     "channel": "sms", "code": "600519", "price": "1800.50", "fax": "",
                     "quiet_start": "22:00", "quiet_end": "07:30",
                     "created_at": world.clock.now, "created_by": ME.agent_id}
    assert (fills["kind"], fills["channel"], fills["fax"]) == ("fill", "fax", "*******0000")

    # the subscription of this customer only: another account's id is not found
    error = await world.refused(ME, {"type": "unsubscribe", "account": OTHER_ACCOUNT,
                                     "subscription_id": reply["subscription_id"]})
    assert error.code == "not_found"
    assert await world.command(ME, {"type": "unsubscribe", "call_id": "c-1",
                                    "subscription_id": reply["subscription_id"]}) == {
        "removed": True}
    left = await world.command(ME, {"type": "subscriptions", "account": ACCOUNT})
    assert [s["kind"] for s in left["subscriptions"]] == ["fill"]
    assert (await world.refused(ME, {"type": "unsubscribe", "call_id": "c-1",
                                     "subscription_id": reply["subscription_id"]})).code == \
        "not_found"


async def test_subscribe_says_when_no_address_is_on_file(world: World) -> None:
    reply = await world.command(ME, {"type": "subscribe", "account": OTHER_ACCOUNT,
                                     "kind": "daily_summary", "channel": "email"})
    assert (reply["new"], reply["address"]) == (True, "missing")


async def test_subscribe_refusals(world: World) -> None:
    # the core's ValueError: a price level must be above zero
    error = await world.refused(ME, {"type": "subscribe", "account": ACCOUNT,
                                     "kind": "price_below", "channel": "sms",
                                     "code": "600519", "price": "0"})
    assert error.code == "malformed" and "above zero" in error.message
    # the core's fax rule: digits only
    error = await world.refused(ME, {"type": "subscribe", "account": ACCOUNT, "kind": "fund",
                                     "channel": "fax", "fax": "+862155550000"})
    assert error.code == "malformed" and "fax" in error.message
    # a stock the back office does not know
    error = await world.refused(ME, {"type": "subscribe", "account": ACCOUNT,
                                     "kind": "price_above", "channel": "sms",
                                     "code": "999999", "price": "10"})
    assert error.code == "not_found"
    # an unknown customer
    error = await world.refused(ME, {"type": "subscribe", "account": "123", "kind": "fill",
                                     "channel": "sms"})
    assert error.code == "not_found"
    assert await rows(world.db, "SELECT id FROM subscriptions") == []


@pytest.mark.parametrize(("fields", "why"), [
    ({"kind": "price_above", "channel": "sms"}, "needs code and price"),
    ({"kind": "fill", "channel": "sms", "code": "600519", "price": "1"}, "price alerts only"),
    ({"kind": "fill", "channel": "fax"}, "fax"),
    ({"kind": "fill", "channel": "sms", "quiet_start": "22:00"}, "both"),
    ({"kind": "fill", "channel": "sms", "quiet_start": "24:00", "quiet_end": "07:00"},
     "quiet_start"),
    ({"kind": "price_above", "channel": "sms", "code": "600519", "price": 12.5}, "price"),
    ({"kind": "price_above", "channel": "sms", "code": "600519", "price": "1.234"}, "price"),
    ({"kind": "wealth", "channel": "sms"}, "kind"),
])
def test_subscribe_fields_are_checked(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        p.REQUEST.validate_python({"type": "subscribe", "account": ACCOUNT, **fields})


# -- inbound contacts ------------------------------------------------------------------------


async def add_contact(db: aiosqlite.Connection, contact_id: str, at: float, *,
                      channel: str = "fax", state: str = "new", agent_id: str = "") -> None:
    await db.execute(
        "INSERT INTO contacts (contact_id, channel, sender, subject, text, attachment, pages,"
        " received_at, state, agent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (contact_id, channel, "02155550000", f"subject {contact_id}", "x" * 5000,
         f"/var/lib/callcenter/fax/in/{contact_id}.pdf", 2, at, state, agent_id))
    await db.commit()


async def test_contacts_newest_first_with_the_file_name_only(world: World) -> None:
    await add_contact(world.db, "fax-0000001", 100.0)
    await add_contact(world.db, "mail-000002", 200.0, channel="email", state="done",
                      agent_id="1002")
    reply = await world.command(ME, {"type": "contacts"})
    newest, oldest = reply["contacts"]
    assert (newest["contact_id"], oldest["contact_id"]) == ("mail-000002", "fax-0000001")
    assert oldest["attachment_name"] == "fax-0000001.pdf"
    assert "/var/lib" not in json.dumps(reply)
    assert (len(oldest["text"]), oldest["text_truncated"], oldest["pages"]) == (4000, True, 2)
    assert (oldest["state"], oldest["agent_id"], oldest["received_at"]) == ("new", "", 100.0)
    only_new = await world.command(ME, {"type": "contacts", "state": "new"})
    assert [c["contact_id"] for c in only_new["contacts"]] == ["fax-0000001"]
    assert len((await world.command(ME, {"type": "contacts", "limit": 1}))["contacts"]) == 1


async def test_take_and_close_a_contact(world: World) -> None:
    await add_contact(world.db, "fax-0000001", 100.0)
    reply = await world.command(ME, {"type": "take_contact", "contact_id": "fax-0000001"})
    assert (reply["contact"]["state"], reply["contact"]["agent_id"]) == ("taken", "1001")
    assert world.pushes.of("role:agent", "contact") == [reply["contact"]]
    # taking it again is fine for its holder, not for a colleague
    await world.command(ME, {"type": "take_contact", "contact_id": "fax-0000001"})
    for kind in ("take_contact", "close_contact"):
        error = await world.refused(COLLEAGUE, {"type": kind, "contact_id": "fax-0000001"})
        assert error.code == "invalid_state" and "1001" in error.message
    done = await world.command(ME, {"type": "close_contact", "contact_id": "fax-0000001"})
    assert (done["contact"]["state"], done["contact"]["agent_id"]) == ("done", "1001")
    assert await rows(world.db, "SELECT state, agent_id FROM contacts") == [("done", "1001")]
    assert (await world.refused(ME, {"type": "take_contact",
                                     "contact_id": "fax-0000001"})).code == "invalid_state"
    assert (await world.refused(ME, {"type": "close_contact",
                                     "contact_id": "nope-0000001"})).code == "not_found"


async def test_a_supervisor_may_close_a_contact_someone_took(world: World) -> None:
    boss = AgentIdentity("9001", "Boss", p.Role.SUPERVISOR)
    await add_contact(world.db, "fax-0000001", 100.0, state="taken", agent_id="1001")
    reply = await world.command(boss, {"type": "close_contact", "contact_id": "fax-0000001"})
    assert (reply["contact"]["state"], reply["contact"]["agent_id"]) == ("done", "1001")
    # a new contact closed straight away is the closer's
    await add_contact(world.db, "mail-000002", 200.0)
    reply = await world.command(COLLEAGUE, {"type": "close_contact",
                                            "contact_id": "mail-000002"})
    assert (reply["contact"]["state"], reply["contact"]["agent_id"]) == ("done", "1002")


# -- pushes from the outbox relay ------------------------------------------------------------


def inbound(contact_id: str = "fax-0000009") -> Inbound:
    return Inbound(contact_id=contact_id, channel="fax", sender="02155550000",
                   subject="", text="", attachment=f"/srv/fax/in/{contact_id}.pdf", pages=3,
                   received_at=dt.datetime(2024, 6, 10, 6, 0, tzinfo=dt.UTC))


def update(ref: str, state: OutboxState = OutboxState.DELIVERED,
           account: str = ACCOUNT) -> DeliveryUpdate:
    return DeliveryUpdate("m" * 32, "sms", account, ref, state, DeliveryState.DELIVERED
                          if state is OutboxState.DELIVERED else None, "", 1_718_000_100.0)


async def test_an_inbound_contact_is_pushed_to_every_agent(world: World) -> None:
    world.backend.on_channel_event(ContactArrived(inbound()))
    [data] = world.pushes.of("role:agent", "contact")
    assert (data["contact_id"], data["state"], data["attachment_name"], data["pages"]) == (
        "fax-0000009", "new", "fax-0000009.pdf", 3)
    assert data["received_at"] == dt.datetime(2024, 6, 10, 6, 0, tzinfo=dt.UTC).timestamp()


async def test_a_delivery_goes_to_supervisors_and_the_agent_who_asked(world: World) -> None:
    reply = await world.command(ME, {"type": "send_message", "account": ACCOUNT,
                                     "channel": "sms", "template": "note", "text": "hi"})
    world.backend.on_channel_event(update(reply["ref"]))
    [to_boss] = world.pushes.of("role:supervisor", "delivery")
    assert to_boss == {"message_id": "m" * 32, "channel": "sms", "account_masked": "****0088",
                       "ref": reply["ref"], "state": "delivered", "report": "delivered",
                       "reason": "", "at": 1_718_000_100.0}
    assert world.pushes.of(ME.agent_id, "delivery") == [to_boss]
    assert world.pushes.of(COLLEAGUE.agent_id, "delivery") == []

    # a notice of the financial secretary has no requester: supervisors only
    world.backend.on_channel_event(update("", OutboxState.SENT))
    assert len(world.pushes.of("role:supervisor", "delivery")) == 2
    assert len(world.pushes.of(ME.agent_id, "delivery")) == 1


async def test_the_requester_of_an_earlier_run_is_found_in_the_request(world: World) -> None:
    reply = await world.command(ME, {"type": "send_message", "account": ACCOUNT,
                                     "channel": "sms", "template": "note", "text": "hi"})
    world.backend.channels.requested_by.clear()  # as after a restart
    world.backend.on_channel_event(update(reply["ref"], OutboxState.FAILED))
    async with asyncio.timeout(5):
        while not world.pushes.of(ME.agent_id, "delivery"):
            await asyncio.sleep(0.01)
    assert world.pushes.of(ME.agent_id, "delivery")[0]["state"] == "failed"
    # an IVR request names no agent: nobody but the supervisors
    world.backend.on_channel_event(update("12345678"))
    await asyncio.gather(*world.backend._tasks)
    assert len(world.pushes.of(ME.agent_id, "delivery")) == 1


async def test_a_supervisor_who_asked_is_told_once(world: World) -> None:
    world.acd.add_agent(AgentRecord("9001", "Boss", "supervisor", "PJSIP/9001"))
    boss = AgentIdentity("9001", "Boss", p.Role.SUPERVISOR)
    reply = await world.command(boss, {"type": "send_message", "account": ACCOUNT,
                                       "channel": "sms", "template": "note", "text": "hi"})
    world.backend.on_channel_event(update(reply["ref"]))
    assert len(world.pushes.of("role:supervisor", "delivery")) == 1
    assert world.pushes.of("9001", "delivery") == []


def test_the_new_commands_are_the_agents() -> None:
    for kind in ("deliveries", "subscriptions", "subscribe", "unsubscribe", "contacts",
                 "take_contact", "close_contact"):
        assert kind in p.ALLOWED[p.Role.AGENT] and kind in p.ALLOWED[p.Role.ADMIN]


# -- presence and logging out (issue 9, finding 8) ---------------------------------------------


def gone(world: World, agent_id: str) -> list[dict[str, Any]]:
    return [d for d in world.pushes.of("role:supervisor", "presence")
            if d["agent_id"] == agent_id and d["console"] == "gone"]


async def test_logging_out_ends_every_session_of_the_agent(world: World) -> None:
    await world.backend.snapshot(ME)
    await world.command(ME, {"type": "set_state", "state": "logged_out", "reason": ""})
    assert world.seat(ME.agent_id).seat.state is SeatState.LOGGED_OUT
    assert world.pushes.ended == [(ME.agent_id, "logged out in another session")]


async def test_a_refused_logout_ends_no_session(world: World) -> None:
    await world.backend.snapshot(ME)
    world.give_call(ME.agent_id)
    await world.refused(ME, {"type": "set_state", "state": "logged_out", "reason": ""})
    assert world.pushes.ended == []


async def test_a_ready_seat_whose_console_is_gone_goes_not_ready(world: World) -> None:
    world.backend.presence_grace_s = 0.01
    await world.backend.snapshot(ME)
    await world.command(ME, {"type": "set_state", "state": "ready", "reason": ""})
    await world.backend.session_closed(ME, 1)  # another session is still open: nothing
    await world.backend.session_closed(ME, 0)
    [event] = await world.pushes.until(lambda: gone(world, ME.agent_id))
    assert event["seat"] == "not_ready"
    rt = world.seat(ME.agent_id)
    assert (rt.seat.state, rt.seat.reason) == (SeatState.NOT_READY, "console gone")
    await world.acd.flush()
    [last] = await rows(world.db, "SELECT to_state, reason, by FROM seat_log"
                                  " ORDER BY id DESC LIMIT 1")
    assert last == ("not_ready", "console gone", "system")
    assert "console gone" not in (await world.backend.snapshot(ME))["reasons"]


async def test_a_console_back_within_the_grace_keeps_the_seat(world: World) -> None:
    world.backend.presence_grace_s = 0.05
    for agent in (ME, COLLEAGUE):
        await world.backend.snapshot(agent)
        await world.command(agent, {"type": "set_state", "state": "ready", "reason": ""})
    await world.backend.session_closed(ME, 0)
    await world.backend.snapshot(ME)  # a reload: the page logs in again
    await world.backend.session_closed(COLLEAGUE, 0)  # armed later, with the same grace
    await world.pushes.until(lambda: gone(world, COLLEAGUE.agent_id))
    assert world.seat(COLLEAGUE.agent_id).seat.state is SeatState.NOT_READY
    assert world.seat(ME.agent_id).seat.state is SeatState.READY
    assert gone(world, ME.agent_id) == []


async def test_wrap_up_without_a_console_goes_not_ready(world: World) -> None:
    world.backend.presence_grace_s = 0.01
    await world.backend.snapshot(ME)
    world.give_call(ME.agent_id, state=SeatState.WRAP_UP, last=True)
    world.acd._arm_wrap_up(world.seat(ME.agent_id))
    await world.backend.session_closed(ME, 0)
    await world.pushes.until(lambda: gone(world, ME.agent_id))
    rt = world.seat(ME.agent_id)
    assert (rt.seat.state, rt.seat.reason) == (SeatState.NOT_READY, "console gone")
    assert rt.wrap_up_due is None


@pytest.mark.parametrize("wrap_up_s", [45.0, 0.0])
async def test_a_call_is_not_cut_and_the_seat_goes_not_ready_after_it(
        world: World, wrap_up_s: float) -> None:
    world.acd.settings = world.acd.settings.model_copy(update={"wrap_up_s": wrap_up_s})
    world.backend.presence_grace_s = 0.01
    await world.backend.snapshot(ME)
    call = world.give_call(ME.agent_id)
    await world.backend.session_closed(ME, 0)
    [event] = await world.pushes.until(lambda: gone(world, ME.agent_id))
    assert event["seat"] == "after_call"
    rt = world.seat(ME.agent_id)
    assert rt.seat.state is SeatState.ON_CALL and rt.call is call
    assert world.ami.actions == []  # nothing hung up
    waiter = world.acd.enqueue("c-2", "general", "PJSIP/trunk-0002", "c-2-uid", {})
    world.ami.feed(Hangup(channel(f"PJSIP/{ME.agent_id}-0001", call.agent_uniqueid), 16,
                          "Normal Clearing"))
    await world.pushes.until(lambda: rt.seat.state is SeatState.NOT_READY)
    assert rt.seat.reason == "console gone"
    assert waiter.ringing == "" and seat_call(rt) is None  # the next caller was not offered
    assert rt.wrap_up_due is None


async def test_after_a_restart_seats_in_service_get_the_grace_to_log_in(world: World) -> None:
    world.acd.set_state(ME.agent_id, "ready")  # as restored from the database: no console
    world.acd.set_state(COLLEAGUE.agent_id, "not_ready", "meal")
    world.backend.watch_presence(0.01)
    await world.pushes.until(lambda: gone(world, ME.agent_id))
    assert world.seat(ME.agent_id).seat.reason == "console gone"
    assert world.seat(COLLEAGUE.agent_id).seat.reason == "meal"
    assert gone(world, COLLEAGUE.agent_id) == []


async def test_a_seat_with_no_console_for_long_is_logged_out(world: World,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    """A seat left not ready ("login", as S9001 was) with its console gone is logged out after
    ``absent_logout_s``, by system, with a log line and a presence event; a console back in
    time keeps the seat."""
    world.backend.presence_grace_s, world.backend.absent_logout_s = 0.01, 0.05
    for agent in (ME, COLLEAGUE):
        await world.backend.snapshot(agent)  # logged in: not ready, "login"
        await world.backend.session_closed(agent, 0)
    await world.backend.snapshot(COLLEAGUE)  # back within the time
    [event] = await world.pushes.until(
        lambda: [d for d in gone(world, ME.agent_id) if d["seat"] == "log_out"])
    assert world.seat(ME.agent_id).seat.state is SeatState.LOGGED_OUT
    await world.acd.flush()
    [last] = await rows(world.db, "SELECT agent_id, from_state, to_state, by FROM seat_log"
                                  " ORDER BY id DESC LIMIT 1")
    assert last == (ME.agent_id, "not_ready", "logged_out", "system")
    assert f"console of agent {ME.agent_id} gone for 0 s: seat logged out (it was not_ready)" \
        in caplog.text
    assert event["since"] == world.backend.presence.gone_since(ME.agent_id)
    colleague = world.seat(COLLEAGUE.agent_id).seat
    assert (colleague.state, colleague.reason) == (SeatState.NOT_READY, "login")
    assert not [d for d in gone(world, COLLEAGUE.agent_id) if d["seat"] == "log_out"]


async def test_after_a_restart_a_seat_with_no_console_is_logged_out_after_its_call(
        world: World) -> None:
    """At start every seat logged in gets the time to see its console back, a not-ready one
    too (it gets no grace: it takes no calls); a seat on a call is logged out once the call is
    over, never during it."""
    world.acd.set_state(ME.agent_id, "not_ready", "login")  # as restored: no console
    world.acd.set_state(COLLEAGUE.agent_id, "ready")
    call = world.give_call(COLLEAGUE.agent_id, "c-2")
    world.backend.watch_presence(0.01, 0.03)
    await world.pushes.until(lambda: world.seat(ME.agent_id).seat.state
                             is SeatState.LOGGED_OUT)
    colleague = world.seat(COLLEAGUE.agent_id)
    await world.pushes.until(lambda: gone(world, COLLEAGUE.agent_id))
    assert colleague.seat.state is SeatState.ON_CALL and world.ami.actions == []
    world.ami.feed(Hangup(channel(f"PJSIP/{COLLEAGUE.agent_id}-0001", call.agent_uniqueid),
                          16, "Normal Clearing"))
    await world.pushes.until(lambda: colleague.seat.state is SeatState.LOGGED_OUT)
    assert [d["seat"] for d in gone(world, COLLEAGUE.agent_id)] == ["after_call", "log_out"]


async def test_after_a_long_downtime_the_logout_counts_from_the_previous_run(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The consoles went when the previous run stopped (its last heartbeat): a seat left logged
    in over a night is logged out once the grace is over, not an hour into the next run; one
    whose engine was down a moment keeps the rest of its hour."""
    world.acd.set_state(ME.agent_id, "not_ready", "login")  # as restored: no console
    world.acd.set_state(COLLEAGUE.agent_id, "not_ready", "login")
    now = world.acd.clock()
    world.backend.watch_presence(0.02, 3600, gone_at=now - 4 * 3600)
    timers = world.backend._logout_timers
    assert timers[ME.agent_id].when() - asyncio.get_running_loop().time() < 1
    await world.pushes.until(lambda: world.seat(ME.agent_id).seat.state
                             is SeatState.LOGGED_OUT)
    await world.pushes.until(lambda: world.seat(COLLEAGUE.agent_id).seat.state
                             is SeatState.LOGGED_OUT)
    assert "gone for 14400 s: seat logged out" in caplog.text
    world.acd.set_state(ME.agent_id, "not_ready", "login")
    world.backend.presence.opened(ME.agent_id)
    world.backend.watch_presence(0.02, 3600, gone_at=world.acd.clock() - 10)
    left = timers[ME.agent_id].when() - asyncio.get_running_loop().time()
    assert 3580 < left <= 3590
    assert world.backend.presence.gone_since(ME.agent_id) == pytest.approx(
        world.acd.clock() - 10, abs=1)


def test_the_logout_after_a_restart_counts_from_when_the_consoles_went() -> None:
    presence = Presence()
    presence.closed("a", 0, 1000.0)
    assert presence.logout_in("a", 3600, 60, now=1000.0) == 3600
    assert presence.logout_in("a", 3600, 60, now=1600.0) == 3000
    assert presence.logout_in("a", 3600, 60, now=1000.0 + 4 * 3600) == 60  # the grace first
    assert presence.logout_in("b", 3600, 60, now=5.0) == 3600  # not gone: from now


async def test_absent_logout_zero_never_logs_out(world: World) -> None:
    world.acd.set_state(ME.agent_id, "not_ready", "login")
    world.backend.watch_presence(0.01, 0)
    world.backend.presence_grace_s = 0.01
    await asyncio.sleep(0.05)
    assert world.seat(ME.agent_id).seat.state is SeatState.NOT_READY


def test_presence_rules() -> None:
    presence = Presence()
    assert not presence.closed("a", 1, 0.0) and not presence.absent("a")
    assert presence.closed("a", 0, 5.0) and presence.gone_since("a") == 5.0
    assert presence.expired("a", SeatState.ON_HOLD) is PresenceAction.AFTER_CALL
    assert presence.seat_moved("a", SeatState.ON_CALL) is PresenceAction.NONE
    assert presence.seat_moved("a", SeatState.WRAP_UP) is PresenceAction.SOON
    assert presence.seat_moved("a", SeatState.WRAP_UP, settled=True) is PresenceAction.NOT_READY
    assert presence.seat_moved("a", SeatState.NOT_READY) is PresenceAction.NONE  # done
    assert presence.seat_moved("a", SeatState.READY) is PresenceAction.NONE
    presence.expired("a", SeatState.RINGING)
    # a supervisor (a person) makes it ready: theirs to decide
    assert presence.seat_moved("a", SeatState.READY, chosen=True) is PresenceAction.NONE
    presence.expired("a", SeatState.ON_CALL)
    assert presence.seat_moved("a", SeatState.READY) is PresenceAction.NOT_READY
    assert presence.absent_too_long("a", SeatState.ON_HOLD) is PresenceAction.LATER
    for state in (SeatState.NOT_READY, SeatState.WRAP_UP, SeatState.READY):
        assert presence.absent_too_long("a", state) is PresenceAction.LOG_OUT
    assert presence.absent_too_long("a", SeatState.LOGGED_OUT) is PresenceAction.NONE
    presence.opened("a")
    assert not presence.absent("a")
    assert presence.expired("a", SeatState.READY) is PresenceAction.NONE
    assert presence.absent_too_long("a", SeatState.NOT_READY) is PresenceAction.NONE


# -- the shift's bugs (issue 11), each with its root ---------------------------------------------


async def test_saving_the_wrap_up_under_a_backlog_answers_saved(world: World) -> None:
    """Saving the wrap-up makes the seat ready and, with callers waiting, at once ringing: the
    reply is "saved" (it was ``invalid_state``: the second READY met a ringing seat)."""
    rt = world.seat(ME.agent_id)
    world.give_call(ME.agent_id, "c-1", state=SeatState.WRAP_UP, last=True)
    world.acd.enqueue("c-2", "general", "PJSIP/trunk-0002", "c-2-uid", {})
    assert seat_call(rt) is None  # nobody ready: the caller waits
    reply = await world.command(ME, {"type": "wrap_up", "call_id": "c-1",
                                     "disposition": "resolved", "notes": ""})
    assert reply["saved"] is True
    assert rt.seat.state is SeatState.RINGING and rt.call is not None
    assert rt.call.call_id == "c-2"


async def end_answered_call(world: World, agent_id: str = ME.agent_id) -> SeatRuntime:
    """A connected call whose agent leg hangs up: the seat goes to wrap-up."""
    call = world.give_call(agent_id, "c-1")
    world.ami.feed(Hangup(channel(call.agent_channel, call.agent_uniqueid), 16,
                          "Normal Clearing"))
    rt = world.seat(agent_id)
    assert rt.seat.state is SeatState.WRAP_UP and rt.last_call is call
    return rt


async def test_the_disposition_is_required_before_ready(world: World) -> None:
    rt = await end_answered_call(world)
    [ended] = world.pushes.of(ME.agent_id, "call_ended")
    assert ended["disposition_required"] is True
    refused = await world.refused(ME, {"type": "set_state", "state": "ready"})
    assert refused.code == "disposition_required"
    assert rt.seat.state is SeatState.WRAP_UP
    # the wrap-up time ends: the seat is not made ready with the form empty
    world.acd.wrap_up_expired(ME.agent_id)
    assert rt.seat.state is SeatState.WRAP_UP
    [overdue] = world.pushes.of(ME.agent_id, "wrap_up_overdue")
    assert overdue["call_id"] == "c-1"
    assert world.pushes.of("role:supervisor", "wrap_up_overdue") == [overdue]
    # a supervisor may still force the seat; the agent saves the form
    reply = await world.command(ME, {"type": "wrap_up", "call_id": "c-1",
                                     "disposition": "resolved", "notes": "ok"})
    assert reply["saved"] is True and seat_state(rt) is SeatState.READY


async def test_without_required_disposition_the_timer_makes_the_seat_ready(
        world: World) -> None:
    world.acd.settings = world.acd.settings.model_copy(update={"require_disposition": False})
    rt = await end_answered_call(world)
    [ended] = world.pushes.of(ME.agent_id, "call_ended")
    assert ended["disposition_required"] is False
    world.acd.wrap_up_expired(ME.agent_id)
    assert rt.seat.state is SeatState.READY


async def test_a_supervisor_forces_a_seat_out_of_an_unsaved_wrap_up(world: World) -> None:
    rt = await end_answered_call(world)
    world.acd.set_state(ME.agent_id, "ready", by="S1", force=True)
    assert rt.seat.state is SeatState.READY and rt.disposition_due == ""


async def test_call_offered_is_the_first_event_and_the_customer_follows(
        world: World) -> None:
    """The pop's IVR part is pushed as the phone starts ringing; the back office's part
    follows (it was all awaited first, so ``call_connected`` could come before the pop)."""
    release = asyncio.Event()
    slow = world.backoffice.customer

    async def customer(account: str) -> Any:
        await release.wait()
        return await slow(account)

    world.backoffice.customer = customer  # type: ignore[method-assign]
    world.acd.set_state(ME.agent_id, "ready")
    world.acd.enqueue("c-9", "general", "PJSIP/trunk-0009", "c-9-uid",
                      {"customer.account": ACCOUNT, "customer.tier": "gold",
                       "path": "main>quote"})
    world.acd.notify(CallConnected(ME.agent_id, "c-9", True))
    names = [kind for who, kind, _ in world.pushes.events
             if who == ME.agent_id and kind.startswith("call_")]
    assert names == ["call_offered", "call_connected"]
    [pop] = world.pushes.of(ME.agent_id, "call_offered")
    assert pop["customer"] is None and pop["customer_pending"] is True
    assert pop["ivr"]["path"] == "main>quote"
    release.set()
    [part] = await world.pushes.until(lambda: world.pushes.of(ME.agent_id, "call_customer"))
    assert part["call_id"] == "c-9" and part["customer"]["account_masked"].endswith(
        ACCOUNT[-4:])
    assert world.backend.pops["c-9"]["customer_pending"] is False


async def test_a_vip_caller_whose_manager_is_logged_out_is_served_at_once(
        world: World) -> None:
    """Gold caller, manager logged out: no 20 s manager stage, no VIP-team stage (nobody in
    it): the ready colleague rings at once (it waited 40 s)."""
    colleague = world.seat(COLLEAGUE.agent_id)
    world.acd.set_state(COLLEAGUE.agent_id, "ready")
    assert world.seat(ME.agent_id).seat.state is SeatState.LOGGED_OUT
    world.acd.enqueue("c-7", "general", "PJSIP/trunk-0007", "c-7-uid",
                      {"customer.tier": "gold"}, manager=ME.agent_id)
    assert colleague.seat.state is SeatState.RINGING
    assert colleague.call is not None and colleague.call.call_id == "c-7"


async def test_a_vip_caller_waits_for_a_manager_on_a_call(world: World) -> None:
    world.give_call(ME.agent_id, "c-1")  # the manager is busy, but present
    colleague = world.seat(COLLEAGUE.agent_id)
    world.acd.set_state(COLLEAGUE.agent_id, "ready")
    waiter = world.acd.enqueue("c-7", "general", "PJSIP/trunk-0007", "c-7-uid",
                               {"customer.tier": "gold"}, manager=ME.agent_id)
    assert colleague.seat.state is SeatState.READY and not waiter.ringing
    [general] = [q for q in world.backend.wallboard()["waiting"] if q["name"] == "general"]
    assert general["waiting"][0]["reason"]["code"] == "manager_only"


async def test_recent_contacts_say_the_disposition_without_a_dangling_colon(
        world: World) -> None:
    """The screen pop's recent contacts: 'resolved: notes', or just 'resolved' without notes."""
    db = world.backend.screen.db
    await db.execute("INSERT INTO wrapups (call_id, agent_id, account, disposition, notes, at)"
                     " VALUES ('c-1', 'A1', '10000001', 'resolved', '', 1.0),"
                     " ('c-2', 'A1', '10000001', 'callback', '周五回电', 2.0)")
    await db.commit()
    contacts = await world.backend.screen.recent_contacts("10000001")
    assert [c["summary"] for c in contacts] == ["callback: 周五回电", "resolved"]


async def test_a_burst_of_changes_is_one_wallboard_and_one_queue_push(world: World) -> None:
    """Ten queue changes and three seat moves in one turn of the loop: supervisors get one
    wallboard and agents one queue figure, later (not one per change); a change after that
    push is pushed again."""
    from callcenter.acd.notices import QueuesChanged, SeatChanged

    def boards() -> int:
        return len(world.pushes.of("role:supervisor", "wallboard"))

    seat = dict(world.seat(ME.agent_id).data())
    for _ in range(10):
        world.backend.on_acd(QueuesChanged())
    for _ in range(3):
        world.backend.on_acd(SeatChanged(ME.agent_id, seat, str(seat["state"])))
    assert boards() == 0
    await world.pushes.until(lambda: boards() == 1)
    assert len(world.pushes.of("role:agent", "queues")) == 1
    world.backend.on_acd(SeatChanged(ME.agent_id, seat, str(seat["state"])))
    await world.pushes.until(lambda: boards() == 2)
    assert len(world.pushes.of("role:agent", "queues")) == 1   # no queue change since


async def test_the_wallboard_says_a_seats_call_by_its_masked_caller_and_talk_time(
        world: World) -> None:
    """Supervisors read the caller's masked number and since when they talk, not only the
    internal call id; the whole number never leaves the engine."""
    world.acd.set_state(COLLEAGUE.agent_id, "ready")
    world.acd.enqueue("c-7", "general", "PJSIP/trunk-0007", "c-7-uid", {}, phone=PHONE)
    call = world.give_call(ME.agent_id, "c-1", phone="13911112222")
    seats = {s["agent_id"]: s for s in world.backend.wallboard()["seats"]}
    assert seats[ME.agent_id] | {"since": 0} == {
        **world.seat(ME.agent_id).data(), "since": 0,
        "caller": "*******2222", "talking_since": call.connected_at}
    ringing = seats[COLLEAGUE.agent_id]
    assert (ringing["state"], ringing["call_id"]) == ("ringing", "c-7")
    assert (ringing["caller"], ringing["talking_since"]) == ("*******8000", None)
    assert PHONE not in json.dumps(world.backend.wallboard())
    world.seat(ME.agent_id).call = None
    me = next(s for s in world.backend.wallboard()["seats"] if s["agent_id"] == ME.agent_id)
    assert (me["call_id"], me["caller"], me["talking_since"]) == ("", "", None)
