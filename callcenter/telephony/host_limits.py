"""The machine's own limits, so the engine's follow them instead of fixed numbers.

A listener's accept backlog follows ``net.core.somaxconn`` (asyncio's default, 100, overflowed at
a few hundred simultaneous FastAGI connects: Asterisk gives up after 2 s and the call fails), and
the engine's file-descriptor limit is raised from its soft to its hard value at start (each AGI
session, console and AMI link is a socket). Plain functions over ``/proc`` and ``resource``:
called once at start.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

log = logging.getLogger(__name__)

#: used where ``/proc/sys/net/core/somaxconn`` cannot be read (the kernel's default since 5.4)
DEFAULT_SOMAXCONN = 4096
#: descriptors kept for everything that is not an AGI session (database, AMI, consoles, logs)
RESERVED_FDS = 256


def somaxconn(path: Path = Path("/proc/sys/net/core/somaxconn")) -> int:
    """The kernel's cap on a listen backlog (a larger ``listen()`` backlog is cut to it)."""
    try:
        value = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return DEFAULT_SOMAXCONN
    return value if value > 0 else DEFAULT_SOMAXCONN


def fd_limit() -> int:
    """This process's soft ``RLIMIT_NOFILE`` (what it may open now)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def raise_fd_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        log.warning("file descriptor limit stays at %d (raising to %d failed: %s)",
                    soft, hard, exc)
        return soft
    return hard


def sessions_for(fd_limit: int) -> int:
    """How many AGI sessions fit the descriptor limit: one socket each, a reserve kept."""
    return max(16, fd_limit - RESERVED_FDS)
