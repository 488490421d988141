"""The engine's end of the fan-out relay: it starts the relay process and writes the feed.

``start(origins)`` runs ``python -m callcenter.fanout.relay`` in a session of its own (a Ctrl-C
at the engine's terminal is the engine's to handle; the relay ends when its stdin does) and
waits for its ``listening`` line; ``allow``/``end``/``push`` write feed lines to its stdin (a
pipe write, never a wait: ``push`` is called from the console's push, on the event loop).

What the engine holds for a relay that does not keep up is bounded: past ``BEHIND_BYTES``
waiting in the pipe, pushes are not written but noted (``FeedState``: the latest of each kind);
once the pipe has drained, the latest of each kind is written once. ``A``/``E`` lines are always
written (a login must reach the relay). A relay that has not drained within ``STUCK_S`` is
killed. A relay that dies is started again after a pause, on the same port, and given what
still holds (the live tokens and the latest pushes: ``FeedState.replay``); consoles reconnect
to it by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from callcenter.cpu_affinity import format_cpus
from callcenter.errors import FanoutError
from callcenter.fanout.feed import Allow, End, FeedState, Message, Push, encode

__all__ = ["FanoutProcess"]

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 5.0
RESTART_PAUSE_S: Final = 1.0
#: feed bytes waiting for the relay past which pushes are held back (only the latest is kept)
BEHIND_BYTES: Final = 1024 * 1024
#: how long a relay that reads nothing may hold the feed up before it is killed and restarted
STUCK_S: Final = 10.0


class FanoutProcess:
    """The relay as a child process of the engine."""

    def __init__(self, host: str, port: int, *, tls_files: tuple[Path, Path] | None = None,
                 loop_choice: str = "auto", nice: int = 0,
                 cpus: Iterable[int] | None = None) -> None:
        self.host = host
        self._nice = nice
        self._cpus = format_cpus(cpus) if cpus else ""
        self._want_port = port
        self._tls_files = tls_files
        self._loop_choice = loop_choice
        self._origins: list[str] = []
        self.state = FeedState()
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        #: pushes are held back until the relay has drained the pipe (``_catch_up``)
        self._catching_up: asyncio.Task[None] | None = None
        self._closing = False
        #: how many times the relay had to be started again (for ``status`` and tests)
        self.restarts = 0
        #: pushes not written because the relay was behind (only their latest went)
        self.held_back = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def behind_bytes(self) -> int:
        """Feed bytes written for the relay that it has not read yet."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return 0
        return proc.stdin.transport.get_write_buffer_size()

    async def start(self, origins: Iterable[str]) -> None:
        """Start the relay for pages of ``origins``; ``port`` is its port afterwards."""
        self._origins = sorted(origins)
        await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._keep_running(),
                                                             name="fanout-relay")

    async def _spawn(self) -> None:
        argv = [sys.executable, "-m", "callcenter.fanout.relay", "--host", self.host,
                "--port", str(self.port or self._want_port), "--loop", self._loop_choice,
                "--nice", str(self._nice)]
        if self._cpus:
            argv += ["--cpus", self._cpus]
        for origin in self._origins:
            argv += ["--origin", origin]
        if self._tls_files is not None:
            argv += ["--cert", str(self._tls_files[0]), "--key", str(self._tls_files[1])]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True)
        assert proc.stdout is not None and proc.stdin is not None
        # what still holds goes first, then whatever comes next: the relay reads it all once
        # it listens
        self._proc = proc
        replay = self.state.replay()
        if replay:
            proc.stdin.write(replay)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await proc.stdout.readline()
            word, _, port = line.decode(errors="replace").strip().partition(" ")
            if word != "listening" or not port.isdigit():
                raise FanoutError(f"the fan-out relay did not start on {self.host}:"
                                  f"{self.port or self._want_port} (its log says why)")
        except BaseException:   # cancelled (the engine stopping) included: no relay left over
            self._proc = None
            await asyncio.shield(_kill(proc))
            raise
        self.port = int(port)
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
                except Exception as exc:   # keep trying; the log says why
                    log.error("the fan-out relay could not be started again: %s", exc)
                    continue
                self.restarts += 1
                break

    # -- the feed -----------------------------------------------------------------------------

    def allow(self, token: str, rank: int, agent_id: str) -> None:
        """A console session logged in: its relay sockets may see pushes up to ``rank``."""
        self._send(Allow(token, rank, agent_id))

    def end(self, token: str) -> None:
        """That session ended: the relay closes its sockets and voids its token."""
        self._send(End(token))

    def push(self, rank: int, name: str, text: str) -> None:
        """A state for every session of ``rank`` or above (``name``: which state it is)."""
        try:
            self._send(Push(rank, name, text))
        except FanoutError as exc:
            log.error("%s: not sent to the consoles", exc)

    def _send(self, message: Message) -> None:
        line = encode(message)   # refuses a malformed one before it changes the state
        self.state.apply(message)
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return   # restarting: the replay carries what still holds
        if isinstance(message, Push) and self._catching_up is not None:
            self.held_back += 1
            return
        proc.stdin.write(line)
        if isinstance(message, Push) \
                and proc.stdin.transport.get_write_buffer_size() > BEHIND_BYTES:
            log.warning("the fan-out relay is %d bytes behind: only the latest pushes go to it"
                        " once it has caught up", proc.stdin.transport.get_write_buffer_size())
            self._catching_up = asyncio.get_running_loop().create_task(
                self._catch_up(proc), name="fanout-catch-up")

    async def _catch_up(self, proc: asyncio.subprocess.Process) -> None:
        """Once the relay has read what waits, the latest of each push; killed (and so
        restarted with them) if it reads nothing for ``STUCK_S``."""
        assert proc.stdin is not None
        try:
            async with asyncio.timeout(STUCK_S):
                await proc.stdin.drain()
        except TimeoutError:
            log.error("the fan-out relay (pid %d) read nothing for %.0f s; killing it",
                      proc.pid, STUCK_S)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return
        except ConnectionError:
            return   # it died: the restart replays
        finally:
            self._catching_up = None
        if self._proc is proc and not proc.stdin.is_closing():
            proc.stdin.write(b"".join(encode(p) for p in self.state.latest.values()))
            log.info("the fan-out relay caught up (%d pushes held back)", self.held_back)

    async def close(self) -> None:
        """Stop the relay (its stdin closes: it closes its sockets and exits)."""
        self._closing = True
        for task in (self._watch, self._catching_up):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            await _kill(proc)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
