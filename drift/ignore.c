/* ignore: per-object ignore rules from the pipeline config (RFC 6901 JSON pointers), for fields
 * that something else legitimately rewrites (an HPA's replicas, a webhook's injected fields). */
#include <stdlib.h>
#include <string.h>

#include "drift/drift.h"
#include "drift/drift_internal.h"

struct rule {
	char *group, *kind, *namespace_, *name; /* NULL: any */
	char **tokens;                          /* unescaped reference tokens */
	size_t ntokens;
};

struct drift_ignore {
	struct rule *rules;
	size_t n, cap;
};

int drift_ignore_new(drift_ignore **out)
{
	*out = gitops_calloc(1, sizeof(**out));
	return 0;
}

static char *selector_dup(const char *s)
{
	return (s && strcmp(s, "*") != 0) ? gitops_strdup(s) : NULL;
}

/* Splits a pointer into unescaped tokens; -1 when it is not a valid pointer. */
static int split_pointer(char ***tokens, size_t *n, const char *pointer)
{
	*tokens = NULL;
	*n = 0;
	if (*pointer == '\0')
		return 0;
	if (*pointer != '/')
		return -1;
	const char *p = pointer;
	while (*p == '/') {
		p++;
		gitops_buf tok = GITOPS_BUF_INIT;
		gitops_buf_puts(&tok, "");
		for (; *p && *p != '/'; p++) {
			if (*p == '~') {
				if (p[1] != '0' && p[1] != '1') {
					gitops_buf_free(&tok);
					return -1;
				}
				gitops_buf_putc(&tok, p[1] == '0' ? '~' : '/');
				p++;
			} else {
				gitops_buf_putc(&tok, *p);
			}
		}
		*tokens = gitops_realloc(*tokens, (*n + 1) * sizeof(char *));
		(*tokens)[(*n)++] = gitops_buf_detach(&tok);
	}
	return 0;
}

static void free_tokens(char **tokens, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(tokens[i]);
	free(tokens);
}

int drift_ignore_add(drift_ignore *ig, const char *group, const char *kind,
		     const char *namespace_, const char *name, const char *pointer)
{
	char **tokens;
	size_t n;
	if (!pointer || split_pointer(&tokens, &n, pointer) < 0) {
		return gitops_error_set(GITOPS_EINVALID, "ignore rule: \"%s\" is not a JSON pointer "
					"(RFC 6901: \"\" or \"/a/b\", with ~0 and ~1 escapes)",
					pointer ? pointer : "(null)");
	}
	if (ig->n == ig->cap) {
		ig->cap = ig->cap ? 2 * ig->cap : 8;
		ig->rules = gitops_realloc(ig->rules, ig->cap * sizeof(*ig->rules));
	}
	struct rule *r = &ig->rules[ig->n++];
	r->group = selector_dup(group);
	r->kind = selector_dup(kind);
	r->namespace_ = selector_dup(namespace_);
	r->name = selector_dup(name);
	r->tokens = tokens;
	r->ntokens = n;
	return 0;
}

void drift_ignore_free(drift_ignore *ig)
{
	if (!ig)
		return;
	for (size_t i = 0; i < ig->n; i++) {
		struct rule *r = &ig->rules[i];
		free(r->group);
		free(r->kind);
		free(r->namespace_);
		free(r->name);
		free_tokens(r->tokens, r->ntokens);
	}
	free(ig->rules);
	free(ig);
}

static int sel_match(const char *sel, const char *value)
{
	return !sel || strcmp(sel, value ? value : "") == 0;
}

static int rule_matches(const struct rule *r, const char *group, const char *kind,
			const char *namespace_, const char *name)
{
	return sel_match(r->group, group) && sel_match(r->kind, kind) &&
	       sel_match(r->namespace_, namespace_) && sel_match(r->name, name);
}

/* An array index token: digits only, no leading zero (RFC 6901). */
static int array_index(const char *tok, size_t *idx)
{
	if (!*tok || (tok[0] == '0' && tok[1]))
		return 0;
	size_t v = 0;
	for (const char *p = tok; *p; p++) {
		if (*p < '0' || *p > '9' || v > (size_t)1 << 40)
			return 0;
		v = v * 10 + (size_t)(*p - '0');
	}
	*idx = v;
	return 1;
}

static void delete_path(json_t *v, char **tokens, size_t n)
{
	for (size_t i = 0; v && i + 1 < n; i++) {
		size_t idx;
		if (json_is_object(v))
			v = json_object_get(v, tokens[i]);
		else if (json_is_array(v) && array_index(tokens[i], &idx))
			v = json_array_get(v, idx);
		else
			return;
	}
	size_t idx;
	if (json_is_object(v))
		json_object_del(v, tokens[n - 1]);
	else if (json_is_array(v) && array_index(tokens[n - 1], &idx))
		json_array_remove(v, idx);
}

void drift__ignore_apply(const drift_ignore *ig, const char *group, const char *kind,
			 const char *namespace_, const char *name, json_t *object)
{
	for (size_t i = 0; ig && i < ig->n; i++) {
		const struct rule *r = &ig->rules[i];
		if (r->ntokens && rule_matches(r, group, kind, namespace_, name))
			delete_path(object, r->tokens, r->ntokens);
	}
}

int drift__ignore_paths(const drift_ignore *ig, const char *group, const char *kind,
			const char *namespace_, const char *name)
{
	for (size_t i = 0; ig && i < ig->n; i++)
		if (ig->rules[i].ntokens && rule_matches(&ig->rules[i], group, kind, namespace_, name))
			return 1;
	return 0;
}

int drift__ignore_whole(const drift_ignore *ig, const char *group, const char *kind,
			const char *namespace_, const char *name)
{
	for (size_t i = 0; ig && i < ig->n; i++)
		if (ig->rules[i].ntokens == 0 &&
		    rule_matches(&ig->rules[i], group, kind, namespace_, name))
			return 1;
	return 0;
}
