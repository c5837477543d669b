/* cli/opt.h: option tables. Each command declares its options once, in one table, and that
 * table drives parsing, `--help`, and the usage errors (libgit2's src/cli/opt.c is the model).
 *
 * A table is a `static const` array of cli_opt_spec ended by CLI_OPT_END; each entry says where
 * its value goes in the command's options struct (an offset), so the table holds no state and
 * is safe to read from any thread. Parsing writes only into the struct the caller passes. */
#ifndef GITOPS_CLI_OPT_H
#define GITOPS_CLI_OPT_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cli_opt_type {
	CLI_OPT_END = 0, /* ends a table */
	CLI_OPT_SWITCH,  /* --name: sets a bool */
	CLI_OPT_VALUE,   /* --name V or --name=V: sets a const char * (pointing into argv) */
	CLI_OPT_LIST,    /* repeatable --name V: appends to a struct cli_list */
	CLI_OPT_ARG,     /* a positional argument <name>: sets a const char *, in table order */
};

/* Where an option is listed in --help. The cluster and repository sections are the same in
 * every command that has them (CLI_OPTS_CLUSTER, CLI_OPTS_REPO in args.h), so a usage line
 * names them as "[cluster options]" and "[repository options]"; the others are spelled out. */
enum cli_opt_section {
	CLI_SEC_COMMAND, /* "Options" */
	CLI_SEC_OUTPUT,  /* "Output options": --json, --quiet, --no-color, --log-format */
	CLI_SEC_SERVE,   /* "HTTP options" (gitops run) */
	CLI_SEC_LEADER,  /* "Leader election options" (gitops run) */
	CLI_SEC_CLUSTER, /* "Cluster options": --kubeconfig, --context */
	CLI_SEC_REPO,    /* "Repository options": --repo, --state-repo, --state-branch */
	CLI_SEC_GLOBAL,  /* "Global options": those of `gitops` itself (--help, --version) */
	CLI_SEC_COUNT
};

enum {
	CLI_OPT_REQUIRED = 1 << 0, /* an ARG or a VALUE that must be given */
};

struct cli_opt_spec {
	enum cli_opt_type type;
	const char *name;       /* long name without "--" ("app"); for an ARG its placeholder ("env") */
	char alias;             /* short name ('q' for -q), or 0 */
	const char *value_name; /* VALUE and LIST: the value in help ("FILE"); NULL otherwise */
	enum cli_opt_section section;
	unsigned flags;         /* CLI_OPT_REQUIRED */
	size_t offset;          /* of the field in the command's options struct */
	const char *help;       /* one paragraph, wrapped when printed; "\n" forces a break */
};

/* The values of a repeatable option, in command-line order. `items` (NULL-terminated) is
 * allocated by the parser; the strings point into argv. Free with cli_opts_free(). */
struct cli_list {
	const char **items;
	size_t n;
};

/* A command as --help shows it. `name` is what follows "gitops " ("render", "history dora"). */
struct cli_command {
	const char *name;
	const struct cli_opt_spec *opts;
	const char *about;  /* printed after the usage line(s); may be NULL */
	const char *footer; /* printed after the options (environment, exit codes); may be NULL */
	/* other forms of the command whose usage lines follow this one's (history: its subcommands);
	 * NULL-terminated, or NULL */
	const struct cli_command *const *forms;
};

/* Table entries. The field's type is checked at compile time (a pointer comparison between
 * distinct types is an error under -Werror). */
#define CLI_FIELD_(T, field, ptype) (offsetof(T, field) + 0 * sizeof(&((T *)0)->field == (ptype)0))
#define CLI_SWITCH(name, alias, section, T, field, help) \
	{CLI_OPT_SWITCH, name, alias, NULL, section, 0, CLI_FIELD_(T, field, bool *), help}
#define CLI_VALUE(name, alias, vname, section, flags, T, field, help) \
	{CLI_OPT_VALUE, name, alias, vname, section, flags, CLI_FIELD_(T, field, const char **), help}
#define CLI_LIST(name, alias, vname, section, T, field, help) \
	{CLI_OPT_LIST, name, alias, vname, section, 0, CLI_FIELD_(T, field, struct cli_list *), help}
#define CLI_ARG(name, flags, T, field, help) \
	{CLI_OPT_ARG, name, 0, NULL, CLI_SEC_COMMAND, flags, CLI_FIELD_(T, field, const char **), help}
#define CLI_END {CLI_OPT_END, NULL, 0, NULL, 0, 0, 0, NULL}

/* What cli_opt_parse returns when argv parsed; any other value is the exit code to return
 * (0 after --help was printed, EXIT_USAGE after a usage error was printed). */
#define CLI_PARSED (-1)

/* Parses argv (argv[0] is the command's last word) into `dest`, which the caller initialised
 * (defaults stay where nothing was given). Options and arguments may be mixed; `--` ends the
 * options; `--name=V` and `--name V` are the same; a value may not be empty. --help or -h
 * anywhere before `--` prints the command's help on stdout instead. A usage error prints one
 * line on stderr ("gitops: <command>: unknown option --x; see 'gitops <command> --help'") and
 * returns EXIT_USAGE. Lists are allocated even on error: free with cli_opts_free(). */
int cli_opt_parse(const struct cli_command *cmd, void *dest, int argc, char **argv);
/* The same, printing help on `out` and errors on `err` (tests). */
int cli_opt_parse_to(FILE *out, FILE *err, const struct cli_command *cmd, void *dest, int argc, char **argv);
/* Frees what parsing allocated in `dest` (the lists). */
void cli_opts_free(const struct cli_command *cmd, void *dest);

/* The command's whole help: usage line(s), about, options by section, footer. */
void cli_opt_help(FILE *out, const struct cli_command *cmd);
/* Appends "<prefix>gitops <name> <args> [--opt V]... [cluster options] [repository options]",
 * wrapped at 80 columns. */
void cli_opt_usage(gitops_buf *b, const char *prefix, const struct cli_command *cmd);
/* Appends the options, one section after another, each under its title. */
void cli_opt_options(gitops_buf *b, const struct cli_command *cmd);

#endif
