"""Asterisk's CDR and CEL, on and in SQLite, with no password in them: a real SIP caller logs in
to the hotline with an account number and trading password (RFC 4733 keys through the sandbox
carrier trunk), then both files are read from the PBX's root."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pytest

from callcenter.broker.seed import DEMO_TRADING_PASSWORD, ORDINARY
from callcenter.engine import Engine
from callcenter.errors import AmiActionError
from callcenter.store.calls import get_call
from callcenter.telephony.ami_events import AmiEvent, NewChannel
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from callcenter.telephony.sipcall import place_sip_call
from tests.integration.conftest import wait_no_channels
from tests.integration.hotline import Heard, hotline_call

pytestmark = pytest.mark.integration

PW = DEMO_TRADING_PASSWORD


def rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return [tuple(r) for r in conn.execute(sql, args)]


async def until_rows(db: Path, sql: str, *args: object, within_s: float = 15
                     ) -> list[tuple[object, ...]]:
    """The rows, once there are some (Asterisk writes a CDR at the hang-up, LINKEDID_END once
    the call's last channel is gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        found = await asyncio.to_thread(rows, db, sql, *args) if db.exists() else []
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def login_call(engine: Engine, keys: str, until_prompt: str) -> Heard:
    """A SIP caller presses ``keys`` until ``until_prompt`` is played; hung up from the PBX."""
    assert engine.ami is not None and engine.controller is not None and engine.db is not None
    ami, controller = engine.ami, engine.controller
    legs: dict[str, str] = {}
    heard = asyncio.Event()

    def on_event(event: AmiEvent) -> None:
        if isinstance(event, NewChannel) and event.info.channel.startswith("PJSIP/carrier-"):
            legs.setdefault(event.info.linkedid, event.info.channel)

    def on_note(call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        if call_id in legs and kind == "ivr.prompts" and until_prompt in detail["ids"].split():
            heard.set()

    ami.add_handler(on_event)
    controller.note_listeners.append(on_note)
    try:
        call = asyncio.create_task(place_sip_call("95500", keys, caller_id="13800000001",
                                                  hold_s=60))
        done, _ = await asyncio.wait({call, asyncio.create_task(heard.wait())}, timeout=90,
                                     return_when=asyncio.FIRST_COMPLETED)
        assert heard.is_set(), (call.result().detail if call in done else "prompt not heard")
        for channel in legs.values():
            with contextlib.suppress(AmiActionError):
                await ami.action("Hangup", Channel=channel)
        result = await asyncio.wait_for(call, 30)
    finally:
        ami.remove_handler(on_event)
        controller.note_listeners.remove(on_note)
    assert result.ok, result.detail
    [call_id] = legs
    await engine.recorder.flush()  # type: ignore[union-attr]
    record = await get_call(engine.db, call_id)
    assert record is not None
    return Heard(record)


async def test_cdr_and_cel_record_the_call_but_never_the_password(engine: Engine,
                                                                   pbx: Pbx) -> None:
    for module in ("res_cdrel_custom.so", "cdr_sqlite3_custom.so", "cel_sqlite3_custom.so"):
        shown = pbx.cli(f"module show like {module.split('.')[0]}")
        assert module in shown and "Running" in shown, shown
    cdr_status, cel_status = pbx.cli("cdr show status"), pbx.cli("cel show status")
    assert re.search(r"Logging:\s+Enabled", cdr_status), cdr_status
    assert "CDR sqlite3 custom" in cdr_status, cdr_status
    assert re.search(r"Logging:\s+Enabled", cel_status), cel_status
    assert "DTMF" not in cel_status, cel_status       # events tracked: never the keys

    logs = pbx.root / "var/log/asterisk"
    cdr, cel = logs / "cdr.db", logs / "cel.db"
    # the files outlive a test session: this test reads what is written from now on
    before = {db: (await asyncio.to_thread(rows, db, f"SELECT max(rowid) FROM {db.stem}"))[0][0]
              or 0 if db.exists() else 0 for db in (cdr, cel)}
    # the SIP caller logs in and hears the cash balance; a simulated caller (a Local
    # channel of the sandbox, whose SendDTMF is in the PBX) does the same
    heard = await login_call(engine, f"3w1w{ORDINARY}#w{PW}w1", "zh/cash_balance")
    assert heard.outcomes("login") == ["ok"]          # the password was typed, and right
    call_id = heard.record.id
    sim = await hotline_call(engine, SimCaller(engine.ami),  # type: ignore[arg-type]
                             f"3w1w{ORDINARY}#w{PW}w1", until="zh/cash_balance")
    assert sim.outcomes("login") == ["ok"]
    await wait_no_channels(engine.ami)  # type: ignore[arg-type]
    cdrs = await until_rows(cdr, "SELECT channel, lastapp, lastdata, disposition FROM cdr"
                                 " WHERE linkedid = ?", call_id)
    assert cdrs, "no CDR for the call"
    assert any(str(r[0]).startswith("PJSIP/carrier-") and r[3] == "ANSWERED" for r in cdrs)
    assert any(r[1] == "AGI" for r in cdrs)           # the IVR ran, through FastAGI
    events = await until_rows(cel, "SELECT eventtype FROM cel WHERE linkedid = ?"
                                   " AND eventtype = 'LINKEDID_END'", call_id)
    assert events, "no LINKEDID_END in CEL for the call"
    kinds = {r[0] for r in await asyncio.to_thread(
        rows, cel, "SELECT eventtype FROM cel WHERE linkedid = ?", call_id)}
    assert {"CHAN_START", "ANSWER", "HANGUP", "CHAN_END"} <= kinds
    assert "DTMF" not in kinds
    assert await until_rows(cel, "SELECT 1 FROM cel WHERE linkedid = ? AND eventtype ="
                                 " 'LINKEDID_END'", sim.record.id), "no CEL end of the sim call"
    # Nowhere: in no column of any row written since the test began (both calls, every leg)
    for db in (cdr, cel):
        written = await asyncio.to_thread(rows, db, f"SELECT * FROM {db.stem} WHERE rowid > ?",
                                          before[db])
        assert len(written) >= 2
        for row in written:
            assert not any(PW in str(value) for value in row), row
