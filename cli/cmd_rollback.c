/* cli: `gitops rollback <env>` pins an environment to an earlier commit that ran healthy there;
 * the pin stays until `gitops resume <env>` (also here: both move the pin, with the same options,
 * checks and output) or a newer promotion. Both need git access only. */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_rollback_help(void)
{
	puts("usage: gitops rollback <env> [--to SHA | --steps N] [--reason TEXT] [--actor NAME] [--json] [--quiet]\n\n"
	     "Pins the environment to an earlier commit that was deployed healthy there (a sync with no\n"
	     "failed object): by default the one before the current, --steps N goes N distinct healthy\n"
	     "deploys back, --to SHA names it (full or at least 7 characters). Records who and why\n"
	     "(a rollback event). The environment's next sync deploys the pin. A tracking environment\n"
	     "stays pinned, whatever lands on its branch, until gitops resume <env>; an environment with\n"
	     "`from` until a newer promotion.\n\n"
	     "Options:\n"
	     "  --to SHA            the commit to go back to\n"
	     "  --steps N           how many healthy deploys back (default 1)\n"
	     "  --reason TEXT       why; recorded in the event\n"
	     "  --actor NAME        who (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)\n"
	     "  --json              print the rollback event as JSON\n"
	     "  --quiet             print nothing (the exit code tells)\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 pinned; 2 usage; 3 unknown environment; 5 git error;\n"
	     "7 refused (no such earlier healthy deploy, already pinned there, a state branch that does\n"
	     "not verify).");
}

void cmd_resume_help(void)
{
	puts("usage: gitops resume <env> [--reason TEXT] [--actor NAME] [--json] [--quiet]\n\n"
	     "Ends a suspension (gitops suspend) and drops the pin of a tracking environment (one with\n"
	     "`track`), set by gitops rollback or by gitops run's automatic rollback: its next sync\n"
	     "deploys its branch head again. Records a resume event.\n\n"
	     "Options:\n"
	     "  --reason TEXT       why; recorded in the event\n"
	     "  --actor NAME        who (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)\n"
	     "  --json              print the event as JSON\n"
	     "  --quiet             print nothing (the exit code tells)\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 resumed; 2 usage; 3 unknown environment, not pinned, or an environment\n"
	     "with `from` (promote instead); 5 git error.");
}

/* rollback (resume = false) or resume: parses, opens the environment and its history, records the
 * event, prints it. */
static int pin_command(int argc, char **argv, bool resume)
{
	const char *cmd = resume ? "resume" : "rollback";
	const char *envname = NULL, *to = NULL, *steps_s = NULL, *repo = NULL, *state_repo = NULL, *state_branch = NULL;
	struct hist_action act = {0};
	bool json = false, quiet = false;
	for (int i = 1; i < argc; i++) {
		int r = 0;
		if ((!resume && ((r = cli_opt("--to", argc, argv, &i, &to)) || (r = cli_opt("--steps", argc, argv, &i, &steps_s)))) ||
		    (r = cli_opt("--reason", argc, argv, &i, &act.reason)) || (r = cli_opt("--actor", argc, argv, &i, &act.actor)) ||
		    (r = cli_opt("--repo", argc, argv, &i, &repo)) || (r = cli_opt("--state-repo", argc, argv, &i, &state_repo)) ||
		    (r = cli_opt("--state-branch", argc, argv, &i, &state_branch))) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
			quiet = true;
		} else if (argv[i][0] == '-' || envname) {
			return cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops %s --help'", argv[i], cmd);
		} else {
			envname = argv[i];
		}
	}
	if (!envname)
		return cli_fail(EXIT_USAGE, "missing <env>; see 'gitops %s --help'", cmd);
	if (to && steps_s)
		return cli_fail(EXIT_USAGE, "give --to or --steps, not both");
	if (to && (strlen(to) < 7 || strlen(to) > 40 || strspn(to, "0123456789abcdefABCDEF") != strlen(to)))
		return cli_fail(EXIT_USAGE, "--to wants a commit SHA (7 to 40 hex characters), got %s", to);
	repo = cli_default_repo(repo, state_branch);
	cli_action_defaults(&act);
	int steps = 1;
	if (steps_s) {
		char *end;
		long n = strtol(steps_s, &end, 10);
		if (*end || n < 1 || n > 100000)
			return cli_fail(EXIT_USAGE, "--steps wants a positive number, got %s", steps_s);
		steps = (int)n;
	}
	struct rec_workspace_options wo = {.repo = repo};
	cli_config(&wo, state_repo, state_branch);
	rec_workspace *ws = NULL;
	hist *h = NULL;
	json_t *ev = NULL;
	const struct mf_environment *env = NULL;
	int code = EXIT_OK;
	int rc = rec_workspace_open(&ws, &wo);
	if (!rc)
		rc = rec_workspace_env(&env, ws, envname);
	if (!rc)
		rc = rec_workspace_history(&h, ws, state_repo, state_branch);
	if (!rc)
		rc = resume ? hist_resume(&ev, h, env, &act) : hist_rollback(&ev, h, env, to, steps, &act);
	if (rc) {
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
	} else if (json) {
		char *s = json_dumps(ev, JSON_INDENT(2));
		puts(s);
		free(s);
	} else if (quiet) {
		/* --quiet: the exit code says it all */
	} else if (resume) {
		const char *prev = json_string_value(json_object_get(ev, "previous"));
		if (prev)
			printf("%s follows %s again (was pinned to %.12s)\n", env->name, env->track, prev);
		else
			printf("%s resumed: gitops run syncs and self-heals it again\n", env->name);
	} else {
		const char *prev = json_string_value(json_object_get(ev, "previous"));
		printf("%s pinned to %.12s (was %.12s); its next sync deploys it%s\n", env->name,
		       json_string_value(json_object_get(ev, "sha")), prev ? prev : "nothing",
		       env->track ? "; gitops resume to follow the branch again" : "");
	}
	json_decref(ev);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}

int cmd_rollback(int argc, char **argv) { return pin_command(argc, argv, false); }
int cmd_resume(int argc, char **argv) { return pin_command(argc, argv, true); }
