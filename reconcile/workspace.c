/* reconcile: the workspace: the repository mirror, the pipeline config read from the main
 * branch, the renderer with its cache, and one Kubernetes client per cluster. Thread-safety:
 * rec_workspace_client and progress lines may be used from any thread (clients_lock,
 * progress_lock); everything else by one thread at a time (reconcile.h). */
#include "reconcile/internal.h"
#include "common/mask.h"
#include "history/history.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void rec_progress(rec_workspace *ws, const char *fmt, ...)
{
	if (!ws->opt.progress)
		return;
	gitops_buf b = GITOPS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	gitops_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	char *line = gitops_mask_text(gitops_buf_cstr(&b), NULL);
	pthread_mutex_lock(&ws->progress_lock);
	if (ws->opt.progress) /* rec_env_sync swaps it under this lock */
		ws->opt.progress(ws->opt.progress_ud, line);
	pthread_mutex_unlock(&ws->progress_lock);
	free(line);
	gitops_buf_free(&b);
}

/* Repository failures become GITOPS_EGIT, keeping the message: the CLI maps them to exit 5. */
static int git_error(int rc)
{
	return (rc == GITOPS_EPARSE || rc == GITOPS_EINVALID) ? rc : gitops_error_set(GITOPS_EGIT, "%s", gitops_error_last());
}

static int read_config(rec_workspace *ws, const char *sha, struct mf_config **out)
{
	gitops_buf text = GITOPS_BUF_INIT;
	int rc = mf_repo_read(&text, ws->repo, sha, "gitops.yaml");
	if (rc == GITOPS_ENOTFOUND)
		rc = gitops_error_set(GITOPS_EGIT, "no gitops.yaml at the root of %.12s in %s; add one (see README, "
				      "\"The pipeline config: gitops.yaml\")", sha, ws->repo_url);
	else if (rc)
		rc = git_error(rc);
	if (!rc)
		rc = mf_config_parse(out, gitops_buf_cstr(&text), text.len, "gitops.yaml");
	gitops_buf_free(&text);
	return rc;
}

/* gitops.yaml comes from the main branch, resolved exactly (never a tag or HEAD, which whoever
 * can push a tag or check out a branch controls): $GITOPS_MAIN_BRANCH, else main, else master.
 * A config there that names another `branch:` is followed once; that one must agree. */
static int read_main_config(rec_workspace *ws)
{
	const char *env = ws->opt.main_branch; /* --main-branch / $GITOPS_MAIN_BRANCH, from cli/ */
	const char *cands[] = {env && *env ? env : "main", env && *env ? NULL : "master"};
	const char *branch = NULL;
	int rc = GITOPS_ENOTFOUND;
	for (size_t i = 0; i < 2 && rc; i++)
		if (cands[i] && (rc = mf_repo_resolve_branch(ws->main_sha, ws->repo, cands[i])) == 0)
			branch = cands[i];
	if (rc)
		return gitops_error_set(GITOPS_EGIT, "no main branch in %s: %s%s", ws->repo_url, gitops_error_last(),
					env && *env ? "" : " (neither main nor master; set GITOPS_MAIN_BRANCH)");
	if ((rc = read_config(ws, ws->main_sha, &ws->cfg)))
		return rc;
	if (!strcmp(ws->cfg->branch, branch))
		return 0;
	if (env && *env)
		return gitops_error_set(GITOPS_EINVALID, "gitops.yaml on %s says branch: %s, but GITOPS_MAIN_BRANCH is %s; "
					"make them agree", branch, ws->cfg->branch, env);
	char *named = gitops_strdup(ws->cfg->branch);
	struct mf_config *c2 = NULL;
	if ((rc = mf_repo_resolve_branch(ws->main_sha, ws->repo, named))) {
		rc = gitops_error_set(GITOPS_EGIT, "gitops.yaml on %s says the main branch is %s%s, but %s; add `branch: %s` "
				      "or set GITOPS_MAIN_BRANCH", branch, named, strcmp(named, "main") ? "" : " (the default)",
				      gitops_error_last(), branch);
	} else if (!(rc = read_config(ws, ws->main_sha, &c2)) && strcmp(c2->branch, named)) {
		rc = gitops_error_set(GITOPS_EINVALID, "gitops.yaml on %s says the main branch is %s, the one on %s says %s; "
				      "make them agree or set GITOPS_MAIN_BRANCH", branch, named, named, c2->branch);
	}
	if (!rc) {
		mf_config_free(ws->cfg);
		ws->cfg = c2;
		c2 = NULL;
	}
	mf_config_free(c2);
	free(named);
	return rc;
}

/* Where the last capabilities seen of a cluster are kept: one file per kubeconfig and context. */
static char *capabilities_cache(rec_workspace *ws, const struct mf_environment *env)
{
	const char *kc = ws->opt.kubeconfig ? ws->opt.kubeconfig : env->cluster_kubeconfig;
	const char *ctx = ws->opt.context ? ws->opt.context : env->cluster_context;
	const char *kenv = getenv("KUBECONFIG");
	char *id = gitops_sprintf("%s\n%s\n%s", kc ? kc : "", kenv && !kc ? kenv : "", ctx ? ctx : "");
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(id, strlen(id), md, &n, EVP_sha256(), NULL);
	free(id);
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	char *base = ws->opt.data_dir ? gitops_strdup(ws->opt.data_dir) : mf_data_dir();
	char *p = gitops_sprintf("%s/capabilities/%.16s.json", base, hex);
	free(base);
	return p;
}

/* mf_capabilities_fn: helm renders for the environment's cluster as `helm install` would, with its
 * version and API versions from discovery; without cluster access, with the ones last seen (kept
 * under the data directory), else with helm's defaults, saying so. */
static int render_capabilities(void *data, const struct mf_environment *env, char **ver, json_t **apis)
{
	rec_workspace *ws = data;
	char *path = capabilities_cache(ws, env);
	kube_client *c = NULL;
	int rc = rec_workspace_client(&c, ws, env);
	if (!rc)
		rc = kube_server_version(ver, c);
	if (!rc)
		rc = kube_api_versions(apis, c);
	if (!rc) {
		json_t *doc = json_pack("{s:s, s:O}", "kubeVersion", *ver, "apiVersions", *apis);
		char *text = json_dumps(doc, JSON_COMPACT);
		char *dir = gitops_strdup(path);
		*strrchr(dir, '/') = '\0';
		char *parent = gitops_strdup(dir);
		*strrchr(parent, '/') = '\0';
		mkdir(parent, 0700);
		mkdir(dir, 0700);
		if (text && gitops_write_file(path, text, strlen(text), 0600))
			gitops_error_clear(); /* only a later offline render loses */
		free(parent);
		free(dir);
		free(text);
		json_decref(doc);
		free(path);
		return GITOPS_OK;
	}
	char *why = gitops_strdup(gitops_error_last());
	free(*ver);
	json_decref(*apis);
	*ver = NULL;
	*apis = NULL;
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je);
	const char *kv = json_string_value(json_object_get(doc, "kubeVersion"));
	json_t *av = json_object_get(doc, "apiVersions");
	if (kv && json_is_array(av)) {
		*ver = gitops_strdup(kv);
		*apis = json_incref(av);
		rec_progress(ws, "warning: %s; helm renders with the cluster's capabilities last seen "
			     "(Kubernetes %s)", why, kv);
	} else {
		rec_progress(ws, "warning: %s; helm renders with its default capabilities (the "
			     "cluster's version and APIs were never seen)", why);
	}
	json_decref(doc);
	free(why);
	free(path);
	gitops_error_clear();
	return GITOPS_OK;
}

int rec_workspace_open(rec_workspace **out, const struct rec_workspace_options *opt)
{
	struct rec_workspace_options none = {0};
	rec_workspace *ws = gitops_calloc(1, sizeof(*ws));
	ws->opt = opt ? *opt : none;
	pthread_mutex_init(&ws->progress_lock, NULL);
	pthread_mutex_init(&ws->clients_lock, NULL);
	*out = NULL;
	int rc;
	if (ws->opt.repo) {
		ws->repo_url = gitops_strdup(ws->opt.repo);
	} else if ((rc = mf_repo_discover(&ws->repo_url, "."))) {
		rc = gitops_error_set(GITOPS_EGIT, "%s; run inside the manifests repository or pass --repo", gitops_error_last());
		goto fail;
	}
	if ((rc = mf_repo_open(&ws->repo, ws->repo_url, ws->opt.data_dir))) {
		rc = git_error(rc);
		goto fail;
	}
	if (!ws->opt.no_fetch && mf_repo_fetch(ws->repo)) {
		/* The mirror keeps its last good state: go on with it if it has anything. */
		char *why = gitops_strdup(gitops_error_last());
		if (!mf_repo_has_refs(ws->repo)) {
			rc = gitops_error_set(GITOPS_EGIT, "%s", why);
			free(why);
			goto fail;
		}
		rec_progress(ws, "warning: %s", why);
		free(why);
	}
	if ((rc = read_main_config(ws)))
		goto fail;
	struct mf_render_options ro = {.data_dir = ws->opt.data_dir, .capabilities = render_capabilities,
				       .capabilities_data = ws, .timeout_ms = ws->opt.render_timeout_ms,
				       .no_memory_cache = ws->opt.render_once};
	if ((rc = mf_renderer_new(&ws->renderer, &ro)))
		goto fail;
	*out = ws;
	return GITOPS_OK;
fail:
	rec_workspace_free(ws);
	return rc;
}

int rec_workspace_refresh(rec_workspace *ws, bool *config_changed)
{
	*config_changed = false;
	if (!ws->opt.no_fetch && mf_repo_fetch(ws->repo))
		return gitops_error_set(GITOPS_EGIT, "%s", gitops_error_last());
	char sha[41];
	int rc = mf_repo_resolve(sha, ws->repo, ws->cfg->branch);
	if (rc == GITOPS_ENOTFOUND)
		rc = mf_repo_resolve(sha, ws->repo, "HEAD");
	if (rc)
		return git_error(rc);
	if (!strcmp(sha, ws->main_sha))
		return GITOPS_OK;
	struct mf_config *cfg = NULL;
	if ((rc = read_config(ws, sha, &cfg)))
		return rc;
	mf_config_free(ws->cfg);
	ws->cfg = cfg;
	memcpy(ws->main_sha, sha, sizeof(sha));
	*config_changed = true;
	return GITOPS_OK;
}

void rec_workspace_free(rec_workspace *ws)
{
	if (!ws)
		return;
	for (size_t i = 0; i < ws->n_clients; i++) {
		kube_client_free(ws->clients[i].client);
		free(ws->clients[i].key);
	}
	free(ws->clients);
	mf_renderer_free(ws->renderer);
	mf_config_log_free(ws->cfglog);
	mf_config_free(ws->cfg);
	mf_repo_free(ws->repo);
	free(ws->repo_url);
	pthread_mutex_destroy(&ws->progress_lock);
	pthread_mutex_destroy(&ws->clients_lock);
	free(ws);
}

const struct mf_config *rec_workspace_config(const rec_workspace *ws) { return ws->cfg; }

const char *rec_workspace_main_sha(const rec_workspace *ws) { return ws->main_sha; }

int rec_workspace_env(const struct mf_environment **out, rec_workspace *ws, const char *name)
{
	*out = mf_config_env(ws->cfg, name);
	if (*out)
		return GITOPS_OK;
	gitops_buf names = GITOPS_BUF_INIT;
	for (size_t i = 0; i < ws->cfg->n_envs; i++)
		gitops_buf_printf(&names, "%s%s", i ? ", " : "", ws->cfg->envs[i].name);
	int rc = gitops_error_set(GITOPS_EINVALID, "gitops.yaml: no environment \"%s\" (known: %s)", name,
				  gitops_buf_cstr(&names));
	gitops_buf_free(&names);
	return rc;
}

/* A gitops.yaml committed this long after an event still counts for it (clocks differ). */
#define CONFIG_SKEW_MS (5 * 60 * 1000LL)

static int configs_at(void *ud, const struct mf_config **out, size_t max, long long ms)
{
	rec_workspace *ws = ud;
	if (!ws->cfglog && mf_config_log_open(&ws->cfglog, ws->repo, ws->main_sha))
		return 0;
	return mf_config_log_at(out, max, ws->cfglog, ms, CONFIG_SKEW_MS);
}

void rec_workspace_policy(rec_workspace *ws, struct hist_policy *out)
{
	out->configs_at = configs_at;
	out->ud = ws;
}

int rec_workspace_history(hist **out, rec_workspace *ws, const char *state_repo, const char *state_branch)
{
	int rc = hist_open_default(out, state_repo ? state_repo : ws->opt.state_repo,
				   state_branch ? state_branch : ws->opt.state_branch, ws->repo_url);
	if (rc)
		return rc;
	struct hist_policy pol;
	rec_workspace_policy(ws, &pol);
	hist_set_policy(*out, &pol);
	return 0;
}

int rec_commit_trusted(rec_workspace *ws, const struct mf_environment *env, const char *sha)
{
	if (!env->n_commit_signers)
		return 0;
	gitops_buf sig = GITOPS_BUF_INIT, payload = GITOPS_BUF_INIT;
	gitops_buf names = GITOPS_BUF_INIT;
	for (size_t i = 0; i < env->n_commit_signers; i++)
		gitops_buf_printf(&names, "%s%s", i ? ", " : "", env->commit_signers[i].name);
	unsigned char blob[51];
	int rc = mf_repo_commit_signature(&sig, &payload, ws->repo, sha);
	if (rc == GITOPS_ENOTFOUND) {
		rc = gitops_error_set(GITOPS_EPOLICY, "commit %.12s is not signed: %s deploys only commits with a git SSH "
				      "signature by one of its commitSigners (%s)", sha, env->name, gitops_buf_cstr(&names));
	} else if (rc) {
		rc = gitops_error_set(GITOPS_EGIT, "%s", gitops_error_last());
	} else if ((rc = hist_sshsig_verify(blob, sig.ptr, sig.len, payload.ptr, payload.len, "git"))) {
		rc = gitops_error_set(GITOPS_EPOLICY, "commit %.12s: %s; %s deploys only commits signed by one of its "
				      "commitSigners (%s)", sha, gitops_error_last(), env->name, gitops_buf_cstr(&names));
	} else {
		rc = -1;
		for (size_t i = 0; i < env->n_commit_signers && rc; i++)
			if (!memcmp(env->commit_signers[i].blob, blob, sizeof(blob)))
				rc = 0;
		if (rc) {
			char fp[64];
			hist_ssh_fingerprint(fp, blob);
			rc = gitops_error_set(GITOPS_EPOLICY, "commit %.12s is signed by %s, which is not one of the "
					      "commitSigners of %s (%s)", sha, fp, env->name, gitops_buf_cstr(&names));
		}
	}
	gitops_buf_free(&sig);
	gitops_buf_free(&payload);
	gitops_buf_free(&names);
	return rc;
}

int rec_resolve_revision(char out[41], rec_workspace *ws, const struct mf_environment *env, const char *rev)
{
	/* Without --revision, a pin in the state branch wins (a promotion, or a rollback that a new
	 * commit on the tracked branch must not override); the branch is verified before it is
	 * obeyed. */
	char pin[41] = "";
	if (!rev) {
		hist *h = NULL;
		int hrc = rec_workspace_history(&h, ws, NULL, NULL);
		if (!hrc)
			hrc = hist_pin(pin, h, env->name);
		hist_free(h);
		if (hrc && hrc != GITOPS_ENOTFOUND) {
			if (!ws->opt.pins_best_effort)
				return hrc == GITOPS_EPOLICY ? hrc
							     : gitops_error_set(GITOPS_EGIT, "reading the pin of %s: %s", env->name,
										gitops_error_last());
			rec_progress(ws, "warning: reading the pin of %s: %s; showing it as if unpinned", env->name,
				     gitops_error_last());
			pin[0] = '\0';
		}
		gitops_error_clear();
	}
	if (!rev && !*pin && !env->track)
		return gitops_error_set(GITOPS_EINVALID, "environment %s has no promoted revision yet: promote a commit "
					"healthy in %s (gitops promote <sha> %s), get a pending promotion approved (gitops "
					"history --env %s --type promotion.), or pass --revision SHA",
					env->name, env->from ? env->from : "?", env->name, env->name);
	int rc;
	if (rev) {
		rc = mf_repo_resolve(out, ws->repo, rev);
	} else if (*pin) {
		/* a commit id, never a ref that happens to look like one */
		rc = mf_repo_resolve(out, ws->repo, pin);
		if (!rc && strcmp(out, pin))
			rc = gitops_error_set(GITOPS_EGIT, "pinned commit %s is not in %s", pin, ws->repo_url);
	} else {
		rc = mf_repo_resolve_branch(out, ws->repo, env->track);
	}
	if (rc)
		return git_error(rc);
	return ws->opt.deploy ? rec_commit_trusted(ws, env, out) : GITOPS_OK;
}

int rec_render_env(mf_objects **out, rec_workspace *ws, const struct mf_environment *env, const char *sha,
		   const char *only_app)
{
	int rc = mf_render_env(out, ws->renderer, ws->repo, sha, env, only_app);
	if (rc && rc != GITOPS_EIO)
		rc = gitops_error_set(GITOPS_EINVALID, "%s", gitops_error_last());
	return rc;
}

const char *rec_workspace_repo_url(const rec_workspace *ws) { return ws->repo_url; }

int rec_workspace_has_commit(rec_workspace *ws, const char *sha)
{
	char out[41];
	int rc = mf_repo_resolve(out, ws->repo, sha);
	gitops_error_clear();
	return rc == GITOPS_OK && !strcmp(out, sha) ? GITOPS_OK : GITOPS_ENOTFOUND;
}

int rec_workspace_pipeline(const char **pipeline, const char **root, rec_workspace *ws)
{
	if (!ws->root_commit[0]) {
		int rc = mf_repo_root_commit(ws->root_commit, ws->repo, ws->main_sha);
		if (rc) {
			ws->root_commit[0] = '\0';
			return gitops_error_set(GITOPS_EGIT, "the pipeline identity (root commit of %.12s): %s", ws->main_sha,
						gitops_error_last());
		}
		if (ws->cfg->name)
			snprintf(ws->pipeline, sizeof(ws->pipeline), "%s", ws->cfg->name);
		else
			snprintf(ws->pipeline, sizeof(ws->pipeline), "repo-%.16s", ws->root_commit);
	}
	*pipeline = ws->pipeline;
	if (root)
		*root = ws->root_commit;
	return GITOPS_OK;
}

/* rec_workspace_client under clients_lock. */
static int client_locked(kube_client **out, rec_workspace *ws, const struct mf_environment *env)
{
	const char *kubeconfig = ws->opt.kubeconfig ? ws->opt.kubeconfig : env->cluster_kubeconfig;
	const char *context = ws->opt.context ? ws->opt.context : env->cluster_context;
	char *key = gitops_sprintf("%s\n%s", kubeconfig ? kubeconfig : "", context ? context : "");
	for (size_t i = 0; i < ws->n_clients; i++) {
		if (!strcmp(ws->clients[i].key, key)) {
			free(key);
			*out = ws->clients[i].client;
			return GITOPS_OK;
		}
	}
	kube_config *cfg;
	struct kube_config_options ko = {.kubeconfig = kubeconfig, .context = context};
	int rc = kube_config_load(&cfg, &ko);
	kube_client *c = NULL;
	/* The apiserver protects itself (API Priority and Fairness); the client-side limit only
	 * guards against runaway loops. opt.kube_qps ($GITOPS_KUBE_QPS in cli/) overrides it. */
	double qps = ws->opt.kube_qps;
	if (qps <= 0)
		qps = 1000;
	struct kube_client_options co = {.qps = qps, .burst = (int)qps, .cancel = ws->opt.cancel};
	if (!rc)
		rc = kube_client_new(&c, cfg, &co);
	if (rc) {
		free(key);
		return gitops_error_prefix("environment %s", env->name);
	}
	ws->clients = gitops_realloc(ws->clients, (ws->n_clients + 1) * sizeof(*ws->clients));
	ws->clients[ws->n_clients].key = key;
	ws->clients[ws->n_clients].client = c;
	ws->n_clients++;
	*out = c;
	return GITOPS_OK;
}

int rec_workspace_client(kube_client **out, rec_workspace *ws, const struct mf_environment *env)
{
	/* The daemon's threads ask for clients of one workspace at once: the list grows under a lock
	 * (the clients themselves never move, so pointers handed out stay valid). */
	pthread_mutex_lock(&ws->clients_lock);
	int rc = client_locked(out, ws, env);
	pthread_mutex_unlock(&ws->clients_lock);
	return rc;
}
