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

static void nul_and_control_bytes_are_refused_with_line(void **state)
{
	(void)state;
	/* a NUL would otherwise end the text for libfyaml: the objects after it vanished */
	static const char nul[] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nx: 1\0\n---\nb: 2\n";
	json_t *v = NULL;
	mf_objects *set;
	mf_objects_new(&set);
	assert_int_equal(mf_objects_add_yaml(set, nul, sizeof(nul) - 1, "n.yaml", "a", NULL, NULL), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), "n.yaml:5:5: control character U+0000 (NUL)"));
	assert_int_equal(mf_objects_count(set), 0);
	/* a file of only NULs is an error, not an empty file */
	static const char nuls[8] = {0};
	assert_int_equal(mf_objects_add_yaml(set, nuls, sizeof(nuls), "z.yaml", "a", NULL, NULL), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), "z.yaml:1:1: control character U+0000"));
	mf_objects_free(set);
	expect_error("a: 1\nb: x\x1by\n", "bad.yaml:2:5: control character U+001B");
	expect_error("a: \x7f\n", "bad.yaml:1:4: control character U+007F");
	expect_error("a: \xc3\xa9\xc2\x80\n", "bad.yaml:1:5: control character U+0080"); /* C1, after a 2-byte é */
	/* tab, CR and NEL are allowed */
	expect_json("a: \"x\ty\"\r\nb: c\xc2\x85\n", "{\"a\": \"x\\ty\", \"b\": \"c\"}");
	assert_int_not_equal(mf_yaml_parse(&v, "{\"a\": 1}\0", 9, "j.json", NULL), 0);
	json_decref(v);
}

static void binary_tag_is_decoded_like_kubectl(void **state)
{
	(void)state;
	expect_json("a: !!binary aGVsbG8=\n", "{\"a\": \"hello\"}");
	expect_json("a: !!binary |\n  aGVs\n  bG8gd29y\n  bGQ=\n", "{\"a\": \"hello world\"}");
	expect_json("a: !!binary \"\"\n", "{\"a\": \"\"}");
	/* bytes that are not UTF-8 become U+FFFD, one per byte, as Go's JSON encoder writes them */
	expect_json("a: !!binary /4FB\n", "{\"a\": \"\\ufffd\\ufffdA\"}");
	expect_json("a: !!binary w6k=\n", "{\"a\": \"\\u00e9\"}");
	expect_error("a: !!binary aGVsbG8\n", "bad.yaml:1:13: !!binary value is not valid base64");
	expect_error("a: !!binary a=Vs\n", "not valid base64");
	expect_error("a: !!binary AA==\n", "NUL byte");
}

static void non_strings_where_kubernetes_wants_strings_are_refused(void **state)
{
	(void)state;
	static const char *cases[][2] = {
		{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    annotated: yes\n",
		 "x.yaml:1: ConfigMap a: metadata.annotations.annotated must be a string, not a boolean"},
		{"# c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {tier: 1}}\n",
		 "x.yaml:3: ConfigMap a: metadata.labels.tier must be a string, not a number"},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {debug: on}\n",
		 "ConfigMap a: data.debug must be a string, not a boolean"},
		{"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {port: 5432}\n",
		 "Secret s: stringData.port must be a string, not a number"},
		{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n"
		 "      containers:\n      - name: c\n        env:\n        - {name: PORT, value: 8080}\n",
		 "Deployment d: spec.template.spec.containers[0] (container c): env PORT: value must be a string, not a number"},
		{"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: j}\nspec:\n  jobTemplate:\n    spec:\n      template:\n"
		 "        spec:\n          containers:\n          - {name: c, args: [--port, 80]}\n",
		 "CronJob j: spec.jobTemplate.spec.template.spec.containers[0] (container c): args[1] must be a string"},
		{"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p, labels: [a]}\n",
		 "Pod p: metadata.labels must be a mapping of strings, not a sequence"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mf_objects *set;
		mf_objects_new(&set);
		int rc = mf_objects_add_yaml(set, cases[i][0], strlen(cases[i][0]), "x.yaml", "a", NULL, NULL);
		assert_int_equal(rc, GITOPS_EINVALID);
		if (!strstr(gitops_error_last(), cases[i][1]))
			fail_msg("case %zu: '%s' lacks '%s'", i, gitops_error_last(), cases[i][1]);
		assert_int_equal(mf_objects_count(set), 0);
		mf_objects_free(set);
	}
	/* quoted values, nulls and custom resources' own fields pass */
	const char *ok = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: \"yes\", y: null}}\n"
			 "data: {a: \"1\"}\n---\napiVersion: ex.com/v1\nkind: Widget\nmetadata: {name: w}\ndata: {a: 1}\n";
	mf_objects *set;
	mf_objects_new(&set);
	assert_int_equal(mf_objects_add_yaml(set, ok, strlen(ok), "x.yaml", "a", NULL, NULL), 0);
	assert_int_equal(mf_objects_count(set), 2);
	mf_objects_free(set);
}

/* Syntax errors name the line to fix, not the line where the offending token began. */
static void syntax_errors_name_the_line_to_fix(void **state)
{
	(void)state;
	expect_error("a: 1\nb:\n  c: 2\n d: 3\n", "bad.yaml:4:2:");
	expect_error("key: value\n  other: x\n", "bad.yaml:2:");
	expect_error("a: 1\n\tb: 2\n", "bad.yaml:2:");
	expect_error("a: 1\nb: 2\n  c: 3\n", "bad.yaml:3:");
	expect_error("a: 1\nb: \"x\nc: 3\n", "bad.yaml:3:");
	expect_error("a: 1\nb: c: d\n", "bad.yaml:2:");
	expect_error("a: 1\n- b\n", "bad.yaml:2:");
}

/* Hook annotations as Argo CD reads them (its own first, then Helm's): phase, weight, policy. */
static void hooks_are_read_as_argo_cd_reads_them(void **state)
{
	(void)state;
	static const struct {
		const char *ann;
		enum mf_hook hook;
		int weight;
		unsigned del;
	} cases[] = {
		{"{}", MF_HOOK_NONE, 0, 0},
		{"{helm.sh/hook: pre-install}", MF_HOOK_PRE_SYNC, 0, MF_HOOK_DELETE_BEFORE_CREATION},
		{"{helm.sh/hook: \"post-install,post-upgrade\", helm.sh/hook-weight: \"-3\"}", MF_HOOK_POST_SYNC, -3,
		 MF_HOOK_DELETE_BEFORE_CREATION},
		{"{helm.sh/hook: pre-upgrade, helm.sh/hook-delete-policy: \"hook-succeeded,hook-failed\"}", MF_HOOK_PRE_SYNC, 0,
		 MF_HOOK_DELETE_SUCCEEDED | MF_HOOK_DELETE_FAILED},
		{"{helm.sh/hook: test}", MF_HOOK_SKIP, 0, MF_HOOK_DELETE_BEFORE_CREATION},
		{"{helm.sh/hook: test-success}", MF_HOOK_SKIP, 0, MF_HOOK_DELETE_BEFORE_CREATION},
		{"{helm.sh/hook: pre-delete}", MF_HOOK_SKIP, 0, MF_HOOK_DELETE_BEFORE_CREATION},
		{"{helm.sh/hook: crd-install}", MF_HOOK_NONE, 0, 0},
		{"{argocd.argoproj.io/hook: PostSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded, "
		 "argocd.argoproj.io/sync-wave: \"2\", helm.sh/hook: pre-install}", MF_HOOK_POST_SYNC, 2, MF_HOOK_DELETE_SUCCEEDED},
		{"{argocd.argoproj.io/hook: Skip}", MF_HOOK_SKIP, 0, MF_HOOK_DELETE_BEFORE_CREATION},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *y = gitops_sprintf("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j, annotations: %s}\n", cases[i].ann);
		mf_objects *set;
		mf_objects_new(&set);
		if (mf_objects_add_yaml(set, y, strlen(y), "h.yaml", "a", NULL, NULL))
			fail_msg("case %zu: %s", i, gitops_error_last());
		const struct mf_object *o = mf_objects_at(set, 0);
		if (o->hook != cases[i].hook || (o->hook && (o->hook_weight != cases[i].weight || o->hook_delete != cases[i].del)))
			fail_msg("case %zu: hook %d weight %d delete %u", i, o->hook, o->hook_weight, o->hook_delete);
		mf_objects_free(set);
		free(y);
	}
	/* a hook type gitops does not run is refused, not ignored */
	const char *y = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j, annotations: {argocd.argoproj.io/hook: SyncFail}}\n";
	mf_objects *set;
	mf_objects_new(&set);
	assert_int_equal(mf_objects_add_yaml(set, y, strlen(y), "h.yaml", "a", NULL, NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "h.yaml:1: annotation argocd.argoproj.io/hook: SyncFail hooks are not supported"));
	mf_objects_free(set);
}

static int counting_scope(void *data, const char *api, const char *kind, bool *namespaced)
{
	(void)api;
	(void)kind;
	(*(size_t *)data)++;
	*namespaced = true;
	return 0;
}

/* Resolving scopes indexes the set's CRDs once and asks the scope callback once per kind: the
 * work is linear in objects (10,000 objects of 3 unknown kinds: 3 look-ups). */
static void resolve_asks_scope_once_per_kind(void **state)
{
	(void)state;
	mf_objects *set;
	mf_objects_new(&set);
	gitops_buf b = GITOPS_BUF_INIT;
	for (int i = 0; i < 10000; i++)
		gitops_buf_printf(&b, "---\napiVersion: ex.com/v1\nkind: K%d\nmetadata: {name: o%d}\n", i % 3, i);
	gitops_buf_printf(&b, "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
			  "metadata: {name: k0s.ex.com}\nspec: {group: ex.com, scope: Cluster, names: {kind: K0}}\n");
	assert_int_equal(mf_objects_add_yaml(set, b.ptr, b.len, "big.yaml", "a", "dev", NULL), 0);
	size_t calls = 0;
	assert_int_equal(mf_objects_resolve(set, counting_scope, &calls), 0);
	assert_int_equal(calls, 2); /* K1 and K2; K0 is known from the CRD in the set */
	assert_null(json_object_get(json_object_get(mf_objects_at(set, 0)->obj, "metadata"), "namespace"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(mf_objects_at(set, 1)->obj, "metadata"),
							      "namespace")), "dev");
	gitops_buf_free(&b);
	mf_objects_free(set);
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
		cmocka_unit_test(nul_and_control_bytes_are_refused_with_line),
		cmocka_unit_test(binary_tag_is_decoded_like_kubectl),
		cmocka_unit_test(non_strings_where_kubernetes_wants_strings_are_refused),
		cmocka_unit_test(resolve_asks_scope_once_per_kind),
		cmocka_unit_test(syntax_errors_name_the_line_to_fix),
		cmocka_unit_test(hooks_are_read_as_argo_cd_reads_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
