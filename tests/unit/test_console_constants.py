"""The console's protocol constants, generated from the Python models into
``agent_console/js/protocol.js`` (``callcenter.seats.console_constants``).

The generated file is committed (the engine serves the console's files as they are); these tests
catch it drifting from the models, the generator's rules for patterns, and the console's other
hand-written copies of the protocol's words: its translations and its static <option>s.
"""

from __future__ import annotations

import re
import typing
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydantic import BaseModel

from callcenter.acd.seat import DEFAULT_REASONS, SYSTEM_REASONS, SeatState
from callcenter.acd.targets import Target
from callcenter.broker.interface import Tier
from callcenter.seats import console_constants as cc
from callcenter.seats import protocol as p
from callcenter.seats.backend import AGENT_REASONS

CONSOLE = Path(__file__).resolve().parents[2] / "agent_console"
FIX = f".venv/bin/{cc.COMMAND}"


def test_the_committed_module_is_what_the_generator_writes() -> None:
    committed = cc.OUTPUT.read_text(encoding="utf-8") if cc.OUTPUT.is_file() else ""
    assert committed == cc.render(), (
        f"agent_console/js/protocol.js is out of date with the Python models: run `{FIX}` "
        "and commit the result"
    )


def test_check_mode_reports_drift_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "js" / "protocol.js"
    assert cc.main(["--check", "--output", str(out)]) == 1  # missing
    assert cc.COMMAND in capsys.readouterr().err
    assert cc.main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == cc.render()
    assert cc.main(["--check", "--output", str(out)]) == 0
    out.write_text(cc.render().replace('"gold"', '"golden"'), encoding="utf-8")
    assert cc.main(["--check", "--output", str(out)]) == 1


def test_the_reasons_an_agent_may_pick_are_the_backends() -> None:
    # the backend is the authority (its login reply sends them); the generator follows its rule
    assert cc.agent_reasons() == list(AGENT_REASONS)


def test_the_module_names_every_source_value() -> None:
    text = cc.render()
    for word in [*(s.value for s in SeatState), *(t.value for t in Tier),
                 *typing.get_args(p.WrapUp.model_fields["disposition"].annotation),
                 *(c.value for c in p.ErrorCode), *(r.value for r in p.Role)]:
        assert f'"{word}"' in text
    assert f"export const PROTOCOL_VERSION = {p.PROTOCOL_VERSION};" in text
    assert "export const AGENT_ID = /^[A-Za-z0-9_.-]{1,32}$/;" in text
    assert "export const PHONE_NUMBER = /^\\+?[0-9]{2,20}$/;" in text


@pytest.mark.parametrize(("pattern", "anchor", "literal"), [
    (r"^[0-9]{0,16}$", False, r"/^[0-9]{0,16}$/"),
    (r"\+?[0-9]{2,20}", True, r"/^\+?[0-9]{2,20}$/"),
    (r"a|b", True, r"/^(?:a|b)$/"),
    (r"^(PJSIP|SIP)/[0-9]{2,4}$", False, r"/^(PJSIP|SIP)\/[0-9]{2,4}$/"),
    (r"^a\/b$", False, r"/^a\/b$/"),
])
def test_patterns_become_javascript_literals(pattern: str, anchor: bool, literal: str) -> None:
    assert cc.js_regex(pattern, anchor=anchor) == literal


@pytest.mark.parametrize("pattern", [
    r"^\d{6}$",          # Unicode digits in Python and pydantic, ASCII in JavaScript
    r"^\w+$",
    r"^(?P<code>[0-9]+)$",
    r"(?i)^abc$",
    r"^abc\Z",
    r"^[0-9]++$",
])
def test_patterns_that_mean_something_else_in_javascript_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="does not mean the same"):
        cc.js_regex(pattern)


def _i18n_keys() -> dict[str, set[str]]:
    """The translation keys of i18n.js, by language."""
    text = (CONSOLE / "i18n.js").read_text(encoding="utf-8")
    zh, en = text.index("  zh: {"), text.index("  en: {")
    key = re.compile(r'^\s*"([^"]+)":', re.MULTILINE)
    return {"zh": set(key.findall(text, zh, en)), "en": set(key.findall(text, en))}


def test_every_word_the_console_shows_has_a_text_in_both_languages() -> None:
    wanted = [
        *(f"state.{s.value}" for s in SeatState),
        *(f"reason.{r}" for r in (*DEFAULT_REASONS, *SYSTEM_REASONS)),
        *(f"disp.{d}" for d in typing.get_args(p.WrapUp.model_fields["disposition"].annotation)),
        *(f"tier.{t.value}" for t in Tier),
        *(f"role.{r.value}" for r in p.Role),
        *(f"err.{c.value}" for c in p.ErrorCode),
        *(f"target.kind.{k}" for k in typing.get_args(Target.model_fields["kind"].annotation)),
    ]
    for lang, keys in _i18n_keys().items():
        missing = [k for k in wanted if k not in keys]
        assert not missing, f"agent_console/i18n.js ({lang}) has no text for {missing}"


class _Options(HTMLParser):
    """The option values of each <select id=...> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.selects: dict[str, list[str]] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "select":
            self._current = values.get("id") or ""
            self.selects[self._current] = []
        elif tag == "option" and self._current is not None:
            self.selects[self._current].append(values.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._current = None


def test_the_pages_static_choices_are_the_protocols() -> None:
    page = _Options()
    page.feed((CONSOLE / "index.html").read_text(encoding="utf-8"))

    def literal(model: type[BaseModel], field: str) -> list[str]:
        return [v for v in typing.get_args(model.model_fields[field].annotation) if v]

    assert page.selects["msg-channel"] == literal(p.SendMessage, "channel")
    assert page.selects["msg-template"] == literal(p.SendMessage, "template")
    assert page.selects["sub-kind"] == literal(p.Subscribe, "kind")
    assert page.selects["sub-channel"] == literal(p.Subscribe, "channel")
    assert set(page.selects["inbox-filter"]) == {*literal(p.Contacts, "state"), "open", "all"}
