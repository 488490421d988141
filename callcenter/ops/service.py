"""The engine's operations service: its metrics wired to the engine, the administration API
(``admin/``, mounted at ``/api``), and the HTTP server.

``OpsService`` is made with the engine (so the FastAGI server can be handed its observer when it
is built) and started last, once everything it observes runs; it stops first. What it reads of
the engine is public: the controller's live calls and notes, the ACD's queues, seats and
notices, the console backend's figures of the day, the AMI links, the FastAGI server's counters,
the outbox relay's events and the ``outbox`` table. ``sample`` turns that into the plain
``EngineSample`` the pure families are made from (``metrics.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from callcenter.acd.notices import Notice, QueueLogged
from callcenter.channels.relay import DeliveryUpdate, RelayEvent
from callcenter.config import Settings
from callcenter.ops.http import OpsServer, make_app
from callcenter.ops.metrics import (
    AgiSample,
    EngineMetrics,
    EngineSample,
    LinkSample,
    OutboxSample,
    QueueSample,
    call_states,
    longest_wait,
    outbox_depth,
    seat_counts,
)

if TYPE_CHECKING:
    from callcenter.admin.services import AdminServices
    from callcenter.engine import Engine

__all__ = ["OpsService"]

log = logging.getLogger(__name__)

#: open outbox rows by channel and state, and the oldest queued one (one scan per scrape)
OUTBOX_DEPTH = ("SELECT channel, state, count(*), min(created_at) FROM outbox"
                " WHERE state IN ('queued', 'sent') GROUP BY channel, state")


class OpsService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = EngineMetrics(self.sample)
        self.server: OpsServer | None = None
        self._engine: Engine | None = None
        self._outbox: OutboxSample | None = None
        self._lag: asyncio.Task[None] | None = None
        self._detach: list[Callable[[], None]] = []
        #: the administration API's services (``/api``), once started
        self.admin: AdminServices | None = None

    @property
    def port(self) -> int:
        """The operations server's bound port."""
        if self.server is None:
            raise RuntimeError("the operations server is not started")
        return self.server.port

    def agi_round_trip(self, command: str, seconds: float) -> None:
        """The FastAGI server's round-trip observer."""
        self.metrics.on_agi_round_trip(command, seconds)

    async def start(self, engine: Engine) -> None:
        """Listen to the engine's parts, sample the loop's lag, serve HTTP."""
        self._engine = engine
        self._attach(engine)
        self._lag = asyncio.create_task(self._probe_lag(), name="ops-loop-lag")
        ops = self.settings.ops
        mounts = {}
        if engine.db is not None:
            from callcenter.admin.api import admin_app
            from callcenter.admin.services import AdminServices

            self.admin = AdminServices(self.settings, engine.db, acd=engine.acd,
                                       flows=engine.flows, keeper=engine.recordings,
                                       strategies=engine.strategy_host)
            mounts["/api"] = admin_app(self.admin)
        self.server = OpsServer(make_app(metrics=self.scrape, mounts=mounts), ops.host, ops.port)
        await self.server.start()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self._lag is not None:
            self._lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag
            self._lag = None
        for detach in reversed(self._detach):
            with contextlib.suppress(ValueError):
                detach()
        self._detach.clear()
        self._engine = None

    async def scrape(self) -> bytes:
        """``GET /metrics``: what needs the database first, then the exposition."""
        await self._refresh_outbox()
        return self.metrics.exposition()

    # -- listeners ------------------------------------------------------------------------------

    def _attach(self, engine: Engine) -> None:
        m = self.metrics
        if engine.controller is not None:
            notes = engine.controller.note_listeners
            notes.append(m.on_note)
            self._detach.append(lambda: notes.remove(m.on_note))
        acd = engine.acd
        if acd is not None:
            def on_acd(notice: Notice) -> None:
                if isinstance(notice, QueueLogged):
                    queue = acd.queues.get(notice.queue)
                    m.on_queue_event(notice, queue.target_s if queue is not None else None)

            acd.listeners.append(on_acd)
            self._detach.append(lambda: acd.listeners.remove(on_acd))
        if engine.ami is not None:
            observers = engine.ami.action_observers
            observers.append(m.on_ami_action)
            self._detach.append(lambda: observers.remove(m.on_ami_action))
        relay = engine.relay
        if relay is not None:
            def on_relay(event: RelayEvent) -> None:
                if isinstance(event, DeliveryUpdate):
                    m.on_delivery(event.channel, event.state.value)

            relay.add_listener(on_relay)
            self._detach.append(lambda: relay.remove_listener(on_relay))

    async def _probe_lag(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.settings.ops.lag_tick_s
        while True:
            started = loop.time()
            await asyncio.sleep(tick)
            self.metrics.on_loop_lag(max(0.0, loop.time() - started - tick))

    # -- what is read at scrape time ------------------------------------------------------------

    async def _refresh_outbox(self) -> None:
        engine = self._engine
        if engine is None or engine.db is None:
            self._outbox = None
            return
        try:
            async with engine.db.execute(OUTBOX_DEPTH) as cur:
                rows = [tuple(r) for r in await cur.fetchall()]
        except sqlite3.Error as exc:  # a busy or closing database: no outbox figures this time
            log.warning("metrics: outbox not read: %s", exc)
            self._outbox = None
            return
        now = engine.acd_clock()
        queued_at = [float(r[3]) for r in rows if r[1] == "queued" and r[3] is not None]
        self._outbox = OutboxSample(
            outbox_depth(((str(r[0]), str(r[1]), int(r[2])) for r in rows),
                         self.settings.channels.kinds),
            max(0.0, now - min(queued_at)) if queued_at else None)

    def sample(self) -> EngineSample:
        """The engine's state now, as plain values."""
        engine = self._engine
        if engine is None:
            return EngineSample(calls={})
        live: list[str] = []
        if engine.controller is not None:
            live = list(engine.controller.model.calls)
        in_ivr = self.metrics.ivr.current(set(live))
        acd = engine.acd
        queues: list[QueueSample] = []
        seats: dict[str, int] | None = None
        waiting: set[str] = set()
        at_seats: dict[str, str] = {}
        if acd is not None:
            now = acd.clock()
            levels: dict[str, float | None] = {}
            backend = engine.console_backend
            if backend is not None:
                levels = {f.queue: f.service_level for f in backend.figures.queues(now)}
            for name, settings in acd.queues.items():
                waiters = acd.waiting.get(name, {})
                waiting.update(waiters)
                queues.append(QueueSample(
                    name, len(waiters), longest_wait((w.arrived_at for w in waiters.values()),
                                                     now),
                    settings.target_s, levels.get(name)))
            for rt in acd.seats.values():
                if rt.call is not None:
                    at_seats[rt.call.call_id] = rt.call.life.state.value
            seats = seat_counts(rt.seat.state.value for rt in acd.seats.values())
        links: list[LinkSample] = []
        if engine.ami is not None:
            links.append(LinkSample("control", engine.ami.connected.is_set(),
                                    engine.ami.connections))
        if engine.phones is not None:
            links.append(LinkSample("phones", engine.phones.ami.connected.is_set(),
                                    engine.phones.ami.connections))
        if engine.key_tap is not None:
            tap = engine.key_tap.ami
            links.append(LinkSample("keys", engine.key_tap.connected,
                                    tap.connections if tap is not None else 0))
        agi = None
        if engine.agi is not None:
            a = engine.agi
            agi = AgiSample(a.active_sessions, a.max_sessions, a.sessions_started,
                            a.refused_sessions, a.refused_busy)
        return EngineSample(calls=call_states(live, in_ivr, waiting, at_seats), queues=queues,
                            seats=seats, ami=links, agi=agi, outbox=self._outbox)
