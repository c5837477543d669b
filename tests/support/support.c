/* Test support for unit and integration tests: fixtures, shell commands, unique names. */
#include "support.h"
#include "history/history.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* One test case by name: GITOPS_TEST_FILTER=<pattern> (cmocka's * and ? wildcards) runs only
 * the cases whose names match, in every test program (`make test TEST=<pattern>`). Set before
 * main() runs, so no test program has to do anything. */
__attribute__((constructor)) static void t_filter_from_env(void)
{
	const char *f = getenv("GITOPS_TEST_FILTER");
	if (f && *f)
		cmocka_set_test_filter(f);
}

int t_sh(char **out, const char *fmt, ...)
{
	gitops_buf cmd = GITOPS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	gitops_buf_vprintf(&cmd, fmt, ap);
	va_end(ap);
	gitops_buf_puts(&cmd, " 2>&1");
	FILE *p = popen(cmd.ptr, "r");
	gitops_buf o = GITOPS_BUF_INIT;
	char chunk[4096];
	size_t n;
	while (p && (n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		gitops_buf_put(&o, chunk, n);
	int st = p ? pclose(p) : -1;
	gitops_buf_free(&cmd);
	if (out)
		*out = gitops_buf_detach(&o);
	gitops_buf_free(&o);
	return (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

char *t_unique(const char *prefix)
{
	static int n;
	return gitops_sprintf("%s-%ld-%d", prefix, (long)getpid(), ++n);
}

const char *t_env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr, "FAIL: %s is not set: run through `make test` (it starts the local control plane)\n", name);
		printf("[  FAILED  ] 1 test(s).\n");
		exit(1);
	}
	return v;
}

json_t *t_fixture(const char *fmt, ...)
{
	gitops_buf path = GITOPS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	gitops_buf_vprintf(&path, fmt, ap);
	va_end(ap);
	json_error_t err;
	json_t *v = json_load_file(path.ptr, 0, &err);
	if (!v)
		fail_msg("%s:%d: %s", path.ptr, err.line, err.text);
	gitops_buf_free(&path);
	return v;
}

int t_one_config(void *ud, const struct mf_config **out, size_t max, long long ms)
{
	(void)ms;
	if (!max)
		return 0;
	out[0] = *(struct mf_config *const *)ud;
	return 1;
}

int t_hist_open(struct hist **out, const char *dir, const char *name, const char *data_name,
		const struct hist_policy *pol)
{
	*out = NULL;
	int rc = t_sh(NULL, "test -d '%s/%s.git' || git init -q --bare '%s/%s.git'", dir, name, dir, name);
	if (rc)
		return gitops_error_set(GITOPS_EIO, "git init --bare %s/%s.git: exit %d", dir, name, rc);
	char *repo = gitops_sprintf("%s/%s.git", dir, name), *data = gitops_sprintf("%s/%s", dir, data_name);
	struct hist_options o = {.repo = repo, .data_dir = data};
	rc = hist_open(out, &o);
	if (!rc && pol)
		hist_set_policy(*out, pol);
	free(repo);
	free(data);
	return rc;
}

int t_tmpdir(char *dir, size_t size, const char *name)
{
	snprintf(dir, size, "/tmp/gitops-%s-XXXXXX", name);
	return mkdtemp(dir) ? 0 : -1;
}

int t_rmtree(const char *dir) { return t_sh(NULL, "rm -rf '%s'", dir); }
