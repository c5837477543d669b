/* history/store.c: the state branch as a store: opening it (a local repository, or the mirror of
 * a remote one), reading the tip and its snapshot, and appending one event as a commit with a
 * compare-and-swap move of the branch: objects are written first, the reference moves last, so a
 * writer killed at any point leaves the branch at the previous event or the new one. */
#include "history/internal.h"

#include <git2/sys/commit.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool is_url(const char *s)
{
	if (strstr(s, "://"))
		return true;
	const char *at = strchr(s, '@'), *colon = strchr(s, ':'), *slash = strchr(s, '/');
	return at && colon && at < colon && (!slash || colon < slash);
}

int hist_open(hist **out, const struct hist_options *opt)
{
	*out = NULL;
	if (!opt || !opt->repo || !*opt->repo)
		return gitops_error_set(GITOPS_EINVALID, "no state repository given");
	git_libgit2_init();
	hist *h = gitops_calloc(1, sizeof(*h));
	h->branch = gitops_strdup(opt->branch && *opt->branch ? opt->branch : HIST_DEFAULT_BRANCH);
	h->ref = gitops_sprintf("refs/heads/%s", h->branch);
	h->data_dir = opt->data_dir ? gitops_strdup(opt->data_dir) : mf_data_dir();
	h->desc = gitops_sprintf("%s#%s", opt->repo, h->branch);
	int rc = 0, g;
	if (!git_reference_is_valid_name(h->ref)) {
		rc = gitops_error_set(GITOPS_EINVALID, "\"%s\" is not a valid branch name", h->branch);
		goto fail;
	}
	if (!strncmp(opt->repo, "file://", 7)) {
		/* a repository on this machine: append with the local compare-and-swap (libgit2's
		 * local transport pushes with force and would lose concurrent updates) */
		h->path = gitops_strdup(opt->repo + 7);
	} else if (is_url(opt->repo)) {
		/* remote: work in the manifests mirror of that URL (fetched with its credentials and
		 * host checks); push back with the old value checked */
		mf_repo *m = NULL;
		if ((rc = mf_repo_open(&m, opt->repo, h->data_dir))) {
			rc = gitops_error_set(GITOPS_EGIT, "%s", gitops_error_last());
			goto fail;
		}
		h->url = gitops_strdup(opt->repo);
		h->path = gitops_strdup(mf_repo_path(m));
		mf_repo_free(m);
	} else {
		h->path = gitops_strdup(opt->repo);
	}
	if ((g = git_repository_open(&h->repo, h->path)) < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, h->path);
		goto fail;
	}
	*out = h;
	return 0;
fail:
	hist_free(h);
	return rc;
}

int hist_open_default(hist **out, const char *state_repo, const char *branch, const char *manifests_repo)
{
	char *found = NULL;
	const char *repo = state_repo && *state_repo ? state_repo : manifests_repo && *manifests_repo ? manifests_repo : NULL;
	if (!repo) {
		if (mf_repo_discover(&found, "."))
			return gitops_error_set(GITOPS_EGIT, "%s; run inside the manifests repository or pass --repo / "
						"--state-repo", gitops_error_last());
		repo = found;
	}
	struct hist_options o = {.repo = repo,
				 .branch = branch && *branch ? branch : NULL};
	int rc = hist_open(out, &o);
	free(found);
	return rc;
}

void hist_free(hist *h)
{
	if (!h)
		return;
	hist_snap_free(h->cache);
	EVP_PKEY_free(h->signer);
	free(h->signer_pub);
	git_repository_free(h->repo);
	free(h->url);
	free(h->path);
	free(h->branch);
	free(h->ref);
	free(h->desc);
	free(h->data_dir);
	free(h);
	git_libgit2_shutdown();
}

const char *hist_describe(const hist *h) { return h->desc; }

void hist_set_policy(hist *h, const struct hist_policy *pol)
{
	h->has_policy = pol && pol->configs_at;
	if (h->has_policy)
		h->policy = *pol;
	h->has_checked = false;
}

int hist_set_signing_key(hist *h, const char *key_file)
{
	EVP_PKEY *k = NULL;
	char *pub = NULL;
	int rc = hist_load_key(&k, &pub, key_file);
	if (rc)
		return gitops_error_prefix("--signing-key");
	EVP_PKEY_free(h->signer);
	free(h->signer_pub);
	h->signer = k;
	h->signer_pub = pub;
	return 0;
}

static int fetch(hist *h)
{
	if (!h->url)
		return 0;
	mf_repo *m = NULL;
	int rc = mf_repo_open(&m, h->url, h->data_dir);
	if (!rc)
		rc = mf_repo_fetch(m);
	mf_repo_free(m);
	if (rc)
		return gitops_error_set(GITOPS_EGIT, "state repository: %s", gitops_error_last());
	return 0;
}

/* The local tip without fetching. */
static int local_tip(git_oid *out, bool *exists, hist *h)
{
	int g = git_reference_name_to_id(out, h->repo, h->ref);
	*exists = g == 0;
	if (g == GIT_ENOTFOUND) {
		git_error_clear();
		return 0;
	}
	return g < 0 ? gitops_git_fail(g, GITOPS_EGIT, h->ref) : 0;
}

int hist_tip(git_oid *out, bool *exists, hist *h)
{
	int rc = fetch(h);
	return rc ? rc : local_tip(out, exists, h);
}

static int snapshot_at(struct hist_snap **out, hist *h, const git_oid *tip, bool exists)
{
	*out = NULL;
	if (!exists) {
		*out = hist_snap_new(h->repo, NULL);
		return 0;
	}
	if (h->cache && git_oid_equal(&h->cache_tip, tip)) {
		/* hand the cache over: an append that lands puts its snapshot back, one that loses
		 * a race reloads from the new tip anyway */
		*out = h->cache;
		h->cache = NULL;
		return 0;
	}
	git_commit *c = NULL;
	git_tree *t = NULL;
	int g = git_commit_lookup(&c, h->repo, tip);
	if (g == 0)
		g = git_commit_tree(&t, c);
	git_commit_free(c);
	if (g < 0)
		return gitops_git_fail(g, GITOPS_EGIT, h->ref);
	*out = hist_snap_new(h->repo, t);
	git_tree_free(t);
	return 0;
}

int hist_snapshot(struct hist_snap **out, hist *h)
{
	git_oid tip;
	bool exists;
	int rc = hist_tip_verified(&tip, &exists, h);
	return rc ? rc : snapshot_at(out, h, &tip, exists);
}

/* The time of the event at `tip` (epoch ms), 0 when unknown. */
static long long tip_time(hist *h, const git_oid *tip)
{
	git_commit *c = NULL;
	long long t = 0;
	if (git_commit_lookup(&c, h->repo, tip) == 0) {
		json_t *ev = json_loads(git_commit_message(c), 0, NULL);
		t = hist_time_ms(json_string_value(json_object_get(ev, "time")));
		json_decref(ev);
	}
	git_commit_free(c);
	git_error_clear();
	return t > 0 ? t : 0;
}

/* An event's time is taken when its append is attempted on the tip it will follow, and never
 * before that tip's event: the chain is in time order (verify checks it), whatever the retries
 * and clock differences between writers. */
static void stamp(hist *h, json_t *ev, const git_oid *tip, bool exists)
{
	long long now = hist_now_wall_ms(), parent = exists ? tip_time(h, tip) : 0;
	char t[32];
	hist_format_time(t, now > parent ? now : parent);
	json_object_set_new(ev, "time", json_string(t));
}

static bool signable(const json_t *ev)
{
	const char *t = json_string_value(json_object_get(ev, "type"));
	return t && (!strncmp(t, "sync.", 5) || !strncmp(t, "health.", 7) || !strncmp(t, "drift.", 6));
}

/* ---- append ------------------------------------------------------------------------------ */

static int make_commit(git_oid *out, hist *h, const git_oid *tree_id, const git_oid *parent, const json_t *ev)
{
	git_signature *sig = NULL;
	const char *actor = json_string_value(json_object_get(ev, "actor"));
	long long ms = hist_time_ms(json_string_value(json_object_get(ev, "time")));
	char *one = hist_event_dump(ev);
	char *msg = gitops_sprintf("%s\n", one);
	free(one);
	int rc = 0, g;
	/* from ids: the tree and the parent are not read back (they were just written / are the tip) */
	const git_oid *parents[1] = {parent};
	if ((g = git_signature_new(&sig, actor && *actor ? actor : "gitops", "gitops@localhost", (git_time_t)(ms / 1000), 0)) < 0 ||
	    (g = git_commit_create_from_ids(out, h->repo, NULL, sig, sig, NULL, msg, tree_id, parent ? 1 : 0, parents)) < 0)
		rc = gitops_git_fail(g, GITOPS_EGIT, "state commit");
	free(msg);
	git_signature_free(sig);
	return rc;
}

/* Test hook: GITOPS_TEST_APPEND_DELAY_MS pauses between writing the objects and moving the
 * branch, so a test can kill a writer in the middle of an append. */
static void test_delay(void)
{
	const char *d = getenv("GITOPS_TEST_APPEND_DELAY_MS");
	if (d && *d) {
		long ms = strtol(d, NULL, 10);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* Random back-off before a retry: 1..(8 << attempt) ms, capped at ~200 ms. */
static void backoff(int attempt)
{
	unsigned char r[2];
	char id[13];
	hist_new_id(id);
	r[0] = (unsigned char)id[0];
	r[1] = (unsigned char)id[1];
	long cap = 8L << (attempt < 5 ? attempt : 5);
	if (cap > 200)
		cap = 200;
	long ms = 1 + ((r[0] * 256 + r[1]) % cap);
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

struct push_ctx {
	const git_oid *expected; /* NULL: the branch must not exist */
	bool moved, rejected;
	char *why;
	int attempts;
};

/* https credentials for the push: GITOPS_GIT_TOKEN(_FILE), or GITOPS_GIT_USERNAME and
 * GITOPS_GIT_PASSWORD(_FILE). ssh remotes are fetched by manifests/ but not pushed to here. */
static int push_cred(git_credential **out, const char *url, const char *user_from_url, unsigned int allowed,
		     void *payload)
{
	struct push_ctx *c = payload;
	if (++c->attempts > 1 || !(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT))
		return GIT_EAUTH;
	return mf_git_userpass_credential(out, user_from_url) == 0 ? 0 : GIT_EAUTH;
}

static int push_negotiation(const git_push_update **updates, size_t len, void *payload)
{
	struct push_ctx *c = payload;
	for (size_t i = 0; i < len; i++) {
		bool zero = git_oid_is_zero(&updates[i]->src);
		if ((c->expected && !git_oid_equal(&updates[i]->src, c->expected)) || (!c->expected && !zero)) {
			c->moved = true;
			return -1;
		}
	}
	return 0;
}

static int push_update_ref(const char *refname, const char *status, void *payload)
{
	struct push_ctx *c = payload;
	if (status) {
		c->rejected = true;
		free(c->why);
		c->why = gitops_sprintf("%s: %s", refname, status);
	}
	return 0;
}

/* Pushes `commit` to the remote branch if it still is at `old` (NULL: absent). 0 landed,
 * GITOPS_ECONFLICT when someone else moved it first. */
static int push(hist *h, const git_oid *commit, const git_oid *old)
{
	char tmpref[64], id[13];
	hist_new_id(id);
	snprintf(tmpref, sizeof(tmpref), "refs/gitops/push-%s", id);
	git_reference *r = NULL;
	int g = git_reference_create(&r, h->repo, tmpref, commit, 1, "gitops: push");
	git_reference_free(r);
	if (g < 0)
		return gitops_git_fail(g, GITOPS_EGIT, tmpref);
	git_remote *remote = NULL;
	git_remote_create_options copts;
	git_remote_create_options_init(&copts, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	copts.repository = h->repo;
	copts.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	int rc = 0;
	if ((g = git_remote_create_with_opts(&remote, h->url, &copts)) < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, h->url);
		goto out;
	}
	char *spec = gitops_sprintf("%s:%s", tmpref, h->ref); /* not forced: a moved branch is refused */
	git_strarray specs = {&spec, 1};
	struct push_ctx ctx = {old, false, false, NULL, 0};
	git_push_options po;
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	po.callbacks.push_negotiation = push_negotiation;
	po.callbacks.push_update_reference = push_update_ref;
	po.callbacks.credentials = push_cred;
	po.callbacks.payload = &ctx;
	g = git_remote_push(remote, &specs, &po);
	free(spec);
	if (ctx.moved || ctx.rejected)
		rc = gitops_error_set(GITOPS_ECONFLICT, "push %s: %s", h->url, ctx.why ? ctx.why : "the branch moved");
	else if (g < 0)
		rc = gitops_git_fail(g, GITOPS_ENETWORK, h->url);
	free(ctx.why);
out:
	git_remote_free(remote);
	if (git_reference_lookup(&r, h->repo, tmpref) == 0) {
		git_reference_delete(r);
		git_reference_free(r);
	}
	git_error_clear();
	return rc;
}

/* Moves the branch from `tip` (absent when !exists) to `commit`: 0 landed, GITOPS_ECONFLICT when
 * another writer moved it first (retry), another code on failure. */
static int land(hist *h, const git_oid *commit, bool exists, const git_oid *tip, const char *what)
{
	if (h->url) {
		int rc = push(h, commit, exists ? tip : NULL);
		if (rc == 0) {
			git_reference *r = NULL; /* the mirror follows at once; a fetch would too */
			git_reference_create(&r, h->repo, h->ref, commit, 1, "gitops: pushed");
			git_reference_free(r);
			git_error_clear();
		}
		return rc;
	}
	char *msg = gitops_sprintf("gitops: %s", what);
	git_reference *r = NULL;
	if (!h->log_ensured) { /* bare repositories keep a reflog too: verify reads it */
		git_reference_ensure_log(h->repo, h->ref);
		h->log_ensured = true;
	}
	/* the expected old value is checked under the ref's lock; a zero id means "must not exist
	 * yet" (a NULL one would let two first writers both win) */
	git_oid zero;
	memset(&zero, 0, sizeof(zero));
	int g = git_reference_create_matching(&r, h->repo, h->ref, commit, 1, exists ? tip : &zero, msg);
	git_reference_free(r);
	free(msg);
	if (g == GIT_EMODIFIED || g == GIT_ELOCKED || g == GIT_EEXISTS) {
		git_error_clear();
		return GITOPS_ECONFLICT;
	}
	return g < 0 ? gitops_git_fail(g, GITOPS_EGIT, h->ref) : 0;
}

/* Keeps `s` (now at `tree_id`, tip `commit`) as the cache for the next append. */
static void keep_cache(hist *h, struct hist_snap *s, const git_oid *tree_id, const git_oid *commit)
{
	hist_snap_clear_dirty(s);
	git_tree_free(s->root);
	s->root = NULL;
	s->repo = h->repo;
	git_tree_lookup(&s->root, h->repo, tree_id);
	git_error_clear();
	hist_snap_free(h->cache);
	h->cache = s;
	h->cache_tip = *commit;
}

void hist_set_cancel(hist *h, const atomic_bool *flag) { h->cancel = flag; }

/* Whether a retry loop stops now: a cancelled append after its first 10 attempts. */
static bool cancelled(const hist *h, int attempt) { return attempt >= 9 && h->cancel && atomic_load(h->cancel); }

static int cancelled_error(hist *h, int attempt)
{
	return gitops_error_set(GITOPS_ETIMEOUT, "%s: cancelled after %d attempts: other writers kept moving the branch",
				h->desc, attempt + 1);
}

static int give_up(hist *h, int attempt)
{
	return gitops_error_set(GITOPS_ECONFLICT, "%s: gave up after %d attempts: other writers keep moving the branch",
				h->desc, attempt + 1);
}

int hist_append(hist *h, json_t *ev, hist_prepare_fn prep, void *ud, bool *skipped)
{
	if (skipped)
		*skipped = false;
	int rc = 0;
	for (int attempt = 0;; attempt++) {
		git_oid tip, tree_id, commit;
		bool exists, skip = false;
		struct hist_snap *s = NULL;
		if ((rc = hist_tip_verified(&tip, &exists, h)) || (rc = snapshot_at(&s, h, &tip, exists)))
			return rc;
		stamp(h, ev, &tip, exists);
		if (prep && (rc = prep(ud, s, ev, &skip))) {
			hist_snap_free(s);
			return rc;
		}
		if (skip) {
			hist_snap_free(s);
			if (skipped)
				*skipped = true;
			return 0;
		}
		if (h->signer && signable(ev) && (rc = hist_event_sign(ev, h->signer, h->signer_pub))) {
			hist_snap_free(s);
			return rc;
		}
		if ((rc = hist_event_validate(ev)) || (rc = hist_snap_apply(s, ev)) || (rc = hist_snap_write(&tree_id, s)) ||
		    (rc = make_commit(&commit, h, &tree_id, exists ? &tip : NULL, ev))) {
			hist_snap_free(s);
			return rc;
		}
		test_delay();
		char *what = gitops_sprintf("%s %s", json_string_value(json_object_get(ev, "type")),
					    json_string_value(json_object_get(ev, "id")));
		rc = land(h, &commit, exists, &tip, what);
		free(what);
		if (rc == 0) {
			keep_cache(h, s, &tree_id, &commit);
			return hist_checked_append(h, &commit);
		}
		hist_snap_free(s);
		if (rc != GITOPS_ECONFLICT)
			return rc;
		if (attempt >= 500)
			return give_up(h, attempt);
		if (cancelled(h, attempt))
			return cancelled_error(h, attempt);
		backoff(attempt);
	}
}

/* Writes the objects of a batch into memory (libgit2's mempack on a second handle of the
 * repository), then into one packfile: thousands of events cost one file, not four each. */
static int batch_once(hist *h, json_t **evs, size_t n, const git_oid *tip, bool exists, git_oid *out_commit,
		      git_oid *out_tree, struct hist_snap **out_snap)
{
	git_repository *r2 = NULL;
	git_odb *odb = NULL;
	git_odb_backend *mp = NULL;
	git_odb_writepack *wp = NULL;
	git_buf pack = {0};
	struct hist_snap *s = NULL;
	int rc = 0, g;
	if ((g = git_repository_open(&r2, h->path)) < 0 || (g = git_repository_odb(&odb, r2)) < 0 ||
	    (g = git_mempack_new(&mp)) < 0 || (g = git_odb_add_backend(odb, mp, 1000)) < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, h->path);
		goto out;
	}
	if ((rc = snapshot_at(&s, h, tip, exists)))
		goto out;
	git_tree_free(s->root);
	s->root = NULL;
	s->repo = r2;
	if (exists) {
		git_commit *c = NULL;
		if ((g = git_commit_lookup(&c, r2, tip)) == 0)
			g = git_commit_tree(&s->root, c);
		git_commit_free(c);
		if (g < 0) {
			rc = gitops_git_fail(g, GITOPS_EGIT, h->ref);
			goto out;
		}
	}
	git_oid parent = *tip, commit, tree_id;
	bool has_parent = exists;
	hist *view = h; /* make_commit writes through the repository handle it is given */
	git_repository *keep = view->repo;
	view->repo = r2;
	for (size_t i = 0; i < n && !rc; i++) {
		if ((rc = hist_event_validate(evs[i])) || (rc = hist_snap_apply(s, evs[i])) ||
		    (rc = hist_snap_write(&tree_id, s)) ||
		    (rc = make_commit(&commit, view, &tree_id, has_parent ? &parent : NULL, evs[i])))
			break;
		hist_snap_clear_dirty(s);
		git_tree_free(s->root);
		s->root = NULL;
		if ((g = git_tree_lookup(&s->root, r2, &tree_id)) < 0)
			rc = gitops_git_fail(g, GITOPS_EGIT, "state tree");
		parent = commit;
		has_parent = true;
	}
	view->repo = keep;
	if (rc)
		goto out;
	git_indexer_progress st;
	if ((g = git_mempack_dump(&pack, r2, mp)) < 0 || (g = git_odb_write_pack(&wp, odb, NULL, NULL)) < 0 ||
	    (g = wp->append(wp, pack.ptr, pack.size, &st)) < 0 || (g = wp->commit(wp, &st)) < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, "writing the batch's packfile");
		goto out;
	}
	*out_commit = commit;
	*out_tree = tree_id;
	*out_snap = s;
	s = NULL;
out:
	if (wp)
		wp->free(wp);
	if (mp)
		git_mempack_reset(mp);
	git_buf_dispose(&pack);
	hist_snap_free(s);
	git_odb_free(odb);
	git_repository_free(r2);
	return rc;
}

int hist_record_batch(hist *h, const struct hist_event *evs, size_t n)
{
	if (!n)
		return 0;
	json_t **js = gitops_calloc(n, sizeof(*js));
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (evs[i].type && (!strncmp(evs[i].type, "promotion.", 10) || !strcmp(evs[i].type, "rollback") ||
				    !strcmp(evs[i].type, "resume")))
			rc = gitops_error_set(GITOPS_EINVALID, "%s events are not recorded in batches", evs[i].type);
		else
			rc = hist_event_build(&js[i], &evs[i]);
	}
	for (int attempt = 0; !rc; attempt++) {
		git_oid tip, commit, tree_id;
		bool exists;
		struct hist_snap *s = NULL;
		if ((rc = hist_tip_verified(&tip, &exists, h)))
			break;
		for (size_t i = 0; i < n && !rc; i++) {
			stamp(h, js[i], &tip, exists);
			if (h->signer && signable(js[i]))
				rc = hist_event_sign(js[i], h->signer, h->signer_pub);
		}
		if (rc || (rc = batch_once(h, js, n, &tip, exists, &commit, &tree_id, &s)))
			break;
		char *what = gitops_sprintf("batch of %zu events", n);
		rc = land(h, &commit, exists, &tip, what);
		free(what);
		if (rc == 0) {
			keep_cache(h, s, &tree_id, &commit);
			rc = hist_checked_append(h, &commit);
			break;
		}
		hist_snap_free(s);
		if (rc != GITOPS_ECONFLICT)
			break;
		if (attempt >= 500) {
			rc = give_up(h, attempt);
			break;
		}
		if (cancelled(h, attempt)) {
			rc = cancelled_error(h, attempt);
			break;
		}
		rc = 0;
		backoff(attempt);
	}
	for (size_t i = 0; i < n; i++)
		json_decref(js[i]);
	free(js);
	return rc;
}
