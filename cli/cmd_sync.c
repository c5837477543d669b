/* cli: `gitops sync <env>`: applies what differs, prunes on request, prints a summary. */
#include "args.h"
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --quiet hides progress, never why an object failed or was skipped as not gitops'. */
static void sync_progress_line(void *ud, const char *line)
{
	const struct cli_args *a = ud;
	if (!a->quiet || rec_progress_is_failure(line))
		fprintf(stderr, "%s\n", line);
}

static const struct cli_opt_spec sync_opts[] = {
	CLI_ARG("env", CLI_OPT_REQUIRED, struct cli_args, env, NULL),
	CLI_VALUE("app", 0, "A", CLI_SEC_COMMAND, 0, struct cli_args, app, "sync one app of the environment"),
	CLI_VALUE("revision", 0, "REV", CLI_SEC_COMMAND, 0, struct cli_args, revision,
		  "branch, tag or commit (default: what the environment runs: its pin after a promotion or "
		  "rollback, else the head of the branch it tracks)"),
	CLI_SWITCH("prune", 0, CLI_SEC_COMMAND, struct cli_args, prune,
		   "delete objects gitops applied before that no app of the environment has any more (only "
		   "those in the inventory and labelled as this pipeline's and environment's); the environment's "
		   "`sync.prune: true` turns it on too. Kept: objects annotated gitops.dev/prune=disabled, "
		   "Namespaces and CRDs still holding objects gitops does not manage"),
	CLI_SWITCH("dry-run", 0, CLI_SEC_COMMAND, struct cli_args, dry_run,
		   "server-side dry run: nothing is written or deleted, inventory included"),
	CLI_SWITCH("adopt", 0, CLI_SEC_COMMAND, struct cli_args, adopt,
		   "take over existing objects that no gitops pipeline owns (also `sync: {adopt: true}`); objects "
		   "of another pipeline or environment are never taken over"),
	CLI_VALUE("signing-key", 0, "FILE", CLI_SEC_COMMAND, 0, struct cli_args, signing_key,
		  "sign the recorded sync event with this reporter key (gitops keygen; default "
		  "$GITOPS_SIGNING_KEY); see gitops.yaml `reporters`"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct cli_args, json,
		   "print the summary as JSON: environment, app, pipeline, revision, dryRun, counts {created, "
		   "updated, unchanged, pruned, failed, extra, skipped, unmanaged, adopted, kept}, failures "
		   "[{object, reason}], durationMs"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct cli_args, quiet,
		   "no progress lines; failed and unmanaged objects are still printed"),
	CLI_OPT_NO_COLOR(struct cli_args),
	CLI_OPTS_CLUSTER(struct cli_args),
	CLI_OPTS_REPO(struct cli_args),
	CLI_END,
};

static const struct cli_command sync_cmd = {
	"sync", sync_opts,
	"Renders the environment, compares it with the cluster and applies only what is missing\n"
	"or different, with server-side apply (field manager \"gitops\", forcing the fields git\n"
	"sets): Namespaces and CRDs first, then cluster-scoped, then namespaced objects, in\n"
	"parallel. Unchanged objects are not written. Every applied object is labelled\n"
	"app.kubernetes.io/managed-by=gitops, gitops.dev/pipeline, gitops.dev/environment and\n"
	"gitops.dev/app, and recorded in the inventory of the pipeline and environment (ConfigMap\n"
	"gitops-system/gitops-inventory.<pipeline>.<env>) before it is applied. An object that\n"
	"exists but is not in that inventory is skipped (exit 6) unless adopted. The sync is\n"
	"recorded in the history (sync.succeeded or sync.failed; not with --dry-run).",
	"Exit codes: 0 synced; 2 usage; 3 bad input; 4 cluster error; 5 git error;\n"
	"6 some objects failed or were skipped as not managed by gitops (the others were\n"
	"applied; each one is printed); 7 refused: the state branch does not verify, or the\n"
	"commit is not signed by the environment's commitSigners.",
	NULL,
};

void cmd_sync_help(void) { cli_opt_help(stdout, &sync_cmd); }

int cmd_sync(int argc, char **argv)
{
	struct cli_args a;
	int code = cli_parse_args(&a, &sync_cmd, argc, argv);
	if (code != CLI_PARSED)
		return code;
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = sync_progress_line, .progress_ud = &a, .deploy = true};
	wo.signing_key = a.signing_key;
	cli_config(&wo, a.state_repo, a.state_branch);
	char *signer = NULL; /* a bad key fails before anything is applied */
	if (wo.signing_key && *wo.signing_key && !a.dry_run && hist_key_public(&signer, wo.signing_key))
		return cli_fail(EXIT_INPUT, "--signing-key: %s", gitops_error_last());
	free(signer);
	rec_workspace *ws = NULL;
	rec_plan *plan = NULL;
	const struct mf_environment *env = NULL;
	struct rec_env_sync_result res = {0};
	int rc = rec_workspace_open(&ws, &wo);
	if (!rc)
		rc = rec_workspace_env(&env, ws, a.env);
	if (!rc)
		rc = rec_plan_env(&plan, ws, a.env, a.revision, a.app);
	if (rc) {
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
		goto done;
	}
	struct rec_env_sync_options so = {.sync = {.prune = a.prune || env->sync_prune, .dry_run = a.dry_run, .adopt = a.adopt},
					  .only_app = a.app, .record = true, .actor = cli_actor(), .trigger = cli_trigger()};
	rc = rec_env_sync(&res, ws, plan, &so);
	if (res.record_error)
		fprintf(stderr, "gitops: warning: the sync was not recorded in the history: %s\n", res.record_error);
	const struct rec_sync_report rep = res.rep;
	if (a.json) {
		/* `counts` as in the history's sync events; status uses `counts` for its own numbers */
		json_t *fails = json_array();
		for (size_t i = 0; i < res.n_failures; i++)
			json_array_append_new(fails, json_pack("{s:s, s:s}", "object", res.failures[i].object, "reason",
							       res.failures[i].reason));
		json_t *j = json_pack("{s:s, s:s?, s:s, s:b, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:o, s:I}", "environment",
				      a.env, "app", a.app, "revision", res.revision, "dryRun", a.dry_run, "counts",
				      "created", rep.created, "updated", rep.updated, "unchanged", rep.unchanged, "pruned",
				      rep.pruned, "failed", rep.failed, "extra", rep.extra_kept, "skipped", rep.skipped,
				      "failures", fails, "durationMs", (json_int_t)rep.ms);
		json_object_set_new(j, "pipeline", json_string(rec_plan_pipeline(plan)));
		json_t *counts = json_object_get(j, "counts");
		json_object_set_new(counts, "unmanaged", json_integer(rep.unmanaged));
		json_object_set_new(counts, "adopted", json_integer(rep.adopted));
		json_object_set_new(counts, "kept", json_integer(rep.kept));
		char *s = json_dumps(j, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(j);
	} else {
		printf("%s at %.12s%s: %u created, %u updated, %u unchanged, %u pruned, %u failed", a.env,
		       res.revision, a.dry_run ? " (dry run)" : "", rep.created, rep.updated, rep.unchanged,
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
	rec_env_sync_result_clear(&res);
	rec_plan_free(plan);
	rec_workspace_free(ws);
	return code;
}
