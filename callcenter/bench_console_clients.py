"""Console clients for ``callcenter bench console``, run in a process of their own.

``python -m callcenter.bench_console_clients --url ws://127.0.0.1:PORT/ws --agent ID --count N
--mark AGENT --out FILE`` reads the password from the first line of standard input (never from
the command line), opens ``N`` websocket connections to the console, logs each one in, and
prints ``ready <logged in> <failed>`` on standard output. From then on every connection reads
what the engine pushes, like a supervisor's page watching the wallboard: for each ``wallboard``
event it notes when it arrived (``time.monotonic()``, the machine's CLOCK_MONOTONIC, which the
engine's process shares) and which board it was, by the ``since`` of the seat ``--mark`` (the
seat the benchmark moves; each move gives it a new ``since``). The line ``stop`` on standard
input closes every connection; the results go to ``--out`` as JSON and ``done`` is printed.

When the login reply names a fan-out relay (``fanout``: the engine's pushes to many consoles come
from a process of their own, ``callcenter/fanout/``), each client opens that second socket too,
as the console's page does, and the boards are read there.

The clients run in their own process so that reading 1000 sockets does not share the engine's
event loop. The benchmark may start several such processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.frames import Frame, Opcode
from websockets.utils import accept_key, generate_key

from callcenter.cpu_affinity import parse_cpus

#: logins in flight per process: the engine checks passwords (scrypt) in worker threads, and a
#: connection that waits past the console's login deadline (10 s) is closed
LOGIN_CONCURRENCY = 8
LAG_TICK_S = 0.02
WALLBOARD = '"event":"wallboard"'


def board_marker(text: str, mark: str) -> float | None:
    """The ``since`` of seat ``mark`` in a ``wallboard`` event's text, or None (another event,
    or the seat is not on the board). A string search first (the engine writes compact JSON,
    ``agent_id`` first in a seat), the whole JSON only if that fails."""
    if WALLBOARD not in text:
        return None
    at = text.find(f'"agent_id":"{mark}"')
    if at >= 0:
        key = text.find('"since":', at)
        end = text.find("}", at)
        if 0 <= key < end:
            start = key + len('"since":')
            stop = min((i for i in (text.find(",", start), end) if i >= 0), default=end)
            with contextlib.suppress(ValueError):
                return float(text[start:stop])
    try:
        message = json.loads(text)
        seats = message["data"]["seats"]
        for seat in seats:
            if seat.get("agent_id") == mark:
                return float(seat["since"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return None


@dataclass
class ClientLog:
    """What one connection saw: the first receipt of each board, by marker, in order."""

    receipts: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, marker)
    messages: int = 0
    wallboards: int = 0
    logged_in: bool = False
    closed_at: float | None = None
    close: str = ""

    def saw(self, text: str, mark: str, at: float) -> None:
        self.messages += 1
        marker = board_marker(text, mark)
        if marker is None:
            return
        self.wallboards += 1
        if not self.receipts or self.receipts[-1][1] != marker:
            self.receipts.append((at, marker))

    def as_json(self) -> dict[str, Any]:
        return {"receipts": self.receipts, "messages": self.messages,
                "wallboards": self.wallboards, "logged_in": self.logged_in,
                "closed_at": self.closed_at, "close": self.close}


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-file limit towards ``wanted`` (up to the hard limit); the new soft
    limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def split_frames(buffer: bytes) -> tuple[list[tuple[int, bool, bytes]], bytes]:
    """Complete server frames at the start of ``buffer`` as (opcode, fin, payload), and the
    bytes left over (a frame not complete yet). Server frames are not masked (RFC 6455 5.1);
    no extension is negotiated, so the reserved bits are 0."""
    frames = []
    at, size = 0, len(buffer)
    while size - at >= 2:
        first, second = buffer[at], buffer[at + 1]
        length, head = second & 0x7F, 2
        if length == 126:
            if size - at < 4:
                break
            length, head = int.from_bytes(buffer[at + 2:at + 4], "big"), 4
        elif length == 127:
            if size - at < 10:
                break
            length, head = int.from_bytes(buffer[at + 2:at + 10], "big"), 10
        if second & 0x80:
            raise ValueError("a server frame is masked")
        if size - at < head + length:
            break
        frames.append((first & 0x0F, bool(first & 0x80),
                       buffer[at + head:at + head + length]))
        at += head + length
    return frames, buffer[at:]


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (clients must mask, RFC 6455 5.3)."""
    frame = Frame(Opcode(opcode), payload)
    return frame.serialize(mask=True, extensions=[])


class _Client(asyncio.Protocol):
    """One console connection, lean: the handshake and the frames by hand on an asyncio
    protocol (no task, no message queue, no general parser per connection), so that 1000 of
    them cost the machine little next to the engine they measure. An arrival is stamped as its
    bytes come off the socket."""

    def __init__(self, url: str, origin: str, login: bytes | None, mark: str,
                 log: ClientLog | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.origin = parts.netloc, origin
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        #: None: a socket to the fan-out relay, which takes no login (its URL has the token)
        self.login, self.mark = login, mark
        self.log = log or ClientLog()
        #: the relay named in the login reply: {port, path}
        self.fanout: dict[str, Any] | None = None
        self.logged: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.stopping = False
        self.open = False
        self.key = generate_key()
        self._buffer = b""
        self._parts: list[bytes] = []
        self._close_code = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {self.origin}\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        self._buffer += data
        if not self.open:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4:]
            status = head.split("\r\n", 1)[0]
            if " 101 " not in status + " " or accept_key(self.key) not in head:
                self._login_failed(f"handshake: {status}")
                assert self.transport is not None
                self.transport.close()
                return
            self.open = True
            if self.login is None:
                self.logged.set_result(True)
            else:
                self._send(Opcode.TEXT.value, self.login)
        try:
            frames, self._buffer = split_frames(self._buffer)
        except ValueError as exc:
            self._login_failed(str(exc))
            return
        for opcode, fin, payload in frames:
            if opcode in (Opcode.TEXT.value, Opcode.CONT.value):
                self._parts.append(payload)
                if fin:
                    text = b"".join(self._parts).decode()
                    self._parts = []
                    self._text(text, at)
            elif opcode == Opcode.PING.value:
                self._send(Opcode.PONG.value, payload)
            elif opcode == Opcode.CLOSE.value:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._close_code = f"{code} {payload[2:].decode(errors='replace')}"
                if not self.stopping:
                    self._send(Opcode.CLOSE.value, payload[:2])

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def _text(self, text: str, at: float) -> None:
        if self.logged.done():
            self.log.saw(text, self.mark, at)
            return
        reply = json.loads(text)
        if reply.get("id") != "login":
            return
        self.log.logged_in = reply.get("type") == "result"
        if not self.log.logged_in:
            self.log.close = f"login refused: {text[:200]}"
        else:
            fanout = reply.get("data", {}).get("fanout")
            self.fanout = fanout if isinstance(fanout, dict) else None
        self.logged.set_result(self.log.logged_in)

    def _login_failed(self, why: str) -> None:
        self.log.close = why
        if not self.logged.done():
            self.logged.set_result(False)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.logged.done():
            self._login_failed(f"connection lost before login: {exc}")
        elif not self.stopping and self.log.closed_at is None:
            self.log.closed_at = time.monotonic()
            self.log.close = self._close_code or "dropped"

    def close(self) -> None:
        self.stopping = True
        if self.open:
            self._send(Opcode.CLOSE.value, (1000).to_bytes(2, "big"))
        if self.transport is not None:
            self.transport.close()


class _Clients:
    def __init__(self, args: argparse.Namespace, password: str) -> None:
        self.args = args
        self.login = json.dumps({"v": 1, "id": "login", "type": "login", "agent_id": args.agent,
                                 "password": password}).encode()
        self.clients: list[_Client] = []
        self.lag_ms: list[float] = []

    async def one(self, gate: asyncio.Semaphore) -> bool:
        args = self.args
        loop = asyncio.get_running_loop()
        parsed = urlsplit(args.url)
        client = _Client(args.url, args.origin, self.login, args.mark)
        self.clients.append(client)
        async with gate:
            try:
                await loop.create_connection(lambda: client, parsed.hostname, parsed.port)
                async with asyncio.timeout(60):
                    if not await client.logged:
                        return False
                if client.fanout is None:
                    return True
                # the page's second socket: the relay's port on the same host, the same log
                relay = _Client(f"ws://{parsed.hostname}:{client.fanout['port']}"
                                f"{client.fanout['path']}", args.origin, None, args.mark,
                                client.log)
                self.clients.append(relay)
                await loop.create_connection(lambda: relay, parsed.hostname,
                                             int(client.fanout["port"]))
                async with asyncio.timeout(60):
                    if await relay.logged:
                        return True
                client.log.logged_in = False   # a console without its boards: a failure
                return False
            except (OSError, TimeoutError) as exc:
                client.log.logged_in = False
                client.log.close = f"login: {type(exc).__name__}: {exc}"
                return False

    async def watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_TICK_S)
            self.lag_ms.append(max(0.0, (loop.time() - start - LAG_TICK_S) * 1000))

    async def run(self) -> None:
        args = self.args
        gate = asyncio.Semaphore(LOGIN_CONCURRENCY)
        done = await asyncio.gather(*(self.one(gate) for _ in range(args.count)))
        print(f"ready {sum(done)} {len(done) - sum(done)}", flush=True)
        lag = asyncio.create_task(self.watch_lag())
        cpu0 = time.process_time()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line or line.strip() == b"stop":
                break
        cpu_s = time.process_time() - cpu0
        lag.cancel()
        for client in self.clients:
            client.close()
        await asyncio.sleep(0.5)   # the close frames leave
        logs = list({id(c.log): c.log for c in self.clients}.values())   # one per console
        out = {"clients": [log.as_json() for log in logs], "cpu_s": cpu_s,
               "lag_ms": self.lag_ms}
        await asyncio.to_thread(Path(args.out).write_text, json.dumps(out), encoding="utf-8")
        print("done", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callcenter.bench_console_clients",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--agent", required=True, help="the supervisor's agent id")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mark", required=True, help="the seat whose moves mark each board")
    parser.add_argument("--out", required=True)
    parser.add_argument("--nice", type=int, default=0,
                        help="run this much nicer than the engine (0: as nice)")
    parser.add_argument("--cpus", default="", help="the CPUs to run on (1, 2-3)")
    args = parser.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n")
    if args.nice:
        os.nice(args.nice)
    if args.cpus:
        os.sched_setaffinity(0, parse_cpus(args.cpus))
    raise_nofile(args.count * 2 + 64)   # the console socket and the relay socket
    asyncio.run(_Clients(args, password).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
