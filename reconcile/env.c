/* reconcile/env: the environment verbs as library calls: sync with its record in the state
 * branch, status (the JSON of `gitops status --json` and of web's /api/v1/status), drift since
 * the last sync, and the revision render shows. cli/ and the daemon call these. */
#include "history/history.h"
#include "internal.h"
#include "common/mask.h"

#include <stdlib.h>
#include <string.h>

static const char *sv(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

/* ---- revision ------------------------------------------------------------------------------ */

int rec_resolve_shown_revision(char out[41], rec_workspace *ws, const struct mf_environment *env, const char *rev)
{
	int rc = rec_resolve_revision(out, ws, env, rev);
	/* An environment promoted `from` another with nothing promoted yet: the main branch, which
	 * is what its first promotion would be made from. */
	if (rc == GITOPS_EINVALID && !rev && !env->track)
		rc = rec_resolve_revision(out, ws, env, rec_workspace_main_sha(ws));
	return rc;
}

/* ---- sync ---------------------------------------------------------------------------------- */

struct collect {
	struct rec_env_sync_result *r;
	void (*next)(void *ud, const char *line);
	void *next_ud;
};

/* "failed  <Kind ns/name> (<source>): <reason>" -> object and reason. */
static void keep_failure(struct rec_env_sync_result *r, const char *line)
{
	if (r->n_failures == HIST_MAX_FAILURES)
		return;
	line += strcspn(line, " "); /* "failed  " or "skipped " */
	line += strspn(line, " ");
	const char *src = strstr(line, " ("), *why = strstr(line, "): ");
	const char *colon = strstr(line, ": ");
	bool with_source = src && why && src < why && (!colon || src < colon); /* "(file:line): " */
	size_t on = with_source ? (size_t)(src - line) : colon ? (size_t)(colon - line) : strlen(line);
	const char *reason = with_source ? why + 3 : colon ? colon + 2 : "";
	r->failures[r->n_failures].object = gitops_strndup(line, on);
	r->failures[r->n_failures].reason = gitops_strdup(reason);
	r->n_failures++;
}

bool rec_progress_is_failure(const char *line)
{
	return !strncmp(line, "failed ", 7) ||
	       (!strncmp(line, "skipped ", 8) && (strstr(line, "not managed by gitops") || strstr(line, "belongs to")));
}

/* The sync's progress lines (already masked, one at a time under the workspace's progress
 * lock): failures are kept for the event, every line goes on to the caller's callback. */
static void collect_line(void *ud, const char *line)
{
	struct collect *c = ud;
	if (rec_progress_is_failure(line))
		keep_failure(c->r, line);
	if (c->next)
		c->next(c->next_ud, line);
}

static void set_progress(rec_workspace *ws, void (*fn)(void *, const char *), void *ud)
{
	pthread_mutex_lock(&ws->progress_lock);
	ws->opt.progress = fn;
	ws->opt.progress_ud = ud;
	pthread_mutex_unlock(&ws->progress_lock);
}

int rec_env_sync(struct rec_env_sync_result *out, rec_workspace *ws, rec_plan *plan, const struct rec_env_sync_options *opt)
{
	static const struct rec_env_sync_options none = {0};
	if (!opt)
		opt = &none;
	memset(out, 0, sizeof(*out));
	struct collect c = {.r = out, .next = ws->opt.progress, .next_ud = ws->opt.progress_ud};
	set_progress(ws, collect_line, &c);
	int rc = rec_sync(&out->rep, ws, plan, &opt->sync);
	set_progress(ws, c.next, c.next_ud);
	snprintf(out->revision, sizeof(out->revision), "%s", rec_plan_revision(plan));
	/* the apps this sync changed, for the event (history --app finds environment-wide syncs);
	 * read after rec_sync, which plans again when another sync changed the environment */
	for (size_t i = 0; i < rec_plan_count(plan) && !opt->only_app; i++) {
		const struct rec_item *it = rec_plan_item(plan, i);
		drift_state s = drift_result_state(it->result);
		if (s == DRIFT_IN_SYNC || (s == DRIFT_EXTRA && !opt->sync.prune) || !it->app)
			continue;
		bool seen = false;
		for (size_t k = 0; k < out->n_apps && !seen; k++)
			seen = !strcmp(out->apps[k], it->app);
		if (!seen) {
			out->apps = gitops_realloc(out->apps, (out->n_apps + 1) * sizeof(*out->apps));
			out->apps[out->n_apps++] = gitops_strdup(it->app);
		}
	}
	if (!opt->record || opt->sync.dry_run)
		return rc;
	/* the deploy history: the sync's own error stays the thread's last error; a recording
	 * failure is kept apart in out->record_error */
	char *err = rc ? gitops_strdup(gitops_error_last()) : NULL;
	struct hist_event ev = {.type = rc == 0 && out->rep.failed == 0 ? "sync.succeeded" : "sync.failed",
				.environment = rec_plan_env_name(plan), .app = opt->only_app, .actor = opt->actor,
				.trigger = opt->trigger, .reason = err};
	json_t *rec = NULL;
	if (rec_env_record_sync(&rec, ws, NULL, out, &ev))
		out->record_error = gitops_strdup(gitops_error_last());
	else if (rec)
		out->event_id = gitops_strdup(sv(rec, "id"));
	json_decref(rec);
	if (err)
		gitops_error_set(rc, "%s", err);
	else
		gitops_error_clear();
	free(err);
	return rc;
}

int rec_env_record_sync(json_t **out, rec_workspace *ws, hist *h, const struct rec_env_sync_result *r,
			const struct hist_event *base)
{
	if (out)
		*out = NULL;
	struct hist_event ev = *base;
	ev.sha = r->revision;
	ev.has_counts = true;
	ev.created = r->rep.created;
	ev.updated = r->rep.updated;
	ev.unchanged = r->rep.unchanged;
	ev.pruned = r->rep.pruned;
	ev.failed = r->rep.failed;
	ev.duration_ms = r->rep.ms;
	ev.apps = (const char *const *)r->apps;
	ev.n_apps = r->n_apps;
	ev.failures = r->failures;
	ev.n_failures = r->n_failures;
	if (!ev.commit_time && mf_repo_commit_time(&ev.commit_time, ws->repo, r->revision))
		ev.commit_time = 0; /* not in the mirror: the event goes without its lead time */
	hist *own = NULL;
	int rc = 0;
	if (!h) {
		rc = rec_workspace_history(&own, ws, NULL, NULL);
		if (!rc && ws->opt.signing_key && *ws->opt.signing_key)
			rc = hist_set_signing_key(own, ws->opt.signing_key);
		h = own;
	}
	if (!rc)
		rc = hist_record_sync(out, h, &ev);
	hist_free(own);
	return rc;
}

void rec_env_sync_result_clear(struct rec_env_sync_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_failures; i++) {
		free((char *)r->failures[i].object);
		free((char *)r->failures[i].reason);
	}
	for (size_t i = 0; i < r->n_apps; i++)
		free(r->apps[i]);
	free(r->apps);
	free(r->event_id);
	free(r->record_error);
	memset(r, 0, sizeof(*r));
}

/* ---- drift --------------------------------------------------------------------------------- */

int rec_env_drift(json_t **out, bool *never_synced, rec_workspace *ws, const struct mf_environment *env)
{
	*out = NULL;
	if (never_synced)
		*never_synced = false;
	struct rec_inventory_info info;
	int rc = rec_inventory_info(&info, ws, env);
	if (rc)
		return rc;
	json_t *arr = json_array();
	if (!info.revision[0]) {
		if (never_synced)
			*never_synced = true;
		*out = arr;
		return 0;
	}
	rec_plan *plan = NULL;
	if ((rc = rec_plan_env(&plan, ws, env->name, info.revision, NULL))) {
		json_decref(arr);
		return rc;
	}
	for (size_t i = 0; i < rec_plan_count(plan); i++) {
		const struct rec_item *it = rec_plan_item(plan, i);
		if (it->unmanaged)
			continue; /* not this pipeline's and environment's: diff marks it, drift has none */
		drift_state s = drift_result_state(it->result);
		/* DELETED: missing now, and in the inventory (gitops applied it); missing and never
		 * applied is not drift but a change in git (gitops diff shows it) */
		const char *word = s == DRIFT_MODIFIED ? "MODIFIED" : s == DRIFT_EXTRA ? "EXTRA"
				   : (s == DRIFT_MISSING && it->in_inventory) ? "DELETED" : NULL;
		if (!word)
			continue;
		json_t *j;
		drift_result_to_json(&j, it->result);
		json_object_set_new(j, "state", json_string(word));
		json_object_set_new(j, "environment", json_string(env->name));
		json_object_set_new(j, "app", json_string(it->app));
		json_array_append_new(arr, j);
	}
	rec_plan_free(plan);
	*out = arr;
	return 0;
}

/* ---- status -------------------------------------------------------------------------------- */

/* One row per app: source, revision, sync state, health (of its live objects, by the health
 * gate's rules), object counts. */
static json_t *app_rows(rec_workspace *ws, const struct mf_environment *env, rec_plan *plan, const char *revision)
{
	json_t *apps = json_array();
	for (size_t a = 0; a < env->n_apps; a++) {
		const struct mf_app *app = &env->apps[a];
		size_t n = 0, counts[4] = {0, 0, 0, 0};
		bool unmanaged = false;
		enum rec_health worst = REC_HEALTHY;
		char reason[REC_HEALTH_REASON_MAX];
		char *worst_why = NULL;
		for (size_t i = 0; plan && i < rec_plan_count(plan); i++) {
			const struct rec_item *it = rec_plan_item(plan, i);
			if (!it->app || strcmp(it->app, app->name))
				continue;
			drift_state s = drift_result_state(it->result);
			if ((unsigned)s < 4)
				counts[s]++;
			unmanaged |= it->unmanaged;
			if (!it->desired)
				continue;
			n++;
			enum rec_health hs = it->live ? rec_health_assess(it->live, reason, sizeof(reason)) : REC_PROGRESSING;
			if (hs > worst || (!worst_why && hs != REC_HEALTHY)) {
				worst = hs;
				free(worst_why);
				worst_why = it->live ? gitops_sprintf("%s %s: %s", drift_result_kind(it->result),
								      drift_result_name(it->result), reason)
						     : gitops_sprintf("%s %s: missing", drift_result_kind(it->result),
								      drift_result_name(it->result));
			}
		}
		enum mf_renderer_kind kind = app->renderer;
		if (revision && mf_renderer_detect(&kind, ws->repo, revision, app))
			kind = app->renderer;
		const char *state = !plan ? "Unknown"
				  : (counts[DRIFT_MODIFIED] || counts[DRIFT_MISSING] || counts[DRIFT_EXTRA] || unmanaged) ? "OutOfSync"
				  : "Synced";
		json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:{s:I, s:I, s:I, s:I}}", "app", app->name,
					"source", mf_renderer_name(kind), "path", app->path, "revision", revision ? revision : "",
					"state", state, "health", plan ? rec_health_name(worst) : NULL, "objects", (json_int_t)n,
					"counts", "inSync", (json_int_t)counts[DRIFT_IN_SYNC], "modified",
					(json_int_t)counts[DRIFT_MODIFIED], "missing", (json_int_t)counts[DRIFT_MISSING], "extra",
					(json_int_t)counts[DRIFT_EXTRA]);
		if (worst_why && worst != REC_HEALTHY)
			json_object_set_new(row, "healthReason", json_string(worst_why));
		free(worst_why);
		json_array_append_new(apps, row);
	}
	return apps;
}

void rec_status_history(json_t *row, hist *h, const char *env)
{
	json_t *st = NULL, *pending = NULL;
	if (h && hist_env_state(&st, h, env))
		st = NULL;
	if (h && hist_pending(&pending, h, env))
		pending = NULL;
	gitops_error_clear();
	json_t *last = json_object_get(st, "lastSync");
	json_t *pin = NULL;
	if (*sv(st, "pinned"))
		pin = json_pack("{s:s, s:s, s:s, s:s, s:s?}", "sha", sv(st, "pinned"), "reason", sv(st, "pinReason"), "by",
				sv(st, "pinnedBy"), "at", sv(st, "pinnedAt"), "promotion",
				json_string_value(json_object_get(st, "promotion")));
	json_t *pend = json_array();
	size_t i;
	json_t *p;
	json_array_foreach(pending, i, p)
		json_array_append_new(pend, json_pack("{s:s, s:s, s:I, s:I}", "id", sv(p, "id"), "sha", sv(p, "sha"), "approvals",
						      (json_int_t)json_array_size(json_object_get(p, "approvals")), "required",
						      json_integer_value(json_object_get(p, "required"))));
	json_object_set_new(row, "syncedAt", json_string(last ? sv(last, "time") : ""));
	json_object_set_new(row, "pin", pin ? pin : json_null());
	json_object_set_new(row, "pending", pend);
	json_object_set(row, "lastSync", last ? last : json_null());
	/* what gitops run recorded: a suspension, the health after the last gate, its last error */
	json_t *sus = json_object_get(st, "suspended"), *derr = json_object_get(st, "daemonError");
	json_object_set_new(row, "suspended", json_boolean(sus != NULL));
	if (sus)
		json_object_set(row, "suspension", sus);
	if (*sv(st, "health"))
		json_object_set_new(row, "health", json_string(sv(st, "health")));
	if (derr)
		json_object_set_new(row, "daemonError", json_string(sv(derr, "reason")));
	json_decref(st);
	json_decref(pending);
}

int rec_env_status(json_t **out, rec_workspace *ws, hist *h, const struct mf_environment *env,
		   const struct rec_status_options *opt)
{
	/* the keys in the order gitops status --json has always printed them */
	json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i}}", "environment", env->name, "target", "",
				"synced", "", "syncedAt", "", "state", "Never", "counts", "inSync", 0, "modified", 0,
				"missing", 0, "extra", 0);
	rec_status_history(row, h, env->name);
	struct rec_inventory_info info;
	int rc = rec_inventory_info(&info, ws, env);
	/* The target: the pin (promotion or rollback), else the tracked branch's head; an
	 * environment promoted `from` another has none until its first promotion. */
	char target[41] = "";
	if (!rc) {
		json_object_set_new(row, "synced", json_string(info.revision));
		rc = rec_resolve_revision(target, ws, env, NULL);
		if (rc == GITOPS_EINVALID && !env->track) {
			target[0] = '\0';
			rc = 0;
		}
	}
	const char *planned = target[0] ? target : info.revision[0] ? info.revision : NULL;
	rec_plan *plan = NULL;
	/* --apps judges health on the live objects: they are kept whole */
	struct rec_plan_options po = {.revision = planned, .keep_live = opt && opt->apps};
	if (!rc && planned && !(rc = rec_plan_new(&plan, ws, env->name, &po))) {
		size_t counts[4] = {0, 0, 0, 0};
		rec_plan_counts(plan, counts);
		json_object_set_new(row, "counts", json_pack("{s:I, s:I, s:I, s:I}", "inSync", (json_int_t)counts[0], "modified",
							     (json_int_t)counts[1], "missing", (json_int_t)counts[2], "extra",
							     (json_int_t)counts[3]));
		json_object_set_new(row, "state", json_string(!info.revision[0] ? "Never"
							      : rec_plan_in_sync(plan) ? "Synced" : "OutOfSync"));
	}
	json_object_set_new(row, "target", json_string(target));
	if (opt && opt->apps)
		json_object_set_new(row, "apps", app_rows(ws, env, plan, planned));
	rec_plan_free(plan);
	if (rc) {
		json_object_set_new(row, "state", json_string("Unknown"));
		/* apiserver and renderer text: masked, as everything printed (common/mask.h) */
		char *masked = gitops_mask_text(gitops_error_last(), NULL);
		json_object_set_new(row, "error", json_string(masked));
		free(masked);
	}
	*out = row;
	return rc;
}

int rec_status(json_t **out, rec_workspace *ws, hist *h, const char *only_env, const struct rec_status_options *opt)
{
	*out = NULL;
	const struct mf_environment *only = NULL;
	const char *pipeline = NULL;
	int rc;
	if ((only_env && (rc = rec_workspace_env(&only, ws, only_env))) || (rc = rec_workspace_pipeline(&pipeline, NULL, ws)))
		return rc;
	const struct mf_config *cfg = rec_workspace_config(ws);
	json_t *arr = json_array();
	int first = 0;
	char *first_msg = NULL;
	for (size_t i = 0; i < cfg->n_envs; i++) {
		const struct mf_environment *env = &cfg->envs[i];
		if (only && only != env)
			continue;
		json_t *row = NULL;
		int erc = rec_env_status(&row, ws, h, env, opt);
		if (erc && !first) {
			first = erc;
			first_msg = gitops_strdup(gitops_error_last());
		}
		json_object_set_new(row, "pipeline", json_string(pipeline));
		json_array_append_new(arr, row);
	}
	*out = arr;
	if (first)
		gitops_error_set(first, "%s", first_msg);
	else
		gitops_error_clear();
	free(first_msg);
	return first;
}
