"""The pure pieces of the live-ACD load benchmark: AMI events to marks, handoff matching,
summaries, the ABBA plan and the section it writes (no Asterisk, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcenter.bench_acd_load import (
    CONNECT,
    FREE,
    GONE,
    HEADING,
    JOIN,
    TITLE,
    AcdLoadResult,
    Analysis,
    Compared,
    Mark,
    Phase,
    agent_of,
    analyse,
    caller_of,
    compare,
    marks_from_events,
    phase_plan,
    relevant,
    render_section,
    summarize,
    totals,
    verdict,
)
from callcenter.bench_ivr import Machine
from callcenter.benchdoc import replace_section
from callcenter.errors import ConfigError

A1 = "Local/6001@agent-talk-0000001a"
A2 = "Local/6002@agent-talk-0000002b"
C1, C2, C3 = "acdload-ab12-0-1", "acdload-ab12-0-2", "acdload-ab12-0-3"


def ev(name: str, at: float, **headers: str) -> dict[str, str]:
    return {"Event": name, "Timestamp": f"{at:.6f}", **headers}


def parked(at: float, caller: str) -> dict[str, str]:
    return ev("UserEvent", at, UserEvent="CallCenterLegParked", Where="queue",
              Uniqueid=f"{caller}-b", Channel="Local/s@queue-hold-00000001;2")


def enter(at: float, bridge: str, *, agent: str = "", caller: str = "") -> dict[str, str]:
    if agent:
        return ev("BridgeEnter", at, BridgeUniqueid=bridge, Channel=f"{agent};1",
                  Uniqueid="engine-made-id")
    return ev("BridgeEnter", at, BridgeUniqueid=bridge, Channel="Local/s@queue-hold-1;2",
              Uniqueid=f"{caller}-b")


def test_channels_and_uniqueids_name_agents_and_callers() -> None:
    assert agent_of(f"{A1};2") == ("6001", "2")
    assert agent_of(f"{A1};1") == ("6001", "1")
    assert agent_of("Local/6001@agent-answer-0000001a;2") is None
    assert agent_of("PJSIP/6001-0000001a") is None
    assert caller_of(f"{C1}-b") == C1
    assert caller_of(C1) is None            # the caller-sim half holds the line, it waits not
    assert caller_of("sim-0123-b") is None  # not the benchmark's
    assert relevant(ev("Hangup", 1.0, Channel=f"{A1};2", Uniqueid="x"))
    assert not relevant(ev("Newchannel", 1.0, Channel=f"{A1};2", Uniqueid="x"))
    assert not relevant(ev("Hangup", 1.0, Channel="PJSIP/1001-00000001", Uniqueid="y"))


def test_events_become_joins_connections_frees_and_departures() -> None:
    events = [
        parked(10.0, C1),
        parked(10.5, C1),                            # parked again (a requeue): joined once
        ev("QueueCallerJoin", 10.2, Uniqueid=f"{C2}-b", Queue="bench-load"),
        enter(11.0, "br1", caller=C1),
        enter(11.1, "br1", agent=A1),                # the later entry makes the connection
        ev("Hangup", 15.0, Channel=f"{A1};2", Uniqueid="a"),   # the agent hangs up
        ev("Hangup", 15.01, Channel=f"{A1};1", Uniqueid="b"),  # its other half: not a free
        ev("BridgeLeave", 15.01, BridgeUniqueid="br1", Channel=f"{A1};1", Uniqueid="b"),
        ev("BridgeLeave", 15.02, BridgeUniqueid="br1", Channel="x", Uniqueid=f"{C1}-b"),
        ev("Hangup", 15.02, Channel="x", Uniqueid=f"{C1}-b"),
        enter(15.2, "br2", agent=A1),
        enter(15.3, "br2", caller=C2),
        {"Event": "Hangup", "Timestamp": "n/a", "Channel": f"{A2};2"},  # no clock: skipped
    ]
    assert marks_from_events(events) == [
        Mark(10.0, JOIN, caller=C1),
        Mark(10.2, JOIN, caller=C2),
        Mark(11.1, CONNECT, agent="6001", caller=C1),
        Mark(15.0, FREE, agent="6001"),
        Mark(15.02, GONE, caller=C1),
        Mark(15.3, CONNECT, agent="6001", caller=C2),
    ]


def test_a_caller_alone_in_a_bridge_or_a_repeated_entry_is_no_new_connection() -> None:
    events = [enter(1.0, "br1", caller=C1), enter(2.0, "br1", agent=A1),
              enter(2.5, "br1", agent=A1)]
    assert [m.kind for m in marks_from_events(events)] == [CONNECT]
    assert marks_from_events([enter(1.0, "br9", caller=C3)]) == []


def test_a_handoff_runs_from_the_free_to_that_agents_next_connection() -> None:
    marks = [
        Mark(0.0, JOIN, caller=C1), Mark(0.1, JOIN, caller=C2), Mark(0.2, JOIN, caller=C3),
        Mark(1.0, CONNECT, agent="6001", caller=C1),
        Mark(1.1, CONNECT, agent="6002", caller=C2),
        Mark(5.0, FREE, agent="6001"),                 # C3 waits
        Mark(5.004, CONNECT, agent="6001", caller=C3),  # 4 ms
        Mark(6.0, FREE, agent="6002"),                 # nobody waits: no handoff
        Mark(9.0, FREE, agent="6001"),                 # after arrivals stopped: not counted
    ]
    a = analyse(marks, start=0.0, until=8.0)
    assert a.handoffs_ms == pytest.approx([4.0])
    assert a.idle_frees == 1 and a.missed == 0
    assert a.joined == 3 and a.connected == 3
    assert a.talks_ms == pytest.approx([4000.0, 4900.0, 3996.0])
    assert a.waits_ms == pytest.approx([1000.0, 1000.0, 4804.0])
    assert a.window_s == 8.0


def test_a_free_with_callers_waiting_but_no_next_connection_is_missed() -> None:
    marks = [Mark(0.0, JOIN, caller=C1), Mark(0.5, JOIN, caller=C2),
             Mark(1.0, CONNECT, agent="6001", caller=C1), Mark(3.0, FREE, agent="6001"),
             Mark(4.0, CONNECT, agent="6002", caller=C2)]
    a = analyse(marks, start=0.0, until=10.0)
    assert a.handoffs_ms == [] and a.missed == 1
    # a caller who gave up before the free was not waiting then
    gave_up = [Mark(0.0, JOIN, caller=C1), Mark(2.0, GONE, caller=C1),
               Mark(3.0, FREE, agent="6001")]
    assert analyse(gave_up, 0.0, 10.0).idle_frees == 1


def test_a_connection_counts_once_per_caller() -> None:
    marks = [Mark(0.0, JOIN, caller=C1), Mark(1.0, CONNECT, agent="6001", caller=C1),
             Mark(2.0, CONNECT, agent="6002", caller=C1),
             Mark(20.0, CONNECT, agent="6002", caller=C2)]   # C2 never joined (no wait)
    a = analyse(marks, start=0.0, until=10.0)
    assert a.connected == 2 and a.waits_ms == [1000.0]


def test_summaries_are_percentiles_between_ranks() -> None:
    assert summarize([]) is None
    s = summarize([float(v) for v in range(1, 101)])
    assert s is not None
    assert (s.n, s.p50, s.max) == (100, 50.5, 100.0)
    assert s.p90 == pytest.approx(90.1) and s.p99 == pytest.approx(99.01)
    one = summarize([7.0])
    assert one is not None and one.p50 == one.p99 == one.max == 7.0


def test_phases_alternate_abba() -> None:
    assert phase_plan(4) == ["ours", "theirs", "theirs", "ours"]
    assert phase_plan(2) == ["ours", "theirs"]
    assert phase_plan(6)[4:] == ["ours", "theirs"]
    for bad in (0, 1, 3):
        with pytest.raises(ConfigError):
            phase_plan(bad)


def _phase(side: str, index: int, handoffs: list[float], placed: int = 10,
           connected: int = 10) -> Phase:
    return Phase(side, index, placed=placed,
                 analysis=Analysis(window_s=30.0, joined=placed, connected=connected,
                                   handoffs_ms=handoffs, talks_ms=[4000.0],
                                   waits_ms=[100.0, 200.0]))


def test_a_sides_phases_are_pooled_and_losses_counted() -> None:
    phases = [_phase("ours", 0, [3.0, 4.0]), _phase("theirs", 1, [500.0], placed=12),
              _phase("theirs", 2, [900.0]), _phase("ours", 3, [5.0])]
    ours, theirs = totals(phases, "ours"), totals(phases, "theirs")
    assert ours.handoffs_ms == [3.0, 4.0, 5.0] and ours.window_s == 60.0
    assert ours.handoffs_per_min == pytest.approx(3.0)
    assert theirs.lost == 2 and ours.lost == 0
    assert theirs.talks_ms == [4000.0, 4000.0]


def test_the_verdict_names_every_figure_where_ours_is_behind() -> None:
    fast = [_phase("ours", 0, [1.0, 2.0, 3.0]), _phase("theirs", 1, [500.0, 600.0, 900.0])]
    rows = compare(totals(fast, "ours"), totals(fast, "theirs"))
    assert not any(r.ours_worse for r in rows)
    assert "behind app_queue on no figure" in verdict(rows)
    mixed = [_phase("ours", 0, [1.0, 2.0, 1000.0], placed=11),
             _phase("theirs", 1, [500.0, 600.0, 900.0])]
    rows = compare(totals(mixed, "ours"), totals(mixed, "theirs"))
    assert "Ours is behind app_queue on: handoff p99 ms, handoff max ms, callers lost" \
        in verdict(rows)
    # more handoffs per minute is better, not worse
    per_min = next(r for r in rows if r.label == "handoffs per minute")
    assert not per_min.lower_is_better and not per_min.ours_worse
    assert Compared("x", 2.0, 1.0, lower_is_better=False).ours_worse is False
    assert Compared("x", 1.0, 2.0, lower_is_better=False).ours_worse is True
    assert Compared("x", None, 2.0).ours_worse is False
    none = [_phase("ours", 0, []), _phase("theirs", 1, [5.0])]
    assert verdict(compare(totals(none, "ours"), totals(none, "theirs"))).startswith(
        "No comparison")


def _result(phases: list[Phase]) -> AcdLoadResult:
    return AcdLoadResult(datetime(2026, 12, 3, 5, 30, tzinfo=UTC),
                         Machine(2, "Test CPU", "3.11.7", "Asterisk 22"), "0.10 0.20 0.30",
                         agents=50, backlog=10, phase_s=30.0, phases=phases)


def test_the_section_reports_both_sides_side_by_side_with_ratios() -> None:
    phases = [_phase("ours", 0, [2.0, 4.0]), _phase("theirs", 1, [400.0, 800.0]),
              _phase("theirs", 2, [600.0]), _phase("ours", 3, [3.0], placed=11)]
    text = render_section(_result(phases))
    assert text.startswith(HEADING + "\n")
    assert "Phases: ours (engine ACD), app_queue, app_queue, ours (engine ACD)." in text
    assert "| handoffs measured | 3 | 3 | |" in text
    assert "| handoff p50 ms | 3.0 | 600 | 0.005x |" in text
    assert "| handoff max ms | 4.0 | 800 | 0.005x |" in text
    assert "| handoffs per minute | 3 | 3 | 1.00x |" in text
    assert "| caller wait p50 ms | 150 | 150 | 1.00x |" in text
    assert "| callers placed / connected / lost | 21 / 20 / 1 | 20 / 20 / 0 | |" in text
    assert "| 4 | ours (engine ACD) | 30 | 11 | 10 | 1 | 1 | 3.0 | 3.0 | 3.0 | 2 |" in text
    assert "| agent talk, mean s (the same simulated agents) | 4.00 | 4.00 | |" in text
    assert "Ours is behind app_queue on: callers lost** (✗ in the table)." in text


def test_a_side_without_handoffs_renders_without_ratios() -> None:
    text = render_section(_result([_phase("ours", 0, []), _phase("theirs", 1, [])]))
    assert "| handoff p50 ms | - | - | n/a |" in text
    assert "No comparison" in text and "✗" not in text


def test_the_section_replaces_only_itself() -> None:
    doc = f"# Benchmarks\n\n## IVR\n\nivr\n\n{HEADING}\n\nold\n\n## Load\n\nload\n"
    out = replace_section(doc, TITLE, f"{HEADING}\n\nnew\n")
    assert "old" not in out and "new" in out and "## IVR\n\nivr" in out
    assert out.endswith("## Load\n\nload\n")


def test_a_figure_where_ours_is_behind_is_marked_in_the_table() -> None:
    text = render_section(_result([_phase("ours", 0, [900.0]), _phase("theirs", 1, [500.0])]))
    assert "| handoff p50 ms ✗ | 900 | 500 | 1.80x |" in text
    assert "**Ours is behind app_queue on: handoff p50 ms, handoff p90 ms" in text
