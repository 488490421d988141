"""A service strategy as written in ``strategies/<id>.yaml`` (pydantic, unknown fields refused).

A strategy names its population (conditions over ``broker/facts.py``'s facts and our own contact
records, all of which must hold), its schedule, its action (a task for an agent, with a dial plan,
or a message through the channel servers), its priority and its caps. ``docs/campaigns.md``,
"Writing a strategy", is the operator's guide.
"""

from __future__ import annotations

import enum
import re
import string
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from callcenter.broker.interface import Tier
from callcenter.dialer.plan import DialPlan
from callcenter.tasks.form import FormField, parse_form

__all__ = ["PLACEHOLDERS", "TEAM_PATTERN", "Action", "Caps", "CountRange", "Days", "Deadline",
           "DialSpec", "MessageAction", "MoneyRange", "Population", "Schedule", "Strategy",
           "TaskAction", "Text"]

_HHMM_RE: Final = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
#: a team as the console's protocol takes it (``seats/protocol.py`` ``TEAM``), never empty
TEAM_PATTERN: Final = r"^[a-z0-9_-]{1,32}$"


def _hhmm(value: str) -> str:
    if not isinstance(value, str) or _HHMM_RE.fullmatch(value) is None:
        raise ValueError(f"{value!r}: a time of day as HH:MM (00:00-23:59), in quotes")
    return value


_HHMM = Annotated[str, BeforeValidator(_hhmm)]
#: what a message's text may name, filled from the customer's facts and the run
PLACEHOLDERS: Final = frozenset({"name", "date", "tier"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Model):
    """Words in Mandarin and English (Mandarin first)."""

    zh: str = Field(min_length=1, max_length=500)
    en: str = Field(min_length=1, max_length=500)


def _check_bounds(low: int | Decimal | None, high: int | Decimal | None) -> None:
    """A range gives at least one bound, and its min is not above its max."""
    if low is None and high is None:
        raise ValueError("give min, max or both")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min {low} is more than max {high}")


class CountRange(_Model):
    """A whole number at least ``min`` and at most ``max`` (either may be left out)."""

    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounded(self) -> CountRange:
        _check_bounds(self.min, self.max)
        return self

    def always(self) -> bool:
        """True for every count (0 and up)."""
        return (self.min or 0) == 0 and self.max is None


class MoneyRange(_Model):
    """Yuan, at least ``min`` and at most ``max`` (given as numbers or text, never floats)."""

    min: Decimal | None = Field(None, ge=0)
    max: Decimal | None = Field(None, ge=0)

    @field_validator("min", "max", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("write money as a whole number or in quotes ('1000.50')")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> MoneyRange:
        _check_bounds(self.min, self.max)
        return self

    def always(self) -> bool:
        return (self.min or 0) == 0 and self.max is None


class TierSet(_Model):
    in_: tuple[Tier, ...] = Field(alias="in", min_length=1)


class Within(_Model):
    """An anniversary within ``within_days`` days from the run day (0: on the day)."""

    within_days: int = Field(ge=0, le=366)


class HandledWithin(_Model):
    """A complaint handled within the last ``within_hours`` hours of the run and not called back
    yet (the strategy made no task for it): one task per complaint."""

    within_hours: int = Field(ge=1, le=24 * 90)


class Population(_Model):
    """Conditions that must all hold. At least one must be able to fail (``check``)."""

    tier: TierSet | None = None
    assets: MoneyRange | None = None
    account_age_days: CountRange | None = None
    birthday: Within | None = None
    bank_bound: bool | None = None
    #: days since the last trade; a customer who never traded has none and does not match
    days_since_last_trade: CountRange | None = None
    #: true: only customers who never traded
    never_traded: bool | None = None
    trades_30d: CountRange | None = None
    complaint_handled: HandledWithin | None = None
    #: days since our last shared proactive contact (``contact_log``, strategy tasks; not the
    #: contacts of strategies with ``caps.shared: false``); a customer never contacted matches
    #: ``min`` and not ``max``
    days_since_last_contact: CountRange | None = None
    #: false: only customers with no opt-out at all; true: only those with one
    opted_out: bool | None = None
    language: Literal["zh", "en"] | None = None


class Days(enum.StrEnum):
    EVERY_DAY = "every_day"
    WEEKDAYS = "weekdays"              # Monday to Friday, holidays or not
    TRADING_DAYS = "trading_days"      # the exchange calendar's
    BEFORE_HOLIDAY = "before_holiday"  # the last trading day before an exchange holiday


class Schedule(_Model):
    """On ``days``, once a day at ``at``, or every ``every_minutes`` from ``from`` until
    ``until`` (the site's local time, ``site.timezone``). Each run is a slot: "HH:MM"."""

    at: _HHMM | None = None
    every_minutes: int | None = Field(None, ge=5, le=24 * 60)
    from_: _HHMM | None = Field(None, alias="from")
    until: _HHMM | None = None
    days: Days = Days.TRADING_DAYS

    @model_validator(mode="after")
    def _one_form(self) -> Schedule:
        repeat = (self.every_minutes, self.from_, self.until)
        if self.at is not None and any(v is not None for v in repeat):
            raise ValueError("give either at (once a day) or every_minutes with from and until")
        if self.at is None and any(v is not None for v in repeat):
            if None in repeat:
                raise ValueError("a repeating schedule gives every_minutes, from and until")
            assert self.from_ is not None and self.until is not None
            if self.from_ > self.until:
                raise ValueError(f"from {self.from_} is after until {self.until}")
        return self

    def slots(self) -> tuple[str, ...]:
        """The day's runs, "HH:MM" each, in order."""
        if self.every_minutes is None:
            return (self.at or "09:00",)
        assert self.from_ is not None and self.until is not None
        start = int(self.from_[:2]) * 60 + int(self.from_[3:])
        end = int(self.until[:2]) * 60 + int(self.until[3:])
        return tuple(f"{m // 60:02d}:{m % 60:02d}"
                     for m in range(start, end + 1, self.every_minutes))


class Deadline(_Model):
    """The task must be done ``hours`` after the run, or after the handling of the complaint
    the task is for."""

    after: Literal["run", "complaint_handled"] = "run"
    hours: int = Field(ge=1, le=24 * 30)


class DialSpec(DialPlan):
    """A ``DialPlan`` without a time zone: the customer's is taken from the facts."""

    @model_validator(mode="before")
    @classmethod
    def _no_zone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timezone" in data:
            raise ValueError("timezone is the customer's own (from the back office): leave it "
                             "out")
        return data


class TaskAction(_Model):
    """A task for an agent: the customer's manager when ``to_manager`` and they have one known
    to the call center (``agents``), else anyone in ``team`` (the task's reason says why)."""

    text: Text
    script: Text
    #: the outcome form (``tasks/form.py``)
    form: tuple[dict[str, Any], ...] = Field(min_length=1)
    team: str = Field(pattern=TEAM_PATTERN)
    to_manager: bool = False
    #: due this many hours after the run
    due_hours: int = Field(24, ge=0, le=24 * 30)
    deadline: Deadline | None = None
    dial: DialSpec = DialSpec()

    @field_validator("form")
    @classmethod
    def _form(cls, form: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        parse_form(form)
        return form

    def form_fields(self) -> tuple[FormField, ...]:
        return parse_form(self.form)


class MessageAction(_Model):
    """A message through the channel servers (the ``note`` template, the text per language).
    No fax: the back office keeps no customer's fax number."""

    channel: Literal["sms", "email"]
    text: Text

    @field_validator("text")
    @classmethod
    def _names(cls, text: Text) -> Text:
        for words in (text.zh, text.en):
            try:
                names = {name for _lit, name, _spec, _conv in string.Formatter().parse(words)
                         if name is not None}
            except ValueError as exc:
                raise ValueError(f"text: {exc} (write {{{{ and }}}} for braces)") from exc
            unknown = names - PLACEHOLDERS
            if unknown:
                raise ValueError(f"text names {sorted(unknown)}; it may name "
                                 f"{', '.join('{' + n + '}' for n in sorted(PLACEHOLDERS))}")
        return text


class Action(_Model):
    """Exactly one of ``task`` and ``message``."""

    task: TaskAction | None = None
    message: MessageAction | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        if (self.task is None) == (self.message is None):
            raise ValueError("give exactly one of task and message")
        return self

    @property
    def channel(self) -> str:
        """The opt-out channel this action uses."""
        return "call" if self.message is None else self.message.channel


class Caps(_Model):
    #: this strategy contacts one customer at most once per this many days (1: once a day)
    cooldown_days: int = Field(7, ge=0, le=3650)
    #: counts against, and is held back by, the global cap (one contact per customer per
    #: ``strategies.contact_every_days``); false for a service the customer asked for
    shared: bool = True


class Strategy(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    title: Text
    enabled: bool = True
    population: Population
    schedule: Schedule = Schedule()
    action: Action
    #: 0 first .. 100 last (the tasks' order too)
    priority: int = Field(50, ge=0, le=100)
    caps: Caps = Caps()
    #: a duty (a regulator's or the service's: a complaint call-back, a new account's
    #: verification call): never held back by other strategies' contacts, the daily one-contact
    #: rule or an opt-out (a call only; the dialer keeps the do-not-call list)
    mandatory: bool = False
