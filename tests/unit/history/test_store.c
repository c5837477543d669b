/* Unit tests for history/store.c and query.c on a temporary bare repository (no cluster): single
 * and batched appends, the snapshot, the index kept up to date, verification of the result,
 * and two processes appending at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "history/history.h"
#include "support/support.h"

#define SHA1 "0123456789abcdef0123456789abcdef01234567"
#define SHA2 "89abcdef0123456789abcdef0123456789abcdef"

static char dir[64];
static hist *h;
static struct mf_config *cfg;

/* The policy: one gitops.yaml (cfg) in effect at every time. */
static const struct hist_policy policy = {t_one_config, &cfg};

static int setup(void **state)
{
	(void)state;
	if (t_tmpdir(dir, sizeof(dir), "store"))
		return -1;
	static const char y[] = "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - {name: dev, track: main}\n"
				"  - {name: staging, track: main}\n  - {name: prod, track: main}\n";
	int rc = mf_config_parse(&cfg, y, sizeof(y) - 1, "gitops.yaml");
	return rc ? rc : t_hist_open(&h, dir, "state", "data", &policy);
}

static int teardown(void **state)
{
	(void)state;
	hist_free(h);
	mf_config_free(cfg);
	return t_rmtree(dir);
}

static struct hist_event sync_ev(const char *env, const char *sha, unsigned failed)
{
	struct hist_event e = {.type = failed ? "sync.failed" : "sync.succeeded", .environment = env, .sha = sha,
			       .actor = "test", .trigger = "auto", .has_counts = true, .failed = failed,
			       .duration_ms = 10, .commit_time = 1700000000};
	return e;
}

static size_t count(const struct hist_filter *f)
{
	json_t *a = NULL;
	assert_int_equal(hist_query(&a, h, f), 0);
	size_t n = json_array_size(a);
	json_decref(a);
	return n;
}

static void appends_update_snapshot_and_index(void **state)
{
	(void)state;
	struct hist_filter all = {0};
	json_t *none = NULL;
	/* no branch yet: "no state branch", not an empty history */
	assert_int_equal(hist_query(&none, h, &all), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "no state branch"));
	struct hist_event e = sync_ev("dev", SHA1, 0);
	assert_int_equal(hist_record(NULL, h, &e), 0);
	e = sync_ev("dev", SHA2, 2);
	assert_int_equal(hist_record(NULL, h, &e), 0);
	json_t *st = NULL;
	assert_int_equal(hist_env_state(&st, h, "dev"), 0);
	assert_string_equal(json_string_value(json_object_get(st, "lastHealthy")), SHA1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(st, "lastSync"), "result")), "failed");
	json_decref(st);
	char pin[41];
	assert_int_equal(hist_pin(pin, h, "dev"), GITOPS_ENOTFOUND);
	assert_int_equal(count(&all), 2);
	struct hist_filter f = {.type = "sync.failed"};
	assert_int_equal(count(&f), 1);
	struct hist_filter g = {.type = "sync.", .sha = "0123"};
	assert_int_equal(count(&g), 1);
}

static void batches_land_in_order(void **state)
{
	(void)state;
	struct hist_event evs[300];
	for (int i = 0; i < 300; i++)
		evs[i] = sync_ev(i % 2 ? "staging" : "prod", i % 3 ? SHA1 : SHA2, 0);
	assert_int_equal(hist_record_batch(h, evs, 300), 0);
	struct hist_filter f = {.env = "prod"};
	assert_int_equal(count(&f), 150);
	json_t *a = NULL;
	struct hist_filter last = {.limit = 1};
	assert_int_equal(hist_query(&a, h, &last), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "environment")), "staging");
	json_decref(a);
	struct hist_event bad = {.type = "rollback", .environment = "prod", .sha = SHA1};
	assert_int_equal(hist_record_batch(h, &bad, 1), GITOPS_EINVALID);
	struct hist_verify_report r;
	assert_int_equal(hist_verify(&r, h), 0);
	assert_true(r.events >= 302);
	hist_verify_report_clear(&r);
	struct hist_dora d;
	assert_int_equal(hist_dora(&d, h, "prod", 1, 0), 0);
	assert_true(d.deployments >= 2);
}

static void two_processes_append_at_once(void **state)
{
	(void)state;
	struct hist_filter f = {.type = "drift.detected"};
	size_t before = count(&f);
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			hist *mine = NULL;
			char *repo = gitops_sprintf("%s/state.git", dir), *data = gitops_sprintf("%s/data-%d", dir, k);
			struct hist_options o = {.repo = repo, .data_dir = data};
			int rc = hist_open(&mine, &o);
			for (int i = 0; i < 20 && !rc; i++) {
				struct hist_event e = {.type = "drift.detected", .environment = k ? "a" : "b", .actor = "t",
						       .trigger = "auto", .duration_ms = -1};
				if (i % 5 == 4) {
					struct hist_event b[3] = {e, e, e};
					rc = hist_record_batch(mine, b, 3);
				} else {
					rc = hist_record(NULL, mine, &e);
				}
			}
			hist_free(mine);
			_exit(rc ? 1 : 0);
		}
	}
	for (int k = 0; k < 2; k++) {
		int st;
		waitpid(kids[k], &st, 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(count(&f), before + 2 * (16 + 4 * 3));
	struct hist_verify_report r;
	assert_int_equal(hist_verify(&r, h), 0);
	hist_verify_report_clear(&r);
}

/* Another process keeps moving the branch while every attempt of ours is slowed down
 * (GITOPS_TEST_APPEND_DELAY_MS): with the cancel flag set the append gives up after its first
 * attempts instead of retrying for up to 500; without contention a cancelled append still lands. */
static void cancelled_append_stops_retrying(void **state)
{
	(void)state;
	char *stop = gitops_sprintf("%s/stop-writer", dir);
	pid_t kid = fork();
	if (kid == 0) {
		hist *mine = NULL;
		char *repo = gitops_sprintf("%s/state.git", dir), *data = gitops_sprintf("%s/data-w", dir);
		struct hist_options o = {.repo = repo, .data_dir = data};
		int rc = hist_open(&mine, &o);
		for (int i = 0; i < 3000 && !rc && access(stop, F_OK) != 0; i++) {
			struct hist_event e = {.type = "drift.detected", .environment = "w", .actor = "t", .trigger = "auto",
					       .duration_ms = -1};
			rc = hist_record(NULL, mine, &e);
		}
		hist_free(mine);
		_exit(rc ? 1 : 0);
	}
	atomic_bool flag = true;
	hist_set_cancel(h, &flag);
	setenv("GITOPS_TEST_APPEND_DELAY_MS", "150", 1);
	struct hist_event e = {.type = "drift.detected", .environment = "c", .actor = "t", .trigger = "auto",
			       .duration_ms = -1};
	int rc = hist_record(NULL, h, &e);
	char *msg = gitops_strdup(gitops_error_last());
	unsetenv("GITOPS_TEST_APPEND_DELAY_MS");
	FILE *f = fopen(stop, "w");
	if (f)
		fclose(f);
	int st;
	waitpid(kid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(rc, GITOPS_ETIMEOUT);
	assert_non_null(strstr(msg, "cancelled after 10 attempts"));
	free(msg);
	struct hist_filter fc = {.type = "drift.detected", .env = "c"};
	assert_int_equal(count(&fc), 0);
	/* nobody else writing: the first attempt lands although the flag is set */
	assert_int_equal(hist_record(NULL, h, &e), 0);
	assert_int_equal(count(&fc), 1);
	hist_set_cancel(h, NULL);
	free(stop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(appends_update_snapshot_and_index),
		cmocka_unit_test(batches_land_in_order),
		cmocka_unit_test(two_processes_append_at_once),
		cmocka_unit_test(cancelled_append_stops_retrying),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
