/* common: the one YAML reader (common/yaml.c), shared by manifests/ (manifests, renderer output,
 * gitops.yaml) and kube/ (kubeconfig, exec credentials), with kubectl's rules: sigs.k8s.io/yaml
 * over go-yaml v2, i.e. YAML 1.1 scalars. Only modules that read YAML include this header.
 * Everything here is reentrant: calls on different inputs may run on any threads at once. */
#ifndef GITOPS_COMMON_YAML_H
#define GITOPS_COMMON_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "common/common.h"

/* Hazard limits of one read (huge files, alias bombs, deep nesting); 0 fields take defaults. */
#define GITOPS_YAML_DEFAULT_MAX_FILE_SIZE (8u * 1024 * 1024) /* bytes per input */
#define GITOPS_YAML_DEFAULT_MAX_NODES (1000000u)             /* nodes per document, aliases expanded */
#define GITOPS_YAML_DEFAULT_MAX_ALIAS_NODES (100000u)        /* nodes copied by alias expansion */
#define GITOPS_YAML_DEFAULT_MAX_DEPTH (200u)                 /* nesting depth */
struct gitops_yaml_limits {
	size_t max_file_size;
	size_t max_nodes;
	unsigned max_depth;
	size_t max_alias_nodes;
};

/* Called once per non-empty document with its value (borrowed: json_incref to keep) and the
 * 1-based line where it starts. A non-zero return stops the parse and is returned. */
typedef int (*gitops_yaml_doc_fn)(void *data, json_t *doc, int line);

/* Parses a YAML stream (JSON when `file` ends in .json) the way kubectl reads it: yes/no/on/off/
 * y/n are booleans, unquoted 0755 is octal, 0x1F hex, 1_000 is 1000, integral numbers are
 * integers, quoted scalars stay strings, aliases and << merges are expanded (bounded). Invalid
 * UTF-8, control characters, duplicate keys, .inf/.nan, oversize input and syntax errors are
 * GITOPS_EPARSE (GITOPS_EINVALID for size), with "file:line:col: why". `file` names the input in
 * messages only; `lim` may be NULL. */
int gitops_yaml_parse_stream(const char *text, size_t len, const char *file, const struct gitops_yaml_limits *lim,
			     gitops_yaml_doc_fn fn, void *data);
/* One document into *out (the caller owns it: json_decref); an empty input gives a JSON null.
 * More than one document is GITOPS_EINVALID ("file: expected one YAML document"). */
int gitops_yaml_parse(json_t **out, const char *text, size_t len, const char *file, const struct gitops_yaml_limits *lim);
/* What a plain (unquoted) scalar means under those rules: a new JSON value (null, boolean,
 * integer, real or string), or NULL with *err set (a value JSON cannot hold). For readers that
 * walk libfyaml's nodes themselves to keep positions (manifests/config.c). */
json_t *gitops_yaml_resolve_plain(const char *s, const char **err);

#endif
