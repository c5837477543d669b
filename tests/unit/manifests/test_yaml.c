/* Unit tests for manifests/yaml.c and objects.c: kubectl-compatible scalar resolution, the
 * hazards (duplicate keys, alias bombs, size, UTF-8) and object-set rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "manifests/manifests.h"

static json_t *parse(const char *yaml)
{
	json_t *v = NULL;
	int rc = mf_yaml_parse(&v, yaml, strlen(yaml), "t.yaml", NULL);
	if (rc) {
		print_error("parse failed: %s\n", gitops_error_last());
		fail();
	}
	return v;
}

/* Parses `yaml` and compares with `json` (jansson json_equal). */
static void expect_json(const char *yaml, const char *json)
{
	json_t *v = parse(yaml);
	json_error_t je;
	json_t *want = json_loads(json, JSON_DECODE_ANY, &je);
	assert_non_null(want);
	if (!json_equal(v, want)) {
		char *got = json_dumps(v, JSON_ENCODE_ANY);
		print_error("yaml %s: want %s got %s\n", yaml, json, got);
		free(got);
		fail();
	}
	json_decref(v);
	json_decref(want);
}

static void expect_error(const char *yaml, const char *needle)
{
	json_t *v = NULL;
	int rc = mf_yaml_parse(&v, yaml, strlen(yaml), "bad.yaml", NULL);
	assert_int_not_equal(rc, 0);
	assert_null(v);
	if (!strstr(gitops_error_last(), needle))
		fail_msg("error '%s' lacks '%s'", gitops_error_last(), needle);
	if (!strstr(gitops_error_last(), "bad.yaml:"))
		fail_msg("error '%s' names no file", gitops_error_last());
}

static void yaml11_booleans_resolve_like_kubectl(void **state)
{
	(void)state;
	expect_json("a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: n\ng: True\nh: false\n",
		    "{\"a\":true,\"b\":false,\"c\":true,\"d\":false,\"e\":true,\"f\":false,\"g\":true,\"h\":false}");
	expect_json("a: 'yes'\nb: \"on\"\nc: !!str no\n", "{\"a\":\"yes\",\"b\":\"on\",\"c\":\"no\"}");
	expect_json("yes: 1\n", "{\"true\":1}");
}

static void numbers_resolve_like_kubectl(void **state)
{
	(void)state;
	expect_json("a: 0755\nb: \"0755\"\nc: 0x1F\nd: 1_000\ne: -12\nf: 1.5\ng: 1.0\nh: 1e3\ni: 08\nj: 0o17\nk: 0b101\n",
		    "{\"a\":493,\"b\":\"0755\",\"c\":31,\"d\":1000,\"e\":-12,\"f\":1.5,\"g\":1,\"h\":1000,\"i\":8,\"j\":15,\"k\":5}");
	expect_json("a: 9223372036854775807\nb: -9223372036854775808\n",
		    "{\"a\":9223372036854775807,\"b\":-9223372036854775808}");
	json_t *v = parse("a: 12345678901234567890\nb: 1e400x\n");
	assert_true(json_is_real(json_object_get(v, "a")));
	assert_true(json_is_string(json_object_get(v, "b")));
	json_decref(v);
	expect_json("a: 1.2.3\nb: 2001-12-14\nc: 12:30\ne: .\nf: +\n",
		    "{\"a\":\"1.2.3\",\"b\":\"2001-12-14\",\"c\":\"12:30\",\"e\":\".\",\"f\":\"+\"}");
	/* go-yaml v2 reads y and n as booleans, keys included */
	expect_json("y: n\n", "{\"true\":false}");
}

static void nulls_and_strings(void **state)
{
	(void)state;
	expect_json("a: ~\nb: null\nc:\nd: ''\ne: |\n  line1\n  line2\nf: >\n  folded\n  text\n",
		    "{\"a\":null,\"b\":null,\"c\":null,\"d\":\"\",\"e\":\"line1\\nline2\\n\",\"f\":\"folded text\\n\"}");
}

static void anchors_aliases_and_merge(void **state)
{
	(void)state;
	expect_json("base: &b {p: 1, q: 2}\nuse: *b\nm:\n  <<: *b\n  q: 3\n",
		    "{\"base\":{\"p\":1,\"q\":2},\"use\":{\"p\":1,\"q\":2},\"m\":{\"p\":1,\"q\":3}}");
	expect_json("a: &a {p: 1}\nb: &b {p: 2, r: 2}\nm:\n  <<: [*a, *b]\n", "{\"a\":{\"p\":1},\"b\":{\"p\":2,\"r\":2},\"m\":{\"p\":1,\"r\":2}}");
	expect_json("a: &s hello\nb: *s\nl: &l [1, 2]\nc: *l\n",
		    "{\"a\":\"hello\",\"b\":\"hello\",\"l\":[1,2],\"c\":[1,2]}");
}

static void duplicate_keys_are_refused(void **state)
{
	(void)state;
	expect_error("a: 1\nb: 2\na: 3\n", "bad.yaml:3:1: duplicate key \"a\"");
}

static void billion_laughs_fails_fast(void **state)
{
	(void)state;
	const char *bomb =
		"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
		"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
		"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
		"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
		"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
		"i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
	long long t0 = gitops_now_ms();
	expect_error(bomb, "node limit");
	assert_true(gitops_now_ms() - t0 < 5000);
}

static void alias_budget_is_per_document_and_configurable(void **state)
{
	(void)state;
	const char *y = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a]\n";
	struct mf_limits lim = {.max_alias_nodes = 20};
	json_t *v = NULL;
	assert_int_equal(mf_yaml_parse(&v, y, strlen(y), "small.yaml", &lim), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), "small.yaml:2:"));
	lim.max_alias_nodes = 40;
	assert_int_equal(mf_yaml_parse(&v, y, strlen(y), "small.yaml", &lim), 0);
	assert_int_equal(json_array_size(json_object_get(v, "b")), 4);
	json_decref(v);
}

static void size_limit_and_utf8(void **state)
{
	(void)state;
	struct mf_limits lim = {.max_file_size = 16};
	json_t *v = NULL;
	const char *big = "a: 0123456789012345678901234567890\n";
	assert_int_equal(mf_yaml_parse(&v, big, strlen(big), "big.yaml", &lim), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "big.yaml:1: file is"));
	expect_error("a: ok\nb: \xff\xfe\n", "bad.yaml:2:4: invalid UTF-8");
	expect_error("a: ok\nb: \xc0\xaf\n", "invalid UTF-8"); /* overlong */
	expect_error("a: [1, 2\n", "bad.yaml:");
}

static void deep_nesting_is_refused(void **state)
{
	(void)state;
	gitops_buf b = GITOPS_BUF_INIT;
	for (int i = 0; i < 1000; i++)
		gitops_buf_putc(&b, '[');
	for (int i = 0; i < 1000; i++)
		gitops_buf_putc(&b, ']');
	json_t *v = NULL;
	assert_int_not_equal(mf_yaml_parse(&v, b.ptr, b.len, "deep.yaml", NULL), 0);
	assert_non_null(strstr(gitops_error_last(), "deep.yaml:"));
	gitops_buf_free(&b);
}

static void objects_flatten_lists_and_skip_empty_docs(void **state)
{
	(void)state;
	const char *y = "---\n---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n"
			"- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
			"- {apiVersion: v1, kind: Namespace, metadata: {name: ns1}}\n"
			"---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
	mf_objects *set;
	mf_objects_new(&set);
	assert_int_equal(mf_objects_add_yaml(set, y, strlen(y), "l.yaml", "app1", "dev", NULL), 0);
	assert_int_equal(mf_objects_count(set), 3);
	assert_int_equal(mf_objects_resolve(set, NULL, NULL), 0);
	const struct mf_object *o = mf_objects_at(set, 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o->obj, "metadata"), "namespace")), "dev");
	assert_string_equal(o->app, "app1");
	assert_int_equal(o->line, 5);
	o = mf_objects_at(set, 1);
	assert_null(json_object_get(json_object_get(o->obj, "metadata"), "namespace"));
	assert_int_equal(mf_objects_at(set, 2)->line, 11);
	mf_objects_free(set);
}

static void objects_need_apiversion_kind_name(void **state)
{
	(void)state;
	static const char *cases[][2] = {
		{"kind: ConfigMap\nmetadata: {name: a}\n", "x.yaml:1: object has no apiVersion"},
		{"apiVersion: v1\nmetadata: {name: a}\n", "x.yaml:1: object (apiVersion v1) has no kind"},
		{"a: 1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "x.yaml:3: ConfigMap has no metadata.name"},
		{"- 1\n", "x.yaml:1: a manifest must be a mapping"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mf_objects *set;
		mf_objects_new(&set);
		int rc = mf_objects_add_yaml(set, cases[i][0], strlen(cases[i][0]), "x.yaml", "a", NULL, NULL);
		assert_int_not_equal(rc, 0);
		if (i != 2 && !strstr(gitops_error_last(), cases[i][1]))
			fail_msg("case %zu: '%s' lacks '%s'", i, gitops_error_last(), cases[i][1]);
		assert_int_equal(mf_objects_count(set), 0);
		mf_objects_free(set);
	}
}

static int scope_cb(void *data, const char *api, const char *kind, bool *namespaced)
{
	(void)data;
	(void)api;
	if (!strcmp(kind, "Tenant")) {
		*namespaced = false;
		return 0;
	}
	return GITOPS_ENOTFOUND;
}

static void crds_and_scope_callback_decide_namespaces(void **state)
{
	(void)state;
	const char *y =
		"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.ex.com}\n"
		"spec: {group: ex.com, scope: Cluster, names: {kind: Widget, plural: widgets}}\n"
		"---\napiVersion: ex.com/v1\nkind: Widget\nmetadata: {name: w}\n"
		"---\napiVersion: ex.com/v1\nkind: Tenant\nmetadata: {name: t}\n"
		"---\napiVersion: ex.com/v1\nkind: Gadget\nmetadata: {name: g}\n"
		"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: oops}\n";
	mf_objects *set;
	mf_objects_new(&set);
	assert_int_equal(mf_objects_add_yaml(set, y, strlen(y), "c.yaml", "a", "dev", NULL), 0);
	assert_int_equal(mf_objects_resolve(set, scope_cb, NULL), 0);
	const char *want[] = {NULL, NULL, NULL, "dev", NULL};
	for (size_t i = 0; i < 5; i++) {
		json_t *ns = json_object_get(json_object_get(mf_objects_at(set, i)->obj, "metadata"), "namespace");
		if (want[i])
			assert_string_equal(json_string_value(ns), want[i]);
		else
			assert_null(ns);
	}
	mf_objects_free(set);
}

static void same_object_twice_names_both_sources(void **state)
{
	(void)state;
	const char *a = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
	const char *b = "# c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: dev}\n";
	mf_objects *set;
	mf_objects_new(&set);
	assert_int_equal(mf_objects_add_yaml(set, a, strlen(a), "web/a.yaml", "web", "dev", NULL), 0);
	assert_int_equal(mf_objects_add_yaml(set, b, strlen(b), "db/b.yaml", "db", "dev", NULL), 0);
	assert_int_equal(mf_objects_resolve(set, NULL, NULL), GITOPS_EINVALID);
	const char *e = gitops_error_last();
	assert_non_null(strstr(e, "db/b.yaml:3"));
	assert_non_null(strstr(e, "web/a.yaml:1"));
	assert_non_null(strstr(e, "ConfigMap dev/x"));
	mf_objects_free(set);
}

static void emit_quotes_what_yaml11_would_misread(void **state)
{
	(void)state;
	json_t *v = json_pack("{s:s, s:s, s:s, s:i, s:b, s:s, s:n, s:s}", "a", "yes", "b", "0755", "c",
			      "plain-text", "d", 7, "e", 1, "f", "line1\nline2", "g", "h", "~");
	gitops_buf out = GITOPS_BUF_INIT;
	assert_int_equal(mf_yaml_emit(&out, v), 0);
	json_t *back = parse(out.ptr);
	if (!json_equal(v, back))
		fail_msg("round trip changed the value: %s", out.ptr);
	assert_non_null(strstr(out.ptr, "c: plain-text"));
	json_decref(back);
	json_decref(v);
	gitops_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(yaml11_booleans_resolve_like_kubectl),
		cmocka_unit_test(numbers_resolve_like_kubectl),
		cmocka_unit_test(nulls_and_strings),
		cmocka_unit_test(anchors_aliases_and_merge),
		cmocka_unit_test(duplicate_keys_are_refused),
		cmocka_unit_test(billion_laughs_fails_fast),
		cmocka_unit_test(alias_budget_is_per_document_and_configurable),
		cmocka_unit_test(size_limit_and_utf8),
		cmocka_unit_test(deep_nesting_is_refused),
		cmocka_unit_test(objects_flatten_lists_and_skip_empty_docs),
		cmocka_unit_test(objects_need_apiversion_kind_name),
		cmocka_unit_test(crds_and_scope_callback_decide_namespaces),
		cmocka_unit_test(same_object_twice_names_both_sources),
		cmocka_unit_test(emit_quotes_what_yaml11_would_misread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
