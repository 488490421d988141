"""The data of a statement or a day's trade confirmations, taken from the back office when the
customer asks for it: the document shows the account as of the request, however late it goes
out. The shape is ``render.py``'s (money as decimal strings, never floats).

``document_message`` is the one way a document (or an agent's note) is addressed to a customer,
for the IVR (``ivr/actions.py``) and the console (``seats/backend.py``) alike: the address is the
back office's for the channel (a fax number is the one given), the language the customer's, and
a customer with no address on file for the channel is refused (``NoAddress``) before anything is
queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from callcenter.broker.interface import BackOffice, Customer, OrderStatus
from callcenter.errors import BrokerError

Channel = Literal["fax", "email", "sms"]
#: a channel's name -> the channel (to check a name from a flow or a request)
CHANNELS: Final[dict[str, Channel]] = {"fax": "fax", "email": "email", "sms": "sms"}
#: the start of ``NoAddress``'s message (the console shows its own text for it)
NO_ADDRESS: Final = "no address on file"


class NoAddress(BrokerError):
    """The customer has no address on file for the channel (or no fax number was given)."""


@dataclass(frozen=True, slots=True)
class Message:
    """An outbound message as the bus convention has it: ``{to, template, lang, account,
    data}`` on ``callcenter/outbox/<channel>``."""

    channel: Channel
    payload: dict[str, Any]

    @property
    def topic(self) -> str:
        return f"callcenter/outbox/{self.channel}"

    def outbox_row(self) -> tuple[str, str, dict[str, Any]]:
        return (self.channel, self.topic, self.payload)


def customer_lang(customer: Customer) -> Literal["zh", "en"]:
    return "en" if customer.language == "en" else "zh"


def address(customer: Customer, channel: Channel, fax: str = "") -> str:
    """Where a message by ``channel`` goes, or ``NoAddress``."""
    if channel == "fax":
        if not fax:
            raise NoAddress(f"{NO_ADDRESS}: a fax needs the fax number")
        return fax
    if channel == "sms":
        to, what = (customer.phones[0] if customer.phones else ""), "mobile number"
    else:
        to, what = customer.email or "", "e-mail address"
    if not to:
        raise NoAddress(f"{NO_ADDRESS}: the customer has no {what} on file")
    return to


async def document_message(bo: BackOffice, customer: Customer, template: str, channel: Channel,
                           as_of: str, *, fax: str = "", text: str = "") -> Message:
    """The message that sends ``template`` (``statement``, ``confirmations``, or ``note`` with
    ``text``) to ``customer`` by ``channel``. ``NoAddress`` if the customer cannot be reached
    that way (checked first), ``BrokerError`` if the back office fails."""
    account = customer.account
    to = address(customer, channel, fax)
    lang = customer_lang(customer)
    data: dict[str, Any]
    if template == "note":
        data = {"customer": customer.name, "text": text}
    else:
        data = await document_data(bo, account, template, as_of, lang)
    return Message(channel, {"to": to, "template": template, "lang": lang, "account": account,
                             "data": data})

_STATUS = {OrderStatus.QUEUED: "queued", OrderStatus.OPEN: "pending",
           OrderStatus.PARTIALLY_FILLED: "partial",
           OrderStatus.FILLED: "filled", OrderStatus.CANCELLED: "cancelled",
           OrderStatus.REJECTED: "rejected"}


async def document_data(bo: BackOffice, account: str, template: str, as_of: str,
                        lang: str = "zh") -> dict[str, Any]:
    """``Outbound.data`` for ``statement`` or ``confirmations`` (empty for other templates)."""
    if template not in ("statement", "confirmations"):
        return {}
    customer = await bo.customer(account)

    def name(sec: Any) -> str:
        return str(sec.name if lang == "zh" else sec.name_en)

    fills = [{"time": f.at.strftime("%H:%M:%S"), "order_id": f.order_no,
              "code": f.security.code, "name": name(f.security), "side": f.side.value,
              "qty": f.quantity, "price": str(f.price)} for f in await bo.fills_today(account)]
    data: dict[str, Any] = {"customer": customer.name, "account": account, "as_of": as_of,
                            "fills": fills}
    if template == "statement":
        cash = await bo.cash(account)
        data.update(
            cash_balance=str(cash.balance), cash_available=str(cash.available),
            positions=[{"code": p.security.code, "name": name(p.security), "qty": p.quantity,
                        "last": str(p.last), "value": str(p.market_value)}
                       for p in await bo.positions(account)],
            orders=[{"time": o.created_at.strftime("%H:%M:%S"), "order_id": o.order_no,
                     "code": o.security.code, "name": name(o.security), "side": o.side.value,
                     "qty": o.quantity, "price": str(o.price), "filled_qty": o.filled,
                     "status": _STATUS.get(o.status, str(o.status))}
                    for o in await bo.orders_today(account)])
    return data
