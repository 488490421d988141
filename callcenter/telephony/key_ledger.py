"""Keys a caller typed while no AGI command ran: the ones ``res_agi`` reads and drops.

Between two AGI commands ``res_agi`` keeps reading the channel (to notice a hang-up) and throws
away what it reads, DTMF included: a key typed after one answer and before the engine's next
command is lost, and an engine slow to answer (under load) widens that gap. Native dialplan never
loses them: nothing reads the channel between two applications, the keys wait in its queue.

Asterisk publishes, per channel and in order, ``AGIExecStart`` and ``AGIExecEnd`` around every
command and ``DTMFEnd`` for every key it reads. So the keys that arrive after the end of command
*k* and before the start of command *k + 1* are exactly the keys the gap dropped, by position
alone: no clocks. ``KeyLedger`` keeps them per channel (sans-IO: fed events, asked questions);
``key_tap.py`` feeds it from a dedicated AMI user over TLS, ``ivr/runner.py`` gives them back to
the flow as type-ahead, in the order they were typed.

A gap can be *sealed* (``seal``): its keys, even ones still on their way, are dropped on purpose,
as after a password (keys typed past a password never act on the next menu).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: keys kept per gap: a caller (or a fuzzer) leaning on a key cannot grow the ledger
MAX_KEYS_PER_GAP: Final = 32
KEYS: Final = frozenset("0123456789*#ABCD")


@dataclass(slots=True)
class _Channel:
    started: int = 0   # AGIExecStart seen
    ended: int = 0     # AGIExecEnd seen
    #: gap k (after command k ended, before command k + 1 started) -> its keys
    gaps: dict[int, str] = field(default_factory=dict)
    taken: dict[int, int] = field(default_factory=dict)   # gap -> keys already handed out
    sealed: set[int] = field(default_factory=set)


class KeyLedger:
    """Per channel (by uniqueid): the keys of each gap between two AGI commands."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self.keys_recovered = 0   # keys handed back that res_agi had dropped (status reads it)

    # -- the AGI session's side ----------------------------------------------------------------

    def open(self, uniqueid: str) -> None:
        """An AGI session starts on this channel: count its commands from zero."""
        self._channels[uniqueid] = _Channel()

    def close(self, uniqueid: str) -> None:
        self._channels.pop(uniqueid, None)

    def is_open(self, uniqueid: str) -> bool:
        return uniqueid in self._channels

    def started(self, uniqueid: str) -> int:
        """How many commands Asterisk has reported started (0 for a channel not open)."""
        ch = self._channels.get(uniqueid)
        return ch.started if ch else 0

    def take(self, uniqueid: str, before: int) -> str:
        """The keys of every gap before command number ``before`` (1-based) not handed out yet,
        oldest first; each key is handed out once."""
        ch = self._channels.get(uniqueid)
        if ch is None:
            return ""
        out = []
        for gap in sorted(g for g in ch.gaps if g < before):
            keys = ch.gaps[gap]
            done = ch.taken.get(gap, 0)
            if done < len(keys):
                out.append(keys[done:])
                ch.taken[gap] = len(keys)
        got = "".join(out)
        self.keys_recovered += len(got)
        return got

    def seal(self, uniqueid: str, gap: int) -> None:
        """Drop gap ``gap``'s keys, those heard already and those still to come."""
        ch = self._channels.get(uniqueid)
        if ch is None:
            return
        ch.sealed.add(gap)
        ch.gaps.pop(gap, None)
        ch.taken.pop(gap, None)

    # -- Asterisk's side (AMI events, in the order Asterisk published them) -------------------

    def command_started(self, uniqueid: str) -> None:
        ch = self._channels.get(uniqueid)
        if ch is not None:
            ch.started += 1

    def command_ended(self, uniqueid: str) -> None:
        ch = self._channels.get(uniqueid)
        if ch is not None:
            ch.ended = min(ch.ended + 1, ch.started)

    def key(self, uniqueid: str, digit: str) -> None:
        """Asterisk read ``digit`` on the channel: kept only when no command was running."""
        ch = self._channels.get(uniqueid)
        if ch is None or digit not in KEYS or ch.started != ch.ended:
            return  # a command read it: it got it (or ignored it on purpose)
        gap = ch.ended
        if gap in ch.sealed:
            return
        keys = ch.gaps.get(gap, "")
        if len(keys) < MAX_KEYS_PER_GAP:
            ch.gaps[gap] = keys + digit
