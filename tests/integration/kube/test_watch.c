/* Integration tests for the watch-fed cache against the real apiserver: it sees changes made
 * with kubectl, resumes without loss after kube-apiserver restarts (etcd keeps running), and
 * relists after a 410 without losing a change. */
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
#include "support/support.h"

static kube_client *client;
static char *ns;
static kube_cache *cache;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static gitops_buf event_log = GITOPS_BUF_INIT;

/* Records "EVENT name\n" for every callback. */
static void record(void *ud, enum kube_event ev, const json_t *obj, const json_t *old)
{
	(void)ud;
	const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
	if (ev == KUBE_MODIFIED)
		assert_non_null(old);
	pthread_mutex_lock(&log_lock);
	gitops_buf_printf(&event_log, "%s %s\n", kube_event_name(ev), name ? name : "?");
	pthread_mutex_unlock(&log_lock);
}

static int count_of(const char *line)
{
	pthread_mutex_lock(&log_lock);
	int n = 0;
	char *want = gitops_sprintf("%s\n", line);
	for (const char *p = gitops_buf_cstr(&event_log); (p = strstr(p, want)); p += strlen(want))
		if (p == gitops_buf_cstr(&event_log) || p[-1] == '\n')
			n++;
	free(want);
	pthread_mutex_unlock(&log_lock);
	return n;
}

/* Waits up to 20 s for `line` to have been recorded. */
static bool wait_for(const char *line)
{
	for (int i = 0; i < 200; i++) {
		if (count_of(line) > 0)
			return true;
		usleep(100000);
	}
	fprintf(stderr, "never saw '%s'; events:\n%s", line, gitops_buf_cstr(&event_log));
	return false;
}

static void kubectl(const char *fmt, const char *arg)
{
	char *cmd = gitops_sprintf(fmt, ns, arg);
	char *out = NULL;
	int st = t_sh(&out, "%s", cmd);
	if (st)
		fail_msg("%s: %s", cmd, out);
	free(out);
	free(cmd);
}

static int setup(void **state)
{
	(void)state;
	t_env("KUBECONFIG");
	t_env("GITOPS_CLUSTER_DIR");
	kube_config *cfg;
	if (kube_config_load(&cfg, NULL) || kube_client_new(&client, cfg, NULL))
		return -1;
	ns = t_unique("kube-watch");
	if (t_sh(NULL, "kubectl create namespace %s", ns))
		return -1;
	const struct kube_resource *r;
	if (kube_resource_for(&r, client, "v1", "ConfigMap"))
		return -1;
	struct kube_cache_options o = {.namespace = ns, .on_event = record, .keep_manager = "gitops"};
	if (kube_cache_start(&cache, client, r, &o) || kube_cache_wait_synced(cache, 20000))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kube_cache_free(cache);
	t_sh(NULL, "kubectl delete namespace %s --wait=false", ns);
	free(ns);
	kube_client_free(client);
	gitops_buf_free(&event_log);
	return 0;
}

static void sees_create_update_and_delete_made_with_kubectl(void **state)
{
	(void)state;
	kubectl("kubectl -n %s create configmap %s --from-literal=k=1", "alpha");
	assert_true(wait_for("ADDED alpha"));
	kubectl("kubectl -n %s patch configmap %s -p '{\"data\":{\"k\":\"2\"}}'", "alpha");
	assert_true(wait_for("MODIFIED alpha"));
	json_t *o = kube_cache_get(cache, ns, "alpha");
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "data"), "k")), "2");
	json_decref(o);
	kubectl("kubectl -n %s delete configmap %s", "alpha");
	assert_true(wait_for("DELETED alpha"));
	assert_null(kube_cache_get(cache, ns, "alpha"));
}

struct getter { kube_client *c; int rc; };

static void *get_while_down(void *arg)
{
	struct getter *g = arg;
	json_t *got = NULL;
	g->rc = kube_get(&got, g->c, "v1", "ConfigMap", ns, "steady");
	json_decref(got);
	return NULL;
}

static void resumes_without_loss_after_the_apiserver_restarts(void **state)
{
	(void)state;
	kubectl("kubectl -n %s create configmap %s --from-literal=k=1", "steady");
	assert_true(wait_for("ADDED steady"));
	struct kube_cache_stats before;
	kube_cache_stats(cache, &before);
	const char *dir = t_env("GITOPS_CLUSTER_DIR");
	/* A request made while the apiserver is down is retried with backoff until it is back. */
	kube_config *cfg;
	assert_int_equal(kube_config_load(&cfg, NULL), 0);
	struct getter g = {NULL, -1};
	struct kube_client_options co = {.max_retries = 8};
	assert_int_equal(kube_client_new(&g.c, cfg, &co), 0);
	char *out = NULL;
	assert_int_equal(t_sh(&out, "tests/testenv/apiserver-stop.sh %s", dir), 0);
	free(out);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, get_while_down, &g), 0);
	assert_int_equal(t_sh(&out, "sleep 1; tests/testenv/apiserver-start.sh %s", dir), 0);
	free(out);
	pthread_join(th, NULL);
	assert_int_equal(g.rc, 0);
	struct kube_stats ks;
	kube_client_stats(g.c, &ks);
	assert_true(ks.retries > 0);
	kube_client_free(g.c);
	kubectl("kubectl -n %s create configmap %s --from-literal=k=1", "after-restart");
	assert_true(wait_for("ADDED after-restart"));
	kubectl("kubectl -n %s delete configmap %s", "steady");
	assert_true(wait_for("DELETED steady"));
	/* Resumed from the last version: no object was reported twice or lost. */
	assert_int_equal(count_of("ADDED steady"), 1);
	assert_int_equal(count_of("ADDED after-restart"), 1);
	struct kube_cache_stats after;
	kube_cache_stats(cache, &after);
	/* A restarted apiserver's watch cache starts at the current global version and answers an
	 * older one with 410, so the cache may relist: that relist must report nothing spurious. */
	assert_int_equal(count_of("MODIFIED steady"), 0);
	assert_int_equal(count_of("DELETED steady"), 1);
	assert_true(after.watches > before.watches);
	/* (The controller-manager's kube-root-ca.crt is in every namespace too.) */
	json_t *gone = kube_cache_get(cache, ns, "steady"), *kept = kube_cache_get(cache, ns, "after-restart");
	assert_null(gone);
	assert_non_null(kept);
	json_decref(kept);
}

static void a_too_old_resource_version_relists_and_loses_nothing(void **state)
{
	(void)state;
	kubectl("kubectl -n %s create configmap %s --from-literal=k=1", "old-timer");
	assert_true(wait_for("ADDED old-timer"));
	struct kube_cache_stats before;
	kube_cache_stats(cache, &before);
	/* Resume from a version long compacted away: the server answers 410. Changes made around
	 * the relist must all be reported. */
	kube_cache_debug_resume_from(cache, "1");
	kubectl("kubectl -n %s create configmap %s --from-literal=k=1", "newcomer");
	kubectl("kubectl -n %s delete configmap %s", "old-timer");
	assert_true(wait_for("ADDED newcomer"));
	assert_true(wait_for("DELETED old-timer"));
	for (int i = 0; i < 100; i++) {
		struct kube_cache_stats s;
		kube_cache_stats(cache, &s);
		if (s.relists_410 > before.relists_410)
			break;
		usleep(100000);
	}
	struct kube_cache_stats after;
	kube_cache_stats(cache, &after);
	assert_true(after.relists_410 > before.relists_410);
	assert_true(after.lists > before.lists);
	/* The cache matches the server. */
	char *out = NULL;
	assert_int_equal(t_sh(&out, "kubectl -n %s get configmaps -o name | grep -v kube-root-ca | sort | tr '\\n' ' '", ns), 0);
	json_t *all = kube_cache_list(cache);
	gitops_buf names = GITOPS_BUF_INIT;
	size_t i;
	json_t *it;
	json_t *sorted = json_array();
	json_array_foreach(all, i, it) {
		const char *n = json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
		if (strcmp(n, "kube-root-ca.crt"))
			json_array_append_new(sorted, json_string(n));
	}
	assert_int_equal(json_array_size(sorted), 2);
	json_array_foreach(sorted, i, it)
		gitops_buf_printf(&names, "configmap/%s ", json_string_value(it));
	assert_non_null(strstr(out, "configmap/newcomer"));
	assert_non_null(strstr(out, "configmap/after-restart"));
	assert_non_null(strstr(names.ptr, "configmap/newcomer"));
	assert_non_null(strstr(names.ptr, "configmap/after-restart"));
	json_decref(sorted);
	json_decref(all);
	gitops_buf_free(&names);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sees_create_update_and_delete_made_with_kubectl),
		cmocka_unit_test(resumes_without_loss_after_the_apiserver_restarts),
		cmocka_unit_test(a_too_old_resource_version_relists_and_loses_nothing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
