"""The keypad's rules in a collect: '*' is the decimal point in a price or amount (and '#' on
its own goes back there), the back key elsewhere; an entry too long is refused, never cut."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flow_model import Collect
from callcenter.ivr.flowset import FlowSet, FlowSetError
from callcenter.ivr.interpreter import Ask, Digits, End, Interpreter, Step, Transfer
from callcenter.ivr.runner import ScriptFlowIO
from callcenter.ivr.tryout import Scenario, TryResult, check_scenario

PROMPTS = """
menu: {zh: 菜单, en: Menu}
enter_price: {zh: 请输入价格, en: Enter the price}
enter_quantity: {zh: 请输入数量, en: Enter the quantity}
invalid_choice: {zh: 输入有误, en: Invalid}
no_input: {zh: 没有输入, en: No input}
goodbye: {zh: 再见, en: Goodbye}
input_too_long: {zh: 位数太多, en: Too many digits}
star_is_point: {zh: 星号键是小数点, en: Star is the point}
"""

MAIN = """
flow: main
start: menu
nodes:
  menu:
    type: menu
    prompts: [menu]
    options: {"1": price}
  price:
    type: collect
    prompts: [enter_price]
    var: price
    max_digits: 6
    validator: price
    next: quantity
  quantity:
    type: collect
    prompts: [enter_quantity]
    var: quantity
    max_digits: 4
    validator: quantity
    next: bye
  bye: {type: hangup, prompts: [goodbye]}
"""


def load(tmp_path: Path, prompts: str = PROMPTS) -> FlowSet:
    (tmp_path / "prompts.yaml").write_text(textwrap.dedent(prompts), encoding="utf-8")
    (tmp_path / "main.yaml").write_text(textwrap.dedent(MAIN), encoding="utf-8")
    return load_flowset(tmp_path)


@pytest.fixture
def fs(tmp_path: Path) -> FlowSet:
    return load(tmp_path)


def run(fs: FlowSet, answers: list[Digits]) -> tuple[list[Ask], Step, Interpreter]:
    """Answer each question with the next of ``answers`` (then silence); the questions asked."""
    it = Interpreter(fs, "main")
    gen = it.run()
    step, asks = next(gen), []
    replies = list(answers)
    while not isinstance(step, End | Transfer):
        reply: Any = None
        if isinstance(step, Ask):
            asks.append(step)
            reply = replies.pop(0) if replies else Digits("", timed_out=True)
        step = gen.send(reply)
    return asks, step, it


def test_star_is_the_decimal_point_in_a_price_and_back_elsewhere(fs: FlowSet) -> None:
    asks, _, it = run(fs, [Digits("1"), Digits("10*5"), Digits("100")])
    assert asks[1].first_keys == ""          # '*' pressed first is not "back" in a price
    assert asks[2].first_keys == "*"         # ... but it is in a quantity
    assert it.vars["price"] == Decimal("10.5") and it.vars["quantity"] == 100


@pytest.mark.parametrize("text", ["*5", "10*5*0", "*"])
def test_a_misplaced_star_in_a_price_is_explained_not_back(fs: FlowSet, text: str) -> None:
    asks, _, it = run(fs, [Digits("1"), Digits(text), Digits("8")])
    assert asks[2].prompts == ("zh/star_is_point", "zh/enter_price")
    assert it.vars["price"] == Decimal("8")


def test_hash_alone_in_a_price_goes_back_and_silence_does_not(fs: FlowSet) -> None:
    asks, _, _ = run(fs, [Digits("1"), Digits("")])
    assert asks[2].prompts == ("zh/menu",)
    asks, _, _ = run(fs, [Digits("1"), Digits("", timed_out=True)])
    assert asks[2].prompts == ("zh/no_input", "zh/enter_price")


def test_star_first_in_a_quantity_goes_back(fs: FlowSet) -> None:
    asks, _, _ = run(fs, [Digits("1"), Digits("8"), Digits("*")])
    assert asks[3].prompts == ("zh/menu",)


def test_an_entry_too_long_is_refused_and_asked_again_afresh(fs: FlowSet) -> None:
    asks, _, it = run(fs, [Digits("1"), Digits("1234567"), Digits("123456")])
    assert asks[1].max_digits == 7          # one more than allowed: a longer one is heard
    assert asks[2].prompts == ("zh/input_too_long", "zh/enter_price") and asks[2].fresh
    assert not asks[3].fresh                 # only the retry after "too long" drops keys
    assert it.vars["price"] == Decimal("123456")


def test_a_price_ends_with_hash() -> None:
    with pytest.raises(ValidationError, match="decimal point"):
        Collect.model_validate({"type": "collect", "prompts": ["p"], "var": "price",
                                "max_digits": 6, "validator": "price", "terminator": None,
                                "next": "x"})


def test_the_checker_wants_the_texts_the_keypad_rules_speak(tmp_path: Path) -> None:
    bare = "\n".join(line for line in PROMPTS.splitlines()
                     if not line.startswith(("input_too_long", "star_is_point")))
    with pytest.raises(FlowSetError) as info:
        load(tmp_path, bare)
    said = " ".join(str(d) for d in info.value.diagnostics)
    assert "'input_too_long' has no text" in said and "'star_is_point' has no text" in said


async def test_a_script_types_an_entry_too_long_whole() -> None:
    """``flows try``: the keys of an entry too long, to its '#', go with it."""
    io = ScriptFlowIO("123456789#12#", {}, lambda _line: None)
    price = Ask(("zh/enter_price",), 7, 5.0, "#", "")
    assert await io.ask(price) == Digits("1234567")
    assert await io.ask(price) == Digits("12")
    assert await io.ask(price) == Digits("", timed_out=True)


def test_a_scenario_checks_the_agent_context() -> None:
    s = Scenario(name="x", dtmf="0", context={"lang": "en"})
    handed = TryResult(end=Transfer((), "general", {"lang": "zh"}))
    assert check_scenario(s, handed) == ["agent context lang: expected 'en', got 'zh'"]
    assert check_scenario(s, TryResult(end=End((), "hangup"))) \
        == ["agent context lang: expected 'en', got '(not handed over)'"]
    assert check_scenario(s, TryResult(end=Transfer((), "general", {"lang": "en"}))) == []
