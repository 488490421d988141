"""Routing decisions made fast (issue 12) must stay the same decisions.

The oracle below is the routing algorithm as it was before the decision was made lazy, written
out the straightforward way and kept here on purpose (it does not import routing's internals, so
a later change to them cannot move the oracle with it): rank every waiting call by priority
(tier head start plus aging, then ``position_key``, then ``call_id``, then input position), walk
that line and give the first call some seat may take its best such seat; ``assignments`` repeats
that, removing every entry of the call's id and of the agent's id each time.

The states are seeded and random: mixed tiers (equal and missing weights too), managers, a VIP
team, skills, ring-no-answer exclusions, duplicate call and agent ids, equal arrival times,
callback position keys (some in the future), presence or none, and times on, just before and just
after the VIP stage boundaries. No wall-clock time is asserted anywhere: the speed is measured by
``python -m bench.bench_routing`` (docs/benchmarks.md, ``## Routing decisions``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

import pytest

from callcenter.acd.lineup import Lineup, ReadySeats
from callcenter.acd.routing import (  # _Line and friends: the shortcuts, tested as such
    Assignment,
    Present,
    QueuePolicy,
    SeatView,
    WaitingCall,
    _best_admitted,
    _Line,
    _seat_rank,
    _standing_line,
    assignments,
    next_assignment,
    position,
    ranked,
)
from callcenter.broker.interface import Tier

# -- the oracle: the old algorithm, straightforward ----------------------------------------------

VIPS = frozenset({Tier.GOLD, Tier.PLATINUM})


def old_priority(call: WaitingCall, policy: QueuePolicy, now: float) -> float:
    key = call.arrived_at if call.position_key is None else call.position_key
    return policy.tier_weights.get(call.tier, 0.0) + policy.aging_per_second * max(0.0, now - key)


def old_ranked(waiting: Sequence[WaitingCall], policy: QueuePolicy,
               now: float) -> list[WaitingCall]:
    def rank(n: int) -> tuple[float, float, str, int]:
        call = waiting[n]
        key = call.arrived_at if call.position_key is None else call.position_key
        return (-old_priority(call, policy, now), key, call.call_id, n)
    return [waiting[n] for n in sorted(range(len(waiting)), key=rank)]


def old_skill(call: WaitingCall, policy: QueuePolicy) -> str | None:
    return call.skill if call.skill is not None else policy.skill


def old_can_take(agent: str, call: WaitingCall, skill: str | None, present: Present) -> bool:
    skills = present.get(agent)
    return (skills is not None and agent not in call.excluded
            and (skill is None or not skills.get(skill, 0) < 1))


def old_stage_ends(call: WaitingCall, policy: QueuePolicy,
                   present: Present | None) -> tuple[float, float] | None:
    if call.tier not in VIPS:
        return None
    manager = call.manager or None
    if present is None:
        manager_on, team_on = manager is not None, bool(policy.vip_team)
    else:
        skill = old_skill(call, policy)
        manager_on = manager is not None and old_can_take(manager, call, skill, present)
        team_on = any(agent != manager and old_can_take(agent, call, skill, present)
                      for agent in policy.vip_team)
    manager_end = call.arrived_at + policy.manager_first_s if manager_on else call.arrived_at
    vip_end = call.arrived_at + policy.vip_team_s if team_on else manager_end
    return manager_end, max(manager_end, vip_end)


def old_eligible(call: WaitingCall, seat: SeatView, policy: QueuePolicy, now: float,
                 present: Present | None) -> bool:
    if seat.ready_since is None or seat.agent_id in call.excluded:
        return False
    skill = old_skill(call, policy)
    if skill is not None and seat.skills.get(skill, 0) < 1:
        return False
    stages = old_stage_ends(call, policy, present)
    if stages is None:
        return True
    manager_end, vip_end = stages
    if now < manager_end:
        return seat.agent_id == call.manager
    if now < vip_end:
        return seat.agent_id == call.manager or seat.agent_id in policy.vip_team
    return True


def old_seat_key(seat: SeatView, call: WaitingCall,
                 policy: QueuePolicy) -> tuple[float, float, str]:
    ready = seat.ready_since if seat.ready_since is not None else math.inf
    if policy.seat_choice == "skill_level":
        skill = old_skill(call, policy)
        level = seat.skills.get(skill, 0) if skill is not None else 0
        return (-level, ready, seat.agent_id)
    if policy.seat_choice == "fewest_calls":
        return (seat.calls_taken, ready, seat.agent_id)
    return (ready, 0.0, seat.agent_id)


def old_next(waiting: Sequence[WaitingCall], seats: Sequence[SeatView], policy: QueuePolicy,
             now: float, present: Present | None) -> Assignment | None:
    for call in old_ranked(waiting, policy, now):
        fits = [s for s in seats if old_eligible(call, s, policy, now, present)]
        if fits:
            best = min(fits, key=lambda s: old_seat_key(s, call, policy))
            return Assignment(call.call_id, best.agent_id)
    return None


def old_assignments(waiting: Sequence[WaitingCall], seats: Sequence[SeatView],
                    policy: QueuePolicy, now: float,
                    present: Present | None) -> list[Assignment]:
    out: list[Assignment] = []
    calls, free = list(waiting), list(seats)
    while (pick := old_next(calls, free, policy, now, present)) is not None:
        out.append(pick)
        calls = [c for c in calls if c.call_id != pick.call_id]
        free = [s for s in free if s.agent_id != pick.agent_id]
    return out


# -- seeded random states -------------------------------------------------------------------------

SKILLS = ("stocks", "funds", "margin")
CHOICES = ("longest_idle", "skill_level", "fewest_calls")


def random_policy(rng: random.Random, agents: Sequence[str]) -> QueuePolicy:
    weights = {tier: float(rng.choice((0, 5, 10, 30, 60, 90)))
               for tier in Tier if rng.random() < 0.85}
    manager_first = float(rng.choice((0, 5, 20)))
    return QueuePolicy(
        name="q",
        skill=rng.choice((None, "stocks", "stocks")),
        tier_weights=weights,
        aging_per_second=rng.choice((0.3, 0.5, 1.0, 2.0)),
        manager_first_s=manager_first,
        vip_team_s=manager_first + rng.choice((0, 5, 20)),
        vip_team=frozenset(rng.sample(list(agents), rng.randint(0, min(4, len(agents))))),
        seat_choice=rng.choice(CHOICES),  # type: ignore[arg-type]
    )


def random_time(rng: random.Random, integral: bool) -> float:
    return float(rng.randint(0, 60)) if integral else rng.uniform(0.0, 60.0)


def random_state(rng: random.Random, size: int) -> tuple[
        list[WaitingCall], list[SeatView], QueuePolicy, float, Present | None]:
    integral = rng.random() < 0.5            # whole seconds: many equal keys and priorities
    agents = [f"a{n:02}" for n in range(rng.randint(2, max(2, size)))]
    policy = random_policy(rng, agents)
    seats = []
    for _ in range(rng.randint(0, size)):
        skills = {skill: rng.randint(0, 3) for skill in SKILLS if rng.random() < 0.7}
        ready = None if rng.random() < 0.3 else random_time(rng, integral)
        seats.append(SeatView(rng.choice(agents), ready, skills, rng.randint(0, 3)))
    ids = [f"c{n:03}" for n in range(size)]
    calls: list[WaitingCall] = []
    for _ in range(rng.randint(size // 2, size)):
        tier = rng.choice(list(Tier))
        arrived = random_time(rng, integral)
        key = None if rng.random() < 0.8 else arrived - random_time(rng, integral) + 30.0
        calls.append(WaitingCall(
            rng.choice(ids) if rng.random() < 0.2 else ids[len(calls)],
            tier,
            arrived,
            manager=rng.choice((None, "", *agents)) if tier in VIPS else rng.choice((None, "a00")),
            skill=rng.choice((None, None, *SKILLS)),
            position_key=key,
            excluded=frozenset(rng.sample(agents, rng.randint(0, min(3, len(agents))))
                               if rng.random() < 0.3 else ()),
        ))
    boundaries = [c.arrived_at + stage + nudge for c in calls if c.tier in VIPS
                  for stage in (0.0, policy.manager_first_s, policy.vip_team_s)
                  for nudge in (-0.5, 0.0, 0.5)]
    if boundaries and rng.random() < 0.6:
        now = rng.choice(boundaries)
    else:
        now = random_time(rng, integral) + rng.choice((0.0, 20.0, 60.0))
    present: dict[str, Mapping[str, int]] | None = None
    if rng.random() < 0.6:
        present = {s.agent_id: s.skills for s in seats if s.ready_since is not None}
        for agent in rng.sample(agents, rng.randint(0, len(agents))):
            present.setdefault(agent, {skill: rng.randint(0, 3) for skill in SKILLS
                                       if rng.random() < 0.7})
    return calls, seats, policy, now, present


def states(seed: int, count: int, size: int) -> list[tuple[
        list[WaitingCall], list[SeatView], QueuePolicy, float, Present | None]]:
    rng = random.Random(seed)
    return [random_state(rng, rng.randint(max(1, size // 4), size)) for _ in range(count)]


# -- the comparisons -------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "count", "size"), [(12, 300, 16), (1012, 100, 60)])
def test_same_decisions_as_the_old_algorithm(seed: int, count: int, size: int) -> None:
    for n, (calls, seats, policy, now, here) in enumerate(states(seed, count, size)):
        where = f"state {n} of seed {seed}"
        expected = old_assignments(calls, seats, policy, now, here)
        assert assignments(calls, seats, policy, now, present=here) == expected, where
        first = expected[0] if expected else None
        assert next_assignment(calls, seats, policy, now, present=here) == first, where
        assert old_next(calls, seats, policy, now, here) == first, where  # the oracle agrees


@pytest.mark.parametrize("seed", [7, 8])
def test_same_line_as_the_old_ranking(seed: int) -> None:
    """The line a decision walks (lazily, tier by tier) is the old ranking, entry for entry
    (the very objects: equal keys, equal priorities and repeated ids included), and so are
    ``ranked`` and ``position``."""
    for calls, _, policy, now, _ in states(seed, 150, 40):
        want = [id(c) for c in old_ranked(calls, policy, now)]
        assert [id(c) for c in _Line(calls, policy, now)] == want
        assert [id(c) for c in ranked(calls, policy, now)] == want
        for call in calls[:5]:
            first = next(n for n, c in enumerate(old_ranked(calls, policy, now), start=1)
                         if c.call_id == call.call_id)
            assert position(call.call_id, calls, policy, now) == first


def test_line_merges_tiers_by_priority_not_by_age() -> None:
    """Spelled out: a platinum caller who just arrived is ahead of ordinary callers who waited
    less than the head start, behind those who waited longer; equal keys go by ``call_id``."""
    policy = QueuePolicy(name="q", tier_weights={Tier.PLATINUM: 30.0})
    calls = [WaitingCall("o-late", Tier.ORDINARY, 80.0), WaitingCall("p", Tier.PLATINUM, 99.0),
             WaitingCall("o-old", Tier.ORDINARY, 60.0), WaitingCall("b", Tier.ORDINARY, 60.0),
             WaitingCall("g", Tier.GOLD, 60.0)]
    assert [c.call_id for c in _Line(calls, policy, 100.0)] == ["b", "g", "o-old", "p", "o-late"]
    assert list(_Line([], policy, 100.0)) == []


@pytest.mark.parametrize("seed", [21, 22])
def test_best_admitted_is_the_plain_minimum(seed: int) -> None:
    """The seat shortcut (longest idle by its floats, then a walk in idle order) picks what the
    plain ``min`` over the admitted seats picks, ties on ``ready_since`` included."""
    rng = random.Random(seed)
    for _ in range(400):
        seats = [SeatView(f"a{rng.randint(0, 9)}", float(rng.randint(0, 6)),
                          {"funds": rng.randint(0, 1)}, rng.randint(0, 2))
                 for _ in range(rng.randint(0, 12))]
        barred = frozenset(f"a{n}" for n in rng.sample(range(10), rng.randint(0, 9)))
        skill = rng.choice((None, "funds"))
        admits = admitting(skill, barred)
        for choice in CHOICES:
            rank = _seat_rank(skill, choice)  # type: ignore[arg-type]
            want = min(filter(admits, seats), key=rank, default=None)
            assert _best_admitted(seats, rank, admits) is want


def admitting(skill: str | None, barred: frozenset[str]) -> Callable[[SeatView], bool]:
    def admits(seat: SeatView) -> bool:
        return (skill is None or seat.skills.get(skill, 0) >= 1) and seat.agent_id not in barred
    return admits


def test_same_decisions_in_a_steady_state() -> None:
    """As the benchmark drives it: a pick leaves, a caller arrives, a seat goes busy, one comes
    back, the clock moves on (through VIP stage boundaries) between decisions."""
    rng = random.Random(2012)
    for _ in range(6):
        calls, seats, policy, now, here = random_state(rng, 80)
        arrivals = 0
        for _ in range(40):
            now += rng.choice((0.3, 1.0, 5.0))
            pick = next_assignment(calls, seats, policy, now, present=here)
            assert pick == old_next(calls, seats, policy, now, here)
            if pick is None:
                continue
            calls = [c for c in calls if c.call_id != pick.call_id]
            busy = [n for n, s in enumerate(seats) if s.ready_since is None]
            seats = [SeatView(s.agent_id, None, s.skills, s.calls_taken + 1)
                     if s.agent_id == pick.agent_id else s for s in seats]
            if busy:
                back = rng.choice(busy)
                seats[back] = SeatView(seats[back].agent_id, now, seats[back].skills,
                                       seats[back].calls_taken)
            arrivals += 1
            calls.append(WaitingCall(f"n{arrivals:03}", rng.choice(list(Tier)), now,
                                     rng.choice((None, "a00", "a01")),
                                     rng.choice((None, *SKILLS))))


def test_large_state_matches_at_every_stage_boundary() -> None:
    """One bench-like state (300 callers, 120 seats, a VIP team), decided at each boundary."""
    rng = random.Random(4012)
    agents = [f"s{n:03}" for n in range(120)]
    policy = QueuePolicy(name="hotline", skill="stocks", vip_team=frozenset(agents[:8]))
    seats = [SeatView(agent, rng.uniform(0, 50) if rng.random() < 0.4 else None,
                      {"stocks": rng.randint(1, 9),
                       **({"funds": 2} if rng.random() < 0.4 else {})}, rng.randint(0, 9))
             for agent in agents]
    calls = [WaitingCall(f"c{n:03}", rng.choices(list(Tier), (70, 15, 10, 5))[0],
                         rng.uniform(0, 60), rng.choice((None, *agents[:30])),
                         rng.choice((None, None, None, "funds", "margin")),
                         excluded=frozenset(rng.sample(agents, 2)))
             for n in range(300)]
    here = {s.agent_id: s.skills for s in seats if s.ready_since is not None or rng.random() < .5}
    times = sorted({c.arrived_at + d for c in calls if c.tier in VIPS for d in (20.0, 40.0)})
    for now in times[::5]:
        for present in (None, here):
            want = old_next(calls, seats, policy, now, present)
            assert next_assignment(calls, seats, policy, now, present=present) == want
    now = times[len(times) // 2]
    assert assignments(calls, seats, policy, now) == old_assignments(calls, seats, policy, now,
                                                                      None)


# -- standing indexes (Lineup, ReadySeats), kept up to date step by step --------------------------


def unique_by_id(calls: Sequence[WaitingCall],
                 seats: Sequence[SeatView]) -> tuple[list[WaitingCall], list[SeatView]]:
    """The last entry of each ``call_id`` and ``agent_id``: what an index keeps of the lists."""
    by_call = {c.call_id: c for c in calls}
    by_agent = {s.agent_id: s for s in seats}
    return list(by_call.values()), list(by_agent.values())


@pytest.mark.parametrize(("seed", "count", "size"), [(112, 300, 16), (1112, 100, 60)])
def test_standing_indexes_decide_as_the_old_algorithm(seed: int, count: int, size: int) -> None:
    """Given a Lineup and ReadySeats instead of lists (either or both), every decision is the
    old algorithm's on the same calls and seats."""
    for n, (raw_calls, raw_seats, policy, now, here) in enumerate(states(seed, count, size)):
        calls, seats = unique_by_id(raw_calls, raw_seats)
        line, ready = Lineup(raw_calls), ReadySeats(raw_seats)
        assert len(line) == len(calls) and len(ready) == sum(
            s.ready_since is not None for s in seats)
        where = f"state {n} of seed {seed}"
        expected = old_assignments(calls, seats, policy, now, here)
        first = expected[0] if expected else None
        assert [id(c) for c in _standing_line(line, policy, now)] == [
            id(c) for c in old_ranked(calls, policy, now)], where
        for waiting, free in ((line, ready), (line, seats), (calls, ready)):
            assert assignments(waiting, free, policy, now, present=here) == expected, where
            assert next_assignment(waiting, free, policy, now, present=here) == first, where


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_standing_indexes_through_arrivals_leaves_and_seat_changes(seed: int) -> None:
    """An index updated call by call and seat by seat (arrivals, leaves, ring-no-answer
    exclusions put again, moves to a new place, seats going busy, not ready, ready again, the
    clock moving through VIP stage boundaries) decides at every step as the old algorithm does
    from scratch on the plain state, with ``skip`` too."""
    rng = random.Random(seed)
    for _ in range(4):
        raw_calls, raw_seats, policy, now, _ = random_state(rng, 70)
        calls_list, seats_list = unique_by_id(raw_calls, raw_seats)
        calls = {c.call_id: c for c in calls_list}
        seats = {s.agent_id: s for s in seats_list}
        agents = sorted({*seats, *policy.vip_team, "a00", "a01"})
        line, ready = Lineup(calls.values()), ReadySeats(seats.values())
        arrivals = 0
        for step in range(120):
            now += rng.choice((0.0, 0.3, 1.0, 5.0, 20.0))
            here: dict[str, Mapping[str, int]] | None = None
            if rng.random() < 0.6:
                here = {a: s.skills for a, s in seats.items() if s.ready_since is not None}
                for agent in rng.sample(agents, rng.randint(0, 3)):
                    here.setdefault(agent, {"stocks": 1})
            plain_calls, plain_seats = list(calls.values()), list(seats.values())
            want = old_assignments(plain_calls, plain_seats, policy, now, here)
            where = f"step {step} of seed {seed}"
            assert assignments(line, ready, policy, now, present=here) == want, where
            pick = next_assignment(line, ready, policy, now, present=here)
            assert pick == (want[0] if want else None), where
            ringing = frozenset(rng.sample(sorted(calls), min(len(calls), rng.randint(0, 3))))
            rest = [c for c in plain_calls if c.call_id not in ringing]
            assert next_assignment(
                line, ready, policy, now, present=here,
                skip=lambda c: c.call_id in ringing,  # noqa: B023 (used at once)
            ) == old_next(rest, plain_seats, policy, now, here), where
            # the state moves on, and the indexes with it
            if pick is not None:
                del calls[pick.call_id]
                assert line.drop(pick.call_id) is not None
                taken = seats[pick.agent_id]
                seats[pick.agent_id] = SeatView(taken.agent_id, None, taken.skills,
                                                taken.calls_taken + 1)
                ready.put(seats[pick.agent_id])
            for _ in range(rng.randint(0, 3)):
                event = rng.random()
                if event < 0.35:  # a caller arrives (a call-back may keep an older place)
                    arrivals += 1
                    tier = rng.choice(list(Tier))
                    call = WaitingCall(
                        f"n{arrivals:03}", tier, now,
                        rng.choice((None, *agents[:4])) if tier in VIPS else None,
                        rng.choice((None, None, *SKILLS)),
                        position_key=now - rng.choice((0.0, 0.0, 30.0, 90.0)))
                    calls[call.call_id] = call
                    line.put(call)
                elif event < 0.5 and calls:  # a caller hangs up
                    gone = rng.choice(sorted(calls))
                    del calls[gone]
                    assert line.drop(gone) is not None
                elif event < 0.6 and calls:  # ring-no-answer, or moved (a new place)
                    old = calls[rng.choice(sorted(calls))]
                    new = WaitingCall(old.call_id, old.tier, old.arrived_at, old.manager,
                                      old.skill, rng.choice((old.key, now)),
                                      old.excluded | {rng.choice(agents)})
                    calls[new.call_id] = new
                    line.put(new)
                elif seats:  # a seat changes state: busy or not ready, or ready (again)
                    agent = rng.choice(sorted(seats))
                    seat = seats[agent]
                    since = rng.choice((None, now, now - 1.0))
                    seats[agent] = SeatView(agent, since, seat.skills, seat.calls_taken)
                    ready.put(seats[agent])
            assert line.drop("no such call") is None
            assert sorted(c.call_id for c in line) == sorted(calls)
            assert [s.agent_id for s in ready.by_idle()] == [
                s.agent_id for s in sorted((s for s in seats.values()
                                            if s.ready_since is not None),
                                           key=lambda s: (s.ready_since, s.agent_id))]


def test_lineup_keeps_each_tier_in_line_order() -> None:
    line = Lineup([WaitingCall("b", Tier.GOLD, 5.0), WaitingCall("a", Tier.GOLD, 5.0),
                   WaitingCall("c", Tier.GOLD, 1.0, position_key=9.0),
                   WaitingCall("o", Tier.ORDINARY, 2.0)])
    assert dict(line.tiers()) == {Tier.GOLD: [(5.0, "a"), (5.0, "b"), (9.0, "c")],
                                  Tier.ORDINARY: [(2.0, "o")]}
    line.put(WaitingCall("a", Tier.ORDINARY, 7.0))  # replaced: another tier, another place
    assert line.drop("o") is not None and "o" not in line and "a" in line
    assert dict(line.tiers()) == {Tier.GOLD: [(5.0, "b"), (9.0, "c")],
                                  Tier.ORDINARY: [(7.0, "a")]}
    assert line.get("a") == WaitingCall("a", Tier.ORDINARY, 7.0)
    ready = ReadySeats([SeatView("x", 3.0), SeatView("w", 3.0), SeatView("z", None),
                        SeatView("y", 1.0)])
    assert [s.agent_id for s in ready.by_idle()] == ["y", "w", "x"] and "z" not in ready
    ready.put(SeatView("y", None))
    ready.put(SeatView("w", 4.0))
    assert [s.agent_id for s in ready.by_idle()] == ["x", "w"] and len(ready) == 2
    assert ready.drop("y") is None and ready.get("x") == SeatView("x", 3.0)
