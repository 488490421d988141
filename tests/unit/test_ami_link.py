"""Sans-IO AMI link policy: value refusal, MD5 login, backoff, liveness."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.errors import UnsafeValueError
from callcenter.telephony.ami_link import Backoff, Liveness, build_action, md5_login_key


def test_build_action_passes_clean_values() -> None:
    action = build_action("Originate", {"Channel": "Local/9500@hotline", "Variable": ["A=1"]})
    assert action == {"Action": "Originate", "Channel": "Local/9500@hotline", "Variable": ["A=1"]}


@pytest.mark.parametrize("bad", ["x\r\nAction: Command", "x\nCommand: core stop now", "a\x00b",
                                 "a\rb", "tab\tinside", "del\x7f"])
def test_injection_in_a_value_is_refused(bad: str) -> None:
    with pytest.raises(UnsafeValueError) as info:
        build_action("Setvar", {"Value": bad})
    assert "Command" not in str(info.value)  # the refused value is never echoed


def test_injection_in_a_list_value_or_a_name_is_refused() -> None:
    with pytest.raises(UnsafeValueError):
        build_action("Originate", {"Variable": ["A=1", "B=2\r\nAction: Logoff"]})
    with pytest.raises(UnsafeValueError):
        build_action("Ping\r\nAction: Logoff", {})
    with pytest.raises(UnsafeValueError):
        build_action("Ping", {"Bad: Header": "x"})
    with pytest.raises(UnsafeValueError):
        build_action("Ping", {"ActionID": "mine"})


@given(st.text(), st.sampled_from(["\r", "\n", "\x00", "\x1b", "\x85", "\u2028"]), st.text())
def test_any_value_with_a_control_character_is_refused(a: str, bad: str, b: str) -> None:
    with pytest.raises(UnsafeValueError):
        build_action("Setvar", {"Value": a + bad + b})


def test_md5_key_matches_asterisk_definition() -> None:
    assert md5_login_key("12345", "s3cret") == hashlib.md5(b"12345s3cret").hexdigest()


def test_backoff_doubles_to_a_cap_and_resets() -> None:
    b = Backoff(0.2, 1.0)
    assert [b.next_delay() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    b.reset()
    assert b.next_delay() == 0.2


def test_liveness_declares_silence_dead_and_traffic_alive() -> None:
    live = Liveness(timeout=3.0)
    assert not live.is_dead(100.0)
    live.ping_sent(100.0)
    assert not live.is_dead(102.9)
    assert live.is_dead(103.0)
    live.heard_from_peer()
    assert not live.is_dead(200.0)
    live.ping_sent(200.0)
    live.ping_sent(202.0)  # a second ping does not restart the clock
    assert live.is_dead(203.0)
