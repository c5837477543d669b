/* Unit tests for history/sign.c: Ed25519 keys made by keygen, signatures bound to (decision,
 * promotion id, environment, SHA): forged, replayed and malformed signatures do not verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history/history.h"
#include "support/support.h"

#define SHA1 "0123456789abcdef0123456789abcdef01234567"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	return t_tmpdir(dir, sizeof(dir), "sign");
}

static int teardown(void **state)
{
	(void)state;
	return t_rmtree(dir);
}

static void keygen_writes_private_0600_and_public_line(void **state)
{
	(void)state;
	char *key = gitops_sprintf("%s/alice", dir), *pubf = gitops_sprintf("%s/alice.pub", dir);
	char *pub = NULL, *pub2 = NULL;
	assert_int_equal(hist_keygen(&pub, key), 0);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(gitops_read_file(&b, pubf, 0), 0);
	assert_int_equal(strncmp(b.ptr, "ed25519:", 8), 0);
	assert_int_equal(b.len, strlen(pub) + 1);
	assert_int_equal(hist_key_public(&pub2, key), 0);
	assert_string_equal(pub, pub2);
	assert_int_equal(hist_keygen(NULL, key), GITOPS_EEXISTS); /* never overwritten */
	gitops_buf_free(&b);
	free(pub);
	free(pub2);
	free(key);
	free(pubf);
}

static void signatures_bind_decision_id_env_and_sha(void **state)
{
	(void)state;
	char *ka = gitops_sprintf("%s/a", dir), *km = gitops_sprintf("%s/m", dir);
	char *pa = NULL, *pm = NULL, *sig = NULL, *msig = NULL;
	assert_int_equal(hist_keygen(&pa, ka), 0);
	assert_int_equal(hist_keygen(&pm, km), 0);
	assert_int_equal(hist_sign(&sig, ka, "approve", "p1", "prod", SHA1), 0);
	assert_int_equal(hist_verify_signature(pa, sig, "approve", "p1", "prod", SHA1), 0);
	/* replay on another promotion, environment, SHA or decision */
	assert_int_equal(hist_verify_signature(pa, sig, "approve", "p2", "prod", SHA1), GITOPS_EFORBIDDEN);
	assert_int_equal(hist_verify_signature(pa, sig, "approve", "p1", "staging", SHA1), GITOPS_EFORBIDDEN);
	assert_int_equal(hist_verify_signature(pa, sig, "approve", "p1", "prod", "1123456789abcdef0123456789abcdef01234567"), GITOPS_EFORBIDDEN);
	assert_int_equal(hist_verify_signature(pa, sig, "reject", "p1", "prod", SHA1), GITOPS_EFORBIDDEN);
	/* forged: signed by another key, presented as alice's */
	assert_int_equal(hist_sign(&msig, km, "approve", "p1", "prod", SHA1), 0);
	assert_int_equal(hist_verify_signature(pa, msig, "approve", "p1", "prod", SHA1), GITOPS_EFORBIDDEN);
	/* one flipped bit */
	sig[5] = sig[5] == 'A' ? 'B' : 'A';
	assert_int_equal(hist_verify_signature(pa, sig, "approve", "p1", "prod", SHA1), GITOPS_EFORBIDDEN);
	/* malformed */
	assert_int_equal(hist_verify_signature(pa, "not-base64!", "approve", "p1", "prod", SHA1), GITOPS_EINVALID);
	assert_int_equal(hist_verify_signature("ssh-rsa AAAA", msig, "approve", "p1", "prod", SHA1), GITOPS_EINVALID);
	char *text = hist_signed_text("approve", "p1", "prod", SHA1);
	assert_string_equal(text, "gitops-approval-v1\napprove\np1\nprod\n" SHA1 "\n");
	free(text);
	free(pa);
	free(pm);
	free(sig);
	free(msig);
	free(ka);
	free(km);
}

static void world_readable_key_is_refused(void **state)
{
	(void)state;
	char *k = gitops_sprintf("%s/loose", dir);
	char *sig = NULL;
	assert_int_equal(hist_keygen(NULL, k), 0);
	chmod(k, 0644);
	assert_int_equal(hist_sign(&sig, k, "approve", "p1", "prod", SHA1), GITOPS_EFORBIDDEN);
	assert_null(sig);
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keygen_writes_private_0600_and_public_line),
		cmocka_unit_test(signatures_bind_decision_id_env_and_sha),
		cmocka_unit_test(world_readable_key_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
