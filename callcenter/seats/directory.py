"""The console's transfer directory (the ``directory`` request): who and what a call may go to.

The transfer / consult / conference dialog lists, from the ACD as it is now:

- the other agents with their seat state, those a call can go to now first (``available``: a
  ready seat with no call and a phone, the same test ``CallControl.transfer`` makes), then
  busy ones (ringing, on a call, in wrap-up), then not ready, then logged out; by agent id
  within each group;
- the queues, with how many callers wait in each (call-back places included);
- the saved numbers of the setting ``console.directory_numbers`` (``[{label, number}]``).

Listing is not permission: every target still goes through the usual checks when it is used
(a number through the dial rules, an agent through the seat's state at that moment).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callcenter.acd.records import SeatRuntime
from callcenter.acd.seat import SeatState
from callcenter.acd.service import Acd
from callcenter.config import DirectoryNumber

#: the order agents are listed in, by seat state (available ones come before all of these)
_STATE_ORDER: dict[SeatState, int] = {
    SeatState.READY: 1,
    SeatState.RINGING: 2, SeatState.ON_CALL: 2, SeatState.ON_HOLD: 2, SeatState.WRAP_UP: 2,
    SeatState.NOT_READY: 3,
    SeatState.LOGGED_OUT: 4,
}


def available(rt: SeatRuntime) -> bool:
    """Whether a call can be handed to this seat now (``CallControl.transfer``'s test)."""
    return rt.seat.state is SeatState.READY and rt.call is None and bool(rt.agent.endpoint)


def directory_reply(acd: Acd, me: str, numbers: Sequence[DirectoryNumber]) -> dict[str, Any]:
    """The ``directory`` reply for agent ``me``: {agents: [{agent_id, name, state, reason,
    available}], queues: [{name, waiting}], numbers: [{label, number}]}."""
    others = [rt for agent_id, rt in acd.seats.items() if agent_id != me]
    others.sort(key=lambda rt: (0 if available(rt) else _STATE_ORDER.get(rt.seat.state, 5),
                                rt.agent.agent_id))
    agents = [{"agent_id": rt.agent.agent_id, "name": rt.agent.name,
               "state": rt.seat.state.value,
               "reason": rt.seat.reason if rt.seat.state is SeatState.NOT_READY else "",
               "available": available(rt)} for rt in others]
    queues = [{"name": name, "waiting": len(acd.waiting.get(name, {}))} for name in acd.queues]
    return {"agents": agents, "queues": queues,
            "numbers": [{"label": n.label, "number": n.number} for n in numbers]}
