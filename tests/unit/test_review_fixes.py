"""Regressions found in review: back navigation across sub-flows, idempotency keys, the shared
connection's transactions, schedule validation."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiosqlite
import pytest
from pydantic import ValidationError

from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import ORDINARY, seed_demo
from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.errors import StoreError
from callcenter.ivr.actions import BackgroundWork, CallSession, HotlineActions
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flow_model import Schedule
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.interpreter import Call
from callcenter.ivr.runner import run_action
from callcenter.ivr.tryout import try_flow
from callcenter.store import hotline as records
from callcenter.store.db import open_db
from callcenter.store.tx import transaction


@pytest.fixture(scope="module")
def flows() -> FlowSet:
    return load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)


async def test_back_after_a_subflow_returned_stays_in_the_main_menu(flows: FlowSet) -> None:
    got = await try_flow(flows, "hotline", "1 600519 2 * 1 000001")
    # '*' on the main menu (after quotes returned) has nowhere to go back to: main menu again,
    # and '1' still means quotes.
    assert [a for a in got.actions if a[0] == "quote"] == [("quote", "ok"), ("quote", "ok")]
    assert "zh/stock/000001" in got.prompts


async def test_back_from_an_input_returns_to_the_menu_that_led_there(flows: FlowSet) -> None:
    got = await try_flow(flows, "hotline", "2 10000001# 135790 1 * 2")
    menus = [p for p in got.prompts if p == "zh/order_menu"]
    assert len(menus) >= 2  # the order menu again, not the main menu


async def test_order_actions_refuse_a_missing_key_and_a_reused_one(tmp_path: Path) -> None:
    db = await open_db(tmp_path / "e.db")
    office = await SandboxBackOffice.open(tmp_path / "bo.db")
    try:
        await seed_demo(office)
        session = CallSession("c", "", account=ORDINARY)
        table = HotlineActions(office, db, BackgroundWork(), session).table()
        args = {"side": "buy", "code": "600000", "price": "10.20", "quantity": 100}
        outcome = await run_action(table, Call("place_order", args))
        assert outcome.outcome == "error"
        assert await office.orders_today(ORDINARY) == []
        await records.begin_intent(db, "k1", "order", "c", ORDINARY, {"code": "600000"})
        with pytest.raises(StoreError, match="reused"):
            await records.begin_intent(db, "k1", "order", "c", ORDINARY, {"code": "600036"})
    finally:
        await office.close()
        await db.close()


async def test_a_cancelled_begin_does_not_wedge_the_shared_connection(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = await open_db(path)
    other = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute("PRAGMA busy_timeout = 2000")
        await other.execute("BEGIN IMMEDIATE")  # someone else holds the write lock

        async def write() -> None:
            async with transaction(db):
                await db.execute("INSERT INTO surveys VALUES ('a', NULL, 5, 0)")

        task = asyncio.create_task(write())
        await asyncio.sleep(0.2)  # let it block inside BEGIN (the pause is the point here)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiosqlite.OperationalError):
            await task
        await other.execute("ROLLBACK")
        assert not db.in_transaction
        await write()  # the next writer is fine
        async with db.execute("SELECT COUNT(*) FROM surveys") as cur:
            row = await cur.fetchone()
            assert row is not None and row[0] == 1
    finally:
        await other.close()
        await db.close()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("timezone", "Mars/Olympus", "unknown timezone"),
    ("holidays", ["2026-1-1"], "not a date"),
    ("weekly", {"mon": ["22:00-06:00"]}, "ends before it starts"),
    ("weekly", {"mon": ["09:00-24:59"]}, "must look like"),
])
def test_schedules_are_validated(field: str, value: object, message: str) -> None:
    body: dict[str, object] = {"weekly": {"mon": ["09:00-17:00"]}, field: value}
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate(body)
