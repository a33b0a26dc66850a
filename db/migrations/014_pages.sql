-- What the journey pages need: Live Help cancellation and subscription periods.

-- Live Help: a booked slot can be cancelled, and its hour given back, until
-- this many hours before it starts (POST /api/live-help-hour/{id}/cancel).
INSERT INTO platform_settings (name, int_value) VALUES ('live_help_cancel_hours', 24)
ON DUPLICATE KEY UPDATE int_value = int_value;

-- Subscriptions as Stripe reports them: when the paid period ends (the next
-- renewal, or the end date once cancelled at period end) and whether it is
-- set to end then.  Kept from the retrieved subscription on every paid
-- invoice, on customer.subscription.updated/deleted and on cancelling.
ALTER TABLE subscriptions
  ADD COLUMN IF NOT EXISTS current_period_end DATETIME NULL AFTER status,
  ADD COLUMN IF NOT EXISTS cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0 AFTER current_period_end;
