-- A booking whose payment went back in full another way is cancelled: one
-- whose cancel was decided and not made (a lost chargeback, a full refund in
-- Stripe's Dashboard), as its customer asked, and one a chargeback was lost
-- for before it started (its customer took the money back).  The webhook
-- does so from now on (BOOKING_CANCEL_SETTLED); bookings left scheduled
-- before are cancelled here, with the same audit row.
CREATE TEMPORARY TABLE settled_bookings AS
SELECT b.id, b.user_id
  FROM bookings b JOIN payments p ON p.booking_id = b.id
 WHERE b.status = 'scheduled' AND p.status = 'refunded'
   AND (b.cancel_refund_cents IS NOT NULL OR EXISTS (SELECT 1 FROM disputes d
     WHERE d.booking_id = b.id AND d.status = 'lost' AND d.closed_at < b.start_time));
INSERT INTO audit_log (action, entity_type, entity_id, user_id, details, severity)
SELECT 'BOOKING_CANCEL_SETTLED', 'booking', id, user_id,
       '{"refundedBy":"migration"}', 'info'
  FROM settled_bookings;
UPDATE bookings b JOIN settled_bookings s ON s.id = b.id
   SET b.status = 'cancelled_by_user';
DROP TEMPORARY TABLE settled_bookings;
