/* cli: entry point. Dispatches `gitops <command>` through the command table; all behaviour
 * lives in the library modules. */
#include "cmd.h"
#include "../common/common.h"
#include "../common/mask.h"
#include "../manifests/manifests.h"
#include "../reconcile/reconcile.h"
#include "../history/history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct gitops_cmd gitops_commands[] = {
	{"diff", "show what a sync would change (exit 1 when it would change something)", cmd_diff, cmd_diff_help},
	{"sync", "apply an environment: create and update what differs, prune what git dropped", cmd_sync, cmd_sync_help},
	{"drift", "list objects that drifted from what gitops last applied", cmd_drift, cmd_drift_help},
	{"status", "per environment: target and synced revision, sync state, object counts", cmd_status, cmd_status_help},
	{"version", "print gitops' version and the versions of the libraries it runs with", cmd_version, cmd_version_help},
	{"render", "print the objects an environment would run at a revision (YAML or JSON)", cmd_render, cmd_render_help},
	{"promote", "promote a commit to an environment (pinned at once, or pending approvals)", cmd_promote, cmd_promote_help},
	{"approve", "sign a pending promotion with an approver's Ed25519 key", cmd_approve, cmd_approve_help},
	{"reject", "reject a pending promotion, signed, with a reason", cmd_reject, cmd_reject_help},
	{"keygen", "make an approver's Ed25519 key pair (FILE and FILE.pub)", cmd_keygen, cmd_keygen_help},
	{"rollback", "pin an environment to an earlier commit that ran healthy there", cmd_rollback, cmd_rollback_help},
	{"resume", "end a suspension; let a pinned tracking environment follow its branch again", cmd_resume, cmd_resume_help},
	{"run", "the reconciler: follow git, self-heal drift, gate health, roll back (foreground)", cmd_run, cmd_run_help},
	{"suspend", "stop gitops run from syncing and self-healing an environment until resume", cmd_suspend, cmd_suspend_help},
	{"history", "query the deploy history, DORA metrics, verify the state branch", cmd_history, cmd_history_help},
	{"help", "show help for gitops or one command", cmd_help, cmd_help_help},
	{NULL, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
	fputs("usage: gitops <command> [options]\n\n"
	      "A GitOps reconciler: renders environments from git, applies them to Kubernetes,\n"
	      "promotes commits between environments and keeps an audit history in git.\n\n"
	      "Commands:\n", out);
	for (const struct gitops_cmd *c = gitops_commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fputs("\nRun 'gitops <command> --help' for a command's options. Exit codes are listed in README.md.\n", out);
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	}
	return false;
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

static const struct gitops_cmd *find_cmd(const char *name)
{
	for (const struct gitops_cmd *c = gitops_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int cmd_help(int argc, char **argv)
{
	if (argc > 1) {
		const struct gitops_cmd *c = find_cmd(argv[1]);
		if (!c)
			return cli_fail(EXIT_USAGE, "unknown command '%s'; run 'gitops --help' for the list", argv[1]);
		c->help();
		return EXIT_OK;
	}
	usage(stdout);
	return EXIT_OK;
}

void cmd_help_help(void) { puts("usage: gitops help [<command>]\n\nShows the list of commands, or one command's help."); }

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(1, argv);
	const struct gitops_cmd *c = find_cmd(argv[1]);
	if (!c) {
		fprintf(stderr, "gitops: unknown command '%s'\nusage: gitops <command> [options]; run 'gitops --help' for the list\n", argv[1]);
		return EXIT_USAGE;
	}
	if (cli_wants_help(argc - 1, argv + 1)) {
		c->help();
		return EXIT_OK;
	}
	return c->run(argc - 1, argv + 1);
}
