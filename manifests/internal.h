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

#endif
