-- A booking keeps the cancellation policy it was made under: the one its
-- schedule page showed when the customer picked the time (the expert's own,
-- else the platform's).  A cancel, its quote and a move read the booking's,
-- so an expert or the platform changing theirs later changes only the
-- bookings made after.  Bookings made before are given the policy in force
-- now, which is what their cancels have read until now.  The columns stay
-- NULL-able: during a rolling deploy (scripts/cluster.sh deploy) the
-- responders not restarted yet still insert bookings without them, and a
-- booking without one reads its expert's policy, as before
-- (BOOKING_FULL_REFUND_HOURS).
ALTER TABLE bookings
  ADD COLUMN full_refund_hours INT UNSIGNED NULL AFTER payout_cents,
  ADD COLUMN late_refund_bps INT UNSIGNED NULL AFTER full_refund_hours,
  ADD CONSTRAINT ck_bookings_late_refund_bps CHECK (late_refund_bps <= 10000);
UPDATE bookings b JOIN experts e ON e.id = b.expert_id
   SET b.full_refund_hours = COALESCE(e.cancel_full_refund_hours,
         (SELECT int_value FROM platform_settings WHERE name = 'cancel_full_refund_hours')),
       b.late_refund_bps = COALESCE(e.cancel_late_refund_bps,
         (SELECT int_value FROM platform_settings WHERE name = 'cancel_late_refund_bps'));
