"""The supervisor's wallboard and figures tabs against the real console server, scripted backend.

The backend is ``test_console_page.FakeBackend`` with the wallboard's newer parts (the waiting
callers and why they wait, each agent's figures of the day, the alert limits) and an answer to
``intervals``. No Asterisk is involved; no test sleeps (Playwright's ``expect`` waits).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.console_server import ConsoleServer
from tests.browser.test_console_page import (
    SUPERVISOR_PW,
    FakeBackend,
    log_in,
    queue_figures,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


def caller(call_id: str, code: str, *, ago: float = 10.0, **changes: Any) -> dict[str, Any]:
    """One waiting caller as ``Acd.queue_snapshot`` gives it."""
    reason = {"code": code, "until": None, "agent": None, "skill": None, "agents": None}
    reason.update(changes.pop("reason", {}))
    now = time.time()
    item = {"call_id": call_id, "tier": "ordinary", "arrived_at": now - ago, "waited_s": ago,
            "callback": False, "ringing": False, "lang": "zh", "reason": reason}
    return {**item, **changes}


def figures(start: float, sl: float | None, offered: int, answered: int, abandoned: int,
            asa: float | None) -> dict[str, Any]:
    row = {"target_s": 20.0, "offered": offered, "answered": answered,
           "answered_in_target": 0, "abandoned": abandoned, "abandon_rate": None,
           "service_level": sl, "asa_s": asa}
    return {"start": start, "end": start + 1800,
            "queues": [{**row, "queue": "general"}, {**row, "queue": "vip", "offered": 0}],
            "total": {**row, "queue": None}}


class WallboardBackend(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        #: no caller anywhere unless a test says so (the longest waits stay put)
        self.waiting: list[dict[str, Any]] = [{"name": "general", "waiting": []},
                                              {"name": "vip", "waiting": []}]
        self.agent_figures: list[dict[str, Any]] = []
        self.alerts: dict[str, dict[str, float]] = {
            "general": {"longest_wait_s": 60.0, "service_level": 0.8},
            "vip": {"longest_wait_s": 60.0, "service_level": 0.8}}
        day = time.mktime((*time.localtime()[:3], 9, 0, 0, 0, 0, -1))
        self.intervals = {
            "from": "", "to": "", "step_s": 1800.0, "until": time.time(),
            "target_shares": {"general": 0.8, "vip": 0.8},
            "intervals": [figures(day, 0.9, 10, 9, 1, 12.0),
                          figures(day + 1800, None, 0, 0, 0, None),
                          figures(day + 3600, 0.5, 8, 4, 4, 31.0),
                          figures(day + 5400, 1.0, 3, 3, 0, 4.0)]}

    def wallboard(self) -> dict[str, Any]:
        return {**super().wallboard(), "waiting": self.waiting, "agents": self.agent_figures,
                "alerts": self.alerts}

    async def command(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        if isinstance(request, p.Intervals):
            await super().command(agent, request)  # recorded
            return {**self.intervals, "from": request.from_, "to": request.to}
        return await super().command(agent, request)


@pytest.fixture
def backend() -> WallboardBackend:
    return WallboardBackend()


@pytest_asyncio.fixture(loop_scope="session")
async def console(server: ConsoleServer, page: Page) -> Page:
    await page.goto(f"http://127.0.0.1:{server.port}/")
    return page


async def open_wallboard(page: Page) -> None:
    await log_in(page, "S9001", SUPERVISOR_PW)
    await page.get_by_test_id("tab-wallboard").click()
    await expect(page.get_by_test_id("wallboard")).to_be_visible()


def hhmm(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


# -- waiting callers -----------------------------------------------------------------------------


async def test_waiting_callers_in_service_order_with_why(console: Page,
                                                         backend: WallboardBackend) -> None:
    until = time.time() + 600
    backend.waiting = [
        {"name": "general", "waiting": [
            caller("c-1", "manager_only", tier="platinum", callback=True,
                   reason={"until": until, "agent": "M1"}),
            caller("c-2", "all_busy", lang="en", reason={"agents": 3}),
        ]},
        {"name": "vip", "waiting": [
            caller("c-3", "no_agent_with_skill", reason={"skill": "fund"}),
            caller("c-4", "ringing", ringing=True, reason={"agent": "A1001"}),
        ]},
    ]
    await open_wallboard(console)
    rows = console.get_by_test_id("wb-waiting").locator("tbody tr")
    await expect(rows).to_have_count(4)
    await expect(rows.nth(0)).to_have_attribute("data-testid", "wb-wait-c-1")
    await expect(rows.nth(1)).to_have_attribute("data-testid", "wb-wait-c-2")
    first = console.get_by_test_id("wb-wait-c-1")
    await expect(first.locator("[data-col=pos]")).to_have_text("1")
    await expect(first.locator("[data-col=tier]")).to_have_text("白金卡")
    await expect(first.locator("[data-col=lang]")).to_have_text("普通话")
    await expect(first.locator("[data-col=callback]")).to_have_text("回拨")
    await expect(first.locator("[data-col=why]")).to_have_text(f"只等专属经理 至 {hhmm(until)}")
    second = console.get_by_test_id("wb-wait-c-2")
    await expect(second.locator("[data-col=why]")).to_have_text("座席全忙（3）")
    await expect(second.locator("[data-col=lang]")).to_have_text("英语")
    await expect(console.get_by_test_id("wb-wait-c-3").locator("[data-col=why]")) \
        .to_have_text("无具备技能的座席：fund")
    await expect(console.get_by_test_id("wb-wait-c-4").locator("[data-col=why]")) \
        .to_have_text("正在振铃 A1001")
    await expect(console.get_by_test_id("wb-waiting-none")).to_be_hidden()

    await console.get_by_test_id("lang-switch").select_option("en")
    await expect(first.locator("[data-col=why]")).to_have_text(f"manager only until {hhmm(until)}")
    await expect(second.locator("[data-col=why]")).to_have_text("all agents busy (3)")
    await expect(first.locator("[data-col=callback]")).to_have_text("call-back")

    # everyone served: the list says so
    backend.waiting = [{"name": "general", "waiting": []}, {"name": "vip", "waiting": []}]
    backend.push_wallboard()
    await expect(rows).to_have_count(0)
    await expect(console.get_by_test_id("wb-waiting-none")).to_have_text("Nobody is waiting")


async def test_the_waits_tick_in_the_page(console: Page, backend: WallboardBackend) -> None:
    backend.waiting[0]["waiting"] = [caller("c-9", "all_busy", ago=65, reason={"agents": 2})]
    await open_wallboard(console)
    wait = console.get_by_test_id("wb-wait-c-9").locator("[data-col=wait]")
    await expect(wait).to_have_text(re.compile(r"^1:0[5-6]$"))
    await expect(wait).to_have_text(re.compile(r"^1:0[7-9]$"))  # no event came: it ticked
    longest = console.get_by_test_id("wb-queue-general").locator("[data-col=longest]")
    await expect(longest).to_have_text(re.compile(r"^1:(0[7-9]|1[0-9])$"))
    await expect(longest).to_have_class(re.compile(r"\bbad\b"))  # past the 60 s limit


# -- alerts --------------------------------------------------------------------------------------


async def test_an_alert_is_shown_once_per_crossing(console: Page,
                                                   backend: WallboardBackend) -> None:
    await open_wallboard(console)
    banners = console.get_by_test_id("wb-alert")
    queue_row = console.get_by_test_id("wb-queue-general")
    await expect(queue_row.locator("[data-col=sl]")).to_have_text("83%")
    await expect(banners).to_have_count(0)

    backend.queues[0] = queue_figures("general", service_level=0.5)
    backend.push_wallboard()
    await expect(banners).to_have_count(1)
    await expect(banners.first).to_contain_text("队列 general：服务水平 50%，低于 80%")
    # the figures are those of the crossing: the banner says when that was
    await expect(banners.first).to_contain_text(re.compile(r"告警 \d\d:\d\d:\d\d"))
    await expect(queue_row).to_have_attribute("data-alert", "true")
    # still below: no second banner
    backend.queues[0] = queue_figures("general", service_level=0.45)
    backend.push_wallboard()
    await expect(queue_row.locator("[data-col=sl]")).to_have_text("45%")
    await expect(banners).to_have_count(1)
    # back above the limit, then below again: a new crossing
    backend.queues[0] = queue_figures("general", service_level=0.9)
    backend.push_wallboard()
    await expect(queue_row).to_have_attribute("data-alert", "false")
    backend.queues[0] = queue_figures("general", service_level=0.7)
    backend.push_wallboard()
    await expect(banners).to_have_count(2)
    await expect(banners.first).to_contain_text("服务水平 70%")

    # a wait that grows past its limit in the page alerts by itself, once
    backend.alerts["vip"]["longest_wait_s"] = 61
    backend.waiting[1]["waiting"] = [caller("c-5", "all_busy", ago=59, reason={"agents": 1})]
    backend.push_wallboard()
    await expect(banners).to_have_count(3, timeout=8000)
    await expect(banners.first).to_contain_text("队列 vip：最长等待")
    await expect(console.get_by_test_id("wb-queue-vip")).to_have_attribute("data-alert", "true")

    await banners.first.get_by_test_id("wb-alert-dismiss").click()
    await expect(banners).to_have_count(2)


# -- per-agent figures ---------------------------------------------------------------------------


async def test_each_seat_shows_its_figures_of_the_day(console: Page,
                                                      backend: WallboardBackend) -> None:
    backend.set_seat("A1001", "ready")
    backend.seats["A1001"]["since"] = time.time() - 30
    backend.agent_figures = [{"agent_id": "A1001", "handled": 12, "aht_s": 185.0,
                              "talk_s": 1800.0, "wrap_up_s": 420.0, "ringing_s": 40.0,
                              "ready_s": 800.0, "not_ready_s": 60.0, "logged_in_s": 3120.0,
                              "occupancy": 0.734, "no_answers": 1}]
    await open_wallboard(console)
    row = console.get_by_test_id("wb-seat-A1001")
    await expect(row.locator("[data-col=handled]")).to_have_text("12")
    await expect(row.locator("[data-col=aht]")).to_have_text("3:05")
    await expect(row.locator("[data-col=occupancy]")).to_have_text("73%")
    await expect(row.locator("[data-col=time]")).to_have_text(re.compile(r"^0:3[0-1]$"))
    await expect(row.locator("[data-col=time]")).to_have_text(re.compile(r"^0:3[2-9]$"))
    # a seat with nothing today yet
    other = console.get_by_test_id("wb-seat-S9001")
    await expect(other.locator("[data-col=handled]")).to_have_text("0")
    await expect(other.locator("[data-col=aht]")).to_have_text("—")
    # the figures follow the wallboard events
    backend.agent_figures[0].update(handled=13, occupancy=0.75)
    backend.push_wallboard()
    await expect(row.locator("[data-col=handled]")).to_have_text("13")
    await expect(row.locator("[data-col=occupancy]")).to_have_text("75%")


# -- figures per interval ------------------------------------------------------------------------


async def test_the_figures_tab_draws_todays_charts(console: Page,
                                                   backend: WallboardBackend) -> None:
    await log_in(console, "S9001", SUPERVISOR_PW)
    tab = console.get_by_test_id("tab-figures")
    await expect(tab).to_be_visible()
    await tab.click()
    sl = console.get_by_test_id("fig-chart-sl")
    await expect(sl.locator("rect.bar")).to_have_count(3)  # one interval had no calls
    await expect(console.get_by_test_id("fig-chart-volume").locator("rect.bar")) \
        .to_have_count(12)
    await expect(console.get_by_test_id("fig-chart-asa").locator("rect.bar")).to_have_count(3)
    today = time.strftime("%Y-%m-%d")
    [asked] = backend.requests_of(p.Intervals)
    assert (asked.from_, asked.to) == (today, today)

    # accessible: an image named by its title and description, each bar with its value
    svg = sl.locator("svg")
    await expect(svg).to_have_attribute("role", "img")
    await expect(sl.locator("svg > title")).to_have_text("服务水平")
    await expect(sl.locator("rect.bar.below")).to_have_count(1)  # 50% under the 80% goal
    await expect(sl.locator("rect.bar").first.locator("title")) \
        .to_have_text("09:00–09:30：服务水平 90%")
    await expect(sl.locator("line.goal")).to_have_count(1)

    # a range of days
    await console.get_by_test_id("fig-from").fill("2026-11-01")
    await console.get_by_test_id("fig-to").fill("2026-11-07")
    await console.get_by_test_id("fig-show").click()
    second = await backend.nth_request(p.Intervals, 2)
    assert (second.from_, second.to) == ("2026-11-01", "2026-11-07")
    await expect(console.get_by_test_id("fig-period")).to_contain_text("2026-11-01 至 2026-11-07")

    # a bad range never reaches the server
    await console.get_by_test_id("fig-to").fill("2026-10-01")
    await console.get_by_test_id("fig-show").click()
    await expect(console.get_by_test_id("fig-error")).to_be_visible()
    assert len(backend.requests_of(p.Intervals)) == 2

    # one queue, in English
    await console.get_by_test_id("lang-switch").select_option("en")
    await console.get_by_test_id("fig-queue").select_option("vip")
    await expect(sl.locator("svg > title")).to_have_text("Service level")
    await expect(console.get_by_test_id("fig-chart-volume").locator("rect.bar.offered").first
                 .locator("title")).to_have_text(re.compile(r"Offered 0$"))


async def test_an_agent_has_no_figures_tab(console: Page, backend: WallboardBackend) -> None:
    await log_in(console, "A1001", "agent-secret-1")
    await expect(console.get_by_test_id("seat-state")).to_have_text("未就绪")
    await expect(console.get_by_test_id("tab-figures")).to_be_hidden()
    await expect(console.get_by_test_id("tab-wallboard")).to_be_hidden()


async def test_the_chart_is_drawn_in_the_sites_time_zone(console: Page,
                                                         backend: WallboardBackend) -> None:
    """The hours on the axis are the site's (the reply's ``timezone``), not the browser's; a
    count axis has whole-number ticks."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    nine = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(
        hour=9, minute=0, second=0, microsecond=0).timestamp()
    backend.intervals = {**backend.intervals, "timezone": "Asia/Shanghai",
                         "intervals": [figures(nine, 1.0, 1, 1, 0, 3.0),
                                       figures(nine + 1800, None, 0, 0, 0, None)]}
    await log_in(console, "S9001", SUPERVISOR_PW)
    await console.get_by_test_id("tab-figures").click()
    volume = console.get_by_test_id("fig-chart-volume")
    await expect(volume.locator("text.tick").first).to_be_visible()
    ticks = await volume.locator("text.tick").all_text_contents()
    assert ticks[:3] == ["0", "1", "2"]  # the y axis: whole numbers, none twice
    assert ticks[3] == "09:00"  # Shanghai's nine o'clock, whatever the browser's zone
