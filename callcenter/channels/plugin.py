"""The plug-in interface of a channel server: what a fax, e-mail, SMS (or a site's WeChat) server
implements. The runner (``channels/runner.py``) does everything else: the bus, de-duplication,
retries with backoff, delivery reports.

A plug-in is registered under the entry point group ``callcenter.channels`` (name = its kind),
pointing at a ``ChannelPlugin`` subclass; ``callcenter channel <kind>`` runs it as its own
process. Its settings come from the ``[channels.extra.<kind>]`` table of the configuration,
validated by the plug-in's own pydantic ``Settings`` model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from callcenter.channels.messages import DeliveryState, Inbound, Outbound

ENTRY_POINT_GROUP = "callcenter.channels"


@dataclass(frozen=True)
class Delivered:
    """What ``deliver`` returns: SENT (handed over; a receipt may follow via ``report``) or
    DELIVERED (confirmed now)."""

    state: DeliveryState = DeliveryState.SENT
    detail: dict[str, Any] = field(default_factory=dict)


#: (message_id, state, reason, detail): a receipt that came later (an SMS delivery receipt)
ReportLater = Callable[[str, DeliveryState, str, dict[str, Any]], Awaitable[None]]
#: an inbound contact (mail, fax) to put on the bus
PublishInbound = Callable[[Inbound], Awaitable[None]]


class ChannelPlugin:
    """Subclass this. ``deliver`` raises ``DeliveryError(retriable=...)`` when it fails."""

    kind: ClassVar[str]
    Settings: ClassVar[type[BaseModel]]
    #: True if delivering a message twice has the effect of once (the plug-in checks with its
    #: peer or its own records). A message found half-sent after a crash is then retried;
    #: otherwise it is reported failed rather than risk a duplicate (see docs/channels.md).
    idempotent_deliver: ClassVar[bool] = False

    def __init__(self, settings: BaseModel, report_later: ReportLater,
                 publish_inbound: PublishInbound) -> None:
        self.settings = settings
        self.report_later = report_later
        self.publish_inbound = publish_inbound

    async def start(self) -> None:
        """Connect to the peer (SMTP, SMSC, AMI), start inbound listeners."""

    async def deliver(self, message: Outbound) -> Delivered:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listeners and close connections."""
