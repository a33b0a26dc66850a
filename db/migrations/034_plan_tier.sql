-- A plan may include the premium (firewall) tier: Pro does, so a subscriber
-- can buy Voice AI Therapy without an admin granting the tier.  The tier a
-- user's plans give is kept on the user's row (plan_tier), next to the tier
-- an admin grants (tier); a user has the premium tier if either says so.
-- Every write of a subscription's row writes the user's plan_tier in the same
-- transaction (plan_tier_sync in src/billing/product_subscription.c), and
-- moves plan_changes, so the user's row is written every time and two
-- changes of one user's subscriptions on two Galera nodes conflict instead
-- of each reading the other's old status.
ALTER TABLE subscription_plans
  ADD COLUMN tier ENUM('free','firewall') NOT NULL DEFAULT 'free';
UPDATE subscription_plans SET tier = 'firewall' WHERE id = 'pro';

ALTER TABLE users
  ADD COLUMN plan_tier ENUM('free','firewall') NOT NULL DEFAULT 'free',
  ADD COLUMN plan_changes BIGINT UNSIGNED NOT NULL DEFAULT 0;

-- Stripe's statuses in which a plan's benefits stand: paid, in its trial,
-- or its renewal being retried (past_due) before Stripe gives up
-- (SUBSCRIPTION_LIVE and PLAN_GIVES_PREMIUM in src/billing/products.h).
UPDATE users u SET u.plan_tier = 'firewall'
 WHERE EXISTS (SELECT 1 FROM subscriptions s
   JOIN subscription_plans p ON p.id = s.plan_id
   WHERE s.user_id = u.id AND p.tier = 'firewall'
     AND s.status IN ('active', 'trialing', 'past_due'));
