/* Test support shared by the unit and integration tests (linked into every test program): JSON
 * fixtures, shell commands, unique names, the environment. Tests fail loudly when the control
 * plane is missing. */
#ifndef GITOPS_TEST_SUPPORT_H
#define GITOPS_TEST_SUPPORT_H

#include <jansson.h>
#include <stdbool.h>

#include "common/common.h"

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
/* A name unique to this process and call: "<prefix>-<pid>-<n>". Caller frees. */
char *t_unique(const char *prefix);
/* The value of an environment variable the test needs; aborts the test program when unset. */
const char *t_env(const char *name);

#endif
