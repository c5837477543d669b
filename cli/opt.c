/* cli/opt.c: the option-table parser and the --help printer (see opt.h). One table per command
 * drives both, so a command's help cannot list an option it does not accept, or miss one. */
#include "opt.h"
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#define WIDTH 80      /* help and usage lines are wrapped to this */
#define HELP_COL 22   /* where an option's help starts */

static const char *const section_title[CLI_SEC_COUNT] = {
	[CLI_SEC_COMMAND] = "Options", [CLI_SEC_OUTPUT] = "Output options", [CLI_SEC_SERVE] = "HTTP options",
	[CLI_SEC_LEADER] = "Leader election options", [CLI_SEC_CLUSTER] = "Cluster options",
	[CLI_SEC_REPO] = "Repository options", [CLI_SEC_GLOBAL] = "Global options",
};

/* ---- parsing ------------------------------------------------------------------------------ */

static void *field(void *dest, const struct cli_opt_spec *s) { return (char *)dest + s->offset; }

static bool is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

__attribute__((format(printf, 3, 4))) static int usage_error(FILE *err, const struct cli_command *cmd, const char *fmt, ...)
{
	gitops_buf b = GITOPS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	gitops_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	const char *n = cmd->name, *sp = *n ? " " : "";
	fprintf(err, "gitops: %s%s%s; see 'gitops%s%s --help'\n", n, *n ? ": " : "", gitops_buf_cstr(&b), sp, n);
	gitops_buf_free(&b);
	return EXIT_USAGE;
}

/* The option `arg` names: "--name[=v]" by long name (len: the name's length), "-c" by alias. */
static const struct cli_opt_spec *find_long(const struct cli_opt_spec *opts, const char *name, size_t len)
{
	for (const struct cli_opt_spec *s = opts; s->type; s++)
		if (s->type != CLI_OPT_ARG && strlen(s->name) == len && !strncmp(s->name, name, len))
			return s;
	return NULL;
}

static const struct cli_opt_spec *find_alias(const struct cli_opt_spec *opts, char c)
{
	for (const struct cli_opt_spec *s = opts; s->type; s++)
		if (s->type != CLI_OPT_ARG && s->alias && s->alias == c)
			return s;
	return NULL;
}

static void list_add(struct cli_list *l, const char *v, int argc)
{
	if (!l->items)
		l->items = gitops_calloc((size_t)argc + 1, sizeof(*l->items)); /* never more values than arguments */
	l->items[l->n++] = v;
}

int cli_opt_parse_to(FILE *out, FILE *err, const struct cli_command *cmd, void *dest, int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (is_help(argv[i])) {
			cli_opt_help(out, cmd);
			return EXIT_OK;
		}
	const struct cli_opt_spec *next_arg = cmd->opts;
	bool literal = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (literal || arg[0] != '-' || !arg[1]) {
			while (next_arg->type && next_arg->type != CLI_OPT_ARG)
				next_arg++;
			if (!next_arg->type)
				return usage_error(err, cmd, "unexpected argument %s", arg);
			*(const char **)field(dest, next_arg++) = arg;
			continue;
		}
		if (!strcmp(arg, "--")) {
			literal = true;
			continue;
		}
		const struct cli_opt_spec *s;
		const char *inline_value = NULL; /* --name=V, or -cV */
		if (arg[1] == '-') {
			const char *eq = strchr(arg + 2, '=');
			size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
			s = find_long(cmd->opts, arg + 2, len);
			if (!s) /* the name only: a value may be a secret */
				return usage_error(err, cmd, "unknown option --%.*s", (int)len, arg + 2);
			inline_value = eq ? eq + 1 : NULL;
		} else {
			s = find_alias(cmd->opts, arg[1]);
			if (!s)
				return usage_error(err, cmd, "unknown option -%c", arg[1]);
			inline_value = arg[2] ? arg + 2 : NULL;
			if (inline_value && s->type == CLI_OPT_SWITCH)
				return usage_error(err, cmd, "unknown option %s", arg);
		}
		if (s->type == CLI_OPT_SWITCH) {
			if (inline_value)
				return usage_error(err, cmd, "--%s takes no value", s->name);
			*(bool *)field(dest, s) = true;
			continue;
		}
		const char *v = inline_value ? inline_value : i + 1 < argc ? argv[++i] : NULL;
		if (!v || !*v)
			return usage_error(err, cmd, "--%s needs a value (%s)", s->name, s->value_name);
		if (s->type == CLI_OPT_LIST)
			list_add(field(dest, s), v, argc);
		else
			*(const char **)field(dest, s) = v;
	}
	for (const struct cli_opt_spec *s = cmd->opts; s->type; s++) {
		if (!(s->flags & CLI_OPT_REQUIRED) || *(const char **)field(dest, s))
			continue;
		if (s->type == CLI_OPT_ARG)
			return usage_error(err, cmd, "missing <%s>", s->name);
		return usage_error(err, cmd, "missing --%s %s", s->name, s->value_name);
	}
	return CLI_PARSED;
}

int cli_opt_parse(const struct cli_command *cmd, void *dest, int argc, char **argv)
{
	return cli_opt_parse_to(stdout, stderr, cmd, dest, argc, argv);
}

void cli_opts_free(const struct cli_command *cmd, void *dest)
{
	for (const struct cli_opt_spec *s = cmd->opts; s->type; s++)
		if (s->type == CLI_OPT_LIST) {
			struct cli_list *l = field(dest, s);
			free(l->items);
			l->items = NULL;
			l->n = 0;
		}
}

/* ---- help --------------------------------------------------------------------------------- */

/* "--app A", "-q, --quiet", "--env E...", "<env>" */
static void spec_name(gitops_buf *b, const struct cli_opt_spec *s)
{
	if (s->type == CLI_OPT_ARG) {
		gitops_buf_printf(b, "<%s>", s->name);
		return;
	}
	if (s->alias)
		gitops_buf_printf(b, "-%c, ", s->alias);
	gitops_buf_printf(b, "--%s", s->name);
	if (s->value_name)
		gitops_buf_printf(b, " %s", s->value_name);
	if (s->type == CLI_OPT_LIST)
		gitops_buf_puts(b, "...");
}

/* The words of `text`, breaking lines before WIDTH; continuation lines start at column
 * `indent`. `col` is the column the text starts at; with `lead`, the first word is preceded by a
 * space (or a line break). "\n" in `text` forces a break; '\x01' is a space that never breaks. */
static void wrap(gitops_buf *b, const char *text, size_t col, size_t indent, bool lead)
{
	const char *p = text;
	bool first = !lead;
	while (*p) {
		if (*p == '\n' || *p == ' ') {
			if (*p == '\n') {
				gitops_buf_printf(b, "\n%*s", (int)indent, "");
				col = indent;
				first = true;
			}
			p++;
			continue;
		}
		size_t n = strcspn(p, " \n");
		if (!first && col + 1 + n > WIDTH) {
			gitops_buf_printf(b, "\n%*s", (int)indent, "");
			col = indent;
		} else if (!first) {
			gitops_buf_putc(b, ' ');
			col++;
		}
		for (size_t k = 0; k < n; k++)
			gitops_buf_putc(b, p[k] == '\x01' ? ' ' : p[k]);
		col += n;
		first = false;
		p += n;
	}
}

void cli_opt_usage(gitops_buf *b, const char *prefix, const struct cli_command *cmd)
{
	size_t start = b->len;
	gitops_buf_printf(b, "%sgitops%s%s", prefix, *cmd->name ? " " : "", cmd->name);
	size_t col = b->len - start;
	gitops_buf words = GITOPS_BUF_INIT;
	bool cluster = false, repo = false;
	for (const struct cli_opt_spec *s = cmd->opts; s->type; s++) {
		bool req = s->flags & CLI_OPT_REQUIRED;
		cluster |= s->section == CLI_SEC_CLUSTER;
		repo |= s->section == CLI_SEC_REPO;
		if (s->section == CLI_SEC_CLUSTER || s->section == CLI_SEC_REPO || s->section == CLI_SEC_GLOBAL)
			continue;
		/* one usage word each: "[--app\x01A]" */
		if (s->type == CLI_OPT_ARG)
			gitops_buf_printf(&words, "%s<%s>%s ", req ? "" : "[", s->name, req ? "" : "]");
		else
			gitops_buf_printf(&words, "%s--%s%s%s%s%s ", req ? "" : "[", s->name, s->value_name ? "\x01" : "",
					  s->value_name ? s->value_name : "", req ? "" : "]", s->type == CLI_OPT_LIST ? "..." : "");
	}
	if (cluster)
		gitops_buf_puts(&words, "[cluster\x01options] ");
	if (repo)
		gitops_buf_puts(&words, "[repository\x01options] ");
	wrap(b, gitops_buf_cstr(&words), col, col + 1, true);
	gitops_buf_putc(b, '\n');
	gitops_buf_free(&words);
}

void cli_opt_options(gitops_buf *b, const struct cli_command *cmd)
{
	bool any = false;
	for (int sec = -1; sec < CLI_SEC_COUNT; sec++) {
		bool title = false;
		for (const struct cli_opt_spec *s = cmd->opts; s->type; s++) {
			/* section -1: the arguments that have a help text */
			bool in = sec < 0 ? s->type == CLI_OPT_ARG && s->help : s->type != CLI_OPT_ARG && (int)s->section == sec;
			if (!in)
				continue;
			if (!title)
				gitops_buf_printf(b, "%s%s:\n", any ? "\n" : "", sec < 0 ? "Arguments" : section_title[sec]);
			title = any = true;
			size_t start = b->len;
			gitops_buf_puts(b, "  ");
			spec_name(b, s);
			size_t col = b->len - start;
			if (col + 2 > HELP_COL)
				gitops_buf_printf(b, "\n%*s", HELP_COL, "");
			else
				gitops_buf_printf(b, "%*s", (int)(HELP_COL - col), "");
			wrap(b, s->help ? s->help : "", HELP_COL, HELP_COL, false);
			gitops_buf_putc(b, '\n');
		}
	}
	/* every command has --help: the last line of the last section */
	gitops_buf_printf(b, "%s  -h, --help          show this help\n", any ? "" : "Options:\n");
}

void cli_opt_help(FILE *out, const struct cli_command *cmd)
{
	gitops_buf b = GITOPS_BUF_INIT;
	cli_opt_usage(&b, "usage: ", cmd);
	for (const struct cli_command *const *f = cmd->forms; f && *f; f++)
		cli_opt_usage(&b, "       ", *f);
	if (cmd->about)
		gitops_buf_printf(&b, "\n%s\n", cmd->about);
	gitops_buf_putc(&b, '\n');
	gitops_buf options = GITOPS_BUF_INIT;
	cli_opt_options(&options, cmd);
	gitops_buf_puts(&b, gitops_buf_cstr(&options));
	gitops_buf_free(&options);
	if (cmd->footer)
		gitops_buf_printf(&b, "\n%s\n", cmd->footer);
	fputs(gitops_buf_cstr(&b), out);
	gitops_buf_free(&b);
}
