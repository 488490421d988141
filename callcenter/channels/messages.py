"""What travels on the bus (MQTT), as pydantic models: the contract between the engine and the
channel servers. ``docs/channels.md`` describes the same; this module is the authority.

Topics (``<kind>`` is the channel kind: ``fax``, ``email``, ``sms``, or a plug-in's own):

- ``callcenter/outbox/<kind>``    engine -> channel server: an ``Outbound`` message to deliver
- ``callcenter/delivery/<kind>``  channel server -> engine: a ``DeliveryReport`` for one message
- ``callcenter/inbound/<kind>``   channel server -> engine: an ``Inbound`` contact (mail, fax)

Every publish is QoS 1 and carries a ``message_id``; receivers de-duplicate on it (a QoS 1
message may arrive twice). Payloads are UTF-8 JSON. Secrets never travel on the bus.

Every field is bounded (lengths, integer ranges, the size and depth of the free-form ``data`` and
``detail`` objects, times), and so is a whole payload: ``MAX_PAYLOAD_BYTES``, which the broker
enforces too (``message_size_limit``). A payload outside the bounds is not a message: receivers
park it as a dead letter (``bus.park``) and go on with the next.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

TOPIC_PREFIX = "callcenter"
KIND = r"^[a-z][a-z0-9_-]{0,31}$"
ID = r"^[A-Za-z0-9_.-]+$"

#: the largest payload on the bus, in bytes (UTF-8 JSON); the broker drops larger ones
MAX_PAYLOAD_BYTES = 256 * 1024
#: ``Outbound.data`` (template data: a statement's fills, positions, orders) as JSON, at most
MAX_DATA_BYTES = 128 * 1024
#: ``DeliveryReport.detail`` (pages, parts, peer ids) as JSON, at most
MAX_DETAIL_BYTES = 8 * 1024
#: integers anywhere in a payload fit a signed 64-bit integer (SQLite's, and most peers')
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def outbox_topic(kind: str) -> str:
    return f"{TOPIC_PREFIX}/outbox/{_kind(kind)}"


def delivery_topic(kind: str) -> str:
    return f"{TOPIC_PREFIX}/delivery/{_kind(kind)}"


def inbound_topic(kind: str) -> str:
    return f"{TOPIC_PREFIX}/inbound/{_kind(kind)}"


def _kind(kind: str) -> str:
    if not re.fullmatch(KIND, kind):
        raise ValueError(f"not a channel kind: {kind!r}")
    return kind


# -- bounds ---------------------------------------------------------------------------------------

def _sane_time(value: dt.datetime) -> dt.datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if not _EARLIEST <= aware < _LATEST:
        raise ValueError(f"a time between {_EARLIEST:%Y} and {_LATEST:%Y} is expected")
    return value


def bounded_json(value: Any, *, max_bytes: int, max_depth: int) -> Any:
    """``value`` if it is plain JSON within the bounds: at most ``max_depth`` levels of objects
    and arrays, string keys of at most 64 characters, 64-bit integers, finite numbers, and at
    most ``max_bytes`` bytes encoded; ``ValueError`` saying which bound it broke."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str) or len(key) > 64:
                        raise ValueError("keys must be strings of at most 64 characters")
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                raise ValueError("an integer out of the 64-bit range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("a number that is not finite")
        else:
            raise ValueError(f"not JSON: {type(item).__name__}")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > max_bytes:
        raise ValueError(f"{size} bytes as JSON, more than {max_bytes}")
    return value


def _data(value: dict[str, Any]) -> dict[str, Any]:
    bounded_json(value, max_bytes=MAX_DATA_BYTES, max_depth=8)
    return value


def _detail(value: dict[str, Any]) -> dict[str, Any]:
    bounded_json(value, max_bytes=MAX_DETAIL_BYTES, max_depth=4)
    return value


Time = Annotated[dt.datetime, AfterValidator(_sane_time)]
MessageId = Annotated[str, Field(min_length=8, max_length=64, pattern=ID)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1

    @model_validator(mode="after")
    def _fits_the_bus(self) -> _Payload:
        size = len(self.__pydantic_serializer__.to_json(self))
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"{size} bytes as JSON, more than {MAX_PAYLOAD_BYTES}")
        return self


class Outbound(_Payload):
    """One message to deliver. ``template`` + ``data`` are rendered by the channel server in
    ``lang``; ``to`` is the address in the channel's own form (phone number, e-mail address,
    fax number)."""

    message_id: MessageId
    channel: str = Field(pattern=KIND)
    to: str = Field(min_length=1, max_length=254)
    #: statement | confirmations | note | fill | fund | price_alert | ipo | daily_summary | ...
    template: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    lang: Literal["zh", "en"] = "zh"
    account: str = Field("", pattern=r"^[0-9]{0,16}$")
    #: the service request (or notice) this delivers, for people to quote
    ref: str = Field("", max_length=32)
    data: Annotated[dict[str, Any], AfterValidator(_data)] = {}
    created_at: Time


class DeliveryState(enum.StrEnum):
    SENT = "sent"            # handed to the peer (SMTP accepted, SMSC submit_sm_resp, fax sent)
    DELIVERED = "delivered"  # the peer confirmed delivery (SMS receipt; fax: pages received)
    FAILED = "failed"        # given up: ``reason`` says why, ``retriable`` is false
    RETRYING = "retrying"    # a temporary failure; the channel server will try again


class DeliveryReport(_Payload):
    message_id: MessageId
    channel: str = Field(pattern=KIND)
    state: DeliveryState
    reason: str = Field("", max_length=500)
    attempt: int = Field(1, ge=1, le=10_000)
    #: channel specifics: fax pages, SMS parts and SMSC ids, SMTP queue id ...
    detail: Annotated[dict[str, Any], AfterValidator(_detail)] = {}
    at: Time


class Inbound(_Payload):
    """A contact that arrived by mail or fax, for agents to see."""

    contact_id: MessageId
    channel: str = Field(pattern=KIND)
    sender: str = Field(max_length=254)
    subject: str = Field("", max_length=500)
    text: str = Field("", max_length=20000)
    #: a file the channel server stored (e.g. the received fax as PDF), path on this host
    attachment: str = Field("", max_length=1024)
    pages: int | None = Field(None, ge=0, le=10_000)
    received_at: Time

    @field_validator("text")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        return value.replace("\x00", "")
