/* reconcile/lease: leader election for `gitops run` replicas, one coordination.k8s.io/v1 Lease
 * per pipeline and environment, written compare-and-swap (resourceVersion precondition), as
 * client-go's leaderelection does it: renew every retry period, step down when no renewal
 * succeeded within the renew deadline, take over a Lease whose record did not change for its
 * leaseDurationSeconds as seen on the local clock (remote times are never trusted). Each replica
 * also holds a member Lease, so all can count the live replicas and take a fair share. */
#include "reconcile/control.h"
#include "reconcile/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEMBER_LABEL "gitops.dev/replica"

struct cand {
	char *pipeline, *env, *name;
	bool held;
	long long renewed_ms;   /* local time of the last successful write while held */
	json_t *obj;            /* the Lease as last read or written */
	char *seen_rv;          /* record seen last, and when (local clock) it changed */
	long long seen_ms;
	char *requested;        /* the gitops.dev/requested-at annotation last seen */
	bool ask;               /* a follower's webhook: annotate this Lease so the holder fetches */
};

struct rec_leases {
	struct rec_lease_options o;
	char *ns, *identity, *member;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct cand **c;         /* pointers: rec_leases_add may grow the array while a round runs */
	size_t n;
	bool started;
	json_t *members_seen;   /* member Lease name -> {"rv": s, "ms": local time it changed} */
	json_t *member_obj;
	const struct kube_resource *res;
	void (*on_request)(void *ud, const char *pipeline, const char *env);
	void *request_ud;
};

#define REQUEST_ANNOTATION "gitops.dev/requested-at"

static const char *requested_of(const json_t *o)
{
	const char *v = json_string_value(
		json_object_get(json_object_get(json_object_get(o, "metadata"), "annotations"), REQUEST_ANNOTATION));
	return v ? v : "";
}

/* The holder's side: a changed annotation is a follower's webhook: wake the environment. */
static void check_request(rec_leases *ls, struct cand *c, const json_t *o)
{
	const char *r = requested_of(o);
	/* never seen (a Lease this replica created): no stamp yet, so any stamp is new */
	if (strcmp(c->requested ? c->requested : "", r) && *r && ls->on_request)
		ls->on_request(ls->request_ud, c->pipeline, c->env);
	free(c->requested);
	c->requested = gitops_strdup(r);
}

/* The follower's side: stamp the Lease (compare-and-swap; one retry on a conflict). */
static void annotate(rec_leases *ls, struct cand *c)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		json_t *o = NULL;
		if (kube_get(&o, ls->o.client, "coordination.k8s.io/v1", "Lease", ls->ns, c->name))
			break;
		json_t *meta = json_object_get(o, "metadata");
		json_t *ann = json_object_get(meta, "annotations");
		if (!json_is_object(ann))
			json_object_set_new(meta, "annotations", ann = json_object());
		char stamp[64];
		snprintf(stamp, sizeof(stamp), "%lld-%s", (long long)time(NULL), ls->identity);
		json_object_set_new(ann, REQUEST_ANNOTATION, json_string(stamp));
		int rc = kube_update(NULL, ls->o.client, o);
		json_decref(o);
		if (rc != GITOPS_ECONFLICT)
			break;
	}
	gitops_error_clear();
}

char *rec_lease_name(const char *pipeline, const char *env) { return gitops_sprintf("gitops-%s-%s", pipeline, env); }

/* MicroTime: "2026-01-02T03:04:05.123456Z". */
static json_t *micro_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char b[96];
	snprintf(b, sizeof(b), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
	return json_string(b);
}

static const char *rv_of(const json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

static const char *holder_of(const json_t *o)
{
	const char *h = json_string_value(json_object_get(json_object_get(o, "spec"), "holderIdentity"));
	return h ? h : "";
}

static long long duration_ms(rec_leases *ls) { return ls->o.duration_ms > 0 ? ls->o.duration_ms : 15000; }
static long long renew_ms(rec_leases *ls) { return ls->o.renew_ms > 0 ? ls->o.renew_ms : 2000; }

static json_t *new_lease(rec_leases *ls, const char *name, const char *label)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s, s:{}}, s:{s:s, s:I, s:o, s:o, s:i}}", "apiVersion",
			      "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", name, "namespace", ls->ns,
			      "labels", "spec", "holderIdentity", ls->identity, "leaseDurationSeconds",
			      (json_int_t)((duration_ms(ls) + 999) / 1000), "acquireTime", micro_now(), "renewTime",
			      micro_now(), "leaseTransitions", 0);
	json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"), label, json_string("true"));
	return o;
}

/* Writes `obj` (read at its resourceVersion) with us as holder; on success *obj is the stored
 * one. `takeover`: a holder change (leaseTransitions + 1, acquireTime now). */
static int write_holder(rec_leases *ls, json_t **obj, bool takeover)
{
	json_t *o = json_deep_copy(*obj);
	json_t *spec = json_object_get(o, "spec");
	if (!spec)
		json_object_set_new(o, "spec", spec = json_object());
	json_object_set_new(spec, "holderIdentity", json_string(ls->identity));
	json_object_set_new(spec, "leaseDurationSeconds", json_integer((duration_ms(ls) + 999) / 1000));
	json_object_set_new(spec, "renewTime", micro_now());
	if (takeover) {
		json_object_set_new(spec, "acquireTime", micro_now());
		json_object_set_new(spec, "leaseTransitions",
				    json_integer(json_integer_value(json_object_get(spec, "leaseTransitions")) + 1));
	}
	json_t *stored = NULL;
	int rc = kube_update(&stored, ls->o.client, o);
	json_decref(o);
	if (!rc) {
		json_decref(*obj);
		*obj = stored;
	}
	return rc;
}

/* Called on the lease thread (or by rec_leases_stop after it ended), without the lock. */
static void set_held(rec_leases *ls, struct cand *c, bool held)
{
	pthread_mutex_lock(&ls->lock);
	bool same = c->held == held;
	c->held = held;
	if (held)
		c->renewed_ms = gitops_now_ms();
	pthread_mutex_unlock(&ls->lock);
	if (same)
		return;
	gitops_metric_set("gitops_leader", held ? 1 : 0, "pipeline", c->pipeline, "environment", c->env, NULL);
	if (ls->o.on_change)
		ls->o.on_change(ls->o.ud, c->pipeline, c->env, held);
}

/* Keeps our member Lease fresh and counts the live replicas: a member is live while its
 * record changed within the lease duration, on our clock. */
static size_t members(rec_leases *ls)
{
	long long now = gitops_now_ms();
	if (ls->member_obj && write_holder(ls, &ls->member_obj, false)) {
		json_decref(ls->member_obj);
		ls->member_obj = NULL;
	}
	if (!ls->member_obj) {
		json_t *o = NULL;
		if (kube_get(&o, ls->o.client, "coordination.k8s.io/v1", "Lease", ls->ns, ls->member) == 0) {
			ls->member_obj = o;
			if (write_holder(ls, &ls->member_obj, false)) {
				json_decref(ls->member_obj);
				ls->member_obj = NULL;
			}
		} else {
			json_t *n = new_lease(ls, ls->member, MEMBER_LABEL);
			if (kube_create(&o, ls->o.client, n) == 0)
				ls->member_obj = o;
			json_decref(n);
		}
	}
	gitops_error_clear();
	json_t *items = NULL;
	size_t live = 1;
	if (kube_list(&items, NULL, ls->o.client, ls->res, ls->ns, MEMBER_LABEL "=true") == 0) {
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			const char *name = json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
			if (!name || !strcmp(name, ls->member) || !*holder_of(it))
				continue;
			json_t *seen = json_object_get(ls->members_seen, name);
			if (!seen || strcmp(json_string_value(json_object_get(seen, "rv")), rv_of(it) ? rv_of(it) : "")) {
				json_object_set_new(ls->members_seen, name,
						    json_pack("{s:s, s:I}", "rv", rv_of(it) ? rv_of(it) : "", "ms", (json_int_t)now));
				live++;
			} else if (json_integer_value(json_object_get(seen, "ms")) + duration_ms(ls) > now) {
				live++;
			} else if (json_integer_value(json_object_get(seen, "ms")) + 8 * duration_ms(ls) < now) {
				/* a replica gone without releasing (killed, node lost): its member Lease would
				 * stay forever, each pod having its own name; the first to notice removes it */
				kube_delete(ls->o.client, "coordination.k8s.io/v1", "Lease", ls->ns, name, NULL, false);
				json_object_del(ls->members_seen, name);
				gitops_error_clear();
			}
		}
	}
	json_decref(items);
	gitops_error_clear();
	return live;
}

/* One round for a Lease we do not hold: take it when it is free or expired and we are below
 * our share. */
static void try_acquire(rec_leases *ls, struct cand *c, size_t held, size_t share)
{
	json_t *o = NULL;
	long long now = gitops_now_ms();
	int rc = kube_get(&o, ls->o.client, "coordination.k8s.io/v1", "Lease", ls->ns, c->name);
	if (rc == GITOPS_ENOTFOUND) {
		if (held >= share)
			return;
		json_t *n = new_lease(ls, c->name, "gitops.dev/lease");
		json_object_set_new(json_object_get(json_object_get(n, "metadata"), "labels"), "gitops.dev/pipeline",
				    json_string(c->pipeline));
		if (kube_create(&o, ls->o.client, n) == 0) {
			json_decref(c->obj);
			c->obj = o;
			set_held(ls, c, true);
		}
		json_decref(n);
		return;
	}
	if (rc)
		return;
	const char *rv = rv_of(o) ? rv_of(o) : "";
	if (!c->seen_rv || strcmp(c->seen_rv, rv)) {
		free(c->seen_rv);
		c->seen_rv = gitops_strdup(rv);
		c->seen_ms = now;
	}
	bool mine;
	if (rec_lease_may_take(o, ls->identity, c->seen_ms, now, duration_ms(ls), held, share, &mine)) {
		if (write_holder(ls, &o, !mine) == 0) {
			free(c->requested);
			c->requested = gitops_strdup(requested_of(o));
			json_decref(c->obj);
			c->obj = o;
			o = NULL;
			set_held(ls, c, true);
		}
	}
	json_decref(o);
}

bool rec_lease_may_take(const json_t *lease, const char *identity, long long seen_ms, long long now_ms,
			long long default_ms, size_t held, size_t share, bool *mine)
{
	const char *holder = holder_of(lease);
	long long dur = json_integer_value(json_object_get(json_object_get(lease, "spec"), "leaseDurationSeconds")) * 1000;
	*mine = !strcmp(holder, identity);
	bool free_ = !*holder || seen_ms + (dur > 0 ? dur : default_ms) <= now_ms;
	return *mine || (free_ && held < share);
}

/* Gives a Lease up: empty holder, leaseDurationSeconds 1, so another replica takes it at once. */
static void release(rec_leases *ls, struct cand *c)
{
	if (c->held && c->obj) {
		json_t *o = json_deep_copy(c->obj);
		json_t *spec = json_object_get(o, "spec");
		json_object_set_new(spec, "holderIdentity", json_string(""));
		json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
		json_object_set_new(spec, "renewTime", micro_now());
		kube_update(NULL, ls->o.client, o);
		json_decref(o);
		gitops_error_clear();
	}
	set_held(ls, c, false);
	json_decref(c->obj);
	c->obj = NULL;
}

static void round_(rec_leases *ls, bool acquire)
{
	size_t live = members(ls);
	pthread_mutex_lock(&ls->lock);
	size_t n = ls->n;
	pthread_mutex_unlock(&ls->lock);
	size_t share = (n + live - 1) / (live ? live : 1);
	long long now = gitops_now_ms();
	long long deadline = duration_ms(ls) * 2 / 3;
	size_t held = 0;
	/* renew what we hold */
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&ls->lock);
		struct cand *c = ls->c[i];
		pthread_mutex_unlock(&ls->lock);
		if (!c->held)
			continue;
		if (c->obj && write_holder(ls, &c->obj, false) == 0) {
			check_request(ls, c, c->obj);
			set_held(ls, c, true);
		} else {
			gitops_error_clear();
			json_decref(c->obj);
			c->obj = NULL;
			json_t *o = NULL;
			if (kube_get(&o, ls->o.client, "coordination.k8s.io/v1", "Lease", ls->ns, c->name) == 0 &&
			    !strcmp(holder_of(o), ls->identity) && write_holder(ls, &o, false) == 0) {
				check_request(ls, c, o);
				c->obj = o;
				o = NULL;
				set_held(ls, c, true);
			} else if (o && strcmp(holder_of(o), ls->identity)) {
				set_held(ls, c, false); /* someone else holds it now */
			}
			json_decref(o);
			gitops_error_clear();
			if (c->held && now - c->renewed_ms > deadline)
				set_held(ls, c, false);
		}
		held += c->held;
	}
	/* above the share (a replica joined): give one up per round */
	if (held > share) {
		for (size_t i = n; i-- > 0;) {
			pthread_mutex_lock(&ls->lock);
			struct cand *c = ls->c[i];
			pthread_mutex_unlock(&ls->lock);
			if (c->held) {
				release(ls, c);
				held--;
				break;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&ls->lock);
		struct cand *c = ls->c[i];
		bool ask = c->ask && !c->held;
		c->ask = false;
		pthread_mutex_unlock(&ls->lock);
		if (ask)
			annotate(ls, c);
	}
	if (!acquire)
		return;
	/* start at a place that depends on the identity, so replicas spread from the first round */
	size_t start = 0;
	for (const char *p = ls->identity; *p; p++)
		start = start * 31 + (unsigned char)*p;
	for (size_t k = 0; k < n && held < share; k++) {
		pthread_mutex_lock(&ls->lock);
		struct cand *c = ls->c[(start + k) % n];
		pthread_mutex_unlock(&ls->lock);
		if (c->held)
			continue;
		try_acquire(ls, c, held, share);
		held += c->held;
		gitops_error_clear();
	}
}

static void *lease_main(void *arg)
{
	rec_leases *ls = arg;
	bool first = true;
	pthread_mutex_lock(&ls->lock);
	while (!ls->stop) {
		pthread_mutex_unlock(&ls->lock);
		/* the first round only announces us: replicas started together count each other first */
		round_(ls, !first);
		first = false;
		pthread_mutex_lock(&ls->lock);
		if (ls->stop)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long w = renew_ms(ls);
		ts.tv_sec += w / 1000;
		ts.tv_nsec += (w % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ls->cond, &ls->lock, &ts);
	}
	pthread_mutex_unlock(&ls->lock);
	return NULL;
}

int rec_leases_start(rec_leases **out, const struct rec_lease_options *opt)
{
	*out = NULL;
	const struct kube_resource *r;
	if (kube_resource_for(&r, opt->client, "coordination.k8s.io/v1", "Lease"))
		return gitops_error_prefix("leader election");
	rec_leases *ls = gitops_calloc(1, sizeof(*ls));
	ls->o = *opt;
	ls->res = r;
	ls->ns = gitops_strdup(opt->namespace);
	ls->identity = gitops_strdup(opt->identity);
	ls->member = gitops_sprintf("gitops-replica-%s", opt->identity);
	/* an object name is a DNS subdomain: lowercase letters, digits, '-' and '.' */
	for (char *p = ls->member; *p; p++)
		*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : (strchr("abcdefghijklmnopqrstuvwxyz0123456789-.", *p) ? *p : '-');
	ls->members_seen = json_object();
	pthread_mutex_init(&ls->lock, NULL);
	pthread_cond_init(&ls->cond, NULL);
	ls->started = pthread_create(&ls->thread, NULL, lease_main, ls) == 0;
	if (!ls->started) {
		rec_leases_stop(ls);
		return gitops_error_set(GITOPS_ERROR, "leader election: cannot start its thread");
	}
	*out = ls;
	return GITOPS_OK;
}

void rec_leases_add(rec_leases *ls, const char *pipeline, const char *env)
{
	pthread_mutex_lock(&ls->lock);
	bool have = false;
	for (size_t i = 0; i < ls->n && !have; i++)
		have = !strcmp(ls->c[i]->pipeline, pipeline) && !strcmp(ls->c[i]->env, env);
	if (!have) {
		ls->c = gitops_realloc(ls->c, (ls->n + 1) * sizeof(*ls->c));
		struct cand *c = ls->c[ls->n++] = gitops_calloc(1, sizeof(*c));
		c->pipeline = gitops_strdup(pipeline);
		c->env = gitops_strdup(env);
		c->name = rec_lease_name(pipeline, env);
		gitops_metric_set("gitops_leader", 0, "pipeline", pipeline, "environment", env, NULL);
	}
	pthread_mutex_unlock(&ls->lock);
}

bool rec_leases_held(rec_leases *ls, const char *pipeline, const char *env)
{
	bool held = false;
	pthread_mutex_lock(&ls->lock);
	long long deadline = duration_ms(ls) * 2 / 3;
	for (size_t i = 0; i < ls->n; i++)
		if (!strcmp(ls->c[i]->pipeline, pipeline) && !strcmp(ls->c[i]->env, env))
			held = ls->c[i]->held && gitops_now_ms() - ls->c[i]->renewed_ms <= deadline;
	pthread_mutex_unlock(&ls->lock);
	return held;
}

void rec_leases_stop(rec_leases *ls)
{
	if (!ls)
		return;
	pthread_mutex_lock(&ls->lock);
	bool started = ls->started;
	ls->started = false;
	ls->stop = true;
	pthread_cond_signal(&ls->cond);
	pthread_mutex_unlock(&ls->lock);
	if (started)
		pthread_join(ls->thread, NULL);
	for (size_t i = 0; i < ls->n; i++) {
		release(ls, ls->c[i]);
		free(ls->c[i]->pipeline);
		free(ls->c[i]->env);
		free(ls->c[i]->name);
		free(ls->c[i]->seen_rv);
		free(ls->c[i]->requested);
		free(ls->c[i]);
	}
	if (ls->member_obj)
		kube_delete(ls->o.client, "coordination.k8s.io/v1", "Lease", ls->ns, ls->member, NULL, false);
	gitops_error_clear();
	json_decref(ls->member_obj);
	json_decref(ls->members_seen);
	free(ls->c);
	free(ls->ns);
	free(ls->identity);
	free(ls->member);
	pthread_mutex_destroy(&ls->lock);
	pthread_cond_destroy(&ls->cond);
	free(ls);
}

void rec_leases_on_request(rec_leases *ls, void (*fn)(void *ud, const char *pipeline, const char *env), void *ud)
{
	pthread_mutex_lock(&ls->lock);
	ls->on_request = fn;
	ls->request_ud = ud;
	pthread_mutex_unlock(&ls->lock);
}

void rec_leases_request(rec_leases *ls, const char *pipeline)
{
	pthread_mutex_lock(&ls->lock);
	for (size_t i = 0; i < ls->n; i++)
		if (!strcmp(ls->c[i]->pipeline, pipeline) && !ls->c[i]->held)
			ls->c[i]->ask = true;
	pthread_cond_signal(&ls->cond); /* a round now */
	pthread_mutex_unlock(&ls->lock);
}
