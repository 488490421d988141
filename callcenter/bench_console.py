"""``callcenter bench console``: 1000 console clients watching the wallboard while calls run.

Issue 12's goal: with 1000 consoles open while calls run, a wallboard change reaches every
console within 100 ms (p99), and the IVR's timings stay within 1.1x of a run without consoles.

The engine runs in this process with its console listening (on a free port), on a throw-away
database holding the benchmark's accounts: one supervisor (``bench-sup``), the seat the
benchmark moves (``bench-mark``) and ``--seats`` more seats so the board has a realistic size.
The clients run in ``--procs`` separate processes (``bench_console_clients.py``: the websockets
library, no share of the engine's event loop), all logged in as the one supervisor (the protocol
allows several sessions of one login, each gets every event).

Each phase is ``bench load``'s SIPp step on the FastAGI flow (``--rate`` calls per second for
``--step-s`` seconds, then until the calls are gone), while the benchmark moves the mark seat
every ``--change-s`` seconds (between two not-ready reasons, so nothing is routed). Phases run
ABBA: without clients, with, with, without (``--phases``: repeated); the clients log in once
for each pair of phases with them.

Wallboard latency: each move's instant is stamped here (``time.monotonic()``); the move gives
the mark seat a new ``since``, which every board after it carries; each client stamps when the
first board with a given ``since`` arrives (CLOCK_MONOTONIC is one clock for every process on
the machine). A move's latency at a client is the first board arriving there that shows it or a
later move (a later board replaces the one before). The push's own instant is stamped too,
through a tap on the console's push (``_PushTap``), which splits the latency into the wait for
the wallboard's coalescing (at most one push per ``BOARD_INTERVAL_S``) and the fan-out to the
sockets.

Only the pure pieces (matching, percentiles, the plan, rendering) are unit-tested; the numbers
are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from callcenter.bench_console_clients import raise_nofile
from callcenter.bench_ivr import Machine, asterisk_ticks, machine_info, percentile
from callcenter.bench_load import Probe, one_step, sipp_and_asterisk, start_probed_engine
from callcenter.benchdoc import write_section
from callcenter.config import Settings
from callcenter.cpu_affinity import available, format_cpus, parse_cpus, pin, split
from callcenter.engine import Engine
from callcenter.errors import ConfigError, TelephonyError
from callcenter.event_loop import running_loop_name
from callcenter.seats.backend import BOARD_INTERVAL_S
from callcenter.seats.console_api import ConsolePush
from callcenter.seats.console_server import FAN_OUT_CHUNK
from callcenter.seats.protocol import Event, Role
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.sipcall import dtmf_pcap

SUPERVISOR = "bench-sup"
MARK = "bench-mark"
MARK_PHONE = "Local/5001@agent-answer"
#: the mark seat goes back and forth between these (a reason change is a move: a new ``since``)
MARK_REASONS = ("break", "meal")
GOAL_P99_MS = 100.0
GOAL_RATIO = 1.1
SETTLE_S = 1.0           # after the last move: the last boards arrive
#: a move pushed within this long was not held by the wallboard's coalescing
NOT_HELD_MS = 5.0
TITLE = "Console: wallboards to many clients while calls run"
HEADING = f"## {TITLE}"


# -- pure pieces ----------------------------------------------------------------------------------


def phase_plan(abba: bool, phases: int = 0) -> list[bool]:
    """Whether each phase has the clients: ABBA (without, with, with, without) or AB, repeated
    to ``phases`` (a multiple of 4, or of 2 for AB; 0: once)."""
    unit = [False, True, True, False] if abba else [False, True]
    if phases % len(unit) or phases < 0:
        raise ConfigError(f"--phases: {phases} is not a positive multiple of {len(unit)}"
                          f" ({'ABBA' if abba else 'AB'} order)")
    return unit * max(phases // len(unit), 1)


def marker_key(marker: float) -> float:
    """A board's marker (a ``since``, through JSON) as a dictionary key."""
    return round(marker, 6)


@dataclass
class Matched:
    """One client's boards against the moves: per move covered, its latency (ms)."""

    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0          # moves no board showed at this client


def match_moves(moves: Sequence[tuple[float, float]],
                receipts: Sequence[tuple[float, float]]) -> Matched:
    """``moves``: (marker, monotonic instant) in the order they were made; ``receipts``: one
    client's (monotonic instant, marker) of the first arrival of each board, in arrival order.
    Each move is covered by the first board that shows it or a later move; boards with a marker
    that is no move (before the first) are skipped."""
    index = {marker_key(m): i for i, (m, _) in enumerate(moves)}
    out = Matched()
    covered = 0
    for at, marker in receipts:
        i = index.get(marker_key(marker))
        if i is None or i < covered:
            continue
        for k in range(covered, i + 1):
            out.latencies_ms.append(max(0.0, (at - moves[k][1]) * 1000))
        covered = i + 1
    out.missed = len(moves) - covered
    return out


def push_latencies(pushes: Mapping[float, float],
                   receipts: Sequence[tuple[float, float]]) -> list[float]:
    """Push to arrival (ms) for each board a client got: ``pushes`` maps a marker (``marker_key``)
    to the instant its first board was handed to the console's push."""
    out = []
    for at, marker in receipts:
        pushed = pushes.get(marker_key(marker))
        if pushed is not None:
            out.append(max(0.0, (at - pushed) * 1000))
    return out


def coalescing_waits(moves: Sequence[tuple[float, float]],
                     pushes: Sequence[tuple[float, float]]) -> list[float]:
    """Move to push (ms): for each move, the first push (marker, instant) that shows it or a
    later move. The wallboard is pushed at most every ``BOARD_INTERVAL_S``, so a move may wait."""
    return match_moves(moves, [(at, m) for m, at in pushes]).latencies_ms


def _p(values: Sequence[float], q: float, fmt: str = ".1f") -> str:
    return format(percentile(values, q), fmt) if values else "-"


def _max(values: Sequence[float]) -> str:
    return f"{max(values):.1f}" if values else "-"


def ratio(with_clients: float | None, without: float | None) -> float | None:
    if with_clients is None or without is None or without <= 0:
        return None
    return with_clients / without


@dataclass
class Phase:
    """One SIPp step, with or without the clients."""

    clients: bool
    placed: int = 0
    ok: int = 0
    moves: int = 0
    pushes: int = 0
    engine_cpu_s: float = 0.0
    asterisk_cpu_s: float = 0.0
    #: the fan-out relay process (``console.fanout = process``), else 0
    relay_cpu_s: float = 0.0
    wall_s: float = 0.0
    #: share of CPU time busy (all processes): the machine's, or the system's CPUs when split
    machine_busy: float = 0.0
    setups_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    round_trips_ms: list[float] = field(default_factory=list)


def busy_share(before: Sequence[int], after: Sequence[int]) -> float:
    """The busy share of CPU time between two ``/proc/stat`` ``cpu`` lines' counters (user,
    nice, system, idle, iowait, irq, softirq, steal): all but idle and iowait."""
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8])
    idle = sum(delta[3:5])
    return (total - idle) / total if total > 0 else 0.0


def cpu_counters(stat: str, cpus: frozenset[int] | None = None) -> list[int]:
    """The first eight counters of ``/proc/stat``'s ``cpu`` line, or summed over the lines of
    ``cpus`` (``cpu0``, ``cpu1``, ...)."""
    total = [0] * 8
    for line in stat.splitlines():
        name, *values = line.split()
        if name == "cpu" if cpus is None else (
                name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            total = [a + int(b) for a, b in zip(total, values[:8], strict=False)]
    return total


def _cpu_counters(cpus: frozenset[int] | None) -> list[int]:
    with open("/proc/stat", encoding="ascii") as f:
        return cpu_counters(f.read(), cpus)


def cpu_split(choice: str, have: frozenset[int]) -> tuple[frozenset[int], frozenset[int]] | None:
    """``--consoles-cpus``: (the system's CPUs, the consoles' CPUs), or None (no split)."""
    if choice == "none":
        return None
    if choice == "auto":
        return split(have) if len(have) >= 2 else None
    try:
        consoles = parse_cpus(choice)
    except ConfigError:
        raise ConfigError(f"--consoles-cpus: {choice!r} is neither auto, none nor a CPU list"
                          " (1, 2-3)") from None
    if not consoles <= have:
        raise ConfigError(f"--consoles-cpus: CPU {format_cpus(consoles - have)} is not"
                          f" available here (available: {format_cpus(have)})")
    if not have - consoles:
        raise ConfigError("--consoles-cpus: leave at least one CPU to Asterisk and the engine")
    return have - consoles, consoles


@dataclass
class Wallboard:
    """What the clients saw over the phases with clients."""

    clients: int = 0
    logged_in: int = 0           # logins, over every round of them
    rounds: int = 0              # the clients logged in this many times (once per ABBA)
    client_s: float = 0.0        # seconds each logged-in client spent in the phases, summed
    disconnected: int = 0
    procs: int = 0
    board_bytes: int = 0
    moves: int = 0
    pushes: int = 0
    messages: int = 0            # every frame the clients got, login reply included
    boards: int = 0              # distinct boards the clients got in those phases
    missed: int = 0
    latencies_ms: list[float] = field(default_factory=list)      # move -> arrival
    push_ms: list[float] = field(default_factory=list)           # push -> arrival
    coalescing_ms: list[float] = field(default_factory=list)     # move -> push
    not_held_ms: list[float] = field(default_factory=list)  # move -> arrival, pushed at once
    clients_cpu_s: float = 0.0
    clients_lag_ms: list[float] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)


@dataclass
class ConsoleResult:
    when: datetime
    machine: Machine
    load_average: str
    rate: float
    step_s: float
    change_s: float
    seats: int
    nice: int = 0
    phases: list[Phase] = field(default_factory=list)
    board: Wallboard = field(default_factory=Wallboard)
    #: ``console.fanout``: ``process`` (a relay process writes the boards) or ``inline``
    fanout: str = "process"
    #: the CPUs of Asterisk, the engine and SIPp, and those of the relay and the clients (as
    #: the kernel lists them); empty: not split
    system_cpus: str = ""
    consoles_cpus: str = ""


def _pooled(phases: Sequence[Phase], clients: bool) -> Phase:
    out = Phase(clients)
    for ph in phases:
        if ph.clients is not clients:
            continue
        out.placed += ph.placed
        out.ok += ph.ok
        out.engine_cpu_s += ph.engine_cpu_s
        out.asterisk_cpu_s += ph.asterisk_cpu_s
        out.relay_cpu_s += ph.relay_cpu_s
        out.setups_ms += ph.setups_ms
        out.lag_ms += ph.lag_ms
        out.round_trips_ms += ph.round_trips_ms
    return out


def _q(values: list[float], p: float) -> float | None:
    return percentile(values, p) if values else None


def _per_call(ph: Phase) -> float | None:
    return ph.engine_cpu_s / ph.placed * 1000 if ph.placed else None


#: the IVR's timings and the engine's CPU (per call), each read from a phase (or a pool)
METRICS: tuple[tuple[str, Callable[[Phase], float | None]], ...] = (
    ("setup p50 ms", lambda ph: _q(ph.setups_ms, 50)),
    ("setup p99 ms", lambda ph: _q(ph.setups_ms, 99)),
    ("FastAGI RTT p50 ms", lambda ph: _q(ph.round_trips_ms, 50)),
    ("FastAGI RTT p99 ms", lambda ph: _q(ph.round_trips_ms, 99)),
    ("engine loop lag p99 ms", lambda ph: _q(ph.lag_ms, 99)),
    ("engine CPU ms per call", _per_call),
)


def comparisons(phases: Sequence[Phase]) -> list[tuple[str, float | None, float | None]]:
    """(what, without clients, with clients) for the IVR's timings and the engine's CPU, the
    phases of each kind pooled. CPU is per call."""
    a, b = _pooled(phases, False), _pooled(phases, True)
    return [(what, read(a), read(b)) for what, read in METRICS]


#: phases of each kind from which the median of the phases' own figures is reported
MEDIAN_MIN_PHASES: Final = 3


def phase_medians(phases: Sequence[Phase]) -> dict[str, tuple[float, float] | None]:
    """Per metric, (without, with): the median of the phases' own figures of each kind. A
    pooled p99 is decided by the worst phase's tail; the median of the phases' p99s is not.
    None: fewer than ``MEDIAN_MIN_PHASES`` phases of a kind, or one without the figure."""
    out: dict[str, tuple[float, float] | None] = {}
    for what, read in METRICS:
        pair: list[float] = []
        for kind in (False, True):
            values = [read(ph) for ph in phases if ph.clients is kind]
            known = [v for v in values if v is not None]
            if len(known) < MEDIAN_MIN_PHASES or len(known) != len(values):
                break
            pair.append(statistics.median(known))
        out[what] = (pair[0], pair[1]) if len(pair) == 2 else None
    return out


def spreads(phases: Sequence[Phase]) -> dict[str, float | None]:
    """Per metric, how far apart phases of one kind are (the larger value over the smaller,
    the wider of the two kinds): what the run itself cannot resolve. None: fewer than two
    phases of each kind."""
    out: dict[str, float | None] = {}
    for what, read in METRICS:
        widest: float | None = None
        for kind in (False, True):
            values = [read(ph) for ph in phases if ph.clients is kind]
            known = [v for v in values if v is not None]
            if len(known) < 2 or len(known) != len(values):
                widest = None
                break
            r = 1.0 if max(known) == 0 else ratio(max(known), min(known))
            if r is None:   # one phase measured 0, the other not: no ratio to tell
                widest = None
                break
            widest = r if widest is None or r > widest else widest
        out[what] = widest
    return out


def frame_cost_us(phases: Sequence[Phase], boards: int, relay: bool = False) -> float | None:
    """The engine's (or with ``relay``, the relay's) CPU per board and client (µs): the phases
    with clients less those without (scaled to as many phases), over the boards the clients
    got."""
    with_, without = _pooled(phases, True), _pooled(phases, False)
    n_with = sum(1 for ph in phases if ph.clients)
    n_without = len(phases) - n_with
    if not boards or not n_with or not n_without:
        return None
    if relay:
        extra = with_.relay_cpu_s - without.relay_cpu_s * n_with / n_without
    else:
        extra = with_.engine_cpu_s - without.engine_cpu_s * n_with / n_without
    return extra / boards * 1e6


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fanout_words(mode: str) -> str:
    if mode == "process":
        return ("`process`, the boards go to a relay process (`callcenter/fanout/`), once, and "
                "it writes them to the clients' second sockets")
    return "`inline`, the engine writes every board to every client's socket itself"


def _niceness(nice: int) -> str:
    if not nice:
        return "as nice as the engine"
    return (f"nice {nice}: they yield the CPUs to the engine, Asterisk and SIPp, as consoles on "
            "other machines would")


def _split_words(result: ConsoleResult) -> str:
    if not result.system_cpus:
        return " Every process may run on every CPU."
    if result.fanout != "process":
        return (f" CPUs split (`--consoles-cpus`): Asterisk, the engine (which writes every "
                f"board itself) and SIPp on CPU {result.system_cpus}; the clients, standing "
                f"for the agents' PCs, on CPU {result.consoles_cpus}.")
    return (f" CPUs split (`--consoles-cpus`): Asterisk, the engine and SIPp on CPU "
            f"{result.system_cpus}; the relay (`console.fanout_cpus`) and the clients on CPU "
            f"{result.consoles_cpus}, standing for a CPU given to the relay and the agents' "
            "PCs. The system's timings are those of fewer CPUs than the machine has (compare "
            "with and without the clients, not with other runs), and the relay's CPU is not "
            "the system's: a site gets these figures by giving the relay a CPU of its own.")


def render_section(result: ConsoleResult) -> str:
    """The markdown section for docs/benchmarks.md (heading included)."""
    m, w = result.machine, result.board
    lines = [
        HEADING, "",
        f"Measured {result.when:%Y-%m-%d %H:%M} UTC by `callcenter bench console` on {m.nproc} "
        f"CPU ({m.cpu_model}), Python {m.python}, {m.asterisk}; load average before the run "
        f"{result.load_average}. {w.clients} websocket clients in {w.procs} processes of their "
        f"own ({_niceness(result.nice)}), all logged in as one supervisor, watch the "
        f"wallboard ({result.seats + 2} seats, "
        f"{w.board_bytes} bytes a board) while SIPp callers run the first flow over FastAGI at "
        f"{result.rate:g} calls/s for {result.step_s:g} s a phase; the benchmark moves one seat "
        f"every {result.change_s * 1000:.0f} ms in every phase. Phases without and with the "
        f"clients, in the order listed. Fan-out: {_fanout_words(result.fanout)}."
        f"{_split_words(result)}", "",
        "| phase | clients | calls | ok | setup p50/p99 ms | FastAGI RTT p50/p99 ms | "
        "loop lag p99 ms | engine CPU s | relay CPU s | Asterisk CPU s | "
        f"{f'CPU {result.system_cpus} busy' if result.system_cpus else 'machine busy'} | "
        "seat moves | boards pushed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, ph in enumerate(result.phases, 1):
        lines.append(
            f"| {n} | {w.clients if ph.clients else 0} | {ph.placed} | {ph.ok} | "
            f"{_p(ph.setups_ms, 50)} / {_p(ph.setups_ms, 99)} | "
            f"{_p(ph.round_trips_ms, 50, '.2f')} / {_p(ph.round_trips_ms, 99, '.2f')} | "
            f"{_p(ph.lag_ms, 99)} | {ph.engine_cpu_s:.2f} | {ph.relay_cpu_s:.2f} | "
            f"{ph.asterisk_cpu_s:.2f} | "
            f"{ph.machine_busy:.0%} | {ph.moves} | {ph.pushes} |")
    apart = spreads(result.phases)
    medians = phase_medians(result.phases)
    by_phase = any(v is not None for v in medians.values())
    pooled = "phases pooled, and the median of the phases" if by_phase else "phases pooled"
    lines += ["", f"With the clients against without ({pooled}; goal at most "
              f"{GOAL_RATIO:g}x):", "",
              "| | without | with | ratio | phases of one kind apart |"
              + (" median of the phases: without / with | ratio |" if by_phase else ""),
              "|---|---|---|---|---|" + ("---|---|" if by_phase else "")]

    def verdict(r: float | None) -> str:
        return "-" if r is None else f"{r:.2f}x" + (" ✓" if r <= GOAL_RATIO else " ✗")

    for what, without, with_ in comparisons(result.phases):
        spread = apart.get(what)
        row = (f"| {what} | {_num(without)} | {_num(with_)} | {verdict(ratio(with_, without))} | "
               f"{'-' if spread is None else f'{spread:.2f}x'} |")
        if by_phase:
            pair = medians.get(what)
            row += (" - | - |" if pair is None else
                    f" {_num(pair[0])} / {_num(pair[1])} | {verdict(ratio(pair[1], pair[0]))} |")
        lines.append(row)
    if any(v is not None for v in apart.values()):
        lines += ["", "*Phases of one kind apart*: the largest over the smallest value of the "
                  "phases without clients, or of those with them, whichever differ more: "
                  "how far apart identical phases of this run came out, so a ratio within it is "
                  "below what the run can tell. Setup times come in steps of 4 ms (SIPp's "
                  "clock), so at a few milliseconds one step is already 1.25x-2x."]
    per_client = w.messages / w.logged_in if w.logged_in else 0.0
    rate = w.boards / w.client_s if w.client_s else 0.0
    logins = (f"{w.logged_in} of {w.clients} logged in" if w.rounds <= 1 else
              f"{w.logged_in} logins of {w.clients * w.rounds} ({w.clients} clients, "
              f"{w.rounds} times)")
    met = bool(w.latencies_ms) and percentile(w.latencies_ms, 99) <= GOAL_P99_MS \
        and w.missed == 0 and w.disconnected == 0
    lines += [
        "", f"Wallboard, over the phases with clients ({w.moves} seat moves, {w.pushes} boards "
        f"pushed; goal p99 at most {GOAL_P99_MS:.0f} ms from the move):", "",
        "| | deliveries | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|",
        f"| move → client (the goal) | {len(w.latencies_ms)} | {_p(w.latencies_ms, 50)} | "
        f"{_p(w.latencies_ms, 99)} | {_max(w.latencies_ms)} |",
        f"| push → client (fan-out) | {len(w.push_ms)} | {_p(w.push_ms, 50)} | "
        f"{_p(w.push_ms, 99)} | {_max(w.push_ms)} |",
        f"| move → push (coalescing, per move) | {len(w.coalescing_ms)} | "
        f"{_p(w.coalescing_ms, 50)} | {_p(w.coalescing_ms, 99)} | {_max(w.coalescing_ms)} |",
        f"| move → client, moves pushed within {NOT_HELD_MS:g} ms (not held) | "
        f"{len(w.not_held_ms)} | {_p(w.not_held_ms, 50)} | {_p(w.not_held_ms, 99)} | "
        f"{_max(w.not_held_ms)} |",
        "",
        f"Clients: {logins}, {w.disconnected} disconnected "
        f"before the end, moves no board showed {w.missed}; {per_client:.0f} messages per "
        f"login in all, {rate:.1f} boards per client per second in the phases. The "
        f"clients' processes used {w.clients_cpu_s:.1f} s CPU "
        f"(their loop lag p99 {_p(w.clients_lag_ms, 99)} ms: an arrival is stamped when the "
        f"client's loop gets to it). Goal {'met' if met else 'not met'}.",
    ]
    if w.closes:
        lines += ["", "Disconnects: " + "; ".join(sorted(set(w.closes))[:5]) + "."]
    per_frame = frame_cost_us(result.phases, w.boards)
    per_relay = frame_cost_us(result.phases, w.boards, relay=True)
    if per_frame is not None and per_relay is not None and result.fanout == "process":
        lines += [
            "", "Where it goes: the engine writes each board once, to the fan-out relay's "
            "stdin; the relay, a process of its own, writes it to every client's socket: "
            f"{per_relay:.1f} µs of the relay's CPU per board and client here, and "
            f"{per_frame:.1f} µs of the engine's (the CPU of the phases with clients less that "
            "of the phases without, over the boards the clients got; the engine's share is the "
            "clients' logins and keepalives and the machine's busier CPUs, not the boards). "
            "Move → client is the relay's fan-out plus the wallboard's coalescing, which holds "
            f"a move up to {BOARD_INTERVAL_S * 1000:.0f} ms (`BOARD_INTERVAL_S`) when the "
            "board was pushed less than that before (the *not held* row: moves that found it "
            "idle)."]
    elif per_frame is not None:
        lines += [
            "", f"Where it goes: the engine writes every board to every socket itself, "
            f"{per_frame:.1f} µs of its CPU per board and client here (the engine CPU of the "
            "phases with clients less that of the phases without, over the boards the clients "
            "got; profiled, most of it is the socket write, `send()` on loopback, the rest "
            "websockets' framing and the session checks). The fan-out writes "
            f"{FAN_OUT_CHUNK} sockets per turn of the event loop, so a call waits about a "
            "millisecond behind it at most; the p99s keep that, the kernel's loopback work and "
            "the clients' wake-ups on the same CPUs. Move → client is the fan-out plus the "
            "wallboard's coalescing, which holds a move up to "
            f"{BOARD_INTERVAL_S * 1000:.0f} ms (`BOARD_INTERVAL_S`) when the board was pushed "
            "less than that before (the *not held* row: moves that found it idle)."]
    lines += [
        "", "A move's latency at a client: from the move (stamped in the engine's process) to "
        "the first board at that client that shows it or a later move. Push → client: from "
        "the board handed to the console's push to its arrival; move → push: the wallboard's "
        f"coalescing (one push per burst, at most every {BOARD_INTERVAL_S} s). *ok*: the flow "
        "completed with "
        "every key (as in `bench load`). CPU per call: the whole engine process (FastAGI, AMI, "
        "the console) over the calls placed. "
        + (f"CPU {result.system_cpus} busy: the share of those CPUs' time (`/proc/stat`) "
           "that any process used: Asterisk, the engine and SIPp run there."
           if result.system_cpus else
           "Machine busy: all CPUs, all processes (`/proc/stat`): SIPp, Asterisk, the engine "
           "and the clients share them."), ""]
    return "\n".join(lines)


# -- running --------------------------------------------------------------------------------------


class _PushTap:
    """The console's push with the instant of every wallboard noted (by the mark's ``since``)."""

    def __init__(self, inner: ConsolePush) -> None:
        self.inner = inner
        self.pushes: list[tuple[float, float]] = []   # (marker, monotonic)
        self.board_bytes = 0

    def to_agent(self, agent_id: str, event: Event) -> None:
        self.inner.to_agent(agent_id, event)

    def to_role(self, role: Role, event: Event) -> None:
        self.inner.to_role(role, event)

    def state_to_role(self, role: Role, event: Event) -> None:
        if event.event == "wallboard":
            at = time.monotonic()
            for seat in event.data.get("seats", ()):
                if seat.get("agent_id") == MARK:
                    self.pushes.append((float(seat["since"]), at))
                    break
        self.inner.state_to_role(role, event)

    def end_sessions(self, agent_id: str, reason: str) -> None:
        self.inner.end_sessions(agent_id, reason)


class _Mover:
    """Moves the mark seat every ``every_s`` while running; notes (since, monotonic)."""

    def __init__(self, engine: Engine, every_s: float) -> None:
        self.engine = engine
        self.every_s = every_s
        self.moves: list[tuple[float, float]] = []
        self._n = 0

    def move(self) -> None:
        acd = self.engine.acd
        assert acd is not None
        self._n += 1
        at = time.monotonic()
        rt = acd.set_state(MARK, "not_ready", MARK_REASONS[self._n % 2], by="bench")
        self.moves.append((rt.seat.since, at))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.every_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.move()


class _ClientProcs:
    """The client processes: started, logged in, stopped, their results read."""

    def __init__(self, folder: Path, url: str, origin: str, password: str, count: int,
                 procs: int, nice: int = 0, cpus: str = "") -> None:
        self.folder, self.url, self.origin, self.password = folder, url, origin, password
        self.nice = nice
        self.cpus = cpus
        self.counts = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
        self.procs: list[asyncio.subprocess.Process] = []
        self.outs = [folder / f"clients-{i}.json" for i in range(procs)]
        self.logged_in = 0

    async def start(self) -> None:
        for count, out in zip(self.counts, self.outs, strict=True):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcenter.bench_console_clients", "--url", self.url,
                "--origin", self.origin, "--agent", SUPERVISOR, "--count", str(count),
                "--mark", MARK, "--out", str(out), "--nice", str(self.nice),
                *(["--cpus", self.cpus] if self.cpus else []),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self.procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(self.password.encode() + b"\n")
            await proc.stdin.drain()
        for proc in self.procs:
            assert proc.stdout is not None
            line = (await proc.stdout.readline()).decode().split()
            if len(line) != 3 or line[0] != "ready":
                raise TelephonyError(f"a client process did not log in: {' '.join(line)!r}")
            self.logged_in += int(line[1])

    async def stop(self) -> list[dict[str, Any]]:
        results = []
        for proc in self.procs:
            if proc.stdin is not None and proc.returncode is None:
                with contextlib.suppress(ConnectionError):
                    proc.stdin.write(b"stop\n")
                    await proc.stdin.drain()
        for proc, out in zip(self.procs, self.outs, strict=True):
            try:
                async with asyncio.timeout(60):
                    await proc.wait()
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if proc.returncode != 0 or not out.exists():
                # its clients logged in and counted: a report without them would say too much
                self.procs = []
                raise TelephonyError(f"a client process ended without its results (exit"
                                     f" {proc.returncode}); the run is void")
            text = await asyncio.to_thread(out.read_text, encoding="utf-8")
            results.append(json.loads(text))
            out.unlink()   # a later round's process is not read in its place
        self.procs = []
        return results

    async def kill(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.procs = []


def _window(moves: list[tuple[float, float]], start: float, end: float
            ) -> list[tuple[float, float]]:
    return [(m, at) for m, at in moves if start <= at < end]


def _collect(board: Wallboard, results: list[dict[str, Any]],
             windows: list[tuple[float, float]], moves: list[tuple[float, float]],
             pushes: list[tuple[float, float]]) -> None:
    """The clients' receipts against the moves and pushes of the phases with clients (a
    phase's pushes: those up to ``SETTLE_S`` after its last move; its boards: the receipts of
    those pushes' markers)."""
    phases = []
    for a, b in windows:
        ms, ps = _window(moves, a, b), _window(pushes, a, b + SETTLE_S)
        first: dict[float, float] = {}
        for m, at in ps:
            first.setdefault(marker_key(m), at)
        waits = coalescing_waits(ms, ps)
        phases.append((ms, first, [k for k, w in enumerate(waits) if w < NOT_HELD_MS]))
        board.moves += len(ms)
        board.pushes += len(ps)
        board.coalescing_ms += waits
    for result in results:
        board.clients_cpu_s += float(result.get("cpu_s", 0.0))
        board.clients_lag_ms += [float(x) for x in result.get("lag_ms", [])]
        for client in result["clients"]:
            if not client["logged_in"]:
                board.closes.append(str(client.get("close", "")))
                continue
            if client["closed_at"] is not None:
                board.disconnected += 1
                board.closes.append(str(client.get("close", "")))
            board.messages += int(client["messages"])
            receipts = [(float(at), float(m)) for at, m in client["receipts"]]
            for ms, first, not_held in phases:
                inside = [(at, m) for at, m in receipts if marker_key(m) in first]
                matched = match_moves(ms, inside)
                board.latencies_ms += matched.latencies_ms
                # latencies are in the order of the moves, from the first one
                board.not_held_ms += [matched.latencies_ms[k] for k in not_held
                                      if k < len(matched.latencies_ms)]
                board.missed += matched.missed
                board.push_ms += push_latencies(first, inside)
                board.boards += len(inside)


async def _phase(engine: Engine, probe: Probe, mover: _Mover, tap: _PushTap, sipp: str,
                 folder: Path, pcap: Path, clients: bool, rate: float, step_s: float,
                 pid: int, cpus: frozenset[int] | None) -> tuple[Phase, tuple[float, float]]:
    moves0, pushes0 = len(mover.moves), len(tap.pushes)
    relay = engine.console.fanout if engine.console is not None else None
    relay_pid = relay.pid if relay is not None else None
    relay0 = asterisk_ticks(relay_pid) if relay_pid is not None else 0
    cpu0 = _cpu_counters(cpus)
    start = time.monotonic()
    moving = asyncio.create_task(mover.run(), name="bench-console-mover")
    try:
        step = await one_step(engine, probe, sipp, folder, pcap, "agi", rate, step_s, pid)
    finally:
        moving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await moving
    end = time.monotonic()
    busy = busy_share(cpu0, _cpu_counters(cpus))
    relay_cpu_s = 0.0
    if relay is not None and relay.pid == relay_pid and relay_pid is not None:
        relay_cpu_s = (asterisk_ticks(relay_pid) - relay0) / os.sysconf("SC_CLK_TCK")
    await asyncio.sleep(SETTLE_S)
    phase = Phase(clients, placed=step.placed, ok=step.ok, engine_cpu_s=step.engine_cpu_s,
                  asterisk_cpu_s=step.asterisk_cpu_s, wall_s=step.wall_s,
                  setups_ms=step.setups_ms, lag_ms=step.lag_ms,
                  round_trips_ms=step.round_trips_ms,
                  moves=len(mover.moves) - moves0, pushes=len(tap.pushes) - pushes0,
                  machine_busy=busy, relay_cpu_s=relay_cpu_s)
    return phase, (start, end)


def _pin_system(asterisk: int, cpus: frozenset[int]) -> set[int]:
    """Keep this process (the engine, and SIPp started from it) and Asterisk on ``cpus``;
    Asterisk's CPUs before, to give back."""
    try:
        before = os.sched_getaffinity(asterisk)
        pin(asterisk, cpus)
    except PermissionError:
        raise ConfigError(f"Asterisk (pid {asterisk}) belongs to another user: run the"
                          " benchmark as root, or with --consoles-cpus none") from None
    pin(os.getpid(), cpus)
    return before


async def _accounts(bench: Settings, seats: int, password: str) -> None:
    db = await open_db(bench.database)
    try:
        secret = SecretStr(password)
        await save_agent(db, AgentRecord(SUPERVISOR, "bench supervisor", "supervisor",
                                         MARK_PHONE), secret)
        await save_agent(db, AgentRecord(MARK, "bench mark", "agent", MARK_PHONE), secret)
        for n in range(seats):
            await save_agent(db, AgentRecord(f"bench-{n:04d}", f"bench agent {n}", "agent",
                                             MARK_PHONE, {"general": 5}), secret)
    finally:
        await db.close()


async def run_console_bench(settings: Settings, clients: int, procs: int, rate: float,
                            step_s: float, change_s: float, seats: int, abba: bool,
                            output: str, *, nice: int = 19, consoles_cpus: str = "auto",
                            phases: int = 0) -> int:
    """Run the phases (``phase_plan``), write the report section to ``output``; 1 if the goal
    was missed. The clients log in afresh for each run of phases with them."""
    plan = phase_plan(abba, phases)
    if clients < 1 or procs < 1 or procs > clients:
        raise ConfigError("--clients must be at least 1, --procs between 1 and --clients")
    if rate <= 0 or step_s <= 0 or change_s <= 0 or seats < 0:
        raise ConfigError("--rate, --step-s and --change-s must be above 0, --seats at least 0")
    cpus = cpu_split(consoles_cpus, available())
    sipp, pid = await sipp_and_asterisk(settings)
    raise_nofile(clients * 2 + 4096)
    machine = await asyncio.to_thread(machine_info, settings, running_loop_name())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result = ConsoleResult(datetime.now(UTC), machine, load, rate, step_s, change_s, seats,
                           nice, fanout=settings.console.fanout)
    if cpus is not None:
        result.system_cpus, result.consoles_cpus = format_cpus(cpus[0]), format_cpus(cpus[1])
    password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="callcenter-console-") as tmp:
        folder = Path(tmp)
        pcap = folder / "keys.pcap"
        pcap.write_bytes(dtmf_pcap("1234567#", gap_ms=250))
        bench = settings.model_copy(update={
            "db_path": folder / "bench.db", "backoffice_path": folder / "bo.db",
            "console": settings.console.model_copy(update={
                "enabled": True, "host": "127.0.0.1", "port": 0, "tls": False,
                "allowed_origins": [], "max_pending_events": 256,
                "fanout_cpus": result.consoles_cpus}),
            "channels": settings.channels.model_copy(update={"enabled": False})})
        await _accounts(bench, seats, password)
        probe = Probe()
        engine = await start_probed_engine(bench, probe)
        assert engine.ami is not None and engine.controller is not None
        assert engine.console is not None and engine.console_backend is not None
        backend = engine.console_backend
        assert backend.push is not None
        tap = _PushTap(backend.push)
        backend.push = tap
        engine.ami.add_handler(probe.on_event)
        engine.controller.note_listeners.append(probe.on_note)
        port = engine.console.port
        mover = _Mover(engine, change_s)
        mover.move()   # the mark seat logs in: boards carry it from now on
        result.board.board_bytes = len(Event(event="wallboard", data=backend.wallboard())
                                       .model_dump_json())
        result.board.clients, result.board.procs = clients, procs
        group = _ClientProcs(folder, f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}",
                             password, clients, procs, nice, result.consoles_cpus)
        watcher = asyncio.create_task(probe.watch(), name="bench-console-probe")
        #: per round of logins: the clients' results, and the windows of its phases
        rounds: list[tuple[list[dict[str, Any]], list[tuple[float, float]]]] = []
        asterisk_cpus = _pin_system(pid, cpus[0]) if cpus is not None else None
        try:
            logged_in = 0
            for n, with_clients in enumerate(plan):
                if with_clients and not group.procs:
                    t0, before = time.monotonic(), group.logged_in
                    await group.start()
                    logged_in = group.logged_in - before
                    result.board.logged_in = group.logged_in
                    result.board.rounds += 1
                    rounds.append(([], []))
                    print(f"{logged_in} of {clients} clients logged in "
                          f"({time.monotonic() - t0:.0f} s)")
                if not with_clients and group.procs:
                    rounds[-1][0].extend(await group.stop())
                phase, window = await _phase(engine, probe, mover, tap, sipp, folder, pcap,
                                             with_clients, rate, step_s, pid,
                                             cpus[0] if cpus is not None else None)
                result.phases.append(phase)
                if with_clients:
                    rounds[-1][1].append(window)
                    result.board.client_s += logged_in * (window[1] - window[0])
                print(f"phase {n + 1} ({'with' if with_clients else 'without'} clients): "
                      f"{phase.ok}/{phase.placed} ok, setup p99 {_p(phase.setups_ms, 99)} ms, "
                      f"RTT p99 {_p(phase.round_trips_ms, 99, '.2f')} ms, loop lag p99 "
                      f"{_p(phase.lag_ms, 99)} ms, engine CPU {phase.engine_cpu_s:.2f} s")
            if group.procs:
                rounds[-1][0].extend(await group.stop())
        finally:
            if asterisk_cpus is not None:   # first: whatever fails below, Asterisk is freed
                pin(pid, asterisk_cpus)
            await group.kill()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            backend.push = tap.inner
            await engine.stop()
        for results, windows in rounds:   # each client against the phases it was there for
            _collect(result.board, results, windows, mover.moves, tap.pushes)
    board = result.board
    if board.latencies_ms:
        print(f"wallboard move -> client: p50 {_p(board.latencies_ms, 50)} ms, p99 "
              f"{_p(board.latencies_ms, 99)} ms, max {_max(board.latencies_ms)} ms; push -> "
              f"client p99 {_p(board.push_ms, 99)} ms; {board.disconnected} disconnected")
    medians = phase_medians(result.phases)
    for what, without, with_ in comparisons(result.phases):
        r = ratio(with_, without)
        pair = medians.get(what)
        m = None if pair is None else ratio(pair[1], pair[0])
        print(f"{what}: {_num(without)} -> {_num(with_)} ({'-' if r is None else f'{r:.2f}x'}"
              f"{'' if m is None else f'; median of the phases {m:.2f}x'})")
    path = Path(output)
    await asyncio.to_thread(write_section, path, TITLE, render_section(result))
    print(f"report written to {path}")
    met = bool(board.latencies_ms) and percentile(board.latencies_ms, 99) <= GOAL_P99_MS \
        and board.disconnected == 0 and board.missed == 0
    return 0 if met else 1

