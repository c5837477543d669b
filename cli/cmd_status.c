/* cli: `gitops status [<env>]`: per environment, the revision it should run, the revision last
 * synced and when, whether the cluster matches, and object counts. */
#include "args.h"
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_status_help(void)
{
	puts("usage: gitops status [<env>] [--json]\n\n"
	     "For each environment (or one): the revision it should run (its pin after a promotion or\n"
	     "rollback, else the head of the branch it tracks), the revision last synced and when, the sync state (Synced, OutOfSync, Never),\n"
	     "and counts of objects in sync, modified, missing and extra; then, from the state branch,\n"
	     "whether it is suspended, why it is pinned, its health after the last gate, and the last\n"
	     "error gitops run met on it (recorded when it changes). A cluster that cannot be reached\n"
	     "shows as Unknown (exit 4 after the table). The first line names the pipeline\n"
	     "(gitops.yaml's `name`, else derived from the repository's root commit).\n\n"
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
	hist *h = NULL;
	if (hist_open_default(&h, NULL, NULL, a.repo))
		gitops_error_clear(); /* no state branch yet: nothing suspended, pinned or failed */
	if (!a.json)
		printf("pipeline %s\n", pipeline);
	if (!a.json)
		printf("%-10s %-12s %-12s %-20s %-10s %-9s %s\n", "ENV", "TARGET", "SYNCED", "SYNCED AT", "STATE", "OBJECTS",
		       "HEALTH");
	for (size_t i = 0; i < cfg->n_envs; i++) {
		const struct mf_environment *env = &cfg->envs[i];
		if (only && only != env)
			continue;
		json_t *st = NULL;
		if (!h || hist_env_state(&st, h, env->name))
			st = json_object();
		gitops_error_clear();
		json_t *sus = json_object_get(st, "suspended"), *derr = json_object_get(st, "daemonError");
		const char *pinned = json_string_value(json_object_get(st, "pinned"));
		const char *health = json_string_value(json_object_get(st, "health"));
		gitops_buf notes = GITOPS_BUF_INIT;
		if (sus)
			gitops_buf_printf(&notes, "suspended by %s%s%s; ", json_string_value(json_object_get(sus, "by")),
					  json_object_get(sus, "reason") ? ": " : "",
					  json_object_get(sus, "reason") ? json_string_value(json_object_get(sus, "reason")) : "");
		if (pinned)
			gitops_buf_printf(&notes, "pinned to %.12s by %s%s%s; ", pinned,
					  json_string_value(json_object_get(st, "pinReason")) ?: "?",
					  json_object_get(st, "pinnedBy") ? " by " : "",
					  json_string_value(json_object_get(st, "pinnedBy")) ?: "");
		if (derr)
			gitops_buf_printf(&notes, "gitops run: %s; ", json_string_value(json_object_get(derr, "reason")) ?: "?");
		if (notes.len >= 2)
			notes.ptr[notes.len -= 2] = '\0';
		struct rec_inventory_info info;
		if ((rc = rec_inventory_info(&info, ws, env))) {
			/* one unreachable cluster does not hide the others */
			char *why = gitops_strdup(gitops_error_last());
			code = cli_exit_for(rc);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b, s:s?, s:s?, s:o?, s:s?}", "environment", env->name,
							     "state", "Unknown", "error", why, "suspended", sus != NULL,
							     "pinned", pinned, "health", health, "pin",
							     pinned ? json_pack("{s:s?, s:s?}", "reason", json_string_value(json_object_get(st, "pinReason")), "by", json_string_value(json_object_get(st, "pinnedBy"))) : NULL,
							     "daemonError", derr ? json_string_value(json_object_get(derr, "reason")) : NULL));
			if (!a.json)
				printf("%-10s %-12s %-12s %-20s %-10s %-9s %s\n%11s%s%s%s\n", env->name, "-", "-", "-", "Unknown", "-",
				       health ? health : "-", "", why, notes.len ? "; " : "", gitops_buf_cstr(&notes));
			free(why);
			gitops_buf_free(&notes);
			json_decref(st);
			continue;
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
				gitops_buf_free(&notes);
				json_decref(st);
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
		json_t *row = json_array_get(arr, json_array_size(arr) - 1);
		json_object_set_new(row, "pipeline", json_string(pipeline));
		json_object_set_new(row, "suspended", json_boolean(sus != NULL));
		if (sus)
			json_object_set(row, "suspension", sus);
		if (pinned)
			json_object_set_new(row, "pin", json_pack("{s:s, s:s?, s:s?, s:s?}", "sha", pinned, "reason",
								  json_string_value(json_object_get(st, "pinReason")), "by",
								  json_string_value(json_object_get(st, "pinnedBy")), "at",
								  json_string_value(json_object_get(st, "pinnedAt"))));
		if (health)
			json_object_set_new(row, "health", json_string(health));
		if (derr)
			json_object_set_new(row, "daemonError", json_string(json_string_value(json_object_get(derr, "reason")) ?: ""));
		if (!a.json) {
			char cnt[64];
			snprintf(cnt, sizeof(cnt), "%zu/%zu/%zu/%zu", counts[0], counts[1], counts[2], counts[3]);
			printf("%-10s %-12.12s %-12.12s %-20s %-10s %-9s %s\n", env->name, target[0] ? target : "-",
			       info.revision[0] ? info.revision : "-", info.synced_at[0] ? info.synced_at : "-", state, cnt,
			       health ? health : "-");
			if (notes.len)
				printf("%11s%s\n", "", gitops_buf_cstr(&notes));
		}
		gitops_buf_free(&notes);
		json_decref(st);
	}
	hist_free(h);
	if (code == EXIT_CLUSTER)
		cli_fail(code, "some environment's cluster could not be read (see the Unknown rows)");
	if (a.json && (code == EXIT_OK || code == EXIT_CLUSTER)) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
	}
	json_decref(arr);
	rec_workspace_free(ws);
	return code;
}
