/* manifests/origin.c: which repositories gitops uses when none is given. The working directory's
 * repository, unless it is a clone in which what gitops needs exists only on `origin`: a CI job's
 * detached checkout without local branches (GitLab, GitHub Actions), or an approver's clone that
 * never checked out the state branch. Then origin's URL, so the mirror fetches the real branches
 * and writes go where everyone reads them. Reentrant (libgit2 objects are local). */
#include "manifests/internal.h"

#include <git2.h>
#include <stdlib.h>
#include <string.h>

/* True when `repo` has a reference named `name`. */
static bool has_ref(git_repository *repo, const char *name)
{
	git_reference *r = NULL;
	bool ok = git_reference_lookup(&r, repo, name) == 0;
	git_reference_free(r);
	git_error_clear();
	return ok;
}

/* True when `repo` has any local branch. */
static bool has_local_branch(git_repository *repo)
{
	git_reference_iterator *it = NULL;
	git_reference *r = NULL;
	bool any = false;
	if (git_reference_iterator_glob_new(&it, repo, "refs/heads/*") == 0 && git_reference_next(&r, it) == 0)
		any = true;
	git_reference_free(r);
	git_reference_iterator_free(it);
	git_error_clear();
	return any;
}

/* Splits "scheme://user:password@host/path" into the URL without the password and the
 * credentials; URLs without a password are copied. */
static void split_userinfo(const char *url, char **clean, char **user, char **password)
{
	*user = *password = NULL;
	const char *s = strstr(url, "://");
	const char *at = s ? strchr(s + 3, '@') : NULL;
	const char *slash = s ? strchr(s + 3, '/') : NULL;
	if (!s || !at || (slash && slash < at)) {
		*clean = gitops_strdup(url);
		return;
	}
	const char *colon = memchr(s + 3, ':', (size_t)(at - (s + 3)));
	if (!colon) {
		*clean = gitops_strdup(url);
		return;
	}
	*user = gitops_strndup(s + 3, (size_t)(colon - (s + 3)));
	*password = gitops_strndup(colon + 1, (size_t)(at - colon - 1));
	*clean = gitops_sprintf("%.*s%s", (int)(s + 3 - url), url, at + 1);
}

int mf_repo_default(struct mf_repo_default *out, const char *start, const char *state_branch)
{
	memset(out, 0, sizeof(*out));
	char *path = NULL;
	int rc = mf_repo_discover(&path, start);
	if (rc)
		return rc;
	git_repository *repo = NULL;
	git_config *cfg = NULL;
	git_buf url = {0};
	/* remote.origin.url read from the configuration: git_remote_lookup would also search
	 * url.insteadOf with a regex, which leaks in libgit2 1.5 */
	if (git_repository_open(&repo, path) < 0 || git_repository_config_snapshot(&cfg, repo) < 0 ||
	    git_config_get_string_buf(&url, cfg, "remote.origin.url") < 0 || !url.ptr || !*url.ptr) {
		/* not a clone (or unreadable here: mf_repo_open will say why) */
		git_error_clear();
		out->manifests = path;
		goto done;
	}
	/* the state branch is written by pipelines and reconcilers on origin: a clone that does not
	 * hold it as a local branch (fetched or not) reads and writes it there */
	char *ref = gitops_sprintf("refs/heads/%s", state_branch ? state_branch : "gitops/state");
	bool use_origin = !has_local_branch(repo);
	/* (not over ssh: the state branch cannot be pushed there yet, a local branch is better) */
	bool state_on_origin = !has_ref(repo, ref) && (!strncmp(url.ptr, "https://", 8) || !strncmp(url.ptr, "http://", 7) ||
						      !strncmp(url.ptr, "file://", 7) || url.ptr[0] == '/');
	free(ref);
	if (use_origin || state_on_origin) {
		char *clean = NULL;
		split_userinfo(url.ptr, &clean, &out->username, &out->password);
		if (use_origin) {
			out->manifests = clean;
			free(path);
		} else {
			out->manifests = path;
			out->state = clean;
		}
	} else {
		out->manifests = path;
	}
done:
	git_buf_dispose(&url);
	git_config_free(cfg);
	git_repository_free(repo);
	return 0;
}

void mf_repo_default_clear(struct mf_repo_default *d)
{
	if (!d)
		return;
	free(d->manifests);
	free(d->state);
	free(d->username);
	if (d->password)
		memset(d->password, 0, strlen(d->password));
	free(d->password);
	memset(d, 0, sizeof(*d));
}
