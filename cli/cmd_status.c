/* cli: `gitops status [<env>]`: per environment, the revision it should run, the revision last
 * synced and when, whether the cluster matches, and object counts. */
#include "args.h"
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt_spec status_opts[] = {
	CLI_ARG("env", 0, struct cli_args, env, NULL),
	CLI_SWITCH("apps", 0, CLI_SEC_COMMAND, struct cli_args, apps,
		   "a row per app under its environment: source (plain, kustomize, helm), revision, sync state, "
		   "health of its live objects, object count (JSON: \"apps\" in each environment's object)"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct cli_args, json,
		   "a JSON array of per-environment objects (see README, \"JSON output\")"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct cli_args, quiet, "accepted; status prints no progress lines anyway"),
	CLI_OPT_NO_COLOR(struct cli_args),
	CLI_OPTS_CLUSTER(struct cli_args),
	CLI_OPTS_REPO(struct cli_args),
	CLI_END,
};

static const struct cli_command status_cmd = {
	"status", status_opts,
	"For each environment (or one): the revision it should run (its pin after a promotion or\n"
	"rollback, else the head of the branch it tracks), the revision in the cluster, when it\n"
	"was last synced (from the history), the sync state (Synced, OutOfSync, Never, Unknown\n"
	"when the cluster cannot be read), counts of objects in sync, modified, missing and extra,\n"
	"and notes: why it is pinned (promotion or rollback, by whom), pending promotions, a\n"
	"failed last sync, or the error that kept it from being read; from gitops run: suspended\n"
	"(by whom, why), health degraded after the last gate, its last error. One unreachable\n"
	"environment does not hide the others. The first line names the pipeline (gitops.yaml's\n"
	"`name`, else derived from the repository's root commit).",
	"Exit codes: 0 shown; 2 usage; 3 bad input; 4 cluster error (the other environments are\n"
	"still shown); 5 git error.",
	NULL,
};

void cmd_status_help(void) { cli_opt_help(stdout, &status_cmd); }

static const char *sv(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

/* The NOTES column: why pinned, pending promotions, a failed last sync, an error. */
static void notes(gitops_buf *b, const json_t *row)
{
	const json_t *pin = json_object_get(row, "pin"), *last = json_object_get(row, "lastSync");
	if (*sv(row, "error"))
		gitops_buf_printf(b, "error: %s; ", sv(row, "error"));
	const json_t *sus = json_object_get(row, "suspension");
	if (sus)
		gitops_buf_printf(b, "suspended by %s%s%s; ", sv(sus, "by"), *sv(sus, "reason") ? ": " : "", sv(sus, "reason"));
	if (!strcmp(sv(row, "health"), "degraded"))
		gitops_buf_puts(b, "health degraded; ");
	if (*sv(row, "daemonError"))
		gitops_buf_printf(b, "gitops run: %s; ", sv(row, "daemonError"));
	if (json_is_object(pin))
		gitops_buf_printf(b, "pinned to %.12s by %s%s%s; ", sv(pin, "sha"), *sv(pin, "reason") ? sv(pin, "reason") : "pin",
				  *sv(pin, "by") ? " of " : "", sv(pin, "by"));
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(row, "pending"), i, p)
		gitops_buf_printf(b, "pending promotion %s of %.12s (%lld of %lld approvals); ", sv(p, "id"), sv(p, "sha"),
				  (long long)json_integer_value(json_object_get(p, "approvals")),
				  (long long)json_integer_value(json_object_get(p, "required")));
	if (json_is_object(last) && !strcmp(sv(last, "result"), "failed"))
		gitops_buf_printf(b, "last sync of %.12s failed; ", sv(last, "sha"));
	if (b->len >= 2)
		b->ptr[b->len -= 2] = '\0';
}

/* --apps: a row per app under its environment's. */
static void print_apps(const json_t *row)
{
	size_t i;
	json_t *app;
	json_array_foreach(json_object_get(row, "apps"), i, app) {
		char objs[32];
		snprintf(objs, sizeof(objs), "%lld", (long long)json_integer_value(json_object_get(app, "objects")));
		printf("  %-12s %-10s %-12.12s %-10s %-12s %-7s %s\n", sv(app, "app"), sv(app, "source"),
		       *sv(app, "revision") ? sv(app, "revision") : "-", sv(app, "state"),
		       *sv(app, "health") ? sv(app, "health") : "-", objs, sv(app, "healthReason"));
	}
}

int cmd_status(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, &status_cmd, argc, argv);
	if (code != CLI_PARSED)
		return code;
	a.quiet = true; /* status prints a table; no progress lines */
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = cli_progress, .progress_ud = &a, .pins_best_effort = true};
	cli_config(&wo, a.state_repo, a.state_branch);
	wo.render_once = true;
	rec_workspace *ws = NULL;
	int rc = rec_workspace_open(&ws, &wo);
	if (rc)
		return cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
	/* the history (pins, pending promotions, last syncs); status still shows the cluster without it */
	hist *h = NULL;
	if (hist_open_default(&h, wo.state_repo, wo.state_branch, a.repo)) {
		fprintf(stderr, "gitops: warning: the history cannot be read: %s\n", gitops_error_last());
		h = NULL;
	}
	json_t *arr = NULL;
	struct rec_status_options so = {.apps = a.apps};
	rc = rec_status(&arr, ws, h, a.env, &so);
	if (!arr) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		hist_free(h);
		rec_workspace_free(ws);
		return code;
	}
	/* an environment that could not be read keeps its row ("error"); the exit code says so */
	code = rc ? cli_exit_for(rc) : EXIT_OK;
	if (a.json) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
	} else {
		printf("pipeline %s\n", sv(json_array_get(arr, 0), "pipeline"));
		printf("%-10s %-12s %-12s %-24s %-10s %-31s %s\n", "ENV", "TARGET", "SYNCED", "SYNCED AT", "STATE",
		       "IN-SYNC/MODIFIED/MISSING/EXTRA", "NOTES");
		size_t i;
		json_t *row;
		json_array_foreach(arr, i, row) {
			json_t *n = json_object_get(row, "counts");
			gitops_buf nb = GITOPS_BUF_INIT;
			notes(&nb, row);
			char counts[64];
			snprintf(counts, sizeof(counts), "%lld/%lld/%lld/%lld",
				 (long long)json_integer_value(json_object_get(n, "inSync")),
				 (long long)json_integer_value(json_object_get(n, "modified")),
				 (long long)json_integer_value(json_object_get(n, "missing")),
				 (long long)json_integer_value(json_object_get(n, "extra")));
			printf("%-10s %-12.12s %-12.12s %-24s %-10s %-31s %s\n", sv(row, "environment"),
			       *sv(row, "target") ? sv(row, "target") : "-", *sv(row, "synced") ? sv(row, "synced") : "-",
			       *sv(row, "syncedAt") ? sv(row, "syncedAt") : "-", sv(row, "state"), counts, gitops_buf_cstr(&nb));
			gitops_buf_free(&nb);
			if (a.apps) {
				printf("  %-12s %-10s %-12s %-10s %-12s %-7s %s\n", "APP", "SOURCE", "REVISION", "STATE", "HEALTH",
				       "OBJECTS", "WHY");
				print_apps(row);
			}
		}
	}
	if (code)
		fprintf(stderr, "gitops: some environments could not be read (see their rows)\n");
	json_decref(arr);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}
