"""How long a recording is kept, and which are due for deletion (pure).

A recording's kind (``config.RECORDING_KINDS``): an IVR proof is its intent's kind (order,
cancel, transfer) or ``declined`` when the caller said no (no intent); an agent's call is
``agent``. It is kept ``retention_days[kind]`` from its start; after that it is deleted unless
it is on legal hold. A hold has no end date: it is released by a person, and the retention runs
on from where it was (a recording whose time passed while on hold goes at the next round)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Kept", "due", "kind_of", "retain_until"]

DAY_S = 86400.0


def kind_of(recording_kind: str, intent_kind: str | None) -> str:
    """The retention kind of a ``recordings`` row (``kind``: agent | proof) and its intent."""
    if recording_kind == "proof":
        return intent_kind if intent_kind in ("order", "cancel", "transfer") else "declined"
    return "agent"


def retain_until(started_at: float, kind: str, days: Mapping[str, int]) -> float:
    return started_at + days[kind] * DAY_S


@dataclass(frozen=True)
class Kept:
    """What retention needs of one recording."""

    recording_id: int
    retain_until: float
    held: bool


def due(recordings: Iterable[Kept], now: float) -> list[int]:
    """The recordings to delete now: past their retention and not on hold."""
    return [r.recording_id for r in recordings if r.retain_until <= now and not r.held]
