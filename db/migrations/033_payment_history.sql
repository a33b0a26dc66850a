-- The Billing page lists the user's payments with what refunds gave back of
-- each Checkout purchase: its reversals are found by the session they
-- refunded.
ALTER TABLE payment_reversals ADD KEY ix_reversals_session (stripe_session_id);
