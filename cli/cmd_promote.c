/* cli: `gitops promote <sha> <env>`: asks for a commit to be promoted; needs git access only,
 * never the cluster. Prints the promotion's id (stdout) and what happened (stderr). */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Ctrl-C or SIGTERM during --wait ends the wait at once (the promotion stays as it is). */
static gitops_cancel *wait_cancel;
static void stop_waiting(int sig)
{
	(void)sig;
	gitops_cancel_set(wait_cancel); /* async-signal-safe */
}

struct promote_opts {
	const char *sha, *env, *repo, *state_repo, *state_branch, *timeout;
	struct hist_action act;
	bool json, wait, quiet;
};
static const struct cli_opt_spec promote_opts[] = {
	CLI_ARG("sha", CLI_OPT_REQUIRED, struct promote_opts, sha, NULL),
	CLI_ARG("env", CLI_OPT_REQUIRED, struct promote_opts, env, NULL),
	CLI_VALUE("actor", 0, "NAME", CLI_SEC_COMMAND, 0, struct promote_opts, act.actor,
		  "who asks (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)"),
	CLI_VALUE("reason", 0, "TEXT", CLI_SEC_COMMAND, 0, struct promote_opts, act.reason, "why; recorded in the event"),
	CLI_SWITCH("wait", 0, CLI_SEC_COMMAND, struct promote_opts, wait,
		   "wait until the environment ran the commit healthy (a recorded sync)"),
	CLI_VALUE("timeout", 0, "D", CLI_SEC_COMMAND, 0, struct promote_opts, timeout, "how long --wait waits (default 30m)"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct promote_opts, json, "print the promotion as JSON"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct promote_opts, quiet, "no summary on stderr (the id is still printed)"),
	CLI_OPTS_REPO(struct promote_opts),
	CLI_END,
};
static const struct cli_command promote_cmd = {
	"promote", promote_opts,
	"Promotes a commit to an environment that has an upstream (`from` in gitops.yaml). Refused\n"
	"when the commit never ran healthy (a sync with no failed object) in the upstream\n"
	"environment. Without an approval policy the environment is pinned to the commit at once\n"
	"(status applied): its next sync deploys it. With `approval.required: N` the promotion is\n"
	"pending until N distinct listed approvers signed it (gitops approve). Promoting the same\n"
	"commit twice gives the same promotion. Needs git access only, never the cluster.\n\n"
	"Prints the promotion's id on stdout (a summary on stderr); --json prints the promotion as\n"
	"a JSON object with an \"id\" key.",
	"Exit codes: 0 promoted (or pending approvals); 1 --wait timed out or was interrupted\n"
	"(Ctrl-C, SIGTERM: the promotion stays); 2 usage;\n"
	"3 unknown environment or an environment without `from`; 5 unknown SHA or git error;\n"
	"7 refused (not healthy upstream, a commit not signed by the environment's commitSigners,\n"
	"a state branch that does not verify; with --wait: rejected or superseded).",
	NULL,
};

void cmd_promote_help(void) { cli_opt_help(stdout, &promote_cmd); }

int cmd_promote(int argc, char **argv)
{
	struct promote_opts o = {.timeout = "30m"};
	int parsed = cli_opt_parse(&promote_cmd, &o, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	const char *pos[2] = {o.sha, o.env}, *repo = o.repo, *state_repo = o.state_repo, *state_branch = o.state_branch,
		   *timeout = o.timeout;
	struct hist_action act = o.act;
	bool json = o.json, wait = o.wait, quiet = o.quiet;
	repo = cli_default_repo(repo, state_branch);
	cli_action_defaults(&act);
	long long timeout_ms = 0;
	if (wait && mf_parse_duration(&timeout_ms, timeout))
		return cli_fail(EXIT_USAGE, "--timeout: %s", gitops_error_last());
	struct rec_workspace_options wo = {.repo = repo};
	cli_config(&wo, state_repo, state_branch);
	rec_workspace *ws = NULL;
	hist *h = NULL;
	json_t *p = NULL;
	const struct mf_environment *env = NULL;
	char sha[41];
	int code = EXIT_OK;
	int rc = rec_workspace_open(&ws, &wo);
	if (!rc)
		rc = rec_workspace_env(&env, ws, pos[1]);
	if (!rc && (rc = rec_resolve_revision(sha, ws, env, pos[0])))
		rc = gitops_error_set(GITOPS_EGIT, "%s", gitops_error_last());
	if (!rc)
		rc = rec_commit_trusted(ws, env, sha);
	if (!rc)
		rc = rec_workspace_history(&h, ws, state_repo, state_branch);
	bool existing = false;
	if (!rc)
		rc = hist_promote(&p, &existing, h, rec_workspace_config(ws), env->name, sha, &act);
	if (rc) {
		code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
		goto done;
	}
	/* One shape, new or existing, pending or applied: the keys a decided promotion's short
	 * record lacks are filled in from the configuration. */
	if (!json_object_get(p, "from") && env->from)
		json_object_set_new(p, "from", json_string(env->from));
	if (!json_object_get(p, "required"))
		json_object_set_new(p, "required", json_integer(env->approval_required));
	if (!json_is_array(json_object_get(p, "approvals")))
		json_object_set_new(p, "approvals", json_array());
	if (!json_object_get(p, "requestedBy")) {
		/* a decided promotion keeps a short record: who asked and when are in its first event */
		json_t *shown = NULL, *first;
		if (hist_show(&shown, h, json_string_value(json_object_get(p, "id"))) == 0 &&
		    (first = json_array_get(json_object_get(shown, "events"), 0))) {
			json_object_set(p, "requestedBy", json_object_get(first, "actor"));
			json_object_set(p, "requestedAt", json_object_get(first, "time"));
			json_t *ap = json_object_get(json_object_get(shown, "promotion"), "approvals");
			if (json_is_array(ap) && json_array_size(ap))
				json_object_set(p, "approvals", ap);
		}
		json_decref(shown);
		gitops_error_clear();
	}
	json_object_set_new(p, "existing", json_boolean(existing));
	const char *id = json_string_value(json_object_get(p, "id"));
	const char *status = json_string_value(json_object_get(p, "status"));
	if (json) {
		char *s = json_dumps(p, JSON_INDENT(2));
		puts(s);
		free(s);
	} else {
		puts(id);
	}
	if (quiet)
		; /* no summary */
	else if (!strcmp(status, "pending"))
		fprintf(stderr, "promotion %s%s: %s at %.12s is pending: %zu of %lld approvals (gitops approve %s --key FILE)\n",
			id, existing ? " (existing)" : "", env->name, sha, json_array_size(json_object_get(p, "approvals")),
			(long long)json_integer_value(json_object_get(p, "required")), id);
	else
		fprintf(stderr, "promotion %s%s: %s is pinned to %.12s; its next sync deploys it\n", id,
			existing ? " (existing)" : "", env->name, sha);
	fflush(stdout);
	if (wait) {
		struct sigaction sa = {.sa_handler = stop_waiting}, old_int, old_term;
		sigemptyset(&sa.sa_mask);
		bool handled = gitops_cancel_new(&wait_cancel) == 0;
		if (handled) {
			sigaction(SIGINT, &sa, &old_int);
			sigaction(SIGTERM, &sa, &old_term);
		}
		rc = hist_wait_deployed(h, env->name, sha, id, timeout_ms, 0, wait_cancel);
		if (handled) {
			sigaction(SIGINT, &old_int, NULL);
			sigaction(SIGTERM, &old_term, NULL);
		}
		gitops_cancel_free(wait_cancel);
		wait_cancel = NULL;
		/* rejected or superseded: refused; timed out or interrupted: not deployed yet */
		if (rc)
			code = cli_fail(rc == GITOPS_EFORBIDDEN ? EXIT_REFUSED : EXIT_DIFFERS, "%s%s", gitops_error_last(),
					rc == GITOPS_ETIMEOUT ? "" : " (interrupted; the promotion stays as it is)");
	}
done:
	json_decref(p);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}
