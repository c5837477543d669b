/* common: the one YAML reader: YAML streams -> jansson values, resolved the way kubectl resolves
 * them (sigs.k8s.io/yaml over go-yaml v2, i.e. YAML 1.1 scalars), for manifests, gitops.yaml and
 * kubeconfig alike. Errors name file:line:col. */
#include "common/yaml.h"

#include <errno.h>
#include <limits.h>
#include <libfyaml.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void limits_fill(struct gitops_yaml_limits *l, const struct gitops_yaml_limits *in)
{
	memset(l, 0, sizeof(*l));
	if (in)
		*l = *in;
	if (!l->max_file_size)
		l->max_file_size = GITOPS_YAML_DEFAULT_MAX_FILE_SIZE;
	if (!l->max_nodes)
		l->max_nodes = GITOPS_YAML_DEFAULT_MAX_NODES;
	if (!l->max_depth)
		l->max_depth = GITOPS_YAML_DEFAULT_MAX_DEPTH;
	if (!l->max_alias_nodes)
		l->max_alias_nodes = GITOPS_YAML_DEFAULT_MAX_ALIAS_NODES;
}


/* Finds the first character YAML does not allow in a stream (go-yaml refuses them too: "control
 * characters are not allowed"): C0 controls other than tab, LF and CR (NUL among them: libfyaml
 * would stop reading there and the rest of the file would silently vanish), DEL, and C1 controls
 * other than NEL. `text` is valid UTF-8. Returns the code point, or -1 when there is none. */
static long control_char(const char *text, size_t len, int *line, int *col)
{
	const unsigned char *s = (const unsigned char *)text;
	int ln = 1, cl = 1;
	for (size_t i = 0; i < len; i++) {
		unsigned c = s[i];
		if (c == '\n') {
			ln++;
			cl = 1;
			continue;
		}
		long cp = -1;
		if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7F)
			cp = (long)c;
		else if (c == 0xC2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F && s[i + 1] != 0x85)
			cp = (long)s[i + 1];
		if (cp >= 0) {
			*line = ln;
			*col = cl;
			return cp;
		}
		if ((c & 0xC0) != 0x80)
			cl++; /* columns count characters, not bytes */
	}
	return -1;
}

/* ---- scalar resolution (go-yaml v2 resolve.go, then JSON round trip as kubectl does) -------- */

/* Integral floats that fit int64 come back from kubectl's JSON round trip as integers. */
static json_t *number_from_double(double d)
{
	if (isfinite(d) && d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
		return json_integer((json_int_t)d);
	return json_real(d);
}

static bool float_syntax(const char *s)
{
	/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	} else {
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/* Go's strconv.ParseInt/ParseUint with base 0 (sign handled by the caller). Returns false when
 * the digits do not parse; *overflow is set when they parse but exceed uint64. */
static bool go_parse_uint(const char *s, unsigned long long *out, bool *overflow)
{
	int base = 10;
	*overflow = false;
	if (s[0] == '0' && s[1]) {
		if (s[1] == 'x' || s[1] == 'X') {
			base = 16;
			s += 2;
		} else if (s[1] == 'o' || s[1] == 'O') {
			base = 8;
			s += 2;
		} else if (s[1] == 'b' || s[1] == 'B') {
			base = 2;
			s += 2;
		} else {
			base = 8;
			s += 1;
		}
	}
	if (!*s)
		return false;
	unsigned long long v = 0;
	for (; *s; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return false;
		if (d >= base)
			return false;
		if (v > (ULLONG_MAX - (unsigned)d) / (unsigned)base)
			*overflow = true;
		else
			v = v * base + d;
	}
	*out = v;
	return true;
}

static const char *const yaml_true[] = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
					"true", "True", "TRUE", NULL};
static const char *const yaml_false[] = {"n", "N", "no", "No", "NO", "off", "Off", "OFF",
					 "false", "False", "FALSE", NULL};
static const char *const yaml_null[] = {"", "~", "null", "Null", "NULL", NULL};

static bool in_list(const char *s, const char *const *l)
{
	for (; *l; l++)
		if (!strcmp(s, *l))
			return true;
	return false;
}

/* Resolves a plain scalar. Returns a new value, or NULL with *err set for values JSON cannot
 * hold (.inf, .nan). */
json_t *gitops_yaml_resolve_plain(const char *s, const char **err)
{
	if (in_list(s, yaml_null))
		return json_null();
	if (in_list(s, yaml_true))
		return json_true();
	if (in_list(s, yaml_false))
		return json_false();
	static const char *const special[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
					      "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", NULL};
	if (in_list(s, special)) {
		*err = "infinite or NaN numbers cannot be represented in JSON";
		return NULL;
	}
	char c = s[0];
	if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.'))
		return json_string(s);

	/* go-yaml removes underscores before trying the integer forms */
	size_t n = strlen(s);
	char *plain = gitops_malloc(n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '_')
			plain[j++] = s[i];
	plain[j] = '\0';
	json_t *res = NULL;
	const char *digits = plain;
	bool neg = false;
	if (*digits == '+' || *digits == '-') {
		neg = *digits == '-';
		digits++;
	}
	unsigned long long u;
	bool overflow;
	if (c != '.' && go_parse_uint(digits, &u, &overflow) && !overflow) {
		if (!neg && u <= (unsigned long long)INT64_MAX)
			res = json_integer((json_int_t)u);
		else if (neg && u <= (unsigned long long)INT64_MAX + 1)
			res = json_integer(u == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)u);
		else if (!neg && plain[0] != '+')
			res = json_real((double)u); /* uint64: kubectl's JSON decode makes it float64 */
	}
	if (!res && float_syntax(plain)) {
		errno = 0;
		double d = strtod(plain, NULL);
		if (isinf(d))
			*err = "number out of range";
		else
			res = number_from_double(d);
	}
	if (!res && !*err)
		res = json_string(s);
	free(plain);
	return res;
}

/* A !!binary scalar as kubectl reads it: go-yaml decodes the base64 (line breaks ignored) into a
 * string of the bytes, and the JSON encoding turns each byte that is not valid UTF-8 into U+FFFD.
 * NULL with *err for invalid base64. */
static json_t *binary_scalar(const char *s, size_t len, const char **err)
{
	json_t *v = NULL;
	unsigned char *raw = NULL;
	size_t n = 0;
	long got = gitops_base64_decode(&raw, &n, s, len, GITOPS_BASE64_LINES) ? -1 : (long)n;
	if (got < 0) {
		*err = "!!binary value is not valid base64";
	} else {
		gitops_buf b = GITOPS_BUF_INIT;
		for (size_t i = 0; i < (size_t)got;) {
			int line, col;
			size_t k = (raw[i] & 0xE0) == 0xC0 ? 2 : (raw[i] & 0xF0) == 0xE0 ? 3 : (raw[i] & 0xF8) == 0xF0 ? 4 : 1;
			if (k <= (size_t)got - i && (raw[i] < 0x80 || !gitops_utf8_check((char *)raw + i, k, &line, &col))) {
				gitops_buf_put(&b, raw + i, k);
				i += k;
			} else {
				gitops_buf_puts(&b, "\xEF\xBF\xBD");
				i++;
			}
		}
		if (memchr(b.ptr ? b.ptr : "", '\0', b.len))
			*err = "!!binary value decodes to a NUL byte (use a ConfigMap's binaryData or a Secret's data)";
		else
			v = json_stringn(b.ptr ? b.ptr : "", b.len);
		gitops_buf_free(&b);
	}
	free(raw);
	return v;
}

/* A mapping key as sigs.k8s.io/yaml turns it into a JSON key. */
static char *key_string(json_t *k, const char **err)
{
	switch (json_typeof(k)) {
	case JSON_STRING:
		return gitops_strndup(json_string_value(k), json_string_length(k));
	case JSON_INTEGER:
		return gitops_sprintf("%lld", (long long)json_integer_value(k));
	case JSON_REAL:
		return gitops_sprintf("%.7g", json_real_value(k));
	case JSON_TRUE:
		return gitops_strdup("true");
	case JSON_FALSE:
		return gitops_strdup("false");
	default:
		*err = "unsupported mapping key (null, sequence or mapping)";
		return NULL;
	}
}

/* ---- the event-driven builder ---------------------------------------------------------------- */

struct anchor {
	char *name;
	json_t *value;
	size_t nodes;
};

struct frame {
	json_t *value;   /* object or array */
	bool is_map;
	char *key;       /* pending key (maps) */
	bool key_merge;  /* the pending key is "<<" */
	int key_line, key_col;
	json_t *explicit_keys; /* keys written explicitly (duplicate detection) */
	char *anchor;
	size_t start_nodes;
};

struct builder {
	const char *file;
	struct gitops_yaml_limits lim;
	struct frame *stack;
	size_t depth, cap;
	struct anchor *anchors;
	size_t n_anchors, cap_anchors;
	size_t nodes;       /* values produced in this document, aliases counted expanded */
	size_t alias_nodes; /* of which copied by alias expansion */
	json_t *root;
	int doc_line;
};

static void anchors_clear(struct builder *b)
{
	for (size_t i = 0; i < b->n_anchors; i++) {
		free(b->anchors[i].name);
		json_decref(b->anchors[i].value);
	}
	b->n_anchors = 0;
}

static void frames_clear(struct builder *b)
{
	while (b->depth) {
		struct frame *f = &b->stack[--b->depth];
		json_decref(f->value);
		json_decref(f->explicit_keys);
		free(f->key);
		free(f->anchor);
	}
}

static int err_at(const struct builder *b, const struct fy_mark *m, const char *fmt, const char *arg)
{
	return gitops_error_set(GITOPS_EPARSE, "%s:%d:%d: %s%s", b->file, m ? m->line + 1 : 0,
				m ? m->column + 1 : 0, fmt, arg ? arg : "");
}

static char *token_text(struct fy_token *t)
{
	size_t len = 0;
	const char *s = t ? fy_token_get_text(t, &len) : NULL;
	return s ? gitops_strndup(s, len) : NULL;
}

static void anchor_add(struct builder *b, const char *name, json_t *v, size_t nodes)
{
	if (b->n_anchors == b->cap_anchors) {
		b->cap_anchors = b->cap_anchors ? b->cap_anchors * 2 : 8;
		b->anchors = gitops_realloc(b->anchors, b->cap_anchors * sizeof(*b->anchors));
	}
	b->anchors[b->n_anchors].name = gitops_strdup(name);
	b->anchors[b->n_anchors].value = json_incref(v);
	b->anchors[b->n_anchors].nodes = nodes;
	b->n_anchors++;
}

static const struct anchor *anchor_find(const struct builder *b, const char *name)
{
	for (size_t i = b->n_anchors; i > 0; i--)
		if (!strcmp(b->anchors[i - 1].name, name))
			return &b->anchors[i - 1];
	return NULL;
}

/* Merges mapping `src` into `dst` (go-yaml v2: merged keys overwrite what is there). */
static void merge_into(json_t *dst, json_t *src)
{
	const char *k;
	json_t *v;
	json_object_foreach(src, k, v)
		json_object_set_new(dst, k, json_deep_copy(v));
}

/* Places a finished value (steals `v`) into the current container or as the root. */
static int place(struct builder *b, json_t *v, const struct fy_mark *m)
{
	if (!b->depth) {
		json_decref(b->root);
		b->root = v;
		return 0;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (!f->is_map) {
		json_array_append_new(f->value, v);
		return 0;
	}
	if (!f->key && !f->key_merge) {
		/* this value is a key */
		const char *err = NULL;
		char *k = key_string(v, &err);
		json_decref(v);
		if (!k)
			return err_at(b, m, err, NULL);
		f->key = k;
		f->key_line = m ? m->line : 0;
		f->key_col = m ? m->column : 0;
		return 0;
	}
	if (f->key_merge) {
		f->key_merge = false;
		free(f->key);
		f->key = NULL;
		if (json_is_object(v)) {
			merge_into(f->value, v);
		} else if (json_is_array(v)) {
			/* earlier mappings take precedence: merge from the last */
			for (size_t i = json_array_size(v); i > 0; i--) {
				json_t *it = json_array_get(v, i - 1);
				if (!json_is_object(it)) {
					json_decref(v);
					return err_at(b, m, "map merge requires a mapping or a list of mappings", NULL);
				}
				merge_into(f->value, it);
			}
		} else {
			json_decref(v);
			return err_at(b, m, "map merge requires a mapping or a list of mappings", NULL);
		}
		json_decref(v);
		return 0;
	}
	if (json_object_get(f->explicit_keys, f->key)) {
		struct fy_mark km = {0, f->key_line, f->key_col};
		char *msg = gitops_sprintf("duplicate key \"%s\"", f->key);
		int rc = err_at(b, &km, msg, NULL);
		free(msg);
		json_decref(v);
		return rc;
	}
	json_object_set_new(f->explicit_keys, f->key, json_true());
	json_object_set_new(f->value, f->key, v);
	free(f->key);
	f->key = NULL;
	return 0;
}

static bool expecting_key(const struct builder *b)
{
	if (!b->depth)
		return false;
	const struct frame *f = &b->stack[b->depth - 1];
	return f->is_map && !f->key && !f->key_merge;
}

static int count_node(struct builder *b, size_t n, const struct fy_mark *m)
{
	b->nodes += n;
	if (b->nodes > b->lim.max_nodes) {
		char lim[64];
		snprintf(lim, sizeof(lim), "%zu", b->lim.max_nodes);
		return err_at(b, m, "document expands to more than the node limit (alias bomb?): ", lim);
	}
	return 0;
}

static int on_scalar(struct builder *b, struct fy_event *ev)
{
	const struct fy_mark *m = fy_event_start_mark(ev);
	size_t len = 0;
	const char *text = fy_token_get_text(ev->scalar.value, &len);
	if (!text)
		text = "";
	int rc = count_node(b, 1, m);
	if (rc)
		return rc;
	enum fy_scalar_style style = fy_token_scalar_style(ev->scalar.value);
	char *tag = token_text(ev->scalar.tag);
	char *s = gitops_strndup(text, len);
	if (memchr(text, '\0', len)) {
		free(tag);
		free(s);
		return err_at(b, m, "NUL character in scalar", NULL);
	}
	json_t *v = NULL;
	const char *err = NULL;
	bool is_str_tag = tag && (!strcmp(tag, "tag:yaml.org,2002:str") || !strcmp(tag, "!!str") ||
				  !strcmp(tag, "!"));
	if (tag && (!strcmp(tag, "tag:yaml.org,2002:binary") || !strcmp(tag, "!!binary"))) {
		v = binary_scalar(s, len, &err);
	} else if (style == FYSS_PLAIN && !is_str_tag) {
		if (expecting_key(b) && !strcmp(s, "<<") && !tag) {
			struct frame *f = &b->stack[b->depth - 1];
			f->key_merge = true;
			f->key = gitops_strdup("<<");
			free(tag);
			free(s);
			return 0;
		}
		v = gitops_yaml_resolve_plain(s, &err);
	} else if (tag && !is_str_tag && (strstr(tag, ":int") || strstr(tag, ":float") ||
					  strstr(tag, ":bool") || strstr(tag, ":null"))) {
		v = gitops_yaml_resolve_plain(s, &err);
	} else {
		v = json_stringn(s, len);
	}
	free(tag);
	free(s);
	if (!v)
		return err_at(b, m, err ? err : "invalid scalar", NULL);
	char *anchor = token_text(ev->scalar.anchor);
	if (anchor) {
		anchor_add(b, anchor, v, 1);
		free(anchor);
	}
	return place(b, v, m);
}

static int on_alias(struct builder *b, struct fy_event *ev)
{
	const struct fy_mark *m = fy_event_start_mark(ev);
	char *name = token_text(ev->alias.anchor);
	const struct anchor *a = name ? anchor_find(b, name) : NULL;
	if (!a) {
		int rc = err_at(b, m, "unknown anchor: ", name ? name : "?");
		free(name);
		return rc;
	}
	free(name);
	b->alias_nodes += a->nodes;
	if (b->alias_nodes > b->lim.max_alias_nodes) {
		char lim[64];
		snprintf(lim, sizeof(lim), "%zu", b->lim.max_alias_nodes);
		return err_at(b, m, "aliases expand to more than the node limit (alias bomb?): ", lim);
	}
	int rc = count_node(b, a->nodes, m);
	if (rc)
		return rc;
	if (expecting_key(b))
		return place(b, json_incref(a->value), m);
	if (b->stack && b->depth && b->stack[b->depth - 1].key_merge)
		return place(b, json_incref(a->value), m);
	return place(b, json_deep_copy(a->value), m);
}

static int on_start(struct builder *b, struct fy_event *ev, bool is_map)
{
	const struct fy_mark *m = fy_event_start_mark(ev);
	if (expecting_key(b))
		return err_at(b, m, "mapping or sequence used as a mapping key", NULL);
	if (b->depth >= b->lim.max_depth)
		return err_at(b, m, "nesting too deep", NULL);
	int rc = count_node(b, 1, m);
	if (rc)
		return rc;
	if (b->depth == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->stack = gitops_realloc(b->stack, b->cap * sizeof(*b->stack));
	}
	struct frame *f = &b->stack[b->depth++];
	memset(f, 0, sizeof(*f));
	f->is_map = is_map;
	f->value = is_map ? json_object() : json_array();
	f->explicit_keys = is_map ? json_object() : NULL;
	f->anchor = token_text(is_map ? ev->mapping_start.anchor : ev->sequence_start.anchor);
	f->start_nodes = b->nodes;
	return 0;
}

static int on_end(struct builder *b, struct fy_event *ev)
{
	const struct fy_mark *m = fy_event_start_mark(ev);
	struct frame f = b->stack[--b->depth];
	json_decref(f.explicit_keys);
	free(f.key);
	if (f.anchor) {
		anchor_add(b, f.anchor, f.value, b->nodes - f.start_nodes + 1);
		free(f.anchor);
	}
	return place(b, f.value, m);
}

int gitops_yaml_parse_stream(const char *text, size_t len, const char *file,
			 const struct gitops_yaml_limits *lim_in, gitops_yaml_doc_fn fn, void *data)
{
	struct builder b;
	memset(&b, 0, sizeof(b));
	b.file = file ? file : "<input>";
	limits_fill(&b.lim, lim_in);
	if (len > b.lim.max_file_size)
		return gitops_error_set(GITOPS_EINVALID, "%s:1: file is %zu bytes, over the %zu-byte limit",
					b.file, len, b.lim.max_file_size);
	int line, col;
	if (gitops_utf8_check(text, len, &line, &col))
		return gitops_error_set(GITOPS_EPARSE, "%s:%d:%d: invalid UTF-8", b.file, line, col);
	long cc = control_char(text, len, &line, &col);
	if (cc >= 0)
		return gitops_error_set(GITOPS_EPARSE, "%s:%d:%d: control character U+%04lX%s is not allowed in YAML "
					"(the file is binary or corrupt; remove it or write the value escaped in a "
					"double-quoted string)", b.file, line, col, cc, cc == 0 ? " (NUL)" : "");

	struct fy_diag_cfg dcfg;
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = NULL;
	dcfg.colorize = false;
	struct fy_diag *diag = fy_diag_create(&dcfg);
	if (!diag)
		return gitops_error_set(GITOPS_ERROR, "%s: cannot create the YAML diagnostics", b.file);
	fy_diag_set_collect_errors(diag, true);
	size_t fl = strlen(b.file);
	bool json = fl > 5 && !strcmp(b.file + fl - 5, ".json");
	struct fy_parse_cfg cfg = {NULL, FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_DEFAULT_VERSION_1_1 |
					 (json ? FYPCF_JSON_FORCE : FYPCF_JSON_NONE), NULL, diag};
	struct fy_parser *fyp = fy_parser_create(&cfg);
	int rc = 0;
	if (!fyp) {
		fy_diag_destroy(diag);
		return gitops_error_set(GITOPS_ERROR, "%s: cannot create the YAML parser", b.file);
	}
	if (fy_parser_set_string(fyp, text, len)) {
		rc = gitops_error_set(GITOPS_ERROR, "%s: cannot read the input", b.file);
		goto out;
	}
	struct fy_event *ev;
	while (!rc && (ev = fy_parser_parse(fyp)) != NULL) {
		switch (ev->type) {
		case FYET_DOCUMENT_START: {
			const struct fy_mark *m = fy_event_start_mark(ev);
			b.doc_line = m ? m->line + 1 : 1;
			b.nodes = 0;
			b.alias_nodes = 0;
			anchors_clear(&b);
			json_decref(b.root);
			b.root = NULL;
			break;
		}
		case FYET_DOCUMENT_END:
			if (b.root && !json_is_null(b.root) && fn) {
				rc = fn(data, b.root, b.doc_line);
			}
			json_decref(b.root);
			b.root = NULL;
			anchors_clear(&b);
			break;
		case FYET_SCALAR:
			if (!b.depth) {
				const struct fy_mark *m = fy_event_start_mark(ev);
				if (m)
					b.doc_line = m->line + 1;
			}
			rc = on_scalar(&b, ev);
			break;
		case FYET_ALIAS:
			rc = on_alias(&b, ev);
			break;
		case FYET_MAPPING_START:
		case FYET_SEQUENCE_START:
			if (!b.depth) {
				const struct fy_mark *m = fy_event_start_mark(ev);
				if (m)
					b.doc_line = m->line + 1;
			}
			rc = on_start(&b, ev, ev->type == FYET_MAPPING_START);
			break;
		case FYET_MAPPING_END:
		case FYET_SEQUENCE_END:
			rc = on_end(&b, ev);
			break;
		default:
			break;
		}
		fy_parser_event_free(fyp, ev);
	}
	if (!rc && (fy_parser_get_stream_error(fyp) || fy_diag_got_error(diag))) {
		void *it = NULL;
		struct fy_diag_error *de = fy_diag_errors_iterate(diag, &it);
		/* libfyaml's collected errors carry 1-based lines and columns of the offending token's
		 * start; a multi-line token (a plain scalar that turns out to be a key, a quoted scalar
		 * whose continuation is wrongly indented) starts on the line above the mistake, so the
		 * later of that and the token's end (0-based) names the line to fix */
		if (de) {
			int el = de->line, ec = de->column;
			const struct fy_mark *te = de->fyt ? fy_token_end_mark(de->fyt) : NULL;
			if (te && (te->line + 1 > el || (te->line + 1 == el && te->column + 1 > ec))) {
				el = te->line + 1;
				ec = te->column + 1;
			}
			rc = gitops_error_set(GITOPS_EPARSE, "%s:%d:%d: %s", b.file, el, ec,
					      de->msg ? de->msg : "YAML syntax error");
		}
		else
			rc = gitops_error_set(GITOPS_EPARSE, "%s:1: YAML syntax error", b.file);
	}
out:
	frames_clear(&b);
	anchors_clear(&b);
	free(b.anchors);
	free(b.stack);
	json_decref(b.root);
	fy_parser_destroy(fyp);
	fy_diag_destroy(diag);
	return rc;
}

static int keep_first(void *data, json_t *doc, int line)
{
	(void)line;
	json_t **out = data;
	if (*out)
		return gitops_error_set(GITOPS_EINVALID, "more than one document");
	*out = json_incref(doc);
	return 0;
}

int gitops_yaml_parse(json_t **out, const char *text, size_t len, const char *file,
		      const struct gitops_yaml_limits *lim)
{
	*out = NULL;
	json_t *v = NULL;
	int rc = gitops_yaml_parse_stream(text, len, file, lim, keep_first, &v);
	if (rc) {
		json_decref(v);
		if (rc == GITOPS_EINVALID && !strcmp(gitops_error_last(), "more than one document"))
			return gitops_error_set(GITOPS_EINVALID, "%s: expected one YAML document", file ? file : "<input>");
		return rc;
	}
	*out = v ? v : json_null();
	return 0;
}

