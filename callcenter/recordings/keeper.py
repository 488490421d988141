"""The engine's keeper of recordings: every ``recordings.interval_s`` it seals the recordings
that have ended (``vault.seal_file``, the plain file removed once the sealed one is on disk)
and deletes those past their retention that are not on hold (``retention.py``). Files are
reached through ``Settings.pbx_path`` (Asterisk writes them in its own file system); the
crypto and file work runs in a worker thread. ``play`` streams a recording back, opened
chunk by chunk, after logging who listened. Each round holds the recordings lock
(``lock.py``): while ``callcenter recordings rotate-key`` or ``rekey`` runs, rounds are skipped;
the keys are read again when their files change."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import aiosqlite

from callcenter.config import Settings
from callcenter.errors import RecordingError
from callcenter.periodic import Periodic
from callcenter.recordings import store
from callcenter.recordings.lock import holding
from callcenter.recordings.retention import Kept, due, kind_of, retain_until
from callcenter.recordings.vault import (
    Keyring,
    load_keyring,
    open_sealed,
    remove_leftovers,
    retired_dir,
    seal_file,
)

__all__ = ["RecordingKeeper"]

log = logging.getLogger(__name__)


class RecordingKeeper:
    def __init__(self, settings: Settings, db: aiosqlite.Connection) -> None:
        self.settings = settings
        self.db = db
        self._key: Keyring | None = None
        #: the key files' state when ``_key`` was read (changed: read again)
        self._key_stamp: tuple[int, ...] = ()
        self._rounds = Periodic("recording-keeper", self.round,
                                lambda: self.settings.recordings.interval_s, log,
                                "recordings: round failed; the next one, in %.0f s, retries")
        #: recordings whose file was missing when due for sealing (warned once each)
        self._missing: set[int] = set()
        #: told after every round (tests wait on it)
        self.rounds = 0
        #: rounds skipped in a row (the recordings lock held by a command)
        self._skipped = 0

    async def key(self) -> Keyring:
        """The site key (it seals) and the retired ones (they open what they sealed); made on
        first start, but never while sealed recordings exist (a new key would open none of
        them: the old one must be restored from its backup)."""
        stamp = await asyncio.to_thread(self._stamp)
        if self._key is None or stamp != self._key_stamp:
            may_create = await store.count_sealed(self.db) == 0
            self._key = await asyncio.to_thread(load_keyring,
                                                self.settings.recordings_key_file,
                                                create=may_create)
            # the state before the read: a rotation during it is seen at the next call
            self._key_stamp = stamp
        return self._key

    def _stamp(self) -> tuple[int, ...]:
        stamp: list[int] = []
        key_file = self.settings.recordings_key_file
        for path in (key_file, retired_dir(key_file)):
            try:
                st = path.stat()
            except FileNotFoundError:
                stamp += [0, 0]
                continue
            stamp += [st.st_ino, st.st_mtime_ns]
        return tuple(stamp)

    async def start(self) -> None:
        await self.key()  # a broken key file stops the engine at start, not at the first call
        self._rounds.start()

    async def close(self) -> None:
        await self._rounds.close()

    async def round(self, now: float | None = None) -> tuple[int, int]:
        """Seal what has ended, delete what has expired; (sealed, deleted). Skipped (0, 0)
        while a key rotation or re-seal holds the recordings lock."""
        with holding(self.settings.state_dir) as held:
            if not held:
                self._skipped += 1
                level = logging.WARNING if self._skipped % 10 == 3 else logging.INFO
                log.log(level, "recordings: a key rotation or re-seal holds the recordings lock"
                        " (%d rounds in a row): nothing is sealed or deleted until it is done",
                        self._skipped)
                return 0, 0
            self._skipped = 0
            return await self._round(now)

    async def _round(self, now: float | None) -> tuple[int, int]:
        now = time.time() if now is None else now
        sealed = deleted = 0
        for rec in await store.to_seal(self.db, now, self.settings.recordings.seal_after_s):
            if await self._seal(rec):
                sealed += 1
        candidates = await store.past_retention(self.db, now)
        going = set(due((Kept(r.id, r.retain_until or now, r.held_by is not None)
                         for r in candidates), now))
        for rec in (r for r in candidates if r.id in going):
            # marked first, only if no hold came meanwhile (another process may put one);
            # the files go after: a crash between leaves files of a deleted row, never a held
            # row without its file
            if not await store.mark_deleted(self.db, rec.id, now):
                log.info("recording %d: put on hold as it was due; kept", rec.id)
                continue
            await asyncio.to_thread(self._remove, rec)
            log.info("recording %d deleted after its retention", rec.id)
            deleted += 1
        self.rounds += 1
        return sealed, deleted

    async def _seal(self, rec: store.Recording) -> bool:
        plain = self.settings.pbx_path(rec.path)
        sealed = self.settings.pbx_path(rec.path + store.SEALED_SUFFIX)
        if not await asyncio.to_thread(plain.exists):
            if rec.id not in self._missing:
                self._missing.add(rec.id)
                log.warning("recording %d: no file %s to seal (never written?)", rec.id,
                            plain.name)
            return False
        key = (await self.key()).current
        digest, size = await asyncio.to_thread(seal_file, plain, sealed, key, rec.path)
        days = self.settings.recordings.retention_days
        until = retain_until(rec.started_at, kind_of(rec.kind, rec.intent_kind), days)
        await store.mark_sealed(self.db, rec.id, at=time.time(), sha256=digest, size=size,
                                retain_until=until)
        await asyncio.to_thread(plain.unlink, True)
        return True

    def _remove(self, rec: store.Recording) -> None:
        for path in {self.settings.pbx_path(rec.path),
                     self.settings.pbx_path(rec.path + store.SEALED_SUFFIX)}:
            path.unlink(missing_ok=True)
            remove_leftovers(path)

    async def playable(self, recording_id: int) -> store.Recording:
        """The recording if it can be played now (sealed, not deleted), else
        ``RecordingNotFound`` or ``RecordingError`` saying why."""
        rec = await store.get(self.db, recording_id)
        if (why := rec.unplayable()) is not None:
            raise RecordingError(why)
        return rec

    async def open(self, recording_id: int, first: int = 0, count: int | None = None
                   ) -> tuple[store.Recording, Iterator[bytes]]:
        """The recording and its audio (a blocking iterator: iterate it off the loop),
        ``count`` chunks of ``vault.CHUNK`` bytes from chunk ``first`` (or all). Only a sealed
        recording opens; nothing is logged (``play`` logs)."""
        rec = await self.playable(recording_id)
        return rec, await self._audio(rec, first, count)

    async def play(self, recording_id: int, *, actor: str, via: str, detail: str = "",
                   first: int = 0, count: int | None = None, action: str = "play"
                   ) -> tuple[store.Recording, Iterator[bytes]]:
        """As ``open``, the access logged (who, through what, ``action``: play or export,
        ``detail``: from where, to which file) before anything is read."""
        rec = await self.playable(recording_id)
        await self.key()  # no access logged for a key that cannot be had
        await store.log_access(self.db, recording_id, actor=actor, via=via, action=action,
                               detail=detail)
        return rec, await self._audio(rec, first, count)

    async def _audio(self, rec: store.Recording, first: int, count: int | None
                     ) -> Iterator[bytes]:
        key = await self.key()
        path: Path = self.settings.pbx_path(rec.stored_path)
        return open_sealed(path, key, rec.path, first, count)
