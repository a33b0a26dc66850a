-- Platform: users, sign-in sessions, the catalogue's settings, the local record
-- of every Checkout Session created, Stripe events as received, and the audit log.
-- All times are UTC (the connection sets time_zone = '+00:00').

CREATE TABLE users (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email              VARCHAR(254) NOT NULL,
  name               VARCHAR(100) NOT NULL,
  password_hash      VARCHAR(255) NOT NULL,
  role               ENUM('customer','expert','mechanic','admin') NOT NULL DEFAULT 'customer',
  tier               ENUM('free','firewall') NOT NULL DEFAULT 'free',
  stripe_customer_id VARCHAR(255) NULL,
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_users_email (email),
  UNIQUE KEY uq_users_stripe_customer (stripe_customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Only the SHA-256 of the cookie token is stored.
CREATE TABLE auth_sessions (
  token_hash   CHAR(64) NOT NULL PRIMARY KEY,
  user_id      BIGINT UNSIGNED NOT NULL,
  csrf_token   CHAR(43) NOT NULL,
  created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  expires_at   DATETIME(6) NOT NULL,
  KEY ix_auth_sessions_user (user_id),
  CONSTRAINT fk_auth_sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;

-- Integer settings the C code reads instead of hard-coding: rates, fees, durations.
CREATE TABLE platform_settings (
  name       VARCHAR(64) NOT NULL PRIMARY KEY,
  int_value  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

INSERT INTO platform_settings (name, int_value) VALUES
  ('tokens_per_credit', 1000),        -- boost-pack credits become tokens at this rate
  ('platform_fee_bps', 1000),         -- expert bookings: 10% platform fee, in basis points
  ('voice_minutes_per_pack', 15),
  ('voice_validity_days', 30),
  ('session_ttl_hours', 720);

-- What the one-time products cost.  Prices live here, not in C.
CREATE TABLE products (
  code               VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  name               VARCHAR(100) NOT NULL,
  description        VARCHAR(255) NOT NULL,
  unit_amount_cents  INT UNSIGNED NOT NULL,
  currency           CHAR(3) NOT NULL DEFAULT 'usd',
  active             TINYINT(1) NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO products (code, name, description, unit_amount_cents) VALUES
  ('live_help',     'Live Help',          'One hour of live help with an expert', 4900),
  ('voice_therapy', 'Voice AI Therapy',   '15 minutes of Voice AI Therapy, valid for 30 days', 999),
  ('chat10',        'Quick Chat',         'A 10-minute chat consultation', 999),
  ('video15',       'Live Video',         'A 15-minute video consultation', 2999),
  ('diagnostic',    'Diagnostic',         'A full diagnostic consultation', 4999);

-- The local record of every Checkout Session we created.  Fulfilment trusts
-- this row (who, what, how many) and Stripe's paid status, never client input.
CREATE TABLE checkout_sessions (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  stripe_session_id  VARCHAR(255) NOT NULL,
  user_id            BIGINT UNSIGNED NOT NULL,
  product            ENUM('live_help','voice_therapy','boost_pack','subscription','consultation') NOT NULL,
  item_code          VARCHAR(64) NOT NULL,            -- product code, pack id or plan id
  quantity           INT UNSIGNED NOT NULL DEFAULT 1,
  amount_cents       BIGINT UNSIGNED NOT NULL,
  currency           CHAR(3) NOT NULL DEFAULT 'usd',
  mode               ENUM('payment','subscription') NOT NULL DEFAULT 'payment',
  client_ref         VARCHAR(64) NULL,                -- optional client key: one session per (user, key)
  url                VARCHAR(1024) NULL,
  client_secret      VARCHAR(255) NULL,
  status             ENUM('open','fulfilled','failed','refunded') NOT NULL DEFAULT 'open',
  payment_intent_id  VARCHAR(255) NULL,
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  fulfilled_at       DATETIME(6) NULL,
  UNIQUE KEY uq_checkout_stripe_session (stripe_session_id),
  UNIQUE KEY uq_checkout_client_ref (user_id, client_ref),
  KEY ix_checkout_payment_intent (payment_intent_id),
  CONSTRAINT fk_checkout_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every verified webhook event, once, with its raw body, stored before it is acted on.
CREATE TABLE stripe_events (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_id       VARCHAR(255) NOT NULL,
  type           VARCHAR(100) NOT NULL,
  object_id      VARCHAR(255) NULL,
  stripe_created BIGINT NOT NULL DEFAULT 0,
  payload        MEDIUMTEXT NOT NULL,
  source         ENUM('webhook','reconcile') NOT NULL DEFAULT 'webhook',
  received_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  processed_at   DATETIME(6) NULL,
  UNIQUE KEY uq_stripe_events_event (event_id),
  KEY ix_stripe_events_created (stripe_created)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Refunds already applied to a product grant, once per Stripe refund.
CREATE TABLE payment_reversals (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  stripe_refund_id   VARCHAR(255) NOT NULL,
  stripe_session_id  VARCHAR(255) NULL,
  payment_intent_id  VARCHAR(255) NULL,
  product            VARCHAR(32) NOT NULL,
  amount_cents       BIGINT UNSIGNED NOT NULL,
  units_reversed     BIGINT NOT NULL,
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_reversals_refund (stripe_refund_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE disputes (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  stripe_dispute_id  VARCHAR(255) NOT NULL,
  charge_id          VARCHAR(255) NULL,
  payment_intent_id  VARCHAR(255) NULL,
  amount_cents       BIGINT UNSIGNED NOT NULL,
  reason             VARCHAR(64) NULL,
  status             VARCHAR(64) NOT NULL,
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_disputes_stripe (stripe_dispute_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Where the reconcile command stopped reading Stripe's event list.
CREATE TABLE reconcile_state (
  name            VARCHAR(32) NOT NULL PRIMARY KEY,
  last_event_id   VARCHAR(255) NULL,
  last_created    BIGINT NOT NULL DEFAULT 0,
  updated_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Written in the same transaction as the change it describes.
CREATE TABLE audit_log (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  action       VARCHAR(64) NOT NULL,
  entity_type  VARCHAR(64) NOT NULL,
  entity_id    VARCHAR(255) NULL,
  user_id      BIGINT UNSIGNED NULL,
  details      LONGTEXT NOT NULL CHECK (JSON_VALID(details)),
  severity     ENUM('info','warning','critical') NOT NULL DEFAULT 'info',
  created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY ix_audit_created (created_at),
  KEY ix_audit_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
