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
