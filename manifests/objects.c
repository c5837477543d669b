/* manifests/objects.c: sets of desired objects with their sources: List flattening, required
 * fields, default namespaces for namespaced kinds, and "the same object twice" detection. */
#include "manifests/manifests.h"
#include "common/mask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct mf_object pub;
	char *app, *file, *default_ns;
	char *text;   /* a compact object's text */
	char *id_mem; /* its identity: apiVersion\0kind\0name\0namespace\0 */
};

struct mf_objects {
	struct entry *v;
	size_t n, cap;
};

int mf_objects_new(mf_objects **out)
{
	*out = gitops_calloc(1, sizeof(**out));
	return 0;
}

static void entry_free(struct entry *e)
{
	json_decref(e->pub.obj);
	free(e->app);
	free(e->file);
	free(e->default_ns);
	free(e->text);
	free(e->id_mem);
}

void mf_objects_free(mf_objects *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		entry_free(&set->v[i]);
	free(set->v);
	free(set);
}

size_t mf_objects_count(const mf_objects *set) { return set ? set->n : 0; }

const struct mf_object *mf_objects_at(const mf_objects *set, size_t i)
{
	return i < set->n ? &set->v[i].pub : NULL;
}

/* Reads the hook annotations into e (see enum mf_hook). GITOPS_EINVALID for a hook type gitops
 * does not run (Argo CD's Sync, SyncFail, PreDelete, PostDelete): refused, never ignored. */
static int read_hook(struct mf_object *e, json_t *obj, const char *file, int line)
{
	json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
	const char *argo = json_string_value(json_object_get(ann, "argocd.argoproj.io/hook"));
	const char *helm = json_string_value(json_object_get(ann, "helm.sh/hook"));
	const char *policy = NULL;
	e->hook = MF_HOOK_NONE;
	if (argo) {
		policy = json_string_value(json_object_get(ann, "argocd.argoproj.io/hook-delete-policy"));
		char *list = gitops_strdup(argo), *save = NULL;
		for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			if (!strcmp(t, "PreSync"))
				e->hook = MF_HOOK_PRE_SYNC;
			else if (!strcmp(t, "PostSync"))
				e->hook = e->hook ? e->hook : MF_HOOK_POST_SYNC;
			else if (!strcmp(t, "Skip"))
				e->hook = MF_HOOK_SKIP;
			else {
				int rc = gitops_error_set(GITOPS_EINVALID, "%s:%d: annotation argocd.argoproj.io/hook: %s hooks "
							  "are not supported (PreSync, PostSync and Skip are)", file, line, t);
				free(list);
				return rc;
			}
			if (e->hook == MF_HOOK_SKIP)
				break;
		}
		free(list);
	} else if (helm) {
		policy = json_string_value(json_object_get(ann, "helm.sh/hook-delete-policy"));
		bool pre = false, post = false, other = false;
		char *list = gitops_strdup(helm), *save = NULL;
		for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			if (!strcmp(t, "pre-install") || !strcmp(t, "pre-upgrade"))
				pre = true;
			else if (!strcmp(t, "post-install") || !strcmp(t, "post-upgrade"))
				post = true;
			else if (strcmp(t, "crd-install")) /* helm 2's crd-install: an ordinary object */
				other = true;
		}
		free(list);
		e->hook = pre ? MF_HOOK_PRE_SYNC : post ? MF_HOOK_POST_SYNC : other ? MF_HOOK_SKIP : MF_HOOK_NONE;
	}
	if (!e->hook)
		return 0;
	const char *w = json_string_value(json_object_get(ann, argo ? "argocd.argoproj.io/sync-wave" : "helm.sh/hook-weight"));
	e->hook_weight = w ? atoi(w) : 0;
	e->hook_delete = 0;
	if (policy) {
		char *list = gitops_strdup(policy), *save = NULL;
		for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			if (!strcmp(t, "before-hook-creation") || !strcmp(t, "BeforeHookCreation"))
				e->hook_delete |= MF_HOOK_DELETE_BEFORE_CREATION;
			else if (!strcmp(t, "hook-succeeded") || !strcmp(t, "HookSucceeded"))
				e->hook_delete |= MF_HOOK_DELETE_SUCCEEDED;
			else if (!strcmp(t, "hook-failed") || !strcmp(t, "HookFailed"))
				e->hook_delete |= MF_HOOK_DELETE_FAILED;
		}
		free(list);
	}
	if (!e->hook_delete)
		e->hook_delete = MF_HOOK_DELETE_BEFORE_CREATION;
	return 0;
}

static struct entry *push_entry(mf_objects *set, const char *file, int line, const char *app,
				const char *default_ns)
{
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 16;
		set->v = gitops_realloc(set->v, set->cap * sizeof(*set->v));
	}
	struct entry *e = &set->v[set->n++];
	memset(e, 0, sizeof(*e));
	e->app = gitops_strdup(app ? app : "");
	e->file = gitops_strdup(file ? file : "<input>");
	e->default_ns = default_ns && *default_ns ? gitops_strdup(default_ns) : NULL;
	e->pub.app = e->app;
	e->pub.file = e->file;
	e->pub.line = line;
	e->pub.default_ns = e->default_ns;
	return e;
}

void mf_objects_add_compact(mf_objects *set, char *text, size_t len, const char *api_version, const char *kind,
			    const char *namespace_, const char *name, const char *file, int line, const char *app,
			    const char *default_ns)
{
	struct entry *e = push_entry(set, file, line, app, default_ns);
	size_t la = strlen(api_version), lk = strlen(kind), ln = strlen(name), ls = namespace_ ? strlen(namespace_) : 0;
	char *m = gitops_malloc(la + lk + ln + ls + 4);
	memcpy(m, api_version, la + 1);
	memcpy(m + la + 1, kind, lk + 1);
	memcpy(m + la + lk + 2, name, ln + 1);
	if (namespace_)
		memcpy(m + la + lk + ln + 3, namespace_, ls + 1);
	e->id_mem = m;
	e->pub.api_version = m;
	e->pub.kind = m + la + 1;
	e->pub.name = m + la + lk + 2;
	e->pub.namespace_ = namespace_ ? m + la + lk + ln + 3 : NULL;
	e->pub.text_ns = e->pub.namespace_; /* resolving changes namespace_ only */
	e->text = text;
	e->pub.text = text;
	e->pub.text_len = len;
}

char *mf_objects_take_text(mf_objects *set, size_t i, size_t *len)
{
	if (i >= set->n || !set->v[i].text)
		return NULL;
	struct entry *e = &set->v[i];
	char *t = e->text;
	*len = e->pub.text_len;
	e->text = NULL;
	e->pub.text = NULL;
	e->pub.text_len = 0;
	return t;
}

static const char *str_field(json_t *o, const char *k);

json_t *mf_compact_parse(const char *text, size_t len, const char *api_version, const char *kind,
			 const char *namespace_, const char *name, const char *text_ns, const char *source)
{
	json_t *o = json_loadb(text, len, 0, NULL);
	json_t *md = json_object_get(o, "metadata");
	const char *av = str_field(o, "apiVersion"), *k = str_field(o, "kind"), *n = str_field(md, "name");
	const char *tn = json_string_value(json_object_get(md, "namespace"));
	/* an entry that does not hold what its identity says would be applied, or pruned, as
	 * another object than the one planned: refused. So is a hook (read as a render reads it:
	 * an annotation that makes no hook, such as helm.sh/hook: crd-install, is no hook) */
	struct mf_object h = {0};
	if (!json_is_object(md) || !av || !k || !n || strcmp(av, api_version) || strcmp(k, kind) || strcmp(n, name) ||
	    !tn != !text_ns || (tn && strcmp(tn, text_ns)) || read_hook(&h, o, source ? source : "render cache", 0) ||
	    h.hook != MF_HOOK_NONE) {
		json_decref(o);
		gitops_error_set(GITOPS_EINVALID, "%s: %s %s: the render cache entry is damaged (remove the render-cache "
				 "directory of the data directory and run again)", source ? source : "render cache", kind, name);
		return NULL;
	}
	if (namespace_)
		json_object_set_new(md, "namespace", json_string(namespace_));
	else
		json_object_del(md, "namespace");
	return o;
}

json_t *mf_object_parse(const struct mf_object *o)
{
	if (o->obj)
		return json_incref(o->obj);
	if (!o->text) {
		gitops_error_set(GITOPS_EINVALID, "%s:%d: %s %s: its text was taken", o->file, o->line, o->kind, o->name);
		return NULL;
	}
	char *src = gitops_sprintf("%s:%d", o->file, o->line);
	json_t *r = mf_compact_parse(o->text, o->text_len, o->api_version, o->kind, o->namespace_, o->name, o->text_ns, src);
	free(src);
	return r;
}

static void push(mf_objects *set, json_t *obj, const char *file, int line, const char *app,
		 const char *default_ns)
{
	struct entry *e = push_entry(set, file, line, app, default_ns);
	e->pub.obj = json_incref(obj);
	read_hook(&e->pub, obj, e->file, line); /* checked by add_one before the push */
}

static const char *str_field(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool is_list(json_t *obj)
{
	const char *kind = str_field(obj, "kind");
	size_t n = kind ? strlen(kind) : 0;
	return json_is_array(json_object_get(obj, "items")) && kind &&
	       (!strcmp(kind, "List") || (n > 4 && !strcmp(kind + n - 4, "List")));
}

static const char *type_name(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_OBJECT:
		return "a mapping";
	case JSON_ARRAY:
		return "a sequence";
	case JSON_STRING:
		return "a string";
	default:
		return "null";
	}
}

/* Checks that `m` (at `path` in the object) is absent, null or a mapping of strings (null values
 * allowed: Go reads them as ""), as the Go types behind kubectl require. */
static int string_map(json_t *m, const char *path, const char *file, int line, const char *kind,
		      const char *name)
{
	if (!m || json_is_null(m))
		return 0;
	if (!json_is_object(m))
		return gitops_error_set(GITOPS_EINVALID, "%s:%d: %s %s: %s must be a mapping of strings, not %s",
					file, line, kind, name, path, type_name(m));
	const char *k;
	json_t *v;
	json_object_foreach(m, k, v) {
		if (json_is_string(v) || json_is_null(v))
			continue;
		return gitops_error_set(GITOPS_EINVALID, "%s:%d: %s %s: %s.%s must be a string, not %s (YAML reads "
					"unquoted yes/no/on/off/true/false and numbers as such: quote the value)",
					file, line, kind, name, path, k, type_name(v));
	}
	return 0;
}

/* The containers of a pod spec: env values, command and args are strings. */
static int pod_spec_strings(json_t *spec, const char *at, const char *file, int line, const char *kind,
			    const char *name)
{
	static const char *const lists[] = {"containers", "initContainers", "ephemeralContainers"};
	for (size_t l = 0; l < 3; l++) {
		size_t i, j;
		json_t *c, *e;
		json_array_foreach(json_object_get(spec, lists[l]), i, c) {
			const char *cname = json_string_value(json_object_get(c, "name"));
			json_array_foreach(json_object_get(c, "env"), j, e) {
				json_t *v = json_object_get(e, "value");
				if (v && !json_is_string(v) && !json_is_null(v))
					return gitops_error_set(GITOPS_EINVALID, "%s:%d: %s %s: %s.%s[%zu] (container %s): env %s: "
								"value must be a string, not %s (quote it)", file, line,
								kind, name, at, lists[l], i, cname ? cname : "?",
								json_string_value(json_object_get(e, "name")) ?
								json_string_value(json_object_get(e, "name")) : "?", type_name(v));
			}
			static const char *const argl[] = {"command", "args"};
			for (size_t a = 0; a < 2; a++)
				json_array_foreach(json_object_get(c, argl[a]), j, e)
					if (!json_is_string(e))
						return gitops_error_set(GITOPS_EINVALID, "%s:%d: %s %s: %s.%s[%zu] (container %s): "
									"%s[%zu] must be a string, not %s (quote it)", file, line,
									kind, name, at, lists[l], i, cname ? cname : "?",
									argl[a], j, type_name(e));
		}
	}
	return 0;
}

/* Values kubectl refuses while reading because a Go string field holds something else (`yes`,
 * `8080`): labels, annotations, ConfigMap and Secret data, container env, command and args. */
static int string_fields(json_t *obj, const char *file, int line, const char *api, const char *kind,
			 const char *name)
{
	json_t *md = json_object_get(obj, "metadata");
	int rc = string_map(json_object_get(md, "labels"), "metadata.labels", file, line, kind, name);
	if (!rc)
		rc = string_map(json_object_get(md, "annotations"), "metadata.annotations", file, line, kind, name);
	if (rc)
		return rc;
	char gb[256];
	snprintf(gb, sizeof(gb), "%.*s", (int)gitops_api_group_len(api, NULL), api);
	bool core = !strcmp(api, "v1");
	if (core && !strcmp(kind, "ConfigMap")) {
		rc = string_map(json_object_get(obj, "data"), "data", file, line, kind, name);
		if (!rc)
			rc = string_map(json_object_get(obj, "binaryData"), "binaryData", file, line, kind, name);
	} else if (core && !strcmp(kind, "Secret")) {
		rc = string_map(json_object_get(obj, "data"), "data", file, line, kind, name);
		if (!rc)
			rc = string_map(json_object_get(obj, "stringData"), "stringData", file, line, kind, name);
	} else if (core && !strcmp(kind, "Pod")) {
		rc = pod_spec_strings(json_object_get(obj, "spec"), "spec", file, line, kind, name);
	} else if ((core && !strcmp(kind, "ReplicationController")) ||
		   (!strcmp(gb, "apps") && (!strcmp(kind, "Deployment") || !strcmp(kind, "StatefulSet") ||
					    !strcmp(kind, "DaemonSet") || !strcmp(kind, "ReplicaSet"))) ||
		   (!strcmp(gb, "batch") && !strcmp(kind, "Job"))) {
		rc = pod_spec_strings(json_object_get(json_object_get(json_object_get(obj, "spec"), "template"), "spec"),
				      "spec.template.spec", file, line, kind, name);
	} else if (!strcmp(gb, "batch") && !strcmp(kind, "CronJob")) {
		json_t *jt = json_object_get(json_object_get(obj, "spec"), "jobTemplate");
		rc = pod_spec_strings(json_object_get(json_object_get(json_object_get(jt, "spec"), "template"), "spec"),
				      "spec.jobTemplate.spec.template.spec", file, line, kind, name);
	}
	return rc;
}

static int add_one(mf_objects *set, json_t *obj, const char *file, int line, const char *app,
		   const char *default_ns, int depth)
{
	if (!json_is_object(obj))
		return gitops_error_set(GITOPS_EINVALID, "%s:%d: a manifest must be a mapping (an object), not a %s",
					file, line, json_is_array(obj) ? "sequence" : "scalar");
	if (is_list(obj)) {
		if (depth > 8)
			return gitops_error_set(GITOPS_EINVALID, "%s:%d: Lists nested too deep", file, line);
		size_t i;
		json_t *it;
		json_array_foreach(json_object_get(obj, "items"), i, it) {
			int rc = add_one(set, it, file, line, app, default_ns, depth + 1);
			if (rc)
				return gitops_error_prefix("item %zu", i);
		}
		return 0;
	}
	const char *api = str_field(obj, "apiVersion"), *kind = str_field(obj, "kind");
	json_t *md = json_object_get(obj, "metadata");
	const char *name = json_is_object(md) ? str_field(md, "name") : NULL;
	if (!api || !*api)
		return gitops_error_set(GITOPS_EINVALID, "%s:%d: object has no apiVersion", file, line);
	if (!kind || !*kind)
		return gitops_error_set(GITOPS_EINVALID, "%s:%d: object (apiVersion %s) has no kind", file, line, api);
	if (!name || !*name)
		return gitops_error_set(GITOPS_EINVALID, "%s:%d: %s has no metadata.name", file, line, kind);
	json_t *ns = json_object_get(md, "namespace");
	if (ns && !json_is_string(ns) && !json_is_null(ns))
		return gitops_error_set(GITOPS_EINVALID, "%s:%d: %s %s: metadata.namespace must be a string",
					file, line, kind, name);
	int rc = string_fields(obj, file, line, api, kind, name);
	struct mf_object hook;
	if (!rc)
		rc = read_hook(&hook, obj, file, line);
	if (rc)
		return rc;
	push(set, obj, file, line, app, default_ns);
	return 0;
}

int mf_objects_add(mf_objects *set, json_t *obj, const char *file, int line, const char *app,
		   const char *default_ns)
{
	return add_one(set, obj, file ? file : "<input>", line, app, default_ns, 0);
}

struct add_ctx {
	mf_objects *set;
	const char *file, *app, *ns;
};

static int add_doc(void *data, json_t *doc, int line)
{
	struct add_ctx *c = data;
	return add_one(c->set, doc, c->file, line, c->app, c->ns, 0);
}

int mf_objects_add_yaml(mf_objects *set, const char *text, size_t len, const char *file,
			const char *app, const char *default_ns, const struct mf_limits *lim)
{
	struct add_ctx c = {set, file ? file : "<input>", app, default_ns};
	size_t before = set->n;
	int rc = mf_yaml_parse_stream(text, len, c.file, lim, add_doc, &c);
	if (rc) {
		while (set->n > before)
			entry_free(&set->v[--set->n]);
	}
	return rc;
}

void mf_objects_take(mf_objects *set, mf_objects *from)
{
	for (size_t i = 0; i < from->n; i++) {
		if (set->n == set->cap) {
			set->cap = set->cap ? set->cap * 2 : 16;
			set->v = gitops_realloc(set->v, set->cap * sizeof(*set->v));
		}
		set->v[set->n++] = from->v[i];
	}
	from->n = 0;
}

/* ---- scope --------------------------------------------------------------------------------- */

/* Cluster-scoped kinds of the built-in API groups ("" is the core group). */
static const struct {
	const char *group, *kind;
} cluster_kinds[] = {
	{"", "Namespace"}, {"", "Node"}, {"", "PersistentVolume"}, {"", "ComponentStatus"},
	{"rbac.authorization.k8s.io", "ClusterRole"},
	{"rbac.authorization.k8s.io", "ClusterRoleBinding"},
	{"apiextensions.k8s.io", "CustomResourceDefinition"},
	{"apiregistration.k8s.io", "APIService"},
	{"admissionregistration.k8s.io", "MutatingWebhookConfiguration"},
	{"admissionregistration.k8s.io", "ValidatingWebhookConfiguration"},
	{"admissionregistration.k8s.io", "ValidatingAdmissionPolicy"},
	{"admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"},
	{"admissionregistration.k8s.io", "MutatingAdmissionPolicy"},
	{"admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"},
	{"scheduling.k8s.io", "PriorityClass"},
	{"node.k8s.io", "RuntimeClass"},
	{"storage.k8s.io", "StorageClass"}, {"storage.k8s.io", "CSIDriver"},
	{"storage.k8s.io", "CSINode"}, {"storage.k8s.io", "VolumeAttachment"},
	{"storage.k8s.io", "VolumeAttributesClass"},
	{"certificates.k8s.io", "CertificateSigningRequest"},
	{"certificates.k8s.io", "ClusterTrustBundle"},
	{"networking.k8s.io", "IngressClass"}, {"networking.k8s.io", "IPAddress"},
	{"networking.k8s.io", "ServiceCIDR"},
	{"flowcontrol.apiserver.k8s.io", "FlowSchema"},
	{"flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"},
	{"resource.k8s.io", "DeviceClass"}, {"resource.k8s.io", "ResourceSlice"},
	{"internal.apiserver.k8s.io", "StorageVersion"},
	{"storagemigration.k8s.io", "StorageVersionMigration"},
	{"authentication.k8s.io", "TokenReview"}, {"authentication.k8s.io", "SelfSubjectReview"},
	{"authorization.k8s.io", "SubjectAccessReview"},
	{"authorization.k8s.io", "SelfSubjectAccessReview"},
	{"authorization.k8s.io", "SelfSubjectRulesReview"},
};

/* The group of an apiVersion ("apps/v1" -> "apps", "v1" -> ""), written into buf. */
static const char *group_of(const char *api, char *buf, size_t cap)
{
	size_t n = gitops_api_group_len(api, NULL);
	if (!n)
		return "";
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, api, n);
	buf[n] = '\0';
	return buf;
}

bool mf_kind_is_cluster_scoped(const char *api_version, const char *kind)
{
	char gb[256];
	const char *g = group_of(api_version, gb, sizeof(gb));
	for (size_t i = 0; i < sizeof(cluster_kinds) / sizeof(cluster_kinds[0]); i++)
		if (!strcmp(cluster_kinds[i].group, g) && !strcmp(cluster_kinds[i].kind, kind))
			return true;
	return false;
}

/* The CRDs of a set, indexed once: "group\x01kind" -> true when namespaced (the first CRD of a
 * group and kind wins). Makes resolving linear in the number of objects. */
static json_t *crd_index(const mf_objects *set)
{
	json_t *idx = json_object();
	for (size_t i = 0; i < set->n; i++) {
		json_t *o = set->v[i].pub.obj;
		if (!o) /* a compact object is never a CRD */
			continue;
		if (strcmp(str_field(o, "kind"), "CustomResourceDefinition") ||
		    strncmp(str_field(o, "apiVersion"), "apiextensions.k8s.io/", 21))
			continue;
		json_t *spec = json_object_get(o, "spec");
		const char *cg = str_field(spec, "group");
		const char *ck = str_field(json_object_get(spec, "names"), "kind");
		const char *sc = str_field(spec, "scope");
		if (!cg || !ck)
			continue;
		char *key = gitops_sprintf("%s\x01%s", cg, ck);
		if (!json_object_get(idx, key))
			json_object_set_new(idx, key, json_boolean(!(sc && !strcmp(sc, "Cluster"))));
		free(key);
	}
	return idx;
}

/* Returns 1 when namespaced, 0 when cluster-scoped. `memo` ("apiVersion\x01kind" -> bool) keeps
 * each kind's answer, so `scope` is asked once per kind. */
static int namespaced(json_t *crds, json_t *memo, const char *api, const char *kind, mf_scope_fn scope,
		      void *scope_data)
{
	if (mf_kind_is_cluster_scoped(api, kind))
		return 0;
	char *mkey = gitops_sprintf("%s\x01%s", api, kind);
	json_t *known = json_object_get(memo, mkey);
	if (known) {
		free(mkey);
		return json_is_true(known);
	}
	char gb[256];
	const char *g = group_of(api, gb, sizeof(gb));
	char *key = gitops_sprintf("%s\x01%s", g, kind);
	json_t *crd = json_object_get(crds, key);
	free(key);
	int res = 1;
	bool ns = true;
	if (crd)
		res = json_is_true(crd);
	else if (scope && scope(scope_data, api, kind, &ns) == 0)
		res = ns ? 1 : 0;
	json_object_set_new(memo, mkey, json_boolean(res));
	free(mkey);
	return res;
}

/* An entry's apiVersion, kind, namespace and name (of its tree, or of a compact object). */
static void ident_of(const struct entry *e, const char **api, const char **kind, const char **ns, const char **name)
{
	if (!e->pub.obj) {
		*api = e->pub.api_version;
		*kind = e->pub.kind;
		*ns = e->pub.namespace_;
		*name = e->pub.name;
		return;
	}
	json_t *md = json_object_get(e->pub.obj, "metadata");
	*api = str_field(e->pub.obj, "apiVersion");
	*kind = str_field(e->pub.obj, "kind");
	*ns = str_field(md, "namespace");
	*name = str_field(md, "name");
}

static char *identity(const struct entry *e)
{
	char gb[256];
	const char *api, *kind, *ns, *name;
	ident_of(e, &api, &kind, &ns, &name);
	const char *g = group_of(api, gb, sizeof(gb));
	return gitops_sprintf("%s%s%s %s%s%s", kind, *g ? "." : "", g, ns ? ns : "", ns ? "/" : "", name);
}

/* An object's identity for the duplicate check: (group, kind, namespace, name), compared as
 * fields (no string made per object). */
struct ident {
	const char *api, *kind, *ns, *name;
	size_t glen, i;
};

static int cmp_ident(const void *a, const void *b)
{
	const struct ident *x = a, *y = b;
	size_t n = x->glen < y->glen ? x->glen : y->glen;
	int c = memcmp(x->api, y->api, n);
	if (!c && x->glen != y->glen)
		c = x->glen < y->glen ? -1 : 1;
	if (!c)
		c = strcmp(x->kind, y->kind);
	if (!c && (!x->ns || !y->ns)) /* no namespace is not the empty one */
		c = x->ns ? 1 : y->ns ? -1 : 0;
	else if (!c)
		c = strcmp(x->ns, y->ns);
	if (!c)
		c = strcmp(x->name, y->name);
	if (!c) /* equal identities in the order of the set: the later one is named "here" */
		c = x->i < y->i ? -1 : x->i > y->i;
	return c;
}

int mf_objects_resolve(mf_objects *set, mf_scope_fn scope, void *scope_data)
{
	json_t *crds = crd_index(set), *memo = json_object();
	const char *last_api = NULL, *last_kind = NULL;
	bool last_nsd = false;
	for (size_t i = 0; i < set->n; i++) {
		struct entry *e = &set->v[i];
		const char *api, *kind, *ns, *name;
		ident_of(e, &api, &kind, &ns, &name);
		/* a set's objects come grouped by kind: the previous object's answer, else the memo */
		bool nsd = last_api && !strcmp(api, last_api) && !strcmp(kind, last_kind)
				   ? last_nsd : namespaced(crds, memo, api, kind, scope, scope_data);
		last_api = api;
		last_kind = kind;
		last_nsd = nsd;
		if (!e->pub.obj) { /* a compact object: its identity says what parsing it will set */
			if (!nsd)
				e->pub.namespace_ = NULL;
			else if ((!ns || !*ns) && e->default_ns)
				e->pub.namespace_ = e->default_ns;
			continue;
		}
		json_t *md = json_object_get(e->pub.obj, "metadata");
		if (!nsd) {
			if (json_object_get(md, "namespace"))
				json_object_del(md, "namespace");
			continue;
		}
		if ((!ns || !*ns) && e->default_ns)
			json_object_set_new(md, "namespace", json_string(e->default_ns));
	}
	json_decref(crds);
	json_decref(memo);
	/* duplicates: sort identities, compare neighbours */
	struct ident *ids = gitops_malloc((set->n ? set->n : 1) * sizeof(*ids));
	for (size_t i = 0; i < set->n; i++) {
		ident_of(&set->v[i], &ids[i].api, &ids[i].kind, &ids[i].ns, &ids[i].name);
		ids[i].glen = gitops_api_group_len(ids[i].api, NULL);
		ids[i].i = i;
	}
	qsort(ids, set->n, sizeof(*ids), cmp_ident);
	int rc = 0;
	for (size_t i = 1; i < set->n && !rc; i++) {
		struct ident a = ids[i - 1], b = ids[i];
		a.i = b.i = 0;
		if (cmp_ident(&a, &b))
			continue;
		const struct entry *ex = &set->v[ids[i - 1].i], *ey = &set->v[ids[i].i];
		char *id = identity(ex);
		rc = gitops_error_set(GITOPS_EINVALID, "%s:%d: %s is defined twice: here%s%s%s and at %s:%d%s%s%s",
				      ey->file, ey->pub.line, id, *ey->app ? " (app " : "", ey->app, *ey->app ? ")" : "",
				      ex->file, ex->pub.line, *ex->app ? " (app " : "", ex->app, *ex->app ? ")" : "");
		free(id);
	}
	free(ids);
	return rc;
}

/* ---- output -------------------------------------------------------------------------------- */

int mf_objects_to_yaml(gitops_buf *out, const mf_objects *set)
{
	for (size_t i = 0; i < set->n; i++) {
		json_t *o = mf_object_parse(&set->v[i].pub);
		if (!o)
			return GITOPS_EINVALID;
		gitops_buf_puts(out, "---\n");
		int rc = mf_yaml_emit(out, o);
		json_decref(o);
		if (rc)
			return rc;
	}
	return 0;
}

int mf_objects_to_json(gitops_buf *out, const mf_objects *set)
{
	/* always a List, even of one object or none: one shape for programs to read */
	json_t *items = json_array();
	for (size_t i = 0; i < set->n; i++) {
		json_t *o = mf_object_parse(&set->v[i].pub);
		if (!o) {
			json_decref(items);
			return GITOPS_EINVALID;
		}
		json_array_append_new(items, o);
	}
	json_t *v = json_pack("{s:s, s:s, s:o, s:{s:s}}", "apiVersion", "v1", "kind", "List", "items", items,
			      "metadata", "resourceVersion", "");
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	json_decref(v);
	if (!s)
		return gitops_error_set(GITOPS_ERROR, "cannot serialize objects as JSON");
	gitops_buf_puts(out, s);
	gitops_buf_putc(out, '\n');
	free(s);
	return 0;
}

size_t mf_objects_mask_secrets(mf_objects *set)
{
	size_t masked = 0;
	for (size_t i = 0; i < set->n; i++) {
		struct entry *e = &set->v[i];
		if (!e->pub.obj && e->text) { /* parsed in place: masking changes the tree */
			e->pub.obj = mf_object_parse(&e->pub);
			if (!e->pub.obj)
				continue; /* never printed: mf_objects_to_* fail on it */
			free(e->text);
			e->text = NULL;
			e->pub.text = NULL;
		}
		masked += gitops_mask_object(e->pub.obj);
	}
	return masked;
}
