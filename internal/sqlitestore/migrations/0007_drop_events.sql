-- What happened at a drop, for its report: events the waiting room and
-- the storefront record (admitted with the time in line, told sold out,
-- refused with a reason, added to a cart, held back by the limit, lost),
-- and the last copy of the line's own counters.

CREATE TABLE drop_events (
    id       INTEGER PRIMARY KEY,
    drop_id  TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    visitor  TEXT    NOT NULL DEFAULT '',
    reason   TEXT    NOT NULL DEFAULT '',
    quantity INTEGER NOT NULL DEFAULT 0,
    wait_ms  INTEGER NOT NULL DEFAULT 0,
    at       INTEGER NOT NULL -- Unix nanoseconds
) STRICT;
CREATE INDEX drop_events_drop ON drop_events (drop_id, kind, reason);

CREATE TABLE drop_lines (
    drop_id   TEXT    PRIMARY KEY,
    at        INTEGER NOT NULL, -- Unix nanoseconds
    pre_queue INTEGER NOT NULL,
    joined    INTEGER NOT NULL,
    admitted  INTEGER NOT NULL,
    no_shows  INTEGER NOT NULL
) STRICT;
