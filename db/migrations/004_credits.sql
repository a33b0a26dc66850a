-- Credits: the per-user balance (in tokens), the ledger that explains it,
-- boost packs, subscription plans and the allocations made per paid invoice.
-- Invariant: balance = SUM(credits_delta) for the user, and every ledger row
-- has balance_after = balance_before + credits_delta.

CREATE TABLE user_credits (
  user_id       BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  balance       BIGINT NOT NULL DEFAULT 0,
  total_earned  BIGINT NOT NULL DEFAULT 0,
  total_spent   BIGINT NOT NULL DEFAULT 0,
  bonus_earned  BIGINT NOT NULL DEFAULT 0,
  updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  CONSTRAINT ck_user_credits CHECK (balance >= 0),
  CONSTRAINT fk_user_credits_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

CREATE TABLE credit_transactions (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id           BIGINT UNSIGNED NOT NULL,
  credits_delta     BIGINT NOT NULL,
  balance_before    BIGINT NOT NULL,
  balance_after     BIGINT NOT NULL,
  transaction_type  ENUM('allocation','consumption','refund','adjustment') NOT NULL,
  activity_type     VARCHAR(64) NOT NULL,
  description       VARCHAR(255) NOT NULL,
  metadata          LONGTEXT NOT NULL CHECK (JSON_VALID(metadata)),
  created_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY ix_credit_tx_user (user_id, id),
  CONSTRAINT ck_credit_tx CHECK (balance_after = balance_before + credits_delta),
  CONSTRAINT fk_credit_tx_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Ids are compared byte for byte (ascii_bin): "BOOST-SMALL" is not a pack.
-- Sized from the minimum subscription of 20,833 credits: half, one and two
-- times it, with 0%, 10% and 15% bonus.
CREATE TABLE boost_packs (
  id             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  name           VARCHAR(64) NOT NULL,
  credits        INT UNSIGNED NOT NULL,
  bonus_credits  INT UNSIGNED NOT NULL,
  price_cents    INT UNSIGNED NOT NULL,
  currency       CHAR(3) NOT NULL DEFAULT 'usd',
  badge          VARCHAR(32) NULL,
  sort_order     INT NOT NULL,
  active         TINYINT(1) NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO boost_packs (id, name, credits, bonus_credits, price_cents, badge, sort_order) VALUES
  ('boost-small',  'Quick Boost', 10417,    0,  500, NULL,         1),
  ('boost-medium', 'Power Boost', 20833, 2083, 1000, 'POPULAR',    2),
  ('boost-large',  'Mega Boost',  41666, 6250, 2000, 'BEST VALUE', 3);

CREATE TABLE boost_pack_purchases (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id            BIGINT UNSIGNED NOT NULL,
  boost_pack_id      VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stripe_session_id  VARCHAR(255) NOT NULL,
  payment_intent_id  VARCHAR(255) NULL,
  amount_cents       BIGINT UNSIGNED NOT NULL,
  credits_applied    BIGINT NOT NULL,
  credits_refunded   BIGINT NOT NULL DEFAULT 0,
  applied_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_boost_purchase_session (stripe_session_id),
  KEY ix_boost_purchase_user (user_id),
  CONSTRAINT fk_boost_purchase_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_boost_purchase_pack FOREIGN KEY (boost_pack_id) REFERENCES boost_packs (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE subscription_plans (
  id               VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  name             VARCHAR(64) NOT NULL,
  monthly_credits  INT UNSIGNED NOT NULL,
  price_cents      INT UNSIGNED NOT NULL,
  currency         CHAR(3) NOT NULL DEFAULT 'usd',
  active           TINYINT(1) NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO subscription_plans (id, name, monthly_credits, price_cents) VALUES
  ('starter', 'Starter', 20833, 1000),
  ('pro',     'Pro',     62500, 2500);

CREATE TABLE subscriptions (
  id                      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id                 BIGINT UNSIGNED NOT NULL,
  plan_id                 VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stripe_subscription_id  VARCHAR(255) NOT NULL,
  stripe_session_id       VARCHAR(255) NULL,
  status                  VARCHAR(32) NOT NULL,
  created_at              DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_subscription_stripe (stripe_subscription_id),
  KEY ix_subscription_user (user_id),
  CONSTRAINT fk_subscription_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_subscription_plan FOREIGN KEY (plan_id) REFERENCES subscription_plans (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE subscription_allocations (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  subscription_id    BIGINT UNSIGNED NOT NULL,
  stripe_invoice_id  VARCHAR(255) NOT NULL,
  credits            BIGINT NOT NULL,
  created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_subscription_invoice (stripe_invoice_id),
  CONSTRAINT fk_allocation_subscription FOREIGN KEY (subscription_id) REFERENCES subscriptions (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
