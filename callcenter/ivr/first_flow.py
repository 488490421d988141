"""The first flow: welcome, collect digits (barge-in), read them back, goodbye.

It proves the whole path (Asterisk -> FastAGI -> engine -> call record) and is the flow the IVR
benchmark drives; ``asterisk_conf/extensions.conf`` holds the same flow in plain dialplan
(extension 9501) as the baseline. The real hotline menus replace it in the flow language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from callcenter.ivr import speech
from callcenter.ivr.interpreter import Ask
from callcenter.ivr.runner import AgiFlowIO, KeysAhead
from callcenter.telephony.agi import Channel

MAX_DIGITS = 20
INTER_DIGIT_TIMEOUT_MS = 5000

Notes = Callable[[str, Mapping[str, str]], None]


def prompt(lang: str, ident: str) -> str:
    return f"callcenter/{lang}/{ident}"


def question(lang: str) -> Ask:
    """Up to ``MAX_DIGITS`` keys, ``#`` ends, a silence of 5 s ends: native ``Read()``'s terms."""
    return Ask((f"{lang}/welcome", f"{lang}/enter_digits"), MAX_DIGITS,
               INTER_DIGIT_TIMEOUT_MS / 1000, "#", "")


async def first_flow(channel: Channel, note: Notes, lang: str = "zh",
                     typed: KeysAhead | None = None) -> str:
    """Run the flow on an answered-or-not channel; return the digits received. The digits are
    collected as the hotline collects an answer (``AgiFlowIO``: one ``GET DATA``, the key tap's
    keys), so a benchmark measures what callers get."""
    await channel.answer()
    note("ivr.start", {"flow": "first", "lang": lang})
    note("ivr.play", {"prompts": "welcome enter_digits"})
    digits = (await AgiFlowIO(channel, "", typed).ask(question(lang))).text
    note("ivr.digits", {"digits": digits, "count": str(len(digits))})
    if digits:
        names = [prompt(lang, "you_entered")]
        names += [prompt(lang, p) for p in speech.say_digits(digits, speech.check_lang(lang))]
        note("ivr.play", {"prompts": "you_entered digits"})
    else:
        names = [prompt(lang, "no_input")]
        note("ivr.play", {"prompts": "no_input"})
    note("ivr.play", {"prompts": "goodbye"})
    # nothing interrupts the readback or the goodbye: one Playback, one round trip
    await channel.play([*names, prompt(lang, "goodbye")], escape_digits="")
    note("ivr.end", {"outcome": "completed"})
    # Returning ends the AGI session; the dialplan's Hangup() then clears the call with
    # cause 16 (AGI's own HANGUP command leaves the cause unset).
    return digits
