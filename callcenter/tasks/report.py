"""Task reports, sans-IO: figures per strategy (campaign) and per agent from rows of a period,
and their renderings (an aligned table, CSV, JSON). ``report_db.py`` reads the rows.

Per strategy ("" is the agents' own tasks, shown as ``-``):

- matched: customers its runs matched (``strategy_runs``, runs started in the period)
- tasks: tasks it created in the period
- attempts: proactive contacts made in the period (``contact_log`` rows: calls placed, messages
  sent)
- contacted: distinct customers (accounts) of those contacts
- reached: tasks with an answered call attempt placed in the period
- done, outcomes: outcomes recorded in the period, and how many of each
- done_reached: of ``done``, the tasks a call had reached (an answered attempt placed before the
  outcome, in the period or not)
- converted: of ``done_reached``, those whose outcome the task's form counts as a ``success``
  (``form.success``)
- conversion: converted / done_reached (null when it is 0); never above 1

Per agent: done (outcomes they recorded), attempts (calls placed for them), reached (answered),
reach_rate (reached / attempts), talk_s (``task_attempts.talk_s``).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from callcenter.tasks.form import success

__all__ = ["AgentRow", "Attempt", "Outcome", "StrategyRow", "TaskReport", "build",
           "render_csv", "render_json", "render_table"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """An outcome recorded (``task_log`` input ``outcome``), with its task's strategy and form."""

    task_id: int
    strategy: str
    by: str
    outcome: str
    fields: Sequence[Any] = ()
    #: a call reached the customer before the outcome (an answered attempt)
    reached: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    task_id: int
    strategy: str
    agent_id: str
    result: str          # '' in flight | answered | busy | no_answer | machine | failed | ...
    talk_s: float | None = None


@dataclass
class StrategyRow:
    strategy: str
    matched: int = 0
    tasks: int = 0
    attempts: int = 0
    contacted: int = 0
    reached: int = 0
    done: int = 0
    done_reached: int = 0
    converted: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def conversion(self) -> float | None:
        """converted / done_reached: ``converted`` counts within ``done_reached``, so <= 1."""
        return self.converted / self.done_reached if self.done_reached else None


@dataclass
class AgentRow:
    agent_id: str
    done: int = 0
    attempts: int = 0
    reached: int = 0
    talk_s: float = 0.0

    @property
    def reach_rate(self) -> float | None:
        return self.reached / self.attempts if self.attempts else None


@dataclass(frozen=True, slots=True)
class TaskReport:
    start: float
    end: float
    strategies: list[StrategyRow]
    agents: list[AgentRow]

    def data(self) -> dict[str, Any]:
        """As JSON (the console's ``task_report`` reply, ``--format json``)."""
        return {"from": self.start, "to": self.end,
                "strategies": [{**asdict(r), "conversion": r.conversion}
                               for r in self.strategies],
                "agents": [{**asdict(r), "talk_s": round(r.talk_s, 1),
                            "reach_rate": r.reach_rate} for r in self.agents]}


def build(start: float, end: float, *, matched: Iterable[tuple[str, int]],
          created: Iterable[str], contacts: Iterable[tuple[str, str]],
          attempts: Iterable[Attempt], outcomes: Iterable[Outcome]) -> TaskReport:
    """The figures. ``matched``: (strategy, matched) per run; ``created``: each new task's
    strategy; ``contacts``: (strategy, account) per contact."""
    rows: dict[str, StrategyRow] = {}
    agents: dict[str, AgentRow] = {}

    def row(name: str) -> StrategyRow:
        return rows.setdefault(name, StrategyRow(name))

    def agent(agent_id: str) -> AgentRow:
        return agents.setdefault(agent_id, AgentRow(agent_id))

    for name, n in matched:
        row(name).matched += n
    for name in created:
        row(name).tasks += 1
    customers: dict[str, set[str]] = {}
    for name, account in contacts:
        row(name).attempts += 1
        customers.setdefault(name, set()).add(account)
    for name, accounts in customers.items():
        row(name).contacted = len(accounts)
    reached: set[int] = set()
    for a in attempts:
        placed = agent(a.agent_id)
        placed.attempts += 1
        placed.talk_s += a.talk_s or 0.0
        if a.result == "answered":
            placed.reached += 1
            if a.task_id not in reached:
                reached.add(a.task_id)
                row(a.strategy).reached += 1
    for o in outcomes:
        r = row(o.strategy)
        r.done += 1
        r.outcomes[o.outcome] = r.outcomes.get(o.outcome, 0) + 1
        if o.reached:
            r.done_reached += 1
            r.converted += success(list(o.fields), o.outcome)
        agent(o.by).done += 1
    for r in rows.values():
        r.outcomes = dict(Counter(r.outcomes).most_common())
    return TaskReport(start, end, [rows[k] for k in sorted(rows)],
                      [agents[k] for k in sorted(agents)])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _outcomes(r: StrategyRow) -> str:
    return " ".join(f"{k}:{v}" for k, v in r.outcomes.items()) or "-"


STRATEGY_HEADERS = ("strategy", "matched", "tasks", "attempts", "contacted", "reached", "done",
                    "done_reached", "converted", "conversion", "outcomes")
AGENT_HEADERS = ("agent", "done", "attempts", "reached", "reach_rate", "talk_s")


def _strategy_cells(r: StrategyRow) -> list[str]:
    return [r.strategy or "-", str(r.matched), str(r.tasks), str(r.attempts), str(r.contacted),
            str(r.reached), str(r.done), str(r.done_reached), str(r.converted),
            _pct(r.conversion), _outcomes(r)]


def _agent_cells(r: AgentRow) -> list[str]:
    return [r.agent_id or "-", str(r.done), str(r.attempts), str(r.reached),
            _pct(r.reach_rate), f"{r.talk_s:.0f}"]


def _align(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 or i == len(cells) - 1 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def render_table(report: TaskReport, title: str = "") -> str:
    out = [title] if title else []
    out += ["Strategies", *_align(STRATEGY_HEADERS,
                                  [_strategy_cells(r) for r in report.strategies]), ""]
    out += ["Agents", *_align(AGENT_HEADERS, [_agent_cells(r) for r in report.agents])]
    if not report.strategies and not report.agents:
        out.append("(no task activity in this period)")
    return "\n".join(out) + "\n"


def render_csv(report: TaskReport) -> str:
    """One CSV: a ``kind`` column (strategy | agent), then that kind's columns."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", *STRATEGY_HEADERS])
    for r in report.strategies:
        conv = "" if r.conversion is None else f"{r.conversion:.4f}"
        w.writerow(["strategy", r.strategy, r.matched, r.tasks, r.attempts, r.contacted,
                    r.reached, r.done, r.done_reached, r.converted, conv, _outcomes(r)])
    w.writerow(["kind", *AGENT_HEADERS])
    for a in report.agents:
        rate = "" if a.reach_rate is None else f"{a.reach_rate:.4f}"
        w.writerow(["agent", a.agent_id, a.done, a.attempts, a.reached, rate,
                    f"{a.talk_s:.1f}"])
    return buf.getvalue()


def render_json(report: TaskReport) -> str:
    return json.dumps(report.data(), ensure_ascii=False, indent=2) + "\n"
