/* manifests/config.c: the pipeline config (gitops.yaml) -> plain C structs. Every unknown key and
 * every bad value is an error naming file:line:col; the README documents each key. */
#include "manifests/manifests.h"
#include "common/yaml.h"

#include <ctype.h>
#include <libfyaml.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cctx {
	const char *file;
	int rc;
};

struct where {
	int line, col; /* 1-based */
};

static struct where node_where(struct fy_node *n, struct where fallback)
{
	if (!n)
		return fallback;
	struct fy_token *t = NULL;
	if (fy_node_get_type(n) == FYNT_SCALAR) {
		t = fy_node_get_scalar_token(n);
	} else if (fy_node_get_type(n) == FYNT_MAPPING) {
		void *it = NULL;
		struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
		if (p)
			return node_where(fy_node_pair_key(p), fallback);
	} else {
		void *it = NULL;
		struct fy_node *c = fy_node_sequence_iterate(n, &it);
		if (c)
			return node_where(c, fallback);
	}
	if (t) {
		const struct fy_mark *m = fy_token_start_mark(t);
		if (m)
			return (struct where){m->line + 1, m->column + 1};
	}
	return fallback;
}

static int cerr(struct cctx *c, struct where w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cerr(struct cctx *c, struct where w, const char *fmt, ...)
{
	if (c->rc)
		return c->rc; /* keep the first error */
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_printf(&b, "%s:%d:%d: ", c->file, w.line, w.col);
	va_list ap;
	va_start(ap, fmt);
	gitops_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	c->rc = gitops_error_set(GITOPS_EINVALID, "%s", gitops_buf_cstr(&b));
	gitops_buf_free(&b);
	return c->rc;
}

/* ---- scalar readers ------------------------------------------------------------------------ */

static bool is_null_node(struct fy_node *n)
{
	if (!n)
		return true;
	if (fy_node_get_type(n) != FYNT_SCALAR)
		return false;
	size_t len;
	const char *s = fy_node_get_scalar(n, &len);
	if (fy_token_scalar_style(fy_node_get_scalar_token(n)) != FYSS_PLAIN)
		return false;
	return !s || len == 0 || (len == 1 && *s == '~') || (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static char *get_str(struct cctx *c, struct fy_node *n, struct where kw, const char *key)
{
	if (is_null_node(n)) {
		cerr(c, node_where(n, kw), "%s: expected a string, got nothing", key);
		return NULL;
	}
	if (fy_node_get_type(n) != FYNT_SCALAR) {
		cerr(c, node_where(n, kw), "%s: expected a string, got a %s", key,
		     fy_node_get_type(n) == FYNT_MAPPING ? "mapping" : "sequence");
		return NULL;
	}
	size_t len;
	const char *s = fy_node_get_scalar(n, &len);
	if (!len || memchr(s, '\0', len)) {
		cerr(c, node_where(n, kw), "%s: must not be empty", key);
		return NULL;
	}
	return gitops_strndup(s, len);
}

/* A plain scalar as common/yaml.c's reader resolves it (kubectl's YAML 1.1 rules: yes/on/y are
 * true, 0x10 is 16, 1_000 is 1000); NULL for a quoted one, which is always a string. */
static json_t *resolved(struct fy_node *n, const char *s)
{
	if (fy_token_scalar_style(fy_node_get_scalar_token(n)) != FYSS_PLAIN)
		return NULL;
	const char *err = NULL;
	return gitops_yaml_resolve_plain(s, &err);
}

static bool get_bool(struct cctx *c, struct fy_node *n, struct where kw, const char *key)
{
	char *s = get_str(c, n, kw, key);
	if (!s)
		return false;
	json_t *v = resolved(n, s);
	if (!json_is_boolean(v))
		cerr(c, node_where(n, kw), "%s: expected true or false, got \"%s\"", key, s);
	bool b = json_is_true(v);
	json_decref(v);
	free(s);
	return b;
}

static long long get_int(struct cctx *c, struct fy_node *n, struct where kw, const char *key,
			 long long min, long long max)
{
	char *s = get_str(c, n, kw, key);
	if (!s)
		return 0;
	json_t *v = resolved(n, s);
	long long i = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
	if (!json_is_integer(v) || i < min || i > max)
		cerr(c, node_where(n, kw), "%s: expected an integer from %lld to %lld, got \"%s\"", key, min, max, s);
	json_decref(v);
	free(s);
	return i;
}

static bool dns_label(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (!n || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

static bool safe_rel_path(const char *p)
{
	if (!*p || p[0] == '/' || strchr(p, '\\'))
		return false;
	const char *s = p;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 2 && !strncmp(s, "..", 2))
			return false;
		if (!e)
			break;
		s = e + 1;
	}
	return true;
}

/* Rewrites a relative path in place without "." components, repeated or trailing slashes
 * ("./apps//a/" -> "apps/a"); "." stays for the root. '..' is left for safe_rel_path to refuse. */
static void normalize_rel(char *p)
{
	char *w = p;
	const char *s = p;
	while (*s) {
		while (*s == '/')
			s++;
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n && !(n == 1 && s[0] == '.')) {
			if (w != p)
				*w++ = '/';
			memmove(w, s, n);
			w += n;
		}
		s += n;
	}
	if (w == p && *p)
		*w++ = '.';
	*w = '\0';
}

int mf_parse_duration(long long *out_ms, const char *text)
{
	const char *p = text;
	long long total = 0;
	if (!*p)
		return gitops_error_set(GITOPS_EINVALID, "empty duration");
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return gitops_error_set(GITOPS_EINVALID, "bad duration \"%s\" (want e.g. 30s, 5m, 1h30m)", text);
		char *end;
		long long v = strtoll(p, &end, 10);
		long long mult;
		if (!strncmp(end, "ms", 2)) {
			mult = 1;
			end += 2;
		} else if (*end == 's') {
			mult = 1000;
			end++;
		} else if (*end == 'm') {
			mult = 60000;
			end++;
		} else if (*end == 'h') {
			mult = 3600000;
			end++;
		} else {
			return gitops_error_set(GITOPS_EINVALID, "bad duration \"%s\" (want e.g. 30s, 5m, 1h30m)", text);
		}
		if (v > 1000000000LL)
			return gitops_error_set(GITOPS_EINVALID, "duration \"%s\" is too long", text);
		total += v * mult;
		p = end;
	}
	*out_ms = total;
	return 0;
}

/* ---- mapping walker: checks each key against the allowed list -------------------------------- */

/* Calls `fn` for each pair of mapping `n`; unknown keys (not in `allowed`) are errors. */
typedef void (*pair_fn)(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data);

static void walk_map(struct cctx *c, struct fy_node *n, struct where at, const char *what,
		     const char *const *allowed, pair_fn fn, void *data)
{
	if (!n || fy_node_get_type(n) != FYNT_MAPPING) {
		cerr(c, node_where(n, at), "%s: expected a mapping", what);
		return;
	}
	void *it = NULL;
	struct fy_node_pair *p;
	while (!c->rc && (p = fy_node_mapping_iterate(n, &it))) {
		struct fy_node *k = fy_node_pair_key(p);
		struct where kw = node_where(k, at);
		if (!k || fy_node_get_type(k) != FYNT_SCALAR) {
			cerr(c, kw, "%s: keys must be strings", what);
			return;
		}
		size_t len;
		const char *ks = fy_node_get_scalar(k, &len);
		char *key = gitops_strndup(ks ? ks : "", len);
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			if (!strcmp(allowed[i], key))
				ok = true;
		if (!ok) {
			gitops_buf list = GITOPS_BUF_INIT;
			for (size_t i = 0; allowed[i]; i++)
				gitops_buf_printf(&list, "%s%s", i ? ", " : "", allowed[i]);
			cerr(c, kw, "%s: unknown key \"%s\" (known: %s)", what, key, gitops_buf_cstr(&list));
			gitops_buf_free(&list);
		} else {
			fn(c, key, fy_node_pair_value(p), kw, data);
		}
		free(key);
	}
}

/* Iterates a sequence; `fn` gets each item. Null means an empty list. */
typedef void (*item_fn)(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data);

static void walk_seq(struct cctx *c, struct fy_node *n, struct where at, const char *what,
		     item_fn fn, void *data)
{
	if (is_null_node(n))
		return;
	if (fy_node_get_type(n) != FYNT_SEQUENCE) {
		cerr(c, node_where(n, at), "%s: expected a list", what);
		return;
	}
	void *it = NULL;
	struct fy_node *item;
	size_t i = 0;
	while (!c->rc && (item = fy_node_sequence_iterate(n, &it)))
		fn(c, item, node_where(item, at), i++, data);
}

static void str_item(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data)
{
	struct {
		char ***v;
		size_t *n;
		const char *what;
	} *d = data;
	char *s = get_str(c, item, at, d->what);
	if (!s)
		return;
	*d->v = gitops_realloc(*d->v, (*d->n + 1) * sizeof(char *));
	(*d->v)[(*d->n)++] = s;
}

static void read_strv(struct cctx *c, struct fy_node *n, struct where at, const char *what,
		      char ***v, size_t *count)
{
	struct {
		char ***v;
		size_t *n;
		const char *what;
	} d = {v, count, what};
	walk_seq(c, n, at, what, str_item, &d);
}

/* ---- ignore rules ---------------------------------------------------------------------------- */

struct ignore_list {
	struct mf_ignore_rule **v;
	size_t *n;
};

static void ignore_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_ignore_rule *r = data;
	if (!strcmp(key, "group")) {
		/* the core group is "" and may be written as such */
		if (fy_node_get_type(val) == FYNT_SCALAR) {
			size_t len;
			const char *s = fy_node_get_scalar(val, &len);
			r->group = gitops_strndup(s ? s : "", len);
		} else {
			cerr(c, node_where(val, kw), "ignore.group: expected a string");
		}
	} else if (!strcmp(key, "kind")) {
		r->kind = get_str(c, val, kw, "ignore.kind");
	} else if (!strcmp(key, "name")) {
		r->name = get_str(c, val, kw, "ignore.name");
	} else if (!strcmp(key, "namespace")) {
		r->namespace = get_str(c, val, kw, "ignore.namespace");
	} else if (!strcmp(key, "jsonPointers")) {
		read_strv(c, val, kw, "ignore.jsonPointers", &r->json_pointers, &r->n_json_pointers);
		for (size_t i = 0; !c->rc && i < r->n_json_pointers; i++)
			if (r->json_pointers[i][0] != '/')
				cerr(c, node_where(val, kw), "ignore.jsonPointers: \"%s\" is not a JSON pointer (must start with /)",
				     r->json_pointers[i]);
	}
}

static void ignore_item(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data)
{
	struct ignore_list *l = data;
	static const char *const keys[] = {"group", "kind", "name", "namespace", "jsonPointers", NULL};
	*l->v = gitops_realloc(*l->v, (*l->n + 1) * sizeof(**l->v));
	struct mf_ignore_rule *r = &(*l->v)[(*l->n)++];
	memset(r, 0, sizeof(*r));
	r->line = at.line;
	walk_map(c, item, at, "ignore", keys, ignore_pair, r);
	if (!c->rc && !r->n_json_pointers)
		cerr(c, at, "ignore: jsonPointers is required (the fields to ignore)");
}

/* ---- apps ------------------------------------------------------------------------------------ */

static void helm_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_app *a = data;
	if (!strcmp(key, "releaseName")) {
		a->release_name = get_str(c, val, kw, "helm.releaseName");
		if (a->release_name && !dns_label(a->release_name, 53))
			cerr(c, node_where(val, kw), "helm.releaseName: \"%s\" is not a valid release name (lowercase letters, digits, '-', at most 53)",
			     a->release_name);
	} else if (!strcmp(key, "values")) {
		read_strv(c, val, kw, "helm.values", &a->values, &a->n_values);
		for (size_t i = 0; !c->rc && i < a->n_values; i++)
			if (!safe_rel_path(a->values[i]) || (normalize_rel(a->values[i]), !strcmp(a->values[i], ".")))
				cerr(c, node_where(val, kw), "helm.values: \"%s\" must be a path relative to the repository root, without '..'",
				     a->values[i]);
	}
}

static void app_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_app *a = data;
	if (!strcmp(key, "name")) {
		a->name = get_str(c, val, kw, "app name");
		if (a->name && !dns_label(a->name, 63))
			cerr(c, node_where(val, kw), "app name \"%s\" must be a DNS label (lowercase letters, digits, '-')", a->name);
	} else if (!strcmp(key, "path")) {
		a->path = get_str(c, val, kw, "path");
		if (a->path) {
			if (safe_rel_path(a->path))
				normalize_rel(a->path); /* "./apps/a/" is apps/a */
			else
				cerr(c, node_where(val, kw), "path \"%s\" must be relative to the repository root, without '..'", a->path);
		}
	} else if (!strcmp(key, "renderer")) {
		char *s = get_str(c, val, kw, "renderer");
		if (!s)
			return;
		if (!strcmp(s, "plain"))
			a->renderer = MF_RENDERER_PLAIN;
		else if (!strcmp(s, "kustomize"))
			a->renderer = MF_RENDERER_KUSTOMIZE;
		else if (!strcmp(s, "helm"))
			a->renderer = MF_RENDERER_HELM;
		else if (!strcmp(s, "auto"))
			a->renderer = MF_RENDERER_AUTO;
		else
			cerr(c, node_where(val, kw), "renderer: \"%s\" is not one of plain, kustomize, helm, auto", s);
		free(s);
	} else if (!strcmp(key, "namespace")) {
		a->namespace = get_str(c, val, kw, "namespace");
		if (a->namespace && !dns_label(a->namespace, 63))
			cerr(c, node_where(val, kw), "namespace \"%s\" is not a valid namespace name", a->namespace);
	} else if (!strcmp(key, "helm")) {
		static const char *const keys[] = {"releaseName", "values", NULL};
		walk_map(c, val, kw, "helm", keys, helm_pair, a);
	}
}

struct app_list {
	struct mf_environment *env;
};

static void app_item(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data)
{
	struct mf_environment *e = data;
	static const char *const keys[] = {"name", "path", "renderer", "namespace", "helm", NULL};
	e->apps = gitops_realloc(e->apps, (e->n_apps + 1) * sizeof(*e->apps));
	struct mf_app *a = &e->apps[e->n_apps++];
	memset(a, 0, sizeof(*a));
	a->line = at.line;
	walk_map(c, item, at, "app", keys, app_pair, a);
	if (c->rc)
		return;
	if (!a->name)
		cerr(c, at, "app: name is required");
	else if (!a->path)
		cerr(c, at, "app %s: path is required", a->name);
	else if ((a->release_name || a->n_values) && a->renderer != MF_RENDERER_HELM && a->renderer != MF_RENDERER_AUTO)
		cerr(c, at, "app %s: helm settings given but renderer is %s", a->name, mf_renderer_name(a->renderer));
	for (size_t k = 0; !c->rc && k + 1 < e->n_apps; k++)
		if (!strcmp(e->apps[k].name, a->name))
			cerr(c, at, "app \"%s\" is listed twice in environment %s (first at line %d)", a->name,
			     e->name ? e->name : "?", e->apps[k].line);
}

/* ---- environments ---------------------------------------------------------------------------- */

static void sync_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_environment *e = data;
	if (!strcmp(key, "auto"))
		e->sync_auto = get_bool(c, val, kw, "sync.auto");
	else if (!strcmp(key, "prune"))
		e->sync_prune = get_bool(c, val, kw, "sync.prune");
	else if (!strcmp(key, "selfHeal"))
		e->sync_self_heal = get_bool(c, val, kw, "sync.selfHeal");
	else if (!strcmp(key, "adopt"))
		e->sync_adopt = get_bool(c, val, kw, "sync.adopt");
}

static void approver_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_approver *a = data;
	if (!strcmp(key, "name"))
		a->name = get_str(c, val, kw, "approver name");
	else if (!strcmp(key, "key")) {
		a->key = get_str(c, val, kw, "approver key");
		unsigned char pk[32];
		/* a key that cannot verify anything would leave a gate no one can open: refused now */
		if (a->key && !c->rc && mf_key_parse_ed25519(pk, a->key))
			cerr(c, node_where(val, kw), "approver key: %s", gitops_error_last());
	}
}

static void approver_item(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data)
{
	struct mf_environment *e = data;
	static const char *const keys[] = {"name", "key", NULL};
	e->approvers = gitops_realloc(e->approvers, (e->n_approvers + 1) * sizeof(*e->approvers));
	struct mf_approver *a = &e->approvers[e->n_approvers++];
	memset(a, 0, sizeof(*a));
	walk_map(c, item, at, "approver", keys, approver_pair, a);
	if (!c->rc && (!a->name || !a->key))
		cerr(c, at, "approver: name and key are required");
	for (size_t k = 0; !c->rc && k + 1 < e->n_approvers; k++)
		if (!strcmp(e->approvers[k].name, a->name))
			cerr(c, at, "approver \"%s\" is listed twice", a->name);
}

static void approval_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_environment *e = data;
	if (!strcmp(key, "required"))
		e->approval_required = (int)get_int(c, val, kw, "approval.required", 0, 100);
	else if (!strcmp(key, "approvers"))
		walk_seq(c, val, kw, "approval.approvers", approver_item, e);
}

/* ---- public keys: reporters (ed25519:<base64>) and commit signers (OpenSSH lines) -------- */

/* Strict base64 (no newline inside a key line) into out, at most `max` bytes; returns the
 * decoded length or -1. */
static long b64_exact(unsigned char *out, size_t max, const char *s, size_t n)
{
	unsigned char *raw;
	size_t len;
	if (!n || gitops_base64_decode(&raw, &len, s, n, 0))
		return -1;
	long got = len <= max ? (long)len : -1;
	if (got >= 0)
		memcpy(out, raw, len);
	gitops_base64_free(raw, len);
	return got;
}

int mf_key_parse_ed25519(unsigned char out[32], const char *line)
{
	static const char pre[] = "ed25519:";
	if (!line || strncmp(line, pre, sizeof(pre) - 1))
		return gitops_error_set(GITOPS_EINVALID, "not an Ed25519 public key line (want ed25519:<base64>, from gitops keygen)");
	const char *b = line + sizeof(pre) - 1;
	size_t n = strcspn(b, " \t\r\n");
	if (b[n] && b[n + strspn(b + n, " \t\r\n")])
		return gitops_error_set(GITOPS_EINVALID, "unexpected text after the Ed25519 key");
	if (b64_exact(out, 32, b, n) != 32)
		return gitops_error_set(GITOPS_EINVALID, "malformed Ed25519 key: want the base64 of 32 bytes");
	return 0;
}

int mf_key_parse_ssh(unsigned char out[32], unsigned char blob[51], const char *line)
{
	static const char pre[] = "ssh-ed25519 ";
	if (!line || strncmp(line, pre, sizeof(pre) - 1))
		return gitops_error_set(GITOPS_EINVALID, "not an OpenSSH Ed25519 public key line (want \"ssh-ed25519 AAAA... "
					"[comment]\", e.g. ~/.ssh/id_ed25519.pub; other key types are not supported)");
	const char *b = line + sizeof(pre) - 1;
	b += strspn(b, " \t");
	size_t n = strcspn(b, " \t\r\n");
	unsigned char raw[64];
	/* string "ssh-ed25519" (4 + 11) + string key (4 + 32) = 51 bytes */
	static const unsigned char head[] = {0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32};
	if (b64_exact(raw, sizeof(raw), b, n) != 51 || memcmp(raw, head, sizeof(head)))
		return gitops_error_set(GITOPS_EINVALID, "malformed ssh-ed25519 key: the base64 blob is not an Ed25519 public key");
	memcpy(out, raw + sizeof(head), 32);
	if (blob)
		memcpy(blob, raw, 51);
	return 0;
}

struct signer_list {
	struct mf_signer **v;
	size_t *n;
	const char *what; /* "reporters" or "commitSigners" */
	bool ssh;
};

static void signer_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_signer *a = data;
	if (!strcmp(key, "name")) {
		a->name = get_str(c, val, kw, "name");
	} else if (!strcmp(key, "key")) {
		a->key = get_str(c, val, kw, "key");
		a->key_line = node_where(val, kw).line;
	}
}

static void signer_item(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data)
{
	struct signer_list *l = data;
	static const char *const keys[] = {"name", "key", NULL};
	*l->v = gitops_realloc(*l->v, (*l->n + 1) * sizeof(**l->v));
	struct mf_signer *a = &(*l->v)[(*l->n)++];
	memset(a, 0, sizeof(*a));
	walk_map(c, item, at, l->what, keys, signer_pair, a);
	if (!c->rc && (!a->name || !a->key))
		cerr(c, at, "%s: name and key are required", l->what);
	if (!c->rc && (l->ssh ? mf_key_parse_ssh(a->raw, a->blob, a->key) : mf_key_parse_ed25519(a->raw, a->key)))
		cerr(c, (struct where){a->key_line, at.col}, "%s %s: %s", l->what, a->name, gitops_error_last());
	for (size_t k = 0; !c->rc && k + 1 < *l->n; k++) {
		if (!strcmp((*l->v)[k].name, a->name))
			cerr(c, at, "%s: \"%s\" is listed twice", l->what, a->name);
		else if (!memcmp((*l->v)[k].raw, a->raw, 32))
			cerr(c, at, "%s: %s has the same key as %s", l->what, a->name, (*l->v)[k].name);
	}
}

static void rollback_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_environment *e = data;
	if (!strcmp(key, "onFailure")) {
		e->rollback_on_failure = get_bool(c, val, kw, "rollback.onFailure");
	} else if (!strcmp(key, "healthTimeout")) {
		char *s = get_str(c, val, kw, "rollback.healthTimeout");
		if (s && mf_parse_duration(&e->rollback_health_timeout_ms, s))
			cerr(c, node_where(val, kw), "rollback.healthTimeout: %s", gitops_error_last());
		free(s);
	}
}

static void cluster_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_environment *e = data;
	if (!strcmp(key, "context"))
		e->cluster_context = get_str(c, val, kw, "cluster.context");
	else if (!strcmp(key, "kubeconfig"))
		e->cluster_kubeconfig = get_str(c, val, kw, "cluster.kubeconfig");
}

static void env_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_environment *e = data;
	if (!strcmp(key, "name")) {
		e->name = get_str(c, val, kw, "environment name");
		if (e->name && !dns_label(e->name, 63))
			cerr(c, node_where(val, kw), "environment name \"%s\" must be a DNS label (lowercase letters, digits, '-')", e->name);
	} else if (!strcmp(key, "track")) {
		e->track = get_str(c, val, kw, "track");
	} else if (!strcmp(key, "from")) {
		e->from = get_str(c, val, kw, "from");
	} else if (!strcmp(key, "namespace")) {
		e->namespace = get_str(c, val, kw, "namespace");
		if (e->namespace && !dns_label(e->namespace, 63))
			cerr(c, node_where(val, kw), "namespace \"%s\" is not a valid namespace name", e->namespace);
	} else if (!strcmp(key, "cluster")) {
		static const char *const keys[] = {"context", "kubeconfig", NULL};
		walk_map(c, val, kw, "cluster", keys, cluster_pair, e);
	} else if (!strcmp(key, "apps")) {
		walk_seq(c, val, kw, "apps", app_item, e);
	} else if (!strcmp(key, "sync")) {
		static const char *const keys[] = {"auto", "prune", "selfHeal", "adopt", NULL};
		walk_map(c, val, kw, "sync", keys, sync_pair, e);
	} else if (!strcmp(key, "approval")) {
		static const char *const keys[] = {"required", "approvers", NULL};
		walk_map(c, val, kw, "approval", keys, approval_pair, e);
	} else if (!strcmp(key, "rollback")) {
		static const char *const keys[] = {"onFailure", "healthTimeout", NULL};
		walk_map(c, val, kw, "rollback", keys, rollback_pair, e);
	} else if (!strcmp(key, "ignore")) {
		struct ignore_list l = {&e->ignore, &e->n_ignore};
		walk_seq(c, val, kw, "ignore", ignore_item, &l);
	} else if (!strcmp(key, "reporters")) {
		struct signer_list l = {&e->reporters, &e->n_reporters, "reporters", false};
		walk_seq(c, val, kw, "reporters", signer_item, &l);
	} else if (!strcmp(key, "commitSigners")) {
		struct signer_list l = {&e->commit_signers, &e->n_commit_signers, "commitSigners", true};
		walk_seq(c, val, kw, "commitSigners", signer_item, &l);
	}
}

/* ---- notifications ---------------------------------------------------------------------------- */

struct from {
	char **env, **file;
	const char *what;
};

static void from_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct from *f = data;
	char **dst = !strcmp(key, "env") ? f->env : f->file;
	free(*dst);
	*dst = get_str(c, val, kw, f->what);
}

static void notify_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct mf_notification *n = data;
	static const char *const from_keys[] = {"env", "file", NULL};
	if (!strcmp(key, "name")) {
		free(n->name);
		n->name = get_str(c, val, kw, "notifications.name");
	} else if (!strcmp(key, "type")) {
		char *t = get_str(c, val, kw, "notifications.type");
		if (t && !strcmp(t, "slack"))
			n->kind = MF_NOTIFY_SLACK;
		else if (t && strcmp(t, "webhook"))
			cerr(c, node_where(val, kw), "notifications.type: \"%s\" is not known (webhook or slack)", t);
		free(t);
	} else if (!strcmp(key, "urlFrom")) {
		struct from f = {&n->url_env, &n->url_file, "notifications.urlFrom"};
		walk_map(c, val, kw, "notifications.urlFrom", from_keys, from_pair, &f);
	} else if (!strcmp(key, "secretFrom")) {
		struct from f = {&n->secret_env, &n->secret_file, "notifications.secretFrom"};
		walk_map(c, val, kw, "notifications.secretFrom", from_keys, from_pair, &f);
	} else if (!strcmp(key, "events")) {
		read_strv(c, val, kw, "notifications.events", &n->events, &n->n_events);
	} else if (!strcmp(key, "environments")) {
		read_strv(c, val, kw, "notifications.environments", &n->envs, &n->n_envs);
	}
}

static void notify_item(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data)
{
	struct mf_config *cfg = data;
	static const char *const keys[] = {"name", "type", "urlFrom", "secretFrom", "events", "environments", NULL};
	cfg->notifications = gitops_realloc(cfg->notifications, (cfg->n_notifications + 1) * sizeof(*cfg->notifications));
	struct mf_notification *n = &cfg->notifications[cfg->n_notifications++];
	memset(n, 0, sizeof(*n));
	n->line = at.line;
	walk_map(c, item, at, "notifications", keys, notify_pair, n);
	if (c->rc)
		return;
	if (!n->name)
		n->name = gitops_sprintf("notification-%zu", i + 1);
	if (!n->url_env == !n->url_file)
		cerr(c, at, "notifications[%zu] (%s): urlFrom wants exactly one of env: VAR or file: PATH (the URL is a "
			    "secret: never in gitops.yaml)", i, n->name);
	else if (n->kind == MF_NOTIFY_WEBHOOK && !n->secret_env == !n->secret_file)
		cerr(c, at, "notifications[%zu] (%s): a webhook signs its body: secretFrom wants exactly one of env: VAR "
			    "or file: PATH", i, n->name);
	else if (n->kind == MF_NOTIFY_SLACK && (n->secret_env || n->secret_file))
		cerr(c, at, "notifications[%zu] (%s): slack takes no secretFrom (the URL is the secret)", i, n->name);
	else if (!n->n_events)
		cerr(c, at, "notifications[%zu] (%s): events: name at least one event type (e.g. sync.failed) or \"*\"",
		     i, n->name);
}

struct root {
	struct mf_config *cfg;
	struct mf_ignore_rule *ignore;
	size_t n_ignore;
	bool saw_api, saw_kind, saw_envs;
};

static void env_item(struct cctx *c, struct fy_node *item, struct where at, size_t i, void *data)
{
	struct mf_config *cfg = data;
	static const char *const keys[] = {"name", "track", "from", "namespace", "cluster", "apps",
					   "sync", "approval", "rollback", "ignore", "reporters", "commitSigners", NULL};
	cfg->envs = gitops_realloc(cfg->envs, (cfg->n_envs + 1) * sizeof(*cfg->envs));
	struct mf_environment *e = &cfg->envs[cfg->n_envs++];
	memset(e, 0, sizeof(*e));
	e->line = at.line;
	e->rollback_health_timeout_ms = 5 * 60 * 1000;
	walk_map(c, item, at, "environment", keys, env_pair, e);
	if (c->rc)
		return;
	if (!e->name)
		cerr(c, at, "environment: name is required");
	else if (e->track && e->from)
		cerr(c, at, "environment %s: track and from exclude each other (track a branch, or be promoted from an environment)", e->name);
	else if (e->approval_required > (int)e->n_approvers)
		cerr(c, at, "environment %s: approval.required is %d but only %zu approvers are listed", e->name,
		     e->approval_required, e->n_approvers);
	for (size_t k = 0; !c->rc && k + 1 < cfg->n_envs; k++)
		if (!strcmp(cfg->envs[k].name, e->name))
			cerr(c, at, "environment \"%s\" is defined twice (first at line %d)", e->name, cfg->envs[k].line);
	if (!c->rc && e->from) {
		bool found = false;
		for (size_t k = 0; k + 1 < cfg->n_envs; k++)
			if (!strcmp(cfg->envs[k].name, e->from))
				found = true;
		if (!found)
			cerr(c, at, "environment %s: from \"%s\" is not an environment defined above it", e->name, e->from);
	}
}

static void root_pair(struct cctx *c, const char *key, struct fy_node *val, struct where kw, void *data)
{
	struct root *r = data;
	if (!strcmp(key, "apiVersion")) {
		char *s = get_str(c, val, kw, "apiVersion");
		if (s && strcmp(s, "gitops/v1"))
			cerr(c, node_where(val, kw), "apiVersion: \"%s\" is not supported (want gitops/v1)", s);
		free(s);
		r->saw_api = true;
	} else if (!strcmp(key, "kind")) {
		char *s = get_str(c, val, kw, "kind");
		if (s && strcmp(s, "Pipeline"))
			cerr(c, node_where(val, kw), "kind: \"%s\" is not supported (want Pipeline)", s);
		free(s);
		r->saw_kind = true;
	} else if (!strcmp(key, "name")) {
		free(r->cfg->name);
		r->cfg->name = get_str(c, val, kw, "name");
		if (r->cfg->name && !dns_label(r->cfg->name, 63))
			cerr(c, node_where(val, kw), "name \"%s\" must be a DNS label (at most 63 lowercase letters, "
			     "digits and '-', starting and ending with a letter or digit): it names the pipeline in "
			     "labels and in the inventory", r->cfg->name);
	} else if (!strcmp(key, "branch")) {
		free(r->cfg->branch);
		r->cfg->branch = get_str(c, val, kw, "branch");
	} else if (!strcmp(key, "environments")) {
		walk_seq(c, val, kw, "environments", env_item, r->cfg);
		r->saw_envs = true;
	} else if (!strcmp(key, "ignore")) {
		struct ignore_list l = {&r->ignore, &r->n_ignore};
		walk_seq(c, val, kw, "ignore", ignore_item, &l);
	} else if (!strcmp(key, "notifications")) {
		walk_seq(c, val, kw, "notifications", notify_item, r->cfg);
	}
}

static void ignore_free(struct mf_ignore_rule *r)
{
	free(r->group);
	free(r->kind);
	free(r->name);
	free(r->namespace);
	mf_strv_free(r->json_pointers, r->n_json_pointers);
}

static void ignore_copy(struct mf_ignore_rule *dst, const struct mf_ignore_rule *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->group = src->group ? gitops_strdup(src->group) : NULL;
	dst->kind = src->kind ? gitops_strdup(src->kind) : NULL;
	dst->name = src->name ? gitops_strdup(src->name) : NULL;
	dst->namespace = src->namespace ? gitops_strdup(src->namespace) : NULL;
	dst->n_json_pointers = src->n_json_pointers;
	dst->json_pointers = gitops_calloc(src->n_json_pointers ? src->n_json_pointers : 1, sizeof(char *));
	for (size_t i = 0; i < src->n_json_pointers; i++)
		dst->json_pointers[i] = gitops_strdup(src->json_pointers[i]);
	dst->line = src->line;
}

static int diag_error(const char *file, struct fy_diag *diag)
{
	void *it = NULL;
	struct fy_diag_error *de = fy_diag_errors_iterate(diag, &it);
	if (de)
		return gitops_error_set(GITOPS_EPARSE, "%s:%d:%d: %s", file, de->line + 1, de->column + 1,
					de->msg ? de->msg : "YAML syntax error");
	return gitops_error_set(GITOPS_EPARSE, "%s: YAML syntax error", file);
}

/* Refuses aliases: the config is small and explicit; expansions would hide what it says. */
static int no_aliases(struct cctx *c, struct fy_node *n)
{
	if (!n || c->rc)
		return c->rc;
	if (fy_node_is_alias(n))
		return cerr(c, node_where(n, (struct where){1, 1}), "aliases are not supported in the pipeline config");
	if (fy_node_get_type(n) == FYNT_MAPPING) {
		void *it = NULL;
		struct fy_node_pair *p;
		while ((p = fy_node_mapping_iterate(n, &it))) {
			no_aliases(c, fy_node_pair_key(p));
			no_aliases(c, fy_node_pair_value(p));
		}
	} else if (fy_node_get_type(n) == FYNT_SEQUENCE) {
		void *it = NULL;
		struct fy_node *it2;
		while ((it2 = fy_node_sequence_iterate(n, &it)))
			no_aliases(c, it2);
	}
	return c->rc;
}

int mf_config_parse(struct mf_config **out, const char *text, size_t len, const char *file)
{
	*out = NULL;
	file = file ? file : "gitops.yaml";
	if (len > MF_DEFAULT_MAX_FILE_SIZE)
		return gitops_error_set(GITOPS_EINVALID, "%s:1: file is too large", file);
	/* reuse the YAML reader's hazard checks (UTF-8, duplicates) before building the tree */
	json_t *probe = NULL;
	int rc = mf_yaml_parse(&probe, text, len, file, NULL);
	json_decref(probe);
	if (rc)
		return rc;

	struct fy_diag_cfg dcfg;
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	struct fy_diag *diag = fy_diag_create(&dcfg);
	if (!diag)
		return gitops_error_set(GITOPS_ERROR, "%s: cannot create YAML diagnostics", file);
	fy_diag_set_collect_errors(diag, true);
	struct fy_parse_cfg pcfg = {NULL, FYPCF_QUIET | FYPCF_COLLECT_DIAG, NULL, diag};
	struct fy_document *fyd = fy_document_build_from_string(&pcfg, text, len);
	if (!fyd) {
		rc = diag_error(file, diag);
		fy_diag_destroy(diag);
		return rc;
	}
	struct mf_config *cfg = gitops_calloc(1, sizeof(*cfg));
	cfg->file = gitops_strdup(file);
	cfg->branch = gitops_strdup("main");
	struct cctx c = {file, 0};
	struct root r = {cfg, NULL, 0, false, false, false};
	struct fy_node *root = fy_document_root(fyd);
	struct where top = {1, 1};
	static const char *const keys[] = {"apiVersion", "kind", "name", "branch", "environments", "ignore",
					   "notifications", NULL};
	if (!no_aliases(&c, root))
		walk_map(&c, root, top, "gitops.yaml", keys, root_pair, &r);
	if (!c.rc && !r.saw_api)
		cerr(&c, top, "apiVersion is required (gitops/v1)");
	if (!c.rc && !r.saw_kind)
		cerr(&c, top, "kind is required (Pipeline)");
	if (!c.rc && (!r.saw_envs || !cfg->n_envs))
		cerr(&c, top, "environments: at least one environment is required");
	for (size_t i = 0; !c.rc && i < cfg->n_envs; i++) {
		struct mf_environment *e = &cfg->envs[i];
		if (!e->track && !e->from)
			e->track = gitops_strdup(cfg->branch);
		if (r.n_ignore) {
			struct mf_ignore_rule *v = gitops_calloc(r.n_ignore + e->n_ignore, sizeof(*v));
			for (size_t k = 0; k < r.n_ignore; k++)
				ignore_copy(&v[k], &r.ignore[k]);
			if (e->n_ignore)
				memcpy(v + r.n_ignore, e->ignore, e->n_ignore * sizeof(*v));
			free(e->ignore);
			e->ignore = v;
			e->n_ignore += r.n_ignore;
		}
	}
	for (size_t k = 0; k < r.n_ignore; k++)
		ignore_free(&r.ignore[k]);
	free(r.ignore);
	fy_document_destroy(fyd);
	fy_diag_destroy(diag);
	if (c.rc) {
		mf_config_free(cfg);
		return c.rc;
	}
	*out = cfg;
	return 0;
}

int mf_config_load(struct mf_config **out, const char *path)
{
	*out = NULL;
	gitops_buf b = GITOPS_BUF_INIT;
	int rc = gitops_read_file(&b, path, MF_DEFAULT_MAX_FILE_SIZE);
	if (!rc)
		rc = mf_config_parse(out, b.ptr ? b.ptr : "", b.len, path);
	gitops_buf_free(&b);
	return rc;
}

void mf_config_free(struct mf_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_envs; i++) {
		struct mf_environment *e = &cfg->envs[i];
		free(e->name);
		free(e->track);
		free(e->from);
		free(e->namespace);
		free(e->cluster_context);
		free(e->cluster_kubeconfig);
		for (size_t k = 0; k < e->n_apps; k++) {
			struct mf_app *a = &e->apps[k];
			free(a->name);
			free(a->path);
			free(a->namespace);
			free(a->release_name);
			mf_strv_free(a->values, a->n_values);
		}
		free(e->apps);
		for (size_t k = 0; k < e->n_approvers; k++) {
			free(e->approvers[k].name);
			free(e->approvers[k].key);
		}
		free(e->approvers);
		for (size_t k = 0; k < e->n_reporters; k++) {
			free(e->reporters[k].name);
			free(e->reporters[k].key);
		}
		free(e->reporters);
		for (size_t k = 0; k < e->n_commit_signers; k++) {
			free(e->commit_signers[k].name);
			free(e->commit_signers[k].key);
		}
		free(e->commit_signers);
		for (size_t k = 0; k < e->n_ignore; k++)
			ignore_free(&e->ignore[k]);
		free(e->ignore);
	}
	free(cfg->envs);
	for (size_t i = 0; i < cfg->n_notifications; i++) {
		struct mf_notification *n = &cfg->notifications[i];
		free(n->name);
		free(n->url_env);
		free(n->url_file);
		free(n->secret_env);
		free(n->secret_file);
		mf_strv_free(n->events, n->n_events);
		mf_strv_free(n->envs, n->n_envs);
	}
	free(cfg->notifications);
	free(cfg->branch);
	free(cfg->name);
	free(cfg->file);
	free(cfg);
}

const struct mf_environment *mf_config_env(const struct mf_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && i < cfg->n_envs; i++)
		if (!strcmp(cfg->envs[i].name, name))
			return &cfg->envs[i];
	return NULL;
}

const struct mf_app *mf_environment_app(const struct mf_environment *env, const char *name)
{
	for (size_t i = 0; env && i < env->n_apps; i++)
		if (!strcmp(env->apps[i].name, name))
			return &env->apps[i];
	return NULL;
}

const char *mf_renderer_name(enum mf_renderer_kind kind)
{
	switch (kind) {
	case MF_RENDERER_PLAIN: return "plain";
	case MF_RENDERER_KUSTOMIZE: return "kustomize";
	case MF_RENDERER_HELM: return "helm";
	default: return "auto";
	}
}

void mf_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
