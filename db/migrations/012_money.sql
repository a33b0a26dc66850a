-- Marketplace money rules.
--
-- Voice AI Therapy: one guard row per user.  Starting, ending and expiring a
-- session and taking minutes back on a refund all write this row first
-- (version = version + 1), so they run one after another for a user and each
-- sees what the previous one committed; no read lock is relied on.
CREATE TABLE voice_therapy_guards (
  user_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  version     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  CONSTRAINT fk_voice_guard_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

-- Voice minutes are charged by the server's clock: the elapsed time between
-- start and end, capped at the minutes available at start; the client's
-- secondsUsed (still recorded in seconds_used) may lower that by at most this
-- grace.  A session still open after its available minutes plus the grace is
-- ended by the server and charged in full.
INSERT INTO platform_settings (name, int_value) VALUES ('voice_grace_seconds', 30);

ALTER TABLE voice_therapy_sessions
  ADD COLUMN seconds_charged INT UNSIGNED NULL AFTER seconds_used,
  ADD COLUMN ended_by ENUM('user','server') NULL AFTER ended_at,
  ADD KEY ix_voice_session_open (status, started_at);

-- Cancellation policy: a full refund up to cancel_full_refund_hours before
-- the start, cancel_late_refund_bps of the price (half up) after that,
-- nothing once the booking has started.  An expert may set their own; NULL
-- takes the platform's.  At most booking_max_unpaid_holds bookings per user
-- may be awaiting payment (and holding a slot) at a time.
INSERT INTO platform_settings (name, int_value) VALUES
  ('cancel_full_refund_hours', 24),
  ('cancel_late_refund_bps', 5000),
  ('booking_max_unpaid_holds', 3);

ALTER TABLE experts
  ADD COLUMN cancel_full_refund_hours INT UNSIGNED NULL,
  ADD COLUMN cancel_late_refund_bps INT UNSIGNED NULL,
  ADD CONSTRAINT ck_experts_cancel_bps CHECK (cancel_late_refund_bps <= 10000);

-- cancel_refund_cents is what the cancellation decided to give back, written
-- before Stripe is asked, so a retried or racing cancel refunds the same.
-- The refunded amount is split between the platform's fee and the expert's
-- payout in proportion to the price; the expert is owed payout_cents minus
-- payout_refunded_cents.
ALTER TABLE bookings
  ADD COLUMN cancel_refund_cents BIGINT UNSIGNED NULL,
  ADD COLUMN refunded_cents BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN fee_refunded_cents BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN payout_refunded_cents BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD CONSTRAINT ck_bookings_refund CHECK (fee_refunded_cents + payout_refunded_cents = refunded_cents
    AND fee_refunded_cents <= platform_fee_cents AND payout_refunded_cents <= payout_cents
    AND cancel_refund_cents <= price_cents);

ALTER TABLE payments
  MODIFY status ENUM('pending','succeeded','failed','refunded','partially_refunded') NOT NULL DEFAULT 'pending';

-- Written first by every booking hold of a user: holds of one user are
-- counted one at a time.
CREATE TABLE booking_hold_guards (
  user_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  version     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  CONSTRAINT fk_booking_hold_guard_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

-- Refunds recorded before: all were full refunds.
UPDATE bookings b JOIN payments p ON p.booking_id = b.id JOIN refunds r ON r.payment_id = p.id
   SET b.refunded_cents = b.price_cents, b.fee_refunded_cents = b.platform_fee_cents,
       b.payout_refunded_cents = b.payout_cents
 WHERE p.status = 'refunded' AND r.amount_cents = b.price_cents;

-- Subscriptions keep Stripe's status (active, past_due, canceled; canceled is
-- final), the end of the paid period (only ever later) and whether they end
-- there.  A refunded invoice takes back its allocation's credits, never more
-- than the balance (what was spent stays spent).
ALTER TABLE subscriptions
  ADD COLUMN current_period_end DATETIME NULL AFTER status,
  ADD COLUMN cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0 AFTER current_period_end,
  ADD COLUMN updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6);

-- version is written first by every reversal of the allocation, so two
-- refunds of one invoice take back credits one after the other.
ALTER TABLE subscription_allocations
  ADD COLUMN credits_reversed BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN version BIGINT UNSIGNED NOT NULL DEFAULT 0;

-- Disputes: charge.dispute.created freezes what the disputed payment granted
-- and is still unspent (frozen units cannot be spent); charge.dispute.closed
-- releases them when won, and when lost takes back what it can like a
-- refund (never below what was used) and records the rest as a loss.
ALTER TABLE user_credits ADD COLUMN frozen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE voice_therapy_credits
  ADD COLUMN minutes_frozen INT UNSIGNED NOT NULL DEFAULT 0,
  ADD CONSTRAINT ck_voice_credit_frozen CHECK (minutes_frozen <= minutes_remaining);
ALTER TABLE user_live_help_totals
  ADD COLUMN hours_frozen INT NOT NULL DEFAULT 0,
  ADD CONSTRAINT ck_live_help_frozen CHECK (hours_frozen >= 0 AND hours_used + hours_frozen <= hours_total);

ALTER TABLE disputes
  ADD COLUMN user_id BIGINT UNSIGNED NULL,
  ADD COLUMN stripe_session_id VARCHAR(255) NULL,
  ADD COLUMN product VARCHAR(32) NULL,
  ADD COLUMN units_frozen BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN units_reversed BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN units_lost BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN closed_at DATETIME(6) NULL;

-- One row per step of a dispute (freeze, release, reverse), once each.
CREATE TABLE dispute_steps (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  stripe_dispute_id  VARCHAR(255) NOT NULL,
  step               ENUM('freeze','release','reverse') NOT NULL,
  product            VARCHAR(32) NOT NULL,
  units              BIGINT NOT NULL,
  units_lost         BIGINT NOT NULL DEFAULT 0,
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_dispute_step (stripe_dispute_id, step)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Idempotency keys sent to Stripe are derived from our record and a random
-- value stored with it when it is created (rows made before keep '' and
-- their earlier keys).
ALTER TABLE bookings ADD COLUMN stripe_nonce VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN stripe_nonce VARCHAR(64) NOT NULL DEFAULT '';

-- Stripe Connect (Express): an expert's connected account and whether Stripe
-- lets it take charges and receive payouts (kept from account.updated).  A
-- booking with an onboarded expert is a destination charge: destination_account
-- is set at creation, the transfer and application fee ids once it is paid;
-- it is never owed a manual payout.
ALTER TABLE experts
  ADD COLUMN stripe_account_id VARCHAR(255) NULL,
  ADD COLUMN charges_enabled TINYINT(1) NOT NULL DEFAULT 0,
  ADD COLUMN payouts_enabled TINYINT(1) NOT NULL DEFAULT 0,
  ADD COLUMN stripe_nonce VARCHAR(64) NOT NULL DEFAULT '',
  ADD UNIQUE KEY uq_experts_stripe_account (stripe_account_id);
ALTER TABLE bookings
  ADD COLUMN destination_account VARCHAR(255) NULL,
  ADD COLUMN stripe_transfer_id VARCHAR(255) NULL,
  ADD COLUMN stripe_application_fee_id VARCHAR(255) NULL;
ALTER TABLE refunds
  ADD COLUMN stripe_transfer_reversal_id VARCHAR(255) NULL;

-- The expert's guard row: every booking hold, payment and payout of an
-- expert writes it first (booking_version + 1) instead of a read lock.
ALTER TABLE experts ADD COLUMN booking_version BIGINT UNSIGNED NOT NULL DEFAULT 0;
