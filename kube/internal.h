/* kube: definitions shared by the module's files (not part of the public API). */
#ifndef GITOPS_KUBE_INTERNAL_H
#define GITOPS_KUBE_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

#include "kube/kube.h"

struct kube_exec {
	char *command;
	char **argv;      /* NULL-terminated, argv[0] = command */
	char **env;       /* NULL-terminated "NAME=value" added to the environment */
	char *api_version;
};

struct kube_config {
	char *context;
	char *server;
	char *ca_pem;          /* NULL: system CAs */
	size_t ca_len;
	bool insecure;
	char *tls_server_name;
	char *proxy_url;
	char *cert_pem, *key_pem; /* static client certificate, may be NULL */
	size_t cert_len, key_len;
	char *token;           /* static bearer token */
	char *token_file;      /* re-read at least every minute and after a 401 */
	struct kube_exec *exec;
};

/* Current credentials: refreshed from the token file or exec plugin. Guarded by cred_lock. */
struct kube_creds {
	char *token;
	char *cert_pem, *key_pem;
	size_t cert_len, key_len;
	time_t expires;        /* 0: no expiry known */
	time_t loaded;
	unsigned long generation;
	/* token file identity when read: a rotation (new inode, mtime or size) is seen at once */
	unsigned long long file_ino, file_size;
	long long file_mtime_ns;
};

struct kube_resource_entry {
	struct kube_resource r;
	char *storage;         /* owns the strings of r */
	bool current;
};

struct kube_client {
	kube_config *cfg;
	struct kube_client_options opt;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	/* Idle easy handles: each keeps its own live connection across curl_easy_reset, so a
	 * handle taken from the pool reuses a warm (HTTP/2, TLS) connection. */
	pthread_mutex_t pool_lock;
	/* Batches (kube_http_batch) share one multi handle: one HTTP/2 connection, many streams. */
	pthread_mutex_t batch_lock;
	CURLM *multi;
	CURL **pool;
	size_t n_pool, cap_pool;
	char *url_base;        /* scheme://host:port used in URLs (tls-server-name host when set) */
	char *connect_to;      /* CURLOPT_CONNECT_TO entry for tls-server-name, or NULL */

	pthread_mutex_t cred_lock;
	struct kube_creds creds;

	pthread_mutex_t rate_lock;
	double tokens;
	long long last_refill_ms;

	pthread_mutex_t stats_lock;
	struct kube_stats stats;

	pthread_mutex_t disc_lock;
	/* Append-only: entries are never freed before the client, so callers may keep pointers
	 * across refreshes. `current` marks what the last discovery served. */
	struct kube_resource_entry **resources;
	size_t n_resources;
	bool discovered;
};

/* config.c: fills c->creds when they are missing, expired, or older than a minute (token file),
 * or unconditionally when `force` (after a 401). */
int kube_creds_refresh(kube_client *c, bool force);
void kube_creds_clear(struct kube_creds *cr);

/* http.c: a watch stream's own socket, so that another thread ends the stream at once
 * (kube_stream_abort shuts it down) instead of waiting for curl's next progress call, which
 * comes about once a second on an idle stream. A stream given one gets a fresh connection that
 * is closed after it (never one shared with other requests). Thread-safe. */
struct kube_stream_sock {
	pthread_mutex_t lock;
	int fd;       /* the open socket, -1: none */
	bool aborted; /* until kube_stream_rearm: a socket opened now is shut at once */
};
void kube_stream_sock_init(struct kube_stream_sock *s);
void kube_stream_sock_destroy(struct kube_stream_sock *s);
void kube_stream_abort(struct kube_stream_sock *s);
void kube_stream_rearm(struct kube_stream_sock *s);

/* http.c: one HTTP exchange with retries. `url_path` is appended to the server URL.
 * On a reply, *status and *body (raw bytes) are set. */
struct kube_http_opts {
	const char *content_type;
	const char *accept;     /* NULL: application/json */
	bool watch;             /* no overall timeout; data goes to on_data */
	size_t (*on_data)(void *ud, const char *data, size_t len); /* return len to continue */
	void (*on_attempt)(void *ud); /* before each attempt (a retry may follow data given to on_data) */
	void *ud;
	int (*should_stop)(void *ud);  /* watch: non-zero aborts the transfer */
	struct kube_stream_sock *sock; /* watch: may be NULL (then should_stop alone, within ~1 s) */
	bool no_retry;
};
int kube_http(kube_client *c, const char *method, const char *url_path, const char *body,
	      const struct kube_http_opts *o, long *status, gitops_buf *resp);

/* http.c: the retry decision after one attempt, pure (unit-tested): connection errors that may
 * pass (refused, reset, timed out, HTTP/2 stream errors), 429 and 502-504, and a 500 with
 * Retry-After, are retried with backoff (200 ms doubling, capped at 6.4 s, or the server's
 * Retry-After; plus jitter; at most 10 s) until max_retries; never a watch. A 401 is retried
 * once at once after re-reading credentials when they can change (token file, exec plugin). */
enum kube_next { KUBE_NEXT_DONE, KUBE_NEXT_RETRY, KUBE_NEXT_REAUTH };
struct kube_attempt {
	int curl_code;     /* CURLcode of the attempt (CURLE_OK when a reply came) */
	long status;       /* HTTP status of the reply */
	long retry_after;  /* the reply's Retry-After in seconds, -1 when absent */
	int attempt;       /* 0 for the first attempt */
	int max_retries;
	bool watch;
	bool can_reauth;   /* credentials from a token file or exec plugin */
	long jitter_ms;    /* added to the backoff (the caller draws it: 0-249) */
};
/* *reauthed: in/out, true once a re-authentication was done for this request. *wait_ms is set
 * for KUBE_NEXT_RETRY. */
enum kube_next kube_retry_decide(const struct kube_attempt *a, bool *reauthed, long *wait_ms);

/* http.c: sleeps `ms` in short slices, or until the client's cancel flag is set; true when it
 * is set. Every wait of the module (backoff, kube_wait_crds) sleeps through it. */
bool kube_sleep(const kube_client *c, long ms);

/* One call of a batch: the request (in), the reply (out). status -1 is used internally. */
struct kube_http_call {
	const char *method, *path, *body, *content_type; /* in */
	long status;      /* out: HTTP status, 0 when no reply */
	gitops_buf resp;  /* out: the body (caller frees) */
	int rc;           /* out: error when no reply was obtained */
	char *error;      /* out: its message (caller frees) */
};
/* http.c: runs the calls concurrently over one HTTP/2 connection (up to max_in_flight streams,
 * 0: 32), with the same retries, rate limit and re-authentication as kube_http. */
int kube_http_batch(kube_client *c, struct kube_http_call *calls, size_t n, int max_in_flight,
		    void (*on_done)(void *ud, size_t i), void *ud);

/* ops.c: replaces the discovery table with what two aggregated discovery documents (the replies
 * of GET /api and GET /apis as APIGroupDiscoveryList) serve. GITOPS_EPARSE when either is not
 * one. kube_discovery_refresh reads them from the server; unit tests from recorded files. */
int kube_discovery_load(kube_client *c, const json_t *api, const json_t *apis);

/* ops.c: the last error is about `obj`: masks out of its message the Secret values obj carries
 * (the apiserver quotes values it refuses). Returns rc. */
int kube_mask_error_for(int rc, const json_t *obj);

/* ops.c: turns a non-2xx reply into an error code and message: "<what>: <reason>: <message>". */
int kube_status_error(long status, const json_t *body, const char *what);

/* A yaml/json document (kubeconfig, ExecCredential) to JSON; names `origin` in errors. */
int kube_yaml_to_json(json_t **out, const char *data, size_t len, const char *origin);

#endif
