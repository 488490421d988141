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
    # 3: agents and seats, the queue and seat logs, recordings, wrap-ups, tasks
    """
    CREATE TABLE agents (
        agent_id      TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
        password_hash TEXT NOT NULL,             -- scrypt$salt$hash, never the password
        endpoint      TEXT NOT NULL,             -- what Asterisk dials: PJSIP/1001, Local/...
        skills        TEXT NOT NULL DEFAULT '{}',   -- JSON {skill: level 1..10}
        vip_team      INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL
    );
    -- a customer's own manager ("one-to-one" for gold and platinum)
    CREATE TABLE customer_managers (
        account  TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE
    );
    -- the seat's current state, so a restarted engine restores it
    CREATE TABLE seats (
        agent_id       TEXT PRIMARY KEY REFERENCES agents(agent_id) ON DELETE CASCADE,
        state          TEXT NOT NULL,
        reason         TEXT NOT NULL DEFAULT '',
        since          REAL NOT NULL,
        ready_since    REAL,
        calls_taken    INTEGER NOT NULL DEFAULT 0,
        call_id        TEXT NOT NULL DEFAULT '',
        agent_channel  TEXT NOT NULL DEFAULT '',   -- uniqueid of the agent's leg
        caller_channel TEXT NOT NULL DEFAULT ''    -- channel name of the caller's leg
    );
    CREATE TABLE seat_log (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        at         REAL NOT NULL,
        agent_id   TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state   TEXT NOT NULL,
        input      TEXT NOT NULL,
        reason     TEXT NOT NULL DEFAULT '',
        by         TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX seat_log_agent_at ON seat_log(agent_id, at);
    -- enter | ring | noanswer | connect | abandon | callback | overflow | complete | transfer
    CREATE TABLE queue_log (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       REAL NOT NULL,
        queue    TEXT NOT NULL,
        call_id  TEXT NOT NULL,
        event    TEXT NOT NULL,
        agent_id TEXT NOT NULL DEFAULT '',
        tier     TEXT NOT NULL DEFAULT '',
        wait_s   REAL,                           -- connect, abandon: seconds since enter
        talk_s   REAL,                           -- complete: seconds connected
        detail   TEXT NOT NULL DEFAULT '{}'      -- JSON
    );
    CREATE INDEX queue_log_at ON queue_log(at);
    CREATE INDEX queue_log_call ON queue_log(call_id);
    -- callers waiting now (or holding a place by call-back): restored after a restart
    CREATE TABLE queue_waiting (
        call_id      TEXT PRIMARY KEY,
        queue        TEXT NOT NULL,
        tier         TEXT NOT NULL,
        arrived_at   REAL NOT NULL,
        channel      TEXT NOT NULL DEFAULT '',   -- caller's channel name ('' for a call-back)
        uniqueid     TEXT NOT NULL DEFAULT '',
        account      TEXT NOT NULL DEFAULT '',
        manager      TEXT NOT NULL DEFAULT '',
        phone        TEXT NOT NULL DEFAULT '',
        callback     INTEGER NOT NULL DEFAULT 0,
        context      TEXT NOT NULL DEFAULT '{}'  -- JSON: the IVR's hand-off context
    );
    CREATE TABLE recordings (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id    TEXT NOT NULL,
        agent_id   TEXT NOT NULL,
        account    TEXT NOT NULL DEFAULT '',
        path       TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at   REAL
    );
    CREATE INDEX recordings_call ON recordings(call_id);
    CREATE TABLE wrapups (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id     TEXT NOT NULL,
        agent_id    TEXT NOT NULL,
        account     TEXT NOT NULL DEFAULT '',
        disposition TEXT NOT NULL,
        notes       TEXT NOT NULL DEFAULT '',
        at          REAL NOT NULL,
        UNIQUE (call_id, agent_id)
    );
    CREATE TABLE tasks (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        agent_id   TEXT NOT NULL,                -- who should do it
        account    TEXT NOT NULL DEFAULT '',
        phone      TEXT NOT NULL DEFAULT '',
        due_at     REAL,
        text       TEXT NOT NULL,
        state      TEXT NOT NULL DEFAULT 'open'
    );
    """,
    # 4: the channels: delivery history, inbound contacts, financial-secretary subscriptions
    """
    ALTER TABLE outbox ADD COLUMN next_attempt_at REAL;   -- backoff: not before this time
    ALTER TABLE outbox ADD COLUMN published_at REAL;      -- last PUBACK from the broker
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    -- every delivery report as it came (the outbox row holds the latest state)
    CREATE TABLE deliveries (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        state      TEXT NOT NULL,                 -- sent | delivered | failed | retrying
        reason     TEXT NOT NULL DEFAULT '',
        attempt    INTEGER NOT NULL DEFAULT 1,
        detail     TEXT NOT NULL DEFAULT '{}',    -- JSON
        at         REAL NOT NULL,
        UNIQUE (message_id, state, attempt)       -- a report heard twice is stored once
    );
    CREATE INDEX deliveries_message ON deliveries(message_id);
    -- mail and faxes that came in, for agents
    CREATE TABLE contacts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        contact_id  TEXT NOT NULL UNIQUE,
        channel     TEXT NOT NULL,
        sender      TEXT NOT NULL,
        subject     TEXT NOT NULL DEFAULT '',
        text        TEXT NOT NULL DEFAULT '',
        attachment  TEXT NOT NULL DEFAULT '',
        pages       INTEGER,
        account     TEXT NOT NULL DEFAULT '',
        received_at REAL NOT NULL,
        state       TEXT NOT NULL DEFAULT 'new',  -- new | taken | done
        agent_id    TEXT NOT NULL DEFAULT ''
    );
    -- the financial secretary: what a customer wants to be told, and how
    CREATE TABLE subscriptions (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        account     TEXT NOT NULL,
        kind        TEXT NOT NULL,   -- fill|fund|price_above|price_below|ipo|daily_summary
        channel     TEXT NOT NULL,   -- sms | email | fax | ...
        params      TEXT NOT NULL DEFAULT '{}',   -- JSON: code, price ...
        quiet_start TEXT,            -- HH:MM local; notices in quiet hours wait until it ends
        quiet_end   TEXT,
        active      INTEGER NOT NULL DEFAULT 1,
        created_at  REAL NOT NULL,
        created_by  TEXT NOT NULL DEFAULT ''      -- ivr | agent id
    );
    CREATE UNIQUE INDEX one_subscription ON subscriptions(account, kind, channel, params)
        WHERE active = 1;
    -- one notice per event per subscription, whatever happens
    CREATE TABLE notices (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        subscription_id INTEGER NOT NULL REFERENCES subscriptions(id),
        event_key       TEXT NOT NULL,
        created_at      REAL NOT NULL,
        not_before      REAL,                     -- quiet hours
        message_id      TEXT NOT NULL DEFAULT '', -- its outbox row once written
        UNIQUE (subscription_id, event_key)
    );
    """,
    # 5: the financial secretary's bookmarks (journal positions, the last daily summary, price
    # alert arming), and deliveries per customer for the console and the CLI
    """
    CREATE TABLE secretary_cursors (
        name  TEXT PRIMARY KEY,      -- fills | transfers | daily_summary | price:<subscription>
        value TEXT NOT NULL
    );
    CREATE INDEX outbox_account ON outbox(json_extract(payload, '$.account'));
    CREATE INDEX subscriptions_account ON subscriptions(account) WHERE active = 1;
    CREATE INDEX notices_message ON notices(message_id);
    """,
    # 6: batches replayed from a writer's spool (store/spool.py): each applied exactly once
    """
    CREATE TABLE spool_applied (
        key    TEXT PRIMARY KEY,
        writer TEXT NOT NULL,
        at     REAL NOT NULL
    );
    """,
    # 7: the bus's dead letters: reports and contacts the relay could not use, with the reason
    # (channels/bus.py: park; a channel server keeps the same table in its own database)
    """
    CREATE TABLE bus_dead_letters (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        digest     TEXT NOT NULL UNIQUE,       -- sha256 of topic and payload: a copy is counted
        topic      TEXT NOT NULL,
        sender     TEXT NOT NULL DEFAULT '',   -- the channel kind of the topic
        message_id TEXT NOT NULL DEFAULT '',   -- message or contact id, if one could be read
        reason     TEXT NOT NULL,
        payload    TEXT NOT NULL,              -- at most its first 4096 bytes, as text
        size       INTEGER NOT NULL,           -- the whole payload's size in bytes
        seen       INTEGER NOT NULL DEFAULT 1, -- how many copies came
        first_at   REAL NOT NULL,
        last_at    REAL NOT NULL
    );
    CREATE INDEX bus_dead_letters_last ON bus_dead_letters(last_at);
    """,
    # 8: the agents' SIP phones (phones/identity.py): the engine makes them in Asterisk's AstDB
    # from these rows; only the secret's digest is kept (a browser phone's is made per login)
    """
    CREATE TABLE sip_phones (
        agent_id    TEXT PRIMARY KEY REFERENCES agents(agent_id) ON DELETE CASCADE,
        extension   TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL CHECK (kind IN ('browser', 'desk')),
        ha1         TEXT,                      -- MD5(user:realm:secret), desk phones only
        auto_answer INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL
    );
    """,
    # 9: a waiting caller's kept place (overflow, transfer to a queue, a phone lost mid-call):
    # the time their place counts from, when it is earlier than arrived_at in this queue
    """
    ALTER TABLE queue_waiting ADD COLUMN position_key REAL;
    """,
    # 10: proactive service (tasks/, strategies/, dialer/): tasks from strategies and agents,
    # their moves, call attempts, the do-not-call list and opt-outs, every contact made
    """
    ALTER TABLE tasks ADD COLUMN strategy TEXT NOT NULL DEFAULT '';  -- '' for an agent's task
    ALTER TABLE tasks ADD COLUMN run_day TEXT NOT NULL DEFAULT '';   -- the strategy run's day
    -- what a strategy makes one task of: its run day by default, a complaint's id for a
    -- complaint call-back (one task per complaint, however many runs see it)
    ALTER TABLE tasks ADD COLUMN match_key TEXT NOT NULL DEFAULT '';
    -- the customer as the strategy saw them (the console's task list needs no back office)
    ALTER TABLE tasks ADD COLUMN customer_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN tier TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN team TEXT NOT NULL DEFAULT '';      -- a queue; '' none
    ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 50;  -- 0 first .. 100
    ALTER TABLE tasks ADD COLUMN script TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN fields TEXT NOT NULL DEFAULT '[]';  -- JSON: the outcome form
    ALTER TABLE tasks ADD COLUMN reason TEXT NOT NULL DEFAULT '';    -- why the strategy matched
    ALTER TABLE tasks ADD COLUMN deadline_at REAL;                   -- must be done by then
    ALTER TABLE tasks ADD COLUMN alerted_at REAL;                    -- deadline alert sent
    ALTER TABLE tasks ADD COLUMN dial TEXT NOT NULL DEFAULT '{}';    -- JSON: dialer.rules.DialPlan
    ALTER TABLE tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN next_attempt_at REAL;
    ALTER TABLE tasks ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN outcome_fields TEXT NOT NULL DEFAULT '{}';  -- JSON
    ALTER TABLE tasks ADD COLUMN updated_at REAL;
    -- a strategy makes one task per customer and match key, however often the run is repeated
    CREATE UNIQUE INDEX one_task_per_match ON tasks(strategy, account, match_key)
        WHERE strategy != '';
    CREATE INDEX tasks_by_state ON tasks(state, agent_id);
    -- every move of a task (tasks/state.py), who made it and why
    CREATE TABLE task_log (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id    INTEGER NOT NULL REFERENCES tasks(id),
        at         REAL NOT NULL,
        by         TEXT NOT NULL,                 -- an agent id, "dialer", "strategy", "system"
        from_state TEXT NOT NULL,
        input      TEXT NOT NULL,
        to_state   TEXT NOT NULL,
        detail     TEXT NOT NULL DEFAULT '{}'     -- JSON
    );
    CREATE INDEX task_log_task ON task_log(task_id);
    -- a call attempt: written (committed) before the call is placed, its result after
    CREATE TABLE task_attempts (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id   INTEGER NOT NULL REFERENCES tasks(id),
        attempt   INTEGER NOT NULL,               -- 1, 2, ...
        call_id   TEXT NOT NULL UNIQUE,
        agent_id  TEXT NOT NULL,
        mode      TEXT NOT NULL,                  -- preview | progressive
        placed_at REAL NOT NULL,
        -- '' in flight | answered | busy | no_answer | machine | failed | interrupted
        result    TEXT NOT NULL DEFAULT '',
        ended_at  REAL,
        talk_s    REAL,
        recording TEXT NOT NULL DEFAULT '',       -- the recording's path when recorded
        UNIQUE (task_id, attempt)
    );
    CREATE INDEX attempts_in_flight ON task_attempts(result) WHERE result = '';
    -- numbers never to be called by the dialer (a customer's request, a regulator's list)
    CREATE TABLE dnc (
        number   TEXT PRIMARY KEY,
        added_at REAL NOT NULL,
        added_by TEXT NOT NULL,
        reason   TEXT NOT NULL DEFAULT ''
    );
    -- a customer's "do not contact me by ..." (channel: call | sms | email | fax | all)
    CREATE TABLE opt_outs (
        account  TEXT NOT NULL,
        channel  TEXT NOT NULL,
        added_at REAL NOT NULL,
        added_by TEXT NOT NULL,
        PRIMARY KEY (account, channel)
    );
    -- every proactive contact (a call attempt, a message): the strategies' caps read it
    CREATE TABLE contact_log (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        account    TEXT NOT NULL,
        at         REAL NOT NULL,
        channel    TEXT NOT NULL,                 -- call | sms | email | fax
        strategy   TEXT NOT NULL DEFAULT '',
        task_id    INTEGER,
        message_id TEXT NOT NULL DEFAULT '',
        outcome    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX contact_log_account ON contact_log(account, at);
    -- one row per strategy and run day: what the run did (a repeated run adds nothing)
    -- (a schedule's slot "HH:MM": once a day, or every N minutes)
    CREATE TABLE strategy_runs (
        strategy    TEXT NOT NULL,
        run_day     TEXT NOT NULL,
        slot        TEXT NOT NULL,                -- HH:MM, the site's time
        started_at  REAL NOT NULL,
        run_at      REAL NOT NULL,                -- the instant planned for (a rerun reuses it)
        finished_at REAL,
        matched     INTEGER NOT NULL DEFAULT 0,
        tasks       INTEGER NOT NULL DEFAULT 0,
        messages    INTEGER NOT NULL DEFAULT 0,
        skipped     INTEGER NOT NULL DEFAULT 0,
        detail      TEXT NOT NULL DEFAULT '{}',   -- JSON: skipped by reason
        PRIMARY KEY (strategy, run_day, slot)
    );
    -- one strategy runner at a time (the engine's, `callcenter strategies run`): held until
    -- `until` (Unix seconds), renewed while it runs, taken over once it lapses
    CREATE TABLE strategy_lease (
        name  TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until REAL NOT NULL
    );
    """,
    # 11: the administration API (admin/): its tokens (only a digest of each), the audit of
    # every change asked through it, and the releases of flow and strategy files
    """
    CREATE TABLE api_tokens (
        name         TEXT PRIMARY KEY,
        role         TEXT NOT NULL,              -- viewer | operator | admin
        digest       TEXT NOT NULL UNIQUE,       -- sha256 of the token; the token is never kept
        created_at   REAL NOT NULL,
        revoked_at   REAL
    );
    CREATE TABLE api_audit (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at     REAL NOT NULL,
        actor  TEXT NOT NULL,                    -- a token's name, or '' when none was valid
        role   TEXT NOT NULL DEFAULT '',
        method TEXT NOT NULL,
        path   TEXT NOT NULL,
        status INTEGER NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'        -- JSON: what changed; never a secret
    );
    CREATE INDEX api_audit_at ON api_audit(at);
    CREATE TABLE releases (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL,              -- flows | strategies
        created_at   REAL NOT NULL,
        created_by   TEXT NOT NULL,
        comment      TEXT NOT NULL DEFAULT '',
        base_version TEXT NOT NULL,              -- the live files' version it was made on
        version      TEXT NOT NULL,              -- the files' version once published
        state        TEXT NOT NULL,  -- staged | refused | publishing | published | rolled_back
        problems     TEXT NOT NULL DEFAULT '[]', -- JSON: file:line:col: message
        changes      TEXT NOT NULL,              -- JSON: file name -> text, or null (removed)
        previous     TEXT,                       -- JSON: the same files before publishing
        published_at REAL,
        published_by TEXT,
        rolled_back_at REAL,
        rolled_back_by TEXT
    );
    CREATE INDEX releases_kind ON releases(kind, id);
    """,
    # 12: recordings fit for a broker (recordings/): what each is (an agent's call, or an IVR
    # proof of an order/transfer with its intent), sealed at rest, kept per kind, legal holds,
    # and every playback or deletion logged
    """
    ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';  -- agent | proof
    ALTER TABLE recordings ADD COLUMN intent_key TEXT;     -- a proof's intents.key
    ALTER TABLE recordings ADD COLUMN sealed_at REAL;      -- sealed: the file is path || '.sealed'
    ALTER TABLE recordings ADD COLUMN sha256 TEXT;         -- of the plain recording
    ALTER TABLE recordings ADD COLUMN bytes INTEGER;
    ALTER TABLE recordings ADD COLUMN retain_until REAL;
    ALTER TABLE recordings ADD COLUMN held_by TEXT;        -- a legal hold: who put it
    ALTER TABLE recordings ADD COLUMN hold_reason TEXT;
    ALTER TABLE recordings ADD COLUMN deleted_at REAL;
    CREATE INDEX recordings_intent ON recordings(intent_key) WHERE intent_key IS NOT NULL;
    CREATE INDEX recordings_account ON recordings(account, started_at);
    CREATE INDEX recordings_agent ON recordings(agent_id, started_at);
    CREATE INDEX recordings_unsealed ON recordings(id) WHERE sealed_at IS NULL
        AND deleted_at IS NULL;
    CREATE INDEX recordings_retention ON recordings(retain_until) WHERE deleted_at IS NULL;
    CREATE TABLE recording_access (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           REAL NOT NULL,
        recording_id INTEGER NOT NULL,
        actor        TEXT NOT NULL,                  -- a token's or supervisor's name, 'retention'
        via          TEXT NOT NULL,                  -- api | console | retention
        action       TEXT NOT NULL,                  -- play | hold | release | delete
        detail       TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX recording_access_rec ON recording_access(recording_id, at);
    """,
    # 13: an order's or transfer's number finds its intent (and its call's recordings) without
    # reading every intent (the recordings' search by reference: years of orders)
    """
    CREATE INDEX intents_order_no ON intents(json_extract(result, '$.order_no'));
    CREATE INDEX intents_transfer_no ON intents(json_extract(result, '$.transfer_no'));
    """,
)
