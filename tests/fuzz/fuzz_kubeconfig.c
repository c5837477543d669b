/* libFuzzer target: kubeconfig / ExecCredential YAML to JSON (kube/config.c). */
#include <stddef.h>
#include <stdint.h>

#include "kube/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL;
	if (kube_yaml_to_json(&doc, (const char *)data, size, "fuzz-kubeconfig") == 0)
		json_decref(doc);
	return 0;
}
