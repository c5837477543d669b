/* reconcile/daemon: `gitops run`. Per repository a fetcher thread (fetch, notifications, wake);
 * per environment a reconciler thread (resolve, plan, sync, health gate, automatic rollback,
 * record) and a healer thread (drift seen by the watches: compare, correct, fold into
 * episodes). Read rec_daemon_run first, then fetch_main, env_main, then healer_main. */
#include "reconcile/daemon.h"
#include "reconcile/internal.h"
#include "history/history.h"

#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct daemon;
struct denv;

/* One per repository (pipeline): fetches it every interval, or at once when a webhook or a
 * follower asks, and wakes the pipeline's environments; they read the shared mirror without
 * fetching. The result of the last fetch is what they report when it failed. */
struct dfetch {
	struct daemon *d;
	rec_workspace *ws;        /* the fetcher thread's own (opened by rec_daemon_run) */
	const char *pipeline;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	char *error;              /* guarded by lock: the last fetch's error, NULL when it succeeded */
	unsigned failures;        /* fetcher thread only */
	rec_notifier *notifier;   /* the pipeline's notifications (NULL: none); re-read by the fetcher */
	unsigned long asked;      /* guarded by lock: fetches asked for (webhook, follower), done */
};

/* One list-then-watch cache: a kind in one namespace (or cluster-wide), label-selected to this
 * environment's objects. */
struct dwatch {
	struct denv *de;
	const struct kube_resource *r;
	char *ns; /* NULL: cluster-scoped */
	kube_cache *cache;
};

struct denv {
	struct daemon *d;
	char *name;
	char *pipeline;           /* its pipeline's identity (Leases, metrics) */
	char *label;              /* in log lines: the name, or pipeline/name with several pipelines */
	const char *repo;         /* its --repo (borrowed from the options) */
	struct dfetch *f;         /* its repository's fetcher; NULL: the reconciler fetches (--once) */
	pthread_t thread, healer;
	bool healer_started;
	rec_workspace *ws;        /* the reconciler thread's own */
	char *repo_url;           /* for history (both threads) */
	kube_client *client;      /* borrowed from ws; thread-safe */

	/* Guarded by lock: what the healer and the watch callbacks read. */
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* healer: work queued, or stop */
	/* Taken for writing while the watches are replaced or freed, for reading while the healer
	 * reads a cache (never while holding `lock`: callbacks take `lock`). */
	pthread_rwlock_t wlock;
	/* key -> {"t": the desired object as compact JSON text, "w": index into watches}: text, as
	 * the watch caches keep theirs (a parsed tree takes about 8 times the memory); parsed with
	 * desired_of when an event needs it. */
	json_t *desired;
	json_t *queue;            /* key -> epoch of the watch event (ms), objects to look at */
	bool self_heal, suspended, syncing, stop;
	bool rekey;               /* new desired objects: the healer re-keys episodes read back */
	struct dwatch *watches;   /* replaced by the reconciler only with no lock held while freeing */
	size_t n_watches;
	drift_ignore *ignore;

	/* Reconciler only. */
	char applied[41];         /* the revision whose desired objects are watched; "" before */
	char main_sha[41];
	bool was_suspended;
	char *last_error;         /* the reason of the last daemon.error recorded ("" none) */
	unsigned failures;
	bool ok_once;             /* --once: the environment's run succeeded */
	bool gate_failed;         /* the last sync failed its health gate */
	bool interrupted;         /* the last sync was stopped between chunks (SIGTERM, Lease lost) */
	bool watched;             /* this pass's sync pointed the watches at its plan already */
	struct kube_stats seen;   /* the client's counters at the end of the last pass */

	/* Healer only: open drift episodes, key -> {"object","count","lastMs","fixed"}. */
	json_t *episodes;
};

struct daemon {
	const struct rec_daemon_options *opt;
	struct denv *envs;
	size_t n;
	pthread_mutex_t log_lock;
};

/* ---- logging and recording ------------------------------------------------------------- */

/* The one way the daemon logs: one line of environment `de`, handed under the log lock to
 * opt->log_fields when `fields` and that is set (JSON logs keep app, object and event apart),
 * else to opt->log; nothing when that is not set either. The caller formats time and shape. */
static void dlog_v(struct denv *de, bool fields, const char *app, const char *object, const char *event_id,
		   const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
static void dlog_v(struct denv *de, bool fields, const char *app, const char *object, const char *event_id,
		   const char *fmt, va_list ap)
{
	const struct rec_daemon_options *o = de->d->opt;
	fields = fields && o->log_fields;
	if (!fields && !o->log)
		return;
	char *line = gitops_vsprintf(fmt, ap);
	pthread_mutex_lock(&de->d->log_lock);
	if (fields)
		o->log_fields(o->log_ud, de->label, app, object, event_id, line);
	else
		o->log(o->log_ud, de->label, line);
	pthread_mutex_unlock(&de->d->log_lock);
	free(line);
}

static void dlog(struct denv *de, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dlog(struct denv *de, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	dlog_v(de, false, NULL, NULL, NULL, fmt, ap);
	va_end(ap);
}

/* A log line that names an app, an object or a recorded event: given as separate fields to
 * opt->log_fields when set (JSON logs), else as a plain line. Any field may be NULL. */
static void dlog_fields(struct denv *de, const char *app, const char *object, const char *event_id, const char *fmt,
			...) __attribute__((format(printf, 5, 6)));
static void dlog_fields(struct denv *de, const char *app, const char *object, const char *event_id, const char *fmt,
			...)
{
	va_list ap;
	va_start(ap, fmt);
	dlog_v(de, true, app, object, event_id, fmt, ap);
	va_end(ap);
}

/* The workspace's progress lines go to the log, under the environment's name. */
static void ws_progress(void *ud, const char *line)
{
	struct denv *de = ud;
	size_t n = strlen(de->name);
	if (!strncmp(line, de->name, n) && !strncmp(line + n, ": ", 2))
		line += n + 2; /* the log line names the environment already */
	dlog(de, "%s", line);
}

/* The workspace options of every workspace the daemon opens (configuration as given). */
static struct rec_workspace_options daemon_wo(const struct rec_daemon_options *o)
{
	return (struct rec_workspace_options){.repo = o->repo, .data_dir = o->data_dir, .kubeconfig = o->kubeconfig,
					      .context = o->context, .state_repo = o->state_repo,
					      .state_branch = o->state_branch, .main_branch = o->main_branch,
					      .signing_key = o->signing_key, .kube_qps = o->kube_qps,
					      .render_timeout_ms = o->render_timeout_ms};
}

/* The state branch. `obey` (reconciler thread only: it uses the thread's workspace): with the
 * pipeline's policy attached, so what is read is verified before it is obeyed (pins, suspension,
 * healthy deploys) and appends check the chain first. The healer records drift without it
 * (it obeys nothing it reads there). Records are signed with the reporter key when one is given. */
static int open_hist(hist **h, struct denv *de, bool obey)
{
	/* without a workspace yet (the repository could not be opened), records go unverified */
	int rc = obey && de->ws ? rec_workspace_history(h, de->ws, NULL, NULL)
				: hist_open_default(h, de->d->opt->state_repo, de->d->opt->state_branch, de->repo_url);
	const char *key = de->d->opt->signing_key;
	if (!rc && key && *key)
		rc = hist_set_signing_key(*h, key);
	if (!rc && de->d->opt->cancel)
		hist_set_cancel(*h, gitops_cancel_flag(de->d->opt->cancel)); /* SIGTERM ends CAS retries */
	if (rc) {
		dlog(de, "warning: cannot open the state branch: %s", gitops_error_last());
		hist_free(*h);
		*h = NULL;
	}
	return rc;
}

/* Appends one event; a failure is logged (the caller goes on: the cluster is what matters). */
static void record(struct denv *de, const struct hist_event *ev, bool obey)
{
	hist *h = NULL;
	if (open_hist(&h, de, obey))
		return;
	struct hist_event e = *ev;
	e.trigger = "auto";
	e.actor = "gitops-run";
	json_t *out = NULL;
	if (hist_record(&out, h, &e))
		dlog(de, "warning: %s not recorded: %s", ev->type, gitops_error_last());
	else
		dlog_fields(de, ev->app, ev->object, json_string_value(json_object_get(out, "id")), "recorded %s", ev->type);
	json_decref(out);
	hist_free(h);
}

static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* "Kind ns/name" of an object. Caller frees. */
static char *describe_obj(const json_t *o)
{
	const json_t *meta = json_object_get(o, "metadata");
	const char *ns = jstr(meta, "namespace");
	return ns ? gitops_sprintf("%s %s/%s", jstr(o, "kind"), ns, jstr(meta, "name"))
		  : gitops_sprintf("%s %s", jstr(o, "kind"), jstr(meta, "name"));
}

/* The daemon's last error, in the state branch only when it changes (so status can show it
 * from any machine and a steady failure writes nothing more). `err` NULL: recovered. */
static void set_error(struct denv *de, const char *err)
{
	if (!err && !*de->last_error)
		return;
	if (err && !strcmp(err, de->last_error))
		return;
	struct hist_event ev = {.type = err ? "daemon.error" : "daemon.recovered", .environment = de->name, .reason = err,
				.duration_ms = -1};
	record(de, &ev, true);
	free(de->last_error);
	de->last_error = gitops_strdup(err ? err : "");
}

/* ---- watches: list-then-watch per kind and namespace ------------------------------------ */

/* The desired object of a de->desired entry (a new reference), or NULL. */
static json_t *desired_of(const json_t *d)
{
	const json_t *t = json_object_get(d, "t");
	json_error_t je;
	return t ? json_loadb(json_string_value(t), json_string_length(t), 0, &je) : NULL;
}

/* On a cache thread: compare the object with its desired form now; queue it when it differs. */
static void on_watch_event(void *ud, enum kube_event ev, const json_t *obj, const json_t *old)
{
	(void)old;
	struct dwatch *w = ud;
	struct denv *de = w->de;
	char *key = rec_object_key(obj);
	pthread_mutex_lock(&de->lock);
	json_t *d = json_object_get(de->desired, key);
	if (de->syncing) {
		/* the desired objects are about to change: queue it (once per object, the first event's
		 * time kept); the healer compares it with the new desired form after the apply */
		if (!json_object_get(de->queue, key))
			json_object_set_new(de->queue, key, json_integer(gitops_now_ms()));
	} else if (d) {
		drift_result *res = NULL;
		drift_options dopt = {.field_manager = DRIFT_FIELD_MANAGER, .ignore = de->ignore};
		json_t *desired = desired_of(d);
		if (drift_compare(&res, desired, ev == KUBE_DELETED ? NULL : obj, &dopt) == 0 &&
		    drift_result_state(res) != DRIFT_IN_SYNC && !json_object_get(de->queue, key)) {
			json_object_set_new(de->queue, key, json_integer(gitops_now_ms()));
			pthread_cond_signal(&de->cond);
		}
		drift_result_free(res);
		json_decref(desired);
	}
	pthread_mutex_unlock(&de->lock);
	free(key);
}

static void free_watches(struct dwatch *ws, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		kube_cache_free(ws[i].cache);
		free(ws[i].ns);
	}
	free(ws);
}

/* The (resource, namespace) pair of a desired object as "index" into `pairs` (JSON object
 * "ptr|ns" -> index), added when new. */
static size_t pair_index(json_t *pairs, struct dwatch **ws, size_t *n, struct denv *de, const struct kube_resource *r,
			 const char *ns)
{
	char *k = gitops_sprintf("%p|%s", (const void *)r, r->namespaced && ns ? ns : "");
	json_t *at = json_object_get(pairs, k);
	size_t i;
	if (at) {
		i = (size_t)json_integer_value(at);
	} else {
		i = (*n)++;
		*ws = gitops_realloc(*ws, *n * sizeof(**ws));
		(*ws)[i] = (struct dwatch){.de = de, .r = r, .ns = r->namespaced && ns ? gitops_strdup(ns) : NULL};
		json_object_set_new(pairs, k, json_integer((json_int_t)i));
	}
	free(k);
	return i;
}

/* Makes the plan's desired objects the ones the healer defends, and (re)starts the watches
 * when the set of kinds and namespaces changed. Called by the reconciler with no lock held. */
static int watch_plan(struct denv *de, rec_plan *plan, const struct mf_environment *env)
{
	const char *pipeline = NULL;
	if (rec_workspace_pipeline(&pipeline, NULL, de->ws))
		return gitops_error_prefix("%s", de->name);
	json_t *desired = json_object(), *pairs = json_object();
	struct dwatch *nw = NULL;
	size_t nn = 0;
	for (size_t i = 0; i < rec_plan_count(plan); i++) {
		const struct rec_item *it = rec_plan_item(plan, i);
		if (!it->desired)
			continue;
		const struct kube_resource *r;
		if (kube_resource_for(&r, de->client, jstr(it->desired, "apiVersion"), jstr(it->desired, "kind")))
			continue; /* not served (a CRD that failed): the next plan tells */
		const char *ns = jstr(json_object_get(it->desired, "metadata"), "namespace");
		size_t w = pair_index(pairs, &nw, &nn, de, r, ns);
		char *key = rec_object_key(it->desired);
		char *text = json_dumps(it->desired, JSON_COMPACT);
		json_object_set_new(desired, key, json_pack("{s:s, s:I}", "t", text, "w", (json_int_t)w));
		free(text);
		free(key);
	}
	json_decref(pairs);
	gitops_error_clear();
	/* Same kinds and namespaces as now: keep the watches (no relist). */
	bool same = nn == de->n_watches;
	for (size_t i = 0; same && i < nn; i++)
		same = nw[i].r == de->watches[i].r && ((!nw[i].ns && !de->watches[i].ns) ||
						       (nw[i].ns && de->watches[i].ns && !strcmp(nw[i].ns, de->watches[i].ns)));
	drift_ignore *ign = NULL;
	drift_ignore_new(&ign);
	for (size_t i = 0; i < env->n_ignore; i++)
		for (size_t j = 0; j < env->ignore[i].n_json_pointers; j++)
			drift_ignore_add(ign, env->ignore[i].group, env->ignore[i].kind, env->ignore[i].namespace,
					 env->ignore[i].name, env->ignore[i].json_pointers[j]);
	gitops_error_clear();
	struct dwatch *old = NULL;
	size_t nold = 0;
	pthread_mutex_lock(&de->lock);
	json_decref(de->desired);
	de->desired = desired;
	/* the queue is kept: events that came during the apply are compared with the new forms */
	drift_ignore_free(de->ignore);
	de->ignore = ign;
	if (!same) {
		/* the healer finds no cache until the new ones are published */
		old = de->watches;
		nold = de->n_watches;
		de->watches = NULL;
		de->n_watches = 0;
	}
	pthread_mutex_unlock(&de->lock);
	if (same) {
		for (size_t i = 0; i < nn; i++)
			free(nw[i].ns);
		free(nw);
		return GITOPS_OK;
	}
	/* Stop the old caches first (their callbacks take the lock), then start the new ones. The
	 * healer reads caches under wlock: it never sees one being freed. */
	pthread_rwlock_wrlock(&de->wlock);
	free_watches(old, nold);
	pthread_rwlock_unlock(&de->wlock);
	char *sel = gitops_sprintf("%s=gitops,%s=%s,%s=%s", REC_LABEL_MANAGED_BY, REC_LABEL_PIPELINE, pipeline, REC_LABEL_ENV,
				   de->name);
	int rc = GITOPS_OK;
	/* The array does not move once callbacks hold pointers into it: start, then publish. */
	for (size_t i = 0; i < nn && !rc; i++) {
		struct kube_cache_options co = {.namespace = nw[i].ns, .label_selector = sel, .keep_manager = DRIFT_FIELD_MANAGER,
						.on_event = on_watch_event, .ud = &nw[i]};
		rc = kube_cache_start(&nw[i].cache, de->client, nw[i].r, &co);
	}
	for (size_t i = 0; i < nn && !rc; i++)
		if (kube_cache_wait_synced(nw[i].cache, 30000))
			rc = gitops_error_prefix("watching %s%s%s", nw[i].r->resource, nw[i].ns ? " in " : "", nw[i].ns ? nw[i].ns : "");
	free(sel);
	pthread_rwlock_wrlock(&de->wlock);
	pthread_mutex_lock(&de->lock);
	de->watches = nw;
	de->n_watches = nn;
	pthread_mutex_unlock(&de->lock);
	pthread_rwlock_unlock(&de->wlock);
	if (!rc) {
		dlog(de, "watching %zu object(s) through %zu watch(es)", json_object_size(desired), nn);
		gitops_metric_set("gitops_managed_objects", (double)json_object_size(desired), "pipeline", de->pipeline, "environment", de->name, NULL);
	}
	return rc;
}

static void stop_watches(struct denv *de)
{
	pthread_rwlock_wrlock(&de->wlock);
	pthread_mutex_lock(&de->lock);
	struct dwatch *old = de->watches;
	size_t n = de->n_watches;
	de->watches = NULL;
	de->n_watches = 0;
	json_object_clear(de->desired);
	pthread_mutex_unlock(&de->lock);
	free_watches(old, n);
	pthread_rwlock_unlock(&de->wlock);
}

/* ---- the healer: drift episodes ---------------------------------------------------------- */

/* True when applying `desired` would change nothing: the server's dry run equals live apart
 * from bookkeeping. A difference only in defaulting or spelling is no drift. */
static bool confirmed_noop(kube_client *c, const json_t *desired, const json_t *live)
{
	json_t *dry = NULL;
	struct kube_apply_options ao = {.force = true, .dry_run = true};
	bool same = false;
	if (kube_apply(&dry, NULL, c, desired, &ao) == GITOPS_OK) {
		json_t *a = json_deep_copy(live), *b = json_deep_copy(dry);
		const char *drop[] = {"managedFields", "resourceVersion", "generation"};
		for (size_t i = 0; i < 3; i++) {
			json_object_del(json_object_get(a, "metadata"), drop[i]);
			json_object_del(json_object_get(b, "metadata"), drop[i]);
		}
		same = json_equal(a, b);
		json_decref(a);
		json_decref(b);
	}
	json_decref(dry);
	gitops_error_clear();
	return same;
}

/* The state of `key` now: compares its desired form with the cache's copy. *what gets a short
 * description of the difference (caller frees). */
static drift_state current_state(struct denv *de, const char *key, json_t **desired_out, char **what)
{
	*what = NULL;
	*desired_out = NULL;
	pthread_rwlock_rdlock(&de->wlock);
	pthread_mutex_lock(&de->lock);
	json_t *d = json_object_get(de->desired, key);
	json_t *desired = d ? desired_of(d) : NULL;
	size_t w = d ? (size_t)json_integer_value(json_object_get(d, "w")) : 0;
	kube_cache *kc = d && w < de->n_watches ? de->watches[w].cache : NULL;
	drift_options dopt = {.field_manager = DRIFT_FIELD_MANAGER, .ignore = de->ignore};
	pthread_mutex_unlock(&de->lock);
	if (!desired || !kc) {
		pthread_rwlock_unlock(&de->wlock);
		json_decref(desired);
		return DRIFT_IN_SYNC;
	}
	const json_t *meta = json_object_get(desired, "metadata");
	json_t *live = kube_cache_get(kc, jstr(meta, "namespace"), jstr(meta, "name"));
	pthread_rwlock_unlock(&de->wlock);
	drift_result *res = NULL;
	drift_state st = DRIFT_IN_SYNC;
	pthread_mutex_lock(&de->lock); /* the ignore rules may be swapped by the reconciler */
	dopt.ignore = de->ignore;
	int rc = drift_compare(&res, desired, live, &dopt);
	pthread_mutex_unlock(&de->lock);
	if (!rc)
		st = drift_result_state(res);
	if (st == DRIFT_MODIFIED && confirmed_noop(de->client, desired, live))
		st = DRIFT_IN_SYNC;
	if (st == DRIFT_MODIFIED) {
		gitops_buf b = GITOPS_BUF_INIT;
		for (size_t i = 0; i < drift_result_field_count(res) && i < 5; i++)
			gitops_buf_printf(&b, "%s%s", i ? ", " : "", drift_result_field(res, i)->path);
		if (drift_result_field_count(res) > 5)
			gitops_buf_puts(&b, ", ...");
		*what = gitops_sprintf("modified: %s", gitops_buf_cstr(&b));
		gitops_buf_free(&b);
	} else if (st == DRIFT_MISSING) {
		*what = gitops_strdup("deleted");
	}
	drift_result_free(res);
	json_decref(live);
	*desired_out = desired;
	return st;
}

/* One object a watch event flagged: confirm, open or extend its episode, correct it. */
static void heal_one(struct denv *de, const char *key, long long event_ms)
{
	json_t *desired;
	char *what;
	drift_state st = current_state(de, key, &desired, &what);
	if (st == DRIFT_IN_SYNC) {
		json_decref(desired);
		return;
	}
	pthread_mutex_lock(&de->lock);
	bool heal = de->self_heal && !de->suspended && !de->syncing;
	pthread_mutex_unlock(&de->lock);
	heal = heal && rec_control_may_act(de->d->opt->control, de->pipeline, de->name);
	gitops_metric_add("gitops_drift_detected_total", 1, "pipeline", de->pipeline, "environment", de->name, NULL);
	char *obj = describe_obj(desired);
	json_t *ep = json_object_get(de->episodes, key);
	if (!ep) {
		const char *app = jstr(json_object_get(json_object_get(desired, "metadata"), "labels"), REC_LABEL_APP);
		ep = json_pack("{s:s, s:I, s:I, s:b, s:s?}", "object", obj, "count", (json_int_t)1, "lastMs",
			       (json_int_t)gitops_now_ms(), "fixed", 0, "app", app);
		json_object_set_new(de->episodes, key, ep);
		struct hist_event ev = {.type = "drift.detected", .environment = de->name, .app = app, .object = obj,
					.count = 1, .reason = what, .duration_ms = -1};
		record(de, &ev, false);
		dlog_fields(de, app, obj, NULL, "drift: %s %s%s", obj, what, heal ? "" : de->suspended ? " (suspended: not corrected)"
									   : " (selfHeal is off: not corrected)");
	} else {
		json_int_t n = json_integer_value(json_object_get(ep, "count")) + 1;
		json_object_set_new(ep, "count", json_integer(n));
		json_object_set_new(ep, "lastMs", json_integer(gitops_now_ms()));
		if (n == REC_DRIFT_FIGHT)
			dlog(de, "drift: %s changed %lld times since gitops last corrected it: another writer is fighting "
				 "gitops over it", obj, (long long)n);
	}
	if (heal) {
		struct kube_apply_options ao = {.force = true};
		if (kube_apply(NULL, NULL, de->client, desired, &ao) == GITOPS_OK) {
			json_object_set_new(ep, "fixed", json_true());
			json_object_set_new(ep, "lastMs", json_integer(gitops_now_ms()));
			gitops_metric_add("gitops_drift_corrected_total", 1, "pipeline", de->pipeline, "environment", de->name, NULL);
			dlog_fields(de, NULL, obj, NULL, "corrected %s %lld ms after the watch event", obj, gitops_now_ms() - event_ms);
		} else {
			dlog_fields(de, NULL, obj, NULL, "failed to correct %s: %s", obj, gitops_error_last());
		}
	}
	free(obj);
	free(what);
	json_decref(desired);
}

/* Closes the episodes of objects as git says for REC_DRIFT_QUIET_MS: one drift.corrected with
 * the number of detections folded in. Returns the ms until the next one may close (or -1). */
static long long close_episodes(struct denv *de)
{
	long long now = gitops_now_ms(), next = -1;
	const char *key;
	json_t *ep;
	void *tmp;
	json_object_foreach_safe(de->episodes, tmp, key, ep) {
		long long due = json_integer_value(json_object_get(ep, "lastMs")) + REC_DRIFT_QUIET_MS;
		if (due > now) {
			if (next < 0 || due - now < next)
				next = due - now;
			continue;
		}
		json_t *desired;
		char *what;
		drift_state st = current_state(de, key, &desired, &what);
		json_decref(desired);
		free(what);
		if (st != DRIFT_IN_SYNC) {
			json_object_set_new(ep, "lastMs", json_integer(now));
			continue;
		}
		json_int_t n = json_integer_value(json_object_get(ep, "count"));
		bool fixed = json_is_true(json_object_get(ep, "fixed"));
		char *reason = n >= REC_DRIFT_FIGHT
				       ? gitops_sprintf("corrected %lld times: another writer kept changing it (a fight)", (long long)n)
				       : gitops_strdup(fixed ? "corrected by self-heal" : "back as git says");
		struct hist_event ev = {.type = "drift.corrected", .environment = de->name, .object = jstr(ep, "object"),
					.app = jstr(ep, "app"),
					.count = n, .reason = reason, .duration_ms = -1};
		record(de, &ev, false);
		free(reason);
		json_object_del(de->episodes, key);
	}
	return next;
}

/* Open episodes survive a restart: an object whose newest drift event is drift.detected is
 * still open, so a restarted daemon neither repeats the detection nor loses its count. */
static void load_episodes(struct denv *de)
{
	hist *h = NULL;
	json_t *evs = NULL;
	if (open_hist(&h, de, false))
		return;
	struct hist_filter f = {.env = de->name, .type = "drift.", .limit = 500};
	if (hist_query(&evs, h, &f) == 0) {
		json_t *seen = json_object();
		size_t i;
		json_t *ev;
		json_array_foreach(evs, i, ev) { /* newest first */
			const char *obj = jstr(ev, "object");
			if (!obj || json_object_get(seen, obj))
				continue;
			json_object_set_new(seen, obj, json_true());
			if (strcmp(jstr(ev, "type"), "drift.detected"))
				continue;
			json_int_t n = json_integer_value(json_object_get(ev, "count"));
			json_object_set_new(de->episodes, obj, json_pack("{s:s, s:I, s:I, s:b, s:b}", "object", obj, "count",
									  n > 0 ? n : 1, "lastMs", (json_int_t)gitops_now_ms(),
									  "fixed", 0, "byName", 1));
		}
		json_decref(seen);
	}
	gitops_error_clear();
	json_decref(evs);
	hist_free(h);
}

/* Episodes loaded from history are keyed by "Kind ns/name"; give them their object key once
 * the desired objects are known. Healer only (it owns the episodes). */
static void rekey_episodes(struct denv *de)
{
	const char *k;
	json_t *ep;
	void *tmp;
	json_t *add = json_object();
	pthread_mutex_lock(&de->lock);
	json_object_foreach_safe(de->episodes, tmp, k, ep) {
		if (!json_is_true(json_object_get(ep, "byName")))
			continue;
		const char *dk;
		json_t *d;
		json_object_foreach(de->desired, dk, d) {
			json_t *dobj = desired_of(d);
			char *o = describe_obj(dobj);
			json_decref(dobj);
			bool match = !strcmp(o, k);
			free(o);
			if (match) {
				json_object_del(ep, "byName");
				json_object_set(add, dk, ep);
				break;
			}
		}
		json_object_del(de->episodes, k);
	}
	json_object_update(de->episodes, add);
	pthread_mutex_unlock(&de->lock);
	json_decref(add);
}

static void *healer_main(void *arg)
{
	struct denv *de = arg;
	pthread_mutex_lock(&de->lock);
	while (!de->stop) {
		if (de->rekey) {
			de->rekey = false;
			pthread_mutex_unlock(&de->lock);
			rekey_episodes(de);
			pthread_mutex_lock(&de->lock);
			continue;
		}
		if (json_object_size(de->queue) == 0 || de->syncing) {
			bool syncing = de->syncing; /* the desired objects are about to change: wait */
			pthread_mutex_unlock(&de->lock);
			long long next = syncing ? -1 : close_episodes(de);
			pthread_mutex_lock(&de->lock);
			if (de->stop)
				break;
			if (json_object_size(de->queue) == 0 || de->syncing) {
				long long wait = next < 0 || next > 1000 ? 1000 : next;
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += wait / 1000;
				ts.tv_nsec += (wait % 1000) * 1000000L;
				if (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&de->cond, &de->lock, &ts);
			}
			continue;
		}
		json_t *q = de->queue;
		de->queue = json_object();
		pthread_mutex_unlock(&de->lock);
		const char *key;
		json_t *t;
		json_object_foreach(q, key, t) {
			heal_one(de, key, json_integer_value(t));
		}
		json_decref(q);
		pthread_mutex_lock(&de->lock);
	}
	pthread_mutex_unlock(&de->lock);
	return NULL;
}

/* ---- the reconciler ---------------------------------------------------------------------- */

/* The health gate after a sync: every desired object healthy within the environment's
 * healthTimeout. On failure *why names the unhealthy objects (caller frees). */
static int health_gate(struct denv *de, rec_plan *plan, const struct mf_environment *env, bool fail_fast, char **why)
{
	*why = NULL;
	size_t n = 0;
	json_t **objs = gitops_calloc(rec_plan_count(plan) + 1, sizeof(*objs));
	for (size_t i = 0; i < rec_plan_count(plan); i++)
		if (rec_plan_item(plan, i)->desired)
			objs[n++] = rec_plan_item(plan, i)->desired;
	long timeout = env->rollback_health_timeout_ms > 0 ? (long)env->rollback_health_timeout_ms : REC_HEALTH_TIMEOUT_MS;
	dlog(de, "health gate: waiting up to %lds for %zu object(s)", timeout / 1000, n);
	struct rec_health_report rep;
	struct rec_health_wait_options wo = {.timeout_ms = timeout, .cancel = (atomic_bool *)gitops_cancel_flag(de->d->opt->cancel),
					     .fail_fast = fail_fast};
	int rc = rec_health_wait(&rep, de->client, objs, n, &wo);
	free(objs);
	if (rc) {
		gitops_buf b = GITOPS_BUF_INIT;
		for (size_t i = 0; i < rep.n_unhealthy && i < 5; i++) {
			const struct rec_health_result *r = &rep.unhealthy[i];
			gitops_buf_printf(&b, "%s%s %s%s%s: %s (%s)", i ? "; " : "", r->kind, r->ns ? r->ns : "", r->ns ? "/" : "",
					  r->name, rec_health_name(r->health), r->reason ? r->reason : "");
		}
		if (rep.n_unhealthy > 5)
			gitops_buf_printf(&b, "; and %zu more", rep.n_unhealthy - 5);
		if (!rep.n_unhealthy)
			gitops_buf_puts(&b, gitops_error_last());
		*why = gitops_buf_detach(&b);
		if (rep.outcome == REC_HEALTH_CANCELLED)
			rc = GITOPS_ETIMEOUT;
	} else {
		dlog(de, "health gate passed in %lld ms", rep.ms);
	}
	rec_health_report_free(&rep);
	return rc;
}

static void set_syncing(struct denv *de, bool on)
{
	pthread_mutex_lock(&de->lock);
	de->syncing = on;
	pthread_cond_signal(&de->cond);
	pthread_mutex_unlock(&de->lock);
}

/* What the state branch says about the environment now (an empty object when unreadable). */
static json_t *env_state(struct denv *de)
{
	hist *h = NULL;
	json_t *st = NULL;
	if (open_hist(&h, de, true) == 0 && hist_env_state(&st, h, de->name))
		dlog(de, "warning: reading the state branch: %s", gitops_error_last());
	hist_free(h);
	gitops_error_clear();
	return st ? st : json_object();
}

/* Asked by rec_sync between chunks: stop writing at once when stopping (SIGTERM) or when this
 * replica no longer holds the environment's Lease (fencing: the new leader writes now). */
static bool sync_stop(void *ud)
{
	struct denv *de = ud;
	return gitops_cancel_is_set(de->d->opt->cancel) || !rec_control_may_act(de->d->opt->control, de->pipeline, de->name);
}

/* Syncs `plan`, gates it, records the outcome; on a failed gate with rollback.onFailure pins the
 * last healthy SHA (the caller syncs it next). *again is set when a rollback was recorded. */
static int sync_and_gate(struct denv *de, rec_plan *plan, const struct mf_environment *env, json_t *state, bool *again)
{
	const char *target = rec_plan_revision(plan);
	json_t *last = json_object_get(state, "lastSync");
	bool failed_here = jstr(last, "sha") && !strcmp(jstr(last, "sha"), target) && !strcmp(jstr(last, "result"), "failed");
	set_syncing(de, true);
	/* recorded after the gate */
	struct rec_env_sync_options so = {.sync = {.prune = env->sync_prune, .stop = sync_stop, .stop_ud = de}};
	struct rec_env_sync_result res;
	int rc = rec_env_sync(&res, de->ws, plan, &so);
	const struct rec_sync_report rep = res.rep;
	if (rep.interrupted) {
		/* stopped between chunks: what was applied is recorded as sync.started (it changes no
		 * state), nothing was pruned; the next start (or the next leader) syncs the rest. The
		 * events of its own writes are dropped: the old forms are not defended against them */
		pthread_mutex_lock(&de->lock);
		json_object_clear(de->queue);
		pthread_mutex_unlock(&de->lock);
		set_syncing(de, false);
		bool stopping = gitops_cancel_is_set(de->d->opt->cancel);
		unsigned done = rep.created + rep.updated;
		char *r = gitops_sprintf("interrupted (%s): %u of %u object(s) applied, %u not applied, nothing pruned; the "
					 "next sync applies the rest", stopping ? "stopping" : "the Lease was lost",
					 done, done + rep.failed + rep.not_applied, rep.not_applied);
		struct hist_event ev = {.type = "sync.started", .environment = de->name, .sha = target, .reason = r,
					.has_counts = true, .created = rep.created, .updated = rep.updated,
					.unchanged = rep.unchanged, .failed = rep.failed, .duration_ms = rep.ms};
		record(de, &ev, true);
		dlog(de, "sync of %.12s %s", target, r);
		free(r);
		gitops_metric_add("gitops_sync_total", 1, "pipeline", de->pipeline, "environment", de->name, "result", "interrupted", NULL);
		de->interrupted = true;
		rec_env_sync_result_clear(&res);
		return gitops_error_set(GITOPS_ETIMEOUT, "sync of %.12s interrupted", target);
	}
	char *err = rc ? gitops_strdup(gitops_error_last()) : NULL;
	if (!rc && !de->d->opt->once) {
		/* applied: the healer defends the new forms from now on, during the health gate too
		 * (events queued during the apply are compared with them) */
		if (watch_plan(de, plan, env)) {
			dlog(de, "warning: %s (the watches are rebuilt at the next pass)", gitops_error_last());
			stop_watches(de);
			gitops_error_clear();
		} else {
			de->watched = true;
		}
	} else if (rc) {
		/* a failed apply: the old forms are not defended against what it wrote; the next plan
		 * rebuilds them */
		pthread_mutex_lock(&de->lock);
		json_object_clear(de->queue);
		pthread_mutex_unlock(&de->lock);
	}
	set_syncing(de, false);
	bool changed = rep.created || rep.updated || rep.pruned;
	bool new_sha = !jstr(last, "sha") || strcmp(jstr(last, "sha"), target);
	char *why = NULL;
	int grc = 0;
	/* Fail fast on a Degraded object, except when coming from a degraded state (a rollback's
	 * sync): a Deployment keeps its stale ProgressDeadlineExceeded until the rollout back
	 * progresses, so there the gate waits for health up to its timeout. */
	const char *health = jstr(state, "health");
	bool from_degraded = health && !strcmp(health, "degraded");
	if (!rc && (changed || new_sha))
		grc = health_gate(de, plan, env, !from_degraded, &why);
	if (gitops_cancel_is_set(de->d->opt->cancel) && grc) {
		/* stopped (SIGTERM) in the middle of the gate: the apply that finished is recorded as
		 * sync.started, which changes no state: the next start syncs (a no-op) and gates again */
		char *r = gitops_sprintf("applied, then stopped before its health gate passed; the next start gates it again");
		struct hist_event ev = {.type = "sync.started", .environment = de->name, .sha = target, .reason = r,
					.has_counts = true, .created = rep.created, .updated = rep.updated,
					.unchanged = rep.unchanged, .pruned = rep.pruned, .failed = rep.failed,
					.duration_ms = rep.ms};
		record(de, &ev, true);
		free(r);
		dlog(de, "stopped during the health gate of %.12s: recorded as sync.started", target);
		free(err);
		free(why);
		rec_env_sync_result_clear(&res);
		return gitops_error_set(GITOPS_ETIMEOUT, "stopped during the health gate");
	}
	hist *h = NULL;
	if (open_hist(&h, de, true) == 0) {
		char *reason = err ? gitops_strdup(err) : why ? gitops_sprintf("health gate failed: %s", why) : NULL;
		/* a retry that fails the same way at the same SHA is not recorded again */
		if (!((rc || grc) && failed_here)) {
			struct hist_event ev = {.type = !rc && !grc ? "sync.succeeded" : "sync.failed", .environment = de->name,
						.actor = "gitops-run", .trigger = HIST_TRIGGER_AUTO, .reason = reason};
			if (rec_env_record_sync(NULL, de->ws, h, &res, &ev))
				dlog(de, "warning: the sync was not recorded: %s", gitops_error_last());
		}
		free(reason);
		if (grc) {
			struct hist_event ev = {.type = "health.degraded", .environment = de->name, .sha = target, .reason = why,
						.duration_ms = -1, .actor = "gitops-run", .trigger = "auto"};
			if (!failed_here && hist_record(NULL, h, &ev))
				dlog(de, "warning: health.degraded not recorded: %s", gitops_error_last());
		} else if (!rc && health && !strcmp(health, "degraded")) {
			struct hist_event ev = {.type = "health.recovered", .environment = de->name, .sha = target,
						.duration_ms = -1, .actor = "gitops-run", .trigger = "auto"};
			if (hist_record(NULL, h, &ev))
				dlog(de, "warning: health.recovered not recorded: %s", gitops_error_last());
		}
		if (grc && env->rollback_on_failure) {
			char *r = gitops_sprintf("health gate of %.12s failed: %s", target, why);
			struct hist_action act = {.actor = "gitops-run", .trigger = "auto", .reason = r};
			json_t *ev = NULL;
			if (hist_rollback_failed(&ev, h, env, target, &act) == 0) {
				dlog(de, "rolled back: pinned to %.12s (%.12s failed its health gate); gitops resume %s lets the "
					 "branch move it again", jstr(ev, "sha"), target, de->name);
				*again = true;
			} else {
				dlog(de, "no automatic rollback: %s", gitops_error_last());
			}
			json_decref(ev);
			free(r);
		}
	}
	hist_free(h);
	gitops_metric_add("gitops_sync_total", 1, "pipeline", de->pipeline, "environment", de->name, "result", rc || grc ? "failed" : "succeeded", NULL);
	if (!rc)
		gitops_metric_set("gitops_environment_healthy", grc ? 0 : 1, "pipeline", de->pipeline, "environment", de->name, NULL);
	if (rc) {
		dlog(de, "sync of %.12s failed: %s", target, err);
		rc = gitops_error_set(rc, "%s", err);
	} else if (grc) {
		/* recorded as sync.failed and health.degraded: not a daemon error to retry */
		dlog(de, "%.12s failed its health gate: %s", target, why);
		de->gate_failed = true;
	} else {
		dlog(de, "synced %.12s: %u created, %u updated, %u unchanged, %u pruned in %lld ms", target, rep.created,
		     rep.updated, rep.unchanged, rep.pruned, rep.ms);
	}
	free(err);
	free(why);
	rec_env_sync_result_clear(&res);
	return rc;
}

/* rec_live_source over the environment's watch caches (reconciler thread). They hold only the
 * objects labelled as this environment's, so an object not in a cache may still exist without
 * the labels: that one is GITOPS_ENOTFOUND, and the plan lists its kind and namespace. */
static int cached_live(void *ud, const struct kube_resource *r, const struct rec_ref *ref, json_t **out)
{
	struct denv *de = ud;
	*out = NULL;
	int rc = GITOPS_ENOTFOUND;
	pthread_rwlock_rdlock(&de->wlock);
	for (size_t i = 0; i < de->n_watches && rc; i++) {
		const struct dwatch *w = &de->watches[i];
		const char *ns = r->namespaced ? ref->namespace : NULL;
		if (w->r == r && !strcmp(w->ns ? w->ns : "", ns ? ns : "") && (*out = kube_cache_get(w->cache, ns, ref->name)))
			rc = GITOPS_OK;
	}
	pthread_rwlock_unlock(&de->wlock);
	return rc;
}

/* One pass: fetch, read the state branch, resolve the target; when anything moved, plan (live
 * objects from the watch caches, else one list per kind and namespace), sync when allowed,
 * gate, record, and point the watches at the new desired objects. In steady state: the fetch,
 * one state-branch read, nothing else. */
static int reconcile_once(struct denv *de, bool *again)
{
	*again = false;
	de->gate_failed = false;
	de->interrupted = false;
	de->watched = false;
	int rc;
	bool cfg_changed = false;
	if (!de->ws) {
		struct rec_workspace_options wo = daemon_wo(de->d->opt);
		wo.progress = ws_progress;
		wo.progress_ud = de;
		wo.cancel = gitops_cancel_flag(de->d->opt->cancel);
		wo.deploy = true;
		wo.repo = de->repo;
		wo.no_fetch = de->f != NULL; /* its repository's fetcher fetches */
		if ((rc = rec_workspace_open(&de->ws, &wo)))
			return rc;
		cfg_changed = true;
		free(de->repo_url);
		de->repo_url = gitops_strdup(de->ws->repo_url);
	} else if ((rc = rec_workspace_refresh(de->ws, &cfg_changed))) {
		return rc;
	}
	if (de->f) {
		/* the shared fetch failed: the mirror is stale; retried with backoff like any failure */
		pthread_mutex_lock(&de->f->lock);
		char *err = de->f->error ? gitops_strdup(de->f->error) : NULL;
		pthread_mutex_unlock(&de->f->lock);
		if (err) {
			rc = gitops_error_set(GITOPS_EGIT, "%s", err);
			free(err);
			return rc;
		}
	}
	const struct mf_environment *env;
	if ((rc = rec_workspace_env(&env, de->ws, de->name)))
		return rc;
	if ((rc = rec_workspace_client(&de->client, de->ws, env)))
		return rc;
	json_t *state = env_state(de);
	bool suspended = json_object_get(state, "suspended") != NULL;
	pthread_mutex_lock(&de->lock);
	de->self_heal = env->sync_self_heal;
	de->suspended = suspended;
	pthread_mutex_unlock(&de->lock);
	char target[41];
	if ((rc = rec_resolve_revision(target, de->ws, env, NULL))) {
		json_decref(state);
		if (rc == GITOPS_EINVALID && !env->track) {
			/* promoted from upstream and nothing promoted yet: nothing to do */
			if (strcmp(de->applied, "none"))
				dlog(de, "%s", gitops_error_last());
			snprintf(de->applied, sizeof(de->applied), "none");
			gitops_error_clear();
			return GITOPS_OK;
		}
		return rc;
	}
	const char *last_sha = jstr(json_object_get(state, "lastSync"), "sha");
	bool unrecorded = !last_sha || strcmp(last_sha, target);
	if (!cfg_changed && !strcmp(de->applied, target) && suspended == de->was_suspended &&
	    !(unrecorded && env->sync_auto && !suspended)) {
		json_decref(state);
		return GITOPS_OK; /* steady state */
	}
	/* An unreachable cluster fails here once, not once per object of the plan. */
	const struct kube_resource *probe;
	if ((rc = kube_resource_for(&probe, de->client, "v1", "Namespace"))) {
		json_decref(state);
		return gitops_error_prefix("%s", de->name);
	}
	rec_plan *plan = NULL;
	struct rec_live_source live = {cached_live, de};
	struct rec_plan_options po = {.revision = target, .live = &live};
	if ((rc = rec_plan_new(&plan, de->ws, de->name, &po))) {
		json_decref(state);
		return rc;
	}
	bool in_sync = rec_plan_in_sync(plan);
	if (suspended) {
		dlog(de, "suspended: %s at %.12s, not syncing (drift is still reported)", in_sync ? "Synced" : "OutOfSync",
		     target);
	} else if (!in_sync || unrecorded) {
		if (!env->sync_auto) {
			if (!in_sync)
				dlog(de, "OutOfSync at %.12s; sync.auto is off: waiting for gitops sync %s", target, de->name);
		} else {
			rc = sync_and_gate(de, plan, env, state, again);
		}
	}
	de->was_suspended = suspended;
	if (!rc || *again) {
		snprintf(de->applied, sizeof(de->applied), "%s", target);
		if (!de->d->opt->once && !*again) {
			int wrc = de->watched ? GITOPS_OK : watch_plan(de, plan, env);
			if (wrc) {
				stop_watches(de); /* rebuilt from scratch on the next pass */
				if (!rc)
					rc = wrc;
			}
			if (!wrc) {
				pthread_mutex_lock(&de->lock);
				de->rekey = true;
				pthread_cond_signal(&de->cond);
				pthread_mutex_unlock(&de->lock);
			}
		}
	}
	if (rc && !*again)
		de->applied[0] = '\0'; /* plan again on the next pass */
	rec_plan_free(plan);
	json_decref(state);
	/* A plan's rendered and live objects are gone now; hand the heap they took back to the
	 * system, or the daemon's resident memory stays at its peak for good (and the JSON
	 * arenas' spare chunks). */
	malloc_trim(0);
	gitops_json_arena_trim();
	return *again ? GITOPS_OK : rc;
}

static long long jitter(long long ms, unsigned *seed)
{
	/* +-10 %, so daemons started together do not fetch in lockstep */
	long long span = ms / 5;
	return span > 0 ? ms - span / 2 + (long long)(rand_r(seed) % (unsigned)(span + 1)) : ms;
}

/* Logs the apiserver requests made since the last pass (watches, healing and health waits
 * included) when there were any: in steady state the daemon is silent here. */
static void report_requests(struct denv *de, bool total)
{
	if (!de->client)
		return;
	struct kube_stats st;
	kube_client_stats(de->client, &st);
	if (total)
		dlog(de, "kube: %lu requests (%lu writes) since start", st.requests, st.writes);
	else if (st.requests != de->seen.requests)
		dlog(de, "kube: %lu requests (%lu writes) since the last pass", st.requests - de->seen.requests,
		     st.writes - de->seen.writes);
	de->seen = st;
}

static unsigned long fetches_asked(struct denv *de)
{
	if (!de->f)
		return 0;
	pthread_mutex_lock(&de->f->lock);
	unsigned long n = de->f->asked;
	pthread_mutex_unlock(&de->f->lock);
	return n;
}

static void *env_main(void *arg)
{
	struct denv *de = arg;
	const struct rec_daemon_options *o = de->d->opt;
	long long interval = o->interval_ms > 0 ? o->interval_ms : 30000;
	unsigned seed = (unsigned)gitops_now_ms() ^ (unsigned)(uintptr_t)de;
	while (!gitops_cancel_is_set(o->cancel)) {
		bool again = false;
		if (!rec_control_may_act(o->control, de->pipeline, de->name)) {
			/* another replica holds the Lease: stand by; taking over starts from scratch */
			if (de->applied[0] || de->n_watches) {
				dlog(de, "not the leader any more: standing by");
				stop_watches(de);
				de->applied[0] = '\0';
			}
			rec_control_pass_done(o->control, de->pipeline, de->name, 0, NULL, NULL, -1, -1);
			if (rec_control_wait(o->control, de->pipeline, de->name, o->cancel, 1000))
				break;
			continue;
		}
		long long t0 = gitops_now_ms();
		int rc = reconcile_once(de, &again);
		gitops_metric_observe("gitops_reconcile_duration_seconds", (double)(gitops_now_ms() - t0) / 1000.0,
				      "pipeline", de->pipeline, "environment", de->name, NULL);
		rec_control_pass_done(o->control, de->pipeline, de->name, rc, rc ? gitops_error_last() : NULL, de->applied, -1, -1);
		if (again)
			continue; /* a rollback was pinned: sync it now */
		long long wait;
		if (rc && gitops_cancel_is_set(o->cancel))
			break;
		if (de->interrupted) {
			/* the Lease was lost mid-sync (recorded): not an error; the loop stands by */
			de->interrupted = false;
			gitops_error_clear();
			continue;
		}
		if (rc) {
			char *msg = gitops_sprintf("%s", gitops_error_last());
			de->failures++;
			long long backoff = 1000LL << (de->failures > 9 ? 9 : de->failures - 1);
			if (backoff > REC_BACKOFF_CAP_MS)
				backoff = REC_BACKOFF_CAP_MS;
			if (o->once)
				dlog(de, "error: %s", msg);
			else
				dlog(de, "error (attempt %u, retrying in %llds): %s", de->failures, backoff / 1000, msg);
			set_error(de, msg);
			free(msg);
			wait = backoff;
			de->ok_once = false;
		} else {
			if (de->failures)
				dlog(de, "recovered after %u failed attempt(s)", de->failures);
			de->failures = 0;
			set_error(de, NULL);
			/* with a shared fetcher, its wake after each fetch ends the wait; the timeout is a
			 * safety net only */
			wait = de->f ? 3 * interval : interval;
			de->ok_once = !de->gate_failed;
		}
		report_requests(de, false);
		/* after the error was taken: reading the state branch clears the thread's last error */
		rec_control_count_pending(o->control, de->pipeline, de->name);
		if (o->once)
			break;
		/* after a failure the backoff runs out, unless a fetch was asked for (a webhook): the
		 * fetcher's wake after a timed fetch does not end it */
		long long until = gitops_now_ms() + jitter(wait, &seed);
		unsigned long asked = fetches_asked(de);
		bool stop = false;
		do
			stop = rec_control_wait(o->control, de->pipeline, de->name, o->cancel, until - gitops_now_ms());
		while (!stop && rc && de->f && gitops_now_ms() < until && fetches_asked(de) == asked);
		if (stop)
			break;
	}
	report_requests(de, true);
	return NULL;
}

/* ---- the fetcher: one fetch per repository and interval -------------------------------------- */

static void notify_log(void *ud, const char *line);

/* The main branch moved: `notifications:` as gitops.yaml says now. A bad one keeps the sinks
 * that were (logged). */
static void reload_notifications(struct dfetch *f)
{
	const struct mf_config *cfg = rec_workspace_config(f->ws);
	const char *sha = rec_workspace_main_sha(f->ws);
	bool changed = false;
	int rc;
	if (f->notifier) {
		rc = rec_notify_reload(f->notifier, cfg, &changed);
	} else if (cfg->n_notifications) {
		struct rec_notify_options no = {.cfg = cfg, .repo_url = f->ws->repo_url, .pipeline = f->pipeline,
						.control = f->d->opt->control, .log = notify_log, .log_ud = f->d};
		rc = rec_notify_start(&f->notifier, &no);
		changed = rc == 0;
	} else {
		return;
	}
	char *m = rc ? gitops_sprintf("notifications: %s (at %.12s); the previous sinks stay", gitops_error_last(), sha)
		: changed ? gitops_sprintf("notifications: %zu sink(s) from gitops.yaml at %.12s", cfg->n_notifications, sha)
			  : NULL;
	if (m)
		notify_log(f->d, m);
	free(m);
	gitops_error_clear();
}

static void *fetch_main(void *arg)
{
	struct dfetch *f = arg;
	const struct rec_daemon_options *o = f->d->opt;
	long long interval = o->interval_ms > 0 ? o->interval_ms : 30000;
	unsigned seed = (unsigned)gitops_now_ms() ^ (unsigned)(uintptr_t)f;
	long long wait = jitter(interval, &seed); /* rec_daemon_run fetched at start */
	for (;;) {
		long long t0 = gitops_now_ms();
		if (rec_control_fetch_wait(o->control, f->pipeline, o->cancel, wait))
			break;
		bool asked = gitops_now_ms() - t0 < wait; /* woken before its time: a webhook or a follower */
		/* followers fetch too: an environment taken over starts from a fresh mirror */
		bool changed = false;
		int rc = rec_workspace_refresh(f->ws, &changed);
		if (!rc && changed)
			reload_notifications(f);
		pthread_mutex_lock(&f->lock);
		free(f->error);
		f->error = rc ? gitops_strdup(gitops_error_last()) : NULL;
		f->asked += asked;
		pthread_mutex_unlock(&f->lock);
		gitops_error_clear();
		if (rc) {
			f->failures++;
			long long backoff = 1000LL << (f->failures > 9 ? 9 : f->failures - 1);
			wait = backoff > REC_BACKOFF_CAP_MS ? REC_BACKOFF_CAP_MS : backoff;
		} else {
			f->failures = 0;
			wait = jitter(interval, &seed);
		}
		rec_control_wake(o->control, f->pipeline);
	}
	return NULL;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

static void denv_init(struct denv *de, struct daemon *d, const char *name, const char *repo_url, const char *repo,
		      const char *pipeline, bool qualify)
{
	memset(de, 0, sizeof(*de));
	de->d = d;
	de->name = gitops_strdup(name);
	de->pipeline = gitops_strdup(pipeline);
	de->label = qualify ? gitops_sprintf("%s/%s", pipeline, name) : gitops_strdup(name);
	de->repo = repo;
	de->repo_url = gitops_strdup(repo_url);
	pthread_mutex_init(&de->lock, NULL);
	pthread_cond_init(&de->cond, NULL);
	pthread_rwlock_init(&de->wlock, NULL);
	de->desired = json_object();
	de->queue = json_object();
	de->episodes = json_object();
	de->last_error = gitops_strdup("");
}

static void denv_clear(struct denv *de)
{
	stop_watches(de);
	rec_workspace_free(de->ws);
	json_decref(de->desired);
	json_decref(de->queue);
	json_decref(de->episodes);
	drift_ignore_free(de->ignore);
	pthread_mutex_destroy(&de->lock);
	pthread_cond_destroy(&de->cond);
	pthread_rwlock_destroy(&de->wlock);
	free(de->name);
	free(de->pipeline);
	free(de->label);
	free(de->repo_url);
	free(de->last_error);
}

/* The notifier's lines go to the log under "-". */
static void notify_log(void *ud, const char *line)
{
	struct daemon *d = ud;
	if (!d->opt->log)
		return;
	pthread_mutex_lock(&d->log_lock);
	d->opt->log(d->opt->log_ud, "-", line);
	pthread_mutex_unlock(&d->log_lock);
}

int rec_daemon_run(const struct rec_daemon_options *opt)
{
	/* One pipeline per repository. Each is opened once on this thread to check it and the
	 * environments before anything starts. */
	size_t n_repos = opt->n_repos ? opt->n_repos : 1;
	const char *const *repos = opt->n_repos ? opt->repos : &opt->repo;
	rec_workspace **wss = gitops_calloc(n_repos, sizeof(*wss));
	struct dfetch *fetchers = gitops_calloc(n_repos, sizeof(*fetchers));
	const char **pipelines = gitops_calloc(n_repos, sizeof(*pipelines));
	struct daemon d = {.opt = opt};
	pthread_mutex_init(&d.log_lock, NULL);
	int rc = GITOPS_OK;
	size_t n = 0;
	for (size_t r = 0; r < n_repos && !rc; r++) {
		struct rec_workspace_options wo = daemon_wo(opt);
		wo.repo = repos[r];
		if ((rc = rec_workspace_open(&wss[r], &wo)) || (rc = rec_workspace_pipeline(&pipelines[r], NULL, wss[r])))
			break;
		for (size_t k = 0; k < r && !rc; k++)
			if (!strcmp(pipelines[k], pipelines[r]))
				rc = gitops_error_set(GITOPS_EINVALID, "--repo %s and --repo %s are the same pipeline %s (its name in "
							  "gitops.yaml, or its first commit): give each a distinct name",
						      repos[k] ? repos[k] : ".", repos[r] ? repos[r] : ".", pipelines[r]);
		const struct mf_config *cfg = rec_workspace_config(wss[r]);
		n += opt->n_envs ? opt->n_envs : cfg->n_envs;
	}
	/* --env E: every pipeline that has E; one at least */
	for (size_t i = 0; i < opt->n_envs && !rc; i++) {
		bool found = false;
		for (size_t r = 0; r < n_repos && !found; r++)
			found = mf_config_env(rec_workspace_config(wss[r]), opt->envs[i]) != NULL;
		if (!found) {
			const struct mf_environment *env;
			if (n_repos == 1)
				rc = rec_workspace_env(&env, wss[0], opt->envs[i]); /* its own message */
			if (!rc)
				rc = gitops_error_set(GITOPS_EINVALID, "--env %s: no pipeline has this environment", opt->envs[i]);
		}
	}
	if (rc)
		goto out;
	if (opt->control) {
		/* how the web side opens workspaces and state branches, for every pipeline */
		struct rec_workspace_options wo = daemon_wo(opt);
		rec_control_configure(opt->control, &wo);
	}
	/* the array does not move once threads hold pointers into it */
	d.envs = gitops_calloc(n ? n : 1, sizeof(*d.envs));
	for (size_t r = 0; r < n_repos; r++) {
		rec_workspace *ws = wss[r];
		const struct mf_config *cfg = rec_workspace_config(ws);
		if (opt->control)
			rec_control_pipeline(opt->control, pipelines[r], ws->repo_url, cfg->branch);
		size_t m = opt->n_envs ? opt->n_envs : cfg->n_envs;
		for (size_t i = 0; i < m; i++) {
			const char *name = opt->n_envs ? opt->envs[i] : cfg->envs[i].name;
			const struct mf_environment *env = mf_config_env(cfg, name);
			if (!env)
				continue;
			denv_init(&d.envs[d.n++], &d, name, ws->repo_url, repos[r], pipelines[r], n_repos > 1);
			/* one fetcher per repository, with the control that wakes the environments */
			if (!opt->once && opt->control)
				d.envs[d.n - 1].f = &fetchers[r];
			if (opt->control)
				rec_control_env_add(opt->control, pipelines[r], name, env->track);
		}
		/* notifications: on their own threads, fed by the state branch; a reconcile never waits */
		if (!opt->once && cfg->n_notifications) {
			struct rec_notify_options no = {.cfg = cfg, .repo_url = ws->repo_url, .state_repo = opt->state_repo,
							.state_branch = opt->state_branch, .pipeline = pipelines[r],
							.control = opt->control, .log = notify_log, .log_ud = &d};
			if ((rc = rec_notify_start(&fetchers[r].notifier, &no)))
				goto out_envs;
		}
	}
	for (size_t r = 0; r < n_repos; r++) {
		struct dfetch *f = &fetchers[r];
		f->d = &d;
		f->ws = wss[r];
		f->pipeline = pipelines[r];
		pthread_mutex_init(&f->lock, NULL);
		if (!opt->once && opt->control)
			f->started = pthread_create(&f->thread, NULL, fetch_main, f) == 0;
	}
	for (size_t i = 0; i < d.n; i++) {
		struct denv *de = &d.envs[i];
		/* the last error and open drift episodes survive restarts: nothing is recorded twice */
		json_t *st = env_state(de);
		const char *e = jstr(json_object_get(st, "daemonError"), "reason");
		if (e) {
			free(de->last_error);
			de->last_error = gitops_strdup(e);
		}
		json_decref(st);
		if (!opt->once) {
			load_episodes(de);
			de->healer_started = pthread_create(&de->healer, NULL, healer_main, de) == 0;
		}
		pthread_create(&de->thread, NULL, env_main, de);
	}
	gitops_buf failed = GITOPS_BUF_INIT;
	for (size_t i = 0; i < d.n; i++) {
		struct denv *de = &d.envs[i];
		pthread_join(de->thread, NULL);
		pthread_mutex_lock(&de->lock);
		de->stop = true;
		pthread_cond_signal(&de->cond);
		pthread_mutex_unlock(&de->lock);
		if (de->healer_started)
			pthread_join(de->healer, NULL);
		if (opt->once && !de->ok_once)
			gitops_buf_printf(&failed, "%s%s", failed.len ? ", " : "", de->label);
	}
	for (size_t r = 0; r < n_repos; r++) {
		/* the token is set (or --once, with no fetcher): they end at once */
		if (fetchers[r].started)
			pthread_join(fetchers[r].thread, NULL);
		fetchers[r].started = false;
	}
	rc = failed.len ? gitops_error_set(GITOPS_ERROR, "environment(s) failed: %s (see the lines above)", failed.ptr)
			: GITOPS_OK;
	gitops_buf_free(&failed);
out_envs:
	for (size_t r = 0; r < n_repos; r++)
		rec_notify_stop(fetchers[r].notifier);
	for (size_t i = 0; i < d.n; i++)
		denv_clear(&d.envs[i]);
out:
	free(d.envs);
	pthread_mutex_destroy(&d.log_lock);
	for (size_t r = 0; r < n_repos; r++) {
		if (fetchers[r].d) {
			pthread_mutex_destroy(&fetchers[r].lock);
			free(fetchers[r].error);
		}
		rec_workspace_free(wss[r]);
	}
	free(fetchers);
	free(wss);
	free(pipelines);
	return rc;
}
