"""Where a call can be sent (a transfer, a consultation, a conference): a queue, an agent or a
number. The console protocol (``seats/protocol.py``) carries it; the call controls
(``acd/control.py``) act on it. Defined here so the ACD does not import the console."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from callcenter.telephony.values import PHONE_NUMBER

#: an agent's (or a queue's) id
AGENT_ID = r"^[A-Za-z0-9_.-]{1,32}$"


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["queue", "agent", "number"]
    value: str = Field(min_length=1, max_length=32)

    @field_validator("value")
    @classmethod
    def _checked(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind == "number" and not PHONE_NUMBER.fullmatch(value):
            raise ValueError("a number is 2 to 20 digits, optionally after a +")
        if kind in ("queue", "agent") and not re.fullmatch(AGENT_ID, value):
            raise ValueError("not a queue or agent id")
        return value
