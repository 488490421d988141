"""Running flows without a phone: ``callcenter flows try`` and scenario files.

``try_flow`` drives the engine's own interpreter and actions against a throwaway sandbox back
office (seeded with the demo customers), feeding keys from a script instead of a caller.
Scenario files (``ivr_flows/scenarios/*.yaml``) list calls with their expected prompts, action
outcomes and ending; ``run_scenario`` checks one (operators: ``callcenter flows test``).

Time stands still at one instant: the ``at`` given (``--at``, a scenario's ``at:``), else
``DEFAULT_AT``; the machine's clock is never read, so a run gives the same result on any day.
The back office keeps the rules it is given (the CLI passes the configured ones, with their
holidays: ``engine.sandbox_rules``).

Seeding a demo back office hashes the demo passwords with scrypt, most of a short try's time.
A run of many tries (``flows test``) shares one ``DemoLedgers``: each instant's ledger is seeded
once and every try gets a fresh copy of that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callcenter.broker.rules import DEFAULT_RULES, Rules
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import seed_demo
from callcenter.errors import ConfigError
from callcenter.ivr.actions import BackgroundWork, CallSession, HotlineActions
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.interpreter import Call, End, Interpreter, Outcome, Transfer
from callcenter.ivr.prompts import backoffice_prompts
from callcenter.ivr.runner import ScriptFlowIO, drive, run_action
from callcenter.ivr.yaml_source import YamlSyntaxError, load_located
from callcenter.store.db import make_private, open_db

#: the instant a try or scenario runs at when it names none: Monday 23 November 2026, 10:00 in
#: Shanghai, a trading day inside the agents' hours (fixed: never the machine's date)
DEFAULT_AT = dt.datetime(2026, 11, 23, 10, 0)


def fixed_instant(at: dt.datetime | None, rules: Rules) -> dt.datetime:
    """``at`` (naive: in the rules' time zone), or ``DEFAULT_AT``, as an aware instant."""
    when = DEFAULT_AT if at is None else at
    return when if when.tzinfo is not None else when.replace(tzinfo=rules.tz)


@dataclass
class TryResult:
    prompts: list[str] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)
    end: End | Transfer | None = None
    #: the prompts heard in each proof recording (an order's or transfer's, ``Proof``)
    proofs: list[list[str]] = field(default_factory=list)

    @property
    def ending(self) -> str:
        if isinstance(self.end, Transfer):
            return f"queue:{self.end.queue}"
        return self.end.reason if self.end else "?"


class DemoLedgers:
    """Fresh demo back offices under one set of rules, for a run of many tries: the first try
    at an instant seeds a ledger (the demo customers, their scrypt-hashed passwords) and keeps
    its file's bytes; every try at that instant opens a copy of them, as fresh as a new seed.
    The copies share the demo passwords' salts, which nothing in a try can tell."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or DEFAULT_RULES
        self._seeded: dict[dt.datetime, bytes] = {}

    async def open(self, path: Path, when: dt.datetime) -> SandboxBackOffice:
        """A demo back office at ``path`` (which must not exist) whose clock stands at ``when``."""
        if await asyncio.to_thread(path.exists):
            raise FileExistsError(f"{path}: a demo ledger goes to a new file")
        image = self._seeded.get(when)
        if image is None:
            office = await SandboxBackOffice.open(path, rules=self.rules, clock=lambda: when)
            try:
                await seed_demo(office)
            finally:
                await office.close()  # the last connection's close folds the WAL into the file
            image = self._seeded[when] = await asyncio.to_thread(_whole_file, path)
        else:
            await asyncio.to_thread(_write_private, path, image)
        return await SandboxBackOffice.open(path, rules=self.rules, clock=lambda: when)


def _whole_file(path: Path) -> bytes:
    """A closed SQLite file's bytes; refused while a write-ahead log still holds part of it."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise RuntimeError(f"{wal}: still holds writes after the ledger was closed")
    return path.read_bytes()


def _write_private(path: Path, data: bytes) -> None:
    make_private(path)  # 0600 before a byte of customer data is in it
    path.write_bytes(data)


async def try_flow(flows: FlowSet, flow: str, dtmf: str, *, caller: str = "13700000000",
                   lang: str = "zh", at: dt.datetime | None = None, rules: Rules | None = None,
                   out: Callable[[str], None] = lambda _line: None,
                   before: Sequence[str] = (), ledgers: DemoLedgers | None = None) -> TryResult:
    """Run ``flow`` with the keys of ``dtmf`` at the instant ``at`` (default ``DEFAULT_AT``),
    against a fresh demo back office under ``rules`` (default: the built-in A-share rules).
    ``before``: the keys of earlier calls, made first against the same back office (what they
    leave, such as a locked password, is there for this call); the result is this call's.
    ``ledgers``: a run's seeded back offices, whose rules replace ``rules`` (give one or the
    other)."""
    if flow not in flows.flows:
        raise ConfigError(f"no flow {flow!r}; flows: {', '.join(sorted(flows.flows))}")
    if ledgers is not None and rules is not None and rules is not ledgers.rules:
        raise ValueError("try_flow: give rules or ledgers, not both")
    ledgers = ledgers or DemoLedgers(rules)
    result = TryResult()
    texts = {**flows.prompts,
             **{k: {"zh": v.zh, "en": v.en} for k, v in backoffice_prompts().items()}}
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as closing:
            db = await open_db(Path(tmp) / "try.db")
            closing.push_async_callback(db.close)
            office = await ledgers.open(Path(tmp) / "backoffice.db",
                                        fixed_instant(at, ledgers.rules))
            closing.push_async_callback(office.close)
            for n, keys in enumerate(before):
                out(f"(call {n + 1} before: {keys})")
                await _call(flows, flow, keys, caller, lang, office, db, texts, TryResult(),
                            f"try-{n + 1}", out)
            await _call(flows, flow, dtmf, caller, lang, office, db, texts, result, "try", out)
    return result


async def _call(flows: FlowSet, flow: str, dtmf: str, caller: str, lang: str,
                office: SandboxBackOffice, db: aiosqlite.Connection,
                texts: Mapping[str, Mapping[str, str]], result: TryResult, call_id: str,
                out: Callable[[str], None]) -> None:
    """One call of ``try_flow``: its own session and interpreter; heard and done go to
    ``result``."""
    session = CallSession(call_id, caller)
    table = HotlineActions(office, db, BackgroundWork(), session, clock=office.now).table()
    interp = Interpreter(flows, flow, {"caller": caller, "call_id": call_id, "lang": lang},
                         clock=office.now)

    async def actions(call: Call) -> Outcome:
        outcome = await run_action(table, call)
        result.actions.append((call.action, outcome.outcome))
        out(f"  → {call.action}: {outcome.outcome}")
        return outcome

    proving = False

    def note(kind: str, detail: Mapping[str, str]) -> None:
        nonlocal proving
        if kind == "ivr.proof":
            proving = detail["state"] == "start"
            if proving:
                result.proofs.append([])
        if kind == "ivr.prompts":
            result.prompts.extend(detail["ids"].split())
            if proving:
                result.proofs[-1].extend(detail["ids"].split())

    result.end = await drive(interp, ScriptFlowIO(dtmf, texts, out), actions, note)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    flow: str = "hotline"
    dtmf: str
    caller: str = "13700000000"
    lang: str = "zh"
    #: the sandbox's clock (Asia/Shanghai when naive); none: ``DEFAULT_AT``
    at: dt.datetime | None = None
    #: the keys of earlier calls by the same caller, made first on the same back office (a
    #: password they locked is still locked); ``prompts``, ``actions``, ``end``: the last call
    before: list[str] = Field(default_factory=list)
    #: prompts that must be heard, in this order (others may come between)
    prompts: list[str] = Field(default_factory=list)
    #: prompts heard one right after the other, nothing between (a wrong password told as
    #: soon as it is entered)
    together: list[str] = Field(default_factory=list)
    #: the call's very last prompts, exactly and in this order: nothing after them (a call
    #: that must leave for an agent, not loop back to a menu)
    last_prompts: list[str] = Field(default_factory=list)
    #: action -> outcome, each must have happened
    actions: dict[str, str] = Field(default_factory=dict)
    #: "hangup", "retries_exhausted", "queue:<name>", ...
    end: str | None = None
    #: what the agent's screen pop must hold (a call that leaves for a queue): ``{lang: en}``
    context: dict[str, str] = Field(default_factory=dict)
    #: prompts that must be heard, in this order, inside one proof recording (an order's
    #: readback and its outcome); ``[]`` with ``no_proof``: none is made
    proof: list[str] = Field(default_factory=list)
    no_proof: bool = False


def load_scenarios(directory: Path) -> list[tuple[Path, Scenario]]:
    out: list[tuple[Path, Scenario]] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            items = load_located(path)[0] or []
            out.extend((path, Scenario.model_validate(item)) for item in items)
        except YamlSyntaxError as exc:
            raise ConfigError(f"{exc.where}: bad scenario file: {exc.message}") from exc
        except (ValidationError, TypeError) as exc:
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
    n = len(s.together)
    if n and not any(got.prompts[i:i + n] == s.together
                     for i in range(len(got.prompts) - n + 1)):
        problems.append(f"prompts {' '.join(s.together)} not heard one right after the other")
    if s.last_prompts and got.prompts[-len(s.last_prompts):] != s.last_prompts:
        problems.append(f"the call's last prompts were "
                        f"{' '.join(got.prompts[-len(s.last_prompts):]) or '(none)'}, expected "
                        f"{' '.join(s.last_prompts)}")
    if s.proof and not any(_in_order(s.proof, heard) for heard in got.proofs):
        problems.append(f"no proof recording holds {' '.join(s.proof)} (proofs: "
                        + ("; ".join(" ".join(p) for p in got.proofs) or "none") + ")")
    if s.no_proof and got.proofs:
        problems.append(f"{len(got.proofs)} proof recording(s) made, expected none")
    for action, outcome in s.actions.items():
        if (action, outcome) not in got.actions:
            seen = [o for a, o in got.actions if a == action] or ["never called"]
            problems.append(f"action {action}: expected {outcome}, got {', '.join(seen)}")
    if s.end is not None and got.ending != s.end:
        problems.append(f"ended with {got.ending}, expected {s.end}")
    handed = dict(got.end.context) if isinstance(got.end, Transfer) else {}
    for key, value in s.context.items():
        if handed.get(key) != value:
            problems.append(f"agent context {key}: expected {value!r}, got "
                            f"{handed.get(key, '(not handed over)')!r}")
    return problems


def _in_order(wanted: list[str], heard: list[str]) -> bool:
    position = 0
    for prompt in wanted:
        try:
            position = heard.index(prompt, position) + 1
        except ValueError:
            return False
    return True


async def run_scenario(flows: FlowSet, s: Scenario,
                       ledgers: DemoLedgers | None = None) -> list[str]:
    """What scenario ``s`` did differently (empty: it passed), on a back office of ``ledgers``
    (default: a fresh one under the built-in rules)."""
    got = await try_flow(flows, s.flow, s.dtmf, caller=s.caller, lang=s.lang, at=s.at,
                         before=s.before, ledgers=ledgers)
    return check_scenario(s, got)
