-- Live Help: hours bought per paid Checkout Session, running totals per user,
-- upcoming slots with capacity, and the hours redeemed into slots.

CREATE TABLE live_help_purchases (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id            BIGINT UNSIGNED NOT NULL,
  stripe_session_id  VARCHAR(255) NOT NULL,
  hours              INT UNSIGNED NOT NULL,
  amount_cents       BIGINT UNSIGNED NOT NULL,
  hours_refunded     INT UNSIGNED NOT NULL DEFAULT 0,
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_live_help_session (stripe_session_id),
  KEY ix_live_help_user (user_id),
  CONSTRAINT fk_live_help_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE user_live_help_totals (
  user_id      BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  hours_total  INT NOT NULL DEFAULT 0,
  hours_used   INT NOT NULL DEFAULT 0,
  updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  CONSTRAINT ck_live_help_totals CHECK (hours_used >= 0 AND hours_used <= hours_total),
  CONSTRAINT fk_live_help_totals_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

CREATE TABLE live_help_slots (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  starts_at  DATETIME NOT NULL,
  ends_at    DATETIME NOT NULL,
  capacity   INT UNSIGNED NOT NULL,
  booked     INT UNSIGNED NOT NULL DEFAULT 0,
  CONSTRAINT ck_live_help_slot CHECK (booked <= capacity AND ends_at > starts_at),
  KEY ix_live_help_slots_start (starts_at)
) ENGINE=InnoDB;

CREATE TABLE live_help_redemptions (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id     BIGINT UNSIGNED NOT NULL,
  slot_id     BIGINT UNSIGNED NOT NULL,
  hours       INT UNSIGNED NOT NULL DEFAULT 1,
  created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_redemption_user_slot (user_id, slot_id),
  KEY ix_redemption_slot (slot_id),
  CONSTRAINT fk_redemption_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_redemption_slot FOREIGN KEY (slot_id) REFERENCES live_help_slots (id)
) ENGINE=InnoDB;
