"""The ACD through the real Asterisk: callers pass the IVR, wait in [queue-hold], agents' phones
(simulated, Local channels) ring and are bridged; priorities, VIP stages, ring-no-answer,
call-backs, abandons and a restart of the engine while people wait and talk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.acd.notices import Announced, Notice
from callcenter.acd.seat import SeatState
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.acd_helpers import (
    GOLD_PHONE,
    ORDINARY_PHONE,
    PLATINUM_PHONE,
    Clock,
    Factory,
    agent,
    engines_for,
    press_while_waiting,
    queue_log,
    queue_to_agent,
    until,
    waiting_ids,
)

pytestmark = pytest.mark.integration



def acd_settings(tmp_path: Path, **queue: Any) -> Settings:
    general = {"name": "general", "announce_every_s": 0, "manager_first_s": 0,
               "vip_team_s": 0, **queue}
    return load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                         backoffice_path=tmp_path / "backoffice.db",
                         console={"enabled": False, "port": 0},
                         acd={"queues": [general], "ring_timeout_s": 3, "wrap_up_s": 1,
                              "require_disposition": False})


@pytest.fixture
async def start_engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Factory]:
    async with engines_for(lambda **queue: acd_settings(tmp_path, **queue)) as start:
        yield start


def seat_state(engine: Engine, agent_id: str) -> SeatState:
    assert engine.acd is not None
    return engine.acd.seats[agent_id].seat.state


async def test_a_platinum_caller_who_arrives_later_is_served_first(
        start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")])
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    ordinary = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    platinum = await queue_to_agent(engine, caller, PLATINUM_PHONE)
    assert engine.acd is not None
    engine.acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.ON_CALL, what="on call")
    connects = await queue_log(engine, "connect")
    assert [c["call_id"] for c in connects] == [platinum]
    assert connects[0]["tier"] == "platinum" and connects[0]["agent_id"] == "A1"
    assert waiting_ids(engine) == [ordinary]


async def test_aging_lets_an_ordinary_caller_through_in_the_end(start_engine: Factory) -> None:
    clock = Clock()
    # platinum's head start is 30 s of waiting: an ordinary caller who waited 40 s goes first
    engine = await start_engine([agent("A1", "1001")], clock,
                                tier_weights={"platinum": 30, "gold": 20, "silver": 10,
                                              "ordinary": 0})
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    ordinary = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    clock.advance(40)
    await queue_to_agent(engine, caller, PLATINUM_PHONE)
    assert engine.acd is not None
    engine.acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.ON_CALL, what="on call")
    assert [c["call_id"] for c in await queue_log(engine, "connect")] == [ordinary]


async def test_a_vip_rings_the_manager_first_then_the_vip_team(start_engine: Factory) -> None:
    clock = Clock()
    agents = [agent("A1001", "1001", vip=True), agent("A1002", "1002", vip=True),
              agent("A2001", "2001")]
    engine = await start_engine(agents, clock, manager_first_s=20, vip_team_s=40)
    acd = engine.acd
    assert acd is not None
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    # The gold customer's manager is A1001 (from the back office, by caller ID).
    acd.set_state("A1002", "ready")
    acd.set_state("A2001", "ready")
    gold = await queue_to_agent(engine, caller, GOLD_PHONE)
    assert acd.find_waiter(call_id=gold) is not None
    assert acd.find_waiter(call_id=gold).manager == "A1001"  # type: ignore[union-attr]
    # The manager is logged out: their stage is skipped at once (no 20 s of waiting while
    # agents are free) and the VIP team (A1002), not the general agent, gets it. A manager who
    # is present but busy keeps their stage (tests/unit/test_acd_routing.py).
    await until(engine, lambda: seat_state(engine, "A1002") is SeatState.ON_CALL, what="team")
    assert seat_state(engine, "A2001") is SeatState.READY
    # A second gold caller while the manager is ready: the manager rings at once.
    acd.set_state("A1001", "ready")
    second = await queue_to_agent(engine, caller, GOLD_PHONE)
    await until(engine, lambda: seat_state(engine, "A1001") is SeatState.ON_CALL, what="mgr")
    connects = await queue_log(engine, "connect")
    assert [(c["call_id"], c["agent_id"]) for c in connects] == [(gold, "A1002"),
                                                                 (second, "A1001")]


async def test_ring_no_answer_makes_the_seat_not_ready_and_the_caller_keeps_the_head(
        start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "3001", "agent-noanswer"), agent("A2", "1002")])
    acd = engine.acd
    assert acd is not None
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    first = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    second = await queue_to_agent(engine, caller, PLATINUM_PHONE.replace("4", "9"))
    acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.NOT_READY, 20, "RNA")
    assert acd.seats["A1"].seat.reason == "no answer"
    assert waiting_ids(engine) == [first, second]
    assert [r["agent_id"] for r in await queue_log(engine, "noanswer")] == ["A1"]
    acd.set_state("A2", "ready")
    await until(engine, lambda: seat_state(engine, "A2") is SeatState.ON_CALL, what="A2")
    assert [c["call_id"] for c in await queue_log(engine, "connect")] == [first]


async def test_an_abandoned_call_is_counted(start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")])
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    call_id = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    assert engine.ami is not None and engine.controller is not None
    await engine.ami.action("Hangup", Channel=engine.controller.model.channels[call_id].name)
    await until(engine, lambda: not waiting_ids(engine), what="abandon")
    abandons = await queue_log(engine, "abandon")
    assert [a["call_id"] for a in abandons] == [call_id]
    assert abandons[0]["wait_s"] is not None and abandons[0]["wait_s"] >= 0
    assert engine.console_backend is not None
    figures = engine.console_backend.queue_figures()
    assert figures[0]["abandoned"] == 1 and figures[0]["waiting"] == 0


async def test_a_callback_keeps_its_place_and_calls_the_agent_then_the_customer(
        start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")])
    acd = engine.acd
    assert acd is not None and engine.ami is not None and engine.controller is not None
    caller = SimCaller(engine.ami)
    first = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    # The caller presses 1 while waiting (DTMF sent into the call like a phone would).
    await press_while_waiting(engine, first)
    await until(engine, lambda: acd.find_waiter(call_id=first) is not None
                and acd.find_waiter(call_id=first).callback, what="call-back")  # type: ignore[union-attr]
    await caller.wait_end(first, 30)  # the engine read the reference and hung up
    later = await queue_to_agent(engine, caller, PLATINUM_PHONE.replace("4", "8"))
    assert waiting_ids(engine) == [first, later]
    dialled: list[str] = []

    def on_event(ev: object) -> None:
        from callcenter.telephony.ami_events import DialBegin
        if isinstance(ev, DialBegin):
            dialled.append(ev.dest.channel)

    engine.ami.add_handler(on_event)
    acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.ON_CALL, what="on call")
    await until(engine, lambda: any(f"{ORDINARY_PHONE}@outbound" in d for d in dialled),
                what="customer dialled")
    connects = await queue_log(engine, "connect")
    assert [c["call_id"] for c in connects] == [first]
    assert waiting_ids(engine) == [later]
    assert engine.db is not None
    async with engine.db.execute("SELECT state FROM service_requests WHERE kind = 'callback'"
                                 " AND phone = ?", (ORDINARY_PHONE,)) as cur:
        assert [r[0] for r in await cur.fetchall()] == ["done"]


async def test_a_restart_while_callers_wait_and_agents_talk(start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001"), agent("A2", "1002")])
    acd = engine.acd
    assert acd is not None
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    talking = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.ON_CALL, what="on call")
    acd.set_state("A2", "not_ready", "break")
    first = await queue_to_agent(engine, caller, "13700000001")
    second = await queue_to_agent(engine, caller, "13700000002")
    await engine.stop()  # the controller goes away; Asterisk keeps every call

    engine2 = await start_engine([])
    acd2 = engine2.acd
    assert acd2 is not None
    assert waiting_ids(engine2) == [first, second]
    assert seat_state(engine2, "A1") is SeatState.ON_CALL
    assert acd2.seats["A1"].call is not None
    assert seat_state(engine2, "A2") is SeatState.NOT_READY
    acd2.set_state("A2", "ready")
    await until(engine2, lambda: seat_state(engine2, "A2") is SeatState.ON_CALL, what="A2")
    assert [c["call_id"] for c in await queue_log(engine2, "connect")][-1] == first
    # The call that survived the restart still ends properly: the seat wraps up.
    await acd2_hangup(engine2, "A1")
    await until(engine2, lambda: seat_state(engine2, "A1") in (SeatState.WRAP_UP,
                                                               SeatState.READY), what="wrap")
    assert talking in [c["call_id"] for c in await queue_log(engine2, "connect")]


async def acd2_hangup(engine: Engine, agent_id: str) -> None:
    assert engine.acd is not None and engine.ami is not None
    call = engine.acd.seats[agent_id].call
    assert call is not None
    await engine.ami.action("Hangup", Channel=call.agent_uniqueid)


async def test_waiting_callers_hear_their_position_but_the_head_of_the_line_does_not(
        start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")], announce_every_s=2)
    assert engine.acd is not None
    heard: dict[str, str] = {}
    times: dict[str, int] = {}

    def on_acd(notice: Notice) -> None:
        if isinstance(notice, Announced):
            heard[notice.call_id] = notice.files
            times[notice.call_id] = times.get(notice.call_id, 0) + 1

    engine.acd.listeners.append(on_acd)
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    head = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    second = await queue_to_agent(engine, caller, "13700000002")
    await until(engine, lambda: second in heard, 20, "announcement")
    files = heard[second].split("&")
    # one caller ahead, then the expected wait and the call-back offer
    assert files[:3] == ["callcenter/zh/queue_ahead", "callcenter/zh/num/1",
                         "callcenter/zh/queue_callers"]
    assert files[-1] == "callcenter/zh/queue_callback_offer"
    # The caller heard it and went back to waiting: the next announcement finds them there.
    await until(engine, lambda: times.get(second, 0) >= 2, 20, "second announcement")
    assert head not in heard
    assert waiting_ids(engine) == [head, second]  # the announcements did not lose the place


async def test_a_closed_queue_offers_a_callback_served_when_it_opens(
        start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")], hours="agents")
    acd = engine.acd
    assert acd is not None and engine.ami is not None and engine.controller is not None
    acd.is_open = lambda _name: False  # after hours (the schedule itself is unit-tested)
    told: list[str] = []
    acd.listeners.append(lambda n: told.append(n.call_id)
                         if isinstance(n, Announced) and "agent_closed_queue" in n.files
                         else None)
    acd.set_state("A1", "ready")
    caller = SimCaller(engine.ami)
    call_id = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    await until(engine, lambda: call_id in told, 20, "closed announcement")
    assert await queue_log(engine, "ring") == []  # nobody rings while closed
    await press_while_waiting(engine, call_id, application="Read")
    await until(engine, lambda: acd.find_waiter(call_id=call_id) is not None
                and acd.find_waiter(call_id=call_id).callback, what="call-back")  # type: ignore[union-attr]
    await caller.wait_end(call_id, 30)
    # the queue opens: the agent is rung first, then the customer is called
    acd.is_open = lambda _name: True
    acd.dispatch()
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.ON_CALL, what="on call")
    assert [c["call_id"] for c in await queue_log(engine, "connect")] == [call_id]
    assert [r["call_id"] for r in await queue_log(engine, "abandon")] == []


async def test_a_long_wait_is_told_once_with_the_callback_offer(start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")], max_wait_s=1)
    acd = engine.acd
    assert acd is not None
    told: list[str] = []
    acd.listeners.append(lambda n: told.append(n.files) if isinstance(n, Announced) else None)
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    call_id = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    await until(engine, lambda: told, 20, "long-wait announcement")
    assert told[0].split("&") == ["callcenter/zh/queue_long_wait",
                                  "callcenter/zh/queue_callback_offer"]
    assert acd.find_waiter(call_id=call_id) is not None  # still waiting, place kept
    assert acd.find_waiter(call_id=call_id).told_long_wait  # type: ignore[union-attr]


async def test_an_agent_logs_in_from_another_phone(start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")])
    acd = engine.acd
    assert acd is not None and engine.ami is not None
    from callcenter.errors import ConsoleError

    with pytest.raises(ConsoleError):
        acd.use_phone("A1", "PJSIP/1001;evil")
    acd.use_phone("A1", "Local/7001@agent-answer")  # hot-desking for this session
    rung: list[str] = []

    def on_event(ev: object) -> None:
        from callcenter.telephony.ami_events import NewChannel
        if isinstance(ev, NewChannel) and ev.info.channel.startswith("Local/7001@"):
            rung.append(ev.info.channel)

    engine.ami.add_handler(on_event)
    caller = SimCaller(engine.ami)
    await queue_to_agent(engine, caller, ORDINARY_PHONE)
    acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.ON_CALL, what="on call")
    call = acd.seat("A1").call
    assert call is not None and call.agent_channel.startswith("Local/7001@agent-answer-")
    # Asterisk does not order a channel's Newchannel (stasis) before the OriginateResponse that
    # answered it: on a loaded machine the event may come a moment after the seat is on the call
    await until(engine, lambda: rung, what="the hot-desk phone's channel event")
    assert all(ch.startswith("Local/7001@agent-answer-") for ch in rung)
