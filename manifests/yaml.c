/* manifests/yaml.c: the manifests' view of common/yaml.c's reader (mf_limits), and jansson values
 * -> block YAML (the emitter kubectl's output is compared with). */
#include "manifests/manifests.h"
#include "common/yaml.h"

#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>

static struct gitops_yaml_limits *limits(struct gitops_yaml_limits *out, const struct mf_limits *in)
{
	if (!in)
		return NULL;
	*out = (struct gitops_yaml_limits){in->max_file_size, in->max_nodes, in->max_depth, in->max_alias_nodes};
	return out;
}

int mf_yaml_parse_stream(const char *text, size_t len, const char *file, const struct mf_limits *lim,
			 mf_yaml_doc_fn fn, void *data)
{
	struct gitops_yaml_limits l;
	return gitops_yaml_parse_stream(text, len, file, limits(&l, lim), fn, data);
}

int mf_yaml_parse(json_t **out, const char *text, size_t len, const char *file, const struct mf_limits *lim)
{
	struct gitops_yaml_limits l;
	return gitops_yaml_parse(out, text, len, file, limits(&l, lim));
}

/* ---- emitting -------------------------------------------------------------------------------- */

/* True when `s` can be written as a plain scalar and read back as the same string by a YAML 1.1
 * reader (kubectl) and by YAML 1.2 readers. Conservative: anything doubtful is quoted. */
static bool plain_safe(const char *s, size_t len)
{
	if (!len || len > 200)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '/' || (c == ':' && i + 1 < len && s[i + 1] != ' ' && i > 0)))
			return false;
	}
	if (s[0] == '-' || s[0] == '.' || s[len - 1] == ':')
		return false;
	const char *err = NULL;
	char *z = gitops_strndup(s, len);
	json_t *v = gitops_yaml_resolve_plain(z, &err);
	bool ok = v && json_is_string(v) && !strcmp(json_string_value(v), z);
	/* YAML 1.2 readers: anything that starts like a number is quoted too */
	if (s[0] >= '0' && s[0] <= '9')
		ok = false;
	json_decref(v);
	free(z);
	return ok;
}

static struct fy_node *to_node(struct fy_document *fyd, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		struct fy_node *m = fy_node_create_mapping(fyd);
		const char *k;
		json_t *val;
		/* sorted keys: stable output whatever the input order */
		size_t n = json_object_size(v), i = 0;
		const char **keys = gitops_malloc((n ? n : 1) * sizeof(*keys));
		json_object_foreach(v, k, val)
			keys[i++] = k;
		for (size_t a = 1; a < n; a++)
			for (size_t c = a; c > 0 && strcmp(keys[c - 1], keys[c]) > 0; c--) {
				const char *t = keys[c];
				keys[c] = keys[c - 1];
				keys[c - 1] = t;
			}
		for (i = 0; i < n; i++) {
			json_t *ks = json_string(keys[i]);
			struct fy_node *kn = to_node(fyd, ks);
			json_decref(ks);
			fy_node_mapping_append(m, kn, to_node(fyd, json_object_get(v, keys[i])));
		}
		free(keys);
		return m;
	}
	case JSON_ARRAY: {
		struct fy_node *s = fy_node_create_sequence(fyd);
		size_t i;
		json_t *it;
		json_array_foreach(v, i, it)
			fy_node_sequence_append(s, to_node(fyd, it));
		return s;
	}
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		if (plain_safe(s, len))
			return fy_node_create_scalar_copy(fyd, s, len);
		char *q = json_dumps(v, JSON_ENCODE_ANY);
		/* a JSON string is a double-quoted YAML scalar; the document takes q */
		return fy_node_build_from_malloc_string(fyd, q, strlen(q));
	}
	default: {
		char *q = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
		struct fy_node *n = fy_node_create_scalar_copy(fyd, q, strlen(q));
		free(q);
		return n;
	}
	}
}

int mf_yaml_emit(gitops_buf *out, json_t *value)
{
	struct fy_document *fyd = fy_document_create(NULL);
	if (!fyd)
		return gitops_error_set(GITOPS_ERROR, "cannot create a YAML document");
	struct fy_node *root = to_node(fyd, value);
	if (!root || fy_document_set_root(fyd, root)) {
		fy_document_destroy(fyd);
		return gitops_error_set(GITOPS_ERROR, "cannot build the YAML document");
	}
	char *s = fy_emit_document_to_string(fyd, FYECF_MODE_BLOCK | FYECF_WIDTH_INF | FYECF_INDENT_2 |
							FYECF_DOC_START_MARK_OFF);
	fy_document_destroy(fyd);
	if (!s)
		return gitops_error_set(GITOPS_ERROR, "cannot emit YAML");
	gitops_buf_puts(out, s);
	free(s);
	return 0;
}
