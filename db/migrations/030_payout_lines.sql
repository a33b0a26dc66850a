-- A payout pays lines, one per booking whose due amount changed since it
-- was last paid: what the booking owes its expert now (its payout less what
-- refunds took back, while it stands) less what payouts paid for it so far.
-- A booking paid out and then refunded, or lost to a dispute, owes a
-- negative line, which the expert's next payout takes back.  So a booking
-- may now appear in several payouts (the expert's guard row, written first,
-- still keeps two payouts of one expert from paying one line twice).
-- Items paid before this change get what their payout paid: a completed
-- booking's whole payout (nothing could be refunded before it completed), a
-- cancelled one's payout less the payout's share of the cancel's refund
-- (calc.c's split: the fee's share rounded half up).  A booking refunded or
-- lost after such a payout so owes its payout back, as later ones do.
ALTER TABLE payout_items
  ADD COLUMN amount_cents BIGINT NOT NULL DEFAULT 0,
  ADD KEY ix_payout_items_booking (booking_id);
ALTER TABLE payout_items DROP INDEX uq_payout_items_booking;
UPDATE payout_items i JOIN bookings b ON b.id = i.booking_id
  SET i.amount_cents = IF(b.status = 'cancelled_by_user'
      AND b.cancel_refund_cents IS NOT NULL AND b.price_cents > 0,
    CAST(b.payout_cents AS SIGNED) - (CAST(b.cancel_refund_cents AS SIGNED)
      - (b.cancel_refund_cents * b.platform_fee_cents * 2 + b.price_cents)
        DIV (b.price_cents * 2)),
    b.payout_cents);
