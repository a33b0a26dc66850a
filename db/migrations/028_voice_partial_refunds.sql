-- A partial refund of Voice AI Therapy minutes takes back the refunded share
-- of the pack (minutes_purchased * refunded / paid, rounded down), never
-- minutes already used, and counts what it took here; a full refund still
-- deactivates what is left.  So remaining + used + refunded = purchased.
ALTER TABLE voice_therapy_credits
  ADD COLUMN minutes_refunded INT UNSIGNED NOT NULL DEFAULT 0 AFTER minutes_remaining;

-- A refund finds the open dispute of its payment, to take from its hold.
ALTER TABLE disputes ADD KEY ix_disputes_intent (payment_intent_id);
