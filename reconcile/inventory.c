/* reconcile: the inventory and the sync lock.
 *
 * The inventory lists which objects one pipeline applied in one environment. It is the
 * ConfigMap gitops-system/gitops-inventory.<pipeline>.<env> (the dots cannot occur in either
 * DNS label, so two pipelines or environments never share a name), key inventory.json:
 * {pipeline, environment, repository, rootCommit, revision, syncedAt, objects: [{apiVersion,
 * kind, namespace, name, app}]}. An inventory too large for that form (about 9,000 objects) is
 * written grouped instead, `groups: [{apiVersion, kind, namespace, app, names: [...]}]` in place
 * of `objects` (an entry then takes the length of its name and 3 bytes); it is read back into
 * the `objects` form, the only one the rest of the module sees. It is only ever written compare-and-swap (the resourceVersion
 * read is the precondition; on a conflict it is re-read and the edit applied again), and
 * intent is recorded before acting: entries are added before objects are applied and removed
 * after they are deleted.
 *
 * Concurrent syncs of one pipeline and environment are serialized by a Lease,
 * gitops-system/gitops-lock.<pipeline>.<env>, held (and renewed every 10 s by a thread) while a
 * sync writes; a holder that stops renewing for 30 s, or whose process on this host is gone,
 * loses it. Dry runs and no-op syncs take no lock.
 *
 * Thread-safety: a rec_inventory and a rec_lock belong to one thread (the lock's renewal
 * thread is internal); the kube client they use is thread-safe. */
#include "reconcile/internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INVENTORY_KEY "inventory.json"
#define INVENTORY_MAX_BYTES REC_INVENTORY_MAX_BYTES
#define LEASE_SECONDS 30

/* "group/kind/namespace/name", put together without printf: made for every object a plan reads */
char *rec_make_key(const char *api_version, const char *kind, const char *ns, const char *name)
{
	const char *part[4] = {api_version ? api_version : "", kind ? kind : "", ns ? ns : "", name ? name : ""};
	size_t len[4];
	len[0] = gitops_api_group_len(part[0], NULL);
	for (int i = 1; i < 4; i++)
		len[i] = strlen(part[i]);
	char *k = gitops_malloc(len[0] + len[1] + len[2] + len[3] + 4), *at = k;
	for (int i = 0; i < 4; i++) {
		memcpy(at, part[i], len[i]);
		at += len[i];
		*at++ = i < 3 ? '/' : '\0';
	}
	return k;
}

char *rec_object_key(const json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata");
	return rec_make_key(json_string_value(json_object_get(obj, "apiVersion")), json_string_value(json_object_get(obj, "kind")),
			json_string_value(json_object_get(meta, "namespace")), json_string_value(json_object_get(meta, "name")));
}

char *rec_ref_key(const json_t *ref)
{
	return rec_make_key(json_string_value(json_object_get(ref, "apiVersion")), json_string_value(json_object_get(ref, "kind")),
			json_string_value(json_object_get(ref, "namespace")), json_string_value(json_object_get(ref, "name")));
}

void rec_ref_of(struct rec_ref *r, char **mem, const json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata");
	rec_ref_from(r, mem, json_string_value(json_object_get(obj, "apiVersion")),
		     json_string_value(json_object_get(obj, "kind")),
		     json_string_value(json_object_get(meta ? meta : obj, "namespace")),
		     json_string_value(json_object_get(meta ? meta : obj, "name")));
}

void rec_ref_from(struct rec_ref *r, char **mem, const char *av, const char *kind, const char *ns, const char *name)
{
	av = av ? av : "";
	kind = kind ? kind : "";
	name = name ? name : "";
	const char *slash = strchr(av, '/');
	size_t glen = slash ? (size_t)(slash - av) : 0;
	const char *version = slash ? slash + 1 : av;
	/* group\0version\0kind\0name\0namespace\0 */
	size_t lv = strlen(version), lk = strlen(kind), ln = strlen(name), lns = ns ? strlen(ns) : 0;
	char *m = gitops_malloc(glen + lv + lk + ln + lns + 5), *at = m;
	memcpy(at, av, glen);
	at[glen] = '\0';
	r->group = at;
	at += glen + 1;
	memcpy(at, version, lv + 1);
	r->version = at;
	at += lv + 1;
	memcpy(at, kind, lk + 1);
	r->kind = at;
	at += lk + 1;
	memcpy(at, name, ln + 1);
	r->name = at;
	at += ln + 1;
	if (ns) {
		memcpy(at, ns, lns + 1);
		r->namespace = at;
	} else {
		r->namespace = NULL;
	}
	*mem = m;
}

char *rec_inventory_name(const char *pipeline, const char *env)
{
	return gitops_sprintf("gitops-inventory.%s.%s", pipeline, env);
}

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* The grouped form's `groups` expanded into `objects` (in place). False when it is damaged. */
static bool expand_groups(json_t *doc)
{
	json_t *groups = json_object_get(doc, "groups");
	if (!groups)
		return true;
	json_t *objs = json_object_get(doc, "objects");
	if (!json_is_array(groups) || (objs && !json_is_array(objs)))
		return false;
	if (!objs) {
		objs = json_array();
		json_object_set_new(doc, "objects", objs);
	}
	size_t i, j;
	json_t *g, *name;
	json_array_foreach(groups, i, g) {
		json_t *names = json_object_get(g, "names");
		if (!json_is_array(names) || !json_is_string(json_object_get(g, "apiVersion")) ||
		    !json_is_string(json_object_get(g, "kind")))
			return false;
		json_array_foreach(names, j, name) {
			if (!json_is_string(name))
				return false;
			json_t *ref = json_pack("{s:O, s:O, s:O}", "apiVersion", json_object_get(g, "apiVersion"), "kind",
						json_object_get(g, "kind"), "name", name);
			if (json_object_get(g, "namespace"))
				json_object_set(ref, "namespace", json_object_get(g, "namespace"));
			if (json_object_get(g, "app"))
				json_object_set(ref, "app", json_object_get(g, "app"));
			json_array_append_new(objs, ref);
		}
	}
	json_object_del(doc, "groups");
	return true;
}

/* The grouped form of `doc` (a new document): one group per apiVersion, kind, namespace and app,
 * in the order of their first entries. */
static json_t *grouped(const json_t *doc)
{
	json_t *out = json_deep_copy(doc), *groups = json_array(), *index = json_object();
	json_object_del(out, "objects");
	size_t i;
	json_t *ref;
	json_array_foreach(json_object_get(doc, "objects"), i, ref) {
		const char *av = str(ref, "apiVersion"), *kind = str(ref, "kind"), *ns = str(ref, "namespace");
		const char *app = str(ref, "app");
		char *k = gitops_sprintf("%s\n%s\n%s\n%s", av ? av : "", kind ? kind : "", ns ? ns : "\001", app ? app : "\001");
		json_t *g = json_object_get(index, k);
		if (!g) {
			g = json_pack("{s:s, s:s, s:[]}", "apiVersion", av ? av : "", "kind", kind ? kind : "", "names");
			if (ns)
				json_object_set_new(g, "namespace", json_string(ns));
			if (app)
				json_object_set_new(g, "app", json_string(app));
			json_array_append_new(groups, g);
			json_object_set(index, k, g);
		}
		free(k);
		json_array_append(json_object_get(g, "names"), json_object_get(ref, "name"));
	}
	json_decref(index);
	json_object_set_new(out, "groups", groups);
	return out;
}

/* Parses the inventory.json of ConfigMap `cm` (either form) into the `objects` form. */
int rec_inventory_parse(json_t **doc, const json_t *cm, const char *name)
{
	const char *text = str(json_object_get(cm, "data"), INVENTORY_KEY);
	json_error_t jerr;
	/* in an arena: an inventory is read whole, kept as long as the plan and freed with it */
	gitops_json_arena *arena = gitops_json_arena_open();
	gitops_json_arena *was = gitops_json_arena_use(arena);
	*doc = text ? json_loads(text, 0, &jerr) : NULL;
	bool ok = *doc && expand_groups(*doc); /* the grouped form's entries in the arena too */
	gitops_json_arena_use(was);
	gitops_json_arena_close(arena);
	if (!ok || !json_is_array(json_object_get(*doc, "objects"))) {
		json_decref(*doc);
		*doc = NULL;
		return gitops_error_set(GITOPS_EINVALID, "ConfigMap %s/%s: %s is missing or damaged; nothing was changed. "
					"Restore it, or delete it and sync with --adopt (objects gitops applied before and "
					"that git no longer has will then not be pruned)", REC_INVENTORY_NAMESPACE, name,
					INVENTORY_KEY);
	}
	return GITOPS_OK;
}

/* An inventory of an earlier release (gitops-inventory-<env>, one per environment name for
 * every repository): used only when none of this pipeline exists yet and its last revision is
 * a commit of this repository; entries of apps the environment does not have are dropped. */
static int load_legacy(rec_inventory *inv, rec_workspace *ws, const struct mf_environment *env)
{
	char *name = gitops_sprintf("gitops-inventory-%s", env->name);
	json_t *cm = NULL, *old = NULL;
	int rc = kube_get(&cm, inv->c, "v1", "ConfigMap", REC_INVENTORY_NAMESPACE, name);
	if (rc == GITOPS_ENOTFOUND) {
		gitops_error_clear();
		rc = GITOPS_OK;
		goto done;
	}
	if (rc || (rc = rec_inventory_parse(&old, cm, name)))
		goto done;
	const char *rev = str(old, "revision");
	if (!rev || strlen(rev) != 40 || rec_workspace_has_commit(ws, rev) != GITOPS_OK) {
		rec_progress(ws, "%s: ConfigMap %s/%s of an earlier release belongs to another repository (its "
			     "revision %.12s is not in %s): not used", env->name, REC_INVENTORY_NAMESPACE, name,
			     rev ? rev : "?", rec_workspace_repo_url(ws));
		goto done;
	}
	size_t i, kept = 0;
	json_t *ref, *objects = json_object_get(inv->doc, "objects");
	json_array_foreach(json_object_get(old, "objects"), i, ref) {
		const char *app = str(ref, "app");
		if (app && mf_environment_app(env, app)) {
			json_array_append(objects, ref);
			kept++;
		}
	}
	json_object_set(inv->doc, "revision", json_object_get(old, "revision"));
	inv->legacy = true;
	rec_progress(ws, "%s: using %zu entries of the inventory %s/%s of an earlier release (written at %.12s of "
		     "this repository); the next sync records them in %s/%s and leaves the old one as it is", env->name,
		     kept, REC_INVENTORY_NAMESPACE, name, rev, REC_INVENTORY_NAMESPACE, inv->name);
done:
	json_decref(old);
	json_decref(cm);
	free(name);
	return rc;
}

static json_t *empty_doc(const rec_inventory *inv)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[]}", "pipeline", inv->pipeline, "environment", inv->env,
			 "repository", inv->repository, "rootCommit", inv->root_commit, "revision", "", "syncedAt", "",
			 "objects");
}

/* Reads the ConfigMap (inv->cm, inv->doc); not found: an empty document. */
static int read_inventory(rec_inventory *inv)
{
	json_decref(inv->cm);
	json_decref(inv->doc);
	inv->cm = NULL;
	inv->doc = NULL;
	json_t *cm = NULL;
	int rc = kube_get(&cm, inv->c, "v1", "ConfigMap", REC_INVENTORY_NAMESPACE, inv->name);
	if (rc == GITOPS_ENOTFOUND) {
		gitops_error_clear();
		inv->doc = empty_doc(inv);
		return GITOPS_OK;
	}
	if (rc)
		return gitops_error_prefix("reading the inventory");
	if ((rc = rec_inventory_parse(&inv->doc, cm, inv->name))) {
		json_decref(cm);
		return rc;
	}
	inv->cm = cm;
	return rec_inventory_check(inv);
}

int rec_inventory_check(const rec_inventory *inv)
{
	const char *pl = str(inv->doc, "pipeline"), *en = str(inv->doc, "environment"), *root = str(inv->doc, "rootCommit");
	if ((pl && strcmp(pl, inv->pipeline)) || (en && strcmp(en, inv->env)))
		return gitops_error_set(GITOPS_EINVALID, "ConfigMap %s/%s records pipeline %s environment %s, not %s/%s; "
					"nothing was changed", REC_INVENTORY_NAMESPACE, inv->name, pl ? pl : "?", en ? en : "?",
					inv->pipeline, inv->env);
	if (root && *inv->root_commit && strcmp(root, inv->root_commit))
		return gitops_error_set(GITOPS_EINVALID, "pipeline name \"%s\" is taken on this cluster: ConfigMap %s/%s "
					"belongs to repository %s (root commit %.12s), not to this one (root commit %.12s); "
					"give this repository another `name` in gitops.yaml. Nothing was changed",
					inv->pipeline, REC_INVENTORY_NAMESPACE, inv->name, str(inv->doc, "repository") ?: "?",
					root, inv->root_commit);
	return GITOPS_OK;
}

int rec_inventory_open(rec_inventory **out, rec_workspace *ws, kube_client *c, const struct mf_environment *env)
{
	*out = NULL;
	const char *pipeline, *root;
	int rc = rec_workspace_pipeline(&pipeline, &root, ws);
	if (rc)
		return rc;
	rec_inventory *inv = gitops_calloc(1, sizeof(*inv));
	inv->c = c;
	inv->pipeline = gitops_strdup(pipeline);
	inv->env = gitops_strdup(env->name);
	inv->repository = gitops_strdup(rec_workspace_repo_url(ws));
	snprintf(inv->root_commit, sizeof(inv->root_commit), "%s", root);
	inv->name = rec_inventory_name(pipeline, env->name);
	if ((rc = read_inventory(inv)) == GITOPS_OK && !inv->cm)
		rc = load_legacy(inv, ws, env);
	if (rc) {
		rec_inventory_free(inv);
		return rc;
	}
	*out = inv;
	return GITOPS_OK;
}

void rec_inventory_free(rec_inventory *inv)
{
	if (!inv)
		return;
	json_decref(inv->cm);
	json_decref(inv->doc);
	free(inv->pipeline);
	free(inv->env);
	free(inv->repository);
	free(inv->name);
	free(inv);
}

const char *rec_inventory_rv(const rec_inventory *inv)
{
	return str(json_object_get(inv->cm, "metadata"), "resourceVersion");
}

struct keyed_ref { char *key; json_t *ref; };

static int cmp_refs(const void *a, const void *b)
{
	return strcmp(((const struct keyed_ref *)a)->key, ((const struct keyed_ref *)b)->key);
}

/* Sorted by key, so an unchanged inventory serializes identically (each key built once). */
static void sort_objects(json_t *doc)
{
	json_t *objs = json_object_get(doc, "objects");
	size_t n = json_array_size(objs);
	struct keyed_ref *v = gitops_calloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i].ref = json_incref(json_array_get(objs, i));
		v[i].key = rec_ref_key(v[i].ref);
	}
	qsort(v, n, sizeof(*v), cmp_refs);
	json_t *sorted = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(sorted, v[i].ref);
		free(v[i].key);
	}
	free(v);
	json_object_set_new(doc, "objects", sorted);
}

char *rec_inventory_encode(const json_t *doc, size_t *len)
{
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	*len = strlen(text);
	if (*len > INVENTORY_MAX_BYTES) {
		json_t *g = grouped(doc);
		free(text);
		text = json_dumps(g, JSON_COMPACT | JSON_SORT_KEYS);
		*len = strlen(text);
		json_decref(g);
	}
	return text;
}

static int ensure_namespace(kube_client *c)
{
	json_t *ns = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name",
			       REC_INVENTORY_NAMESPACE, "labels", REC_LABEL_MANAGED_BY, "gitops");
	int rc = kube_apply(NULL, NULL, c, ns, &(struct kube_apply_options){.force = true});
	json_decref(ns);
	return rc ? gitops_error_prefix("namespace %s", REC_INVENTORY_NAMESPACE) : GITOPS_OK;
}

int rec_inventory_edit(rec_inventory *inv, rec_inventory_edit_fn edit, void *ud)
{
	for (int attempt = 0; attempt < 200; attempt++) {
		json_t *doc = json_deep_copy(inv->doc);
		/* Identity fields: always this pipeline's (an earlier release's document lacks them). */
		json_object_set_new(doc, "pipeline", json_string(inv->pipeline));
		json_object_set_new(doc, "environment", json_string(inv->env));
		json_object_set_new(doc, "repository", json_string(inv->repository));
		json_object_set_new(doc, "rootCommit", json_string(inv->root_commit));
		edit(doc, ud);
		sort_objects(doc);
		if (inv->cm && json_equal(doc, inv->doc)) {
			json_decref(doc);
			return GITOPS_OK;
		}
		size_t len;
		char *text = rec_inventory_encode(doc, &len);
		if (len > INVENTORY_MAX_BYTES) {
			int rc = gitops_error_set(GITOPS_EINVALID, "the inventory of pipeline %s environment %s would hold %zu "
						  "objects in %zu bytes, over the ConfigMap limit of 1 MiB (names of 20 "
						  "characters: about 40,000 objects); split the environment. Nothing was applied",
						  inv->pipeline, inv->env, json_array_size(json_object_get(doc, "objects")), len);
			free(text);
			json_decref(doc);
			return rc;
		}
		json_t *cm;
		if (inv->cm) {
			cm = json_deep_copy(inv->cm);
			json_object_set_new(cm, "data", json_pack("{s:s}", INVENTORY_KEY, text));
		} else {
			cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
				       "ConfigMap", "metadata", "name", inv->name, "namespace", REC_INVENTORY_NAMESPACE, "labels",
				       REC_LABEL_MANAGED_BY, "gitops", REC_LABEL_PIPELINE, inv->pipeline, REC_LABEL_ENV, inv->env,
				       "data", INVENTORY_KEY, text);
		}
		free(text);
		json_t *stored = NULL;
		int rc;
		if (inv->cm) {
			rc = kube_update(&stored, inv->c, cm);
		} else {
			rc = kube_create(&stored, inv->c, cm);
			if (rc == GITOPS_ENOTFOUND && (rc = ensure_namespace(inv->c)) == GITOPS_OK)
				rc = kube_create(&stored, inv->c, cm);
		}
		json_decref(cm);
		if (rc == GITOPS_OK) {
			json_decref(inv->cm);
			json_decref(inv->doc);
			inv->cm = stored;
			inv->doc = doc;
			return GITOPS_OK;
		}
		json_decref(doc);
		if (rc != GITOPS_ECONFLICT && rc != GITOPS_EEXISTS)
			return gitops_error_prefix("writing the inventory %s/%s", REC_INVENTORY_NAMESPACE, inv->name);
		/* Someone else wrote it since it was read: read again, apply the edit again. */
		if ((rc = read_inventory(inv)))
			return rc;
		usleep((useconds_t)(1000 * (1 + rand() % 20)));
	}
	return gitops_error_set(GITOPS_ECONFLICT, "writing the inventory %s/%s: it kept changing (200 attempts)",
				REC_INVENTORY_NAMESPACE, inv->name);
}

int rec_inventory_reload(rec_inventory *inv) { return read_inventory(inv); }

int rec_inventory_info(struct rec_inventory_info *out, rec_workspace *ws, const struct mf_environment *env)
{
	memset(out, 0, sizeof(*out));
	kube_client *c;
	int rc = rec_workspace_client(&c, ws, env);
	if (rc)
		return rc;
	rec_inventory *inv;
	if ((rc = rec_inventory_open(&inv, ws, c, env)))
		return rc;
	snprintf(out->pipeline, sizeof(out->pipeline), "%s", inv->pipeline);
	snprintf(out->name, sizeof(out->name), "%s", inv->name);
	snprintf(out->revision, sizeof(out->revision), "%s", str(inv->doc, "revision") ?: "");
	snprintf(out->synced_at, sizeof(out->synced_at), "%s", str(inv->doc, "syncedAt") ?: "");
	out->objects = json_array_size(json_object_get(inv->doc, "objects"));
	rec_inventory_free(inv);
	return GITOPS_OK;
}

/* ---- the lock ------------------------------------------------------------------------------- */

struct rec_lock {
	kube_client *c;
	char *name, *holder;
	json_t *lease;            /* as last written by us */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, lost, started;
};

static void micro_time(char out[64])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char base[24];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 64, "%.23s.%06ldZ", base, (ts.tv_nsec / 1000) % 1000000);
}

/* A holder on this host whose process is gone: "host/pid/nonce". */
static bool holder_dead_here(const char *holder)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	size_t hl = strlen(host);
	if (!holder || strncmp(holder, host, hl) || holder[hl] != '/')
		return false;
	long pid = strtol(holder + hl + 1, NULL, 10);
	return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static json_t *lease_body(rec_lock *l, const json_t *old)
{
	char now[64];
	micro_time(now);
	json_t *lease = old ? json_deep_copy(old)
			    : json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}}", "apiVersion", "coordination.k8s.io/v1", "kind",
					"Lease", "metadata", "name", l->name, "namespace", REC_INVENTORY_NAMESPACE, "labels",
					REC_LABEL_MANAGED_BY, "gitops");
	json_t *spec = json_object_get(lease, "spec");
	if (!json_is_object(spec)) {
		spec = json_object();
		json_object_set_new(lease, "spec", spec);
	}
	const char *prev = str(spec, "holderIdentity");
	if (!prev || strcmp(prev, l->holder))
		json_object_set_new(spec, "acquireTime", json_string(now));
	json_object_set_new(spec, "holderIdentity", json_string(l->holder));
	json_object_set_new(spec, "leaseDurationSeconds", json_integer(LEASE_SECONDS));
	json_object_set_new(spec, "renewTime", json_string(now));
	return lease;
}

bool rec_lock_free(const json_t *lease, long long unchanged_ms)
{
	json_t *spec = json_object_get(lease, "spec");
	const char *holder = str(spec, "holderIdentity");
	long long dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	if (dur <= 0)
		dur = LEASE_SECONDS;
	return !holder || !*holder || holder_dead_here(holder) || unchanged_ms > dur * 1000;
}

json_t *rec_lock_body(const char *name, const char *holder, const json_t *old)
{
	rec_lock l = {.name = (char *)name, .holder = (char *)holder};
	return lease_body(&l, old);
}

static void *renew_main(void *arg)
{
	rec_lock *l = arg;
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += LEASE_SECONDS / 3;
		pthread_cond_timedwait(&l->cv, &l->mu, &until);
		if (l->stop)
			break;
		json_t *body = lease_body(l, l->lease), *stored = NULL;
		int rc = kube_update(&stored, l->c, body);
		json_decref(body);
		if (rc == GITOPS_OK) {
			json_decref(l->lease);
			l->lease = stored;
		} else if (rc == GITOPS_ECONFLICT) {
			l->lost = true; /* someone took it over: the sync stops before its next write */
			break;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int rec_lock_acquire(rec_lock **out, rec_workspace *ws, kube_client *c, const char *pipeline, const char *env,
		     long timeout_ms)
{
	*out = NULL;
	rec_lock *l = gitops_calloc(1, sizeof(*l));
	l->c = c;
	l->name = gitops_sprintf("gitops-lock.%s.%s", pipeline, env);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->holder = gitops_sprintf("%s/%ld/%lx", host, (long)getpid(), (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	long long start = gitops_now_ms(), seen_at = 0;
	char *seen_rv = NULL;
	bool told = false;
	int rc;
	for (;;) {
		json_t *cur = NULL, *stored = NULL;
		rc = kube_get(&cur, c, "coordination.k8s.io/v1", "Lease", REC_INVENTORY_NAMESPACE, l->name);
		if (rc == GITOPS_ENOTFOUND) {
			json_t *body = lease_body(l, NULL);
			rc = kube_create(&stored, c, body);
			if (rc == GITOPS_ENOTFOUND && (rc = ensure_namespace(c)) == GITOPS_OK)
				rc = kube_create(&stored, c, body);
			json_decref(body);
		} else if (rc == GITOPS_OK) {
			json_t *spec = json_object_get(cur, "spec");
			const char *holder = str(spec, "holderIdentity");
			const char *rv = str(json_object_get(cur, "metadata"), "resourceVersion");
			/* Expiry is judged on this host's clock: the lease has not been renewed (its
			 * resourceVersion has not moved) for its duration since we first saw it. */
			if (!seen_rv || !rv || strcmp(seen_rv, rv)) {
				free(seen_rv);
				seen_rv = gitops_strdup(rv ? rv : "");
				seen_at = gitops_now_ms();
			}
			bool free_now = rec_lock_free(cur, gitops_now_ms() - seen_at);
			if (free_now) {
				json_t *body = lease_body(l, cur);
				rc = kube_update(&stored, c, body);
				json_decref(body);
			} else {
				if (!told)
					rec_progress(ws, "%s: waiting for another sync of this environment to finish (lock %s/%s "
						     "held by %s since %s)", env, REC_INVENTORY_NAMESPACE, l->name, holder,
						     str(spec, "acquireTime") ?: "?");
				told = true;
				rc = GITOPS_ECONFLICT;
				if (gitops_now_ms() - start > timeout_ms) {
					rc = gitops_error_set(GITOPS_ETIMEOUT, "another sync of %s is still running (lock %s/%s "
							      "held by %s since %s); try again when it has finished", env,
							      REC_INVENTORY_NAMESPACE, l->name, holder, str(spec, "acquireTime") ?: "?");
					json_decref(cur);
					break;
				}
				usleep(200 * 1000);
			}
		}
		json_decref(cur);
		if (rc == GITOPS_OK) {
			l->lease = stored;
			break;
		}
		if (rc != GITOPS_ECONFLICT && rc != GITOPS_EEXISTS) {
			rc = gitops_error_prefix("taking the sync lock %s/%s", REC_INVENTORY_NAMESPACE, l->name);
			break;
		}
		usleep((useconds_t)(1000 * (1 + rand() % 50)));
	}
	free(seen_rv);
	if (rc) {
		rec_lock_release(l);
		return rc;
	}
	gitops_error_clear();
	if (pthread_create(&l->thread, NULL, renew_main, l) == 0)
		l->started = true;
	*out = l;
	return GITOPS_OK;
}

bool rec_lock_lost(rec_lock *l)
{
	pthread_mutex_lock(&l->mu);
	bool lost = l->lost;
	pthread_mutex_unlock(&l->mu);
	return lost;
}

void rec_lock_release(rec_lock *l)
{
	if (!l)
		return;
	if (l->started) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	if (l->lease && !l->lost) {
		/* Hand it back: holder cleared, compare-and-swap (never clears someone else's). */
		json_t *body = json_deep_copy(l->lease);
		json_t *spec = json_object_get(body, "spec");
		json_object_set_new(spec, "holderIdentity", json_string(""));
		if (kube_update(NULL, l->c, body))
			gitops_error_clear();
		json_decref(body);
	}
	json_decref(l->lease);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l->name);
	free(l->holder);
	free(l);
}
