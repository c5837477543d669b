/* Unit tests for reconcile/'s object references: the "group/kind/namespace/name" key an object
 * and its inventory reference share (objects recorded from the local control plane in
 * tests/fixtures/health), and the inventory's name. Pure functions: no cluster. */
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

static json_t *load(const char *name) { return t_fixture("tests/fixtures/health/live/%s.json", name); }

static void expect_key(const char *fixture, const char *want)
{
	json_t *obj = load(fixture);
	char *k = rec_object_key(obj);
	if (strcmp(k, want))
		fail_msg("%s: key %s, want %s", fixture, k, want);
	/* the inventory records apiVersion, kind, namespace, name: its key is the object's */
	json_t *md = json_object_get(obj, "metadata");
	json_t *ref = json_pack("{s:O, s:O, s:O*, s:O}", "apiVersion", json_object_get(obj, "apiVersion"), "kind",
				json_object_get(obj, "kind"), "namespace", json_object_get(md, "namespace"), "name",
				json_object_get(md, "name"));
	char *rk = rec_ref_key(ref);
	assert_string_equal(rk, k);
	free(rk);
	free(k);
	json_decref(ref);
	json_decref(obj);
}

static void keys_name_group_kind_namespace_and_name(void **state)
{
	expect_key("deployment-ready", "apps/Deployment/health-fixtures/web");
	expect_key("configmap", "/ConfigMap/health-fixtures/settings");          /* core group: "" */
	expect_key("node-ready", "/Node//kwok-node-0");                        /* cluster-scoped */
	expect_key("crd-established", "apiextensions.k8s.io/CustomResourceDefinition//widgets.health.example.com");
	expect_key("widget-ready", "health.example.com/Widget/health-fixtures/gear");
}

static void keys_ignore_the_version(void **state)
{
	/* an object read in another version of its group is the same object */
	json_t *a = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "autoscaling/v2", "kind", "HorizontalPodAutoscaler",
			      "metadata", "name", "web", "namespace", "shop");
	json_t *b = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", "autoscaling/v1", "kind", "HorizontalPodAutoscaler",
			      "name", "web", "namespace", "shop");
	char *ka = rec_object_key(a), *kb = rec_ref_key(b);
	assert_string_equal(ka, kb);
	assert_string_equal(ka, "autoscaling/HorizontalPodAutoscaler/shop/web");
	/* but not another group of the same kind name */
	json_object_set_new(b, "apiVersion", json_string("example.com/v1"));
	free(kb);
	kb = rec_ref_key(b);
	assert_string_not_equal(ka, kb);
	free(ka);
	free(kb);
	json_decref(a);
	json_decref(b);
}

static void keys_of_incomplete_objects_do_not_crash(void **state)
{
	json_t *o = json_object();
	char *k = rec_object_key(o);
	assert_string_equal(k, "///");
	free(k);
	json_decref(o);
}

static void inventory_name_is_per_pipeline_and_environment(void **state)
{
	char *n = rec_inventory_name("shop", "prod");
	assert_string_equal(n, "gitops-inventory.shop.prod");
	char *m = rec_inventory_name("shop", "staging");
	assert_string_not_equal(n, m);
	free(n);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keys_name_group_kind_namespace_and_name),
		cmocka_unit_test(keys_ignore_the_version),
		cmocka_unit_test(keys_of_incomplete_objects_do_not_crash),
		cmocka_unit_test(inventory_name_is_per_pipeline_and_environment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
