/* Unit tests for history/event.c and snapshot rules: event encoding and its schema check, times,
 * and the replay rules (pins, healthy deploys, approvals threshold). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "history/internal.h"

#define SHA1 "0123456789abcdef0123456789abcdef01234567"
#define SHA2 "89abcdef0123456789abcdef0123456789abcdef"

static void sync_event_encodes_every_field(void **state)
{
	(void)state;
	struct hist_event ev = {.type = "sync.succeeded", .environment = "dev", .app = "web", .sha = SHA1,
				.actor = "alice", .trigger = "ci", .reason = "nightly", .has_counts = true, .created = 3,
				.updated = 2, .unchanged = 10, .pruned = 1, .failed = 0, .duration_ms = 1234,
				.commit_time = 1700000000, .promotion = NULL};
	json_t *j;
	assert_int_equal(hist_event_build(&j, &ev), 0);
	char *s = hist_event_dump(j);
	assert_null(strchr(s, '\n')); /* one line: the commit message */
	json_t *back = json_loads(s, 0, NULL);
	assert_true(json_equal(back, j));
	assert_int_equal(hist_event_validate(back), 0);
	assert_string_equal(json_string_value(json_object_get(back, "type")), "sync.succeeded");
	assert_string_equal(json_string_value(json_object_get(back, "trigger")), "ci");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(back, "counts"), "created")), 3);
	assert_int_equal(json_integer_value(json_object_get(back, "durationMs")), 1234);
	assert_string_equal(json_string_value(json_object_get(back, "commitTime")), "2023-11-14T22:13:20.000Z");
	const char *t = json_string_value(json_object_get(back, "time"));
	assert_int_equal(strlen(t), 24);
	assert_int_equal(t[23], 'Z');
	assert_int_equal(strlen(json_string_value(json_object_get(back, "id"))), 12);
	free(s);
	json_decref(back);
	json_decref(j);
}

static void ids_are_unique(void **state)
{
	(void)state;
	char a[13], b[13];
	hist_new_id(a);
	hist_new_id(b);
	assert_string_not_equal(a, b);
}

static void bad_events_are_refused(void **state)
{
	(void)state;
	json_t *j;
	struct hist_event ev = {.type = "sync.exploded", .environment = "dev", .sha = SHA1, .duration_ms = -1};
	assert_int_equal(hist_event_build(&j, &ev), GITOPS_EINVALID);
	ev.type = "sync.succeeded";
	ev.sha = "abc";
	assert_int_equal(hist_event_build(&j, &ev), GITOPS_EINVALID);
	ev.sha = SHA1;
	ev.trigger = "telepathy";
	assert_int_equal(hist_event_build(&j, &ev), GITOPS_EINVALID);
	const char *bad[] = {
		"{\"v\":1,\"id\":\"0123456789ab\",\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"sync.succeeded\",\"environment\":\"dev\",\"actor\":\"a\",\"trigger\":\"ci\"}", /* no sha */
		"{\"v\":1,\"id\":\"0123456789ab\",\"time\":\"yesterday\",\"type\":\"drift.detected\",\"environment\":\"dev\",\"actor\":\"a\",\"trigger\":\"ci\"}",
		"{\"v\":1,\"id\":\"0123456789ab\",\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"drift.detected\",\"environment\":\"dev\",\"actor\":\"a\",\"trigger\":\"ci\",\"password\":\"x\"}",
		"{\"v\":1,\"id\":\"0123456789ab\",\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"promotion.approved\",\"environment\":\"dev\",\"actor\":\"a\",\"trigger\":\"ci\",\"sha\":\"" SHA1 "\",\"promotion\":\"p1p1p1p1\"}",
		"{\"v\":2,\"id\":\"0123456789ab\",\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"drift.detected\",\"environment\":\"dev\",\"actor\":\"a\",\"trigger\":\"ci\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = json_loads(bad[i], 0, NULL);
		assert_non_null(b);
		assert_int_equal(hist_event_validate(b), GITOPS_EINVALID);
		json_decref(b);
	}
	json_t *good = json_loads("{\"v\":1,\"id\":\"0123456789ab\",\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"drift.detected\","
				  "\"environment\":\"dev\",\"actor\":\"a\",\"trigger\":\"webhook\"}", 0, NULL);
	assert_int_equal(hist_event_validate(good), 0);
	json_decref(good);
}

static void times_parse_and_format(void **state)
{
	(void)state;
	assert_int_equal(hist_time_ms("1970-01-01T00:00:01Z"), 1000);
	assert_int_equal(hist_time_ms("1970-01-01T00:00:01.5Z"), 1500);
	assert_int_equal(hist_time_ms("1970-01-01T01:00:00+01:00"), 0);
	assert_int_equal(hist_time_ms("1970-01-02"), 86400000);
	assert_int_equal(hist_time_ms("1970-13-02"), -1);
	assert_int_equal(hist_time_ms("1970-01-01T00:00:00"), -1); /* no zone */
	char out[32];
	hist_format_time(out, 1700000000123LL);
	assert_string_equal(out, "2023-11-14T22:13:20.123Z");
	long long t;
	assert_int_equal(hist_parse_time(&t, "2d"), 0);
	long long diff = hist_now_wall_ms() - t - 2 * 86400000LL;
	assert_true(diff >= 0 && diff < 5000);
	assert_int_equal(hist_parse_time(&t, "2026-11-01"), 0);
	assert_int_equal(hist_parse_time(&t, "soon"), GITOPS_EINVALID);
}

static json_t *ev(const char *type, const char *env, const char *sha, const char *extra)
{
	static int n;
	n++;
	char *s = gitops_sprintf("{\"v\":1,\"id\":\"evt%09d\",\"time\":\"2026-01-01T00:00:%02dZ\",\"type\":\"%s\","
				 "\"environment\":\"%s\",\"actor\":\"t\",\"trigger\":\"manual\"%s%s%s%s%s}",
				 n, n % 60, type, env, sha ? ",\"sha\":\"" : "", sha ? sha : "", sha ? "\"" : "",
				 extra ? "," : "", extra ? extra : "");
	json_t *j = json_loads(s, 0, NULL);
	free(s);
	assert_non_null(j);
	assert_int_equal(hist_event_validate(j), 0);
	return j;
}

static void apply(struct hist_snap *s, json_t *e)
{
	assert_int_equal(hist_snap_apply(s, e), 0);
	json_decref(e);
}

static void replay_pins_and_approvals(void **state)
{
	(void)state;
	struct hist_snap *s = hist_snap_new(NULL, NULL);
	json_t *e, *p;
	apply(s, ev("sync.succeeded", "dev", SHA1, "\"counts\":{\"created\":1,\"updated\":0,\"unchanged\":0,\"pruned\":0,\"failed\":0}"));
	apply(s, ev("sync.succeeded", "dev", SHA1, "\"counts\":{\"created\":0,\"updated\":0,\"unchanged\":1,\"pruned\":0,\"failed\":0}"));
	apply(s, ev("sync.succeeded", "dev", SHA2, "\"counts\":{\"created\":0,\"updated\":1,\"unchanged\":0,\"pruned\":0,\"failed\":1}"));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "lastHealthy")), SHA1); /* failed objects: not healthy */
	assert_int_equal(json_array_size(json_object_get(e, "deployed")), 1);            /* a resync is not a deploy */
	apply(s, ev("sync.succeeded", "dev", SHA2, "\"app\":\"web\",\"counts\":{\"created\":1,\"updated\":0,\"unchanged\":0,\"pruned\":0,\"failed\":0}"));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "lastHealthy")), SHA1); /* one app is not the env */
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(e, "apps"), "web"), "sha")), SHA2);
	apply(s, ev("promotion.requested", "prod", SHA1, "\"promotion\":\"prom00000001\",\"status\":\"pending\",\"required\":2,\"from\":\"dev\""));
	assert_int_equal(hist_snap_prom(&p, s, "prom00000001"), 0);
	assert_non_null(p);
	apply(s, ev("promotion.approved", "prod", SHA1, "\"promotion\":\"prom00000001\",\"approvals\":[{\"approver\":\"alice\",\"key\":\"k\",\"signature\":\"s\",\"decision\":\"approve\"}]"));
	assert_int_equal(hist_snap_env(&e, s, "prod"), 0);
	assert_null(json_object_get(e, "pinned"));
	apply(s, ev("promotion.approved", "prod", SHA1, "\"promotion\":\"prom00000001\",\"approvals\":[{\"approver\":\"bob\",\"key\":\"k2\",\"signature\":\"s\",\"decision\":\"approve\"}]"));
	assert_int_equal(hist_snap_env(&e, s, "prod"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "pinned")), SHA1);
	assert_string_equal(json_string_value(json_object_get(e, "promotion")), "prom00000001");
	assert_int_equal(hist_snap_prom(&p, s, "prom00000001"), 0);
	assert_null(p); /* no longer pending */
	/* an approval for a promotion that is not pending breaks the replay */
	json_t *late = ev("promotion.approved", "prod", SHA1, "\"promotion\":\"prom00000001\",\"approvals\":[{\"approver\":\"carol\",\"key\":\"k3\",\"signature\":\"s\",\"decision\":\"approve\"}]");
	assert_int_equal(hist_snap_apply(s, late), GITOPS_EINVALID);
	json_decref(late);
	apply(s, ev("rollback", "dev", SHA2, NULL));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "pinReason")), "rollback");
	apply(s, ev("resume", "dev", NULL, NULL));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_null(json_object_get(e, "pinned"));
	hist_snap_free(s);
}

/* The daemon's events: suspend and resume, its last error, an automatic rollback that marks
 * the failed commit, and drift events carrying the object and a count. */
static void replay_suspend_errors_and_auto_rollback(void **state)
{
	(void)state;
	struct hist_snap *s = hist_snap_new(NULL, NULL);
	json_t *e;
	apply(s, ev("suspend", "dev", NULL, "\"reason\":\"maintenance\""));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "suspended"), "reason")), "maintenance");
	apply(s, ev("rollback", "dev", SHA1, "\"previous\":\"" SHA2 "\""));
	/* a resume of a suspension only keeps the pin */
	apply(s, ev("resume", "dev", NULL, "\"status\":\"suspension\""));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_null(json_object_get(e, "suspended"));
	assert_string_equal(json_string_value(json_object_get(e, "pinned")), SHA1);
	assert_null(json_object_get(e, "rolledBack")); /* a manual rollback marks nothing */
	json_t *auto_rb = ev("rollback", "dev", SHA1, "\"previous\":\"" SHA2 "\"");
	json_object_set_new(auto_rb, "trigger", json_string("auto"));
	apply(s, auto_rb);
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(e, "rolledBack"), 0), "sha")), SHA2);
	apply(s, ev("daemon.error", "dev", NULL, "\"reason\":\"cluster unreachable\""));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "daemonError"), "reason")), "cluster unreachable");
	apply(s, ev("daemon.recovered", "dev", NULL, NULL));
	assert_int_equal(hist_snap_env(&e, s, "dev"), 0);
	assert_null(json_object_get(e, "daemonError"));
	apply(s, ev("drift.detected", "dev", NULL, "\"object\":\"ConfigMap dev/a\",\"count\":1"));
	json_t *bad = json_loads("{\"v\":1,\"id\":\"evt999999999\",\"time\":\"2026-01-01T00:00:00Z\",\"type\":"
				 "\"drift.corrected\",\"environment\":\"dev\",\"actor\":\"t\",\"trigger\":\"auto\",\"count\":0}", 0, NULL);
	assert_int_equal(hist_event_validate(bad), GITOPS_EINVALID);
	json_decref(bad);
	hist_snap_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sync_event_encodes_every_field),
		cmocka_unit_test(ids_are_unique),
		cmocka_unit_test(bad_events_are_refused),
		cmocka_unit_test(times_parse_and_format),
		cmocka_unit_test(replay_pins_and_approvals),
		cmocka_unit_test(replay_suspend_errors_and_auto_rollback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
