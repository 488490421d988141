"""The shipped flows: they check clean, and every scenario file passes on the interpreter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callcenter.cli import main
from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.prompts import MAX_CHUNK, chunks, voiced_text
from callcenter.ivr.tryout import (
    DemoLedgers,
    Scenario,
    check_scenario,
    load_scenarios,
    run_scenario,
    try_flow,
)

FLOWS = REPO_ROOT / "ivr_flows"
SCENARIOS = load_scenarios(FLOWS / "scenarios")


@pytest.fixture(scope="module")
def flows() -> FlowSet:
    return load_flowset(FLOWS, actions=ACTION_NAMES)


@pytest.fixture(scope="module")
def ledgers() -> DemoLedgers:
    """One seed per instant for the whole module, as `flows test` shares them in a run."""
    return DemoLedgers()


@pytest.mark.parametrize("scenario", [s for _, s in SCENARIOS], ids=lambda s: s.name[:40])
async def test_shipped_scenario(flows: FlowSet, ledgers: DemoLedgers, scenario: Scenario) -> None:
    assert await run_scenario(flows, scenario, ledgers) == []


async def test_a_wrong_expectation_is_reported(flows: FlowSet) -> None:
    got = await try_flow(flows, "hotline", "1 600519")
    wrong = Scenario(name="x", dtmf="", prompts=["zh/stock/600519", "zh/greet_default"],
                     actions={"quote": "unknown_code"}, end="queue:nowhere")
    problems = check_scenario(wrong, got)
    assert "prompt zh/greet_default not heard (in order)" in problems
    assert "action quote: expected unknown_code, got ok" in problems
    assert any(p.startswith("ended with ") for p in problems)


def test_flows_check_cli_reports_file_line_and_fails(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "check", str(FLOWS)]) == 0
    assert "11 flows" in capsys.readouterr().out
    broken = tmp_path / "flows"
    shutil.copytree(FLOWS, broken)
    text = (broken / "quotes.yaml").read_text()
    (broken / "quotes.yaml").write_text(text.replace("next: lookup", "next: lookupp"))
    assert main(["flows", "check", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken / 'quotes.yaml'}:" in err and "unknown node 'lookupp'" in err
    assert "nothing was changed" in err


def test_flows_try_cli_prints_what_is_heard(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "try", "hotline", "--dtmf", "9 1 600519"]) == 0
    out = capsys.readouterr().out
    assert "Please enter the six digit stock code." in out and "Kweichow Moutai" in out
    assert "→ quote: ok" in out


def test_long_prompts_are_rendered_in_chunks_and_numbers_spelled_out() -> None:
    text = voiced_text("交易时间为9:30至11:30，涨跌幅限制为5%。" * 4, "zh")
    assert "9" not in text and "jiu3 dian3 san1 shi2 fen1" in text
    assert "bai3 fen1 zhi1 wu3" in text
    parts = chunks(text)
    assert all(len(p) <= MAX_CHUNK for p in parts) and len(parts) > 1
    assert " ".join(parts).split() == text.split()
