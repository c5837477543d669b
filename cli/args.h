/* cli: the options shared by the environment commands (diff, sync, drift, status), parsed once. */
#ifndef GITOPS_CLI_ARGS_H
#define GITOPS_CLI_ARGS_H

#include <stdbool.h>

struct cli_args {
	const char *env, *app, *revision, *repo, *kubeconfig, *context;
	const char *state_repo, *state_branch, *signing_key; /* NULL: see cli_config */
	bool json, prune, dry_run, no_color, quiet, adopt, apps;
};

/* Flags a command accepts, OR-ed. */
enum {
	ARG_APP = 1 << 0, ARG_REVISION = 1 << 1, ARG_JSON = 1 << 2, ARG_PRUNE = 1 << 3,
	ARG_DRY_RUN = 1 << 4, ARG_ENV_OPTIONAL = 1 << 5, ARG_ADOPT = 1 << 6, ARG_APPS = 1 << 7,
};

/* Parses argv (argv[0] is the command name). Returns -1 when parsed, else the exit code to
 * return (usage error, message printed). --repo, --kubeconfig, --context, --no-color and --quiet
 * are always accepted. */
int cli_parse_args(struct cli_args *a, int argc, char **argv, unsigned accepted);

/* Prints a progress line to stderr (the library's progress callback). */
void cli_progress(void *ud, const char *line);
/* True when stdout is a terminal and colour is not turned off (NO_COLOR, --no-color). */
bool cli_color(const struct cli_args *a);

/* Help text for the common options, for commands' --help. */
#define CLI_COMMON_HELP \
	"  --repo URL|PATH     the manifests repository (default: the git repository of the\n" \
	"                      working directory)\n" \
	"  --kubeconfig FILE   kubeconfig to use instead of the environment's cluster settings\n" \
	"                      (default: $KUBECONFIG, ~/.kube/config, in-cluster)\n" \
	"  --context NAME      kubeconfig context to use\n" \
	"  --state-repo URL|PATH, --state-branch B\n" \
	"                      where the state branch is (default: gitops/state in the manifests\n" \
	"                      repository; also $GITOPS_STATE_REPO, $GITOPS_STATE_BRANCH)\n" \
	"  --quiet             no progress lines\n"

#endif
