/* Unit tests for reconcile/health.c's rules: live objects recorded from the local control plane
 * with kube-controller-manager, kube-scheduler and kwok (tests/fixtures/health, re-recorded by
 * its record.sh), each in a known state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "reconcile/health.h"
#include "support/support.h"

#define FIXTURES "tests/fixtures/health/live/"

static json_t *load(const char *name) { return t_fixture(FIXTURES "%s.json", name); }

/* Asserts the health of fixture `name` and that its reason contains `needle`. */
static void expect(const char *name, enum rec_health want, const char *needle)
{
	json_t *obj = load(name);
	char reason[REC_HEALTH_REASON_MAX];
	enum rec_health got = rec_health_assess(obj, reason, sizeof reason);
	json_decref(obj);
	if (got != want || !strstr(reason, needle))
		fail_msg("%s: want %s (reason containing \"%s\"), got %s: %s", name, rec_health_name(want), needle,
			 rec_health_name(got), reason);
	assert_null(strchr(reason, '\n'));
}

static void test_deployment(void **state)
{
	expect("deployment-ready", REC_HEALTHY, "2 of 2 replicas ready");
	/* Pods of an image tagged `broken` never get Ready: updated but not available. */
	expect("deployment-broken", REC_PROGRESSING, "0 of 2 updated replicas available");
	expect("deployment-deadline", REC_DEGRADED, "ProgressDeadlineExceeded");
	expect("deployment-paused", REC_HEALTHY, "paused");
}

static void test_replicaset_statefulset_daemonset(void **state)
{
	expect("replicaset-ready", REC_HEALTHY, "2 of 2 replicas ready");
	expect("replicaset-broken", REC_PROGRESSING, "0 of 2 replicas available");
	expect("statefulset-ready", REC_HEALTHY, "rolled out: 2 of 2");
	expect("statefulset-broken", REC_PROGRESSING, "0 of 2 replicas ready");
	expect("daemonset-ready", REC_HEALTHY, "rolled out: 3 of 3 pods ready");
	expect("daemonset-broken", REC_PROGRESSING, "0 of 3 pods available");
}

static void test_job(void **state)
{
	expect("job-complete", REC_HEALTHY, "job complete: 1 succeeded");
	expect("job-running", REC_PROGRESSING, "1 active");
	expect("job-failed", REC_DEGRADED, "DeadlineExceeded");
	expect("job-suspended", REC_HEALTHY, "suspended");
}

static void test_pod(void **state)
{
	expect("pod-ready", REC_HEALTHY, "running and ready");
	expect("pod-broken", REC_DEGRADED, "CrashLoopBackOff");
	expect("pod-succeeded", REC_HEALTHY, "succeeded");
}

static void test_pvc_service(void **state)
{
	expect("pvc-bound", REC_HEALTHY, "bound");
	expect("pvc-pending", REC_PROGRESSING, "Pending");
	expect("service-clusterip", REC_HEALTHY, "ClusterIP");
	expect("service-lb-pending", REC_PROGRESSING, "load balancer");
	expect("service-lb-ready", REC_HEALTHY, "192.0.2.10");
}

static void test_crd_apiservice(void **state)
{
	expect("crd-established", REC_HEALTHY, "established");
	/* Same group and kind as widgets.health.example.com. */
	expect("crd-names-conflict", REC_DEGRADED, "names not accepted");
	expect("apiservice-local", REC_HEALTHY, "available");
	expect("apiservice-unavailable", REC_PROGRESSING, "ServiceNotFound");
}

static void test_generic(void **state)
{
	expect("node-ready", REC_HEALTHY, "Ready");
	expect("configmap", REC_HEALTHY, "applied");
	expect("configmap-deleting", REC_PROGRESSING, "being deleted");
	expect("widget-no-status", REC_HEALTHY, "applied");
	expect("widget-not-ready", REC_PROGRESSING, "Ready=False: Starting: waiting for the gear");
	expect("widget-ready", REC_HEALTHY, "Ready");
	expect("widget-stalled", REC_DEGRADED, "stalled: BadSpec: size too large");
	expect("widget-reconciling", REC_PROGRESSING, "reconciling: Progressing: step 2 of 3");
	expect("widget-stale-generation", REC_PROGRESSING, "generation 2 not yet observed");
}

/* Hand-made variants of recorded objects, for rules the control plane cannot reach here. */
static void test_variants(void **state)
{
	char reason[REC_HEALTH_REASON_MAX];
	json_t *o = load("pvc-pending");
	json_object_set_new(json_object_get(o, "status"), "phase", json_string("Lost"));
	assert_int_equal(rec_health_assess(o, reason, sizeof reason), REC_DEGRADED);
	json_decref(o);

	o = load("pod-ready");
	json_object_set_new(json_object_get(o, "status"), "phase", json_string("Failed"));
	assert_int_equal(rec_health_assess(o, reason, sizeof reason), REC_DEGRADED);
	json_decref(o);

	/* A multi-line condition message stays one line, truncated to the buffer. */
	o = load("widget-not-ready");
	json_t *c = json_array_get(json_object_get(json_object_get(o, "status"), "conditions"), 0);
	json_object_set_new(c, "message", json_string("line one\nline two\r\n"));
	assert_int_equal(rec_health_assess(o, reason, sizeof reason), REC_PROGRESSING);
	assert_null(strchr(reason, '\n'));
	assert_null(strchr(reason, '\r'));
	assert_non_null(strstr(reason, "line one line two"));
	char tiny[8];
	assert_int_equal(rec_health_assess(o, tiny, sizeof tiny), REC_PROGRESSING);
	assert_int_equal(strlen(tiny), 7);
	assert_int_equal(rec_health_assess(o, NULL, 0), REC_PROGRESSING);
	json_decref(o);

	/* Counts complete but the controller has not said NewReplicaSetAvailable yet. */
	o = load("deployment-ready");
	json_t *conds = json_object_get(json_object_get(o, "status"), "conditions");
	size_t i;
	json_t *cond;
	json_array_foreach(conds, i, cond)
		if (!strcmp(json_string_value(json_object_get(cond, "type")), "Progressing"))
			json_object_set_new(cond, "reason", json_string("ReplicaSetUpdated"));
	assert_int_equal(rec_health_assess(o, reason, sizeof reason), REC_PROGRESSING);
	assert_string_equal(reason, "new ReplicaSet not yet available");
	json_decref(o);

	/* A StatefulSet with OnDelete updates is not tracked; an unknown kind with no status is. */
	o = load("statefulset-broken");
	json_object_set_new(json_object_get(json_object_get(o, "spec"), "updateStrategy"), "type", json_string("OnDelete"));
	assert_int_equal(rec_health_assess(o, reason, sizeof reason), REC_HEALTHY);
	json_decref(o);

	/* Not an object at all: healthy once applied, no crash. */
	json_t *empty = json_object();
	assert_int_equal(rec_health_assess(empty, reason, sizeof reason), REC_HEALTHY);
	json_decref(empty);
	assert_string_equal(rec_health_name(REC_DEGRADED), "Degraded");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deployment),
		cmocka_unit_test(test_replicaset_statefulset_daemonset),
		cmocka_unit_test(test_job),
		cmocka_unit_test(test_pod),
		cmocka_unit_test(test_pvc_service),
		cmocka_unit_test(test_crd_apiservice),
		cmocka_unit_test(test_generic),
		cmocka_unit_test(test_variants),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
