/* cli: parsing of the options shared by the environment commands. */
#include "args.h"
#include "cmd.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *name; unsigned flag; size_t off; } valued[] = {
	{"--app", ARG_APP, offsetof(struct cli_args, app)},
	{"--revision", ARG_REVISION, offsetof(struct cli_args, revision)},
	{"--repo", 0, offsetof(struct cli_args, repo)},
	{"--kubeconfig", 0, offsetof(struct cli_args, kubeconfig)},
	{"--context", 0, offsetof(struct cli_args, context)},
	/* the state branch's location and the reporter key reach the library through cli_config */
	{"--state-repo", 0, offsetof(struct cli_args, state_repo)},
	{"--state-branch", 0, offsetof(struct cli_args, state_branch)},
	{"--signing-key", 0, offsetof(struct cli_args, signing_key)},
};

int cli_parse_args(struct cli_args *a, int argc, char **argv, unsigned accepted)
{
	memset(a, 0, sizeof(*a));
	const char *cmd = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		bool done = false;
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]) && !done; k++) {
			size_t n = strlen(valued[k].name);
			if (strncmp(arg, valued[k].name, n) || (arg[n] != '\0' && arg[n] != '='))
				continue;
			if (valued[k].flag && !(accepted & valued[k].flag))
				break;
			const char *v = arg[n] == '=' ? arg + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v || !*v)
				return cli_fail(EXIT_USAGE, "%s needs a value; see 'gitops %s --help'", valued[k].name, cmd);
			*(const char **)((char *)a + valued[k].off) = v;
			done = true;
		}
		if (done)
			continue;
		if (!strcmp(arg, "--json") && (accepted & ARG_JSON))
			a->json = true;
		else if (!strcmp(arg, "--prune") && (accepted & ARG_PRUNE))
			a->prune = true;
		else if (!strcmp(arg, "--dry-run") && (accepted & ARG_DRY_RUN))
			a->dry_run = true;
		else if (!strcmp(arg, "--adopt") && (accepted & ARG_ADOPT))
			a->adopt = true;
		else if (!strcmp(arg, "--apps") && (accepted & ARG_APPS))
			a->apps = true;
		else if (!strcmp(arg, "--no-color"))
			a->no_color = true;
		else if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q"))
			a->quiet = true;
		else if (arg[0] == '-')
			return cli_fail(EXIT_USAGE, "unknown option %s; see 'gitops %s --help'", arg, cmd);
		else if (!a->env)
			a->env = arg;
		else
			return cli_fail(EXIT_USAGE, "unexpected argument %s; see 'gitops %s --help'", arg, cmd);
	}
	if (!a->env && !(accepted & ARG_ENV_OPTIONAL))
		return cli_fail(EXIT_USAGE, "missing <env>; see 'gitops %s --help'", cmd);
	a->repo = cli_default_repo(a->repo, a->state_branch);
	return -1;
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
