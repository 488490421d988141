"""Which phones an agent may use and which numbers the ACD may dial (issue 9, findings 3 and 4);
the ACD through the real Asterisk is in tests/integration/test_acd_trust.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from callcenter.acd.control import dial_rule
from callcenter.acd.seat import SeatState
from callcenter.acd.service import Acd
from callcenter.config import SIM_PHONE_CONTEXTS, AcdSettings
from callcenter.errors import AmiConnectionError, ConfigError, ConsoleError
from callcenter.phones.dialrules import mask
from callcenter.store.agents import AgentRecord, check_endpoint, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami_events import AmiEvent


@pytest.mark.parametrize("endpoint", [
    "PJSIP/1001", "SIP/agent_7", "IAX2/branch-2", "PJSIP/1001@branch-trunk",
    "Local/1001@agent-answer", "Local/7001@agent-slow", "Local/3001@agent-noanswer",
])
def test_provisioned_endpoints(endpoint: str) -> None:
    assert check_endpoint(endpoint) == endpoint


@pytest.mark.parametrize("endpoint", [
    "Local/listen@supervisor-spy", "Local/x@supervisor-spy", "Local/9500@hotline",
    "Local/s@acd-agent", "Local/1@outbound", "Local/1001@agent-answer/n",
    "Local/1001", "Local/1001@agent-answer@x", "Local/s@agent-answer",
    "PJSIP/1001&Local/1@supervisor-spy", "PJSIP/1001,30", "PJSIP/", "DAHDI/1", "pjsip/1001",
    "PJSIP/1001\n", "",
])
def test_anything_else_is_not_a_phone(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="provisioned"):
        check_endpoint(endpoint)


def test_the_simulated_phone_contexts_are_a_setting() -> None:
    assert tuple(AcdSettings().sim_phone_contexts) == SIM_PHONE_CONTEXTS
    with pytest.raises(ConfigError):
        check_endpoint("Local/1001@agent-answer", sim_contexts=())
    assert check_endpoint("Local/1001@lab-phones", sim_contexts=("lab-phones",))


def test_no_setting_can_allow_a_context_the_engine_uses() -> None:
    from pydantic import ValidationError

    for context in ("supervisor-spy", "acd-agent", "outbound", "hotline", "x y"):
        with pytest.raises(ValidationError):
            AcdSettings(sim_phone_contexts=[context])


@pytest.mark.parametrize(("number", "dial"), [("13800000001", "13800000001"),
                                              ("+8613912345678", "13912345678")])
def test_dial_rule_accepts_numbers(number: str, dial: str) -> None:
    assert dial_rule(number) == dial


@pytest.mark.parametrize("number", ["123&Local/9@hotline", "123;x", "*99#", "12#", "", "+",
                                    "1" * 21, "12,30", "1777"])
def test_dial_rule_refuses_the_rest(number: str) -> None:
    with pytest.raises(ConsoleError) as refused:
        dial_rule(number)
    assert refused.value.code == "bad_number"


@pytest.mark.parametrize("number", ["+85291234567", "16812345678", "95555"])
def test_dial_rule_forbids_toll_fraud(number: str, caplog: pytest.LogCaptureFixture) -> None:
    """The site's dial rules (phones/dialrules.py, tested there): a refusal is logged with the
    number masked, and is "forbidden" rather than a bad number."""
    with pytest.raises(ConsoleError) as refused:
        dial_rule(number, "agent", "transfer", who="A1")
    assert refused.value.code == "forbidden"
    assert "A1" in caplog.text and "dial refused" in caplog.text
    assert number not in caplog.text and mask(number) in caplog.text


# -- a ring whose originate answer was lost with the AMI link (the real one: integration) ---------


class LinkLostAmi:
    """An AMI client whose link dropped while the Originate waited; the channel list it gives
    after the reconnect is the test's."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.channels: list[dict[str, str]] = []
        self.actions: list[tuple[str, dict[str, Any]]] = []

    def add_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        pass

    async def originate(self, **headers: Any) -> tuple[dict[str, str], dict[str, str]]:
        self.actions.append(("Originate", headers))
        raise AmiConnectionError("AMI link lost before Originate was answered; not resent")

    async def action(self, name: str, **headers: Any) -> dict[str, str]:
        for _ in range(5):  # a round trip to Asterisk: others run meanwhile
            await asyncio.sleep(0)
        self.actions.append((name, headers))  # done (noted when Asterisk has carried it out)
        return {}

    async def action_list(self, name: str, **headers: Any) -> list[dict[str, str]]:
        assert name == "CoreShowChannels"
        return self.channels


@pytest.fixture
async def ringing(tmp_path: Path) -> AsyncIterator[tuple[Acd, LinkLostAmi, str]]:
    """A1 rings for a waiting caller and the AMI link drops: the ring is unsettled."""
    db = await open_db(tmp_path / "cc.db")
    for agent_id in ("A1", "A2"):
        await save_agent(db, AgentRecord(agent_id, agent_id, "agent", f"PJSIP/{agent_id}"),
                         SecretStr("pw"))
    acd = Acd(AcdSettings(wrap_up_s=0), db)
    await acd.start()
    ami = LinkLostAmi()
    acd.attach(ami)  # type: ignore[arg-type]
    acd.enqueue("c1", "general", "Local/s@queue-hold-1;2", "c1-b", {}, phone="13800000001")
    acd.set_state("A1", "ready")
    call = acd.seats["A1"].call
    assert call is not None
    await asyncio.gather(*acd._tasks)
    try:
        yield acd, ami, call.agent_uniqueid
    finally:
        await acd.close()
        await db.close()


async def test_lost_ring_is_not_no_answer_and_nobody_else_is_offered(
        ringing: tuple[Acd, LinkLostAmi, str]) -> None:
    acd, _ami, _uid = ringing
    rt = acd.seats["A1"]
    assert rt.seat.state is SeatState.RINGING and rt.call is not None and rt.call.unsettled
    acd.set_state("A2", "ready")
    assert acd.seats["A2"].call is None  # the caller is being rung: not offered twice
    assert acd.waiting["general"]["c1"].ringing == "A1"


async def test_answered_while_the_link_was_down_is_connected(
        ringing: tuple[Acd, LinkLostAmi, str]) -> None:
    acd, ami, uid = ringing
    ami.channels = [{"Uniqueid": uid, "Channel": "PJSIP/A1-0001", "ChannelState": "6",
                     "BridgeId": "b1"}, {"Uniqueid": "c1-b", "ChannelState": "6"}]
    await acd.resync({uid: "PJSIP/A1-0001", "c1-b": "Local/s@queue-hold-1;2"})
    rt = acd.seats["A1"]
    assert rt.seat.state is SeatState.ON_CALL
    assert rt.call is not None and rt.call.connected_at is not None and not rt.call.unsettled
    assert rt.call.agent_channel == "PJSIP/A1-0001"
    assert acd.waiting["general"] == {}
    await acd.flush()
    async with acd.db.execute("SELECT call_id, agent_id FROM recordings") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [("c1", "A1")]


@pytest.mark.parametrize("state", ["ringing", "gone"])
async def test_not_answered_the_seat_is_ready_and_the_caller_keeps_the_place(
        ringing: tuple[Acd, LinkLostAmi, str], state: str) -> None:
    acd, ami, uid = ringing
    ami.channels = [{"Uniqueid": "c1-b", "ChannelState": "6"}]
    live = {"c1-b": "Local/s@queue-hold-1;2"}
    if state == "ringing":
        ami.channels.append({"Uniqueid": uid, "Channel": "PJSIP/A1-0001", "ChannelState": "5"})
        live[uid] = "PJSIP/A1-0001"
    acd.set_state("A2", "not_ready", "break")
    await acd.resync(live)
    await asyncio.gather(*acd._tasks)
    rt = acd.seats["A1"]
    # Ready again (not "no answer": not the agent's fault), and so offered the caller again.
    assert rt.seat.reason != "no answer"
    if state == "ringing":
        assert ("Hangup", {"Channel": uid}) in ami.actions
    assert "c1" in acd.waiting["general"]
    assert rt.call is None or rt.call.agent_uniqueid != uid
    await acd.flush()
    async with acd.db.execute("SELECT event FROM queue_log WHERE event = 'noanswer'") as cur:
        assert await cur.fetchall() == []


async def test_a_still_ringing_leg_is_gone_before_the_caller_is_offered_again(
        ringing: tuple[Acd, LinkLostAmi, str]) -> None:
    acd, ami, uid = ringing
    ami.channels = [{"Uniqueid": "c1-b", "ChannelState": "6"},
                    {"Uniqueid": uid, "Channel": "PJSIP/A1-0001", "ChannelState": "5"}]
    await acd.resync({"c1-b": "Local/s@queue-hold-1;2", uid: "PJSIP/A1-0001"})
    await asyncio.gather(*acd._tasks)
    names = [name for name, _ in ami.actions]
    hangup = names.index("Hangup")
    assert names.count("Originate") == 2  # the lost ring, then the caller offered again
    assert hangup < len(names) - 1 - names[::-1].index("Originate"), names


async def test_answered_while_the_link_was_down_counts_talk_from_asterisk(
        ringing: tuple[Acd, LinkLostAmi, str]) -> None:
    acd, ami, uid = ringing
    ami.channels = [{"Uniqueid": uid, "Channel": "PJSIP/A1-0001", "ChannelState": "6",
                     "BridgeId": "b1", "Duration": "00:02:00"}]
    before = acd.clock()
    await acd.resync({uid: "PJSIP/A1-0001", "c1-b": "Local/s@queue-hold-1;2"})
    call = acd.seats["A1"].call
    assert call is not None and call.connected_at is not None
    assert call.connected_at <= before - 119  # not the settle time: the outage is talk time


@pytest.mark.parametrize("leg", ["answered", "ringing"])
async def test_a_restart_while_ringing_settles_the_ring_from_asterisk(
        ringing: tuple[Acd, LinkLostAmi, str], leg: str) -> None:
    """kill -9 while A1's phone rang: on restart the ring is not assumed lost."""
    acd, _ami, uid = ringing
    db = acd.db
    await acd.flush()
    again = Acd(AcdSettings(wrap_up_s=0), db)
    await again.start()
    ami = LinkLostAmi()
    again.attach(ami)  # type: ignore[arg-type]
    state = "6" if leg == "answered" else "5"
    ami.channels = [{"Uniqueid": "c1-b", "ChannelState": "6"},
                    {"Uniqueid": uid, "Channel": "PJSIP/A1-0001", "ChannelState": state,
                     **({"BridgeId": "b1"} if leg == "answered" else {})}]
    try:
        assert again.seats["A1"].seat.state is SeatState.RINGING
        await again.resync({"c1-b": "Local/s@queue-hold-1;2", uid: "PJSIP/A1-0001"})
        await asyncio.gather(*again._tasks)
        rt = again.seats["A1"]
        if leg == "answered":
            assert rt.seat.state is SeatState.ON_CALL
            assert ("Hangup", {"Channel": uid}) not in ami.actions  # the talk is not cut
            assert again.waiting["general"] == {}
            await again.flush()
            async with db.execute("SELECT call_id, agent_id, path FROM recordings") as cur:
                rows = [tuple(r) for r in await cur.fetchall()]
            assert [r[:2] for r in rows] == [("c1", "A1")] and rows[0][2].endswith("c1-A1.wav")
        else:
            assert ("Hangup", {"Channel": uid}) in ami.actions
            assert "c1" in again.waiting["general"]
    finally:
        await again.close()


def test_agents_add_refuses_a_phone_in_another_context(tmp_path: Path) -> None:
    """``callcenter agents add`` (the real command) keeps the same rule as the console."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "CALLCENTER_STATE_DIR": str(tmp_path),
           "CALLCENTER_CONFIG": str(tmp_path / "none.toml")}

    def add(endpoint: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "callcenter", "agents", "add", "A7", "--endpoint", endpoint,
             "--password-stdin"], input="a-password-7\n", capture_output=True, text=True,
            env=env, timeout=60, check=False)

    refused = add("Local/listen@supervisor-spy")
    assert refused.returncode == 1
    assert "not a provisioned phone" in refused.stderr
    assert add("Local/1007@agent-answer").returncode == 0
    assert add("PJSIP/1007").returncode == 0
