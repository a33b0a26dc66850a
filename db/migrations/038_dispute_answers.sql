-- The status in which we last answered a dispute (its evidence submitted
-- to the bank), so that creditdesk-reconcile answers each once: an inquiry,
-- then again the chargeback the bank may turn it into.  We answer only a
-- dispute of a payment we had refunded in full (dispute_answer_refunded in
-- src/billing/dispute.c): without an answer the bank decides for the
-- customer, who would then have the money back twice.
ALTER TABLE disputes ADD COLUMN answered_status VARCHAR(32) NULL;
