"""Tasks in the console: the task requests (``protocol.TASK_REQUESTS``) carried out by
``tasks/service.py``, and what they push.

The page sees a task masked (``console_task``: the account's and number's last four digits, the
customer's name and tier for the pop, never the whole account). The name and tier come with the
task (``tasks.customer_name``, ``tasks.tier``: the strategy's runner fills them); only tasks
without them (agents' own) ask the back office, once per account and request.

One ``TaskStore`` is shared by the engine's parts (the console, the dialer, the strategies'
runner): ``ConsoleTasks`` listens to it (``TaskStore.on_change``), so a task created or moved by
any of them is pushed as ``task`` to whoever it concerns: its agent, the one who claimed it,
before and after the change, the team's agents while it is open to the team, and supervisors;
supervisors also get the ``task_progress`` state (once per turn of the loop for a burst of
changes) and the deadline alerts (``task_deadline``). A push is best effort: the change is
committed before it, and a failing push is logged, never answered as an error. Preview calls and
progressive dialling go to the dialer (``callcenter/dialer/``) when the engine gave one
(``dialer``); without it they answer ``unavailable``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from callcenter.acd.service import Acd
from callcenter.broker.interface import BackOffice
from callcenter.config import SiteSettings
from callcenter.errors import (
    CallCenterError,
    ConsoleError,
    DialerError,
    TaskRefused,
    TaskStateError,
)
from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.masking import mask
from callcenter.tasks.deadlines import DeadlineAlert, DeadlineWatch
from callcenter.tasks.progress import read_progress
from callcenter.tasks.report_db import read_report
from callcenter.tasks.service import TaskFilter, TaskService, needs_call
from callcenter.tasks.store import Task, TaskStore

__all__ = ["ConsoleTasks", "TaskDialer", "console_task", "teams_of"]

log = logging.getLogger(__name__)

_SUPERVISING = frozenset({p.Role.SUPERVISOR, p.Role.ADMIN})
_REFUSED = {"not_yours": "not_found", "no_such": "not_found", "bad_values": "malformed"}
#: seconds the back office has to name a task's customer before the list goes without
CUSTOMER_TIMEOUT_S = 2.0


class TaskDialer(Protocol):
    """What the console needs of the dialer (``callcenter/dialer/``)."""

    async def preview_call(self, agent_id: str, task_id: int, *,
                           override: bool = False) -> str: ...

    def join(self, agent_id: str) -> None: ...

    def leave(self, agent_id: str) -> None: ...


def console_task(task: Task, now: float, customer: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """A task as the page sees it: masked, with ``overdue`` and the pop's ``customer``."""
    data = task.public()
    account, phone, dial = data.pop("account"), data.pop("phone"), data.pop("dial")
    data["account_masked"], data["phone_masked"] = mask(str(account)), mask(str(phone))
    data["dial_mode"] = str(dial.get("mode", "preview")) if isinstance(dial, dict) else "preview"
    # recorded as proof: the outcome is taken only after a call reached the customer
    data["record"] = needs_call(task)
    data["overdue"] = task.overdue(now)
    if customer is None and task.customer_name:
        customer = {"name": task.customer_name, "tier": task.tier}
    data["customer"] = customer
    return data


def teams_of(acd: Acd, agent_id: str) -> frozenset[str]:
    """The queues an agent serves: those without a skill, and those whose skill they have."""
    rt = acd.seats.get(agent_id)
    if rt is None:
        return frozenset()
    skills = rt.agent.skills
    return frozenset(q.name for q in acd.queues.values()
                     if q.skill is None or skills.get(q.skill, 0) >= 1)


class ConsoleTasks:
    def __init__(self, acd: Acd, store: TaskStore, backoffice: BackOffice, site: SiteSettings,
                 push_agent: Callable[[str, str, dict[str, Any]], None],
                 push_role: Callable[[str, dict[str, Any]], None],
                 push_state: Callable[[str, dict[str, Any]], None]) -> None:
        self.acd, self.store, self.backoffice, self.site = acd, store, backoffice, site
        self.service = TaskService(store, lambda a: teams_of(acd, a),
                                   agents=lambda: frozenset(acd.seats),
                                   teams=lambda: frozenset(acd.queues))
        self._push_agent, self._push_role, self._push_state = push_agent, push_role, push_state
        # every change of the store's tasks, whoever made it, is pushed
        store.on_change.append(self.changed)
        #: the dialer, when the engine runs one
        self.dialer: TaskDialer | None = None
        self.watch: DeadlineWatch | None = None
        self._progress_due = False
        self._jobs: set[asyncio.Task[None]] = set()

    @property
    def now(self) -> float:
        return self.store.clock()

    # -- requests --------------------------------------------------------------------------------

    async def handle(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        try:
            return await self._handle(agent, request)
        except TaskRefused as exc:
            raise ConsoleError(_REFUSED.get(exc.reason, "invalid_state"), str(exc)) from exc
        except TaskStateError as exc:
            raise ConsoleError("invalid_state", str(exc)) from exc
        except DialerError as exc:
            raise ConsoleError("invalid_state", f"{exc} ({exc.reason})") from exc

    async def _handle(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        me, boss = agent.agent_id, agent.role in _SUPERVISING
        s = self.service
        match request:
            case p.Tasks():
                return {"tasks": await self._listed(await self._list(me, boss, request))}
            case p.ClaimTask(task_id=task_id):
                return await self._moved(await s.claim(me, task_id))
            case p.ReleaseTask(task_id=task_id):
                return await self._moved(await s.release(me, task_id, supervisor=boss))
            case p.TaskOutcome(task_id=task_id, values=values):
                return await self._moved(await s.outcome(me, task_id, dict(values),
                                                         supervisor=boss))
            case p.RescheduleTask(task_id=task_id, due_at=due_at, note=note):
                return await self._moved(await s.reschedule(me, task_id, due_at, note,
                                                            supervisor=boss))
            case p.AssignTask(task_id=task_id, agent_id=agent_id, team=team):
                return await self._moved(await s.assign(me, task_id, agent_id=agent_id,
                                                        team=team))
            case p.CancelTask(task_id=task_id, reason=reason):
                return await self._moved(await s.cancel(me, task_id, reason))
            case p.TaskCall(task_id=task_id):
                task = await s.visible(me, task_id, supervisor=boss)
                if (task.claimed_by or task.agent_id) != me:
                    raise ConsoleError("invalid_state", "claim the task before calling")
                # a supervisor may call a retry before its time (the customer asked for it)
                return {"call_id": await self._dialer().preview_call(me, task_id,
                                                                     override=boss)}
            case p.DialerJoin():
                self._dialer().join(me)
                return {"dialer": True}
            case p.DialerLeave():
                self._dialer().leave(me)
                return {"dialer": False}
            case p.TaskProgress():
                return await self.progress()
            case p.TaskReport():
                return await self.report(request.from_, request.to)
        raise ConsoleError("unknown_command", f"{request.type} is not a task request")

    async def _list(self, me: str, boss: bool, req: p.Tasks) -> list[Task]:
        if req.view == "team":
            return await self.service.team(me)
        if req.view == "all":
            if not boss:
                raise ConsoleError("forbidden", "the view of all tasks is for supervisors")
            return await self.service.all(TaskFilter(req.state, req.strategy, req.agent_id,
                                                     req.team, req.overdue))
        return await self.service.mine(me)

    def _dialer(self) -> TaskDialer:
        if self.dialer is None:
            raise ConsoleError("unavailable", "the dialer is not running in this engine")
        return self.dialer

    async def _listed(self, tasks: list[Task]) -> list[dict[str, Any]]:
        now = self.now
        # the back office only for tasks that came without the customer (agents' own tasks),
        # each account once
        pops = await self._customers({t.account for t in tasks
                                      if t.account and not t.customer_name})
        return [console_task(t, now, pops.get(t.account)) for t in tasks]

    async def _customers(self, accounts: Iterable[str]) -> dict[str, dict[str, str]]:
        """Name and tier per account, as far as the back office answers in time (never
        raises: a task goes without its pop rather than a reply failing)."""
        wanted = sorted(accounts)

        async def one(account: str) -> dict[str, str] | None:
            try:
                c = await asyncio.wait_for(self.backoffice.customer(account),
                                           CUSTOMER_TIMEOUT_S)
            except (CallCenterError, TimeoutError) as exc:
                log.info("task pop: no customer for %s: %s", mask(account), exc)
                return None
            except Exception:
                log.exception("task pop: the back office failed for %s", mask(account))
                return None
            return {"name": c.name, "tier": c.tier.value}

        found = await asyncio.gather(*(one(a) for a in wanted))
        return {a: c for a, c in zip(wanted, found, strict=True) if c is not None}

    async def _moved(self, task: Task) -> dict[str, Any]:
        """The reply to a committed move (pushed already, by the store's listener): the task
        with its pop; a pop the back office cannot give leaves the pop out, not the move."""
        wanted = [task.account] if task.account and not task.customer_name else []
        pops = await self._customers(wanted)
        return {"task": console_task(task, self.now, pops.get(task.account))}

    # -- pushes ----------------------------------------------------------------------------------

    def changed(self, task: Task, old: Task | None = None) -> None:
        """Push ``task`` to whoever it concerns (``old``: as it was, for its former holders)."""
        data = console_task(task, self.now)
        to = {task.agent_id, task.claimed_by}
        if old is not None:
            to |= {old.agent_id, old.claimed_by}
        # the team's agents while it is (or was) open to them
        teams = {t.team for t in (task, old) if t is not None and not t.agent_id} - {""}
        for agent_id in self.acd.seats:
            if teams & teams_of(self.acd, agent_id):
                to.add(agent_id)
        for agent_id in sorted(to - {""}):
            rt = self.acd.seats.get(agent_id)
            if rt is not None and rt.agent.role == p.Role.AGENT.value:
                self._push_agent(agent_id, "task", data)
        self._push_role("task", data)
        self._progress_changed()

    def on_alert(self, alert: DeadlineAlert) -> None:
        self._push_role("task_deadline",
                        {"kind": alert.kind, "task": console_task(alert.task, self.now)})

    def _progress_changed(self) -> None:
        if self._progress_due:
            return
        self._progress_due = True
        try:
            job = asyncio.get_running_loop().create_task(self._push_progress())
        except RuntimeError:
            self._progress_due = False
            return
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _push_progress(self) -> None:
        await asyncio.sleep(0)
        self._progress_due = False
        try:
            self._push_state("task_progress", await self.progress())
        except Exception:
            log.exception("task progress could not be pushed")

    async def progress(self) -> dict[str, Any]:
        now = self.now
        day = dt.datetime.fromtimestamp(now, self.site.tz).date()
        since = dt.datetime.combine(day, dt.time(), tzinfo=self.site.tz).timestamp()
        return await read_progress(self.store.db, since, now)

    async def report(self, first: str, last: str) -> dict[str, Any]:
        tz = self.site.tz
        start = dt.datetime.combine(dt.date.fromisoformat(first), dt.time(), tzinfo=tz)
        end = dt.datetime.combine(dt.date.fromisoformat(last) + dt.timedelta(days=1), dt.time(),
                                  tzinfo=tz)
        return (await read_report(self.store.db, start.timestamp(), end.timestamp())).data()

    # -- the deadline watch ----------------------------------------------------------------------

    def watch_deadlines(self, before_s: float, every_s: float) -> None:
        self.watch = DeadlineWatch(self.store, self.on_alert, before_s=before_s, every_s=every_s)
        self.watch.start()

    async def close(self) -> None:
        if self.changed in self.store.on_change:
            self.store.on_change.remove(self.changed)
        if self.watch is not None:
            await self.watch.close()
            self.watch = None
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)

