-- What happened at a drop, for its report: events the waiting room and
-- the storefront record (admitted with the time in line, told sold out,
-- refused with a reason, added to a cart, held back by the limit, lost),
-- and the last copy of the line's own counters.

CREATE TABLE drop_events (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drop_id  text        NOT NULL,
    kind     text        NOT NULL,
    visitor  text        NOT NULL DEFAULT '',
    reason   text        NOT NULL DEFAULT '',
    quantity bigint      NOT NULL DEFAULT 0,
    wait_ms  bigint      NOT NULL DEFAULT 0,
    at       timestamptz NOT NULL
);
CREATE INDEX drop_events_drop ON drop_events (drop_id, kind, reason);

CREATE TABLE drop_lines (
    drop_id   text        PRIMARY KEY,
    at        timestamptz NOT NULL,
    pre_queue bigint      NOT NULL,
    joined    bigint      NOT NULL,
    admitted  bigint      NOT NULL,
    no_shows  bigint      NOT NULL
);
