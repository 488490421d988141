"""The key ledger (``telephony/key_ledger.py``): which keys fell between two AGI commands, found
by the order of Asterisk's events, and which of them Asterisk may still have delivered."""

from __future__ import annotations

from callcenter.telephony.ami_events import AgiExec, KeyRead, parse_event
from callcenter.telephony.key_ledger import MAX_KEYS_PER_GAP, KeyLedger, hold_s

UID = "1700000000.1"
LATER = 10_000.0   # a time when every hold is over


class Feed:
    """A ledger fed in Asterisk's order: ``S`` a command started, ``E`` it ended, a key
    otherwise; the clock moves 0.3 s per event unless told."""

    def __init__(self) -> None:
        self.ledger = KeyLedger()
        self.ledger.open(UID)
        self.at = 1000.0

    def __call__(self, *events: str, step: float = 0.3) -> Feed:
        for e in events:
            self.at += step
            if e == "S":
                self.ledger.command_started(UID, self.at)
            elif e == "E":
                self.ledger.command_ended(UID)
            else:
                self.ledger.key(UID, e, self.at, 120)
        return self


def test_keys_read_by_a_command_are_not_kept_keys_between_commands_are() -> None:
    ledger = Feed()("S", "1", "E", "6", "0", "S", "0", "E", "5").ledger
    assert ledger.settle(UID, 2, "0") == "60"     # the gap before command 2, long before it
    assert ledger.settle(UID, 2, "0") == ""       # handed out once
    assert ledger.ready(UID, 3, LATER) == "5"     # the open gap after command 2
    assert ledger.keys_recovered == 3


def test_keys_before_the_first_command_are_gap_zero() -> None:
    assert Feed()("7", "S", "E").ledger.settle(UID, 1, "") == "7"


def test_a_key_is_handed_out_ahead_only_once_asterisk_can_no_longer_deliver_it() -> None:
    feed = Feed()("S", "E", "6")
    key_at = feed.at
    assert feed.ledger.ready(UID, 2, key_at + 0.05) == ""           # still held: wait
    assert feed.ledger.ready(UID, 2, key_at + hold_s(120) + 0.01) == "6"


def test_a_key_just_before_a_command_that_answers_with_it_is_the_same_press() -> None:
    """A short or INFO key: Asterisk reports it in the gap but plays it out and hands it to
    the command that starts 20 ms later, whose answer begins with it: not a second 5."""
    feed = Feed()("S", "E", "5")
    feed("S", step=0.02)
    assert feed.ledger.settle(UID, 2, "512") == ""
    assert feed.ledger.keys_deduplicated == 1
    # the same key in the same place, when the command's answer does not begin with it: the
    # command never got it, res_agi dropped it
    other = Feed()("S", "E", "5")
    other("S", step=0.02)
    assert other.ledger.settle(UID, 2, "12") == "5"


def test_a_key_published_twice_is_one_press() -> None:
    feed = Feed()("S", "E", "4")
    feed("4", step=0.045)               # Asterisk took it from its queue and published it again
    feed("4", step=0.3)                 # a second press
    assert feed.ledger.settle(UID, 2, "") == "44"


def test_reports_for_a_settled_gap_are_dropped_not_given_to_the_next_answer() -> None:
    feed = Feed()("S", "E", "S")
    assert feed.ledger.settle(UID, 2, "") == ""     # the tap was late: nothing yet
    feed.ledger.command_ended(UID)
    feed.ledger.key(UID, "9", feed.at + 1, 120)     # after command 2: an ordinary gap key
    assert feed.ledger.ready(UID, 3, LATER) == "9"


def test_a_sealed_gap_drops_its_keys_and_later_ones() -> None:
    feed = Feed()("S", "E", "9")
    feed.ledger.seal(UID, 1)
    feed("8", "S", "E", "1")
    assert feed.ledger.settle(UID, 2, "") == ""
    assert feed.ledger.ready(UID, 3, LATER) == "1"  # the next gap is an ordinary one


def test_only_open_channels_and_real_keys_are_kept_and_a_gap_is_bounded() -> None:
    feed = Feed()("S", "E")
    for n in range(MAX_KEYS_PER_GAP + 10):
        feed.ledger.key(UID, "1" if n % 2 else "2", feed.at + n, 120)
    feed.ledger.key(UID, "A", feed.at + 99, 120)   # not a key the IVR takes
    assert len(feed.ledger.ready(UID, 2, LATER)) == MAX_KEYS_PER_GAP
    feed.ledger.key("other", "1", feed.at, 120)
    assert feed.ledger.ready("other", 9, LATER) == "" and not feed.ledger.is_open("other")
    feed.ledger.close(UID)
    assert feed.ledger.started(UID) == 0 and feed.ledger.ready(UID, 9, LATER) == ""


def test_an_end_without_a_start_does_not_open_a_gap_early() -> None:
    ledger = Feed()("E", "S", "1").ledger            # a stray end (the previous session's)
    assert ledger.ready(UID, 9, LATER) == ""


def test_ami_events_carry_the_key_and_the_command_edges_but_not_the_command() -> None:
    key = parse_event({"Event": "DTMFEnd", "Uniqueid": UID, "Digit": "5",
                       "Direction": "Received", "DurationMs": "120",
                       "Timestamp": "1764720000.250000"})
    assert key == KeyRead(UID, "5", 1764720000.25, 120) and "'5'" not in repr(key)
    sent = parse_event({"Event": "DTMFEnd", "Uniqueid": UID, "Digit": "5", "Direction": "Sent"})
    assert not isinstance(sent, KeyRead)
    end = parse_event({"Event": "AGIExecEnd", "Uniqueid": UID, "Command": "GET DATA x 5000 6",
                       "Result": "135790", "CommandId": "42"})
    assert end == AgiExec(UID, ended=True) and "135790" not in repr(end)
    assert parse_event({"event": "agiexecstart", "uniqueid": UID, "timestamp": "7.5"}) \
        == AgiExec(UID, ended=False, at=7.5)
