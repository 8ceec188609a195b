-- "Notify me" subscriptions of drops, and the ledger of the worker's
-- mailing jobs.

CREATE TABLE notify_subscriptions (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drop_id           text        NOT NULL REFERENCES drops (id),
    email             text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('pending', 'confirmed', 'unsubscribed')),
    confirm_hash      bytea,                -- SHA-256 of the latest confirmation token
    confirm_sent_at   timestamptz NOT NULL, -- when that token was issued
    unsubscribe_token text        NOT NULL UNIQUE,
    created_at        timestamptz NOT NULL,
    confirmed_at      timestamptz,
    unsubscribed_at   timestamptz,
    UNIQUE (drop_id, email)
);
CREATE UNIQUE INDEX notify_subscriptions_confirm ON notify_subscriptions (confirm_hash) WHERE confirm_hash IS NOT NULL;

CREATE TABLE mail_jobs (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text        NOT NULL,
    drop_id       text        NOT NULL REFERENCES drops (id),
    run_at        timestamptz NOT NULL,
    paused        boolean     NOT NULL DEFAULT false,
    started_at    timestamptz,
    finished_at   timestamptz,
    recipients    bigint      NOT NULL DEFAULT 0,
    last_id       bigint      NOT NULL DEFAULT 0, -- recipients have IDs up to this
    next_id       bigint      NOT NULL DEFAULT 0, -- where the next new batch starts
    read_position text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    UNIQUE (kind, drop_id)
);

-- A batch is the subscription IDs [from_id, to_id) of a job, leased by one
-- worker at a time.
CREATE TABLE mail_job_batches (
    job_id      bigint      NOT NULL REFERENCES mail_jobs (id),
    from_id     bigint      NOT NULL,
    to_id       bigint      NOT NULL,
    owner       text        NOT NULL,
    lease_until timestamptz NOT NULL,
    done        boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, from_id)
);

-- One row per recipient a job has finished with, written right after the
-- mail server's reply: what makes a resumed job skip them.
CREATE TABLE mail_job_deliveries (
    job_id          bigint      NOT NULL REFERENCES mail_jobs (id),
    subscription_id bigint      NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('sent', 'failed')),
    at              timestamptz NOT NULL,
    PRIMARY KEY (job_id, subscription_id)
);
