"""Faxes through the real Asterisk (spandsp): a statement sent by the fax channel server arrives
at the sandbox's fax machine with the right page count; busy and bad numbers are told apart;
a fax sent to the brokerage's fax number ends up as a PDF in the mailbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.TiffImagePlugin import TiffImageFile

from callcenter.channels import render
from callcenter.channels.fax import FaxPlugin, FaxSettings
from callcenter.channels.messages import DeliveryState, Inbound, Outbound
from callcenter.config import load_settings
from callcenter.errors import DeliveryError
from callcenter.telephony.ami_events import AmiEvent, OtherEvent
from callcenter.telephony.pbx import Pbx

pytestmark = pytest.mark.integration

STATEMENT = {
    "customer": "张伟", "account": "10000001", "as_of": "2026-11-23T10:00:00",
    "cash_balance": "50000.00", "cash_available": "48000.00",
    "positions": [{"code": "600036", "name": "招商银行", "qty": 1000, "last": "38.50"}],
    "fills": [{"time": "09:31:05", "code": "600036", "name": "招商银行", "side": "buy",
               "qty": 100, "price": "38.40"}],
}


@pytest.fixture
async def fax(pbx: Pbx, tmp_path: Path) -> AsyncIterator[tuple[FaxPlugin, list[Inbound]]]:
    received: list[Inbound] = []
    arrived = asyncio.Event()

    async def report_later(*_args: Any) -> None:
        raise AssertionError("the fax server reports at once, never later")

    async def publish(contact: Inbound) -> None:
        received.append(contact)
        arrived.set()

    settings = load_settings()
    plugin = FaxPlugin(FaxSettings(ami=settings.ami, pbx_root=settings.pbx.root,
                                   mailbox_dir=tmp_path / "mailbox"), report_later, publish)
    await plugin.start()
    try:
        plugin.arrived = arrived  # type: ignore[attr-defined]
        yield plugin, received
    finally:
        await plugin.close()


def outbound(to: str, template: str = "statement", data: dict[str, Any] | None = None
             ) -> Outbound:
    return Outbound(message_id=f"fax-test-{os.urandom(6).hex()}", channel="fax", to=to,
                    template=template, lang="zh", account="10000001", ref="12345678",
                    data=STATEMENT if data is None else data,
                    created_at=dt.datetime.now(dt.UTC))


async def test_a_statement_arrives_with_its_pages(fax: tuple[FaxPlugin, list[Inbound]],
                                                  pbx: Pbx) -> None:
    plugin, _ = fax
    assert plugin.ami is not None
    machine: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    def on_event(ev: AmiEvent) -> None:
        if isinstance(ev, OtherEvent) and ev.headers.get("UserEvent") == "CallCenterFaxSim" \
                and not machine.done():
            machine.set_result(dict(ev.headers))

    plugin.ami.add_handler(on_event)
    message = outbound("02112345678")
    expected = render.message_document(message).pages
    result = await plugin.deliver(message)
    assert result.state is DeliveryState.DELIVERED
    assert result.detail["pages"] == expected
    got = await asyncio.wait_for(machine, 30)
    assert got["Status"] == "SUCCESS" and int(got["Pages"]) == expected
    tiff = pbx.root / got["File"].lstrip("/")
    with Image.open(tiff) as image:
        assert isinstance(image, TiffImageFile)
        assert image.n_frames == expected


async def test_busy_is_retried_and_a_bad_number_is_not(
        fax: tuple[FaxPlugin, list[Inbound]]) -> None:
    plugin, _ = fax
    with pytest.raises(DeliveryError) as busy:
        await plugin.deliver(outbound("0000123456"))
    assert busy.value.retriable and "busy" in busy.value.reason
    with pytest.raises(DeliveryError) as bad:
        await plugin.deliver(outbound("021-1234;x"))
    assert not bad.value.retriable


async def test_an_inbound_fax_becomes_a_pdf_in_the_mailbox(
        fax: tuple[FaxPlugin, list[Inbound]], pbx: Pbx, tmp_path: Path) -> None:
    plugin, received = fax
    assert plugin.ami is not None
    papers = render.text_document("开户资料 Account papers", "第一页\n" * 80, "zh")
    assert papers.pages >= 2
    name = f"inbound-{os.urandom(4).hex()}.tif"
    spool = pbx.root / "var/spool/asterisk/fax/out"
    (spool / name).write_bytes(render.to_g3_tiff(papers.pdf))
    stat = spool.stat()
    os.chown(spool / name, stat.st_uid, stat.st_gid)
    try:
        # a customer's fax machine calls the brokerage's fax number (9600)
        await plugin.ami.originate(Channel="Local/9600@hotline", Context="fax-send", Exten="s",
                                   Priority="1", Timeout="30000", wait_s=40,
                                   CallerID='"customer fax" <02198765432>',
                                   Variable=[f"FAXFILE=/var/spool/asterisk/fax/out/{name}",
                                             "CC_FAXID=inbound-test"])
        # the plug-in publishes once the PDF is in the mailbox
        await asyncio.wait_for(plugin.arrived.wait(), 120)  # type: ignore[attr-defined]
    finally:
        (spool / name).unlink(missing_ok=True)
    [contact] = received
    assert contact.channel == "fax" and contact.pages == papers.pages
    pdf = Path(contact.attachment)
    assert pdf.parent == tmp_path / "mailbox" and pdf.read_bytes().startswith(b"%PDF")
    # one page object per fax page (Pillow writes PDFs but does not read them)
    assert len(re.findall(rb"/Type\s*/Page(?![a-z])", pdf.read_bytes())) == papers.pages
