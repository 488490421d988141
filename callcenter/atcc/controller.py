"""The controller's edge: AMI events in, model changes out to the call recorder.

It subscribes to the AMI client, feeds every typed event to ``CallModel`` (synchronously, in
order) and hands the resulting changes to the ``CallRecorder``. After every (re)login it resyncs
the model from ``CoreShowChannels``.
"""

from __future__ import annotations

import asyncio
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

    def attach(self, ami: AmiClient) -> None:
        self.ami = ami
        ami.add_handler(self.on_event)

    def on_event(self, event: AmiEvent) -> None:
        self._publish(self.model.apply(event, self.clock()))

    def note(self, call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        """Record an engine-side step (IVR, routing) on the call's timeline."""
        self._publish(self.model.note(call_id, kind, detail, self.clock()))
        for listener in list(self.note_listeners):
            listener(call_id, kind, detail)

    async def resync(self) -> None:
        """Reconcile the model with Asterisk's own list of channels."""
        if self.ami is None:
            return
        token = self.model.resync_token()
        rows = await self.ami.action_list("CoreShowChannels")
        snapshot = [e for e in map(parse_event, rows) if isinstance(e, CoreShowChannel)]
        changes = self.model.resync(snapshot, token, self.clock())
        self.resyncs += 1
        log.info("resynced from Asterisk: %d channels, %d changes", len(snapshot), len(changes))
        self._publish(changes)

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
