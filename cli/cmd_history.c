/* cli: `gitops history`: the deploy history from the state branch (filters, table or JSON),
 * `history show`, `history dora`, `history verify`, `history record`: one option table each. */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hopts {
	const char *repo, *state_repo, *state_branch;
	bool json, quiet;
};

/* The options of every history subcommand (T has a member `o`, a struct hopts). */
#define HIST_OPTS(T) \
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, T, o.json, "JSON output"), \
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, T, o.quiet, "no table header, no summary lines"), \
	CLI_OPTS_REPO_AT(T, o.), \
	CLI_END

#define TIME_HELP "30d, 12h, 90m, 45s, 2w (ago) or an RFC 3339 date/time (UTC)"

struct query_opts {
	struct hopts o;
	struct hist_filter f;
	const char *since, *until, *limit;
};
static const struct cli_opt_spec query_opts[] = {
	CLI_VALUE("env", 0, "E", CLI_SEC_COMMAND, 0, struct query_opts, f.env, "events of environment E"),
	CLI_VALUE("app", 0, "A", CLI_SEC_COMMAND, 0, struct query_opts, f.app,
		  "events of app A (also environment-wide syncs that changed it)"),
	CLI_VALUE("type", 0, "T", CLI_SEC_COMMAND, 0, struct query_opts, f.type,
		  "event type; \"promotion.\" or \"sync*\" match a family"),
	CLI_VALUE("actor", 0, "X", CLI_SEC_COMMAND, 0, struct query_opts, f.actor, "events by X"),
	CLI_VALUE("sha", 0, "S", CLI_SEC_COMMAND, 0, struct query_opts, f.sha, "commit SHA or a prefix of it"),
	CLI_VALUE("promotion", 0, "ID", CLI_SEC_COMMAND, 0, struct query_opts, f.promotion, "events of one promotion"),
	CLI_VALUE("since", 0, "T", CLI_SEC_COMMAND, 0, struct query_opts, since, "events at or after T: " TIME_HELP),
	CLI_VALUE("until", 0, "T", CLI_SEC_COMMAND, 0, struct query_opts, until, "events before T"),
	CLI_VALUE("limit", 0, "N", CLI_SEC_COMMAND, 0, struct query_opts, limit,
		  "at most N events (default 50 for the table, all with --json; 0: all)"),
	HIST_OPTS(struct query_opts),
};

struct show_opts {
	struct hopts o;
	const char *id;
};
static const struct cli_opt_spec show_opts[] = {
	CLI_ARG("id", CLI_OPT_REQUIRED, struct show_opts, id, NULL),
	HIST_OPTS(struct show_opts),
};

struct dora_opts {
	struct hopts o;
	const char *env, *since, *until;
};
static const struct cli_opt_spec dora_opts[] = {
	CLI_VALUE("env", 0, "E", CLI_SEC_COMMAND, 0, struct dora_opts, env, "one environment (default: all)"),
	CLI_VALUE("since", 0, "T", CLI_SEC_COMMAND, 0, struct dora_opts, since, "start of the window (default 30d): " TIME_HELP),
	CLI_VALUE("until", 0, "T", CLI_SEC_COMMAND, 0, struct dora_opts, until, "end of the window (default: now)"),
	HIST_OPTS(struct dora_opts),
};

struct verify_opts {
	struct hopts o;
};
static const struct cli_opt_spec verify_opts[] = {
	HIST_OPTS(struct verify_opts),
};

struct record_opts {
	struct hopts o;
	struct hist_event ev;
	const char *failed, *duration, *signing_key;
};
static const struct cli_opt_spec record_opts[] = {
	CLI_VALUE("type", 0, "T", CLI_SEC_COMMAND, CLI_OPT_REQUIRED, struct record_opts, ev.type,
		  "the event type (README \"Events\"); not promotion.*, rollback or resume"),
	CLI_VALUE("env", 0, "E", CLI_SEC_COMMAND, CLI_OPT_REQUIRED, struct record_opts, ev.environment, "the environment"),
	CLI_VALUE("sha", 0, "SHA", CLI_SEC_COMMAND, 0, struct record_opts, ev.sha, "the commit"),
	CLI_VALUE("app", 0, "A", CLI_SEC_COMMAND, 0, struct record_opts, ev.app, "the app"),
	CLI_VALUE("reason", 0, "TEXT", CLI_SEC_COMMAND, 0, struct record_opts, ev.reason, "why"),
	CLI_VALUE("trigger", 0, "manual|auto|ci|webhook", CLI_SEC_COMMAND, 0, struct record_opts, ev.trigger,
		  "what set it off (default: ci in a CI job, else manual)"),
	CLI_VALUE("actor", 0, "NAME", CLI_SEC_COMMAND, 0, struct record_opts, ev.actor,
		  "who (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)"),
	CLI_VALUE("failed", 0, "N", CLI_SEC_COMMAND, 0, struct record_opts, failed, "the count of failed objects"),
	CLI_VALUE("duration", 0, "MS", CLI_SEC_COMMAND, 0, struct record_opts, duration, "how long it took, in ms"),
	CLI_VALUE("signing-key", 0, "FILE", CLI_SEC_COMMAND, 0, struct record_opts, signing_key,
		  "sign the event with this reporter key (gitops keygen; default $GITOPS_SIGNING_KEY); see "
		  "gitops.yaml `reporters`"),
	HIST_OPTS(struct record_opts),
};

#define HIST_EXIT \
	"Exit codes: 0 ok; 2 usage; 3 bad input, unknown id, or an --env gitops.yaml does not\n" \
	"know (and no event names); 5 git error."

static const struct cli_command show_cmd = {
	"history show", show_opts, "One event; for a promotion id, the promotion and all its events.", HIST_EXIT, NULL};
static const struct cli_command dora_cmd = {
	"history dora", dora_opts,
	"DORA metrics: deployment frequency, lead time for changes (commit time to first healthy\n"
	"deploy), change failure rate, time to restore.",
	HIST_EXIT, NULL};
static const struct cli_command verify_cmd = {
	"history verify", verify_opts,
	"Checks that the chain is linear and was never rewritten, every event's schema and time\n"
	"order, every approval against the approvers of gitops.yaml then, every record signature,\n"
	"every precondition, and that every snapshot equals the replay of the events.",
	"Exit codes: 0 valid; 2 usage; 3 the state branch never existed (\"no state branch\");\n"
	"5 git error; 7 the history is invalid (the first problem and its commit are printed).",
	NULL};
static const struct cli_command record_cmd = {
	"history record", record_opts,
	"Appends an event from outside (health checks, webhooks, drift watchers); promotion,\n"
	"rollback and resume events are refused here: they have preconditions.",
	"Exit codes: 0 recorded; 2 usage; 3 bad event; 5 git error.", NULL};
static const struct cli_command *const history_forms[] = {&show_cmd, &dora_cmd, &verify_cmd, &record_cmd, NULL};
static const struct cli_command query_cmd = {
	"history", query_opts,
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
	"The options of a subcommand: gitops history <show|dora|verify|record> --help.",
	HIST_EXIT "\n"
	"verify: 7 when the history is invalid (the first problem and its commit are printed);\n"
	"3 when the state branch never existed (\"no state branch\").",
	history_forms,
};

void cmd_history_help(void) { cli_opt_help(stdout, &query_cmd); }

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
	struct query_opts q = {0};
	int parsed = cli_opt_parse(&query_cmd, &q, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	struct hopts o = q.o;
	struct hist_filter f = q.f;
	f.limit = o.json ? 0 : 50;
	if (hist_filter_parse(&f, q.since, q.until, q.limit))
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
	struct show_opts so = {0};
	int parsed = cli_opt_parse(&show_cmd, &so, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	struct hopts o = so.o;
	const char *id = so.id;
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
	struct dora_opts d0 = {.since = "30d"};
	int parsed = cli_opt_parse(&dora_cmd, &d0, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	struct hopts o = d0.o;
	const char *env = d0.env, *since = d0.since, *until = d0.until;
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
	struct verify_opts v = {0};
	int parsed = cli_opt_parse(&verify_cmd, &v, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	struct hopts o = v.o;
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
	struct record_opts r = {.ev = {.duration_ms = -1}, .signing_key = getenv("GITOPS_SIGNING_KEY")};
	int parsed = cli_opt_parse(&record_cmd, &r, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	struct hopts o = r.o;
	struct hist_event ev = r.ev;
	const char *failed = r.failed, *dur = r.duration, *signing_key = r.signing_key;
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
