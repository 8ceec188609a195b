-- The order link token: whoever holds it may open the order without a
-- session, so a guest's access to their own order never depends on a
-- session store that may lose it. Orders placed before it have none ('')
-- and open for their customer or placing session only.
ALTER TABLE orders ADD COLUMN access_token text NOT NULL DEFAULT '';
