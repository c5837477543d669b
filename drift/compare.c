/* compare: decides whether a live object still carries what gitops applied: walks the desired
 * fields and the fields gitops' managedFields entry owns, matching list items by merge key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drift/drift.h"
#include "drift/drift_internal.h"

const char *drift_state_name(drift_state state)
{
	switch (state) {
	case DRIFT_IN_SYNC: return "IN-SYNC";
	case DRIFT_MODIFIED: return "MODIFIED";
	case DRIFT_MISSING: return "MISSING";
	case DRIFT_EXTRA: return "EXTRA";
	}
	return "UNKNOWN";
}

/* State of one comparison. */
struct walk {
	drift_result *r; /* NULL: only count differences (used to compare atomic list items) */
	int is_secret;
	int strict_rules; /* a Role or ClusterRole: see atomic_item_equal */
	json_t **others; /* fieldsV1 roots of every other manager */
	size_t nothers;
	const char **fpath; /* fieldsV1 keys from the root to the node being walked */
	size_t fdepth, fcap;
};

/* ---- recording --------------------------------------------------------------------------- */

static int path_covers(const char *outer, const char *inner)
{
	size_t n = strlen(outer);
	return strncmp(outer, inner, n) == 0 &&
	       (inner[n] == '\0' || inner[n] == '.' || inner[n] == '[');
}

/* The value to keep for one side of a Secret's field: never the clear value. */
static json_t *masked(const struct walk *w, const char *path, const json_t *v, const json_t *other,
		      int desired_side)
{
	if (!v)
		return NULL;
	if (!w->is_secret)
		return json_incref((json_t *)v);
	if (path[0] == '\0')
		return drift__mask_secret_object(v);
	if (strcmp(path, ".data") == 0 || strcmp(path, ".stringData") == 0) {
		json_t *o = json_object();
		if (json_is_object(v)) {
			const char *k;
			json_t *c;
			json_object_foreach((json_t *)v, k, c) json_object_set_new(o, k, json_string("***"));
		} else {
			json_decref(o);
			o = json_string("***");
		}
		return o;
	}
	if (path_covers(".data", path) || path_covers(".stringData", path) ||
	    path_covers(".metadata.annotations[\"kubectl.kubernetes.io/last-applied-configuration\"]",
			path)) {
		if (!desired_side)
			return json_string("***");
		return json_string(other ? "*** (changed)" : "*** (added)");
	}
	/* e.g. the whole .metadata.annotations map, which may hold the last-applied annotation */
	if (json_is_object(v) || json_is_array(v))
		return drift__mask_secret_part(v, 0);
	return json_incref((json_t *)v);
}

/* Records a difference; returns 1 (one difference). A path inside one already recorded is not
 * repeated (the ownership walk can reach a field the desired walk already reported). */
static int record(struct walk *w, const char *path, const json_t *desired, const json_t *live)
{
	if (!w->r)
		return 1;
	drift_result *r = w->r;
	for (size_t i = 0; i < r->nfields; i++)
		if (path_covers(r->fields[i].path, path))
			return 1;
	if (r->nfields == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 8;
		r->fields = gitops_realloc(r->fields, r->cap * sizeof(*r->fields));
	}
	drift_field *f = &r->fields[r->nfields++];
	f->path = gitops_strdup(path);
	f->desired = masked(w, path, desired, live, 1);
	f->live = masked(w, path, live, desired, 0);
	return 1;
}

/* ---- paths ------------------------------------------------------------------------------- */

/* Appends ".key", or ["key"] when the key is not a plain identifier (annotations, data keys). */
static void path_key(gitops_buf *b, const char *key)
{
	int plain = *key != '\0';
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			plain = 0;
	/* printable ASCII without a quote or backslash: what jansson would write, unescaped
	 * (label and annotation keys, at every comparison: encoding them was a tenth of a plan) */
	int verbatim = !plain && *key != '\0';
	for (const char *p = key; verbatim && *p; p++)
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
			verbatim = 0;
	if (plain) {
		gitops_buf_putc(b, '.');
		gitops_buf_puts(b, key);
	} else if (verbatim) {
		gitops_buf_puts(b, "[\"");
		gitops_buf_puts(b, key);
		gitops_buf_puts(b, "\"]");
	} else {
		json_t *s = json_string(key);
		char *enc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
		gitops_buf_printf(b, "[%s]", enc ? enc : "\"?\"");
		free(enc);
		json_decref(s);
	}
}

static void path_scalar(gitops_buf *b, const json_t *v)
{
	if (json_is_string(v))
		gitops_buf_puts(b, json_string_value(v));
	else {
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		gitops_buf_puts(b, s ? s : "?");
		free(s);
	}
}

/* ---- value equality ---------------------------------------------------------------------- */

/* Keys under which values are resource quantities ("cpu: 500m"): resources.requests/limits,
 * ResourceQuota hard/used, LimitRange bounds, node capacity, pod overhead. */
static int quantity_parent(const char *key)
{
	static const char *const keys[] = {"requests", "limits", "hard", "capacity", "allocatable",
		"overhead", "max", "min", "default", "defaultRequest", "maxLimitRequestRatio"};
	for (size_t i = 0; key && i < sizeof(keys) / sizeof(*keys); i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

static char *number_text(const json_t *v)
{
	if (json_is_integer(v))
		return gitops_sprintf("%lld", (long long)json_integer_value(v));
	return gitops_sprintf("%.17g", json_real_value(v));
}

static int scalar_equal(const json_t *d, const json_t *l, int quantity)
{
	if (json_is_number(d) && json_is_number(l)) /* 1 == 1.0: jansson keeps int and real apart */
		return json_number_value(d) == json_number_value(l) &&
		       (!json_is_integer(d) || !json_is_integer(l) ||
			json_integer_value(d) == json_integer_value(l));
	if (json_is_string(d) && json_is_string(l) &&
	    strcmp(json_string_value(d), json_string_value(l)) == 0)
		return 1;
	if (quantity && (json_is_string(d) || json_is_number(d)) &&
	    (json_is_string(l) || json_is_number(l))) {
		char *a = json_is_string(d) ? gitops_strdup(json_string_value(d)) : number_text(d);
		char *b = json_is_string(l) ? gitops_strdup(json_string_value(l)) : number_text(l);
		int eq = 0;
		if (drift__quantity_parse_ok(a) && drift__quantity_parse_ok(b))
			drift_quantity_equal(&eq, a, b);
		free(a);
		free(b);
		return eq;
	}
	return json_equal((json_t *)d, (json_t *)l);
}

/* The zero values Go's omitempty drops on the way in: a desired field written at one of these
 * is absent live, and that is not drift. */
static int zero_value(const json_t *v)
{
	return json_is_false(v) || (json_is_integer(v) && json_integer_value(v) == 0) ||
	       (json_is_real(v) && json_real_value(v) == 0) ||
	       (json_is_string(v) && json_string_length(v) == 0) ||
	       (json_is_object(v) && json_object_size(v) == 0) ||
	       (json_is_array(v) && json_array_size(v) == 0);
}

/* ---- associative lists ------------------------------------------------------------------- */

/* The merge keys of the list stored under `key`, from the Kubernetes API's patch metadata (the
 * same keys structured-merge-diff uses), or NULL for an atomic list compared item by item. */
static const char *const *list_keys(const char *key, const json_t *d, const json_t *l)
{
	static const char *const name[] = {"name", NULL};
	static const char *const container_port[] = {"containerPort", "protocol", NULL};
	static const char *const service_port[] = {"port", "protocol", NULL};
	static const char *const mount_path[] = {"mountPath", NULL};
	static const char *const device_path[] = {"devicePath", NULL};
	static const char *const ip[] = {"ip", NULL};
	static const char *const type[] = {"type", NULL};
	static const char *const spread[] = {"topologyKey", "whenUnsatisfiable", NULL};
	if (!key)
		return NULL;
	if (strcmp(key, "ports") == 0) {
		json_t *first = json_array_get(d, 0);
		if (json_object_get(first, "containerPort"))
			return container_port;
		if (json_object_get(first, "port"))
			return service_port;
		return NULL;
	}
	if (strcmp(key, "volumeMounts") == 0)
		return mount_path;
	if (strcmp(key, "volumeDevices") == 0)
		return device_path;
	if (strcmp(key, "hostAliases") == 0)
		return ip;
	if (strcmp(key, "conditions") == 0)
		return type;
	if (strcmp(key, "topologySpreadConstraints") == 0)
		return spread;
	/* containers, initContainers, volumes, env, imagePullSecrets, CRD versions and the like:
	 * every item on both sides an object with a string name */
	const json_t *sides[2] = {d, l};
	for (int s = 0; s < 2; s++) {
		size_t i;
		json_t *it;
		json_array_foreach((json_t *)sides[s], i, it)
			if (!json_is_string(json_object_get(it, "name")))
				return NULL;
	}
	return json_array_size(d) ? name : NULL;
}

/* The item of `list` whose key fields equal those of `like` (absent equals absent). */
static json_t *find_item(const json_t *list, const json_t *like, const char *const *keys)
{
	size_t i;
	json_t *it;
	json_array_foreach((json_t *)list, i, it) {
		int match = json_is_object(it);
		for (size_t k = 0; match && keys[k]; k++) {
			json_t *a = json_object_get(like, keys[k]), *b = json_object_get(it, keys[k]);
			match = (!a && !b) || (a && b && scalar_equal(a, b, 0));
		}
		if (match)
			return it;
	}
	return NULL;
}

/* ---- the desired walk -------------------------------------------------------------------- */

static int walk_desired(struct walk *w, gitops_buf *path, const char *key, const json_t *d,
			const json_t *l, int quantity);

/* Equal in the desired-subset sense, without recording. */
static int subset_equal(const struct walk *w, const char *key, const json_t *d, const json_t *l,
			int quantity)
{
	struct walk quiet = *w;
	quiet.r = NULL;
	gitops_buf p = GITOPS_BUF_INIT;
	int n = walk_desired(&quiet, &p, key, d, l, quantity);
	gitops_buf_free(&p);
	return n == 0;
}

/* One item of an atomic list. Items are compared in the subset sense because the apiserver
 * defaults fields inside them too (NetworkPolicy ports get a protocol, RBAC subjects an
 * apiGroup). RBAC rules are the exception: PolicyRule has no defaults and a key added by hand
 * (resourceNames, nonResourceURLs) changes what the rule grants, so there the live item may not
 * carry keys the desired one lacks. */
static int atomic_item_equal(const struct walk *w, const char *key, const json_t *d,
			     const json_t *l, int quantity)
{
	if (!subset_equal(w, key, d, l, quantity))
		return 0;
	if (w->strict_rules && key && strcmp(key, "rules") == 0 && json_is_object(l)) {
		const char *k;
		json_t *lv;
		json_object_foreach((json_t *)l, k, lv)
			if (!json_object_get(d, k) && !zero_value(lv))
				return 0;
	}
	return 1;
}

/* Walks the desired value `d` against the live `l` at `path` (the member `key` of its parent);
 * returns the number of differences (recorded when w->r is set). Live fields the desired value
 * does not mention are not looked at: they belong to the server or to other managers. */
static int walk_desired(struct walk *w, gitops_buf *path, const char *key, const json_t *d,
			const json_t *l, int quantity)
{
	size_t mark = path->len;
	int diffs = 0;
	if (json_is_object(d) && json_is_object(l)) {
		const char *k;
		json_t *dv;
		json_object_foreach((json_t *)d, k, dv) {
			json_t *lv = json_object_get(l, k);
			path_key(path, k);
			int q = quantity_parent(key) || strcmp(k, "sizeLimit") == 0;
			if (!lv) {
				if (!zero_value(dv))
					diffs += record(w, gitops_buf_cstr(path), dv, NULL);
			} else {
				diffs += walk_desired(w, path, k, dv, lv, q);
			}
			path->len = mark;
			path->ptr[mark] = '\0';
		}
		return diffs;
	}
	if (json_is_array(d) && json_is_array(l)) {
		const char *const *keys = list_keys(key, d, l);
		if (!keys) { /* atomic: same length, items equal in the subset sense */
			int eq = json_array_size(d) == json_array_size(l);
			for (size_t i = 0; eq && i < json_array_size(d); i++)
				eq = atomic_item_equal(w, key, json_array_get(d, i),
						       json_array_get(l, i), quantity);
			return eq ? 0 : record(w, gitops_buf_cstr(path), d, l);
		}
		size_t i;
		json_t *di;
		json_array_foreach((json_t *)d, i, di) {
			json_t *li = find_item(l, di, keys);
			gitops_buf_putc(path, '[');
			for (size_t k = 0; keys[k]; k++) {
				json_t *kv = json_object_get(di, keys[k]);
				if (!kv)
					continue;
				if (path->ptr[path->len - 1] != '[')
					gitops_buf_putc(path, ',');
				gitops_buf_printf(path, "%s=", keys[k]);
				path_scalar(path, kv);
			}
			gitops_buf_putc(path, ']');
			if (!li)
				diffs += record(w, gitops_buf_cstr(path), di, NULL);
			else
				diffs += walk_desired(w, path, NULL, di, li, 0);
			path->len = mark;
			path->ptr[mark] = '\0';
		}
		return diffs;
	}
	if (json_is_object(d) || json_is_array(d) || json_is_object(l) || json_is_array(l))
		return record(w, gitops_buf_cstr(path), d, l);
	return scalar_equal(d, l, quantity) ? 0 : record(w, gitops_buf_cstr(path), d, l);
}

/* ---- the ownership walk ------------------------------------------------------------------ */

/* 1 when another manager's fieldsV1 holds the current node (or an atomic parent of it). */
static int owned_by_other(const struct walk *w)
{
	for (size_t m = 0; m < w->nothers; m++) {
		json_t *n = w->others[m];
		size_t i = 0;
		for (; n && i < w->fdepth; i++) {
			if (json_object_size(n) == 0 && i > 0)
				break; /* a leaf above: the whole subtree is theirs */
			n = json_object_get(n, w->fpath[i]);
		}
		if (n)
			return 1;
	}
	return 0;
}

/* The member of `list` whose fields equal every field of the key object `key`. */
static json_t *find_keyed(const json_t *list, const json_t *key)
{
	size_t i;
	json_t *it;
	json_array_foreach((json_t *)list, i, it) {
		const char *k;
		json_t *kv;
		int match = json_is_object(it);
		json_object_foreach((json_t *)key, k, kv) {
			json_t *iv = json_object_get(it, k);
			if (!match || !iv || !scalar_equal(kv, iv, 0)) {
				match = 0;
				break;
			}
		}
		if (match)
			return it;
	}
	return NULL;
}

static json_t *find_value(const json_t *list, const json_t *v)
{
	size_t i;
	json_t *it;
	json_array_foreach((json_t *)list, i, it)
		if (scalar_equal(v, it, 0))
			return it;
	return NULL;
}

/* Walks gitops' fieldsV1 node `f` over desired `d` (may be NULL) and live `l`, reporting the
 * fields we own that are still live but no longer desired: re-applying would remove them.
 * Fields some other manager also owns would stay, so they are not reported. */
static void walk_owned(struct walk *w, gitops_buf *path, const json_t *f, const json_t *d,
		       const json_t *l)
{
	size_t mark = path->len;
	const char *fk;
	json_t *fc;
	json_object_foreach((json_t *)f, fk, fc) {
		const json_t *dv = NULL, *lv = NULL;
		json_t *parsed = NULL;
		if (strncmp(fk, "f:", 2) == 0) {
			dv = json_object_get(d, fk + 2);
			lv = json_object_get(l, fk + 2);
			path_key(path, fk + 2);
		} else if (strncmp(fk, "k:", 2) == 0 || strncmp(fk, "v:", 2) == 0) {
			parsed = json_loads(fk + 2, JSON_DECODE_ANY, NULL);
			if (!parsed)
				continue;
			if (fk[0] == 'k' && json_is_object(parsed)) {
				dv = find_keyed(d, parsed);
				lv = find_keyed(l, parsed);
				gitops_buf_putc(path, '[');
				const char *k;
				json_t *kv;
				json_object_foreach(parsed, k, kv) {
					if (path->ptr[path->len - 1] != '[')
						gitops_buf_putc(path, ',');
					gitops_buf_printf(path, "%s=", k);
					path_scalar(path, kv);
				}
				gitops_buf_putc(path, ']');
			} else {
				dv = find_value(d, parsed);
				lv = find_value(l, parsed);
				gitops_buf_puts(path, "[=");
				path_scalar(path, parsed);
				gitops_buf_putc(path, ']');
			}
		} else if (strncmp(fk, "i:", 2) == 0) {
			size_t idx = (size_t)strtoul(fk + 2, NULL, 10);
			dv = json_array_get(d, idx);
			lv = json_array_get(l, idx);
			gitops_buf_printf(path, "[%zu]", idx);
		} else {
			continue; /* ".": the node itself, handled by its parent */
		}
		if (w->fdepth == w->fcap) {
			w->fcap = w->fcap ? 2 * w->fcap : 16;
			w->fpath = gitops_realloc(w->fpath, w->fcap * sizeof(*w->fpath));
		}
		w->fpath[w->fdepth++] = fk;
		/* a list item no longer desired is reported whole; a map (labels, data) by the
		 * members of ours it still has, so others' members are not shown as ours */
		size_t children = json_object_size(fc) - (json_object_get(fc, ".") ? 1 : 0);
		if (lv && !dv && (children == 0 || fk[0] != 'f')) {
			if (!owned_by_other(w))
				record(w, gitops_buf_cstr(path), NULL, lv);
		} else if (lv && children > 0) {
			walk_owned(w, path, fc, dv, lv);
		}
		w->fdepth--;
		json_decref(parsed);
		path->len = mark;
		path->ptr[mark] = '\0';
	}
}

/* ---- the entry point --------------------------------------------------------------------- */

static char *dup_str(const json_t *v)
{
	return gitops_strdup(json_is_string(v) ? json_string_value(v) : "");
}

static void set_identity(drift_result *r, const json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata");
	r->api_version = dup_str(json_object_get(obj, "apiVersion"));
	r->group = gitops_api_group(r->api_version);
	r->kind = dup_str(json_object_get(obj, "kind"));
	r->namespace_ = dup_str(json_object_get(md, "namespace"));
	r->name = dup_str(json_object_get(md, "name"));
}

/* Finds gitops' Apply entry (its fieldsV1) and collects every other manager's. An entry written
 * for another apiVersion than the one live was read in may name fields of another schema, so
 * it is not used (the desired walk alone still applies). */
static const json_t *ownership(struct walk *w, const json_t *live, const char *manager)
{
	const json_t *ours = NULL;
	const char *live_api = json_string_value(json_object_get(live, "apiVersion"));
	json_t *mf = json_object_get(json_object_get(live, "metadata"), "managedFields");
	size_t i;
	json_t *e;
	w->others = gitops_calloc(json_array_size(mf) + 1, sizeof(json_t *));
	json_array_foreach(mf, i, e) {
		const char *m = json_string_value(json_object_get(e, "manager"));
		const char *op = json_string_value(json_object_get(e, "operation"));
		const char *sub = json_string_value(json_object_get(e, "subresource"));
		json_t *fields = json_object_get(e, "fieldsV1");
		if (!json_is_object(fields))
			continue;
		const char *api = json_string_value(json_object_get(e, "apiVersion"));
		if (m && strcmp(m, manager) == 0 && op && strcmp(op, "Apply") == 0 &&
		    (!sub || !*sub)) {
			if (!ours && (!api || !live_api || strcmp(api, live_api) == 0))
				ours = fields;
		} else {
			w->others[w->nothers++] = fields;
		}
	}
	return ours;
}

static int is_secret(const json_t *obj)
{
	const char *api = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	return api && kind && strcmp(api, "v1") == 0 && strcmp(kind, "Secret") == 0;
}

static int check_object(const json_t *o, const char *side)
{
	if (o && (!json_is_object(o) || !json_is_string(json_object_get(o, "kind"))))
		return gitops_error_set(GITOPS_EINVALID,
					"drift: the %s object is not a Kubernetes object (no kind)", side);
	return 0;
}

int drift_compare(drift_result **out, const json_t *desired, const json_t *live,
		  const drift_options *options)
{
	*out = NULL;
	int rc;
	if (!desired && !live)
		return gitops_error_set(GITOPS_EINVALID, "drift: neither a desired nor a live object");
	if ((rc = check_object(desired, "desired")) < 0 || (rc = check_object(live, "live")) < 0)
		return rc;
	const char *manager = options && options->field_manager ? options->field_manager
								: DRIFT_FIELD_MANAGER;
	const drift_ignore *ignore = options ? options->ignore : NULL;
	drift_result *r = gitops_calloc(1, sizeof(*r));
	set_identity(r, desired ? desired : live);
	struct walk w = {.r = r, .is_secret = is_secret(desired ? desired : live)};
	w.strict_rules = strcmp(r->group, "rbac.authorization.k8s.io") == 0 &&
			 (strcmp(r->kind, "Role") == 0 || strcmp(r->kind, "ClusterRole") == 0);
	json_t *d = NULL, *l = NULL;
	/* shared with the inputs below the top level, unless ignore rules delete paths in them */
	int share = !drift__ignore_paths(ignore, r->group, r->kind, r->namespace_, r->name);
	if (desired && (rc = drift__normalize(&d, desired, share)) < 0)
		goto fail;
	if (live && (rc = drift__normalize(&l, live, share)) < 0)
		goto fail;
	if (!live) {
		r->state = DRIFT_MISSING;
		r->object = w.is_secret ? drift__mask_secret_object(d) : json_incref(d);
	} else if (!desired) {
		r->state = DRIFT_EXTRA;
		r->object = w.is_secret ? drift__mask_secret_object(l) : json_incref(l);
	} else if (drift__ignore_whole(ignore, r->group, r->kind, r->namespace_, r->name)) {
		r->state = DRIFT_IN_SYNC;
	} else {
		if (w.strict_rules && strcmp(r->kind, "ClusterRole") == 0 &&
		    json_object_get(d, "aggregationRule")) {
			/* the clusterrole-aggregation controller writes the rules of an
			 * aggregated ClusterRole: they are its fields, not ours */
			json_object_del(d, "rules");
			json_object_del(l, "rules");
		}
		drift__ignore_apply(ignore, r->group, r->kind, r->namespace_, r->name, d);
		drift__ignore_apply(ignore, r->group, r->kind, r->namespace_, r->name, l);
		gitops_buf path = GITOPS_BUF_INIT;
		gitops_buf_puts(&path, "");
		walk_desired(&w, &path, NULL, d, l, 0);
		const json_t *ours = ownership(&w, live, manager);
		if (ours)
			walk_owned(&w, &path, ours, d, l);
		gitops_buf_free(&path);
		r->state = r->nfields ? DRIFT_MODIFIED : DRIFT_IN_SYNC;
	}
	json_decref(d);
	json_decref(l);
	free(w.others);
	free(w.fpath);
	*out = r;
	return 0;
fail:
	json_decref(d);
	json_decref(l);
	drift_result_free(r);
	return rc;
}

void drift_result_free(drift_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nfields; i++) {
		free((char *)r->fields[i].path);
		json_decref((json_t *)r->fields[i].desired);
		json_decref((json_t *)r->fields[i].live);
	}
	free(r->fields);
	json_decref(r->object);
	free(r->api_version);
	free(r->group);
	free(r->kind);
	free(r->namespace_);
	free(r->name);
	free(r);
}

drift_state drift_result_state(const drift_result *r) { return r->state; }
const char *drift_result_api_version(const drift_result *r) { return r->api_version; }
const char *drift_result_group(const drift_result *r) { return r->group; }
const char *drift_result_kind(const drift_result *r) { return r->kind; }
const char *drift_result_namespace(const drift_result *r) { return r->namespace_; }
const char *drift_result_name(const drift_result *r) { return r->name; }
size_t drift_result_field_count(const drift_result *r) { return r->nfields; }

const drift_field *drift_result_field(const drift_result *r, size_t i)
{
	return i < r->nfields ? &r->fields[i] : NULL;
}
