"""FastAGI over asyncio: the server Asterisk connects to, and the typed ``Channel`` the IVR drives.

This is the thin edge around ``agi_protocol.AgiConnection``. It owns the robustness rules that
panoramisk's FastAGI server lacks: every read is bounded (4 KiB at a time, the environment by
``max_header_bytes``), the environment must arrive within ``header_timeout``, EOF ends a session,
and one bad connection never disturbs another or the event loop.

Given the shared key, the server serves only sessions that prove Asterisk's dialplan opened them
(``agi_auth.verify_session``): anyone else who connects is logged and dropped before any handler
sees what they claim.

Nothing a caller typed is logged: commands are logged by name only, never with arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence

from callcenter.config import AgiSettings
from callcenter.errors import (
    AgiAuthError,
    AgiCommandError,
    AgiHangup,
    AgiProtocolError,
    UnsafeValueError,
)
from callcenter.telephony.agi_auth import verify_session
from callcenter.telephony.agi_protocol import (
    AgiConnection,
    Closed,
    Environment,
    Event,
    HangupNotice,
    NeedData,
    Reply,
)
from callcenter.telephony.host_limits import fd_limit, sessions_for, somaxconn
from callcenter.telephony.values import check_agi_arg

__all__ = ["DEFAULT_ESCAPE_DIGITS", "AgiServer", "Channel", "Handler", "RoundTripObserver"]

log = logging.getLogger(__name__)

READ_CHUNK = 4096
DEFAULT_ESCAPE_DIGITS = "0123456789*#"
#: characters of prompt names in one ``Playback`` list (res_agi reads a command line of 2 KiB)
PLAYLIST_MAX = 1200

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_()]*")
_APP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ESCAPE_DIGITS = re.compile(r"[0-9*#]*")
_DIGITS = re.compile(r"[0-9]+")
_PROMPT_NAME = re.compile(r"[A-Za-z0-9_./-]+")
_DTMF = frozenset("0123456789*#ABCD")
_INT32 = range(-(2**31) + 1, 2**31)

# res_agi runs these on a hung-up ("dead") channel; anything else gets 511 there, so we answer
# AgiHangup ourselves without a round trip.
_DEAD_SAFE = frozenset(
    {"GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "VERBOSE", "HANGUP", "EXEC"}
)

Handler = Callable[["Channel"], Awaitable[None]]
#: told (command name, seconds from writing the command to its reply) after every answered command
RoundTripObserver = Callable[[str, float], None]


class Channel:
    """One AGI session: the caller's channel, as the IVR sees it.

    Commands are serialised: res_agi aborts a playing prompt *without replying* when a new
    command arrives, so a second outstanding command would desynchronise the stream.
    """

    def __init__(
        self,
        environment: Environment,
        connection: AgiConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        reply_timeout: float,
        on_round_trip: RoundTripObserver | None = None,
    ) -> None:
        self._environment = environment
        self._conn = connection
        self._reader = reader
        self._writer = writer
        self._reply_timeout = reply_timeout
        self._on_round_trip = on_round_trip
        self._lock = asyncio.Lock()
        self._hung_up = connection.hangup_received
        self._closed = False
        self._broken = False
        #: commands written so far (``key_tap.py`` matches them to Asterisk's reports)
        self.commands_sent = 0
        self._linkedid: str | None = environment.variables.get("agi_linkedid") or None

    # -- what Asterisk told us up front ---------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return self._environment.variables

    @property
    def script(self) -> str:
        return self._environment.script

    @property
    def arguments(self) -> list[str]:
        return self._environment.arguments

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def channel_name(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def linkedid(self) -> str | None:
        """Known linkedid (from the environment or an earlier ``resolve_linkedid``)."""
        return self._linkedid

    @property
    def caller_id(self) -> str | None:
        return _known(self.env.get("agi_callerid"))

    @property
    def caller_name(self) -> str | None:
        return _known(self.env.get("agi_calleridname"))

    @property
    def dnid(self) -> str | None:
        return _known(self.env.get("agi_dnid"))

    @property
    def language(self) -> str:
        return self.env.get("agi_language") or "en"

    @property
    def hung_up(self) -> bool:
        return self._hung_up or self._closed

    # -- commands --------------------------------------------------------------------------------

    async def answer(self) -> None:
        await self._run("ANSWER", minus_one_is_hangup=True)

    async def hangup(self) -> None:
        """Hang up the channel; a no-op if it is already gone."""
        if self.hung_up:
            return
        try:
            await self._run("HANGUP")
        except AgiHangup:
            pass
        finally:
            self._hung_up = True

    async def stream_file(
        self, name: str, escape_digits: str = DEFAULT_ESCAPE_DIGITS
    ) -> str | None:
        """Play one prompt; return the digit that interrupted it (barge-in), else ``None``.

        Asterisk answers ``result=-1`` both for a missing prompt file and for a hangup during
        playback. Unless the HANGUP notice came first, a ``CHANNEL STATUS`` tells them apart
        (511 on a dead channel): the command after a prompt may be one that works on a dead
        channel (``SET VARIABLE``, ``EXEC Goto``), so a caller gone during the last prompt
        would otherwise be taken for a missing file and, say, queued. A missing file is logged
        and the call goes on.
        """
        check_agi_arg(name, what="AGI argument 'prompt'")
        _check_escape_digits(escape_digits)
        reply = await self._run("STREAM FILE", name, escape_digits)
        code = self._int_result("STREAM FILE", reply)
        if code == -1:
            if not self.hung_up:
                await self._run("CHANNEL STATUS")  # AgiHangup on a dead channel
            if self.hung_up:
                raise AgiHangup("the channel hung up during STREAM FILE")
            log.warning("AGI %s: prompt %r could not be played (missing?)", self.uniqueid, name)
            return None
        return self._digit("STREAM FILE", code)

    async def play(
        self, names: Sequence[str], escape_digits: str = DEFAULT_ESCAPE_DIGITS
    ) -> str | None:
        """Play prompts in order, stopping at the first digit pressed (returned).

        Without escape digits nothing interrupts them, so several prompts go to Asterisk's
        ``Playback`` as one list (``a&b&c``) in one ``EXEC`` and a ``CHANNEL STATUS`` (Playback
        does not tell a hang-up): two round trips, not one a prompt.
        A missing prompt is skipped with Asterisk's own warning, as ``STREAM FILE`` would.
        """
        if not escape_digits and len(names) > 1:
            for playlist in _playlists(names):
                await self.exec("Playback", playlist, "noanswer")
                # Playback answers 0 even when the caller hung up during it; CHANNEL STATUS
                # answers 511 on a dead channel (AgiHangup), as the next STREAM FILE would
                await self._run("CHANNEL STATUS")
            return None
        for name in names:
            digit = await self.stream_file(name, escape_digits)
            if digit is not None:
                return digit
        return None

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        if not _DIGITS.fullmatch(digits):
            raise UnsafeValueError("AGI argument 'digits' must be ASCII digits; refused")
        _check_escape_digits(escape_digits)
        reply = await self._run("SAY DIGITS", digits, escape_digits, minus_one_is_hangup=True)
        return self._digit("SAY DIGITS", self._int_result("SAY DIGITS", reply))

    async def say_number(self, number: int, escape_digits: str = "") -> str | None:
        if number not in _INT32:
            raise UnsafeValueError("AGI argument 'number' is outside the 32-bit range; refused")
        _check_escape_digits(escape_digits)
        reply = await self._run("SAY NUMBER", str(number), escape_digits, minus_one_is_hangup=True)
        return self._digit("SAY NUMBER", self._int_result("SAY NUMBER", reply))

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play ``prompt`` and collect up to ``max_digits`` (``#`` ends input early).

        Returns ``(digits, timed_out)``; ``timed_out`` is true when the caller stopped typing
        before ``max_digits`` or ``#``.
        """
        check_agi_arg(prompt, what="AGI argument 'prompt'")
        if timeout_ms <= 0 or max_digits <= 0:
            raise ValueError("GET DATA needs a positive timeout and digit count")
        reply = await self._run(
            "GET DATA", prompt, str(timeout_ms), str(max_digits), minus_one_is_hangup=True
        )
        digits = reply.result
        if any(char not in _DTMF for char in digits):
            raise AgiProtocolError("AGI GET DATA answered with non-DTMF characters")
        return digits, reply.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait for one digit (``-1`` waits forever); ``None`` on timeout."""
        if timeout_ms < -1:
            raise ValueError("WAIT FOR DIGIT timeout must be -1 or more")
        reply = await self._run("WAIT FOR DIGIT", str(timeout_ms), minus_one_is_hangup=True)
        return self._digit("WAIT FOR DIGIT", self._int_result("WAIT FOR DIGIT", reply))

    async def set_variable(self, name: str, value: str) -> None:
        _check_variable_name(name)
        check_agi_arg(value, what=f"AGI variable {name}")
        await self._run("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        """A channel variable or function (``CHANNEL(linkedid)``); ``None`` when unset."""
        _check_variable_name(name)
        return _variable_value(await self._run("GET VARIABLE", name))

    async def get_full_variable(self, expression: str) -> str | None:
        """Evaluate an expression such as ``${CALLERID(num)}``; ``None`` when unset."""
        check_agi_arg(expression, what="AGI argument 'expression'")
        return _variable_value(await self._run("GET FULL VARIABLE", expression))

    async def resolve_linkedid(self) -> str:
        """The linkedid, asked of Asterisk once when the session did not carry it (our
        dialplan passes it with the session token: ``agi_auth.py``)."""
        if self._linkedid is None:
            self._linkedid = await self.get_variable("CHANNEL(linkedid)") or self.uniqueid
        return self._linkedid

    async def exec(self, app: str, *args: str) -> int:
        """Run a dialplan application; returns its result (``-1`` from an app is a hangup)."""
        if not _APP_NAME.fullmatch(app):
            raise UnsafeValueError("AGI EXEC application name is not a plain word; refused")
        for index, arg in enumerate(args, start=1):
            check_agi_arg(arg, what=f"AGI EXEC {app} argument {index}")
            if "," in arg:
                # the arguments are joined with ","; one inside would add an argument
                raise UnsafeValueError(f"AGI EXEC {app} argument {index} contains ','; refused")
        reply = await self._run("EXEC", app, ",".join(args), minus_one_is_hangup=True)
        code = self._int_result("EXEC", reply)
        if code == -2:
            raise AgiCommandError("EXEC", reply.code, f"application {app} not found")
        return code

    async def verbose(self, message: str, level: int = 1) -> None:
        check_agi_arg(message, what="AGI argument 'message'")
        await self._run("VERBOSE", message, str(level))

    # -- the command round trip -----------------------------------------------------------------

    async def _run(self, command: str, *args: str, minus_one_is_hangup: bool = False) -> Reply:
        reply = await self._round_trip(command, args)
        if reply.code == 511:
            self._hung_up = True
            raise AgiHangup(f"AGI {command}: the channel is dead")
        if reply.code != 200:
            message = (reply.data or "").split("\n", 1)[0]
            raise AgiCommandError(command, reply.code, message)
        if minus_one_is_hangup and reply.result == "-1":
            self._hung_up = True
            raise AgiHangup(f"AGI {command}: the channel hung up")
        if self._hung_up and command not in _DEAD_SAFE:
            raise AgiHangup(f"AGI {command}: the channel hung up")
        return reply

    async def _round_trip(self, command: str, args: Sequence[str]) -> Reply:
        async with self._lock:
            self._check_usable(command)
            payload = self._conn.send_command(command, *args)
            log.debug("AGI %s: %s", self.uniqueid, command)
            self.commands_sent += 1
            in_sync = False
            started = time.perf_counter()
            try:
                await self._write(payload)
                try:
                    async with asyncio.timeout(self._reply_timeout):
                        reply = await self._read_reply()
                except TimeoutError:
                    raise AgiProtocolError(
                        f"no reply to AGI {command} within {self._reply_timeout:g} s"
                    ) from None
                in_sync = True
                if self._on_round_trip is not None:
                    self._on_round_trip(command, time.perf_counter() - started)
            finally:
                # A command without its reply (timeout, cancellation, lost link) leaves the stream
                # position unknown: nothing more can be sent safely.
                if not in_sync:
                    self._broken = True
            return reply

    def _check_usable(self, command: str) -> None:
        if self._closed:
            raise AgiHangup("the AGI connection is closed")
        if self._broken:
            raise AgiProtocolError("the AGI connection is unusable after an earlier failure")
        if self._hung_up and command not in _DEAD_SAFE:
            raise AgiHangup(f"AGI {command}: the channel hung up")

    async def _write(self, payload: bytes) -> None:
        try:
            self._writer.write(payload)
            await self._writer.drain()
        except ConnectionError as exc:
            self._closed = True
            raise AgiHangup("the AGI connection was lost") from exc

    async def _read_reply(self) -> Reply:
        while True:
            event = await self._next_event()
            if isinstance(event, Reply):
                return event
            if isinstance(event, HangupNotice):
                self._hung_up = True  # the reply still follows; keep reading to stay in sync
                continue
            if isinstance(event, Closed):
                self._closed = True
                raise AgiHangup("Asterisk closed the AGI connection")
            raise AgiProtocolError("FastAGI peer sent an unexpected event")

    async def _next_event(self) -> Event:
        while True:
            event = self._conn.next_event()
            if not isinstance(event, NeedData):
                return event
            try:
                data = await self._reader.read(READ_CHUNK)
            except ConnectionError:
                data = b""
            self._conn.receive_data(data)

    # -- reply helpers ---------------------------------------------------------------------------

    @staticmethod
    def _int_result(command: str, reply: Reply) -> int:
        value = reply.numeric_result
        if value is None:
            raise AgiProtocolError(f"AGI {command} answered with a non-numeric result")
        return value

    @staticmethod
    def _digit(command: str, code: int) -> str | None:
        if code == 0:
            return None
        char = chr(code) if 0 < code < 0x110000 else ""
        if char not in _DTMF:
            raise AgiProtocolError(f"AGI {command} answered with a result that is not a digit")
        return char


def _playlists(names: Sequence[str]) -> list[str]:
    """``Playback`` arguments (``a&b&c``) for ``names``, each well inside res_agi's line."""
    lists: list[list[str]] = [[]]
    size = 0
    for name in names:
        check_agi_arg(name, what="AGI argument 'prompt'")
        if not _PROMPT_NAME.fullmatch(name):
            raise UnsafeValueError("a prompt name in a Playback list must be letters, digits,"
                                   " '_', '-', '.' and '/'; refused")
        if lists[-1] and size + len(name) + 1 > PLAYLIST_MAX:
            lists.append([])
            size = 0
        lists[-1].append(name)
        size += len(name) + 1
    return ["&".join(names) for names in lists]


def _known(value: str | None) -> str | None:
    # res_agi writes "unknown" for an absent caller ID, DNID or RDNIS
    return None if not value or value == "unknown" else value


def _check_variable_name(name: str) -> None:
    if not _VARIABLE_NAME.fullmatch(name):
        raise UnsafeValueError("AGI variable name must match [A-Za-z_][A-Za-z0-9_()]*; refused")


def _check_escape_digits(digits: str) -> None:
    if not _ESCAPE_DIGITS.fullmatch(digits):
        raise UnsafeValueError("AGI argument 'escape_digits' may hold only 0-9, * and #; refused")


def _variable_value(reply: Reply) -> str | None:
    if reply.result != "1":
        return None
    return reply.data if reply.data is not None else ""


class AgiServer:
    """Accepts FastAGI connections and runs ``handler(channel)`` for each."""

    def __init__(
        self,
        settings: AgiSettings,
        handler: Handler,
        on_round_trip: RoundTripObserver | None = None,
        *,
        key: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``key``: the session key shared with the dialplan; ``None`` serves every session
        (only for tests of this edge alone: the engine always passes its key)."""
        self._settings = settings
        self._handler = handler
        self._on_round_trip = on_round_trip
        self._key = key
        self._clock = clock
        #: sessions dropped because they could not prove their call
        self.refused_sessions = 0
        #: connections refused because ``max_sessions`` were active (or while closing)
        self.refused_busy = 0
        #: connections taken as sessions (counted before the environment is read and checked)
        self.sessions_started = 0
        #: the session cap and accept backlog in force (``start``: the settings', else the
        #: machine's)
        self.max_sessions = settings.max_sessions or sessions_for(fd_limit())
        self.backlog = settings.backlog or somaxconn()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._closing = False

    async def __aenter__(self) -> AgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The bound port (useful when ``settings.port`` is 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the FastAGI server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def active_sessions(self) -> int:
        return self._active

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the FastAGI server is already started")
        self._closing = False
        # we only read(n), so the limit only caps what the stream buffers before pausing the socket
        limit = max(READ_CHUNK, self._settings.max_line_bytes)

        def protocol() -> _StreamProtocol:
            return _StreamProtocol(asyncio.StreamReader(limit=limit), self._on_connection)

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._settings.host, self._settings.port, backlog=self.backlog)
        log.info("FastAGI listening on %s:%d (up to %d sessions, backlog %d)",
                 self._settings.host, self.port, self.max_sessions, self.backlog)

    async def close(self) -> None:
        """Stop accepting, cancel every session and wait for all of them to finish."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - asyncio always runs the callback in a task
            writer.close()
            return
        self._tasks.add(task)
        try:
            if self._closing:
                self.refused_busy += 1
                return
            if self._active >= self.max_sessions:
                self.refused_busy += 1
                log.warning(
                    "FastAGI connection from %s refused: %d sessions active (max_sessions;"
                    " %d refused so far)",
                    _peer(writer),
                    self._active,
                    self.refused_busy,
                )
                return
            self._active += 1
            self.sessions_started += 1
            try:
                await self._session(reader, writer)
            finally:
                self._active -= 1
        finally:
            try:
                await _close_quietly(writer)
            finally:
                self._tasks.discard(task)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = AgiConnection(
            max_header_bytes=self._settings.max_header_bytes,
            max_line_bytes=self._settings.max_line_bytes,
        )
        environment = await self._read_environment(connection, reader, _peer(writer))
        if environment is None:
            return
        environment = self._verified(environment, _peer(writer))
        if environment is None:
            return
        channel = Channel(
            environment,
            connection,
            reader,
            writer,
            reply_timeout=self._settings.reply_timeout,
            on_round_trip=self._on_round_trip,
        )
        await self._run_handler(channel)

    def _verified(self, environment: Environment, peer: str) -> Environment | None:
        """The environment with the token arguments removed, or ``None`` for an impostor.
        Its ``agi_linkedid`` is the one the token proves, or none: Asterisk sends no such
        line, so one from the peer is dropped (the session then asks Asterisk)."""
        variables = {k: v for k, v in environment.variables.items() if k != "agi_linkedid"}
        if self._key is None:
            return dataclasses.replace(environment, variables=variables)
        try:
            proof = verify_session(
                self._key, script=environment.script,
                uniqueid=variables.get("agi_uniqueid", ""),
                channel=variables.get("agi_channel", ""),
                arguments=environment.arguments, now=self._clock(),
                max_age_s=self._settings.token_max_age_s)
        except AgiAuthError as exc:
            self.refused_sessions += 1
            log.warning("FastAGI session from %s refused (script %r, claims channel %r): %s",
                        peer, environment.script[:80], variables.get("agi_channel", "")[:80], exc)
            return None
        if proof.linkedid is not None:
            variables["agi_linkedid"] = proof.linkedid
        return dataclasses.replace(environment, arguments=proof.arguments, variables=variables)

    async def _read_environment(
        self, connection: AgiConnection, reader: asyncio.StreamReader, peer: str
    ) -> Environment | None:
        try:
            async with asyncio.timeout(self._settings.header_timeout):
                while True:
                    event = connection.next_event()
                    if isinstance(event, Environment):
                        return event
                    if isinstance(event, Closed):
                        log.info("FastAGI connection from %s closed before its environment", peer)
                        return None
                    connection.receive_data(await reader.read(READ_CHUNK))
        except TimeoutError:
            log.warning(
                "FastAGI connection from %s dropped: no environment within %g s",
                peer,
                self._settings.header_timeout,
            )
        except AgiProtocolError as exc:
            log.warning("FastAGI connection from %s dropped: %s", peer, exc)
        except ConnectionError as exc:
            log.info("FastAGI connection from %s lost: %s", peer, type(exc).__name__)
        return None

    async def _run_handler(self, channel: Channel) -> None:
        try:
            await self._handler(channel)
        except AgiHangup:
            log.debug("AGI %s ended by hangup", channel.uniqueid)
        except AgiProtocolError as exc:
            log.warning("AGI %s ended: %s", channel.uniqueid, exc)
        except Exception:
            log.exception("AGI handler for %s (script %r) failed", channel.uniqueid, channel.script)


class _StreamProtocol(asyncio.StreamReaderProtocol, asyncio.BufferedProtocol):
    """``asyncio.start_server``'s protocol, reading into a buffer of its own: for a plain
    protocol asyncio allocates 256 KiB per read, ~8 us a read on these machines against ~1 us,
    and a FastAGI reply is a line."""

    def __init__(self, reader: asyncio.StreamReader,
                 connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                     Awaitable[None]]) -> None:
        super().__init__(reader, connected)
        self._buffer = bytearray(READ_CHUNK)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(memoryview(self._buffer)[:nbytes]))


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def _close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):  # a peer reset still leaves the socket closed
        await writer.wait_closed()
