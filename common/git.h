/* common: the one translation of libgit2's errors into gitops' codes and messages, used by
 * manifests/ (the repository mirror) and history/ (the state branch). Only modules that call
 * libgit2 include this header. */
#ifndef GITOPS_COMMON_GIT_H
#define GITOPS_COMMON_GIT_H

/* Sets the thread's last error to "<what>: <libgit2's last message>" and returns its code:
 * `code` when non-zero, else the one mapped from libgit2's return value `gerr`: GIT_ENOTFOUND
 * -> GITOPS_ENOTFOUND, GIT_EAMBIGUOUS -> GITOPS_EINVALID, GIT_EAUTH -> GITOPS_EUNAUTHORIZED,
 * GIT_ECERTIFICATE -> GITOPS_ETLS, anything else -> GITOPS_EGIT. libgit2's own last error is
 * cleared, so a stale message is never reported twice. Thread-safe (both last errors are
 * thread-local). */
int gitops_git_fail(int gerr, int code, const char *what);

#endif
