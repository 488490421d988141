"""Evaluation on a seeded population: the expected matches are counted from the population's
recipe (``broker/population.py``'s table), not by the code under test."""

from __future__ import annotations

import datetime as dt

from callcenter.broker.exchange_calendar import load_calendar
from callcenter.broker.facts import ListCustomerBase
from callcenter.broker.population import population
from callcenter.broker.rules import SHANGHAI
from callcenter.strategies.conditions import History, next_birthday
from callcenter.strategies.evaluate import is_due, matches, runs_on
from callcenter.strategies.model import Strategy
from callcenter.strategies.runner import find_matches

N = 1000
MONDAY = dt.date(2026, 11, 23)           # a trading day
NINE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)


def ids(strategy: Strategy, seed: int = 7, history: History | None = None) -> list[int]:
    people = population(N, seed, MONDAY)
    found = matches([strategy], people, history or History(), NINE)
    return sorted(int(m.facts.account) - 20_000_000 for m in found)


def expect(rule: object) -> list[int]:
    assert callable(rule)
    return [i for i in range(N) if rule(i)]


def test_birthday_today(shipped: dict[str, Strategy]) -> None:
    assert ids(shipped["birthday-greeting"]) == expect(lambda i: i % 13 == 0)


def test_unbound_bank_accounts_older_than_a_week(shipped: dict[str, Strategy]) -> None:
    assert ids(shipped["unbound-bank"]) == expect(lambda i: i % 6 == 5 and i % 11 != 0)


def test_new_accounts(shipped: dict[str, Strategy]) -> None:
    assert ids(shipped["new-account-verification"]) == expect(lambda i: i % 11 == 0)


def test_an_account_opened_after_the_run_day_is_not_new_yet(shipped: dict[str, Strategy]) -> None:
    """A data error (or a sandbox seeded on another day): a negative age matches no age range."""
    people = population(N, 7, MONDAY + dt.timedelta(days=10))   # opened "in the future"
    found = matches([shipped["new-account-verification"]], people, History(), NINE)
    assert found == []


def test_complaints_handled_in_the_last_24_hours(shipped: dict[str, Strategy]) -> None:
    assert ids(shipped["complaint-callback"]) == expect(lambda i: i % 17 == 0)


def test_morning_note_to_active_silver_and_above(shipped: dict[str, Strategy]) -> None:
    assert ids(shipped["morning-note"]) == expect(lambda i: i % 10 <= 5 and i % 5 >= 2)


def test_holiday_greeting_to_customers_who_traded_in_half_a_year(
        shipped: dict[str, Strategy]) -> None:
    assert ids(shipped["holiday-greeting"]) == expect(lambda i: i % 5 != 0)


def test_core_customers_never_or_long_ago_contacted(shipped: dict[str, Strategy]) -> None:
    core = shipped["core-customers"]
    assert ids(core) == expect(lambda i: i % 10 <= 2)
    # contacted 3 days ago: out; 20 days ago: in (min 14 days since the last contact)
    history = History(contacts={"20000000": ((MONDAY - dt.timedelta(days=3), "x"),),
                                "20000001": ((MONDAY - dt.timedelta(days=20), "x"),)})
    assert ids(core, history=history) == expect(lambda i: i % 10 <= 2 and i != 0)


def test_the_seed_changes_names_not_the_matches(shipped: dict[str, Strategy]) -> None:
    a, b = population(50, 1, MONDAY), population(50, 2, MONDAY)
    assert [f.name for f in a] != [f.name for f in b]
    for strategy in shipped.values():
        assert ids(strategy, seed=1) == ids(strategy, seed=2)


def test_reasons_say_why(shipped: dict[str, Strategy]) -> None:
    people = population(40, 3, MONDAY)
    [m] = [m for m in matches([shipped["core-customers"]], people, History(), NINE)
           if m.facts.account == "20000010"]
    assert m.reasons == ("tier platinum ∈ [gold, platinum]", "never contacted")
    [m] = [m for m in matches([shipped["complaint-callback"]], people, History(), NINE)
           if m.facts.account == "20000034"]
    assert m.reasons == ("complaint C000034 handled 15 h ago, not called back (≤ 72 h)",)
    [m] = [m for m in matches([shipped["unbound-bank"]], people, History(), NINE)
           if m.facts.account == "20000005"]
    assert m.reasons[1] == "no bank account bound"
    assert m.reasons[0].startswith("account opened ") and "≥ 7)" in m.reasons[0]


def test_opted_out_condition() -> None:
    strategy = Strategy.model_validate({
        "id": "x", "title": {"zh": "x", "en": "x"}, "population": {"opted_out": False},
        "action": {"message": {"channel": "sms", "text": {"zh": "x", "en": "x"}}}})
    history = History(opt_outs={"20000003": frozenset({"sms"})})
    found = matches([strategy], population(5, 1, MONDAY), history, NINE)
    assert [m.facts.account for m in found] == ["20000000", "20000001", "20000002", "20000004"]


async def test_pages_of_customers_give_the_same_matches(shipped: dict[str, Strategy]) -> None:
    base = ListCustomerBase(population(N, 7, MONDAY))
    pages = [len(page) async for page in base.customer_facts(page_size=300)]
    assert pages == [300, 300, 300, 100]
    found = await find_matches(base, [shipped["birthday-greeting"]], History(), NINE)
    assert len(found) == len(expect(lambda i: i % 13 == 0))


def test_a_birthday_on_29_february() -> None:
    assert next_birthday(dt.date(2000, 2, 29), dt.date(2027, 2, 28)) == dt.date(2027, 2, 28)
    assert next_birthday(dt.date(2000, 2, 29), dt.date(2028, 2, 28)) == dt.date(2028, 2, 29)
    assert next_birthday(dt.date(1990, 1, 5), dt.date(2026, 12, 30)) == dt.date(2027, 1, 5)


def test_schedules_follow_the_exchange_calendar(shipped: dict[str, Strategy]) -> None:
    calendar = load_calendar()
    trading = shipped["morning-note"].schedule
    holiday = shipped["holiday-greeting"].schedule
    assert runs_on(trading, MONDAY, calendar)
    assert not runs_on(trading, dt.date(2026, 11, 22), calendar)        # a Sunday
    first_off = min(d for d in calendar.days_off if d.year == 2026 and d.month == 10)
    eve = first_off - dt.timedelta(days=1)
    assert runs_on(holiday, eve, calendar)
    assert not runs_on(holiday, first_off, calendar)
    assert not runs_on(holiday, MONDAY, calendar)
    assert not runs_on(trading, first_off + dt.timedelta(days=2), calendar)
    # the Spring Festival of 2026: Saturday 14 February is a make-up working day, but no
    # trading day: the greeting goes on Friday the 13th, the last trading day
    assert runs_on(holiday, dt.date(2026, 2, 13), calendar)
    assert not runs_on(holiday, dt.date(2026, 2, 14), calendar)
    assert not runs_on(holiday, dt.date(2026, 11, 20), calendar)       # a Friday, no holiday
    assert not is_due(trading, NINE.replace(hour=8, minute=29), calendar)
    assert is_due(trading, NINE.replace(hour=8, minute=30), calendar)

