/* cli/args.h: what the subcommands share: the options every table repeats (declared once here),
 * the environment commands' options struct and parser, exit-code mapping, error lines, the
 * default repository, progress and colour. Everything here runs on the main thread before or
 * around a command (cli_default_repo and cli_parse_args set process environment variables). */
#ifndef GITOPS_CLI_ARGS_H
#define GITOPS_CLI_ARGS_H

#include "opt.h"

#include <stdbool.h>

/* The options of the environment commands (render, diff, sync, drift, status). */
struct cli_args {
	const char *env, *app, *revision, *repo, *kubeconfig, *context;
	const char *state_repo, *state_branch, *signing_key;
	bool json, prune, dry_run, no_color, quiet, adopt;
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
 * then passes --state-repo, --state-branch and --signing-key on to the library through
 * GITOPS_STATE_REPO, GITOPS_STATE_BRANCH and GITOPS_SIGNING_KEY, and fills in the default
 * repository. Returns CLI_PARSED, else the exit code to return (help or a usage error printed). */
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
 * checkout without local branches; the state branch only on origin, then $GITOPS_STATE_REPO is
 * set to origin unless given). Credentials in origin's URL become $GITOPS_GIT_USERNAME and
 * $GITOPS_GIT_PASSWORD unless a token or password is set. NULL when not in a repository (the
 * library then says so). The string lives until exit. */
const char *cli_default_repo(const char *repo, const char *state_branch);

#endif
