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
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable

from callcenter.acd.calls import CONTROLLABLE, CallInput, CallState
from callcenter.acd.notices import ConferenceChanged, RecordingChanged
from callcenter.acd.records import ActiveCall, Monitor, SeatRuntime, Waiter
from callcenter.acd.seat import SeatInput, SeatState
from callcenter.acd.service import Acd
from callcenter.acd.targets import Target
from callcenter.broker.interface import Tier
from callcenter.errors import AmiActionError, ConsoleError, DialRuleError
from callcenter.phones.dialrules import DEFAULT_RULES, Purpose, Refusal, check, mask
from callcenter.sip.settings import DialRules
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    Hangup,
    OtherEvent,
)

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


#: seconds a call control waits for Asterisk to prove a step (an event) before giving up
PROOF_S = 10.0


def _parked(uniqueid: str, where: str) -> Callable[[AmiEvent], bool]:
    """The dialplan's ``CallCenterLegParked`` UserEvent for the leg ``uniqueid``: the caller
    reached ``[acd-hold]`` (``where`` "hold") or the agent's leg waits in ``[acd-agent]``
    ("agent")."""
    def matches(event: AmiEvent) -> bool:
        return (isinstance(event, OtherEvent) and event.name == "UserEvent"
                and event.headers.get("UserEvent") == "CallCenterLegParked"
                and event.headers.get("Uniqueid") == uniqueid
                and event.headers.get("Where") == where)
    return matches


def _entered(uniqueid: str) -> Callable[[AmiEvent], bool]:
    return lambda event: isinstance(event, BridgeEnter) and event.info.uniqueid == uniqueid


def _left(uniqueid: str) -> Callable[[AmiEvent], bool]:
    return lambda event: isinstance(event, BridgeLeave) and event.info.uniqueid == uniqueid


def _gone(channel: str) -> Callable[[AmiEvent], bool]:
    return lambda event: isinstance(event, Hangup) and event.info.channel == channel


def _joined(uniqueid: str) -> Callable[[AmiEvent], bool]:
    return lambda event: (isinstance(event, OtherEvent) and event.name == "ConfbridgeJoin"
                          and event.headers.get("Uniqueid") == uniqueid)


class CallControl:
    """Call controls as steps: each sends one AMI action and waits for the Asterisk event that
    proves it (a leg parked, entered or left a bridge, hung up) before the next, so no step
    meets a channel still moving. The call's state (``acd/calls.py``) moves once the proof
    came; a call that ended meanwhile answers ``no_call``. One control at a time per agent."""

    def __init__(self, acd: Acd) -> None:
        self.acd = acd
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def ami(self) -> AmiClient:
        if self.acd.ami is None:
            raise ConsoleError("unavailable", "the telephony link is down")
        return self.acd.ami

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, agent_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(agent_id, asyncio.Lock())
        async with lock:
            yield

    async def _controllable(self, agent_id: str) -> tuple[SeatRuntime, ActiveCall]:
        """The agent's call once Asterisk shows it bridged (an answered call's ``Bridge()`` may
        still be taking the caller in), else ``no_call``."""
        rt = self.acd.seat(agent_id)
        call = rt.call
        if call is None or not call.answered:
            raise ConsoleError("no_call", "no connected call")
        if call.life.state is CallState.ANSWERED:
            bridged = self.acd.expect(lambda _ev: call.life.state is not CallState.ANSWERED)
            await self._proven(bridged, "the caller joining the agent")
        if rt.call is not call or call.life.state not in CONTROLLABLE:
            raise ConsoleError("no_call", "the call ended")
        return rt, call

    @staticmethod
    async def _proven(future: asyncio.Future[AmiEvent], what: str,
                      gone: asyncio.Future[AmiEvent] | None = None) -> AmiEvent:
        """The proof ``future`` brings, within ``PROOF_S``; ``no_call`` if ``gone`` (the call
        ended) comes first."""
        try:
            async with asyncio.timeout(PROOF_S):
                if gone is None:
                    return await future
                await asyncio.wait({future, gone}, return_when=asyncio.FIRST_COMPLETED)
                if future.done():
                    return future.result()
                raise ConsoleError("no_call", "the call ended meanwhile")
        except TimeoutError:
            raise ConsoleError("unavailable", f"Asterisk did not confirm {what}") from None
        finally:
            future.cancel()

    async def _act(self, action: str, **headers: str | list[str]) -> None:
        try:
            await self.ami.action(action, **headers)
        except AmiActionError as exc:
            raise ConsoleError("unavailable", f"Asterisk refused {action}: {exc.message}") from exc

    async def _step(self, what: str, proofs: list[Callable[[AmiEvent], bool]], action: str,
                    *, of: tuple[SeatRuntime, ActiveCall] | None = None,
                    **headers: str | list[str]) -> None:
        """Send ``action`` and wait for every proof (registered before it is sent); with
        ``of``, stop waiting with ``no_call`` if that seat's call ends meanwhile."""
        futures = [self.acd.expect(p) for p in proofs]
        gone = None
        if of is not None:
            rt, call = of
            gone = self.acd.expect(lambda _ev: rt.call is not call)
        try:
            await self._act(action, **headers)
            for future in futures:
                await self._proven(future, what, gone)
        finally:
            for future in [*futures, *([gone] if gone is not None else [])]:
                future.cancel()

    @staticmethod
    def _still(rt: SeatRuntime, call: ActiveCall, what: CallInput) -> None:
        """After a proof: the call is still this seat's and ``what`` is still allowed."""
        if rt.call is not call or not call.life.can(what):
            raise ConsoleError("no_call", "the call ended meanwhile")

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
        async with self._one_at_a_time(agent_id):
            rt, call = await self._controllable(agent_id)
            if not call.life.can(CallInput.HOLD) or not call.waiter.channel:
                raise ConsoleError("invalid_state", "the call cannot be held now"
                                   if call.waiter.channel else "a call-back cannot be held")
            await self._step("the hold", [_parked(call.waiter.uniqueid, "hold"),
                                          _parked(call.agent_uniqueid, "agent")],
                             "Redirect", of=(rt, call), Channel=call.waiter.channel,
                             Context="acd-hold", Exten="s", Priority="1",
                             ExtraChannel=call.agent_channel,
                             ExtraContext="acd-agent", ExtraExten="held", ExtraPriority="1")
            self._still(rt, call, CallInput.HOLD)
            self.acd.call_moved(rt, CallInput.HOLD, SeatInput.HOLD, by=agent_id)

    async def resume(self, agent_id: str) -> None:
        async with self._one_at_a_time(agent_id):
            await self._resume(agent_id)

    async def _resume(self, agent_id: str) -> None:
        rt, call = await self._controllable(agent_id)
        if not call.life.can(CallInput.RESUME):
            raise ConsoleError("invalid_state", "the call is not on hold")
        if not call.agent_parked:
            parked = self.acd.expect(lambda _ev: call.agent_parked or rt.call is not call)
            await self._proven(parked, "the agent's phone waiting")
            self._still(rt, call, CallInput.RESUME)
        await self._step("the caller back with the agent", [_entered(call.waiter.uniqueid)],
                         "Bridge", of=(rt, call), Channel1=call.agent_channel,
                         Channel2=call.waiter.channel, Tone="no")
        self._still(rt, call, CallInput.RESUME)
        self.acd.call_moved(rt, CallInput.RESUME, SeatInput.RESUME, by=agent_id)

    async def recording(self, agent_id: str, pause: bool) -> None:
        async with self._one_at_a_time(agent_id):
            _rt, call = await self._controllable(agent_id)
            if not call.recording:
                raise ConsoleError("invalid_state", "this call is not recorded")
            if pause and call.waiter.dial.get("CC_RECORD") == "1":
                # a dialer call whose task must be recorded (its proof, ``DialPlan.record``)
                raise ConsoleError("invalid_state", "this call must be recorded whole")
            await self._act("MixMonitorMute", Channel=call.agent_channel, Direction="both",
                            State="1" if pause else "0")
            call.recording_paused = pause
            self.acd.notify(RecordingChanged(agent_id, call.call_id,
                                             "paused" if pause else "on"))

    async def transfer(self, agent_id: str, target: Target) -> None:
        """Blind transfer: the caller goes on, the agent's leg ends (and wraps up)."""
        async with self._one_at_a_time(agent_id):
            await self._transfer(agent_id, target)

    async def _transfer(self, agent_id: str, target: Target) -> None:
        rt, call = await self._controllable(agent_id)
        waiter = call.waiter
        if not waiter.channel:
            raise ConsoleError("invalid_state", "a call-back cannot be transferred")
        number = ""
        if target.kind == "number":
            number = self._number(agent_id, target.value, "transfer")
        elif target.kind == "queue" and target.value not in self.acd.queues:
            raise ConsoleError("not_found", f"no queue {target.value}")
        elif target.kind == "agent":
            other = self.acd.seat(target.value)
            if other.seat.state is not SeatState.READY or other.call is not None \
                    or not other.agent.endpoint:
                raise ConsoleError("invalid_state", f"agent {target.value} is not ready")
        # the proof: the caller left the agent's bridge (none to leave when held), and where a
        # place waits for them, arrived there
        proofs = [_left(waiter.uniqueid)] if call.life.state is CallState.CONNECTED else []
        what = CallInput.REQUEUE if target.kind == "queue" else CallInput.HANDED_ON
        if not call.life.can(what):
            raise ConsoleError("invalid_state", "finish the consultation or conference first")
        self.acd.queue_event(waiter.queue, waiter.call_id, "transfer", agent=agent_id,
                             detail={"kind": target.kind, "target": target.value})
        if target.kind == "number":
            await self._step("the transfer", proofs, "Redirect", Channel=waiter.channel,
                             Context="acd-dial", Exten=number, Priority="1")
        elif target.kind == "queue":
            await self._act("Setvar", Channel=waiter.channel, Variable="CC_QUEUE",
                            Value=target.value)
            await self._step("the transfer", [*proofs, _parked(waiter.uniqueid, "queue")],
                             "Redirect", Channel=waiter.channel, Context="queue-hold",
                             Exten="s", Priority="1")
        else:
            await self._step("the transfer", [*proofs, _parked(waiter.uniqueid, "hold")],
                             "Redirect", Channel=waiter.channel, Context="acd-hold",
                             Exten="s", Priority="1")
        if rt.call is call:
            self._still(rt, call, what)
        # else: the agent's leg ended on its own as the caller left its bridge (``Bridge()``
        # returns): the seat is wrapping up already; the caller still goes on
        self.acd.hand_on(rt, call, what, target, by=agent_id)

    async def consult(self, agent_id: str, target: Target) -> None:
        async with self._one_at_a_time(agent_id):
            await self._consult(agent_id, target)

    async def _consult(self, agent_id: str, target: Target) -> None:
        rt, call = await self._controllable(agent_id)
        if not call.life.can(CallInput.CONSULT) or not call.waiter.channel:
            raise ConsoleError("invalid_state", "already consulting, or nothing to hold")
        dial = self._dial_string(agent_id, target, "consult")
        self.acd.consult_offered(rt, call, target)  # a consulted agent's seat rings
        try:
            await self._dial_consulted(rt, call, dial, agent_id, target)
        except BaseException:
            if rt.call is not call or not call.consult_channel:
                self.acd.consult_released(call)  # never rang, or no longer anyone's
            raise

    async def _dial_consulted(self, rt: SeatRuntime, call: ActiveCall, dial: str,
                              agent_id: str, target: Target) -> None:
        await self._act("Setvar", Channel=call.agent_channel, Variable="CC_TARGET", Value=dial)
        await self._act("Setvar", Channel=call.agent_channel, Variable="CC_DIAL_TIMEOUT",
                        Value="30")
        held = call.life.state is CallState.HELD
        proofs = [] if held else [_parked(call.waiter.uniqueid, "hold")]
        dialled = self.acd.expect(lambda _ev: bool(call.consult_channel) or call.agent_parked
                                  or rt.call is not call)
        try:
            if held:
                await self._step("the consultation", [], "Redirect", of=(rt, call),
                                 Channel=call.agent_channel, Context="acd-agent",
                                 Exten="consult", Priority="1")
            else:
                await self._step("the consultation", proofs, "Redirect", of=(rt, call),
                                 Channel=call.waiter.channel, Context="acd-hold", Exten="s",
                                 Priority="1", ExtraChannel=call.agent_channel,
                                 ExtraContext="acd-agent", ExtraExten="consult",
                                 ExtraPriority="1")
            await self._proven(dialled, "the consultation dialled")
        finally:
            dialled.cancel()
        self._still(rt, call, CallInput.CONSULT)
        if not call.consult_channel:
            # Dial() gave up at once (nobody to ring): the caller is on hold, the agent parked.
            if not held:
                self.acd.call_moved(rt, CallInput.HOLD, SeatInput.HOLD, by=agent_id)
            raise ConsoleError("unavailable", f"{target.value} could not be dialled; the caller"
                               " is on hold")
        self.acd.call_moved(rt, CallInput.CONSULT, None if held else SeatInput.HOLD,
                            by=agent_id)

    async def consult_complete(self, agent_id: str) -> None:
        async with self._one_at_a_time(agent_id):
            rt, call = await self._controllable(agent_id)
            consulted = call.consult_channel
            if call.life.state is not CallState.CONSULTING or not consulted:
                raise ConsoleError("invalid_state", "no consultation in progress")
            await self._step("the caller joining the consulted party",
                             [_entered(call.waiter.uniqueid)], "Bridge", of=(rt, call),
                             Channel1=call.waiter.channel, Channel2=consulted, Tone="no")
            self._still(rt, call, CallInput.HANDED_ON)
            self.acd.hand_on(rt, call, CallInput.HANDED_ON,
                             Target(kind="agent" if self.acd.seats.get(call.consult_target)
                                    else "number", value=call.consult_target), by=agent_id,
                             consulted=True)

    async def consult_cancel(self, agent_id: str) -> None:
        """Hang up the consulted party (if still there) and take the caller back."""
        async with self._one_at_a_time(agent_id):
            rt, call = await self._controllable(agent_id)
            if call.life.state is not CallState.CONSULTING and not (
                    call.life.state is CallState.HELD and call.consult_target):
                raise ConsoleError("invalid_state", "no consultation in progress")
            channel = call.consult_channel
            if channel:
                futures = [self.acd.expect(_gone(channel)),
                           self.acd.expect(lambda _ev: call.agent_parked or rt.call is not call)]
                try:
                    await self.acd.hangup(channel)
                    for future in futures:
                        await self._proven(future, "the consulted party gone")
                finally:
                    for future in futures:
                        future.cancel()
            elif call.life.state is CallState.CONSULTING and not call.agent_parked:
                await self._step("the consultation stopped",
                                 [_parked(call.agent_uniqueid, "agent")], "Redirect",
                                 of=(rt, call),
                                 Channel=call.agent_channel, Context="acd-agent",
                                 Exten="held", Priority="1")
            self.acd.consult_released(call)
            call.consult_target = ""
            await self._resume(agent_id)

    async def conference(self, agent_id: str, target: Target) -> None:
        async with self._one_at_a_time(agent_id):
            rt, call = await self._controllable(agent_id)
            if not call.life.can(CallInput.CONFERENCE) or not call.waiter.channel:
                raise ConsoleError("invalid_state", "take the caller back first")
            dial = self._dial_string(agent_id, target, "conference")
            room = call.conference or f"cc-{uuid.uuid4().int % 10**12}"
            if not call.conference:
                await self._step("the conference", [_joined(call.waiter.uniqueid),
                                                    _joined(call.agent_uniqueid)],
                                 "Redirect", of=(rt, call), Channel=call.waiter.channel,
                                 Context="acd-conference", Exten=room, Priority="1",
                                 ExtraChannel=call.agent_channel,
                                 ExtraContext="acd-conference", ExtraExten=room,
                                 ExtraPriority="1")
                call.conference = room
                self._still(rt, call, CallInput.CONFERENCE)
                self.acd.call_moved(rt, CallInput.CONFERENCE, None, by=agent_id)
            try:
                await self.ami.originate(Channel=dial, Context="acd-conference", Exten=room,
                                         Priority="1", Timeout="30000", wait_s=40)
            except AmiActionError as exc:
                raise ConsoleError("unavailable", f"{target.value} did not answer") from exc
            self.acd.notify(ConferenceChanged(agent_id, call.call_id, target.value))

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
        if mode not in ("listen", "whisper", "barge"):
            raise ConsoleError("malformed", "mode is listen, whisper or barge")
        _rt, call = await self._controllable(agent_id)
        uniqueid = f"spy-{uuid.uuid4().hex[:20]}"
        self.acd.monitor_begins(Monitor(supervisor_id, agent_id, call.call_id, mode, uniqueid))
        try:
            await self.ami.originate(Channel=_phone_of(supervisor),
                                     Context="supervisor-spy", Exten=mode, Priority="1",
                                     Timeout="30000", wait_s=40, ChannelId=uniqueid,
                                     Variable=[f"CC_SPY={call.agent_channel}"])
        except AmiActionError as exc:
            self.acd.monitors.pop(uniqueid, None)
            raise ConsoleError("unavailable", "the supervisor's phone did not answer") from exc

    async def spy_stop(self, supervisor_id: str, agent_id: str) -> None:
        """End the supervisor's monitoring of ``agent_id`` (hang up their spy legs)."""
        legs = [m.uniqueid for m in self.acd.monitors.values()
                if m.supervisor_id == supervisor_id and m.agent_id == agent_id]
        if not legs:
            raise ConsoleError("invalid_state", f"you are not monitoring {agent_id}")
        for uniqueid in legs:
            await self.acd.hangup(uniqueid)
