"""The phones link's log of SIP security events (phones/link.py), fed AMI events by hand: one
line per source and kind a minute, a budget of lines a minute in all (forged UDP sources are
free), a summary of what was left out, every event counted, the counts bounded."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import SecretStr

from callcenter.config import load_settings
from callcenter.phones import link as link_module
from callcenter.phones.identity import PhoneIdentity
from callcenter.phones.link import LOG_BUDGET, LOG_WINDOW_S, PhoneLink
from callcenter.phones.registry import PhoneChange
from callcenter.telephony.ami import Response
from callcenter.telephony.ami_events import OtherEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("callcenter.phones.link.time.monotonic", clock)
    return clock


@pytest.fixture
def link() -> PhoneLink:
    settings = load_settings(ami={"secret": SecretStr("unit-test")})

    async def no_phones() -> dict[str, PhoneIdentity]:
        return {}

    return PhoneLink(settings, no_phones)


def event(kind: str, source: str, account: str = "7301") -> OtherEvent:
    return OtherEvent(kind, {"RemoteAddress": f"IPV4/UDP/{source}/5060", "Service": "PJSIP",
                             "AccountID": account})


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "callcenter.phones.link"]


def test_one_line_per_source_and_kind_a_minute_and_every_event_counted(
        link: PhoneLink, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callcenter.phones.link")
    for _ in range(500):
        link._event(event("ChallengeResponseFailed", "198.51.100.7"))
        link._event(event("InvalidAccountID", "198.51.100.7", "1000"))
        link._event(event("ChallengeSent", "198.51.100.7"))
    assert link.security_counts == {("198.51.100.7", "ChallengeResponseFailed"): 500,
                                    ("198.51.100.7", "InvalidAccountID"): 500,
                                    ("198.51.100.7", "ChallengeSent"): 500}
    logged = lines(caplog)
    assert len(logged) == 2  # challenges are part of every login: never logged
    assert "ChallengeResponseFailed from 198.51.100.7" in logged[0]
    assert "'7301'" in logged[0] and "1 so far" in logged[0]
    clock.now += LOG_WINDOW_S
    link._event(event("ChallengeResponseFailed", "198.51.100.7"))
    assert len(lines(caplog)) == 3 and "501 so far" in lines(caplog)[-1]


def test_a_spray_of_sources_gets_a_budget_of_lines_and_then_one_summary(
        link: PhoneLink, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callcenter.phones.link")
    sources = [f"10.{n // 250}.{n % 250}.1" for n in range(1000)]
    for source in sources:
        link._event(event("InvalidAccountID", source))
    assert len(lines(caplog)) == LOG_BUDGET
    assert all(link.security_counts[(s, "InvalidAccountID")] == 1 for s in sources)
    # the next minute: one line for what was left out, then the budget again
    clock.now += LOG_WINDOW_S
    link._event(event("InvalidAccountID", "203.0.113.5"))
    logged = lines(caplog)
    assert f"{len(sources) - LOG_BUDGET} more events" in logged[LOG_BUDGET]
    assert "from 203.0.113.5" in logged[-1]
    assert len(logged) == LOG_BUDGET + 2


def test_the_counts_keep_a_bounded_number_of_sources(
        link: PhoneLink, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_module, "MAX_SOURCES", 50)
    for n in range(200):
        link._event(event("InvalidAccountID", f"10.0.{n // 250}.{n % 250}"))
    assert len(link.security_counts) == 50
    assert ("10.0.0.199", "InvalidAccountID") in link.security_counts  # the newest are kept
    assert ("10.0.0.0", "InvalidAccountID") not in link.security_counts


def test_a_control_character_in_the_account_does_not_reach_the_log_raw(
        link: PhoneLink, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callcenter.phones.link")
    link._event(event("InvalidAccountID", "198.51.100.9", "evil\r\nSIP security: forged"))
    (line,) = lines(caplog)
    assert "\n" not in line and "\r" not in line


async def test_a_phone_that_misses_a_probe_is_asked_again_at_once(link: PhoneLink) -> None:
    """Not the security log, the same link: a contact turning unreachable is qualified again
    right away (``PJSIPQualify``), once per change, and the change reaches the ACD as
    ``unreachable`` (a removed contact is not asked again: it is gone)."""
    sent: list[tuple[str, dict[str, str | list[str]]]] = []
    changes: list[PhoneChange] = []

    async def action(action: str, **headers: str | list[str]) -> Response:
        sent.append((action, headers))
        return {}

    link.ami.action = action  # type: ignore[method-assign]
    link._on_change = changes.append
    link._in_call = lambda: ["7301"]

    def status(value: str, aor: str = "7301") -> OtherEvent:
        return OtherEvent("ContactStatus", {"AOR": aor, "URI": f"sip:{aor}@127.0.0.3:5072",
                                            "ContactStatus": value})

    link._event(status("Created", "7302"))
    link._event(status("Unreachable", "7302"))  # no call on it: not asked (it goes Not Ready)
    changes.clear()
    link._event(status("Created"))
    link._event(status("Unreachable"))
    link._event(status("Unreachable"))  # no change: not asked twice
    await asyncio.sleep(0)
    assert sent == [("PJSIPQualify", {"Endpoint": "7301"})]
    assert [c.unreachable for c in changes] == [False, True]
    link._event(status("Reachable"))
    link._event(status("Removed"))
    await asyncio.sleep(0)
    assert len(sent) == 1 and [c.reason for c in changes][2:] == ["registered", "unregistered"]
    assert not changes[-1].unreachable


async def test_a_call_on_a_phone_already_silent_is_told_once_the_contacts_are_read(
        link: PhoneLink) -> None:
    """A call restored (after a restart) on a phone that was already unreachable or gone made
    no change of its own: once the contacts are read, the phones with a call that cannot ring
    are told (unreachable ones asked again), each once; before that, nothing is told."""
    sent: list[tuple[str, dict[str, str | list[str]]]] = []
    changes: list[PhoneChange] = []
    rows: list[Response] = [
        {"Event": "ContactList", "ObjectName": "7301;@a", "Uri": "sip:7301@x",
         "Status": "Unreachable"},
        {"Event": "ContactList", "ObjectName": "7302;@b", "Uri": "sip:7302@x",
         "Status": "Reachable"},
        {"Event": "ContactList", "ObjectName": "7304;@d", "Uri": "sip:7304@x",
         "Status": "Unreachable"}]

    async def action(action: str, **headers: str | list[str]) -> Response:
        sent.append((action, headers))
        return {}

    async def action_list(action: str, **headers: str | list[str]) -> list[Response]:
        assert action == "PJSIPShowContacts"
        return rows

    link.ami.action = action  # type: ignore[method-assign]
    link.ami.action_list = action_list  # type: ignore[method-assign]
    link._on_change = changes.append
    link._in_call = lambda: ["7301", "7302", "7303"]
    link.silent_in_call(["7301", "7303"])  # the ACD restored its calls first: not read yet
    assert changes == []
    await link.read_contacts()
    await asyncio.sleep(0)
    # 7302 registered and 7301, 7304 silent by the snapshot; 7303 (a call, no registration)
    # after it; only the silent phone with a call is asked again
    assert sorted((c.aor, c.reason) for c in changes) == [
        ("7301", "unreachable"), ("7302", "registered"), ("7303", "unregistered"),
        ("7304", "unreachable")]
    assert sent == [("PJSIPQualify", {"Endpoint": "7301"})]
    changes.clear()
    link.silent_in_call(["7301", "7302"])  # the ACD restored its calls after the read
    assert changes == [PhoneChange("7301", False, "unreachable")]
    changes.clear()
    link._lost()   # the link dropped: what it knew may be old, nothing is told from it
    link.silent_in_call(["7301"])
    assert changes == []


def test_the_engine_names_the_sip_phones_that_carry_a_call() -> None:
    """What the phones link re-tells after a snapshot or the ACD's resync: the engine's own SIP
    phones with a call (not a trunk's endpoint, not a seat without a call)."""
    from types import SimpleNamespace

    from callcenter.engine import Engine

    def seat(endpoint: str, call: object | None) -> SimpleNamespace:
        return SimpleNamespace(agent=SimpleNamespace(endpoint=endpoint), call=call)

    engine = Engine(load_settings(ami={"secret": SecretStr("unit-test")}))
    assert engine._phones_in_call() == []   # no ACD yet
    engine.acd = SimpleNamespace(seats={  # type: ignore[assignment]
        "A1": seat("PJSIP/7301", object()), "A2": seat("PJSIP/7302", None),
        "A3": seat("PJSIP/0123@trunk", object()), "A4": seat("Local/1001@agent-answer",
                                                             object())})
    assert engine._phones_in_call() == ["7301"]
