"""The task report (``tasks/report.py``, ``tasks/report_db.py``): figures from rows inserted by
hand, with counts known in advance, and ``callcenter report tasks``."""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.util
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from callcenter import cli
from callcenter.acd.report import run_report
from callcenter.config import Settings
from callcenter.errors import ConfigError
from callcenter.store.db import open_db
from callcenter.tasks.report import render_csv, render_table
from callcenter.tasks.report_db import read_report, run_task_report

DAY = 1_800_000_000.0          # the period's start
END = DAY + 86400
FORM = json.dumps([{"name": "outcome", "kind": "choice", "choices": ["bought", "no", "later"],
                    "success": ["bought"]}])


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "cc.db")
    try:
        yield conn
    finally:
        await conn.close()


async def fill(db: aiosqlite.Connection) -> None:
    """Two strategies and the agents' own tasks, some rows outside the period."""
    ex = db.execute
    await ex("INSERT INTO strategy_runs (strategy, run_day, slot, started_at, run_at, matched)"
             " VALUES ('fund_expiry', 'd1', '09:00', ?1, ?1, 40),"
             " ('fund_expiry', 'd0', '09:00', ?2, ?2, 99), ('ipo', 'd1', '09:00', ?3, ?3, 5)",
             (DAY + 10, DAY - 86400, DAY + 20))
    # tasks 1-4 fund_expiry, 5 ipo (in the period), 6 fund_expiry created the day before,
    # 7 an agent's own call-back; 8-10 verify: 8 done without a call, 9 (made the day before)
    # reached the day before, 10 reached in the period
    for n, (strategy, created, fields) in enumerate([
            ("fund_expiry", DAY + 100, FORM), ("fund_expiry", DAY + 100, FORM),
            ("fund_expiry", DAY + 100, FORM), ("fund_expiry", DAY + 100, FORM),
            ("ipo", DAY + 200, "[]"), ("fund_expiry", DAY - 500, FORM),
            ("", DAY + 300, "[]"), ("verify", DAY + 100, FORM), ("verify", DAY - 1000, FORM),
            ("verify", DAY + 100, FORM)], start=1):
        await ex("INSERT INTO tasks (id, created_at, created_by, agent_id, text, strategy,"
                 " run_day, account, fields) VALUES (?, ?, 'strategy', '', 't', ?, ?, ?, ?)",
                 (n, created, strategy, "d1" if created >= DAY else "d0", str(n), fields))
    # attempts: task 1 busy then answered (a1), task 2 answered (a1), task 3 no answer (a2),
    # task 6 answered (a2), task 5 answered (a2) the day after (out of the period)
    for n, (task, agent, result, talk, at) in enumerate([
            (1, "a1", "busy", None, DAY + 1000), (1, "a1", "answered", 120.0, DAY + 2000),
            (2, "a1", "answered", 60.0, DAY + 2100), (3, "a2", "no_answer", None, DAY + 2200),
            (6, "a2", "answered", 30.5, DAY + 2300), (5, "a2", "answered", 99.0, END + 5),
            (9, "a2", "answered", 10.0, DAY - 900), (10, "a1", "answered", 20.0, DAY + 3200)],
            start=1):
        await ex("INSERT INTO task_attempts (task_id, attempt, call_id, agent_id, mode,"
                 " placed_at, result, talk_s) VALUES (?, ?, ?, ?, 'preview', ?, ?, ?)",
                 (task, n, f"c{n}", agent, at, result, talk))
    # contacts: 4 calls of fund_expiry to 3 customers, 2 SMS of ipo to one, in the period;
    # 1 call after it
    for account, strategy, channel, at in (
            [(a, "fund_expiry", "call", DAY + 1000 + i) for i, a in enumerate("1123")]
            + [("5", "ipo", "sms", DAY + 50), ("5", "ipo", "sms", DAY + 60),
               ("4", "fund_expiry", "call", END + 1)]):
        await ex("INSERT INTO contact_log (account, at, channel, strategy) VALUES"
                 " (?, ?, ?, ?)", (account, at, channel, strategy))
    # outcomes: task 1 bought (a1), task 2 no (a1), task 6 bought (a2), task 7 done (a1),
    # task 5 done the day after (out)
    for task, by, outcome, at in [(1, "a1", "bought", DAY + 2500), (2, "a1", "no", DAY + 2600),
                                  (6, "a2", "bought", DAY + 2700), (7, "a1", "done", DAY + 2800),
                                  (5, "a2", "done", END + 10), (8, "a1", "bought", DAY + 3000),
                                  (9, "a2", "bought", DAY + 3100), (10, "a1", "no", DAY + 3300)]:
        await ex("UPDATE tasks SET state = 'done', outcome = ? WHERE id = ?", (outcome, task))
        await ex("INSERT INTO task_log (task_id, at, by, from_state, input, to_state) VALUES"
                 " (?, ?, ?, 'reached', 'outcome', 'done')", (task, at, by))
    await db.commit()


async def test_figures_per_strategy_and_agent(db: aiosqlite.Connection) -> None:
    await fill(db)
    report = await read_report(db, DAY, END)
    s = {r.strategy: r for r in report.strategies}
    fund = s["fund_expiry"]
    # 4 contacts (attempts) of 3 distinct customers (contacted)
    assert (fund.matched, fund.tasks, fund.attempts, fund.contacted, fund.reached, fund.done,
            fund.done_reached, fund.converted) == (40, 4, 4, 3, 3, 3, 3, 2)
    assert fund.outcomes == {"bought": 2, "no": 1}
    assert fund.conversion == pytest.approx(2 / 3)
    ipo = s["ipo"]
    assert (ipo.matched, ipo.tasks, ipo.attempts, ipo.contacted, ipo.reached, ipo.done) == (
        5, 1, 2, 1, 0, 0)
    assert ipo.conversion is None
    own = s[""]
    # no form: "done" would convert, but no call reached the customer: not in the conversion
    assert (own.tasks, own.done, own.done_reached, own.converted) == (1, 1, 0, 0)
    assert own.conversion is None
    # conversion is of the outcomes a call reached: 8 (bought, no call) is out of it, 9
    # (bought, reached the day before) in it; one call reached in the period (10) does not
    # make 2 conversions 200%
    verify = s["verify"]
    assert (verify.reached, verify.done, verify.done_reached, verify.converted) == (1, 3, 2, 1)
    assert verify.outcomes == {"bought": 2, "no": 1}
    assert verify.conversion == pytest.approx(1 / 2)
    assert all(r.conversion is None or r.conversion <= 1 for r in report.strategies)
    a = {r.agent_id: r for r in report.agents}
    assert (a["a1"].done, a["a1"].attempts, a["a1"].reached, a["a1"].talk_s) == (5, 4, 3, 200.0)
    assert a["a1"].reach_rate == pytest.approx(3 / 4)
    assert (a["a2"].done, a["a2"].attempts, a["a2"].reached, a["a2"].talk_s) == (2, 2, 1, 30.5)
    data = report.data()
    assert data["agents"][0]["reach_rate"] == pytest.approx(3 / 4)
    assert json.loads(json.dumps(data)) == data


async def test_renderings(db: aiosqlite.Connection) -> None:
    await fill(db)
    report = await read_report(db, DAY, END)
    table = render_table(report, "Tasks")
    assert "fund_expiry" in table and "66.7%" in table and "bought:2 no:1" in table
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    assert rows[0][:3] == ["kind", "strategy", "matched"]
    assert rows[0] == ["kind", "strategy", "matched", "tasks", "attempts", "contacted", "reached",
                       "done", "done_reached", "converted", "conversion", "outcomes"]
    fund = next(r for r in rows if r[:2] == ["strategy", "fund_expiry"])
    assert fund[2:11] == ["40", "4", "4", "3", "3", "3", "3", "2", "0.6667"]
    assert ["agent", "a2", "2", "2", "1", "0.5000", "30.5"] in rows


async def test_an_empty_period_says_so(db: aiosqlite.Connection) -> None:
    report = await read_report(db, DAY, END)
    assert report.strategies == [] and report.agents == []
    assert "no task activity" in render_table(report)


def _args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["report", *argv])


def _imports(module: str) -> set[str]:
    """The modules ``module``'s source imports, at the top or inside functions."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_call_and_task_reports_do_not_import_each_other() -> None:
    assert "callcenter.acd.report" not in _imports("callcenter.tasks.report_db")
    assert not {m for m in _imports("callcenter.acd.report") if m.startswith("callcenter.tasks")}
    # the command line dispatches to each
    assert _args("tasks").func is cli.cmd_report and _args().what == "calls"


async def test_the_command_line(tmp_path: Path, db: aiosqlite.Connection,
                                capsys: pytest.CaptureFixture[str]) -> None:
    await fill(db)
    settings = Settings(db_path=tmp_path / "cc.db")
    # DAY is 2027-01-15 08:00 UTC; the site's (Asia/Shanghai) day 2027-01-15 is 16:00 UTC the
    # day before to 16:00 UTC: it holds the period's rows and task 6, made at DAY - 500
    assert await run_task_report(_args("tasks", "--day", "2027-01-15", "--format", "json"),
                            settings) == 0
    data = json.loads(capsys.readouterr().out)
    fund = next(r for r in data["strategies"] if r["strategy"] == "fund_expiry")
    assert (fund["tasks"], fund["reached"], fund["converted"]) == (5, 3, 2)
    assert await run_task_report(_args("tasks", "--from", "2027-01-15", "--to", "2027-01-15",
                                  "--format", "csv"), settings) == 0
    assert capsys.readouterr().out.startswith("kind,strategy,")
    with pytest.raises(ConfigError, match="not both"):
        await run_task_report(_args("tasks", "--day", "2027-01-15", "--from", "2027-01-15"),
                              settings)
    with pytest.raises(ConfigError, match="report tasks"):
        await run_report(_args("--format", "json"), settings)
    with pytest.raises(ConfigError, match="--chart: for 'report calls'"):
        await run_task_report(_args("tasks", "--chart", "x.png"), settings)


def test_report_tasks_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``callcenter report tasks`` goes to the task report (``cli.cmd_report``)."""
    import asyncio

    async def make() -> None:
        conn = await open_db(tmp_path / "cc.db")
        try:
            await fill(conn)
        finally:
            await conn.close()

    asyncio.run(make())
    monkeypatch.setenv("CALLCENTER_DB_PATH", str(tmp_path / "cc.db"))
    args = _args("tasks", "--day", "2027-01-15", "--format", "csv")
    assert args.func(args) == 0
    assert capsys.readouterr().out.startswith("kind,strategy,matched,tasks,attempts,")
