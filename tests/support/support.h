/* Test support shared by the unit and integration tests (linked into every test program): JSON
 * fixtures, shell commands, unique names, the environment. Tests fail loudly when the control
 * plane is missing. */
#ifndef GITOPS_TEST_SUPPORT_H
#define GITOPS_TEST_SUPPORT_H

#include <jansson.h>
#include <stdbool.h>

#include "common/common.h"

#include <stddef.h>

/* Runs a shell command; returns its exit status and, when out is non-NULL, its stdout+stderr
 * (caller frees). */
int t_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON fixture file (path as printf, relative to the repository root) parsed; fails the test
 * naming file:line when it does not parse. The caller owns it (json_decref). */
json_t *t_fixture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A history policy (struct hist_policy's configs_at) with one gitops.yaml in effect at every
 * time: `ud` is the address of the test's `struct mf_config *`, read at each call, so a test
 * may replace the config: `static const struct hist_policy policy = {t_one_config, &cfg};`. */
struct mf_config;
int t_one_config(void *ud, const struct mf_config **out, size_t max, long long ms);
/* A state store on the bare repository <dir>/<name>.git (created when new) with the data
 * directory <dir>/<data_name> and `pol` attached (NULL: none). Returns 0 or a gitops error
 * code; the caller frees *out with hist_free. */
struct hist;
struct hist_policy;
int t_hist_open(struct hist **out, const char *dir, const char *name, const char *data_name,
		const struct hist_policy *pol);
/* A new temporary directory "/tmp/gitops-<name>-XXXXXX" in dir[size]; 0, or -1 (errno set). */
int t_tmpdir(char *dir, size_t size, const char *name);
/* Removes a temporary directory tree; 0 once it is gone. */
int t_rmtree(const char *dir);
/* A name unique to this process and call: "<prefix>-<pid>-<n>". Caller frees. */
char *t_unique(const char *prefix);
/* The value of an environment variable the test needs; aborts the test program when unset. */
const char *t_env(const char *name);

#endif
