"""The FastAGI server on real loopback sockets, with the tests playing Asterisk's side.

No Asterisk here: each test opens TCP connections to the server and speaks (or abuses) FastAGI.
Waits are events with deadlines; the only sleeps pace the slow client and the liveness ticker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.config import AgiSettings
from callcenter.errors import AgiCommandError, AgiHangup, AgiProtocolError, UnsafeValueError
from callcenter.telephony import agi as agi_module
from callcenter.telephony import host_limits
from callcenter.telephony.agi import READ_CHUNK, AgiServer, Channel
from callcenter.telephony.agi_auth import session_mac
from callcenter.telephony.agi_protocol import AgiConnection

DEADLINE = 10.0

Handler = Callable[[Channel], Awaitable[None]]
StartServer = Callable[..., Awaitable[AgiServer]]


def env(uniqueid: str, *args: str) -> bytes:
    lines = [
        "agi_network: yes",
        "agi_network_script: hotline",
        "agi_request: agi://127.0.0.1:4573/hotline",
        "agi_channel: Local/9500@hotline-00000001;2",
        "agi_language: en",
        f"agi_uniqueid: {uniqueid}",
        "agi_callerid: 13800138000",
        "agi_calleridname: unknown",
        "agi_dnid: 9500",
        "agi_context: hotline",
        "agi_extension: 9500",
        "agi_priority: 2",
        *(f"agi_arg_{i}: {arg}" for i, arg in enumerate(args, start=1)),
    ]
    return ("\n".join(lines) + "\n\n").encode()


class FakeAsterisk:
    """The Asterisk end of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def expect(self, command: bytes, reply: bytes = b"") -> None:
        line = await asyncio.wait_for(self.reader.readline(), DEADLINE)
        assert line == command
        if reply:
            await self.send(reply)

    async def expect_eof(self) -> None:
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(self.reader.read(), DEADLINE) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def fake_asterisk(port: int) -> AsyncIterator[FakeAsterisk]:
    fake = await FakeAsterisk.connect(port)
    try:
        yield fake
    finally:
        await fake.close()


async def normal_session(port: int, uniqueid: str) -> None:
    """A well-behaved call: environment, ANSWER, then the server ends the session."""
    async with fake_asterisk(port) as fake:
        await fake.send(env(uniqueid))
        await fake.expect(b"ANSWER\n", b"200 result=0\n")
        await fake.expect_eof()


async def wait_until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not predicate():
            await asyncio.sleep(0.01)


class Ticker:
    """Counts 10 ms sleeps: if the loop froze, it would stop counting."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        return self

    async def repeat_until_ticked(
        self, abuse: Callable[[], Awaitable[object]], ticks: int = 3
    ) -> int:
        """Run ``abuse`` over and over until the ticker ticked ``ticks`` more times meanwhile."""
        goal, rounds = self.ticks + ticks, 0
        async with asyncio.timeout(DEADLINE):
            while self.ticks < goal:
                await abuse()
                rounds += 1
        return rounds

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Answerer:
    """A handler that answers and records which calls it served."""

    def __init__(self) -> None:
        self.served: list[str] = []

    async def __call__(self, channel: Channel) -> None:
        await channel.answer()
        self.served.append(channel.uniqueid)


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    servers: list[AgiServer] = []

    async def start(handler: Handler, key: str | None = None, **settings: Any) -> AgiServer:
        server = AgiServer(AgiSettings(host="127.0.0.1", port=0, **settings), handler, key=key)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


# -- the normal case ----------------------------------------------------------------------------


async def test_normal_session_round_trip(start_server: StartServer) -> None:
    results: dict[str, object] = {}

    async def handler(channel: Channel) -> None:
        results["env"] = (channel.script, channel.arguments, channel.uniqueid)
        results["ids"] = (channel.caller_id, channel.caller_name, channel.dnid, channel.language)
        await channel.answer()
        results["barge_in"] = await channel.stream_file("hotline/welcome")
        results["get_data"] = await channel.get_data("hotline/enter-account", 5000, 8)
        results["empty"] = await channel.get_data("hotline/enter-pin", 3000, 6)
        results["digit"] = await channel.wait_for_digit(2000)
        results["var"] = await channel.get_variable("CALLERID(name)")
        results["unset"] = await channel.get_variable("NOPE")
        results["linkedid"] = await channel.resolve_linkedid()
        await channel.set_variable("IVR_RESULT", "ok")
        results["exec"] = await channel.exec("Playback", "beep", "noanswer")
        await channel.say_digits("95", "#")
        await channel.hangup()

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("1718000000.1", "95", "zh"))
        await fake.expect(b"ANSWER\n", b"200 result=0\n")
        await fake.expect(
            b'STREAM FILE "hotline/welcome" "0123456789*#"\n', b"200 result=49 endpos=8000\n"
        )
        await fake.expect(
            b'GET DATA "hotline/enter-account" "5000" "8"\n', b"200 result=12345678\n"
        )
        await fake.expect(b'GET DATA "hotline/enter-pin" "3000" "6"\n', b"200 result= (timeout)\n")
        await fake.expect(b'WAIT FOR DIGIT "2000"\n', b"200 result=35\n")
        await fake.expect(b'GET VARIABLE "CALLERID(name)"\n', b"200 result=1 (Zhang (San))\n")
        await fake.expect(b'GET VARIABLE "NOPE"\n', b"200 result=0\n")
        await fake.expect(b'GET VARIABLE "CHANNEL(linkedid)"\n', b"200 result=1 (1718000000.0)\n")
        await fake.expect(b'SET VARIABLE "IVR_RESULT" "ok"\n', b"200 result=1\n")
        await fake.expect(b'EXEC "Playback" "beep,noanswer"\n', b"200 result=0\n")
        await fake.expect(b'SAY DIGITS "95" "#"\n', b"200 result=0\n")
        await fake.expect(b"HANGUP\n", b"200 result=1\nHANGUP\n")
        await fake.expect_eof()

    assert results == {
        "env": ("hotline", ["95", "zh"], "1718000000.1"),
        "ids": ("13800138000", None, "9500", "en"),
        "barge_in": "1",
        "get_data": ("12345678", False),
        "empty": ("", True),
        "digit": "#",
        "var": "Zhang (San)",
        "unset": None,
        "linkedid": "1718000000.0",
        "exec": 0,
    }
    await wait_until(lambda: server.active_sessions == 0)


async def test_round_trip_observer_sees_each_answered_command() -> None:
    seen: list[tuple[str, float]] = []

    async def handler(channel: Channel) -> None:
        await channel.answer()
        await channel.get_variable("CHANNEL(linkedid)")
        await channel.answer()  # never answered: no round trip to report

    settings = AgiSettings(host="127.0.0.1", port=0, reply_timeout=0.3)
    server = AgiServer(settings, handler, on_round_trip=lambda name, s: seen.append((name, s)),
                       key=None)
    async with server, fake_asterisk(server.port) as fake:
        await fake.send(env("rt"))
        await fake.expect(b"ANSWER\n", b"200 result=0\n")
        await fake.expect(b'GET VARIABLE "CHANNEL(linkedid)"\n', b"200 result=1 (rt)\n")
        await fake.expect(b"ANSWER\n")
        await fake.expect_eof()
    # names only, never arguments; durations are measured, not asserted
    assert [name for name, _ in seen] == ["ANSWER", "GET VARIABLE"]
    assert all(isinstance(s, float) and s >= 0 for _, s in seen)


async def test_command_errors_are_typed(start_server: StartServer) -> None:
    outcomes: list[object] = []

    async def handler(channel: Channel) -> None:
        for call in (
            lambda: channel.exec("NoSuchApp"),
            lambda: channel.answer(),
            lambda: channel.stream_file("x"),
        ):
            try:
                await call()
            except AgiCommandError as exc:
                outcomes.append(exc.code)
        outcomes.append(await channel.stream_file("missing-prompt"))

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("2"))
        await fake.expect(b'EXEC "NoSuchApp" ""\n', b"200 result=-2\n")
        await fake.expect(b"ANSWER\n", b"510 Invalid or unknown command\n")
        await fake.expect(
            b'STREAM FILE "x" "0123456789*#"\n',
            b"520-Invalid command syntax.  Proper usage follows:\n"
            b" Usage: STREAM FILE <filename> <escape digits> [sample offset]\n"
            b"520 End of proper usage.\n",
        )
        # a missing prompt: -1, and the channel is up (CHANNEL STATUS 6), so the call goes on
        await fake.expect(
            b'STREAM FILE "missing-prompt" "0123456789*#"\n', b"200 result=-1 endpos=0\n"
        )
        await fake.expect(b"CHANNEL STATUS\n", b"200 result=6\n")
        await fake.expect_eof()
    assert outcomes == [200, 510, 520, None]


async def test_hang_up_during_a_prompt_is_told_from_a_missing_prompt(
        start_server: StartServer) -> None:
    """STREAM FILE answers -1 for both; without a HANGUP notice CHANNEL STATUS tells: 511 is a
    dead channel, so the flow stops there instead of going on (to queue a caller gone)."""
    outcomes: list[object] = []

    async def handler(channel: Channel) -> None:
        try:
            await channel.stream_file("hotline/transfer")
        except AgiHangup:
            outcomes.append("hangup")
        outcomes.append(channel.hung_up)

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("2"))
        await fake.expect(
            b'STREAM FILE "hotline/transfer" "0123456789*#"\n', b"200 result=-1 endpos=0\n"
        )
        await fake.expect(b"CHANNEL STATUS\n", b"511 Command Not Permitted on a dead channel "
                                                 b"or intercept routine\n")
        await fake.expect_eof()
    assert outcomes == ["hangup", True]


async def test_prompts_without_escape_digits_play_in_one_playback(
        start_server: StartServer) -> None:
    """Nothing can interrupt them, so they go as one list: one round trip, not one a prompt;
    a list longer than res_agi's line is cut in two; '&' or ',' in a name is refused; a hang-up
    during the list (Playback answers 0 all the same) is found by CHANNEL STATUS."""
    done: list[object] = []
    long_names = [f"callcenter/zh/digit_{'x' * 90}{i}" for i in range(14)]

    async def handler(channel: Channel) -> None:
        done.append(await channel.play(["a/you_entered", "a/1", "a/goodbye"], ""))
        done.append(await channel.play(["a/only"], ""))
        await channel.play(long_names, "")
        with pytest.raises(UnsafeValueError):
            await channel.play(["a", "b&c"], "")
        with pytest.raises(AgiHangup):
            await channel.play(["a", "b"], "")

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("7"))
        await fake.expect(b'EXEC "Playback" "a/you_entered&a/1&a/goodbye,noanswer"\n',
                          b"200 result=0\n")
        await fake.expect(b"CHANNEL STATUS\n", b"200 result=6\n")
        await fake.expect(b'STREAM FILE "a/only" ""\n', b"200 result=0 endpos=8000\n")
        first = "&".join(long_names[:10]).encode()
        await fake.expect(b'EXEC "Playback" "' + first + b',noanswer"\n', b"200 result=0\n")
        await fake.expect(b"CHANNEL STATUS\n", b"200 result=6\n")
        rest = "&".join(long_names[10:]).encode()
        await fake.expect(b'EXEC "Playback" "' + rest + b',noanswer"\n', b"200 result=0\n")
        await fake.expect(b"CHANNEL STATUS\n", b"200 result=6\n")
        # the caller hangs up during the list: Playback still answers 0, the status tells
        await fake.expect(b'EXEC "Playback" "a&b,noanswer"\n', b"200 result=0\n")
        await fake.expect(b"CHANNEL STATUS\n",
                          b"511 Command Not Permitted on a dead channel or intercept routine\n")
        await fake.expect_eof()
    assert done == [None, None]


async def test_unsafe_values_are_refused_before_sending(start_server: StartServer) -> None:
    refused: list[str] = []

    async def handler(channel: Channel) -> None:
        for call in (
            lambda: channel.set_variable("X", "1\nEXEC System"),
            lambda: channel.set_variable("BAD NAME", "1"),
            lambda: channel.exec("Dial", "PJSIP/1,30"),
            lambda: channel.stream_file('a" "b'),
            lambda: channel.say_digits("12a"),
            lambda: channel.stream_file("x", escape_digits="1\n"),
        ):
            with pytest.raises(UnsafeValueError) as info:
                await call()
            refused.append(str(info.value))
        await channel.answer()

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("3"))
        # the first thing on the wire is the one safe command
        await fake.expect(b"ANSWER\n", b"200 result=0\n")
        await fake.expect_eof()
    assert len(refused) == 6
    assert not any("System" in message for message in refused)


# -- hangups ------------------------------------------------------------------------------------


async def test_client_hangs_up_mid_command(start_server: StartServer) -> None:
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(channel: Channel) -> None:
        await channel.answer()
        try:
            await channel.stream_file("hotline/welcome")
        except AgiHangup as exc:
            outcome.set_result(exc)
            raise

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("4"))
        await fake.expect(b"ANSWER\n", b"200 result=0\n")
        await fake.expect(b'STREAM FILE "hotline/welcome" "0123456789*#"\n')
    assert isinstance(await asyncio.wait_for(outcome, DEADLINE), AgiHangup)
    await wait_until(lambda: server.active_sessions == 0)


async def test_hangup_notice_then_511(start_server: StartServer) -> None:
    seen: list[object] = []

    async def handler(channel: Channel) -> None:
        with pytest.raises(AgiHangup):
            await channel.stream_file("hotline/welcome")
        seen.append(channel.hung_up)
        with pytest.raises(AgiHangup):  # no round trip: a dead channel cannot play
            await channel.wait_for_digit(1000)
        # variables still work on a dead channel
        seen.append(await channel.get_variable("DIALSTATUS"))
        await channel.hangup()  # a no-op now

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("5"))
        await fake.expect(
            b'STREAM FILE "hotline/welcome" "0123456789*#"\n',
            b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n",
        )
        await fake.expect(b'GET VARIABLE "DIALSTATUS"\n', b"200 result=1 (ANSWER)\n")
        await fake.expect_eof()
    assert seen == [True, "ANSWER"]
    await wait_until(lambda: server.active_sessions == 0)


async def test_minus_one_means_hangup(start_server: StartServer) -> None:
    caught: list[str] = []

    async def handler(channel: Channel) -> None:
        try:
            await channel.get_data("hotline/enter-pin", 5000, 6)
        except AgiHangup:
            caught.append("get_data")
            raise

    server = await start_server(handler)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("6"))
        await fake.expect(b'GET DATA "hotline/enter-pin" "5000" "6"\n', b"200 result=-1\n")
        await fake.expect_eof()
    assert caught == ["get_data"]


async def test_reply_timeout_breaks_the_session(start_server: StartServer) -> None:
    errors: list[type[BaseException]] = []

    async def handler(channel: Channel) -> None:
        for _ in range(2):
            try:
                await channel.answer()
            except AgiProtocolError as exc:
                errors.append(type(exc))

    server = await start_server(handler, reply_timeout=0.3)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("7"))
        await fake.expect(b"ANSWER\n")  # and never answer
        await fake.expect_eof()
    # the second ANSWER was never sent: the stream position is unknown after a lost reply
    assert errors == [AgiProtocolError, AgiProtocolError]


# -- abuse --------------------------------------------------------------------------------------


async def test_bare_connect_and_close_does_not_stop_the_server(start_server: StartServer) -> None:
    answerer = Answerer()
    server = await start_server(answerer)

    async def connect_and_close() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.close()
        await writer.wait_closed()

    async with Ticker() as ticker:
        # panoramisk's server froze the loop on the first one; here the ticker keeps ticking
        assert await ticker.repeat_until_ticked(connect_and_close) >= 1
        await asyncio.wait_for(normal_session(server.port, "after-bare"), DEADLINE)
    assert answerer.served == ["after-bare"]
    await wait_until(lambda: server.active_sessions == 0)


async def test_slow_client_is_dropped_while_others_are_served(start_server: StartServer) -> None:
    answerer = Answerer()
    server = await start_server(answerer, header_timeout=1.0)
    dropped = asyncio.Event()

    async def slow_client() -> None:
        async with fake_asterisk(server.port) as fake:

            async def watch_eof() -> None:
                with contextlib.suppress(ConnectionError):
                    await fake.reader.read()
                dropped.set()

            watcher = asyncio.create_task(watch_eof())
            try:
                for byte in env("slow"):
                    if dropped.is_set():
                        return
                    try:
                        await fake.send(bytes([byte]))
                    except ConnectionError:
                        return
                    await asyncio.sleep(0.2)  # pacing the slow client, not waiting for effects
            finally:
                await asyncio.wait_for(watcher, DEADLINE)

    async with Ticker() as ticker:
        slow = asyncio.create_task(slow_client())
        await asyncio.wait_for(normal_session(server.port, "fast"), DEADLINE)
        assert not dropped.is_set()  # the fast call completed DURING the slow one
        await asyncio.wait_for(dropped.wait(), DEADLINE)
        await asyncio.wait_for(slow, DEADLINE)
    assert answerer.served == ["fast"]
    assert ticker.ticks >= 3
    await wait_until(lambda: server.active_sessions == 0)


async def test_ten_megabyte_header_is_dropped_after_a_bounded_read(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections: list[AgiConnection] = []

    class RecordingConnection(AgiConnection):
        def __init__(self, **kwargs: int) -> None:
            super().__init__(**kwargs)
            connections.append(self)

    monkeypatch.setattr(agi_module, "AgiConnection", RecordingConnection)
    answerer = Answerer()
    server = await start_server(answerer, max_header_bytes=16 * 1024)

    async def flood() -> None:
        sent = 0
        chunk = b"agi_padding: " + b"x" * (64 * 1024 - 14) + b"\n"
        async with fake_asterisk(server.port) as fake:
            with contextlib.suppress(ConnectionError):
                while sent < 10 * 1024 * 1024:
                    await fake.send(chunk)
                    sent += len(chunk)
        assert sent < 10 * 1024 * 1024  # the server hung up long before the end

    async with Ticker() as ticker:
        flooder = asyncio.create_task(flood())
        await asyncio.wait_for(normal_session(server.port, "normal"), DEADLINE)
        await asyncio.wait_for(flooder, DEADLINE)
        floods = await ticker.repeat_until_ticked(flood)
    assert answerer.served == ["normal"]
    flooded = [c for c in connections if c.bytes_received > 1024]
    assert len(flooded) == 1 + floods
    assert all(c.bytes_received <= 16 * 1024 + READ_CHUNK for c in flooded)
    await wait_until(lambda: server.active_sessions == 0)


async def test_abuse_all_at_once_keeps_the_loop_alive(start_server: StartServer) -> None:
    answerer = Answerer()
    server = await start_server(answerer, header_timeout=0.5)

    async def garbage() -> None:
        async with fake_asterisk(server.port) as fake:
            with contextlib.suppress(ConnectionError):
                await fake.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await fake.expect_eof()

    async def silent() -> None:
        async with fake_asterisk(server.port) as fake:
            await fake.expect_eof()  # the server gives up after header_timeout

    async with Ticker() as ticker:
        await asyncio.wait_for(
            asyncio.gather(
                *(garbage() for _ in range(10)),
                *(silent() for _ in range(10)),
                *(normal_session(server.port, f"n{i}") for i in range(10)),
            ),
            DEADLINE,
        )
    assert sorted(answerer.served) == sorted(f"n{i}" for i in range(10))
    assert ticker.ticks >= 3
    await wait_until(lambda: server.active_sessions == 0)


# -- server lifecycle ---------------------------------------------------------------------------


async def test_handler_exception_is_logged_and_server_continues(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def handler(channel: Channel) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("flow bug")
        await channel.answer()

    server = await start_server(handler)
    with caplog.at_level(logging.ERROR, logger="callcenter.telephony.agi"):
        async with fake_asterisk(server.port) as fake:
            await fake.send(env("boom"))
            await fake.expect_eof()
        await asyncio.wait_for(normal_session(server.port, "next"), DEADLINE)
    assert calls == 2
    assert any(r.exc_info and "flow bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_argument_values_are_never_logged(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(channel: Channel) -> None:
        pin, _ = await channel.get_data("hotline/enter-pin", 5000, 6)
        await channel.set_variable("PIN_HASH", "hash-" + pin)

    server = await start_server(handler)
    with caplog.at_level(logging.DEBUG):
        async with fake_asterisk(server.port) as fake:
            await fake.send(env("log"))
            await fake.expect(b'GET DATA "hotline/enter-pin" "5000" "6"\n', b"200 result=935172\n")
            await fake.expect(b'SET VARIABLE "PIN_HASH" "hash-935172"\n', b"200 result=1\n")
            await fake.expect_eof()
    assert "GET DATA" in caplog.text
    assert "935172" not in caplog.text


async def test_max_sessions_refuses_extra_connections(start_server: StartServer) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def handler(channel: Channel) -> None:
        entered.set()
        await release.wait()

    server = await start_server(handler, max_sessions=1)
    async with fake_asterisk(server.port) as first:
        await first.send(env("first"))
        await asyncio.wait_for(entered.wait(), DEADLINE)
        assert server.active_sessions == 1
        async with fake_asterisk(server.port) as second:
            await second.expect_eof()  # refused: closed without a word
        assert server.refused_busy == 1
        release.set()
        await first.expect_eof()
    await wait_until(lambda: server.active_sessions == 0)


def test_the_session_cap_and_backlog_follow_the_machine_unless_set(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unset, the cap follows the descriptor limit (less a reserve) and the backlog the
    kernel's somaxconn; set, the settings win."""
    async def handler(channel: Channel) -> None:
        return None

    monkeypatch.setattr("callcenter.telephony.agi.fd_limit", lambda: 65536)
    monkeypatch.setattr("callcenter.telephony.agi.somaxconn", lambda: 8192)
    auto = AgiServer(AgiSettings(host="127.0.0.1", port=0), handler, key=None)
    assert (auto.max_sessions, auto.backlog) == (65536 - host_limits.RESERVED_FDS, 8192)
    fixed = AgiServer(AgiSettings(host="127.0.0.1", port=0, max_sessions=10, backlog=50),
                      handler, key=None)
    assert (fixed.max_sessions, fixed.backlog) == (10, 50)
    somax = tmp_path / "somaxconn"
    somax.write_text("4096\n")
    assert host_limits.somaxconn(somax) == 4096
    assert host_limits.somaxconn(tmp_path / "missing") == host_limits.DEFAULT_SOMAXCONN


def test_the_descriptor_limit_is_raised_to_the_hard_one() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
            assert host_limits.raise_fd_limit() == hard
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_close_cancels_sessions_and_leaves_no_tasks() -> None:
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(channel: Channel) -> None:
        entered.set()
        try:
            await channel.answer()  # never answered
        except asyncio.CancelledError:
            cancelled.set()
            raise

    before = asyncio.all_tasks()
    server = AgiServer(AgiSettings(host="127.0.0.1", port=0), handler, key=None)
    await server.start()
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("stuck"))
        await fake.expect(b"ANSWER\n")
        await asyncio.wait_for(entered.wait(), DEADLINE)
        await asyncio.wait_for(server.close(), DEADLINE)
        assert cancelled.is_set()
        assert server.active_sessions == 0
        assert asyncio.all_tasks() == before
        await fake.expect_eof()
    with pytest.raises(RuntimeError):
        _ = server.port


# -- session proof (agi_auth) ---------------------------------------------------------------------

KEY = "k" * 48
CHANNEL = "Local/9500@hotline-00000001;2"


def token(uniqueid: str, *, at: float | None = None, script: str = "hotline",
          channel: str = CHANNEL, key: str = KEY) -> tuple[str, str]:
    """A token as a dialplan from before the linkedid argument makes it."""
    issued = int(time.time() if at is None else at)
    return str(issued), session_mac(key, script, uniqueid, channel, issued)


def call_token(uniqueid: str, linkedid: str) -> tuple[str, str, str]:
    """A token as ``asterisk_conf/extensions.conf`` makes it: the call's linkedid bound in."""
    issued = int(time.time())
    return (str(issued), session_mac(KEY, "hotline", uniqueid, CHANNEL, issued, linkedid),
            linkedid)


async def test_the_linkedid_comes_with_the_token_and_costs_no_round_trip(
        start_server: StartServer) -> None:
    seen: list[tuple[str | None, str, list[str]]] = []

    async def handler(channel: Channel) -> None:
        known = channel.linkedid
        seen.append((known, await channel.resolve_linkedid(), channel.arguments))
        await channel.answer()

    server = await start_server(handler, key=KEY)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("1700000000.5", *call_token("1700000000.5", "1700000000.1"),
                            "extra"))
        await fake.expect(b"ANSWER\n", b"200 result=0\n")  # no GET VARIABLE before it
        await fake.expect_eof()
    assert seen == [("1700000000.1", "1700000000.1", ["extra"])]


@pytest.mark.parametrize("linkedid", ["1700000000.9", "", "a:b"])
async def test_a_linkedid_the_token_does_not_bind_is_refused(
        start_server: StartServer, linkedid: str) -> None:
    served = Answerer()
    server = await start_server(served, key=KEY)
    stamp, mac, _ = call_token("1700000000.6", "1700000000.1")
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("1700000000.6", stamp, mac, linkedid))
        await fake.expect_eof()
    assert served.served == []
    assert server.refused_sessions == 1


@pytest.mark.parametrize("how", ["older dialplan", "odd linkedid", "no key"])
async def test_a_session_without_a_proven_plain_linkedid_asks_for_it(
        start_server: StartServer, how: str) -> None:
    """Whatever the peer claims: an argument no token binds, its own ``agi_linkedid`` line."""
    seen: list[tuple[str, list[str]]] = []

    async def handler(channel: Channel) -> None:
        seen.append((await channel.resolve_linkedid(), channel.arguments))

    server = await start_server(handler, key=None if how == "no key" else KEY)
    uid = "1700000000.7"
    issued = int(time.time())
    args = {
        "older dialplan": [*token(uid), "1700000000.1"],
        # an Originate's ChannelId may hold anything; the token proves it, it is not used
        "odd linkedid": [str(issued), session_mac(KEY, "hotline", uid, CHANNEL, issued, "a:b c"),
                         "a:b c"],
        "no key": ["1700000000.1"],
    }[how]
    body = env(uid, *args).replace(b"agi_uniqueid:", b"agi_linkedid: 1700000000.3\nagi_uniqueid:")
    async with fake_asterisk(server.port) as fake:
        await fake.send(body)
        await fake.expect(b'GET VARIABLE "CHANNEL(linkedid)"\n',
                          b"200 result=1 (1700000000.2)\n")
        await fake.expect_eof()
    # what Asterisk says, not an unbound argument nor the peer's own line
    assert seen == [("1700000000.2", {"older dialplan": ["1700000000.1"], "odd linkedid": [],
                                      "no key": ["1700000000.1"]}[how])]


async def test_a_session_with_its_token_is_served_without_the_token_arguments(
        start_server: StartServer) -> None:
    seen: list[list[str]] = []

    async def handler(channel: Channel) -> None:
        seen.append(channel.arguments)
        await channel.answer()

    server = await start_server(handler, key=KEY)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("1700000000.1", *token("1700000000.1"), "extra"))
        await fake.expect(b"ANSWER\n", b"200 result=0\n")
        await fake.expect_eof()
    assert seen == [["extra"]]
    assert server.refused_sessions == 0


@pytest.mark.parametrize("why", ["none", "garbage", "other key", "other call", "other channel",
                                 "other script", "stale", "future"])
async def test_a_session_that_cannot_prove_its_call_gets_nothing(
        start_server: StartServer, why: str, caplog: pytest.LogCaptureFixture) -> None:
    served = Answerer()
    server = await start_server(served, key=KEY)
    uid = "1700000000.2"
    args: tuple[str, ...] = {
        "none": (),
        "garbage": ("123", "not-a-mac"),
        "other key": token(uid, key="x" * 48),
        "other call": token("1700000000.3"),
        "other channel": token(uid, channel="PJSIP/trunk-00000001"),
        "other script": token(uid, script="queue-callback"),
        "stale": token(uid, at=time.time() - 3600),
        "future": token(uid, at=time.time() + 3600),
    }[why]
    caplog.set_level(logging.WARNING, logger=agi_module.__name__)
    async with fake_asterisk(server.port) as fake:
        await fake.send(env(uid, *args))
        await fake.expect_eof()  # not even an ANSWER: the handler never ran
    assert served.served == []
    assert server.refused_sessions == 1
    assert "refused" in caplog.text
    for arg in args:
        assert arg not in caplog.text  # the token is never logged
    # and a genuine session right after is served
    async with fake_asterisk(server.port) as fake:
        await fake.send(env("1700000000.4", *token("1700000000.4")))
        await fake.expect(b"ANSWER\n", b"200 result=0\n")
        await fake.expect_eof()
    assert served.served == ["1700000000.4"]
