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

/* The environment's row: pin, pending promotions, last sync (history), then the cluster's view.
 * A failure reading the cluster is kept in the row ("error"); returns its exit code, else 0. */
static int status_env(json_t **row, rec_workspace *ws, hist *h, const struct mf_environment *env)
{
	json_t *st = NULL, *pending = NULL;
	if (h && hist_env_state(&st, h, env->name))
		st = NULL;
	if (h && hist_pending(&pending, h, env->name))
		pending = NULL;
	gitops_error_clear();
	json_t *last = json_object_get(st, "lastSync");
	json_t *pin = NULL;
	if (*sv(st, "pinned"))
		pin = json_pack("{s:s, s:s, s:s, s:s, s:s?}", "sha", sv(st, "pinned"), "reason", sv(st, "pinReason"), "by",
				sv(st, "pinnedBy"), "at", sv(st, "pinnedAt"), "promotion",
				json_string_value(json_object_get(st, "promotion")));
	json_t *pend = json_array();
	size_t i;
	json_t *p;
	json_array_foreach(pending, i, p)
		json_array_append_new(pend, json_pack("{s:s, s:s, s:I, s:I}", "id", sv(p, "id"), "sha", sv(p, "sha"), "approvals",
						      (json_int_t)json_array_size(json_object_get(p, "approvals")), "required",
						      json_integer_value(json_object_get(p, "required"))));
	*row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i}, s:o, s:o, s:O}", "environment", env->name,
			 "target", "", "synced", "", "syncedAt", last ? sv(last, "time") : "", "state", "Never", "counts",
			 "inSync", 0, "modified", 0, "missing", 0, "extra", 0, "pin", pin ? pin : json_null(), "pending",
			 pend, "lastSync", last ? last : json_null());
	/* what gitops run recorded: a suspension, the health after the last gate, its last error */
	json_t *sus = json_object_get(st, "suspended"), *derr = json_object_get(st, "daemonError");
	json_object_set_new(*row, "suspended", json_boolean(sus != NULL));
	if (sus)
		json_object_set(*row, "suspension", sus);
	if (*sv(st, "health"))
		json_object_set_new(*row, "health", json_string(sv(st, "health")));
	if (derr)
		json_object_set_new(*row, "daemonError", json_string(sv(derr, "reason")));
	json_decref(st);
	json_decref(pending);
	struct rec_inventory_info info;
	int rc = rec_inventory_info(&info, ws, env);
	/* The target: the pin (promotion or rollback), else the tracked branch's head; an
	 * environment promoted `from` another has none until its first promotion. */
	char target[41] = "";
	if (!rc) {
		json_object_set_new(*row, "synced", json_string(info.revision));
		rc = rec_resolve_revision(target, ws, env, NULL);
		if (rc == GITOPS_EINVALID && !env->track) {
			target[0] = '\0';
			rc = 0;
		}
	}
	const char *planned = target[0] ? target : info.revision[0] ? info.revision : NULL;
	if (!rc && planned) {
		rec_plan *plan = NULL;
		if (!(rc = rec_plan_env(&plan, ws, env->name, planned, NULL))) {
			size_t counts[4] = {0, 0, 0, 0};
			rec_plan_counts(plan, counts);
			json_object_set_new(*row, "counts", json_pack("{s:I, s:I, s:I, s:I}", "inSync", (json_int_t)counts[0],
								      "modified", (json_int_t)counts[1], "missing",
								      (json_int_t)counts[2], "extra", (json_int_t)counts[3]));
			json_object_set_new(*row, "state", json_string(!info.revision[0] ? "Never"
									: rec_plan_in_sync(plan) ? "Synced" : "OutOfSync"));
		}
		rec_plan_free(plan);
	}
	json_object_set_new(*row, "target", json_string(target));
	if (!rc)
		return 0;
	json_object_set_new(*row, "state", json_string("Unknown"));
	json_object_set_new(*row, "error", json_string(gitops_error_last()));
	return cli_exit_for(rc);
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

int cmd_status(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, &status_cmd, argc, argv);
	if (code != CLI_PARSED)
		return code;
	a.quiet = true; /* status prints a table; no progress lines */
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = cli_progress, .progress_ud = &a, .pins_best_effort = true};
	rec_workspace *ws = NULL;
	int rc = rec_workspace_open(&ws, &wo);
	if (rc)
		return cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
	const struct mf_config *cfg = rec_workspace_config(ws);
	const struct mf_environment *only = NULL;
	if (a.env && (rc = rec_workspace_env(&only, ws, a.env))) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		rec_workspace_free(ws);
		return code;
	}
	/* the history (pins, pending promotions, last syncs); status still shows the cluster without it */
	hist *h = NULL;
	if (hist_open_default(&h, NULL, NULL, a.repo)) {
		fprintf(stderr, "gitops: warning: the history cannot be read: %s\n", gitops_error_last());
		h = NULL;
	}
	json_t *arr = json_array();
	code = EXIT_OK;
	const char *pipeline = NULL;
	if ((rc = rec_workspace_pipeline(&pipeline, NULL, ws))) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		json_decref(arr);
		hist_free(h);
		rec_workspace_free(ws);
		return code;
	}
	if (!a.json)
		printf("pipeline %s\n", pipeline);
	if (!a.json)
		printf("%-10s %-12s %-12s %-24s %-10s %-31s %s\n", "ENV", "TARGET", "SYNCED", "SYNCED AT", "STATE",
		       "IN-SYNC/MODIFIED/MISSING/EXTRA", "NOTES");
	for (size_t i = 0; i < cfg->n_envs; i++) {
		const struct mf_environment *env = &cfg->envs[i];
		if (only && only != env)
			continue;
		json_t *row = NULL;
		int c = status_env(&row, ws, h, env);
		if (c && code == EXIT_OK)
			code = c;
		if (!a.json) {
			json_t *n = json_object_get(row, "counts");
			gitops_buf nb = GITOPS_BUF_INIT;
			notes(&nb, row);
			char counts[64];
			snprintf(counts, sizeof(counts), "%lld/%lld/%lld/%lld",
				 (long long)json_integer_value(json_object_get(n, "inSync")),
				 (long long)json_integer_value(json_object_get(n, "modified")),
				 (long long)json_integer_value(json_object_get(n, "missing")),
				 (long long)json_integer_value(json_object_get(n, "extra")));
			printf("%-10s %-12.12s %-12.12s %-24s %-10s %-31s %s\n", env->name,
			       *sv(row, "target") ? sv(row, "target") : "-", *sv(row, "synced") ? sv(row, "synced") : "-",
			       *sv(row, "syncedAt") ? sv(row, "syncedAt") : "-", sv(row, "state"), counts, gitops_buf_cstr(&nb));
			gitops_buf_free(&nb);
		}
		json_object_set_new(row, "pipeline", json_string(pipeline));
		json_array_append_new(arr, row);
	}
	if (a.json) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
	}
	if (code)
		fprintf(stderr, "gitops: some environments could not be read (see their rows)\n");
	json_decref(arr);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}
