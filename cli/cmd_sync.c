/* cli: `gitops sync <env>`: applies what differs, prunes on request, prints a summary. */
#include "args.h"
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What sync prints while it runs, and the failures it keeps for the history event. Progress
 * lines arrive one at a time (rec_progress holds a lock), already masked. */
struct sync_progress {
	const struct cli_args *a;
	struct hist_failure failures[HIST_MAX_FAILURES];
	size_t n_failures;
};

/* "failed  <Kind ns/name> (<source>): <reason>" -> object and reason. */
static void keep_failure(struct sync_progress *p, const char *line)
{
	if (p->n_failures == HIST_MAX_FAILURES)
		return;
	line += strcspn(line, " "); /* "failed  " or "skipped " */
	line += strspn(line, " ");
	const char *src = strstr(line, " ("), *why = strstr(line, "): ");
	const char *colon = strstr(line, ": ");
	bool with_source = src && why && src < why && (!colon || src < colon); /* "(file:line): " */
	size_t on = with_source ? (size_t)(src - line) : colon ? (size_t)(colon - line) : strlen(line);
	const char *reason = with_source ? why + 3 : colon ? colon + 2 : "";
	p->failures[p->n_failures].object = gitops_strndup(line, on);
	p->failures[p->n_failures].reason = gitops_strdup(reason);
	p->n_failures++;
}

/* --quiet hides progress, never why an object failed or was skipped as not gitops'. */
static void sync_progress_line(void *ud, const char *line)
{
	struct sync_progress *p = ud;
	bool failed = !strncmp(line, "failed ", 7) ||
		      (!strncmp(line, "skipped ", 8) && (strstr(line, "not managed by gitops") || strstr(line, "belongs to")));
	if (failed)
		keep_failure(p, line);
	if (failed || !p->a->quiet)
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
	struct sync_progress sp = {.a = &a};
	struct rec_workspace_options wo = {.repo = a.repo, .kubeconfig = a.kubeconfig, .context = a.context,
					   .progress = sync_progress_line, .progress_ud = &sp, .deploy = true};
	const char *apps[256];
	size_t n_apps = 0;
	const char *signing_key = getenv("GITOPS_SIGNING_KEY");
	char *signer = NULL; /* a bad key fails before anything is applied */
	if (signing_key && *signing_key && !a.dry_run && hist_key_public(&signer, signing_key))
		return cli_fail(EXIT_INPUT, "--signing-key: %s", gitops_error_last());
	free(signer);
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
	/* the apps this sync changes, for the event (history --app finds environment-wide syncs); read
	 * after rec_sync, which plans again when another sync changed the environment meanwhile */
	for (size_t i = 0; i < rec_plan_count(plan) && !a.app; i++) {
		const struct rec_item *it = rec_plan_item(plan, i);
		drift_state s = drift_result_state(it->result);
		if (s == DRIFT_IN_SYNC || (s == DRIFT_EXTRA && !so.prune) || !it->app)
			continue;
		bool seen = false;
		for (size_t k = 0; k < n_apps && !seen; k++)
			seen = !strcmp(apps[k], it->app);
		if (!seen && n_apps < sizeof(apps) / sizeof(apps[0]))
			apps[n_apps++] = gitops_strdup(it->app); /* a re-plan inside rec_sync frees the items */
	}
	if (!a.dry_run) {
		/* the deploy history (state branch): sync.succeeded / sync.failed; keep the sync's error */
		char *err = rc ? gitops_strdup(gitops_error_last()) : NULL;
		hist *h = NULL;
		int hrc = rec_workspace_history(&h, ws, NULL, NULL);
		if (!hrc && signing_key && *signing_key)
			hrc = hist_set_signing_key(h, signing_key);
		struct hist_event ev = {
			.type = rc == 0 && rep.failed == 0 ? "sync.succeeded" : "sync.failed", .environment = a.env,
			.app = a.app, .sha = rec_plan_revision(plan), .has_counts = true, .created = rep.created,
			.updated = rep.updated, .unchanged = rep.unchanged, .pruned = rep.pruned, .failed = rep.failed,
			.duration_ms = rep.ms, .reason = err, .apps = apps, .n_apps = n_apps,
			.failures = sp.failures, .n_failures = sp.n_failures};
		if (!hrc)
			hrc = hist_record_sync_event(h, a.repo, &ev);
		if (hrc)
			fprintf(stderr, "gitops: warning: the sync was not recorded in the history: %s\n", gitops_error_last());
		hist_free(h);
		if (err)
			gitops_error_set(rc, "%s", err);
		free(err);
	}
	if (a.json) {
		/* `counts` as in the history's sync events; status uses `counts` for its own numbers */
		json_t *fails = json_array();
		for (size_t i = 0; i < sp.n_failures; i++)
			json_array_append_new(fails, json_pack("{s:s, s:s}", "object", sp.failures[i].object, "reason",
							       sp.failures[i].reason));
		json_t *j = json_pack("{s:s, s:s?, s:s, s:b, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:o, s:I}", "environment",
				      a.env, "app", a.app, "revision", rec_plan_revision(plan), "dryRun", a.dry_run, "counts",
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
	for (size_t i = 0; i < sp.n_failures; i++) {
		free((char *)sp.failures[i].object);
		free((char *)sp.failures[i].reason);
	}
	for (size_t k = 0; k < n_apps; k++)
		free((char *)apps[k]);
	rec_plan_free(plan);
	rec_workspace_free(ws);
	return code;
}
