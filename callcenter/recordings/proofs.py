"""The IVR's proof recordings (``ivr/runner.py``'s ``ProofRecorder``): where each is written
(beside the agents' recordings, ``acd.recordings_dir``) and its row, filed before Asterisk starts
writing it and linked to the intent by the confirm's idempotency key."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import aiosqlite

from callcenter.recordings import store

__all__ = ["IvrProofs"]

KEY = re.compile(r"[0-9a-f]{8,64}")


class IvrProofs:
    def __init__(self, db: aiosqlite.Connection, directory: str,
                 account: Callable[[], str]) -> None:
        self.db = db
        self.directory = directory
        #: the caller's account once they have logged in ('' before)
        self.account = account

    def path(self, call_id: str, key: str) -> str:
        if not KEY.fullmatch(key) or not re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", call_id):
            raise ValueError("a proof's call id and key are plain identifiers")
        stamp = time.strftime("%Y%m%d")
        return f"{self.directory}/{stamp}/{call_id}-proof-{key[:16]}.wav"

    async def started(self, call_id: str, key: str, path: str) -> int:
        return await store.add_proof(self.db, call_id=call_id, account=self.account(),
                                     path=path, intent_key=key, started_at=time.time())

    async def ended(self, row: int) -> None:
        await store.end_recording(self.db, row, time.time())
