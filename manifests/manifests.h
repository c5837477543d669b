/* manifests: git source, pipeline config, renderers (plain, kustomize, helm) and YAML -> JSON
 * objects. Not implemented yet: see the manifests issue. */
#ifndef GITOPS_MANIFESTS_H
#define GITOPS_MANIFESTS_H
#endif
