"""FastAGI session proof: only a session Asterisk's own dialplan opened gets served.

Anything on the host can connect to the FastAGI port and claim any ``agi_channel``,
``agi_uniqueid`` or caller ID. So every ``AGI()`` in our dialplan passes two arguments first:

    T = ${EPOCH}                                     (set once, so both uses agree)
    M = SHA1(K:script:uniqueid:channel:T:K)          (hex)

where ``K`` is a random key that only Asterisk (``agi_key.conf``, included in extensions.conf's
``[globals]``, readable by the asterisk user) and the engine (``<state_dir>/agi.key``, 0600)
hold. The engine recomputes ``M`` from what the session claims and serves it only if it matches
and ``T`` is fresh: a forged session (no key), a replayed one (stale ``T``), or a token moved to
another channel, call or script proves nothing and gets nothing.

Why SHA1 with the key at both ends rather than HMAC: the dialplan offers ``SHA1()`` and ``MD5()``
but no HMAC function. The key on both sides of the message stops the length extension a
secret-prefix hash would allow; the fields are joined with ``:``, which Asterisk never puts in a
uniqueid, a channel name or our script names, so no two claims hash the same text.

This module is sans-IO: the server calls ``verify_session`` with the environment it read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from callcenter.errors import AgiAuthError

__all__ = ["DIALPLAN_KEY_VARIABLE", "SessionProof", "session_mac", "verify_session"]

#: the dialplan global holding the key (written by ``callcenter pbx`` into agi_key.conf)
DIALPLAN_KEY_VARIABLE = "AGI_KEY"

_HEX40 = re.compile(r"[0-9a-f]{40}")
_EPOCH = re.compile(r"[0-9]{1,12}")
#: what a uniqueid, a channel name and a script may contain (Asterisk never uses ':' in them)
_FIELD = re.compile(r"[A-Za-z0-9/@;._+\-]{1,200}")


@dataclass(frozen=True)
class SessionProof:
    """A verified session: the arguments meant for the script, with the token removed."""

    issued_at: int
    arguments: list[str]


def session_mac(key: str, script: str, uniqueid: str, channel: str, issued_at: int) -> str:
    """The token the dialplan computes for this claim (lower-case hex SHA1)."""
    text = f"{key}:{script}:{uniqueid}:{channel}:{issued_at}:{key}"
    # SHA1 because the dialplan has nothing better (see the module docstring).
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=True).hexdigest()  # noqa: S324


def verify_session(key: str, *, script: str, uniqueid: str, channel: str,
                   arguments: Sequence[str], now: float, max_age_s: float) -> SessionProof:
    """Return the proof of a genuine session, or raise ``AgiAuthError`` saying why not.

    The reason never includes the token or the key (it is logged).
    """
    if len(arguments) < 2:
        raise AgiAuthError("no session token: not opened by our dialplan (if Asterisk runs an"
                           " older configuration: callcenter pbx down && callcenter pbx up)")
    stamp, mac = arguments[0], arguments[1].lower()
    if not _EPOCH.fullmatch(stamp) or not _HEX40.fullmatch(mac):
        raise AgiAuthError("malformed session token")
    for what, value in (("script", script), ("uniqueid", uniqueid), ("channel", channel)):
        if not _FIELD.fullmatch(value):
            raise AgiAuthError(f"the session's {what} is empty or holds unexpected characters")
    issued_at = int(stamp)
    expected = session_mac(key, script, uniqueid, channel, issued_at)
    if not hmac.compare_digest(expected, mac):
        raise AgiAuthError("session token does not match the claimed channel, call and script")
    age = now - issued_at
    if age > max_age_s or age < -max_age_s:
        raise AgiAuthError(f"session token is {age:.0f} s old (at most {max_age_s:g} s)")
    return SessionProof(issued_at, list(arguments[2:]))
