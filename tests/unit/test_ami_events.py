"""Typed AMI events from recorded Asterisk 22 transcripts, through panoramisk's real parser."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from panoramisk.ami_protocol import AMIProtocol

from callcenter.telephony.ami_events import (
    BridgeEnter,
    CoreShowChannel,
    DialBegin,
    FullyBooted,
    Hangup,
    NewChannel,
    NewState,
    OtherEvent,
    parse_event,
)

# A real-shaped capture: banner, login response, then events, split at awkward places.
TRANSCRIPT = (
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nTimestamp: 1.0\r\nUptime: 42\r\n"
    b"LastReload: 42\r\nStatus: Fully Booted\r\n\r\n"
    b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/9500@hotline-00000001;2\r\n"
    b"ChannelState: 4\r\nChannelStateDesc: Ring\r\nCallerIDNum: 13800000000\r\n"
    b"CallerIDName: sim\r\nConnectedLineNum: <unknown>\r\nLanguage: en\r\nAccountCode: \r\n"
    b"Context: hotline\r\nExten: 9500\r\nPriority: 1\r\nUniqueid: sim-1-b\r\n"
    b"Linkedid: sim-1\r\n\r\n"
    b"Event: Newstate\r\nChannel: Local/9500@hotline-00000001;2\r\nChannelState: 6\r\n"
    b"ChannelStateDesc: Up\r\nCallerIDNum: 13800000000\r\nContext: hotline\r\nExten: 9500\r\n"
    b"Uniqueid: sim-1-b\r\nLinked"
    b"id: sim-1\r\n\r\n"
    b"Event: Hangup\r\nChannel: Local/9500@hotline-00000001;2\r\nChannelState: 6\r\n"
    b"ChannelStateDesc: Up\r\nCallerIDNum: <unknown>\r\nUniqueid: sim-1-b\r\n"
    b"Linkedid: sim-1\r\nCause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
    b"Event: VarSet\r\nChannel: x\r\nVariable: A\r\nValue: 1\r\nUniqueid: u\r\n\r\n"
)


class _Factory:
    forgetable_actions = ()

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.awaiting_actions: list[Any] = []

    def dispatch(self, message: Any) -> None:
        self.events.append(parse_event(dict(message)))

    def connection_lost(self, exc: object) -> None:
        pass


def _feed(data: bytes, chunk: int) -> list[Any]:
    proto = AMIProtocol()

    class _T(asyncio.Transport):
        def write(self, data: Any) -> None:
            pass

    proto.connection_made(_T())
    factory = _Factory()
    proto.factory = factory
    for i in range(0, len(data), chunk):
        proto.data_received(data[i : i + chunk])
    return factory.events


def test_transcript_parses_into_typed_events_whatever_the_chunking() -> None:
    for chunk in (1, 7, 64, len(TRANSCRIPT)):
        events = _feed(TRANSCRIPT, chunk)
        assert [type(e) for e in events] == [FullyBooted, NewChannel, NewState, Hangup, OtherEvent]
        booted, new, state, hangup, other = events
        assert booted.uptime_s == 42
        assert new.info.uniqueid == "sim-1-b" and new.info.linkedid == "sim-1"
        assert new.info.caller_num == "13800000000" and new.info.state_desc == "Ring"
        assert state.info.state == 6
        assert hangup.cause == 16 and hangup.cause_text == "Normal Clearing"
        assert hangup.info.caller_num == ""  # <unknown> is no number
        assert other.name == "VarSet"


def test_header_names_are_case_insensitive() -> None:
    event = parse_event({"event": "hangup", "uniqueid": "u1", "linkedid": "l1", "cause": "17"})
    assert isinstance(event, Hangup)
    assert event.info.uniqueid == "u1" and event.cause == 17


def test_dial_without_caller_channel_and_bridge_and_snapshot_rows() -> None:
    dial = parse_event({"Event": "DialBegin", "DestUniqueid": "d", "DestLinkedid": "l",
                        "DestChannel": "Local/1@agent-sim;1", "DialString": "1@agent-sim"})
    assert isinstance(dial, DialBegin) and dial.caller is None and dial.dest.linkedid == "l"
    bridge = parse_event({"Event": "BridgeEnter", "Uniqueid": "u", "BridgeUniqueid": "b"})
    assert isinstance(bridge, BridgeEnter) and bridge.bridge_id == "b"
    row = parse_event({"Event": "CoreShowChannel", "Uniqueid": "u", "Linkedid": "l",
                       "Duration": "01:02:03", "Application": "AGI", "BridgeId": ""})
    assert isinstance(row, CoreShowChannel) and row.duration_s == 3723
    assert row.application == "AGI"


def test_garbage_numbers_do_not_raise() -> None:
    event = parse_event({"Event": "Hangup", "Uniqueid": "u", "Cause": "x", "ChannelState": "?"})
    assert isinstance(event, Hangup) and event.cause == 0 and event.info.state == 0
    row = parse_event({"Event": "CoreShowChannel", "Uniqueid": "u", "Duration": "garbage"})
    assert isinstance(row, CoreShowChannel) and row.duration_s == 0


def test_the_call_control_users_event_filter_lets_every_modelled_event_through() -> None:
    """manager.conf's filter is generated from ENGINE_EVENTS: each event name ``parse_event``
    types (but the snapshot rows, which answer an action and are never filtered) is in it."""
    from callcenter.sip.edge_conf import render_event_filter
    from callcenter.telephony import ami_events

    typed = {name for name in ami_events.ENGINE_EVENTS if name.lower() in ami_events.TYPED_EVENTS}
    # and every typed event reaches the engine: through the call-control user's filter, the
    # key tap's, or as the rows of CoreShowChannels (an action's answer, never filtered)
    reachable = {n.lower() for n in (*ami_events.ENGINE_EVENTS, *ami_events.KEY_TAP_EVENTS)}
    assert ami_events.TYPED_EVENTS - {"coreshowchannel"} <= reachable
    assert typed == {"Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "BridgeEnter",
                     "BridgeLeave", "FullyBooted", "Shutdown"}
    lines = render_event_filter(ami_events.ENGINE_EVENTS).splitlines()
    assert "eventfilter(action(include),name(OriginateResponse)) =" in lines
    assert len(lines) == len(ami_events.ENGINE_EVENTS) + 1   # and the header comment


def test_a_character_split_between_two_reads_arrives_whole() -> None:
    """The engine's own protocol (events past panoramisk): a caller's CJK name cut by a read."""
    from callcenter.telephony.ami import _Protocol

    heard: list[dict[str, str]] = []

    class _Client:
        def _heard(self) -> None:
            pass

    class _Link:
        client = _Client()

        def dispatch_headers(self, headers: dict[str, str]) -> None:
            heard.append(headers)

    data = ("Event: Newchannel\r\nChannel: PJSIP/trunk-00000001\r\nCallerIDName: 张三丰\r\n"
            "Uniqueid: u1\r\nLinkedid: u1\r\n\r\n").encode()
    for chunk in (1, 2, 5):
        heard.clear()
        proto = _Protocol()

        class _T(asyncio.Transport):
            def write(self, data: Any) -> None:
                pass

        proto.connection_made(_T())
        proto.factory = _Link()
        for i in range(0, len(data), chunk):
            proto.data_received(data[i : i + chunk])
        assert len(heard) == 1
        event = parse_event(heard[0])
        assert isinstance(event, NewChannel) and event.info.caller_name == "张三丰"


def test_the_key_tap_users_filter_takes_only_the_keys_a_channel_received() -> None:
    from callcenter.sip.edge_conf import render_event_filter
    from callcenter.telephony import ami_events

    lines = render_event_filter(ami_events.KEY_TAP_EVENTS, ami_events.KEY_TAP_ONLY).splitlines()
    assert lines[1:] == [
        "eventfilter(action(include),name(DTMFEnd),header(Direction),method(exact)) = Received",
        "eventfilter(action(include),name(AGIExecStart)) =",
        "eventfilter(action(include),name(AGIExecEnd)) =",
    ]


def test_a_filter_line_takes_words_only() -> None:
    from callcenter.sip.edge_conf import render_event_filter

    with pytest.raises(ValueError, match="not a word"):
        render_event_filter(["DTMFEnd"], {"DTMFEnd": ("Direction", "Received\neventfilter=")})
