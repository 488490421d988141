"""ACD routing core: priority, aging, VIP staging, presence, skills, seat choice, timers, wait
reasons."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.acd.routing import (
    Assignment,
    Present,
    QueuePolicy,
    SeatChoice,
    SeatView,
    WaitCode,
    WaitingCall,
    WaitReason,
    assignments,
    eligible,
    estimated_wait,
    next_assignment,
    next_change_at,
    position,
    priority,
    wait_reason,
)
from callcenter.broker.interface import Tier

POLICY = QueuePolicy(name="hotline", vip_team=frozenset({"v1", "v2"}))


def seat(agent: str, ready: float | None = 0.0, skills: dict[str, int] | None = None,
         calls: int = 0) -> SeatView:
    return SeatView(agent, ready, skills or {}, calls)


def test_platinum_arriving_later_is_served_first() -> None:
    calls = [WaitingCall("ord", Tier.ORDINARY, 0.0, None, None),
             WaitingCall("plat", Tier.PLATINUM, 10.0, None, None)]
    # platinum without a manager starts at the VIP-team stage; a VIP seat takes it
    assert next_assignment(calls, [seat("v1")], POLICY, 11.0) == Assignment("plat", "v1")
    # without a VIP team configured there is no staging at all
    plain = QueuePolicy(name="plain")
    assert next_assignment(calls, [seat("a")], plain, 11.0) == Assignment("plat", "a")


def test_aging_lets_the_ordinary_caller_through() -> None:
    plain = QueuePolicy(name="plain")
    ordinary = WaitingCall("ord", Tier.ORDINARY, 0.0, None, None)
    plat = WaitingCall("plat", Tier.PLATINUM, 50.0, None, None)
    # ord: 0 + t; plat: 90 + (t - 50) = 40 + t -> platinum always 40 s ahead here
    assert next_assignment([ordinary, plat], [seat("a")], plain, 60.0) == Assignment("plat", "a")
    # a platinum arriving at 90 s ties (90 + 0 == 0 + 90) and loses on position_key
    tie = WaitingCall("plat", Tier.PLATINUM, 90.0, None, None)
    assert priority(tie, plain, 90.0) == priority(ordinary, plain, 90.0) == 90.0
    assert next_assignment([tie, ordinary], [seat("a")], plain, 90.0) == Assignment("ord", "a")
    # arriving later than the starvation bound, the ordinary caller is strictly ahead
    assert plain.starvation_bound_s == 90.0
    late = WaitingCall("plat", Tier.PLATINUM, 90.5, None, None)
    assert next_assignment([late, ordinary], [seat("a")], plain, 91.0) == Assignment("ord", "a")
    silver = WaitingCall("sil", Tier.SILVER, 20.0, None, None)
    assert priority(silver, plain, 25.0) == 35.0
    assert position("sil", [ordinary, silver], plain, 25.0) == 1


def test_vip_with_manager_stages() -> None:
    call = WaitingCall("g", Tier.GOLD, 100.0, "mgr", None)
    mgr, vip, other = seat("mgr"), seat("v1"), seat("x")
    for now in (100.0, 119.9):
        assert [eligible(call, s, POLICY, now) for s in (mgr, vip, other)] == [True, False, False]
    for now in (120.0, 139.9):
        assert [eligible(call, s, POLICY, now) for s in (mgr, vip, other)] == [True, True, False]
    assert [eligible(call, s, POLICY, 140.0) for s in (mgr, vip, other)] == [True, True, True]
    # manager not ready: the call simply waits for the stage to pass
    assert next_assignment([call], [seat("mgr", None), other, vip], POLICY, 110.0) is None
    assert next_assignment([call], [other, vip], POLICY, 125.0) == Assignment("g", "v1")
    # an ordinary call behind it may take the seat the VIP cannot
    ordinary = WaitingCall("o", Tier.ORDINARY, 0.0, None, None)
    assert next_assignment([call, ordinary], [other], POLICY, 110.0) == Assignment("o", "x")


def test_next_change_at() -> None:
    gold = WaitingCall("g", Tier.GOLD, 100.0, "mgr", None)
    plat = WaitingCall("p", Tier.PLATINUM, 105.0, None, None)
    ordinary = WaitingCall("o", Tier.ORDINARY, 0.0, None, None)
    assert next_change_at([ordinary], POLICY, 0.0) is None
    assert next_change_at([gold, plat, ordinary], POLICY, 101.0) == 120.0
    assert next_change_at([gold, plat], POLICY, 120.0) == 140.0
    assert next_change_at([gold, plat], POLICY, 141.0) == 145.0
    assert next_change_at([gold, plat], POLICY, 145.0) is None
    # at the instant returned, the stage really has passed (no float drift)
    odd = WaitingCall("g2", Tier.GOLD, 0.1, "mgr", None)
    t = next_change_at([odd], POLICY, 0.1)
    assert t is not None and eligible(odd, seat("v1"), POLICY, t)


def test_skills_filter() -> None:
    call = WaitingCall("c", Tier.ORDINARY, 0.0, None, "margin")
    seats = [seat("a", 0.0, {"fund": 9}), seat("b", 5.0, {"margin": 0}),
             seat("c", 9.0, {"margin": 1})]
    assert [eligible(call, s, POLICY, 10.0) for s in seats] == [False, False, True]
    assert next_assignment([call], seats, POLICY, 10.0) == Assignment("c", "c")
    queue_skill = QueuePolicy(name="margin", skill="margin")
    bare = WaitingCall("b", Tier.ORDINARY, 0.0, None, None)
    assert next_assignment([bare], seats, queue_skill, 10.0) == Assignment("b", "c")


def test_excluded_agent_skipped_call_keeps_its_place() -> None:
    first = WaitingCall("first", Tier.ORDINARY, 0.0, None, None, excluded=frozenset({"a"}))
    second = WaitingCall("second", Tier.ORDINARY, 5.0, None, None)
    seats = [seat("a", 0.0), seat("b", 3.0)]
    assert next_assignment([second, first], seats, POLICY, 10.0) == Assignment("first", "b")
    assert next_assignment([second, first], [seat("a")], POLICY, 10.0) == Assignment("second", "a")
    assert position("first", [second, first], POLICY, 10.0) == 1


def test_callback_keeps_original_arrival() -> None:
    back = WaitingCall("cb", Tier.ORDINARY, 50.0, None, None, position_key=0.0)
    fresh = WaitingCall("new", Tier.ORDINARY, 10.0, None, None)
    assert position("cb", [fresh, back], POLICY, 60.0) == 1
    assert WaitingCall("x", Tier.ORDINARY, 7.0).position_key == 7.0


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("longest_idle", "b"), ("skill_level", "c"), ("fewest_calls", "a")],
)
def test_seat_choice(choice: SeatChoice, expected: str) -> None:
    policy = QueuePolicy(name="q", seat_choice=choice)
    call = WaitingCall("c", Tier.ORDINARY, 0.0, None, "fund")
    seats = [seat("a", 5.0, {"fund": 3}, calls=1), seat("b", 1.0, {"fund": 3}, calls=4),
             seat("c", 8.0, {"fund": 9}, calls=2)]
    assert next_assignment([call], seats, policy, 10.0) == Assignment("c", expected)


def test_seat_choice_ties() -> None:
    call = WaitingCall("c", Tier.ORDINARY, 0.0, None, "fund")
    seats = [seat("z", 5.0, {"fund": 3}), seat("y", 2.0, {"fund": 3}),
             seat("x", 2.0, {"fund": 3})]
    for choice in ("longest_idle", "skill_level", "fewest_calls"):
        policy = QueuePolicy(name="q", seat_choice=choice)
        assert next_assignment([call], seats, policy, 10.0) == Assignment("c", "x")


def test_assignments_never_reuse_a_seat_or_call() -> None:
    calls = [WaitingCall(f"c{i}", Tier.ORDINARY, float(i), None, None) for i in range(3)]
    seats = [seat(f"a{i}", float(i)) for i in range(5)]
    got = assignments(calls, seats, POLICY, 10.0)
    assert got == [Assignment("c0", "a0"), Assignment("c1", "a1"), Assignment("c2", "a2")]
    more = assignments(calls * 1, seats[:2], POLICY, 10.0)
    assert len({a.call_id for a in more}) == len({a.agent_id for a in more}) == len(more) == 2
    assert assignments([], seats, POLICY, 10.0) == []


def test_position_and_estimated_wait() -> None:
    calls = [WaitingCall("o", Tier.ORDINARY, 0.0, None, None),
             WaitingCall("s", Tier.SILVER, 0.0, None, None),
             WaitingCall("p", Tier.PLATINUM, 0.0, None, None)]
    assert [position(c, calls, POLICY, 1.0) for c in ("p", "s", "o")] == [1, 2, 3]
    with pytest.raises(KeyError):
        position("nobody", calls, POLICY, 1.0)
    assert estimated_wait(3, 120.0, 2) == 180.0
    assert estimated_wait(2, 60.0, 0) == 120.0
    with pytest.raises(ValueError):
        estimated_wait(0, 60.0, 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"aging_per_second": -1.0}, {"aging_per_second": 0.0}, {"manager_first_s": -1.0},
     {"vip_team_s": 10.0}, {"tier_weights": {Tier.GOLD: -5.0}}, {"seat_choice": "random"},
     {"name": ""}, {"aging_per_second": float("nan")}],
)
def test_bad_policy_raises(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "q", **kwargs}
    with pytest.raises(ValueError):
        QueuePolicy(**args)  # type: ignore[arg-type]


def test_policy_weights_are_copied() -> None:
    weights = {Tier.ORDINARY: 0.0, Tier.PLATINUM: 10.0}
    policy = QueuePolicy(name="q", tier_weights=weights)
    weights[Tier.PLATINUM] = 99.0
    assert policy.tier_weights[Tier.PLATINUM] == 10.0
    assert policy.max_weight == 10.0


calls_strategy = st.lists(
    st.builds(
        WaitingCall,
        call_id=st.text("abcdef", min_size=1, max_size=3),
        tier=st.sampled_from(list(Tier)),
        arrived_at=st.floats(0.0, 200.0),
        manager=st.sampled_from([None, "mgr", "v1", "solo"]),
        skill=st.sampled_from([None, "fund", "margin"]),
        excluded=st.sampled_from([frozenset(), frozenset({"solo"})]),
    ),
    max_size=8,
    unique_by=lambda c: c.call_id,
)


@given(calls_strategy, st.floats(0.0, 300.0))
def test_property_picks_max_priority_eligible_call(calls: list[WaitingCall],
                                                   delta: float) -> None:
    now = 200.0 + delta
    the_seat = seat("solo", 0.0, {"fund": 5, "margin": 5})
    ok = [c for c in calls if eligible(c, the_seat, POLICY, now)]
    got = next_assignment(calls, [the_seat], POLICY, now)
    if not ok:
        assert got is None
        return
    assert got is not None and got.agent_id == "solo"
    chosen = next(c for c in calls if c.call_id == got.call_id)
    assert chosen in ok
    best = max(priority(c, POLICY, now) for c in ok)
    assert priority(chosen, POLICY, now) == best


# -- assignments / next_assignment against the obviously-correct algorithm ----------------------
#
# The reference is the original quadratic algorithm, straight from the module docstring:
# repeatedly rank the waiting calls, take the first call some seat may take, give it the best such
# seat by the policy's seat choice, remove that call and that seat (every entry with its id), and
# start over. routing.py indexes seats and pairs in one pass; it must give the same pairs in the
# same order.

AGENTS = ("a", "b", "c", "mgr", "v1", "v2")


def reference_seat_key(s: SeatView, call: WaitingCall,
                       policy: QueuePolicy) -> tuple[float, float, str]:
    assert s.ready_since is not None  # only ready seats are eligible
    if policy.seat_choice == "skill_level":
        skill = call.skill if call.skill is not None else policy.skill
        level = s.skills.get(skill, 0) if skill is not None else 0
        return (-level, s.ready_since, s.agent_id)
    if policy.seat_choice == "fewest_calls":
        return (s.calls_taken, s.ready_since, s.agent_id)
    return (s.ready_since, 0.0, s.agent_id)


def reference_next(calls: list[WaitingCall], seats: list[SeatView], policy: QueuePolicy,
                   now: float) -> Assignment | None:
    by_rank = sorted(calls, key=lambda c: (-priority(c, policy, now), c.key, c.call_id))
    for call in by_rank:
        fits = [s for s in seats if eligible(call, s, policy, now)]
        if fits:
            best = min(fits, key=lambda s: reference_seat_key(s, call, policy))
            return Assignment(call.call_id, best.agent_id)
    return None


def reference_assignments(calls: list[WaitingCall], seats: list[SeatView],
                          policy: QueuePolicy, now: float) -> list[Assignment]:
    out: list[Assignment] = []
    while (pick := reference_next(calls, seats, policy, now)) is not None:
        out.append(pick)
        calls = [c for c in calls if c.call_id != pick.call_id]
        seats = [s for s in seats if s.agent_id != pick.agent_id]
    return out


small_times = st.integers(0, 30).map(float)
skill_names = st.sampled_from(["fund", "margin", "stock"])


@st.composite
def routing_states(draw: st.DrawFn) -> tuple[list[WaitingCall], list[SeatView], QueuePolicy,
                                             float]:
    manager_first = draw(st.sampled_from([0.0, 5.0, 10.0]))
    policy = QueuePolicy(
        name="q",
        skill=draw(st.sampled_from([None, None, "fund"])),
        tier_weights=draw(st.dictionaries(st.sampled_from(list(Tier)),
                                          st.sampled_from([0.0, 5.0, 10.0, 30.0]))),
        aging_per_second=draw(st.sampled_from([0.5, 1.0, 2.0])),
        manager_first_s=manager_first,
        vip_team_s=manager_first + draw(st.sampled_from([0.0, 5.0, 10.0])),
        vip_team=draw(st.frozensets(st.sampled_from(AGENTS), max_size=3)),
        seat_choice=draw(st.sampled_from(["longest_idle", "skill_level", "fewest_calls"])),
    )
    seats = draw(st.lists(
        st.builds(SeatView,
                  agent_id=st.sampled_from(AGENTS),
                  ready_since=st.none() | small_times,
                  skills=st.dictionaries(skill_names, st.integers(0, 3), min_size=2),
                  calls_taken=st.integers(0, 3)),
        min_size=1, max_size=7,
    ))
    calls = draw(st.lists(
        st.builds(WaitingCall,
                  call_id=st.sampled_from(["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]),
                  tier=st.sampled_from(list(Tier)),
                  arrived_at=small_times,
                  manager=st.none() | st.sampled_from(AGENTS),
                  skill=st.none() | skill_names,
                  position_key=st.none() | small_times,
                  excluded=st.frozensets(st.sampled_from(AGENTS), max_size=2)),
        min_size=1, max_size=9,
    ))
    # half-second steps, often exactly on (or just either side of) a VIP caller's stage boundary
    stage_offsets = (0.0, policy.manager_first_s, policy.vip_team_s)
    boundaries = [c.arrived_at + d + e for c in calls if c.tier in (Tier.GOLD, Tier.PLATINUM)
                  for d in stage_offsets for e in (-0.5, 0.0, 0.5)]
    if bool(boundaries) and draw(st.booleans()):
        now = draw(st.sampled_from(boundaries))
    else:
        now = draw(st.integers(30, 90)) / 2
    return calls, seats, policy, now


@settings(max_examples=300)
@given(routing_states())
def test_property_matches_reference_algorithm(
    state: tuple[list[WaitingCall], list[SeatView], QueuePolicy, float],
) -> None:
    calls, seats, policy, now = state
    expected = reference_assignments(calls, seats, policy, now)
    got = assignments(calls, seats, policy, now)
    assert got == expected
    assert next_assignment(calls, seats, policy, now) == (expected[0] if expected else None)
    assert next_assignment(calls, seats, policy, now) == reference_next(calls, seats, policy, now)


def test_assignments_single_pass_edge_cases() -> None:
    """Pinned by the reference too, spelled out: a VIP whose manager is taken by a better call
    stays unserved; duplicate ids are used once, as the repetition removed every entry."""
    policy = QueuePolicy(name="q", vip_team=frozenset({"v1"}))
    gold = WaitingCall("g", Tier.GOLD, 0.0, "mgr", None)          # manager-only until 20 s
    old = WaitingCall("o", Tier.ORDINARY, -100.0, None, None)     # outranks the fresh gold
    seats = [seat("mgr", 0.0), seat("x", 5.0)]
    assert assignments([gold, old], seats, policy, 1.0) == [Assignment("o", "mgr")]
    twice = [WaitingCall("d", Tier.ORDINARY, 0.0), WaitingCall("d", Tier.ORDINARY, 1.0)]
    assert assignments(twice, [seat("a"), seat("b")], policy, 2.0) == [Assignment("d", "a")]
    two_a = [seat("a", 3.0), seat("a", 1.0), seat("b", 2.0)]
    calls = [WaitingCall(f"c{i}", Tier.ORDINARY, float(i)) for i in range(3)]
    assert assignments(calls, two_a, policy, 5.0) == [Assignment("c0", "a"),
                                                       Assignment("c1", "b")]


def test_assignments_at_stage_boundaries() -> None:
    """Exactly at each stage end the next stage applies; the manager counts in the VIP stage."""
    policy = QueuePolicy(name="q", vip_team=frozenset({"v1"}), manager_first_s=10.0,
                         vip_team_s=20.0)
    gold = WaitingCall("g", Tier.GOLD, 100.0, "mgr", None)
    # manager idle longest, then the VIP seat, then a plain seat
    seats = [seat("mgr", 1.0), seat("v1", 2.0), seat("x", 3.0)]
    for now, without_mgr, plain_only in ((109.5, None, None), (110.0, "v1", None),
                                         (119.5, "v1", None), (120.0, "v1", "x")):
        assert assignments([gold], seats, policy, now) == [Assignment("g", "mgr")]
        for free, agent in ((seats[1:], without_mgr), (seats[2:], plain_only)):
            want = [] if agent is None else [Assignment("g", agent)]
            assert assignments([gold], free, policy, now) == want, (now, free)
            assert reference_assignments([gold], free, policy, now) == want
            assert next_assignment([gold], free, policy, now) == (want[0] if want else None)


# -- presence: a VIP stage nobody present can serve is skipped at once --------------------------
#
# ``present`` is what the ACD edge knows: every agent who is ready, ringing, on a call, on hold or
# in wrap-up, with their skills. Logged-out and not-ready agents are not in it.

GOLD = WaitingCall("g", Tier.GOLD, 100.0, "mgr", None)   # manager-only until 120, VIP until 140


def present(*agents: str, skills: dict[str, int] | None = None) -> Present:
    return {agent: dict(skills or {}) for agent in agents}


def test_manager_logged_out_goes_to_the_vip_team_at_once() -> None:
    here = present("v1", "x")                          # the manager is logged out
    seats = [seat("x", 0.0), seat("v1", 5.0)]         # x idle longer, but not VIP
    assert assignments([GOLD], seats, POLICY, 100.5, present=here) == [Assignment("g", "v1")]
    assert next_assignment([GOLD], seats, POLICY, 100.5, present=here) == Assignment("g", "v1")
    # still the VIP-team stage (x is not admitted) until 140, then everyone
    assert not eligible(GOLD, seat("x"), POLICY, 139.9, present=here)
    assert eligible(GOLD, seat("x"), POLICY, 140.0, present=here)
    # v1 busy on another call (present, not a free seat): the call waits for the VIP team
    assert assignments([GOLD], [seat("x")], POLICY, 100.5, present=here) == []


def test_manager_not_ready_is_skipped() -> None:
    here = present("v1", "x")                          # not ready: not in service, not present
    seats = [seat("mgr", None), seat("x", 0.0), seat("v1", 5.0)]
    assert assignments([GOLD], seats, POLICY, 101.0, present=here) == [Assignment("g", "v1")]
    assert eligible(GOLD, seat("v1"), POLICY, 101.0, present=here)


def test_manager_who_refused_or_lacks_the_skill_is_skipped() -> None:
    refused = WaitingCall("g", Tier.GOLD, 100.0, "mgr", None, excluded=frozenset({"mgr"}))
    here = present("mgr", "v1")
    assert eligible(refused, seat("v1"), POLICY, 101.0, present=here)
    skilled = QueuePolicy(name="q", skill="fund", vip_team=frozenset({"v1"}))
    here = {"mgr": {"stock": 5}, "v1": {"fund": 1}}
    assert eligible(GOLD, seat("v1", skills={"fund": 1}), skilled, 101.0, present=here)


def test_manager_on_a_call_waits_for_the_stage_as_today() -> None:
    here = present("mgr", "v1", "x")                   # mgr on a call: present, not free
    seats = [seat("x", 0.0), seat("v1", 5.0)]
    for now in (100.0, 119.9):
        assert assignments([GOLD], seats, POLICY, now, present=here) == []
        assert not eligible(GOLD, seat("v1"), POLICY, now, present=here)
    assert assignments([GOLD], seats, POLICY, 120.0, present=here) == [Assignment("g", "v1")]
    assert assignments([GOLD], seats[:1], POLICY, 140.0, present=here) == [Assignment("g", "x")]
    # the manager free again within the stage takes it
    with_mgr = [*seats, seat("mgr", 9.0)]
    assert assignments([GOLD], with_mgr, POLICY, 105.0, present=here) == [Assignment("g", "mgr")]


def test_no_vip_member_present_goes_straight_to_everyone() -> None:
    # neither the manager nor the VIP team: every seat at once
    assert assignments([GOLD], [seat("x")], POLICY, 100.0,
                       present=present("x")) == [Assignment("g", "x")]
    plat = WaitingCall("p", Tier.PLATINUM, 100.0, None, None)   # no manager: VIP stage first
    assert assignments([plat], [seat("x")], POLICY, 100.0,
                       present=present("x")) == [Assignment("p", "x")]
    # the manager present but no VIP member: manager stage, then everyone (no VIP-team stage)
    here = present("mgr", "x")
    assert assignments([GOLD], [seat("x")], POLICY, 119.9, present=here) == []
    assert assignments([GOLD], [seat("x")], POLICY, 120.0, present=here) == [Assignment("g", "x")]
    # VIP members present but unable to take it (no skill; already refused it) count as absent
    skilled = QueuePolicy(name="q", skill="fund", vip_team=frozenset({"v1", "v2"}))
    refused = WaitingCall("p", Tier.PLATINUM, 100.0, None, None, excluded=frozenset({"v2"}))
    here = {"v1": {"stock": 3}, "v2": {"fund": 3}, "x": {"fund": 1}}
    assert assignments([refused], [seat("x", 0.0, {"fund": 1})], skilled, 100.0,
                       present=here) == [Assignment("p", "x")]


def test_manager_alone_in_the_vip_team_has_no_second_stage() -> None:
    """The VIP-team stage is for someone besides the manager: the manager had their stage."""
    policy = QueuePolicy(name="q", vip_team=frozenset({"mgr", "v1"}))
    assert assignments([GOLD], [seat("x")], policy, 120.0,
                       present=present("mgr", "x")) == [Assignment("g", "x")]
    assert assignments([GOLD], [seat("x")], policy, 120.0,
                       present=present("mgr", "v1", "x")) == []
    assert next_change_at([GOLD], policy, 100.0, present=present("mgr", "x")) == 120.0


def test_presence_is_decided_afresh_at_each_decision() -> None:
    """Sans-IO: nothing is remembered. The manager back in service within their stage has it."""
    seats = [seat("v1", 0.0), seat("mgr", 1.0)]
    gone = present("v1")
    back = present("v1", "mgr")
    assert assignments([GOLD], seats[:1], POLICY, 105.0, present=gone) == [Assignment("g", "v1")]
    assert assignments([GOLD], seats, POLICY, 106.0, present=back) == [Assignment("g", "mgr")]


def test_next_change_at_without_skipped_stages() -> None:
    plat = WaitingCall("p", Tier.PLATINUM, 105.0, None, None)   # VIP stage until 145
    # manager absent: no timer at 120 (that stage is skipped), only the VIP-team end at 140
    assert next_change_at([GOLD], POLICY, 100.0, present=present("v1")) == 140.0
    # VIP team absent: the manager stage only
    assert next_change_at([GOLD], POLICY, 100.0, present=present("mgr")) == 120.0
    assert next_change_at([GOLD], POLICY, 120.0, present=present("mgr")) is None
    # nobody of any stage: no timer at all
    assert next_change_at([GOLD, plat], POLICY, 100.0, present=present("x")) is None
    assert next_change_at([GOLD, plat], POLICY, 100.0, present={}) is None
    # both present: as today
    both = present("mgr", "v2")
    assert next_change_at([GOLD, plat], POLICY, 100.0, present=both) == 120.0
    assert next_change_at([GOLD, plat], POLICY, 120.0, present=both) == 140.0
    assert next_change_at([GOLD, plat], POLICY, 140.0, present=both) == 145.0
    # without ``present`` (presence unknown) the stages run on time alone, as before
    assert next_change_at([GOLD], POLICY, 100.0) == 120.0


# -- wait_reason: why a caller still waits, as a code and numbers -------------------------------

def test_wait_reason_queue_closed_and_ringing() -> None:
    here = present("x")
    assert wait_reason(GOLD, [seat("x")], here, POLICY, 101.0,
                       closed=True) == WaitReason(WaitCode.QUEUE_CLOSED)
    got = wait_reason(GOLD, [], here, POLICY, 101.0, ringing="v1")
    assert got == WaitReason(WaitCode.RINGING, agent="v1")
    assert got.code.value == "ringing"


def test_wait_reason_manager_only() -> None:
    here = present("mgr", "v1", "x")                   # manager on a call
    got = wait_reason(GOLD, [seat("x"), seat("v1")], here, POLICY, 105.0)
    assert got == WaitReason(WaitCode.MANAGER_ONLY, until=120.0, agent="mgr", agents=1)


def test_wait_reason_vip_team_only() -> None:
    here = present("v1", "v2", "x")                    # manager logged out, VIP team busy
    got = wait_reason(GOLD, [seat("x")], here, POLICY, 101.0)
    assert got == WaitReason(WaitCode.VIP_TEAM_ONLY, until=140.0, agents=2)
    # the manager on a call counts in the VIP-team stage too
    here = present("mgr", "v1", "x")
    got = wait_reason(GOLD, [seat("x")], here, POLICY, 125.0)
    assert got == WaitReason(WaitCode.VIP_TEAM_ONLY, until=140.0, agents=2)


def test_wait_reason_no_agent_with_skill() -> None:
    call = WaitingCall("c", Tier.ORDINARY, 0.0, None, "margin")
    here = {"a": {"fund": 5}, "b": {"margin": 0}}
    assert wait_reason(call, [seat("a", 0.0, {"fund": 5})], here, POLICY, 10.0) == WaitReason(
        WaitCode.NO_AGENT_WITH_SKILL, skill="margin")
    # nobody present at all, and no skill needed
    bare = WaitingCall("o", Tier.ORDINARY, 0.0)
    assert wait_reason(bare, [], {}, POLICY, 10.0) == WaitReason(WaitCode.NO_AGENT_WITH_SKILL)


def test_wait_reason_all_busy() -> None:
    call = WaitingCall("c", Tier.ORDINARY, 0.0, None, "fund", excluded=frozenset({"a"}))
    here = {"a": {"fund": 1}, "b": {"fund": 2}, "c": {"fund": 3}, "d": {"stock": 1}}
    # b and c on calls; a refused it; d is ready but has not the skill
    got = wait_reason(call, [seat("d", 0.0, {"stock": 1})], here, POLICY, 10.0)
    assert got == WaitReason(WaitCode.ALL_BUSY, skill="fund", agents=2)


def test_wait_reason_excluded_all() -> None:
    call = WaitingCall("c", Tier.ORDINARY, 0.0, None, None, excluded=frozenset({"a", "b"}))
    here = present("a", "b")
    got = wait_reason(call, [seat("a"), seat("b")], here, POLICY, 10.0)
    assert got == WaitReason(WaitCode.EXCLUDED_ALL, agents=2)


def test_wait_reason_others_ahead() -> None:
    """A seat that may take it is free: callers ahead of it are served first (the dispatcher
    gives them the free seats; or it is about to run)."""
    call = WaitingCall("c", Tier.ORDINARY, 0.0)
    got = wait_reason(call, [seat("a"), seat("b", None)], present("a", "b"), POLICY, 10.0)
    assert got == WaitReason(WaitCode.OTHERS_AHEAD, agents=1)


def test_wait_reason_codes_are_stable_strings() -> None:
    assert {c.value for c in WaitCode} == {
        "queue_closed", "ringing", "others_ahead", "manager_only", "vip_team_only",
        "no_agent_with_skill", "excluded_all", "all_busy"}


# -- presence against the reference and the timer ----------------------------------------------

@st.composite
def routing_states_with_presence(
    draw: st.DrawFn,
) -> tuple[list[WaitingCall], list[SeatView], QueuePolicy, float, Present]:
    calls, seats, policy, now = draw(routing_states())
    here: dict[str, dict[str, int]] = {
        s.agent_id: dict(s.skills) for s in seats if s.ready_since is not None}
    # busy agents: present, not free
    for agent in draw(st.frozensets(st.sampled_from(AGENTS))):
        here.setdefault(agent, draw(st.dictionaries(skill_names, st.integers(0, 3))))
    return calls, seats, policy, now, here


@settings(max_examples=300)
@given(routing_states_with_presence())
def test_property_presence_matches_reference_algorithm(
    state: tuple[list[WaitingCall], list[SeatView], QueuePolicy, float, Present],
) -> None:
    calls, seats, policy, now, here = state
    expected: list[Assignment] = []
    left_calls, left_seats = list(calls), list(seats)
    while True:
        by_rank = sorted(left_calls, key=lambda c: (-priority(c, policy, now), c.key, c.call_id))
        pick = None
        for call in by_rank:
            fits = [s for s in left_seats if eligible(call, s, policy, now, present=here)]
            if fits:
                best = min(fits, key=lambda s: reference_seat_key(s, call, policy))
                pick = Assignment(call.call_id, best.agent_id)
                break
        if pick is None:
            break
        expected.append(pick)
        left_calls = [c for c in left_calls if c.call_id != pick.call_id]
        left_seats = [s for s in left_seats if s.agent_id != pick.agent_id]
    assert assignments(calls, seats, policy, now, present=here) == expected
    assert next_assignment(calls, seats, policy, now, present=here) == (
        expected[0] if expected else None)


@settings(max_examples=200)
@given(routing_states_with_presence())
def test_property_nothing_changes_before_next_change_at(
    state: tuple[list[WaitingCall], list[SeatView], QueuePolicy, float, Present],
) -> None:
    """With the same seats and presence, eligibility is constant from ``now`` until the time
    :func:`next_change_at` returns (a skipped stage sets no timer, and none is missed)."""
    calls, seats, policy, now, here = state
    calls = [c for c in calls if c.arrived_at <= now]   # a call exists from its arrival on
    until = next_change_at(calls, policy, now, present=here)
    end = now + 100.0 if until is None else until
    assert end > now
    times = [now + (end - now) * f for f in (0.0, 0.25, 0.5, 0.999)]
    for call in calls:
        for s in seats:
            got = {eligible(call, s, policy, t, present=here) for t in times}
            assert len(got) == 1, (call, s, times)
