-- A client's Idempotency-Key on POST /api/bookings (src/bookings/create.c):
-- the same key from the same customer answers the booking it made instead
-- of holding the time again, so the retry of a request whose answer was lost
-- finds its booking.  NULL (no key) never collides.
ALTER TABLE bookings
  ADD COLUMN idempotency_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ADD UNIQUE KEY uq_bookings_idempotency (user_id, idempotency_key);
