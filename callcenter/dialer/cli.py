"""The do-not-call list and opt-outs on the command line (hooked in by ``cli.py``):

- ``callcenter dnc add NUMBER [--reason R] | remove NUMBER | list``
- ``callcenter optout add ACCOUNT [--channel C] | remove ACCOUNT [--channel C] | list``

The dialer reads both before every call (``dialer/rules.py``); a number is kept as the digits
the dialer would dial under the site's dial rules, so ``+86 138...`` and ``138...`` are one
entry. Any syntactically valid number may be added.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys
import time
from collections.abc import Awaitable, Callable

import aiosqlite

from callcenter.dialer import store
from callcenter.errors import DialerError


def add_dnc_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dnc`` and ``optout`` (each with its ``func``)."""
    p = subparsers.add_parser("dnc", help="the do-not-call list the dialer keeps",
                              description="Numbers the dialer never calls.")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("number", nargs="?", default="")
    p.add_argument("--reason", default="", help="add: why (the customer's request, a list)")
    p.set_defaults(func=cmd_dnc)
    p = subparsers.add_parser("optout", help="customers who asked not to be contacted",
                              description="A customer's 'do not contact me by ...': the "
                                          "dialer keeps call and all.")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("account", nargs="?", default="")
    p.add_argument("--channel", choices=store.CHANNELS, default="call")
    p.set_defaults(func=cmd_optout)


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")


def cmd_dnc(args: argparse.Namespace) -> int:
    return asyncio.run(_run(_dnc, args))


def cmd_optout(args: argparse.Namespace) -> int:
    return asyncio.run(_run(_optout, args))


async def _run(what: Callable[[aiosqlite.Connection, argparse.Namespace], Awaitable[None]],
               args: argparse.Namespace) -> int:
    from callcenter.config import load_settings
    from callcenter.store.db import open_db

    db = await open_db(load_settings().database)
    try:
        await what(db, args)
    except DialerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.close()
    return 0


async def _dnc(db: aiosqlite.Connection, args: argparse.Namespace) -> None:
    if args.action == "list":
        for number, at, by, reason in await store.list_dnc(db):
            print(f"{number}\t{_when(at)}\t{by}\t{reason}")
        return
    if not args.number:
        raise DialerError("usage", f"dnc {args.action} needs a NUMBER")
    from callcenter.config import load_settings

    rules = load_settings().dial_rules  # the digits the dialer would dial are the key
    if args.action == "add":
        key = await store.add_dnc(db, args.number, getpass.getuser(), args.reason, time.time(),
                                  rules)
        print(f"{key} is on the do-not-call list")
    elif await store.remove_dnc(db, args.number, rules):
        print(f"{store.normalise(args.number, rules)} is off the do-not-call list")
    else:
        raise DialerError("not_found", f"{args.number} is not on the do-not-call list")


async def _optout(db: aiosqlite.Connection, args: argparse.Namespace) -> None:
    if args.action == "list":
        for account, channel, at, by in await store.list_opt_outs(db):
            print(f"{account}\t{channel}\t{_when(at)}\t{by}")
        return
    if not args.account:
        raise DialerError("usage", f"optout {args.action} needs an ACCOUNT")
    if args.action == "add":
        await store.add_opt_out(db, args.account, args.channel, getpass.getuser(), time.time())
        print(f"{args.account} opted out of {args.channel}")
    elif await store.remove_opt_out(db, args.account, args.channel):
        print(f"{args.account} no longer opted out of {args.channel}")
    else:
        raise DialerError("not_found", f"{args.account} has no opt-out for {args.channel}")
