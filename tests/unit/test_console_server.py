"""The agent console's websocket server on real loopback sockets, with a fake backend.

Clients are real websockets clients (and a raw socket for plain HTTP). Waits are for messages or
events, with deadlines; the rate limit and the login lockout run on a fake clock the tests step.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from callcenter.config import ConsoleSettings
from callcenter.errors import ConsoleError
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.console_server import ConsoleServer, _address, check_message, read_static
from callcenter.seats.limits import FLOOD_DROPS, AddressThrottle, LoginGuard, TokenBucket
from callcenter.seats.protocol import Error, ErrorCode, Event, Request, Role

DEADLINE = 10.0
PASSWORDS = {"1001": "agent-secret-1001", "1002": "agent-secret-1002",
             "9001": "super-secret-9001", "8001": "admin-secret-8001"}
AGENTS = {
    "1001": AgentIdentity("1001", "Li Lei", Role.AGENT),
    "1002": AgentIdentity("1002", "Wang Fang", Role.AGENT),
    "9001": AgentIdentity("9001", "Han Meimei", Role.SUPERVISOR),
    "8001": AgentIdentity("8001", "Zhao Min", Role.ADMIN),
}
WRONG = "not-the-password"


class FakeBackend:
    """Passwords checked here; commands recorded; ``on`` makes a command fail or wait."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, Request]] = []
        self.closed: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.on: dict[str, Callable[[Request], Awaitable[dict[str, Any]]]] = {}
        #: recordings' audio by (ticket, part), each served once; who fetched
        self.audio: dict[tuple[str, int], bytes] = {}
        self.fetched_from: list[str] = []

    async def authenticate(self, agent_id: str, password: str) -> AgentIdentity | None:
        expected = PASSWORDS.get(agent_id, "")
        if hmac.compare_digest(expected.encode(), password.encode()) and expected:
            return AGENTS[agent_id]
        return None

    async def snapshot(self, agent: AgentIdentity) -> dict[str, Any]:
        return {
            "agent": {"agent_id": agent.agent_id, "name": agent.name, "role": agent.role.value},
            "seat": {"agent_id": agent.agent_id, "name": agent.name, "state": "logged_out",
                     "reason": "", "since": 0.0, "call_id": None},
            "call": None,
            "queues": [],
            "reasons": ["break", "lunch", "training", "meeting", "after_call", "other"],
        }

    async def command(self, agent: AgentIdentity, request: Request) -> dict[str, Any]:
        self.commands.append((agent.agent_id, request))
        handler = self.on.get(request.type)
        if handler is not None:
            return await handler(request)
        return {"done": request.type}

    async def recording_audio(self, ticket: str, part: int, address: str) -> bytes | None:
        self.fetched_from.append(address)
        return self.audio.pop((ticket, part), None)

    async def session_closed(self, agent: AgentIdentity, sessions_left: int) -> None:
        self.closed.put_nowait((agent.agent_id, sessions_left))

    async def next_closed(self) -> tuple[str, int]:
        async with asyncio.timeout(DEADLINE):
            return await self.closed.get()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Client:
    """One console connection: JSON in and out, replies matched by id, events kept apart."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._n = 0

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(DEADLINE):
            frame = await self.ws.recv()
        decoded: dict[str, Any] = json.loads(frame)
        return decoded

    async def reply(self, request_id: str) -> dict[str, Any]:
        while True:
            message = await self.recv()
            if message["type"] == "event":
                self.events.append(message)
            elif message["id"] == request_id:
                return message

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._n += 1
        request_id = f"r{self._n}"
        await self.send({"v": 1, "id": request_id, "type": kind, **fields})
        return await self.reply(request_id)

    async def event(self) -> dict[str, Any]:
        if self.events:
            return self.events.pop(0)
        message = await self.recv()
        assert message["type"] == "event", message
        return message

    async def login(self, agent_id: str, password: str | None = None) -> dict[str, Any]:
        reply = await self.call("login", agent_id=agent_id,
                                password=PASSWORDS[agent_id] if password is None else password)
        return reply

    async def closed(self) -> tuple[int | None, str | None]:
        """Read until the server closes; the close code and reason."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                async with asyncio.timeout(DEADLINE):
                    await self.ws.recv()
        return self.ws.close_code, self.ws.close_reason


Start = Callable[..., Awaitable[ConsoleServer]]


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    root = tmp_path / "console"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>console</title>")
    (root / "app.js").write_text("console.log('hi')")
    (root / "style.css").write_text("body{}")
    (root / "icon.svg").write_text("<svg/>")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n")
    (root / "sub" / "page.json").write_text("{}")
    (root / ".hidden.js").write_text("secret")
    (root / "script.py").write_text("print()")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "inside.js").symlink_to(root / "app.js")
    return root


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def no_passwords_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG, logger="callcenter")
    yield
    for secret in (*PASSWORDS.values(), WRONG):
        assert secret not in caplog.text


@pytest.fixture
async def start(static_dir: Path, backend: FakeBackend,
                clock: Clock) -> AsyncIterator[Start]:
    servers: list[ConsoleServer] = []

    async def start(**settings: Any) -> ConsoleServer:
        server = ConsoleServer(
            ConsoleSettings(host="127.0.0.1", port=0, static_dir=static_dir, **settings),
            backend, clock=clock)
        await server.start()
        server.close_grace_s = 0.5
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def origin_of(server: ConsoleServer) -> Origin:
    return Origin(f"http://127.0.0.1:{server.port}")


@contextlib.asynccontextmanager
async def client(server: ConsoleServer, origin: str | None = None, path: str = "/ws",
                 **kwargs: Any) -> AsyncIterator[Client]:
    async with connect(f"ws://127.0.0.1:{server.port}{path}",
                       origin=Origin(origin) if origin else origin_of(server),
                       open_timeout=DEADLINE, **kwargs) as ws:
        yield Client(ws)


@contextlib.asynccontextmanager
async def logged_in(server: ConsoleServer, agent_id: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with client(server, **kwargs) as c:
        reply = await c.login(agent_id)
        assert reply["type"] == "result", reply
        yield c


async def http_get(port: int, path: str, *extra: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = "".join(f"{line}\r\n" for line in (f"Host: 127.0.0.1:{port}", *extra))
        writer.write(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            data = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    header_block, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return int(status_line.split()[1]), headers, body


# -- HTTP ----------------------------------------------------------------------------------------


async def test_a_recordings_parts_are_served_for_their_ticket_and_never_cached(
        start: Start, backend: FakeBackend) -> None:
    server = await start()
    backend.audio[("tk-1", 0)] = b"RIFF....WAVEfmt "
    backend.audio[("tk-1", 1)] = b"more audio"
    for path, body in (("/recording?t=tk-1", b"RIFF....WAVEfmt "),
                       ("/recording?t=tk-1&p=1", b"more audio")):
        status, headers, got = await http_get(server.port, path)
        assert (status, got) == (200, body)
        assert headers["content-type"] == "application/octet-stream"
        assert headers["cache-control"] == "no-store"
    assert backend.fetched_from == ["127.0.0.1", "127.0.0.1"]
    for path in ("/recording?t=tk-1", "/recording", "/recording?t=", "/recording?t=a&t=b",
                 "/recording?t=tk-1&p=x", "/recording?t=tk-1&p=-1", "/recording?t=tk-1&p=1&p=2",
                 "/recording?t=tk-1&p=99999999999"):
        status, headers, body = await http_get(server.port, path)
        assert status == 404, path
        assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("path", "content_type", "body"), [
    ("/", "text/html; charset=utf-8", b"<!doctype html><title>console</title>"),
    ("/index.html", "text/html; charset=utf-8", b"<!doctype html><title>console</title>"),
    ("/app.js?v=3", "text/javascript; charset=utf-8", b"console.log('hi')"),
    ("/style.css", "text/css; charset=utf-8", b"body{}"),
    ("/icon.svg", "image/svg+xml", b"<svg/>"),
    ("/logo.png", "image/png", b"\x89PNG\r\n"),
    ("/sub/page.json", "application/json", b"{}"),
    ("/inside.js", "text/javascript; charset=utf-8", b"console.log('hi')"),
])
async def test_static_files_with_security_headers(
        start: Start, path: str, content_type: str, body: bytes) -> None:
    server = await start()
    status, headers, got = await http_get(server.port, path)
    assert (status, headers["content-type"], got) == (200, content_type, body)
    assert headers["cache-control"] == "no-cache"
    assert headers["content-security-policy"] == (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/%2e%2e/pyproject.toml", "/%2E%2E/%2e%2e/pyproject.toml",
    "/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/sub/../../secret.txt",
    "/escape.txt", "/sub", "/sub/", "//index.html", "/.hidden.js", "/script.py", "/missing.js",
    "/index.html%00", "/%ff.js", "/sub\\page.json",
])
async def test_static_refusals(start: Start, path: str) -> None:
    server = await start()
    status, _, body = await http_get(server.port, path)
    assert status == 404
    assert b"outside" not in body


def test_read_static_unit(static_dir: Path) -> None:
    root = static_dir.resolve()
    assert read_static(root, "/app.js") == (b"console.log('hi')", "text/javascript; charset=utf-8")
    assert read_static(root, "/escape.txt") is None
    assert read_static(root, "/%2e%2e/secret.txt") is None


async def test_upgrade_on_another_path_refused(start: Start) -> None:
    server = await start()
    for path in ("/", "/other", "/ws/x", "/index.html"):
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, path=path):
                pass
        assert refused.value.response.status_code == 404


async def test_plain_get_on_ws_is_not_a_page(start: Start) -> None:
    server = await start()
    origin = f"Origin: http://127.0.0.1:{server.port}"
    status, _, _ = await http_get(server.port, "/ws", origin)
    assert status == 426


async def test_no_compression_is_negotiated(start: Start) -> None:
    """A client offering permessage-deflate gets none: pushes go out as serialised, once."""
    server = await start()
    async with client(server, compression="deflate") as c:
        assert c.ws.response is not None
        assert c.ws.response.headers.get("Sec-WebSocket-Extensions") is None


async def test_foreign_or_missing_origin_refused(start: Start,
                                                caplog: pytest.LogCaptureFixture) -> None:
    server = await start()
    for origin in ("http://evil.example", f"http://127.0.0.1:{server.port + 1}",
                   f"https://127.0.0.1:{server.port}"):
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, origin=origin):
                pass
        assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=DEADLINE):
            pass
    assert refused.value.response.status_code == 403
    assert "evil.example" in caplog.text
    async with client(server, origin=f"http://localhost:{server.port}") as c:
        assert (await c.call("ping"))["type"] == "result"


async def test_configured_origins_replace_the_default(start: Start) -> None:
    server = await start(allowed_origins=["https://console.example.com"])
    async with client(server, origin="https://console.example.com") as c:
        assert (await c.call("ping"))["type"] == "result"
    with pytest.raises(InvalidStatus) as refused:
        async with client(server):
            pass
    assert refused.value.response.status_code == 403


# -- login ---------------------------------------------------------------------------------------


async def test_login_replies_with_the_snapshot(start: Start, backend: FakeBackend,
                                               caplog: pytest.LogCaptureFixture) -> None:
    server = await start()
    async with client(server) as c:
        reply = await c.login("1001")
        assert reply["type"] == "result"
        assert reply["data"]["agent"] == {"agent_id": "1001", "name": "Li Lei", "role": "agent"}
        assert reply["data"]["call"] is None
        again = await c.login("1001")
        assert again["code"] == ErrorCode.ALREADY_LOGGED_IN
    assert await backend.next_closed() == ("1001", 0)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("callcenter")]
    assert any("login" in ln and "1001" in ln and "agent" in ln and "127.0.0.1:" in ln
               for ln in lines)
    assert any("logout" in ln and "1001" in ln and "127.0.0.1:" in ln for ln in lines)


async def test_events_during_login_follow_the_snapshot(start: Start,
                                                     backend: FakeBackend) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    real_snapshot = backend.snapshot

    async def slow_snapshot(agent: AgentIdentity) -> dict[str, Any]:
        started.set()
        await gate.wait()
        return await real_snapshot(agent)

    backend.snapshot = slow_snapshot  # type: ignore[method-assign]
    server = await start()
    async with client(server) as c:
        await c.send({"v": 1, "id": "in", "type": "login", "agent_id": "1001",
                      "password": PASSWORDS["1001"]})
        async with asyncio.timeout(DEADLINE):
            await started.wait()
        server.push.to_agent("1001", event("call_held", call_id="c1"))
        gate.set()
        assert (await c.recv())["id"] == "in"
        assert (await c.recv())["data"] == {"call_id": "c1"}


async def test_wrong_password_or_unknown_id_same_answer(start: Start) -> None:
    server = await start()
    async with client(server) as c:
        wrong = await c.login("1001", WRONG)
        unknown = await c.login("4040", WRONG)
        assert wrong["code"] == unknown["code"] == ErrorCode.BAD_CREDENTIALS
        assert wrong["message"] == unknown["message"]
        assert (await c.login("1001"))["type"] == "result"


async def test_lockout_after_failures_until_it_passes(start: Start, clock: Clock) -> None:
    server = await start(max_login_failures=3, lockout_s=60)
    async with client(server) as c:
        for _ in range(3):
            assert (await c.login("1001", WRONG))["code"] == ErrorCode.BAD_CREDENTIALS
        locked = await c.login("1001")
        assert locked["code"] == ErrorCode.LOGIN_PAUSED
        assert "paused" in locked["message"]
        clock.now += 59
        assert (await c.login("1001"))["code"] == ErrorCode.LOGIN_PAUSED
        async with client(server) as other:  # another id is not affected
            assert (await other.login("9001"))["type"] == "result"
        clock.now += 2
        assert (await c.login("1001"))["type"] == "result"


async def test_unknown_ids_are_paused_like_known_ones(start: Start, backend: FakeBackend,
                                                      clock: Clock) -> None:
    """A lockout never tells whether an id exists: same codes, same texts, same timing."""
    server = await start(max_login_failures=2, lockout_s=30)
    async with client(server) as c:
        answers: dict[str, list[tuple[str, str]]] = {}
        for agent_id in ("1002", "4040"):
            answers[agent_id] = [
                (r["code"], r["message"])
                for r in [await c.login(agent_id, WRONG) for _ in range(3)]
                + [await c.call("login", agent_id=agent_id,
                                password=PASSWORDS.get(agent_id, WRONG))]]
        assert answers["1002"] == answers["4040"]
        assert [code for code, _ in answers["1002"]] == [
            ErrorCode.BAD_CREDENTIALS, ErrorCode.BAD_CREDENTIALS, ErrorCode.LOGIN_PAUSED,
            ErrorCode.LOGIN_PAUSED]
        clock.now += 31
        assert (await c.login("1002"))["type"] == "result"


def test_login_password_is_never_in_a_repr() -> None:
    login = check_message(json.dumps({"type": "login", "agent_id": "1001",
                                      "password": PASSWORDS["1001"]}), None)
    assert not isinstance(login, Error)
    for text in (repr(login), str(login), f"{login!r}", repr([login])):
        assert PASSWORDS["1001"] not in text
    assert "password" not in repr(login)


async def test_no_login_in_time_closes_4001(start: Start) -> None:
    server = await start(login_timeout=0.5)
    async with client(server) as c:
        assert (await c.call("ping"))["type"] == "result"  # allowed, but no substitute for login
        error = await c.recv()
        assert error["code"] == ErrorCode.LOGIN_TIMEOUT
        assert await c.closed() == (4001, "login timeout")


async def test_command_before_login(start: Start, backend: FakeBackend) -> None:
    server = await start()
    async with client(server) as c:
        refused = await c.call("set_state", state="ready")
        assert refused["code"] == ErrorCode.LOGIN_REQUIRED
        assert (await c.login("1001"))["type"] == "result"
        assert (await c.call("set_state", state="ready"))["type"] == "result"
    assert [(agent, request.type) for agent, request in backend.commands] == [
        ("1001", "set_state")]


async def test_ping(start: Start) -> None:
    server = await start()
    async with logged_in(server, "1001") as c:
        reply = await c.call("ping")
        assert reply["type"] == "result"
        assert isinstance(reply["data"]["time"], float)


# -- message checks ------------------------------------------------------------------------------


async def test_oversized_frame_closes_1009(start: Start) -> None:
    server = await start(max_message_bytes=1024)
    async with logged_in(server, "1001") as c:
        await c.send(json.dumps({"type": "ping", "id": "x" * 2000}))
        code, _ = await c.closed()
        assert code == 1009


@pytest.mark.parametrize(("frame", "code", "where"), [
    ("not json", ErrorCode.MALFORMED, ""),
    ("[1, 2]", ErrorCode.MALFORMED, ""),
    ("42", ErrorCode.MALFORMED, ""),
    ('{"type": "ping", "id": "b", "v": NaN}', ErrorCode.MALFORMED, ""),
    ("[" * 6000 + "]" * 6000, ErrorCode.MALFORMED, ""),
    (b'{"type": "ping"}', ErrorCode.MALFORMED, ""),
    ('{"v": 1, "id": "a", "type": "teleport"}', ErrorCode.UNKNOWN_COMMAND, ""),
    ('{"v": 1, "id": "a"}', ErrorCode.UNKNOWN_COMMAND, ""),
    ('{"v": 2, "id": "a", "type": "ping"}', ErrorCode.UNSUPPORTED_VERSION, ""),
    ('{"v": true, "id": "a", "type": "ping"}', ErrorCode.UNSUPPORTED_VERSION, ""),
    ('{"v": "1", "id": "a", "type": "ping"}', ErrorCode.UNSUPPORTED_VERSION, ""),
    ('{"v": 1, "id": "a", "type": "set_state", "state": "dancing"}', ErrorCode.MALFORMED,
     "state: "),
    ('{"v": 1, "id": "a", "type": "hold", "extra": 1}', ErrorCode.MALFORMED, "extra: "),
    ('{"v": 1, "id": "a", "type": "wrap_up", "call_id": "c1"}', ErrorCode.MALFORMED,
     "disposition: "),
    ('{"v": 1, "id": "a", "type": "send_message", "channel": "sms", "template": "note"}',
     ErrorCode.MALFORMED, "message: Value error, give account or call_id"),
    ('{"v": 1, "id": "a", "type": "click_to_call", "account": "31000088"}',
     ErrorCode.MALFORMED, "message: Value error, give number, or call_id"),
    ('{"v": 1, "id": "a", "type": "create_task", "text": "x", "call_id": "' + "c" * 65 + '"}',
     ErrorCode.MALFORMED, "call_id: "),
])
async def test_bad_messages(start: Start, backend: FakeBackend, frame: str | bytes,
                            code: ErrorCode, where: str) -> None:
    server = await start()
    async with logged_in(server, "1001") as c:
        await c.send(frame)
        error = await c.recv()
        assert (error["type"], error["code"]) == ("error", code)
        assert error["message"].startswith(where)
        if '"id": "a"' in str(frame):
            assert error["id"] == "a"
        assert (await c.call("ping"))["type"] == "result"  # the connection is still usable
    assert backend.commands == []


async def test_login_validation_never_echoes_the_password(start: Start) -> None:
    server = await start()
    async with client(server) as c:
        long_secret = "S3cr3t" * 40
        for fields in ({"agent_id": "1001", "password": long_secret},
                       {"agent_id": "10 01", "password": long_secret},
                       {"agent_id": "1001", "password": long_secret[:20], "extra": 1}):
            error = await c.call("login", **fields)
            assert error["code"] == ErrorCode.MALFORMED
            assert long_secret[:20] not in json.dumps(error)


@pytest.mark.parametrize("request_fields", [
    {"type": "spy", "agent_id": "1002", "mode": "listen"},
    {"type": "force_state", "agent_id": "1002", "state": "not_ready", "reason": "meeting"},
    {"type": "wallboard"},
])
async def test_agent_may_not_use_supervisor_commands(
        start: Start, backend: FakeBackend, request_fields: dict[str, Any]) -> None:
    server = await start()
    async with logged_in(server, "1001") as c:
        kind = request_fields.pop("type")
        assert (await c.call(kind, **request_fields))["code"] == ErrorCode.FORBIDDEN
    assert backend.commands == []
    async with logged_in(server, "9001") as s:
        assert (await s.call(kind, **request_fields))["type"] == "result"
    assert [agent for agent, _ in backend.commands] == ["9001"]


async def test_unsafe_numbers_never_reach_the_backend(start: Start, backend: FakeBackend) -> None:
    server = await start()
    async with logged_in(server, "1001") as c:
        error = await c.call("transfer", target={"kind": "number", "value": "123;Hangup"})
        assert error["code"] == ErrorCode.MALFORMED
        assert error["message"].startswith("target.value: ")
        error = await c.call("click_to_call", number="123\r\nAction: Originate")
        assert error["code"] == ErrorCode.MALFORMED
        error = await c.call("transfer", target={"kind": "number", "value": "+8610123#"})
        assert error["code"] == ErrorCode.MALFORMED  # the one phone-number rule: no * or #
        ok = await c.call("transfer", target={"kind": "number", "value": "+8610123"})
        assert ok["type"] == "result"
    assert [request.type for _, request in backend.commands] == ["transfer"]


# -- the backend ---------------------------------------------------------------------------------


async def test_backend_refusal_and_bug(start: Start, backend: FakeBackend,
                                       caplog: pytest.LogCaptureFixture) -> None:
    async def no_call(_: Request) -> dict[str, Any]:
        raise ConsoleError("no_call", "there is no call to hang up")

    async def bug(_: Request) -> dict[str, Any]:
        raise RuntimeError("backend bug")

    backend.on = {"hangup": no_call, "hold": bug}
    server = await start()
    async with logged_in(server, "1001") as c:
        refused = await c.call("hangup")
        assert (refused["code"], refused["message"]) == ("no_call", "there is no call to hang up")
        failed = await c.call("hold")
        assert failed["code"] == ErrorCode.INTERNAL
        assert "backend bug" not in failed["message"]
        assert (await c.call("ping"))["type"] == "result"
    assert any(r.exc_info and "backend bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_slow_command_keeps_order_and_blocks_no_one_else(
        start: Start, backend: FakeBackend) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow(_: Request) -> dict[str, Any]:
        started.set()
        await gate.wait()
        return {"resumed": True}

    backend.on = {"resume": slow}
    server = await start()
    async with logged_in(server, "1001") as a, logged_in(server, "9001") as s:
        await a.send({"v": 1, "id": "slow", "type": "resume"})
        await a.send({"v": 1, "id": "after", "type": "ping"})
        async with asyncio.timeout(DEADLINE):
            await started.wait()
        assert (await s.call("ping"))["type"] == "result"
        gate.set()
        first, second = await a.recv(), await a.recv()
        assert (first["id"], first["data"], second["id"]) == ("slow", {"resumed": True}, "after")


# -- limits --------------------------------------------------------------------------------------


async def test_flood_is_limited_others_served_then_closed(start: Start) -> None:
    server = await start(rate_per_s=1, rate_burst=5)
    async with logged_in(server, "1001") as flooder, logged_in(server, "9001") as other:
        for n in range(49):  # the login spent one token
            await flooder.send({"v": 1, "id": f"f{n}", "type": "ping"})
        assert (await other.call("ping"))["type"] == "result"
        replies = [await flooder.recv() for _ in range(49)]
        assert [r["type"] for r in replies[:4]] == ["result"] * 4
        assert {(r["type"], r["code"]) for r in replies[4:]} == {("error", "rate_limited")}
        assert [r["id"] for r in replies] == [f"f{n}" for n in range(49)]
        with contextlib.suppress(ConnectionClosed):
            for n in range(FLOOD_DROPS):
                await flooder.send({"v": 1, "id": f"g{n}", "type": "ping"})
        assert await flooder.closed() == (1008, "flooding")
        assert (await other.call("ping"))["type"] == "result"


def test_token_bucket_recovers() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.dropped_in_row == 1
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.take(100) and bucket.dropped_in_row == 0
    assert [bucket.take(100) for _ in range(3)] == [True, True, False]


def test_login_guard_window_lockout_and_memory() -> None:
    guard = LoginGuard(max_failures=3, lockout_s=10, max_tracked=4)
    assert not guard.failed("a", 0) and not guard.failed("a", 1)
    assert not guard.failed("a", 11)  # the first two fell out of the window
    assert not guard.failed("a", 12) and guard.failed("a", 13)
    assert guard.locked("a", 22.9) and not guard.locked("a", 23)
    guard.failed("b", 0)
    guard.succeeded("b")
    assert not guard.failed("b", 0) and not guard.failed("b", 0)
    for name in "cdefgh":
        guard.failed(name, 30)
    assert guard.locked("a", 22) is False  # (its lockout ended at 23)
    guard.failed("x", 40)
    guard.failed("x", 40)
    assert guard.failed("x", 40) and guard.locked("x", 41)
    for name in "pqrstuvw":  # many new ids forget counting ids first, not the locked one
        guard.failed(name, 41)
    assert guard.locked("x", 42)


def test_address_throttle_slides_and_forgets() -> None:
    throttle = AddressThrottle(max_failures=3, window_s=10, max_tracked=3)
    assert not throttle.failed("a", 0) and not throttle.failed("a", 4)
    assert throttle.failed("a", 5) and throttle.paused("a", 9.9)
    assert not throttle.paused("a", 10)  # the first fell out: one more try
    assert throttle.failed("a", 10) and throttle.paused("a", 13.9)
    assert not throttle.paused("a", 14) and not throttle.paused("b", 14)
    for address in "bcd":  # many addresses: the oldest is forgotten first
        throttle.failed(address, 20)
    assert throttle.failed("e", 20) is False and len(throttle._failures) <= 3


@pytest.mark.parametrize(("peer", "counted_as"), [
    (("127.0.0.2", 5000), "127.0.0.2"),
    (("::ffff:10.1.2.3", 5000, 0, 0), "10.1.2.3"),
    (("2001:db8::1:2:3:4", 5000, 0, 0), "2001:db8::/64"),  # one host may hold the /64
    (None, "?"),
])
def test_logins_are_counted_by_address(peer: Any, counted_as: str) -> None:
    assert _address(types.SimpleNamespace(remote_address=peer)) == counted_as  # type: ignore[arg-type]


def test_check_message_order() -> None:
    login = '{"type": "login", "agent_id": "1001", "password": "x"}'
    assert getattr(check_message(login, Role.AGENT), "code", None) == "already_logged_in"
    spy = '{"type": "spy", "agent_id": "1", "mode": "nope"}'
    assert getattr(check_message(spy, Role.AGENT), "code", None) == "forbidden"
    assert getattr(check_message(spy, None), "code", None) == "login_required"
    assert getattr(check_message(spy, Role.ADMIN), "code", None) == "malformed"


# -- push ----------------------------------------------------------------------------------------


def event(name: str, **data: Any) -> Event:
    return Event(event=name, data=data)


async def test_push_to_agent_reaches_every_session_of_that_agent(start: Start) -> None:
    server = await start()
    async with logged_in(server, "1001") as a1, logged_in(server, "1001") as a2, \
            logged_in(server, "9001") as s:
        server.push.to_agent("1001", event("call_held", call_id="c1"))
        server.push.to_agent("9001", event("call_held", call_id="c9"))
        server.push.to_agent("nobody", event("call_held", call_id="c0"))
        for c, call_id in ((a1, "c1"), (a2, "c1"), (s, "c9")):
            got = await c.event()
            assert (got["event"], got["data"]) == ("call_held", {"call_id": call_id})


async def test_sessions_are_found_by_agent_until_they_end(start: Start,
                                                          backend: FakeBackend) -> None:
    """A push to one agent looks up that agent's sessions (no scan of every session); a
    session that ends leaves that index, so nothing grows with logins over a day."""
    server = await start()
    async with logged_in(server, "1001"), logged_in(server, "9001"):
        assert {a: len(ss) for a, ss in server._push._of_agent.items()} == {"1001": 1,
                                                                             "9001": 1}
    assert {await backend.next_closed(), await backend.next_closed()} == {("1001", 0),
                                                                         ("9001", 0)}
    assert server._push._of_agent == {}


async def test_push_to_role_reaches_that_role_and_above(start: Start) -> None:
    server = await start()
    async with logged_in(server, "1001") as a, logged_in(server, "9001") as s, \
            logged_in(server, "8001") as adm, client(server) as anonymous:
        server.push.to_role(Role.SUPERVISOR, event("wallboard", queues=[], seats=[]))
        server.push.to_role(Role.AGENT, event("queues", queues=[]))
        assert [(await a.event())["event"]] == ["queues"]
        for c in (s, adm):
            assert [(await c.event())["event"] for _ in range(2)] == ["wallboard", "queues"]
        reply = await anonymous.call("ping")  # not logged in: no events before the reply
        assert reply["type"] == "result" and anonymous.events == []


async def test_end_sessions(start: Start, backend: FakeBackend) -> None:
    server = await start()
    async with logged_in(server, "1001") as a1, logged_in(server, "1001") as a2, \
            logged_in(server, "9001") as s:
        server.push.end_sessions("1001", "forced out by supervisor 9001")
        for c in (a1, a2):
            got = await c.event()
            assert got["event"] == "session_ended"
            assert got["data"] == {"reason": "forced out by supervisor 9001"}
            assert await c.closed() == (4000, "session ended")
        assert {await backend.next_closed(), await backend.next_closed()} == {("1001", 0)}
        assert (await s.call("ping"))["type"] == "result"


async def test_slow_consumer_dropped_without_holding_up_others(
        start: Start, backend: FakeBackend, caplog: pytest.LogCaptureFixture) -> None:
    server = await start(max_pending_events=8)
    blob = "x" * 60_000
    async with logged_in(server, "1001", compression=None, max_queue=1) as slow, \
            logged_in(server, "9001") as fast:
        closed = asyncio.ensure_future(backend.next_closed())
        n = 0
        async with asyncio.timeout(DEADLINE):
            while not closed.done():
                n += 1
                server.push.to_agent("1001", event("queues", blob=blob))
                server.push.to_agent("9001", event("call_held", call_id=f"c{n}"))
                got = await fast.event()
                assert got["data"] == {"call_id": f"c{n}"}
        assert closed.result() == ("1001", 0)
        assert "too slow" in caplog.text
        server.push.to_agent("1001", event("queues", blob=blob))  # no one left: dropped
        assert (await fast.call("ping"))["type"] == "result"
        slow.ws.transport.abort()  # it never read; do not wait for its close handshake


async def test_close_leaves_nothing_behind(start: Start, backend: FakeBackend) -> None:
    server = await start()
    async with logged_in(server, "1001") as a, client(server) as anonymous:
        await server.close()
        assert (await a.closed())[0] == 1001
        assert (await anonymous.closed())[0] == 1001
    assert await backend.next_closed() == ("1001", 0)
    await server.close()  # idempotent
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_close_does_not_wait_for_a_stuck_backend(start: Start,
                                                       backend: FakeBackend) -> None:
    started = asyncio.Event()

    async def stuck(_: Request) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")

    backend.on = {"hold": stuck}
    server = await start()
    async with logged_in(server, "1001") as a:
        await a.send({"v": 1, "id": "h", "type": "hold"})
        async with asyncio.timeout(DEADLINE):
            await started.wait()
            await server.close()
        assert (await a.closed())[0] == 1001
    assert await backend.next_closed() == ("1001", 0)


# -- sessions of one agent, and logins from many addresses (issue 9, finding 8) -----------------


async def test_logout_answers_the_asker_then_ends_every_session(start: Start,
                                                                backend: FakeBackend) -> None:
    """A backend that ends the agent's sessions while answering (as logging out does): the
    asker gets its reply first, then ``session_ended`` and 4000, like every other session."""
    server = await start()

    async def log_out(_: Request) -> dict[str, Any]:
        server.push.end_sessions("1001", "logged out in another session")
        return {"seat": {"state": "logged_out"}}

    backend.on = {"set_state": log_out}
    async with logged_in(server, "1001") as asker, logged_in(server, "1001") as other, \
            logged_in(server, "1002") as colleague:
        reply = await asker.call("set_state", state="logged_out", reason="")
        assert reply["type"] == "result" and reply["data"] == {"seat": {"state": "logged_out"}}
        for c in (asker, other):
            got = await c.event()
            assert (got["event"], got["data"]) == (
                "session_ended", {"reason": "logged out in another session"})
            assert await c.closed() == (4000, "session ended")
        assert (await colleague.call("ping"))["type"] == "result"


async def test_an_ended_session_carries_out_nothing_more(start: Start,
                                                         backend: FakeBackend) -> None:
    """Requests a session sent before it saw its end are not carried out for it."""
    server = await start()
    release = asyncio.Event()

    async def slow_hold(_: Request) -> dict[str, Any]:
        await release.wait()
        return {"held": True}

    backend.on = {"hold": slow_hold}
    async with logged_in(server, "1001") as a:
        await a.send({"v": 1, "id": "h", "type": "hold"})
        async with asyncio.timeout(DEADLINE):
            while not backend.commands:
                await asyncio.sleep(0)  # the hold is in the backend
        server.push.end_sessions("1001", "forced out by supervisor 9001")
        await a.send({"v": 1, "id": "r", "type": "resume"})  # queued behind the hold
        release.set()
        assert (await a.reply("h"))["type"] == "result"
        assert (await a.event())["event"] == "session_ended"
        assert await a.closed() == (4000, "session ended")
    assert await backend.next_closed() == ("1001", 0)
    assert [r.type for _, r in backend.commands] == ["hold"]


@contextlib.asynccontextmanager
async def from_address(server: ConsoleServer, host: str) -> AsyncIterator[Client]:
    """A connection from another loopback address (Linux answers all of 127/8 on lo)."""
    async with client(server, local_addr=(host, 0)) as c:
        yield c


async def test_failures_from_one_address_do_not_lock_the_agent_out_elsewhere(
        start: Start, clock: Clock) -> None:
    server = await start(max_login_failures=3, lockout_s=60)
    async with from_address(server, "127.0.0.2") as attacker:
        for _ in range(5):
            await attacker.login("1001", WRONG)
        assert (await attacker.login("1001"))["code"] == ErrorCode.LOGIN_PAUSED
        async with from_address(server, "127.0.0.3") as agent:
            assert (await agent.login("1001"))["type"] == "result"
        clock.now += 61
        assert (await attacker.login("1001"))["type"] == "result"


async def test_one_address_guessing_many_ids_is_paused(start: Start, clock: Clock) -> None:
    server = await start(max_login_failures=3, lockout_s=60, max_address_failures=4,
                         address_window_s=60)
    async with from_address(server, "127.0.0.2") as guesser:
        for agent_id in ("1001", "1002", "4040", "4041"):
            assert (await guesser.login(agent_id, WRONG))["code"] == ErrorCode.BAD_CREDENTIALS
        paused = await guesser.login("9001")  # even a right password, for an untried id
        assert paused["code"] == ErrorCode.LOGIN_PAUSED
        async with from_address(server, "127.0.0.3") as elsewhere:
            assert (await elsewhere.login("9001"))["type"] == "result"
        clock.now += 30
        assert (await guesser.login("1002"))["code"] == ErrorCode.LOGIN_PAUSED
        clock.now += 31  # the window slid past the failures
        assert (await guesser.login("1002"))["type"] == "result"


async def test_guessing_one_id_from_many_addresses_is_bounded_but_the_agents_desk_is_not(
        start: Start, clock: Clock) -> None:
    server = await start(max_login_failures=3, lockout_s=60, max_address_failures=100,
                         max_account_failures=4, account_window_s=600)
    async with from_address(server, "127.0.0.9") as desk:
        assert (await desk.login("1001"))["type"] == "result"  # the agent's own desk
    for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        async with from_address(server, host) as guesser:  # one guess per address
            assert (await guesser.login("1001", WRONG))["code"] == ErrorCode.BAD_CREDENTIALS
    async with from_address(server, "127.0.0.6") as fresh:
        # the right password from an address the agent never used: paused too
        assert (await fresh.login("1001"))["code"] == ErrorCode.LOGIN_PAUSED
        assert (await fresh.login("1002"))["type"] == "result"  # other accounts unaffected
    async with from_address(server, "127.0.0.9") as desk:
        assert (await desk.login("1001"))["type"] == "result"  # never locked out at the desk
    clock.now += 601
    async with from_address(server, "127.0.0.6") as fresh:
        assert (await fresh.login("1001"))["type"] == "result"
