-- Marketplace money rules.
--
-- Voice AI Therapy: one guard row per user.  Starting, ending and expiring a
-- session and taking minutes back on a refund all write this row first
-- (version = version + 1), so they run one after another for a user and each
-- sees what the previous one committed; no read lock is relied on.
CREATE TABLE voice_therapy_guards (
  user_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  version     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  CONSTRAINT fk_voice_guard_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

-- Voice minutes are charged by the server's clock: the elapsed time between
-- start and end, capped at the minutes available at start; the client's
-- secondsUsed (still recorded in seconds_used) may lower that by at most this
-- grace.  A session still open after its available minutes plus the grace is
-- ended by the server and charged in full.
INSERT INTO platform_settings (name, int_value) VALUES ('voice_grace_seconds', 30);

ALTER TABLE voice_therapy_sessions
  ADD COLUMN seconds_charged INT UNSIGNED NULL AFTER seconds_used,
  ADD COLUMN ended_by ENUM('user','server') NULL AFTER ended_at,
  ADD KEY ix_voice_session_open (status, started_at);
