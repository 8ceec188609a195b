-- "Notify me" subscriptions of drops, and the ledger of the worker's
-- mailing jobs.

CREATE TABLE notify_subscriptions (
    id                INTEGER PRIMARY KEY,
    drop_id           TEXT    NOT NULL REFERENCES drops (id),
    email             TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'confirmed', 'unsubscribed')),
    confirm_hash      BLOB,             -- SHA-256 of the latest confirmation token
    confirm_sent_at   INTEGER NOT NULL, -- when that token was issued
    unsubscribe_token TEXT    NOT NULL UNIQUE,
    created_at        INTEGER NOT NULL,
    confirmed_at      INTEGER,
    unsubscribed_at   INTEGER,
    UNIQUE (drop_id, email)
) STRICT;
CREATE UNIQUE INDEX notify_subscriptions_confirm ON notify_subscriptions (confirm_hash) WHERE confirm_hash IS NOT NULL;

CREATE TABLE mail_jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    drop_id       TEXT    NOT NULL REFERENCES drops (id),
    run_at        INTEGER NOT NULL,
    paused        INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    started_at    INTEGER,
    finished_at   INTEGER,
    recipients    INTEGER NOT NULL DEFAULT 0,
    last_id       INTEGER NOT NULL DEFAULT 0, -- recipients have IDs up to this
    next_id       INTEGER NOT NULL DEFAULT 0, -- where the next new batch starts
    read_position TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    UNIQUE (kind, drop_id)
) STRICT;

-- A batch is the subscription IDs [from_id, to_id) of a job, leased by one
-- worker at a time.
CREATE TABLE mail_job_batches (
    job_id      INTEGER NOT NULL REFERENCES mail_jobs (id),
    from_id     INTEGER NOT NULL,
    to_id       INTEGER NOT NULL,
    owner       TEXT    NOT NULL,
    lease_until INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    PRIMARY KEY (job_id, from_id)
) STRICT;

-- One row per recipient a job has finished with, written right after the
-- mail server's reply: what makes a resumed job skip them.
CREATE TABLE mail_job_deliveries (
    job_id          INTEGER NOT NULL REFERENCES mail_jobs (id),
    subscription_id INTEGER NOT NULL,
    outcome         TEXT    NOT NULL CHECK (outcome IN ('sent', 'failed')),
    at              INTEGER NOT NULL,
    PRIMARY KEY (job_id, subscription_id)
) STRICT;
