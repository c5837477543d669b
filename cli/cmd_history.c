/* cli: `gitops history`: the deploy history from the state branch (filters, table or JSON),
 * `history show`, `history dora`, `history verify`, `history record`; plus the helpers the
 * other history commands share (exit codes, option matching). */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_hist_exit(int err)
{
	switch (err) {
	case GITOPS_EFORBIDDEN: return EXIT_REFUSED;
	case GITOPS_ENOTFOUND: case GITOPS_EEXISTS: return EXIT_INPUT;
	case GITOPS_ECONFLICT: return EXIT_GIT;
	default: return cli_exit_for(err);
	}
}

int cli_opt(const char *name, int argc, char **argv, int *i, const char **val)
{
	const char *arg = argv[*i];
	size_t n = strlen(name);
	if (strncmp(arg, name, n) || (arg[n] != '\0' && arg[n] != '='))
		return 0;
	const char *v = arg[n] == '=' ? arg + n + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
	if (!v || !*v) {
		cli_fail(EXIT_USAGE, "%s needs a value; see 'gitops %s --help'", name, argv[0]);
		return -1;
	}
	*val = v;
	return 1;
}

void cmd_history_help(void)
{
	puts("usage: gitops history [--env E] [--app A] [--type T] [--actor X] [--sha S] [--promotion ID]\n"
	     "                      [--since T] [--until T] [--limit N] [--json]\n"
	     "       gitops history show <id> [--json]\n"
	     "       gitops history dora [--env E] [--since 30d] [--until T] [--json]\n"
	     "       gitops history verify [--json]\n"
	     "       gitops history record --type T --env E [--sha SHA] [--app A] [--reason TEXT]\n"
	     "                             [--trigger manual|auto|ci|webhook] [--actor NAME] [--failed N]\n"
	     "                             [--duration MS] [--signing-key FILE]\n\n"
	     "The history is the state branch (gitops/state): one commit per event, the event as one\n"
	     "JSON object in the message. Queries read a local index under the data directory, brought\n"
	     "up to date from the branch first.\n\n"
	     "  (no subcommand)     events, newest first, as a table or --json (an array)\n"
	     "  show <id>           one event; for a promotion id, the promotion and all its events\n"
	     "  dora                deployment frequency, lead time for changes (commit time to first\n"
	     "                      healthy deploy), change failure rate, time to restore\n"
	     "  verify              checks the chain is linear and was never rewritten, every event's\n"
	     "                      schema and time order, every approval against the approvers of\n"
	     "                      gitops.yaml then, every record signature, every precondition, and\n"
	     "                      that every snapshot equals the replay of the events\n"
	     "  record              appends an event from outside (health checks, webhooks, drift\n"
	     "                      watchers); promotion, rollback and resume events are refused here\n\n"
	     "Options:\n"
	     "  --env E --app A --actor X   exact matches\n"
	     "  --type T            event type; \"promotion.\" or \"sync*\" match a family\n"
	     "  --sha S             commit SHA or a prefix of it\n"
	     "  --promotion ID      events of one promotion\n"
	     "  --since T --until T 30d, 12h, 90m, 45s, 2w (ago) or an RFC 3339 date/time (UTC)\n"
	     "  --limit N           at most N events (default 50 for the table, 0: all)\n"
	     "  --json              JSON output\n"
	     "  --quiet             no table header, no summary lines\n"
	     "  --signing-key FILE  record: sign the event with this reporter key (gitops keygen;\n"
	     "                      default $GITOPS_SIGNING_KEY); see gitops.yaml `reporters`\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 ok; 2 usage; 3 bad input, unknown id, or an --env gitops.yaml does not\n"
	     "know (and no event names); 5 git error;\n"
	     "verify: 7 when the history is invalid (the first problem and its commit are printed);\n"
	     "3 when the state branch never existed (\"no state branch\").");
}

struct hopts {
	const char *repo, *state_repo, *state_branch;
	bool json, quiet;
};

/* Takes a common option; 1 taken, 0 not, -1 usage error. */
static int common_opt(struct hopts *o, int argc, char **argv, int *i)
{
	int r;
	if ((r = cli_opt("--repo", argc, argv, i, &o->repo)) || (r = cli_opt("--state-repo", argc, argv, i, &o->state_repo)) ||
	    (r = cli_opt("--state-branch", argc, argv, i, &o->state_branch)))
		return r;
	if (!strcmp(argv[*i], "--json")) {
		o->json = true;
		return 1;
	}
	if (!strcmp(argv[*i], "--quiet") || !strcmp(argv[*i], "-q")) {
		o->quiet = true;
		return 1;
	}
	return 0;
}

static int open_store(hist **h, struct hopts *o)
{
	o->repo = cli_default_repo(o->repo, o->state_branch);
	struct rec_workspace_options wo = {0};
	cli_config(&wo, o->state_repo, o->state_branch);
	int rc = hist_open_default(h, wo.state_repo, wo.state_branch, o->repo);
	return rc ? cli_fail(cli_hist_exit(rc), "%s", gitops_error_last()) : 0;
}

/* `--env E` that matched nothing: an environment gitops.yaml does not know is a mistake (exit 3,
 * naming the known ones), not an empty answer. When the manifests repository cannot be opened
 * (a state repository used on its own), an empty answer stands. Returns 0 or the exit code. */
static int unknown_env(const struct hopts *o, const char *env)
{
	struct rec_workspace_options wo = {.repo = o->repo};
	cli_config(&wo, o->state_repo, o->state_branch);
	rec_workspace *ws = NULL;
	const struct mf_environment *e = NULL;
	int code = 0;
	if (rec_workspace_open(&ws, &wo) == 0 && rec_workspace_env(&e, ws, env))
		code = cli_fail(EXIT_INPUT, "%s", gitops_error_last());
	gitops_error_clear();
	rec_workspace_free(ws);
	return code;
}

/* The store with the pipeline config's history attached (verify, record): what it checks
 * approvers, reporters and upstreams against. The caller frees *ws after *h. */
static int open_store_verified(hist **h, rec_workspace **ws, const struct hopts *o)
{
	struct rec_workspace_options wo = {.repo = o->repo};
	cli_config(&wo, o->state_repo, o->state_branch);
	int rc = rec_workspace_open(ws, &wo);
	if (!rc)
		rc = rec_workspace_history(h, *ws, o->state_repo, o->state_branch);
	return rc ? cli_fail(cli_hist_exit(rc), "%s", gitops_error_last()) : 0;
}

static void print_json(json_t *j)
{
	/* rates and frequencies are rounded (round_to); 10 digits print them as they are */
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	puts(s);
	free(s);
}

static const char *s_(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

/* One table line per event: TIME TYPE ENV APP SHA ACTOR DETAIL */
static void print_row(const json_t *ev)
{
	gitops_buf d = GITOPS_BUF_INIT;
	json_t *c = json_object_get(ev, "counts");
	if (c)
		gitops_buf_printf(&d, "%lld created, %lld updated, %lld pruned, %lld failed; ",
				  (long long)json_integer_value(json_object_get(c, "created")),
				  (long long)json_integer_value(json_object_get(c, "updated")),
				  (long long)json_integer_value(json_object_get(c, "pruned")),
				  (long long)json_integer_value(json_object_get(c, "failed")));
	if (*s_(ev, "promotion"))
		gitops_buf_printf(&d, "promotion %s; ", s_(ev, "promotion"));
	json_t *a = json_array_get(json_object_get(ev, "approvals"), 0);
	if (a)
		gitops_buf_printf(&d, "signed by %s; ", s_(a, "approver"));
	if (*s_(ev, "status"))
		gitops_buf_printf(&d, "%s; ", s_(ev, "status"));
	json_t *fl = json_object_get(ev, "failures");
	if (json_array_size(fl)) /* the first failed object and why; `history show <id>` has all */
		gitops_buf_printf(&d, "%s: %s%s; ", s_(json_array_get(fl, 0), "object"), s_(json_array_get(fl, 0), "reason"),
				  json_array_size(fl) > 1 ? " (and more)" : "");
	else if (*s_(ev, "reason"))
		gitops_buf_printf(&d, "%s; ", s_(ev, "reason"));
	if (json_array_size(json_object_get(ev, "apps")) && !*s_(ev, "app")) {
		gitops_buf_puts(&d, "apps ");
		size_t k;
		json_t *app;
		json_array_foreach(json_object_get(ev, "apps"), k, app)
			gitops_buf_printf(&d, "%s%s", k ? "," : "", json_string_value(app));
		gitops_buf_puts(&d, "; ");
	}
	if (d.len >= 2)
		d.ptr[d.len -= 2] = '\0';
	printf("%-24.24s %-12.12s %-19.19s %-10.10s %-10.10s %-12.12s %-14.14s %s\n", s_(ev, "time"), s_(ev, "id"),
	       s_(ev, "type"), s_(ev, "environment"), *s_(ev, "app") ? s_(ev, "app") : "-",
	       *s_(ev, "sha") ? s_(ev, "sha") : "-", s_(ev, "actor"), gitops_buf_cstr(&d));
	gitops_buf_free(&d);
}

static int cmd_query(int argc, char **argv)
{
	struct hopts o = {0};
	struct hist_filter f = {0};
	const char *since = NULL, *until = NULL, *limit = NULL;
	for (int i = 1; i < argc; i++) {
		int r = common_opt(&o, argc, argv, &i);
		if (!r && !(r = cli_opt("--env", argc, argv, &i, &f.env)) && !(r = cli_opt("--app", argc, argv, &i, &f.app)) &&
		    !(r = cli_opt("--type", argc, argv, &i, &f.type)) && !(r = cli_opt("--actor", argc, argv, &i, &f.actor)) &&
		    !(r = cli_opt("--sha", argc, argv, &i, &f.sha)) &&
		    !(r = cli_opt("--promotion", argc, argv, &i, &f.promotion)) &&
		    !(r = cli_opt("--since", argc, argv, &i, &since)) && !(r = cli_opt("--until", argc, argv, &i, &until)) &&
		    !(r = cli_opt("--limit", argc, argv, &i, &limit)))
			return cli_fail(EXIT_USAGE, "unknown option or argument %s; see 'gitops history --help'", argv[i]);
		if (r < 0)
			return EXIT_USAGE;
	}
	f.limit = o.json ? 0 : 50;
	if (hist_filter_parse(&f, since, until, limit))
		return cli_fail(EXIT_USAGE, "%s", gitops_error_last());
	hist *h = NULL;
	int code = open_store(&h, &o);
	if (code)
		return code;
	json_t *arr = NULL;
	int rc = hist_query(&arr, h, &f);
	if (rc) {
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
	} else if (f.env && json_array_size(arr) == 0 && (code = unknown_env(&o, f.env))) {
		/* printed */
	} else if (o.json) {
		print_json(arr);
	} else {
		if (!o.quiet)
			printf("%-24s %-12s %-19s %-10s %-10s %-12s %-14s %s\n", "TIME", "ID", "TYPE", "ENV", "APP", "SHA", "ACTOR",
		       "DETAIL");
		size_t i;
		json_t *ev;
		json_array_foreach(arr, i, ev)
			print_row(ev);
	}
	json_decref(arr);
	hist_free(h);
	return code;
}

static int cmd_show(int argc, char **argv)
{
	struct hopts o = {0};
	const char *id = NULL;
	for (int i = 1; i < argc; i++) {
		int r = common_opt(&o, argc, argv, &i);
		if (r < 0)
			return EXIT_USAGE;
		if (r)
			continue;
		if (argv[i][0] == '-' || id)
			return cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops history --help'", argv[i]);
		id = argv[i];
	}
	if (!id)
		return cli_fail(EXIT_USAGE, "missing <id>; see 'gitops history --help'");
	hist *h = NULL;
	int code = open_store(&h, &o);
	if (code)
		return code;
	json_t *j = NULL;
	int rc = hist_show(&j, h, id);
	if (rc) {
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
	} else if (o.json || !json_object_get(j, "events")) {
		print_json(j);
	} else {
		json_t *p = json_object_get(j, "promotion");
		printf("promotion %s: %s -> %s at %s, %s", s_(p, "id"), s_(p, "from"), s_(p, "environment"), s_(p, "sha"),
		       *s_(p, "status") ? s_(p, "status") : "decided");
		if (json_object_get(p, "required"))
			printf(", %zu of %lld approvals", json_array_size(json_object_get(p, "approvals")),
			       (long long)json_integer_value(json_object_get(p, "required")));
		printf("\n");
		size_t i;
		json_t *ev;
		json_array_foreach(json_object_get(j, "events"), i, ev)
			print_row(ev);
	}
	json_decref(j);
	hist_free(h);
	return code;
}

/* A metric rounded to `digits` decimals, for JSON that reads like the table. */
static double round_to(double v, int digits)
{
	double f = 1;
	while (digits-- > 0)
		f *= 10;
	return (double)(long long)(v * f + (v < 0 ? -0.5 : 0.5)) / f;
}

static void fmt_dur(char *out, size_t n, long long ms)
{
	if (ms < 0)
		snprintf(out, n, "n/a");
	else if (ms < 60000)
		snprintf(out, n, "%.1fs", ms / 1000.0);
	else if (ms < 3600000)
		snprintf(out, n, "%.1fm", ms / 60000.0);
	else if (ms < 86400000LL * 2)
		snprintf(out, n, "%.1fh", ms / 3600000.0);
	else
		snprintf(out, n, "%.1fd", ms / 86400000.0);
}

static int cmd_dora(int argc, char **argv)
{
	struct hopts o = {0};
	const char *env = NULL, *since = "30d", *until = NULL;
	for (int i = 1; i < argc; i++) {
		int r = common_opt(&o, argc, argv, &i);
		if (!r && !(r = cli_opt("--env", argc, argv, &i, &env)) && !(r = cli_opt("--since", argc, argv, &i, &since)) &&
		    !(r = cli_opt("--until", argc, argv, &i, &until)))
			return cli_fail(EXIT_USAGE, "unknown option or argument %s; see 'gitops history --help'", argv[i]);
		if (r < 0)
			return EXIT_USAGE;
	}
	long long s = 0, u = 0;
	if (hist_parse_time(&s, since) || (until && hist_parse_time(&u, until)))
		return cli_fail(EXIT_USAGE, "%s", gitops_error_last());
	hist *h = NULL;
	int code = open_store(&h, &o);
	if (code)
		return code;
	struct hist_dora d;
	int rc = hist_dora(&d, h, env, s, u);
	if (rc) {
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
	} else if (env && d.deployments == 0 && d.changes == 0 && (code = unknown_env(&o, env))) {
		/* printed */
	} else if (o.json) {
		char a[32], b[32];
		hist_format_time(a, d.since_ms);
		hist_format_time(b, d.until_ms);
		json_t *j = json_pack("{s:s?, s:s, s:s, s:{s:i, s:f}, s:{s:i, s:I, s:I}, s:{s:i, s:i, s:f}, s:{s:i, s:I, s:I}}",
				      "environment", env, "since", a, "until", b, "deploymentFrequency", "deployments",
				      d.deployments, "perDay", round_to(d.per_day, 3), "leadTime", "samples", d.lead_samples, "medianMs",
				      (json_int_t)d.lead_median_ms, "meanMs", (json_int_t)d.lead_mean_ms, "changeFailureRate",
				      "changes", d.changes, "failed", d.failed_changes, "rate", round_to(d.failure_rate, 4), "timeToRestore",
				      "restores", d.restores, "medianMs", (json_int_t)d.restore_median_ms, "meanMs",
				      (json_int_t)d.restore_mean_ms);
		print_json(j);
		json_decref(j);
	} else {
		char lm[32], lmean[32], rm[32], rmean[32];
		fmt_dur(lm, sizeof(lm), d.lead_median_ms);
		fmt_dur(lmean, sizeof(lmean), d.lead_mean_ms);
		fmt_dur(rm, sizeof(rm), d.restore_median_ms);
		fmt_dur(rmean, sizeof(rmean), d.restore_mean_ms);
		printf("DORA metrics for %s since %s\n", env ? env : "all environments", since);
		printf("  deployment frequency   %u deploys, %.2f per day\n", d.deployments, d.per_day);
		printf("  lead time for changes  median %s, mean %s (%u changes)\n", lm, lmean, d.lead_samples);
		printf("  change failure rate    %.1f%% (%u of %u changes)\n", d.failure_rate * 100, d.failed_changes, d.changes);
		printf("  time to restore        median %s, mean %s (%u restores)\n", rm, rmean, d.restores);
	}
	hist_free(h);
	return code;
}

static int cmd_verify(int argc, char **argv)
{
	struct hopts o = {0};
	for (int i = 1; i < argc; i++) {
		int r = common_opt(&o, argc, argv, &i);
		if (r < 0)
			return EXIT_USAGE;
		if (!r)
			return cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops history --help'", argv[i]);
	}
	hist *h = NULL;
	rec_workspace *ws = NULL;
	int code = open_store_verified(&h, &ws, &o);
	if (code) {
		rec_workspace_free(ws);
		return code;
	}
	struct hist_verify_report r;
	int rc = hist_verify(&r, h);
	if (o.json) {
		json_t *j = json_pack("{s:b, s:I, s:I, s:s?}", "valid", rc == 0, "events", (json_int_t)r.events, "signatures",
				      (json_int_t)r.signatures, "problem", rc ? gitops_error_last() : NULL);
		print_json(j);
		json_decref(j);
	}
	if (rc == GITOPS_EPOLICY)
		code = cli_fail(EXIT_REFUSED, "history is NOT valid: %s", gitops_error_last());
	else if (rc)
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
	else if (!o.json && !o.quiet)
		printf("%s: valid: %zu events, %zu signatures verified\n", hist_describe(h), r.events, r.signatures);
	hist_verify_report_clear(&r);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}

static int cmd_record(int argc, char **argv)
{
	struct hopts o = {0};
	struct hist_event ev = {.duration_ms = -1};
	const char *failed = NULL, *dur = NULL, *signing_key = getenv("GITOPS_SIGNING_KEY");
	for (int i = 1; i < argc; i++) {
		int r = common_opt(&o, argc, argv, &i);
		if (!r && !(r = cli_opt("--type", argc, argv, &i, &ev.type)) &&
		    !(r = cli_opt("--env", argc, argv, &i, &ev.environment)) && !(r = cli_opt("--sha", argc, argv, &i, &ev.sha)) &&
		    !(r = cli_opt("--app", argc, argv, &i, &ev.app)) && !(r = cli_opt("--reason", argc, argv, &i, &ev.reason)) &&
		    !(r = cli_opt("--trigger", argc, argv, &i, &ev.trigger)) &&
		    !(r = cli_opt("--actor", argc, argv, &i, &ev.actor)) && !(r = cli_opt("--failed", argc, argv, &i, &failed)) &&
		    !(r = cli_opt("--duration", argc, argv, &i, &dur)) &&
		    !(r = cli_opt("--signing-key", argc, argv, &i, &signing_key)))
			return cli_fail(EXIT_USAGE, "unknown option or argument %s; see 'gitops history --help'", argv[i]);
		if (r < 0)
			return EXIT_USAGE;
	}
	if (!ev.type || !ev.environment)
		return cli_fail(EXIT_USAGE, "history record needs --type and --env; see 'gitops history --help'");
	if (failed) {
		ev.has_counts = true;
		ev.failed = (unsigned)strtoul(failed, NULL, 10);
	}
	if (dur)
		ev.duration_ms = strtoll(dur, NULL, 10);
	hist *h = NULL;
	rec_workspace *ws = NULL;
	int code = open_store_verified(&h, &ws, &o);
	if (!code && signing_key && *signing_key && hist_set_signing_key(h, signing_key))
		code = cli_fail(EXIT_INPUT, "%s", gitops_error_last());
	if (code) {
		hist_free(h);
		rec_workspace_free(ws);
		return code;
	}
	if (!ev.actor || !*ev.actor)
		ev.actor = cli_actor();
	if (!ev.trigger)
		ev.trigger = cli_trigger();
	json_t *j = NULL;
	int rc = hist_record(&j, h, &ev);
	if (rc)
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
	else if (o.json)
		print_json(j);
	else
		printf("%s\n", s_(j, "id"));
	json_decref(j);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}

int cmd_history(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "show"))
		return cmd_show(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "dora"))
		return cmd_dora(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "record"))
		return cmd_record(argc - 1, argv + 1);
	return cmd_query(argc, argv);
}
