"""Dial rules: which numbers the engine may dial out, for whom. The toll-fraud guard.

Sans-IO and pure: ``check(number, role, purpose, rules)`` returns the number to dial or raises
``DialRuleError`` with a ``Refusal`` reason. Every number the engine sends out (call-backs,
click-to-call, blind transfers, consultations, conferences) passes here first, with the role of
the agent who asked (``acd/control.py``, ``acd/service.py``); a refused number never reaches
Asterisk. The dialplan's ``[outbound]`` checks again that a number is digits only.

The numbering is mainland China's (docs/phones-trunks.md):

- syntax: ASCII digits with at most one leading ``+``; nothing else (no ``*``, ``#``, letters,
  spaces, full-width or other Unicode digits);
- ``+86`` / ``0086`` are taken off: a domestic number in national form (``+86 138...`` ->
  ``138...``, ``+86 10 ...`` -> ``010...``); any other ``+`` / ``00`` is international,
  dialled as ``00`` + country code + number;
- national kinds: ``mobile`` 1[3-9] and 9 digits; ``landline`` 0 + area code (10, 2X: 8-digit
  subscriber; 3 digits: 7 or 8) with a subscriber number starting 2-8; ``freephone`` 400/800 +
  7 digits; ``listed``: the site's own ``allowed_patterns``. Short service codes (95xxx, 96xxx,
  10xxx, 11x, 12xxx) and anything else are refused unless listed;
- ``blocked_prefixes`` (premium-rate, satellite, SMS codes) are refused for everyone first;
- international calls need the ``international`` switch, a role whose kinds include it, a
  country in ``countries`` and none in ``blocked_countries``;
- per role: the kind must be in that role's list (``DialRules.agent`` / ``supervisor`` /
  ``admin``).

The result is always digits only (the national form, or ``00`` + the international number),
and ``check`` of a result gives the result back (a number stored once checked may be checked
again at dial time).
"""

from __future__ import annotations

import enum
import functools
import logging
import re
from typing import Final, Literal

from callcenter.errors import DialRuleError
from callcenter.sip.settings import DialRules

__all__ = ["DEFAULT_RULES", "Purpose", "Refusal", "check", "classify", "dialable_or_empty",
           "mask"]

log = logging.getLogger(__name__)

Purpose = Literal["callback", "click_to_call", "transfer", "consult", "conference"]

DEFAULT_RULES: Final = DialRules()

#: the longest input looked at (a number, formatted or not, is far shorter)
_MAX_INPUT: Final = 24
_SYNTAX: Final = re.compile(r"\+?[0-9]+", re.ASCII)
_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE: Final = re.compile(r"0(?:10|2[0-9])[2-8][0-9]{7}|0[3-9][0-9]{2}[2-8][0-9]{6,7}")
_FREEPHONE: Final = re.compile(r"(?:400|800)[0-9]{7}")
_LOCAL: Final = re.compile(r"[2-8][0-9]{6,7}")
#: short service codes: 95xxx national, 96xxx local, 10xxx carriers, 11x/12x emergency and
#: public services
_SHORT: Final = re.compile(r"9[56][0-9]{3,6}|10[0-9]{3,4}|1[12][0-9]{1,4}")


class Refusal(enum.StrEnum):
    SYNTAX = "syntax"                # not digits with an optional leading +
    LENGTH = "length"                # too short or too long
    PREMIUM = "premium"              # a blocked prefix or country: never, for anyone
    SHORT_CODE = "short_code"        # a short service number the site has not listed
    NOT_DIALABLE = "not_dialable"    # no mainland mobile, landline (with area code), 400/800
    INTERNATIONAL = "international"  # abroad: switched off, or not to that country
    ROLE = "role"                    # the number is fine, but not for this role


def mask(number: str) -> str:
    """A number for a log line: its first four characters and its length, the rest hidden
    (enough to see where a fraud attempt went, not whose number it was)."""
    shown = "".join(c if c.isascii() and (c.isdigit() or c == "+") else "?"
                    for c in number[:4])
    return f"{shown}{'*' * max(0, min(len(number), _MAX_INPUT) - 4)} ({len(number)} chars)"


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    """A dialplan-style pattern (``_9555X``, ``_0755[2-8]XXXXXXX``, ``95551``) as a regex.
    The syntax was checked by the settings (``DialRules.allowed_patterns``)."""
    if not pattern.startswith("_"):
        return re.compile(re.escape(pattern))
    classes = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": "[0-9]+"}
    # a digit or a [range] of digits stands for itself
    out = [classes.get(part, part) for part in re.findall(r"\[[0-9-]+\]|.", pattern[1:])]
    return re.compile("".join(out))


def _refuse(reason: Refusal, message: str) -> DialRuleError:
    return DialRuleError(reason.value, message)


def _national(digits: str, rules: DialRules) -> tuple[str, str]:
    """(kind, national number) of a domestic number, or raise."""
    if not rules.min_length <= len(digits) <= rules.max_length:
        raise _refuse(Refusal.LENGTH, f"a domestic number has {rules.min_length} to"
                                      f" {rules.max_length} digits")
    for prefix in rules.blocked_prefixes:
        if digits.startswith(prefix):
            raise _refuse(Refusal.PREMIUM, "premium-rate or special-service numbers"
                                           f" ({prefix}...) are never dialled")
    local = _LOCAL.fullmatch(digits) is not None
    if local and rules.local_area_code is not None:
        digits = rules.local_area_code + digits
        if len(digits) > rules.max_length:
            raise _refuse(Refusal.LENGTH, f"a domestic number has at most {rules.max_length}"
                                          " digits")
    if _MOBILE.fullmatch(digits):
        return "mobile", digits
    if _LANDLINE.fullmatch(digits):
        return "landline", digits
    if _FREEPHONE.fullmatch(digits):
        return "freephone", digits
    if any(_pattern(p).fullmatch(digits) for p in rules.allowed_patterns):
        return "listed", digits
    if local:
        raise _refuse(Refusal.NOT_DIALABLE, "a landline number needs its area code"
                                            " (e.g. 021 or 0755)")
    if _SHORT.fullmatch(digits):
        raise _refuse(Refusal.SHORT_CODE, "short service numbers (95xxx, 96xxx, 10xxx, 11x,"
                                          " 12xxx) are not dialled unless the site lists them")
    raise _refuse(Refusal.NOT_DIALABLE, "not a mainland mobile (1[3-9] + 9 digits), a landline"
                                        " with its area code, or a 400/800 number")


def _international(digits: str, rules: DialRules) -> tuple[str, str]:
    """(kind, dial string) of an international number (``digits``: after + or 00)."""
    if not 7 <= len(digits) <= rules.max_international_digits:
        raise _refuse(Refusal.LENGTH, "an international number has 7 to"
                                      f" {rules.max_international_digits} digits after 00")
    if digits.startswith("0"):
        raise _refuse(Refusal.SYNTAX, "no country code starts with 0")
    for code in rules.blocked_countries:
        if digits.startswith(code):
            raise _refuse(Refusal.PREMIUM, f"country code +{code} (satellite, premium-rate or"
                                           " international networks) is never dialled")
    if not rules.international:
        raise _refuse(Refusal.INTERNATIONAL, "international calls are switched off")
    if not any(digits.startswith(code) for code in rules.countries):
        where = ", ".join(f"+{code}" for code in rules.countries) or "no country"
        raise _refuse(Refusal.INTERNATIONAL, f"international calls go only to {where}")
    return "international", "00" + digits


def classify(number: str, rules: DialRules = DEFAULT_RULES) -> tuple[str, str]:
    """(kind, dial string) of ``number`` whoever dials it, or ``DialRuleError``."""
    if not _SYNTAX.fullmatch(number):
        raise _refuse(Refusal.SYNTAX, "a number is digits with an optional leading +"
                                      " (no *, #, letters or spaces)")
    if len(number) > _MAX_INPUT:
        raise _refuse(Refusal.LENGTH, "the number is too long")
    if number.startswith("+"):
        international = number[1:]
    elif number.startswith("00"):
        international = number[2:]
    else:
        return _national(number, rules)
    if international.startswith("86"):
        rest = international[2:]
        if rest.startswith("0"):
            raise _refuse(Refusal.SYNTAX, "after +86 comes the area code without its 0")
        # 10 is Beijing's area code; any other 1... is a mobile or service number, not an area
        domestic = (rest.startswith("1") and not rest.startswith("10")) \
            or _FREEPHONE.fullmatch(rest) is not None
        return _national(rest if domestic else "0" + rest, rules)
    return _international(international, rules)


def check(number: str, role: str, purpose: Purpose,
          rules: DialRules = DEFAULT_RULES) -> str:
    """The dial string for ``number`` when ``role`` dials it for ``purpose``, or
    ``DialRuleError`` (its message names the rule, never the number)."""
    kind, dial = classify(number, rules)
    allowed = rules.kinds(role)
    if kind not in allowed:
        what = {"mobile": "mobile numbers", "landline": "landline numbers",
                "freephone": "400/800 numbers", "listed": "the site's listed numbers",
                "international": "international numbers"}[kind]
        raise _refuse(Refusal.ROLE, f"{role or 'this role'} may not dial {what}"
                                    f" ({purpose.replace('_', '-')})")
    return dial


def dialable_or_empty(number: str | None, role: str, purpose: Purpose,
                      rules: DialRules = DEFAULT_RULES) -> str:
    """``check``'s dial string, or ``""`` when the rules refuse ``number`` (logged, masked):
    for numbers nobody typed, such as a caller ID booked for a call-back. ``""`` is a number
    the engine never dials."""
    if not number:
        return ""
    try:
        return check(number, role, purpose, rules)
    except DialRuleError as exc:
        log.warning("dial refused (%s): %s %s for a %s: %s", exc.reason, role, mask(number),
                    purpose, exc.message)
        return ""
