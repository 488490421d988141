"""The engine: store, back office, flows, controller, AMI client and FastAGI server, wired
together with clean shutdown.

``Engine`` is what ``callcenter run`` runs and what integration tests start in-process.
FastAGI scripts: ``hotline`` runs the YAML flow ``hotline`` (extension 9500); ``first`` runs the
first flow (extension 9502, the benchmark's subject).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import signal
from collections.abc import Callable, Mapping

import aiosqlite

from callcenter.atcc.controller import Controller
from callcenter.broker.interface import PasswordKind
from callcenter.broker.rules import DEFAULT_RULES, Rules
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.config import Settings
from callcenter.errors import AgiHangup
from callcenter.ivr.actions import BackgroundWork, CallSession, HotlineActions, reconcile
from callcenter.ivr.first_flow import first_flow
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.interpreter import Call, Interpreter, Outcome
from callcenter.ivr.registry import FlowRegistry
from callcenter.ivr.runner import AgiFlowIO, drive, run_action
from callcenter.store.calls import CallRecorder
from callcenter.store.db import open_db
from callcenter.telephony.agi import AgiServer, Channel
from callcenter.telephony.ami import AmiClient

log = logging.getLogger(__name__)

#: every action name a flow may use (the checker refuses others)
ACTION_NAMES = frozenset(HotlineActions.table_names())


class Engine:
    def __init__(self, settings: Settings,
                 on_agi_round_trip: Callable[[str, float], None] | None = None,
                 backoffice_clock: Callable[[], dt.datetime] | None = None) -> None:
        self.settings = settings
        self.on_agi_round_trip = on_agi_round_trip
        #: the sandbox back office's clock from the moment it opens (tests pin a trading day)
        self.backoffice_clock = backoffice_clock
        self.db: aiosqlite.Connection | None = None
        self.recorder: CallRecorder | None = None
        self.controller: Controller | None = None
        self.backoffice: SandboxBackOffice | None = None
        self.flows = FlowRegistry(settings.flows_dir, actions=ACTION_NAMES)
        self.work = BackgroundWork()
        self.ami: AmiClient | None = None
        self.agi: AgiServer | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store and back office, load flows, connect AMI, serve FastAGI."""
        try:
            self.flows.load()
            self.db = await open_db(self.settings.database)
            self.backoffice = await SandboxBackOffice.open(
                self.settings.backoffice_db, clock=self.backoffice_clock,
                rules=sandbox_rules(self.settings))
            settled = await reconcile(self.db, self.backoffice)
            if any(settled.values()):
                log.info("reconciled intents left by an earlier run: %s", settled)
            self.recorder = CallRecorder(self.db)
            self.recorder.start()
            self.controller = Controller(self.recorder)
            self.ami = AmiClient(self.settings.ami, self.settings.ami_secret(),
                                 on_ready=self.controller.resync)
            self.controller.attach(self.ami)
            await self.ami.start()
            self.agi = AgiServer(self.settings.agi, self.handle_agi,
                                 on_round_trip=self.on_agi_round_trip)
            await self.agi.start()
            self._watch = asyncio.create_task(self.flows.watch(), name="flow-watch")
        except BaseException:
            await self.stop()
            raise
        log.info("engine up: AMI %s:%s, FastAGI %s:%s, flows %s", self.settings.ami.host,
                 self.settings.ami.port, self.settings.agi.host, self.agi.port,
                 self.flows.current.version)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self.agi is not None:
            await self.agi.close()
            self.agi = None
        await self.work.drain()  # orders and transfers on their way finish and are recorded
        if self.ami is not None:
            await self.ami.close()
            self.ami = None
        if self.recorder is not None:
            await self.recorder.close()
            self.recorder = None
        if self.backoffice is not None:
            await self.backoffice.close()
            self.backoffice = None
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
        flows = self.flows.current  # this call keeps this version to its end
        try:
            if script == "first":
                await first_flow(channel, note)
            elif script in flows.flows:
                await self.run_flow(channel, flows, script, call_id, note)
            else:
                note("ivr.refused", {"script": script})
                log.warning("FastAGI request for unknown flow %r; hanging up", script)
                await channel.hangup()
        except AgiHangup:
            note("ivr.caller_hangup", {})
            raise

    async def run_flow(self, channel: Channel, flows: FlowSet, flow: str, call_id: str,
                       note: Callable[[str, Mapping[str, str]], None]) -> None:
        assert self.db is not None and self.backoffice is not None
        caller = channel.caller_id or ""
        session = CallSession(call_id, caller)
        table = HotlineActions(self.backoffice, self.db, self.work, session,
                               clock=self.backoffice.now).table()
        # Business hours follow the back office's clock (the sandbox's can be set for demos).
        interp = Interpreter(flows, flow, {"caller": caller, "call_id": call_id},
                             clock=self.backoffice.now)

        async def actions(call: Call) -> Outcome:
            session.lang = str(interp.vars.get("lang", "zh"))
            return await run_action(table, call)

        await channel.answer()
        await drive(interp, AgiFlowIO(channel, call_id), actions, note)


def sandbox_rules(settings: Settings) -> Rules:
    """The A-share rules with the brokerage's own settings applied."""
    bo = settings.backoffice
    return dataclasses.replace(
        DEFAULT_RULES,
        holidays=frozenset(bo.holidays),
        transfer_daily_limit=bo.transfer_daily_limit,
        commission_rate=bo.commission_rate,
        commission_min=bo.commission_min,
        max_failures={PasswordKind.TRADING: bo.trading_password_attempts,
                      PasswordKind.FUND: bo.fund_password_attempts},
    )


async def run_engine(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly; SIGHUP reloads the flows."""
    engine = Engine(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload(engine)))
    pidfile = settings.state_dir / "engine.pid"
    try:
        await engine.start()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{os.getpid()}\n")
        print(f"callcenter engine running (FastAGI on {settings.agi.host}:"
              f"{engine.agi.port if engine.agi else '?'}); Ctrl-C to stop", flush=True)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        pidfile.unlink(missing_ok=True)
        await engine.stop()


async def _reload(engine: Engine) -> None:
    result = await engine.flows.reload_async()
    if result.accepted:
        log.info("SIGHUP: flows version %s in service", result.version)
