/* reconcile: the sync: applies a plan with server-side apply (field manager gitops, forcing the
 * fields we own) in dependency order: Namespaces and CRDs, then cluster-scoped objects, then
 * namespaced ones; the objects of one step at once, as HTTP/2 streams on one connection.
 * Prunes, then records the inventory. */
#include "reconcile/internal.h"

#include <stdlib.h>
#include <string.h>

struct batch {
	rec_workspace *ws;
	rec_plan *plan;
	const struct rec_sync_options *opt;
	size_t *idx;       /* entries to apply in this step */
	size_t n;
	unsigned created, updated, failed, skipped;
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

/* Applies one step's objects at once: HTTP/2 streams multiplexed on one connection. */
static void run_batch(struct batch *b, int parallel)
{
	if (b->n == 0)
		return;
	json_t **objs = gitops_calloc(b->n, sizeof(*objs));
	struct kube_apply_result *res = gitops_calloc(b->n, sizeof(*res));
	for (size_t k = 0; k < b->n; k++)
		objs[k] = b->plan->entries[b->idx[k]].item.desired;
	struct kube_apply_options ao = {.force = true, .dry_run = b->opt->dry_run};
	kube_apply_batch(res, b->plan->client, objs, b->n, &ao, parallel, applied, b);
	for (size_t k = 0; k < b->n; k++)
		free(res[k].error);
	free(res);
	free(objs);
}

static bool wants_write(const struct rec_entry *e)
{
	drift_state s = drift_result_state(e->item.result);
	return e->item.desired && (s == DRIFT_MISSING || s == DRIFT_MODIFIED);
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

/* The inventory after this sync: what is live and ours. With --app, other apps' entries stay. */
static json_t *next_inventory(rec_plan *p)
{
	json_t *objects = json_array();
	size_t i;
	json_t *ref;
	json_array_foreach(json_object_get(p->inventory, "objects"), i, ref) {
		const char *app = json_string_value(json_object_get(ref, "app"));
		if (p->only_app && (!app || strcmp(app, p->only_app)))
			json_array_append(objects, ref);
	}
	for (i = 0; i < p->n; i++) {
		struct rec_entry *e = &p->entries[i];
		drift_state s = drift_result_state(e->item.result);
		bool live_now = (s == DRIFT_EXTRA) ? !e->written : (!e->failed || e->item.live);
		if (live_now)
			json_array_append_new(objects, ref_of(e));
	}
	return json_pack("{s:s, s:o}", "revision", p->revision, "objects", objects);
}

static bool same_inventory(const json_t *a, const json_t *b)
{
	return json_equal(json_object_get(a, "revision"), json_object_get(b, "revision")) &&
	       json_equal(json_object_get(a, "objects"), json_object_get(b, "objects"));
}

int rec_sync(struct rec_sync_report *rep, rec_workspace *ws, rec_plan *p, const struct rec_sync_options *opt)
{
	struct rec_sync_options none = {0};
	if (!opt)
		opt = &none;
	int parallel = opt->parallel > 0 ? opt->parallel : 32;
	memset(rep, 0, sizeof(*rep));
	long long t0 = gitops_now_ms();
	size_t *idx = gitops_calloc(p->n + 1, sizeof(*idx));
	size_t todo = 0;
	for (size_t i = 0; i < p->n; i++)
		if (wants_write(&p->entries[i]))
			todo++;
		else if (p->entries[i].item.desired)
			rep->unchanged++;
	rec_progress(ws, "%s: syncing %.12s: %zu to apply, %u unchanged%s", p->env, p->revision, todo, rep->unchanged,
		     opt->dry_run ? " (dry run)" : "");
	/* PreSync hooks run before anything else is written, and only when the sync writes: a sync
	 * with nothing to do (the daemon's steady state) runs no hook */
	bool writes = todo > 0;
	for (size_t i = 0; i < p->n && !writes; i++)
		writes = opt->prune && drift_result_state(p->entries[i].item.result) == DRIFT_EXTRA;
	if (writes && rec_hooks_run(ws, p, MF_HOOK_PRE_SYNC, opt->dry_run)) {
		free(idx);
		rep->failed++;
		rep->ms = gitops_now_ms() - t0;
		return gitops_error_set(GITOPS_ERROR, "%s: %s; nothing else was applied", p->env, gitops_error_last());
	}
	json_t *new_namespaces = json_object();
	for (size_t i = 0; i < p->n; i++) {
		const struct rec_entry *e = &p->entries[i];
		if (wants_write(e) && !e->item.live &&
		    !strcmp(json_string_value(json_object_get(e->item.desired, "kind")), "Namespace"))
			json_object_set_new(new_namespaces, obj_name(e->item.desired), json_true());
	}
	for (int step = 0; step < 3; step++) {
		struct batch b = {.ws = ws, .plan = p, .opt = opt, .idx = idx, .new_namespaces = new_namespaces};
		for (size_t i = 0; i < p->n; i++) {
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
		if (step == 0 && !opt->dry_run) {
			/* CRDs must be established and served before their resources are applied. */
			for (size_t k = 0; k < b.n; k++) {
				struct rec_entry *e = &p->entries[b.idx[k]];
				const char *kind = json_string_value(json_object_get(e->item.desired, "kind"));
				if (!e->written || strcmp(kind, "CustomResourceDefinition"))
					continue;
				rec_progress(ws, "waiting for CustomResourceDefinition %s to be established", obj_name(e->item.desired));
				if (kube_wait_crd(p->client, obj_name(e->item.desired), 60000)) {
					rec_progress(ws, "failed  %s", gitops_error_last());
					e->failed = true;
					rep->failed++;
				}
			}
		}
	}
	/* Prune: inventory entries no longer desired, still live and labelled as this environment's. */
	for (size_t i = 0; i < p->n; i++) {
		struct rec_entry *e = &p->entries[i];
		if (drift_result_state(e->item.result) != DRIFT_EXTRA)
			continue;
		char *what = describe(e);
		if (!opt->prune) {
			rep->extra_kept++;
			rec_progress(ws, "extra   %s (no longer in git; prune is off)", what);
			free(what);
			continue;
		}
		const json_t *o = e->item.live;
		json_t *meta = json_object_get(o, "metadata");
		int rc = kube_delete(p->client, json_string_value(json_object_get(o, "apiVersion")),
				     json_string_value(json_object_get(o, "kind")), json_string_value(json_object_get(meta, "namespace")),
				     obj_name(o), "Background", opt->dry_run);
		if (rc && rc != GITOPS_ENOTFOUND) {
			e->failed = true;
			rep->failed++;
			rec_progress(ws, "failed  prune %s: %s", what, gitops_error_last());
		} else {
			e->written = true;
			rep->pruned++;
			rec_progress(ws, "pruned  %s%s", what, opt->dry_run ? " (dry run)" : "");
		}
		free(what);
	}
	free(idx);
	json_decref(new_namespaces);
	/* PostSync hooks once everything else is in (as Argo CD: only after a sync without failures) */
	if (writes && !rep->failed && rec_hooks_run(ws, p, MF_HOOK_POST_SYNC, opt->dry_run))
		rep->failed++;
	int rc = GITOPS_OK;
	if (!opt->dry_run) {
		json_t *inv = next_inventory(p);
		if (!p->inventory_exists || !same_inventory(inv, p->inventory))
			rc = rec_inventory_store(p->client, p->env, inv, p->inventory_exists);
		json_decref(inv);
		if (rc)
			rec_progress(ws, "failed  %s", gitops_error_last());
	}
	rep->ms = gitops_now_ms() - t0;
	if (!rc && rep->failed)
		rc = gitops_error_set(GITOPS_ERROR, "%s: %u object(s) failed to sync", p->env, rep->failed);
	return rc;
}
