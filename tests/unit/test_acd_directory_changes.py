"""An agent changed while the ACD runs (the administration API's ``PUT /agents``): the next
offer routes by the new record; a hot-desked seat keeps its phone unless the record's phone
changed; a seat in a call keeps its phone until the call is over; VIP-team membership changes
the queues' policies; a Ready seat moved to a phone that cannot ring goes Not Ready."""

from __future__ import annotations

import dataclasses

from callcenter.acd.seat import PHONE_GONE, SeatState
from callcenter.store.agents import AgentRecord

from .acd_world import AGENTS, World

A1 = AGENTS[0]


async def test_a_changed_phone_rings_only_after_the_call_in_progress(acd_world: World) -> None:
    acd = acd_world.acd
    call = await acd_world.busy("A1")
    acd.add_agent(dataclasses.replace(A1, endpoint="PJSIP/1002", skills={"general": 9}))
    rt = acd.seat("A1")
    assert rt.agent.endpoint == "PJSIP/1001" and rt.agent.skills == {"general": 9}
    assert rt.call is call
    acd_world.agent_hangs_up("A1")
    await acd_world.until(lambda: rt.call is None)
    assert rt.agent.endpoint == "PJSIP/1002" and rt.next_endpoint == ""
    acd.set_state("A1", "ready")
    acd_world.caller("c-2")
    await acd_world.until(lambda: acd_world.offered("A1") == "c-2"
                          and len(acd_world.ami.originates()) == 2)
    assert [h["Channel"] for h in acd_world.ami.originates()][-1] == "PJSIP/1002", \
        acd_world.ami.originates()


async def test_a_hot_desked_seat_keeps_its_phone_when_only_skills_change(
        acd_world: World) -> None:
    acd = acd_world.acd
    acd.use_phone("A1", "2001")   # an extension: the site's phone_endpoint
    hot_desk = acd.seat("A1").agent.endpoint
    assert hot_desk != "PJSIP/1001"
    acd.add_agent(dataclasses.replace(A1, skills={"general": 3}))
    assert acd.seat("A1").agent.endpoint == hot_desk
    acd.add_agent(dataclasses.replace(A1, endpoint="PJSIP/1003"))
    assert acd.seat("A1").agent.endpoint == "PJSIP/1003"  # the record's phone moved: it wins


async def test_a_ready_seat_moved_to_a_phone_that_cannot_ring_goes_not_ready(
        acd_world: World) -> None:
    acd = acd_world.acd
    acd.set_state("A1", "ready")
    acd.phone_check = lambda endpoint: "not registered" if endpoint == "PJSIP/1009" else None
    acd.add_agent(dataclasses.replace(A1, endpoint="PJSIP/1009"))
    rt = acd.seat("A1")
    assert (rt.seat.state, rt.seat.reason) == (SeatState.NOT_READY, PHONE_GONE)


async def test_vip_team_membership_takes_effect_at_once(acd_world: World) -> None:
    acd = acd_world.acd
    before = {name: policy for name, policy in acd.policies.items()}
    acd.add_agent(dataclasses.replace(A1, vip_team=True))
    assert acd.policies != before
    assert "A1" in repr(acd.policies["general"])
    acd.add_agent(AgentRecord("A7", "New", "agent", "PJSIP/1007"))
    assert acd.seat("A7").seat.state is SeatState.LOGGED_OUT
