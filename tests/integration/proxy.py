"""A loopback TCP proxy for fault tests: records what crosses it, and can go silent.

``blackhole()`` keeps both TCP connections open but forwards nothing: to the client that is a
half-open link, the fault a liveness check must notice.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.connections = 0
        self._silent = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def blackhole(self, on: bool = True) -> None:
        self._silent = on

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            cwriter.close()
            return
        self._writers.update((cwriter, swriter))
        a = asyncio.create_task(self._pump(creader, swriter, self.to_server))
        b = asyncio.create_task(self._pump(sreader, cwriter, self.to_client))
        self._tasks.update((a, b))
        await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        for w in (cwriter, swriter):
            w.close()
            self._writers.discard(w)
        for t in (a, b):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await t
            self._tasks.discard(t)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    record: bytearray) -> None:
        while data := await reader.read(65536):
            if self._silent:
                continue  # swallow: the peer sees an open but mute connection
            record.extend(data)
            writer.write(data)
            await writer.drain()
