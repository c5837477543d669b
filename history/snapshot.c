/* history/snapshot.c: the current state kept in the state branch's newest tree, and the rules
 * that turn one event into the next state. The rules are deterministic so that `history verify`
 * can replay the log and compare every snapshot. Layout of the tree:
 *   format                     "gitops-state 1"
 *   environments/<env>.json    pin, last healthy SHA, healthy deploys (newest last), health
 *   promotions/<id>.json       pending promotions with their approvals
 *   decided.json               the most recently decided promotions (applied/rejected/superseded) */
#include "history/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECIDED_KEEP 200

struct hist_snap *hist_snap_new(git_repository *repo, git_tree *root)
{
	struct hist_snap *s = gitops_calloc(1, sizeof(*s));
	s->repo = repo;
	if (root)
		git_tree_dup(&s->root, root);
	s->envs = json_object();
	s->proms = json_object();
	s->dirty_envs = json_object();
	s->dirty_proms = json_object();
	return s;
}

void hist_snap_free(struct hist_snap *s)
{
	if (!s)
		return;
	git_tree_free(s->root);
	json_decref(s->envs);
	json_decref(s->proms);
	json_decref(s->decided);
	json_decref(s->dirty_envs);
	json_decref(s->dirty_proms);
	free(s);
}

void hist_snap_clear_dirty(struct hist_snap *s)
{
	json_object_clear(s->dirty_envs);
	json_object_clear(s->dirty_proms);
	s->dirty_decided = false;
	/* removed promotions are gone from the new tree: forget the markers */
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(s->proms, tmp, k, v) {
		if (json_is_null(v))
			json_object_del(s->proms, k);
	}
}

/* Reads and parses the blob at `path` of the root tree; *out NULL when absent. */
static int read_json(json_t **out, struct hist_snap *s, const char *path)
{
	*out = NULL;
	if (!s->root || !s->repo)
		return 0;
	git_tree_entry *e = NULL;
	int g = git_tree_entry_bypath(&e, s->root, path);
	if (g == GIT_ENOTFOUND) {
		git_error_clear();
		return 0;
	}
	if (g < 0)
		return gitops_git_fail(g, GITOPS_EGIT, path);
	git_blob *b = NULL;
	g = git_blob_lookup(&b, s->repo, git_tree_entry_id(e));
	git_tree_entry_free(e);
	if (g < 0)
		return gitops_git_fail(g, GITOPS_EGIT, path);
	json_error_t je;
	*out = json_loadb(git_blob_rawcontent(b), (size_t)git_blob_rawsize(b), 0, &je);
	git_blob_free(b);
	if (!*out)
		return gitops_error_set(GITOPS_EPARSE, "state branch: %s:%d: %s", path, je.line, je.text);
	return 0;
}

int hist_snap_env(json_t **out, struct hist_snap *s, const char *env)
{
	json_t *e = json_object_get(s->envs, env);
	if (!e) {
		char *path = gitops_sprintf("environments/%s.json", env);
		int rc = read_json(&e, s, path);
		free(path);
		if (rc)
			return rc;
		if (!e)
			e = json_pack("{s:s}", "environment", env);
		json_object_set_new(s->envs, env, e);
	}
	*out = e;
	return 0;
}

int hist_snap_prom(json_t **out, struct hist_snap *s, const char *id)
{
	*out = NULL;
	json_t *p = json_object_get(s->proms, id);
	if (!p && !s->proms_listed) {
		char *path = gitops_sprintf("promotions/%s.json", id);
		int rc = read_json(&p, s, path);
		free(path);
		if (rc)
			return rc;
		if (!p)
			return 0;
		json_object_set_new(s->proms, id, p);
	}
	*out = json_is_null(p) ? NULL : p;
	return 0;
}

int hist_snap_pending(json_t **out, struct hist_snap *s)
{
	if (!s->proms_listed && s->root && s->repo) {
		git_tree_entry *e = NULL;
		int g = git_tree_entry_bypath(&e, s->root, "promotions");
		if (g == 0) {
			git_tree *t = NULL;
			g = git_tree_lookup(&t, s->repo, git_tree_entry_id(e));
			git_tree_entry_free(e);
			if (g < 0)
				return gitops_git_fail(g, GITOPS_EGIT, "promotions");
			for (size_t i = 0; i < git_tree_entrycount(t); i++) {
				const char *name = git_tree_entry_name(git_tree_entry_byindex(t, i));
				size_t n = strlen(name);
				if (n < 6 || strcmp(name + n - 5, ".json"))
					continue;
				char *id = gitops_strndup(name, n - 5);
				json_t *p;
				int rc = hist_snap_prom(&p, s, id);
				free(id);
				if (rc) {
					git_tree_free(t);
					return rc;
				}
			}
			git_tree_free(t);
		} else if (g != GIT_ENOTFOUND) {
			return gitops_git_fail(g, GITOPS_EGIT, "promotions");
		}
		git_error_clear();
	}
	s->proms_listed = true;
	*out = s->proms;
	return 0;
}

int hist_snap_decided(json_t **out, struct hist_snap *s)
{
	if (!s->decided) {
		int rc = read_json(&s->decided, s, "decided.json");
		if (rc)
			return rc;
		if (!json_is_array(s->decided)) {
			json_decref(s->decided);
			s->decided = json_array();
		}
	}
	*out = s->decided;
	return 0;
}

/* ---- the rules --------------------------------------------------------------------------- */

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static bool streq_(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static int touch_env(json_t **out, struct hist_snap *s, const char *env)
{
	int rc = hist_snap_env(out, s, env);
	if (!rc)
		json_object_set_new(s->dirty_envs, env, json_true());
	return rc;
}

static void pin(json_t *e, const json_t *ev, const char *sha, const char *why, const char *promotion)
{
	json_object_set_new(e, "pinned", json_string(sha));
	json_object_set_new(e, "pinReason", json_string(why));
	json_object_set_new(e, "pinnedAt", json_string(str(ev, "time")));
	json_object_set_new(e, "pinnedBy", json_string(str(ev, "actor")));
	json_object_set_new(e, "pinEvent", json_string(str(ev, "id")));
	if (promotion)
		json_object_set_new(e, "promotion", json_string(promotion));
	else
		json_object_del(e, "promotion");
}

static int decide(struct hist_snap *s, json_t *p, const char *status, const json_t *ev)
{
	json_t *dec;
	int rc = hist_snap_decided(&dec, s);
	if (rc)
		return rc;
	json_array_append_new(dec, json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", str(p, "id"), "environment",
					     str(p, "environment"), "sha", str(p, "sha"), "status", status,
					     "decidedAt", str(ev, "time")));
	while (json_array_size(dec) > DECIDED_KEEP)
		json_array_remove(dec, 0);
	s->dirty_decided = true;
	char *id = gitops_strdup(str(p, "id"));
	json_object_set_new(s->dirty_proms, id, json_true());
	json_object_set_new(s->proms, id, json_null()); /* may free p */
	free(id);
	return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Applies a promotion to its environment: pin, and supersede the other pending ones. */
static int apply_promotion(struct hist_snap *s, const json_t *ev, const char *env, const char *sha, const char *id)
{
	json_t *e, *pending;
	int rc = touch_env(&e, s, env);
	if (!rc)
		rc = hist_snap_pending(&pending, s);
	if (rc)
		return rc;
	pin(e, ev, sha, "promotion", id);
	/* supersede the others in id order: the writer's snapshot lists them from the tree (sorted
	 * by name), the replay in creation order; both must append them to decided.json alike */
	const char *k;
	json_t *p;
	size_t n = 0, i;
	char **ids = gitops_calloc(json_object_size(pending) + 1, sizeof(*ids));
	json_object_foreach(pending, k, p) {
		if (json_is_null(p) || !str(p, "environment") || strcmp(str(p, "environment"), env) || !strcmp(k, id))
			continue;
		ids[n++] = gitops_strdup(k);
	}
	qsort(ids, n, sizeof(*ids), cmp_str);
	for (i = 0; i < n && !rc; i++)
		rc = decide(s, json_object_get(pending, ids[i]), "superseded", ev);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return rc;
}

int hist_snap_apply(struct hist_snap *s, const json_t *ev)
{
	const char *type = str(ev, "type"), *env = str(ev, "environment"), *sha = str(ev, "sha");
	const char *time = str(ev, "time"), *id = str(ev, "id");
	json_t *e = NULL;
	int rc = 0;
	if (!strcmp(type, "sync.succeeded") || !strcmp(type, "sync.failed")) {
		if ((rc = touch_env(&e, s, env)))
			return rc;
		json_t *c = json_object_get(ev, "counts");
		bool healthy = !strcmp(type, "sync.succeeded") && json_integer_value(json_object_get(c, "failed")) == 0;
		const char *app = str(ev, "app");
		json_t *last = json_pack("{s:s, s:s, s:s, s:s}", "sha", sha, "result", healthy ? "succeeded" : "failed",
					 "time", time, "event", id);
		if (app) {
			/* one app synced: the environment as a whole did not run this SHA (no promotion
			 * gate passes on it) */
			json_t *apps = json_object_get(e, "apps");
			if (!json_is_object(apps)) {
				apps = json_object();
				json_object_set_new(e, "apps", apps);
			}
			json_object_set_new(apps, app, last);
			return 0;
		}
		const char *key = json_string_value(json_object_get(json_object_get(ev, "signature"), "key"));
		if (key)
			json_object_set_new(last, "key", json_string(key));
		json_object_set_new(e, "lastSync", last);
		if (healthy) {
			json_object_set_new(e, "lastHealthy", json_string(sha));
			json_object_set_new(e, "lastHealthyAt", json_string(time));
			json_t *dep = json_object_get(e, "deployed");
			if (!json_is_array(dep)) {
				dep = json_array();
				json_object_set_new(e, "deployed", dep);
			}
			size_t n = json_array_size(dep);
			json_t *lastdep = n ? json_array_get(dep, n - 1) : NULL;
			if (!lastdep || strcmp(str(lastdep, "sha"), sha)) {
				lastdep = json_pack("{s:s, s:s, s:s}", "sha", sha, "time", time, "event", id);
				json_array_append_new(dep, lastdep);
			}
			if (key) {
				/* who vouches for this deploy: the distinct keys of its signed records
				 * (whether they count is decided with gitops.yaml's reporters) */
				json_t *keys = json_object_get(lastdep, "keys"), *k;
				size_t i;
				bool have = false;
				if (!json_is_array(keys)) {
					keys = json_array();
					json_object_set_new(lastdep, "keys", keys);
				}
				json_array_foreach(keys, i, k)
					have = have || streq_(json_string_value(k), key);
				if (!have && json_array_size(keys) < 16)
					json_array_append_new(keys, json_string(key));
			}
			while (json_array_size(dep) > HIST_DEPLOYED_KEEP)
				json_array_remove(dep, 0);
		}
	} else if (!strcmp(type, "health.degraded") || !strcmp(type, "health.recovered")) {
		if ((rc = touch_env(&e, s, env)))
			return rc;
		json_object_set_new(e, "health", json_string(!strcmp(type, "health.degraded") ? "degraded" : "healthy"));
		json_object_set_new(e, "healthAt", json_string(time));
	} else if (!strcmp(type, "promotion.requested")) {
		const char *pid = str(ev, "promotion");
		if (!strcmp(str(ev, "status"), "applied")) {
			json_t *dec;
			if ((rc = apply_promotion(s, ev, env, sha, pid)) || (rc = hist_snap_decided(&dec, s)))
				return rc;
			json_array_append_new(dec, json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", pid, "environment", env,
							     "sha", sha, "status", "applied", "decidedAt", time));
			while (json_array_size(dec) > DECIDED_KEEP)
				json_array_remove(dec, 0);
			s->dirty_decided = true;
		} else {
			json_t *p = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:s, s:s, s:s, s:[]}", "id", pid, "environment", env,
					      "sha", sha, "from", str(ev, "from"), "required",
					      json_integer_value(json_object_get(ev, "required")), "status", "pending",
					      "requestedBy", str(ev, "actor"), "requestedAt", time, "approvals");
			json_object_set_new(s->proms, pid, p);
			json_object_set_new(s->dirty_proms, pid, json_true());
		}
	} else if (!strcmp(type, "promotion.approved") || !strcmp(type, "promotion.rejected")) {
		const char *pid = str(ev, "promotion");
		json_t *p;
		if ((rc = hist_snap_prom(&p, s, pid)))
			return rc;
		if (!p)
			return gitops_error_set(GITOPS_EINVALID, "event %s: promotion %s is not pending", id, pid);
		json_t *a = json_deep_copy(json_array_get(json_object_get(ev, "approvals"), 0));
		json_object_set_new(a, "time", json_string(time));
		json_object_set_new(a, "event", json_string(id));
		json_array_append_new(json_object_get(p, "approvals"), a);
		json_object_set_new(s->dirty_proms, pid, json_true());
		if (!strcmp(type, "promotion.rejected")) {
			rc = decide(s, p, "rejected", ev);
		} else {
			size_t approvals = 0, i;
			json_t *x;
			json_array_foreach(json_object_get(p, "approvals"), i, x)
				approvals += !strcmp(str(x, "decision"), "approve");
			if (approvals >= (size_t)json_integer_value(json_object_get(p, "required"))) {
				char *psha = gitops_strdup(str(p, "sha")), *penv = gitops_strdup(str(p, "environment"));
				json_incref(p);
				rc = decide(s, p, "applied", ev);
				if (!rc)
					rc = apply_promotion(s, ev, penv, psha, pid);
				json_decref(p);
				free(psha);
				free(penv);
			}
		}
	} else if (!strcmp(type, "rollback")) {
		if ((rc = touch_env(&e, s, env)))
			return rc;
		pin(e, ev, sha, "rollback", NULL);
		/* the daemon's automatic rollback after a failed health gate: that SHA is never
		 * promotable again to or from this environment */
		const char *failed = str(ev, "previous");
		const char *trig = str(ev, "trigger");
		if (failed && trig && !strcmp(trig, "auto")) {
			json_t *rb = json_object_get(e, "rolledBack");
			if (!json_is_array(rb)) {
				rb = json_array();
				json_object_set_new(e, "rolledBack", rb);
			}
			json_array_append_new(rb, json_pack("{s:s, s:s, s:s}", "sha", failed, "time", time, "event", id));
			while (json_array_size(rb) > HIST_DEPLOYED_KEEP)
				json_array_remove(rb, 0);
		}
	} else if (!strcmp(type, "resume")) {
		if ((rc = touch_env(&e, s, env)))
			return rc;
		/* a resume drops the pin and any suspension; status "suspension": only the suspension
		 * (an environment with `from` keeps its promotion) */
		const char *st = str(ev, "status");
		if (!st || strcmp(st, "suspension")) {
			static const char *const keys[] = {"pinned", "pinReason", "pinnedAt", "pinnedBy", "pinEvent", "promotion"};
			for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
				json_object_del(e, keys[i]);
		}
		json_object_del(e, "suspended");
	} else if (!strcmp(type, "suspend")) {
		if ((rc = touch_env(&e, s, env)))
			return rc;
		json_object_set_new(e, "suspended", json_pack("{s:s, s:s, s:s, s:s?}", "at", time, "by", str(ev, "actor"),
							      "event", id, "reason", str(ev, "reason")));
	} else if (!strcmp(type, "daemon.error")) {
		if ((rc = touch_env(&e, s, env)))
			return rc;
		json_object_set_new(e, "daemonError", json_pack("{s:s?, s:s}", "reason", str(ev, "reason"), "at", time));
	} else if (!strcmp(type, "daemon.recovered")) {
		if ((rc = touch_env(&e, s, env)))
			return rc;
		json_object_del(e, "daemonError");
	}
	/* drift.* and sync.started change no state: they live in the log only */
	return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

static int put_blob(git_treebuilder *b, git_repository *repo, const char *name, const json_t *v)
{
	char *text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
	gitops_buf buf = GITOPS_BUF_INIT;
	gitops_buf_puts(&buf, text);
	gitops_buf_putc(&buf, '\n');
	free(text);
	git_oid oid;
	int g = git_blob_create_from_buffer(&oid, repo, buf.ptr, buf.len);
	gitops_buf_free(&buf);
	if (g == 0)
		g = git_treebuilder_insert(NULL, b, name, &oid, GIT_FILEMODE_BLOB);
	return g < 0 ? gitops_git_fail(g, GITOPS_EGIT, name) : 0;
}

/* Rewrites subtree `dir` with the dirty entries of `map`; a JSON null removes the file. */
static int write_dir(git_treebuilder *root, struct hist_snap *s, const char *dir, json_t *map, json_t *dirty)
{
	if (!json_object_size(dirty))
		return 0;
	git_tree *old = NULL;
	git_treebuilder *b = NULL;
	int rc = 0, g;
	const git_tree_entry *e = git_treebuilder_get(root, dir);
	if (e && (g = git_tree_lookup(&old, s->repo, git_tree_entry_id(e))) < 0)
		return gitops_git_fail(g, GITOPS_EGIT, dir);
	if ((g = git_treebuilder_new(&b, s->repo, old)) < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, dir);
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(dirty, k, v) {
		char *name = gitops_sprintf("%s.json", k);
		json_t *val = json_object_get(map, k);
		if (!val || json_is_null(val)) {
			if (git_treebuilder_get(b, name))
				git_treebuilder_remove(b, name);
		} else {
			rc = put_blob(b, s->repo, name, val);
		}
		free(name);
		if (rc)
			goto out;
	}
	git_oid oid;
	if (git_treebuilder_entrycount(b) == 0) {
		if (git_treebuilder_get(root, dir))
			git_treebuilder_remove(root, dir);
	} else if ((g = git_treebuilder_write(&oid, b)) < 0 ||
		   (g = git_treebuilder_insert(NULL, root, dir, &oid, GIT_FILEMODE_TREE)) < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, dir);
	}
out:
	git_treebuilder_free(b);
	git_tree_free(old);
	return rc;
}

int hist_snap_write(git_oid *out, struct hist_snap *s)
{
	git_treebuilder *root = NULL;
	int g = git_treebuilder_new(&root, s->repo, s->root);
	if (g < 0)
		return gitops_git_fail(g, GITOPS_EGIT, "state tree");
	int rc = 0;
	if (!git_treebuilder_get(root, "format")) {
		git_oid oid;
		const char *fmt = "gitops-state 1\n";
		if ((g = git_blob_create_from_buffer(&oid, s->repo, fmt, strlen(fmt))) < 0 ||
		    (g = git_treebuilder_insert(NULL, root, "format", &oid, GIT_FILEMODE_BLOB)) < 0)
			rc = gitops_git_fail(g, GITOPS_EGIT, "format");
	}
	if (!rc)
		rc = write_dir(root, s, "environments", s->envs, s->dirty_envs);
	if (!rc)
		rc = write_dir(root, s, "promotions", s->proms, s->dirty_proms);
	if (!rc && s->dirty_decided)
		rc = put_blob(root, s->repo, "decided.json", s->decided);
	if (!rc && (g = git_treebuilder_write(out, root)) < 0)
		rc = gitops_git_fail(g, GITOPS_EGIT, "state tree");
	git_treebuilder_free(root);
	return rc;
}
