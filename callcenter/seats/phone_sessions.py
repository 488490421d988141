"""A console session's browser phone: its credentials at login, locked again at the end.

At each console login of an agent whose phone is a browser phone (and who works from it, not
from a hot-desk phone), a fresh SIP secret is made (``PhoneLink.open_browser_phone``) and handed
to that page in the login reply's ``phone`` (the console server adds the relay path). When the
agent's last console session ends, the phone is locked: its digest in Asterisk is replaced by an
unknown one. The secret is never logged or stored.
"""

from __future__ import annotations

import logging
from typing import Any

import aiosqlite

from callcenter.phones.identity import PhoneKind
from callcenter.phones.link import PhoneLink
from callcenter.store.phones import auto_answer, phone_of

log = logging.getLogger(__name__)


class PhoneSessions:
    def __init__(self, link: PhoneLink, db: aiosqlite.Connection) -> None:
        self.link = link
        self.db = db

    async def login_data(self, agent_id: str, endpoint: str) -> dict[str, Any] | None:
        """The login reply's ``phone`` for this agent, or None (no browser phone in use)."""
        phone = await phone_of(self.db, agent_id)
        if phone is None or phone.kind is not PhoneKind.BROWSER or phone.endpoint != endpoint:
            return None
        secret = await self.link.open_browser_phone(phone)
        sip = self.link.settings.sip
        return {"kind": phone.kind.value, "extension": phone.extension,
                "username": phone.extension, "password": secret, "realm": sip.realm,
                "ice_servers": list(sip.ice_servers),
                "auto_answer": await auto_answer(self.db, agent_id),
                "registered": self.link.can_ring(phone.extension)}

    async def ended(self, agent_id: str) -> None:
        """The agent's last console session ended: lock their browser phone."""
        phone = await phone_of(self.db, agent_id)
        if phone is not None and phone.kind is PhoneKind.BROWSER:
            await self.link.close_browser_phone(phone)
            log.info("browser phone %s locked: agent %s has no console open", phone.extension,
                     agent_id)
