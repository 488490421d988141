"""A day's plan (sans-IO): the matches, highest priority first, with the caps applied.

Each match becomes a task or a message, or is skipped with its reason:

- ``opted out of <channel>``: the customer's opt-out for the action's channel (or ``all``);
  not for a mandatory strategy's call (a duty);
- ``already contacted today``: one contact a day per customer from the shared strategies (and
  agents), and one a day from those not shared (``caps.shared: false``), whose contacts
  do not count for the others. The plan's own earlier entries count, so in a batch the higher
  priority wins; across the day, the earlier run;
- ``cooldown``: this strategy contacted the customer less than ``cooldown_days`` ago;
- ``global cap``: a shared strategy, and the customer had a shared contact less than
  ``contact_every_days`` ago (contacts that were no strategy's count as shared);
- ``no phone`` / ``no address``: nowhere to call or send it;
- ``bad time zone``: the back office gave a customer a time zone that does not exist (their
  calling window could not be kept).

A mandatory strategy (a duty) is held back by none of the others' contacts, nor by the daily
rule, nor by an opt-out for its call: only its own cooldown and its one task per match key.
Mandatory strategies come first, then priority 0 first; ties go by strategy id, then account.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.broker.facts import CustomerFacts
from callcenter.dialer.plan import DialPlan
from callcenter.strategies.conditions import History
from callcenter.strategies.evaluate import Match
from callcenter.strategies.model import MessageAction, Strategy, TaskAction
from callcenter.tasks.store import NewTask

__all__ = ["Plan", "PlannedMessage", "Skip", "make_plan", "message_id"]

_TIER_WORDS: Final = {"zh": {"ordinary": "普通", "silver": "银卡", "gold": "金卡",
                             "platinum": "白金"},
                      "en": {"ordinary": "ordinary", "silver": "silver", "gold": "gold",
                             "platinum": "platinum"}}


@dataclass(frozen=True, slots=True)
class Skip:
    strategy: str
    account: str
    reason: str          # the reason's kind: the key of ``Plan.skipped_by_reason``
    detail: str


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    strategy: str
    account: str
    message_id: str
    channel: str
    payload: dict[str, Any]
    reasons: tuple[str, ...]
    #: not sent before this (unix time): the customer's morning when the run is outside
    #: ``MESSAGE_HOURS`` in the customer's own zone; None: at once
    not_before: float | None = None


#: when a strategy's message may reach a customer, in the customer's own time zone
MESSAGE_HOURS: Final = (dt.time(8, 0), dt.time(21, 0))


def message_not_before(run_at: dt.datetime, zone: str,
                       hours: tuple[dt.time, dt.time] = MESSAGE_HOURS) -> dt.datetime | None:
    """The first moment from ``run_at`` inside ``hours`` in ``zone`` (the customer's), or None
    when ``run_at`` is inside them: a manual run at dawn, or a customer abroad, never gets a text
    in the night."""
    local = run_at.astimezone(ZoneInfo(zone))
    start, end = hours
    if start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, start, tzinfo=local.tzinfo)


@dataclass
class Plan:
    day: dt.date
    tasks: list[NewTask] = field(default_factory=list)
    messages: list[PlannedMessage] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def skipped_by_reason(self, strategy: str) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped if s.strategy == strategy))


def message_id(strategy: str, account: str, day: dt.date) -> str:
    """The same for a strategy, customer and run day, however often the run is repeated."""
    return f"stg-{strategy}-{account}-{day:%Y%m%d}"


def _lang(facts: CustomerFacts) -> str:
    return "en" if facts.language == "en" else "zh"


def _both(zh: str, en: str) -> str:
    return f"{zh} / {en}"


def make_task(match: Match, action: TaskAction, run_at: dt.datetime,
              agents: Collection[str] | None = None) -> NewTask:
    """The task for ``match``. ``agents``: the call center's agent ids (a manager who is none
    of them gets no task: the team does); None trusts the back office's manager."""
    facts, strategy = match.facts, match.strategy
    due = run_at + dt.timedelta(hours=action.due_hours)
    deadline: dt.datetime | None = None
    if action.deadline is not None:
        start = run_at
        if action.deadline.after == "complaint_handled" and match.complaint is not None:
            start = match.complaint.handled_at or run_at
        deadline = start + dt.timedelta(hours=action.deadline.hours)
        due = min(due, deadline)
    dial = DialPlan.model_validate({**action.dial.model_dump(), "timezone": facts.timezone})
    why = list(match.reasons)
    agent = ""
    if action.to_manager:
        if not facts.manager:
            why.append(f"no manager on file: to team {action.team}")
        elif agents is not None and facts.manager not in agents:
            why.append(f"manager {facts.manager} is no agent here: to team {action.team}")
        else:
            agent = facts.manager
    return NewTask(
        text=_both(action.text.zh, action.text.en), created_by="strategy",
        account=facts.account, phone=facts.phones[0], agent_id=agent, team=action.team,
        due_at=due.timestamp(), deadline_at=None if deadline is None else deadline.timestamp(),
        priority=strategy.priority, script=_both(action.script.zh, action.script.en),
        fields=[dict(f) for f in action.form], reason="; ".join(why),
        strategy=strategy.id, run_day=run_at.date().isoformat(),
        match_key=match.match_key or run_at.date().isoformat(),
        customer_name=facts.name, tier=facts.tier.value,
        dial=json.loads(dial.model_dump_json()))


def make_message(match: Match, action: MessageAction, run_at: dt.datetime,
                 to: str) -> PlannedMessage:
    facts, lang, day = match.facts, _lang(match.facts), run_at.date()
    words = action.text.en if lang == "en" else action.text.zh
    text = words.format(name=facts.name, date=day.isoformat(),
                        tier=_TIER_WORDS[lang][facts.tier.value])
    payload = {"to": to, "template": "note", "lang": lang, "account": facts.account,
               "data": {"customer": facts.name, "text": text}}
    later = message_not_before(run_at, facts.timezone)
    return PlannedMessage(match.strategy.id, facts.account,
                          message_id(match.strategy.id, facts.account, day), action.channel,
                          payload, match.reasons,
                          None if later is None else later.timestamp())


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _address(facts: CustomerFacts, channel: str) -> str:
    if channel == "email":
        return facts.email or ""
    return facts.phones[0] if facts.phones else ""


def make_plan(found: Sequence[Match], history: History, run_at: dt.datetime,
              contact_every_days: int, shared: Mapping[str, bool] | None = None,
              agents: Collection[str] | None = None) -> Plan:
    """The plan for ``run_at``'s day. ``shared``: whether each strategy id known to the caller
    counts against the caps of others (besides ``history.unshared``; unknown ones do);
    ``agents``: the call center's agent ids (``make_task``)."""
    day = run_at.date()
    plan = Plan(day)
    shared_of = {sid: False for sid in history.unshared}
    shared_of.update(shared or {})
    for m in found:
        shared_of.setdefault(m.strategy.id, m.strategy.caps.shared)
    # account -> the strategy that contacts them today, shared contacts and the others apart
    today: dict[bool, dict[str, str]] = {True: {}, False: {}}
    order = sorted(found, key=lambda m: (not m.strategy.mandatory, m.strategy.priority,
                                         m.strategy.id, m.facts.account, m.match_key))
    for m in order:
        why = _refusal(m.strategy, m.facts, history, day, contact_every_days, shared_of, today)
        if why is not None:
            plan.skipped.append(Skip(m.strategy.id, m.facts.account, *why))
            continue
        action = m.strategy.action
        if action.task is not None:
            plan.tasks.append(make_task(m, action.task, run_at, agents))
        else:
            assert action.message is not None
            plan.messages.append(make_message(m, action.message, run_at,
                                              _address(m.facts, action.message.channel)))
        today[m.strategy.caps.shared].setdefault(m.facts.account, m.strategy.id)
    return plan


def _refusal(strategy: Strategy, facts: CustomerFacts, history: History, day: dt.date,
             every: int, shared_of: Mapping[str, bool],
             today: Mapping[bool, Mapping[str, str]]) -> tuple[str, str] | None:
    channel = strategy.action.channel
    duty_call = strategy.mandatory and strategy.action.task is not None
    out = history.opt_outs.get(facts.account, frozenset())
    if (channel in out or "all" in out) and not duty_call:
        return "opted out", f"opted out of {channel if channel in out else 'all contact'}"
    past = history.contacts.get(facts.account, ())
    kind = strategy.caps.shared
    if not strategy.mandatory:
        # one contact a day: among the shared strategies' (and agents'), and apart among
        # those not shared; a mandatory one takes none from the others
        if facts.account in today[kind]:
            return "already contacted today", f"planned today by {today[kind][facts.account]}"
        for when, by in past:
            if when == day and shared_of.get(by, True) == kind:
                return "already contacted today", f"contacted today by {by or 'an agent'}"
    mine = [when for when, by in past if by == strategy.id and when < day]
    if mine and (day - max(mine)).days < strategy.caps.cooldown_days:
        return "cooldown", (f"contacted by this strategy {(day - max(mine)).days} days ago"
                            f" (cooldown {strategy.caps.cooldown_days} days)")
    if kind and not strategy.mandatory:
        recent = [(when, by) for when, by in past
                  if shared_of.get(by, True) and when < day and (day - when).days < every]
        if recent:
            when, by = max(recent)
            return "global cap", (f"contacted {(day - when).days} days ago by {by or 'an agent'}"
                                  f" (one contact per {every} days)")
    if strategy.action.task is not None and not facts.phones:
        return "no phone", "no phone number on file"
    if strategy.action.task is not None and not _known_zone(facts.timezone):
        return "bad time zone", f"unknown time zone {facts.timezone!r} in the back office"
    if strategy.action.message is not None and not _address(facts, channel):
        return "no address", f"no {'e-mail address' if channel == 'email' else 'mobile number'}"
    return None
