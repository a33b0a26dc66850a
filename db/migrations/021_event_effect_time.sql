-- When an event's handler took effect: stamped inside the handler's own
-- transaction (the first one, if it has several), where processed_at is
-- set in a transaction of its own afterwards.  A local action can commit
-- between the two (credits spent from a renewal just allocated), and the
-- replay of the books must place the event before it.  NULL for events no
-- handler acted on, and for those handled before this column existed.
ALTER TABLE stripe_events ADD COLUMN effect_at DATETIME(6) NULL AFTER processed_at;
