"""The ACD driven without Asterisk: a scripted AMI that answers each action with the events
Asterisk would send (or none), an ACD on a temporary database with agents A1 (PJSIP/1001) and
the supervisor S1 (PJSIP/9001), and the notices it gave. Used by the ACD's unit tests.

``make_world`` builds one with other agents (VIP team, skills), other settings (queues, overflow,
hours, wrap-up) and a ``FakeClock`` the test advances; ``ScriptedAmi.rings`` makes an agent's
phone refuse (no answer) or ring on until the test settles it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import SecretStr

from callcenter.acd.calls import CallState
from callcenter.acd.control import CallControl
from callcenter.acd.notices import Notice
from callcenter.acd.records import ActiveCall, Waiter
from callcenter.acd.service import Acd
from callcenter.broker.interface import Tier
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import AmiActionError, TelephonyError
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami_events import (
    AmiEvent,
    BridgeEnter,
    ChannelInfo,
    Hangup,
    OtherEvent,
)

CALLER, CALLER_UID = "PJSIP/carrier-0001", "caller-uid"
CONSULTED = "Local/13912345678@outbound-0001;1"
Reaction = Callable[[str, dict[str, Any]], list[AmiEvent]]
#: how an endpoint's phone takes a ring: answers at once, refuses it (Asterisk's originate
#: fails: no answer), the AMI action cannot be made (TelephonyError), or rings until the test
#: settles ``ScriptedAmi.hanging[endpoint]``
Ring = Literal["answer", "no_answer", "down", "hang"]


def info(name: str, uniqueid: str = "") -> ChannelInfo:
    return ChannelInfo(uniqueid or name, uniqueid or name, name, 6, "Up", "", "", "", "")


def parked(uniqueid: str, where: str) -> OtherEvent:
    return OtherEvent("UserEvent", {"UserEvent": "CallCenterLegParked", "Uniqueid": uniqueid,
                                    "Where": where})


class ScriptedAmi:
    """Actions are recorded; ``react`` gives the events Asterisk sends for one (fed a moment
    later, as over a socket). Originates answer at once (the agent picks up)."""

    def __init__(self) -> None:
        self.handlers: list[Callable[[AmiEvent], None]] = []
        self.actions: list[tuple[str, dict[str, Any]]] = []
        self.react: Reaction = lambda _name, _headers: []
        self.connected = asyncio.Event()
        self.connected.set()
        #: endpoint (the originate's Channel) -> how it takes a ring; "answer" if not named
        self.rings: dict[str, Ring] = {}
        #: endpoint -> the originate still ringing ("hang"): set a result (the answer's
        #: headers) to answer, an exception (AmiActionError) for no answer
        self.hanging: dict[str, asyncio.Future[dict[str, str]]] = {}

    def add_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        self.handlers.append(handler)

    def feed(self, event: AmiEvent) -> None:
        for handler in list(self.handlers):
            handler(event)

    async def action(self, name: str, **headers: Any) -> dict[str, str]:
        self.actions.append((name, headers))
        loop = asyncio.get_running_loop()
        for n, event in enumerate(self.react(name, headers)):
            loop.call_later(0.001 * (n + 1), self.feed, event)
        return {}

    async def originate(self, **headers: Any) -> tuple[dict[str, str], dict[str, str]]:
        self.actions.append(("Originate", headers))
        endpoint = str(headers.get("Channel", ""))
        answer = {"Channel": f"{endpoint}-0001"}
        match self.rings.get(endpoint, "answer"):
            case "no_answer":
                raise AmiActionError("Originate", "Originate failed")
            case "down":
                raise TelephonyError("no AMI link")
            case "hang":
                future: asyncio.Future[dict[str, str]] = \
                    asyncio.get_running_loop().create_future()
                self.hanging[endpoint] = future
                answer = await future
        return {}, answer

    def names(self) -> list[str]:
        return [name for name, _ in self.actions]

    def originates(self, endpoint: str = "") -> list[dict[str, Any]]:
        """The headers of every Originate (to ``endpoint`` if given), oldest first."""
        return [h for name, h in self.actions if name == "Originate"
                and (not endpoint or h.get("Channel") == endpoint)]


class FakeClock:
    """The ACD's clock, moved by the test (``advance``); asyncio's own timers still run on
    real time, so a test runs what time alone changes itself (``AcdCore.on_timer``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class World:
    def __init__(self, acd: Acd, ami: ScriptedAmi, clock: FakeClock | None = None) -> None:
        self.acd, self.ami = acd, ami
        self.clock = clock
        self.control = CallControl(acd)
        self.notices: list[Notice] = []
        acd.listeners.append(self.notices.append)

    def caller(self, call_id: str, queue: str = "general", *, tier: str = "",
               manager: str = "", phone: str = "") -> Waiter:
        """A caller joins ``queue`` (channel ``PJSIP/carrier-<call_id>``, uniqueid
        ``uid-<call_id>``), of ``tier`` (the IVR's ``customer.tier``) with ``manager``."""
        context = {"customer.tier": tier} if tier else {}
        return self.acd.enqueue(call_id, queue, f"PJSIP/carrier-{call_id}", f"uid-{call_id}",
                                context, phone=phone, manager=manager)

    def offered(self, agent_id: str) -> str | None:
        """The call the seat is ringing with or on, if any."""
        call = self.acd.seat(agent_id).call
        return call.call_id if call is not None else None

    async def until(self, condition: Callable[[], bool], timeout: float = 2.0) -> None:
        """Let the loop run (rings, AMI events) until ``condition`` holds."""
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.001)

    async def busy(self, agent_id: str, call_id: str = "") -> ActiveCall:
        """Put ``agent_id`` on a call of its own (a direct one, not queued): the seat is ON_CALL
        and present. Call it before queueing the callers the test is about."""
        call_id = call_id or f"busy-{agent_id}"
        self.acd.set_state(agent_id, "ready")
        rt = self.acd.seat(agent_id)
        now = self.acd.clock()
        self.acd.offer_direct(rt, Waiter(call_id, "general", Tier.ORDINARY, now,
                                         f"PJSIP/carrier-{call_id}", f"uid-{call_id}"))
        await self.until(lambda: rt.call is not None and rt.call.answered)
        assert rt.call is not None
        return rt.call

    def agent_hangs_up(self, agent_id: str) -> None:
        """Asterisk reports the agent's leg of the seat's call gone."""
        call = self.acd.seat(agent_id).call
        assert call is not None
        self.ami.feed(Hangup(info(call.agent_channel or f"{agent_id}-leg", call.agent_uniqueid),
                             16, "Normal Clearing"))

    async def connected_call(self, *, bridged: bool = True) -> ActiveCall:
        """A queued caller answered by A1; with ``bridged`` Asterisk shows both legs in one
        bridge (else the agent's ``Bridge()`` is still taking the caller in)."""
        self.acd.enqueue("c-1", "general", CALLER, CALLER_UID, {})
        self.acd.set_state("A1", "ready")
        rt = self.acd.seat("A1")
        async with asyncio.timeout(2):
            while rt.call is None or rt.call.life.state is CallState.RINGING:
                await asyncio.sleep(0.001)
        call = rt.call
        assert call is not None and call.life.state is CallState.ANSWERED
        if bridged:
            self.bridge(call)
        return call

    def bridge(self, call: ActiveCall) -> None:
        self.ami.feed(BridgeEnter(info("PJSIP/1001-0001", call.agent_uniqueid), "b-1"))
        self.ami.feed(BridgeEnter(info(CALLER, CALLER_UID), "b-1"))
        assert call.life.state is CallState.CONNECTED


#: the agents of the ``acd_world`` fixture
AGENTS = (AgentRecord("A1", "Li Lei", "agent", "PJSIP/1001"),
          AgentRecord("S1", "Han Mei", "supervisor", "PJSIP/9001"))


def default_settings(**acd: Any) -> AcdSettings:
    """Queues ``general`` and ``english`` without announcements, no wrap-up; ``acd`` overrides
    (``queues=[...]`` replaces both)."""
    queues = [QueueSettings(name="general", announce_every_s=0),
              QueueSettings(name="english", announce_every_s=0)]
    return AcdSettings(**{"queues": queues, "wrap_up_s": 0, **acd})


@contextlib.asynccontextmanager
async def make_world(tmp_path: Path, *, agents: Sequence[AgentRecord] = AGENTS,
                     settings: AcdSettings | None = None,
                     clock: FakeClock | None = None) -> AsyncIterator[World]:
    """An ACD on a new database in ``tmp_path`` with ``agents`` (all logged out), ``settings``
    (``default_settings()``) and ``clock`` (real time if None), attached to a ScriptedAmi."""
    db = await open_db(tmp_path / "cc.db")
    for agent in agents:
        await save_agent(db, agent, SecretStr(f"pw-{agent.agent_id}"))
    acd = Acd(settings or default_settings(), db,
              clock=clock if clock is not None else time.time)
    await acd.start()
    ami = ScriptedAmi()
    acd.attach(ami)  # type: ignore[arg-type]
    try:
        yield World(acd, ami, clock)
    finally:
        await asyncio.sleep(0)  # rings offered last start before close cancels them
        await acd.close()
        await db.close()


@pytest.fixture
async def acd_world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path) as world:
        yield world


