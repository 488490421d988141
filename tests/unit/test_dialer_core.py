"""What each happening of a placed call does (``dialer/core.py``), as tables: the attempt's
result, the task's move, whether the attempt counts, the contact log, a progressive task back
to the team. Above all: only a failed Originate proves the customer was never dialled."""

from __future__ import annotations

import pytest

from callcenter.dialer.core import CallView, Decision, Happening, decide
from callcenter.dialer.plan import DialMode, DialPlan
from callcenter.dialer.rules import Move, Result
from callcenter.tasks.state import TaskInput

PLAN = DialPlan.model_validate({"max_attempts": 3,
                                "retry": {"busy": 10, "no_answer": 60, "machine": 240,
                                          "failed": 30}})
NOW = 1000.0
H = Happening
I = TaskInput  # noqa: E741
R = Result


def view(attempts: int = 1, answered: bool = False, amd: str = "",
         mode: DialMode = DialMode.PREVIEW) -> CallView:
    return CallView(PLAN, mode, attempts, answered, amd)


# happening, (dial status, cause), answered, amd -> result, task input, next attempt, counts,
# contact
ENDINGS = [
    # the customer answered: reached; the agent records the outcome (no move at the end)
    (H.ENDED, ("ANSWER", ""), True, "", R.ANSWERED, None, None, True, True),
    (H.ENDED, ("BUSY", ""), False, "", R.BUSY, I.NOT_REACHED, NOW + 600, True, True),
    (H.ENDED, ("NOANSWER", ""), False, "", R.NO_ANSWER, I.NOT_REACHED, NOW + 3600, True, True),
    (H.ENDED, ("ANSWER", ""), False, "MACHINE", R.MACHINE, I.NOT_REACHED, NOW + 14400, True,
     True),
    (H.ENDED, ("ANSWER", ""), False, "HANGUP", R.NO_ANSWER, I.NOT_REACHED, NOW + 3600, True,
     True),
    (H.ENDED, ("CONGESTION", "34"), False, "", R.FAILED, I.NOT_REACHED, NOW + 1800, True, True),
    # the agent hung up while the customer's phone rang: not counted, may be called again
    (H.ENDED, ("CANCEL", ""), False, "", R.CANCELLED, I.NOT_REACHED, NOW, False, True),
    # a number that does not exist: given up at once
    (H.ENDED, ("INVALIDARGS", ""), False, "", R.INVALID, I.GIVE_UP, None, True, True),
    (H.ENDED, ("CHANUNAVAIL", "1"), False, "", R.INVALID, I.GIVE_UP, None, True, True),
    # Dial says answered but the person's answer was never reported (lost): unknown
    (H.ENDED, ("ANSWER", ""), False, "", R.INTERRUPTED, I.INTERRUPTED, None, True, True),
    # the Originate failed: the agent's phone never answered, the customer was never dialled
    (H.AGENT_MISSED, ("", ""), False, "", R.NOT_PLACED, I.NOT_REACHED, NOW, False, False),
    (H.NOT_PLACED, ("", ""), False, "", R.NOT_PLACED, I.NOT_REACHED, NOW, False, False),
    # the ring's outcome was lost with the AMI link: the customer may have been dialled
    (H.LOST, ("", ""), False, "", R.INTERRUPTED, I.INTERRUPTED, None, True, True),
    # the agent's call ended, the dialplan's report never came
    (H.SETTLE, ("", ""), True, "", R.ANSWERED, None, None, True, True),
    (H.SETTLE, ("", ""), False, "", R.INTERRUPTED, I.INTERRUPTED, None, True, True),
]


@pytest.mark.parametrize(("what", "status", "answered", "amd", "result", "move", "next_at",
                          "counts", "contact"), ENDINGS)
def test_what_a_calls_end_does(what: Happening, status: tuple[str, str], answered: bool,
                               amd: str, result: Result, move: TaskInput | None,
                               next_at: float | None, counts: bool, contact: bool) -> None:
    decision = decide(view(answered=answered, amd=amd), what, NOW, dial_status=status[0],
                      cause=status[1])
    assert decision.result is result and decision.final
    assert (decision.move.input if decision.move else None) is move
    assert (decision.move.next_attempt_at if decision.move else None) == next_at
    assert (decision.counts, decision.contact) == (counts, contact)
    assert not decision.release  # a preview task stays the agent's


def test_a_lost_ring_is_never_a_refund() -> None:
    """The reviewer's C1: a ring lost with the AMI link (the agent may have answered and the
    customer been dialled) is not "the agent missed it": it is never retried on its own."""
    lost = decide(view(), H.LOST, NOW)
    missed = decide(view(), H.AGENT_MISSED, NOW)
    assert lost.counts and lost.move is not None and lost.move.input is I.INTERRUPTED
    assert not missed.counts and missed.move is not None and missed.move.input is I.NOT_REACHED


def test_the_persons_answer_reaches_the_task_once() -> None:
    first = decide(view(), H.ANSWERED, NOW)
    assert first.result is None and not first.final
    assert first.move is not None and first.move.input is I.REACHED
    assert decide(view(answered=True), H.ANSWERED, NOW) == Decision(None, None)


@pytest.mark.parametrize(("what", "status", "release"), [
    (H.ENDED, "BUSY", True), (H.ENDED, "INVALIDARGS", True), (H.AGENT_MISSED, "", True),
    (H.LOST, "", False), (H.SETTLE, "", False)])
def test_a_progressive_retry_is_the_teams_again(what: Happening, status: str,
                                                release: bool) -> None:
    decision = decide(view(mode=DialMode.PROGRESSIVE), what, NOW, dial_status=status)
    assert decision.release is release


def test_the_last_attempt_gives_up_but_a_refunded_one_does_not() -> None:
    assert decide(view(attempts=3), H.ENDED, NOW, dial_status="BUSY").move \
        == Move(I.GIVE_UP, {"reason": "busy"})
    # the third attempt was never dialled: it is given back, one is left
    missed = decide(view(attempts=3), H.AGENT_MISSED, NOW)
    assert missed.move is not None and missed.move.input is I.NOT_REACHED
    cancelled = decide(view(attempts=3), H.ENDED, NOW, dial_status="CANCEL")
    assert cancelled.move is not None and cancelled.move.input is I.NOT_REACHED
