"""The rules every dialer call keeps, sans-IO: may this task be called now, and what a call's
result does to its task.

``check`` is asked before EVERY call (preview or progressive) with what the edge looked up (the
do-not-call list, the customer's opt-outs) and the time; it returns the digits to dial or a
``Refused`` with its reason, in this order: ``dnc``, ``opt_out``, ``attempts``, ``dial_rules``,
``window`` (a call refused for any reason is never placed). ``refusal_move`` says how a refusal
moves the task; ``result_move`` how a placed call's result does (``DialPlan.retry``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

from callcenter.dialer.plan import DialPlan
from callcenter.errors import DialRuleError
from callcenter.phones.dialrules import DEFAULT_RULES
from callcenter.phones.dialrules import check as dial_check
from callcenter.sip.settings import DialRules, TrunkSettings
from callcenter.tasks.state import TaskInput

__all__ = ["INVALID_CAUSES", "SANDBOX_NUMBERS", "Allowed", "Facts", "Move", "Refusal",
           "Refused", "Result", "check", "foreign_caller_id", "in_window", "next_opening",
           "own_numbers", "refusal_move", "result_move", "result_of"]


class Refusal(enum.StrEnum):
    DNC = "dnc"                # the number is on the do-not-call list
    OPT_OUT = "opt_out"        # the customer opted out of calls
    WINDOW = "window"          # outside the calling window in the customer's time
    ATTEMPTS = "attempts"      # no attempt left
    DIAL_RULES = "dial_rules"  # the site's dial rules refuse the number (toll fraud)


class Result(enum.StrEnum):
    """A placed call's result (``task_attempts.result``)."""

    ANSWERED = "answered"      # a person answered
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MACHINE = "machine"        # an answering machine (AMD)
    FAILED = "failed"          # the line failed (congestion, unavailable)
    INVALID = "invalid"        # the number does not exist (INVALIDARGS, cause "unallocated")
    CANCELLED = "cancelled"    # the agent hung up while the customer's phone rang: not counted
    NOT_PLACED = "not_placed"  # the customer was never dialled (the agent's phone never
    #                            answered, or the ring was not placed): not counted
    INTERRUPTED = "interrupted"  # the outcome is unknown (engine stopped, AMI link lost)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the edge looked up for one call."""

    dnc: bool = False
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class Allowed:
    number: str  # the digits to dial


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal
    message: str
    #: for ``window``: when the window next opens (epoch seconds)
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """How a task moves: the input, why (for ``task_log``), and its next attempt's time."""

    input: TaskInput
    detail: dict[str, Any] = field(default_factory=dict)
    next_attempt_at: float | None = None


def _local(plan: DialPlan, now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, ZoneInfo(plan.timezone))


def _hhmm(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


#: the sandbox's own numbers (its hotline's DIDs, ``asterisk_conf/extensions_sandbox.conf``):
#: the caller IDs a task may show when no trunk is configured
SANDBOX_NUMBERS: Final = frozenset({"95500", "4008895500"})


def own_numbers(trunks: Iterable[TrunkSettings]) -> frozenset[str]:
    """The numbers a task may show its customer (``DialPlan.caller_id``): the site's own, its
    outbound trunks' caller IDs and DIDs (a trunk shows one of its own numbers, or its caller
    ID: ``sip/trunks.py``); the sandbox's hotline numbers when no trunk dials out."""
    numbers = {n for t in trunks if t.outbound for n in (t.caller_id, *t.dids)}
    return frozenset(numbers) if numbers else SANDBOX_NUMBERS


def foreign_caller_id(plan: DialPlan, own: frozenset[str]) -> str | None:
    """Why the plan's caller ID may not be shown (it is not one of the site's ``own``
    numbers: presenting another's number is spoofing), or None. "" is the trunk's own."""
    if plan.caller_id and plan.caller_id not in own:
        return (f"the caller ID {plan.caller_id} is not one of the site's own numbers"
                f" ({', '.join(sorted(own))})")
    return None


def in_window(plan: DialPlan, now: float) -> bool:
    """Whether ``now`` is inside the plan's window in the customer's local time."""
    local = _local(plan, now)
    start = _hhmm(plan.window.start)
    if local.isoweekday() not in plan.window.days or local.time() < start:
        return False
    return plan.window.end == "24:00" or local.time() < _hhmm(plan.window.end)


def next_opening(plan: DialPlan, now: float) -> float:
    """The next moment (epoch seconds, >= ``now``) the window is open: ``now`` itself if open."""
    if in_window(plan, now):
        return now
    local = _local(plan, now)
    start = _hhmm(plan.window.start)
    for ahead in range(8):
        day = local.date() + dt.timedelta(days=ahead)
        if day.isoweekday() not in plan.window.days:
            continue
        opening = dt.datetime.combine(day, start, local.tzinfo)
        if opening.timestamp() > now:
            return opening.timestamp()
    raise AssertionError("a window has at least one day")  # pragma: no cover


def check(phone: str, attempts_used: int, plan: DialPlan, facts: Facts, now: float, *,
          role: str = "agent", dial_rules: DialRules = DEFAULT_RULES) -> Allowed | Refused:
    """May the task's ``phone`` be called now? Asked before every call."""
    if facts.dnc:
        return Refused(Refusal.DNC, "the number is on the do-not-call list")
    if facts.opted_out:
        return Refused(Refusal.OPT_OUT, "the customer asked not to be called")
    if attempts_used >= plan.max_attempts:
        return Refused(Refusal.ATTEMPTS, f"all {plan.max_attempts} attempts are used")
    try:
        number = dial_check(phone, role, "callback", dial_rules)
    except DialRuleError as exc:
        return Refused(Refusal.DIAL_RULES, exc.message)
    if not in_window(plan, now):
        opening = next_opening(plan, now)
        when = _local(plan, opening).strftime("%Y-%m-%d %H:%M %Z")
        return Refused(Refusal.WINDOW, f"outside the calling window; it opens {when}", opening)
    return Allowed(number)


def refusal_move(refused: Refused) -> Move:
    """A refusal's move: do-not-call, opt-out -> cancelled; no attempt left or a number the
    dial rules refuse -> failed; outside the window -> open again at the window's opening."""
    detail = {"reason": refused.reason.value}
    if refused.reason in (Refusal.DNC, Refusal.OPT_OUT):
        return Move(TaskInput.CANCEL, detail)
    if refused.reason is Refusal.WINDOW:
        return Move(TaskInput.RESCHEDULE, detail, refused.retry_at)
    return Move(TaskInput.GIVE_UP, detail)


#: hang-up causes (Q.850) that say the number does not exist: 1 unallocated, 28 invalid format
INVALID_CAUSES = frozenset({"1", "28"})


def result_of(dial_status: str, amd_status: str = "", cause: str = "") -> Result:
    """A call's result from Asterisk's ``DIALSTATUS``, (with AMD) ``AMDSTATUS`` and the
    hang-up ``cause`` (Q.850 code) of the customer's leg."""
    if amd_status == "MACHINE":
        return Result.MACHINE
    if dial_status == "ANSWER":
        return Result.NO_ANSWER if amd_status == "HANGUP" else Result.ANSWERED
    if dial_status == "BUSY":
        return Result.BUSY
    if dial_status == "NOANSWER":
        return Result.NO_ANSWER
    if dial_status == "CANCEL":
        return Result.CANCELLED
    if dial_status == "INVALIDARGS" or cause in INVALID_CAUSES:
        return Result.INVALID
    return Result.FAILED


def result_move(plan: DialPlan, result: Result, attempts_used: int, now: float) -> Move:
    """A placed call's result: answered -> reached; unknown -> review; a number that does not
    exist -> given up; never dialled or cancelled by the agent -> may be called again now;
    otherwise retried after the plan's minutes for that result, or given up (no retry for it,
    or no attempt left)."""
    if result is Result.ANSWERED:
        return Move(TaskInput.REACHED)
    if result is Result.INTERRUPTED:
        return Move(TaskInput.INTERRUPTED, {"reason": result.value})
    if result is Result.INVALID:
        return Move(TaskInput.GIVE_UP, {"reason": result.value})
    if result in (Result.NOT_PLACED, Result.CANCELLED):  # the attempt is given back
        return Move(TaskInput.NOT_REACHED, {"reason": result.value}, now)
    minutes = {Result.BUSY: plan.retry.busy, Result.NO_ANSWER: plan.retry.no_answer,
               Result.MACHINE: plan.retry.machine}.get(result, plan.retry.failed)
    if minutes == 0 or attempts_used >= plan.max_attempts:
        return Move(TaskInput.GIVE_UP, {"reason": result.value})
    return Move(TaskInput.NOT_REACHED, {"reason": result.value}, now + minutes * 60)
