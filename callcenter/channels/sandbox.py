"""The sandbox's channel peers: when no channel servers are configured, the run command starts
a real SMTP server process (``mail_sink``: mail lands in ``<state>/sandbox-mail``) and the SMSC
simulator (``smsc_sim``: texts land in ``<state>/sandbox-sms.jsonl``), and runs the e-mail, SMS
and fax servers in the engine's process against them and the sandbox Asterisk. A site sets
``channels.servers`` and ``[channels.extra.<kind>]`` for its real peers instead.

The peers die with the engine, however it dies (``kill -9`` included): each asks the kernel for
SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, ``die_with_parent``). Secrets reach them in
the environment (``SMSC_SIM_PASSWORD``), never on the command line, which any local user can read
in ``/proc/<pid>/cmdline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from callcenter.errors import ChannelError

if TYPE_CHECKING:
    from callcenter.config import Settings

SMSC_SYSTEM_ID = "callcenter"
READY_WITHIN_S = 20.0
#: the pid of the engine that started a peer (the peer checks it is still its parent)
PARENT_ENV = "SANDBOX_PEER_PARENT"
#: the SMSC simulator's password, in its environment
SMSC_PASSWORD_ENV = "SMSC_SIM_PASSWORD"  # noqa: S105 (a variable's name)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a peer started by ``SandboxPeers``: get SIGTERM when the engine dies, however it dies.

    Checks the parent after asking, so a parent gone in between is noticed too. A no-op for a
    process started by hand (no ``SANDBOX_PEER_PARENT``) or off Linux.
    """
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)


class SandboxPeers:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.procs: list[asyncio.subprocess.Process] = []

    async def _spawn(self, *argv: str, env: dict[str, str] | None = None) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, PARENT_ENV: str(os.getpid()), **(env or {})})
        self.procs.append(proc)
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), READY_WITHIN_S)).decode()
        except TimeoutError as exc:
            raise ChannelError(f"sandbox peer {argv[0]} did not start") from exc
        if not line.startswith("READY "):
            raise ChannelError(f"sandbox peer {argv[0]} did not start: {line.strip()!r}")
        return int(line.split()[1])

    async def start(self, settings: Settings) -> Settings:
        """Start the peers; the settings with the three channel servers pointed at them."""
        mail_dir = self.state_dir / "sandbox-mail"
        smsc_password = secrets.token_hex(4)  # SMPP allows 8 characters; lives for this run
        mail_port = await self._spawn("callcenter.channels.mail_sink", "--dir", str(mail_dir))
        smsc_port = await self._spawn(
            "callcenter.channels.smsc_sim", "--port", "0", "--system-id", SMSC_SYSTEM_ID,
            "--out", str(self.state_dir / "sandbox-sms.jsonl"),
            env={SMSC_PASSWORD_ENV: smsc_password})
        extra = {
            "email": {"smtp_port": mail_port, "security": "none",
                      "from_address": "service@sandbox-securities.example",
                      "mailbox_dir": str(self.state_dir / "mailbox")},
            "sms": {"port": smsc_port, "system_id": SMSC_SYSTEM_ID, "password": smsc_password,
                    "state_db": str(self.state_dir / "sms-receipts.sqlite3")},
            "fax": {"mailbox_dir": str(self.state_dir / "fax-mailbox"),
                    "pbx_root": str(settings.pbx.root), "ami": settings.ami.model_dump()},
        }
        channels = settings.channels.model_copy(update={
            "servers": ["email", "sms", "fax"], "extra": {**extra, **settings.channels.extra}})
        return settings.model_copy(update={"channels": channels})

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        self.procs.clear()
