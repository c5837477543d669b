/* cli: `gitops suspend <env>`: a suspend event on the state branch; the daemon stops syncing
 * and self-healing the environment (drift is still reported) until `gitops resume <env>`. */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct suspend_opts {
	const char *env, *repo, *state_repo, *state_branch;
	struct hist_action act;
	bool json, quiet;
};
static const struct cli_opt_spec suspend_opts[] = {
	CLI_ARG("env", CLI_OPT_REQUIRED, struct suspend_opts, env, NULL),
	CLI_VALUE("reason", 0, "TEXT", CLI_SEC_COMMAND, 0, struct suspend_opts, act.reason,
		  "why; recorded in the event and shown by status"),
	CLI_VALUE("actor", 0, "NAME", CLI_SEC_COMMAND, 0, struct suspend_opts, act.actor,
		  "who (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct suspend_opts, json, "print the event as JSON"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct suspend_opts, quiet, "print nothing (the exit code tells)"),
	CLI_OPTS_REPO(struct suspend_opts),
	CLI_END,
};
static const struct cli_command suspend_cmd = {
	"suspend", suspend_opts,
	"Records a suspend event: gitops run stops syncing and self-healing the environment (it\n"
	"still reports drift) from its next fetch, until gitops resume <env>. gitops status shows\n"
	"it. Needs git access only.",
	"Exit codes: 0 suspended; 2 usage; 3 unknown environment; 5 git error; 7 already suspended.",
	NULL,
};

void cmd_suspend_help(void) { cli_opt_help(stdout, &suspend_cmd); }

int cmd_suspend(int argc, char **argv)
{
	struct suspend_opts o = {0};
	int parsed = cli_opt_parse(&suspend_cmd, &o, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	const char *envname = o.env, *repo = o.repo, *state_repo = o.state_repo, *state_branch = o.state_branch;
	struct hist_action act = o.act;
	bool json = o.json;
	struct rec_workspace_options wo = {.repo = repo};
	cli_config(&wo, state_repo, state_branch);
	cli_action_defaults(&act);
	rec_workspace *ws = NULL;
	hist *h = NULL;
	json_t *ev = NULL;
	const struct mf_environment *env = NULL;
	int code = EXIT_OK;
	int rc = rec_workspace_open(&ws, &wo);
	if (!rc)
		rc = rec_workspace_env(&env, ws, envname);
	if (!rc)
		rc = rec_workspace_history(&h, ws, state_repo, state_branch); /* verified before appending */
	if (!rc)
		rc = hist_suspend(&ev, h, env, &act);
	if (rc) {
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
	} else if (json) {
		char *s = json_dumps(ev, JSON_INDENT(2));
		puts(s);
		free(s);
	} else if (!o.quiet) {
		printf("%s suspended: gitops run neither syncs nor self-heals it until gitops resume %s\n", env->name,
		       env->name);
	}
	json_decref(ev);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}
