"""The dialer's rows: the do-not-call list, opt-outs, call attempts and the contact log.

An attempt's row is inserted and committed before its call is placed (result '' while in
flight), so an engine that dies mid-call finds it on start (``in_flight``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiosqlite

from callcenter.errors import DialerError, DialRuleError
from callcenter.phones.dialrules import DEFAULT_RULES, classify
from callcenter.phones.dialrules import check as dial_check
from callcenter.sip.settings import DialRules
from callcenter.store.tx import transaction

__all__ = ["CHANNELS", "Attempt", "add_dnc", "add_opt_out", "dial_key", "facts", "finish_attempt",
           "in_flight", "insert_attempt", "list_dnc", "list_opt_outs", "log_contact",
           "normalise", "recording_of", "remove_dnc", "remove_opt_out", "set_recording"]

CHANNELS = ("call", "sms", "email", "fax", "all")


_SYNTAX = re.compile(r"^\+?[0-9]{3,20}$")


def normalise(number: str, rules: DialRules = DEFAULT_RULES) -> str:
    """A number as the list keeps it: the digits the dialer would dial under the site's dial
    ``rules`` (national form: +86 138... -> 138...). A syntactically valid number those rules
    refuse (international while that is off, a blocked prefix) is kept as written (spaces and
    dashes out): it is not dialled anyway. Anything else: DialerError."""
    digits = "".join(number.split()).replace("-", "")
    if not _SYNTAX.fullmatch(digits):
        raise DialerError("bad_number", f"not a phone number: {number!r}")
    try:
        return classify(digits, rules)[1]
    except DialRuleError:
        return digits


def dial_key(phone: str, role: str, rules: DialRules) -> str:
    """The do-not-call key of a task's ``phone``: the digits the dialer would dial, "" if the
    rules refuse it (then ``rules.check`` refuses the call: nothing else is dialled)."""
    try:
        return dial_check(phone, role, "callback", rules)
    except DialRuleError:
        return ""


async def add_dnc(db: aiosqlite.Connection, number: str, by: str, reason: str,
                  now: float, rules: DialRules = DEFAULT_RULES) -> str:
    key = normalise(number, rules)
    async with transaction(db):
        await db.execute("INSERT INTO dnc (number, added_at, added_by, reason) VALUES"
                         " (?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET reason ="
                         " excluded.reason", (key, now, by, reason))
    return key


async def remove_dnc(db: aiosqlite.Connection, number: str,
                     rules: DialRules = DEFAULT_RULES) -> bool:
    key = normalise(number, rules)
    async with transaction(db):
        cur = await db.execute("DELETE FROM dnc WHERE number = ?", (key,))
    return cur.rowcount > 0


async def list_dnc(db: aiosqlite.Connection) -> list[tuple[str, float, str, str]]:
    async with db.execute("SELECT number, added_at, added_by, reason FROM dnc"
                          " ORDER BY number") as cur:
        return [(str(a), float(b), str(c), str(d)) for a, b, c, d in await cur.fetchall()]


def _channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise DialerError("bad_channel", f"channel is one of {', '.join(CHANNELS)}")
    return channel


async def add_opt_out(db: aiosqlite.Connection, account: str, channel: str, by: str,
                      now: float) -> None:
    if not account.strip():
        raise DialerError("bad_account", "an opt-out needs an account")
    async with transaction(db):
        await db.execute("INSERT INTO opt_outs (account, channel, added_at, added_by) VALUES"
                         " (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         (account, _channel(channel), now, by))


async def remove_opt_out(db: aiosqlite.Connection, account: str, channel: str) -> bool:
    async with transaction(db):
        cur = await db.execute("DELETE FROM opt_outs WHERE account = ? AND channel = ?",
                               (account, _channel(channel)))
    return cur.rowcount > 0


async def list_opt_outs(db: aiosqlite.Connection) -> list[tuple[str, str, float, str]]:
    async with db.execute("SELECT account, channel, added_at, added_by FROM opt_outs"
                          " ORDER BY account, channel") as cur:
        return [(str(a), str(b), float(c), str(d)) for a, b, c, d in await cur.fetchall()]


async def facts(db: aiosqlite.Connection, key: str, account: str) -> tuple[bool, bool]:
    """(on the do-not-call list, opted out of calls) for one task: ``key`` is the number as
    it would be dialled (``dial_key``; "" for none), ``account`` the customer."""
    dnc = False
    if key:
        async with db.execute("SELECT 1 FROM dnc WHERE number = ?", (key,)) as cur:
            dnc = await cur.fetchone() is not None
    opted = False
    if account:
        async with db.execute("SELECT 1 FROM opt_outs WHERE account = ? AND channel IN"
                              " ('call', 'all')", (account,)) as cur:
            opted = await cur.fetchone() is not None
    return dnc, opted


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    task_id: int
    attempt: int
    call_id: str
    agent_id: str


async def insert_attempt(db: aiosqlite.Connection, task_id: int, call_id: str, agent_id: str,
                         mode: str, now: float) -> Attempt:
    """The attempt's row, committed (the call is placed after this returns)."""
    async with transaction(db):
        async with db.execute("SELECT COALESCE(max(attempt), 0) + 1 FROM task_attempts"
                              " WHERE task_id = ?", (task_id,)) as cur:
            row = await cur.fetchone()
        number = int(row[0]) if row else 1
        cur2 = await db.execute(
            "INSERT INTO task_attempts (task_id, attempt, call_id, agent_id, mode, placed_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", (task_id, number, call_id, agent_id, mode, now))
    return Attempt(int(cur2.lastrowid or 0), task_id, number, call_id, agent_id)


async def finish_attempt(db: aiosqlite.Connection, call_id: str, result: str, now: float,
                         talk_s: float | None = None, recording: str | None = None) -> None:
    async with transaction(db):
        await db.execute("UPDATE task_attempts SET result = ?, ended_at = ?, talk_s = ?,"
                         " recording = COALESCE(?, recording) WHERE call_id = ?",
                         (result, now, talk_s, recording, call_id))


async def set_recording(db: aiosqlite.Connection, call_id: str, path: str) -> None:
    async with transaction(db):
        await db.execute("UPDATE task_attempts SET recording = ? WHERE call_id = ?",
                         (path, call_id))


async def recording_of(db: aiosqlite.Connection, call_id: str) -> str | None:
    """The agent's recording of ``call_id`` (the ACD's ``recordings`` row), if any."""
    async with db.execute("SELECT path FROM recordings WHERE call_id = ? ORDER BY started_at"
                          " LIMIT 1", (call_id,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def in_flight(db: aiosqlite.Connection) -> list[tuple[str, int]]:
    """(call id, task id) of the attempts with no result yet."""
    async with db.execute("SELECT call_id, task_id FROM task_attempts WHERE result = ''"
                          " ORDER BY id") as cur:
        return [(str(c), int(t)) for c, t in await cur.fetchall()]


async def log_contact(db: aiosqlite.Connection, account: str, now: float, strategy: str,
                      task_id: int, outcome: str) -> None:
    """A call made for a task (the strategies' contact caps read these)."""
    async with transaction(db):
        await db.execute("INSERT INTO contact_log (account, at, channel, strategy, task_id,"
                         " outcome) VALUES (?, ?, 'call', ?, ?, ?)",
                         (account, now, strategy, task_id, outcome))
