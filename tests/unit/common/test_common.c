/* Unit tests for common/: the buffer, the error state, errno's text and the file helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

static void buf_grows_and_stays_terminated(void **state)
{
	(void)state;
	gitops_buf b = GITOPS_BUF_INIT;
	assert_string_equal(gitops_buf_cstr(&b), "");
	for (int i = 0; i < 1000; i++)
		gitops_buf_printf(&b, "%d,", i);
	assert_true(b.len > 3000);
	assert_int_equal(b.ptr[b.len], '\0');
	assert_memory_equal(b.ptr, "0,1,2,", 6);
	char *s = gitops_buf_detach(&b);
	assert_null(b.ptr);
	assert_int_equal(b.len, 0);
	free(s);
	gitops_buf_free(&b);
}

static void error_prefix_keeps_code(void **state)
{
	(void)state;
	assert_int_equal(gitops_error_set(GITOPS_ENOTFOUND, "configmap %s", "x"), GITOPS_ENOTFOUND);
	assert_int_equal(gitops_error_prefix("get %s", "ns/x"), GITOPS_ENOTFOUND);
	assert_string_equal(gitops_error_last(), "get ns/x: configmap x");
	assert_string_equal(gitops_error_name(gitops_error_code()), "NotFound");
	gitops_error_clear();
	assert_string_equal(gitops_error_last(), "");
	/* Re-setting the message from itself (changing only the code) keeps the text. */
	gitops_error_set(GITOPS_EIO, "render web: kustomize not found");
	assert_int_equal(gitops_error_set(GITOPS_EINVALID, "%s", gitops_error_last()), GITOPS_EINVALID);
	assert_string_equal(gitops_error_last(), "render web: kustomize not found");
}

/* gitops_strerror words errno as strerror does (in the C locale gitops runs in), without
 * strerror's shared buffer. */
static void strerror_words_errno_as_libc_does(void **state)
{
	(void)state;
	assert_string_equal(gitops_strerror(ENOENT), "No such file or directory");
	int errs[] = {0, EACCES, EIO, ENOSPC, EEXIST, ETIMEDOUT, 4095, -3};
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		char *want = gitops_strdup(strerror(errs[i]));
		assert_string_equal(gitops_strerror(errs[i]), want);
		free(want);
	}
	assert_string_equal(gitops_strerror(4095), "Unknown error 4095");
}

static void files_round_trip_and_report_missing(void **state)
{
	(void)state;
	char dir[] = "/tmp/gitops-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = gitops_sprintf("%s/f", dir);
	assert_int_equal(gitops_write_file(path, "hello", 5, 0600), 0);
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(gitops_read_file(&b, path, 0), 0);
	assert_string_equal(b.ptr, "hello");
	gitops_buf_clear(&b);
	assert_int_equal(gitops_read_file(&b, path, 3), GITOPS_EINVALID);
	unlink(path);
	gitops_buf_clear(&b);
	assert_int_equal(gitops_read_file(&b, path, 0), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), path));
	assert_non_null(strstr(gitops_error_last(), ": No such file or directory"));
	gitops_buf_free(&b);
	free(path);
	rmdir(dir);
}

static void utf8_check_finds_the_first_bad_byte(void **state)
{
	(void)state;
	int line = 0, col = 0;
	assert_int_equal(gitops_utf8_check("a: h\xc3\xa9\n", 7, &line, &col), 0);
	assert_int_equal(gitops_utf8_check("a: 1\nb: \xff\n", 10, &line, &col), -1);
	assert_int_equal(line, 2);
	assert_int_equal(col, 4);
	assert_int_equal(gitops_utf8_check("\xc0\xaf", 2, &line, &col), -1);       /* overlong '/' */
	assert_int_equal(gitops_utf8_check("\xed\xa0\x80", 3, &line, &col), -1);   /* surrogate */
	assert_int_equal(gitops_utf8_check("\xe2\x82", 2, &line, &col), -1);       /* truncated */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buf_grows_and_stays_terminated),
		cmocka_unit_test(error_prefix_keeps_code),
		cmocka_unit_test(strerror_words_errno_as_libc_does),
		cmocka_unit_test(files_round_trip_and_report_missing),
		cmocka_unit_test(utf8_check_finds_the_first_bad_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
