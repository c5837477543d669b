/* cli: `gitops keygen --out FILE`: an approver's or a reporter's Ed25519 key pair: the private key in FILE (PEM,
 * mode 0600) and the public key line for gitops.yaml in FILE.pub. */
#include "cmd.h"
#include "history/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <sys/stat.h>

struct keygen_opts {
	const char *out;
	bool json, quiet;
};
static const struct cli_opt_spec keygen_opts[] = {
	CLI_VALUE("out", 0, "FILE", CLI_SEC_COMMAND, CLI_OPT_REQUIRED, struct keygen_opts, out,
		  "where the private key goes (its directory must exist); the public key goes to FILE.pub"),
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct keygen_opts, json, "print {privateKey, publicKeyFile, publicKey}"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct keygen_opts, quiet, "no hint on stderr"),
	CLI_END,
};
static const struct cli_command keygen_cmd = {
	"keygen", keygen_opts,
	"Makes an Ed25519 key pair with OpenSSL: the private key (PKCS#8 PEM) in FILE, mode 0600,\n"
	"and the public key, one line (ed25519:<base64>), in FILE.pub, also printed on stdout.\n"
	"Add the line to gitops.yaml under the environment's approval.approvers:\n"
	"  approval: {required: 2, approvers: [{name: alice, key: \"ed25519:...\"}]}\n"
	"or, for a reconciler or CI job whose signed sync records should count (gitops sync\n"
	"--signing-key FILE), under the environment's reporters:\n"
	"  reporters: [{name: ci-runner, key: \"ed25519:...\"}]\n"
	"Existing files are never overwritten.",
	"Exit codes: 0 written; 2 usage; 3 FILE or FILE.pub exists, or its directory does not;\n"
	"10 local failure.",
	NULL,
};

void cmd_keygen_help(void) { cli_opt_help(stdout, &keygen_cmd); }

int cmd_keygen(int argc, char **argv)
{
	struct keygen_opts o = {0};
	int parsed = cli_opt_parse(&keygen_cmd, &o, argc, argv);
	if (parsed != CLI_PARSED)
		return parsed;
	const char *out = o.out;
	bool json = o.json, quiet = o.quiet;
	/* A missing directory is the user's mistake, not a local failure: say so before OpenSSL runs. */
	char *dir = gitops_strdup(out);
	struct stat st;
	const char *d = dirname(dir);
	bool isdir = stat(d, &st) == 0 && S_ISDIR(st.st_mode);
	int code = isdir ? EXIT_OK
			 : cli_fail(EXIT_INPUT, "keygen: directory %s does not exist; create it first (mkdir -p %s)", d, d);
	free(dir);
	if (code)
		return code;
	char *pub = NULL;
	int rc = hist_keygen(&pub, out);
	if (rc)
		return cli_fail(rc == GITOPS_EEXISTS || rc == GITOPS_ENOTFOUND ? EXIT_INPUT : EXIT_INTERNAL, "%s",
				gitops_error_last());
	if (json) {
		char *pubpath = gitops_sprintf("%s.pub", out);
		json_t *j = json_pack("{s:s, s:s, s:s}", "privateKey", out, "publicKeyFile", pubpath, "publicKey", pub);
		char *s = json_dumps(j, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(j);
		free(pubpath);
	} else {
		puts(pub);
	}
	if (!quiet && !json)
		fprintf(stderr, "private key in %s (keep it; never share it); add the line above to gitops.yaml\n", out);
	free(pub);
	return EXIT_OK;
}
