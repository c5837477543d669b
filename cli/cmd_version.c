/* cli: `gitops version`: our version and the versions of the libraries we run with, as linked at
 * run time (not as compiled), so a support request shows what is really loaded. */
#include "cmd.h"
#include "../common/common.h"

#include <curl/curl.h>
#include <git2.h>
#include <jansson.h>
#include <libfyaml.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

struct version_opts {
	bool json;
};
static const struct cli_opt_spec version_opts[] = {
	CLI_SWITCH("json", 0, CLI_SEC_OUTPUT, struct version_opts, json, "print one JSON object"),
	CLI_END,
};
static const struct cli_command version_cmd = {
	"version", version_opts,
	"Prints gitops' version and the versions of libgit2, libfyaml, libcurl, OpenSSL and\n"
	"jansson it runs with (as loaded, not as compiled).",
	NULL, NULL,
};

void cmd_version_help(void) { cli_opt_help(stdout, &version_cmd); }

int cmd_version(int argc, char **argv)
{
	struct version_opts opts = {0};
	int code = cli_opt_parse(&version_cmd, &opts, argc, argv);
	if (code != CLI_PARSED)
		return code;
	bool as_json = opts.json;
	int major, minor, rev;
	git_libgit2_version(&major, &minor, &rev);
	char git_v[32];
	snprintf(git_v, sizeof(git_v), "%d.%d.%d", major, minor, rev);
	curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	const char *ssl_v = OpenSSL_version(OPENSSL_VERSION_STRING);
	const char *fy_v = fy_library_version();

	if (as_json) {
		json_t *o = json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s}}", "gitops", GITOPS_VERSION,
				      "libraries", "libgit2", git_v, "libfyaml", fy_v, "libcurl", cv->version,
				      "openssl", ssl_v, "jansson", jansson_version_str());
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
		puts(s);
		free(s);
		json_decref(o);
		return EXIT_OK;
	}
	printf("gitops %s\n", GITOPS_VERSION);
	printf("  libgit2  %s\n", git_v);
	printf("  libfyaml %s\n", fy_v);
	printf("  libcurl  %s\n", cv->version);
	printf("  openssl  %s\n", ssl_v);
	printf("  jansson  %s\n", jansson_version_str());
	return EXIT_OK;
}
