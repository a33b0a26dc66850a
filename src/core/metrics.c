/*
 * Shared-memory counters for one responder family; see metrics.h.
 *
 * The segment is a fixed-size table: requests per route and status (the
 * statuses the product answers with, and "other"), one latency histogram
 * for the family, and the named counters.  Every field is a uint64_t that
 * only ever grows by __atomic_fetch_add, so readers need no lock and a
 * child killed mid-request loses at most its own increment.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "metrics.h"

#define MAX_ROUTES	64
#define SEG_MAGIC	0x63646d31u	/* "cdm1": bump when the layout changes */

static const int statuses[] = {
	200, 201, 204, 302, 303, 304, 400, 401, 402, 403, 404, 405, 409, 413,
	415, 422, 429, 500, 502, 503, 504,
};
#define NSTATUS	(sizeof(statuses) / sizeof(statuses[0]) + 1)	/* + other */

/* Upper bounds of the latency buckets, in microseconds (+Inf is count). */
static const long long bounds_us[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000,
};
#define NBUCKETS (sizeof(bounds_us) / sizeof(bounds_us[0]))

static const char *const outcomes[] = {
	[M_WEBHOOK_RECEIVED] = "received",
	[M_WEBHOOK_DUPLICATE] = "duplicate",
	[M_WEBHOOK_FAILED] = "failed",
};

struct segment {
	uint32_t	magic;
	uint64_t	requests[MAX_ROUTES + 1][NSTATUS];	/* + unmatched */
	uint64_t	buckets[NBUCKETS];
	uint64_t	count;
	uint64_t	sum_us;
	uint64_t	counters[M_NCOUNTERS];
};

static struct segment *seg;
static size_t nroutes;

static void
add(uint64_t *p, uint64_t n)
{
	if (seg != NULL)
		__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The family: the program's name without "creditdesk-". */
static const char *
family(const cd_app *app)
{
	return strncmp(app->name, "creditdesk-", 11) == 0 ? app->name + 11 :
	    app->name;
}

/* "/creditdesk-<family>-<FNV-1a of the public URL>": one per stack. */
static void
segment_name(const cd_app *app, char *out, size_t len)
{
	const char *s = cfg->public_url ? cfg->public_url : "";
	const char *fam = family(app);
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	snprintf(out, len, "/creditdesk-%s-%08x", fam, h);
}

int
metrics_open(const cd_app *app)
{
	char name[128];
	void *p;
	int fd;

	segment_name(app, name, sizeof(name));
	if ((fd = shm_open(name, O_RDWR | O_CREAT, 0600)) < 0 ||
	    ftruncate(fd, sizeof(struct segment)) != 0) {
		log_warn("metrics: no shared segment %s; not counting", name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	p = mmap(NULL, sizeof(struct segment), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	seg = p;
	/* A fresh segment is zeroes; one left by another layout starts over. */
	if (seg->magic != SEG_MAGIC) {
		memset(seg, 0, sizeof(*seg));
		seg->magic = SEG_MAGIC;
	}
	nroutes = app->nroutes < MAX_ROUTES ? app->nroutes : MAX_ROUTES;
	return 0;
}

static size_t
status_slot(int status)
{
	size_t i;

	for (i = 0; i < NSTATUS - 1; i++)
		if (statuses[i] == status)
			return i;
	return NSTATUS - 1;
}

void
metrics_request(size_t route, int status, long long usec)
{
	size_t i;

	if (seg == NULL)
		return;
	add(&seg->requests[route < nroutes ? route : MAX_ROUTES][status_slot(status)], 1);
	for (i = 0; i < NBUCKETS; i++)
		if (usec <= bounds_us[i])
			add(&seg->buckets[i], 1);
	add(&seg->count, 1);
	add(&seg->sum_us, usec > 0 ? (uint64_t)usec : 0);
}

void
metrics_count(cd_counter c)
{
	if (seg != NULL && c < M_NCOUNTERS)
		add(&seg->counters[c], 1);
}

static void
render_requests(const cd_app *app, const char *fam, cd_buf *out)
{
	size_t i, j;

	buf_puts(out, "# HELP creditdesk_http_requests_total Requests answered, by route and status.\n"
	    "# TYPE creditdesk_http_requests_total counter\n");
	for (i = 0; i <= MAX_ROUTES; i++) {
		if (i < MAX_ROUTES && i >= nroutes)
			continue;
		for (j = 0; j < NSTATUS; j++) {
			uint64_t n = get(&seg->requests[i][j]);
			char status[8];

			if (n == 0)
				continue;
			snprintf(status, sizeof(status), "%d", j < NSTATUS - 1 ?
			    statuses[j] : 0);
			buf_printf(out, "creditdesk_http_requests_total{family=\"%s\","
			    "route=\"%s %s\",status=\"%s\"} %llu\n", fam,
			    i < nroutes ? app->routes[i].method : "ANY",
			    i < nroutes ? app->routes[i].pattern : "unmatched",
			    j < NSTATUS - 1 ? status : "other", (unsigned long long)n);
		}
	}
}

static void
render_latency(const char *fam, cd_buf *out)
{
	size_t i;

	buf_puts(out, "# HELP creditdesk_http_request_duration_seconds Time to answer a request.\n"
	    "# TYPE creditdesk_http_request_duration_seconds histogram\n");
	for (i = 0; i < NBUCKETS; i++)
		buf_printf(out, "creditdesk_http_request_duration_seconds_bucket{family=\"%s\","
		    "le=\"%g\"} %llu\n", fam, bounds_us[i] / 1e6,
		    (unsigned long long)get(&seg->buckets[i]));
	buf_printf(out, "creditdesk_http_request_duration_seconds_bucket{family=\"%s\","
	    "le=\"+Inf\"} %llu\n", fam, (unsigned long long)get(&seg->count));
	buf_printf(out, "creditdesk_http_request_duration_seconds_sum{family=\"%s\"} %.6f\n",
	    fam, get(&seg->sum_us) / 1e6);
	buf_printf(out, "creditdesk_http_request_duration_seconds_count{family=\"%s\"} %llu\n",
	    fam, (unsigned long long)get(&seg->count));
}

static void
render_counters(const char *fam, cd_buf *out)
{
	size_t i;

	buf_puts(out, "# HELP creditdesk_webhook_events_total Webhook events by outcome.\n"
	    "# TYPE creditdesk_webhook_events_total counter\n");
	for (i = M_WEBHOOK_RECEIVED; i <= M_WEBHOOK_FAILED; i++)
		buf_printf(out, "creditdesk_webhook_events_total{family=\"%s\","
		    "outcome=\"%s\"} %llu\n", fam, outcomes[i],
		    (unsigned long long)get(&seg->counters[i]));
	buf_printf(out, "# HELP creditdesk_stripe_errors_total Stripe calls that failed"
	    " (network, timeout, 5xx).\n# TYPE creditdesk_stripe_errors_total counter\n"
	    "creditdesk_stripe_errors_total{family=\"%s\"} %llu\n", fam,
	    (unsigned long long)get(&seg->counters[M_STRIPE_ERRORS]));
}

bool
metrics_path(const cd_app *app, const char *path)
{
	return strncmp(path, "/internal/metrics/", 18) == 0 &&
	    strcmp(path + 18, family(app)) == 0;
}

void
metrics_render(const cd_app *app, cd_buf *out)
{
	const char *fam = family(app);

	if (seg == NULL)
		return;
	render_requests(app, fam, out);
	render_latency(fam, out);
	render_counters(fam, out);
}
