/* cli/args.c: the helpers every subcommand shares (see args.h): the environment commands'
 * parser on top of their option tables, error lines and exit codes, the default repository. */
#include "args.h"
#include "cmd.h"
#include "common/mask.h"
#include "manifests/manifests.h"
#include "reconcile/reconcile.h"
#include "history/history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_parse_args(struct cli_args *a, const struct cli_command *cmd, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	int code = cli_opt_parse(cmd, a, argc, argv);
	if (code != CLI_PARSED)
		return code;
	/* --state-repo, --state-branch and --signing-key reach the library through cli_config */
	a->repo = cli_default_repo(a->repo, a->state_branch);
	return CLI_PARSED;
}

void cli_progress(void *ud, const char *line)
{
	const struct cli_args *a = ud;
	if (a && a->quiet)
		return;
	fprintf(stderr, "%s\n", line); /* masked by rec_progress (common/mask.h) */
}

bool cli_color(const struct cli_args *a)
{
	return !a->no_color && !getenv("NO_COLOR") && isatty(STDOUT_FILENO);
}

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;
	gitops_buf b = GITOPS_BUF_INIT;
	va_start(ap, fmt);
	gitops_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	/* error lines often carry apiserver or renderer text */
	char *line = gitops_mask_text(gitops_buf_cstr(&b), NULL);
	fprintf(stderr, "gitops: %s\n", line);
	free(line);
	gitops_buf_free(&b);
	return code;
}

int cli_exit_for(int err)
{
	switch (err) {
	case GITOPS_OK: return EXIT_OK;
	/* ENOTFOUND reaching the top is something the user named that does not exist: a kubeconfig
	 * file or context, a key file, an environment. */
	case GITOPS_EPARSE: case GITOPS_EINVALID: case GITOPS_EUNSUPPORTED: case GITOPS_ENOTFOUND: return EXIT_INPUT;
	case GITOPS_ENETWORK: case GITOPS_ETLS: case GITOPS_EUNAUTHORIZED: case GITOPS_EFORBIDDEN:
	case GITOPS_ECONFLICT: case GITOPS_EGONE: case GITOPS_ETOOMANY: case GITOPS_ESERVER:
	case GITOPS_EAUTH: case GITOPS_ETIMEOUT: return EXIT_CLUSTER;
	case GITOPS_EGIT: return EXIT_GIT;
	case GITOPS_EPOLICY: return EXIT_REFUSED;
	default: return EXIT_INTERNAL;
	}
}

int cli_hist_exit(int err)
{
	switch (err) {
	case GITOPS_EFORBIDDEN: return EXIT_REFUSED;
	case GITOPS_ENOTFOUND: case GITOPS_EEXISTS: return EXIT_INPUT;
	case GITOPS_ECONFLICT: return EXIT_GIT;
	default: return cli_exit_for(err);
	}
}

/* What cli_default_repo found in the working directory's clone (lives until exit). */
static struct mf_repo_default found_default;

const char *cli_default_repo(const char *repo, const char *state_branch)
{
	static bool done;
	if (repo)
		return repo;
	if (!done) {
		done = true;
		state_branch = cli_env_or(state_branch, "GITOPS_STATE_BRANCH");
		if (mf_repo_default(&found_default, ".", state_branch)) {
			gitops_error_clear();
			return NULL;
		}
		if (found_default.password)
			mf_git_set_url_credentials(found_default.username, found_default.password);
	}
	return found_default.manifests;
}

const char *cli_env_or(const char *given, const char *var)
{
	if (given && *given)
		return given;
	const char *v = getenv(var);
	return v && *v ? v : NULL;
}

const char *cli_actor(void)
{
	static char *actor;
	if (actor)
		return actor;
	const char *ci = cli_env_or(cli_env_or(NULL, "GITLAB_USER_LOGIN"), "GITHUB_ACTOR");
	if (ci) {
		actor = gitops_strdup(ci);
	} else {
		actor = hist_default_actor(); /* git's user.name */
		const char *user = getenv("USER");
		if (!strcmp(actor, "unknown") && user && *user) {
			free(actor);
			actor = gitops_strdup(user);
		}
	}
	return actor;
}

const char *cli_trigger(void)
{
	const char *vars[] = {"CI", "GITLAB_CI", "GITHUB_ACTIONS"};
	for (size_t i = 0; i < 3; i++) {
		const char *v = getenv(vars[i]);
		if (v && *v && strcmp(v, "false") && strcmp(v, "0"))
			return HIST_TRIGGER_CI;
	}
	return HIST_TRIGGER_MANUAL;
}

void cli_action_defaults(struct hist_action *act)
{
	if (!act->actor || !*act->actor)
		act->actor = cli_actor();
	if (!act->trigger)
		act->trigger = cli_trigger();
}

void cli_config(struct rec_workspace_options *wo, const char *state_repo, const char *state_branch)
{
	wo->state_repo = cli_env_or(state_repo, "GITOPS_STATE_REPO");
	if (!wo->state_repo)
		wo->state_repo = found_default.state; /* the clone's origin holds the state branch */
	wo->state_branch = cli_env_or(state_branch, "GITOPS_STATE_BRANCH");
	wo->main_branch = cli_env_or(wo->main_branch, "GITOPS_MAIN_BRANCH");
	wo->signing_key = cli_env_or(wo->signing_key, "GITOPS_SIGNING_KEY");
	const char *qps = getenv("GITOPS_KUBE_QPS");
	if (qps && *qps)
		wo->kube_qps = atof(qps);
	/* a bad value keeps the default, as before */
	const char *t = getenv("GITOPS_RENDER_TIMEOUT");
	long long ms;
	if (t && *t && mf_parse_duration(&ms, t) == 0 && ms > 0 && ms < 24LL * 3600 * 1000)
		wo->render_timeout_ms = (int)ms;
	gitops_error_clear();
}
