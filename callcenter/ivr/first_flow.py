"""The first flow: welcome, collect digits (barge-in), read them back, goodbye.

It proves the whole path (Asterisk -> FastAGI -> engine -> call record) and is the flow the IVR
benchmark drives; ``asterisk_conf/extensions.conf`` holds the same flow in plain dialplan
(extension 9501) as the baseline. The real hotline menus replace it in the flow language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from callcenter.ivr import speech
from callcenter.telephony.agi import Channel

MAX_DIGITS = 20
INTER_DIGIT_TIMEOUT_MS = 5000
DIGITS = "0123456789*#"

Notes = Callable[[str, Mapping[str, str]], None]


def prompt(lang: str, ident: str) -> str:
    return f"callcenter/{lang}/{ident}"


async def collect_digits(channel: Channel, first: str | None, max_digits: int,
                         timeout_ms: int) -> str:
    """Digits until '#', ``max_digits`` or a silence of ``timeout_ms``; '#' is not returned."""
    digits = ""
    pressed = first
    while len(digits) < max_digits:
        if pressed is None:
            pressed = await channel.wait_for_digit(timeout_ms)
            if pressed is None:
                break
        if pressed == "#":
            break
        digits += pressed
        pressed = None
    return digits


async def first_flow(channel: Channel, note: Notes, lang: str = "zh") -> str:
    """Run the flow on an answered-or-not channel; return the digits received."""
    await channel.answer()
    note("ivr.start", {"flow": "first", "lang": lang})
    note("ivr.play", {"prompts": "welcome enter_digits"})
    first = await channel.play([prompt(lang, "welcome"), prompt(lang, "enter_digits")],
                               escape_digits=DIGITS)
    digits = await collect_digits(channel, first, MAX_DIGITS, INTER_DIGIT_TIMEOUT_MS)
    note("ivr.digits", {"digits": digits, "count": str(len(digits))})
    if digits:
        names = [prompt(lang, "you_entered")]
        names += [prompt(lang, p) for p in speech.say_digits(digits, speech.check_lang(lang))]
        note("ivr.play", {"prompts": "you_entered digits"})
        await channel.play(names, escape_digits="")
    else:
        note("ivr.play", {"prompts": "no_input"})
        await channel.play([prompt(lang, "no_input")], escape_digits="")
    note("ivr.play", {"prompts": "goodbye"})
    await channel.play([prompt(lang, "goodbye")], escape_digits="")
    note("ivr.end", {"outcome": "completed"})
    # Returning ends the AGI session; the dialplan's Hangup() then clears the call with
    # cause 16 (AGI's own HANGUP command leaves the cause unset).
    return digits
