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

Cost of a decision (issue 12; ``python -m bench.bench_routing``, 1000 seats x 1000 callers).
A decision usually ends at the first caller in line, so :func:`next_assignment` and
:func:`assignments` rank and index only as far as they get; they decide exactly what ranking
everything would (``tests/unit/test_routing_speed_invariants.py`` holds the old algorithm as
the oracle):

- The line (:class:`_Line`). Within one tier every call has the same head start, and priority
  never grows with ``position_key`` (each step of ``weight + aging * max(0, now - key)`` is
  monotonic, in floats too), so a tier's calls rank oldest first. The calls are sorted once by
  ``position_key`` alone (plain floats: no priority worked out, no key tuple); a heap holds
  each tier's oldest call left under its full :func:`ranked` key, and the best of the heap is
  the next call. Only the few calls that reach the heap get a priority.
- The seats (:class:`_FreeSeats`). After its VIP stages a call's seat depends on its skill
  alone, and with ``longest_idle`` it is usually the longest idle of all ready seats: one
  ``min`` over the ``ready_since`` floats; only if that seat may not take the call are the
  seats walked in idle order. In a VIP stage the manager's and the team's seats are looked up
  by agent id. A drain sorts a skill's seats once, on its second call needing that skill.

:func:`ranked` and :func:`position` still rank the whole line: they need all of it.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from callcenter.acd.lineup import Lineup, ReadySeats
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


Waiting: TypeAlias = Sequence[WaitingCall] | Lineup
"""The waiting calls of a decision: a list, ranked afresh, or a standing :class:`Lineup`."""

Seats: TypeAlias = Sequence[SeatView] | ReadySeats
"""The seats of a decision: a list (not-ready seats are ignored) or standing :class:`ReadySeats`."""


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
    (the same expression, so the same floats). Only :func:`ranked` (the whole line) uses this;
    a decision uses :class:`_Line`.
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


_POSITION = attrgetter("position_key")  # a float: WaitingCall.__post_init__ fills it in
_TIER = attrgetter("tier")


class _Line:
    """The waiting calls in :func:`ranked` order, one at a time, worked out only as far as asked.

    The calls are sorted once by ``position_key`` alone (a sort of floats, with no priority
    worked out; nearly free when the queue is already in arrival order). A tier's calls all have
    the same head start, so they rank in that order: oldest first (see the module docstring).
    Each tier keeps a cursor into it, and a small heap (``_heads``) holds each tier's oldest
    call left with its full :func:`ranked` key; the best of the heap is the best call left.

    Calls of one tier with the same ``position_key`` tie on priority too: they enter the heap
    together, so ``call_id`` decides among them as in :func:`ranked`. The place in the sorted
    order stands in for the input position (the sort is stable, so among equal keys it is the
    input order).
    """

    def __init__(self, waiting: Sequence[WaitingCall], policy: QueuePolicy, now: float) -> None:
        self._by_age: list[WaitingCall] = sorted(waiting, key=_POSITION)
        self._tiers: list[Tier] = list(map(_TIER, self._by_age))
        self._weight = policy.tier_weights.get
        self._aging = policy.aging_per_second
        self._now = now
        self._heads: list[tuple[float, float, str, int]] = []  # (-priority, key, call_id, place)
        self._cursor: dict[Tier, int] = {}  # tier -> where in _by_age its next calls are sought
        self._in_heads: dict[Tier, int] = {}  # tier -> how many of its calls are in _heads
        for tier in set(self._tiers):
            self._cursor[tier] = 0
            self._advance(tier)

    def _advance(self, tier: Tier) -> None:
        """Put ``tier``'s oldest calls left (all with that ``position_key``) into the heap."""
        by_age, tiers = self._by_age, self._tiers
        try:
            start = tiers.index(tier, self._cursor[tier])
        except ValueError:  # the tier has no calls left
            self._in_heads[tier] = 0
            return
        key = by_age[start].key
        prio = self._weight(tier, 0.0) + self._aging * max(0.0, self._now - key)
        end, queued = start, 0
        while end < len(by_age) and by_age[end].position_key == key:
            if tiers[end] == tier:
                heapq.heappush(self._heads, (-prio, key, by_age[end].call_id, end))
                queued += 1
            end += 1
        self._cursor[tier] = end
        self._in_heads[tier] = queued

    def __iter__(self) -> _Line:
        return self

    def __next__(self) -> WaitingCall:
        if not self._heads:
            raise StopIteration
        place = heapq.heappop(self._heads)[3]
        tier = self._tiers[place]
        self._in_heads[tier] -= 1
        if not self._in_heads[tier]:
            self._advance(tier)
        return self._by_age[place]


def _standing_line(line: Lineup, policy: QueuePolicy, now: float) -> Iterator[WaitingCall]:
    """:class:`_Line` for a standing :class:`Lineup`: nothing sorted, nothing scanned.

    Each tier's ``(position_key, call_id)`` list is already its :func:`ranked` order (see the
    module docstring; ``call_id`` is unique in a lineup, so it settles every tie as
    :func:`ranked` does). A heap holds each tier's next call under its full :func:`ranked` key
    (the tier rides along, never compared); the best of the heap is the next call of the line.
    """
    weight, aging = policy.tier_weights.get, policy.aging_per_second
    heads: list[tuple[float, float, str, int, list[tuple[float, str]], float]] = []
    for tier, keys in line.tiers():
        key, call_id = keys[0]
        head = weight(tier, 0.0)
        heads.append((-(head + aging * max(0.0, now - key)), key, call_id, 0, keys, head))
    heapq.heapify(heads)
    while heads:
        _, _, call_id, place, keys, head = heads[0]
        yield line.call(call_id)
        place += 1
        if place < len(keys):
            key, call_id = keys[place]
            heapq.heapreplace(
                heads, (-(head + aging * max(0.0, now - key)), key, call_id, place, keys, head))
        else:
            heapq.heappop(heads)


def _line_of(waiting: Waiting, policy: QueuePolicy, now: float,
             skip: Callable[[WaitingCall], bool] | None) -> Iterator[WaitingCall]:
    """The calls of ``waiting`` in :func:`ranked` order, lazily, without those ``skip`` names."""
    if isinstance(waiting, Lineup):
        line = _standing_line(waiting, policy, now)
    else:
        line = _Line(waiting, policy, now)
    if skip is None:
        return line
    return (call for call in line if not skip(call))


SeatRank: TypeAlias = Callable[[SeatView], tuple[Any, ...]]

_LONGEST_IDLE: SeatRank = attrgetter("ready_since", "agent_id")
_READY_SINCE = attrgetter("ready_since")
_AGENT_ID = attrgetter("agent_id")
_FEWEST_CALLS: SeatRank = attrgetter("calls_taken", "ready_since", "agent_id")


def _seat_rank(skill: str | None, choice: SeatChoice) -> SeatRank:
    """How ``choice`` ranks ready seats for a call needing ``skill``; smaller is better.

    ``longest_idle``: ``(ready_since, agent_id)``; ``fewest_calls``: ``(calls_taken,
    ready_since, agent_id)``; ``skill_level``: ``(-level, ready_since, agent_id)`` (without a
    skill every level counts as 0, so it is ``longest_idle``).
    """
    if choice == "fewest_calls":
        return _FEWEST_CALLS
    if choice == "skill_level" and skill is not None:
        return lambda seat: (-seat.skills.get(skill, 0), seat.ready_since, seat.agent_id)
    return _LONGEST_IDLE


def _best_admitted(ready: list[SeatView], rank: SeatRank,
                   admits: Callable[[SeatView], bool]) -> SeatView | None:
    """``min(filter(admits, ready), key=rank, default=None)``, usually asking ``admits`` once.

    The best ready seat of all is usually admitted. For ``longest_idle`` the seats are tried in
    order of ``ready_since``, taken from a heap of the plain floats (no key tuple per seat);
    seats exactly as idle as each other are compared by the whole key (``agent_id``).
    """
    if rank is not _LONGEST_IDLE:
        seat = min(ready, key=rank, default=None)
        if seat is None or admits(seat):
            return seat
        return min(filter(admits, ready), key=rank, default=None)
    idle = list(map(_READY_SINCE, ready))
    if not idle:
        return None
    longest = min(idle)
    if idle.count(longest) == 1 and admits(seat := ready[idle.index(longest)]):
        return seat  # the usual case
    heap = idle.copy()
    heapq.heapify(heap)
    while heap:
        since = heapq.heappop(heap)
        if heap and heap[0] == since:  # equally idle seats
            tied = [s for s, t in zip(ready, idle, strict=True) if t == since]
            while heap and heap[0] == since:
                heapq.heappop(heap)
            if fits := list(filter(admits, tied)):
                return min(fits, key=rank)
        elif admits(seat := ready[idle.index(since)]):
            return seat
    return None


class _FreeSeats:
    """The ready seats of one decision; :meth:`best` finds a call's best free one.

    Nothing is indexed up front, since a decision usually ends at its first call. Shortcuts only
    narrow the candidates; what they admit is exactly what :func:`eligible` admits:

    - in a VIP stage the candidates are the manager's seats (found with ``list.index``) and the
      VIP team's (collected on first need), each checked with :func:`eligible`;
    - after the stages, the seat choice depends on the call's skill alone. The first call of a
      decision needing a skill gets :func:`_best_admitted` (no sort). From the second call
      needing the skill on (a drain), that skill's seats are sorted once and each call takes the
      first one neither taken nor excluded; taken seats at the front are passed for good
      (``_head``).

    Given standing :class:`ReadySeats`, nothing is copied: seats are looked up by agent id, and
    ``longest_idle`` walks the kept idle order instead (the first seat that fits is the best;
    a drain filters that order by skill instead of sorting). The other seat choices rank a copy
    of the ready seats, as with a list.
    """

    def __init__(self, seats: Seats, policy: QueuePolicy, present: Present | None) -> None:
        self._policy = policy
        self._present = present
        self._index = seats if isinstance(seats, ReadySeats) else None
        self._ready = None if self._index is not None else [
            s for s in seats if s.ready_since is not None]
        self.taken: set[str] = set()  # agent ids already paired in this decision
        self._agent_ids: list[str] | None = None
        self._vip_team: list[SeatView] | None = None
        self._scanned: set[str | None] = set()  # skills a call of this decision looked for
        self._sorted: dict[str | None, list[SeatView]] = {}
        self._head: dict[str | None, int] = {}

    @property
    def ready(self) -> list[SeatView]:
        """The ready seats as a list (copied once from standing seats, on first need)."""
        if self._ready is None:
            self._ready = list(self._index or ())
        return self._ready

    def empty(self) -> bool:
        return not (self._index if self._index is not None else self.ready)

    def agents(self) -> int:
        """How many agents have a ready seat."""
        if self._index is not None:
            return len(self._index)
        return len(set(map(_AGENT_ID, self.ready)))

    def _ids(self) -> list[str]:
        """The agent id of each ready seat, worked out on first need."""
        if self._agent_ids is None:
            self._agent_ids = list(map(_AGENT_ID, self.ready))
        return self._agent_ids

    def _seats_of(self, agent: str | None) -> list[SeatView]:
        """The ready seats of ``agent`` (usually one or none)."""
        if agent is None:
            return []
        if self._index is not None:
            seat = self._index.get(agent)
            return [] if seat is None else [seat]
        ids = self._ids()
        out: list[SeatView] = []
        at = -1
        while True:
            try:
                at = ids.index(agent, at + 1)
            except ValueError:
                return out
            out.append(self.ready[at])

    def _staged_candidates(self, call: WaitingCall, manager_only: bool) -> list[SeatView]:
        manager = self._seats_of(call.manager)
        if manager_only:
            return manager
        team = self._policy.vip_team
        if self._vip_team is None and self._index is not None:
            self._vip_team = [s for agent in team if (s := self._index.get(agent)) is not None]
        elif self._vip_team is None:
            self._vip_team = list(compress(self.ready, map(team.__contains__, self._ids())))
        if call.manager in team:
            return self._vip_team
        return [*self._vip_team, *manager]

    def best(self, call: WaitingCall, now: float) -> SeatView | None:
        """The free seat :func:`next_assignment` would give ``call``, None if none fits."""
        policy, taken = self._policy, self.taken
        stages = _stage_ends(call, policy, self._present)
        skill = _skill(call, policy)
        rank = _seat_rank(skill, policy.seat_choice)
        if stages is not None and now < stages[1]:
            staged = self._staged_candidates(call, manager_only=now < stages[0])
            fits = [s for s in staged
                    if s.agent_id not in taken and _eligible(call, s, policy, skill, stages, now)]
            return min(fits, key=rank, default=None)
        if skill in self._scanned:
            return self._first_free(call, skill, rank)
        self._scanned.add(skill)
        barred = taken | call.excluded if taken else call.excluded

        def admits(seat: SeatView) -> bool:
            return ((skill is None or not seat.skills.get(skill, 0) < 1)
                    and seat.agent_id not in barred)

        if self._index is not None and rank is _LONGEST_IDLE:
            return next(filter(admits, self._index.by_idle()), None)
        return _best_admitted(self.ready, rank, admits)

    def _first_free(self, call: WaitingCall, skill: str | None, rank: SeatRank) -> SeatView | None:
        """The first seat in ``skill``'s seat-choice order neither taken nor refused by ``call``."""
        order = self._sorted.get(skill)
        if order is None and self._index is not None and rank is _LONGEST_IDLE:
            order = self._sorted[skill] = [s for s in self._index.by_idle()
                                           if _has_skill(s.skills, skill)]
            self._head[skill] = 0
        elif order is None:
            pool = [s for s in self.ready if _has_skill(s.skills, skill)]
            order = self._sorted[skill] = sorted(pool, key=rank)
            self._head[skill] = 0
        taken = self.taken
        head = self._head[skill]
        while head < len(order) and order[head].agent_id in taken:
            head += 1
        self._head[skill] = head
        for index in range(head, len(order)):
            seat = order[index]
            if seat.agent_id not in taken and seat.agent_id not in call.excluded:
                return seat
        return None


def next_assignment(
    waiting: Waiting, seats: Seats, policy: QueuePolicy, now: float,
    *, present: Present | None = None, skip: Callable[[WaitingCall], bool] | None = None,
) -> Assignment | None:
    """The best call that some seat may take, and the best such seat; None if nothing fits.

    Callers are taken in :func:`ranked` order, as far as needed (usually the first fits).
    ``present``: see :data:`Present` (None: VIP stages on time alone). ``waiting`` and
    ``seats`` may be standing indexes (:class:`Lineup`, :class:`ReadySeats`: the same decision,
    without sorting or scanning them). Calls for which ``skip`` says True are passed over as if
    they were not waiting (a caller being rung, say), without copying the rest.
    """
    free = _FreeSeats(seats, policy, present)
    if free.empty():
        return None
    for call in _line_of(waiting, policy, now, skip):
        seat = free.best(call, now)
        if seat is not None:
            return Assignment(call.call_id, seat.agent_id)
    return None


def assignments(
    waiting: Waiting, seats: Seats, policy: QueuePolicy, now: float,
    *, present: Present | None = None, skip: Callable[[WaitingCall], bool] | None = None,
) -> list[Assignment]:
    """Repeated :func:`next_assignment`; each call and each seat is used at most once.

    Computed in one pass in :func:`ranked` order, each call taking its best free eligible seat:
    the same pairs in the same order, because seats only leave, so a call that no free seat fits
    when its turn comes fits none later either. The pass ends when every seat is taken. A
    ``call_id`` or ``agent_id`` that occurs more than once is used once, as in the repetition.
    ``present``, ``skip`` and standing indexes: as for :func:`next_assignment`.
    """
    free = _FreeSeats(seats, policy, present)
    agents = free.agents()
    served: set[str] = set()
    out: list[Assignment] = []
    for call in _line_of(waiting, policy, now, skip):
        if len(free.taken) == agents:
            break
        if call.call_id in served:
            continue
        seat = free.best(call, now)
        if seat is not None:
            out.append(Assignment(call.call_id, seat.agent_id))
            served.add(call.call_id)
            free.taken.add(seat.agent_id)
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
