/* cli/main.c: entry point. Dispatches `gitops <command>` through the command table; all
 * behaviour lives in the library modules, each command's options in its own table. */
#include "cmd.h"
#include "../common/common.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct gitops_cmd gitops_commands[] = {
	{"diff", "show what a sync would change (exit 1 when it would change something)", cmd_diff, cmd_diff_help},
	{"sync", "apply an environment: create and update what differs, prune what git dropped", cmd_sync, cmd_sync_help},
	{"drift", "list objects that drifted from what gitops last applied", cmd_drift, cmd_drift_help},
	{"status", "per environment: target and synced revision, sync state, object counts", cmd_status, cmd_status_help},
	{"version", "print gitops' version and the versions of the libraries it runs with", cmd_version, cmd_version_help},
	{"render", "print the objects an environment would run at a revision (YAML or JSON)", cmd_render, cmd_render_help},
	{"promote", "promote a commit to an environment (pinned at once, or pending approvals)", cmd_promote, cmd_promote_help},
	{"approve", "sign a pending promotion with an approver's Ed25519 key", cmd_approve, cmd_approve_help},
	{"reject", "reject a pending promotion, signed, with a reason", cmd_reject, cmd_reject_help},
	{"keygen", "make an approver's Ed25519 key pair (FILE and FILE.pub)", cmd_keygen, cmd_keygen_help},
	{"rollback", "pin an environment to an earlier commit that ran healthy there", cmd_rollback, cmd_rollback_help},
	{"resume", "end a suspension; let a pinned tracking environment follow its branch again", cmd_resume, cmd_resume_help},
	{"run", "the reconciler: follow git, self-heal drift, gate health, roll back (foreground)", cmd_run, cmd_run_help},
	{"suspend", "stop gitops run from syncing and self-healing an environment until resume", cmd_suspend, cmd_suspend_help},
	{"history", "query the deploy history, DORA metrics, verify the state branch", cmd_history, cmd_history_help},
	{"help", "show help for gitops or one command", cmd_help, cmd_help_help},
	{NULL, NULL, NULL, NULL},
};

/* `gitops` itself: `gitops [--version | --help] | <command> [<args>]`. */
struct global_opts {
	bool version;
};
static const struct cli_opt_spec global_opts[] = {
	CLI_SWITCH("version", 0, CLI_SEC_GLOBAL, struct global_opts, version, "print gitops' version (as gitops version)"),
	CLI_END,
};

static void usage(FILE *out)
{
	gitops_buf about = GITOPS_BUF_INIT;
	gitops_buf_puts(&about, "A GitOps reconciler: renders environments from git, applies them to Kubernetes,\n"
				"promotes commits between environments and keeps an audit history in git.\n\n"
				"Commands:");
	for (const struct gitops_cmd *c = gitops_commands; c->name; c++)
		gitops_buf_printf(&about, "\n  %-10s %s", c->name, c->summary);
	const struct cli_command cmd = {"<command> [<args>]", global_opts, gitops_buf_cstr(&about),
					"Run 'gitops <command> --help' for a command's options. Exit codes are listed in "
					"README.md (\"Exit codes\").", NULL};
	cli_opt_help(out, &cmd);
	gitops_buf_free(&about);
}

static const struct gitops_cmd *find_cmd(const char *name)
{
	for (const struct gitops_cmd *c = gitops_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

struct help_opts {
	const char *command;
};
static const struct cli_opt_spec help_opts[] = {
	CLI_ARG("command", 0, struct help_opts, command, "the command whose help to show (default: the list of commands)"),
	CLI_END,
};
static const struct cli_command help_cmd = {"help", help_opts, "Shows the list of commands, or one command's help.", NULL, NULL};

void cmd_help_help(void) { cli_opt_help(stdout, &help_cmd); }

int cmd_help(int argc, char **argv)
{
	struct help_opts o = {0};
	int code = cli_opt_parse(&help_cmd, &o, argc, argv);
	if (code != CLI_PARSED)
		return code;
	if (o.command) {
		const struct gitops_cmd *c = find_cmd(o.command);
		if (!c)
			return cli_fail(EXIT_USAGE, "unknown command '%s'; run 'gitops --help' for the list", o.command);
		c->help();
		return EXIT_OK;
	}
	usage(stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	/* No fastbins: a plan frees list pages of small JSON nodes between large allocations, and
	 * glibc consolidated every fastbin at each large free (a sixth of a no-op diff's CPU). */
	mallopt(M_MXFAST, 0);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (argv[1][0] == '-') {
		/* options of gitops itself come before the command; --help and -h print the list */
		struct global_opts g = {0};
		const struct cli_command cmd = {"", global_opts, NULL, NULL, NULL};
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			usage(stdout);
			return EXIT_OK;
		}
		int code = cli_opt_parse(&cmd, &g, 2, argv);
		if (code != CLI_PARSED)
			return code;
		if (g.version)
			return cmd_version(1, argv);
	}
	const struct gitops_cmd *c = find_cmd(argv[1]);
	if (!c) {
		fprintf(stderr, "gitops: unknown command '%s'; run 'gitops --help' for the list\n", argv[1]);
		return EXIT_USAGE;
	}
	/* each command parses its own options with its table (opt.h), --help included */
	return c->run(argc - 1, argv + 1);
}
