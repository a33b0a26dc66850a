-- Commit receipts (src/core/db.c, db_tx): each process that writes keeps
-- one row, its seq one higher in every transaction that writes.  When the
-- connection is lost while COMMIT is on its way, the row read back on a
-- new connection tells whether that transaction committed, so it is not
-- run a second time.  Rows not written for a day are pruned.
CREATE TABLE tx_receipts (
  writer     VARCHAR(64) NOT NULL PRIMARY KEY,
  seq        BIGINT NOT NULL,
  written_at DATETIME(6) NOT NULL,
  KEY tx_receipts_written (written_at)
) ENGINE=InnoDB;
