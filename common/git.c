/* common: libgit2's last error translated once, here at the boundary (see common/git.h). */
#include "common/git.h"
#include "common/common.h"

#include <git2.h>

/* libgit2's last message, or a fallback when it has none. */
static const char *last_message(const char *fallback)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : fallback;
}

int gitops_git_fail(int gerr, int code, const char *what)
{
	const char *msg = last_message("unknown libgit2 error");
	if (code == 0) {
		switch (gerr) {
		case GIT_ENOTFOUND: code = GITOPS_ENOTFOUND; break;
		case GIT_EAMBIGUOUS: code = GITOPS_EINVALID; break;
		case GIT_EAUTH: code = GITOPS_EUNAUTHORIZED; break;
		case GIT_ECERTIFICATE: code = GITOPS_ETLS; break;
		default: code = GITOPS_EGIT; break;
		}
	}
	int rc = gitops_error_set(code, "%s: %s", what, msg);
	git_error_clear();
	return rc;
}

int gitops_git_fetch_error(char **reason, int gerr, const char *why, int attempts)
{
	int code = GITOPS_ENETWORK;
	const char *msg = last_message("fetch failed");
	if (why && gerr != GIT_ECERTIFICATE) {
		code = GITOPS_EUNAUTHORIZED;
		msg = "authentication required";
	} else if (why) {
		code = GITOPS_ETLS;
		msg = "host key verification failed";
	} else if (attempts > 1 || gerr == GIT_EAUTH) {
		code = GITOPS_EUNAUTHORIZED;
		msg = "authentication failed: the server refused the credentials";
	} else if (gerr == GIT_ECERTIFICATE) {
		code = GITOPS_ETLS;
	}
	*reason = gitops_strdup(msg);
	git_error_clear();
	return code;
}
