"""A synthetic, reproducible customer population for trying strategies and testing them.

``population(n, seed, today)`` gives ``n`` customers. What the strategies select on follows a
fixed recipe of the customer's index ``i`` (0-based), so tests count the expected matches from
the recipe alone; the ``seed`` draws only what no shipped condition depends on exactly (names,
phone numbers, amounts within a tier's band, how long ago older accounts were opened).

=============================  =============================================================
tier                           platinum if i % 10 == 0; gold if i % 10 in (1, 2); silver if
                               i % 10 in (3, 4, 5); else ordinary
assets (yuan)                  within the tier's band: ordinary 1 000-99 999, silver
                               100 000-499 999, gold 500 000-2 999 999, platinum 3 000 000+
bank_bound                     false if i % 6 == 5
opened_on                      if i % 11 == 0: today - (i // 11) % 3 days (a new account);
                               else 30 to 3000 days ago
birthday                       i % 13 == 0: today's month and day; i % 13 == 1: in 3 days;
                               i % 13 == 2: none; else 30 to 330 days from today
last_trade_on, trades_30d      i % 5 == 0: never traded, 0; i % 5 == 1: 100 + i % 50 days
                               ago, 0; else i % 20 days ago, 1 + i % 8 trades
complaints                     i % 17 == 0: one handled yesterday 18:00 (local); i % 17 == 1:
                               one handled 10 days ago; i % 17 == 2: one still open
phones                         none if i % 29 == 28, else one mobile number
email                          none if i % 3 == 2
language                       "en" if i % 8 == 7, else "zh"
timezone                       Asia/Hong_Kong if i % 19 == 0, else Asia/Shanghai
manager                        gold and platinum customers: A1001 or A1002
=============================  =============================================================

Accounts are ``20000000 + i`` (8 digits), apart from the demo accounts (``1000000x``).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from callcenter.broker.facts import DEFAULT_TIMEZONE, Complaint, CustomerFacts
from callcenter.broker.interface import Tier

__all__ = ["FIRST_ACCOUNT", "population", "tier_of"]

FIRST_ACCOUNT: Final = 20_000_000
_SURNAMES: Final = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN: Final = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
                 "娟", "涛", "明", "超", "秀英", "霞", "平", "刚", "桂英")
_BANDS: Final = {Tier.ORDINARY: (1_000, 99_999), Tier.SILVER: (100_000, 499_999),
                 Tier.GOLD: (500_000, 2_999_999), Tier.PLATINUM: (3_000_000, 20_000_000)}


def tier_of(i: int) -> Tier:
    r = i % 10
    if r == 0:
        return Tier.PLATINUM
    if r in (1, 2):
        return Tier.GOLD
    if r in (3, 4, 5):
        return Tier.SILVER
    return Tier.ORDINARY


def _same_day(day: dt.date, year: int) -> dt.date:
    """``day``'s month and day in ``year`` (29 February becomes the 28th in other years)."""
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)


def population(n: int, seed: int, today: dt.date) -> list[CustomerFacts]:
    """``n`` customers by the recipe above; the same ``n``, ``seed`` and ``today`` always give
    the same customers."""
    rng = random.Random(seed)
    local = ZoneInfo(DEFAULT_TIMEZONE)
    yesterday_evening = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(18, 0), local)
    out = []
    for i in range(n):
        tier = tier_of(i)
        low, high = _BANDS[tier]
        assets = Decimal(rng.randint(low * 100, high * 100)) / 100
        if i % 11 == 0:
            opened = today - dt.timedelta(days=(i // 11) % 3)
        else:
            opened = today - dt.timedelta(days=rng.randint(30, 3000))
        born = 1950 + rng.randint(0, 50)
        match i % 13:
            case 0:
                birthday: dt.date | None = _same_day(today, born)
            case 1:
                birthday = _same_day(today + dt.timedelta(days=3), born)
            case 2:
                birthday = None
            case _:
                birthday = _same_day(today + dt.timedelta(days=rng.randint(30, 330)), born)
        match i % 5:
            case 0:
                last_trade, trades = None, 0
            case 1:
                last_trade, trades = today - dt.timedelta(days=100 + i % 50), 0
            case _:
                last_trade, trades = today - dt.timedelta(days=i % 20), 1 + i % 8
        complaints: tuple[Complaint, ...] = ()
        match i % 17:
            case 0:
                complaints = (Complaint(f"C{i:06d}", yesterday_evening - dt.timedelta(days=2),
                                        yesterday_evening),)
            case 1:
                handled = yesterday_evening - dt.timedelta(days=9)
                complaints = (Complaint(f"C{i:06d}", handled - dt.timedelta(days=1), handled),)
            case 2:
                complaints = (Complaint(f"C{i:06d}", yesterday_evening, None),)
        account = str(FIRST_ACCOUNT + i)
        phone = f"139{rng.randint(0, 99_999_999):08d}"
        out.append(CustomerFacts(
            account=account,
            name=rng.choice(_SURNAMES) + rng.choice(_GIVEN),
            tier=tier,
            phones=() if i % 29 == 28 else (phone,),
            language="en" if i % 8 == 7 else "zh",
            manager=(f"A100{1 + i % 2}" if tier in (Tier.GOLD, Tier.PLATINUM) else None),
            email=None if i % 3 == 2 else f"c{account}@example.com",
            opened_on=opened,
            birthday=birthday,
            assets=assets,
            last_trade_on=last_trade,
            trades_30d=trades,
            bank_bound=i % 6 != 5,
            timezone="Asia/Hong_Kong" if i % 19 == 0 else DEFAULT_TIMEZONE,
            complaints=complaints,
        ))
    return out
