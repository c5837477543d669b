/* reconcile: the inventory: which objects gitops applied in an environment, kept in the cluster
 * as ConfigMap gitops-system/gitops-inventory-<env>. It lives beside the objects it describes so
 * pruning never depends on reaching git, a cluster rebuilt from scratch starts empty, and RBAC
 * on one namespace protects it. Prune deletes only what is both listed here and labelled. */
#include "reconcile/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INVENTORY_KEY "inventory.json"

static char *group_of(const char *api_version)
{
	const char *slash = api_version ? strchr(api_version, '/') : NULL;
	return slash ? gitops_strndup(api_version, (size_t)(slash - api_version)) : gitops_strdup("");
}

static char *make_key(const char *api_version, const char *kind, const char *ns, const char *name)
{
	char *g = group_of(api_version);
	char *k = gitops_sprintf("%s/%s/%s/%s", g, kind ? kind : "", ns ? ns : "", name ? name : "");
	free(g);
	return k;
}

char *rec_object_key(const json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata");
	return make_key(json_string_value(json_object_get(obj, "apiVersion")), json_string_value(json_object_get(obj, "kind")),
			json_string_value(json_object_get(meta, "namespace")), json_string_value(json_object_get(meta, "name")));
}

char *rec_ref_key(const json_t *ref)
{
	return make_key(json_string_value(json_object_get(ref, "apiVersion")), json_string_value(json_object_get(ref, "kind")),
			json_string_value(json_object_get(ref, "namespace")), json_string_value(json_object_get(ref, "name")));
}

int rec_inventory_load(json_t **doc, bool *exists, kube_client *c, const char *env)
{
	char *name = gitops_sprintf("gitops-inventory-%s", env);
	json_t *cm = NULL;
	int rc = kube_get(&cm, c, "v1", "ConfigMap", REC_INVENTORY_NAMESPACE, name);
	free(name);
	*exists = rc == GITOPS_OK;
	*doc = NULL;
	if (rc == GITOPS_ENOTFOUND) {
		*doc = json_pack("{s:s, s:s, s:[]}", "revision", "", "syncedAt", "", "objects");
		return GITOPS_OK;
	}
	if (rc)
		return rc;
	const char *text = json_string_value(json_object_get(json_object_get(cm, "data"), INVENTORY_KEY));
	json_error_t jerr;
	*doc = text ? json_loads(text, 0, &jerr) : NULL;
	json_decref(cm);
	if (!*doc || !json_is_array(json_object_get(*doc, "objects"))) {
		json_decref(*doc);
		*doc = NULL;
		return gitops_error_set(GITOPS_EINVALID, "ConfigMap %s/gitops-inventory-%s: %s is missing or damaged; "
					"delete the ConfigMap and sync again (nothing will be pruned on that sync)",
					REC_INVENTORY_NAMESPACE, env, INVENTORY_KEY);
	}
	return GITOPS_OK;
}

int rec_inventory_store(kube_client *c, const char *env, json_t *doc, bool exists)
{
	int rc;
	if (!exists) {
		json_t *ns = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}}", "apiVersion", "v1", "kind", "Namespace", "metadata",
				       "name", REC_INVENTORY_NAMESPACE, "labels", REC_LABEL_MANAGED_BY, "gitops");
		rc = kube_apply(NULL, NULL, c, ns, &(struct kube_apply_options){.force = true});
		json_decref(ns);
		if (rc)
			return gitops_error_prefix("inventory namespace");
	}
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(doc, "syncedAt", json_string(stamp));
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	char *name = gitops_sprintf("gitops-inventory-%s", env);
	json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
			       "metadata", "name", name, "namespace", REC_INVENTORY_NAMESPACE, "labels",
			       REC_LABEL_MANAGED_BY, "gitops", REC_LABEL_ENV, env, "data", INVENTORY_KEY, text);
	rc = kube_apply(NULL, NULL, c, cm, &(struct kube_apply_options){.force = true});
	json_decref(cm);
	free(name);
	free(text);
	return rc ? gitops_error_prefix("inventory") : GITOPS_OK;
}

int rec_inventory_info(struct rec_inventory_info *out, rec_workspace *ws, const struct mf_environment *env)
{
	memset(out, 0, sizeof(*out));
	kube_client *c;
	int rc = rec_workspace_client(&c, ws, env);
	if (rc)
		return rc;
	json_t *doc;
	bool exists;
	if ((rc = rec_inventory_load(&doc, &exists, c, env->name)))
		return rc;
	snprintf(out->revision, sizeof(out->revision), "%s", json_string_value(json_object_get(doc, "revision")) ?: "");
	snprintf(out->synced_at, sizeof(out->synced_at), "%s", json_string_value(json_object_get(doc, "syncedAt")) ?: "");
	out->objects = json_array_size(json_object_get(doc, "objects"));
	json_decref(doc);
	return GITOPS_OK;
}
