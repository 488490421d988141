"""The financial secretary (财经秘书), sans-IO: which notices an event makes, for whom, when.

Customers subscribe (from the IVR or through an agent) to notices of a ``Kind`` on a
``Channel`` of their choice, with optional quiet hours. The edge (``secretary_edge``) reads the
back office, turns what it finds into events and hands them to ``notices_for``; this module
decides, without I/O or a clock of its own:

- **which subscriptions an event concerns**: the account's subscriptions of the matching kind
  (a price observation: every price alert on that code, whoever holds it). Fills and fund
  changes that happened before a subscription was made are not announced by it; an IPO
  allotment is announced while its payment is still due (its pay date is today or later).
- **the event key**: one per (subscription, event), the same however often and after however
  many restarts the event is seen. The store's ``UNIQUE (subscription_id, event_key)`` turns
  that into "no more than one notice per event per customer and channel"::

      fill           fill:<fill id>                      the back office's fill id
      fund           fund:<transfer number>
      price_above    price_above:<level>:<day>:<n>       n-th crossing of the level that day
      price_below    price_below:<level>:<day>:<n>
      ipo            ipo:<allotment number>
      daily_summary  daily_summary:<day>

- **price alerts**: once per subscription, trading day and crossing. A ``PriceArm`` per
  subscription remembers whether the last observation was beyond the level (at or above it for
  ``price_above``, at or below for ``price_below``). Moving beyond it while armed is a crossing:
  a notice, and the alert is disarmed. It is re-armed only when an observation finds the price
  back on the near side. Each trading day starts armed, so a price that stays beyond the level
  is announced once a day. At most ``MAX_PRICE_ALERTS_PER_DAY`` crossings a day are announced (a
  price see-sawing on the level must not flood a phone). Keys count the crossings, so a crossing
  seen again after a restart that lost the arm state makes the same key and no second notice.
  Observations are samples (the edge polls quotes), so a crossing and return between two
  samples goes unseen.
- **the template and its data**: ``fill``, ``fund``, ``price_alert``, ``ipo``,
  ``daily_summary`` (texts in ``channels/templates.py``). Money travels as strings of Decimals,
  share counts as ints, dates as ISO text, times as ``YYYY-MM-DD HH:MM`` in the local zone.
  (A transfer's direction is ``transfer_direction``: ``direction`` is the price alert's
  ``above``/``below`` to the templates.)
- **when**: ``not_before`` is the end of the subscription's quiet hours if the notice is made
  inside them, else None (send now). Quiet hours are local wall-clock times (Asia/Shanghai by
  default); a window whose end is before its start crosses midnight (22:00-07:00), and equal
  start and end mean no quiet hours.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final, Literal

from callcenter.broker.interface import (
    Cash,
    Customer,
    Fill,
    Position,
    Side,
    TransferDirection,
)
from callcenter.broker.rules import SHANGHAI, money

Lang = Literal["zh", "en"]
Data = dict[str, str | int]

#: a see-sawing price announces no more crossings than this a day (per subscription)
MAX_PRICE_ALERTS_PER_DAY: Final = 3
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_CODE = re.compile(r"^[0-9]{6}$")
_FAX = re.compile(r"^[0-9]{5,20}$")


class Kind(StrEnum):
    FILL = "fill"                    # 成交回报
    FUND = "fund"                    # 资金变动 (bank-securities transfers in and out)
    PRICE_ABOVE = "price_above"      # 股价预警: at or above a level
    PRICE_BELOW = "price_below"      # at or below a level
    IPO = "ipo"                      # 新股中签
    DAILY_SUMMARY = "daily_summary"  # 日终小结

    @property
    def template(self) -> str:
        return TEMPLATES[self]

    @property
    def is_price(self) -> bool:
        return self in (Kind.PRICE_ABOVE, Kind.PRICE_BELOW)


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    FAX = "fax"


TEMPLATES: Final[Mapping[Kind, str]] = {
    Kind.FILL: "fill", Kind.FUND: "fund", Kind.PRICE_ABOVE: "price_alert",
    Kind.PRICE_BELOW: "price_alert", Kind.IPO: "ipo", Kind.DAILY_SUMMARY: "daily_summary",
}

_FUND_REASON: Final[Mapping[TransferDirection, Mapping[Lang, str]]] = {
    TransferDirection.BANK_TO_SECURITIES: {"zh": "银行转证券", "en": "bank to securities"},
    TransferDirection.SECURITIES_TO_BANK: {"zh": "证券转银行", "en": "securities to bank"},
}


# --- quiet hours ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window of local wall-clock time, [start, end); crosses midnight if end < start."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> QuietHours | None:
        """``("22:00", "07:00")`` -> a window; both None -> None; anything else -> ValueError."""
        if start is None and end is None:
            return None
        if start is None or end is None:
            raise ValueError("quiet hours need both a start and an end")
        return cls(_parse_hhmm(start), _parse_hhmm(end))

    def text(self) -> tuple[str, str]:
        return self.start.strftime("%H:%M"), self.end.strftime("%H:%M")

    def contains(self, t: dt.time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def release(self, when: dt.datetime, tz: dt.tzinfo = SHANGHAI) -> dt.datetime | None:
        """The end of the quiet window ``when`` falls in (aware, in ``tz``), or None if
        ``when`` is not quiet."""
        local = _aware(when).astimezone(tz)
        t = local.time().replace(tzinfo=None)
        if not self.contains(t):
            return None
        day = local.date()
        if self.start > self.end and t >= self.start:
            day += dt.timedelta(days=1)  # late evening: quiet until tomorrow morning
        return dt.datetime.combine(day, self.end, tzinfo=tz)


def _parse_hhmm(text: str) -> dt.time:
    m = _HHMM.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not a time of day HH:MM: {text!r}")
    return dt.time(int(m.group(1)), int(m.group(2)))


def _aware(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("the secretary needs aware datetimes")
    return when


# --- subscriptions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    account: str
    kind: Kind
    channel: Channel
    params: Mapping[str, str]        # canonical (see ``canonical_params``)
    quiet: QuietHours | None = None
    created_at: float = 0.0          # epoch seconds
    created_by: str = ""
    active: bool = True

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def level(self) -> Decimal | None:
        """The price level of a price alert."""
        price = self.params.get("price")
        return None if price is None else Decimal(price)

    @property
    def fax(self) -> str | None:
        return self.params.get("fax")


def canonical_params(kind: Kind | str, channel: Channel | str,
                     params: Mapping[str, Any] | None) -> dict[str, str]:
    """Check a subscription's parameters and write them one way only (so the store's unique
    rule sees two equal requests as equal). Price alerts need ``code`` (6 digits) and ``price``
    (above zero, at most 2 decimals, Decimal or text, never float); fax needs ``fax`` (digits).
    Raises ``ValueError`` naming what is wrong."""
    kind, channel = Kind(kind), Channel(channel)
    given = dict(params or {})
    out: dict[str, str] = {}
    if kind.is_price:
        code = given.pop("code", None)
        if not isinstance(code, str) or not _CODE.match(code):
            raise ValueError("a price alert needs a 6-digit stock code")
        out["code"] = code
        out["price"] = str(_level(given.pop("price", None)))
    if channel is Channel.FAX:
        fax = given.pop("fax", None)
        if not isinstance(fax, str) or not _FAX.match(fax):
            raise ValueError("notices by fax need a fax number (5-20 digits)")
        out["fax"] = fax
    if given:
        raise ValueError(f"unexpected parameters for {kind.value} by {channel.value}: "
                         f"{', '.join(sorted(given))}")
    return out


def _level(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise ValueError("a price alert needs a price (text or Decimal, never float)")
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a price: {value!r}") from None
    if not price.is_finite() or price <= 0 or price != price.quantize(Decimal("0.01")):
        raise ValueError("a price level is above zero with at most 2 decimals")
    return price.quantize(Decimal("0.01"))


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FillEvent:
    account: str
    fill_id: str
    fill: Fill


@dataclass(frozen=True, slots=True)
class FundEvent:
    """A bank-securities transfer in or out (资金变动)."""

    account: str
    transfer_no: str
    direction: TransferDirection
    amount: Decimal
    available: Decimal               # available cash after it
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class PriceObservation:
    """The last price of a security as observed at ``at`` (in a trading session)."""

    code: str
    name: str
    name_en: str
    last: Decimal
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class IpoEvent:
    account: str
    allotment_no: str
    code: str
    name: str
    name_en: str
    quantity: int
    price: Decimal
    pay_date: dt.date


@dataclass(frozen=True, slots=True)
class DailySummary:
    """The day's summary of one account, made at the configured time of a trading day."""

    account: str
    day: dt.date
    total_assets: Decimal
    pnl: Decimal                     # today's profit or loss, before fees
    fill_count: int
    at: dt.datetime


#: events of one account
AccountEvent = FillEvent | FundEvent | IpoEvent | DailySummary
Event = AccountEvent | PriceObservation


@dataclass(frozen=True, slots=True)
class PriceArm:
    """A price alert's state for a day: ``beyond`` the level at the last observation, and
    how many crossings were announced."""

    day: dt.date
    beyond: bool = False
    crossings: int = 0

    def encode(self) -> str:
        return f"{self.day.isoformat()}|{int(self.beyond)}|{self.crossings}"

    @classmethod
    def decode(cls, text: str) -> PriceArm | None:
        try:
            day, beyond, crossings = text.split("|")
            return cls(dt.date.fromisoformat(day), beyond == "1", int(crossings))
        except ValueError:
            return None  # unreadable: start the day armed (keys still prevent duplicates)


# --- notices --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    subscription: Subscription
    event_key: str
    template: str
    lang: Lang
    data: Data = field(default_factory=dict)
    not_before: dt.datetime | None = None

    @property
    def message_id(self) -> str:
        """The outbox message id: derived from (subscription, event key), so the same notice
        always gets the same id (receivers de-duplicate on it)."""
        digest = hashlib.sha256(f"{self.subscription.id}\x00{self.event_key}".encode())
        return f"sec-{self.subscription.id}-{digest.hexdigest()[:24]}"


def notices_for(event: Event, subscriptions: Iterable[Subscription], now: dt.datetime, *,
                langs: Mapping[str, Lang] | None = None,
                arms: Mapping[int, PriceArm] | None = None,
                tz: dt.tzinfo = SHANGHAI) -> list[Notice]:
    """The notices ``event`` makes for ``subscriptions`` (inactive ones and other accounts'
    are skipped), made at ``now``. ``langs`` maps accounts to their language (default zh).
    For a ``PriceObservation``, ``arms`` is the alerts' state (default: all armed); use
    ``observe_price`` to get the new state as well."""
    if isinstance(event, PriceObservation):
        notices, _ = observe_price(event, subscriptions, arms or {}, now, langs=langs, tz=tz)
        return notices
    langs = langs or {}
    out: list[Notice] = []
    for sub in subscriptions:
        if not sub.active or sub.account != event.account:
            continue
        made = _notice(event, sub, langs.get(sub.account, "zh"), now, tz)
        if made is not None:
            out.append(made)
    return out


def _notice(event: Event, sub: Subscription, lang: Lang, now: dt.datetime,
            tz: dt.tzinfo) -> Notice | None:
    account = sub.account
    key: str
    data: Data
    match event:
        case FillEvent(fill=f) if sub.kind is Kind.FILL:
            if f.at.timestamp() < sub.created_at:
                return None
            key = f"fill:{event.fill_id}"
            data = {"account": account, "side": Side(f.side).value, "code": f.security.code,
                    "name": _name(lang, f.security.name, f.security.name_en),
                    "qty": f.quantity, "price": str(f.price), "time": _time(f.at, tz),
                    "order_no": f.order_no}
            if f.remaining is not None:         # each part of an order is a notice of its own
                data["remaining"] = f.remaining
        case FundEvent() if sub.kind is Kind.FUND:
            if event.at.timestamp() < sub.created_at:
                return None
            signed = event.amount if event.direction is TransferDirection.BANK_TO_SECURITIES \
                else -event.amount
            key = f"fund:{event.transfer_no}"
            data = {"account": account, "transfer_direction": event.direction.value,
                    "change": str(money(signed)), "available": str(money(event.available)),
                    "reason": _FUND_REASON[event.direction][lang], "time": _time(event.at, tz),
                    "transfer_no": event.transfer_no}
        case IpoEvent() if sub.kind is Kind.IPO:
            if event.pay_date < _aware(now).astimezone(tz).date():
                return None  # nothing left to do about it
            key = f"ipo:{event.allotment_no}"
            data = {"account": account, "code": event.code,
                    "name": _name(lang, event.name, event.name_en), "qty": event.quantity,
                    "price": str(event.price),
                    "amount": str(money(event.price * event.quantity)),
                    "pay_date": event.pay_date.isoformat()}
        case DailySummary() if sub.kind is Kind.DAILY_SUMMARY:
            if event.at.timestamp() < sub.created_at:
                return None
            key = f"daily_summary:{event.day.isoformat()}"
            data = {"account": account, "date": event.day.isoformat(),
                    "total_assets": str(money(event.total_assets)),
                    "pnl": str(money(event.pnl)), "fill_count": event.fill_count}
        case _:
            return None
    return _made(sub, key, lang, data, now, tz)


def _made(sub: Subscription, key: str, lang: Lang, data: Data, now: dt.datetime,
          tz: dt.tzinfo) -> Notice:
    not_before = sub.quiet.release(now, tz) if sub.quiet is not None else None
    return Notice(sub, key, sub.kind.template, lang, data, not_before)


def observe_price(obs: PriceObservation, subscriptions: Iterable[Subscription],
                  arms: Mapping[int, PriceArm], now: dt.datetime, *,
                  langs: Mapping[str, Lang] | None = None,
                  tz: dt.tzinfo = SHANGHAI) -> tuple[list[Notice], dict[int, PriceArm]]:
    """The notices a price observation makes, and the new state of every price alert on that
    code (only those whose state changed are returned). See the module docstring."""
    langs = langs or {}
    day = _aware(obs.at).astimezone(tz).date()
    notices: list[Notice] = []
    changed: dict[int, PriceArm] = {}
    for sub in subscriptions:
        if not sub.active or not sub.kind.is_price or sub.code != obs.code:
            continue
        level = sub.level
        if level is None:
            continue
        before = arms.get(sub.id)
        arm = before if before is not None and before.day == day else PriceArm(day)
        beyond = obs.last >= level if sub.kind is Kind.PRICE_ABOVE else obs.last <= level
        after = replace(arm, beyond=beyond)
        if beyond and not arm.beyond:
            after = replace(after, crossings=arm.crossings + 1)
            if after.crossings <= MAX_PRICE_ALERTS_PER_DAY:
                lang = langs.get(sub.account, "zh")
                data: Data = {
                    "account": sub.account, "code": obs.code,
                    "name": _name(lang, obs.name, obs.name_en), "price": str(obs.last),
                    "direction": "above" if sub.kind is Kind.PRICE_ABOVE else "below",
                    "threshold": str(level), "time": _time(obs.at, tz)}
                key = f"{sub.kind.value}:{level}:{day.isoformat()}:{after.crossings}"
                notices.append(_made(sub, key, lang, data, now, tz))
        if after != before:
            changed[sub.id] = after
    return notices, changed


# --- where a notice goes --------------------------------------------------------------------------


def resolve_address(sub: Subscription, customer: Customer | None) -> tuple[str, str]:
    """``(to, "")`` for a notice of ``sub``, or ``("", reason)`` when there is nowhere to send
    it (the notice is then recorded as failed with that reason, never dropped). SMS goes to
    the customer's first registered phone, e-mail to their address on file, fax to the number
    given when subscribing."""
    if customer is None:
        return "", "customer not found in the back office"
    match sub.channel:
        case Channel.SMS:
            return (customer.phones[0], "") if customer.phones else \
                ("", "no mobile number on file")
        case Channel.EMAIL:
            return (customer.email, "") if customer.email else ("", "no e-mail address on file")
        case Channel.FAX:
            return (sub.fax, "") if sub.fax else ("", "no fax number in the subscription")


def language_of(customer: Customer | None) -> Lang:
    return "en" if customer is not None and customer.language == "en" else "zh"


# --- the daily summary ----------------------------------------------------------------------------


def summarize(account: str, day: dt.date, at: dt.datetime, cash: Cash,
              positions: Sequence[Position], fills: Sequence[Fill],
              prev_close: Mapping[str, Decimal]) -> DailySummary:
    """An account's day. Total assets: cash balance (frozen included) plus positions at their
    last price. Today's P&L, before fees: shares held since yesterday move from the previous
    close to the last price; shares bought today from their fill price; shares sold today
    from the previous close to their fill price. ``prev_close`` maps codes to previous
    closes; it must cover every position and fill (a missing one counts as no change)."""
    last = {p.security.code: p.last for p in positions}
    bought: dict[str, int] = {}
    pnl = Decimal(0)
    for f in fills:
        code = f.security.code
        if f.side is Side.BUY:
            bought[code] = bought.get(code, 0) + f.quantity
            pnl += (last.get(code, f.price) - f.price) * f.quantity
        else:
            pnl += (f.price - prev_close.get(code, f.price)) * f.quantity
    for p in positions:
        code = p.security.code
        held_overnight = max(0, p.quantity - bought.get(code, 0))
        pnl += (p.last - prev_close.get(code, p.last)) * held_overnight
    total = cash.balance + sum((p.market_value for p in positions), Decimal(0))
    return DailySummary(account, day, money(total), money(pnl), len(fills), at)


# --- helpers --------------------------------------------------------------------------------------


def _name(lang: Lang, zh: str, en: str) -> str:
    return en if lang == "en" and en else zh


def _time(when: dt.datetime, tz: dt.tzinfo) -> str:
    return _aware(when).astimezone(tz).strftime("%Y-%m-%d %H:%M")
