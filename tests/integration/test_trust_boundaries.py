"""Issue 9, findings 1, 2 and 4 (dialplan side), attacked through the real Asterisk and engine.

1. Anything on the host can open a FastAGI session to the engine and claim any channel: it must
   get nothing unless it carries the token our dialplan makes (telephony/agi_auth.py).
2. The engine's own AMI user can Originate into ``[acd-agent]`` with crafted variables: no
   variable may add MixMonitor options or a post-recording command.
4. A number with ``&`` must never become a second dial leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path

import pytest

from callcenter.engine import Engine
from callcenter.telephony.agi_auth import session_mac
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, NewChannel
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.acd_helpers import (
    ORDINARY_PHONE,
    press_while_waiting,
    queue_to_agent,
    until,
)
from tests.integration.conftest import wait_no_channels

pytestmark = pytest.mark.integration

ATTACKER_PHONE = "17000000666"


def _environment(script: str, channel: str, uniqueid: str, caller_id: str,
                 *args: str) -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}",
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: Local",
        f"agi_uniqueid: {uniqueid}",
        f"agi_callerid: {caller_id}",
        "agi_calleridname: unknown",
        "agi_context: queue-hold",
        "agi_extension: 1",
        "agi_priority: 2",
        *(f"agi_arg_{i}: {arg}" for i, arg in enumerate(args, start=1)),
    ]
    return ("\n".join(lines) + "\n\n").encode()


async def _forge(port: int, environment: bytes) -> bytes:
    """Open a session as an impostor, answer whatever the engine asks, return what it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(environment)
        await writer.drain()
        async with asyncio.timeout(15):
            while True:
                line = await reader.readline()
                if not line:
                    return received  # the engine hung up on us
                received += line
                # Play Asterisk: every command succeeds, every variable is the attacker's.
                if line.startswith(b"GET VARIABLE") or line.startswith(b"GET FULL VARIABLE"):
                    writer.write(b"200 result=1 (x,,touch /tmp/cc-pwned)\n")
                else:
                    writer.write(b"200 result=0\n")
                await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _callbacks(engine: Engine) -> list[tuple[str, str]]:
    assert engine.db is not None
    async with engine.db.execute(
            "SELECT phone, state FROM service_requests WHERE kind = 'callback'") as cur:
        return [(str(r[0]), str(r[1])) for r in await cur.fetchall()]


async def test_a_forged_fastagi_session_cannot_take_over_a_waiting_callers_callback(
        engine: Engine, caller: SimCaller) -> None:
    assert engine.agi is not None and engine.acd is not None
    call_id = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    waiter = engine.acd.find_waiter(call_id=call_id)
    assert waiter is not None and not waiter.callback
    # The impostor knows the real caller's channel and uniqueid (e.g. from a log) and claims
    # them, with its own number as caller ID: without a token, and with made-up ones.
    uid, channel = waiter.uniqueid, waiter.channel
    stamp = str(int(time.time()))
    attempts = [
        (),
        (stamp, "0" * 40),
        (stamp, session_mac("guessed-key", "queue-callback", uid, channel, int(stamp))),
    ]
    for args in attempts:
        sent = await _forge(engine.agi.port,
                            _environment("queue-callback", channel, uid, ATTACKER_PHONE, *args))
        assert sent == b"", f"the engine talked to an impostor: {sent!r}"
    assert engine.agi.refused_sessions == len(attempts)
    assert await _callbacks(engine) == []
    still = engine.acd.find_waiter(call_id=call_id)
    assert still is waiter and not waiter.callback and waiter.phone == ORDINARY_PHONE
    # The real caller's own key press (through Asterisk, with its token) still works.
    assert engine.ami is not None and engine.controller is not None
    await press_while_waiting(engine, call_id)
    await until(engine, lambda: waiter.callback, what="the genuine call-back")
    assert await _callbacks(engine) == [(ORDINARY_PHONE, "open")]
    await caller.wait_end(call_id, 30)


async def test_a_forged_hotline_session_runs_no_flow(engine: Engine) -> None:
    assert engine.agi is not None and engine.controller is not None
    fake_uid = f"{int(time.time())}.999"
    sent = await _forge(engine.agi.port,
                        _environment("hotline", "PJSIP/trunk-00000999", fake_uid, ATTACKER_PHONE))
    assert sent == b""  # not even an ANSWER: no prompt, no back-office call, no timeline
    assert engine.agi.refused_sessions == 1
    assert fake_uid not in engine.controller.model.channels


def _chroot_file(pbx: Pbx, path: str) -> Path:
    return pbx.root / path.lstrip("/")


async def _gone_within(path: Path, seconds: float) -> bool:
    """True if ``path`` still does not exist after ``seconds`` of watching (deadline, not sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if path.exists():
            return False
        await asyncio.sleep(0.05)
    return not path.exists()


async def test_a_crafted_recording_variable_over_the_engines_ami_runs_no_command(
        engine: Engine, pbx: Pbx) -> None:
    assert engine.ami is not None
    marker = f"/tmp/cc-pwned-{secrets.token_hex(4)}"
    recording = f"/var/spool/asterisk/monitor/callcenter/{secrets.token_hex(4)}.wav"
    # Before the fix, MixMonitor(${CC_REC},b) became MixMonitor(<file>,,touch <marker>;,b):
    # a post-recording command, run by Asterisk's shell when the recording ends. (AMI splits a
    # Variable header at commas outside double quotes, and removes the quotes.)
    await engine.ami.originate(
        Channel=f"Local/{secrets.randbelow(9000) + 1000}@agent-answer", Context="acd-agent",
        Exten="s", Priority="1", Timeout="10000",
        Variable=[f'CC_REC="{recording},,touch {marker};"', "CC_CALLER=Local/nobody@nowhere"])
    assert await wait_no_channels(engine.ami) == []
    assert await _gone_within(_chroot_file(pbx, marker), 3.0), "the crafted command ran"


async def test_an_ampersand_in_a_callback_number_dials_no_second_leg(engine: Engine) -> None:
    assert engine.ami is not None
    channels: list[str] = []

    def on_event(event: AmiEvent) -> None:
        if isinstance(event, NewChannel):
            channels.append(event.info.channel)

    engine.ami.add_handler(on_event)
    try:
        await engine.ami.originate(
            Channel="Local/1234@agent-answer", Context="acd-agent", Exten="callback",
            Priority="1", Timeout="10000",
            Variable=["CC_NUMBER=13800000001@outbound&Local/6666@agent-answer&Local/1",
                      "CC_DIAL_TIMEOUT=5"])
        assert await wait_no_channels(engine.ami) == []
    finally:
        engine.ami.remove_handler(on_event)
    assert channels, "no channel events seen"
    assert not [c for c in channels if "6666" in c], f"a second leg was dialled: {channels}"
    dialled = [c for c in channels if "@outbound" in c]
    assert not dialled, f"a crafted number was dialled: {channels}"


def _pbx_log_size(pbx: Pbx) -> int:
    return sum(p.stat().st_size for p in _chroot_file(pbx, "/var/log/asterisk").glob("messages*"))


def _pbx_log_since(pbx: Pbx, offset: int) -> str:
    text = b"".join(p.read_bytes()
                    for p in sorted(_chroot_file(pbx, "/var/log/asterisk").glob("messages*")))
    return text[offset:].decode(errors="replace")


async def test_a_quote_in_a_variable_cannot_call_a_function_from_an_expression(
        engine: Engine, pbx: Pbx) -> None:
    """``$["${X}" = ""]`` let a value holding '"' close the string and name a dialplan function,
    which Asterisk's expression parser then calls (SET, DB_DELETE, SHELL where loaded). The
    call shows in Asterisk's log (SET without '=' complains; POP cannot be read): no such line
    may appear."""
    assert engine.ami is not None
    phone = secrets.randbelow(9000) + 1000
    offset = _pbx_log_size(pbx)
    await engine.ami.originate(
        Channel=f"Local/{phone}@agent-answer", Context="outbound", Exten="123", Priority="1",
        Timeout="10000",
        Variable=['CUSTOMER_HOLD=\\" | SET(VICTIM) | POP(VICTIM) | \\"', "VICTIM=kept"])
    rows = await engine.ami.action_list("CoreShowChannels")
    leg = next(r["Channel"] for r in rows
               if r.get("Channel", "").startswith(f"Local/{phone}@agent-answer-")
               and r["Channel"].endswith(";1"))
    loop = asyncio.get_running_loop()
    deadline, called = loop.time() + 2.0, ""
    while loop.time() < deadline and not called:
        called = "\n".join(line for line in _pbx_log_since(pbx, offset).splitlines()
                           if "Syntax SET" in line or "cannot be read" in line)
        await asyncio.sleep(0.05)
    await engine.ami.action("Hangup", Channel=leg)
    assert await wait_no_channels(engine.ami) == []
    assert not called, f"a function ran from a dialplan expression:\n{called}"


async def _bridge_agent_leg(engine: Engine, caller: SimCaller, phone: str,
                            recording: str) -> None:
    """Over the engine's own AMI user: an agent leg into [acd-agent] recording to
    ``recording``, bridged to a real waiting caller so audio flows; then both hang up."""
    assert engine.ami is not None and engine.acd is not None
    call_id = await queue_to_agent(engine, caller, phone)
    waiter = engine.acd.find_waiter(call_id=call_id)
    assert waiter is not None
    bridged: list[str] = []

    def on_event(event: AmiEvent) -> None:
        if isinstance(event, BridgeEnter) and "@agent-answer" in event.info.channel:
            bridged.append(event.info.channel)

    engine.ami.add_handler(on_event)
    try:
        await engine.ami.originate(
            Channel=f"Local/{secrets.randbelow(9000) + 1000}@agent-answer",
            Context="acd-agent", Exten="s", Priority="1", Timeout="10000",
            Variable=[f"CC_REC={recording}", f"CC_CALLER={waiter.channel}"])
        await until(engine, lambda: bridged, 20, "the agent leg bridged")
    finally:
        engine.ami.remove_handler(on_event)
    await engine.ami.action("Hangup", Channel=waiter.channel)
    assert await wait_no_channels(engine.ami) == []


async def test_a_recording_path_outside_the_recordings_folder_is_never_written(
        engine: Engine, caller: SimCaller, pbx: Pbx) -> None:
    # e.g. over a prompt callers hear, or another call's recording
    evil = f"/var/lib/asterisk/cc-evil-{secrets.token_hex(4)}.wav"
    await _bridge_agent_leg(engine, caller, ORDINARY_PHONE, evil)
    assert await _gone_within(_chroot_file(pbx, evil), 2.0), "the crafted recording was written"
    # ... while a recording where the engine puts them is written.
    good = (f"{engine.settings.acd.recordings_dir}/{time.strftime('%Y%m%d')}/"
            f"{secrets.token_hex(4)}-T1.wav")
    await _bridge_agent_leg(engine, caller, "13800000007", good)
    async with asyncio.timeout(10):
        while not _chroot_file(pbx, good).is_file():
            await asyncio.sleep(0.05)
