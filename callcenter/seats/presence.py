"""Console presence, sans-IO: which agents have no console open, and what their seat gets.

A seat whose agent closed the console (tab closed, network lost, the engine restarted) must not
stay Ready: the ACD would keep ringing a phone nobody watches the screen of. The rule:

- When an agent's last console session closes, a grace starts (``console.presence_grace_s``); a
  session of theirs that logs in meanwhile cancels it (a page reload, a reconnect).
- When the grace runs out, a READY or WRAP_UP seat goes NOT_READY, reason ``"console gone"``,
  by ``system``. A seat on a call (RINGING, ON_CALL, ON_HOLD) keeps it: the call is never cut;
  when it ends, the seat goes NOT_READY rather than READY (or WRAP_UP). Other seats (already
  NOT_READY, LOGGED_OUT) are left alone.
- Once the seat is not ready (by this rule or otherwise), or a person (the agent, a supervisor)
  explicitly makes it READY, the rule is done until the next time the console goes.
- A seat whose agent has had no console for longer (``console.absent_logout_s``) is logged out,
  by ``system``, whatever its state but a call: a seat left NOT_READY ("login", a break) or in
  WRAP_UP would otherwise stay logged in for hours, in the day's figures and on the wallboard.
  A seat on a call is asked again later (``LATER``): the call is never cut.
- After the engine was down, the consoles went when it stopped (its last heartbeat), not when it
  started again: a seat left logged in over a night is logged out once its agent has had the
  grace to log in again (``logout_in``), not an hour into the next morning.

``Presence`` keeps that bookkeeping and answers what to do; the backend (``backend.py``) runs the
grace timers and moves the seat through the ACD's public ``set_state``.
"""

from __future__ import annotations

import enum

from callcenter.acd.seat import CONSOLE_GONE, SeatState

__all__ = ["CONSOLE_GONE", "Presence", "PresenceAction"]

#: the seat's not-ready reason (one of ``state.SYSTEM_REASONS``)

_IDLE = frozenset({SeatState.READY, SeatState.WRAP_UP})
_BUSY = frozenset({SeatState.RINGING, SeatState.ON_CALL, SeatState.ON_HOLD})


class PresenceAction(enum.Enum):
    NONE = "none"
    #: set the seat NOT_READY ("console gone") now
    NOT_READY = "not_ready"
    #: the seat is on a call: NOT_READY when it ends
    AFTER_CALL = "after_call"
    #: the call just ended into WRAP_UP: NOT_READY once the ACD is done with the call's end
    #: (ask ``seat_moved`` again with ``settled``)
    SOON = "soon"
    #: no console for ``absent_logout_s``: log the seat out now
    LOG_OUT = "log_out"
    #: no console for ``absent_logout_s``, but the seat is on a call: ask ``absent_too_long``
    #: again later
    LATER = "later"


class Presence:
    def __init__(self) -> None:
        #: agent id -> when their last console session closed (while none is open)
        self._gone: dict[str, float] = {}
        #: agents whose grace ran out during a call: not ready when it ends
        self._after_call: set[str] = set()

    def absent(self, agent_id: str) -> bool:
        """True while the agent has no console session (since the last one closed)."""
        return agent_id in self._gone

    def gone_since(self, agent_id: str) -> float | None:
        return self._gone.get(agent_id)

    def opened(self, agent_id: str) -> None:
        """A session of the agent logged in: whatever was pending for them is off."""
        self._gone.pop(agent_id, None)
        self._after_call.discard(agent_id)

    def closed(self, agent_id: str, sessions_left: int, now: float) -> bool:
        """A session of the agent closed; True if it was the last one (start the grace)."""
        if sessions_left > 0:
            return False
        self._gone[agent_id] = now
        return True

    def logout_in(self, agent_id: str, logout_s: float, grace_s: float, now: float) -> float:
        """Seconds from ``now`` until the agent has been gone ``logout_s``, and never less than
        ``grace_s`` (a console that went with an engine that was down gets that long to come
        back)."""
        gone = self._gone.get(agent_id, now)
        return max(grace_s, logout_s - max(0.0, now - gone))

    def expired(self, agent_id: str, state: SeatState) -> PresenceAction:
        """The grace ran out while the seat is in ``state``."""
        if agent_id not in self._gone:
            return PresenceAction.NONE  # a session came back
        if state in _IDLE:
            return PresenceAction.NOT_READY
        if state in _BUSY:
            self._after_call.add(agent_id)
            return PresenceAction.AFTER_CALL
        return PresenceAction.NONE

    def absent_too_long(self, agent_id: str, state: SeatState) -> PresenceAction:
        """The agent's console has been gone for ``absent_logout_s`` while the seat is in
        ``state``."""
        if agent_id not in self._gone or state is SeatState.LOGGED_OUT:
            return PresenceAction.NONE  # a session came back, or nothing to log out
        if state in _BUSY:
            return PresenceAction.LATER
        return PresenceAction.LOG_OUT

    def seat_moved(self, agent_id: str, state: SeatState, *, chosen: bool = False,
                   settled: bool = False) -> PresenceAction:
        """The seat moved to ``state``: ``chosen`` if a person chose it (the agent, a
        supervisor) rather than the engine (a call ending); ``settled`` when asked again after
        ``SOON``."""
        if agent_id not in self._after_call or state in _BUSY:
            return PresenceAction.NONE
        if state is SeatState.WRAP_UP and not chosen:
            return PresenceAction.NOT_READY if settled else PresenceAction.SOON
        self._after_call.discard(agent_id)
        if state is SeatState.READY and not chosen:
            return PresenceAction.NOT_READY
        return PresenceAction.NONE
