/* reconcile/validate.c: what `gitops diff` adds to a plan: the objects a sync would write, sent
 * to the apiserver as a server-side apply dry run, so an object the apiserver will refuse shows
 * as an error before the sync, not as an ordinary create. Uses the plan's public view only.
 * Thread-safety: as the workspace (one caller at a time per workspace). */
#include "reconcile/reconcile.h"

#include <stdlib.h>
#include <string.h>

/* True when the object's namespace is one the plan creates (the dry run cannot see it yet). */
static bool namespace_planned(const rec_plan *plan, const json_t *obj)
{
	const char *ns = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	for (size_t i = 0; ns && i < rec_plan_count(plan); i++) {
		const json_t *d = rec_plan_item(plan, i)->desired;
		const char *kind = json_string_value(json_object_get(d, "kind"));
		const char *name = json_string_value(json_object_get(json_object_get(d, "metadata"), "name"));
		if (kind && name && !strcmp(kind, "Namespace") && !strcmp(name, ns) &&
		    drift_result_state(rec_plan_item(plan, i)->result) == DRIFT_MISSING)
			return true;
	}
	return false;
}

int rec_plan_validate(rec_workspace *ws, const rec_plan *plan, rec_refused_fn refused, void *ud)
{
	const struct mf_environment *env = NULL;
	kube_client *c = NULL;
	int rc = rec_workspace_env(&env, ws, rec_plan_env_name(plan));
	if (!rc)
		rc = rec_workspace_client(&c, ws, env);
	if (rc)
		return rc;
	size_t n = rec_plan_count(plan), m = 0;
	json_t **objs = gitops_calloc(n + 1, sizeof(*objs));
	size_t *index = gitops_calloc(n + 1, sizeof(*index));
	for (size_t i = 0; i < n; i++) {
		const struct rec_item *it = rec_plan_item(plan, i);
		drift_state s = drift_result_state(it->result);
		if (it->desired && (s == DRIFT_MISSING || s == DRIFT_MODIFIED)) {
			objs[m] = it->desired;
			index[m++] = i;
		}
	}
	struct kube_apply_result *res = gitops_calloc(m + 1, sizeof(*res));
	struct kube_apply_options ao = {.force = true, .dry_run = true};
	kube_apply_batch(res, c, objs, m, &ao, 0, NULL, NULL);
	for (size_t k = 0; k < m; k++) {
		/* Refusals are the apiserver judging the object (Invalid, BadRequest, admission). A
		 * kind or namespace this sync would create first cannot be judged yet: not refused. */
		bool refusal = res[k].rc == GITOPS_EINVALID || res[k].rc == GITOPS_EFORBIDDEN ||
			       (res[k].rc == GITOPS_ENOTFOUND && !namespace_planned(plan, objs[k]) && res[k].error &&
				strstr(res[k].error, "namespaces \""));
		if (refusal && refused)
			refused(ud, index[k], res[k].error ? res[k].error : "refused");
		free(res[k].error);
	}
	free(res);
	free(index);
	free(objs);
	gitops_error_clear();
	return 0;
}
