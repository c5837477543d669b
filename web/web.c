/* web: the HTTP server of `gitops run`: routes, probes, /metrics, the JSON API and the webhooks.
 * Read answer() first: it is libmicrohttpd's access handler, called once after the headers,
 * once per body chunk, and once at the end, where every response is queued. */
#include "web/web.h"
#include "history/history.h"
#include "common/mask.h"

#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct web_server {
	struct MHD_Daemon *mhd;
	rec_control *ctl;
	char *secret;
	size_t max_body;
	void (*log)(void *ud, const char *line);
	void *log_ud;
	int port;
};

/* One request's body as it arrives. */
struct req {
	gitops_buf body;
	bool too_large;
};

static void wlog(web_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(web_server *s, const char *fmt, ...)
{
	if (!s->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *line = gitops_vsprintf(fmt, ap);
	va_end(ap);
	s->log(s->log_ud, line);
	free(line);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *text)
{
	return reply(c, code, "text/plain; charset=utf-8", text, strlen(text));
}

/* {"error": msg} with `code`. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
	/* errors carry apiserver, renderer or git text: masked like everything printed */
	char *masked = gitops_mask_text(msg, NULL);
	json_t *j = json_pack("{s:s}", "error", masked);
	free(masked);
	char *s = json_dumps(j, JSON_COMPACT);
	enum MHD_Result r = reply(c, code, "application/json", s, strlen(s));
	free(s);
	json_decref(j);
	return r;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned code, const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_puts(&b, s);
	gitops_buf_putc(&b, '\n');
	enum MHD_Result r = reply(c, code, "application/json", b.ptr, b.len);
	gitops_buf_free(&b);
	free(s);
	return r;
}

/* ---- signatures ---------------------------------------------------------------------------- */

bool web_github_signature_ok(const char *header, const char *body, size_t len, const char *secret)
{
	if (!header || !secret || strncmp(header, "sha256=", 7))
		return false;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &n))
		return false;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	const char *got = header + 7;
	/* GitHub sends lowercase hex; a length mismatch says nothing about the secret */
	return strlen(got) == 2 * n && CRYPTO_memcmp(got, hex, 2 * n) == 0;
}

bool web_token_ok(const char *token, const char *secret)
{
	if (!token || !secret)
		return false;
	/* compare digests, so that neither the content nor the length of the secret leaks */
	unsigned char a[32], b[32];
	unsigned int na = 0, nb = 0;
	EVP_Digest(token, strlen(token), a, &na, EVP_sha256(), NULL);
	EVP_Digest(secret, strlen(secret), b, &nb, EVP_sha256(), NULL);
	return na == 32 && nb == 32 && CRYPTO_memcmp(a, b, 32) == 0;
}

/* ---- webhooks -------------------------------------------------------------------------------- */

static enum MHD_Result hook_result(web_server *s, struct MHD_Connection *c, const char *provider, const char *result,
				   unsigned code, const char *msg)
{
	gitops_metric_add("gitops_webhook_requests_total", 1, "provider", provider, "result", result, NULL);
	if (strcmp(result, "accepted"))
		wlog(s, "webhook %s: %s (%u): %s", provider, result, code, msg);
	if (code >= 300)
		return reply_error(c, code, msg);
	json_t *j = json_pack("{s:s, s:s}", "result", result, "message", msg);
	enum MHD_Result r = reply_json(c, code, j);
	json_decref(j);
	return r;
}

static enum MHD_Result hook(web_server *s, struct MHD_Connection *c, const char *provider, struct req *rq)
{
	if (rq->too_large) {
		char *m = gitops_sprintf("body over %zu bytes", s->max_body);
		enum MHD_Result r = hook_result(s, c, provider, "too_large", 413, m);
		free(m);
		return r;
	}
	const char *body = rq->body.ptr ? rq->body.ptr : "";
	bool github = !strcmp(provider, "github");
	bool ok = github ? web_github_signature_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Hub-Signature-256"),
						   body, rq->body.len, s->secret)
			 : web_token_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Gitlab-Token"), s->secret);
	if (!ok)
		return hook_result(s, c, provider, "unauthorized", 401,
				   github ? "missing or bad X-Hub-Signature-256" : "missing or bad X-Gitlab-Token");
	const char *event = MHD_lookup_connection_value(c, MHD_HEADER_KIND, github ? "X-GitHub-Event" : "X-Gitlab-Event");
	if (!event)
		return hook_result(s, c, provider, "bad_request", 400,
				   github ? "no X-GitHub-Event header" : "no X-Gitlab-Event header");
	if (github ? strcmp(event, "push") : strcmp(event, "Push Hook")) {
		char *m = gitops_sprintf("event %s ignored (only pushes trigger a fetch)", event);
		enum MHD_Result r = hook_result(s, c, provider, "ignored", 200, m);
		free(m);
		return r;
	}
	json_error_t je;
	json_t *j = json_loadb(body, rq->body.len, 0, &je);
	const char *ref = json_string_value(json_object_get(j, "ref"));
	if (!ref) {
		json_decref(j);
		return hook_result(s, c, provider, "bad_request", 400, "the body is not a JSON push event with a ref");
	}
	size_t n = rec_control_poke(s->ctl, ref);
	char *m = n ? gitops_sprintf("%s: %zu environment(s) fetch now", ref, n)
		    : gitops_sprintf("%s is neither the main branch nor a tracked one", ref);
	enum MHD_Result r = hook_result(s, c, provider, n ? "accepted" : "ignored", 200, m);
	if (n)
		wlog(s, "webhook %s: push to %s: fetching", provider, ref);
	free(m);
	json_decref(j);
	return r;
}

/* ---- read-only endpoints ------------------------------------------------------------------- */

static enum MHD_Result metrics(struct MHD_Connection *c)
{
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_metrics_write(&b);
	enum MHD_Result r = reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr ? b.ptr : "", b.len);
	gitops_buf_free(&b);
	return r;
}

/* GET /api/v1/status: what `gitops status --json` prints, built by the same library call
 * (rec_status) on the daemon's mirror and clusters, for each pipeline it serves (?pipeline=NAME:
 * one); ?env=E one environment, ?apps=1 as --apps. */
static enum MHD_Result status(web_server *s, struct MHD_Connection *c)
{
	const char *env = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "env");
	const char *apps = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "apps");
	const char *only = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pipeline");
	struct rec_status_options so = {.apps = apps && strcmp(apps, "0") && strcmp(apps, "false")};
	json_t *all = json_array();
	int code = 0;
	char *err = NULL, *name;
	bool found = false;
	for (size_t i = 0; !code && (name = rec_control_pipeline_name(s->ctl, i)); i++) {
		if (only && strcmp(only, name)) {
			free(name);
			continue;
		}
		found = true;
		rec_workspace *ws = NULL;
		hist *h = NULL;
		json_t *j = NULL;
		int rc = rec_control_workspace(&ws, s->ctl, name);
		if (rc) {
			code = 503;
			err = gitops_strdup(gitops_error_last());
		} else {
			if (rec_control_history(&h, s->ctl, name))
				h = NULL; /* as the CLI: status still shows the clusters without the history */
			rc = rec_status(&j, ws, h, env, &so);
			if (j)
				json_array_extend(all, j);
			else if (!(env && rc == GITOPS_EINVALID)) /* an env of another pipeline: not an error here */
				code = 500, err = gitops_strdup(gitops_error_last());
		}
		gitops_error_clear();
		json_decref(j);
		hist_free(h);
		rec_workspace_free(ws);
		free(name);
	}
	enum MHD_Result r;
	if (code)
		r = reply_error(c, code, err);
	else if (!found)
		r = reply_error(c, only ? 404 : 503, only ? "no such pipeline in this daemon" : "the daemon is starting");
	else if (env && !json_array_size(all))
		r = reply_error(c, 404, "no such environment in this daemon");
	else
		r = reply_json(c, 200, all);
	free(err);
	json_decref(all);
	return r;
}

/* GET /api/v1/daemon: the daemon's own view of each environment (leader, ready, the last pass's
 * state and error), with no cluster read. */
static enum MHD_Result daemon_view(web_server *s, struct MHD_Connection *c)
{
	json_t *j = NULL;
	const char *env = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "env");
	if (rec_control_status(&j, s->ctl, env))
		return reply_error(c, 404, gitops_error_last());
	enum MHD_Result r = reply_json(c, 200, j);
	json_decref(j);
	return r;
}

/* The filters of `gitops history`, as query parameters of the same names. */
static enum MHD_Result history(web_server *s, struct MHD_Connection *c)
{
	struct hist_filter f = {0};
	const char *q[] = {"env", "app", "type", "actor", "sha", "promotion"};
	const char **dst[] = {&f.env, &f.app, &f.type, &f.actor, &f.sha, &f.promotion};
	for (size_t i = 0; i < 6; i++)
		*dst[i] = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, q[i]);
	const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
	const char *until = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "until");
	const char *limit = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	if (hist_filter_parse(&f, since, until, limit))
		return reply_error(c, 400, gitops_error_last());
	/* several pipelines (--repo repeated): ?pipeline=NAME picks one; default the first */
	const char *pipeline = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pipeline");
	char *repo = rec_control_repo(s->ctl, pipeline);
	if (!repo && pipeline)
		return reply_error(c, 404, "no such pipeline in this daemon");
	if (!repo)
		return reply_error(c, 503, "the daemon is starting");
	hist *h = NULL;
	json_t *arr = NULL;
	int rc = rec_control_history(&h, s->ctl, pipeline);
	if (!rc)
		rc = hist_query(&arr, h, &f);
	enum MHD_Result r;
	if (rc == GITOPS_ENOTFOUND || (rc && !h)) {
		gitops_error_clear();
		arr = json_array(); /* no state branch yet: no events */
		rc = 0;
	}
	r = rc ? reply_error(c, 500, gitops_error_last()) : reply_json(c, 200, arr);
	json_decref(arr);
	hist_free(h);
	free(repo);
	return r;
}

/* ---- the access handler ---------------------------------------------------------------------- */

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)version;
	web_server *s = cls;
	bool post = !strcmp(method, "POST");
	bool is_hook = !strncmp(url, "/hooks/", 7);
	if (!*con_cls) {
		struct req *rq = gitops_calloc(1, sizeof(*rq));
		*con_cls = rq;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > s->max_body)
			rq->too_large = true;
		return MHD_YES;
	}
	struct req *rq = *con_cls;
	if (*upload_data_size) {
		/* enforce the cap while accumulating: what is over it is never kept */
		if (!rq->too_large && is_hook && rq->body.len + *upload_data_size <= s->max_body)
			gitops_buf_put(&rq->body, upload_data, *upload_data_size);
		else
			rq->too_large = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (is_hook) {
		const char *provider = url + 7;
		if (strcmp(provider, "github") && strcmp(provider, "gitlab"))
			return reply_error(c, 404, "unknown webhook provider (use /hooks/github or /hooks/gitlab)");
		if (!post)
			return reply_error(c, 405, "webhooks are POST");
		if (!s->secret)
			return reply_error(c, 404, "webhooks are off: start gitops run with --webhook-secret-file");
		return hook(s, c, provider, rq);
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply_error(c, 405, "read-only endpoint: GET");
	if (!strcmp(url, "/healthz"))
		return reply_text(c, 200, "ok\n");
	if (!strcmp(url, "/readyz")) {
		char *why = NULL;
		enum MHD_Result r;
		if (rec_control_ready(s->ctl, &why)) {
			r = reply_text(c, 200, "ok\n");
		} else {
			char *m = gitops_sprintf("not ready: %s\n", why);
			r = reply_text(c, 503, m);
			free(m);
		}
		free(why);
		return r;
	}
	if (!strcmp(url, "/metrics"))
		return metrics(c);
	if (!strcmp(url, "/api/v1/status"))
		return status(s, c);
	if (!strcmp(url, "/api/v1/daemon"))
		return daemon_view(s, c);
	if (!strcmp(url, "/api/v1/history"))
		return history(s, c);
	return reply_error(c, 404, "not found: see README \"Endpoints\"");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct req *rq = *con_cls;
	if (rq) {
		if (rq->body.ptr)
			OPENSSL_cleanse(rq->body.ptr, rq->body.len);
		gitops_buf_free(&rq->body);
		free(rq);
	}
	*con_cls = NULL;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (every IPv4 address). */
static int parse_listen(struct sockaddr_storage *ss, socklen_t *len, const char *listen)
{
	const char *colon = strrchr(listen, ':');
	if (!colon || !colon[1])
		return gitops_error_set(GITOPS_EINVALID, "--listen %s: want HOST:PORT (e.g. 127.0.0.1:9090, 0.0.0.0:9090)", listen);
	char *host = gitops_strndup(listen, (size_t)(colon - listen));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE}, *ai = NULL;
	int g = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &ai);
	free(host);
	if (g || !ai) {
		if (ai)
			freeaddrinfo(ai);
		return gitops_error_set(GITOPS_EINVALID, "--listen %s: %s (want a numeric HOST:PORT)", listen, gai_strerror(g));
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return GITOPS_OK;
}

int web_start(web_server **out, const struct web_options *opt)
{
	*out = NULL;
	const char *listen = opt->listen ? opt->listen : WEB_DEFAULT_LISTEN;
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc = parse_listen(&ss, &sl, listen);
	if (rc)
		return rc;
	web_server *s = gitops_calloc(1, sizeof(*s));
	s->ctl = opt->control;
	s->secret = opt->webhook_secret ? gitops_strdup(opt->webhook_secret) : NULL;
	s->max_body = opt->max_body ? opt->max_body : WEB_DEFAULT_MAX_BODY;
	s->log = opt->log;
	s->log_ud = opt->log_ud;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_THREAD_POOL_SIZE, 4u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				  MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
	if (!s->mhd) {
		web_stop(s);
		return gitops_error_set(GITOPS_EIO, "--listen %s: cannot listen there (address in use or not local?)", listen);
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	*out = s;
	return GITOPS_OK;
}

int web_port(const web_server *s) { return s ? s->port : 0; }

void web_stop(web_server *s)
{
	if (!s)
		return;
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	if (s->secret) {
		OPENSSL_cleanse(s->secret, strlen(s->secret));
		free(s->secret);
	}
	free(s);
}
