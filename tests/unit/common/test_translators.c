/* Unit tests for common/'s translators: the one base64 codec (Go's StdEncoding rules, which
 * the apiserver and kubectl follow), the one reading of an apiVersion's group, and the one
 * translation of libgit2's errors (gitops_git_fail, and fetch's gitops_git_fetch_error). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <git2.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "common/git.h"

/* Decodes `in`; asserts the outcome and, when it decodes, the bytes. */
static void expect_decode(const char *in, unsigned flags, const char *want, size_t want_len)
{
	unsigned char *out = (unsigned char *)"unchanged";
	size_t n = 99;
	int rc = gitops_base64_decode(&out, &n, in, strlen(in), flags);
	if (!want) {
		if (rc != -1)
			fail_msg("\"%s\" decoded, want a refusal", in);
		assert_null(out);
		assert_int_equal(n, 0);
		return;
	}
	if (rc)
		fail_msg("\"%s\" refused", in);
	assert_int_equal(n, want_len);
	assert_memory_equal(out, want, want_len);
	assert_int_equal(out[n], '\0');
	gitops_base64_free(out, n);
}

static void base64_decodes_as_go_does(void **state)
{
	expect_decode("aGVsbG8=", 0, "hello", 5);
	expect_decode("aGVsbG8h", 0, "hello!", 6);
	expect_decode("aGk=", 0, "hi", 2);
	expect_decode("aA==", 0, "h", 1);
	expect_decode("", 0, "", 0);
	expect_decode("AAE=", 0, "\0\1", 2);
	/* unpadded, '=' inside, wrong alphabet (URL-safe), blanks: refused like Go */
	expect_decode("aGVsbG8", 0, NULL, 0);
	expect_decode("aG=sbG8=", 0, NULL, 0);
	expect_decode("aGVs-G8_", 0, NULL, 0);
	expect_decode(" aGVsbG8=", 0, NULL, 0);
	expect_decode("aGVsbG8= ", 0, NULL, 0);
	expect_decode("aA===", 0, NULL, 0);
	/* line breaks only with GITOPS_BASE64_LINES (wrapped Secret data, PEM and SSH armour) */
	expect_decode("aGVs\nbG8=", 0, NULL, 0);
	expect_decode("aGVs\nbG8=\n", GITOPS_BASE64_LINES, "hello", 5);
	expect_decode("aGVs\r\nbG8=", GITOPS_BASE64_LINES, "hello", 5);
	expect_decode("aGVs bG8=", GITOPS_BASE64_LINES, NULL, 0);
}

static void base64_round_trips_every_length(void **state)
{
	unsigned char data[70];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof data; len++) {
		char *enc = gitops_base64_encode(data, len);
		assert_int_equal(strlen(enc), 4 * ((len + 2) / 3));
		unsigned char *dec;
		size_t n;
		assert_int_equal(gitops_base64_decode(&dec, &n, enc, strlen(enc), 0), 0);
		assert_int_equal(n, len);
		assert_memory_equal(dec, data, len);
		gitops_base64_free(dec, n);
		free(enc);
	}
	char *e = gitops_base64_encode("hello", 5);
	assert_string_equal(e, "aGVsbG8=");
	free(e);
}

static void api_group_of_core_named_and_empty(void **state)
{
	const char *v = NULL;
	assert_int_equal(gitops_api_group_len("apps/v1", &v), 4);
	assert_string_equal(v, "v1");
	assert_int_equal(gitops_api_group_len("v1", &v), 0);
	assert_string_equal(v, "v1");
	assert_int_equal(gitops_api_group_len(NULL, &v), 0);
	assert_string_equal(v, "");
	char *g = gitops_api_group("rbac.authorization.k8s.io/v1");
	assert_string_equal(g, "rbac.authorization.k8s.io");
	free(g);
	g = gitops_api_group("v1");
	assert_string_equal(g, "");
	free(g);
	g = gitops_api_group("monitoring.coreos.com/v1alpha1");
	assert_string_equal(g, "monitoring.coreos.com");
	free(g);
}

static void git_errors_map_once(void **state)
{
	git_libgit2_init();
	git_repository *repo = NULL;
	int g = git_repository_open_ext(&repo, "/nonexistent/gitops-unit", GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	assert_int_equal(g, GIT_ENOTFOUND);
	assert_int_equal(gitops_git_fail(g, 0, "open /nonexistent/gitops-unit"), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "open /nonexistent/gitops-unit: "));
	assert_true(strlen(gitops_error_last()) > strlen("open /nonexistent/gitops-unit: "));
	/* libgit2's own last error is consumed: a later failure never shows a stale message */
	assert_null(git_error_last() && git_error_last()->klass != GIT_ERROR_NONE ? git_error_last()->message : NULL);
	/* a code given by the caller wins; the rest of libgit2's codes are git errors */
	assert_int_equal(gitops_git_fail(GIT_ENOTFOUND, GITOPS_ENETWORK, "fetch"), GITOPS_ENETWORK);
	assert_int_equal(gitops_git_fail(GIT_EAMBIGUOUS, 0, "rev"), GITOPS_EINVALID);
	assert_int_equal(gitops_git_fail(GIT_EAUTH, 0, "fetch"), GITOPS_EUNAUTHORIZED);
	assert_int_equal(gitops_git_fail(GIT_ECERTIFICATE, 0, "fetch"), GITOPS_ETLS);
	assert_int_equal(gitops_git_fail(GIT_EUNBORNBRANCH, 0, "head"), GITOPS_EGIT);
	assert_int_equal(gitops_git_fail(-1, 0, "read"), GITOPS_EGIT);
	assert_non_null(strstr(gitops_error_last(), "read: unknown libgit2 error"));
	git_libgit2_shutdown();
}

/* Fetch's reason and code: what its callbacks learnt wins over libgit2's (stale) last error. */
static void expect_fetch(int gerr, const char *why, int attempts, int want_code, const char *want_reason)
{
	char *reason = NULL;
	assert_int_equal(gitops_git_fetch_error(&reason, gerr, why, attempts), want_code);
	assert_string_equal(reason, want_reason);
	free(reason);
}

static void git_fetch_errors_map_with_what_callbacks_learnt(void **state)
{
	git_libgit2_init();
	expect_fetch(GIT_EAUTH, "no credentials for https://example.invalid/r.git", 1, GITOPS_EUNAUTHORIZED,
		     "authentication required");
	expect_fetch(-1, "no credentials", 0, GITOPS_EUNAUTHORIZED, "authentication required");
	expect_fetch(GIT_ECERTIFICATE, "ssh host key of example.invalid is not in known_hosts", 0, GITOPS_ETLS,
		     "host key verification failed");
	expect_fetch(-1, NULL, 2, GITOPS_EUNAUTHORIZED, "authentication failed: the server refused the credentials");
	expect_fetch(GIT_EAUTH, NULL, 1, GITOPS_EUNAUTHORIZED,
		     "authentication failed: the server refused the credentials");
	/* otherwise libgit2's own message, which is consumed like gitops_git_fail's */
	git_repository *repo = NULL;
	int g = git_repository_open_ext(&repo, "/nonexistent/gitops-unit", GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	assert_int_equal(g, GIT_ENOTFOUND);
	char *reason = NULL;
	assert_int_equal(gitops_git_fetch_error(&reason, g, NULL, 0), GITOPS_ENETWORK);
	assert_non_null(strstr(reason, "/nonexistent/gitops-unit"));
	free(reason);
	assert_null(git_error_last() && git_error_last()->klass != GIT_ERROR_NONE ? git_error_last()->message : NULL);
	expect_fetch(GIT_ECERTIFICATE, NULL, 0, GITOPS_ETLS, "fetch failed");
	expect_fetch(-1, NULL, 1, GITOPS_ENETWORK, "fetch failed");
	git_libgit2_shutdown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_decodes_as_go_does),
		cmocka_unit_test(base64_round_trips_every_length),
		cmocka_unit_test(api_group_of_core_named_and_empty),
		cmocka_unit_test(git_errors_map_once),
		cmocka_unit_test(git_fetch_errors_map_with_what_callbacks_learnt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
