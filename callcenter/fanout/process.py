"""The engine's end of the fan-out relay: it starts the relay process and writes the feed.

``start(origins)`` runs ``python -m callcenter.fanout.relay`` and waits for its ``listening``
line; ``allow``/``end``/``push`` write feed lines to its stdin (a pipe write, never a wait:
``push`` is called from the console's push, on the event loop). If the relay dies, it is
started again after a pause, on the same port when the port is fixed, and given what still
holds (the live tokens and the latest pushes: ``FeedState.replay``); consoles reconnect to it
by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from callcenter.errors import FanoutError
from callcenter.fanout.feed import Allow, End, FeedState, Message, Push, encode

__all__ = ["FanoutProcess"]

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 5.0
RESTART_PAUSE_S: Final = 1.0
#: feed bytes waiting for a relay that does not read before the engine says so in its log
BACKLOG_WARN_BYTES: Final = 8 * 1024 * 1024


class FanoutProcess:
    """The relay as a child process of the engine."""

    def __init__(self, host: str, port: int, *, tls_files: tuple[Path, Path] | None = None,
                 loop_choice: str = "auto", nice: int = 0) -> None:
        self.host = host
        self._nice = nice
        self._want_port = port
        self._tls_files = tls_files
        self._loop_choice = loop_choice
        self._origins: list[str] = []
        self.state = FeedState()
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        self._warned_backlog = False
        #: how many times the relay had to be started again (for ``status`` and tests)
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self, origins: Iterable[str]) -> None:
        self._origins = sorted(origins)
        await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._keep_running(),
                                                             name="fanout-relay")

    async def _spawn(self) -> None:
        argv = [sys.executable, "-m", "callcenter.fanout.relay", "--host", self.host,
                "--port", str(self.port or self._want_port), "--loop", self._loop_choice,
                "--nice", str(self._nice)]
        for origin in self._origins:
            argv += ["--origin", origin]
        if self._tls_files is not None:
            argv += ["--cert", str(self._tls_files[0]), "--key", str(self._tls_files[1])]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None and proc.stdin is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await proc.stdout.readline()
        except TimeoutError:
            line = b""
        word, _, port = line.decode(errors="replace").strip().partition(" ")
        if word != "listening" or not port.isdigit():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise FanoutError(f"the fan-out relay did not start on {self.host}:"
                              f"{self.port or self._want_port} (exit {proc.returncode}; its"
                              " log says why)")
        self._proc, self.port = proc, int(port)
        replay = self.state.replay()
        if replay:
            proc.stdin.write(replay)
        log.info("fan-out relay (pid %d) listening on %s:%d", proc.pid, self.host, self.port)

    async def _keep_running(self) -> None:
        while not self._closing:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self._closing:
                return
            log.error("the fan-out relay (pid %d) exited (%s); starting it again", proc.pid,
                      code)
            self._proc = None
            while not self._closing:
                await asyncio.sleep(RESTART_PAUSE_S)
                try:
                    await self._spawn()
                except (FanoutError, OSError) as exc:
                    log.error("%s", exc)
                    continue
                self.restarts += 1
                break

    # -- the feed -----------------------------------------------------------------------------

    def allow(self, token: str, rank: int, agent_id: str) -> None:
        self._send(Allow(token, rank, agent_id))

    def end(self, token: str) -> None:
        self._send(End(token))

    def push(self, rank: int, name: str, text: str) -> None:
        self._send(Push(rank, name, text))

    def _send(self, message: Message) -> None:
        line = encode(message)   # refuses a malformed one before it changes the state
        self.state.apply(message)
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return   # restarting: the replay carries what still holds
        proc.stdin.write(line)
        waiting = proc.stdin.transport.get_write_buffer_size()
        if waiting > BACKLOG_WARN_BYTES and not self._warned_backlog:
            self._warned_backlog = True
            log.warning("the fan-out relay is %d bytes behind the engine", waiting)
        elif waiting == 0:
            self._warned_backlog = False

    async def close(self) -> None:
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()   # the relay ends when its stdin does
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
