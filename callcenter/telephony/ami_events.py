"""Typed AMI events: the only shape in which Asterisk's events reach the controller.

``parse_event`` turns a header mapping (from panoramisk's parser or a recorded transcript) into one
of the dataclasses below. Events the controller does not model come out as ``OtherEvent``. Pure
code: no I/O, no event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

#: The only events Asterisk sends the call-control user (manager.conf's filter is generated from
#: it, ``sip/edge_conf.py``): those ``parse_event`` types for the model and the ACD, and the
#: ``OtherEvent``s the ACD (spying, conferences), the fax server (``UserEvent``) and the ACD
#: benchmark wait for; ``OriginateResponse`` ends an Originate. Every other event of the user's
#: classes (device states, caller-id updates, music on hold, ...) cost Asterisk and the engine
#: work for nothing.
ENGINE_EVENTS: Final = ("Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd",
                        "BridgeEnter", "BridgeLeave", "FullyBooted", "Shutdown", "UserEvent",
                        "ChanSpyStart", "ConfbridgeJoin", "OriginateResponse", "QueueCallerJoin")
#: the key tap's (``telephony/key_tap.py``): a key's end, an AGI command's start and end
KEY_TAP_EVENTS: Final = ("DTMFEnd", "AGIExecStart", "AGIExecEnd")
#: events the tap takes only with this header's value: the keys a channel received, not their
#: copies sent on to the other channel of a bridge (half the DTMF events of a talking call)
KEY_TAP_ONLY: Final = {"DTMFEnd": ("Direction", "Received")}


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """The channel fields Asterisk repeats on every channel event."""

    uniqueid: str
    linkedid: str
    channel: str
    state: int
    state_desc: str
    caller_num: str
    caller_name: str
    context: str
    exten: str

    @classmethod
    def from_headers(cls, h: Mapping[str, str], prefix: str = "") -> ChannelInfo:
        def get(key: str) -> str:
            return h.get(prefix + key, "") or ""

        try:
            state = int(get("ChannelState") or "0")
        except ValueError:
            state = 0
        uniqueid = get("Uniqueid")
        return cls(
            uniqueid=uniqueid,
            linkedid=get("Linkedid") or uniqueid,
            channel=get("Channel"),
            state=state,
            state_desc=get("ChannelStateDesc"),
            caller_num=_unknown_to_empty(get("CallerIDNum")),
            caller_name=_unknown_to_empty(get("CallerIDName")),
            context=get("Context"),
            exten=get("Exten"),
        )


def _unknown_to_empty(value: str) -> str:
    return "" if value in ("<unknown>", "<Unknown>") else value


@dataclass(frozen=True, slots=True)
class NewChannel:
    info: ChannelInfo


@dataclass(frozen=True, slots=True)
class NewState:
    info: ChannelInfo


@dataclass(frozen=True, slots=True)
class Hangup:
    info: ChannelInfo
    cause: int
    cause_text: str


@dataclass(frozen=True, slots=True)
class DialBegin:
    caller: ChannelInfo | None
    dest: ChannelInfo
    dialstring: str


@dataclass(frozen=True, slots=True)
class DialEnd:
    caller: ChannelInfo | None
    dest: ChannelInfo
    status: str


@dataclass(frozen=True, slots=True)
class BridgeEnter:
    info: ChannelInfo
    bridge_id: str


@dataclass(frozen=True, slots=True)
class BridgeLeave:
    info: ChannelInfo
    bridge_id: str


@dataclass(frozen=True, slots=True)
class CoreShowChannel:
    """One row of a ``CoreShowChannels`` snapshot (resync after reconnect)."""

    info: ChannelInfo
    application: str
    bridge_id: str
    duration_s: int


@dataclass(frozen=True, slots=True)
class FullyBooted:
    uptime_s: int


@dataclass(frozen=True, slots=True)
class Shutdown:
    restart: bool


@dataclass(frozen=True, slots=True)
class KeyRead:
    """``DTMFEnd`` of a key the caller sent (only the key-tap user gets these: read class dtmf)."""

    uniqueid: str
    digit: str = field(repr=False)
    at: float = 0.0          # Asterisk's Timestamp (timestampevents = yes), else 0
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class AgiExec:
    """``AGIExecStart`` / ``AGIExecEnd``: an AGI command began or finished on a channel. The
    command text and its result stay behind (they may carry what a caller typed)."""

    uniqueid: str
    ended: bool
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class OtherEvent:
    name: str
    headers: Mapping[str, str] = field(repr=False)


AmiEvent = (
    NewChannel
    | NewState
    | Hangup
    | DialBegin
    | DialEnd
    | BridgeEnter
    | BridgeLeave
    | CoreShowChannel
    | FullyBooted
    | Shutdown
    | KeyRead
    | AgiExec
    | OtherEvent
)


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


def _float(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def _duration(value: str) -> int:
    """``CoreShowChannel`` gives Duration as HH:MM:SS."""
    try:
        h, m, s = (int(p) for p in value.split(":"))
    except ValueError:
        return 0
    return h * 3600 + m * 60 + s


def parse_event(headers: Mapping[str, str]) -> AmiEvent:
    """Build the typed event for an AMI event's headers (case-insensitive names accepted)."""
    h = _normalise(headers)
    name = h.get("Event", "")
    build = _BUILDERS.get(name.lower())
    event = build(h) if build is not None else None
    return event if event is not None else OtherEvent(name, h)


def _key_read(h: Mapping[str, str]) -> AmiEvent | None:
    if h.get("Direction", "").lower() != "received":
        return None
    return KeyRead(h.get("Uniqueid", ""), h.get("Digit", ""), _float(h.get("Timestamp")),
                   _int(h.get("DurationMs")))


#: lower-cased event name -> its typed event (None: an ``OtherEvent`` after all); one lookup
#: per event, on the path of every event Asterisk sends
_BUILDERS: Final[dict[str, Callable[[Mapping[str, str]], AmiEvent | None]]] = {
    "newchannel": lambda h: NewChannel(ChannelInfo.from_headers(h)),
    "newstate": lambda h: NewState(ChannelInfo.from_headers(h)),
    "hangup": lambda h: Hangup(ChannelInfo.from_headers(h), _int(h.get("Cause")),
                               h.get("Cause-txt", "")),
    "dialbegin": lambda h: DialBegin(_caller(h), ChannelInfo.from_headers(h, "Dest"),
                                     h.get("DialString", "")),
    "dialend": lambda h: DialEnd(_caller(h), ChannelInfo.from_headers(h, "Dest"),
                                 h.get("DialStatus", "")),
    "bridgeenter": lambda h: BridgeEnter(ChannelInfo.from_headers(h), h.get("BridgeUniqueid", "")),
    "bridgeleave": lambda h: BridgeLeave(ChannelInfo.from_headers(h), h.get("BridgeUniqueid", "")),
    "coreshowchannel": lambda h: CoreShowChannel(
        ChannelInfo.from_headers(h),
        application=h.get("Application", ""),
        bridge_id=h.get("BridgeId", ""),
        duration_s=_duration(h.get("Duration", "")),
    ),
    "fullybooted": lambda h: FullyBooted(_int(h.get("Uptime"))),
    "shutdown": lambda h: Shutdown(restart=h.get("Restart", "").lower() in ("true", "yes")),
    "dtmfend": _key_read,
    "agiexecstart": lambda h: AgiExec(h.get("Uniqueid", ""), ended=False,
                                      at=_float(h.get("Timestamp"))),
    "agiexecend": lambda h: AgiExec(h.get("Uniqueid", ""), ended=True,
                                    at=_float(h.get("Timestamp"))),
}
#: the event names (lower case) ``parse_event`` types; the rest become ``OtherEvent``
TYPED_EVENTS: Final = frozenset(_BUILDERS)


def _caller(h: Mapping[str, str]) -> ChannelInfo | None:
    # Originated dials have no caller channel: Asterisk then omits the bare headers.
    return ChannelInfo.from_headers(h) if h.get("Uniqueid") else None


_CANONICAL = {
    k.lower(): k
    for k in (
        "Event Uniqueid Linkedid Channel ChannelState ChannelStateDesc CallerIDNum CallerIDName "
        "Context Exten Cause Cause-txt DialString DialStatus BridgeUniqueid Application BridgeId "
        "Duration Uptime Restart Direction Digit DurationMs Timestamp DestUniqueid DestLinkedid "
        "DestChannel DestChannelState DestChannelStateDesc DestCallerIDNum DestCallerIDName "
        "DestContext DestExten"
    ).split()
}


#: header names as received -> canonical: AMI uses few names, so each is lowered once
_SEEN: dict[str, str] = {}
_SEEN_MAX = 4096


def _canonical(name: str) -> str:
    canonical = _CANONICAL.get(name.lower(), name)
    if len(_SEEN) < _SEEN_MAX:
        _SEEN[name] = canonical
    return canonical


def _normalise(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in AMI's canonical case, whatever case the parser produced."""
    seen = _SEEN
    return {seen.get(k) or _canonical(k): v for k, v in headers.items()}
