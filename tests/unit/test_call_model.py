"""The live call model, driven by typed events without a loop or a socket."""

from __future__ import annotations

from callcenter.atcc.model import (
    CAUSE_LOST,
    CallEnded,
    CallModel,
    CallStarted,
    Change,
    TimelineAdded,
)
from callcenter.telephony.ami_events import (
    BridgeEnter,
    ChannelInfo,
    CoreShowChannel,
    Hangup,
    NewChannel,
    NewState,
)


def info(uid: str, linked: str, name: str = "", state: int = 4, desc: str = "Ring") -> ChannelInfo:
    return ChannelInfo(uid, linked, name or f"Local/{uid}", state, desc, "138", "sim",
                       "hotline", "9500")


def kinds(changes: list[Change]) -> list[str]:
    out = []
    for c in changes:
        if isinstance(c, TimelineAdded):
            out.append(c.entry.kind)
        else:
            out.append(type(c).__name__)
    return out


def test_a_call_is_its_linkedid_and_ends_with_its_last_channel() -> None:
    m = CallModel()
    assert kinds(m.apply(NewChannel(info("a", "a")), 1.0)) == ["CallStarted", "channel.new"]
    assert kinds(m.apply(NewChannel(info("b", "a")), 1.1)) == ["channel.new"]
    assert set(m.calls) == {"a"} and set(m.calls["a"].channels) == {"a", "b"}
    assert kinds(m.apply(NewState(info("b", "a", state=6, desc="Up")), 1.2)) == ["channel.state"]
    # a repeated state is not news
    assert m.apply(NewState(info("b", "a", state=6, desc="Up")), 1.3) == []
    assert kinds(m.apply(BridgeEnter(info("b", "a"), "br1"), 1.4)) == ["bridge.enter"]
    assert m.channels["b"].bridge_id == "br1"
    assert kinds(m.apply(Hangup(info("b", "a"), 16, "Normal Clearing"), 2.0)) == [
        "channel.hangup"]
    out = m.apply(Hangup(info("a", "a"), 17, "User busy"), 3.0)
    assert kinds(out) == ["channel.hangup", "CallEnded"]
    ended = out[-1]
    assert isinstance(ended, CallEnded)
    # the originating channel (uniqueid == linkedid) decides the outcome
    assert ended.call.end_cause == 17 and ended.call.ended_at == 3.0
    assert m.calls == {} and m.channels == {}


def test_unknown_hangup_is_ignored_and_missed_newchannel_is_adopted() -> None:
    m = CallModel()
    assert m.apply(Hangup(info("zz", "zz"), 16, ""), 1.0) == []
    out = m.apply(NewState(info("x", "x", state=6, desc="Up")), 1.0)
    assert isinstance(out[0], CallStarted)
    assert "channel.adopted" in kinds(out)


def test_resync_ends_vanished_calls_and_adopts_unknown_ones() -> None:
    m = CallModel()
    m.apply(NewChannel(info("old", "old")), 1.0)
    token = m.resync_token()
    # created after the snapshot was requested: must survive even though the snapshot lacks it
    m.apply(NewChannel(info("new", "new")), 2.0)
    row = CoreShowChannel(info("found", "found", state=6, desc="Up"), "AGI", "", 30)
    out = m.resync([row], token, 100.0)
    ended = [c for c in out if isinstance(c, CallEnded)]
    assert [c.call.id for c in ended] == ["old"]
    assert ended[0].call.end_cause == CAUSE_LOST
    assert set(m.calls) == {"new", "found"}
    assert m.calls["found"].started_at == 70.0  # now minus the reported duration


def test_a_call_gone_during_an_outage_ends_when_the_link_was_lost() -> None:
    m = CallModel()
    m.apply(NewChannel(info("c", "c")), 10.0)
    out = m.resync([], m.resync_token(), 100.0, lost_at=40.0)
    ended = [c for c in out if isinstance(c, CallEnded)]
    assert ended[0].call.ended_at == 40.0  # not 100: the resync came later
    hangup = [c for c in out if isinstance(c, TimelineAdded)][-1].entry
    assert hangup.at == 40.0 and hangup.detail["approximate"] == "yes"
    # a link lost before the call was seen (clock skew) never ends it before it started
    m.apply(NewChannel(info("d", "d")), 50.0)
    out = m.resync([], m.resync_token(), 100.0, lost_at=45.0)
    assert [c.call.ended_at for c in out if isinstance(c, CallEnded)] == [50.0]


def test_engine_notes_reach_ended_calls_too() -> None:
    m = CallModel()
    out = m.note("gone", "ivr.end", {"outcome": "completed"}, 5.0)
    assert isinstance(out[0], TimelineAdded) and out[0].call_id == "gone"


def test_caller_number_comes_from_a_later_channel_when_the_first_has_none() -> None:
    m = CallModel()
    first = ChannelInfo("a", "a", "Local/9500@hotline-1;1", 4, "Ring", "", "", "hotline", "9500")
    m.apply(NewChannel(first), 1.0)
    m.apply(NewChannel(info("b", "a")), 1.1)
    assert m.calls["a"].caller_num == "138"
