"""The ACD's core: queues of waiting callers, the seats, and the calls between them; sans-IO.

Inputs are method calls (a caller queued, a seat command, a ring answered or failed, an Asterisk
event, the timer), each made with the clock's time; the decisions are synchronous, in memory
(``routing`` picks, ``Seat`` and ``CallLife`` move by their tables, an illegal move raises), and
what they need of the world goes out as effects (``acd/effects.py``: rows, notices, rings,
announcements, hang-ups, timers) through ``emit``, in the order they were decided. Nothing here
awaits or touches a socket: ``acd/service.py`` is the asyncio edge that carries the effects out
and feeds Asterisk's answers back; the queueing rules are unit-tested on this class with a list
for ``emit`` (``tests/unit/test_acd_core.py``).

Everything is event driven: a caller arriving, a seat becoming ready, a ring refused or a
wrap-up ending runs ``dispatch`` at once, and one timer (``ArmTimer``) covers what changes with
time alone (VIP stages, overflow, announcements).

How a call is connected (see ``asterisk_conf/extensions.conf``): the caller waits in
``[queue-hold]``; the agent's phone is originated into ``[acd-agent]`` (``Ring``), which starts
MixMonitor and ``Bridge()``s the caller in. Hold, resume, transfers, conferences and spying are
call controls (``acd/control.py``) whose proven steps come back as ``call_moved``/``hand_on``.

Trust: an agent's phone is a provisioned one (``store.agents.check_endpoint``: never a free-form
``Local/...`` into another context); a caller's number is kept only if it is a phone number
(``telephony.values.PHONE_NUMBER``), so no caller ID ever reaches ``Dial()`` as dial syntax. A ring
whose originate answer was lost with the AMI link is not guessed at: it stays *unsettled* until
Asterisk's channel list says whether the agent answered (connected), still rings (hung up, the
seat Ready again) or is gone (the caller keeps the place).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

from callcenter.acd import routing
from callcenter.acd.calls import CallInput, CallState
from callcenter.acd.effects import (
    Announce,
    ArmTimer,
    ArmWrapUp,
    CancelWrapUp,
    Emit,
    Hangup,
    Requeue,
    Ring,
    Row,
)
from callcenter.acd.lineup import Lineup
from callcenter.acd.notices import (
    CallConnected,
    CallEnded,
    CallHeld,
    CallOffered,
    CallResumed,
    ConsultChanged,
    MonitorChanged,
    Notice,
    Offer,
    QueueLogged,
    QueuesChanged,
    SeatChanged,
    WrapUpOverdue,
)
from callcenter.acd.records import ActiveCall, Monitor, SeatRuntime, Waiter
from callcenter.acd.seat import PHONE_GONE, Seat, SeatInput, SeatState
from callcenter.acd.targets import Target
from callcenter.broker.interface import Tier
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import ConfigError, ConsoleError
from callcenter.ivr.runner import sound
from callcenter.ivr.speech import say_integer
from callcenter.phones.dialrules import DEFAULT_RULES, dialable_or_empty
from callcenter.store.agents import SIM_PHONE, AgentRecord, check_endpoint
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, DialBegin, OtherEvent
from callcenter.telephony.ami_events import Hangup as HangupEvent
from callcenter.telephony.values import phone_number_or_empty

log = logging.getLogger(__name__)

#: seat states whose agent will be free soon (``routing.Present``)
_PRESENT = frozenset({SeatState.READY, SeatState.RINGING, SeatState.ON_CALL, SeatState.ON_HOLD,
                      SeatState.WRAP_UP})
#: a seat whose phone is in use: its phone is not changed under it
_BUSY = frozenset({SeatState.RINGING, SeatState.ON_CALL, SeatState.ON_HOLD})

#: ``ChannelState`` of an answered channel (AST_STATE_UP)
_UP = "6"
#: how long a call goes on after its phone stopped answering qualify probes before the caller
#: is taken back: the phones link's one re-check (Asterisk's ``qualify_timeout``, 3 s) and room
#: for a busy machine
PHONE_CONFIRM_S: Final = 10.0


class _Doubt(NamedTuple):
    """A call kept on a phone in doubt (``AcdCore._doubt``)."""

    call_id: str
    since: float
    #: the phone unregistered (while Asterisk was out of reach): lost whatever comes after
    gone: bool


def _answered_at(row: Mapping[str, str], now: float) -> float:
    """When an agent leg answered while the AMI link was down, as well as Asterisk tells:
    now less the leg's age (``Duration`` HH:MM:SS counts from its creation, i.e. the ring's
    start). Talk time is then long by at most the ring time (``ring_timeout_s``), where the
    settle time would cut it short by the whole outage."""
    parts = row.get("Duration", "").split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return now
    hours, minutes, seconds = (int(p) for p in parts)
    return now - min(hours * 3600 + minutes * 60 + seconds, 86400)


def _offer(waiter: Waiter, now: float, direct: bool, context: Mapping[str, str]) -> Offer:
    """What a seat is told of ``waiter`` when its phone rings (the screen pop's source)."""
    return Offer(waiter.call_id, waiter.queue, waiter.tier.value, waiter.account, waiter.phone,
                 waiter.manager, waiter.callback, direct, waiter.arrived_at, now, dict(context))


def _is_answered(row: Mapping[str, str]) -> bool:
    """A ``CoreShowChannels`` row of a channel that answered (up, or in a bridge)."""
    return row.get("ChannelState") == _UP or bool(row.get("BridgeId"))


def _tier(value: str) -> Tier:
    try:
        return Tier(value)
    except ValueError:
        return Tier.ORDINARY


class AcdCore:
    """The ACD's state and decisions. ``emit`` receives every effect (``acd/effects.py``)."""

    def __init__(self, settings: AcdSettings, emit: Emit,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._emit = emit
        self.queues: dict[str, QueueSettings] = {q.name: q for q in settings.queues}
        self.policies = {q.name: _policy(q, ()) for q in settings.queues}
        self.waiting: dict[str, dict[str, Waiter]] = {q: {} for q in self.queues}
        #: per queue, the routing views of its waiters in line order (``acd/lineup.py``), kept
        #: with ``waiting`` by ``_line_put``/``_line_drop`` so a dispatch ranks nobody afresh
        self.lines: dict[str, Lineup] = {q: Lineup() for q in self.queues}
        self.seats: dict[str, SeatRuntime] = {}
        #: the agents as the directory (database) has them; a seat may use another phone
        self.directory: dict[str, AgentRecord] = {}
        #: Asterisk is reachable (the edge says so: ``attach``, ``link_lost``, ``resync``):
        #: without it nobody is announced to, and no long-wait offer is spent on a caller who
        #: cannot hear it
        self.linked = False
        self._uniqueids: dict[str, tuple[str, str]] = {}   # uniqueid -> (role, agent or call)
        #: supervisors' spy legs by their uniqueid
        self.monitors: dict[str, Monitor] = {}
        #: ``batch`` depth, and whether a dispatch was asked for inside it
        self._batching = 0
        self._dispatch_due = False
        #: agent id -> (call id, agent uniqueid, caller channel, queue, connected at): the calls
        #: the seats were on when the engine stopped, until ``resync`` re-attaches them
        self._pending_calls: dict[str, tuple[str, str, str, str, float]] = {}
        self.avg_handle_s = 120.0
        #: schedule name -> open now? (None: no such schedule). The engine wires it to the
        #: IVR's schedules and the back office's clock; without it every queue is open.
        self.is_open: Callable[[str], bool | None] | None = None
        #: the numbers agents may dial (phones/dialrules.py); the engine sets the site's
        self.dial_rules = DEFAULT_RULES
        #: endpoint -> why it cannot ring now (None: it can). The engine wires it to the
        #: phones' registrations (phones/link.py); without it every phone counts as ringable.
        self.phone_check: Callable[[str], str | None] | None = None
        #: agent id -> (call id, since): calls going on while their phone does not answer
        #: qualify probes (``phone_gone(unreachable=True)``), until ``PHONE_CONFIRM_S`` is up
        self._phone_doubts: dict[str, _Doubt] = {}

    # -- life cycle ------------------------------------------------------------------------

    def load(self, agents: Iterable[AgentRecord]) -> None:
        """The agents directory at start: one seat each, logged out until restored."""
        agents = list(agents)
        vip = frozenset(a.agent_id for a in agents if a.vip_team)
        self.policies = {q.name: _policy(q, vip) for q in self.queues.values()}
        now = self.clock()
        for agent in map(self._provisioned, agents):
            self.seats[agent.agent_id] = SeatRuntime(agent, Seat(agent.agent_id, now=now))
            self.directory[agent.agent_id] = agent

    def add_agent(self, agent: AgentRecord) -> None:
        """An agent created or changed while running (the directory is the database): the next
        offer routes by the new record (skills, VIP team, phone). A seat working from another
        phone (hot-desking) keeps it unless the record's phone changed; a seat ringing or in a
        call keeps its phone until that call is over (``next_endpoint``); a Ready seat whose
        new phone cannot ring goes Not Ready, as when a phone is lost."""
        agent = self._provisioned(agent)
        old = self.directory.get(agent.agent_id)
        self.directory[agent.agent_id] = agent
        if old is None or old.vip_team != agent.vip_team:
            vip = frozenset(a.agent_id for a in self.directory.values() if a.vip_team)
            self.policies = {q.name: _policy(q, vip) for q in self.queues.values()}
        rt = self.seats.get(agent.agent_id)
        if rt is None:
            self.seats[agent.agent_id] = SeatRuntime(agent, Seat(agent.agent_id, now=self.clock()))
            self.dispatch()
            return
        phone_moved = old is None or old.endpoint != agent.endpoint
        endpoint = agent.endpoint if phone_moved else rt.agent.endpoint
        if endpoint != rt.agent.endpoint and (rt.call is not None or rt.seat.state in _BUSY):
            rt.next_endpoint = endpoint   # this call's phone stays until it is over
            endpoint = rt.agent.endpoint
        rt.agent = dataclasses.replace(agent, endpoint=endpoint)
        if phone_moved and rt.seat.state is SeatState.READY and rt.call is None:
            problem = self.phone_check(endpoint) if self.phone_check and endpoint \
                else (None if endpoint else "no phone")
            if problem is not None:
                self._apply(rt, SeatInput.NOT_READY, self.clock(), reason=PHONE_GONE,
                            by="system")
        self.dispatch()

    def _provisioned(self, agent: AgentRecord) -> AgentRecord:
        """``agent`` as the directory has it, without a phone that is not provisioned (written
        by an older version or by hand): that seat has no phone until the agent chooses one."""
        try:
            check_endpoint(agent.endpoint, self.settings.sim_phone_contexts)
        except ConfigError as exc:
            log.error("agent %s: phone refused, %s; no phone until one is chosen (use_phone) or"
                      " set with 'callcenter agents add'", agent.agent_id, exc)
            return dataclasses.replace(agent, endpoint="")
        return agent

    def restore_seats(self, seats: Iterable[Sequence[Any]],
                      calls: Iterable[Sequence[Any]]) -> None:
        """The seats as the engine left them (``RESTORE_SEATS`` rows) and the calls they were on
        (``RESTORE_CALLS`` rows): calls are re-attached by ``resync`` once Asterisk's channels
        are known; until then a seat that was busy is not offered anything."""
        for agent_id, state, reason, since, ready_since, calls_taken in seats:
            rt = self.seats.get(str(agent_id))
            if rt is None:
                continue
            rt.seat.state, rt.seat.reason, rt.seat.since = \
                SeatState(str(state)), str(reason), float(since)
            rt.ready_since = float(ready_since) if ready_since is not None else None
            rt.calls_taken = int(calls_taken)
        self._pending_calls = {
            str(agent_id): (str(call_id), str(agent_ch), str(caller_ch), str(queue), float(at))
            for agent_id, call_id, agent_ch, caller_ch, queue, at in calls}

    def restore_waiting(self, rows: Iterable[Sequence[Any]]) -> None:
        """The callers waiting when the engine stopped (``RESTORE_WAITING`` rows, in order)."""
        for (call_id, queue, tier, arrived, channel, uniqueid, account, manager, phone,
             callback, context, position_key) in rows:
            if queue not in self.waiting:
                log.warning("caller %s waited in queue %s, which no longer exists; "
                            "moved to %s", call_id, queue, next(iter(self.queues)))
                queue = next(iter(self.queues))
            number = phone_number_or_empty(str(phone))
            waiter = Waiter(str(call_id), str(queue), _tier(str(tier)), float(arrived),
                            str(channel), str(uniqueid), str(account), str(manager), number,
                            bool(callback), json.loads(str(context)),
                            position_key=None if position_key is None else float(position_key))
            if waiter.callback and not number:
                # kept by an older version with an unchecked caller ID: never dialled
                self._drop_callback(waiter, self.clock())
                continue
            self.waiting[str(queue)][waiter.call_id] = waiter
            self._line_put(waiter)

    def reconcile(self, live: Mapping[str, str], lost_at: float | None = None) -> None:
        """After (re)connecting, once the lost rings are settled (``restore_rings``,
        ``settle_rings``): ``live`` maps every channel's uniqueid to its name; ``lost_at``
        (our clock) is when the link was lost or the engine last known alive: what ended
        unseen ended then (talk and wait times are not stretched to now).

        Waiting callers whose channel is gone abandoned while we
        could not see them; seats that were on a call keep it if the agent's leg still exists,
        else go to wrap-up. A ring the engine was restarted in is settled the same way when its
        agent leg still exists (it may have been answered meanwhile), else withdrawn; the caller
        keeps the place.
        """
        now = self.clock()
        for waiting in self.waiting.values():
            for waiter in list(waiting.values()):
                ringer = self.seats.get(waiter.ringing) if waiter.ringing else None
                if ringer is None or ringer.call is None or ringer.call.waiter is not waiter:
                    waiter.ringing = ""
                if waiter.callback or waiter.uniqueid in live:
                    self._uniqueids[waiter.uniqueid] = ("caller", waiter.call_id)
                    continue
                self._abandon(waiter, _unseen_end(lost_at, waiter.arrived_at, now),
                              "lost while the engine was down")
        pending, self._pending_calls = self._pending_calls, {}
        for agent_id, rt in self.seats.items():
            state = rt.seat.state
            call = rt.call
            if call is not None and call.answered and call.agent_uniqueid not in live:
                # ended while the AMI link was down
                self._call_ended(rt, call, _unseen_end(lost_at, call.connected_at or now, now))
                continue
            if call is not None or state not in (SeatState.RINGING, SeatState.ON_CALL,
                                                 SeatState.ON_HOLD):
                continue
            call_id, agent_uid, caller_channel, queue, connected = pending.get(
                agent_id, ("", "", "", "", now))
            if state is SeatState.RINGING:
                if agent_uid in live:
                    self._emit(Hangup(agent_uid))
                self._restore(rt, SeatState.READY, "", now)
            elif agent_uid in live:
                waiter = Waiter(call_id, queue, Tier.ORDINARY, connected, caller_channel, "")
                rt.call = ActiveCall(waiter, agent_uid, connected, agent_channel=live[agent_uid],
                                     connected_at=connected,
                                     state=CallState.HELD if state is SeatState.ON_HOLD
                                     else CallState.CONNECTED)
                self._uniqueids[agent_uid] = ("agent", agent_id)
            else:
                if call_id:  # it ended while the engine was down: its talk time still counts
                    end = _unseen_end(lost_at, connected, now)
                    self._qlog(end, queue, call_id, "complete", agent=agent_id,
                               talk_s=end - connected, detail={"why": "ended unseen"})
                    self._emit_row("UPDATE recordings SET ended_at = ? WHERE call_id = ?"
                                   " AND agent_id = ? AND ended_at IS NULL",
                                   (end, call_id, agent_id))
                self._restore(rt, SeatState.WRAP_UP, "", now)
                self._arm_wrap_up(rt)
        self.dispatch()

    def link_lost(self) -> None:
        """The AMI link is down: announcements wait for it (``resync`` brings it back)."""
        self.linked = False

    def restore_rings(self, live: Mapping[str, str]) -> None:
        """After a restart, a seat that was ringing a waiting caller whose agent leg Asterisk
        still has: the outcome is not known (answered and bridged while the engine was down, or
        still ringing), so the ring is re-attached *unsettled* for ``settle_rings``."""
        for agent_id, (call_id, agent_uid, _caller, _queue, since) in \
                list(self._pending_calls.items()):
            rt = self.seats.get(agent_id)
            waiter = self.find_waiter(call_id=call_id)
            if rt is None or rt.seat.state is not SeatState.RINGING or rt.call is not None \
                    or agent_uid not in live or waiter is None or waiter.callback:
                continue
            del self._pending_calls[agent_id]
            call = ActiveCall(waiter, agent_uid, since, agent_channel=live[agent_uid],
                              state=CallState.UNSETTLED)
            call.recording = self._recording_path(call_id, agent_id, since)
            rt.call, waiter.ringing = call, agent_id
            self._uniqueids[agent_uid] = ("agent", agent_id)

    def _recording_path(self, call_id: str, agent_id: str, at: float) -> str:
        """Where the agent's leg records the call (the dialplan accepts only this shape)."""
        stamp = time.strftime("%Y%m%d", time.localtime(at))
        return f"{self.settings.recordings_dir}/{stamp}/{call_id}-{agent_id}.wav"

    def _restore(self, rt: SeatRuntime, state: SeatState, reason: str, now: float) -> None:
        old = rt.seat.state
        rt.seat.state, rt.seat.reason, rt.seat.since = state, reason, now
        rt.ready_since = now if state is SeatState.READY else None
        self._log_seat(rt, old, "restore", "system")

    # -- batches ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run several moves as one: ``dispatch`` waits until the last of them is made (a seat
        made ready inside a command is offered a call only once the command is complete, so
        the command's own later moves never meet a seat that started ringing meanwhile)."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching and self._dispatch_due:
                self.dispatch()

    # -- queue entry ---------------------------------------------------------------------------

    def enqueue(self, call_id: str, queue: str, channel: str, uniqueid: str,
                context: Mapping[str, str], phone: str = "", manager: str = "",
                position_key: float | None = None, exclude: Iterable[str] = ()) -> Waiter:
        """A caller joins ``queue``. ``phone`` (the caller ID) is kept only if it is a phone
        number: else no call-back is possible.

        A queue ``acd.queues`` does not have is a configuration error (``flows check`` refuses a
        flow naming one, given the settings): the caller still reaches a person, in the first
        configured queue (the catch-all, see docs/flows.md), and the error is logged with the
        queue asked for, which the call's context keeps (``queue_asked``)."""
        if phone and not phone_number_or_empty(phone):
            log.warning("call %s: the caller ID is not a phone number; no call-back possible",
                        call_id)
            phone = ""
        if queue not in self.queues:
            catch_all = next(iter(self.queues))
            log.error("call %s asked for queue %r, which acd.queues does not have (queues: %s);"
                      " the caller waits in %s, the catch-all. Fix the flow or the settings"
                      " ('callcenter flows check' names the line)", call_id, queue,
                      ", ".join(self.queues), catch_all)
            context = {**context, "queue_asked": queue}
            queue = catch_all
        now = self.clock()
        tier = _tier(context.get("customer.tier") or context.get("known.tier") or "")
        account = context.get("customer.account", "")
        waiter = Waiter(call_id, queue, tier, now, channel, uniqueid, account, manager, phone,
                        context=dict(context), position_key=position_key, announced_at=now,
                        excluded=set(exclude))
        self.waiting[queue][call_id] = waiter
        self._line_put(waiter)
        self._uniqueids[uniqueid] = ("caller", call_id)
        self._emit_row(
            "INSERT OR REPLACE INTO queue_waiting (call_id, queue, tier, arrived_at, channel,"
            " uniqueid, account, manager, phone, callback, context, position_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (call_id, queue, tier.value, now, channel, uniqueid, account, manager, phone,
             json.dumps(dict(context)), position_key))
        self._qlog(now, queue, call_id, "enter", tier=tier.value)
        log.info("call %s queued in %s (tier %s)", call_id, queue, tier.value)
        if not self.queue_open(queue):
            self._closed(waiter)
        self.dispatch()
        self._emit_queues()
        return waiter

    def find_waiter(self, *, uniqueid: str = "", call_id: str = "") -> Waiter | None:
        for queue in self.waiting.values():
            for waiter in queue.values():
                if (uniqueid and waiter.uniqueid == uniqueid) or \
                        (call_id and waiter.call_id == call_id):
                    return waiter
        return None

    def keep_place_by_callback(self, waiter: Waiter, phone: str) -> None:
        """The caller pressed 1: they hang up but keep their place; the agent calls back.
        ``phone`` must be a phone number (``telephony.values.check_phone_number``)."""
        if not phone_number_or_empty(phone):
            raise ConsoleError("bad_number", "a call-back needs the caller's phone number")
        waiter.callback, waiter.phone = True, phone
        waiter.channel = ""
        self._emit_row("UPDATE queue_waiting SET callback = 1, phone = ?, channel = ''"
                       " WHERE call_id = ?", (phone, waiter.call_id))
        self._qlog(self.clock(), waiter.queue, waiter.call_id, "callback")
        self._emit_queues()

    # -- seats ---------------------------------------------------------------------------------

    def seat(self, agent_id: str) -> SeatRuntime:
        rt = self.seats.get(agent_id)
        if rt is None:
            raise ConsoleError("not_found", f"no agent {agent_id}")
        return rt

    def set_state(self, agent_id: str, state: str, reason: str = "", *,
                  by: str = "", force: bool = False) -> SeatRuntime:
        """An agent (or, with ``force``, a supervisor; ``by="system"``, the engine) changes the
        seat's state. The moves are made as one (``batch``): a seat made ready is offered a
        call only once they are all made. An agent leaves wrap-up only after saving the
        call's disposition when it is required (``disposition_saved``)."""
        rt = self.seat(agent_id)
        target = SeatState(state)
        if rt.disposition_due and not force and by != "system" \
                and rt.seat.state is SeatState.WRAP_UP and target is not SeatState.WRAP_UP:
            raise ConsoleError("disposition_required",
                               "save the call's disposition (the wrap-up form) first")
        with self.batch():
            self._set_state(rt, target, reason, by=by, force=force)
        if rt.seat.state is SeatState.LOGGED_OUT:
            rt.agent = self.directory.get(agent_id, rt.agent)  # back to their own phone
        return rt

    def _set_state(self, rt: SeatRuntime, target: SeatState, reason: str, *, by: str,
                   force: bool) -> None:
        now = self.clock()
        seat = rt.seat
        if force:
            if seat.state is SeatState.RINGING and rt.call is not None:
                self._withdraw_offer(rt)
            if seat.state is SeatState.WRAP_UP:
                self._finish_wrap_up(rt, cancel_only=True)
                rt.disposition_due = ""
            self._apply(rt, SeatInput.FORCE, now, reason=reason if target is
                        SeatState.NOT_READY else "", by=by, target=target)
            self.dispatch()
        elif target is SeatState.READY:
            if not rt.agent.endpoint:
                raise ConsoleError("invalid_state", "no phone to ring: choose one first (your"
                                   " extension)")
            problem = self.phone_check(rt.agent.endpoint) if self.phone_check else None
            if problem is not None:
                raise ConsoleError("invalid_state", problem)
            if seat.state is SeatState.LOGGED_OUT:
                self._apply(rt, SeatInput.LOGIN, now, by=by)
            if seat.state is SeatState.WRAP_UP:
                self._finish_wrap_up(rt)
            if seat.state is not SeatState.READY:
                self._apply(rt, SeatInput.READY, now, by=by)
        elif target is SeatState.NOT_READY:
            if seat.state is SeatState.LOGGED_OUT:
                self._apply(rt, SeatInput.LOGIN, now, by=by)
                if reason and reason != "login":
                    self._apply(rt, SeatInput.READY, now, by=by)
                    self._apply(rt, SeatInput.NOT_READY, now, reason=reason, by=by)
            elif seat.state is not SeatState.NOT_READY or reason != seat.reason:
                if seat.state is SeatState.NOT_READY:
                    self._apply(rt, SeatInput.READY, now, by=by)
                if seat.state is SeatState.WRAP_UP:
                    self._finish_wrap_up(rt, cancel_only=True)
                self._apply(rt, SeatInput.NOT_READY, now, reason=reason or "break", by=by)
        else:
            if seat.state is SeatState.WRAP_UP:
                self._finish_wrap_up(rt, cancel_only=True)
            self._apply(rt, SeatInput.LOGOUT, now, by=by)
        if seat.state is not SeatState.WRAP_UP:
            rt.disposition_due = ""

    def phone_gone(self, endpoint: str, *, unreachable: bool = False) -> None:
        """A phone can no longer ring: Ready seats on it go Not Ready with the reason, so no call
        is offered to a phone that cannot ring; Ready is refused until the phone is back.

        A seat in a call with a queued caller whose phone is gone (unregistered: a browser
        closed, its WebSocket with it) lost it mid-call: the caller goes back to the queue, ahead
        of those who came later, and the seat goes Not Ready with the same reason. A phone that
        is still registered but stopped answering qualify probes (``unreachable``: one lost
        OPTIONS, a moment's stall, or a phone or network really gone) may still carry the call:
        the call goes on, and only if the phone has not answered again ``PHONE_CONFIRM_S``
        later (the phones link asks it again at once) is the caller taken back."""
        now = self.clock()
        for rt in self.seats.values():
            if rt.agent.endpoint != endpoint:
                continue
            call = rt.call
            if rt.seat.state is SeatState.READY:
                self._apply(rt, SeatInput.NOT_READY, now, reason=PHONE_GONE, by="system")
            elif call is not None and self._requeueable(call):
                if not unreachable and self.linked:
                    self._phone_lost_in_call(rt, call, now)
                else:
                    self._doubt(rt, call, now, gone=not unreachable)

    def _doubt(self, rt: SeatRuntime, call: ActiveCall, now: float, *, gone: bool) -> None:
        """Keep ``call`` on a phone in doubt for ``PHONE_CONFIRM_S``: one that stopped
        answering probes, or (``gone``) one unregistered while Asterisk is out of reach (the
        caller cannot be moved before; a new registration does not bring the old call back)."""
        agent_id = rt.agent.agent_id
        held = self._phone_doubts.get(agent_id)
        if held is not None and held.call_id == call.call_id:
            if gone and not held.gone:
                self._phone_doubts[agent_id] = held._replace(gone=True)
            return
        self._phone_doubts[agent_id] = _Doubt(call.call_id, now, gone)
        if gone:
            log.warning("agent %s lost their phone during call %s with Asterisk out of reach:"
                        " the caller goes back to %s once it is back", agent_id, call.call_id,
                        call.waiter.queue)
        else:
            log.warning("agent %s's phone stopped answering during call %s: the call goes on;"
                        " the caller goes back to %s if it does not answer again within"
                        " %.0f s", agent_id, call.call_id, call.waiter.queue, PHONE_CONFIRM_S)
        self._arm_timer(now)

    def phone_silent_since(self, agent_id: str) -> float | None:
        """Since when the agent's call has been kept on a phone in doubt (put forward while
        Asterisk is out of reach), or None."""
        doubt = self._phone_doubts.get(agent_id)
        return doubt.since if doubt is not None else None

    def phone_back(self, endpoint: str) -> None:
        """A phone can ring again (it answered a probe, or registered again): calls on it that
        were in doubt for a missed probe go on; a later miss starts a new doubt. (A call whose
        phone unregistered stays lost: its media went with the old registration.)"""
        for rt in self.seats.values():
            doubt = self._phone_doubts.get(rt.agent.agent_id)
            if rt.agent.endpoint != endpoint or doubt is None or doubt.gone:
                continue
            del self._phone_doubts[rt.agent.agent_id]
            log.info("agent %s's phone answers again: the call goes on", rt.agent.agent_id)

    @staticmethod
    def _requeueable(call: ActiveCall) -> bool:
        """A queued caller's live answered call (not one already handed on): one the queue can
        take back (not a direct call or a call-back: nobody waits for those in a queue)."""
        waiter = call.waiter
        return (call.answered and not waiter.direct and not waiter.callback
                and bool(waiter.channel))

    def _phone_doubts_due(self, now: float) -> None:
        """Calls whose phone stopped answering ``PHONE_CONFIRM_S`` ago: taken back from a phone
        still silent; left alone on one that answered again, or once the call is over; put off
        while the AMI link is down (the caller cannot be moved then)."""
        for agent_id, doubt in list(self._phone_doubts.items()):
            if now < doubt.since + PHONE_CONFIRM_S:
                continue
            if not self.linked:  # the caller could not be moved: look again later
                self._phone_doubts[agent_id] = doubt._replace(since=now)
                continue
            del self._phone_doubts[agent_id]
            rt = self.seats.get(agent_id)
            call = rt.call if rt is not None else None
            if rt is None or call is None or call.call_id != doubt.call_id \
                    or not self._requeueable(call):
                continue
            endpoint = rt.agent.endpoint
            if not doubt.gone and (self.phone_check is None
                                   or self.phone_check(endpoint) is None):
                log.info("agent %s's phone answers again: call %s goes on", agent_id,
                         doubt.call_id)
                continue
            self._phone_lost_in_call(rt, call, now)

    def _phone_lost_in_call(self, rt: SeatRuntime, call: ActiveCall, now: float) -> None:
        waiter, agent_id = call.waiter, rt.agent.agent_id
        self._phone_doubts.pop(agent_id, None)
        if call.life.state is CallState.CONFERENCED:
            # the caller talks on with the third party in the room: the agent leaves it, as by
            # hanging up (the leg's hang-up ends the seat's call, the seat then not ready)
            log.warning("agent %s lost their phone during the conference on call %s: the agent"
                        " leaves it, the others talk on", agent_id, waiter.call_id)
            self._emit(Hangup(call.agent_channel or call.agent_uniqueid))
            return
        rt.call, rt.last_call = None, call
        self._uniqueids.pop(call.agent_uniqueid, None)  # its hangup is ours, not the call's end
        self._qlog(now, waiter.queue, waiter.call_id, "agent_lost", agent=agent_id,
                   talk_s=now - (call.connected_at or now), detail={"why": PHONE_GONE})
        self._emit_row("UPDATE recordings SET ended_at = ? WHERE call_id = ? AND agent_id = ?",
                       (now, waiter.call_id, agent_id))
        log.warning("agent %s lost their phone during call %s: the caller goes back to %s",
                    agent_id, waiter.call_id, waiter.queue)
        call.life.apply(CallInput.REQUEUE, now)
        # a consultation the agent had open ends with the agent: its leg hung up, a consulted
        # agent's seat free again (as ``_call_ended``)
        if call.consult_channel:
            self._emit(Hangup(call.consult_channel))
        self.consult_released(call)
        self._emit(CallEnded(agent_id, waiter.call_id, 0, answered=True))
        self._apply(rt, SeatInput.CALL_ENDED, now)
        self._finish_wrap_up(rt, cancel_only=True)
        self._apply(rt, SeatInput.NOT_READY, now, reason=PHONE_GONE, by="system")
        # out of the dead bridge into [queue-hold] first (then the agent's leg ends without
        # taking the caller along), queued again with the place, then the agent's leg hung up
        self._emit(Requeue(waiter, waiter.queue, agent_id,
                           hang_up=call.agent_channel or call.agent_uniqueid))

    def requeued(self, waiter: Waiter, queue: str, exclude: str) -> None:
        """A caller moved back to ``[queue-hold]`` (``Requeue``) joins ``queue`` again with
        their place, not offered straight back to the agent they came from (``exclude``)."""
        self.enqueue(waiter.call_id, queue, waiter.channel, waiter.uniqueid, waiter.context,
                     phone=waiter.phone, manager=waiter.manager,
                     position_key=waiter.position_key or waiter.arrived_at, exclude=[exclude])

    def use_phone(self, agent_id: str, phone: str) -> SeatRuntime:
        """The agent works from another phone (hot-desking) until logging out. Only provisioned
        phones: an extension (digits, made a dial string by ``phone_endpoint``), a phone of the
        agents directory, or a simulated phone in a ``sim_phone_contexts`` context; never a
        free-form ``Local/...`` (into ``[supervisor-spy]`` it would listen in on calls)."""
        rt = self.seat(agent_id)
        if rt.seat.state in (SeatState.RINGING, SeatState.ON_CALL, SeatState.ON_HOLD):
            raise ConsoleError("invalid_state", "finish the call before changing phones")
        contexts = self.settings.sim_phone_contexts
        if re.fullmatch(r"[0-9]{2,12}", phone):
            endpoint = self.settings.phone_endpoint.format(phone=phone)
        elif phone in {a.endpoint for a in self.directory.values()} or SIM_PHONE.fullmatch(phone):
            endpoint = phone
        else:
            endpoint = ""
        try:
            check_endpoint(endpoint, contexts)
        except ConfigError:
            log.warning("agent %s asked for a phone that is not provisioned; refused", agent_id)
            sims = ", ".join(f"Local/<digits>@{c}" for c in contexts)
            raise ConsoleError("forbidden", "not a provisioned phone: give your extension"
                               " (digits), a phone of the agents directory"
                               + (f" or a simulated phone ({sims})" if sims else "")) from None
        rt.agent = dataclasses.replace(rt.agent, endpoint=endpoint)
        self._log_seat(rt, rt.seat.state, f"phone {endpoint}", agent_id)
        return rt

    def _apply(self, rt: SeatRuntime, what: SeatInput, now: float, *, reason: str = "",
               by: str = "", target: SeatState | None = None) -> None:
        old = rt.seat.state
        change = rt.seat.apply(what, now, reason=reason, by=by, target=target)
        if rt.next_endpoint and rt.call is None and change.to_state not in _BUSY:
            # a phone changed in the directory during the call: the next call rings it
            rt.agent = dataclasses.replace(rt.agent, endpoint=rt.next_endpoint)
            rt.next_endpoint = ""
        rt.ready_since = now if change.to_state is SeatState.READY else None
        self._log_seat(rt, old, what.value, change.by)
        if change.to_state is SeatState.READY or (old in _PRESENT) != (change.to_state in
                                                                      _PRESENT):
            self.dispatch()  # a seat free, or presence changed (a VIP stage may be skipped)

    def _log_seat(self, rt: SeatRuntime, old: SeatState, what: str, by: str) -> None:
        seat = rt.seat
        self._emit_row("INSERT INTO seat_log (at, agent_id, from_state, to_state, input, reason,"
                       " by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (seat.since, rt.agent.agent_id, old.value, seat.state.value, what,
                        seat.reason, by))
        call = rt.call
        self._emit_row(
            "INSERT OR REPLACE INTO seats (agent_id, state, reason, since, ready_since,"
            " calls_taken, call_id, agent_channel, caller_channel)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rt.agent.agent_id, seat.state.value, seat.reason, seat.since, rt.ready_since,
             rt.calls_taken, call.call_id if call else "", call.agent_uniqueid if call else "",
             call.waiter.channel if call else ""))
        self._emit(SeatChanged(rt.agent.agent_id, rt.data(), old.value))

    def _arm_wrap_up(self, rt: SeatRuntime) -> None:
        rt.wrap_up_due = self.clock() + self.settings.wrap_up_s
        self._emit(ArmWrapUp(rt.agent.agent_id, self.settings.wrap_up_s))

    def wrap_up_expired(self, agent_id: str) -> None:
        """The wrap-up timer (``ArmWrapUp``) fired."""
        rt = self.seats.get(agent_id)
        if rt is None:
            return
        rt.wrap_up_due = None
        if rt.seat.state is not SeatState.WRAP_UP:
            return
        if rt.disposition_due:
            # Not made ready with the form empty: the agent and supervisors are told.
            log.info("agent %s: wrap-up time over, disposition of %s not saved yet",
                     agent_id, rt.disposition_due)
            self._emit(WrapUpOverdue(agent_id, rt.disposition_due, rt.seat.since))
            return
        self._finish_wrap_up(rt)

    def disposition_saved(self, agent_id: str, call_id: str) -> None:
        """The agent saved the wrap-up of ``call_id``: the seat may be ready again."""
        rt = self.seat(agent_id)
        if rt.disposition_due == call_id:
            rt.disposition_due = ""

    def _finish_wrap_up(self, rt: SeatRuntime, cancel_only: bool = False) -> None:
        if rt.wrap_up_due is not None:
            rt.wrap_up_due = None
            self._emit(CancelWrapUp(rt.agent.agent_id))
        if not cancel_only:
            rt.disposition_due = ""
            now = self.clock()
            problem = self.phone_check(rt.agent.endpoint) if self.phone_check else None
            with self.batch():  # never offered a call between the two moves
                self._apply(rt, SeatInput.WRAP_DONE, now)
                if problem is not None:
                    # the phone went during the call or its wrap-up: not ready, as phone_gone
                    self._apply(rt, SeatInput.NOT_READY, now, reason=PHONE_GONE, by="system")

    # -- routing -------------------------------------------------------------------------------

    @staticmethod
    def _served_closed(waiter: Waiter) -> bool:
        """Served while the queue is closed: a caller who was already waiting when it closed
        (the queue is worked off). Call-backs and callers who arrived closed (and were told
        so) wait for the opening."""
        return not waiter.callback and not waiter.arrived_closed

    def queue_open(self, name: str) -> bool:
        hours = self.queues[name].hours
        if hours is None or self.is_open is None:
            return True
        return self.is_open(hours) is not False

    def _closed(self, waiter: Waiter) -> None:
        """A caller reached a closed queue: per ``closed_action``, offer a call-back that keeps
        the place (served when the queue opens) or say when agents are there and hang up."""
        waiter.told_long_wait = waiter.arrived_closed = True
        action = self.queues[waiter.queue].closed_action
        exten = "closed-bye" if action == "hangup" else "closed"
        self._qlog(self.clock(), waiter.queue, waiter.call_id, "closed",
                   detail={"action": action})
        self._emit(Announce(waiter, exten, sound(f"{waiter.lang}/agent_closed_queue")))

    def _line_put(self, waiter: Waiter) -> None:
        """``waiter`` joined its queue, or what routing sees of it changed (exclusions)."""
        self.lines[waiter.queue].put(waiter.view(self.policies[waiter.queue].skill))

    def _line_drop(self, waiter: Waiter) -> None:
        """``waiter`` left its queue (answered, gone, moved)."""
        line = self.lines.get(waiter.queue)
        if line is not None:
            line.drop(waiter.call_id)

    def _line(self, name: str) -> Lineup:
        """Queue ``name``'s lineup; rebuilt if it does not hold as many calls as the queue has
        waiters (someone wrote to ``waiting`` directly: a test, say)."""
        line, queue = self.lines[name], self.waiting[name]
        if len(line) != len(queue):
            skill = self.policies[name].skill
            line = self.lines[name] = Lineup(w.view(skill) for w in queue.values())
        return line

    def dispatch(self) -> None:
        """Offer waiting calls to ready seats, best first, until nothing more fits.

        Each queue pairs its callers with the free seats in one pass (``routing.assignments``);
        pairs from all queues are taken by priority, and a seat two queues both wanted goes to
        the higher priority; the queue that lost it is paired again with the seats left.
        """
        if self._batching:
            self._dispatch_due = True
            return
        self._dispatch_due = False
        now = self.clock()
        present = self.present()
        free = {rt.agent.agent_id: rt for rt in self.seats.values()
                if rt.seat.state is SeatState.READY and rt.call is None and rt.agent.endpoint}
        offered: set[str] = set()
        while free:
            views = [routing.SeatView(rt.agent.agent_id, rt.ready_since, rt.agent.skills,
                                      rt.calls_taken) for rt in free.values()]
            pairs: list[tuple[float, Waiter, str]] = []
            for name, queue in self.waiting.items():
                policy, is_open = self.policies[name], self.queue_open(name)

                def passed(call: routing.WaitingCall, queue: dict[str, Waiter] = queue,
                           is_open: bool = is_open) -> bool:
                    w = queue[call.call_id]
                    return bool(w.ringing) or w.call_id in offered or not (
                        is_open or self._served_closed(w))

                for pick in routing.assignments(self._line(name), views, policy, now,
                                                present=present, skip=passed):
                    waiter = queue[pick.call_id]
                    pairs.append((routing.priority(waiter.view(policy.skill), policy, now),
                                  waiter, pick.agent_id))
            if not pairs:
                break
            pairs.sort(key=lambda pair: -pair[0])
            conflict = False
            for _, waiter, agent_id in pairs:
                rt = free.pop(agent_id, None)
                if rt is None:
                    conflict = True  # taken by a better call of another queue
                    continue
                offered.add(waiter.call_id)
                self._offer(rt, waiter, now)
            if not conflict:
                break
        self._arm_timer(now)

    def _arm_timer(self, now: float) -> None:
        """One timer for the next thing that changes by time alone."""
        due: list[float] = []
        present = self.present()
        for name, queue in self.waiting.items():
            policy = self.policies[name]
            settings = self.queues[name]
            is_open = self.queue_open(name)
            calls = [c for c in self._line(name) if not (w := queue[c.call_id]).ringing
                     and (is_open or self._served_closed(w))]
            at = routing.next_change_at(calls, policy, now, present=present)
            if at is not None:
                due.append(at)
            if queue and not is_open:
                due.append(now + 60.0)  # closed: look again each minute for the opening
            overflows = bool(settings.overflow_after_s and settings.overflow_queue in self.queues)
            for w in queue.values():
                # only what ``on_timer`` will act on: nothing is said to a caller being rung,
                # or while Asterisk is out of reach (the timer would spin)
                if w.ringing:
                    continue
                if overflows:
                    due.append(w.arrived_at + settings.overflow_after_s)
                if not self.linked or w.callback:
                    continue
                if settings.max_wait_s and not w.told_long_wait:
                    due.append(w.arrived_at + settings.max_wait_s)
                if settings.announce_every_s:
                    due.append(w.announced_at + settings.announce_every_s)
        due.extend(d.since + PHONE_CONFIRM_S for d in self._phone_doubts.values())
        self._emit(ArmTimer(max(now + 0.05, min(due)) if due else None))

    def on_timer(self) -> None:
        """The queue timer (``ArmTimer``) fired: overflow, long waits, announcements, VIP
        stages passed, phones that stopped answering during a call."""
        now = self.clock()
        for name, queue in self.waiting.items():
            settings = self.queues[name]
            for w in list(queue.values()):
                if (settings.overflow_after_s and settings.overflow_queue and not w.ringing
                        and now - w.arrived_at >= settings.overflow_after_s
                        and settings.overflow_queue in self.queues):
                    self._move(w, settings.overflow_queue, now, "overflow")
        self._long_waits(now)
        self._announce(now)
        self._phone_doubts_due(now)
        self.dispatch()

    def _long_waits(self, now: float) -> None:
        """Callers past the queue's ``max_wait_s`` hear once that the wait is long, with the
        call-back offer (pressing 1 keeps their place)."""
        if not self.linked:
            return
        for name, queue in self.waiting.items():
            limit = self.queues[name].max_wait_s
            for w in queue.values():
                if limit and not w.told_long_wait and not w.callback and not w.ringing \
                        and now - w.arrived_at >= limit:
                    w.told_long_wait = True
                    w.announced_at = now
                    lang = w.lang
                    self._emit(Announce(w, "announce", "&".join(
                        sound(f"{lang}/{p}") for p in ("queue_long_wait",
                                                       "queue_callback_offer"))))

    def _move(self, waiter: Waiter, target: str, now: float, event: str) -> None:
        del self.waiting[waiter.queue][waiter.call_id]
        self._line_drop(waiter)
        self._qlog(now, waiter.queue, waiter.call_id, event, detail={"target": target})
        waiter.position_key = waiter.position_key or waiter.arrived_at
        waiter.queue, waiter.arrived_at = target, now
        self.waiting[target][waiter.call_id] = waiter
        self._line_put(waiter)
        self._emit_row("UPDATE queue_waiting SET queue = ?, arrived_at = ?, position_key = ?"
                       " WHERE call_id = ?", (target, now, waiter.position_key, waiter.call_id))
        self._qlog(now, target, waiter.call_id, "enter", tier=waiter.tier.value)

    def _announce(self, now: float) -> None:
        if not self.linked:
            return
        ready = sum(1 for rt in self.seats.values() if rt.seat.state in (
            SeatState.READY, SeatState.ON_CALL, SeatState.ON_HOLD, SeatState.WRAP_UP,
            SeatState.RINGING))
        for name, queue in self.waiting.items():
            settings = self.queues[name]
            if not settings.announce_every_s:
                continue
            policy = self.policies[name]
            calls = [w.view(policy.skill) for w in queue.values()]
            for w in queue.values():
                if w.callback or w.ringing or now - w.announced_at < settings.announce_every_s:
                    continue
                w.announced_at = now
                pos = routing.position(w.call_id, calls, policy, now)
                if pos is None or pos <= 1:
                    continue  # the caller at the head is next: no announcement
                minutes = max(1, round(routing.estimated_wait(pos, self.avg_handle_s,
                                                              max(1, ready)) / 60))
                lang = w.lang
                # counted: 两位客户, 两分钟
                files = [f"{lang}/queue_ahead", *(f"{lang}/{p}" for p in
                                                   say_integer(pos - 1, lang, counted=True)),
                         f"{lang}/queue_callers", f"{lang}/queue_wait_about",
                         *(f"{lang}/{p}" for p in say_integer(minutes, lang, counted=True)),
                         f"{lang}/queue_minutes"]
                if settings.callback_offer:
                    files.append(f"{lang}/queue_callback_offer")
                self._emit(Announce(w, "announce", "&".join(sound(f) for f in files)))

    # -- offering and connecting -----------------------------------------------------------------

    def offer_direct(self, rt: SeatRuntime, waiter: Waiter) -> None:
        """Ring one seat for a call that is not queued (click-to-call, transfer to an agent)."""
        waiter.direct = True
        self._offer(rt, waiter, self.clock())

    def _offer(self, rt: SeatRuntime, waiter: Waiter, now: float) -> None:
        agent_uid = f"acd-{uuid.uuid4().hex[:20]}"
        call = ActiveCall(waiter, agent_uid, now)
        waiter.ringing = rt.agent.agent_id
        rt.call = call
        self._uniqueids[agent_uid] = ("agent", rt.agent.agent_id)
        self._apply(rt, SeatInput.OFFER, now)
        self._qlog(now, waiter.queue, waiter.call_id, "ring", agent=rt.agent.agent_id,
                   tier=waiter.tier.value)
        self._emit(CallOffered(rt.agent.agent_id, _offer(waiter, now, waiter.direct,
                                                          waiter.context)))
        self._emit(self._ring(rt, call))

    def _ring(self, rt: SeatRuntime, call: ActiveCall) -> Ring:
        waiter = call.waiter
        call.recording = self._recording_path(waiter.call_id, rt.agent.agent_id, call.offered_at)
        variables = [f"CC_CALL={waiter.call_id}", f"CC_REC={call.recording}"]
        if waiter.callback:
            exten = "task" if waiter.dial else "callback"
            number = dialable_or_empty(waiter.phone, rt.agent.role, "callback", self.dial_rules)
            if not number:  # checked on the way in; never dial anything else
                variables = []
            else:
                variables += [f"CC_NUMBER={number}",
                              *(f"{k}={v}" for k, v in
                                {"CC_DIAL_TIMEOUT": "60", **waiter.dial}.items())]
        else:
            exten = "s"
            variables.append(f"CC_CALLER={waiter.channel}")
        return Ring(rt, call, rt.agent.endpoint, exten, variables, self.settings.ring_timeout_s,
                    f"\"{waiter.tier.value}\" <{waiter.phone or 'queue'}>")

    def callback_refused(self, rt: SeatRuntime, call: ActiveCall) -> None:
        """A call-back ring (``Ring`` without variables) whose number may not be dialled."""
        if rt.call is call:
            rt.call, call.waiter.ringing = None, ""
            self._uniqueids.pop(call.agent_uniqueid, None)
            self._drop_callback(call.waiter, self.clock())
            self._apply(rt, SeatInput.CALL_ENDED, self.clock())

    def ring_answered(self, rt: SeatRuntime, call: ActiveCall, channel: str) -> None:
        """The originate of ``Ring`` answered: the agent's phone answered (``channel``)."""
        call.agent_channel = channel
        self._answered(rt, call)
        if call.gone_early and rt.call is call:  # its Hangup came first: it is over already
            self._call_ended(rt, call, self.clock())

    def ring_link_lost(self, rt: SeatRuntime, call: ActiveCall, why: str) -> bool:
        """The originate's answer was lost with the AMI link: the phone may ring, or be answered
        and bridged. Not "no answer": the ring is *unsettled* until Asterisk's channels say
        (``settle_rings``). True if it is now unsettled."""
        if rt.call is not call or not call.life.can(CallInput.LINK_LOST):
            return False
        call.life.apply(CallInput.LINK_LOST, self.clock())
        log.warning("ring of %s for call %s: %s; settled from Asterisk's channels",
                    rt.agent.agent_id, call.call_id, why)
        return True

    def unsettled(self) -> bool:
        """Some ring's originate answer was lost (``settle_rings`` is due)."""
        return any(rt.call is not None and rt.call.unsettled for rt in self.seats.values())

    def stale_rings(self, channels: Mapping[str, Mapping[str, str]]) -> list[str]:
        """The agent legs of unsettled rings that still ring (``channels``: Asterisk's channels
        by uniqueid): hang them up before ``settle_rings`` offers their callers again, so a
        caller never has two legs."""
        out = []
        for rt in self.seats.values():
            call = rt.call
            if call is not None and call.unsettled:
                row = channels.get(call.agent_uniqueid)
                if row is not None and not _is_answered(row):
                    out.append(call.agent_uniqueid)
        return out

    def settle_rings(self, channels: Mapping[str, Mapping[str, str]]) -> None:
        """Settle the rings whose originate answer was lost (``ActiveCall.unsettled``) from
        Asterisk's channels by uniqueid: the agent's leg up or bridged -> connected; still
        ringing (hung up by now: ``stale_rings``) or gone -> the seat Ready again and the caller
        keeps the place."""
        for rt in list(self.seats.values()):
            call = rt.call
            if call is None or not call.unsettled:
                continue
            row = channels.get(call.agent_uniqueid)
            if row is not None and _is_answered(row):
                log.info("agent %s answered call %s while the AMI link was down",
                         rt.agent.agent_id, call.call_id)
                call.agent_channel = call.agent_channel or row.get("Channel", "")
                self._answered(rt, call, at=_answered_at(row, self.clock()))
                continue
            self._ring_lost(rt, call, "still ringing" if row is not None else "gone")

    def _ring_lost(self, rt: SeatRuntime, call: ActiveCall, why: str) -> None:
        """A ring that did not connect through no fault of the agent's: the seat is Ready
        again, the caller keeps the place."""
        if rt.call is not call:
            return
        now = self.clock()
        waiter = self._ring_over(rt, call, now)
        log.info("ring of %s for call %s withdrawn after the AMI link was lost (%s)",
                 rt.agent.agent_id, waiter.call_id, why)
        self._emit(CallEnded(rt.agent.agent_id, waiter.call_id, 0, answered=False, lost=True))
        self._apply(rt, SeatInput.CALL_ENDED, now)  # Ready again: dispatches

    def _ring_over(self, rt: SeatRuntime, call: ActiveCall, now: float) -> Waiter:
        """A ring that did not connect: the seat and the caller part (the caller still waits)."""
        call.life.apply(CallInput.RING_FAILED, now)
        rt.call = None
        self._uniqueids.pop(call.agent_uniqueid, None)
        call.waiter.ringing = ""
        return call.waiter

    def _drop_callback(self, waiter: Waiter, now: float) -> None:
        """A call-back whose number is not a phone number: never dialled, off the queue."""
        self.waiting.get(waiter.queue, {}).pop(waiter.call_id, None)
        self._line_drop(waiter)
        self._emit_row("DELETE FROM queue_waiting WHERE call_id = ?", (waiter.call_id,))
        self._qlog(now, waiter.queue, waiter.call_id, "leave", tier=waiter.tier.value,
                   wait_s=now - waiter.arrived_at,
                   detail={"why": "the call-back number is not a phone number"})
        log.warning("call-back %s dropped: its number is not a phone number", waiter.call_id)
        self._emit_queues()

    def ring_failed(self, rt: SeatRuntime, call: ActiveCall, why: str) -> None:
        """The originate of ``Ring`` failed: no answer, busy, or the phone is gone."""
        if rt.call is not call:
            return  # withdrawn (forced, or the caller hung up) meanwhile
        now = self.clock()
        waiter = self._ring_over(rt, call, now)
        if waiter.direct:
            self._emit(CallEnded(rt.agent.agent_id, waiter.call_id, 0, answered=False))
            self._apply(rt, SeatInput.NO_ANSWER, now)
            if waiter.channel and not waiter.callback:
                # a caller transferred to this agent, waiting on hold: back to their queue
                # with their place (not left alone with the music)
                log.info("agent %s did not answer the transfer of call %s; the caller goes"
                         " back to the queue", rt.agent.agent_id, waiter.call_id)
                queue = waiter.queue if waiter.queue in self.queues else next(iter(self.queues))
                self._emit(Requeue(waiter, queue, rt.agent.agent_id, set_queue=True))
        elif self.find_waiter(call_id=waiter.call_id) is waiter:
            waiter.excluded.add(rt.agent.agent_id)
            self._line_put(waiter)
            self._qlog(now, waiter.queue, waiter.call_id, "noanswer", agent=rt.agent.agent_id)
            log.info("agent %s did not answer call %s (%s)", rt.agent.agent_id,
                     waiter.call_id, why)
            self._emit(CallEnded(rt.agent.agent_id, waiter.call_id, 0, answered=False))
            self._apply(rt, SeatInput.NO_ANSWER, now)
        else:
            self._apply(rt, SeatInput.CALL_ENDED, now)
        self.dispatch()

    def _answered(self, rt: SeatRuntime, call: ActiveCall, at: float | None = None) -> None:
        """The agent answered (``at``: when, if known better than now)."""
        waiter = call.waiter
        now = self.clock() if at is None else at
        if rt.call is not call:
            self._emit(Hangup(call.agent_uniqueid))
            return
        if not waiter.direct and self.find_waiter(call_id=waiter.call_id) is not waiter:
            # The caller left while the phone rang; the bridge found nobody.
            self._emit(Hangup(call.agent_uniqueid))
            rt.call = None
            self._apply(rt, SeatInput.CALL_ENDED, now)
            return
        call.life.apply(CallInput.ANSWER, now)
        if waiter.callback or (waiter.direct and not waiter.channel) \
                or (call.agent_bridge and call.agent_bridge == call.caller_bridge):
            # nobody to bridge (the agent dials out), or Asterisk's BridgeEnter events came
            # before the originate's answer
            call.life.apply(CallInput.BRIDGED, now)
        if not waiter.direct:
            del self.waiting[waiter.queue][waiter.call_id]
            self._line_drop(waiter)
            self._emit_row("DELETE FROM queue_waiting WHERE call_id = ?", (waiter.call_id,))
        call.connected_at = now
        rt.calls_taken += 1
        self._apply(rt, SeatInput.ANSWER, now)
        self._qlog(now, waiter.queue, waiter.call_id, "connect", agent=rt.agent.agent_id,
                   tier=waiter.tier.value, wait_s=now - (waiter.position_key or
                                                         waiter.arrived_at),
                   detail={"agent_uniqueid": call.agent_uniqueid})
        self._emit_row("INSERT INTO recordings (call_id, agent_id, account, path, started_at)"
                       " VALUES (?, ?, ?, ?, ?)",
                       (waiter.call_id, rt.agent.agent_id, waiter.account, call.recording, now))
        if waiter.callback and not waiter.direct:
            # a queue call-back's request (the caller's, by their number) is done; a dialer
            # or click-to-call ring is not the caller's call-back (its customer may be busy)
            self._emit_row("UPDATE service_requests SET state = 'done' WHERE kind = 'callback'"
                           " AND phone = ? AND state = 'open'", (waiter.phone,))
        self._emit(CallConnected(rt.agent.agent_id, waiter.call_id, bool(call.recording)))
        self._emit_queues()

    def _withdraw_offer(self, rt: SeatRuntime) -> None:
        call = rt.call
        if call is None:
            return
        rt.call = None
        call.waiter.ringing = ""
        self._emit(Hangup(call.agent_uniqueid))
        # whoever waits for the ring's end (the dialer: its agent and task) hears of it
        self._emit(CallEnded(rt.agent.agent_id, call.call_id, 0, answered=False))

    # -- AMI events ----------------------------------------------------------------------------

    def on_ami_event(self, event: AmiEvent) -> None:
        """The ACD's view of Asterisk's events: legs ending, entering bridges, dialling."""
        match event:
            case HangupEvent(info):
                self._on_hangup(info.uniqueid, info.channel)
                self._consult_gone(info.channel)
                self._monitor_ended(info.uniqueid)
            case OtherEvent(name="ChanSpyStart", headers=headers):
                monitor = self.monitors.get(headers.get("SpyerUniqueid", ""))
                if monitor is not None and not monitor.on:
                    monitor.on = True
                    self._emit(MonitorChanged(monitor.supervisor_id, monitor.agent_id,
                                              monitor.call_id, monitor.mode, "on"))
            case BridgeEnter(info, bridge_id):
                self._bridge_entered(info.uniqueid, info.channel, bridge_id)
            case DialBegin(caller, dest, _):
                if caller is not None:
                    self._dial_began(caller.uniqueid, dest.channel, dest.uniqueid)
            case OtherEvent(name="UserEvent", headers=headers) \
                    if headers.get("UserEvent") == "CallCenterLegParked" \
                    and headers.get("Where") == "agent":
                for rt in self.seats.values():
                    if rt.call is not None and rt.call.agent_uniqueid == headers.get("Uniqueid"):
                        rt.call.agent_parked = True
            case _:
                pass

    def _bridge_entered(self, uniqueid: str, channel: str, bridge_id: str) -> None:
        role = self._uniqueids.get(uniqueid)
        if role is None:
            self._consult_answered(channel)
            return
        kind, key = role
        for rt in self.seats.values():
            call = rt.call
            if call is None or call.life.state is CallState.ENDED:
                continue
            if kind == "agent" and key == rt.agent.agent_id and call.agent_uniqueid == uniqueid:
                call.agent_channel = call.agent_channel or channel
                call.agent_bridge, call.agent_parked = bridge_id, False
            elif kind == "caller" and call.waiter.uniqueid == uniqueid:
                call.caller_bridge = bridge_id
            else:
                continue
            if call.agent_bridge and call.agent_bridge == call.caller_bridge \
                    and call.life.state is CallState.ANSWERED:
                call.life.apply(CallInput.BRIDGED, self.clock())

    def _dial_began(self, caller_uniqueid: str, dest_channel: str, dest_uniqueid: str) -> None:
        """The agent's leg dialled: during a consultation, that is the consulted party."""
        role = self._uniqueids.get(caller_uniqueid)
        if role is None or role[0] != "agent":
            return
        rt = self.seats.get(role[1])
        call = rt.call if rt is not None else None
        if call is None:
            return
        call.agent_parked = False
        if call.consult_target and not call.consult_channel:
            call.consult_channel, call.consult_uniqueid = dest_channel, dest_uniqueid

    def _consult_answered(self, channel: str) -> None:
        for rt in self.seats.values():
            call = rt.call
            if call is not None and channel and call.consult_channel == channel \
                    and not call.consult_talking:
                call.consult_talking = True
                other = self.seats.get(call.consult_agent)
                if other is not None and other.consulted_on == call.call_id \
                        and other.seat.state is SeatState.RINGING:
                    self._apply(other, SeatInput.ANSWER, self.clock())
                    self._emit(CallConnected(other.agent.agent_id, call.call_id, False))
                if call.life.state is CallState.CONSULTING:
                    self._emit(ConsultChanged(rt.agent.agent_id, call.call_id, "talking",
                                              call.consult_target))

    def _consult_gone(self, channel: str) -> None:
        """The consulted party hung up (no answer, done, or cancelled): the caller stays held
        until the agent takes them back (or the consultation was completed)."""
        for rt in self.seats.values():
            call = rt.call
            if call is None or not channel or call.consult_channel != channel:
                continue
            call.consult_channel, call.consult_talking = "", False
            self.consult_released(call)
            if call.life.state is CallState.CONSULTING:
                call.life.apply(CallInput.CONSULT_ENDED, self.clock())
                self._emit(ConsultChanged(rt.agent.agent_id, call.call_id, "ended",
                                          call.consult_target))

    def _on_hangup(self, uniqueid: str, channel: str) -> None:
        role = self._uniqueids.pop(uniqueid, None)
        if role is None:
            return
        kind, key = role
        now = self.clock()
        if kind == "caller":
            waiter = self.find_waiter(call_id=key)
            if waiter is not None and waiter.uniqueid == uniqueid and not waiter.callback:
                ringing = self.seats.get(waiter.ringing) if waiter.ringing else None
                self._abandon(waiter, now, "caller hung up")
                if ringing is not None and ringing.call is not None:
                    self._withdraw_offer_after_abandon(ringing)
            return
        rt = self.seats.get(key)
        if rt is None or rt.call is None or rt.call.agent_uniqueid != uniqueid:
            return
        call = rt.call
        if call.life.state is CallState.RINGING:
            call.gone_early = True
            return  # the originate's answer settles it
        if call.unsettled:  # no originate answer will come: the leg is gone
            self._ring_lost(rt, call, "hung up")
            return
        self._call_ended(rt, call, now)

    def _withdraw_offer_after_abandon(self, rt: SeatRuntime) -> None:
        self._withdraw_offer(rt)
        self._apply(rt, SeatInput.CALL_ENDED, self.clock())

    def _abandon(self, waiter: Waiter, now: float, why: str) -> None:
        self.waiting[waiter.queue].pop(waiter.call_id, None)
        self._line_drop(waiter)
        self._emit_row("DELETE FROM queue_waiting WHERE call_id = ?", (waiter.call_id,))
        # Leaving a closed queue is not abandoning it: nobody could have answered.
        event = "abandon" if self.queue_open(waiter.queue) else "leave"
        self._qlog(now, waiter.queue, waiter.call_id, event, tier=waiter.tier.value,
                   wait_s=now - waiter.arrived_at, detail={"why": why})
        log.info("call %s abandoned in %s after %.0f s (%s)", waiter.call_id, waiter.queue,
                 now - waiter.arrived_at, why)
        self._emit_queues()

    def _call_ended(self, rt: SeatRuntime, call: ActiveCall, now: float) -> None:
        self._phone_doubts.pop(rt.agent.agent_id, None)
        if call.life.can(CallInput.HANGUP):
            call.life.apply(CallInput.HANGUP, now)
        rt.call = None
        rt.last_call = call
        talk = now - (call.connected_at or now)
        # who left first, as the hangups came: the caller's channel still known is still up
        # (Asterisk's COMPLETEAGENT / COMPLETECALLER, acd/asterisk_qlog.py)
        uid = call.waiter.uniqueid
        by = "agent" if uid and self._uniqueids.get(uid, ("",))[0] == "caller" else "caller"
        self._qlog(now, call.waiter.queue or "", call.call_id, "complete",
                   agent=rt.agent.agent_id, talk_s=talk, detail={"by": by})
        self._emit_row("UPDATE recordings SET ended_at = ? WHERE call_id = ? AND agent_id = ?",
                       (now, call.call_id, rt.agent.agent_id))
        if call.consult_channel:
            self._emit(Hangup(call.consult_channel))
        self.consult_released(call)
        self.avg_handle_s = 0.9 * self.avg_handle_s + 0.1 * (talk + self.settings.wrap_up_s)
        wrap_up_s = self.settings.wrap_up_s
        required = wrap_up_s > 0 and self.settings.require_disposition
        rt.disposition_due = call.call_id if required else ""
        with self.batch():  # the seat's move and the notice first, then any new offer
            self._apply(rt, SeatInput.CALL_ENDED, now)
            self._emit(CallEnded(rt.agent.agent_id, call.call_id, wrap_up_s, answered=True,
                                 disposition_required=required))
            if wrap_up_s <= 0:
                self._finish_wrap_up(rt)
            else:
                self._arm_wrap_up(rt)

    # -- what call controls move (acd/control.py) -----------------------------------------------

    def monitor_begins(self, monitor: Monitor) -> None:
        """A spy leg is about to be originated (``ChanSpyStart`` will say it listens)."""
        self.monitors[monitor.uniqueid] = monitor

    def _monitor_ended(self, uniqueid: str) -> None:
        monitor = self.monitors.pop(uniqueid, None)
        if monitor is not None and monitor.on:
            self._emit(MonitorChanged(monitor.supervisor_id, monitor.agent_id,
                                      monitor.call_id, monitor.mode, "off"))

    def notify(self, notice: Notice) -> None:
        self._emit(notice)

    def queue_event(self, queue: str, call_id: str, event: str, *, agent: str = "",
                    detail: Mapping[str, str] | None = None) -> None:
        self._qlog(self.clock(), queue, call_id, event, agent=agent, detail=detail)

    def call_moved(self, rt: SeatRuntime, what: CallInput, seat_input: SeatInput | None, *,
                   by: str) -> None:
        """A call control's step was proven: the call moves (and the seat with it)."""
        call = rt.call
        assert call is not None
        now = self.clock()
        call.life.apply(what, now)
        if seat_input is not None:
            self._apply(rt, seat_input, now, by=by)
        agent_id = rt.agent.agent_id
        if what is CallInput.HOLD:
            self._emit(CallHeld(agent_id, call.call_id))
        elif what is CallInput.RESUME:
            self.consult_released(call)
            call.consult_target = ""
            self._emit(CallResumed(agent_id, call.call_id))
        elif what is CallInput.CONSULT:
            self._emit(ConsultChanged(agent_id, call.call_id, "ringing", call.consult_target))
            if call.consult_talking:
                self._emit(ConsultChanged(agent_id, call.call_id, "talking",
                                          call.consult_target))

    def consult_offered(self, rt: SeatRuntime, call: ActiveCall, target: Target) -> None:
        """The agent is about to consult ``target`` on ``call``. A consulted agent must be ready
        (their phone free): their seat rings, with the caller's pop, and is offered nothing
        else until the consultation ends (``consult_released``) or they take the caller
        (``hand_on(consulted=True)``)."""
        other = self.seat(target.value) if target.kind == "agent" else None
        if other is not None and (other is rt or other.seat.state is not SeatState.READY
                                  or other.call is not None or other.consulted_on
                                  or not other.agent.endpoint):
            raise ConsoleError("invalid_state", f"agent {target.value} is not ready")
        call.consult_target, call.consult_channel, call.consult_uniqueid = target.value, "", ""
        call.consult_agent = ""
        if other is None:
            return
        now = self.clock()
        waiter = call.waiter
        call.consult_agent, other.consulted_on = other.agent.agent_id, call.call_id
        self._apply(other, SeatInput.OFFER, now)
        self._emit(CallOffered(other.agent.agent_id, _offer(
            waiter, now, True, {**waiter.context, "consulted_by": rt.agent.agent_id})))

    def consult_released(self, call: ActiveCall) -> None:
        """The consultation on ``call`` ended without the consulted agent taking the caller:
        their seat is free again (no after-call work for an internal consultation)."""
        other = self.seats.get(call.consult_agent)
        call.consult_agent = ""
        if other is None or other.consulted_on != call.call_id:
            return
        other.consulted_on = ""
        now = self.clock()
        with self.batch():
            # answered=False: nothing to wrap up (the console drops the call, no form)
            self._emit(CallEnded(other.agent.agent_id, call.call_id, 0, answered=False))
            if other.seat.state in (SeatState.RINGING, SeatState.ON_CALL):
                self._apply(other, SeatInput.CALL_ENDED, now)
            if other.seat.state is SeatState.WRAP_UP:
                self._finish_wrap_up(other)

    def _consulted_takes(self, call: ActiveCall, now: float) -> None:
        """The caller joined the consulted agent (a completed consultation): the call is theirs
        from now on, ended by their leg's hang-up, wrapped up by them."""
        other = self.seats.get(call.consult_agent)
        call.consult_agent = ""
        if other is None or other.consulted_on != call.call_id or not call.consult_uniqueid:
            return
        other.consulted_on = ""
        waiter = call.waiter
        moved = Waiter(waiter.call_id, waiter.queue, waiter.tier, now, waiter.channel,
                       waiter.uniqueid, waiter.account, waiter.manager, waiter.phone,
                       context=waiter.context, direct=True,
                       position_key=waiter.position_key or waiter.arrived_at)
        taken = ActiveCall(moved, call.consult_uniqueid, now, agent_channel=call.consult_channel,
                           connected_at=now, state=CallState.CONNECTED)
        other.call = taken
        other.calls_taken += 1
        self._uniqueids[call.consult_uniqueid] = ("agent", other.agent.agent_id)
        self._uniqueids[waiter.uniqueid] = ("caller", waiter.call_id)
        if other.seat.state is SeatState.RINGING:
            self._apply(other, SeatInput.ANSWER, now)
            self._emit(CallConnected(other.agent.agent_id, call.call_id, False))
        else:
            self._log_seat(other, other.seat.state, "consult_taken", other.agent.agent_id)
        # not a second "connect": the queue answered the call once (figures.py)
        self._qlog(now, waiter.queue, waiter.call_id, "transfer", agent=other.agent.agent_id,
                   detail={"kind": "consultation", "target": other.agent.agent_id})

    def hand_on(self, rt: SeatRuntime, call: ActiveCall, what: CallInput, target: Target, *,
                by: str, consulted: bool = False) -> None:
        """The caller left the agent's bridge for ``target`` (proven by the control): back to a
        queue with the place (``REQUEUE``), or on to a number, another agent, or the consulted
        party (``HANDED_ON``). The agent's leg is hung up: the seat wraps up."""
        now = self.clock()
        waiter = call.waiter
        if call.life.can(what):
            call.life.apply(what, now)
        if consulted:
            self._consulted_takes(call, now)
            call.consult_channel = ""  # the consulted party stays, with the caller
        log.info("agent %s handed call %s on to %s %s", by, waiter.call_id, target.kind,
                 target.value)
        if what is CallInput.REQUEUE:
            # Not straight back to the agent who sent it on (their seat frees any moment).
            self.enqueue(waiter.call_id, target.value, waiter.channel, waiter.uniqueid,
                         waiter.context, phone=waiter.phone, manager=waiter.manager,
                         position_key=waiter.position_key or waiter.arrived_at,
                         exclude=[rt.agent.agent_id])
        elif target.kind == "agent" and not consulted:
            other = self.seat(target.value)
            moved = Waiter(waiter.call_id, waiter.queue, waiter.tier, now, waiter.channel,
                           waiter.uniqueid, waiter.account, waiter.manager, waiter.phone,
                           context=waiter.context,
                           position_key=waiter.position_key or waiter.arrived_at)
            self._uniqueids[waiter.uniqueid] = ("caller", waiter.call_id)
            self.offer_direct(other, moved)
        if rt.call is call:
            self._emit(Hangup(call.agent_uniqueid))

    # -- helpers -------------------------------------------------------------------------------

    def _qlog(self, at: float, queue: str, call_id: str, event: str, *, agent: str = "",
              tier: str = "", wait_s: float | None = None, talk_s: float | None = None,
              detail: Mapping[str, str] | None = None) -> None:
        self._emit_row("INSERT INTO queue_log (at, queue, call_id, event, agent_id, tier, wait_s,"
                       " talk_s, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (at, queue, call_id, event, agent, tier, wait_s, talk_s,
                        json.dumps(dict(detail or {}))))
        self._emit(QueueLogged(at, queue, call_id, event, agent, tier, wait_s, talk_s,
                               dict(detail) if detail else None))

    def _emit_row(self, sql: str, params: Sequence[object] = ()) -> None:
        self._emit(Row(sql, params))

    def _emit_queues(self) -> None:
        self._emit(QueuesChanged())

    def present(self) -> dict[str, Mapping[str, int]]:
        """Who will be free soon (``routing.Present``): seats with a phone that are ready,
        ringing, on a call, on hold or in wrap-up, with their skills. A phone change, login,
        logout or not-ready changes it: each of those runs ``dispatch``."""
        return {rt.agent.agent_id: rt.agent.skills for rt in self.seats.values()
                if rt.seat.state in _PRESENT and rt.agent.endpoint}

    def queue_snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        """Waiting callers per queue, in the order they will be served, each with why it still
        waits (``routing.wait_reason``: a code and its numbers, worded by the console)."""
        now = self.clock() if now is None else now
        present = self.present()
        free = [routing.SeatView(rt.agent.agent_id, rt.ready_since, rt.agent.skills,
                                 rt.calls_taken) for rt in self.seats.values()
                if rt.seat.state is SeatState.READY and rt.call is None and rt.agent.endpoint]
        out = []
        for name, queue in self.waiting.items():
            policy = self.policies[name]
            closed = not self.queue_open(name)
            order = routing.ranked([w.view(policy.skill) for w in queue.values()], policy, now)
            rows = []
            for c in order:
                w = queue[c.call_id]
                why = routing.wait_reason(c, free, present, policy, now,
                                          ringing=w.ringing or None,
                                          closed=closed and not self._served_closed(w))
                rows.append({"call_id": c.call_id, "tier": c.tier.value,
                             "arrived_at": w.arrived_at, "waited_s": now - w.arrived_at,
                             "callback": w.callback, "ringing": w.ringing,
                             "lang": w.lang, "reason": {
                                 "code": why.code.value, "until": why.until,
                                 "agent": why.agent, "skill": why.skill,
                                 "agents": why.agents}})
            out.append({"name": name, "waiting": rows})
        return out



def _unseen_end(lost_at: float | None, since: float, now: float) -> float:
    """When something we could not see end ended: when we lost sight of it, within [since, now]."""
    return now if lost_at is None else max(since, min(lost_at, now))


def _policy(q: QueueSettings, vip_team: Iterable[str]) -> routing.QueuePolicy:
    weights = {_tier(k): float(v) for k, v in q.tier_weights.items()}
    return routing.QueuePolicy(
        name=q.name, skill=q.skill, tier_weights=weights, aging_per_second=q.aging_per_second,
        manager_first_s=q.manager_first_s, vip_team_s=q.vip_team_s,
        vip_team=frozenset(vip_team), seat_choice=q.seat_choice)
