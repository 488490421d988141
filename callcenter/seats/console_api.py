"""What the console server needs from the rest of the engine, and nothing more.

The websocket server (``console_server.py``) owns connections, login, limits and the protocol;
a ``ConsoleBackend`` (the seat service in the engine, a fake in unit tests) owns what commands do.
The backend pushes events through the ``ConsolePush`` it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from callcenter.seats.protocol import Event, Request, Role

#: where the page fetches a recording with a one-time ticket (``seats/playback.py``)
PLAYBACK_PATH = "/recording"


@dataclass(frozen=True)
class AgentIdentity:
    agent_id: str
    name: str
    role: Role


class ConsolePush(Protocol):
    def to_agent(self, agent_id: str, event: Event) -> None:
        """Send to every live session of this agent (dropped if none)."""

    def to_role(self, role: Role, event: Event) -> None:
        """Send to every session whose role is ``role`` or above (supervisor -> admin too)."""

    def state_to_role(self, role: Role, event: Event) -> None:
        """As ``to_role``, for a state that replaces the one of the same name pushed before it
        (the wallboard, the queues' figures). It may go through the fan-out relay
        (``callcenter/fanout/``), which gives the latest to a console that connects later; a
        one-off event (a notice, a contact) must go through ``to_role``."""

    def end_sessions(self, agent_id: str, reason: str) -> None:
        """Close the agent's sessions with a ``session_ended`` event (forced log-out)."""


class ConsoleBackend(Protocol):
    async def authenticate(self, agent_id: str, password: str) -> AgentIdentity | None:
        """The agent if the password is right, else None (constant-time; never logs it)."""

    async def snapshot(self, agent: AgentIdentity) -> dict[str, Any]:
        """The login reply's data: {agent, seat, call, queues} as in docs/console-protocol.md."""

    async def command(self, agent: AgentIdentity, request: Request) -> dict[str, Any]:
        """Carry out an authorised request; the reply's data. Raises ``ConsoleError``."""

    async def recording_audio(self, ticket: str, part: int, address: str) -> bytes | None:
        """Part ``part`` of the audio a ``recording_play`` ticket opens (each part once, in
        order; part 0 logs the playback, from ``address``); None if the ticket does not open
        it now."""

    async def session_closed(self, agent: AgentIdentity, sessions_left: int) -> None:
        """A session of this agent ended, ``sessions_left`` of theirs still open (the seat
        stays as it is; past a grace with none open, the engine's presence rule applies)."""
