/* cli: `gitops status [<env>]`: per environment, the revision it should run, the revision last
 * synced and when, whether the cluster matches, and object counts. */
#include "args.h"
#include "cmd.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_status_help(void)
{
	puts("usage: gitops status [<env>] [--json]\n\n"
	     "For each environment (or one): the revision it should run (its pin after a promotion or\n"
	     "rollback, else the head of the branch it tracks), the revision last synced and when, the sync state (Synced, OutOfSync, Never),\n"
	     "and counts of objects in sync, modified, missing and extra. The first line names the\n"
	     "pipeline (gitops.yaml's `name`, else derived from the repository's root commit).\n\n"
	     "Options:\n"
	     "  --json              a JSON array of per-environment objects\n"
	     CLI_COMMON_HELP "\n"
	     "Exit codes: 0 shown; 2 usage; 3 bad input; 4 cluster error; 5 git error.");
}

int cmd_status(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, argc, argv, ARG_JSON | ARG_ENV_OPTIONAL);
	if (code >= 0)
		return code;
	a.quiet = true; /* status prints a table; no progress lines */
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = cli_progress, .progress_ud = &a};
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
	json_t *arr = json_array();
	code = EXIT_OK;
	const char *pipeline = NULL;
	if ((rc = rec_workspace_pipeline(&pipeline, NULL, ws))) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		json_decref(arr);
		rec_workspace_free(ws);
		return code;
	}
	if (!a.json)
		printf("pipeline %s\n", pipeline);
	if (!a.json)
		printf("%-10s %-12s %-12s %-20s %-10s %s\n", "ENV", "TARGET", "SYNCED", "SYNCED AT", "STATE",
		       "IN-SYNC/MODIFIED/MISSING/EXTRA");
	for (size_t i = 0; i < cfg->n_envs; i++) {
		const struct mf_environment *env = &cfg->envs[i];
		if (only && only != env)
			continue;
		struct rec_inventory_info info;
		if ((rc = rec_inventory_info(&info, ws, env))) {
			code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
			break;
		}
		/* The target: the pin (promotion or rollback), else the tracked branch's head; an
		 * environment promoted `from` another has none until its first promotion. */
		char target[41] = "";
		rc = rec_resolve_revision(target, ws, env, NULL);
		if (rc == GITOPS_EINVALID && !env->track) {
			target[0] = '\0';
		} else if (rc) {
			code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
			break;
		}
		const char *planned = target[0] ? target : info.revision[0] ? info.revision : NULL;
		size_t counts[4] = {0, 0, 0, 0};
		const char *state = "Never";
		if (planned) {
			rec_plan *plan = NULL;
			if ((rc = rec_plan_env(&plan, ws, env->name, planned, NULL))) {
				code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
				break;
			}
			rec_plan_counts(plan, counts);
			state = !info.revision[0] ? "Never" : rec_plan_in_sync(plan) ? "Synced" : "OutOfSync";
			rec_plan_free(plan);
		}
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i}}", "environment",
						     env->name, "target", target, "synced", info.revision, "syncedAt",
						     info.synced_at, "state", state, "objects", "inSync", (int)counts[0],
						     "modified", (int)counts[1], "missing", (int)counts[2], "extra",
						     (int)counts[3]));
		json_object_set_new(json_array_get(arr, json_array_size(arr) - 1), "pipeline", json_string(pipeline));
		if (!a.json)
			printf("%-10s %-12.12s %-12.12s %-20s %-10s %zu/%zu/%zu/%zu\n", env->name, target[0] ? target : "-",
			       info.revision[0] ? info.revision : "-", info.synced_at[0] ? info.synced_at : "-", state,
			       counts[0], counts[1], counts[2], counts[3]);
	}
	if (a.json && code == EXIT_OK) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
	}
	json_decref(arr);
	rec_workspace_free(ws);
	return code;
}
