/* kube: the watch-fed object cache (an "informer"). One thread per cache lists the resource,
 * then watches from the list's resourceVersion; it re-watches from the last version seen when
 * the server ends the stream, relists on 410 and reports the difference, so no change is lost.
 * Objects are stored as compact JSON text: a parsed jansson tree costs about 8x the memory, and
 * readers (the planner) parse only what they look at. */
#include "kube/internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct kube_cache {
	kube_client *c;
	const struct kube_resource *r;
	char *ns, *selector, *keep_manager;
	kube_cache_fn on_event;
	void *ud;

	pthread_t thread;
	atomic_int stop;
	atomic_int break_stream;
	struct kube_stream_sock sock; /* the watch stream's socket: stop and break end it at once */

	pthread_mutex_t lock;
	pthread_cond_t cond;       /* synced, or stop (wakes backoff sleeps) */
	json_t *store;             /* "ns/name" -> JSON string holding the compact object text */
	bool synced;
	char *rv;                  /* resume point */
	char *debug_rv;
	struct kube_cache_stats stats;

	/* Watch stream state (cache thread only). */
	gitops_buf line;
	bool gone;                 /* an in-stream 410 was seen */
	bool stream_error;
};

const char *kube_event_name(enum kube_event ev)
{
	switch (ev) {
	case KUBE_ADDED: return "ADDED";
	case KUBE_MODIFIED: return "MODIFIED";
	default: return "DELETED";
	}
}

static char *obj_key(const json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	return gitops_sprintf("%s/%s", ns ? ns : "", name ? name : "");
}

static const char *obj_rv(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

static json_t *packed(const json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	json_t *v = json_string_nocheck(text);
	free(text);
	return v;
}

static json_t *unpacked(const json_t *v)
{
	json_error_t jerr;
	return v ? json_loadb(json_string_value(v), json_string_length(v), 0, &jerr) : NULL;
}

/* Drops managedFields entries of other managers: they are most of an object's size. */
static void trim(kube_cache *kc, json_t *obj)
{
	if (kc->keep_manager && !strcmp(kc->keep_manager, "*"))
		return;
	json_t *meta = json_object_get(obj, "metadata");
	json_t *mf = json_object_get(meta, "managedFields");
	if (!mf)
		return;
	if (!kc->keep_manager) {
		json_object_del(meta, "managedFields");
		return;
	}
	for (size_t i = json_array_size(mf); i-- > 0;) {
		const char *m = json_string_value(json_object_get(json_array_get(mf, i), "manager"));
		if (!m || strcmp(m, kc->keep_manager))
			json_array_remove(mf, i);
	}
	if (json_array_size(mf) == 0)
		json_object_del(meta, "managedFields");
}

/* A change to report: obj and old are packed (JSON strings), parsed only when delivered. */
struct pending { enum kube_event ev; json_t *obj, *old; };

static void emit(kube_cache *kc, struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (kc->on_event) {
			json_t *obj = unpacked(p[i].obj), *old = unpacked(p[i].old);
			kc->on_event(kc->ud, p[i].ev, obj, old);
			json_decref(obj);
			json_decref(old);
		}
		json_decref(p[i].obj);
		json_decref(p[i].old);
	}
	pthread_mutex_lock(&kc->lock);
	kc->stats.events += kc->on_event ? n : 0;
	pthread_mutex_unlock(&kc->lock);
}

/* Interruptible sleep: returns early when the cache is stopped. */
static void backoff(kube_cache *kc, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&kc->lock);
	while (!atomic_load(&kc->stop))
		if (pthread_cond_timedwait(&kc->cond, &kc->lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&kc->lock);
}

static void pack_page(void *ud, json_t *items)
{
	struct { kube_cache *kc; json_t *fresh; } *st = ud;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		trim(st->kc, it);
		char *k = obj_key(it);
		json_object_set_new(st->fresh, k, packed(it));
		free(k);
	}
}

static void restart_pages(void *ud)
{
	struct { kube_cache *kc; json_t *fresh; } *st = ud;
	json_object_clear(st->fresh);
}

/* Lists and replaces the store, reporting what changed since the previous contents. Pages are
 * packed as they arrive, so the whole list is never held parsed. */
static int relist(kube_cache *kc)
{
	char *rv = NULL;
	struct { kube_cache *kc; json_t *fresh; } st = {kc, json_object()};
	int rc = kube_list_pages(kc->c, kc->r, kc->ns, kc->selector, pack_page, restart_pages, &st, &rv);
	json_t *fresh = st.fresh;
	if (rc) {
		json_decref(fresh);
		return rc;
	}
	size_t np = 0;
	struct pending *p = gitops_calloc(json_object_size(fresh) + 1, sizeof(*p));
	pthread_mutex_lock(&kc->lock);
	size_t cap = json_object_size(fresh) + 1;
	const char *k;
	json_t *v;
	json_object_foreach(fresh, k, v) {
		json_t *old = json_object_get(kc->store, k);
		if (!kc->on_event)
			continue;
		if (!old) {
			p[np++] = (struct pending){KUBE_ADDED, json_incref(v), NULL};
			continue;
		}
		json_t *o = unpacked(old), *n = unpacked(v);
		const char *orv = obj_rv(o), *nrv = obj_rv(n);
		if (!orv || !nrv || strcmp(orv, nrv))
			p[np++] = (struct pending){KUBE_MODIFIED, json_incref(v), json_incref(old)};
		json_decref(o);
		json_decref(n);
	}
	json_object_foreach(kc->store, k, v) {
		if (kc->on_event && !json_object_get(fresh, k)) {
			if (np == cap) {
				cap *= 2;
				p = gitops_realloc(p, cap * sizeof(*p));
			}
			p[np++] = (struct pending){KUBE_DELETED, json_incref(v), NULL};
		}
	}
	json_decref(kc->store);
	kc->store = fresh;
	free(kc->rv);
	kc->rv = rv;
	kc->stats.lists++;
	kc->synced = true;
	pthread_cond_broadcast(&kc->cond);
	pthread_mutex_unlock(&kc->lock);
	emit(kc, p, np);
	free(p);
	return GITOPS_OK;
}

static void handle_event(kube_cache *kc, const char *data, size_t len)
{
	json_error_t jerr;
	json_t *ev = json_loadb(data, len, 0, &jerr);
	if (!ev) {
		kc->stream_error = true;
		return;
	}
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		json_decref(ev);
		return;
	}
	if (!strcmp(type, "ERROR")) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));
		if (code == 410)
			kc->gone = true;
		else
			kc->stream_error = true;
		json_decref(ev);
		return;
	}
	const char *rv = obj_rv(obj);
	pthread_mutex_lock(&kc->lock);
	if (rv) {
		free(kc->rv);
		kc->rv = gitops_strdup(rv);
	}
	if (!strcmp(type, "BOOKMARK")) {
		kc->stats.bookmarks++;
		pthread_mutex_unlock(&kc->lock);
		json_decref(ev);
		return;
	}
	trim(kc, obj);
	char *k = obj_key(obj);
	json_t *old = json_object_get(kc->store, k);
	json_t *now = packed(obj);
	struct pending p = {KUBE_ADDED, json_incref(now), NULL};
	if (!strcmp(type, "DELETED")) {
		p.ev = KUBE_DELETED;
		json_object_del(kc->store, k);
		json_decref(now);
	} else {
		/* An ADDED for a known object (after a re-watch) is a modification. */
		p.ev = old ? KUBE_MODIFIED : KUBE_ADDED;
		p.old = old ? json_incref(old) : NULL;
		json_object_set_new(kc->store, k, now);
	}
	free(k);
	pthread_mutex_unlock(&kc->lock);
	emit(kc, &p, 1);
	json_decref(ev);
}

static size_t on_stream(void *ud, const char *data, size_t len)
{
	kube_cache *kc = ud;
	gitops_buf_put(&kc->line, data, len);
	size_t start = 0;
	for (size_t i = 0; i < kc->line.len; i++) {
		if (kc->line.ptr[i] != '\n')
			continue;
		if (i > start)
			handle_event(kc, kc->line.ptr + start, i - start);
		start = i + 1;
		if (kc->gone)
			break;
	}
	memmove(kc->line.ptr, kc->line.ptr + start, kc->line.len - start);
	kc->line.len -= start;
	kc->line.ptr[kc->line.len] = '\0';
	return kc->gone ? 0 : len; /* 0 ends the transfer */
}

static int should_stop(void *ud)
{
	kube_cache *kc = ud;
	return atomic_load(&kc->stop) || atomic_load(&kc->break_stream);
}

static void *run(void *arg)
{
	kube_cache *kc = arg;
	bool need_list = true;
	long wait = 100;
	char *base = kube_path(kc->r, kc->ns, NULL);
	char *sel = kc->selector ? curl_easy_escape(NULL, kc->selector, 0) : NULL;
	while (!atomic_load(&kc->stop)) {
		if (need_list) {
			if (relist(kc) != GITOPS_OK) {
				backoff(kc, wait);
				wait = wait < 5000 ? wait * 2 : 5000;
				continue;
			}
			need_list = false;
		}
		/* re-armed before the stop is read: a stop after this point shuts the new socket */
		atomic_store(&kc->break_stream, 0);
		kube_stream_rearm(&kc->sock);
		if (atomic_load(&kc->stop))
			break;
		pthread_mutex_lock(&kc->lock);
		if (kc->debug_rv) {
			free(kc->rv);
			kc->rv = kc->debug_rv;
			kc->debug_rv = NULL;
		}
		gitops_buf path = GITOPS_BUF_INIT;
		gitops_buf_printf(&path, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s",
				  base, 240 + rand() % 120, kc->rv ? kc->rv : "0");
		kc->stats.watches++;
		pthread_mutex_unlock(&kc->lock);
		if (sel)
			gitops_buf_printf(&path, "&labelSelector=%s", sel);
		gitops_buf_clear(&kc->line);
		kc->gone = kc->stream_error = false;
		struct kube_http_opts o = {.watch = true, .on_data = on_stream, .ud = kc,
					   .should_stop = should_stop, .sock = &kc->sock, .no_retry = true};
		long status = 0;
		int rc = kube_http(kc->c, "GET", path.ptr, NULL, &o, &status, NULL);
		gitops_buf_free(&path);
		if (atomic_load(&kc->stop))
			break;
		if (kc->gone || status == 410) {
			pthread_mutex_lock(&kc->lock);
			kc->stats.relists_410++;
			pthread_mutex_unlock(&kc->lock);
			need_list = true;
			continue;
		}
		if (atomic_load(&kc->break_stream))
			continue;
		if (rc || status != 200 || kc->stream_error) {
			/* Unreachable server or an error reply: resume from the same version later. */
			backoff(kc, wait);
			wait = wait < 5000 ? wait * 2 : 5000;
			continue;
		}
		wait = 100; /* the server closed a healthy stream: re-watch at once */
	}
	curl_free(sel);
	free(base);
	return NULL;
}

int kube_cache_start(kube_cache **out, kube_client *c, const struct kube_resource *r,
		     const struct kube_cache_options *opt)
{
	struct kube_cache_options none = {0};
	if (!opt)
		opt = &none;
	kube_cache *kc = gitops_calloc(1, sizeof(*kc));
	kc->c = c;
	kc->r = r;
	kc->ns = opt->namespace ? gitops_strdup(opt->namespace) : NULL;
	kc->selector = opt->label_selector ? gitops_strdup(opt->label_selector) : NULL;
	kc->keep_manager = opt->keep_manager ? gitops_strdup(opt->keep_manager) : NULL;
	kc->on_event = opt->on_event;
	kc->ud = opt->ud;
	kc->store = json_object();
	pthread_mutex_init(&kc->lock, NULL);
	kube_stream_sock_init(&kc->sock);
	pthread_cond_init(&kc->cond, NULL);
	int err = pthread_create(&kc->thread, NULL, run, kc);
	if (err) {
		kc->thread = 0;
		kube_cache_free(kc);
		return gitops_error_set(GITOPS_ERROR, "cannot start the cache thread: %s", gitops_strerror(err));
	}
	*out = kc;
	return GITOPS_OK;
}

int kube_cache_wait_synced(kube_cache *kc, long timeout_ms)
{
	long long deadline = gitops_now_ms() + timeout_ms;
	pthread_mutex_lock(&kc->lock);
	while (!kc->synced) {
		long long left = deadline - gitops_now_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = ts.tv_nsec + (left % 1000) * 1000000LL;
		ts.tv_sec += left / 1000 + ns / 1000000000LL;
		ts.tv_nsec = ns % 1000000000LL;
		pthread_cond_timedwait(&kc->cond, &kc->lock, &ts);
	}
	bool ok = kc->synced;
	pthread_mutex_unlock(&kc->lock);
	return ok ? GITOPS_OK : gitops_error_set(GITOPS_ETIMEOUT, "cache of %s: not synced after %ld ms",
						 kc->r->resource, timeout_ms);
}

json_t *kube_cache_get(kube_cache *kc, const char *ns, const char *name)
{
	char *k = gitops_sprintf("%s/%s", ns ? ns : "", name);
	pthread_mutex_lock(&kc->lock);
	json_t *copy = unpacked(json_object_get(kc->store, k));
	pthread_mutex_unlock(&kc->lock);
	free(k);
	return copy;
}

json_t *kube_cache_list(kube_cache *kc)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&kc->lock);
	const char *k;
	json_t *v;
	json_object_foreach(kc->store, k, v)
		json_array_append_new(arr, unpacked(v));
	pthread_mutex_unlock(&kc->lock);
	return arr;
}

size_t kube_cache_size(kube_cache *kc)
{
	pthread_mutex_lock(&kc->lock);
	size_t n = json_object_size(kc->store);
	pthread_mutex_unlock(&kc->lock);
	return n;
}

void kube_cache_stats(kube_cache *kc, struct kube_cache_stats *out)
{
	pthread_mutex_lock(&kc->lock);
	*out = kc->stats;
	pthread_mutex_unlock(&kc->lock);
}

void kube_cache_debug_resume_from(kube_cache *kc, const char *rv)
{
	pthread_mutex_lock(&kc->lock);
	free(kc->debug_rv);
	kc->debug_rv = gitops_strdup(rv);
	pthread_mutex_unlock(&kc->lock);
	atomic_store(&kc->break_stream, 1);
	kube_stream_abort(&kc->sock);
}

void kube_cache_free(kube_cache *kc)
{
	if (!kc)
		return;
	atomic_store(&kc->stop, 1);
	kube_stream_abort(&kc->sock);
	pthread_mutex_lock(&kc->lock);
	pthread_cond_broadcast(&kc->cond);
	pthread_mutex_unlock(&kc->lock);
	if (kc->thread)
		pthread_join(kc->thread, NULL);
	kube_stream_sock_destroy(&kc->sock);
	json_decref(kc->store);
	gitops_buf_free(&kc->line);
	free(kc->rv);
	free(kc->debug_rv);
	free(kc->ns);
	free(kc->selector);
	free(kc->keep_manager);
	pthread_mutex_destroy(&kc->lock);
	pthread_cond_destroy(&kc->cond);
	free(kc);
}
