/* Integration tests for kube/ against the real local kube-apiserver: apply (create, update, dry
 * run, strict validation), field-manager conflicts, CRDs, delete, list pagination, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube.h"
#include "support/support.h"

static kube_client *client;
static char *ns;

static json_t *configmap(const char *name, const char *key, const char *value)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
			 "name", name, "namespace", ns, "data", key, value);
}

static int setup(void **state)
{
	(void)state;
	t_env("KUBECONFIG");
	kube_config *cfg;
	if (kube_config_load(&cfg, NULL)) {
		fprintf(stderr, "config: %s\n", gitops_error_last());
		return -1;
	}
	struct kube_client_options o = {.qps = 500, .burst = 500};
	if (kube_client_new(&client, cfg, &o)) {
		fprintf(stderr, "client: %s\n", gitops_error_last());
		return -1;
	}
	ns = t_unique("kube-it");
	json_t *nsobj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns);
	int rc = kube_apply(NULL, NULL, client, nsobj, NULL);
	json_decref(nsobj);
	if (rc)
		fprintf(stderr, "namespace: %s\n", gitops_error_last());
	return rc;
}

static int teardown(void **state)
{
	(void)state;
	kube_delete(client, "v1", "Namespace", NULL, ns, "Background", false);
	free(ns);
	kube_client_free(client);
	return 0;
}

static void apply_creates_then_updates_and_dry_run_persists_nothing(void **state)
{
	(void)state;
	json_t *cm = configmap("apply-me", "k", "v1");
	bool created = false;
	json_t *out = NULL;
	assert_int_equal(kube_apply(&out, &created, client, cm, NULL), 0);
	assert_true(created);
	const char *rv1 = json_string_value(json_object_get(json_object_get(out, "metadata"), "resourceVersion"));
	assert_non_null(rv1);
	char *rv1c = gitops_strdup(rv1);
	json_decref(out);

	json_object_set_new(json_object_get(cm, "data"), "k", json_string("v2"));
	assert_int_equal(kube_apply(&out, &created, client, cm, NULL), 0);
	assert_false(created);
	assert_string_equal(json_string_value(json_object_get(json_object_get(out, "data"), "k")), "v2");
	json_decref(out);

	/* Dry run of a change and of a new object: the answer shows it, the server keeps nothing. */
	json_object_set_new(json_object_get(cm, "data"), "k", json_string("v3"));
	struct kube_apply_options dry = {.dry_run = true};
	assert_int_equal(kube_apply(&out, NULL, client, cm, &dry), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(out, "data"), "k")), "v3");
	json_decref(out);
	json_t *ghost = configmap("dry-only", "k", "v");
	assert_int_equal(kube_apply(NULL, &created, client, ghost, &dry), 0);
	assert_true(created);
	json_t *got = NULL;
	assert_int_equal(kube_get(&got, client, "v1", "ConfigMap", ns, "dry-only"), GITOPS_ENOTFOUND);
	assert_int_equal(kube_get(&got, client, "v1", "ConfigMap", ns, "apply-me"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(got, "data"), "k")), "v2");
	assert_string_not_equal(json_string_value(json_object_get(json_object_get(got, "metadata"), "resourceVersion")), rv1c);
	json_decref(got);
	json_decref(ghost);
	json_decref(cm);
	free(rv1c);
}

static void strict_validation_names_the_unknown_field(void **state)
{
	(void)state;
	json_t *cm = configmap("strict", "k", "v");
	json_object_set_new(json_object_get(cm, "metadata"), "bogusField", json_string("x"));
	struct kube_apply_options strict = {.strict = true};
	assert_int_equal(kube_apply(NULL, NULL, client, cm, &strict), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "bogusField"));
	assert_non_null(strstr(gitops_error_last(), "ConfigMap"));
	json_decref(cm);
}

static void conflict_names_other_manager_and_field_and_force_takes_over(void **state)
{
	(void)state;
	json_t *cm = configmap("contested", "color", "blue");
	assert_int_equal(kube_apply(NULL, NULL, client, cm, NULL), 0);
	char *out = NULL;
	int st = t_sh(&out, "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: contested, namespace: %s}\\n"
			    "data: {color: red}\\n' | kubectl apply --server-side --force-conflicts --field-manager=other -f -", ns);
	assert_int_equal(st, 0);
	free(out);
	json_object_set_new(json_object_get(cm, "data"), "color", json_string("green"));
	assert_int_equal(kube_apply(NULL, NULL, client, cm, NULL), GITOPS_ECONFLICT);
	const char *msg = gitops_error_last();
	assert_non_null(strstr(msg, "\"other\""));
	assert_non_null(strstr(msg, ".data.color"));
	struct kube_apply_options force = {.force = true};
	json_t *res = NULL;
	assert_int_equal(kube_apply(&res, NULL, client, cm, &force), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(res, "data"), "color")), "green");
	json_decref(res);
	json_decref(cm);
}

static void crd_then_custom_resource_in_one_pass(void **state)
{
	(void)state;
	char *plural = t_unique("widgets");
	for (char *p = plural; *p; p++)
		if (*p == '-')
			*p = 'x';
	char *crdname = gitops_sprintf("%s.test.gitops.dev", plural);
	json_t *crd = json_pack(
		"{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:b, s:b, s:{s:{s:s, s:{s:{s:s, s:b}}}}}]}}",
		"apiVersion", "apiextensions.k8s.io/v1", "kind", "CustomResourceDefinition",
		"metadata", "name", crdname,
		"spec", "group", "test.gitops.dev", "scope", "Namespaced",
		"names", "plural", plural, "singular", "widgetz", "kind", "Widget",
		"versions", "name", "v1", "served", 1, "storage", 1,
		"schema", "openAPIV3Schema", "type", "object", "properties", "spec", "type", "object",
		"x-kubernetes-preserve-unknown-fields", 1);
	assert_non_null(crd);
	assert_int_equal(kube_apply(NULL, NULL, client, crd, NULL), 0);
	assert_int_equal(kube_wait_crd(client, crdname, 30000), 0);
	json_t *cr = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i}}", "apiVersion", "test.gitops.dev/v1", "kind", "Widget",
			       "metadata", "name", "w1", "namespace", ns, "spec", "size", 3);
	bool created = false;
	if (kube_apply(NULL, &created, client, cr, NULL))
		fail_msg("apply custom resource: %s", gitops_error_last());
	assert_true(created);
	json_t *got = NULL;
	assert_int_equal(kube_get(&got, client, "test.gitops.dev/v1", "Widget", ns, "w1"), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "spec"), "size")), 3);
	json_decref(got);
	assert_int_equal(kube_delete(client, "apiextensions.k8s.io/v1", "CustomResourceDefinition", NULL, crdname,
				     "Background", false), 0);
	json_decref(cr);
	json_decref(crd);
	free(crdname);
	free(plural);
}

static json_t *widget_crd(const char *group, const char *plural, const char *kind)
{
	char *name = gitops_sprintf("%s.%s", plural, group);
	json_t *crd = json_pack(
		"{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:{s:s, s:s}, s:[{s:s, s:b, s:b, s:{s:{s:s, s:b}}}]}}",
		"apiVersion", "apiextensions.k8s.io/v1", "kind", "CustomResourceDefinition", "metadata", "name", name,
		"spec", "group", group, "scope", "Namespaced", "names", "plural", plural, "kind", kind,
		"versions", "name", "v1", "served", 1, "storage", 1,
		"schema", "openAPIV3Schema", "type", "object", "x-kubernetes-preserve-unknown-fields", 1);
	free(name);
	return crd;
}

/* A group name of its own for a test's CRDs (t_unique's dashes are not allowed in it). */
static char *test_group(const char *prefix)
{
	char *u = t_unique(prefix);
	for (char *p = u; *p; p++)
		if (*p == '-')
			*p = 'x';
	char *group = gitops_sprintf("%s.test.gitops.dev", u);
	free(u);
	return group;
}

/* A widget CRD applied and waited for (caller frees it). */
static json_t *established_crd(const char *group, const char *plural, const char *kind)
{
	json_t *crd = widget_crd(group, plural, kind);
	assert_int_equal(kube_apply(NULL, NULL, client, crd, NULL), 0);
	bool ready = false;
	if (kube_wait_crds(client, (const json_t *const *)&crd, 1, &ready, 30000))
		fail_msg("wait: %s", gitops_error_last());
	return crd;
}

/* Several CRDs applied together are waited for together, and their kinds are then served
 * from the client's table with no discovery refresh. */
static void crds_are_waited_for_together(void **state)
{
	(void)state;
	char *group = test_group("g");
	json_t *crds[3] = {widget_crd(group, "alphas", "Alpha"), widget_crd(group, "betas", "Beta"),
			   widget_crd(group, "gammas", "Gamma")};
	for (int i = 0; i < 3; i++)
		assert_int_equal(kube_apply(NULL, NULL, client, crds[i], NULL), 0);
	bool ready[3] = {false, false, false};
	if (kube_wait_crds(client, (const json_t *const *)crds, 3, ready, 30000))
		fail_msg("wait: %s", gitops_error_last());
	assert_true(ready[0] && ready[1] && ready[2]);
	char *av = gitops_sprintf("%s/v1", group);
	struct kube_stats before, after;
	kube_client_stats(client, &before);
	const struct kube_resource *r = NULL;
	assert_int_equal(kube_resource_for(&r, client, av, "Gamma"), 0);
	assert_string_equal(r->resource, "gammas");
	assert_true(r->namespaced);
	kube_client_stats(client, &after);
	assert_int_equal(after.requests, before.requests);
	json_t *cr = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", av, "kind", "Beta", "metadata", "name", "b1",
			       "namespace", ns);
	if (kube_apply(NULL, NULL, client, cr, NULL))
		fail_msg("apply custom resource: %s", gitops_error_last());
	json_decref(cr);
	for (int i = 0; i < 3; i++) {
		const char *name = json_string_value(json_object_get(json_object_get(crds[i], "metadata"), "name"));
		assert_int_equal(kube_delete(client, "apiextensions.k8s.io/v1", "CustomResourceDefinition", NULL, name,
					     "Background", false), 0);
		json_decref(crds[i]);
	}
	free(av);
	free(group);
}

static void *cancel_later(void *flag)
{
	usleep(300 * 1000);
	atomic_store((atomic_bool *)flag, true);
	return NULL;
}

/* A CRD that never comes (it was never applied) is waited for until the cancel flag is set,
 * not for the whole timeout. */
static void crd_wait_honours_the_cancel_flag(void **state)
{
	(void)state;
	kube_config *cfg;
	assert_int_equal(kube_config_load(&cfg, NULL), 0);
	atomic_bool cancel;
	atomic_init(&cancel, false);
	kube_client *c = NULL;
	struct kube_client_options o = {.cancel = &cancel};
	assert_int_equal(kube_client_new(&c, cfg, &o), 0);
	json_t *crd = widget_crd("never.test.gitops.dev", "nevers", "Never");
	const json_t *crds[] = {crd};
	pthread_t t;
	pthread_create(&t, NULL, cancel_later, &cancel);
	long long t0 = gitops_now_ms();
	assert_int_equal(kube_wait_crds(c, crds, 1, NULL, 60000), GITOPS_ETIMEOUT);
	long long took = gitops_now_ms() - t0;
	pthread_join(t, NULL);
	assert_non_null(strstr(gitops_error_last(), "nevers.never.test.gitops.dev"));
	assert_non_null(strstr(gitops_error_last(), "cancelled"));
	if (took > 5000)
		fail_msg("the wait went on %lld ms after the cancel", took);
	json_decref(crd);
	kube_client_free(c);
}

static void list_pages_through_more_than_one_page_with_a_selector(void **state)
{
	(void)state;
	for (int i = 0; i < 1100; i++) { /* one GET, read as it arrives */
		char name[32];
		snprintf(name, sizeof(name), "page-%04d", i);
		json_t *cm = configmap(name, "i", "x");
		json_object_set_new(json_object_get(cm, "metadata"), "labels",
				    json_pack("{s:s}", "set", i % 2 ? "odd" : "even"));
		assert_int_equal(kube_apply(NULL, NULL, client, cm, NULL), 0);
		json_decref(cm);
	}
	const struct kube_resource *r;
	assert_int_equal(kube_resource_for(&r, client, "v1", "ConfigMap"), 0);
	assert_true(r->namespaced);
	assert_string_equal(r->resource, "configmaps");
	json_t *items = NULL;
	char *rv = NULL;
	assert_int_equal(kube_list(&items, &rv, client, r, ns, "set in (odd,even)"), 0);
	assert_int_equal(json_array_size(items), 1100);
	json_t *names = json_object(); /* every object once: no page twice, none missing */
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
		json_object_set_new(names, json_string_value(json_object_get(json_object_get(it, "metadata"), "name")), json_true());
	assert_int_equal(json_object_size(names), 1100);
	assert_non_null(json_object_get(names, "page-0000"));
	assert_non_null(json_object_get(names, "page-1099"));
	json_decref(names);
	assert_non_null(rv);
	assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "kind")), "ConfigMap");
	json_decref(items);
	free(rv);
	assert_int_equal(kube_list(&items, NULL, client, r, ns, "set=odd"), 0);
	assert_int_equal(json_array_size(items), 550);
	json_decref(items);
}

static void count_items(void *ud, json_t *items) { *(size_t *)ud += json_array_size(items); }

static void count_pages(void *ud, json_t *items) { (void)items; (*(size_t *)ud)++; }

struct pages_seen {
	int pages;
	json_t *names;
};
static void note_page(void *ud, json_t *items)
{
	struct pages_seen *p = ud;
	p->pages++;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		assert_string_equal(json_string_value(json_object_get(it, "kind")), "ConfigMap");
		assert_string_equal(json_string_value(json_object_get(it, "apiVersion")), "v1");
		json_object_set_new(p->names, json_string_value(json_object_get(json_object_get(it, "metadata"), "name")),
				    json_true());
	}
}

/* A list of more than one page of text (about 512 kB each: here 1.5 MB) is read as it arrives:
 * the callback gets it in pages while the rest still comes, every object once, none missing;
 * its resourceVersion comes from the list's head. */
static void list_read_as_it_arrives_comes_in_pages_every_object_once(void **state)
{
	(void)state;
	char *big = gitops_calloc(1, 2049);
	memset(big, 'v', 2048);
	for (int i = 0; i < 700; i++) {
		char name[32];
		snprintf(name, sizeof(name), "stream-%04d", i);
		json_t *cm = configmap(name, "big", big);
		json_object_set_new(json_object_get(cm, "metadata"), "labels", json_pack("{s:s}", "stream", "yes"));
		assert_int_equal(kube_apply(NULL, NULL, client, cm, NULL), 0);
		json_decref(cm);
	}
	free(big);
	const struct kube_resource *r;
	assert_int_equal(kube_resource_for(&r, client, "v1", "ConfigMap"), 0);
	struct pages_seen seen = {0, json_object()};
	char *rv = NULL;
	assert_int_equal(kube_list_pages(client, r, ns, "stream=yes", note_page, NULL, &seen, &rv), 0);
	assert_true(seen.pages >= 2);
	assert_int_equal(json_object_size(seen.names), 700);
	assert_non_null(json_object_get(seen.names, "stream-0000"));
	assert_non_null(json_object_get(seen.names, "stream-0699"));
	assert_non_null(rv);
	assert_true(strtoull(rv, NULL, 10) > 0);
	json_decref(seen.names);
	free(rv);

	/* custom resources: their lists sort their keys (apiVersion, items, kind, metadata), so the
	 * resourceVersion comes after the items */
	char *group = test_group("s");
	json_t *crd = established_crd(group, "streams", "Stream");
	char *av = gitops_sprintf("%s/v1", group);
	char *spec = gitops_calloc(1, 2049);
	memset(spec, 's', 2048);
	for (int i = 0; i < 400; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cr-%04d", i);
		json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", av, "kind", "Stream", "metadata",
				      "name", name, "namespace", ns, "spec", "text", spec);
		if (kube_apply(NULL, NULL, client, o, NULL))
			fail_msg("apply %s: %s", name, gitops_error_last());
		json_decref(o);
	}
	free(spec);
	assert_int_equal(kube_resource_for(&r, client, av, "Stream"), 0);
	json_t *items = NULL;
	rv = NULL;
	assert_int_equal(kube_list(&items, &rv, client, r, ns, NULL), 0);
	assert_int_equal(json_array_size(items), 400);
	assert_string_equal(json_string_value(json_object_get(json_array_get(items, 399), "kind")), "Stream");
	assert_non_null(rv);
	assert_true(strtoull(rv, NULL, 10) > 0);
	json_decref(items);
	free(rv);
	size_t counted = 0;
	assert_int_equal(kube_list_pages(client, r, ns, NULL, count_pages, NULL, &counted, NULL), 0);
	assert_true(counted >= 2);
	json_decref(crd);
	free(av);
	free(group);
}

/* Lists asked for ahead (kube_list_ahead_*): several under way at once, read in any order, each
 * whole; one dropped unread leaves the caller's error as it was (and nothing behind: ASan). */
static void lists_asked_for_ahead_are_read_whole_or_dropped(void **state)
{
	(void)state;
	for (int i = 0; i < 600; i++) { /* more than the first page of 250 */
		char name[32];
		snprintf(name, sizeof(name), "ahead-%04d", i);
		json_t *cm = configmap(name, "i", "x");
		json_object_set_new(json_object_get(cm, "metadata"), "labels", json_pack("{s:s}", "ahead", i % 2 ? "odd" : "even"));
		assert_int_equal(kube_apply(NULL, NULL, client, cm, NULL), 0);
		json_decref(cm);
	}
	const struct kube_resource *cms, *secrets;
	assert_int_equal(kube_resource_for(&cms, client, "v1", "ConfigMap"), 0);
	assert_int_equal(kube_resource_for(&secrets, client, "v1", "Secret"), 0);
	size_t want = 600;
	kube_list_ahead *a = kube_list_ahead_start(client, cms, ns, "ahead");
	kube_list_ahead *b = kube_list_ahead_start(client, secrets, ns, NULL);
	kube_list_ahead *c = kube_list_ahead_start(client, cms, ns, "ahead=odd");
	assert_ptr_equal(kube_list_ahead_resource(a), cms);
	assert_string_equal(kube_list_ahead_namespace(a), ns);
	size_t n = 0, odd = 0;
	assert_int_equal(kube_list_ahead_pages(c, count_items, NULL, &odd, NULL), 0); /* the last asked, first */
	assert_int_equal(kube_list_ahead_pages(a, count_items, NULL, &n, NULL), 0);
	assert_int_equal(n, want);
	assert_int_equal(odd, 300);
	gitops_error_set(GITOPS_EINVALID, "the caller's own error");
	kube_list_ahead_free(b); /* dropped unread */
	assert_string_equal(gitops_error_last(), "the caller's own error");
	gitops_error_clear();
	kube_list_ahead_free(NULL);
	/* a list of a namespace that does not exist: its error comes when it is read */
	kube_list_ahead *d = kube_list_ahead_start(client, cms, "no-such-namespace-here", NULL);
	n = 0;
	assert_int_equal(kube_list_ahead_pages(d, count_items, NULL, &n, NULL), 0); /* an empty list */
	assert_int_equal(n, 0);
}

/* A list page jansson cannot read (here an object nested deeper than jansson parses, which the
 * apiserver stores) is an error naming the kind, never an empty page: its objects, and those
 * of the pages after it, would otherwise seem gone (reported missing, dropped from the
 * inventory). */
static void list_page_that_cannot_be_read_is_an_error_not_an_empty_page(void **state)
{
	(void)state;
	char *group = test_group("d");
	json_t *crd = established_crd(group, "deeps", "Deep");
	char *av = gitops_sprintf("%s/v1", group);
	json_t *flat = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", av, "kind", "Deep", "metadata",
				 "name", "flat", "namespace", ns, "spec", "secretish", "s3cr3t-value");
	if (kube_apply(NULL, NULL, client, flat, NULL))
		fail_msg("apply flat: %s", gitops_error_last());
	json_decref(flat);
	json_t *v = json_string("s3cr3t-value");
	for (int i = 0; i < JSON_PARSER_MAX_DEPTH + 50; i++)
		v = json_pack("{s:o}", "a", v);
	json_t *deep = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", av, "kind", "Deep", "metadata",
				 "name", "deep", "namespace", ns, "spec", v);
	if (kube_apply(NULL, NULL, client, deep, NULL))
		fail_msg("apply deep: %s", gitops_error_last());

	const struct kube_resource *r;
	assert_int_equal(kube_resource_for(&r, client, av, "Deep"), 0);
	json_t *items = NULL;
	assert_int_equal(kube_list(&items, NULL, client, r, ns, NULL), GITOPS_EPARSE);
	assert_null(items);
	assert_non_null(strstr(gitops_error_last(), "list Deep: "));
	assert_null(strstr(gitops_error_last(), "s3cr3t")); /* no text of the page */
	/* nor is a GET of it an object-less success, or an apply whose answer is asked for */
	json_t *got = NULL;
	assert_int_equal(kube_get(&got, client, av, "Deep", ns, "deep"), GITOPS_EPARSE);
	assert_null(got);
	assert_non_null(strstr(gitops_error_last(), "cannot be read as JSON"));
	assert_null(strstr(gitops_error_last(), "s3cr3t"));
	json_t *again = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O}", "apiVersion", av, "kind", "Deep", "metadata", "name",
				  "deep", "namespace", ns, "spec", json_object_get(deep, "spec"));
	assert_int_equal(kube_apply(&got, NULL, client, again, NULL), GITOPS_EPARSE);
	assert_null(got);
	assert_null(strstr(gitops_error_last(), "s3cr3t"));
	assert_int_equal(kube_apply(NULL, NULL, client, again, NULL), 0); /* applied; its answer not asked for */
	json_decref(again);
	json_decref(deep);

	/* once the object is gone the list reads again */
	assert_int_equal(kube_delete(client, av, "Deep", ns, "deep", "Background", false), 0);
	assert_int_equal(kube_list(&items, NULL, client, r, ns, NULL), 0);
	assert_int_equal(json_array_size(items), 1);
	json_decref(items);
	assert_int_equal(kube_delete(client, "apiextensions.k8s.io/v1", "CustomResourceDefinition", NULL,
				     json_string_value(json_object_get(json_object_get(crd, "metadata"), "name")),
				     "Background", false), 0);
	json_decref(crd);
	free(av);
	free(group);
}

static void delete_and_errors_name_the_object(void **state)
{
	(void)state;
	json_t *cm = configmap("doomed", "k", "v");
	assert_int_equal(kube_apply(NULL, NULL, client, cm, NULL), 0);
	/* Background: without kube-controller-manager a Foreground deletion never completes. */
	assert_int_equal(kube_delete(client, "v1", "ConfigMap", ns, "doomed", "Background", false), 0);
	json_t *got = NULL;
	assert_int_equal(kube_get(&got, client, "v1", "ConfigMap", ns, "doomed"), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "doomed"));
	assert_int_equal(kube_delete(client, "v1", "ConfigMap", ns, "doomed", NULL, false), GITOPS_ENOTFOUND);
	const struct kube_resource *r;
	assert_int_equal(kube_resource_for(&r, client, "example.com/v9", "Nope"), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "Nope"));
	/* Invalid: a name the apiserver refuses, with the cause. */
	json_t *bad = configmap("Bad_Name", "k", "v");
	assert_int_equal(kube_apply(NULL, NULL, client, bad, NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "metadata.name"));
	json_decref(bad);
	json_decref(cm);
	struct kube_stats st;
	kube_client_stats(client, &st);
	assert_true(st.requests > 0);
	assert_true(st.writes > 0);
	assert_int_equal(st.http2, st.requests); /* the apiserver offers h2 over TLS */
}

/* kube_create / kube_update: a compare-and-swap write; a stale resourceVersion is GITOPS_ECONFLICT
 * and changes nothing; creating an existing object is GITOPS_EEXISTS. */
static void update_with_a_stale_resource_version_conflicts(void **state)
{
	(void)state;
	json_t *cm = configmap("cas-me", "k", "v1"), *stored = NULL, *second = NULL;
	assert_int_equal(kube_create(&stored, client, cm), GITOPS_OK);
	assert_int_equal(kube_create(NULL, client, cm), GITOPS_EEXISTS);
	json_t *a = json_deep_copy(stored), *b = json_deep_copy(stored);
	json_object_set_new(json_object_get(a, "data"), "k", json_string("from-a"));
	json_object_set_new(json_object_get(b, "data"), "k", json_string("from-b"));
	assert_int_equal(kube_update(&second, client, a), GITOPS_OK);
	assert_string_not_equal(json_string_value(json_object_get(json_object_get(second, "metadata"), "resourceVersion")),
				json_string_value(json_object_get(json_object_get(stored, "metadata"), "resourceVersion")));
	assert_int_equal(kube_update(NULL, client, b), GITOPS_ECONFLICT); /* b read the old version */
	assert_non_null(strstr(gitops_error_last(), "cas-me"));
	json_t *now = NULL;
	assert_int_equal(kube_get(&now, client, "v1", "ConfigMap", ns, "cas-me"), GITOPS_OK);
	assert_string_equal(json_string_value(json_object_get(json_object_get(now, "data"), "k")), "from-a");
	json_object_del(json_object_get(b, "metadata"), "resourceVersion");
	assert_int_equal(kube_update(NULL, client, b), GITOPS_EINVALID); /* no precondition: refused */
	json_decref(now);
	json_decref(a);
	json_decref(b);
	json_decref(second);
	json_decref(stored);
	json_decref(cm);
}

static void count_done(void *ud, size_t i, const struct kube_apply_result *r)
{
	(void)i;
	(void)r;
	(*(int *)ud)++;
}

static void batch_apply_multiplexes_on_one_connection(void **state)
{
	(void)state;
	int done_calls = 0;
	kube_config *cfg;
	kube_client *c;
	assert_int_equal(kube_config_load(&cfg, NULL), 0);
	assert_int_equal(kube_client_new(&c, cfg, &(struct kube_client_options){.qps = 1000, .burst = 1000}), 0);
	const struct kube_resource *r;
	assert_int_equal(kube_resource_for(&r, c, "v1", "ConfigMap"), 0);
	enum { N = 200 };
	json_t *objs[N];
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "batch-%03d", i);
		objs[i] = configmap(i == 7 ? "Not_Valid" : name, "i", "x");
	}
	struct kube_apply_result res[N];
	struct kube_stats s0, s1, s2;
	kube_client_stats(c, &s0);
	assert_int_equal(kube_apply_batch(res, c, objs, N, NULL, 32, count_done, &done_calls), 0);
	kube_client_stats(c, &s1);
	for (int i = 0; i < N; i++) {
		if (i == 7) {
			assert_int_equal(res[i].rc, GITOPS_EINVALID);
			assert_non_null(strstr(res[i].error, "Not_Valid"));
		} else {
			if (res[i].rc)
				fail_msg("object %d: %s", i, res[i].error);
			assert_true(res[i].created);
		}
		free(res[i].error);
	}
	assert_int_equal(done_calls, N); /* every object reported as it finished */
	assert_int_equal(s1.requests - s0.requests, N);
	assert_int_equal(s1.http2 - s0.http2, N);
	assert_int_equal(s1.connects - s0.connects, 1); /* every stream on one connection */
	/* Again: updates, on the same connection. */
	assert_int_equal(kube_apply_batch(res, c, objs, N, NULL, 32, count_done, &done_calls), 0);
	kube_client_stats(c, &s2);
	for (int i = 0; i < N; i++) {
		if (i != 7) {
			assert_int_equal(res[i].rc, 0);
			assert_false(res[i].created);
		}
		free(res[i].error);
	}
	assert_int_equal(s2.connects - s1.connects, 0);
	json_t *items = NULL;
	assert_int_equal(kube_list(&items, NULL, c, r, ns, NULL), 0);
	size_t batch = 0, i;
	json_t *it;
	json_array_foreach(items, i, it)
		if (!strncmp(json_string_value(json_object_get(json_object_get(it, "metadata"), "name")), "batch-", 6))
			batch++;
	assert_int_equal(batch, N - 1);
	json_decref(items);
	for (int k = 0; k < N; k++)
		json_decref(objs[k]);
	kube_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(apply_creates_then_updates_and_dry_run_persists_nothing),
		cmocka_unit_test(strict_validation_names_the_unknown_field),
		cmocka_unit_test(conflict_names_other_manager_and_field_and_force_takes_over),
		cmocka_unit_test(crd_then_custom_resource_in_one_pass),
		cmocka_unit_test(crds_are_waited_for_together),
		cmocka_unit_test(crd_wait_honours_the_cancel_flag),
		cmocka_unit_test(list_pages_through_more_than_one_page_with_a_selector),
		cmocka_unit_test(lists_asked_for_ahead_are_read_whole_or_dropped),
		cmocka_unit_test(list_read_as_it_arrives_comes_in_pages_every_object_once),
		cmocka_unit_test(list_page_that_cannot_be_read_is_an_error_not_an_empty_page),
		cmocka_unit_test(delete_and_errors_name_the_object),
		cmocka_unit_test(batch_apply_multiplexes_on_one_connection),
		cmocka_unit_test(update_with_a_stale_resource_version_conflicts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
