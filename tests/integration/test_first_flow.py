"""Real calls through the real Asterisk into the first flow, recorded in SQLite."""

from __future__ import annotations

import asyncio

from callcenter.engine import Engine
from callcenter.store.calls import get_call
from callcenter.telephony.simcall import SimCaller


async def _record(engine: Engine, call_id: str):  # type: ignore[no-untyped-def]
    assert engine.recorder is not None and engine.db is not None
    await engine.recorder.flush()
    record = await get_call(engine.db, call_id)
    assert record is not None, f"no call record for {call_id}"
    return record


def _ivr(record) -> list[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    return [(e.kind, e.detail) for e in record.events if e.kind.startswith("ivr.")]


async def test_digits_are_received_read_back_and_recorded(engine: Engine,
                                                          caller: SimCaller) -> None:
    # The digits start during the welcome prompt: barge-in cuts it short.
    result = await caller.call("9502", "1w2w3w#", hold_s=40, within_s=90)
    assert result.cause == 16  # normal clearing: the flow hung up, not the caller
    record = await _record(engine, result.call_id)
    assert record.ended_at is not None
    assert _ivr(record) == [
        ("ivr.start", {"flow": "first", "lang": "zh"}),
        ("ivr.play", {"prompts": "welcome enter_digits"}),
        ("ivr.digits", {"digits": "123", "count": "3"}),
        ("ivr.play", {"prompts": "you_entered digits"}),
        ("ivr.play", {"prompts": "goodbye"}),
        ("ivr.end", {"outcome": "completed"}),
    ]
    kinds = record.kinds()
    assert kinds[0] == "channel.new" and kinds.count("channel.hangup") == 2


async def test_concurrent_callers_each_get_their_own_digits(engine: Engine,
                                                            caller: SimCaller) -> None:
    dtmf = {"5": "5#", "42": "4w2#", "907": "9w0w7#", "*1": "*w1#"}
    results = await asyncio.gather(*(caller.call("9502", d, hold_s=40, within_s=120)
                                     for d in dtmf.values()))
    for expected, result in zip(dtmf, results, strict=True):
        record = await _record(engine, result.call_id)
        digits = [d for k, d in _ivr(record) if k == "ivr.digits"]
        assert digits == [{"digits": expected, "count": str(len(expected))}]


async def test_silent_caller_hears_no_input_and_the_call_ends(engine: Engine,
                                                             caller: SimCaller) -> None:
    result = await caller.call("9502", "", hold_s=40, within_s=90)
    record = await _record(engine, result.call_id)
    assert ("ivr.digits", {"digits": "", "count": "0"}) in _ivr(record)
    assert ("ivr.play", {"prompts": "no_input"}) in _ivr(record)


async def test_caller_hanging_up_mid_prompt_ends_the_session_cleanly(
        engine: Engine, caller: SimCaller) -> None:
    assert engine.agi is not None
    # The caller leaves after 2 s, in the middle of the welcome prompt.
    result = await caller.call("9502", "", hold_s=2, within_s=60)
    record = await _record(engine, result.call_id)
    kinds = [k for k, _ in _ivr(record)]
    assert kinds[-1] == "ivr.caller_hangup" and "ivr.end" not in kinds
    # The AGI session is gone too (the handler saw the hangup and returned).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while engine.agi.active_sessions and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert engine.agi.active_sessions == 0
