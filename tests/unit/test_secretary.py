"""The financial secretary's core: every kind, quiet hours, stable keys, price alert arming."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from callcenter.broker.interface import (
    Board,
    Cash,
    Customer,
    Fill,
    Position,
    Security,
    Side,
    Tier,
    TransferDirection,
)
from callcenter.broker.rules import SHANGHAI
from callcenter.channels.secretary import (
    MAX_PRICE_ALERTS_PER_DAY,
    Channel,
    DailySummary,
    FillEvent,
    FundEvent,
    IpoEvent,
    Kind,
    Notice,
    PriceArm,
    PriceObservation,
    QuietHours,
    Subscription,
    canonical_params,
    notices_for,
    observe_price,
    resolve_address,
    summarize,
)
from callcenter.channels.templates import render_text

D = Decimal
MONDAY = dt.date(2024, 6, 3)
CMB = Security("600036", "招商银行", "China Merchants Bank", Board.MAIN, "SH")
MOUTAI = Security("600519", "贵州茅台", "Kweichow Moutai", Board.MAIN, "SH")
EARLY = dt.datetime(2024, 6, 1, tzinfo=SHANGHAI).timestamp()


def at(hh: int, mm: int = 0, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI)


def sub(kind: Kind, *, id: int = 1, account: str = "10000001", channel: Channel = Channel.SMS,
        params: dict[str, str] | None = None, quiet: QuietHours | None = None,
        created_at: float = EARLY, active: bool = True) -> Subscription:
    return Subscription(id, account, kind, channel, params or {}, quiet, created_at, "ivr",
                        active)


def fill_event(account: str = "10000001", fill_id: str = "30000001-1",
               when: dt.datetime | None = None) -> FillEvent:
    return FillEvent(account, fill_id, Fill("30000001", CMB, Side.BUY, D("41.00"), 200,
                                            when or at(10, 5)))


def rendered(notice: Notice) -> str:
    """The notice's data fills its template (the channel servers' contract)."""
    text = render_text(notice.template, notice.lang, notice.data,
                       account=notice.subscription.account)
    return text.body


# --- subscriptions --------------------------------------------------------------------------------


def test_params_are_checked_and_written_one_way() -> None:
    assert canonical_params("fill", "sms", None) == {}
    assert canonical_params(Kind.PRICE_ABOVE, Channel.SMS, {"code": "600519", "price": "1500"}) \
        == {"code": "600519", "price": "1500.00"}
    assert canonical_params("price_below", "email", {"code": "600036", "price": D("40.5")}) \
        == {"code": "600036", "price": "40.50"}
    assert canonical_params("ipo", "fax", {"fax": "02161234567"}) == {"fax": "02161234567"}
    refused: list[tuple[str, str, dict[str, object], str]] = [
        ("price_above", "sms", {"code": "600519"}, "price"),
        ("price_above", "sms", {"code": "6005", "price": "1"}, "6-digit"),
        ("price_above", "sms", {"code": "600519", "price": 1500.0}, "never float"),
        ("price_above", "sms", {"code": "600519", "price": "12.345"}, "2 decimals"),
        ("price_above", "sms", {"code": "600519", "price": "0"}, "above zero"),
        ("fill", "fax", {}, "fax number"),
        ("fill", "sms", {"code": "600519"}, "unexpected"),
    ]
    for kind, channel, params, message in refused:
        with pytest.raises(ValueError, match=message):
            canonical_params(kind, channel, params)
    with pytest.raises(ValueError):
        canonical_params("weather", "sms", {})
    with pytest.raises(ValueError):
        canonical_params("fill", "pigeon", {})


# --- quiet hours ----------------------------------------------------------------------------------


def test_quiet_hours_within_a_day() -> None:
    lunch = QuietHours.parse("12:00", "13:30")
    assert lunch is not None
    assert lunch.release(at(11, 59)) is None
    assert lunch.release(at(12, 0)) == at(13, 30)
    assert lunch.release(at(13, 29)) == at(13, 30)
    assert lunch.release(at(13, 30)) is None
    # another zone's clock is read in Shanghai time: 04:30 UTC is 12:30 there
    assert lunch.release(dt.datetime(2024, 6, 3, 4, 30, tzinfo=dt.UTC)) == at(13, 30)


def test_quiet_hours_across_midnight() -> None:
    night = QuietHours.parse("22:00", "07:00")
    assert night is not None
    tuesday = MONDAY + dt.timedelta(days=1)
    assert night.release(at(21, 59)) is None
    assert night.release(at(22, 0)) == at(7, 0, tuesday)        # until tomorrow morning
    assert night.release(at(23, 30)) == at(7, 0, tuesday)
    assert night.release(at(0, 0)) == at(7, 0)                  # after midnight: this morning
    assert night.release(at(6, 59)) == at(7, 0)
    assert night.release(at(7, 0)) is None
    assert night.text() == ("22:00", "07:00")


def test_quiet_hours_edge_cases() -> None:
    assert QuietHours.parse(None, None) is None
    same = QuietHours.parse("08:00", "08:00")
    assert same is not None and same.release(at(8, 0)) is None   # no quiet hours at all
    for start, end in [("22:00", None), ("24:00", "07:00"), ("7:00", "08:00"), ("", "")]:
        with pytest.raises(ValueError):
            QuietHours.parse(start, end)
    with pytest.raises(ValueError, match="aware"):
        QuietHours(dt.time(1), dt.time(2)).release(dt.datetime(2024, 6, 3, 1, 30))


def test_a_notice_made_in_quiet_hours_waits_for_their_end() -> None:
    night = QuietHours.parse("22:00", "07:00")
    s = sub(Kind.FILL, quiet=night)
    [late] = notices_for(fill_event(), [s], at(23, 0))
    assert late.not_before == at(7, 0, MONDAY + dt.timedelta(days=1))
    [now] = notices_for(fill_event(), [s], at(10, 6))
    assert now.not_before is None


# --- every kind -----------------------------------------------------------------------------------


def test_fill_notice() -> None:
    [n] = notices_for(fill_event(), [sub(Kind.FILL)], at(10, 6))
    assert (n.template, n.lang, n.event_key) == ("fill", "zh", "fill:30000001-1")
    assert n.data == {"account": "10000001", "side": "buy", "code": "600036", "name": "招商银行",
                      "qty": 200, "price": "41.00", "time": "2024-06-03 10:05",
                      "order_no": "30000001"}
    assert "买入 招商银行（600036）200 股，成交价 41.00 元" in rendered(n)
    [en] = notices_for(fill_event(), [sub(Kind.FILL)], at(10, 6), langs={"10000001": "en"})
    assert "Bought 200 shares of China Merchants Bank (600036) at 41.00 CNY" in rendered(en)


def test_fund_notices_in_and_out() -> None:
    out = FundEvent("10000001", "60000001", TransferDirection.SECURITIES_TO_BANK, D("1000.5"),
                    D("48999.50"), at(10))
    into = FundEvent("10000001", "60000002", TransferDirection.BANK_TO_SECURITIES, D("2000"),
                     D("50999.50"), at(10, 1))
    s = sub(Kind.FUND, channel=Channel.EMAIL)
    [n_out] = notices_for(out, [s], at(10, 2))
    [n_in] = notices_for(into, [s], at(10, 2), langs={"10000001": "en"})
    assert (n_out.template, n_out.event_key) == ("fund", "fund:60000001")
    assert (n_out.data["change"], n_out.data["available"]) == ("-1000.50", "48999.50")
    assert n_out.data["reason"] == "证券转银行"
    assert "资金变动 -1,000.50 元（证券转银行），可用资金 48,999.50 元" in rendered(n_out)
    assert (n_in.data["change"], n_in.data["reason"]) == ("2000.00", "bank to securities")
    assert "cash changed by +2,000.00 CNY" in rendered(n_in)


def test_ipo_notice_while_payment_is_due() -> None:
    event = IpoEvent("10000003", "IPO-0001", "787901", "示范科技", "Shifan Technology", 500,
                     D("23.80"), MONDAY)
    s = sub(Kind.IPO, account="10000003")
    [n] = notices_for(event, [s], at(9))
    assert (n.template, n.event_key) == ("ipo", "ipo:IPO-0001")
    assert (n.data["amount"], n.data["qty"], n.data["pay_date"]) == ("11900.00", 500,
                                                                     "2024-06-03")
    assert "中签 示范科技（787901）500 股，应缴 11,900.00 元" in rendered(n)
    # past its pay date there is nothing left to do: no notice
    assert notices_for(event, [s], at(9, day=MONDAY + dt.timedelta(days=1))) == []


def test_daily_summary_notice() -> None:
    event = DailySummary("10000001", MONDAY, D("93500.456"), D("-120.5"), 2, at(15, 30))
    [n] = notices_for(event, [sub(Kind.DAILY_SUMMARY)], at(15, 30))
    assert (n.template, n.event_key) == ("daily_summary", "daily_summary:2024-06-03")
    assert n.data == {"account": "10000001", "date": "2024-06-03", "total_assets": "93500.46",
                      "pnl": "-120.50", "fill_count": 2}
    assert "总资产 93,500.46 元，当日盈亏 -120.50 元，成交 2 笔" in rendered(n)


def test_only_the_accounts_active_subscriptions_of_that_kind() -> None:
    subs = [sub(Kind.FILL, id=1), sub(Kind.FILL, id=2, channel=Channel.EMAIL),
            sub(Kind.FILL, id=3, account="10000002"), sub(Kind.FUND, id=4),
            sub(Kind.FILL, id=5, active=False)]
    made = notices_for(fill_event(), subs, at(10, 6))
    assert [n.subscription.id for n in made] == [1, 2]     # one per channel chosen


def test_events_from_before_the_subscription_are_not_announced() -> None:
    s = sub(Kind.FILL, created_at=at(10, 30).timestamp())
    assert notices_for(fill_event(when=at(10, 5)), [s], at(10, 31)) == []
    assert len(notices_for(fill_event(when=at(10, 30)), [s], at(10, 31))) == 1


def test_event_keys_and_message_ids_are_stable() -> None:
    s = sub(Kind.FILL)
    first = notices_for(fill_event(), [s], at(10, 6))
    again = notices_for(fill_event(), [s], at(16, 0))        # seen again later, or after a restart
    assert [n.event_key for n in first] == [n.event_key for n in again]
    assert [n.message_id for n in first] == [n.message_id for n in again]
    other = notices_for(fill_event(fill_id="30000001-2"), [s], at(10, 6))
    assert other[0].message_id != first[0].message_id
    assert notices_for(fill_event(), [sub(Kind.FILL, id=2)], at(10, 6))[0].message_id \
        != first[0].message_id
    mid = first[0].message_id
    assert 8 <= len(mid) <= 64 and mid.replace("-", "").isalnum()


# --- price alerts ---------------------------------------------------------------------------------


def observe(price: str, when: dt.datetime, subs: list[Subscription],
            arms: dict[int, PriceArm]) -> list[Notice]:
    obs = PriceObservation("600519", "贵州茅台", "Kweichow Moutai", D(price), when)
    notices, changed = observe_price(obs, subs, arms, when)
    arms.update(changed)
    return notices


def test_price_alert_once_per_crossing_rearmed_after_going_back() -> None:
    above = sub(Kind.PRICE_ABOVE, params={"code": "600519", "price": "1500.00"})
    arms: dict[int, PriceArm] = {}
    assert observe("1490.00", at(9, 30), [above], arms) == []
    [n] = observe("1500.00", at(9, 31), [above], arms)               # at the level counts
    assert (n.template, n.event_key) == ("price_alert", "price_above:1500.00:2024-06-03:1")
    assert n.data == {"account": "10000001", "code": "600519", "name": "贵州茅台",
                      "price": "1500.00", "direction": "above", "threshold": "1500.00",
                      "time": "2024-06-03 09:31"}
    assert "贵州茅台（600519）现价 1,500.00 元，已高于您设定的 1,500.00 元" in rendered(n)
    assert observe("1510.00", at(9, 32), [above], arms) == []        # still above: once
    assert observe("1505.00", at(9, 33), [above], arms) == []
    assert observe("1499.99", at(9, 34), [above], arms) == []        # back: re-armed
    [again] = observe("1501.00", at(9, 35), [above], arms)
    assert again.event_key == "price_above:1500.00:2024-06-03:2"
    # the next trading day starts armed: a price still above is announced once that day
    tuesday = MONDAY + dt.timedelta(days=1)
    [next_day] = observe("1502.00", at(9, 30, tuesday), [above], arms)
    assert next_day.event_key == "price_above:1500.00:2024-06-04:1"
    assert observe("1503.00", at(9, 31, tuesday), [above], arms) == []


def test_price_below_and_other_codes() -> None:
    below = sub(Kind.PRICE_BELOW, id=7, params={"code": "600519", "price": "1400.00"})
    elsewhere = sub(Kind.PRICE_BELOW, id=8, params={"code": "600036", "price": "99.00"})
    arms: dict[int, PriceArm] = {}
    [n] = observe("1399.00", at(10), [below, elsewhere], arms)
    assert n.subscription.id == 7 and n.data["direction"] == "below"
    assert set(arms) == {7}


def test_a_see_sawing_price_is_capped_per_day() -> None:
    above = sub(Kind.PRICE_ABOVE, params={"code": "600519", "price": "1500.00"})
    arms: dict[int, PriceArm] = {}
    told = []
    for minute in range(20):
        told += observe("1500.00" if minute % 2 else "1499.00", at(10, minute), [above], arms)
    assert len(told) == MAX_PRICE_ALERTS_PER_DAY
    assert arms[1].crossings == 10                                  # counted, not announced


def test_a_lost_arm_state_makes_the_same_key_again() -> None:
    above = sub(Kind.PRICE_ABOVE, params={"code": "600519", "price": "1500.00"})
    [first] = observe("1500.00", at(10), [above], {})
    [after_restart] = observe("1500.00", at(10, 1), [above], {})   # state lost
    assert after_restart.event_key == first.event_key              # the store refuses it
    assert PriceArm.decode(PriceArm(MONDAY, True, 2).encode()) == PriceArm(MONDAY, True, 2)
    assert PriceArm.decode("garbage") is None


def test_notices_for_handles_price_observations_too() -> None:
    above = sub(Kind.PRICE_ABOVE, params={"code": "600519", "price": "1500.00"})
    obs = PriceObservation("600519", "贵州茅台", "Kweichow Moutai", D("1600.00"), at(10))
    [n] = notices_for(obs, [above], at(10), langs={"10000001": "en"})
    assert n.data["name"] == "Kweichow Moutai"
    assert notices_for(obs, [above], at(10), arms={1: PriceArm(MONDAY, True, 1)}) == []


# --- the daily summary and addresses --------------------------------------------------------------


def test_summary_pnl_counts_overnight_bought_and_sold_shares() -> None:
    # held 1000 overnight (prev close 41.20), bought 200 at 41.00, sold 300 at 41.50; last 41.30
    cash = Cash(D("40000.00"), D("39000.00"), D("1000.00"), D("39000.00"))
    positions = [Position(CMB, 900, 700, D("39.00"), D("41.30"))]
    fills = [Fill("1", CMB, Side.BUY, D("41.00"), 200, at(10)),
             Fill("2", CMB, Side.SELL, D("41.50"), 300, at(11))]
    s = summarize("10000001", MONDAY, at(15, 30), cash, positions, fills, {"600036": D("41.20")})
    # 700 x 0.10 + 200 x 0.30 + 300 x 0.30 = 70 + 60 + 90
    assert s.pnl == D("220.00")
    assert s.total_assets == D("40000.00") + D("41.30") * 900
    assert (s.fill_count, s.day, s.account) == (2, MONDAY, "10000001")


def test_summary_with_everything_sold() -> None:
    fills = [Fill("1", MOUTAI, Side.SELL, D("1490.00"), 100, at(10))]
    s = summarize("1", MONDAY, at(15, 30), Cash(D("5"), D("5"), D("0"), D("5")), [], fills,
                  {"600519": D("1480.00")})
    assert (s.pnl, s.total_assets) == (D("1000.00"), D("5.00"))


def test_addresses_by_channel() -> None:
    c = Customer("10000001", "张伟", Tier.ORDINARY, ("13800000001", "13900000001"), None, "zh",
                 "zhang.wei@example.com")
    bare = Customer("10000009", "无名", Tier.ORDINARY, (), None, "zh", None)
    assert resolve_address(sub(Kind.FILL), c) == ("13800000001", "")
    assert resolve_address(sub(Kind.FILL, channel=Channel.EMAIL), c) == (
        "zhang.wei@example.com", "")
    assert resolve_address(sub(Kind.FILL, channel=Channel.FAX, params={"fax": "02161234567"}),
                           c) == ("02161234567", "")
    assert resolve_address(sub(Kind.FILL), bare) == ("", "no mobile number on file")
    assert resolve_address(sub(Kind.FILL, channel=Channel.EMAIL), bare) == (
        "", "no e-mail address on file")
    assert resolve_address(sub(Kind.FILL, channel=Channel.FAX), c) == (
        "", "no fax number in the subscription")
    assert resolve_address(sub(Kind.FILL), None) == ("", "customer not found in the back office")
