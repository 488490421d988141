"""Inbound contacts (mail, fax) as the console sees and moves them: the ``contacts``,
``take_contact`` and ``close_contact`` requests, and a contact's row for the ``contact`` event.
A contact another agent took is theirs: only a supervisor may close it for them."""

from __future__ import annotations

from typing import Any, Final

import aiosqlite

from callcenter.errors import ConsoleError
from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.masking import file_name, mask
from callcenter.store.tx import transaction

#: an inbound contact's text in a listing or an event is cut to this many characters
CONTACT_TEXT_MAX: Final = 4000
#: (contact state, action) -> the state after it. Taking a contact someone else has taken, and
#: closing it for them (unless a supervisor does), are refused apart from this table.
CONTACT_MOVES: Final[dict[tuple[str, str], str]] = {
    ("new", "take"): "taken", ("taken", "take"): "taken",
    ("new", "close"): "done", ("taken", "close"): "done",
}
_SUPERVISING = frozenset({p.Role.SUPERVISOR.value, p.Role.ADMIN.value})


async def list_contacts(db: aiosqlite.Connection, req: p.Contacts) -> dict[str, Any]:
    async with db.execute(
            "SELECT contact_id, channel, sender, subject, text, attachment, pages, account,"
            " received_at, state, agent_id FROM contacts"
            " WHERE (:state = '' OR state = :state)"
            " ORDER BY received_at DESC, id DESC LIMIT :limit",
            {"state": req.state, "limit": req.limit}) as cur:
        rows = await cur.fetchall()
    return {"contacts": [contact_row(tuple(r)) for r in rows]}


async def move_contact(db: aiosqlite.Connection, agent: AgentIdentity, contact_id: str,
                       action: str) -> dict[str, Any]:
    """Take or close a contact (``CONTACT_MOVES``); the contact as it is now."""
    me = agent.agent_id
    async with transaction(db):
        async with db.execute(
                "SELECT contact_id, channel, sender, subject, text, attachment, pages,"
                " account, received_at, state, agent_id FROM contacts WHERE contact_id = ?",
                (contact_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise ConsoleError("not_found", "no such contact")
        state, holder = str(row["state"]), str(row["agent_id"])
        new = CONTACT_MOVES.get((state, action))
        if new is None:
            raise ConsoleError("invalid_state", f"the contact is {state} already")
        theirs = state == "taken" and holder not in ("", me)
        if theirs and (action == "take" or agent.role.value not in _SUPERVISING):
            raise ConsoleError("invalid_state", f"the contact was taken by {holder}")
        owner = holder if theirs else me
        await db.execute(
            "UPDATE contacts SET state = ?, agent_id = ? WHERE contact_id = ?",
            (new, owner, contact_id))
    return {**contact_row(tuple(row)), "state": new, "agent_id": owner}


def contact_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """A ``contacts`` row (contact_id, channel, sender, subject, text, attachment, pages,
    account, received_at, state, agent_id) as the console sees it."""
    (contact_id, channel, sender, subject, text, attachment, pages, account, received_at,
     state, agent_id) = row
    text = str(text or "")
    return {"contact_id": str(contact_id), "channel": str(channel), "sender": str(sender),
            "subject": str(subject or ""), "text": text[:CONTACT_TEXT_MAX],
            "text_truncated": len(text) > CONTACT_TEXT_MAX,
            "attachment_name": file_name(str(attachment or "")), "pages": pages,
            "account_masked": mask(str(account or "")), "received_at": float(received_at),
            "state": str(state), "agent_id": str(agent_id or "")}
