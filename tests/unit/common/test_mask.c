/* Unit tests for common/mask.c: Secret values never survive masking, in objects or in text from
 * the apiserver (messages as kube-apiserver v1.36 words them) or a renderer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "common/mask.h"

static json_t *secret(const char *extra_json)
{
	json_error_t e;
	json_t *o = json_loads(extra_json, 0, &e);
	assert_non_null(o);
	json_object_set_new(o, "apiVersion", json_string("v1"));
	json_object_set_new(o, "kind", json_string("Secret"));
	return o;
}

static void object_masks_maps_scalars_and_last_applied(void **state)
{
	(void)state;
	json_t *s = secret("{\"metadata\": {\"name\": \"db\", \"annotations\": {\"kubectl.kubernetes.io/"
			   "last-applied-configuration\": \"{\\\"data\\\":{\\\"p\\\":\\\"aHVudGVy\\\"}}\"}},"
			   " \"data\": {\"p\": \"aHVudGVy\"}, \"stringData\": \"hunter2 as a scalar\"}");
	assert_int_equal(gitops_mask_object(s), 3);
	char *d = json_dumps(s, JSON_COMPACT);
	assert_null(strstr(d, "hunter"));
	assert_null(strstr(d, "aHVudGVy"));
	assert_non_null(strstr(d, "\"p\":\"***\""));   /* keys stay */
	free(d);
	json_decref(s);
	/* other kinds are not touched */
	json_error_t e;
	json_t *cm = json_loads("{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"data\": {\"a\": \"b\"}}", 0, &e);
	assert_int_equal(gitops_mask_object(cm), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(cm, "data"), "a")), "b");
	json_decref(cm);
}

/* The refusal kube-apiserver gives for `stringData: {password: 12345}` (an integer). */
static void apiserver_refusal_quoting_a_value_is_masked(void **state)
{
	(void)state;
	json_t *s = secret("{\"metadata\": {\"name\": \"db\"}, \"stringData\": {\"password\": 918273645}}");
	/* recorded from kube-apiserver v1.36.3 through kube_status_error */
	const char *msg = "apply Secret default/db: Invalid (500): failed to create typed patch object (default/db; /v1, "
			  "Kind=Secret): .stringData.password: expected string, got &value.valueUnstructured{Value:918273645}";
	char *m = gitops_mask_text(msg, s);
	assert_null(strstr(m, "918273645"));
	assert_non_null(strstr(m, ".stringData.password: expected string"));
	free(m);
	/* without the object, the pattern alone still hides it (the text names a Secret) */
	m = gitops_mask_text(msg, NULL);
	assert_null(strstr(m, "918273645"));
	free(m);
	json_decref(s);
}

static void values_in_every_form_are_masked(void **state)
{
	(void)state;
	/* "correct horse\n" in base64, a stringData value with a quote */
	json_t *s = secret("{\"data\": {\"a\": \"Y29ycmVjdCBob3JzZQo=\"}, \"stringData\": {\"b\": \"say \\\"hi\\\" now\"}}");
	json_t *arr = json_pack("[{s:s, s:s}, o]", "apiVersion", "v1", "kind", "ConfigMap", s);
	const char *msg = "refused: Y29ycmVjdCBob3JzZQo= / correct horse\\n / \"say \\\"hi\\\" now\" / "
			  "{\\\"b\\\":\\\"say \\\\\\\"hi\\\\\\\" now\\\"}";
	char *m = gitops_mask_text(msg, arr);
	assert_null(strstr(m, "Y29ycmVj"));
	assert_null(strstr(m, "correct horse"));
	assert_null(strstr(m, "say "));
	free(m);
	json_decref(arr);
	/* a short value is masked only as a whole word */
	json_t *t = secret("{\"stringData\": {\"k\": \"ab\"}}");
	m = gitops_mask_text("table ab, (ab)", t);
	assert_string_equal(m, "table ***, (***)");
	free(m);
	json_decref(t);
}

static void renderer_dumps_and_last_applied_are_masked(void **state)
{
	(void)state;
	char *m = gitops_mask_text("Error: accumulating resources: map[apiVersion:v1 data:map[password:aHVudGVyMg==] "
				   "kind:Secret metadata:map[name:db]]: not valid", NULL);
	assert_null(strstr(m, "aHVudGVyMg"));
	assert_non_null(strstr(m, "kind:Secret"));
	free(m);
	m = gitops_mask_text("error: Secret \"db\": {\"data\": {\"password\": \"aHVudGVyMg==\"}, \"kind\": \"Secret\"}", NULL);
	assert_null(strstr(m, "aHVudGVyMg"));
	free(m);
	m = gitops_mask_text("metadata.annotations: kubectl.kubernetes.io/last-applied-configuration: {\"data\":{\"x\":\"c2VjcmV0\"}}\nnext line",
			     NULL);
	assert_null(strstr(m, "c2VjcmV0"));
	assert_non_null(strstr(m, "next line"));
	free(m);
	/* text about other kinds is left alone */
	m = gitops_mask_text("ConfigMap \"x\": data:map[a:b] Invalid value: \"b\"", NULL);
	assert_string_equal(m, "ConfigMap \"x\": data:map[a:b] Invalid value: \"b\"");
	free(m);
	assert_null(gitops_mask_text(NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(object_masks_maps_scalars_and_last_applied),
		cmocka_unit_test(apiserver_refusal_quoting_a_value_is_masked),
		cmocka_unit_test(values_in_every_form_are_masked),
		cmocka_unit_test(renderer_dumps_and_last_applied_are_masked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
