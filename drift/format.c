/* format: renders a drift result for people (unified-diff-style text, one table line) and for
 * programs (JSON). Values come from the result, which is already masked for Secrets. */
#include <stdlib.h>
#include <string.h>

#include "drift/drift.h"
#include "drift/drift_internal.h"

#define RED "\033[31m"
#define GREEN "\033[32m"
#define CYAN "\033[36m"
#define BOLD "\033[1m"
#define RESET "\033[0m"

static void scalar(gitops_buf *b, const json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	gitops_buf_puts(b, s ? s : "?");
	free(s);
}

/* YAML-ish rendering of `v` at `indent`, one line per scalar, keys unquoted, scalars as JSON. */
static void yamlish(gitops_buf *b, const json_t *v, int indent)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		json_object_foreach((json_t *)v, k, c) {
			gitops_buf_printf(b, "%*s%s:", indent, "", k);
			if ((json_is_object(c) && json_object_size(c)) ||
			    (json_is_array(c) && json_array_size(c))) {
				gitops_buf_putc(b, '\n');
				yamlish(b, c, indent + 2);
			} else {
				gitops_buf_putc(b, ' ');
				scalar(b, c);
				gitops_buf_putc(b, '\n');
			}
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach((json_t *)v, i, c) {
			if ((json_is_object(c) && json_object_size(c)) ||
			    (json_is_array(c) && json_array_size(c))) {
				/* render the item two deeper, then put "- " over its first indent */
				size_t at = b->len;
				yamlish(b, c, indent + 2);
				b->ptr[at + (size_t)indent] = '-';
			} else {
				gitops_buf_printf(b, "%*s- ", indent, "");
				scalar(b, c);
				gitops_buf_putc(b, '\n');
			}
		}
	} else {
		gitops_buf_printf(b, "%*s", indent, "");
		scalar(b, v);
		gitops_buf_putc(b, '\n');
	}
}

/* Appends `v` as lines each starting with `sign`, coloured when asked. */
static void side(gitops_buf *out, char sign, const json_t *v, unsigned flags)
{
	if (!v)
		return;
	gitops_buf text = GITOPS_BUF_INIT;
	yamlish(&text, v, 0);
	const char *p = gitops_buf_cstr(&text);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (flags & DRIFT_FORMAT_COLOR)
			gitops_buf_puts(out, sign == '-' ? RED : GREEN);
		gitops_buf_putc(out, sign);
		gitops_buf_putc(out, ' ');
		gitops_buf_put(out, p, n);
		if (flags & DRIFT_FORMAT_COLOR)
			gitops_buf_puts(out, RESET);
		gitops_buf_putc(out, '\n');
		p += n + (nl ? 1 : 0);
	}
	gitops_buf_free(&text);
}

static void identity(gitops_buf *b, const drift_result *r)
{
	if (*r->namespace_)
		gitops_buf_printf(b, "%s %s/%s", r->kind, r->namespace_, r->name);
	else
		gitops_buf_printf(b, "%s %s", r->kind, r->name);
}

int drift_result_format_diff(gitops_buf *out, const drift_result *r, unsigned flags)
{
	int color = (flags & DRIFT_FORMAT_COLOR) != 0;
	if (r->state == DRIFT_IN_SYNC)
		return 0;
	gitops_buf_puts(out, color ? BOLD "--- live " : "--- live ");
	identity(out, r);
	gitops_buf_puts(out, r->state == DRIFT_MISSING ? " (absent)" : "");
	gitops_buf_puts(out, color ? RESET "\n" BOLD "+++ desired " : "\n+++ desired ");
	identity(out, r);
	gitops_buf_puts(out, r->state == DRIFT_EXTRA ? " (no longer desired)" : "");
	gitops_buf_puts(out, color ? RESET "\n" : "\n");
	if (r->state == DRIFT_MISSING || r->state == DRIFT_EXTRA) {
		gitops_buf_printf(out, "%s@@ . @@%s\n", color ? CYAN : "", color ? RESET : "");
		side(out, r->state == DRIFT_MISSING ? '+' : '-', r->object, flags);
		return 0;
	}
	for (size_t i = 0; i < r->nfields; i++) {
		const drift_field *f = &r->fields[i];
		gitops_buf_printf(out, "%s@@ %s @@%s\n", color ? CYAN : "", f->path,
				  color ? RESET : "");
		side(out, '-', f->live, flags);
		side(out, '+', f->desired, flags);
	}
	return 0;
}

int drift_result_format_summary(gitops_buf *out, const drift_result *r)
{
	gitops_buf_printf(out, "%-8s  ", drift_state_name(r->state));
	identity(out, r);
	for (size_t i = 0; i < r->nfields; i++)
		gitops_buf_printf(out, "%s%s", i ? ", " : "  ", r->fields[i].path);
	gitops_buf_putc(out, '\n');
	return 0;
}

int drift_result_to_json(json_t **out, const drift_result *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "apiVersion", json_string(r->api_version));
	json_object_set_new(o, "group", json_string(r->group));
	json_object_set_new(o, "kind", json_string(r->kind));
	json_object_set_new(o, "namespace", json_string(r->namespace_));
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "state", json_string(drift_state_name(r->state)));
	json_t *fields = json_array();
	for (size_t i = 0; i < r->nfields; i++) {
		const drift_field *f = &r->fields[i];
		json_t *jf = json_object();
		json_object_set_new(jf, "path", json_string(f->path));
		if (f->desired)
			json_object_set(jf, "desired", (json_t *)f->desired);
		if (f->live)
			json_object_set(jf, "live", (json_t *)f->live);
		json_array_append_new(fields, jf);
	}
	json_object_set_new(o, "fields", fields);
	*out = o;
	return 0;
}
