"""The brokerage hotline through the real Asterisk: scripted DTMF callers, outcomes checked in the
engine's records and the sandbox back office, prompts checked from the call timeline."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from pydantic import SecretStr

from callcenter.broker.interface import OrderStatus, PasswordKind, Side
from callcenter.broker.rules import SHANGHAI
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import (
    DEMO_FUND_PASSWORD,
    DEMO_TRADING_PASSWORD,
    GOLD,
    ORDINARY,
    PLATINUM,
    SILVER,
    seed_demo,
)
from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.telephony.ami import AmiClient, Response
from callcenter.telephony.simcall import SimCaller
from tests.leaks import holds

from .conftest import trading_clock, wait_no_channels
from .hotline import Heard, hotline_call
from .proxy import TcpProxy

PW = DEMO_TRADING_PASSWORD


async def _rows(engine: Engine, sql: str, *args: object) -> list[tuple[object, ...]]:
    assert engine.db is not None
    async with engine.db.execute(sql, args) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def test_self_service_without_and_with_login(engine: Engine, caller: SimCaller) -> None:
    """Quotes, unknown code, survey; login + cash; announcements; call-back; appointment."""
    quote, unknown, cash, news, callback, booking = await asyncio.gather(
        hotline_call(engine, caller, "1w600519w2w4w3w5", caller_id="13800000004"),
        hotline_call(engine, caller, "1w999999", until="zh/refusal/unknown_code"),
        hotline_call(engine, caller, f"3w1w{ORDINARY}#w{PW}w1", until="zh/cash_balance"),
        hotline_call(engine, caller, "4w1w1w1w1", until="zh/announcement/2024_002"),
        hotline_call(engine, caller, "4w2w2", until="zh/callback_booked"),
        hotline_call(engine, caller, "4w2w1w1w1128", until="zh/appointment_booked"),
    )
    # Recognised by caller ID: greeted by tier, but not logged in.
    assert "zh/greet_platinum" in quote.prompts()
    assert quote.outcomes("quote") == ["ok"]
    assert "zh/stock/600519" in quote.prompts() and "zh/quote_last" in quote.prompts()
    assert await _rows(engine, "SELECT rating FROM surveys WHERE call_id = ?",
                       quote.record.id) == [(5,)]
    assert "zh/greet_default" in unknown.prompts()
    assert unknown.outcomes("quote") == ["unknown_code"]
    assert "zh/refusal/unknown_code" in unknown.prompts()
    assert cash.outcomes("login") == ["ok"] and cash.outcomes("cash") == ["ok"]
    assert "zh/cash_balance" in cash.prompts() and "zh/login_ok" in cash.prompts()
    assert news.outcomes("next_item").count("ok") >= 2
    assert "zh/announcement/2024_003" in news.prompts()  # newest first
    assert await _rows(engine, "SELECT kind, phone FROM service_requests WHERE call_id = ?",
                       callback.record.id) == [("callback", "13700000000")]
    rows = await _rows(engine, "SELECT kind, detail FROM service_requests WHERE call_id = ?",
                       booking.record.id)
    assert rows and rows[0][0] == "appointment" and '"open_account"' in str(rows[0][1])


async def test_orders_exactly_once_and_every_refusal_explained(engine: Engine,
                                                              caller: SimCaller) -> None:
    bo = engine.backoffice
    assert bo is not None
    double, hung_up, refused, t_plus_1 = await asyncio.gather(
        # buy, then a bouncing confirm digit: "1w1"
        hotline_call(engine, caller, f"2w{ORDINARY}#w{PW}w1w600000w10*20#w100#w1w1",
                     until="zh/order_after"),
        # confirm and hang up at once
        hotline_call(engine, caller, f"2w{GOLD}#w{PW}w1w601398w6*80#w1000#w1", hold_s=0),
        # a price outside the limits, then an odd lot (in English: the customer's language
        # on record, spoken from the login on)
        hotline_call(engine, caller,
                     f"2w{PLATINUM}#w{PW}w1w600000w99#w100#ww1w600000w10*20#w150#",
                     until="en/refusal/lot_size"),
        # selling shares bought today (T+1)
        hotline_call(engine, caller, f"2w{SILVER}#w{PW}w2w600519w1480#w100#",
                     until="zh/refusal/insufficient_shares"),
    )
    assert double.outcomes("place_order") == ["ok"]
    assert "zh/order_placed" in double.prompts()
    orders = await bo.orders_today(ORDINARY)
    assert [(o.security.code, o.quantity, o.price) for o in orders] == [
        ("600000", 100, Decimal("10.20"))]
    # The caller hung up right after confirming: the order is placed and recorded all the same.
    assert hung_up.outcomes("place_order") == ["ok"]
    assert hung_up.ivr("ivr.caller_hangup") == [{}]
    gold_orders = await bo.orders_today(GOLD)
    assert [(o.security.code, o.quantity) for o in gold_orders] == [("601398", 1000)]
    assert await _rows(engine, "SELECT kind, state, account FROM intents ORDER BY account") == [
        ("order", "done", ORDINARY), ("order", "done", GOLD)]
    assert refused.outcomes("preview_order") == ["price_limit", "lot_size"]
    assert "en/refusal/price_limit" in refused.prompts()
    assert "en/refusal/lot_size" in refused.prompts()
    assert await bo.orders_today(PLATINUM) == []
    assert t_plus_1.outcomes("preview_order") == ["insufficient_shares"]
    assert await bo.orders_today(SILVER) == []


async def test_closed_market_and_cancel_by_number(engine: Engine, caller: SimCaller) -> None:
    bo = engine.backoffice
    assert isinstance(bo, SandboxBackOffice)
    placed = await hotline_call(engine, caller, f"2w{ORDINARY}#w{PW}w1w600000w10*00#w200#w1",
                                until="zh/order_placed")
    assert placed.outcomes("place_order") == ["ok"]
    order_no = (await bo.orders_today(ORDINARY))[0].order_no
    cancel = await hotline_call(engine, caller, f"2w{ORDINARY}#w{PW}w3w{order_no}#w1",
                                until="zh/cancel_done")
    assert cancel.outcomes("cancel_order") == ["ok"]
    assert (await bo.orders_today(ORDINARY))[0].status is OrderStatus.CANCELLED
    # after the close an order is queued for the next opening (backoffice.after_hours), the
    # caller is told so, and it can be cancelled by number until it is sent
    bo.set_clock(dt.datetime(2026, 11, 23, 20, 0))
    closed = await hotline_call(engine, caller, f"2w{ORDINARY}#w{PW}w1w600000w10*20#w100#w1",
                                until="zh/order_queued")
    assert closed.outcomes("place_order") == ["ok"]
    assert "zh/order_queued" in closed.prompts()
    queued = [o for o in await bo.orders_today(ORDINARY) if o.status is OrderStatus.QUEUED]
    assert len(queued) == 1 and queued[0].sends_at is not None
    assert queued[0].sends_at.astimezone(SHANGHAI) == dt.datetime(2026, 11, 24, 9, 15,
                                                                   tzinfo=SHANGHAI)
    withdrawn = await hotline_call(engine, caller,
                                   f"2w{ORDINARY}#w{PW}w3w{queued[0].order_no}#w1",
                                   until="zh/cancel_done")
    assert withdrawn.outcomes("cancel_order") == ["ok"]
    assert {o.status for o in await bo.orders_today(ORDINARY)} == {OrderStatus.CANCELLED}


async def test_bank_securities_transfers(engine: Engine, caller: SimCaller) -> None:
    bo = engine.backoffice
    assert bo is not None
    before = (await bo.cash(ORDINARY)).available
    fund, bank = DEMO_FUND_PASSWORD, "802413"
    moved_in, too_much = await asyncio.gather(
        hotline_call(engine, caller, f"3w2w{ORDINARY}#w{PW}w1w{fund}w{bank}w1000#w1",
                     until="zh/transfer_new_balance"),
        hotline_call(engine, caller, f"3w2w{SILVER}#w{PW}w2w{fund}w400000#w1",
                     until="zh/refusal/over_available"),
    )
    assert moved_in.outcomes("transfer") == ["ok"]
    assert "zh/transfer_done" in moved_in.prompts()
    assert "zh/transfer_new_balance" in moved_in.prompts()
    assert (await bo.cash(ORDINARY)).available == before + Decimal("1000")
    assert too_much.outcomes("transfer") == ["over_available"]
    assert "zh/refusal/over_available" in too_much.prompts()
    assert await _rows(engine, "SELECT kind, state FROM intents ORDER BY state") == [
        ("transfer", "done"), ("transfer", "refused")]


@pytest.fixture
async def watched_engine(settings: Settings) -> AsyncIterator[tuple[Engine, TcpProxy]]:
    """An engine whose AMI link goes through a recording proxy."""
    proxy = TcpProxy(settings.ami.host, settings.ami.port)
    await proxy.start()
    ami = settings.ami.model_copy(update={"port": proxy.port})
    engine = Engine(settings.model_copy(update={"ami": ami}), backoffice_clock=trading_clock)
    await engine.start()
    assert isinstance(engine.backoffice, SandboxBackOffice)
    await seed_demo(engine.backoffice)
    try:
        yield engine, proxy
    finally:
        await engine.stop()
        await proxy.close()


async def test_wrong_passwords_lock_across_calls_and_never_leak(
        watched_engine: tuple[Engine, TcpProxy], settings: Settings,
        caplog: pytest.LogCaptureFixture) -> None:
    engine, proxy = watched_engine
    bo = engine.backoffice
    assert bo is not None
    caplog.set_level(logging.DEBUG)
    # The simulated caller has its own AMI connection: its Originate carries the keys it will
    # press, as a phone would; only the engine's link is watched.
    caller_ami = AmiClient(settings.ami, settings.ami_secret())
    await caller_ami.connect()
    try:
        caller = SimCaller(caller_ami)
        await _passwords(engine, caller, caplog, proxy)
        leftovers = await wait_no_channels(caller_ami)
    finally:
        await caller_ami.close()
    assert leftovers == []


async def _passwords(engine: Engine, caller: SimCaller, caplog: pytest.LogCaptureFixture,
                     proxy: TcpProxy) -> None:
    bo = engine.backoffice
    assert isinstance(bo, SandboxBackOffice)
    async def lock_out() -> tuple[Heard, Heard, Heard]:
        first = await hotline_call(engine, caller, f"3w1w{SILVER}#w111111w222222w333333",
                                   until="zh/refusal/bad_password", times=3)
        second = await hotline_call(engine, caller, f"3w1w{SILVER}#w444444w555555",
                                    until="zh/agent_connecting")
        third = await hotline_call(engine, caller, f"3w1w{SILVER}#w{PW}",
                                   until="zh/agent_connecting")
        return first, second, third

    async def change() -> tuple[Heard, Heard]:
        weak = await hotline_call(engine, caller, f"3w4w{ORDINARY}#w{PW}w{PW}w123456w123456",
                                  until="zh/refusal/weak_password")
        changed = await hotline_call(engine, caller, f"3w4w{ORDINARY}#w{PW}w{PW}w147036w147036",
                                     until="zh/password_changed")
        return weak, changed

    (first, second, third), (weak, changed) = await asyncio.gather(lock_out(), change())
    assert first.outcomes("login") == ["bad_password"] * 3
    assert second.outcomes("login") == ["bad_password", "account_locked"]
    # The lock is told by name, then an agent, with the reason handed over.
    assert second.prompts()[-2:] == ["zh/trading_password_locked", "zh/agent_connecting"]
    assert second.ivr("ivr.handoff")[0]["last_failure"] == "trading_password:account_locked"
    # Locked even for the right password, in a later call.
    assert third.outcomes("login") == ["account_locked"]
    assert third.prompts()[-2:] == ["zh/trading_password_locked", "zh/agent_connecting"]
    assert (await bo.lock_state(SILVER, PasswordKind.TRADING))[1] is True
    # Change of password: a weak one is refused, a good one works.
    assert weak.outcomes("change_password") == ["weak_password"]
    assert changed.outcomes("change_password") == ["ok"]
    assert "zh/password_changed" in changed.prompts()
    await bo.verify_password(ORDINARY, PasswordKind.TRADING, SecretStr("147036"))
    # No password digits anywhere: timelines, the database, logs, the engine's AMI traffic (the
    # key tap heard every key, over TLS, and logged none).
    assert engine.key_tap is not None and engine.key_tap.connected
    assert engine.db is not None
    dump = "\n".join([line async for line in engine.db.iterdump()])
    traffic = bytes(proxy.to_server + proxy.to_client)
    assert b"Event: Newchannel" in traffic  # the proxy did see the calls
    for secret in (PW, "111111", "444444", "147036"):
        assert not holds(dump, secret)
        assert not holds(caplog.text, secret)
        assert not holds(traffic.decode("latin-1"), secret)
    masked = [d for h in (first, weak) for d in h.ivr("ivr.input") if "masked" in d]
    assert masked and all("digits" not in d for d in masked)


async def test_statement_request_is_queued_with_its_record(engine: Engine,
                                                           caller: SimCaller) -> None:
    heard = await hotline_call(engine, caller, f"3w3w{ORDINARY}#w{PW}w1w3",
                               until="zh/statement_queued")
    assert heard.outcomes("request_statement") == ["ok"]
    rows = await _rows(engine, "SELECT r.kind, o.channel, o.topic, o.state FROM service_requests"
                       " r JOIN outbox o ON o.ref = r.ref WHERE r.call_id = ?", heard.record.id)
    assert rows == [("statement", "sms", "callcenter/outbox/sms", "queued")]
    assert "zh/statement_queued" in heard.prompts()


async def test_to_an_agent_in_and_out_of_hours(engine: Engine, caller: SimCaller) -> None:
    bo = engine.backoffice
    assert isinstance(bo, SandboxBackOffice)
    # A wrong password first, then 0 in the account menu: the agent gets the failure too.
    handed = await hotline_call(engine, caller, f"3w1w{GOLD}#w111111w{PW}w0",
                                until="zh/agent_connecting", caller_id="13800000003")
    handoff = handed.ivr("ivr.handoff")
    assert len(handoff) == 1 and handoff[0]["queue"] == "general"
    assert handoff[0]["customer.account"] == GOLD and handoff[0]["customer.tier"] == "gold"
    assert handoff[0]["last_failure"] == "login:bad_password"
    assert handoff[0]["known.tier"] == "gold"  # recognised by caller ID too
    assert "login" in handoff[0]["path"] and "main_menu" in handoff[0]["path"]
    assert "zh/agent_connecting" in handed.prompts()
    bo.set_clock(dt.datetime(2026, 11, 21, 11, 0))  # Saturday: agents are off
    closed = await hotline_call(engine, caller, "0w1", until="zh/callback_booked")
    assert "zh/agent_closed" in closed.prompts() and closed.ivr("ivr.handoff") == []
    assert closed.outcomes("request_callback") == ["ok"]


async def test_messages_are_kept_whether_ended_by_hash_or_by_hanging_up(
        engine: Engine, caller: SimCaller, settings: Settings) -> None:
    pause = "w" * 14  # the caller speaks for 7 s after the prompt and the beep
    by_hash, by_hangup = await asyncio.gather(
        hotline_call(engine, caller, f"4w2w3{pause}#", until="zh/message_saved"),
        hotline_call(engine, caller, "4w2w3", hold_s=12),
    )
    for heard in (by_hash, by_hangup):
        assert heard.outcomes("save_message") == ["ok"]
        rows = await _rows(engine, "SELECT detail FROM service_requests WHERE call_id = ? AND"
                           " kind = 'message'", heard.record.id)
        assert len(rows) == 1
        recording = json.loads(str(rows[0][0]))["recording"]
        assert recording.endswith(f"{heard.record.id}-message.wav")
        assert (settings.pbx.root / recording.lstrip("/")).is_file()
    assert "zh/message_saved" in by_hash.prompts()
    # The caller who hung up spoke (sent audio) until then: the kept message holds it.
    audio = settings.pbx.root / json.loads(str((await _rows(
        engine, "SELECT detail FROM service_requests WHERE call_id = ?",
        by_hangup.record.id))[0][0]))["recording"].lstrip("/")
    assert audio.stat().st_size > 16000  # over a second of 8 kHz 16-bit audio


async def test_account_queries_positions_orders_and_fills(engine: Engine,
                                                          caller: SimCaller) -> None:
    bo = engine.backoffice
    assert isinstance(bo, SandboxBackOffice)
    # A buy at today's limit-up price fills at the market's first step.
    limit_up = (await bo.quote("600000")).limit_up
    assert limit_up is not None
    await bo.place_order(ORDINARY, Side.BUY, "600000", limit_up, 100, "setup-fill")
    bo.set_clock(dt.datetime(2026, 11, 23, 10, 1))
    assert [f.quantity for f in await bo.fills_today(ORDINARY)] == [100]
    prefix = f"3w1w{ORDINARY}#w{PW}w"
    positions, orders, fills = await asyncio.gather(
        hotline_call(engine, caller, prefix + "2w1", until="zh/position_holding", times=2),
        hotline_call(engine, caller, prefix + "3", until="zh/order_record"),
        hotline_call(engine, caller, prefix + "4", until="zh/at_price"),
    )
    assert positions.outcomes("positions") == ["ok"]
    assert positions.outcomes("next_item") == ["ok", "ok"]  # one by one: first, then next
    # by code: 000001 first, then 600000 (bought by the fill above, none of it sellable today)
    stocks = [p for p in positions.prompts() if p.startswith("zh/stock/")]
    assert stocks[:2] == ["zh/stock/000001", "zh/stock/600000"]
    assert "zh/position_sellable" in positions.prompts()
    assert orders.outcomes("orders_today") == ["ok"]
    assert "zh/order_status_filled" in orders.prompts() or "zh/order_record" in orders.prompts()
    assert fills.outcomes("fills_today") == ["ok"]
    assert "zh/side_buy" in fills.prompts() and "zh/stock/600000" in fills.prompts()


async def test_the_handed_off_call_waits_in_the_holding_context(engine: Engine,
                                                                caller: SimCaller) -> None:
    ami = engine.ami
    assert ami is not None
    call_id = await caller.place("9500", "0", hold_s=40, gap_ms=60, tone_ms=60)
    ivr_side = f"{call_id}-b"  # the hotline half of the simulated call (OtherChannelId)
    changed = asyncio.Event()

    def on_event(_event: object) -> None:
        changed.set()

    ami.add_handler(on_event)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        where: Response = {}
        while loop.time() < deadline:
            rows = await ami.action_list("CoreShowChannels")
            where = next((r for r in rows if r.get("Uniqueid") == ivr_side), {})
            if where.get("Context") == "queue-hold" and where.get("Application") == "WaitExten":
                break
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 1.0)
        assert where.get("Context") == "queue-hold", where
        queue = await ami.action("Getvar", Channel=where["Channel"], Variable="CC_QUEUE")
        assert queue.get("Value") == "general"
        await ami.action("Hangup", Channel=where["Channel"])
        await caller.wait_end(call_id, 30)
    finally:
        ami.remove_handler(on_event)
