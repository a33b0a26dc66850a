/*
 * The pages family's statements and the rows they read; see pages_store.h.
 */
#include <stdlib.h>

#include "booking_pay.h"
#include "db.h"
#include "dispute.h"
#include "pages_store.h"
#include "products.h"

/* Dates for people: the session runs in UTC, so the pages say so. */
#define HUMAN_TIME "'%Y-%m-%d %H:%i UTC'"
/* The same moment for <time datetime>, which app.js shows in the viewer's zone. */
#define ISO_TIME "'%Y-%m-%dT%H:%i:%sZ'"
/* An unpaid hold of booking b its customer can still pay, before its start
 * (POST /api/bookings for the same time answers it with its payment). */
#define PAYABLE_HOLD "(b.status = 'awaiting_payment' AND " \
    "b.payment_intent_id IS NOT NULL AND " BOOKING_HOLDS("b") " AND " \
    "b.start_time > UTC_TIMESTAMP())"

static cd_sql q_products = CD_SQL(
    "SELECT code, name, description, unit_amount_cents FROM products "
    "WHERE active = 1");
/* The settings a page states in words: token rate, voice minutes and validity. */
static cd_sql q_settings = CD_SQL(
    "SELECT MAX(CASE WHEN name = 'tokens_per_credit' THEN int_value END) "
    "AS tokens_per_credit, "
    "MAX(CASE WHEN name = 'voice_minutes_per_pack' THEN int_value END) "
    "AS voice_minutes, "
    "MAX(CASE WHEN name = 'voice_validity_days' THEN int_value END) "
    "AS voice_days FROM platform_settings");
static cd_sql q_packs = CD_SQL(
    "SELECT id, name, credits, bonus_credits, "
    "credits + bonus_credits AS total_credits, price_cents, badge "
    "FROM boost_packs WHERE active = 1 ORDER BY sort_order, id");
/* The next expiry; the minutes themselves come from voice_available. */
/* ...and the minutes an open dispute holds (NULL when none), as the cards say. */
static cd_sql q_voice = CD_SQL(
    "SELECT DATE_FORMAT(MIN(expires_at), " HUMAN_TIME ") AS expires, "
    "DATE_FORMAT(MIN(expires_at), " ISO_TIME ") AS expires_iso, "
    "(SELECT NULLIF(SUM(minutes_frozen), 0) FROM voice_therapy_credits "
    "WHERE user_id = ? AND is_active = 1 AND expires_at > UTC_TIMESTAMP()) AS held "
    "FROM voice_therapy_credits WHERE user_id = ? AND is_active = 1 "
    "AND minutes_remaining > minutes_frozen AND expires_at > UTC_TIMESTAMP()");
static cd_sql q_balance = CD_SQL(
    "SELECT balance, bonus_earned, frozen FROM user_credits WHERE user_id = ?");
static cd_sql q_my_sessions = CD_SQL(
    "SELECT s.id, s.type, s.type = 'chat' AS is_chat, "
    "COALESCE(pr.name, s.plan) AS plan_name, "
    "CASE s.status WHEN 'waiting' THEN 'Waiting for a mechanic' "
    "WHEN 'active' THEN 'In progress' ELSE 'Closed' END AS status, "
    "DATE_FORMAT(s.created_at, " HUMAN_TIME ") AS created, "
    "DATE_FORMAT(s.created_at, " ISO_TIME ") AS created_iso "
    "FROM sessions s JOIN session_participants p ON p.session_id = s.id "
    "LEFT JOIN products pr ON pr.code = s.plan "
    "WHERE p.user_id = ? AND " PARTICIPANT_STANDS("p")
    " ORDER BY s.created_at DESC, s.id DESC LIMIT 50");
/*
 * A booking's status as both sides' pages name it.  First what is in
 * flight: a booking whose payment was charged back (lost) reads "Charged
 * back", a scheduled one whose chargeback is open "Disputed", one whose
 * cancel is being made "Cancelling"; then its row's status, a cancel named
 * as the reader sees it (cancelled).  A scheduled booking reads by the
 * clock: Scheduled, In progress, then Ended until its expert completes it.
 */
#define SCHEDULED_NAME(b) \
    "CASE WHEN " b ".start_time > UTC_TIMESTAMP() THEN 'Scheduled' " \
    "WHEN " b ".end_time > UTC_TIMESTAMP() THEN 'In progress' ELSE 'Ended' END "
#define STATUS_IN_FLIGHT(b) \
    "WHEN " b ".dispute_status = 'lost' THEN 'Charged back' " \
    "WHEN " b ".status = 'scheduled' AND " BOOKING_CHARGED_BACK(b) " THEN 'Disputed' " \
    "WHEN " BOOKING_CANCELLING(b) " THEN 'Cancelling' "
#define STATUS_NAME(b, cancelled) \
    "CASE " b ".status WHEN 'scheduled' THEN " SCHEDULED_NAME(b) \
    "WHEN 'completed' THEN 'Completed' WHEN 'cancelled_by_user' THEN '" cancelled "' " \
    "WHEN 'payment_failed' THEN 'Payment failed' ELSE 'Awaiting payment' END "
static cd_sql q_my_bookings = CD_SQL(
    "SELECT b.id, e.name AS expert_name, b.duration_minutes, b.price_cents, "
    "DATE_FORMAT(b.start_time, " HUMAN_TIME ") AS start, "
    "DATE_FORMAT(b.start_time, " ISO_TIME ") AS start_iso, "
    "CASE " STATUS_IN_FLIGHT("b")
    "WHEN b.status = 'awaiting_payment' AND NOT " BOOKING_HOLDS("b") " THEN 'Hold expired' "
    "ELSE " STATUS_NAME("b", "Cancelled") "END AS status, "
    /* a cancel whose refund failed can be tried again, even once started;
     * none while the payment is charged back (the dispute decides) */
    "b.status = 'scheduled' AND (b.start_time > UTC_TIMESTAMP() OR "
    "b.cancel_refund_cents IS NOT NULL) AND NOT " BOOKING_CHARGED_BACK("b")
    " AS can_cancel, "
    "b.expert_id, " PAYABLE_HOLD " AS can_pay, "
    BOOKING_MOVABLE("b", "e") " AS can_move, b.refunded_cents "
    "FROM bookings b JOIN experts e ON e.id = b.expert_id "
    "WHERE b.user_id = ? ORDER BY b.start_time DESC, b.id DESC LIMIT 50");
/* The user's unpaid holds of one expert's time, and until when each holds. */
static cd_sql q_my_holds = CD_SQL(
    "SELECT b.id, b.duration_minutes, b.price_cents, "
    "DATE_FORMAT(b.start_time, " ISO_TIME ") AS start_iso, "
    "DATE_FORMAT(b.start_time, " HUMAN_TIME ") AS start, "
    "DATE_FORMAT(b.created_at + INTERVAL p.int_value MINUTE, " ISO_TIME ") AS until_iso, "
    "DATE_FORMAT(b.created_at + INTERVAL p.int_value MINUTE, " HUMAN_TIME ") AS until "
    "FROM bookings b JOIN platform_settings p ON p.name = 'booking_hold_minutes' "
    "WHERE b.user_id = ? AND b.expert_id = ? AND " PAYABLE_HOLD " "
    "ORDER BY b.start_time");
/* The user's booking of this expert that can move (BOOKING_MOVABLE). */
static cd_sql q_movable = CD_SQL(
    "SELECT b.id, b.duration_minutes, "
    "DATE_FORMAT(b.start_time, " ISO_TIME ") AS start_iso, "
    "DATE_FORMAT(b.start_time, " HUMAN_TIME ") AS start, "
    BOOKING_FULL_REFUND_HOURS("b", "e") " AS full_hours, "
    BOOKING_LATE_REFUND_BPS("b", "e") " AS late_bps "
    "FROM bookings b JOIN experts e ON e.id = b.expert_id "
    "WHERE b.id = ? AND b.user_id = ? AND b.expert_id = ? AND "
    BOOKING_MOVABLE("b", "e"));
/* The expert this user is, and whether Stripe pays them out (Connect). */
static cd_sql q_my_expert = CD_SQL(
    "SELECT e.id, e.stripe_account_id IS NOT NULL AS has_account, "
    "e.charges_enabled = 1 AND e.payouts_enabled = 1 AS payouts_active, "
    EXPERT_FULL_REFUND_HOURS("e") ", " EXPERT_LATE_REFUND_BPS("e") " "
    "FROM experts e WHERE e.user_id = ?");
/* The bookings of the expert this user is, for /expert/bookings. */
static cd_sql q_expert_bookings = CD_SQL(
    "SELECT b.id, u.name AS customer, b.duration_minutes, "
    /* the payout of a payment that stands, less what refunds took back; none while
     * a dispute holds it or once one took it */
    "IF(p.booking_id IS NULL OR b.dispute_status IN ('open', 'lost'), 0, "
    BOOKING_OWED_CENTS ") AS payout_cents, "
    "DATE_FORMAT(b.start_time, " HUMAN_TIME ") AS start, "
    "DATE_FORMAT(b.start_time, " ISO_TIME ") AS start_iso, "
    "CASE " STATUS_IN_FLIGHT("b") "ELSE " STATUS_NAME("b", "Cancelled by the customer") "END AS status, "
    BOOKING_SCHEDULED("b") " AND b.start_time <= UTC_TIMESTAMP() AS can_complete "
    "FROM bookings b JOIN experts e ON e.id = b.expert_id JOIN users u ON u.id = b.user_id "
    "LEFT JOIN payments p ON p.booking_id = b.id "
    "AND p.status IN ('succeeded', 'partially_refunded') "
    "WHERE e.user_id = ? AND b.status IN ('scheduled', 'completed', 'cancelled_by_user') "
    "ORDER BY b.start_time DESC, b.id DESC LIMIT 100");
static cd_sql q_transactions = CD_SQL(
    "SELECT id, description, credits_delta, balance_after, "
    "DATE_FORMAT(created_at, " HUMAN_TIME ") AS created, "
    "DATE_FORMAT(created_at, " ISO_TIME ") AS created_iso "
    "FROM credit_transactions WHERE user_id = ? ORDER BY id DESC LIMIT 10");
/*
 * What checkout cs bought: its boost pack bp, plan sp or product pr, named
 * by its item_code (pack and plan ids are ascii, compared byte for byte).
 */
#define CHECKOUT_ITEM \
    "LEFT JOIN boost_packs bp ON cs.product = 'boost_pack' " \
    "AND bp.id = CONVERT(cs.item_code USING ascii) " \
    "LEFT JOIN subscription_plans sp ON cs.product = 'subscription' " \
    "AND sp.id = CONVERT(cs.item_code USING ascii) " \
    "LEFT JOIN products pr ON pr.code = cs.item_code "
/* What a checkout of this user bought, for the notice after paying. */
static cd_sql q_purchase = CD_SQL(
    "SELECT cs.product, cs.quantity, cs.status, bp.name AS pack_name, "
    "bp.credits + bp.bonus_credits AS pack_credits, sp.name AS plan_name, "
    "sp.monthly_credits, pr.name AS product_name FROM checkout_sessions cs "
    CHECKOUT_ITEM "WHERE cs.id = ? AND cs.user_id = ?");
/*
 * The user's payments, newest first, from our records: Checkout purchases
 * paid (fulfilled, or refunded since), each paid invoice of their plans
 * (the first and every renewal, by its allocation; not their checkouts,
 * which the first invoice pays) and the expert bookings' payments that
 * succeeded.  Each arm gives what its own records decided: refunded in
 * full (the checkout's or the payment's status, an invoice's refunds
 * reaching its amount), the cents refunds gave back (a checkout's and an
 * invoice's reversals keep the running total, a booking its own), a
 * dispute lost or a chargeback still open (the booking's dispute_status
 * first, as on its pages); the state is read from those once, for all.
 * Voice AI Therapy names the minutes its credit got.  A booking's payment
 * is dated when it succeeded (paid_at; migration 040 filled it in from the
 * audit for payments made before 036; where none could be, its hold's time
 * stands in).
 */
static cd_sql q_payments = CD_SQL(
    "SELECT kind, name, units, amount_cents, refunded_cents, "
    "CASE WHEN lost THEN 'charged_back' WHEN charged_back THEN 'disputed' "
    /* an invoice is refunded in full once its refunds reach what it charged */
    "WHEN refunded OR (kind = 'subscription' AND refunded_cents >= amount_cents) "
    "THEN 'refunded' "
    "WHEN refunded_cents > 0 THEN 'partly_refunded' "
    "ELSE 'paid' END AS state, "
    "DATE_FORMAT(paid_at, " HUMAN_TIME ") AS paid, "
    "DATE_FORMAT(paid_at, " ISO_TIME ") AS paid_iso FROM ("
    "(SELECT cs.product AS kind, COALESCE(bp.name, pr.name, cs.item_code) "
    "AS name, COALESCE(vc.minutes_purchased, cs.quantity) AS units, cs.amount_cents, "
    "(SELECT COALESCE(MAX(r.amount_cents), 0) FROM payment_reversals r "
    "WHERE r.stripe_session_id = cs.stripe_session_id) AS refunded_cents, "
    "cs.status = 'refunded' AS refunded, "
    PAYMENT_DISPUTE_LOST("cs.payment_intent_id") " AS lost, "
    PAYMENT_CHARGED_BACK("cs.payment_intent_id") " AS charged_back, "
    "COALESCE(cs.fulfilled_at, cs.created_at) AS paid_at, cs.id "
    "FROM checkout_sessions cs " CHECKOUT_ITEM
    "LEFT JOIN voice_therapy_credits vc ON vc.stripe_session_id = cs.stripe_session_id "
    "WHERE cs.user_id = ? AND cs.status IN ('fulfilled', 'refunded') "
    "AND cs.product <> 'subscription' "
    "ORDER BY paid_at DESC, cs.id DESC LIMIT 50) UNION ALL "
    "(SELECT 'subscription', sp.name, 1, a.amount_cents, " INVOICE_REFUNDED_CENTS("a")
    ", 0, "
    PAYMENT_DISPUTE_LOST("a.payment_intent_id") ", "
    PAYMENT_CHARGED_BACK("a.payment_intent_id") ", a.created_at, a.id "
    "FROM subscription_allocations a JOIN subscriptions s ON s.id = a.subscription_id "
    "JOIN subscription_plans sp ON sp.id = COALESCE(a.plan_id, s.plan_id) "
    "WHERE s.user_id = ? AND a.amount_cents > 0 "
    "ORDER BY a.created_at DESC, a.id DESC LIMIT 50) UNION ALL "
    "(SELECT 'booking', e.name, b.duration_minutes, p.amount_cents, b.refunded_cents, "
    "p.status = 'refunded', b.dispute_status <=> 'lost', "
    BOOKING_CHARGED_BACK("b") ", COALESCE(p.paid_at, p.created_at), p.id "
    "FROM payments p JOIN bookings b ON b.id = p.booking_id "
    "JOIN experts e ON e.id = b.expert_id WHERE b.user_id = ? "
    "AND p.status IN ('succeeded', 'refunded', 'partially_refunded') "
    "ORDER BY COALESCE(p.paid_at, p.created_at) DESC, p.id DESC LIMIT 50)) h "
    "ORDER BY paid_at DESC, id DESC LIMIT 50");
/* Live Help slots, for /live-help. */
static cd_sql q_lh_slots = CD_SQL(
    "SELECT s.id, DATE_FORMAT(s.starts_at, " ISO_TIME ") AS starts_iso, "
    "DATE_FORMAT(s.starts_at, " HUMAN_TIME ") AS starts, "
    "TIMESTAMPDIFF(MINUTE, s.starts_at, s.ends_at) AS minutes, "
    "s.capacity - s.booked AS seats_left, s.booked >= s.capacity AS full, "
    "r.id IS NOT NULL AS mine, "
    /* booked now, it could not be cancelled: the same rule as can_cancel below */
    "s.starts_at <= UTC_TIMESTAMP() + INTERVAL p.int_value HOUR AS final "
    "FROM live_help_slots s "
    "JOIN platform_settings p ON p.name = 'live_help_cancel_hours' "
    "LEFT JOIN live_help_redemptions r ON r.slot_id = s.id AND r.user_id = ? "
    "WHERE s.starts_at > UTC_TIMESTAMP() ORDER BY s.starts_at, s.id LIMIT 60");
static cd_sql q_lh_booked = CD_SQL(
    "SELECT s.id, DATE_FORMAT(s.starts_at, " ISO_TIME ") AS starts_iso, "
    "DATE_FORMAT(s.starts_at, " HUMAN_TIME ") AS starts, "
    "s.starts_at > UTC_TIMESTAMP() + INTERVAL p.int_value HOUR AS can_cancel "
    "FROM live_help_redemptions r JOIN live_help_slots s ON s.id = r.slot_id "
    "JOIN platform_settings p ON p.name = 'live_help_cancel_hours' "
    "WHERE r.user_id = ? AND s.ends_at > UTC_TIMESTAMP() "
    "ORDER BY s.starts_at, s.id LIMIT 100");
static cd_sql q_lh_policy = CD_SQL(
    "SELECT int_value AS cancel_hours FROM platform_settings "
    "WHERE name = 'live_help_cancel_hours'");
/* One consultation the user takes part in, for /thank-you. */
static cd_sql q_consultation = CD_SQL(
    "SELECT s.id, s.type, s.status, s.amount_cents, s.type = 'video' AS is_video, "
    "COALESCE(pr.name, s.plan) AS plan_name, u.email, "
    "(SELECT mu.name FROM session_participants mp JOIN users mu ON mu.id = mp.user_id "
    "WHERE mp.session_id = s.id AND mp.role = 'mechanic' AND " PARTICIPANT_STANDS("mp")
    " ORDER BY mp.joined_at LIMIT 1) AS mechanic FROM sessions s "
    "JOIN session_participants me ON me.session_id = s.id AND me.user_id = ? "
    "AND " PARTICIPANT_STANDS("me") " "
    "JOIN users u ON u.id = s.user_id "
    "LEFT JOIN products pr ON pr.code = s.plan WHERE s.id = ?");
/* The plans on sale, and the user's current subscription (if any). */
static cd_sql q_plans = CD_SQL(
    "SELECT id, name, monthly_credits, price_cents, tier = 'firewall' AS premium "
    "FROM subscription_plans "
    "WHERE active = 1 ORDER BY price_cents, id");
/* With the plan it renews as (a plan change's, else its own). */
static cd_sql q_subscription = CD_SQL(
    "SELECT s.id, s.status, s.cancel_at_period_end AS ending, "
    "DATE_FORMAT(s.current_period_end, " ISO_TIME ") AS period_end_iso, "
    "DATE_FORMAT(s.current_period_end, " HUMAN_TIME ") AS period_end, "
    "p.id, p.name, p.monthly_credits, p.tier = 'firewall' AS premium, "
    "n.id, n.name, n.monthly_credits, n.price_cents "
    "FROM subscriptions s JOIN subscription_plans p ON p.id = s.plan_id "
    "JOIN subscription_plans n ON n.id = COALESCE(s.renews_as, s.plan_id) "
    "WHERE s.user_id = ? AND s.status IN " SUBSCRIPTION_LIVE " "
    "ORDER BY s.id DESC LIMIT 1");
/* Paid consultations no mechanic has (yet, or any more), oldest first (queue and admin). */
static cd_sql q_waiting = CD_SQL(
    "SELECT s.id, s.user_id, s.type, COALESCE(pr.name, s.plan) AS plan_name, "
    "u.name AS customer, "
    "DATE_FORMAT(s.created_at, " ISO_TIME ") AS created_iso, "
    "DATE_FORMAT(s.created_at, " HUMAN_TIME ") AS created FROM sessions s "
    "JOIN users u ON u.id = s.user_id LEFT JOIN products pr ON pr.code = s.plan "
    "WHERE s.status IN ('waiting', 'active') AND NOT " SESSION_HAS_MECHANIC("s") " "
    "ORDER BY s.created_at, s.id LIMIT 100");
/* The user's open Voice AI Therapy session, to resume its timer. */
static cd_sql q_voice_open = CD_SQL(
    "SELECT id, available_minutes, "
    "DATE_FORMAT(started_at, " ISO_TIME ") AS started_iso "
    "FROM voice_therapy_sessions WHERE user_id = ? AND status = 'active' "
    "ORDER BY id DESC LIMIT 1");
static cd_sql q_experts = CD_SQL(
    "SELECT id, name, headline, rate_cents_per_minute FROM experts "
    "WHERE active = 1 ORDER BY name, id");
static cd_sql q_expert = CD_SQL(
    "SELECT e.id, e.name, e.headline, e.bio, e.rate_cents_per_minute, "
    EXPERT_FULL_REFUND_HOURS("e") ", " EXPERT_LATE_REFUND_BPS("e") " "
    "FROM experts e WHERE e.id = ? AND e.active = 1");
/*
 * The bookable hours of the next days (08:00–19:00 UTC starts), each busy
 * when a booking or a live unpaid hold overlaps it (the same rule as
 * booking, BOOKING_HOLDS).  No customer, price or status leaves this query.
 */
static cd_sql q_hours = CD_SQL(
    "WITH RECURSIVE h (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM h WHERE n < 120) "
    "SELECT DATE_FORMAT(t.s, " ISO_TIME ") AS start_iso, "
    "DATE_FORMAT(t.s, " HUMAN_TIME ") AS start, "
    "EXISTS (SELECT 1 FROM bookings b WHERE b.expert_id = ? AND " BOOKING_HOLDS("b")
    " AND b.start_time < t.s + INTERVAL 1 HOUR AND b.end_time > t.s) AS busy "
    "FROM (SELECT TIMESTAMP(UTC_DATE()) + INTERVAL n HOUR AS s FROM h) t "
    "WHERE t.s > UTC_TIMESTAMP() + INTERVAL 1 HOUR AND HOUR(t.s) BETWEEN 8 AND 18 "
    "ORDER BY t.s LIMIT 44");
static cd_sql q_counts = CD_SQL(
    "SELECT (SELECT COUNT(*) FROM users) AS users, "
    "(SELECT COUNT(*) FROM checkout_sessions WHERE status = 'fulfilled') "
    "AS fulfilled, (SELECT COUNT(*) FROM live_help_purchases) AS live_help");
/*
 * The admin console's audit log: newest first, keyset-paginated on id, each
 * filter off when its value is empty (user: an id or an email; dates are
 * whole UTC days, both ends included).
 */
static cd_sql q_audit_filtered = CD_SQL(
    "SELECT a.id, a.action, a.entity_type, a.entity_id, a.user_id, "
    "u.email AS user_email, a.details, a.severity, "
    "DATE_FORMAT(a.created_at, " ISO_TIME ") AS created_iso, "
    "DATE_FORMAT(a.created_at, '%Y-%m-%d %H:%i:%s UTC') AS created "
    "FROM audit_log a LEFT JOIN users u ON u.id = a.user_id "
    "WHERE a.id < ? AND (? = '' OR a.action = ?) "
    "AND (? = '' OR a.user_id = ? OR u.email = ?) "
    "AND (? = '' OR a.created_at >= ? - INTERVAL ? MINUTE) "
    "AND (? = '' OR a.created_at < ? + INTERVAL 1 DAY - INTERVAL ? MINUTE) "
    "ORDER BY a.id DESC LIMIT ?");
static cd_sql q_audit_actions = CD_SQL(
    "SELECT DISTINCT action FROM audit_log ORDER BY action LIMIT 200");
static cd_sql q_users_search = CD_SQL(
    "SELECT id, email, name, role, tier FROM users "
    "WHERE ? = '' OR email LIKE CONCAT('%', ?, '%') OR name LIKE CONCAT('%', ?, '%') "
    "ORDER BY id DESC LIMIT 20");
static cd_sql q_mechanics = CD_SQL(
    "SELECT id, name, email FROM users WHERE role = 'mechanic' ORDER BY name, id LIMIT 200");
/* The latest books check (creditdesk-check --record) and its findings. */
static cd_sql q_books_run = CD_SQL(
    "SELECT id, DATE_FORMAT(ran_at, '%Y-%m-%d %H:%i:%s') AS ran,"
    " DATE_FORMAT(ran_at, " ISO_TIME ") AS ran_iso, events_recovered,"
    " findings FROM integrity_runs ORDER BY id DESC LIMIT 1");
static cd_sql q_books_findings = CD_SQL(
    "SELECT f.code, f.finding FROM integrity_runs r, JSON_TABLE(r.details, '$[*]'"
    " COLUMNS (code VARCHAR(64) PATH '$.check', finding JSON PATH '$')) f"
    " WHERE r.id = (SELECT MAX(id) FROM integrity_runs) LIMIT 100");
static cd_sql q_audit_page = CD_SQL(
    "SELECT id, action, entity_type, entity_id, user_id, details, severity, "
    "created_at FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?");


static const cd_col product_cols[] = {
	DB_TEXT(page_product, code), DB_TEXT(page_product, name),
	DB_TEXT(page_product, description), DB_INT(page_product, unit_amount_cents),
};
static const cd_col pack_cols[] = {
	DB_TEXT(page_pack, id), DB_TEXT(page_pack, name), DB_INT(page_pack, credits),
	DB_INT(page_pack, bonus_credits), DB_INT(page_pack, total_credits),
	DB_INT(page_pack, price_cents), DB_TEXT(page_pack, badge),
};
static const cd_col balance_cols[] = {
	DB_INT(page_balance, balance), DB_INT(page_balance, bonus_earned),
	DB_INT(page_balance, frozen),
};
static const cd_col session_cols[] = {
	DB_INT(page_session, id), DB_TEXT(page_session, type),
	DB_INT(page_session, is_chat), DB_TEXT(page_session, plan_name),
	DB_TEXT(page_session, status), DB_TEXT(page_session, created),
	DB_TEXT(page_session, created_iso),
};
static const cd_col booking_cols[] = {
	DB_INT(page_booking, id), DB_TEXT(page_booking, expert_name),
	DB_INT(page_booking, duration_minutes), DB_INT(page_booking, price_cents),
	DB_TEXT(page_booking, start), DB_TEXT(page_booking, start_iso),
	DB_TEXT(page_booking, status), DB_INT(page_booking, can_cancel),
	DB_INT(page_booking, expert_id), DB_INT(page_booking, can_pay),
	DB_INT(page_booking, can_move), DB_INT(page_booking, refunded_cents),
};
static const cd_col moving_cols[] = {
	DB_INT(page_moving, id), DB_INT(page_moving, duration_minutes),
	DB_TEXT(page_moving, start_iso), DB_TEXT(page_moving, start),
	DB_INT(page_moving, full_hours), DB_INT(page_moving, late_bps),
};
static const cd_col hold_cols[] = {
	DB_INT(page_hold, id), DB_INT(page_hold, duration_minutes),
	DB_INT(page_hold, price_cents), DB_TEXT(page_hold, start_iso),
	DB_TEXT(page_hold, start), DB_TEXT(page_hold, until_iso),
	DB_TEXT(page_hold, until),
};
static const cd_col expert_account_cols[] = {
	DB_INT(page_expert_account, id), DB_INT(page_expert_account, has_account),
	DB_INT(page_expert_account, payouts_active),
	DB_INT(page_expert_account, full_hours), DB_INT(page_expert_account, late_bps),
};
static const cd_col expert_booking_cols[] = {
	DB_INT(page_expert_booking, id), DB_TEXT(page_expert_booking, customer),
	DB_INT(page_expert_booking, duration_minutes),
	DB_INT(page_expert_booking, payout_cents),
	DB_TEXT(page_expert_booking, start), DB_TEXT(page_expert_booking, start_iso),
	DB_TEXT(page_expert_booking, status),
	DB_INT(page_expert_booking, can_complete),
};
static const cd_col transaction_cols[] = {
	DB_INT(page_transaction, id), DB_TEXT(page_transaction, description),
	DB_INT(page_transaction, credits_delta),
	DB_INT(page_transaction, balance_after), DB_TEXT(page_transaction, created),
	DB_TEXT(page_transaction, created_iso),
};
static const cd_col payment_cols[] = {
	DB_TEXT(page_payment, kind), DB_TEXT(page_payment, name),
	DB_INT(page_payment, units), DB_INT(page_payment, amount_cents),
	DB_INT(page_payment, refunded_cents), DB_TEXT(page_payment, state),
	DB_TEXT(page_payment, paid), DB_TEXT(page_payment, paid_iso),
};
static const cd_col purchase_cols[] = {
	DB_TEXT(page_purchase, product), DB_INT(page_purchase, quantity),
	DB_TEXT(page_purchase, status), DB_TEXT(page_purchase, pack_name),
	DB_INT(page_purchase, pack_credits), DB_TEXT(page_purchase, plan_name),
	DB_INT(page_purchase, monthly_credits), DB_TEXT(page_purchase, product_name),
};
static const cd_col slot_cols[] = {
	DB_INT(page_slot, id), DB_TEXT(page_slot, starts_iso),
	DB_TEXT(page_slot, starts), DB_INT(page_slot, minutes),
	DB_INT(page_slot, seats_left), DB_INT(page_slot, full),
	DB_INT(page_slot, mine), DB_INT(page_slot, final),
};
static const cd_col booked_slot_cols[] = {
	DB_INT(page_booked_slot, id), DB_TEXT(page_booked_slot, starts_iso),
	DB_TEXT(page_booked_slot, starts), DB_INT(page_booked_slot, can_cancel),
};
static const cd_col consultation_cols[] = {
	DB_INT(page_consultation, id), DB_TEXT(page_consultation, type),
	DB_TEXT(page_consultation, status), DB_INT(page_consultation, amount_cents),
	DB_INT(page_consultation, is_video), DB_TEXT(page_consultation, plan_name),
	DB_TEXT(page_consultation, email), DB_TEXT(page_consultation, mechanic),
};
static const cd_col plan_cols[] = {
	DB_TEXT(page_plan, id), DB_TEXT(page_plan, name),
	DB_INT(page_plan, monthly_credits), DB_INT(page_plan, price_cents),
	DB_INT(page_plan, premium),
};
static const cd_col subscription_cols[] = {
	DB_INT(page_subscription, id), DB_TEXT(page_subscription, status),
	DB_INT(page_subscription, ending), DB_TEXT(page_subscription, period_end_iso),
	DB_TEXT(page_subscription, period_end), DB_TEXT(page_subscription, plan_id),
	DB_TEXT(page_subscription, name),
	DB_INT(page_subscription, monthly_credits), DB_INT(page_subscription, premium),
	DB_TEXT(page_subscription, renews.id), DB_TEXT(page_subscription, renews.name),
	DB_INT(page_subscription, renews.monthly_credits),
	DB_INT(page_subscription, renews.price_cents),
};
static const cd_col experts_cols[] = {
	DB_INT(page_expert, id), DB_TEXT(page_expert, name),
	DB_TEXT(page_expert, headline), DB_INT(page_expert, rate_cents_per_minute),
};
static const cd_col expert_cols[] = {
	DB_INT(page_expert, id), DB_TEXT(page_expert, name),
	DB_TEXT(page_expert, headline), DB_TEXT(page_expert, bio),
	DB_INT(page_expert, rate_cents_per_minute),
	DB_INT(page_expert, full_hours), DB_INT(page_expert, late_bps),
};
static const cd_col hour_cols[] = {
	DB_TEXT(page_hour, start_iso), DB_TEXT(page_hour, start),
	DB_INT(page_hour, busy),
};
static const cd_col user_cols[] = {
	DB_INT(page_user, id), DB_TEXT(page_user, email), DB_TEXT(page_user, name),
	DB_TEXT(page_user, role), DB_TEXT(page_user, tier),
};
/* user_id as text: NULL stays NULL (an entry of no user). */
static const cd_col audit_cols[] = {
	DB_INT(page_audit, id), DB_TEXT(page_audit, action),
	DB_TEXT(page_audit, entity_type), DB_TEXT(page_audit, entity_id),
	DB_TEXT(page_audit, user_id), DB_TEXT(page_audit, user_email),
	DB_TEXT(page_audit, details), DB_TEXT(page_audit, severity),
	DB_TEXT(page_audit, created_iso), DB_TEXT(page_audit, created),
};
static const cd_col audit_page_cols[] = {
	DB_INT(page_audit, id), DB_TEXT(page_audit, action),
	DB_TEXT(page_audit, entity_type), DB_TEXT(page_audit, entity_id),
	DB_TEXT(page_audit, user_id), DB_TEXT(page_audit, details),
	DB_TEXT(page_audit, severity), DB_TEXT(page_audit, created_iso),
};

/* All rows of q into *rows, in arena a. */
#define ALL(q, cols, rows, n, ...) \
	db_fetch_all((q), a, (cols), DB_NCOLS(cols), sizeof(**(rows)), (rows), \
	    (n), __VA_ARGS__)
/* The first row of q into *out. */
#define ONE(q, cols, out, found, ...) \
	db_fetch_row((q), a, (cols), DB_NCOLS(cols), (out), sizeof(*(out)), \
	    (found), __VA_ARGS__)

cd_err
pstore_products(cd_arena *a, page_product **rows, size_t *n)
{
	return ALL(&q_products, product_cols, rows, n, "");
}

cd_err
pstore_settings_json(json_t **row)
{
	return db_row(&q_settings, row, "");
}

cd_err
pstore_packs(cd_arena *a, page_pack **rows, size_t *n)
{
	return ALL(&q_packs, pack_cols, rows, n, "");
}

cd_err
pstore_voice_json(long long user_id, json_t **row)
{
	return db_row(&q_voice, row, "ii", user_id, user_id);
}

cd_err
pstore_balance(long long user_id, page_balance *b, bool *found)
{
	cd_arena *a = NULL;

	return ONE(&q_balance, balance_cols, b, found, "i", user_id);
}

cd_err
pstore_my_sessions(cd_arena *a, long long user_id, page_session **rows,
    size_t *n)
{
	return ALL(&q_my_sessions, session_cols, rows, n, "i", user_id);
}

cd_err
pstore_my_bookings(cd_arena *a, long long user_id, page_booking **rows,
    size_t *n)
{
	return ALL(&q_my_bookings, booking_cols, rows, n, "i", user_id);
}

cd_err
pstore_my_expert(long long user_id, page_expert_account *e, bool *found)
{
	cd_arena *a = NULL;

	return ONE(&q_my_expert, expert_account_cols, e, found, "i", user_id);
}

cd_err
pstore_expert_bookings(cd_arena *a, long long user_id,
    page_expert_booking **rows, size_t *n)
{
	return ALL(&q_expert_bookings, expert_booking_cols, rows, n, "i", user_id);
}

cd_err
pstore_transactions(cd_arena *a, long long user_id, page_transaction **rows,
    size_t *n)
{
	return ALL(&q_transactions, transaction_cols, rows, n, "i", user_id);
}

cd_err
pstore_payments(cd_arena *a, long long user_id, page_payment **rows, size_t *n)
{
	return ALL(&q_payments, payment_cols, rows, n, "iii", user_id, user_id,
	    user_id);
}

cd_err
pstore_purchase(cd_arena *a, long long checkout_id, long long user_id,
    page_purchase *p, bool *found)
{
	return ONE(&q_purchase, purchase_cols, p, found, "ii", checkout_id,
	    user_id);
}

cd_err
pstore_slots(cd_arena *a, long long user_id, page_slot **rows, size_t *n)
{
	return ALL(&q_lh_slots, slot_cols, rows, n, "i", user_id);
}

cd_err
pstore_booked_slots(cd_arena *a, long long user_id, page_booked_slot **rows,
    size_t *n)
{
	return ALL(&q_lh_booked, booked_slot_cols, rows, n, "i", user_id);
}

cd_err
pstore_policy_json(json_t **row)
{
	return db_row(&q_lh_policy, row, "");
}

cd_err
pstore_consultation(cd_arena *a, long long user_id, long long id,
    page_consultation *c, bool *found)
{
	return ONE(&q_consultation, consultation_cols, c, found, "ii", user_id, id);
}

cd_err
pstore_plans(cd_arena *a, page_plan **rows, size_t *n)
{
	return ALL(&q_plans, plan_cols, rows, n, "");
}

cd_err
pstore_subscription(cd_arena *a, long long user_id, page_subscription *s,
    bool *found)
{
	return ONE(&q_subscription, subscription_cols, s, found, "i", user_id);
}

cd_err
pstore_waiting_json(json_t **rows)
{
	return db_rows(&q_waiting, rows, "");
}

cd_err
pstore_voice_open_json(long long user_id, json_t **row)
{
	return db_row(&q_voice_open, row, "i", user_id);
}

cd_err
pstore_experts(cd_arena *a, page_expert **rows, size_t *n)
{
	return ALL(&q_experts, experts_cols, rows, n, "");
}

cd_err
pstore_expert(cd_arena *a, long long id, page_expert *e, bool *found)
{
	return ONE(&q_expert, expert_cols, e, found, "i", id);
}

cd_err
pstore_my_holds(cd_arena *a, long long user_id, long long expert_id,
    page_hold **rows, size_t *n)
{
	return ALL(&q_my_holds, hold_cols, rows, n, "ii", user_id, expert_id);
}

cd_err
pstore_movable(cd_arena *a, long long booking_id, long long user_id,
    long long expert_id, page_moving *m, bool *found)
{
	return db_fetch_row(&q_movable, a, moving_cols, DB_NCOLS(moving_cols), m,
	    sizeof(*m), found, "iii", booking_id, user_id, expert_id);
}

cd_err
pstore_hours(cd_arena *a, long long expert_id, page_hour **rows, size_t *n)
{
	return ALL(&q_hours, hour_cols, rows, n, "i", expert_id);
}

cd_err
pstore_counts_json(json_t **row)
{
	return db_row(&q_counts, row, "");
}

cd_err
pstore_books_run_json(json_t **row)
{
	return db_row(&q_books_run, row, "");
}

cd_err
pstore_books_findings_json(json_t **rows)
{
	return db_rows(&q_books_findings, rows, "");
}

cd_err
pstore_mechanics_json(json_t **rows)
{
	return db_rows(&q_mechanics, rows, "");
}

cd_err
pstore_users(cd_arena *a, const char *q, page_user **rows, size_t *n)
{
	return ALL(&q_users_search, user_cols, rows, n, "sss", q, q, q);
}

/* The user filter as an id: only when it is all digits (else 0, no user). */
static long long
user_id_of(const char *user)
{
	char *end;
	long long id;

	id = strtoll(user, &end, 10);
	return *user >= '0' && *user <= '9' && *end == '\0' ? id : 0;
}

cd_err
pstore_audit(cd_arena *a, const page_audit_filter *f, long long before,
    long long limit, page_audit **rows, size_t *n)
{
	return ALL(&q_audit_filtered, audit_cols, rows, n, "isssisssissii", before,
	    f->action, f->action, f->user, user_id_of(f->user), f->user,
	    f->from, f->from, f->tz, f->to, f->to, f->tz, limit);
}

cd_err
pstore_audit_actions_json(json_t **rows)
{
	return db_rows(&q_audit_actions, rows, "");
}

cd_err
pstore_audit_page(cd_arena *a, long long before, long long limit,
    page_audit **rows, size_t *n)
{
	return ALL(&q_audit_page, audit_page_cols, rows, n, "ii", before, limit);
}
