/* cli: `gitops diff <env>`: what a sync would change, as a unified diff (coloured on a terminal)
 * or JSON. Exit 0 in sync, 1 different, >1 error, like `kubectl diff`. */
#include "args.h"
#include "cmd.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>

static const struct cli_opt_spec diff_opts[] = {
	CLI_ARG("env", CLI_OPT_REQUIRED, struct cli_args, env, NULL),
	CLI_VALUE("app", 0, "A", CLI_SEC_COMMAND, 0, struct cli_args, app, "one app of the environment"),
	CLI_VALUE("revision", 0, "REV", CLI_SEC_COMMAND, 0, struct cli_args, revision,
		  "branch, tag or commit (default: what the environment runs: its pin after a promotion or "
		  "rollback, else the head of the branch it tracks)"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct cli_args, json,
		   "a JSON array of {environment, app, apiVersion, kind, namespace, name, state, fields}; refused "
		   "objects have state REFUSED and an error; unmanaged objects have managed: false (and owner)"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct cli_args, quiet, "no progress lines"),
	CLI_OPT_NO_COLOR(struct cli_args),
	CLI_OPTS_CLUSTER(struct cli_args),
	CLI_OPTS_REPO(struct cli_args),
	CLI_END,
};

static const struct cli_command diff_cmd = {
	"diff", diff_opts,
	"Shows what `gitops sync <env>` would change: objects missing from the cluster, fields\n"
	"gitops sets that differ, and objects gitops applied before that git no longer has\n"
	"(pruned by `sync --prune`). Objects that exist but are not in this pipeline and\n"
	"environment's inventory are marked \"exists, not managed by gitops\" (sync skips them\n"
	"unless adopting). Only fields gitops sets are compared; Secret values are\n"
	"masked. Suspected differences are confirmed with a server-side dry run, and every object\n"
	"a sync would write is validated by one: an object the apiserver refuses is shown as an\n"
	"error with the apiserver's reason, not as a change.",
	"Exit codes: 0 in sync; 1 differences; 2 usage; 3 bad input (also: the apiserver would\n"
	"refuse an object); 4 cluster error; 5 git error.",
	NULL,
};

void cmd_diff_help(void) { cli_opt_help(stdout, &diff_cmd); }

struct refusals {
	char **msg; /* per plan item: the apiserver's reason, or NULL */
	size_t n;
};

static void on_refused(void *ud, size_t item, const char *message)
{
	struct refusals *r = ud;
	if (item < r->n && !r->msg[item])
		r->msg[item] = gitops_strdup(message);
}

int cmd_diff(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, &diff_cmd, argc, argv);
	if (code != CLI_PARSED)
		return code;
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = cli_progress, .progress_ud = &a};
	cli_config(&wo, a.state_repo, a.state_branch);
	wo.render_once = true;
	rec_workspace *ws = NULL;
	rec_plan *plan = NULL;
	struct refusals ref = {NULL, 0};
	/* a diff reads only the results: what is in sync holds no desired object */
	struct rec_plan_options po = {.revision = a.revision, .only_app = a.app, .results_only = true};
	int rc = rec_workspace_open(&ws, &wo);
	if (!rc)
		rc = rec_plan_new(&plan, ws, a.env, &po);
	if (!rc) {
		ref.n = rec_plan_count(plan);
		ref.msg = gitops_calloc(ref.n + 1, sizeof(*ref.msg));
		rc = rec_plan_validate(ws, plan, on_refused, &ref);
	}
	if (rc) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		goto done;
	}
	gitops_buf out = GITOPS_BUF_INIT;
	json_t *arr = json_array();
	size_t refused = 0;
	for (size_t i = 0; i < rec_plan_count(plan); i++) {
		const struct rec_item *it = rec_plan_item(plan, i);
		if (drift_result_state(it->result) == DRIFT_IN_SYNC && !it->unmanaged)
			continue;
		if (a.json) {
			json_t *j;
			drift_result_to_json(&j, it->result);
			json_object_set_new(j, "environment", json_string(a.env));
			json_object_set_new(j, "app", json_string(it->app));
			if (it->unmanaged) {
				json_object_set_new(j, "managed", json_false());
				if (it->owner)
					json_object_set_new(j, "owner", json_string(it->owner));
			}
			if (ref.msg[i]) {
				json_object_set_new(j, "state", json_string("REFUSED"));
				json_object_set_new(j, "error", json_string(ref.msg[i]));
			}
			json_array_append_new(arr, j);
		} else if (!ref.msg[i]) {
			if (it->unmanaged) {
				const json_t *m = json_object_get(it->live, "metadata");
				const char *ns = json_string_value(json_object_get(m, "namespace"));
				gitops_buf_printf(&out, "# %s %s%s%s: exists, not managed by gitops (%s%s)\n",
						  json_string_value(json_object_get(it->live, "kind")), ns ? ns : "", ns ? "/" : "",
						  json_string_value(json_object_get(m, "name")),
						  it->owner ? "owned by " : "sync skips it; adopt with --adopt",
						  it->owner ? it->owner : "");
			}
			drift_result_format_diff(&out, it->result, cli_color(&a) ? DRIFT_FORMAT_COLOR : 0);
		}
		if (ref.msg[i]) {
			refused++;
			cli_fail(EXIT_INPUT, "refused by the apiserver (a sync would fail): %s (%s)", ref.msg[i], it->source);
		}
	}
	if (a.json) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
	} else {
		fputs(gitops_buf_cstr(&out), stdout);
	}
	json_decref(arr);
	gitops_buf_free(&out);
	code = refused ? EXIT_INPUT : rec_plan_in_sync(plan) ? EXIT_OK : EXIT_DIFFERS;
done:
	for (size_t i = 0; i < ref.n; i++)
		free(ref.msg[i]);
	free(ref.msg);
	rec_plan_free(plan);
	rec_workspace_free(ws);
	return code;
}
