/* cli: `gitops keygen --out FILE`: an approver's Ed25519 key pair: the private key in FILE (PEM,
 * mode 0600) and the public key line for gitops.yaml in FILE.pub. */
#include "cmd.h"
#include "history/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <sys/stat.h>

void cmd_keygen_help(void)
{
	puts("usage: gitops keygen --out FILE [--json] [--quiet]\n\n"
	     "Makes an Ed25519 key pair with OpenSSL: the private key (PKCS#8 PEM) in FILE, mode 0600,\n"
	     "and the public key, one line (ed25519:<base64>), in FILE.pub, also printed on stdout.\n"
	     "Add the line to gitops.yaml under the environment's approval.approvers:\n"
	     "  approval: {required: 2, approvers: [{name: alice, key: \"ed25519:...\"}]}\n"
	     "Existing files are never overwritten.\n\n"
	     "Options:\n"
	     "  --out FILE          where the private key goes (its directory must exist)\n"
	     "  --json              print {privateKey, publicKeyFile, publicKey}\n"
	     "  --quiet             no hint on stderr\n\n"
	     "Exit codes: 0 written; 2 usage; 3 FILE or FILE.pub exists, or its directory does not;\n"
	     "10 local failure.");
}

int cmd_keygen(int argc, char **argv)
{
	const char *out = NULL;
	bool json = false, quiet = false;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt("--out", argc, argv, &i, &out);
		if (r < 0)
			return EXIT_USAGE;
		if (r)
			continue;
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
			quiet = true;
		else
			return cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops keygen --help'", argv[i]);
	}
	if (!out)
		return cli_fail(EXIT_USAGE, "missing --out FILE; see 'gitops keygen --help'");
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
