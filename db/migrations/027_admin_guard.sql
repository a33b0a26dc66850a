-- A role change writes the acting admin's own row too (users.version, the
-- guard row pattern of 013), on the condition that it is still an admin.
-- Two admins demoting each other then write the same two rows: on one
-- server the second waits or deadlocks and is retried, on Galera it fails
-- certification and is retried, and the retry finds its actor demoted, so
-- the last admin can never be removed by a race.
ALTER TABLE users
  ADD COLUMN version BIGINT UNSIGNED NOT NULL DEFAULT 0
  COMMENT 'bumped by every role or tier change this user makes as an admin';
