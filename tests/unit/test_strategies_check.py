"""Strategy files and ``check``: every problem as ``file:line:col: message``; the shipped ones
pass."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from callcenter.cli import main
from callcenter.config import REPO_ROOT
from callcenter.strategies.load import StrategySetError, load_files, load_strategies
from tests.unit.strategy_world import SITE

GOOD = """\
title: {zh: 生日祝福, en: Birthday greeting}
population:
  birthday: {within_days: 0}
schedule: {at: "09:00", days: every_day}
action:
  message:
    channel: sms
    text: {zh: "{name}生日快乐", en: "Happy birthday, {name}"}
priority: 40
caps: {cooldown_days: 300}
"""

TASK = """\
title: {zh: 回访, en: Call}
population:
  tier: {in: [gold]}
action:
  task:
    text: {zh: 回访, en: Call}
    script: {zh: 您好, en: Hello}
    form:
      - {name: outcome, kind: choice, choices: [ok, no], success: [ok]}
    team: general
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, name: str = "s.yaml") -> list[str]:
    path = write(tmp_path, name, text)
    with pytest.raises(StrategySetError) as caught:
        load_files([path], site=SITE)
    return [line.removeprefix(f"{path}:") for line in caught.value.diagnostics]


def test_every_shipped_strategy_checks() -> None:
    shipped = load_strategies(REPO_ROOT / "strategies", site=SITE)
    assert {s.id for s in shipped} == {
        "unbound-bank", "morning-note", "holiday-greeting", "birthday-greeting",
        "new-account-verification", "complaint-callback", "core-customers"}
    verification = next(s for s in shipped if s.id == "new-account-verification")
    assert verification.action.task is not None
    assert verification.action.task.dial.record is True
    assert verification.action.task.dial.mode.value in ("preview", "progressive")


def test_a_good_file_loads_with_its_id_from_the_file_name(tmp_path: Path) -> None:
    [strategy] = load_files([write(tmp_path, "birthday.yaml", GOOD)])
    assert strategy.id == "birthday"
    assert strategy.action.channel == "sms"


def test_an_unknown_field_is_located(tmp_path: Path) -> None:
    text = GOOD.replace("priority: 40", "priority: 40\nurgency: 3")
    assert problems(tmp_path, text) == ["10:1: unknown field 'urgency'"]


def test_an_unknown_operator_is_located(tmp_path: Path) -> None:
    text = GOOD.replace("birthday: {within_days: 0}", "assets: {over: 100}")
    assert problems(tmp_path, text) == ["3:12: unknown field 'over'"]


def test_an_unknown_condition_is_located(tmp_path: Path) -> None:
    text = GOOD.replace("birthday: {within_days: 0}", "age: {min: 18}")
    assert problems(tmp_path, text) == ["3:3: unknown field 'age'"]


def test_money_is_never_a_float(tmp_path: Path) -> None:
    text = GOOD.replace("birthday: {within_days: 0}", "assets: {min: 1000.5}")
    [problem] = problems(tmp_path, text)
    assert problem.startswith("3:12: ") and "quotes" in problem


def test_a_population_without_conditions_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("population:\n  birthday: {within_days: 0}", "population: {}")
    [problem] = problems(tmp_path, text)
    assert problem.startswith("2:1: this population takes every customer")


def test_conditions_that_always_hold_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("birthday: {within_days: 0}",
                        "tier: {in: [ordinary, silver, gold, platinum]}\n"
                        "  trades_30d: {min: 0}")
    [problem] = problems(tmp_path, text)
    assert problem.startswith("2:1: this population takes every customer")
    assert "tier (every tier)" in problem and "trades_30d" in problem


def test_caps_that_allow_twice_a_day_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("cooldown_days: 300", "cooldown_days: 0")
    [problem] = problems(tmp_path, text)
    assert problem.startswith("10:8: cooldown_days 0 would let this strategy contact a"
                              " customer twice in a day")


def test_a_form_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    text = TASK.replace("kind: choice, choices: [ok, no], success: [ok]", "kind: choice")
    [problem] = problems(tmp_path, text)
    assert problem == "9:9: field outcome: a choice needs its choices"


def test_a_dial_plan_that_does_not_validate_is_refused(tmp_path: Path) -> None:
    text = TASK + "    dial: {window: {start: '20:00', end: '09:00'}}\n"
    [problem] = problems(tmp_path, text)
    assert problem == "11:12: the window's start 20:00 is not before its end 09:00"
    text = TASK + "    dial: {timezone: Europe/Paris}\n"
    [problem] = problems(tmp_path, text)
    assert problem.startswith("11:5: ") and "the customer's own" in problem


def test_a_team_that_is_no_queue_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, TASK.replace("team: general", "team: sales")) == [
        "10:5: team 'sales' is no ACD queue (known: general)"]


def test_a_caller_id_that_is_not_the_sites_own_is_refused(tmp_path: Path) -> None:
    """Showing another's number is spoofing: only the site's own (its outbound trunks' caller
    IDs and DIDs; the sandbox's hotline numbers without a trunk) may be a task's caller ID."""
    text = TASK + "    dial: {caller_id: '13800000001'}\n"
    assert problems(tmp_path, text) == [
        "11:12: the caller ID 13800000001 is not one of the site's own numbers"
        " (4008895500, 95500)"]
    own = write(tmp_path, "own.yaml", TASK + "    dial: {caller_id: '95500'}\n")
    [strategy] = load_files([own], site=SITE)
    assert strategy.action.task is not None and strategy.action.task.dial.caller_id == "95500"


def test_a_complaint_deadline_needs_the_complaint_condition(tmp_path: Path) -> None:
    text = TASK + "    deadline: {after: complaint_handled, hours: 24}\n"
    [problem] = problems(tmp_path, text)
    assert problem.startswith("11:16: a deadline after complaint_handled needs")


def test_an_unknown_placeholder_in_a_message_is_refused(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, GOOD.replace("{name}生日快乐", "{nmae}生日快乐"))
    assert problem.startswith("8:5: ") and "['nmae']" in problem


def test_an_id_in_the_file_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "id: x\n" + GOOD) == [
        "1:1: the id is the file's name ('s'): leave it out"]


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    one = write(tmp_path, "birthday.yaml", GOOD)
    (tmp_path / "other").mkdir()
    two = write(tmp_path / "other", "birthday.yaml", GOOD)
    with pytest.raises(StrategySetError) as caught:
        load_files([one, two])
    assert caught.value.diagnostics == [
        f"{two}:1:1: strategy id 'birthday' is also {one}"]


def test_a_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, GOOD.replace("priority: 40", "priority: [40"))
    assert problem.split(":")[0].isdigit()


def test_the_cli_prints_file_line_col_and_fails(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "bad.yaml", GOOD.replace("cooldown_days: 300", "cooldown_days: 0"))
    good = write(tmp_path, "good.yaml", GOOD)
    assert main(["strategies", "check", str(good), str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{bad}:10:8: cooldown_days 0")
    assert err[-1] == "1 problem(s)"
    assert main(["strategies", "check", str(good)]) == 0
    assert "1 strategies: OK" in capsys.readouterr().out


def test_the_cli_checks_the_shipped_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "check"]) == 0
    assert "7 strategies: OK" in capsys.readouterr().out


def test_a_team_is_written_as_the_console_takes_it() -> None:
    import re

    from callcenter.seats.protocol import TEAM
    from callcenter.strategies.model import TEAM_PATTERN

    for team in ("general", "vip-1", "a_b", "9lives", "x" * 32, "x" * 33, "", "General",
                 "a b", "队"):
        assert bool(re.match(TEAM_PATTERN, team)) == (bool(re.match(TEAM, team)) and team != "")


def test_a_schedule_time_says_what_it_takes(tmp_path: Path) -> None:
    text = GOOD.replace('at: "09:00"', 'at: "9:00"')
    assert problems(tmp_path, text) == [
        "4:12: '9:00': a time of day as HH:MM (00:00-23:59), in quotes"]
