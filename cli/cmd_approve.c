/* cli: `gitops approve <id>` and `gitops reject <id>`: sign a pending promotion with an
 * approver's Ed25519 key (or submit a signature made elsewhere) and append the decision. */
#include "cmd.h"
#include "history/history.h"
#include "reconcile/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECIDE_OPTIONS \
	"  --key FILE          the approver's private key (gitops keygen); its public key must be\n" \
	"                      listed under the environment's approval.approvers in gitops.yaml\n" \
	"  --approver NAME --signature SIG\n" \
	"                      submit a signature made elsewhere (--print-signature) instead of\n" \
	"                      signing here: no private key on the machine that submits\n" \
	"  --print-signature   with --key: only print the signature (base64), append nothing\n" \
	"  --actor NAME        who submits (default: $GITLAB_USER_LOGIN, $GITHUB_ACTOR, git user.name)\n" \
	"  --json              print the promotion after the decision as JSON\n" \
	"  --quiet             print nothing on success (the exit code tells)\n"

void cmd_approve_help(void)
{
	puts("usage: gitops approve <promotion-id> --key FILE [--reason TEXT] [--json]\n"
	     "       gitops approve <promotion-id> --approver NAME --signature SIG\n"
	     "       gitops approve <promotion-id> --key FILE --print-signature\n\n"
	     "Signs (Ed25519) the text \"gitops-approval-v1\\napprove\\n<id>\\n<environment>\\n<sha>\\n\" and\n"
	     "appends a promotion.approved event. The promotion takes effect (the environment is pinned\n"
	     "to its commit) once approval.required distinct listed approvers signed. Refused: a key\n"
	     "not listed for the environment, a signature that does not verify (forged), a signature\n"
	     "made for another promotion (replayed), the same approver twice, a promotion that is no\n"
	     "longer pending.\n\n"
	     "Options:\n" DECIDE_OPTIONS
	     "  --reason TEXT       recorded in the event\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 approved; 2 usage; 3 unknown promotion, bad key file or config; 5 git error;\n"
	     "7 refused (unknown key, bad or replayed signature, duplicate, not pending).");
}

void cmd_reject_help(void)
{
	puts("usage: gitops reject <promotion-id> --key FILE --reason TEXT [--json]\n"
	     "       gitops reject <promotion-id> --approver NAME --signature SIG --reason TEXT\n\n"
	     "Signs \"gitops-approval-v1\\nreject\\n<id>\\n<environment>\\n<sha>\\n\" and appends a\n"
	     "promotion.rejected event: the promotion is closed; the environment keeps its pin. One\n"
	     "listed approver's rejection is enough.\n\n"
	     "Options:\n" DECIDE_OPTIONS
	     "  --reason TEXT       why (required)\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 rejected; 2 usage; 3 unknown promotion, bad key file or config; 5 git error;\n"
	     "7 refused (unknown key, bad or replayed signature, duplicate, not pending).");
}

static int decide(int argc, char **argv, bool reject)
{
	const char *id = NULL, *key = NULL, *approver = NULL, *sig_in = NULL, *repo = NULL, *state_repo = NULL,
		   *state_branch = NULL;
	struct hist_action act = {0};
	bool json = false, print_sig = false, quiet = false;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = cli_opt("--key", argc, argv, &i, &key)) || (r = cli_opt("--approver", argc, argv, &i, &approver)) ||
		    (r = cli_opt("--signature", argc, argv, &i, &sig_in)) || (r = cli_opt("--actor", argc, argv, &i, &act.actor)) ||
		    (r = cli_opt("--reason", argc, argv, &i, &act.reason)) || (r = cli_opt("--repo", argc, argv, &i, &repo)) ||
		    (r = cli_opt("--state-repo", argc, argv, &i, &state_repo)) ||
		    (r = cli_opt("--state-branch", argc, argv, &i, &state_branch))) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
			quiet = true;
		} else if (!strcmp(argv[i], "--print-signature")) {
			print_sig = true;
		} else if (argv[i][0] == '-' || id) {
			return cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops %s --help'", argv[i], argv[0]);
		} else {
			id = argv[i];
		}
	}
	if (!id)
		return cli_fail(EXIT_USAGE, "missing <promotion-id>; see 'gitops %s --help'", argv[0]);
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
