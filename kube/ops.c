/* kube: discovery (kind -> resource), the object operations (get, list, server-side apply,
 * delete) and the decoding of Kubernetes Status replies into error codes and one-line messages. */
#include "kube/internal.h"
#include "common/mask.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISCOVERY_ACCEPT "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList," \
	"application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

static int code_for_reason(const char *reason, long status)
{
	static const struct { const char *reason; int code; } map[] = {
		{"NotFound", GITOPS_ENOTFOUND}, {"AlreadyExists", GITOPS_EEXISTS},
		{"Invalid", GITOPS_EINVALID}, {"BadRequest", GITOPS_EINVALID},
		{"Conflict", GITOPS_ECONFLICT}, {"Forbidden", GITOPS_EFORBIDDEN},
		{"Unauthorized", GITOPS_EUNAUTHORIZED}, {"Gone", GITOPS_EGONE}, {"Expired", GITOPS_EGONE},
		{"TooManyRequests", GITOPS_ETOOMANY}, {"Timeout", GITOPS_ETIMEOUT},
		{"ServerTimeout", GITOPS_ETIMEOUT}, {"InternalError", GITOPS_ESERVER},
		{"ServiceUnavailable", GITOPS_ESERVER}, {"UnsupportedMediaType", GITOPS_EUNSUPPORTED},
		{"MethodNotAllowed", GITOPS_EUNSUPPORTED},
	};
	for (size_t i = 0; reason && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(reason, map[i].reason))
			return map[i].code;
	switch (status) {
	case 400: case 422: return GITOPS_EINVALID;
	case 401: return GITOPS_EUNAUTHORIZED;
	case 403: return GITOPS_EFORBIDDEN;
	case 404: return GITOPS_ENOTFOUND;
	case 409: return GITOPS_ECONFLICT;
	case 410: return GITOPS_EGONE;
	case 415: return GITOPS_EUNSUPPORTED;
	case 429: return GITOPS_ETOOMANY;
	default: return status >= 500 ? GITOPS_ESERVER : GITOPS_ERROR;
	}
}

/* The manager named in a field-manager conflict message: `conflict with "kubectl" using v1: .x`. */
static char *conflict_manager(const char *msg)
{
	const char *p = msg ? strstr(msg, "conflict with \"") : NULL;
	if (!p)
		return NULL;
	p += strlen("conflict with \"");
	const char *q = strchr(p, '"');
	return q ? gitops_strndup(p, (size_t)(q - p)) : NULL;
}

int kube_status_error(long status, const json_t *body, const char *what)
{
	const char *reason = json_string_value(json_object_get(body, "reason"));
	const char *message = json_string_value(json_object_get(body, "message"));
	int code = code_for_reason(reason, status);
	/* Server-side apply answers an unknown field with a 500 "failed to create typed patch
	 * object ... field not declared in schema": that is the intent's fault, not the server's. */
	if (status == 500 && message && strstr(message, "typed patch object")) {
		code = GITOPS_EINVALID;
		reason = "Invalid";
	}
	json_t *causes = json_object_get(json_object_get(body, "details"), "causes");
	gitops_buf msg = GITOPS_BUF_INIT;
	gitops_buf_printf(&msg, "%s: %s (%ld)", what, reason ? reason : "error", status);
	size_t i;
	json_t *cause;
	bool manager_conflict = false;
	json_array_foreach(causes, i, cause)
		if (json_string_value(json_object_get(cause, "reason")) &&
		    !strcmp(json_string_value(json_object_get(cause, "reason")), "FieldManagerConflict"))
			manager_conflict = true;
	if (manager_conflict) {
		/* Group the fields by the manager that holds them. */
		gitops_buf_puts(&msg, ": fields owned by another manager:");
		json_array_foreach(causes, i, cause) {
			char *mgr = conflict_manager(json_string_value(json_object_get(cause, "message")));
			const char *field = json_string_value(json_object_get(cause, "field"));
			gitops_buf_printf(&msg, "%s %s (manager \"%s\")", i ? "," : "", field ? field : "?",
					  mgr ? mgr : "?");
			free(mgr);
		}
		gitops_buf_puts(&msg, "; apply with force to take them over");
	} else if (json_array_size(causes) > 0) {
		gitops_buf_puts(&msg, ":");
		json_array_foreach(causes, i, cause) {
			const char *field = json_string_value(json_object_get(cause, "field"));
			const char *cm = json_string_value(json_object_get(cause, "message"));
			gitops_buf_printf(&msg, "%s %s%s%s", i ? ";" : "", field ? field : "", field ? ": " : "",
					  cm ? cm : "");
		}
	} else if (message) {
		gitops_buf_printf(&msg, ": %s", message);
	}
	char *masked = gitops_mask_text(msg.ptr, NULL);
	gitops_error_set(code, "%s", masked);
	free(masked);
	gitops_buf_free(&msg);
	return code;
}

/* The last error is about `obj`: masks the Secret values it carries out of the message (the
 * apiserver quotes the values it refuses). */
int kube_mask_error_for(int rc, const json_t *obj)
{
	if (!rc)
		return rc;
	char *masked = gitops_mask_text(gitops_error_last(), obj);
	gitops_error_set(rc, "%s", masked);
	free(masked);
	return rc;
}

/* ---- Discovery ---- */

static void add_resource(kube_client *c, const char *group, const char *version, const char *kind,
			 const char *resource, bool namespaced)
{
	for (size_t i = 0; i < c->n_resources; i++) {
		struct kube_resource_entry *old = c->resources[i];
		if (!strcmp(old->r.kind, kind) && !strcmp(old->r.group, group) && !strcmp(old->r.version, version) &&
		    !strcmp(old->r.resource, resource) && old->r.namespaced == namespaced) {
			old->current = true;
			return;
		}
	}
	c->resources = gitops_realloc(c->resources, (c->n_resources + 1) * sizeof(*c->resources));
	struct kube_resource_entry *e = gitops_calloc(1, sizeof(*e));
	c->resources[c->n_resources++] = e;
	e->current = true;
	size_t lg = strlen(group) + 1, lv = strlen(version) + 1, lk = strlen(kind) + 1, lr = strlen(resource) + 1;
	e->storage = gitops_malloc(lg + lv + lk + lr);
	char *p = e->storage;
	memcpy(p, group, lg); e->r.group = p; p += lg;
	memcpy(p, version, lv); e->r.version = p; p += lv;
	memcpy(p, kind, lk); e->r.kind = p; p += lk;
	memcpy(p, resource, lr); e->r.resource = p;
	e->r.namespaced = namespaced;
}

/* Marks every entry as not served; discovery marks again what it finds. */
static void clear_resources(kube_client *c)
{
	for (size_t i = 0; i < c->n_resources; i++)
		c->resources[i]->current = false;
}

static int get_json(kube_client *c, const char *path, json_t **out)
{
	long status;
	int rc = kube_request(c, "GET", path, NULL, NULL, &status, out);
	if (rc)
		return rc;
	if (status != 200) {
		rc = kube_status_error(status, *out, path);
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

/* Parses an APIGroupDiscoveryList into the table. */
static void load_aggregated(kube_client *c, const json_t *list, bool core)
{
	size_t i, j, k;
	json_t *grp, *ver, *res;
	json_array_foreach(json_object_get(list, "items"), i, grp) {
		const char *group = core ? "" : json_string_value(json_object_get(json_object_get(grp, "metadata"), "name"));
		if (!group)
			group = "";
		json_array_foreach(json_object_get(grp, "versions"), j, ver) {
			const char *version = json_string_value(json_object_get(ver, "version"));
			json_array_foreach(json_object_get(ver, "resources"), k, res) {
				const char *resource = json_string_value(json_object_get(res, "resource"));
				json_t *rk = json_object_get(res, "responseKind");
				const char *kind = json_string_value(json_object_get(rk, "kind"));
				const char *scope = json_string_value(json_object_get(res, "scope"));
				if (!version || !resource || !kind)
					continue;
				add_resource(c, group, version, kind, resource, scope && !strcmp(scope, "Namespaced"));
			}
		}
	}
}

/* Legacy discovery: /api/v1 and /apis/G/V resource lists. */
static int load_legacy(kube_client *c)
{
	json_t *groups = NULL;
	int rc = get_json(c, "/apis", &groups);
	if (rc)
		return rc;
	json_t *gvs = json_array();
	json_array_append_new(gvs, json_string("v1"));
	size_t i, j;
	json_t *g, *v;
	json_array_foreach(json_object_get(groups, "groups"), i, g)
		json_array_foreach(json_object_get(g, "versions"), j, v)
			json_array_append(gvs, json_object_get(v, "groupVersion"));
	json_decref(groups);
	json_array_foreach(gvs, i, g) {
		const char *gv = json_string_value(g);
		char *path = strcmp(gv, "v1") ? gitops_sprintf("/apis/%s", gv) : gitops_strdup("/api/v1");
		json_t *list = NULL;
		rc = get_json(c, path, &list);
		free(path);
		/* an unavailable aggregated API (or one answering with something that is not JSON) */
		if (rc == GITOPS_ENOTFOUND || rc == GITOPS_ESERVER || rc == GITOPS_EPARSE) {
			gitops_error_clear();
			rc = GITOPS_OK;
			continue;
		}
		if (rc)
			break;
		const char *version;
		char *group = gitops_strndup(gv, gitops_api_group_len(gv, &version));
		json_array_foreach(json_object_get(list, "resources"), j, v) {
			const char *name = json_string_value(json_object_get(v, "name"));
			const char *kind = json_string_value(json_object_get(v, "kind"));
			if (!name || !kind || strchr(name, '/'))
				continue; /* subresources */
			add_resource(c, group, version, kind, name, json_is_true(json_object_get(v, "namespaced")));
		}
		free(group);
		json_decref(list);
	}
	json_decref(gvs);
	return rc;
}

int kube_discovery_load(kube_client *c, const json_t *api, const json_t *apis)
{
	const json_t *docs[2] = {api, apis};
	for (int i = 0; i < 2; i++) {
		const char *kind = json_string_value(json_object_get(docs[i], "kind"));
		if (!kind || strcmp(kind, "APIGroupDiscoveryList"))
			return gitops_error_set(GITOPS_EPARSE, "discovery: %s is not an APIGroupDiscoveryList",
						i ? "/apis" : "/api");
	}
	pthread_mutex_lock(&c->disc_lock);
	clear_resources(c);
	load_aggregated(c, api, true);
	load_aggregated(c, apis, false);
	c->discovered = true;
	pthread_mutex_unlock(&c->disc_lock);
	return GITOPS_OK;
}

int kube_discovery_refresh(kube_client *c)
{
	pthread_mutex_lock(&c->disc_lock);
	clear_resources(c);
	int rc = GITOPS_OK;
	bool aggregated = true;
	const char *roots[] = {"/api", "/apis"};
	for (int i = 0; i < 2 && aggregated; i++) {
		gitops_buf resp = GITOPS_BUF_INIT;
		long status = 0;
		struct kube_http_opts o = {.accept = DISCOVERY_ACCEPT};
		rc = kube_http(c, "GET", roots[i], NULL, &o, &status, &resp);
		json_t *doc = NULL;
		if (!rc && status == 200) {
			json_error_t jerr;
			doc = json_loadb(resp.ptr ? resp.ptr : "", resp.len, 0, &jerr);
		}
		gitops_buf_free(&resp);
		if (rc) {
			pthread_mutex_unlock(&c->disc_lock);
			return gitops_error_prefix("discovery");
		}
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		if (status == 200 && kind && !strcmp(kind, "APIGroupDiscoveryList"))
			load_aggregated(c, doc, i == 0);
		else
			aggregated = false;
		json_decref(doc);
	}
	if (!aggregated) {
		clear_resources(c);
		rc = load_legacy(c);
	}
	c->discovered = rc == GITOPS_OK;
	pthread_mutex_unlock(&c->disc_lock);
	return rc ? gitops_error_prefix("discovery") : GITOPS_OK;
}

static const struct kube_resource *lookup(kube_client *c, const char *group, const char *version, const char *kind)
{
	for (size_t i = 0; i < c->n_resources; i++) {
		const struct kube_resource *r = &c->resources[i]->r;
		if (c->resources[i]->current && !strcmp(r->kind, kind) && !strcmp(r->group, group) && !strcmp(r->version, version))
			return r;
	}
	return NULL;
}

int kube_resource_for(const struct kube_resource **out, kube_client *c, const char *api_version, const char *kind)
{
	*out = NULL;
	if (!api_version || !kind)
		return gitops_error_set(GITOPS_EINVALID, "object has no apiVersion or kind");
	const char *version;
	char *group = gitops_strndup(api_version, gitops_api_group_len(api_version, &version));
	int rc = GITOPS_OK;
	for (int pass = 0; pass < 2; pass++) {
		pthread_mutex_lock(&c->disc_lock);
		bool have = c->discovered;
		*out = have ? lookup(c, group, version, kind) : NULL;
		pthread_mutex_unlock(&c->disc_lock);
		if (*out || pass == 1)
			break;
		if ((rc = kube_discovery_refresh(c)))
			break;
	}
	if (!rc && !*out)
		rc = gitops_error_set(GITOPS_ENOTFOUND, "the server does not serve kind %s in apiVersion %s "
				      "(is its CRD installed?)", kind, api_version);
	free(group);
	return rc;
}

/* One kind a CRD serves, in one version: what kube_wait_crds waits to see discovered. */
struct crd_kind {
	size_t crd;            /* index in the caller's array */
	const char *group, *version, *kind, *plural;
	bool seen;
	unsigned read_in_pass; /* the pass that read this kind's group-version (0: none) */
};

/* Why a CRD is not established, from its own conditions (NamesAccepted=False names the
 * conflicting kind or plural); NULL when it says nothing. The caller frees it. */
static char *crd_not_ready_reason(kube_client *c, const char *name)
{
	char *path = gitops_sprintf("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/%s", name);
	json_t *crd = NULL;
	int rc = get_json(c, path, &crd);
	free(path);
	if (rc)
		return gitops_strdup(gitops_error_last());
	char *why = NULL;
	size_t i;
	json_t *cond;
	json_array_foreach(json_object_get(json_object_get(crd, "status"), "conditions"), i, cond) {
		const char *s = json_string_value(json_object_get(cond, "status"));
		const char *m = json_string_value(json_object_get(cond, "message"));
		if (!why && s && strcmp(s, "True") && m && *m)
			why = gitops_sprintf("%s: %s", json_string_value(json_object_get(cond, "type")), m);
	}
	json_decref(crd);
	return why;
}

/* Reads CRD `crds[i]` from the server; when it is Established, adds its kinds (of k[0..nk)) to
 * the discovery table from its spec and marks them seen. Absent yet is not an error. */
static int crd_established(kube_client *c, struct crd_kind *k, size_t nk, size_t i, const json_t *want, size_t *left)
{
	const char *name = json_string_value(json_object_get(json_object_get(want, "metadata"), "name"));
	if (!name)
		return GITOPS_OK;
	char *path = gitops_sprintf("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/%s", name);
	json_t *crd = NULL;
	int rc = get_json(c, path, &crd);
	free(path);
	if (rc)
		return rc == GITOPS_ENOTFOUND ? GITOPS_OK : rc;
	bool established = false;
	size_t j;
	json_t *cond;
	json_array_foreach(json_object_get(json_object_get(crd, "status"), "conditions"), j, cond) {
		const char *t = json_string_value(json_object_get(cond, "type"));
		const char *st = json_string_value(json_object_get(cond, "status"));
		if (t && st && !strcmp(t, "Established") && !strcmp(st, "True"))
			established = true;
	}
	json_t *spec = json_object_get(crd, "spec");
	const char *scope = json_string_value(json_object_get(spec, "scope"));
	/* the served names are the accepted ones (status.acceptedNames), as discovery shows them */
	json_t *accepted = json_object_get(json_object_get(crd, "status"), "acceptedNames");
	const char *kind = json_string_value(json_object_get(accepted, "kind"));
	const char *plural = json_string_value(json_object_get(accepted, "plural"));
	pthread_mutex_lock(&c->disc_lock);
	for (size_t x = 0; established && kind && plural && x < nk; x++) {
		if (k[x].crd != i || k[x].seen || strcmp(k[x].kind, kind) || strcmp(k[x].plural, plural))
			continue;
		bool served = false;
		json_t *v;
		json_array_foreach(json_object_get(spec, "versions"), j, v)
			served |= json_is_true(json_object_get(v, "served")) &&
				  !strcmp(json_string_value(json_object_get(v, "name")) ?: "", k[x].version);
		if (!served)
			continue;
		add_resource(c, k[x].group, k[x].version, k[x].kind, k[x].plural, scope && !strcmp(scope, "Namespaced"));
		k[x].seen = true;
		left[i]--;
	}
	pthread_mutex_unlock(&c->disc_lock);
	json_decref(crd);
	return GITOPS_OK;
}

int kube_wait_crds(kube_client *c, const json_t *const *crds, size_t n, bool *ready, long timeout_ms)
{
	long long deadline = gitops_now_ms() + timeout_ms;
	struct crd_kind *k = NULL;
	size_t nk = 0;
	size_t *left = gitops_calloc(n ? n : 1, sizeof(*left)); /* kinds not yet seen, per CRD */
	for (size_t i = 0; i < n; i++) {
		if (ready)
			ready[i] = false;
		json_t *spec = json_object_get(crds[i], "spec");
		json_t *names = json_object_get(spec, "names");
		const char *group = json_string_value(json_object_get(spec, "group"));
		const char *kind = json_string_value(json_object_get(names, "kind"));
		const char *plural = json_string_value(json_object_get(names, "plural"));
		size_t j;
		json_t *v;
		json_array_foreach(json_object_get(spec, "versions"), j, v) {
			const char *ver = json_string_value(json_object_get(v, "name"));
			if (!json_is_true(json_object_get(v, "served")) || !group || !kind || !plural || !ver)
				continue;
			k = gitops_realloc(k, (nk + 1) * sizeof(*k));
			k[nk++] = (struct crd_kind){i, group, ver, kind, plural, false, 0};
			left[i]++;
		}
	}
	int rc = GITOPS_OK;
	long wait = 20;
	long long last_crd_read = gitops_now_ms();
	for (unsigned pass = 1;; pass++) {
		/* One small GET per group-version still awaited: its resource list shows a kind only once
		 * the CRD is Established and the apiserver serves it (what a discovery refresh would find,
		 * without reading every group's document). */
		for (size_t i = 0; i < nk && !rc; i++) {
			if (k[i].seen)
				continue;
			bool asked = false;
			for (size_t j = 0; j < i && !asked; j++)
				asked = k[j].read_in_pass == pass && !strcmp(k[j].group, k[i].group) &&
					!strcmp(k[j].version, k[i].version);
			if (asked)
				continue; /* this group-version was read for an earlier kind of this pass */
			k[i].read_in_pass = pass;
			char *path = gitops_sprintf("/apis/%s/%s", k[i].group, k[i].version);
			json_t *list = NULL;
			rc = get_json(c, path, &list);
			free(path);
			if (rc == GITOPS_ENOTFOUND) { /* no CRD of the group-version served yet */
				rc = GITOPS_OK;
				continue;
			}
			if (rc)
				break;
			size_t r;
			json_t *res;
			pthread_mutex_lock(&c->disc_lock);
			json_array_foreach(json_object_get(list, "resources"), r, res) {
				const char *rname = json_string_value(json_object_get(res, "name"));
				const char *rkind = json_string_value(json_object_get(res, "kind"));
				for (size_t j = i; rname && rkind && j < nk; j++) {
					if (k[j].seen || strcmp(k[j].group, k[i].group) || strcmp(k[j].version, k[i].version) ||
					    strcmp(k[j].plural, rname) || strcmp(k[j].kind, rkind))
						continue;
					add_resource(c, k[j].group, k[j].version, k[j].kind, k[j].plural,
						     json_is_true(json_object_get(res, "namespaced")));
					k[j].seen = true;
					left[k[j].crd]--;
				}
			}
			pthread_mutex_unlock(&c->disc_lock);
			json_decref(list);
		}
		/* Discovery may lag seconds behind the CRD's own Established condition (the apiserver
		 * then serves its resources already): the first CRD not discovered yet is read itself,
		 * and once Established its kinds go into the table from its spec, then the next one.
		 * The first not established ends the pass. CRDs can be large (kube-prometheus' are up
		 * to 1 MB) and reading them loads a busy apiserver more than the waiting costs, so they
		 * are read only every 2 s, the small lists at every poll. */
		bool read_crds = gitops_now_ms() - last_crd_read >= 2000;
		if (read_crds)
			last_crd_read = gitops_now_ms();
		for (size_t i = 0; i < n && !rc && read_crds; i++) {
			if (!left[i])
				continue;
			rc = crd_established(c, k, nk, i, crds[i], left);
			if (left[i])
				break;
		}
		if (rc)
			break;
		size_t pending = 0;
		for (size_t i = 0; i < n; i++) {
			if (ready)
				ready[i] = left[i] == 0;
			pending += left[i] > 0;
		}
		if (!pending)
			break;
		if (gitops_now_ms() >= deadline || kube_sleep(c, wait)) {
			bool cancel = gitops_now_ms() < deadline;
			gitops_buf msg = GITOPS_BUF_INIT;
			gitops_buf_puts(&msg, "CustomResourceDefinition ");
			char *why = NULL;
			for (size_t i = 0, shown = 0; i < n; i++) {
				if (!left[i])
					continue;
				const char *name = json_string_value(json_object_get(json_object_get(crds[i], "metadata"), "name"));
				gitops_buf_printf(&msg, "%s%s", shown++ ? ", " : "", name ? name : "?");
				if (!why && !cancel && name)
					why = crd_not_ready_reason(c, name);
			}
			if (cancel)
				gitops_buf_puts(&msg, ": wait cancelled before it was established and served");
			else
				gitops_buf_printf(&msg, ": not established and served after %ld ms%s%s", timeout_ms,
						  why ? ": " : "", why ? why : "");
			rc = gitops_error_set(GITOPS_ETIMEOUT, "%s", msg.ptr);
			free(why);
			gitops_buf_free(&msg);
			break;
		}
		if (wait < 500)
			wait *= 2;
	}
	free(k);
	free(left);
	return rc;
}

int kube_wait_crd(kube_client *c, const char *name, long timeout_ms)
{
	long long deadline = gitops_now_ms() + timeout_ms;
	char *path = gitops_sprintf("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/%s", name);
	json_t *crd = NULL;
	int rc;
	/* Right after its creation the CRD may not be readable yet from this apiserver's cache. */
	for (long wait = 20; (rc = get_json(c, path, &crd)) == GITOPS_ENOTFOUND; wait = wait < 500 ? wait * 2 : wait)
		if (gitops_now_ms() >= deadline || kube_sleep(c, wait))
			break;
	free(path);
	if (!rc) {
		long rest = (long)(deadline - gitops_now_ms());
		const json_t *one = crd;
		rc = kube_wait_crds(c, &one, 1, NULL, rest > 0 ? rest : 0);
	}
	json_decref(crd);
	return rc;
}

/* ---- Operations ---- */

char *kube_path(const struct kube_resource *r, const char *ns, const char *name)
{
	gitops_buf b = GITOPS_BUF_INIT;
	if (r->group[0])
		gitops_buf_printf(&b, "/apis/%s/%s", r->group, r->version);
	else
		gitops_buf_printf(&b, "/api/%s", r->version);
	if (r->namespaced && ns && *ns)
		gitops_buf_printf(&b, "/namespaces/%s", ns);
	gitops_buf_printf(&b, "/%s", r->resource);
	if (name)
		gitops_buf_printf(&b, "/%s", name);
	return gitops_buf_detach(&b);
}

/* "Deployment shop-dev/web" or "Namespace shop-dev": how objects are named in messages. */
static char *describe(const char *kind, const char *ns, const char *name)
{
	return (ns && *ns) ? gitops_sprintf("%s %s/%s", kind, ns, name) : gitops_sprintf("%s %s", kind, name);
}

static char *url_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *r = gitops_strdup(e);
	curl_free(e);
	return r;
}

int kube_get(json_t **out, kube_client *c, const char *api_version, const char *kind, const char *ns,
	     const char *name)
{
	*out = NULL;
	const struct kube_resource *r;
	int rc = kube_resource_for(&r, c, api_version, kind);
	if (rc)
		return rc;
	char *path = kube_path(r, ns, name);
	long status;
	json_t *body = NULL;
	rc = kube_request(c, "GET", path, NULL, NULL, &status, &body);
	free(path);
	if (!rc && status != 200) {
		char *what = describe(kind, r->namespaced ? ns : NULL, name);
		rc = kube_status_error(status, body, what);
		free(what);
		json_decref(body);
		return rc;
	}
	*out = body;
	return rc;
}

/* A list is one GET without a limit, read as it arrives, on a helper thread: the apiserver
 * streams a list's items (the list's kind, apiVersion and metadata come first), so each item is
 * parsed by jansson as soon as its text is whole (json_loadb with JSON_DISABLE_EOF_CHECK, which
 * tells how many bytes the item took; only the commas between items and the closing bracket
 * are stepped over here), into pages of about STREAM_PAGE_BYTES of text, each in a JSON arena
 * of its own (no malloc or free per node; the memory goes back a chunk at a time once the
 * caller drops the page). The caller's callback works on one page while the helper thread
 * parses the next: at most STREAM_QUEUE pages wait, then the helper stops reading (the
 * transfer waits on flow control), so memory stays bounded at any size. One request instead
 * of a page per 500 objects: the apiserver serves 10,000 ConfigMaps in about half the time.
 * A reply that does not look like a list (a Status, an error) is read whole and parsed at the
 * end. When the transport retries the request (connection lost, 429, 5xx), what was read is
 * dropped and the caller's `restart` says so. Its error text is carried back. */
#define STREAM_PAGE_BYTES ((size_t)512 << 10)
#define STREAM_PARSE_AT ((size_t)64 << 10) /* unparsed bytes that make the helper parse */
#define STREAM_HEAD_MAX ((size_t)64 << 10) /* no "items" within this: read the reply whole */
#define STREAM_QUEUE 1

struct stream_page {
	json_t *items;
	gitops_json_arena *arena;
	struct stream_page *next;
};

enum stream_phase { ST_HEAD, ST_ITEMS, ST_END, ST_WHOLE };

struct list_stream {
	kube_client *c;
	char *path;
	const char *api_version, *kind; /* filled into the items, which lack them */
	pthread_t th;
	bool running;
	/* the helper's own */
	gitops_buf text;        /* received and not yet parsed (from pos) */
	size_t pos;
	enum stream_phase phase;
	bool after_item;        /* an item was parsed: a comma or the closing bracket comes next */
	size_t dropped;         /* bytes of the reply dropped from text before pos (for messages) */
	size_t next_try;        /* an item did not parse whole yet: unparsed bytes to wait for */
	bool transfer_over;     /* the reply is all in text: parsing may wait for the reader */
	struct stream_page *cur;
	size_t cur_bytes;
	/* shared, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct stream_page *q_first, *q_last;
	int queued;
	bool restart;           /* pages given before were of an attempt that was retried */
	bool attempted;         /* the transport made an attempt already */
	bool unbounded;         /* no helper thread: pages wait without limit */
	bool reading;           /* the reader came: the helper may stop reading until it takes a page */
	bool done;              /* the helper is over: status, rc, error, rv, whole are set */
	bool abandoned;         /* the reader stopped: the helper aborts its transfer */
	long status;
	int rc;
	char *error;
	char *rv;               /* the list's resourceVersion */
	json_t *whole;          /* ST_WHOLE: the reply parsed */
	gitops_json_arena *whole_arena;
};

/* List items lack their apiVersion and kind; callers compare whole objects. */
static void fill_type(json_t *it, const char *api_version, const char *kind)
{
	if (!json_object_get(it, "apiVersion"))
		json_object_set_new(it, "apiVersion", json_string(api_version));
	if (!json_object_get(it, "kind"))
		json_object_set_new(it, "kind", json_string(kind));
}

static void stream_page_free(struct stream_page *p)
{
	if (!p)
		return;
	json_decref(p->items);
	gitops_json_arena_close(p->arena);
	free(p);
}

/* Drops the pages waiting for the reader (caller holds the lock, or is the only thread left). */
static void stream_queue_clear(struct list_stream *s)
{
	while (s->q_first) {
		struct stream_page *p = s->q_first;
		s->q_first = p->next;
		stream_page_free(p);
	}
	s->q_last = NULL;
	s->queued = 0;
}

/* Room for one more page: 1 once the reader took the page before (at most STREAM_QUEUE wait:
 * with the one it works on and the one being parsed, memory holds two pages), 0 when there is
 * none and the transfer must not wait, -1 when the reader abandoned the list. */
static int stream_wait_room(struct list_stream *s)
{
	pthread_mutex_lock(&s->lock);
	/* Before the reader comes, the transfer never waits (curl's timeout and the apiserver's
	 * count on): the text is kept unparsed until there is room. */
	bool wait = s->reading || s->transfer_over;
	while (wait && s->queued >= STREAM_QUEUE && !s->abandoned && !s->unbounded)
		pthread_cond_wait(&s->cond, &s->lock);
	int r = s->abandoned ? -1 : (s->queued >= STREAM_QUEUE && !s->unbounded) ? 0 : 1;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Hands the page being filled to the reader. */
static void stream_push(struct list_stream *s)
{
	struct stream_page *p = s->cur;
	s->cur = NULL;
	s->cur_bytes = 0;
	if (!p)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->q_last)
		s->q_last->next = p;
	else
		s->q_first = p;
	s->q_last = p;
	s->queued++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* The list's head (the text before "items", parsed by jansson as an object of its own) once
 * the text reaches the items' opening bracket. */
static bool is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* A list's metadata may not say that more is to come: it was asked for whole. */
static bool stream_meta_ok(struct list_stream *s, json_t *meta)
{
	const char *next = json_string_value(json_object_get(meta, "continue"));
	if (next && *next) {
		s->rc = GITOPS_EPARSE;
		free(s->error);
		s->error = gitops_sprintf("list %s: the apiserver answered with one page of a list asked for whole; "
					  "nothing of this list is used", s->kind);
		return false;
	}
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (rv) {
		free(s->rv);
		s->rv = gitops_strdup(rv);
	}
	return true;
}

static void stream_head(struct list_stream *s)
{
	const char *t = s->text.ptr;
	const char *at = memmem(t, s->text.len, "\"items\":", 8);
	if (!at) {
		if (s->text.len > STREAM_HEAD_MAX)
			s->phase = ST_WHOLE;
		return;
	}
	size_t open = (size_t)(at - t) + 8;
	while (open < s->text.len && is_ws(t[open]))
		open++;
	if (open >= s->text.len)
		return; /* more text to come */
	if (t[open] != '[') { /* "items": null, or not a list */
		s->phase = ST_WHOLE;
		return;
	}
	size_t n = (size_t)(at - t);
	while (n > 0 && (t[n - 1] == ',' || is_ws(t[n - 1])))
		n--;
	gitops_buf head = GITOPS_BUF_INIT;
	gitops_buf_put(&head, t, n);
	gitops_buf_putc(&head, '}');
	json_t *h = json_loadb(head.ptr, head.len, 0, NULL);
	gitops_buf_free(&head);
	if (!json_is_object(h)) {
		json_decref(h);
		s->phase = ST_WHOLE;
		return;
	}
	/* Built-in lists begin with kind, apiVersion and metadata; custom resources' lists sort
	 * their keys (apiVersion, items, kind, metadata): then the metadata follows the items. */
	json_t *meta = json_object_get(h, "metadata");
	bool ok = !meta || stream_meta_ok(s, meta);
	json_decref(h);
	if (!ok)
		return;
	s->pos = open + 1;
	s->phase = ST_ITEMS;
}

/* Parses the whole items in the text; `last`: the reply is over, so an item that does not parse
 * is an error rather than one whose end has not come yet. False on error (s->rc set) or when the
 * reader abandoned the list. */
static bool stream_items(struct list_stream *s, bool last)
{
	const char *t = s->text.ptr;
	size_t len = s->text.len;
	while (s->phase == ST_ITEMS) {
		while (s->pos < len && is_ws(t[s->pos]))
			s->pos++;
		if (s->pos >= len)
			break;
		if (t[s->pos] == ']') {
			s->pos++;
			s->phase = ST_END;
			break;
		}
		if (s->after_item) {
			if (t[s->pos] != ',')
				goto bad;
			s->pos++;
			s->after_item = false;
			continue;
		}
		if (!s->cur) {
			int room = stream_wait_room(s);
			if (room < 0)
				return false;
			if (!room)
				break; /* parsed once the reader takes a page */
			s->cur = gitops_calloc(1, sizeof(*s->cur));
			s->cur->arena = gitops_json_arena_open();
			gitops_json_arena *was = gitops_json_arena_use(s->cur->arena);
			s->cur->items = json_array();
			gitops_json_arena_use(was);
		}
		json_error_t je;
		gitops_json_arena *was = gitops_json_arena_use(s->cur->arena);
		json_t *it = json_loadb(t + s->pos, len - s->pos, JSON_DISABLE_EOF_CHECK, &je);
		if (it && json_is_object(it)) {
			fill_type(it, s->api_version, s->kind);
			json_array_append_new(s->cur->items, it);
		}
		gitops_json_arena_use(was);
		if (!it) {
			/* An item cut by the end of what came so far fails at that end; one that fails
			 * before it is malformed (or nested too deep) whatever comes next. */
			if (last || (size_t)je.position + 16 < len - s->pos)
				goto bad;
			s->next_try = (len - s->pos) * 2; /* a large item: not parsed again at every chunk */
			break;
		}
		s->next_try = 0;
		if (!json_is_object(it)) {
			json_decref(it);
			goto bad;
		}
		s->pos += (size_t)je.position;
		s->cur_bytes += (size_t)je.position;
		s->after_item = true;
		if (s->cur_bytes >= STREAM_PAGE_BYTES)
			stream_push(s);
	}
	/* what was parsed is dropped from the text */
	if (s->pos > (s->text.len >> 1) || s->phase == ST_END) {
		memmove(s->text.ptr, s->text.ptr + s->pos, s->text.len - s->pos);
		s->text.len -= s->pos;
		s->dropped += s->pos;
		s->pos = 0;
	}
	return true;
bad:
	/* Never read as a shorter list (the objects after it would seem gone). jansson's text may
	 * quote the reply (a Secret's value): only the position is given. */
	s->rc = GITOPS_EPARSE;
	free(s->error);
	s->error = gitops_sprintf("list %s: the apiserver's answer cannot be read as JSON near byte %zu "
				  "(malformed, or an object nested deeper than %d levels); nothing of this list is used",
				  s->kind, s->dropped + s->pos, JSON_PARSER_MAX_DEPTH);
	return false;
}

static int stream_should_stop(void *ud)
{
	struct list_stream *s = ud;
	pthread_mutex_lock(&s->lock);
	bool stop = s->abandoned;
	pthread_mutex_unlock(&s->lock);
	return stop || s->rc;
}

static size_t stream_data(void *ud, const char *data, size_t len)
{
	struct list_stream *s = ud;
	if (stream_should_stop(s))
		return 0; /* aborts the transfer */
	gitops_buf_put(&s->text, data, len);
	if (s->phase == ST_HEAD)
		stream_head(s);
	size_t unparsed = s->text.len - s->pos;
	if (s->phase == ST_ITEMS && unparsed >= STREAM_PARSE_AT && unparsed >= s->next_try && !stream_items(s, false))
		return 0; /* aborts the transfer */
	return len;
}

/* Before each attempt of the transport: what an earlier attempt read is dropped. */
static void stream_attempt(void *ud)
{
	struct list_stream *s = ud;
	s->text.len = 0;
	s->pos = 0;
	s->dropped = 0;
	s->next_try = 0;
	s->phase = ST_HEAD;
	s->after_item = false;
	stream_page_free(s->cur);
	s->cur = NULL;
	s->cur_bytes = 0;
	pthread_mutex_lock(&s->lock);
	if (s->attempted) {
		stream_queue_clear(s);
		s->restart = true;
		pthread_cond_broadcast(&s->cond);
	}
	s->attempted = true;
	pthread_mutex_unlock(&s->lock);
}

/* The text after the items' closing bracket: the rest of the list (a custom resources' list has
 * its kind and metadata there), parsed by jansson as an object of its own. */
static void stream_tail(struct list_stream *s)
{
	size_t i = s->pos;
	while (i < s->text.len && (is_ws(s->text.ptr[i]) || s->text.ptr[i] == ','))
		i++;
	gitops_buf tail = GITOPS_BUF_INIT;
	gitops_buf_putc(&tail, '{');
	gitops_buf_put(&tail, s->text.ptr + i, s->text.len - i);
	json_t *t = json_loadb(tail.ptr, tail.len, 0, NULL);
	gitops_buf_free(&tail);
	if (!json_is_object(t)) {
		s->rc = GITOPS_EPARSE;
		free(s->error);
		s->error = gitops_sprintf("list %s: the apiserver's answer cannot be read as JSON after its items; "
					  "nothing of this list is used", s->kind);
	} else if (json_object_get(t, "metadata")) {
		stream_meta_ok(s, json_object_get(t, "metadata"));
	}
	json_decref(t);
}

static void *stream_run(void *arg)
{
	struct list_stream *s = arg;
	struct kube_http_opts o = {.on_data = stream_data, .should_stop = stream_should_stop,
				   .on_attempt = stream_attempt, .ud = s};
	long status = 0;
	gitops_buf unused = GITOPS_BUF_INIT;
	int rc = kube_http(s->c, "GET", s->path, NULL, &o, &status, &unused);
	gitops_buf_free(&unused);
	if (rc && !s->rc) {
		s->rc = rc;
		s->error = gitops_strdup(gitops_error_last());
	}
	pthread_mutex_lock(&s->lock);
	s->transfer_over = true;
	pthread_mutex_unlock(&s->lock);
	if (!s->rc && s->phase == ST_ITEMS && stream_items(s, true) && s->phase == ST_ITEMS) {
		s->rc = GITOPS_EPARSE;
		s->error = gitops_sprintf("list %s: the apiserver's answer ends before the list does "
					  "(%zu bytes read); nothing of this list is used", s->kind, s->text.len);
	}
	if (!s->rc && (s->phase == ST_HEAD || s->phase == ST_WHOLE) && s->text.len) {
		s->whole_arena = gitops_json_arena_open();
		gitops_json_arena *was = gitops_json_arena_use(s->whole_arena);
		json_error_t je;
		s->whole = json_loadb(s->text.ptr, s->text.len, 0, &je);
		gitops_json_arena_use(was);
		if (!s->whole && status == 200) {
			s->rc = GITOPS_EPARSE;
			s->error = gitops_sprintf("list %s: the apiserver's answer cannot be read as JSON at byte %d of %zu "
						  "(malformed, or an object nested deeper than %d levels); nothing of this list is used",
						  s->kind, je.position, s->text.len, JSON_PARSER_MAX_DEPTH);
		}
	}
	if (!s->rc && s->phase == ST_END)
		stream_tail(s);
	if (!s->rc && s->phase == ST_END)
		stream_push(s);
	gitops_buf_free(&s->text);
	pthread_mutex_lock(&s->lock);
	s->status = status;
	s->done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void stream_start(struct list_stream *s, kube_client *c, const char *base, const char *sel,
			 const char *api_version, const char *kind)
{
	memset(s, 0, sizeof(*s));
	s->c = c;
	s->path = sel ? gitops_sprintf("%s?labelSelector=%s", base, sel) : gitops_strdup(base);
	s->api_version = api_version;
	s->kind = kind;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->running = pthread_create(&s->th, NULL, stream_run, s) == 0;
	if (!s->running) {
		s->unbounded = true; /* no thread: read whole now */
		stream_run(s);
	}
}

/* The reader's next step: a page (*page set), a restart (*restarted), or the end (both unset). */
static void stream_next(struct list_stream *s, struct stream_page **page, bool *restarted)
{
	*page = NULL;
	*restarted = false;
	pthread_mutex_lock(&s->lock);
	while (!s->q_first && !s->restart && !s->done)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->restart) {
		s->restart = false;
		*restarted = true;
	} else if (s->q_first) {
		*page = s->q_first;
		s->q_first = (*page)->next;
		if (!s->q_first)
			s->q_last = NULL;
		s->queued--;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Stops the helper (if the list was not read to its end), waits for it and frees the rest. */
static void stream_finish(struct list_stream *s)
{
	pthread_mutex_lock(&s->lock);
	s->abandoned = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->running)
		pthread_join(s->th, NULL);
	s->running = false;
	stream_queue_clear(s);
	stream_page_free(s->cur);
	json_decref(s->whole);
	gitops_json_arena_close(s->whole_arena);
	gitops_buf_free(&s->text);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->path);
	free(s->error);
	free(s->rv);
}

/* A list whose GET is started (and read, on its helper thread) before its reader comes for it. */
struct kube_list_ahead {
	const struct kube_resource *r;
	char *base, *sel, *gv, *ns;
	struct list_stream s;
};

kube_list_ahead *kube_list_ahead_start(kube_client *c, const struct kube_resource *r, const char *ns,
				       const char *label_selector)
{
	kube_list_ahead *la = gitops_calloc(1, sizeof(*la));
	la->r = r;
	la->base = kube_path(r, ns, NULL);
	la->sel = label_selector ? url_escape(label_selector) : NULL;
	la->gv = r->group[0] ? gitops_sprintf("%s/%s", r->group, r->version) : gitops_strdup(r->version);
	la->ns = ns ? gitops_strdup(ns) : NULL;
	stream_start(&la->s, c, la->base, la->sel, la->gv, r->kind);
	return la;
}

const struct kube_resource *kube_list_ahead_resource(const kube_list_ahead *la) { return la->r; }
const char *kube_list_ahead_namespace(const kube_list_ahead *la) { return la->ns; }

static void list_ahead_free(kube_list_ahead *la)
{
	stream_finish(&la->s);
	free(la->base);
	free(la->sel);
	free(la->gv);
	free(la->ns);
	free(la);
}

void kube_list_ahead_free(kube_list_ahead *la)
{
	if (la)
		list_ahead_free(la); /* the caller's error, if any, stays: the helper's is its own */
}

int kube_list_ahead_pages(kube_list_ahead *la, void (*page)(void *ud, json_t *items), void (*restart)(void *ud),
			  void *ud, char **resource_version)
{
	if (resource_version)
		*resource_version = NULL;
	struct list_stream *s = &la->s;
	const struct kube_resource *r = la->r;
	const char *ns = la->ns;
	pthread_mutex_lock(&s->lock);
	s->reading = true;
	pthread_mutex_unlock(&s->lock);
	for (;;) {
		struct stream_page *p;
		bool restarted;
		stream_next(s, &p, &restarted);
		if (restarted) {
			if (restart)
				restart(ud);
			continue;
		}
		if (!p)
			break;
		page(ud, p->items);
		stream_page_free(p);
	}
	int rc = s->rc;
	if (rc)
		gitops_error_set(rc, "%s", s->error ? s->error : "list request failed");
	else if (s->status != 200) {
		char *what = gitops_sprintf("list %s%s%s", r->resource, ns ? " in " : "", ns ? ns : "");
		rc = kube_status_error(s->status, s->whole, what);
		free(what);
	} else if (s->whole) {
		/* a reply read whole: a list whose items did not come as expected */
		json_t *items = json_object_get(s->whole, "items");
		if (!json_is_object(s->whole) || !(json_is_array(items) || json_is_null(items))) {
			rc = gitops_error_set(GITOPS_EPARSE, "list %s%s%s: the apiserver's reply is not a list",
					      r->resource, ns ? " in " : "", ns ? ns : "");
		} else {
			size_t i;
			json_t *it;
			json_array_foreach(items, i, it)
				fill_type(it, la->gv, r->kind);
			if (!stream_meta_ok(s, json_object_get(s->whole, "metadata")))
				rc = gitops_error_set(s->rc, "%s", s->error);
			else if (json_array_size(items))
				page(ud, items);
		}
	} else if (s->phase != ST_END) {
		rc = gitops_error_set(GITOPS_EPARSE, "list %s%s%s: the apiserver's reply is empty",
				      r->resource, ns ? " in " : "", ns ? ns : "");
	}
	if (!rc && resource_version && s->rv)
		*resource_version = gitops_strdup(s->rv);
	list_ahead_free(la);
	return rc;
}

int kube_list_pages(kube_client *c, const struct kube_resource *r, const char *ns, const char *label_selector,
		    void (*page)(void *ud, json_t *items), void (*restart)(void *ud), void *ud,
		    char **resource_version)
{
	return kube_list_ahead_pages(kube_list_ahead_start(c, r, ns, label_selector), page, restart, ud,
				     resource_version);
}

static void append_page(void *ud, json_t *items) { json_array_extend(ud, items); }
static void clear_pages(void *ud) { json_array_clear(ud); }

int kube_list(json_t **items, char **resource_version, kube_client *c, const struct kube_resource *r,
	      const char *ns, const char *label_selector)
{
	json_t *all = json_array();
	int rc = kube_list_pages(c, r, ns, label_selector, append_page, clear_pages, all, resource_version);
	if (rc) {
		json_decref(all);
		*items = NULL;
		return rc;
	}
	*items = all;
	return GITOPS_OK;
}

/* The request of a server-side apply: its URL path (with the options), its body (the object
 * without server-owned fields) and how to name the object in messages. Caller frees all three. */
static int apply_request(char **path, char **body, char **what, kube_client *c, const json_t *obj,
			 const struct kube_apply_options *opt)
{
	const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	if (!api_version || !kind || !name)
		return gitops_error_set(GITOPS_EINVALID, "apply: object lacks apiVersion, kind or metadata.name");
	const struct kube_resource *r;
	int rc = kube_resource_for(&r, c, api_version, kind);
	if (rc)
		return rc;
	if (r->namespaced && (!ns || !*ns))
		return gitops_error_set(GITOPS_EINVALID, "apply %s %s: namespaced kind without metadata.namespace", kind, name);
	/* The body must not carry server-owned fields: SSA would reject or mis-own them. */
	json_t *copy = json_deep_copy(obj);
	json_t *bmeta = json_object_get(copy, "metadata");
	json_object_del(bmeta, "resourceVersion");
	json_object_del(bmeta, "managedFields");
	json_object_del(bmeta, "uid");
	json_object_del(bmeta, "creationTimestamp");
	json_object_del(bmeta, "generation");
	if (strcmp(kind, "CustomResourceDefinition"))
		json_object_del(copy, "status");
	*body = json_dumps(copy, JSON_COMPACT);
	json_decref(copy);
	char *base = kube_path(r, ns, name);
	gitops_buf url = GITOPS_BUF_INIT;
	gitops_buf_printf(&url, "%s?fieldManager=%s", base, opt->field_manager ? opt->field_manager : "gitops");
	if (opt->force)
		gitops_buf_puts(&url, "&force=true");
	if (opt->dry_run)
		gitops_buf_puts(&url, "&dryRun=All");
	if (opt->strict)
		gitops_buf_puts(&url, "&fieldValidation=Strict");
	free(base);
	*path = gitops_buf_detach(&url);
	char *d = describe(kind, r->namespaced ? ns : NULL, name);
	*what = gitops_sprintf("apply %s", d);
	free(d);
	return GITOPS_OK;
}

/* Turns an apply's reply into the result: 201 created, 200 updated, else the decoded Status. */
static int apply_reply(json_t **out, bool *created, long status, json_t *result, const char *what)
{
	if (status != 200 && status != 201) {
		int rc = kube_status_error(status, result, what);
		json_decref(result);
		return rc;
	}
	if (created)
		*created = status == 201;
	if (out)
		*out = result;
	else
		json_decref(result);
	return GITOPS_OK;
}

int kube_apply(json_t **out, bool *created, kube_client *c, const json_t *obj, const struct kube_apply_options *opt)
{
	struct kube_apply_options none = {0};
	if (!opt)
		opt = &none;
	if (out)
		*out = NULL;
	if (created)
		*created = false;
	char *path = NULL, *body = NULL, *what = NULL;
	int rc = apply_request(&path, &body, &what, c, obj, opt);
	if (!rc) {
		long status;
		json_t *result = NULL;
		rc = kube_request(c, "PATCH", path, "application/apply-patch+yaml", body, &status, &result);
		if (rc == GITOPS_EPARSE && !out) {
			gitops_error_clear(); /* applied: the answer, which cannot be read, is not asked for */
			rc = GITOPS_OK;
		}
		if (!rc)
			rc = apply_reply(out, created, status, result, what);
	}
	kube_mask_error_for(rc, obj);
	free(path);
	free(body);
	free(what);
	return rc;
}

struct apply_batch {
	struct kube_apply_result *results;
	json_t **outs;       /* the server's answers, or NULL */
	struct kube_http_call *calls;
	size_t *index;   /* call -> object */
	char **whats;
	json_t *const *objs; /* what each result's error may quote */
	kube_apply_done_fn done;
	void *ud;
};

/* A call of the batch finished: decode its reply into the object's result and report it. */
static void apply_done(void *ud, size_t k)
{
	struct apply_batch *b = ud;
	struct kube_http_call *call = &b->calls[k];
	size_t i = b->index[k];
	struct kube_apply_result *res = &b->results[i];
	if (call->rc) {
		res->rc = call->rc;
		res->error = call->error;
		call->error = NULL;
	} else {
		json_error_t jerr;
		json_t *reply = call->resp.len ? json_loadb(call->resp.ptr, call->resp.len, 0, &jerr) : NULL;
		if (!reply && call->resp.len && b->outs && (call->status == 200 || call->status == 201))
			/* an answer asked for that cannot be read (its text may hold a Secret's value) */
			res->rc = gitops_error_set(GITOPS_EPARSE, "%s: the apiserver's answer cannot be read as JSON at "
						   "byte %d of %zu", b->whats[i], jerr.position, call->resp.len);
		else
			res->rc = apply_reply(b->outs ? &b->outs[i] : NULL, &res->created, call->status, reply,
					      b->whats[i]);
		if (res->rc)
			res->error = gitops_strdup(gitops_error_last());
	}
	if (res->error) {
		char *masked = gitops_mask_text(res->error, b->objs[i]);
		free(res->error);
		res->error = masked;
	}
	gitops_buf_free(&call->resp);
	if (b->done)
		b->done(b->ud, i, res);
}

int kube_apply_batch(struct kube_apply_result *results, kube_client *c, json_t *const *objs, size_t n,
		     const struct kube_apply_options *opt, int max_in_flight, kube_apply_done_fn done, void *ud)
{
	return kube_apply_batch_out(results, NULL, c, objs, n, opt, max_in_flight, done, ud);
}

int kube_apply_batch_out(struct kube_apply_result *results, json_t **outs, kube_client *c, json_t *const *objs,
			 size_t n, const struct kube_apply_options *opt, int max_in_flight, kube_apply_done_fn done,
			 void *ud)
{
	struct kube_apply_options none = {0};
	if (!opt)
		opt = &none;
	for (size_t i = 0; outs && i < n; i++)
		outs[i] = NULL;
	struct apply_batch b = {results, outs, gitops_calloc(n + 1, sizeof(struct kube_http_call)),
				gitops_calloc(n + 1, sizeof(size_t)), gitops_calloc(n + 1, sizeof(char *)), objs, done, ud};
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		results[i] = (struct kube_apply_result){0};
		char *path = NULL, *body = NULL;
		int rc = apply_request(&path, &body, &b.whats[i], c, objs[i], opt);
		if (rc) {
			results[i].rc = rc;
			results[i].error = gitops_mask_text(gitops_error_last(), objs[i]);
			if (done)
				done(ud, i, &results[i]);
			continue;
		}
		b.calls[m] = (struct kube_http_call){.method = "PATCH", .path = path, .body = body,
						     .content_type = "application/apply-patch+yaml"};
		b.index[m++] = i;
	}
	kube_http_batch(c, b.calls, m, max_in_flight, apply_done, &b);
	for (size_t k = 0; k < m; k++) {
		free((char *)b.calls[k].path);
		free((char *)b.calls[k].body);
		free(b.calls[k].error);
		gitops_buf_free(&b.calls[k].resp);
	}
	for (size_t i = 0; i < n; i++)
		free(b.whats[i]);
	free(b.whats);
	free(b.index);
	free(b.calls);
	return GITOPS_OK;
}

int kube_delete(kube_client *c, const char *api_version, const char *kind, const char *ns, const char *name,
		const char *propagation, bool dry_run)
{
	const struct kube_resource *r;
	int rc = kube_resource_for(&r, c, api_version, kind);
	if (rc)
		return rc;
	char *path = kube_path(r, ns, name);
	gitops_buf url = GITOPS_BUF_INIT;
	gitops_buf_puts(&url, path);
	if (dry_run)
		gitops_buf_puts(&url, "?dryRun=All");
	char *body = propagation ? gitops_sprintf("{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
						  "\"propagationPolicy\":\"%s\"}", propagation) : NULL;
	long status;
	json_t *result = NULL;
	rc = kube_request(c, "DELETE", url.ptr, "application/json", body, &status, &result);
	if (rc == GITOPS_EPARSE) {
		gitops_error_clear(); /* deleted: its answer (the object) is not read */
		rc = GITOPS_OK;
	}
	if (!rc && status != 200 && status != 202) {
		char *what = describe(kind, r->namespaced ? ns : NULL, name);
		char *verb = gitops_sprintf("delete %s", what);
		rc = kube_status_error(status, result, verb);
		free(verb);
		free(what);
	}
	json_decref(result);
	free(body);
	gitops_buf_free(&url);
	free(path);
	return rc;
}

/* PUT (update) or POST (create) of a whole object. */
static int write_object(json_t **out, kube_client *c, const json_t *obj, bool create)
{
	if (out)
		*out = NULL;
	const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (!api_version || !kind || !name)
		return gitops_error_set(GITOPS_EINVALID, "%s: object lacks apiVersion, kind or metadata.name",
					create ? "create" : "update");
	if (!create && (!rv || !*rv))
		return gitops_error_set(GITOPS_EINVALID, "update %s %s: metadata.resourceVersion is required (a "
					"compare-and-swap write)", kind, name);
	const struct kube_resource *r;
	int rc = kube_resource_for(&r, c, api_version, kind);
	if (rc)
		return rc;
	json_t *copy = json_deep_copy(obj);
	json_t *bmeta = json_object_get(copy, "metadata");
	json_object_del(bmeta, "managedFields");
	if (create)
		json_object_del(bmeta, "resourceVersion");
	char *body = json_dumps(copy, JSON_COMPACT);
	json_decref(copy);
	char *path = kube_path(r, r->namespaced ? ns : NULL, create ? NULL : name);
	long status;
	json_t *result = NULL;
	rc = kube_request(c, create ? "POST" : "PUT", path, "application/json", body, &status, &result);
	if (rc == GITOPS_EPARSE && !out) {
		gitops_error_clear(); /* written: the answer is not asked for */
		rc = GITOPS_OK;
	}
	free(path);
	free(body);
	if (!rc && status != 200 && status != 201) {
		char *d = describe(kind, r->namespaced ? ns : NULL, name);
		char *what = gitops_sprintf("%s %s", create ? "create" : "update", d);
		rc = kube_status_error(status, result, what);
		if (create && rc == GITOPS_ECONFLICT)
			rc = gitops_error_set(GITOPS_EEXISTS, "%s", gitops_error_last());
		else if (!create && status == 409)
			rc = gitops_error_set(GITOPS_ECONFLICT, "%s", gitops_error_last());
		else if (!create && rc == GITOPS_ECONFLICT)
			rc = gitops_error_set(GITOPS_ERROR, "%s", gitops_error_last());
		free(what);
		free(d);
		json_decref(result);
		return rc;
	}
	if (!rc && out)
		*out = result;
	else
		json_decref(result);
	return rc;
}

int kube_update(json_t **out, kube_client *c, const json_t *obj) { return write_object(out, c, obj, false); }
int kube_create(json_t **out, kube_client *c, const json_t *obj) { return write_object(out, c, obj, true); }

int kube_resources(const struct kube_resource ***out, size_t *n, kube_client *c)
{
	*out = NULL;
	*n = 0;
	if (!c->discovered) {
		int rc = kube_discovery_refresh(c);
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&c->disc_lock);
	const struct kube_resource **v = gitops_calloc(c->n_resources + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < c->n_resources; i++)
		if (c->resources[i]->current)
			v[k++] = &c->resources[i]->r;
	pthread_mutex_unlock(&c->disc_lock);
	*out = v;
	*n = k;
	return GITOPS_OK;
}

/* ---- What helm's .Capabilities sees ---- */

static int cmp_json_str(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

int kube_api_versions(json_t **out, kube_client *c)
{
	*out = NULL;
	if (!c->discovered) {
		int rc = kube_discovery_refresh(c);
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&c->disc_lock);
	json_t *seen = json_object();
	for (size_t i = 0; i < c->n_resources; i++) {
		const struct kube_resource *r = &c->resources[i]->r;
		if (!c->resources[i]->current)
			continue;
		char *gv = *r->group ? gitops_sprintf("%s/%s", r->group, r->version) : gitops_strdup(r->version);
		char *gvk = gitops_sprintf("%s/%s", gv, r->kind);
		json_object_set_new(seen, gv, json_true());
		json_object_set_new(seen, gvk, json_true());
		free(gv);
		free(gvk);
	}
	pthread_mutex_unlock(&c->disc_lock);
	size_t n = json_object_size(seen), i = 0;
	json_t **v = gitops_malloc((n ? n : 1) * sizeof(*v));
	const char *k;
	json_t *val;
	json_object_foreach(seen, k, val)
		v[i++] = json_string(k);
	qsort(v, n, sizeof(*v), cmp_json_str);
	*out = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(*out, v[i]);
	free(v);
	json_decref(seen);
	return GITOPS_OK;
}

int kube_server_version(char **out, kube_client *c)
{
	*out = NULL;
	long status = 0;
	json_t *v = NULL;
	int rc = kube_request(c, "GET", "/version", NULL, NULL, &status, &v);
	if (rc)
		return gitops_error_prefix("GET /version");
	const char *gv = json_string_value(json_object_get(v, "gitVersion"));
	if (status != 200 || !gv || gv[0] != 'v')
		rc = gitops_error_set(GITOPS_ESERVER, "GET /version: HTTP %ld without a gitVersion", status);
	else
		*out = gitops_strdup(gv);
	json_decref(v);
	return rc;
}
