"""The bus and channels on the command line (hooked into ``callcenter`` by ``cli.py``):

- ``callcenter bus up|down|status``  our mosquitto (detached), like ``callcenter pbx``
- ``callcenter bus dead-letters``    messages the engine or a channel server parked, and why
- ``callcenter channel <kind>``      run one channel server in the foreground
- ``callcenter deliveries [--account A] [--state S]``  outbox messages and their latest report
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite

from callcenter.channels.bus import DeadLetter, list_dead_letters
from callcenter.channels.relay import DeliveryRow, OutboxState, list_deliveries
from callcenter.errors import StoreError

if TYPE_CHECKING:
    from callcenter.config import Settings


def add_channel_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bus``, ``channel`` and ``deliveries`` (each with its ``func``)."""
    p = subparsers.add_parser(
        "bus", help="the MQTT broker of the channels (our mosquitto)",
        description="up, down, status: our mosquitto. dead-letters: messages the engine or a "
                    "channel server could not use (malformed, out of bounds, unknown), parked "
                    "with the reason, newest first.")
    p.add_argument("action", choices=["up", "down", "status", "dead-letters"])
    p.add_argument("--limit", type=int, default=50, help="dead-letters: at most this many")
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="dead-letters: a table, or one JSON object a line (with the payload)")
    p.set_defaults(func=cmd_bus)

    p = subparsers.add_parser(
        "channel", help="run one channel server (fax, email, sms or a plug-in) in the "
                        "foreground",
        description="Run the channel server of KIND until SIGTERM/SIGINT. Plug-ins are found "
                    "through the 'callcenter.channels' entry point group; their settings are "
                    "the [channels.extra.KIND] table.")
    p.add_argument("kind")
    p.set_defaults(func=cmd_channel)

    p = subparsers.add_parser(
        "deliveries", help="outbox messages and their delivery state",
        description="Outbox messages, newest first, with their state and latest delivery "
                    "report.")
    p.add_argument("--account", metavar="A", help="only this customer's")
    p.add_argument("--state", choices=[s.value for s in OutboxState])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_deliveries)


def _settings() -> Settings:
    from callcenter.config import load_settings

    return load_settings()


def cmd_bus(args: argparse.Namespace) -> int:
    from callcenter.channels.mosquitto import Mosquitto

    settings = _settings()
    if args.action == "dead-letters":
        return asyncio.run(run_dead_letters(args, settings))
    broker = Mosquitto(settings.channels, settings.state_dir)
    if args.action == "up":
        broker.up()
        print(f"mosquitto up (pid {broker.pid()}) on {broker.address}; files in {broker.dir}")
    elif args.action == "down":
        broker.down()
        print("mosquitto down")
    else:
        status = broker.status()
        print(status.describe())
        return 0 if status.running and status.login is None else 3
    return 0


def cmd_channel(args: argparse.Namespace) -> int:
    from callcenter.channels.runner import run_channel

    asyncio.run(run_channel(_settings(), args.kind))
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    return asyncio.run(run_deliveries(args, _settings()))


async def run_deliveries(args: argparse.Namespace, settings: Settings) -> int:
    """``callcenter deliveries``: print outbox rows with their latest report."""
    from callcenter.store.db import open_db

    path = settings.database
    if not await asyncio.to_thread(path.exists):  # open_db would create an empty one
        raise StoreError(f"no database at {path}: has the engine run with these settings?")
    db = await open_db(path)
    try:
        rows = await list_deliveries(db, account=args.account, state=args.state,
                                     limit=max(1, args.limit))
    finally:
        await db.close()
    if args.format == "json":
        for row in rows:
            print(json.dumps(asdict(row), ensure_ascii=False))
    else:
        print(render_table(rows), end="")
    return 0


async def run_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    """``callcenter bus dead-letters``: the engine's and this host's channel servers' dead
    letters (``<state_dir>/channel-<kind>.db``), newest first."""
    from callcenter.store.db import open_db

    limit = max(1, getattr(args, "limit", 50))
    found: list[tuple[str, DeadLetter]] = []
    sources = 0
    if await asyncio.to_thread(settings.database.exists):
        sources += 1
        db = await open_db(settings.database)
        try:
            found += [("engine", d) for d in await list_dead_letters(db, limit)]
        finally:
            await db.close()
    channel_dbs = await asyncio.to_thread(
        lambda: sorted(Path(settings.state_dir).glob("channel-*.db")))
    for path in channel_dbs:
        sources += 1
        found += [(path.stem, d) for d in await _channel_dead_letters(path, limit)]
    if not sources:
        raise StoreError(f"no database at {settings.database} nor any channel-*.db in "
                         f"{settings.state_dir}: has the engine run with these settings?")
    found.sort(key=lambda x: (x[1].last_at, x[1].id), reverse=True)
    found = found[:limit]
    if getattr(args, "format", "table") == "json":
        for where, d in found:
            print(json.dumps({"where": where, **asdict(d)}, ensure_ascii=True))
    else:
        print(render_dead_letters(found), end="")
    return 0


async def _channel_dead_letters(path: Path, limit: int) -> list[DeadLetter]:
    """A channel server's dead letters, read only (none in a database older than the table)."""
    try:
        db = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        return await list_dead_letters(db, limit)
    except sqlite3.OperationalError:
        return []
    finally:
        await db.close()


def _safe(text: str, width: int | None = None) -> str:
    """A value from the wire, fit for a terminal: no control characters, perhaps shortened."""
    out = "".join(c if c.isprintable() else "?" for c in text)
    if width is not None and len(out) > width:
        out = out[:width - 3] + "..."
    return out


def render_dead_letters(rows: list[tuple[str, DeadLetter]]) -> str:
    if not rows:
        return "no dead letters\n"
    head = ("last seen", "where", "topic", "message id", "copies", "bytes")
    cells = [(_when(d.last_at), where, _safe(d.topic, 60), _safe(d.message_id) or "-",
              str(d.seen), str(d.size)) for where, d in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for (_, d), c in zip(rows, cells, strict=True):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
        lines.append(f"    reason: {_safe(d.reason)}")
    return "\n".join(lines) + "\n"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def render_table(rows: list[DeliveryRow]) -> str:
    if not rows:
        return "no outbox messages\n"
    head = ("created", "channel", "account", "ref", "template", "to", "state", "tries",
            "latest report", "message id")
    cells = []
    for r in rows:
        report = "-"
        if r.report_state:
            report = f"{r.report_state} {_when(r.report_at)[11:]}"
        cells.append((_when(r.created_at), r.channel, r.account or "-", r.ref or "-",
                      r.template or "-", r.to or "-", r.state, str(r.attempts), report,
                      r.message_id))
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for r, c in zip(rows, cells, strict=True):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
        reason = r.last_error or r.report_reason
        if reason and r.state in ("failed", "sent", "queued"):
            lines.append(f"    reason: {reason}")
    return "\n".join(lines) + "\n"
