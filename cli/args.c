/* cli/args.c: the helpers every subcommand shares (see args.h): the environment commands'
 * parser on top of their option tables, error lines and exit codes, the default repository. */
#include "args.h"
#include "cmd.h"
#include "common/mask.h"
#include "manifests/manifests.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_parse_args(struct cli_args *a, const struct cli_command *cmd, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	int code = cli_opt_parse(cmd, a, argc, argv);
	if (code != CLI_PARSED)
		return code;
	/* The state branch's location reaches the library (history/, through reconcile/) the same
	 * way the environment variables do. */
	if (a->state_repo)
		setenv("GITOPS_STATE_REPO", a->state_repo, 1);
	if (a->state_branch)
		setenv("GITOPS_STATE_BRANCH", a->state_branch, 1);
	if (a->signing_key)
		setenv("GITOPS_SIGNING_KEY", a->signing_key, 1);
	a->repo = cli_default_repo(a->repo, NULL);
	return CLI_PARSED;
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

int cli_hist_exit(int err)
{
	switch (err) {
	case GITOPS_EFORBIDDEN: return EXIT_REFUSED;
	case GITOPS_ENOTFOUND: case GITOPS_EEXISTS: return EXIT_INPUT;
	case GITOPS_ECONFLICT: return EXIT_GIT;
	default: return cli_exit_for(err);
	}
}

const char *cli_default_repo(const char *repo, const char *state_branch)
{
	static struct mf_repo_default d;
	static bool done;
	if (repo)
		return repo;
	if (!done) {
		done = true;
		if (!state_branch)
			state_branch = getenv("GITOPS_STATE_BRANCH");
		if (mf_repo_default(&d, ".", state_branch && *state_branch ? state_branch : NULL)) {
			gitops_error_clear();
			return NULL;
		}
		const char *sr = getenv("GITOPS_STATE_REPO");
		if (d.state && !(sr && *sr))
			setenv("GITOPS_STATE_REPO", d.state, 1);
		bool have = (getenv("GITOPS_GIT_TOKEN") && *getenv("GITOPS_GIT_TOKEN")) || getenv("GITOPS_GIT_TOKEN_FILE") ||
			    getenv("GITOPS_GIT_PASSWORD") || getenv("GITOPS_GIT_PASSWORD_FILE");
		if (d.password && !have) {
			setenv("GITOPS_GIT_USERNAME", d.username, 1);
			setenv("GITOPS_GIT_PASSWORD", d.password, 1);
		}
	}
	return d.manifests;
}
