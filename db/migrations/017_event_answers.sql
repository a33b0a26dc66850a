-- What Stripe answered while an event was handled: every handler retrieves
-- the objects it acts on instead of trusting the event's body, so the
-- stored body alone does not say what the handler saw (a forged body, an
-- object that changed again before the event was handled).  One row per
-- answer, in the order asked, written when the event is marked processed;
-- creditdesk-replay answers the replayed handler's retrieves from them.
CREATE TABLE stripe_event_answers (
  id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_id  VARCHAR(255) NOT NULL,
  seq       INT UNSIGNED NOT NULL,
  path      VARCHAR(512) NOT NULL,
  params    LONGTEXT NULL CHECK (params IS NULL OR JSON_VALID(params)),
  object    LONGTEXT NOT NULL CHECK (JSON_VALID(object)),
  UNIQUE KEY uq_event_answer (event_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
