/* Unit tests for what a sync event carries beyond its counts (history/event.c): the apps it
 * changed and its failures, bounded and masked, and the schema check that refuses them where
 * they do not belong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "history/internal.h"

#define SHA1 "0123456789abcdef0123456789abcdef01234567"

static void failures_are_bounded_and_masked(void **state)
{
	(void)state;
	struct hist_failure f[30];
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (size_t i = 0; i < 30; i++)
		f[i] = (struct hist_failure){"Secret ns/db", i ? big : "Secret \"db\" is invalid: data:map[password:aHVudGVyMg==]"};
	const char *apps[] = {"api", "web"};
	struct hist_event ev = {.type = "sync.failed", .environment = "dev", .sha = SHA1, .actor = "a", .trigger = "manual",
				.has_counts = true, .failed = 30, .duration_ms = -1, .apps = apps, .n_apps = 2,
				.failures = f, .n_failures = 30};
	json_t *j;
	assert_int_equal(hist_event_build(&j, &ev), 0);
	json_t *fs = json_object_get(j, "failures");
	assert_int_equal(json_array_size(fs), HIST_MAX_FAILURES);
	const char *r0 = json_string_value(json_object_get(json_array_get(fs, 0), "reason"));
	assert_null(strstr(r0, "aHVudGVyMg"));
	assert_int_equal(strlen(json_string_value(json_object_get(json_array_get(fs, 1), "reason"))), HIST_MAX_REASON);
	assert_int_equal(json_array_size(json_object_get(j, "apps")), 2);
	assert_int_equal(hist_event_validate(j), 0);
	json_decref(j);
}

static void apps_and_failures_only_where_they_belong(void **state)
{
	(void)state;
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}]}", "v", 1, "id", "abcdef012345",
			      "time", "2026-11-30T04:00:00.000Z", "type", "sync.failed", "environment", "dev", "sha", SHA1,
			      "actor", "a", "trigger", "manual", "failures", "object", "x", "reason", "y");
	assert_int_equal(hist_event_validate(j), 0);
	json_object_set_new(j, "type", json_string("sync.succeeded"));
	assert_int_equal(hist_event_validate(j), GITOPS_EINVALID); /* failures on a success */
	assert_non_null(strstr(gitops_error_last(), "failures"));
	json_object_del(j, "failures");
	json_object_set_new(j, "type", json_string("health.degraded"));
	json_object_set_new(j, "apps", json_pack("[s]", "api"));
	assert_int_equal(hist_event_validate(j), GITOPS_EINVALID); /* apps on a non-sync event */
	assert_non_null(strstr(gitops_error_last(), "apps"));
	json_object_set_new(j, "type", json_string("drift.detected"));
	json_object_del(j, "apps");
	assert_int_equal(hist_event_validate(j), 0);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failures_are_bounded_and_masked),
		cmocka_unit_test(apps_and_failures_only_where_they_belong),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
