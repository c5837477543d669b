/* libFuzzer target: the pipeline config parser (gitops.yaml). */
#include <stddef.h>
#include <stdint.h>

#include "manifests/manifests.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_config *cfg = NULL;
	if (mf_config_parse(&cfg, (const char *)data, size, "gitops.yaml") == 0)
		mf_config_free(cfg);
	return 0;
}
