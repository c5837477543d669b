/* manifests/internal.h: declarations shared between the module's .c files; not part of the
 * public API (that is manifests.h). */
#ifndef GITOPS_MANIFESTS_INTERNAL_H
#define GITOPS_MANIFESTS_INTERNAL_H

#include "manifests/manifests.h"

/* The sandbox a renderer runs in: new user (the caller's uid as root, every capability dropped),
 * mount, network (loopback only, down), PID, IPC and UTS namespaces; / is a private tmpfs holding
 * only /src (the host directory `root`, read-only; absent when NULL), /bin/NAME (the renderer,
 * read-only), /dev/null, and empty writable /home and /tmp. `work` is an empty host directory
 * private to the run: the tmpfs is mounted on it inside the sandbox only. */
struct mf_sandbox {
	const char *root;
	const char *work;
};
#define MF_SANDBOX_SRC "/src"

/* Runs argv[0] (absolute host path) with envp in cwd (NULL: inherit); stdout is appended to out
 * (at most max_out bytes), stderr becomes the one-line error message on a non-zero exit.
 * GITOPS_ETIMEOUT after timeout_ms (the process group is killed). The program runs in the sandbox
 * `sb` (required; cwd is a path inside it) and must be a static executable; when the sandbox
 * cannot be set up the run fails with GITOPS_EUNSUPPORTED saying why (never unconfined). */
int mf_proc_run(gitops_buf *out, char *const argv[], char *const envp[], const char *cwd,
		int timeout_ms, size_t max_out, const struct mf_sandbox *sb);
/* 0 when `path` is a statically linked 64-bit ELF executable, else GITOPS_EINVALID saying why. */
int mf_sandbox_check_binary(const char *path);

/* mf_repo_read refuses blobs larger than this (a repository is not trusted to be small). */
#define MF_REPO_MAX_BLOB ((size_t)64 * 1024 * 1024)
/* mf_repo_read with a size bound: GITOPS_EINVALID naming path:1 when the blob is larger. */
int mf_repo_read_max(gitops_buf *out, mf_repo *repo, const char *commit, const char *path, size_t max);

/* Writes the tree of `commit` into the existing empty directory `dir` (symlinks and submodules
 * are not written: see mf_repo_check_plain_tree). */
int mf_repo_checkout_into(mf_repo *r, const char *commit, const char *dir);
/* Fails with GITOPS_EINVALID naming the first symbolic link or submodule at or under `path` of
 * `commit` (neither is ever followed or silently skipped); 0 when there is none. */
int mf_repo_check_plain_tree(mf_repo *r, const char *commit, const char *path);

#endif
