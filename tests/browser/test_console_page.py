"""The agent console page against the real console server, with a fake backend.

The server is ``callcenter.seats.console_server.ConsoleServer`` serving the repo's
``agent_console/``; the backend is a fake that answers logins, snapshots and commands from a
small in-memory model, records every request it gets, and pushes events through
``server.push`` the way the engine's backend does. No Asterisk is involved.

No test sleeps: every wait is Playwright's auto-waiting ``expect`` (or a page-side condition).
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from callcenter.config import ConsoleSettings
from callcenter.errors import ConsoleError
from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity, ConsolePush
from callcenter.seats.console_server import ConsoleServer
from tests.browser.conftest import STATIC_DIR, PageProblems

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

AGENT_PW = "agent-secret-1"
SUPERVISOR_PW = "super-secret-1"
XSS = '<img src=x onerror="window.__pwned=1">'


def queue_figures(name: str = "general", **changes: Any) -> dict[str, Any]:
    figures = {"name": name, "waiting": 2, "longest_wait_s": 35.0, "answered": 41,
               "abandoned": 3, "service_level": 0.83, "asa_s": 12.4, "aht_s": 140.0,
               "target_s": 20.0, "target_share": 0.8}
    return {**figures, **changes}


def screen_pop(call_id: str = "c-1001", **changes: Any) -> dict[str, Any]:
    """call_offered data as the engine's backend builds it (seats/backend.py _screen_pop)."""
    pop = {
        "call_id": call_id, "queue": "vip", "waited_s": 42.3,
        "customer": {"name": "张伟", "tier": "gold", "account_masked": "******1234",
                     "balance_summary": {"currency": "CNY", "cash": "12345.67",
                                         "market_value": "250000.00", "total": "262345.67"}},
        "caller": "*******8000",
        "ivr": {"path": "main account transfer agent", "last_failure": "transfer:refused",
                "lang": "zh"},
        "recent_contacts": [{"at": time.time() - 86400, "kind": "call",
                             "summary": "resolved: 查询转账额度"}],
    }
    return {**pop, **changes}


@dataclass
class Agent:
    password: str
    identity: AgentIdentity


class FakeBackend:
    """A ``ConsoleBackend`` with just enough of a seat model for the page to be exercised."""

    def __init__(self) -> None:
        self.push: ConsolePush | None = None
        self.agents = {
            "A1001": Agent(AGENT_PW, AgentIdentity("A1001", "周敏 Zhou Min", p.Role.AGENT)),
            "S9001": Agent(SUPERVISOR_PW,
                           AgentIdentity("S9001", "林静 Lin Jing", p.Role.SUPERVISOR)),
        }
        self.seats: dict[str, dict[str, Any]] = {
            agent_id: {"agent_id": agent_id, "name": a.identity.name, "state": "logged_out",
                       "reason": "", "since": time.time(), "call_id": ""}
            for agent_id, a in self.agents.items()
        }
        self.queues = [queue_figures("general"), queue_figures("vip", waiting=0)]
        #: every command, as (agent id, request), in arrival order
        self.requests: list[tuple[str, p.Request]] = []
        #: what a command should raise instead of succeeding, by request type
        self.refuse: dict[str, ConsoleError] = {}
        #: the login reply's call (a page reloaded during a call)
        self.call: dict[str, Any] | None = None
        #: what ``deliveries`` answers (the current call's customer's messages)
        self.deliveries: list[dict[str, Any]] = []
        #: the current call's customer's subscriptions
        self.subscriptions: list[dict[str, Any]] = []
        #: the inbox, by contact id
        self.contacts: dict[str, dict[str, Any]] = {}
        self._arrived = asyncio.Condition()

    # -- ConsoleBackend ----------------------------------------------------------------------

    async def authenticate(self, agent_id: str, password: str) -> AgentIdentity | None:
        agent = self.agents.get(agent_id)
        expected = agent.password if agent else "-"
        ok = hmac.compare_digest(password.encode(), expected.encode())
        return agent.identity if agent and ok else None

    async def snapshot(self, agent: AgentIdentity) -> dict[str, Any]:
        seat = self.seats[agent.agent_id]
        if seat["state"] == "logged_out":
            seat.update(state="not_ready", reason="login", since=time.time())
        return {"agent": {"agent_id": agent.agent_id, "name": agent.name,
                          "role": agent.role.value},
                "seat": dict(seat), "call": self.call, "queues": self.queues,
                "reasons": ["break", "meal", "training", "meeting", "after-call"]}

    async def command(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        self.requests.append((agent.agent_id, request))
        async with self._arrived:
            self._arrived.notify_all()
        if request.type in self.refuse:
            raise self.refuse[request.type]
        match request:
            case p.SetState(state=state, reason=reason):
                seat = self.set_seat(agent.agent_id, state, reason)
                if state == "logged_out":  # as the engine's backend: every session ends
                    assert self.push is not None
                    self.push.end_sessions(agent.agent_id, "logged out in another session")
                return {"seat": seat}
            case p.ForceState(agent_id=target, state=state, reason=reason):
                return {"seat": self.set_seat(target, state, reason or "forced")}
            case p.WrapUp():
                return {"saved": True, "seat": self.set_seat(agent.agent_id, "ready", "")}
            case p.Wallboard():
                return self.wallboard()
            case p.Deliveries():
                return {"deliveries": [dict(d) for d in self.deliveries]}
            case p.Subscriptions():
                return {"subscriptions": [dict(s) for s in self.subscriptions]}
            case p.Subscribe():
                sub = {"subscription_id": len(self.subscriptions) + 1, "kind": request.kind,
                       "channel": request.channel, "code": request.code,
                       "price": request.price, "fax": "", "quiet_start": request.quiet_start,
                       "quiet_end": request.quiet_end, "created_at": time.time(),
                       "created_by": agent.agent_id}
                self.subscriptions.append(sub)
                return {"subscription_id": sub["subscription_id"], "new": True,
                        "address": "on_file", "subscription": sub}
            case p.Unsubscribe(subscription_id=sid):
                self.subscriptions = [s for s in self.subscriptions
                                      if s["subscription_id"] != sid]
                return {"removed": True}
            case p.Contacts():
                return {"contacts": [dict(c) for c in self.contacts.values()]}
            case p.TakeContact(contact_id=cid) | p.CloseContact(contact_id=cid):
                contact = self.contacts[cid]
                contact.update(state="taken" if request.type == "take_contact" else "done",
                               agent_id=agent.agent_id)
                return {"contact": dict(contact)}
        return {}

    async def recording_audio(self, ticket: str, part: int, address: str) -> bytes | None:
        return None

    async def session_closed(self, agent: AgentIdentity, sessions_left: int) -> None:
        pass

    # -- the engine's side, driven by the tests ----------------------------------------------

    def set_seat(self, agent_id: str, state: str, reason: str = "",
                 call_id: str = "") -> dict[str, Any]:
        seat = self.seats[agent_id]
        seat.update(state=state, reason=reason if state == "not_ready" else "",
                    since=time.time(), call_id=call_id)
        self.event(agent_id, "seat", dict(seat))
        return dict(seat)

    def event(self, agent_id: str, name: str, data: dict[str, Any]) -> None:
        assert self.push is not None, "the server is not started"
        self.push.to_agent(agent_id, p.Event(event=name, data=data))

    def wallboard(self) -> dict[str, Any]:
        return {"queues": self.queues, "seats": [dict(s) for s in self.seats.values()]}

    def push_wallboard(self) -> None:
        assert self.push is not None
        self.push.to_role(p.Role.SUPERVISOR, p.Event(event="wallboard", data=self.wallboard()))

    def requests_of(self, kind: type[p.Request]) -> list[Any]:
        return [r for _, r in self.requests if isinstance(r, kind)]

    async def nth_request(self, kind: type[p.Request], n: int) -> Any:
        """The ``n``th request of ``kind`` (1-based), once it has come."""
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests_of(kind)) >= n)
        return self.requests_of(kind)[n - 1]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest_asyncio.fixture(loop_scope="session")
async def console(server: ConsoleServer, page: Page) -> Page:
    """The page, opened on the console. Requesting the server first means the page is closed
    before the server at teardown, so the page never sees the server go away."""
    await page.goto(f"http://127.0.0.1:{server.port}/")
    return page


async def log_in(page: Page, agent_id: str, password: str) -> None:
    await page.get_by_test_id("login-agent").fill(agent_id)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()


async def log_in_agent(page: Page) -> None:
    await log_in(page, "A1001", AGENT_PW)
    await expect(page.get_by_test_id("seat-state")).to_have_text("未就绪")


# -- tests ---------------------------------------------------------------------------------------


async def test_wrong_password_shows_the_error(console: Page, backend: FakeBackend) -> None:
    await log_in(console, "A1001", "not-the-password")
    error = console.get_by_test_id("login-error")
    await expect(error).to_have_text("工号或密码错误")
    await expect(console.get_by_test_id("login-password")).to_have_value("")
    await expect(console.get_by_test_id("seat-state")).to_be_hidden()


async def test_bad_agent_id_is_refused_before_sending(console: Page,
                                                      backend: FakeBackend) -> None:
    await log_in(console, "A1001; drop", AGENT_PW)
    await expect(console.get_by_test_id("login-error")).to_contain_text("工号只能包含")
    assert backend.requests == []


async def test_login_then_ready(console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    await expect(console.get_by_test_id("agent-name")).to_have_text("周敏 Zhou Min")
    await expect(console.get_by_test_id("seat-reason")).to_have_text("刚登录")
    await expect(console.get_by_test_id("tab-wallboard")).to_be_hidden()
    # the password went to the server and nowhere else: the field is empty again
    await expect(console.get_by_test_id("login-password")).to_have_value("")

    await console.get_by_test_id("btn-ready").click()
    seat_state = console.get_by_test_id("seat-state")
    await expect(seat_state).to_have_text("就绪")
    await expect(seat_state).to_have_attribute("data-state", "ready")
    await expect(console.get_by_test_id("seat-timer")).to_have_text(re.compile(r"^0:0\d$"))
    assert [(r.state, r.reason) for r in backend.requests_of(p.SetState)] == [("ready", "")]

    # and back to not ready, with the reason picked from the login reply's list
    await console.get_by_test_id("reason-select").select_option("meal")
    await console.get_by_test_id("btn-not-ready").click()
    await expect(seat_state).to_have_text("未就绪")
    await expect(console.get_by_test_id("seat-reason")).to_have_text("用餐")
    assert backend.requests_of(p.SetState)[-1].reason == "meal"
    # every request carried its own id
    ids = [r.id for _, r in backend.requests]
    assert len(set(ids)) == len(ids) and all(ids)


async def test_screen_pop_call_and_wrap_up(console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    await console.get_by_test_id("btn-ready").click()
    await expect(console.get_by_test_id("seat-state")).to_have_text("就绪")

    backend.set_seat("A1001", "ringing", call_id="c-1001")
    backend.event("A1001", "call_offered", screen_pop())
    card = console.get_by_test_id("call-card")
    await expect(card).to_be_visible()
    await expect(console.get_by_test_id("customer-name")).to_have_text("张伟")
    tier = console.get_by_test_id("customer-tier")
    await expect(tier).to_have_text("金卡")
    await expect(tier).to_have_attribute("data-tier", "gold")
    await expect(console.get_by_test_id("account-masked")).to_have_text("******1234")
    await expect(console.get_by_test_id("ivr-path")).to_have_text(
        "main › account › transfer › agent")
    # the failure in words (an unknown refusal: said with its code)
    await expect(console.get_by_test_id("last-failure")).to_have_text(
        "自助服务未完成（transfer:refused）")
    await expect(console.get_by_test_id("balance-total")).to_have_text("¥262,345.67")
    await expect(console.get_by_test_id("recent-contacts")).to_contain_text("查询转账额度")
    await expect(console.get_by_test_id("call-status")).to_have_text("振铃中")
    await expect(console.get_by_test_id("answer-hint")).to_be_visible()

    backend.set_seat("A1001", "on_call", call_id="c-1001")
    backend.event("A1001", "call_connected", {"call_id": "c-1001", "recording": True})
    await expect(console.get_by_test_id("call-status")).to_have_text("通话中")
    await expect(console.get_by_test_id("recording-state")).to_have_text("录音中")

    # hold / resume and recording pause / resume go to the server and show at once
    await console.get_by_test_id("btn-hold").click()
    await expect(console.get_by_test_id("call-status")).to_have_text("保持中")
    await console.get_by_test_id("btn-resume").click()
    await expect(console.get_by_test_id("call-status")).to_have_text("通话中")
    await console.get_by_test_id("btn-record-pause").click()
    await expect(console.get_by_test_id("recording-state")).to_have_text("录音已暂停")
    await console.get_by_test_id("btn-record-resume").click()
    await expect(console.get_by_test_id("recording-state")).to_have_text("录音中")
    assert [r.type for _, r in backend.requests][-4:] == ["hold", "resume", "recording",
                                                          "recording"]
    assert [r.action for r in backend.requests_of(p.Recording)] == ["pause", "resume"]

    backend.set_seat("A1001", "wrap_up", call_id="")
    backend.event("A1001", "call_ended",
                  {"call_id": "c-1001", "wrap_up_s": 60, "disposition_required": True})
    form = console.get_by_test_id("wrapup-form")
    await expect(form).to_be_visible()
    await expect(console.get_by_test_id("call-status")).to_have_text("话后处理")
    await expect(console.get_by_test_id("wrapup-countdown")).to_contain_text("剩余")
    await expect(console.get_by_test_id("btn-hangup")).to_be_hidden()

    # a disposition is required before anything is sent
    await console.get_by_test_id("wrapup-save").click()
    await expect(console.get_by_test_id("wrapup-error")).to_have_text("请选择处理结果")
    assert backend.requests_of(p.WrapUp) == []

    await console.get_by_test_id("wrapup-disposition").select_option("follow_up")
    await console.get_by_test_id("wrapup-notes").fill("客户要求明天回电确认转账")
    await console.get_by_test_id("wrapup-save").click()
    await expect(console.get_by_test_id("wrapup-saved")).to_be_visible()
    [wrap] = backend.requests_of(p.WrapUp)
    assert (wrap.call_id, wrap.disposition, wrap.notes) == (
        "c-1001", "follow_up", "客户要求明天回电确认转账")
    # saving ended the wrap-up: the seat is ready again
    await expect(console.get_by_test_id("seat-state")).to_have_text("就绪")


async def test_blind_transfer_dialog_validates_and_sends(console: Page,
                                                         backend: FakeBackend) -> None:
    await log_in_agent(console)
    backend.event("A1001", "call_offered", screen_pop())
    backend.event("A1001", "call_connected", {"call_id": "c-1001", "recording": True})
    await expect(console.get_by_test_id("call-status")).to_have_text("通话中")

    await console.get_by_test_id("btn-transfer").click()
    dialog = console.get_by_test_id("target-dialog")
    await expect(dialog).to_be_visible()
    await console.get_by_test_id("target-kind").select_option("number")
    await console.get_by_test_id("target-value").fill("138abc")
    await console.get_by_test_id("target-ok").click()
    await expect(console.get_by_test_id("target-error")).to_have_text(
        "号码只能是数字（可以 + 开头），2 到 20 位")
    assert backend.requests_of(p.Transfer) == []

    await console.get_by_test_id("target-value").fill("138-0013 8000")
    await console.get_by_test_id("target-ok").click()
    await expect(dialog).to_be_hidden()
    await expect(console.get_by_test_id("toast")).to_have_text("已转接")
    [transfer] = backend.requests_of(p.Transfer)
    assert (transfer.target.kind, transfer.target.value) == ("number", "13800138000")


async def test_refused_command_shows_a_toast_in_the_agents_language(
        console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    backend.refuse["click_to_call"] = ConsoleError("unavailable", "AMI link is down")
    await console.get_by_test_id("ctc-number").fill("021-5555-1234")
    await console.get_by_test_id("ctc-submit").click()
    toast = console.get_by_test_id("toast")
    await expect(toast).to_contain_text("电话系统暂不可用")
    await expect(toast).to_contain_text("AMI link is down")  # the server's own words, as text
    [call] = backend.requests_of(p.ClickToCall)
    assert call.number == "02155551234"

    # a number the page can tell is wrong never leaves it
    await console.get_by_test_id("ctc-number").fill("call me")
    await console.get_by_test_id("ctc-submit").click()
    await expect(console.get_by_test_id("ctc-error")).to_be_visible()
    assert len(backend.requests_of(p.ClickToCall)) == 1


async def test_language_switch_is_remembered(console: Page, backend: FakeBackend) -> None:
    await expect(console.get_by_test_id("login-submit")).to_have_text("登录")
    await console.get_by_test_id("lang-switch").select_option("en")
    await expect(console.get_by_test_id("login-submit")).to_have_text("Log in")

    await console.reload()
    await expect(console.get_by_test_id("login-submit")).to_have_text("Log in")
    await expect(console.get_by_test_id("lang-switch")).to_have_value("en")
    await log_in(console, "A1001", "wrong")
    await expect(console.get_by_test_id("login-error")).to_have_text(
        "Wrong agent ID or password")
    await log_in(console, "A1001", AGENT_PW)
    await expect(console.get_by_test_id("seat-state")).to_have_text("Not ready")
    await expect(console.get_by_test_id("btn-ready")).to_have_text("Ready")
    await expect(console.get_by_test_id("btn-logout")).to_have_text("Log out")

    # switching back relabels a live session, server-sent values included
    await console.get_by_test_id("lang-switch").select_option("zh")
    await expect(console.get_by_test_id("btn-ready")).to_have_text("就绪")
    await expect(console.get_by_test_id("seat-state")).to_have_text("未就绪")


async def test_supervisor_wallboard(console: Page, backend: FakeBackend) -> None:
    backend.set_seat("A1001", "ready")
    await log_in(console, "S9001", SUPERVISOR_PW)
    tab = console.get_by_test_id("tab-wallboard")
    await expect(tab).to_be_visible()
    await tab.click()
    await expect(console.get_by_test_id("wallboard")).to_be_visible()

    queue_row = console.get_by_test_id("wb-queue-general")
    await expect(queue_row.locator("[data-col=waiting]")).to_have_text("2")
    await expect(queue_row.locator("[data-col=sl]")).to_have_text("83%")
    await expect(queue_row.locator("[data-col=asa]")).to_have_text("0:12")
    seat_row = console.get_by_test_id("wb-seat-A1001")
    await expect(seat_row.locator("[data-col=state]")).to_have_text("就绪")

    # a pushed wallboard event updates both tables
    backend.queues[0] = queue_figures("general", waiting=5, longest_wait_s=75.0,
                                      service_level=0.5, abandoned=4)
    backend.seats["A1001"].update(state="on_call", call_id="c-77", caller="*******8000",
                                  talking_since=time.time() - 75)
    backend.push_wallboard()
    await expect(queue_row.locator("[data-col=waiting]")).to_have_text("5")
    await expect(queue_row.locator("[data-col=longest]")).to_have_text("1:15")
    await expect(queue_row.locator("[data-col=sl]")).to_have_text("50%")
    await expect(queue_row.locator("[data-col=abandoned]")).to_have_text("4")
    await expect(seat_row.locator("[data-col=state]")).to_have_text("通话中")
    # the call as a supervisor reads it: the masked caller and the talk time, not the call id
    call_cell = seat_row.locator("[data-col=call]")
    await expect(call_cell).to_have_text(re.compile(r"^\*{7}8000 · 1:1[5-9]$"))
    await expect(call_cell).to_have_attribute("title", "c-77")

    # on a call: spying is offered, forcing a state is not (acd/seat.py FORCE_TARGETS)
    await expect(seat_row.get_by_test_id("force-ready")).to_be_disabled()
    await seat_row.get_by_test_id("spy-whisper").click()
    await expect(console.get_by_test_id("toast")).to_have_text("正在呼叫您的话机")
    [spy] = backend.requests_of(p.Spy)
    assert (spy.agent_id, spy.mode) == ("A1001", "whisper")

    # seats by state: counts, and a filter showing one state only
    await expect(console.get_by_test_id("wb-count-on_call")).to_have_text("通话中 1")
    await console.get_by_test_id("wb-state-filter").select_option("not_ready")
    await expect(seat_row).to_be_hidden()
    await expect(console.get_by_test_id("wb-seat-S9001")).to_be_visible()
    await console.get_by_test_id("wb-state-filter").select_option("all")
    await expect(seat_row).to_be_visible()
    await console.get_by_test_id("wb-count-on_call").click()
    await expect(console.get_by_test_id("wb-seat-S9001")).to_be_hidden()
    await console.get_by_test_id("wb-count-on_call").click()
    await expect(console.get_by_test_id("wb-seat-S9001")).to_be_visible()

    # ringing: no talk time yet; a withheld number is said so
    backend.seats["A1001"].update(state="ringing", call_id="c-78", caller="",
                                  talking_since=None)
    backend.push_wallboard()
    await expect(call_cell).to_have_text("未显示号码")
    await expect(call_cell).to_have_attribute("title", "c-78")
    backend.seats["A1001"].update(state="on_call", call_id="c-77", caller="*******8000",
                                  talking_since=time.time() - 75)
    backend.push_wallboard()
    await expect(call_cell).to_have_text(re.compile(r"^\*{7}8000 · 1:1[5-9]$"))

    # the call ends; the supervisor forces the agent not ready
    backend.seats["A1001"].update(state="wrap_up", call_id="", caller="", talking_since=None)
    backend.push_wallboard()
    await expect(seat_row.locator("[data-col=state]")).to_have_text("话后处理")
    await expect(call_cell).to_have_text("")
    await seat_row.get_by_test_id("force-not-ready").click()
    await expect(seat_row.locator("[data-col=state]")).to_have_text("未就绪")
    [force] = backend.requests_of(p.ForceState)
    assert (force.agent_id, force.state) == ("A1001", "not_ready")


async def test_server_data_is_shown_as_text(console: Page, backend: FakeBackend) -> None:
    backend.agents["A1001"].identity = AgentIdentity("A1001", XSS, p.Role.AGENT)
    await log_in_agent(console)
    pop = screen_pop(queue=XSS, ivr={"path": XSS, "last_failure": XSS, "lang": "zh"},
                     recent_contacts=[{"at": time.time(), "kind": XSS, "summary": XSS}])
    pop["customer"] = {**pop["customer"], "name": XSS, "tier": XSS, "account_masked": XSS}
    backend.event("A1001", "call_offered", pop)
    await expect(console.get_by_test_id("customer-name")).to_have_text(XSS)
    await expect(console.get_by_test_id("agent-name")).to_have_text(XSS)
    await expect(console.get_by_test_id("last-failure")).to_contain_text(XSS)
    await expect(console.get_by_test_id("customer-tier")).to_have_text(XSS)
    await expect(console.get_by_test_id("recent-contacts")).to_contain_text(XSS)
    backend.refuse["hangup"] = ConsoleError("internal", XSS)
    await console.get_by_test_id("btn-hangup").click()
    await expect(console.get_by_test_id("toast")).to_contain_text(XSS)

    assert await console.locator("img[src=x]").count() == 0
    assert await console.evaluate("window.__pwned") is None


async def test_forced_log_out_returns_to_login(console: Page, backend: FakeBackend,
                                               server: ConsoleServer) -> None:
    await log_in_agent(console)
    server.push.end_sessions("A1001", "logged out by S9001")
    await expect(console.get_by_test_id("login-notice")).to_contain_text("会话已结束")
    await expect(console.get_by_test_id("login-notice")).to_contain_text("S9001")
    await expect(console.get_by_test_id("login-agent")).to_have_value("A1001")
    await expect(console.get_by_test_id("seat-state")).to_be_hidden()


async def test_log_out(console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    await console.get_by_test_id("btn-logout").click()
    await expect(console.get_by_test_id("login-notice")).to_have_text("您已退出登录")
    assert backend.requests_of(p.SetState)[-1].state == "logged_out"


async def test_log_out_in_one_tab_ends_the_other(console: Page, browser: Browser,
                                                server: ConsoleServer) -> None:
    other = await browser.new_context(locale="zh-CN")
    other.set_default_timeout(10_000)
    try:
        second = await other.new_page()
        await second.goto(f"http://127.0.0.1:{server.port}/")
        await log_in_agent(second)
        await log_in_agent(console)
        await console.get_by_test_id("btn-logout").click()
        await expect(console.get_by_test_id("login-notice")).to_have_text("您已退出登录")
        await expect(second.get_by_test_id("login-notice")).to_have_text(
            "会话已结束：已在另一个会话中退出")
        await expect(second.get_by_test_id("seat-state")).to_be_hidden()
    finally:
        await other.close()


async def test_lost_connection_reconnects_and_asks_to_log_in(
        page: Page, backend: FakeBackend, page_problems: PageProblems) -> None:
    settings = ConsoleSettings(host="127.0.0.1", port=0, static_dir=STATIC_DIR)
    first = ConsoleServer(settings, backend)
    await first.start()
    port = first.port
    try:
        backend.push = first.push
        await page.goto(f"http://127.0.0.1:{port}/")
        await log_in_agent(page)
    finally:
        await first.close()
    # the browser logs each refused reconnect; expected here
    page_problems.allow(r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws' failed")
    notice = page.get_by_test_id("login-notice")
    await expect(notice).to_have_text("与服务器的连接已断开，正在重连…")
    await expect(page.get_by_test_id("seat-state")).to_be_hidden()

    second = ConsoleServer(settings.model_copy(update={"port": port}), backend)
    await second.start()
    try:
        backend.push = second.push
        await expect(notice).to_have_text("已重新连接，请重新登录", timeout=20_000)
        await page.get_by_test_id("login-password").fill(AGENT_PW)
        await page.get_by_test_id("login-submit").click()
        await expect(page.get_by_test_id("seat-state")).to_be_visible()
        await page.close()  # before the server goes: no reconnect noise after the test
    finally:
        await second.close()


async def test_harness_catches_csp_violations(console: Page,
                                              page_problems: PageProblems) -> None:
    """The no-console-errors check is only worth something if it sees a violation."""
    page_problems.allow("CSP violation|Content Security Policy")
    async with console.expect_console_message(lambda m: "CSP violation" in m.text):
        await console.evaluate("""() => {
            const s = document.createElement("script");
            s.textContent = "window.__inline = 1";
            document.body.append(s);
        }""")
    assert await console.evaluate("window.__inline") is None
    assert any("CSP violation: script-src" in s for s in page_problems.seen)


# -- acting on the caller, reloads, consultations, lockout, service-level goals -------------------


async def on_a_call(page: Page, backend: FakeBackend, call_id: str = "c-1001") -> None:
    await log_in_agent(page)
    backend.set_seat("A1001", "on_call", call_id=call_id)
    backend.event("A1001", "call_offered", screen_pop(call_id))
    backend.event("A1001", "call_connected", {"call_id": call_id, "recording": True})
    await expect(page.get_by_test_id("call-status")).to_have_text("通话中")


async def test_statement_and_task_for_the_caller_name_the_call(console: Page,
                                                               backend: FakeBackend) -> None:
    """The page has only the masked account: it sends the call id and the engine looks up
    the account."""
    await on_a_call(console, backend)
    await console.locator(".send-box > summary").click()
    await console.get_by_test_id("msg-channel").select_option("email")
    await console.get_by_test_id("msg-send").click()
    await expect(console.get_by_test_id("toast")).to_have_text("已提交发送")
    [message] = backend.requests_of(p.SendMessage)
    assert (message.call_id, message.account, message.channel) == ("c-1001", "", "email")

    # a typed account is sent as it is, without the call
    await console.get_by_test_id("msg-account").fill("31000099")
    await console.get_by_test_id("msg-send").click()
    second = await backend.nth_request(p.SendMessage, 2)
    assert (second.account, second.call_id) == ("31000099", "")

    # a task made during the call is about this customer unless the agent unticks it
    await console.locator("details.panel > summary", has_text="创建跟进任务").click()
    link = console.get_by_test_id("task-use-call")
    await expect(link).to_be_checked()
    await expect(console.get_by_test_id("task-use-call-label")).to_contain_text("******1234")
    await expect(console.get_by_test_id("task-account")).to_be_hidden()
    await console.get_by_test_id("task-text").fill("明天回电确认转账额度")
    await console.get_by_test_id("task-submit").click()
    await expect(console.get_by_test_id("toast")).to_have_text("跟进任务已创建")
    [task] = backend.requests_of(p.CreateTask)
    assert (task.call_id, task.account, task.text) == ("c-1001", "", "明天回电确认转账额度")

    await link.uncheck()
    await console.get_by_test_id("task-account").fill("31000099")
    await console.get_by_test_id("task-text").fill("other customer")
    await console.get_by_test_id("task-submit").click()
    other = await backend.nth_request(p.CreateTask, 2)
    assert (other.call_id, other.account) == ("", "31000099")


async def test_statement_for_an_unidentified_caller_needs_an_account(
        console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    backend.event("A1001", "call_offered", screen_pop(customer=None))
    await console.locator(".send-box > summary").click()
    await console.get_by_test_id("msg-send").click()
    await expect(console.get_by_test_id("msg-error")).to_have_text(
        "本通话未识别客户，请填写资金账号")
    assert backend.requests_of(p.SendMessage) == []
    # and a task is not tied to it by account, only by the call's number
    await console.locator("details.panel > summary", has_text="创建跟进任务").click()
    await expect(console.get_by_test_id("task-use-call-label")).to_contain_text("*******8000")


async def test_call_back_after_the_wrap_up(console: Page, backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    backend.set_seat("A1001", "wrap_up")
    backend.event("A1001", "call_ended",
                  {"call_id": "c-1001", "wrap_up_s": 60, "answered": True,
                   "disposition_required": True})
    callback = console.get_by_test_id("btn-callback")
    await expect(callback).to_be_visible()
    await expect(callback).to_be_disabled()  # the seat must be ready first
    await console.get_by_test_id("wrapup-disposition").select_option("follow_up")
    await console.get_by_test_id("wrapup-save").click()
    await expect(console.get_by_test_id("seat-state")).to_have_text("就绪")
    await expect(callback).to_be_enabled()
    await callback.click()
    await expect(console.get_by_test_id("toast")).to_have_text("正在回拨客户")
    [call] = backend.requests_of(p.ClickToCall)
    assert (call.call_id, call.number, call.account) == ("c-1001", "", "")


async def test_consult_complete_waits_for_the_answer(console: Page,
                                                     backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    await console.get_by_test_id("btn-consult").click()
    await console.get_by_test_id("target-kind").select_option("agent")
    await console.get_by_test_id("target-value").fill("A1002")
    await console.get_by_test_id("target-ok").click()
    bar = console.get_by_test_id("consult-bar")
    await expect(bar).to_be_visible()
    complete = console.get_by_test_id("btn-consult-complete")
    await expect(complete).to_be_disabled()  # still ringing
    await expect(console.get_by_test_id("btn-consult-cancel")).to_be_enabled()
    await expect(console.get_by_test_id("btn-resume")).to_be_disabled()

    backend.event("A1001", "consult", {"call_id": "c-1001", "state": "ringing",
                                       "target": "A1002"})
    backend.event("A1001", "consult", {"call_id": "c-1001", "state": "talking",
                                       "target": "A1002"})
    await expect(console.get_by_test_id("consult-status")).to_contain_text("A1002")
    await expect(console.get_by_test_id("consult-status")).to_contain_text("通话中")
    await expect(complete).to_be_enabled()
    await complete.click()
    await expect(bar).to_be_hidden()
    assert len(backend.requests_of(p.ConsultComplete)) == 1


async def test_consulted_party_hanging_up_leaves_the_caller_on_hold(
        console: Page, backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    backend.event("A1001", "consult", {"call_id": "c-1001", "state": "ringing",
                                       "target": "95555"})
    await expect(console.get_by_test_id("consult-bar")).to_be_visible()
    await expect(console.get_by_test_id("call-status")).to_have_text("保持中")
    backend.event("A1001", "consult", {"call_id": "c-1001", "state": "ended",
                                       "target": "95555"})
    await expect(console.get_by_test_id("consult-bar")).to_be_hidden()
    resume = console.get_by_test_id("btn-resume")
    await expect(resume).to_be_enabled()
    await resume.click()
    await expect(console.get_by_test_id("call-status")).to_have_text("通话中")


async def test_reload_during_a_call_restores_it(console: Page, backend: FakeBackend) -> None:
    backend.seats["A1001"].update(state="on_hold", call_id="c-1001", since=time.time() - 5)
    backend.call = {**screen_pop(), "state": "held", "recording": "paused",
                    "consult": "talking", "connected_at": time.time() - 125,
                    "wrap_up_until": None}
    await log_in(console, "A1001", AGENT_PW)
    await expect(console.get_by_test_id("customer-name")).to_have_text("张伟")
    await expect(console.get_by_test_id("call-status")).to_have_text("保持中")
    await expect(console.get_by_test_id("recording-state")).to_have_text("录音已暂停")
    await expect(console.get_by_test_id("call-timer")).to_have_text(re.compile(r"^2:0\d$"))
    await expect(console.get_by_test_id("consult-bar")).to_be_visible()
    await expect(console.get_by_test_id("btn-consult-complete")).to_be_enabled()


async def test_reload_in_wrap_up_keeps_the_deadline(console: Page,
                                                    backend: FakeBackend) -> None:
    backend.seats["A1001"].update(state="wrap_up", since=time.time() - 20)
    backend.call = {**screen_pop(), "state": "wrap_up", "recording": "off", "consult": None,
                    "connected_at": time.time() - 200, "wrap_up_until": time.time() + 40}
    await log_in(console, "A1001", AGENT_PW)
    await expect(console.get_by_test_id("wrapup-form")).to_be_visible()
    await expect(console.get_by_test_id("wrapup-countdown")).to_have_text(
        re.compile(r"^剩余 0:(3\d|40)$"))
    await expect(console.get_by_test_id("call-timer")).to_have_text(re.compile(r"^0:2\d$"))


async def test_login_lockout_has_its_own_message(console: Page, backend: FakeBackend) -> None:
    for _ in range(5):  # console.max_login_failures
        await log_in(console, "A1001", "not-the-password")
        await expect(console.get_by_test_id("login-error")).to_have_text("工号或密码错误")
        await expect(console.get_by_test_id("login-submit")).to_be_enabled()
    await log_in(console, "A1001", AGENT_PW)  # even the right password waits now
    await expect(console.get_by_test_id("login-error")).to_have_text(
        "登录失败次数过多，此工号已暂停登录，请稍后再试")
    # an unknown id is paused the same way
    for _ in range(6):
        await log_in(console, "NOBODY", "guess")
        await expect(console.get_by_test_id("login-submit")).to_be_enabled()
    await console.get_by_test_id("lang-switch").select_option("en")
    await log_in(console, "NOBODY", "guess")
    await expect(console.get_by_test_id("login-error")).to_have_text(
        "Too many failed logins: logins for this ID are paused; try again later")
    assert backend.requests == []


async def test_service_level_is_coloured_against_the_queue_goal(
        console: Page, backend: FakeBackend) -> None:
    backend.queues = [queue_figures("general", service_level=0.85, target_share=0.9),
                      queue_figures("vip", service_level=0.85, target_share=0.8),
                      queue_figures("retail", service_level=0.62, target_share=0.9)]
    await log_in(console, "S9001", SUPERVISOR_PW)
    await console.get_by_test_id("tab-wallboard").click()
    general = console.get_by_test_id("wb-queue-general").locator("[data-col=sl]")
    await expect(general).to_have_text("85%")
    await expect(general).to_have_class(re.compile(r"\bwarn\b"))
    await expect(general).to_have_attribute("title", "目标：20 秒内接听 90%")
    await expect(console.get_by_test_id("wb-queue-vip").locator("[data-col=sl]")) \
        .to_have_class(re.compile(r"\bgood\b"))
    await expect(console.get_by_test_id("wb-queue-retail").locator("[data-col=sl]")) \
        .to_have_class(re.compile(r"\bbad\b"))
    # the agent's queue table too
    await console.get_by_test_id("tab-desk").click()
    await expect(console.get_by_test_id("queue-general").locator("td").nth(3)) \
        .to_have_class(re.compile(r"\bwarn\b"))


# -- the customer's messages and subscriptions, the inbox ----------------------------------------


def delivery(message_id: str, state: str, **changes: Any) -> dict[str, Any]:
    """A ``deliveries`` item as the engine's backend builds it."""
    item = {"message_id": message_id, "channel": "sms", "template": "note", "kind": "note",
            "to": "*******8000", "state": state, "reason": "", "attempts": 1,
            "created_at": time.time() - 60, "updated_at": time.time() - 50,
            "next_attempt_at": None, "ref": "48213377", "subscription_id": None}
    return {**item, **changes}


def contact(contact_id: str, **changes: Any) -> dict[str, Any]:
    item = {"contact_id": contact_id, "channel": "fax", "sender": "02155550000",
            "subject": "传真：转户申请", "text": "", "text_truncated": False,
            "attachment_name": f"{contact_id}.pdf", "pages": 2, "account_masked": "",
            "received_at": time.time() - 30, "state": "new", "agent_id": ""}
    return {**item, **changes}


async def test_messages_panel_shows_the_customers_deliveries(console: Page,
                                                            backend: FakeBackend) -> None:
    backend.deliveries = [
        delivery("m-queued-0001", "queued", channel="email", template="statement",
                 kind="statement", to="w***@example.com"),
        delivery("m-failed-0002", "failed", reason="SMSC: unknown subscriber"),
        delivery("m-notice-0003", "delivered", template="fill", kind="fill", ref="",
                 subscription_id=4),
    ]
    await on_a_call(console, backend)
    await console.get_by_test_id("deliveries-box").locator("summary").click()
    queued = console.get_by_test_id("delivery-m-queued-0001")
    await expect(queued.get_by_test_id("delivery-state")).to_have_text("待发送")
    await expect(queued.locator("[data-col=what]")).to_contain_text("对账单")
    await expect(queued.locator("[data-col=to]")).to_have_text("w***@example.com")
    failed = console.get_by_test_id("delivery-m-failed-0002")
    await expect(failed.get_by_test_id("delivery-state")).to_have_text("失败")
    await expect(failed.get_by_test_id("delivery-reason")).to_have_text(
        "SMSC: unknown subscriber")
    await expect(console.get_by_test_id("delivery-m-notice-0003")
                 .get_by_test_id("delivery-state")).to_have_text("已送达")
    [asked] = backend.requests_of(p.Deliveries)
    assert (asked.call_id, asked.account) == ("c-1001", "")

    # the relay says the statement went out: the row changes, and the list is read again
    backend.deliveries[0] = {**backend.deliveries[0], "state": "delivered"}
    assert backend.push is not None
    backend.push.to_role(p.Role.AGENT, p.Event(event="delivery", data={
        "message_id": "m-queued-0001", "channel": "email", "account_masked": "******1234",
        "ref": "48213377", "state": "delivered", "report": "delivered", "reason": "",
        "at": time.time()}))
    await expect(queued.get_by_test_id("delivery-state")).to_have_text("已送达")
    await backend.nth_request(p.Deliveries, 2)
    # another customer's delivery is not this card's business
    backend.push.to_role(p.Role.AGENT, p.Event(event="delivery", data={
        "message_id": "m-other", "account_masked": "****0099", "state": "failed"}))
    await console.get_by_test_id("lang-switch").select_option("en")
    await expect(queued.get_by_test_id("delivery-state")).to_have_text("Delivered")
    await expect(failed.get_by_test_id("delivery-state")).to_have_text("Failed")
    assert len(backend.requests_of(p.Deliveries)) == 2


async def test_sending_a_fax_needs_the_number_and_no_address_is_explained(
        console: Page, backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    await console.locator("#msg-box > summary").click()
    await expect(console.get_by_test_id("msg-fax")).to_be_hidden()
    await expect(console.get_by_test_id("msg-text")).to_be_hidden()
    await console.get_by_test_id("msg-channel").select_option("fax")
    await console.get_by_test_id("msg-send").click()
    await expect(console.get_by_test_id("msg-error")).to_have_text(
        "请填写传真号码（可含 +，3–20 位数字）")
    assert backend.requests_of(p.SendMessage) == []
    await console.get_by_test_id("msg-fax").fill("021-5555 0000")
    await console.get_by_test_id("msg-template").select_option("confirmations")
    await console.get_by_test_id("msg-send").click()
    await expect(console.get_by_test_id("toast")).to_have_text("已提交发送")
    [fax] = backend.requests_of(p.SendMessage)
    assert (fax.channel, fax.template, fax.fax, fax.call_id) == (
        "fax", "confirmations", "02155550000", "c-1001")

    # a note by e-mail to a customer with no address on file
    backend.refuse["send_message"] = ConsoleError(
        "not_found", "no address on file: the customer has no e-mail address on file")
    await console.get_by_test_id("msg-channel").select_option("email")
    await console.get_by_test_id("msg-template").select_option("note")
    await console.get_by_test_id("msg-send").click()
    await expect(console.get_by_test_id("msg-error")).to_have_text("请填写通知内容")
    await console.get_by_test_id("msg-text").fill("您的转账已受理")
    await console.get_by_test_id("msg-send").click()
    await expect(console.get_by_test_id("msg-error")).to_have_text(
        "客户未登记电子邮件地址，无法发送邮件")
    note = await backend.nth_request(p.SendMessage, 2)
    assert (note.template, note.text, note.fax) == ("note", "您的转账已受理", "")
    await console.get_by_test_id("lang-switch").select_option("en")
    await console.get_by_test_id("msg-send").click()
    await expect(console.get_by_test_id("msg-error")).to_have_text(
        "No e-mail address on file for this customer: the e-mail cannot be sent")


async def test_subscribing_and_unsubscribing_the_customer(console: Page,
                                                          backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    await console.get_by_test_id("subs-box").locator("summary").click()
    await expect(console.get_by_test_id("sub-status")).to_have_text("暂无订阅")
    await console.get_by_test_id("sub-kind").select_option("price_above")
    await console.get_by_test_id("sub-code").fill("600519")
    await console.get_by_test_id("sub-price").fill("0")
    await console.get_by_test_id("sub-add").click()
    await expect(console.get_by_test_id("sub-error")).to_have_text(
        "价格须大于零，最多两位小数")
    await console.get_by_test_id("sub-price").fill("1800.5")
    await console.get_by_test_id("sub-quiet-start").fill("22:00")
    await console.get_by_test_id("sub-add").click()
    await expect(console.get_by_test_id("sub-error")).to_have_text(
        "免打扰时段需同时填写开始和结束时间")
    await console.get_by_test_id("sub-quiet-end").fill("07:30")
    await console.get_by_test_id("sub-add").click()
    await expect(console.get_by_test_id("toast")).to_have_text("订阅已登记")
    [sub] = backend.requests_of(p.Subscribe)
    assert (sub.call_id, sub.account, sub.kind, sub.channel, sub.code, sub.price,
            sub.quiet_start, sub.quiet_end) == (
        "c-1001", "", "price_above", "sms", "600519", "1800.5", "22:00", "07:30")
    row = console.get_by_test_id("sub-1")
    await expect(row.locator("[data-col=kind]")).to_have_text("股价高于")
    await expect(row.locator("[data-col=detail]")).to_have_text("600519 ≥ 1800.5")
    await expect(row.locator("[data-col=quiet]")).to_have_text("22:00–07:30")

    await row.get_by_test_id("sub-remove").click()
    await expect(row).to_be_hidden()
    [unsub] = backend.requests_of(p.Unsubscribe)
    assert (unsub.subscription_id, unsub.call_id) == (1, "c-1001")


async def test_the_inbox_shows_a_pushed_contact_and_take_works(
        console: Page, backend: FakeBackend, server: ConsoleServer) -> None:
    backend.contacts["mail-0000001"] = contact(
        "mail-0000001", channel="email", sender="a@example.com", subject="旧邮件",
        state="done", agent_id="A1002", attachment_name="", pages=None)
    await log_in_agent(console)
    await backend.nth_request(p.Contacts, 1)
    tab = console.get_by_test_id("tab-inbox")
    await expect(tab).to_be_visible()
    await expect(console.get_by_test_id("inbox-count")).to_be_hidden()

    fax = contact("fax-0000002", subject=XSS, text="请办理转户\n谢谢")
    backend.contacts[fax["contact_id"]] = fax
    server.push.to_role(p.Role.AGENT, p.Event(event="contact", data=fax))
    await expect(console.get_by_test_id("inbox-count")).to_have_text("1")
    await tab.click()
    await expect(console.get_by_test_id("inbox")).to_be_visible()
    row = console.get_by_test_id("contact-fax-0000002")
    await expect(row.locator("[data-col=subject]")).to_contain_text(XSS)
    await expect(row.locator("[data-col=subject]")).to_contain_text("请办理转户")
    await expect(row.locator("[data-col=attachment]")).to_contain_text("fax-0000002.pdf")
    await expect(row.locator("[data-col=sender]")).to_have_text("02155550000")
    await expect(row.locator("[data-col=state]")).to_have_text("新来件")
    # the open contacts only, unless the agent asks for all
    await expect(console.get_by_test_id("contact-mail-0000001")).to_be_hidden()
    await console.get_by_test_id("inbox-filter").select_option("all")
    await expect(console.get_by_test_id("contact-mail-0000001")).to_be_visible()

    await row.get_by_test_id("contact-take").click()
    await expect(row.locator("[data-col=state]")).to_have_text("已接手（A1001）")
    await expect(row.get_by_test_id("contact-take")).to_be_disabled()
    await expect(console.get_by_test_id("inbox-count")).to_be_hidden()
    [take] = backend.requests_of(p.TakeContact)
    assert take.contact_id == "fax-0000002"
    await row.get_by_test_id("contact-close").click()
    await expect(row.locator("[data-col=state]")).to_have_text("已处理（A1001）")
    assert [r.contact_id for r in backend.requests_of(p.CloseContact)] == ["fax-0000002"]
    assert await console.locator("img[src=x]").count() == 0
    assert await console.evaluate("window.__pwned") is None


async def test_the_pop_says_the_ivr_path_and_the_failure_in_words(console: Page,
                                                                  backend: FakeBackend) -> None:
    await log_in_agent(console)
    backend.set_seat("A1001", "ringing", call_id="c-1001")
    backend.event("A1001", "call_offered", screen_pop(
        ivr={"path": "main account.login login.check agent.queue",
             "path_zh": "主菜单 › 账户查询 › 登录 › 转人工",
             "path_en": "Main menu › Account › Login › To an agent",
             "last_failure": "login:account_locked", "lang": "en"},
        manager="A1002"))
    await expect(console.get_by_test_id("ivr-path")).to_have_text(
        "主菜单 › 账户查询 › 登录 › 转人工")
    await expect(console.get_by_test_id("last-failure")).to_have_text(
        "交易密码已锁定（错误次数过多）")  # login checks the trading password
    await expect(console.get_by_test_id("caller-lang")).to_have_text("英文")
    await expect(console.get_by_test_id("caller-manager")).to_have_text("A1002")
    # a lock names the password the flows say (ivr_flows/transfer.yaml), not just "account"
    for n, (reason, text) in enumerate([
            ("fund_password:account_locked", "资金密码已锁定（错误次数过多）"),
            ("bank_password:account_locked", "银行密码已锁定（错误次数过多）"),
            ("check_password:account_locked", "账户已锁定（密码错误次数过多）")]):
        backend.event("A1001", "call_offered", screen_pop(
            f"c-20{n}", ivr={"path": "main", "last_failure": reason, "lang": "zh"}))
        await expect(console.get_by_test_id("last-failure")).to_have_text(text)
        await expect(console.get_by_test_id("last-failure")).to_have_attribute("title", reason)
    await console.get_by_test_id("lang-switch").select_option("en")
    backend.event("A1001", "call_offered", screen_pop(
        "c-210", ivr={"path": "main", "last_failure": "trading_password:account_locked",
                      "lang": "zh"}))
    await expect(console.get_by_test_id("last-failure")).to_have_text(
        "Trading password locked (too many wrong attempts)")
    await console.get_by_test_id("lang-switch").select_option("zh")
    # an unknown code is still said, with the code for whoever needs it
    backend.event("A1001", "call_offered", screen_pop(
        "c-1002", ivr={"path": "main", "last_failure": "fax:busy", "lang": "zh"}))
    await expect(console.get_by_test_id("last-failure")).to_have_text(
        "自助服务未完成（fax:busy）")
    await expect(console.get_by_test_id("ivr-path")).to_have_text("main")


async def test_no_login_before_the_pages_code_runs(server: ConsoleServer,
                                                   browser: Browser) -> None:
    """Until the page's modules have loaded, the login form cannot be submitted: a native
    submit would have put the password in the URL (seen when a test clicked too early)."""
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{server.port}/")
        await expect(page.get_by_test_id("login-submit")).to_be_disabled()
        assert await page.locator("#login-form").get_attribute("method") == "post"
        await page.get_by_test_id("login-password").fill(AGENT_PW)
        await page.get_by_test_id("login-password").press("Enter")
        assert "password" not in page.url
    finally:
        await context.close()


async def test_the_login_button_works_once_the_code_runs(console: Page) -> None:
    await expect(console.get_by_test_id("login-submit")).to_be_enabled()
