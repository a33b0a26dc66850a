/*
 * Counters for Prometheus, shared by every child of one responder family.
 * The children are separate processes (multiwatch execs each one), so the
 * counters live in a small POSIX shared-memory segment named after the
 * family and the stack (its public URL), mapped by every child and updated
 * with atomic adds; any child can render the family's totals.  Until
 * metrics_open() succeeds every call is a no-op, so the command-line tools
 * that share this code count nothing.
 */
#ifndef CD_METRICS_H
#define CD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "app.h"
#include "buf.h"

typedef enum cd_counter {
	M_WEBHOOK_RECEIVED,	/* verified events, duplicates included */
	M_WEBHOOK_DUPLICATE,	/* verified events already stored */
	M_WEBHOOK_FAILED,	/* verified events we could not process (503) */
	M_STRIPE_ERRORS,	/* Stripe calls that failed (network, 4xx/5xx) */
	M_NCOUNTERS
} cd_counter;

/* Maps (creating on first use) the family's segment; 0 = ok. */
int	 metrics_open(const cd_app *app);
/* One request: its route's index in the table (nroutes = none), status, time. */
void	 metrics_request(size_t route, int status, long long usec);
void	 metrics_count(cd_counter);
/* Whether path is this family's metrics location, /internal/metrics/<family>. */
bool	 metrics_path(const cd_app *app, const char *path);
/* The family's counters in the Prometheus text format (version 0.0.4). */
void	 metrics_render(const cd_app *app, cd_buf *out);

#endif
