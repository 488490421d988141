"""For calls that a person answers in the console's browser phone: the agents the ``ns_engine``
fixture (conftest.py: a network namespace, since Chromium's ICE ignores loopback, with a second
sandbox Asterisk and the engine inside it) makes, and page helpers. Used by
test_browser_phone.py and test_shift.py."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Page, Request
from playwright.async_api import TimeoutError as PlaywrightTimeout

from callcenter.telephony.pbx import Pbx
from tests.integration.acd_helpers import AGENT_PASSWORD

AGENT, EXTENSION = "W1", "7201"
SUPERVISOR, SUPERVISOR_EXTENSION = "S1", "7209"
MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
#: the browser agents made: (id, role, extension)
BROWSER_AGENTS = ((AGENT, "agent", EXTENSION), (SUPERVISOR, "supervisor", SUPERVISOR_EXTENSION))


async def open_console(page: Page, url: str, agent_id: str = AGENT) -> None:
    """Open the console at ``url`` and log in. If the desk does not show, fail with what the page
    said (its errors, the login form's message) and the requests still pending or failed, rather
    than a bare time-out."""
    said: list[str] = []
    pending: dict[Request, str] = {}
    failed: list[str] = []
    page.on("console", lambda m: said.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: said.append(f"page error: {e}"))
    page.on("request", lambda r: pending.__setitem__(r, r.url))

    def _finished(request: Request) -> None:
        pending.pop(request, None)
    page.on("requestfinished", _finished)

    def _failed(request: Request) -> None:
        pending.pop(request, None)
        failed.append(f"{request.url}: {request.failure}")
    page.on("requestfailed", _failed)
    await page.goto(url)
    try:
        await page.get_by_test_id("login-agent").fill(agent_id)
        await page.get_by_test_id("login-password").fill(AGENT_PASSWORD)
        await page.get_by_test_id("login-submit").click(timeout=30_000)
        await page.get_by_test_id("btn-ready").wait_for(timeout=30_000)
    except PlaywrightTimeout:
        form = await page.locator("#login-error").all_inner_texts()
        raise AssertionError(
            f"{agent_id} not logged in after 30 s; login form says {form}; the page said {said};"
            f" requests pending {sorted(pending.values())}, failed {failed}") from None


async def softphone_stats(page: Page) -> dict[str, Any] | None:
    stats: dict[str, Any] | None = await page.evaluate("window.__softphone.stats()")
    return stats


def audio_both_ways(stats: dict[str, Any] | None) -> bool:
    """The browser received the caller's audio with energy, and sent its microphone's."""
    inbound: dict[str, float] = (stats or {}).get("inbound") or {}
    outbound: dict[str, float] = (stats or {}).get("outbound") or {}
    return (inbound.get("totalAudioEnergy", 0) > 0.01 and inbound.get("packetsReceived", 0) > 100
            and outbound.get("packetsSent", 0) > 100 and outbound.get("totalAudioEnergy", 0) > 0)


async def rtp_counts(pbx: Pbx, channel_prefix: str) -> tuple[int, int, str]:
    """Asterisk's own RTP counters for a channel: (packets received, packets sent, the table).
    A row: ``BridgeId ChannelId UpTime Codec  Count Lost Pct Jitter  Count Lost Pct Jitter RTT``
    (receive, then transmit)."""
    text = await asyncio.to_thread(pbx.cli, "pjsip show channelstats")
    for line in text.splitlines():
        tokens = line.split()
        at = next((i for i, t in enumerate(tokens) if t.startswith(channel_prefix)), None)
        if at is not None and len(tokens) > at + 7:
            return int(tokens[at + 3]), int(tokens[at + 7]), text
    return 0, 0, text
