"""The key tap: gives the IVR back the keys ``res_agi`` drops between two AGI commands.

A dedicated AMI user (``ami.keys_username``, read classes ``dtmf`` and ``agi`` only, no write
class) over TLS (``ami.tls_port``; Asterisk's certificate, checked against the site's CA) feeds a
``KeyLedger`` (``key_ledger.py`` explains the gap and how the events find the keys in it).

Why its own user, and why TLS: DTMF events carry what callers type, passwords included. The
call-control user never gets the ``dtmf`` or ``agi`` classes (manager.conf), so nothing that
handles calls, logs actions or resyncs the model ever sees a key; this link hears nothing else,
logs nothing of what it hears, and is encrypted on the wire. Without the tap (not reachable, or
``ami.key_tap = false``) the IVR works as before: Asterisk's ``GET DATA`` still collects each
answer whole; only keys typed between two questions can be lost.

``TypedAhead`` is one AGI session's view, used by ``ivr/runner.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from pathlib import Path

from pydantic import SecretStr

from callcenter.config import AmiSettings
from callcenter.errors import AmiError
from callcenter.telephony.agi import Channel
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AgiExec, AmiEvent, KeyRead
from callcenter.telephony.key_ledger import KeyLedger

log = logging.getLogger(__name__)


class KeyTap:
    """The tap's AMI link and ledger; ``session(channel)`` for each AGI session."""

    def __init__(self, settings: AmiSettings, secret: SecretStr, ca_file: Path,
                 settle_s: float = 0.5, lag_s: float = 10.0) -> None:
        self._link = settings.model_copy(update={"username": settings.keys_username,
                                                 "port": settings.tls_port})
        self._secret = secret
        self._ca_file = ca_file
        self.ami: AmiClient | None = None
        self.ledger = KeyLedger()
        #: how long a session waits for Asterisk's report of a command's start before it gives
        #: the answer without the keys of the gap before it
        self.settle_s = settle_s
        #: how long a session waits for that report once the tap has reported commands (it
        #: works, and lags): a stalled link is found by the AMI client's pings, not by this
        self.lag_s = lag_s
        #: the login (``generation``) on which the tap last reported an AGI command's start
        self._heard_on: int | None = None
        self.late = 0   # waits that ran out (the tap's events lagged): counted, logged
        self._late_streak = 0
        #: per channel: its current session and the event a command's start sets
        self._sessions: dict[str, tuple[TypedAhead, asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background: the IVR never waits for the tap to come up."""
        self._task = asyncio.create_task(self._connect(), name="key-tap")

    async def _connect(self) -> None:
        """Log in (then ``AmiClient`` keeps the link up); until then retry, with a warning."""
        delay = self._link.reconnect_min
        while True:
            try:
                if self.ami is None:
                    tls = ssl.create_default_context(cafile=str(self._ca_file))
                    self.ami = AmiClient(self._link, self._secret, on_event=self._event,
                                         tls=tls)
                await self.ami.start()
                return
            except (AmiError, OSError) as exc:  # OSError: the CA file (ssl.SSLError too)
                log.warning("key tap: %s; keys typed between two questions may be lost until"
                            " it connects (retrying in %.0f s)", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.ami is not None:
            await self.ami.close()

    @property
    def connected(self) -> bool:
        return self.ami is not None and self.ami.connected.is_set()

    def generation(self) -> int | None:
        """Which login of the link is up (None: down). A session counts commands right only if
        the link it started with is still the one up: it missed nothing."""
        return self.ami.connections if self.ami is not None and self.connected else None

    def session(self, channel: Channel) -> TypedAhead:
        """Open the ledger for ``channel`` before its first command; ``close()`` at the end."""
        self.ledger.open(channel.uniqueid)
        typed = TypedAhead(self, channel)
        self._sessions[channel.uniqueid] = (typed, asyncio.Event())
        return typed

    def end(self, typed: TypedAhead) -> None:
        """The session is over (a later session on the same channel keeps its own ledger)."""
        current = self._sessions.get(typed.uniqueid)
        if current is not None and current[0] is typed:
            del self._sessions[typed.uniqueid]
            self.ledger.close(typed.uniqueid)

    def _event(self, event: AmiEvent) -> None:
        match event:
            case KeyRead(uniqueid=uid, digit=digit, at=at, duration_ms=duration_ms):
                self.ledger.key(uid, digit, at or time.time(), duration_ms)
            case AgiExec(uniqueid=uid, ended=ended, at=at):
                if ended:
                    self.ledger.command_ended(uid)
                else:
                    self.ledger.command_started(uid, at or time.time())
                    self._heard_on = self.generation()
                    session = self._sessions.get(uid)
                    if session is not None:
                        session[1].set()

    async def settled(self, uniqueid: str, command: int, generation: int | None) -> bool:
        """Wait until Asterisk has reported command number ``command`` started, on the login
        ``generation`` of the link (a session that began on another saw nothing of this one).

        A tap that has reported AGI commands on this login works and, when a report is late,
        lags (an overloaded Asterisk delivers AMI events behind the FastAGI replies): it is
        waited for, up to ``lag_s``. A late answer costs the caller a moment; not waiting
        loses the keys of the gap, and the keys typed meanwhile fall in the next gap, which
        the tap covers too. A tap that has reported no command on this login (say, an event
        filter that drops them) is waited for only ``settle_s``. After three waits in a row ran
        out, nobody waits until a report comes on time. A link that drops ends the wait."""
        if self.ledger.started(uniqueid) >= command:
            self._late_streak = 0
            return True
        if self._late_streak >= 3 or self.ami is None:
            return False
        works = self._heard_on is not None and self._heard_on == self.generation()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.lag_s if works else self.settle_s)
        while self.ledger.started(uniqueid) < command:
            session = self._sessions.get(uniqueid)
            left = deadline - loop.time()
            if session is None or self.generation() != generation:
                return False
            if left <= 0:
                self._late_streak += 1
                return False
            moved = session[1]
            moved.clear()
            waits = [asyncio.ensure_future(moved.wait()),
                     asyncio.ensure_future(self.ami.disconnected.wait())]
            try:
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        self._late_streak = 0
        return True


class TypedAhead:
    """One AGI session's keys from the gaps, handed out once each, in the order typed."""

    def __init__(self, tap: KeyTap, channel: Channel) -> None:
        self._tap = tap
        self._channel = channel
        self.uniqueid = channel.uniqueid
        self._generation = tap.generation()

    def _seeing(self) -> bool:
        """The tap heard this session from its first command on, without a break."""
        return self._generation is not None and self._tap.generation() == self._generation

    def ahead(self) -> str:
        """Keys typed since the last command ended (and any older ones not handed out) that
        Asterisk can no longer deliver to the next command."""
        if not self._seeing():
            return ""
        return self._tap.ledger.ready(self.uniqueid, self._channel.commands_sent + 1,
                                      time.time())

    async def before_last(self, answer: str) -> str:
        """Keys typed in the gaps up to the start of the command just answered with ``answer``
        (the keys it collected): they came before those."""
        if not self._seeing():
            return ""
        sent = self._channel.commands_sent
        if not await self._tap.settled(self.uniqueid, sent, self._generation):
            self._tap.late += 1
            if self._tap.late in (1, 10, 100) or self._tap.late % 1000 == 0:
                log.warning("key tap: Asterisk's report of a command came late %d time(s);"
                            " keys typed just before it may be missing", self._tap.late)
        return self._tap.ledger.settle(self.uniqueid, sent, answer)

    def seal(self) -> None:
        """Keys typed after the command just answered never count (after a password)."""
        self._tap.ledger.seal(self.uniqueid, self._channel.commands_sent)

    def close(self) -> None:
        self._tap.end(self)
