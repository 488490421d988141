"""A real SMTP server process: the sandbox's mail peer, and the e-mail channel tests' (aiosmtpd).

    python -m callcenter.channels.mail_sink --dir OUT [--port 0] [--cert C --key K [--tls]]
        [--user U] [--refuse-rcpt] [--tempfail]

Prints ``READY <port>`` on stdout once it listens (``--port 0``: a free port), then writes every
accepted message to ``OUT/<n>.eml`` (atomically: a ``.tmp`` renamed) with its envelope in
``OUT/<n>.json``. With ``--cert``/``--key`` it offers STARTTLS (and requires it), or, with
``--tls``, speaks TLS from the first byte. With ``--user`` it requires AUTH (PLAIN or LOGIN)
with the password in the environment (``MAIL_SINK_PASSWORD``; ``--password`` still works for
tests, but puts it on the command line every local user can read). Started by the engine
(``sandbox.SandboxPeers``), it dies with the engine (``die_with_parent``). ``--refuse-rcpt``
answers RCPT with 550; ``--tempfail`` answers DATA with
451. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from callcenter.channels.sandbox import die_with_parent

PASSWORD_ENV = "MAIL_SINK_PASSWORD"  # noqa: S105 (a variable's name)


class Sink:
    def __init__(self, out: Path, refuse_rcpt: bool, tempfail: bool) -> None:
        self.out = out
        self.refuse_rcpt = refuse_rcpt
        self.tempfail = tempfail
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.refuse_rcpt:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.tempfail:
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        n = next(self.counter)
        raw = envelope.original_content or b""
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None, "authenticated": bool(session.authenticated),
                "login": session.auth_data.login.decode() if isinstance(
                    session.auth_data, LoginPassword) else None}
        await asyncio.to_thread(self._store, n, meta, raw)
        return f"250 2.0.0 Ok: queued as SINK{n}"

    def _store(self, n: int, meta: dict[str, Any], raw: bytes) -> None:
        (self.out / f"{n}.json").write_text(json.dumps(meta))
        tmp = self.out / f"{n}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, self.out / f"{n}.eml")


def authenticator(user: str, password: str) -> Any:
    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return check


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--tls", action="store_true", help="implicit TLS instead of STARTTLS")
    parser.add_argument("--user")
    parser.add_argument("--password", help=f"prefer the {PASSWORD_ENV} environment variable")
    parser.add_argument("--refuse-rcpt", action="store_true")
    parser.add_argument("--tempfail", action="store_true")
    args = parser.parse_args()
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV, "")
    if args.user and not password:
        parser.error(f"--user wants a password in {PASSWORD_ENV}")
    args.dir.mkdir(parents=True, exist_ok=True)

    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    handler = Sink(args.dir, args.refuse_rcpt, args.tempfail)
    loop = asyncio.get_running_loop()
    auth: dict[str, Any] = {}
    if args.user:
        auth = {"auth_required": True, "authenticator": authenticator(args.user, password)}
    implicit = bool(args.tls and context)

    def factory() -> SMTP:
        return SMTP(handler, loop=loop, hostname="sink.test", ident="smtp-sink",
                    tls_context=None if implicit else context,
                    require_starttls=context is not None and not implicit,
                    # implicit TLS is invisible to aiosmtpd: it would never offer AUTH
                    auth_require_tls=not implicit, **auth)

    server = await loop.create_server(factory, args.host, args.port,
                                      ssl=context if implicit else None)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    die_with_parent()
    asyncio.run(main())
    sys.exit(0)
