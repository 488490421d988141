"""The screen pop of an offered call, in two parts: what the IVR handed over (queue, wait, the
caller's masked number, the IVR path, last failure and language) goes out at once, as the call's
first event (``call_offered``); the back office's part (the customer's name, tier and balance
summary) and the customer's recent contacts follow as ``call_customer``. Account and phone
numbers are masked before they leave the engine."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiosqlite

from callcenter.acd.notices import Offer
from callcenter.broker.interface import BackOffice
from callcenter.errors import BrokerError
from callcenter.seats.masking import mask

log = logging.getLogger(__name__)

#: (agent id, event name, data)
Push = Callable[[str, str, dict[str, Any]], None]
#: the pops kept for reloaded pages, at most
KEPT = 1000


class ScreenPops:
    def __init__(self, db: aiosqlite.Connection, backoffice: BackOffice, push: Push,
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.db, self.backoffice, self.push, self.spawn = db, backoffice, push, spawn
        #: call id -> the screen pop as pushed (a reloaded page gets it with its login)
        self.pops: dict[str, dict[str, Any]] = {}

    def offered(self, agent_id: str, offer: Offer) -> None:
        ctx = offer.context
        pop = {"call_id": offer.call_id, "queue": offer.queue,
               "waited_s": round(offer.offered_at - offer.arrived_at, 1),
               "customer": None, "caller": mask(offer.phone),
               "ivr": {"path": ctx.get("path", ""),
                       "path_zh": ctx.get("path_zh", ""), "path_en": ctx.get("path_en", ""),
                       "last_failure": ctx.get("last_failure", ""),
                       "lang": ctx.get("lang", "zh")},
               "manager": offer.manager,
               "consulted_by": ctx.get("consulted_by", ""),
               "recent_contacts": [], "callback": offer.callback,
               "customer_pending": bool(offer.account)}
        self.pops[offer.call_id] = pop
        if len(self.pops) > KEPT:
            for key in list(self.pops)[:KEPT // 2]:
                del self.pops[key]
        self.push(agent_id, "call_offered", pop)
        if offer.account:
            self.spawn(self._customer_part(agent_id, offer))

    async def _customer_part(self, agent_id: str, offer: Offer) -> None:
        customer: dict[str, Any] | None = None
        try:
            info = await self.backoffice.customer(offer.account)
            cash = await self.backoffice.cash(offer.account)
            positions = await self.backoffice.positions(offer.account)
            value = sum((pos.market_value for pos in positions), start=cash.balance * 0)
            customer = {"name": info.name, "tier": info.tier.value,
                        "account_masked": mask(offer.account),
                        "balance_summary": {"currency": "CNY", "cash": str(cash.balance),
                                            "market_value": str(value),
                                            "total": str(cash.balance + value)}}
        except BrokerError as exc:
            log.warning("screen pop for %s: back office: %s", offer.call_id, exc)
        recent = await self.recent_contacts(offer.account)
        pop = self.pops.get(offer.call_id)
        if pop is not None:
            pop.update(customer=customer, recent_contacts=recent, customer_pending=False)
        self.push(agent_id, "call_customer", {"call_id": offer.call_id, "customer": customer,
                                              "recent_contacts": recent})

    async def recent_contacts(self, account: str) -> list[dict[str, Any]]:
        """The customer's last wrap-ups and service requests, newest first (at most 8)."""
        if not account:
            return []
        async with self.db.execute(
                "SELECT at, disposition, notes FROM wrapups WHERE account = ?"
                " ORDER BY at DESC LIMIT 5", (account,)) as cur:
            rows = await cur.fetchall()
        out = [{"at": r[0], "kind": "call",
                "summary": (f"{r[1]}: {r[2]}" if r[2] else str(r[1]))[:200]} for r in rows]
        async with self.db.execute(
                "SELECT created_at, kind, detail FROM service_requests WHERE account = ?"
                " ORDER BY created_at DESC LIMIT 5", (account,)) as cur:
            for r in await cur.fetchall():
                out.append({"at": r[0], "kind": str(r[1]),
                            "summary": str(json.loads(str(r[2])).get("channel", r[1]))})
        return sorted(out, key=lambda x: -float(x["at"]))[:8]
