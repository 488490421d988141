"""The console's abuse limits, sans-IO: a token bucket per connection and a login lockout per id.

Both are plain objects driven by a ``now`` argument (monotonic seconds), so tests step time
instead of sleeping, and ``console_server.py`` only asks them yes/no questions.
"""

from __future__ import annotations

from dataclasses import dataclass

#: a connection whose messages are dropped this many times in a row is flooding: the server
#: closes it (1008) rather than answering ``rate_limited`` forever
FLOOD_DROPS = 100
#: agent ids whose failures are remembered at once; beyond this the oldest are forgotten, so
#: guessing random ids cannot grow memory without bound
MAX_TRACKED_IDS = 10_000


class TokenBucket:
    """``rate`` messages per second sustained, ``burst`` at once; counts drops in a row."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now
        #: messages dropped since the last one that was let through
        self.dropped_in_row = 0

    def take(self, now: float) -> bool:
        """True if a message arriving at ``now`` may pass (and spends a token)."""
        # a clock that steps back (it should not: monotonic) must not mint tokens
        elapsed = max(0.0, now - self._stamp)
        self._stamp = max(self._stamp, now)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.dropped_in_row = 0
            return True
        self.dropped_in_row += 1
        return False

    @property
    def flooding(self) -> bool:
        return self.dropped_in_row >= FLOOD_DROPS


@dataclass
class _Failures:
    count: int
    first_at: float
    locked_until: float | None = None


class LoginGuard:
    """Brute-force protection: ``max_failures`` wrong passwords for one agent id within
    ``lockout_s`` pause logins for that id (right password or not) for ``lockout_s``.

    Keyed by agent id, not by peer, because the thing to protect is the password of one id; the
    per-connection rate limit already slows a single peer. Unknown ids are counted the same way
    as known ones, so the answer never tells whether an id exists.
    """

    def __init__(self, max_failures: int, lockout_s: float,
                 max_tracked: int = MAX_TRACKED_IDS) -> None:
        self._max_failures = max_failures
        self._lockout_s = lockout_s
        self._max_tracked = max_tracked
        self._failures: dict[str, _Failures] = {}

    def locked(self, agent_id: str, now: float) -> bool:
        """True while logins for ``agent_id`` are paused."""
        entry = self._current(agent_id, now)
        return entry is not None and entry.locked_until is not None

    def failed(self, agent_id: str, now: float) -> bool:
        """Record a wrong password; True if this failure starts a lockout."""
        entry = self._current(agent_id, now)
        if entry is None:
            self._prune(now)
            entry = self._failures[agent_id] = _Failures(0, now)
        if entry.locked_until is not None:
            return False
        entry.count += 1
        if entry.count >= self._max_failures:
            entry.locked_until = now + self._lockout_s
            return True
        return False

    def succeeded(self, agent_id: str) -> None:
        self._failures.pop(agent_id, None)

    def _current(self, agent_id: str, now: float) -> _Failures | None:
        """The id's record, forgetting it once its window or its lockout has passed."""
        entry = self._failures.get(agent_id)
        if entry is None:
            return None
        ends = entry.locked_until if entry.locked_until is not None \
            else entry.first_at + self._lockout_s
        if now >= ends:
            del self._failures[agent_id]
            return None
        return entry

    def _prune(self, now: float) -> None:
        if len(self._failures) < self._max_tracked:
            return
        for agent_id in list(self._failures):
            self._current(agent_id, now)
        # dicts keep insertion order, oldest first; forget counting ids before locked ones, so
        # guessing many ids cannot lift a lockout early
        for agent_id in [k for k, v in self._failures.items() if v.locked_until is None]:
            if len(self._failures) < self._max_tracked:
                return
            del self._failures[agent_id]
        while len(self._failures) >= self._max_tracked:
            del self._failures[next(iter(self._failures))]
