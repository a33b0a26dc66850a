-- The books check asks whether a payment's PaymentIntent has a processed
-- payment_intent.succeeded (booking_paid): found by the object it is about,
-- without reading every stored event.
ALTER TABLE stripe_events ADD KEY ix_stripe_events_object (object_id, type);
