/* Integration test of the client's handling of 429 Too Many Requests against the real
 * apiserver: API Priority and Fairness is configured to give one service account a tiny
 * priority level that rejects instead of queuing, then many threads list at once. */
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

#define THREADS 32
#define OBJECTS 1500 /* large lists (about 3 MB) keep seats busy long enough to overlap */

static char dir[] = "/tmp/gitops-throttle-XXXXXX";
static char *ns, *kubeconfig;

static int setup(void **state)
{
	(void)state;
	t_env("KUBECONFIG");
	const char *server = t_env("GITOPS_APISERVER");
	const char *cluster_dir = t_env("GITOPS_CLUSTER_DIR");
	if (!mkdtemp(dir))
		return -1;
	ns = t_unique("kube-throttle");
	char *out = NULL;
	int st = t_sh(&out,
		      "kubectl create namespace %s && kubectl -n %s create serviceaccount throttled && "
		      "kubectl create clusterrole %s --verb=get,list --resource=configmaps && "
		      "kubectl create clusterrolebinding %s --clusterrole=%s --serviceaccount=%s:throttled && "
		      "printf 'apiVersion: flowcontrol.apiserver.k8s.io/v1\\nkind: PriorityLevelConfiguration\\n"
		      "metadata: {name: %s}\\nspec:\\n  type: Limited\\n  limited:\\n    nominalConcurrencyShares: 1\\n"
		      "    lendablePercent: 0\\n    limitResponse: {type: Reject}\\n---\\n"
		      "apiVersion: flowcontrol.apiserver.k8s.io/v1\\nkind: FlowSchema\\nmetadata: {name: %s}\\nspec:\\n"
		      "  priorityLevelConfiguration: {name: %s}\\n  matchingPrecedence: 100\\n"
		      "  distinguisherMethod: {type: ByUser}\\n  rules:\\n"
		      "    - subjects: [{kind: ServiceAccount, serviceAccount: {name: throttled, namespace: %s}}]\\n"
		      "      resourceRules: [{verbs: [\"*\"], apiGroups: [\"*\"], resources: [\"*\"], namespaces: [\"*\"], "
		      "clusterScope: true}]\\n' | kubectl apply -f -",
		      ns, ns, ns, ns, ns, ns, ns, ns, ns, ns);
	if (st) {
		fprintf(stderr, "setup: %s\n", out);
		free(out);
		return -1;
	}
	free(out);
	/* Objects to list, applied as admin (not throttled). */
	kube_config *cfg;
	kube_client *admin;
	if (kube_config_load(&cfg, NULL) || kube_client_new(&admin, cfg, &(struct kube_client_options){.qps = 1000, .burst = 1000}))
		return -1;
	for (int i = 0; i < OBJECTS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cm-%04d", i);
		char payload[2049];
		memset(payload, 'x', sizeof(payload) - 1);
		payload[sizeof(payload) - 1] = '\0';
		json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
				       "name", name, "namespace", ns, "data", "payload", payload);
		int rc = kube_apply(NULL, NULL, admin, cm, NULL);
		json_decref(cm);
		if (rc)
			return -1;
	}
	kube_client_free(admin);
	char *token = NULL;
	if (t_sh(&token, "kubectl -n %s create token throttled", ns))
		return -1;
	token[strcspn(token, "\n")] = '\0';
	kubeconfig = gitops_sprintf("%s/kubeconfig", dir);
	char *text = gitops_sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\n"
				    "    certificate-authority: %s/pki/ca.crt\nusers:\n- name: u\n  user:\n    token: %s\n"
				    "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
				    server, cluster_dir, token);
	int rc = gitops_write_file(kubeconfig, text, strlen(text), 0600);
	free(text);
	free(token);
	/* The flow-control configuration is picked up asynchronously: wait until the apiserver
	 * reports the new priority level. */
	for (int i = 0; i < 100; i++) {
		if (t_sh(NULL, "kubectl get --raw /metrics | grep -q 'apiserver_flowcontrol_nominal_limit_seats{priority_level=\"%s\"}'",
			 ns) == 0)
			return rc;
		usleep(200000);
	}
	fprintf(stderr, "setup: priority level %s never became active\n", ns);
	return -1;
}

static int teardown(void **state)
{
	(void)state;
	t_sh(NULL, "kubectl delete flowschema %s; kubectl delete prioritylevelconfiguration %s; "
		   "kubectl delete clusterrolebinding %s; kubectl delete clusterrole %s; "
		   "kubectl delete namespace %s --wait=false; rm -rf %s", ns, ns, ns, ns, ns, dir);
	free(ns);
	free(kubeconfig);
	return 0;
}

struct burst {
	kube_client *c;
	pthread_barrier_t *start;
	int rc;
	size_t n;
};

static void *lister(void *arg)
{
	struct burst *b = arg;
	const struct kube_resource *r;
	pthread_barrier_wait(b->start);
	b->rc = kube_resource_for(&r, b->c, "v1", "ConfigMap");
	for (int k = 0; k < 3 && b->rc == 0; k++) {
		json_t *items = NULL;
		b->rc = kube_list(&items, NULL, b->c, r, ns, NULL);
		b->n = json_array_size(items);
		json_decref(items);
	}
	return NULL;
}

/* Runs THREADS listers at once; returns how many failed with `code` (and asserts no other
 * failure). */
static int run_burst(kube_client *c, int code, int *ok)
{
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, THREADS);
	pthread_t th[THREADS];
	struct burst b[THREADS];
	for (int i = 0; i < THREADS; i++) {
		b[i] = (struct burst){c, &start, -1, 0};
		pthread_create(&th[i], NULL, lister, &b[i]);
	}
	int failed = 0;
	*ok = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (b[i].rc == 0) {
			assert_int_equal(b[i].n, OBJECTS + 1); /* + the controller-manager's kube-root-ca.crt */
			(*ok)++;
		} else {
			if (b[i].rc != code)
				fail_msg("unexpected error %d: %s", b[i].rc, gitops_error_last());
			failed++;
		}
	}
	pthread_barrier_destroy(&start);
	return failed;
}

static void throttled_requests_are_retried_after_the_servers_delay(void **state)
{
	(void)state;
	kube_config *cfg;
	struct kube_config_options o = {.kubeconfig = kubeconfig};
	assert_int_equal(kube_config_load(&cfg, &o), 0);
	kube_client *c;
	assert_int_equal(kube_client_new(&c, cfg, &(struct kube_client_options){.qps = 1000, .burst = 1000, .max_retries = 20}), 0);
	/* The client's discovery first, so the burst is lists only. */
	const struct kube_resource *r;
	assert_int_equal(kube_resource_for(&r, c, "v1", "ConfigMap"), 0);
	/* Whether a burst overlaps enough to be refused depends on timing: burst again (every
	 * burst must fully succeed) until the server has refused at least once. */
	struct kube_stats st = {0};
	for (int round = 0; round < 6 && st.retries == 0; round++) {
		int ok = 0;
		assert_int_equal(run_burst(c, GITOPS_ETOOMANY, &ok), 0);
		assert_int_equal(ok, THREADS);
		kube_client_stats(c, &st);
	}
	assert_true(st.retries > 0); /* some lists were refused with 429 and retried */
	kube_client_free(c);
}

static void without_retries_a_429_is_reported_as_too_many_requests(void **state)
{
	(void)state;
	kube_config *cfg;
	struct kube_config_options o = {.kubeconfig = kubeconfig};
	assert_int_equal(kube_config_load(&cfg, &o), 0);
	kube_client *c;
	assert_int_equal(kube_client_new(&c, cfg, &(struct kube_client_options){.qps = 1000, .burst = 1000, .max_retries = -1}), 0);
	const struct kube_resource *r;
	assert_int_equal(kube_resource_for(&r, c, "v1", "ConfigMap"), 0);
	int refused = 0;
	for (int round = 0; round < 6 && refused == 0; round++) {
		int ok = 0;
		refused = run_burst(c, GITOPS_ETOOMANY, &ok); /* any other error fails the test */
	}
	assert_true(refused > 0);
	kube_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(throttled_requests_are_retried_after_the_servers_delay),
		cmocka_unit_test(without_retries_a_429_is_reported_as_too_many_requests),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
