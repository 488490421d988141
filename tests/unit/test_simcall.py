"""Simulated callers: a call that ends before anyone waits for it is still reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from callcenter.errors import UnsafeValueError
from callcenter.telephony.ami_events import AmiEvent, ChannelInfo, Hangup, NewChannel
from callcenter.telephony.simcall import SimCaller


class StubAmi:
    """Only what SimCaller uses of AmiClient."""

    def __init__(self) -> None:
        self.handlers: list[Callable[[AmiEvent], None]] = []
        self.originated: list[dict[str, Any]] = []

    def add_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        self.handlers.append(handler)

    async def originate(self, **headers: Any) -> tuple[dict[str, str], dict[str, str]]:
        self.originated.append(headers)
        return {}, {"Response": "Success"}

    def emit(self, event: AmiEvent) -> None:
        for handler in self.handlers:
            handler(event)


def _info(uid: str, linked: str) -> ChannelInfo:
    return ChannelInfo(uid, linked, f"Local/{uid}", 6, "Up", "138", "", "hotline", "9500")


async def test_a_call_that_ended_before_wait_end_is_still_reported() -> None:
    ami = StubAmi()
    caller = SimCaller(ami)  # type: ignore[arg-type]
    call_id = await caller.place("9500", "1#", call_id="sim-x")
    assert ami.originated[0]["ChannelId"] == "sim-x"
    assert "CALLER_DTMF=1#" in ami.originated[0]["Variable"]
    ami.emit(NewChannel(_info("sim-x", "sim-x")))
    ami.emit(Hangup(_info("sim-x", "sim-x"), 16, "Normal Clearing"))
    result = await caller.wait_end(call_id, 1)
    assert result.call_id == "sim-x" and result.cause == 16
    with pytest.raises(KeyError):
        await caller.wait_end(call_id, 1)  # reported once


async def test_unsafe_keys_and_numbers_are_refused_before_originate() -> None:
    ami = StubAmi()
    caller = SimCaller(ami)  # type: ignore[arg-type]
    with pytest.raises(UnsafeValueError):
        await caller.place("9500", "1\r\nAction: Originate")
    with pytest.raises(UnsafeValueError):
        await caller.place("95;00", "1")
    assert ami.originated == []
