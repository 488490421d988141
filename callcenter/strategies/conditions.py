"""Which customers a strategy's population takes, and why (sans-IO).

``reasons(population, facts, history, now)`` is None when a condition fails, else one readable
reason per condition ("tier gold ∈ [gold, platinum]", "birthday today"). ``always_true`` tells
``check`` which conditions could never fail, so a strategy that would take everyone is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.broker.facts import Complaint, CustomerFacts
from callcenter.broker.interface import Tier
from callcenter.strategies.model import CountRange, MoneyRange, Population

__all__ = ["History", "always_true", "complaint_key", "next_birthday", "pending_complaint",
           "reasons"]


@dataclass(frozen=True, slots=True)
class History:
    """Our own records of customers, as of a run: every proactive contact since ``since`` (day,
    strategy; "" for one that was no strategy's), each customer's opt-out channels, the
    strategies whose contacts are not shared (``caps.shared: false``) and the tasks strategies
    made, as (strategy, account, match key)."""

    contacts: Mapping[str, tuple[tuple[dt.date, str], ...]] = field(default_factory=dict)
    opt_outs: Mapping[str, frozenset[str]] = field(default_factory=dict)
    unshared: frozenset[str] = frozenset()
    made: frozenset[tuple[str, str, str]] = frozenset()
    #: the first day read (None: every day)
    since: dt.date | None = None

    def last_contact(self, account: str) -> dt.date | None:
        """The day of the customer's last shared contact (a strategy not shared does not
        count)."""
        days = [day for day, by in self.contacts.get(account, ()) if by not in self.unshared]
        return max(days) if days else None


def pending_complaint(facts: CustomerFacts, history: History, strategy: str, now: dt.datetime,
                      within_hours: int) -> Complaint | None:
    """The customer's complaint handled in the last ``within_hours`` hours that ``strategy``
    made no task for yet (the first handled, when several)."""
    since = now - dt.timedelta(hours=within_hours)
    waiting = [c for c in facts.complaints
               if c.handled_at is not None and since <= c.handled_at <= now
               and (strategy, facts.account, complaint_key(c)) not in history.made]
    return min(waiting, key=lambda c: (c.handled_at or now, c.id)) if waiting else None


def complaint_key(complaint: Complaint) -> str:
    """The match key of a complaint's task: one task per complaint."""
    return f"complaint:{complaint.id}"


def _range(value: int, spec: CountRange) -> bool:
    return (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)


def _bounds(spec: CountRange | MoneyRange) -> str:
    parts = []
    if spec.min is not None:
        parts.append(f"≥ {spec.min}")
    if spec.max is not None:
        parts.append(f"≤ {spec.max}")
    return ", ".join(parts)


def next_birthday(birthday: dt.date, today: dt.date) -> dt.date:
    """The first anniversary on or after ``today`` (29 February: the 28th in other years)."""
    for year in (today.year, today.year + 1):
        try:
            day = birthday.replace(year=year)
        except ValueError:
            day = birthday.replace(year=year, day=28)
        if day >= today:
            return day
    raise AssertionError("unreachable: next year's anniversary is after today")


def reasons(population: Population, facts: CustomerFacts, history: History,
            now: dt.datetime, strategy: str = "") -> list[str] | None:
    """Why ``facts`` belongs to ``population`` on ``now`` (aware), or None if it does not.
    ``strategy``: whose population it is (a complaint it made a task for is not taken)."""
    today = now.date()
    out: list[str] = []
    p = population
    if p.tier is not None:
        if facts.tier not in p.tier.in_:
            return None
        out.append(f"tier {facts.tier.value} ∈ [{', '.join(t.value for t in p.tier.in_)}]")
    if p.assets is not None:
        low, high = p.assets.min, p.assets.max
        if (low is not None and facts.assets < low) or (high is not None and facts.assets > high):
            return None
        out.append(f"assets {facts.assets} yuan {_bounds(p.assets)}")
    if p.account_age_days is not None:
        age = facts.age_days(today)
        if age < 0 or not _range(age, p.account_age_days):  # opened after today: not yet
            return None
        out.append(f"account opened {facts.opened_on} ({age} days, "
                   f"{_bounds(p.account_age_days)})")
    if p.birthday is not None:
        if facts.birthday is None:
            return None
        coming = next_birthday(facts.birthday, today)
        wait = (coming - today).days
        if wait > p.birthday.within_days:
            return None
        out.append("birthday today" if wait == 0 else f"birthday in {wait} days ({coming:%m-%d})")
    if p.bank_bound is not None:
        if facts.bank_bound != p.bank_bound:
            return None
        out.append("bank account bound" if facts.bank_bound else "no bank account bound")
    if p.never_traded is not None:
        if (facts.last_trade_on is None) != p.never_traded:
            return None
        out.append("never traded" if p.never_traded else f"last trade {facts.last_trade_on}")
    if p.days_since_last_trade is not None:
        if facts.last_trade_on is None:
            return None
        idle = (today - facts.last_trade_on).days
        if not _range(idle, p.days_since_last_trade):
            return None
        out.append(f"last trade {idle} days ago ({_bounds(p.days_since_last_trade)})")
    if p.trades_30d is not None:
        if not _range(facts.trades_30d, p.trades_30d):
            return None
        out.append(f"{facts.trades_30d} trades in 30 days ({_bounds(p.trades_30d)})")
    if p.complaint_handled is not None:
        first = pending_complaint(facts, history, strategy, now,
                                  p.complaint_handled.within_hours)
        if first is None:
            return None
        assert first.handled_at is not None
        hours = int((now - first.handled_at).total_seconds() // 3600)
        out.append(f"complaint {first.id} handled {hours} h ago, not called back "
                   f"(≤ {p.complaint_handled.within_hours} h)")
    if p.days_since_last_contact is not None:
        spec = p.days_since_last_contact
        last_contact = history.last_contact(facts.account)
        if last_contact is None:
            if spec.max is not None:
                return None
            out.append("never contacted" if history.since is None
                       else f"no contact since {history.since}")
        else:
            quiet = (today - last_contact).days
            if not _range(quiet, spec):
                return None
            out.append(f"last contacted {quiet} days ago ({_bounds(spec)})")
    if p.opted_out is not None:
        channels = history.opt_outs.get(facts.account, frozenset())
        if bool(channels) != p.opted_out:
            return None
        out.append(f"opted out of {', '.join(sorted(channels))}" if channels
                   else "no opt-out")
    if p.language is not None:
        if facts.language != p.language:
            return None
        out.append(f"language {facts.language}")
    return out


def always_true(population: Population) -> list[str]:
    """The conditions that hold for every customer (all of them, when every condition does)."""
    p = population
    out = []
    if p.tier is not None and set(p.tier.in_) >= set(Tier):
        out.append("tier (every tier)")
    if p.assets is not None and p.assets.always():
        out.append("assets (≥ 0)")
    if p.account_age_days is not None and p.account_age_days.always():
        out.append("account_age_days (≥ 0)")
    if p.birthday is not None and p.birthday.within_days >= 365:
        out.append("birthday (within a year)")
    if p.trades_30d is not None and p.trades_30d.always():
        out.append("trades_30d (≥ 0)")
    if p.days_since_last_contact is not None and p.days_since_last_contact.always():
        out.append("days_since_last_contact (≥ 0)")
    return out


def condition_count(population: Population) -> int:
    return sum(value is not None for value in population.model_dump().values())
