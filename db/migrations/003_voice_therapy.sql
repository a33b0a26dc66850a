-- Voice AI Therapy: minute credits that expire, sessions, and which credit
-- each session's minutes were taken from.

CREATE TABLE voice_therapy_credits (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id            BIGINT UNSIGNED NOT NULL,
  stripe_session_id  VARCHAR(255) NOT NULL,
  minutes_purchased  INT UNSIGNED NOT NULL,
  minutes_remaining  INT UNSIGNED NOT NULL,
  amount_cents       BIGINT UNSIGNED NOT NULL,
  purchased_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  expires_at         DATETIME(6) NOT NULL,
  is_active          TINYINT(1) NOT NULL DEFAULT 1,
  UNIQUE KEY uq_voice_credit_session (stripe_session_id),
  KEY ix_voice_credit_user (user_id),
  KEY ix_voice_credit_active (user_id, is_active, expires_at),
  CONSTRAINT ck_voice_credit CHECK (minutes_remaining <= minutes_purchased),
  CONSTRAINT fk_voice_credit_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- open_slot is 1 while a session is open and NULL once ended, so the UNIQUE
-- key allows one open session per user and any number of ended ones.
CREATE TABLE voice_therapy_sessions (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id            BIGINT UNSIGNED NOT NULL,
  status             ENUM('active','ended') NOT NULL DEFAULT 'active',
  open_slot          TINYINT NULL DEFAULT 1,
  persona            VARCHAR(64) NULL,
  available_minutes  INT UNSIGNED NOT NULL,
  seconds_used       INT UNSIGNED NULL,
  minutes_requested  INT UNSIGNED NULL,
  minutes_deducted   INT UNSIGNED NULL,
  summary            TEXT NULL,
  started_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  ended_at           DATETIME(6) NULL,
  UNIQUE KEY uq_voice_session_open (user_id, open_slot),
  KEY ix_voice_session_user (user_id, started_at),
  CONSTRAINT fk_voice_session_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE voice_therapy_usage (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  session_id  BIGINT UNSIGNED NOT NULL,
  credit_id   BIGINT UNSIGNED NOT NULL,
  minutes     INT UNSIGNED NOT NULL,
  created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_voice_usage (session_id, credit_id),
  KEY ix_voice_usage_credit (credit_id),
  CONSTRAINT fk_voice_usage_session FOREIGN KEY (session_id) REFERENCES voice_therapy_sessions (id),
  CONSTRAINT fk_voice_usage_credit FOREIGN KEY (credit_id) REFERENCES voice_therapy_credits (id)
) ENGINE=InnoDB;
