-- A payout pays lines, one per booking whose due amount changed since it
-- was last paid: what the booking owes its expert now (its payout less what
-- refunds took back, while it stands) less what payouts paid for it so far.
-- A booking paid out and then refunded, or lost to a dispute, owes a
-- negative line, which the expert's next payout takes back.  So a booking
-- may now appear in several payouts (the expert's guard row, written first,
-- still keeps two payouts of one expert from paying one line twice).
-- Items paid before this change are taken to have paid what their booking
-- owes now.
ALTER TABLE payout_items
  ADD COLUMN amount_cents BIGINT NOT NULL DEFAULT 0,
  ADD KEY ix_payout_items_booking (booking_id);
ALTER TABLE payout_items DROP INDEX uq_payout_items_booking;
UPDATE payout_items i JOIN bookings b ON b.id = i.booking_id
  SET i.amount_cents = CAST(b.payout_cents AS SIGNED) - b.payout_refunded_cents;
