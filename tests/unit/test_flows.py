"""The flow language: loading with file:line:col errors, the checker, and the interpreter."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSet, FlowSetError
from callcenter.ivr.interpreter import (
    Ask,
    Call,
    Digits,
    End,
    Interpreter,
    Outcome,
    SayStep,
    Step,
    Transfer,
    validate,
)

PROMPTS = """
welcome: {zh: 欢迎, en: Welcome}
main_menu: {zh: 主菜单, en: Main menu}
enter_code: {zh: 请输入代码, en: Enter the code}
enter_password: {zh: 请输入密码, en: Enter your password}
confirm_order: {zh: 确认请按一, en: Press one to confirm}
invalid_choice: {zh: 输入有误, en: Invalid}
no_input: {zh: 没有输入, en: No input}
goodbye: {zh: 再见, en: Goodbye}
input_too_long: {zh: 位数太多, en: Too many digits}
star_is_point: {zh: 星号键是小数点, en: Star is the point}
quote_is: {zh: 价格是, en: The price is}
closed: {zh: 下班了, en: We are closed}
"""

MAIN = """
flow: main
start: hours
defaults:
  agent: to_agent
nodes:
  hours:
    type: hours
    schedule: hotline
    open: greet
    closed: closed
  closed:
    type: hangup
    prompts: [closed]
  greet:
    type: play
    prompts: [welcome]
    next: menu
  menu:
    type: menu
    prompts: [main_menu]
    options:
      "1": code
      "2": login
      "9": english
  english:
    type: set
    values: {lang: en}
    next: menu
  code:
    type: collect
    prompts: [enter_code]
    var: code
    max_digits: 6
    validator: stock_code
    next: quote
  quote:
    type: action
    action: quote
    args: {code: $code}
    result: quote
    on: {ok: say_quote, unknown_code: code}
  say_quote:
    type: play
    prompts: [quote_is, {say: price, value: quote.last}]
    next: menu
  login:
    type: collect
    prompts: [enter_password]
    var: password
    max_digits: 6
    validator: password
    secret: true
    next: check
  check:
    type: action
    action: login
    args: {password: $password, caller: $caller}
    on: {ok: confirm, bad_password: login}
  confirm:
    type: confirm
    prompts: [confirm_order]
    idempotent: true
    yes: place
    no: menu
  place:
    type: action
    action: place_order
    args: {key: $idempotency_key}
    on: {default: bye}
  bye:
    type: hangup
    prompts: [goodbye]
  to_agent:
    type: queue
    queue: general
    context: [caller]
"""

SCHEDULES = """
hotline:
  weekly: {mon: ["08:00-20:00"], tue: ["08:00-20:00"], wed: ["08:00-20:00"],
           thu: ["08:00-20:00"], fri: ["08:00-20:00"]}
  holidays: ["2026-10-01"]
"""

OPEN = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # Monday


def write(tmp: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp


@pytest.fixture
def fs(tmp_path: Path) -> FlowSet:
    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=MAIN)
    return load_flowset(tmp_path, extra_prompts=_speech_prompts())


def _speech_prompts() -> dict[str, dict[str, str]]:
    from callcenter.ivr.speech import fragment_texts

    return fragment_texts()


class Script:
    """Drives an interpreter like a caller would: digits per Ask, results per Call."""

    def __init__(self, interp: Interpreter, keys: list[str], outcomes: dict[str, Outcome]):
        self.interp, self.keys, self.outcomes = interp, list(keys), outcomes
        self.steps: list[Step] = []
        self.calls: list[Call] = []

    def run(self) -> Step:
        gen = self.interp.run()
        step = next(gen)
        while True:
            self.steps.append(step)
            if isinstance(step, End | Transfer):
                return step
            reply: Any = None
            if isinstance(step, Ask):
                reply = Digits(self.keys.pop(0)) if self.keys else Digits("", timed_out=True)
            elif isinstance(step, Call):
                self.calls.append(step)
                reply = self.outcomes[step.action]
            step = gen.send(reply)


def interp(fs: FlowSet, **kw: Any) -> Interpreter:
    return Interpreter(fs, "main", {"caller": "13800000001"}, clock=lambda: OPEN,
                       new_key=lambda: "key-1", **kw)


def test_quote_path_speaks_the_price_and_back_to_menu(fs: FlowSet) -> None:
    quote = {"last": Decimal("12.34"), "name": "x"}
    s = Script(interp(fs), ["1", "600519", "3"],
               {"quote": Outcome("ok", quote)})
    end = s.run()
    says = [st for st in s.steps if isinstance(st, SayStep)]
    assert says[0].prompts == ("zh/welcome",)
    assert says[1].prompts[0] == "zh/quote_is" and len(says[1].prompts) > 1
    assert all(p.startswith("zh/") for p in says[1].prompts)
    assert s.calls[0].args == {"code": "600519"}
    # '3' is not an option: invalid prompt, then retries run out -> defaults.agent (queue)
    assert isinstance(end, Transfer) and end.queue == "general"
    assert end.context["caller"] == "13800000001"
    assert "menu" in end.context["path"] and end.context["last_failure"] == "menu:menu"


def test_invalid_then_timeout_prompts_lead_the_retry(fs: FlowSet) -> None:
    s = Script(interp(fs), ["7"], {})
    s.run()
    asks = [st for st in s.steps if isinstance(st, Ask)]
    assert asks[0].prompts == ("zh/main_menu",)
    assert asks[1].prompts == ("zh/invalid_choice", "zh/main_menu")
    assert asks[2].prompts == ("zh/no_input", "zh/main_menu")
    assert len(asks) == 4  # first try + 3 retries


def test_agent_key_and_language_switch(fs: FlowSet) -> None:
    s = Script(interp(fs), ["9", "0"], {})
    end = s.run()
    assert isinstance(end, Transfer)
    asks = [st for st in s.steps if isinstance(st, Ask)]
    assert asks[1].prompts == ("en/main_menu",)
    assert asks[0].first_keys == "*0"


def test_secret_goes_only_to_the_next_action_and_is_never_noted(fs: FlowSet) -> None:
    it = interp(fs)
    s = Script(it, ["2", "135790", "1"], {"login": Outcome("ok"),
                                          "place_order": Outcome("ok")})
    end = s.run()
    assert isinstance(end, End) and end.reason == "hangup"
    login = s.calls[0]
    assert login.secrets["password"].get_secret_value() == "135790"
    assert "password" not in login.args and "135790" not in repr(login)
    assert it.secrets == {} and "password" not in it.vars
    notes = repr(it.drain_notes())
    assert "135790" not in notes and "masked" in notes
    assert s.calls[1].args == {"key": "key-1"}


def test_refusal_outcome_routes_and_is_remembered(fs: FlowSet) -> None:
    it = interp(fs)
    s = Script(it, ["2", "111111", "222222"],
               {"login": Outcome("bad_password", params={"remaining": "4"})})
    s.run()
    assert it.vars["refusal"] == {"code": "bad_password", "remaining": "4"}
    assert it.vars["last_failure"].startswith("login:bad_password") or \
        it.vars["last_failure"].startswith("input:")


def test_closed_hours_and_holidays(fs: FlowSet) -> None:
    for when in (OPEN.replace(hour=21), OPEN.replace(month=10, day=1)):
        def clock(w: dt.datetime = when) -> dt.datetime:
            return w

        it = Interpreter(fs, "main", clock=clock)
        end = Script(it, [], {}).run()
        assert isinstance(end, End) and end.prompts == ("zh/closed",)


@pytest.mark.parametrize(("validator", "text", "value"), [
    ("price", "12*34", Decimal("12.34")), ("price", "12*345", None), ("price", "0", None),
    ("amount", "500", Decimal("500")), ("stock_code", "600519", "600519"),
    ("stock_code", "60051", None), ("quantity", "0", None), ("quantity", "100", 100),
    ("password", "12345", None), ("digits", "12*", None),
])
def test_validators(validator: str, text: str, value: object) -> None:
    assert validate(validator, text) == value


# -- checker ---------------------------------------------------------------------------------

def _errors(tmp_path: Path, main: str) -> list[str]:
    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=main)
    with pytest.raises(FlowSetError) as info:
        load_flowset(tmp_path, extra_prompts=_speech_prompts())
    return [str(d) for d in info.value.diagnostics]


BROKEN = """\
flow: main
start: menu
nodes:
  menu:
    type: menu
    prompts: [main_menu, nope]
    options:
      "1": missing
      "2": loop_a
  loop_a:
    type: play
    prompts: [welcome]
    next: loop_b
  loop_b:
    type: set
    values: {x: $undefined_thing}
    next: loop_a
  orphan:
    type: hangup
  speak_secret:
    type: play
    prompts: [{say: digits, value: pin}]
    next: menu
  pin_in:
    type: collect
    prompts: [enter_password]
    var: pin
    max_digits: 6
    validator: password
    secret: true
    next: menu
"""


def test_checker_reports_every_problem_with_file_line_col(tmp_path: Path) -> None:
    errors = _errors(tmp_path, BROKEN)
    text = "\n".join(errors)
    f = str(tmp_path / "main.yaml")
    assert f"{f}:6:" in text and "missing prompt 'nope'" in text
    assert f"{f}:8:" in text and "unknown node 'missing'" in text
    assert f"{f}:16:" in text and "undefined variable 'undefined_thing'" in text
    assert "cycle loop_a -> loop_b never waits for the caller" in text
    assert "node 'orphan' is unreachable" in text
    assert "secret 'pin' may only be passed to an action" in text


def test_schema_errors_point_at_the_line(tmp_path: Path) -> None:
    bad = "flow: main\nstart: a\nnodes:\n  a:\n    type: menu\n    prompts: [welcome]\n" \
          "    options: {\"x\": a}\n  b:\n    type: collectt\n"
    text = "\n".join(_errors(tmp_path, bad))
    f = str(tmp_path / "main.yaml")
    assert f"{f}:7:" in text and "option key 'x'" in text
    assert f"{f}:9:" in text and "collectt" in text


def test_yaml_syntax_error_and_wrong_file_name(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text(PROMPTS)
    (tmp_path / "main.yaml").write_text("flow: main\nstart: [unclosed\n")
    with pytest.raises(FlowSetError) as info:
        load_flowset(tmp_path)
    assert f"{tmp_path / 'main.yaml'}:2:8: this bracket is not closed" in str(info.value)
    (tmp_path / "main.yaml").write_text(MAIN.replace("flow: main", "flow: other"))
    (tmp_path / "schedules.yaml").write_text(SCHEDULES)
    with pytest.raises(FlowSetError, match=r"must be in a file named other\.yaml"):
        load_flowset(tmp_path, extra_prompts=_speech_prompts())


def test_cycle_with_no_way_out(tmp_path: Path) -> None:
    flow = """\
flow: main
start: a
defaults: {fail: a}
nodes:
  a:
    type: menu
    prompts: [main_menu]
    options: {"1": a}
"""
    assert any("has no way out" in e for e in _errors(tmp_path, flow))


def test_unknown_action_and_outcome(tmp_path: Path) -> None:
    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=MAIN.replace(
        "on: {ok: say_quote, unknown_code: code}", "on: {ok: say_quote, unknwn: code}"))
    with pytest.raises(FlowSetError) as info:
        load_flowset(tmp_path, extra_prompts=_speech_prompts(),
                     actions=frozenset({"quote", "login"}))
    text = str(info.value)
    assert "unknown outcome 'unknwn'" in text and "unknown action 'place_order'" in text


def test_registry_keeps_the_last_good_version(tmp_path: Path) -> None:
    from callcenter.ivr.registry import FlowRegistry

    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=MAIN)
    reg = FlowRegistry(tmp_path, _speech_prompts())
    first = reg.load()
    in_progress = reg.current                      # a call that started now keeps this
    (tmp_path / "main.yaml").write_text(MAIN.replace("start: hours", "start: nowhere"))
    result = reg.reload()
    assert not result.accepted and result.version == first.version
    assert any("unknown node 'nowhere'" in p for p in result.problems)
    assert reg.current is first
    (tmp_path / "main.yaml").write_text(MAIN.replace("prompts: [welcome]",
                                                      "prompts: [welcome, main_menu]"))
    result = reg.reload()
    assert result.accepted and result.version != first.version
    assert reg.current is not first and in_progress is first


def test_the_hand_off_says_the_path_in_the_flows_titles(tmp_path: Path) -> None:
    """An agent's screen pop shows the caller's way through the IVR in the flows' own titles
    (``title``), in both languages; a flow without a title is left out of it."""
    main = MAIN.replace("flow: main\n", "flow: main\ntitle: {zh: 主菜单, en: Main menu}\n")
    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=main)
    fs = load_flowset(tmp_path, extra_prompts=_speech_prompts())
    assert fs.flows["main"].title == {"zh": "主菜单", "en": "Main menu"}
    end = Script(interp(fs), ["1", "600519", "3"],
                 {"quote": Outcome("ok", {"last": Decimal("12.34"), "name": "x"})}).run()
    assert isinstance(end, Transfer)
    assert end.context["path_zh"] == "主菜单" and end.context["path_en"] == "Main menu"
    assert "menu" in end.context["path"]  # the exact steps stay too
    untitled = Script(interp(load_flowset(write(tmp_path, main=MAIN),
                                          extra_prompts=_speech_prompts())),
                      ["3"], {}).run()
    assert isinstance(untitled, Transfer) and "path_zh" not in untitled.context


def test_every_shipped_flow_has_a_title_in_both_languages() -> None:
    shipped = load_flowset(Path(__file__).parents[2] / "ivr_flows")
    for name, flow in shipped.flows.items():
        assert set(flow.title) == {"zh", "en"}, name
