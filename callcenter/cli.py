"""``callcenter ...``: the command line. Errors are one line on stderr and exit status 1."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callcenter import event_loop
from callcenter.config import Settings, load_settings
from callcenter.errors import CallCenterError, ConfigError

if TYPE_CHECKING:
    import aiosqlite

    from callcenter.telephony.ami import AmiClient


def _settings() -> Settings:
    return load_settings()


# -- pbx -------------------------------------------------------------------------------------------

def cmd_pbx(args: argparse.Namespace) -> int:
    from callcenter.telephony.pbx import Pbx

    pbx = Pbx(_settings())
    if args.action == "up":
        pbx.up()
        print(f"asterisk up (pid {pbx.pid()}); AMI on {pbx.settings.ami.host}:"
              f"{pbx.settings.ami.port}")
    elif args.action == "provision":
        pbx.provision()
        print(f"the sandbox root is ready: {pbx.root}" if pbx.sandbox
              else "system mode: nothing to provision (Asterisk is the system's)")
    elif args.action == "install":
        pbx.install()
        print(f"configuration and prompts installed into {pbx.etc_dir()} (Asterisk not started)")
    elif args.action == "down":
        pbx.down()
        print("asterisk down; mounts removed")
    elif args.action == "status":
        status = pbx.status()
        print(status.describe())
        return 0 if status.running else 3
    elif args.action == "cli":
        if not args.command:
            raise ConfigError("usage: callcenter pbx cli \"<asterisk CLI command>\"")
        print(pbx.cli(" ".join(args.command)), end="")
    return 0


# -- engine ----------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from callcenter.engine import run_engine

    settings = _settings()
    event_loop.run(run_engine(settings), settings.event_loop)
    return 0


# -- call ------------------------------------------------------------------------------------------

#: ``callcenter call``'s exit statuses (also in its --help)
EXIT_CALL_FAILED = 1  # the number did not answer, the call was cut short, or bad input
EXIT_NOT_RUNNING = 3  # Asterisk or the engine is not running (as ``callcenter pbx status``)
#: how much longer than --hold ``call`` waits by default: the hotline's answer (Originate rings
#: 30 s at most) and the caller's first second; plus up to a second per --dtmf character
CALL_MARGIN_S = 30
#: what the IVR reacts to, and the caller's pauses (``w`` half a second, ``W`` a second)
_IVR_KEYS = frozenset("0123456789*#")
_PAUSES = frozenset("wW")
_MAX_KEYS = 200


def _hold_seconds(value: str) -> int:
    """argparse type of --hold: whole seconds, 0 or more."""
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {seconds}")
    return seconds


def _timeout_seconds(value: str) -> float:
    """argparse type of --timeout: seconds, more than 0."""
    import math

    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {value}")
    return seconds


def _call_wait_s(args: argparse.Namespace) -> float:
    """How long ``call`` waits for its call to end before hanging it up: --timeout, else --hold
    plus a margin for the answer and the keys, so the caller's hold is never cut short."""
    if args.timeout is not None:
        return float(args.timeout)
    return float(args.hold + CALL_MARGIN_S + len(args.dtmf))


def _call_keys(dtmf: str) -> tuple[str, str]:
    """(the keys to send, the characters left out because the IVR ignores them, each once).

    Control characters are refused, not left out: bound for AMI, they may be an injection."""
    import unicodedata

    from callcenter.errors import UnsafeValueError

    if any(unicodedata.category(c).startswith("C") for c in dtmf):
        raise UnsafeValueError("--dtmf holds control characters (CR, LF...); refused")
    keys = "".join(c for c in dtmf if c in _IVR_KEYS or c in _PAUSES)
    if len(keys) > _MAX_KEYS:
        raise UnsafeValueError(f"--dtmf holds more than {_MAX_KEYS} keys and pauses; refused")
    ignored = "".join(dict.fromkeys(c for c in dtmf if c not in _IVR_KEYS and c not in _PAUSES))
    return keys, ignored


def _refuse(code: int, message: str) -> int:
    print(f"callcenter: error: {message}", file=sys.stderr)
    return code


def _ami_down(settings: Settings, exc: CallCenterError) -> str:
    """What to say when AMI will not have us: Asterisk is not running, or is not ours."""
    from callcenter.errors import AmiAuthError

    at = f"{settings.ami.host}:{settings.ami.port}"
    if isinstance(exc, AmiAuthError):
        return (f"Asterisk at {at} refused the AMI login of {settings.ami.username!r} (another"
                " PBX, or an old secret): restart it: callcenter pbx down && callcenter pbx up")
    return (f"Asterisk is not running (nothing answers AMI at {at}): start it with ./dev up"
            " (or callcenter pbx up, then callcenter run)")


def _engine_down(settings: Settings) -> str:
    return (f"the engine is not running (nothing serves FastAGI at {settings.agi.host}:"
            f"{settings.agi.port}), so the hotline cannot answer: start it with callcenter run"
            " (or ./dev up)")


def _local_address(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine (loopback for "any")."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "127.0.0.1"
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return host


async def _engine_listening(settings: Settings) -> bool | None:
    """Does something accept connections on the engine's FastAGI port? ``None``: the port is
    chosen when the engine starts (0), so there is nothing to check."""
    import contextlib

    if settings.agi.port == 0:
        return None
    try:
        async with asyncio.timeout(2):
            _, writer = await asyncio.open_connection(_local_address(settings.agi.host),
                                                      settings.agi.port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _hang_up_interrupted(call_id: str, hang_up: Callable[[], Awaitable[bool]]) -> None:
    """Ctrl-C: hang up the call this command placed, and say so."""
    try:
        hung = await hang_up()
    except CallCenterError as exc:
        print(f"callcenter: error: could not hang up call {call_id}: {exc}", file=sys.stderr)
        return
    print(f"call {call_id} hung up (interrupted)" if hung else
          f"interrupted; call {call_id} was not up", flush=True)


async def _call(args: argparse.Namespace) -> int:
    from callcenter.errors import AmiAuthError, AmiConnectionError
    from callcenter.telephony.ami import AmiClient
    from callcenter.telephony.simcall import check_number

    check_number(args.number)
    keys, ignored = _call_keys(args.dtmf)
    if ignored:
        print(f"callcenter: warning: --dtmf: left out {', '.join(map(repr, ignored))} (the IVR"
              " hears only 0-9 * #; w and W are pauses)", file=sys.stderr, flush=True)
    settings = _settings()
    wait_s = _call_wait_s(args)
    ami = AmiClient(settings.ami, settings.ami_secret())
    try:
        await ami.connect()
    except (AmiConnectionError, AmiAuthError) as exc:
        return _refuse(EXIT_NOT_RUNNING, _ami_down(settings, exc))
    try:
        if await _engine_listening(settings) is False:
            return _refuse(EXIT_NOT_RUNNING, _engine_down(settings))
        if args.sip:
            call_id, code = await _sip_call(ami, args, keys, wait_s)
        else:
            call_id, code = await _sim_call(ami, args, keys, wait_s)
    finally:
        await ami.close()
    if call_id is not None:
        await _print_ivr_events(settings, call_id)
    return code


async def _sim_call(ami: AmiClient, args: argparse.Namespace, keys: str,
                    wait_s: float) -> tuple[str | None, int]:
    """A simulated caller (AMI Originate into the hotline): the call id, if a call was placed,
    and the exit status."""
    from callcenter.errors import AmiActionError
    from callcenter.telephony.simcall import SimCaller, new_call_id

    caller = SimCaller(ami)
    call_id = new_call_id()  # known before the Originate: Ctrl-C during it hangs it up too
    try:
        await caller.place(args.number, keys, hold_s=args.hold, call_id=call_id)
        print(f"call {call_id} placed to {args.number}", flush=True)
        result = await caller.wait_end(call_id, wait_s)
    except AmiActionError as exc:
        if exc.action != "Originate":
            raise
        return None, _refuse(EXIT_CALL_FAILED, f"{args.number} did not answer (no such"
                             " extension?): the hotline is 9500 (with --sip, 95500)")
    except TimeoutError:
        hung = await caller.hang_up(call_id)
        return call_id, _refuse(EXIT_CALL_FAILED, f"call {call_id} still up after {wait_s:g}s"
                                f" (--timeout){'; hung up' if hung else ''}")
    except (asyncio.CancelledError, KeyboardInterrupt):
        await _hang_up_interrupted(call_id, lambda: caller.hang_up(call_id))
        raise
    print(f"call {call_id} ended after {result.duration_s:.1f}s: "
          f"cause {result.cause} ({result.cause_text or 'normal'})")
    return call_id, 0


async def _hang_up_channels(ami: AmiClient, channels: Sequence[str]) -> bool:
    """Hang up these channels; True if any was still up."""
    from callcenter.errors import AmiActionError

    hung = False
    for channel in channels:
        try:
            await ami.action("Hangup", Channel=channel)
            hung = True
        except AmiActionError:  # already gone
            pass
    return hung


async def _sip_call(ami: AmiClient, args: argparse.Namespace, keys: str,
                    wait_s: float) -> tuple[str | None, int]:
    """A real SIP caller (SIPp through the sandbox carrier trunk): the call id it got (``None``:
    the PBX took no call), and the exit status."""
    from callcenter.errors import UnsafeValueError
    from callcenter.telephony.ami_events import AmiEvent, NewChannel
    from callcenter.telephony.sipcall import place_sip_call

    legs: list[str] = []  # the calls' ids (linkedid)
    channels: list[str] = []  # the carrier's channels, to hang up

    def on_event(event: AmiEvent) -> None:
        if isinstance(event, NewChannel) and event.info.channel.startswith("PJSIP/carrier-"):
            legs.append(event.info.linkedid)
            channels.append(event.info.channel)

    ami.add_handler(on_event)
    print(f"SIP call to {args.number} from the sandbox carrier", flush=True)
    try:
        # SIPp knows only the half-second pause
        result = await place_sip_call(args.number, keys.replace("W", "ww"),
                                      caller_id=args.caller_id, hold_s=args.hold,
                                      timeout_s=wait_s, audio_s=args.speak)
    except ValueError as exc:  # a number or caller ID SIPp cannot dial
        raise UnsafeValueError(f"--sip: {exc}; refused") from exc
    except (asyncio.CancelledError, KeyboardInterrupt):
        # place_sip_call has stopped SIPp; Asterisk must let the call go too
        if legs:
            await _hang_up_interrupted(legs[0], lambda: _hang_up_channels(ami, channels))
        raise
    finally:
        ami.remove_handler(on_event)
    if not legs:
        return None, _refuse(EXIT_CALL_FAILED, f"the PBX took no SIP call (SIPp exit"
                             f" {result.returncode}): is the sandbox PBX up (callcenter pbx up)?")
    if result.ok:
        print(f"call {legs[0]} ended")
        return legs[0], 0
    await _hang_up_channels(ami, channels)  # SIPp gave up: nothing stays up behind it
    return legs[0], _refuse(EXIT_CALL_FAILED, f"call {legs[0]}: {args.number} did not answer or"
                            f" the call was cut short (SIPp exit {result.returncode}): is"
                            f" {args.number} a hotline DID (95500)?")


async def _print_ivr_events(settings: Settings, call_id: str) -> None:
    """What the IVR recorded of the call, from the engine's database (if it is here)."""
    from callcenter.store.calls import get_call
    from callcenter.store.db import open_db

    if not settings.database.exists():
        return
    db = await open_db(settings.database)
    try:
        record = None
        # The engine commits the record in its own time; give it a moment.
        for _ in range(20):
            record = await get_call(db, call_id)
            if record is not None and record.ended_at is not None:
                break
            await asyncio.sleep(0.1)
        if record is not None:
            for event in record.events:
                if event.kind.startswith("ivr."):
                    detail = " ".join(f"{k}={v}" for k, v in event.detail.items())
                    print(f"  {event.kind} {detail}".rstrip())
    finally:
        await db.close()


def cmd_call(args: argparse.Namespace) -> int:
    return asyncio.run(_call(args))


async def _status() -> int:
    from callcenter.store.calls import recent_calls
    from callcenter.store.db import open_db
    from callcenter.telephony.ami import AmiClient
    from callcenter.telephony.pbx import Pbx

    settings = _settings()
    print(Pbx(settings).status().describe())
    ami = AmiClient(settings.ami, settings.ami_secret())
    try:
        await ami.connect()
        channels = await ami.action_list("CoreShowChannels")
        print(f"AMI: connected; {len(channels)} live channels")
        for ch in channels:
            print(f"  {ch.get('Channel')} {ch.get('ChannelStateDesc')} "
                  f"{ch.get('Application')} {ch.get('Duration')}")
    except CallCenterError as exc:
        print(f"AMI: {exc}")
    finally:
        await ami.close()
    if settings.database.exists():
        db = await open_db(settings.database)
        try:
            calls = await recent_calls(db, 5)
        finally:
            await db.close()
        print(f"recent calls ({settings.database}):")
        for c in calls:
            state = "live" if c.ended_at is None else f"ended cause {c.end_cause}"
            print(f"  {c.id} from {c.caller_num or '-'} {state}, {len(c.events)} events")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return asyncio.run(_status())


async def _doctor() -> int:
    from callcenter.telephony.ami import AmiClient

    problems = 0

    def report(ok: bool, what: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        print(f"[{'ok' if ok else 'FAIL'}] {what}")

    try:
        settings = _settings()
        report(True, "settings load")
    except ConfigError as exc:
        report(False, str(exc))
        return 1
    _doctor_files(settings)
    _doctor_metadata()
    _doctor_calendar(settings, report)
    conf = settings.pbx.conf_dir
    missing = [n for n in ("modules.conf", "manager.conf", "extensions.conf")
               if not (conf / n).is_file()]
    report(not missing, f"Asterisk configuration in {conf}"
           + (f" (missing {', '.join(missing)})" if missing else ""))
    try:
        secret = settings.ami_secret()
        report(True, "AMI secret available")
    except ConfigError as exc:
        report(False, str(exc))
        return 1
    ami = AmiClient(settings.ami, secret)
    try:
        await ami.connect()
        report(True, f"AMI login at {settings.ami.host}:{settings.ami.port} as "
                     f"{settings.ami.username}")
        reply = await ami.action("Ping")
        report(reply.get("Ping", "").lower() == "pong", "AMI answers Ping")
    except CallCenterError as exc:
        report(False, _doctor_ami_hint(exc))
    finally:
        await ami.close()
    await _doctor_engine(settings, report)
    _doctor_agi_key(settings, report)
    await _doctor_phones(settings, report)
    return 1 if problems else 0


def _doctor_calendar(settings: Settings, report: Callable[[bool, str], None],
                     today: dt.date | None = None) -> None:
    """The exchange calendar loads and covers this year and the next with published notices:
    a missing current year fails (holidays would trade), a provisional or missing next year
    warns."""
    from callcenter.broker.exchange_calendar import calendar_warnings
    from callcenter.engine import sandbox_rules

    try:
        rules = sandbox_rules(settings)
    except ConfigError as exc:
        report(False, f"exchange calendar: {exc}")
        return
    today = today or dt.datetime.now(rules.tz).date()
    warnings = calendar_warnings(today, rules.calendar_years)
    for warning in warnings:
        print(f"[warn] {warning}")
    report(today.year in rules.calendar_years,
           f"exchange calendar: {', '.join(map(str, rules.calendar_years))}")


async def _doctor_phones(settings: Settings, report: Callable[[bool, str], None]) -> None:
    """The phones' AMI user, the SIP certificate, and how many agent phones are registered."""
    import sqlite3

    import aiosqlite

    from callcenter.phones.identity import PhoneIdentity
    from callcenter.phones.link import PhoneLink
    from callcenter.store.phones import load_phones

    cert, key = settings.tls_files()
    report(cert.is_file() and key.is_file(),
           f"TLS certificate for SIP/WSS and the console: {cert}"
           + ("" if cert.is_file() else " missing (callcenter pbx up makes the sandbox's)"))
    if not settings.database.exists():
        return
    # read-only, no migrations: doctor only looks (the file keeps its mode and schema)
    try:
        async with aiosqlite.connect(f"file:{settings.database}?mode=ro", uri=True) as db:
            phones = await load_phones(db)
    except sqlite3.Error as exc:
        if "no such table" not in str(exc):  # a database the engine has not migrated yet
            report(False, f"cannot read the agents' phones from {settings.database}: {exc}")
        return
    async def known() -> dict[str, PhoneIdentity]:
        return phones

    link = PhoneLink(settings, known)  # reads only: no sync
    try:
        await link.ami.connect()
        await link.read_contacts()
    except CallCenterError as exc:
        report(False, f"phones' AMI user {settings.ami.phones_username}: {exc}")
        return
    finally:
        await link.ami.close()
    registered = sorted(p.extension for p in phones.values() if link.can_ring(p.extension))
    report(True, f"phones' AMI user {settings.ami.phones_username}; {len(registered)} of"
                 f" {len(phones)} agent phones registered"
                 + (f" ({', '.join(registered)})" if registered else ""))


def _doctor_agi_key(settings: Settings, report: Callable[[bool, str], None]) -> None:
    """The FastAGI session key: present, and the one the PBX's dialplan was given."""
    from callcenter.telephony.pbx import Pbx

    try:
        settings.agi_key()
    except ConfigError as exc:
        report(False, str(exc))
        return
    matches = Pbx(settings).installed_agi_key_matches()
    if matches is None:
        print("[--] FastAGI key: no PBX configuration installed here to compare with")
    else:
        report(matches, "FastAGI key shared with the dialplan" if matches else
               "FastAGI key differs from the PBX's agi_key.conf: every call would be refused;"
               " reinstall it (callcenter pbx down && callcenter pbx up)")


def _doctor_files(settings: Settings) -> None:
    """Warn (not fail) about files others may read, and about records waiting in a spool."""
    from callcenter.engine import broker_needs_traverse
    from callcenter.store.db import loose_modes

    loose = loose_modes(settings.state_dir, (settings.database, settings.backoffice_db),
                        traverse=broker_needs_traverse(settings))
    for problem in loose:
        print(f"[WARN] {problem}: others can read it; chmod it (password hashes, customer data)")
    if not loose:
        print(f"[ok] state directory {settings.state_dir} and databases private")
    for spool in sorted(settings.database.parent.glob(f"{settings.database.name}.*.spool.jsonl")):
        if spool.stat().st_size:
            print(f"[WARN] {spool}: records wait for the database (written when it takes writes)")


def _doctor_metadata() -> None:
    """Warn (not fail) when the installed metadata lacks entry points the checkout declares:
    the engine still finds them in pyproject.toml, other tools (pip, plug-ins) do not."""
    from callcenter.entry_points import stale

    missing = stale()
    if missing:
        print(f"[WARN] installed metadata is stale (lacks {', '.join(missing)}): run ./dev or "
              "pip install -e .")


def _doctor_ami_hint(exc: CallCenterError) -> str:
    """An AMI failure, with what to do about it."""
    from callcenter.errors import AmiAuthError, AmiConnectionError

    if isinstance(exc, AmiAuthError):
        return f"{exc}: restart the sandbox PBX (callcenter pbx down && callcenter pbx up)"
    if isinstance(exc, AmiConnectionError):
        return f"{exc}: start Asterisk with ./dev up (or callcenter pbx up)"
    return str(exc)


async def _doctor_engine(settings: Settings, report: Callable[[bool, str], None]) -> None:
    """Is the engine running: does its FastAGI server (where the dialplan sends every call)
    accept connections?"""
    at = f"{settings.agi.host}:{settings.agi.port}"
    listening = await _engine_listening(settings)
    if listening is None:
        print(f"[--] engine: FastAGI port {at} is chosen when it starts; not checked")
        return
    port_free = not listening and _port_bindable(settings.agi.host, settings.agi.port)
    ok, what = _engine_check(at, listening=listening, port_free=port_free,
                             pid=_engine_pid(settings))
    report(ok, what)


def _engine_check(at: str, *, listening: bool, port_free: bool,
                  pid: int | None) -> tuple[bool, str]:
    """doctor's verdict on the engine, from what it saw: something accepts connections on the
    FastAGI address ``at``; nothing holds that port; the live pid in ``engine.pid``."""
    if listening:
        return True, f"engine running: FastAGI on {at}" + (f" (pid {pid})" if pid else "")
    if pid is not None:
        return False, (f"engine (pid {pid}) not serving FastAGI on {at}: still starting, or"
                       " stuck; see its output, or restart it (callcenter run)")
    if not port_free:
        return False, (f"FastAGI port {at} held by another program, not the engine: stop that"
                       " program")
    return False, (f"engine not running (nothing on FastAGI {at}): start it with callcenter run"
                   " (./dev up starts Asterisk and the engine)")


def _engine_pid(settings: Settings) -> int | None:
    """The pid in ``engine.pid`` (``callcenter run`` writes it), if that process is alive."""
    from callcenter.ops.engine_process import engine_pid

    return engine_pid(settings.state_dir)


def _port_bindable(host: str, port: int) -> bool:
    """Could a server bind ``host:port`` now (nothing holds it)?"""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def cmd_doctor(args: argparse.Namespace) -> int:
    return asyncio.run(_doctor())


# -- prompts ---------------------------------------------------------------------------------------

def cmd_prompts(args: argparse.Namespace) -> int:
    from callcenter.ivr.prompts import (
        LANGUAGES,
        backoffice_prompts,
        build_prompts,
        load_prompt_files,
    )

    settings = _settings()
    prompts = {**load_prompt_files(settings.flows_dir), **backoffice_prompts()}
    recorded = settings.pbx.recorded_dir
    report = build_prompts(prompts, settings.pbx.sounds_dir, recorded,
                           voices={"zh": settings.pbx.voice_zh, "en": settings.pbx.voice_en})
    print(f"{len(prompts)} prompts x 2 languages; {report.written} files written "
          f"into {settings.pbx.sounds_dir}; recordings from {recorded}")
    for lang in LANGUAGES:
        print(f"  {lang}: " + ", ".join(f"{report.count(lang, src)} {src}"
                                        for src in ("recorded", "synthesised", "missing")))
    for (ident, lang), src in sorted(report.sources.items()):
        if src != "synthesised" or args.all:
            print(f"{src:12} {lang} {ident}")
    for path in report.unknown_recordings:
        print(f"unused       {path}: no prompt has this id (misspelled?)", file=sys.stderr)
    for problem in report.problems:
        print(f"problem      {problem}", file=sys.stderr)
    if args.durations:
        _print_menu_durations(settings.flows_dir, settings.pbx.sounds_dir)
    return 1 if report.count("zh", "missing") + report.count("en", "missing") else 0


def _print_menu_durations(flows_dir: Path, sounds_dir: Path) -> None:
    """Each menu's keys and spoken seconds per language, from the audio just built."""
    from callcenter.ivr.flowset import read_flowset
    from callcenter.ivr.menu_report import format_timings, menu_timings

    flows, problems = read_flowset(flows_dir)
    if flows is None:
        for diagnostic in problems:
            print(f"problem      {diagnostic}", file=sys.stderr)
        return
    print(f"menus of {flows_dir} (seconds of their fixed prompts):")
    for line in format_timings(menu_timings(flows, sounds_dir)):
        print(f"  {line}")


# -- flows -----------------------------------------------------------------------------------------

def _load_flows(path: str | None) -> tuple[Path, object]:
    """The flows, checked against the engine's actions and the configured ACD queues, their
    schedules with the configured exchange calendar's days."""
    from callcenter.broker.exchange_calendar import load_calendar
    from callcenter.engine import ACTION_NAMES
    from callcenter.ivr.flow_load import load_flowset

    settings = _settings()
    directory = Path(path) if path else settings.flows_dir
    queues = frozenset(q.name for q in settings.acd.queues)
    return directory, load_flowset(directory, actions=ACTION_NAMES, queues=queues,
                                   calendar=load_calendar(settings.backoffice.calendar))


def cmd_flows(args: argparse.Namespace) -> int:
    from callcenter.ivr.flowset import FlowSet, FlowSetError

    if args.action == "schema":
        from callcenter.ivr.flow_schema import flow_schema_text
        from callcenter.ivr.yaml_schema import write_schema

        return write_schema(flow_schema_text(), args.output)
    try:
        directory, loaded = _load_flows(args.path)
    except FlowSetError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        print(f"{len(exc.diagnostics)} problem(s); nothing was changed", file=sys.stderr)
        return 1
    assert isinstance(loaded, FlowSet)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.action == "check":
        print(f"{directory}: {len(loaded.flows)} flows, {len(loaded.prompts)} prompts, "
              f"version {loaded.version}: OK")
        return 0
    if args.action == "reload":
        return _signal_engine_reload(loaded.version)
    if args.action == "test":
        return asyncio.run(_flows_test(loaded, directory))
    return asyncio.run(_flows_try(args, loaded))


def _signal_engine_reload(version: str) -> int:
    from callcenter.ops.engine_process import signal_reload

    pid = signal_reload(_settings().state_dir, "flows")
    print(f"flows checked (version {version}); engine {pid} told to reload")
    return 0


async def _flows_try(args: argparse.Namespace, flows: object) -> int:
    """Run a flow on the interpreter the engine uses, with a throwaway sandbox back office
    under the configured rules, at the instant ``--at`` (else ``tryout.DEFAULT_AT``)."""
    import datetime as dt

    from callcenter.engine import sandbox_rules
    from callcenter.ivr.flowset import FlowSet
    from callcenter.ivr.interpreter import End
    from callcenter.ivr.tryout import fixed_instant, try_flow

    assert isinstance(flows, FlowSet)
    try:
        at = dt.datetime.fromisoformat(args.at) if args.at else None
    except ValueError as exc:
        raise ConfigError(f"--at {args.at!r}: not a time like '2026-11-23 10:00'") from exc
    rules = sandbox_rules(_settings())
    print(f"sandbox time {fixed_instant(at, rules):%Y-%m-%d %H:%M %Z} (set it with --at)")
    got = await try_flow(flows, args.flow, args.dtmf, caller=args.caller, lang=args.lang,
                         at=at, rules=rules, out=print)
    if isinstance(got.end, End):
        print(f"call ends: {got.end.reason}")
    elif got.end is not None:
        context = " ".join(f"{k}={v}" for k, v in got.end.context.items())
        print(f"to agent queue {got.end.queue}: {context}")
    return 0


async def _flows_test(flows: object, directory: Path) -> int:
    """Every scenario under the configured rules, each at its ``at:`` (else
    ``tryout.DEFAULT_AT``): never at the machine's date."""
    from callcenter.engine import sandbox_rules
    from callcenter.ivr.flowset import FlowSet
    from callcenter.ivr.tryout import DemoLedgers, load_scenarios, run_scenario

    assert isinstance(flows, FlowSet)
    failed = 0
    ledgers = DemoLedgers(sandbox_rules(_settings()))
    scenarios = load_scenarios(directory / "scenarios")
    for path, scenario in scenarios:
        problems = await run_scenario(flows, scenario, ledgers)
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {path.name}: {scenario.name}")
        for problem in problems:
            print(f"       {problem}")
    print(f"{len(scenarios) - failed} passed, {failed} failed")
    return 1 if failed else 0


async def _sandbox(args: argparse.Namespace) -> int:
    from callcenter.broker.sandbox import SandboxBackOffice
    from callcenter.broker.seed import DEMO_ACCOUNTS, seed_demo
    from callcenter.engine import sandbox_rules, started_clock

    settings = _settings()
    # A running engine owns the ledger: its market holds the open orders in memory. A second
    # office here would step its own market and send due queued orders into it, to be lost
    # when this command ends. So, while it runs: no seed, and a quote of the saved market.
    engine = _engine_pid(settings)
    if engine is not None and args.action == "seed":
        return _refuse(1, f"the engine (pid {engine}) is running on the sandbox ledger "
                          f"{settings.backoffice_db}: stop it before seeding")
    # on the engine's sandbox clock: the demo's "today" (a birthday, a new account, a complaint
    # just handled) is the day the engine runs on
    office = await SandboxBackOffice.open(settings.backoffice_db, rules=sandbox_rules(settings),
                                          clock=started_clock(settings))
    try:
        if args.action == "quote" and engine is not None:
            await office.security(args.code)
            q = office.market.quote(args.code)
            print(f"{q.security.code} {q.security.name} last {q.last} "
                  f"({q.change:+} {q.change_pct:+}%) at {office.market.now:%Y-%m-%d %H:%M} "
                  f"(as the running engine last saved it)")
        elif args.action == "seed":
            await seed_demo(office)
            await _seed_agents(settings)
            print(f"sandbox back office seeded at {settings.backoffice_db}:")
            for demo in DEMO_ACCOUNTS:
                c = demo.customer
                print(f"  {c.account} {c.tier.value:9} phone {', '.join(c.phones)}")
            print("  demo passwords: see docs/backoffice.md")
        elif args.action == "quote":
            q = await office.quote(args.code)
            print(f"{q.security.code} {q.security.name} last {q.last} "
                  f"({q.change:+} {q.change_pct:+}%) at {office.now():%Y-%m-%d %H:%M}")
    finally:
        await office.close()
    return 0


async def _seed_agents(settings: Settings) -> None:
    from callcenter.seats.demo import DEMO_AGENTS, seed_agents
    from callcenter.store.db import open_db

    db = await open_db(settings.database)
    try:
        await seed_agents(db, settings.sip.realm)
    finally:
        await db.close()
    print(f"demo agents: {', '.join(a.agent_id for a in DEMO_AGENTS)} (password: docs/acd.md)")


async def _agents(args: argparse.Namespace) -> int:
    from pydantic import SecretStr

    from callcenter.admin.services import AdminServices
    from callcenter.errors import AdminError
    from callcenter.store.agents import AgentRecord, load_agents
    from callcenter.store.db import open_db

    settings = _settings()
    db = await open_db(settings.database)
    try:
        if args.action == "list":
            for a in await load_agents(db):
                listed = ",".join(f"{k}={v}" for k, v in sorted(a.skills.items()))
                print(f"{a.agent_id:8} {a.role:10} {a.endpoint:28} {listed:24} "
                      f"{'vip ' if a.vip_team else ''}{a.name}")
            return 0
        skills: dict[str, int] = {}
        for item in args.skill:
            name, _, level = item.partition("=")
            if not level.isdigit():
                raise ConfigError(f"--skill {item!r}: write name=level, e.g. general=5")
            skills[name] = int(level)
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        endpoint = args.endpoint
        if args.phone:
            if not args.extension:
                raise ConfigError("--phone needs --extension (the phone's number, 2-8 digits)")
            endpoint = f"PJSIP/{args.extension}"
        try:  # the administration API's service (``admin/services.py``): one rule for both
            await AdminServices(settings, db).save_agent(
                AgentRecord(args.agent_id, args.name or args.agent_id, args.role, endpoint,
                            skills, args.vip), SecretStr(password) if password else None)
        except AdminError as exc:
            raise ConfigError(exc.message) from None
        print(f"agent {args.agent_id} saved (a running engine takes it at its next start;"
              " PUT /api/agents/{id} changes it at once)")
        if args.phone:
            await _provision_phone(settings, db, args)
        return 0
    finally:
        await db.close()


async def _provision_phone(settings: Settings, db: aiosqlite.Connection,
                           args: argparse.Namespace) -> None:
    """Save the agent's SIP phone; push it to a running Asterisk (else the engine will)."""
    from callcenter.errors import AmiError
    from callcenter.phones.identity import PhoneKind
    from callcenter.phones.link import PhoneLink
    from callcenter.store.phones import load_phones, save_phone

    kind = PhoneKind(args.phone)
    secret = await save_phone(db, args.agent_id, args.extension, kind, settings.sip.realm,
                              auto_answer=args.auto_answer)
    link = PhoneLink(settings, lambda: load_phones(db))
    try:
        await link.ami.connect()
        await link.sync()
        where = "in the PBX now"
    except (AmiError, ConfigError) as exc:
        where = f"the engine makes it in the PBX when it connects ({exc})"
    finally:
        await link.close()
    print(f"{kind.value} phone {args.extension} for agent {args.agent_id}: {where}")
    if secret is not None:
        print(f"SIP account: user {args.extension}, realm {settings.sip.realm}, server "
              f"{settings.sip.bind} (UDP/TCP {settings.sip.udp_port}, TLS {settings.sip.tls_port})")
        print(f"SIP secret (shown once, only its digest is kept): {secret}")


def cmd_agents(args: argparse.Namespace) -> int:
    return asyncio.run(_agents(args))


def cmd_report(args: argparse.Namespace) -> int:
    """``report calls`` (``acd/report.py``) or ``report tasks`` (``tasks/report_db.py``)."""
    if args.what == "tasks":
        from callcenter.tasks.report_db import run_task_report

        return asyncio.run(run_task_report(args, _settings()))
    from callcenter.acd.report import run_report

    return asyncio.run(run_report(args, _settings()))


def cmd_sandbox(args: argparse.Namespace) -> int:
    return asyncio.run(_sandbox(args))


def cmd_bench(args: argparse.Namespace) -> int:
    """The benchmarks run the engine in their own process, on the loop the engine would use."""
    from callcenter.bench_ivr import run_bench

    settings = _settings()

    def run(main: Coroutine[Any, Any, int]) -> int:
        return event_loop.run(main, settings.event_loop)

    if args.what == "acd":
        from callcenter.bench_acd import run_acd_bench

        return run(run_acd_bench(settings, args.rounds, args.output))
    if args.what == "acd-load":
        from callcenter.bench_acd_load import run_acd_load_bench

        return run(run_acd_load_bench(settings, args.agents, args.backlog,
                                      args.phase_s, args.phases or 4, args.output))
    if args.what == "load":
        from callcenter.bench_load import run_load_bench

        try:
            rates = [float(r) for r in args.rates.split(",")]
        except ValueError:
            raise ConfigError("--rates: calls per second separated by commas (e.g. 2,5,10)")\
                from None
        return run(run_load_bench(settings, rates, args.step_s, args.output))
    if args.what == "console":
        from callcenter.bench_console import run_console_bench

        return run(run_console_bench(
            settings, args.clients, args.procs, args.rate, args.step_s, args.change_s,
            args.seats, not args.no_abba, args.output, nice=args.nice,
            consoles_cpus=args.consoles_cpus, phases=args.phases or 0))
    return run(run_bench(settings, args.calls, args.concurrency, args.output))


# -- entry -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("pbx", help="the sandbox (or system) Asterisk")
    p.add_argument("action", choices=["up", "down", "status", "cli", "provision", "install"],
                   help="provision: build the sandbox root only; install: write the"
                        " configuration and prompts without starting Asterisk")
    p.add_argument("command", nargs="*", help="for 'cli': the Asterisk CLI command")
    p.set_defaults(func=cmd_pbx)

    p = sub.add_parser("run", help="run the engine in the foreground")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "call", help="place a test call to the hotline (simulated through AMI, or --sip)",
        description="Place one test call to the hotline and print what the IVR heard."
                    " Ctrl-C hangs the call up.",
        epilog="exit status: 0 the call ended; 1 it did not answer (no such extension), was"
               " cut short, or bad input; 3 Asterisk or the engine is not running"
               " (./dev up, or callcenter run); 130 interrupted (the call was hung up)")
    p.add_argument("number", help="the hotline 9500 (9502: the first flow; --sip: DID 95500)")
    p.add_argument("--dtmf", default="", metavar="KEYS",
                   help="keys the caller presses: 0-9 * #; 'w' pauses 0.5 s, 'W' 1 s (other"
                        " characters are left out, with a warning)")
    p.add_argument("--hold", type=_hold_seconds, default=60, metavar="S",
                   help="seconds the caller stays on the line after its keys (default 60)")
    p.add_argument("--timeout", type=_timeout_seconds, default=None, metavar="S",
                   help="seconds to wait for the call to end before hanging it up (default:"
                        f" --hold + {CALL_MARGIN_S}, plus 1 per --dtmf character)")
    p.add_argument("--sip", action="store_true",
                   help="a real SIP caller (RTP, RFC 4733 keys) through the sandbox carrier; "
                        "NUMBER is a hotline DID such as 95500")
    p.add_argument("--caller-id", default="13700000000", help="with --sip: the caller's number")
    p.add_argument("--speak", type=float, default=0, metavar="S",
                   help="with --sip: after its keys the caller speaks (a 440 Hz tone) for S"
                        " seconds, so an agent hears them")
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("status", help="PBX, live channels and recent calls")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="check AMI, credentials, configuration, FastAGI port")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("prompts", help="prompt audio")
    p.add_argument("action", choices=["build"])
    p.add_argument("--all", action="store_true",
                   help="list every prompt with its source, the synthesised ones too")
    p.add_argument("--durations", action="store_true",
                   help="then list every menu's keys and how long it speaks, per language")
    p.set_defaults(func=cmd_prompts)

    p = sub.add_parser("flows", help="check, try and reload the IVR flows")
    fsub = p.add_subparsers(dest="action", required=True)
    f = fsub.add_parser("check", help="report every problem as file:line:col")
    f.add_argument("path", nargs="?", help="flows directory (default: the configured one)")
    f = fsub.add_parser("try", help="run a flow without Asterisk, printing what is heard")
    f.add_argument("flow")
    f.add_argument("--dtmf", default="", help="keys the caller presses, in order")
    f.add_argument("--caller", default="13700000000", help="caller ID")
    f.add_argument("--lang", default="zh", choices=["zh", "en"])
    f.add_argument("--at", help="sandbox time, e.g. '2026-11-23 10:00' (Asia/Shanghai); the"
                   " clock stands still there (default: 2026-11-23 10:00, a trading day)")
    f.add_argument("--path", help="flows directory")
    f = fsub.add_parser("test", help="run the scenario files in <flows>/scenarios")
    f.add_argument("path", nargs="?", help="flows directory (default: the configured one)")
    f = fsub.add_parser("reload", help="check, then tell the running engine to reload")
    f.add_argument("path", nargs="?", help="flows directory to check first")
    f = fsub.add_parser("schema", help="the JSON Schema of a flow file, for editors")
    f.add_argument("-o", "--output", metavar="FILE", help="write it here (default: print it)")
    p.set_defaults(func=cmd_flows)

    p = sub.add_parser("sandbox", help="the embedded sandbox back office")
    p.add_argument("action", choices=["seed", "quote"])
    p.add_argument("code", nargs="?", default="600519")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("agents", help="the agents who may log in to the console")
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("agent_id", nargs="?", default="")
    p.add_argument("--name", default="")
    p.add_argument("--role", choices=["agent", "supervisor", "admin"], default="agent")
    p.add_argument("--endpoint", default="",
                   help="the agent's phone: a device like PJSIP/1001, or a simulated phone"
                        " Local/<digits>@<context in acd.sim_phone_contexts>")
    p.add_argument("--phone", choices=["browser", "desk"], default="",
                   help="give the agent a SIP phone made by the engine: the console's browser"
                        " phone, or a desk phone (its secret is printed once)")
    p.add_argument("--extension", default="", help="the SIP phone's number (2-8 digits)")
    p.add_argument("--auto-answer", action="store_true",
                   help="the browser phone answers offered calls by itself")
    p.add_argument("--skill", action="append", default=[], help="name=level (1-10)")
    p.add_argument("--vip", action="store_true", help="member of the VIP team")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(func=cmd_agents)

    from callcenter.acd.report import add_report_parser
    from callcenter.channels.cli import add_channel_parsers
    from callcenter.tasks.report_db import add_task_report_options

    report = add_report_parser(sub)
    add_task_report_options(report)
    report.set_defaults(func=cmd_report)
    add_channel_parsers(sub)
    from callcenter.strategies.cli import add_strategy_parsers

    add_strategy_parsers(sub)
    from callcenter.admin.cli import add_api_parsers

    add_api_parsers(sub)
    from callcenter.recordings.cli import add_recording_parsers

    add_recording_parsers(sub)
    from callcenter.dialer.cli import add_dnc_parsers

    add_dnc_parsers(sub)

    p = sub.add_parser("bench", help="benchmarks against Asterisk-native baselines")
    p.add_argument("what", choices=["ivr", "acd", "acd-load", "load", "console"])
    p.add_argument("--rounds", type=int, default=20, help="acd: rounds per side")
    p.add_argument("--agents", type=int, default=50,
                   help="acd-load: simulated agents per side")
    p.add_argument("--backlog", type=int, default=10,
                   help="acd-load: callers kept waiting beyond the agents")
    p.add_argument("--phase-s", type=float, default=30.0,
                   help="acd-load: seconds of arriving callers per phase")
    p.add_argument("--phases", type=int, default=None,
                   help="acd-load: phases, even, in ABBA order (ours, app_queue, app_queue,"
                        " ours, ...; 4); console: phases, a multiple of 4 in ABBA order"
                        " (without clients, with, with, without, ...; 4), of 2 with --no-abba"
                        " (2)")
    p.add_argument("--rates", default="2,5,10,20,40",
                   help="load: rising calls per second, one step each")
    p.add_argument("--step-s", type=float, default=20.0,
                   help="load: seconds of calls per flow and step; console: per phase")
    p.add_argument("--calls", type=int, default=40)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--clients", type=int, default=1000,
                   help="console: websocket clients watching the wallboard")
    p.add_argument("--procs", type=int, default=2, help="console: client processes")
    p.add_argument("--rate", type=float, default=20.0, help="console: SIP calls per second")
    p.add_argument("--change-s", type=float, default=0.1,
                   help="console: seconds between the seat moves the bench makes")
    p.add_argument("--seats", type=int, default=20,
                   help="console: seats on the board besides the bench's own two")
    p.add_argument("--no-abba", action="store_true",
                   help="console: a phase without clients, one with, ... (AB, not ABBA)")
    p.add_argument("--nice", type=int, default=19, choices=range(20), metavar="0-19",
                   help="console: the client processes' niceness (they yield the CPUs to the"
                        " engine and Asterisk, as consoles on other machines would)")
    p.add_argument("--consoles-cpus", default="auto", metavar="LIST|auto|none",
                   help="console: the CPUs of the relay and the client processes (as 1 or 2-3);"
                        " Asterisk, the engine and SIPp run on the others, as with consoles on"
                        " the agents' PCs. auto: the second half of the CPUs; none: all share"
                        " every CPU")
    p.add_argument("--output", default="docs/benchmarks.md")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except CallCenterError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
