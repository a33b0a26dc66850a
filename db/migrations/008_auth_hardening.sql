-- Accounts and sessions, hardened.
--
-- Emails are stored normalised (trimmed, NFKC, lower-cased) by the C code and
-- compared byte for byte, so two addresses that only look alike stay two
-- accounts (utf8mb4_unicode_ci would have folded "ß" into "ss", for one).
ALTER TABLE users
  MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

-- A session ends 12 hours after sign-in (30 days when the user asked to stay
-- signed in) or after CD_SESSION_IDLE seconds without a request, whichever
-- comes first.  last_seen_at is refreshed at most once a minute.
ALTER TABLE auth_sessions
  ADD COLUMN last_seen_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) AFTER created_at,
  ADD COLUMN remember TINYINT(1) NOT NULL DEFAULT 0 AFTER last_seen_at;

UPDATE platform_settings SET int_value = 12 WHERE name = 'session_ttl_hours';
INSERT INTO platform_settings (name, int_value) VALUES
  ('session_remember_hours', 720),     -- "keep me signed in"
  ('signin_max_failures', 10),         -- failed sign-ins an account may have ...
  ('signin_window_minutes', 15),       -- ... within this many quiet minutes
  ('signin_lock_seconds', 60),         -- first refusal; doubles with each further failure
  ('signin_lock_max_seconds', 86400);

-- Per-account sign-in throttle, keyed on the SHA-256 of the normalised email
-- (known or not, so the throttle says nothing about which accounts exist).
-- Each attempt is counted as a failure before the password is checked, while
-- the row is locked by a write; a correct password clears the count.
CREATE TABLE signin_throttle (
  email_hash       CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  failures         INT UNSIGNED NOT NULL DEFAULT 0,
  last_failure_at  DATETIME(6) NULL,
  locked_until     DATETIME(6) NULL,
  version          BIGINT UNSIGNED NOT NULL DEFAULT 0
) ENGINE=InnoDB;
