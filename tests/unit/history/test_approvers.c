/* Unit tests for history/approvers.c, filter.c and hist_record_sync on a temporary bare
 * repository (no cluster): the approver key lookup, the deploy wait (healthy, timed out,
 * cancelled), the query filters read from text, and a sync record taken as an event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history/history.h"
#include "support/support.h"

#define SHA1 "0123456789abcdef0123456789abcdef01234567"
#define SHA2 "89abcdef0123456789abcdef0123456789abcdef"

static char dir[64];
static hist *h;
static struct mf_config *cfg;
static char *alice_pub;

/* The policy: one gitops.yaml (cfg) in effect at every time. */
static const struct hist_policy policy = {t_one_config, &cfg};

static int setup(void **state)
{
	(void)state;
	if (t_tmpdir(dir, sizeof(dir), "approvers"))
		return -1;
	char *key = gitops_sprintf("%s/alice.key", dir);
	int rc = t_hist_open(&h, dir, "state", "data", NULL);
	rc = rc ? rc : hist_keygen(&alice_pub, key);
	char *y = rc ? NULL
		     : gitops_sprintf("apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - {name: dev, track: main}\n"
				      "  - name: prod\n    from: dev\n    approval: {required: 1, approvers: [{name: alice, "
				      "key: \"%s\"}]}\n",
				      alice_pub);
	rc = rc ? rc : mf_config_parse(&cfg, y, strlen(y), "gitops.yaml");
	if (!rc)
		hist_set_policy(h, &policy);
	free(y);
	free(key);
	return rc;
}

static int teardown(void **state)
{
	(void)state;
	hist_free(h);
	mf_config_free(cfg);
	free(alice_pub);
	return t_rmtree(dir);
}

static void approver_key_is_the_listed_one(void **state)
{
	(void)state;
	char *pub = NULL;
	assert_int_equal(hist_approver_key(&pub, cfg, "prod", "alice"), 0);
	assert_string_equal(pub, alice_pub);
	free(pub);
	assert_int_equal(hist_approver_key(&pub, cfg, "prod", "mallory"), GITOPS_EFORBIDDEN);
	assert_null(pub);
	assert_string_equal(gitops_error_last(), "refused: mallory is not an approver of prod in gitops.yaml");
	assert_int_equal(hist_approver_key(&pub, cfg, "dev", "alice"), GITOPS_EFORBIDDEN);
	assert_int_equal(hist_approver_key(&pub, cfg, "nope", "alice"), GITOPS_EFORBIDDEN);
}

static void record_sync_takes_an_event_and_skips_a_noop(void **state)
{
	(void)state;
	struct hist_event ev = {.type = "sync.succeeded", .environment = "dev", .sha = SHA1, .actor = "test",
				.trigger = HIST_TRIGGER_WEBHOOK, .has_counts = true, .created = 2, .duration_ms = 5,
				.commit_time = 1700000000};
	json_t *rec = NULL;
	assert_int_equal(hist_record_sync(&rec, h, &ev), 0);
	assert_non_null(rec);
	assert_string_equal(json_string_value(json_object_get(rec, "trigger")), "webhook");
	assert_string_equal(json_string_value(json_object_get(rec, "commitTime")), "2023-11-14T22:13:20.000Z");
	json_decref(rec);
	/* the same SHA again, nothing changed: a no-op, not an event */
	ev.created = 0;
	ev.unchanged = 2;
	json_t *sentinel = json_object();
	rec = sentinel;
	assert_int_equal(hist_record_sync(&rec, h, &ev), 0);
	assert_null(rec);
	json_decref(sentinel);
	struct hist_filter f = {.type = "sync."};
	json_t *arr = NULL;
	assert_int_equal(hist_query(&arr, h, &f), 0);
	assert_int_equal(json_array_size(arr), 1);
	json_decref(arr);
	/* only sync events */
	struct hist_event other = {.type = "drift.detected", .environment = "dev", .object = "ConfigMap a/b"};
	assert_int_equal(hist_record_sync(NULL, h, &other), GITOPS_EINVALID);
}

static void wait_deployed_ends_healthy_timed_out_or_cancelled(void **state)
{
	(void)state;
	/* dev ran SHA1 healthy (the test before) */
	assert_int_equal(hist_wait_deployed(h, "dev", SHA1, NULL, 1000, 10, NULL), 0);
	assert_int_equal(hist_wait_deployed(h, "dev", SHA2, NULL, 50, 10, NULL), GITOPS_ETIMEOUT);
	assert_non_null(strstr(gitops_error_last(), "timed out waiting for dev to run 89abcdef0123"));
	gitops_cancel *cancel = NULL;
	assert_int_equal(gitops_cancel_new(&cancel), 0);
	gitops_cancel_set(cancel);
	/* a wait of ten minutes returns at once: the token is set */
	assert_int_equal(hist_wait_deployed(h, "dev", SHA2, NULL, 600000, 1000, cancel), GITOPS_ERROR);
	assert_non_null(strstr(gitops_error_last(), "cancelled"));
	gitops_cancel_free(cancel);
}

static void filters_read_from_text(void **state)
{
	(void)state;
	struct hist_filter f = {.type = "sync.", .limit = 50};
	assert_int_equal(hist_filter_parse(&f, "2026-11-01", "2026-11-02T00:00:00Z", NULL), 0);
	assert_true(f.since_ms > 0 && f.until_ms - f.since_ms == 86400000LL);
	assert_int_equal(f.limit, 50);
	assert_int_equal(hist_filter_parse(&f, NULL, NULL, "7"), 0);
	assert_int_equal(f.limit, 7);
	assert_int_equal(hist_filter_parse(&f, NULL, NULL, "x"), GITOPS_EINVALID);
	assert_string_equal(gitops_error_last(), "limit wants a number, got x");
	assert_int_equal(hist_filter_parse(&f, NULL, NULL, "-1"), GITOPS_EINVALID);
	assert_int_equal(hist_filter_parse(&f, "yesterday", NULL, NULL), GITOPS_EINVALID);
	struct hist_filter t = {.type = "nope"};
	assert_int_equal(hist_filter_parse(&t, NULL, NULL, NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "unknown event type nope"));
	t.type = "promotion*";
	assert_int_equal(hist_filter_parse(&t, NULL, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(approver_key_is_the_listed_one),
		cmocka_unit_test(record_sync_takes_an_event_and_skips_a_noop),
		cmocka_unit_test(wait_deployed_ends_healthy_timed_out_or_cancelled),
		cmocka_unit_test(filters_read_from_text),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
