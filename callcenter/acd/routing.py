"""Sans-IO ACD routing: who is served next, and by which seat.

Nothing here reads a clock or touches a loop: every function takes ``now`` (seconds, float,
same clock as ``arrived_at``/``ready_since``) and answers from the values it is given. The
asyncio edge calls :func:`next_assignment` (or :func:`assignments`) whenever something changes
(a call arrives, a seat becomes ready, a ring is refused) and arms ONE timer at
:func:`next_change_at` for the only thing that changes by itself: a VIP stage expiring.

Priority (:func:`priority`) is a tier head start plus aging: ``tier_weights[tier] +
aging_per_second * (now - position_key)``. Because every call ages at the same rate, the order
of waiting calls never changes with time alone; only eligibility does (VIP stages).

Starvation bound: a call that has waited longer than ``max(tier_weights) / aging_per_second``
seconds outranks any newly arrived call of any tier (defaults: an ordinary caller who has waited
more than 90 s is ahead of a platinum caller who has just arrived). ``aging_per_second`` must
therefore be positive.

VIP staging (gold and platinum calls), measured from ``arrived_at``:

- with a named manager: until ``manager_first_s`` only the manager may take the call; then,
  until ``vip_team_s``, the manager or the VIP team; after that every seat with the skill.
- without a manager: the call starts at the VIP-team stage.
- if the policy's VIP team is empty, the VIP-team stage is skipped (it would admit nobody new).

The simple rule holds even when the manager is not logged in, not ready or excluded: the call
simply waits for the stage to pass (at most ``manager_first_s`` seconds). The skill requirement
and ring-no-answer exclusions apply at every stage.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from callcenter.broker.interface import Tier

SeatChoice = Literal["longest_idle", "skill_level", "fewest_calls"]
SEAT_CHOICES: frozenset[str] = frozenset({"longest_idle", "skill_level", "fewest_calls"})
VIP_TIERS: frozenset[Tier] = frozenset({Tier.GOLD, Tier.PLATINUM})


def _default_weights() -> Mapping[Tier, float]:
    return {Tier.ORDINARY: 0.0, Tier.SILVER: 30.0, Tier.GOLD: 60.0, Tier.PLATINUM: 90.0}


def _check_number(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class QueuePolicy:
    """How one queue ranks callers and picks seats.

    ``tier_weights`` are seconds of head start per tier (a missing tier counts as 0).
    ``vip_team_s`` is a total wait, so it must be >= ``manager_first_s``. ``skill`` is the
    queue's skill, required of a call that names none of its own.
    """

    name: str
    skill: str | None = None
    tier_weights: Mapping[Tier, float] = field(default_factory=_default_weights)
    aging_per_second: float = 1.0
    manager_first_s: float = 20.0
    vip_team_s: float = 40.0
    vip_team: frozenset[str] = frozenset()
    seat_choice: SeatChoice = "longest_idle"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("queue policy needs a name")
        weights: dict[Tier, float] = {}
        for tier, weight in self.tier_weights.items():
            if not isinstance(tier, Tier):
                raise ValueError(f"queue {self.name}: unknown tier {tier!r}")
            _check_number(f"queue {self.name}: tier_weights[{tier.value}]", weight)
            weights[tier] = float(weight)
        object.__setattr__(self, "tier_weights", MappingProxyType(weights))
        _check_number(f"queue {self.name}: aging_per_second", self.aging_per_second)
        if self.aging_per_second <= 0:
            raise ValueError(f"queue {self.name}: aging_per_second must be > 0 (no starvation)")
        _check_number(f"queue {self.name}: manager_first_s", self.manager_first_s)
        _check_number(f"queue {self.name}: vip_team_s", self.vip_team_s)
        if self.vip_team_s < self.manager_first_s:
            raise ValueError(
                f"queue {self.name}: vip_team_s ({self.vip_team_s}) must be >= "
                f"manager_first_s ({self.manager_first_s})"
            )
        object.__setattr__(self, "vip_team", frozenset(self.vip_team))
        if self.seat_choice not in SEAT_CHOICES:
            raise ValueError(
                f"queue {self.name}: seat_choice must be one of {sorted(SEAT_CHOICES)}, "
                f"got {self.seat_choice!r}"
            )

    @property
    def max_weight(self) -> float:
        return max(self.tier_weights.values(), default=0.0)

    @property
    def starvation_bound_s(self) -> float:
        """Wait after which a call outranks any newly arrived call of any tier."""
        return self.max_weight / self.aging_per_second


@dataclass(frozen=True)
class WaitingCall:
    """A caller in the queue.

    ``position_key`` is where the caller stands in line: ``arrived_at`` by default; a callback
    (or a call re-queued after a transfer) keeps the original arrival so it loses no place.
    Aging counts from ``position_key``; VIP stages count from ``arrived_at`` (this queue entry).
    ``excluded`` are agents that already failed to answer this call (ring-no-answer); they are
    never offered it again.
    """

    call_id: str
    tier: Tier
    arrived_at: float
    manager: str | None = None
    skill: str | None = None
    position_key: float | None = None
    excluded: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.position_key is None:
            object.__setattr__(self, "position_key", self.arrived_at)
        object.__setattr__(self, "excluded", frozenset(self.excluded))

    @property
    def key(self) -> float:
        """``position_key``, never None after construction."""
        return self.arrived_at if self.position_key is None else self.position_key


@dataclass(frozen=True)
class SeatView:
    """What routing needs to know about a seat. ``ready_since`` None means not ready."""

    agent_id: str
    ready_since: float | None
    skills: Mapping[str, int] = field(default_factory=dict)
    calls_taken: int = 0


@dataclass(frozen=True)
class Assignment:
    call_id: str
    agent_id: str


def priority(call: WaitingCall, policy: QueuePolicy, now: float) -> float:
    """Tier head start plus aging by wait (see the module docstring for the starvation bound)."""
    wait = max(0.0, now - call.key)
    return policy.tier_weights.get(call.tier, 0.0) + policy.aging_per_second * wait


def _stage_ends(call: WaitingCall, policy: QueuePolicy) -> tuple[float, float] | None:
    """Absolute end times of (manager-only, manager-or-VIP-team) stages, None if not staged."""
    if call.tier not in VIP_TIERS:
        return None
    manager_end = call.arrived_at + policy.manager_first_s if call.manager else call.arrived_at
    vip_end = call.arrived_at + policy.vip_team_s if policy.vip_team else manager_end
    return manager_end, max(manager_end, vip_end)


def _skill(call: WaitingCall, policy: QueuePolicy) -> str | None:
    """The skill a call needs: its own, else the queue's."""
    return call.skill if call.skill is not None else policy.skill


def eligible(call: WaitingCall, seat: SeatView, policy: QueuePolicy, now: float) -> bool:
    """May ``seat`` be offered ``call`` at ``now``?"""
    if seat.ready_since is None or seat.agent_id in call.excluded:
        return False
    skill = _skill(call, policy)
    if skill is not None and seat.skills.get(skill, 0) < 1:
        return False
    stages = _stage_ends(call, policy)
    if stages is None:
        return True
    manager_end, vip_end = stages
    if now < manager_end:
        return seat.agent_id == call.manager
    if now < vip_end:
        return seat.agent_id == call.manager or seat.agent_id in policy.vip_team
    return True


def _order_keys(
    waiting: Sequence[WaitingCall], policy: QueuePolicy, now: float
) -> list[tuple[tuple[float, float, str], int]]:
    """``((-priority, position_key, call_id), input position)`` for each call, smallest first.

    The input position breaks full ties as a stable sort would. :func:`priority` is inlined
    (the same expression, so the same floats): this runs for every waiting call at every
    decision.
    """
    weight, aging = policy.tier_weights.get, policy.aging_per_second
    out = []
    for n, call in enumerate(waiting):
        key = call.arrived_at if call.position_key is None else call.position_key
        prio = weight(call.tier, 0.0) + aging * max(0.0, now - key)
        out.append(((-prio, key, call.call_id), n))
    return out


def ranked(waiting: Sequence[WaitingCall], policy: QueuePolicy, now: float) -> list[WaitingCall]:
    """Waiting calls, best first (priority, then earlier ``position_key``, then ``call_id``)."""
    return [waiting[n] for _, n in sorted(_order_keys(waiting, policy, now))]


def _seat_order(seat: SeatView, skill: str | None,
                choice: SeatChoice) -> tuple[float, float, str]:
    ready = seat.ready_since if seat.ready_since is not None else math.inf
    if choice == "skill_level":
        level = seat.skills.get(skill, 0) if skill is not None else 0
        return (-level, ready, seat.agent_id)
    if choice == "fewest_calls":
        return (seat.calls_taken, ready, seat.agent_id)
    return (ready, 0.0, seat.agent_id)


def _seat_key(
    seat: SeatView, call: WaitingCall, policy: QueuePolicy
) -> tuple[float, float, str]:
    """Smaller is better: how ``policy.seat_choice`` ranks seats for ``call``."""
    return _seat_order(seat, _skill(call, policy), policy.seat_choice)


class _ReadySeats:
    """The ready seats of one decision, indexed so a call looks only at its candidates.

    Built once per :func:`next_assignment` / :func:`assignments` call. Candidates are a superset
    of the seats :func:`eligible` admits (the manager alone in the manager-only stage; the
    manager and the VIP team in the VIP-team stage; otherwise the ready seats with the call's
    skill), and every candidate is still checked with :func:`eligible`, so the index only saves
    work: it never decides. After the VIP stages the seat choice depends on the skill alone, so
    each skill's seats are sorted once by the seat-choice key and a call takes the first free
    eligible one; seats taken by earlier pairs are skipped for good (``_head``).
    """

    def __init__(self, seats: Sequence[SeatView], policy: QueuePolicy) -> None:
        self._policy = policy
        self._ready = [s for s in seats if s.ready_since is not None]
        self._by_id: dict[str, list[SeatView]] = {}
        self._by_skill: dict[str, list[SeatView]] = {}
        for seat in self._ready:
            self._by_id.setdefault(seat.agent_id, []).append(seat)
            for skill, level in seat.skills.items():
                if not level < 1:  # exactly the complement of eligible()'s skill refusal
                    self._by_skill.setdefault(skill, []).append(seat)
        self._vip_team = [s for s in self._ready if s.agent_id in policy.vip_team]
        self._sorted: dict[str | None, list[SeatView]] = {}
        self._head: dict[str | None, int] = {}
        self.taken: set[str] = set()  # agent ids already paired in this decision

    def _staged_candidates(self, call: WaitingCall, manager_only: bool) -> list[SeatView]:
        manager = [] if call.manager is None else self._by_id.get(call.manager, [])
        if manager_only:
            return manager
        if call.manager in self._policy.vip_team:
            return self._vip_team
        return [*self._vip_team, *manager]

    def _by_choice(self, skill: str | None) -> list[SeatView]:
        order = self._sorted.get(skill)
        if order is None:
            pool = self._ready if skill is None else self._by_skill.get(skill, [])
            choice = self._policy.seat_choice
            order = sorted(pool, key=lambda s: _seat_order(s, skill, choice))
            self._sorted[skill] = order
            self._head[skill] = 0
        return order

    def best(self, call: WaitingCall, now: float) -> SeatView | None:
        """The free seat :func:`next_assignment` would give ``call``, None if none fits."""
        policy, taken = self._policy, self.taken
        stages = _stage_ends(call, policy)
        if stages is not None and now < stages[1]:
            staged = self._staged_candidates(call, manager_only=now < stages[0])
            fits = [s for s in staged
                    if s.agent_id not in taken and eligible(call, s, policy, now)]
            return min(fits, key=lambda s: _seat_key(s, call, policy), default=None)
        skill = _skill(call, policy)
        order = self._by_choice(skill)
        head = self._head[skill]
        while head < len(order) and order[head].agent_id in taken:
            head += 1
        self._head[skill] = head
        for index in range(head, len(order)):
            seat = order[index]
            if seat.agent_id not in taken and eligible(call, seat, policy, now):
                return seat
        return None


def next_assignment(
    waiting: Sequence[WaitingCall], seats: Sequence[SeatView], policy: QueuePolicy, now: float
) -> Assignment | None:
    """The best call that some seat may take, and the best such seat; None if nothing fits.

    Callers are taken in :func:`ranked` order (lazily, from a heap: usually the first fits).
    """
    heap = _order_keys(waiting, policy, now)
    heapq.heapify(heap)
    ready = _ReadySeats(seats, policy)
    while heap:
        call = waiting[heapq.heappop(heap)[1]]
        seat = ready.best(call, now)
        if seat is not None:
            return Assignment(call.call_id, seat.agent_id)
    return None


def assignments(
    waiting: Sequence[WaitingCall], seats: Sequence[SeatView], policy: QueuePolicy, now: float
) -> list[Assignment]:
    """Repeated :func:`next_assignment`; each call and each seat is used at most once.

    Computed in one pass in :func:`ranked` order, each call taking its best free eligible seat:
    the same pairs in the same order, because seats only leave, so a call that no free seat fits
    when its turn comes fits none later either. A ``call_id`` or ``agent_id`` that occurs more
    than once is used once, as in the repetition.
    """
    ready = _ReadySeats(seats, policy)
    served: set[str] = set()
    out: list[Assignment] = []
    for call in ranked(waiting, policy, now):
        if call.call_id in served:
            continue
        seat = ready.best(call, now)
        if seat is not None:
            out.append(Assignment(call.call_id, seat.agent_id))
            served.add(call.call_id)
            ready.taken.add(seat.agent_id)
    return out


def next_change_at(
    waiting: Sequence[WaitingCall], policy: QueuePolicy, now: float
) -> float | None:
    """Earliest time after ``now`` at which a VIP stage expires; None if none will.

    Aging never reorders calls (all age at the same rate), so this is the only timer needed.
    """
    times = [
        end
        for call in waiting
        if (stages := _stage_ends(call, policy)) is not None
        for end in stages
        if end > now and end > call.arrived_at
    ]
    return min(times, default=None)


def position(call_id: str, waiting: Sequence[WaitingCall], policy: QueuePolicy,
             now: float) -> int:
    """1-based place in line by priority; KeyError if the call is not waiting."""
    for place, call in enumerate(ranked(waiting, policy, now), start=1):
        if call.call_id == call_id:
            return place
    raise KeyError(call_id)


def estimated_wait(position: int, avg_handle_s: float, ready_agents: int) -> float:
    """Rough wait for announcements: ``position * avg_handle_s / max(1, ready_agents)``."""
    if position < 1:
        raise ValueError(f"position must be >= 1, got {position}")
    _check_number("avg_handle_s", avg_handle_s)
    return position * avg_handle_s / max(1, ready_agents)
