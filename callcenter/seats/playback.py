"""Recordings in the console, for supervisors: search, and playback through a one-time ticket.

The browser cannot put the console's login on an HTTP request, and a recording must not go
through the websocket's message limits, so ``recording_play`` answers a ticket: an unguessable
token for ``PLAYBACK_PATH?t=<token>&p=<part>``, issued to the supervisor who asked. The page
fetches the recording's parts in order, each once (``PART_CHUNKS`` sealed chunks, 4 MiB of
audio: each answer is small enough for the console server's HTTP budget, and the engine never
holds a whole recording in memory); the ticket lapses ``TICKET_TTL_S`` after its last use, at
its last part, or when its supervisor's last console closes. Fetching part 0 is what logs the
playback (``recording_access``: who, ``via`` "console", from which address); the answers are
never cached. ``Tickets`` is the table (pure); ``ConsolePlayback`` carries it out on a
``RecordingService``, as the administration API does.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from callcenter.errors import ConsoleError, RecordingError, RecordingNotFound
from callcenter.recordings.service import RecordingService
from callcenter.recordings.store import Recording
from callcenter.recordings.vault import CHUNK
from callcenter.seats import protocol as p
from callcenter.seats.console_api import PLAYBACK_PATH, AgentIdentity
from callcenter.seats.masking import mask

__all__ = ["PART_CHUNKS", "TICKET_TTL_S", "ConsolePlayback", "Ticket", "Tickets", "parts_of"]

log = logging.getLogger(__name__)

#: a ticket's life after it was issued or last used
TICKET_TTL_S = 60.0
#: tickets a supervisor may hold at once (the oldest of theirs lapses first)
TICKETS_PER_AGENT = 4
#: sealed chunks per part: 4 MiB of audio (4 min of 8 kHz 16-bit sound)
PART_CHUNKS = 64


def parts_of(size: int) -> int:
    """How many parts a recording of ``size`` plain bytes is fetched in (at least one)."""
    return max(1, -(-size // (PART_CHUNKS * CHUNK)))


@dataclass(frozen=True)
class Ticket:
    """What a ticket opens: one recording, for one supervisor, its parts in order."""

    recording_id: int
    agent_id: str
    parts: int
    next_part: int
    expires: float


class Tickets:
    """One-time playback tickets (pure: the caller gives the time)."""

    def __init__(self, ttl_s: float = TICKET_TTL_S, per_agent: int = TICKETS_PER_AGENT) -> None:
        self.ttl_s = ttl_s
        self.per_agent = per_agent
        self._open: dict[str, Ticket] = {}

    def issue(self, recording_id: int, agent_id: str, parts: int, now: float) -> str:
        self._forget_expired(now)
        theirs = [t for t, ticket in self._open.items() if ticket.agent_id == agent_id]
        for token in theirs[:max(0, len(theirs) - self.per_agent + 1)]:
            del self._open[token]
        token = secrets.token_urlsafe(24)
        self._open[token] = Ticket(recording_id, agent_id, parts, 0, now + self.ttl_s)
        return token

    def use(self, token: str, part: int, now: float) -> Ticket | None:
        """The ticket for its next part (returned as it was before this use), or None: unknown,
        expired, or not the part that comes next (each part opens once, in order)."""
        self._forget_expired(now)
        ticket = self._open.get(token)
        if ticket is None or part != ticket.next_part:
            return None
        if part + 1 >= ticket.parts:
            del self._open[token]
        else:
            self._open[token] = replace(ticket, next_part=part + 1, expires=now + self.ttl_s)
        return ticket

    def forget_agent(self, agent_id: str) -> None:
        """The supervisor has no console open any more: their tickets lapse."""
        for token in [t for t, ticket in self._open.items() if ticket.agent_id == agent_id]:
            del self._open[token]

    def _forget_expired(self, now: float) -> None:
        for token in [t for t, ticket in self._open.items() if ticket.expires <= now]:
            del self._open[token]

    def __len__(self) -> int:
        return len(self._open)


def console_view(rec: Recording) -> dict[str, Any]:
    """A recording as the console shows it: the account masked (the page never gets a whole
    account), no digest, path or hold reason (a legal hold's reason is the API's)."""
    view = rec.view()
    for private in ("sha256", "hold_reason"):
        view.pop(private, None)
    view["account_masked"] = mask(view.pop("account"))
    return view


class ConsolePlayback:
    """The supervisors' ``recordings`` and ``recording_play`` requests, and the ticketed
    fetches of the audio."""

    def __init__(self, service: RecordingService,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.tickets = Tickets()
        self._clock = clock

    async def handle(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        match request:
            case p.Recordings():
                found = await self.service.search(
                    {"account": request.account, "agent_id": request.agent_id,
                     "reference": request.reference,
                     "day_from": request.day_from_date(), "day_to": request.day_to_date()},
                    request.limit)
                return {"recordings": [console_view(r) for r in found], "limit": request.limit,
                        "timezone": self.service.settings.site.timezone}
            case p.RecordingPlay(recording_id=recording_id):
                try:
                    rec = await self.service.playable(recording_id)
                except RecordingNotFound as exc:
                    raise ConsoleError("not_found", str(exc)) from None
                except RecordingError as exc:  # not sealed yet, deleted, no keeper here
                    raise ConsoleError("invalid_state", str(exc)) from None
                parts = parts_of(rec.bytes or 0)
                token = self.tickets.issue(rec.id, agent.agent_id, parts, self._clock())
                return {"recording": console_view(rec), "url": f"{PLAYBACK_PATH}?t={token}",
                        "parts": parts, "expires_s": self.tickets.ttl_s,
                        "access": [_shown(a) for a in await self.service.access(rec.id)]}
            case _:
                raise ConsoleError("unknown_command", f"{request.type} is not handled here")

    async def audio(self, token: str, part: int, address: str) -> bytes | None:
        """A part of the audio a ticket opens (part 0 logs the playback first, from
        ``address``); None if the ticket does not open this part now, or the recording cannot
        be read (logged: the page says it could not fetch it)."""
        ticket = self.tickets.use(token, part, self._clock())
        if ticket is None:
            return None
        first = part * PART_CHUNKS
        try:
            if part == 0:
                chunks = await self.service.play(ticket.recording_id, actor=ticket.agent_id,
                                                 via="console", detail=address, first=first,
                                                 count=PART_CHUNKS)
            else:
                chunks = await self.service.read(ticket.recording_id, first, PART_CHUNKS)
            return await asyncio.to_thread(_joined, chunks)
        except RecordingError as exc:
            log.warning("console playback of recording %d for %s failed: %s",
                        ticket.recording_id, ticket.agent_id, exc)
            return None


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """An access log entry as the console shows it: not a hold's reason."""
    return {k: v for k, v in entry.items() if k != "detail"}


def _joined(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)
