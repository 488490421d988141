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
import pwd
import signal
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import aiosqlite

from callcenter import heap
from callcenter.acd.asterisk_qlog_file import QueueLogFile
from callcenter.acd.service import Acd
from callcenter.atcc.controller import Controller
from callcenter.broker.boards import DEFAULT_BOARDS
from callcenter.broker.exchange_calendar import Calendar, calendar_warnings, load_calendar
from callcenter.broker.interface import Board, PasswordKind
from callcenter.broker.plugin import BackOfficeAdapter, BackOfficeContext, open_backoffice
from callcenter.broker.rules import DEFAULT_RULES, AfterHours, Rules
from callcenter.channels.mosquitto import Mosquitto
from callcenter.channels.relay import Relay
from callcenter.channels.runner import ChannelRunner, load_plugin
from callcenter.channels.sandbox import SandboxPeers
from callcenter.channels.secretary_edge import Secretary
from callcenter.config import Settings
from callcenter.cpu_affinity import check_cpus, parse_cpus
from callcenter.dialer.rules import own_numbers
from callcenter.dialer.service import Dialer
from callcenter.errors import AgiHangup, ConfigError
from callcenter.event_loop import running_loop_name
from callcenter.fanout.process import FanoutProcess
from callcenter.ivr.actions import BackgroundWork, CallSession, HotlineActions, reconcile
from callcenter.ivr.first_flow import first_flow
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.interpreter import Call, Interpreter, Outcome, Transfer, schedule_open
from callcenter.ivr.registry import FlowRegistry
from callcenter.ivr.runner import AgiFlowIO, drive, run_action, sound
from callcenter.ivr.speech import Lang, say_digits
from callcenter.ops.engine_process import names_pid, pid_file
from callcenter.ops.service import OpsService
from callcenter.phones.dialrules import dialable_or_empty
from callcenter.phones.identity import extension_of
from callcenter.phones.link import PhoneLink
from callcenter.phones.registry import PhoneChange
from callcenter.recordings.keeper import RecordingKeeper
from callcenter.recordings.proofs import IvrProofs
from callcenter.recordings.service import RecordingService
from callcenter.seats.backend import EngineConsoleBackend
from callcenter.seats.phone_sessions import PhoneSessions
from callcenter.seats.protocol import Event
from callcenter.store import agents as directory
from callcenter.store.calls import CallRecorder
from callcenter.store.db import make_state_dir_private, open_db
from callcenter.store.hotline import add_request, open_callback
from callcenter.store.phones import load_phones
from callcenter.store.writer import replay_left
from callcenter.tasks.store import TaskStore
from callcenter.telephony.agi import AgiServer, Channel
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.host_limits import raise_fd_limit
from callcenter.telephony.key_tap import KeyTap, TypedAhead
from callcenter.telephony.values import phone_number_or_empty

if TYPE_CHECKING:
    from callcenter.strategies.scheduler import StrategyHost

log = logging.getLogger(__name__)

#: every action name a flow may use (the checker refuses others)
ACTION_NAMES = frozenset(HotlineActions.table_names())


class Engine:
    def __init__(self, settings: Settings,
                 on_agi_round_trip: Callable[[str, float], None] | None = None,
                 backoffice_clock: Callable[[], dt.datetime] | None = None,
                 acd_clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.on_agi_round_trip = on_agi_round_trip
        #: a simulated back office's clock (the sandbox's) from the moment it opens (tests pin
        #: a trading day); a real one keeps its own time
        self.backoffice_clock = backoffice_clock or started_clock(settings)
        #: the ACD's clock (tests move it to show aging and VIP stages without waiting)
        self.acd_clock = acd_clock or time.time
        self.db: aiosqlite.Connection | None = None
        #: the one task store: the console, the dialer and the strategies' runner share it,
        #: so every task created or moved reaches the consoles (``TaskStore.on_change``)
        self.tasks: TaskStore | None = None
        self.recorder: CallRecorder | None = None
        #: the recordings' keeper: sealing, retention, playback (``recordings/``)
        self.recordings: RecordingKeeper | None = None
        self.controller: Controller | None = None
        self.backoffice: BackOfficeAdapter | None = None
        self.flows = FlowRegistry(settings.flows_dir, actions=ACTION_NAMES,
                                  queues=frozenset(q.name for q in settings.acd.queues))
        self.work = BackgroundWork()
        self.ami: AmiClient | None = None
        self.agi: AgiServer | None = None
        self.key_tap: KeyTap | None = None
        self.acd: Acd | None = None
        self.dialer: Dialer | None = None
        self.secretary: Secretary | None = None
        #: the service strategies' scheduler, or none (``strategies.scheduler.StrategyHost``);
        #: None: strategies off, or a back office without customer facts
        self.strategy_host: StrategyHost | None = None
        self.broker: Mosquitto | None = None
        self.relay: Relay | None = None
        self.channel_servers: list[ChannelRunner] = []
        self.console_backend: EngineConsoleBackend | None = None
        self.phones: PhoneLink | None = None
        self.console: Any = None
        self._watch: asyncio.Task[None] | None = None
        #: the operations HTTP server and its metrics (``ops`` settings; ``ops.port``: bound)
        self.ops: OpsService | None = OpsService(settings) if settings.ops.enabled else None
        #: the Asterisk-format queue_log (``acd.queue_log``), fed by the ACD's notices
        self.queue_log: QueueLogFile | None = None

    async def start(self) -> None:
        """Open the store and back office, load flows, connect AMI, serve FastAGI."""
        try:
            # Before anything starts: without it no call could be served.
            agi_key = self.settings.agi_key().get_secret_value()
            # every call is a socket or more: the soft descriptor limit (often 1024) would cap
            # the engine far below Asterisk
            log.info("file descriptors: up to %d", raise_fd_limit())
            # Once, off the loop: the calendar files, for the rules and the agents' days off.
            bo = self.settings.backoffice
            calendar = await asyncio.to_thread(load_calendar, bo.calendar, bo.holidays)
            rules = sandbox_rules(self.settings, calendar)
            for warning in calendar_warnings(dt.datetime.now(rules.tz).date(),
                                             rules.calendar_years):
                log.warning("%s", warning)
            self.flows.calendar = calendar   # backoffice.holidays are in its weekday holidays only
            self.flows.load()
            self.db = await open_db(self.settings.database)
            self.tasks = TaskStore(self.db, self.acd_clock)
            # the kind backoffice.kind names (broker/plugin.py), checked against the protocol
            self.backoffice = await open_backoffice(BackOfficeContext(
                self.settings, rules, self.backoffice_clock))
            settled = await reconcile(self.db, self.backoffice)
            if any(settled.values()):
                log.info("reconciled intents left by an earlier run: %s", settled)
            await self._start_channels()
            if self.settings.secretary.enabled:
                self.secretary = Secretary(
                    self.db, self.backoffice, self.backoffice.now, rules.tz,
                    self.settings.secretary.interval_s, rules=rules,
                    summary_at=self.settings.secretary.summary_at,
                    outbox_clock=self.relay.clock if self.relay is not None else time.time)
                self.secretary.on_outbox = self.kick_outbox
                await self.secretary.start()
            if self.settings.strategies.enabled:
                from callcenter.strategies.scheduler import start_host

                self.strategy_host = await start_host(self.settings, self.db, self.backoffice,
                                                      calendar, self.kick_outbox,
                                                      tasks=self.tasks)
            self.recorder = CallRecorder(self.db)
            self.recorder.start()
            # seals ended recordings with the site key, deletes expired ones (recordings/)
            self.recordings = RecordingKeeper(self.settings, self.db)
            await self.recordings.start()
            self.controller = Controller(self.recorder)
            self.acd = Acd(self.settings.acd, self.db, clock=self.acd_clock)
            self.acd.is_open = self._schedule_open
            self.acd.dial_rules = self.settings.dial_rules
            await replay_left(self.db, self.acd.log.name)  # a crashed run's rows, before restore
            await self._start_queue_log(self.acd)
            await self.acd.start()
            self.ami = AmiClient(self.settings.ami, self.settings.ami_secret(),
                                 on_ready=self._on_ami_ready, on_lost=self.acd.link_lost)
            self.controller.attach(self.ami)
            self.acd.attach(self.ami, linked=False)
            # the dialer (tasks' and campaigns' calls) rides on the ACD and AMI, on the ACD's clock
            self.dialer = Dialer(self.db, self.acd, self.acd_clock, tasks=self.tasks,
                                 own_numbers=own_numbers(self.settings.trunks))
            await self.dialer.start(self.ami)
            self.console_backend = EngineConsoleBackend(
                self.acd, self.db, self.backoffice,
                directory_numbers=self.settings.console.directory_numbers,
                site=self.settings.site, tasks=self.tasks,
                recordings=RecordingService(self.settings, self.db, self.recordings))
            self._connect_console_to_channels(self.console_backend)
            # preview calls, progressive on/off; the dialer's moves of tasks pushed to consoles
            self.console_backend.tasks.dialer = self.dialer
            # deadline alerts: logged and marked in the database, pushed when a console runs
            self.console_backend.tasks.watch_deadlines(
                self.settings.console.task_alert_before_s, self.settings.console.task_watch_s)
            await self.console_backend.load_today()
            if self.settings.console.enabled:
                from callcenter.seats.console_server import ConsoleServer
                from callcenter.seats.sip_relay import SipRelay

                relay = SipRelay(f"ws://{self.settings.ami.host}:{self.settings.sip.http_port}/ws")
                # the consoles went with the previous run: when it was last known alive. Watched
                # before the console opens: an agent who logs in while it starts is back, not
                # counted gone after their login
                alive = await self.recorder.alive_before_start()
                self.console_backend.watch_presence(
                    self.settings.console.presence_grace_s, self.settings.console.absent_logout_s,
                    gone_at=self._on_acd_clock(alive) if alive is not None else None)
                self.console = ConsoleServer(self.settings.console, self.console_backend,
                                             relay=relay, tls=console_tls(self.settings),
                                             fanout=console_fanout(self.settings))
                await self.console.start()
                self.console_backend.push = self.console.push
            await self.ami.start()
            await self._start_phones()
            await self._start_key_tap()
            self.agi = AgiServer(self.settings.agi, self.handle_agi,
                                 on_round_trip=self._agi_round_trip(),
                                 key=agi_key)
            await self.agi.start()
            self._watch = asyncio.create_task(self.flows.watch(), name="flow-watch")
            if self.ops is not None:  # last: it observes everything above
                await self.ops.start(self)
        except BaseException:
            await self.stop()
            raise
        log.info("engine up: AMI %s:%s, FastAGI %s:%s, flows %s", self.settings.ami.host,
                 self.settings.ami.port, self.settings.agi.host, self.agi.port,
                 self.flows.current.version)

    async def _start_queue_log(self, acd: Acd) -> None:
        """The Asterisk-format queue_log, when on: an agent serves the queues of its skills."""
        path = self.settings.queue_log_path
        if path is None:
            return
        queues = {q.name: q.skill for q in self.settings.acd.queues}

        def members(agent_id: str) -> list[str]:
            rt = acd.seats.get(agent_id)
            skills = rt.agent.skills if rt is not None else {}
            return [name for name, skill in queues.items()
                    if skill is None or skills.get(skill, 0) >= 1]

        self.queue_log = QueueLogFile(path, members, clock=self.acd_clock)
        await self.queue_log.start()
        acd.listeners.append(self.queue_log.on_notice)

    async def _start_key_tap(self) -> None:
        """The key tap, if on; without its secret (a PBX installed before it) the IVR runs
        without it, and says so."""
        ami = self.settings.ami
        if not ami.key_tap:
            return
        try:
            secret = self.settings.ami_keys_secret()
        except ConfigError as exc:
            log.warning("%s; keys typed between two IVR questions may be lost", exc)
            return
        self.key_tap = KeyTap(ami, secret, ami.tls_ca or self.settings.tls_dir / "ca.pem")
        await self.key_tap.start()

    async def _start_channels(self) -> None:
        """The bus (our mosquitto), the outbox relay, and any in-process channel servers."""
        channels = self.settings.channels
        if not channels.enabled:
            return
        assert self.db is not None
        self.broker = Mosquitto(channels, self.settings.state_dir)
        await self.broker.start()
        self.relay = Relay(self.db, channels, self.settings.state_dir)
        await self.relay.start()
        for kind in channels.servers:
            server = ChannelRunner(load_plugin(kind), channels, self.settings.state_dir)
            await server.start()
            self.channel_servers.append(server)

    async def _start_phones(self) -> None:
        """The phones' AMI link: agents' SIP identities in, registrations out (phones/)."""
        assert self.db is not None and self.acd is not None and self.console_backend is not None
        db = self.db
        self.phones = PhoneLink(self.settings, lambda: load_phones(db),
                                on_change=self._phone_changed, in_call=self._phones_in_call)
        self.acd.phone_check = self._phone_problem
        self.console_backend.phones = PhoneSessions(self.phones, db)
        await self.phones.start()

    def _phones_in_call(self) -> list[str]:
        """The extensions of the engine's SIP phones that carry a call now."""
        if self.acd is None:
            return []
        return [ext for rt in self.acd.seats.values()
                if rt.call is not None and (ext := extension_of(rt.agent.endpoint)) is not None]

    def _phone_problem(self, endpoint: str) -> str | None:
        """Why the seat's phone cannot ring now (a SIP phone that is not registered), or None."""
        tech, _, resource = endpoint.partition("/")
        if tech != "PJSIP" or "@" in resource or self.phones is None:
            return None
        if self.phones.can_ring(resource):
            return None
        return (f"your phone {resource} is not registered with the PBX: start it (or let the"
                " console's phone connect) before going ready")

    def _phone_changed(self, change: PhoneChange) -> None:
        """A phone came or went: tell its agents' consoles; seats whose phone went, not ready."""
        if self.acd is None:
            return
        endpoint = f"PJSIP/{change.aor}"
        if change.can_ring:
            self.acd.phone_back(endpoint)
        else:
            self.acd.phone_gone(endpoint, unreachable=change.unreachable)
        push = self.console_backend.push if self.console_backend is not None else None
        if push is None:
            return
        for agent_id, rt in self.acd.seats.items():
            if rt.agent.endpoint == endpoint:
                push.to_agent(agent_id, Event(event="phone", data={
                    "extension": change.aor, "registered": change.can_ring,
                    "reason": change.reason}))

    def _connect_console_to_channels(self, backend: EngineConsoleBackend) -> None:
        backend.on_outbox = self.kick_outbox
        if self.relay is not None:
            self.relay.add_listener(backend.on_channel_event)

    def _schedule_open(self, name: str) -> bool | None:
        """A queue's hours: the IVR's schedule of that name, on the back office's clock."""
        schedule = self.flows.current.schedules.get(name)
        if schedule is None or self.backoffice is None:
            return None
        return schedule_open(schedule, self.backoffice.now())

    def kick_outbox(self) -> None:
        """A request wrote outbox rows: publish them now rather than at the next timer."""
        if self.relay is not None:
            self.relay.kick()

    async def _on_ami_ready(self) -> None:
        """After every AMI (re)login: the model first, then the queues and seats from it."""
        assert self.controller is not None and self.acd is not None
        lost_at = await self.controller.resync()
        live = {uid: view.name for uid, view in self.controller.model.channels.items()}
        if lost_at is not None:  # calls that ended unseen end then, on the ACD's clock
            lost_at = self._on_acd_clock(lost_at)
        await self.acd.resync(live, lost_at=lost_at)
        if self.phones is not None:  # calls restored on phones already silent or gone
            self.phones.silent_in_call(self._phones_in_call())

    def _on_acd_clock(self, at: float) -> float:
        """A past moment of the controller's clock (the machine's) on the ACD's clock."""
        assert self.controller is not None
        return self.acd_clock() - max(0.0, self.controller.clock() - at)

    def _agi_round_trip(self) -> Callable[[str, float], None] | None:
        """The FastAGI round-trip observer: the metrics' and the caller's (benchmarks)."""
        observers = [o for o in (self.on_agi_round_trip,
                                 self.ops.agi_round_trip if self.ops else None) if o is not None]
        if len(observers) < 2:
            return observers[0] if observers else None

        def both(command: str, seconds: float) -> None:
            for observer in observers:
                observer(command, seconds)

        return both

    async def stop(self) -> None:
        if self.ops is not None:  # first: it reads the parts stopped below
            await self.ops.close()
        if self.console is not None:
            await self.console.close()
            self.console = None
        if self.console_backend is not None:
            await self.console_backend.close()
            self.console_backend = None
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self.agi is not None:
            await self.agi.close()
            self.agi = None
        if self.key_tap is not None:
            await self.key_tap.close()
            self.key_tap = None
        await self.work.drain()  # orders and transfers on their way finish and are recorded
        if self.recordings is not None:
            await self.recordings.close()
            self.recordings = None
        if self.strategy_host is not None:
            await self.strategy_host.close()
            self.strategy_host = None
        if self.secretary is not None:
            await self.secretary.close()
            self.secretary = None
        for server in reversed(self.channel_servers):
            await server.close()
        self.channel_servers.clear()
        if self.relay is not None:
            await self.relay.close()
            self.relay = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        if self.phones is not None:
            await self.phones.close()
            self.phones = None
        if self.dialer is not None:
            await self.dialer.close()
            self.dialer = None
        if self.acd is not None:
            await self.acd.close()
            self.acd = None
        if self.queue_log is not None:
            await self.queue_log.close()
            self.queue_log = None
        if self.ami is not None:
            await self.ami.close()
            self.ami = None
        if self.controller is not None:
            await self.controller.close()
        if self.recorder is not None:
            await self.recorder.close()
            self.recorder = None
        if self.backoffice is not None:
            await self.backoffice.close()
            self.backoffice = None
        self.tasks = None
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def handle_agi(self, channel: Channel) -> None:
        # before the first command: the tap counts this session's commands from there
        typed = self.key_tap.session(channel) if self.key_tap is not None else None
        try:
            await self._serve_agi(channel, typed)
        finally:
            if typed is not None:
                typed.close()

    async def _serve_agi(self, channel: Channel, typed: TypedAhead | None) -> None:
        controller = self.controller
        assert controller is not None
        call_id = await channel.resolve_linkedid()

        def note(kind: str, detail: Mapping[str, str]) -> None:
            controller.note(call_id, kind, detail)

        script = channel.script
        flows = self.flows.current  # this call keeps this version to its end
        try:
            if script == "first":
                await first_flow(channel, note, typed=typed)
            elif script == "queue-callback":
                await self.queue_callback(channel, call_id, note)
            elif script in flows.flows:
                await self.run_flow(channel, flows, script, call_id, note, typed)
            else:
                note("ivr.refused", {"script": script})
                log.warning("FastAGI request for unknown flow %r; hanging up", script)
                await channel.hangup()
        except AgiHangup:
            note("ivr.caller_hangup", {})
            raise

    async def run_flow(self, channel: Channel, flows: FlowSet, flow: str, call_id: str,
                       note: Callable[[str, Mapping[str, str]], None],
                       typed: TypedAhead | None = None) -> None:
        assert self.db is not None and self.backoffice is not None
        caller = phone_number_or_empty(channel.caller_id)  # else unknown: never dialled back
        session = CallSession(call_id, caller)
        table = HotlineActions(self.backoffice, self.db, self.work, session,
                               clock=self.backoffice.now, on_outbox=self.kick_outbox).table()
        # Business hours follow the back office's clock (the sandbox's can be set for demos).
        interp = Interpreter(flows, flow, {"caller": caller, "call_id": call_id},
                             clock=self.backoffice.now)

        async def actions(call: Call) -> Outcome:
            session.lang = str(interp.vars.get("lang", "zh"))
            return await run_action(table, call)

        await channel.answer()
        proofs = IvrProofs(self.db, self.settings.acd.recordings_dir,
                           lambda: session.account or "")
        end = await drive(interp, AgiFlowIO(channel, call_id, typed, proofs), actions, note)
        if isinstance(end, Transfer) and self.acd is not None:
            context = {k: v for k, v in end.context.items() if v is not None}
            context.setdefault("lang", session.lang)
            account = context.get("customer.account", "")
            manager = context.get("customer.manager") or context.get("known.manager") or ""
            if account and self.db is not None:
                override = await directory.manager_of(self.db, account)
                manager = override if override is not None else manager
            self.acd.enqueue(call_id, end.queue, channel.channel_name, channel.uniqueid,
                             context, phone=caller, manager=manager)

    async def queue_callback(self, channel: Channel, call_id: str,
                             note: Callable[[str, Mapping[str, str]], None]) -> None:
        """A waiting caller pressed 1: book a call-back that keeps their place, then hang up.

        Only to a phone number: a caller ID that is not one (none, or dial syntax such as
        ``123&Local/...``) is never booked nor dialled; the caller hears that no call-back is
        possible and goes on waiting in the same place."""
        assert self.db is not None
        waiter = self.acd.find_waiter(uniqueid=channel.uniqueid) if self.acd else None
        lang: Lang = waiter.lang if waiter is not None else "zh"
        phone = dialable_or_empty(channel.caller_id, "agent", "callback",
                                  self.settings.dial_rules)  # any agent may take it
        if waiter is None or waiter.ringing:
            return  # nothing to keep (or an agent is ringing right now): back to waiting
        if not phone:
            note("acd.callback_refused", {"why": "no caller phone number", "queue": waiter.queue})
            await channel.play([sound(f"{lang}/queue_callback_no_number")], "")
            return  # back to waiting ([queue-hold]), the place kept
        existing = await open_callback(self.db, phone)
        if existing is None:
            ref = await add_request(self.db, "callback", call_id, account=waiter.account or None,
                                    phone=phone, detail={"lang": lang, "queue": waiter.queue,
                                                         "keeps_place": True})
            prompts = [f"{lang}/callback_booked"]
        else:
            ref, prompts = existing, [f"{lang}/queue_callback_exists"]
        if self.acd is not None and self.acd.find_waiter(uniqueid=channel.uniqueid) is waiter:
            self.acd.keep_place_by_callback(waiter, phone)
        note("acd.callback", {"ref": ref, "queue": waiter.queue})
        prompts += [f"{lang}/{d}" for d in say_digits(ref, lang)] + [f"{lang}/goodbye"]
        await channel.play([sound(x) for x in prompts], "")
        await channel.hangup()


def console_tls(settings: Settings) -> ssl.SSLContext | None:
    """The console's TLS context when ``console.tls`` is on (after ``pbx up`` made the files)."""
    if not settings.console.tls:
        return None
    cert, key = settings.tls_files()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"console.tls: cannot load {cert} and {key} ({exc}); run"
                          " 'callcenter pbx up' or set sip.tls_cert and sip.tls_key") from exc
    return context


def console_fanout(settings: Settings) -> FanoutProcess | None:
    """The relay process for pushes to many consoles, unless ``console.fanout`` is ``inline``."""
    console = settings.console
    if console.fanout != "process":
        return None
    port = console.fanout_port
    if port is None:
        port = console.port + 1 if console.port else 0
    cpus = (check_cpus(parse_cpus(console.fanout_cpus), "console.fanout_cpus")
            if console.fanout_cpus else None)
    return FanoutProcess(console.host, port,
                         tls_files=settings.tls_files() if console.tls else None,
                         loop_choice=settings.event_loop, nice=console.fanout_nice, cpus=cpus)


def started_clock(settings: Settings) -> Callable[[], dt.datetime] | None:
    """The sandbox's clock from ``backoffice.clock_start`` on (None: the real time)."""
    start = settings.backoffice.clock_start
    if start is None:
        return None
    tz = DEFAULT_RULES.tz  # the settings never change the exchange's time zone: no calendar read
    origin = start if start.tzinfo is not None else start.replace(tzinfo=tz)
    began = time.monotonic()
    return lambda: (origin + dt.timedelta(seconds=time.monotonic() - began)).astimezone(tz)


def sandbox_rules(settings: Settings, calendar: Calendar | None = None) -> Rules:
    """The A-share rules with the brokerage's own settings applied (``calendar``: the one
    ``load_calendar`` gives for these settings, when the caller has read it already)."""
    bo = settings.backoffice
    if calendar is None:
        calendar = load_calendar(bo.calendar, bo.holidays)
    main = dataclasses.replace(DEFAULT_BOARDS[Board.MAIN],
                               risk_warning_pct=bo.main_risk_warning_limit)
    return dataclasses.replace(
        DEFAULT_RULES,
        holidays=calendar.holidays,
        calendar_years=calendar.years,
        after_hours=AfterHours(bo.after_hours),
        boards=MappingProxyType({**DEFAULT_BOARDS, Board.MAIN: main}),
        transfer_daily_limit=bo.transfer_daily_limit,
        commission_rate=bo.commission_rate,
        commission_min=bo.commission_min,
        max_failures={PasswordKind.TRADING: bo.trading_password_attempts,
                      PasswordKind.FUND: bo.fund_password_attempts,
                      PasswordKind.BANK: bo.bank_password_attempts},
    )


async def run_engine(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly; SIGHUP reloads the flows, SIGUSR1
    the service strategies.

    The signal handlers are in place before anything starts, so a stop during start-up still
    stops the sandbox's peer processes and the engine cleanly.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine: Engine | None = None
    peers: SandboxPeers | None = None
    pidfile = pid_file(settings.state_dir)
    reloads = _Reloads()
    # password hashes, customer data, secrets: the state directory is ours alone
    await asyncio.to_thread(make_state_dir_private, settings.state_dir,
                            broker_needs_traverse(settings))
    try:
        if settings.channels.enabled and settings.channels.sandbox_peers \
                and not settings.channels.servers:
            peers = SandboxPeers(settings.state_dir)
            settings = await peers.start(settings)
            print(f"sandbox channel peers: mail in {settings.state_dir / 'sandbox-mail'}, "
                  f"SMS in {settings.state_dir / 'sandbox-sms.jsonl'}", flush=True)
        engine = Engine(settings)
        running = engine
        for sig, what in ((signal.SIGHUP, _reload), (signal.SIGUSR1, _reload_strategies)):
            loop.add_signal_handler(sig, reloads.spawn, loop, what, running)
        if not stop.is_set():
            await engine.start()
            heap.settle()   # what lives from start-up on is never walked by the collector
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            pidfile.write_text(f"{os.getpid()}\n")
            print(f"callcenter engine running (FastAGI on {settings.agi.host}:"
                  f"{engine.agi.port if engine.agi else '?'}, {running_loop_name()} event loop"
                  f"{f', /metrics on {settings.ops.host}:{engine.ops.port}' if engine.ops else ''}"
                  "); Ctrl-C to stop", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        # no reload is asked of a stopping engine (the CLI reads the pid file), nor taken: a
        # signal without its handler would end the process before the engine's stop
        if names_pid(settings.state_dir, os.getpid()):   # ours only: not a later run's
            pidfile.unlink(missing_ok=True)
        reloads.stopping = True
        for task in reloads.tasks:   # a reload under way does not outlive the engine
            task.cancel()
        await asyncio.gather(*reloads.tasks, return_exceptions=True)
        try:
            if engine is not None:
                await engine.stop()
            if peers is not None:
                await peers.stop()
        finally:
            for sig in (signal.SIGHUP, signal.SIGUSR1):
                loop.remove_signal_handler(sig)


@dataclasses.dataclass
class _Reloads:
    """The signals' reloads under way, kept until done (the loop holds tasks weakly)."""

    tasks: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    stopping: bool = False

    def spawn(self, loop: asyncio.AbstractEventLoop,
              reload: Callable[[Engine], Coroutine[Any, Any, None]], engine: Engine) -> None:
        if self.stopping:
            log.info("the engine is stopping: reload ignored")
            return
        task = loop.create_task(_logged(reload, engine), name=reload.__name__.strip("_"))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def _logged(reload: Callable[[Engine], Coroutine[Any, Any, None]], engine: Engine) -> None:
    """A reload whose unexpected failure is logged at once (the engine runs on)."""
    try:
        await reload(engine)
    except Exception:
        log.exception("%s failed", reload.__name__.strip("_").replace("_", " "))


def broker_needs_traverse(settings: Settings) -> bool:
    """Does the bus broker drop to another account, which must reach its own directory?"""
    user = settings.channels.run_as_user
    return bool(settings.channels.enabled and user and os.geteuid() == 0
                and user != pwd.getpwuid(os.geteuid()).pw_name)


async def _reload(engine: Engine) -> None:
    """``SIGHUP``: the flows, read again (a set with a problem is refused, the last good one
    kept; the registry logs which)."""
    result = await engine.flows.reload_async()
    if result.accepted:
        log.info("SIGHUP: flows version %s in service", result.version)


async def _reload_strategies(engine: Engine) -> None:
    """``SIGUSR1`` (``callcenter strategies reload``): the service strategies, read again; a
    set with a problem is refused (logged), the running one kept; a scheduler that a bad file
    kept off at the start starts."""
    from callcenter.strategies.scheduler import log_problems

    host = engine.strategy_host
    if host is None:
        log.info("SIGUSR1: no strategies run here (strategies.enabled = false, a back office"
                 " without customer facts, or the engine still starting)")
        return
    problems = await host.reload()
    if problems:
        log_problems(problems, running=host.running)
    else:
        log.info("SIGUSR1: strategies in service")
