"""An agent seat's state machine, sans-IO: plain code driven by inputs and a clock value.

Allowed moves live in one table, ``TRANSITIONS``; a supervisor's ``FORCE`` lives in a second
small table, ``FORCE_TARGETS``. Anything in neither raises ``SeatStateError`` and leaves the seat
untouched. ``transitions_markdown()`` draws both tables for ``docs/seats.md``.

Decisions worth knowing:

- Agents log in NOT_READY (reason ``"login"``): they say when they are ready.
- NO_ANSWER and REJECT put the seat NOT_READY (``"no answer"``/``"rejected"``) so the same call is
  not offered straight back. The caller keeps their place in the queue: re-queueing is the ACD's
  job, not the seat's.
- CALL_ENDED while RINGING means the caller abandoned before the agent answered. The agent did no
  work, so the seat goes straight back to READY (no wrap-up), and its idle time restarts from then.
- LOGOUT is refused while RINGING, ON_CALL or ON_HOLD; so is a FORCE of any kind while ON_CALL or
  ON_HOLD (end or transfer the call first). A FORCE while RINGING withdraws the offer: the ACD
  re-offers the call elsewhere.
- A reason is only meaningful for NOT_READY, and must come from the seat's allowed set.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from callcenter.errors import SeatStateError

__all__ = [
    "AGENT_INPUTS",
    "DEFAULT_REASONS",
    "FORCE_TARGETS",
    "IMPLIED_REASONS",
    "PHONE_GONE",
    "SYSTEM_REASONS",
    "TRANSITIONS",
    "Seat",
    "SeatChange",
    "SeatInput",
    "SeatState",
    "transitions_markdown",
]


class SeatState(enum.Enum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    ON_HOLD = "on_hold"
    WRAP_UP = "wrap_up"


class SeatInput(enum.Enum):
    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"
    OFFER = "offer"            # a call rings the seat
    ANSWER = "answer"
    NO_ANSWER = "no_answer"    # ring timeout
    REJECT = "reject"
    HOLD = "hold"
    RESUME = "resume"
    CALL_ENDED = "call_ended"
    WRAP_DONE = "wrap_done"    # wrap-up finished, by the agent or its timer
    FORCE = "force"            # supervisor: force a state (see FORCE_TARGETS)


S = SeatState
I = SeatInput  # noqa: E741

#: The single source of truth for every move except FORCE.
TRANSITIONS: dict[tuple[SeatState, SeatInput], SeatState] = {
    (S.LOGGED_OUT, I.LOGIN): S.NOT_READY,
    (S.NOT_READY, I.READY): S.READY,
    (S.READY, I.NOT_READY): S.NOT_READY,
    (S.WRAP_UP, I.READY): S.READY,
    (S.WRAP_UP, I.NOT_READY): S.NOT_READY,
    (S.READY, I.OFFER): S.RINGING,
    (S.RINGING, I.ANSWER): S.ON_CALL,
    (S.RINGING, I.NO_ANSWER): S.NOT_READY,
    (S.RINGING, I.REJECT): S.NOT_READY,
    (S.RINGING, I.CALL_ENDED): S.READY,  # caller abandoned while ringing: no wrap-up
    (S.ON_CALL, I.HOLD): S.ON_HOLD,
    (S.ON_HOLD, I.RESUME): S.ON_CALL,
    (S.ON_CALL, I.CALL_ENDED): S.WRAP_UP,
    (S.ON_HOLD, I.CALL_ENDED): S.WRAP_UP,
    (S.WRAP_UP, I.WRAP_DONE): S.READY,
    (S.READY, I.LOGOUT): S.LOGGED_OUT,
    (S.NOT_READY, I.LOGOUT): S.LOGGED_OUT,
    (S.WRAP_UP, I.LOGOUT): S.LOGGED_OUT,
}

#: What a supervisor may force, by current state. States absent here (ON_CALL, ON_HOLD) refuse.
FORCE_TARGETS: dict[SeatState, frozenset[SeatState]] = {
    state: frozenset({S.READY, S.NOT_READY, S.LOGGED_OUT})
    for state in SeatState
    if state not in (S.ON_CALL, S.ON_HOLD)
}

#: The reason a move into NOT_READY gets when the caller of ``apply`` gives none.
IMPLIED_REASONS: dict[SeatInput, str] = {
    I.LOGIN: "login",
    I.NO_ANSWER: "no answer",
    I.REJECT: "rejected",
    I.FORCE: "forced",
}

DEFAULT_REASONS: tuple[str, ...] = (
    "break", "meal", "training", "meeting", "after-call",
    "no answer", "login", "rejected", "forced",
)

#: Reasons the engine itself gives (not an agent's choice): ``"console gone"`` when a seat's
#: last console session went away and none came back within the grace (seats/presence.py);
#: ``"phone unregistered"`` when the seat's SIP phone lost its registration (phones/registry.py).
CONSOLE_GONE = "console gone"
PHONE_GONE = "phone unregistered"
SYSTEM_REASONS: tuple[str, ...] = (CONSOLE_GONE, PHONE_GONE)

#: Inputs the agent makes; ``by`` defaults to the agent id for these and to "system" otherwise.
AGENT_INPUTS: frozenset[SeatInput] = frozenset(
    {I.LOGIN, I.LOGOUT, I.READY, I.NOT_READY, I.ANSWER, I.REJECT, I.HOLD, I.RESUME},
)


@dataclass(frozen=True, slots=True)
class SeatChange:
    """One move of one seat, as recorded in ``Seat.history``."""

    at: float
    from_state: SeatState
    to_state: SeatState
    input: SeatInput
    reason: str
    by: str


class Seat:
    """One agent's seat. Starts LOGGED_OUT; every accepted move is appended to ``history``.

    ``allowed_reasons`` is the set of NOT_READY reasons an agent may pick; the reasons the machine
    itself implies (``IMPLIED_REASONS``) and the engine's own (``SYSTEM_REASONS``) are always
    allowed on top of it.
    """

    def __init__(
        self,
        agent_id: str,
        *,
        now: float = 0.0,
        allowed_reasons: Iterable[str] = DEFAULT_REASONS,
    ) -> None:
        self.agent_id = agent_id
        self.state = SeatState.LOGGED_OUT
        self.reason = ""
        self.since = now
        self.history: list[SeatChange] = []
        self.allowed_reasons = (frozenset(allowed_reasons) | frozenset(IMPLIED_REASONS.values())
                                | frozenset(SYSTEM_REASONS))

    def __repr__(self) -> str:
        return f"Seat({self.agent_id!r}, {self.state.name}, reason={self.reason!r})"

    def _refuse(self, what: str, why: str = "") -> SeatStateError:
        tail = f" ({why})" if why else ""
        return SeatStateError(f"seat {self.agent_id}: cannot {what} while {self.state.name}{tail}")

    def _next_state(self, what: SeatInput, target: SeatState | None) -> SeatState:
        if what is SeatInput.FORCE:
            if target is None:
                raise self._refuse("FORCE", "a target state is required")
            allowed = FORCE_TARGETS.get(self.state)
            if allowed is None:
                raise self._refuse(f"FORCE {target.name}", "end or transfer the call first")
            if target not in allowed:
                names = ", ".join(s.name for s in SeatState if s in allowed)
                raise self._refuse(f"FORCE {target.name}", f"a supervisor may force {names}")
            return target
        if target is not None:
            raise self._refuse(what.name, "a target state is only for FORCE")
        new = TRANSITIONS.get((self.state, what))
        if new is None:
            raise self._refuse(what.name)
        return new

    def apply(
        self,
        input: SeatInput,
        now: float,
        *,
        reason: str = "",
        by: str = "",
        target: SeatState | None = None,
    ) -> SeatChange:
        """Make one move, or raise ``SeatStateError`` and change nothing."""
        new = self._next_state(input, target)
        if new is SeatState.NOT_READY:
            reason = reason or IMPLIED_REASONS.get(input, "")
            if not reason:
                raise self._refuse(f"{input.name} -> NOT_READY", "a reason is required")
            if reason not in self.allowed_reasons:
                allowed = ", ".join(sorted(self.allowed_reasons))
                raise self._refuse(
                    f"{input.name} -> NOT_READY", f"unknown reason {reason!r}; allowed: {allowed}",
                )
        elif reason:
            raise self._refuse(f"{input.name} -> {new.name}", "a reason is only for NOT_READY")
        if not by:
            by = self.agent_id if input in AGENT_INPUTS else "system"
        change = SeatChange(now, self.state, new, input, reason, by)
        self.state = new
        self.reason = reason
        self.since = now
        self.history.append(change)
        return change

    def wrap_up_expired(self, now: float, wrap_up_s: float) -> bool:
        """True when the seat has been in WRAP_UP for at least ``wrap_up_s`` seconds."""
        return self.state is SeatState.WRAP_UP and now - self.since >= wrap_up_s

    def idle_for(self, now: float) -> float:
        """Seconds spent READY so far (for longest-idle routing); 0 when not READY."""
        if self.state is not SeatState.READY:
            return 0.0
        return max(0.0, now - self.since)


def transitions_markdown() -> str:
    """The transition tables as one markdown table, for the docs."""
    order = {state: n for n, state in enumerate(SeatState)}
    inputs = {what: n for n, what in enumerate(SeatInput)}
    rows = ["| from state | input | to state |", "|---|---|---|"]
    for (src, what), dst in sorted(
        TRANSITIONS.items(), key=lambda kv: (order[kv[0][0]], inputs[kv[0][1]]),
    ):
        rows.append(f"| {src.name} | {what.name} | {dst.name} |")
    for src, targets in FORCE_TARGETS.items():
        names = ", ".join(s.name for s in SeatState if s in targets)
        rows.append(f"| {src.name} | FORCE | {names} (supervisor's choice) |")
    refused = ", ".join(s.name for s in SeatState if s not in FORCE_TARGETS)
    rows.append("")
    rows.append(
        f"Any other move raises `SeatStateError`; FORCE is refused while {refused}. "
        "A move into NOT_READY needs a reason from the seat's allowed set.",
    )
    return "\n".join(rows) + "\n"
