/* cli: `gitops suspend <env>`: a suspend event on the state branch; the daemon stops syncing
 * and self-healing the environment (drift is still reported) until `gitops resume <env>`. */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_suspend_help(void)
{
	puts("usage: gitops suspend <env> [--reason TEXT] [--actor NAME] [--json]\n\n"
	     "Records a suspend event: gitops run stops syncing and self-healing the environment (it\n"
	     "still reports drift) from its next fetch, until gitops resume <env>. gitops status shows\n"
	     "it. Needs git access only.\n\n"
	     "Options:\n"
	     "  --reason TEXT       why; recorded in the event and shown by status\n"
	     "  --actor NAME        who (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)\n"
	     "  --json              print the event as JSON\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 suspended; 2 usage; 3 unknown environment; 5 git error; 7 already suspended.");
}

int cmd_suspend(int argc, char **argv)
{
	const char *envname = NULL, *repo = NULL, *state_repo = NULL, *state_branch = NULL;
	struct hist_action act = {0};
	bool json = false;
	for (int i = 1; i < argc; i++) {
		int r = 0;
		if ((r = cli_opt("--reason", argc, argv, &i, &act.reason)) || (r = cli_opt("--actor", argc, argv, &i, &act.actor)) ||
		    (r = cli_opt("--repo", argc, argv, &i, &repo)) || (r = cli_opt("--state-repo", argc, argv, &i, &state_repo)) ||
		    (r = cli_opt("--state-branch", argc, argv, &i, &state_branch))) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-' || envname) {
			return cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops suspend --help'", argv[i]);
		} else {
			envname = argv[i];
		}
	}
	if (!envname)
		return cli_fail(EXIT_USAGE, "missing <env>; see 'gitops suspend --help'");
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
	} else {
		printf("%s suspended: gitops run neither syncs nor self-heals it until gitops resume %s\n", env->name,
		       env->name);
	}
	json_decref(ev);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}
