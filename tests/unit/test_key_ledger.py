"""The key ledger (``telephony/key_ledger.py``): which keys fell between two AGI commands, found
by the order of Asterisk's events alone."""

from __future__ import annotations

from callcenter.telephony.ami_events import AgiExec, KeyRead, parse_event
from callcenter.telephony.key_ledger import MAX_KEYS_PER_GAP, KeyLedger

UID = "1700000000.1"


def ledger_after(*events: str) -> KeyLedger:
    """``S`` a command started, ``E`` it ended, a key otherwise."""
    ledger = KeyLedger()
    ledger.open(UID)
    for e in events:
        if e == "S":
            ledger.command_started(UID)
        elif e == "E":
            ledger.command_ended(UID)
        else:
            ledger.key(UID, e)
    return ledger


def test_keys_read_by_a_command_are_not_kept_keys_between_commands_are() -> None:
    ledger = ledger_after("S", "1", "E", "6", "0", "S", "0", "E", "5")
    assert ledger.take(UID, before=2) == "60"      # the gap before command 2
    assert ledger.take(UID, before=2) == ""        # handed out once
    assert ledger.take(UID, before=3) == "5"       # the open gap after command 2
    assert ledger.keys_recovered == 3


def test_keys_before_the_first_command_are_gap_zero() -> None:
    assert ledger_after("7", "S", "E").take(UID, before=1) == "7"


def test_a_key_heard_after_its_gap_was_taken_is_still_handed_out_once() -> None:
    ledger = ledger_after("S", "E", "6")
    assert ledger.take(UID, before=2) == "6"
    ledger.key(UID, "0")                             # still in the same gap
    assert ledger.take(UID, before=2) == "0"


def test_a_sealed_gap_drops_its_keys_and_later_ones() -> None:
    ledger = ledger_after("S", "E", "9")
    ledger.seal(UID, 1)
    ledger.key(UID, "8")
    assert ledger.take(UID, before=5) == ""
    ledger.command_started(UID)
    ledger.command_ended(UID)
    ledger.key(UID, "1")                            # the next gap is an ordinary one
    assert ledger.take(UID, before=5) == "1"


def test_only_open_channels_and_real_keys_are_kept_and_a_gap_is_bounded() -> None:
    ledger = ledger_after("S", "E", *("1" * (MAX_KEYS_PER_GAP + 10)), "x")
    assert ledger.take(UID, before=2) == "1" * MAX_KEYS_PER_GAP
    ledger.key("other", "1")
    assert ledger.take("other", before=9) == "" and not ledger.is_open("other")
    ledger.close(UID)
    assert ledger.started(UID) == 0 and ledger.take(UID, before=9) == ""


def test_an_end_without_a_start_does_not_open_a_gap_early() -> None:
    ledger = ledger_after("E", "S", "1")             # a stray end (the previous session's)
    assert ledger.take(UID, before=9) == ""


def test_ami_events_carry_the_key_and_the_command_edges_but_not_the_command() -> None:
    key = parse_event({"Event": "DTMFEnd", "Uniqueid": UID, "Digit": "5",
                       "Direction": "Received", "DurationMs": "120"})
    assert key == KeyRead(UID, "5") and "5" not in repr(key)
    sent = parse_event({"Event": "DTMFEnd", "Uniqueid": UID, "Digit": "5", "Direction": "Sent"})
    assert not isinstance(sent, KeyRead)
    end = parse_event({"Event": "AGIExecEnd", "Uniqueid": UID, "Command": "GET DATA x 5000 6",
                       "Result": "135790", "CommandId": "42"})
    assert end == AgiExec(UID, ended=True) and "135790" not in repr(end)
    assert parse_event({"event": "agiexecstart", "uniqueid": UID}) == AgiExec(UID, ended=False)
