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
int cmd_help(int argc, char **argv);
void cmd_help_help(void);

#endif
