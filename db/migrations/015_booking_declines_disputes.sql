-- A declined card keeps the booking's hold: the booking stays awaiting
-- payment until booking_hold_minutes have passed, and the customer may try
-- another card meanwhile.  The payment records the last attempt that failed
-- (Stripe's message), and goes back to succeeded if a later card pays.
ALTER TABLE payments
  ADD COLUMN last_payment_error VARCHAR(500) NULL AFTER status,
  ADD COLUMN failed_attempts INT UNSIGNED NOT NULL DEFAULT 0 AFTER last_payment_error,
  ADD COLUMN last_failed_charge VARCHAR(255) NULL AFTER failed_attempts;

-- A dispute on an expert booking's payment: the booking is disputed (open)
-- and owed to nobody until it closes; won makes it owed again (a manual
-- payout), lost reverses its payment like a full refund.  Only forward:
-- NULL -> open -> won | lost.  The disputes row names the booking.
ALTER TABLE bookings
  ADD COLUMN dispute_status ENUM('open','won','lost') NULL;
ALTER TABLE disputes
  ADD COLUMN booking_id BIGINT UNSIGNED NULL AFTER stripe_session_id;

-- Idempotency-Keys of a user's Checkout Sessions and Stripe customer are
-- derived from the user row and this random value, written once when first
-- needed, so a database restored from a backup (where a user id can be
-- given again) never sends a key Stripe already saw for another request.
ALTER TABLE users ADD COLUMN stripe_nonce VARCHAR(64) NOT NULL DEFAULT '';
