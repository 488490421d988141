"""The dialer's asyncio edge: places task calls through the ACD and keeps their results.

A call is placed only after ``rules.check`` allowed it (a refusal is logged in ``task_log`` and
never dialled) and after the task moved DIALING and its attempt's row was committed. It goes the
ACD's agent-first way (a call-back: the agent's phone rings, then ``[acd-agent]`` exten ``task``
dials the customer with the task's caller ID, records, and with ``amd`` runs AMD). The
dialplan's reports (``dialer/events.py``) come back over AMI and are handled in order by one
worker. What each happening does (the attempt's result, the task's move, whether the attempt
counts, the contact log) is decided by the sans-IO ``dialer/core.py``; this edge writes it.

On start, attempts left in flight by an engine that died are marked ``interrupted`` and their
tasks go to REVIEW: a person decides, nothing is redialled on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite
from pydantic import ValidationError

from callcenter.acd.notices import CallEnded, Notice, QueuesChanged, SeatChanged
from callcenter.acd.records import SeatRuntime, Waiter
from callcenter.acd.seat import SeatState
from callcenter.acd.service import Acd
from callcenter.broker.interface import Tier
from callcenter.dialer import store
from callcenter.dialer.core import CallView, Decision, Happening, decide
from callcenter.dialer.events import DialerReport, report_of
from callcenter.dialer.pacing import AgentView, Pacer
from callcenter.dialer.plan import DialMode, DialPlan
from callcenter.dialer.recovery import recover
from callcenter.dialer.rules import (
    SANDBOX_NUMBERS,
    Facts,
    Refused,
    Result,
    check,
    foreign_caller_id,
    refusal_move,
)
from callcenter.errors import CallCenterError, ConsoleError, DialerError, TaskStateError
from callcenter.tasks.state import DIALABLE, TaskInput
from callcenter.tasks.store import Task, TaskStore
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent

__all__ = ["Dialer"]

log = logging.getLogger(__name__)

#: seconds after the ACD saw an answered dialer call end before its result is settled without
#: the dialplan's report (lost with the AMI link)
SETTLE_S = 10.0


class _ListedMeanwhile(Exception):
    """The number or the customer was put on the do-not-call or opt-out list between the
    check and the DIAL move (raised inside the move's transaction, which it rolls back)."""


@dataclass
class _Call:
    call_id: str
    task_id: int
    agent_id: str
    plan: DialPlan
    mode: DialMode = DialMode.PREVIEW
    recording: str = ""
    answered_at: float | None = None
    amd: str = ""


class Dialer:
    """Preview calls (``preview_call``), progressive dialing (``join``/``leave``), results."""

    def __init__(self, db: aiosqlite.Connection, acd: Acd,
                 clock: Callable[[], float], *, tick_s: float = 5.0,
                 tasks: TaskStore | None = None,
                 own_numbers: frozenset[str] = SANDBOX_NUMBERS) -> None:
        """``tasks``: the engine's one task store (its listeners hear of the dialer's moves);
        ``own_numbers``: the caller IDs a task may show (``rules.own_numbers``)."""
        self.db, self.acd, self.clock, self.tick_s = db, acd, clock, tick_s
        self.own_numbers = own_numbers
        self.tasks = tasks if tasks is not None else TaskStore(db, clock)
        self.pacer = Pacer()
        self._calls: dict[str, _Call] = {}
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._kick = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._ami: AmiClient | None = None

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, ami: AmiClient | None = None) -> None:
        await self.recover()
        self.acd.listeners.append(self._on_notice)
        if ami is not None:
            self._ami = ami
            ami.add_handler(self._on_ami)
        self._workers = [asyncio.create_task(self._results(), name="dialer-results"),
                         asyncio.create_task(self._pacing(), name="dialer-pacing")]

    async def close(self) -> None:
        if self._on_notice in self.acd.listeners:
            self.acd.listeners.remove(self._on_notice)
        if self._ami is not None:
            self._ami.remove_handler(self._on_ami)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []

    async def recover(self) -> int:
        """Calls a stopped engine left in flight: to review (``dialer/recovery.py``)."""
        return await recover(self.tasks)

    # -- what agents ask -------------------------------------------------------------------

    async def preview_call(self, agent_id: str, task_id: int, *,
                           override: bool = False) -> str:
        """The agent pressed Call on a task: its call id once placed; ``DialerError`` when a
        rule refuses it (never dialled), ``ConsoleError`` for the agent's state. A retry is
        not called before its next attempt's time unless a supervisor ``override``s it."""
        try:
            task = await self.tasks.get(task_id)
        except TaskStateError as exc:
            raise DialerError("not_found", str(exc)) from None
        if task.agent_id and task.agent_id != agent_id:
            raise DialerError("state", f"task {task_id} is {task.agent_id}'s")
        if not override and task.next_attempt_at is not None \
                and task.next_attempt_at > self.clock():
            raise DialerError("not_due", f"task {task_id}'s next attempt is not due yet")
        return await self._place(agent_id, task, DialMode.PREVIEW)

    def join(self, agent_id: str) -> None:
        """The agent takes progressive calls (one at a time, inbound first)."""
        self.acd.seat(agent_id)  # ConsoleError if there is no such seat
        self.pacer.join(agent_id)
        self.kick()

    def leave(self, agent_id: str) -> None:
        self.pacer.leave(agent_id)

    def kick(self) -> None:
        """Look for progressive calls to place now (a seat, a task or the clock changed)."""
        self._kick.set()

    # -- placing ---------------------------------------------------------------------------

    def _ready(self, rt: SeatRuntime) -> bool:
        return rt.seat.state is SeatState.READY and rt.call is None and not rt.consulted_on

    async def _place(self, agent_id: str, task: Task, mode: DialMode) -> str:
        rt = self.acd.seat(agent_id)
        if not self._ready(rt):
            raise ConsoleError("invalid_state", "go ready (and finish any call) first")
        try:
            self.pacer.taken(agent_id, task.id)
        except ValueError as exc:
            raise ConsoleError("invalid_state", str(exc)) from None
        try:
            return await self._place_taken(rt, task, mode)
        except BaseException:
            if not any(c.agent_id == agent_id for c in self._calls.values()):
                self.pacer.done(agent_id)
            raise

    async def _place_taken(self, rt: SeatRuntime, task: Task, mode: DialMode) -> str:
        agent_id = rt.agent.agent_id
        if task.state not in DIALABLE:
            raise DialerError("state", f"task {task.id} is {task.state.value}: not to be dialled")
        if task.claimed_by and task.claimed_by != agent_id:
            raise DialerError("state", f"task {task.id} is {task.claimed_by}'s")
        try:
            plan = DialPlan.model_validate(task.dial)
        except ValidationError as exc:
            message = f"task {task.id}: its dial plan is not valid: {exc.errors()[0]['msg']}"
            await self._give_up(task, "plan", message, agent_id)
            raise DialerError("plan", message) from None
        foreign = foreign_caller_id(plan, self.own_numbers)
        if foreign is not None:
            message = f"task {task.id}: {foreign}"
            await self._give_up(task, "caller_id", message, agent_id)
            raise DialerError("caller_id", message)
        # the do-not-call list is keyed on the digits that would be dialled (the site's rules)
        key = store.dial_key(task.phone, rt.agent.role, self.acd.dial_rules)
        dnc, opted = await store.facts(self.db, key, task.account)
        verdict = check(task.phone, task.attempts, plan, Facts(dnc, opted), self.clock(),
                        role=rt.agent.role, dial_rules=self.acd.dial_rules)
        if isinstance(verdict, Refused):
            await self._refused(task, verdict, agent_id)
            raise DialerError(verdict.reason.value, verdict.message)
        call_id = f"task-{uuid.uuid4().hex[:16]}"
        used = task.attempts

        async def unchanged(current: Task) -> None:
            # what the decision was made on (a supervisor may have reassigned or
            # rescheduled it since it was read)
            if (current.attempts, current.agent_id, current.due_at, current.next_attempt_at,
                    current.phone) != (used, task.agent_id, task.due_at, task.next_attempt_at,
                                       task.phone) \
                    or current.claimed_by not in ("", agent_id):
                raise TaskStateError(f"task {task.id} changed meanwhile")
            # the do-not-call list and opt-outs again, inside the move's transaction: an
            # entry added since they were read refuses the call
            if await store.facts(self.db, key, current.account) != (False, False):
                raise _ListedMeanwhile

        try:
            await self.tasks.move(task.id, TaskInput.DIAL, agent_id if mode is DialMode.PREVIEW
                                  else "dialer", detail={"call_id": call_id, "mode": mode.value,
                                                         "agent": agent_id},
                                  expect=unchanged, attempts=used + 1, claimed_by=agent_id)
        except TaskStateError as exc:
            raise DialerError("state", str(exc)) from None
        except _ListedMeanwhile:
            dnc, opted = await store.facts(self.db, key, task.account)
            verdict = check(task.phone, task.attempts, plan, Facts(dnc, opted), self.clock(),
                            role=rt.agent.role, dial_rules=self.acd.dial_rules)
            if isinstance(verdict, Refused):
                await self._refused(task, verdict, agent_id)
                raise DialerError(verdict.reason.value, verdict.message) from None
            raise DialerError("state", f"task {task.id} changed meanwhile") from None
        call = _Call(call_id, task.id, agent_id, plan, mode)
        try:
            await store.insert_attempt(self.db, task.id, call_id, agent_id, mode.value,
                                       self.clock())
            # the attempt is committed: only now may the call be placed
            if not self._ready(rt):  # an inbound call took the seat meanwhile
                raise ConsoleError("invalid_state", "the agent took another call")
            # no queue (as click-to-call): an outbound call is not in the queues' figures
            waiter = Waiter(call_id, "", Tier.ORDINARY, self.clock(), "", "", task.account,
                            phone=verdict.number, callback=True,
                            dial={"CC_ATTEMPT": call_id, "CC_CID": plan.caller_id,
                                  "CC_AMD": "1" if plan.amd else "0",
                                  "CC_RECORD": "1" if plan.record else "0",
                                  "CC_DIAL_TIMEOUT": str(plan.ring_s)})
            self._calls[call_id] = call
            self.acd.offer_direct(rt, waiter)
        except BaseException:
            if rt.call is None or rt.call.call_id != call_id:  # never rang: never dialled
                self._calls.pop(call_id, None)
                try:
                    await self._happened(call, Happening.NOT_PLACED)
                except Exception:  # the task stays DIALING: recovery puts it to review
                    log.exception("task %s: the call not placed was not recorded", task.id)
            raise
        if rt.call is not None and rt.call.call_id == call_id:
            call.recording = rt.call.recording
        log.info("task %s: %s call %s placed for %s", task.id, mode.value, call_id, agent_id)
        return call_id

    async def _refused(self, task: Task, refused: Refused, agent_id: str) -> None:
        move = refusal_move(refused)
        changes: dict[str, Any] = {}
        if move.next_attempt_at is not None:
            changes["next_attempt_at"] = move.next_attempt_at
        log.info("task %s not dialled: %s", task.id, refused.reason.value)
        try:
            await self.tasks.move(task.id, move.input, "dialer",
                                  detail={**move.detail, "message": refused.message,
                                          "agent": agent_id}, **changes)
        except TaskStateError as exc:
            log.warning("task %s: refusal %s not recorded: %s", task.id, refused.reason, exc)

    async def _give_up(self, task: Task, reason: str, message: str, agent_id: str) -> None:
        """A task that can never be dialled as it is (its plan): failed, with the reason,
        so it is not picked again and again."""
        log.warning("%s", message)
        try:
            await self.tasks.move(task.id, TaskInput.GIVE_UP, "dialer",
                                  detail={"reason": reason, "message": message,
                                          "agent": agent_id})
        except TaskStateError as exc:
            log.warning("task %s: not given up: %s", task.id, exc)

    # -- progressive -----------------------------------------------------------------------

    async def _pacing(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick_s):
                    await self._kick.wait()
            self._kick.clear()
            try:
                await self.pace()
            except CallCenterError as exc:
                log.warning("dialer: %s", exc)
            except Exception:
                log.exception("dialer pacing failed")

    def _views(self) -> list[AgentView]:
        out = []
        for agent_id in sorted(self.pacer.joined):
            rt = self.acd.seats.get(agent_id)
            if rt is None:
                continue
            queues = frozenset(q for q in rt.agent.skills if q in self.acd.queues)
            out.append(AgentView(agent_id, self._ready(rt), queues,
                                 any(self.acd.waiting.get(q) for q in queues)))
        return out

    async def pace(self) -> list[str]:
        """Place the progressive calls due now; their call ids."""
        views = [v for v in self._views() if v.ready and not v.inbound_waiting]
        if not views:
            return []
        candidates = await self.tasks.select(
            "state IN ('open', 'claimed', 'retry') AND json_extract(dial, '$.mode') = ?",
            (DialMode.PROGRESSIVE.value,))
        placed = []
        for agent_id, task in self.pacer.plan(views, candidates, self.clock()):
            try:
                placed.append(await self._place(agent_id, task, DialMode.PROGRESSIVE))
            except (DialerError, ConsoleError) as exc:
                log.info("progressive call of task %s for %s not placed: %s", task.id,
                         agent_id, exc)
                if await self._moved(task):
                    self.kick()  # the agent may take the next task
        return placed

    async def _moved(self, task: Task) -> bool:
        """Whether ``task`` changed since it was read (a refusal moved it): only then may
        pacing look again at once; a failure that changed nothing waits for the next tick."""
        try:
            return await self.tasks.get(task.id) != task
        except TaskStateError:
            return True

    # -- results ---------------------------------------------------------------------------

    def _on_ami(self, event: AmiEvent) -> None:
        report = report_of(event)
        if report is not None and report.call_id in self._calls:
            self._inbox.put_nowait(("report", report))

    def _on_notice(self, notice: Notice) -> None:
        if isinstance(notice, CallEnded) and notice.call_id in self._calls:
            if notice.answered:
                asyncio.get_running_loop().call_later(
                    SETTLE_S, self._inbox.put_nowait, ("settle", notice.call_id))
            elif notice.lost:  # the ring's outcome is unknown: the customer may be dialled
                self._inbox.put_nowait(("lost", notice.call_id))
            else:  # the Originate failed: the customer was never dialled
                self._inbox.put_nowait(("agent_missed", notice.call_id))
        if isinstance(notice, SeatChanged | QueuesChanged | CallEnded) and self.pacer.joined:
            self.kick()

    async def _results(self) -> None:
        kinds = {"agent_missed": Happening.AGENT_MISSED, "lost": Happening.LOST,
                 "settle": Happening.SETTLE}
        while True:
            kind, item = await self._inbox.get()
            try:
                if kind == "report":
                    await self._report(item)
                elif item in self._calls:
                    await self._happened(self._calls[item], kinds[kind])
            except CallCenterError as exc:
                log.warning("dialer: %s", exc)
            except Exception:
                log.exception("dialer result failed")

    async def _report(self, report: DialerReport) -> None:
        call = self._calls.get(report.call_id)
        if call is None:
            return
        if report.stage == "amd":
            call.amd = report.status
        elif report.stage == "answered":
            await self._happened(call, Happening.ANSWERED)
        elif report.stage == "ended":
            await self._happened(call, Happening.ENDED, status=report.status,
                                 cause=report.cause, talk_s=report.talk_s)

    async def _happened(self, call: _Call, what: Happening, *, status: str = "",
                        cause: str = "", talk_s: float | None = None) -> None:
        """One happening of a call: ``dialer/core.py`` decides, this writes it. A call that is
        over leaves ``_calls`` once its rows are written (the one results worker never
        finishes a call twice: it is gone for the next item)."""
        now = self.clock()
        try:
            task = await self.tasks.get(call.task_id)
        except TaskStateError:  # the task is gone: nothing to write, the agent is free
            self._calls.pop(call.call_id, None)
            self.pacer.done(call.agent_id)
            raise
        decision = decide(CallView(call.plan, call.mode, task.attempts,
                                   call.answered_at is not None, call.amd),
                          what, now, dial_status=status, cause=cause)
        if what is Happening.ANSWERED and call.answered_at is None:
            call.answered_at = now
        try:
            await self._write(call, task, decision, talk_s, now)
        finally:
            if decision.final:
                self._calls.pop(call.call_id, None)
                self.pacer.done(call.agent_id)
                self.kick()

    async def _write(self, call: _Call, task: Task, decision: Decision, talk_s: float | None,
                     now: float) -> None:
        result = decision.result
        if result is not None:
            answered = result is Result.ANSWERED
            if talk_s is None and call.answered_at is not None:
                talk_s = max(0.0, now - call.answered_at)
            # an unknown outcome keeps its recording too: the reviewer listens to it
            kept = answered or result is Result.INTERRUPTED
            await store.finish_attempt(self.db, call.call_id, result.value, now,
                                       talk_s if answered else None,
                                       (call.recording or None) if kept else None)
            if decision.contact:
                await store.log_contact(self.db, task.account, now, task.strategy, task.id,
                                        result.value)
            log.info("task %s: call %s %s", task.id, call.call_id, result.value)
        move = decision.move
        if move is None:
            return
        changes: dict[str, Any] = {}
        if move.next_attempt_at is not None:
            changes["next_attempt_at"] = move.next_attempt_at
        if not decision.counts:
            changes["attempts"] = max(0, task.attempts - 1)
        if decision.release:
            changes["claimed_by"] = ""  # the retry is the team's, not only this agent's
        await self.tasks.move(task.id, move.input, "dialer",
                              detail={**move.detail, "call_id": call.call_id}, **changes)
