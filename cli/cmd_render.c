/* cli/cmd_render.c: `gitops render <env>`: prints the objects an environment would run at a
 * revision, as YAML or JSON. Argument parsing only; the work is in reconcile/ and manifests/. */
#include "args.h"
#include "cmd.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_render_help(void)
{
	puts("usage: gitops render <env> [--app A] [--revision REV] [--repo URL|PATH] [--json]\n"
	     "\n"
	     "Renders the objects environment <env> would run: reads gitops.yaml from the main branch,\n"
	     "renders each app (plain YAML, kustomize, helm) at the revision, fills in default\n"
	     "namespaces and prints the objects as YAML documents (or one JSON List with --json).\n"
	     "Secret values are printed as \"***\" (their keys are shown).\n"
	     "\n"
	     "Options:\n"
	     "  --app A          render only app A of the environment\n"
	     "  --revision REV   branch, tag or (short) commit SHA; default: what the environment runs:\n"
	     "                   its pin after a promotion or rollback, else the branch it tracks (an\n"
	     "                   environment promoted `from` another, with nothing promoted yet, renders\n"
	     "                   the main branch)\n"
	     "  --repo URL|PATH  the manifests repository: a path, file://, https:// or ssh URL;\n"
	     "                   default: the git repository of the working directory\n"
	     "  --json           print one JSON List (also for one object) instead of YAML\n"
	     "  --quiet          no progress or warning lines on stderr\n"
	     "\n"
	     "The repository is mirrored under $GITOPS_DATA_DIR (default ~/.cache/gitops), which also\n"
	     "holds the render cache. helm and kustomize come from PATH or GITOPS_HELM / GITOPS_KUSTOMIZE\n"
	     "and run without network, each within GITOPS_RENDER_TIMEOUT (default 60s).\n"
	     "\n"
	     "Exit codes: 0 rendered; 2 usage; 3 bad input (config, manifests, unknown environment or\n"
	     "app, renderer failure); 5 git error (unknown revision, unreachable repository, auth);\n"
	     "10 unexpected local failure.");
}

static void warn(void *ud, const char *line)
{
	const struct cli_args *a = ud;
	if (!a->quiet)
		fprintf(stderr, "gitops: %s\n", line);
}

int cmd_render(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, argc, argv, ARG_APP | ARG_REVISION | ARG_JSON);
	if (code >= 0)
		return code;
	/* the cluster is read (never written) for helm's capabilities: --kubeconfig and --context count */
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = warn, .progress_ud = &a, .pins_best_effort = true};
	cli_config(&wo, a.state_repo, a.state_branch);
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
