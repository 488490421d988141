"""Rotating the recordings key: ``callcenter recordings rotate-key``, then ``rekey``.

``rotate_key`` retires the current key (kept beside it, ``vault.retired_dir``) and makes a new
one: from then on new recordings are sealed with the new key, and the retired one still opens
what it sealed. ``rekey`` seals every kept recording that a retired key sealed again under the
current key, each checked against the digest taken when it was first sealed and swapped whole
(a crash halfway leaves every file openable: the retired key is still there), then says which
retired keys no kept recording needs any more, so that an operator may remove them.

Both refuse while the engine runs (its pid file), and both hold the recordings lock
(``lock.py``) from start to end: the engine's keeper, which seals and deletes recordings, skips
its rounds meanwhile (a file deleted after its retention must not come back from a re-seal),
and a second command stops at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiosqlite

from callcenter.config import Settings
from callcenter.errors import ConfigError, RecordingError
from callcenter.ops.engine_process import engine_pid, read_pid
from callcenter.recordings import store
from callcenter.recordings.lock import holding
from callcenter.recordings.vault import key_id, load_keyring, reseal, rotate_key, sealed_with

__all__ = ["RekeyReport", "engine_stopped", "rekey", "rotate"]


@dataclass
class RekeyReport:
    current: str                                   # the current key's id (hex)
    resealed: int = 0
    already: int = 0                               # sealed with the current key before
    missing: list[int] = field(default_factory=list)              # no file to re-seal
    failed: list[tuple[int, str]] = field(default_factory=list)   # (recording id, why)
    #: retired key id (hex) -> kept recordings still sealed with it
    needed: dict[str, int] = field(default_factory=dict)
    #: key ids (hex) files are sealed with that are in no key file: restore them from backup
    lost: list[str] = field(default_factory=list)
    #: retired keys no kept recording needs any more (hex); None: that cannot be told (some
    #: files could not be read)
    unneeded: list[str] | None = None


def engine_stopped(settings: Settings, verb: str) -> None:
    """``ConfigError`` while the engine runs on this state directory."""
    try:
        read_pid(settings.state_dir)
    except (FileNotFoundError, ValueError):
        pass
    except OSError as exc:   # fail closed: a pid file there may name a running engine
        raise ConfigError(f"recordings {verb}: cannot tell whether the engine runs ({exc}):"
                          " stop it, or remove its pid file if it is not running") from None
    pid = engine_pid(settings.state_dir)
    if pid is not None:
        raise ConfigError(f"recordings {verb}: stop the engine first (pid {pid}): it holds the"
                          " recordings keys, and it seals and deletes recordings")


def _busy(settings: Settings, verb: str) -> ConfigError:
    return ConfigError(f"recordings {verb}: another rotate-key or rekey, or the engine's"
                       f" keeper, holds the recordings lock on {settings.state_dir}:"
                       " try again when it is done")


async def rotate(settings: Settings) -> tuple[str, str]:
    """(retired key id, new key id), in hex."""
    engine_stopped(settings, "rotate-key")
    path = settings.recordings_key_file
    with holding(settings.state_dir) as held:
        if not held:
            raise _busy(settings, "rotate-key")
        if not await asyncio.to_thread(path.exists):
            raise ConfigError(f"recordings rotate-key: there is no recordings key in {path}"
                              " (the engine makes one when it first starts): run it with the"
                              " engine's settings (its state directory, as its user)")
        return await asyncio.to_thread(rotate_key, path)


async def rekey(settings: Settings, db: aiosqlite.Connection) -> RekeyReport:
    engine_stopped(settings, "rekey")
    with holding(settings.state_dir) as held:
        if not held:
            raise _busy(settings, "rekey")
        return await _rekey(settings, db)


async def _rekey(settings: Settings, db: aiosqlite.Connection) -> RekeyReport:
    key_file = settings.recordings_key_file
    if not await asyncio.to_thread(key_file.exists):
        raise ConfigError(f"recordings rekey: no recordings key in {key_file}: run it with the"
                          " engine's settings (its state directory, as its user)")
    ring = await asyncio.to_thread(load_keyring, key_file, create=False)
    unreadable = 0
    report = RekeyReport(key_id(ring.current).hex())
    for rec in await store.sealed(db):
        path = settings.pbx_path(rec.stored_path)
        if not await asyncio.to_thread(path.exists):
            report.missing.append(rec.id)
            continue
        try:
            if rec.sha256 is None:
                raise RecordingError("no digest to check it against")
            if await asyncio.to_thread(reseal, path, ring, rec.path, rec.sha256):
                report.resealed += 1
            else:
                report.already += 1
        except RecordingError as exc:
            report.failed.append((rec.id, str(exc)))
            try:
                kid = (await asyncio.to_thread(sealed_with, path)).hex()
            except RecordingError:
                unreadable += 1
                continue
            if kid != report.current:
                report.needed[kid] = report.needed.get(kid, 0) + 1
    known = {kid.hex() for kid in ring.retired}
    report.lost = sorted(set(report.needed) - known)
    if not report.missing and not unreadable:
        report.unneeded = sorted(known - set(report.needed) - {report.current})
    return report
