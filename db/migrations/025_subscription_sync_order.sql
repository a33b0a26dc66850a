-- The order of Stripe's copies of a subscription (src/billing/
-- product_subscription.c): whoever is about to fetch or change one takes
-- the next sync_ticket first, and cancel_at_period_end is written only from
-- a copy whose ticket is newer than flag_ticket, the ticket of the copy it
-- came from.  So a resumed subscription (cancel_at_period_end back to 0) is
-- not cancelled again by an older copy written late, nor the other way.
ALTER TABLE subscriptions
  ADD COLUMN sync_ticket BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN flag_ticket BIGINT UNSIGNED NOT NULL DEFAULT 0;
