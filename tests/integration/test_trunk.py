"""Calls leave through a SIP trunk (issue 10, item 2), through the real Asterisk: the trunk's
generated PJSIP objects and [outbound] (sip/trunks.py) carry a call-back and a blind transfer
to a SIPp far end playing the carrier, with the trunk's caller ID; numbers the dial rules refuse
(phones/dialrules.py) never reach Asterisk. The trunk's DID also brings a SIP caller in."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import pytest

from callcenter.acd.control import CallControl
from callcenter.acd.seat import SeatState
from callcenter.acd.targets import Target
from callcenter.config import load_settings
from callcenter.engine import Engine
from callcenter.errors import ConsoleError
from callcenter.sip.settings import DialRules, TrunkSettings
from callcenter.sip.trunks import install_trunks
from callcenter.tasks.store import NewTask
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, DialBegin, NewChannel
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from callcenter.telephony.sipcall import place_sip_call
from tests.integration import carrier_uas
from tests.integration.acd_helpers import (
    add_agents,
    agent,
    direct_caller,
    hang_up_all,
    press_while_waiting,
    queue_to_agent,
    until,
)
from tests.integration.conftest import trading_clock, wait_no_channels

pytestmark = pytest.mark.integration

HOTLINE_NUMBER = "4008895500"
TELCO = TrunkSettings(name="telco", host=f"{carrier_uas.ADDRESS}:{carrier_uas.PORT}",
                      match=[carrier_uas.ADDRESS], dids=["95588"], caller_id=HOTLINE_NUMBER,
                      qualify_s=0)


def _reload(pbx: Pbx) -> None:
    pbx.cli("module reload res_pjsip.so")
    pbx.cli("dialplan reload")


@pytest.fixture
def trunk(pbx: Pbx) -> Iterator[TrunkSettings]:
    """The telco trunk installed in the session's Asterisk for this test, removed after."""
    etc = pbx.etc_dir()
    install_trunks(etc, [TELCO],
                   simulated=pbx.simulated_parties)
    _reload(pbx)
    try:
        assert "telco" in pbx.cli("pjsip show endpoint telco")
        assert "PJSIP/${CC_OUT}@telco" in pbx.cli("dialplan show outbound")
        yield TELCO
    finally:
        install_trunks(etc, pbx.settings.trunks, simulated=pbx.simulated_parties)
        _reload(pbx)
        assert "outbound-sim" in pbx.cli("dialplan show outbound")


@pytest.fixture
async def engine(pbx: Pbx, trunk: TrunkSettings, tmp_path: Path) -> AsyncIterator[Engine]:
    settings = load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                             backoffice_path=tmp_path / "backoffice.db",
                             console={"enabled": False}, trunks=[trunk.model_dump()],
                             acd={"wrap_up_s": 0, "queues": [
                                 {"name": "general", "announce_every_s": 0}]})
    await add_agents(settings, [agent("A1", "1001"), agent("S1", "9001", role="supervisor")])
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


class Watch:
    """Asterisk's view: every channel made, and the trunk's channels once bridged."""

    def __init__(self, engine: Engine) -> None:
        assert engine.ami is not None
        self.ami = engine.ami
        self.channels: list[str] = []
        self.dialled: list[str] = []
        self.bridged: list[str] = []
        self.ami.add_handler(self)

    def __call__(self, event: AmiEvent) -> None:
        if isinstance(event, NewChannel):
            self.channels.append(event.info.channel)
        elif isinstance(event, DialBegin):
            self.dialled.append(event.dest.channel)
        elif isinstance(event, BridgeEnter) and event.info.channel.startswith("PJSIP/telco-"):
            self.bridged.append(event.info.channel)

    def outgoing(self) -> list[str]:
        return [c for c in self.channels if "@outbound" in c or c.startswith("PJSIP/telco-")]

    def close(self) -> None:
        self.ami.remove_handler(self)


async def rtp_both_ways(pbx: Pbx, channel: str, within_s: float = 15) -> tuple[int, int]:
    """RTP packets (received, sent) on ``channel`` per ``pjsip show channelstats``, once both
    are above 0. A row: BridgeId ChannelId UpTime Codec RxCount RxLost RxPct RxJitter TxCount"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    name = channel.removeprefix("PJSIP/")
    while True:
        stats = await asyncio.to_thread(pbx.cli, "pjsip show channelstats")
        for line in stats.splitlines():
            fields = line.split()
            ids = [i for i, f in enumerate(fields) if name.startswith(f.rstrip("."))]
            if ids and len(fields) > ids[0] + 7:
                rx, tx = fields[ids[0] + 3], fields[ids[0] + 7]
                if rx.isdigit() and tx.isdigit() and int(rx) > 0 and int(tx) > 0:
                    return int(rx), int(tx)
        if loop.time() >= deadline:
            raise AssertionError(f"no RTP both ways on {channel}:\n{stats}")
        await asyncio.sleep(0.2)


def seat(engine: Engine, agent_id: str) -> SeatState:
    assert engine.acd is not None
    return engine.acd.seats[agent_id].seat.state


async def test_a_call_back_leaves_through_the_trunk_with_its_caller_id(
        engine: Engine, pbx: Pbx) -> None:
    assert engine.acd is not None and engine.ami is not None
    acd, watch = engine.acd, Watch(engine)
    caller = SimCaller(engine.ami)
    try:
        async with carrier_uas.answering_carrier() as far_end:
            # a caller waiting in the queue presses 1: a call-back to their own number
            call_id = await queue_to_agent(engine, caller, "+8613800000001")
            await press_while_waiting(engine, call_id)
            await until(engine, lambda: (w := acd.find_waiter(call_id=call_id)) is not None
                        and w.callback, what="call-back booked")
            assert acd.find_waiter(call_id=call_id).phone == "13800000001"  # type: ignore[union-attr]
            await caller.wait_end(call_id, 30)
            acd.set_state("A1", "ready")
            await until(engine, lambda: watch.bridged, 30, "the customer answered via the trunk")
            assert any(d.startswith("Local/13800000001@outbound") for d in watch.dialled)
            await rtp_both_ways(pbx, watch.bridged[0])  # the carrier's audio, and ours
            await engine.ami.action("Hangup", Channel=watch.bridged[0])
            assert await far_end.wait_end(30) == 0, far_end.stderr
            [invite] = far_end.invites()
        assert invite["number"] == "13800000001"
        assert "sip:13800000001@" in invite["to"]
        # the trunk's caller ID, not the customer's own number
        assert f"sip:{HOTLINE_NUMBER}@" in invite["from"]
    finally:
        watch.close()


async def test_a_task_call_shows_the_trunk_number_its_plan_asks_for(engine: Engine) -> None:
    """A dialer call whose plan shows the trunk's DID (one of its own numbers) carries that
    number in the INVITE's From, not the trunk's default caller ID; and no PAI is sent."""
    assert engine.acd is not None and engine.ami is not None and engine.dialer is not None
    dialer, watch = engine.dialer, Watch(engine)
    plan = {"window": {"start": "00:00", "end": "24:00", "days": [1, 2, 3, 4, 5, 6, 7]},
            "mode": "preview", "ring_s": 20, "caller_id": "95588"}
    task_id = await dialer.tasks.create(NewTask(
        "call back", "test", account="C1", phone="13800000002", agent_id="A1", team="",
        dial=plan))
    assert task_id is not None
    try:
        async with carrier_uas.answering_carrier() as far_end:
            engine.acd.set_state("A1", "ready")
            await dialer.preview_call("A1", task_id)
            await until(engine, lambda: watch.bridged, 30, "the customer answered via the trunk")
            await engine.ami.action("Hangup", Channel=watch.bridged[0])
            assert await far_end.wait_end(30) == 0, far_end.stderr
            [invite] = far_end.invites()
            messages = far_end.messages()
        assert invite["number"] == "13800000002"
        assert "sip:95588@" in invite["from"]
        assert "P-Asserted-Identity" not in messages
    finally:
        watch.close()


async def test_a_blind_transfer_to_a_number_and_refused_numbers_never_reach_asterisk(
        engine: Engine) -> None:
    assert engine.acd is not None and engine.ami is not None
    control, watch = CallControl(engine.acd), Watch(engine)
    try:
        async with carrier_uas.answering_carrier() as far_end:
            await direct_caller(engine, phone="13700000009")
            engine.acd.set_state("A1", "ready")
            await until(engine, lambda: seat(engine, "A1") is SeatState.ON_CALL, 15, "on call")
            before = len(watch.channels)
            for number, code in (("+85291234567", "forbidden"),    # international
                                 ("0085291234567", "forbidden"),
                                 ("16812345678", "forbidden"),     # premium-rate
                                 ("95555", "forbidden"),           # short code
                                 ("0013812345678", "forbidden"),   # + / 00 trick
                                 ("1381234567", "bad_number")):
                with pytest.raises(ConsoleError) as refused:
                    await control.transfer("A1", Target(kind="number", value=number))
                assert refused.value.code == code, number
                with pytest.raises(ConsoleError):
                    await control.consult("A1", Target(kind="number", value=number))
                with pytest.raises(ConsoleError):
                    await control.conference("A1", Target(kind="number", value=number))
            assert watch.channels[before:] == []  # Asterisk made no channel for any of them
            assert seat(engine, "A1") is SeatState.ON_CALL  # and the call goes on
            # the one allowed number is the first (and only) INVITE the carrier sees
            await control.transfer("A1", Target(kind="number", value="+8613912345678"))
            await until(engine, lambda: watch.bridged, 30, "transferred caller via the trunk")
            await until(engine, lambda: seat(engine, "A1") is SeatState.READY, 15, "A1 free")
            await engine.ami.action("Hangup", Channel=watch.bridged[0])
            assert await far_end.wait_end(30) == 0, far_end.stderr
            invites = far_end.invites()
        assert [i["number"] for i in invites] == ["13912345678"]
        assert f"sip:{HOTLINE_NUMBER}@" in invites[0]["from"]
        assert [c for c in watch.outgoing() if "@outbound" in c] == [
            c for c in watch.outgoing() if c.startswith("Local/13912345678@outbound")]
    finally:
        watch.close()


async def test_international_only_for_a_supervisor_when_switched_on(engine: Engine) -> None:
    assert engine.acd is not None and engine.ami is not None
    engine.acd.dial_rules = DialRules(international=True)
    control, watch = CallControl(engine.acd), Watch(engine)
    try:
        async with carrier_uas.answering_carrier() as far_end:
            with pytest.raises(ConsoleError) as refused:  # an agent: never abroad
                control.click_to_call("A1", "+85291234567", "")
            assert refused.value.code == "invalid_state"  # not ready: refused before the rule
            engine.acd.set_state("A1", "ready")
            with pytest.raises(ConsoleError) as refused:
                control.click_to_call("A1", "+85291234567", "")
            assert refused.value.code == "forbidden"
            assert watch.outgoing() == [] and seat(engine, "A1") is SeatState.READY
            engine.acd.set_state("A1", "not_ready", "break")
            engine.acd.set_state("S1", "ready")
            control.click_to_call("S1", "+85291234567", "")
            await until(engine, lambda: watch.bridged, 30, "the supervisor's call abroad")
            await engine.ami.action("Hangup", Channel=watch.bridged[0])
            assert await far_end.wait_end(30) == 0, far_end.stderr
            [invite] = far_end.invites()
        assert invite["number"] == "0085291234567"
    finally:
        watch.close()


async def test_the_trunks_did_reaches_the_hotline(engine: Engine) -> None:
    """A carrier's call from the trunk's address to its DID runs the hotline's IVR, like the
    sandbox carrier's; another number on that trunk is refused."""
    assert engine.ami is not None and engine.controller is not None
    controller, watch = engine.controller, Watch(engine)
    prompted = asyncio.Event()
    kinds: list[str] = []

    def on_note(call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        kinds.append(kind)
        if kind == "ivr.prompts":
            prompted.set()

    controller.note_listeners.append(on_note)
    try:
        refused = await place_sip_call("95500", "", local_ip=carrier_uas.ADDRESS, hold_s=5)
        assert not refused.ok  # 95500 is the sandbox carrier's DID, not this trunk's
        assert not prompted.is_set()
        call = asyncio.create_task(place_sip_call("95588", "", caller_id="13800000004",
                                                  local_ip=carrier_uas.ADDRESS, wait_s=0,
                                                  hold_s=60))
        await asyncio.wait_for(prompted.wait(), 30)  # the IVR greets the trunk's DID caller
        legs = [c for c in watch.channels if c.startswith("PJSIP/telco-")]
        assert legs and re.fullmatch(r"PJSIP/telco-[0-9a-f]+", legs[-1])
        await engine.ami.action("Hangup", Channel=legs[-1])
        result = await asyncio.wait_for(call, 30)
        assert result.ok, result.detail
    finally:
        controller.note_listeners.remove(on_note)
        watch.close()
