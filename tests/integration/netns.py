"""A network namespace for tests that need a non-loopback address (WebRTC: Chromium's ICE
ignores loopback candidates).

``network_namespace()`` makes ``cc<pid>`` with its own loopback and a veth pair whose two ends
both live inside it, addressed in 10.77.0.0/24: addresses that exist only in there, so nothing
a test does with them can leave the machine. ``inside(ns)`` moves the calling thread (the test's
event loop) into it and back: sockets it opens and processes it starts from then on (Asterisk's
AMI client, the console, Chromium, SIPp) live in the namespace.

The namespace is settled before it is handed out: IPv6 is off in it (its link-local addresses
would finish duplicate address detection a second or two after the links come up) and both
links are up. Chromium drops every request in flight on a network change
(``net::ERR_NETWORK_CHANGED``): the console's modules failed to load when an address or a link
changed while the page loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class NetNs:
    name: str
    #: the two ends of the veth pair (Asterisk and the console listen on ``a``)
    a: str = "10.77.0.1"
    b: str = "10.77.0.2"


def _ip(*argv: str, netns: str | None = None) -> None:
    cmd = ["ip", *(("netns", "exec", netns, "ip") if netns else ()), *argv]
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def network_namespace() -> Iterator[NetNs]:
    ns = NetNs(f"cc{os.getpid()}")
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)
    _ip("netns", "add", ns.name)
    try:
        for conf in ("all", "default"):
            subprocess.run(["ip", "netns", "exec", ns.name, "sh", "-c",
                            f"echo 1 > /proc/sys/net/ipv6/conf/{conf}/disable_ipv6"],
                           check=True, capture_output=True, timeout=20)
        _ip("link", "set", "lo", "up", netns=ns.name)
        _ip("link", "add", "ccva", "type", "veth", "peer", "name", "ccvb", netns=ns.name)
        _ip("addr", "add", f"{ns.a}/24", "dev", "ccva", netns=ns.name)
        _ip("addr", "add", f"{ns.b}/24", "dev", "ccvb", netns=ns.name)
        _ip("link", "set", "ccva", "up", netns=ns.name)
        _ip("link", "set", "ccvb", "up", netns=ns.name)
        _settle(ns)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


def _settle(ns: NetNs, timeout_s: float = 20.0) -> None:
    """Wait until both veth ends are up and no address is tentative: nothing changes after."""
    deadline = time.monotonic() + timeout_s
    while True:
        links = subprocess.run(["ip", "netns", "exec", ns.name, "ip", "-o", "link", "show"],
                               check=True, capture_output=True, text=True, timeout=20).stdout
        addrs = subprocess.run(["ip", "netns", "exec", ns.name, "ip", "-o", "addr", "show"],
                               check=True, capture_output=True, text=True, timeout=20).stdout
        up = [line for line in links.splitlines() if "ccv" in line and "state UP" in line]
        if len(up) == 2 and "tentative" not in addrs:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespace {ns.name} not settled:\n{links}\n{addrs}")
        time.sleep(0.1)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def inside(ns: NetNs) -> Iterator[None]:
    """The calling thread in ``ns`` until the block ends (network namespaces are per thread)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)
