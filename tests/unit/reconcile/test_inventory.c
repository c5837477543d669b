/* Unit tests for reconcile/'s inventory (inventory.c): reading the inventory ConfigMap in its
 * two forms (objects, and groups past 1 MiB), refusing a damaged one, writing it back, and
 * refusing an inventory that belongs to another pipeline, environment or repository. The
 * ConfigMaps were recorded from the local control plane (tests/unit/reconcile/fixtures,
 * re-recorded by its record.sh); no request reaches a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "reconcile/internal.h"
#include "support/support.h"

#define FIXTURES "tests/unit/reconcile/fixtures/"
#define ROOT "0123456789abcdef0123456789abcdef01234567"

static json_t *load(const char *name) { return t_fixture(FIXTURES "live/%s.json", name); }

/* A ConfigMap like `base` whose inventory.json is `text`. */
static json_t *with_text(const json_t *base, const char *text)
{
	json_t *cm = json_deep_copy(base);
	json_object_set_new(cm, "data", json_pack("{s:s}", "inventory.json", text));
	return cm;
}

/* key -> app of every entry, to compare inventories whatever their order. */
static json_t *entries(const json_t *doc)
{
	json_t *out = json_object();
	size_t i;
	json_t *ref;
	json_array_foreach(json_object_get(doc, "objects"), i, ref) {
		char *k = rec_ref_key(ref);
		if (json_object_get(out, k))
			fail_msg("entry %s listed twice", k);
		json_object_set_new(out, k, json_string(json_string_value(json_object_get(ref, "app")) ?: ""));
		free(k);
	}
	return out;
}

static void objects_form_is_read_as_recorded(void **state)
{
	json_t *cm = load("inventory"), *doc = NULL;
	assert_int_equal(rec_inventory_parse(&doc, cm, "gitops-inventory.shop.prod"), GITOPS_OK);
	json_t *e = entries(doc);
	assert_int_equal(json_object_size(e), 9);
	assert_string_equal(json_string_value(json_object_get(e, "apps/Deployment/rectests-fixtures/web")), "web");
	assert_non_null(json_object_get(e, "/ConfigMap/rectests-fixtures/retired"));
	assert_string_equal(json_string_value(json_object_get(doc, "pipeline")), "shop");
	assert_string_equal(json_string_value(json_object_get(doc, "environment")), "prod");
	assert_string_equal(json_string_value(json_object_get(doc, "rootCommit")), ROOT);
	json_decref(e);
	json_decref(doc);
	json_decref(cm);
}

static void grouped_form_is_read_as_objects(void **state)
{
	json_t *cm = load("inventory-grouped"), *doc = NULL;
	assert_int_equal(rec_inventory_parse(&doc, cm, "gitops-inventory.shop.prod"), GITOPS_OK);
	/* the rest of the module sees only the objects form */
	assert_null(json_object_get(doc, "groups"));
	json_t *e = entries(doc);
	assert_int_equal(json_object_size(e), 5);
	assert_string_equal(json_string_value(json_object_get(e, "/ConfigMap/rectests-fixtures/flags")), "web");
	assert_string_equal(json_string_value(json_object_get(e, "apps/Deployment/rectests-fixtures/web")), "web");
	/* a cluster-scoped group's entries have no namespace; each keeps its group's app */
	assert_string_equal(json_string_value(json_object_get(e, "/Namespace//rectests-fixtures")), "base");
	size_t i;
	json_t *ref;
	json_array_foreach(json_object_get(doc, "objects"), i, ref)
		if (!strcmp(json_string_value(json_object_get(ref, "kind")), "Namespace"))
			assert_null(json_object_get(ref, "namespace"));
	json_decref(e);
	json_decref(doc);
	json_decref(cm);
}

static void expect_damaged(const json_t *cm, const char *what)
{
	json_t *doc = (json_t *)1;
	int rc = rec_inventory_parse(&doc, cm, "gitops-inventory.shop.prod");
	if (rc != GITOPS_EINVALID)
		fail_msg("%s: parsed (rc %d), want GITOPS_EINVALID", what, rc);
	assert_null(doc);
	/* one line naming the ConfigMap, saying nothing was changed and what to do */
	const char *msg = gitops_error_last();
	if (!strstr(msg, "gitops-system/gitops-inventory.shop.prod") || !strstr(msg, "nothing was changed") ||
	    !strstr(msg, "--adopt") || strchr(msg, '\n'))
		fail_msg("%s: message %s", what, msg);
}

static void damaged_inventory_is_refused(void **state)
{
	json_t *base = load("inventory");
	json_t *cm = json_deep_copy(base);
	json_object_del(cm, "data");
	expect_damaged(cm, "no data");
	json_decref(cm);
	static const struct { const char *what, *text; } bad[] = {
		{"not JSON", "{\"objects\": ["},
		{"no objects", "{\"pipeline\": \"shop\"}"},
		{"objects not a list", "{\"objects\": {}}"},
		{"groups not a list", "{\"groups\": {}}"},
		{"a group without names", "{\"groups\": [{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\"}]}"},
		{"a group without kind", "{\"groups\": [{\"apiVersion\": \"v1\", \"names\": [\"a\"]}]}"},
		{"a name not a string", "{\"groups\": [{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"names\": [\"a\", 7]}]}"},
		{"groups beside objects not a list", "{\"objects\": 3, \"groups\": []}"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		cm = with_text(base, bad[i].text);
		expect_damaged(cm, bad[i].what);
		json_decref(cm);
	}
	json_decref(base);
}

static void written_inventory_reads_back_the_same(void **state)
{
	json_t *cm = load("inventory"), *doc = NULL, *again = NULL;
	assert_int_equal(rec_inventory_parse(&doc, cm, "x"), GITOPS_OK);
	size_t len = 0;
	char *text = rec_inventory_encode(doc, &len);
	assert_int_equal(len, strlen(text));
	assert_true(len < REC_INVENTORY_MAX_BYTES);
	/* small: the objects form */
	json_t *raw = json_loads(text, 0, NULL);
	assert_true(json_is_array(json_object_get(raw, "objects")));
	assert_null(json_object_get(raw, "groups"));
	json_t *cm2 = with_text(cm, text);
	assert_int_equal(rec_inventory_parse(&again, cm2, "x"), GITOPS_OK);
	assert_true(json_equal(doc, again));
	/* the same document serializes identically (nothing is written when nothing changed) */
	size_t len2;
	char *text2 = rec_inventory_encode(again, &len2);
	assert_string_equal(text, text2);
	free(text);
	free(text2);
	json_decref(raw);
	json_decref(cm2);
	json_decref(again);
	json_decref(doc);
	json_decref(cm);
}

/* A document of n objects with names of name_len characters, in two namespaces and two apps. */
static json_t *big_doc(size_t n, size_t name_len)
{
	json_t *objs = json_array();
	char *name = gitops_malloc(name_len + 1);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, name_len + 1, "cm-%08zu-", i);
		size_t l = strlen(name);
		memset(name + l, 'x', name_len - l);
		name[name_len] = '\0';
		json_array_append_new(objs, json_pack("{s:s, s:s, s:s, s:s, s:s}", "apiVersion", "v1", "kind", "ConfigMap",
						      "namespace", i % 2 ? "shop-a" : "shop-b", "name", name, "app",
						      i % 3 ? "web" : "api"));
	}
	free(name);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "pipeline", "shop", "environment", "prod", "repository",
			 "https://git.example.com/shop.git", "rootCommit", ROOT, "revision", "", "objects", objs);
}

static void inventory_past_one_mib_is_written_grouped(void **state)
{
	/* 12,000 entries of 60-character names: about 1.5 MB as objects */
	json_t *doc = big_doc(12000, 60);
	char *plain = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	assert_true(strlen(plain) > REC_INVENTORY_MAX_BYTES);
	free(plain);
	size_t len;
	char *text = rec_inventory_encode(doc, &len);
	assert_true(len <= REC_INVENTORY_MAX_BYTES);
	json_t *raw = json_loads(text, 0, NULL);
	assert_null(json_object_get(raw, "objects"));
	assert_int_equal(json_array_size(json_object_get(raw, "groups")), 4); /* 2 namespaces x 2 apps */
	assert_string_equal(json_string_value(json_object_get(raw, "pipeline")), "shop");
	/* read back: every entry, with its namespace and app */
	json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
			       "name", "gitops-inventory.shop.prod", "namespace", "gitops-system", "data", "inventory.json",
			       text);
	json_t *back = NULL;
	assert_int_equal(rec_inventory_parse(&back, cm, "gitops-inventory.shop.prod"), GITOPS_OK);
	json_t *want = entries(doc), *got = entries(back);
	assert_int_equal(json_object_size(got), 12000);
	assert_true(json_equal(want, got));
	assert_string_equal(json_string_value(json_object_get(back, "rootCommit")), ROOT);
	json_decref(want);
	json_decref(got);
	json_decref(back);
	json_decref(cm);
	json_decref(raw);
	free(text);
	json_decref(doc);
}

static void inventory_too_large_even_grouped_says_so(void **state)
{
	/* names of 250 characters: over 1 MB in either form; the caller refuses to write it */
	json_t *doc = big_doc(5000, 250);
	size_t len;
	char *text = rec_inventory_encode(doc, &len);
	assert_true(len > REC_INVENTORY_MAX_BYTES);
	free(text);
	json_decref(doc);
}

static rec_inventory *inventory_of(const char *pipeline, const char *env, const char *root, json_t *doc)
{
	rec_inventory *inv = gitops_calloc(1, sizeof(*inv));
	inv->pipeline = gitops_strdup(pipeline);
	inv->env = gitops_strdup(env);
	inv->repository = gitops_strdup("https://git.example.com/shop.git");
	inv->name = rec_inventory_name(pipeline, env);
	snprintf(inv->root_commit, sizeof(inv->root_commit), "%s", root);
	inv->doc = doc;
	return inv;
}

static void expect_foreign(rec_inventory *inv, const char *needle)
{
	assert_int_equal(rec_inventory_check(inv), GITOPS_EINVALID);
	if (!strstr(gitops_error_last(), needle) || !strstr(gitops_error_last(), "othing was changed"))
		fail_msg("message %s, want %s", gitops_error_last(), needle);
	rec_inventory_free(inv);
}

static void foreign_inventory_is_never_taken_for_ours(void **state)
{
	json_t *cm = load("inventory"), *doc = NULL;
	assert_int_equal(rec_inventory_parse(&doc, cm, "x"), GITOPS_OK);
	/* ours */
	rec_inventory *inv = inventory_of("shop", "prod", ROOT, json_incref(doc));
	assert_int_equal(rec_inventory_check(inv), GITOPS_OK);
	rec_inventory_free(inv);
	/* another pipeline's, another environment's, another repository's under our name */
	expect_foreign(inventory_of("billing", "prod", ROOT, json_incref(doc)), "records pipeline shop environment prod");
	expect_foreign(inventory_of("shop", "staging", ROOT, json_incref(doc)), "records pipeline shop environment prod");
	expect_foreign(inventory_of("shop", "prod", "fedcba9876543210fedcba9876543210fedcba98", json_incref(doc)),
		       "is taken on this cluster");
	/* an earlier release's document has no identity fields: it is this one's */
	json_t *old = json_deep_copy(doc);
	json_object_del(old, "pipeline");
	json_object_del(old, "environment");
	json_object_del(old, "rootCommit");
	inv = inventory_of("shop", "prod", ROOT, old);
	assert_int_equal(rec_inventory_check(inv), GITOPS_OK);
	rec_inventory_free(inv);
	json_decref(doc);
	json_decref(cm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(objects_form_is_read_as_recorded),
		cmocka_unit_test(grouped_form_is_read_as_objects),
		cmocka_unit_test(damaged_inventory_is_refused),
		cmocka_unit_test(written_inventory_reads_back_the_same),
		cmocka_unit_test(inventory_past_one_mib_is_written_grouped),
		cmocka_unit_test(inventory_too_large_even_grouped_says_so),
		cmocka_unit_test(foreign_inventory_is_never_taken_for_ours),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
