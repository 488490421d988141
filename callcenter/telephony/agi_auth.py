"""FastAGI session proof: only a session Asterisk's own dialplan opened gets served.

Anything on the host can connect to the FastAGI port and claim any ``agi_channel``,
``agi_uniqueid`` or caller ID. So every ``AGI()`` in our dialplan passes three arguments first:

    T = ${EPOCH}                                     (set once, so both uses agree)
    M = SHA1(K:script:uniqueid:channel:T:L:K)        (hex)
    L = ${CHANNEL(linkedid)}                         (the call the channel belongs to)

where ``K`` is a random key that only Asterisk (``agi_key.conf``, included in extensions.conf's
``[globals]``, readable by the asterisk user) and the engine (``<state_dir>/agi.key``, 0600)
hold. The engine recomputes ``M`` from what the session claims and serves it only if it matches
and ``T`` is fresh: a forged session (no key), a replayed one (stale ``T``), or a token moved to
another channel, call or script proves nothing and gets nothing.

``L`` spares every session a ``GET VARIABLE CHANNEL(linkedid)`` round trip (Asterisk's AGI
environment has no linkedid) and is bound by ``M`` like the rest. A dialplan from before it
(two arguments, ``M = SHA1(K:script:uniqueid:channel:T:K)``) is still served, and so is a
proven ``L`` with characters outside the fields' alphabet (an Originate's ``ChannelId`` becomes
the linkedid and may hold any): those sessions ask Asterisk for the linkedid, as before.

Why SHA1 with the key at both ends rather than HMAC: the dialplan offers ``SHA1()`` and ``MD5()``
but no HMAC function. The key on both sides of the message stops the length extension a
secret-prefix hash would allow; the fields are joined with ``:``, which the uniqueid, channel
name and script must not hold (``_FIELD``) and the stamp cannot, so no two claims hash the same
text: the linkedid, the one field that may hold anything, is the last before the key.

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
    #: the call's linkedid, as the dialplan passed it (None: a dialplan from before it)
    linkedid: str | None = None


def session_mac(key: str, script: str, uniqueid: str, channel: str, issued_at: int,
                linkedid: str | None = None) -> str:
    """The token the dialplan computes for this claim (lower-case hex SHA1); without
    ``linkedid``, the token of a dialplan from before it."""
    call = "" if linkedid is None else f"{linkedid}:"
    text = f"{key}:{script}:{uniqueid}:{channel}:{issued_at}:{call}{key}"
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
    linkedid: str | None = arguments[2] if len(arguments) > 2 else None
    if linkedid is not None and hmac.compare_digest(
            session_mac(key, script, uniqueid, channel, issued_at, linkedid), mac):
        rest = arguments[3:]
        if not _FIELD.fullmatch(linkedid):
            linkedid = None   # proven, but not a plain id: the session asks Asterisk for it
    elif hmac.compare_digest(session_mac(key, script, uniqueid, channel, issued_at), mac):
        linkedid, rest = None, arguments[2:]   # a dialplan from before the linkedid argument
    else:
        raise AgiAuthError("session token does not match the claimed channel, call and script")
    age = now - issued_at
    if age > max_age_s or age < -max_age_s:
        raise AgiAuthError(f"session token is {age:.0f} s old (at most {max_age_s:g} s)")
    return SessionProof(issued_at, list(rest), linkedid)
