"""A call's life (``acd/calls.py``): the table, refusals, and the docs drawn from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.acd.calls import (
    CONTROLLABLE,
    LIVE,
    TRANSITIONS,
    CallInput,
    CallLife,
    CallState,
    transitions_markdown,
)
from callcenter.acd.effects import effects_markdown
from callcenter.errors import CallStateError

S, I = CallState, CallInput  # noqa: E741


def walk(*inputs: CallInput, start: CallState = S.WAITING) -> CallLife:
    life = CallLife("c-1", state=start)
    for n, what in enumerate(inputs):
        life.apply(what, float(n))
    return life


def test_a_call_answered_held_consulted_and_handed_on() -> None:
    life = walk(I.OFFER, I.ANSWER, I.BRIDGED, I.HOLD, I.RESUME, I.CONSULT, I.CONSULT_ENDED,
                I.CONSULT, I.HANDED_ON)
    assert life.state is S.ENDED
    assert [c.to_state for c in life.history][:4] == [S.RINGING, S.ANSWERED, S.CONNECTED,
                                                      S.HELD]


def test_a_ring_not_answered_or_lost_with_the_link_goes_back_to_waiting() -> None:
    assert walk(I.OFFER, I.RING_FAILED).state is S.WAITING
    assert walk(I.OFFER, I.LINK_LOST, I.RING_FAILED).state is S.WAITING
    assert walk(I.OFFER, I.LINK_LOST, I.ANSWER).state is S.ANSWERED


@pytest.mark.parametrize(("start", "what"), [
    (S.WAITING, I.HOLD), (S.RINGING, I.HOLD), (S.ANSWERED, I.HOLD), (S.HELD, I.HOLD),
    (S.CONNECTED, I.RESUME), (S.CONSULTING, I.CONSULT), (S.ENDED, I.HANGUP),
    (S.CONFERENCED, I.HOLD), (S.WAITING, I.ANSWER), (S.CONNECTED, I.OFFER),
])
def test_an_illegal_move_raises_and_changes_nothing(start: CallState, what: CallInput) -> None:
    life = CallLife("c-1", now=5.0, state=start)
    assert not life.can(what)
    with pytest.raises(CallStateError, match=what.name):
        life.apply(what, 9.0)
    assert (life.state, life.since, life.history) == (start, 5.0, [])


def test_every_state_can_be_left_but_ended() -> None:
    sources = {src for src, _ in TRANSITIONS}
    assert sources == set(CallState) - {S.ENDED}
    assert CONTROLLABLE < LIVE and S.ANSWERED in LIVE - CONTROLLABLE


def test_docs_carry_the_current_table() -> None:
    doc = Path(__file__).parents[2] / "docs" / "acd.md"
    assert transitions_markdown() in doc.read_text(encoding="utf-8")


def test_docs_carry_the_core_s_effects() -> None:
    doc = Path(__file__).parents[2] / "docs" / "acd.md"
    assert effects_markdown() in doc.read_text(encoding="utf-8")
