-- An unpaid booking holds its expert's time only this long; after that the
-- slot is free for others, and a late payment for it is refunded.
INSERT INTO platform_settings (name, int_value) VALUES ('booking_hold_minutes', 30);
