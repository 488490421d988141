"""Statements and confirmations as pages, PDF and G3 TIFF (callcenter/channels/render.py)."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageSequence

from callcenter.channels import render
from callcenter.channels.messages import Outbound
from callcenter.errors import ChannelError, ConfigError, DeliveryError

DATA: dict[str, Any] = {
    "customer": "张三",
    "account": "310000000001",
    "as_of": "2026-11-23T15:05:00+08:00",
    "cash_balance": "100000.00",
    "cash_available": "85000.5",
    "positions": [
        {"code": "600000", "name": "浦发银行", "qty": 1000, "last": "8.52"},
        {"code": "000001", "name": "平安银行", "qty": 500, "last": "11.20", "value": "5600.00"},
    ],
    "orders": [{"time": "09:31:02", "order_id": "O1", "code": "600000", "name": "浦发银行",
                "side": "buy", "qty": 1000, "price": "8.50", "filled_qty": 1000,
                "status": "filled"}],
    "fills": [
        {"time": "09:31:05", "order_id": "O1", "code": "600000", "name": "浦发银行",
         "side": "buy", "qty": 1000, "price": "8.50", "commission": "5.00",
         "transfer_fee": "0.09"},
        {"time": "10:01:05", "order_id": "O2", "code": "000001", "name": "平安银行",
         "side": "sell", "qty": 500, "price": "11.20", "commission": "5.00",
         "transfer_fee": "0.06", "stamp_duty": "2.80"},
    ],
}


def doc(kind: render.DocKind = "statement", **changes: Any) -> render.StatementData:
    return render.statement_from_data({**DATA, **changes}, kind=kind)


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def many_positions(n: int) -> list[dict[str, Any]]:
    return [{"code": f"{600000 + i}", "name": f"测试股份{i}", "qty": 100 * (i + 1),
             "last": "10.00"} for i in range(n)]


# -- data -----------------------------------------------------------------------------------

def test_statement_data_is_parsed_with_decimals_and_defaults() -> None:
    d = doc()
    assert d.as_of.isoformat() == "2026-11-23"
    assert d.cash_available == Decimal("85000.5")
    assert d.positions[0].value == Decimal("8520.00")  # qty x last when absent
    assert d.market_value == Decimal("14120.00")
    buy, sell = d.fills
    assert buy.amount == Decimal("8500.00") and buy.net == Decimal("-8505.09")
    assert sell.net == Decimal("5600.00") - Decimal("7.86")
    assert d.filename_stem == "statement-20261123-****0001"


def test_outbound_account_wins_and_confirmations_need_no_cash() -> None:
    data = {k: v for k, v in DATA.items() if k not in ("cash_balance", "cash_available",
                                                       "positions", "account")}
    d = render.statement_from_data(data, kind="confirmations", account="12345678")
    assert d.account == "12345678" and d.positions == ()
    assert d.filename_stem == "confirmations-20261123-****5678"


@pytest.mark.parametrize(("change", "message"), [
    ({"cash_balance": 100.5}, "'cash_balance' must be a decimal string"),
    ({"positions": [{"code": "600000", "name": "x", "qty": 1}]},
     r"positions\[0\] needs key 'last'"),
    ({"fills": [{**DATA["fills"][0], "side": "short"}]}, "must be buy or sell"),
    ({"fills": [{**DATA["fills"][0], "qty": 1.5}]}, "must be a whole number"),
    ({"as_of": "yesterday"}, "ISO date"),
    ({"account": "31-00"}, "not an account number"),
    ({"customer": "张\n三"}, "control characters"),
    ({"positions": "none"}, "must be a list"),
])
def test_bad_data_is_refused_not_retriable(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DeliveryError, match=message) as caught:
        doc(**change)
    assert caught.value.retriable is False


def test_a_missing_key_is_named() -> None:
    data = {k: v for k, v in DATA.items() if k != "fills"}
    with pytest.raises(DeliveryError, match="needs key 'fills'"):
        render.statement_from_data(data, kind="statement")


# -- pages ------------------------------------------------------------------------------------

def test_pages_are_a4_with_chinese_text_drawn() -> None:
    [zhang] = render.render_pages(doc(customer="张三"), "zh")
    [li] = render.render_pages(doc(customer="李四"), "zh")
    assert zhang.size == render.PAGE_SIZE and zhang.mode == "L"
    assert zhang.info["dpi"] == (300, 300)
    # only the customer's name differs, and it was drawn as real glyphs: missing glyphs
    # ("tofu") would draw the same boxes for both names
    box = ImageChops.difference(zhang, li).getbbox()
    assert box is not None
    _left, _top, right, bottom = box
    assert bottom < 600 and right < render.PAGE_SIZE[0] // 2  # the header's customer field
    name = zhang.crop(box)
    assert name.getextrema()[0] < 64  # black ink where the name is
    dark = sum(name.histogram()[:128])
    assert dark > 200  # a few hundred inked pixels, not a stray dot


def test_english_pages_render_too_and_differ_from_chinese() -> None:
    [zh] = render.render_pages(doc(), "zh")
    [en] = render.render_pages(doc(), "en")
    assert ImageChops.difference(zh, en).getbbox() is not None
    assert en.getextrema()[0] == 0


def test_long_tables_continue_on_more_pages() -> None:
    pages = render.render_pages(doc(positions=many_positions(120)), "zh")
    assert len(pages) >= 3
    assert all(p.size == render.PAGE_SIZE for p in pages)


def test_a_missing_font_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fonts-noto-cjk"):
        render.render_pages(doc(), "zh", font_dir=tmp_path)
    with pytest.raises(ConfigError, match="fonts-noto-cjk"):
        render.check_fonts(tmp_path)
    render.check_fonts()


def outbound(template: str, data: dict[str, Any], lang: Any = "zh") -> Outbound:
    return Outbound(message_id="msg-0001-abcd", channel="fax", to="12345", template=template,
                    lang=lang, account="310000000001", ref="SR1", data=data,
                    created_at=dt.datetime.now(dt.UTC))


def test_message_pages_of_a_document_are_the_document() -> None:
    data = {k: v for k, v in DATA.items() if k != "account"}
    [page] = render.message_pages(outbound("statement", data))
    [same] = render.render_pages(doc(), "zh")
    assert ImageChops.difference(page, same).getbbox() is None


def test_message_pages_of_a_note_wrap_long_text_onto_more_pages() -> None:
    short = render.message_pages(outbound("note", {"customer": "张三", "text": "已处理。"}))
    assert len(short) == 1 and short[0].getextrema()[0] == 0
    text = ("您好！关于您咨询的银证转账问题，我们已经核实，资金已到账。" * 8 + "\n") * 12
    text += "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongword " * 3
    pages = render.message_pages(outbound("note", {"customer": "张三", "text": text}, "en"))
    assert len(pages) >= 2
    # nothing is drawn beyond the right margin, even for a word wider than the line
    for page in pages:
        strip = page.crop((render.PAGE_SIZE[0] - 170, 0, render.PAGE_SIZE[0], page.height))
        assert strip.getextrema()[0] == 255


def test_message_pages_of_a_notice_and_bad_data() -> None:
    fill = {"side": "buy", "time": "09:31", "name": "浦发银行", "code": "600000", "qty": 100,
            "price": "8.50"}
    assert len(render.message_pages(outbound("fill", fill))) == 1
    with pytest.raises(DeliveryError, match="needs data key 'price'") as caught:
        render.message_pages(outbound("fill", {k: v for k, v in fill.items() if k != "price"}))
    assert caught.value.retriable is False
    with pytest.raises(DeliveryError, match="unknown template"):
        render.message_pages(outbound("wechat_card", {}))


# -- formats ----------------------------------------------------------------------------------

def test_pdf_has_one_page_per_image() -> None:
    pages = render.render_pages(doc(positions=many_positions(120)), "en")
    pdf = render.to_pdf(pages)
    assert pdf.startswith(b"%PDF")
    assert pdf_pages(pdf) == len(pages)
    # A4 in points: 595 x 842
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert box is not None
    assert abs(float(box[1]) - 595.3) < 1 and abs(float(box[2]) - 841.9) < 1


def test_g3_tiff_is_a_fax_document() -> None:
    pages = render.render_pages(doc(positions=many_positions(120)), "zh")
    tiff = render.to_g3_tiff(pages)
    with Image.open(io.BytesIO(tiff)) as im:
        assert im.format == "TIFF"
        assert im.n_frames == len(pages)
        for frame in ImageSequence.Iterator(im):
            assert frame.mode == "1"
            assert frame.width == 1728
            assert frame.height == 2292  # A4 at 196 lines per inch
            assert frame.info["compression"] == "group3"
            assert tuple(round(v) for v in frame.info["dpi"]) == (204, 196)
            assert frame.getextrema() == (0, 255)  # ink on paper


def test_pdf_from_a_received_tiff_keeps_the_pages() -> None:
    pages = render.render_pages(doc(positions=many_positions(120)), "zh")
    pdf = render.pdf_from_tiff(render.to_g3_tiff(pages))
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == len(pages)


def test_pdf_from_a_normal_resolution_fax_restores_its_height() -> None:
    normal = Image.new("1", (1728, 1146), 1)  # 98 lines per inch: A4 in 1146 lines
    out = io.BytesIO()
    normal.save(out, "TIFF", compression="group3", dpi=(204, 98))
    pdf = render.pdf_from_tiff(out.getvalue())
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert box is not None
    width, height = float(box[1]), float(box[2])
    assert abs(height / width - 1146 / 98 / (1728 / 204)) < 0.01


def test_pdf_from_garbage_is_a_channel_error() -> None:
    with pytest.raises(ChannelError, match="not a readable TIFF"):
        render.pdf_from_tiff(b"%PDF-1.4 this is not a fax")


def test_no_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="no pages"):
        render.to_pdf([])
    with pytest.raises(ValueError, match="no pages"):
        render.to_g3_tiff([])
