-- Functions that let PlaceOrder send a whole order as one pipelined batch,
-- committed by the server without a round trip back to the shop: a check
-- that fails raises an error (aborting the batch's implicit transaction)
-- instead of returning a row count the shop would have to look at before
-- deciding to commit. A hot SKU's row is locked from its UPDATE to the
-- COMMIT; with nothing between them but the server's own work, the next
-- buyer waits for that and not for a network round trip and the shop's
-- scheduler.

-- reserve_lines reserves qtys[i] units of skus[i] for each i, in the order
-- given (the caller sorts them, so two orders lock shared rows in the same
-- order). If any line is short it raises SQLSTATE SU001 with DETAIL a JSON
-- array of every short SKU, in the order given, after trying them all.
CREATE FUNCTION reserve_lines(skus text[], qtys bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    short text[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(skus, 1), 0) LOOP
        UPDATE variants SET reserved = reserved + qtys[i]
        WHERE sku = skus[i] AND on_hand - reserved - sold >= qtys[i];
        IF NOT FOUND THEN
            short := short || skus[i];
        END IF;
    END LOOP;
    IF array_length(short, 1) > 0 THEN
        RAISE EXCEPTION 'sold out' USING ERRCODE = 'SU001', DETAIL = to_json(short)::text;
    END IF;
END
$$;

-- record_drop_purchase records that the order takes qty units of a drop
-- for buyer, or raises SQLSTATE SU002 with DETAIL the units the buyer
-- already holds when that would pass the per-customer limit. The caller
-- holds the (drop, buyer) advisory lock, so the sum counts every order of
-- the buyer's that committed before.
CREATE FUNCTION record_drop_purchase(p_order text, p_drop text, p_buyer text, qty bigint, lim bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    held bigint;
BEGIN
    SELECT coalesce(sum(quantity), 0) INTO held FROM drop_purchases WHERE drop_id = p_drop AND buyer = p_buyer;
    IF held + qty > lim THEN
        RAISE EXCEPTION 'over the per-customer limit' USING ERRCODE = 'SU002', DETAIL = held::text;
    END IF;
    INSERT INTO drop_purchases (order_id, drop_id, buyer, quantity) VALUES (p_order, p_drop, p_buyer, qty);
END
$$;

-- settle_held marks the orders' held reservations new_status ('released'
-- or 'committed') and moves their units out of variants.reserved (into
-- sold when committed), returning how many reservations it settled.
-- Marking first locks the reservation rows, so a redelivered event running
-- alongside finds them settled and does nothing; variants are then updated
-- in SKU byte order, as PlaceOrder reserves them, so the two never
-- deadlock.
CREATE FUNCTION settle_held(ids text[], new_status text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    skus text[];
    qtys bigint[];
    n    integer;
BEGIN
    WITH marked AS (
        UPDATE reservations SET status = new_status
        WHERE order_id = ANY(ids) AND status = 'held'
        RETURNING sku, quantity
    ), per_sku AS (
        SELECT sku, sum(quantity)::bigint AS qty, count(*) AS c FROM marked GROUP BY sku
    )
    SELECT array_agg(sku ORDER BY sku COLLATE "C"), array_agg(qty ORDER BY sku COLLATE "C"), coalesce(sum(c), 0)
    INTO skus, qtys, n FROM per_sku;
    FOR i IN 1 .. coalesce(array_length(skus, 1), 0) LOOP
        UPDATE variants SET reserved = reserved - qtys[i],
            sold = sold + CASE WHEN new_status = 'committed' THEN qtys[i] ELSE 0 END
        WHERE sku = skus[i];
    END LOOP;
    RETURN n;
END
$$;

-- commit_stock turns a paid order's held reservations into sold units and
-- returns how many it settled: one statement, so a hot SKU's row is
-- locked only until the commit that follows it on the server. It raises
-- SU003 for an unknown order and SU004 (DETAIL the status) for one that
-- is not paid.
CREATE FUNCTION commit_stock(p_id text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    SELECT status INTO st FROM orders WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such order' USING ERRCODE = 'SU003';
    END IF;
    IF st NOT IN ('paid', 'fulfilled') THEN
        RAISE EXCEPTION 'order not paid' USING ERRCODE = 'SU004', DETAIL = st;
    END IF;
    RETURN settle_held(ARRAY[p_id], 'committed');
END
$$;
