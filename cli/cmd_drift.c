/* cli: `gitops drift [<env>]`: objects that no longer match what gitops last applied: MODIFIED
 * (a field gitops sets was changed), DELETED (removed from the cluster), EXTRA (no longer in git,
 * still running). Compares against the revision last synced, not the branch head. */
#include "args.h"
#include "cmd.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt_spec drift_opts[] = {
	CLI_ARG("env", 0, struct cli_args, env, NULL),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct cli_args, json,
		   "a JSON array of {environment, apiVersion, kind, namespace, name, state, fields}"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct cli_args, quiet, "no progress lines, no \"never synced\" lines"),
	CLI_OPT_NO_COLOR(struct cli_args),
	CLI_OPTS_CLUSTER(struct cli_args),
	CLI_OPTS_REPO(struct cli_args),
	CLI_END,
};

static const struct cli_command drift_cmd = {
	"drift", drift_opts,
	"Lists, for one environment or all of them, the objects that drifted from the revision\n"
	"gitops last synced there: MODIFIED with the fields that differ, DELETED, EXTRA.\n"
	"Objects never synced yet are not drift (see `gitops diff`).",
	"Exit codes: 0 no drift; 1 drift found; 2 usage; 3 bad input; 4 cluster error; 5 git error.",
	NULL,
};

void cmd_drift_help(void) { cli_opt_help(stdout, &drift_cmd); }

/* One environment; appends rows or JSON. Returns 0, 1 (drift) or a library error (< 0). */
static int drift_env(rec_workspace *ws, const struct mf_environment *env, const struct cli_args *a, gitops_buf *table,
		     json_t *arr)
{
	struct rec_inventory_info info;
	int rc = rec_inventory_info(&info, ws, env);
	if (rc)
		return rc;
	if (!info.revision[0]) {
		if (!a->quiet)
			fprintf(stderr, "%s: never synced, nothing to compare\n", env->name);
		return 0;
	}
	rec_plan *plan = NULL;
	if ((rc = rec_plan_env(&plan, ws, env->name, info.revision, NULL)))
		return rc;
	int found = 0;
	for (size_t i = 0; i < rec_plan_count(plan); i++) {
		const struct rec_item *it = rec_plan_item(plan, i);
		if (it->unmanaged)
			continue; /* not this pipeline's and environment's: diff marks it, drift has none */
		drift_state s = drift_result_state(it->result);
		const char *word = s == DRIFT_MODIFIED ? "MODIFIED" : s == DRIFT_EXTRA ? "EXTRA"
				   : (s == DRIFT_MISSING && it->in_inventory) ? "DELETED" : NULL;
		if (!word)
			continue;
		found = 1;
		if (arr) {
			json_t *j;
			drift_result_to_json(&j, it->result);
			json_object_set_new(j, "state", json_string(word));
			json_object_set_new(j, "environment", json_string(env->name));
			json_object_set_new(j, "app", json_string(it->app));
			json_array_append_new(arr, j);
			continue;
		}
		const char *ns = drift_result_namespace(it->result);
		gitops_buf_printf(table, "%-8s  %-9s %-10s %s %s%s%s  ", env->name, word, it->app, drift_result_kind(it->result),
				  ns, *ns ? "/" : "", drift_result_name(it->result));
		for (size_t f = 0; f < drift_result_field_count(it->result); f++)
			gitops_buf_printf(table, "%s%s", f ? ", " : "", drift_result_field(it->result, f)->path);
		gitops_buf_putc(table, '\n');
	}
	rec_plan_free(plan);
	return found;
}

int cmd_drift(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, &drift_cmd, argc, argv);
	if (code != CLI_PARSED)
		return code;
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = cli_progress, .progress_ud = &a};
	a.quiet = a.quiet || a.json;
	rec_workspace *ws = NULL;
	int rc = rec_workspace_open(&ws, &wo);
	if (rc)
		return cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
	const struct mf_config *cfg = rec_workspace_config(ws);
	gitops_buf table = GITOPS_BUF_INIT;
	json_t *arr = a.json ? json_array() : NULL;
	int found = 0;
	code = EXIT_OK;
	for (size_t i = 0; i < cfg->n_envs; i++) {
		if (a.env && strcmp(cfg->envs[i].name, a.env))
			continue;
		rc = drift_env(ws, &cfg->envs[i], &a, &table, arr);
		if (rc < 0) {
			code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
			goto done;
		}
		found |= rc;
	}
	if (a.env && !mf_config_env(cfg, a.env)) {
		const struct mf_environment *e;
		rc = rec_workspace_env(&e, ws, a.env);
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		goto done;
	}
	if (arr) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
	} else if (found) {
		printf("%-8s  %-9s %-10s %s  %s\n", "ENV", "STATE", "APP", "OBJECT", "FIELDS");
		fputs(table.ptr, stdout);
	} else {
		puts("no drift");
	}
	code = found ? EXIT_DIFFERS : EXIT_OK;
done:
	json_decref(arr);
	gitops_buf_free(&table);
	rec_workspace_free(ws);
	return code;
}
