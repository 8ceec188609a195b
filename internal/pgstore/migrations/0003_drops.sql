-- Drops: limited releases with allocated stock and a per-customer limit.

CREATE TABLE drops (
    id                 text        PRIMARY KEY,
    slug               text        NOT NULL UNIQUE,
    name               text        NOT NULL,
    description        text        NOT NULL DEFAULT '',
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz,
    per_customer_limit bigint      NOT NULL CHECK (per_customer_limit > 0),
    room               jsonb       NOT NULL, -- drop.Room
    closed             boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL
);

CREATE TABLE drop_items (
    drop_id   text   NOT NULL REFERENCES drops (id),
    sku       text   NOT NULL REFERENCES variants (sku),
    allocated bigint NOT NULL CHECK (allocated > 0),
    PRIMARY KEY (drop_id, sku)
);
CREATE INDEX drop_items_sku ON drop_items (sku);

-- What each buyer holds of a drop, per order: counted against the
-- per-customer limit while the order is pending or paid, removed when the
-- order fails or expires so the buyer may try again.
CREATE TABLE drop_purchases (
    order_id text   NOT NULL REFERENCES orders (id),
    drop_id  text   NOT NULL REFERENCES drops (id),
    buyer    text   NOT NULL,
    quantity bigint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, drop_id)
);
CREATE INDEX drop_purchases_buyer ON drop_purchases (drop_id, buyer);
