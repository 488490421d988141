"""The console's browser softphone (softphone.js, JsSIP) in headless chromium, without a PBX.

The console server and its fake backend are the ones of ``test_console_page``; the login reply
carries ``phone`` the way the engine sends it. The SIP side is a small fake registrar behind
Playwright's ``route_web_socket`` on the softphone's ``ws_path``: it challenges REGISTER with a
digest and checks the answer (so the password really reached JsSIP), refuses when told to, drops
the socket, rings the page with an INVITE whose SDP has no usable address (``c=0.0.0.0``, no
candidates: nothing leaves the machine) and plays the PBX's part in answer, hold and hang-up.
The real call with audio against Asterisk is in the integration tests.

The browser here has a fake microphone (``--use-fake-device-for-media-stream``) but no fake
permission prompt: a test grants the microphone, or it is denied. No fixed sleeps: every wait is
Playwright's ``expect`` or the fake PBX's wait for a message, each with a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, WebSocketRoute, async_playwright, expect

from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.console_server import ConsoleServer
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, STATIC_DIR, PageProblems
from tests.browser.test_console_page import AGENT_PW, FakeBackend, screen_pop

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

BUNDLE = STATIC_DIR / "vendor" / "jssip.js"
SIP_PASSWORD = "sip-Secret-4711"
REALM = "callcenter"
WS_PATH = "/sip?t=tok3n"
#: a recognisable fake DTLS fingerprint: setRemoteDescription only checks its form
FINGERPRINT = ":".join(["AB"] * 32)


def browser_phone(**changes: Any) -> dict[str, Any]:
    """The login reply's ``phone`` for a browser softphone, as the engine builds it."""
    phone = {"kind": "browser", "extension": "1001", "username": "1001",
             "password": SIP_PASSWORD, "realm": REALM, "ws_path": WS_PATH, "ice_servers": [],
             "auto_answer": False}
    return {**phone, **changes}


# -- SIP over the page's WebSocket ---------------------------------------------------------------


@dataclass
class Sip:
    """One SIP message: the start line, the headers in order, the body."""

    start: str
    headers: list[tuple[str, str]]
    body: str = ""

    @classmethod
    def parse(cls, text: str) -> Sip:
        head, _, body = text.partition("\r\n\r\n")
        start, *lines = head.split("\r\n")
        headers = [(name.strip(), value.strip())
                   for name, _, value in (line.partition(":") for line in lines)]
        return cls(start, headers, body)

    def __str__(self) -> str:
        lines = [self.start, *(f"{n}: {v}" for n, v in self.headers if n != "Content-Length"),
                 f"Content-Length: {len(self.body.encode())}"]
        return "\r\n".join(lines) + "\r\n\r\n" + self.body

    def get(self, name: str) -> str:
        return next((v for n, v in self.headers if n.lower() == name.lower()), "")

    @property
    def method(self) -> str:
        """The request's method, or the CSeq method of a response."""
        if self.start.startswith("SIP/2.0"):
            return self.get("CSeq").split()[-1]
        return self.start.split()[0]

    @property
    def status(self) -> int:
        return int(self.start.split()[1]) if self.start.startswith("SIP/2.0") else 0


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sdp(direction: str = "sendrecv", setup: str = "actpass", version: int = 1) -> str:
    """An audio offer or answer as Asterisk's WebRTC endpoint writes it, with no reachable
    address: the browser negotiates, but has nowhere to send media."""
    return "\r\n".join([
        "v=0", f"o=- 4711 {version} IN IP4 0.0.0.0", "s=Asterisk", "c=IN IP4 0.0.0.0", "t=0 0",
        "a=group:BUNDLE 0", "m=audio 9 UDP/TLS/RTP/SAVPF 0 101", "a=mid:0",
        "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
        f"a={direction}", "a=rtcp-mux", "a=ice-ufrag:fakeUfrag",
        "a=ice-pwd:fakePasswordForIce012345", f"a=fingerprint:sha-256 {FINGERPRINT}",
        f"a=setup:{setup}", "a=ptime:20", "",
    ])


def digest_ok(authorization: str, password: str) -> bool:
    """Whether a REGISTER's Authorization answers our challenge with this password."""
    fields = {k: v1 or v2 for k, v1, v2 in
              re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', authorization)}
    ha1 = md5(f"{fields.get('username')}:{REALM}:{password}")
    ha2 = md5(f"REGISTER:{fields.get('uri')}")
    want = md5(f"{ha1}:{fields.get('nonce')}:{fields.get('nc')}:{fields.get('cnonce')}:"
               f"{fields.get('qop')}:{ha2}")
    return fields.get("response") == want


@dataclass
class FakePbx:
    """A registrar and the PBX's half of calls, on every WebSocket the page opens to /sip."""

    password: str = SIP_PASSWORD
    #: "ok" registers (after a digest challenge); "forbidden" answers 403
    mode: str = "ok"
    sockets: list[WebSocketRoute] = field(default_factory=list)
    received: list[Sip] = field(default_factory=list)
    registrations: int = 0
    #: the call the fake rang: its INVITE, and the browser's 200 OK once answered
    invite: Sip | None = None
    answer: Sip | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def handler(self, ws: WebSocketRoute) -> None:
        self.sockets.append(ws)
        ws.on_message(lambda raw: self.on_message(ws, raw))

    def on_message(self, ws: WebSocketRoute, raw: str | bytes) -> None:
        msg = Sip.parse(raw if isinstance(raw, str) else raw.decode())
        self.received.append(msg)
        if msg.status:
            self.on_response(ws, msg)
        elif msg.method == "REGISTER":
            self.on_register(ws, msg)
        elif msg.method == "INVITE":  # a re-INVITE: hold or resume
            self.reply(ws, msg, 200, "OK", body=self.answer_to(msg.body))
        elif msg.method != "ACK":
            self.reply(ws, msg, 200, "OK")
        self._changed.set()

    def on_register(self, ws: WebSocketRoute, msg: Sip) -> None:
        if self.mode == "forbidden":
            self.reply(ws, msg, 403, "Forbidden")
            return
        authorization = msg.get("Authorization")
        if not authorization or not digest_ok(authorization, self.password):
            self.reply(ws, msg, 401, "Unauthorized", [(
                "WWW-Authenticate",
                f'Digest realm="{REALM}", nonce="{self._nonce}", algorithm=MD5, qop="auth"')])
            return
        self.registrations += 1
        self.reply(ws, msg, 200, "OK", [("Contact", f"{msg.get('Contact')};expires=600"),
                                         ("Expires", "600")])

    def on_response(self, ws: WebSocketRoute, msg: Sip) -> None:
        if msg.method != "INVITE" or msg.status < 200 or self.invite is None:
            return
        to = msg.get("To")
        if msg.status < 300:
            self.answer = msg
            uri = re.search(r"<([^>]+)>", msg.get("Contact"))
            assert uri, msg
            target, branch = uri.group(1), f"z9hG4bK{secrets.token_hex(6)}"
        else:  # a failure's ACK belongs to the INVITE's transaction
            target, branch = self.invite.start.split()[1], self.branch(self.invite)
        ws.send(str(Sip(f"ACK {target} SIP/2.0", [
            ("Via", f"SIP/2.0/WSS pbx.invalid;branch={branch}"), ("Max-Forwards", "70"),
            ("From", self.invite.get("From")), ("To", to),
            ("Call-ID", self.invite.get("Call-ID")), ("CSeq", "1 ACK")])))

    @staticmethod
    def branch(msg: Sip) -> str:
        return msg.get("Via").split("branch=")[1].split(";")[0]

    @staticmethod
    def answer_to(offer: str) -> str:
        """The answer to the browser's re-INVITE: on hold when it offers to send only."""
        direction = "recvonly" if "a=sendonly" in offer else (
            "inactive" if "a=inactive" in offer else "sendrecv")
        return sdp(direction, setup="passive", version=2)

    @staticmethod
    def reply(ws: WebSocketRoute, msg: Sip, status: int, reason: str,
              extra: list[tuple[str, str]] | None = None, body: str = "") -> None:
        to = msg.get("To")
        if "tag=" not in to:
            to = f"{to};tag=pbx{secrets.token_hex(4)}"
        headers = [(n, v) for n, v in msg.headers if n in ("Via", "From", "Call-ID", "CSeq")]
        headers.insert(2, ("To", to))
        if body:
            headers += [("Contact", "<sip:pbx@pbx.invalid;transport=ws>"),
                        ("Content-Type", "application/sdp")]
        ws.send(str(Sip(f"SIP/2.0 {status} {reason}", headers + (extra or []), body)))

    def ring(self, number: str = "13900008000", name: str = "") -> None:
        """Send the page an INVITE, as Asterisk does when the queue offers it a call."""
        display = f'"{name}" ' if name else ""
        self.invite = Sip("INVITE sip:1001@callcenter;transport=ws SIP/2.0", [
            ("Via", f"SIP/2.0/WSS pbx.invalid;branch=z9hG4bK{secrets.token_hex(6)}"),
            ("Max-Forwards", "70"),
            ("From", f"{display}<sip:{number}@{REALM}>;tag=pbx{secrets.token_hex(4)}"),
            ("To", f"<sip:1001@{REALM}>"), ("Call-ID", secrets.token_hex(10)),
            ("CSeq", "1 INVITE"), ("Contact", "<sip:pbx@pbx.invalid;transport=ws>"),
            ("Content-Type", "application/sdp")], sdp())
        self.answer = None
        self.sockets[-1].send(str(self.invite))

    def hang_up(self) -> None:
        """The caller hangs up: the PBX's BYE in the answered call's dialog."""
        assert self.invite is not None and self.answer is not None
        uri = re.search(r"<([^>]+)>", self.answer.get("Contact"))
        assert uri
        self.sockets[-1].send(str(Sip(f"BYE {uri.group(1)} SIP/2.0", [
            ("Via", f"SIP/2.0/WSS pbx.invalid;branch=z9hG4bK{secrets.token_hex(6)}"),
            ("Max-Forwards", "70"), ("From", self.invite.get("From")),
            ("To", self.answer.get("To")), ("Call-ID", self.invite.get("Call-ID")),
            ("CSeq", "2 BYE")])))

    def requests(self, method: str) -> list[Sip]:
        return [m for m in self.received if not m.status and m.method == method]

    def responses(self, method: str) -> list[Sip]:
        return [m for m in self.received if m.status and m.method == method]

    async def wait_for(self, what: Callable[[], Any]) -> Any:
        """``what()`` once it is true (it is re-checked at every message), within 10 s."""
        async with asyncio.timeout(10):
            while not (found := what()):
                self._changed.clear()
                await self._changed.wait()
        return found


# -- fixtures ------------------------------------------------------------------------------------


class PhoneBackend(FakeBackend):
    """The console test's fake backend, with the login reply's ``phone``."""

    def __init__(self) -> None:
        super().__init__()
        self.phone: dict[str, Any] | None = None

    async def snapshot(self, agent: AgentIdentity) -> dict[str, Any]:
        data = await super().snapshot(agent)
        data["phone"] = dict(self.phone) if self.phone else None
        return data


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Overrides conftest's: the same chromium, with a fake microphone behind the permission
    prompt (headless chromium denies it unless the context grants it)."""
    if not BUNDLE.is_file():
        pytest.fail(f"{BUNDLE} is missing: run ./dev (setup_console builds the JsSIP bundle)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"])
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def backend() -> PhoneBackend:
    return PhoneBackend()


@pytest.fixture
def pbx() -> FakePbx:
    return FakePbx()


@pytest_asyncio.fixture(loop_scope="session")
async def console(server: ConsoleServer, page: Page, pbx: FakePbx) -> Page:
    """The console with the fake PBX behind /sip; the microphone is not granted."""
    await page.route_web_socket(re.compile(r"/sip\?"), pbx.handler)
    await page.goto(f"http://127.0.0.1:{server.port}/")
    return page


async def grant_microphone(page: Page) -> None:
    await page.context.grant_permissions(["microphone"])


async def log_in(page: Page, phone: str = "") -> None:
    await page.get_by_test_id("login-agent").fill("A1001")
    await page.get_by_test_id("login-password").fill(AGENT_PW)
    await page.get_by_test_id("login-phone").fill(phone)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("seat-state")).to_have_text("未就绪")


async def phone_state(page: Page) -> str:
    return str(await page.evaluate("window.__softphone.state"))


async def registered(page: Page, pbx: FakePbx, backend: PhoneBackend) -> None:
    backend.phone = browser_phone()
    await grant_microphone(page)
    await log_in(page)
    await expect(page.get_by_test_id("phone-status")).to_have_text("已注册，可接听来电")
    assert pbx.registrations == 1


async def assert_no_password(page: Page) -> None:
    """The SIP password is in no markup, no storage and nothing the test handle shows."""
    seen = await page.evaluate("""() => JSON.stringify([
        document.documentElement.outerHTML, {...localStorage}, {...sessionStorage},
        window.__softphone.error, window.__softphone.call, window.__softphone.state])""")
    assert SIP_PASSWORD not in seen


# -- tests ---------------------------------------------------------------------------------------


async def test_no_phone_in_the_login_reply_hides_the_panel(console: Page) -> None:
    await log_in(console)
    await expect(console.get_by_test_id("phone-panel")).to_be_hidden()
    assert await phone_state(console) == "off"


async def test_a_desk_phone_is_named_and_the_pbx_view_shown(console: Page,
                                                           backend: PhoneBackend) -> None:
    await log_in(console, phone="1002")
    await expect(console.get_by_test_id("phone-status")).to_have_text("桌面话机 1002")
    await expect(console.get_by_test_id("phone-accept")).to_be_hidden()
    await expect(console.get_by_test_id("phone-level")).to_be_hidden()
    await expect(console.get_by_test_id("phone-pbx")).to_be_hidden()
    backend.event("A1001", "phone", {"extension": "1002", "registered": False,
                                     "reason": "contact expired"})
    badge = console.get_by_test_id("phone-pbx")
    await expect(badge).to_have_text("交换机：未注册")
    await expect(badge).to_have_attribute("title", "contact expired")
    backend.event("A1001", "phone", {"extension": "1002", "registered": False,
                                     "reason": "unreachable"})
    await expect(badge).to_have_text("交换机：话机无响应")  # registered, missing probes
    backend.event("A1001", "phone", {"extension": "1002", "registered": True, "reason": ""})
    await expect(badge).to_have_text("交换机：已注册")
    # another extension's news is not this agent's
    backend.event("A1001", "phone", {"extension": "1099", "registered": False, "reason": "x"})
    await console.get_by_test_id("lang-switch").select_option("en")
    await expect(badge).to_have_text("PBX: registered")
    await expect(console.get_by_test_id("phone-status")).to_have_text("Desk phone 1002")


async def test_the_browser_phone_registers_with_the_password(
        console: Page, pbx: FakePbx, backend: PhoneBackend) -> None:
    await registered(console, pbx, backend)
    [first, second] = pbx.requests("REGISTER")
    assert first.start == f"REGISTER sip:{REALM} SIP/2.0"
    assert "<sip:1001@callcenter>" in first.get("From")
    assert digest_ok(second.get("Authorization"), SIP_PASSWORD)
    assert await phone_state(console) == "registered"
    await expect(console.get_by_test_id("phone-ext")).to_have_text("1001")
    await expect(console.get_by_test_id("phone-error")).to_be_hidden()
    await expect(console.get_by_test_id("phone-mic")).to_contain_text("Fake")
    # the PBX's own view arrives as an event
    backend.event("A1001", "phone", {"extension": "1001", "registered": True, "reason": ""})
    await expect(console.get_by_test_id("phone-pbx")).to_have_text("交换机：已注册")
    await assert_no_password(console)

    # logging out unregisters (Expires: 0) and hides the panel
    await console.get_by_test_id("btn-logout").click()
    await expect(console.get_by_test_id("login-notice")).to_have_text("您已退出登录")
    await pbx.wait_for(lambda: [r for r in pbx.requests("REGISTER")
                                if r.get("Expires") == "0" or "expires=0" in r.get("Contact")])
    await expect(console.get_by_test_id("phone-panel")).to_be_hidden()
    assert await phone_state(console) == "off"


async def test_a_wrong_password_or_a_refusal_says_why(console: Page, pbx: FakePbx,
                                                      backend: PhoneBackend) -> None:
    pbx.password = "not-what-the-page-has"
    backend.phone = browser_phone()
    await grant_microphone(console)
    await log_in(console)
    status, error = console.get_by_test_id("phone-status"), console.get_by_test_id("phone-error")
    await expect(status).to_have_text("未注册")
    await expect(error).to_have_text("注册失败：认证失败 401 Unauthorized")
    assert await phone_state(console) == "failed"

    await console.get_by_test_id("btn-logout").click()
    await expect(console.get_by_test_id("phone-panel")).to_be_hidden()
    pbx.mode = "forbidden"
    await log_in(console)
    await expect(error).to_have_text("注册失败：被拒绝 403 Forbidden")
    await console.get_by_test_id("lang-switch").select_option("en")
    await expect(status).to_have_text("Not registered")
    await expect(error).to_have_text("Registration failed: Rejected 403 Forbidden")
    await assert_no_password(console)


async def test_no_sip_websocket_shows_the_network_error(
        server: ConsoleServer, page: Page, page_problems: PageProblems,
        backend: PhoneBackend) -> None:
    # Nothing serves /sip here: the handshake fails (the console server answers 404), as when
    # the engine's SIP proxy or the PBX is down. JsSIP keeps retrying; the page says so.
    page_problems.allow(r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/sip\?t=tok3n' failed")
    backend.phone = browser_phone()
    await grant_microphone(page)
    await page.goto(f"http://127.0.0.1:{server.port}/")
    await log_in(page)
    await expect(page.get_by_test_id("phone-status")).to_have_text(
        "无法连接话机服务器，正在重试…")
    await expect(page.get_by_test_id("phone-error")).to_have_text(
        re.compile(r"^无法连接话机服务器：WebSocket 1006"))
    assert await phone_state(page) == "unreachable"


async def test_network_lost_then_registered_again(console: Page, pbx: FakePbx,
                                                  backend: PhoneBackend) -> None:
    await registered(console, pbx, backend)
    await pbx.sockets[-1].close(code=1006, reason="network down")
    status = console.get_by_test_id("phone-status")
    await expect(status).to_have_text("网络中断，正在重新连接…")
    await expect(console.get_by_test_id("phone-error")).to_contain_text(
        "与话机服务器的网络连接中断")
    # JsSIP reconnects on its own (after 2 s or more) and registers again
    await expect(status).to_have_text("网络已恢复，已重新注册", timeout=15_000)
    await expect(console.get_by_test_id("phone-error")).to_be_hidden()
    assert pbx.registrations == 2
    assert len(pbx.sockets) == 2


async def test_microphone_denied_is_shown(console: Page, backend: PhoneBackend) -> None:
    backend.phone = browser_phone()
    await log_in(console)  # the microphone is not granted: chromium denies it
    await expect(console.get_by_test_id("phone-error")).to_have_text(
        "麦克风权限被拒绝：请在浏览器中允许本站使用麦克风，然后重新登录")
    # registering does not wait for the microphone
    await expect(console.get_by_test_id("phone-status")).to_have_text("已注册，可接听来电")
    await console.get_by_test_id("lang-switch").select_option("en")
    await expect(console.get_by_test_id("phone-error")).to_contain_text(
        "Microphone access denied")


async def test_a_ringing_call_shows_the_customer_and_reject_declines_it(
        console: Page, pbx: FakePbx, backend: PhoneBackend) -> None:
    await registered(console, pbx, backend)
    backend.event("A1001", "call_offered", screen_pop())
    await expect(console.get_by_test_id("customer-name")).to_have_text("张伟")
    pbx.ring("13900008000", name="Caller")
    incoming = console.get_by_test_id("phone-incoming")
    await expect(incoming).to_be_visible()
    await expect(console.get_by_test_id("phone-status")).to_have_text("来电振铃")
    await expect(console.get_by_test_id("phone-caller-name")).to_have_text("张伟")
    await expect(console.get_by_test_id("phone-caller-tier")).to_have_text("金卡")
    # the screen pop's masked number, not the INVITE's full one
    await expect(console.get_by_test_id("phone-caller-number")).to_have_text("*******8000")
    await expect(console.get_by_test_id("answer-hint")).to_have_text("请在左侧话机面板接听")
    await pbx.wait_for(lambda: [r for r in pbx.responses("INVITE") if r.status == 180])

    await console.get_by_test_id("phone-reject").click()
    [busy] = await pbx.wait_for(lambda: [r for r in pbx.responses("INVITE") if r.status >= 300])
    assert busy.start == "SIP/2.0 486 Busy Here"
    await expect(incoming).to_be_hidden()
    await expect(console.get_by_test_id("phone-status")).to_have_text("已注册，可接听来电")
    await expect(console.get_by_test_id("phone-error")).to_be_hidden()


async def test_answer_mute_hold_keypad_and_hang_up(console: Page, pbx: FakePbx,
                                                   backend: PhoneBackend) -> None:
    await registered(console, pbx, backend)
    pbx.ring("13900008000")
    await console.get_by_test_id("phone-accept").click()
    answer = await pbx.wait_for(lambda: pbx.answer)
    assert answer.status == 200
    assert "m=audio" in answer.body and "telephone-event/8000" in answer.body
    # getUserMedia ran before the answer: the SDP offers real host candidates, not mDNS names
    assert "a=candidate" in answer.body and ".local " not in answer.body
    status = console.get_by_test_id("phone-status")
    await expect(status).to_have_text("通话中")
    await expect(console.get_by_test_id("phone-incoming")).to_be_hidden()
    await expect(console.get_by_test_id("phone-timer")).to_have_text(re.compile(r"^0:0\d$"))
    stats = await console.evaluate("window.__softphone.stats()")
    assert stats is not None and set(stats) == {"inbound", "outbound"}

    mute = console.get_by_test_id("phone-mute")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await expect(mute).to_have_text("取消静音")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "false")

    hold = console.get_by_test_id("phone-hold")
    await hold.click()
    await expect(status).to_have_text("通话已保持")
    await expect(hold).to_have_text("恢复")
    # JsSIP says "on hold" at once; the re-INVITE offering to send only follows
    await pbx.wait_for(lambda: [r for r in pbx.requests("INVITE") if "a=sendonly" in r.body])
    await pbx.wait_for(lambda: len(pbx.requests("ACK")) == 1)
    await hold.click()
    await expect(status).to_have_text("通话中")
    await pbx.wait_for(lambda: "a=sendrecv" in pbx.requests("INVITE")[-1].body)

    # The keypad sends RFC 4733 events through the RTP sender. Here no media path exists (the
    # fake SDP has no address), so chromium's RTCDTMFSender cannot send: the page says so
    # rather than showing digits that never left (the integration test hears them for real).
    keypad = console.get_by_test_id("phone-keypad")
    await expect(keypad.locator("button")).to_have_count(12)
    await keypad.get_by_role("button", name="5", exact=True).click()
    await expect(console.get_by_test_id("phone-error")).to_contain_text("按键发送失败：")
    await expect(console.get_by_test_id("phone-digits")).to_have_text("")

    await console.get_by_test_id("phone-hangup").click()
    await pbx.wait_for(lambda: pbx.requests("BYE"))
    await expect(status).to_have_text("已注册，可接听来电")
    await expect(console.get_by_test_id("phone-error")).to_be_hidden()
    assert await console.evaluate("window.__softphone.stats()") is None
    await assert_no_password(console)


async def test_auto_answer_and_the_caller_hanging_up(console: Page, pbx: FakePbx,
                                                     backend: PhoneBackend) -> None:
    backend.phone = browser_phone(auto_answer=True)
    await grant_microphone(console)
    await log_in(console)
    await expect(console.get_by_test_id("phone-status")).to_have_text("已注册，可接听来电")
    pbx.ring("13900008000")
    await pbx.wait_for(lambda: pbx.answer)
    await expect(console.get_by_test_id("phone-status")).to_have_text("通话中")
    pbx.hang_up()
    await pbx.wait_for(lambda: [r for r in pbx.responses("BYE") if r.status == 200])
    await expect(console.get_by_test_id("phone-status")).to_have_text("已注册，可接听来电")
    await expect(console.get_by_test_id("phone-error")).to_be_hidden()
