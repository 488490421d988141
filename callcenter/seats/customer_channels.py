"""The customer's channels as the console reaches them: send a document or a note (fax, e-mail,
SMS through the outbox), the customer's deliveries, and the financial secretary's subscriptions.
The backend (``seats/backend.py``) checks which customer a request may be about (the agent's own
call's, or an account given); this module acts on that account only.

Who asked for a message is remembered (``requested_by``) so its ``delivery`` events reach them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import aiosqlite

from callcenter.broker.interface import BackOffice, Customer
from callcenter.broker.rules import SHANGHAI
from callcenter.channels import secretary_edge
from callcenter.channels.documents import NoAddress, document_message
from callcenter.channels.secretary import Subscription
from callcenter.errors import BrokerError, BrokerRefusal, ConsoleError
from callcenter.seats import protocol as p
from callcenter.seats.masking import mask, mask_address
from callcenter.store.hotline import add_request

#: refs of requests remembered with who asked (the oldest half is forgotten past this)
REMEMBERED = 2000


class CustomerChannels:
    def __init__(self, db: aiosqlite.Connection, backoffice: BackOffice,
                 clock: Callable[[], float]) -> None:
        self.db, self.backoffice, self.clock = db, backoffice, clock
        #: called after a request wrote outbox rows (the engine sets ``relay.kick``)
        self.on_outbox: Callable[[], None] | None = None
        #: service request ref -> the agent who asked for it (for ``delivery`` pushes)
        self.requested_by: dict[str, str] = {}

    async def customer(self, account: str) -> Customer:
        try:
            return await self.backoffice.customer(account)
        except BrokerError as exc:
            # the account itself stays out of the reply: it may have come from the call
            raise ConsoleError("not_found", "no such customer") from exc

    def now(self) -> dt.datetime:
        """Now on the back office's clock when it has one (the sandbox's may be pinned: a
        statement's date and a subscription's start must agree with its fills), else the
        ACD's."""
        clock = getattr(self.backoffice, "now", None)
        if callable(clock):
            now = clock()
            if isinstance(now, dt.datetime) and now.utcoffset() is not None:
                return now
        return dt.datetime.fromtimestamp(self.clock(), SHANGHAI)

    async def message(self, me: str, account: str, req: p.SendMessage) -> dict[str, Any]:
        as_of = self.now().isoformat(timespec="seconds")
        customer = await self.customer(account)
        try:
            message = await document_message(self.backoffice, customer, req.template,
                                             req.channel, as_of, fax=req.fax, text=req.text)
        except NoAddress as exc:
            raise ConsoleError("malformed" if req.channel == "fax" else "not_found",
                               str(exc)) from exc
        except BrokerError as exc:
            raise ConsoleError("unavailable",
                               "the back office could not give the document's data") from exc
        ref = await add_request(self.db, req.template, req.call_id or f"console-{me}",
                                account=account, phone=None,
                                detail={"channel": req.channel, "by": me},
                                outbox=[message.outbox_row()])
        self.requested_by[ref] = me
        if len(self.requested_by) > REMEMBERED:
            for old in list(self.requested_by)[:REMEMBERED // 2]:
                del self.requested_by[old]
        if self.on_outbox is not None:
            self.on_outbox()
        return {"ref": ref}

    async def deliveries(self, account: str, req: p.Deliveries) -> dict[str, Any]:
        rows = await secretary_edge.deliveries_for(self.db, account, limit=req.limit)
        return {"deliveries": [
            {"message_id": d.message_id, "channel": d.channel, "template": d.template,
             "kind": d.kind, "to": mask_address(d.channel, d.to), "state": d.state,
             "reason": d.reason, "attempts": d.attempts, "created_at": d.created_at,
             "updated_at": d.updated_at, "next_attempt_at": d.next_attempt_at,
             "ref": d.ref, "subscription_id": d.subscription_id}
            for d in rows]}

    async def subscriptions(self, account: str) -> dict[str, Any]:
        subs = await secretary_edge.list_subscriptions(self.db, account)
        return {"subscriptions": [subscription_row(s) for s in subs]}

    async def subscribe(self, me: str, account: str, req: p.Subscribe) -> dict[str, Any]:
        customer = await self.customer(account)
        params: dict[str, Any] = {}
        if req.code:
            try:
                await self.backoffice.security(req.code)
            except BrokerRefusal as exc:
                raise ConsoleError("not_found", "no such stock code") from exc
            except BrokerError as exc:
                raise ConsoleError("unavailable", "the back office did not answer") from exc
            params.update(code=req.code, price=req.price)
        if req.fax:
            params["fax"] = req.fax
        quiet = (req.quiet_start, req.quiet_end) if req.quiet_start else None
        try:
            sub, created = await secretary_edge.subscribe(
                self.db, account, req.kind, req.channel, params, quiet, me,
                now=self.now().timestamp())
        except ValueError as exc:
            raise ConsoleError("malformed", f"subscription refused: {exc}") from exc
        on_file = {"sms": bool(customer.phones), "email": bool(customer.email),
                   "fax": True}[req.channel]
        return {"subscription_id": sub.id, "new": created,
                "address": "on_file" if on_file else "missing",
                "subscription": subscription_row(sub)}

    async def unsubscribe(self, account: str, req: p.Unsubscribe) -> dict[str, Any]:
        if not await secretary_edge.unsubscribe(self.db, req.subscription_id, account=account):
            raise ConsoleError("not_found", "no such active subscription of this customer")
        return {"removed": True}


def subscription_row(sub: Subscription) -> dict[str, Any]:
    start, end = sub.quiet.text() if sub.quiet is not None else ("", "")
    return {"subscription_id": sub.id, "kind": sub.kind.value, "channel": sub.channel.value,
            "code": sub.code or "", "price": sub.params.get("price", ""),
            "fax": mask(sub.fax or ""), "quiet_start": start, "quiet_end": end,
            "created_at": sub.created_at, "created_by": sub.created_by}
