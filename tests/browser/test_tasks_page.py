"""The tasks tab in real Chromium against the real console server and the engine's console
backend (``seats/backend.py`` and ``seats/tasks.py``) on a real ``Acd`` and SQLite database.
No Asterisk: the back office is the unit tests' fake, the dialer a recorder of its calls.

An agent sees a strategy's task of their team (the customer's pop masked, why it matched, the
script), claims it, calls (preview), fills the outcome form once the call reached the customer;
a task assigned to them whose call is recorded as proof can be called without claiming it and
shows its form only after the call reached the customer. A supervisor watching the same tasks
sees the progress move, gets a deadline alert on whatever tab they are, and runs the report.
Screenshots go to ``$CC_SCREENSHOTS`` when it is set.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from pydantic import SecretStr

from callcenter.acd.service import Acd
from callcenter.config import AcdSettings, ConsoleSettings, QueueSettings
from callcenter.seats.backend import EngineConsoleBackend
from callcenter.seats.console_server import ConsoleServer
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.tasks.state import TaskInput
from callcenter.tasks.store import NewTask, TaskStore
from tests.browser.conftest import STATIC_DIR, PageProblems
from tests.browser.test_console_page import log_in
from tests.unit.test_console_backend import ACCOUNT, PHONE, FakeAmi, FakeBackOffice
from tests.unit.test_task_console import FakeDialer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

AGENT, BOSS = "A1001", "S9001"
FORM = [{"name": "outcome", "label": "结果 / Outcome", "kind": "choice", "required": True,
         "choices": ["bought", "declined", "later"], "success": ["bought"]},
        {"name": "amount", "label": "金额 / Amount", "kind": "number"},
        {"name": "note", "label": "备注 / Note", "kind": "text"}]
SCRIPT = ("您好，王先生：您持有的基金将于三天后到期，是否需要续作？\n"
          "Hello: your fund matures in 3 days.")
SHOTS = Path(os.environ.get("CC_SCREENSHOTS", "")) if os.environ.get("CC_SCREENSHOTS") else None


class World:
    def __init__(self, backend: EngineConsoleBackend, server: ConsoleServer,
                 dialer: FakeDialer) -> None:
        self.backend, self.server, self.dialer = backend, server, dialer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/"

    async def task(self, **kw: Any) -> int:
        task_id = await self.backend.tasks.store.create(NewTask(created_by="strategy", **kw))
        assert task_id is not None
        return task_id

    async def reached(self, task_id: int, agent_id: str) -> None:
        """What the dialer does when the customer answers: the attempt's row, the moves."""
        store = self.backend.tasks.store
        await store.db.execute(
            "INSERT INTO task_attempts (task_id, attempt, call_id, agent_id, mode, placed_at,"
            " result, talk_s) VALUES (?, 1, ?, ?, 'preview', ?, 'answered', 60)",
            (task_id, f"task-{task_id}-1", agent_id, store.clock()))
        await store.db.commit()
        await store.move(task_id, TaskInput.DIAL, "dialer")
        await store.move(task_id, TaskInput.REACHED, "dialer")


@pytest_asyncio.fixture(loop_scope="session")
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = await open_db(tmp_path / "cc.db")
    await save_agent(db, AgentRecord(AGENT, "周敏 Zhou Min", "agent", "PJSIP/1001",
                                     skills={"sales": 5}), SecretStr("agent-pw-1"))
    await save_agent(db, AgentRecord(BOSS, "陈静 Chen Jing", "supervisor", "PJSIP/9001"),
                     SecretStr("boss-pw-1"))
    acd = Acd(AcdSettings(queues=[QueueSettings(name="sales", skill="sales")]), db)
    await acd.start()
    acd.attach(FakeAmi())  # type: ignore[arg-type]
    backend = EngineConsoleBackend(acd, db, FakeBackOffice(),  # type: ignore[arg-type]
                                   tasks=TaskStore(db, acd.clock))
    dialer = FakeDialer()
    backend.tasks.dialer = dialer
    server = ConsoleServer(ConsoleSettings(host="127.0.0.1", port=0, static_dir=STATIC_DIR),
                           backend)
    await server.start()
    backend.push = server.push
    try:
        yield World(backend, server, dialer)
    finally:
        await server.close()
        await backend.close()
        await acd.close()
        await db.close()


@pytest_asyncio.fixture(loop_scope="session")
async def boss_page(browser: Browser) -> AsyncIterator[Page]:
    """A second browser (the supervisor's), failing the test on page errors as ``page`` does."""
    # at the site: the report's default day is the supervisor's PC's, which is the site's
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 1000},
                                        timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield page
    finally:
        await context.close()
    assert not errors, errors


async def shot(page: Page, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_an_agent_works_a_task_and_the_supervisor_follows(
        world: World, page: Page, boss_page: Page, page_problems: PageProblems) -> None:
    now = time.time()
    task_id = await world.task(
        text="基金到期回访 / Fund maturity call", account=ACCOUNT, phone=PHONE, team="sales",
        priority=20, script=SCRIPT, fields=FORM, strategy="fund_expiry", run_day="d1",
        reason="基金 3 天后到期，余额 ¥80,000 / fund matures in 3 days", due_at=now - 600)
    other = await world.task(text="投诉回电 / Complaint call-back", account=ACCOUNT, phone=PHONE,
                             team="sales", deadline_at=now + 3600, strategy="complaint",
                             run_day="d1")

    # the supervisor watches all tasks
    boss = boss_page
    await boss.goto(world.url)
    await log_in(boss, BOSS, "boss-pw-1")
    await boss.get_by_test_id("tab-tasks").click()
    await expect(boss.get_by_test_id(f"task-{task_id}")).to_be_visible()
    await expect(boss.get_by_test_id("tk-progress-s-fund_expiry").locator("[data-col=open]")) \
        .to_have_text("1")

    # the agent finds it among the team's tasks: overdue, masked, with the customer's name
    await page.goto(world.url)
    await log_in(page, AGENT, "agent-pw-1")
    await page.get_by_test_id("tab-tasks").click()
    await page.get_by_test_id("tk-view").select_option("team")
    row = page.get_by_test_id(f"task-{task_id}")
    await expect(row).to_have_attribute("data-overdue", "true")
    await expect(row.locator("[data-col=customer]")).to_contain_text("王五")
    await expect(row.locator("[data-col=customer]")).to_contain_text("*******8000")
    await expect(row).not_to_contain_text(ACCOUNT)
    await expect(page.get_by_test_id("tasks-count")).to_have_text("1")
    await shot(page, "1-agent-team-tasks")

    # claim: it becomes the agent's own, its detail open
    await row.get_by_test_id("task-claim").click()
    await expect(page.get_by_test_id("tk-view")).to_have_value("mine")
    detail = page.get_by_test_id("tk-detail")
    await expect(detail).to_be_visible()
    await expect(page.get_by_test_id("tk-pop-name")).to_have_text("王五")
    await expect(page.get_by_test_id("tk-reason")).to_contain_text("fund matures in 3 days")
    await expect(page.get_by_test_id("tk-script")).to_contain_text("是否需要续作")
    await expect(boss.get_by_test_id(f"task-{task_id}").locator("[data-col=holder]")) \
        .to_have_text(AGENT)

    # preview call through the dialer
    await page.get_by_test_id("tk-call").click()
    await expect(page.get_by_test_id("toast")).to_contain_text("*******8000")
    assert world.dialer.calls == [("preview", (AGENT, task_id))]
    await world.reached(task_id, AGENT)   # the customer answered
    await expect(page.get_by_test_id(f"task-{task_id}")).to_have_attribute("data-state",
                                                                           "reached")
    await shot(page, "2-agent-task-detail")

    # the outcome form: the engine checks it; a required field missing is caught on the page
    await page.get_by_test_id("tk-outcome-save").click()
    await expect(page.get_by_test_id("tk-outcome-error")).to_be_visible()
    await page.get_by_test_id("tk-field-outcome").select_option("bought")
    await page.get_by_test_id("tk-field-amount").fill("many")
    await page.get_by_test_id("tk-outcome-save").click()
    await expect(page.get_by_test_id("toast")).to_contain_text("amount: a number")
    await page.get_by_test_id("tk-field-amount").fill("80000")
    await page.get_by_test_id("tk-field-note").fill("续作一年 / renewed for a year")
    await page.get_by_test_id("tk-outcome-save").click()
    await expect(page.get_by_test_id("toast")).to_have_text("处理结果已保存")
    await expect(row).to_be_hidden()          # done: no longer among the agent's tasks
    task = await world.backend.tasks.store.get(task_id)
    assert (task.state.value, task.outcome, task.outcome_fields["amount"]) == (
        "done", "bought", "80000")

    # a new account's verification, assigned to the agent, recorded as proof: the agent may
    # call it without claiming it; its outcome waits for a call that reached the customer
    verify = await world.task(text="新开户回访核实 / New account verification",
                              account=ACCOUNT, phone=PHONE, agent_id=AGENT, team="sales",
                              fields=[{"name": "outcome", "kind": "choice", "required": True,
                                       "choices": ["verified", "not_verified"],
                                       "success": ["verified"]}],
                              strategy="new_account_verify", run_day="d1",
                              customer_name="王五", tier="gold",
                              dial={"mode": "preview", "record": True})
    vrow = page.get_by_test_id(f"task-{verify}")
    await vrow.get_by_test_id("task-open").click()
    await expect(page.get_by_test_id("tk-call")).to_be_enabled()
    await expect(page.get_by_test_id("tk-outcome-form")).to_be_hidden()
    await expect(page.get_by_test_id("tk-outcome-wait")).to_be_visible()
    await expect(page.get_by_test_id("tk-pop-name")).to_have_text("王五")   # came with the task
    await shot(page, "2b-agent-recorded-task-before-call")
    await page.get_by_test_id("tk-call").click()
    await expect(page.get_by_test_id("toast")).to_contain_text("*******8000")
    assert world.dialer.calls[-1] == ("preview", (AGENT, verify))
    await world.reached(verify, AGENT)
    await expect(page.get_by_test_id("tk-outcome-form")).to_be_visible()
    await expect(page.get_by_test_id("tk-outcome-wait")).to_be_hidden()
    await expect(page.get_by_test_id("tk-call")).to_be_disabled()   # on the call already
    await page.get_by_test_id("tk-field-outcome").select_option("verified")
    await page.get_by_test_id("tk-outcome-save").click()
    await expect(vrow).to_be_hidden()

    # the supervisor's progress moved; a deadline alert comes in, on whatever tab they are
    done = boss.get_by_test_id("tk-progress-s-fund_expiry").locator("[data-col=done]")
    await expect(done).to_have_text("1")
    await expect(boss.get_by_test_id(f"task-{task_id}")).to_be_hidden()
    await boss.get_by_test_id("tab-wallboard").click()
    world.backend.tasks.watch_deadlines(before_s=7200, every_s=0.2)
    alert = boss.get_by_test_id("tk-alert")
    await expect(alert).to_have_attribute("data-kind", "soon")
    await expect(alert).to_contain_text(f"#{other}")
    await expect(boss.get_by_test_id("tasks-count")).to_have_text("1")
    await shot(boss, "3a-supervisor-alert-on-the-wallboard")
    await boss.get_by_test_id("tab-tasks").click()
    await expect(alert).to_be_visible()

    # and the report of today
    await boss.get_by_test_id("tk-report-run").click()
    fund = boss.get_by_test_id("tk-report-s-fund_expiry")
    await expect(fund.locator("[data-col=done]")).to_have_text("1")
    await expect(fund.locator("[data-col=done_reached]")).to_have_text("1")
    await expect(fund.locator("[data-col=converted]")).to_have_text("1")
    await expect(fund.locator("[data-col=conversion]")).to_contain_text("100")
    await expect(boss.get_by_test_id(f"tk-report-a-{AGENT}").locator("[data-col=done]")) \
        .to_have_text("2")
    await shot(boss, "3-supervisor-progress-alert-report")
    await boss.get_by_test_id("lang-switch").select_option("en")
    await expect(alert).to_contain_text("is due by")
    await shot(boss, "4-supervisor-en")
