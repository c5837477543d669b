/* kube: the HTTP transport. One client holds a libcurl share object (connections, TLS sessions
 * and DNS reused across threads), a token-bucket rate limit, and the current credentials.
 * Each request gets its own easy handle, so any thread may call at any time. */
#include "kube/internal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	(void)h; (void)access;
	kube_client *c = ud;
	pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	(void)h;
	kube_client *c = ud;
	pthread_mutex_unlock(&c->share_locks[data]);
}

/* Splits "https://host:port" into host and port (default 443). */
static void split_server(const char *server, char **host, char **port)
{
	const char *p = strstr(server, "://");
	p = p ? p + 3 : server;
	const char *end = p + strcspn(p, "/");
	const char *colon = NULL;
	if (*p == '[') { /* [v6]:port */
		const char *rb = memchr(p, ']', (size_t)(end - p));
		colon = (rb && rb + 1 < end && rb[1] == ':') ? rb + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
	}
	*host = gitops_strndup(p, (size_t)((colon ? colon : end) - p));
	*port = colon ? gitops_strndup(colon + 1, (size_t)(end - colon - 1)) : gitops_strdup("443");
}

int kube_client_new(kube_client **out, kube_config *cfg, const struct kube_client_options *opt)
{
	pthread_once(&curl_once, curl_init_once);
	*out = NULL;
	if (strncmp(cfg->server, "https://", 8) && strncmp(cfg->server, "http://", 7)) {
		int rc = gitops_error_set(GITOPS_EINVALID, "server \"%s\" is not an http(s) URL", cfg->server);
		kube_config_free(cfg);
		return rc;
	}
	kube_client *c = gitops_calloc(1, sizeof(*c));
	c->cfg = cfg;
	if (opt)
		c->opt = *opt;
	if (c->opt.qps <= 0) c->opt.qps = 50;
	if (c->opt.burst <= 0) c->opt.burst = 100;
	if (c->opt.timeout_ms <= 0) c->opt.timeout_ms = 30000;
	if (c->opt.max_retries == 0) c->opt.max_retries = 5;
	if (c->opt.max_retries < 0) c->opt.max_retries = 0;
	c->tokens = c->opt.burst;
	c->last_refill_ms = gitops_now_ms();
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	pthread_mutex_init(&c->cred_lock, NULL);
	pthread_mutex_init(&c->rate_lock, NULL);
	pthread_mutex_init(&c->stats_lock, NULL);
	pthread_mutex_init(&c->disc_lock, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_mutex_init(&c->batch_lock, NULL);
	c->share = curl_share_init();
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	if (cfg->tls_server_name) {
		/* Verify the certificate (and send SNI) for tls-server-name while connecting to the
		 * configured address: the URL names the TLS name, CONNECT_TO the real host. */
		char *host, *port;
		split_server(cfg->server, &host, &port);
		const char *scheme_end = strstr(cfg->server, "://");
		c->url_base = gitops_sprintf("%.*s%s:%s", (int)(scheme_end + 3 - cfg->server), cfg->server,
					     cfg->tls_server_name, port);
		c->connect_to = gitops_sprintf("%s:%s:%s:%s", cfg->tls_server_name, port, host, port);
		free(host);
		free(port);
	} else {
		c->url_base = gitops_strdup(cfg->server);
	}
	pthread_mutex_lock(&c->cred_lock);
	int rc = kube_creds_refresh(c, false);
	pthread_mutex_unlock(&c->cred_lock);
	if (rc) {
		kube_client_free(c);
		return rc;
	}
	*out = c;
	return GITOPS_OK;
}

void kube_client_free(kube_client *c)
{
	if (!c)
		return;
	if (getenv("GITOPS_DEBUG_HTTP"))
		fprintf(stderr, "kube: %lu requests, %lu retries, %lu writes, %lu over HTTP/2, %lu connections\n",
			c->stats.requests, c->stats.retries, c->stats.writes, c->stats.http2, c->stats.connects);
	for (size_t i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	free(c->pool);
	pthread_mutex_destroy(&c->pool_lock);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	pthread_mutex_destroy(&c->batch_lock);
	if (c->share)
		curl_share_cleanup(c->share);
	kube_creds_clear(&c->creds);
	for (size_t i = 0; i < c->n_resources; i++) {
		free(c->resources[i]->storage);
		free(c->resources[i]);
	}
	free(c->resources);
	free(c->url_base);
	free(c->connect_to);
	kube_config_free(c->cfg);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->cred_lock);
	pthread_mutex_destroy(&c->rate_lock);
	pthread_mutex_destroy(&c->stats_lock);
	pthread_mutex_destroy(&c->disc_lock);
	free(c);
}

void kube_client_stats(const kube_client *c, struct kube_stats *out)
{
	pthread_mutex_lock((pthread_mutex_t *)&c->stats_lock);
	*out = c->stats;
	pthread_mutex_unlock((pthread_mutex_t *)&c->stats_lock);
}

/* Token bucket: waits until a request may be sent. */
static void rate_wait(kube_client *c)
{
	for (;;) {
		pthread_mutex_lock(&c->rate_lock);
		long long now = gitops_now_ms();
		c->tokens += (double)(now - c->last_refill_ms) * c->opt.qps / 1000.0;
		if (c->tokens > c->opt.burst)
			c->tokens = c->opt.burst;
		c->last_refill_ms = now;
		if (c->tokens >= 1.0) {
			c->tokens -= 1.0;
			pthread_mutex_unlock(&c->rate_lock);
			return;
		}
		double wait_ms = (1.0 - c->tokens) * 1000.0 / c->opt.qps;
		pthread_mutex_unlock(&c->rate_lock);
		usleep((useconds_t)(wait_ms * 1000) + 1000);
	}
}

static CURL *handle_get(kube_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool > 0)
		h = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_reset(h); /* options go, the connection stays */
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(kube_client *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool == c->cap_pool) {
		c->cap_pool = c->cap_pool ? c->cap_pool * 2 : 16;
		c->pool = gitops_realloc(c->pool, c->cap_pool * sizeof(*c->pool));
	}
	c->pool[c->n_pool++] = h;
	pthread_mutex_unlock(&c->pool_lock);
}

static bool cancelled(const kube_client *c) { return c->opt.cancel && atomic_load(c->opt.cancel); }

/* Sleeps in short slices so that a cancelled client stops waiting at once. */
static void sleep_ms(const kube_client *c, long ms)
{
	while (ms > 0 && !cancelled(c)) {
		long slice = ms < 50 ? ms : 50;
		usleep((useconds_t)slice * 1000);
		ms -= slice;
	}
}

bool kube_sleep(const kube_client *c, long ms)
{
	sleep_ms(c, ms);
	return cancelled(c);
}

struct xfer {
	gitops_buf *resp;
	const struct kube_http_opts *o;
	long retry_after;  /* seconds, -1 when absent */
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	if (x->o && x->o->on_data)
		return x->o->on_data(x->o->ud, data, n);
	gitops_buf_put(x->resp, data, n);
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	if (n > 12 && !strncasecmp(data, "Retry-After:", 12))
		x->retry_after = strtol(data + 12, NULL, 10);
	return n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
	(void)a; (void)b; (void)c2; (void)d;
	struct xfer *x = ud;
	return (x->o && x->o->should_stop && x->o->should_stop(x->o->ud)) ? 1 : 0;
}

void kube_stream_sock_init(struct kube_stream_sock *s)
{
	pthread_mutex_init(&s->lock, NULL);
	s->fd = -1;
	s->aborted = false;
}

void kube_stream_sock_destroy(struct kube_stream_sock *s) { pthread_mutex_destroy(&s->lock); }

void kube_stream_abort(struct kube_stream_sock *s)
{
	pthread_mutex_lock(&s->lock);
	s->aborted = true;
	if (s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR); /* the transfer's recv ends now; curl closes the fd */
	pthread_mutex_unlock(&s->lock);
}

void kube_stream_rearm(struct kube_stream_sock *s)
{
	pthread_mutex_lock(&s->lock);
	s->aborted = false;
	pthread_mutex_unlock(&s->lock);
}

static curl_socket_t open_stream_sock(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)purpose;
	struct kube_stream_sock *s = ud;
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd < 0)
		return CURL_SOCKET_BAD;
	pthread_mutex_lock(&s->lock);
	s->fd = fd;
	if (s->aborted)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	return fd;
}

static int close_stream_sock(void *ud, curl_socket_t fd)
{
	struct kube_stream_sock *s = ud;
	/* forgotten under the lock before it is closed: an abort never shuts a reused number */
	pthread_mutex_lock(&s->lock);
	if (s->fd == fd)
		s->fd = -1;
	pthread_mutex_unlock(&s->lock);
	return close(fd);
}

static bool retryable_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_OPERATION_TIMEDOUT:
		return true;
	default:
		return false;
	}
}

static int curl_error(CURLcode cc, const char *errbuf, const char *method, const char *url)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER: case CURLE_SSL_ISSUER_ERROR:
		return gitops_error_set(GITOPS_ETLS, "TLS error talking to %s: %s (check the cluster's "
				       "certificate-authority in the kubeconfig)", url, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return gitops_error_set(GITOPS_ETIMEOUT, "%s %s: timed out: %s", method, url, detail);
	default:
		return gitops_error_set(GITOPS_ENETWORK, "%s %s: cannot reach the API server: %s", method, url, detail);
	}
}

/* One HTTP exchange being prepared or in flight: the easy handle and what it points at. */
struct exchange {
	CURL *h;
	struct curl_slist *hdrs, *connect_to;
	char errbuf[CURL_ERROR_SIZE];
	struct xfer x;
};

/* Sets up `ex->h` (already obtained) for one attempt: credentials (refreshed when due), headers,
 * TLS, timeouts, callbacks. Returns a credential error, or 0. */
static int exchange_setup(kube_client *c, struct exchange *ex, const char *method, const char *url,
			  const char *body, const struct kube_http_opts *o, gitops_buf *resp)
{
	const kube_config *cfg = c->cfg;
	CURL *h = ex->h;
	pthread_mutex_lock(&c->cred_lock);
	int rc = kube_creds_refresh(c, false);
	char *token = c->creds.token ? gitops_strdup(c->creds.token) : cfg->token ? gitops_strdup(cfg->token) : NULL;
	struct curl_blob cert = {0}, key = {0};
	bool have_cert = false;
	if (c->creds.cert_pem) {
		cert = (struct curl_blob){c->creds.cert_pem, c->creds.cert_len, CURL_BLOB_COPY};
		key = (struct curl_blob){c->creds.key_pem, c->creds.key_len, CURL_BLOB_COPY};
		have_cert = true;
	} else if (cfg->cert_pem && cfg->key_pem) {
		cert = (struct curl_blob){cfg->cert_pem, cfg->cert_len, CURL_BLOB_COPY};
		key = (struct curl_blob){cfg->key_pem, cfg->key_len, CURL_BLOB_COPY};
		have_cert = true;
	}
	if (have_cert) { /* copied while the lock is held: a refresh may free them */
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	pthread_mutex_unlock(&c->cred_lock);
	if (rc) {
		free(token);
		return rc;
	}
	char *accept = gitops_sprintf("Accept: %s", (o && o->accept) ? o->accept : "application/json");
	ex->hdrs = curl_slist_append(NULL, accept);
	free(accept);
	if (body) {
		char *ct = gitops_sprintf("Content-Type: %s", (o && o->content_type) ? o->content_type : "application/json");
		ex->hdrs = curl_slist_append(ex->hdrs, ct);
		free(ct);
	}
	if (token) {
		char *auth = gitops_sprintf("Authorization: Bearer %s", token);
		ex->hdrs = curl_slist_append(ex->hdrs, auth);
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	ex->connect_to = c->connect_to ? curl_slist_append(NULL, c->connect_to) : NULL;
	ex->errbuf[0] = '\0';
	ex->x = (struct xfer){.resp = resp, .o = o, .retry_after = -1};
	if (resp)
		gitops_buf_clear(resp);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, ex->hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "gitops/" GITOPS_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ex->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &ex->x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &ex->x);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (o && (o->watch || o->should_stop)) { /* should_stop is asked during the transfer */
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &ex->x);
	}
	if (o && o->watch) {
		if (o->sock) {
			curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
			curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
			curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_stream_sock);
			curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, o->sock);
			curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, close_stream_sock);
			curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, o->sock);
		}
	} else {
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opt.timeout_ms);
	}
	if (cfg->ca_pem) {
		struct curl_blob ca = {cfg->ca_pem, cfg->ca_len, CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
	}
	if (cfg->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (ex->connect_to)
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, ex->connect_to);
	if (cfg->proxy_url)
		curl_easy_setopt(h, CURLOPT_PROXY, cfg->proxy_url);
	return GITOPS_OK;
}

/* Counts a finished attempt and frees what the exchange pointed at (not the handle). */
static void exchange_done(kube_client *c, struct exchange *ex, const char *method, long code, int attempt, bool is_write)
{
	char cs[16];
	snprintf(cs, sizeof(cs), "%ld", code);
	gitops_metric_add("gitops_kube_requests_total", 1, "verb", method, "code", cs, NULL);
	long httpv = 0, nconn = 0;
	curl_easy_getinfo(ex->h, CURLINFO_NUM_CONNECTS, &nconn);
	curl_easy_getinfo(ex->h, CURLINFO_HTTP_VERSION, &httpv);
	curl_slist_free_all(ex->hdrs);
	curl_slist_free_all(ex->connect_to);
	ex->hdrs = ex->connect_to = NULL;
	pthread_mutex_lock(&c->stats_lock);
	c->stats.requests++;
	if (attempt > 0)
		c->stats.retries++;
	if (is_write)
		c->stats.writes++;
	if (httpv == CURL_HTTP_VERSION_2_0)
		c->stats.http2++;
	c->stats.connects += (unsigned long)nconn;
	pthread_mutex_unlock(&c->stats_lock);
}

enum kube_next kube_retry_decide(const struct kube_attempt *a, bool *reauthed, long *wait_ms)
{
	if (a->curl_code != CURLE_OK)
		return (retryable_curl((CURLcode)a->curl_code) && a->attempt < a->max_retries)
			       ? (*wait_ms = 200L << (a->attempt < 5 ? a->attempt : 5), KUBE_NEXT_RETRY) : KUBE_NEXT_DONE;
	if (a->status == 401 && !*reauthed && a->can_reauth) {
		*reauthed = true; /* a rotated token or an expired plugin credential: reload once */
		return KUBE_NEXT_REAUTH;
	}
	/* As client-go: throttling and gateway errors are retried; a plain 500 only when the
	 * server asked for it with Retry-After (it is usually a definitive answer). */
	long code = a->status;
	bool transient = code == 429 || code == 502 || code == 503 || code == 504 || (code == 500 && a->retry_after >= 0);
	if (!transient || a->attempt >= a->max_retries || a->watch)
		return KUBE_NEXT_DONE;
	/* Jitter, so clients throttled together do not all come back in the same instant. */
	*wait_ms = (a->retry_after >= 0 ? a->retry_after * 1000 : (200L << (a->attempt < 5 ? a->attempt : 5))) + a->jitter_ms;
	if (*wait_ms > 10000)
		*wait_ms = 10000;
	return KUBE_NEXT_RETRY;
}

/* What to do after an attempt ended with `cc` and HTTP `code`: 0 done, 1 retry after *wait_ms,
 * 2 re-authenticate and retry at once. */
static int next_step(kube_client *c, CURLcode cc, long code, const struct xfer *x, int attempt, int max_retries,
		     bool *reauthed, long *wait_ms)
{
	struct kube_attempt a = {.curl_code = (int)cc, .status = code, .retry_after = x->retry_after, .attempt = attempt,
				 .max_retries = max_retries, .watch = x->o && x->o->watch,
				 .can_reauth = c->cfg->token_file || c->cfg->exec, .jitter_ms = rand() % 250};
	return (int)kube_retry_decide(&a, reauthed, wait_ms);
}

static int reauth(kube_client *c)
{
	pthread_mutex_lock(&c->cred_lock);
	int rc = kube_creds_refresh(c, true);
	pthread_mutex_unlock(&c->cred_lock);
	return rc;
}

int kube_http(kube_client *c, const char *method, const char *url_path, const char *body,
	      const struct kube_http_opts *o, long *status, gitops_buf *resp)
{
	char *url = gitops_sprintf("%s%s", c->url_base, url_path);
	int rc = GITOPS_OK;
	bool reauthed = false;
	int max_retries = (o && o->no_retry) ? 0 : c->opt.max_retries;
	bool is_write = strcmp(method, "GET") && !strstr(url_path, "dryRun=All");
	*status = 0;
	for (int attempt = 0;; attempt++) {
		rate_wait(c);
		if (attempt > 0 && o && o->should_stop && o->should_stop(o->ud)) {
			rc = gitops_error_set(GITOPS_ETIMEOUT, "%s %s: stopped", method, url_path);
			break;
		}
		if (o && o->on_attempt)
			o->on_attempt(o->ud);
		struct exchange ex = {.h = handle_get(c)};
		if ((rc = exchange_setup(c, &ex, method, url, body, o, resp))) {
			curl_slist_free_all(ex.hdrs);
			handle_put(c, ex.h);
			break;
		}
		CURLcode cc = curl_easy_perform(ex.h);
		long code = 0;
		curl_easy_getinfo(ex.h, CURLINFO_RESPONSE_CODE, &code);
		exchange_done(c, &ex, method, code, attempt, is_write);
		/* A handle whose transfer broke may hold a dead connection: do not pool it. */
		if (cc == CURLE_OK)
			handle_put(c, ex.h);
		else
			curl_easy_cleanup(ex.h);
		bool stopped = o && o->should_stop && o->should_stop(o->ud);
		if (cc != CURLE_OK && o && o->watch && (cc == CURLE_ABORTED_BY_CALLBACK || cc == CURLE_WRITE_ERROR || stopped)) {
			*status = code;
			rc = GITOPS_OK; /* the caller ended the stream */
			break;
		}
		long wait = 0;
		int step = stopped ? 0 : next_step(c, cc, code, &ex.x, attempt, max_retries, &reauthed, &wait);
		if (step == 1) {
			sleep_ms(c, wait);
			if (cancelled(c)) {
				rc = gitops_error_set(GITOPS_ETIMEOUT, "%s %s: cancelled", method, url_path);
				break;
			}
			continue;
		}
		if (step == 2) {
			if ((rc = reauth(c)))
				break;
			attempt--;
			continue;
		}
		if (cc != CURLE_OK) {
			rc = curl_error(cc, ex.errbuf, method, url);
			break;
		}
		*status = code;
		rc = GITOPS_OK;
		break;
	}
	free(url);
	return rc;
}

int kube_http_batch(kube_client *c, struct kube_http_call *calls, size_t n, int max_in_flight,
		    void (*on_done)(void *ud, size_t i), void *ud)
{
	if (max_in_flight <= 0)
		max_in_flight = 32;
	struct slot {
		struct exchange ex;
		int attempt;
		bool reauthed, active;
		long long not_before;
		char *url;
	};
	struct slot *s = gitops_calloc(n + 1, sizeof(*s));
	size_t next = 0, finished = 0;
	int active = 0;
	/* One multi handle per client, kept between batches: its HTTP/2 connection carries every
	 * stream of every batch (CURLPIPE_MULTIPLEX, PIPEWAIT). */
	pthread_mutex_lock(&c->batch_lock);
	if (!c->multi) {
		c->multi = curl_multi_init();
		curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	}
	CURLM *m = c->multi;
	for (size_t i = 0; i < n; i++) {
		calls[i].rc = GITOPS_OK;
		calls[i].status = 0;
		s[i].url = gitops_sprintf("%s%s", c->url_base, calls[i].path);
	}
	while (finished < n) {
		/* Start what may start: new calls in order, retries whose delay has passed. */
		long long now = gitops_now_ms();
		for (size_t i = 0; i < n && active < max_in_flight; i++) {
			bool fresh = i == next;
			bool retry = i < next && !s[i].active && calls[i].status == -1 && s[i].not_before <= now;
			if (!fresh && !retry)
				continue;
			if (fresh)
				next++;
			rate_wait(c);
			struct kube_http_opts o = {.content_type = calls[i].content_type};
			s[i].ex = (struct exchange){.h = curl_easy_init()};
			int rc = exchange_setup(c, &s[i].ex, calls[i].method, s[i].url, calls[i].body, &o, &calls[i].resp);
			s[i].ex.x.o = NULL; /* `o` lives on this stack frame only */
			if (rc) {
				curl_slist_free_all(s[i].ex.hdrs);
				curl_easy_cleanup(s[i].ex.h);
				calls[i].rc = rc;
				calls[i].error = gitops_strdup(gitops_error_last());
				calls[i].status = 0;
				finished++;
				if (on_done)
					on_done(ud, i);
				continue;
			}
			curl_easy_setopt(s[i].ex.h, CURLOPT_PIPEWAIT, 1L);
			curl_easy_setopt(s[i].ex.h, CURLOPT_PRIVATE, (void *)&s[i]);
			curl_multi_add_handle(m, s[i].ex.h);
			s[i].active = true;
			calls[i].status = 0;
			active++;
		}
		if (active == 0) {
			if (finished >= n)
				break;
			long long soonest = -1;
			for (size_t i = 0; i < next; i++)
				if (calls[i].status == -1 && (soonest < 0 || s[i].not_before < soonest))
					soonest = s[i].not_before;
			if (soonest > now)
				sleep_ms(c, (long)(soonest - now));
			continue;
		}
		int running = 0;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *sl = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
			size_t i = (size_t)(sl - s);
			CURLcode cc = msg->data.result;
			long code = 0;
			curl_easy_getinfo(sl->ex.h, CURLINFO_RESPONSE_CODE, &code);
			curl_multi_remove_handle(m, sl->ex.h);
			bool is_write = strcmp(calls[i].method, "GET") && !strstr(calls[i].path, "dryRun=All");
			exchange_done(c, &sl->ex, calls[i].method, code, sl->attempt, is_write);
			curl_easy_cleanup(sl->ex.h);
			sl->active = false;
			active--;
			long wait = 0;
			int step = next_step(c, cc, code, &sl->ex.x, sl->attempt, c->opt.max_retries, &sl->reauthed, &wait);
			if (step == 2 && reauth(c) == 0) {
				calls[i].status = -1; /* again, at once */
				sl->not_before = 0;
				continue;
			}
			if (step == 1) {
				sl->attempt++;
				calls[i].status = -1;
				sl->not_before = gitops_now_ms() + wait;
				continue;
			}
			finished++;
			if (cc != CURLE_OK) {
				calls[i].rc = curl_error(cc, sl->ex.errbuf, calls[i].method, sl->url);
				calls[i].error = gitops_strdup(gitops_error_last());
			} else {
				calls[i].status = code;
			}
			if (on_done)
				on_done(ud, i);
		}
		if (active > 0 && finished < n)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	pthread_mutex_unlock(&c->batch_lock);
	for (size_t i = 0; i < n; i++)
		free(s[i].url);
	free(s);
	return GITOPS_OK;
}

int kube_request(kube_client *c, const char *method, const char *path, const char *content_type,
		 const char *body, long *status, json_t **out)
{
	gitops_buf resp = GITOPS_BUF_INIT;
	struct kube_http_opts o = {.content_type = content_type};
	*out = NULL;
	int rc = kube_http(c, method, path, body, &o, status, &resp);
	if (!rc && resp.len > 0) {
		json_error_t jerr;
		*out = json_loadb(resp.ptr, resp.len, 0, &jerr);
		/* A success that cannot be read is no success with nothing in it (a GET would seem to
		 * give no object). jansson's text may quote the reply (a Secret's value): only the
		 * position is given. */
		if (!*out && *status >= 200 && *status < 300)
			rc = gitops_error_set(GITOPS_EPARSE, "%s %s: the apiserver's reply cannot be read as JSON at byte %d "
					      "of %zu (malformed, or an object nested deeper than %d levels)", method, path,
					      jerr.position, resp.len, JSON_PARSER_MAX_DEPTH);
	}
	gitops_buf_free(&resp);
	return rc;
}
