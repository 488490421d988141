"""``flows try`` and ``flows test`` never read the machine's clock: the sandbox's time stands
still at ``--at`` (a scenario's ``at:``) or ``tryout.DEFAULT_AT``, and the back office keeps the
configured rules, holidays included (``tryout.py``, ``cli.py``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import callcenter.broker.sandbox
import callcenter.ivr.actions
import callcenter.ivr.interpreter
from callcenter.broker.rules import DEFAULT_RULES
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.cli import main
from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.tryout import DEFAULT_AT, Scenario, load_scenarios, run_scenario, try_flow

FLOWS = REPO_ROOT / "ivr_flows"
#: the shipped scenarios that name no time (they used to run at the machine's), and one that does
SCENARIOS = [s for _, s in load_scenarios(FLOWS / "scenarios")]
AT_RISK = [s for s in SCENARIOS if s.at is None] + [s for s in SCENARIOS if s.at][:1]
#: a bank-to-securities transfer of 500 yuan by demo customer 10000001 (docs/backoffice.md)
TRANSFER = "3 2 10000001# 135790 1 246801 802413 500# 1"
#: machine dates that used to change results: National Day, a Saturday, a night
MACHINE_DATES = [dt.datetime(2026, 10, 1, 10, 0), dt.datetime(2026, 11, 21, 11, 0),
                 dt.datetime(2026, 11, 24, 3, 0)]


@pytest.fixture(scope="module")
def flows() -> FlowSet:
    return load_flowset(FLOWS, actions=ACTION_NAMES)


@pytest.fixture(params=MACHINE_DATES, ids=lambda d: d.strftime("%Y-%m-%d_%H%M"))
def machine_date(request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[dt.datetime]:
    """The machine's clock says ``request.param`` (Shanghai) to every module that reads it."""
    moment = request.param.replace(tzinfo=DEFAULT_RULES.tz)

    class MachineClock(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return moment.astimezone(tz) if tz is not None else moment.replace(tzinfo=None)

    fake = types.SimpleNamespace(**{**vars(dt), "datetime": MachineClock})
    for module in (callcenter.broker.sandbox, callcenter.ivr.interpreter,
                   callcenter.ivr.actions):
        monkeypatch.setattr(module, "dt", fake)
    yield request.param


async def test_the_mocked_machine_clock_is_what_a_clockless_sandbox_reads(
        machine_date: dt.datetime, tmp_path: Path) -> None:
    """The mock bites: a back office left on the machine's clock sees the mocked date."""
    office = await SandboxBackOffice.open(tmp_path / "bo.db")
    try:
        assert office.now().replace(tzinfo=None) == machine_date
    finally:
        await office.close()


@pytest.mark.parametrize("scenario", AT_RISK, ids=lambda s: s.name[:40])
async def test_a_scenario_gives_the_same_result_whatever_the_machine_date(
        flows: FlowSet, scenario: Scenario, machine_date: dt.datetime) -> None:
    assert await run_scenario(flows, scenario) == []


async def test_without_at_a_try_runs_at_the_default_instant(
        flows: FlowSet, machine_date: dt.datetime) -> None:
    """National Day, a Saturday or 03:00 on the machine: the transfer still goes
    through, as on Monday 23 November 2026 at 10:00 (``DEFAULT_AT``), agents' hours too."""
    got = await try_flow(flows, "hotline", TRANSFER)
    assert ("transfer", "ok") in got.actions
    assert (await try_flow(flows, "hotline", "0")).ending == "queue:general"
    assert dt.datetime(2026, 11, 23, 10, 0) == DEFAULT_AT


async def test_the_instant_given_is_the_only_clock(flows: FlowSet) -> None:
    night = await try_flow(flows, "hotline", TRANSFER, at=dt.datetime(2026, 11, 23, 20, 0))
    assert ("transfer", "transfer_closed") in night.actions
    holiday = dataclasses.replace(DEFAULT_RULES, holidays=frozenset({dt.date(2026, 11, 23)}))
    closed = await try_flow(flows, "hotline", TRANSFER, rules=holiday)
    assert ("transfer", "transfer_closed") in closed.actions


def test_flows_try_closes_the_market_on_a_configured_holiday_given_by_at(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["flows", "try", "hotline", "--dtmf", TRANSFER, "--at", "2026-11-23 10:00"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sandbox time 2026-11-23 10:00" in out and "transfer: ok" in out
    monkeypatch.setenv("CALLCENTER_BACKOFFICE__HOLIDAYS", '["2026-11-23"]')
    assert main(args) == 0
    assert "transfer: transfer_closed" in capsys.readouterr().out


def test_flows_try_refuses_an_at_that_is_no_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "try", "hotline", "--at", "next monday"]) != 0
    assert "--at 'next monday': not a time" in capsys.readouterr().err


def test_flows_test_uses_the_configured_holidays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The same scenario file passes, then fails once 2026-11-23 is a configured holiday."""
    directory = tmp_path / "ivr_flows"
    shutil.copytree(FLOWS, directory)
    for other in (directory / "scenarios").glob("*.yaml"):
        other.unlink()
    (directory / "scenarios" / "hotline.yaml").write_text(
        f'- name: a transfer on the default day\n  dtmf: "{TRANSFER}"\n'
        "  actions: {transfer: ok}\n", encoding="utf-8")
    assert main(["flows", "test", str(directory)]) == 0
    monkeypatch.setenv("CALLCENTER_BACKOFFICE__HOLIDAYS", '["2026-11-23"]')
    assert main(["flows", "test", str(directory)]) == 1
    assert "action transfer: expected ok, got transfer_closed" in capsys.readouterr().out

