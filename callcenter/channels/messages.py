"""What travels on the bus (MQTT), as pydantic models: the contract between the engine and the
channel servers. ``docs/channels.md`` describes the same; this module is the authority.

Topics (``<kind>`` is the channel kind: ``fax``, ``email``, ``sms``, or a plug-in's own):

- ``callcenter/outbox/<kind>``    engine -> channel server: an ``Outbound`` message to deliver
- ``callcenter/delivery/<kind>``  channel server -> engine: a ``DeliveryReport`` for one message
- ``callcenter/inbound/<kind>``   channel server -> engine: an ``Inbound`` contact (mail, fax)

Every publish is QoS 1 and carries a ``message_id``; receivers de-duplicate on it (a QoS 1
message may arrive twice). Payloads are UTF-8 JSON. Secrets never travel on the bus.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOPIC_PREFIX = "callcenter"
KIND = r"^[a-z][a-z0-9_-]{0,31}$"


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


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1


class Outbound(_Payload):
    """One message to deliver. ``template`` + ``data`` are rendered by the channel server in
    ``lang``; ``to`` is the address in the channel's own form (phone number, e-mail address,
    fax number)."""

    message_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    channel: str = Field(pattern=KIND)
    to: str = Field(min_length=1, max_length=254)
    #: statement | confirmations | note | fill | fund | price_alert | ipo | daily_summary | ...
    template: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    lang: Literal["zh", "en"] = "zh"
    account: str = Field("", pattern=r"^[0-9]{0,16}$")
    #: the service request (or notice) this delivers, for people to quote
    ref: str = Field("", max_length=32)
    data: dict[str, Any] = {}
    created_at: dt.datetime


class DeliveryState(enum.StrEnum):
    SENT = "sent"            # handed to the peer (SMTP accepted, SMSC submit_sm_resp, fax sent)
    DELIVERED = "delivered"  # the peer confirmed delivery (SMS receipt; fax: pages received)
    FAILED = "failed"        # given up: ``reason`` says why, ``retriable`` is false
    RETRYING = "retrying"    # a temporary failure; the channel server will try again


class DeliveryReport(_Payload):
    message_id: str = Field(min_length=8, max_length=64)
    channel: str = Field(pattern=KIND)
    state: DeliveryState
    reason: str = Field("", max_length=500)
    attempt: int = Field(1, ge=1)
    #: channel specifics: fax pages, SMS parts and SMSC ids, SMTP queue id ...
    detail: dict[str, Any] = {}
    at: dt.datetime


class Inbound(_Payload):
    """A contact that arrived by mail or fax, for agents to see."""

    contact_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    channel: str = Field(pattern=KIND)
    sender: str = Field(max_length=254)
    subject: str = Field("", max_length=500)
    text: str = Field("", max_length=20000)
    #: a file the channel server stored (e.g. the received fax as PDF), path on this host
    attachment: str = ""
    pages: int | None = None
    received_at: dt.datetime

    @field_validator("text")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        return value.replace("\x00", "")
