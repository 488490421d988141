"""The day's plan: priorities, caps (never twice a day, cooldowns, the global cap), opt-outs per
channel, and what the tasks and messages carry."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.broker.population import population
from callcenter.broker.rules import SHANGHAI
from callcenter.strategies.conditions import History
from callcenter.strategies.evaluate import matches
from callcenter.strategies.model import Caps, Strategy
from callcenter.strategies.plan import Plan, make_plan, message_not_before

N = 400
MONDAY = dt.date(2026, 11, 23)
NINE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
PEOPLE = population(N, 5, MONDAY)


def gold_call(**caps: Any) -> Strategy:
    """A test strategy: a message to gold customers (i % 10 in (1, 2))."""
    return Strategy.model_validate({
        "id": "gold-sms", "title": {"zh": "金", "en": "Gold"},
        "population": {"tier": {"in": ["gold"]}},
        "action": {"message": {"channel": "sms", "text": {"zh": "{name}", "en": "{name}"}}},
        "priority": 30, "caps": caps or {"cooldown_days": 7}})


def plan_of(strategies: list[Strategy], history: History | None = None, every: int = 3,
            shared: dict[str, bool] | None = None) -> Plan:
    history = history or History()
    return make_plan(matches(strategies, PEOPLE, history, NINE), history, NINE, every, shared)


def accounts(items: list[Any]) -> set[int]:
    return {int(x.account) - 20_000_000 for x in items}


#: customers without a phone number (the recipe: i % 29 == 28)
NO_PHONE = {i for i in range(N) if i % 29 == 28}


def skipped(plan: Plan, strategy: str, *, unreachable: bool = False) -> dict[int, str]:
    """Who was skipped and why (those with no phone number only if ``unreachable``)."""
    return {int(s.account) - 20_000_000: s.reason for s in plan.skipped
            if s.strategy == strategy and (unreachable or s.reason not in ("no address",
                                                                           "no phone"))}


def test_never_twice_a_day_the_higher_priority_wins(shipped: dict[str, Strategy]) -> None:
    birthday = shipped["birthday-greeting"]
    # the morning note, were it shared (it is not: see the test below)
    morning = shipped["morning-note"].model_copy(
        update={"caps": Caps(cooldown_days=1, shared=True)})
    plan = plan_of([morning, birthday])
    both = {i for i in range(N) if i % 13 == 0 and i % 10 <= 5 and i % 5 >= 2}
    no_phone = NO_PHONE
    assert both
    birthdays = {i for i in range(N) if i % 13 == 0} - no_phone
    mornings = {i for i in range(N) if i % 10 <= 5 and i % 5 >= 2} - no_phone - both
    sent = [m for m in plan.messages]
    assert {int(m.account) - 20_000_000 for m in sent if m.strategy == "birthday-greeting"} \
        == birthdays
    assert {int(m.account) - 20_000_000 for m in sent if m.strategy == "morning-note"} \
        == mornings
    assert {i for i, why in skipped(plan, "morning-note").items()
            if why == "already contacted today"} == both - no_phone
    assert plan.skipped_by_reason("morning-note")["no address"] == len(
        {i for i in no_phone if i % 10 <= 5 and i % 5 >= 2})


def test_a_contact_earlier_today_caps_any_strategy() -> None:
    history = History(contacts={"20000001": ((MONDAY, ""),)})
    plan = plan_of([gold_call(cooldown_days=1)], history)
    assert skipped(plan, "gold-sms") == {1: "already contacted today"}


def test_strategies_not_shared_are_one_a_day_among_themselves(
        shipped: dict[str, Strategy]) -> None:
    """The morning note (shared: false) and the shared strategies do not hold each other back
    within a day; each side is one contact a day."""
    morning, birthday = shipped["morning-note"], shipped["birthday-greeting"]
    plan = plan_of([morning, birthday])
    both = {i for i in range(N) if i % 13 == 0 and i % 10 <= 5 and i % 5 >= 2} - NO_PHONE
    assert both
    assert both <= {int(m.account) - 20_000_000 for m in plan.messages
                    if m.strategy == "morning-note"}
    assert both <= {int(m.account) - 20_000_000 for m in plan.messages
                    if m.strategy == "birthday-greeting"}
    # a note earlier today holds another unshared strategy, not a shared one
    history = History(contacts={"20000001": ((MONDAY, "morning-note"),)},
                      unshared=frozenset({"morning-note"}))
    assert skipped(plan_of([gold_call(shared=False, cooldown_days=1)], history),
                   "gold-sms") == {1: "already contacted today"}
    assert skipped(plan_of([gold_call(cooldown_days=1)], history), "gold-sms") == {}


def test_cooldown_per_strategy() -> None:
    recent = History(contacts={"20000001": ((MONDAY - dt.timedelta(days=6), "gold-sms"),),
                               "20000002": ((MONDAY - dt.timedelta(days=7), "gold-sms"),)})
    plan = plan_of([gold_call(cooldown_days=7, shared=False)], recent)
    assert skipped(plan, "gold-sms") == {1: "cooldown"}
    assert 2 in accounts(plan.messages)


def test_the_global_cap_holds_shared_strategies_only() -> None:
    history = History(contacts={"20000001": ((MONDAY - dt.timedelta(days=2), "other"),),
                                "20000002": ((MONDAY - dt.timedelta(days=2), "service"),)})
    shared = {"other": True, "service": False}
    plan = plan_of([gold_call()], history, every=3, shared=shared)
    assert skipped(plan, "gold-sms") == {1: "global cap"}
    assert "contacted 2 days ago by other (one contact per 3 days)" in [
        s.detail for s in plan.skipped]
    assert {2, 11, 12} <= accounts(plan.messages)
    plan = plan_of([gold_call()], history, every=2, shared=shared)
    assert skipped(plan, "gold-sms") == {}
    plan = plan_of([gold_call(shared=False)], history, every=3, shared=shared)
    assert skipped(plan, "gold-sms") == {}


def test_opt_outs_are_per_channel() -> None:
    history = History(opt_outs={"20000001": frozenset({"sms"}),
                                "20000002": frozenset({"call"}),
                                "20000011": frozenset({"all"})})
    plan = plan_of([gold_call()], history)
    assert skipped(plan, "gold-sms") == {1: "opted out", 11: "opted out"}
    assert 2 in accounts(plan.messages)


def test_a_complaint_call_back_task(shipped: dict[str, Strategy]) -> None:
    plan = plan_of([shipped["complaint-callback"]])
    assert accounts(plan.tasks) == {i for i in range(N) if i % 17 == 0} - NO_PHONE
    task = next(t for t in plan.tasks if t.account == "20000000")
    handled = dt.datetime(2026, 11, 22, 18, 0, tzinfo=SHANGHAI)
    assert task.deadline_at == (handled + dt.timedelta(hours=24)).timestamp()
    assert task.due_at == (NINE + dt.timedelta(hours=4)).timestamp()
    assert task.agent_id == "A1001" and task.team == "general"        # platinum: a manager
    assert task.priority == 10 and task.strategy == "complaint-callback"
    assert task.run_day == "2026-11-23" and task.created_by == "strategy"
    assert task.dial["timezone"] == "Asia/Hong_Kong"                   # i % 19 == 0
    assert task.dial["mode"] == "preview" and task.dial["record"] is True
    assert task.fields[0]["name"] == "outcome"
    assert task.reason == "complaint C000000 handled 15 h ago, not called back (≤ 72 h)"
    assert task.match_key == "complaint:C000000"                      # one task per complaint
    assert (task.customer_name, task.tier) == (PEOPLE[0].name, PEOPLE[0].tier.value)
    assert task.phone == PEOPLE[0].phones[0]
    ordinary = next(t for t in plan.tasks if t.account == str(20_000_000 + 17 * 7))  # i=119
    assert ordinary.agent_id == "" and ordinary.team == "general"


def test_a_task_needs_a_phone(shipped: dict[str, Strategy]) -> None:
    plan = plan_of([shipped["new-account-verification"]])
    no_phone = {i for i in range(N) if i % 11 == 0} & NO_PHONE
    assert no_phone
    assert skipped(plan, "new-account-verification", unreachable=True) == dict.fromkeys(
        no_phone, "no phone")


def test_messages_in_the_customers_language_with_an_id_per_day(
        shipped: dict[str, Strategy]) -> None:
    plan = plan_of([shipped["birthday-greeting"]])
    by_account = {int(m.account) - 20_000_000: m for m in plan.messages}
    zh, en = by_account[0], by_account[39]                             # 39 % 8 == 7: English
    assert zh.message_id == "stg-birthday-greeting-20000000-20261123"
    assert zh.payload["lang"] == "zh" and zh.payload["template"] == "note"
    assert zh.payload["data"]["text"].startswith(f"尊敬的{PEOPLE[0].name}，")
    assert en.payload["lang"] == "en"
    assert en.payload["data"]["text"].startswith(f"Dear {PEOPLE[39].name},")
    assert zh.payload["to"] == PEOPLE[0].phones[0]


def test_a_time_zone_that_does_not_exist_skips_the_task(shipped: dict[str, Strategy]) -> None:
    odd = dataclasses.replace(PEOPLE[0], timezone="Mars/Olympus")
    history = History()
    found = matches([shipped["complaint-callback"]], [odd], history, NINE)
    plan = make_plan(found, history, NINE, 3)
    assert [(s.reason, s.detail) for s in plan.skipped] == [
        ("bad time zone", "unknown time zone 'Mars/Olympus' in the back office")]


def test_a_message_waits_for_the_customers_morning() -> None:
    """Messages reach customers between 08:00 and 21:00 in their own zone: a run at dawn (or a
    customer abroad) gets a "not before" for the outbox, never a text in the night."""
    zone = "Asia/Shanghai"
    at = dt.datetime(2026, 12, 4, 5, 47, tzinfo=ZoneInfo(zone))
    assert message_not_before(at, zone) == dt.datetime(2026, 12, 4, 8, 0, tzinfo=ZoneInfo(zone))
    assert message_not_before(at.replace(hour=9), zone) is None
    assert message_not_before(at.replace(hour=21, minute=0), zone) == dt.datetime(
        2026, 12, 5, 8, 0, tzinfo=ZoneInfo(zone))
    # 09:00 in Shanghai is 01:00 in London: the London customer's text waits for 08:00 there
    london = message_not_before(at.replace(hour=9), "Europe/London")
    assert london is not None and london.astimezone(ZoneInfo("Europe/London")).hour == 8
