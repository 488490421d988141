"""The hotline's actions: what a flow's ``action`` nodes do, bound to one call.

Each action takes the node's arguments (and secrets) and returns a plain value the flow speaks,
or raises ``BrokerRefusal`` (its code becomes the node's outcome). Account actions use the
account this call logged in with, never an account named by the flow, so no flow edit can read
or trade someone else's account.

Orders, cancels and transfers are exactly once (``_exactly_once``): the intent is committed
before the back office is called, the call to the back office runs as an engine task that a
hang-up cannot cancel, and its outcome is recorded on the intent.

Passwords are checked as soon as they are entered (``check_password``: a wrong one is told at
once, with the attempts left; a locked one too). A checked fund or bank password waits in the
call's session, never in the flow's variables, for the transfer that needs it, and is dropped
when that transfer has been tried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiosqlite
from pydantic import SecretStr

from callcenter.broker.interface import (
    BackOffice,
    PasswordKind,
    RefusalCode,
    Side,
    TransferDirection,
)
from callcenter.channels import secretary_edge
from callcenter.channels.documents import CHANNELS, document_message
from callcenter.errors import BrokerError, BrokerRefusal, StoreError
from callcenter.ivr.interpreter import Call, ListEnd, as_decimal
from callcenter.ivr.prompts import prompt_id
from callcenter.store import hotline as records

log = logging.getLogger(__name__)

Handler = Callable[[Call], Awaitable[Any]]


class BackgroundWork:
    """Engine-owned tasks that must finish even if the call that started them is gone."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The caller that awaited it already got the error; this only keeps it retrieved.
            log.debug("background work ended with %s", type(task.exception()).__name__)

    async def drain(self) -> None:
        """Wait for everything in flight (engine shutdown: let orders finish)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


@dataclass
class CallSession:
    call_id: str
    caller: str
    lang: str = "zh"
    account: str | None = None
    inflight: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    #: passwords checked in this call, kept for the transfer or password change that needs
    #: them, with the account and the flow visit they were checked in (``Call.visit``): valid
    #: only for that account in that visit, so a transfer abandoned at its confirmation or a
    #: second login never lends its password to another (never spoken, logged or stored;
    #: ``SecretStr`` hides them from reprs)
    checked: dict[PasswordKind, tuple[str, int, SecretStr]] = field(default_factory=dict,
                                                                   repr=False)


def _key(call: Call) -> str:
    """The idempotency key the confirm step made; without one nothing may be placed."""
    key = call.args.get("key")
    if not isinstance(key, str) or not key:
        # A flow that reaches this without an `idempotent: true` confirm is broken; placing
        # under a shared or empty key could replay another order's result.
        raise BrokerError(f"{call.action} without an idempotency key")
    return key


def _secret(call: Call, name: str) -> SecretStr:
    secret = call.secrets.get(name)
    if secret is None:
        # The flow did not collect it right before this action: a flow bug, not the caller's.
        raise BrokerError(f"action {call.action} got no {name}")
    return secret


#: the action names flows may use; each is a method of HotlineActions
_ACTIONS = (
    "identify_caller", "login", "quote", "security", "cash", "positions", "orders_today",
    "fills_today", "next_item", "preview_order", "place_order", "cancel_order", "bank_link",
    "check_password", "transfer", "change_password", "request_statement", "announcements",
    "book_appointment", "request_callback", "save_survey", "save_message", "subscribe_notice",
)


class HotlineActions:
    def __init__(self, backoffice: BackOffice, db: aiosqlite.Connection, work: BackgroundWork,
                 session: CallSession,
                 clock: Callable[[], dt.datetime] | None = None,
                 on_outbox: Callable[[], None] | None = None) -> None:
        self.bo = backoffice
        #: called once a request wrote outbox rows (the engine: the relay's kick)
        self.on_outbox = on_outbox
        #: the back office's clock (the sandbox's may be set), so "today" agrees everywhere
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.db = db
        self.work = work
        self.session = session

    @classmethod
    def table_names(cls) -> tuple[str, ...]:
        return _ACTIONS

    def table(self) -> dict[str, Handler]:
        return {name: getattr(self, name) for name in _ACTIONS}

    def _account(self) -> str:
        if self.session.account is None:
            raise BrokerRefusal(RefusalCode.UNKNOWN_ACCOUNT.value, "not logged in")
        return self.session.account

    # -- identity ------------------------------------------------------------------------------

    async def identify_caller(self, call: Call) -> dict[str, str]:
        """The tier for the greeting. Caller ID is not proof of anything: no login here."""
        customer = await self.bo.customer_by_phone(self.session.caller) \
            if self.session.caller else None
        if customer is None:
            raise BrokerRefusal(RefusalCode.UNKNOWN_ACCOUNT.value, "caller not recognised")
        # The tier and named manager only steer the greeting and the queue, never access.
        return {"tier": customer.tier.value, "manager": customer.manager or ""}

    async def login(self, call: Call) -> dict[str, str]:
        account = str(call.args.get("account", ""))
        customer = await self.bo.verify_password(account, PasswordKind.TRADING,
                                                 _secret(call, "password"))
        self.session.account = customer.account
        # ``language``: the one on record, spoken from the login on (``login.yaml``)
        return {"account": customer.account, "tier": customer.tier.value,
                "manager": customer.manager or "", "language": customer.language}

    # -- market and account --------------------------------------------------------------------

    async def quote(self, call: Call) -> dict[str, Any]:
        q = await self.bo.quote(str(call.args["code"]))
        return {"code": q.security.code, "name": q.security.name, "last": q.last,
                "change": q.change, "change_pct": q.change_pct, "high": q.high, "low": q.low,
                "volume": q.volume, "prev_close": q.prev_close}

    async def security(self, call: Call) -> dict[str, str]:
        s = await self.bo.security(str(call.args["code"]))
        return {"code": s.code, "name": s.name}

    async def cash(self, call: Call) -> dict[str, Decimal]:
        c = await self.bo.cash(self._account())
        return {"balance": c.balance, "available": c.available, "frozen": c.frozen,
                "withdrawable": c.withdrawable}

    async def positions(self, call: Call) -> list[dict[str, Any]]:
        return [{"kind": "position", "kind_prompt": None, "code": p.security.code,
                 "quantity": p.quantity, "sellable": p.sellable, "cost_price": p.cost_price,
                 "last": p.last} for p in await self.bo.positions(self._account())]

    async def orders_today(self, call: Call) -> list[dict[str, Any]]:
        return [{"kind": "order", "kind_prompt": f"side_{o.side.value}",
                 "code": o.security.code, "order_no": o.order_no, "price": o.price,
                 "quantity": o.quantity, "status_prompt": f"order_status_{o.status.value}"}
                for o in await self.bo.orders_today(self._account())]

    async def fills_today(self, call: Call) -> list[dict[str, Any]]:
        return [{"kind": "fill", "kind_prompt": f"side_{f.side.value}", "code": f.security.code,
                 "price": f.price, "quantity": f.quantity, "time": f.at.time()}
                for f in await self.bo.fills_today(self._account())]

    async def next_item(self, call: Call) -> dict[str, Any]:
        items = call.args.get("items") or []
        index = int(str(call.args.get("index", "0")))
        if not isinstance(items, list) or index >= len(items):
            raise ListEnd
        return {"item": items[index], "index": index + 1}

    # -- orders --------------------------------------------------------------------------------

    def _order_args(self, call: Call) -> tuple[Side, str, Decimal, int]:
        return (Side(str(call.args["side"])), str(call.args["code"]),
                as_decimal(call.args["price"]), int(call.args["quantity"]))

    async def preview_order(self, call: Call) -> dict[str, Any]:
        side, code, price, quantity = self._order_args(call)
        p = await self.bo.preview_order(self._account(), side, code, price, quantity)
        return {"price": p.price, "quantity": p.quantity, "amount": p.amount, "fees": p.fees,
                "total": p.total}

    async def place_order(self, call: Call) -> dict[str, Any]:
        account = self._account()
        side, code, price, quantity = self._order_args(call)
        key = _key(call)

        async def place() -> dict[str, Any]:
            order = await self.bo.place_order(account, side, code, price, quantity, key)
            return {"order_no": order.order_no, "status": order.status.value}

        summary = {"side": side.value, "code": code, "price": str(price), "quantity": quantity}
        return await self._exactly_once("order", key, summary, place)

    async def cancel_order(self, call: Call) -> dict[str, Any]:
        account = self._account()
        order_no = str(call.args["order_no"])
        key = _key(call)

        async def cancel() -> dict[str, Any]:
            order = await self.bo.cancel_order(account, order_no, key)
            return {"order_no": order.order_no, "status": order.status.value}

        return await self._exactly_once("cancel", key, {"order_no": order_no}, cancel)

    # -- transfers -----------------------------------------------------------------------------

    async def bank_link(self, call: Call) -> dict[str, str]:
        links = await self.bo.bank_links(self._account())
        if not links:
            raise BrokerRefusal(RefusalCode.NO_BANK_LINK.value, "no bank link")
        code = links[0].bank_code
        return {"bank_code": code, "bank_prompt": f"bank/{code.lower()}"}

    async def check_password(self, call: Call) -> None:
        """Check a password (``kind``: trading, fund or bank) of the logged-in account right
        after it is entered; BAD_PASSWORD and ACCOUNT_LOCKED are the node's outcomes. A right
        one is kept for the transfer or password change that follows."""
        try:
            kind = PasswordKind(str(call.args.get("kind", "")))
        except ValueError as exc:
            raise BrokerError("check_password: kind is trading, fund or bank") from exc
        password = _secret(call, "password")
        account = self._account()
        self.session.checked.pop(kind, None)
        try:
            await self.bo.verify_password(account, kind, password)
        except BrokerRefusal as exc:
            if exc.code != RefusalCode.CHECKED_ON_USE:
                raise
            # this back office leaves it to the operation (the bank checks its password with
            # the transfer): kept unchecked, and the transfer's refusal tells if it is wrong
            log.info("check_password: the back office checks the %s password with the "
                     "operation that uses it", kind.value)
        self.session.checked[kind] = (account, call.visit, password)

    def _password(self, call: Call, name: str, kind: PasswordKind) -> SecretStr | None:
        """A password passed to this action, else the one ``check_password`` kept for this
        account in this visit of the flow."""
        passed = call.secrets.get(name)
        if passed is not None:
            return passed
        kept = self.session.checked.get(kind)
        if kept is None or kept[0] != self.session.account or kept[1] != call.visit:
            return None
        return kept[2]

    async def transfer(self, call: Call) -> dict[str, Any]:
        account = self._account()
        direction = TransferDirection(str(call.args["direction"]))
        amount = as_decimal(call.args["amount"])
        key = _key(call)
        fund = self._password(call, "fund_password", PasswordKind.FUND)
        bank = self._password(call, "bank_password", PasswordKind.BANK) \
            if direction is TransferDirection.BANK_TO_SECURITIES else None
        # Used by this try, whatever its outcome: another transfer asks for them again.
        self.session.checked.clear()
        if fund is None:
            # The flow checked no fund password before this: a flow bug, not the caller's.
            raise BrokerError("action transfer got no fund_password")

        async def move() -> dict[str, Any]:
            t = await self.bo.transfer(account, direction, amount, fund, bank, key)
            return {"transfer_no": t.transfer_no, "amount": t.amount,
                    "balance_after": t.balance_after}

        summary = {"direction": direction.value, "amount": str(amount)}
        return await self._exactly_once("transfer", key, summary, move)

    async def _exactly_once(self, kind: str, key: str, summary: dict[str, Any],
                            work: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        account = self._account()
        try:
            intent, created = await records.begin_intent(self.db, key, kind,
                                                         self.session.call_id, account, summary)
        except StoreError as exc:
            raise BrokerError(str(exc)) from exc
        if not created:
            if intent.state == "done":
                return intent.result  # the same confirm again: the same single result
            if intent.state == "refused":
                params = {k: str(v) for k, v in intent.result.items() if k != "code"}
                raise BrokerRefusal(str(intent.result.get("code")), "refused before", **params)
            running = self.session.inflight.get(key)
            if running is not None:
                return dict(await asyncio.shield(running))
            raise BrokerError(f"{kind} {key[:8]} is being reconciled")
        task = self.work.spawn(self._settle(kind, key, work))
        self.session.inflight[key] = task
        # shield: a hang-up cancels the call's flow, not the order already on its way
        return dict(await asyncio.shield(task))

    async def _settle(self, kind: str, key: str,
                      work: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        try:
            result = await work()
        except BrokerRefusal as refusal:
            await self._record(key, "refused", {"code": refusal.code, **refusal.params})
            raise
        except Exception:
            # The request may or may not have reached the back office (a timeout, a lost
            # link): ask it by key instead of guessing. Still unknown: the intent stays
            # pending for reconcile(), and the flow must not offer to try again.
            found = await _lookup(self.bo, kind, key, self._account())
            if found is None:
                raise
            result = found
        await self._record(key, "done", result)
        return result

    async def _record(self, key: str, state: str, result: dict[str, Any]) -> None:
        """Record the outcome; a store failure must not hide a placed order from the caller."""
        try:
            await records.finish_intent(self.db, key, state, result)
        except Exception:
            log.exception("could not record the %s outcome of %s; reconcile will", state,
                          key[:8])

    # -- passwords -----------------------------------------------------------------------------

    async def change_password(self, call: Call) -> None:
        old = self._password(call, "old", PasswordKind.TRADING)
        new, again = (_secret(call, n) for n in ("new", "again"))
        if old is None:
            raise BrokerError("action change_password got no old password")
        if new.get_secret_value() != again.get_secret_value():
            # the old password stays checked: the caller is asked for the new one again
            raise BrokerRefusal(RefusalCode.PASSWORD_MISMATCH.value, "new passwords differ")
        try:
            await self.bo.change_password(self._account(), PasswordKind.TRADING, old, new)
        except BrokerRefusal as refusal:
            if refusal.code != RefusalCode.WEAK_PASSWORD.value:
                self.session.checked.clear()  # a wrong or locked old one is asked again
            raise
        self.session.checked.clear()  # changed: the old one is no more

    # -- requests ------------------------------------------------------------------------------

    async def _request(self, kind: str, detail: dict[str, Any], *, phone: str | None = None,
                       outbox: list[tuple[str, str, dict[str, Any]]] | None = None) -> str:
        try:
            ref = await records.add_request(self.db, kind, self.session.call_id,
                                            account=self.session.account, phone=phone,
                                            detail=detail, outbox=outbox or [])
        except StoreError as exc:
            raise BrokerError(str(exc)) from exc
        if outbox and self.on_outbox is not None:
            self.on_outbox()
        return ref

    async def request_statement(self, call: Call) -> dict[str, str]:
        account = self._account()
        doc = str(call.args["doc"])
        channel = str(call.args["channel"])
        if channel not in CHANNELS:
            raise BrokerError(f"unknown channel {channel!r}")
        as_of = self.clock().isoformat(timespec="seconds")
        message = await document_message(self.bo, await self.bo.customer(account), doc,
                                         CHANNELS[channel], as_of,
                                         fax=str(call.args.get("fax_number") or ""))
        ref = await self._request("statement", {"doc": doc, "channel": channel},
                                  outbox=[message.outbox_row()])
        return {"request_no": ref}

    async def subscribe_notice(self, call: Call) -> dict[str, str]:
        """The financial secretary: subscribe the logged-in account to notices of ``kind``
        (fill, fund, daily_summary, ipo, price_above, price_below: these two with ``code`` and
        ``price``) by ``channel`` (sms, email), with optional ``quiet_start``/``quiet_end``
        (HH:MM). ``address`` says whether the customer has one on file for that channel
        (``missing``: notices would fail until an agent adds it)."""
        account = self._account()
        kind = str(call.args["kind"])
        channel = str(call.args["channel"])
        if channel not in ("sms", "email"):
            raise BrokerError(f"notices by {channel!r} cannot be ordered by phone")
        params: dict[str, Any] = {}
        if call.args.get("code") is not None:
            params["code"] = str(call.args["code"])
        if call.args.get("price") is not None:
            params["price"] = as_decimal(call.args["price"])
        start, end = call.args.get("quiet_start"), call.args.get("quiet_end")
        quiet = (str(start), str(end)) if start and end else None
        customer = await self.bo.customer(account)
        if kind in ("price_above", "price_below"):
            await self.bo.security(str(params.get("code", "")))  # unknown_code is explained
        try:
            sub, created = await secretary_edge.subscribe(
                self.db, account, kind, channel, params, quiet, "ivr",
                now=self.clock().timestamp())
        except ValueError as exc:
            raise BrokerError(f"subscription refused: {exc}") from exc
        except StoreError as exc:
            raise BrokerError(str(exc)) from exc
        on_file = bool(customer.phones) if channel == "sms" else bool(customer.email)
        return {"subscription": str(sub.id), "new": "yes" if created else "no",
                "address": "on_file" if on_file else "missing"}

    async def announcements(self, call: Call) -> list[dict[str, str]]:
        return [{"prompt": f"announcement/{prompt_id(a.id)}"}
                for a in await self.bo.announcements()]

    async def book_appointment(self, call: Call) -> dict[str, str]:
        mmdd = str(call.args["date"])
        today = self.clock().date()
        when = _next_date(today, int(mmdd[:2]), int(mmdd[2:]))
        ref = await self._request("appointment", {"service": str(call.args["service"]),
                                                  "date": when.isoformat()},
                                  phone=self.session.caller or None)
        return {"ref": ref}

    async def request_callback(self, call: Call) -> dict[str, str]:
        phone = self.session.caller
        existing = await records.open_callback(self.db, phone) if phone else None
        if existing is not None:
            return {"ref": existing}  # at most one pending call-back per number
        return {"ref": await self._request("callback", {"lang": self.session.lang},
                                           phone=phone or None)}

    async def save_message(self, call: Call) -> dict[str, str]:
        """A recorded message becomes a request an agent follows up (recording path in it)."""
        recording = call.args.get("recording")
        if not recording:
            raise BrokerError("no recording was made")
        ref = await self._request("message", {"recording": str(recording),
                                              "lang": self.session.lang},
                                  phone=self.session.caller or None)
        return {"ref": ref}

    async def save_survey(self, call: Call) -> None:
        await records.save_survey(self.db, self.session.call_id, self.session.account,
                                  int(call.args["rating"]))


def _next_date(today: dt.date, month: int, day: int) -> dt.date:
    """The next ``month``/``day`` on or after today (Feb 29 moves to the next leap year)."""
    for year in range(today.year, today.year + 5):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    raise BrokerError("no such date")


async def _lookup(bo: BackOffice, kind: str, key: str, account: str,
                  order_no: str | None = None) -> dict[str, Any] | None:
    """What the back office knows of a request, by its idempotency key (None: nothing)."""
    try:
        if kind == "order":
            order = await bo.order_by_key(key)
            return None if order is None else {"order_no": order.order_no,
                                               "status": order.status.value}
        if kind == "transfer":
            t = await bo.transfer_by_key(key)
            return None if t is None else {"transfer_no": t.transfer_no, "amount": t.amount,
                                           "balance_after": t.balance_after}
        if kind == "cancel" and order_no:
            for o in await bo.orders_today(account):
                # An order that expired at the close is cancelled too, but not by us.
                if o.order_no == order_no and o.status.value == "cancelled" and \
                        "expired" not in o.reason:
                    return {"order_no": o.order_no, "status": o.status.value}
    except BrokerError:
        log.warning("back office unreachable while looking up %s %s", kind, key[:8])
        raise
    return None


async def reconcile(db: aiosqlite.Connection, bo: BackOffice) -> dict[str, int]:
    """Settle intents left pending by a crash, by asking the back office. Never resends."""
    counts = {"done": 0, "not_done": 0}
    for intent in await records.pending_intents(db):
        try:
            result = await _lookup(bo, intent.kind, intent.key, intent.account,
                                   intent.summary.get("order_no"))
        except BrokerError:
            continue  # still unreachable: try again at the next start
        state = "done" if result is not None else "not_done"
        await records.finish_intent(db, intent.key, state, dict(result or {}))
        counts[state] += 1
        log.info("reconciled %s %s: %s", intent.kind, intent.key[:8], state)
    return counts
