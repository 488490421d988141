"""The engine's Prometheus metrics, sans-IO: what each family means and how it is counted.

Two kinds of family, in one dedicated ``CollectorRegistry`` (never prometheus_client's global
one: two engines in one process, as in tests, keep their own):

- **read at scrape time** (gauges): what the engine holds anyway (calls, queues, seats, links,
  FastAGI sessions, outbox depth) is read when Prometheus asks, into an ``EngineSample`` (plain
  values; ``service.py`` builds it from the engine), and turned into families by
  ``sample_families``. Nothing is counted on the hot path for them.
- **fed by listeners** (counters and histograms): what happens and is gone (IVR node visits and
  outcomes, queue events and waits, AMI and FastAGI round trips, delivery results, loop lag),
  through ``EngineMetrics.on_*``: the controller's notes, the ACD's notices, the outbox relay's
  events, the AMI client's and FastAGI server's observers, the loop-lag probe.

Names follow Prometheus' conventions: the ``callcenter_`` prefix, ``_total`` for counters,
``_seconds`` for durations, ``_ratio`` for shares, base units only. Labels stay bounded and
never carry caller data: queue names, states, flow and node ids of loaded flows, action and
command names. Every label value passes ``label_value`` (a plain word, no run of five or more
digits: an account, a phone number or a password can never become a label), and a family keeps
at most ``MAX_SERIES`` label sets (the rest count under ``other``). Call ids are never labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from callcenter.acd.calls import CallState
from callcenter.acd.figures import QueueEvent, QueueEventKind
from callcenter.acd.seat import SeatState

__all__ = [
    "CALL_STATES", "MAX_SERIES", "OTHER", "AgiSample", "EngineMetrics", "EngineSample",
    "IvrTracker", "LinkSample", "OutboxSample", "QueueSample", "call_states", "label_value",
    "longest_wait", "outbox_depth", "sample_families", "seat_counts",
]

# No ``<counter>_created`` series: they double the output and no dashboard of ours reads them.
# (prometheus_client's switch is process-wide; the engine's registry is the process's only one.)
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "callcenter_"
#: the label value for anything that is not a plain word, and past ``MAX_SERIES``
OTHER = "other"
#: label sets one family may hold; past it, new ones count under ``other``
MAX_SERIES = 500

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _./:-]{0,63}")
_DIGIT_RUN = re.compile(r"[0-9]{5,}")
_QUEUE_EVENTS = frozenset(k.value for k in QueueEventKind)

#: the states of ``callcenter_calls``: in the IVR, then the ACD's call states, then the rest
#: (an agent's own call, a dialer leg before it reaches a seat...)
CALL_STATES: tuple[str, ...] = (
    "ivr", *(s.value for s in CallState if s is not CallState.ENDED), "other")
SEAT_STATES: tuple[str, ...] = tuple(s.value for s in SeatState)
#: outbox rows still owed a result: ``queued`` (not yet on the bus), ``sent`` (awaiting a report)
OUTBOX_OPEN_STATES: tuple[str, ...] = ("queued", "sent")

#: round trips of AMI actions (an Originate waits for the phone: up to a minute)
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                      2.5, 5.0, 10.0, 30.0, 60.0)
#: FastAGI commands (a prompt or a key wait lasts as long as the caller takes)
AGI_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
               10.0, 30.0, 60.0, 120.0)
#: callers' waits in a queue
WAIT_BUCKETS = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
#: how late the event loop runs a timer
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def label_value(value: object) -> str:
    """``value`` as a label value if it is a plain word (letters, digits, ``_ . / : -`` and
    spaces, at most 64 characters, no run of five digits), else ``other``."""
    text = str(value)
    if not _LABEL.fullmatch(text) or _DIGIT_RUN.search(text):
        return OTHER
    return text


M = TypeVar("M", Counter, Histogram)


class _Bounded(Generic[M]):
    """A labelled family whose label sets are checked (``label_value``) and capped."""

    def __init__(self, metric: M, limit: int = MAX_SERIES) -> None:
        self.metric: M = metric
        self.limit = limit
        self._seen: set[tuple[str, ...]] = set()
        #: values as given -> their series (on the call path: each round trip, each event);
        #: as bounded as the series, so values that all fall into OTHER are not remembered
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is not None:
            return child
        key = tuple(label_value(v) for v in values)
        if key not in self._seen:
            if len(self._seen) >= self.limit:
                key = (OTHER,) * len(key)
            self._seen.add(key)
        child = self.metric.labels(*key)
        if len(self._children) < self.limit:
            self._children[values] = child
        return child


# -- what is read at scrape time --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueSample:
    name: str
    #: callers in the queue now (those holding their place by call-back included)
    waiting: int
    #: the longest of their waits so far, 0 with nobody waiting
    longest_wait_s: float
    #: the service level's target (the "20" of 80/20)
    target_s: float
    #: today's service level (the wallboard's); None before anything was answered or abandoned
    service_level: float | None


@dataclass(frozen=True, slots=True)
class LinkSample:
    """One AMI link: ``control`` (calls), ``phones`` (registrations), ``keys`` (the key tap)."""

    link: str
    up: bool
    #: logins so far (a reconnect adds one)
    connections: int


@dataclass(frozen=True, slots=True)
class AgiSample:
    active: int
    limit: int
    started: int
    refused_auth: int
    refused_busy: int


@dataclass(frozen=True, slots=True)
class OutboxSample:
    #: (channel, state) -> rows, for every channel kind and open state (zeros included)
    depth: Mapping[tuple[str, str], int]
    #: age of the oldest queued row; None: none queued
    oldest_queued_s: float | None


@dataclass(frozen=True, slots=True)
class EngineSample:
    calls: Mapping[str, int]
    queues: Sequence[QueueSample] = ()
    seats: Mapping[str, int] | None = None
    ami: Sequence[LinkSample] = ()
    agi: AgiSample | None = None
    outbox: OutboxSample | None = None


def call_states(live: Iterable[str], in_ivr: Collection[str], waiting: Collection[str],
                at_seats: Mapping[str, str]) -> dict[str, int]:
    """Live calls counted by state: the ACD's state of a call offered to or connected with a
    seat (``at_seats``: call id -> ``CallState`` value) first, then waiting in a queue, then in
    the IVR, else ``other``. Every state is present (0 when none)."""
    counts = dict.fromkeys(CALL_STATES, 0)
    for call_id in live:
        state = at_seats.get(call_id)
        if state is None:
            state = "waiting" if call_id in waiting else "ivr" if call_id in in_ivr else "other"
        counts[state if state in counts else "other"] += 1
    return counts


def seat_counts(states: Iterable[str]) -> dict[str, int]:
    """Seats counted by ``SeatState`` value, every state present."""
    counts = dict.fromkeys(SEAT_STATES, 0)
    for state in states:
        if state in counts:
            counts[state] += 1
    return counts


def longest_wait(arrivals: Iterable[float], now: float) -> float:
    """The longest wait so far of callers who arrived at ``arrivals`` (0 with none)."""
    return max((max(0.0, now - at) for at in arrivals), default=0.0)


def outbox_depth(rows: Iterable[tuple[str, str, int]], channels: Iterable[str]
                 ) -> dict[tuple[str, str], int]:
    """(channel, state, count) rows of open outbox rows -> every channel kind and open state,
    zeros included; channels not among ``channels`` count under ``other``."""
    kinds = {label_value(c) for c in channels}
    depth = {(c, s): 0 for c in kinds for s in OUTBOX_OPEN_STATES}
    for channel, state, count in rows:
        if state not in OUTBOX_OPEN_STATES:
            continue
        key = (channel if channel in kinds else OTHER, state)
        depth[key] = depth.get(key, 0) + int(count)
    return depth


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))


def sample_families(sample: EngineSample) -> list[Metric]:
    """The scrape-time families of one ``EngineSample``."""
    out: list[Metric] = []
    calls = _gauge("calls", "Live calls by state (IVR, the ACD's call states, other).",
                   ["state"])
    for state, n in sample.calls.items():
        calls.add_metric([state], n)
    out.append(calls)

    waiting = _gauge("queue_waiting_calls", "Callers waiting in each queue now.", ["queue"])
    longest = _gauge("queue_longest_wait_seconds",
                     "The longest wait so far among the callers waiting now.", ["queue"])
    target = _gauge("queue_service_level_target_seconds",
                    "Answer within this many seconds (the service level's target).", ["queue"])
    level = _gauge("queue_service_level_ratio",
                   "Today's service level: answered within target / (answered + abandoned).",
                   ["queue"])
    for q in sample.queues:
        name = label_value(q.name)
        waiting.add_metric([name], q.waiting)
        longest.add_metric([name], q.longest_wait_s)
        target.add_metric([name], q.target_s)
        if q.service_level is not None:
            level.add_metric([name], q.service_level)
    out += [waiting, longest, target, level]

    if sample.seats is not None:
        seats = _gauge("seats", "Agents' seats by state.", ["state"])
        for state, n in sample.seats.items():
            seats.add_metric([state], n)
        out.append(seats)

    up = _gauge("ami_up", "1 while the AMI link is logged in.", ["link"])
    logins = CounterMetricFamily(PREFIX + "ami_connections",
                                 "AMI logins (the first and every reconnect).", labels=["link"])
    for link in sample.ami:
        up.add_metric([link.link], 1 if link.up else 0)
        logins.add_metric([link.link], link.connections)
    out += [up, logins]

    if sample.agi is not None:
        agi = sample.agi
        active = _gauge("agi_sessions_active", "FastAGI sessions running now.")
        active.add_metric([], agi.active)
        limit = _gauge("agi_sessions_limit", "FastAGI sessions allowed at once.")
        limit.add_metric([], agi.limit)
        started = CounterMetricFamily(PREFIX + "agi_sessions", "FastAGI sessions taken.")
        started.add_metric([], agi.started)
        refused = CounterMetricFamily(
            PREFIX + "agi_sessions_refused",
            "FastAGI connections refused: no valid session token (auth), or at the limit.",
            labels=["reason"])
        refused.add_metric(["auth"], agi.refused_auth)
        refused.add_metric(["busy"], agi.refused_busy)
        out += [active, limit, started, refused]

    if sample.outbox is not None:
        depth = _gauge("outbox_messages",
                       "Outbox rows owed a result: queued (not yet published) or sent "
                       "(awaiting the channel server's report).", ["channel", "state"])
        for (channel, state), n in sorted(sample.outbox.depth.items()):
            depth.add_metric([channel, state], n)
        oldest = _gauge("outbox_oldest_queued_seconds",
                        "Age of the oldest queued outbox row (0 with none).")
        oldest.add_metric([], sample.outbox.oldest_queued_s or 0.0)
        out += [depth, oldest]
    return out


class _SampleCollector:
    """A prometheus_client collector that reads an ``EngineSample`` at each scrape."""

    def __init__(self, sample: Callable[[], EngineSample]) -> None:
        self._sample = sample

    def collect(self) -> Iterator[Metric]:
        yield from sample_families(self._sample())

    def describe(self) -> Iterator[Metric]:
        yield from sample_families(EngineSample(calls={}, seats={}, agi=AgiSample(0, 0, 0, 0, 0),
                                                outbox=OutboxSample({}, None)))


# -- what listeners feed ----------------------------------------------------------------------


#: IVR notes that end a call's time in the IVR, and the outcome they count as (``ivr.end``
#: carries its own reason)
_IVR_LEAVES = {"ivr.transfer": "transfer", "ivr.caller_hangup": "caller_hangup"}


class IvrTracker:
    """Which calls are in the IVR now, and in which flow, from the controller's notes."""

    def __init__(self) -> None:
        self._flows: dict[str, str] = {}

    def entered(self, call_id: str, flow: str) -> bool:
        """The call entered ``flow``; False when it was in the IVR already (a sub-flow)."""
        if call_id in self._flows:
            return False
        self._flows[call_id] = flow
        return True

    def left(self, call_id: str) -> str | None:
        """The call left the IVR: the flow it was in (None: it was not in it)."""
        return self._flows.pop(call_id, None)

    def flow_of(self, call_id: str) -> str | None:
        return self._flows.get(call_id)

    def current(self, live: Collection[str]) -> set[str]:
        """The calls in the IVR now; calls no longer live (ended without a last note) are
        forgotten."""
        for call_id in [c for c in self._flows if c not in live]:
            del self._flows[call_id]
        return set(self._flows)


class EngineMetrics:
    """The registry, its listener-fed families and, given ``sample``, the scrape-time ones."""

    def __init__(self, sample: Callable[[], EngineSample] | None = None, *,
                 process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ivr = IvrTracker()
        self.ivr_calls = _Bounded(Counter(
            PREFIX + "ivr_calls", "Calls that entered an IVR flow, by flow.", ["flow"],
            registry=r))
        self.ivr_visits = _Bounded(Counter(
            PREFIX + "ivr_node_visits", "IVR node visits, by flow and node.", ["flow", "node"],
            registry=r))
        self.ivr_outcomes = _Bounded(Counter(
            PREFIX + "ivr_outcomes",
            "How calls left the IVR: transfer (to a queue), completed, hangup (by the flow), "
            "caller_hangup, retries_exhausted, loop_guard, subflow_depth, unhandled_outcome, "
            "refused.", ["flow", "outcome"], registry=r))
        self.ivr_actions = _Bounded(Counter(
            PREFIX + "ivr_action_results", "Back-office actions run by the IVR, by outcome.",
            ["action", "outcome"], registry=r))
        self.queue_events = _Bounded(Counter(
            PREFIX + "queue_events",
            "Queue log events: enter, ring, noanswer, connect, abandon, callback, overflow, "
            "transfer, complete.", ["queue", "event"], registry=r))
        self.queue_in_target = _Bounded(Counter(
            PREFIX + "queue_answered_within_target",
            "Calls answered within their queue's service-level target.", ["queue"], registry=r))
        self.queue_wait = _Bounded(Histogram(
            PREFIX + "queue_wait_seconds", "Callers' waits in a queue, answered or abandoned.",
            ["queue", "outcome"], buckets=WAIT_BUCKETS, registry=r))
        self.ami_actions = _Bounded(Histogram(
            PREFIX + "ami_action_duration_seconds",
            "AMI actions from sending to their answer (answered ones).", ["action"],
            buckets=ROUND_TRIP_BUCKETS, registry=r))
        self.ami_failures = _Bounded(Counter(
            PREFIX + "ami_action_failures",
            "AMI actions without an answer: the link was lost, or the answer timed out.",
            ["action", "reason"], registry=r))
        self.agi_commands = _Bounded(Histogram(
            PREFIX + "agi_command_duration_seconds",
            "FastAGI commands from writing them to Asterisk's reply (prompts and key waits "
            "included).", ["command"], buckets=AGI_BUCKETS, registry=r))
        self.deliveries = _Bounded(Counter(
            PREFIX + "outbox_delivery_results",
            "Outbox row updates by the row's state after them: sent (published, or the "
            "channel server has it), delivered, failed.", ["channel", "state"], registry=r))
        self.loop_lag = Histogram(
            PREFIX + "event_loop_lag_seconds",
            "How late the engine's event loop runs a timer (sampled every ops.lag_tick_s).",
            buckets=LAG_BUCKETS, registry=r)
        self.loop_lag_last = Gauge(
            PREFIX + "event_loop_lag_last_seconds", "The event loop's latest lag sample.",
            registry=r)
        if sample is not None:
            r.register(_SampleCollector(sample))
        if process:
            ProcessCollector(registry=r)

    # -- listeners (synchronous, cheap: they run on the engine's hot paths) ---------------------

    def on_note(self, call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        """A controller note (``Controller.note_listeners``)."""
        if kind == "ivr.node":
            self.ivr_visits.labels(detail.get("flow", ""), detail.get("node", "")).inc()
        elif kind in ("ivr.flow", "ivr.start"):
            flow = detail.get("flow", "")
            if self.ivr.entered(call_id, flow):
                self.ivr_calls.labels(flow).inc()
        elif kind == "ivr.action":
            self.ivr_actions.labels(detail.get("action", ""), detail.get("outcome", "")).inc()
        elif kind == "ivr.end" or kind in _IVR_LEAVES:
            left = self.ivr.left(call_id)
            if left is not None:
                outcome = _IVR_LEAVES.get(kind) or detail.get("reason") \
                    or detail.get("outcome") or OTHER
                self.ivr_outcomes.labels(left, outcome).inc()
        elif kind == "ivr.refused":
            self.ivr_outcomes.labels("none", "refused").inc()

    def on_queue_event(self, event: QueueEvent, target_s: float | None) -> None:
        """A queue log row (the ACD's ``QueueLogged`` notice); ``target_s``: its queue's."""
        kind = event.event if event.event in _QUEUE_EVENTS else OTHER
        self.queue_events.labels(event.queue, kind).inc()
        if event.wait_s is None:
            return
        if kind == QueueEventKind.CONNECT:
            self.queue_wait.labels(event.queue, "answered").observe(event.wait_s)
            if target_s is not None and event.wait_s <= target_s:
                self.queue_in_target.labels(event.queue).inc()
        elif kind == QueueEventKind.ABANDON:
            self.queue_wait.labels(event.queue, "abandoned").observe(event.wait_s)

    def on_ami_action(self, action: str, seconds: float, result: str) -> None:
        if result == "answered":
            self.ami_actions.labels(action).observe(seconds)
        else:
            self.ami_failures.labels(action, result).inc()

    def on_agi_round_trip(self, command: str, seconds: float) -> None:
        self.agi_commands.labels(command).observe(seconds)

    def on_delivery(self, channel: str, state: str) -> None:
        self.deliveries.labels(channel, state).inc()

    def on_loop_lag(self, seconds: float) -> None:
        self.loop_lag.observe(seconds)
        self.loop_lag_last.set(seconds)

    # -- exposition -------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
