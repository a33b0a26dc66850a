-- When a booking's payment succeeded, as we learnt it (the Payments section
-- of the Billing page dates it so; created_at is when the hold asked for
-- it).  Payments made before this migration keep no such time: the page
-- shows their created_at, as it did.
ALTER TABLE payments ADD COLUMN paid_at DATETIME(6) NULL AFTER status;
