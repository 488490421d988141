"""How a task may be called: the dial plan a strategy (or an agent) gives its tasks.

Stored with each task (``tasks.dial``, JSON) so that a task keeps the rules it was made under
when the strategy's file changes. The dialer checks every rule here before every call.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_RETRY_MIN", "DialMode", "DialPlan", "Retry", "Window"]

_HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
#: a window's end: up to "24:00" (the end of the day)
_HHMM_END = Annotated[str, Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]


class DialMode(enum.StrEnum):
    PREVIEW = "preview"          # the agent sees the customer first, then dials
    PROGRESSIVE = "progressive"  # the next call is placed when an agent is free, one per agent


class Window(BaseModel):
    """When calls may be placed, in the customer's local time (``DialPlan.timezone``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: _HHMM = "09:00"
    #: the window ends before this time ("24:00": at midnight, the whole rest of the day)
    end: _HHMM_END = "20:00"
    #: ISO weekdays (1 Monday .. 7 Sunday) on which calls may be placed
    days: tuple[int, ...] = (1, 2, 3, 4, 5, 6)

    @field_validator("days")
    @classmethod
    def _days(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if not days or any(not 1 <= d <= 7 for d in days):
            raise ValueError("days are ISO weekdays 1 (Monday) to 7 (Sunday), at least one")
        return tuple(sorted(set(days)))

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.start >= self.end:
            raise ValueError(f"the window's start {self.start} is not before its end {self.end}")
        return self


#: minutes until the next attempt, by the last attempt's result
DEFAULT_RETRY_MIN: Final = {"busy": 10, "no_answer": 60, "machine": 240, "failed": 30}


class Retry(BaseModel):
    """Minutes until the next attempt after each kind of failure (0: no retry for that kind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    busy: int = Field(DEFAULT_RETRY_MIN["busy"], ge=0, le=10080)
    no_answer: int = Field(DEFAULT_RETRY_MIN["no_answer"], ge=0, le=10080)
    machine: int = Field(DEFAULT_RETRY_MIN["machine"], ge=0, le=10080)
    failed: int = Field(DEFAULT_RETRY_MIN["failed"], ge=0, le=10080)


class DialPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: DialMode = DialMode.PREVIEW
    #: the number the customer sees (digits; "" for the trunk's default)
    caller_id: str = Field("", pattern=r"^[0-9]{0,20}$")
    window: Window = Window()
    #: the customer's time zone (IANA), for the window
    timezone: str = "Asia/Shanghai"
    max_attempts: int = Field(3, ge=1, le=10)
    retry: Retry = Retry()
    #: record the call (a new account's verification call must be: its proof)
    record: bool = False
    #: detect answering machines (Asterisk's AMD) and treat them as not reached
    amd: bool = False
    #: how long the customer's phone rings before "no answer"
    ring_s: int = Field(30, ge=5, le=120)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    def local(self, when: dt.datetime) -> dt.datetime:
        """``when`` (aware) in the customer's time zone."""
        return when.astimezone(ZoneInfo(self.timezone))
