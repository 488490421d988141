"""Releases of an operator's YAML files (the IVR flows, the service strategies) through the API:
stage, check, publish, roll back.

The files' directory stays the one source of truth (an operator may still edit it by hand and
``flows reload``); a release is a set of changes (file name -> new text, or None to remove it)
made on the version of the files it was staged on (``base_version``: a hash of every file's
name and bytes, the flows' own version formula). Staging checks the whole resulting directory
the way the engine will (``ReleaseKind.check``, in a copy, off the loop) and keeps the problems;
publishing writes the files (each replaced atomically), then runs the kind's ``activate`` (the
flows: the registry's reload); it is refused when the live files changed since staging (stage
again) and undone when activation refuses them. Rolling back restores what the last published
release replaced, and is refused when the files were changed since.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from callcenter.errors import AdminError
from callcenter.store.tx import transaction

__all__ = ["ReleaseKind", "Releases", "files_version"]

log = logging.getLogger(__name__)

#: the most a release may carry: an operator's files are small
MAX_FILES = 64
MAX_FILE_BYTES = 256 * 1024

Changes = Mapping[str, str | None]


@dataclass(frozen=True)
class ReleaseKind:
    """A directory of YAML files the API may change: which files (``names``), how the whole
    directory is checked (problems as ``file:line:col: message``; runs in a worker thread) and
    how the engine takes a published version (problems if it refused it)."""

    name: str
    directory: Path
    names: re.Pattern[str]
    check: Callable[[Path], list[str]]
    activate: Callable[[], Awaitable[list[str]]] | None = None
    #: held while the files are written, so the engine never reads half a release
    editing: Callable[[], AbstractAsyncContextManager[None]] | None = None


def files_version(files: Mapping[str, bytes]) -> str:
    """A version of a directory's files: sha256 over the sorted names and bytes (12 hex)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name])
    return h.hexdigest()[:12]


def read_files(kind: ReleaseKind) -> dict[str, bytes]:
    """The kind's files as they are now (blocking: run it in a thread)."""
    if not kind.directory.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(kind.directory.iterdir())
            if p.is_file() and not p.is_symlink() and kind.names.fullmatch(p.name)}


def checked_changes(kind: ReleaseKind, changes: Changes) -> dict[str, str | None]:
    if not changes:
        raise AdminError(422, "empty", "a release changes at least one file")
    if len(changes) > MAX_FILES:
        raise AdminError(422, "too_many", f"at most {MAX_FILES} files in one release")
    for name, text in changes.items():
        if not kind.names.fullmatch(name):
            raise AdminError(422, "bad_file_name",
                             f"{name!r} is not a {kind.name} file name ({kind.names.pattern})")
        if text is not None and len(text.encode()) > MAX_FILE_BYTES:
            raise AdminError(422, "too_large", f"{name}: more than {MAX_FILE_BYTES} bytes")
    return dict(changes)


def merged(live: Mapping[str, bytes], changes: Changes) -> dict[str, bytes]:
    files = dict(live)
    for name, text in changes.items():
        if text is None:
            files.pop(name, None)
        else:
            files[name] = text.encode()
    return files


def _check_in_copy(kind: ReleaseKind, files: Mapping[str, bytes]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix=f"cc-{kind.name}-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        problems = kind.check(Path(tmp))
        return [p.replace(f"{tmp}/", "").replace(tmp, kind.name) for p in problems]


def _write(kind: ReleaseKind, changes: Mapping[str, str | None]) -> None:
    """Each file replaced atomically (a new file renamed over the old); None removes one."""
    kind.directory.mkdir(parents=True, exist_ok=True)
    for name, text in changes.items():
        path = kind.directory / name
        if text is None:
            path.unlink(missing_ok=True)
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=kind.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(text.encode())
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _row(r: Any, *, texts: bool = True) -> dict[str, Any]:
    changes = json.loads(str(r[8]))
    row = {"id": r[0], "kind": r[1], "created_at": r[2], "created_by": r[3], "comment": r[4],
           "base_version": r[5], "version": r[6], "state": r[7], "files": sorted(changes),
           "problems": json.loads(str(r[9])), "published_at": r[10], "published_by": r[11],
           "rolled_back_at": r[12], "rolled_back_by": r[13]}
    if texts:
        row["changes"] = changes
    return row


#: constant column names (the f-strings below interpolate only these)
_COLUMNS = ("id, kind, created_at, created_by, comment, base_version, version, state, changes,"
            " problems, published_at, published_by, rolled_back_at, rolled_back_by")


class Releases:
    """Stage, publish and roll back releases of each ``ReleaseKind`` (one at a time)."""

    def __init__(self, db: aiosqlite.Connection, kinds: Mapping[str, ReleaseKind]) -> None:
        self.db = db
        self.kinds = dict(kinds)
        self._lock = asyncio.Lock()

    def kind(self, name: str) -> ReleaseKind:
        kind = self.kinds.get(name)
        if kind is None:
            raise AdminError(404, "not_found", f"no release kind {name!r}")
        return kind

    async def live(self, kind_name: str) -> dict[str, Any]:
        """The kind's live files and version."""
        kind = self.kind(kind_name)
        files = await asyncio.to_thread(read_files, kind)
        return {"kind": kind.name, "version": files_version(files),
                "files": {name: data.decode(errors="replace") for name, data in files.items()}}

    async def stage(self, kind_name: str, changes: Changes, *, by: str,
                    comment: str = "") -> dict[str, Any]:
        kind = self.kind(kind_name)
        wanted = checked_changes(kind, changes)
        async with self._lock:
            live = await asyncio.to_thread(read_files, kind)
            files = merged(live, wanted)
            problems = await asyncio.to_thread(_check_in_copy, kind, files)
            async with transaction(self.db):
                cur = await self.db.execute(
                    "INSERT INTO releases (kind, created_at, created_by, comment, base_version,"
                    " version, state, problems, changes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (kind.name, time.time(), by, comment, files_version(live),
                     files_version(files), "refused" if problems else "staged",
                     json.dumps(problems, ensure_ascii=False),
                     json.dumps(wanted, ensure_ascii=False)))
                release_id = cur.lastrowid
        assert release_id is not None
        return await self.get(kind_name, release_id)

    async def get(self, kind_name: str, release_id: int) -> dict[str, Any]:
        async with self.db.execute(f"SELECT {_COLUMNS} FROM releases WHERE id = ? AND kind = ?",  # noqa: S608
                                   (release_id, kind_name)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise AdminError(404, "not_found", f"no {kind_name} release {release_id}")
        return _row(row)

    async def history(self, kind_name: str, limit: int = 50) -> list[dict[str, Any]]:
        self.kind(kind_name)
        async with self.db.execute(f"SELECT {_COLUMNS} FROM releases WHERE kind = ?"  # noqa: S608
                                   " ORDER BY id DESC LIMIT ?", (kind_name, limit)) as cur:
            return [_row(r, texts=False) for r in await cur.fetchall()]

    async def publish(self, kind_name: str, release_id: int, *, by: str) -> dict[str, Any]:
        """Write a staged release's files and have the engine take them. The files they replace
        are kept first (state ``publishing``): a publish cut short by a crash can be rolled
        back; one that fails is undone and the release is ``staged`` again."""
        kind = self.kind(kind_name)
        async with self._lock:
            release = await self.get(kind_name, release_id)
            if release["state"] != "staged":
                raise AdminError(409, "not_staged", f"release {release_id} is"
                                 f" {release['state']}: only a staged release is published",
                                 release["problems"])
            live = await asyncio.to_thread(read_files, kind)
            if files_version(live) != release["base_version"]:
                raise AdminError(409, "changed_since", f"the {kind.name} files changed since"
                                 f" release {release_id} was staged: stage it again")
            previous = _texts(live, release["changes"])
            await self._set(release_id, "UPDATE releases SET state = 'publishing', previous = ?"
                            " WHERE id = ?", json.dumps(previous, ensure_ascii=False))
            try:
                await self._apply(kind, release["changes"], previous)
            except BaseException:
                await asyncio.shield(self._set(
                    release_id, "UPDATE releases SET state = 'staged', previous = NULL"
                    " WHERE id = ?"))
                raise
            await self._set(release_id, "UPDATE releases SET state = 'published',"
                            " published_at = ?, published_by = ? WHERE id = ?", time.time(), by)
        return await self.get(kind_name, release_id)

    async def rollback(self, kind_name: str, *, by: str) -> dict[str, Any]:
        """Undo the last published release still in force (or one whose publishing was cut
        short: its files are put back whatever they are now)."""
        kind = self.kind(kind_name)
        async with self._lock:
            async with self.db.execute(
                    "SELECT id, version, previous, changes, state FROM releases WHERE kind = ?"
                    " AND state IN ('published', 'publishing')"
                    " ORDER BY coalesce(published_at, 1e18) DESC, id DESC LIMIT 1",
                    (kind.name,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise AdminError(409, "nothing_to_roll_back",
                                 f"no published {kind.name} release to roll back")
            release_id, version, interrupted = int(row[0]), str(row[1]), row[4] == "publishing"
            live = await asyncio.to_thread(read_files, kind)
            if files_version(live) != version and not interrupted:
                raise AdminError(409, "changed_since", f"the {kind.name} files changed since"
                                 f" release {release_id} was published: nothing rolled back")
            previous: dict[str, str | None] = json.loads(str(row[2]))
            now_texts = _texts(live, json.loads(str(row[3])))
            await self._apply(kind, previous, now_texts)
            await self._set(release_id, "UPDATE releases SET state = 'rolled_back',"
                            " rolled_back_at = ?, rolled_back_by = ? WHERE id = ?",
                            time.time(), by)
        return await self.get(kind_name, release_id)

    async def _set(self, release_id: int, sql: str, *args: object) -> None:
        async with transaction(self.db):
            await self.db.execute(sql, (*args, release_id))

    async def _apply(self, kind: ReleaseKind, changes: Mapping[str, str | None],
                     undo: Mapping[str, str | None]) -> None:
        """Write ``changes`` and have the engine take them; if writing fails, or the engine
        refuses them, ``undo`` is written back (even when the request is cancelled)."""
        try:
            await self._write(kind, changes)
            problems = await kind.activate() if kind.activate is not None else []
        except BaseException as exc:
            await asyncio.shield(self._undo(kind, undo))
            if isinstance(exc, Exception) and not isinstance(exc, AdminError):
                raise AdminError(500, "not_written", f"the {kind.name} files could not be"
                                 f" written ({type(exc).__name__}): put back as they were"
                                 ) from exc
            raise
        if problems:
            left = await asyncio.shield(self._undo(kind, undo))
            raise AdminError(422, "refused_by_engine", f"the engine refused the {kind.name}:"
                             + (" put back as they were" if not left else
                                " AND REFUSED THE FILES PUT BACK: see the problems"),
                             problems + left)

    async def _write(self, kind: ReleaseKind, changes: Mapping[str, str | None]) -> None:
        if kind.editing is None:
            await asyncio.to_thread(_write, kind, changes)
            return
        async with kind.editing():
            await asyncio.to_thread(_write, kind, changes)

    async def _undo(self, kind: ReleaseKind, undo: Mapping[str, str | None]) -> list[str]:
        """Put the files back; what the engine still finds wrong with them (logged)."""
        try:
            await self._write(kind, undo)
            left = await kind.activate() if kind.activate is not None else []
        except Exception as exc:
            log.exception("the %s files could not be put back: fix them by hand", kind.name)
            return [f"put back failed: {type(exc).__name__}"]
        if left:
            log.error("the %s files put back are refused too:\n%s", kind.name, "\n".join(left))
        return left


def _texts(live: Mapping[str, bytes], names: Mapping[str, object]) -> dict[str, str | None]:
    """The live text of each of ``names`` (None: no such file now)."""
    out: dict[str, str | None] = {}
    for name in names:
        data = live.get(name)
        try:
            out[name] = data.decode() if data is not None else None
        except UnicodeDecodeError:
            raise AdminError(409, "not_utf8", f"the live {name} is not UTF-8 text: fix it by"
                             " hand first") from None
    return out
