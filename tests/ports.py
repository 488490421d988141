"""Local TCP ports for test servers: a free one to hand out, or the one a child announces."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def ready_port(proc: asyncio.subprocess.Process, deadline: float) -> int:
    """The port from the child's first stdout line, ``READY <port>``."""
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), deadline)).decode()
    assert line.startswith("READY "), line
    return int(line.split()[1])


async def start_ready(*argv: str, deadline: float,
                      **kwargs: Any) -> tuple[asyncio.subprocess.Process, int]:
    """Run ``python *argv`` and wait for its ``READY <port>`` line."""
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv,
                                                stdout=asyncio.subprocess.PIPE, **kwargs)
    return proc, await ready_port(proc, deadline)
