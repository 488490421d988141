"""``callcenter bench acd``: from "seat ready" to "the agent's phone rings", ours against app_queue.

One caller waits; one seat is not ready. At t0 the seat becomes ready; t1 is when Asterisk
reports the agent's phone channel (``Newchannel`` of the agent's endpoint). Both sides are
timed the same way, on this process's monotonic clock around the same AMI event stream:

- **ours**: the engine's ACD (caller in ``[queue-hold]``, ``Acd.set_state(ready)`` at t0, AMI
  ``Originate`` of the agent's endpoint);
- **app_queue**: Asterisk's own queue (caller in ``Queue(bench)``, member added paused, AMI
  ``QueuePause Paused=false`` at t0; app_queue rings the member).

Rounds alternate ABBA so drift weighs on both. The report is a section of docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from callcenter.benchdoc import write_section
from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.errors import CallCenterError
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent, Hangup, NewChannel, OtherEvent
from callcenter.telephony.simcall import new_call_id

OURS_PHONE = "Local/5001@agent-answer"
THEIRS_PHONE = "Local/5002@agent-answer"
TITLE = "ACD: seat ready to agent ringing"
SECTION = f"## {TITLE}"


@dataclass
class AcdBenchResult:
    ours_ms: list[float] = field(default_factory=list)
    theirs_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def render_section(result: AcdBenchResult, when: datetime) -> str:
    lines = [SECTION, "",
             f"Measured {when:%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
             f"{platform.python_version()}, the sandbox Asterisk; one waiting caller, one "
             "seat made ready, time until Asterisk reports the agent's phone channel. "
             "Produced by `callcenter bench acd`.", ""]
    if not result.ours_ms or not result.theirs_ms:
        lines += ["No complete rounds: " + "; ".join(result.failures or ["none run"]), ""]
        return "\n".join(lines)
    ours_p50, theirs_p50 = statistics.median(result.ours_ms), statistics.median(result.theirs_ms)
    lines += ["| | rounds | p50 ms | p90 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for name, values in (("ours (ACD over AMI)", result.ours_ms),
                         ("app_queue (baseline)", result.theirs_ms)):
        lines.append(f"| {name} | {len(values)} | {statistics.median(values):.1f} | "
                     f"{_p(values, 0.9):.1f} | {max(values):.1f} |")
    lines += ["", f"**Ratio ours / app_queue (p50): {ours_p50 / theirs_p50:.4f}x** (app_queue "
              f"takes {theirs_p50 / ours_p50:.0f}x as long). app_queue notices a member "
              "coming free on its once-a-second re-check of waiting callers (the seat frees at a "
              "random moment in each round); our ACD is event driven and originates the moment "
              "the seat is ready.", ""]
    if result.failures:
        lines += [f"Failed rounds ({len(result.failures)}): " + "; ".join(result.failures), ""]
    return "\n".join(lines)


class _Watch:
    """Resolves when a Newchannel for a given endpoint (or another named event) arrives."""

    def __init__(self, ami: AmiClient) -> None:
        self.waiters: list[tuple[Callable[[AmiEvent], bool], asyncio.Future[float]]] = []
        ami.add_handler(self.on_event)

    def on_event(self, event: AmiEvent) -> None:
        now = time.perf_counter()
        for check, fut in list(self.waiters):
            if not fut.done() and check(event):
                fut.set_result(now)

    def expect(self, check: Callable[[AmiEvent], bool]) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((check, fut))
        fut.add_done_callback(lambda f: self.waiters.remove((check, f)))
        return fut


def _phone(prefix: str) -> Callable[[AmiEvent], bool]:
    return lambda ev: isinstance(ev, NewChannel) and ev.info.channel.startswith(prefix + "-")


async def _timed(start: Callable[[], Awaitable[None]], ring: asyncio.Future[float]) -> float:
    # The seat frees at a random moment after the caller joined, as in life: app_queue's
    # once-a-second re-check then costs ~500 ms on average, not a fixed phase.
    await asyncio.sleep(random.uniform(0.0, 1.0))
    t0 = time.perf_counter()
    await start()
    async with asyncio.timeout(15):
        t1 = await ring
    return (t1 - t0) * 1000


async def run_acd_bench(settings: Settings, rounds: int, output: str) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-acd-") as tmp:
        bench = settings.model_copy(update={
            "db_path": Path(tmp) / "callcenter.db", "backoffice_path": Path(tmp) / "bo.db",
            "console": settings.console.model_copy(update={"enabled": False}),
            "channels": settings.channels.model_copy(update={"enabled": False}),
            "acd": settings.acd.model_copy(update={"wrap_up_s": 0.0, "queues": [
                settings.acd.queues[0].model_copy(update={"announce_every_s": 0.0})]})})
        db = await open_db(bench.database)
        try:
            await save_agent(db, AgentRecord("B1", "bench", "agent", OURS_PHONE,
                                             {"general": 5}), SecretStr("bench-only"))
        finally:
            await db.close()
        engine = Engine(bench)
        await engine.start()
        result = AcdBenchResult()
        try:
            assert engine.ami is not None and engine.acd is not None
            runner = _Runner(engine, _Watch(engine.ami))
            await engine.ami.action("QueueAdd", Queue="bench", Interface=THEIRS_PHONE,
                                    Paused="true")
            try:
                for i in range(rounds):
                    order = ("ours", "theirs") if i % 4 in (0, 3) else ("theirs", "ours")
                    for side in order:
                        try:
                            ms = await (runner.ours() if side == "ours" else runner.theirs())
                            (result.ours_ms if side == "ours" else result.theirs_ms).append(ms)
                        except (CallCenterError, TimeoutError) as exc:
                            result.failures.append(f"{side} round {i}: {exc or 'timeout'}")
            finally:
                with contextlib.suppress(CallCenterError):
                    await engine.ami.action("QueueRemove", Queue="bench",
                                            Interface=THEIRS_PHONE)
        finally:
            await engine.stop()
    path = Path(output)
    section = render_section(result, datetime.now(UTC))
    await asyncio.to_thread(write_section, path, TITLE, section)
    if result.ours_ms and result.theirs_ms:
        print(f"seat ready -> agent ringing, p50: ours {statistics.median(result.ours_ms):.1f}"
              f" ms, app_queue {statistics.median(result.theirs_ms):.1f} ms")
    print(f"report written to {path}")
    return 1 if result.failures else 0


class _Runner:
    def __init__(self, engine: Engine, watch: _Watch) -> None:
        self.engine = engine
        self.watch = watch
        assert engine.ami is not None and engine.acd is not None
        self.ami: AmiClient = engine.ami
        self.acd = engine.acd

    async def _caller(self, context: str) -> tuple[str, str]:
        call_id = new_call_id()
        joined = self.watch.expect(lambda ev: isinstance(ev, NewChannel)
                                   and ev.info.uniqueid == f"{call_id}-b")
        await self.ami.originate(Channel=f"Local/s@{context}", Context="caller-sim", Exten="s",
                                 Priority="1", ChannelId=call_id,
                                 OtherChannelId=f"{call_id}-b", Variable=["CALLER_HOLD=30"],
                                 Timeout="10000")
        async with asyncio.timeout(10):
            await joined
        rows = await self.ami.action_list("CoreShowChannels")
        name = next(r["Channel"] for r in rows if r.get("Uniqueid") == f"{call_id}-b")
        return call_id, name

    async def _end(self, call_id: str) -> None:
        gone = self.watch.expect(lambda ev: isinstance(ev, Hangup)
                                 and ev.info.uniqueid == call_id)
        with contextlib.suppress(CallCenterError):
            await self.ami.action("Hangup", Channel=call_id)
        async with asyncio.timeout(10):
            await gone

    async def ours(self) -> float:
        call_id, name = await self._caller("queue-hold")
        self.acd.set_state("B1", "not_ready", "break")
        self.acd.enqueue(call_id, "general", name, f"{call_id}-b", {})
        ring = self.watch.expect(_phone(OURS_PHONE))

        async def ready() -> None:
            self.acd.set_state("B1", "ready")

        try:
            return await _timed(ready, ring)
        finally:
            await self._end(call_id)
            await self._seat_free()

    async def _seat_free(self) -> None:
        changed = asyncio.Event()

        def poke(*_args: object) -> None:
            changed.set()

        self.acd.listeners.append(poke)
        try:
            async with asyncio.timeout(10):
                while self.acd.seats["B1"].call is not None:
                    changed.clear()
                    await changed.wait()
        finally:
            self.acd.listeners.remove(poke)

    async def theirs(self) -> float:
        joined = self.watch.expect(lambda ev: isinstance(ev, OtherEvent)
                                   and ev.name == "QueueCallerJoin")
        call_id, _ = await self._caller("bench-queue")
        async with asyncio.timeout(10):
            await joined
        ring = self.watch.expect(_phone(THEIRS_PHONE))

        async def unpause() -> None:
            await self.ami.action("QueuePause", Queue="bench", Interface=THEIRS_PHONE,
                                  Paused="false")

        try:
            return await _timed(unpause, ring)
        finally:
            await self._end(call_id)
            await self.ami.action("QueuePause", Queue="bench", Interface=THEIRS_PHONE,
                                  Paused="true")
