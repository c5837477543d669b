/* reconcile: the plan: renders an environment, reads its live objects (one list per kind and
 * namespace it touches, no read per object), compares each pair
 * with drift/, and confirms every suspected modification with a server-side dry run, so a
 * difference only in defaulting or spelling never leads to a write. */
#include "reconcile/internal.h"

#include <stdlib.h>
#include <string.h>

static void set_label(json_t *obj, const char *key, const char *value)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *labels = json_object_get(meta, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		json_object_set_new(meta, "labels", labels);
	}
	json_object_set_new(labels, key, json_string(value));
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

static struct rec_entry *add_entry(rec_plan *p)
{
	p->entries = gitops_realloc(p->entries, (p->n + 1) * sizeof(*p->entries));
	struct rec_entry *e = &p->entries[p->n++];
	memset(e, 0, sizeof(*e));
	return e;
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

static void free_entries(rec_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct rec_entry *e = &p->entries[i];
		drift_result_free(e->item.result);
		json_decref(e->item.desired);
		json_decref(e->item.live);
		free(e->key);
		free(e->app_s);
		free(e->source_s);
		free(e->owner_s);
	}
	free(p->entries);
	p->entries = NULL;
	p->n = 0;
	rec_hooks_free(p);
	rec_inventory_free(p->inv);
	p->inv = NULL;
	free(p->inv_rv);
	p->inv_rv = NULL;
	free(p->prune_blocked);
	p->prune_blocked = NULL;
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

/* Builds the plan's entries at p->revision: render, inventory, live state, comparison. */
static int plan_build(rec_plan *p)
{
	rec_workspace *ws = p->ws;
	const struct mf_environment *env = p->envp;
	const char *only_app = p->only_app;
	const char *pipeline;
	int rc = rec_workspace_pipeline(&pipeline, NULL, ws);
	if (rc)
		return rc;
	mf_objects *set = NULL;
	drift_ignore *ignore = NULL;
	json_t *live_index = json_object(), *desired_keys = json_object(), *inv_keys = json_object();
	rec_progress(ws, "%s: rendering %.12s", env->name, p->revision);
	/* Every app is rendered, also with --app: what another app desires is never pruned. */
	struct scope_ctx sc = {p->client};
	struct mf_render_env_options ro = {.only_app = only_app, .all_apps = true, .failed = other_app_failed,
					   .failed_data = p, .scope = scope_lookup, .scope_data = &sc};
	if ((rc = mf_render_env_with(&set, ws->renderer, ws->repo, p->revision, env, &ro))) {
		/* A render failure (bad manifests, renderer error or timeout, missing helm or
		 * kustomize) is the input's fault, whatever code the renderer reported. */
		if (rc != GITOPS_EIO)
			rc = gitops_error_set(GITOPS_EINVALID, "%s", gitops_error_last());
		goto done;
	}
	if ((rc = build_ignore(&ignore, env)))
		goto done;
	if ((rc = rec_inventory_open(&p->inv, ws, p->client, env)))
		goto done;
	p->inv_rv = gitops_strdup(rec_inventory_rv(p->inv) ? rec_inventory_rv(p->inv) : "");
	size_t i;
	json_t *ref;
	json_array_foreach(json_object_get(p->inv->doc, "objects"), i, ref) {
		char *k = rec_ref_key(ref);
		json_object_set(inv_keys, k, ref);
		free(k);
	}

	/* Desired objects, labelled as this pipeline's, environment's and app's. */
	for (i = 0; i < mf_objects_count(set); i++) {
		const struct mf_object *mo = mf_objects_at(set, i);
		char *key = rec_object_key(mo->obj);
		json_object_set_new(desired_keys, key, json_true());
		if (only_app && strcmp(mo->app, only_app)) {
			free(key);
			continue;
		}
		if (mo->hook) { /* hooks are not desired state: the sync runs them (hooks.c) */
			free(key);
			char *src = gitops_sprintf("%s:%d", mo->file, mo->line);
			rec_hook_add(p, json_deep_copy(mo->obj), mo, src);
			free(src);
			continue;
		}
		struct rec_entry *e = add_entry(p);
		e->key = key;
		e->item.desired = json_deep_copy(mo->obj);
		set_label(e->item.desired, REC_LABEL_MANAGED_BY, "gitops");
		set_label(e->item.desired, REC_LABEL_PIPELINE, pipeline);
		set_label(e->item.desired, REC_LABEL_ENV, env->name);
		set_label(e->item.desired, REC_LABEL_APP, mo->app);
		e->app_s = gitops_strdup(mo->app);
		e->source_s = gitops_sprintf("%s:%d", mo->file, mo->line);
		json_t *iref = json_object_get(inv_keys, e->key);
		e->item.in_inventory = iref != NULL;
		e->app_moved = iref && strcmp(json_string_value(json_object_get(iref, "app")) ?: "", mo->app);
		const char *av = json_string_value(json_object_get(e->item.desired, "apiVersion"));
		const char *kind = json_string_value(json_object_get(e->item.desired, "kind"));
		rc = kube_resource_for(&e->resource, p->client, av, kind);
		if (rc == GITOPS_ENOTFOUND && crd_in_set(set, av, kind)) {
			e->resource = NULL; /* served once its CRD, applied first, is established */
			rc = GITOPS_OK;
		} else if (rc == GITOPS_ENOTFOUND) {
			rc = gitops_error_set(GITOPS_EINVALID, "%s: %s %s: %s", e->source_s, kind, json_string_value(
					      json_object_get(json_object_get(e->item.desired, "metadata"), "name")), gitops_error_last());
		}
		if (rc)
			goto done;
	}
	/* Inventory entries no app of the environment desires (candidates for pruning); with
	 * --app, only that app's entries. */
	json_array_foreach(json_object_get(p->inv->doc, "objects"), i, ref) {
		const char *app = json_string_value(json_object_get(ref, "app"));
		if (only_app && (!app || strcmp(app, only_app)))
			continue;
		char *k = rec_ref_key(ref);
		if (json_object_get(desired_keys, k)) {
			free(k);
			continue;
		}
		const struct kube_resource *r;
		if (kube_resource_for(&r, p->client, json_string_value(json_object_get(ref, "apiVersion")),
				      json_string_value(json_object_get(ref, "kind")))) {
			r = NULL; /* the kind is gone (CRD removed): so are its objects */
		}
		struct rec_entry *e = add_entry(p);
		e->key = k;
		e->resource = r;
		e->app_s = gitops_strdup(app ? app : "");
		e->source_s = gitops_strdup("inventory");
		e->item.in_inventory = true;
	}
	gitops_error_clear();

	/* Live state: one list per (kind, namespace) the plan touches, unfiltered so objects that
	 * exist without gitops' labels (made by hand, or by another tool) are seen too; never a get
	 * per object. */
	json_t *listed = json_object();
	for (i = 0; i < p->n && !rc; i++) {
		const struct rec_entry *e = &p->entries[i];
		if (!e->resource)
			continue;
		/* The namespace is the third field of the key: group/kind/namespace/name. */
		const char *k1 = strchr(e->key, '/'), *k2 = k1 ? strchr(k1 + 1, '/') : NULL;
		const char *k3 = k2 ? strchr(k2 + 1, '/') : NULL;
		char *ns = (k2 && k3 && k3 > k2 + 1) ? gitops_strndup(k2 + 1, (size_t)(k3 - k2 - 1)) : NULL;
		char *pair = gitops_sprintf("%p/%s", (const void *)e->resource, e->resource->namespaced && ns ? ns : "");
		if (!json_object_get(listed, pair)) {
			json_object_set_new(listed, pair, json_true());
			json_t *items = NULL;
			rc = kube_list(&items, NULL, p->client, e->resource, e->resource->namespaced ? ns : NULL, NULL);
			if (rc == GITOPS_OK) {
				size_t j;
				json_t *it;
				json_array_foreach(items, j, it) {
					char *k = rec_object_key(it);
					json_object_set(live_index, k, it);
					free(k);
				}
			}
			json_decref(items);
		}
		free(pair);
		free(ns);
	}
	json_decref(listed);
	if (rc)
		goto done;

	drift_options dopt = {.field_manager = DRIFT_FIELD_MANAGER, .ignore = ignore};
	for (i = 0; i < p->n; i++) {
		struct rec_entry *e = &p->entries[i];
		e->item.app = e->app_s;
		e->item.source = e->source_s;
		json_t *live = json_object_get(live_index, e->key);
		if (live)
			e->item.live = json_incref(live);
		if (!e->item.desired && !e->item.live)
			continue; /* an inventory entry already gone */
		const char *lm = e->item.live ? label(e->item.live, REC_LABEL_MANAGED_BY) : NULL;
		const char *le = e->item.live ? label(e->item.live, REC_LABEL_ENV) : NULL;
		const char *lp = e->item.live ? label(e->item.live, REC_LABEL_PIPELINE) : NULL;
		/* Objects of an earlier release carry no pipeline label; the inventory entry decides. */
		e->item.owned = lm && !strcmp(lm, "gitops") && le && !strcmp(le, env->name) && (!lp || !strcmp(lp, pipeline));
		if (!e->item.desired && !e->item.owned) {
			json_decref(e->item.live);
			e->item.live = NULL; /* not ours after all: never reported, never pruned */
			continue;
		}
		if (e->item.desired && e->item.live && !e->item.in_inventory) {
			e->item.unmanaged = true;
			e->owner_s = other_owner(e->item.live, pipeline, env->name);
			e->item.owner = e->owner_s;
		}
		if ((rc = drift_compare(&e->item.result, e->item.desired, e->item.live, &dopt)))
			goto done;
		if (drift_result_state(e->item.result) == DRIFT_MODIFIED) {
			json_t *dry = NULL;
			struct kube_apply_options ao = {.force = true, .dry_run = true};
			if (kube_apply(&dry, NULL, p->client, e->item.desired, &ao) == GITOPS_OK &&
			    dry_run_is_noop(e->item.live, dry)) {
				drift_result_free(e->item.result);
				e->item.result = NULL;
				rc = drift_compare(&e->item.result, e->item.live, e->item.live, &dopt);
			}
			json_decref(dry);
			gitops_error_clear();
			if (rc)
				goto done;
		}
	}
	/* Keep inventory entries that turned out to be gone: the sync drops them from the
	 * inventory. They have no result; rec_plan_item callers never see them. */
	size_t k = 0;
	for (i = 0; i < p->n; i++) {
		if (p->entries[i].item.result || !p->entries[i].item.desired) {
			p->entries[k++] = p->entries[i];
		} else {
			free(p->entries[i].key);
			free(p->entries[i].app_s);
			free(p->entries[i].source_s);
			free(p->entries[i].owner_s);
		}
	}
	p->n = k;
	/* Entries with a result first; gone ones (no result) at the end, counted apart. */
	size_t w = 0;
	for (i = 0; i < p->n; i++)
		if (p->entries[i].item.result) {
			struct rec_entry t = p->entries[w];
			p->entries[w++] = p->entries[i];
			p->entries[i] = t;
		}
	p->n_visible = w;
done:
	json_decref(live_index);
	json_decref(desired_keys);
	json_decref(inv_keys);
	drift_ignore_free(ignore);
	mf_objects_free(set);
	return rc;
}

int rec_plan_refresh(rec_plan *p)
{
	free_entries(p);
	return plan_build(p);
}

int rec_plan_env(rec_plan **out, rec_workspace *ws, const char *env_name, const char *revision, const char *only_app)
{
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
