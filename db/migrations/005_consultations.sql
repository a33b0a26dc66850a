-- Paid consultations (Quick Chat, Live Video, Diagnostic) and their chat room.

CREATE TABLE sessions (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  stripe_session_id  VARCHAR(255) NOT NULL,
  user_id            BIGINT UNSIGNED NOT NULL,
  type               ENUM('chat','video','diagnostic') NOT NULL,
  plan               VARCHAR(32) NOT NULL,
  amount_cents       BIGINT UNSIGNED NOT NULL,
  status             ENUM('waiting','active','closed') NOT NULL DEFAULT 'waiting',
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_sessions_stripe (stripe_session_id),
  KEY ix_sessions_user (user_id),
  CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE session_participants (
  session_id  BIGINT UNSIGNED NOT NULL,
  user_id     BIGINT UNSIGNED NOT NULL,
  role        ENUM('customer','mechanic') NOT NULL,
  joined_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (session_id, user_id),
  KEY ix_participants_user (user_id),
  CONSTRAINT fk_participants_session FOREIGN KEY (session_id) REFERENCES sessions (id),
  CONSTRAINT fk_participants_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

CREATE TABLE session_messages (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  session_id  BIGINT UNSIGNED NOT NULL,
  user_id     BIGINT UNSIGNED NOT NULL,
  body        TEXT NOT NULL,
  created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY ix_messages_session (session_id, id),
  CONSTRAINT fk_messages_session FOREIGN KEY (session_id) REFERENCES sessions (id),
  CONSTRAINT fk_messages_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
