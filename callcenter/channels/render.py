"""Statements and trade confirmations as page images: PDF for e-mail, G3 TIFF for fax.

Pure: no I/O except reading the CJK font (Debian package ``fonts-noto-cjk``). Heavy on CPU (a
page is an A4 bitmap at 300 dpi), so the async edges call it through ``asyncio.to_thread``.

- ``statement_from_data(data, kind=..., account=...)`` checks an ``Outbound.data`` mapping and
  builds a ``StatementData`` (shape below); bad or missing values are a
  ``DeliveryError(retriable=False)`` naming the key.
- ``render_pages(doc, lang)`` draws the document: A4 portrait pages at 300 dpi, mode ``L``,
  with ``info["dpi"]`` set; a header on every page (the brokerage, the title, the customer, the
  account masked to its last 4 digits, the date), tables that continue across pages, and
  "page i of n".
- ``text_pages(title, body, lang)``: a plain text (a note, a notice) on pages.
- ``message_pages(outbound)``: what a fax of an ``Outbound`` shows: its document, or its text.
- ``to_pdf(pages)``: one multi-page PDF (bi-level, CCITT G4 inside: small and sharp).
- ``to_g3_tiff(pages)``: a fax document: multi-page TIFF, mode ``1``, 1728 pixels wide,
  ``compression="group3"``, ``dpi=(204, 196)``; each page is scaled to its physical size at fax
  resolution and centred (A4 is 1687 of the 1728 pixels; 2292 lines).
- ``pdf_from_tiff(tiff)``: a received fax (any TIFF) as PDF, for agents and for mail.

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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from PIL import Image, ImageDraw, ImageFont, ImageSequence, UnidentifiedImageError

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

T = TypeVar("T")
DocKind = Literal["statement", "confirmations"]
Side = Literal["buy", "sell"]

#: where Debian's fonts-noto-cjk puts the OpenType collections
FONT_DIR: Final = Path("/usr/share/fonts/opentype/noto")
FONT_FILES: Final = {False: "NotoSansCJK-Regular.ttc", True: "NotoSansCJK-Bold.ttc"}
#: the face inside the collection: Simplified Chinese glyph forms
FONT_FAMILY: Final = "Noto Sans CJK SC"

DPI: Final = 300
PAGE_SIZE: Final = (2480, 3508)  # A4 at 300 dpi
FAX_WIDTH: Final = 1728
FAX_DPI: Final = (204, 196)
MAX_ROWS: Final = 2000           # per table: a runaway list fails, it does not print 50 pages
MAX_FAX_PAGES: Final = 200
_MAX_FAX_PIXELS: Final = 5000 * 12000


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

def font_path(*, bold: bool = False, font_dir: Path | None = None) -> Path:
    """The Noto Sans CJK collection file; a ``ConfigError`` saying what to install if absent."""
    path = (font_dir or FONT_DIR) / FONT_FILES[bold]
    if not path.is_file():
        raise ConfigError(f"CJK font not found: {path} (install the Debian package "
                          f"fonts-noto-cjk)")
    return path


def check_fonts(font_dir: Path | None = None) -> None:
    """Fail early (at a channel server's start) when the fonts are missing or unusable."""
    for bold in (False, True):
        _font(font_path(bold=bold, font_dir=font_dir), 12)


@functools.lru_cache(maxsize=8)
def _face_index(path: Path) -> int:
    for index in range(32):
        try:
            face = ImageFont.truetype(str(path), 12, index=index)
        except OSError:
            break
        if face.getname()[0] == FONT_FAMILY:
            return index
    raise ConfigError(f"{path} has no {FONT_FAMILY!r} face (is it fonts-noto-cjk's file?)")


@functools.lru_cache(maxsize=64)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(str(path), size, index=_face_index(path))
    except OSError as exc:
        raise ConfigError(f"cannot load the CJK font {path}: {exc}") from exc


@dataclass(frozen=True)
class _Fonts:
    title: ImageFont.FreeTypeFont
    brand: ImageFont.FreeTypeFont
    heading: ImageFont.FreeTypeFont
    body: ImageFont.FreeTypeFont
    bold: ImageFont.FreeTypeFont
    small: ImageFont.FreeTypeFont

    @classmethod
    def load(cls, font_dir: Path | None) -> _Fonts:
        regular = font_path(font_dir=font_dir)
        heavy = font_path(bold=True, font_dir=font_dir)
        return cls(title=_font(heavy, 80), brand=_font(heavy, 60), heading=_font(heavy, 50),
                   body=_font(regular, 42), bold=_font(heavy, 42), small=_font(regular, 34))


# -- words ----------------------------------------------------------------------------------

_WORDS: Final[dict[str, dict[str, str]]] = {
    "zh": {
        "statement": "对账单", "confirmations": "成交确认书",
        "customer": "客户", "account": "资金账号", "as_of": "日期",
        "cash": "资金", "currency": "币种", "cash_balance": "资金余额",
        "cash_available": "可用资金", "market_value": "持仓市值", "total_assets": "总资产",
        "positions": "持仓", "orders": "当日委托", "fills": "当日成交", "details": "成交明细",
        "summary": "汇总",
        "code": "代码", "name": "名称", "qty": "数量", "last": "现价", "value": "市值",
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
        "code": "Code", "name": "Name", "qty": "Qty", "last": "Last", "value": "Value",
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


# -- layout ---------------------------------------------------------------------------------

_MARGIN: Final = 180
_CONTENT_W: Final = PAGE_SIZE[0] - 2 * _MARGIN
_BODY_TOP: Final = 560       # below the header
_BODY_BOTTOM: Final = PAGE_SIZE[1] - 260
_ROW: Final = 64
_PAD: Final = 14

Align = Literal["l", "r"]


@dataclass(frozen=True)
class _Text:
    x: int
    y: int  # baseline
    text: str
    font: ImageFont.FreeTypeFont
    align: Align = "l"


@dataclass(frozen=True)
class _Rule:
    y: int
    width: int = 2


@dataclass(frozen=True)
class _Col:
    key: str       # a _WORDS key: the header
    share: float   # of the content width
    align: Align


@dataclass
class _Layout:
    fonts: _Fonts
    words: Mapping[str, str]
    pages: list[list[_Text | _Rule]] = field(default_factory=lambda: [[]])
    y: int = _BODY_TOP
    top: int = _BODY_TOP  # where a new page's body starts

    def room(self, height: int) -> bool:
        return self.y + height <= _BODY_BOTTOM

    def new_page(self) -> None:
        self.pages.append([])
        self.y = self.top

    def add(self, op: _Text | _Rule) -> None:
        self.pages[-1].append(op)

    def heading(self, key: str, continued: bool = False) -> None:
        self.y += 70
        label = self.words[key] + (self.words["continued"] if continued else "")
        self.add(_Text(_MARGIN, self.y, label, self.fonts.heading))
        self.y += 24

    def table(self, title: str, cols: Sequence[_Col], rows: Sequence[Sequence[str]],
              total: Sequence[str] | None = None) -> None:
        widths = [round(c.share * _CONTENT_W) for c in cols]
        lefts = [_MARGIN + sum(widths[:i]) for i in range(len(cols))]

        def cells(values: Sequence[str], font: ImageFont.FreeTypeFont) -> None:
            self.y += _ROW
            for col, left, width, value in zip(cols, lefts, widths, values, strict=True):
                text = _fit(value, font, width - 2 * _PAD)
                x = left + _PAD if col.align == "l" else left + width - _PAD
                self.add(_Text(x, self.y - 18, text, font, col.align))

        def head(continued: bool) -> None:
            self.heading(title, continued)
            cells([self.words[c.key] for c in cols], self.fonts.bold)
            self.add(_Rule(self.y + 4))
            self.y += 8

        if not self.room(94 + 3 * _ROW):
            self.new_page()
        head(False)
        if not rows:
            self.y += _ROW
            self.add(_Text(_MARGIN + _PAD, self.y - 18, self.words["none"], self.fonts.body))
        for row in rows:
            if not self.room(_ROW):
                self.new_page()
                head(True)
            cells(row, self.fonts.body)
        if total is not None:
            if not self.room(_ROW + 12):
                self.new_page()
                head(True)
            self.add(_Rule(self.y + 4, 1))
            self.y += 8
            cells(total, self.fonts.bold)

    def pairs(self, title: str, items: Sequence[tuple[str, str]]) -> None:
        value_right = _MARGIN + round(0.65 * _CONTENT_W) - _PAD
        if not self.room(94 + len(items) * _ROW):
            self.new_page()
        self.heading(title)
        self.add(_Rule(self.y + 4))
        self.y += 8
        for label, value in items:
            self.y += _ROW
            self.add(_Text(_MARGIN + _PAD, self.y - 18, label, self.fonts.body))
            self.add(_Text(value_right, self.y - 18, value, self.fonts.body, "r"))


def _fit(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
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
    lay.table("orders", [_Col("time", 0.12, "l"), _Col("code", 0.11, "l"),
                         _Col("name", 0.20, "l"), _Col("side", 0.09, "l"),
                         _Col("order_qty", 0.13, "r"), _Col("price", 0.12, "r"),
                         _Col("filled", 0.11, "r"), _Col("status", 0.12, "l")],
              [[o.time, o.code, o.name, w[o.side], f"{o.qty:,}", _m(o.price),
                f"{o.filled_qty:,}", _status(w, o.status)] for o in doc.orders])
    lay.table("fills", [_Col("time", 0.13, "l"), _Col("code", 0.12, "l"),
                        _Col("name", 0.23, "l"), _Col("side", 0.10, "l"),
                        _Col("qty", 0.13, "r"), _Col("fill_price", 0.12, "r"),
                        _Col("amount", 0.17, "r")],
              [[f.time, f.code, f.name, w[f.side], f"{f.qty:,}", _m(f.price), _m(f.amount)]
               for f in doc.fills])


def _confirmations(lay: _Layout, doc: StatementData) -> None:
    w = lay.words
    fills = doc.fills
    lay.table("details", [_Col("time", 0.11, "l"), _Col("code", 0.10, "l"),
                          _Col("name", 0.15, "l"), _Col("side", 0.07, "l"),
                          _Col("qty", 0.10, "r"), _Col("fill_price", 0.10, "r"),
                          _Col("amount", 0.13, "r"), _Col("fees", 0.10, "r"),
                          _Col("net", 0.14, "r")],
              [[f.time, f.code, f.name, w[f.side], f"{f.qty:,}", _m(f.price), _m(f.amount),
                _m(f.fees), _m(f.net, signed=True)] for f in fills])

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


def render_pages(doc: StatementData, lang: Lang, *,
                 font_dir: Path | None = None) -> list[Image.Image]:
    """The document as A4 pages (mode ``L``, 300 dpi, ``info["dpi"]`` set)."""
    words = _words(lang)
    fonts = _Fonts.load(font_dir)
    lay = _Layout(fonts, words)
    if doc.kind == "statement":
        _statement(lay, doc)
    else:
        _confirmations(lay, doc)
    return _finish(lay, lambda draw: _header(draw, fonts, words, doc, lang),
                   words[f"footer_{doc.kind}"])


def text_pages(title: str, body: str, lang: Lang, *,
               font_dir: Path | None = None) -> list[Image.Image]:
    """A plain text (a note, a notice) as A4 pages: the brokerage, ``title``, then ``body``
    wrapped to the page (lines break between CJK characters or at spaces)."""
    words = _words(lang)
    fonts = _Fonts.load(font_dir)
    lay = _Layout(fonts, words, y=_MARGIN + 130, top=_MARGIN + 130)
    for line in _wrap(title, fonts.heading, _CONTENT_W):
        lay.y += 76
        lay.add(_Text(_MARGIN, lay.y, line, fonts.heading))
    lay.y += 40
    for paragraph in body.split("\n"):
        lines = _wrap(paragraph, fonts.body, _CONTENT_W) if paragraph.strip() else [""]
        for line in lines:
            if not lay.room(_ROW):
                lay.new_page()
            lay.y += _ROW
            if line:
                lay.add(_Text(_MARGIN, lay.y - 18, line, fonts.body))
    return _finish(lay, lambda draw: _brand(draw, fonts), "")


def message_pages(message: Outbound, *, font_dir: Path | None = None) -> list[Image.Image]:
    """The pages of an outbound message (for fax): the document of ``statement`` and
    ``confirmations``, else the message's text (``templates.render_text``) on a page.
    ``DeliveryError(retriable=False)`` when the data does not fit the template. CPU-bound:
    call it through ``asyncio.to_thread``."""
    if message.template in DOCUMENT_TEMPLATES:
        kind: DocKind = "statement" if message.template == "statement" else "confirmations"
        doc = statement_from_data(message.data, kind=kind, account=message.account)
        return render_pages(doc, message.lang, font_dir=font_dir)
    text = render_text(message.template, message.lang, message.data, account=message.account,
                       ref=message.ref)
    return text_pages(text.subject, text.body, message.lang, font_dir=font_dir)


def _words(lang: str) -> Mapping[str, str]:
    if lang not in _WORDS:
        raise ValueError(f"no words for language {lang!r}")
    return _WORDS[lang]


def _finish(lay: _Layout, header: Callable[[ImageDraw.ImageDraw], None],
            footer: str) -> list[Image.Image]:
    count = len(lay.pages)
    pages: list[Image.Image] = []
    for number, ops in enumerate(lay.pages, 1):
        page = Image.new("L", PAGE_SIZE, 255)
        page.info["dpi"] = (DPI, DPI)
        draw = ImageDraw.Draw(page)
        header(draw)
        for op in ops:
            _draw(draw, op)
        _footer(draw, lay.fonts, lay.words, footer, number, count)
        pages.append(page)
    return pages


_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_TOKENS = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+\\s*|\\s+")
#: punctuation that must not start a line: it hangs at the end of the previous one
_NO_BREAK_BEFORE = frozenset("，。、；：？！）》」』”’,.;:?!)")


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for token in _TOKENS.findall(text):
        if font.getlength((line + token).rstrip()) <= width or token in _NO_BREAK_BEFORE:
            line += token
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = token.lstrip()
        while font.getlength(line.rstrip()) > width:  # one word wider than the page
            cut = len(line)
            while cut > 1 and font.getlength(line[:cut]) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _draw(draw: ImageDraw.ImageDraw, op: _Text | _Rule) -> None:
    if isinstance(op, _Rule):
        draw.line([(_MARGIN, op.y), (PAGE_SIZE[0] - _MARGIN, op.y)], fill=0, width=op.width)
    else:
        draw.text((op.x, op.y), op.text, font=op.font, fill=0,
                  anchor="ls" if op.align == "l" else "rs")


def _brand(draw: ImageDraw.ImageDraw, fonts: _Fonts) -> None:
    draw.text((_MARGIN, _MARGIN + 60), BROKERAGE_FULL, font=fonts.brand, fill=0, anchor="ls")
    draw.line([(_MARGIN, _MARGIN + 90), (PAGE_SIZE[0] - _MARGIN, _MARGIN + 90)], fill=0,
              width=5)


def _header(draw: ImageDraw.ImageDraw, fonts: _Fonts, words: Mapping[str, str],
            doc: StatementData, lang: Lang) -> None:
    right = PAGE_SIZE[0] - _MARGIN
    _brand(draw, fonts)
    draw.text((PAGE_SIZE[0] // 2, _MARGIN + 210), words[doc.kind], font=fonts.title, fill=0,
              anchor="ms")
    y = _MARGIN + 310
    sep = "：" if lang == "zh" else ": "
    draw.text((_MARGIN, y), f"{words['customer']}{sep}{doc.customer}", font=fonts.body,
              fill=0, anchor="ls")
    draw.text((PAGE_SIZE[0] // 2, y), f"{words['account']}{sep}{mask_account(doc.account)}",
              font=fonts.body, fill=0, anchor="ms")
    draw.text((right, y), f"{words['as_of']}{sep}{format_date(doc.as_of, lang)}",
              font=fonts.body, fill=0, anchor="rs")
    draw.line([(_MARGIN, y + 30), (right, y + 30)], fill=0, width=2)


def _footer(draw: ImageDraw.ImageDraw, fonts: _Fonts, words: Mapping[str, str], text: str,
            number: int, count: int) -> None:
    right = PAGE_SIZE[0] - _MARGIN
    y = PAGE_SIZE[1] - _MARGIN
    draw.line([(_MARGIN, y - 60), (right, y - 60)], fill=0, width=2)
    if text:
        draw.text((_MARGIN, y), text, font=fonts.small, fill=0, anchor="ls")
    draw.text((right, y), words["page"].format(i=number, n=count), font=fonts.small, fill=0,
              anchor="rs")


# -- output formats -------------------------------------------------------------------------

def _bilevel(page: Image.Image, threshold: int) -> Image.Image:
    gray = page if page.mode == "L" else page.convert("L")
    return gray.point([0 if v < threshold else 255 for v in range(256)], "1")


def _dpi(page: Image.Image, default: tuple[float, float]) -> tuple[float, float]:
    dpi = page.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and dpi[0] > 0 and dpi[1] > 0:
        return float(dpi[0]), float(dpi[1])
    return default


def to_pdf(pages: Sequence[Image.Image]) -> bytes:
    """One PDF, a page per image (bi-level, CCITT G4 compressed), at the pages' resolution."""
    if not pages:
        raise ValueError("no pages")
    dpi = _dpi(pages[0], (DPI, DPI))
    images = [_bilevel(p, 128) for p in pages]
    out = io.BytesIO()
    # dpi: Pillow >= 10.1; resolution: the square fallback of older ones
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], dpi=dpi,
                   resolution=dpi[0], producer="callcenter")
    return out.getvalue()


def to_fax_page(page: Image.Image) -> Image.Image:
    """One page at fax resolution: mode ``1``, 1728 wide, 204 x 196 dpi, physical size kept."""
    dx, dy = _dpi(page, (DPI, DPI))
    width = round(page.width / dx * FAX_DPI[0])
    height = round(page.height / dy * FAX_DPI[1])
    if width > FAX_WIDTH:
        height = round(height * FAX_WIDTH / width)
        width = FAX_WIDTH
    gray = page.convert("L").resize((width, height), Image.Resampling.LANCZOS)
    fax = Image.new("1", (FAX_WIDTH, height), 1)
    fax.paste(_bilevel(gray, 176), ((FAX_WIDTH - width) // 2, 0))
    return fax


def to_g3_tiff(pages: Sequence[Image.Image]) -> bytes:
    """A fax document: multi-page G3 TIFF, mode ``1``, 1728 wide, ``dpi=(204, 196)``."""
    if not pages:
        raise ValueError("no pages")
    faxes = [to_fax_page(p) for p in pages]
    out = io.BytesIO()
    faxes[0].save(out, "TIFF", save_all=True, append_images=faxes[1:], compression="group3",
                  dpi=FAX_DPI)
    return out.getvalue()


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
