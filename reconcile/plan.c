/* reconcile: the plan, in four steps: render an environment; read its live objects (from a live
 * source such as the daemon's watch caches, else one list per kind and namespace it touches,
 * never a read per object); compare each pair with drift/; confirm every suspected modification
 * with a server-side dry run, so a difference only in defaulting or spelling never leads to a
 * write. A plan belongs to one thread. */
#include "reconcile/internal.h"

#include <stdlib.h>
#include <string.h>

/* Sets a label to `value`, shared (a reference taken), as the same few values label every
 * object of a plan. */
static void set_label(json_t *obj, const char *key, json_t *value)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *labels = json_object_get(meta, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		json_object_set_new(meta, "labels", labels);
	}
	json_object_set(labels, key, value);
}

/* The four labels that make a desired object this pipeline's, environment's and app's. */
static void label_desired(rec_plan *p, json_t *obj, const char *app)
{
	if (!p->lv_app || strcmp(json_string_value(p->lv_app), app)) {
		json_decref(p->lv_app);
		p->lv_app = json_string(app);
	}
	set_label(obj, REC_LABEL_MANAGED_BY, p->lv_managed);
	set_label(obj, REC_LABEL_PIPELINE, p->lv_pipeline);
	set_label(obj, REC_LABEL_ENV, p->lv_env);
	set_label(obj, REC_LABEL_APP, p->lv_app);
}

static void drop_label_values(rec_plan *p)
{
	json_decref(p->lv_managed);
	json_decref(p->lv_pipeline);
	json_decref(p->lv_env);
	json_decref(p->lv_app);
	p->lv_managed = p->lv_pipeline = p->lv_env = p->lv_app = NULL;
}

/* A desired object still as text (a compact object of the render) becomes its tree, labelled,
 * in the plan's arena for desired objects: one at a time, as it is compared. */
static int desired_parse(rec_plan *p, struct rec_entry *e)
{
	if (!e->text)
		return GITOPS_OK;
	const struct rec_ref *r = &e->item.ref;
	char *av = *r->group ? gitops_sprintf("%s/%s", r->group, r->version) : gitops_strdup(r->version);
	gitops_json_arena *was = gitops_json_arena_use(p->desired_arena);
	json_t *o = mf_compact_parse(e->text, e->text_len, av, r->kind, r->namespace, r->name,
				     e->text_ns_same ? r->namespace : e->text_ns, e->source_s);
	if (o)
		label_desired(p, o, e->app_s);
	gitops_json_arena_use(was);
	free(av);
	free(e->text);
	e->text = NULL;
	free(e->text_ns);
	e->text_ns = NULL;
	if (!o)
		return GITOPS_EINVALID;
	e->item.desired = o;
	return GITOPS_OK;
}

static const char *label(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"), key));
}

/* Is (group, kind) defined by a CustomResourceDefinition among the desired objects? */
static bool crd_in_set(const mf_objects *set, const char *api_version, const char *kind)
{
	size_t glen = gitops_api_group_len(api_version, NULL);
	for (size_t i = 0; i < mf_objects_count(set); i++) {
		const json_t *o = mf_objects_at(set, i)->obj;
		if (!o) /* a compact object is never a CRD */
			continue;
		if (strcmp(json_string_value(json_object_get(o, "kind")) ?: "", "CustomResourceDefinition"))
			continue;
		json_t *spec = json_object_get(o, "spec");
		const char *g = json_string_value(json_object_get(spec, "group"));
		const char *k = json_string_value(json_object_get(json_object_get(spec, "names"), "kind"));
		if (g && k && !strcmp(k, kind) && strlen(g) == glen && !strncmp(g, api_version, glen))
			return true;
	}
	return false;
}

static int build_ignore(drift_ignore **out, const struct mf_environment *env)
{
	drift_ignore_new(out);
	for (size_t i = 0; i < env->n_ignore; i++) {
		const struct mf_ignore_rule *r = &env->ignore[i];
		for (size_t j = 0; j < r->n_json_pointers; j++) {
			int rc = drift_ignore_add(*out, r->group, r->kind, r->namespace, r->name, r->json_pointers[j]);
			if (rc)
				return gitops_error_prefix("gitops.yaml:%d: ignore rule", r->line);
		}
	}
	return GITOPS_OK;
}

/* True when applying would change nothing: the dry run's answer equals the live object apart
 * from bookkeeping (managedFields, resourceVersion, generation). */
static bool dry_run_is_noop(const json_t *live, const json_t *dry)
{
	json_t *a = json_deep_copy(live), *b = json_deep_copy(dry);
	const char *drop[] = {"managedFields", "resourceVersion", "generation"};
	for (size_t i = 0; i < 3; i++) {
		json_object_del(json_object_get(a, "metadata"), drop[i]);
		json_object_del(json_object_get(b, "metadata"), drop[i]);
	}
	bool same = json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return same;
}

struct scope_ctx { kube_client *c; };

static int scope_lookup(void *data, const char *api_version, const char *kind, bool *namespaced)
{
	struct scope_ctx *sc = data;
	const struct kube_resource *r;
	if (kube_resource_for(&r, sc->c, api_version, kind))
		return GITOPS_ENOTFOUND;
	*namespaced = r->namespaced;
	return GITOPS_OK;
}

/* "pipeline P, environment E" when live is labelled as another pipeline's or environment's. */
static char *other_owner(const json_t *live, const char *pipeline, const char *env)
{
	const char *mb = label(live, REC_LABEL_MANAGED_BY);
	if (!mb || strcmp(mb, "gitops"))
		return NULL;
	const char *lp = label(live, REC_LABEL_PIPELINE), *le = label(live, REC_LABEL_ENV);
	if ((lp && strcmp(lp, pipeline)) || (le && strcmp(le, env)))
		return gitops_sprintf("pipeline %s, environment %s", lp ? lp : "(an earlier gitops release)", le ? le : "?");
	return NULL;
}

static void drop_aheads(rec_plan *p);

static void free_entry(struct rec_entry *e)
{
	drift_result_free(e->item.result);
	json_decref(e->item.desired);
	json_decref(e->item.live);
	free(e->text);
	free(e->text_ns);
	free(e->key);
	free(e->ref_mem);
	free(e->app_s);
	free(e->source_s);
	free(e->owner_s);
}

static void free_entries(rec_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free_entry(&p->entries[i]);
	free(p->entries);
	p->entries = NULL;
	p->n = p->n_visible = 0;
	rec_hooks_free(p);
	rec_inventory_free(p->inv);
	p->inv = NULL;
	free(p->inv_rv);
	p->inv_rv = NULL;
	free(p->prune_blocked);
	p->prune_blocked = NULL;
	drop_label_values(p);
	drop_aheads(p);
}

/* With --app, another app that does not render does not stop the sync of this one, but then
 * nothing may be pruned (its objects are unknown). */
static int other_app_failed(void *data, const struct mf_app *app, int rc)
{
	rec_plan *p = data;
	if (!p->only_app || !strcmp(app->name, p->only_app) || rc == GITOPS_EIO)
		return rc;
	free(p->prune_blocked);
	p->prune_blocked = gitops_sprintf("app %s does not render (%s)", app->name, gitops_error_last());
	return GITOPS_OK;
}

/* Step 1, render: every app of the environment at p->revision into *out, namespaces filled in.
 * Every app is rendered, also with --app: what another app desires is never pruned. */
static int plan_render(mf_objects **out, rec_plan *p)
{
	rec_workspace *ws = p->ws;
	const struct mf_environment *env = p->envp;
	mf_objects *set = NULL;
	rec_progress(ws, "%s: rendering %.12s", env->name, p->revision);
	struct scope_ctx sc = {p->client};
	struct mf_render_env_options ro = {.only_app = p->only_app, .all_apps = true, .failed = other_app_failed,
					   .failed_data = p, .scope = scope_lookup, .scope_data = &sc, .compact = true};
	int rc = mf_render_env_with(&set, ws->renderer, ws->repo, p->revision, env, &ro);
	if (rc) {
		/* A render failure (bad manifests, renderer error or timeout, missing helm or
		 * kustomize) is the input's fault, whatever code the renderer reported. */
		if (rc != GITOPS_EIO)
			rc = gitops_error_set(GITOPS_EINVALID, "%s", gitops_error_last());
		return rc;
	}
	*out = set;
	return GITOPS_OK;
}

/* "file:line", without printf (made for every desired object) */
static char *source_of(const char *file, int line)
{
	char digits[16];
	size_t nd = 0, nf = strlen(file);
	unsigned v = line > 0 ? (unsigned)line : 0;
	do
		digits[nd++] = (char)('0' + v % 10);
	while ((v /= 10) && nd < sizeof(digits));
	char *s = gitops_malloc(nf + nd + 2), *at = s + nf;
	memcpy(s, file, nf);
	*at++ = ':';
	while (nd)
		*at++ = digits[--nd];
	*at = '\0';
	return s;
}

static struct rec_entry *add_entry(rec_plan *p, size_t *cap)
{
	if (p->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		p->entries = gitops_realloc(p->entries, *cap * sizeof(*p->entries));
	}
	struct rec_entry *e = &p->entries[p->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* The plan's entries: the desired objects (labelled as this pipeline's, environment's and app's;
 * the set's objects are taken, not copied), then the inventory entries no app desires. `index`
 * gets key -> entry number, and -1 for what an app desires that is no entry (a hook, or another
 * app's object with --app): one map, made as the entries are. */
static int plan_entries(rec_plan *p, mf_objects *set, json_t *index)
{
	const struct mf_environment *env = p->envp;
	const char *pipeline = p->inv->pipeline;
	json_t *refs = json_object_get(p->inv->doc, "objects");
	drop_label_values(p);
	p->lv_managed = json_string("gitops");
	p->lv_pipeline = json_string(pipeline);
	p->lv_env = json_string(env->name);
	size_t cap = mf_objects_count(set) + json_array_size(refs), i;
	p->entries = gitops_realloc(p->entries, (cap ? cap : 1) * sizeof(*p->entries));
	json_t *ref;
	int rc = GITOPS_OK;
	for (i = 0; i < mf_objects_count(set) && !rc; i++) {
		const struct mf_object *mo = mf_objects_at(set, i);
		const char *av = mo->api_version, *kind = mo->kind, *ns = mo->namespace_, *name = mo->name;
		if (mo->obj) {
			json_t *md = json_object_get(mo->obj, "metadata");
			av = json_string_value(json_object_get(mo->obj, "apiVersion"));
			kind = json_string_value(json_object_get(mo->obj, "kind"));
			ns = json_string_value(json_object_get(md, "namespace"));
			name = json_string_value(json_object_get(md, "name"));
		}
		char *key = rec_make_key(av, kind, ns, name);
		if ((p->only_app && strcmp(mo->app, p->only_app)) || mo->hook) {
			json_object_set_new(index, key, json_integer(-1));
			free(key);
			if (mo->hook && !(p->only_app && strcmp(mo->app, p->only_app))) {
				/* hooks are not desired state: the sync runs them (hooks.c) */
				char *src = gitops_sprintf("%s:%d", mo->file, mo->line);
				rec_hook_add(p, json_incref(mo->obj), mo, src);
				free(src);
			}
			continue;
		}
		json_object_set_new(index, key, json_integer((json_int_t)p->n));
		struct rec_entry *e = add_entry(p, &cap);
		e->key = key;
		/* The set is the plan's own and freed after it: its objects are labelled in place; a
		 * compact one's text is taken, parsed when compared. */
		if (mo->obj) {
			e->item.desired = json_incref(mo->obj);
			label_desired(p, e->item.desired, mo->app);
		} else {
			e->text = mf_objects_take_text(set, i, &e->text_len);
			/* the namespace its text has: mostly none or the one resolved (then not copied) */
			e->text_ns_same = mo->text_ns && ns && !strcmp(mo->text_ns, ns);
			if (mo->text_ns && !e->text_ns_same)
				e->text_ns = gitops_strdup(mo->text_ns);
		}
		rec_ref_from(&e->item.ref, &e->ref_mem, av, kind, ns, name);
		e->app_s = gitops_strdup(mo->app);
		e->source_s = source_of(mo->file, mo->line);
		rc = kube_resource_for(&e->resource, p->client, av, kind);
		if (rc == GITOPS_ENOTFOUND && crd_in_set(set, av, kind)) {
			e->resource = NULL; /* served once its CRD, applied first, is established */
			rc = GITOPS_OK;
		} else if (rc == GITOPS_ENOTFOUND) {
			rc = gitops_error_set(GITOPS_EINVALID, "%s: %s %s: %s", e->source_s, kind, e->item.ref.name,
					      gitops_error_last());
		}
	}
	/* The inventory: marks the desired entries it has, and adds the entries no app of the
	 * environment desires (candidates for pruning); with --app, only that app's. */
	json_array_foreach(refs, i, ref) {
		if (rc)
			break;
		const char *app = json_string_value(json_object_get(ref, "app"));
		char *k = rec_ref_key(ref);
		json_t *at = json_object_get(index, k);
		if (at) {
			json_int_t n = json_integer_value(at);
			struct rec_entry *e = n >= 0 ? &p->entries[n] : NULL;
			if (e && (e->item.desired || e->text)) { /* desired: in the inventory (the last entry of
								  * a key decides its app, as ever) */
				e->item.in_inventory = true;
				e->app_moved = strcmp(app ? app : "", e->app_s) != 0;
			}
			free(k); /* or an entry of the inventory already, or desired but no entry */
			continue;
		}
		if (p->only_app && (!app || strcmp(app, p->only_app))) {
			free(k);
			continue;
		}
		const struct kube_resource *r;
		if (kube_resource_for(&r, p->client, json_string_value(json_object_get(ref, "apiVersion")),
				      json_string_value(json_object_get(ref, "kind")))) {
			r = NULL; /* the kind is gone (CRD removed): so are its objects */
		}
		json_object_set_new(index, k, json_integer((json_int_t)p->n));
		struct rec_entry *e = add_entry(p, &cap);
		e->key = k;
		rec_ref_of(&e->item.ref, &e->ref_mem, ref);
		e->resource = r;
		e->app_s = gitops_strdup(app ? app : "");
		e->source_s = gitops_strdup("inventory");
		e->item.in_inventory = true;
	}
	if (!rc)
		gitops_error_clear();
	return rc;
}

/* Step 3, compare, for one entry: ownership (labels and inventory) and drift/. Entries compared
 * already are left as they are. */
static int compare_one(rec_plan *p, struct rec_entry *e, const drift_options *dopt)
{
	const char *pipeline = p->inv->pipeline, *env = p->envp->name;
	e->item.app = e->app_s;
	e->item.source = e->source_s;
	int rc = desired_parse(p, e);
	if (rc)
		return rc;
	if (e->item.result || (!e->item.desired && !e->item.live))
		return GITOPS_OK; /* compared, or an inventory entry already gone */
	const char *lm = e->item.live ? label(e->item.live, REC_LABEL_MANAGED_BY) : NULL;
	const char *le = e->item.live ? label(e->item.live, REC_LABEL_ENV) : NULL;
	const char *lp = e->item.live ? label(e->item.live, REC_LABEL_PIPELINE) : NULL;
	/* Objects of an earlier release carry no pipeline label; the inventory entry decides. */
	e->item.owned = lm && !strcmp(lm, "gitops") && le && !strcmp(le, env) && (!lp || !strcmp(lp, pipeline));
	if (!e->item.desired && !e->item.owned) {
		json_decref(e->item.live);
		e->item.live = NULL; /* not ours after all: never reported, never pruned */
		return GITOPS_OK;
	}
	if (e->item.desired && e->item.live && !e->item.in_inventory) {
		e->item.unmanaged = true;
		e->owner_s = other_owner(e->item.live, pipeline, env);
		e->item.owner = e->owner_s;
	}
	return drift_compare(&e->item.result, e->item.desired, e->item.live, dopt);
}

/* Once an object is known to be in sync, its live form is cut down to what is read of it later:
 * apiVersion, kind and of its metadata name, namespace, annotations, generation and
 * deletionTimestamp (labels were read by the comparison; managedFields, uid, resourceVersion
 * are bookkeeping nothing reads from a plan). Most of a plan's memory is otherwise live objects
 * that nothing reads again. MODIFIED (confirmed with the whole object) and EXTRA (pruned: a
 * CRD's spec is read) keep it whole. */
static void slim_live(const rec_plan *p, struct rec_entry *e)
{
	if (p->keep_live || !e->item.live || !e->item.result || drift_result_state(e->item.result) != DRIFT_IN_SYNC)
		return;
	/* A new object (the old one may sit in a list page's arena, which it would keep whole). */
	json_t *slim = json_object();
	static const char *const top[] = {"apiVersion", "kind"};
	for (size_t i = 0; i < sizeof(top) / sizeof(*top); i++) {
		json_t *v = json_object_get(e->item.live, top[i]);
		if (v)
			json_object_set_new(slim, top[i], json_deep_copy(v));
	}
	static const char *const keep[] = {"name", "namespace", "annotations", "generation", "deletionTimestamp"};
	json_t *meta = json_object_get(e->item.live, "metadata"), *md = json_object();
	for (size_t i = 0; i < sizeof(keep) / sizeof(*keep); i++) {
		json_t *v = json_object_get(meta, keep[i]);
		if (v)
			json_object_set_new(md, keep[i], json_deep_copy(v));
	}
	json_object_set_new(slim, "metadata", md);
	json_decref(e->item.live);
	e->item.live = slim;
}

/* A results_only plan (a diff) drops the desired form of what is in sync as soon as it is
 * compared: with the live forms cut down, the plan's memory is then what differs. */
static void drop_desired(const rec_plan *p, struct rec_entry *e)
{
	if (!p->results_only || !e->item.desired || !e->item.result ||
	    drift_result_state(e->item.result) != DRIFT_IN_SYNC)
		return;
	json_decref(e->item.desired);
	e->item.desired = NULL;
	e->desired_dropped = true;
	if (!e->item.unmanaged) {
		/* nor is anything read of its live form (a diff names unmanaged objects only) */
		json_decref(e->item.live);
		e->item.live = NULL;
	}
}

static void uncompare(struct rec_entry *e)
{
	drift_result_free(e->item.result);
	e->item.result = NULL;
	json_decref(e->item.live);
	e->item.live = NULL;
	free(e->owner_s);
	e->owner_s = NULL;
	e->item.owner = NULL;
	e->item.owned = e->item.unmanaged = false;
}

struct list_ctx {
	rec_plan *p;
	json_t *index;
	const drift_options *dopt;
	const struct kube_resource *r; /* what is listed */
	const char *ns;
	int rc;
};

/* A page of a list: keeps the objects the plan names, compared at once (so a page at a time is
 * held whole), and drops the rest. */
static void keep_named(void *ud, json_t *items)
{
	struct list_ctx *lc = ud;
	size_t j;
	json_t *it;
	json_array_foreach(items, j, it) {
		if (lc->rc)
			return;
		char *k = rec_object_key(it);
		json_t *at = json_object_get(lc->index, k);
		free(k);
		if (!at || json_integer_value(at) < 0)
			continue;
		struct rec_entry *e = &lc->p->entries[json_integer_value(at)];
		if (e->desired_dropped)
			continue; /* a restarted list: compared in sync before it restarted */
		uncompare(e);
		e->item.live = json_incref(it);
		lc->rc = compare_one(lc->p, e, lc->dopt);
		/* What is kept past this page is copied out of the page's arena (so the page's memory
		 * goes back): a live object in sync is cut down to a new one by slim_live, or copied
		 * whole for a keep_live plan; one that differs (rare) is copied and compared again,
		 * as its result refers to parts of the objects compared. */
		if (!lc->rc && e->item.live && e->item.result) {
			bool in_sync = drift_result_state(e->item.result) == DRIFT_IN_SYNC;
			if (!in_sync || lc->p->keep_live) {
				json_t *own = json_deep_copy(e->item.live);
				if (in_sync) {
					json_decref(e->item.live);
					e->item.live = own;
				} else {
					uncompare(e);
					e->item.live = own;
					lc->rc = compare_one(lc->p, e, lc->dopt);
				}
			}
		}
		drop_desired(lc->p, e); /* before slim_live: what it drops need not be cut down */
		slim_live(lc->p, e);
	}
}

/* The list started over: what its pages gave so far is dropped. */
static void restart_named(void *ud)
{
	struct list_ctx *lc = ud;
	for (size_t i = 0; i < lc->p->n; i++) {
		struct rec_entry *e = &lc->p->entries[i];
		const char *ns = e->resource && e->resource->namespaced ? e->item.ref.namespace : NULL;
		if (e->resource == lc->r && !strcmp(ns ? ns : "", lc->ns ? lc->ns : "") && !e->desired_dropped)
			uncompare(e);
	}
}

/* Step 2, read live, with step 3 for each object as it comes: each entry's live object, from
 * the plan's live source, else from one list per (kind, namespace) the plan touches, unfiltered
 * so objects that exist without gitops' labels (made by hand, or by another tool) are seen too;
 * never a get per object. Then step 3 for the entries no list had (missing objects). */
/* Lists under way ahead of their reading (a plan reading lists: no live source). */
static bool same_ns(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

/* The index in p->ahead of the list of (r, ns) under way, or -1. */
static long find_ahead(const rec_plan *p, const struct kube_resource *r, const char *ns)
{
	for (size_t k = 0; k < p->n_ahead; k++)
		if (kube_list_ahead_resource(p->ahead[k]) == r && same_ns(kube_list_ahead_namespace(p->ahead[k]), ns))
			return (long)k;
	return -1;
}

static kube_list_ahead *take_ahead(rec_plan *p, const struct kube_resource *r, const char *ns)
{
	long k = find_ahead(p, r, ns);
	if (k < 0)
		return NULL;
	kube_list_ahead *la = p->ahead[k];
	p->ahead[k] = p->ahead[--p->n_ahead];
	return la;
}

static void start_ahead(rec_plan *p, const struct kube_resource *r, const char *ns)
{
	if (p->n_ahead < REC_PLAN_AHEAD)
		p->ahead[p->n_ahead++] = kube_list_ahead_start(p->client, r, ns, NULL);
}

static void drop_aheads(rec_plan *p)
{
	while (p->n_ahead)
		kube_list_ahead_free(p->ahead[--p->n_ahead]);
}

static char *pair_key(const struct kube_resource *r, const char *ns)
{
	return gitops_sprintf("%p/%s", (const void *)r, ns ? ns : "");
}

static const char *entry_ns(const struct rec_entry *e)
{
	return e->resource->namespaced && e->item.ref.namespace ? e->item.ref.namespace : NULL;
}

/* While one list is read, the next one the plan needs is asked for: its first page comes while
 * this one's last pages are compared (no pause between lists). */
static void start_next_list(rec_plan *p, size_t from, json_t *listed, const struct kube_resource *cur,
			    const char *cur_ns)
{
	for (size_t j = from; j < p->n; j++) {
		struct rec_entry *e = &p->entries[j];
		if (!e->resource || e->item.result)
			continue;
		const char *ns = entry_ns(e);
		if (e->resource == cur && same_ns(ns, cur_ns))
			continue; /* the list being read (most entries after it: no key made for them) */
		char *pair = pair_key(e->resource, ns);
		bool known = json_object_get(listed, pair) != NULL;
		free(pair);
		if (known)
			continue;
		if (find_ahead(p, e->resource, ns) < 0)
			start_ahead(p, e->resource, ns);
		return;
	}
}

/* Step 2, read live, with step 3 for each object as it comes: each entry's live object, from
 * the plan's live source, else from one list per (kind, namespace) the plan touches, unfiltered
 * so objects that exist without gitops' labels (made by hand, or by another tool) are seen too;
 * never a get per object. Then step 3 for the entries no list had (missing objects). */
static int plan_read_live(rec_plan *p, json_t *index, const drift_options *dopt)
{
	json_t *listed = json_object();
	int rc = GITOPS_OK;
	for (size_t i = 0; i < p->n && !rc; i++) {
		struct rec_entry *e = &p->entries[i];
		if (!e->resource)
			continue;
		if (e->item.result)
			continue; /* read and compared already, by the list of an earlier entry's kind */
		const char *ns = entry_ns(e);
		if (p->live.get) {
			json_t *live = NULL;
			rc = p->live.get(p->live.ud, e->resource, &e->item.ref, &live);
			if (rc == GITOPS_OK) {
				e->item.live = live;
				rc = compare_one(p, e, dopt);
				slim_live(p, e);
				continue;
			}
			if (rc != GITOPS_ENOTFOUND)
				break;
			gitops_error_clear();
			rc = GITOPS_OK;
		}
		char *pair = pair_key(e->resource, ns);
		if (!json_object_get(listed, pair)) {
			json_object_set_new(listed, pair, json_true());
			struct list_ctx lc = {p, index, dopt, e->resource, ns, GITOPS_OK};
			kube_list_ahead *la = take_ahead(p, e->resource, ns);
			if (!la)
				la = kube_list_ahead_start(p->client, e->resource, ns, NULL);
			if (!p->live.get)
				start_next_list(p, i + 1, listed, e->resource, ns);
			rc = kube_list_ahead_pages(la, keep_named, restart_named, &lc, NULL);
			if (!rc)
				rc = lc.rc;
		}
		free(pair);
	}
	json_decref(listed);
	drop_aheads(p);
	for (size_t i = 0; i < p->n && !rc; i++)
		rc = compare_one(p, &p->entries[i], dopt);
	return rc;
}

/* Step 4, confirm: every suspected modification is sent as a server-side apply dry run (all at
 * once, as HTTP/2 streams); one whose answer equals the live object is in sync after all (a
 * difference only in defaulting or spelling). */
static int plan_confirm(rec_plan *p, const drift_options *dopt)
{
	size_t m = 0;
	size_t *idx = gitops_calloc(p->n + 1, sizeof(*idx));
	json_t **objs = gitops_calloc(p->n + 1, sizeof(*objs));
	for (size_t i = 0; i < p->n; i++)
		if (p->entries[i].item.result && drift_result_state(p->entries[i].item.result) == DRIFT_MODIFIED) {
			idx[m] = i;
			objs[m++] = p->entries[i].item.desired;
		}
	int rc = GITOPS_OK;
	if (m) {
		json_t **dry = gitops_calloc(m, sizeof(*dry));
		struct kube_apply_result *res = gitops_calloc(m, sizeof(*res));
		struct kube_apply_options ao = {.force = true, .dry_run = true};
		kube_apply_batch_out(res, dry, p->client, objs, m, &ao, 0, NULL, NULL);
		for (size_t k = 0; k < m; k++) {
			struct rec_entry *e = &p->entries[idx[k]];
			if (!rc && res[k].rc == GITOPS_OK && dry[k] && dry_run_is_noop(e->item.live, dry[k])) {
				drift_result_free(e->item.result);
				e->item.result = NULL;
				rc = drift_compare(&e->item.result, e->item.live, e->item.live, dopt);
				slim_live(p, e);
			}
			json_decref(dry[k]);
			free(res[k].error);
		}
		free(res);
		free(dry);
	}
	free(idx);
	free(objs);
	gitops_error_clear();
	return rc;
}

/* Keeps the entries with a result first (n_visible of them), then the inventory entries that
 * turned out to be gone (no result: the sync drops them from the inventory; rec_plan_item
 * callers never see them); frees the rest. */
static void plan_order(rec_plan *p)
{
	size_t k = 0, i;
	for (i = 0; i < p->n; i++) {
		if (p->entries[i].item.result || !p->entries[i].item.desired)
			p->entries[k++] = p->entries[i];
		else
			free_entry(&p->entries[i]);
	}
	p->n = k;
	size_t w = 0;
	for (i = 0; i < p->n; i++)
		if (p->entries[i].item.result) {
			struct rec_entry t = p->entries[w];
			p->entries[w++] = p->entries[i];
			p->entries[i] = t;
		}
	p->n_visible = w;
}

int rec_plan_compare_set(rec_plan *p, mf_objects *set)
{
	drift_ignore *ignore = NULL;
	json_t *index = json_object();
	p->desired_arena = gitops_json_arena_open();
	int rc = build_ignore(&ignore, p->envp);
	if (!rc)
		rc = plan_entries(p, set, index);
	if (p->results_only && p->inv) {
		/* a diff reads nothing more of the inventory than the entries hold (and never writes it) */
		json_decref(p->inv->doc);
		json_decref(p->inv->cm);
		p->inv->doc = p->inv->cm = NULL;
	}
	/* The desired objects are the entries' now: the rendered set goes before the live ones come. */
	mf_objects_free(set);
	drift_options dopt = {.field_manager = DRIFT_FIELD_MANAGER, .ignore = ignore};
	if (!rc)
		rc = plan_read_live(p, index, &dopt);
	json_decref(index);
	if (!rc)
		rc = plan_confirm(p, &dopt);
	if (!rc)
		plan_order(p);
	drift_ignore_free(ignore);
	drop_aheads(p);
	/* every desired object is parsed by now (compare_one ran for each entry) */
	gitops_json_arena_close(p->desired_arena);
	p->desired_arena = NULL;
	drop_label_values(p);
	return rc;
}

/* Asks for the list of the (kind, namespace) with most entries in the inventory: with thousands
 * of objects, its first page is read and parsed while the plan renders. */
static void start_inventory_list(rec_plan *p)
{
	json_t *count = json_object(), *ref;
	const char *best = NULL;
	json_int_t most = 0;
	size_t i;
	json_array_foreach(json_object_get(p->inv->doc, "objects"), i, ref) {
		const char *ns = json_string_value(json_object_get(ref, "namespace"));
		char *k = gitops_sprintf("%s\n%s\n%s", json_string_value(json_object_get(ref, "apiVersion")) ?: "",
					 json_string_value(json_object_get(ref, "kind")) ?: "", ns ? ns : "");
		json_t *n = json_object_get(count, k);
		json_int_t v = n ? json_integer_value(n) + 1 : 1;
		json_object_set_new(count, k, json_integer(v));
		if (v > most) {
			most = v;
			best = json_object_iter_key(json_object_iter_at(count, k));
		}
		free(k);
	}
	if (best) {
		char *av = gitops_strdup(best), *kind = strchr(av, '\n'), *ns;
		*kind++ = '\0';
		ns = strchr(kind, '\n');
		*ns++ = '\0';
		const struct kube_resource *r;
		if (kube_resource_for(&r, p->client, av, kind) == GITOPS_OK)
			start_ahead(p, r, r->namespaced && *ns ? ns : NULL);
		gitops_error_clear();
		free(av);
	}
	json_decref(count);
}

/* Builds the plan's entries at p->revision: render, inventory, then rec_plan_compare_set (live
 * state compared as it is read, confirmation). */
static int plan_build(rec_plan *p)
{
	const char *pipeline;
	int rc = rec_workspace_pipeline(&pipeline, NULL, p->ws);
	if (rc)
		return rc;
	mf_objects *set = NULL;
	/* The inventory first: the list of the kind it has most of is asked for while rendering */
	if ((rc = rec_inventory_open(&p->inv, p->ws, p->client, p->envp)))
		return rc;
	p->inv_rv = gitops_strdup(rec_inventory_rv(p->inv) ? rec_inventory_rv(p->inv) : "");
	if (!p->live.get)
		start_inventory_list(p);
	if ((rc = plan_render(&set, p))) {
		drop_aheads(p);
		return rc;
	}
	return rec_plan_compare_set(p, set);
}

bool rec_dry_run_is_noop(const json_t *live, const json_t *dry) { return dry_run_is_noop(live, dry); }

int rec_plan_refresh(rec_plan *p)
{
	free_entries(p);
	return plan_build(p);
}

int rec_plan_env(rec_plan **out, rec_workspace *ws, const char *env_name, const char *revision, const char *only_app)
{
	struct rec_plan_options opt = {.revision = revision, .only_app = only_app};
	return rec_plan_new(out, ws, env_name, &opt);
}

int rec_plan_new(rec_plan **out, rec_workspace *ws, const char *env_name, const struct rec_plan_options *opt)
{
	struct rec_plan_options none = {0};
	if (!opt)
		opt = &none;
	const char *revision = opt->revision, *only_app = opt->only_app;
	*out = NULL;
	const struct mf_environment *env;
	int rc = rec_workspace_env(&env, ws, env_name);
	if (rc)
		return rc;
	if (only_app && !mf_environment_app(env, only_app)) {
		gitops_buf names = GITOPS_BUF_INIT;
		for (size_t i = 0; i < env->n_apps; i++)
			gitops_buf_printf(&names, "%s%s", i ? ", " : "", env->apps[i].name);
		rc = gitops_error_set(GITOPS_EINVALID, "gitops.yaml: environment %s has no app \"%s\" (known: %s)", env->name,
				      only_app, gitops_buf_cstr(&names));
		gitops_buf_free(&names);
		return rc;
	}
	rec_plan *p = gitops_calloc(1, sizeof(*p));
	snprintf(p->env, sizeof(p->env), "%s", env->name);
	p->envp = env;
	p->ws = ws;
	p->only_app = only_app ? gitops_strdup(only_app) : NULL;
	if (opt->live)
		p->live = *opt->live;
	p->results_only = opt->results_only;
	p->keep_live = opt->keep_live;
	if (!(rc = rec_resolve_revision(p->revision, ws, env, revision)) && !(rc = rec_workspace_client(&p->client, ws, env)))
		rc = plan_build(p);
	if (rc) {
		rec_plan_free(p);
		return rc;
	}
	*out = p;
	return GITOPS_OK;
}

void rec_plan_free(rec_plan *p)
{
	if (!p)
		return;
	free_entries(p);
	free(p->only_app);
	free(p);
}

size_t rec_plan_count(const rec_plan *p) { return p->n_visible; }
const struct rec_item *rec_plan_item(const rec_plan *p, size_t i) { return &p->entries[i].item; }
const char *rec_plan_revision(const rec_plan *p) { return p->revision; }
const char *rec_plan_env_name(const rec_plan *p) { return p->env; }
const char *rec_plan_inventory_name(const rec_plan *p) { return p->inv ? p->inv->name : ""; }
const char *rec_plan_pipeline(const rec_plan *p) { return p->inv ? p->inv->pipeline : ""; }

void rec_plan_counts(const rec_plan *p, size_t counts[4])
{
	counts[0] = counts[1] = counts[2] = counts[3] = 0;
	for (size_t i = 0; i < p->n_visible; i++)
		counts[drift_result_state(p->entries[i].item.result)]++;
}

bool rec_plan_in_sync(const rec_plan *p)
{
	size_t c[4];
	rec_plan_counts(p, c);
	for (size_t i = 0; i < p->n_visible; i++)
		if (p->entries[i].item.unmanaged)
			return false;
	return c[DRIFT_MODIFIED] == 0 && c[DRIFT_MISSING] == 0 && c[DRIFT_EXTRA] == 0;
}
