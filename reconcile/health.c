/* reconcile/health: the health rules (kstatus first, Argo CD's Degraded where kstatus says
 * Failed) and the wait for a set of objects, fed by kube's list-then-watch caches. */
#include "reconcile/health.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

const char *rec_health_name(enum rec_health h)
{
	switch (h) {
	case REC_HEALTHY: return "Healthy";
	case REC_PROGRESSING: return "Progressing";
	default: return "Degraded";
	}
}

/* ---- Rules ------------------------------------------------------------------------------ */

struct verdict {
	char *buf;
	size_t size;
};

/* Writes the reason (one line: control characters become spaces) and returns h. */
static enum rec_health say(struct verdict *v, enum rec_health h, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum rec_health say(struct verdict *v, enum rec_health h, const char *fmt, ...)
{
	if (!v->buf || !v->size)
		return h;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->buf, v->size, fmt, ap);
	va_end(ap);
	for (char *p = v->buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return h;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An integer field (0 when absent); *present tells whether it was there. */
static long long num(const json_t *o, const char *key, bool *present)
{
	json_t *v = json_object_get(o, key);
	if (present)
		*present = json_is_integer(v);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static const json_t *condition(const json_t *obj, const char *type)
{
	json_t *conds = json_object_get(json_object_get(obj, "status"), "conditions");
	size_t i;
	json_t *c;
	json_array_foreach(conds, i, c) {
		const char *t = str(c, "type");
		if (t && !strcmp(t, type))
			return c;
	}
	return NULL;
}

/* The condition's status is `want` ("True", "False"). */
static bool cond_is(const json_t *obj, const char *type, const char *want)
{
	const char *s = str(condition(obj, type), "status");
	return s && !strcmp(s, want);
}

/* "reason: message" of a condition, or "" */
static void cond_text(char *out, size_t size, const json_t *c)
{
	const char *r = str(c, "reason"), *m = str(c, "message");
	snprintf(out, size, "%s%s%s", r ? r : "", r && m && *m ? ": " : "", m ? m : "");
}

/* spec.replicas, 1 when absent (the API default). */
static long long spec_replicas(const json_t *obj)
{
	bool has;
	long long n = num(json_object_get(obj, "spec"), "replicas", &has);
	return has ? n : 1;
}

static enum rec_health deployment(const json_t *obj, struct verdict *v)
{
	const json_t *spec = json_object_get(obj, "spec"), *st = json_object_get(obj, "status");
	long long want = spec_replicas(obj);
	long long replicas = num(st, "replicas", NULL), updated = num(st, "updatedReplicas", NULL);
	long long ready = num(st, "readyReplicas", NULL), available = num(st, "availableReplicas", NULL);
	if (json_is_true(json_object_get(spec, "paused")))
		return say(v, REC_HEALTHY, "rollout paused (spec.paused)");
	const json_t *prog = condition(obj, "Progressing");
	const char *pr = str(prog, "reason");
	if (pr && !strcmp(pr, "ProgressDeadlineExceeded")) {
		char t[200];
		cond_text(t, sizeof t, prog);
		return say(v, REC_DEGRADED, "rollout failed: %s", t);
	}
	if (updated < want)
		return say(v, REC_PROGRESSING, "%lld of %lld replicas updated", updated, want);
	if (replicas > updated)
		return say(v, REC_PROGRESSING, "%lld old replicas pending termination", replicas - updated);
	if (available < updated)
		return say(v, REC_PROGRESSING, "%lld of %lld updated replicas available", available, updated);
	if (ready < want)
		return say(v, REC_PROGRESSING, "%lld of %lld replicas ready", ready, want);
	/* The controller says the rollout is complete (only with a progress deadline, which the
	 * API defaults to 600 s). */
	const char *preason = str(prog, "reason");
	if (json_object_get(spec, "progressDeadlineSeconds") &&
	    !(cond_is(obj, "Progressing", "True") && preason && !strcmp(preason, "NewReplicaSetAvailable")))
		return say(v, REC_PROGRESSING, "new ReplicaSet not yet available");
	if (!cond_is(obj, "Available", "True"))
		return say(v, REC_PROGRESSING, "condition Available is not True");
	return say(v, REC_HEALTHY, "rolled out: %lld of %lld replicas ready", ready, want);
}

static enum rec_health statefulset(const json_t *obj, struct verdict *v)
{
	const json_t *spec = json_object_get(obj, "spec"), *st = json_object_get(obj, "status");
	const json_t *strategy = json_object_get(spec, "updateStrategy");
	const char *type = str(strategy, "type");
	if (type && !strcmp(type, "OnDelete"))
		return say(v, REC_HEALTHY, "updateStrategy OnDelete: rollout not tracked");
	long long want = spec_replicas(obj);
	long long replicas = num(st, "replicas", NULL), ready = num(st, "readyReplicas", NULL);
	long long updated = num(st, "updatedReplicas", NULL), current = num(st, "currentReplicas", NULL);
	if (ready < want)
		return say(v, REC_PROGRESSING, "%lld of %lld replicas ready", ready, want);
	if (replicas > want)
		return say(v, REC_PROGRESSING, "%lld extra replicas pending termination", replicas - want);
	bool has_part;
	long long partition = num(json_object_get(strategy, "rollingUpdate"), "partition", &has_part);
	if (has_part && partition > 0) {
		long long expect = want > partition ? want - partition : 0;
		if (updated < expect)
			return say(v, REC_PROGRESSING, "%lld of %lld replicas above the partition updated", updated, expect);
		return say(v, REC_HEALTHY, "partitioned rollout: %lld replicas updated", updated);
	}
	if (current < want)
		return say(v, REC_PROGRESSING, "%lld of %lld replicas at the current revision", current, want);
	const char *cur = str(st, "currentRevision"), *upd = str(st, "updateRevision");
	if (cur && upd && strcmp(cur, upd))
		return say(v, REC_PROGRESSING, "rolling update to revision %s in progress", upd);
	return say(v, REC_HEALTHY, "rolled out: %lld of %lld replicas ready", ready, want);
}

static enum rec_health daemonset(const json_t *obj, struct verdict *v)
{
	const json_t *st = json_object_get(obj, "status");
	bool has;
	num(st, "observedGeneration", &has);
	if (!has)
		return say(v, REC_PROGRESSING, "not yet observed by its controller");
	long long desired = num(st, "desiredNumberScheduled", &has);
	if (!has)
		return say(v, REC_PROGRESSING, "desiredNumberScheduled not set yet");
	long long scheduled = num(st, "currentNumberScheduled", NULL);
	long long updated = num(st, "updatedNumberScheduled", NULL);
	long long available = num(st, "numberAvailable", NULL), ready = num(st, "numberReady", NULL);
	const char *type = str(json_object_get(json_object_get(obj, "spec"), "updateStrategy"), "type");
	if (scheduled < desired)
		return say(v, REC_PROGRESSING, "%lld of %lld pods scheduled", scheduled, desired);
	if (!(type && !strcmp(type, "OnDelete")) && updated < desired)
		return say(v, REC_PROGRESSING, "%lld of %lld pods updated", updated, desired);
	if (available < desired)
		return say(v, REC_PROGRESSING, "%lld of %lld pods available", available, desired);
	if (ready < desired)
		return say(v, REC_PROGRESSING, "%lld of %lld pods ready", ready, desired);
	return say(v, REC_HEALTHY, "rolled out: %lld of %lld pods ready", ready, desired);
}

static enum rec_health replicaset(const json_t *obj, struct verdict *v)
{
	const json_t *st = json_object_get(obj, "status");
	if (cond_is(obj, "ReplicaFailure", "True")) {
		char t[200];
		cond_text(t, sizeof t, condition(obj, "ReplicaFailure"));
		return say(v, REC_DEGRADED, "replica failure: %s", t);
	}
	long long want = spec_replicas(obj);
	long long replicas = num(st, "replicas", NULL), labeled = num(st, "fullyLabeledReplicas", NULL);
	long long ready = num(st, "readyReplicas", NULL), available = num(st, "availableReplicas", NULL);
	if (labeled < want)
		return say(v, REC_PROGRESSING, "%lld of %lld replicas labeled", labeled, want);
	if (available < want)
		return say(v, REC_PROGRESSING, "%lld of %lld replicas available", available, want);
	if (ready < want)
		return say(v, REC_PROGRESSING, "%lld of %lld replicas ready", ready, want);
	if (replicas > want)
		return say(v, REC_PROGRESSING, "%lld extra replicas pending termination", replicas - want);
	return say(v, REC_HEALTHY, "%lld of %lld replicas ready", ready, want);
}

static enum rec_health job(const json_t *obj, struct verdict *v)
{
	char t[200];
	if (cond_is(obj, "Failed", "True") || cond_is(obj, "FailureTarget", "True")) {
		const json_t *c = condition(obj, "Failed");
		cond_text(t, sizeof t, c && cond_is(obj, "Failed", "True") ? c : condition(obj, "FailureTarget"));
		return say(v, REC_DEGRADED, "job failed: %s", t);
	}
	if (cond_is(obj, "Complete", "True"))
		return say(v, REC_HEALTHY, "job complete: %lld succeeded",
			   num(json_object_get(obj, "status"), "succeeded", NULL));
	if (cond_is(obj, "Suspended", "True") ||
	    json_is_true(json_object_get(json_object_get(obj, "spec"), "suspend")))
		return say(v, REC_HEALTHY, "job suspended");
	const json_t *st = json_object_get(obj, "status");
	return say(v, REC_PROGRESSING, "job running: %lld active, %lld succeeded, %lld failed",
		   num(st, "active", NULL), num(st, "succeeded", NULL), num(st, "failed", NULL));
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/* A container waiting for a reason that does not fix itself. */
static bool bad_wait(const char *reason)
{
	return !strcmp(reason, "CrashLoopBackOff") || !strcmp(reason, "ImagePullBackOff") ||
	       !strcmp(reason, "ErrImagePull") || !strcmp(reason, "InvalidImageName") ||
	       ends_with(reason, "Error") || ends_with(reason, "BackOff");
}

static enum rec_health pod(const json_t *obj, struct verdict *v)
{
	const json_t *st = json_object_get(obj, "status");
	const char *phase = str(st, "phase");
	if (phase && !strcmp(phase, "Succeeded"))
		return say(v, REC_HEALTHY, "pod succeeded");
	if (phase && !strcmp(phase, "Failed")) {
		const char *r = str(st, "reason"), *m = str(st, "message");
		return say(v, REC_DEGRADED, "pod failed%s%s%s%s", r ? ": " : "", r ? r : "", m ? ": " : "", m ? m : "");
	}
	const char *lists[] = {"initContainerStatuses", "containerStatuses"};
	for (size_t l = 0; l < 2; l++) {
		size_t i;
		json_t *cs;
		json_array_foreach(json_object_get(st, lists[l]), i, cs) {
			const json_t *w = json_object_get(json_object_get(cs, "state"), "waiting");
			const char *r = str(w, "reason");
			if (r && bad_wait(r)) {
				const char *m = str(w, "message");
				return say(v, REC_DEGRADED, "container %s: %s%s%s", str(cs, "name") ? str(cs, "name") : "?",
					   r, m ? ": " : "", m ? m : "");
			}
		}
	}
	if (phase && !strcmp(phase, "Running") && cond_is(obj, "Ready", "True"))
		return say(v, REC_HEALTHY, "pod running and ready");
	const json_t *sched = condition(obj, "PodScheduled");
	const char *sr = str(sched, "reason");
	if (sr && !strcmp(sr, "Unschedulable")) {
		char t[200];
		cond_text(t, sizeof t, sched);
		return say(v, REC_PROGRESSING, "pod not scheduled: %s", t);
	}
	return say(v, REC_PROGRESSING, "pod %s, not ready", phase ? phase : "pending");
}

static enum rec_health pvc(const json_t *obj, struct verdict *v)
{
	const char *phase = str(json_object_get(obj, "status"), "phase");
	if (phase && !strcmp(phase, "Bound"))
		return say(v, REC_HEALTHY, "bound");
	if (phase && !strcmp(phase, "Lost"))
		return say(v, REC_DEGRADED, "claim lost its volume");
	return say(v, REC_PROGRESSING, "claim %s", phase ? phase : "not bound yet");
}

static enum rec_health service(const json_t *obj, struct verdict *v)
{
	const char *type = str(json_object_get(obj, "spec"), "type");
	if (!type || strcmp(type, "LoadBalancer"))
		return say(v, REC_HEALTHY, "service %s", type ? type : "ClusterIP");
	json_t *ing = json_object_get(json_object_get(json_object_get(obj, "status"), "loadBalancer"), "ingress");
	if (json_array_size(ing) == 0)
		return say(v, REC_PROGRESSING, "waiting for a load balancer address");
	json_t *first = json_array_get(ing, 0);
	const char *addr = str(first, "ip") ? str(first, "ip") : str(first, "hostname");
	return say(v, REC_HEALTHY, "load balancer at %s", addr ? addr : "(address)");
}

static enum rec_health crd(const json_t *obj, struct verdict *v)
{
	char t[200];
	if (cond_is(obj, "NamesAccepted", "False")) {
		cond_text(t, sizeof t, condition(obj, "NamesAccepted"));
		return say(v, REC_DEGRADED, "names not accepted: %s", t);
	}
	if (cond_is(obj, "NonStructuralSchema", "True")) {
		cond_text(t, sizeof t, condition(obj, "NonStructuralSchema"));
		return say(v, REC_DEGRADED, "non-structural schema: %s", t);
	}
	if (cond_is(obj, "Established", "True"))
		return say(v, REC_HEALTHY, "established");
	const json_t *est = condition(obj, "Established");
	const char *r = str(est, "reason");
	if (cond_is(obj, "Established", "False") && !(r && !strcmp(r, "Installing"))) {
		cond_text(t, sizeof t, est);
		return say(v, REC_DEGRADED, "not established: %s", t);
	}
	return say(v, REC_PROGRESSING, "not established yet");
}

static enum rec_health apiservice(const json_t *obj, struct verdict *v)
{
	if (cond_is(obj, "Available", "True"))
		return say(v, REC_HEALTHY, "available");
	const json_t *c = condition(obj, "Available");
	char t[200];
	cond_text(t, sizeof t, c);
	return say(v, REC_PROGRESSING, "not available%s%s", *t ? ": " : "", t);
}

/* "apps/v1" -> "apps"; "v1" -> "" (truncated to size - 1). */
static void group_of(char *out, size_t size, const char *api_version)
{
	size_t n = gitops_api_group_len(api_version, NULL);
	if (n >= size)
		n = size - 1;
	memcpy(out, api_version ? api_version : "", n);
	out[n] = '\0';
}

enum rec_health rec_health_assess(const json_t *obj, char *reason, size_t size)
{
	struct verdict v = {reason, size};
	if (reason && size)
		reason[0] = '\0';
	const json_t *meta = json_object_get(obj, "metadata"), *st = json_object_get(obj, "status");
	if (str(meta, "deletionTimestamp"))
		return say(&v, REC_PROGRESSING, "being deleted");
	bool has_gen, has_obs;
	long long gen = num(meta, "generation", &has_gen), obs = num(st, "observedGeneration", &has_obs);
	if (has_gen && has_obs && gen != obs)
		return say(&v, REC_PROGRESSING, "generation %lld not yet observed (status is for %lld)", gen, obs);
	char t[200];
	if (cond_is(obj, "Stalled", "True")) {
		cond_text(t, sizeof t, condition(obj, "Stalled"));
		return say(&v, REC_DEGRADED, "stalled: %s", t);
	}
	if (cond_is(obj, "Reconciling", "True")) {
		cond_text(t, sizeof t, condition(obj, "Reconciling"));
		return say(&v, REC_PROGRESSING, "reconciling: %s", t);
	}
	char group[128];
	group_of(group, sizeof group, str(obj, "apiVersion"));
	const char *kind = str(obj, "kind");
	kind = kind ? kind : "";
	static const struct {
		const char *group, *kind;
		enum rec_health (*rule)(const json_t *, struct verdict *);
	} rules[] = {
		{"apps", "Deployment", deployment},
		{"apps", "StatefulSet", statefulset},
		{"apps", "DaemonSet", daemonset},
		{"apps", "ReplicaSet", replicaset},
		{"batch", "Job", job},
		{"", "Pod", pod},
		{"", "PersistentVolumeClaim", pvc},
		{"", "Service", service},
		{"apiextensions.k8s.io", "CustomResourceDefinition", crd},
		{"apiregistration.k8s.io", "APIService", apiservice},
	};
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
		if (!strcmp(rules[i].group, group) && !strcmp(rules[i].kind, kind))
			return rules[i].rule(obj, &v);
	const json_t *ready = condition(obj, "Ready");
	if (ready) {
		if (cond_is(obj, "Ready", "True"))
			return say(&v, REC_HEALTHY, "Ready");
		cond_text(t, sizeof t, ready);
		const char *s = str(ready, "status");
		return say(&v, REC_PROGRESSING, "Ready=%s%s%s", s ? s : "?", *t ? ": " : "", t);
	}
	return say(&v, REC_HEALTHY, "applied");
}

/* ---- Wait ------------------------------------------------------------------------------- */

struct target {
	struct rec_health_result r;
	bool seen;        /* an event delivered it since the wait began */
	bool changed;     /* health or reason changed since on_change was last called */
};

/* One list-then-watch per resource and namespace. */
struct group {
	struct waiter *w;
	const struct kube_resource *res;
	char *ns;                         /* NULL: cluster-scoped */
	json_t *names;                    /* name -> [index into targets...] (duplicates allowed) */
	json_t *labels;                   /* labels every object of the group carries (a selector) */
	char *selector;                   /* "k=v,k=v" from labels, or NULL */
	kube_cache *cache;
	bool synced;
};

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool dirty;                       /* something to look at: an event or a result */
	bool frozen;                      /* decided: later events change nothing */
	struct target *t;
	size_t n;
	struct group *groups;
	size_t n_groups;
};

static void set_result(struct target *t, enum rec_health h, const char *reason)
{
	if (t->r.health == h && t->r.reason && !strcmp(t->r.reason, reason))
		return;
	t->r.health = h;
	free(t->r.reason);
	t->r.reason = gitops_strdup(reason);
	t->changed = true;
}

/* On a cache's thread: re-assess the target the event is about, if it is one. */
static void on_event(void *ud, enum kube_event ev, const json_t *obj, const json_t *old)
{
	struct group *g = ud;
	struct waiter *w = g->w;
	const char *name = str(json_object_get(obj, "metadata"), "name");
	json_t *idxs = name ? json_object_get(g->names, name) : NULL;
	if (!idxs)
		return;
	char reason[REC_HEALTH_REASON_MAX];
	enum rec_health h;
	if (ev == KUBE_DELETED) {
		h = REC_PROGRESSING;
		snprintf(reason, sizeof reason, "deleted");
	} else {
		h = rec_health_assess(obj, reason, sizeof reason);
	}
	pthread_mutex_lock(&w->lock);
	if (w->frozen) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	size_t i;
	json_t *idx;
	json_array_foreach(idxs, i, idx) {
		struct target *t = &w->t[json_integer_value(idx)];
		t->seen = ev != KUBE_DELETED;
		set_result(t, h, reason);
	}
	w->dirty = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void rec_health_report_free(struct rec_health_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_unhealthy; i++) {
		struct rec_health_result *x = &r->unhealthy[i];
		free(x->api_version);
		free(x->kind);
		free(x->ns);
		free(x->name);
		free(x->reason);
	}
	free(r->unhealthy);
	memset(r, 0, sizeof(*r));
}

static void describe(gitops_buf *b, const struct rec_health_result *r)
{
	gitops_buf_printf(b, "%s %s%s%s: %s (%s)", r->kind, r->ns ? r->ns : "", r->ns ? "/" : "", r->name,
			  rec_health_name(r->health), r->reason ? r->reason : "");
}

static void stop_caches(struct waiter *w);

static void waiter_free(struct waiter *w)
{
	/* Caches first: their threads call on_event, which uses the rest. */
	stop_caches(w);
	for (size_t i = 0; i < w->n_groups; i++) {
		free(w->groups[i].ns);
		free(w->groups[i].selector);
		json_decref(w->groups[i].names);
		json_decref(w->groups[i].labels);
	}
	free(w->groups);
	for (size_t i = 0; i < w->n; i++) {
		struct rec_health_result *r = &w->t[i].r;
		free(r->api_version);
		free(r->kind);
		free(r->ns);
		free(r->name);
		free(r->reason);
	}
	free(w->t);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

/* Finds or adds the group of (res, ns). */
static struct group *group_for(struct waiter *w, const struct kube_resource *res, const char *ns)
{
	for (size_t i = 0; i < w->n_groups; i++) {
		struct group *g = &w->groups[i];
		bool same_ns = (!g->ns && !ns) || (g->ns && ns && !strcmp(g->ns, ns));
		if (res && g->res == res && same_ns)
			return g;
	}
	w->groups = gitops_realloc(w->groups, (w->n_groups + 1) * sizeof(*w->groups));
	struct group *g = &w->groups[w->n_groups++];
	memset(g, 0, sizeof(*g));
	g->w = w;
	g->res = res;
	g->ns = ns ? gitops_strdup(ns) : NULL;
	g->names = json_object();
	return g;
}

static void *free_cache(void *kc)
{
	kube_cache_free(kc);
	return NULL;
}

/* Stops every cache at once: each may take up to a second to notice (libcurl's progress
 * callback on an idle stream), so they are stopped in parallel, not one after the other. */
static void stop_caches(struct waiter *w)
{
	pthread_t *th = gitops_calloc(w->n_groups + 1, sizeof(*th));
	bool *started = gitops_calloc(w->n_groups + 1, sizeof(*started));
	for (size_t i = 0; i < w->n_groups; i++)
		started[i] = w->groups[i].cache && pthread_create(&th[i], NULL, free_cache, w->groups[i].cache) == 0;
	for (size_t i = 0; i < w->n_groups; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			kube_cache_free(w->groups[i].cache);
		w->groups[i].cache = NULL;
	}
	free(th);
	free(started);
}

/* Kinds with no status to wait for (kstatus: always Current): healthy once applied, so the
 * wait opens no watch for them. */
static bool no_status(const struct kube_resource *r)
{
	static const char *const kinds[][2] = {
		{"", "ConfigMap"}, {"", "Secret"}, {"", "ServiceAccount"}, {"", "LimitRange"},
		{"batch", "CronJob"}, {"policy", "PodDisruptionBudget"},
		{"rbac.authorization.k8s.io", "Role"}, {"rbac.authorization.k8s.io", "RoleBinding"},
		{"rbac.authorization.k8s.io", "ClusterRole"}, {"rbac.authorization.k8s.io", "ClusterRoleBinding"},
		{"networking.k8s.io", "NetworkPolicy"}, {"scheduling.k8s.io", "PriorityClass"},
		{"storage.k8s.io", "StorageClass"},
	};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (!strcmp(r->group, kinds[i][0]) && !strcmp(r->kind, kinds[i][1]))
			return true;
	return false;
}

static void timespec_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int rec_health_wait(struct rec_health_report *report, kube_client *c, json_t *const *objs, size_t n,
		    const struct rec_health_wait_options *opt)
{
	struct rec_health_wait_options none = {0};
	if (!opt)
		opt = &none;
	memset(report, 0, sizeof(*report));
	for (size_t i = 0; i < n; i++) {
		const json_t *meta = json_object_get(objs[i], "metadata");
		if (!str(objs[i], "apiVersion") || !str(objs[i], "kind") || !str(meta, "name"))
			return gitops_error_set(GITOPS_EINVALID, "health wait: object %zu has no apiVersion, kind or metadata.name", i);
	}
	long long start = gitops_now_ms();
	struct waiter w = {0};
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	w.n = n;
	w.t = gitops_calloc(n ? n : 1, sizeof(*w.t));

	/* Targets and their groups; nothing runs on other threads yet. */
	for (size_t i = 0; i < n; i++) {
		const json_t *meta = json_object_get(objs[i], "metadata");
		struct target *t = &w.t[i];
		t->r.api_version = gitops_strdup(str(objs[i], "apiVersion"));
		t->r.kind = gitops_strdup(str(objs[i], "kind"));
		t->r.name = gitops_strdup(str(meta, "name"));
		t->r.health = REC_PROGRESSING;
		t->r.reason = gitops_strdup("not observed yet");
		const struct kube_resource *res = NULL;
		if (kube_resource_for(&res, c, t->r.api_version, t->r.kind) != GITOPS_OK) {
			t->r.health = REC_DEGRADED;
			free(t->r.reason);
			t->r.reason = gitops_sprintf("kind not served: %s", gitops_error_last());
			t->changed = true;
			gitops_error_clear();
			continue;
		}
		if (res->namespaced) {
			const char *ns = str(meta, "namespace");
			t->r.ns = gitops_strdup(ns && *ns ? ns : "default");
		}
		if (no_status(res)) {
			set_result(t, REC_HEALTHY, "applied");
			continue;
		}
		struct group *g = group_for(&w, res, t->r.ns);
		/* The group's selector: the labels its objects have in common (gitops' own labels for
		 * applied objects), so a namespace's other objects of the kind are not listed. */
		json_t *labels = json_object_get(meta, "labels");
		if (!g->labels) {
			g->labels = json_is_object(labels) ? json_copy(labels) : json_object();
		} else {
			const char *k;
			json_t *v;
			void *tmp;
			json_object_foreach_safe(g->labels, tmp, k, v) {
				json_t *mine = json_object_get(labels, k);
				if (!json_is_string(mine) || !json_equal(mine, v))
					json_object_del(g->labels, k);
			}
		}
		json_t *idxs = json_object_get(g->names, t->r.name);
		if (!idxs) {
			idxs = json_array();
			json_object_set_new(g->names, t->r.name, idxs);
		}
		json_array_append_new(idxs, json_integer((json_int_t)i));
	}
	/* The groups array no longer moves: the caches get pointers into it. */
	for (size_t gi = 0; gi < w.n_groups; gi++) {
		struct group *g = &w.groups[gi];
		gitops_buf sel = GITOPS_BUF_INIT;
		const char *k;
		json_t *v;
		json_object_foreach(g->labels, k, v)
			if (json_is_string(v))
				gitops_buf_printf(&sel, "%s%s=%s", sel.len ? "," : "", k, json_string_value(v));
		g->selector = sel.len ? gitops_buf_detach(&sel) : NULL;
		gitops_buf_free(&sel);
		struct kube_cache_options co = {.namespace = g->ns, .label_selector = g->selector,
						.on_event = on_event, .ud = g};
		if (kube_cache_start(&g->cache, c, g->res, &co) != GITOPS_OK) {
			int rc = gitops_error_code();
			char *msg = gitops_strdup(gitops_error_last());
			waiter_free(&w);
			gitops_error_set(rc, "health wait: %s", msg);
			free(msg);
			return rc;
		}
		report->watches++;
	}

	enum rec_health_outcome outcome = REC_HEALTH_ALL_HEALTHY;
	pthread_mutex_lock(&w.lock);
	for (;;) {
		/* Groups whose first list is in: what it did not deliver is not found. */
		for (size_t gi = 0; gi < w.n_groups; gi++) {
			struct group *g = &w.groups[gi];
			if (g->synced)
				continue;
			pthread_mutex_unlock(&w.lock);
			bool synced = kube_cache_wait_synced(g->cache, 0) == GITOPS_OK;
			if (!synced)
				gitops_error_clear();
			pthread_mutex_lock(&w.lock);
			if (!synced)
				continue;
			g->synced = true;
			const char *name;
			json_t *idxs;
			json_object_foreach(g->names, name, idxs) {
				size_t k;
				json_t *idx;
				json_array_foreach(idxs, k, idx) {
					struct target *t = &w.t[json_integer_value(idx)];
					if (!t->seen)
						set_result(t, REC_PROGRESSING, g->selector ? "not found (with its labels)" : "not found");
				}
			}
		}
		for (size_t i = 0; i < n; i++) {
			struct target *t = &w.t[i];
			if (t->changed && opt->on_change) {
				struct rec_health_result copy = t->r;
				copy.reason = gitops_strdup(t->r.reason);
				t->changed = false;
				pthread_mutex_unlock(&w.lock);
				opt->on_change(opt->ud, &copy);
				free(copy.reason);
				pthread_mutex_lock(&w.lock);
			}
			t->changed = false;
		}
		/* Decided on one consistent view: the lock is held from here to the freeze. */
		size_t bad = 0;
		bool degraded = false;
		for (size_t i = 0; i < n; i++) {
			if (w.t[i].r.health != REC_HEALTHY)
				bad++;
			if (w.t[i].r.health == REC_DEGRADED)
				degraded = true;
		}
		bool all_synced = true;
		for (size_t gi = 0; gi < w.n_groups; gi++)
			all_synced = all_synced && w.groups[gi].synced;
		if (bad == 0 && all_synced)
			break;
		if (opt->fail_fast && degraded) {
			outcome = REC_HEALTH_FAILED;
			break;
		}
		if (opt->cancel && atomic_load(opt->cancel)) {
			outcome = REC_HEALTH_CANCELLED;
			break;
		}
		long long left = opt->timeout_ms > 0 ? start + opt->timeout_ms - gitops_now_ms() : 100;
		if (left <= 0) {
			outcome = REC_HEALTH_TIMED_OUT;
			break;
		}
		if (!w.dirty) {
			struct timespec ts;
			timespec_in(&ts, left < 100 ? (long)left : 100);
			pthread_cond_timedwait(&w.cond, &w.lock, &ts);
		}
		w.dirty = false;
	}
	/* The report is what the decision saw, not what events arriving until the watches are
	 * closed would make of it (a Deployment's deadline condition can flip back). */
	w.frozen = true;
	pthread_mutex_unlock(&w.lock);

	/* Stop the watches, then read the results without a lock. */
	stop_caches(&w);
	report->outcome = outcome;
	report->ms = gitops_now_ms() - start;
	for (size_t i = 0; i < n; i++) {
		struct target *t = &w.t[i];
		if (t->r.health == REC_HEALTHY) {
			report->healthy++;
			continue;
		}
		report->unhealthy = gitops_realloc(report->unhealthy, (report->n_unhealthy + 1) * sizeof(*report->unhealthy));
		report->unhealthy[report->n_unhealthy++] = t->r;
		memset(&t->r, 0, sizeof(t->r));
	}
	waiter_free(&w);
	if (outcome == REC_HEALTH_ALL_HEALTHY || report->n_unhealthy == 0)
		return GITOPS_OK;
	gitops_buf b = GITOPS_BUF_INIT;
	const struct rec_health_result *first = &report->unhealthy[0];
	for (size_t i = 0; i < report->n_unhealthy; i++)
		if (report->unhealthy[i].health == REC_DEGRADED) {
			first = &report->unhealthy[i];
			break;
		}
	describe(&b, first);
	int rc = outcome == REC_HEALTH_TIMED_OUT ? GITOPS_ETIMEOUT : GITOPS_ERROR;
	const char *what = outcome == REC_HEALTH_TIMED_OUT ? "timed out" :
			   outcome == REC_HEALTH_FAILED ? "failed" : "cancelled";
	if (outcome == REC_HEALTH_TIMED_OUT)
		gitops_error_set(rc, "health: %zu of %zu objects not healthy after %.1fs; first: %s", report->n_unhealthy,
				 n, (double)opt->timeout_ms / 1000.0, gitops_buf_cstr(&b));
	else
		gitops_error_set(rc, "health wait %s with %zu of %zu objects not healthy; first: %s", what,
				 report->n_unhealthy, n, gitops_buf_cstr(&b));
	gitops_buf_free(&b);
	return rc;
}
