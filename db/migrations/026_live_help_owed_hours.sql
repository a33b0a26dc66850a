-- Hours a refund (or a lost dispute) of a Live Help purchase could not take
-- back because they were booked into slots.  When a slot is cancelled and
-- its hour comes back, the refund takes that hour (hours_refunded + 1,
-- hours_owed - 1, hours_total - 1) instead of the buyer's pool, so a
-- refunded hour is never bookable again.
ALTER TABLE live_help_purchases
  ADD COLUMN hours_owed INT UNSIGNED NOT NULL DEFAULT 0 AFTER hours_refunded;
