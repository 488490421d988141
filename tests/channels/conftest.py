"""The bus in tests: one real mosquitto for the session (our launcher, a free loopback port, a
temporary state directory), and per test a fresh state directory with the broker's passwords,
wiped broker sessions, and helpers to run the ``log`` channel server as a real process.

No Asterisk here. Nothing waits a fixed time: helpers wait for an event, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from callcenter.channels.messages import outbox_topic
from callcenter.channels.mosquitto import SECRETS_FILE, Mosquitto, user_password
from callcenter.channels.relay import Relay, RelayEvent
from callcenter.channels.settings import ChannelsSettings
from callcenter.store.db import open_db
from callcenter.store.hotline import add_request
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 30.0


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    if shutil.which("mosquitto") is None:
        pytest.fail("Debian's mosquitto is not installed (./dev installs it)")
    state = tmp_path_factory.mktemp("bus")
    channels = ChannelsSettings(mqtt_port=free_port(), extra={"log": {}},
                                reconnect_min=0.05, reconnect_max=0.5)
    mosquitto = Mosquitto(channels, state)
    mosquitto.up()
    try:
        yield mosquitto
    finally:
        mosquitto.down()
        assert mosquitto.pid() is None


def channels_for(broker: Mosquitto, **overrides: Any) -> ChannelsSettings:
    """Settings that reach the session's broker, quick to retry, plus ``overrides``."""
    values: dict[str, Any] = {
        "mqtt_port": broker.channels.mqtt_port, "reconnect_min": 0.05, "reconnect_max": 0.5,
        "io_timeout": 5.0, "backoff_min_s": 0.1, "backoff_max_s": 1.0,
        "retry_min_s": 0.05, "retry_max_s": 0.2, "resend_after_s": 3.0,
        "shutdown_grace_s": 5.0}
    values.update(overrides)
    return ChannelsSettings(**values)


async def client(channels: ChannelsSettings, state_dir: Path, user: str, client_id: str, *,
                 clean: bool = True) -> aiomqtt.Client:
    """A client of ``user``. The broker replaces ``client_id`` with the user name, so this one
    takes the place of any other connection of the same user (the relay's, a server's)."""
    return aiomqtt.Client(channels.mqtt_host, channels.mqtt_port, username=user,
                          password=user_password(state_dir, user).get_secret_value(),
                          identifier=client_id, clean_session=clean, timeout=5)


async def reset_sessions(channels: ChannelsSettings, state_dir: Path) -> None:
    """Forget what earlier tests left in the broker, then give the ``log`` server its
    persistent session, as a deployment has after the first run: messages published before
    its process first connects wait for it."""
    # the broker makes a client's id its user name (use_username_as_clientid): the sessions are
    # those of the users, whatever id a client asks for
    for user in ("engine", "log"):
        async with await client(channels, state_dir, user, user, clean=True):
            pass
    async with await client(channels, state_dir, "log", "log", clean=False) as c:
        await c.subscribe(outbox_topic("log"), qos=1)


@dataclass
class Env:
    """One test's world: its state directory, settings, and the log channel's file."""

    state_dir: Path
    channels: ChannelsSettings
    log_path: Path
    config: Path
    procs: list[ServerProcess] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(encoding="utf-8").splitlines()

    def write_config(self) -> None:
        c = self.channels
        extra = "\n".join(f"{k} = {_toml(v)}" for k, v in c.extra.get("log", {}).items())
        self.config.write_text(
            f'state_dir = "{self.state_dir}"\n'
            f'db_path = "{self.state_dir / "callcenter.db"}"\n'
            "[channels]\n"
            f"mqtt_port = {c.mqtt_port}\n"
            f"reconnect_min = {c.reconnect_min}\nreconnect_max = {c.reconnect_max}\n"
            f"retry_min_s = {c.retry_min_s}\nretry_max_s = {c.retry_max_s}\n"
            f"io_timeout = {c.io_timeout}\nshutdown_grace_s = {c.shutdown_grace_s}\n"
            "[channels.extra.log]\n" + extra + "\n", encoding="utf-8")

    async def server(self) -> ServerProcess:
        """Start ``python -m callcenter.channels.runner log`` as a process of its own."""
        proc = ServerProcess(self)
        await proc.start()
        self.procs.append(proc)
        return proc


def _toml(value: object) -> str:
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


class ServerProcess:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = env.state_dir / f"channel-log-{len(env.procs)}.stderr"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
        env.update(CALLCENTER_CONFIG=str(self.env.config), PYTHONPATH=str(REPO))
        with open(self.stderr, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcenter.channels.runner", "log", env=env,
                cwd=self.env.state_dir, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=err)

    async def kill(self) -> None:
        """SIGKILL: no goodbye, no flushing."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), DEADLINE)
        except TimeoutError:
            await self.kill()
            raise

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


@pytest.fixture
async def env(broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Env]:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy2(broker.state_dir / SECRETS_FILE, state / SECRETS_FILE)
    log_path = tmp_path / "delivered.jsonl"
    world = Env(state, channels_for(broker, extra={"log": {"path": str(log_path)}}), log_path,
                tmp_path / "callcenter.toml")
    world.write_config()
    await reset_sessions(world.channels, state)
    try:
        yield world
    finally:
        for proc in world.procs:
            with contextlib.suppress(ProcessLookupError):
                await proc.kill()
        if broker.pid() is None:  # a fault test that failed half-way: leave it running
            await asyncio.to_thread(broker.up)


async def until(check: Callable[[], Awaitable[bool]], changed: asyncio.Event,
                what: str, deadline: float = DEADLINE) -> None:
    """Wait until ``check()`` holds, re-checking whenever ``changed`` is set."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        changed.clear()
        if await check():
            return
        left = end - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), left)


# -- the engine's side: a database and a running relay ---------------------------------------------

ACCOUNT = "310000000001"


@dataclass
class Engine:
    """The engine's side for a test: its database and a running relay."""

    relay: Relay
    changed: asyncio.Event
    events: list[RelayEvent] = field(default_factory=list)
    #: how many times the relay's bus connected (more than one: it was dropped or kicked)
    connects: int = 0

    @property
    def db(self) -> Any:
        return self.relay.db

    def heard(self, event: RelayEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def request(self, payload: dict[str, Any] | None = None, channel: str = "log",
                      topic: str | None = None) -> str:
        body = payload if payload is not None else {
            "to": "13800000000", "template": "statement", "lang": "zh", "account": ACCOUNT,
            "data": {"month": "2026-10"}}
        ref = await add_request(self.db, "statement", "call-1", account=ACCOUNT, phone=None,
                                detail={}, outbox=[(channel, topic or f"callcenter/outbox/"
                                                    f"{channel}", body)])
        self.relay.kick()
        return ref

    async def rows(self) -> dict[str, dict[str, Any]]:
        async with self.db.execute("SELECT * FROM outbox ORDER BY id") as cur:
            return {r["message_id"]: dict(r) for r in await cur.fetchall()}

    async def all_in(self, *states: str, count: int | None = None) -> bool:
        rows = await self.rows()
        if count is not None and len(rows) != count:
            return False
        return all(r["state"] in states for r in rows.values())

    async def count(self, state: str) -> int:
        return sum(r["state"] == state for r in (await self.rows()).values())


@asynccontextmanager
async def running_engine(env: Env, channels: ChannelsSettings) -> AsyncIterator[Engine]:
    db = await open_db(env.state_dir / "callcenter.db")
    relay = Relay(db, channels, env.state_dir)
    world = Engine(relay, asyncio.Event())
    relay.add_listener(world.heard)
    on_connect = relay.bus.on_connect
    assert on_connect is not None

    async def counted() -> None:
        world.connects += 1
        await on_connect()

    relay.bus.on_connect = counted
    await relay.start()
    try:
        await relay.bus.wait_connected(10)
        yield world
    finally:
        await relay.close()
        await db.close()


@pytest.fixture
async def engine(env: Env) -> AsyncIterator[Engine]:
    async with running_engine(env, env.channels) as world:
        yield world
