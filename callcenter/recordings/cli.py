"""``callcenter recordings``: find, show, export and hold recordings from the host, through the
same ``RecordingService`` as the administration API and the console (no engine needed).

``find`` lists by order/transfer number, account, agent, call and days; ``show`` gives one with
its access log; ``export ID -o FILE`` writes the plain audio (mode 0600), checked against the
digest taken when it was sealed, and logs the access (``via`` "cli", as ``--as`` or the login
name, ``detail`` the file's name); ``hold ID --reason TEXT`` and ``release ID`` put and lift a
legal hold (logged); ``rotate-key`` and ``rekey``, with the engine stopped, rotate the site key
(``rekey.py``). Errors are the engine's own (``RecordingError``)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from callcenter.config import Settings
from callcenter.errors import ConfigError, RecordingError
from callcenter.recordings.rekey import RekeyReport, rekey, rotate
from callcenter.recordings.retention import kind_of
from callcenter.recordings.service import RecordingService
from callcenter.recordings.store import Recording
from callcenter.recordings.vault import retired_dir

__all__ = ["add_recording_parsers"]


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def add_recording_parsers(sub: Any) -> None:
    p = sub.add_parser("recordings", help="find, show, export and hold recordings"
                                          " (docs/recordings.md)")
    rsub = p.add_subparsers(dest="action", required=True)
    f = rsub.add_parser("find", help="recordings by order/transfer number, account, agent,"
                                     " call, days; newest first")
    f.add_argument("--reference", help="an order's or transfer's number: every recording of"
                                       " the call it was made in")
    f.add_argument("--account", help="the customer's account")
    f.add_argument("--agent", help="the agent's id")
    f.add_argument("--call", help="the call's id")
    f.add_argument("--from", dest="day_from", type=_day, help="first day (the site's), YYYY-MM-DD")
    f.add_argument("--to", dest="day_to", type=_day, help="last day, included")
    f.add_argument("--limit", type=int, default=100)
    s = rsub.add_parser("show", help="one recording and who played, held or deleted it")
    s.add_argument("id", type=int)
    e = rsub.add_parser("export", help="write a recording's audio to a file (logged)")
    e.add_argument("id", type=int)
    e.add_argument("-o", "--output", required=True, type=Path, help="the WAV file to write")
    h = rsub.add_parser("hold", help="put a legal hold: never deleted while held (logged)")
    h.add_argument("id", type=int)
    h.add_argument("--reason", required=True, help="why (a case, an inquiry): 3-200 characters")
    r = rsub.add_parser("release", help="lift a legal hold: the retention runs on (logged)")
    r.add_argument("id", type=int)
    for verb in (e, h, r):
        verb.add_argument("--as", dest="actor", default="",
                          help="who, in the access log (default: your login name)")
    rsub.add_parser("rotate-key", help="retire the recordings key (kept to open what it sealed)"
                                       " and make a new one; the engine stopped")
    rsub.add_parser("rekey", help="seal the recordings of retired keys again under the current"
                                  " key, each checked against its digest; the engine stopped")
    p.set_defaults(func=cmd_recordings)


def cmd_recordings(args: argparse.Namespace) -> int:
    from callcenter.config import load_settings

    return asyncio.run(_run(load_settings(), args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from callcenter.recordings.keeper import RecordingKeeper
    from callcenter.store.db import open_db

    db = await open_db(settings.database)
    try:
        service = RecordingService(settings, db, RecordingKeeper(settings, db))
        actor = getattr(args, "actor", "") or _login()
        match args.action:
            case "find":
                if args.limit < 1:
                    raise ConfigError("recordings find: --limit is at least 1")
                found = await service.search(
                    {"reference": args.reference, "account": args.account,
                     "agent_id": args.agent, "call_id": args.call,
                     "day_from": args.day_from, "day_to": args.day_to}, args.limit)
                for rec in found:
                    print(_line(rec, settings))
                if not found:
                    print("no recording found", file=sys.stderr)
                return 0
            case "show":
                rec = await service.get(args.id)
                print(_line(rec, settings))
                for key, value in _details(rec, settings):
                    print(f"  {key:14} {value}")
                for entry in await service.access(rec.id):
                    print(f"  {_when(entry['at'], settings)}  {entry['action']:8}"
                          f" {entry['actor']} ({entry['via']}) {entry['detail']}".rstrip())
                return 0
            case "export":
                return await _export(service, args.id, args.output, actor)
            case "rotate-key":
                old, new = await rotate(settings)
                print(f"recordings key {old} retired to"
                      f" {retired_dir(settings.recordings_key_file) / (old + '.key')};"
                      f" new key {new} in {settings.recordings_key_file}.\n"
                      "BACK UP the new key now (without it, recordings sealed from now on"
                      " cannot be played), keep the retired one, then run `callcenter"
                      " recordings rekey`.")
                return 0
            case "rekey":
                return _rekey_report(await rekey(settings, db), settings)
            case _:
                reason = args.reason if args.action == "hold" else None
                rec = await service.hold(args.id, by=actor, via="cli", reason=reason)
                print(f"recording {rec.id}: " + (f"on hold ({reason})" if reason
                                                 else "hold released"))
                return 0
    finally:
        await db.close()


def _rekey_report(report: RekeyReport, settings: Settings) -> int:
    print(f"recordings sealed again under key {report.current}: {report.resealed};"
          f" already under it: {report.already}")
    for rec_id in report.missing:
        print(f"recording {rec_id}: no file to seal again (its row says it is kept)",
              file=sys.stderr)
    for rec_id, why in report.failed:
        print(f"recording {rec_id}: not sealed again: {why}", file=sys.stderr)
    folder = retired_dir(settings.recordings_key_file)
    for kid, count in sorted(report.needed.items()):
        if kid in report.lost:
            print(f"key {kid}: sealed {count} recording(s) (above) and is in no key file:"
                  f" restore it from its backup as {folder / (kid + '.key')}", file=sys.stderr)
        else:
            print(f"retired key {kid}: still needed by {count} recording(s) (above): keep"
                  f" {folder / (kid + '.key')}")
    if report.unneeded is None:
        print("which retired keys are no longer needed cannot be told: some recordings could"
              " not be read (above); keep them all", file=sys.stderr)
    for kid in report.unneeded or []:
        print(f"retired key {kid}: no kept recording needs it; {folder / (kid + '.key')} may"
              " be removed once the backups that hold older recordings no longer need it")
    return 1 if report.failed or report.missing else 0


async def _export(service: RecordingService, recording_id: int, output: Path,
                  actor: str) -> int:
    rec = await service.playable(recording_id)
    target = await asyncio.to_thread(output.resolve)
    try:   # made (empty, 0600) before anything is read or logged: a bad path says so at once
        fd = await asyncio.to_thread(os.open, target, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                     0o600)
    except FileExistsError:
        raise ConfigError(f"{output} exists: give a new file") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    try:
        chunks = await service.play(recording_id, actor=actor, via="cli", action="export",
                                    detail=str(target))
        digest = await asyncio.to_thread(_write, chunks, fd)
        if digest != rec.sha256:
            raise RecordingError(f"recording {recording_id}: the exported audio's SHA-256 is"
                                 " not the one taken when it was sealed; nothing written")
    except BaseException:
        await asyncio.to_thread(target.unlink, True)
        raise
    print(f"recording {recording_id} written to {output} (sha256 {digest}, as sealed)")
    return 0


def _write(chunks: Iterable[bytes], fd: int) -> str:
    """Write the audio to the open file; its SHA-256."""
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def _when(at: float | None, settings: Settings) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at, settings.site.tz).strftime("%Y-%m-%d %H:%M:%S")


def _line(rec: Recording, settings: Settings) -> str:
    kind = kind_of(rec.kind, rec.intent_kind)
    state = ("deleted" if rec.deleted_at is not None else "held" if rec.held_by
             else "sealed" if rec.sealed_at is not None else "recording")
    length = f"{rec.ended_at - rec.started_at:.0f}s" if rec.ended_at else "-"
    return (f"{rec.id:>8}  {_when(rec.started_at, settings)}  {kind:9} {rec.reference or '-':12}"
            f" {rec.account or '-':12} {rec.agent_id or 'IVR':8} {length:>6}  {state}")


def _details(rec: Recording, settings: Settings) -> list[tuple[str, str]]:
    return [("call", rec.call_id), ("sealed", _when(rec.sealed_at, settings)),
            ("sha256", rec.sha256 or "-"), ("bytes", str(rec.bytes or "-")),
            ("kept until", _when(rec.retain_until, settings)),
            ("hold", f"{rec.hold_reason} (by {rec.held_by})" if rec.held_by else "-")]
