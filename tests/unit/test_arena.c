/*
 * Unit tests for the per-request arena (src/core/arena.c): bump allocation
 * and reset, and its cleanup list (order, many entries, each run once).
 */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "arena.h"
#include "unit.h"

START_TEST(arena_allocates_and_resets)
{
	cd_arena *a = arena_new();
	char *big, *s;
	int i;

	for (i = 0; i < 1000; i++) {
		s = arena_printf(a, "item-%d", i);
		ck_assert_str_eq(s, arena_printf(a, "item-%d", i));
	}
	big = arena_alloc(a, 100000);
	memset(big, 'x', 100000);
	ck_assert_uint_eq((uintptr_t)big % sizeof(max_align_t), 0);
	arena_reset(a);
	s = arena_strndup(a, "abcdef", 3);
	ck_assert_str_eq(s, "abc");
	arena_free(a);
}
END_TEST

/* Each cleanup appends its number to a log, so order and count are visible. */
struct log {
	int	 seen[5000];
	int	 n;
};
struct entry {
	struct log	*log;
	int		 id;
};

static void
record(void *arg)
{
	struct entry *e = arg;

	e->log->seen[e->log->n++] = e->id;
}

static void
defer_entry(cd_arena *a, struct log *log, int id)
{
	struct entry *e = arena_alloc(a, sizeof(*e));

	e->log = log;
	e->id = id;
	arena_defer(a, record, e);
}

/*
 * arena_printf writes in place when the text fits the current chunk, and
 * into a chunk of its own when not: texts stay whole, distinct and aligned
 * either way, right up to the chunk's last byte.
 */
START_TEST(printf_fits_and_overflows)
{
	cd_arena *a = arena_new();
	char big[40000];
	const char *s1, *s2, *s3;
	size_t fill;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (fill = 16300; fill < 16400; fill += 7) {
		arena_reset(a);
		(void)arena_alloc(a, fill);
		s1 = arena_printf(a, "%s-%d", "abcdefghijklmnop", 17);
		s2 = arena_printf(a, "%.*s", 100, big);
		s3 = arena_printf(a, "<%s>", big);
		ck_assert_str_eq(s1, "abcdefghijklmnop-17");
		ck_assert_uint_eq(strlen(s2), 100);
		ck_assert_uint_eq(strlen(s3), sizeof(big) + 1);
		ck_assert(s3[0] == '<' && s3[sizeof(big)] == '>');
		ck_assert_uint_eq((uintptr_t)s1 % sizeof(max_align_t), 0);
		ck_assert_uint_eq((uintptr_t)s2 % sizeof(max_align_t), 0);
		ck_assert(s2 >= s1 + strlen(s1) + 1 || s2 + 101 <= s1);
		ck_assert_str_eq(arena_strdup(a, "after"), "after");
		ck_assert_str_eq(s1, "abcdefghijklmnop-17");
	}
	arena_free(a);
}
END_TEST

START_TEST(cleanups_run_newest_first)
{
	cd_arena *a = arena_new();
	struct log log = { .n = 0 };

	defer_entry(a, &log, 1);
	defer_entry(a, &log, 2);
	defer_entry(a, &log, 3);
	ck_assert_int_eq(log.n, 0);	/* nothing runs before the reset */
	arena_reset(a);
	ck_assert_int_eq(log.n, 3);
	ck_assert_int_eq(log.seen[0], 3);
	ck_assert_int_eq(log.seen[1], 2);
	ck_assert_int_eq(log.seen[2], 1);
	arena_free(a);
}
END_TEST

/* Far more than the old 32-value limit, across many arena chunks. */
START_TEST(cleanups_many_entries)
{
	cd_arena *a = arena_new();
	struct log *log = calloc(1, sizeof(*log));
	int i;

	for (i = 0; i < 5000; i++) {
		defer_entry(a, log, i);
		arena_alloc(a, 64);	/* interleaved with other allocations */
	}
	arena_reset(a);
	ck_assert_int_eq(log->n, 5000);
	for (i = 0; i < 5000; i++)
		ck_assert_int_eq(log->seen[i], 4999 - i);
	arena_free(a);
	free(log);
}
END_TEST

START_TEST(cleanups_run_once)
{
	cd_arena *a = arena_new();
	struct log log = { .n = 0 };

	defer_entry(a, &log, 7);
	arena_run_cleanups(a);
	ck_assert_int_eq(log.n, 1);
	arena_run_cleanups(a);		/* the list is empty now */
	arena_reset(a);
	ck_assert_int_eq(log.n, 1);
	defer_entry(a, &log, 8);	/* a reset arena takes new entries */
	arena_free(a);			/* free runs them too */
	ck_assert_int_eq(log.n, 2);
	ck_assert_int_eq(log.seen[1], 8);
}
END_TEST

/* A cleanup that defers another: the new one runs in the same pass, once. */
static struct log chained;

static void
second(void *arg)
{
	chained.seen[chained.n++] = 2;
}

static void
first(void *arg)
{
	chained.seen[chained.n++] = 1;
	arena_defer(arg, second, NULL);
}

START_TEST(cleanup_deferred_by_a_cleanup)
{
	cd_arena *a = arena_new();

	chained.n = 0;
	arena_defer(a, first, a);
	arena_reset(a);
	ck_assert_int_eq(chained.n, 2);
	ck_assert_int_eq(chained.seen[0], 1);
	ck_assert_int_eq(chained.seen[1], 2);
	arena_reset(a);
	ck_assert_int_eq(chained.n, 2);
	arena_free(a);
}
END_TEST

/* arena_json takes the caller's reference and drops exactly that one. */
START_TEST(json_released_at_reset)
{
	cd_arena *a = arena_new();
	json_t *kept = json_object(), *j;

	ck_assert_ptr_null(arena_json(a, NULL));
	j = arena_json(a, json_incref(kept));
	ck_assert_ptr_eq(j, kept);
	ck_assert_int_eq(kept->refcount, 2);
	arena_reset(a);
	ck_assert_int_eq(kept->refcount, 1);
	json_decref(kept);
	arena_free(a);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("arena");
	TCase *tc = tcase_create("arena");

	tcase_add_test(tc, arena_allocates_and_resets);
	tcase_add_test(tc, printf_fits_and_overflows);
	tcase_add_test(tc, cleanups_run_newest_first);
	tcase_add_test(tc, cleanups_many_entries);
	tcase_add_test(tc, cleanups_run_once);
	tcase_add_test(tc, cleanup_deferred_by_a_cleanup);
	tcase_add_test(tc, json_released_at_reset);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
