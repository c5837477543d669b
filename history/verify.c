/* history/verify.c: what a reader checks before it obeys the state branch. The chain is replayed
 * from the tip verified last (remembered under the data directory, so each check only reads the
 * new commits) or from the first event: linear, never rewound, events valid and in time order,
 * preconditions replayed against the pipeline config in effect at each event's time (approvers,
 * reporters, upstreams, approval counts come from gitops.yaml on the main branch, never from the
 * events), signatures checked, and every snapshot tree equal to the replay with nothing else
 * changed. Problems are GITOPS_EPOLICY naming the offending commit. */
#include "history/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CFGS 8

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static bool streq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

void hist_verify_report_clear(struct hist_verify_report *r)
{
	if (r) {
		free(r->problem);
		r->problem = NULL;
	}
}

/* ---- the remembered tip ------------------------------------------------------------------ */

static char *verified_path(hist *h)
{
	char *base = hist_index_base(h);
	char *p = gitops_sprintf("%s.verified", base);
	free(base);
	return p;
}

static bool remembered(hist *h, git_oid *out)
{
	char *p = verified_path(h);
	gitops_buf b = GITOPS_BUF_INIT;
	bool ok = gitops_read_file(&b, p, 100) == 0 && b.len >= 40 && git_oid_fromstrn(out, b.ptr, 40) == 0;
	gitops_buf_free(&b);
	free(p);
	gitops_error_clear();
	return ok;
}

static void remember(hist *h, const git_oid *tip)
{
	char *p = verified_path(h), hex[42];
	char *tmp = gitops_sprintf("%s.%d.tmp", p, (int)getpid());
	git_oid_tostr(hex, 41, tip);
	strcat(hex, "\n");
	if (gitops_write_file(tmp, hex, 41, 0600) == 0 && rename(tmp, p) != 0)
		unlink(tmp);
	gitops_error_clear();
	free(tmp);
	free(p);
	h->checked = *tip;
	h->has_checked = true;
}

static bool contains(git_repository *repo, const git_oid *tip, const git_oid *id)
{
	if (git_oid_equal(tip, id))
		return true;
	int g = git_graph_descendant_of(repo, tip, id);
	git_error_clear();
	return g == 1;
}

int hist_seen_check(hist *h, const git_oid *tip, bool exists)
{
	git_oid rem;
	if (!remembered(h, &rem))
		return 0;
	char hex[41];
	git_oid_tostr(hex, sizeof(hex), &rem);
	if (!exists)
		return gitops_error_set(GITOPS_EPOLICY, "state branch %s is gone: it existed and was verified at %.12s; "
					"restore it (git push <remote> %s:refs/heads/%s) before anything acts on it",
					h->desc, hex, hex, h->branch);
	if (!contains(h->repo, tip, &rem)) {
		/* our view may just be older than another process's verification: when the branch
		 * has moved on since we read it and now holds the remembered tip, read it again */
		git_oid now;
		if (git_reference_name_to_id(&now, h->repo, h->ref) == 0 && !git_oid_equal(&now, tip) &&
		    contains(h->repo, &now, &rem))
			return GITOPS_ECONFLICT;
		git_error_clear();
		return gitops_error_set(GITOPS_EPOLICY, "state branch %s was rewound or rewritten: %.12s, verified before, "
					"is no longer in its history; restore it before anything acts on it", h->desc, hex);
	}
	return 0;
}

/* ---- comparing a commit's tree with the replay ------------------------------------------- */

static git_tree *subtree(git_repository *repo, git_tree *t, const char *name)
{
	git_tree *out = NULL;
	const git_tree_entry *e = t ? git_tree_entry_byname(t, name) : NULL;
	if (e && git_tree_entry_type(e) == GIT_OBJECT_TREE && git_tree_lookup(&out, repo, git_tree_entry_id(e)) < 0)
		out = NULL;
	git_error_clear();
	return out;
}

static json_t *blob_json(git_repository *repo, git_tree *tree, const char *name)
{
	const git_tree_entry *e = tree ? git_tree_entry_byname(tree, name) : NULL;
	git_blob *b = NULL;
	json_t *j = NULL;
	if (e && git_tree_entry_type(e) == GIT_OBJECT_BLOB && git_blob_lookup(&b, repo, git_tree_entry_id(e)) == 0)
		j = json_loadb(git_blob_rawcontent(b), (size_t)git_blob_rawsize(b), 0, NULL);
	git_blob_free(b);
	git_error_clear();
	return j;
}

/* True when the tree's `name` holds `want`: first by hashing `want` serialized the way the writer
 * writes it (snapshot.c: indented, sorted keys, newline) and comparing blob ids, else by
 * comparing the parsed JSON (another serializer may have written the same value). */
static bool holds(git_repository *repo, git_tree *tree, const char *name, const json_t *want)
{
	const git_tree_entry *e = tree ? git_tree_entry_byname(tree, name) : NULL;
	if (!e || git_tree_entry_type(e) != GIT_OBJECT_BLOB)
		return false;
	char *text = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS);
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_puts(&b, text);
	gitops_buf_putc(&b, '\n');
	free(text);
	git_oid oid;
	bool same = git_odb_hash(&oid, b.ptr, b.len, GIT_OBJECT_BLOB) == 0 && git_oid_equal(&oid, git_tree_entry_id(e));
	gitops_buf_free(&b);
	if (!same) {
		json_t *got = blob_json(repo, tree, name);
		same = got && json_equal(got, want);
		json_decref(got);
	}
	return same;
}

static bool same_entry(const git_tree_entry *a, const git_tree_entry *b)
{
	if (!a || !b)
		return a == b;
	return git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b)) &&
	       git_tree_entry_filemode(a) == git_tree_entry_filemode(b);
}

/* Every file of `dir` that differs between the parent's tree and this one must be one the
 * replay changed (dirty) and hold exactly the replayed value. */
static char *compare_dir(git_repository *repo, git_tree *ptree, git_tree *tree, const char *dir, json_t *map,
			 json_t *dirty)
{
	git_tree *a = subtree(repo, ptree, dir), *b = subtree(repo, tree, dir);
	char *problem = NULL;
	git_tree *both[2] = {a, b};
	for (int side = 0; side < 2 && !problem; side++) {
		for (size_t i = 0; both[side] && i < git_tree_entrycount(both[side]) && !problem; i++) {
			const git_tree_entry *e = git_tree_entry_byindex(both[side], i);
			const char *name = git_tree_entry_name(e);
			const git_tree_entry *other = both[!side] ? git_tree_entry_byname(both[!side], name) : NULL;
			if (same_entry(e, other))
				continue;
			size_t n = strlen(name);
			char *key = n > 5 && !strcmp(name + n - 5, ".json") ? gitops_strndup(name, n - 5) : NULL;
			if (!key || git_tree_entry_type(e) != GIT_OBJECT_BLOB || !json_object_get(dirty, key))
				problem = gitops_sprintf("%s/%s changed but no event explains it (hand-edited snapshot)", dir, name);
			free(key);
		}
	}
	const char *k;
	json_t *v;
	json_object_foreach(dirty, k, v) {
		if (problem)
			break;
		char *name = gitops_sprintf("%s.json", k);
		json_t *want = json_object_get(map, k);
		bool same = (!want || json_is_null(want)) ? !(b && git_tree_entry_byname(b, name)) : holds(repo, b, name, want);
		if (!same)
			problem = gitops_sprintf("%s/%s does not match the replay of the events", dir, name);
		free(name);
	}
	git_tree_free(a);
	git_tree_free(b);
	return problem;
}

static char *compare_tree(struct hist_snap *s, git_repository *repo, git_tree *ptree, git_tree *tree)
{
	for (size_t i = 0; i < git_tree_entrycount(tree); i++) {
		const char *name = git_tree_entry_name(git_tree_entry_byindex(tree, i));
		if (strcmp(name, "format") && strcmp(name, "environments") && strcmp(name, "promotions") &&
		    strcmp(name, "decided.json"))
			return gitops_sprintf("%s is not part of the state layout (hand-edited snapshot)", name);
	}
	const git_tree_entry *fa = ptree ? git_tree_entry_byname(ptree, "format") : NULL;
	const git_tree_entry *fb = git_tree_entry_byname(tree, "format");
	if (!same_entry(fa, fb)) {
		git_blob *b = NULL;
		bool ok = fb && git_blob_lookup(&b, repo, git_tree_entry_id(fb)) == 0 && git_blob_rawsize(b) == 15 &&
			  !memcmp(git_blob_rawcontent(b), "gitops-state 1\n", 15);
		git_blob_free(b);
		git_error_clear();
		if (!ok)
			return gitops_strdup("format is not \"gitops-state 1\"");
	}
	char *p = compare_dir(repo, ptree, tree, "environments", s->envs, s->dirty_envs);
	if (!p)
		p = compare_dir(repo, ptree, tree, "promotions", s->proms, s->dirty_proms);
	if (p)
		return p;
	const git_tree_entry *da = ptree ? git_tree_entry_byname(ptree, "decided.json") : NULL;
	const git_tree_entry *db = git_tree_entry_byname(tree, "decided.json");
	if (!same_entry(da, db) && !s->dirty_decided)
		return gitops_strdup("decided.json changed but no event explains it (hand-edited snapshot)");
	if (s->dirty_decided && !holds(repo, tree, "decided.json", s->decided))
		return gitops_strdup("decided.json does not match the replay of the events");
	return NULL;
}

/* ---- preconditions ----------------------------------------------------------------------- */

struct vctx {
	hist *h;
	struct hist_snap *s;
	struct hist_verify_report *rep;
};

/* A healthy deploy of `sha` in `state` that counts under `e`'s reporters (all count when none
 * are listed). */
static bool counted_deploy(const json_t *state, const char *sha, const struct mf_environment *e)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(state, "deployed"), i, d) {
		if (!streq(str(d, "sha"), sha))
			continue;
		if (!e || !e->n_reporters)
			return true;
		size_t k;
		json_t *key;
		json_array_foreach(json_object_get(d, "keys"), k, key)
			if (hist_key_listed(json_string_value(key), e->reporters, e->n_reporters, NULL))
				return true;
	}
	return false;
}

static char *key_token(const char *k)
{
	while (k && isspace((unsigned char)*k))
		k++;
	size_t n = 0;
	while (k && k[n] && !isspace((unsigned char)k[n]))
		n++;
	return gitops_strndup(k ? k : "", n);
}

static char *check_request(struct vctx *v, const json_t *ev, const struct mf_config *const *cfgs, int n)
{
	const char *env = str(ev, "environment"), *sha = str(ev, "sha"), *why = NULL;
	long long req = json_integer_value(json_object_get(ev, "required"));
	if (!streq(str(ev, "promotion"), str(ev, "id")))
		return gitops_strdup("a promotion.requested event must carry its own id as the promotion");
	for (int i = 0; i < n; i++) {
		const struct mf_environment *e = mf_config_env(cfgs[i], env);
		const struct mf_environment *up = e && e->from ? mf_config_env(cfgs[i], e->from) : NULL;
		json_t *upstate = NULL;
		if (!e || !e->from) {
			why = "the environment has no `from` in gitops.yaml then";
		} else if (!streq(str(ev, "from"), e->from)) {
			why = "its upstream is not the environment's `from` in gitops.yaml then";
		} else if (req != e->approval_required) {
			why = "its required approvals differ from approval.required in gitops.yaml then";
		} else if (!streq(str(ev, "status"), req ? "pending" : "applied")) {
			why = "an environment with required approvals was pinned without them";
		} else if (hist_snap_env(&upstate, v->s, e->from) || !counted_deploy(upstate, sha, up)) {
			gitops_error_clear();
			why = up && up->n_reporters ? "the SHA had no healthy deploy signed by a reporter of the upstream"
						    : "the SHA never ran healthy in the upstream";
		} else {
			return NULL;
		}
	}
	return gitops_sprintf("promotion of %.12s to %s: %s", sha ? sha : "?", env, why ? why : "no gitops.yaml in effect");
}

static char *check_decision(struct vctx *v, const json_t *ev, const struct mf_config *const *cfgs, int n)
{
	json_t *p = NULL;
	const char *pid = str(ev, "promotion");
	if (hist_snap_prom(&p, v->s, pid) || !p) {
		gitops_error_clear();
		return gitops_sprintf("promotion %s is not pending", pid);
	}
	if (!streq(str(ev, "environment"), str(p, "environment")) || !streq(str(ev, "sha"), str(p, "sha")))
		return gitops_sprintf("the decision names %s at %.12s, promotion %s is %s at %.12s", str(ev, "environment"),
				      str(ev, "sha"), pid, str(p, "environment"), str(p, "sha"));
	json_t *a = json_array_get(json_object_get(ev, "approvals"), 0);
	const char *who = str(a, "approver");
	char *pub = key_token(str(a, "key"));
	bool listed = false;
	for (int i = 0; i < n && !listed; i++) {
		const struct mf_environment *e = mf_config_env(cfgs[i], str(p, "environment"));
		for (size_t k = 0; e && k < e->n_approvers && !listed; k++) {
			char *t = key_token(e->approvers[k].key);
			listed = streq(e->approvers[k].name, who) && !strcmp(t, pub);
			free(t);
		}
	}
	char *problem = NULL;
	if (!listed) {
		problem = gitops_sprintf("%s's key %.24s... is not an approver of %s in gitops.yaml at that time (forged "
					 "approval)", who ? who : "?", pub, str(p, "environment"));
	} else if (hist_verify_signature(pub, str(a, "signature"), str(a, "decision"), pid, str(p, "environment"),
					 str(p, "sha"))) {
		problem = gitops_sprintf("%s's signature does not verify (tampered event or forged approval)", who);
	} else {
		size_t i;
		json_t *x;
		json_array_foreach(json_object_get(p, "approvals"), i, x)
			if (!problem && (streq(str(x, "approver"), who) || streq(str(x, "key"), pub)))
				problem = gitops_sprintf("%s decided promotion %s twice", who, pid);
		if (!problem)
			v->rep->signatures++;
	}
	gitops_error_clear();
	free(pub);
	return problem;
}

static char *check_pin_move(struct vctx *v, const json_t *ev, const struct mf_config *const *cfgs, int n, bool resume)
{
	const char *env = str(ev, "environment"), *sha = str(ev, "sha");
	json_t *st = NULL;
	if (hist_snap_env(&st, v->s, env)) {
		gitops_error_clear();
		return gitops_sprintf("%s: the state cannot be read", env);
	}
	const char *pinned = str(st, "pinned"), *current = pinned ? pinned : str(st, "lastHealthy");
	if (resume) {
		/* the end of a suspension only (the pin, if any, stays: see hist_resume) */
		if (streq(str(ev, "status"), "suspension"))
			return json_object_get(st, "suspended") ? NULL
								: gitops_sprintf("resume of %s, which was not suspended", env);
		if (!pinned)
			return gitops_sprintf("resume of %s, which was not pinned", env);
		if (!streq(str(ev, "previous"), pinned))
			return gitops_sprintf("resume of %s: previous is not the pin %.12s", env, pinned);
		for (int i = 0; i < n; i++) {
			const struct mf_environment *e = mf_config_env(cfgs[i], env);
			if (e && e->track)
				return NULL;
		}
		return gitops_sprintf("resume of %s, which tracks no branch in gitops.yaml then", env);
	}
	if (streq(pinned, sha))
		return gitops_sprintf("rollback of %s to %.12s, already pinned there", env, sha);
	/* previous: what ran there (the pin, else the last healthy deploy), or, for the daemon's
	 * automatic rollback, the commit whose sync just failed its health gate (the last sync) */
	const char *prev = str(ev, "previous"), *last_sync = str(json_object_get(st, "lastSync"), "sha");
	if (!(current ? streq(prev, current) : prev == NULL) && !streq(prev, last_sync))
		return gitops_sprintf("rollback of %s: previous is not what ran there (%.12s)", env, current ? current : "none");
	for (int i = 0; i < n; i++) {
		const struct mf_environment *e = mf_config_env(cfgs[i], env);
		if (e && counted_deploy(st, sha, e))
			return NULL;
	}
	return gitops_sprintf("rollback of %s to %.12s, which was never deployed healthy there%s", env, sha,
			      n ? "" : " (no gitops.yaml in effect)");
}

static char *preconditions(struct vctx *v, const json_t *ev)
{
	const char *type = str(ev, "type");
	if (json_object_get(ev, "signature")) {
		if (hist_event_verify_signature(ev)) {
			char *p = gitops_sprintf("the record's signature does not verify (tampered or forged record)");
			gitops_error_clear();
			return p;
		}
		v->rep->signatures++;
	}
	bool req = !strcmp(type, "promotion.requested"), dec = !strcmp(type, "promotion.approved") ||
								!strcmp(type, "promotion.rejected");
	bool rb = !strcmp(type, "rollback"), rs = !strcmp(type, "resume");
	if (!req && !dec && !rb && !rs)
		return NULL;
	const struct mf_config *cfgs[MAX_CFGS];
	int n = v->h->policy.configs_at(v->h->policy.ud, cfgs, MAX_CFGS, hist_time_ms(str(ev, "time")));
	if (n < 0)
		n = 0;
	if (req)
		return check_request(v, ev, cfgs, n);
	if (dec)
		return check_decision(v, ev, cfgs, n);
	return check_pin_move(v, ev, cfgs, n, rs);
}

/* ---- the walk ---------------------------------------------------------------------------- */

/* Forgets what the last event changed, but keeps the markers of removed promotions: the replay
 * may start from a verified tree where they were still pending, and must not read them back. */
static void next_event(struct hist_snap *s)
{
	json_object_clear(s->dirty_envs);
	json_object_clear(s->dirty_proms);
	s->dirty_decided = false;
}

static int fail_at(hist *h, struct hist_verify_report *rep, const git_oid *id, const char *evid, char *problem)
{
	char hex[41];
	git_oid_tostr(hex, sizeof(hex), id);
	free(rep->problem);
	if (evid)
		rep->problem = gitops_sprintf("commit %.12s (event %s): %s", hex, evid, problem);
	else
		rep->problem = gitops_sprintf("commit %.12s: %s", hex, problem);
	free(problem);
	return gitops_error_set(GITOPS_EPOLICY, "%s: %s", h->desc, rep->problem);
}

static int reflog_check(hist *h, struct hist_verify_report *rep, const git_oid *tip)
{
	git_reflog *log = NULL;
	int rc = 0;
	if (git_reflog_read(&log, h->repo, h->ref) == 0) {
		for (size_t i = 0; i < git_reflog_entrycount(log) && !rc; i++) {
			const git_oid *id = git_reflog_entry_id_new(git_reflog_entry_byindex(log, i));
			if (!git_oid_is_zero(id) && !contains(h->repo, tip, id)) {
				/* The branch may be moving: a writer appends the reflog entry under the ref's
				 * lock and moves the ref just after, so for a moment the log names a commit the
				 * ref does not reach yet. Read the ref again for up to ~200 ms, and judge a
				 * rewrite only on a tip that held still all along. */
				bool moved = false;
				for (int k = 0; k < 100 && !moved; k++) {
					git_oid now;
					if (git_reference_name_to_id(&now, h->repo, h->ref) == 0 && !git_oid_equal(&now, tip))
						moved = true;
					else if (k < 99)
						nanosleep(&(struct timespec){0, 2000000L}, NULL);
				}
				if (moved) {
					rc = GITOPS_ECONFLICT;
					break;
				}
				char hex[41];
				git_oid_tostr(hex, sizeof(hex), id);
				rep->problem = gitops_sprintf("the branch was rewritten: %.12s, which %s pointed to before, is no "
							      "longer in its history", hex, h->ref);
				rc = gitops_error_set(GITOPS_EPOLICY, "%s: %s", h->desc, rep->problem);
			}
		}
		git_reflog_free(log);
	}
	git_error_clear();
	return rc;
}

static int walk(struct hist_verify_report *rep, hist *h, const git_oid *tip, bool exists, bool full)
{
	memset(rep, 0, sizeof(*rep));
	if (!h->has_policy)
		return gitops_error_set(GITOPS_EINVALID, "verifying %s needs the pipeline config (gitops.yaml on the main "
					"branch): run it in the manifests repository or pass --repo", h->desc);
	int rc = hist_seen_check(h, tip, exists);
	if (rc) {
		rep->problem = gitops_strdup(gitops_error_last());
		return rc;
	}
	if (!exists) {
		rep->absent = true;
		return 0;
	}
	if ((rc = reflog_check(h, rep, tip)))
		return rc;
	git_oid from;
	bool incremental = !full && remembered(h, &from);
	if (incremental && git_oid_equal(&from, tip)) {
		h->checked = *tip;
		h->has_checked = true;
		return 0;
	}
	struct vctx v = {h, NULL, rep};
	git_tree *ptree = NULL;
	git_oid prev;
	bool have_prev = false;
	long long last_ms = 0;
	if (incremental) {
		git_commit *c = NULL;
		if (git_commit_lookup(&c, h->repo, &from) < 0 || git_commit_tree(&ptree, c) < 0) {
			git_commit_free(c);
			return gitops_git_fail(-1, GITOPS_EGIT, "the verified tip");
		}
		json_t *ev = json_loads(git_commit_message(c), 0, NULL);
		last_ms = hist_time_ms(str(ev, "time"));
		json_decref(ev);
		git_commit_free(c);
		v.s = hist_snap_new(h->repo, ptree);
		prev = from;
		have_prev = true;
	} else {
		v.s = hist_snap_new(NULL, NULL);
	}
	json_t *ids = json_object();
	git_revwalk *w = NULL;
	int g = git_revwalk_new(&w, h->repo);
	if (g == 0)
		g = git_revwalk_push(w, tip);
	if (g == 0 && incremental)
		g = git_revwalk_hide(w, &from);
	if (g < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, h->ref);
		goto out;
	}
	git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
	git_oid id;
	while (!rc && (g = git_revwalk_next(&id, w)) == 0) {
		git_commit *c = NULL;
		git_tree *tree = NULL;
		json_t *ev = NULL;
		if (git_commit_lookup(&c, h->repo, &id) < 0 || git_commit_tree(&tree, c) < 0) {
			rc = fail_at(h, rep, &id, NULL, gitops_strdup("cannot be read"));
			goto next;
		}
		unsigned pc = git_commit_parentcount(c);
		if (pc > 1 || (have_prev && (pc != 1 || !git_oid_equal(git_commit_parent_id(c, 0), &prev))) ||
		    (!have_prev && pc != 0)) {
			rc = fail_at(h, rep, &id, NULL, gitops_sprintf("breaks the chain (%u parents): the log must be linear", pc));
			goto next;
		}
		json_error_t je;
		ev = json_loads(git_commit_message(c), 0, &je);
		if (!ev) {
			rc = fail_at(h, rep, &id, NULL, gitops_sprintf("the message is not one JSON event: %s", je.text));
			goto next;
		}
		if (hist_event_validate(ev)) {
			rc = fail_at(h, rep, &id, NULL, gitops_strdup(gitops_error_last()));
			goto next;
		}
		const char *evid = str(ev, "id");
		long long t = hist_time_ms(str(ev, "time"));
		if (json_object_get(ids, evid)) {
			rc = fail_at(h, rep, &id, evid, gitops_strdup("the event id appears twice"));
			goto next;
		}
		json_object_set_new(ids, evid, json_true());
		if (t < last_ms) {
			rc = fail_at(h, rep, &id, evid, gitops_strdup("its time is before the previous event's (events are "
								      "stamped when appended, in order)"));
			goto next;
		}
		last_ms = t;
		char *p = preconditions(&v, ev);
		if (!p && hist_snap_apply(v.s, ev))
			p = gitops_strdup(gitops_error_last());
		if (!p)
			p = compare_tree(v.s, h->repo, ptree, tree);
		if (p) {
			rc = fail_at(h, rep, &id, evid, p);
			goto next;
		}
		next_event(v.s);
		rep->events++;
		git_tree_free(ptree);
		ptree = tree;
		tree = NULL;
		prev = id;
		have_prev = true;
	next:
		json_decref(ev);
		git_tree_free(tree);
		git_commit_free(c);
	}
	if (!rc && g != GIT_ITEROVER && g < 0)
		rc = gitops_git_fail(g, GITOPS_EGIT, h->ref);
	git_error_clear();
	if (!rc)
		remember(h, tip);
out:
	git_revwalk_free(w);
	json_decref(ids);
	git_tree_free(ptree);
	hist_snap_free(v.s);
	return rc;
}

static int walk_fresh(struct hist_verify_report *out, hist *h, bool full)
{
	int rc = GITOPS_ECONFLICT;
	for (int i = 0; i < 50 && rc == GITOPS_ECONFLICT; i++) {
		git_oid tip;
		bool exists;
		memset(out, 0, sizeof(*out));
		rc = hist_tip(&tip, &exists, h);
		if (!rc)
			rc = walk(out, h, &tip, exists, full);
	}
	return rc;
}

int hist_check(struct hist_verify_report *out, hist *h) { return walk_fresh(out, h, false); }

int hist_verify(struct hist_verify_report *out, hist *h)
{
	int rc = walk_fresh(out, h, true);
	if (!rc && out->absent)
		rc = gitops_error_set(GITOPS_ENOTFOUND, "no state branch %s: nothing was recorded there yet (a mistyped "
				      "--state-branch or --state-repo?)", h->desc);
	return rc;
}

int hist_tip_verified(git_oid *tip, bool *exists, hist *h)
{
	int rc = GITOPS_ECONFLICT;
	for (int i = 0; i < 50 && rc == GITOPS_ECONFLICT; i++) {
		rc = hist_tip(tip, exists, h);
		if (!rc)
			rc = hist_check_tip(h, tip, *exists);
	}
	return rc;
}

int hist_check_tip(hist *h, const git_oid *tip, bool exists)
{
	if (!h->has_policy)
		return hist_seen_check(h, tip, exists);
	if (exists && h->has_checked && git_oid_equal(&h->checked, tip))
		return 0;
	struct hist_verify_report r;
	int rc = walk(&r, h, tip, exists, false);
	hist_verify_report_clear(&r);
	return rc;
}

int hist_checked_append(hist *h, const git_oid *commit)
{
	/* our own append is verified like anyone's (one commit): a writer bug shows at once */
	int rc = h->has_policy ? hist_check_tip(h, commit, true) : 0;
	return rc == GITOPS_ECONFLICT ? 0 : rc; /* another writer already verified a descendant */
}
