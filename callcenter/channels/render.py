"""Statements and trade confirmations as PDF with real text (for e-mail), and the same pages
as a G3 TIFF (for fax).

Which library does what, and why:

- **fpdf2** writes the PDF: the words are text in an embedded, subset font (CID-keyed,
  ``Identity-H``, a ``ToUnicode`` map), so a reader can search, copy and index them; a one-page
  statement is about 20 kB. It is pure Python (fontTools does the subsetting), maintained, and
  embeds TrueType-outline fonts in the form every reader extracts text from.
- The font is Debian's **fonts-wqy-microhei** (WenQuanYi Micro Hei: TrueType outlines, found
  by its path, ``FONT_FILE``). Noto Sans CJK (Debian's fonts-noto-cjk) has the better glyphs,
  but its outlines are CFF: fpdf2 embeds them with an embedded encoding CMap that pdfminer.six
  reads as no text at all and pypdf as spaced-out letters. Noto is used only as the
  **fallback** for the rare characters (names such as 𠇔) that Micro Hei lacks; the document
  then embeds both. A character in neither is printed as the font's blank glyph and logged.
- **pypdfium2** (PDFium, bundled in the wheel) rasterises that same PDF for fax: one layout,
  two outputs. PDFium is not thread-safe, so every call holds ``_PDFIUM_LOCK``.
- **Pillow** writes the G3 TIFF (mode ``1``, ``compression="group3"``) and turns a received
  fax (any TIFF) into a PDF of images.

Pure: no I/O except reading the font files. CPU-bound (tens to hundreds of ms a document), so
the async edges call it through ``asyncio.to_thread``.

- ``statement_from_data(data, kind=..., account=...)`` checks an ``Outbound.data`` mapping and
  builds a ``StatementData`` (shape below); bad or missing values are a
  ``DeliveryError(retriable=False)`` naming the key.
- ``render_document(doc, lang)`` lays the document out on A4 (millimetres; font sizes in
  points): a header on every page (the brokerage, the title, the customer, the account masked
  to its last 4 digits, the date), tables that continue across pages, "page i of n". It
  returns a ``Document``: the PDF bytes and the page count.
- ``text_document(title, body, lang)``: a plain text (a note, a notice) on pages.
- ``message_document(outbound)``: what a fax of an ``Outbound`` shows: its document, or its text.
- ``to_g3_tiff(pdf)`` / ``fax_pages(pdf)``: the PDF as a fax document: multi-page TIFF, mode
  ``1``, 1728 pixels wide, ``compression="group3"``, ``dpi=(204, 196)``; each page keeps its
  physical size at fax resolution and is centred (A4 is 1687 of the 1728 pixels; 2292 lines).
- ``pdf_from_tiff(tiff)``: a received fax (any TIFF) as PDF, for agents and for mail.
- ``check_fonts()``: a channel server's start-up check (``ConfigError`` naming the package).

The ``data`` shape (money as strings holding decimals, never floats; counts as integers)::

    {
      "customer": "张三",               # the name the customer is addressed by
      "account": "310000000001",       # digits; Outbound.account wins when it is set
      "as_of": "2026-11-23",           # ISO date or date-time (its date is used)
      "currency": "CNY",               # optional, default CNY
      "cash_balance": "100000.00",     # statement only
      "cash_available": "85000.00",    # statement only
      "positions": [                   # statement only; may be empty
        {"code": "600000", "name": "浦发银行", "qty": 1000, "last": "8.52",
         "value": "8520.00"}           # value optional: qty x last
      ],
      "orders": [                      # optional (statement): today's orders
        {"time": "09:31:02", "order_id": "O1", "code": "600000", "name": "浦发银行",
         "side": "buy", "qty": 1000, "price": "8.50", "filled_qty": 1000, "status": "filled"}
      ],
      "fills": [                       # today's fills (both documents; may be empty)
        {"time": "09:31:05", "order_id": "O1", "code": "600000", "name": "浦发银行",
         "side": "buy", "qty": 1000, "price": "8.50",
         "amount": "8500.00",          # optional: qty x price
         "commission": "5.00", "transfer_fee": "0.09", "stamp_duty": "0.00"}  # optional, 0
      ]
    }

``status`` is one of ``pending partial filled cancelled rejected`` (another value is shown as it
is); ``side`` is ``buy`` or ``sell``.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import pypdfium2 as pdfium
from fontTools.ttLib import TTCollection, TTLibError
from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image, ImageSequence, UnidentifiedImageError

from callcenter.channels.messages import Outbound
from callcenter.channels.templates import (
    BROKERAGE_FULL,
    DOCUMENT_TEMPLATES,
    Lang,
    format_date,
    format_money,
    mask_account,
    parse_date,
    parse_int,
    parse_money,
    render_text,
)
from callcenter.errors import ChannelError, ConfigError, DeliveryError

log = logging.getLogger(__name__)

T = TypeVar("T")
DocKind = Literal["statement", "confirmations"]
Side = Literal["buy", "sell"]

#: the text font: Debian's fonts-wqy-microhei (TrueType outlines, a collection)
FONT_PACKAGE: Final = "fonts-wqy-microhei"
FONT_FILE: Final = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_FAMILY: Final = "WenQuanYi Micro Hei"
#: for characters the text font lacks: Debian's fonts-noto-cjk, Simplified Chinese face
FALLBACK_PACKAGE: Final = "fonts-noto-cjk"
FALLBACK_FILE: Final = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FALLBACK_FAMILY: Final = "Noto Sans CJK SC"

PAGE_MM: Final = (210.0, 297.0)  # A4 portrait
FAX_WIDTH: Final = 1728
FAX_DPI: Final = (204, 196)
#: a fax page is rendered at this multiple of 204 dpi, then scaled down to the fax grid
_OVERSAMPLE: Final = 2
MAX_ROWS: Final = 2000           # per table: a runaway list fails, it does not print 50 pages
MAX_FAX_PAGES: Final = 200
_MAX_FAX_PIXELS: Final = 5000 * 12000
#: PDFium may not be entered from two threads at once (asyncio.to_thread runs several)
_PDFIUM_LOCK: Final = threading.Lock()


@dataclass(frozen=True)
class Document:
    """A rendered document: the PDF, and how many pages it has."""

    pdf: bytes
    pages: int


@dataclass(frozen=True)
class Position:
    code: str
    name: str
    qty: int
    last: Decimal
    value: Decimal


@dataclass(frozen=True)
class Order:
    time: str
    order_id: str
    code: str
    name: str
    side: Side
    qty: int
    price: Decimal
    filled_qty: int
    status: str


@dataclass(frozen=True)
class Fill:
    time: str
    order_id: str
    code: str
    name: str
    side: Side
    qty: int
    price: Decimal
    amount: Decimal
    commission: Decimal = Decimal(0)
    transfer_fee: Decimal = Decimal(0)
    stamp_duty: Decimal = Decimal(0)

    @property
    def fees(self) -> Decimal:
        return self.commission + self.transfer_fee + self.stamp_duty

    @property
    def net(self) -> Decimal:
        """Cash effect: a buy pays amount + fees, a sell receives amount - fees."""
        return -(self.amount + self.fees) if self.side == "buy" else self.amount - self.fees


@dataclass(frozen=True)
class StatementData:
    """What a statement or a confirmations document shows. Built by ``statement_from_data``
    (or directly, by a back-office lookup)."""

    kind: DocKind
    customer: str
    account: str  # digits, unmasked: masking is the renderer's job
    as_of: dt.date
    currency: str = "CNY"
    cash_balance: Decimal = Decimal(0)
    cash_available: Decimal = Decimal(0)
    positions: tuple[Position, ...] = ()
    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()

    @property
    def market_value(self) -> Decimal:
        return sum((p.value for p in self.positions), Decimal(0))

    @property
    def filename_stem(self) -> str:
        """``statement-20261123-****0001``: for the attachment's file name."""
        return f"{self.kind}-{self.as_of:%Y%m%d}-{mask_account(self.account)}"


# -- data -> StatementData ------------------------------------------------------------------

def statement_from_data(data: Mapping[str, Any], *, kind: DocKind,
                        account: str = "") -> StatementData:
    """Check ``Outbound.data`` and build the document; see the module docstring for the shape."""
    if kind not in ("statement", "confirmations"):
        raise DeliveryError(f"not a document template: {kind!r}", retriable=False)
    acct = account or _text(data, "account", 16)
    mask_account(acct)  # validates
    statement = kind == "statement"
    return StatementData(
        kind=kind,
        customer=_text(data, "customer", 64),
        account=acct,
        as_of=parse_date("as_of", _need(data, "as_of")),
        currency=_text(data, "currency", 8) if "currency" in data else "CNY",
        cash_balance=parse_money("cash_balance", _need(data, "cash_balance"))
        if statement else Decimal(0),
        cash_available=parse_money("cash_available", _need(data, "cash_available"))
        if statement else Decimal(0),
        positions=_rows(data, "positions", _position, required=statement) if statement else (),
        orders=_rows(data, "orders", _order, required=False) if statement else (),
        fills=_rows(data, "fills", _fill, required=True),
    )


def _need(data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise DeliveryError(f"document data needs key {key!r}", retriable=False)
    return data[key]


def _text(data: Mapping[str, Any], key: str, limit: int) -> str:
    value = _need(data, key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise DeliveryError(f"data key {key!r} must be text of 1 to {limit} characters, got "
                            f"{value!r:.40}", retriable=False)
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise DeliveryError(f"data key {key!r} contains control characters", retriable=False)
    return value.strip()


def _rows(data: Mapping[str, Any], key: str, build: Callable[[str, Mapping[str, Any]], T],
             *, required: bool) -> tuple[T, ...]:
    if key not in data and not required:
        return ()
    rows = _need(data, key)
    if not isinstance(rows, list | tuple):
        raise DeliveryError(f"data key {key!r} must be a list", retriable=False)
    if len(rows) > MAX_ROWS:
        raise DeliveryError(f"data key {key!r} has {len(rows)} rows, at most {MAX_ROWS}",
                            retriable=False)
    out: list[T] = []
    for i, row in enumerate(rows):
        where = f"{key}[{i}]"
        if not isinstance(row, Mapping):
            raise DeliveryError(f"{where} must be an object", retriable=False)
        out.append(build(where, row))
    return tuple(out)


def _field(where: str, row: Mapping[str, Any], key: str, parse: Callable[[str, Any], T]) -> T:
    if key not in row:
        raise DeliveryError(f"{where} needs key {key!r}", retriable=False)
    return parse(f"{where}.{key}", row[key])


def _str(limit: int) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        return _text({key: value}, key, limit)
    return parse


def _side(key: str, value: Any) -> Side:
    if value == "buy":
        return "buy"
    if value == "sell":
        return "sell"
    raise DeliveryError(f"data key {key!r} must be buy or sell, got {value!r:.40}",
                        retriable=False)


def _position(where: str, row: Mapping[str, Any]) -> Position:
    qty = _field(where, row, "qty", parse_int)
    last = _field(where, row, "last", parse_money)
    value = _field(where, row, "value", parse_money) if "value" in row else qty * last
    return Position(code=_field(where, row, "code", _str(12)),
                    name=_field(where, row, "name", _str(32)), qty=qty, last=last, value=value)


def _order(where: str, row: Mapping[str, Any]) -> Order:
    return Order(time=_field(where, row, "time", _str(32)),
                 order_id=_field(where, row, "order_id", _str(32)),
                 code=_field(where, row, "code", _str(12)),
                 name=_field(where, row, "name", _str(32)),
                 side=_field(where, row, "side", _side),
                 qty=_field(where, row, "qty", parse_int),
                 price=_field(where, row, "price", parse_money),
                 filled_qty=_field(where, row, "filled_qty", parse_int)
                 if "filled_qty" in row else 0,
                 status=_field(where, row, "status", _str(16)))


def _fill(where: str, row: Mapping[str, Any]) -> Fill:
    qty = _field(where, row, "qty", parse_int)
    price = _field(where, row, "price", parse_money)

    def money(key: str, default: Decimal) -> Decimal:
        return _field(where, row, key, parse_money) if key in row else default

    return Fill(time=_field(where, row, "time", _str(32)),
                order_id=_field(where, row, "order_id", _str(32)) if "order_id" in row else "",
                code=_field(where, row, "code", _str(12)),
                name=_field(where, row, "name", _str(32)),
                side=_field(where, row, "side", _side),
                qty=qty, price=price, amount=money("amount", qty * price),
                commission=money("commission", Decimal(0)),
                transfer_fee=money("transfer_fee", Decimal(0)),
                stamp_duty=money("stamp_duty", Decimal(0)))


# -- fonts ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FontFace:
    """One face of a font file (a ``.ttc`` collection holds several)."""

    path: Path
    index: int
    family: str
    chars: frozenset[int]  # the code points it has glyphs for

    def has(self, char: str) -> bool:
        return ord(char) in self.chars or char.isspace()


def font_face(*, font_dir: Path | None = None) -> FontFace:
    """The text font; a ``ConfigError`` saying which Debian package to install if absent."""
    path = FONT_FILE if font_dir is None else font_dir / FONT_FILE.name
    return _face(path, FONT_FAMILY, FONT_PACKAGE)


def fallback_face(*, font_dir: Path | None = None) -> FontFace | None:
    """The fallback font for rare characters, or None when it is not installed."""
    path = FALLBACK_FILE if font_dir is None else font_dir / FALLBACK_FILE.name
    if not path.is_file():
        return None
    return _face(path, FALLBACK_FAMILY, FALLBACK_PACKAGE)


def check_fonts(font_dir: Path | None = None) -> None:
    """Fail early (at a channel server's start) when the text font is missing or unusable."""
    font_face(font_dir=font_dir)
    fallback_face(font_dir=font_dir)


@functools.lru_cache(maxsize=8)
def _face(path: Path, family: str, package: str) -> FontFace:
    if not path.is_file():
        raise ConfigError(f"font not found: {path} (install the Debian package {package})")
    try:
        with path.open("rb") as file:
            for index, font in enumerate(TTCollection(file, lazy=True).fonts):
                if font["name"].getDebugName(1) == family:
                    return FontFace(path, index, family, frozenset(font.getBestCmap()))
    except (OSError, TTLibError, KeyError) as exc:
        raise ConfigError(f"cannot read the font {path}: {exc} (reinstall the Debian package "
                          f"{package})") from exc
    raise ConfigError(f"{path} has no {family!r} face (is it the file of {package}?)")


# -- the PDF canvas -------------------------------------------------------------------------

Style = Literal["title", "brand", "heading", "body", "cell", "cell_bold", "small"]
#: size in points, and whether it is drawn bold
_STYLES: Final[dict[Style, tuple[float, bool]]] = {
    "title": (19, True), "brand": (14, True), "heading": (12, True), "body": (10, False),
    "cell": (9, False), "cell_bold": (9, True), "small": (8, False),
}
#: Micro Hei has no bold face: bold is the glyph filled and stroked (still text), this wide
_BOLD_STROKE: Final = 0.035  # of the font size
_MAIN, _FALLBACK = "cjk", "cjk-fallback"
_PT: Final = 72 / 25.4  # points in a millimetre: the layout is in mm, the canvas in points


class _Canvas:
    """An fpdf2 document with the CJK font(s), measuring and drawing runs of text: a run the
    text font lacks is set in the fallback font (fpdf2's ``text()`` does no fallback itself);
    the fallback is embedded only when a document uses it."""

    def __init__(self, font_dir: Path | None, *, title: str, lang: Lang) -> None:
        self.main = font_face(font_dir=font_dir)
        self._font_dir = font_dir
        self.fallback: FontFace | None = None
        self._fallback_tried = False
        self.missing: set[str] = set()
        # points as the unit: fpdf2 writes text()'s stroke width in user units unconverted
        pdf = FPDF(orientation="P", unit="pt", format="A4")
        pdf.set_auto_page_break(False)
        pdf.set_margins(0, 0, 0)
        pdf.set_creator("callcenter")
        pdf.set_author(BROKERAGE_FULL)
        pdf.set_title(title)
        pdf.set_lang("zh-CN" if lang == "zh" else "en")
        pdf.add_font(_MAIN, "", str(self.main.path), collection_font_number=self.main.index)
        self.pdf = pdf

    def _runs(self, text: str) -> Iterator[tuple[str, str]]:
        """``(font key, text)`` runs."""
        start, key = 0, _MAIN
        for i, char in enumerate(text):
            want = _MAIN if self.main.has(char) else self._fallback_for(char)
            if want != key and i > start:
                yield key, text[start:i]
                start = i
            key = want
        if start < len(text):
            yield key, text[start:]

    def _fallback_for(self, char: str) -> str:
        if not self._fallback_tried:
            self._fallback_tried = True
            self.fallback = fallback_face(font_dir=self._font_dir)
            if self.fallback is not None:
                self.pdf.add_font(_FALLBACK, "", str(self.fallback.path),
                                  collection_font_number=self.fallback.index)
        if self.fallback is not None and self.fallback.has(char):
            return _FALLBACK
        self.missing.add(char)
        return _MAIN

    def width(self, text: str, style: Style) -> float:
        size = _STYLES[style][0]
        total = 0.0
        for key, run in self._runs(text):
            self.pdf.set_font(key, size=size)
            total += self.pdf.get_string_width(run)
        return total / _PT

    def text(self, x: float, y: float, text: str, style: Style) -> None:
        """``text`` with its baseline's left end at ``(x, y)`` mm."""
        size, bold = _STYLES[style]
        if not bold:
            self._text_runs(x, y, text, size)
            return
        # a local context is q ... Q: the text mode and line width end with it
        with self.pdf.local_context(text_mode=TextMode.FILL_STROKE,
                                    line_width=size * _BOLD_STROKE):
            self._text_runs(x, y, text, size)

    def _text_runs(self, x: float, y: float, text: str, size: float) -> None:
        x_pt = x * _PT
        for key, run in self._runs(text):
            self.pdf.set_font(key, size=size)
            self.pdf.text(x_pt, y * _PT, run)
            x_pt += self.pdf.get_string_width(run)

    def rule(self, y: float, width: float) -> None:
        self.pdf.set_line_width(width * _PT)
        self.pdf.line(_MARGIN * _PT, y * _PT, (PAGE_MM[0] - _MARGIN) * _PT, y * _PT)

    def output(self) -> bytes:
        if self.missing:
            log.warning("characters in neither font, printed blank: %s",
                        " ".join(f"{c} (U+{ord(c):04X})" for c in sorted(self.missing)))
        return bytes(self.pdf.output())


# -- words ----------------------------------------------------------------------------------

_WORDS: Final[dict[str, dict[str, str]]] = {
    "zh": {
        "statement": "对账单", "confirmations": "成交确认书",
        "customer": "客户", "account": "资金账号", "as_of": "日期",
        "cash": "资金", "currency": "币种", "cash_balance": "资金余额",
        "cash_available": "可用资金", "market_value": "持仓市值", "total_assets": "总资产",
        "positions": "持仓", "orders": "当日委托", "fills": "当日成交", "details": "成交明细",
        "summary": "汇总",
        "order_id": "委托编号", "code": "代码", "name": "名称", "qty": "数量", "last": "现价",
        "value": "市值",
        "time": "时间", "side": "方向", "price": "价格", "order_qty": "委托量",
        "filled": "成交量", "status": "状态", "fill_price": "成交价", "amount": "成交金额",
        "fees": "费用", "net": "清算金额", "total": "合计", "none": "无", "continued": "（续）",
        "fill_count": "成交笔数", "buy_amount": "买入金额", "sell_amount": "卖出金额",
        "commission": "佣金", "transfer_fee": "过户费", "stamp_duty": "印花税",
        "net_total": "清算净额",
        "buy": "买入", "sell": "卖出",
        "queued": "未报", "pending": "未成交", "partial": "部分成交", "filled_status": "已成交",
        "cancelled": "已撤单", "rejected": "废单",
        "page": "第 {i}/{n} 页",
        "footer_statement": "本对账单仅供参考，以本公司系统记录为准。",
        "footer_confirmations": "请核对成交明细；如有异议，请于下一交易日开市前联系我们。",
    },
    "en": {
        "statement": "Account Statement", "confirmations": "Trade Confirmations",
        "customer": "Customer", "account": "Account", "as_of": "Date",
        "cash": "Cash", "currency": "Currency", "cash_balance": "Cash balance",
        "cash_available": "Available", "market_value": "Market value",
        "total_assets": "Total assets",
        "positions": "Positions", "orders": "Today's orders", "fills": "Today's fills",
        "details": "Fills", "summary": "Summary",
        "order_id": "Order no.", "code": "Code", "name": "Name", "qty": "Qty", "last": "Last",
        "value": "Value",
        "time": "Time", "side": "Side", "price": "Price", "order_qty": "Qty",
        "filled": "Filled", "status": "Status", "fill_price": "Price", "amount": "Amount",
        "fees": "Fees", "net": "Net", "total": "Total", "none": "None",
        "continued": " (continued)",
        "fill_count": "Fills", "buy_amount": "Bought", "sell_amount": "Sold",
        "commission": "Commission", "transfer_fee": "Transfer fee", "stamp_duty": "Stamp duty",
        "net_total": "Net cash",
        "buy": "Buy", "sell": "Sell",
        "queued": "Queued", "pending": "Pending", "partial": "Partial", "filled_status": "Filled",
        "cancelled": "Cancelled", "rejected": "Rejected",
        "page": "Page {i} of {n}",
        "footer_statement": "For reference only; our records prevail.",
        "footer_confirmations": "Please check these fills; tell us of any error before the "
                                "next trading day's open.",
    },
}


# -- layout (millimetres from the page's top left; text positions are baselines) -----------

_MARGIN: Final = 15.0
_CONTENT_W: Final = PAGE_MM[0] - 2 * _MARGIN
_BODY_TOP: Final = 47.5       # below the header
_BODY_BOTTOM: Final = PAGE_MM[1] - 22.0
_ROW: Final = 5.4
_PAD: Final = 1.2
_DROP: Final = 1.5            # a cell's baseline sits this far above the row's bottom

Align = Literal["l", "r", "c"]


@dataclass(frozen=True)
class _Text:
    x: float
    y: float  # baseline
    text: str
    style: Style
    align: Align = "l"


@dataclass(frozen=True)
class _Rule:
    y: float
    width: float = 0.17


@dataclass(frozen=True)
class _Col:
    key: str       # a _WORDS key: the header
    share: float   # of the content width
    align: Align


@dataclass
class _Layout:
    canvas: _Canvas
    words: Mapping[str, str]
    pages: list[list[_Text | _Rule]] = field(default_factory=lambda: [[]])
    y: float = _BODY_TOP
    top: float = _BODY_TOP  # where a new page's body starts

    def room(self, height: float) -> bool:
        return self.y + height <= _BODY_BOTTOM

    def new_page(self) -> None:
        self.pages.append([])
        self.y = self.top

    def add(self, op: _Text | _Rule) -> None:
        self.pages[-1].append(op)

    def heading(self, key: str, continued: bool = False) -> None:
        self.y += 5.9
        label = self.words[key] + (self.words["continued"] if continued else "")
        self.add(_Text(_MARGIN, self.y, label, "heading"))
        self.y += 2.0

    def table(self, title: str, cols: Sequence[_Col], rows: Sequence[Sequence[str]],
              total: Sequence[str] | None = None) -> None:
        widths = [c.share * _CONTENT_W for c in cols]
        lefts = [_MARGIN + sum(widths[:i]) for i in range(len(cols))]

        def cells(values: Sequence[str], style: Style) -> None:
            self.y += _ROW
            for col, left, width, value in zip(cols, lefts, widths, values, strict=True):
                text = _fit(self.canvas, value, style, width - 2 * _PAD)
                x = left + _PAD if col.align == "l" else left + width - _PAD
                self.add(_Text(x, self.y - _DROP, text, style, col.align))

        def head(continued: bool) -> None:
            self.heading(title, continued)
            cells([self.words[c.key] for c in cols], "cell_bold")
            self.add(_Rule(self.y + 0.35))
            self.y += 0.7

        if not self.room(8.0 + 3 * _ROW):
            self.new_page()
        head(False)
        if not rows:
            self.y += _ROW
            self.add(_Text(_MARGIN + _PAD, self.y - _DROP, self.words["none"], "cell"))
        for row in rows:
            if not self.room(_ROW):
                self.new_page()
                head(True)
            cells(row, "cell")
        if total is not None:
            if not self.room(_ROW + 1.0):
                self.new_page()
                head(True)
            self.add(_Rule(self.y + 0.35, 0.1))
            self.y += 0.7
            cells(total, "cell_bold")

    def pairs(self, title: str, items: Sequence[tuple[str, str]]) -> None:
        value_right = _MARGIN + 0.65 * _CONTENT_W - _PAD
        if not self.room(8.0 + len(items) * _ROW):
            self.new_page()
        self.heading(title)
        self.add(_Rule(self.y + 0.35))
        self.y += 0.7
        for label, value in items:
            self.y += _ROW
            self.add(_Text(_MARGIN + _PAD, self.y - _DROP, label, "body"))
            self.add(_Text(value_right, self.y - _DROP, value, "body", "r"))


def _fit(canvas: _Canvas, text: str, style: Style, width: float) -> str:
    if canvas.width(text, style) <= width:
        return text
    while text and canvas.width(text + "…", style) > width:
        text = text[:-1]
    return text + "…"


def _m(value: Decimal, signed: bool = False) -> str:
    return format_money(value, signed=signed)


def _statement(lay: _Layout, doc: StatementData) -> None:
    w = lay.words
    lay.pairs("cash", [
        (w["currency"], doc.currency),
        (w["cash_balance"], _m(doc.cash_balance)),
        (w["cash_available"], _m(doc.cash_available)),
        (w["market_value"], _m(doc.market_value)),
        (w["total_assets"], _m(doc.cash_balance + doc.market_value)),
    ])
    lay.table("positions", [_Col("code", 0.14, "l"), _Col("name", 0.30, "l"),
                            _Col("qty", 0.16, "r"), _Col("last", 0.16, "r"),
                            _Col("value", 0.24, "r")],
              [[p.code, p.name, f"{p.qty:,}", _m(p.last), _m(p.value)] for p in doc.positions],
              total=[w["total"], "", "", "", _m(doc.market_value)] if doc.positions else None)
    lay.table("orders", [_Col("order_id", 0.14, "l"), _Col("time", 0.10, "l"),
                         _Col("code", 0.09, "l"), _Col("name", 0.16, "l"),
                         _Col("side", 0.07, "l"), _Col("order_qty", 0.11, "r"),
                         _Col("price", 0.10, "r"), _Col("filled", 0.11, "r"),
                         _Col("status", 0.12, "l")],
              [[o.order_id, o.time, o.code, o.name, w[o.side], f"{o.qty:,}", _m(o.price),
                f"{o.filled_qty:,}", _status(w, o.status)] for o in doc.orders])
    lay.table("fills", [_Col("order_id", 0.14, "l"), _Col("time", 0.10, "l"),
                        _Col("code", 0.09, "l"), _Col("name", 0.17, "l"),
                        _Col("side", 0.07, "l"), _Col("qty", 0.11, "r"),
                        _Col("fill_price", 0.13, "r"), _Col("amount", 0.19, "r")],
              [[f.order_id, f.time, f.code, f.name, w[f.side], f"{f.qty:,}", _m(f.price),
                _m(f.amount)] for f in doc.fills])


def _confirmations(lay: _Layout, doc: StatementData) -> None:
    w = lay.words
    fills = doc.fills
    lay.table("details", [_Col("order_id", 0.12, "l"), _Col("time", 0.09, "l"),
                          _Col("code", 0.08, "l"), _Col("name", 0.12, "l"),
                          _Col("side", 0.06, "l"), _Col("qty", 0.09, "r"),
                          _Col("fill_price", 0.09, "r"), _Col("amount", 0.13, "r"),
                          _Col("fees", 0.09, "r"), _Col("net", 0.13, "r")],
              [[f.order_id, f.time, f.code, f.name, w[f.side], f"{f.qty:,}", _m(f.price),
                _m(f.amount), _m(f.fees), _m(f.net, signed=True)] for f in fills])

    def total(values: Sequence[Decimal]) -> Decimal:
        return sum(values, Decimal(0))

    lay.pairs("summary", [
        (w["fill_count"], f"{len(fills):,}"),
        (w["buy_amount"], _m(total([f.amount for f in fills if f.side == "buy"]))),
        (w["sell_amount"], _m(total([f.amount for f in fills if f.side == "sell"]))),
        (w["commission"], _m(total([f.commission for f in fills]))),
        (w["transfer_fee"], _m(total([f.transfer_fee for f in fills]))),
        (w["stamp_duty"], _m(total([f.stamp_duty for f in fills]))),
        (w["net_total"], _m(total([f.net for f in fills]), signed=True)),
    ])


_STATUSES: Final = {"queued": "queued", "pending": "pending", "partial": "partial",
                    "filled": "filled_status",
                    "cancelled": "cancelled", "rejected": "rejected"}


def _status(words: Mapping[str, str], status: str) -> str:
    """A known order status in words; another one as it is."""
    key = _STATUSES.get(status)
    return words[key] if key else status


def render_document(doc: StatementData, lang: Lang, *,
                    font_dir: Path | None = None) -> Document:
    """The document as an A4 PDF with its text embedded."""
    words = _words(lang)
    canvas = _Canvas(font_dir, title=f"{words[doc.kind]} {doc.as_of.isoformat()}", lang=lang)
    lay = _Layout(canvas, words)
    if doc.kind == "statement":
        _statement(lay, doc)
    else:
        _confirmations(lay, doc)
    return _finish(lay, _header(words, doc, lang), words[f"footer_{doc.kind}"])


def text_document(title: str, body: str, lang: Lang, *,
                  font_dir: Path | None = None) -> Document:
    """A plain text (a note, a notice) as A4 pages: the brokerage, ``title``, then ``body``
    wrapped to the page (lines break between CJK characters or at spaces)."""
    words = _words(lang)
    canvas = _Canvas(font_dir, title=title, lang=lang)
    top = _MARGIN + 11.0
    lay = _Layout(canvas, words, y=top, top=top)
    for line in _wrap(canvas, title, "heading", _CONTENT_W):
        lay.y += 6.4
        lay.add(_Text(_MARGIN, lay.y, line, "heading"))
    lay.y += 3.4
    for paragraph in body.split("\n"):
        lines = _wrap(canvas, paragraph, "body", _CONTENT_W) if paragraph.strip() else [""]
        for line in lines:
            if not lay.room(_ROW):
                lay.new_page()
            lay.y += _ROW
            if line:
                lay.add(_Text(_MARGIN, lay.y - _DROP, line, "body"))
    return _finish(lay, _brand(), "")


def message_document(message: Outbound, *, font_dir: Path | None = None) -> Document:
    """What a fax of an outbound message shows: the document of ``statement`` and
    ``confirmations``, else the message's text (``templates.render_text``) on pages.
    ``DeliveryError(retriable=False)`` when the data does not fit the template. CPU-bound:
    call it through ``asyncio.to_thread``."""
    if message.template in DOCUMENT_TEMPLATES:
        kind: DocKind = "statement" if message.template == "statement" else "confirmations"
        doc = statement_from_data(message.data, kind=kind, account=message.account)
        return render_document(doc, message.lang, font_dir=font_dir)
    text = render_text(message.template, message.lang, message.data, account=message.account,
                       ref=message.ref)
    return text_document(text.subject, text.body, message.lang, font_dir=font_dir)


def _words(lang: str) -> Mapping[str, str]:
    if lang not in _WORDS:
        raise ValueError(f"no words for language {lang!r}")
    return _WORDS[lang]


def _finish(lay: _Layout, header: Sequence[_Text | _Rule], footer: str) -> Document:
    count = len(lay.pages)
    canvas = lay.canvas
    for number, ops in enumerate(lay.pages, 1):
        canvas.pdf.add_page()
        for op in [*header, *ops, *_footer(lay.words, footer, number, count)]:
            if isinstance(op, _Rule):
                canvas.rule(op.y, op.width)
            else:
                width = canvas.width(op.text, op.style) if op.align != "l" else 0.0
                x = op.x - (width if op.align == "r" else width / 2 if op.align == "c" else 0)
                canvas.text(x, op.y, op.text, op.style)
    return Document(canvas.output(), count)


_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f\U00020000-\U0003ffff"
_TOKENS = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+\\s*|\\s+")
#: punctuation that must not start a line: it hangs at the end of the previous one
_NO_BREAK_BEFORE = frozenset("，。、；：？！）》」』”’,.;:?!)")


def _wrap(canvas: _Canvas, text: str, style: Style, width: float) -> list[str]:
    def fits(line: str) -> bool:
        return canvas.width(line, style) <= width

    lines: list[str] = []
    line = ""
    for token in _TOKENS.findall(text):
        if fits((line + token).rstrip()) or token in _NO_BREAK_BEFORE:
            line += token
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = token.lstrip()
        while not fits(line.rstrip()):  # one word wider than the page
            cut = len(line)
            while cut > 1 and not fits(line[:cut]):
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _brand() -> list[_Text | _Rule]:
    return [_Text(_MARGIN, _MARGIN + 5.1, BROKERAGE_FULL, "brand"),
            _Rule(_MARGIN + 7.6, 0.42)]


def _header(words: Mapping[str, str], doc: StatementData, lang: Lang) -> list[_Text | _Rule]:
    right = PAGE_MM[0] - _MARGIN
    y = _MARGIN + 26.2
    sep = "：" if lang == "zh" else ": "
    return [
        *_brand(),
        _Text(PAGE_MM[0] / 2, _MARGIN + 17.8, words[doc.kind], "title", "c"),
        _Text(_MARGIN, y, f"{words['customer']}{sep}{doc.customer}", "body"),
        _Text(PAGE_MM[0] / 2, y, f"{words['account']}{sep}{mask_account(doc.account)}", "body",
              "c"),
        _Text(right, y, f"{words['as_of']}{sep}{format_date(doc.as_of, lang)}", "body", "r"),
        _Rule(y + 2.5),
    ]


def _footer(words: Mapping[str, str], text: str, number: int,
            count: int) -> list[_Text | _Rule]:
    right = PAGE_MM[0] - _MARGIN
    y = PAGE_MM[1] - _MARGIN
    ops: list[_Text | _Rule] = [_Rule(y - 5.1)]
    if text:
        ops.append(_Text(_MARGIN, y, text, "small"))
    ops.append(_Text(right, y, words["page"].format(i=number, n=count), "small", "r"))
    return ops


# -- fax ------------------------------------------------------------------------------------

def fax_pages(pdf: bytes) -> list[Image.Image]:
    """The PDF's pages at fax resolution: mode ``1``, 1728 wide, 204 x 196 dpi, each page's
    physical size kept (scaled down only if wider than the fax line) and centred."""
    pages: list[Image.Image] = []
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(pdf)
        except pdfium.PdfiumError as exc:
            raise ChannelError(f"not a readable PDF: {exc}") from exc
        try:
            if not 0 < len(document) <= MAX_FAX_PAGES:
                raise ChannelError(f"a fax has 1 to {MAX_FAX_PAGES} pages, this PDF "
                                   f"{len(document)}")
            for index in range(len(document)):
                page = document[index]
                try:
                    width_pt, height_pt = page.get_size()
                    bitmap = page.render(scale=_OVERSAMPLE * FAX_DPI[0] / 72, grayscale=True)
                    try:
                        pages.append(_fax_page(bitmap.to_pil(), width_pt, height_pt))
                    finally:
                        bitmap.close()
                finally:
                    page.close()
        finally:
            document.close()
    return pages


def _fax_page(rendered: Image.Image, width_pt: float, height_pt: float) -> Image.Image:
    width = round(width_pt / 72 * FAX_DPI[0])
    height = round(height_pt / 72 * FAX_DPI[1])
    if width > FAX_WIDTH:
        height = round(height * FAX_WIDTH / width)
        width = FAX_WIDTH
    gray = rendered.convert("L").resize((width, height), Image.Resampling.LANCZOS)
    fax = Image.new("1", (FAX_WIDTH, height), 255)
    fax.paste(_bilevel(gray, 176), ((FAX_WIDTH - width) // 2, 0))
    return fax


def to_g3_tiff(pdf: bytes) -> bytes:
    """A fax document from a PDF: multi-page G3 TIFF, mode ``1``, 1728 wide,
    ``dpi=(204, 196)``. CPU-bound: call it through ``asyncio.to_thread``."""
    faxes = fax_pages(pdf)
    out = io.BytesIO()
    faxes[0].save(out, "TIFF", save_all=True, append_images=faxes[1:], compression="group3",
                  dpi=FAX_DPI)
    return out.getvalue()


def _bilevel(page: Image.Image, threshold: int) -> Image.Image:
    gray = page if page.mode == "L" else page.convert("L")
    return gray.point([0 if v < threshold else 255 for v in range(256)], "1")


def _dpi(page: Image.Image, default: tuple[float, float]) -> tuple[float, float]:
    dpi = page.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and dpi[0] > 0 and dpi[1] > 0:
        return float(dpi[0]), float(dpi[1])
    return default


def pdf_from_tiff(tiff: bytes) -> bytes:
    """A received fax (a TIFF, any resolution, any number of pages) as PDF. Pages are
    normalised to square pixels (a 204 x 98 "normal" fax is stretched to its true height)."""
    images: list[Image.Image] = []
    try:
        with Image.open(io.BytesIO(tiff), formats=["TIFF"]) as src:
            for frame in ImageSequence.Iterator(src):
                if len(images) >= MAX_FAX_PAGES:
                    raise ChannelError(f"received fax has more than {MAX_FAX_PAGES} pages")
                if frame.width * frame.height > _MAX_FAX_PIXELS:
                    raise ChannelError(f"received fax page too large: {frame.size}")
                dx, dy = _dpi(frame, (float(FAX_DPI[0]), float(FAX_DPI[1])))
                size = (max(1, round(frame.width * FAX_DPI[0] / dx)),
                        max(1, round(frame.height * FAX_DPI[0] / dy)))
                page = frame.convert("1")
                if size != page.size:
                    page = page.resize(size, Image.Resampling.NEAREST)
                images.append(page)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError) as exc:
        raise ChannelError(f"received fax is not a readable TIFF: {exc}") from exc
    if not images:
        raise ChannelError("received fax has no pages")
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:],
                   resolution=float(FAX_DPI[0]), producer="callcenter")
    return out.getvalue()
