"""What the ACD core (``acd/core.py``) asks of the world, as values.

The core decides; it never awaits, opens a socket or arms a timer. Each decision that needs the
world is one of these effects, handed to the ``emit`` callable the core was built with, in the
order the decisions were made. The asyncio edge (``acd/service.py``) carries them out: rows go to
the ordered database writer, notices to the listeners, the Asterisk work to AMI tasks, timers to
the event loop, and what Asterisk answers comes back to the core as inputs (``ring_answered``,
``ring_failed``, ``on_ami_event``, ``on_timer``...). A unit test hands the core a list instead
and reads what it decided.

A notice (``acd/notices.py``) is an effect too: it is delivered where it is emitted, between the
rows around it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from callcenter.acd.notices import Notice
from callcenter.acd.records import ActiveCall, SeatRuntime, Waiter

__all__ = ["Announce", "ArmTimer", "ArmWrapUp", "CancelWrapUp", "Effect", "Emit", "Hangup",
           "Requeue", "Ring", "Row", "effects_markdown"]


@dataclass(frozen=True, slots=True)
class Row:
    """A statement for the ACD's tables (written in order, after the decision is made)."""

    sql: str
    params: Sequence[object] = ()


@dataclass(frozen=True, slots=True)
class Ring:
    """Originate the seat's phone into ``[acd-agent]`` for ``call``; the outcome comes back as
    ``ring_answered`` / ``ring_failed`` / ``ring_link_lost``. ``variables`` empty: the call-back
    number may not be dialled (``callback_refused``)."""

    seat: SeatRuntime
    call: ActiveCall
    endpoint: str
    exten: str
    variables: Sequence[str]
    ring_s: float
    caller_id: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Play ``files`` to a waiting caller from ``[queue-hold]``'s ``exten`` (unless an agent is
    being rung meanwhile: the redirect would race the bridge); ``Announced`` once played."""

    waiter: Waiter
    exten: str
    files: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """Move a caller back to ``[queue-hold]`` (with ``CC_QUEUE`` set when ``set_queue``), then
    queue them again with their place (``requeued``), then hang up ``hang_up`` if given."""

    waiter: Waiter
    queue: str
    exclude: str
    set_queue: bool = False
    hang_up: str = ""


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang up a channel (a name or a uniqueid); one already gone is not an error."""

    channel: str


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """The one queue timer: call ``on_timer`` at ``at`` (the core's clock); None: disarm."""

    at: float | None


@dataclass(frozen=True, slots=True)
class ArmWrapUp:
    """Call ``wrap_up_expired(agent_id)`` after ``after_s``, replacing that seat's timer."""

    agent_id: str
    after_s: float


@dataclass(frozen=True, slots=True)
class CancelWrapUp:
    """Disarm that seat's wrap-up timer."""

    agent_id: str


Effect = Row | Ring | Announce | Requeue | Hangup | ArmTimer | ArmWrapUp | CancelWrapUp | Notice
Emit = Callable[[Effect], None]


#: the effects the edge carries out, in the docs' order
EFFECTS: tuple[type, ...] = (Row, Ring, Announce, Requeue, Hangup, ArmTimer, ArmWrapUp,
                             CancelWrapUp)


def effects_markdown() -> str:
    """The effects as a markdown table (name, fields, what the edge does), for docs/acd.md."""
    rows = ["| effect | fields | what the edge does |", "|---|---|---|"]
    for kind in EFFECTS:
        doc = " ".join((kind.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(kind))
        rows.append(f"| `{kind.__name__}` | {fields} | {doc} |")
    rows.append("| a notice | (`acd/notices.py`) | delivered to the listeners where it is "
                "emitted, between the rows around it |")
    return "\n".join(rows) + "\n"
