"""The key tap's edge (``telephony/key_tap.py``) without Asterisk: a session reads the ledger
only while the link it started with is up, and waits for Asterisk's reports within bounds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from callcenter.config import AmiSettings
from callcenter.telephony.ami_events import AgiExec, KeyRead
from callcenter.telephony.key_tap import KeyTap

UID = "1700000000.7"


@dataclass
class FakeChannel:
    uniqueid: str = UID
    commands_sent: int = 0


class FakeLink:
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()
        self.disconnected = asyncio.Event()
        self.connections = 1


def tap_with_link() -> KeyTap:
    tap = KeyTap(AmiSettings(), SecretStr("x"), Path("/nonexistent/ca.pem"), settle_s=0.01)
    tap.ami = FakeLink()  # type: ignore[assignment]
    return tap


def feed(tap: KeyTap, *events: Any) -> None:
    for e in events:
        tap._event(e)


async def test_a_session_gets_the_keys_of_its_gaps_in_order() -> None:
    tap = tap_with_link()
    channel = FakeChannel()
    typed = tap.session(channel)  # type: ignore[arg-type]
    channel.commands_sent = 1
    feed(tap, AgiExec(UID, False, 100.0), AgiExec(UID, True, 100.5), KeyRead(UID, "6", 100.6, 120))
    channel.commands_sent = 2
    feed(tap, AgiExec(UID, False, 101.5))
    assert await typed.before_last("0519") == "6"
    typed.close()
    assert not tap.ledger.is_open(UID)


async def test_a_session_begun_without_the_link_or_across_a_new_login_gets_nothing() -> None:
    tap = tap_with_link()
    link: object = tap.ami  # a FakeLink: as an AmiClient, mypy would skip the rest
    assert isinstance(link, FakeLink)
    link.connected.clear()
    blind = tap.session(FakeChannel())  # type: ignore[arg-type]
    link.connected.set()
    feed(tap, KeyRead(UID, "1", 1.0, 120))
    assert blind.ahead() == "" and await blind.before_last("") == ""
    seeing = tap.session(FakeChannel())  # type: ignore[arg-type]
    link.connections += 1          # the link dropped and logged in again: events were missed
    assert seeing.ahead() == ""


async def test_waits_for_late_reports_stop_after_three_in_a_row_until_they_catch_up() -> None:
    tap = tap_with_link()
    channel = FakeChannel()
    typed = tap.session(channel)  # type: ignore[arg-type]
    for n in range(1, 4):
        channel.commands_sent = n
        await typed.before_last("")        # nothing reported: each wait runs out
    assert tap.late == 3
    tap.settle_s = 3600.0                  # a wait now would outlast the test's timeout
    channel.commands_sent = 4
    async with asyncio.timeout(5):
        await typed.before_last("")
    assert tap.late == 4
    feed(tap, *(AgiExec(UID, False, float(n)) for n in range(5)))   # reports caught up
    channel.commands_sent = 5
    async with asyncio.timeout(5):
        assert await typed.before_last("") == ""
    assert tap.late == 4


async def test_a_tap_that_works_is_waited_for_when_it_lags_and_the_gap_keys_are_kept() -> None:
    """Under overload Asterisk's AMI events come behind the FastAGI replies: once the tap has
    reported commands on this login, a late report is waited for past ``settle_s`` (up to
    ``lag_s``), so the key typed in the gap is not lost; a link that drops ends the wait."""
    tap = tap_with_link()
    tap.settle_s, tap.lag_s = 0.0, 3600.0
    channel = FakeChannel()
    typed = tap.session(channel)  # type: ignore[arg-type]
    channel.commands_sent = 1
    feed(tap, AgiExec(UID, False, 100.0), AgiExec(UID, True, 100.5), KeyRead(UID, "6", 100.6, 120))
    channel.commands_sent = 2              # the second command answered; its start not reported
    answer = asyncio.ensure_future(typed.before_last("0519"))
    await asyncio.sleep(0.05)
    assert not answer.done()               # waiting for the lagging report
    feed(tap, AgiExec(UID, False, 101.5))
    async with asyncio.timeout(5):
        assert await answer == "6"
    assert tap.late == 0
    channel.commands_sent = 3              # a report that never comes, and the link drops
    answer = asyncio.ensure_future(typed.before_last(""))
    await asyncio.sleep(0.05)
    assert not answer.done()
    link: object = tap.ami  # a FakeLink: as an AmiClient, mypy would skip the rest
    assert isinstance(link, FakeLink)
    link.connected.clear()
    link.disconnected.set()
    async with asyncio.timeout(5):
        assert await answer == ""
    assert tap.late == 1


async def test_three_lagging_waits_that_ran_out_stop_the_waiting_until_a_report_is_on_time(
        ) -> None:
    tap = tap_with_link()
    channel = FakeChannel()
    typed = tap.session(channel)  # type: ignore[arg-type]
    channel.commands_sent = 1
    feed(tap, AgiExec(UID, False, 100.0))  # the tap works on this login
    tap.lag_s = 0.01
    for n in range(2, 5):
        channel.commands_sent = n
        await typed.before_last("")        # each wait for a lagging report runs out
    assert tap.late == 3
    tap.lag_s = 3600.0                     # a wait now would outlast the test's timeout
    channel.commands_sent = 5
    async with asyncio.timeout(5):
        await typed.before_last("")
    assert tap.late == 4
