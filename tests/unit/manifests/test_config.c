/* Unit tests for manifests/config.c: a full gitops.yaml parses into the structs; every config
 * error is refused with a message naming gitops.yaml:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "manifests/manifests.h"

#define HDR_PATHS "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    apps:\n" \
	"      - {name: a, path: ./apps//a/}\n      - {name: root, path: ./}\n" \
	"      - {name: h, path: c, helm: {values: [./envs/dev/v.yaml]}}\n"

static const char *good =
	"apiVersion: gitops/v1\n"
	"kind: Pipeline\n"
	"branch: main\n"
	"ignore:\n"
	"  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n"
	"environments:\n"
	"  - name: dev\n"
	"    track: main\n"
	"    namespace: shop-dev\n"
	"    apps:\n"
	"      - {name: web, path: apps/web/overlays/dev/}\n"
	"      - name: cache\n"
	"        path: charts/cache\n"
	"        renderer: helm\n"
	"        namespace: cache-dev\n"
	"        helm: {releaseName: cache, values: [envs/dev/cache.yaml]}\n"
	"    sync: {auto: true, prune: yes, selfHeal: false}\n"
	"  - name: staging\n"
	"    from: dev\n"
	"    namespace: shop-staging\n"
	"    ignore:\n"
	"      - {kind: ConfigMap, name: x, namespace: shop-staging, jsonPointers: [/data/a, /data/b]}\n"
	"  - name: prod\n"
	"    from: staging\n"
	"    cluster: {context: prod, kubeconfig: /etc/kube/prod}\n"
	"    approval:\n"
	"      required: 2\n"
	"      approvers: [{name: alice, key: \"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}, {name: bob, key: \"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]\n"
	"    rollback: {onFailure: true, healthTimeout: 1m30s}\n";

static void full_config_parses(void **state)
{
	(void)state;
	struct mf_config *cfg;
	if (mf_config_parse(&cfg, good, strlen(good), "gitops.yaml"))
		fail_msg("%s", gitops_error_last());
	assert_int_equal(cfg->n_envs, 3);
	assert_string_equal(cfg->branch, "main");
	const struct mf_environment *dev = mf_config_env(cfg, "dev");
	assert_non_null(dev);
	assert_string_equal(dev->track, "main");
	assert_null(dev->from);
	assert_string_equal(dev->namespace, "shop-dev");
	assert_int_equal(dev->n_apps, 2);
	assert_string_equal(dev->apps[0].path, "apps/web/overlays/dev");
	assert_int_equal(dev->apps[0].renderer, MF_RENDERER_AUTO);
	const struct mf_app *cache = mf_environment_app(dev, "cache");
	assert_int_equal(cache->renderer, MF_RENDERER_HELM);
	assert_string_equal(cache->release_name, "cache");
	assert_string_equal(cache->namespace, "cache-dev");
	assert_int_equal(cache->n_values, 1);
	assert_string_equal(cache->values[0], "envs/dev/cache.yaml");
	assert_int_equal(cache->line, 12);
	assert_true(dev->sync_auto && dev->sync_prune && !dev->sync_self_heal && !dev->sync_adopt);
	assert_int_equal(dev->n_ignore, 1);
	assert_string_equal(dev->ignore[0].kind, "Deployment");
	assert_string_equal(dev->ignore[0].json_pointers[0], "/spec/replicas");
	const struct mf_environment *st = mf_config_env(cfg, "staging");
	assert_null(st->track);
	assert_string_equal(st->from, "dev");
	assert_int_equal(st->n_ignore, 2);
	assert_int_equal(st->ignore[1].n_json_pointers, 2);
	assert_false(st->sync_auto);
	const struct mf_environment *prod = mf_config_env(cfg, "prod");
	assert_string_equal(prod->cluster_context, "prod");
	assert_string_equal(prod->cluster_kubeconfig, "/etc/kube/prod");
	assert_int_equal(prod->approval_required, 2);
	assert_int_equal(prod->n_approvers, 2);
	assert_string_equal(prod->approvers[1].name, "bob");
	assert_true(prod->rollback_on_failure);
	assert_int_equal(prod->rollback_health_timeout_ms, 90000);
	assert_int_equal(st->rollback_health_timeout_ms, 300000);
	assert_null(mf_config_env(cfg, "nope"));
	mf_config_free(cfg);
	mf_config_free(NULL);
}

static void pipeline_name_and_adopt(void **state)
{
	(void)state;
	const char *y = "apiVersion: gitops/v1\nkind: Pipeline\nname: shop-1\nenvironments:\n  - name: dev\n    sync: {adopt: true}\n";
	struct mf_config *cfg = NULL;
	assert_int_equal(mf_config_parse(&cfg, y, strlen(y), "gitops.yaml"), GITOPS_OK);
	assert_string_equal(cfg->name, "shop-1");
	assert_true(cfg->envs[0].sync_adopt);
	mf_config_free(cfg);
	const char *n = "apiVersion: gitops/v1\nkind: Pipeline\nenvironments: [{name: dev}]\n";
	assert_int_equal(mf_config_parse(&cfg, n, strlen(n), "gitops.yaml"), GITOPS_OK);
	assert_null(cfg->name); /* the identity is then derived from the repository (reconcile/) */
	mf_config_free(cfg);
}

/* gitops.yaml's scalars follow the one YAML reader's rules (kubectl's YAML 1.1): y/on are true,
 * 0x2 is 2; a quoted "yes" is a string, not a boolean. */
static void scalars_follow_kubectl_yaml_rules(void **state)
{
	(void)state;
	const char *y = "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n"
			"    sync: {auto: y, prune: On, selfHeal: n}\n"
			"    approval: {required: 0x1, approvers: [{name: a, key: \"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}\n";
	struct mf_config *cfg = NULL;
	if (mf_config_parse(&cfg, y, strlen(y), "gitops.yaml"))
		fail_msg("%s", gitops_error_last());
	assert_true(cfg->envs[0].sync_auto);
	assert_true(cfg->envs[0].sync_prune);
	assert_false(cfg->envs[0].sync_self_heal);
	assert_int_equal(cfg->envs[0].approval_required, 1);
	mf_config_free(cfg);
	const char *q = "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    sync: {auto: \"yes\"}\n";
	assert_int_equal(mf_config_parse(&cfg, q, strlen(q), "gitops.yaml"), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "gitops.yaml:5:19: sync.auto: expected true or false"));
}

/* "./apps//a/" names apps/a (as Argo CD and Flux take it); "./" is the repository root. */
static void app_paths_are_normalized(void **state)
{
	(void)state;
	const char *y = HDR_PATHS;
	struct mf_config *cfg;
	if (mf_config_parse(&cfg, y, strlen(y), "gitops.yaml"))
		fail_msg("%s", gitops_error_last());
	const struct mf_environment *dev = mf_config_env(cfg, "dev");
	assert_string_equal(mf_environment_app(dev, "a")->path, "apps/a");
	assert_string_equal(mf_environment_app(dev, "root")->path, ".");
	assert_string_equal(mf_environment_app(dev, "h")->values[0], "envs/dev/v.yaml");
	mf_config_free(cfg);
}

static void default_track_is_the_branch(void **state)
{
	(void)state;
	const char *y = "apiVersion: gitops/v1\nkind: Pipeline\nbranch: trunk\nenvironments: [{name: dev}]\n";
	struct mf_config *cfg;
	assert_int_equal(mf_config_parse(&cfg, y, strlen(y), "g.yaml"), 0);
	assert_string_equal(cfg->envs[0].track, "trunk");
	mf_config_free(cfg);
}

#define HDR "apiVersion: gitops/v1\nkind: Pipeline\n"

static const struct {
	const char *name, *yaml, *want;
} bad[] = {
	{"unknown top-level key", HDR "environments: [{name: dev}]\nbranchs: main\n", "gitops.yaml:4:1: gitops.yaml: unknown key \"branchs\""},
	{"unknown env key", HDR "environments:\n  - name: dev\n    tracks: main\n", "gitops.yaml:5:5: environment: unknown key \"tracks\""},
	{"unknown app key", HDR "environments:\n  - name: dev\n    apps:\n      - {name: a, path: x, pth: y}\n", "gitops.yaml:6:28: app: unknown key \"pth\""},
	{"bad apiVersion", "apiVersion: gitops/v2\nkind: Pipeline\nenvironments: [{name: dev}]\n", "gitops.yaml:1:13: apiVersion: \"gitops/v2\" is not supported"},
	{"bad kind", "apiVersion: gitops/v1\nkind: Pipe\nenvironments: [{name: dev}]\n", "gitops.yaml:2:7: kind: \"Pipe\""},
	{"missing apiVersion", "kind: Pipeline\nenvironments: [{name: dev}]\n", "gitops.yaml:1:1: apiVersion is required"},
	{"no environments", HDR "environments: []\n", "gitops.yaml:1:1: environments: at least one"},
	{"bad renderer", HDR "environments:\n  - name: dev\n    apps: [{name: a, path: x, renderer: jsonnet}]\n", "gitops.yaml:5:41: renderer: \"jsonnet\""},
	{"bad bool", HDR "environments:\n  - name: dev\n    sync: {auto: maybe}\n", "gitops.yaml:5:18: sync.auto: expected true or false"},
	{"bad duration", HDR "environments:\n  - name: dev\n    rollback: {healthTimeout: 5 minutes}\n", "gitops.yaml:5:31: rollback.healthTimeout: bad duration"},
	{"bad required", HDR "environments:\n  - name: dev\n    approval: {required: two}\n", "gitops.yaml:5:26: approval.required: expected an integer"},
	{"approver key that is no Ed25519 key", HDR "environments:\n  - name: dev\n    approval: {required: 1, approvers: [{name: a, key: nope}]}\n", "gitops.yaml:5:56: approver key: not an Ed25519 public key line"},
	{"too many required", HDR "environments:\n  - name: dev\n    approval: {required: 2, approvers: [{name: a, key: \"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}\n", "gitops.yaml:4:5: environment dev: approval.required is 2 but only 1"},
	{"track and from", HDR "environments:\n  - {name: dev}\n  - {name: st, track: main, from: dev}\n", "gitops.yaml:5:6: environment st: track and from exclude"},
	{"from unknown", HDR "environments:\n  - {name: st, from: dev}\n", "gitops.yaml:4:6: environment st: from \"dev\" is not an environment"},
	{"duplicate env", HDR "environments:\n  - {name: dev}\n  - {name: dev}\n", "gitops.yaml:5:6: environment \"dev\" is defined twice (first at line 4)"},
	{"duplicate app", HDR "environments:\n  - name: dev\n    apps:\n      - {name: a, path: x}\n      - {name: a, path: y}\n", "gitops.yaml:7:10: app \"a\" is listed twice"},
	{"bad env name", HDR "environments:\n  - {name: Dev_1}\n", "gitops.yaml:4:12: environment name \"Dev_1\" must be a DNS label"},
	{"path escapes", HDR "environments:\n  - name: dev\n    apps: [{name: a, path: ../other}]\n", "gitops.yaml:5:28: path \"../other\" must be relative"},
	{"absolute values", HDR "environments:\n  - name: dev\n    apps: [{name: a, path: c, helm: {values: [/etc/passwd]}}]\n", "gitops.yaml:5:47: helm.values: \"/etc/passwd\""},
	{"app without path", HDR "environments:\n  - name: dev\n    apps: [{name: a}]\n", "gitops.yaml:5:13: app a: path is required"},
	{"helm on plain", HDR "environments:\n  - name: dev\n    apps: [{name: a, path: p, renderer: plain, helm: {releaseName: r}}]\n", "gitops.yaml:5:13: app a: helm settings given but renderer is plain"},
	{"bad pointer", HDR "environments:\n  - name: dev\n    ignore: [{kind: X, jsonPointers: [spec.replicas]}]\n", "gitops.yaml:5:39: ignore.jsonPointers: \"spec.replicas\" is not a JSON pointer"},
	{"ignore without pointers", HDR "environments:\n  - name: dev\n    ignore: [{kind: X}]\n", "gitops.yaml:5:15: ignore: jsonPointers is required"},
	{"string expected", HDR "environments:\n  - name: [a, b]\n", "gitops.yaml:4:12: environment name: expected a string, got a sequence"},
	{"env not a mapping", HDR "environments:\n  - dev\n", "gitops.yaml:4:5: environment: expected a mapping"},
	{"duplicate key", HDR "environments: [{name: dev}]\nkind: Pipeline\n", "gitops.yaml:4:1: duplicate key \"kind\""},
	{"alias", HDR "branch: &a main\nenvironments: [{name: *a}]\n", "gitops.yaml:4:24: aliases are not supported"},
	{"syntax", HDR "environments: [{name: dev}\n", "gitops.yaml:"},
	{"bad namespace", HDR "environments: [{name: dev, namespace: Shop}]\n", "gitops.yaml:3:39: namespace \"Shop\""},
	{"bad pipeline name", HDR "name: Shop_1\nenvironments: [{name: dev}]\n", "gitops.yaml:3:7: name \"Shop_1\" must be a DNS label"},
	{"pipeline name too long", HDR "name: a123456789b123456789c123456789d123456789e123456789f123456789g12345\nenvironments: [{name: dev}]\n", "gitops.yaml:3:7: name \"a123456789b"},
	{"bad adopt", HDR "environments:\n  - name: dev\n    sync: {adopt: perhaps}\n", "gitops.yaml:5:19: sync.adopt: expected true or false"},
};

static void each_config_error_names_file_line_col(void **state)
{
	(void)state;
	int failed = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mf_config *cfg = (void *)1;
		int rc = mf_config_parse(&cfg, bad[i].yaml, strlen(bad[i].yaml), "gitops.yaml");
		if (rc == 0)
			fail_msg("%s: accepted", bad[i].name);
		assert_null(cfg);
		if (!strstr(gitops_error_last(), bad[i].want))
		{
			print_error("%s: error \"%s\" lacks \"%s\"\n", bad[i].name, gitops_error_last(), bad[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void durations(void **state)
{
	(void)state;
	long long ms;
	assert_int_equal(mf_parse_duration(&ms, "250ms"), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(mf_parse_duration(&ms, "1h30m"), 0);
	assert_int_equal(ms, 5400000);
	assert_int_not_equal(mf_parse_duration(&ms, "5"), 0);
	assert_int_not_equal(mf_parse_duration(&ms, "m"), 0);
	assert_int_not_equal(mf_parse_duration(&ms, ""), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_config_parses),
		cmocka_unit_test(app_paths_are_normalized),
		cmocka_unit_test(default_track_is_the_branch),
		cmocka_unit_test(pipeline_name_and_adopt),
		cmocka_unit_test(scalars_follow_kubectl_yaml_rules),
		cmocka_unit_test(each_config_error_names_file_line_col),
		cmocka_unit_test(durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
