"""Text templates of the channel servers (callcenter/channels/templates.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from callcenter.channels.templates import (
    TEMPLATES,
    fields_of,
    format_money,
    mask_account,
    parse_money,
    render_text,
    required_keys,
)
from callcenter.errors import DeliveryError

SAMPLES: dict[str, dict[str, Any]] = {
    "statement": {"customer": "张三", "as_of": "2026-11-23"},
    "confirmations": {"customer": "张三", "as_of": "2026-11-23"},
    "note": {"customer": "张三", "text": "您的转账已到账。\n如有疑问请来电。"},
    "fill": {"side": "buy", "time": "09:31:05", "name": "浦发银行", "code": "600000",
             "qty": 1000, "price": "8.5"},
    "fund": {"time": "14:02", "change": "-5000", "reason": "银证转出", "available": "80000"},
    "price_alert": {"name": "浦发银行", "code": "600000", "price": "9.10", "threshold": "9",
                    "direction": "above"},
    "ipo": {"name": "示例科技", "code": "688999", "qty": 500, "amount": "12345.6",
            "pay_date": "2026-11-25"},
    "daily_summary": {"date": "2026-11-23", "total_assets": "1234567.891", "pnl": "1520.3",
                      "fill_count": 3},
}
SHORT = ("fill", "fund", "price_alert", "ipo", "daily_summary")


def test_every_template_has_both_languages_with_the_same_fields() -> None:
    assert set(TEMPLATES) == set(SAMPLES)
    for name, texts in TEMPLATES.items():
        assert set(texts) == {"zh", "en"}, name
        assert fields_of(texts["zh"]) == fields_of(texts["en"]), name
        assert required_keys(name, "zh") <= set(SAMPLES[name]) | {"account"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_template_renders(name: str, lang: Any) -> None:
    text = render_text(name, lang, SAMPLES[name], account="310000000001", ref="SR1")
    assert text.subject and "\n" not in text.subject
    assert "{" not in text.subject + text.body
    assert "310000000001" not in text.subject + text.body
    if name in SHORT:
        assert text.body.count("\n") <= 1
    if name not in SHORT:
        assert "SR1" in text.body


def test_short_notices_read_right() -> None:
    acct = {"account": "310000000001"}
    assert render_text("fill", "zh", SAMPLES["fill"], **acct).body == (
        "【示例证券】您的账户 ****0001 于 09:31:05 买入 浦发银行（600000）1,000 股，"
        "成交价 8.50 元。")
    partial = {**SAMPLES["fill"], "qty": 300, "remaining": 1200}    # one part of an order
    assert render_text("fill", "zh", partial, **acct).body == (
        "【示例证券】您的账户 ****0001 于 09:31:05 买入 浦发银行（600000）300 股，"
        "成交价 8.50 元。部分成交，委托尚有 1,200 股未成交。")
    assert render_text("fill", "en", partial, **acct).body.endswith(
        "Bought 300 shares of 浦发银行 (600000) at 8.50 CNY at 09:31:05. "
        "Partly filled: 1,200 shares of the order are still open.")
    last_part = render_text("fill", "zh", {**partial, "remaining": 0}, **acct).body
    assert last_part.endswith("成交价 8.50 元。")                  # the order is now complete
    with pytest.raises(DeliveryError, match="'remaining' must be a whole number"):
        render_text("fill", "zh", {**partial, "remaining": "many"}, **acct)
    assert render_text("fund", "en", SAMPLES["fund"], **acct).body == (
        "[Example Securities] Account ****0001: cash changed by -5,000.00 CNY at 14:02 "
        "(银证转出); available 80,000.00 CNY.")
    assert render_text("daily_summary", "zh", SAMPLES["daily_summary"], **acct).body == (
        "【示例证券】2026年11月23日 日终小结：账户 ****0001 总资产 1,234,567.891 元，"
        "当日盈亏 +1,520.30 元，成交 3 笔。")
    alert = render_text("price_alert", "en", {**SAMPLES["price_alert"], "direction": "below"})
    assert "below your alert level of 9.00 CNY" in alert.body


def test_account_comes_from_data_when_the_message_has_none() -> None:
    text = render_text("statement", "en", {**SAMPLES["statement"], "account": "99887766"})
    assert "****7766" in text.subject


def test_missing_keys_are_named_and_not_retriable() -> None:
    with pytest.raises(DeliveryError, match=r"template 'fill' needs data keys 'price', 'qty'") \
            as caught:
        render_text("fill", "zh", {k: v for k, v in SAMPLES["fill"].items()
                                   if k not in ("qty", "price")}, account="310000000001")
    assert caught.value.retriable is False
    with pytest.raises(DeliveryError, match="needs data key 'account'"):
        render_text("statement", "zh", SAMPLES["statement"])
    with pytest.raises(DeliveryError, match="needs data key 'side'"):
        render_text("fill", "zh", {k: v for k, v in SAMPLES["fill"].items() if k != "side"},
                    account="310000000001")


@pytest.mark.parametrize(("name", "data", "message"), [
    ("fill", {**SAMPLES["fill"], "price": 8.5}, "not float"),
    ("fill", {**SAMPLES["fill"], "price": "8.5元"}, "not a decimal number"),
    ("fill", {**SAMPLES["fill"], "side": "short"}, "must be one of buy, sell"),
    ("fill", {**SAMPLES["fill"], "qty": "many"}, "whole number"),
    ("ipo", {**SAMPLES["ipo"], "pay_date": "soon"}, "ISO date"),
    ("note", {**SAMPLES["note"], "text": {"x": 1}}, "must be text"),
    ("nope", {}, "unknown template 'nope'"),
])
def test_bad_values_are_refused(name: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(DeliveryError, match=message) as caught:
        render_text(name, "zh", data, account="310000000001")
    assert caught.value.retriable is False


def test_subject_is_one_line_and_body_has_no_control_characters() -> None:
    text = render_text("fill", "en", {**SAMPLES["fill"], "name": "Evil\r\nBcc: x@y.example"},
                       account="310000000001")
    assert "\r" not in text.subject and "\n" not in text.subject
    note = render_text("note", "zh", {"customer": "张三", "text": "第一行\r\n第二行\x07"})
    assert "第一行\n第二行" in note.body and "\x07" not in note.body and "\r" not in note.body


def test_helpers() -> None:
    assert mask_account("310000000001") == "****0001"
    with pytest.raises(DeliveryError):
        mask_account("123")
    assert format_money(Decimal("1234.5")) == "1,234.50"
    assert format_money(Decimal("8.525")) == "8.525"
    assert format_money(Decimal("-3"), signed=True) == "-3.00"
    assert parse_money("x", "1,234.50") == Decimal("1234.50")
    assert parse_money("x", 7) == Decimal(7)
    with pytest.raises(DeliveryError, match="finite"):
        parse_money("x", "NaN")
    with pytest.raises(DeliveryError):
        parse_money("x", True)
