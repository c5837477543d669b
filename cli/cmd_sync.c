/* cli: `gitops sync <env>`: applies what differs, prunes on request, prints a summary. */
#include "args.h"
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>

void cmd_sync_help(void)
{
	puts("usage: gitops sync <env> [--app A] [--revision REV] [--prune] [--dry-run] [--adopt] [--json]\n\n"
	     "Renders the environment, compares it with the cluster and applies only what is missing\n"
	     "or different, with server-side apply (field manager \"gitops\", forcing the fields git\n"
	     "sets): Namespaces and CRDs first, then cluster-scoped, then namespaced objects, in\n"
	     "parallel. Unchanged objects are not written. Every applied object is labelled\n"
	     "app.kubernetes.io/managed-by=gitops, gitops.dev/pipeline, gitops.dev/environment and\n"
	     "gitops.dev/app, and recorded in the inventory of the pipeline and environment (ConfigMap\n"
	     "gitops-system/gitops-inventory.<pipeline>.<env>) before it is applied. An object that\n"
	     "exists but is not in that inventory is skipped (exit 6) unless adopted.\n\n"
	     "Options:\n"
	     "  --app A             sync one app of the environment\n"
	     "  --revision REV      branch, tag or commit (default: the branch the environment tracks)\n"
	     "  --prune             delete objects gitops applied before that no app of the environment\n"
	     "                      has any more (only those in the inventory and labelled as this\n"
	     "                      pipeline's and environment's); the environment's `sync.prune: true`\n"
	     "                      turns it on too. Kept: objects annotated gitops.dev/prune=disabled,\n"
	     "                      Namespaces and CRDs still holding objects gitops does not manage\n"
	     "  --dry-run           server-side dry run: nothing is written or deleted, inventory included\n"
	     "  --adopt             take over existing objects that no gitops pipeline owns (also\n"
	     "                      `sync: {adopt: true}`); objects of another pipeline or environment\n"
	     "                      are never taken over\n"
	     "  --json              print the summary as JSON\n"
	     CLI_COMMON_HELP "\n"
	     "Exit codes: 0 synced; 2 usage; 3 bad input; 4 cluster error; 5 git error;\n"
	     "6 some objects failed or were skipped as not managed by gitops (the others were\n"
	     "applied; each one is printed).");
}

int cmd_sync(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, argc, argv, ARG_APP | ARG_REVISION | ARG_PRUNE | ARG_DRY_RUN | ARG_JSON | ARG_ADOPT);
	if (code >= 0)
		return code;
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = cli_progress, .progress_ud = &a};
	rec_workspace *ws = NULL;
	rec_plan *plan = NULL;
	const struct mf_environment *env = NULL;
	int rc = rec_workspace_open(&ws, &wo);
	if (!rc)
		rc = rec_workspace_env(&env, ws, a.env);
	if (!rc)
		rc = rec_plan_env(&plan, ws, a.env, a.revision, a.app);
	if (rc) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		goto done;
	}
	struct rec_sync_options so = {.prune = a.prune || env->sync_prune, .dry_run = a.dry_run, .adopt = a.adopt};
	struct rec_sync_report rep;
	rc = rec_sync(&rep, ws, plan, &so);
	if (!a.dry_run) {
		/* the deploy history (state branch): sync.succeeded / sync.failed; keep the sync's error */
		char *err = rc ? gitops_strdup(gitops_error_last()) : NULL;
		hist *h = NULL;
		int hrc = hist_open_default(&h, NULL, NULL, a.repo);
		if (!hrc)
			hrc = hist_record_sync(h, a.repo, a.env, a.app, rec_plan_revision(plan), rc == 0, rep.created, rep.updated,
					       rep.unchanged, rep.pruned, rep.failed, rep.ms, err);
		if (hrc)
			fprintf(stderr, "gitops: warning: the sync was not recorded in the history: %s\n", gitops_error_last());
		hist_free(h);
		if (err)
			gitops_error_set(rc, "%s", err);
		free(err);
	}
	if (a.json) {
		json_t *j = json_pack("{s:s, s:s, s:b, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I}", "environment", a.env, "revision",
				      rec_plan_revision(plan), "dryRun", a.dry_run, "created", rep.created, "updated", rep.updated,
				      "unchanged", rep.unchanged, "pruned", rep.pruned, "failed", rep.failed, "extra",
				      rep.extra_kept, "skipped", rep.skipped, "durationMs", (json_int_t)rep.ms);
		char *s = json_dumps(j, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(j);
	} else {
		printf("%s at %.12s%s: %u created, %u updated, %u unchanged, %u pruned, %u failed", a.env,
		       rec_plan_revision(plan), a.dry_run ? " (dry run)" : "", rep.created, rep.updated, rep.unchanged,
		       rep.pruned, rep.failed);
		if (rep.extra_kept)
			printf(", %u extra kept (prune is off)", rep.extra_kept);
		if (rep.skipped)
			printf(", %u skipped (dry run: their Namespace or CRD does not exist yet)", rep.skipped);
		if (rep.unmanaged)
			printf(", %u skipped (exist, not managed by gitops)", rep.unmanaged);
		if (rep.adopted)
			printf(", %u adopted", rep.adopted);
		if (rep.kept)
			printf(", %u kept", rep.kept);
		if (rep.ms < 1000)
			printf(" in %lldms\n", rep.ms);
		else
			printf(" in %.1fs\n", (double)rep.ms / 1000.0);
	}
	if (rc)
		code = (rep.failed || rep.unmanaged) ? cli_fail(EXIT_PARTIAL, "%s; see the lines above", gitops_error_last())
				  : cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
	else
		code = EXIT_OK;
done:
	rec_plan_free(plan);
	rec_workspace_free(ws);
	return code;
}
