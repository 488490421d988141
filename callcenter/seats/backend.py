"""The console backend in the engine: console commands in, ACD and call controls out, and the
ACD's typed notices (``acd/notices.py``) pushed to the right consoles. It does not listen to
Asterisk: what happens to calls comes from the ACD.

It dispatches each request to the part that handles it: the seat and call controls
(``acd/``), the customer's channels (``customer_channels.py``: messages, deliveries,
subscriptions), inbound contacts (``contacts.py``), the transfer directory (``directory.py``),
the figures per interval (``intervals.py``), tasks (``tasks.py``: lists, claims, outcomes,
deadline alerts, progress); the screen pop is ``screen_pop.py``. A console that
acts on the customer of a call (statement, task, call back) names the call, and the account and
number are looked up here, from the agent's own current or last call only; what leaves the
engine is masked (``masking.py``). ``on_channel_event`` is the outbox relay's listener: it
pushes ``delivery`` and ``contact``.

Sessions and presence: logging out (``set_state`` ``logged_out``) ends every console session of
the agent, not only the one that asked. When an agent's last session closes, a grace timer
starts; past it, a seat nobody watches goes not ready ("console gone", see ``presence.py``) and
supervisors get a ``presence`` event. ``watch_presence`` (the engine calls it as it starts,
before the console listens) starts that grace for every seat that is in service with no console
at all, as after a restart of the engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import aiosqlite

from callcenter.acd.calls import CallState
from callcenter.acd.control import CallControl
from callcenter.acd.figures import LiveQueueFigures, QueueEvent, SeatEvent
from callcenter.acd.notices import (
    Announced,
    CallConnected,
    CallEnded,
    CallHeld,
    CallOffered,
    CallResumed,
    ConferenceChanged,
    ConsultChanged,
    MonitorChanged,
    Notice,
    QueueLogged,
    QueuesChanged,
    RecordingChanged,
    SeatChanged,
    WrapUpOverdue,
)
from callcenter.acd.records import ActiveCall, SeatRuntime, Waiter
from callcenter.acd.seat import DEFAULT_REASONS, IMPLIED_REASONS, SYSTEM_REASONS, SeatState
from callcenter.acd.service import Acd
from callcenter.broker.interface import BackOffice
from callcenter.channels.relay import ContactArrived, DeliveryUpdate, RelayEvent
from callcenter.config import DirectoryNumber, SiteSettings
from callcenter.errors import ConsoleError, SeatStateError
from callcenter.recordings.service import RecordingService
from callcenter.seats import contacts
from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity, ConsolePush
from callcenter.seats.customer_channels import CustomerChannels
from callcenter.seats.directory import directory_reply
from callcenter.seats.intervals import intervals_reply
from callcenter.seats.masking import mask
from callcenter.seats.phone_sessions import PhoneSessions
from callcenter.seats.playback import ConsolePlayback
from callcenter.seats.presence import CONSOLE_GONE, Presence, PresenceAction
from callcenter.seats.screen_pop import ScreenPops
from callcenter.seats.tasks import ConsoleTasks
from callcenter.store import agents as directory
from callcenter.store.tx import transaction
from callcenter.tasks.store import NewTask, TaskStore

log = logging.getLogger(__name__)

#: reasons an agent may pick (the machine's own, like "no answer", are not offered)
AGENT_REASONS = [r for r in DEFAULT_REASONS
                 if r not in IMPLIED_REASONS.values() and r not in SYSTEM_REASONS]
#: the ``session_ended`` reason the agent's other sessions get when they log out in one
LOGGED_OUT_ELSEWHERE: Final = "logged out in another session"
#: seconds without any console session before a ready seat goes not ready (the engine sets
#: ``console.presence_grace_s`` through ``watch_presence``)
PRESENCE_GRACE_S: Final = 30.0
#: with no console this long a seat is logged out (the engine sets ``console.absent_logout_s``
#: through ``watch_presence``; 0: never)
ABSENT_LOGOUT_S: Final = 3600.0
#: the wallboard is pushed at most this often (a burst of changes becomes one push). A change
#: waits at most this long for its push, so this plus the fan-out to the sockets is a change's
#: latency at a supervisor's screen (issue 12: within 100 ms at p99 with 1000 watching)
BOARD_INTERVAL_S: Final = 0.05


_SUPERVISING = frozenset({p.Role.SUPERVISOR.value, p.Role.ADMIN.value})


def _day_start(now: float) -> float:
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


class EngineConsoleBackend:
    def __init__(self, acd: Acd, db: aiosqlite.Connection, backoffice: BackOffice, *,
                 directory_numbers: Sequence[DirectoryNumber] = (),
                 site: SiteSettings | None = None, tasks: TaskStore | None = None,
                 recordings: RecordingService | None = None) -> None:
        self.acd = acd
        self.control = CallControl(acd)
        self.db = db
        self.backoffice = backoffice
        #: the transfer directory's saved numbers (``console.directory_numbers``)
        self.directory_numbers = tuple(directory_numbers)
        #: the site (its time zone: the days of the figures per interval)
        self.site = site or SiteSettings()
        self.push: ConsolePush | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.figures = self._new_figures(acd.clock())
        #: the customer's channels (messages, deliveries, subscriptions)
        self.channels = CustomerChannels(db, backoffice, acd.clock)
        #: the screen pops of offered calls
        self.screen = ScreenPops(db, backoffice, self._push_agent, self._spawn)
        #: who has no console open, and what their seat gets (``presence.py``)
        self.presence = Presence()
        self.presence_grace_s = PRESENCE_GRACE_S
        self._presence_timers: dict[str, asyncio.TimerHandle] = {}
        self.absent_logout_s = ABSENT_LOGOUT_S
        self._logout_timers: dict[str, asyncio.TimerHandle] = {}
        #: the wallboard (and the agents' queue figures) pushed once per burst of changes
        self._board_push: asyncio.TimerHandle | None = None
        self._board_pushed_at = 0.0
        self._queues_changed = False
        acd.listeners.append(self.on_acd)
        #: browser phones' per-login credentials (the engine sets it; None: no SIP phones)
        self.phones: PhoneSessions | None = None
        #: tasks in the console (``seats/tasks.py``) on the engine's one ``TaskStore``
        #: (``tasks``; its changes, whoever makes them, are pushed); the engine sets
        #: ``tasks.dialer``
        self.tasks = ConsoleTasks(acd, tasks or TaskStore(db, acd.clock), backoffice,
                                  self.site, self._push_agent, self._push_role,
                                  self._push_state)
        #: supervisors' search and playback of recordings (None: not offered here)
        self.playback = None if recordings is None else ConsolePlayback(recordings)

    @property
    def on_outbox(self) -> Callable[[], None] | None:
        """Called after a request wrote outbox rows (the engine sets ``relay.kick``)."""
        return self.channels.on_outbox

    @on_outbox.setter
    def on_outbox(self, kick: Callable[[], None] | None) -> None:
        self.channels.on_outbox = kick

    @property
    def pops(self) -> dict[str, dict[str, Any]]:
        return self.screen.pops

    def _new_figures(self, now: float) -> LiveQueueFigures:
        return LiveQueueFigures(_day_start(now),
                                {q.name: q.target_s for q in self.acd.queues.values()},
                                seats={a: rt.seat.state for a, rt in self.acd.seats.items()})

    async def load_today(self) -> None:
        """Feed today's logged rows so the wallboard's figures survive a restart."""
        start = self.figures.start
        rows: list[tuple[float, QueueEvent | SeatEvent]] = []
        async with self.db.execute(
                "SELECT at, queue, call_id, event, agent_id, tier, wait_s, talk_s FROM queue_log"
                " WHERE at >= ? ORDER BY id", (start,)) as cur:
            for r in await cur.fetchall():
                rows.append((float(r[0]), QueueEvent(float(r[0]), str(r[1]), str(r[2]),
                                                     str(r[3]), str(r[4]), str(r[5]), r[6],
                                                     r[7])))
        async with self.db.execute(
                "SELECT at, agent_id, from_state, to_state FROM seat_log WHERE at >= ?"
                " ORDER BY id", (start,)) as cur:
            for r in await cur.fetchall():
                rows.append((float(r[0]), SeatEvent(float(r[0]), str(r[1]), SeatState(r[2]),
                                                    SeatState(r[3]))))
        fresh = LiveQueueFigures(start, {q.name: q.target_s for q in self.acd.queues.values()})
        for _, ev in sorted(rows, key=lambda x: x[0]):
            fresh.feed(ev)
        self.figures = fresh

    # -- ConsoleBackend ------------------------------------------------------------------------

    async def authenticate(self, agent_id: str, password: str) -> AgentIdentity | None:
        record = await directory.authenticate(self.db, agent_id, password)
        if record is None:
            return None
        if record.agent_id not in self.acd.seats:
            self.acd.add_agent(record)
        return AgentIdentity(record.agent_id, record.name, p.Role(record.role))

    async def snapshot(self, agent: AgentIdentity) -> dict[str, Any]:
        rt = self.acd.seat(agent.agent_id)
        self._console_back(agent.agent_id)
        if rt.seat.state is SeatState.LOGGED_OUT:
            # Logging in to the console logs the seat in (not ready, reason "login").
            self.acd.set_state(agent.agent_id, "not_ready", "login", by=agent.agent_id)
        call = rt.call or (rt.last_call if rt.seat.state is SeatState.WRAP_UP else None)
        call_data = None
        if call is not None:
            call_data = {**self.pops.get(call.call_id, {"call_id": call.call_id}),
                         **self._call_now(rt, call)}
        phone = None
        if self.phones is not None:
            phone = await self.phones.login_data(agent.agent_id, rt.agent.endpoint)
        return {"agent": {"agent_id": agent.agent_id, "name": agent.name,
                          "role": agent.role.value},
                "seat": rt.data(), "call": call_data, "queues": self.queue_figures(),
                "reasons": AGENT_REASONS, "phone": phone}

    def _call_now(self, rt: SeatRuntime, call: ActiveCall) -> dict[str, Any]:
        """What a reloaded page needs beyond the screen pop to draw the call as it is now."""
        in_wrap_up = rt.seat.state is SeatState.WRAP_UP
        recording = "off" if not call.recording else "paused" if call.recording_paused else "on"
        consult = None
        if not in_wrap_up and call.life.state is CallState.CONSULTING:
            consult = "talking" if call.consult_talking else "ringing"
        return {"state": _call_state(rt),
                "recording": recording,
                "consult": consult,
                "connected_at": call.connected_at,
                "disposition_required": in_wrap_up and rt.disposition_due == call.call_id,
                "wrap_up_until": (rt.seat.since + self.acd.settings.wrap_up_s
                                  if in_wrap_up else None)}

    async def recording_audio(self, ticket: str, part: int, address: str) -> bytes | None:
        if self.playback is None:
            return None
        return await self.playback.audio(ticket, part, address)

    async def session_closed(self, agent: AgentIdentity, sessions_left: int) -> None:
        # The seat stays as it is for the grace: a console reload must not drop a call or a
        # ready state. Past it, ``_grace_over`` decides.
        log.info("console session of %s closed (%d left)", agent.agent_id, sessions_left)
        if sessions_left == 0 and self.phones is not None:
            await self.phones.ended(agent.agent_id)
        if sessions_left == 0 and self.playback is not None:
            self.playback.tickets.forget_agent(agent.agent_id)
        if self.presence.closed(agent.agent_id, sessions_left, self.acd.clock()):
            self._arm_presence(agent.agent_id)
            self._arm_logout(agent.agent_id, self.absent_logout_s)

    # -- presence ------------------------------------------------------------------------------

    def watch_presence(self, grace_s: float, logout_s: float = ABSENT_LOGOUT_S,
                       gone_at: float | None = None) -> None:
        """Use ``grace_s`` and ``logout_s``, and start them for every seat logged in that has no
        console (all of them when the engine has just started): their agents have the grace to
        log in (a NOT_READY seat only gets the logout). ``gone_at``: when the consoles went
        (the previous run's last heartbeat, on the ACD's clock; None: now); the logout counts
        from then, never sooner than the grace."""
        self.presence_grace_s = grace_s
        self.absent_logout_s = logout_s
        now = self.acd.clock()
        for agent_id, rt in self.acd.seats.items():
            if rt.seat.state is SeatState.LOGGED_OUT or self.presence.absent(agent_id):
                continue
            self.presence.closed(agent_id, 0, min(now, gone_at) if gone_at is not None else now)
            if rt.seat.state is not SeatState.NOT_READY:
                self._arm_presence(agent_id)
            self._arm_logout(agent_id, self.presence.logout_in(agent_id, logout_s, grace_s, now))

    def _arm_presence(self, agent_id: str) -> None:
        old = self._presence_timers.pop(agent_id, None)
        if old is not None:
            old.cancel()
        self._presence_timers[agent_id] = asyncio.get_running_loop().call_later(
            self.presence_grace_s, self._grace_over, agent_id)

    def _arm_logout(self, agent_id: str, after_s: float) -> None:
        old = self._logout_timers.pop(agent_id, None)
        if old is not None:
            old.cancel()
        if self.absent_logout_s > 0:
            self._logout_timers[agent_id] = asyncio.get_running_loop().call_later(
                after_s, self._absent_too_long, agent_id)

    def _console_back(self, agent_id: str) -> None:
        for timers in (self._presence_timers, self._logout_timers):
            timer = timers.pop(agent_id, None)
            if timer is not None:
                timer.cancel()
        self.presence.opened(agent_id)

    def _absent_too_long(self, agent_id: str) -> None:
        """No console for ``absent_logout_s``: the seat is logged out (on a call: once the call
        is over, asked again every grace)."""
        self._logout_timers.pop(agent_id, None)
        rt = self.acd.seats.get(agent_id)
        if rt is None:
            return
        was = rt.seat.state
        action = self.presence.absent_too_long(agent_id, was)
        if action is PresenceAction.LATER:
            self._arm_logout(agent_id, max(self.presence_grace_s, 1.0))
            return
        if action is not PresenceAction.LOG_OUT:
            return
        try:
            self.acd.set_state(agent_id, "logged_out", by="system")
        except (SeatStateError, ConsoleError) as exc:
            log.warning("seat %s: could not log it out (console gone): %s", agent_id, exc)
            return
        gone = self.presence.gone_since(agent_id)
        log.warning("console of agent %s gone for %.0f s: seat logged out (it was %s)",
                    agent_id, self.acd.clock() - gone if gone is not None else 0.0, was.value)
        self._push_role("presence", {"agent_id": agent_id, "console": "gone",
                                     "since": gone, "seat": action.value})

    def _grace_over(self, agent_id: str) -> None:
        self._presence_timers.pop(agent_id, None)
        rt = self.acd.seats.get(agent_id)
        if rt is None or not self.presence.absent(agent_id):
            return
        action = self.presence.expired(agent_id, rt.seat.state)
        if action is not PresenceAction.NONE:
            log.warning("console of agent %s gone for %.0f s (seat %s): %s", agent_id,
                        self.presence_grace_s, rt.seat.state.value, action.value)
        if action is PresenceAction.NOT_READY:
            self._not_ready_console_gone(agent_id)
        elif rt.seat.state is SeatState.LOGGED_OUT:
            return  # logged out: no console is what is expected
        self._push_role("presence", {"agent_id": agent_id, "console": "gone",
                                     "since": self.presence.gone_since(agent_id),
                                     "seat": action.value})

    def _presence_seat_moved(self, agent_id: str, *, settled: bool = False) -> None:
        """A seat moved (the ACD's ``seat`` event): a seat whose console went during a call
        goes not ready as the call ends. READY is caught before the ACD offers the seat
        anything (the event comes before its dispatch); WRAP_UP once the ACD is done."""
        rt = self.acd.seats.get(agent_id)
        if rt is None:
            return
        last = rt.seat.history[-1] if rt.seat.history else None
        chosen = last is not None and last.to_state is rt.seat.state and last.by != "system"
        action = self.presence.seat_moved(agent_id, rt.seat.state, chosen=chosen,
                                          settled=settled)
        if action is PresenceAction.NOT_READY:
            self._not_ready_console_gone(agent_id)
        elif action is PresenceAction.SOON:
            asyncio.get_running_loop().call_soon(self._settled, agent_id)

    def _settled(self, agent_id: str) -> None:
        self._presence_seat_moved(agent_id, settled=True)

    def _not_ready_console_gone(self, agent_id: str) -> None:
        try:
            self.acd.set_state(agent_id, "not_ready", CONSOLE_GONE, by="system")
        except (SeatStateError, ConsoleError) as exc:
            log.warning("seat %s: could not set it not ready (console gone): %s", agent_id, exc)

    async def command(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        me = agent.agent_id
        try:
            return await self._command(agent, me, request)
        except SeatStateError as exc:
            raise ConsoleError("invalid_state", str(exc)) from exc

    async def _command(self, agent: AgentIdentity, me: str,
                       request: p.Request) -> dict[str, Any]:
        c = self.control
        match request:
            case p.UsePhone(phone=phone):
                rt = self.acd.use_phone(me, phone)
                return {"seat": rt.data(), "phone": rt.agent.endpoint}
            case p.SetState(state=state, reason=reason):
                rt = self.acd.set_state(me, state, _reason(state, reason), by=me)
                if state == "logged_out" and self.push is not None:
                    # every console of the agent: this one gets its reply first
                    self.push.end_sessions(me, LOGGED_OUT_ELSEWHERE)
                return {"seat": rt.data()}
            case p.ForceState(agent_id=target, state=state, reason=reason):
                rt = self.acd.set_state(target, state, _reason(state, reason) or "forced",
                                        by=me, force=True)
                if state == "logged_out" and self.push is not None:
                    self.push.end_sessions(target, f"logged out by {me}")
                return {"seat": rt.data()}
            case p.Hangup():
                await c.hangup(me)
            case p.Hold():
                await c.hold(me)
            case p.Resume():
                await c.resume(me)
            case p.Recording(action=action):
                await c.recording(me, action == "pause")
            case p.Transfer(target=target):
                await c.transfer(me, target)
            case p.Consult(target=target):
                await c.consult(me, target)
            case p.ConsultComplete():
                await c.consult_complete(me)
            case p.ConsultCancel():
                await c.consult_cancel(me)
            case p.Conference(target=target):
                await c.conference(me, target)
            case p.ClickToCall():
                return self._click_to_call(me, request)
            case p.Spy(agent_id=target, mode=mode):
                await c.spy(me, target, mode)
            case p.SpyStop(agent_id=target):
                await c.spy_stop(me, target)
            case p.WrapUp():
                return await self._wrap_up(me, request)
            case p.CreateTask():
                return await self._task(me, request)
            case (p.Tasks() | p.ClaimTask() | p.ReleaseTask() | p.TaskCall() | p.TaskOutcome()
                  | p.RescheduleTask() | p.AssignTask() | p.CancelTask() | p.DialerJoin()
                  | p.DialerLeave() | p.TaskProgress() | p.TaskReport()):
                return await self.tasks.handle(agent, request)
            case p.Recordings() | p.RecordingPlay():
                if self.playback is None:
                    raise ConsoleError("unavailable", "recordings are not offered here")
                return await self.playback.handle(agent, request)
            case p.SendMessage():
                return await self.channels.message(me, self._about(me, request), request)
            case p.Deliveries():
                return await self.channels.deliveries(self._about(me, request), request)
            case p.Subscriptions():
                return await self.channels.subscriptions(self._about(me, request))
            case p.Subscribe():
                return await self.channels.subscribe(me, self._about(me, request), request)
            case p.Unsubscribe():
                return await self.channels.unsubscribe(self._about(me, request), request)
            case p.Contacts():
                return await contacts.list_contacts(self.db, request)
            case p.TakeContact(contact_id=contact_id):
                return self._contact_moved(await contacts.move_contact(self.db, agent,
                                                                       contact_id, "take"))
            case p.CloseContact(contact_id=contact_id):
                return self._contact_moved(await contacts.move_contact(self.db, agent,
                                                                       contact_id, "close"))
            case p.Directory():
                return directory_reply(self.acd, me, self.directory_numbers)
            case p.Wallboard():
                return self.wallboard()
            case p.Intervals():
                return await intervals_reply(self.db, self.acd.settings, request, agent,
                                             now=self.acd.clock(), site=self.site)
            case _:
                raise ConsoleError("unknown_command", f"{request.type} is not handled here")
        return {}

    async def _wrap_up(self, me: str, req: p.WrapUp) -> dict[str, Any]:
        rt = self.acd.seat(me)
        last = rt.last_call
        if last is None or last.call_id != req.call_id:
            raise ConsoleError("not_found", "no such call of yours to wrap up")
        async with transaction(self.db):
            await self.db.execute(
                "INSERT INTO wrapups (call_id, agent_id, account, disposition, notes, at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, agent_id) DO UPDATE SET"
                " disposition = excluded.disposition, notes = excluded.notes, at = excluded.at",
                (req.call_id, me, last.waiter.account, req.disposition, req.notes,
                 self.acd.clock()))
        self.acd.disposition_saved(me, req.call_id)
        if rt.seat.state is SeatState.WRAP_UP:
            self.acd.set_state(me, "ready", by=me)
        return {"saved": True, "seat": rt.data()}

    def _callers(self, me: str, call_id: str) -> Waiter:
        """The caller of ``call_id`` if it is ``me``'s current or last call, else ``not_found``
        (an agent may not reach another agent's customers by guessing call ids)."""
        rt = self.acd.seat(me)
        for call in (rt.call, rt.last_call):
            if call is not None and call.call_id == call_id:
                return call.waiter
        raise ConsoleError("not_found", "no such call of yours")

    def _account(self, me: str, call_id: str, account: str) -> str:
        """The account a command is about: the call's customer when ``call_id`` is given (an
        account sent as well must be that one), else ``account``."""
        if not call_id:
            return account
        known = self._callers(me, call_id).account
        if account and account != known:
            raise ConsoleError("not_found", "that account is not the customer of that call")
        return known

    def _click_to_call(self, me: str, req: p.ClickToCall) -> dict[str, Any]:
        number, account = req.number, req.account
        if req.call_id:
            account = self._account(me, req.call_id, account)
            if not number:
                number = self._callers(me, req.call_id).phone
                if not number:
                    raise ConsoleError("not_found", "no number is known for that call")
        return {"call_id": self.control.click_to_call(me, number, account)}

    async def _task(self, me: str, req: p.CreateTask) -> dict[str, Any]:
        owner = req.agent_id or me
        self.acd.seat(owner)
        account, phone = self._account(me, req.call_id, req.account), req.phone
        if req.call_id and not phone:
            phone = self._callers(me, req.call_id).phone
        # pushed by the store's listener (``ConsoleTasks.changed``)
        task_id = await self.tasks.store.create(NewTask(
            req.text, me, account=account, phone=phone, agent_id=owner, due_at=req.due_at))
        return {"task_id": task_id}

    # -- the channels ------------------------------------------------------------------------

    def _about(self, me: str, req: p.SendMessage | p.Deliveries | p.Subscriptions
               | p.Subscribe | p.Unsubscribe) -> str:
        """The customer a channel request is about (``_account``), refusing a call whose caller
        was not identified."""
        found = self._account(me, req.call_id, req.account)
        if not found:
            raise ConsoleError("not_found", "the caller of that call was not identified")
        return found

    def _contact_moved(self, contact: dict[str, Any]) -> dict[str, Any]:
        self._push_role("contact", contact, p.Role.AGENT)
        return {"contact": contact}

    # -- pushes --------------------------------------------------------------------------------

    def on_acd(self, notice: Notice) -> None:
        """The ACD's notices, pushed to the consoles they concern (by type)."""
        now = self.acd.clock()
        if now - self.figures.start >= 86400:
            self.figures = self._new_figures(now)
        match notice:
            case QueueLogged():
                self.figures.feed(notice)
            case SeatChanged(agent_id=agent_id, seat=seat, from_state=from_state):
                data = dict(seat)
                self._push_agent(agent_id, "seat", data)
                self.figures.feed(SeatEvent(float(str(data["since"])), agent_id,
                                            SeatState(from_state), SeatState(str(data["state"]))))
                self._board_changed()
                # last, so the figures see this move before any it causes
                self._presence_seat_moved(agent_id)
            case QueuesChanged():
                self._board_changed(queues=True)
            case CallOffered(agent_id=agent_id, offer=offer):
                self.screen.offered(agent_id, offer)
            case CallConnected(agent_id=agent_id, call_id=call_id, recording=recording):
                self._push_agent(agent_id, "call_connected",
                                 {"call_id": call_id, "recording": recording})
            case CallHeld(agent_id=agent_id, call_id=call_id):
                self._push_agent(agent_id, "call_held", {"call_id": call_id})
            case CallResumed(agent_id=agent_id, call_id=call_id):
                self._push_agent(agent_id, "call_resumed", {"call_id": call_id})
            case CallEnded():
                self._push_agent(notice.agent_id, "call_ended", {
                    "call_id": notice.call_id, "wrap_up_s": notice.wrap_up_s,
                    "answered": notice.answered,
                    "disposition_required": notice.disposition_required})
            case RecordingChanged(agent_id=agent_id, call_id=call_id, state=state):
                self._push_agent(agent_id, "recording", {"call_id": call_id, "state": state})
            case ConsultChanged(agent_id=agent_id, call_id=call_id, state=state, target=target):
                self._push_agent(agent_id, "consult",
                                 {"call_id": call_id, "state": state, "target": target})
            case ConferenceChanged(agent_id=agent_id, call_id=call_id, target=target):
                self._push_agent(agent_id, "conference", {"call_id": call_id, "target": target})
            case MonitorChanged():
                data = {"supervisor_id": notice.supervisor_id, "agent_id": notice.agent_id,
                        "call_id": notice.call_id, "mode": notice.mode, "state": notice.state}
                self._push_agent(notice.supervisor_id, "monitor", data)
                self._push_agent(notice.agent_id, "monitor", data)
            case WrapUpOverdue(agent_id=agent_id, call_id=call_id, since=since):
                data = {"agent_id": agent_id, "call_id": call_id, "since": since}
                self._push_agent(agent_id, "wrap_up_overdue", data)
                self._push_role("wrap_up_overdue", data)
            case Announced():
                pass

    def on_channel_event(self, event: RelayEvent) -> None:
        """The outbox relay's listener (``Relay.add_listener``): a ``contact`` event to every
        agent for an inbound contact; a ``delivery`` event to supervisors, and to the agent who
        asked for the message when this engine knows who did."""
        match event:
            case ContactArrived(contact=c):
                self._push_role("contact", contacts.contact_row((
                    c.contact_id, c.channel, c.sender, c.subject, c.text, c.attachment,
                    c.pages, "", c.received_at.timestamp(), "new", "")), p.Role.AGENT)
            case DeliveryUpdate():
                data = {"message_id": event.message_id, "channel": event.channel,
                        "account_masked": mask(event.account), "ref": event.ref,
                        "state": event.state.value,
                        "report": event.report.value if event.report is not None else None,
                        "reason": event.reason, "at": event.at}
                self._push_role("delivery", data)
                requester = str(getattr(event, "requested_by", "") or "") or \
                    self.channels.requested_by.get(event.ref, "")
                if requester:
                    self._push_requester(requester, data)
                elif event.ref and _loop_running():
                    self._spawn(self._find_requester(event.ref, data))

    def _push_requester(self, agent_id: str, data: dict[str, Any]) -> None:
        rt = self.acd.seats.get(agent_id)
        if rt is not None and rt.agent.role in _SUPERVISING:
            return  # the supervisors' push reached them
        self._push_agent(agent_id, "delivery", data)

    async def _find_requester(self, ref: str, data: dict[str, Any]) -> None:
        """Who asked for ``ref`` (a console request of an earlier run): the request's detail."""
        async with self.db.execute("SELECT detail FROM service_requests WHERE ref = ?",
                                   (ref,)) as cur:
            row = await cur.fetchone()
        try:
            detail = json.loads(str(row[0])) if row is not None else {}
        except ValueError:
            return
        by = detail.get("by") if isinstance(detail, dict) else None
        if isinstance(by, str) and by:
            self.channels.requested_by[ref] = by
            self._push_requester(by, data)

    def queue_figures(self) -> list[dict[str, Any]]:
        now = self.acd.clock()
        live = {f.queue: f for f in self.figures.queues(now)}
        out = []
        for name, queue in self.acd.waiting.items():
            f = live.get(name)
            waits = [now - w.arrived_at for w in queue.values()]
            out.append({"name": name, "waiting": len(queue),
                        "longest_wait_s": round(max(waits), 1) if waits else 0.0,
                        "answered": f.answered if f else 0,
                        "abandoned": f.abandoned if f else 0,
                        "service_level": f.service_level if f else None,
                        "asa_s": f.asa_s if f else None,
                        "aht_s": f.aht_s if f else None,
                        "target_s": self.acd.queues[name].target_s,
                        "target_share": self.acd.queues[name].target_share})
        return out

    def wallboard(self) -> dict[str, Any]:
        return {"queues": self.queue_figures(),
                "seats": [board_seat(rt) for rt in self.acd.seats.values()],
                "waiting": self.acd.queue_snapshot(),
                "agents": [dataclasses.asdict(f)
                           for f in self.figures.agents(self.acd.clock())],
                "alerts": {q.name: {"longest_wait_s": q.alert_longest_wait_s,
                                    "service_level": q.alert_service_level or q.target_share}
                           for q in self.acd.queues.values()}}

    def _board_changed(self, queues: bool = False) -> None:
        """Push the wallboard (and, after a queue change, every agent's queue figures) once for
        a burst of changes: at the end of this turn of the loop, and at most every
        ``BOARD_INTERVAL_S``. One routing decision moves several seats and queues; a board per
        move, to every supervisor, was most of the console's cost under load."""
        self._queues_changed |= queues
        if not _loop_running():
            self._push_board()
            return
        if self._board_push is not None:
            return
        loop = asyncio.get_running_loop()
        at = max(loop.time(), self._board_pushed_at + BOARD_INTERVAL_S)
        self._board_push = loop.call_at(at, self._push_board)

    def _push_board(self) -> None:
        self._board_push = None
        if _loop_running():
            self._board_pushed_at = asyncio.get_running_loop().time()
        board = self.wallboard()
        self._push_state("wallboard", board)
        if self._queues_changed:
            self._queues_changed = False
            self._push_state("queues", {"queues": board["queues"]}, p.Role.AGENT)

    def _push_agent(self, agent_id: str, name: str, data: dict[str, Any]) -> None:
        if self.push is not None:
            self.push.to_agent(agent_id, p.Event(event=name, data=data))

    def _push_state(self, name: str, data: dict[str, Any], role: p.Role = p.Role.SUPERVISOR
                    ) -> None:
        """A state that replaces the one pushed before it (``ConsolePush.state_to_role``)."""
        if self.push is not None:
            self.push.state_to_role(role, p.Event(event=name, data=data))

    def _push_role(self, name: str, data: dict[str, Any], role: p.Role = p.Role.SUPERVISOR
                   ) -> None:
        if self.push is not None:
            self.push.to_role(role, p.Event(event=name, data=data))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self.tasks.close()
        if self._board_push is not None:
            self._board_push.cancel()
            self._board_push = None
        for timers in (self._presence_timers, self._logout_timers):
            for timer in timers.values():
                timer.cancel()
            timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _reason(state: str, reason: str) -> str:
    return reason if state == "not_ready" else ""


def board_seat(rt: SeatRuntime) -> dict[str, Any]:
    """A seat as the wallboard shows it: its call as a supervisor reads it, the caller's
    masked number and since when they talk (``None`` while it rings), besides the call id."""
    call = rt.call
    return {**rt.data(), "caller": mask(call.waiter.phone) if call else "",
            "talking_since": call.connected_at if call else None}


def _call_state(rt: SeatRuntime) -> str:
    return {SeatState.RINGING: "ringing", SeatState.ON_CALL: "talking",
            SeatState.ON_HOLD: "held", SeatState.WRAP_UP: "wrap_up"}.get(rt.seat.state, "")
