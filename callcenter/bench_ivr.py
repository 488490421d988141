"""``callcenter bench ivr``: the first flow over FastAGI against the same flow in plain dialplan.

Both flows run in one session against the same Asterisk, in ABBA order (AGI, native, native, AGI)
so that drift of the machine weighs on both alike. Prompts play real audio, so calls per second is
bounded by prompt length for both flows; the CPU figures and their ratios are the informative
numbers. Tests never assert any of this: the pure pieces (percentiles, ``/proc`` parsing,
rendering) are unit-tested, the numbers are only reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from callcenter import heap
from callcenter.benchdoc import write_section
from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.errors import CallCenterError, ConfigError, PbxError
from callcenter.event_loop import running_loop_name
from callcenter.store.calls import get_call
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller

DTMF = "1w2w3w#"
HOLD_S = 60  # the caller's patience; both flows hang up long before
END_GRACE_S = 30  # beyond HOLD_S, a call that has not ended counts as failed
IDLE_S = 3.0  # Asterisk's background CPU is sampled this long before the calls
CAUSE_NORMAL = 16  # both flows end with the dialplan's Hangup(): normal clearing

FLOWS = {"agi": ("9502", "hotline"), "native": ("9501", "hotline-native")}
FLOW_TITLES = {"agi": "AGI flow (9502)", "native": "native dialplan (9501)"}
# A command whose round trip is the network + res_agi alone: no audio, no caller, no media wait
# (the first flow sends one per call, after its readback: ``Channel.play``).
PURE_ROUND_TRIP = "CHANNEL STATUS"
ROUND_TRIP_NOTES = {
    PURE_ROUND_TRIP: "**the FastAGI round trip itself**",
    # main/channel.c __ast_answer(): after answering a ringing channel Asterisk waits up to
    # 500 ms for media to flow; the native Answer() waits the same way.
    "ANSWER": "includes Asterisk's wait (up to 500 ms) for media after answering",
    "STREAM FILE": "plays a prompt: audio-bound",
    "WAIT FOR DIGIT": "waits for the caller",
    "GET DATA": "plays a prompt and waits for the caller",
    "SAY DIGITS": "plays audio",
    "EXEC": "Playback of the readback and goodbye: audio-bound",
}


# -- results --------------------------------------------------------------------------------------


@dataclass
class FlowStats:
    """Sums over the phases of one flow."""

    calls: int = 0
    failures: int = 0
    wall_s: float = 0.0
    engine_cpu_s: float = 0.0
    asterisk_cpu_s: float = 0.0
    call_s: float = 0.0  # summed call durations, as the AMI events saw them

    @property
    def completed(self) -> int:
        return self.calls - self.failures

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.wall_s if self.wall_s > 0 else 0.0

    def per_call_ms(self, seconds: float) -> float:
        return 1000 * seconds / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu_model: str
    python: str
    asterisk: str


@dataclass
class BenchResult:
    started: datetime
    machine: Machine
    calls: int
    concurrency: int
    dtmf: str
    phases: list[tuple[str, int]]
    agi: FlowStats = field(default_factory=FlowStats)
    native: FlowStats = field(default_factory=FlowStats)
    asterisk_idle_cpu_per_s: float = 0.0
    round_trips: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    leftover_channels: int | None = None  # None: Asterisk could not be asked

    def flow(self, name: str) -> FlowStats:
        return self.agi if name == "agi" else self.native

    def asterisk_net_cpu_s(self, stats: FlowStats) -> float:
        """Asterisk CPU of a flow minus what it burns idle over the same wall time."""
        return max(0.0, stats.asterisk_cpu_s - self.asterisk_idle_cpu_per_s * stats.wall_s)


# -- pure helpers (unit-tested) -------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between the nearest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("percentile must be within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_ticks(stat_line: str) -> int:
    """utime + stime (clock ticks, all threads) from a ``/proc/<pid>/stat`` line.

    The command name (field 2) is in parentheses and may itself hold spaces and ')', so fields
    are counted from the last ')': state is then field 3, utime 14 and stime 15.
    """
    _, sep, rest = stat_line.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 13:
        raise ValueError("not a /proc/<pid>/stat line")
    return int(fields[11]) + int(fields[12])


def cpu_model(cpuinfo: str) -> str:
    """The CPU model from ``/proc/cpuinfo`` text (x86 ``model name``, else ``Model``/``cpu``)."""
    for key in ("model name", "Model", "cpu"):
        for line in cpuinfo.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return " ".join(value.split())
    return "unknown"


def expected_digits(dtmf: str) -> str:
    """What the flow should record for a caller's DTMF string: pauses dropped, up to '#'."""
    return dtmf.replace("w", "").replace("W", "").split("#", 1)[0]


def phase_plan(calls: int) -> list[tuple[str, int]]:
    """ABBA: half the calls per flow before the other half, in mirrored order."""
    first, second = (calls + 1) // 2, calls // 2
    plan = [("agi", first), ("native", first), ("native", second), ("agi", second)]
    return [(flow, n) for flow, n in plan if n > 0]


def fmt_ratio(numerator: float, denominator: float) -> str:
    if denominator <= 0 or not math.isfinite(numerator / denominator):
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f}"


def _round_trip_rows(round_trips: dict[str, list[float]]) -> list[tuple[str, int, str, str, str]]:
    return [(name, len(v), _ms(percentile(v, 50)), _ms(percentile(v, 99)),
             ROUND_TRIP_NOTES.get(name, ""))
            for name, v in sorted(round_trips.items()) if v]


def render_markdown(result: BenchResult) -> str:
    agi, native = result.agi, result.native
    m = result.machine

    def row(metric: str, a: str, n: str, ratio: str = "") -> str:
        return f"| {metric} | {a} | {n} | {ratio} |"

    def cpu_row(metric: str, a_s: float, n_s: float, a_stats: FlowStats,
                n_stats: FlowStats) -> str:
        a, n = a_stats.per_call_ms(a_s), n_stats.per_call_ms(n_s)
        return row(metric, f"{a:.1f}", f"{n:.1f}", fmt_ratio(a, n))

    # the flows' audio differs a little in length, so CPU per second of call is compared too
    a_per_call_s = 1000 * agi.asterisk_cpu_s / agi.call_s if agi.call_s > 0 else 0.0
    n_per_call_s = 1000 * native.asterisk_cpu_s / native.call_s if native.call_s > 0 else 0.0
    order = ", ".join(f"{'AGI' if flow == 'agi' else 'native'} ({n})"
                      for flow, n in result.phases)
    lines = [
        "# Benchmarks",
        "",
        "Each section is written by its benchmark; run it again to refresh (`bench/README.md`).",
        "Speed is shown as ratios against Asterisk-native baselines measured in the same run.",
        "",
        "## IVR: the first flow over FastAGI vs. the same flow in plain dialplan",
        "",
        f"- Run: {result.started:%Y-%m-%d %H:%M} UTC, "
        f"`callcenter bench ivr --calls {result.calls} --concurrency {result.concurrency}`",
        f"- Machine: {m.nproc} CPUs, {m.cpu_model}; Python {m.python}; {m.asterisk}",
        f"- Each flow: {result.calls} calls, {result.concurrency} at a time; every caller sends "
        f"DTMF `{result.dtmf}` (expects `{expected_digits(result.dtmf)}`)",
        f"- Phases, one after the other: {order}",
        f"- Asterisk idle CPU, sampled before the calls: "
        f"{1000 * result.asterisk_idle_cpu_per_s:.1f} ms per second",
        "",
        "| metric | AGI flow (9502) | native dialplan (9501) | AGI / native |",
        "|---|---:|---:|---:|",
        row("calls completed / placed", f"{agi.completed} / {agi.calls}",
            f"{native.completed} / {native.calls}"),
        row("wall time (s)", f"{agi.wall_s:.1f}", f"{native.wall_s:.1f}",
            fmt_ratio(agi.wall_s, native.wall_s)),
        row("calls per second", f"{agi.calls_per_s:.2f}", f"{native.calls_per_s:.2f}",
            fmt_ratio(agi.calls_per_s, native.calls_per_s)),
        row("mean call duration (s)", f"{agi.call_s / max(agi.calls, 1):.2f}",
            f"{native.call_s / max(native.calls, 1):.2f}",
            fmt_ratio(agi.call_s / max(agi.calls, 1), native.call_s / max(native.calls, 1))),
        cpu_row("Asterisk CPU per call (ms)", agi.asterisk_cpu_s, native.asterisk_cpu_s,
                agi, native),
        row("Asterisk CPU per second of call (ms)", f"{a_per_call_s:.2f}", f"{n_per_call_s:.2f}",
            fmt_ratio(a_per_call_s, n_per_call_s)),
        cpu_row("Asterisk CPU per call, idle subtracted (ms)",
                result.asterisk_net_cpu_s(agi), result.asterisk_net_cpu_s(native), agi, native),
        cpu_row("engine process CPU per call (ms)", agi.engine_cpu_s, native.engine_cpu_s,
                agi, native),
        row("engine CPU / Asterisk CPU", fmt_ratio(agi.engine_cpu_s, agi.asterisk_cpu_s),
            fmt_ratio(native.engine_cpu_s, native.asterisk_cpu_s)),
        cpu_row("engine + Asterisk CPU per call (ms)", agi.engine_cpu_s + agi.asterisk_cpu_s,
                native.engine_cpu_s + native.asterisk_cpu_s, agi, native),
        "",
        "### FastAGI round trips (engine side: command written → reply read)",
        "",
    ]
    rt_rows = _round_trip_rows(result.round_trips)
    if rt_rows:
        lines += ["| command | n | p50 (ms) | p99 (ms) | note |", "|---|---:|---:|---:|---|"]
        lines += [f"| {n} | {c} | {p50} | {p99} | {note} |" for n, c, p50, p99, note in rt_rows]
    else:
        lines.append("No AGI command was answered.")
    lines += ["", "### Failures", ""]
    if result.failures:
        lines.append(f"{len(result.failures)} of {agi.calls + native.calls} calls failed:")
        lines.append("")
        lines += [f"- {f}" for f in result.failures]
    else:
        lines.append("None: every AGI call recorded the expected digits and every call of both "
                     "flows ended with normal clearing (cause 16).")
    left = "unknown" if result.leftover_channels is None else result.leftover_channels
    lines += ["", f"Channels left in Asterisk after the run: {left}."]
    lines += [
        "",
        "### How to read it",
        "",
        "- Both flows play their prompts in real time, so calls per second and call duration "
        "are bounded by audio length and concurrency, not by the engine; a ratio near 1 only "
        "says FastAGI adds no audible delay. The native flow reads the digits back with "
        "Asterisk's own `digits/N` recordings (`SayDigits`), the AGI flow with the project's "
        "prompts, so their durations differ slightly: compare CPU per second of call as well.",
        "- The CPU ratios are the informative numbers: Asterisk CPU per call (AGI / native) is "
        "what res_agi and the FastAGI socket cost Asterisk; the engine rows are our Python "
        "process.",
        "- The engine process also drives the simulated callers and records every call from AMI "
        "events, so its native-flow figure is that fixed bookkeeping; the difference between the "
        "columns is the IVR's own cost.",
        "- CHANNEL STATUS is the pure FastAGI round trip (one per call, after the readback: "
        "it tells a caller who hung up during it). ANSWER "
        "includes Asterisk's own wait for media after answering (the native `Answer()` pays it "
        "too); STREAM FILE, GET DATA and EXEC (Playback) last as long as the prompts or the "
        "caller. With few samples p99 is close to the maximum.",
        "- Native calls are checked by their normal clearing only: the digits a dialplan Read() "
        "collected never reach AMI (the `dialplan` event class is withheld on purpose).",
        "",
    ]
    return "\n".join(lines)


def render_summary(result: BenchResult) -> str:
    agi, native = result.agi, result.native
    pure = result.round_trips.get(PURE_ROUND_TRIP, [])
    rt = (f"p50 {_ms(percentile(pure, 50))} ms, p99 {_ms(percentile(pure, 99))} ms "
          f"(n={len(pure)})" if pure else "none answered")
    a_ast, n_ast = agi.per_call_ms(agi.asterisk_cpu_s), native.per_call_ms(native.asterisk_cpu_s)
    a_eng, n_eng = agi.per_call_ms(agi.engine_cpu_s), native.per_call_ms(native.engine_cpu_s)
    return "\n".join([
        f"IVR bench: {result.calls} calls per flow, {result.concurrency} at a time",
        f"  calls/s        AGI {agi.calls_per_s:.2f}  native {native.calls_per_s:.2f}  "
        f"({fmt_ratio(agi.calls_per_s, native.calls_per_s)}; audio-bound)",
        f"  Asterisk CPU   AGI {a_ast:.1f} ms/call  native {n_ast:.1f} ms/call  "
        f"({fmt_ratio(a_ast, n_ast)})",
        f"  engine CPU     AGI {a_eng:.1f} ms/call  native {n_eng:.1f} ms/call; "
        f"engine/Asterisk (AGI) {fmt_ratio(agi.engine_cpu_s, agi.asterisk_cpu_s)}",
        f"  FastAGI round trip ({PURE_ROUND_TRIP}): {rt}",
        f"  failures: {len(result.failures)}; channels left in Asterisk: "
        f"{'unknown' if result.leftover_channels is None else result.leftover_channels}",
    ])


# -- measuring ------------------------------------------------------------------------------------


def asterisk_ticks(pid: int) -> int:
    # a tiny procfs read, taken just outside the timed section
    try:
        return cpu_ticks(Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace"))
    except OSError as exc:
        raise PbxError(f"Asterisk (pid {pid}) went away during the benchmark") from exc


def machine_info(settings: Settings, loop_name: str) -> Machine:
    """The machine, Python on ``loop_name`` (the benchmark's loop: called in a thread)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = ""
    version = Pbx(settings).status().version or "Asterisk (version unknown)"
    python = f"{platform.python_version()} on {loop_name}"
    return Machine(os.cpu_count() or 0, cpu_model(cpuinfo), python, version)


@dataclass
class _Call:
    flow: str
    call_id: str = ""
    error: str = ""
    cause: int | None = None
    cause_text: str = ""
    duration_s: float = 0.0


class _Runner:
    def __init__(self, engine: Engine, ami: AmiClient, concurrency: int) -> None:
        self.engine = engine
        self.ami = ami
        self.caller = SimCaller(ami)
        self.sem = asyncio.Semaphore(concurrency)
        self.placed: set[str] = set()

    async def one(self, flow: str) -> _Call:
        number, context = FLOWS[flow]
        call = _Call(flow)
        async with self.sem:
            try:
                call.call_id = await self.caller.place(number, DTMF, context=context,
                                                       hold_s=HOLD_S)
                self.placed.add(call.call_id)
                result = await self.caller.wait_end(call.call_id, HOLD_S + END_GRACE_S)
            except (CallCenterError, TimeoutError) as exc:
                call.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                return call
        call.cause, call.cause_text, call.duration_s = (result.cause, result.cause_text,
                                                        result.duration_s)
        return call

    async def phase(self, flow: str, n: int, stats: FlowStats, pid: int) -> list[_Call]:
        ticks0, cpu0 = asterisk_ticks(pid), time.process_time()
        t0 = time.perf_counter()
        calls = await asyncio.gather(*(self.one(flow) for _ in range(n)))
        t1 = time.perf_counter()
        cpu1, ticks1 = time.process_time(), asterisk_ticks(pid)
        stats.calls += n
        stats.wall_s += t1 - t0
        stats.engine_cpu_s += cpu1 - cpu0
        stats.asterisk_cpu_s += (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK")
        stats.call_s += sum(c.duration_s for c in calls)
        return calls

    async def check(self, call: _Call, digits: str) -> str | None:
        """Why the call failed, or ``None`` (checked after the timed section)."""
        if call.error:
            return call.error
        if call.cause != CAUSE_NORMAL:
            return f"ended with cause {call.cause} ({call.cause_text or 'no text'})"
        if call.flow != "agi":
            return None
        engine = self.engine
        assert engine.recorder is not None and engine.db is not None
        await engine.recorder.flush()
        record = await get_call(engine.db, call.call_id)
        if record is None:
            return "no call record"
        got = [e.detail.get("digits") for e in record.events if e.kind == "ivr.digits"]
        return None if got == [digits] else f"recorded digits {got!r}, expected {digits!r}"

    async def clean_up(self, within_s: float = 10.0) -> int:
        """Hang up any channel of ours still up; return how many channels Asterisk has left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        asked: set[str] = set()
        while True:
            rows = await self.ami.action_list("CoreShowChannels")
            ours = [r.get("Channel", "") for r in rows if r.get("Linkedid") in self.placed]
            if not ours or loop.time() >= deadline:
                return len(rows)
            for channel in ours:
                if channel and channel not in asked:
                    asked.add(channel)
                    with contextlib.suppress(CallCenterError):
                        await self.ami.action("Hangup", Channel=channel)
            await asyncio.sleep(0.2)  # a benchmark, not a test: polling Asterisk is fine here


async def run_bench(settings: Settings, calls: int, concurrency: int, output: str) -> int:
    """Run the IVR benchmark, write the markdown report to ``output``; 1 if any call failed."""
    if calls < 1 or concurrency < 1:
        raise ConfigError("--calls and --concurrency must both be at least 1")
    pid = await asyncio.to_thread(Pbx(settings).pid)
    if pid is None:
        raise PbxError("Asterisk is not running; start it with 'callcenter pbx up'")
    machine = await asyncio.to_thread(machine_info, settings, running_loop_name())
    round_trips: dict[str, list[float]] = {}

    def on_round_trip(command: str, seconds: float) -> None:
        round_trips.setdefault(command, []).append(seconds)

    with tempfile.TemporaryDirectory(prefix="callcenter-bench-") as tmp:
        engine = Engine(settings.model_copy(update={
            "db_path": Path(tmp) / "bench.db",
            "console": settings.console.model_copy(update={"enabled": False}),
            "channels": settings.channels.model_copy(update={"enabled": False})}),
                        on_agi_round_trip=on_round_trip)
        try:
            await engine.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            agi = settings.agi
            raise ConfigError(
                f"FastAGI port {agi.host}:{agi.port} is taken, probably by another engine "
                "('callcenter run' or an integration test session); stop it and run the "
                "benchmark again"
            ) from exc
        heap.settle()   # as ``callcenter run`` does
        try:
            assert engine.ami is not None
            result = BenchResult(datetime.now(UTC), machine, calls, concurrency, DTMF,
                                 phase_plan(calls))
            runner = _Runner(engine, engine.ami, concurrency)
            try:
                ticks0 = asterisk_ticks(pid)
                await asyncio.sleep(IDLE_S)
                idle_ticks = asterisk_ticks(pid) - ticks0
                result.asterisk_idle_cpu_per_s = idle_ticks / os.sysconf("SC_CLK_TCK") / IDLE_S
                done: list[_Call] = []
                for flow, n in result.phases:
                    done += await runner.phase(flow, n, result.flow(flow), pid)
                digits = expected_digits(DTMF)
                for call in done:
                    reason = await runner.check(call, digits)
                    if reason is not None:
                        result.flow(call.flow).failures += 1
                        result.failures.append(f"{call.flow} {call.call_id or '-'}: {reason}")
            finally:
                with contextlib.suppress(CallCenterError):
                    result.leftover_channels = await runner.clean_up()
        finally:
            await engine.stop()
    result.round_trips = round_trips
    path = Path(output)
    await asyncio.to_thread(_write_report, path, render_markdown(result))
    print(render_summary(result))
    print(f"report written to {path}")
    return 1 if result.failures else 0


def _write_report(path: Path, text: str) -> None:
    """Replace only the IVR section: other benchmarks (routing, ACD) write their own."""
    body = text[text.index("## IVR"):]
    write_section(path, body.splitlines()[0][3:], body)

