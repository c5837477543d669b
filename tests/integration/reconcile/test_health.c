/* Integration tests for rec_health_wait on the local control plane (kube-controller-manager,
 * kube-scheduler, kwok nodes): a healthy Deployment and a Job become healthy; a Deployment whose
 * image is tagged `broken` never does and is reported with its reason; a Deployment past its
 * progress deadline ends a fail-fast wait; a cancel flag ends a wait; one watch per kind and
 * namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube/kube.h"
#include "reconcile/health.h"
#include "support/support.h"

static kube_client *client;
static char *ns;

static json_t *deployment(const char *name, const char *image, int deadline)
{
	json_t *d = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i, s:{s:{s:s}}, s:{s:{s:{s:s}}, s:{s:[{s:s, s:s}]}}}}",
			      "apiVersion", "apps/v1", "kind", "Deployment",
			      "metadata", "name", name, "namespace", ns,
			      "spec", "replicas", 2, "selector", "matchLabels", "app", name,
			      "template", "metadata", "labels", "app", name,
			      "spec", "containers", "name", "app", "image", image);
	assert_non_null(d);
	if (deadline)
		json_object_set_new(json_object_get(d, "spec"), "progressDeadlineSeconds", json_integer(deadline));
	return d;
}

static json_t *job(const char *name)
{
	json_t *j = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:{s:s, s:[{s:s, s:s}]}}}}",
			      "apiVersion", "batch/v1", "kind", "Job", "metadata", "name", name, "namespace", ns,
			      "spec", "template", "spec", "restartPolicy", "Never",
			      "containers", "name", "migrate", "image", "migrate:1");
	assert_non_null(j);
	return j;
}

static void apply(json_t *obj)
{
	struct kube_apply_options o = {.force = true};
	if (kube_apply(NULL, NULL, client, obj, &o))
		fail_msg("apply: %s", gitops_error_last());
}

static const struct rec_health_result *find(const struct rec_health_report *r, const char *name)
{
	for (size_t i = 0; i < r->n_unhealthy; i++)
		if (!strcmp(r->unhealthy[i].name, name))
			return &r->unhealthy[i];
	return NULL;
}

static int changes;
static void count_change(void *ud, const struct rec_health_result *r)
{
	(void)ud;
	assert_non_null(r->reason);
	changes++;
}

static void test_healthy_and_broken(void **state)
{
	json_t *objs[3] = {deployment("web", "nginx:1.27", 0), job("migrate"),
			   deployment("bad", "example.com/app:broken", 0)};
	for (int i = 0; i < 3; i++)
		apply(objs[i]);

	/* The healthy Deployment and the Job: rolled out and complete (the Deployment listed
	 * twice, as two apps may apply the same object). */
	struct rec_health_report rep;
	struct rec_health_wait_options o = {.timeout_ms = 120000, .on_change = count_change};
	changes = 0;
	json_t *healthy[3] = {objs[0], objs[1], objs[0]};
	int rc = rec_health_wait(&rep, client, healthy, 3, &o);
	if (rc)
		fail_msg("healthy objects: %s", gitops_error_last());
	assert_int_equal(rep.outcome, REC_HEALTH_ALL_HEALTHY);
	assert_int_equal(rep.healthy, 3);
	assert_int_equal(rep.n_unhealthy, 0);
	assert_int_equal(rep.watches, 2); /* deployments and jobs in one namespace */
	assert_true(changes >= 3);
	rec_health_report_free(&rep);

	/* With the broken one: the wait times out naming it, and only it. */
	o.timeout_ms = 8000;
	rc = rec_health_wait(&rep, client, objs, 3, &o);
	assert_int_equal(rc, GITOPS_ETIMEOUT);
	assert_int_equal(rep.outcome, REC_HEALTH_TIMED_OUT);
	assert_int_equal(rep.healthy, 2);
	assert_int_equal(rep.n_unhealthy, 1);
	assert_int_equal(rep.watches, 2); /* both Deployments share one watch */
	const struct rec_health_result *bad = find(&rep, "bad");
	assert_non_null(bad);
	assert_int_equal(bad->health, REC_PROGRESSING);
	assert_string_equal(bad->kind, "Deployment");
	assert_string_equal(bad->ns, ns);
	if (!strstr(bad->reason, "0 of 2 updated replicas available"))
		fail_msg("reason: %s", bad->reason);
	assert_non_null(strstr(gitops_error_last(), "1 of 3 objects not healthy"));
	assert_non_null(strstr(gitops_error_last(), "Deployment"));
	rec_health_report_free(&rep);
	for (int i = 0; i < 3; i++)
		json_decref(objs[i]);
}

static void test_deadline_fails_fast(void **state)
{
	json_t *d = deployment("deadline", "example.com/app:broken", 1);
	apply(d);
	struct rec_health_report rep;
	struct rec_health_wait_options o = {.timeout_ms = 120000, .fail_fast = true};
	int rc = rec_health_wait(&rep, client, &d, 1, &o);
	assert_int_equal(rc, GITOPS_ERROR);
	assert_int_equal(rep.outcome, REC_HEALTH_FAILED);
	assert_int_equal(rep.n_unhealthy, 1);
	assert_int_equal(rep.unhealthy[0].health, REC_DEGRADED);
	if (!strstr(rep.unhealthy[0].reason, "ProgressDeadlineExceeded"))
		fail_msg("reason: %s", rep.unhealthy[0].reason);
	rec_health_report_free(&rep);
	json_decref(d);
}

/* The watch selects by the labels the objects have in common: labelled objects are found,
 * and an object without the labels it is expected to carry is not. */
static void test_label_selector(void **state)
{
	json_t *tagged = deployment("tagged", "nginx:1.27", 0);
	json_object_set_new(json_object_get(tagged, "metadata"), "labels", json_pack("{s:s, s:s}", "team", "a", "tier", "web"));
	apply(tagged);
	json_t *other = job("tagged-job");
	json_object_set_new(json_object_get(other, "metadata"), "labels", json_pack("{s:s}", "team", "a"));
	apply(other);
	/* A ConfigMap has no status: healthy once applied, with no watch of its own. */
	json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
			       "name", "settings", "namespace", ns);
	json_t *objs[3] = {tagged, other, cm};
	struct rec_health_report rep;
	struct rec_health_wait_options o = {.timeout_ms = 120000};
	int rc = rec_health_wait(&rep, client, objs, 3, &o);
	if (rc)
		fail_msg("labelled objects: %s", gitops_error_last());
	assert_int_equal(rep.healthy, 3);
	assert_int_equal(rep.watches, 2);
	rec_health_report_free(&rep);
	json_decref(cm);

	/* "web" (test_healthy_and_broken) is healthy, but has no team label. */
	json_t *web = deployment("web", "nginx:1.27", 0);
	json_object_set_new(json_object_get(web, "metadata"), "labels", json_pack("{s:s}", "team", "a"));
	objs[1] = web;
	o.timeout_ms = 3000;
	rc = rec_health_wait(&rep, client, objs, 2, &o);
	assert_int_equal(rc, GITOPS_ETIMEOUT);
	assert_int_equal(rep.healthy, 1);
	assert_int_equal(rep.n_unhealthy, 1);
	assert_string_equal(rep.unhealthy[0].name, "web");
	assert_string_equal(rep.unhealthy[0].reason, "not found (with its labels)");
	assert_int_equal(rep.watches, 1);
	rec_health_report_free(&rep);
	json_decref(web);
	json_decref(tagged);
	json_decref(other);
}

static void *cancel_later(void *arg)
{
	usleep(500000);
	atomic_store((atomic_bool *)arg, true);
	return NULL;
}

static void test_cancel_and_missing(void **state)
{
	/* Never applied: not found, Progressing; the cancel flag ends the wait. */
	json_t *ghost = deployment("ghost", "nginx:1.27", 0);
	json_t *cm = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Service", "metadata", "name", "absent");
	json_object_set_new(json_object_get(cm, "metadata"), "namespace", json_string(ns));
	json_t *objs[2] = {ghost, cm};
	atomic_bool cancel = false;
	pthread_t th;
	pthread_create(&th, NULL, cancel_later, &cancel);
	struct rec_health_report rep;
	/* Cancelled long before the timeout: the outcome says which ended it. */
	struct rec_health_wait_options o = {.timeout_ms = 300000, .cancel = &cancel};
	int rc = rec_health_wait(&rep, client, objs, 2, &o);
	pthread_join(th, NULL);
	assert_int_equal(rc, GITOPS_ERROR);
	assert_int_equal(rep.outcome, REC_HEALTH_CANCELLED);
	assert_int_equal(rep.n_unhealthy, 2);
	assert_string_equal(find(&rep, "ghost")->reason, "not found");
	assert_string_equal(find(&rep, "absent")->reason, "not found");
	rec_health_report_free(&rep);

	/* A kind the server does not serve is Degraded, named. */
	json_t *odd = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "nowhere.example.com/v1", "kind", "Thing",
				"metadata", "name", "x");
	o = (struct rec_health_wait_options){.timeout_ms = 200, .fail_fast = true};
	rc = rec_health_wait(&rep, client, &odd, 1, &o);
	assert_int_equal(rc, GITOPS_ERROR);
	assert_int_equal(rep.unhealthy[0].health, REC_DEGRADED);
	assert_non_null(strstr(rep.unhealthy[0].reason, "kind not served"));
	rec_health_report_free(&rep);

	/* Bad input. */
	json_t *noname = json_pack("{s:s, s:s}", "apiVersion", "v1", "kind", "ConfigMap");
	assert_int_equal(rec_health_wait(&rep, client, &noname, 1, NULL), GITOPS_EINVALID);
	assert_int_equal(rep.n_unhealthy, 0);
	json_decref(noname);
	json_decref(odd);
	json_decref(ghost);
	json_decref(cm);
}

static int setup(void **state)
{
	(void)state;
	t_env("KUBECONFIG");
	kube_config *cfg;
	if (kube_config_load(&cfg, NULL) || kube_client_new(&client, cfg, NULL))
		return -1;
	ns = t_unique("health");
	json_t *n = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns);
	struct kube_apply_options o = {.force = true};
	int rc = kube_apply(NULL, NULL, client, n, &o);
	json_decref(n);
	return rc ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	kube_delete(client, "v1", "Namespace", NULL, ns, "Background", false);
	free(ns);
	kube_client_free(client);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_healthy_and_broken),
		cmocka_unit_test(test_deadline_fails_fast),
		cmocka_unit_test(test_label_selector),
		cmocka_unit_test(test_cancel_and_missing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
