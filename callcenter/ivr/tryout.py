"""Running flows without a phone: ``callcenter flows try`` and scenario files.

``try_flow`` drives the engine's own interpreter and actions against a throwaway sandbox back
office (seeded with the demo customers), feeding keys from a script instead of a caller.
Scenario files (``ivr_flows/scenarios/*.yaml``) list calls with their expected prompts, action
outcomes and ending; ``run_scenarios`` checks them (operators: ``callcenter flows test``).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import seed_demo
from callcenter.errors import ConfigError
from callcenter.ivr.actions import BackgroundWork, CallSession, HotlineActions
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.interpreter import Call, End, Interpreter, Outcome, Transfer
from callcenter.ivr.prompts import backoffice_prompts
from callcenter.ivr.runner import ScriptFlowIO, drive, run_action
from callcenter.store.db import open_db


@dataclass
class TryResult:
    prompts: list[str] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)
    end: End | Transfer | None = None

    @property
    def ending(self) -> str:
        if isinstance(self.end, Transfer):
            return f"queue:{self.end.queue}"
        return self.end.reason if self.end else "?"


async def try_flow(flows: FlowSet, flow: str, dtmf: str, *, caller: str = "13700000000",
                   lang: str = "zh", at: dt.datetime | None = None,
                   out: Callable[[str], None] = lambda _line: None) -> TryResult:
    if flow not in flows.flows:
        raise ConfigError(f"no flow {flow!r}; flows: {', '.join(sorted(flows.flows))}")
    result = TryResult()
    texts = {**flows.prompts,
             **{k: {"zh": v.zh, "en": v.en} for k, v in backoffice_prompts().items()}}
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_db(Path(tmp) / "try.db")
        office = await SandboxBackOffice.open(Path(tmp) / "backoffice.db")
        try:
            await seed_demo(office)
            if at is not None:
                office.set_clock(at)
            session = CallSession("try", caller)
            table = HotlineActions(office, db, BackgroundWork(), session,
                                   clock=office.now).table()
            interp = Interpreter(flows, flow, {"caller": caller, "call_id": "try", "lang": lang},
                                 clock=office.now)

            async def actions(call: Call) -> Outcome:
                outcome = await run_action(table, call)
                result.actions.append((call.action, outcome.outcome))
                out(f"  → {call.action}: {outcome.outcome}")
                return outcome

            def note(kind: str, detail: Mapping[str, str]) -> None:
                if kind == "ivr.prompts":
                    result.prompts.extend(detail["ids"].split())

            result.end = await drive(interp, ScriptFlowIO(dtmf, texts, out), actions, note)
        finally:
            await office.close()
            await db.close()
    return result


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    flow: str = "hotline"
    dtmf: str
    caller: str = "13700000000"
    lang: str = "zh"
    at: dt.datetime | None = None
    #: prompts that must be heard, in this order (others may come between)
    prompts: list[str] = Field(default_factory=list)
    #: action -> outcome, each must have happened
    actions: dict[str, str] = Field(default_factory=dict)
    #: "hangup", "retries_exhausted", "queue:<name>", ...
    end: str | None = None


def load_scenarios(directory: Path) -> list[tuple[Path, Scenario]]:
    out: list[tuple[Path, Scenario]] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            out.extend((path, Scenario.model_validate(item)) for item in items)
        except (yaml.YAMLError, ValidationError, TypeError) as exc:
            raise ConfigError(f"{path}: bad scenario file: {exc}") from exc
    return out


def check_scenario(s: Scenario, got: TryResult) -> list[str]:
    """What the run did differently from what the scenario expects (empty: it passed)."""
    problems = []
    position = 0
    for prompt in s.prompts:
        try:
            position = got.prompts.index(prompt, position) + 1
        except ValueError:
            problems.append(f"prompt {prompt} not heard (in order)")
    for action, outcome in s.actions.items():
        if (action, outcome) not in got.actions:
            seen = [o for a, o in got.actions if a == action] or ["never called"]
            problems.append(f"action {action}: expected {outcome}, got {', '.join(seen)}")
    if s.end is not None and got.ending != s.end:
        problems.append(f"ended with {got.ending}, expected {s.end}")
    return problems


async def run_scenario(flows: FlowSet, s: Scenario) -> list[str]:
    got = await try_flow(flows, s.flow, s.dtmf, caller=s.caller, lang=s.lang, at=s.at)
    return check_scenario(s, got)
