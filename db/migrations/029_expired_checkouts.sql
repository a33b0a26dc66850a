-- A Checkout Session Stripe expired (its day is over, or a newer plan
-- checkout expired it) can never be paid: checkout.session.expired marks
-- the local row, so a client key that made it is told to start again and a
-- plan checkout no longer asks Stripe about it.  Rows whose expiry event
-- was stored before it had a handler are marked from that event.
ALTER TABLE checkout_sessions
  MODIFY status ENUM('open','fulfilled','failed','refunded','expired') NOT NULL DEFAULT 'open';
UPDATE checkout_sessions cs
  JOIN stripe_events e ON e.object_id = cs.stripe_session_id
   AND e.type = 'checkout.session.expired'
  SET cs.status = 'expired'
  WHERE cs.status = 'open';
