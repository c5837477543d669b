/* web: the daemon's HTTP surface (libmicrohttpd): probes (/healthz, /readyz), /metrics in the
 * Prometheus text format, the read-only JSON API (/api/v1/status, /api/v1/history) and the
 * incoming webhooks (/hooks/github, /hooks/gitlab). It reads through reconcile/ and history/ and
 * never acts: a valid webhook only pokes the reconcilers (rec_control_poke).
 *
 * Threads: the server answers on its own threads (a small pool); web_start and web_stop are
 * called from one thread. Everything it reads (rec_control, the metrics registry, the state
 * branch) is thread-safe. */
#ifndef GITOPS_WEB_H
#define GITOPS_WEB_H

#include <stddef.h>

#include "reconcile/control.h"

/* Default address of `gitops run --listen`. */
#define WEB_DEFAULT_LISTEN "127.0.0.1:9090"
/* Webhook bodies above this are refused with 413 (GitHub caps its payloads at 25 MB). */
#define WEB_DEFAULT_MAX_BODY (25u * 1024 * 1024)

typedef struct web_server web_server;

struct web_options {
	const char *listen;          /* "HOST:PORT" (IPv4 or [IPv6]); NULL: WEB_DEFAULT_LISTEN. Port 0: any free */
	rec_control *control;        /* required, borrowed */
	/* The webhooks' shared secret (GitHub HMAC key, GitLab token); NULL: the /hooks/ paths answer 404.
	 * Copied; the copy is wiped on web_stop. Never logged. */
	const char *webhook_secret;
	size_t max_body;             /* 0: WEB_DEFAULT_MAX_BODY */
	/* One line per refused or accepted webhook (never with the secret). May be NULL. */
	void (*log)(void *ud, const char *line);
	void *log_ud;
};

/* Listens and answers until web_stop. Errors: GITOPS_EINVALID (bad address), GITOPS_EIO (cannot
 * bind: the message names the address). The caller owns *out; free with web_stop. */
int web_start(web_server **out, const struct web_options *opt);
/* The port actually bound (useful with port 0). */
int web_port(const web_server *s);
/* Stops answering and frees the server. NULL is fine. */
void web_stop(web_server *s);

/* Verifies a GitHub X-Hub-Signature-256 value ("sha256=<hex>") for `body` with `secret`, in
 * constant time. Exposed for the unit tests. */
bool web_github_signature_ok(const char *header, const char *body, size_t len, const char *secret);
/* Compares a GitLab X-Gitlab-Token with the secret in constant time (lengths hidden too). */
bool web_token_ok(const char *token, const char *secret);

#endif
