"""The console's abuse limits, sans-IO: a token bucket per connection, a login lockout per
(agent id, address), and sliding windows of failed logins per address and per agent id (the
latter sparing the addresses the agent has logged in from: ``KnownAddresses``).

All are plain objects driven by a ``now`` argument (monotonic seconds), so tests step time
instead of sleeping, and ``console_server.py`` only asks them yes/no questions. Why the lockout is
per (id, address) and not per id: docs/console-protocol.md, *Login throttling*.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable
from dataclasses import dataclass

#: a connection whose messages are dropped this many times in a row is flooding: the server
#: closes it (1008) rather than answering ``rate_limited`` forever
FLOOD_DROPS = 100
#: agent ids (or addresses) whose failures are remembered at once; beyond this the oldest are
#: forgotten, so guessing random ids cannot grow memory without bound
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
    """Brute-force protection: ``max_failures`` wrong passwords for one key within ``lockout_s``
    pause logins for that key (right password or not) for ``lockout_s``.

    The console keys it by (agent id, address): guesses at one id from one address are paused,
    while the agent, from their own desk, still logs in (a lockout per id alone would let anyone
    keep any agent out with a few wrong passwords a minute). ``AddressThrottle`` bounds what one
    address may try over all ids. Unknown ids are counted the same way as known ones, so the
    answer never tells whether an id exists.
    """

    def __init__(self, max_failures: int, lockout_s: float,
                 max_tracked: int = MAX_TRACKED_IDS) -> None:
        self._max_failures = max_failures
        self._lockout_s = lockout_s
        self._max_tracked = max_tracked
        self._failures: dict[Hashable, _Failures] = {}

    def locked(self, key: Hashable, now: float) -> bool:
        """True while logins for ``key`` are paused."""
        entry = self._current(key, now)
        return entry is not None and entry.locked_until is not None

    def failed(self, key: Hashable, now: float) -> bool:
        """Record a wrong password; True if this failure starts a lockout."""
        entry = self._current(key, now)
        if entry is None:
            self._prune(now)
            entry = self._failures[key] = _Failures(0, now)
        if entry.locked_until is not None:
            return False
        entry.count += 1
        if entry.count >= self._max_failures:
            entry.locked_until = now + self._lockout_s
            return True
        return False

    def succeeded(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def _current(self, key: Hashable, now: float) -> _Failures | None:
        """The key's record, forgetting it once its window or its lockout has passed."""
        entry = self._failures.get(key)
        if entry is None:
            return None
        ends = entry.locked_until if entry.locked_until is not None \
            else entry.first_at + self._lockout_s
        if now >= ends:
            del self._failures[key]
            return None
        return entry

    def _prune(self, now: float) -> None:
        if len(self._failures) < self._max_tracked:
            return
        for key in list(self._failures):
            self._current(key, now)
        # dicts keep insertion order, oldest first; forget counting ids before locked ones, so
        # guessing many ids cannot lift a lockout early
        for key in [k for k, v in self._failures.items() if v.locked_until is None]:
            if len(self._failures) < self._max_tracked:
                return
            del self._failures[key]
        while len(self._failures) >= self._max_tracked:
            del self._failures[next(iter(self._failures))]


class AddressThrottle:
    """Failed logins per key in a sliding window: ``max_failures`` within ``window_s`` pause the
    key until the oldest of them falls out of the window. Keyed by source address: one address
    gets at most ``max_failures`` guesses per ``window_s`` over all ids, and a success does not
    reset the count (one known password must not buy more guesses at the others). Keyed by agent
    id: guesses at one account from many addresses are bounded too."""

    def __init__(self, max_failures: int, window_s: float,
                 max_tracked: int = MAX_TRACKED_IDS) -> None:
        self._max_failures = max_failures
        self._window_s = window_s
        self._max_tracked = max_tracked
        self._failures: dict[Hashable, collections.deque[float]] = {}

    def paused(self, address: Hashable, now: float) -> bool:
        """True while logins from ``address`` are paused."""
        return len(self._recent(address, now)) >= self._max_failures

    def failed(self, address: Hashable, now: float) -> bool:
        """Record a failed login from ``address``; True if this one starts a pause."""
        stamps = self._recent(address, now)
        if not stamps:
            self._prune(now)
            stamps = self._failures[address] = collections.deque()
        stamps.append(now)
        return len(stamps) == self._max_failures

    def _recent(self, address: Hashable, now: float) -> collections.deque[float]:
        """The address's failures still inside the window (forgetting it when there are none)."""
        stamps = self._failures.get(address)
        if stamps is None:
            return collections.deque()
        while stamps and now - stamps[0] >= self._window_s:
            stamps.popleft()
        if not stamps:
            del self._failures[address]
        return stamps

    def _prune(self, now: float) -> None:
        if len(self._failures) < self._max_tracked:
            return
        for address in list(self._failures):
            self._recent(address, now)
        while len(self._failures) >= self._max_tracked:  # oldest first (insertion order)
            del self._failures[next(iter(self._failures))]


class KnownAddresses:
    """The addresses each agent has logged in from (most recent ``per_agent``, for at most
    ``max_tracked`` agents): a pause of an account's logins does not apply there, so an attacker
    elsewhere cannot keep the agent at their own desk out."""

    def __init__(self, per_agent: int = 8, max_tracked: int = MAX_TRACKED_IDS) -> None:
        self._per_agent = per_agent
        self._max_tracked = max_tracked
        self._known: dict[str, dict[str, None]] = {}

    def add(self, agent_id: str, address: str) -> None:
        seen = self._known.pop(agent_id, None) or {}
        seen.pop(address, None)
        seen[address] = None
        while len(seen) > self._per_agent:
            del seen[next(iter(seen))]
        self._known[agent_id] = seen  # most recently used last
        while len(self._known) > self._max_tracked:
            del self._known[next(iter(self._known))]

    def __contains__(self, item: tuple[str, str]) -> bool:
        agent_id, address = item
        return address in self._known.get(agent_id, {})
