/* reconcile: the workspace: the repository mirror, the pipeline config read from the main
 * branch, the renderer with its cache, and one Kubernetes client per cluster. */
#include "reconcile/internal.h"
#include "common/mask.h"
#include "history/history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
				      "\"gitops.yaml\")", sha, ws->repo_url);
	else if (rc)
		rc = git_error(rc);
	if (!rc)
		rc = mf_config_parse(out, gitops_buf_cstr(&text), text.len, "gitops.yaml");
	gitops_buf_free(&text);
	return rc;
}

int rec_workspace_open(rec_workspace **out, const struct rec_workspace_options *opt)
{
	struct rec_workspace_options none = {0};
	rec_workspace *ws = gitops_calloc(1, sizeof(*ws));
	ws->opt = opt ? *opt : none;
	pthread_mutex_init(&ws->progress_lock, NULL);
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
		char *why = gitops_strdup(gitops_error_last()), probe[41];
		if (mf_repo_resolve(probe, ws->repo, "HEAD")) {
			rc = gitops_error_set(GITOPS_EGIT, "%s", why);
			free(why);
			goto fail;
		}
		rec_progress(ws, "warning: %s", why);
		free(why);
	}
	/* gitops.yaml lives on the main branch: HEAD first, then the branch it names. */
	if ((rc = mf_repo_resolve(ws->main_sha, ws->repo, "HEAD"))) {
		rc = git_error(rc);
		goto fail;
	}
	if ((rc = read_config(ws, ws->main_sha, &ws->cfg)))
		goto fail;
	char branch_sha[41];
	if (mf_repo_resolve(branch_sha, ws->repo, ws->cfg->branch) == 0 && strcmp(branch_sha, ws->main_sha)) {
		struct mf_config *c2 = NULL;
		if ((rc = read_config(ws, branch_sha, &c2)))
			goto fail;
		mf_config_free(ws->cfg);
		ws->cfg = c2;
		memcpy(ws->main_sha, branch_sha, sizeof(branch_sha));
	}
	gitops_error_clear();
	struct mf_render_options ro = {.data_dir = ws->opt.data_dir};
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
	if (mf_repo_fetch(ws->repo))
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
	mf_config_free(ws->cfg);
	mf_repo_free(ws->repo);
	free(ws->repo_url);
	pthread_mutex_destroy(&ws->progress_lock);
	free(ws);
}

const struct mf_config *rec_workspace_config(const rec_workspace *ws) { return ws->cfg; }

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

int rec_resolve_revision(char out[41], rec_workspace *ws, const struct mf_environment *env, const char *rev)
{
	/* Without --revision, a pin in the state branch wins (a promotion, or a rollback that a new
	 * commit on the tracked branch must not override). */
	char pin[41] = "";
	if (!rev) {
		hist *h = NULL;
		int hrc = hist_open_default(&h, NULL, NULL, ws->repo_url);
		if (!hrc)
			hrc = hist_pin(pin, h, env->name);
		hist_free(h);
		if (hrc && hrc != GITOPS_ENOTFOUND) {
			if (!ws->opt.pins_best_effort)
				return gitops_error_set(GITOPS_EGIT, "reading the pin of %s: %s", env->name, gitops_error_last());
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
	const char *want = rev ? rev : *pin ? pin : env->track;
	int rc = mf_repo_resolve(out, ws->repo, want);
	return rc ? git_error(rc) : GITOPS_OK;
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

int rec_workspace_client(kube_client **out, rec_workspace *ws, const struct mf_environment *env)
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
	 * guards against runaway loops. GITOPS_KUBE_QPS overrides it. */
	double qps = getenv("GITOPS_KUBE_QPS") ? atof(getenv("GITOPS_KUBE_QPS")) : 0;
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
