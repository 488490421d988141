"""The controller's edge: AMI events in, model changes out to the call recorder.

It subscribes to the AMI client, feeds every typed event to ``CallModel`` (synchronously, in
order) and hands the resulting changes to the ``CallRecorder``. After every (re)login it resyncs
the model from ``CoreShowChannels``.

It notes when the AMI link was lost (``link_lost_at``): channels gone by the resync ended then,
not at the resync. The first resync of a run closes the call records a crashed run left open,
as of the moment that run was last known alive (the recorder's heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from callcenter.atcc.model import CallEnded, CallModel, Change
from callcenter.store.calls import CallRecorder
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent, CoreShowChannel, parse_event

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, recorder: CallRecorder, clock: Callable[[], float] = time.time) -> None:
        self.model = CallModel()
        self.recorder = recorder
        self.clock = clock
        self.ami: AmiClient | None = None
        self.resyncs = 0
        self._ended_waiters: dict[str, list[asyncio.Future[None]]] = {}
        #: called with (call_id, kind, detail) for every engine-side timeline note
        self.note_listeners: list[Callable[[str, str, Mapping[str, str]], None]] = []
        self._changed = asyncio.Event()
        #: when the AMI link was last lost (our clock); cleared by the resync that follows
        self.link_lost_at: float | None = None
        self._link_watch: asyncio.Task[None] | None = None

    def attach(self, ami: AmiClient) -> None:
        self.ami = ami
        ami.add_handler(self.on_event)
        self._link_watch = asyncio.get_running_loop().create_task(
            self._watch_link(ami), name="controller-link-watch")

    async def close(self) -> None:
        if self._link_watch is not None:
            self._link_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._link_watch
            self._link_watch = None

    async def _watch_link(self, ami: AmiClient) -> None:
        while True:
            await ami.disconnected.wait()
            if self.link_lost_at is None:
                self.link_lost_at = self.clock()
            await ami.connected.wait()

    def on_event(self, event: AmiEvent) -> None:
        self._publish(self.model.apply(event, self.clock()))

    def note(self, call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        """Record an engine-side step (IVR, routing) on the call's timeline."""
        self._publish(self.model.note(call_id, kind, detail, self.clock()))
        for listener in list(self.note_listeners):
            listener(call_id, kind, detail)

    async def resync(self) -> float | None:
        """Reconcile the model (and open call records) with Asterisk's own list of channels.

        Returns when we last knew the calls alive (the link lost, or the previous run's last
        heartbeat on the first resync of this run; None: not known), for the ACD to use alike.
        """
        if self.ami is None:
            return None
        first = self.resyncs == 0
        lost_at = self.link_lost_at
        if first:
            lost_at = await self.recorder.alive_before_start()
        token = self.model.resync_token()
        rows = await self.ami.action_list("CoreShowChannels")
        snapshot = [e for e in map(parse_event, rows) if isinstance(e, CoreShowChannel)]
        now = self.clock()
        changes = self.model.resync(snapshot, token, now, lost_at)
        self.resyncs += 1
        log.info("resynced from Asterisk: %d channels, %d changes", len(snapshot), len(changes))
        self._publish(changes)
        # Records still open that Asterisk no longer has: left by a crashed run, or notes on
        # calls the model never saw. Queued behind the changes above (and any spool replay).
        self.recorder.close_orphans(
            self.model.calls, lost_at, now,
            "ended while the engine was down" if first else "ended while AMI was down")
        self.link_lost_at = None
        return lost_at

    def _publish(self, changes: list[Change]) -> None:
        if not changes:
            return
        self.recorder.put(changes)
        for change in changes:
            if isinstance(change, CallEnded):
                for fut in self._ended_waiters.pop(change.call.id, []):
                    if not fut.done():
                        fut.set_result(None)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self) -> None:
        """Wait for the next change of the model (tests and the CLI wait on it, no polling)."""
        await self._changed.wait()

    async def wait_call_ended(self, call_id: str) -> None:
        if call_id not in self.model.calls:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended_waiters.setdefault(call_id, []).append(fut)
        await fut
