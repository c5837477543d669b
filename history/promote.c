/* history/promote.c: the operations that change where an environment points: recording syncs,
 * promotions (upstream gate, approval gate), signed approvals and rejections, rollback, resume.
 * Every precondition is checked inside the append loop against the newest snapshot, so a
 * writer that lost a race re-checks before it retries. */
#include "history/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static bool streq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* ---- plain events ------------------------------------------------------------------------ */

static long long commit_time_in(git_repository *repo, const char *sha)
{
	git_oid oid;
	git_commit *c = NULL;
	long long t = 0;
	if (repo && git_oid_fromstr(&oid, sha) == 0 && git_commit_lookup(&c, repo, &oid) == 0)
		t = (long long)git_commit_time(c);
	git_commit_free(c);
	git_error_clear();
	return t;
}

int hist_record(json_t **out, hist *h, const struct hist_event *ev)
{
	if (out)
		*out = NULL;
	if (ev->type && (!strncmp(ev->type, "promotion.", 10) || !strcmp(ev->type, "rollback") || !strcmp(ev->type, "resume") ||
			 !strcmp(ev->type, "suspend")))
		return gitops_error_set(GITOPS_EINVALID, "%s events are written by gitops promote / approve / reject / "
					"rollback / resume / suspend, which check their preconditions", ev->type);
	struct hist_event e = *ev;
	if (!e.commit_time && e.sha)
		e.commit_time = commit_time_in(h->repo, e.sha);
	json_t *j;
	int rc = hist_event_build(&j, &e);
	if (!rc)
		rc = hist_append(h, j, NULL, NULL, NULL);
	if (!rc && out)
		*out = json_incref(j);
	json_decref(j);
	return rc;
}

/* No-op reconciles are not events (DESIGN): a sync that changed nothing at the SHA the
 * environment last synced successfully is skipped. A new SHA is recorded even when no object
 * changed: that SHA now runs there. */
static int skip_noop(void *ud, struct hist_snap *s, json_t *ev, bool *skip)
{
	json_t *e;
	int rc = hist_snap_env(&e, s, str(ev, "environment"));
	if (rc)
		return rc;
	json_t *last = json_object_get(e, "lastSync");
	const char *app = str(ev, "app");
	bool env_same = streq(str(last, "sha"), str(ev, "sha")) && streq(str(last, "result"), "succeeded");
	if (!app) {
		*skip = env_same;
		return 0;
	}
	/* one app: its own last sync, or a later sync of the whole environment, at this SHA */
	json_t *a = json_object_get(json_object_get(e, "apps"), app);
	bool app_newer = a && (!str(last, "time") || (str(a, "time") && strcmp(str(a, "time"), str(last, "time")) > 0));
	*skip = app_newer ? streq(str(a, "sha"), str(ev, "sha")) && streq(str(a, "result"), "succeeded") : env_same;
	return 0;
}

int hist_record_sync(json_t **out, hist *h, const struct hist_event *sync)
{
	if (out)
		*out = NULL;
	if (!sync->type || strncmp(sync->type, "sync.", 5))
		return gitops_error_set(GITOPS_EINVALID, "hist_record_sync records sync.* events, not %s",
					sync->type ? sync->type : "(none)");
	struct hist_event ev = *sync;
	if (!ev.commit_time && ev.sha)
		ev.commit_time = commit_time_in(h->repo, ev.sha); /* the state branch in the manifests repository */
	json_t *j;
	int rc = hist_event_build(&j, &ev);
	if (rc)
		return rc;
	bool noop = !strcmp(ev.type, "sync.succeeded") && !ev.failed && !ev.created && !ev.updated && !ev.pruned;
	bool skipped = false;
	rc = hist_append(h, j, noop ? skip_noop : NULL, NULL, &skipped);
	if (!rc && out && !skipped)
		*out = json_incref(j);
	json_decref(j);
	return rc;
}

/* ---- snapshot reads ---------------------------------------------------------------------- */

int hist_env_state(json_t **out, hist *h, const char *env)
{
	*out = NULL;
	struct hist_snap *s;
	json_t *e;
	int rc = hist_snapshot(&s, h);
	if (rc)
		return rc;
	if (!(rc = hist_snap_env(&e, s, env)))
		*out = json_deep_copy(e);
	hist_snap_free(s);
	return rc;
}

int hist_pin(char out[41], hist *h, const char *env)
{
	json_t *e;
	int rc = hist_env_state(&e, h, env);
	if (rc)
		return rc;
	const char *p = str(e, "pinned");
	if (p && strlen(p) == 40) {
		memcpy(out, p, 41);
	} else {
		out[0] = '\0';
		rc = gitops_error_set(GITOPS_ENOTFOUND, "environment %s is not pinned in %s", env, h->desc);
	}
	json_decref(e);
	return rc;
}

/* Finds a decided promotion in the snapshot's recent list (borrowed) or NULL. */
static json_t *find_decided(struct hist_snap *s, const char *id)
{
	json_t *dec, *d;
	size_t i;
	if (hist_snap_decided(&dec, s))
		return NULL;
	json_array_foreach(dec, i, d)
		if (streq(str(d, "id"), id))
			return d;
	return NULL;
}

int hist_promotion_get(json_t **out, hist *h, const char *id)
{
	*out = NULL;
	struct hist_snap *s;
	json_t *p;
	int rc = hist_snapshot(&s, h);
	if (rc)
		return rc;
	if ((rc = hist_snap_prom(&p, s, id)) == 0) {
		json_t *d = p ? NULL : find_decided(s, id);
		if (p)
			*out = json_deep_copy(p);
		else if (d)
			*out = json_deep_copy(d);
		else
			rc = gitops_error_set(GITOPS_ENOTFOUND, "no promotion %s in %s", id, h->desc);
	}
	hist_snap_free(s);
	return rc;
}

static int by_requested_at(const void *a, const void *b)
{
	const char *x = str(*(json_t *const *)a, "requestedAt"), *y = str(*(json_t *const *)b, "requestedAt");
	return strcmp(x ? x : "", y ? y : "");
}

int hist_pending(json_t **out, hist *h, const char *env)
{
	*out = NULL;
	struct hist_snap *s;
	json_t *pending;
	int rc = hist_snapshot(&s, h);
	if (rc)
		return rc;
	if ((rc = hist_snap_pending(&pending, s)) == 0) {
		size_t n = 0, cap = json_object_size(pending);
		json_t **v = gitops_calloc(cap + 1, sizeof(*v));
		const char *k;
		json_t *p;
		json_object_foreach(pending, k, p)
			if (json_is_object(p) && streq(str(p, "status"), "pending") && (!env || streq(str(p, "environment"), env)))
				v[n++] = p;
		qsort(v, n, sizeof(*v), by_requested_at);
		*out = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(*out, json_deep_copy(v[i]));
		free(v);
	}
	hist_snap_free(s);
	return rc;
}

/* ---- promote ----------------------------------------------------------------------------- */

struct promote_ctx {
	const struct mf_environment *env, *up;
	const char *sha;
	json_t *result;
	bool existing;
};

/* A healthy deploy counts when the environment lists no reporters, or one of them signed it. */
static bool counts(const json_t *deploy, const struct mf_environment *e)
{
	if (!e || !e->n_reporters)
		return true;
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(deploy, "keys"), i, k)
		if (hist_key_listed(json_string_value(k), e->reporters, e->n_reporters, NULL))
			return true;
	return false;
}

static bool deployed_healthy(json_t *envstate, const char *sha, const struct mf_environment *e)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(envstate, "deployed"), i, d)
		if (streq(str(d, "sha"), sha) && counts(d, e))
			return true;
	return false;
}

static int promote_prep(void *ud, struct hist_snap *s, json_t *ev, bool *skip)
{
	struct promote_ctx *c = ud;
	json_t *target, *up, *pending;
	int rc;
	json_decref(c->result);
	c->result = NULL;
	if ((rc = hist_snap_env(&target, s, c->env->name)) || (rc = hist_snap_pending(&pending, s)))
		return rc;
	const char *k;
	json_t *p;
	json_object_foreach(pending, k, p) {
		if (!json_is_null(p) && streq(str(p, "environment"), c->env->name) && streq(str(p, "sha"), c->sha)) {
			c->result = json_deep_copy(p);
			c->existing = *skip = true;
			return 0;
		}
	}
	if (streq(str(target, "pinned"), c->sha) && str(target, "promotion")) {
		const char *pid = str(target, "promotion");
		json_t *d = find_decided(s, pid);
		c->result = d ? json_deep_copy(d)
			      : json_pack("{s:s, s:s, s:s, s:s}", "id", pid, "environment", c->env->name, "sha", c->sha,
					  "status", "applied");
		c->existing = *skip = true;
		return 0;
	}
	if ((rc = hist_snap_env(&up, s, c->env->from)))
		return rc;
	for (int side = 0; side < 2; side++) {
		json_t *rb = json_object_get(side ? up : target, "rolledBack");
		size_t i;
		json_t *x;
		json_array_foreach(rb, i, x) {
			if (streq(str(x, "sha"), c->sha))
				return gitops_error_set(GITOPS_EFORBIDDEN, "promotion of %.12s to %s refused: it was rolled back "
							"in %s after its health gate failed (event %s)", c->sha, c->env->name,
							side ? c->env->from : c->env->name, str(x, "event"));
		}
	}
	if (!deployed_healthy(up, c->sha, c->up)) {
		const char *last = str(up, "lastHealthy");
		if (c->up && c->up->n_reporters && deployed_healthy(up, c->sha, NULL))
			return gitops_error_set(GITOPS_EFORBIDDEN, "promotion of %.12s to %s refused: %s lists reporters and "
						"no healthy record of it there is signed by one of them (an unsigned or "
						"unlisted record does not count)", c->sha, c->env->name, c->env->from);
		return gitops_error_set(GITOPS_EFORBIDDEN, "promotion of %.12s to %s refused: it never ran healthy in %s, "
					"the upstream environment (%s%.12s)", c->sha, c->env->name, c->env->from,
					last ? "last healthy there: " : "nothing deployed healthy there yet", last ? last : "");
	}
	bool gated = c->env->approval_required > 0;
	json_object_set_new(ev, "status", json_string(gated ? "pending" : "applied"));
	c->result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:[]}", "id", str(ev, "promotion"), "environment",
			      c->env->name, "sha", c->sha, "from", c->env->from, "status", gated ? "pending" : "applied",
			      "required", c->env->approval_required, "requestedBy", str(ev, "actor"), "requestedAt",
			      str(ev, "time"), "approvals");
	return 0;
}

static json_t *action_event(const char *type, const char *env, const char *sha, const struct hist_action *act)
{
	struct hist_event e = {.type = type, .environment = env, .sha = sha, .duration_ms = -1,
			       .actor = act ? act->actor : NULL, .trigger = act ? act->trigger : NULL,
			       .reason = act ? act->reason : NULL};
	json_t *j = NULL;
	/* build without validation of the type-specific fields the caller adds next */
	char id[13], now[32];
	hist_new_id(id);
	hist_format_time(now, hist_now_wall_ms());
	char *actor = e.actor && *e.actor ? gitops_strdup(e.actor) : hist_default_actor();
	j = json_pack("{s:i, s:s, s:s, s:s, s:s}", "v", 1, "id", id, "time", now, "type", type, "environment", env);
	if (sha)
		json_object_set_new(j, "sha", json_string(sha));
	json_object_set_new(j, "actor", json_string(actor));
	json_object_set_new(j, "trigger", json_string(e.trigger ? e.trigger : hist_default_trigger()));
	if (e.reason && *e.reason)
		json_object_set_new(j, "reason", json_string(e.reason));
	free(actor);
	return j;
}

int hist_promote(json_t **out, bool *existing, hist *h, const struct mf_config *cfg, const char *env,
		 const char *sha, const struct hist_action *act)
{
	*out = NULL;
	if (existing)
		*existing = false;
	const struct mf_environment *e = mf_config_env(cfg, env);
	if (!e)
		return gitops_error_set(GITOPS_EINVALID, "gitops.yaml: no environment \"%s\"", env);
	if (!e->from)
		return gitops_error_set(GITOPS_EINVALID, "environment %s tracks %s and has no upstream: promotions go to "
					"environments with `from` (use gitops rollback / resume to pin or unpin %s)",
					env, e->track ? e->track : "a branch", env);
	json_t *ev = action_event("promotion.requested", env, sha, act);
	json_object_set(ev, "promotion", json_object_get(ev, "id"));
	json_object_set_new(ev, "from", json_string(e->from));
	json_object_set_new(ev, "required", json_integer(e->approval_required));
	struct promote_ctx c = {.env = e, .up = mf_config_env(cfg, e->from), .sha = sha};
	int rc = hist_append(h, ev, promote_prep, &c, NULL);
	json_decref(ev);
	if (rc) {
		json_decref(c.result);
		return rc;
	}
	*out = c.result;
	if (existing)
		*existing = c.existing;
	return 0;
}

/* ---- approve / reject -------------------------------------------------------------------- */

/* The first whitespace-separated token of a key line. Caller frees. */
static char *key_token(const char *k)
{
	while (k && isspace((unsigned char)*k))
		k++;
	size_t n = 0;
	while (k && k[n] && !isspace((unsigned char)k[n]))
		n++;
	return gitops_strndup(k ? k : "", n);
}

struct decide_ctx {
	const struct mf_config *cfg;
	const char *id, *pub, *sig;
	bool reject;
	json_t *result;
};

/* Which promotion a signature that failed for `id` was made for, if any we know (replay). */
static const char *replay_of(struct hist_snap *s, struct decide_ctx *c, const char *decision, char **what)
{
	json_t *pending, *dec, *p;
	const char *k;
	size_t i;
	if (!hist_snap_pending(&pending, s)) {
		json_object_foreach(pending, k, p) {
			if (json_is_null(p) || streq(k, c->id))
				continue;
			if (!hist_verify_signature(c->pub, c->sig, decision, k, str(p, "environment"), str(p, "sha"))) {
				*what = gitops_sprintf("%s (%s at %.12s)", k, str(p, "environment"), str(p, "sha"));
				return k;
			}
		}
	}
	if (!hist_snap_decided(&dec, s)) {
		json_array_foreach(dec, i, p) {
			if (streq(str(p, "id"), c->id))
				continue;
			if (!hist_verify_signature(c->pub, c->sig, decision, str(p, "id"), str(p, "environment"), str(p, "sha"))) {
				*what = gitops_sprintf("%s (%s at %.12s)", str(p, "id"), str(p, "environment"), str(p, "sha"));
				return str(p, "id");
			}
		}
	}
	gitops_error_clear();
	return NULL;
}

static int decide_prep(void *ud, struct hist_snap *s, json_t *ev, bool *skip)
{
	struct decide_ctx *c = ud;
	const char *decision = c->reject ? "reject" : "approve";
	json_t *p;
	int rc = hist_snap_prom(&p, s, c->id);
	if (rc)
		return rc;
	if (!p) {
		json_t *d = find_decided(s, c->id);
		if (d)
			return gitops_error_set(GITOPS_EFORBIDDEN, "promotion %s is no longer pending: it was %s", c->id,
						str(d, "status"));
		return gitops_error_set(GITOPS_ENOTFOUND, "no pending promotion %s (see gitops history --type promotion.)",
					c->id);
	}
	const char *env = str(p, "environment"), *sha = str(p, "sha");
	const struct mf_environment *e = mf_config_env(c->cfg, env);
	if (!e)
		return gitops_error_set(GITOPS_EINVALID, "gitops.yaml: no environment \"%s\" (promotion %s)", env, c->id);
	char *pub = key_token(c->pub);
	const struct mf_approver *who = NULL;
	for (size_t i = 0; i < e->n_approvers && !who; i++) {
		char *k = key_token(e->approvers[i].key);
		if (!strcmp(k, pub))
			who = &e->approvers[i];
		free(k);
	}
	if (!who) {
		rc = gitops_error_set(GITOPS_EFORBIDDEN, "refused: the key %.24s... is not an approver of %s in gitops.yaml "
				      "(unknown key)", pub, env);
		goto out;
	}
	rc = hist_verify_signature(pub, c->sig, decision, c->id, env, sha);
	if (rc == GITOPS_EFORBIDDEN || rc == GITOPS_EINVALID) {
		char *what = NULL;
		const struct decide_ctx cc = *c;
		struct decide_ctx tmp = cc;
		tmp.pub = pub;
		if (rc == GITOPS_EFORBIDDEN && replay_of(s, &tmp, decision, &what))
			rc = gitops_error_set(GITOPS_EFORBIDDEN, "refused: replayed signature: %s's signature was made for "
					      "promotion %s, not %s", who->name, what, c->id);
		else
			rc = gitops_error_set(GITOPS_EFORBIDDEN, "refused: forged or corrupt signature: it does not verify "
					      "with %s's key for promotion %s (%s at %.12s)", who->name, c->id, env, sha);
		free(what);
		goto out;
	} else if (rc) {
		goto out;
	}
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(p, "approvals"), i, a) {
		if (streq(str(a, "approver"), who->name) || streq(str(a, "key"), pub)) {
			rc = gitops_error_set(GITOPS_EFORBIDDEN, "refused: %s already %s promotion %s (duplicate approval)",
					      who->name, streq(str(a, "decision"), "reject") ? "rejected" : "approved", c->id);
			goto out;
		}
	}
	json_object_set_new(ev, "environment", json_string(env));
	json_object_set_new(ev, "sha", json_string(sha));
	json_object_set_new(ev, "promotion", json_string(c->id));
	json_object_set(ev, "required", json_object_get(p, "required"));
	json_object_set_new(ev, "approvals", json_pack("[{s:s, s:s, s:s, s:s}]", "approver", who->name, "key", pub,
						       "signature", c->sig, "decision", decision));
	json_decref(c->result);
	c->result = json_deep_copy(p);
	json_t *na = json_deep_copy(json_array_get(json_object_get(ev, "approvals"), 0));
	json_object_set(na, "time", json_object_get(ev, "time"));
	json_array_append_new(json_object_get(c->result, "approvals"), na);
	size_t n = 0;
	json_array_foreach(json_object_get(c->result, "approvals"), i, a)
		n += streq(str(a, "decision"), "approve");
	const char *status = c->reject ? "rejected"
			   : n >= (size_t)json_integer_value(json_object_get(p, "required")) ? "applied" : "pending";
	json_object_set_new(c->result, "status", json_string(status));
	*skip = false;
out:
	free(pub);
	return rc;
}

int hist_decide(json_t **out, hist *h, const struct mf_config *cfg, const char *id, const char *pub,
		const char *sig, bool reject, const struct hist_action *act)
{
	if (out)
		*out = NULL;
	/* environment and sha are filled in from the promotion by decide_prep */
	json_t *ev = action_event(reject ? "promotion.rejected" : "promotion.approved", "-", NULL, act);
	struct decide_ctx c = {.cfg = cfg, .id = id, .pub = pub, .sig = sig, .reject = reject};
	int rc = hist_append(h, ev, decide_prep, &c, NULL);
	json_decref(ev);
	if (!rc && out)
		*out = c.result;
	else
		json_decref(c.result);
	return rc;
}

/* ---- rollback / resume ------------------------------------------------------------------- */

struct rollback_ctx {
	const struct mf_environment *env;
	const char *to;
	int steps;
};

static int rollback_prep(void *ud, struct hist_snap *s, json_t *ev, bool *skip)
{
	struct rollback_ctx *c = ud;
	json_t *e;
	int rc = hist_snap_env(&e, s, c->env->name);
	if (rc)
		return rc;
	json_t *dep = json_object_get(e, "deployed");
	size_t n = json_array_size(dep);
	/* distinct healthy SHAs by their first deploy, newest first: "earlier" means deployed
	 * earlier, so a redeploy after a rollback does not make the rolled-back SHA "previous" */
	const char **list = gitops_calloc(n + 1, sizeof(*list));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		const char *sh = str(json_array_get(dep, i), "sha");
		if (!counts(json_array_get(dep, i), c->env))
			continue; /* not vouched for by a listed reporter */
		bool seen = false;
		for (size_t j = 0; j < m && !seen; j++)
			seen = !strcmp(list[j], sh);
		if (!seen)
			list[m++] = sh;
	}
	for (size_t i = 0; i < m / 2; i++) {
		const char *t = list[i];
		list[i] = list[m - 1 - i];
		list[m - 1 - i] = t;
	}
	const char *current = str(e, "pinned") ? str(e, "pinned") : str(e, "lastHealthy");
	const char *target = NULL;
	if (c->to) {
		size_t tl = strlen(c->to);
		for (size_t j = 0; j < m; j++) {
			if (tl >= 7 && !strncmp(list[j], c->to, tl)) {
				if (target && strcmp(target, list[j])) {
					free(list);
					return gitops_error_set(GITOPS_EINVALID, "%s is ambiguous: give more of the SHA", c->to);
				}
				target = list[j];
			}
		}
		if (!target) {
			free(list);
			return gitops_error_set(GITOPS_EFORBIDDEN, "rollback of %s to %s refused: it was never deployed healthy "
						"in %s (see gitops history --env %s --type sync.succeeded)", c->env->name,
						c->to, c->env->name, c->env->name);
		}
	} else {
		size_t at = 0;
		bool found = false;
		for (size_t j = 0; j < m && !found; j++)
			if (current && !strcmp(list[j], current)) {
				at = j;
				found = true;
			}
		size_t want = found ? at + (size_t)c->steps : (size_t)c->steps - 1;
		if (want >= m) {
			free(list);
			return gitops_error_set(GITOPS_EFORBIDDEN, "rollback of %s refused: there %s only %zu earlier healthy "
						"deploy%s to go back to", c->env->name, m - (found ? at + 1 : 0) == 1 ? "is" : "are",
						m - (found ? at + 1 : 0), m - (found ? at + 1 : 0) == 1 ? "" : "s");
		}
		target = list[want];
	}
	if (streq(str(e, "pinned"), target)) {
		free(list);
		return gitops_error_set(GITOPS_EFORBIDDEN, "%s is already pinned to %.12s", c->env->name, target);
	}
	json_object_set_new(ev, "sha", json_string(target));
	if (current)
		json_object_set_new(ev, "previous", json_string(current));
	else
		json_object_del(ev, "previous");
	free(list);
	*skip = false;
	return 0;
}

int hist_rollback(json_t **out, hist *h, const struct mf_environment *env, const char *to_sha, int steps,
		  const struct hist_action *act)
{
	if (out)
		*out = NULL;
	if (steps < 1)
		steps = 1;
	json_t *ev = action_event("rollback", env->name, NULL, act);
	struct rollback_ctx c = {env, to_sha && *to_sha ? to_sha : NULL, steps};
	int rc = hist_append(h, ev, rollback_prep, &c, NULL);
	if (!rc && out)
		*out = json_incref(ev);
	json_decref(ev);
	return rc;
}

static int resume_prep(void *ud, struct hist_snap *s, json_t *ev, bool *skip)
{
	const struct mf_environment *env = ud;
	json_t *e;
	int rc = hist_snap_env(&e, s, env->name);
	if (rc)
		return rc;
	bool suspended = json_object_get(e, "suspended") != NULL;
	if (!suspended && !env->track)
		return gitops_error_set(GITOPS_EINVALID, "%s is promoted from %s: it has no branch to resume; promote a "
					"newer SHA instead", env->name, env->from ? env->from : "?");
	if (!suspended && !str(e, "pinned"))
		return gitops_error_set(GITOPS_ENOTFOUND, "%s is not pinned: it already follows %s", env->name, env->track);
	/* a tracking environment's pin goes with the suspension; a promoted one keeps its promotion */
	if (env->track && str(e, "pinned"))
		json_object_set_new(ev, "previous", json_string(str(e, "pinned")));
	else
		json_object_set_new(ev, "status", json_string("suspension"));
	*skip = false;
	return 0;
}

int hist_resume(json_t **out, hist *h, const struct mf_environment *env, const struct hist_action *act)
{
	if (out)
		*out = NULL;
	json_t *ev = action_event("resume", env->name, NULL, act);
	int rc = hist_append(h, ev, resume_prep, (void *)env, NULL);
	if (!rc && out)
		*out = json_incref(ev);
	json_decref(ev);
	return rc;
}

/* ---- suspend, and the daemon's automatic rollback ----------------------------------------- */

static int suspend_prep(void *ud, struct hist_snap *s, json_t *ev, bool *skip)
{
	const struct mf_environment *env = ud;
	json_t *e;
	int rc = hist_snap_env(&e, s, env->name);
	if (rc)
		return rc;
	json_t *sus = json_object_get(e, "suspended");
	if (sus)
		return gitops_error_set(GITOPS_EFORBIDDEN, "%s is already suspended (since %s by %s); gitops resume %s ends it",
					env->name, str(sus, "at"), str(sus, "by"), env->name);
	*skip = false;
	return 0;
}

int hist_suspend(json_t **out, hist *h, const struct mf_environment *env, const struct hist_action *act)
{
	if (out)
		*out = NULL;
	json_t *ev = action_event("suspend", env->name, NULL, act);
	int rc = hist_append(h, ev, suspend_prep, (void *)env, NULL);
	if (!rc && out)
		*out = json_incref(ev);
	json_decref(ev);
	return rc;
}

struct rollback_failed_ctx {
	const struct mf_environment *env;
	const char *failed;
};

static int rollback_failed_prep(void *ud, struct hist_snap *s, json_t *ev, bool *skip)
{
	struct rollback_failed_ctx *c = ud;
	json_t *e;
	int rc = hist_snap_env(&e, s, c->env->name);
	if (rc)
		return rc;
	const char *target = str(e, "lastHealthy");
	if (!target || streq(target, c->failed))
		return gitops_error_set(GITOPS_EFORBIDDEN, "rollback of %s refused: no healthy deploy other than %.12s to go "
					"back to", c->env->name, c->failed);
	if (streq(str(e, "pinned"), target))
		return gitops_error_set(GITOPS_EFORBIDDEN, "%s is already pinned to %.12s", c->env->name, target);
	json_object_set_new(ev, "sha", json_string(target));
	json_object_set_new(ev, "previous", json_string(c->failed));
	*skip = false;
	return 0;
}

int hist_rollback_failed(json_t **out, hist *h, const struct mf_environment *env, const char *failed_sha,
			 const struct hist_action *act)
{
	if (out)
		*out = NULL;
	struct hist_action a = act ? *act : (struct hist_action){0};
	a.trigger = "auto";
	json_t *ev = action_event("rollback", env->name, NULL, &a);
	struct rollback_failed_ctx c = {env, failed_sha};
	int rc = hist_append(h, ev, rollback_failed_prep, &c, NULL);
	if (!rc && out)
		*out = json_incref(ev);
	json_decref(ev);
	return rc;
}
