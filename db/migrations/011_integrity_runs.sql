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

-- The books check reads the ledger in (user, id) order from this index alone
-- (no table rows, no sort), and looks fulfilment audit rows and
-- subscription sessions up by key instead of scanning.
ALTER TABLE credit_transactions
  ADD INDEX ix_credit_tx_chain (user_id, id, credits_delta, balance_before, balance_after,
                                transaction_type),
  DROP INDEX ix_credit_tx_user;
ALTER TABLE audit_log ADD INDEX ix_audit_action_entity (action, entity_id);
ALTER TABLE subscriptions ADD INDEX ix_subscription_session (stripe_session_id);
