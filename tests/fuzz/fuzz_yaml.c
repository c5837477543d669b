/* libFuzzer target: the manifest YAML reader (mf_yaml_parse_stream) and object validation, with
 * the default hazard limits. Any input must give objects or a clean error, never a crash. */
#include <stddef.h>
#include <stdint.h>

#include "manifests/manifests.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mf_objects *set = NULL;
	if (mf_objects_new(&set))
		return 0;
	mf_objects_add_yaml(set, (const char *)data, size, "fuzz.yaml", "app", "ns", NULL);
	mf_objects_resolve(set, NULL, NULL);
	gitops_buf out = GITOPS_BUF_INIT;
	mf_objects_to_yaml(&out, set);
	gitops_buf_free(&out);
	mf_objects_free(set);
	return 0;
}
