/* Unit tests for cli/opt.c: one option table drives parsing, --help and the usage errors: both
 * value spellings, repeatable values, `--`, short aliases, required arguments and options, and
 * a help text that lists every option of the table under its section. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/opt.h"

struct t_opts {
	const char *env, *second, *app, *out, *repo, *state_repo, *state_branch, *kubeconfig, *context;
	struct cli_list tags;
	bool json, quiet;
};

static const struct cli_opt_spec t_spec[] = {
	CLI_ARG("env", CLI_OPT_REQUIRED, struct t_opts, env, "the environment"),
	CLI_ARG("second", 0, struct t_opts, second, NULL),
	CLI_VALUE("app", 0, "A", CLI_SEC_COMMAND, 0, struct t_opts, app, "one app"),
	CLI_VALUE("out", 'o', "FILE", CLI_SEC_COMMAND, 0, struct t_opts, out, "where it goes"),
	CLI_LIST("tag", 0, "T", CLI_SEC_COMMAND, struct t_opts, tags, "a tag (repeatable)"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct t_opts, json, "JSON output"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct t_opts, quiet,
		   "a help text long enough to be wrapped over more than one line of the help output, so that "
		   "wrapping is seen"),
	CLI_OPTS_CLUSTER(struct t_opts),
	CLI_OPTS_REPO(struct t_opts),
	CLI_END,
};
static const struct cli_command t_cmd = {"thing", t_spec, "About the thing.", "Exit codes: 0 ok.", NULL};

struct captured {
	char *out, *err;
	size_t out_len, err_len;
};

/* Parses argv (NULL-terminated) into *o; returns cli_opt_parse_to's result with stdout and
 * stderr captured in *c (freed by the caller). */
static int parse(struct t_opts *o, struct captured *c, const char *const *argv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	memset(o, 0, sizeof(*o));
	memset(c, 0, sizeof(*c));
	FILE *out = open_memstream(&c->out, &c->out_len), *err = open_memstream(&c->err, &c->err_len);
	int rc = cli_opt_parse_to(out, err, &t_cmd, o, argc, (char **)argv);
	fclose(out);
	fclose(err);
	return rc;
}

static void captured_free(struct captured *c)
{
	free(c->out);
	free(c->err);
}

static void both_value_spellings_parse_the_same(void **state)
{
	(void)state;
	struct t_opts a, b;
	struct captured c;
	assert_int_equal(parse(&a, &c, (const char *[]){"thing", "dev", "--app", "web", "--repo", "/r", "-o", "f", NULL}),
			 CLI_PARSED);
	captured_free(&c);
	assert_int_equal(parse(&b, &c, (const char *[]){"thing", "--app=web", "dev", "--repo=/r", "-of", NULL}), CLI_PARSED);
	captured_free(&c);
	assert_string_equal(a.env, "dev");
	assert_string_equal(b.env, "dev");
	assert_string_equal(a.app, "web");
	assert_string_equal(b.app, "web");
	assert_string_equal(a.repo, "/r");
	assert_string_equal(b.repo, "/r");
	assert_string_equal(a.out, "f");
	assert_string_equal(b.out, "f");
	assert_null(a.second);
	/* a value may contain '=' and begin with '-' when given with '=' */
	assert_int_equal(parse(&a, &c, (const char *[]){"thing", "dev", "--app=a=b", "--out=-x", NULL}), CLI_PARSED);
	captured_free(&c);
	assert_string_equal(a.app, "a=b");
	assert_string_equal(a.out, "-x");
}

static void switches_lists_and_positionals(void **state)
{
	(void)state;
	struct t_opts o;
	struct captured c;
	assert_int_equal(parse(&o, &c, (const char *[]){"thing", "-q", "dev", "--tag", "a", "--json", "two", "--tag=b",
							 "--tag", "c", NULL}),
			 CLI_PARSED);
	captured_free(&c);
	assert_true(o.quiet);
	assert_true(o.json);
	assert_string_equal(o.env, "dev");
	assert_string_equal(o.second, "two");
	assert_int_equal(o.tags.n, 3);
	assert_string_equal(o.tags.items[0], "a");
	assert_string_equal(o.tags.items[1], "b");
	assert_string_equal(o.tags.items[2], "c");
	assert_null(o.tags.items[3]);
	cli_opts_free(&t_cmd, &o);
	assert_null(o.tags.items);
	assert_int_equal(o.tags.n, 0);
}

static void double_dash_ends_the_options(void **state)
{
	(void)state;
	struct t_opts o;
	struct captured c;
	assert_int_equal(parse(&o, &c, (const char *[]){"thing", "--json", "--", "--help", "-q", NULL}), CLI_PARSED);
	assert_string_equal(c.out, ""); /* --help after -- is an argument, not a request for help */
	captured_free(&c);
	assert_string_equal(o.env, "--help");
	assert_string_equal(o.second, "-q");
	assert_false(o.quiet);
	assert_true(o.json);
}

/* Every usage error is one line on stderr naming the command and the option, with the hint. */
static void usage_errors_are_one_line_and_exit_2(void **state)
{
	(void)state;
	static const struct {
		const char *argv[6];
		const char *want;
	} cases[] = {
		{{"thing", "dev", "--bogus", NULL}, "gitops: thing: unknown option --bogus; see 'gitops thing --help'\n"},
		{{"thing", "dev", "--token=s3cret", NULL}, "gitops: thing: unknown option --token; see 'gitops thing --help'\n"},
		{{"thing", "dev", "-x", NULL}, "gitops: thing: unknown option -x; see 'gitops thing --help'\n"},
		{{"thing", "dev", "-qx", NULL}, "gitops: thing: unknown option -qx; see 'gitops thing --help'\n"},
		{{"thing", "dev", "--app", NULL}, "gitops: thing: --app needs a value (A); see 'gitops thing --help'\n"},
		{{"thing", "dev", "--app=", NULL}, "gitops: thing: --app needs a value (A); see 'gitops thing --help'\n"},
		{{"thing", "dev", "--tag", NULL}, "gitops: thing: --tag needs a value (T); see 'gitops thing --help'\n"},
		{{"thing", "dev", "--json=yes", NULL}, "gitops: thing: --json takes no value; see 'gitops thing --help'\n"},
		{{"thing", "--json", NULL}, "gitops: thing: missing <env>; see 'gitops thing --help'\n"},
		{{"thing", "a", "b", "c", NULL}, "gitops: thing: unexpected argument c; see 'gitops thing --help'\n"},
		{{"thing", "--", "a", "b", "--c", NULL}, "gitops: thing: unexpected argument --c; see 'gitops thing --help'\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t_opts o;
		struct captured c;
		int rc = parse(&o, &c, cases[i].argv);
		if (rc != EXIT_USAGE || strcmp(c.err, cases[i].want))
			fail_msg("case %zu: rc %d, stderr %s", i, rc, c.err);
		assert_string_equal(c.out, "");
		assert_null(strstr(c.err, "s3cret")); /* the value of an unknown option is never echoed */
		captured_free(&c);
		cli_opts_free(&t_cmd, &o);
	}
}

static void required_option_is_named(void **state)
{
	(void)state;
	static const struct cli_opt_spec spec[] = {
		CLI_VALUE("out", 0, "FILE", CLI_SEC_COMMAND, CLI_OPT_REQUIRED, struct t_opts, out, "where"),
		CLI_END,
	};
	static const struct cli_command cmd = {"keys", spec, NULL, NULL, NULL};
	struct t_opts o = {0};
	char *err = NULL;
	size_t n = 0;
	FILE *e = open_memstream(&err, &n);
	int rc = cli_opt_parse_to(stdout, e, &cmd, &o, 1, (char *[]){"keys", NULL});
	fclose(e);
	assert_int_equal(rc, EXIT_USAGE);
	assert_string_equal(err, "gitops: keys: missing --out FILE; see 'gitops keys --help'\n");
	free(err);
	e = open_memstream(&err, &n);
	rc = cli_opt_parse_to(stdout, e, &cmd, &o, 2, (char *[]){"keys", "--out=k", NULL});
	fclose(e);
	assert_int_equal(rc, CLI_PARSED);
	assert_string_equal(o.out, "k");
	free(err);
}

/* --help (or -h) anywhere before `--` prints the help from the table, also after a bad option,
 * and every option of the table is in it, under its section, after the usage line. */
static void help_lists_every_option_of_the_table(void **state)
{
	(void)state;
	struct t_opts o;
	struct captured c;
	assert_int_equal(parse(&o, &c, (const char *[]){"thing", "--bogus", "-h", NULL}), EXIT_OK);
	assert_string_equal(c.err, "");
	const char *h = c.out;
	/* the usage line: arguments, then the options of the spelled-out sections, wrapped under the
	 * first argument */
	const char *usage = "usage: gitops thing <env> [<second>] [--app A] [--out FILE] [--tag T]...\n"
			    "                    [--json] [--quiet] [cluster options] [repository options]\n";
	assert_true(!strncmp(h, usage, strlen(usage)));
	for (const struct cli_opt_spec *s = t_spec; s->type; s++) {
		char want[64];
		if (s->type == CLI_OPT_ARG)
			continue;
		if (s->alias)
			snprintf(want, sizeof(want), "\n  -%c, --%s", s->alias, s->name);
		else
			snprintf(want, sizeof(want), "\n  --%s", s->name);
		if (!strstr(h, want))
			fail_msg("--%s missing from the help:\n%s", s->name, h);
	}
	const char *opts = strstr(h, "\nOptions:\n"), *output = strstr(h, "\nOutput options:\n"),
		   *cluster = strstr(h, "\nCluster options:\n"), *repo = strstr(h, "\nRepository options:\n");
	assert_non_null(opts);
	assert_true(opts < strstr(h, "\n  --app A") && strstr(h, "\n  --app A") < output);
	assert_true(output < strstr(h, "\n  --json") && strstr(h, "\n  --json") < cluster);
	assert_true(cluster < strstr(h, "\n  --kubeconfig FILE") && strstr(h, "\n  --kubeconfig FILE") < repo);
	assert_true(repo < strstr(h, "\n  --state-branch B"));
	assert_non_null(strstr(h, "\n  <env>               the environment\n"));
	assert_non_null(strstr(h, "\n  --tag T...          a tag (repeatable)\n"));
	assert_non_null(strstr(h, "\n  -h, --help          show this help\n"));
	assert_non_null(strstr(h, "\nAbout the thing.\n"));
	assert_non_null(strstr(h, "\nExit codes: 0 ok.\n"));
	/* a long name puts its help on the next line; long help wraps within 80 columns */
	assert_non_null(strstr(h, "\n  --state-repo URL|PATH\n                      the repository"));
	for (const char *l = h; *l;) {
		size_t n = strcspn(l, "\n");
		if (n > 80 && strncmp(l, "About", 5))
			fail_msg("line longer than 80 columns: %.*s", (int)n, l);
		l += n + (l[n] == '\n');
	}
	const char *q = strstr(h, "\n  -q, --quiet         a help text long");
	assert_non_null(q);
	q = strchr(q + 1, '\n');
	assert_true(!strncmp(q, "\n                      ", 23) && q[23] != ' '); /* its second line */
	captured_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(both_value_spellings_parse_the_same),
		cmocka_unit_test(switches_lists_and_positionals),
		cmocka_unit_test(double_dash_ends_the_options),
		cmocka_unit_test(usage_errors_are_one_line_and_exit_2),
		cmocka_unit_test(required_option_is_named),
		cmocka_unit_test(help_lists_every_option_of_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
