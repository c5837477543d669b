/* reconcile/notify: outgoing notifications. A reader thread follows the state branch (every
 * event, whoever recorded it) and queues what the sinks of gitops.yaml asked for; a sender
 * thread delivers the queue with retries. URLs and secrets are read from their variable or file
 * at each delivery and never logged: log lines name the sink only, and curl's messages (which
 * may carry the host) are replaced by curl_easy_strerror's fixed text. */
#include "reconcile/control.h"
#include "history/history.h"
#include "manifests/manifests.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TRIES 6

struct sink {
	char *name;
	enum mf_notify_kind kind;
	char *url_env, *url_file, *secret_env, *secret_file;
	char **events, **envs;
	size_t n_events, n_envs;
};

struct item {
	struct item *next;
	struct sink sink;     /* its own copy: a reload of the sinks does not touch the queue */
	char *body, *type, *id;
	int tries;
	long long not_before; /* gitops_now_ms */
};

struct rec_notifier {
	pthread_mutex_t slock; /* guards s, n and fp: swapped by rec_notify_reload */
	struct sink *s;
	size_t n;
	char *fp;              /* what the sinks were built from (rec_notify_reload compares) */
	char *repo_url, *pipeline, *first_env;
	char *state_repo, *state_branch; /* NULL: the manifests repository, the default branch */
	rec_control *control;
	long long poll_ms, since_ms;
	void (*log)(void *ud, const char *line);
	void *log_ud;
	pthread_t reader, sender;
	bool reader_started, sender_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct item *queue;
	json_t *seen; /* event id -> time (ms): sent or skipped already */
};

static void nlog(rec_notifier *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void nlog(rec_notifier *n, const char *fmt, ...)
{
	if (!n->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *line = gitops_vsprintf(fmt, ap);
	va_end(ap);
	n->log(n->log_ud, line);
	free(line);
}

static char **strv_copy(char *const *v, size_t n)
{
	char **c = gitops_calloc(n + 1, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		c[i] = gitops_strdup(v[i]);
	return c;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A secret value from its variable or file (trailing newlines dropped); NULL when unavailable.
 * The caller wipes and frees it. */
static char *secret_value(const char *env, const char *file)
{
	if (env) {
		const char *v = getenv(env);
		return v && *v ? gitops_strdup(v) : NULL;
	}
	gitops_buf b = GITOPS_BUF_INIT;
	if (!file || gitops_read_file(&b, file, 65536)) {
		gitops_error_clear();
		gitops_buf_free(&b);
		return NULL;
	}
	while (b.len && (b.ptr[b.len - 1] == '\n' || b.ptr[b.len - 1] == '\r'))
		b.ptr[--b.len] = '\0';
	if (!b.len) {
		gitops_buf_free(&b);
		return NULL;
	}
	return gitops_buf_detach(&b);
}

static void wipe(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static bool listed(char *const *v, size_t n, const char *x)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], "*") || !strcmp(v[i], x))
			return true;
	return false;
}

/* ---- payloads -------------------------------------------------------------------------------- */

static const char *js(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

/* One human line: "shop: sync.failed in prod at 1a2b3c4d5e6f: reason". */
static char *summary(rec_notifier *n, const json_t *ev)
{
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_printf(&b, "%s: %s", n->pipeline, js(ev, "type"));
	if (*js(ev, "environment") && strcmp(js(ev, "environment"), "-"))
		gitops_buf_printf(&b, " in %s", js(ev, "environment"));
	if (*js(ev, "sha"))
		gitops_buf_printf(&b, " at %.12s", js(ev, "sha"));
	if (*js(ev, "object"))
		gitops_buf_printf(&b, " (%s)", js(ev, "object"));
	if (*js(ev, "reason"))
		gitops_buf_printf(&b, ": %s", js(ev, "reason"));
	return gitops_buf_detach(&b);
}

static char *payload(rec_notifier *n, const struct sink *s, const json_t *ev)
{
	json_t *j;
	if (s->kind == MF_NOTIFY_SLACK) {
		char *text = summary(n, ev);
		char *md = gitops_sprintf("*%s* %s", js(ev, "type"), text);
		j = json_pack("{s:s, s:[{s:s, s:{s:s, s:s}}]}", "text", text, "blocks", "type", "section", "text", "type",
			      "mrkdwn", "text", md);
		free(text);
		free(md);
	} else {
		j = json_pack("{s:s, s:O}", "pipeline", n->pipeline, "event", ev);
	}
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return body;
}

/* ---- the reader: events -> queue ------------------------------------------------------------- */

static void sink_copy(struct sink *d, const struct sink *s)
{
	d->name = gitops_strdup(s->name);
	d->kind = s->kind;
	d->url_env = s->url_env ? gitops_strdup(s->url_env) : NULL;
	d->url_file = s->url_file ? gitops_strdup(s->url_file) : NULL;
	d->secret_env = s->secret_env ? gitops_strdup(s->secret_env) : NULL;
	d->secret_file = s->secret_file ? gitops_strdup(s->secret_file) : NULL;
	d->events = strv_copy(s->events, s->n_events);
	d->n_events = s->n_events;
	d->envs = strv_copy(s->envs, s->n_envs);
	d->n_envs = s->n_envs;
}

static void sink_free(struct sink *s)
{
	free(s->name);
	free(s->url_env);
	free(s->url_file);
	free(s->secret_env);
	free(s->secret_file);
	strv_free(s->events, s->n_events);
	strv_free(s->envs, s->n_envs);
}

static void item_free(struct item *it)
{
	sink_free(&it->sink);
	free(it->body);
	free(it->type);
	free(it->id);
	free(it);
}

/* Called by the reader with slock held. */
static void enqueue(rec_notifier *n, size_t sink, const json_t *ev)
{
	struct item *it = gitops_calloc(1, sizeof(*it));
	sink_copy(&it->sink, &n->s[sink]);
	it->body = payload(n, &n->s[sink], ev);
	it->type = gitops_strdup(js(ev, "type"));
	it->id = gitops_strdup(js(ev, "id"));
	pthread_mutex_lock(&n->lock);
	struct item **p = &n->queue;
	while (*p)
		p = &(*p)->next;
	*p = it;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

static void read_once(rec_notifier *n)
{
	hist *h = NULL;
	json_t *arr = NULL;
	struct hist_filter f = {.since_ms = n->since_ms};
	if (hist_open_default(&h, n->state_repo, n->state_branch, n->repo_url) || hist_query(&arr, h, &f)) {
		gitops_error_clear();
		hist_free(h);
		return;
	}
	hist_free(h);
	/* oldest first, so that a receiver sees them in order */
	for (size_t i = json_array_size(arr); i-- > 0;) {
		const json_t *ev = json_array_get(arr, i);
		const char *id = js(ev, "id");
		if (!*id || json_object_get(n->seen, id))
			continue;
		json_object_set_new(n->seen, id, json_integer(wall_ms()));
		const char *env = js(ev, "environment");
		const char *lead = *env && strcmp(env, "-") ? env : n->first_env;
		bool mine = !n->control || !lead || rec_control_may_act(n->control, n->pipeline, lead);
		pthread_mutex_lock(&n->slock);
		for (size_t k = 0; k < n->n && mine; k++) {
			const struct sink *s = &n->s[k];
			if (!listed(s->events, s->n_events, js(ev, "type")))
				continue;
			if (s->n_envs && !listed(s->envs, s->n_envs, env))
				continue;
			enqueue(n, k, ev);
		}
		pthread_mutex_unlock(&n->slock);
	}
	json_decref(arr);
	/* forget ids older than the window read next time (events keep their time) */
	long long horizon = wall_ms() - 10 * 60 * 1000;
	if (horizon > n->since_ms) {
		n->since_ms = horizon;
		const char *k;
		json_t *v;
		void *tmp;
		json_object_foreach_safe(n->seen, tmp, k, v) {
			if (json_integer_value(v) < horizon - 60000)
				json_object_del(n->seen, k);
		}
	}
}

/* Waits `ms` or until stopped; true when stopped. Called with the lock held. */
static bool timed_wait(rec_notifier *n, long long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (!n->stop)
		pthread_cond_timedwait(&n->cond, &n->lock, &ts);
	return n->stop;
}

static void *reader_main(void *arg)
{
	rec_notifier *n = arg;
	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		pthread_mutex_unlock(&n->lock);
		read_once(n);
		pthread_mutex_lock(&n->lock);
		if (timed_wait(n, n->poll_ms))
			break;
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

/* ---- the sender: queue -> HTTP POST ----------------------------------------------------------- */

static size_t discard(char *p, size_t s, size_t k, void *ud)
{
	(void)p;
	(void)ud;
	return s * k;
}

/* One attempt. Returns 0 delivered, 1 retry (after *wait_ms when the server said), -1 give up. */
static int deliver(rec_notifier *n, struct item *it, long long *wait_ms, char *why, size_t why_len)
{
	const struct sink *s = &it->sink;
	*wait_ms = 0;
	char *url = secret_value(s->url_env, s->url_file);
	if (!url) {
		snprintf(why, why_len, "its URL is not available (%s %s)", s->url_env ? "variable" : "file",
			 s->url_env ? s->url_env : s->url_file);
		return -1;
	}
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "User-Agent: gitops/" GITOPS_VERSION);
	char hv[256];
	snprintf(hv, sizeof(hv), "X-Gitops-Event: %s", it->type);
	hdrs = curl_slist_append(hdrs, hv);
	snprintf(hv, sizeof(hv), "X-Gitops-Delivery: %s", it->id);
	hdrs = curl_slist_append(hdrs, hv);
	if (s->kind == MF_NOTIFY_WEBHOOK) {
		char *key = secret_value(s->secret_env, s->secret_file);
		if (!key) {
			wipe(url);
			curl_slist_free_all(hdrs);
			snprintf(why, why_len, "its secret is not available (%s %s)", s->secret_env ? "variable" : "file",
				 s->secret_env ? s->secret_env : s->secret_file);
			return -1;
		}
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int mlen = 0;
		HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)it->body, strlen(it->body), mac, &mlen);
		wipe(key);
		gitops_buf b = GITOPS_BUF_INIT;
		gitops_buf_puts(&b, "X-Gitops-Signature: sha256=");
		for (unsigned i = 0; i < mlen; i++)
			gitops_buf_printf(&b, "%02x", mac[i]);
		hdrs = curl_slist_append(hdrs, gitops_buf_cstr(&b));
		gitops_buf_free(&b);
	}
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, it->body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(it->body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	CURLcode cc = curl_easy_perform(h);
	long code = 0;
	curl_off_t ra = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	wipe(url);
	if (cc != CURLE_OK) {
		/* curl_easy_strerror is fixed text: no URL, no host */
		snprintf(why, why_len, "%s", curl_easy_strerror(cc));
		return cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ? -1 : 1;
	}
	if (code >= 200 && code < 300)
		return 0;
	snprintf(why, why_len, "HTTP %ld", code);
	if (code == 429 || (code >= 500 && code != 501)) {
		if (ra > 0)
			*wait_ms = (long long)ra * 1000;
		return 1;
	}
	return -1;
}

static void *sender_main(void *arg)
{
	rec_notifier *n = arg;
	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		/* the earliest due, so that a sink in backoff does not hold the others */
		struct item *it = NULL, **itp = NULL;
		for (struct item **q = &n->queue; *q; q = &(*q)->next)
			if (!it || (*q)->not_before < it->not_before) {
				it = *q;
				itp = q;
			}
		long long now = gitops_now_ms();
		if (!it || it->not_before > now) {
			timed_wait(n, it ? it->not_before - now : 1000);
			continue;
		}
		*itp = it->next;
		pthread_mutex_unlock(&n->lock);
		const struct sink *s = &it->sink;
		const char *kind = s->kind == MF_NOTIFY_SLACK ? "slack" : "webhook";
		long long wait = 0;
		char why[256] = "";
		int r = deliver(n, it, &wait, why, sizeof(why));
		it->tries++;
		if (r == 0) {
			gitops_metric_add("gitops_notifications_total", 1, "kind", kind, "result", "delivered", NULL);
			if (it->tries > 1)
				nlog(n, "notification %s: %s %s delivered on try %d", s->name, it->type, it->id, it->tries);
		} else if (r > 0 && it->tries < MAX_TRIES) {
			long long backoff = 1000LL << (it->tries - 1);
			if (backoff > 30000)
				backoff = 30000;
			if (wait > backoff)
				backoff = wait > 300000 ? 300000 : wait;
			gitops_metric_add("gitops_notifications_total", 1, "kind", kind, "result", "retried", NULL);
			nlog(n, "notification %s: %s %s: %s; retrying in %llds", s->name, it->type, it->id, why,
			     backoff / 1000 ? backoff / 1000 : 1);
			it->not_before = gitops_now_ms() + backoff;
			pthread_mutex_lock(&n->lock);
			it->next = n->queue;
			n->queue = it;
			continue;
		} else {
			gitops_metric_add("gitops_notifications_total", 1, "kind", kind, "result", "dropped", NULL);
			nlog(n, "notification %s: %s %s dropped after %d tr%s: %s", s->name, it->type, it->id, it->tries,
			     it->tries == 1 ? "y" : "ies", why);
		}
		item_free(it);
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------------------- */

/* The config's sinks checked (GITOPS_EINVALID naming gitops.yaml's line). */
static int check_config(const struct mf_config *cfg)
{
	for (size_t i = 0; i < cfg->n_notifications; i++) {
		const struct mf_notification *c = &cfg->notifications[i];
		for (size_t k = 0; k < c->n_events; k++)
			if (strcmp(c->events[k], "*") && !hist_type_known(c->events[k]))
				return gitops_error_set(GITOPS_EINVALID,
							"%s:%d: notifications (%s): unknown event type \"%s\" (see README "
							"\"Events\")", cfg->file, c->line, c->name, c->events[k]);
		for (size_t k = 0; k < c->n_envs; k++)
			if (!mf_config_env(cfg, c->envs[k]))
				return gitops_error_set(GITOPS_EINVALID, "%s:%d: notifications (%s): unknown environment \"%s\"",
							cfg->file, c->line, c->name, c->envs[k]);
	}
	return GITOPS_OK;
}

/* The sinks of `cfg` (*n of them) and a fingerprint of what they are made of (names, kinds,
 * events, environments, where URL and secret come from: never their values). */
static struct sink *build_sinks(const struct mf_config *cfg, size_t *n, char **fp)
{
	*n = cfg->n_notifications;
	struct sink *out = gitops_calloc(*n + 1, sizeof(*out));
	gitops_buf b = GITOPS_BUF_INIT;
	for (size_t i = 0; i < *n; i++) {
		const struct mf_notification *c = &cfg->notifications[i];
		struct sink tmp = {.name = c->name, .kind = c->kind, .url_env = c->url_env, .url_file = c->url_file,
				   .secret_env = c->secret_env, .secret_file = c->secret_file, .events = c->events,
				   .n_events = c->n_events, .envs = c->envs, .n_envs = c->n_envs};
		sink_copy(&out[i], &tmp);
		gitops_buf_printf(&b, "%s|%d|%s|%s|%s|%s|", c->name, (int)c->kind, c->url_env ? c->url_env : "",
				  c->url_file ? c->url_file : "", c->secret_env ? c->secret_env : "",
				  c->secret_file ? c->secret_file : "");
		for (size_t k = 0; k < c->n_events; k++)
			gitops_buf_printf(&b, "e:%s,", c->events[k]);
		for (size_t k = 0; k < c->n_envs; k++)
			gitops_buf_printf(&b, "v:%s,", c->envs[k]);
		gitops_buf_puts(&b, "\n");
	}
	*fp = gitops_buf_detach(&b);
	if (!*fp)
		*fp = gitops_strdup("");
	return out;
}

static void free_sinks(struct sink *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sink_free(&s[i]);
	free(s);
}

int rec_notify_start(rec_notifier **out, const struct rec_notify_options *o)
{
	*out = NULL;
	const struct mf_config *cfg = o->cfg;
	int rc = check_config(cfg);
	if (rc)
		return rc;
	rec_notifier *n = gitops_calloc(1, sizeof(*n));
	n->s = build_sinks(cfg, &n->n, &n->fp);
	pthread_mutex_init(&n->slock, NULL);
	n->repo_url = gitops_strdup(o->repo_url);
	n->state_repo = o->state_repo ? gitops_strdup(o->state_repo) : NULL;
	n->state_branch = o->state_branch ? gitops_strdup(o->state_branch) : NULL;
	n->pipeline = gitops_strdup(o->pipeline ? o->pipeline : "");
	n->first_env = cfg->n_envs ? gitops_strdup(cfg->envs[0].name) : NULL;
	n->control = o->control;
	n->poll_ms = o->poll_ms > 0 ? o->poll_ms : 1000;
	n->since_ms = wall_ms();
	n->log = o->log;
	n->log_ud = o->log_ud;
	n->seen = json_object();
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->reader_started = pthread_create(&n->reader, NULL, reader_main, n) == 0;
	n->sender_started = pthread_create(&n->sender, NULL, sender_main, n) == 0;
	*out = n;
	return GITOPS_OK;
}

int rec_notify_reload(rec_notifier *n, const struct mf_config *cfg, bool *changed)
{
	*changed = false;
	int rc = check_config(cfg);
	if (rc)
		return rc;
	size_t m;
	char *fp;
	struct sink *s = build_sinks(cfg, &m, &fp);
	pthread_mutex_lock(&n->slock);
	if (!strcmp(fp, n->fp)) {
		pthread_mutex_unlock(&n->slock);
		free_sinks(s, m);
		free(fp);
		return GITOPS_OK;
	}
	struct sink *old = n->s;
	size_t nold = n->n;
	n->s = s;
	n->n = m;
	free(n->fp);
	n->fp = fp;
	pthread_mutex_unlock(&n->slock);
	free_sinks(old, nold);
	*changed = true;
	return GITOPS_OK;
}

void rec_notify_stop(rec_notifier *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	if (n->reader_started)
		pthread_join(n->reader, NULL);
	if (n->sender_started)
		pthread_join(n->sender, NULL);
	size_t dropped = 0;
	while (n->queue) {
		struct item *it = n->queue;
		n->queue = it->next;
		item_free(it);
		dropped++;
	}
	if (dropped)
		nlog(n, "notifications: %zu undelivered at stop", dropped);
	free_sinks(n->s, n->n);
	free(n->fp);
	pthread_mutex_destroy(&n->slock);
	free(n->repo_url);
	free(n->state_repo);
	free(n->state_branch);
	free(n->pipeline);
	free(n->first_env);
	json_decref(n->seen);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	free(n);
}
