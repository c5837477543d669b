/* cli: `gitops rollback <env>` pins an environment to an earlier commit that ran healthy there;
 * the pin stays until `gitops resume <env>` (also here: both move the pin, with the same options,
 * checks and output) or a newer promotion. Both need git access only. */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pin_opts {
	const char *env, *to, *steps, *repo, *state_repo, *state_branch;
	struct hist_action act;
	bool json, quiet;
};

#define PIN_OPTS_COMMON(what) \
	CLI_VALUE("reason", 0, "TEXT", CLI_SEC_COMMAND, 0, struct pin_opts, act.reason, "why; recorded in the event"), \
	CLI_VALUE("actor", 0, "NAME", CLI_SEC_COMMAND, 0, struct pin_opts, act.actor, \
		  "who (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)"), \
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct pin_opts, json, "print the " what " event as JSON"), \
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct pin_opts, quiet, "print nothing (the exit code tells)"), \
	CLI_OPTS_REPO(struct pin_opts), \
	CLI_END

static const struct cli_opt_spec rollback_opts[] = {
	CLI_ARG("env", CLI_OPT_REQUIRED, struct pin_opts, env, NULL),
	CLI_VALUE("to", 0, "SHA", CLI_SEC_COMMAND, 0, struct pin_opts, to, "the commit to go back to"),
	CLI_VALUE("steps", 0, "N", CLI_SEC_COMMAND, 0, struct pin_opts, steps, "how many healthy deploys back (default 1)"),
	PIN_OPTS_COMMON("rollback"),
};
static const struct cli_opt_spec resume_opts[] = {
	CLI_ARG("env", CLI_OPT_REQUIRED, struct pin_opts, env, NULL),
	PIN_OPTS_COMMON("resume"),
};

static const struct cli_command rollback_cmd = {
	"rollback", rollback_opts,
	"Pins the environment to an earlier commit that was deployed healthy there (a sync with no\n"
	"failed object): by default the one before the current, --steps N goes N distinct healthy\n"
	"deploys back, --to SHA names it (full or at least 7 characters). Records who and why\n"
	"(a rollback event). The environment's next sync deploys the pin. A tracking environment\n"
	"stays pinned, whatever lands on its branch, until gitops resume <env>; an environment with\n"
	"`from` until a newer promotion.",
	"Exit codes: 0 pinned; 2 usage; 3 unknown environment; 5 git error;\n"
	"7 refused (no such earlier healthy deploy, already pinned there, a state branch that does\n"
	"not verify).",
	NULL,
};

static const struct cli_command resume_cmd = {
	"resume", resume_opts,
	"Ends a suspension (gitops suspend) and drops the pin of a tracking environment (one with\n"
	"`track`), set by gitops rollback or by gitops run's automatic rollback: its next sync\n"
	"deploys its branch head again. Records a resume event.",
	"Exit codes: 0 resumed; 2 usage; 3 unknown environment, not pinned, or an environment\n"
	"with `from` (promote instead); 5 git error.",
	NULL,
};

void cmd_rollback_help(void) { cli_opt_help(stdout, &rollback_cmd); }
void cmd_resume_help(void) { cli_opt_help(stdout, &resume_cmd); }

/* rollback (resume = false) or resume: parses, opens the environment and its history, records the
 * event, prints it. */
static int pin_command(int argc, char **argv, bool resume)
{
	struct pin_opts o = {0};
	int parsed = cli_opt_parse(resume ? &resume_cmd : &rollback_cmd, &o, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	const char *envname = o.env, *to = o.to, *steps_s = o.steps, *repo = o.repo, *state_repo = o.state_repo,
		   *state_branch = o.state_branch;
	struct hist_action act = o.act;
	bool json = o.json, quiet = o.quiet;
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
