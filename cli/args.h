/* cli/args.h: what the subcommands share: the options every table repeats (declared once here),
 * the environment commands' options struct and parser, exit-code mapping, error lines, the
 * default repository, progress and colour. Everything here runs on the main thread before or
 * around a command; cli/ is the only place that reads the process environment (cli_config). */
#ifndef GITOPS_CLI_ARGS_H
#define GITOPS_CLI_ARGS_H

#include "opt.h"

#include <stdbool.h>

/* The options of the environment commands (render, diff, sync, drift, status). */
struct cli_args {
	const char *env, *app, *revision, *repo, *kubeconfig, *context;
	const char *state_repo, *state_branch, *signing_key; /* NULL: see cli_config */
	bool json, prune, dry_run, no_color, quiet, adopt, apps;
};

/* Table entries every command that has them shares (T: the command's options struct, with
 * fields of these names). They form the "[cluster options]" and "[repository options]" of the
 * usage lines. */
#define CLI_OPTS_CLUSTER(T) \
	CLI_VALUE("kubeconfig", 0, "FILE", CLI_SEC_CLUSTER, 0, T, kubeconfig, \
		  "kubeconfig to use instead of the environment's cluster settings (default: $KUBECONFIG, " \
		  "~/.kube/config, in-cluster)"), \
	CLI_VALUE("context", 0, "NAME", CLI_SEC_CLUSTER, 0, T, context, "kubeconfig context to use")
#define CLI_OPTS_REPO(T) CLI_OPTS_REPO_AT(T, )
/* The same, for fields inside a member of T: CLI_OPTS_REPO_AT(T, common.) */
#define CLI_OPTS_REPO_AT(T, m) \
	CLI_VALUE("repo", 0, "URL|PATH", CLI_SEC_REPO, 0, T, m repo, \
		  "the manifests repository: a path, file://, https:// or ssh URL (default: the git repository " \
		  "of the working directory; in a clone without local branches, its origin)"), \
	CLI_VALUE("state-repo", 0, "URL|PATH", CLI_SEC_REPO, 0, T, m state_repo, \
		  "the repository holding the state branch (default: $GITOPS_STATE_REPO, else the manifests " \
		  "repository)"), \
	CLI_VALUE("state-branch", 0, "B", CLI_SEC_REPO, 0, T, m state_branch, \
		  "the state branch (default: $GITOPS_STATE_BRANCH, else gitops/state)")
#define CLI_OPT_NO_COLOR(T) \
	CLI_SWITCH("no-color", 0, CLI_SEC_OUTPUT, T, no_color, "no ANSI colours (also NO_COLOR=1; off when stdout is not a terminal)")

/* Parses argv (argv[0] is the command name) with the command's table into *a (zeroed first),
 * and fills in the default repository (--state-repo, --state-branch and --signing-key reach the
 * library through cli_config). Returns CLI_PARSED, else the exit code to return (help or a usage error printed). */
int cli_parse_args(struct cli_args *a, const struct cli_command *cmd, int argc, char **argv);

/* Prints a progress line to stderr (the library's progress callback; ud: struct cli_args). */
void cli_progress(void *ud, const char *line);
/* True when stdout is a terminal and colour is not turned off (NO_COLOR, --no-color). */
bool cli_color(const struct cli_args *a);

/* Prints "gitops: <message>" (masked: messages often carry apiserver or renderer text) to
 * stderr; returns `code`. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps a library error code (enum gitops_error) to an exit code. */
int cli_exit_for(int lib_error);
/* The same for the history commands: GITOPS_EFORBIDDEN is a refusal (EXIT_REFUSED), a missing
 * or existing record bad input, a lost compare-and-swap a git error. */
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
/* Who and what start the events a command records, when not given: the actor is
 * $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git's user.name, $USER, else "unknown" (lives until exit);
 * the trigger "ci" when $CI, $GITLAB_CI or $GITHUB_ACTIONS is set, else "manual". */
const char *cli_actor(void);
const char *cli_trigger(void);
struct hist_action;
/* Fills act->actor and act->trigger when NULL (cli_actor, cli_trigger). */
void cli_action_defaults(struct hist_action *act);
/* The configuration the library takes explicitly, from the options given (state_repo,
 * state_branch, wo->main_branch, wo->signing_key; any NULL) and else the environment:
 * $GITOPS_STATE_REPO (else origin, see cli_default_repo), $GITOPS_STATE_BRANCH,
 * $GITOPS_MAIN_BRANCH, $GITOPS_SIGNING_KEY, $GITOPS_KUBE_QPS, $GITOPS_RENDER_TIMEOUT. cli/ is the
 * only place that reads them; call after cli_default_repo. */
struct rec_workspace_options;
void cli_config(struct rec_workspace_options *wo, const char *state_repo, const char *state_branch);

#endif
