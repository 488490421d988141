"""Customer facts: what the back office tells the service strategies about each customer.

``CustomerFacts`` is one customer as the strategies see them (``callcenter/strategies``): tier,
contact details, when the account was opened, birthday, assets at market, trading activity,
bank binding, time zone and complaints. ``CustomerBase`` is the optional capability a back office
offers to list them.

Pages, not a list: a real counter system holds millions of customers, so ``customer_facts``
is an async iterator of pages (at most ``page_size`` each, in account order). A strategy run
reads the pages one after another and never holds more than one page of raw rows from the back
office at a time; only the matches are kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol, runtime_checkable

from callcenter.broker.interface import Tier

__all__ = ["DEFAULT_PAGE", "DEFAULT_TIMEZONE", "Complaint", "CustomerBase", "CustomerFacts",
           "ListCustomerBase"]

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
#: customers per page unless the reader asks otherwise
DEFAULT_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class Complaint:
    """A complaint (投诉) and when it was handled (None: still open)."""

    id: str
    opened_at: dt.datetime
    handled_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    account: str
    name: str
    tier: Tier
    phones: tuple[str, ...]
    language: str                         # "zh" or "en"
    manager: str | None                   # their named manager's agent id
    email: str | None
    opened_on: dt.date
    birthday: dt.date | None
    #: cash plus positions at market, yuan
    assets: Decimal
    last_trade_on: dt.date | None
    #: fills in the last 30 days
    trades_30d: int
    #: a bank account is linked for transfers (第三方存管)
    bank_bound: bool
    #: IANA name; calls are placed in the customer's local hours
    timezone: str = DEFAULT_TIMEZONE
    complaints: tuple[Complaint, ...] = ()

    def age_days(self, today: dt.date) -> int:
        """Days since the account was opened (0 on the day it was)."""
        return (today - self.opened_on).days


@runtime_checkable
class CustomerBase(Protocol):
    """Optional back-office capability: every customer's facts, page by page."""

    def customer_facts(self, page_size: int = DEFAULT_PAGE
                       ) -> AsyncIterator[Sequence[CustomerFacts]]: ...


class ListCustomerBase:
    """A ``CustomerBase`` over facts held in memory (a generated population, tests)."""

    def __init__(self, facts: Sequence[CustomerFacts]) -> None:
        self.facts = sorted(facts, key=lambda f: f.account)

    async def customer_facts(self, page_size: int = DEFAULT_PAGE
                             ) -> AsyncIterator[Sequence[CustomerFacts]]:
        size = max(1, page_size)
        for start in range(0, len(self.facts), size):
            yield self.facts[start:start + size]
