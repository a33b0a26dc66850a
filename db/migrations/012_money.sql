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
