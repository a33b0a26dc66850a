-- Booking payments that succeeded before migration 036 get the time they
-- succeeded as we learnt it, so that the Billing page's Payments section no
-- longer dates them by their hold: the time of their BOOKING_PAID audit row,
-- written in the transaction that marked the payment succeeded.  Payments
-- never paid (pending, failed) keep none.
UPDATE payments p
  JOIN (SELECT CAST(entity_id AS UNSIGNED) AS booking_id, MIN(created_at) AS paid
          FROM audit_log
         WHERE action = 'BOOKING_PAID' AND entity_type = 'booking'
         GROUP BY entity_id) a ON a.booking_id = p.booking_id
   SET p.paid_at = a.paid
 WHERE p.paid_at IS NULL AND p.status NOT IN ('pending', 'failed');
