"""Text templates of the channel servers: a subject and a body, in Mandarin and English, for every
``Outbound.template``. Pure: no I/O.

``render_text(template, lang, data, account=..., ref=...)`` fills a template from the message's
``data`` with ``str.format`` (plain text: no escaping). The fields a template needs are read from
the template text itself; a missing one is a ``DeliveryError(retriable=False)`` naming the key,
so a bad request fails once with a clear reason instead of being retried forever.

Besides ``data``, every template may use these derived fields:

- ``brokerage``       the brokerage's name in ``lang``
- ``account_masked``  the account with all but the last 4 digits hidden (``****0001``); from
                      ``Outbound.account``, else ``data["account"]``
- ``ref``, ``ref_line``  the service request the message answers, and a line quoting it (or "")
- ``side_text``       ``data["side"]`` (``buy``/``sell``) in words
- ``direction_text``  ``data["direction"]`` (``above``/``below``) in words
- ``remaining_text``  for a fill that left part of its order open (``data["remaining"]`` > 0),
                      a sentence saying how many shares are still open; else ""

Values are normalised before they are put in: money keys (``MONEY_KEYS``) must be decimal
strings (or ints), never floats, and are shown with thousands separators and at least 2
decimals; ``SIGNED_KEYS`` carry an explicit sign; share counts are integers; ``DATE_KEYS`` take
an ISO date or date-time. Short notices (``fill``, ``fund``, ``price_alert``, ``ipo``,
``daily_summary``) have a body of one or two lines, usable as an SMS as it is.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from callcenter.errors import DeliveryError

Lang = Literal["zh", "en"]

BROKERAGE: Final[dict[str, str]] = {"zh": "示例证券", "en": "Example Securities"}
#: the name as printed on documents (both languages)
BROKERAGE_FULL: Final = "示例证券 Example Securities"

#: templates whose e-mail carries a rendered document (PDF) and whose fax is that document
DOCUMENT_TEMPLATES: Final = frozenset({"statement", "confirmations"})

MONEY_KEYS: Final = frozenset({
    "price", "amount", "available", "threshold", "total_assets", "pnl", "change",
    "cash_balance", "cash_available", "last", "value",
})
SIGNED_KEYS: Final = frozenset({"pnl", "change"})
INT_KEYS: Final = frozenset({"qty", "fill_count", "remaining"})
DATE_KEYS: Final = frozenset({"as_of", "pay_date", "date"})

_SIDE: Final = {"zh": {"buy": "买入", "sell": "卖出"}, "en": {"buy": "Bought", "sell": "Sold"}}
_DIRECTION: Final = {"zh": {"above": "高于", "below": "低于"},
                     "en": {"above": "above", "below": "below"}}
_REF_LINE: Final = {"zh": "服务单号：{ref}\n", "en": "Service request: {ref}\n"}
_REMAINING: Final = {"zh": "部分成交，委托尚有 {remaining} 股未成交。",
                     "en": " Partly filled: {remaining} shares of the order are still open."}
_MAX_VALUE_CHARS: Final = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class Template:
    subject: str
    body: str


@dataclass(frozen=True)
class RenderedText:
    subject: str  # one line, no control characters
    body: str     # lines separated by "\n"


_SIGNED_ZH = "\n{ref_line}{brokerage} 客户服务中心\n"
_SIGNED_EN = "\n{ref_line}{brokerage} Customer Service\n"
_CLOSING_ZH = _SIGNED_ZH + "（本消息由系统自动发出）\n"
_CLOSING_EN = _SIGNED_EN + "(This message was sent automatically.)\n"

TEMPLATES: Final[dict[str, dict[str, Template]]] = {
    "statement": {
        "zh": Template(
            "{brokerage} 对账单 {as_of}（账户 {account_masked}）",
            "尊敬的{customer}：\n\n"
            "您好！附件（PDF）为您的证券账户 {account_masked} 截至 {as_of} 的对账单，"
            "内含资金、持仓及当日委托、成交明细。\n"
            "如有疑问，请回复本邮件或致电客服热线。\n" + _CLOSING_ZH),
        "en": Template(
            "{brokerage} account statement {as_of} (account {account_masked})",
            "Dear {customer},\n\n"
            "Attached (PDF) is the statement of your securities account {account_masked} as of "
            "{as_of}: cash, positions, and today's orders and fills.\n"
            "If anything looks wrong, reply to this e-mail or call our hotline.\n" + _CLOSING_EN),
    },
    "confirmations": {
        "zh": Template(
            "{brokerage} 成交确认书 {as_of}（账户 {account_masked}）",
            "尊敬的{customer}：\n\n"
            "附件（PDF）为您的证券账户 {account_masked} 在 {as_of} 的成交确认书。"
            "请核对成交明细及费用，如有异议，请于下一交易日开市前与我们联系。\n" + _CLOSING_ZH),
        "en": Template(
            "{brokerage} trade confirmations {as_of} (account {account_masked})",
            "Dear {customer},\n\n"
            "Attached (PDF) are the confirmations of the trades in your securities account "
            "{account_masked} on {as_of}. Please check the fills and fees; if anything is wrong, "
            "contact us before the market opens on the next trading day.\n" + _CLOSING_EN),
    },
    "note": {
        "zh": Template("{brokerage} 客户服务回复",
                       "尊敬的{customer}：\n\n{text}\n" + _SIGNED_ZH),
        "en": Template("{brokerage} customer service reply",
                       "Dear {customer},\n\n{text}\n" + _SIGNED_EN),
    },
    "fill": {
        "zh": Template(
            "{brokerage} 成交通知：{side_text} {name}",
            "【{brokerage}】您的账户 {account_masked} 于 {time} {side_text} {name}（{code}）"
            "{qty} 股，成交价 {price} 元。{remaining_text}"),
        "en": Template(
            "{brokerage} fill notice: {side_text} {name}",
            "[{brokerage}] Account {account_masked}: {side_text} {qty} shares of {name} ({code}) "
            "at {price} CNY at {time}.{remaining_text}"),
    },
    "fund": {
        "zh": Template(
            "{brokerage} 资金变动通知",
            "【{brokerage}】您的账户 {account_masked} 于 {time} 资金变动 {change} 元（{reason}），"
            "可用资金 {available} 元。"),
        "en": Template(
            "{brokerage} cash movement notice",
            "[{brokerage}] Account {account_masked}: cash changed by {change} CNY at {time} "
            "({reason}); available {available} CNY."),
    },
    "price_alert": {
        "zh": Template(
            "{brokerage} 价格提醒：{name}",
            "【{brokerage}】价格提醒：{name}（{code}）现价 {price} 元，已{direction_text}您设定的 "
            "{threshold} 元。"),
        "en": Template(
            "{brokerage} price alert: {name}",
            "[{brokerage}] Price alert: {name} ({code}) is at {price} CNY, {direction_text} your "
            "alert level of {threshold} CNY."),
    },
    "ipo": {
        "zh": Template(
            "{brokerage} 新股中签通知：{name}",
            "【{brokerage}】新股中签：您的账户 {account_masked} 中签 {name}（{code}）{qty} 股，"
            "应缴 {amount} 元。\n请于 {pay_date} 日终前确保账户资金足额。"),
        "en": Template(
            "{brokerage} IPO allotment: {name}",
            "[{brokerage}] IPO allotment: account {account_masked} was allotted {qty} shares of "
            "{name} ({code}), {amount} CNY due.\nPlease hold the funds in the account by the "
            "end of {pay_date}."),
    },
    "daily_summary": {
        "zh": Template(
            "{brokerage} 日终小结 {date}",
            "【{brokerage}】{date} 日终小结：账户 {account_masked} 总资产 {total_assets} 元，"
            "当日盈亏 {pnl} 元，成交 {fill_count} 笔。"),
        "en": Template(
            "{brokerage} daily summary {date}",
            "[{brokerage}] Summary for {date}: account {account_masked}, total assets "
            "{total_assets} CNY, today's P&L {pnl} CNY, {fill_count} fills."),
    },
}

_DERIVED: Final = frozenset({"brokerage", "account_masked", "ref", "ref_line", "side_text",
                             "direction_text", "remaining_text"})   # the last one optional
#: the data key a derived field comes from
_DERIVED_FROM: Final = {"account_masked": "account", "side_text": "side",
                        "direction_text": "direction"}


def fields_of(template: Template) -> frozenset[str]:
    """The field names a template uses (subject and body)."""
    names: set[str] = set()
    for text in (template.subject, template.body):
        for _literal, name, _spec, _conv in string.Formatter().parse(text):
            if name is not None:
                names.add(name)
    return frozenset(names)


def required_keys(template: str, lang: Lang = "zh") -> frozenset[str]:
    """The ``data`` keys a template needs (derived fields mapped back to their source key;
    ``account`` may also come from ``Outbound.account``)."""
    fields = fields_of(_template(template, lang))
    keys = {_DERIVED_FROM.get(name, name) for name in fields}
    return frozenset(k for k in keys if k not in _DERIVED)


def render_text(template: str, lang: Lang, data: Mapping[str, Any], *, account: str = "",
                ref: str = "") -> RenderedText:
    """Fill ``template`` in ``lang`` from ``data``; see the module docstring."""
    tpl = _template(template, lang)
    values = _derived(lang, data, account=account, ref=ref)
    missing: list[str] = []
    for name in sorted(fields_of(tpl)):
        if name in values:
            continue
        if name in _DERIVED_FROM:
            missing.append(_DERIVED_FROM[name])
        elif name not in data:
            missing.append(name)
        else:
            values[name] = normalise(name, data[name], lang)
    if missing:
        keys = ", ".join(repr(k) for k in sorted(set(missing)))
        raise DeliveryError(f"template {template!r} needs data key{'s' * (len(missing) > 1)} "
                            f"{keys}", retriable=False)
    subject = _LINE_BREAKS.sub(" ", tpl.subject.format_map(values)).strip()
    body = _CONTROL.sub("", tpl.body.format_map(values).replace("\r\n", "\n").replace("\r", "\n"))
    return RenderedText(subject=subject, body=body)


def mask_account(account: str) -> str:
    """``310000000001`` -> ``****0001``: only the last 4 digits are shown."""
    if not re.fullmatch(r"[0-9]{4,16}", account):
        raise DeliveryError(f"not an account number: {account!r}", retriable=False)
    return "****" + account[-4:]


def parse_money(key: str, value: Any) -> Decimal:
    """A money value from ``data``: a decimal string (or an int), never a float."""
    if isinstance(value, bool | float):
        raise DeliveryError(f"data key {key!r} must be a decimal string like \"1234.50\", "
                            f"not {type(value).__name__} {value!r}", retriable=False)
    if isinstance(value, Decimal | int):
        number = Decimal(value)
    elif isinstance(value, str) and len(value) <= 32:
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise DeliveryError(f"data key {key!r} is not a decimal number: {value!r}",
                                retriable=False) from None
    else:
        raise DeliveryError(f"data key {key!r} must be a decimal string, got {value!r:.40}",
                            retriable=False)
    if not number.is_finite():
        raise DeliveryError(f"data key {key!r} is not a finite number: {value!r}",
                            retriable=False)
    return number


def parse_int(key: str, value: Any) -> int:
    """A count (shares, fills) from ``data``: an int or a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,15}", value.strip()):
        return int(value)
    raise DeliveryError(f"data key {key!r} must be a whole number, got {value!r:.40}",
                        retriable=False)


def parse_date(key: str, value: Any) -> dt.date:
    """An ISO date (``2026-11-23``) or date-time (its date is used)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) <= 40:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            try:
                return dt.datetime.fromisoformat(value).date()
            except ValueError:
                pass
    raise DeliveryError(f"data key {key!r} must be an ISO date like 2026-11-23, got "
                        f"{value!r:.40}", retriable=False)


def format_money(value: Decimal, *, signed: bool = False) -> str:
    """``Decimal("1234.5")`` -> ``1,234.50``: thousands separators, at least 2 decimals (a
    price with 3 keeps them)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return f"{value:+,f}" if signed else f"{value:,f}"


def format_date(value: dt.date, lang: Lang) -> str:
    return f"{value.year}年{value.month}月{value.day}日" if lang == "zh" else value.isoformat()


def normalise(key: str, value: Any, lang: Lang) -> str:
    """One ``data`` value as it is shown in a text."""
    if key in MONEY_KEYS:
        return format_money(parse_money(key, value), signed=key in SIGNED_KEYS)
    if key in INT_KEYS:
        return f"{parse_int(key, value):,}"
    if key in DATE_KEYS:
        return format_date(parse_date(key, value), lang)
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        text = str(value)
        if len(text) > _MAX_VALUE_CHARS:
            raise DeliveryError(f"data key {key!r} is too long ({len(text)} characters)",
                                retriable=False)
        return text
    raise DeliveryError(f"data key {key!r} must be text or a number, got "
                        f"{type(value).__name__}", retriable=False)


def _template(template: str, lang: str) -> Template:
    texts = TEMPLATES.get(template)
    if texts is None:
        raise DeliveryError(f"unknown template {template!r}", retriable=False)
    tpl = texts.get(lang)
    if tpl is None:
        raise DeliveryError(f"template {template!r} has no {lang!r} text", retriable=False)
    return tpl


def _derived(lang: Lang, data: Mapping[str, Any], *, account: str, ref: str) -> dict[str, str]:
    values = {"brokerage": BROKERAGE[lang], "ref": ref,
              "ref_line": _REF_LINE[lang].format(ref=ref) if ref else ""}
    acct = account or data.get("account")
    if acct is not None:
        values["account_masked"] = mask_account(str(acct))
    if "side" in data:
        values["side_text"] = _word(_SIDE[lang], "side", data["side"])
    if "direction" in data:
        values["direction_text"] = _word(_DIRECTION[lang], "direction", data["direction"])
    remaining = parse_int("remaining", data["remaining"]) if "remaining" in data else 0
    values["remaining_text"] = _REMAINING[lang].format(
        remaining=f"{remaining:,}") if remaining > 0 else ""
    return values


def _word(words: Mapping[str, str], key: str, value: Any) -> str:
    if isinstance(value, str) and value in words:
        return words[value]
    raise DeliveryError(f"data key {key!r} must be one of {', '.join(words)}, got {value!r:.40}",
                        retriable=False)
