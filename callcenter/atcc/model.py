"""The live model of channels and calls, built from typed AMI events. Sans-IO.

A *call* is everything that shares Asterisk's ``linkedid``: the caller's channel, the IVR's, the
agent's. ``CallModel.apply`` takes one event and the current time and returns the changes it made
(``CallStarted``, ``TimelineAdded``, ``CallEnded``); the edge persists them. ``resync`` reconciles
the model with a ``CoreShowChannels`` snapshot after the AMI link was down: channels Asterisk no
longer has are ended, channels we never saw are adopted. A channel that vanished ends at the
moment the link was lost (``lost_at``: the last moment its hangup could have been seen), not at
the resync, and its hangup is marked ``approximate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from callcenter.telephony.ami_events import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    ChannelInfo,
    CoreShowChannel,
    DialBegin,
    DialEnd,
    Hangup,
    NewChannel,
    NewState,
)

#: Asterisk hangup cause we record for calls that vanished while we could not see them.
CAUSE_LOST = -1


@dataclass
class ChannelView:
    uniqueid: str
    linkedid: str
    name: str
    state: int
    state_desc: str
    caller_num: str
    context: str
    exten: str
    bridge_id: str = ""
    #: model sequence number of the last event that touched this channel (resync uses it)
    seen_seq: int = 0


@dataclass(frozen=True)
class TimelineEntry:
    at: float
    kind: str
    detail: Mapping[str, str]


@dataclass
class Call:
    id: str
    started_at: float
    caller_num: str
    caller_name: str
    first_channel: str
    channels: dict[str, ChannelView] = field(default_factory=dict)
    ended_at: float | None = None
    end_cause: int | None = None
    end_reason: str = ""


@dataclass(frozen=True)
class CallStarted:
    call: Call


@dataclass(frozen=True)
class TimelineAdded:
    call_id: str
    entry: TimelineEntry


@dataclass(frozen=True)
class CallEnded:
    call: Call


Change = CallStarted | TimelineAdded | CallEnded


class CallModel:
    def __init__(self) -> None:
        self.channels: dict[str, ChannelView] = {}
        self.calls: dict[str, Call] = {}
        self._seq = 0

    # -- events ------------------------------------------------------------------------------

    def apply(self, event: AmiEvent, now: float) -> list[Change]:
        self._seq += 1
        out: list[Change] = []
        match event:
            case NewChannel(info):
                self._add_channel(info, now, out, "channel.new")
            case NewState(info):
                view = self._touch(info, now, out)
                if view.state != info.state:
                    view.state, view.state_desc = info.state, info.state_desc
                    self._note(view.linkedid, now, "channel.state",
                               {"channel": view.name, "state": info.state_desc}, out)
            case DialBegin(_, dest, dialstring):
                view = self._touch(dest, now, out)
                self._note(view.linkedid, now, "dial.begin",
                           {"channel": dest.channel, "dialstring": dialstring}, out)
            case DialEnd(_, dest, status):
                view = self._touch(dest, now, out)
                self._note(view.linkedid, now, "dial.end",
                           {"channel": dest.channel, "status": status}, out)
            case BridgeEnter(info, bridge_id):
                view = self._touch(info, now, out)
                view.bridge_id = bridge_id
                self._note(view.linkedid, now, "bridge.enter",
                           {"channel": info.channel, "bridge": bridge_id}, out)
            case BridgeLeave(info, bridge_id):
                view = self._touch(info, now, out)
                view.bridge_id = ""
                self._note(view.linkedid, now, "bridge.leave",
                           {"channel": info.channel, "bridge": bridge_id}, out)
            case Hangup(info, cause, cause_text):
                self._remove_channel(info.uniqueid, now, cause, cause_text, out)
            case _:
                pass
        return out

    def note(self, call_id: str, kind: str, detail: Mapping[str, str], now: float) -> list[Change]:
        """A timeline entry from the engine itself (IVR steps, routing decisions).

        Kept even when the call already left the model: its AMI hangup may overtake the IVR's
        last words, and the record still wants them.
        """
        return [TimelineAdded(call_id, TimelineEntry(now, kind, dict(detail)))]

    # -- resync ------------------------------------------------------------------------------

    def resync_token(self) -> int:
        """Call before asking Asterisk for its channel list; pass the result to ``resync``."""
        return self._seq

    def resync(self, rows: Iterable[CoreShowChannel], token: int, now: float,
               lost_at: float | None = None) -> list[Change]:
        """Make the model match Asterisk's snapshot taken after ``token`` was issued.

        ``lost_at``: when the AMI link was lost (channels gone since end then); None: ``now``.
        """
        out: list[Change] = []
        present = {row.info.uniqueid: row for row in rows}
        gone_at = now if lost_at is None else min(lost_at, now)
        for uniqueid, view in list(self.channels.items()):
            # A channel created after the snapshot was requested may legitimately be missing.
            if uniqueid not in present and view.seen_seq <= token:
                self._remove_channel(uniqueid, gone_at, CAUSE_LOST, "ended while AMI was down",
                                     out, approximate=True)
        for uniqueid, row in present.items():
            if uniqueid not in self.channels:
                started = now - row.duration_s
                self._add_channel(row.info, started, out, "resync.adopted")
                self.channels[uniqueid].bridge_id = row.bridge_id
        return out

    # -- queries -----------------------------------------------------------------------------

    def live_calls(self) -> Mapping[str, Call]:
        return MappingProxyType(self.calls)

    # -- internals ---------------------------------------------------------------------------

    def _add_channel(self, info: ChannelInfo, now: float, out: list[Change], kind: str) -> None:
        if not info.uniqueid:
            return
        view = ChannelView(info.uniqueid, info.linkedid, info.channel, info.state,
                           info.state_desc, info.caller_num, info.context, info.exten,
                           seen_seq=self._seq)
        self.channels[info.uniqueid] = view
        call = self.calls.get(info.linkedid)
        if call is None:
            call = Call(info.linkedid, now, info.caller_num, info.caller_name, info.channel)
            self.calls[call.id] = call
            out.append(CallStarted(call))
        call.channels[info.uniqueid] = view
        if not call.caller_num and info.caller_num:
            # An originated channel gets its caller ID after it is created; a later channel
            # of the same call (the IVR's side) carries it.
            call.caller_num, call.caller_name = info.caller_num, info.caller_name
        self._note(call.id, now, kind, {"channel": info.channel, "caller": info.caller_num,
                                        "exten": info.exten}, out)

    def _touch(self, info: ChannelInfo, now: float, out: list[Change]) -> ChannelView:
        """The channel's view, adopting it if its Newchannel was missed (e.g. during a resync)."""
        view = self.channels.get(info.uniqueid)
        if view is None:
            self._add_channel(info, now, out, "channel.adopted")
            view = self.channels[info.uniqueid]
        view.seen_seq = self._seq
        call = self.calls.get(view.linkedid)
        if call is not None and not call.caller_num and info.caller_num:
            call.caller_num, call.caller_name = info.caller_num, info.caller_name
        return view

    def _remove_channel(self, uniqueid: str, now: float, cause: int, cause_text: str,
                        out: list[Change], approximate: bool = False) -> None:
        view = self.channels.pop(uniqueid, None)
        if view is None:
            return
        call = self.calls.get(view.linkedid)
        if call is None:
            return
        call.channels.pop(uniqueid, None)
        now = max(now, call.started_at)
        detail = {"channel": view.name, "cause": str(cause), "reason": cause_text}
        if approximate:
            detail["approximate"] = "yes"
        self._note(call.id, now, "channel.hangup", detail, out)
        # The call's outcome is the first party's: the originating channel carries the linkedid.
        if uniqueid == call.id or call.end_cause is None:
            call.end_cause, call.end_reason = cause, cause_text
        if not call.channels:
            call.ended_at = now
            del self.calls[call.id]
            out.append(CallEnded(call))

    def _note(self, call_id: str, now: float, kind: str, detail: Mapping[str, str],
              out: list[Change]) -> None:
        if call_id in self.calls:
            out.append(TimelineAdded(call_id, TimelineEntry(now, kind, dict(detail))))
