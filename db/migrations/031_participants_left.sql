-- A mechanic demoted stops taking part in the consultations they took (their
-- row counts only while they are a mechanic).  When another mechanic takes
-- such a consultation over, the demoted one's row becomes 'left': kept as
-- history (who served, and when the consultation started), never counted
-- again, even if they are made a mechanic again.
ALTER TABLE session_participants
  MODIFY role ENUM('customer','mechanic','left') NOT NULL;
