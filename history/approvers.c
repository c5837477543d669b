/* history/approvers: who may decide a promotion (the approver key lookup of gitops.yaml), and the
 * wait for a promotion to be deployed (gitops promote --wait), cancellable. */
#include "history.h"

#include <stdlib.h>
#include <string.h>

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

int hist_approver_key(char **out, const struct mf_config *cfg, const char *env, const char *name)
{
	*out = NULL;
	const struct mf_environment *e = cfg && env ? mf_config_env(cfg, env) : NULL;
	for (size_t i = 0; e && i < e->n_approvers; i++)
		if (!strcmp(e->approvers[i].name, name)) {
			*out = gitops_strdup(e->approvers[i].key);
			return 0;
		}
	return gitops_error_set(GITOPS_EFORBIDDEN, "refused: %s is not an approver of %s in gitops.yaml", name,
				env ? env : "?");
}

int hist_wait_deployed(hist *h, const char *env, const char *sha, const char *promotion, long long timeout_ms,
		       long long poll_ms, gitops_cancel *cancel)
{
	long long end = gitops_now_ms() + timeout_ms;
	if (poll_ms <= 0)
		poll_ms = 2000;
	for (;;) {
		json_t *st = NULL, *p = NULL;
		if (hist_env_state(&st, h, env) == 0) {
			const char *lh = str(st, "lastHealthy");
			bool done = lh && !strcmp(lh, sha);
			json_decref(st);
			if (done) {
				gitops_error_clear();
				return 0;
			}
		}
		if (promotion && hist_promotion_get(&p, h, promotion) == 0) {
			const char *status = str(p, "status");
			if (status && (!strcmp(status, "rejected") || !strcmp(status, "superseded"))) {
				int rc = gitops_error_set(GITOPS_EFORBIDDEN, "promotion %s was %s: %s does not run %.12s",
							  promotion, status, env, sha);
				json_decref(p);
				return rc;
			}
			json_decref(p);
		}
		gitops_error_clear();
		long long now = gitops_now_ms();
		if (now >= end)
			return gitops_error_set(GITOPS_ETIMEOUT, "timed out waiting for %s to run %.12s", env, sha);
		long long ms = end - now < poll_ms ? end - now : poll_ms;
		if (gitops_cancel_sleep(cancel, ms))
			return gitops_error_set(GITOPS_ERROR, "cancelled while waiting for %s to run %.12s", env, sha);
	}
}
