"""The dialer's rules (``dialer/rules.py``): every refusal before a call, in the customer's time
zone, and what each result does to the task."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from callcenter.dialer.plan import DialPlan
from callcenter.dialer.rules import (
    SANDBOX_NUMBERS,
    Allowed,
    Facts,
    Refusal,
    Refused,
    Result,
    check,
    foreign_caller_id,
    in_window,
    next_opening,
    own_numbers,
    refusal_move,
    result_move,
    result_of,
)
from callcenter.sip.settings import DialRules, TrunkSettings
from callcenter.tasks.state import TaskInput

SH = ZoneInfo("Asia/Shanghai")
MOBILE = "13812345678"


def at(year: int, month: int, day: int, hour: int, minute: int = 0,
       zone: ZoneInfo = SH) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone).timestamp()


#: Monday 23 November 2026, 10:00 in Shanghai
MONDAY_10 = at(2026, 11, 23, 10)
PLAN = DialPlan.model_validate({"window": {"start": "09:00", "end": "20:00",
                                           "days": [1, 2, 3, 4, 5]},
                                "max_attempts": 3})


def test_a_call_inside_the_window_is_allowed_with_the_digits_to_dial() -> None:
    assert check("+86 138 1234 5678".replace(" ", ""), 0, PLAN, Facts(), MONDAY_10) \
        == Allowed(MOBILE)


def test_a_number_on_the_do_not_call_list_is_refused_first() -> None:
    verdict = check(MOBILE, 0, PLAN, Facts(dnc=True, opted_out=True), MONDAY_10)
    assert isinstance(verdict, Refused) and verdict.reason is Refusal.DNC
    assert refusal_move(verdict).input is TaskInput.CANCEL


def test_an_opted_out_customer_is_refused() -> None:
    verdict = check(MOBILE, 0, PLAN, Facts(opted_out=True), MONDAY_10)
    assert isinstance(verdict, Refused) and verdict.reason is Refusal.OPT_OUT
    assert refusal_move(verdict).detail == {"reason": "opt_out"}


def test_no_attempt_left_is_refused_and_gives_up() -> None:
    assert check(MOBILE, 2, PLAN, Facts(), MONDAY_10) == Allowed(MOBILE)
    verdict = check(MOBILE, 3, PLAN, Facts(), MONDAY_10)
    assert isinstance(verdict, Refused) and verdict.reason is Refusal.ATTEMPTS
    assert refusal_move(verdict).input is TaskInput.GIVE_UP


@pytest.mark.parametrize("number", ["16800000000", "95588", "0012125550100", "12345"])
def test_numbers_the_dial_rules_refuse_are_refused(number: str) -> None:
    verdict = check(number, 0, PLAN, Facts(), MONDAY_10)
    assert isinstance(verdict, Refused) and verdict.reason is Refusal.DIAL_RULES


def test_the_dial_rules_are_the_sites_and_the_agents_role() -> None:
    rules = DialRules(agent=["landline"])
    verdict = check(MOBILE, 0, PLAN, Facts(), MONDAY_10, role="agent", dial_rules=rules)
    assert isinstance(verdict, Refused) and verdict.reason is Refusal.DIAL_RULES


def test_the_window_is_the_customers_local_time() -> None:
    # 10:00 in Shanghai is 03:00 in Berlin (winter): outside a Berlin customer's window
    berlin = PLAN.model_copy(update={"timezone": "Europe/Berlin"})
    verdict = check(MOBILE, 0, berlin, Facts(), MONDAY_10)
    assert isinstance(verdict, Refused) and verdict.reason is Refusal.WINDOW
    assert verdict.retry_at == at(2026, 11, 23, 9, zone=ZoneInfo("Europe/Berlin"))
    move = refusal_move(verdict)
    assert move.input is TaskInput.RESCHEDULE and move.next_attempt_at == verdict.retry_at
    assert "2026-11-23 09:00 CET" in verdict.message


def test_a_window_may_run_to_midnight() -> None:
    """ "24:00" ends the window at midnight: 23:59:30 is inside, 23:59 is not with "23:59"."""
    whole = DialPlan.model_validate({"window": {"start": "00:00", "end": "24:00",
                                                "days": [1, 2, 3, 4, 5, 6, 7]}})
    late = at(2026, 11, 23, 23, 59) + 30
    assert in_window(whole, late) and in_window(whole, at(2026, 11, 23, 0, 0))
    until_2359 = DialPlan.model_validate({"window": {"start": "00:00", "end": "23:59",
                                                     "days": [1, 2, 3, 4, 5, 6, 7]}})
    assert not in_window(until_2359, late)
    with pytest.raises(ValueError):
        DialPlan.model_validate({"window": {"start": "24:00", "end": "24:00"}})


def test_after_the_end_and_on_excluded_days_the_next_opening_is_the_next_allowed_day() -> None:
    friday_20 = at(2026, 11, 27, 20)  # the end is excluded
    assert not in_window(PLAN, friday_20)
    assert in_window(PLAN, friday_20 - 60)
    # Saturday and Sunday are not in the window's days: Monday 09:00
    assert next_opening(PLAN, friday_20) == at(2026, 11, 30, 9)
    saturday_noon = at(2026, 11, 28, 12)
    verdict = check(MOBILE, 0, PLAN, Facts(), saturday_noon)
    assert isinstance(verdict, Refused) and verdict.retry_at == at(2026, 11, 30, 9)
    # before the start of an allowed day: that day's start
    assert next_opening(PLAN, at(2026, 11, 24, 7, 30)) == at(2026, 11, 24, 9)
    assert next_opening(PLAN, MONDAY_10) == MONDAY_10


def test_results_from_asterisk() -> None:
    assert result_of("ANSWER") is Result.ANSWERED
    assert result_of("ANSWER", "HUMAN") is Result.ANSWERED
    assert result_of("ANSWER", "NOTSURE") is Result.ANSWERED
    assert result_of("ANSWER", "MACHINE") is Result.MACHINE
    assert result_of("ANSWER", "HANGUP") is Result.NO_ANSWER
    assert result_of("BUSY") is Result.BUSY
    assert result_of("NOANSWER") is Result.NO_ANSWER
    # the agent hung up while the customer's phone rang: not the customer's no-answer
    assert result_of("CANCEL") is Result.CANCELLED
    # a number that does not exist
    assert result_of("INVALIDARGS") is Result.INVALID
    assert result_of("CHANUNAVAIL", cause="1") is Result.INVALID
    assert result_of("CONGESTION", cause="34") is Result.FAILED
    assert result_of("CONGESTION") is Result.FAILED
    assert result_of("CHANUNAVAIL") is Result.FAILED
    assert result_of("") is Result.FAILED


def test_a_result_retries_after_the_plans_minutes_or_gives_up() -> None:
    plan = DialPlan.model_validate({"max_attempts": 3, "retry": {"busy": 5, "no_answer": 0}})
    assert result_move(plan, Result.ANSWERED, 1, 100.0).input is TaskInput.REACHED
    busy = result_move(plan, Result.BUSY, 1, 100.0)
    assert busy.input is TaskInput.NOT_REACHED and busy.next_attempt_at == 100.0 + 300
    assert busy.detail == {"reason": "busy"}
    # 0 minutes: no retry for that result
    assert result_move(plan, Result.NO_ANSWER, 1, 100.0).input is TaskInput.GIVE_UP
    # the last attempt: given up whatever the minutes
    assert result_move(plan, Result.BUSY, 3, 100.0).input is TaskInput.GIVE_UP
    machine = result_move(plan, Result.MACHINE, 2, 100.0)
    assert machine.next_attempt_at == 100.0 + plan.retry.machine * 60
    assert result_move(plan, Result.FAILED, 1, 0.0).next_attempt_at == plan.retry.failed * 60
    assert result_move(plan, Result.INTERRUPTED, 1, 0.0).input is TaskInput.INTERRUPTED


def test_a_task_may_show_only_the_sites_own_numbers() -> None:
    """M3: the caller ID is one of the trunks' caller IDs or DIDs (the sandbox's hotline
    numbers with no trunk); "" is the trunk's own."""
    assert own_numbers([]) == SANDBOX_NUMBERS == {"95500", "4008895500"}
    trunk = TrunkSettings(name="carrier", host="198.51.100.7", caller_id="02151234567",
                          dids=["4008201234"], match=["198.51.100.7"])
    own = own_numbers([trunk])
    assert own == {"02151234567", "4008201234"}
    assert foreign_caller_id(PLAN.model_copy(update={"caller_id": "4008201234"}), own) is None
    assert foreign_caller_id(PLAN.model_copy(update={"caller_id": ""}), own) is None
    why = foreign_caller_id(PLAN.model_copy(update={"caller_id": "95588"}), own)
    assert why is not None and "95588 is not one of the site's own numbers" in why
    # a trunk no call leaves through shows nothing: its numbers are not the site's to show
    inbound = TrunkSettings(name="inbound", host="198.51.100.8", caller_id="95588",
                            dids=["95599"], match=["198.51.100.8"], outbound=False)
    assert own_numbers([trunk, inbound]) == own
