"""The data of a statement or a day's trade confirmations, taken from the back office when the
customer asks for it: the document shows the account as of the request, however late it goes
out. The shape is ``render.py``'s (money as decimal strings, never floats).
"""

from __future__ import annotations

from typing import Any

from callcenter.broker.interface import BackOffice, OrderStatus

_STATUS = {OrderStatus.OPEN: "pending", OrderStatus.PARTIALLY_FILLED: "partial",
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
