"""Routing decision time at 1000 seats x 1000 waiting callers, against a naive FIFO pick.

Run ``python -m bench.bench_routing`` (or ``python bench/bench_routing.py``) from the repository
root; it writes the ``## Routing decisions`` section of ``docs/benchmarks.md`` and nothing else
(see ``callcenter/benchdoc.py``). No Asterisk, no loop: ``acd.routing`` is sans-IO, so this times
the pure decision.

Each scenario is a seeded random state (mixed tiers, gold/platinum callers with a named manager,
a VIP team, skills, ring-no-answer exclusions), measured two ways:

- steady state: ``--decisions`` times, :func:`next_assignment` picks a call and a seat; the call
  leaves and a new one arrives, the seat goes busy and a busy one comes back, so the sizes stay
  put. Routing is timed as the engine runs it: on standing indexes (``acd/lineup.py``: a
  ``Lineup`` of the callers, ``ReadySeats``), and each timed decision includes the upkeep of the
  changes since the last one (the call that left, the one that arrived, the two seats), also
  reported on its own. The same decision on plain lists (everything ranked afresh: the API
  without indexes) and the naive reference (the oldest caller and the longest-idle ready seat,
  two ``min()`` calls) are timed on the very same state at every step, in alternating order, so
  machine drift and load weigh on all alike;
- drain: :func:`assignments` on the initial state (every ready seat gets a call), on the indexes
  and on lists, against the naive drain (sort callers by arrival and ready seats by idle time,
  pair them). Building the indexes from scratch (once, at start) is timed too.

Scenarios: ``backlog`` (waits up to 10 minutes: the longest waiters outrank any VIP head start)
and ``vip-rush`` (waits up to 60 s: fresh gold/platinum callers rank first, and those still in
their manager-only stage are passed over, after a look-up of their manager's seat).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcenter.acd.lineup import Lineup, ReadySeats
from callcenter.acd.routing import (
    Assignment,
    QueuePolicy,
    SeatView,
    WaitingCall,
    assignments,
    eligible,
    next_assignment,
    ranked,
)
from callcenter.bench_ivr import cpu_model, fmt_ratio, percentile
from callcenter.benchdoc import write_section
from callcenter.broker.interface import Tier

HEADING = "Routing decisions"
REPO_ROOT = Path(__file__).resolve().parent.parent
BUDGET_MS = 5.0          # per decision; above it routing.py needs work
GOAL_P99_MS = 0.25       # issue 12: p99 per decision at 1000 seats x 1000 callers
STEP_S = 0.3             # simulated time between decisions: ~3/s, 1000 seats at ~5 min a call
SCENARIOS = {"backlog": 600.0, "vip-rush": 60.0}   # name -> longest wait in the initial state

TIERS = (Tier.ORDINARY, Tier.SILVER, Tier.GOLD, Tier.PLATINUM)
TIER_SHARES = (0.70, 0.15, 0.10, 0.05)


@dataclass
class Scenario:
    name: str
    policy: QueuePolicy
    calls: list[WaitingCall]
    seats: list[SeatView]
    now: float
    rng: random.Random
    arrivals: int = 0
    line: Lineup = field(default_factory=Lineup)
    ready: ReadySeats = field(default_factory=ReadySeats)

    def describe(self) -> dict[str, int]:
        vip = [c for c in self.calls if c.tier in (Tier.GOLD, Tier.PLATINUM)]
        return {
            "seats": len(self.seats),
            "ready": sum(s.ready_since is not None for s in self.seats),
            "vip_team": len(self.policy.vip_team),
            "callers": len(self.calls),
            "vip": len(vip),
            "vip_with_manager": sum(c.manager is not None for c in vip),
            "own_skill": sum(c.skill is not None for c in self.calls),
            "with_exclusions": sum(bool(c.excluded) for c in self.calls),
        }


def _seat(rng: random.Random, n: int, now: float) -> SeatView:
    skills = {"stocks": rng.randint(1, 10)}
    for skill, share in (("funds", 0.5), ("margin", 0.3)):
        if rng.random() < share:
            skills[skill] = rng.randint(1, 10)
    ready = now - rng.uniform(0, 300) if rng.random() < 0.5 else None
    return SeatView(f"s{n:04}", ready, skills, rng.randint(0, 40))


def _call(rng: random.Random, n: int, now: float, seat_ids: Sequence[str],
          max_wait_s: float) -> WaitingCall:
    tier = rng.choices(TIERS, TIER_SHARES)[0]
    manager = None
    if tier in (Tier.GOLD, Tier.PLATINUM) and rng.random() < 0.6:
        manager = rng.choice(seat_ids)
    skill = rng.choice(("funds", "margin")) if rng.random() < 0.2 else None
    excluded = frozenset(rng.sample(seat_ids, rng.randint(1, 3))) if rng.random() < 0.1 else None
    arrived = now - rng.uniform(0, max_wait_s)
    return WaitingCall(f"c{n:05}", tier, arrived, manager, skill, None, excluded or frozenset())


def build_scenario(name: str, seats: int, callers: int, seed: int) -> Scenario:
    """A seeded state: ``seats`` seats (about half ready), ``callers`` callers."""
    rng = random.Random(seed)
    now = 1_000_000.0
    seat_list = [_seat(rng, n, now) for n in range(seats)]
    ids = [s.agent_id for s in seat_list]
    team = frozenset(rng.sample(ids, min(20, len(ids))))
    policy = QueuePolicy(name="hotline", skill="stocks", vip_team=team)
    calls = [_call(rng, n, now, ids, SCENARIOS[name]) for n in range(callers)]
    return Scenario(name, policy, calls, seat_list, now, rng, callers)


def _naive(calls: Sequence[WaitingCall], seats: Sequence[SeatView]) -> Assignment | None:
    """The reference: FIFO caller, longest-idle ready seat; no tiers, skills or stages."""
    ready = [s for s in seats if s.ready_since is not None]
    if not calls or not ready:
        return None
    call = min(calls, key=lambda c: c.arrived_at)
    seat = min(ready, key=lambda s: s.ready_since or 0.0)
    return Assignment(call.call_id, seat.agent_id)


def _naive_drain(calls: Sequence[WaitingCall], seats: Sequence[SeatView]) -> list[Assignment]:
    ready = sorted((s for s in seats if s.ready_since is not None),
                   key=lambda s: s.ready_since or 0.0)
    oldest = sorted(calls, key=lambda c: c.arrived_at)
    return [Assignment(c.call_id, s.agent_id) for c, s in zip(oldest, ready, strict=False)]


def _skipped(sc: Scenario) -> int:
    """Callers ranked ahead of the pick that no seat may take (each passed over by the pick)."""
    for n, call in enumerate(ranked(sc.calls, sc.policy, sc.now)):
        if any(eligible(call, s, sc.policy, sc.now) for s in sc.seats):
            return n
    return len(sc.calls)


@dataclass
class Changes:
    """What changed since the last decision, for the indexes' upkeep (timed with the next)."""

    left: list[str] = field(default_factory=list)
    arrived: list[WaitingCall] = field(default_factory=list)
    seats: list[SeatView] = field(default_factory=list)

    def apply(self, line: Lineup, ready: ReadySeats) -> None:
        for call_id in self.left:
            line.drop(call_id)
        for call in self.arrived:
            line.put(call)
        for seat in self.seats:
            ready.put(seat)


def _step(sc: Scenario, pick: Assignment) -> Changes:
    """After a decision: the call leaves, a new one arrives; the seat goes busy, one comes back.

    The lists are updated here (untimed); the indexes get the returned changes, timed."""
    changes = Changes(left=[pick.call_id])
    sc.calls = [c for c in sc.calls if c.call_id != pick.call_id]
    busy = [n for n, s in enumerate(sc.seats) if s.ready_since is None]
    for n, s in enumerate(sc.seats):
        if s.agent_id == pick.agent_id:
            sc.seats[n] = replace(s, ready_since=None, calls_taken=s.calls_taken + 1)
            changes.seats.append(sc.seats[n])
    if busy:
        back = sc.rng.choice(busy)
        sc.seats[back] = replace(sc.seats[back], ready_since=sc.now)
        changes.seats.append(sc.seats[back])
    ids = [s.agent_id for s in sc.seats]
    sc.calls.append(_call(sc.rng, sc.arrivals, sc.now, ids, 0.0))
    changes.arrived.append(sc.calls[-1])
    sc.arrivals += 1
    return changes


@dataclass
class Measured:
    scenario: str
    state: dict[str, int]
    build_s: float = 0.0
    routing_s: list[float] = field(default_factory=list)
    upkeep_s: list[float] = field(default_factory=list)
    lists_s: list[float] = field(default_factory=list)
    naive_s: list[float] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    no_pick: int = 0
    mismatches: int = 0
    drain_s: list[float] = field(default_factory=list)
    drain_count: int = 0
    lists_drain_s: list[float] = field(default_factory=list)
    naive_drain_s: list[float] = field(default_factory=list)
    naive_drain_count: int = 0


def _elapsed(t0: int) -> float:
    return (time.perf_counter_ns() - t0) / 1e9


WAYS = ("routing", "lists", "naive")


def _order(n: int) -> tuple[str, ...]:
    """The three ways in turn, reversed every other time."""
    return WAYS if n % 2 == 0 else WAYS[::-1]


def _drains(m: Measured, sc: Scenario, times: int) -> None:
    calls, seats, now, policy = list(sc.calls), list(sc.seats), sc.now, sc.policy
    for n in range(times):
        for which in _order(n):
            t0 = time.perf_counter_ns()
            if which == "routing":
                made = assignments(sc.line, sc.ready, policy, now)
                m.drain_s.append(_elapsed(t0))
                m.drain_count = len(made)
            elif which == "lists":
                made = assignments(calls, seats, policy, now)
                m.lists_drain_s.append(_elapsed(t0))
                m.mismatches += made != assignments(sc.line, sc.ready, policy, now)
            else:
                made = _naive_drain(calls, seats)
                m.naive_drain_s.append(_elapsed(t0))
                m.naive_drain_count = len(made)


def _decisions(m: Measured, sc: Scenario, times: int) -> None:
    changes = Changes()
    for n in range(times):
        sc.now += STEP_S
        calls, seats, now, policy = sc.calls, sc.seats, sc.now, sc.policy
        pick: Assignment | None = None
        plain: Assignment | None = None
        for which in _order(n):
            t0 = time.perf_counter_ns()
            if which == "routing":
                changes.apply(sc.line, sc.ready)
                t1 = time.perf_counter_ns()
                pick = next_assignment(sc.line, sc.ready, policy, now)
                m.routing_s.append(_elapsed(t0))
                m.upkeep_s.append((t1 - t0) / 1e9)
            elif which == "lists":
                plain = next_assignment(calls, seats, policy, now)
                m.lists_s.append(_elapsed(t0))
            else:
                _naive(calls, seats)
                m.naive_s.append(_elapsed(t0))
        m.mismatches += pick != plain  # untimed, as is what follows
        m.skipped.append(_skipped(sc))
        if pick is None:
            m.no_pick += 1
            changes = Changes()
        else:
            changes = _step(sc, pick)


def measure(name: str, seats: int, callers: int, decisions: int, drains: int,
            seed: int) -> Measured:
    """Drains first (on the initial state), then the steady-state decisions."""
    sc = build_scenario(name, seats, callers, seed)
    m = Measured(name, sc.describe())
    gc.collect()
    gc.disable()  # a collection inside one timed call would be noise, not routing
    try:
        t0 = time.perf_counter_ns()
        sc.line, sc.ready = Lineup(sc.calls), ReadySeats(sc.seats)
        m.build_s = _elapsed(t0)
        _drains(m, sc, drains)
        _decisions(m, sc, decisions)
    finally:
        gc.enable()
    return m


@dataclass
class Result:
    started: datetime
    argv: str
    load_before: float
    runs: list[Measured]


# -- reporting ------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.3f}"


def _machine(load: float) -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = ""
    return (f"{os.cpu_count() or 0} CPUs, {cpu_model(cpuinfo)}; Python "
            f"{platform.python_version()}; 1-minute load average before the run {load:.2f}")


def _decision_rows(m: Measured) -> list[str]:
    r, u, p, n = m.routing_s, m.upkeep_s, m.lists_s, m.naive_s
    rows = []
    for label, q in (("p50", 50.0), ("p99", 99.0)):
        a, k, c, b = percentile(r, q), percentile(u, q), percentile(p, q), percentile(n, q)
        rows.append(f"| {m.scenario} | {label} (ms) | {_ms(a)} | {_ms(k)} | {_ms(c)} | "
                    f"{_ms(b)} | {fmt_ratio(a, b)} |")
    a, k, c, b = (statistics.fmean(x) for x in (r, u, p, n))
    rows.append(f"| {m.scenario} | mean (ms) | {_ms(a)} | {_ms(k)} | {_ms(c)} | {_ms(b)} | "
                f"{fmt_ratio(a, b)} |")
    rows.append(f"| {m.scenario} | decisions per second | {1 / a:,.0f} |  | {1 / c:,.0f} | "
                f"{1 / b:,.0f} | {fmt_ratio(b, a)} |")
    rows.append(f"| {m.scenario} | callers skipped before the pick, mean / max | "
                f"{statistics.fmean(m.skipped):.1f} / {max(m.skipped)} |  |  |  |  |")
    return rows


def _drain_row(m: Measured) -> str:
    a, b = statistics.median(m.drain_s), statistics.median(m.naive_drain_s)
    c = statistics.median(m.lists_drain_s)
    per = a / m.drain_count if m.drain_count else 0.0
    return (f"| {m.scenario} | {m.drain_count} | {_ms(a)} | {_ms(per)} | {_ms(c)} | {_ms(b)} | "
            f"{fmt_ratio(a, b)} | {_ms(m.build_s)} |")


def _state_line(m: Measured) -> str:
    s = m.state
    return (f"- `{m.scenario}`: {s['seats']} seats ({s['ready']} ready; VIP team of "
            f"{s['vip_team']}), {s['callers']} callers waiting up to "
            f"{SCENARIOS[m.scenario]:g} s ({s['vip']} gold/platinum, {s['vip_with_manager']} "
            f"with a named manager; {s['own_skill']} needing a skill of their own; "
            f"{s['with_exclusions']} with ring-no-answer exclusions)")


def render_markdown(r: Result) -> str:
    worst = max(percentile(m.routing_s, 99) for m in r.runs)
    verdict = "within" if worst * 1000 <= BUDGET_MS else "**over**"
    goal = "meets" if worst * 1000 <= GOAL_P99_MS else "**misses**"
    drain_per = {m.scenario: statistics.median(m.drain_s) / max(1, m.drain_count) for m in r.runs}
    slowest = max(drain_per, key=lambda k: drain_per[k])
    drain_verdict = "within" if drain_per[slowest] * 1000 <= BUDGET_MS else "**over**"
    decisions = len(r.runs[0].routing_s)
    lines = [
        f"## {HEADING}",
        "",
        f"Written by `{r.argv}`; run it again to refresh (see `bench/README.md`). The pure "
        "routing core (`callcenter/acd/routing.py`), no Asterisk; the baseline is a naive FIFO "
        "pick in plain Python, timed on the same states in the same run.",
        "",
        f"- Run: {r.started:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {_machine(r.load_before)}",
        *(_state_line(m) for m in r.runs),
        "- Every seat has the queue's skill (`stocks`), half also `funds`, 30% also `margin`",
        f"- Steady state: {decisions} decisions {STEP_S:g} s apart; after each the call leaves "
        "and a new one arrives, the seat goes busy and a busy one becomes ready",
        "",
        "| scenario | per decision | routing `next_assignment`, indexes (upkeep included) "
        "| of which index upkeep | same on lists, from scratch | naive FIFO "
        "| routing / naive |",
        "|---|---|---:|---:|---:|---:|---:|",
        *(row for m in r.runs for row in _decision_rows(m)),
        "",
        "| scenario | `assignments` drain of the initial state: pairs | total (ms) "
        "| per pair (ms) | same on lists (ms) | naive sort and pair (ms) | routing / naive "
        "| building the indexes, once (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(_drain_row(m) for m in r.runs),
        "",
        "### How to read it",
        "",
        f"- The worst p99 per decision ({_ms(worst)} ms) is {verdict} the {BUDGET_MS:g} ms "
        f"budget and {goal} the goal of issue 12 ({GOAL_P99_MS:g} ms). It is timed as the "
        "engine runs it: on standing indexes (`callcenter/acd/lineup.py`), a `Lineup` keeping "
        "each tier's callers in line order (time never reorders a tier: every caller ages at "
        "the same rate) and `ReadySeats` keeping the ready seats longest idle first, both with "
        "`bisect`. Each timed decision includes the upkeep of what changed since the previous "
        "one (a caller left, one arrived, a seat went busy, one came back); the *upkeep* column "
        "is that part alone. A decision merges the tiers' heads in a heap of four (priority: "
        "tier head start plus aging), taking callers best first until one fits; its seat is the "
        "first fitting seat in idle order, usually the first. Callers no seat may take yet (a "
        "VIP in the manager-only stage whose manager is busy, a skill no ready seat has) are "
        "passed over before the pick: that count is the *skipped* row.",
        f"- *Same on lists* is the same decision through the same API given plain lists "
        "(callers sorted by `position_key`, ready seats scanned, at every decision): what a "
        "decision cost before the indexes. Both ways made the same picks and drains "
        f"({sum(m.mismatches for m in r.runs)} differences).",
        "- The naive pick knows nothing of tiers, skills, VIP stages or exclusions, and scans "
        "plain lists: the ratio is not a speed-up to chase. It can pick a seat the call may "
        "not go to, which routing never does.",
        f"- The drain pairs every ready seat. Per pair it is {drain_verdict} the budget "
        f"(slowest: `{slowest}`, {_ms(drain_per[slowest])} ms a pair): `assignments` walks the "
        "same line once, best first, each caller taking its best free seat (a skill's seats are "
        "filtered once from the idle order), and stops when the seats run out. Building both "
        "indexes from scratch (last column) happens once, when the engine starts; after that "
        "they are kept up to date.",
        "- Timed with `time.perf_counter_ns`, garbage collection off around the timed calls. "
        "p99 is sensitive to other load on the machine (see the load average); the naive "
        "column, timed alternately on the same states, shows how much.",
    ]
    return "\n".join(lines) + "\n"


def render_summary(r: Result) -> str:
    out = []
    for m in r.runs:
        p50, p99 = percentile(m.routing_s, 50), percentile(m.routing_s, 99)
        n50 = percentile(m.naive_s, 50)
        l50, l99 = percentile(m.lists_s, 50), percentile(m.lists_s, 99)
        out.append(f"{m.scenario}: routing p50 {_ms(p50)} ms, p99 {_ms(p99)} ms (upkeep p50 "
                   f"{_ms(percentile(m.upkeep_s, 50))} ms), "
                   f"{1 / statistics.fmean(m.routing_s):,.0f} decisions/s; on lists p50 "
                   f"{_ms(l50)} ms, p99 {_ms(l99)} ms; naive p50 "
                   f"{_ms(n50)} ms ({fmt_ratio(p50, n50)}); skipped mean "
                   f"{statistics.fmean(m.skipped):.1f}; drain of {m.drain_count} in "
                   f"{_ms(statistics.median(m.drain_s))} ms (lists "
                   f"{_ms(statistics.median(m.lists_drain_s))} ms); index build "
                   f"{_ms(m.build_s)} ms; differences {m.mismatches}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_routing",
                                     description="Routing decision time vs. a naive FIFO pick.")
    parser.add_argument("--seats", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=500, help="per scenario")
    parser.add_argument("--drains", type=int, default=3, help="per scenario")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                        help="run only this one (repeatable; default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if min(args.seats, args.callers, args.decisions, args.drains) < 1:
        parser.error("--seats, --callers, --decisions and --drains must be >= 1")
    shown = " ".join(["python -m bench.bench_routing",
                      *(sys.argv[1:] if argv is None else argv)])
    load = os.getloadavg()[0]
    started = datetime.now(UTC)
    runs = [measure(name, args.seats, args.callers, args.decisions, args.drains, args.seed)
            for name in (args.scenario or list(SCENARIOS))]
    result = Result(started, shown, load, runs)
    print(render_summary(result))
    if not args.no_write:
        write_section(args.output, HEADING, render_markdown(result))
        print(f"section '## {HEADING}' written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
