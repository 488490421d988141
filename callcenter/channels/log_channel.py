"""The ``log`` channel: appends each message as one JSON line to a file.

Used by the tests, and the example to copy for a site's own channel (WeChat, a pager...). A
plug-in is a ``ChannelPlugin`` subclass with a ``kind``, a pydantic ``Settings`` model (filled
from ``[channels.extra.<kind>]``) and ``deliver``; it is registered in its package's
``pyproject.toml``::

    [project.entry-points."callcenter.channels"]
    log = "callcenter.channels.log_channel:LogChannel"

and run with ``callcenter channel log``. The runner does the bus, de-duplication, retries and
reports; ``deliver`` only delivers, raising ``DeliveryError(reason, retriable=...)`` when it
cannot.

This one is idempotent (``idempotent_deliver = True``): it remembers the message ids in its
file, so a message delivered again after a crash is not written twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from callcenter.channels.messages import DeliveryState, Outbound
from callcenter.channels.plugin import ChannelPlugin, Delivered
from callcenter.errors import DeliveryError


class LogChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the JSON-lines file messages are appended to
    path: Path
    #: for trying the retry path: the first N attempts at every message fail (retriable)
    fail_attempts: int = Field(0, ge=0)
    #: for trying the failure path: messages to these addresses are refused for good
    refuse: list[str] = []


class LogChannel(ChannelPlugin):
    kind: ClassVar[str] = "log"
    Settings: ClassVar[type[BaseModel]] = LogChannelSettings
    idempotent_deliver: ClassVar[bool] = True

    _seen: set[str]
    _tries: dict[str, int]

    @property
    def config(self) -> LogChannelSettings:
        assert isinstance(self.settings, LogChannelSettings)
        return self.settings

    async def start(self) -> None:
        self._seen = await asyncio.to_thread(self._load)
        self._tries = {}

    def _load(self) -> set[str]:
        path = self.config.path
        path.parent.mkdir(parents=True, exist_ok=True)
        seen: set[str] = set()
        if not path.exists():
            return seen
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            # a line torn by a crash: that message was not delivered; cut it off
            data = data[:data.rfind(b"\n") + 1]
            with open(path, "r+b") as fh:
                fh.truncate(len(data))
        for line in data.decode("utf-8").splitlines():
            try:
                seen.add(str(json.loads(line)["message_id"]))
            except (ValueError, KeyError, TypeError):
                continue
        return seen

    async def deliver(self, message: Outbound) -> Delivered:
        if message.message_id in self._seen:
            return Delivered(DeliveryState.DELIVERED, {"duplicate": True})
        if message.to in self.config.refuse:
            raise DeliveryError(f"address {message.to} refused", retriable=False)
        tries = self._tries.get(message.message_id, 0) + 1
        self._tries[message.message_id] = tries
        if tries <= self.config.fail_attempts:
            raise DeliveryError(f"simulated temporary failure {tries}", retriable=True)
        record = {**message.model_dump(mode="json"),
                  "delivered_at": dt.datetime.now(dt.UTC).isoformat()}
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        await asyncio.to_thread(self._append, line.encode("utf-8"))
        self._seen.add(message.message_id)
        self._tries.pop(message.message_id, None)
        return Delivered(DeliveryState.DELIVERED, {"file": str(self.config.path)})

    def _append(self, data: bytes) -> None:
        fd = os.open(self.config.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
