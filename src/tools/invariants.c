/*
 * The invariants, one SQL statement each; see invariants.h.
 *
 * Every statement is an aggregate over whole tables joined on their keys
 * (GROUP BY, a window for the ledger chain), never a loop per user, so the
 * cost grows with the size of the tables and not with a round trip per row.
 * Unsigned columns are compared by addition, never subtraction, so a broken
 * row is reported instead of failing the statement with a range error.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "booking_pay.h"
#include "dispute.h"
#include "products.h"
#include "invariants.h"

#define LIMIT " LIMIT 1000"

/* A local session counts as paid once it was fulfilled (refunded ones were). */
#define PAID "('fulfilled','refunded')"

/*
 * How many rows fulfil the Checkout Session `cs` across the product tables,
 * each looked up by its UNIQUE key (compared in the tables' binary
 * collation, so the key is used).
 */
#define FULFILMENT_COUNT(t) \
	"(SELECT COUNT(*) FROM " t " f" \
	" WHERE f.stripe_session_id = cs.stripe_session_id COLLATE utf8mb4_bin)"
#define FULFILMENT_ROWS \
	FULFILMENT_COUNT("live_help_purchases") " + " \
	FULFILMENT_COUNT("voice_therapy_credits") " + " \
	FULFILMENT_COUNT("boost_pack_purchases") " + " \
	FULFILMENT_COUNT("sessions") " + " FULFILMENT_COUNT("subscriptions")

/* A fulfilment row of table t without a paid local session. */
#define UNPAID_FULFILMENT(t) \
	"SELECT '" t "' AS fulfilment_table, f.stripe_session_id FROM " t " f" \
	" WHERE f.stripe_session_id IS NOT NULL AND NOT EXISTS (SELECT 1" \
	" FROM checkout_sessions cs WHERE cs.stripe_session_id =" \
	"  f.stripe_session_id COLLATE utf8mb4_unicode_ci AND cs.status IN " PAID ")"

/*
 * charge.refunded events as processed: the charge, its intent, the invoice
 * it paid (a subscription's), the amount.
 */
#define REFUND_EVENTS \
	"SELECT JSON_VALUE(payload, '$.data.object.id') AS charge_id," \
	" JSON_VALUE(payload, '$.data.object.payment_intent') AS payment_intent," \
	" JSON_VALUE(payload, '$.data.object.invoice') AS invoice," \
	" MAX(CAST(JSON_VALUE(payload, '$.data.object.amount_refunded') AS SIGNED))" \
	"  AS refunded_cents," \
	" MAX(JSON_VALUE(payload, '$.data.object.refunded') = 'true') AS full_refund" \
	" FROM stripe_events WHERE type = 'charge.refunded' AND processed_at IS NOT NULL" \
	" GROUP BY 1, 2, 3"
/* What each charge's reversals took in all: their cumulative key's largest. */
#define REVERSED_BY_CHARGE \
	"(SELECT SUBSTRING_INDEX(stripe_refund_id, '/', 1) AS charge_id," \
	"  MAX(amount_cents) AS reversed_cents FROM payment_reversals GROUP BY 1)"

/*
 * The groupings keep a row per user in an in-memory temporary table; the
 * server's 16 MB default would spill to disk and take several times as
 * long.  And a grouped table joined to another must be grouped once, not
 * once per row through the index ("split materialized": 10x slower here).
 */
static cd_sql q_session_sizes = CD_SQL(
    "SET SESSION tmp_table_size = 536870912, max_heap_table_size = 536870912,"
    " sort_buffer_size = 16777216, optimizer_switch = 'split_materialized=off'");

static cd_sql q_live_help_slot = CD_SQL(
    "SELECT s.id AS slot_id, s.capacity, s.booked, COALESCE(r.seats, 0) AS redemptions"
    " FROM live_help_slots s"
    " LEFT JOIN (SELECT slot_id, SUM(hours) AS seats FROM live_help_redemptions"
    "  GROUP BY slot_id) r ON r.slot_id = s.id"
    " WHERE s.booked > s.capacity OR COALESCE(r.seats, 0) > s.capacity"
    "  OR s.booked <> COALESCE(r.seats, 0)"
    " ORDER BY s.id" LIMIT);

static cd_sql q_voice_credit = CD_SQL(
    "SELECT c.id AS credit_id, c.user_id, c.minutes_purchased, c.minutes_remaining,"
    " c.minutes_refunded, COALESCE(u.used, 0) AS usage_minutes"
    " FROM voice_therapy_credits c"
    " LEFT JOIN (SELECT credit_id, SUM(minutes) AS used FROM voice_therapy_usage"
    "  GROUP BY credit_id) u ON u.credit_id = c.id"
    " WHERE c.minutes_remaining > c.minutes_purchased"
    "  OR c.minutes_remaining + c.minutes_refunded + COALESCE(u.used, 0)"
    "   <> c.minutes_purchased"
    " ORDER BY c.id" LIMIT);

static cd_sql q_voice_session = CD_SQL(
    "SELECT s.id AS session_id, s.user_id, s.status, s.minutes_deducted,"
    " COALESCE(u.used, 0) AS usage_minutes"
    " FROM voice_therapy_sessions s"
    " LEFT JOIN (SELECT session_id, SUM(minutes) AS used FROM voice_therapy_usage"
    "  GROUP BY session_id) u ON u.session_id = s.id"
    " WHERE COALESCE(s.minutes_deducted, 0) <> COALESCE(u.used, 0)"
    " ORDER BY s.id" LIMIT);

/* The paid session's row in product table t, joined by its UNIQUE key. */
#define OWN_JOIN(alias, product, t) \
	" LEFT JOIN " t " " alias " ON cs.product = '" product "'" \
	"  AND " alias ".stripe_session_id = cs.stripe_session_id COLLATE utf8mb4_bin"

/*
 * The common case proven in one pass of joins (eq_ref lookups, about half
 * the cost of a dependent subquery per session): n counts the paid
 * sessions without their row in their own product's table or without an
 * audit row, plus the rows a session joins more than once (a second audit
 * row), plus whether the product tables hold other than one row per paid
 * session (so none is a duplicate in another table).  n = 0 proves the
 * invariant; otherwise the statement below names the rows.
 */
static cd_sql q_fulfilment_quick = CD_SQL(
    "SELECT COALESCE(SUM(CASE cs.product WHEN 'live_help' THEN l.id IS NULL"
    "  WHEN 'voice_therapy' THEN v.id IS NULL WHEN 'boost_pack' THEN b.id IS NULL"
    "  WHEN 'consultation' THEN c.id IS NULL WHEN 'subscription' THEN s.id IS NULL"
    "  ELSE 1 END OR a.id IS NULL), 0)"
    " + (COUNT(*) - (SELECT COUNT(*) FROM checkout_sessions WHERE status IN " PAID "))"
    " + ((SELECT COUNT(*) FROM live_help_purchases)"
    " + (SELECT COUNT(*) FROM voice_therapy_credits)"
    " + (SELECT COUNT(*) FROM boost_pack_purchases) + (SELECT COUNT(*) FROM sessions)"
    " + (SELECT COUNT(*) FROM subscriptions WHERE stripe_session_id IS NOT NULL)"
    " <> (SELECT COUNT(*) FROM checkout_sessions WHERE status IN " PAID ")) AS n"
    " FROM checkout_sessions cs"
    OWN_JOIN("l", "live_help", "live_help_purchases")
    OWN_JOIN("v", "voice_therapy", "voice_therapy_credits")
    OWN_JOIN("b", "boost_pack", "boost_pack_purchases")
    OWN_JOIN("c", "consultation", "sessions")
    OWN_JOIN("s", "subscription", "subscriptions")
    " LEFT JOIN audit_log a ON a.action = 'PAYMENT_FULFILLED'"
    "  AND a.entity_id = cs.stripe_session_id"
    " WHERE cs.status IN " PAID);

static cd_sql q_fulfilment = CD_SQL(
    "SELECT cs.stripe_session_id, cs.user_id, cs.product, cs.status,"
    " " FULFILMENT_ROWS " AS fulfilment_rows,"
    " (SELECT COUNT(*) FROM audit_log a WHERE a.action = 'PAYMENT_FULFILLED'"
    "  AND a.entity_id = cs.stripe_session_id) AS audit_rows"
    " FROM checkout_sessions cs WHERE cs.status IN " PAID
    " HAVING fulfilment_rows <> 1 OR audit_rows <> 1"
    " ORDER BY cs.id" LIMIT);

static cd_sql q_unpaid_fulfilment = CD_SQL(
    UNPAID_FULFILMENT("live_help_purchases")
    " UNION ALL " UNPAID_FULFILMENT("voice_therapy_credits")
    " UNION ALL " UNPAID_FULFILMENT("boost_pack_purchases")
    " UNION ALL " UNPAID_FULFILMENT("sessions")
    " UNION ALL " UNPAID_FULFILMENT("subscriptions")
    " UNION ALL SELECT 'audit_log', a.entity_id FROM audit_log a"
    " WHERE a.action = 'PAYMENT_FULFILLED' AND NOT EXISTS (SELECT 1 FROM checkout_sessions cs"
    "  WHERE cs.stripe_session_id = a.entity_id AND cs.status IN " PAID ")"
    " ORDER BY 1, 2" LIMIT);

/*
 * Once every paid session has exactly one fulfilment row and one audit row
 * (the fulfilment invariant, just before), there is a row without a paid
 * session exactly when the tables hold more rows than there are paid
 * sessions: six counts instead of a lookup per row.
 */
static cd_sql q_unpaid_quick = CD_SQL(
    "SELECT (SELECT COUNT(*) FROM live_help_purchases)"
    " + (SELECT COUNT(*) FROM voice_therapy_credits)"
    " + (SELECT COUNT(*) FROM boost_pack_purchases) + (SELECT COUNT(*) FROM sessions)"
    " + (SELECT COUNT(*) FROM subscriptions WHERE stripe_session_id IS NOT NULL)"
    " + (SELECT COUNT(*) FROM audit_log WHERE action = 'PAYMENT_FULFILLED')"
    " - 2 * (SELECT COUNT(*) FROM checkout_sessions WHERE status IN " PAID ") AS n");

/*
 * A Checkout purchase's refunds, and a subscription invoice's (named by the
 * invoice): the refund events and the reversals read once, then matched to
 * either purchase.
 */
static cd_sql q_unreversed_refund = CD_SQL(
    "WITH e AS (SELECT e.*, COALESCE(r.reversed_cents, 0) AS reversed_cents"
    "  FROM (" REFUND_EVENTS ") e LEFT JOIN " REVERSED_BY_CHARGE " r"
    "  ON r.charge_id = e.charge_id"
    "  WHERE e.refunded_cents > COALESCE(r.reversed_cents, 0))"
    " SELECT e.charge_id, e.payment_intent, cs.stripe_session_id, e.refunded_cents,"
    " e.reversed_cents FROM e"
    " JOIN checkout_sessions cs ON cs.payment_intent_id = e.payment_intent"
    "  AND cs.product <> 'subscription'"
    " UNION ALL SELECT e.charge_id, e.payment_intent, a.stripe_invoice_id,"
    " e.refunded_cents, e.reversed_cents FROM e"
    " JOIN subscription_allocations a ON a.stripe_invoice_id = e.invoice"
    " ORDER BY 1" LIMIT);

/*
 * What the purchases granted in credits, less what refunds took back (boost
 * packs and subscription invoices), per user = the user's total_earned (the
 * ledger's allocations and refunds, which credit_balance checks against the
 * ledger): a grant or a refund that moved no credits, or credits that moved
 * with no purchase, breaks it.
 */
#define NET_GRANTS \
	"(SELECT user_id, SUM(net) AS net FROM (" \
	" SELECT user_id, CAST(credits_applied AS SIGNED) - credits_refunded AS net" \
	"  FROM boost_pack_purchases" \
	" UNION ALL SELECT s.user_id, CAST(a.credits AS SIGNED) - a.credits_reversed" \
	"  FROM subscription_allocations a JOIN subscriptions s ON s.id = a.subscription_id" \
	") x GROUP BY user_id)"
static cd_sql q_credit_grants = CD_SQL(
    "SELECT g.user_id, g.net AS purchases_net, COALESCE(u.total_earned, 0) AS total_earned"
    " FROM " NET_GRANTS " g LEFT JOIN user_credits u ON u.user_id = g.user_id"
    " WHERE g.net <> COALESCE(u.total_earned, 0)"
    " UNION ALL SELECT u.user_id, 0, u.total_earned FROM user_credits u"
    " WHERE u.total_earned <> 0 AND NOT EXISTS (SELECT 1 FROM boost_pack_purchases b"
    "  WHERE b.user_id = u.user_id) AND NOT EXISTS (SELECT 1 FROM subscriptions s"
    "  JOIN subscription_allocations a ON a.subscription_id = s.id WHERE s.user_id = u.user_id)"
    " ORDER BY 1" LIMIT);

/* A payout records what its lines paid (and took back), to the cent. */
static cd_sql q_payout_sum = CD_SQL(
    "SELECT p.id AS payout_id, p.expert_id, p.amount_cents,"
    " COALESCE(SUM(i.amount_cents), 0) AS lines_cents"
    " FROM payouts p LEFT JOIN payout_items i ON i.payout_id = p.id"
    " GROUP BY p.id HAVING p.amount_cents <> COALESCE(SUM(i.amount_cents), 0)"
    " ORDER BY p.id" LIMIT);

/*
 * A refunded Checkout purchase leaves nothing usable: no Voice credit of it
 * active; and Live Help hours owed to refunds are booked ones (at most the
 * hours the user has used).
 */
static cd_sql q_refunded_units = CD_SQL(
    "SELECT 'voice_therapy' AS holding, c.id, c.user_id, c.stripe_session_id AS ref,"
    " c.minutes_remaining AS units FROM voice_therapy_credits c"
    " JOIN checkout_sessions cs ON cs.stripe_session_id = c.stripe_session_id"
    "  COLLATE utf8mb4_unicode_ci"
    " WHERE cs.status = 'refunded' AND c.is_active = 1 AND c.minutes_remaining > 0"
    " UNION ALL SELECT 'live_help_owed', p.user_id, p.user_id, NULL, SUM(p.hours_owed)"
    " FROM live_help_purchases p LEFT JOIN user_live_help_totals t ON t.user_id = p.user_id"
    " GROUP BY p.user_id HAVING SUM(p.hours_owed) > COALESCE(MAX(t.hours_used), 0)"
    " ORDER BY 1, 2" LIMIT);

static cd_sql q_booking_refund = CD_SQL(
    "SELECT p.booking_id, p.stripe_payment_intent_id, p.status AS payment_status,"
    " COUNT(DISTINCT r.id) AS refund_rows"
    " FROM payments p LEFT JOIN refunds r ON r.payment_id = p.id"
    " LEFT JOIN (" REFUND_EVENTS ") e ON e.payment_intent = p.stripe_payment_intent_id"
    "  AND e.full_refund = 1 AND e.refunded_cents >= p.amount_cents"
    " GROUP BY p.id"
    " HAVING (p.status IN ('refunded', 'partially_refunded')) <> (COUNT(DISTINCT r.id) = 1)"
    "  OR (COUNT(e.charge_id) > 0 AND COUNT(DISTINCT r.id) = 0)"
    " ORDER BY p.booking_id" LIMIT);

/*
 * Every succeeded booking PaymentIntent has exactly one booking that holds
 * it: its one payments row (UNIQUE) names the booking whose PaymentIntent
 * it is; a payment that succeeded holds a booking that may keep it
 * (BOOKING_KEEPS_PAYMENT); and a PaymentIntent whose
 * payment_intent.succeeded was processed has a
 * payment recorded as paid (refunded later or not).
 */
static cd_sql q_booking_paid = CD_SQL(
    "SELECT p.booking_id, p.stripe_payment_intent_id, p.status AS payment_status,"
    " b.status AS booking_status, b.payment_intent_id AS booking_payment_intent"
    " FROM payments p JOIN bookings b ON b.id = p.booking_id"
    " WHERE (p.status = 'succeeded' AND NOT " BOOKING_KEEPS_PAYMENT("b") ")"
    "  OR (p.status IN ('pending', 'failed') AND EXISTS (SELECT 1 FROM stripe_events e"
    "   WHERE e.object_id = p.stripe_payment_intent_id"
    "   AND e.type = 'payment_intent.succeeded' AND e.processed_at IS NOT NULL))"
    "  OR NOT (b.payment_intent_id <=> p.stripe_payment_intent_id)"
    " ORDER BY p.booking_id" LIMIT);

/*
 * A cancel decided is made or settled: no booking stays cancelling once its
 * payment went back in full (by our refund, a lost chargeback or Stripe's
 * Dashboard), where nothing is left to finish it.
 */
static cd_sql q_cancel_unsettled = CD_SQL(
    "SELECT b.id AS booking_id, p.stripe_payment_intent_id, p.status AS payment_status,"
    " b.cancel_refund_cents FROM bookings b JOIN payments p ON p.booking_id = b.id"
    " WHERE " BOOKING_CANCELLING("b") " AND p.status = 'refunded'"
    " ORDER BY b.id" LIMIT);

/*
 * The periodic job answers a dispute of a payment refunded in full, or of a
 * booking its customer cancelled under the policy, as soon as it runs
 * (dispute_answer); one still waiting an hour after it opened is one Stripe
 * would not take, which the bank will decide for the customer unless
 * someone answers it in the Dashboard.
 */
static cd_sql q_dispute_unanswered = CD_SQL(
    "SELECT d.stripe_dispute_id, d.status, d.payment_intent_id FROM disputes d"
    " WHERE " DISPUTE_UNANSWERED("d")
    " AND d.created_at < UTC_TIMESTAMP(6) - INTERVAL 1 HOUR ORDER BY d.id" LIMIT);

/*
 * A user's plan tier is what their live plans give: plan_tier_sync writes it
 * with every subscription; a plan's tier changed by hand leaves its
 * subscribers behind until their next change.
 */
static cd_sql q_plan_tier = CD_SQL(
    "SELECT u.id AS user_id, u.plan_tier FROM users u"
    " WHERE (u.plan_tier = 'firewall') <> " PLAN_GIVES_PREMIUM("u.id")
    " ORDER BY u.id" LIMIT);

/*
 * What open disputes hold, per holding: a user's frozen credits (boost packs
 * and subscription invoices), a user's frozen Live Help hours, a Voice
 * credit's frozen minutes.  A closed dispute holds nothing: won released
 * its units, lost released them before reversing.
 */
#define OPEN_HOLDS(key, products) \
	"(SELECT " key ", SUM(units_frozen) AS held FROM disputes" \
	" WHERE closed_at IS NULL AND product IN (" products ") GROUP BY " key ")"
static cd_sql q_dispute_hold = CD_SQL(
    "SELECT 'credits' AS holding, u.user_id AS id, u.frozen, COALESCE(d.held, 0) AS held"
    " FROM user_credits u LEFT JOIN " OPEN_HOLDS("user_id", "'boost_pack', 'subscription'")
    " d ON d.user_id = u.user_id WHERE u.frozen <> COALESCE(d.held, 0)"
    " UNION ALL SELECT 'live_help', t.user_id, t.hours_frozen, COALESCE(d.held, 0)"
    " FROM user_live_help_totals t LEFT JOIN " OPEN_HOLDS("user_id", "'live_help'")
    " d ON d.user_id = t.user_id WHERE t.hours_frozen <> COALESCE(d.held, 0)"
    " UNION ALL SELECT 'voice_therapy', c.id, c.minutes_frozen, COALESCE(d.held, 0)"
    " FROM voice_therapy_credits c LEFT JOIN "
    OPEN_HOLDS("stripe_session_id", "'voice_therapy'") " d"
    " ON d.stripe_session_id = c.stripe_session_id COLLATE utf8mb4_bin"
    " WHERE c.minutes_frozen <> COALESCE(d.held, 0)"
    " ORDER BY 1, 2" LIMIT);

static cd_sql q_stale_event = CD_SQL(
    "SELECT event_id, type, object_id, received_at FROM stripe_events"
    " WHERE processed_at IS NULL AND received_at < UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE"
    " ORDER BY id" LIMIT);

/*
 * Stripe's own lists arrive as one JSON parameter (see check_stripe.c),
 * each read as a table: the Checkout Sessions, the succeeded booking
 * PaymentIntents and the succeeded refunds.
 */
#define STRIPE_LISTED \
	"JSON_TABLE(?, '$.sessions[*]' COLUMNS (id VARCHAR(255) PATH '$.id'," \
	" paid INT PATH '$.paid')) s"
#define STRIPE_INTENTS \
	"JSON_TABLE(?, '$.intents[*]' COLUMNS (id VARCHAR(255) PATH '$.id'," \
	" booking_id BIGINT PATH '$.booking_id')) i"
#define STRIPE_REFUNDS \
	"JSON_TABLE(?, '$.refunds[*]' COLUMNS (id VARCHAR(255) PATH '$.id'," \
	" charge VARCHAR(255) PATH '$.charge'," \
	" payment_intent VARCHAR(255) PATH '$.payment_intent'," \
	" amount BIGINT PATH '$.amount'," \
	" subscription VARCHAR(255) PATH '$.subscription')) r"

static cd_sql q_stripe_paid_unfulfilled = CD_SQL(
    "SELECT cs.stripe_session_id, cs.user_id, cs.product, cs.status"
    " FROM " STRIPE_LISTED
    " JOIN checkout_sessions cs ON cs.stripe_session_id = s.id"
    " WHERE s.paid = 1 AND cs.status NOT IN " PAID
    " ORDER BY cs.id" LIMIT);

static cd_sql q_stripe_fulfilled_unpaid = CD_SQL(
    "SELECT cs.stripe_session_id, cs.user_id, cs.product, cs.status"
    " FROM checkout_sessions cs"
    " LEFT JOIN (SELECT s.id FROM " STRIPE_LISTED " WHERE s.paid = 1) p"
    "  ON p.id = cs.stripe_session_id"
    " WHERE cs.status IN " PAID " AND p.id IS NULL"
    " ORDER BY cs.id" LIMIT);

/*
 * Every succeeded booking PaymentIntent in Stripe's list has exactly one
 * local payment, recorded as paid (refunded later or not), and while it
 * stands its booking is scheduled or completed (or cancelled with no refund
 * by the policy).
 */
static cd_sql q_stripe_booking_unpaid = CD_SQL(
    "SELECT i.id AS payment_intent, i.booking_id, COUNT(p.id) AS payment_rows,"
    " MIN(p.status) AS payment_status, MIN(b.status) AS booking_status"
    " FROM " STRIPE_INTENTS
    " LEFT JOIN payments p ON p.stripe_payment_intent_id = i.id"
    " LEFT JOIN bookings b ON b.id = p.booking_id"
    " GROUP BY i.id, i.booking_id"
    " HAVING COUNT(p.id) <> 1"
    "  OR MIN(p.status) NOT IN ('succeeded', 'refunded', 'partially_refunded')"
    "  OR (MIN(p.status) = 'succeeded' AND MIN(" BOOKING_KEEPS_PAYMENT("b") ") = 0)"
    " ORDER BY i.id" LIMIT);

/*
 * Every refund Stripe lists of a booking payment has exactly one refunds
 * row, or is the rest of a payment recorded as refunded whose one row is an
 * earlier refund's (a partial refund of ours, the rest made in Stripe).
 */
static cd_sql q_stripe_refund_unrecorded = CD_SQL(
    "SELECT r.id AS refund_id, r.payment_intent, p.booking_id,"
    " COUNT(DISTINCT f.id) AS refund_rows"
    " FROM " STRIPE_REFUNDS
    " JOIN payments p ON p.stripe_payment_intent_id = r.payment_intent"
    " LEFT JOIN refunds f ON f.stripe_refund_id = r.id"
    " LEFT JOIN refunds o ON o.payment_id = p.id AND p.status = 'refunded'"
    " GROUP BY r.id, r.payment_intent, p.booking_id"
    " HAVING COUNT(DISTINCT f.id) <> 1"
    "  AND NOT (COUNT(DISTINCT f.id) = 0 AND COUNT(DISTINCT o.id) = 1)"
    " ORDER BY r.id" LIMIT);

/*
 * The refunds Stripe lists of a Checkout payment or of one of our
 * subscriptions' invoices are covered, charge by charge, by the reversal
 * of their sum (a reversal is keyed "charge/cumulative cents").
 */
static cd_sql q_stripe_refund_unreversed = CD_SQL(
    "SELECT e.charge AS charge_id, e.payment_intent, e.refunded_cents,"
    " COALESCE(v.reversed_cents, 0) AS reversed_cents"
    " FROM (SELECT r.charge, r.payment_intent, SUM(r.amount) AS refunded_cents"
    "  FROM " STRIPE_REFUNDS
    "  WHERE EXISTS (SELECT 1 FROM checkout_sessions cs"
    "   WHERE cs.payment_intent_id = r.payment_intent AND cs.product <> 'subscription')"
    "  OR EXISTS (SELECT 1 FROM subscriptions sub"
    "   WHERE sub.stripe_subscription_id = r.subscription)"
    "  GROUP BY r.charge, r.payment_intent) e"
    " LEFT JOIN (SELECT SUBSTRING_INDEX(stripe_refund_id, '/', 1) AS charge_id,"
    "  MAX(amount_cents) AS reversed_cents FROM payment_reversals GROUP BY 1) v"
    "  ON v.charge_id = e.charge"
    " WHERE e.refunded_cents > COALESCE(v.reversed_cents, 0)"
    " ORDER BY e.charge" LIMIT);

const cd_invariant invariants[] = {
	{ "credit_balance", "credit balance and totals = the sums of the user's ledger rows",
	    NULL, false, NULL, false, check_ledger_balance, true },
	{ "ledger_chain", "each ledger row's balance_after = balance_before + delta,"
	    " and follows the previous row", NULL, false, NULL, false, check_ledger_chain, true },
	{ "live_help_hours", "hours_total = purchased - reversed, hours_used = redemptions,"
	    " 0 <= used <= total", NULL, false, NULL, false, check_live_help_hours, true },
	{ "live_help_slot", "a slot's booked seats = its redemptions <= capacity",
	    &q_live_help_slot, false, NULL, false, NULL, true },
	{ "voice_credit", "0 <= minutes_remaining <= purchased, purchased - remaining - refunded = usage",
	    &q_voice_credit, false, NULL, false, NULL, true },
	{ "voice_session", "a session's minutes_deducted = its usage rows",
	    &q_voice_session, false, NULL, false, NULL, false },
	{ "fulfilment", "a paid Checkout Session has exactly one fulfilment row and"
	    " one PAYMENT_FULFILLED audit row", &q_fulfilment, false,
	    &q_fulfilment_quick, true, NULL, false },
	{ "unpaid_fulfilment", "every fulfilment row and PAYMENT_FULFILLED audit row"
	    " belongs to a paid Checkout Session",
	    &q_unpaid_fulfilment, false, &q_unpaid_quick, false, NULL, false },
	{ "unreversed_refund", "every refund of a Checkout payment or subscription"
	    " invoice has its reversal",
	    &q_unreversed_refund, false, NULL, false, NULL, false },
	{ "credit_grants", "what purchases granted less what refunds took back ="
	    " the user's total_earned", &q_credit_grants, false, NULL, false, NULL, false },
	{ "refunded_units", "a refunded purchase leaves no usable Voice minutes; hours"
	    " owed to refunds <= hours used", &q_refunded_units, false, NULL, false, NULL,
	    false },
	{ "payout_sum", "a payout's amount = the sum of its lines",
	    &q_payout_sum, false, NULL, false, NULL, false },
	{ "booking_refund", "a booking payment is (partially) refunded exactly when it has"
	    " one refund row",
	    &q_booking_refund, false, NULL, false, NULL, false },
	{ "booking_paid", "a succeeded booking PaymentIntent: one paid payment of the booking"
	    " that names it, held by a scheduled or completed booking (or one cancelled"
	    " with no refund by the policy)",
	    &q_booking_paid, false, NULL, false, NULL, false },
	{ "cancel_unsettled", "no booking is left cancelling over a payment refunded"
	    " in full", &q_cancel_unsettled, false, NULL, false, NULL, false },
	{ "dispute_hold", "what is frozen (credits, hours, a Voice credit's minutes) ="
	    " what open disputes hold", &q_dispute_hold, false, NULL, false, NULL, false },
	{ "dispute_unanswered", "no dispute of a payment refunded in full or of a"
	    " booking cancelled under the policy waits more than an hour for its"
	    " answer", &q_dispute_unanswered, false, NULL, false,
	    NULL, false },
	{ "plan_tier", "a user's plan tier = what their live plans give",
	    &q_plan_tier, false, NULL, false, NULL, false },
	{ "stale_event", "no verified event unprocessed for more than 10 minutes",
	    &q_stale_event, false, NULL, false, NULL, false },
	{ "stripe_paid_unfulfilled", "every session Stripe reports paid is fulfilled",
	    &q_stripe_paid_unfulfilled, true, NULL, false, NULL, false },
	{ "stripe_fulfilled_unpaid", "every fulfilled session is one Stripe reports paid",
	    &q_stripe_fulfilled_unpaid, true, NULL, false, NULL, false },
	{ "stripe_booking_unpaid", "every booking PaymentIntent Stripe reports succeeded"
	    " has one payment recorded paid, its booking scheduled or completed",
	    &q_stripe_booking_unpaid, true, NULL, false, NULL, false },
	{ "stripe_refund_unrecorded", "every refund Stripe lists of a booking has one"
	    " refunds row", &q_stripe_refund_unrecorded, true, NULL, false, NULL, false },
	{ "stripe_refund_unreversed", "the refunds Stripe lists of a Checkout payment or"
	    " subscription invoice are reversed", &q_stripe_refund_unreversed, true, NULL,
	    false, NULL, false },
};
const size_t ninvariants = sizeof(invariants) / sizeof(invariants[0]);

int
int_list_add(void *list, const long long *v, size_t n)
{
	int_list *l = list;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		if ((l->v = realloc(l->v, l->cap * l->width * sizeof(*l->v))) == NULL)
			abort();
	}
	memcpy(&l->v[l->n++ * l->width], v, (n < l->width ? n : l->width) * sizeof(*v));
	return 0;
}

const long long *
int_list_peek(const int_list *l)
{
	return l->next < l->n ? &l->v[l->next * l->width] : NULL;
}

/* Whether the quick count proves inv holds (see cd_invariant.quick). */
static cd_err
proven_by_count(const cd_invariant *inv, bool previous_clean, bool *proven)
{
	json_t *row;
	cd_err err;

	*proven = false;
	if (inv->quick == NULL || (!inv->quick_alone && !previous_clean))
		return CD_OK;
	if ((err = db_row(inv->quick, &row, "")) != CD_OK)
		return err;
	*proven = row != NULL && jint(row, "n") == 0;
	json_decref(row);
	return CD_OK;
}

/* Appends the rows of one invariant to findings, tagged with its code. */
static cd_err
run_one(const cd_invariant *inv, const char *stripe_json, bool previous_clean,
    json_t *findings, json_t *counts)
{
	struct timespec t0, t1;
	json_t *rows, *row;
	bool proven;
	cd_err err;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((err = proven_by_count(inv, previous_clean, &proven)) != CD_OK)
		return err;
	if (proven)
		rows = json_array();
	else if (inv->pass != NULL)
		err = inv->pass(&rows);
	else
		err = inv->stripe ? db_rows(inv->sql, &rows, "s", stripe_json) :
		    db_rows(inv->sql, &rows, "");
	if (err != CD_OK)
		return err;
	json_array_foreach(rows, i, row) {
		json_t *f = json_pack("{s:s}", "check", inv->code);

		json_object_update(f, row);
		json_array_append_new(findings, f);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	json_array_append_new(counts, json_pack("{s:s,s:s,s:I,s:I}", "check",
	    inv->code, "what", inv->what, "findings",
	    (json_int_t)json_array_size(rows), "ms", (json_int_t)((t1.tv_sec -
	    t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000)));
	json_decref(rows);
	return CD_OK;
}

/*
 * The second connection's part: the ledger pass, Live Help's two and the
 * voice credits, about half of the time on a large book (the other half is
 * mostly the fulfilment lookups).
 */
static bool
in_part(const cd_invariant *inv, enum inv_part part)
{
	return part == INV_ALL || (part == INV_LEDGER) == inv->second;
}

cd_err
invariants_run_part(const char *stripe_json, enum inv_part part,
    json_t *findings, json_t *counts)
{
	size_t i, before;
	bool clean = false;
	cd_err err;

	if ((err = db_exec(&q_session_sizes, NULL, "")) != CD_OK)
		return err;
	for (i = 0; i < ninvariants; i++) {
		if ((invariants[i].stripe && stripe_json == NULL) ||
		    !in_part(&invariants[i], part))
			continue;
		before = json_array_size(findings);
		if ((err = run_one(&invariants[i], stripe_json, clean, findings,
		    counts)) != CD_OK)
			return err;
		clean = json_array_size(findings) == before;
	}
	return CD_OK;
}
