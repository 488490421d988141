"""The flow language: the pydantic schema of one IVR flow file (see docs/flows.md).

A flow is a named graph of nodes; each node has a ``type`` that decides its fields. Targets name
a node of the same flow, or ``flow:<name>`` to enter another flow at its start. Values spoken or
passed to actions are variable references (``quote.last``) or literals. The schema checks shapes;
``flow_check`` checks meaning across nodes and files.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

NAME = r"^[a-z][a-z0-9_]*$"
#: an ACD queue's name, as ``acd.queues`` in the settings allows it (``config.QueueSettings``)
QUEUE_NAME = r"^[a-z0-9_-]{1,32}$"
VAR_REF = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
KEYS = "0123456789*#"

#: how a dynamic value is spoken (``callcenter.ivr.speech``)
SayKind = Literal["price", "amount", "quantity", "integer", "attempts", "percent", "change",
                  "digits",
                  "stock", "date", "time", "volume", "refusal", "prompt"]

#: named input validators for ``collect``
Validator = Literal["digits", "stock_code", "price", "quantity", "amount", "account",
                    "password", "new_password", "order_no", "choice", "rating", "phone",
                    "date_mmdd"]
#: validators of money: there ``*`` is the decimal point (not "back") and ``#`` alone goes back
DECIMAL_VALIDATORS = frozenset({"price", "amount"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _key_text(value: object) -> object:
    """A phone key written as a number (``yes_key: 1``) is the key ``"1"``."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: a phone key (``"1"``, ``"#"``); an unquoted digit is accepted and read as its text
PhoneKey = Annotated[str, BeforeValidator(_key_text, json_schema_input_type=str | int)]
#: what ``VAR_REF`` allows, for the JSON Schema (``flow_schema.py``)
_VAR_REF_SCHEMA: JsonDict = {"pattern": VAR_REF.pattern}


class Say(_Model):
    """A dynamic value: ``{say: price, value: quote.last}``."""

    say: SayKind
    value: str = Field(json_schema_extra=_VAR_REF_SCHEMA)

    @field_validator("value")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not VAR_REF.fullmatch(v):
            raise ValueError(f"{v!r} is not a variable reference like quote.last")
        return v


PromptItem = Annotated[str, Field(pattern=r"^[a-z0-9_]+(/[a-z0-9_]+)*$")] | Say


class Defaults(_Model):
    timeout: float = Field(5.0, gt=0, le=60)
    retries: int = Field(3, ge=0, le=9)
    back_key: PhoneKey | None = "*"
    agent_key: PhoneKey | None = "0"
    agent: str | None = None          # target of the agent key and of exhausted retries
    fail: str | None = None           # target when retries run out (default: agent, else goodbye)
    invalid_prompts: tuple[PromptItem, ...] = ("invalid_choice",)
    timeout_prompts: tuple[PromptItem, ...] = ("no_input",)


class _Node(_Model):
    note: str | None = None           # free text for operators; ignored by the engine


class Play(_Node):
    type: Literal["play"]
    prompts: tuple[PromptItem, ...]
    next: str


class MenuNode(_Node):
    type: Literal["menu"]
    prompts: tuple[PromptItem, ...]
    options: dict[str, str] = Field(json_schema_extra={
        "propertyNames": {"pattern": "^[0-9*#]$"}, "minProperties": 1})  # KEYS
    timeout: float | None = None
    retries: int | None = None
    invalid_prompts: tuple[PromptItem, ...] | None = None
    timeout_prompts: tuple[PromptItem, ...] | None = None
    fail: str | None = None

    @field_validator("options")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if len(key) != 1 or key not in KEYS:
                raise ValueError(f"option key {key!r} must be one of {KEYS}")
        if not v:
            raise ValueError("a menu needs at least one option")
        return v


class Collect(_Node):
    # what ``_lengths`` checks that a JSON Schema can say (for editors; ``flow_schema.py``)
    model_config = ConfigDict(json_schema_extra={
        "if": {"required": ["validator"],
               "properties": {"validator": {"enum": ["password", "new_password"]}}},
        "then": {"required": ["secret"], "properties": {"secret": {"const": True}}}})

    type: Literal["collect"]
    prompts: tuple[PromptItem, ...]
    var: str = Field(pattern=NAME)
    min_digits: int = Field(1, ge=1, le=32)
    max_digits: int = Field(..., ge=1, le=32)
    terminator: str | None = Field("#", json_schema_extra={"enum": ["#", "*", None]})
    validator: Validator = "digits"
    #: secret input (passwords): kept out of variables, timelines and logs; only the next
    #: action may read it, and it is wiped after
    secret: bool = False
    timeout: float | None = None
    retries: int | None = None
    invalid_prompts: tuple[PromptItem, ...] | None = None
    timeout_prompts: tuple[PromptItem, ...] | None = None
    fail: str | None = None
    next: str

    @model_validator(mode="after")
    def _lengths(self) -> Collect:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is larger than max_digits")
        if self.terminator is not None and self.terminator not in ("#", "*"):
            raise ValueError("terminator must be '#' or '*'")
        if self.validator in ("password", "new_password") and not self.secret:
            raise ValueError("a password is collected with secret: true")
        if self.validator in DECIMAL_VALIDATORS and self.terminator != "#":
            raise ValueError("a price or amount ends with '#' ('*' is its decimal point, and "
                             "'#' on its own goes back)")
        return self


class Confirm(_Node):
    type: Literal["confirm"]
    prompts: tuple[PromptItem, ...]
    yes_key: PhoneKey = "1"
    no_key: PhoneKey = "2"
    yes: str
    no: str
    #: create a fresh idempotency key (variable ``idempotency_key``) on entering this step
    idempotent: bool = False
    timeout: float | None = None
    retries: int | None = None
    fail: str | None = None


class Action(_Node):
    type: Literal["action"]
    action: str = Field(pattern=NAME)
    args: dict[str, str] = Field(default_factory=dict)
    result: str | None = Field(None, pattern=NAME)
    #: outcome -> target; outcomes are "ok", refusal codes, "error"; "default" catches the rest
    on: dict[str, str] = Field(json_schema_extra={
        "anyOf": [{"required": ["ok"]}, {"required": ["default"]}]})

    @field_validator("on")
    @classmethod
    def _has_ok(cls, v: dict[str, str]) -> dict[str, str]:
        if "ok" not in v and "default" not in v:
            raise ValueError("an action needs an 'ok' (or 'default') outcome")
        return v


class Condition(_Model):
    # what ``_one_test`` checks, for editors (``flow_schema.py``)
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": [name]} for name in ("equals", "not_equals", "in", "is_set")]})

    var: str = Field(json_schema_extra=_VAR_REF_SCHEMA)
    equals: str | int | None = None
    not_equals: str | int | None = None
    is_in: tuple[str | int, ...] | None = Field(None, alias="in")
    is_set: bool | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [self.equals, self.not_equals, self.is_in, self.is_set]
        if sum(t is not None for t in tests) != 1:
            raise ValueError("a condition has exactly one of equals, not_equals, in, is_set")
        if not VAR_REF.fullmatch(self.var):
            raise ValueError(f"{self.var!r} is not a variable reference")
        return self


class Case(_Model):
    when: Condition
    goto: str


class Branch(_Node):
    type: Literal["branch"]
    cases: tuple[Case, ...]
    otherwise: str = Field(alias="else")


class SetVars(_Node):
    type: Literal["set"]
    values: dict[str, str | int]
    next: str


class SubFlow(_Node):
    type: Literal["subflow"]
    flow: str = Field(pattern=NAME)
    next: str


class Hours(_Node):
    type: Literal["hours"]
    schedule: str = Field(pattern=NAME)
    open: str
    closed: str


class Queue(_Node):
    type: Literal["queue"]
    prompts: tuple[PromptItem, ...] = ()
    queue: str = Field(pattern=QUEUE_NAME)
    #: variables handed to the agent's screen pop, by name
    context: tuple[str, ...] = ()


class Record(_Node):
    type: Literal["record"]
    prompts: tuple[PromptItem, ...]
    max_seconds: int = Field(60, ge=1, le=600)
    kind: str = Field("message", pattern=NAME)
    next: str


class Hangup(_Node):
    type: Literal["hangup"]
    prompts: tuple[PromptItem, ...] = ()


class Return(_Node):
    """Back to the flow that entered this one as a sub-flow (or hang up at top level)."""

    type: Literal["return"]


Node = Annotated[
    Play | MenuNode | Collect | Confirm | Action | Branch | SetVars | SubFlow | Hours | Queue
    | Record | Hangup | Return,
    Field(discriminator="type"),
]


class Flow(_Model):
    flow: str = Field(pattern=NAME)
    description: str = ""
    #: what the flow is called for people (an agent's screen pop shows the caller's way through
    #: the IVR in these words): ``{zh: 账户查询, en: Account}``
    title: dict[Literal["zh", "en"], str] = {}
    start: str
    defaults: Defaults = Defaults()
    #: variables the flow reads that someone else sets (caller id, customer...)
    inputs: tuple[str, ...] = ()
    nodes: dict[str, Node] = Field(json_schema_extra={"propertyNames": {"pattern": NAME}})

    @field_validator("nodes")
    @classmethod
    def _names(cls, v: dict[str, Node]) -> dict[str, Node]:
        for name in v:
            if not re.fullmatch(NAME, name):
                raise ValueError(f"node name {name!r} must be lower_case_words")
        return v


class Schedule(_Model):
    """Business hours: weekly windows plus holidays (no service) and extra working days.

    ``calendar: exchange`` (the default) closes on every day of the exchange calendar's public
    holidays and opens on its make-up working weekends (``broker/data/calendar.yaml``, or
    ``backoffice.calendar``); ``holidays`` and ``workdays`` add the call center's own days on
    top and win over the calendar (``ivr/schedules.py``). ``calendar: none``: only these."""

    timezone: str = "Asia/Shanghai"
    weekly: dict[str, tuple[str, ...]]
    calendar: Literal["exchange", "none"] = "exchange"
    holidays: tuple[str, ...] = ()      # ISO dates
    workdays: tuple[str, ...] = ()      # ISO dates that open although weekly says closed

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {v!r}") from exc
        return v

    @field_validator("holidays", "workdays")
    @classmethod
    def _dates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for day in v:
            try:
                dt.date.fromisoformat(day)
            except ValueError as exc:
                raise ValueError(f"{day!r} is not a date like 2026-10-01") from exc
        return v

    @field_validator("weekly")
    @classmethod
    def _windows(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for day, windows in v.items():
            if day not in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
                raise ValueError(f"{day!r} is not a weekday (mon..sun)")
            for w in windows:
                if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)", w):
                    raise ValueError(f"{day}: window {w!r} must look like 09:00-17:30")
                if w[:5] >= w[6:]:
                    raise ValueError(f"{day}: window {w!r} ends before it starts "
                                     "(split a night window at 24:00)")
        return v
