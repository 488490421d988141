"""A caller with real SIP, RTP and RFC 4733 keys through the sandbox carrier trunk (issue 10,
item 5): SIPp calls the hotline's DID from the carrier's address, presses keys as
telephone-events, and the IVR serves them like any caller's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

import pytest

from callcenter.engine import Engine
from callcenter.errors import AmiActionError
from callcenter.store.calls import get_call
from callcenter.telephony.agi import Channel
from callcenter.telephony.agi_protocol import Reply
from callcenter.telephony.ami_events import AmiEvent, NewChannel
from callcenter.telephony.sipcall import dtmf_pcap, place_sip_call, render_scenario
from tests.integration.hotline import Heard

pytestmark = pytest.mark.integration

PLATINUM = "13800000004"  # a demo customer's registered number


async def quote_call(engine: Engine, keys: str) -> Heard:
    """A SIP caller from PLATINUM presses ``keys`` (RFC 4733) until a quote is read; the call's
    record as heard."""
    assert engine.ami is not None and engine.controller is not None and engine.db is not None
    ami, controller = engine.ami, engine.controller
    legs: dict[str, str] = {}  # linkedid -> the carrier channel
    quoted = asyncio.Event()

    def on_event(event: AmiEvent) -> None:
        if isinstance(event, NewChannel) and event.info.channel.startswith("PJSIP/carrier-"):
            legs.setdefault(event.info.linkedid, event.info.channel)

    def on_note(call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        if call_id in legs and kind == "ivr.prompts" and "zh/quote_last" in detail["ids"].split():
            quoted.set()

    ami.add_handler(on_event)
    controller.note_listeners.append(on_note)
    try:
        call = asyncio.create_task(place_sip_call("95500", keys, caller_id=PLATINUM,
                                                  hold_s=60))
        done, _ = await asyncio.wait({call, asyncio.create_task(quoted.wait())}, timeout=60,
                                     return_when=asyncio.FIRST_COMPLETED)
        assert quoted.is_set(), (call.result().detail if call in done else "no quote heard")
        # The quote was read: hang up from the PBX side (a BYE to the caller).
        for channel in legs.values():
            with contextlib.suppress(AmiActionError):
                await ami.action("Hangup", Channel=channel)
        result = await asyncio.wait_for(call, 30)
    finally:
        ami.remove_handler(on_event)
        controller.note_listeners.remove(on_note)
    assert result.ok, result.detail
    [call_id] = legs
    await engine.recorder.flush()  # type: ignore[union-attr]
    record = await get_call(engine.db, call_id)
    assert record is not None
    return Heard(record)


async def test_a_sip_caller_presses_rfc4733_keys_and_hears_a_quote(engine: Engine) -> None:
    heard = await quote_call(engine, "1w600519")
    assert "zh/greet_platinum" in heard.prompts()  # the carrier's caller ID reached the IVR
    assert heard.outcomes("quote") == ["ok"]
    assert "zh/stock/600519" in heard.prompts()
    assert [d["digits"] for d in heard.ivr("ivr.input")][:2] == ["1", "600519"]


async def test_no_key_is_lost_while_the_engine_is_slow_to_answer(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every AGI command leaves the engine 0.5 s late (an engine under load), while the caller
    types the stock code a key every 350 ms: Asterisk collects the whole code in one command,
    so no key falls in the gap between two commands (key by key, '0' and later were lost)."""
    slow = Channel._round_trip

    async def late(self: Channel, command: str, args: Sequence[str]) -> Reply:
        await asyncio.sleep(0.5)
        return await slow(self, command, args)

    monkeypatch.setattr(Channel, "_round_trip", late)
    heard = await quote_call(engine, "1wwwww600519")
    assert [d["digits"] for d in heard.ivr("ivr.input")][:2] == ["1", "600519"]
    assert "zh/stock/600519" in heard.prompts()


async def test_keys_typed_between_two_questions_are_not_lost_while_the_engine_is_slow(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """'1' stops the menu and the stock code follows at once, a key every 350 ms, while every
    AGI command leaves the engine 0.5 s late: '6' arrives when no command runs, and res_agi
    drops it. The key tap heard it (DTMFEnd between AGIExecEnd and AGIExecStart) and it goes in
    front of what GET DATA collected (without the tap the code is '00519' and refused)."""
    assert engine.key_tap is not None
    await until_tap(engine)
    slow = Channel._round_trip

    async def late(self: Channel, command: str, args: Sequence[str]) -> Reply:
        await asyncio.sleep(0.5)
        return await slow(self, command, args)

    monkeypatch.setattr(Channel, "_round_trip", late)
    recovered = engine.key_tap.ledger.keys_recovered
    heard = await quote_call(engine, "1600519")
    assert [d["digits"] for d in heard.ivr("ivr.input")][:2] == ["1", "600519"]
    assert "zh/stock/600519" in heard.prompts()
    assert engine.key_tap.ledger.keys_recovered > recovered


async def until_tap(engine: Engine) -> None:
    assert engine.key_tap is not None
    for _ in range(100):
        if engine.key_tap.connected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the key tap did not log in over TLS")


async def test_a_number_that_is_no_hotline_did_is_refused(engine: Engine) -> None:
    assert engine.agi is not None
    result = await place_sip_call("12345", "", hold_s=5)
    assert not result.ok  # the carrier's call to an unallocated number is not answered
    assert engine.agi.refused_sessions == 0 and engine.agi.active_sessions == 0


def test_the_scenario_refuses_what_is_not_a_number_or_a_key() -> None:
    for number, caller_id in (("95500&x", PLATINUM), ("95500", "a<b"), ("95500", "+8613")):
        with pytest.raises(ValueError):
            render_scenario(number, caller_id=caller_id)
    with pytest.raises(ValueError):
        dtmf_pcap("1;2")


def test_the_keys_are_one_rtp_stream_with_rising_numbers() -> None:
    """Each key its own timestamp (a repeated key is a new event), sequence numbers rising."""
    data = dtmf_pcap("600519")
    packets, offset = [], 24
    while offset < len(data):
        length = int.from_bytes(data[offset + 8:offset + 12], "little")
        frame = data[offset + 16:offset + 16 + length]
        packets.append(frame[14 + 20 + 8:])
        offset += 16 + length
    seqs = [int.from_bytes(p[2:4], "big") for p in packets]
    stamps = [int.from_bytes(p[4:8], "big") for p in packets]
    events = [p[12] for p in packets]
    assert seqs == list(range(1, len(packets) + 1))
    starts = sorted(set(stamps))
    assert len(starts) == 6 and stamps == sorted(stamps)  # one event per key, rising
    assert [events[stamps.index(t)] for t in starts] == [6, 0, 0, 5, 1, 9]


async def test_the_key_tap_hears_the_keys_a_channel_received_not_their_copies_sent_on(
        engine: Engine) -> None:
    """manager.conf's filter for the tap's user: a key a bridge reads on one channel (received)
    and writes to the other (sent) reaches the tap only as received, once per channel that
    received it; Asterisk never sends it the copy marked sent."""
    from callcenter.telephony.ami_events import KeyRead, OtherEvent

    assert engine.key_tap is not None and engine.key_tap.ami is not None and engine.ami is not None
    await until_tap(engine)
    tap = engine.key_tap.ami
    received: list[str] = []
    sent: list[str] = []

    def on_event(event: AmiEvent) -> None:
        if isinstance(event, KeyRead):
            received.append(event.digit)
        elif isinstance(event, OtherEvent) and event.name == "DTMFEnd":
            sent.append(event.headers.get("Digit", ""))

    tap.add_handler(on_event)
    try:
        # A caller (caller-sim, the ;1 half) types 147 into a leg that dials a simulated
        # agent ([acd-agent] consult): the bridge reads each key on one channel (received) and
        # writes it to the agent's (sent).
        await engine.ami.action(
            "Originate", Channel="Local/consult@acd-agent", Context="caller-sim", Exten="s",
            Priority="1", Async="true",
            Variable=["CALLER_DTMF=w147", "CALLER_HOLD=3", "CC_TARGET=Local/7001@agent-talk",
                      "CC_DIAL_TIMEOUT=10"])
        for _ in range(100):
            if set(received) >= set("147"):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a copy marked sent would come with or just after them
    finally:
        tap.remove_handler(on_event)
    assert set(received) == set("147")
    assert sent == []
