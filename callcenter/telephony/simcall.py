"""Simulated callers: real calls into the hotline without a phone.

AMI ``Originate`` of ``Local/<number>@<context>`` whose other half runs ``[caller-sim]``: it waits,
sends the DTMF string with ``SendDTMF`` (``w`` = half a second pause) and holds the line. The call
id is chosen before the Originate (``ChannelId``), so it is known even if the link drops, and a
placed call is never placed again.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

from callcenter.atcc.model import CallEnded, CallModel
from callcenter.errors import AmiActionError, UnsafeValueError
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent

_DTMF = re.compile(r"^[0-9A-Da-d*#wW]{0,200}$")
_NUMBER = re.compile(r"^[0-9*#+]{1,32}$")


@dataclass(frozen=True)
class SimCallResult:
    call_id: str
    cause: int | None
    cause_text: str
    duration_s: float


def check_dtmf(dtmf: str) -> str:
    if not _DTMF.fullmatch(dtmf):
        raise UnsafeValueError(
            "DTMF string may hold only 0-9, A-D, *, # and w/W pauses (at most 200); refused"
        )
    return dtmf


def check_number(number: str) -> str:
    if not _NUMBER.fullmatch(number):
        raise UnsafeValueError("a number may hold only digits, '+', '*' and '#'; refused")
    return number


def new_call_id() -> str:
    return f"sim-{uuid.uuid4().hex[:20]}"


class SimCaller:
    def __init__(self, ami: AmiClient) -> None:
        self.ami = ami
        self.model = CallModel()
        self._ended: dict[str, CallEnded] = {}
        self._waiters: dict[str, asyncio.Future[CallEnded]] = {}
        ami.add_handler(self._on_event)

    def _on_event(self, event: AmiEvent) -> None:
        loop = asyncio.get_running_loop()
        for change in self.model.apply(event, loop.time()):
            if isinstance(change, CallEnded):
                # The waiter stays until wait_end() collects it: the call may well end before
                # anyone asks.
                waiter = self._waiters.get(change.call.id)
                if waiter is None:
                    self._ended[change.call.id] = change
                elif not waiter.done():
                    waiter.set_result(change)

    async def place(self, number: str, dtmf: str = "", *, context: str = "hotline",
                    hold_s: int = 30, wait_s: int = 1, caller_id: str = "13800000000",
                    gap_ms: int = 250, tone_ms: int = 100, call_id: str | None = None) -> str:
        """Originate one simulated call; return its call id (Asterisk's linkedid).

        The id is chosen here (or by the caller of this method) before anything is sent, so
        whoever waits for the call can know it before Asterisk does.
        """
        call_id = call_id or new_call_id()
        self._waiters[call_id] = asyncio.get_running_loop().create_future()
        try:
            await self.ami.originate(
                Channel=f"Local/{check_number(number)}@{context}",
                Context="caller-sim", Exten="s", Priority="1",
                ChannelId=call_id, OtherChannelId=f"{call_id}-b",
                CallerID=f"\"sim\" <{check_number(caller_id)}>",
                Timeout="30000",
                Variable=[f"CALLER_DTMF={check_dtmf(dtmf)}", f"CALLER_HOLD={int(hold_s)}",
                          f"CALLER_WAIT={int(wait_s)}", f"CALLER_DTMF_GAP={int(gap_ms)}",
                          f"CALLER_DTMF_LEN={int(tone_ms)}"],
            )
        except BaseException:
            self._waiters.pop(call_id, None)
            raise
        return call_id

    async def wait_end(self, call_id: str, within_s: float) -> SimCallResult:
        ended = self._ended.pop(call_id, None)
        if ended is None:
            waiter = self._waiters.get(call_id)
            if waiter is None:
                raise KeyError(call_id)
            ended = await asyncio.wait_for(asyncio.shield(waiter), within_s)
            del self._waiters[call_id]
        call = ended.call
        duration = (call.ended_at or call.started_at) - call.started_at
        return SimCallResult(call.id, call.end_cause, call.end_reason, duration)

    async def hang_up(self, call_id: str) -> bool:
        """Hang up a call placed here (its caller's leg, ``call_id``: the other half of the
        Local pair and whatever it was bridged to follow). False if it had already ended, or
        never started."""
        try:
            await self.ami.action("Hangup", Channel=call_id)
        except AmiActionError:  # "No such channel"
            return False
        return True

    async def call(self, number: str, dtmf: str = "", *, hold_s: int = 30,
                   within_s: float = 120) -> SimCallResult:
        call_id = await self.place(number, dtmf, hold_s=hold_s)
        return await self.wait_end(call_id, within_s)
