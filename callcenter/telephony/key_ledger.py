"""Keys a caller typed while no AGI command ran: the ones ``res_agi`` reads and drops.

Between two AGI commands ``res_agi`` keeps reading the channel (to notice a hang-up) and throws
away what it reads, DTMF included: a key typed after one answer and before the engine's next
command is lost, and an engine slow to answer (under load) widens that gap. Native dialplan never
loses them: nothing reads the channel between two applications, the keys wait in its queue.

Asterisk publishes, per channel and in order, ``AGIExecStart`` and ``AGIExecEnd`` around every
command and ``DTMFEnd`` for every key it reads. So the keys that arrive after the end of command
*k* and before the start of command *k + 1* fell in the gap, by position alone. ``KeyLedger``
keeps them per channel (sans-IO: fed events, asked questions); ``key_tap.py`` feeds it from a
dedicated AMI user over TLS, ``ivr/runner.py`` gives them back to the flow in the order typed.

A key in a gap is not always a lost key. Asterisk publishes ``DTMFEnd`` when it *reads* the end
of a key, but it may hold the key back and deliver it later (``main/channel.c``): a key too short
(under ``dtmfminduration``, 80 ms) or with no start (SIP INFO) is played out to its minimum
length first, and a key too close to the previous one (45 ms) waits. If the next command starts
within that hold, the command gets the key. So:

- a key is handed out ahead of the next command only once its hold is surely over (``ready``);
- a key whose hold reaches past the start of the command after its gap is *uncertain*
  (``settle``): when that command's answer begins with the same keys, they are the same presses
  and are dropped; otherwise the command did not get them and they are kept;
- an identical ``DTMFEnd`` within ``REPUBLISHED_S`` of the last one is Asterisk publishing a held
  key again when it takes it from its queue, not a second press;
- once a command's answer has been settled, later reports for the gaps before it are dropped
  (they would land in a later answer, out of order); a gap can be sealed (after a password: keys
  typed past it never count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: keys kept per gap: a caller (or a fuzzer) leaning on a key cannot grow the ledger
MAX_KEYS_PER_GAP: Final = 32
#: the keys the IVR takes (the escape digits of its prompts); A-D are ignored as they are there
KEYS: Final = frozenset("0123456789*#")
#: Asterisk's defaults (``asterisk.conf`` dtmfminduration; ``AST_MIN_DTMF_GAP``), and a margin
DTMF_MIN_DURATION_S: Final = 0.080
DTMF_MIN_GAP_S: Final = 0.045
HOLD_MARGIN_S: Final = 0.025
#: two reports of one key this close are one press published twice (presses are >= 80 ms apart)
REPUBLISHED_S: Final = 0.060


def hold_s(duration_ms: int) -> float:
    """How long after its ``DTMFEnd`` Asterisk may still deliver a key to an application."""
    return max(duration_ms / 1000, DTMF_MIN_DURATION_S) + DTMF_MIN_GAP_S + HOLD_MARGIN_S


@dataclass(frozen=True, slots=True)
class _Key:
    digit: str
    at: float           # Asterisk's timestamp of the DTMFEnd (s since the epoch)
    until: float        # at + its hold


@dataclass(slots=True)
class _Channel:
    started: int = 0    # AGIExecStart seen
    ended: int = 0      # AGIExecEnd seen
    started_at: dict[int, float] = field(default_factory=dict)   # command -> its start
    #: gap k (after command k ended, before command k + 1 started) -> its keys
    gaps: dict[int, list[_Key]] = field(default_factory=dict)
    taken: dict[int, int] = field(default_factory=dict)          # gap -> keys handed out
    floor: int = 0      # gaps below it are settled: later reports for them are dropped
    sealed: set[int] = field(default_factory=set)
    last: _Key | None = None


class KeyLedger:
    """Per channel (by uniqueid): the keys of each gap between two AGI commands."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self.keys_recovered = 0   # keys handed back that res_agi had dropped
        self.keys_deduplicated = 0  # uncertain keys the next command turned out to have

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

    def ready(self, uniqueid: str, before: int, now: float) -> str:
        """Keys of the gaps before command ``before`` (1-based) whose hold is over at ``now``,
        oldest first, each handed out once; a key still held waits, and every key after it."""
        ch = self._channels.get(uniqueid)
        if ch is None:
            return ""
        out: list[str] = []
        for gap in sorted(g for g in ch.gaps if ch.floor <= g < before):
            keys, done = ch.gaps[gap], ch.taken.get(gap, 0)
            for key in keys[done:]:
                if key.until > now:
                    ch.taken[gap] = done
                    self.keys_recovered += len(out)
                    return "".join(out)
                out.append(key.digit)
                done += 1
            ch.taken[gap] = done
        self.keys_recovered += len(out)
        return "".join(out)

    def settle(self, uniqueid: str, command: int, answer: str) -> str:
        """The keys of the gaps before command ``command`` not handed out yet, now that its
        ``answer`` (the keys it collected) is known; the gaps are closed afterwards.

        Keys of the gap right before it whose hold reached past its start may be the same
        presses as the start of ``answer``: the longest such run is dropped."""
        ch = self._channels.get(uniqueid)
        if ch is None:
            return ""
        start = ch.started_at.get(command)
        out: list[_Key] = []
        uncertain = 0
        for gap in sorted(g for g in ch.gaps if ch.floor <= g < command):
            keys = ch.gaps[gap][ch.taken.get(gap, 0):]
            out += keys
            if gap == command - 1:
                uncertain = sum(1 for k in keys if start is None or k.until > start)
        ch.floor = max(ch.floor, command)
        for gap in [g for g in ch.gaps if g < command]:
            del ch.gaps[gap]
            ch.taken.pop(gap, None)
        digits = "".join(k.digit for k in out)
        tail = digits[len(digits) - uncertain:]
        same = next((n for n in range(len(tail), 0, -1) if answer.startswith(tail[-n:])), 0)
        if same:
            digits = digits[:len(digits) - same]
            self.keys_deduplicated += same
        self.keys_recovered += len(digits)
        return digits

    def seal(self, uniqueid: str, gap: int) -> None:
        """Drop gap ``gap``'s keys, those heard already and those still to come."""
        ch = self._channels.get(uniqueid)
        if ch is None:
            return
        ch.sealed.add(gap)
        ch.gaps.pop(gap, None)
        ch.taken.pop(gap, None)

    # -- Asterisk's side (AMI events, in the order Asterisk published them) -------------------

    def command_started(self, uniqueid: str, at: float) -> None:
        ch = self._channels.get(uniqueid)
        if ch is not None:
            ch.started += 1
            ch.started_at[ch.started] = at
            ch.started_at.pop(ch.started - 8, None)   # only recent starts are ever asked for

    def command_ended(self, uniqueid: str) -> None:
        ch = self._channels.get(uniqueid)
        if ch is not None:
            ch.ended = min(ch.ended + 1, ch.started)

    def key(self, uniqueid: str, digit: str, at: float, duration_ms: int) -> None:
        """Asterisk read ``digit``: kept when no command was running (and not a repeat)."""
        ch = self._channels.get(uniqueid)
        if ch is None or digit not in KEYS:
            return
        key = _Key(digit, at, at + hold_s(duration_ms))
        last, ch.last = ch.last, key
        if last is not None and last.digit == digit and 0 <= at - last.at < REPUBLISHED_S:
            return  # the same press, published again as Asterisk took it from its queue
        if ch.started != ch.ended:
            return  # a command read it: it got it (or ignored it on purpose)
        gap = ch.ended
        if gap < ch.floor or gap in ch.sealed:
            return
        keys = ch.gaps.setdefault(gap, [])
        if len(keys) < MAX_KEYS_PER_GAP:
            keys.append(key)
