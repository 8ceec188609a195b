-- Buy path: customers, sessions, carts, orders, stock reservations,
-- idempotency records and the transactional outbox.

CREATE TABLE customers (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE, -- normalized to lower case by the app
    name          TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- A session row is keyed by the SHA-256 of the cookie token, so a copy of
-- the database does not hand out live sessions.
CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (id),
    cart_id     TEXT    NOT NULL DEFAULT '',
    csrf        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE carts (
    id          TEXT    PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX carts_customer ON carts (customer_id);

CREATE TABLE cart_items (
    cart_id  TEXT    NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    sku      TEXT    NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    added_at INTEGER NOT NULL,
    PRIMARY KEY (cart_id, sku)
) STRICT;

CREATE TABLE orders (
    id               TEXT    PRIMARY KEY,
    number           INTEGER NOT NULL UNIQUE,
    customer_id      INTEGER REFERENCES customers (id),
    email            TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending_payment', 'paid', 'fulfilled', 'payment_failed', 'cancelled', 'expired')),
    currency         TEXT    NOT NULL,
    subtotal         INTEGER NOT NULL,
    tax              INTEGER NOT NULL,
    shipping         INTEGER NOT NULL,
    total            INTEGER NOT NULL,
    shipping_address TEXT    NOT NULL, -- JSON order.Address
    payment_method   TEXT    NOT NULL, -- provider token, never a card number
    card_last4       TEXT    NOT NULL DEFAULT '',
    reserved_until   INTEGER NOT NULL,
    -- Set when a worker starts taking payment; the expiry sweep leaves such
    -- orders alone so stock is never released under a capture in flight.
    payment_claimed_at INTEGER,
    confirmation_sent_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE INDEX orders_pending ON orders (status, reserved_until);

CREATE TABLE order_lines (
    order_id      TEXT    NOT NULL REFERENCES orders (id),
    position      INTEGER NOT NULL,
    sku           TEXT    NOT NULL,
    product_name  TEXT    NOT NULL,
    variant_title TEXT    NOT NULL,
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    unit_price    INTEGER NOT NULL,
    line_total    INTEGER NOT NULL,
    PRIMARY KEY (order_id, position)
) STRICT;

-- Every status change, in order.
CREATE TABLE order_transitions (
    id          INTEGER PRIMARY KEY,
    order_id    TEXT    NOT NULL REFERENCES orders (id),
    from_status TEXT    NOT NULL,
    to_status   TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX order_transitions_order ON order_transitions (order_id, id);

-- Stock held for an order: 'held' counts in variants.reserved; 'committed'
-- has moved to variants.sold; 'released' has gone back to available.
CREATE TABLE reservations (
    order_id   TEXT    NOT NULL REFERENCES orders (id),
    sku        TEXT    NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    status     TEXT    NOT NULL CHECK (status IN ('held', 'committed', 'released')),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (order_id, sku)
) STRICT;
CREATE INDEX reservations_held ON reservations (status, expires_at);

-- Checkout idempotency: one row per (owner, key). The request hash tells a
-- retry (same body: same answer) from a misuse (other body: 422).
CREATE TABLE idempotency_keys (
    owner        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    order_id     TEXT    NOT NULL REFERENCES orders (id),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
) STRICT;

-- Transactional outbox: written in the same transaction as the change it
-- announces, relayed to the event bus, marked when published.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    subject      TEXT    NOT NULL,
    data         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
) STRICT;
CREATE INDEX outbox_pending ON outbox (published_at, seq);
