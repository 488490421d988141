"""A round of work run every so often in a task of its own until closed: the recordings' keeper,
the strategies' scheduler, the tasks' deadline watch. A round that fails is logged with its
traceback and the next one runs as usual: the rounds never stop of an error. The first round
runs at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]


class Periodic:
    def __init__(self, name: str, round_: Callable[[], Awaitable[object]],
                 every_s: Callable[[], float], log: logging.Logger, failed: str) -> None:
        """``every_s`` is read after each round (a setting may change); ``failed`` is logged
        with the traceback when a round raises (``%.0f``: the seconds to the next one)."""
        self.name, self.round, self.every_s = name, round_, every_s
        self.log, self.failed = log, failed
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Stop it (a round under way is cancelled) and wait until it has; never raises what
        the task died of (logged)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await self._task
                except Exception:
                    self.log.exception("%s had died", self.name)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:
                self.log.exception(self.failed, self.every_s())
            await asyncio.sleep(self.every_s())
