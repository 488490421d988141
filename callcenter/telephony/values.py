"""Value checks for everything bound for Asterisk (AMI headers, AGI arguments, variables).

Asterisk's AMI and AGI are line protocols: a CR or LF inside a value ends the line and lets the
rest of the value be read as a new header, action or command. So values are *refused*, never
escaped (DESIGN.md §4). Error messages name what was refused and the code point, but never echo
the value: it may be a password a caller typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from callcenter.errors import UnsafeValueError

__all__ = ["check_agi_arg", "check_mapping", "check_phone_number", "check_value",
           "is_forbidden_char", "phone_number_or_empty"]

#: A phone number as the engine uses one (a caller ID, a call-back's number, a number dialled out):
#: ASCII digits with an optional leading +, 2 to 20 digits. Nothing else, so it can never carry
#: dial syntax (``&`` adds a leg to ``Dial()``, ``,`` options, ``@``/``/`` a context or technology).
PHONE_NUMBER = re.compile(r"\+?[0-9]{2,20}")

# U+2028/U+2029 are line breaks to str.splitlines() and to some log and JSON tooling.
_LINE_SEPARATORS = frozenset("\u2028\u2029")
# AGI arguments go out as "..." and res_agi's parse_args() treats \ as an escape and " as a quote
# toggle: either could move an argument boundary.
_AGI_QUOTING = re.compile('["\\\\]')
#: every char refused bound for Asterisk, as one class: C0 controls, DEL, C1 controls, the
#: line/paragraph separators and lone surrogates (they cannot be encoded; refusing beats a late
#: UnicodeError). A value is checked in one C-level scan (on every AGI command and AMI action:
#: per-char Python was a measurable part of a call's cost)
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def is_forbidden_char(char: str) -> bool:
    """True for C0 controls, DEL, C1 controls, line/paragraph separators and lone surrogates."""
    return _FORBIDDEN.fullmatch(char) is not None


def _describe(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return f"an unpaired surrogate (U+{code:04X})"
    if char in _LINE_SEPARATORS:
        return f"a line separator (U+{code:04X})"
    return f"a control character (U+{code:04X})"


def check_value(value: str, *, what: str) -> str:
    """Return ``value`` unchanged, or raise ``UnsafeValueError`` naming ``what`` and the char."""
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise UnsafeValueError(f"{what} contains {_describe(found.group())}; refused")
    return value


def check_agi_arg(value: str, *, what: str = "AGI argument") -> str:
    """Like ``check_value``, and also refuse ``"`` and ``\\`` (AGI quoting syntax)."""
    check_value(value, what=what)
    found = _AGI_QUOTING.search(value)
    if found is not None:
        raise UnsafeValueError(
            f"{what} contains a quote or backslash (U+{ord(found.group()):04X}); refused"
        )
    return value


def check_mapping(values: Mapping[str, str], what: str) -> dict[str, str]:
    """Check every key and value of ``values``; return them as a new dict."""
    checked: dict[str, str] = {}
    for key, value in values.items():
        check_value(key, what=f"{what} key")
        checked[key] = check_value(value, what=f"{what} {key!r}")
    return checked


def check_phone_number(value: str, *, what: str = "phone number") -> str:
    """Return ``value`` if it is a phone number (``PHONE_NUMBER``), else raise
    ``UnsafeValueError`` naming ``what`` (never the value: it came from a peer)."""
    if not PHONE_NUMBER.fullmatch(value):
        raise UnsafeValueError(f"{what} is not a phone number (digits with an optional leading +,"
                               " 2 to 20 digits); refused")
    return value


def phone_number_or_empty(value: str | None) -> str:
    """``value`` if it is a phone number, else ``""`` (unknown: no call-back, nothing dialled)."""
    return value if value and PHONE_NUMBER.fullmatch(value) else ""
