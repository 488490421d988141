"""Proof recordings of orders and transfers: the interpreter starts one at an idempotent
confirm and ends it before the next question, so no password is ever in one (every shipped
scenario is run with a FlowIO that refuses a secret question while a proof runs); a scenario's
``proof`` expectation fails when the proof does not hold its prompts."""

from __future__ import annotations

from typing import ClassVar

import pytest

from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.ivr import tryout
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.interpreter import Ask, Digits, Proof
from callcenter.ivr.runner import ScriptFlowIO
from callcenter.ivr.tryout import Scenario, TryResult, check_scenario, load_scenarios


class _Watching(ScriptFlowIO):
    """The script's keys, and a log of proofs and secret questions."""

    log: ClassVar[list[str]] = []

    async def proof(self, step: Proof) -> None:
        self.log.append("start" if step.key else "end")
        await super().proof(step)

    async def ask(self, step: Ask) -> Digits:
        if step.secret:
            self.log.append("secret")
        return await super().ask(step)


async def test_no_shipped_scenario_asks_a_secret_while_a_proof_records(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tryout, "ScriptFlowIO", _Watching)
    flows = load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)
    proofs = secrets = 0
    ledgers = tryout.DemoLedgers()
    for _, scenario in load_scenarios(REPO_ROOT / "ivr_flows" / "scenarios"):
        _Watching.log = []
        await tryout.try_flow(flows, scenario.flow, scenario.dtmf, caller=scenario.caller,
                              lang=scenario.lang, at=scenario.at, before=scenario.before,
                              ledgers=ledgers)
        recording = False
        for event in _Watching.log:
            assert not (recording and event == "secret"), scenario.name
            if event in ("start", "end"):
                assert recording == (event == "end"), f"{scenario.name}: unbalanced proofs"
                recording = event == "start"
        assert not recording, f"{scenario.name}: a proof left running at the call's end"
        proofs += _Watching.log.count("start")
        secrets += _Watching.log.count("secret")
    assert proofs >= 3 and secrets >= 10  # the scenarios do reach orders, transfers, passwords


def test_a_proof_expectation_fails_when_the_proof_misses_a_prompt() -> None:
    scenario = Scenario(name="x", dtmf="1", proof=["zh/order_readback", "zh/order_placed"])
    got = TryResult(proofs=[["zh/order_readback", "zh/confirm_or_cancel"]])
    assert check_scenario(scenario, got) == [
        "no proof recording holds zh/order_readback zh/order_placed (proofs: "
        "zh/order_readback zh/confirm_or_cancel)"]
    got.proofs.append(["zh/order_readback", "zh/x", "zh/order_placed"])
    assert check_scenario(scenario, got) == []
    assert check_scenario(Scenario(name="y", dtmf="1", no_proof=True), got) == [
        "2 proof recording(s) made, expected none"]
