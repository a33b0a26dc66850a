-- A cancel decided and not made whose payment then went back another way (a
-- lost chargeback, a full refund in Stripe's Dashboard) is cancelled as its
-- customer asked: the webhook does so from now on (BOOKING_CANCEL_SETTLED);
-- bookings left "cancelling" before are settled here, with the same audit row.
INSERT INTO audit_log (action, entity_type, entity_id, user_id, details, severity)
SELECT 'BOOKING_CANCEL_SETTLED', 'booking', b.id, b.user_id,
       '{"refundedBy":"migration"}', 'info'
  FROM bookings b JOIN payments p ON p.booking_id = b.id
 WHERE b.status = 'scheduled' AND b.cancel_refund_cents IS NOT NULL
   AND p.status = 'refunded';
UPDATE bookings b JOIN payments p ON p.booking_id = b.id
   SET b.status = 'cancelled_by_user'
 WHERE b.status = 'scheduled' AND b.cancel_refund_cents IS NOT NULL
   AND p.status = 'refunded';
