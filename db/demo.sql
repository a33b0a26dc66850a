-- Demo data for the local stack, loaded by scripts/stack.sh after the
-- migrations.  Safe to load any number of times: experts are upserted by a
-- fixed id and slots are only inserted where none exists at that time.
-- Demo users are not created here: their passwords need the scrypt hash, so
-- the stack script creates them with `creditdesk-admin create-user`.
-- All times are UTC.

SET time_zone = '+00:00';

-- Four experts with per-minute rates in cents; expert 3 is free, so booking
-- him skips payment.  ON DUPLICATE KEY resets the demo fields on reload but
-- keeps a user_id link made later.
INSERT INTO experts (id, name, headline, bio, rate_cents_per_minute, active) VALUES
  (1, 'Ada Brooks',   'Payments and billing specialist',
      'Ten years untangling subscriptions, refunds and disputes for small businesses.', 150, 1),
  (2, 'Omar Haddad',  'Network and firewall engineer',
      'Designs and audits firewalls and VPNs; happy to review your setup live.', 200, 1),
  (3, 'Lena Fischer', 'Community volunteer',
      'Answers first questions for free: where to start and whom to ask next.', 0, 1),
  (4, 'Kenji Sato',   'Senior diagnostics mechanic',
      'Deep-dive diagnostics for the problems nobody else could reproduce.', 300, 1)
ON DUPLICATE KEY UPDATE
  name = VALUES(name), headline = VALUES(headline), bio = VALUES(bio),
  rate_cents_per_minute = VALUES(rate_cents_per_minute), active = VALUES(active);

-- Live Help slots: one a day at 15:00 UTC for the next 14 days (from
-- tomorrow, so every one is upcoming whenever this runs), capacity 3.
-- Slots at a time that already has one are left alone, bookings included.
INSERT INTO live_help_slots (starts_at, ends_at, capacity, booked)
WITH RECURSIVE days (n) AS (
  SELECT 1 UNION ALL SELECT n + 1 FROM days WHERE n < 14
)
SELECT UTC_DATE() + INTERVAL n DAY + INTERVAL 15 HOUR,
       UTC_DATE() + INTERVAL n DAY + INTERVAL 16 HOUR,
       3, 0
FROM days
WHERE NOT EXISTS (
  SELECT 1 FROM live_help_slots s
  WHERE s.starts_at = UTC_DATE() + INTERVAL days.n DAY + INTERVAL 15 HOUR
);

-- One slot in the past (yesterday 15:00 UTC), which the API must not list
-- as upcoming; only added when no past slot exists at all.
INSERT INTO live_help_slots (starts_at, ends_at, capacity, booked)
SELECT UTC_DATE() - INTERVAL 1 DAY + INTERVAL 15 HOUR,
       UTC_DATE() - INTERVAL 1 DAY + INTERVAL 16 HOUR,
       3, 0
FROM DUAL
WHERE NOT EXISTS (SELECT 1 FROM live_help_slots WHERE starts_at < UTC_TIMESTAMP());
