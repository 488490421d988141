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

Presence: a stage nobody can serve soon is skipped at once. The edge passes ``present``
(:data:`Present`): every agent who is ready, ringing, on a call, on hold or in wrap-up, with their
skills; logged-out and not-ready agents are absent. An agent *can take* a call when present,
with the call's skill, and not in its ``excluded``. The manager stage applies only if the manager
can take the call (a manager on a call is present: the caller waits for them, at most
``manager_first_s``); the VIP-team stage only if some VIP-team member other than the call's
manager can (the manager already had a stage of their own). The stage times stay measured from
``arrived_at``: a caller whose manager is logged out is at once in the VIP-team stage until
``vip_team_s``. Nothing is remembered between decisions: a manager back in service within their
stage has it again. ``present=None`` (presence unknown) keeps the stages on time alone, whoever is
there; that is the old behaviour, kept for callers not yet passing ``present``.

The skill requirement and ring-no-answer exclusions apply at every stage. :func:`wait_reason`
says why a caller still waits, as a code and numbers for the console to word.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

from callcenter.broker.interface import Tier

SeatChoice = Literal["longest_idle", "skill_level", "fewest_calls"]
SEAT_CHOICES: frozenset[str] = frozenset({"longest_idle", "skill_level", "fewest_calls"})
VIP_TIERS: frozenset[Tier] = frozenset({Tier.GOLD, Tier.PLATINUM})

Present: TypeAlias = Mapping[str, Mapping[str, int]]
"""Agent id -> skills (skill -> level) of every agent who will be free soon: ready, ringing, on a
call, on hold or in wrap-up. Logged-out and not-ready agents (and seats that cannot be rung) are
left out. Must include every ready seat passed alongside it."""


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


def _skill(call: WaitingCall, policy: QueuePolicy) -> str | None:
    """The skill a call needs: its own, else the queue's."""
    return call.skill if call.skill is not None else policy.skill


def _has_skill(skills: Mapping[str, int], skill: str | None) -> bool:
    """Exactly the complement of :func:`eligible`'s skill refusal."""
    return skill is None or not skills.get(skill, 0) < 1


def _can_take(agent: str, call: WaitingCall, skill: str | None, present: Present) -> bool:
    """Present, with the skill, and not one who already refused ``call``."""
    skills = present.get(agent)
    return skills is not None and agent not in call.excluded and _has_skill(skills, skill)


def _stage_ends(call: WaitingCall, policy: QueuePolicy,
                present: Present | None) -> tuple[float, float] | None:
    """Absolute end times of (manager-only, manager-or-VIP-team) stages, None if not staged.

    A skipped stage ends when it starts. With ``present`` None the stages run on time alone.
    """
    if call.tier not in VIP_TIERS:
        return None
    manager = call.manager or None
    if present is None:
        manager_on, team_on = manager is not None, bool(policy.vip_team)
    else:
        skill = _skill(call, policy)
        manager_on = manager is not None and _can_take(manager, call, skill, present)
        team_on = any(agent != manager and _can_take(agent, call, skill, present)
                      for agent in policy.vip_team)
    manager_end = call.arrived_at + policy.manager_first_s if manager_on else call.arrived_at
    vip_end = call.arrived_at + policy.vip_team_s if team_on else manager_end
    return manager_end, max(manager_end, vip_end)


def eligible(call: WaitingCall, seat: SeatView, policy: QueuePolicy, now: float, *,
             present: Present | None = None) -> bool:
    """May ``seat`` be offered ``call`` at ``now``? ``present``: see :data:`Present`."""
    return _eligible(call, seat, policy, _skill(call, policy),
                     _stage_ends(call, policy, present), now)


def _eligible(call: WaitingCall, seat: SeatView, policy: QueuePolicy, skill: str | None,
              stages: tuple[float, float] | None, now: float) -> bool:
    """:func:`eligible` with the call's skill and stage ends already worked out."""
    if seat.ready_since is None or seat.agent_id in call.excluded:
        return False
    if skill is not None and seat.skills.get(skill, 0) < 1:
        return False
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
    """Waiting calls, best first (priority, then earlier ``position_key``, then ``call_id``).

    The line itself: who may take each call (VIP stages, presence) is not part of it.
    """
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

    def __init__(self, seats: Sequence[SeatView], policy: QueuePolicy,
                 present: Present | None) -> None:
        self._policy = policy
        self._present = present
        self._ready = [s for s in seats if s.ready_since is not None]
        self._by_id: dict[str, list[SeatView]] = {}
        self._by_skill: dict[str, list[SeatView]] = {}
        for seat in self._ready:
            self._by_id.setdefault(seat.agent_id, []).append(seat)
            for skill in seat.skills:
                if _has_skill(seat.skills, skill):
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
        stages = _stage_ends(call, policy, self._present)
        skill = _skill(call, policy)
        if stages is not None and now < stages[1]:
            staged = self._staged_candidates(call, manager_only=now < stages[0])
            fits = [s for s in staged
                    if s.agent_id not in taken and _eligible(call, s, policy, skill, stages, now)]
            return min(fits, key=lambda s: _seat_key(s, call, policy), default=None)
        order = self._by_choice(skill)
        head = self._head[skill]
        while head < len(order) and order[head].agent_id in taken:
            head += 1
        self._head[skill] = head
        for index in range(head, len(order)):
            seat = order[index]
            if seat.agent_id not in taken and _eligible(call, seat, policy, skill, stages, now):
                return seat
        return None


def next_assignment(
    waiting: Sequence[WaitingCall], seats: Sequence[SeatView], policy: QueuePolicy, now: float,
    *, present: Present | None = None,
) -> Assignment | None:
    """The best call that some seat may take, and the best such seat; None if nothing fits.

    Callers are taken in :func:`ranked` order (lazily, from a heap: usually the first fits).
    ``present``: see :data:`Present` (None: VIP stages on time alone).
    """
    heap = _order_keys(waiting, policy, now)
    heapq.heapify(heap)
    ready = _ReadySeats(seats, policy, present)
    while heap:
        call = waiting[heapq.heappop(heap)[1]]
        seat = ready.best(call, now)
        if seat is not None:
            return Assignment(call.call_id, seat.agent_id)
    return None


def assignments(
    waiting: Sequence[WaitingCall], seats: Sequence[SeatView], policy: QueuePolicy, now: float,
    *, present: Present | None = None,
) -> list[Assignment]:
    """Repeated :func:`next_assignment`; each call and each seat is used at most once.

    Computed in one pass in :func:`ranked` order, each call taking its best free eligible seat:
    the same pairs in the same order, because seats only leave, so a call that no free seat fits
    when its turn comes fits none later either. A ``call_id`` or ``agent_id`` that occurs more
    than once is used once, as in the repetition. ``present``: see :data:`Present` (None: VIP
    stages on time alone).
    """
    ready = _ReadySeats(seats, policy, present)
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
    waiting: Sequence[WaitingCall], policy: QueuePolicy, now: float, *,
    present: Present | None = None,
) -> float | None:
    """Earliest time after ``now`` at which a VIP stage expires; None if none will.

    Aging never reorders calls (all age at the same rate), so this is the only timer needed.
    A stage skipped for want of anyone ``present`` to serve it sets no timer; presence changes
    are events, so the edge calls this again (after dispatching) whenever a seat changes state.
    """
    times = [
        end
        for call in waiting
        if (stages := _stage_ends(call, policy, present)) is not None
        for end in stages
        if end > now and end > call.arrived_at
    ]
    return min(times, default=None)


def position(call_id: str, waiting: Sequence[WaitingCall], policy: QueuePolicy,
             now: float) -> int:
    """1-based place in line by priority; KeyError if the call is not waiting.

    Like :func:`ranked`, it needs no presence: priority does not depend on the VIP stages.
    """
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


class WaitCode(enum.Enum):
    """Why a caller is still waiting (:func:`wait_reason`); the console words it."""

    #: the queue is closed (decided by the edge: ``closed=True``)
    QUEUE_CLOSED = "queue_closed"
    #: an agent's phone is ringing with this call (``agent``)
    RINGING = "ringing"
    #: ``agents`` free seats may take it: callers ahead of it get them first (or the
    #: dispatcher is about to run)
    OTHERS_AHEAD = "others_ahead"
    #: only the manager (``agent``, present but busy) may take it, ``until`` then wider
    MANAGER_ONLY = "manager_only"
    #: only the manager or the VIP team (``agents`` of them present, all busy), ``until``
    VIP_TEAM_ONLY = "vip_team_only"
    #: no present agent has ``skill`` (None: no agent present at all)
    NO_AGENT_WITH_SKILL = "no_agent_with_skill"
    #: every present agent with ``skill`` (``agents`` of them) already refused it
    EXCLUDED_ALL = "excluded_all"
    #: ``agents`` present agents may take it, none of them free
    ALL_BUSY = "all_busy"


@dataclass(frozen=True)
class WaitReason:
    """A :class:`WaitCode` and its numbers. ``until`` is an absolute time on the same clock as
    ``now`` (the console shows ``until - now``); ``skill`` is the skill the call needs (None:
    any agent); ``agent`` the manager (``MANAGER_ONLY``) or the agent rung (``RINGING``)."""

    code: WaitCode
    until: float | None = None
    agent: str | None = None
    skill: str | None = None
    agents: int = 0


def wait_reason(call: WaitingCall, seats: Sequence[SeatView], present: Present,
                policy: QueuePolicy, now: float, *, ringing: str | None = None,
                closed: bool = False) -> WaitReason:
    """Why ``call`` is still waiting at ``now``, for a supervisor.

    ``seats`` are the free seats (as given to :func:`assignments`), ``present`` every agent who
    will be free soon (:data:`Present`), ``ringing`` the agent being rung with this call, if
    any, ``closed`` whether the queue is closed. The first that holds, in the order of
    :class:`WaitCode`, is the answer.
    """
    skill = _skill(call, policy)
    if closed:
        return WaitReason(WaitCode.QUEUE_CLOSED, skill=skill)
    if ringing:
        return WaitReason(WaitCode.RINGING, agent=ringing, skill=skill)
    stages = _stage_ends(call, policy, present)
    free = sum(1 for s in seats if _eligible(call, s, policy, skill, stages, now))
    if free:
        return WaitReason(WaitCode.OTHERS_AHEAD, skill=skill, agents=free)
    if stages is not None and now < stages[0]:
        return WaitReason(WaitCode.MANAGER_ONLY, until=stages[0], agent=call.manager,
                          skill=skill, agents=1)
    if stages is not None and now < stages[1]:
        team = {call.manager, *policy.vip_team}
        busy = sum(1 for agent in team
                   if agent is not None and _can_take(agent, call, skill, present))
        return WaitReason(WaitCode.VIP_TEAM_ONLY, until=stages[1], skill=skill, agents=busy)
    skilled = [agent for agent, skills in present.items() if _has_skill(skills, skill)]
    if not skilled:
        return WaitReason(WaitCode.NO_AGENT_WITH_SKILL, skill=skill)
    willing = sum(1 for agent in skilled if agent not in call.excluded)
    if not willing:
        return WaitReason(WaitCode.EXCLUDED_ALL, skill=skill, agents=len(skilled))
    return WaitReason(WaitCode.ALL_BUSY, skill=skill, agents=willing)
