-- Catalog: categories, products, variants, and the product search index.
-- Times are Unix nanoseconds (UTC); money is integer minor units.

CREATE TABLE categories (
    id          INTEGER PRIMARY KEY,
    parent_id   INTEGER REFERENCES categories (id),
    slug        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    position    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX categories_parent ON categories (parent_id, position);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL CHECK (status IN ('draft', 'active')),
    category_id INTEGER NOT NULL REFERENCES categories (id),
    images      TEXT    NOT NULL DEFAULT '[]', -- JSON array of catalog.Image
    attributes  TEXT    NOT NULL DEFAULT '[]', -- JSON array of catalog.Attribute
    -- price_from, currency and in_stock summarize the variants so listings
    -- never join them. The variants_summary_* triggers below keep them right
    -- in the same transaction as any variant change.
    price_from  INTEGER NOT NULL DEFAULT 0,
    currency    TEXT    NOT NULL DEFAULT '',
    in_stock    INTEGER NOT NULL DEFAULT 0 CHECK (in_stock IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- One index per listing sort, so a page is an index range scan that stops
-- after Limit+1 rows whatever the cursor position.
CREATE INDEX products_status_created ON products (status, created_at, id);
CREATE INDEX products_status_price ON products (status, price_from, id);
CREATE INDEX products_category ON products (category_id, status, created_at, id);

CREATE TABLE variants (
    id         INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sku        TEXT    NOT NULL UNIQUE,
    options    TEXT    NOT NULL DEFAULT '[]', -- JSON array of catalog.Option
    price      INTEGER NOT NULL CHECK (price >= 0),
    currency   TEXT    NOT NULL,
    on_hand    INTEGER NOT NULL,
    reserved   INTEGER NOT NULL DEFAULT 0,
    sold       INTEGER NOT NULL DEFAULT 0,
    position   INTEGER NOT NULL DEFAULT 0,
    -- The last line of defence against overselling: whatever code path
    -- reserves or sells, the database refuses more than is on hand.
    CHECK (on_hand >= 0 AND reserved >= 0 AND sold >= 0 AND reserved + sold <= on_hand)
) STRICT;

CREATE INDEX variants_product ON variants (product_id, position, id);

-- Product summary upkeep. price_from is the cheapest variant's price (and its
-- currency); in_stock is whether any variant has units available. A product
-- without variants has price_from 0 and is out of stock.
CREATE TRIGGER variants_summary_insert AFTER INSERT ON variants
BEGIN
    UPDATE products SET
        price_from = coalesce((SELECT min(price) FROM variants WHERE product_id = new.product_id), 0),
        currency = coalesce((SELECT currency FROM variants WHERE product_id = new.product_id
                             ORDER BY price, position, id LIMIT 1), ''),
        in_stock = EXISTS (SELECT 1 FROM variants WHERE product_id = new.product_id
                           AND on_hand > reserved + sold)
    WHERE id = new.product_id;
END;

-- Reserving or selling a unit only touches the product when it changes
-- whether the variant is available, so checkout does not rewrite the product
-- row on every sale.
CREATE TRIGGER variants_summary_update AFTER UPDATE OF price, currency, on_hand, reserved, sold ON variants
WHEN old.price IS NOT new.price
  OR old.currency IS NOT new.currency
  OR (old.on_hand > old.reserved + old.sold) IS NOT (new.on_hand > new.reserved + new.sold)
BEGIN
    UPDATE products SET
        price_from = coalesce((SELECT min(price) FROM variants WHERE product_id = new.product_id), 0),
        currency = coalesce((SELECT currency FROM variants WHERE product_id = new.product_id
                             ORDER BY price, position, id LIMIT 1), ''),
        in_stock = EXISTS (SELECT 1 FROM variants WHERE product_id = new.product_id
                           AND on_hand > reserved + sold)
    WHERE id = new.product_id;
END;

CREATE TRIGGER variants_summary_delete AFTER DELETE ON variants
BEGIN
    UPDATE products SET
        price_from = coalesce((SELECT min(price) FROM variants WHERE product_id = old.product_id), 0),
        currency = coalesce((SELECT currency FROM variants WHERE product_id = old.product_id
                             ORDER BY price, position, id LIMIT 1), ''),
        in_stock = EXISTS (SELECT 1 FROM variants WHERE product_id = old.product_id
                           AND on_hand > reserved + sold)
    WHERE id = old.product_id;
END;

-- Full-text search over product name, description and category name. The
-- table is contentless (the text already lives in products and categories)
-- with contentless_delete so rows can be removed by rowid alone; its rowid is
-- products.id. The triggers below keep it in step with both tables.
CREATE VIRTUAL TABLE product_search USING fts5 (
    name,
    description,
    category,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER products_search_insert AFTER INSERT ON products
BEGIN
    INSERT INTO product_search (rowid, name, description, category)
    VALUES (new.id, new.name, new.description,
            (SELECT name FROM categories WHERE id = new.category_id));
END;

CREATE TRIGGER products_search_update AFTER UPDATE OF name, description, category_id ON products
WHEN old.name IS NOT new.name
  OR old.description IS NOT new.description
  OR old.category_id IS NOT new.category_id
BEGIN
    DELETE FROM product_search WHERE rowid = old.id;
    INSERT INTO product_search (rowid, name, description, category)
    VALUES (new.id, new.name, new.description,
            (SELECT name FROM categories WHERE id = new.category_id));
END;

CREATE TRIGGER products_search_delete AFTER DELETE ON products
BEGIN
    DELETE FROM product_search WHERE rowid = old.id;
END;

CREATE TRIGGER categories_search_rename AFTER UPDATE OF name ON categories
WHEN old.name IS NOT new.name
BEGIN
    DELETE FROM product_search WHERE rowid IN (SELECT id FROM products WHERE category_id = new.id);
    INSERT INTO product_search (rowid, name, description, category)
    SELECT id, name, description, new.name FROM products WHERE category_id = new.id;
END;
