"""``callcenter bench acd-load``: many agents, many callers, a backlog that never empties; how soon
an agent who hangs up is talking to the next waiting caller, ours against app_queue.

Each side gets its own ``--agents`` simulated agents: ``Local/<n>@agent-talk`` phones that answer
at once, talk 2-6 s (uniform, drawn by the dialplan) and hang up (``extensions_sandbox.conf``).

- **ours**: the engine's ACD (queue ``general``, seats ``L001``... ready, no wrap-up, no
  announcements); callers wait in ``[queue-hold]`` and are queued when they are parked there
  (``UserEvent(CallCenterLegParked)``), as the IVR queues them; the ACD originates the agent's
  phone into ``[acd-agent]``, whose ``Bridge()`` takes the caller in.
- **app_queue**: Asterisk's ``Queue(bench-load)`` (``queues.conf``: ``strategy = leastrecent``,
  one member rung at a time, the one idle longest first, ``wrapuptime = 0``, no announcements),
  the same number of ``agent-talk`` members added over AMI; callers wait in ``Queue()``.

Callers are AMI ``Originate``s of Local channels (the ``;1`` half holds the line in
``[caller-sim]``, the ``;2`` half waits). A phase opens with one caller per agent plus
``--backlog``; from then on, each caller who is connected (or gives up) is replaced as long as
fewer than ``--backlog`` wait, so callers keep arriving faster than agents free and both sides
always have the same backlog. After ``--phase-s`` seconds no one new arrives; the backlog is
served, the calls end, and a caller who never got an agent is lost. Phases run ABBA (ours,
app_queue, app_queue, ours, ...) so drift weighs on both.

The measure, the same for both sides, on Asterisk's own clock (the ``Timestamp`` of each AMI
event, ``timestampevents = yes``; the benchmark listens on a connection of its own):

- *agent free*: the ``Hangup`` of the agent phone's ``;2`` half (the simulated agent hanging up);
- *connected*: the ``BridgeEnter`` that puts that agent's channel and a waiting caller in one
  bridge (the later of the two entries);
- a *handoff* is the time from an agent's free to that agent's next connection, counted only when
  at least one caller was waiting at the free (else the agent simply had nobody to take);
- a caller's *wait*: from joining (the ``[queue-hold]`` park event; app_queue's
  ``QueueCallerJoin``) to being connected.

Only the pure pieces (event list to marks, handoff matching, summaries, rendering) are
unit-tested; the numbers are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from callcenter.bench_ivr import Machine, machine_info, percentile
from callcenter.benchdoc import write_section
from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.errors import CallCenterError, ConfigError, PbxError
from callcenter.event_loop import running_loop_name
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.pbx import Pbx

TITLE = "ACD under load: agent free to next caller connected"
HEADING = f"## {TITLE}"
SIDES: Final = ("ours", "theirs")
SIDE_NAMES: Mapping[str, str] = {"ours": "ours (engine ACD)", "theirs": "app_queue"}
AGENT_CONTEXT = "agent-talk"
TALK_S = (2, 6)               # what [agent-talk] draws; stated in the report
AGENT_BASE: Mapping[str, int] = {"ours": 6000, "theirs": 7000}  # agent n is exten base + n
APP_QUEUE = "bench-load"
CALLER_PREFIX = "acdload-"
#: where each side's callers wait: the ``;2`` half of ``Local/<exten>@<context>``
CALLER_DEST: Mapping[str, tuple[str, str]] = {"ours": ("s", "queue-hold"),
                                              "theirs": ("load", "bench-queue")}
CALLER_HOLD_S = 600           # the caller's patience: far beyond a phase's wait
DRAIN_S = 30.0                # after arrivals stop, the backlog gets this long to be served
END_S = 20.0                  # then the calls this long to end
REAP_AFTER_S = 1.0            # a caller still up this long after its agent hung up is hung up
MAX_FAILED = 20               # originates refused in a phase before arrivals stop

JOIN, CONNECT, FREE, GONE = "join", "connect", "free", "gone"
#: the events the benchmark's own AMI connection keeps (of those the engine's user receives)
KEPT_EVENTS: Final = frozenset({"BridgeEnter", "BridgeLeave", "Hangup", "QueueCallerJoin",
                                "UserEvent"})
_AGENT_CHANNEL = re.compile(
    r"^Local/(?P<agent>[0-9]+)@" + re.escape(AGENT_CONTEXT) + r"-[0-9a-f]+;(?P<half>[12])$")


# -- pure pieces ----------------------------------------------------------------------------------


def agent_of(channel: str) -> tuple[str, str] | None:
    """``(extension, half)`` of a simulated agent phone's Local channel, else None."""
    m = _AGENT_CHANNEL.fullmatch(channel)
    return (m["agent"], m["half"]) if m else None


def caller_of(uniqueid: str) -> str | None:
    """The call id of a benchmark caller's waiting half (uniqueid ``<call id>-b``), else None."""
    if uniqueid.startswith(CALLER_PREFIX) and uniqueid.endswith("-b"):
        return uniqueid[:-2]
    return None


def relevant(headers: Mapping[str, str]) -> bool:
    """Whether an AMI event concerns the benchmark's agents or callers (the rest is not kept)."""
    return headers.get("Event", "") in KEPT_EVENTS and (
        caller_of(headers.get("Uniqueid", "")) is not None
        or agent_of(headers.get("Channel", "")) is not None)


@dataclass(frozen=True, slots=True)
class Mark:
    """One fact of a phase, on Asterisk's clock (seconds)."""

    at: float
    kind: str          # JOIN, CONNECT, FREE, GONE
    agent: str = ""
    caller: str = ""


def marks_from_events(events: Iterable[Mapping[str, str]]) -> list[Mark]:
    """The phase's facts from its AMI events (header mappings with ``Timestamp``), in order.

    A caller joins at its first park in ``[queue-hold]`` or its ``QueueCallerJoin``; an agent and
    a caller are connected when a ``BridgeEnter`` makes one bridge hold both (once per bridge and
    pair); an agent is free at its phone's ``;2`` ``Hangup``; a caller is gone at its waiting
    half's ``Hangup``. Events without a usable timestamp are skipped."""
    marks: list[Mark] = []
    joined: set[str] = set()
    bridges: dict[str, dict[str, str]] = {}     # bridge -> {"agent": ext, "caller": call id}
    paired: set[tuple[str, str, str]] = set()
    for h in events:
        try:
            at = float(h.get("Timestamp", ""))
        except ValueError:
            continue
        name = h.get("Event", "")
        caller = caller_of(h.get("Uniqueid", ""))
        agent = agent_of(h.get("Channel", ""))
        if name in ("QueueCallerJoin", "UserEvent"):
            parked = name == "QueueCallerJoin" or (
                h.get("UserEvent") == "CallCenterLegParked" and h.get("Where") == "queue")
            if caller is not None and parked and caller not in joined:
                joined.add(caller)
                marks.append(Mark(at, JOIN, caller=caller))
        elif name in ("BridgeEnter", "BridgeLeave"):
            bridge_id = h.get("BridgeUniqueid", "")
            if not bridge_id or (caller is None and agent is None):
                continue
            members = bridges.setdefault(bridge_id, {})
            if caller is not None:
                role, who = "caller", caller
            else:
                assert agent is not None
                role, who = "agent", agent[0]
            if name == "BridgeLeave":
                if members.get(role) == who:
                    del members[role]
                if not members:
                    del bridges[bridge_id]
                continue
            members[role] = who
            pair = (bridge_id, members.get("agent", ""), members.get("caller", ""))
            if pair[1] and pair[2] and pair not in paired:
                paired.add(pair)
                marks.append(Mark(at, CONNECT, agent=pair[1], caller=pair[2]))
        elif name == "Hangup":
            if caller is not None:
                marks.append(Mark(at, GONE, caller=caller))
            elif agent is not None and agent[1] == "2":
                marks.append(Mark(at, FREE, agent=agent[0]))
    marks.sort(key=lambda m: m.at)
    return marks


@dataclass
class Analysis:
    """What one phase's marks say."""

    window_s: float = 0.0
    joined: int = 0
    connected: int = 0                 # callers who got an agent (each once)
    talks_ms: list[float] = field(default_factory=list)  # connected to free, per call
    handoffs_ms: list[float] = field(default_factory=list)
    waits_ms: list[float] = field(default_factory=list)
    idle_frees: int = 0                # agent freed with nobody waiting: no handoff
    missed: int = 0                    # freed with callers waiting, never connected again


def analyse(marks: Sequence[Mark], start: float, until: float) -> Analysis:
    """Handoffs, waits, talks and counts of one phase. ``start``/``until``: when arrivals began
    and stopped; frees after ``until`` are not handoffs (the backlog is being worked off). A
    talk is a free's time since that agent's previous connection."""
    out = Analysis(window_s=max(0.0, until - start))
    joins: dict[str, float] = {}
    exits: dict[str, float] = {}          # connected or gone, whichever came first
    connects: dict[str, list[float]] = {}  # agent -> connection times, in order
    seen: set[str] = set()
    for m in marks:
        if m.kind == JOIN:
            joins.setdefault(m.caller, m.at)
        elif m.kind == CONNECT:
            connects.setdefault(m.agent, []).append(m.at)
            if m.caller not in seen:  # a caller is connected once (a second bridge: not new)
                seen.add(m.caller)
                out.connected += 1
                if m.caller in joins:
                    out.waits_ms.append((m.at - joins[m.caller]) * 1000)
            exits[m.caller] = min(exits.get(m.caller, m.at), m.at)
        elif m.kind == GONE:
            exits[m.caller] = min(exits.get(m.caller, m.at), m.at)
    out.joined = len(joins)
    join_times = sorted(joins.values())
    exit_times = sorted(t for c, t in exits.items() if c in joins)
    for m in marks:
        if m.kind != FREE:
            continue
        times = connects.get(m.agent, [])
        i = bisect.bisect_right(times, m.at)
        if i:
            out.talks_ms.append((m.at - times[i - 1]) * 1000)
        if m.at > until:
            continue
        waiting = bisect.bisect_right(join_times, m.at) - bisect.bisect_right(exit_times, m.at)
        if waiting <= 0:
            out.idle_frees += 1
            continue
        if i == len(times):
            out.missed += 1
        else:
            out.handoffs_ms.append((times[i] - m.at) * 1000)
    return out


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p90: float
    p99: float
    max: float


def summarize(values: Sequence[float]) -> Summary | None:
    """p50/p90/p99 (linear between ranks) and the maximum; None for no values."""
    if not values:
        return None
    return Summary(len(values), percentile(values, 50), percentile(values, 90),
                   percentile(values, 99), max(values))


def phase_plan(phases: int) -> list[str]:
    """The sides in ABBA order: ours, theirs, theirs, ours, ours, theirs..."""
    if phases < 2 or phases % 2:
        raise ConfigError("--phases: an even number, at least 2 (ABBA: 4)")
    return [SIDES[0] if i % 4 in (0, 3) else SIDES[1] for i in range(phases)]


@dataclass
class Phase:
    side: str
    index: int
    placed: int = 0
    refused: int = 0               # originates Asterisk refused (the caller never existed)
    reaped: int = 0                # callers still on the line after their agent hung up
    errors: list[str] = field(default_factory=list)   # the first refusals' reasons
    analysis: Analysis = field(default_factory=Analysis)

    @property
    def lost(self) -> int:
        """Callers who never got an agent (refused ones included)."""
        return max(0, self.placed - self.analysis.connected)


@dataclass
class SideTotals:
    phases: int = 0
    placed: int = 0
    connected: int = 0
    lost: int = 0
    refused: int = 0
    reaped: int = 0
    window_s: float = 0.0
    idle_frees: int = 0
    missed: int = 0
    handoffs_ms: list[float] = field(default_factory=list)
    waits_ms: list[float] = field(default_factory=list)
    talks_ms: list[float] = field(default_factory=list)

    @property
    def handoffs_per_min(self) -> float:
        return len(self.handoffs_ms) * 60 / self.window_s if self.window_s else 0.0


def totals(phases: Iterable[Phase], side: str) -> SideTotals:
    """One side's phases pooled (the handoffs and waits of all of them together)."""
    t = SideTotals()
    for p in phases:
        if p.side != side:
            continue
        a = p.analysis
        t.phases += 1
        t.placed += p.placed
        t.connected += a.connected
        t.lost += p.lost
        t.refused += p.refused
        t.reaped += p.reaped
        t.window_s += a.window_s
        t.idle_frees += a.idle_frees
        t.missed += a.missed
        t.handoffs_ms += a.handoffs_ms
        t.waits_ms += a.waits_ms
        t.talks_ms += a.talks_ms
    return t


@dataclass
class AcdLoadResult:
    when: datetime
    machine: Machine
    load_average: str
    agents: int
    backlog: int
    phase_s: float
    phases: list[Phase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs <= 0:
        return "n/a"
    ratio = ours / theirs
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def _stat(s: Summary | None, name: str) -> float | None:
    return None if s is None else float(getattr(s, name))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _mean_s(values: Sequence[float]) -> str:
    return f"{sum(values) / len(values) / 1000:.2f}" if values else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


@dataclass(frozen=True)
class Compared:
    """One row of the side-by-side table: a figure of each side, and which way is better."""

    label: str
    ours: float | None
    theirs: float | None
    lower_is_better: bool = True

    @property
    def ours_worse(self) -> bool:
        if self.ours is None or self.theirs is None:
            return False
        return self.ours > self.theirs if self.lower_is_better else self.ours < self.theirs


def compare(ours: SideTotals, theirs: SideTotals) -> list[Compared]:
    """The figures compared: handoff percentiles, handoffs per minute, callers' waits, losses."""
    ho, ht = summarize(ours.handoffs_ms), summarize(theirs.handoffs_ms)
    wo, wt = summarize(ours.waits_ms), summarize(theirs.waits_ms)

    rows = [Compared(f"handoff {n} ms", _stat(ho, n), _stat(ht, n))
            for n in ("p50", "p90", "p99", "max")]
    rows.append(Compared("handoffs per minute", ours.handoffs_per_min, theirs.handoffs_per_min,
                         lower_is_better=False))
    rows.append(Compared("caller wait mean ms", _mean(ours.waits_ms), _mean(theirs.waits_ms)))
    rows += [Compared(f"caller wait {n} ms", _stat(wo, n), _stat(wt, n))
             for n in ("p50", "p90", "max")]
    rows.append(Compared("callers lost", float(ours.lost), float(theirs.lost)))
    return rows


def verdict(rows: Sequence[Compared]) -> str:
    """An honest sentence: the headline handoff, and every figure where ours is worse."""
    head = next((r for r in rows if r.label == "handoff p50 ms"), None)
    if head is None or head.ours is None or head.theirs is None:
        return "No comparison: a side measured no handoff."
    text = (f"Handoff p50: ours {_ms(head.ours)} ms, app_queue {_ms(head.theirs)} ms "
            f"(ours / app_queue {_ratio(head.ours, head.theirs)}).")
    worse = [r.label for r in rows if r.ours_worse]
    if not worse:
        return text + " Ours is behind app_queue on no figure compared."
    return text + (f" **Ours is behind app_queue on: {', '.join(worse)}** (✗ in the table).")


def render_section(result: AcdLoadResult) -> str:
    """The markdown section for docs/benchmarks.md (heading included)."""
    m = result.machine
    order = ", ".join(SIDE_NAMES[p.side] for p in result.phases) or "none"
    lines = [
        HEADING, "",
        f"Measured {result.when:%Y-%m-%d %H:%M} UTC by `callcenter bench acd-load` on {m.nproc} "
        f"CPU ({m.cpu_model}), Python {m.python}, {m.asterisk}; load average before the run "
        f"{result.load_average}. Each side: {result.agents} simulated agents "
        f"(`Local/<n>@{AGENT_CONTEXT}`: answer at once, talk {TALK_S[0]}-{TALK_S[1]} s, hang "
        f"up); a phase opens with one caller per agent plus {result.backlog}, then each caller "
        f"connected is replaced while fewer than {result.backlog} wait, for "
        f"{result.phase_s:g} s; then the backlog is served and the calls end. Phases: {order}.",
        "",
        "*Handoff*: from the agent phone's hang-up (`Hangup` of its `;2` half) to that agent's "
        "next `BridgeEnter` together with a waiting caller, counted only when a caller was "
        "waiting at the hang-up; both on Asterisk's event timestamps. *Wait*: caller parked "
        "(ours: `[queue-hold]`'s `CallCenterLegParked`; app_queue: `QueueCallerJoin`) to "
        "connected. *Lost*: placed but never connected to an agent.", "",
    ]
    ours, theirs = totals(result.phases, "ours"), totals(result.phases, "theirs")
    rows = compare(ours, theirs)
    lines += ["| | ours (engine ACD) | app_queue | ours / app_queue |", "|---|---:|---:|---:|",
              f"| handoffs measured | {len(ours.handoffs_ms)} | {len(theirs.handoffs_ms)} | |"]
    for r in rows:
        if r.label == "callers lost":
            continue  # in the placed / connected / lost row
        shown = (f"{r.ours:.0f}", f"{r.theirs:.0f}") if not r.lower_is_better \
            and r.ours is not None and r.theirs is not None else (_ms(r.ours), _ms(r.theirs))
        lines.append(f"| {r.label}{' ✗' if r.ours_worse else ''} | {shown[0]} | {shown[1]} | "
                     f"{_ratio(r.ours, r.theirs)} |")
    lines += [
        f"| callers placed / connected / lost | {ours.placed} / {ours.connected} / {ours.lost} "
        f"| {theirs.placed} / {theirs.connected} / {theirs.lost} | |",
        f"| agents freed with nobody waiting / never given the next caller | "
        f"{ours.idle_frees} / {ours.missed} | {theirs.idle_frees} / {theirs.missed} | |",
        f"| agent talk, mean s (the same simulated agents) | {_mean_s(ours.talks_ms)} | "
        f"{_mean_s(theirs.talks_ms)} | |", ""]
    lines += ["Per phase:", "",
              "| # | side | s | placed | connected | lost | handoffs | p50 ms | p99 ms | "
              "max ms | per minute |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in result.phases:
        pa, ps = p.analysis, summarize(p.analysis.handoffs_ms)
        per_min = len(pa.handoffs_ms) * 60 / pa.window_s if pa.window_s else 0.0
        lines.append(
            f"| {p.index + 1} | {SIDE_NAMES[p.side]} | {pa.window_s:.0f} | {p.placed} | "
            f"{pa.connected} | {p.lost} | {len(pa.handoffs_ms)} | {_ms(_stat(ps, 'p50'))} | "
            f"{_ms(_stat(ps, 'p99'))} | {_ms(_stat(ps, 'max'))} | {per_min:.0f} |")
    lines += ["", verdict(rows), "",
              "A handoff holds everything between the hang-up and the new bridge: for ours, "
              "Asterisk's events reaching the engine, the ACD's decision, the AMI `Originate` "
              "of the agent's phone and `[acd-agent]`'s `Bridge()`; for app_queue, its once-a-"
              "second re-check of waiting callers, the member's device state and its own dial. "
              "The engine, the simulated callers and the measuring connection share one Python "
              "process; Asterisk and it share the machine's CPUs.", "",
              "Callers' waits: both sides keep the same backlog, so the mean wait is the backlog "
              "over the rate of connections (Little's law) and follows the handoffs per minute. "
              "app_queue's waits bunch just above its 1 s re-check (a caller who joins while "
              "every member is busy is looked at again a second later); ours spread around their "
              "mean with the "
              "agents' random talk times, so a tail percentile of ours can lie above "
              "app_queue's while the mean is lower."]
    if ours.refused or theirs.refused:
        why = sorted({e for p in result.phases for e in p.errors})
        lines += ["", f"Originates refused by Asterisk (counted lost): ours {ours.refused}, "
                  f"app_queue {theirs.refused}" + (f" ({'; '.join(why)})" if why else "") + "."]
    if ours.reaped or theirs.reaped:
        lines += ["", f"Callers still on the line {REAP_AFTER_S:g} s after their agent hung up "
                  f"(hung up by the benchmark): ours {ours.reaped}, app_queue {theirs.reaped}."]
    if result.notes:
        lines += ["", "Notes: " + "; ".join(result.notes) + "."]
    lines.append("")
    return "\n".join(lines)


# -- running --------------------------------------------------------------------------------------


class _Recorder(AmiClient):
    """The benchmark's own AMI connection: it originates the callers and keeps the raw headers
    of the events about them and the agents, Asterisk's ``Timestamp`` included (the typed
    events the engine gets leave it out)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.ami, settings.ami_secret(), on_headers=self._keep)
        self.events: list[dict[str, str]] = []
        self.listeners: list[Callable[[dict[str, str]], None]] = []

    def _keep(self, headers: dict[str, str]) -> None:
        if not relevant(headers):
            return
        headers.setdefault("Timestamp", f"{time.time():.6f}")  # (timestampevents off)
        self.events.append(headers)
        for listener in list(self.listeners):
            listener(headers)


class _Runner:
    def __init__(self, engine: Engine, rec: _Recorder, agents: int, backlog: int,
                 phase_s: float) -> None:
        assert engine.acd is not None
        self.acd = engine.acd
        self.queue = engine.settings.acd.queues[0].name
        self.rec = rec
        self.agents, self.backlog, self.phase_s = agents, backlog, phase_s
        self.run_id = secrets.token_hex(3)
        self.side = "ours"
        self.phase: Phase = Phase("ours", 0)
        self.seq = 0
        self.arriving = False
        self.waiting: set[str] = set()    # placed, not yet connected or gone
        self.live: set[str] = set()       # placed, not yet gone
        self.queued: set[str] = set()     # handed to our ACD
        self.talking: dict[str, str] = {}  # agent extension -> the caller it is bridged with
        self._bridges: dict[str, dict[str, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        rec.listeners.append(self.on_event)

    @staticmethod
    def seat_ids(agents: int) -> list[str]:
        return [f"L{n:03d}" for n in range(1, agents + 1)]

    def phone(self, side: str, n: int) -> str:
        return f"Local/{AGENT_BASE[side] + n}@{AGENT_CONTEXT}"

    # -- live bookkeeping (what keeps the backlog and ends the phase) -------------------------

    def on_event(self, h: Mapping[str, str]) -> None:
        name, uid = h.get("Event", ""), h.get("Uniqueid", "")
        caller = caller_of(uid)
        agent = agent_of(h.get("Channel", ""))
        if name == "UserEvent" and caller in self.live and self.side == "ours" \
                and h.get("UserEvent") == "CallCenterLegParked" and h.get("Where") == "queue" \
                and caller not in self.queued:
            assert caller is not None
            self.queued.add(caller)
            self.acd.enqueue(caller, self.queue, h.get("Channel", ""), uid, {})
        elif name == "BridgeEnter" and (caller is not None or agent is not None):
            members = self._bridges.setdefault(h.get("BridgeUniqueid", ""), {})
            if caller is not None:
                members["caller"] = caller
                self._left_waiting(caller)
            elif agent is not None:
                members["agent"] = agent[0]
            if "agent" in members and "caller" in members:
                self.talking[members["agent"]] = members["caller"]
        elif name == "BridgeLeave":
            self._bridges.pop(h.get("BridgeUniqueid", ""), None)
        elif name == "Hangup":
            if caller is not None:
                self.live.discard(caller)
                self._left_waiting(caller)
            elif agent is not None and agent[1] == "2":
                partner = self.talking.pop(agent[0], None)
                if partner is not None:
                    asyncio.get_running_loop().call_later(REAP_AFTER_S, self._reap, partner)

    def _left_waiting(self, call_id: str) -> None:
        if call_id in self.waiting:
            self.waiting.discard(call_id)
            if self.arriving and len(self.waiting) < self.backlog:
                self._place()

    def _reap(self, call_id: str) -> None:
        if call_id in self.live:
            self.phase.reaped += 1
            self._spawn(self._hangup(call_id))

    async def _hangup(self, channel: str) -> None:
        with contextlib.suppress(CallCenterError):
            await self.rec.action("Hangup", Channel=channel)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- callers ---------------------------------------------------------------------------

    def _place(self) -> None:
        self.seq += 1
        # Fixed width: no caller's id may begin another's (Asterisk 22 refused an Originate
        # whose ChannelId was the start of a live channel's uniqueid: "already in use").
        call_id = f"{CALLER_PREFIX}{self.run_id}-{self.phase.index:02d}-{self.seq:06d}"
        self.waiting.add(call_id)
        self.live.add(call_id)
        self.phase.placed += 1
        self._spawn(self._originate(call_id))

    async def _originate(self, call_id: str) -> None:
        exten, context = CALLER_DEST[self.side]
        try:
            await self.rec.originate(
                wait_s=30, Channel=f"Local/{exten}@{context}", Context="caller-sim", Exten="s",
                Priority="1", ChannelId=call_id, OtherChannelId=f"{call_id}-b",
                Variable=["CALLER_WAIT=0", f"CALLER_HOLD={CALLER_HOLD_S}"], Timeout="10000")
        except CallCenterError as exc:
            self.phase.refused += 1
            if len(self.phase.errors) < 3:
                self.phase.errors.append(str(exc))
            self.live.discard(call_id)
            if self.phase.refused >= MAX_FAILED:
                self.arriving = False
            self._left_waiting(call_id)

    # -- a phase ---------------------------------------------------------------------------

    async def _until(self, done: Callable[[], bool], within_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not done() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # a benchmark, not a test: polling is fine here
        return done()

    async def _seats(self, state: str) -> None:
        for agent_id in self.seat_ids(self.agents):
            if state == "ready":
                self.acd.set_state(agent_id, "not_ready", "break", by="system")
            self.acd.set_state(agent_id, state, "break" if state != "ready" else "",
                               by="system")

    async def _members(self, add: bool) -> None:
        for n in range(1, self.agents + 1):
            iface = self.phone("theirs", n)
            with contextlib.suppress(CallCenterError):
                if add:
                    await self.rec.action("QueueAdd", Queue=APP_QUEUE, Interface=iface,
                                          MemberName=f"M{n:03d}", Paused="false")
                else:
                    await self.rec.action("QueueRemove", Queue=APP_QUEUE, Interface=iface)

    async def run_phase(self, side: str, index: int) -> Phase:
        self.side, self.phase = side, Phase(side, index)
        self.waiting.clear()
        self.live.clear()
        self.talking.clear()
        self._bridges.clear()
        if side == "ours":
            await self._seats("ready")
        else:
            await self._members(add=True)
        first = len(self.rec.events)
        start = time.time()
        self.arriving = True
        for _ in range(self.agents + self.backlog):
            self._place()
        await asyncio.sleep(self.phase_s)
        self.arriving = False
        until = time.time()
        await self._until(lambda: not self.waiting, DRAIN_S)
        await self._until(lambda: not self.live, END_S)
        for call_id in list(self.live):  # never got an agent (or stuck): lost
            await self._hangup(call_id)
        await self._until(lambda: not self.live, 10)
        await self._until(lambda: not self._tasks, 10)
        if side == "ours":
            await self._until(lambda: all(rt.call is None for rt in self.acd.seats.values()), 10)
            await self._seats("not_ready")
        else:
            await self._members(add=False)
        await asyncio.sleep(1.0)  # the last hang-ups' events
        events = self.rec.events[first:]
        self.phase.analysis = analyse(marks_from_events(events), start, until)
        return self.phase


async def run_acd_load_bench(settings: Settings, agents: int, backlog: int, phase_s: float,
                             phases: int, output: str) -> int:
    """Run the phases, write the report section to ``output``; 1 if a side measured no
    handoff or lost callers."""
    plan = phase_plan(phases)
    if not 1 <= agents <= 999:
        raise ConfigError("--agents: 1 to 999 simulated agents per side")
    if backlog < 1:
        raise ConfigError("--backlog: at least 1 waiting caller")
    if phase_s <= 0:
        raise ConfigError("--phase-s must be above 0")
    if await asyncio.to_thread(lambda: Pbx(settings).pid()) is None \
            and settings.pbx.mode == "sandbox":
        raise PbxError("Asterisk is not running; start it with 'callcenter pbx up'")
    machine = await asyncio.to_thread(machine_info, settings, running_loop_name())
    result = AcdLoadResult(datetime.now(UTC), machine,
                           " ".join(f"{x:.2f}" for x in os.getloadavg()), agents, backlog,
                           phase_s)
    first = settings.acd.queues[0]
    with tempfile.TemporaryDirectory(prefix="bench-acd-load-") as tmp:
        bench = settings.model_copy(update={
            "db_path": Path(tmp) / "callcenter.db", "backoffice_path": Path(tmp) / "bo.db",
            "console": settings.console.model_copy(update={"enabled": False}),
            "channels": settings.channels.model_copy(update={"enabled": False}),
            "acd": settings.acd.model_copy(update={
                "wrap_up_s": 0.0,
                "sim_phone_contexts": [*settings.acd.sim_phone_contexts, AGENT_CONTEXT],
                "queues": [first.model_copy(update={
                    "announce_every_s": 0.0, "hours": None, "overflow_after_s": 0.0,
                    "max_wait_s": 0.0, "seat_choice": "longest_idle"})]})})
        db = await open_db(bench.database)
        try:
            for n, agent_id in enumerate(_Runner.seat_ids(agents), start=1):
                phone = f"Local/{AGENT_BASE['ours'] + n}@{AGENT_CONTEXT}"
                skills = {first.skill: 5} if first.skill else {}
                await save_agent(db, AgentRecord(agent_id, f"bench {n}", "agent", phone, skills),
                                 SecretStr(f"bench-only-{n}"),
                                 sim_contexts=bench.acd.sim_phone_contexts)
        finally:
            await db.close()
        engine = Engine(bench)
        try:
            await engine.start()
        except OSError as exc:
            raise ConfigError(f"cannot start the engine ({exc}): is the FastAGI port taken (a"
                              " 'callcenter run' or a test session)?") from exc
        rec = _Recorder(bench)
        try:
            await rec.start()
            runner = _Runner(engine, rec, agents, backlog, phase_s)
            for index, side in enumerate(plan):
                phase = await runner.run_phase(side, index)
                result.phases.append(phase)
                s = summarize(phase.analysis.handoffs_ms)
                print(f"phase {index + 1} {SIDE_NAMES[side]}: {phase.placed} placed, "
                      f"{phase.analysis.connected} connected, {phase.lost} lost, "
                      f"{len(phase.analysis.handoffs_ms)} handoffs"
                      + (f", p50 {s.p50:.1f} ms, p99 {s.p99:.1f} ms" if s else ""))
        finally:
            await rec.close()
            await engine.stop()
    path = Path(output)
    await asyncio.to_thread(write_section, path, TITLE, render_section(result))
    print(f"report written to {path}")
    ours, theirs = totals(result.phases, "ours"), totals(result.phases, "theirs")
    ok = ours.handoffs_ms and theirs.handoffs_ms and not ours.lost and not theirs.lost
    return 0 if ok else 1
