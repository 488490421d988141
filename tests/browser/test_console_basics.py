"""The agent basics of the console page: hotkeys, the ring alert, the transfer directory and
warm transfer from the target dialog. Against the real console server with the fake backend of
``test_console_page.py`` (plus the ``directory`` request). No Asterisk; no sound is listened to:
the ring alert is checked through ``window.__ringAlert``, and the Notification API is a stub
installed before the page loads."""

from __future__ import annotations

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
    log_in_agent,
    screen_pop,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

#: a Notification stub: permission "default" until asked; what was shown and closed is kept,
#: and counted on <html data-notes-*> for the tests' auto-waiting expects (the page's CSP
#: forbids the eval a wait_for_function would need)
NOTIFICATION_STUB = """
window.__notes = {asked: 0, shown: [], closed: 0};
function counted() {
  const html = document.documentElement;
  html.dataset.notesAsked = String(window.__notes.asked);
  html.dataset.notesShown = String(window.__notes.shown.length);
  html.dataset.notesClosed = String(window.__notes.closed);
}
class FakeNotification {
  constructor(title, options) {
    this.title = title; this.body = options?.body ?? ""; this.onclick = null;
    window.__notes.shown.push({title, body: this.body, tag: options?.tag ?? ""});
    counted();
  }
  close() { window.__notes.closed += 1; counted(); }
  static permission = "default";
  static async requestPermission() {
    window.__notes.asked += 1;
    counted();
    FakeNotification.permission = "granted";
    return "granted";
  }
}
window.Notification = FakeNotification;
// the agent is looking at another window: the notice is shown
document.hasFocus = () => false;
"""

DIRECTORY = {
    "agents": [
        {"agent_id": "A1002", "name": "王芳", "state": "ready", "reason": "", "available": True},
        {"agent_id": "A1004", "name": "赵敏", "state": "on_call", "reason": "",
         "available": False},
        {"agent_id": "A1003", "name": "钱军", "state": "not_ready", "reason": "meal",
         "available": False},
    ],
    "queues": [{"name": "general", "waiting": 3}, {"name": "vip", "waiting": 0}],
    "numbers": [{"label": "基金专线", "number": "95555"}],
}


class DirectoryBackend(FakeBackend):
    """The page tests' fake backend, answering ``directory`` too."""

    async def command(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        reply = await super().command(agent, request)
        if isinstance(request, p.Directory):
            return DIRECTORY
        return reply


@pytest.fixture
def backend() -> DirectoryBackend:
    return DirectoryBackend()


@pytest_asyncio.fixture(loop_scope="session")
async def console(server: ConsoleServer, page: Page) -> Page:
    await page.add_init_script(NOTIFICATION_STUB)
    await page.goto(f"http://127.0.0.1:{server.port}/")
    return page


async def on_a_call(page: Page, backend: FakeBackend) -> None:
    await log_in_agent(page)
    backend.set_seat("A1001", "on_call", call_id="c-1001")
    backend.event("A1001", "call_offered", screen_pop())
    backend.event("A1001", "call_connected", {"call_id": "c-1001", "recording": True})
    await expect(page.get_by_test_id("call-status")).to_have_text("通话中")


async def ring(page: Page, what: str) -> Any:
    return await page.evaluate(f"window.__ringAlert.{what}")


async def calm(page: Page) -> None:
    """Focus nothing in particular (hotkeys are ignored in fields)."""
    await page.evaluate("document.activeElement instanceof HTMLElement"
                        " && document.activeElement.blur()")


# -- hotkeys -------------------------------------------------------------------------------------


async def test_hotkeys_drive_the_seat_and_the_call(console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    await calm(console)
    await console.keyboard.press("Alt+KeyR")
    ready = await backend.nth_request(p.SetState, 1)
    assert ready.state == "ready"
    await expect(console.get_by_test_id("seat-state")).to_have_text("就绪")
    await console.keyboard.press("Alt+KeyN")
    assert (await backend.nth_request(p.SetState, 2)).state == "not_ready"

    # typing in a field: the keys are the field's
    await console.get_by_test_id("ctc-number").focus()
    await console.keyboard.press("Alt+KeyR")
    await console.keyboard.press("?")
    await expect(console.get_by_test_id("keys-dialog")).to_be_hidden()
    await calm(console)

    backend.set_seat("A1001", "on_call", call_id="c-1001")
    backend.event("A1001", "call_offered", screen_pop())
    backend.event("A1001", "call_connected", {"call_id": "c-1001", "recording": True})
    await expect(console.get_by_test_id("call-status")).to_have_text("通话中")
    assert "Alt+X" in (await console.get_by_test_id("btn-hangup").get_attribute("title") or "")
    await console.keyboard.press("Alt+KeyP")
    await backend.nth_request(p.Hold, 1)
    await expect(console.get_by_test_id("call-status")).to_have_text("保持中")
    await console.keyboard.press("Alt+KeyP")
    await backend.nth_request(p.Resume, 1)
    await expect(console.get_by_test_id("call-status")).to_have_text("通话中")

    await console.keyboard.press("Alt+KeyZ")
    dialog = console.get_by_test_id("target-dialog")
    await expect(dialog).to_be_visible()
    await expect(console.locator("#target-title")).to_have_text("盲转")
    await console.keyboard.press("Alt+KeyX")  # a dialog is open: not a hang-up
    await console.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert backend.requests_of(p.Hangup) == []
    assert len(backend.requests_of(p.SetState)) == 2

    await console.keyboard.press("Alt+KeyX")
    await backend.nth_request(p.Hangup, 1)
    backend.event("A1001", "call_ended", {"call_id": "c-1001", "wrap_up_s": 60,
                                          "answered": True, "disposition_required": True})
    await expect(console.get_by_test_id("wrapup-form")).to_be_visible()
    await console.get_by_test_id("wrapup-disposition").select_option("resolved")
    await console.get_by_test_id("wrapup-notes").fill("查询额度")
    await console.get_by_test_id("wrapup-notes").press("Control+Enter")
    wrap = await backend.nth_request(p.WrapUp, 1)
    assert (wrap.disposition, wrap.notes) == ("resolved", "查询额度")
    await expect(console.get_by_test_id("wrapup-saved")).to_be_visible()


async def test_save_wrap_up_and_answer_hotkeys(console: Page, backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    backend.event("A1001", "call_ended", {"call_id": "c-1001", "wrap_up_s": 60,
                                          "answered": True})
    await expect(console.get_by_test_id("wrapup-form")).to_be_visible()
    await console.get_by_test_id("wrapup-disposition").select_option("info")
    await calm(console)
    await console.keyboard.press("Alt+KeyW")
    assert (await backend.nth_request(p.WrapUp, 1)).disposition == "info"

    # a desk phone is answered on the phone: the key says so
    backend.event("A1001", "call_offered", screen_pop("c-1002"))
    await expect(console.get_by_test_id("call-status")).to_have_text("振铃中")
    await calm(console)
    await console.keyboard.press("Alt+KeyA")
    await expect(console.get_by_test_id("toast")).to_have_text("请在话机上接听")
    # a ringing browser phone: Alt+A is its Accept button
    await console.evaluate("""() => {
      document.addEventListener("click", (e) => {
        if (e.target instanceof Element && e.target.closest("#phone-accept")) {
          e.stopPropagation(); document.documentElement.dataset.accepted = "yes";
        }
      }, true);
      for (const id of ["phone-panel", "phone-soft", "phone-incoming"]) {
        document.getElementById(id).hidden = false;
      }
    }""")
    await console.keyboard.press("Alt+KeyA")
    await expect(console.locator("html")).to_have_attribute("data-accepted", "yes")


async def test_help_overlay_lists_the_keys(console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    await calm(console)
    await console.keyboard.press("?")
    help_ = console.get_by_test_id("keys-dialog")
    await expect(help_).to_be_visible()
    rows = console.get_by_test_id("keys-rows").locator("tr")
    await expect(rows).to_have_count(9)
    await expect(rows.first).to_contain_text("Alt+A")
    await expect(help_).to_contain_text("保存小结")
    await console.keyboard.press("Escape")
    await expect(help_).to_be_hidden()
    await console.get_by_test_id("lang-switch").select_option("en")
    await console.get_by_test_id("btn-keys").click()
    await expect(help_).to_contain_text("Hang up")
    await console.get_by_test_id("keys-close").click()
    await expect(help_).to_be_hidden()


# -- the ring alert ------------------------------------------------------------------------------


async def test_ring_alert_starts_on_offer_and_stops_on_answer(console: Page,
                                                              backend: FakeBackend) -> None:
    await log_in_agent(console)
    html = console.locator("html")
    mute = console.get_by_test_id("btn-ring-mute")  # its data-* mirror window.__ringAlert
    assert await ring(console, "ringing") is False
    # the first gesture after logging in asks for notifications, once
    await console.get_by_test_id("no-call").click()
    await expect(html).to_have_attribute("data-notes-asked", "1")
    await console.get_by_test_id("no-call").click()

    backend.event("A1001", "call_offered", screen_pop())
    await expect(mute).to_have_attribute("data-ringing", "true")
    assert await ring(console, "ringing") is True
    assert await ring(console, "callId") == "c-1001"
    await expect(html).to_have_attribute("data-notes-shown", "1")
    [shown] = await console.evaluate("window.__notes.shown")
    assert "vip" in shown["title"] and "金卡" in shown["body"]

    backend.event("A1001", "call_connected", {"call_id": "c-1001", "recording": True})
    await expect(mute).to_have_attribute("data-ringing", "false")
    assert await ring(console, "ringing") is False
    await expect(html).to_have_attribute("data-notes-closed", "1")

    # a caller who gives up while it rings: the ring stops too
    backend.event("A1001", "call_ended", {"call_id": "c-1001", "wrap_up_s": 0,
                                          "answered": True})
    backend.event("A1001", "call_offered", screen_pop("c-1002"))
    await expect(mute).to_have_attribute("data-call", "c-1002")
    backend.event("A1001", "call_ended", {"call_id": "c-1002", "answered": False})
    await expect(mute).to_have_attribute("data-ringing", "false")
    assert await ring(console, "ringing") is False
    assert await console.evaluate("window.__notes.asked") == 1


async def test_ring_mute_is_remembered(console: Page, backend: FakeBackend) -> None:
    await log_in_agent(console)
    mute = console.get_by_test_id("btn-ring-mute")
    await expect(mute).to_have_attribute("aria-pressed", "false")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    backend.event("A1001", "call_offered", screen_pop())
    await expect(mute).to_have_attribute("data-ringing", "true")
    assert await ring(console, "muted") is True
    assert await ring(console, "audible") is False
    await console.reload()
    await expect(console.get_by_test_id("btn-ring-mute")).to_have_attribute("aria-pressed",
                                                                            "true")
    assert await ring(console, "muted") is True


# -- the transfer directory and warm transfer ----------------------------------------------------


async def test_directory_in_the_dialog_and_blind_transfer_to_a_saved_number(
        console: Page, backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    await console.get_by_test_id("btn-transfer").click()
    await expect(console.get_by_test_id("target-dialog")).to_be_visible()
    ready = console.get_by_test_id("dir-agent-A1002")
    await expect(ready).to_be_enabled()
    await expect(ready).to_contain_text("王芳")
    await expect(ready).to_contain_text("就绪")
    await expect(console.get_by_test_id("dir-agent-A1003")).to_be_disabled()
    await expect(console.get_by_test_id("dir-agent-A1003")).to_contain_text("用餐")
    await expect(console.get_by_test_id("dir-agent-A1004")).to_be_disabled()
    items = console.get_by_test_id("target-directory").locator("[data-kind=agent] .dir-item")
    await expect(items.first).to_have_attribute("data-testid", "dir-agent-A1002")
    await expect(console.get_by_test_id("dir-queue-general")).to_contain_text("排队 3")

    await console.get_by_test_id("dir-queue-general").click()
    await expect(console.get_by_test_id("target-alt")).to_be_hidden()  # no consulting a queue
    await console.get_by_test_id("dir-number-95555").click()
    await expect(console.get_by_test_id("target-value")).to_have_value("95555")
    await expect(console.get_by_test_id("target-ok")).to_have_text("立即转接")
    await expect(console.get_by_test_id("target-alt")).to_have_text("先咨询")
    await console.get_by_test_id("target-ok").click()
    await expect(console.get_by_test_id("target-dialog")).to_be_hidden()
    [transfer] = backend.requests_of(p.Transfer)
    assert (transfer.target.kind, transfer.target.value) == ("number", "95555")
    assert len(backend.requests_of(p.Directory)) == 1


async def test_talk_first_leads_to_complete_or_cancel(console: Page,
                                                      backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    await console.get_by_test_id("btn-transfer").click()
    await console.get_by_test_id("dir-agent-A1002").click()
    await expect(console.get_by_test_id("target-flow")).to_be_visible()
    await console.get_by_test_id("target-alt").click()  # "Talk first"
    await expect(console.get_by_test_id("target-dialog")).to_be_hidden()
    [consult] = backend.requests_of(p.Consult)
    assert (consult.target.kind, consult.target.value) == ("agent", "A1002")
    assert backend.requests_of(p.Transfer) == []

    bar = console.get_by_test_id("consult-bar")
    await expect(bar).to_be_visible()
    await expect(console.get_by_test_id("btn-consult-complete")).to_be_disabled()
    await expect(console.get_by_test_id("consult-hint")).to_have_text("正在呼叫对方，客户保持中…")
    backend.event("A1001", "consult", {"call_id": "c-1001", "state": "talking",
                                       "target": "A1002"})
    await expect(console.get_by_test_id("consult-hint")).to_contain_text("对方已接听")
    await expect(console.get_by_test_id("btn-consult-complete")).to_be_enabled()
    await expect(console.get_by_test_id("btn-consult-cancel")).to_be_enabled()
    await console.get_by_test_id("btn-consult-cancel").click()
    await expect(bar).to_be_hidden()
    assert len(backend.requests_of(p.ConsultCancel)) == 1

    # from the Consult button, the same dialog: "Talk first" is the default, then complete
    await console.get_by_test_id("btn-consult").click()
    await expect(console.get_by_test_id("target-ok")).to_have_text("先咨询")
    await expect(console.locator("#target-title")).to_have_text("咨询转接")
    await console.get_by_test_id("dir-agent-A1002").click()
    await console.get_by_test_id("target-ok").click()
    await expect(bar).to_be_visible()
    backend.event("A1001", "consult", {"call_id": "c-1001", "state": "talking",
                                       "target": "A1002"})
    await console.get_by_test_id("btn-consult-complete").click()
    await expect(bar).to_be_hidden()
    assert len(backend.requests_of(p.Consult)) == 2
    assert len(backend.requests_of(p.ConsultComplete)) == 1


# -- monitoring, shown on both sides -------------------------------------------------------------


async def test_the_agent_sees_who_monitors_the_call(console: Page, backend: FakeBackend) -> None:
    await on_a_call(console, backend)
    bar = console.get_by_test_id("monitor-bar")
    await expect(bar).to_be_hidden()
    monitor = {"supervisor_id": "S9001", "agent_id": "A1001", "call_id": "c-1001",
               "mode": "listen", "state": "on"}
    backend.event("A1001", "monitor", monitor)
    await expect(bar).to_be_visible()
    await expect(console.get_by_test_id("monitor-text")).to_have_text("主管 S9001 正在监听本通话")
    await expect(console.get_by_test_id("monitor-stop")).to_be_hidden()  # not the agent's
    backend.event("A1001", "monitor", {**monitor, "state": "off"})
    await expect(bar).to_be_hidden()


async def test_the_supervisor_sees_whom_they_monitor_and_stops(console: Page,
                                                              backend: FakeBackend) -> None:
    await log_in(console, "S9001", SUPERVISOR_PW)
    await expect(console.get_by_test_id("seat-state")).to_have_text("未就绪")
    monitor = {"supervisor_id": "S9001", "agent_id": "A1001", "call_id": "c-1001",
               "mode": "whisper", "state": "on"}
    backend.event("S9001", "monitor", monitor)
    await expect(console.get_by_test_id("monitor-text")).to_have_text(
        "您正在密语座席 A1001 的通话")
    await console.get_by_test_id("monitor-stop").click()
    stop = await backend.nth_request(p.SpyStop, 1)
    assert stop.agent_id == "A1001"
    backend.event("S9001", "monitor", {**monitor, "state": "off"})
    await expect(console.get_by_test_id("monitor-bar")).to_be_hidden()
