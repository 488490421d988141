"""The A-share boards as data: which code prefix is which board, and each board's order rules.

Pure: no I/O, no clock. ``board_of`` reads a six-digit code; ``check_listing`` refuses a listing
whose board or exchange contradicts its code. ``BoardRules`` holds a board's quantities and
price limits; ``DEFAULT_BOARDS`` follows the exchanges' rules (sources in docs/backoffice.md,
"Trading rules").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from callcenter.broker.interface import Board, Security

#: code prefix -> (board, exchange); every prefix here is 3 digits.
PREFIXES: Mapping[str, tuple[Board, str]] = MappingProxyType({
    **{p: (Board.MAIN, "SH") for p in ("600", "601", "603", "605")},
    **{p: (Board.STAR, "SH") for p in ("688", "689")},
    **{p: (Board.MAIN, "SZ") for p in ("000", "001", "002", "003")},
    **{p: (Board.CHINEXT, "SZ") for p in ("300", "301", "302")},
    # BSE: 920 only. Its listings kept their NEEQ codes (43/83/87...) until the exchange moved
    # every one of them to 920 + the last three digits on 2025-10-09 (new listings since
    # 2024-04-22); the old codes no longer trade
    "920": (Board.BSE, "BJ"),
})


def board_of(code: str) -> tuple[Board, str] | None:
    """(board, exchange) of a six-digit stock code, or None for a code of no known board."""
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return None
    return PREFIXES.get(code[:3])


def check_listing(security: Security) -> None:
    """Raise ``ValueError`` when the listing's board or exchange contradicts its code."""
    found = board_of(security.code)
    if found is None:
        raise ValueError(f"{security.code} is on no board this system knows (A shares only: "
                         f"{', '.join(sorted(PREFIXES))})")
    board, exchange = found
    if (security.board, security.exchange) != (board, exchange):
        raise ValueError(f"{security.code} is a {board.value} code on {exchange}, but the "
                         f"listing says {security.board.value} on {security.exchange}")


@dataclass(frozen=True, slots=True)
class BoardRules:
    """A board's limit-order quantities and daily price limits.

    A valid order quantity is ``minimum + k * step`` (k >= 0) up to ``maximum``. A holding's
    remainder that cannot be sold that way (under a lot on lot boards, under the minimum on
    step-1 boards) is sold whole, in one order.
    """

    minimum: int
    step: int
    maximum: int
    #: daily limit, a fraction of the previous close
    limit_pct: Decimal
    #: the same under risk warning (ST, *ST)
    risk_warning_pct: Decimal
    #: trading days from listing without a price limit (IPOs)
    unlimited_days: int


DEFAULT_BOARDS: Mapping[Board, BoardRules] = MappingProxyType({
    # ST/*ST on the main boards: 10% since 2025-07-07 (was 5%; backoffice.main_risk_warning_limit)
    Board.MAIN: BoardRules(100, 100, 1_000_000, Decimal("0.10"), Decimal("0.10"), 5),
    Board.CHINEXT: BoardRules(100, 100, 300_000, Decimal("0.20"), Decimal("0.20"), 5),
    Board.STAR: BoardRules(200, 1, 100_000, Decimal("0.20"), Decimal("0.20"), 5),
    Board.BSE: BoardRules(100, 1, 1_000_000, Decimal("0.30"), Decimal("0.30"), 1),
})
