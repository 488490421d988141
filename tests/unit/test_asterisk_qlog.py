"""The Asterisk-format queue_log: the formatter's lines per event (fields as app_queue.c writes
them), and the file edge (append, rotation, never blocking)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from callcenter.acd.asterisk_qlog import AsteriskQueueLog, line
from callcenter.acd.asterisk_qlog_file import QueueLogFile
from callcenter.acd.figures import QueueEvent
from callcenter.acd.notices import SeatChanged
from tests.asterisk_queue_log import parse, parse_file

T0 = 1_764_800_000.0


def members(agent_id: str) -> list[str]:
    return ["general", "vip"] if agent_id == "a1" else ["general"]


def ev(at: float, event: str, agent: str = "", *, call: str = "1764800000.7",
       queue: str = "general", wait: float | None = None, talk: float | None = None,
       **detail: str) -> QueueEvent:
    return QueueEvent(T0 + at, queue, call, event, agent, "ordinary", wait, talk,
                      detail or None)


def feed(log: AsteriskQueueLog, *events: object) -> list[str]:
    out: list[str] = []
    for e in events:
        out += log.feed(e)
    for text in out:
        parse(text)   # every line is Asterisk's format
    return out


def seat(at: float, agent: str, old: str, new: str, reason: str = "") -> SeatChanged:
    return SeatChanged(agent, {"state": new, "reason": reason, "since": T0 + at}, old)


def test_answered_call_caller_hangs_up() -> None:
    log = AsteriskQueueLog(members)
    lines = feed(log, ev(0, "enter"), ev(5, "ring", "a1"),
                 ev(8.6, "connect", "a1", wait=8.6, agent_uniqueid="acd-abc"),
                 ev(100.9, "complete", "a1", talk=92.3, by="caller"))
    assert lines == [
        "1764800000|1764800000.7|general|NONE|ENTERQUEUE|||1",
        "1764800008|1764800000.7|general|Agent/a1|CONNECT|8|acd-abc|3",
        "1764800100|1764800000.7|general|Agent/a1|COMPLETECALLER|8|92|1",
    ]


def test_agent_hangs_up_first_and_agent_lost() -> None:
    log = AsteriskQueueLog(members)
    out = feed(log, ev(0, "enter"), ev(1, "ring", "a1"), ev(2, "connect", "a1", wait=2),
               ev(30, "complete", "a1", talk=28, by="agent"))
    assert out[-1].endswith("|Agent/a1|COMPLETEAGENT|2|28|1")
    out = feed(log, ev(40, "enter", call="c2"), ev(41, "ring", "a2", call="c2"),
               ev(42, "connect", "a2", call="c2", wait=2),
               ev(50, "agent_lost", "a2", call="c2", talk=8))
    assert out[-1] == "1764800050|c2|general|Agent/a2|COMPLETEAGENT|2|8|1"


def test_ring_no_answer_in_milliseconds_then_abandon_cancels_the_next_ring() -> None:
    log = AsteriskQueueLog(members)
    out = feed(log, ev(0, "enter", call="c1"), ev(1, "enter", call="c2"),
               ev(2, "ring", "a1", call="c2"), ev(17.25, "noanswer", "a1", call="c2"),
               ev(18, "ring", "a2", call="c2"), ev(20.5, "abandon", call="c2", wait=19.5))
    assert out[1] == "1764800001|c2|general|NONE|ENTERQUEUE|||2"
    assert out[2] == "1764800017|c2|general|Agent/a1|RINGNOANSWER|15250"
    assert out[3] == "1764800020|c2|general|Agent/a2|RINGCANCELED|2500"
    # position 2 (c1 still waits ahead), entered at 2, waited 19 s
    assert out[4] == "1764800020|c2|general|NONE|ABANDON|2|2|19"
    out = feed(log, ev(30, "abandon", call="c1", wait=30))
    assert out == ["1764800030|c1|general|NONE|ABANDON|1|1|30"]


def test_exits_overflow_closed_and_callback() -> None:
    log = AsteriskQueueLog(members)
    out = feed(log, ev(0, "enter", call="c1"), ev(60, "overflow", call="c1", target="vip"),
               ev(60, "enter", call="c1", queue="vip"),
               ev(70, "leave", call="c1", queue="vip", wait=10))
    assert out == ["1764800000|c1|general|NONE|ENTERQUEUE|||1",
                   "1764800060|c1|general|NONE|EXITWITHTIMEOUT|1|1|60",
                   "1764800060|c1|vip|NONE|ENTERQUEUE|||1",
                   "1764800070|c1|vip|NONE|EXITEMPTY|1|1|10"]
    out = feed(log, ev(100, "enter", call="c3"), ev(130, "callback", call="c3"),
               ev(300, "ring", "a1", call="c3"),
               ev(305, "connect", "a1", call="c3", wait=205),
               ev(400, "complete", "a1", call="c3", talk=95))
    assert out[1] == "1764800130|c3|general|NONE|EXITWITHKEY|1|1|1|30"
    # the call-back keeps the place: its answer counts the hold from the first entry
    assert out[2] == "1764800305|c3|general|Agent/a1|CONNECT|205|c3-agent|5"
    assert out[3] == "1764800400|c3|general|Agent/a1|COMPLETECALLER|205|95|1"


def test_transfers_end_the_queue_call() -> None:
    log = AsteriskQueueLog(members)
    out = feed(log, ev(0, "enter"), ev(1, "ring", "a1"), ev(4, "connect", "a1", wait=4),
               ev(64, "transfer", "a1", kind="number", target="13900000001"),
               ev(65, "complete", "a1", talk=61))
    assert out[-1] == ("1764800064|1764800000.7|general|Agent/a1|BLINDTRANSFER|*******0001"
                       "|number|4|60|1")
    assert len(out) == 3   # no COMPLETE after the transfer
    assert log.tracked == 0   # its end forgot it (no growth per transfer)
    out = feed(log, ev(100, "enter", call="c4"), ev(101, "ring", "a1", call="c4"),
               ev(103, "connect", "a1", call="c4", wait=3),
               # the core logs the consulted agent as the event's agent
               ev(200, "transfer", "a2", call="c4", kind="consultation", target="a2"),
               ev(260, "complete", "a2", call="c4", talk=57))
    assert out[-1] == "1764800200|c4|general|Agent/a1|ATTENDEDTRANSFER|BRIDGE|Agent/a2|3|97|1"
    # to a queue: the call enters the next queue and is logged again from there
    out = feed(log, ev(300, "enter", call="c5"), ev(301, "connect", "a1", call="c5", wait=1),
               ev(310, "transfer", "a1", call="c5", kind="queue", target="vip"),
               ev(311, "enter", call="c5", queue="vip"))
    assert out[-2].split("|")[4:7] == ["BLINDTRANSFER", "vip", "queue"]
    assert out[-1] == "1764800311|c5|vip|NONE|ENTERQUEUE|||1"


def test_members_login_pause_reasons_unpause_logout() -> None:
    log = AsteriskQueueLog(members)
    out = feed(log, seat(0, "a1", "logged_out", "not_ready", "login"),
               seat(5, "a1", "not_ready", "ready"),
               seat(9, "a1", "ready", "ringing"), seat(10, "a1", "ringing", "on_call"),
               seat(20, "a1", "on_call", "wrap_up"), seat(30, "a1", "wrap_up", "ready"),
               seat(40, "a1", "ready", "not_ready", "lunch"),
               seat(41, "a1", "not_ready", "not_ready", "lunch"),   # a phone change
               seat(50, "a1", "not_ready", "not_ready", "training"),
               seat(60, "a1", "not_ready", "logged_out"))
    assert out == [
        "1764800000|NONE|general|Agent/a1|ADDMEMBER|PAUSED",
        "1764800000|NONE|vip|Agent/a1|ADDMEMBER|PAUSED",
        "1764800005|NONE|NONE|Agent/a1|UNPAUSEALL|",
        "1764800005|NONE|general|Agent/a1|UNPAUSE|",
        "1764800005|NONE|vip|Agent/a1|UNPAUSE|",
        "1764800040|NONE|NONE|Agent/a1|PAUSEALL|lunch",
        "1764800040|NONE|general|Agent/a1|PAUSE|lunch",
        "1764800040|NONE|vip|Agent/a1|PAUSE|lunch",
        "1764800050|NONE|NONE|Agent/a1|PAUSEALL|training",
        "1764800050|NONE|general|Agent/a1|PAUSE|training",
        "1764800050|NONE|vip|Agent/a1|PAUSE|training",
        "1764800060|NONE|general|Agent/a1|REMOVEMEMBER|",
        "1764800060|NONE|vip|Agent/a1|REMOVEMEMBER|",
    ]


def test_logout_removes_from_the_queues_of_the_login() -> None:
    served = {"a3": ["general"]}
    log = AsteriskQueueLog(lambda a: served[a])
    feed(log, seat(0, "a3", "logged_out", "ready"))
    served["a3"] = ["general", "vip"]       # skills changed meanwhile
    assert feed(log, seat(9, "a3", "ready", "logged_out")) == [
        "1764800009|NONE|general|Agent/a3|REMOVEMEMBER|"]


def test_events_without_an_asterisk_equivalent_write_nothing() -> None:
    log = AsteriskQueueLog(members)
    assert feed(log, ev(0, "closed", action="callback"), ev(1, "ring", "a1"),
                ev(2, "whatever")) == []
    assert log.start(T0) == ["1764800000|NONE|NONE|NONE|QUEUESTART|"]
    parse(log.start(T0)[0])


_text = st.text(alphabet=st.sampled_from("ab1|\n\r 中"), max_size=12)


@given(call=_text, queue=_text, agent=_text, reason=_text, target=_text)
def test_no_field_breaks_the_line(call: str, queue: str, agent: str, reason: str,
                                  target: str) -> None:
    log = AsteriskQueueLog(lambda _a: [queue])
    events = [QueueEvent(T0, queue, call or "x", "enter"),
              QueueEvent(T0 + 1, queue, call or "x", "connect", agent, wait_s=1),
              QueueEvent(T0 + 2, queue, call or "x", "transfer", agent,
                         detail={"kind": "number", "target": target}),
              SeatChanged(agent or "a", {"state": "not_ready", "reason": reason,
                                         "since": T0}, "logged_out"),
              SeatChanged(agent or "a", {"state": "ready", "since": T0}, "not_ready"),
              SeatChanged(agent or "a", {"state": "not_ready", "reason": reason + "x",
                                         "since": T0}, "ready")]
    for e in events:
        for text in log.feed(e):
            assert "\n" not in text and "\r" not in text
            fields = text.split("|")
            assert len(fields) >= 6
            parse(text)
    assert line(T0, call, queue, agent, "PAUSE", reason).count("|") == 5


async def test_file_appends_survives_rotation_and_never_blocks(tmp_path: Path) -> None:
    path = tmp_path / "log" / "queue_log"
    qlog = QueueLogFile(path, members, clock=lambda: T0)
    await qlog.start()
    qlog.on_notice(ev(0, "enter"))
    await qlog.flush()
    first = path.read_text()
    assert [p.event for p in parse_file(first)] == ["QUEUESTART", "ENTERQUEUE"]
    os.rename(path, tmp_path / "log" / "queue_log.1")          # logrotate, without signals
    qlog.on_notice(ev(3, "abandon", wait=3))
    await qlog.flush()
    assert [p.event for p in parse_file(path.read_text())] == ["ABANDON"]
    assert (tmp_path / "log" / "queue_log.1").read_text() == first
    path.unlink()                                              # removed: made anew
    qlog.on_notice(seat(5, "a1", "logged_out", "ready"))
    await qlog.close()
    assert [p.event for p in parse_file(path.read_text())] == ["ADDMEMBER", "ADDMEMBER"]
    assert oct(path.stat().st_mode & 0o777) == "0o640"


async def test_a_failing_disk_loses_lines_not_the_loop(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    qlog = QueueLogFile(blocker / "queue_log", members, clock=lambda: T0)
    await qlog.start()
    qlog.on_notice(ev(0, "enter"))
    await asyncio.wait_for(qlog.flush(), 5)
    await qlog.close()
    assert blocker.read_text() == ""


# -- the ACD core's own notices, through the formatter (sans-IO end to end) --------------------


def _core_lines(hang_up_first: str) -> list[str]:
    from tests.unit.test_acd_core import hung_up, make, on_call

    core, effects, _clock = make()
    call = on_call(core, bridged=True)
    core.on_ami_event(hung_up(call.waiter.uniqueid if hang_up_first == "caller"
                              else call.agent_uniqueid))
    if hang_up_first == "caller":
        core.on_ami_event(hung_up(call.agent_uniqueid))
    log = AsteriskQueueLog(lambda _a: ["general"])
    lines = [text for e in effects for text in log.feed(e)]  # (the fake clock is at 1000 s)
    assert any(f"|CONNECT|0|{call.agent_uniqueid}|0" in text for text in lines), lines
    return lines


def test_the_core_says_who_hung_up_first() -> None:
    assert [t.split("|")[4] for t in _core_lines("caller")][-1] == "COMPLETECALLER"
    assert [t.split("|")[4] for t in _core_lines("agent")][-1] == "COMPLETEAGENT"
