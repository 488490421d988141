"""The ACD driven without Asterisk: a scripted AMI that answers each action with the events
Asterisk would send (or none), an ACD on a temporary database with agents A1 (PJSIP/1001) and
the supervisor S1 (PJSIP/9001), and the notices it gave. Used by the ACD's unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from callcenter.acd.calls import CallState
from callcenter.acd.control import CallControl
from callcenter.acd.notices import Notice
from callcenter.acd.service import Acd, ActiveCall
from callcenter.config import AcdSettings, QueueSettings
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, ChannelInfo, OtherEvent

CALLER, CALLER_UID = "PJSIP/carrier-0001", "caller-uid"
CONSULTED = "Local/13912345678@outbound-0001;1"
Reaction = Callable[[str, dict[str, Any]], list[AmiEvent]]


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
        return {}, {"Channel": "PJSIP/1001-0001"}

    def names(self) -> list[str]:
        return [name for name, _ in self.actions]


class World:
    def __init__(self, acd: Acd, ami: ScriptedAmi) -> None:
        self.acd, self.ami = acd, ami
        self.control = CallControl(acd)
        self.notices: list[Notice] = []
        acd.listeners.append(self.notices.append)

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


@pytest.fixture
async def acd_world(tmp_path: Path) -> AsyncIterator[World]:
    db = await open_db(tmp_path / "cc.db")
    await save_agent(db, AgentRecord("A1", "Li Lei", "agent", "PJSIP/1001"),
                     SecretStr("pw-A1"))
    await save_agent(db, AgentRecord("S1", "Han Mei", "supervisor", "PJSIP/9001"),
                     SecretStr("pw-S1"))
    settings = AcdSettings(queues=[QueueSettings(name="general", announce_every_s=0),
                                   QueueSettings(name="english", announce_every_s=0)],
                           wrap_up_s=0)
    acd = Acd(settings, db)
    await acd.start()
    ami = ScriptedAmi()
    acd.attach(ami)  # type: ignore[arg-type]
    try:
        yield World(acd, ami)
    finally:
        await acd.close()
        await db.close()


