-- Every run of the books check (creditdesk-check --record, after each
-- reconcile): when it ran, how many events reconcile recovered since the
-- previous run, how many findings it made and which (at most 1,000 per
-- invariant).  /admin shows the latest run.
CREATE TABLE integrity_runs (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ran_at            DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  events_recovered  INT UNSIGNED NOT NULL,
  findings          INT UNSIGNED NOT NULL,
  details           LONGTEXT NOT NULL CHECK (JSON_VALID(details)),
  KEY ix_integrity_runs_ran (ran_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
