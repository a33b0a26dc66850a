-- A subscriber changes plan for the next renewal: the period already paid
-- for stays as bought, and the renewal charges the new plan and allocates
-- its credits.
--   subscriptions.renews_as     the plan Stripe will renew the subscription
--                               as (its metadata item, kept from every
--                               ordered copy like cancel_at_period_end);
--                               NULL until a copy says so, read as plan_id
--   subscriptions.plan_since    the period start (Stripe's unix time) of the
--                               invoice that set plan_id: an older invoice
--                               allocated late never sets it back
--   subscription_allocations.plan_id
--                               the plan each invoice paid for (the
--                               subscription's plan for those allocated
--                               before a plan could change)
ALTER TABLE subscriptions
  ADD COLUMN renews_as VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER plan_id,
  ADD COLUMN plan_since BIGINT NOT NULL DEFAULT 0 AFTER renews_as,
  ADD CONSTRAINT fk_subscription_renews_as FOREIGN KEY (renews_as) REFERENCES subscription_plans (id);
ALTER TABLE subscription_allocations
  ADD COLUMN plan_id VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER subscription_id,
  ADD CONSTRAINT fk_allocation_plan FOREIGN KEY (plan_id) REFERENCES subscription_plans (id);
UPDATE subscription_allocations a JOIN subscriptions s ON s.id = a.subscription_id
   SET a.plan_id = s.plan_id WHERE a.plan_id IS NULL;
