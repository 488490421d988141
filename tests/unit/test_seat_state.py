"""The seat state machine: the table, its refusals, reasons, FORCE, history and idle time."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from callcenter.acd.seat import (
    FORCE_TARGETS,
    IMPLIED_REASONS,
    TRANSITIONS,
    Seat,
    SeatChange,
    SeatInput,
    SeatState,
    transitions_markdown,
)
from callcenter.errors import CallCenterError, SeatStateError

S = SeatState
I = SeatInput  # noqa: E741


def seat_in(state: SeatState, agent: str = "A1001") -> Seat:
    """A seat placed directly in ``state`` (the table is what is under test, not the path)."""
    seat = Seat(agent)
    seat.state = state
    seat.reason = "break" if state is S.NOT_READY else ""
    return seat


@pytest.mark.parametrize(
    ("src", "what", "dst"),
    [(src, what, dst) for (src, what), dst in TRANSITIONS.items()],
    ids=[f"{src.name}-{what.name}" for (src, what) in TRANSITIONS],
)
def test_every_legal_transition(src: SeatState, what: SeatInput, dst: SeatState) -> None:
    seat = seat_in(src)
    reason = "break" if what is I.NOT_READY else ""
    change = seat.apply(what, 10.0, reason=reason)
    assert seat.state is dst
    assert seat.since == 10.0
    assert change == seat.history[-1]
    assert (change.from_state, change.to_state, change.input) == (src, dst, what)
    if dst is S.NOT_READY:
        assert seat.reason == change.reason == (reason or IMPLIED_REASONS[what])
    else:
        assert seat.reason == change.reason == ""


def test_implied_reasons() -> None:
    assert seat_in(S.LOGGED_OUT).apply(I.LOGIN, 1).reason == "login"
    assert seat_in(S.RINGING).apply(I.NO_ANSWER, 1).reason == "no answer"
    assert seat_in(S.RINGING).apply(I.REJECT, 1).reason == "rejected"


def test_call_ended_while_ringing_goes_back_to_ready() -> None:
    seat = seat_in(S.RINGING)
    seat.apply(I.CALL_ENDED, 5.0)
    assert seat.state is S.READY
    assert seat.idle_for(8.0) == 3.0


ILLEGAL = [
    (S.READY, I.ANSWER),
    (S.LOGGED_OUT, I.READY),
    (S.LOGGED_OUT, I.OFFER),
    (S.NOT_READY, I.OFFER),
    (S.READY, I.LOGIN),
    (S.RINGING, I.LOGOUT),
    (S.ON_CALL, I.LOGOUT),
    (S.ON_HOLD, I.LOGOUT),
    (S.ON_CALL, I.READY),
    (S.ON_HOLD, I.HOLD),
    (S.ON_CALL, I.RESUME),
    (S.WRAP_UP, I.CALL_ENDED),
    (S.READY, I.WRAP_DONE),
    (S.NOT_READY, I.NOT_READY),
    (S.READY, I.READY),
]


@pytest.mark.parametrize(("src", "what"), ILLEGAL, ids=[f"{s.name}-{w.name}" for s, w in ILLEGAL])
def test_illegal_moves_raise_and_change_nothing(src: SeatState, what: SeatInput) -> None:
    assert (src, what) not in TRANSITIONS
    seat = seat_in(src)
    before = (seat.state, seat.reason, seat.since)
    reason = "break" if what is I.NOT_READY else ""
    with pytest.raises(SeatStateError, match=f"seat A1001: cannot {what.name} while {src.name}"):
        seat.apply(what, 10.0, reason=reason)
    assert (seat.state, seat.reason, seat.since) == before
    assert seat.history == []


def test_error_is_in_the_tree() -> None:
    assert issubclass(SeatStateError, CallCenterError)


def test_not_ready_needs_a_known_reason() -> None:
    seat = seat_in(S.READY)
    with pytest.raises(SeatStateError, match="a reason is required"):
        seat.apply(I.NOT_READY, 1)
    with pytest.raises(SeatStateError, match="unknown reason 'nap'"):
        seat.apply(I.NOT_READY, 1, reason="nap")
    assert seat.state is S.READY
    seat.apply(I.NOT_READY, 1, reason="meal")
    assert (seat.state, seat.reason) == (S.NOT_READY, "meal")
    seat.apply(I.READY, 2)
    assert seat.reason == ""


def test_reason_refused_on_other_moves() -> None:
    seat = seat_in(S.NOT_READY)
    with pytest.raises(SeatStateError, match="a reason is only for NOT_READY"):
        seat.apply(I.READY, 1, reason="break")
    assert seat.state is S.NOT_READY


def test_configurable_reasons_keep_the_implied_ones() -> None:
    seat = Seat("A1", allowed_reasons=("coaching",))
    seat.apply(I.LOGIN, 0)  # "login" is implied, always allowed
    seat.apply(I.READY, 1)
    with pytest.raises(SeatStateError, match="unknown reason 'break'"):
        seat.apply(I.NOT_READY, 2, reason="break")
    seat.apply(I.NOT_READY, 2, reason="coaching")
    assert seat.reason == "coaching"


@pytest.mark.parametrize("src", list(FORCE_TARGETS))
@pytest.mark.parametrize("target", [S.READY, S.NOT_READY, S.LOGGED_OUT])
def test_force_allowed(src: SeatState, target: SeatState) -> None:
    seat = seat_in(src)
    change = seat.apply(I.FORCE, 3.0, target=target, by="SUP1")
    assert seat.state is target
    assert change.by == "SUP1"
    assert change.reason == ("forced" if target is S.NOT_READY else "")


@pytest.mark.parametrize("src", [S.ON_CALL, S.ON_HOLD])
@pytest.mark.parametrize("target", [S.READY, S.NOT_READY, S.LOGGED_OUT])
def test_force_refused_mid_call(src: SeatState, target: SeatState) -> None:
    seat = seat_in(src)
    with pytest.raises(SeatStateError, match=f"cannot FORCE {target.name} while {src.name}"):
        seat.apply(I.FORCE, 3.0, target=target, by="SUP1")
    assert seat.state is src


@pytest.mark.parametrize("target", [S.RINGING, S.ON_CALL, S.ON_HOLD, S.WRAP_UP])
def test_force_refuses_other_targets(target: SeatState) -> None:
    with pytest.raises(SeatStateError, match="a supervisor may force LOGGED_OUT, READY, NOT_READY"):
        seat_in(S.READY).apply(I.FORCE, 1, target=target)


def test_force_needs_a_target_and_others_refuse_one() -> None:
    with pytest.raises(SeatStateError, match="a target state is required"):
        seat_in(S.READY).apply(I.FORCE, 1)
    with pytest.raises(SeatStateError, match="a target state is only for FORCE"):
        seat_in(S.READY).apply(I.OFFER, 1, target=S.RINGING)


def test_a_day_in_the_history() -> None:
    seat = Seat("A7", now=0.0)
    seat.apply(I.LOGIN, 1.0)
    seat.apply(I.READY, 2.0)
    seat.apply(I.OFFER, 3.0)
    seat.apply(I.ANSWER, 4.0)
    seat.apply(I.HOLD, 5.0)
    seat.apply(I.RESUME, 6.0)
    seat.apply(I.CALL_ENDED, 7.0)
    seat.apply(I.WRAP_DONE, 9.0)
    seat.apply(I.FORCE, 10.0, target=S.LOGGED_OUT, by="SUP9")
    assert seat.history[0] == SeatChange(1.0, S.LOGGED_OUT, S.NOT_READY, I.LOGIN, "login", "A7")
    assert [c.by for c in seat.history] == [
        "A7", "A7", "system", "A7", "A7", "A7", "system", "system", "SUP9",
    ]
    assert [c.at for c in seat.history] == [1, 2, 3, 4, 5, 6, 7, 9, 10]
    assert seat.state is S.LOGGED_OUT


def test_idle_and_wrap_up_timers() -> None:
    seat = seat_in(S.NOT_READY)
    assert seat.idle_for(100) == 0.0
    seat.apply(I.READY, 10.0)
    assert seat.idle_for(25.0) == 15.0
    assert seat.idle_for(5.0) == 0.0  # a clock that steps back never gives negative idle
    assert not seat.wrap_up_expired(100, 30)
    seat.apply(I.OFFER, 30.0)
    assert seat.idle_for(40.0) == 0.0
    seat.apply(I.ANSWER, 31.0)
    seat.apply(I.CALL_ENDED, 60.0)
    assert not seat.wrap_up_expired(89.9, 30)
    assert seat.wrap_up_expired(90.0, 30)


def test_markdown_is_drawn_from_the_tables() -> None:
    md = transitions_markdown()
    assert md.startswith("| from state | input | to state |\n|---|---|---|\n")
    for (src, what), dst in TRANSITIONS.items():
        assert f"| {src.name} | {what.name} | {dst.name} |" in md
    for src in FORCE_TARGETS:
        assert f"| {src.name} | FORCE | LOGGED_OUT, READY, NOT_READY" in md
    assert "| ON_CALL | FORCE" not in md
    assert "FORCE is refused while ON_CALL, ON_HOLD" in md


KNOWN_REASONS = {"break", *IMPLIED_REASONS.values()}  # of the reasons the machine below draws


class SeatMachine(RuleBasedStateMachine):
    """Random input sequences: the seat never leaves the enum, refusals change nothing,
    and the history is an unbroken chain."""

    def __init__(self) -> None:
        super().__init__()
        self.seat = Seat("H1")
        self.clock = 0.0

    @rule(
        what=st.sampled_from(SeatInput),
        force_to=st.none() | st.sampled_from(SeatState),
        reason=st.sampled_from(["", "break", "nap"]),
        step=st.floats(min_value=0, max_value=60),
    )
    def apply(self, what: SeatInput, force_to: SeatState | None, reason: str, step: float) -> None:
        target = force_to  # ``target`` is a reserved keyword of @rule
        self.clock += step
        before = (self.seat.state, self.seat.reason, self.seat.since, len(self.seat.history))
        if what is I.FORCE:
            dst = target if target in FORCE_TARGETS.get(self.seat.state, ()) else None
        else:
            dst = TRANSITIONS.get((self.seat.state, what)) if target is None else None
        if dst is S.NOT_READY:
            legal = (reason or IMPLIED_REASONS.get(what, "")) in KNOWN_REASONS
        else:
            legal = dst is not None and reason == ""
        try:
            self.seat.apply(what, self.clock, reason=reason, target=target)
        except SeatStateError:
            assert (self.seat.state, self.seat.reason, self.seat.since,
                    len(self.seat.history)) == before
            assert not legal
        else:
            assert legal

    @invariant()
    def state_in_enum(self) -> None:
        assert isinstance(self.seat.state, SeatState)
        assert (self.seat.reason != "") == (self.seat.state is S.NOT_READY)

    @invariant()
    def history_chains(self) -> None:
        history = self.seat.history
        if history:
            assert history[0].from_state is S.LOGGED_OUT
            assert history[-1].to_state is self.seat.state
            assert history[-1].at == self.seat.since
        for prev, nxt in itertools.pairwise(history):
            assert nxt.from_state is prev.to_state
            assert nxt.at >= prev.at


TestSeatMachine = SeatMachine.TestCase


def test_docs_carry_the_current_table() -> None:
    from pathlib import Path

    doc = Path(__file__).parents[2] / "docs" / "seats.md"
    assert transitions_markdown() in doc.read_text(encoding="utf-8")
