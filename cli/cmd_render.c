/* cli/cmd_render.c: `gitops render <env>`: prints the objects an environment would run at a
 * revision, as YAML or JSON. Argument parsing only; the work is in reconcile/ and manifests/. */
#include "args.h"
#include "cmd.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt_spec render_opts[] = {
	CLI_ARG("env", CLI_OPT_REQUIRED, struct cli_args, env, NULL),
	CLI_VALUE("app", 0, "A", CLI_SEC_COMMAND, 0, struct cli_args, app, "render only app A of the environment"),
	CLI_VALUE("revision", 0, "REV", CLI_SEC_COMMAND, 0, struct cli_args, revision,
		  "branch, tag or (short) commit SHA; default: what the environment runs: its pin after a promotion "
		  "or rollback, else the branch it tracks (an environment promoted `from` another, with nothing "
		  "promoted yet, renders the main branch)"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct cli_args, json, "print one JSON List (also for one object) instead of YAML"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct cli_args, quiet, "no progress or warning lines on stderr"),
	CLI_OPT_NO_COLOR(struct cli_args),
	CLI_OPTS_CLUSTER(struct cli_args),
	CLI_OPTS_REPO(struct cli_args),
	CLI_END,
};

static const struct cli_command render_cmd = {
	"render", render_opts,
	"Renders the objects environment <env> would run: reads gitops.yaml from the main branch,\n"
	"renders each app (plain YAML, kustomize, helm) at the revision, fills in default\n"
	"namespaces and prints the objects as YAML documents (or one JSON List with --json).\n"
	"Secret values are printed as \"***\" (their keys are shown). The cluster is only read, for\n"
	"helm's capabilities (--kubeconfig, --context).",
	"The repository is mirrored under $GITOPS_DATA_DIR (default ~/.cache/gitops), which also\n"
	"holds the render cache. helm and kustomize come from PATH or GITOPS_HELM / GITOPS_KUSTOMIZE\n"
	"and run without network, each within GITOPS_RENDER_TIMEOUT (default 60s).\n"
	"\n"
	"Exit codes: 0 rendered; 2 usage; 3 bad input (config, manifests, unknown environment or\n"
	"app, renderer failure); 5 git error (unknown revision, unreachable repository, auth);\n"
	"10 unexpected local failure.",
	NULL,
};

void cmd_render_help(void) { cli_opt_help(stdout, &render_cmd); }

static void warn(void *ud, const char *line)
{
	const struct cli_args *a = ud;
	if (!a->quiet)
		fprintf(stderr, "gitops: %s\n", line);
}

int cmd_render(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, &render_cmd, argc, argv);
	if (code != CLI_PARSED)
		return code;
	/* the cluster is read (never written) for helm's capabilities: --kubeconfig and --context count */
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = warn, .progress_ud = &a, .pins_best_effort = true};
	cli_config(&wo, a.state_repo, a.state_branch);
	wo.render_once = true;
	rec_workspace *ws = NULL;
	mf_objects *set = NULL;
	gitops_buf out = GITOPS_BUF_INIT;
	const struct mf_environment *env = NULL;
	char sha[41];
	int rc = rec_workspace_open(&ws, &wo);
	if (!rc)
		rc = rec_workspace_env(&env, ws, a.env);
	if (!rc)
		rc = rec_resolve_shown_revision(sha, ws, env, a.revision);
	if (!rc)
		rc = rec_render_env(&set, ws, env, sha, a.app);
	if (!rc) {
		mf_objects_mask_secrets(set);
		rc = a.json ? mf_objects_to_json(&out, set) : mf_objects_to_yaml(&out, set);
	}
	if (rc) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
	} else {
		fwrite(gitops_buf_cstr(&out), 1, out.len, stdout);
		code = fflush(stdout) ? cli_fail(EXIT_INTERNAL, "writing the output failed") : EXIT_OK;
	}
	gitops_buf_free(&out);
	mf_objects_free(set);
	rec_workspace_free(ws);
	return code;
}
