-- A client's Idempotency-Key on POST /api/sessions/{id}/messages
-- (src/sessions/chat.c): the same key from the same participant in the same
-- consultation answers the message it posted instead of posting it again, so
-- a message sent again after its answer was lost shows once.
ALTER TABLE session_messages
  ADD COLUMN idempotency_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ADD UNIQUE KEY uq_messages_idempotency (session_id, user_id, idempotency_key);
