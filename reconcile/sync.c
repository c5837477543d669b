/* reconcile: the sync: under the environment's sync lock, records in the inventory what it is
 * about to apply, applies the plan with server-side apply (field manager gitops, forcing the
 * fields we own) in dependency order: Namespaces and CRDs, then cluster-scoped objects, then
 * namespaced ones (the objects of one step at once, as HTTP/2 streams on one connection), then
 * prunes what this pipeline and environment own and no app desires, removing each pruned object
 * from the inventory once it is deleted. Existing objects it does not own are left alone unless
 * adopting. */
#include "reconcile/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct batch {
	rec_workspace *ws;
	rec_plan *plan;
	const struct rec_sync_options *opt;
	size_t *idx;       /* entries to apply in this step */
	size_t n;
	unsigned created, updated, failed, skipped;
	bool stopped;      /* opt->stop said so before a chunk: the rest was not attempted */
	json_t *new_namespaces; /* Namespaces this sync creates (a dry run cannot create them) */
};

static const char *obj_name(const json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static char *describe(const struct rec_entry *e)
{
	const json_t *o = e->item.desired ? e->item.desired : e->item.live;
	const char *ns = json_string_value(json_object_get(json_object_get(o, "metadata"), "namespace"));
	const char *kind = json_string_value(json_object_get(o, "kind"));
	return ns ? gitops_sprintf("%s %s/%s", kind, ns, obj_name(o)) : gitops_sprintf("%s %s", kind, obj_name(o));
}

/* Reports one applied object as soon as it is done (progress lines stream during a step). */
static void applied(void *ud, size_t k, const struct kube_apply_result *res)
{
	struct batch *b = ud;
	struct rec_entry *e = &b->plan->entries[b->idx[k]];
	char *what = describe(e);
	const char *ns = json_string_value(json_object_get(json_object_get(e->item.desired, "metadata"), "namespace"));
	if (res->rc == GITOPS_ENOTFOUND && b->opt->dry_run && ns && json_object_get(b->new_namespaces, ns)) {
		/* The server cannot dry-run into a Namespace that only this sync would create. */
		b->skipped++;
		rec_progress(b->ws, "skipped %s (dry run: Namespace %s does not exist yet)", what, ns);
	} else if (res->rc) {
		e->failed = true;
		b->failed++;
		rec_progress(b->ws, "failed  %s (%s): %s", what, e->item.source, res->error ? res->error : "");
	} else {
		e->written = true;
		if (res->created)
			b->created++;
		else
			b->updated++;
		rec_progress(b->ws, "%s %s%s", res->created ? "created" : "updated", what, b->opt->dry_run ? " (dry run)" : "");
	}
	free(what);
}

static bool should_stop(const struct rec_sync_options *opt) { return opt->stop && opt->stop(opt->stop_ud); }

/* Applies one step's objects at once: HTTP/2 streams multiplexed on one connection, in chunks
 * of REC_SYNC_CHUNK with opt->stop asked before each. */
static void run_batch(struct batch *b, int parallel)
{
	if (b->n == 0)
		return;
	json_t **objs = gitops_calloc(b->n, sizeof(*objs));
	struct kube_apply_result *res = gitops_calloc(b->n, sizeof(*res));
	for (size_t k = 0; k < b->n; k++)
		objs[k] = b->plan->entries[b->idx[k]].item.desired;
	struct kube_apply_options ao = {.force = true, .dry_run = b->opt->dry_run};
	struct batch chunk = *b;
	for (size_t at = 0; at < b->n && !b->stopped; at += REC_SYNC_CHUNK) {
		if (should_stop(b->opt)) {
			b->stopped = true;
			break;
		}
		size_t n = b->n - at < REC_SYNC_CHUNK ? b->n - at : REC_SYNC_CHUNK;
		chunk.idx = b->idx + at;
		chunk.n = n;
		chunk.created = chunk.updated = chunk.failed = chunk.skipped = 0;
		kube_apply_batch(res + at, b->plan->client, objs + at, n, &ao, parallel, applied, &chunk);
		b->created += chunk.created;
		b->updated += chunk.updated;
		b->failed += chunk.failed;
		b->skipped += chunk.skipped;
	}
	for (size_t k = 0; k < b->n; k++)
		free(res[k].error);
	free(res);
	free(objs);
}

static bool wants_write(const struct rec_entry *e)
{
	if (!e->item.desired || !e->item.result || e->skip)
		return false;
	drift_state s = drift_result_state(e->item.result);
	return s == DRIFT_MISSING || s == DRIFT_MODIFIED;
}

static int step_of(const struct rec_entry *e)
{
	const char *kind = json_string_value(json_object_get(e->item.desired, "kind"));
	if (!strcmp(kind, "Namespace") || !strcmp(kind, "CustomResourceDefinition"))
		return 0;
	return (e->resource && !e->resource->namespaced) ? 1 : 2;
}

static json_t *ref_of(const struct rec_entry *e)
{
	const json_t *o = e->item.desired ? e->item.desired : e->item.live;
	json_t *meta = json_object_get(o, "metadata");
	json_t *ref = json_pack("{s:O, s:O, s:O, s:s}", "apiVersion", json_object_get(o, "apiVersion"), "kind",
				json_object_get(o, "kind"), "name", json_object_get(meta, "name"), "app", e->item.app);
	if (json_object_get(meta, "namespace"))
		json_object_set(ref, "namespace", json_object_get(meta, "namespace"));
	return ref;
}

static bool is_extra(const struct rec_entry *e)
{
	return e->item.result && drift_result_state(e->item.result) == DRIFT_EXTRA;
}

static const char *kind_of(const struct rec_entry *e)
{
	const json_t *o = e->item.desired ? e->item.desired : e->item.live;
	return json_string_value(json_object_get(o, "kind")) ?: "";
}

/* Decides, per desired object that exists without an entry in this inventory, whether it is
 * skipped or adopted. */
static void classify(rec_plan *p, bool adopt)
{
	for (size_t i = 0; i < p->n_visible; i++) {
		struct rec_entry *e = &p->entries[i];
		e->skip = e->adopt = false;
		if (!e->item.desired || !e->item.unmanaged)
			continue;
		if (adopt && !e->item.owner)
			e->adopt = true;
		else
			e->skip = true;
	}
}

/* Does this sync write anything at all (apply, adopt, prune, or a change of the inventory)? A
 * sync that does not takes no lock and makes no write. */
static bool needs_write(rec_plan *p, const struct rec_sync_options *opt)
{
	bool any_desired = false;
	for (size_t i = 0; i < p->n; i++) {
		const struct rec_entry *e = &p->entries[i];
		if (i >= p->n_visible)
			return true; /* an inventory entry whose object is gone */
		if (e->item.desired && !e->skip) {
			any_desired = true;
			if (wants_write(e) || e->adopt || e->app_moved)
				return true;
		}
		if (is_extra(e) && opt->prune)
			return true;
	}
	const char *rev = json_string_value(json_object_get(p->inv->doc, "revision"));
	if (any_desired && (!p->inv->cm || !rev || strcmp(rev, p->revision)))
		return true;
	return false;
}

struct add_ctx { rec_plan *p; };

/* Intent: every object about to be applied or adopted gets its entry (or its new app). */
static void edit_add(json_t *doc, void *ud)
{
	rec_plan *p = ((struct add_ctx *)ud)->p;
	json_t *objs = json_object_get(doc, "objects");
	json_t *index = json_object();
	size_t i;
	json_t *ref;
	json_array_foreach(objs, i, ref) {
		char *k = rec_ref_key(ref);
		json_object_set_new(index, k, json_integer((json_int_t)i));
		free(k);
	}
	for (i = 0; i < p->n_visible; i++) {
		struct rec_entry *e = &p->entries[i];
		if (!e->item.desired || e->skip)
			continue;
		json_t *at = json_object_get(index, e->key);
		if (at)
			json_array_set_new(objs, (size_t)json_integer_value(at), ref_of(e));
		else
			json_array_append_new(objs, ref_of(e));
	}
	json_decref(index);
}

struct final_ctx {
	rec_plan *p;
	json_t *remove;  /* keys to drop */
	bool set_revision;
};

static void edit_final(json_t *doc, void *ud)
{
	struct final_ctx *f = ud;
	json_t *objs = json_object_get(doc, "objects"), *keep = json_array();
	size_t i;
	json_t *ref;
	json_array_foreach(objs, i, ref) {
		char *k = rec_ref_key(ref);
		if (!json_object_get(f->remove, k))
			json_array_append(keep, ref);
		free(k);
	}
	json_object_set_new(doc, "objects", keep);
	if (f->set_revision) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(doc, "revision", json_string(f->p->revision));
		json_object_set_new(doc, "syncedAt", json_string(stamp));
	}
}

static const char *annotation(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(obj, "metadata"), "annotations"), key));
}

/* What a Namespace or CRD about to be pruned holds. `going`: objects this prune deletes anyway;
 * `managed`: this inventory's entries (those let go with prune disabled excluded). */
struct holds {
	const json_t *going, *managed;
	size_t foreign, still;  /* not managed by gitops / managed and still in git */
	char *example, *example_still;
};

static void count_object(struct holds *h, const char *kind, const json_t *it)
{
	char *k = rec_object_key(it);
	json_t *meta = json_object_get(it, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name")) ?: "";
	char *svc = !strcmp(kind, "Endpoints") ? gitops_sprintf("/Service/%s/%s", ns ? ns : "", name) : NULL;
	bool follows_service = svc && (json_object_get(h->going, svc) || json_object_get(h->managed, svc));
	free(svc);
	if (follows_service) {
		/* the Endpoints the control plane keeps for a Service of ours (no owner reference) */
	} else if (json_object_get(h->going, k)) {
		/* deleted by this prune anyway */
	} else if (json_object_get(h->managed, k)) {
		if (!h->example_still)
			h->example_still = gitops_sprintf("%s %s%s%s", kind, ns ? ns : "", ns ? "/" : "", name);
		h->still++;
	} else {
		if (!h->example)
			h->example = gitops_sprintf("%s %s%s%s", kind, ns ? ns : "", ns ? "/" : "", name);
		h->foreign++;
	}
	free(k);
}

/* Counts the objects in Namespace `ns` that gitops does not own (not in `owned`): one list per
 * namespaced resource. Not counted: objects with an owner reference (their owner is counted),
 * Events, the Endpoints of a Service gitops owns, and what Kubernetes puts in every Namespace
 * (ConfigMap kube-root-ca.crt, ServiceAccount default). */
static int foreign_in_namespace(struct holds *h, kube_client *c, const char *ns)
{
	const struct kube_resource **res;
	size_t n;
	int rc = kube_resources(&res, &n, c);
	if (rc)
		return rc;
	json_t *seen = json_object();
	for (size_t i = 0; i < n && !rc; i++) {
		const struct kube_resource *r = res[i];
		if (!r->namespaced || !strcmp(r->kind, "Event"))
			continue;
		char *gr = gitops_sprintf("%s/%s", r->group, r->resource);
		bool dup = json_object_get(seen, gr) != NULL;
		json_object_set_new(seen, gr, json_true());
		free(gr);
		if (dup)
			continue;
		json_t *items = NULL;
		rc = kube_list(&items, NULL, c, r, ns, NULL);
		if (rc == GITOPS_EUNSUPPORTED || rc == GITOPS_ENOTFOUND) { /* not listable */
			gitops_error_clear();
			rc = GITOPS_OK;
			continue;
		}
		if (rc)
			break;
		size_t j;
		json_t *it;
		json_array_foreach(items, j, it) {
			json_t *meta = json_object_get(it, "metadata");
			const char *name = json_string_value(json_object_get(meta, "name")) ?: "";
			if (json_array_size(json_object_get(meta, "ownerReferences")) > 0)
				continue;
			if ((!strcmp(r->kind, "ConfigMap") && !strcmp(name, "kube-root-ca.crt")) ||
			    (!strcmp(r->kind, "ServiceAccount") && !strcmp(name, "default")))
				continue;
			count_object(h, r->kind, it);
		}
		json_decref(items);
	}
	json_decref(seen);
	free(res);
	return rc;
}

/* Counts the custom resources of CRD `crd` (live) that gitops does not own. */
static int foreign_custom_resources(struct holds *h, kube_client *c, const json_t *crd)
{
	json_t *spec = json_object_get(crd, "spec");
	const char *group = json_string_value(json_object_get(spec, "group"));
	const char *kind = json_string_value(json_object_get(json_object_get(spec, "names"), "kind"));
	size_t i;
	json_t *v;
	int rc = GITOPS_OK;
	json_array_foreach(json_object_get(spec, "versions"), i, v) {
		if (!json_is_true(json_object_get(v, "served")))
			continue;
		char *av = gitops_sprintf("%s/%s", group ? group : "", json_string_value(json_object_get(v, "name")) ?: "");
		const struct kube_resource *r;
		rc = kube_resource_for(&r, c, av, kind ? kind : "");
		free(av);
		if (rc) {
			gitops_error_clear();
			rc = GITOPS_OK;
			continue;
		}
		json_t *items = NULL;
		if ((rc = kube_list(&items, NULL, c, r, NULL, NULL)))
			return rc;
		size_t j;
		json_t *it;
		json_array_foreach(items, j, it)
			count_object(h, kind, it);
		json_decref(items);
		break; /* one served version lists them all */
	}
	return rc;
}

/* Prunes the EXTRA entries (owned by this pipeline and environment, desired by no app):
 * objects first, then CRDs, then Namespaces. */
static void prune(struct rec_sync_report *rep, rec_workspace *ws, rec_plan *p, const struct rec_sync_options *opt,
		  json_t *remove, rec_lock *lock)
{
	json_t *managed = json_object(), *going = json_object();
	size_t i;
	json_t *ref;
	json_array_foreach(json_object_get(p->inv->doc, "objects"), i, ref) {
		char *k = rec_ref_key(ref);
		json_object_set_new(managed, k, json_true());
		free(k);
	}
	for (i = 0; i < p->n_visible; i++) {
		struct rec_entry *e = &p->entries[i];
		if (!is_extra(e))
			continue;
		const char *pa = annotation(e->item.live, REC_ANNOTATION_PRUNE);
		if (pa && !strcmp(pa, "disabled"))
			json_object_del(managed, e->key); /* let go: not ours to delete with its Namespace */
		else
			json_object_set_new(going, e->key, json_true());
	}
	for (int pass = 0; pass < 2; pass++) {
		for (i = 0; i < p->n_visible; i++) {
			struct rec_entry *e = &p->entries[i];
			if (!is_extra(e))
				continue;
			const char *kind = kind_of(e);
			bool container = !strcmp(kind, "Namespace") || !strcmp(kind, "CustomResourceDefinition");
			if ((pass == 0) == container)
				continue;
			char *what = describe(e);
			const char *pa = annotation(e->item.live, REC_ANNOTATION_PRUNE);
			if (!opt->prune) {
				rep->extra_kept++;
				rec_progress(ws, "extra   %s (no longer in git; prune is off)", what);
			} else if (p->prune_blocked) {
				rep->extra_kept++;
				rec_progress(ws, "extra   %s (no longer in git; not pruned: %s)", what, p->prune_blocked);
			} else if (pa && !strcmp(pa, "disabled")) {
				rep->kept++;
				json_object_set_new(remove, e->key, json_true());
				rec_progress(ws, "kept    %s (%s: disabled): left in the cluster, no longer managed by gitops%s", what,
					     REC_ANNOTATION_PRUNE, opt->dry_run ? " (dry run)" : "");
			} else if (lock && rec_lock_lost(lock)) {
				rep->failed++;
				e->failed = true;
				rec_progress(ws, "failed  prune %s: the sync lock was taken over by another sync", what);
			} else {
				struct holds h = {.going = going, .managed = managed};
				int rc = GITOPS_OK;
				if (!strcmp(kind, "Namespace"))
					rc = foreign_in_namespace(&h, p->client, json_string_value(json_object_get(
								  json_object_get(e->item.live, "metadata"), "name")));
				else if (!strcmp(kind, "CustomResourceDefinition"))
					rc = foreign_custom_resources(&h, p->client, e->item.live);
				if (rc) {
					rep->failed++;
					e->failed = true;
					rec_progress(ws, "failed  prune %s: cannot tell what it holds: %s", what, gitops_error_last());
				} else if (h.foreign || h.still) {
					rep->kept++;
					gitops_buf why = GITOPS_BUF_INIT;
					if (h.foreign)
						gitops_buf_printf(&why, "holds %zu object%s gitops does not manage (%s%s)", h.foreign,
								  h.foreign == 1 ? "" : "s", h.example, h.foreign > 1 ? ", ..." : "");
					if (h.still)
						gitops_buf_printf(&why, "%s%zu object%s still in git (%s%s)", h.foreign ? " and " : "holds ",
								  h.still, h.still == 1 ? "" : "s", h.example_still, h.still > 1 ? ", ..." : "");
					rec_progress(ws, "kept    %s: %s; not pruned", what, gitops_buf_cstr(&why));
					gitops_buf_free(&why);
				} else if (opt->dry_run) {
					rep->pruned++;
					rec_progress(ws, "pruned  %s (dry run: not deleted)", what);
				} else {
					const json_t *o = e->item.live;
					json_t *meta = json_object_get(o, "metadata");
					rc = kube_delete(p->client, json_string_value(json_object_get(o, "apiVersion")), kind,
							 json_string_value(json_object_get(meta, "namespace")), obj_name(o), "Background", false);
					if (rc && rc != GITOPS_ENOTFOUND) {
						e->failed = true;
						rep->failed++;
						rec_progress(ws, "failed  prune %s: %s", what, gitops_error_last());
					} else {
						e->written = true;
						rep->pruned++;
						json_object_set_new(remove, e->key, json_true());
						rec_progress(ws, "pruned  %s", what);
					}
				}
				free(h.example);
				free(h.example_still);
			}
			free(what);
		}
	}
	json_decref(managed);
	json_decref(going);
}

int rec_sync(struct rec_sync_report *rep, rec_workspace *ws, rec_plan *p, const struct rec_sync_options *opt)
{
	struct rec_sync_options none = {0};
	if (!opt)
		opt = &none;
	int parallel = opt->parallel > 0 ? opt->parallel : 32;
	bool adopt = opt->adopt || p->envp->sync_adopt;
	memset(rep, 0, sizeof(*rep));
	long long t0 = gitops_now_ms();
	rec_lock *lock = NULL;
	int rc = GITOPS_OK;
	classify(p, adopt);
	if (!opt->dry_run && needs_write(p, opt)) {
		if ((rc = rec_lock_acquire(&lock, ws, p->client, p->inv->pipeline, p->env,
					   opt->lock_timeout_ms > 0 ? opt->lock_timeout_ms : 600000)))
			return rc;
		/* Another sync may have changed the environment since the plan was made. */
		if ((rc = rec_inventory_reload(p->inv)) == GITOPS_OK &&
		    strcmp(rec_inventory_rv(p->inv) ? rec_inventory_rv(p->inv) : "", p->inv_rv)) {
			rec_progress(ws, "%s: the inventory changed since the plan was made: planning again", p->env);
			rc = rec_plan_refresh(p);
			classify(p, adopt);
		}
		if (rc) {
			rec_lock_release(lock);
			return rc;
		}
	}
	size_t *idx = gitops_calloc(p->n + 1, sizeof(*idx));
	size_t todo = 0;
	for (size_t i = 0; i < p->n_visible; i++) {
		struct rec_entry *e = &p->entries[i];
		if (!e->item.desired)
			continue;
		char *what = describe(e);
		if (e->skip) {
			rep->unmanaged++;
			if (e->item.owner)
				rec_progress(ws, "skipped %s (%s): exists and belongs to %s; gitops never takes it over. Remove "
					     "it from one of the two, or delete it so that this sync creates it", what,
					     e->item.source, e->item.owner);
			else
				rec_progress(ws, "skipped %s (%s): exists, not managed by gitops (not in the inventory of "
					     "pipeline %s, environment %s); to take it over: gitops sync %s --adopt, or "
					     "sync: {adopt: true} in gitops.yaml", what, e->item.source, p->inv->pipeline,
					     p->env, p->env);
		} else if (e->adopt) {
			rep->adopted++;
			rec_progress(ws, "adopted %s%s", what, opt->dry_run ? " (dry run)" : "");
		}
		free(what);
		if (wants_write(e))
			todo++;
		else if (!e->skip)
			rep->unchanged++;
	}
	rec_progress(ws, "%s: syncing %.12s: %zu to apply, %u unchanged%s", p->env, p->revision, todo, rep->unchanged,
		     opt->dry_run ? " (dry run)" : "");
	/* Intent first: what is about to be applied is in the inventory before it exists. */
	if (lock) {
		struct add_ctx ac = {p};
		if ((rc = rec_inventory_edit(p->inv, edit_add, &ac))) {
			rec_progress(ws, "failed  %s", gitops_error_last());
			free(idx);
			rec_lock_release(lock);
			rep->ms = gitops_now_ms() - t0;
			return rc;
		}
	}
	/* PreSync hooks run before the app's objects are written, and only when the sync writes: a
	 * sync with nothing to do (the daemon's steady state) runs no hook */
	bool writes = todo > 0;
	for (size_t i = 0; i < p->n_visible && !writes; i++)
		writes = opt->prune && drift_result_state(p->entries[i].item.result) == DRIFT_EXTRA;
	if (writes && rec_hooks_run(ws, p, MF_HOOK_PRE_SYNC, opt->dry_run)) {
		rc = gitops_error_set(GITOPS_ERROR, "%s: %s; nothing else was applied", p->env, gitops_error_last());
		free(idx);
		rec_lock_release(lock);
		rep->failed++;
		rep->ms = gitops_now_ms() - t0;
		return rc;
	}
	json_t *new_namespaces = json_object();
	for (size_t i = 0; i < p->n_visible; i++) {
		const struct rec_entry *e = &p->entries[i];
		if (wants_write(e) && !e->item.live &&
		    !strcmp(json_string_value(json_object_get(e->item.desired, "kind")), "Namespace"))
			json_object_set_new(new_namespaces, obj_name(e->item.desired), json_true());
	}
	for (int step = 0; step < 3 && !rep->interrupted; step++) {
		struct batch b = {.ws = ws, .plan = p, .opt = opt, .idx = idx, .new_namespaces = new_namespaces};
		for (size_t i = 0; i < p->n_visible; i++) {
			struct rec_entry *e = &p->entries[i];
			if (!wants_write(e))
				continue;
			if (step > 0 && !e->resource) {
				/* A custom resource whose CRD came in this sync. */
				const char *av = json_string_value(json_object_get(e->item.desired, "apiVersion"));
				const char *kind = json_string_value(json_object_get(e->item.desired, "kind"));
				if (kube_resource_for(&e->resource, p->client, av, kind)) {
					if (step == 2) {
						char *what = describe(e);
						if (opt->dry_run) {
							rec_progress(ws, "skipped %s (dry run: its CustomResourceDefinition does not "
								     "exist yet)", what);
							rep->skipped++;
						} else {
							rec_progress(ws, "failed  %s (%s): %s", what, e->item.source, gitops_error_last());
							e->failed = true;
							rep->failed++;
						}
						free(what);
					}
					continue;
				}
			}
			if (step_of(e) == step)
				b.idx[b.n++] = i;
		}
		run_batch(&b, parallel);
		rep->created += b.created;
		rep->updated += b.updated;
		rep->failed += b.failed;
		rep->skipped += b.skipped;
		rep->interrupted = b.stopped;
		if (step == 0 && !opt->dry_run) {
			/* CRDs must be established and served before their resources are applied: all the
			 * CRDs of the sync are waited for together. */
			const json_t **crds = gitops_calloc(b.n ? b.n : 1, sizeof(*crds));
			size_t *which = gitops_calloc(b.n ? b.n : 1, sizeof(*which));
			size_t ncrd = 0;
			for (size_t k = 0; k < b.n; k++) {
				struct rec_entry *e = &p->entries[b.idx[k]];
				const char *kind = json_string_value(json_object_get(e->item.desired, "kind"));
				if (!e->written || strcmp(kind, "CustomResourceDefinition"))
					continue;
				which[ncrd] = b.idx[k];
				crds[ncrd++] = e->item.desired;
			}
			if (ncrd) {
				rec_progress(ws, "waiting for %zu CustomResourceDefinition(s) to be established", ncrd);
				bool *ready = gitops_calloc(ncrd, sizeof(*ready));
				if (kube_wait_crds(p->client, crds, ncrd, ready, 60000)) {
					rec_progress(ws, "failed  %s", gitops_error_last());
					for (size_t k = 0; k < ncrd; k++)
						if (!ready[k]) {
							p->entries[which[k]].failed = true;
							rep->failed++;
						}
				}
				free(ready);
			}
			free(crds);
			free(which);
		}
	}
	free(idx);
	json_decref(new_namespaces);
	json_t *remove = json_object();
	if (!rep->interrupted && should_stop(opt))
		rep->interrupted = true; /* before pruning: a prune is the last thing to do half */
	if (rep->interrupted) {
		/* intent that was never acted on leaves the inventory: an object never created is not ours */
		for (size_t i = 0; i < p->n_visible; i++) {
			const struct rec_entry *e = &p->entries[i];
			if (wants_write(e) && !e->written && !e->failed) {
				rep->not_applied++;
				if (!e->item.live)
					json_object_set_new(remove, e->key, json_true());
			}
		}
		rec_progress(ws, "%s: interrupted: %u applied, %u not applied, nothing pruned", p->env, rep->created + rep->updated,
			     rep->not_applied);
	} else {
		prune(rep, ws, p, opt, remove, lock);
		/* PostSync hooks once everything else is in (as Argo CD: only after a sync without failures) */
		if (writes && !rep->failed && rec_hooks_run(ws, p, MF_HOOK_POST_SYNC, opt->dry_run))
			rep->failed++;
	}
	/* Entries whose object is gone, or no longer carries this environment's labels. */
	for (size_t i = p->n_visible; i < p->n; i++)
		json_object_set_new(remove, p->entries[i].key, json_true());
	if (lock) {
		struct final_ctx fc = {p, remove, !rep->interrupted};
		rc = rec_inventory_edit(p->inv, edit_final, &fc);
		if (rc)
			rec_progress(ws, "failed  %s", gitops_error_last());
		rec_lock_release(lock);
	}
	json_decref(remove);
	rep->ms = gitops_now_ms() - t0;
	if (!rc && rep->interrupted)
		rc = gitops_error_set(GITOPS_ETIMEOUT, "%s: sync interrupted after %u of %u object(s) applied", p->env,
				      rep->created + rep->updated, rep->created + rep->updated + rep->failed + rep->not_applied);
	else if (!rc && rep->failed)
		rc = gitops_error_set(GITOPS_ERROR, "%s: %u object(s) failed to sync", p->env, rep->failed);
	else if (!rc && rep->unmanaged)
		rc = gitops_error_set(GITOPS_ERROR, "%s: %u object(s) exist and are not managed by this pipeline and "
				      "environment: skipped (to take over what no pipeline owns: --adopt)", p->env, rep->unmanaged);
	return rc;
}
