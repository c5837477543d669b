/* cli: `gitops keygen --out FILE`: an approver's or a reporter's Ed25519 key pair: the private key in FILE (PEM,
 * mode 0600) and the public key line for gitops.yaml in FILE.pub. */
#include "cmd.h"
#include "history/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_keygen_help(void)
{
	puts("usage: gitops keygen --out FILE\n\n"
	     "Makes an Ed25519 key pair with OpenSSL: the private key (PKCS#8 PEM) in FILE, mode 0600,\n"
	     "and the public key, one line (ed25519:<base64>), in FILE.pub, also printed on stdout.\n"
	     "Add the line to gitops.yaml under the environment's approval.approvers:\n"
	     "  approval: {required: 2, approvers: [{name: alice, key: \"ed25519:...\"}]}\n"
	     "or, for a reconciler or CI job whose signed sync records should count (gitops sync\n"
	     "--signing-key FILE), under the environment's reporters:\n"
	     "  reporters: [{name: ci-runner, key: \"ed25519:...\"}]\n"
	     "Existing files are never overwritten.\n\n"
	     "Exit codes: 0 written; 2 usage; 3 FILE or FILE.pub exists; 10 local failure.");
}

int cmd_keygen(int argc, char **argv)
{
	const char *out = NULL;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt("--out", argc, argv, &i, &out);
		if (r < 0)
			return EXIT_USAGE;
		if (!r)
			return cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops keygen --help'", argv[i]);
	}
	if (!out)
		return cli_fail(EXIT_USAGE, "missing --out FILE; see 'gitops keygen --help'");
	char *pub = NULL;
	int rc = hist_keygen(&pub, out);
	if (rc)
		return cli_fail(rc == GITOPS_EEXISTS ? EXIT_INPUT : EXIT_INTERNAL, "%s", gitops_error_last());
	puts(pub);
	free(pub);
	return EXIT_OK;
}
