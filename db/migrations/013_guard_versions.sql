-- Guard rows for mutual exclusion that also holds on a Galera cluster.
--
-- A transaction that must exclude another one (two bookings of one expert,
-- two messages of one consultation, a mechanic joining while a refund closes
-- it) WRITES the row that guards the invariant: UPDATE … SET version =
-- version + 1.  On one server that is the same exclusive row lock a SELECT …
-- FOR UPDATE takes; on Galera a row that is written is certified across the
-- cluster, so the second of two such transactions on different nodes fails
-- at commit (1213) and is retried, where a read lock would only be local.
ALTER TABLE experts
	ADD COLUMN version BIGINT UNSIGNED NOT NULL DEFAULT 0
	COMMENT 'bumped by every transaction that books this expert''s time';
ALTER TABLE sessions
	ADD COLUMN version BIGINT UNSIGNED NOT NULL DEFAULT 0
	COMMENT 'bumped by every message and participant change of this consultation';

-- A consultation's messages in one order on every node: each message takes
-- the next value of its session's guard row (sessions.version, written in
-- the same transaction), so positions follow commit order.  AUTO_INCREMENT
-- ids do not: on a cluster each node hands out its own interleaved series.
-- Rows from before this migration keep position 0 and their id order.
ALTER TABLE session_messages
	ADD COLUMN seq BIGINT UNSIGNED NOT NULL DEFAULT 0
	COMMENT 'position in the session: sessions.version when it was posted',
	ADD KEY ix_messages_session_seq (session_id, seq, id);

-- Ending a Voice AI Therapy session writes its guard row first, so two ends
-- of one session on two nodes cannot both deduct.
ALTER TABLE voice_therapy_sessions
	ADD COLUMN version BIGINT UNSIGNED NOT NULL DEFAULT 0
	COMMENT 'bumped by every transaction that ends this session';
