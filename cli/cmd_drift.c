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

/* One environment (rec_env_drift); appends table rows or JSON. Returns 0, 1 (drift) or a
 * library error (< 0). */
static int drift_env(rec_workspace *ws, const struct mf_environment *env, const struct cli_args *a, gitops_buf *table,
		     json_t *arr)
{
	json_t *found = NULL;
	bool never = false;
	int rc = rec_env_drift(&found, &never, ws, env);
	if (rc)
		return rc;
	if (never && !a->quiet)
		fprintf(stderr, "%s: never synced, nothing to compare\n", env->name);
	size_t i;
	json_t *j;
	json_array_foreach(found, i, j) {
		if (arr) {
			json_array_append(arr, j);
			continue;
		}
		const char *ns = json_string_value(json_object_get(j, "namespace"));
		gitops_buf_printf(table, "%-8s  %-9s %-10s %s %s%s%s  ", env->name, json_string_value(json_object_get(j, "state")),
				  json_string_value(json_object_get(j, "app")), json_string_value(json_object_get(j, "kind")),
				  ns ? ns : "", ns && *ns ? "/" : "", json_string_value(json_object_get(j, "name")));
		size_t f;
		json_t *fld;
		json_array_foreach(json_object_get(j, "fields"), f, fld)
			gitops_buf_printf(table, "%s%s", f ? ", " : "", json_string_value(json_object_get(fld, "path")));
		gitops_buf_putc(table, '\n');
	}
	int any = json_array_size(found) > 0;
	json_decref(found);
	return any;
}

int cmd_drift(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, &drift_cmd, argc, argv);
	if (code != CLI_PARSED)
		return code;
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = cli_progress, .progress_ud = &a};
	cli_config(&wo, a.state_repo, a.state_branch);
	wo.render_once = true;
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
