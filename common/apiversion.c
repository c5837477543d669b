/* common: the one reading of a Kubernetes apiVersion ("group/version", or "version" for the
 * core group), shared by kube/, drift/ and reconcile/. */
#include "common/common.h"

#include <string.h>

size_t gitops_api_group_len(const char *api_version, const char **version)
{
	const char *av = api_version ? api_version : "";
	const char *slash = strchr(av, '/');
	if (version)
		*version = slash ? slash + 1 : av;
	return slash ? (size_t)(slash - av) : 0;
}

char *gitops_api_group(const char *api_version)
{
	return gitops_strndup(api_version ? api_version : "", gitops_api_group_len(api_version, NULL));
}
