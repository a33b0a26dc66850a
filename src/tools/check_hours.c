/*
 * live_help_hours: each user's totals row against their purchases and
 * redemptions.  Each table is grouped by user on its own (a grouping in
 * index order, 100,000 users in a tenth of a second) and the three sorted
 * lists are merged here, rather than the server grouping the union of all
 * their rows in a temporary table (several times slower).  The rows, their
 * order and the limit are those of the single statement this replaces:
 * every user in any of the tables, a missing side counting 0.  The three
 * reads share one snapshot (one transaction).
 */
#include <stdlib.h>

#include "invariants.h"

static cd_sql q_totals = CD_SQL(
    "SELECT user_id, hours_total, hours_used FROM user_live_help_totals"
    " ORDER BY user_id");
static cd_sql q_purchases = CD_SQL(
    "SELECT user_id, SUM(hours), SUM(hours_refunded) FROM live_help_purchases"
    " GROUP BY user_id ORDER BY user_id");
static cd_sql q_redemptions = CD_SQL(
    "SELECT user_id, SUM(hours), 0 FROM live_help_redemptions"
    " GROUP BY user_id ORDER BY user_id");

/* The smallest user not yet merged of the three lists (-1: none left). */
static long long
next_user(const int_list *l)
{
	const long long *r;
	long long u = -1;
	int i;

	for (i = 0; i < 3; i++)
		if ((r = int_list_peek(&l[i])) != NULL && (u < 0 || r[0] < u))
			u = r[0];
	return u;
}

/* Takes user u's two values from list l (0, 0 when it has none). */
static void
take(int_list *l, long long u, long long *a, long long *b)
{
	const long long *r = int_list_peek(l);

	*a = *b = 0;
	if (r != NULL && r[0] == u) {
		*a = r[1];
		*b = r[2];
		l->next++;
	}
}

static void
merge(int_list *l, json_t *rows)
{
	long long u, total, used, bought, reversed, redeemed, zero;

	while ((u = next_user(l)) >= 0 && json_array_size(rows) < INV_LIMIT) {
		take(&l[0], u, &total, &used);
		take(&l[1], u, &bought, &reversed);
		take(&l[2], u, &redeemed, &zero);
		if (total + reversed != bought || used != redeemed || used < 0 ||
		    used > total)
			json_array_append_new(rows, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
			    "user_id", u, "hours_total", total, "hours_used", used,
			    "hours_purchased", bought, "hours_reversed", reversed,
			    "hours_redeemed", redeemed));
	}
}

/* The three lists, read in one transaction (so from one snapshot). */
static cd_err
read_lists(void *ctx)
{
	int_list *l = ctx;
	cd_err err;
	int i;

	for (i = 0; i < 3; i++)
		l[i].n = l[i].next = 0;		/* a retried transaction starts over */
	if ((err = db_each(&q_totals, int_list_add, &l[0], "")) != CD_OK ||
	    (err = db_each(&q_purchases, int_list_add, &l[1], "")) != CD_OK)
		return err;
	return db_each(&q_redemptions, int_list_add, &l[2], "");
}

cd_err
check_live_help_hours(json_t **rows)
{
	int_list l[3] = { { .width = 3 }, { .width = 3 }, { .width = 3 } };
	cd_err err;
	int i;

	*rows = NULL;
	if ((err = db_tx(read_lists, l)) == CD_OK) {
		*rows = json_array();
		merge(l, *rows);
	}
	for (i = 0; i < 3; i++)
		free(l[i].v);
	return err;
}
