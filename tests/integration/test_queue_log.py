"""The Asterisk-format queue_log through the real Asterisk: logins, a ring no one answers, calls
the caller and the agent end, a pause with its reason, an abandon, a blind transfer and a
logout, each written as app_queue would, every line parsed as Asterisk's format
(``tests/asterisk_queue_log.py``). Every other ACD integration test checks its own file the same
way when its engines stop (``acd_helpers.engines_for``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.acd.control import CallControl
from callcenter.acd.seat import SeatState
from callcenter.acd.targets import Target
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.telephony.pbx import Pbx
from tests.integration.acd_helpers import (
    Factory,
    agent,
    check_queue_log,
    direct_caller,
    engines_for,
    hang_up,
    until,
    waiting_ids,
)

pytestmark = pytest.mark.integration


def qlog_settings(tmp_path: Path) -> Settings:
    return load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                         backoffice_path=tmp_path / "backoffice.db",
                         console={"enabled": False, "port": 0},
                         acd={"queues": [{"name": "general", "announce_every_s": 0,
                                          "manager_first_s": 0, "vip_team_s": 0}],
                              "ring_timeout_s": 3, "wrap_up_s": 1,
                              "require_disposition": False,
                              "queue_log_file": tmp_path / "asterisk" / "queue_log"})


@pytest.fixture
async def start_engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Factory]:
    async with engines_for(lambda: qlog_settings(tmp_path)) as start:
        yield start


def state(engine: Engine, agent_id: str) -> SeatState:
    assert engine.acd is not None
    return engine.acd.seats[agent_id].seat.state


async def test_a_shift_of_queue_events_in_asterisks_format(start_engine: Factory,
                                                           tmp_path: Path) -> None:
    engine = await start_engine([agent("A1", "1001"), agent("A2", "3001", "agent-noanswer")])
    acd = engine.acd
    assert acd is not None and engine.queue_log is not None
    control = CallControl(acd)
    # A2's phone never answers: RINGNOANSWER, A2 paused "no answer"; A1 takes the call and
    # the caller hangs up: COMPLETECALLER
    first, _ = await direct_caller(engine)
    acd.set_state("A2", "ready")
    await until(engine, lambda: state(engine, "A2") is SeatState.NOT_READY, 20, "A2 RNA")
    acd.set_state("A1", "ready")
    await until(engine, lambda: state(engine, "A1") is SeatState.ON_CALL, 20, "A1 on call")
    await hang_up(engine, f"{first}-b")
    await until(engine, lambda: state(engine, "A1") is SeatState.READY, 20, "A1 ready")
    # the agent ends the next one: COMPLETEAGENT
    second, _ = await direct_caller(engine)
    await until(engine, lambda: state(engine, "A1") is SeatState.ON_CALL, 20, "A1 on call")
    await until(engine, lambda: acd.seats["A1"].call.agent_channel,  # type: ignore[union-attr]
                10, "agent channel known")
    await control.hangup("A1")
    await until(engine, lambda: state(engine, "A1") is SeatState.READY, 20, "A1 ready")
    # a pause with its reason; a caller nobody takes hangs up: ABANDON
    acd.set_state("A1", "not_ready", "meal")
    third, _ = await direct_caller(engine)
    await until(engine, lambda: third in waiting_ids(engine), 10, "third waits")
    await hang_up(engine, f"{third}-b")
    await until(engine, lambda: third not in waiting_ids(engine), 10, "third gone")
    # back from the meal; the next call is sent on to a number: BLINDTRANSFER; then log out
    acd.set_state("A1", "ready")
    fourth, _ = await direct_caller(engine)
    await until(engine, lambda: state(engine, "A1") is SeatState.ON_CALL, 20, "A1 on call")
    await until(engine, lambda: acd.seats["A1"].call.agent_channel,  # type: ignore[union-attr]
                10, "agent channel known")
    await control.transfer("A1", Target(kind="number", value="13912345678"))
    await until(engine, lambda: state(engine, "A1") is SeatState.READY, 20, "A1 free")
    acd.set_state("A1", "logged_out")
    await engine.queue_log.flush()

    lines = check_queue_log(tmp_path / "asterisk" / "queue_log")
    by_call = {cid: [(x.agent, x.event) for x in lines if x.callid == cid]
               for cid in (first, second, third, fourth)}
    # Who left first (COMPLETECALLER / COMPLETEAGENT) is read from the order Asterisk reports
    # the two legs' hangups, which is not reliable when both go at once (a known limit, in
    # acd/asterisk_qlog.py; the unit tests check the mapping): either is a complete call here.
    complete = {("Agent/A1", "COMPLETECALLER"), ("Agent/A1", "COMPLETEAGENT")}
    assert by_call[first][:3] == [("NONE", "ENTERQUEUE"), ("Agent/A2", "RINGNOANSWER"),
                                  ("Agent/A1", "CONNECT")]
    assert len(by_call[first]) == 4 and by_call[first][3] in complete
    assert by_call[second][:2] == [("NONE", "ENTERQUEUE"), ("Agent/A1", "CONNECT")]
    assert len(by_call[second]) == 3 and by_call[second][2] in complete
    assert by_call[third] == [("NONE", "ENTERQUEUE"), ("NONE", "ABANDON")]
    assert by_call[fourth] == [("NONE", "ENTERQUEUE"), ("Agent/A1", "CONNECT"),
                               ("Agent/A1", "BLINDTRANSFER")]
    rna = next(x for x in lines if x.event == "RINGNOANSWER")
    assert 2500 <= int(rna.data[0]) <= 10_000          # rang ~3 s (ring_timeout_s), in ms
    transfer = next(x for x in lines if x.event == "BLINDTRANSFER")
    assert transfer.data[:2] == ("*******5678", "number")   # the number masked
    members = [(x.agent, x.queue, x.event, x.data[0]) for x in lines if x.callid == "NONE"
               and x.event != "QUEUESTART"]
    assert ("Agent/A1", "general", "ADDMEMBER", "PAUSED") in members
    assert ("Agent/A2", "general", "PAUSE", "no answer") in members
    assert ("Agent/A1", "general", "PAUSE", "meal") in members
    assert ("Agent/A1", "NONE", "PAUSEALL", "meal") in members
    assert members[-1] == ("Agent/A1", "general", "REMOVEMEMBER", "")
    assert [x.event for x in lines].count("UNPAUSE") >= 2      # login -> ready, meal -> ready
    # the file is the engine's: not world-readable
    assert (tmp_path / "asterisk" / "queue_log").stat().st_mode & 0o007 == 0
