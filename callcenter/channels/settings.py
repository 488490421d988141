"""Settings of the bus and the channel servers: the ``[channels]`` table of the configuration.

``Settings.channels`` (``callcenter/config.py``) holds one ``ChannelsSettings``; environment
variables reach it as ``CALLCENTER_CHANNELS__MQTT_PORT=1885`` and the like. A plug-in's own
settings are the table ``[channels.extra.<kind>]``, validated by the plug-in's ``Settings`` model
when its channel server starts (see ``docs/channels.md``)::

    [channels]
    mqtt_port = 1884
    servers = ["sms"]              # channel servers the engine runs in its own process

    [channels.extra.log]           # a channel kind of its own: gets a broker user and ACL
    path = "/var/log/callcenter/channel-log.jsonl"
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callcenter.channels.messages import KIND

#: the kinds the engine ships with; each gets a broker user and ACL whether it runs or not
BUILTIN_KINDS: tuple[str, ...] = ("email", "fax", "sms")
#: the broker user of the engine (the outbox relay); no channel kind may take this name
ENGINE_USER = "engine"


class ChannelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the engine starts the bus and the outbox relay (off: requests wait in the outbox)
    enabled: bool = True
    #: with no ``servers`` set, ``callcenter run`` starts simulated peers (a mail server
    #: process, the SMSC simulator) and the e-mail, SMS and fax servers against them
    sandbox_peers: bool = True
    #: the broker (our own mosquitto, ``channels/mosquitto.py``), loopback only by default
    mqtt_host: str = "127.0.0.1"
    #: 1884, not 1883: a system mosquitto (Debian starts one) keeps its port
    mqtt_port: int = Field(1884, ge=1, le=65535)
    keepalive: int = Field(30, ge=5, le=3600)
    #: the broker's files (configuration, password and ACL files, persistence, log) live in
    #: ``<state_dir>/<state_subdir>``; the passwords themselves in ``<state_dir>/mqtt-users.json``
    state_subdir: str = Field("mosquitto", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    mosquitto_bin: str = "mosquitto"
    mosquitto_passwd_bin: str = "mosquitto_passwd"  # noqa: S105 (a program's name)
    #: the system account mosquitto drops to when started as root ("" = stay the invoking
    #: user; a named account must be able to reach the state directory)
    run_as_user: str = ""
    #: mosquitto must accept our login within this many seconds of being started
    start_timeout: float = Field(10.0, gt=0)
    #: connect, subscribe and PUBACK must each come within this many seconds
    io_timeout: float = Field(10.0, gt=0)
    #: after a lost connection: wait ``reconnect_min`` seconds, doubling to ``reconnect_max``
    reconnect_min: float = Field(0.2, gt=0)
    reconnect_max: float = Field(10.0, gt=0)

    #: the relay publishes at most this many outbox rows per database round
    relay_batch: int = Field(100, ge=1, le=10000)
    #: a failed publish is tried again after ``backoff_min_s``, doubling to ``backoff_max_s``
    backoff_min_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    #: a row published but without any delivery report after this long is published again
    #: (the channel server de-duplicates on the message id)
    resend_after_s: float = Field(300.0, gt=0)
    #: ... at most this many publishes in all; then the row is failed ("no report")
    max_publishes: int = Field(12, ge=1)

    #: a channel server tries one message at most this many times (retriable failures) ...
    deliver_attempts: int = Field(5, ge=1, le=100)
    #: ... waiting ``retry_min_s`` after the first failure, doubling to ``retry_max_s``
    retry_min_s: float = Field(30.0, gt=0)
    retry_max_s: float = Field(1800.0, gt=0)
    #: on shutdown a channel server lets a delivery in progress finish for this long
    shutdown_grace_s: float = Field(30.0, gt=0)

    #: the channel servers the run command starts inside the engine's process (the others run
    #: as ``callcenter channel <kind>``)
    servers: list[str] = []
    #: per-kind plug-in settings (``[channels.extra.<kind>]``); a kind named here gets a broker
    #: user and ACL like the built-in ones
    extra: dict[str, dict[str, Any]] = {}

    @field_validator("servers")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        for kind in value:
            _check_kind(kind)
        return value

    @field_validator("extra")
    @classmethod
    def _extra_kinds(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for kind in value:
            _check_kind(kind)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ChannelsSettings:
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must be >= reconnect_min")
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError("backoff_max_s must be >= backoff_min_s")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        return self

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every channel kind this installation knows: built-in, configured, or run here."""
        return tuple(sorted({*BUILTIN_KINDS, *self.servers, *self.extra}))

    @property
    def users(self) -> tuple[str, ...]:
        """The broker's users: the engine, then one per channel kind."""
        return (ENGINE_USER, *self.kinds)


def _check_kind(kind: str) -> None:
    if not re.fullmatch(KIND, kind):
        raise ValueError(f"not a channel kind: {kind!r} (lower-case letters, digits, _ and -)")
    if kind == ENGINE_USER:
        raise ValueError(f"{ENGINE_USER!r} is the engine's broker user, not a channel kind")
