-- Who processed each event: the webhook, or reconcile.  An event the webhook
-- stored but could not act on (its handler failed, Stripe then stopped
-- retrying) and reconcile processed later is as much a recovery as one the
-- webhook never received; source says only who stored an event first, so the
-- books check counts the events reconcile recovered by this column instead.
-- Events processed before it existed count as processed by whoever stored
-- them, as they were counted until now.  No key: the check reads it once a
-- run, as it read source, and every event would pay for one.
ALTER TABLE stripe_events
  ADD COLUMN processed_by ENUM('webhook','reconcile') NULL AFTER processed_at;
UPDATE stripe_events SET processed_by = source WHERE processed_at IS NOT NULL;
