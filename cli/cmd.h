/* cli: the command table and what every subcommand shares: exit codes, option parsing helpers.
 * Each subcommand lives in its own cmd_<name>.c and only parses arguments and calls the library. */
#ifndef GITOPS_CLI_CMD_H
#define GITOPS_CLI_CMD_H

#include <stdbool.h>

/* Exit codes: stable, documented in README.md ("Exit codes"). */
enum {
	EXIT_OK = 0,
	EXIT_DIFFERS = 1,    /* diff/drift: differences found */
	EXIT_USAGE = 2,      /* unknown command or option, missing argument */
	EXIT_INPUT = 3,      /* bad input: config, manifests, YAML, unknown environment or app */
	EXIT_CLUSTER = 4,    /* Kubernetes API error or cluster unreachable */
	EXIT_GIT = 5,        /* git error: unknown ref, unreachable remote, auth */
	EXIT_PARTIAL = 6,    /* some objects failed (sync), the others went through */
	EXIT_REFUSED = 7,    /* refused by policy: promotion, approval, signature */
	EXIT_INTERNAL = 10,  /* a bug or an unexpected local failure */
};

struct gitops_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*help)(void);
};

extern const struct gitops_cmd gitops_commands[];

/* True when argv has --help or -h. */
bool cli_wants_help(int argc, char **argv);
/* Prints "gitops: <message>" and a hint line to stderr; returns `code`. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps a library error code (enum gitops_error) to an exit code. */
int cli_exit_for(int lib_error);

int cmd_version(int argc, char **argv);
void cmd_version_help(void);
int cmd_render(int argc, char **argv);
void cmd_render_help(void);
int cmd_diff(int argc, char **argv);
void cmd_diff_help(void);
int cmd_sync(int argc, char **argv);
void cmd_sync_help(void);
int cmd_drift(int argc, char **argv);
void cmd_drift_help(void);
int cmd_status(int argc, char **argv);
void cmd_status_help(void);
/* history and promotion commands (cmd_promote.c, cmd_approve.c, cmd_keygen.c, cmd_rollback.c,
 * cmd_resume.c, cmd_history.c) */
int cmd_promote(int argc, char **argv);
void cmd_promote_help(void);
int cmd_approve(int argc, char **argv);
void cmd_approve_help(void);
int cmd_reject(int argc, char **argv);
void cmd_reject_help(void);
int cmd_keygen(int argc, char **argv);
void cmd_keygen_help(void);
int cmd_rollback(int argc, char **argv);
void cmd_rollback_help(void);
int cmd_resume(int argc, char **argv);
void cmd_resume_help(void);
int cmd_run(int argc, char **argv);
void cmd_run_help(void);
int cmd_suspend(int argc, char **argv);
void cmd_suspend_help(void);
int cmd_history(int argc, char **argv);
void cmd_history_help(void);
/* Shared by the history commands (cmd_history.c): the exit code for a history error
 * (GITOPS_EFORBIDDEN is a refusal: EXIT_REFUSED), and option matching: when argv[*i] is `name`
 * (or name=VALUE), sets *val, advances *i and returns 1; returns -1 (message printed) when the
 * value is missing, 0 when argv[*i] is something else. */
int cli_hist_exit(int lib_error);
/* The manifests repository to use: `repo` when given, else the working directory's repository,
 * or origin's URL in a clone that lacks what gitops needs (mf_repo_default: a CI job's detached
 * checkout without local branches; the state branch only on origin, then cli_config points the
 * state repository at origin unless given). Credentials in origin's URL are handed to
 * mf_git_set_url_credentials (used unless a token or password is set). NULL when not in a
 * repository (the library then says so). The string lives until exit. */
const char *cli_default_repo(const char *repo, const char *state_branch);
/* `given` when set and not empty, else $var when set and not empty, else NULL. */
const char *cli_env_or(const char *given, const char *var);
/* The configuration the library takes explicitly, from the options given (state_repo,
 * state_branch, wo->main_branch, wo->signing_key; any NULL) and else the environment:
 * $GITOPS_STATE_REPO (else origin, see cli_default_repo), $GITOPS_STATE_BRANCH,
 * $GITOPS_MAIN_BRANCH, $GITOPS_SIGNING_KEY, $GITOPS_KUBE_QPS, $GITOPS_RENDER_TIMEOUT. cli/ is the
 * only place that reads them; call after cli_default_repo. */
struct rec_workspace_options;
/* Who and what start the events a command records, when not given: the actor is
 * $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git's user.name, $USER, else "unknown" (lives until exit);
 * the trigger "ci" when $CI, $GITLAB_CI or $GITHUB_ACTIONS is set, else "manual". */
const char *cli_actor(void);
const char *cli_trigger(void);
struct hist_action;
/* Fills act->actor and act->trigger when NULL (cli_actor, cli_trigger). */
void cli_action_defaults(struct hist_action *act);
void cli_config(struct rec_workspace_options *wo, const char *state_repo, const char *state_branch);
int cli_opt(const char *name, int argc, char **argv, int *i, const char **val);
#define CLI_STATE_HELP \
	"  --repo URL|PATH     the manifests repository (default: the git repository of the\n" \
	"                      working directory)\n" \
	"  --state-repo URL|PATH  repository holding the state branch (default: $GITOPS_STATE_REPO,\n" \
	"                      else the manifests repository)\n" \
	"  --state-branch B    the state branch (default: $GITOPS_STATE_BRANCH, else gitops/state)\n"

int cmd_help(int argc, char **argv);
void cmd_help_help(void);

#endif
