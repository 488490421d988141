"""Recordings as people use them: search, one recording with who played, held or deleted it,
playback, legal holds. The one service behind the administration API (``admin/``) and the
supervisors' console (``seats/playback.py``): each maps ``RecordingNotFound`` and
``RecordingError`` to its own refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import aiosqlite

from callcenter.config import Settings
from callcenter.errors import RecordingError
from callcenter.recordings import store

if TYPE_CHECKING:
    from callcenter.recordings.keeper import RecordingKeeper

__all__ = ["SEARCH_FILTERS", "RecordingService"]

#: what a search may name besides days (``day_from``, ``day_to``: the site's dates)
SEARCH_FILTERS = ("account", "agent_id", "call_id", "reference")


class RecordingService:
    """Stateless over the store and the engine's keeper: make one where it is needed."""

    def __init__(self, settings: Settings, db: aiosqlite.Connection,
                 keeper: RecordingKeeper | None) -> None:
        self.settings = settings
        self.db = db
        #: the engine's keeper (sealing, playback); None: this process plays nothing
        self.keeper = keeper

    async def search(self, filters: Mapping[str, Any], limit: int) -> list[store.Recording]:
        """By customer (``account``), ``agent_id``, ``call_id``, an order's or transfer's
        number (``reference``), and days (``day_from``, ``day_to``: ``datetime.date`` in the
        site's calendar, both included); newest first."""
        tz = self.settings.site.tz
        wanted: dict[str, Any] = {k: v for k, v in filters.items()
                                  if k in SEARCH_FILTERS and v not in (None, "")}
        if filters.get("day_from") is not None:
            wanted["since"] = dt.datetime.combine(filters["day_from"], dt.time(), tz).timestamp()
        if filters.get("day_to") is not None:
            wanted["until"] = dt.datetime.combine(filters["day_to"] + dt.timedelta(days=1),
                                                  dt.time(), tz).timestamp()
        return await store.search(self.db, wanted, limit=limit)

    async def get(self, recording_id: int) -> store.Recording:
        """``RecordingNotFound`` if there is none."""
        return await store.get(self.db, recording_id)

    async def access(self, recording_id: int) -> list[dict[str, Any]]:
        """Who played, held, released or deleted it, oldest first."""
        return await store.access_log(self.db, recording_id)

    async def playable(self, recording_id: int) -> store.Recording:
        """The recording if it can be played now (sealed, not deleted); else
        ``RecordingNotFound`` or ``RecordingError`` saying why. Nothing is logged."""
        return await self._keeper().playable(recording_id)

    async def play(self, recording_id: int, *, actor: str, via: str, detail: str = "",
                   first: int = 0, count: int | None = None,
                   action: str = "play") -> Iterator[bytes]:
        """The audio (a blocking iterator: read it off the loop; ``count`` chunks of
        ``vault.CHUNK`` bytes from chunk ``first``, or all), the access logged first."""
        _, audio = await self._keeper().play(recording_id, actor=actor, via=via, detail=detail,
                                             first=first, count=count, action=action)
        return audio

    async def read(self, recording_id: int, first: int, count: int) -> Iterator[bytes]:
        """As ``play``, not logged: the rest of a playback already logged (the console fetches
        a recording in parts)."""
        _, audio = await self._keeper().open(recording_id, first, count)
        return audio

    def _keeper(self) -> RecordingKeeper:
        if self.keeper is None:
            raise RecordingError("recordings are not kept by this process")
        return self.keeper

    async def hold(self, recording_id: int, *, by: str, via: str,
                   reason: str | None) -> store.Recording:
        """Put a legal hold (``reason``, 3-200 characters) or release it (None); logged."""
        if reason is not None:
            reason = reason.strip()
            if not 3 <= len(reason) <= 200:
                raise RecordingError("a hold's reason: 3 to 200 characters (a case, an"
                                     " inquiry)")
        return await store.set_hold(self.db, recording_id, by=by, via=via, reason=reason)
