/* manifests/internal.h: declarations shared between the module's .c files; not part of the
 * public API (that is manifests.h). */
#ifndef GITOPS_MANIFESTS_INTERNAL_H
#define GITOPS_MANIFESTS_INTERNAL_H

#include "manifests/manifests.h"

/* Runs argv[0] (absolute path) with envp in cwd (NULL: inherit); stdout is appended to out
 * (at most max_out bytes), stderr becomes the one-line error message on a non-zero exit.
 * GITOPS_ETIMEOUT after timeout_ms (the process group is killed). */
int mf_proc_run(gitops_buf *out, char *const argv[], char *const envp[], const char *cwd,
		int timeout_ms, size_t max_out);

/* mf_repo_read refuses blobs larger than this (a repository is not trusted to be small). */
#define MF_REPO_MAX_BLOB ((size_t)64 * 1024 * 1024)
/* mf_repo_read with a size bound: GITOPS_EINVALID naming path:1 when the blob is larger. */
int mf_repo_read_max(gitops_buf *out, mf_repo *repo, const char *commit, const char *path, size_t max);

#endif
