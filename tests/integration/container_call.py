"""Run inside the container stack's network namespace by test_containers.py: wait for the
engine's /metrics, place a real SIP call (SIPp, RFC 4733 keys) asking the IVR for a quote, and
print what the engine counted as JSON (the test reads it)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

from callcenter.telephony.sipcall import place_sip_call

METRICS = "http://127.0.0.1:8090/metrics"


def scrape() -> str:
    with urllib.request.urlopen(METRICS, timeout=5) as answer:
        return str(answer.read().decode())


def wait_up(within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            text = scrape()
            if re.search(r'^callcenter_ami_up\{[^}]*\} 1', text, re.M):
                return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the stack's engine did not come up with AMI connected")
        time.sleep(1)


async def main() -> None:
    wait_up(240)
    result = await place_sip_call("95500", "1w600519", caller_id="13800000001", hold_s=15)
    visits = [line for line in scrape().splitlines()
              if line.startswith("callcenter_ivr_node_visits_total{")]
    print(json.dumps({"ok": result.ok, "detail": result.detail[-400:], "visits": visits}))


asyncio.run(main())
