/*
 * What the parts of creditdesk-replay share: statements that name the live
 * database, and the steps of expert bookings (replay_bookings.c).
 */
#ifndef CD_REPLAY_H
#define CD_REPLAY_H

#include <jansson.h>

#include "db.h"

/* "@." in text becomes "`live`."; the rest of the text names the rebuild. */
cd_sql	*on_live(const char *text);
/* *q, made by on_live(text) the first time it is needed. */
cd_sql	*live_sql(cd_sql **q, const char *text);

/*
 * The user the replay is limited to (0: everyone) is @replay_user, set
 * once; OF_USER(col) keeps the rows of that user.
 */
#define OF_USER(col) " WHERE (@replay_user = 0 OR " col " = @replay_user)"

/*
 * Expert bookings.  replay_bookings_prepare() keeps the bookings' local
 * actions (audit_log: created with its time, paid, completed, cancelled,
 * released because the app found its PaymentIntent canceled)
 * where the timeline can read them, before the timeline is read.  Each
 * step is the live row's id (a move: its BOOKING_RESCHEDULED audit row's);
 * a step that cannot be replayed fails.
 */
cd_err	 replay_bookings_prepare(void);
cd_err	 replay_booking_created(void *booking_id);	/* db_tx */
cd_err	 replay_booking_completed(void *booking_id);	/* db_tx */
cd_err	 replay_booking_cancelled(long long booking_id);
cd_err	 replay_booking_decided(void *booking_id);		/* db_tx */
cd_err	 replay_booking_released(long long booking_id);
cd_err	 replay_booking_moved(void *audit_id);		/* db_tx */
cd_err	 replay_payout(void *payout_id);		/* db_tx */
/* Stripe's answer to a POST the replayed code makes (a booking's refund). */
cd_err	 replay_booking_post(const char *path, const json_t *params, json_t **out);

/*
 * The timeline's booking steps (kinds 5 to 8 and 11 to 13, see replay.c), and when a
 * PaymentIntent's success took effect: its BOOKING_PAID, if earlier than
 * the event's processing (the buyer's confirm-payment).
 */
#define REPLAY_BOOKING_STEPS \
    " UNION ALL SELECT 5, b.id, b.created_at FROM @.bookings b" OF_USER("b.user_id") \
    " UNION ALL SELECT CASE s.action WHEN 'BOOKING_COMPLETED' THEN 6" \
    "  WHEN 'BOOKING_CANCELLED' THEN 7 WHEN 'BOOKING_CANCEL_DECIDED' THEN 13" \
    "  ELSE 11 END, s.booking_id, s.at" \
    "  FROM replay_booking_steps s JOIN @.bookings b ON b.id = s.booking_id" \
    OF_USER("b.user_id") " AND s.action IN ('BOOKING_COMPLETED', 'BOOKING_CANCELLED'," \
    "  'BOOKING_RELEASED', 'BOOKING_CANCEL_DECIDED')" \
    " UNION ALL SELECT 8, p.id, p.created_at FROM @.payouts p WHERE @replay_user = 0" \
    " UNION ALL SELECT 12, c.id, c.created_at FROM @.audit_log c" \
    OF_USER("c.user_id") " AND c.action = 'BOOKING_RESCHEDULED'"
#define REPLAY_BOOKING_PAID \
    " LEFT JOIN (SELECT b.payment_intent_id, MIN(s.at) AS at FROM replay_booking_steps s" \
    "  JOIN @.bookings b ON b.id = s.booking_id WHERE s.action = 'BOOKING_PAID'" \
    "  GROUP BY b.payment_intent_id) bp ON e.type = 'payment_intent.succeeded'" \
    "  AND bp.payment_intent_id = e.object_id"

#endif
