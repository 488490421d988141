"""Call controls through the real Asterisk: hold and resume, recording pause, blind transfers
to a queue and to a number, a consultation, a conference and a supervisor listening in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.acd.control import CallControl
from callcenter.acd.seat import SeatState
from callcenter.acd.targets import Target
from callcenter.config import load_settings
from callcenter.engine import Engine
from callcenter.errors import ConsoleError
from callcenter.telephony.ami import Response
from callcenter.telephony.ami_events import AmiEvent, DialBegin, OtherEvent
from callcenter.telephony.pbx import Pbx
from tests.integration.acd_helpers import (
    add_agents,
    agent,
    channel_row,
    check_queue_log,
    direct_caller,
    hang_up_all,
    queue_log,
    until,
    waiting_ids,
)
from tests.integration.conftest import trading_clock, wait_no_channels

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Engine]:
    settings = load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                             backoffice_path=tmp_path / "backoffice.db",
                             console={"enabled": False},
                             acd={"wrap_up_s": 0, "queue_log_file": tmp_path / "queue_log",
                                  "queues": [
                                 {"name": "general", "announce_every_s": 0},
                                 {"name": "english", "announce_every_s": 0}]})
    await add_agents(settings, [agent("A1", "1001"), agent("A2", "1002"),
                                agent("S1", "9001", role="supervisor")])
    eng = Engine(settings, backoffice_clock=trading_clock)
    await eng.start()
    try:
        yield eng
    finally:
        leftovers: list[str] = []
        if eng.ami is not None:
            await hang_up_all(eng)
            leftovers = await wait_no_channels(eng.ami)
        await eng.stop()
        assert leftovers == []
    check_queue_log(settings.queue_log_path)  # transfers, holds: still Asterisk's format


def state(engine: Engine, agent_id: str) -> SeatState:
    assert engine.acd is not None
    return engine.acd.seats[agent_id].seat.state


async def connected(engine: Engine, agent_id: str = "A1") -> tuple[str, str]:
    assert engine.acd is not None
    call_id, name = await direct_caller(engine)
    engine.acd.set_state(agent_id, "ready")
    await until(engine, lambda: state(engine, agent_id) is SeatState.ON_CALL, 15, "on call")
    await until(engine, lambda: engine.acd.seats[agent_id].call.agent_channel,  # type: ignore[union-attr]
                10, "agent channel known")
    return call_id, name


async def test_hold_resume_and_recording_pause(engine: Engine) -> None:
    control = CallControl(engine.acd)  # type: ignore[arg-type]
    call_id, _ = await connected(engine)
    caller = f"{call_id}-b"
    await control.hold("A1")
    assert state(engine, "A1") is SeatState.ON_HOLD
    row = await channel_row(engine, caller)
    assert (row.get("Context"), row.get("Application")) == ("acd-hold", "MusicOnHold")
    with pytest.raises(ConsoleError) as refused:
        await control.hold("A1")
    assert refused.value.code == "invalid_state"
    await control.resume("A1")
    assert state(engine, "A1") is SeatState.ON_CALL
    await until(engine, lambda: engine.controller.model.channels[caller].bridge_id,  # type: ignore[union-attr]
                10, "bridged again")
    await control.recording("A1", pause=True)
    assert engine.acd.seats["A1"].call.recording_paused  # type: ignore[union-attr]
    await control.recording("A1", pause=False)
    await control.hangup("A1")
    await until(engine, lambda: state(engine, "A1") is SeatState.READY, 10, "ready again")
    [complete] = await queue_log(engine, "complete")
    assert complete["call_id"] == call_id and complete["talk_s"] >= 0


async def test_blind_transfer_to_a_queue_keeps_the_place_and_to_a_number_dials_out(
        engine: Engine) -> None:
    assert engine.acd is not None and engine.ami is not None
    control = CallControl(engine.acd)
    call_id, _ = await connected(engine)
    await control.transfer("A1", Target(kind="queue", value="english"))
    await until(engine, lambda: call_id in waiting_ids(engine, "english"), 10, "requeued")
    await until(engine, lambda: state(engine, "A1") is SeatState.READY, 10, "A1 free")
    assert engine.acd.waiting["english"][call_id].position_key is not None
    # A2 takes it from the new queue, then sends it to an outside number
    engine.acd.set_state("A1", "not_ready", "break")
    engine.acd.set_state("A2", "ready")
    await until(engine, lambda: state(engine, "A2") is SeatState.ON_CALL, 15, "A2 on call")
    dialled: list[str] = []

    def on_event(ev: AmiEvent) -> None:
        if isinstance(ev, DialBegin):
            dialled.append(ev.dest.channel)

    engine.ami.add_handler(on_event)
    with pytest.raises(ConsoleError) as refused:
        await control.transfer("A2", Target.model_construct(kind="number", value="123;x"))
    assert refused.value.code == "bad_number"
    await control.transfer("A2", Target(kind="number", value="+8613912345678"))
    # dialled in national form (phones/dialrules.py takes +86 off)
    await until(engine, lambda: any("Local/13912345678@outbound" in d for d in dialled), 10,
                "dialled out")
    await until(engine, lambda: state(engine, "A2") is SeatState.READY, 10, "A2 free")
    transfers = await queue_log(engine, "transfer")
    assert [t["agent_id"] for t in transfers] == ["A1", "A2"]


async def test_consult_then_complete_and_a_supervisor_listens(engine: Engine) -> None:
    assert engine.acd is not None and engine.ami is not None
    control = CallControl(engine.acd)
    spied: list[str] = []

    def on_event(ev: AmiEvent) -> None:
        if isinstance(ev, OtherEvent) and ev.name == "ChanSpyStart":
            spied.append(ev.headers.get("SpyeeChannel", ""))

    engine.ami.add_handler(on_event)
    call_id, _ = await connected(engine)
    agent_channel = engine.acd.seats["A1"].call.agent_channel  # type: ignore[union-attr]
    await control.spy("S1", "A1", "listen")
    await until(engine, lambda: agent_channel in spied, 15, "supervisor listening")
    # a first consultation is cancelled: the agent takes the caller back
    await control.consult("A1", Target(kind="number", value="13900000001"))
    await until(engine, lambda: engine.acd.seats["A1"].call.consult_channel,  # type: ignore[union-attr]
                15, "first consulted party dialled")
    await control.consult_cancel("A1")
    assert state(engine, "A1") is SeatState.ON_CALL
    await until(engine, lambda: engine.controller.model.channels[f"{call_id}-b"].bridge_id,  # type: ignore[union-attr]
                10, "caller back with the agent")
    await control.consult("A1", Target(kind="number", value="13912345678"))
    assert state(engine, "A1") is SeatState.ON_HOLD
    await until(engine, lambda: engine.acd.seats["A1"].call.consult_channel,  # type: ignore[union-attr]
                15, "consulted party dialled")
    consulted = engine.acd.seats["A1"].call.consult_channel  # type: ignore[union-attr]
    await control.consult_complete("A1")
    # the caller now talks to the consulted party; the agent's leg is gone
    await until(engine, lambda: state(engine, "A1") is SeatState.READY, 15, "A1 free")
    rows = await engine.ami.action_list("CoreShowChannels")
    bridges = {r.get("Channel"): r.get("BridgeId") for r in rows}
    caller_name = next(r["Channel"] for r in rows if r.get("Uniqueid") == f"{call_id}-b")
    assert bridges[caller_name] and bridges[caller_name] == bridges[consulted]


async def test_a_consulted_agent_is_busy_then_takes_the_caller_and_wraps_up(
        engine: Engine) -> None:
    """A1 consults A2 (a ready agent): A2's seat rings then talks, and a caller arriving
    meanwhile is not offered to A2; completing gives A2 the caller (bridged with A2's phone)
    and the call is A2's: A2 hanging up ends it, with a 'complete' for A2."""
    assert engine.acd is not None and engine.ami is not None
    acd, control = engine.acd, CallControl(engine.acd)
    call_id, _ = await connected(engine)
    acd.set_state("A2", "ready")
    await control.consult("A1", Target(kind="agent", value="A2"))
    await until(engine, lambda: state(engine, "A2") is SeatState.ON_CALL, 15,
                "A2 answered the consultation")
    assert acd.seats["A2"].call is None and acd.seats["A2"].consulted_on == call_id
    other_id, _ = await direct_caller(engine, phone="13700000010")
    assert acd.waiting["general"][other_id].ringing == ""  # not offered to the busy A2
    await control.consult_complete("A1")
    await until(engine, lambda: acd.seats["A2"].call is not None, 10, "A2 has the caller")
    taken = acd.seats["A2"].call
    assert taken is not None and taken.call_id == call_id
    rows = await engine.ami.action_list("CoreShowChannels")
    bridges = {r.get("Uniqueid"): r.get("BridgeId") for r in rows}
    assert bridges[f"{call_id}-b"] and bridges[f"{call_id}-b"] == bridges[taken.agent_uniqueid]
    await control.hangup("A2")
    # not "A2's call is None": with no wrap-up, A2 is ready again at once and may be offered
    # the other caller before A1 is (Asterisk may end A2's leg before A1's, hung up earlier)
    await until(engine, lambda: (now := acd.seats["A2"].call) is None or now.call_id == other_id,
                10, "A2's call ended")
    completes = await queue_log(engine, "complete")
    assert [c["call_id"] for c in completes if c["agent_id"] == "A2"] == [call_id]


async def test_a_conference_of_caller_agent_and_a_third_party(engine: Engine) -> None:
    assert engine.acd is not None and engine.ami is not None
    control = CallControl(engine.acd)
    await connected(engine)
    await control.conference("A1", Target(kind="number", value="13912340000"))
    # conference() returns once the third party answered; its leg then runs the dialplan into
    # ConfBridge (a moment later, longer on a loaded machine)
    rows: list[Response] = []
    for _ in range(100):
        rows = await engine.ami.action_list("CoreShowChannels")
        if len([r for r in rows if r.get("Application") == "ConfBridge"]) == 3:
            break
        await asyncio.sleep(0.1)
    in_conf = [r for r in rows if r.get("Application") == "ConfBridge"]
    assert len(in_conf) == 3, rows
