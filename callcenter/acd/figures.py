"""Queue and agent figures for a period, sans-IO: the definitions behind the report and wallboard.

This module owns what every figure *means*. It reads no clock and touches no database: the
batch functions (:func:`queue_figures`, :func:`agent_figures`) take the rows of ``queue_log`` and
``seat_log`` as :class:`QueueEvent` and :class:`SeatEvent`, and :class:`LiveQueueFigures` takes
the same events one by one as the ACD makes them and answers the same numbers at any moment.

Times are seconds on the clock of ``queue_log.at`` / ``seat_log.at``. A period is ``[start, end)``.

Counting rules:

- An event counts in the period its ``at`` falls in. A call that enters before midnight and is
  answered after it is offered on one day and answered on the next, so over a short period
  ``answered + abandoned`` need not equal ``offered``. This is what a wallboard fed event by
  event can show, and it never counts a call twice over consecutive periods.
- A ``callback`` keeps the caller's place: the later ``connect`` of the callback is an answer
  (its ``wait_s`` runs from the original ``enter``, so it is rarely within target). An
  ``overflow`` is neither answered nor abandoned in the queue it leaves; the new queue logs its
  own ``enter``, so the call is offered there too.
- Service level = connects with ``wait_s <= target_s`` / (answered + abandoned). Short abandons
  are *not* excluded by default (``short_abandon_s=0``): a caller who hangs up after a few
  seconds was still not served, and excluding them would flatter exactly the queue whose
  greeting makes people give up. Sites that report the "excluding short abandons" convention
  pass ``short_abandon_s``; abandons shorter than it leave the service-level denominator only
  (they still count as abandoned and in the abandonment rate).
- ASA is the mean ``wait_s`` of connects; the longest wait is the largest ``wait_s`` of connects
  and abandons. AHT is the mean of ``talk_s`` plus the wrap-up that follows each ``complete``
  (the agent's ``wrap_up`` state that starts within :data:`WRAP_MATCH_S` of it, clipped to the
  period, so AHT parts add up to the agents' wrap-up time and a wallboard can show it live).
  A wrap-up counts for at most its first :data:`WRAP_COUNTED_MAX_S`: longer is a seat nobody
  works at (a console left open, the engine down across it), and one such wrap-up would make
  the day's AHT read hours. The agent's ``wrap_up_s`` state time is not capped.
- Agent state times are ``seat_log`` intervals clipped to the period. A state lasts until the
  agent's next row; before an agent's first row the agent was in that row's ``from_state``.
  Talk time is on_call + on_hold. Occupancy = (ringing + on_call + on_hold + wrap_up) /
  (that + ready).
- Averages and shares of nothing are ``None``, never 0 or NaN.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from callcenter.acd.seat import SeatState

__all__ = [
    "BUSY_STATES",
    "WRAP_COUNTED_MAX_S",
    "WRAP_MATCH_S",
    "AgentFigures",
    "LiveQueueFigures",
    "QueueEvent",
    "QueueEventKind",
    "QueueFigures",
    "SeatEvent",
    "agent_figures",
    "queue_figures",
]

#: A ``complete`` and the seat's move into ``wrap_up`` are logged for the same moment; this much
#: slack lets them come from two clock reads. Two calls of one agent never end this close.
WRAP_MATCH_S = 1.0

#: A wrap-up counts in AHT for at most this long (15 minutes: longer than any wrap-up form
#: takes; what is longer is a seat left in wrap-up, see the module's counting rules).
WRAP_COUNTED_MAX_S = 900.0


def _counted_end(wrap_start: float, wrap_end: float) -> float:
    """Where a wrap-up that started at ``wrap_start`` stops counting in AHT."""
    return min(wrap_end, wrap_start + WRAP_COUNTED_MAX_S)

#: States that count as working time for occupancy.
BUSY_STATES: frozenset[SeatState] = frozenset(
    {SeatState.RINGING, SeatState.ON_CALL, SeatState.ON_HOLD, SeatState.WRAP_UP},
)


class QueueEventKind(enum.StrEnum):
    """The ``queue_log.event`` values. Unknown values are ignored, so new ones can be added."""

    ENTER = "enter"
    RING = "ring"
    NOANSWER = "noanswer"
    CONNECT = "connect"
    ABANDON = "abandon"
    CALLBACK = "callback"
    OVERFLOW = "overflow"
    TRANSFER = "transfer"
    COMPLETE = "complete"


K = QueueEventKind


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One ``queue_log`` row. ``detail`` is not needed for figures (the Asterisk-format
    queue_log reads it: ``acd/asterisk_qlog.py``); it takes no part in comparisons."""

    at: float
    queue: str
    call_id: str
    event: str
    agent_id: str = ""
    tier: str = ""
    wait_s: float | None = None
    talk_s: float | None = None
    detail: Mapping[str, str] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class SeatEvent:
    """One ``seat_log`` row (input, reason and ``by`` are not needed for figures)."""

    at: float
    agent_id: str
    from_state: SeatState
    to_state: SeatState


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """One queue over one period. ``target_s`` None: the queue is not configured (no SL)."""

    queue: str
    target_s: float | None
    offered: int
    answered: int
    answered_in_target: int
    abandoned: int
    short_abandoned: int
    abandon_rate: float | None
    service_level: float | None
    asa_s: float | None
    aht_s: float | None
    longest_wait_s: float | None
    callbacks: int
    overflows: int
    transfers: int
    handled: int


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """One agent over one period; times in seconds, clipped to the period."""

    agent_id: str
    handled: int
    aht_s: float | None
    talk_s: float
    wrap_up_s: float
    ringing_s: float
    ready_s: float
    not_ready_s: float
    logged_in_s: float
    occupancy: float | None
    no_answers: int


# -- tallies: the sums both the batch and the live path build; figures are derived from them ----


@dataclass(slots=True)
class _QueueTally:
    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    callbacks: int = 0
    overflows: int = 0
    transfers: int = 0
    waits: int = 0               # connects that carry a wait_s (the ASA denominator)
    wait_sum: float = 0.0
    longest_wait_s: float | None = None
    handled: int = 0
    talk_sum: float = 0.0
    wrap_sum: float = 0.0        # wrap-ups that follow this queue's completes

    def count(self, ev: QueueEvent, target_s: float | None, short_abandon_s: float) -> None:
        """Everything but wrap-up time, which needs the seat log."""
        kind = ev.event
        if kind == K.ENTER:
            self.offered += 1
        elif kind == K.CONNECT:
            self.answered += 1
            if ev.wait_s is not None:
                self.waits += 1
                self.wait_sum += ev.wait_s
                self._longest(ev.wait_s)
                if target_s is not None and ev.wait_s <= target_s:
                    self.answered_in_target += 1
        elif kind == K.ABANDON:
            self.abandoned += 1
            if ev.wait_s is not None:
                self._longest(ev.wait_s)
                if ev.wait_s < short_abandon_s:
                    self.short_abandoned += 1
        elif kind == K.CALLBACK:
            self.callbacks += 1
        elif kind == K.OVERFLOW:
            self.overflows += 1
        elif kind == K.TRANSFER:
            self.transfers += 1
        elif kind == K.COMPLETE:
            self.handled += 1
            self.talk_sum += ev.talk_s or 0.0

    def _longest(self, wait: float) -> None:
        if self.longest_wait_s is None or wait > self.longest_wait_s:
            self.longest_wait_s = wait


@dataclass(slots=True)
class _AgentTally:
    times: dict[SeatState, float] = field(default_factory=lambda: dict.fromkeys(SeatState, 0.0))
    handled: int = 0
    talk_sum: float = 0.0        # talk_s of completes (AHT)
    wrap_sum: float = 0.0        # wrap-ups matched to those completes (AHT)
    no_answers: int = 0

    def copy(self) -> _AgentTally:
        return dataclasses.replace(self, times=dict(self.times))


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _queue_row(name: str, target_s: float | None, t: _QueueTally) -> QueueFigures:
    sl_base = t.answered + t.abandoned - t.short_abandoned
    return QueueFigures(
        queue=name,
        target_s=target_s,
        offered=t.offered,
        answered=t.answered,
        answered_in_target=t.answered_in_target,
        abandoned=t.abandoned,
        short_abandoned=t.short_abandoned,
        abandon_rate=_share(t.abandoned, t.offered),
        service_level=None if target_s is None else _share(t.answered_in_target, sl_base),
        asa_s=_share(t.wait_sum, t.waits),
        aht_s=_share(t.talk_sum + t.wrap_sum, t.handled),
        longest_wait_s=t.longest_wait_s,
        callbacks=t.callbacks,
        overflows=t.overflows,
        transfers=t.transfers,
        handled=t.handled,
    )


def _agent_row(agent_id: str, t: _AgentTally) -> AgentFigures | None:
    """None for an agent with nothing in the period (logged out throughout, no calls)."""
    s = t.times
    logged_in = sum(v for state, v in s.items() if state is not SeatState.LOGGED_OUT)
    if logged_in <= 0 and t.handled == 0 and t.no_answers == 0:
        return None
    busy = sum(s[state] for state in BUSY_STATES)
    return AgentFigures(
        agent_id=agent_id,
        handled=t.handled,
        aht_s=_share(t.talk_sum + t.wrap_sum, t.handled),
        talk_s=s[SeatState.ON_CALL] + s[SeatState.ON_HOLD],
        wrap_up_s=s[SeatState.WRAP_UP],
        ringing_s=s[SeatState.RINGING],
        ready_s=s[SeatState.READY],
        not_ready_s=s[SeatState.NOT_READY],
        logged_in_s=logged_in,
        occupancy=_share(busy, busy + s[SeatState.READY]),
        no_answers=t.no_answers,
    )


def _queue_order(names: Iterable[str], targets: Mapping[str, float]) -> list[str]:
    """Configured queues in their configured order, then any others by name."""
    seen = set(names)
    return [q for q in targets] + sorted(seen - set(targets))


def _overlap(a: float, b: float, start: float, end: float) -> float:
    return max(0.0, min(b, end) - max(a, start))


def _check_period(start: float, end: float, short_abandon_s: float = 0.0) -> None:
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise ValueError(f"a period needs finite start <= end, got [{start!r}, {end!r})")
    if not math.isfinite(short_abandon_s) or short_abandon_s < 0:
        raise ValueError(f"short_abandon_s must be >= 0, got {short_abandon_s!r}")


# -- batch ----------------------------------------------------------------------------------------

_Span = tuple[float, float, SeatState]


def _spans(seat_events: Iterable[SeatEvent], end: float) -> dict[str, list[_Span]]:
    """Each agent's states as unclipped ``(from, to, state)``; rows at or after ``end`` unused."""
    rows: dict[str, list[SeatEvent]] = defaultdict(list)
    for ev in sorted((e for e in seat_events if e.at < end), key=lambda e: e.at):  # stable
        rows[ev.agent_id].append(ev)
    spans: dict[str, list[_Span]] = {}
    for agent, evs in rows.items():
        out: list[_Span] = [(-math.inf, evs[0].at, evs[0].from_state)]
        for ev, nxt in itertools.pairwise(evs):
            out.append((ev.at, nxt.at, ev.to_state))
        out.append((evs[-1].at, end, evs[-1].to_state))
        spans[agent] = out
    return spans


def _matched_wraps(
    completes: list[QueueEvent], spans: list[_Span], start: float, end: float,
) -> list[float]:
    """For each complete (in time order) the clipped length of its wrap-up, 0 if none."""
    wraps = [(a, _counted_end(a, b)) for a, b, state in spans if state is SeatState.WRAP_UP]
    out: list[float] = []
    i = 0
    for c in completes:
        while i < len(wraps) and wraps[i][0] < c.at - WRAP_MATCH_S:
            i += 1
        if i < len(wraps) and wraps[i][0] <= c.at + WRAP_MATCH_S:
            out.append(_overlap(*wraps[i], start, end))
            i += 1  # a wrap-up belongs to one call
        else:
            out.append(0.0)
    return out


def _completes_by_agent(events: list[QueueEvent]) -> dict[str, list[QueueEvent]]:
    out: dict[str, list[QueueEvent]] = defaultdict(list)
    for ev in events:
        if ev.event == K.COMPLETE:
            out[ev.agent_id].append(ev)
    return out


def _in_period(events: Iterable[QueueEvent], start: float, end: float) -> list[QueueEvent]:
    return sorted((e for e in events if start <= e.at < end), key=lambda e: e.at)


def queue_figures(
    events: Iterable[QueueEvent],
    seat_events: Iterable[SeatEvent],
    start: float,
    end: float,
    targets: Mapping[str, float],
    *,
    short_abandon_s: float = 0.0,
) -> list[QueueFigures]:
    """Per-queue figures for ``[start, end)``: every queue of ``targets`` (name -> target_s),
    then any other queue with an event in the period."""
    _check_period(start, end, short_abandon_s)
    period = _in_period(events, start, end)
    tallies: dict[str, _QueueTally] = {q: _QueueTally() for q in targets}
    for ev in period:
        tallies.setdefault(ev.queue, _QueueTally()).count(
            ev, targets.get(ev.queue), short_abandon_s,
        )
    spans = _spans(seat_events, end)
    for agent, completes in _completes_by_agent(period).items():
        wraps = _matched_wraps(completes, spans.get(agent, []), start, end)
        for c, wrap in zip(completes, wraps, strict=True):
            tallies[c.queue].wrap_sum += wrap
    return [_queue_row(q, targets.get(q), tallies[q]) for q in _queue_order(tallies, targets)]


def agent_figures(
    events: Iterable[QueueEvent],
    seat_events: Iterable[SeatEvent],
    start: float,
    end: float,
) -> list[AgentFigures]:
    """Per-agent figures for ``[start, end)``, by agent id; agents with nothing in it are left out.

    ``seat_events`` should include each agent's last row before ``start`` (its state then).
    """
    _check_period(start, end)
    period = _in_period(events, start, end)
    spans = _spans(seat_events, end)
    tallies: dict[str, _AgentTally] = defaultdict(_AgentTally)
    for agent, agent_spans in spans.items():
        for a, b, state in agent_spans:
            tallies[agent].times[state] += _overlap(a, b, start, end)
    for ev in period:
        if ev.event == K.NOANSWER and ev.agent_id:
            tallies[ev.agent_id].no_answers += 1
    for agent, completes in _completes_by_agent(period).items():
        tally = tallies[agent]
        tally.handled += len(completes)
        tally.talk_sum += sum(c.talk_s or 0.0 for c in completes)
        tally.wrap_sum += sum(_matched_wraps(completes, spans.get(agent, []), start, end))
    rows = (_agent_row(agent, tallies[agent]) for agent in sorted(tallies))
    return [row for row in rows if row is not None]


# -- live -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _LiveSeat:
    state: SeatState
    since: float
    wrap_start: float | None = None      # the agent's latest wrap-up
    wrap_end: float | None = None        # None while it goes on
    wrap_owner: str | None = None        # queue of the complete it belongs to

    @property
    def wrap_open(self) -> bool:
        return self.wrap_start is not None and self.wrap_end is None


class LiveQueueFigures:
    """The same figures as :func:`queue_figures`/:func:`agent_figures`, fed event by event.

    Make one per period (e.g. each midnight) with the period's ``start``; ``seats`` are the
    agents' states at ``start`` (what the batch reads from each agent's last row before it).
    Feed events in time order as they happen, with their own times; :meth:`queues` and
    :meth:`agents` answer for ``[start, now)``. Events before ``start`` only move seat states.
    """

    def __init__(
        self,
        start: float,
        targets: Mapping[str, float],
        *,
        short_abandon_s: float = 0.0,
        seats: Mapping[str, SeatState] | None = None,
    ) -> None:
        _check_period(start, start, short_abandon_s)
        self.start = start
        self._targets = dict(targets)
        self._short_abandon_s = short_abandon_s
        self._queues: dict[str, _QueueTally] = {q: _QueueTally() for q in self._targets}
        self._agents: dict[str, _AgentTally] = defaultdict(_AgentTally)
        self._seats = {agent: _LiveSeat(state, start) for agent, state in (seats or {}).items()}
        self._pending: dict[str, tuple[float, str]] = {}  # agent -> (at, queue) of a complete
        #                                                   whose wrap-up has not started yet

    # -- feeding --------------------------------------------------------------------------------

    def feed(self, ev: QueueEvent | SeatEvent) -> None:
        """Dispatch one logged row (what the batch functions take) to the ``on_*`` methods."""
        if isinstance(ev, SeatEvent):
            self.on_seat_change(ev.at, ev.agent_id, ev.from_state, ev.to_state)
        else:
            self._queue_event(ev)

    def on_enter(self, at: float, queue: str, call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.ENTER))

    def on_ring(self, at: float, queue: str, agent_id: str, call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.RING, agent_id))

    def on_noanswer(self, at: float, queue: str, agent_id: str, call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.NOANSWER, agent_id))

    def on_connect(self, at: float, queue: str, agent_id: str, wait_s: float,
                   call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.CONNECT, agent_id, wait_s=wait_s))

    def on_abandon(self, at: float, queue: str, wait_s: float, call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.ABANDON, wait_s=wait_s))

    def on_callback(self, at: float, queue: str, call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.CALLBACK))

    def on_overflow(self, at: float, queue: str, call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.OVERFLOW))

    def on_transfer(self, at: float, queue: str, agent_id: str = "", call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.TRANSFER, agent_id))

    def on_complete(self, at: float, queue: str, agent_id: str, talk_s: float,
                    call_id: str = "") -> None:
        self._queue_event(QueueEvent(at, queue, call_id, K.COMPLETE, agent_id, talk_s=talk_s))

    def on_seat_change(self, at: float, agent_id: str, from_state: SeatState,
                       to_state: SeatState) -> None:
        seat = self._seats.get(agent_id)
        if seat is None:  # first news of this agent: it was in from_state until now
            seat = self._seats[agent_id] = _LiveSeat(from_state, -math.inf)
        self._agents[agent_id].times[seat.state] += self._since_start(seat.since, at)
        if seat.state is SeatState.WRAP_UP and seat.wrap_open:
            seat.wrap_end = at
            if seat.wrap_owner is not None:
                self._add_wrap(agent_id, seat.wrap_owner, self._wrap_counted(seat, at))
        seat.state, seat.since = to_state, at
        if to_state is SeatState.WRAP_UP:
            seat.wrap_start, seat.wrap_end, seat.wrap_owner = at, None, None
            pending = self._pending.pop(agent_id, None)
            if pending is not None and pending[0] >= at - WRAP_MATCH_S:
                self._claim(agent_id, seat, pending[1])

    def _queue_event(self, ev: QueueEvent) -> None:
        if ev.at < self.start:
            return
        tally = self._queues.setdefault(ev.queue, _QueueTally())
        tally.count(ev, self._targets.get(ev.queue), self._short_abandon_s)
        if not ev.agent_id:
            return
        if ev.event == K.NOANSWER:
            self._agents[ev.agent_id].no_answers += 1
        elif ev.event == K.COMPLETE:
            agent = self._agents[ev.agent_id]
            agent.handled += 1
            agent.talk_sum += ev.talk_s or 0.0
            seat = self._seats.get(ev.agent_id)
            if (seat is not None and seat.wrap_start is not None and seat.wrap_owner is None
                    and seat.wrap_start >= ev.at - WRAP_MATCH_S):
                self._claim(ev.agent_id, seat, ev.queue)  # the wrap-up was logged first
            else:
                self._pending[ev.agent_id] = (ev.at, ev.queue)

    def _claim(self, agent_id: str, seat: _LiveSeat, queue: str) -> None:
        seat.wrap_owner = queue
        if seat.wrap_end is not None:  # already over (a zero-length wrap-up): add it now
            self._add_wrap(agent_id, queue, self._wrap_counted(seat, seat.wrap_end))

    def _add_wrap(self, agent_id: str, queue: str, seconds: float) -> None:
        self._queues.setdefault(queue, _QueueTally()).wrap_sum += seconds
        self._agents[agent_id].wrap_sum += seconds

    def _wrap_counted(self, seat: _LiveSeat, until: float) -> float:
        """The seconds of ``seat``'s wrap-up, up to ``until``, that count in AHT."""
        if seat.wrap_start is None:
            return 0.0
        return self._since_start(seat.wrap_start, _counted_end(seat.wrap_start, until))

    def _since_start(self, since: float | None, until: float) -> float:
        return 0.0 if since is None else max(0.0, until - max(since, self.start))

    # -- answers --------------------------------------------------------------------------------

    def _open_wraps(self, now: float) -> list[tuple[str, str, float]]:
        """(agent, owning queue, seconds so far) of claimed wrap-ups still going on."""
        return [
            (agent, seat.wrap_owner, self._wrap_counted(seat, now))
            for agent, seat in self._seats.items()
            if seat.wrap_open and seat.wrap_owner is not None
        ]

    def queues(self, now: float) -> list[QueueFigures]:
        """Per-queue figures for ``[start, now)``, as :func:`queue_figures` would give them."""
        tallies = {q: dataclasses.replace(t) for q, t in self._queues.items()}
        for _, queue, seconds in self._open_wraps(now):
            tallies[queue].wrap_sum += seconds
        order = _queue_order(tallies, self._targets)
        return [_queue_row(q, self._targets.get(q), tallies[q]) for q in order]

    def agents(self, now: float) -> list[AgentFigures]:
        """Per-agent figures for ``[start, now)``, as :func:`agent_figures` would give them."""
        tallies = {a: t.copy() for a, t in self._agents.items()}
        for agent, seat in self._seats.items():
            tally = tallies.setdefault(agent, _AgentTally())
            tally.times[seat.state] += self._since_start(seat.since, now)
        for agent, _, seconds in self._open_wraps(now):
            tallies[agent].wrap_sum += seconds
        rows = (_agent_row(agent, tallies[agent]) for agent in sorted(tallies))
        return [row for row in rows if row is not None]
