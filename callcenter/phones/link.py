"""The phones' AMI link: agents' SIP identities into AstDB, registrations and SIP attacks out.

Its own AMI user (``ami.phones_username``, class "system": AstDB writes and ``ContactStatus``
need it) so that no action sent for a call runs with those rights. After every login it
re-synchronises AstDB's ``cc_phones`` family with the engine's database (the engine is the one
owner; AstDB is Asterisk's copy) and reads the contacts; then it follows ``ContactStatus``.

Browser phones get a fresh secret at each console login (``open_browser_phone``): only its digest
goes to AstDB, and it is replaced by an unknown one when the session ends, so a page that is
closed or a secret that leaked stops registering.

Security events (an unknown endpoint, a wrong digest, a refused ACL) are logged with their source
address: the first from a source and kind in each minute, the rest counted. Over UDP a source
address can be forged for free, so the log also takes at most ``LOG_BUDGET`` such lines a minute
in all (what it left out is summed up in one line with the first event after that minute), and
the counts keep at most ``MAX_SOURCES`` keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final

from callcenter.config import Settings
from callcenter.errors import AmiActionError, AmiError
from callcenter.phones.identity import (
    FAMILY,
    PhoneIdentity,
    PhoneKind,
    astdb_values,
    ha1,
    new_secret,
)
from callcenter.phones.registry import PhoneChange, Registry
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent, OtherEvent

log = logging.getLogger(__name__)

#: AMI security events worth an operator's eye (res_security_log / manager "security" class)
SECURITY_EVENTS: Final = frozenset({
    "invalidaccountid", "challengeresponsefailed", "invalidpassword", "failedacl",
    "unexpectedaddress", "requestnotallowed", "authmethodnotallowed", "challengesent",
})
#: challenges are part of every normal login: counted, never logged
_QUIET: Final = frozenset({"challengesent"})
LOG_WINDOW_S: Final = 60.0
#: security lines a minute from all sources together (a spray of forged addresses)
LOG_BUDGET: Final = 20
#: (source, event) keys kept in ``security_counts``; beyond it the oldest is dropped
MAX_SOURCES: Final = 10_000

PhoneLoader = Callable[[], Awaitable[dict[str, PhoneIdentity]]]
ChangeHandler = Callable[[PhoneChange], None]


def _source(headers: Mapping[str, str]) -> str:
    """``IPV4/UDP/198.51.100.7/5060`` -> ``198.51.100.7``."""
    parts = headers.get("RemoteAddress", "").split("/")
    return parts[2] if len(parts) >= 3 else "?"


class PhoneLink:
    def __init__(self, settings: Settings, load: PhoneLoader,
                 on_change: ChangeHandler | None = None,
                 in_call: Callable[[], Iterable[str]] | None = None) -> None:
        self.settings = settings
        self._load = load
        self._on_change = on_change
        #: the extensions of the phones that carry a call now (the ACD's), told again after a
        #: snapshot when they cannot ring (``silent_in_call``)
        self._in_call = in_call
        ami = settings.ami.model_copy(update={"username": settings.ami.phones_username})
        self.ami = AmiClient(ami, settings.ami_secret(), on_event=self._event,
                             on_ready=self._ready, on_lost=self._lost)
        self.registry = Registry()
        #: the contacts were read on the current login (the registry follows Asterisk)
        self._fresh = False
        #: extension -> the digest of the current console session's browser secret
        self._session_ha1: dict[str, str] = {}
        #: (source, event) -> when it was last logged; and how many were seen in all
        self._logged: dict[tuple[str, str], float] = {}
        self.security_counts: dict[tuple[str, str], int] = {}
        #: the current minute of the log budget: its start, lines written, events left out
        self._window_start = float("-inf")
        self._window_lines = 0
        self._unlogged = 0
        self.synced = asyncio.Event()
        #: the re-checks of phones that stopped answering (``_recheck``), until they end
        self._rechecks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.ami.start()

    async def close(self) -> None:
        for task in list(self._rechecks):
            task.cancel()
        await self.ami.close()

    def _lost(self) -> None:
        self._fresh = False

    async def _ready(self) -> None:
        self._fresh = False
        self.synced.clear()
        try:
            await self.sync()
            await self.read_contacts()
        except AmiError as exc:
            log.error("phones: could not synchronise with Asterisk: %s", exc)
            return
        self.synced.set()

    async def _list(self, action: str, **headers: str) -> list[Mapping[str, str]]:
        """An event list; Asterisk answers an empty one with an error ("... not found")."""
        try:
            return await self.ami.action_list(action, **headers)
        except AmiActionError as exc:
            if "found" in exc.message.lower():
                return []
            raise

    # -- identities -------------------------------------------------------------------------

    def _wanted(self, phones: Mapping[str, PhoneIdentity]) -> dict[tuple[str, str], str]:
        sip = self.settings.sip
        wanted: dict[tuple[str, str], str] = {}
        for phone in phones.values():
            digest = self._session_ha1.get(phone.extension, phone.ha1)
            wanted |= astdb_values(PhoneIdentity(phone.extension, phone.kind, digest,
                                                 phone.caller_name), sip.realm, sip.qualify_s)
        return wanted

    async def sync(self) -> None:
        """Make AstDB's ``cc_phones`` hold exactly the engine's phones."""
        phones = await self._load()
        rows = await self._list("DBGetTree", Family=FAMILY)
        have = {}
        for row in rows:
            family, _, key = row.get("Key", "").lstrip("/").rpartition("/")
            if family and key:
                have[(family, key)] = row.get("Val", "")
        wanted = self._wanted(phones)
        locked = {p.extension for p in phones.values()
                  if p.ha1 is None and p.extension not in self._session_ha1}
        for (family, key), value in wanted.items():
            if family.endswith("/auth") and key in locked and (family, key) in have:
                continue  # a browser phone between logins: its unknown digest stays
            if have.get((family, key)) != value:
                await self.ami.action("DBPut", Family=family, Key=key, Val=value)
        for family, key in have.keys() - wanted.keys():
            await self.ami.action("DBDel", Family=family, Key=key)
        log.info("phones: %d agent phones in Asterisk", len(phones))

    async def open_browser_phone(self, phone: PhoneIdentity) -> str:
        """A new secret for a browser phone's console session; only its digest leaves."""
        if phone.kind is not PhoneKind.BROWSER:
            raise ValueError("only browser phones get a secret per session")
        secret = new_secret()
        digest = ha1(phone.extension, self.settings.sip.realm, secret)
        await self._put(PhoneIdentity(phone.extension, phone.kind, digest, phone.caller_name))
        self._session_ha1[phone.extension] = digest
        return secret

    async def close_browser_phone(self, phone: PhoneIdentity) -> None:
        """The session ended: nobody may register with its secret any more."""
        self._session_ha1.pop(phone.extension, None)
        await self._put(PhoneIdentity(phone.extension, phone.kind, None, phone.caller_name))

    async def provision(self, phone: PhoneIdentity) -> None:
        await self._put(phone)

    async def _put(self, phone: PhoneIdentity) -> None:
        sip = self.settings.sip
        for (family, key), value in astdb_values(phone, sip.realm, sip.qualify_s).items():
            await self.ami.action("DBPut", Family=family, Key=key, Val=value)

    # -- registrations ----------------------------------------------------------------------

    def can_ring(self, extension: str) -> bool:
        return self.registry.can_ring(extension)

    async def read_contacts(self) -> None:
        """Replace the registry with Asterisk's contacts (after a login; ``doctor``)."""
        rows = await self._list("PJSIPShowContacts")
        changes = self.registry.snapshot(r for r in rows if r.get("Event") == "ContactList")
        self._fresh = True
        for change in changes:
            self._changed(change)
        if self._in_call is not None:
            told = {change.aor for change in changes}
            self.silent_in_call([aor for aor in self._in_call() if aor not in told])

    def silent_in_call(self, extensions: Iterable[str]) -> None:
        """Tell again of those of ``extensions`` (phones with a call) that cannot ring, once the
        contacts are read: a call restored after a restart, or after a reconnect, on a phone
        that was already silent or gone brought no change of its own, and would otherwise stay
        on a phone that may be dead until the caller hangs up."""
        if not self._fresh:
            return  # the contacts are not read on this login: the snapshot to come tells them
        for extension in extensions:
            state = self.registry.state(extension)
            if not state.can_ring:
                self._changed(state)

    def _changed(self, change: PhoneChange) -> None:
        log.info("phone %s %s", change.aor, change.reason)
        if change.unreachable and self._in_call is not None \
                and change.aor in set(self._in_call()):
            task = asyncio.get_running_loop().create_task(self._recheck(change.aor))
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)
        if self._on_change is not None:
            self._on_change(change)

    async def _recheck(self, extension: str) -> None:
        """A phone with a call that missed a qualify probe is asked again at once, not
        ``qualify_s`` later:
        one lost OPTIONS (UDP) or a moment's stall then costs a few seconds of "unreachable"
        (``ContactStatus`` says when it answers), and the ACD can tell a live call on it from a
        dead one (``AcdCore.phone_gone``)."""
        try:
            await self.ami.action("PJSIPQualify", Endpoint=extension)
        except AmiError as exc:
            log.warning("phone %s: could not ask it to answer again: %s", extension, exc)

    def _event(self, event: AmiEvent) -> None:
        if not isinstance(event, OtherEvent):
            return
        name = event.name.lower()
        if name == "contactstatus":
            change = self.registry.feed(event.headers)
            if change is not None:
                self._changed(change)
        elif name in SECURITY_EVENTS:
            self._security(name, event)

    def _security(self, name: str, event: OtherEvent) -> None:
        source = _source(event.headers)
        key = (source, event.name)
        if key not in self.security_counts and len(self.security_counts) >= MAX_SOURCES:
            del self.security_counts[next(iter(self.security_counts))]  # the oldest key
        self.security_counts[key] = self.security_counts.get(key, 0) + 1
        if name in _QUIET:
            return
        now = time.monotonic()
        if now - self._window_start >= LOG_WINDOW_S:
            if self._unlogged:
                log.warning("SIP security: %d more events in the minute before not logged (over"
                            " %d lines a minute; all are counted)", self._unlogged, LOG_BUDGET)
            self._window_start, self._window_lines, self._unlogged = now, 0, 0
            self._logged = {k: t for k, t in self._logged.items() if now - t < LOG_WINDOW_S}
        if now - self._logged.get(key, now - LOG_WINDOW_S) < LOG_WINDOW_S:
            return  # this source and kind was logged less than a minute ago
        if self._window_lines >= LOG_BUDGET:
            self._unlogged += 1
            return
        self._logged[key] = now
        self._window_lines += 1
        log.warning("SIP security: %s from %s (service %s, account %r; %d so far)",
                    event.name, source, event.headers.get("Service", "?"),
                    event.headers.get("AccountID", "")[:40], self.security_counts[key])
