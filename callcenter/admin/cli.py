"""``callcenter api``: the administration API's tokens, and its OpenAPI document.

``api token add NAME --role R`` prints the token once (only its digest is kept); ``list`` shows
names, roles and whether revoked; ``revoke NAME`` ends one. ``api openapi`` writes the document
the running engine serves at ``/api/openapi.json`` (``docs/admin-api.openapi.json`` is this,
committed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from callcenter.admin.tokens import Role, issue_token, list_tokens, revoke_token
from callcenter.config import Settings
from callcenter.errors import AdminError, ConfigError

__all__ = ["add_api_parsers", "openapi_document"]


def add_api_parsers(sub: Any) -> None:
    p = sub.add_parser("api", help="the administration API: tokens, OpenAPI document")
    asub = p.add_subparsers(dest="action", required=True)
    t = asub.add_parser("token", help="issue, list or revoke API tokens")
    t.add_argument("verb", choices=["add", "list", "revoke"])
    t.add_argument("name", nargs="?", default="", help="the token's name (who holds it)")
    t.add_argument("--role", choices=[r.word for r in Role], default="viewer",
                   help="viewer reads; operator also publishes flows and strategies; admin"
                        " also changes agents and reads the audit")
    o = asub.add_parser("openapi", help="the OpenAPI document of /api")
    o.add_argument("-o", "--output", metavar="FILE", help="write it here (default: print it)")
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    from callcenter.config import load_settings

    settings = load_settings()
    if args.action == "openapi":
        text = json.dumps(asyncio.run(openapi_document(settings)), indent=2,
                          ensure_ascii=False) + "\n"
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    return asyncio.run(_tokens(settings, args))


async def _tokens(settings: Settings, args: argparse.Namespace) -> int:
    from callcenter.store.db import open_db

    if args.verb != "list" and not args.name:
        raise ConfigError(f"api token {args.verb}: give the token's name")
    db = await open_db(settings.database)
    try:
        if args.verb == "list":
            for name, role, created, revoked in await list_tokens(db):
                when = dt.datetime.fromtimestamp(created, settings.site.tz).strftime("%Y-%m-%d")
                print(f"{name:24} {role:9} issued {when}{'  revoked' if revoked else ''}")
            return 0
        if args.verb == "revoke":
            if not await revoke_token(db, args.name):
                print(f"no live token named {args.name!r}", file=sys.stderr)
                return 1
            print(f"token {args.name} revoked")
            return 0
        try:
            token = await issue_token(db, args.name, Role.of(args.role))
        except AdminError as exc:
            raise ConfigError(exc.message) from None
        print(f"token {args.name} ({args.role}); shown once, only its digest is kept:",
              file=sys.stderr)
        print(token)
        return 0
    finally:
        await db.close()


async def openapi_document(settings: Settings) -> dict[str, Any]:
    """The API's OpenAPI document (built on a scratch database: no engine needed)."""
    from callcenter.admin.api import admin_app
    from callcenter.admin.services import AdminServices
    from callcenter.ivr.registry import FlowRegistry
    from callcenter.store.db import open_db

    with tempfile.TemporaryDirectory(prefix="cc-openapi-") as tmp:
        db = await open_db(Path(tmp) / "scratch.db")
        try:
            app = admin_app(AdminServices(settings, db, flows=FlowRegistry(settings.flows_dir)))
            return app.openapi()
        finally:
            await db.close()
