"""The live flow set: load once, reload on demand, never replace a good version with a bad one.

New calls take ``registry.current`` when they start and keep that ``FlowSet`` until they end, so
an edit never changes a call in progress. ``reload`` checks the whole directory first; a broken
edit is refused with its diagnostics and the last good version stays in service. ``watch`` reloads
when a file in the directory changes (checked once a second: edits are rare, and this needs no
platform file-notification API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from callcenter.broker.exchange_calendar import Calendar
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSet, FlowSetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    accepted: bool
    version: str
    problems: tuple[str, ...] = ()


class FlowRegistry:
    def __init__(self, directory: Path, extra_prompts: dict[str, dict[str, str]] | None = None,
                 actions: frozenset[str] | None = None,
                 queues: frozenset[str] | None = None) -> None:
        self.directory = directory
        self.extra_prompts = extra_prompts or {}
        self.actions = actions
        #: the ACD's queue names: a flow naming another is refused (None: not checked)
        self.queues = queues
        #: the exchange calendar the schedules take (None: the packaged one); the engine sets
        #: the operator's (``backoffice.calendar``) before the first load
        self.calendar: Calendar | None = None
        self._current: FlowSet | None = None
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        #: told of every reload attempt made by ``watch`` or ``reload_async`` (on the loop)
        self.listeners: list[Callable[[ReloadResult], None]] = []
        self._reloading = asyncio.Lock()  # SIGHUP and the watcher must not race

    @property
    def current(self) -> FlowSet:
        if self._current is None:
            raise RuntimeError("flows not loaded")
        return self._current

    def load(self) -> FlowSet:
        """The first load: raises ``FlowSetError`` if the flows are broken."""
        self._stamp = self._files_stamp()
        self._current = load_flowset(self.directory, self.extra_prompts, self.actions,
                                     self.queues, self.calendar)
        self._warn(self._current)
        log.info("flows loaded: version %s (%s)", self._current.version,
                 ", ".join(sorted(self._current.flows)))
        return self._current

    def reload(self) -> ReloadResult:
        self._stamp = self._files_stamp()
        try:
            fresh = load_flowset(self.directory, self.extra_prompts, self.actions, self.queues,
                                 self.calendar)
        except FlowSetError as exc:
            problems = tuple(str(d) for d in exc.diagnostics)
            kept = self._current.version if self._current else "none"
            log.error("flow reload refused; version %s stays in service:\n%s", kept,
                      "\n".join(problems))
            return ReloadResult(False, kept, problems)
        changed = self._current is None or fresh.version != self._current.version
        self._current = fresh
        if changed:
            self._warn(fresh)
            log.info("flows reloaded: version %s", fresh.version)
        return ReloadResult(True, fresh.version)

    @staticmethod
    def _warn(flowset: FlowSet) -> None:
        for warning in flowset.warnings:
            log.warning("flows: %s", warning)

    def _files_stamp(self) -> tuple[tuple[str, int, int], ...]:
        stamps = []
        for path in sorted(self.directory.glob("*.yaml")):
            try:
                st = path.stat()
            except OSError:
                continue
            stamps.append((path.name, st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    async def reload_async(self) -> ReloadResult:
        """``reload`` off the event loop (parsing YAML is blocking work), then tell listeners."""
        async with self._reloading:
            result = await asyncio.to_thread(self.reload)
        for listener in list(self.listeners):
            listener(result)
        return result

    @contextlib.asynccontextmanager
    async def editing(self) -> AsyncIterator[None]:
        """While a set of files is written (an API release): no reload reads half of it."""
        async with self._reloading:
            yield

    async def watch(self, interval_s: float = 1.0) -> None:
        """Reload whenever the directory's YAML files change; runs until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            stamp = await asyncio.to_thread(self._files_stamp)
            if stamp != self._stamp:
                await self.reload_async()
