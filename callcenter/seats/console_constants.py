"""The agent console's protocol constants, written as an ES module from the engine's own models.

The console's front end (``agent_console/``, plain ES modules served as they are: no build step
at run time) needs the protocol's vocabulary: seat states, the reasons an agent may pick, the
dispositions, tiers, roles, error codes and the patterns the engine checks fields against. Copied
by hand they drift from the Python side, so this module *generates* them into
``agent_console/js/protocol.js``. The generated file is committed; a unit test
(``tests/unit/test_console_constants.py``) fails when it differs from what ``render()`` writes.

Run ``python -m callcenter.seats.console_constants`` after changing any source below (``--check``
only compares). Sources:

- ``seats/protocol.py``: ``PROTOCOL_VERSION``, ``Role``, ``ErrorCode``, the patterns (``AGENT_ID``,
  ``FAX_NUMBER``, ``HHMM``, ``CONTACT_ID`` and the field patterns of the request models), the
  dispositions (``WrapUp.disposition``) and target kinds (``Target.kind``)
- ``acd/seat.py``: ``SeatState``; the reasons an agent may pick are ``DEFAULT_REASONS`` less the
  machine's own (``IMPLIED_REASONS``, ``SYSTEM_REASONS``), the rule of ``backend.AGENT_REASONS``
- ``broker/interface.py``: ``Tier``
- ``telephony/values.py``: ``PHONE_NUMBER``; ``channels/secretary.py``: the notices' fax number
  and the price-alert kinds

Patterns are emitted as JavaScript regular expressions only when they mean the same thing in both
languages: ASCII classes spelled out (``[0-9]``, never ``\\d``, which is Unicode in Python and in
pydantic's regex engine), no inline flags, named groups or lookarounds. Anything else raises
``ValueError`` here rather than silently meaning something else in the browser.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import sys
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from callcenter.acd import targets
from callcenter.acd.seat import DEFAULT_REASONS, IMPLIED_REASONS, SYSTEM_REASONS, SeatState
from callcenter.broker.interface import Tier
from callcenter.channels import secretary
from callcenter.seats import protocol
from callcenter.telephony.values import PHONE_NUMBER

__all__ = ["OUTPUT", "agent_reasons", "js_regex", "main", "render"]

#: where the generated module lives (the console's static files)
OUTPUT = Path(__file__).resolve().parents[2] / "agent_console" / "js" / "protocol.js"
#: the command that regenerates it, for messages
COMMAND = "python -m callcenter.seats.console_constants"

_WIDTH = 100

#: Python regex syntax that means something else (or nothing) in a JavaScript RegExp
_NOT_PORTABLE = re.compile(
    r"\\[AZzbBdDsSwWuUNx]"   # Unicode-aware classes, anchors, escapes spelled differently
    r"|\(\?(?!:)"            # inline flags, named groups, lookarounds, comments
    r"|[*+?}]\+",            # possessive quantifiers
)


def agent_reasons() -> list[str]:
    """The not-ready reasons an agent may pick (``seats/backend.py`` ``AGENT_REASONS``): the
    seat's defaults less those the machine and the engine give by themselves."""
    machine = set(IMPLIED_REASONS.values()) | set(SYSTEM_REASONS)
    return [reason for reason in DEFAULT_REASONS if reason not in machine]


def js_regex(pattern: str, *, anchor: bool = False) -> str:
    """``pattern`` (Python/pydantic syntax) as a JavaScript regex literal with the same meaning.

    ``anchor`` wraps a pattern used with ``fullmatch`` in ``^...$``. Raises ``ValueError`` for
    syntax that is not portable (see the module's docstring)."""
    re.compile(pattern)  # a broken pattern fails here, with Python's own message
    bad = _NOT_PORTABLE.search(pattern)
    if bad:
        raise ValueError(f"pattern {pattern!r}: {bad.group()!r} does not mean the same in "
                         "JavaScript; spell it portably (e.g. [0-9] for \\d)")
    if "\n" in pattern or "\r" in pattern:
        raise ValueError(f"pattern {pattern!r}: a line break cannot go into a regex literal")
    if anchor:
        pattern = f"^(?:{pattern})$" if "|" in pattern else f"^{pattern}$"
    return "/" + re.sub(r"(?<!\\)/", r"\\/", pattern) + "/"


def _literal_values(model: type[BaseModel], field: str) -> tuple[str, ...]:
    """The allowed values of a ``Literal[...]`` field of a pydantic model."""
    annotation = model.model_fields[field].annotation
    values = typing.get_args(annotation)
    if typing.get_origin(annotation) is not typing.Literal or not all(
        isinstance(v, str) for v in values
    ):
        raise TypeError(f"{model.__name__}.{field} is not a Literal of strings")
    return typing.cast(tuple[str, ...], values)


def _field_pattern(model: type[BaseModel], field: str) -> str:
    """The ``pattern`` a pydantic model's string field is checked against."""
    schema = model.model_json_schema()["properties"][field]
    pattern = schema.get("pattern")
    if not isinstance(pattern, str):
        raise TypeError(f"{model.__name__}.{field} has no pattern")
    return pattern


def _values(members: Iterable[enum.Enum]) -> list[str]:
    return [str(member.value) for member in members]


@dataclass(frozen=True)
class _Choice:
    """A list of allowed words: a frozen array and its JSDoc type (a union of the words)."""

    name: str
    type_name: str
    values: Sequence[str]
    doc: str


@dataclass(frozen=True)
class _Pattern:
    name: str
    literal: str
    doc: str


def _choices() -> list[_Choice]:
    return [
        _Choice("SEAT_STATES", "SeatState", _values(SeatState),
                "An agent seat's states (acd/seat.py SeatState), in the machine's order."),
        _Choice("AGENT_REASONS", "AgentReason", agent_reasons(),
                "The not-ready reasons an agent may pick (seats/backend.py AGENT_REASONS: "
                "state.py DEFAULT_REASONS less IMPLIED_REASONS and SYSTEM_REASONS). The login "
                "reply's `reasons` is the authority; this is the page's fallback."),
        _Choice("SEAT_REASONS", "SeatReason",
                [*DEFAULT_REASONS, *(r for r in SYSTEM_REASONS if r not in DEFAULT_REASONS)],
                "Every reason a seat may show (state.py DEFAULT_REASONS and SYSTEM_REASONS)."),
        _Choice("DISPOSITIONS", "Disposition", _literal_values(protocol.WrapUp, "disposition"),
                "A wrap-up's outcomes (seats/protocol.py WrapUp.disposition)."),
        _Choice("TIERS", "Tier", _values(Tier),
                "The customers' tiers (broker/interface.py Tier)."),
        _Choice("ROLES", "Role", _values(protocol.Role),
                "Who is logged in (seats/protocol.py Role)."),
        _Choice("TARGET_KINDS", "TargetKind", _literal_values(targets.Target, "kind"),
                "What a transfer, consult or conference goes to (acd/targets.py Target.kind)."),
        _Choice("ERROR_CODES", "ErrorCode", _values(protocol.ErrorCode),
                "A refused request's `code` (seats/protocol.py ErrorCode)."),
        _Choice("PRICE_KINDS", "PriceKind",
                _values([secretary.Kind.PRICE_ABOVE, secretary.Kind.PRICE_BELOW]),
                "Subscriptions that need a stock code and a price level "
                "(channels/secretary.py Kind)."),
    ]


def _patterns() -> list[_Pattern]:
    about = protocol.SendMessage
    return [
        _Pattern("AGENT_ID", js_regex(targets.AGENT_ID),
                 "An agent id, queue name or agent target (acd/targets.py AGENT_ID)."),
        _Pattern("CONTACT_ID", js_regex(protocol.CONTACT_ID),
                 "An inbound contact's id (seats/protocol.py CONTACT_ID)."),
        _Pattern("PHONE_NUMBER", js_regex(PHONE_NUMBER.pattern, anchor=True),
                 "The engine's one phone-number rule, for numbers it dials "
                 "(telephony/values.py PHONE_NUMBER)."),
        _Pattern("ACCOUNT", js_regex(_field_pattern(about, "account")),
                 "A customer's account, digits (seats/protocol.py, e.g. SendMessage.account). "
                 "Matches \"\": the field is optional."),
        _Pattern("FAX_NUMBER", js_regex(protocol.FAX_NUMBER),
                 "A fax number the fax server dials (seats/protocol.py FAX_NUMBER). "
                 "Matches \"\": the field is optional."),
        _Pattern("NOTICE_FAX", js_regex(secretary._FAX.pattern),
                 "A fax number for the financial secretary's notices, digits only "
                 "(channels/secretary.py)."),
        _Pattern("STOCK_CODE", js_regex(_field_pattern(protocol.Subscribe, "code")),
                 "A stock code (seats/protocol.py Subscribe.code). Matches \"\"."),
        _Pattern("PRICE", js_regex(_field_pattern(protocol.Subscribe, "price")),
                 "A price level, sent as text, never a float (seats/protocol.py "
                 "Subscribe.price). Matches \"\"; the engine also wants it above zero."),
        _Pattern("HHMM", js_regex(protocol.HHMM),
                 "A time of day, HH:MM (seats/protocol.py HHMM). Matches \"\"."),
    ]


def _js_array(head: str, values: Sequence[str], tail: str) -> list[str]:
    """``head[...]tail`` on one line, or one value a line when that is too wide."""
    items = [json.dumps(v) for v in values]
    line = f"{head}[{', '.join(items)}]{tail}"
    if len(line) <= _WIDTH:
        return [line]
    return [f"{head}[", *(f"  {item}," for item in items), f"]{tail}"]


def _comment(text: str, tag: str = "") -> list[str]:
    """A JSDoc comment: ``text`` wrapped, then ``tag`` (say ``@type {...}``) on its own line."""
    lines: list[str] = []
    current = "/**"
    for word in text.split():
        if len(current) + 1 + len(word) > _WIDTH - 3:
            lines.append(current)
            current = " *"
        current += " " + word
    if tag:
        lines += [current, f" * {tag}", " */"]
    else:
        lines.append(current + " */")
    return lines


_HEADER = f"""\
// The console protocol's constants, GENERATED from the engine's Python models by
// callcenter/seats/console_constants.py: do not edit. After changing a source named below, run
//   .venv/bin/{COMMAND}
// (tests/unit/test_console_constants.py fails while this file is out of date).
//
// Lists are frozen arrays with a JSDoc union type of their words; check a value from the server
// with isOneOf() before treating it as one. Patterns are anchored JavaScript regular expressions
// meaning what the engine's do; those of optional fields match "" too, as on the engine.
"""

_HELPERS = """\
/**
 * Whether `value` is one of `list`'s words (a type guard for the lists above).
 * @template {string} T
 * @param {readonly T[]} list
 * @param {unknown} value
 * @returns {value is T}
 */
export function isOneOf(list, value) {
  return typeof value === "string" && /** @type {readonly string[]} */ (list).includes(value);
}
"""


def render() -> str:
    """The text of ``agent_console/js/protocol.js``."""
    out = [_HEADER]
    out += _comment("The protocol version every message carries (seats/protocol.py).")
    out.append(f"export const PROTOCOL_VERSION = {protocol.PROTOCOL_VERSION};")
    out.append("")
    for choice in _choices():
        union = " | ".join(json.dumps(v) for v in choice.values)
        typedef = f"/** @typedef {{{union}}} {choice.type_name} */"
        if len(typedef) > _WIDTH:
            typedef = "\n".join(["/**", " * @typedef {(",
                                 *(f" *   | {json.dumps(v)}" for v in choice.values),
                                 f" * )}} {choice.type_name}", " */"])
        out.append(typedef)
        out += _comment(choice.doc, f"@type {{readonly {choice.type_name}[]}}")
        out += _js_array(f"export const {choice.name} = Object.freeze(", choice.values, ");")
        out.append("")
    for pattern in _patterns():
        out += _comment(pattern.doc)
        out.append(f"export const {pattern.name} = {pattern.literal};")
        out.append("")
    out.append(_HELPERS)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the generated module; 1 when a check finds drift."""
    parser = argparse.ArgumentParser(
        prog="python -m callcenter.seats.console_constants",
        description="Generate agent_console/js/protocol.js from the engine's Python models.",
    )
    parser.add_argument("--check", action="store_true",
                        help="only compare: exit 1 if the file is not what would be written")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    output: Path = args.output
    text = render()
    current = output.read_text(encoding="utf-8") if output.is_file() else None
    if args.check:
        if current != text:
            print(f"{output}: out of date; run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
