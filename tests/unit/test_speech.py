"""Speaking values: zh and en readings, decoders proving them unambiguous, the fragment set."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.ivr import speech
from callcenter.ivr.prompts import load_prompts
from callcenter.ivr.speech import (
    MAX_INTEGER,
    check_lang,
    fragment_texts,
    fragments_yaml,
    say_amount,
    say_change,
    say_date,
    say_decimal,
    say_digits,
    say_integer,
    say_percent,
    say_price,
    say_quantity,
    say_stock,
    say_time,
    say_volume,
    stock_name_texts,
)

ROOT = Path(__file__).resolve().parents[2]
TEXTS = fragment_texts()
ID_PATTERN = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+)*$")
D = Decimal


def zh(ids: list[str]) -> str:
    """What a Mandarin caller hears, as one string."""
    return "".join(TEXTS[i]["zh"] for i in ids)


def en(ids: list[str]) -> str:
    return " ".join(TEXTS[i]["en"] for i in ids)


# --- integers -------------------------------------------------------------------------------

ZH_INTEGERS = [
    (0, "零"), (1, "一"), (2, "二"), (10, "十"), (11, "十一"), (12, "十二"), (20, "二十"),
    (22, "二十二"), (100, "一百"), (101, "一百零一"), (110, "一百一十"), (111, "一百一十一"),
    (200, "两百"), (222, "两百二十二"), (1000, "一千"), (1001, "一千零一"), (1010, "一千零一十"),
    (1100, "一千一百"), (1200, "一千二百"), (2000, "两千"), (2222, "两千二百二十二"),
    (10000, "一万"), (10001, "一万零一"), (10010, "一万零一十"), (10500, "一万零五百"),
    (20000, "两万"), (22000, "两万二千"), (100000, "十万"), (110000, "十一万"),
    (120000, "十二万"), (1000000, "一百万"), (2000000, "两百万"), (10000000, "一千万"),
    (12340000, "一千二百三十四万"), (100000000, "一亿"), (200000000, "两亿"),
    (100010000, "一亿零一万"), (100100000, "一亿零一十万"), (110000000, "一亿一千万"),
    (1000000000, "十亿"), (1000000001, "十亿零一"), (10**12, "一万亿"), (2 * 10**12, "两万亿"),
    (10001 * 10**8, "一万零一亿"), (10**12 + 10**4, "一万亿零一万"),
    (-10, "负十"), (-10500, "负一万零五百"), (-2, "负二"),
]

EN_INTEGERS = [
    (0, "zero"), (1, "one"), (10, "ten"), (11, "eleven"), (19, "nineteen"), (20, "twenty"),
    (21, "twenty one"), (100, "one hundred"), (101, "one hundred one"), (110, "one hundred ten"),
    (1000, "one thousand"), (1001, "one thousand one"), (1010, "one thousand ten"),
    (10000, "ten thousand"), (10500, "ten thousand five hundred"),
    (100000, "one hundred thousand"), (1000000, "one million"),
    (100010000, "one hundred million ten thousand"),
    (1234567, "one million two hundred thirty four thousand five hundred sixty seven"),
    (10**9, "one billion"), (2 * 10**12, "two trillion"), (-7, "minus seven"),
]


@pytest.mark.parametrize(("n", "text"), ZH_INTEGERS)
def test_zh_integers(n: int, text: str) -> None:
    assert zh(say_integer(n, "zh")) == text


@pytest.mark.parametrize(("n", "text"), EN_INTEGERS)
def test_en_integers(n: int, text: str) -> None:
    assert en(say_integer(n, "en")) == text


def test_integer_ids_are_the_fragments_not_texts() -> None:
    assert say_integer(10500, "zh") == ["num/1", "num/10000", "num/0", "num/5", "num/100"]
    assert say_integer(10500, "en") == ["num/10", "num/1000", "num/5", "num/100"]
    assert say_integer(2000, "zh") == ["num/liang", "num/1000"]


ZH_DIGIT = {f"num/{d}": d for d in range(1, 10)} | {"num/liang": 2}
ZH_UNIT = {"num/10": 10, "num/100": 100, "num/1000": 1000}


def zh_decode(ids: list[str]) -> int:
    """Reference reader of Mandarin numerals, independent of the speaker's algorithm."""
    sign = 1
    if ids[:1] == ["word/minus"]:
        sign, ids = -1, ids[1:]
    if ids == ["num/0"]:
        return 0
    yi = wan = small = 0
    digit: int | None = None
    for ident in ids:
        if ident == "num/0":
            assert digit is None, "零 right after a digit"
        elif ident in ZH_DIGIT:
            assert digit is None, "two digits in a row"
            digit = ZH_DIGIT[ident]
        elif ident in ZH_UNIT:
            if digit is None:
                assert ident == "num/10", "only 十 may drop its 一"
            small += (1 if digit is None else digit) * ZH_UNIT[ident]
            digit = None
        elif ident == "num/10000":
            wan += (small + (digit or 0)) * 10**4
            small, digit = 0, None
        elif ident == "num/100000000":
            yi = (yi + wan + small + (digit or 0)) * 10**8
            wan = small = 0
            digit = None
        else:
            raise AssertionError(f"{ident} is not a Mandarin numeral fragment")
    return sign * (yi + wan + small + (digit or 0))


EN_WORD = {f"num/{n}": n for n in [*range(20), *range(20, 100, 10)]}
EN_SCALE = {f"num/{10**k}": 10**k for k in (3, 6, 9, 12)}


def en_decode(ids: list[str]) -> int:
    sign = 1
    if ids[:1] == ["word/minus"]:
        sign, ids = -1, ids[1:]
    total = current = 0
    for ident in ids:
        if ident in EN_WORD:
            current += EN_WORD[ident]
        elif ident == "num/100":
            current *= 100
        elif ident in EN_SCALE:
            total += current * EN_SCALE[ident]
            current = 0
        else:
            raise AssertionError(f"{ident} is not an English numeral fragment")
    return sign * (total + current)


@given(st.integers(min_value=0, max_value=10**9))
def test_zh_reading_round_trips(n: int) -> None:
    ids = say_integer(n, "zh")
    assert zh_decode(ids) == n
    # canonical: one 零 per gap, never at the end, never doubled
    if n:
        assert ids[-1] != "num/0"
        assert all(not (a == b == "num/0") for a, b in itertools.pairwise(ids))


@given(st.integers(min_value=-MAX_INTEGER, max_value=MAX_INTEGER))
def test_zh_reading_round_trips_up_to_the_limit(n: int) -> None:
    assert zh_decode(say_integer(n, "zh")) == n


@given(st.integers(min_value=0, max_value=10**9))
def test_en_reading_round_trips(n: int) -> None:
    assert en_decode(say_integer(n, "en")) == n


@given(st.integers(min_value=-MAX_INTEGER, max_value=MAX_INTEGER))
def test_en_reading_round_trips_up_to_the_limit(n: int) -> None:
    assert en_decode(say_integer(n, "en")) == n


def test_integers_beyond_the_limit_are_refused() -> None:
    with pytest.raises(ValueError, match="too large"):
        say_integer(MAX_INTEGER + 1, "zh")


# --- decimals, money, quantities ------------------------------------------------------------

DECIMALS = [
    (D("12.34"), None, "十二点三四", "twelve point three four"),
    (D("0.5"), None, "零点五", "zero point five"),
    (D("12.30"), 2, "十二点三零", "twelve point three zero"),
    (D("12.30"), None, "十二点三", "twelve point three"),
    (D("12"), 2, "十二点零零", "twelve point zero zero"),
    (D("0.05"), None, "零点零五", "zero point zero five"),
    (D("2.5"), None, "二点五", "two point five"),
    (D("10.01"), None, "十点零一", "ten point zero one"),
    (D("1.005"), 2, "一点零一", "one point zero one"),  # half-up
    (D("100"), None, "一百", "one hundred"),
    (D("1E+2"), None, "一百", "one hundred"),
    (D("-3.5"), None, "负三点五", "minus three point five"),
    (D("-0.001"), 2, "零点零零", "zero point zero zero"),  # rounds to zero: no sign
    (D("0"), None, "零", "zero"),
]


@pytest.mark.parametrize(("value", "places", "zh_text", "en_text"), DECIMALS)
def test_decimals(value: Decimal, places: int | None, zh_text: str, en_text: str) -> None:
    assert zh(say_decimal(value, "zh", places)) == zh_text
    assert en(say_decimal(value, "en", places)) == en_text


# Readback rules (docs/speech.md): yuan without trailing zeros, 两 before the measure word 元
# when the amount is whole, 二 before 点.
@pytest.mark.parametrize(("value", "zh_text", "en_text"), [
    (D("12.34"), "十二点三四元", "twelve point three four yuan"),
    (D("12.35"), "十二点三五元", "twelve point three five yuan"),
    (D("12.3"), "十二点三元", "twelve point three yuan"),
    (D("12.30"), "十二点三元", "twelve point three yuan"),
    (D("8"), "八元", "eight yuan"),
    (D("10.00"), "十元", "ten yuan"),
    (D("2"), "两元", "two yuan"),
    (D("2.00"), "两元", "two yuan"),
    (D("2.20"), "二点二元", "two point two yuan"),
    (D("0.02"), "零点零二元", "zero point zero two yuan"),
    (D("20.00"), "二十元", "twenty yuan"),
    (D("12.02"), "十二点零二元", "twelve point zero two yuan"),
    (D("200"), "两百元", "two hundred yuan"),
    (D("2000.00"), "两千元", "two thousand yuan"),
    (D("0.987"), "零点九八七元", "zero point nine eight seven yuan"),  # fund tick 0.001
    (D("1.230"), "一点二三元", "one point two three yuan"),
])
def test_prices(value: Decimal, zh_text: str, en_text: str) -> None:
    assert zh(say_price(value, "zh")) == zh_text
    assert en(say_price(value, "en")) == en_text


@pytest.mark.parametrize(("value", "zh_text", "en_text"), [
    (D("1234567.89"), "一百二十三万四千五百六十七点八九元",
     "one million two hundred thirty four thousand five hundred sixty seven point eight nine yuan"),
    (D("50000.00"), "五万元", "fifty thousand yuan"),
    (D("50000.30"), "五万点三元", "fifty thousand point three yuan"),
    (D("100"), "一百元", "one hundred yuan"),
    (D("0"), "零元", "zero yuan"),
    (D("0.00"), "零元", "zero yuan"),
    (D("-0.001"), "零元", "zero yuan"),  # rounds to zero: no sign
    (D("2"), "两元", "two yuan"),
    (D("2.00"), "两元", "two yuan"),
    (D("2.20"), "二点二元", "two point two yuan"),
    (D("0.02"), "零点零二元", "zero point zero two yuan"),
    (D("0.2"), "零点二元", "zero point two yuan"),
    (D("20"), "二十元", "twenty yuan"),
    (D("12"), "十二元", "twelve yuan"),
    (D("102"), "一百零二元", "one hundred two yuan"),
    (D("200"), "两百元", "two hundred yuan"),
    (D("2000"), "两千元", "two thousand yuan"),
    (D("20000"), "两万元", "twenty thousand yuan"),
    (D("22000"), "两万二千元", "twenty two thousand yuan"),
    (D("100000000"), "一亿元", "one hundred million yuan"),
    (D("200000000.00"), "两亿元", "two hundred million yuan"),
    (D("-2"), "负两元", "minus two yuan"),
    (D("-50.5"), "负五十点五元", "minus fifty point five yuan"),
    (D("-50.50"), "负五十点五元", "minus fifty point five yuan"),
    (D("0.125"), "零点一三元", "zero point one three yuan"),  # half-up to the fen
    (D("1.995"), "两元", "two yuan"),  # rounds up to a whole yuan
])
def test_amounts(value: Decimal, zh_text: str, en_text: str) -> None:
    assert zh(say_amount(value, "zh")) == zh_text
    assert en(say_amount(value, "en")) == en_text


def test_a_whole_amount_never_says_point() -> None:
    for value in (D("50000.00"), D("2.00"), D("0.00"), D("-7.00")):
        assert "word/point" not in say_amount(value, "zh")
        assert "word/point" not in say_amount(value, "en")


@pytest.mark.parametrize(("low", "high", "zh_text", "en_text"), [
    (D("10.00"), D("11.00"), "十元至十一元", "ten yuan to eleven yuan"),
    (D("9.18"), D("11.22"), "九点一八元至十一点二二元",
     "nine point one eight yuan to eleven point two two yuan"),
    (D("1.80"), D("2.20"), "一点八元至二点二元", "one point eight yuan to two point two yuan"),
    (D("1.60"), D("2.00"), "一点六元至两元", "one point six yuan to two yuan"),
])
def test_price_ranges_say_zhi(low: Decimal, high: Decimal, zh_text: str, en_text: str) -> None:
    assert zh(speech.say_price_range(low, high, "zh")) == zh_text
    assert en(speech.say_price_range(low, high, "en")) == en_text


@pytest.mark.parametrize(("shares", "zh_text", "en_text"), [
    (0, "零股", "zero shares"),
    (1, "一股", "one share"),
    (2, "两股", "two shares"),
    (12, "十二股", "twelve shares"),
    (20, "二十股", "twenty shares"),
    (22, "二十二股", "twenty two shares"),
    (100, "一百股", "one hundred shares"),
    (102, "一百零二股", "one hundred two shares"),
    (200, "两百股", "two hundred shares"),
    (2000, "两千股", "two thousand shares"),
    (20000, "两万股", "twenty thousand shares"),
    (1200, "一千二百股", "one thousand two hundred shares"),
    (100000000, "一亿股", "one hundred million shares"),
    (10500, "一万零五百股", "ten thousand five hundred shares"),
])
def test_quantities(shares: int, zh_text: str, en_text: str) -> None:
    assert zh(say_quantity(shares, "zh")) == zh_text
    assert en(say_quantity(shares, "en")) == en_text


@pytest.mark.parametrize(("shares", "zh_text", "en_text"), [
    (5000, "五千股", "five thousand shares"),
    (12340000, "一千二百三十四万股", "twelve point three four million shares"),
    (12345678, "一千二百三十五万股", "twelve point three five million shares"),
    (20000, "两万股", "twenty thousand shares"),
    (99994999, "九千九百九十九万股", "ninety nine point nine nine million shares"),
    (99600000, "九千九百六十万股", "ninety nine point six million shares"),
    (999499999, "九点九九亿股", "nine hundred ninety nine point five million shares"),
    (99995000, "一亿股", "one hundred million shares"),
    (12300000, "一千二百三十万股", "twelve point three million shares"),
    (123456789, "一点二三亿股", "one hundred twenty three point four six million shares"),
    (200000000, "两亿股", "two hundred million shares"),
    (999999999, "十亿股", "one billion shares"),
    (999999, "一百万股", "nine hundred ninety nine thousand nine hundred ninety nine shares"),
])
def test_volumes(shares: int, zh_text: str, en_text: str) -> None:
    assert zh(say_volume(shares, "zh")) == zh_text
    assert en(say_volume(shares, "en")) == en_text


@pytest.mark.parametrize(("value", "zh_text", "en_text"), [
    (D("1.23"), "上涨百分之一点二三", "up one point two three percent"),
    (D("-1.23"), "下跌百分之一点二三", "down one point two three percent"),
    (D("0"), "平", "unchanged"),
    (D("-0.00"), "平", "unchanged"),
    (D("10"), "上涨百分之十", "up ten percent"),
])
def test_signed_percent(value: Decimal, zh_text: str, en_text: str) -> None:
    assert zh(say_percent(value, "zh")) == zh_text
    assert en(say_percent(value, "en")) == en_text


def test_unsigned_percent() -> None:
    assert zh(say_percent(D("5"), "zh", signed=False)) == "百分之五"
    assert en(say_percent(D("5"), "en", signed=False)) == "five percent"
    assert zh(say_percent(D("0"), "zh", signed=False)) == "百分之零"
    assert zh(say_percent(D("1.2"), "zh", signed=False, places=2)) == "百分之一点二零"
    with pytest.raises(ValueError, match="negative"):
        say_percent(D("-5"), "zh", signed=False)


@pytest.mark.parametrize(("value", "zh_text", "en_text"), [
    (D("0.5"), "涨零点五元", "up zero point five yuan"),
    (D("0.50"), "涨零点五元", "up zero point five yuan"),
    (D("-0.5"), "跌零点五元", "down zero point five yuan"),
    (D("-12.34"), "跌十二点三四元", "down twelve point three four yuan"),
    (D("0.00"), "平", "unchanged"),
    (D("2"), "涨两元", "up two yuan"),
    (D("2.00"), "涨两元", "up two yuan"),
    (D("-2.00"), "跌两元", "down two yuan"),
    (D("-2.20"), "跌二点二元", "down two point two yuan"),
    (D("0.02"), "涨零点零二元", "up zero point zero two yuan"),
    (D("-0.02"), "跌零点零二元", "down zero point zero two yuan"),
    (D("-20"), "跌二十元", "down twenty yuan"),
    (D("200.00"), "涨两百元", "up two hundred yuan"),
    (D("-12"), "跌十二元", "down twelve yuan"),
])
def test_changes(value: Decimal, zh_text: str, en_text: str) -> None:
    assert zh(say_change(value, "zh")) == zh_text
    assert en(say_change(value, "en")) == en_text


def test_change_with_places_rounds_then_drops_zeros() -> None:
    assert zh(say_change(D("0.5"), "zh", places=2)) == "涨零点五元"
    assert zh(say_change(D("0.505"), "zh", places=2)) == "涨零点五一元"
    assert zh(say_change(D("1.999"), "zh", places=2)) == "涨两元"
    assert zh(say_change(D("0.004"), "zh", places=2)) == "平"


@pytest.mark.parametrize(("value", "text"), [
    (D("5.2"), "百分之五点二"), (D("2"), "百分之二"), (D("0.2"), "百分之零点二"),
    (D("20"), "百分之二十"), (D("0.02"), "百分之零点零二"), (D("12.50"), "百分之十二点五"),
])
def test_percentages_say_er_not_liang(value: Decimal, text: str) -> None:
    assert zh(say_percent(value, "zh", signed=False)) == text
    assert zh(say_percent(-value, "zh")) == "下跌" + text


@pytest.mark.parametrize(("n", "counted", "text"), [
    (2, False, "二"), (2, True, "两"), (12, True, "十二"), (20, True, "二十"),
    (22, True, "二十二"), (102, True, "一百零二"), (200, True, "两百"), (0, True, "零"),
])
def test_counted_integers_say_liang_for_a_lone_two(n: int, counted: bool, text: str) -> None:
    assert zh(say_integer(n, "zh", counted=counted)) == text
    assert en(say_integer(n, "en", counted=counted)) == en(say_integer(n, "en"))


# --- digits, dates, times, stocks -----------------------------------------------------------


def test_digits_use_yao_for_one_in_mandarin() -> None:
    assert zh(say_digits("600519", "zh")) == "六零零五幺九"
    assert say_digits("1", "zh") == ["digit/1"]
    assert TEXTS["digit/1"] == {"zh": "幺", "en": "one"}
    assert en(say_digits("13800138000", "en")).startswith("one three eight zero")
    assert zh(say_digits("*1#", "zh")) == "星号幺井号"
    assert en(say_digits("*1#", "en")) == "star one hash"
    assert say_digits("", "zh") == []


@pytest.mark.parametrize("bad", ["12a", "1 2", "-1", "１"])
def test_digits_refuse_other_characters(bad: str) -> None:
    with pytest.raises(ValueError, match="digit by digit"):
        say_digits(bad, "zh")


@pytest.mark.parametrize(("d", "zh_text", "en_text"), [
    (dt.date(2026, 11, 23), "二零二六年十一月二十三日", "November twenty third twenty twenty six"),
    (dt.date(2026, 2, 2), "二零二六年二月二日", "February second twenty twenty six"),
    (dt.date(2010, 10, 10), "二零一零年十月十日", "October tenth twenty ten"),
    (dt.date(2000, 1, 1), "二零零零年一月一日", "January first two thousand"),
    (dt.date(2005, 12, 31), "二零零五年十二月三十一日", "December thirty first two thousand five"),
    (dt.date(1999, 5, 20), "一九九九年五月二十日", "May twentieth nineteen ninety nine"),
    (dt.date(1905, 3, 30), "一九零五年三月三十日", "March thirtieth nineteen oh five"),
    (dt.date(1900, 3, 21), "一九零零年三月二十一日", "March twenty first nineteen hundred"),
])
def test_dates(d: dt.date, zh_text: str, en_text: str) -> None:
    assert zh(say_date(d, "zh")) == zh_text
    assert en(say_date(d, "en")) == en_text


@pytest.mark.parametrize(("t", "zh_text", "en_text"), [
    (dt.time(14, 5), "十四点零五分", "two oh five P M"),
    (dt.time(14, 0), "十四点整", "two P M"),
    (dt.time(9, 30), "九点三十分", "nine thirty A M"),
    (dt.time(2, 10), "两点十分", "two ten A M"),
    (dt.time(0, 0), "零点整", "twelve A M"),
    (dt.time(12, 0), "十二点整", "twelve P M"),
    (dt.time(23, 59, 59), "二十三点五十九分", "eleven fifty nine P M"),
])
def test_times(t: dt.time, zh_text: str, en_text: str) -> None:
    assert zh(say_time(t, "zh")) == zh_text
    assert en(say_time(t, "en")) == en_text


def test_stock_names_are_one_prerendered_prompt() -> None:
    assert say_stock("600519", "zh") == ["stock/600519"]
    assert say_stock("600519", "en") == ["stock/600519"]
    texts = stock_name_texts([("600519", "贵州茅台", "Kweichow Moutai")])
    assert texts == {"stock/600519": {"zh": "贵州茅台", "en": "Kweichow Moutai"}}
    with pytest.raises(ValueError, match="empty name"):
        stock_name_texts([("600519", "贵州茅台", " ")])
    with pytest.raises(ValueError, match="twice"):
        stock_name_texts([("600519", "a", "b"), ("600519", "a", "b")])
    with pytest.raises(ValueError, match="letters and digits"):
        say_stock("60/519", "zh")


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: say_integer(1.0, "zh"),  # type: ignore[arg-type]
    lambda: say_integer(True, "zh"),
    lambda: say_decimal(12.34, "zh"),  # type: ignore[arg-type]
    lambda: say_price(12.34, "en"),  # type: ignore[arg-type]
    lambda: say_amount(1e6, "zh"),  # type: ignore[arg-type]
    lambda: say_quantity(100.0, "zh"),  # type: ignore[arg-type]
    lambda: say_volume(1e8, "zh"),  # type: ignore[arg-type]
    lambda: say_percent(1.5, "zh"),  # type: ignore[arg-type]
    lambda: say_change(-0.5, "en"),  # type: ignore[arg-type]
    lambda: say_digits(600519, "zh"),  # type: ignore[arg-type]
    lambda: say_date("2026-11-23", "zh"),  # type: ignore[arg-type]
    lambda: say_time("14:05", "zh"),  # type: ignore[arg-type]
])
def test_floats_and_wrong_types_are_refused(call: object) -> None:
    with pytest.raises(TypeError):
        call()  # type: ignore[operator]


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        say_quantity(-100, "zh")
    with pytest.raises(ValueError, match="negative"):
        say_volume(-1, "en")
    with pytest.raises(ValueError, match="finite"):
        say_amount(D("NaN"), "zh")
    with pytest.raises(ValueError, match="places"):
        say_decimal(D("1"), "zh", places=-1)
    with pytest.raises(ValueError, match="unknown language"):
        say_integer(1, "fr")  # type: ignore[arg-type]
    assert check_lang("en") == "en"


# --- the fragment set -----------------------------------------------------------------------

amounts = st.decimals(min_value=-10**12, max_value=10**12, allow_nan=False, allow_infinity=False,
                      places=3)
langs = st.sampled_from(["zh", "en"])


@given(
    lang=langs,
    n=st.integers(min_value=-MAX_INTEGER, max_value=MAX_INTEGER),
    shares=st.integers(min_value=0, max_value=MAX_INTEGER),
    value=amounts,
    places=st.none() | st.integers(min_value=0, max_value=3),
    digits=st.text(alphabet="0123456789*#", max_size=20),
    day=st.dates(),
    moment=st.times(),
)
def test_every_returned_id_is_a_fragment(
    lang: speech.Lang, n: int, shares: int, value: Decimal, places: int | None, digits: str,
    day: dt.date, moment: dt.time,
) -> None:
    said = [
        *say_integer(n, lang), *say_decimal(value, lang, places), *say_price(abs(value), lang),
        *say_amount(value, lang), *say_quantity(shares, lang), *say_volume(shares, lang),
        *say_percent(value, lang), *say_percent(abs(value), lang, signed=False),
        *say_change(value, lang), *say_digits(digits, lang), *say_date(day, lang),
        *say_time(moment, lang),
    ]
    assert [i for i in said if i not in TEXTS] == []


@given(value=amounts, lang=langs)
def test_amounts_round_trip_through_the_decoders(value: Decimal, lang: speech.Lang) -> None:
    ids = say_amount(value, lang)
    assert ids[-1] == "word/yuan"
    point = ids.index("word/point") if "word/point" in ids else len(ids) - 1
    whole, fraction = ids[:point], ids[point + 1 : -1]
    assert len(fraction) <= 2
    assert fraction[-1:] != ["num/0"], "a trailing zero is not said"
    decode = zh_decode if lang == "zh" else en_decode
    cents = Decimal("0." + "".join(i.removeprefix("num/") for i in fraction) + "0")
    number = abs(decode(whole)) + cents
    signed = -number if whole[0] == "word/minus" else number
    assert signed == value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_fragment_ids_and_texts_are_well_formed() -> None:
    for ident, texts in TEXTS.items():
        assert ID_PATTERN.match(ident), ident
        assert set(texts) == {"zh", "en"}
        assert texts["zh"].strip() and texts["en"].strip()


def test_fragment_set_is_small() -> None:
    assert len(TEXTS) < 150


def test_generated_yaml_is_up_to_date_and_loads() -> None:
    path = ROOT / "ivr_flows" / "prompts_speech.yaml"
    assert path.read_text(encoding="utf-8") == fragments_yaml(), (
        "ivr_flows/prompts_speech.yaml is stale: regenerate it (see its header)"
    )
    loaded = load_prompts(path)
    assert {i: {"zh": t.zh, "en": t.en} for i, t in loaded.items()} == TEXTS


def test_fragment_ids_do_not_collide_with_hand_written_prompts() -> None:
    hand_written = load_prompts(ROOT / "ivr_flows" / "prompts.yaml")
    assert set(hand_written) & set(TEXTS) == set()


def test_write_fragments_yaml(tmp_path: Path) -> None:
    target = tmp_path / "prompts_speech.yaml"
    speech.write_fragments_yaml(target)
    assert target.read_text(encoding="utf-8") == fragments_yaml()


def test_attempts_left_are_counted_as_people_say_them() -> None:
    # 您还可以尝试「两次」, not 剩余尝试次数「二」; English: "Tries left: two"
    assert speech.say_attempts(2, "zh") == ["num/liang", "word/times"]
    assert speech.say_attempts(4, "zh") == ["num/4", "word/times"]
    assert speech.say_attempts(1, "en") == ["num/1"]
    assert speech.say_attempts(2, "en") == ["num/2"]
