/* Unit tests for drift/: comparisons of desired manifests with live objects recorded from a real
 * kube-apiserver (tests/fixtures/drift, re-recorded by its record.sh), output and masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "drift/drift.h"
#include "support/support.h"

#define FIXTURES "tests/fixtures/drift/"

static json_t *load(const char *dir, const char *name) { return t_fixture(FIXTURES "%s/%s.json", dir, name); }

/* Compares desired/<d> with live/<l>; fails the test on an error. */
static drift_result *compare_files(const char *d, const char *l, const drift_options *opts)
{
	json_t *desired = d ? load("desired", d) : NULL;
	json_t *live = l ? load("live", l) : NULL;
	drift_result *r = NULL;
	int rc = drift_compare(&r, desired, live, opts);
	if (rc < 0)
		fail_msg("drift_compare(%s, %s): %s", d, l, gitops_error_last());
	json_decref(desired);
	json_decref(live);
	return r;
}

static char *diff_text(const drift_result *r, unsigned flags)
{
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(drift_result_format_diff(&b, r, flags), 0);
	return gitops_buf_detach(&b);
}

static char *json_text(const drift_result *r)
{
	json_t *j = NULL;
	assert_int_equal(drift_result_to_json(&j, r), 0);
	char *s = json_dumps(j, JSON_SORT_KEYS);
	json_decref(j);
	return s;
}

static char *summary_text(const drift_result *r)
{
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(drift_result_format_summary(&b, r), 0);
	return gitops_buf_detach(&b);
}

/* Asserts the state, printing the diff when it is not the expected one. */
static void expect_state(const drift_result *r, drift_state want, const char *what)
{
	if (drift_result_state(r) != want) {
		char *d = diff_text(r, 0);
		fail_msg("%s: state %s, want %s\n%s", what, drift_state_name(drift_result_state(r)),
			 drift_state_name(want), d);
	}
}

static const char *const corpus[] = {
	"namespace", "crd-widgets", "deployment-web", "service-web", "configmap-settings",
	"secret-creds", "widget-gear", "role-reader", "rolebinding-reader",
	"clusterrole-widget-viewer", "networkpolicy-web", "statefulset-db", "cronjob-report",
	"limitrange-defaults", "hpa-web", "ingress-web", "serviceaccount-web",
	/* the example repository's apps as gitops renders them (plain, kustomize, helm) */
	"example-configmap-frontend-site", "example-deployment-frontend", "example-service-frontend",
	"example-deployment-api", "example-service-api", "example-deployment-cache",
	"example-service-cache",
};

static void no_false_drift_right_after_server_side_apply(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(corpus) / sizeof(*corpus); i++) {
		drift_result *r = compare_files(corpus[i], corpus[i], NULL);
		expect_state(r, DRIFT_IN_SYNC, corpus[i]);
		assert_int_equal(drift_result_field_count(r), 0);
		char *d = diff_text(r, 0);
		assert_string_equal(d, "");
		free(d);
		drift_result_free(r);
	}
}

/* Without managedFields (an object created by an older gitops, or read from a cache that strips
 * them) the comparison falls back to "desired is a subset of live" and still finds no drift. */
static void no_false_drift_without_managed_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(corpus) / sizeof(*corpus); i++) {
		json_t *desired = load("desired", corpus[i]);
		json_t *live = load("live", corpus[i]);
		json_object_del(json_object_get(live, "metadata"), "managedFields");
		drift_result *r = NULL;
		assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
		expect_state(r, DRIFT_IN_SYNC, corpus[i]);
		drift_result_free(r);
		json_decref(desired);
		json_decref(live);
	}
}

static void replicas_scaled_by_kubectl_is_not_drift(void **state)
{
	(void)state;
	drift_result *r = compare_files("deployment-web", "deployment-web.scaled", NULL);
	expect_state(r, DRIFT_IN_SYNC, "scaled to 3 replicas");
	drift_result_free(r);
}

static void replicas_in_the_manifest_are_compared(void **state)
{
	(void)state;
	json_t *desired = load("desired", "deployment-web");
	json_object_set_new(json_object_get(desired, "spec"), "replicas", json_integer(2));
	json_t *live = load("live", "deployment-web.scaled");
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "replicas 2 desired, 3 live");
	assert_int_equal(drift_result_field_count(r), 1);
	const drift_field *f = drift_result_field(r, 0);
	assert_string_equal(f->path, ".spec.replicas");
	assert_int_equal(json_integer_value(f->desired), 2);
	assert_int_equal(json_integer_value(f->live), 3);
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void annotation_added_by_hand_is_not_drift(void **state)
{
	(void)state;
	drift_result *r = compare_files("deployment-web", "deployment-web.annotated", NULL);
	expect_state(r, DRIFT_IN_SYNC, "annotated by hand");
	drift_result_free(r);
}

static void annotation_we_set_changed_by_hand_is_modified(void **state)
{
	(void)state;
	json_t *desired = load("desired", "ingress-web");
	json_t *live = load("live", "ingress-web");
	json_t *ann = json_object_get(json_object_get(live, "metadata"), "annotations");
	json_object_set_new(ann, "example.com/owner", json_string("someone-else"));
	json_object_set_new(ann, "example.com/other", json_string("added"));
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "our annotation changed");
	assert_int_equal(drift_result_field_count(r), 1);
	assert_string_equal(drift_result_field(r, 0)->path,
			    ".metadata.annotations[\"example.com/owner\"]");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void image_changed_by_another_manager_is_modified(void **state)
{
	(void)state;
	drift_result *r = compare_files("deployment-web", "deployment-web.image-changed", NULL);
	expect_state(r, DRIFT_MODIFIED, "image changed by manager other");
	assert_int_equal(drift_result_field_count(r), 1);
	const drift_field *f = drift_result_field(r, 0);
	assert_string_equal(f->path, ".spec.template.spec.containers[name=web].image");
	assert_string_equal(json_string_value(f->desired), "nginx:1.27");
	assert_string_equal(json_string_value(f->live), "nginx:1.28-hotfix");
	assert_string_equal(drift_result_kind(r), "Deployment");
	assert_string_equal(drift_result_group(r), "apps");
	assert_string_equal(drift_result_namespace(r), "drift-fixtures");
	assert_string_equal(drift_result_name(r), "web");

	char *line = summary_text(r);
	assert_string_equal(line, "MODIFIED  Deployment drift-fixtures/web  "
				  ".spec.template.spec.containers[name=web].image\n");
	free(line);

	char *text = diff_text(r, 0);
	assert_string_equal(text, "--- live Deployment drift-fixtures/web\n"
				  "+++ desired Deployment drift-fixtures/web\n"
				  "@@ .spec.template.spec.containers[name=web].image @@\n"
				  "- \"nginx:1.28-hotfix\"\n"
				  "+ \"nginx:1.27\"\n");
	free(text);
	text = diff_text(r, DRIFT_FORMAT_COLOR);
	assert_non_null(strstr(text, "\033[31m- \"nginx:1.28-hotfix\"\033[0m"));
	assert_non_null(strstr(text, "\033[32m+ \"nginx:1.27\"\033[0m"));
	free(text);

	json_t *j = NULL;
	assert_int_equal(drift_result_to_json(&j, r), 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "MODIFIED");
	assert_string_equal(json_string_value(json_object_get(j, "kind")), "Deployment");
	json_t *jf = json_array_get(json_object_get(j, "fields"), 0);
	assert_string_equal(json_string_value(json_object_get(jf, "path")),
			    ".spec.template.spec.containers[name=web].image");
	assert_string_equal(json_string_value(json_object_get(jf, "live")), "nginx:1.28-hotfix");
	json_decref(j);
	drift_result_free(r);
}

/* kubectl set env: env items are matched by name; the variable it added is not ours. */
static void env_value_set_by_kubectl_is_modified(void **state)
{
	(void)state;
	drift_result *r = compare_files("deployment-web", "deployment-web.env-changed", NULL);
	expect_state(r, DRIFT_MODIFIED, "LEVEL=9 EXTRA=1 set by kubectl");
	assert_int_equal(drift_result_field_count(r), 1);
	const drift_field *f = drift_result_field(r, 0);
	assert_string_equal(f->path, ".spec.template.spec.containers[name=web].env[name=LEVEL].value");
	assert_string_equal(json_string_value(f->desired), "3");
	assert_string_equal(json_string_value(f->live), "9");
	drift_result_free(r);
}

/* kubectl patch (an Update) takes the field's ownership away from gitops; the desired value
 * still differs, so it is drift. */
static void configmap_value_patched_by_hand_is_modified(void **state)
{
	(void)state;
	drift_result *r = compare_files("configmap-settings", "configmap-settings.patched", NULL);
	expect_state(r, DRIFT_MODIFIED, "log_level patched");
	assert_int_equal(drift_result_field_count(r), 1);
	assert_string_equal(drift_result_field(r, 0)->path, ".data.log_level");
	drift_result_free(r);
}

/* Ports are matched by (port, protocol), not by index; a field only another manager set
 * (sessionAffinity) is not drift. */
static void service_port_matched_by_key(void **state)
{
	(void)state;
	drift_result *r = compare_files("service-web", "service-web.patched", NULL);
	expect_state(r, DRIFT_MODIFIED, "targetPort patched");
	assert_int_equal(drift_result_field_count(r), 1);
	const drift_field *f = drift_result_field(r, 0);
	assert_string_equal(f->path, ".spec.ports[port=9090,protocol=TCP].targetPort");
	assert_int_equal(json_integer_value(f->desired), 9090);
	assert_int_equal(json_integer_value(f->live), 9191);
	drift_result_free(r);

	/* list order does not matter */
	json_t *desired = load("desired", "service-web");
	json_t *ports = json_object_get(json_object_get(desired, "spec"), "ports");
	json_t *first = json_incref(json_array_get(ports, 0));
	json_array_remove(ports, 0);
	json_array_append_new(ports, first);
	json_t *live = load("live", "service-web");
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_IN_SYNC, "ports reordered");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void custom_resource_field_patched_is_modified(void **state)
{
	(void)state;
	drift_result *r = compare_files("widget-gear", "widget-gear.patched", NULL);
	expect_state(r, DRIFT_MODIFIED, "size patched");
	assert_int_equal(drift_result_field_count(r), 1);
	assert_string_equal(drift_result_field(r, 0)->path, ".spec.size");
	drift_result_free(r);
}

/* RBAC rules are an atomic list: a verb or a key added to a rule by hand is drift. */
static void rbac_rule_changed_by_hand_is_modified(void **state)
{
	(void)state;
	json_t *desired = load("desired", "role-reader");
	json_t *live = load("live", "role-reader");
	json_t *rule = json_array_get(json_object_get(live, "rules"), 1);
	json_object_set_new(rule, "resourceNames", json_pack("[s]", "web"));
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "resourceNames added to a rule");
	assert_int_equal(drift_result_field_count(r), 1);
	assert_string_equal(drift_result_field(r, 0)->path, ".rules");
	drift_result_free(r);
	json_object_del(rule, "resourceNames");
	json_array_append_new(json_object_get(rule, "verbs"), json_string("delete"));
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "verb added to a rule");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

/* An aggregated ClusterRole's rules are written by the aggregation controller. */
static void aggregated_clusterrole_rules_are_not_drift(void **state)
{
	(void)state;
	json_t *desired = load("desired", "clusterrole-widget-viewer");
	json_t *live = load("live", "clusterrole-widget-viewer");
	json_t *agg = json_pack("{s:[{s:{s:s}}]}", "clusterRoleSelectors", "matchLabels",
				"example.com/aggregate-to-viewer", "true");
	json_object_set(desired, "aggregationRule", agg);
	json_object_set_new(desired, "rules", json_array());
	json_object_set_new(live, "aggregationRule", agg);
	json_array_append_new(json_object_get(live, "rules"),
			      json_pack("{s:[s], s:[s], s:[s]}", "apiGroups", "", "resources",
					"pods", "verbs", "get"));
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_IN_SYNC, "aggregated rules");
	drift_result_free(r);
	/* without aggregationRule the same rules are drift */
	json_object_del(desired, "aggregationRule");
	json_object_del(live, "aggregationRule");
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "rules: [] desired");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

/* A field gitops applied (its managedFields say so) and the manifest no longer has: the next
 * apply removes it, so it is drift until then. */
static void owned_field_removed_from_manifest_is_modified(void **state)
{
	(void)state;
	json_t *desired = load("desired", "deployment-web");
	json_t *live = load("live", "deployment-web.annotated");
	json_object_del(json_object_get(json_object_get(desired, "metadata"), "labels"),
			"app.kubernetes.io/managed-by");
	json_t *spec = json_object_get(json_object_get(desired, "spec"), "template");
	json_t *web = json_array_get(json_object_get(json_object_get(spec, "spec"), "containers"), 0);
	json_array_remove(json_object_get(web, "env"), 1); /* LEVEL */
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "label and env removed from the manifest");
	assert_int_equal(drift_result_field_count(r), 2);
	assert_string_equal(drift_result_field(r, 0)->path,
			    ".metadata.labels[\"app.kubernetes.io/managed-by\"]");
	assert_null(drift_result_field(r, 0)->desired);
	assert_string_equal(json_string_value(drift_result_field(r, 0)->live), "gitops");
	assert_string_equal(drift_result_field(r, 1)->path,
			    ".spec.template.spec.containers[name=web].env[name=LEVEL]");
	assert_null(drift_result_field(r, 1)->desired);
	drift_result_free(r);

	/* all labels removed from the manifest: ours are reported one by one, not a hand-made one */
	json_decref(desired);
	desired = load("desired", "deployment-web");
	json_object_del(json_object_get(desired, "metadata"), "labels");
	json_object_set_new(json_object_get(json_object_get(live, "metadata"), "labels"), "hand",
			    json_string("made"));
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "labels removed from the manifest");
	assert_int_equal(drift_result_field_count(r), 2);
	assert_string_equal(drift_result_field(r, 0)->path, ".metadata.labels.app");
	assert_string_equal(drift_result_field(r, 1)->path,
			    ".metadata.labels[\"app.kubernetes.io/managed-by\"]");
	drift_result_free(r);

	/* the hand-made annotation is not ours: removing nothing of ours is no drift */
	json_decref(desired);
	desired = load("desired", "deployment-web");
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_IN_SYNC, "annotation owned by kubectl-annotate");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void missing_live_object_is_missing(void **state)
{
	(void)state;
	drift_result *r = compare_files("deployment-web", NULL, NULL);
	expect_state(r, DRIFT_MISSING, "no live object");
	assert_int_equal(drift_result_field_count(r), 0);
	char *line = summary_text(r);
	assert_string_equal(line, "MISSING   Deployment drift-fixtures/web\n");
	free(line);
	char *text = diff_text(r, 0);
	assert_non_null(strstr(text, "--- live Deployment drift-fixtures/web (absent)\n"));
	assert_null(strstr(text, "replicas")); /* the manifest has none */
	assert_non_null(strstr(text, "\n+       containers:\n+         - name: \"web\"\n"));
	assert_non_null(strstr(text, "\n+           image: \"nginx:1.27\"\n"));
	free(text);
	char *js = json_text(r);
	assert_non_null(strstr(js, "\"state\": \"MISSING\""));
	free(js);
	drift_result_free(r);
}

static void inventory_object_no_longer_desired_is_extra(void **state)
{
	(void)state;
	drift_result *r = compare_files(NULL, "configmap-settings", NULL);
	expect_state(r, DRIFT_EXTRA, "no longer desired");
	assert_string_equal(drift_result_kind(r), "ConfigMap");
	assert_string_equal(drift_result_name(r), "settings");
	char *text = diff_text(r, 0);
	assert_non_null(strstr(text, "\n-   log_level: \"info\"\n"));
	free(text);
	drift_result_free(r);
}

static void ignore_rule_suppresses_a_difference(void **state)
{
	(void)state;
	drift_ignore *ig = NULL;
	assert_int_equal(drift_ignore_new(&ig), 0);
	/* a rule for another kind changes nothing */
	assert_int_equal(drift_ignore_add(ig, "apps", "StatefulSet", NULL, NULL,
					  "/spec/template/spec/containers/0/image"), 0);
	drift_options opts = {.ignore = ig};
	drift_result *r = compare_files("deployment-web", "deployment-web.image-changed", &opts);
	expect_state(r, DRIFT_MODIFIED, "rule for StatefulSets");
	drift_result_free(r);

	assert_int_equal(drift_ignore_add(ig, "apps", "Deployment", "drift-fixtures", "web",
					  "/spec/template/spec/containers/0/image"), 0);
	r = compare_files("deployment-web", "deployment-web.image-changed", &opts);
	expect_state(r, DRIFT_IN_SYNC, "image ignored");
	drift_result_free(r);
	drift_ignore_free(ig);

	/* escaped keys: an annotation key with '/' */
	assert_int_equal(drift_ignore_new(&ig), 0);
	assert_int_equal(drift_ignore_add(ig, "", "ConfigMap", "*", NULL, "/data/log_level"), 0);
	opts.ignore = ig;
	r = compare_files("configmap-settings", "configmap-settings.patched", &opts);
	expect_state(r, DRIFT_IN_SYNC, "log_level ignored");
	drift_result_free(r);

	assert_int_equal(drift_ignore_add(ig, NULL, NULL, NULL, NULL, "spec/replicas"),
			 GITOPS_EINVALID);
	assert_int_equal(drift_ignore_add(ig, NULL, NULL, NULL, NULL, "/a~2b"), GITOPS_EINVALID);
	assert_int_equal(drift_ignore_add(ig, NULL, NULL, NULL, NULL, "/metadata/annotations/a~1b"),
			 0);
	drift_ignore_free(ig);
	drift_ignore_free(NULL);
}

/* Nothing derived from a Secret's values may be printed: not the clear text, not the base64. */
static void assert_no_secret(const char *text)
{
	static const char *const secrets[] = {
		"hunter2-s3cr3t", "aHVudGVyMi1zM2NyM3Q=", "changed-by-hand-pw",
		"Y2hhbmdlZC1ieS1oYW5kLXB3", "tok-abc-123", "dG9rLWFiYy0xMjM=", "sneaky-extra-value",
		"c25lYWt5LWV4dHJhLXZhbHVl", "YWRtaW4=",
	};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++)
		if (strstr(text, secrets[i]))
			fail_msg("secret value %s leaked in:\n%s", secrets[i], text);
}

static void check_secret_outputs(const drift_result *r)
{
	char *t = diff_text(r, 0);
	assert_no_secret(t);
	free(t);
	t = diff_text(r, DRIFT_FORMAT_COLOR);
	assert_no_secret(t);
	free(t);
	t = json_text(r);
	assert_no_secret(t);
	free(t);
	t = summary_text(r);
	assert_no_secret(t);
	free(t);
}

static void secret_diff_names_keys_but_never_values(void **state)
{
	(void)state;
	drift_result *r = compare_files("secret-creds", "secret-creds.changed", NULL);
	expect_state(r, DRIFT_MODIFIED, "password changed, token removed by hand");
	/* "extra" was added by kubectl-patch and is not ours: not reported */
	assert_int_equal(drift_result_field_count(r), 2);
	assert_string_equal(drift_result_field(r, 0)->path, ".data.password");
	assert_string_equal(json_string_value(drift_result_field(r, 0)->desired), "*** (changed)");
	assert_string_equal(json_string_value(drift_result_field(r, 0)->live), "***");
	assert_string_equal(drift_result_field(r, 1)->path, ".data.token");
	assert_string_equal(json_string_value(drift_result_field(r, 1)->desired), "*** (added)");
	assert_null(drift_result_field(r, 1)->live);
	char *t = diff_text(r, 0);
	assert_non_null(strstr(t, "@@ .data.password @@\n- \"***\"\n+ \"*** (changed)\"\n"));
	assert_non_null(strstr(t, "@@ .data.token @@\n+ \"*** (added)\"\n"));
	free(t);
	check_secret_outputs(r);
	drift_result_free(r);

	/* whole objects: missing and extra Secrets print key names only */
	r = compare_files("secret-creds", NULL, NULL);
	expect_state(r, DRIFT_MISSING, "secret missing");
	t = diff_text(r, 0);
	assert_non_null(strstr(t, "password: \"***\""));
	free(t);
	check_secret_outputs(r);
	drift_result_free(r);
	r = compare_files(NULL, "secret-creds.changed", NULL);
	expect_state(r, DRIFT_EXTRA, "secret extra");
	check_secret_outputs(r);
	drift_result_free(r);

	/* the client-side apply annotation embeds the values: a Secret once applied with kubectl
	 * apply, now with gitops, whose annotations all differ */
	json_t *desired = load("desired", "secret-creds");
	json_t *live = load("live", "secret-creds");
	json_object_set_new(json_object_get(desired, "metadata"), "annotations",
			    json_pack("{s:s}", "team", "shop"));
	json_t *lmd = json_object_get(live, "metadata");
	json_object_set_new(lmd, "annotations",
			    json_pack("{s:s}", "kubectl.kubernetes.io/last-applied-configuration",
				      "{\"stringData\":{\"password\":\"hunter2-s3cr3t\"}}"));
	json_t *mf = json_array_get(json_object_get(lmd, "managedFields"), 0);
	/* as if gitops had owned the annotation once (taken over from kubectl apply) */
	json_object_set_new(json_object_get(mf, "fieldsV1"), "f:metadata",
			    json_pack("{s:{s:{}, s:{}}}", "f:annotations", ".",
				      "f:kubectl.kubernetes.io/last-applied-configuration"));
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "annotations");
	check_secret_outputs(r);
	drift_result_free(r);
	json_object_del(json_object_get(desired, "metadata"), "annotations");
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "annotations map no longer desired");
	assert_int_equal(drift_result_field_count(r), 1);
	assert_string_equal(drift_result_field(r, 0)->path,
			    ".metadata.annotations[\"kubectl.kubernetes.io/last-applied-configuration\"]");
	assert_string_equal(json_string_value(drift_result_field(r, 0)->live), "***");
	check_secret_outputs(r);
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);

	/* a key removed from the manifest while gitops owns it: reported, masked */
	desired = load("desired", "secret-creds");
	json_object_del(json_object_get(desired, "data"), "username");
	live = load("live", "secret-creds");
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "username removed from the manifest");
	assert_int_equal(drift_result_field_count(r), 1);
	assert_string_equal(drift_result_field(r, 0)->path, ".data.username");
	assert_null(drift_result_field(r, 0)->desired);
	assert_string_equal(json_string_value(drift_result_field(r, 0)->live), "***");
	check_secret_outputs(r);
	drift_result_free(r);
	/* the whole data map replaced: each value masked */
	json_object_del(desired, "stringData");
	json_object_set_new(desired, "data", json_pack("{s:s}", "other", "YWRtaW4="));
	json_object_del(json_object_get(live, "metadata"), "managedFields");
	json_object_del(live, "data");
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "data absent live");
	assert_string_equal(drift_result_field(r, 0)->path, ".data");
	check_secret_outputs(r);
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void quantities_compare_by_value(void **state)
{
	(void)state;
	static const struct { const char *a, *b; int eq; } cases[] = {
		{"500m", "0.5", 1}, {"1Gi", "1073741824", 1}, {"1000m", "1", 1},
		{"1.5Gi", "1610612736", 1}, {"1e3", "1k", 1}, {"100m", ".1", 1},
		{"0", "0m", 1}, {"+2", "2000m", 1}, {"1E3", "1000", 1}, {"1Ki", "1024", 1},
		{"1Ei", "1152921504606846976", 1}, {"12e-1", "1200m", 1}, {"1M", "1Mi", 0},
		{"500m", "0.51", 0}, {"-1", "1", 0}, {"1", "1.000000000001", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int eq = -1;
		assert_int_equal(drift_quantity_equal(&eq, cases[i].a, cases[i].b), 0);
		if (eq != cases[i].eq)
			fail_msg("%s vs %s: equal=%d, want %d", cases[i].a, cases[i].b, eq, cases[i].eq);
	}
	int eq;
	assert_int_equal(drift_quantity_equal(&eq, "abc", "1"), GITOPS_EINVALID);
	assert_int_equal(drift_quantity_equal(&eq, "1Xi", "1"), GITOPS_EINVALID);
	assert_int_equal(drift_quantity_equal(&eq, "1e", "1"), GITOPS_EINVALID);

	/* in a container's resources: spelling is not drift, a value change is */
	json_t *desired = load("desired", "deployment-web");
	json_t *live = load("live", "deployment-web");
	json_t *c = json_array_get(json_object_get(json_object_get(json_object_get(
		json_object_get(desired, "spec"), "template"), "spec"), "containers"), 0);
	json_t *limits = json_object_get(json_object_get(c, "resources"), "limits");
	json_object_set_new(limits, "cpu", json_real(1.0));
	json_object_set_new(limits, "memory", json_string("2048Mi"));
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_IN_SYNC, "cpu 1.0, memory 2048Mi");
	drift_result_free(r);
	json_object_set_new(limits, "memory", json_string("3Gi"));
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "memory 3Gi");
	assert_string_equal(drift_result_field(r, 0)->path,
			    ".spec.template.spec.containers[name=web].resources.limits.memory");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);

	/* outside quantity fields a string is a string: "1.0" is not "1" in a ConfigMap */
	desired = load("desired", "configmap-settings");
	live = load("live", "configmap-settings");
	json_object_set_new(json_object_get(live, "data"), "ratio", json_string("1"));
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "ratio 1.0 vs 1");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void number_spellings_are_equal(void **state)
{
	(void)state;
	/* the Widget's weight is 2.0 in the manifest, 2 live (already in the corpus); and the
	 * other way round */
	json_t *desired = load("desired", "widget-gear");
	json_t *live = load("live", "widget-gear");
	json_object_set_new(json_object_get(desired, "spec"), "size", json_real(3.0));
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_IN_SYNC, "size 3.0 vs 3");
	drift_result_free(r);
	json_object_set_new(json_object_get(desired, "spec"), "size", json_real(3.5));
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "size 3.5 vs 3");
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void normalize_applies_the_apiserver_defaults(void **state)
{
	(void)state;
	json_t *in = json_pack("{s:s, s:s, s:{s:s, s:n}, s:{s:s}, s:{s:s}}", "apiVersion", "v1",
			       "kind", "Secret", "metadata", "name", "s", "creationTimestamp",
			       "stringData", "k", "hello", "status", "x", "y");
	json_t *out = NULL;
	assert_int_equal(drift_normalize(&out, in), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(out, "data"), "k")),
			    "aGVsbG8=");
	assert_null(json_object_get(out, "stringData"));
	assert_null(json_object_get(out, "status"));
	assert_null(json_object_get(json_object_get(out, "metadata"), "creationTimestamp"));
	assert_non_null(json_object_get(in, "stringData")); /* input untouched */
	json_decref(out);
	json_decref(in);

	/* base64 wrapped over lines, as `base64` prints it, is stored flat */
	in = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}}", "apiVersion", "v1", "kind",
		       "Secret", "metadata", "name", "s", "data", "a", "YWRt\naW4=\n", "b",
		       "aGVs\r\nbG8=", "c", "no\nt-base64!");
	assert_int_equal(drift_normalize(&out, in), 0);
	json_t *data = json_object_get(out, "data");
	assert_string_equal(json_string_value(json_object_get(data, "a")), "YWRtaW4=");
	assert_string_equal(json_string_value(json_object_get(data, "b")), "aGVsbG8=");
	assert_string_equal(json_string_value(json_object_get(data, "c")), "no\nt-base64!");
	json_decref(out);
	json_decref(in);

	json_t *svc = load("desired", "service-web");
	assert_int_equal(drift_normalize(&out, svc), 0);
	json_t *port = json_array_get(json_object_get(json_object_get(out, "spec"), "ports"), 0);
	assert_string_equal(json_string_value(json_object_get(port, "protocol")), "TCP");
	json_decref(out);
	json_decref(svc);

	json_t *crd = load("live", "crd-widgets");
	assert_int_equal(drift_normalize(&out, crd), 0);
	assert_non_null(json_object_get(out, "status"));
	assert_null(json_object_get(json_object_get(out, "metadata"), "managedFields"));
	json_decref(out);
	json_decref(crd);

	assert_int_equal(drift_normalize(&out, NULL), GITOPS_EINVALID);
}

/* managedFields are data from the server: nonsense in them must not crash nor hide drift. */
static void malformed_managed_fields_are_tolerated(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"{\"f:spec\": {\"k:{not json\": {}, \"i:zz\": {}, \"v:[1\": {}, \"x:y\": {}}}",
		"{\"f:spec\": \"string\", \"f:metadata\": []}",
		"{\"f:spec\": {\"f:template\": {\"f:spec\": {\"f:containers\": "
		"{\"k:[1,2]\": {}, \"i:99\": {\".\": {}}}}}}}",
		"{\"f:data\": {\"f:nope\": {}}, \"f:spec\": {\"f:replicas\": {\"f:deeper\": {}}}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		json_t *desired = load("desired", "deployment-web");
		json_t *live = load("live", "deployment-web.image-changed");
		json_t *entry = json_array_get(
			json_object_get(json_object_get(live, "metadata"), "managedFields"), 0);
		json_object_set_new(entry, "fieldsV1", json_loads(bad[i], 0, NULL));
		drift_result *r = NULL;
		assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
		expect_state(r, DRIFT_MODIFIED, bad[i]);
		assert_string_equal(drift_result_field(r, 0)->path,
				    ".spec.template.spec.containers[name=web].image");
		drift_result_free(r);
		json_decref(desired);
		json_decref(live);
	}
	/* shapes that differ between desired and live */
	json_t *desired = json_pack("{s:s, s:s, s:{s:s}, s:{s:[i], s:{s:i}, s:s}}", "apiVersion", "v1",
				    "kind", "X", "metadata", "name", "x", "spec", "a", 1, "b", "c",
				    1, "d", "e");
	json_t *live = json_pack("{s:s, s:s, s:{s:s}, s:{s:{}, s:[i], s:[s]}}", "apiVersion", "v1",
				 "kind", "X", "metadata", "name", "x", "spec", "a", "b", 1, "d", "e");
	drift_result *r = NULL;
	assert_int_equal(drift_compare(&r, desired, live, NULL), 0);
	expect_state(r, DRIFT_MODIFIED, "shapes");
	assert_int_equal(drift_result_field_count(r), 3);
	char *t = diff_text(r, 0);
	free(t);
	drift_result_free(r);
	json_decref(desired);
	json_decref(live);
}

static void bad_input_is_rejected(void **state)
{
	(void)state;
	drift_result *r = (drift_result *)1;
	assert_int_equal(drift_compare(&r, NULL, NULL, NULL), GITOPS_EINVALID);
	assert_null(r);
	json_t *notobj = json_string("x");
	assert_int_equal(drift_compare(&r, notobj, NULL, NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "desired"));
	json_decref(notobj);
	drift_result_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_false_drift_right_after_server_side_apply),
		cmocka_unit_test(no_false_drift_without_managed_fields),
		cmocka_unit_test(replicas_scaled_by_kubectl_is_not_drift),
		cmocka_unit_test(replicas_in_the_manifest_are_compared),
		cmocka_unit_test(annotation_added_by_hand_is_not_drift),
		cmocka_unit_test(annotation_we_set_changed_by_hand_is_modified),
		cmocka_unit_test(image_changed_by_another_manager_is_modified),
		cmocka_unit_test(env_value_set_by_kubectl_is_modified),
		cmocka_unit_test(configmap_value_patched_by_hand_is_modified),
		cmocka_unit_test(service_port_matched_by_key),
		cmocka_unit_test(custom_resource_field_patched_is_modified),
		cmocka_unit_test(rbac_rule_changed_by_hand_is_modified),
		cmocka_unit_test(aggregated_clusterrole_rules_are_not_drift),
		cmocka_unit_test(owned_field_removed_from_manifest_is_modified),
		cmocka_unit_test(missing_live_object_is_missing),
		cmocka_unit_test(inventory_object_no_longer_desired_is_extra),
		cmocka_unit_test(ignore_rule_suppresses_a_difference),
		cmocka_unit_test(secret_diff_names_keys_but_never_values),
		cmocka_unit_test(quantities_compare_by_value),
		cmocka_unit_test(number_spellings_are_equal),
		cmocka_unit_test(normalize_applies_the_apiserver_defaults),
		cmocka_unit_test(malformed_managed_fields_are_tolerated),
		cmocka_unit_test(bad_input_is_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
