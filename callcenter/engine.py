"""The engine: store, controller, AMI client and FastAGI server wired together, with clean shutdown.

``Engine`` is what ``callcenter run`` runs and what integration tests start in-process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping

import aiosqlite

from callcenter.atcc.controller import Controller
from callcenter.config import Settings
from callcenter.errors import AgiHangup
from callcenter.ivr.first_flow import first_flow
from callcenter.store.calls import CallRecorder
from callcenter.store.db import open_db
from callcenter.telephony.agi import AgiServer, Channel, RoundTripObserver
from callcenter.telephony.ami import AmiClient

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, settings: Settings,
                 on_agi_round_trip: RoundTripObserver | None = None) -> None:
        self.settings = settings
        self._on_agi_round_trip = on_agi_round_trip  # the IVR benchmark times commands
        self.db: aiosqlite.Connection | None = None
        self.recorder: CallRecorder | None = None
        self.controller: Controller | None = None
        self.ami: AmiClient | None = None
        self.agi: AgiServer | None = None

    async def start(self) -> None:
        """Open the store, connect to AMI (failing fast with a one-line error), serve FastAGI."""
        try:
            self.db = await open_db(self.settings.database)
            self.recorder = CallRecorder(self.db)
            self.recorder.start()
            self.controller = Controller(self.recorder)
            self.ami = AmiClient(self.settings.ami, self.settings.ami_secret(),
                                 on_ready=self.controller.resync)
            self.controller.attach(self.ami)
            await self.ami.start()
            self.agi = AgiServer(self.settings.agi, self.handle_agi,
                                 on_round_trip=self._on_agi_round_trip)
            await self.agi.start()
        except BaseException:
            await self.stop()
            raise
        log.info("engine up: AMI %s:%s, FastAGI %s:%s", self.settings.ami.host,
                 self.settings.ami.port, self.settings.agi.host, self.agi.port)

    async def stop(self) -> None:
        if self.agi is not None:
            await self.agi.close()
            self.agi = None
        if self.ami is not None:
            await self.ami.close()
            self.ami = None
        if self.recorder is not None:
            await self.recorder.close()
            self.recorder = None
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def handle_agi(self, channel: Channel) -> None:
        controller = self.controller
        assert controller is not None
        call_id = await channel.resolve_linkedid()

        def note(kind: str, detail: Mapping[str, str]) -> None:
            controller.note(call_id, kind, detail)

        script = channel.script
        if script != "hotline":
            note("ivr.refused", {"script": script})
            log.warning("FastAGI request for unknown script %r; hanging up", script)
            await channel.hangup()
            return
        try:
            await first_flow(channel, note)
        except AgiHangup:
            note("ivr.caller_hangup", {})
            raise


async def run_engine(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    engine = Engine(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start()
        print(f"callcenter engine running (FastAGI on {settings.agi.host}:"
              f"{engine.agi.port if engine.agi else '?'}); Ctrl-C to stop", flush=True)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await engine.stop()
