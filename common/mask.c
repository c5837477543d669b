/* common/mask.c: Secret masking for objects and for text from the apiserver or a renderer; the
 * only place that decides what a Secret value looks like in output (see mask.h). */
#include "mask.h"
#include "common.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

static bool is_secret(const json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *av = json_string_value(json_object_get(obj, "apiVersion"));
	return kind && av && !strcmp(kind, "Secret") && !strcmp(av, "v1");
}

/* Replaces, at any depth, the value of the last-applied annotation. */
static size_t scrub_last_applied(json_t *v)
{
	size_t n = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		json_object_foreach(v, k, c) {
			if (!strcmp(k, LAST_APPLIED)) {
				json_object_set_new(v, k, json_string(GITOPS_MASK));
				n++;
			} else {
				n += scrub_last_applied(c);
			}
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c) n += scrub_last_applied(c);
	}
	return n;
}

size_t gitops_mask_object(json_t *obj)
{
	if (!is_secret(obj))
		return 0;
	size_t n = 0;
	static const char *const fields[] = {"data", "stringData"};
	for (size_t f = 0; f < 2; f++) {
		json_t *m = json_object_get(obj, fields[f]);
		if (!m || json_is_null(m))
			continue;
		if (!json_is_object(m)) {
			/* `stringData: hunter2`: refused by the apiserver, never printed */
			json_object_set_new(obj, fields[f], json_string(GITOPS_MASK));
			n++;
			continue;
		}
		const char *k;
		json_t *v;
		json_object_foreach(m, k, v) {
			json_object_set_new(m, k, json_string(GITOPS_MASK));
			n++;
		}
	}
	return n + scrub_last_applied(obj);
}

/* ---- text ----------------------------------------------------------------------------------- */

struct values {
	char **v;
	size_t n, cap;
};

static void add(struct values *s, const char *p, size_t len)
{
	if (!len)
		return;
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == len && !memcmp(s->v[i], p, len))
			return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = gitops_realloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = gitops_strndup(p, len);
}

/* The value as it is, and as it appears inside a JSON or Go-quoted string, once and twice
 * escaped (a Status message quoting a JSON document quoting the value). */
static void add_forms(struct values *s, const char *p, size_t len)
{
	if (!len || memchr(p, '\0', len))
		return;
	add(s, p, len);
	json_t *js = json_stringn(p, len);
	for (int round = 0; js && round < 2; round++) {
		char *d = json_dumps(js, JSON_ENCODE_ANY);
		json_decref(js);
		js = NULL;
		if (!d)
			break;
		size_t dl = strlen(d);
		if (dl >= 2) {
			add(s, d + 1, dl - 2);
			js = json_stringn(d + 1, dl - 2);
		}
		free(d);
	}
	json_decref(js);
}

static void add_scalar(struct values *s, const json_t *v)
{
	if (json_is_string(v)) {
		add_forms(s, json_string_value(v), json_string_length(v));
	} else if (json_is_object(v) || json_is_array(v)) {
		char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (d)
			add_forms(s, d, strlen(d));
		free(d);
		const char *k;
		json_t *c;
		size_t i;
		if (json_is_object(v)) {
			json_object_foreach((json_t *)v, k, c) add_scalar(s, c);
		} else {
			json_array_foreach(v, i, c) add_scalar(s, c);
		}
	} else if (v && !json_is_null(v)) {
		char *d = json_dumps(v, JSON_ENCODE_ANY);
		if (d)
			add(s, d, strlen(d));
		free(d);
	}
}

/* A data value: the base64 text and what it decodes to. */
static void add_base64(struct values *s, const json_t *v)
{
	add_scalar(s, v);
	const char *b64 = json_string_value(v);
	size_t len = b64 ? strlen(b64) : 0;
	unsigned char *out;
	size_t n;
	if (!len || len > (1u << 24) || gitops_base64_decode(&out, &n, b64, len, GITOPS_BASE64_LINES))
		return;
	if (n > 0)
		add_forms(s, (const char *)out, n);
	gitops_base64_free(out, n);
}

static void collect(struct values *s, const json_t *o)
{
	if (json_is_array(o)) {
		size_t i;
		json_t *c;
		json_array_foreach(o, i, c) collect(s, c);
		return;
	}
	if (json_is_array(json_object_get(o, "items")))
		collect(s, json_object_get(o, "items"));
	if (!is_secret(o))
		return;
	const json_t *data = json_object_get(o, "data"), *sd = json_object_get(o, "stringData");
	const char *k;
	json_t *v;
	if (json_is_object(data)) {
		json_object_foreach((json_t *)data, k, v) add_base64(s, v);
	} else {
		add_scalar(s, data);
	}
	if (json_is_object(sd)) {
		json_object_foreach((json_t *)sd, k, v) add_scalar(s, v);
	} else {
		add_scalar(s, sd);
	}
	add_scalar(s, json_object_get(json_object_get(json_object_get(o, "metadata"), "annotations"), LAST_APPLIED));
}

static int longer_first(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

static bool word(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Replaces every occurrence of the values; a value shorter than 4 bytes only as a whole word. */
static char *replace_values(const char *text, struct values *s)
{
	qsort(s->v, s->n, sizeof(*s->v), longer_first);
	gitops_buf out = GITOPS_BUF_INIT;
	size_t tl = strlen(text);
	for (size_t i = 0; i < tl;) {
		size_t hit = 0;
		for (size_t k = 0; k < s->n && !hit; k++) {
			size_t vl = strlen(s->v[k]);
			if (vl > tl - i || memcmp(text + i, s->v[k], vl))
				continue;
			if (vl < 4 && ((i > 0 && word(text[i - 1])) || word(text[i + vl])))
				continue;
			hit = vl;
		}
		if (hit) {
			gitops_buf_puts(&out, GITOPS_MASK);
			i += hit;
		} else {
			gitops_buf_putc(&out, text[i++]);
		}
	}
	return gitops_buf_detach(&out);
}

/* Where the bracketed value starting at text[i] (an opening bracket) ends: the index of the
 * matching closing bracket, or the end of the text. */
static size_t matching(const char *t, size_t i, char open, char close)
{
	int depth = 0;
	for (; t[i]; i++) {
		if (t[i] == open)
			depth++;
		else if (t[i] == close && --depth == 0)
			return i;
	}
	return i;
}

/* The end of a quoted or bare value starting at t[i]. */
static size_t value_end(const char *t, size_t i)
{
	if (t[i] == '"') {
		for (i++; t[i] && t[i] != '"'; i++)
			if (t[i] == '\\' && t[i + 1])
				i++;
		return t[i] ? i + 1 : i;
	}
	if (t[i] == '\\' && t[i + 1] == '"') {
		const char *q = strstr(t + i + 2, "\\\"");
		return q ? (size_t)(q - t) + 2 : strlen(t);
	}
	while (t[i] && !strchr(" \t\n,;)}]", t[i]))
		i++;
	return i;
}

/* Masks what follows each occurrence of `key` (skipping `skip` characters after it) up to where
 * `end` says the value ends. */
static char *mask_after(const char *text, const char *key, const char *skip, int kind)
{
	gitops_buf out = GITOPS_BUF_INIT;
	size_t kl = strlen(key), i = 0;
	const char *p;
	while ((p = strstr(text + i, key))) {
		size_t at = (size_t)(p - text) + kl;
		at += strspn(text + at, skip);
		size_t end;
		if (kind == '[' && text[at] == '[')
			end = matching(text, at, '[', ']');
		else if (kind == '{' && text[at] == '{')
			end = matching(text, at, '{', '}');
		else if (kind == 'v')
			end = value_end(text, at);
		else if (kind == '}')
			end = at + strcspn(text + at, "}\n");
		else if (kind == 'n')
			end = at + strcspn(text + at, "\n");
		else {
			gitops_buf_put(&out, text + i, at - i);
			i = at;
			continue;
		}
		if (kind == '[' || kind == '{') {
			gitops_buf_put(&out, text + i, at + 1 - i);
			gitops_buf_puts(&out, GITOPS_MASK);
			i = end;
		} else {
			gitops_buf_put(&out, text + i, at - i);
			if (end > at)
				gitops_buf_puts(&out, GITOPS_MASK);
			i = end;
		}
		if (!text[i])
			break;
	}
	gitops_buf_puts(&out, text + i);
	return gitops_buf_detach(&out);
}

static void step(char **t, const char *key, const char *skip, int kind)
{
	char *n = mask_after(*t, key, skip, kind);
	free(*t);
	*t = n;
}

char *gitops_mask_text(const char *text, const json_t *objects)
{
	if (!text)
		return NULL;
	struct values s = {0};
	if (objects)
		collect(&s, objects);
	char *t = s.n ? replace_values(text, &s) : gitops_strdup(text);
	for (size_t i = 0; i < s.n; i++)
		free(s.v[i]);
	free(s.v);
	/* the annotation embeds a whole object: nothing after it on its line is kept */
	if (strstr(t, "last-applied-configuration") && !strstr(t, "last-applied-configuration" GITOPS_MASK))
		step(&t, "last-applied-configuration", "\\\":= ", 'n');
	if (strstr(t, "Secret") || strstr(t, "secret")) {
		step(&t, "stringData:map", "", '[');
		step(&t, " data:map", "", '[');
		step(&t, "[data:map", "", '[');
		step(&t, "\"stringData\":", " ", '{');
		step(&t, "\"data\":", " ", '{');
		step(&t, "\\\"stringData\\\":", " ", '{');
		step(&t, "\\\"data\\\":", " ", '{');
		step(&t, "Invalid value: ", "", 'v');
		step(&t, "Value:", "", '}');
	}
	return t;
}
