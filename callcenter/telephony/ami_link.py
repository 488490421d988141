"""Sans-IO policy of the AMI link: action building and checks, login key, backoff, liveness.

Nothing here touches a socket or a clock: time is passed in. ``ami.py`` is the asyncio edge.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.errors import UnsafeValueError
from callcenter.telephony.values import check_value

_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

#: Actions whose repetition would change the world. They are never queued across a reconnect:
#: if the link drops before their response, the caller gets an error and decides.
SIDE_EFFECT_ACTIONS = frozenset(
    a.lower()
    for a in (
        "Originate Hangup Redirect Setvar Atxfer BlindTransfer Bridge QueueAdd QueueRemove "
        "QueuePause MixMonitor StopMixMonitor PlayDTMF SendText"
    ).split()
)


def build_action(action: str, headers: Mapping[str, str | list[str]]) -> dict[str, str | list[str]]:
    """Check every header name and value; return the action dict ready for the wire.

    Values are refused, not escaped: a CR or LF in a value would start a second AMI action.
    """
    if not _HEADER_NAME.fullmatch(action):
        raise UnsafeValueError(f"AMI action name {action!r} is not a plain word; refused")
    out: dict[str, str | list[str]] = {"Action": action}
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in ("action", "actionid"):
            raise UnsafeValueError(f"AMI header name {name!r} is not allowed; refused")
        if isinstance(value, list):
            out[name] = [check_value(v, what=f"AMI {action} header {name}") for v in value]
        else:
            out[name] = check_value(str(value), what=f"AMI {action} header {name}")
    return out


def md5_login_key(challenge: str, secret: str) -> str:
    """AMI's challenge-response login: the secret itself never crosses the wire."""
    return hashlib.md5((challenge + secret).encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass
class Backoff:
    """Exponential reconnect delay: ``minimum``, doubling up to ``maximum``; reset on success."""

    minimum: float
    maximum: float
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.minimum

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.minimum


@dataclass
class Liveness:
    """Decides when a silent link is dead: a Ping unanswered for ``timeout`` seconds.

    Any traffic from Asterisk counts as an answer, so a busy link is never declared dead.
    """

    timeout: float
    _waiting_since: float | None = None

    def ping_sent(self, now: float) -> None:
        if self._waiting_since is None:
            self._waiting_since = now

    def heard_from_peer(self) -> None:
        self._waiting_since = None

    def is_dead(self, now: float) -> bool:
        return self._waiting_since is not None and now - self._waiting_since >= self.timeout

