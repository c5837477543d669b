/* reconcile: hooks, as Argo CD runs Helm's and its own: PreSync hooks before the app's other
 * objects, PostSync hooks after them, each waited for (a Job until complete, a Pod until it
 * ends) and deleted as its policy says; never desired state, so never drift, inventory or prune.
 * Runs on the syncing thread, with the plan it belongs to (not shared). */
#include "reconcile/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a hook Job or Pod may run when the environment sets no health timeout. */
#define HOOK_TIMEOUT_MS (5 * 60 * 1000)

static void label(json_t *obj, const char *key, const char *value)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *labels = json_object_get(meta, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		json_object_set_new(meta, "labels", labels);
	}
	json_object_set_new(labels, key, json_string(value));
}

void rec_hook_add(rec_plan *p, json_t *obj, const struct mf_object *mo, const char *source)
{
	if (mo->hook != MF_HOOK_PRE_SYNC && mo->hook != MF_HOOK_POST_SYNC) {
		json_decref(obj);
		return;
	}
	label(obj, REC_LABEL_MANAGED_BY, "gitops");
	label(obj, REC_LABEL_PIPELINE, p->inv->pipeline);
	label(obj, REC_LABEL_ENV, p->env);
	label(obj, REC_LABEL_APP, mo->app);
	p->hooks = gitops_realloc(p->hooks, (p->n_hooks + 1) * sizeof(*p->hooks));
	struct rec_hook *h = &p->hooks[p->n_hooks];
	h->obj = obj;
	h->app = gitops_strdup(mo->app);
	h->source = gitops_strdup(source);
	h->phase = mo->hook;
	h->weight = mo->hook_weight;
	h->del = mo->hook_delete;
	h->order = p->n_hooks++;
}

void rec_hooks_free(rec_plan *p)
{
	for (size_t i = 0; i < p->n_hooks; i++) {
		json_decref(p->hooks[i].obj);
		free(p->hooks[i].app);
		free(p->hooks[i].source);
	}
	free(p->hooks);
	p->hooks = NULL;
	p->n_hooks = 0;
}

static const char *str(const json_t *o, const char *k1, const char *k2)
{
	const json_t *v = json_object_get(o, k1);
	return json_string_value(k2 ? json_object_get(v, k2) : v);
}

/* A hook this pipeline and environment made (only those are ever replaced or deleted). */
static bool ours(const json_t *live, const rec_plan *p)
{
	const json_t *labels = json_object_get(json_object_get(live, "metadata"), "labels");
	const char *by = json_string_value(json_object_get(labels, REC_LABEL_MANAGED_BY));
	const char *e = json_string_value(json_object_get(labels, REC_LABEL_ENV));
	const char *pl = json_string_value(json_object_get(labels, REC_LABEL_PIPELINE));
	return by && e && pl && !strcmp(by, "gitops") && !strcmp(e, p->env) && !strcmp(pl, p->inv->pipeline);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* 1 when the hook finished well, 0 while it runs, -1 when it failed (with a reason). Only Jobs
 * and Pods run; any other kind has finished once it is applied. */
static int finished(const json_t *live, const char **why)
{
	const char *kind = str(live, "kind", NULL);
	const json_t *status = json_object_get(live, "status");
	if (!strcmp(kind, "Pod")) {
		const char *phase = json_string_value(json_object_get(status, "phase"));
		*why = phase;
		return phase && !strcmp(phase, "Succeeded") ? 1 : phase && !strcmp(phase, "Failed") ? -1 : 0;
	}
	if (!strcmp(kind, "Job")) {
		size_t i;
		json_t *c;
		json_array_foreach(json_object_get(status, "conditions"), i, c) {
			const char *t = json_string_value(json_object_get(c, "type"));
			const char *s = json_string_value(json_object_get(c, "status"));
			if (!t || !s || strcmp(s, "True"))
				continue;
			*why = json_string_value(json_object_get(c, "message"));
			if (!strcmp(t, "Complete"))
				return 1;
			if (!strcmp(t, "Failed"))
				return -1;
		}
		return 0;
	}
	return 1;
}

static int delete_and_wait(kube_client *c, const json_t *o)
{
	const char *av = str(o, "apiVersion", NULL), *kind = str(o, "kind", NULL);
	const char *ns = str(o, "metadata", "namespace"), *name = str(o, "metadata", "name");
	int rc = kube_delete(c, av, kind, ns, name, "Background", false);
	if (rc == GITOPS_ENOTFOUND)
		return gitops_error_clear(), GITOPS_OK;
	if (rc)
		return rc;
	for (int i = 0; i < 600; i++) { /* finalizers: up to a minute */
		json_t *live = NULL;
		rc = kube_get(&live, c, av, kind, ns, name);
		json_decref(live);
		if (rc == GITOPS_ENOTFOUND)
			return gitops_error_clear(), GITOPS_OK;
		if (rc)
			return rc;
		sleep_ms(100);
	}
	return gitops_error_set(GITOPS_ETIMEOUT, "still being deleted after a minute");
}

static int cmp_hooks(const void *a, const void *b)
{
	const struct rec_hook *x = *(const struct rec_hook *const *)a, *y = *(const struct rec_hook *const *)b;
	if (x->weight != y->weight)
		return x->weight < y->weight ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Runs one hook; GITOPS_OK or an error whose message says why. */
static int run_one(rec_workspace *ws, rec_plan *p, const struct rec_hook *h, bool dry_run, const char *what)
{
	const json_t *o = h->obj;
	const char *av = str(o, "apiVersion", NULL), *kind = str(o, "kind", NULL);
	const char *ns = str(o, "metadata", "namespace"), *name = str(o, "metadata", "name");
	json_t *live = NULL;
	int rc = kube_get(&live, p->client, av, kind, ns, name);
	if (rc == GITOPS_ENOTFOUND) {
		gitops_error_clear();
		rc = GITOPS_OK;
	} else if (!rc && !ours(live, p)) {
		rc = gitops_error_set(GITOPS_ECONFLICT, "it exists and is not this environment's (no gitops labels "
				      "for %s): gitops never replaces what it does not own; rename the hook or remove "
				      "the object", p->env);
	} else if (!rc && (h->del & MF_HOOK_DELETE_BEFORE_CREATION) && !dry_run) {
		rc = delete_and_wait(p->client, live);
	}
	json_decref(live);
	live = NULL;
	if (rc)
		return rc;
	struct kube_apply_options ao = {.force = true, .dry_run = dry_run};
	if ((rc = kube_apply(&live, NULL, p->client, o, &ao)))
		return rc;
	rec_progress(ws, "created %s%s", what, dry_run ? " (dry run)" : "");
	if (dry_run) {
		json_decref(live);
		return GITOPS_OK;
	}
	long long timeout = p->envp && p->envp->rollback_health_timeout_ms > 0 ? p->envp->rollback_health_timeout_ms
									     : HOOK_TIMEOUT_MS;
	long long deadline = gitops_now_ms() + timeout;
	const char *why = NULL;
	int done;
	while (!(done = finished(live, &why))) {
		if (gitops_now_ms() > deadline) {
			json_decref(live);
			return gitops_error_set(GITOPS_ETIMEOUT, "did not finish within %lld s", timeout / 1000);
		}
		sleep_ms(500);
		json_decref(live);
		live = NULL;
		if ((rc = kube_get(&live, p->client, av, kind, ns, name)))
			return rc;
	}
	char *reason = why ? gitops_strdup(why) : NULL;
	json_decref(live);
	if ((done > 0 && (h->del & MF_HOOK_DELETE_SUCCEEDED)) || (done < 0 && (h->del & MF_HOOK_DELETE_FAILED))) {
		if (delete_and_wait(p->client, o))
			rec_progress(ws, "warning: %s: deleting it per its delete policy: %s", what, gitops_error_last());
		else
			rec_progress(ws, "deleted %s (hook delete policy)", what);
	}
	rc = done > 0 ? GITOPS_OK : gitops_error_set(GITOPS_ERROR, "failed%s%s", reason ? ": " : "", reason ? reason : "");
	free(reason);
	return rc;
}

int rec_hooks_run(rec_workspace *ws, rec_plan *p, enum mf_hook phase, bool dry_run)
{
	const struct rec_hook **v = gitops_calloc(p->n_hooks + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < p->n_hooks; i++)
		if (p->hooks[i].phase == phase)
			v[n++] = &p->hooks[i];
	qsort(v, n, sizeof(*v), cmp_hooks);
	int rc = GITOPS_OK;
	for (size_t i = 0; i < n && !rc; i++) {
		const json_t *o = v[i]->obj;
		const char *ns = str(o, "metadata", "namespace");
		char *what = gitops_sprintf("%s hook %s %s%s%s", phase == MF_HOOK_PRE_SYNC ? "PreSync" : "PostSync",
					    str(o, "kind", NULL), ns ? ns : "", ns ? "/" : "", str(o, "metadata", "name"));
		rc = run_one(ws, p, v[i], dry_run, what);
		if (rc) {
			rc = gitops_error_set(rc == GITOPS_ERROR ? GITOPS_ERROR : rc, "%s (%s): %s", what, v[i]->source,
					      gitops_error_last());
			rec_progress(ws, "failed  %s", gitops_error_last());
		}
		free(what);
	}
	free(v);
	return rc;
}
