-- Expert bookings paid by PaymentIntent: bookings, payments, refunds, payouts.
-- Amounts are integer cents: fee = round-half-up(price * fee_bps / 10000),
-- payout = price - fee.

CREATE TABLE experts (
  id                     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id                BIGINT UNSIGNED NULL,
  name                   VARCHAR(100) NOT NULL,
  headline               VARCHAR(255) NOT NULL,
  bio                    TEXT NOT NULL,
  rate_cents_per_minute  INT UNSIGNED NOT NULL,
  active                 TINYINT(1) NOT NULL DEFAULT 1,
  UNIQUE KEY uq_experts_user (user_id),
  CONSTRAINT fk_experts_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE bookings (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id             BIGINT UNSIGNED NOT NULL,
  expert_id           BIGINT UNSIGNED NOT NULL,
  start_time          DATETIME NOT NULL,
  end_time            DATETIME NOT NULL,
  duration_minutes    INT UNSIGNED NOT NULL,
  price_cents         BIGINT UNSIGNED NOT NULL,
  platform_fee_cents  BIGINT UNSIGNED NOT NULL,
  payout_cents        BIGINT UNSIGNED NOT NULL,
  status              ENUM('awaiting_payment','scheduled','cancelled_by_user','completed','payment_failed') NOT NULL,
  payment_intent_id   VARCHAR(255) NULL,
  created_at          DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at          DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_bookings_payment_intent (payment_intent_id),
  KEY ix_bookings_expert_time (expert_id, start_time),
  KEY ix_bookings_user (user_id),
  CONSTRAINT ck_bookings_money CHECK (platform_fee_cents + payout_cents = price_cents),
  CONSTRAINT fk_bookings_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_bookings_expert FOREIGN KEY (expert_id) REFERENCES experts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE payments (
  id                        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  booking_id                BIGINT UNSIGNED NOT NULL,
  stripe_payment_intent_id  VARCHAR(255) NOT NULL,
  amount_cents              BIGINT UNSIGNED NOT NULL,
  status                    ENUM('pending','succeeded','failed','refunded') NOT NULL DEFAULT 'pending',
  created_at                DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at                DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_payments_booking (booking_id),
  UNIQUE KEY uq_payments_intent (stripe_payment_intent_id),
  CONSTRAINT fk_payments_booking FOREIGN KEY (booking_id) REFERENCES bookings (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE refunds (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  payment_id        BIGINT UNSIGNED NOT NULL,
  stripe_refund_id  VARCHAR(255) NOT NULL,
  amount_cents      BIGINT UNSIGNED NOT NULL,
  reason            VARCHAR(64) NOT NULL,
  created_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_refunds_payment (payment_id),
  UNIQUE KEY uq_refunds_stripe (stripe_refund_id),
  CONSTRAINT fk_refunds_payment FOREIGN KEY (payment_id) REFERENCES payments (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE payouts (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  expert_id     BIGINT UNSIGNED NOT NULL,
  amount_cents  BIGINT UNSIGNED NOT NULL,
  status        ENUM('pending','paid') NOT NULL DEFAULT 'paid',
  created_by    BIGINT UNSIGNED NULL,
  created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY ix_payouts_expert (expert_id),
  CONSTRAINT fk_payouts_expert FOREIGN KEY (expert_id) REFERENCES experts (id)
) ENGINE=InnoDB;

-- A completed booking is paid out once.
CREATE TABLE payout_items (
  payout_id   BIGINT UNSIGNED NOT NULL,
  booking_id  BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (payout_id, booking_id),
  UNIQUE KEY uq_payout_items_booking (booking_id),
  CONSTRAINT fk_payout_items_payout FOREIGN KEY (payout_id) REFERENCES payouts (id),
  CONSTRAINT fk_payout_items_booking FOREIGN KEY (booking_id) REFERENCES bookings (id)
) ENGINE=InnoDB;
