/* Unit tests for kube/: discovery parsing, the translation of apiserver Status replies into
 * error codes and one-line messages (Secret values masked), and the retry decision. The replies
 * were recorded from the local control plane (tests/fixtures/kube, re-recorded by its
 * record.sh); no request reaches a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "kube/internal.h"
#include "support/support.h"

#define FIXTURES "tests/fixtures/kube/"

static json_t *load(const char *name) { return t_fixture(FIXTURES "%s.json", name); }

/* A client whose server refuses connections: only recorded replies feed it. */
static kube_client *offline_client(void)
{
	kube_config *cfg = NULL;
	struct kube_config_options co = {.kubeconfig = FIXTURES "kubeconfig.yaml"};
	if (kube_config_load(&cfg, &co))
		fail_msg("kubeconfig: %s", gitops_error_last());
	kube_client *c = NULL;
	struct kube_client_options o = {.max_retries = -1, .timeout_ms = 2000};
	if (kube_client_new(&c, cfg, &o))
		fail_msg("client: %s", gitops_error_last());
	return c;
}

static kube_client *discovered_client(void)
{
	kube_client *c = offline_client();
	json_t *api = load("discovery-api"), *apis = load("discovery-apis");
	assert_int_equal(kube_discovery_load(c, api, apis), 0);
	json_decref(api);
	json_decref(apis);
	return c;
}

static void expect_resource(kube_client *c, const char *av, const char *kind, const char *group, const char *version,
			    const char *resource, bool namespaced)
{
	const struct kube_resource *r = NULL;
	if (kube_resource_for(&r, c, av, kind))
		fail_msg("%s %s: %s", av, kind, gitops_error_last());
	assert_string_equal(r->group, group);
	assert_string_equal(r->version, version);
	assert_string_equal(r->kind, kind);
	assert_string_equal(r->resource, resource);
	if (r->namespaced != namespaced)
		fail_msg("%s %s: namespaced is %d", av, kind, r->namespaced);
}

static void discovery_maps_kinds_to_resources_and_scope(void **state)
{
	kube_client *c = discovered_client();
	expect_resource(c, "v1", "ConfigMap", "", "v1", "configmaps", true);
	expect_resource(c, "v1", "Namespace", "", "v1", "namespaces", false);
	expect_resource(c, "apps/v1", "Deployment", "apps", "v1", "deployments", true);
	expect_resource(c, "rbac.authorization.k8s.io/v1", "ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterroles", false);
	expect_resource(c, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "apiextensions.k8s.io", "v1",
			"customresourcedefinitions", false);
	expect_resource(c, "batch/v1", "Job", "batch", "v1", "jobs", true);
	/* subresources (deployments/scale, pods/log) are not kinds of their own */
	const struct kube_resource **all = NULL;
	size_t n = 0;
	assert_int_equal(kube_resources(&all, &n, c), 0);
	assert_true(n > 40);
	for (size_t i = 0; i < n; i++)
		if (strchr(all[i]->resource, '/'))
			fail_msg("subresource listed: %s", all[i]->resource);
	free(all);
	/* helm's .Capabilities.APIVersions */
	json_t *av = NULL;
	assert_int_equal(kube_api_versions(&av, c), 0);
	bool v1 = false, apps = false, dep = false;
	size_t i;
	json_t *s;
	json_array_foreach(av, i, s) {
		v1 |= !strcmp(json_string_value(s), "v1");
		apps |= !strcmp(json_string_value(s), "apps/v1");
		dep |= !strcmp(json_string_value(s), "apps/v1/Deployment");
	}
	assert_true(v1 && apps && dep);
	json_decref(av);
	kube_client_free(c);
}

static void discovery_refuses_a_document_of_another_kind(void **state)
{
	kube_client *c = offline_client();
	json_t *api = load("discovery-api"), *notfound = load("status-notfound");
	assert_int_equal(kube_discovery_load(c, api, notfound), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), "/apis"));
	json_decref(api);
	json_decref(notfound);
	kube_client_free(c);
}

static void discovery_miss_asks_the_server_again(void **state)
{
	/* A kind not in the table makes one refresh; the server is unreachable here, so the
	 * outcome is a network error, not a wrong answer from the stale table. */
	kube_client *c = discovered_client();
	const struct kube_resource *r = NULL;
	int rc = kube_resource_for(&r, c, "example.com/v1", "Widget");
	assert_int_equal(rc, GITOPS_ENETWORK);
	assert_null(r);
	assert_non_null(strstr(gitops_error_last(), "discovery"));
	kube_client_free(c);
}

/* kube_status_error on a recorded reply: the code, and pieces the message must hold. */
static void expect_status(const char *fixture, long status, int want, const char *const *needles)
{
	json_t *body = fixture ? load(fixture) : NULL;
	int rc = kube_status_error(status, body, "apply ConfigMap ns/x");
	if (rc != want)
		fail_msg("%s: got %s, want %s (%s)", fixture ? fixture : "(no body)", gitops_error_name(rc),
			 gitops_error_name(want), gitops_error_last());
	assert_int_equal(gitops_error_code(), want);
	const char *msg = gitops_error_last();
	assert_non_null(strstr(msg, "apply ConfigMap ns/x: "));
	assert_null(strchr(msg, '\n'));
	for (; needles && *needles; needles++)
		if (!strstr(msg, *needles))
			fail_msg("%s: \"%s\" not in: %s", fixture ? fixture : "(no body)", *needles, msg);
	json_decref(body);
}

static void status_replies_become_codes_and_one_line(void **state)
{
	expect_status("status-notfound", 404, GITOPS_ENOTFOUND,
		      (const char *[]){"NotFound (404)", "configmaps \"absent\" not found", NULL});
	expect_status("status-exists", 409, GITOPS_EEXISTS, (const char *[]){"AlreadyExists (409)", NULL});
	/* causes are listed field by field, not as the apiserver's bracketed sentence */
	expect_status("status-invalid", 422, GITOPS_EINVALID,
		      (const char *[]){"Invalid (422): ", "spec.replicas: Invalid value: -1",
				       "; spec.template.metadata.labels: ", NULL});
	/* a field-manager conflict names the fields, their manager, and what to do */
	expect_status("status-conflict", 409, GITOPS_ECONFLICT,
		      (const char *[]){"fields owned by another manager: .data.color (manager \"kubectl\")",
				       "apply with force", NULL});
	/* a 500 "failed to create typed patch object" is the manifest's fault, not the server's */
	expect_status("status-unknown-field", 500, GITOPS_EINVALID, (const char *[]){"Invalid (500)", ".bogus", NULL});
	expect_status("status-forbidden-ns", 404, GITOPS_ENOTFOUND, (const char *[]){"kube-fixtures-absent", NULL});
	/* no Status body: the HTTP status alone decides */
	expect_status(NULL, 429, GITOPS_ETOOMANY, NULL);
	expect_status(NULL, 503, GITOPS_ESERVER, NULL);
	expect_status(NULL, 403, GITOPS_EFORBIDDEN, NULL);
	expect_status(NULL, 401, GITOPS_EUNAUTHORIZED, NULL);
	expect_status(NULL, 410, GITOPS_EGONE, NULL);
}

static void secret_values_quoted_by_the_apiserver_are_masked(void **state)
{
	static const char value[] = "hunter2-s3cr3t-value!";
	json_t *body = load("status-secret-invalid");
	/* the recorded refusal does quote the value: the test would pass vacuously otherwise */
	assert_non_null(strstr(json_string_value(json_object_get(body, "message")), value));
	json_t *secret = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "Secret",
				   "metadata", "name", "db", "namespace", "ns", "stringData", "password", value);
	int rc = kube_status_error(422, body, "apply Secret ns/db");
	assert_int_equal(kube_mask_error_for(rc, secret), GITOPS_EINVALID);
	const char *msg = gitops_error_last();
	if (strstr(msg, value) || strstr(msg, "hunter2"))
		fail_msg("the Secret value leaked: %s", msg);
	assert_non_null(strstr(msg, "metadata.labels: Invalid value"));
	assert_int_equal(gitops_error_code(), GITOPS_EINVALID);
	/* the same value in data (base64) is masked too */
	char *b64 = gitops_base64_encode(value, strlen(value));
	json_t *secret2 = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name",
				    "db", "data", "password", b64);
	rc = kube_status_error(422, body, "apply Secret ns/db");
	kube_mask_error_for(rc, secret2);
	assert_null(strstr(gitops_error_last(), value));
	free(b64);
	json_decref(secret2);
	json_decref(secret);
	json_decref(body);
}

static enum kube_next decide(struct kube_attempt a, bool *reauthed, long *wait)
{
	*wait = -1;
	return kube_retry_decide(&a, reauthed, wait);
}

static void retry_decisions_follow_client_go(void **state)
{
	bool re = false;
	long wait;
	/* replies that are answers: never retried */
	long final[] = {200, 201, 400, 403, 404, 409, 422, 500};
	for (size_t i = 0; i < sizeof final / sizeof *final; i++) {
		re = false;
		if (decide((struct kube_attempt){.status = final[i], .retry_after = -1, .max_retries = 5}, &re, &wait) !=
		    KUBE_NEXT_DONE)
			fail_msg("HTTP %ld was retried", final[i]);
	}
	/* throttling and gateway errors: backoff doubling from 200 ms, plus the jitter */
	long transient[] = {429, 502, 503, 504};
	for (size_t i = 0; i < sizeof transient / sizeof *transient; i++) {
		assert_int_equal(decide((struct kube_attempt){.status = transient[i], .retry_after = -1, .attempt = 2,
							      .max_retries = 5, .jitter_ms = 7}, &re, &wait),
				 KUBE_NEXT_RETRY);
		assert_int_equal(wait, 800 + 7);
	}
	/* the server's Retry-After wins, a 500 is retried only with it, and 10 s is the ceiling */
	assert_int_equal(decide((struct kube_attempt){.status = 500, .retry_after = 3, .max_retries = 5}, &re, &wait),
			 KUBE_NEXT_RETRY);
	assert_int_equal(wait, 3000);
	assert_int_equal(decide((struct kube_attempt){.status = 429, .retry_after = 60, .max_retries = 5}, &re, &wait),
			 KUBE_NEXT_RETRY);
	assert_int_equal(wait, 10000);
	/* the backoff stops doubling at 6.4 s */
	assert_int_equal(decide((struct kube_attempt){.status = 503, .retry_after = -1, .attempt = 9, .max_retries = 20},
				&re, &wait), KUBE_NEXT_RETRY);
	assert_int_equal(wait, 6400);
	/* out of retries, or a watch: done */
	assert_int_equal(decide((struct kube_attempt){.status = 503, .retry_after = -1, .attempt = 5, .max_retries = 5},
				&re, &wait), KUBE_NEXT_DONE);
	assert_int_equal(decide((struct kube_attempt){.status = 503, .retry_after = -1, .max_retries = -1}, &re, &wait),
			 KUBE_NEXT_DONE);
	assert_int_equal(decide((struct kube_attempt){.status = 503, .retry_after = -1, .max_retries = 5, .watch = true},
				&re, &wait), KUBE_NEXT_DONE);
	/* connection errors that may pass are retried; a TLS failure is final */
	assert_int_equal(decide((struct kube_attempt){.curl_code = CURLE_COULDNT_CONNECT, .max_retries = 5, .attempt = 1},
				&re, &wait), KUBE_NEXT_RETRY);
	assert_int_equal(wait, 400);
	assert_int_equal(decide((struct kube_attempt){.curl_code = CURLE_PEER_FAILED_VERIFICATION, .max_retries = 5},
				&re, &wait), KUBE_NEXT_DONE);
	/* 401: credentials that can change are re-read once, at once; static ones are final */
	re = false;
	assert_int_equal(decide((struct kube_attempt){.status = 401, .retry_after = -1, .max_retries = 5, .can_reauth = true},
				&re, &wait), KUBE_NEXT_REAUTH);
	assert_true(re);
	assert_int_equal(decide((struct kube_attempt){.status = 401, .retry_after = -1, .max_retries = 5, .can_reauth = true},
				&re, &wait), KUBE_NEXT_DONE);
	re = false;
	assert_int_equal(decide((struct kube_attempt){.status = 401, .retry_after = -1, .max_retries = 5}, &re, &wait),
			 KUBE_NEXT_DONE);
}

static void crd_wait_stops_when_cancelled(void **state)
{
	/* kube_wait_crds honours the client's cancel flag: set before the wait, it returns at once
	 * (the unreachable server is never waited for 60 s). */
	kube_config *cfg = NULL;
	struct kube_config_options co = {.kubeconfig = FIXTURES "kubeconfig.yaml"};
	assert_int_equal(kube_config_load(&cfg, &co), 0);
	atomic_bool cancel;
	atomic_init(&cancel, true);
	kube_client *c = NULL;
	struct kube_client_options o = {.max_retries = 5, .timeout_ms = 2000, .cancel = &cancel};
	assert_int_equal(kube_client_new(&c, cfg, &o), 0);
	json_t *crd = json_pack("{s:{s:s}, s:{s:s, s:{s:s, s:s}, s:[{s:s, s:b}]}}", "metadata", "name", "widgets.example.com",
				"spec", "group", "example.com", "names", "kind", "Widget", "plural", "widgets", "versions",
				"name", "v1", "served", 1);
	const json_t *crds[] = {crd};
	bool ready[1] = {true};
	long long t0 = gitops_now_ms();
	int rc = kube_wait_crds(c, crds, 1, ready, 60000);
	assert_int_equal(rc, GITOPS_ETIMEOUT);
	assert_non_null(strstr(gitops_error_last(), "cancelled"));
	assert_false(ready[0]);
	/* the client's 5 retries with backoff would take over 6 s */
	assert_true(gitops_now_ms() - t0 < 3000);
	json_decref(crd);
	kube_client_free(c);
}

/* kube_update is compare-and-swap only: an object without the resourceVersion it was read at
 * is refused before any request (a blind PUT would overwrite another writer's inventory or
 * lock); with one, the PUT goes out (here to a server that refuses connections: a network
 * error, never GITOPS_ECONFLICT, which means "re-read and merge"). */
static void update_without_resource_version_is_refused_before_sending(void **state)
{
	kube_client *c = discovered_client();
	json_t *cm = t_fixture("tests/fixtures/health/live/configmap.json"); /* recorded, resourceVersion 10040 */
	json_t *meta = json_object_get(cm, "metadata");
	json_t *rv = json_incref(json_object_get(meta, "resourceVersion"));
	assert_non_null(rv);
	struct kube_stats st;
	json_object_del(meta, "resourceVersion");
	json_t *out = (json_t *)1;
	assert_int_equal(kube_update(&out, c, cm), GITOPS_EINVALID);
	assert_null(out);
	assert_non_null(strstr(gitops_error_last(), "update ConfigMap settings: metadata.resourceVersion is required"));
	json_object_set_new(meta, "resourceVersion", json_string(""));
	assert_int_equal(kube_update(NULL, c, cm), GITOPS_EINVALID);
	kube_client_stats(c, &st);
	assert_int_equal(st.requests, 0);
	json_object_set(meta, "resourceVersion", rv);
	int rc = kube_update(NULL, c, cm);
	assert_int_equal(rc, GITOPS_ENETWORK);
	kube_client_stats(c, &st);
	assert_true(st.requests > 0);
	/* create and update both need apiVersion, kind and name; create drops nothing else */
	json_object_del(meta, "name");
	assert_int_equal(kube_create(NULL, c, cm), GITOPS_EINVALID);
	assert_int_equal(kube_update(NULL, c, cm), GITOPS_EINVALID);
	json_decref(rv);
	json_decref(cm);
	kube_client_free(c);
}

/* kubeconfig goes through the one YAML reader, with kubectl's scalar rules and file:line:col */
static void kubeconfig_is_read_with_kubectl_yaml_rules(void **state)
{
	static const char y[] = "clusters:\n- name: c\n  cluster:\n    server: https://x\n"
				"    insecure-skip-tls-verify: yes\n    port: 0x10\n    quoted: \"yes\"\n";
	json_t *doc = NULL;
	assert_int_equal(kube_yaml_to_json(&doc, y, strlen(y), "kc.yaml"), 0);
	json_t *c = json_object_get(json_array_get(json_object_get(doc, "clusters"), 0), "cluster");
	assert_true(json_is_true(json_object_get(c, "insecure-skip-tls-verify")));
	assert_int_equal(json_integer_value(json_object_get(c, "port")), 16);
	assert_string_equal(json_string_value(json_object_get(c, "quoted")), "yes");
	json_decref(doc);
	/* an empty file is an empty config, not an error */
	assert_int_equal(kube_yaml_to_json(&doc, "", 0, "empty.yaml"), 0);
	assert_true(json_is_object(doc) && json_object_size(doc) == 0);
	json_decref(doc);
	/* errors name the file, line and column */
	static const char bad[] = "clusters:\n- name: c\n  name: d\n";
	assert_int_equal(kube_yaml_to_json(&doc, bad, strlen(bad), "dup.yaml"), GITOPS_EPARSE);
	assert_null(doc);
	assert_non_null(strstr(gitops_error_last(), "dup.yaml:3:"));
	static const char broken[] = "clusters: [a, b\nusers: x\n";
	assert_int_equal(kube_yaml_to_json(&doc, broken, strlen(broken), "broken.yaml"), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), "broken.yaml:"));
	/* the insecure flag written as kubectl accepts it reaches the configuration */
	kube_config *cfg = NULL;
	struct kube_config_options co = {.kubeconfig = FIXTURES "kubeconfig.yaml"};
	assert_int_equal(kube_config_load(&cfg, &co), 0);
	assert_true(cfg->insecure);
	kube_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(discovery_maps_kinds_to_resources_and_scope),
		cmocka_unit_test(discovery_refuses_a_document_of_another_kind),
		cmocka_unit_test(discovery_miss_asks_the_server_again),
		cmocka_unit_test(status_replies_become_codes_and_one_line),
		cmocka_unit_test(secret_values_quoted_by_the_apiserver_are_masked),
		cmocka_unit_test(retry_decisions_follow_client_go),
		cmocka_unit_test(crd_wait_stops_when_cancelled),
		cmocka_unit_test(kubeconfig_is_read_with_kubectl_yaml_rules),
		cmocka_unit_test(update_without_resource_version_is_refused_before_sending),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
