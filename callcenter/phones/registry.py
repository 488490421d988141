"""Which agent phones can ring: registrations as Asterisk reports them, sans-IO.

Fed with ``ContactStatus`` events (a contact created, removed, reachable, unreachable) and with a
``PJSIPShowContacts`` snapshot after every (re)connect. ``feed`` returns the phones whose
"can ring" answer changed (and an unreachable phone whose last contact is removed: gone, not
only silent), so the ACD can refuse Ready to an unregistered phone and put a seat
Not Ready when its phone goes away mid-shift.

A phone can ring when its AOR has at least one contact that is not known to be unreachable
(``Unknown`` and ``NonQualified`` count: a phone answers OPTIONS only after the first qualify).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

#: ContactStatus values that remove a contact from the AOR
_GONE: Final = frozenset({"removed"})
#: values that keep the contact but say it does not answer
_DOWN: Final = frozenset({"unreachable"})


@dataclass(frozen=True, slots=True)
class PhoneChange:
    """A phone's ability to ring changed."""

    aor: str
    can_ring: bool
    #: why, for the seat log and the console: "registered", "unregistered", "unreachable"
    reason: str

    @property
    def unreachable(self) -> bool:
        """Still registered but not answering qualify probes (a lost OPTIONS, a frozen phone, a
        network gone): unlike an unregistered phone, a call on it may well go on."""
        return not self.can_ring and self.reason == "unreachable"


@dataclass
class Registry:
    """AOR -> contact URI -> last status (lower case)."""

    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    #: a ``PJSIPShowContacts`` answer has been read: "not listed" now means not registered
    loaded: bool = False

    def can_ring(self, aor: str) -> bool:
        return any(status not in _DOWN for status in self.contacts.get(aor, {}).values())

    def state(self, aor: str) -> PhoneChange:
        """Where the phone stands now, as a change from nothing: can ring (registered), listed
        but not answering probes (unreachable), or not listed (unregistered)."""
        if self.can_ring(aor):
            return PhoneChange(aor, True, "registered")
        return PhoneChange(aor, False, "unreachable" if aor in self.contacts else "unregistered")

    def snapshot(self, rows: Iterable[Mapping[str, str]]) -> list[PhoneChange]:
        """Replace everything with a ``PJSIPShowContacts`` answer (``ContactList`` events); the
        changes it makes, as ``feed`` tells them: a phone that can ring and could not
        (registered), one that could and cannot (unreachable if still listed, else
        unregistered), a silent one now gone (unregistered), and a phone listed only silent
        that was not listed (unreachable: one already silent when the engine started)."""
        before = self._reasons()
        if not self.loaded:
            # before the first snapshot, a silent contact came from an event that told nothing
            # (a phone unknown till then): the snapshot tells it
            before = {aor: why for aor, why in before.items() if why == "registered"}
        self.contacts = {}
        self.loaded = True
        for row in rows:
            # ObjectName is "<aor>;@<hash>"
            aor, uri = row.get("ObjectName", "").partition(";@")[0], row.get("Uri", "")
            if aor and uri:
                self.contacts.setdefault(aor, {})[uri] = row.get("Status", "unknown").lower()
        after = self._reasons()
        changed = [aor for aor in before.keys() | after.keys()
                   if before.get(aor, "unregistered") != after.get(aor, "unregistered")]
        return sorted((self.state(aor) for aor in changed),
                      key=lambda change: (not change.can_ring, change.aor))

    def _reasons(self) -> dict[str, str]:
        """Every listed phone's ``state`` reason (a phone not listed is unregistered)."""
        return {aor: self.state(aor).reason for aor in self.contacts}

    def feed(self, headers: Mapping[str, str]) -> PhoneChange | None:
        """One ``ContactStatus`` event; the change it makes, if any."""
        aor, uri = headers.get("AOR", ""), headers.get("URI", "")
        status = headers.get("ContactStatus", "").lower()
        if not aor or not uri or not status:
            return None
        before = self.can_ring(aor)
        contacts = self.contacts.setdefault(aor, {})
        if status in _GONE:
            had = uri in contacts
            contacts.pop(uri, None)
            if not contacts:
                del self.contacts[aor]
                if had and not before:
                    # an unreachable phone's registration ends too (a browser that lost its
                    # network, then its WebSocket): no longer in doubt but gone
                    return PhoneChange(aor, False, "unregistered")
        else:
            contacts[uri] = status
        if self.can_ring(aor) == before:
            return None
        # a phone with another contact left that does not answer is unreachable, not gone
        return self.state(aor)
