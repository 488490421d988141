"""Speaking dynamic values: numbers, money, dates and codes as lists of prompt ids.

Sans-IO: every ``say_*`` function turns a value into the ids of small pre-rendered fragments
(``num/3``, ``num/10000``, ``word/yuan``...) that the IVR plays back to back. Ids are the same in
both languages; each language uses the subset it needs, and :func:`fragment_texts` gives every id
a text in both, because the prompt builder renders every id in every language.

Id scheme: ``num/<n>`` are cardinal words (0-19, the tens 20-90) and scale words for powers of
ten (``num/100`` is 百 / "hundred", ``num/10000`` is 万); ``num/liang`` is 两; ``digit/<d>`` reads
a digit of a code (1 is 幺 in Mandarin), plus ``digit/star`` and ``digit/hash``; ``word/*``,
``date/*``, ``time/*``, ``month/<m>`` and ``ordinal/<d>`` are the rest; ``stock/<code>`` names a
security; :data:`PAUSE` is a short silence played between read-back fields.

Readback follows speech (docs/speech.md, "Readback rules"): yuan without trailing zeros
(五万元, 十二点三元), 两 before a measure word and at the head of 百/千/万/亿 (两元, 两股,
两千), ranges with 至 (十元至十一元).

Money and prices are ``Decimal``, quantities ``int``: a float raises ``TypeError``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Literal

Lang = Literal["zh", "en"]

#: beyond this an amount is no longer something a caller should hear read out
MAX_INTEGER = 10**15 - 1

_ZH_DIGITS = "零一二三四五六七八九"
_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_EN_ORDINAL_ONES = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()
_EN_ORDINAL_TENS = {20: "twentieth", 30: "thirtieth"}

#: zh and en scale words; en never says 万 or 亿 and zh never says million, but every id needs
#: both texts
_SCALES = {
    100: ("百", "hundred"),
    1000: ("千", "thousand"),
    10**4: ("万", "ten thousand"),
    10**6: ("百万", "million"),
    10**8: ("亿", "hundred million"),
    10**9: ("十亿", "billion"),
    10**12: ("万亿", "trillion"),
}
#: a short silence between the fields of a readback (after a value, before the next label).
#: Fragments are rendered without the synthesizer's silence at their ends, so a number is said
#: in one breath, and this puts the break where a person takes it (:func:`fragments_yaml`
#: declares both for the prompt builder)
PAUSE = "pause/short"
PAUSE_MS = 250

_EN_GROUPS = ((10**12, "num/1000000000000"), (10**9, "num/1000000000"), (10**6, "num/1000000"),
              (1000, "num/1000"))

_WORDS = {
    "word/point": ("点", "point"),
    "word/minus": ("负", "minus"),
    "word/yuan": ("元", "yuan"),
    "word/share": ("股", "share"),
    "word/shares": ("股", "shares"),
    "word/percent": ("百分之", "percent"),
    "word/up": ("上涨", "up"),
    "word/down": ("下跌", "down"),
    "word/unchanged": ("平", "unchanged"),
    "word/rise": ("涨", "up"),
    "word/fall": ("跌", "down"),
    "word/to": ("至", "to"),
    "word/times": ("次", "times"),
    "date/year": ("年", "year"),
    "date/month": ("月", "month"),
    "date/day": ("日", "day"),
    "time/hour": ("点", "o'clock"),
    "time/minute": ("分", "minutes"),
    "time/sharp": ("整", "o'clock"),
    "time/oh": ("零", "oh"),
    "time/am": ("上午", "A M"),
    "time/pm": ("下午", "P M"),
}


def _zh_number_text(n: int) -> str:
    """Plain Chinese numeral for 0..99 (texts of en-only ids)."""
    if n < 10:
        return _ZH_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _ZH_DIGITS[tens]) + "十" + (_ZH_DIGITS[ones] if ones else "")


def _en_ordinal_text(n: int) -> str:
    if n < 20:
        return _EN_ORDINAL_ONES[n]
    tens, ones = divmod(n, 10)
    if not ones:
        return _EN_ORDINAL_TENS[n]
    return f"{_EN_TENS[tens - 2]} {_EN_ORDINAL_ONES[ones]}"


def _build_fragments() -> dict[str, dict[str, str]]:
    texts: dict[str, dict[str, str]] = {}
    for n in [*range(20), *range(20, 100, 10)]:
        en = _EN_ONES[n] if n < 20 else _EN_TENS[n // 10 - 2]
        texts[f"num/{n}"] = {"zh": _zh_number_text(n), "en": en}
    texts["num/liang"] = {"zh": "两", "en": "two"}
    for value, (zh, en) in _SCALES.items():
        texts[f"num/{value}"] = {"zh": zh, "en": en}
    for d in range(10):
        # 幺 for 1: 一 and 七 are easily confused on a narrowband line
        texts[f"digit/{d}"] = {"zh": "幺" if d == 1 else _ZH_DIGITS[d], "en": _EN_ONES[d]}
    texts["digit/star"] = {"zh": "星号", "en": "star"}
    texts["digit/hash"] = {"zh": "井号", "en": "hash"}
    for ident, (zh, en) in _WORDS.items():
        texts[ident] = {"zh": zh, "en": en}
    for m in range(1, 13):
        texts[f"month/{m}"] = {"zh": _zh_number_text(m) + "月", "en": _EN_MONTHS[m - 1]}
    for d in range(1, 32):
        texts[f"ordinal/{d}"] = {"zh": _zh_number_text(d) + "日", "en": _en_ordinal_text(d)}
    texts[PAUSE] = {"zh": "，", "en": ","}  # rendered as silence; the text is for `flows try`
    return texts


_FRAGMENTS = _build_fragments()


def fragment_texts() -> dict[str, dict[str, str]]:
    """The zh and en text of every fragment id the ``say_*`` functions return."""
    return {ident: dict(texts) for ident, texts in _FRAGMENTS.items()}


# --- checks ---------------------------------------------------------------------------------


def check_lang(lang: str) -> Lang:
    """Narrow a language code (e.g. from a channel variable) to ``Lang``; ValueError otherwise."""
    if lang == "zh":
        return "zh"
    if lang == "en":
        return "en"
    raise ValueError(f"unknown language {lang!r}; expected 'zh' or 'en'")


def _check_int(n: object, what: str) -> int:
    # bool is an int subclass, but True shares is a bug, not a number
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    if abs(n) > MAX_INTEGER:
        raise ValueError(f"{what} {n} is too large to speak (limit {MAX_INTEGER})")
    return n


def _check_decimal(value: object, what: str) -> Decimal:
    # money is never float; int is accepted because it is exact
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    dec = Decimal(value)
    if not dec.is_finite():
        raise ValueError(f"{what} {dec} is not a finite number")
    if abs(dec) > MAX_INTEGER:
        raise ValueError(f"{what} {dec} is too large to speak (limit {MAX_INTEGER})")
    return dec


# --- integers -------------------------------------------------------------------------------


def _zh_below_10000(n: int, leading: bool) -> list[str]:
    """1..9999. ``leading``: first digits of the whole number, where 一十 is said 十."""
    out: list[str] = []
    pending_zero = False
    for unit in (1000, 100, 10, 1):
        digit = n // unit % 10
        if digit == 0:
            pending_zero = bool(out)  # only a zero between spoken digits is said
            continue
        if pending_zero:
            out.append("num/0")
            pending_zero = False
        first = leading and not out
        if unit == 10 and digit == 1 and first:
            out.append("num/10")
            continue
        # a number starting 两百/两千 is what people say; inside one, 一千二百 is the norm
        out.append("num/liang" if digit == 2 and unit >= 100 and first else f"num/{digit}")
        if unit > 1:
            out.append(f"num/{unit}")
    return out


def _zh_positive(n: int, leading: bool, counted: bool) -> list[str]:
    """1..MAX_INTEGER. ``counted``: followed by 万/亿 or a measure word, where 2 is 两."""
    if counted and n == 2:
        return ["num/liang"]
    for section in (10**8, 10**4):
        if n >= section:
            high, low = divmod(n, section)
            out = [*_zh_positive(high, leading, counted=True), f"num/{section}"]
            if low:
                # a gap before the next spoken digit is one 零 (一万零五百, 一亿零一万)
                if low < section // 10:
                    out.append("num/0")
                out += _zh_positive(low, leading=False, counted=False)
            return out
    return _zh_below_10000(n, leading)


def _en_below_1000(n: int) -> list[str]:
    out: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        out += [f"num/{hundreds}", "num/100"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        out.append(f"num/{tens * 10}")
        if ones:
            out.append(f"num/{ones}")
    elif rest:
        out.append(f"num/{rest}")
    return out


def _en_positive(n: int) -> list[str]:
    out: list[str] = []
    for scale, ident in _EN_GROUPS:
        high, n = divmod(n, scale)
        if high:
            out += [*_en_below_1000(high), ident]
    return out + _en_below_1000(n)


def _integer(n: int, lang: Lang, counted: bool = False) -> list[str]:
    if n == 0:
        return ["num/0"]
    sign = ["word/minus"] if n < 0 else []
    body = _zh_positive(abs(n), True, counted) if lang == "zh" else _en_positive(abs(n))
    return sign + body


def say_attempts(n: int, lang: Lang) -> list[str]:
    """Attempts left after a wrong password: 还可以尝试「两次」 in Mandarin (the prompt before
    it says 还可以尝试), "Tries left: two" in English."""
    words = say_integer(n, lang, counted=True)
    return [*words, "word/times"] if check_lang(lang) == "zh" else words


def say_integer(n: int, lang: Lang, counted: bool = False) -> list[str]:
    """一万零五百 / "ten thousand five hundred"; negative numbers start with 负 / "minus".
    ``counted``: a measure word follows (两位, 两分钟), so a lone 2 is 两."""
    return _integer(_check_int(n, "number"), check_lang(lang), counted)


# --- decimals and money ---------------------------------------------------------------------


def _quantize(value: Decimal, places: int | None) -> Decimal:
    if places is None:
        # as given, less trailing zeros; normalize() alone would turn 100 into 1E+2
        if value == value.to_integral_value():
            return value.quantize(Decimal(1))
        return value.normalize()
    if not 0 <= places <= 12:
        raise ValueError(f"places must be 0 to 12, not {places}")
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _decimal(value: Decimal, lang: Lang, places: int | None) -> list[str]:
    value = _quantize(value, places)
    sign = ["word/minus"] if value < 0 else []  # -0.00 is plain zero
    text = f"{abs(value):f}"
    whole, _, fraction = text.partition(".")
    out = sign + _integer(int(whole), lang)
    if fraction:
        # after the point digits are read one by one, 一 not 幺 (十二点一)
        out += ["word/point", *(f"num/{d}" for d in fraction)]
    return out


def say_decimal(value: Decimal, lang: Lang, places: int | None = None) -> list[str]:
    """12.34 → 十二点三四, trailing zeros dropped; ``places`` rounds half-up and keeps them
    (12.30 → 十二点三零)."""
    return _decimal(_check_decimal(value, "value"), check_lang(lang), places)


def _yuan(value: Decimal, lang: Lang, places: int | None) -> list[str]:
    """Money as people say it: rounded half-up to ``places``, then without trailing zeros. A whole
    amount counts yuan (五万元, 两元, "fifty thousand yuan"); a fraction is read after the point
    (十二点三元, 二点五元: before 点 a 2 stays 二)."""
    value = _quantize(value, places)
    if value == value.to_integral_value():
        return [*_integer(int(value), lang, counted=True), "word/yuan"]
    return [*_decimal(value, lang, None), "word/yuan"]


def say_price(value: Decimal, lang: Lang) -> list[str]:
    """十二点三五元, 十二点三元, 十元 / "twelve point three yuan": the exact price, trailing zeros
    dropped (a 0.001-tick fund keeps its third place: 零点九八七元)."""
    return _yuan(_check_decimal(value, "price"), check_lang(lang), None)


def say_price_range(low: Decimal, high: Decimal, lang: Lang) -> list[str]:
    """十元至十一元 / "ten yuan to eleven yuan" (today's allowed prices, a band)."""
    return [*say_price(low, lang), "word/to", *say_price(high, lang)]


def say_amount(value: Decimal, lang: Lang) -> list[str]:
    """A money amount rounded half-up to the fen: 五万元, 一百二十三万四千五百六十七点八九元,
    负五十点五元; "fifty thousand yuan", "minus fifty point five yuan"."""
    return _yuan(_check_decimal(value, "amount"), check_lang(lang), 2)


def say_change(value: Decimal, lang: Lang, places: int | None = None) -> list[str]:
    """A price change in yuan: 涨两元 / 跌零点五元 / 平; "up zero point five yuan". ``places``
    rounds half-up first."""
    value = _quantize(_check_decimal(value, "change"), places)
    lang = check_lang(lang)
    if value == 0:
        return ["word/unchanged"]
    if lang == "zh":
        direction = "word/rise" if value > 0 else "word/fall"
    else:
        direction = "word/up" if value > 0 else "word/down"
    return [direction, *_yuan(abs(value), lang, None)]


def say_percent(
    value: Decimal, lang: Lang, signed: bool = True, places: int | None = None
) -> list[str]:
    """``value`` in percent (1.23 is 1.23%). Signed: 上涨百分之一点二三 / 下跌... / 平,
    "up one point two three percent" / "down ..." / "unchanged". Unsigned: 百分之五, and a
    negative value is refused."""
    value = _quantize(_check_decimal(value, "percent"), places)
    lang = check_lang(lang)
    if signed:
        if value == 0:
            return ["word/unchanged"]
        prefix = ["word/up" if value > 0 else "word/down"]
    else:
        if value < 0:
            raise ValueError(f"unsigned percent {value} is negative; use signed=True")
        prefix = []
    number = _decimal(abs(value), lang, places)
    if lang == "zh":
        return [*prefix, "word/percent", *number]
    return [*prefix, *number, "word/percent"]


# --- quantities -----------------------------------------------------------------------------


def _check_shares(shares: int, what: str) -> int:
    shares = _check_int(shares, what)
    if shares < 0:
        raise ValueError(f"{what} {shares} is negative")
    return shares


def say_quantity(shares: int, lang: Lang) -> list[str]:
    """一万零五百股 / "ten thousand five hundred shares"; 两股, "one share"; 0 is 零股."""
    shares = _check_shares(shares, "quantity")
    lang = check_lang(lang)
    unit = "word/share" if lang == "en" and shares == 1 else "word/shares"
    return [*_integer(shares, lang, counted=True), unit]


def _scaled(shares: int, scale: int, places: int) -> Decimal:
    return (Decimal(shares) / scale).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def say_volume(shares: int, lang: Lang) -> list[str]:
    """A trading volume, rounded the way a quote is read: zh to 万 from 10 000 (一千二百三十四万股)
    and to 0.01 亿 from 1 亿 (一点二三亿股); en to 0.01 million/billion/trillion
    ("twelve point three five million shares"). Smaller volumes are exact."""
    shares = _check_shares(shares, "volume")
    lang = check_lang(lang)
    # (scale, places), smallest first
    steps = ((10**4, 0), (10**8, 2)) if lang == "zh" else ((10**6, 2), (10**9, 2), (10**12, 2))
    if shares < steps[0][0]:
        return say_quantity(shares, lang)  # 5000 stays 五千, not a rounded 一万
    i = max(k for k, (scale, _) in enumerate(steps) if shares >= scale)
    amount = _scaled(shares, *steps[i])
    # the rounded value decides: 999 999 999 is "one billion", not "one thousand million"
    if i + 1 < len(steps) and amount * steps[i][0] >= steps[i + 1][0]:
        i += 1
        amount = _scaled(shares, *steps[i])
    if amount == amount.to_integral_value():
        number = _integer(int(amount), lang, counted=True)
    else:
        number = _decimal(amount, lang, None)
    return [*number, f"num/{steps[i][0]}", "word/shares"]


# --- codes, dates, times, names -------------------------------------------------------------

_DIGIT_IDS = {**{str(d): f"digit/{d}" for d in range(10)}, "*": "digit/star", "#": "digit/hash"}


def say_digits(s: str, lang: Lang) -> list[str]:
    """Digit by digit (codes, order and account numbers, phones): zh 1 is 幺; ``*`` and ``#``."""
    check_lang(lang)  # the ids are shared; the language picks the recording
    if not isinstance(s, str):
        raise TypeError(f"digits must be a str, not {type(s).__name__}")
    bad = sorted({c for c in s if c not in _DIGIT_IDS})
    if bad:
        raise ValueError(f"cannot read {bad!r} digit by digit; only 0-9, * and #")
    return [_DIGIT_IDS[c] for c in s]


def _en_year(year: int) -> list[str]:
    high, low = divmod(year, 100)
    if year < 1000 or (high % 10 == 0 and low < 10):
        return _en_positive(year)  # "two thousand", "two thousand five"
    if low == 0:
        return [*_en_below_1000(high), "num/100"]  # "nineteen hundred"
    if low < 10:
        return [*_en_below_1000(high), "time/oh", f"num/{low}"]  # "nineteen oh five"
    return _en_below_1000(high) + _en_below_1000(low)  # "twenty twenty six"


def say_date(d: dt.date, lang: Lang) -> list[str]:
    """二零二六年十一月二十三日 (year digit by digit); "November twenty third, twenty twenty six"
    (the en day is an ordinal)."""
    if not isinstance(d, dt.date):
        raise TypeError(f"date must be a datetime.date, not {type(d).__name__}")
    if d.year < 1:
        raise ValueError(f"year {d.year} cannot be spoken")
    if check_lang(lang) == "zh":
        return [
            *(f"num/{c}" for c in str(d.year)), "date/year",
            *_zh_positive(d.month, True, False), "date/month",
            *_zh_positive(d.day, True, False), "date/day",
        ]
    return [f"month/{d.month}", f"ordinal/{d.day}", *_en_year(d.year)]


def say_time(t: dt.time, lang: Lang) -> list[str]:
    """zh 24-hour: 十四点零五分, 十四点整, 两点十分; en 12-hour: "two oh five P M", "two P M".
    Seconds are not spoken."""
    if not isinstance(t, dt.time):
        raise TypeError(f"time must be a datetime.time, not {type(t).__name__}")
    hour, minute = t.hour, t.minute
    if check_lang(lang) == "zh":
        out = [*_integer(hour, "zh", counted=True), "time/hour"]  # 两点, 零点
        if minute == 0:
            return [*out, "time/sharp"]
        if minute < 10:
            out.append("num/0")
        return [*out, *_zh_positive(minute, True, False), "time/minute"]
    out = _en_below_1000(hour % 12 or 12)
    if minute:
        out += ["time/oh", f"num/{minute}"] if minute < 10 else _en_below_1000(minute)
    return [*out, "time/pm" if hour >= 12 else "time/am"]


def _stock_id(code: str) -> str:
    if not isinstance(code, str):
        raise TypeError(f"security code must be a str, not {type(code).__name__}")
    ident = code.strip().lower()
    if not ident or not ident.isascii() or not ident.isalnum():
        raise ValueError(f"security code {code!r} must be letters and digits")
    return f"stock/{ident}"


def say_stock(security_code: str, lang: Lang) -> list[str]:
    """The security's pre-rendered name: ``["stock/600519"]`` (see :func:`stock_name_texts`)."""
    check_lang(lang)
    return [_stock_id(security_code)]


def stock_name_texts(
    securities: Iterable[tuple[str, str, str]],
) -> dict[str, dict[str, str]]:
    """``(code, name_zh, name_en)`` → ``{"stock/600519": {"zh": "贵州茅台", "en": ...}}``,
    for the prompt builder (build it from ``Security.code, .name, .name_en``)."""
    texts: dict[str, dict[str, str]] = {}
    for code, name_zh, name_en in securities:
        ident = _stock_id(code)
        for name in (name_zh, name_en):
            if not name.strip():
                raise ValueError(f"security {code!r} has an empty name")
        if ident in texts:
            raise ValueError(f"security {code!r} is listed twice")
        texts[ident] = {"zh": name_zh.strip(), "en": name_en.strip()}
    return texts


# --- the generated prompts file -------------------------------------------------------------

YAML_HEADER = (
    "# GENERATED by callcenter.ivr.speech from fragment_texts(); do not edit by hand. Regenerate:\n"
    "#   PYTHONPATH=. python -c 'from callcenter.ivr.speech import write_fragments_yaml as w; "
    "w(\"ivr_flows/prompts_speech.yaml\")'\n"
    "# Fragments the IVR concatenates to speak numbers, money, dates and codes (docs/speech.md).\n"
)


def fragments_yaml() -> str:
    """The text of ``ivr_flows/prompts_speech.yaml``: one ``id: {zh: ..., en: ...}`` a line."""
    import yaml  # only needed to write the file

    lines = [YAML_HEADER.rstrip("\n")]
    for ident, texts in _FRAGMENTS.items():
        # a fragment is rendered tight (no silence at its ends); the pause is silence
        how: dict[str, object] = {"silence_ms": PAUSE_MS} if ident == PAUSE else {"trim": True}
        # safe_dump quotes whatever YAML would misread (o'clock, yes/no...)
        value = yaml.safe_dump(
            {"zh": texts["zh"], "en": texts["en"], **how},
            allow_unicode=True, default_flow_style=True, sort_keys=False, width=1000,
        ).strip()
        lines.append(f"{ident}: {value}")
    return "\n".join(lines) + "\n"


def write_fragments_yaml(path: str | Path) -> None:
    Path(path).write_text(fragments_yaml(), encoding="utf-8")
