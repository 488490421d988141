"""The ACD's asyncio edge: carries out what the core (``acd/core.py``) decides.

``Acd`` is the core with the world attached. Every effect the core emits (``acd/effects.py``) is
carried out here, in the order emitted: rows go to an ``OrderedWriter`` (one writer task, in
order), notices to the listeners at once, timers to the event loop, and the Asterisk work (rings,
announcements, moves back to the queue, hang-ups) to AMI tasks whose outcomes come back to the
core as inputs. Asterisk's events go to the core first; then the call controls waiting for the
event that proves their last step (``expect``) are woken, so a control resumes with the core's
state already reflecting the event.

The core is the ACD's only state: this module keeps only handles (the AMI link, the timers, the
tasks in flight, the pending proofs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from callcenter.acd.core import AcdCore
from callcenter.acd.effects import (
    Announce,
    ArmTimer,
    ArmWrapUp,
    CancelWrapUp,
    Effect,
    Hangup,
    Requeue,
    Ring,
    Row,
)
from callcenter.acd.notices import Announced, Listener, Notice
from callcenter.config import AcdSettings
from callcenter.errors import AmiActionError, AmiConnectionError, CallCenterError, TelephonyError
from callcenter.store.agents import load_agents
from callcenter.store.writer import OrderedWriter
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent

log = logging.getLogger(__name__)

#: the seats as the engine left them, for ``AcdCore.restore_seats``
RESTORE_SEATS = ("SELECT agent_id, state, reason, since, ready_since, calls_taken FROM seats")
#: the calls the seats were on, with their queue and when they connected
RESTORE_CALLS = (
    "SELECT s.agent_id, s.call_id, s.agent_channel, s.caller_channel,"
    " COALESCE(q.queue, ''), COALESCE(q.at, s.since) FROM seats s"
    " LEFT JOIN queue_log q ON q.id = (SELECT max(id) FROM queue_log"
    "   WHERE call_id = s.call_id AND agent_id = s.agent_id AND event = 'connect')"
    " WHERE s.call_id != ''")
#: the callers waiting, in their order, for ``AcdCore.restore_waiting``
RESTORE_WAITING = (
    "SELECT call_id, queue, tier, arrived_at, channel, uniqueid, account, manager,"
    " phone, callback, context, position_key FROM queue_waiting"
    " ORDER BY COALESCE(position_key, arrived_at)")


@dataclass
class _Proof:
    """A call control waiting for the Asterisk event that proves its last step."""

    matches: Callable[[AmiEvent], bool]
    future: asyncio.Future[AmiEvent]


class Acd(AcdCore):
    def __init__(self, settings: AcdSettings, db: aiosqlite.Connection,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, self._execute, clock)
        self.db = db
        self.ami: AmiClient | None = None
        self.log = OrderedWriter(db, "acd-log")
        self.listeners: list[Listener] = []
        #: the ring tasks and other Asterisk work in flight (awaited on close)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._wrap_timers: dict[str, asyncio.TimerHandle] = {}
        #: call controls waiting for the Asterisk event that proves their last step
        self._proofs: list[_Proof] = []

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.log.start()
        self.load(await load_agents(self.db))
        async with self.db.execute(RESTORE_SEATS) as cur:
            seats = await cur.fetchall()
        async with self.db.execute(RESTORE_CALLS) as cur:
            calls = await cur.fetchall()
        self.restore_seats(seats, calls)
        async with self.db.execute(RESTORE_WAITING) as cur:
            self.restore_waiting(await cur.fetchall())

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for handle in self._wrap_timers.values():
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.log.close()

    def attach(self, ami: AmiClient, *, linked: bool = True) -> None:
        """Carry out Asterisk's work over ``ami`` and hear its events. ``linked``: whether it is
        logged in already (the engine attaches before the first login: its ``resync`` says
        when the link is up)."""
        self.ami = ami
        self.linked = linked
        ami.add_handler(self.on_ami_event)

    async def resync(self, live: Mapping[str, str], lost_at: float | None = None) -> None:
        """After (re)connecting: rings whose originate answer was lost with the link are
        settled first, from Asterisk's channels; then the core reconciles the rest with what
        lives (``AcdCore.reconcile``)."""
        self.linked = True
        self.restore_rings(live)
        await self._settle_rings()
        self.reconcile(live, lost_at)

    async def flush(self) -> None:
        await self.log.flush()

    # -- Asterisk's events -----------------------------------------------------------------

    def on_ami_event(self, event: AmiEvent) -> None:
        """The core sees the event first; the call controls waiting for its proof last."""
        super().on_ami_event(event)
        for proof in list(self._proofs):
            if not proof.future.done() and proof.matches(event):
                proof.future.set_result(event)

    def expect(self, matches: Callable[[AmiEvent], bool]) -> asyncio.Future[AmiEvent]:
        """A future for the next Asterisk event ``matches`` accepts: register it *before* the
        action whose effect it proves, then await it (``proven``)."""
        proof = _Proof(matches, asyncio.get_running_loop().create_future())
        self._proofs.append(proof)
        proof.future.add_done_callback(lambda _f: self._proofs.remove(proof))
        return proof.future

    async def hangup(self, channel: str) -> None:
        await self._hangup(channel)

    # -- effects ---------------------------------------------------------------------------

    def _execute(self, effect: Effect) -> None:
        match effect:
            case Row(sql, params):
                self.log.put(sql, params)
            case Ring():
                self._spawn(self._originate(effect))
            case Announce(waiter, exten, files):
                if self.ami is not None:
                    self._spawn(self._play(waiter.call_id, exten, files))
            case Requeue():
                self._spawn(self._requeue(effect))
            case Hangup(channel):
                self._spawn(self._hangup(channel))
            case ArmTimer(at):
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                if at is not None:
                    self._timer = asyncio.get_running_loop().call_later(
                        max(0.05, at - self.clock()), self._timer_fired)
            case ArmWrapUp(agent_id, after_s):
                self._cancel_wrap_up(agent_id)
                self._wrap_timers[agent_id] = asyncio.get_running_loop().call_later(
                    after_s, self._wrap_up_fired, agent_id)
            case CancelWrapUp(agent_id):
                self._cancel_wrap_up(agent_id)
            case _:
                self._deliver(effect)

    def _deliver(self, notice: Notice) -> None:
        for listener in list(self.listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("ACD listener failed on %s", type(notice).__name__)

    def _timer_fired(self) -> None:
        self._timer = None
        self.on_timer()

    def _wrap_up_fired(self, agent_id: str) -> None:
        self._wrap_timers.pop(agent_id, None)
        self.wrap_up_expired(agent_id)

    def _cancel_wrap_up(self, agent_id: str) -> None:
        handle = self._wrap_timers.pop(agent_id, None)
        if handle is not None:
            handle.cancel()

    async def _originate(self, ring: Ring) -> None:
        rt, call = ring.seat, ring.call
        if not ring.variables:
            self.callback_refused(rt, call)
            return
        try:
            if self.ami is None:
                raise TelephonyError("no AMI link")
            _, answer = await self.ami.originate(
                wait_s=ring.ring_s + 10, Channel=ring.endpoint, Context="acd-agent",
                Exten=ring.exten, Priority="1", ChannelId=call.agent_uniqueid,
                OtherChannelId=f"{call.agent_uniqueid}-2", Timeout=str(int(ring.ring_s * 1000)),
                CallerID=ring.caller_id, Variable=list(ring.variables))
        except AmiConnectionError as exc:
            if self.ring_link_lost(rt, call, str(exc)) and self.ami is not None \
                    and self.ami.connected.is_set():
                await self._settle_rings()  # the link is up: no resync will come
            return
        except (AmiActionError, TelephonyError) as exc:
            self.ring_failed(rt, call, str(exc))
            return
        self.ring_answered(rt, call, answer.get("Channel", ""))

    async def _settle_rings(self) -> None:
        """Read Asterisk's channels for the rings whose originate answer was lost; hang up the
        legs still ringing before their callers are offered again (never two legs for one
        caller), then let the core settle them."""
        if self.ami is None or not self.unsettled():
            return
        try:
            rows = await self.ami.action_list("CoreShowChannels")
        except AmiConnectionError:
            return  # lost again: the next resync settles them
        channels = {row.get("Uniqueid", ""): row for row in rows}
        for uniqueid in self.stale_rings(channels):
            await self._hangup(uniqueid)
        self.settle_rings(channels)

    async def _play(self, call_id: str, exten: str, files: str) -> None:
        """Play ``files`` to a waiting caller from ``[queue-hold]``'s ``exten``."""
        assert self.ami is not None
        waiter = self.find_waiter(call_id=call_id)
        if waiter is None or not waiter.channel or waiter.ringing:
            return
        await self.ami.action("Setvar", Channel=waiter.channel, Variable="CC_ANNOUNCE",
                              Value=files)
        if waiter.ringing:
            return  # an agent is being rung: the redirect would race the bridge
        await self.ami.action("Redirect", Channel=waiter.channel, Context="queue-hold",
                              Exten=exten, Priority="1")
        self._deliver(Announced(waiter.call_id, files))

    async def _requeue(self, move: Requeue) -> None:
        assert self.ami is not None
        waiter = move.waiter
        if move.set_queue:
            await self.ami.action("Setvar", Channel=waiter.channel, Variable="CC_QUEUE",
                                  Value=move.queue)
        await self.ami.action("Redirect", Channel=waiter.channel, Context="queue-hold",
                              Exten="s", Priority="1")
        self.requeued(waiter, move.queue, move.exclude)
        if move.hang_up:
            await self._hangup(move.hang_up)

    async def _hangup(self, channel: str) -> None:
        if self.ami is None:
            return
        with contextlib.suppress(AmiActionError):
            await self.ami.action("Hangup", Channel=channel)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._guard(coro))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            coro.close()  # cancelled before it started (closing): not "never awaited"

        task.add_done_callback(done)

    @staticmethod
    async def _guard(coro: Any) -> None:
        try:
            await coro
        except CallCenterError as exc:
            log.warning("ACD: %s", exc)
        except Exception:
            log.exception("ACD task failed")
