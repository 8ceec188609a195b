-- Drops: limited releases with allocated stock and a per-customer limit.

CREATE TABLE drops (
    id                 TEXT    PRIMARY KEY,
    slug               TEXT    NOT NULL UNIQUE,
    name               TEXT    NOT NULL,
    description        TEXT    NOT NULL DEFAULT '',
    starts_at          INTEGER NOT NULL,
    ends_at            INTEGER,
    per_customer_limit INTEGER NOT NULL CHECK (per_customer_limit > 0),
    room               TEXT    NOT NULL, -- JSON drop.Room
    closed             INTEGER NOT NULL DEFAULT 0 CHECK (closed IN (0, 1)),
    created_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE drop_items (
    drop_id   TEXT    NOT NULL REFERENCES drops (id),
    sku       TEXT    NOT NULL REFERENCES variants (sku),
    allocated INTEGER NOT NULL CHECK (allocated > 0),
    PRIMARY KEY (drop_id, sku)
) STRICT;
CREATE INDEX drop_items_sku ON drop_items (sku);

-- What each buyer holds of a drop, per order: counted against the
-- per-customer limit while the order is pending or paid, removed when the
-- order fails or expires so the buyer may try again.
CREATE TABLE drop_purchases (
    order_id TEXT    NOT NULL REFERENCES orders (id),
    drop_id  TEXT    NOT NULL REFERENCES drops (id),
    buyer    TEXT    NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, drop_id)
) STRICT;
CREATE INDEX drop_purchases_buyer ON drop_purchases (drop_id, buyer);
