"""Schema migrations, in order. ``PRAGMA user_version`` records how many have been applied.

Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: call records and their timelines
    """
    CREATE TABLE calls (
        id            TEXT PRIMARY KEY,          -- Asterisk linkedid
        started_at    REAL NOT NULL,
        ended_at      REAL,
        caller_num    TEXT NOT NULL DEFAULT '',
        caller_name   TEXT NOT NULL DEFAULT '',
        first_channel TEXT NOT NULL DEFAULT '',
        end_cause     INTEGER,
        end_reason    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX calls_started ON calls(started_at);
    CREATE TABLE call_events (
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        at      REAL NOT NULL,
        kind    TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}',      -- JSON object; never a secret
        PRIMARY KEY (call_id, seq)
    );
    """,
)
