/* common: libgit2's last error translated once, here at the boundary (see common/git.h). */
#include "common/git.h"
#include "common/common.h"

#include <git2.h>

int gitops_git_fail(int gerr, int code, const char *what)
{
	const git_error *e = git_error_last();
	const char *msg = e && e->message ? e->message : "unknown libgit2 error";
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
