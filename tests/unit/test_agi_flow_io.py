"""How a live call's answers are collected (``ivr/runner.py``'s ``AgiFlowIO``), on a scripted
channel: one ``GET DATA`` per answer (Asterisk drops keys between two AGI commands), type-ahead
kept, and the answer read from what ``GET DATA`` says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from callcenter.ivr.interpreter import Ask, Digits, SayStep
from callcenter.ivr.runner import AgiFlowIO, answered, asterisk_collects, from_get_data


@dataclass
class ScriptedChannel:
    """Answers ``play`` with ``barge`` (the key that stops it, or None) and ``get_data`` with
    ``data`` in order; records the commands."""

    barge: list[str | None] = field(default_factory=list)
    data: list[tuple[str, bool]] = field(default_factory=list)
    digits: list[str | None] = field(default_factory=list)
    commands: list[tuple[str, ...]] = field(default_factory=list)

    async def play(self, names: Sequence[str], escape_digits: str = "") -> str | None:
        self.commands.append(("play", *names))
        return self.barge.pop(0) if self.barge else None

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        self.commands.append(("get_data", prompt, str(timeout_ms), str(max_digits)))
        return self.data.pop(0)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        self.commands.append(("wait_for_digit", str(timeout_ms)))
        return self.digits.pop(0) if self.digits else None


def io_for(channel: ScriptedChannel) -> AgiFlowIO:
    return AgiFlowIO(channel, "call-1")  # type: ignore[arg-type]


ACCOUNT = Ask(("zh/enter_account",), 16, 5.0, "#", "*")
PASSWORD = Ask(("zh/enter_password",), 6, 5.0, None, "*", secret=True)
MENU = Ask(("zh/main_menu",), 1, 5.0, None, "*0")
PRICE = Ask(("zh/enter_price",), 13, 5.0, "#", "")


async def test_an_answer_is_collected_in_one_get_data_with_its_prompt() -> None:
    channel = ScriptedChannel(data=[("10000001", False)])
    assert await io_for(channel).ask(ACCOUNT) == Digits("10000001")
    assert channel.commands == [("get_data", "callcenter/zh/enter_account", "5000", "16")]


async def test_the_last_prompt_is_played_by_get_data_the_others_with_barge_in() -> None:
    step = Ask(("zh/code_is", "zh/digit_6", "zh/enter_code"), 6, 5.0, None, "*")
    channel = ScriptedChannel(data=[("600519", False)])
    assert await io_for(channel).ask(step) == Digits("600519")
    assert channel.commands == [("play", "callcenter/zh/code_is", "callcenter/zh/digit_6"),
                                ("get_data", "callcenter/zh/enter_code", "5000", "6")]


async def test_a_key_that_stops_an_earlier_prompt_starts_the_answer() -> None:
    step = Ask(("zh/code_is", "zh/enter_code"), 6, 5.0, None, "*")
    channel = ScriptedChannel(barge=["6"], data=[("00519", False)])
    assert await io_for(channel).ask(step) == Digits("600519")
    assert channel.commands[-1] == ("get_data", "", "5000", "5")  # the rest, no prompt


async def test_keys_typed_ahead_are_kept_and_the_rest_collected() -> None:
    channel = ScriptedChannel(barge=["1"], data=[("0000001", False)])
    io = io_for(channel)
    await io.say(SayStep(("zh/welcome",)))
    assert await io.ask(ACCOUNT) == Digits("10000001")
    assert channel.commands[-1] == ("get_data", "", "5000", "15")


async def test_a_menu_key_and_a_hash_key_and_a_timeout() -> None:
    assert await io_for(ScriptedChannel(data=[("2", False)])).ask(MENU) == Digits("2")
    assert await io_for(ScriptedChannel(data=[("", False)])).ask(MENU) == Digits("#")
    assert await io_for(ScriptedChannel(data=[("", True)])).ask(MENU) \
        == Digits("", timed_out=True)


async def test_the_back_key_pressed_first_is_the_answer() -> None:
    """'*' on an input: Asterisk keeps collecting until the timeout or '#'; the answer is '*',
    and what was typed after it goes with the question (it never reaches the menu before)."""
    for data in (("*", True), ("*", False), ("*123", True)):
        io = io_for(ScriptedChannel(data=[data]))
        assert await io.ask(ACCOUNT) == Digits("*")
        assert io.pending == ""


async def test_a_star_terminator_is_still_collected_key_by_key() -> None:
    step = Ask(("zh/enter_amount",), 9, 5.0, "*", "")
    channel = ScriptedChannel(barge=["1"], digits=["2", "*"])
    assert await io_for(channel).ask(step) == Digits("12")
    assert [c[0] for c in channel.commands] == ["play", "wait_for_digit", "wait_for_digit"]


async def test_keys_after_a_password_never_reach_the_next_question() -> None:
    channel = ScriptedChannel(data=[("135790", False), ("1", False)])
    io = io_for(channel)
    assert await io.ask(PASSWORD) == Digits("135790")
    assert io.pending == ""
    assert await io.ask(MENU) == Digits("1")


@pytest.mark.parametrize(("step", "got", "text", "timed_out", "answer"), [
    (ACCOUNT, "", "123", True, Digits("123", timed_out=True)),       # stopped typing
    (ACCOUNT, "", "123", False, Digits("123")),                     # '#' ended it
    (PASSWORD, "", "123", False, Digits("123#")),                   # '#' is a key here
    (PASSWORD, "", "123456", False, Digits("123456")),              # all six
    (PASSWORD, "1", "23456", False, Digits("123456")),
    (MENU, "", "0", False, Digits("0")),
    (PRICE, "", "", False, Digits("")),                             # '#' alone: back
    (PRICE, "", "10*5", False, Digits("10*5")),                     # '*' is a digit here
])
def test_the_answer_from_what_get_data_said(step: Ask, got: str, text: str, timed_out: bool,
                                            answer: Digits) -> None:
    assert from_get_data(step, got, text, timed_out, step.max_digits - len(got)) == (answer, "")


def test_typed_ahead_keys_may_be_a_whole_answer_and_what_follows_is_kept() -> None:
    assert answered(ACCOUNT, "123#") == (Digits("123"), "")
    assert answered(ACCOUNT, "123#45") == (Digits("123"), "45")
    assert answered(MENU, "0") == (Digits("0"), "")
    assert answered(MENU, "1600519") == (Digits("1"), "600519")
    assert answered(PASSWORD, "1234567") == (Digits("123456"), "7")
    assert answered(ACCOUNT, "*12") == (Digits("*"), "")     # back, pressed first
    assert answered(ACCOUNT, "12") is None
    # a terminator past max_digits does not make a longer answer; the rest of that entry, to
    # its '#', goes with it (never the next answer); what follows the '#' is kept
    assert answered(Ask(("p",), 3, 5.0, "#", ""), "12345#") == (Digits("123"), "")
    assert answered(Ask(("p",), 3, 5.0, "#", ""), "12345#1") == (Digits("123"), "1")
    assert answered(Ask(("p",), 3, 5.0, "#", ""), "12345") == (Digits("123"), "")
    assert answered(Ask(("p",), 3, 5.0, "#", ""), "123#45") == (Digits("123"), "45")
    assert asterisk_collects(ACCOUNT) and asterisk_collects(PASSWORD)
    assert not asterisk_collects(Ask(("p",), 4, 5.0, "*", ""))


@dataclass
class GapKeys:
    """The key tap's view, scripted: ``ahead`` and ``late`` hand out their strings in order."""

    ahead_keys: list[str] = field(default_factory=list)
    late_keys: list[str] = field(default_factory=list)
    sealed: int = 0
    answers: list[str] = field(default_factory=list)

    def ahead(self) -> str:
        return self.ahead_keys.pop(0) if self.ahead_keys else ""

    async def before_last(self, answer: str) -> str:
        self.answers.append(answer)
        return self.late_keys.pop(0) if self.late_keys else ""

    def seal(self) -> None:
        self.sealed += 1


def io_with(channel: ScriptedChannel, keys: GapKeys) -> AgiFlowIO:
    return AgiFlowIO(channel, "call-1", keys)  # type: ignore[arg-type]


async def test_keys_typed_between_two_questions_start_the_next_answer() -> None:
    """'1' stops the menu; '1000' arrive while the engine thinks (Asterisk drops them; the tap
    has them): the account question asks only for the rest, without its prompt."""
    channel = ScriptedChannel(data=[("1", False), ("0001", False)])
    io = io_with(channel, GapKeys(ahead_keys=["", "1000"]))
    assert await io.ask(MENU) == Digits("1")
    assert await io.ask(ACCOUNT) == Digits("10000001")
    assert channel.commands[-1] == ("get_data", "", "5000", "12")


async def test_keys_learnt_late_go_before_what_get_data_collected() -> None:
    channel = ScriptedChannel(data=[("0001", False)])
    keys = GapKeys(late_keys=["1000"])
    io = io_with(channel, keys)
    assert await io.ask(ACCOUNT) == Digits("10000001")
    assert keys.answers == ["0001"]   # the tap is told what the command got (duplicates)


async def test_keys_from_the_gap_may_answer_two_questions_without_a_command() -> None:
    code = Ask(("zh/enter_code",), 6, 5.0, None, "*")
    channel = ScriptedChannel()
    io = io_with(channel, GapKeys(ahead_keys=["1600519"]))
    assert await io.ask(MENU) == Digits("1")
    assert await io.ask(code) == Digits("600519")
    assert channel.commands == []


async def test_a_prompt_is_not_played_to_a_caller_already_typing() -> None:
    channel = ScriptedChannel(data=[("0000001", False)])
    io = io_with(channel, GapKeys(ahead_keys=["1"]))
    await io.say(SayStep(("zh/welcome",)))
    assert await io.ask(ACCOUNT) == Digits("10000001")
    assert [c[0] for c in channel.commands] == ["get_data"]


async def test_the_gap_after_a_password_is_sealed() -> None:
    keys = GapKeys()
    io = io_with(ScriptedChannel(data=[("1357901", False)]), keys)
    assert await io.ask(PASSWORD) == Digits("135790")
    assert keys.sealed == 1 and io.pending == ""


async def test_a_question_that_must_be_heard_drops_keys_typed_before_it() -> None:
    confirm = Ask(("zh/readback", "zh/confirm"), 1, 5.0, None, "", fresh=True)
    channel = ScriptedChannel(data=[("1", False)])
    io = io_with(channel, GapKeys(ahead_keys=["1"], late_keys=["1", ""]))
    io.pending = "1"
    assert await io.ask(confirm) == Digits("1")
    # the readback was played and the confirmation asked: no early key answered it
    assert [c[0] for c in channel.commands] == ["play", "get_data"]


async def test_key_by_key_collection_takes_keys_from_the_gaps_too() -> None:
    step = Ask(("zh/enter_amount",), 9, 5.0, "*", "")
    channel = ScriptedChannel(barge=["1"], digits=["4", "*"])
    io = io_with(channel, GapKeys(ahead_keys=["", "23"], late_keys=["", ""]))
    assert await io.ask(step) == Digits("1234")


async def test_the_rest_of_an_entry_too_long_never_answers_the_next_question() -> None:
    """GET DATA stops at the digits asked (one more than the flow allows): what the caller
    types after, to the '#', is that entry's rest; the retry that follows is heard afresh."""
    price = Ask(("zh/enter_price",), 13, 5.0, "#", "")
    retry = Ask(("zh/input_too_long", "zh/enter_price"), 13, 5.0, "#", "", fresh=True)
    channel = ScriptedChannel(barge=[None], data=[("1234567890123", False), ("10*5", False)])
    io = io_with(channel, GapKeys(ahead_keys=["", "45#"]))
    assert await io.ask(price) == Digits("1234567890123")
    assert await io.ask(retry) == Digits("10*5")
    assert channel.commands[-1] == ("get_data", "callcenter/zh/enter_price", "5000", "13")
