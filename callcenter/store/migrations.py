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
    # 2: the hotline's own records. Intents make orders/transfers exactly-once: the row is
    # committed before the back office is called and reconciled after a crash, never resent.
    """
    CREATE TABLE intents (
        key         TEXT PRIMARY KEY,            -- idempotency key, made at the confirm step
        kind        TEXT NOT NULL,               -- order | cancel | transfer
        call_id     TEXT NOT NULL,
        account     TEXT NOT NULL,
        summary     TEXT NOT NULL,               -- JSON; never a password
        state       TEXT NOT NULL DEFAULT 'pending',  -- pending | done | refused | not_done
        result      TEXT NOT NULL DEFAULT '{}',  -- JSON
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE INDEX intents_pending ON intents(state) WHERE state = 'pending';
    CREATE TABLE service_requests (
        ref         TEXT PRIMARY KEY,            -- read to the caller digit by digit
        kind        TEXT NOT NULL,               -- statement | appointment | callback
        call_id     TEXT NOT NULL,
        account     TEXT,
        phone       TEXT,
        detail      TEXT NOT NULL DEFAULT '{}',  -- JSON
        state       TEXT NOT NULL DEFAULT 'open',
        created_at  REAL NOT NULL
    );
    -- at most one pending call-back per number
    CREATE UNIQUE INDEX one_open_callback ON service_requests(phone)
        WHERE kind = 'callback' AND state = 'open';
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id  TEXT NOT NULL UNIQUE,        -- receivers de-duplicate on it
        channel     TEXT NOT NULL,               -- fax | email | sms
        topic       TEXT NOT NULL,
        payload     TEXT NOT NULL,               -- JSON
        ref         TEXT REFERENCES service_requests(ref),
        state       TEXT NOT NULL DEFAULT 'queued',   -- queued | sent | delivered | failed
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE INDEX outbox_queued ON outbox(state) WHERE state = 'queued';
    CREATE TABLE surveys (
        call_id     TEXT PRIMARY KEY,
        account     TEXT,
        rating      INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
        created_at  REAL NOT NULL
    );
    """,
)
