"""Statements and confirmations as PDF with real text, and that PDF as a G3 fax TIFF
(callcenter/channels/render.py). The PDFs are read back with pypdf (text, fonts), an
independent reader; the fax pages are checked for ink where PDFium says the text is."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageSequence
from PIL.TiffImagePlugin import TiffImageFile
from pypdf.generic import DictionaryObject

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


# -- the PDF: real text, an embedded font ---------------------------------------------------

def pdf_text(pdf: bytes) -> list[str]:
    """Each page's text as an independent reader (pypdf) extracts it."""
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def pdf_fonts(pdf: bytes) -> dict[str, dict[str, Any]]:
    """BaseFont -> {"subtype": the CIDFont's, "files": the FontFile keys} over all pages."""
    fonts: dict[str, dict[str, Any]] = {}
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        resources = page["/Resources"]
        assert isinstance(resources, DictionaryObject)
        font_dict = resources["/Font"]
        assert isinstance(font_dict, DictionaryObject)
        for ref in font_dict.values():
            font = ref.get_object()
            [cid] = [d.get_object() for d in font["/DescendantFonts"]]
            descriptor = cid["/FontDescriptor"].get_object()
            fonts[str(font["/BaseFont"])] = {
                "subtype": str(cid["/Subtype"]), "encoding": font["/Encoding"],
                "files": sorted(k for k in descriptor if str(k).startswith("/FontFile"))}
    return fonts


def test_a_statement_pdf_carries_its_words_as_text() -> None:
    orders = [{**DATA["orders"][0], "order_id": "10000417"}]
    fills = [{**DATA["fills"][0], "order_id": "10000417"}, DATA["fills"][1]]
    d = doc(customer="欧阳娜娜", orders=orders, fills=fills)
    document = render.render_document(d, "zh")
    assert document.pages == 1 and pdf_pages(document.pdf) == 1
    [text] = pdf_text(document.pdf)
    lines = text.splitlines()
    assert "客户：欧阳娜娜" in text and "资金账号：****0001" in text
    assert "310000000001" not in text  # the account is masked in the text layer too
    assert "2026年11月23日" in text and "对账单" in text
    # money as the Decimal formatting gives it, each in its row
    assert any(line.split() == ["资金余额", "100,000.00"] for line in lines)
    assert any(line.split() == ["可用资金", "85,000.50"] for line in lines)
    assert any(line.split()[:2] == ["600000", "浦发银行"] and line.endswith("8,520.00")
               for line in lines)
    assert "14,120.00" in text and "114,120.00" in text
    # the order number, in today's orders and today's fills
    assert sum(line.startswith("10000417 ") for line in lines) == 2
    assert "本对账单仅供参考" in text and "第 1/1 页" in text


def test_confirmations_in_english_carry_fees_and_signed_net() -> None:
    document = render.render_document(doc("confirmations"), "en")
    [text] = pdf_text(document.pdf)
    assert "Trade Confirmations" in text and "Customer: 张三" in text
    assert "-8,505.09" in text and "+5,592.14" in text  # buy pays, sell receives
    assert "Net cash" in text and "-2,912.95" in text
    assert re.search(r"^O2 10:01:05 000001 平安银行 Sell 500 11.20 5,600.00 7.86 \+5,592.14$",
                     text, re.M)


def test_the_font_is_embedded_as_a_truetype_subset_and_the_pdf_is_small() -> None:
    document = render.render_document(doc(), "zh")
    fonts = pdf_fonts(document.pdf)
    [(name, font)] = fonts.items()
    # subset ("ABCDEF+" tag), TrueType outlines embedded (FontFile2), Identity-H encoding
    assert re.fullmatch(r"/[A-Z]{6}\+WenQuanYiMicroHei", name)
    assert font["subtype"] == "/CIDFontType2" and font["files"] == ["/FontFile2"]
    assert font["encoding"] == "/Identity-H"
    # the whole 5 MB font would be megabytes; a one-page statement is tens of kB
    assert len(document.pdf) < 80_000
    meta = pypdf.PdfReader(io.BytesIO(document.pdf)).metadata
    assert meta is not None and meta.title == "对账单 2026-11-23"


def test_a_character_the_font_lacks_comes_from_the_fallback_font() -> None:
    if render.fallback_face() is None:
        pytest.skip(f"{render.FALLBACK_PACKAGE} is not installed")
    rare = "𠇔"  # U+201D4, in a real name; not in WenQuanYi Micro Hei
    assert not render.font_face().has(rare)
    document = render.render_document(doc(customer=f"王{rare}"), "zh")
    fonts = pdf_fonts(document.pdf)
    assert {f["files"][0] for f in fonts.values()} == {"/FontFile2", "/FontFile3"}
    with _pdfium(document.pdf) as pdf:
        assert f"客户：王{rare}" in pdf[0].get_textpage().get_text_range()


def test_long_tables_continue_on_more_pages_with_page_numbers() -> None:
    document = render.render_document(doc(positions=many_positions(120)), "zh")
    texts = pdf_text(document.pdf)
    assert document.pages == len(texts) >= 3
    for number, text in enumerate(texts, 1):
        assert f"第 {number}/{document.pages} 页" in text
        assert "客户：张三" in text  # the header on every page
    assert "持仓（续）" in texts[1]
    assert "测试股份119" in texts[-1] or "测试股份119" in texts[-2]
    box = pypdf.PdfReader(io.BytesIO(document.pdf)).pages[0].mediabox
    assert abs(float(box.width) - 595.3) < 1 and abs(float(box.height) - 841.9) < 1  # A4


def test_a_missing_font_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="install the Debian package fonts-wqy-microhei"):
        render.render_document(doc(), "zh", font_dir=tmp_path)
    with pytest.raises(ConfigError, match="fonts-wqy-microhei"):
        render.check_fonts(tmp_path)
    (tmp_path / render.FONT_FILE.name).write_bytes(b"not a font")
    with pytest.raises(ConfigError, match="cannot read the font"):
        render.check_fonts(tmp_path)
    render.check_fonts()


def outbound(template: str, data: dict[str, Any], lang: Any = "zh") -> Outbound:
    return Outbound(message_id="msg-0001-abcd", channel="fax", to="12345", template=template,
                    lang=lang, account="310000000001", ref="SR1", data=data,
                    created_at=dt.datetime.now(dt.UTC))


def test_message_document_of_a_statement_is_the_statement() -> None:
    data = {k: v for k, v in DATA.items() if k != "account"}
    document = render.message_document(outbound("statement", data))
    assert pdf_text(document.pdf) == pdf_text(render.render_document(doc(), "zh").pdf)


def test_message_document_of_a_note_wraps_long_text_onto_more_pages() -> None:
    short = render.message_document(outbound("note", {"customer": "张三", "text": "已处理。"}))
    assert short.pages == 1 and "已处理。" in pdf_text(short.pdf)[0]
    sentence = "您好！关于您咨询的银证转账问题，我们已经核实，资金已到账。"
    text = (sentence * 8 + "\n") * 12
    word = "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongword"
    text += f"{word} " * 3
    document = render.message_document(outbound("note", {"customer": "张三", "text": text},
                                                 "en"))
    assert document.pages >= 2
    texts = pdf_text(document.pdf)
    # the body's text without the brand above and the page number below each page's body
    body = "".join(t.split("\n", 1)[1].rsplit("\n", 1)[0] for t in texts)
    assert "".join(body.split()).count(sentence) == 8 * 12  # every character, in order
    # nothing runs past the right margin (15 mm), even a word wider than the line; only a
    # closing mark hangs into it (at most one em: 10 pt)
    margin = (210 - 15) / 25.4 * 72
    with _pdfium(document.pdf) as pdf:
        for index in range(len(pdf)):
            page = pdf[index].get_textpage()
            for i in range(page.count_chars()):
                char, right = page.get_text_range(i, 1), page.get_charbox(i)[2]
                if char not in "\r\n":
                    assert right <= margin + (10 if char in "，。！" else 0.5), (char, right)
    # a line never starts with a closing mark: it hangs at the end of the line before
    assert not any(line.startswith(("，", "。", "！")) for t in pdf_text(document.pdf)
                   for line in t.splitlines())


def test_message_document_of_a_notice_and_bad_data() -> None:
    fill = {"side": "buy", "time": "09:31", "name": "浦发银行", "code": "600000", "qty": 100,
            "price": "8.50"}
    assert render.message_document(outbound("fill", fill)).pages == 1
    with pytest.raises(DeliveryError, match="needs data key 'price'") as caught:
        render.message_document(outbound("fill", {k: v for k, v in fill.items()
                                                  if k != "price"}))
    assert caught.value.retriable is False
    with pytest.raises(DeliveryError, match="unknown template"):
        render.message_document(outbound("wechat_card", {}))


# -- the fax: the same PDF, rasterised ------------------------------------------------------

class _pdfium:
    def __init__(self, pdf: bytes) -> None:
        self.doc = pdfium.PdfDocument(pdf)

    def __enter__(self) -> pdfium.PdfDocument:
        return self.doc

    def __exit__(self, *_exc: object) -> None:
        self.doc.close()


def text_box_px(pdf: bytes, needle: str, page: int = 0) -> tuple[int, int, int, int]:
    """Where ``needle`` is on a page, in fax pixels (204 x 196 dpi, A4 centred in 1728)."""
    with _pdfium(pdf) as doc:
        textpage = doc[page].get_textpage()
        full = textpage.get_text_range()
        start = full.index(needle)
        boxes = [textpage.get_charbox(i) for i in range(start, start + len(needle))]
        height_pt = doc[page].get_size()[1]
    left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
    offset = (1728 - 1687) // 2
    return (offset + int(left / 72 * 204), int((height_pt - top) / 72 * 196),
            offset + int(right / 72 * 204) + 1, int((height_pt - bottom) / 72 * 196) + 1)


def test_g3_tiff_is_a_fax_document_of_the_same_pages() -> None:
    document = render.render_document(doc(positions=many_positions(120)), "zh")
    tiff = render.to_g3_tiff(document.pdf)
    with Image.open(io.BytesIO(tiff)) as im:
        assert im.format == "TIFF" and isinstance(im, TiffImageFile)
        assert im.n_frames == document.pages
        for frame in ImageSequence.Iterator(im):
            assert frame.mode == "1"
            assert frame.width == 1728
            assert frame.height == 2292  # A4 at 196 lines per inch
            assert frame.info["compression"] == "group3"
            assert tuple(round(v) for v in frame.info["dpi"]) == (204, 196)
            assert frame.getextrema() == (0, 255)  # ink on paper


def test_the_fax_has_ink_where_the_pdf_has_the_text() -> None:
    document = render.render_document(doc(customer="欧阳娜娜"), "zh")
    [page] = render.fax_pages(document.pdf)
    for needle in ("欧阳娜娜", "114,120.00", "对账单"):
        box = text_box_px(document.pdf, needle)
        ink = page.crop(box).convert("L").histogram()[0]
        area = (box[2] - box[0]) * (box[3] - box[1])
        assert 0.08 * area < ink < 0.8 * area, (needle, box, ink, area)
    # and paper where the PDF has none: the margins, the space below the tables
    for blank in ((0, 0, 1728, 90), (0, 0, 130, 2292), (1598, 0, 1728, 2292),
                  (140, 1400, 1588, 2100)):
        assert page.crop(blank).getextrema() == (255, 255), blank


def test_fax_pages_of_a_bad_pdf_are_a_channel_error() -> None:
    with pytest.raises(ChannelError, match="not a readable PDF"):
        render.fax_pages(b"%PDF-1.4 garbage")


def test_pdf_from_a_received_tiff_keeps_the_pages() -> None:
    document = render.render_document(doc(positions=many_positions(120)), "zh")
    pdf = render.pdf_from_tiff(render.to_g3_tiff(document.pdf))
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == document.pages


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


def test_a_character_in_no_font_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    private = "\ue000"  # a private-use code point: in no font
    with caplog.at_level(logging.WARNING, logger="callcenter.channels.render"):
        document = render.render_document(doc(customer=f"张{private}"), "zh")
    assert document.pages == 1
    assert "U+E000" in caplog.text
