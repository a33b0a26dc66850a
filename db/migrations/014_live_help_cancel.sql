-- Live Help: a booked slot can be cancelled, and its hour given back, until
-- this many hours before it starts (POST /api/live-help-hour/{id}/cancel).
INSERT INTO platform_settings (name, int_value) VALUES ('live_help_cancel_hours', 24)
ON DUPLICATE KEY UPDATE int_value = int_value;
