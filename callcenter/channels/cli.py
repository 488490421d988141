"""The bus and channels on the command line (hooked into ``callcenter`` by ``cli.py``):

- ``callcenter bus up|down|status``  our mosquitto (detached), like ``callcenter pbx``
- ``callcenter channel <kind>``      run one channel server in the foreground
- ``callcenter deliveries [--account A] [--state S]``  outbox messages and their latest report
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from callcenter.channels.relay import DeliveryRow, OutboxState, list_deliveries
from callcenter.errors import StoreError

if TYPE_CHECKING:
    from callcenter.config import Settings


def add_channel_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bus``, ``channel`` and ``deliveries`` (each with its ``func``)."""
    p = subparsers.add_parser("bus", help="the MQTT broker of the channels (our mosquitto)")
    p.add_argument("action", choices=["up", "down", "status"])
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
