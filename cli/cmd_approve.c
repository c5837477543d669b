/* cli: `gitops approve <id>` and `gitops reject <id>`: sign a pending promotion with an
 * approver's Ed25519 key (or submit a signature made elsewhere) and append the decision. */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct decide_opts {
	const char *id, *key, *approver, *signature, *repo, *state_repo, *state_branch;
	struct hist_action act;
	bool json, print_signature, quiet;
};

/* approve and reject take the same options; only --reason differs (required to reject) */
#define DECIDE_OPTS(reason_help) \
	CLI_ARG("promotion-id", CLI_OPT_REQUIRED, struct decide_opts, id, NULL), \
	CLI_VALUE("key", 0, "FILE", CLI_SEC_COMMAND, 0, struct decide_opts, key, \
		  "the approver's private key (gitops keygen); its public key must be listed under the " \
		  "environment's approval.approvers in gitops.yaml"), \
	CLI_VALUE("approver", 0, "NAME", CLI_SEC_COMMAND, 0, struct decide_opts, approver, \
		  "with --signature: submit a signature made elsewhere (--print-signature) instead of signing " \
		  "here: no private key on the machine that submits"), \
	CLI_VALUE("signature", 0, "SIG", CLI_SEC_COMMAND, 0, struct decide_opts, signature, \
		  "the signature (base64) of --approver NAME"), \
	CLI_SWITCH("print-signature", 0, CLI_SEC_COMMAND, struct decide_opts, print_signature, \
		   "with --key: only print the signature (base64), append nothing"), \
	CLI_VALUE("reason", 0, "TEXT", CLI_SEC_COMMAND, 0, struct decide_opts, act.reason, reason_help), \
	CLI_VALUE("actor", 0, "NAME", CLI_SEC_COMMAND, 0, struct decide_opts, act.actor, \
		  "who submits (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)"), \
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct decide_opts, json, "print the promotion after the decision as JSON"), \
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct decide_opts, quiet, "print nothing on success (the exit code tells)"), \
	CLI_OPTS_REPO(struct decide_opts), \
	CLI_END

static const struct cli_opt_spec approve_opts[] = {DECIDE_OPTS("recorded in the event")};
static const struct cli_opt_spec reject_opts[] = {DECIDE_OPTS("why (required)")};

static const struct cli_command approve_cmd = {
	"approve", approve_opts,
	"Give --key FILE (sign here), or --approver NAME --signature SIG (a signature made elsewhere\n"
	"with --key FILE --print-signature).\n\n"
	"Signs (Ed25519) the text \"gitops-approval-v1\\napprove\\n<id>\\n<environment>\\n<sha>\\n\" and\n"
	"appends a promotion.approved event. The promotion takes effect (the environment is pinned\n"
	"to its commit) once approval.required distinct listed approvers signed. Refused: a key\n"
	"not listed for the environment, a signature that does not verify (forged), a signature\n"
	"made for another promotion (replayed), the same approver twice, a promotion that is no\n"
	"longer pending.",
	"Exit codes: 0 approved; 2 usage; 3 unknown promotion, bad key file or config; 5 git error;\n"
	"7 refused (unknown key, bad or replayed signature, duplicate, not pending).",
	NULL,
};

static const struct cli_command reject_cmd = {
	"reject", reject_opts,
	"Give --key FILE, or --approver NAME --signature SIG, and --reason TEXT.\n\n"
	"Signs \"gitops-approval-v1\\nreject\\n<id>\\n<environment>\\n<sha>\\n\" and appends a\n"
	"promotion.rejected event: the promotion is closed; the environment keeps its pin. One\n"
	"listed approver's rejection is enough.",
	"Exit codes: 0 rejected; 2 usage; 3 unknown promotion, bad key file or config; 5 git error;\n"
	"7 refused (unknown key, bad or replayed signature, duplicate, not pending).",
	NULL,
};

void cmd_approve_help(void) { cli_opt_help(stdout, &approve_cmd); }
void cmd_reject_help(void) { cli_opt_help(stdout, &reject_cmd); }

static int decide(int argc, char **argv, bool reject)
{
	struct decide_opts o = {0};
	int parsed = cli_opt_parse(reject ? &reject_cmd : &approve_cmd, &o, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	const char *id = o.id, *key = o.key, *approver = o.approver, *sig_in = o.signature, *repo = o.repo,
		   *state_repo = o.state_repo, *state_branch = o.state_branch;
	struct hist_action act = o.act;
	bool json = o.json, print_sig = o.print_signature, quiet = o.quiet;
	if (!key == !(approver && sig_in))
		return cli_fail(EXIT_USAGE, "give either --key FILE or --approver NAME --signature SIG");
	if (print_sig && !key)
		return cli_fail(EXIT_USAGE, "--print-signature needs --key");
	if (reject && !act.reason && !print_sig)
		return cli_fail(EXIT_USAGE, "gitops reject needs --reason TEXT");
	repo = cli_default_repo(repo, state_branch);
	cli_action_defaults(&act);
	const char *decision = reject ? "reject" : "approve";
	rec_workspace *ws = NULL;
	hist *h = NULL;
	json_t *p = NULL, *after = NULL;
	char *pub = NULL, *sig = NULL;
	int code = EXIT_OK, rc;
	struct rec_workspace_options wo = {.repo = repo};
	cli_config(&wo, state_repo, state_branch);
	if ((rc = rec_workspace_open(&ws, &wo)) || (rc = rec_workspace_history(&h, ws, state_repo, state_branch)) ||
	    (rc = hist_promotion_get(&p, h, id)))
		goto fail;
	const char *env = json_string_value(json_object_get(p, "environment"));
	const char *sha = json_string_value(json_object_get(p, "sha"));
	if (key) {
		if ((rc = hist_key_public(&pub, key)) || (rc = hist_sign(&sig, key, decision, id, env, sha)))
			goto fail;
		if (print_sig) {
			puts(sig);
			goto done;
		}
	} else {
		if ((rc = hist_approver_key(&pub, rec_workspace_config(ws), env, approver)))
			goto fail;
		sig = gitops_strdup(sig_in);
	}
	if ((rc = hist_decide(&after, h, rec_workspace_config(ws), id, pub, sig, reject, &act)))
		goto fail;
	if (json) {
		char *s = json_dumps(after, JSON_INDENT(2));
		puts(s);
		free(s);
	} else if (!quiet) {
		const char *status = json_string_value(json_object_get(after, "status"));
		size_t n = 0, i;
		json_t *a;
		json_array_foreach(json_object_get(after, "approvals"), i, a)
			n += !strcmp(json_string_value(json_object_get(a, "decision")), "approve");
		if (!strcmp(status, "applied"))
			printf("promotion %s approved (%zu of %lld): %s is pinned to %.12s\n", id, n,
			       (long long)json_integer_value(json_object_get(after, "required")), env, sha);
		else if (!strcmp(status, "rejected"))
			printf("promotion %s rejected: %s keeps its current revision\n", id, env);
		else
			printf("promotion %s: %zu of %lld approvals, still pending\n", id, n,
			       (long long)json_integer_value(json_object_get(after, "required")));
	}
	goto done;
fail:
	code = cli_fail(cli_hist_exit(rc), "%s", gitops_error_last());
done:
	free(pub);
	free(sig);
	json_decref(p);
	json_decref(after);
	hist_free(h);
	rec_workspace_free(ws);
	return code;
}

int cmd_approve(int argc, char **argv) { return decide(argc, argv, false); }
int cmd_reject(int argc, char **argv) { return decide(argc, argv, true); }
