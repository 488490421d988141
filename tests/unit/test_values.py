"""Value checks for everything bound for Asterisk: refused, never escaped, never echoed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.errors import UnsafeValueError
from callcenter.telephony.values import (
    check_agi_arg,
    check_mapping,
    check_phone_number,
    check_value,
    is_forbidden_char,
    phone_number_or_empty,
)

FORBIDDEN = (
    [chr(c) for c in range(0x00, 0x20)] + [chr(c) for c in range(0x7F, 0xA0)] + ["\u2028", "\u2029"]
)
forbidden_chars = st.sampled_from(FORBIDDEN)
safe_text = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")))


@given(prefix=safe_text, bad=forbidden_chars, suffix=safe_text)
def test_any_string_with_a_forbidden_char_is_refused(prefix: str, bad: str, suffix: str) -> None:
    with pytest.raises(UnsafeValueError, match=f"U\\+{ord(bad):04X}"):
        check_value(prefix + bad + suffix, what="AMI header Foo")


@given(value=safe_text)
def test_printable_strings_are_returned_unchanged(value: str) -> None:
    assert check_value(value, what="x") is value


@given(value=safe_text.filter(lambda v: '"' not in v and "\\" not in v))
def test_agi_args_without_quotes_are_returned_unchanged(value: str) -> None:
    assert check_agi_arg(value) is value


@given(prefix=safe_text, bad=st.sampled_from(['"', "\\"]), suffix=safe_text)
def test_agi_args_refuse_quote_and_backslash(prefix: str, bad: str, suffix: str) -> None:
    with pytest.raises(UnsafeValueError):
        check_agi_arg(prefix + bad + suffix)


@given(prefix=safe_text, bad=forbidden_chars, suffix=safe_text)
def test_agi_args_refuse_controls_too(prefix: str, bad: str, suffix: str) -> None:
    with pytest.raises(UnsafeValueError):
        check_agi_arg(prefix + bad + suffix)


def test_message_names_what_and_code_but_never_the_value() -> None:
    secret = "93517\r\nAction: Originate"
    with pytest.raises(UnsafeValueError) as info:
        check_value(secret, what="AGI argument 'digits'")
    message = str(info.value)
    assert message == "AGI argument 'digits' contains a control character (U+000D); refused"
    assert "93517" not in message and "Originate" not in message


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\t", "\x1b", "\x7f", "\x85", "\u2028"])
def test_classic_injection_characters(char: str) -> None:
    assert is_forbidden_char(char)
    with pytest.raises(UnsafeValueError):
        check_value(f"a{char}b", what="v")


def test_unpaired_surrogate_refused() -> None:
    with pytest.raises(UnsafeValueError, match="surrogate"):
        check_value("a\ud800b", what="v")


def test_non_ascii_text_is_fine() -> None:
    assert check_value("张三 / Ünïcødé €", what="v") == "张三 / Ünïcødé €"


def test_check_mapping_checks_keys_and_values() -> None:
    assert check_mapping({"Channel": "Local/9500@hotline"}, "AMI Originate") == {
        "Channel": "Local/9500@hotline"
    }
    with pytest.raises(UnsafeValueError, match="AMI Originate 'Variable'"):
        check_mapping({"Variable": "X=1\r\nAction: Logoff"}, "AMI Originate")
    with pytest.raises(UnsafeValueError, match="AMI Originate key"):
        check_mapping({"Bad\nKey": "v"}, "AMI Originate")


# -- phone numbers (caller IDs, call-backs, numbers dialled out) --------------------------------


@pytest.mark.parametrize("number", ["13800000001", "+8613912345678", "1001", "95", "0" * 20])
def test_phone_numbers_are_digits_with_an_optional_plus(number: str) -> None:
    assert check_phone_number(number) == number
    assert phone_number_or_empty(number) == number


@pytest.mark.parametrize("number", [
    "123&Local/9@hotline",   # a second leg for Dial()
    "123,30,D(1)", "123|x", "1;2", "1)", "1(2", "${SHELL(id)}", "1 2", "+", "++86", "86+1",
    "*99", "12#", "1", "0" * 21, "", "１２３", "12\n3", "12\x003", "١٢٣",
])
def test_anything_else_is_not_a_phone_number(number: str) -> None:
    with pytest.raises(UnsafeValueError) as refused:
        check_phone_number(number, what="caller ID")
    assert "caller ID" in str(refused.value)
    if len(number) > 1:
        assert number not in str(refused.value)  # never echoed
    assert phone_number_or_empty(number) == ""


@given(value=st.text(max_size=40))
def test_a_phone_number_never_holds_dial_syntax(value: str) -> None:
    number = phone_number_or_empty(value)
    assert number == "" or (number.lstrip("+").isascii() and number.lstrip("+").isdigit())


def test_the_one_pass_checks_refuse_exactly_the_chars_the_rules_name() -> None:
    """``check_value`` and ``check_agi_arg`` scan a value in one pass; every code point is
    refused by them exactly when ``is_forbidden_char`` (or AGI's quoting) says so, and the
    error names the first such char."""
    for code in range(0x110000):
        char = chr(code)
        forbidden = is_forbidden_char(char)
        quoting = char in '"\\'
        try:
            check_agi_arg(f"a{char}b")
            refused = False
        except UnsafeValueError as exc:
            refused = True
            assert f"U+{code:04X}" in str(exc)
        assert refused == (forbidden or quoting), hex(code)
        try:
            check_value(f"a{char}b", what="v")
            refused = False
        except UnsafeValueError:
            refused = True
        assert refused == forbidden, hex(code)
    with pytest.raises(UnsafeValueError, match="U\\+000A"):
        check_value("x\ny\rz", what="v")
