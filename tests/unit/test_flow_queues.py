"""Flows and the ACD's queues: ``flows check`` knows the configured queues (a misspelt one is an
error at its line, with a "did you mean"), and a call that still asks the ACD for an unknown
queue reaches a person in the catch-all queue, with an error logged (``acd/core.py``)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from callcenter.acd.core import AcdCore
from callcenter.acd.effects import Effect
from callcenter.cli import main
from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSetError
from callcenter.ivr.registry import FlowRegistry
from tests.unit.acd_world import FakeClock, default_settings

FLOWS = REPO_ROOT / "ivr_flows"


def _flows_with_queue(tmp_path: Path, queue: str) -> Path:
    directory = tmp_path / "ivr_flows"
    shutil.copytree(FLOWS, directory)
    agent = directory / "agent.yaml"
    text = agent.read_text(encoding="utf-8")
    assert "    queue: general\n" in text
    agent.write_text(text.replace("    queue: general\n", f"    queue: {queue}\n"))
    return directory


def test_a_misspelt_queue_is_an_error_at_its_line_with_a_suggestion(tmp_path: Path) -> None:
    directory = _flows_with_queue(tmp_path, "genral")
    line = next(n for n, text in enumerate((directory / "agent.yaml").read_text().splitlines(),
                                           start=1) if "queue: genral" in text)
    with pytest.raises(FlowSetError) as caught:
        load_flowset(directory, actions=ACTION_NAMES, queues=frozenset({"general", "english"}))
    [problem] = caught.value.diagnostics
    assert (Path(problem.where.file).name, problem.where.line) == ("agent.yaml", line)
    assert problem.message.startswith("unknown queue 'genral' (did you mean 'general'?)")
    assert problem.message.endswith("acd.queues in the settings): english, general")


def test_a_queue_of_the_settings_passes_and_without_settings_queues_are_not_checked(
        tmp_path: Path) -> None:
    directory = _flows_with_queue(tmp_path, "vip-desk")  # settings allow hyphens
    assert load_flowset(directory, actions=ACTION_NAMES, queues=frozenset({"vip-desk"}))
    assert load_flowset(directory, actions=ACTION_NAMES)
    with pytest.raises(FlowSetError, match="unknown queue 'vip-desk';"):
        load_flowset(directory, actions=ACTION_NAMES, queues=frozenset({"general"}))


def test_the_registry_refuses_a_reload_that_names_an_unknown_queue(tmp_path: Path) -> None:
    directory = _flows_with_queue(tmp_path, "general")
    registry = FlowRegistry(directory, actions=ACTION_NAMES, queues=frozenset({"general"}))
    registry.load()
    agent = directory / "agent.yaml"
    agent.write_text(agent.read_text().replace("queue: general", "queue: generl"))
    result = registry.reload()
    assert not result.accepted
    assert any("unknown queue 'generl' (did you mean 'general'?)" in p for p in result.problems)


def test_flows_check_uses_the_configured_queues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    directory = _flows_with_queue(tmp_path, "vip")
    assert main(["flows", "check", str(directory)]) == 1  # the default settings: general only
    assert "unknown queue 'vip'" in capsys.readouterr().err
    monkeypatch.setenv("CALLCENTER_ACD__QUEUES", '[{"name": "general"}, {"name": "vip"}]')
    assert main(["flows", "check", str(directory)]) == 0


def test_an_unknown_queue_at_run_time_reaches_the_catch_all_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    effects: list[Effect] = []
    core = AcdCore(default_settings(), effects.append, FakeClock(1000.0))
    with caplog.at_level(logging.ERROR, logger="callcenter.acd.core"):
        waiter = core.enqueue("c-1", "genral", "PJSIP/carrier-1", "uid-1", {"lang": "zh"})
    assert waiter.queue == "general"  # the first configured queue: a person, not a dead end
    assert waiter.context == {"lang": "zh", "queue_asked": "genral"}
    assert core.find_waiter(call_id="c-1") is waiter
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "asked for queue 'genral'" in record.getMessage()
    assert "flows check" in record.getMessage()
    known = core.enqueue("c-2", "english", "PJSIP/carrier-2", "uid-2", {})
    assert (known.queue, known.context) == ("english", {})
