"""Call controls an agent or supervisor asks for: hang up, hold, transfers, conference, spying.

Each is a few AMI actions on the two legs the ACD knows (the caller's channel in the queue's
holding context, the agent's leg in ``[acd-agent]``). Every number the engine dials out
(click-to-call, transfer, consultation or conference to a number) goes through one dial rule,
``dial_rule``: the site's dial rules (``phones/dialrules.py``: mainland numbers, no
international, premium-rate or short codes by default, per role) for the agent who asks, and
only the digits-only dial string it returns reaches Asterisk: nothing that could add a leg or an
option to ``Dial()``. Channel names come from Asterisk itself. Refusals are ``ConsoleError``
with the protocol's error codes; a refused number is logged (masked), never dialled.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from callcenter.acd.service import Acd, ActiveCall, SeatRuntime, Waiter
from callcenter.broker.interface import Tier
from callcenter.errors import AmiActionError, ConsoleError, DialRuleError
from callcenter.phones.dialrules import DEFAULT_RULES, Purpose, Refusal, check, mask
from callcenter.seats.protocol import Target
from callcenter.seats.state import SeatInput, SeatState
from callcenter.sip.settings import DialRules
from callcenter.telephony.ami import AmiClient

#: tries of an action that met a channel in the middle of a masquerade (see ``_act``)
_ATTEMPTS = 5


log = logging.getLogger(__name__)

#: refusals that say the number cannot be dialled at all (the rest: not by this role / site)
_BAD_NUMBER = frozenset({Refusal.SYNTAX, Refusal.LENGTH, Refusal.NOT_DIALABLE})


def dial_rule(number: str, role: str = "agent", purpose: Purpose = "click_to_call",
              rules: DialRules = DEFAULT_RULES, *, who: str = "") -> str:
    """The one check for every number the engine dials out: the dial string (digits only) if
    ``role`` may dial ``number`` for ``purpose`` under ``rules``, else ``ConsoleError``:
    ``bad_number`` (no number one can dial) or ``forbidden`` (premium-rate, a short code,
    international, or not for this role). A refusal is logged with who asked, the rule and the
    number masked (``dialrules.mask``); nothing reaches Asterisk."""
    try:
        return check(number, role, purpose, rules)
    except DialRuleError as exc:
        log.warning("dial refused (%s): %s asked to dial %s for a %s: %s", exc.reason,
                    who or role, mask(number), purpose, exc.message)
        code = "bad_number" if exc.reason in _BAD_NUMBER else "forbidden"
        raise ConsoleError(code, exc.message) from None


def _phone_of(rt: SeatRuntime) -> str:
    """The seat's phone (a provisioned endpoint), or ``ConsoleError`` if it has none."""
    if not rt.agent.endpoint:
        raise ConsoleError("invalid_state", f"agent {rt.agent.agent_id} has no phone")
    return rt.agent.endpoint


class CallControl:
    def __init__(self, acd: Acd) -> None:
        self.acd = acd

    @property
    def ami(self) -> AmiClient:
        if self.acd.ami is None:
            raise ConsoleError("unavailable", "the telephony link is down")
        return self.acd.ami

    def _connected(self, agent_id: str) -> tuple[SeatRuntime, ActiveCall]:
        rt = self.acd.seat(agent_id)
        call = rt.call
        if call is None or call.connected_at is None:
            raise ConsoleError("no_call", "no connected call")
        return rt, call

    async def _act(self, action: str, **headers: str | list[str]) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                await self.ami.action(action, **headers)
                return
            except AmiActionError as exc:
                # Just after the agent answers, Bridge() is still moving the caller's channel
                # into the bridge (a masquerade): for a moment Asterisk does not find it, or its
                # recording, by name. A moment later it does.
                transient = "does not exist" in exc.message or "mute flag" in exc.message
                if not transient or attempt == _ATTEMPTS - 1:
                    raise ConsoleError("unavailable",
                                       f"Asterisk refused {action}: {exc.message}") from exc
                await asyncio.sleep(0.2 * (attempt + 1))

    def _number(self, agent_id: str, number: str, purpose: Purpose) -> str:
        """``number`` as dialled for ``agent_id`` (their role), or ``ConsoleError``."""
        role = self.acd.seat(agent_id).agent.role
        return dial_rule(number, role, purpose, self.acd.dial_rules, who=agent_id)

    def _dial_string(self, agent_id: str, target: Target, purpose: Purpose) -> str:
        if target.kind == "agent":
            return _phone_of(self.acd.seat(target.value))
        if target.kind == "number":
            return f"Local/{self._number(agent_id, target.value, purpose)}@outbound"
        raise ConsoleError("malformed", "a consultation or conference needs an agent or number")

    # -- the agent's own call ----------------------------------------------------------------

    async def hangup(self, agent_id: str) -> None:
        rt = self.acd.seat(agent_id)
        if rt.call is None:
            raise ConsoleError("no_call", "no call to hang up")
        await self._act("Hangup", Channel=rt.call.agent_uniqueid)

    async def hold(self, agent_id: str) -> None:
        rt, call = self._connected(agent_id)
        if call.held or not call.waiter.channel:
            raise ConsoleError("invalid_state", "the call is already on hold")
        rt.seat.apply(SeatInput.HOLD, self.acd.clock())  # refuses before Asterisk is touched
        await self._act("Redirect", Channel=call.waiter.channel, Context="acd-hold",
                        Exten="s", Priority="1", ExtraChannel=call.agent_channel,
                        ExtraContext="acd-agent", ExtraExten="held", ExtraPriority="1")
        call.held = True
        self.acd._log_seat(rt, SeatState.ON_CALL, "hold", agent_id)
        self.acd._emit(agent_id, "held", {"call_id": call.call_id})

    async def resume(self, agent_id: str) -> None:
        rt, call = self._connected(agent_id)
        if not call.held:
            raise ConsoleError("invalid_state", "the call is not on hold")
        await self._act("Bridge", Channel1=call.agent_channel, Channel2=call.waiter.channel,
                        Tone="no")
        call.held = False
        rt.seat.apply(SeatInput.RESUME, self.acd.clock())
        self.acd._log_seat(rt, SeatState.ON_HOLD, "resume", agent_id)
        self.acd._emit(agent_id, "resumed", {"call_id": call.call_id})

    async def recording(self, agent_id: str, pause: bool) -> None:
        _rt, call = self._connected(agent_id)
        if not call.recording:
            raise ConsoleError("invalid_state", "this call is not recorded")
        await self._act("MixMonitorMute", Channel=call.agent_channel, Direction="both",
                        State="1" if pause else "0")
        call.recording_paused = pause
        self.acd._emit(agent_id, "recording", {"call_id": call.call_id,
                                               "state": "paused" if pause else "on"})

    async def transfer(self, agent_id: str, target: Target) -> None:
        """Blind transfer: the caller goes on, the agent's leg ends (and wraps up)."""
        _rt, call = self._connected(agent_id)
        waiter = call.waiter
        if not waiter.channel:
            raise ConsoleError("invalid_state", "a call-back cannot be transferred")
        now = self.acd.clock()
        number = ""
        if target.kind == "number":
            number = self._number(agent_id, target.value, "transfer")
        elif target.kind == "queue" and target.value not in self.acd.queues:
            raise ConsoleError("not_found", f"no queue {target.value}")
        self.acd._qlog(now, waiter.queue, waiter.call_id, "transfer", agent=agent_id,
                       detail={"kind": target.kind, "target": target.value})
        if target.kind == "number":
            await self._act("Redirect", Channel=waiter.channel, Context="acd-dial",
                            Exten=number, Priority="1")
            return
        if target.kind == "queue":
            await self._act("Setvar", Channel=waiter.channel, Variable="CC_QUEUE",
                            Value=target.value)
            await self._act("Redirect", Channel=waiter.channel, Context="queue-hold",
                            Exten="s", Priority="1")
            # Not straight back to the agent who sent it on (their seat frees any moment).
            self.acd.enqueue(waiter.call_id, target.value, waiter.channel, waiter.uniqueid,
                             waiter.context, phone=waiter.phone, manager=waiter.manager,
                             position_key=waiter.position_key or waiter.arrived_at,
                             exclude=[agent_id])
            return
        other = self.acd.seat(target.value)
        if other.seat.state is not SeatState.READY or other.call is not None:
            raise ConsoleError("invalid_state", f"agent {target.value} is not ready")
        await self._act("Redirect", Channel=waiter.channel, Context="acd-hold", Exten="s",
                        Priority="1")
        moved = Waiter(waiter.call_id, waiter.queue, waiter.tier, now, waiter.channel,
                       waiter.uniqueid, waiter.account, waiter.manager, waiter.phone,
                       context=waiter.context)
        self.acd._uniqueids[waiter.uniqueid] = ("caller", waiter.call_id)
        self.acd.offer_direct(other, moved)

    async def consult(self, agent_id: str, target: Target) -> None:
        rt, call = self._connected(agent_id)
        if call.held or call.consulting:
            raise ConsoleError("invalid_state", "already on hold or consulting")
        dial = self._dial_string(agent_id, target, "consult")
        await self._act("Setvar", Channel=call.agent_channel, Variable="CC_TARGET", Value=dial)
        await self._act("Setvar", Channel=call.agent_channel, Variable="CC_DIAL_TIMEOUT",
                        Value="30")
        rt.seat.apply(SeatInput.HOLD, self.acd.clock())
        call.consulting = True
        await self._act("Redirect", Channel=call.waiter.channel, Context="acd-hold",
                        Exten="s", Priority="1", ExtraChannel=call.agent_channel,
                        ExtraContext="acd-agent", ExtraExten="consult", ExtraPriority="1")
        call.held = True
        self.acd._log_seat(rt, SeatState.ON_CALL, "consult", agent_id)
        self.acd._emit(agent_id, "consult", {"call_id": call.call_id, "state": "ringing",
                                             "target": target.value})

    async def consult_complete(self, agent_id: str) -> None:
        _rt, call = self._connected(agent_id)
        if not call.consult_channel:
            raise ConsoleError("invalid_state", "no consultation in progress")
        await self._act("Bridge", Channel1=call.waiter.channel, Channel2=call.consult_channel,
                        Tone="no")
        call.consult_channel, call.consulting = "", False
        # Taking the consulted party out of the agent's Dial may already have ended the leg.
        await self.acd._hangup(call.agent_uniqueid)

    async def consult_cancel(self, agent_id: str) -> None:
        """Hang up the consulted party (if still there) and take the caller back."""
        _rt, call = self._connected(agent_id)
        if not call.consulting:
            raise ConsoleError("invalid_state", "no consultation in progress")
        channel, call.consult_channel, call.consulting = call.consult_channel, "", False
        if channel:
            await self.acd._hangup(channel)
        await self.resume(agent_id)

    async def conference(self, agent_id: str, target: Target) -> None:
        _rt, call = self._connected(agent_id)
        dial = self._dial_string(agent_id, target, "conference")
        room = call.conference or f"cc-{uuid.uuid4().int % 10**12}"
        if not call.conference:
            await self._act("Redirect", Channel=call.waiter.channel, Context="acd-conference",
                            Exten=room, Priority="1", ExtraChannel=call.agent_channel,
                            ExtraContext="acd-conference", ExtraExten=room, ExtraPriority="1")
            call.conference = room
        try:
            await self.ami.originate(Channel=dial, Context="acd-conference", Exten=room,
                                     Priority="1", Timeout="30000", wait_s=40)
        except AmiActionError as exc:
            raise ConsoleError("unavailable", f"{target.value} did not answer") from exc
        self.acd._emit(agent_id, "conference", {"call_id": call.call_id,
                                                "target": target.value})

    # -- starting calls ----------------------------------------------------------------------

    def click_to_call(self, agent_id: str, number: str, account: str) -> str:
        """Ring the agent first, then dial the customer (as a call-back does)."""
        rt = self.acd.seat(agent_id)
        if rt.seat.state is not SeatState.READY or rt.call is not None:
            raise ConsoleError("invalid_state", "go ready (and finish any call) first")
        call_id = f"out-{uuid.uuid4().hex[:16]}"
        waiter = Waiter(call_id, "", Tier.ORDINARY, self.acd.clock(), "", "", account,
                        phone=self._number(agent_id, number, "click_to_call"), callback=True)
        self.acd.offer_direct(rt, waiter)
        return call_id

    async def spy(self, supervisor_id: str, agent_id: str, mode: str) -> None:
        supervisor = self.acd.seat(supervisor_id)
        _rt, call = self._connected(agent_id)
        if mode not in ("listen", "whisper", "barge"):
            raise ConsoleError("malformed", "mode is listen, whisper or barge")
        try:
            await self.ami.originate(Channel=_phone_of(supervisor),
                                     Context="supervisor-spy", Exten=mode, Priority="1",
                                     Timeout="30000", wait_s=40,
                                     Variable=[f"CC_SPY={call.agent_channel}"])
        except AmiActionError as exc:
            raise ConsoleError("unavailable", "the supervisor's phone did not answer") from exc
