-- A counter that moves with every change to live_help_slots, so that a
-- responder may keep the upcoming slots it last read and trust them for as
-- long as the counter it reads with each request has not moved (and no slot
-- has started since).  Triggers move it, so slots written by hand (an
-- operator's INSERT, a test's UPDATE) count as well as bookings.
CREATE TABLE live_help_slot_changes (
  id       TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  version  BIGINT UNSIGNED NOT NULL,
  CONSTRAINT ck_live_help_slot_changes_one CHECK (id = 1)
) ENGINE=InnoDB;
INSERT INTO live_help_slot_changes (id, version) VALUES (1, 1);

CREATE TRIGGER tr_live_help_slots_insert AFTER INSERT ON live_help_slots FOR EACH ROW
  UPDATE live_help_slot_changes SET version = version + 1 WHERE id = 1;
CREATE TRIGGER tr_live_help_slots_update AFTER UPDATE ON live_help_slots FOR EACH ROW
  UPDATE live_help_slot_changes SET version = version + 1 WHERE id = 1;
CREATE TRIGGER tr_live_help_slots_delete AFTER DELETE ON live_help_slots FOR EACH ROW
  UPDATE live_help_slot_changes SET version = version + 1 WHERE id = 1;
