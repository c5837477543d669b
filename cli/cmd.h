/* cli/cmd.h: the command table and the exit codes. Each subcommand lives in its own
 * cmd_<name>.c, declares its options in one table (opt.h) and only parses arguments, calls the
 * library and prints; the helpers they share are in args.h (args.c). */
#ifndef GITOPS_CLI_CMD_H
#define GITOPS_CLI_CMD_H

#include "args.h"

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
/* history and promotion commands (cmd_promote.c, cmd_approve.c: approve and reject,
 * cmd_keygen.c, cmd_rollback.c: rollback and resume, cmd_suspend.c, cmd_history.c) */
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
int cmd_help(int argc, char **argv);
void cmd_help_help(void);

#endif
