"""A process restart between confirm and result: reconciled from the back office, not resent.

The state a crash leaves is built with the real stores: intents committed (as the confirm step
does before calling the back office), and for some of them the back office's side done too.
Then a fresh engine starts on the same files.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import SecretStr

from callcenter.broker.interface import Side, TransferDirection
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import DEMO_FUND_PASSWORD, ORDINARY, seed_demo
from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.store import hotline as records
from callcenter.store.db import open_db

from .conftest import trading_clock


async def test_pending_intents_are_settled_by_asking_the_back_office(settings: Settings) -> None:
    db = await open_db(settings.database)
    office = await SandboxBackOffice.open(settings.backoffice_db, clock=trading_clock)
    await seed_demo(office)
    order = {"side": "buy", "code": "600000", "price": "10.20", "quantity": 100}
    # 1. reached the back office, result never recorded
    await records.begin_intent(db, "k-order-placed", "order", "c1", ORDINARY, order)
    placed = await office.place_order(ORDINARY, Side.BUY, "600000", Decimal("10.20"), 100,
                                      "k-order-placed")
    # 2. died before the back office was called
    await records.begin_intent(db, "k-order-lost", "order", "c2", ORDINARY, order)
    # 3. a transfer that went through
    await records.begin_intent(db, "k-transfer", "transfer", "c3", ORDINARY,
                               {"direction": "in", "amount": "100.00"})
    await office.transfer(ORDINARY, TransferDirection.BANK_TO_SECURITIES, Decimal("100.00"),
                          SecretStr(DEMO_FUND_PASSWORD), SecretStr("802413"), "k-transfer")
    await office.close()
    await db.close()

    engine = Engine(settings, backoffice_clock=trading_clock)
    await engine.start()
    try:
        assert engine.db is not None and engine.backoffice is not None
        settled = {k: await records.get_intent(engine.db, k)
                   for k in ("k-order-placed", "k-order-lost", "k-transfer")}
        assert settled["k-order-placed"] is not None
        assert settled["k-order-placed"].state == "done"
        assert settled["k-order-placed"].result["order_no"] == placed.order_no
        assert settled["k-order-lost"] is not None
        assert settled["k-order-lost"].state == "not_done"  # never guessed, never resent
        assert settled["k-transfer"] is not None and settled["k-transfer"].state == "done"
        orders = await engine.backoffice.orders_today(ORDINARY)
        assert [o.order_no for o in orders] == [placed.order_no]
        assert await records.pending_intents(engine.db) == []
    finally:
        await engine.stop()
