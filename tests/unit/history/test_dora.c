/* Unit tests for the DORA arithmetic (history/query.c: hist_dora_compute) on hand-made logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "history/internal.h"

#define H 3600000LL
#define D (24 * H)

static struct hist_rec r(long long t, const char *type, const char *env, const char *sha, long long commit_time,
			 unsigned failed)
{
	struct hist_rec x = {.time_ms = t, .commit_time_ms = commit_time, .commit = "", .id = "", .type = type,
			     .env = env, .app = "", .sha = sha, .actor = "a", .promotion = "", .json = "{}",
			     .failed = failed};
	return x;
}

static void frequency_and_lead_time(void **state)
{
	(void)state;
	struct hist_rec log[] = {
		r(10 * D, "sync.succeeded", "prod", "a", 10 * D - 2 * H, 0), /* lead 2h */
		r(10 * D + H, "sync.succeeded", "prod", "a", 10 * D - 2 * H, 0), /* resync: not a deploy */
		r(11 * D, "sync.succeeded", "prod", "b", 11 * D - 4 * H, 0), /* lead 4h */
		r(12 * D, "sync.succeeded", "prod", "c", 12 * D - 6 * H, 0), /* lead 6h */
		r(12 * D, "sync.succeeded", "dev", "x", 12 * D - 1 * H, 0),  /* other env */
	};
	struct hist_rec one_app = r(13 * D, "sync.succeeded", "prod", "d", 13 * D - H, 0);
	one_app.app = "web"; /* a single app's sync is not a deploy of the environment */
	struct hist_dora d0;
	hist_dora_compute(&d0, &one_app, 1, "prod", 10 * D, 14 * D);
	assert_int_equal(d0.deployments, 0);
	struct hist_dora d;
	hist_dora_compute(&d, log, 5, "prod", 10 * D, 14 * D);
	assert_int_equal(d.deployments, 3);
	assert_true(d.per_day > 0.74 && d.per_day < 0.76); /* 3 in 4 days */
	assert_int_equal(d.lead_samples, 3);
	assert_int_equal(d.lead_median_ms, 4 * H);
	assert_int_equal(d.lead_mean_ms, 4 * H);
	assert_int_equal(d.changes, 3);
	assert_int_equal(d.failed_changes, 0);
	assert_int_equal(d.restores, 0);
	assert_int_equal(d.restore_median_ms, -1);
	hist_dora_compute(&d, log, 5, NULL, 10 * D, 14 * D);
	assert_int_equal(d.deployments, 4);
	/* window: only what happened inside it counts */
	hist_dora_compute(&d, log, 5, "prod", 11 * D, 14 * D);
	assert_int_equal(d.deployments, 2);
	assert_int_equal(d.lead_median_ms, 5 * H);
}

static void failure_rate_and_time_to_restore(void **state)
{
	(void)state;
	struct hist_rec log[] = {
		r(1 * D, "sync.succeeded", "prod", "a", 0, 0),
		r(2 * D, "sync.failed", "prod", "b", 0, 2),          /* change b fails */
		r(2 * D + 30 * 60000, "sync.succeeded", "prod", "c", 0, 0), /* restored after 30 min by c */
		r(3 * D, "sync.succeeded", "prod", "d", 0, 0),
		r(3 * D + H, "health.degraded", "prod", "", 0, 0),   /* d degrades */
		r(3 * D + 2 * H, "rollback", "prod", "c", 0, 0),     /* same failure: counted once */
		r(3 * D + 3 * H, "sync.succeeded", "prod", "c", 0, 0), /* restored after 2h */
	};
	struct hist_dora d;
	hist_dora_compute(&d, log, 7, "prod", 1, 10 * D);
	assert_int_equal(d.changes, 5);         /* a, b, c, d, c again */
	assert_int_equal(d.failed_changes, 2);  /* b and d */
	assert_true(d.failure_rate > 0.39 && d.failure_rate < 0.41);
	assert_int_equal(d.restores, 2);
	assert_int_equal(d.restore_median_ms, (30 * 60000 + 2 * H) / 2);
	assert_int_equal(d.deployments, 4);     /* a, c, d, c (back to c after the rollback) */
}

static void empty_log(void **state)
{
	(void)state;
	struct hist_dora d;
	hist_dora_compute(&d, NULL, 0, NULL, 0, 0);
	assert_int_equal(d.deployments, 0);
	assert_true(d.per_day == 0);
	assert_true(d.failure_rate == 0);
	assert_int_equal(d.lead_median_ms, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frequency_and_lead_time),
		cmocka_unit_test(failure_rate_and_time_to_restore),
		cmocka_unit_test(empty_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
