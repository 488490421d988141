"""What the administration API does, apart from HTTP: the engine's agents, queues, skills,
trunks, flows, strategies, reports and recordings, read and changed the same way the CLI does.

``AdminServices`` is handed the engine's parts (a database, the ACD when it runs, the flow
registry); the CLI makes one without an ACD (``save_agent`` then changes only the directory; the
engine takes it on its next start, or at once through the API). Each change returns what the
audit records (never a secret).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
from pydantic import SecretStr

from callcenter.admin.releases import ReleaseKind, Releases
from callcenter.config import Settings
from callcenter.errors import (
    AdminError,
    AgentConflict,
    ConfigError,
    RecordingError,
    RecordingNotFound,
    StrategyError,
)
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSetError
from callcenter.recordings.service import RecordingService
from callcenter.store.agents import AgentRecord, load_agents, save_agent
from callcenter.strategies.load import Site, StrategySetError, load_strategies

if TYPE_CHECKING:
    from callcenter.acd.service import Acd
    from callcenter.ivr.registry import FlowRegistry
    from callcenter.recordings.keeper import RecordingKeeper
    from callcenter.strategies.scheduler import StrategyHost

__all__ = ["AdminServices", "flow_release_kind", "strategy_release_kind"]

FLOW_FILE = re.compile(r"[a-z0-9_-]{1,64}\.yaml")
STRATEGY_FILE = re.compile(r"[a-z0-9_-]{1,64}\.ya?ml")


def flow_release_kind(registry: FlowRegistry) -> ReleaseKind:
    """The IVR flows: checked as the engine loads them, taken by the registry's reload."""
    def check(directory: Path) -> list[str]:
        try:
            load_flowset(directory, registry.extra_prompts, registry.actions, registry.queues,
                         registry.calendar)
        except FlowSetError as exc:
            return [str(d) for d in exc.diagnostics]
        return []

    async def activate() -> list[str]:
        result = await registry.reload_async()
        return [] if result.accepted else list(result.problems)

    return ReleaseKind("flows", registry.directory, FLOW_FILE, check, activate,
                       editing=registry.editing)


def strategy_release_kind(settings: Settings,
                          host: StrategyHost | None = None) -> ReleaseKind:
    """The service strategies: the engine's host takes them (its running scheduler from its
    next run, or a scheduler starts; a set with a problem is refused); without one (strategies
    off here) the engine reads them at its next start."""
    site = Site.of(settings)

    def check(directory: Path) -> list[str]:
        try:
            load_strategies(directory, site)
        except StrategySetError as exc:
            return list(exc.diagnostics)
        return []

    if host is None:
        return ReleaseKind("strategies", settings.strategies.dir, STRATEGY_FILE, check)
    return ReleaseKind("strategies", settings.strategies.dir, STRATEGY_FILE, check, host.reload,
                       editing=host.editing)


def agent_view(agent: AgentRecord) -> dict[str, Any]:
    return {"agent_id": agent.agent_id, "name": agent.name, "role": agent.role,
            "endpoint": agent.endpoint, "skills": dict(agent.skills), "vip_team": agent.vip_team}


class AdminServices:
    def __init__(self, settings: Settings, db: aiosqlite.Connection, *,
                 acd: Acd | None = None, flows: FlowRegistry | None = None,
                 keeper: RecordingKeeper | None = None,
                 strategies: StrategyHost | None = None) -> None:
        self.settings = settings
        self.db = db
        self.acd = acd
        #: search, playback (through the engine's keeper; None: no playback here), holds
        self.recording_service = RecordingService(settings, db, keeper)
        kinds = {"strategies": strategy_release_kind(settings, strategies)}
        if flows is not None:
            kinds["flows"] = flow_release_kind(flows)
        self.releases = Releases(db, kinds)

    # -- agents ---------------------------------------------------------------------------

    async def agents(self) -> list[dict[str, Any]]:
        live = self.acd.seats if self.acd is not None else {}
        out = []
        for agent in await load_agents(self.db):
            view = agent_view(agent)
            rt = live.get(agent.agent_id)
            view["state"] = rt.seat.state.value if rt is not None else None
            out.append(view)
        return out

    async def agent(self, agent_id: str) -> dict[str, Any]:
        for view in await self.agents():
            if view["agent_id"] == agent_id:
                return view
        raise AdminError(404, "not_found", f"no agent {agent_id!r}")

    async def save_agent(self, record: AgentRecord, password: SecretStr | None, *,
                         create: bool | None = None) -> dict[str, Any]:
        """Create (``create``: only if new) or change (``create=False``: only if it exists) an
        agent; None: either. A running ACD takes the change for the next call (a seat on a
        call keeps its phone until the call ends: the ACD rings the new one next)."""
        existing = {a.agent_id: a for a in await load_agents(self.db)}.get(record.agent_id)
        try:
            await save_agent(self.db, record, password, create=create,
                             sim_contexts=self.settings.acd.sim_phone_contexts)
        except AgentConflict as exc:
            if exc.exists:
                raise AdminError(409, "exists", f"agent {record.agent_id} exists: change it"
                                 " with PUT /agents/{agent_id}") from None
            raise AdminError(404, "not_found", f"no agent {record.agent_id!r}: create it with"
                             " POST /agents") from None
        except ConfigError as exc:
            raise AdminError(422, "invalid", str(exc)) from None
        if self.acd is not None:
            self.acd.add_agent(record)
        before = agent_view(existing) if existing is not None else {}
        changed = {k: v for k, v in agent_view(record).items()
                   if existing is None or before.get(k) != v}
        if password is not None:
            changed["password"] = "changed"  # noqa: S105 (the audit's word, not a password)
        return {"agent_id": record.agent_id, "created": existing is None, "changed": changed}

    # -- queues, skills, trunks -------------------------------------------------------------

    def queues(self) -> list[dict[str, Any]]:
        acd = self.acd
        now = acd.clock() if acd is not None else 0.0
        out = []
        for q in self.settings.acd.queues:
            waiters = list(acd.waiting.get(q.name, {}).values()) if acd is not None else []
            ready = 0
            if acd is not None:
                ready = sum(1 for rt in acd.seats.values() if rt.seat.state.value == "ready"
                            and (q.skill is None or q.skill in rt.agent.skills))
            out.append({"name": q.name, "skill": q.skill, "target_s": q.target_s,
                        "target_share": q.target_share, "hours": q.hours,
                        "overflow_queue": q.overflow_queue, "waiting": len(waiters),
                        "longest_wait_s": max((now - w.arrived_at for w in waiters),
                                              default=0.0),
                        "agents_ready": ready})
        return out

    async def skills(self) -> list[dict[str, Any]]:
        by_skill: dict[str, list[dict[str, Any]]] = {}
        for agent in await load_agents(self.db):
            for skill, level in agent.skills.items():
                by_skill.setdefault(skill, []).append({"agent_id": agent.agent_id,
                                                       "level": level})
        for q in self.settings.acd.queues:
            if q.skill:
                by_skill.setdefault(q.skill, [])
        return [{"skill": skill, "queues": sorted(q.name for q in self.settings.acd.queues
                                                  if q.skill == skill),
                 "agents": sorted(agents, key=lambda a: (-a["level"], a["agent_id"]))}
                for skill, agents in sorted(by_skill.items())]

    def trunks(self) -> list[dict[str, Any]]:
        """The trunks as configured; never their password."""
        return [{"name": t.name, "host": t.host, "transport": t.transport,
                 "registration": t.registration, "dids": list(t.dids),
                 "caller_id": t.caller_id, "outbound": t.outbound,
                 "number_format": t.number_format,
                 "has_credentials": t.username is not None}
                for t in self.settings.trunks]

    # -- strategies, reports, recordings ----------------------------------------------------

    async def strategies(self) -> dict[str, Any]:
        try:
            loaded = await asyncio.to_thread(load_strategies, self.settings.strategies.dir,
                                             Site.of(self.settings))
        except StrategySetError as exc:
            return {"enabled": self.settings.strategies.enabled, "strategies": [],
                    "problems": list(exc.diagnostics)}
        except StrategyError as exc:
            return {"enabled": self.settings.strategies.enabled, "strategies": [],
                    "problems": [str(exc)]}
        return {"enabled": self.settings.strategies.enabled, "problems": [],
                "strategies": [{"id": s.id, "title": str(s.title), "enabled": s.enabled,
                                "priority": s.priority, "duty": bool(getattr(s, "duty", False))}
                               for s in loaded]}

    async def report(self, day: dt.date) -> dict[str, Any]:
        """The day's queue and agent figures (``callcenter report calls``)."""
        from callcenter.acd.report import build_report

        tz = self.settings.site.tz
        start = dt.datetime.combine(day, dt.time(), tz)
        report = await build_report(self.db, self.settings, start, start + dt.timedelta(days=1),
                                    now=dt.datetime.now(tz))
        return {"day": day.isoformat(), "until": report.until.isoformat(),
                "queues": [_plain(r) for r in report.queues or ()],
                "agents": [_plain(r) for r in report.agents or ()]}

    async def recordings(self, filters: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
        """``RecordingService.search``'s filters."""
        return [r.view() for r in await self.recording_service.search(filters, limit)]

    async def recording(self, recording_id: int) -> dict[str, Any]:
        try:
            rec = await self.recording_service.get(recording_id)
        except RecordingNotFound as exc:
            raise AdminError(404, "not_found", str(exc)) from None
        return {**rec.view(), "access": await self.recording_service.access(rec.id)}

    async def play(self, recording_id: int, actor: str, via: str) -> Iterator[bytes]:
        """The recording's audio (a blocking iterator), its access logged first."""
        try:
            return await self.recording_service.play(recording_id, actor=actor, via=via)
        except RecordingNotFound as exc:
            raise AdminError(404, "not_found", str(exc)) from None
        except RecordingError as exc:
            raise AdminError(409, "not_playable", str(exc)) from None

    async def hold(self, recording_id: int, *, by: str, reason: str | None) -> dict[str, Any]:
        try:
            rec = await self.recording_service.hold(recording_id, by=by, via="api",
                                                    reason=reason)
        except RecordingNotFound as exc:
            raise AdminError(404, "not_found", str(exc)) from None
        except RecordingError as exc:
            raise AdminError(409, "not_held", str(exc)) from None
        return rec.view()


def _plain(figures: Any) -> dict[str, Any]:
    """A report row as JSON values (no infinities: an undefined share is null)."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in dataclasses.asdict(figures).items()}
