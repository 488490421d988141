"""YAML as operators write it: syntax errors explained in plain words at the line to fix (with
that line shown), keys and values YAML would silently turn into something else refused or read
as they look (``yaml_source`` and ``yaml_plain``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from callcenter.errors import ConfigError
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flow_model import Confirm, Defaults, MenuNode
from callcenter.ivr.flowset import FlowSetError
from callcenter.ivr.tryout import load_scenarios
from callcenter.ivr.yaml_source import YamlSyntaxError, loads_located

#: (name, text, line, column, words the message must have)
SYNTAX = [
    ("tab indent", "nodes:\n\tmenu: 1\n", 2, 1, "a tab character here"),
    ("tab inside indent", "nodes:\n  a: 1\n \tb: 2\n", 3, 2, "Replace the tab with spaces"),
    ("tab after colon", "a:\t1\n", 1, 3, "a tab character here"),
    ("missing colon, last key", "a:\n  b: 1\n  c\n", 3, 3, "this line has no colon"),
    ("missing colon, then a key", "a:\n  b 1\n  d: 2\n", 2, 3, "this line has no colon"),
    ("no space after colon", "a:\n  b:1\n  c: 2\n", 2, 5, "a space is missing after this colon"),
    ("indented too far", "a:\n  b: 1\n   c: 2\n", 3, 4, "more than the line above (2)"),
    ("indented between levels", "nodes:\n  a:\n    type: play\n   next: b\n", 4, 4,
     "lines up with no key above it"),
    ("indented back too little", "a:\n  b:\n    c: 1\n  d: 2\n e: 3\n", 5, 2,
     "indented 1 space, which lines up with no key"),
    ("unclosed double quote", 'a: "hello\nb: 2\nc: 3\n', 1, 4, "this quote is never closed"),
    ("unclosed single quote", "a: 'hello\nb: 2\n", 1, 4, "this quote is never closed"),
    ("quote closed lines later", 'a: "x\nb: "y"\n', 1, 4, "this quote is not closed on its line"),
    ("unclosed brace", "a: {x: 1, y: 2\nb: 2\n", 1, 4, "this bracket is not closed: end the"
                                                      " list with }"),
    ("unclosed bracket", "a: [x, y\nb: 2\n", 1, 4, "end the list with ]"),
    ("unclosed bracket at the end", "flow: main\nstart: [unclosed\n", 2, 8,
     "this bracket is not closed"),
    ("missing comma", "a: {x: 1 y: 2}\n", 1, 11, "a comma is missing here"),
    ("hash inside braces", 'options: {"1": a, #: b}\nx: 1\n', 1, 19, "Quote it: \"#\""),
    ("hash value inside braces", "a: {t: #}\n", 1, 8, "a # after a space, or straight after"),
    ("hash key right after the brace", "keys: {#: agent, 1: x}\n", 1, 8,
     "straight after {, [ or a comma, starts a comment"),
    ("hash right after a comma", "keys: {1: x,#: agent}\nb: 1\n", 1, 13, 'Quote it: "#"'),
    ("hash item in brackets", "dtmf: [1, 2, #]\nnext: x\n", 1, 14, 'Quote it: "#"'),
    ("apostrophe in plain text, error below", "welcome:\n  en: We are open - 'til five\n"
     "  zh: 好\nnodes:\n  a: {x: 1\n  b: 2\n", 5, 6, "this bracket is not closed"),
    ("apostrophe after a comma in plain text", "a: one, 'two\nb: {x\nc: 1\n", 2, 4,
     "this bracket is not closed"),
    ("star key", 'options:\n  "1": a\n  *: b\n', 3, 3, "quote it: \"*\""),
    ("star key in braces", 'options: {"1": a, *: b}\n', 1, 19, "quote it: \"*\""),
    ("star value", "back_key: *\n", 1, 11, "means a reference to another part of the file"),
    ("ampersand key", "a:\n  &: y\n", 2, 3, "means an anchor"),
    ("colon in a value", "note: warning: slow\n", 1, 14, "put the value in quotes"),
    ("list among keys", "a:\n  b: 1\n  - x\n", 3, 3, "a list item (-) among keys"),
    ("key among list items", "a:\n  - x\n  b: 1\n", 3, 3, "a key among list items"),
    ("percent value", "a: %x\n", 1, 4, "a value cannot start with '%'"),
    ("backslash", 'a: "C:\\path"\n', 1, 8, "use single quotes"),
]


@pytest.mark.parametrize(("text", "line", "col", "words"), [c[1:] for c in SYNTAX],
                         ids=[c[0] for c in SYNTAX])
def test_a_syntax_error_is_explained_at_the_line_to_fix(text: str, line: int, col: int,
                                                        words: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        loads_located(text, "f.yaml")
    err = caught.value
    assert (err.where.line, err.where.col) == (line, col), str(err)
    assert words in err.message
    assert "YAML syntax:" not in err.message  # not the parser's own words
    shown = text.splitlines()[line - 1].replace("\t", "→")
    assert f"{line:>5} | {shown}\n" in err.message  # the line, then a caret under the column
    assert err.message.endswith(" " * (col - 1) + "^")


@pytest.mark.parametrize(("text", "line", "words"), [
    ('options:\n  "1": a\n  #: b\n', 3, "YAML reads it as a comment and the key '#' is lost"),
    ("options: {\"1\": a}\n#:  b\n", 2, "Quote the key: \"#\""),
    ("terminator: #\n", 1, "the # after 'terminator:' starts a comment"),
    ("yes_key:   # 1\n", 1, "yes_key is left empty. Quote it: yes_key: \"#\""),
    ("note: #\n", 1, "note is left empty"),
    ("- name: x\n  dtmf: 1 2 # 5\n", 2, 'Quote the whole value: dtmf: "1 2 # 5"'),
    ("welcome:\n  zh: 请按 # 号键结束\n  en: x\n", 2, 'zh is only "请按"). Put the text in quotes: '
     'zh: "请按 # 号键结束"'),
    ("welcome: {zh: 好,\n  en: Press 1 #then pound\n  }\n", 2, 'en: "Press 1 #then pound"'),
    ("flow: main\n#: agent\nnodes: {}\n", 2, "the key '#' is lost"),
], ids=["hash key", "hash key at column 1", "terminator", "key field with keypad comment",
        "bare hash value", "scenario keys", "prompt text cut at #", "prompt text in braces",
        "hash key between top-level keys"])
def test_what_yaml_would_silently_drop_is_refused(text: str, line: int, words: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        loads_located(text, "f.yaml")
    assert caught.value.where.line == line and words in caught.value.message


def test_comments_that_are_comments_pass() -> None:
    text = "# a remark\ndefaults:   # optional\n  timeout: 5   # seconds\nnote:   # none\n"
    assert loads_located(text, "f.yaml")[0] == {"defaults": {"timeout": 5}, "note": None}


@pytest.mark.parametrize(("text", "expected"), [
    ("- name: x\n  dtmf: 3 1  # account queries\n", [{"name": "x", "dtmf": "3 1"}]),
    ("node:\n  terminator:   # none\n", {"node": {"terminator": None}}),
    ("flow: main\nnote: |\n  Keys:\n  #: repeat\n  *: back\n",
     {"flow": "main", "note": "Keys:\n#: repeat\n*: back\n"}),
    ("note: >\n  #: repeat\nnext: x\n", {"note": "#: repeat\n", "next": "x"}),
    ("a: 'x\n  #: y'\nb: 1\n", {"a": "x #: y", "b": 1}),
    ("welcome: {zh: \"请按 # 号键\", en: 'Press # to end'}  # the greeting\n",
     {"welcome": {"zh": "请按 # 号键", "en": "Press # to end"}}),
], ids=["scenario keys then a comment", "empty terminator with a comment", "block scalar",
        "folded scalar", "quoted over two lines", "quoted prompt texts with a comment"])
def test_what_only_looks_like_a_trap_passes(text: str, expected: object) -> None:
    assert loads_located(text, "f.yaml")[0] == expected


def test_a_hash_colon_line_where_no_key_is_expected_is_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    text = "#: the main menu, operators edit\nflow: main\nnodes:\n  a: 1\n    #: odd\n"
    with caplog.at_level("WARNING", logger="callcenter.ivr.yaml_source"):
        assert loads_located(text, "f.yaml")[0] == {"flow": "main", "nodes": {"a": 1}}
    assert [r.getMessage().split(" ", 1)[0] for r in caplog.records] == \
        ["f.yaml:1:1:", "f.yaml:5:5:"]
    assert "If it was meant as the key '#', quote the key" in caplog.records[0].getMessage()


def test_keys_are_read_as_written_and_values_as_people_mean_them() -> None:
    data, _ = loads_located(
        "options: {0: a, 1: b, 00: c, 08: d, yes: e, on: f, no: g}\n"
        "quiet: 22:00\nlate: 1:30\ncode: 000001\nmonth: 08\nrate: 0.5\nn: 10\nok: true\n",
        "f.yaml")
    assert list(data["options"]) == ["0", "1", "00", "08", "yes", "on", "no"]
    assert (data["quiet"], data["late"], data["code"], data["month"]) == \
        ("22:00", "1:30", "000001", "08")
    assert (data["rate"], data["n"], data["ok"]) == (0.5, 10, True)


def test_a_key_field_written_as_a_number_is_that_key() -> None:
    confirm = Confirm.model_validate({"type": "confirm", "prompts": ["x"], "yes": "a",
                                      "no": "b", "yes_key": 1, "no_key": 2})
    assert (confirm.yes_key, confirm.no_key) == ("1", "2")
    assert Defaults.model_validate({"agent_key": 0}).agent_key == "0"


def test_a_flow_file_with_a_hash_key_is_refused_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text(
        "\n".join(f"{p}: {{zh: 好, en: ok}}" for p in
                  ("goodbye", "invalid_choice", "no_input", "menu_text")) + "\n")
    flow = tmp_path / "main.yaml"
    flow.write_text("flow: main\nstart: menu\nnodes:\n  menu:\n    type: menu\n"
                    "    prompts: [menu_text]\n    options:\n      \"1\": bye\n      #: bye\n"
                    "  bye: {type: hangup, prompts: [goodbye]}\n")
    with pytest.raises(FlowSetError) as caught:
        load_flowset(tmp_path)
    assert str(caught.value).startswith(f"{flow}:9:7: this line starts with #")
    flow.write_text(flow.read_text().replace("#: bye", '"#": bye'))
    menu = load_flowset(tmp_path).flows["main"].nodes["menu"]
    assert isinstance(menu, MenuNode) and menu.options == {"1": "bye", "#": "bye"}


def test_a_scenario_file_with_a_lost_hash_is_refused_in_plain_words(tmp_path: Path) -> None:
    (tmp_path / "calls.yaml").write_text('- name: rate the call\n  dtmf: "1"\n'
                                         "- name: rate it again\n  dtmf: 1 600519 2 # 5\n")
    with pytest.raises(ConfigError) as caught:
        load_scenarios(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'calls.yaml'}:4:20: bad scenario file: "
                                        "this # starts a comment")
    (tmp_path / "calls.yaml").write_text('- name: quoted\n  dtmf: "1 600519 2 # 5"\n'
                                         "  at: 2026-11-23T20:00:00\n")
    [(_, scenario)] = load_scenarios(tmp_path)
    assert scenario.dtmf == "1 600519 2 # 5" and scenario.at == dt.datetime(2026, 11, 23, 20)
