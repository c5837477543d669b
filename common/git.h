/* common: the one translation of libgit2's errors into gitops' codes and messages, used by
 * manifests/ (the repository mirror) and history/ (the state branch): the only reader of
 * git_error_last() and the only mapping of libgit2's codes to GITOPS_* codes. Only modules
 * that call libgit2 include this header. */
#ifndef GITOPS_COMMON_GIT_H
#define GITOPS_COMMON_GIT_H

/* Sets the thread's last error to "<what>: <libgit2's last message>" and returns its code:
 * `code` when non-zero, else the one mapped from libgit2's return value `gerr`: GIT_ENOTFOUND
 * -> GITOPS_ENOTFOUND, GIT_EAMBIGUOUS -> GITOPS_EINVALID, GIT_EAUTH -> GITOPS_EUNAUTHORIZED,
 * GIT_ECERTIFICATE -> GITOPS_ETLS, anything else -> GITOPS_EGIT. libgit2's own last error is
 * cleared, so a stale message is never reported twice. Thread-safe (both last errors are
 * thread-local). */
int gitops_git_fail(int gerr, int code, const char *what);

/* The translation of a failed fetch (libgit2's return value `gerr`) for a caller that words the
 * error itself, taking into account what its callbacks learnt (a failing callback leaves
 * libgit2's last error stale or generic): `why` is the callbacks' own reason (no credentials
 * for the URL, a host key not in known_hosts) or NULL, `attempts` how often the credentials
 * callback ran (more than once: the server refused what it was given). Returns the code and
 * sets *reason:
 *   why, gerr != GIT_ECERTIFICATE    -> GITOPS_EUNAUTHORIZED, "authentication required"
 *   why, gerr == GIT_ECERTIFICATE    -> GITOPS_ETLS, "host key verification failed"
 *   attempts > 1 or GIT_EAUTH        -> GITOPS_EUNAUTHORIZED, "authentication failed: the server
 *                                       refused the credentials"
 *   GIT_ECERTIFICATE                 -> GITOPS_ETLS, libgit2's last message
 *   anything else                    -> GITOPS_ENETWORK, libgit2's last message
 * The caller frees *reason. Does not set the thread's last error; libgit2's is cleared.
 * Thread-safe. */
int gitops_git_fetch_error(char **reason, int gerr, const char *why, int attempts);

#endif
