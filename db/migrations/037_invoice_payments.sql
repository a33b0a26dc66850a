-- What each paid invoice of a plan charged, and the PaymentIntent that paid
-- it, kept with its allocation of credits: the Payments section of the
-- Billing page lists a plan's every invoice (its renewals too), each with
-- the refunds and disputes of that payment.  Refunds of an invoice are
-- payment_reversals named by that PaymentIntent, hence their new key.
ALTER TABLE subscription_allocations
  ADD COLUMN amount_cents BIGINT UNSIGNED NULL AFTER credits,
  ADD COLUMN payment_intent_id VARCHAR(255) NULL AFTER amount_cents,
  ADD KEY ix_allocation_intent (payment_intent_id);
ALTER TABLE payment_reversals ADD KEY ix_reversals_intent (payment_intent_id);

-- Allocations made before: the amount from their ledger row's metadata
-- (written by every allocation), the PaymentIntent from a stored event of
-- the invoice (none when the invoice was fetched for a refund or dispute
-- that came first: such an invoice shows its amount, without its refunds).
UPDATE subscription_allocations a
  JOIN credit_transactions t
    ON t.activity_type = 'subscription_renewal'
   AND JSON_VALUE(t.metadata, '$.stripeInvoiceId') = a.stripe_invoice_id
   SET a.amount_cents = JSON_VALUE(t.metadata, '$.amountPaidCents')
 WHERE a.amount_cents IS NULL;
UPDATE subscription_allocations a
  JOIN stripe_events e
    ON e.object_id = a.stripe_invoice_id AND e.type LIKE 'invoice.%'
   SET a.payment_intent_id = JSON_VALUE(e.payload, '$.data.object.payment_intent')
 WHERE a.payment_intent_id IS NULL
   AND JSON_VALUE(e.payload, '$.data.object.payment_intent') IS NOT NULL;
