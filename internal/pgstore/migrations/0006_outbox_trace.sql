-- The W3C traceparent of the span that wrote an outbox event (NULL when
-- tracing was off): the relay publishes the event inside that trace, so
-- a checkout and the order's processing on a worker are one trace.

ALTER TABLE outbox ADD COLUMN traceparent TEXT;
