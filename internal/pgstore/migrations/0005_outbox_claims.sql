-- Which order an outbox event announces, so the expiry sweep can leave an
-- order alone until its event has reached the bus; and a relay's claim on
-- an event (who, until when), so the relays of several processes split
-- the outbox between them instead of all publishing the same rows.

ALTER TABLE outbox ADD COLUMN order_id text;
ALTER TABLE outbox ADD COLUMN claimed_by text;
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;

-- Only orders still waiting for payment need it: their creation events,
-- none older than the oldest such order (which spares parsing the rest).
UPDATE outbox SET order_id = convert_from(data, 'UTF8')::jsonb ->> 'order_id'
WHERE subject = 'surge.order.created'
  AND created_at >= (SELECT min(created_at) FROM orders WHERE status = 'pending_payment')
  AND convert_from(data, 'UTF8')::jsonb ->> 'order_id' IN (SELECT id FROM orders WHERE status = 'pending_payment');

CREATE INDEX outbox_order_created ON outbox (order_id) WHERE subject = 'surge.order.created';
