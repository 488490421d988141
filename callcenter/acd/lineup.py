"""Standing indexes for routing decisions: the waiting line and the ready seats (issue 12).

Sans-IO, like :mod:`callcenter.acd.routing`: plain containers, updated by whoever owns the state
(``AcdCore``, the routing bench) as callers arrive and leave and seats change state, and handed
to :func:`~callcenter.acd.routing.next_assignment` / :func:`~callcenter.acd.routing.assignments`
instead of lists, so a decision no longer sorts or scans everything it is given.

- :class:`Lineup`: the waiting calls of one queue by ``call_id``, and per tier their
  ``(position_key, call_id)`` in ascending order. Priority is a tier head start plus aging at one
  rate for all (``routing.priority``), so time never reorders a tier: its calls rank by that key,
  oldest first, at every ``now``. Only the order *across* tiers depends on ``now``; a decision
  merges the tiers' heads (four of them) in a small heap.
- :class:`ReadySeats`: the ready seats by ``agent_id``, and their ``(ready_since, agent_id)`` in
  ascending order: the ``longest_idle`` order of routing, kept rather than worked out.

Both are kept in order with :mod:`bisect`: an update costs a binary search and a list insert or
delete (a ``memmove`` of at most a few thousand pointers). Ids are unique here (an update of a
known id replaces it), so ``call_id`` and ``agent_id`` settle every tie: the decisions are those
of plain lists holding the same calls and seats (``tests/unit/test_routing_speed_invariants.py``
checks it against the old algorithm).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # routing imports this module; these are only annotations here
    from callcenter.acd.routing import SeatView, WaitingCall
    from callcenter.broker.interface import Tier


def _remove(entries: list[tuple[float, str]], entry: tuple[float, str]) -> None:
    """Delete ``entry`` (known to be there) from the sorted ``entries``."""
    del entries[bisect_left(entries, entry)]


class Lineup:
    """The waiting calls of one queue, kept in line order within each tier.

    :meth:`put` adds a call or replaces the one with its ``call_id`` (a call whose exclusions,
    tier or place changed is put again); :meth:`drop` removes one. The calls are read back as
    given (the ``WaitingCall`` objects themselves): keep them current.
    """

    __slots__ = ("_calls", "_tiers")

    def __init__(self, calls: Iterable[WaitingCall] = ()) -> None:
        self._calls: dict[str, WaitingCall] = {}
        self._tiers: dict[Tier, list[tuple[float, str]]] = {}
        for call in calls:
            self.put(call)

    def put(self, call: WaitingCall) -> None:
        """Add ``call``, or replace the call with its ``call_id``."""
        old = self._calls.get(call.call_id)
        if old is not None:
            _remove(self._tiers[old.tier], (old.key, old.call_id))
        self._calls[call.call_id] = call
        insort(self._tiers.setdefault(call.tier, []), (call.key, call.call_id))

    def drop(self, call_id: str) -> WaitingCall | None:
        """Remove the call with ``call_id`` and return it; None if it is not here."""
        old = self._calls.pop(call_id, None)
        if old is not None:
            _remove(self._tiers[old.tier], (old.key, old.call_id))
        return old

    def get(self, call_id: str) -> WaitingCall | None:
        return self._calls.get(call_id)

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __iter__(self) -> Iterator[WaitingCall]:
        """The calls in no particular order (use ``routing.ranked`` for the line)."""
        return iter(self._calls.values())

    def tiers(self) -> Iterator[tuple[Tier, list[tuple[float, str]]]]:
        """Each tier with calls, and its ``(position_key, call_id)`` in ascending order.

        The lists are the index itself: read them, do not change them, and do not update the
        lineup while reading.
        """
        return ((tier, keys) for tier, keys in self._tiers.items() if keys)

    def call(self, call_id: str) -> WaitingCall:
        """The call with ``call_id`` (KeyError if none): for the walk along :meth:`tiers`."""
        return self._calls[call_id]


class ReadySeats:
    """The ready seats, kept in ``longest_idle`` order: ``(ready_since, agent_id)`` ascending.

    :meth:`put` adds a seat or replaces the one with its ``agent_id``; a seat that is not ready
    (``ready_since`` None) is dropped instead, so a seat's every change can simply be put.
    """

    __slots__ = ("_idle", "_seats")

    def __init__(self, seats: Iterable[SeatView] = ()) -> None:
        self._seats: dict[str, SeatView] = {}
        self._idle: list[tuple[float, str]] = []
        for seat in seats:
            self.put(seat)

    def put(self, seat: SeatView) -> None:
        """Add or replace ``seat``; drop its agent's seat if it is not ready."""
        self.drop(seat.agent_id)
        if seat.ready_since is None:
            return
        self._seats[seat.agent_id] = seat
        insort(self._idle, (seat.ready_since, seat.agent_id))

    def drop(self, agent_id: str) -> SeatView | None:
        """Remove ``agent_id``'s seat and return it; None if it is not here."""
        old = self._seats.pop(agent_id, None)
        if old is not None and old.ready_since is not None:  # only ready seats are kept
            _remove(self._idle, (old.ready_since, agent_id))
        return old

    def get(self, agent_id: str) -> SeatView | None:
        return self._seats.get(agent_id)

    def __len__(self) -> int:
        return len(self._seats)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._seats

    def __iter__(self) -> Iterator[SeatView]:
        """The seats in no particular order (see :meth:`by_idle`)."""
        return iter(self._seats.values())

    def by_idle(self) -> Iterator[SeatView]:
        """The seats longest idle first (ties by ``agent_id``); do not update while reading."""
        seats = self._seats
        return (seats[agent] for _, agent in self._idle)
