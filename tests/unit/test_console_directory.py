"""The console's transfer directory (``seats/directory.py``, the ``directory`` request) on a real
``Acd`` and database: who is listed, in which order, which agents a call can go to now, the
queues' waiting callers and the saved numbers of ``console.directory_numbers``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from callcenter.acd.calls import CallState
from callcenter.acd.records import ActiveCall, Waiter
from callcenter.acd.seat import SeatState
from callcenter.acd.service import Acd
from callcenter.broker.interface import Tier
from callcenter.config import AcdSettings, ConsoleSettings, DirectoryNumber, QueueSettings
from callcenter.seats import directory as d
from callcenter.seats import protocol as p
from callcenter.seats.backend import EngineConsoleBackend
from callcenter.seats.console_api import AgentIdentity
from callcenter.store.agents import AgentRecord
from callcenter.store.db import open_db

ME = AgentIdentity("1001", "Li Lei", p.Role.AGENT)
NUMBERS = (DirectoryNumber(label="Fund desk", number="95555"),
           DirectoryNumber(label="Head office", number="+862161234567"))


@pytest.fixture
async def acd(tmp_path: Path) -> AsyncIterator[Acd]:
    db = await open_db(tmp_path / "cc.db")
    settings = AcdSettings(queues=[QueueSettings(name="general", target_s=20),
                                   QueueSettings(name="vip", target_s=10)])
    acd = Acd(settings, db, clock=lambda: 1_718_000_000.0)
    await acd.start()
    for agent_id, name in [("1001", "Li Lei"), ("1002", "Wang Fang"), ("1003", "Zhao Min"),
                           ("1004", "Qian Jun"), ("1005", "Sun Li"), ("1006", "Zhou Yu"),
                           ("1007", "Wu Di")]:
        acd.add_agent(AgentRecord(agent_id, name, "agent", f"PJSIP/{agent_id}"))
    try:
        yield acd
    finally:
        await acd.close()
        await db.close()


def put(acd: Acd, agent_id: str, state: SeatState, reason: str = "") -> None:
    rt = acd.seat(agent_id)
    rt.seat.state, rt.seat.reason = state, reason


def on_a_call(acd: Acd, agent_id: str) -> None:
    waiter = Waiter(f"c-{agent_id}", "general", Tier.GOLD, 0.0, "PJSIP/trunk-1", "u-1")
    acd.seat(agent_id).call = ActiveCall(waiter, f"acd-{agent_id}", 0.0, recording="",
                                         agent_channel=f"PJSIP/{agent_id}-1",
                                         state=CallState.CONNECTED)
    put(acd, agent_id, SeatState.ON_CALL)


def waiting(acd: Acd, queue: str, n: int) -> None:
    for i in range(n):
        call_id = f"{queue}-{i}"
        acd.waiting[queue][call_id] = Waiter(call_id, queue, Tier.ORDINARY, 0.0,
                                             f"PJSIP/trunk-{i}", f"u-{call_id}")


def ids(reply: dict[str, Any]) -> list[str]:
    return [a["agent_id"] for a in reply["agents"]]


async def test_ready_agents_first_then_busy_not_ready_logged_out(acd: Acd) -> None:
    put(acd, "1001", SeatState.READY)           # me: never listed
    put(acd, "1002", SeatState.NOT_READY, "break")
    put(acd, "1003", SeatState.READY)
    on_a_call(acd, "1004")
    put(acd, "1005", SeatState.WRAP_UP)
    put(acd, "1006", SeatState.READY)
    # 1007 stays logged out
    reply = d.directory_reply(acd, "1001", ())
    assert ids(reply) == ["1003", "1006", "1004", "1005", "1002", "1007"]
    by_id = {a["agent_id"]: a for a in reply["agents"]}
    assert by_id["1003"] == {"agent_id": "1003", "name": "Zhao Min", "state": "ready",
                             "reason": "", "available": True}
    assert by_id["1002"]["state"] == "not_ready"
    assert by_id["1002"]["reason"] == "break"
    assert [a["available"] for a in reply["agents"]] == [True, True, False, False, False,
                                                         False]


async def test_a_ready_seat_without_a_phone_is_not_available(acd: Acd) -> None:
    put(acd, "1002", SeatState.READY)
    put(acd, "1003", SeatState.READY)
    acd.seat("1003").agent = AgentRecord("1003", "Zhao Min", "agent", "")
    reply = d.directory_reply(acd, "1001", ())
    assert ids(reply)[:2] == ["1002", "1003"]
    assert [a["available"] for a in reply["agents"][:2]] == [True, False]


async def test_queues_with_their_waiting_callers_and_the_saved_numbers(acd: Acd) -> None:
    waiting(acd, "general", 3)
    reply = d.directory_reply(acd, "1001", NUMBERS)
    assert reply["queues"] == [{"name": "general", "waiting": 3}, {"name": "vip", "waiting": 0}]
    assert reply["numbers"] == [{"label": "Fund desk", "number": "95555"},
                                {"label": "Head office", "number": "+862161234567"}]
    json.dumps(reply)  # goes out as JSON as it is


async def test_the_directory_request_is_an_agents_and_answered_by_the_backend(
        acd: Acd, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "directory" in p.ALLOWED[p.Role.AGENT]
    request = p.REQUEST.validate_python({"v": 1, "id": "x", "type": "directory"})
    assert isinstance(request, p.Directory)
    with pytest.raises(ValidationError):
        p.REQUEST.validate_python({"v": 1, "id": "x", "type": "directory", "who": "all"})
    put(acd, "1002", SeatState.READY)
    backend = EngineConsoleBackend(acd, acd.db, object(),  # type: ignore[arg-type]
                                   directory_numbers=NUMBERS[:1])
    try:
        reply = await backend.command(ME, request)
    finally:
        await backend.close()
    assert ids(reply)[0] == "1002"
    assert "1001" not in ids(reply)
    assert reply["numbers"] == [{"label": "Fund desk", "number": "95555"}]


def test_the_setting_defaults_to_no_numbers_and_checks_them() -> None:
    assert ConsoleSettings().directory_numbers == []
    settings = ConsoleSettings.model_validate(
        {"directory_numbers": [{"label": "Fund desk", "number": "95555"}]})
    assert settings.directory_numbers == [DirectoryNumber(label="Fund desk", number="95555")]
    for bad in ({"label": "x", "number": "9555-5"}, {"label": "", "number": "95555"},
                {"label": "x", "number": "95555", "note": "?"}, {"label": "x", "number": "1"}):
        with pytest.raises(ValidationError):
            ConsoleSettings.model_validate({"directory_numbers": [bad]})
