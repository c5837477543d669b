/* kube: connection settings. Reads kubeconfig files (merged like kubectl: the first file that
 * sets a value wins), the in-cluster service account, and runs exec credential plugins. */
#include "kube/internal.h"
#include "common/yaml.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define TOKEN_FILE_MAX_AGE 60 /* seconds: bound service-account tokens rotate */

int kube_yaml_to_json(json_t **out, const char *data, size_t len, const char *origin)
{
	/* common/yaml.c: kubectl reads kubeconfig with sigs.k8s.io/yaml, as it reads manifests, so
	 * `insecure-skip-tls-verify: yes` is true here too; errors name origin:line:col */
	int rc = gitops_yaml_parse(out, data, len, origin, NULL);
	if (!rc && json_is_null(*out)) {
		json_decref(*out);
		*out = json_object(); /* an empty document */
	}
	return rc;
}

/* kubeconfig's *-data fields: base64 as client-go reads them (line breaks ignored). */
static char *b64_decode(const char *in, size_t *outlen)
{
	unsigned char *out;
	if (!*in || gitops_base64_decode(&out, outlen, in, strlen(in), GITOPS_BASE64_LINES))
		return NULL;
	return (char *)out;
}

/* A path in a kubeconfig is relative to the file's directory. */
static char *resolve_path(const char *file, const char *p)
{
	if (p[0] == '/' || !file)
		return gitops_strdup(p);
	if (p[0] == '~' && p[1] == '/' && getenv("HOME"))
		return gitops_sprintf("%s%s", getenv("HOME"), p + 1);
	const char *slash = strrchr(file, '/');
	if (!slash)
		return gitops_strdup(p);
	return gitops_sprintf("%.*s/%s", (int)(slash - file), file, p);
}

/* Reads `data_key` (base64) or `file_key` (path) from obj into *pem. */
static int load_pem(char **pem, size_t *len, const json_t *obj, const char *data_key,
		    const char *file_key, const char *origin, const char *what)
{
	const char *data = json_string_value(json_object_get(obj, data_key));
	const char *file = json_string_value(json_object_get(obj, file_key));
	if (data && *data) {
		*pem = b64_decode(data, len);
		if (!*pem)
			return gitops_error_set(GITOPS_EPARSE, "%s: %s of %s is not valid base64", origin, data_key, what);
		return GITOPS_OK;
	}
	if (file && *file) {
		char *path = resolve_path(origin, file);
		gitops_buf b = GITOPS_BUF_INIT;
		int rc = gitops_read_file(&b, path, 1 << 20);
		free(path);
		if (rc) {
			gitops_buf_free(&b);
			return gitops_error_prefix("%s: %s of %s", origin, file_key, what);
		}
		*len = b.len;
		*pem = gitops_buf_detach(&b);
	}
	return GITOPS_OK;
}

static bool json_truthy(const json_t *v)
{
	if (json_is_true(v))
		return true;
	const char *s = json_string_value(v);
	return s && !strcmp(s, "true");
}

/* Finds the named entry ({name, <field>: {...}}) in the merged list. */
static json_t *named(json_t *list, const char *name, const char *field)
{
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));
		if (n && !strcmp(n, name))
			return json_object_get(e, field);
	}
	return NULL;
}

static char **string_array(const json_t *arr, const char *first)
{
	size_t n = json_array_size(arr) + (first ? 1 : 0);
	char **v = gitops_calloc(n + 1, sizeof(char *));
	size_t k = 0;
	if (first)
		v[k++] = gitops_strdup(first);
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		if (json_is_string(e))
			v[k++] = gitops_strdup(json_string_value(e));
		else if (json_is_object(e)) /* exec env: {name, value} */
			v[k++] = gitops_sprintf("%s=%s", json_string_value(json_object_get(e, "name")) ?: "",
						json_string_value(json_object_get(e, "value")) ?: "");
	}
	return v;
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void exec_free(struct kube_exec *e)
{
	if (!e)
		return;
	free(e->command);
	strv_free(e->argv);
	strv_free(e->env);
	free(e->api_version);
	free(e);
}

void kube_config_free(kube_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->context);
	free(cfg->server);
	free(cfg->ca_pem);
	free(cfg->tls_server_name);
	free(cfg->proxy_url);
	free(cfg->cert_pem);
	if (cfg->key_pem)
		OPENSSL_cleanse(cfg->key_pem, cfg->key_len);
	free(cfg->key_pem);
	if (cfg->token)
		OPENSSL_cleanse(cfg->token, strlen(cfg->token));
	free(cfg->token);
	free(cfg->token_file);
	exec_free(cfg->exec);
	free(cfg);
}

const char *kube_config_server(const kube_config *cfg) { return cfg->server; }
const char *kube_config_context(const kube_config *cfg) { return cfg->context; }

static int load_in_cluster(kube_config **out)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = getenv("GITOPS_SERVICEACCOUNT_DIR"); /* tests point this elsewhere */
	if (!dir)
		dir = SA_DIR;
	if (!host || !port)
		return gitops_error_set(GITOPS_ENOTFOUND,
					"no kubeconfig found and not running in a cluster (KUBERNETES_SERVICE_HOST unset); "
					"set KUBECONFIG or pass --kubeconfig");
	kube_config *cfg = gitops_calloc(1, sizeof(*cfg));
	cfg->context = gitops_strdup("in-cluster");
	cfg->server = strchr(host, ':') ? gitops_sprintf("https://[%s]:%s", host, port)
					: gitops_sprintf("https://%s:%s", host, port);
	cfg->token_file = gitops_sprintf("%s/token", dir);
	char *ca = gitops_sprintf("%s/ca.crt", dir);
	gitops_buf b = GITOPS_BUF_INIT;
	int rc = gitops_read_file(&b, ca, 1 << 20);
	free(ca);
	if (rc) {
		gitops_buf_free(&b);
		kube_config_free(cfg);
		return gitops_error_prefix("in-cluster CA");
	}
	cfg->ca_len = b.len;
	cfg->ca_pem = gitops_buf_detach(&b);
	*out = cfg;
	return GITOPS_OK;
}

/* Merges one kubeconfig file into `merged` ({clusters, users, contexts, current-context,
 * origin maps}): the first definition of a name wins, as in kubectl. */
static int merge_file(json_t *merged, const char *path)
{
	gitops_buf b = GITOPS_BUF_INIT;
	int rc = gitops_read_file(&b, path, 16 << 20);
	if (rc) {
		gitops_buf_free(&b);
		return rc;
	}
	json_t *doc = NULL;
	rc = kube_yaml_to_json(&doc, b.ptr, b.len, path);
	gitops_buf_free(&b);
	if (rc)
		return rc;
	if (!json_is_object(doc)) {
		json_decref(doc);
		return gitops_error_set(GITOPS_EPARSE, "%s: not a kubeconfig (expected a mapping)", path);
	}
	const char *lists[] = {"clusters", "users", "contexts"};
	for (size_t k = 0; k < 3; k++) {
		json_t *dst = json_object_get(merged, lists[k]);
		json_t *origins = json_object_get(merged, "origins");
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(doc, lists[k]), i, e) {
			const char *n = json_string_value(json_object_get(e, "name"));
			if (!n)
				continue;
			char *key = gitops_sprintf("%s/%s", lists[k], n);
			if (!json_object_get(origins, key)) {
				json_array_append(dst, e);
				json_object_set_new(origins, key, json_string(path));
			}
			free(key);
		}
	}
	const char *cur = json_string_value(json_object_get(doc, "current-context"));
	if (cur && *cur && !json_object_get(merged, "current-context"))
		json_object_set_new(merged, "current-context", json_string(cur));
	json_decref(doc);
	return GITOPS_OK;
}

static int config_from_merged(kube_config *cfg, json_t *merged, const char *want_ctx)
{
	json_t *origins = json_object_get(merged, "origins");
	const char *ctxname = want_ctx ? want_ctx : json_string_value(json_object_get(merged, "current-context"));
	if (!ctxname)
		return gitops_error_set(GITOPS_ENOTFOUND, "kubeconfig has no current-context; pass --context");
	json_t *ctx = named(json_object_get(merged, "contexts"), ctxname, "context");
	if (!ctx)
		return gitops_error_set(GITOPS_ENOTFOUND, "context \"%s\" not found in kubeconfig", ctxname);
	cfg->context = gitops_strdup(ctxname);
	const char *cname = json_string_value(json_object_get(ctx, "cluster"));
	const char *uname = json_string_value(json_object_get(ctx, "user"));
	json_t *cluster = cname ? named(json_object_get(merged, "clusters"), cname, "cluster") : NULL;
	if (!cluster)
		return gitops_error_set(GITOPS_ENOTFOUND, "context \"%s\": cluster \"%s\" not found in kubeconfig",
					ctxname, cname ? cname : "");
	char *key = gitops_sprintf("clusters/%s", cname);
	const char *corigin = json_string_value(json_object_get(origins, key));
	free(key);
	const char *server = json_string_value(json_object_get(cluster, "server"));
	if (!server || !*server)
		return gitops_error_set(GITOPS_EPARSE, "%s: cluster \"%s\" has no server", corigin, cname);
	size_t sl = strlen(server);
	while (sl > 0 && server[sl - 1] == '/')
		sl--;
	cfg->server = gitops_strndup(server, sl);
	cfg->insecure = json_truthy(json_object_get(cluster, "insecure-skip-tls-verify"));
	const char *tsn = json_string_value(json_object_get(cluster, "tls-server-name"));
	if (tsn && *tsn)
		cfg->tls_server_name = gitops_strdup(tsn);
	const char *proxy = json_string_value(json_object_get(cluster, "proxy-url"));
	if (proxy && *proxy)
		cfg->proxy_url = gitops_strdup(proxy);
	int rc = load_pem(&cfg->ca_pem, &cfg->ca_len, cluster, "certificate-authority-data",
			  "certificate-authority", corigin, "the cluster");
	if (rc)
		return rc;

	json_t *user = uname ? named(json_object_get(merged, "users"), uname, "user") : NULL;
	if (!user)
		return GITOPS_OK; /* anonymous */
	key = gitops_sprintf("users/%s", uname);
	const char *uorigin = json_string_value(json_object_get(origins, key));
	free(key);
	if ((rc = load_pem(&cfg->cert_pem, &cfg->cert_len, user, "client-certificate-data", "client-certificate",
			   uorigin, "the user")) ||
	    (rc = load_pem(&cfg->key_pem, &cfg->key_len, user, "client-key-data", "client-key", uorigin, "the user")))
		return rc;
	const char *token = json_string_value(json_object_get(user, "token"));
	const char *token_file = json_string_value(json_object_get(user, "tokenFile"));
	if (token && *token)
		cfg->token = gitops_strdup(token); /* token wins over tokenFile */
	else if (token_file && *token_file)
		cfg->token_file = resolve_path(uorigin, token_file);
	json_t *ex = json_object_get(user, "exec");
	if (json_is_object(ex)) {
		const char *cmd = json_string_value(json_object_get(ex, "command"));
		if (!cmd || !*cmd)
			return gitops_error_set(GITOPS_EPARSE, "%s: user \"%s\": exec has no command", uorigin, uname);
		struct kube_exec *e = gitops_calloc(1, sizeof(*e));
		e->command = (strchr(cmd, '/') && cmd[0] != '/') ? resolve_path(uorigin, cmd) : gitops_strdup(cmd);
		e->argv = string_array(json_object_get(ex, "args"), e->command);
		e->env = string_array(json_object_get(ex, "env"), NULL);
		const char *av = json_string_value(json_object_get(ex, "apiVersion"));
		e->api_version = gitops_strdup(av ? av : "client.authentication.k8s.io/v1");
		cfg->exec = e;
	}
	return GITOPS_OK;
}

int kube_config_load(kube_config **out, const struct kube_config_options *opt)
{
	struct kube_config_options none = {0};
	if (!opt)
		opt = &none;
	*out = NULL;
	if (opt->in_cluster)
		return load_in_cluster(out);
	const char *paths = opt->kubeconfig;
	char *home_cfg = NULL;
	if (!paths || !*paths)
		paths = getenv("KUBECONFIG");
	if (!paths || !*paths) {
		if (getenv("HOME")) {
			home_cfg = gitops_sprintf("%s/.kube/config", getenv("HOME"));
			if (access(home_cfg, R_OK) == 0)
				paths = home_cfg;
		}
	}
	if (!paths || !*paths) {
		free(home_cfg);
		return load_in_cluster(out);
	}
	json_t *merged = json_pack("{s:[], s:[], s:[], s:{}}", "clusters", "users", "contexts", "origins");
	char *list = gitops_strdup(paths);
	int rc = GITOPS_OK, loaded = 0;
	for (char *save = NULL, *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		rc = merge_file(merged, p);
		if (rc == GITOPS_ENOTFOUND && opt->kubeconfig == NULL) {
			rc = GITOPS_OK; /* like kubectl: missing files in $KUBECONFIG are skipped */
			continue;
		}
		if (rc)
			break;
		loaded++;
	}
	if (!rc && !loaded)
		rc = gitops_error_set(GITOPS_ENOTFOUND, "no kubeconfig file found in \"%s\"", paths);
	kube_config *cfg = NULL;
	if (!rc) {
		cfg = gitops_calloc(1, sizeof(*cfg));
		rc = config_from_merged(cfg, merged, opt->context);
	}
	json_decref(merged);
	free(list);
	free(home_cfg);
	if (rc) {
		kube_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return GITOPS_OK;
}

void kube_creds_clear(struct kube_creds *cr)
{
	if (cr->token)
		OPENSSL_cleanse(cr->token, strlen(cr->token));
	free(cr->token);
	free(cr->cert_pem);
	if (cr->key_pem)
		OPENSSL_cleanse(cr->key_pem, cr->key_len);
	free(cr->key_pem);
	unsigned long gen = cr->generation;
	memset(cr, 0, sizeof(*cr));
	cr->generation = gen;
}

/* Parses an RFC 3339 UTC time ("2026-11-23T21:00:00Z"). */
static time_t parse_time(const char *s)
{
	struct tm tm = {0};
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

/* Runs the exec plugin and reads its ExecCredential from stdout (10 s limit). */
static int run_exec(struct kube_creds *cr, const kube_config *cfg)
{
	const struct kube_exec *e = cfg->exec;
	int outp[2];
	if (pipe(outp) != 0)
		return gitops_error_set(GITOPS_EIO, "exec plugin: pipe: %s", gitops_strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_addclose(&fa, outp[0]);
	posix_spawn_file_actions_addclose(&fa, outp[1]);
	/* Environment: ours, the plugin's own entries, and KUBERNETES_EXEC_INFO. */
	size_t n = 0;
	while (environ[n])
		n++;
	size_t m = 0;
	while (e->env[m])
		m++;
	char **envp = gitops_calloc(n + m + 2, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "KUBERNETES_EXEC_INFO=", 21))
			envp[k++] = environ[i];
	for (size_t i = 0; i < m; i++)
		envp[k++] = e->env[i];
	char *info = gitops_sprintf("KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
				    "\"spec\":{\"interactive\":false}}", e->api_version);
	envp[k++] = info;
	pid_t pid;
	int err = posix_spawnp(&pid, e->command, &fa, NULL, e->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	free(info);
	close(outp[1]);
	if (err) {
		close(outp[0]);
		return gitops_error_set(GITOPS_EAUTH, "exec plugin %s: %s", e->command, gitops_strerror(err));
	}
	gitops_buf out = GITOPS_BUF_INIT;
	long long deadline = gitops_now_ms() + 10000;
	int rc = GITOPS_OK;
	for (;;) {
		long long left = deadline - gitops_now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			rc = gitops_error_set(GITOPS_EAUTH, "exec plugin %s: no answer within 10s", e->command);
			break;
		}
		struct pollfd pfd = {.fd = outp[0], .events = POLLIN};
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		char chunk[4096];
		ssize_t r = read(outp[0], chunk, sizeof(chunk));
		if (r <= 0)
			break;
		if (out.len + (size_t)r > (1 << 20)) {
			kill(pid, SIGKILL);
			rc = gitops_error_set(GITOPS_EAUTH, "exec plugin %s: output too large", e->command);
			break;
		}
		gitops_buf_put(&out, chunk, (size_t)r);
	}
	close(outp[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (!rc && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		rc = gitops_error_set(GITOPS_EAUTH, "exec plugin %s failed (exit %d)", e->command,
				      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	json_t *cred = NULL;
	if (!rc) {
		json_error_t jerr;
		cred = json_loadb(out.ptr ? out.ptr : "", out.len, 0, &jerr);
		if (!cred)
			rc = gitops_error_set(GITOPS_EAUTH, "exec plugin %s: output is not an ExecCredential: %s",
					      e->command, jerr.text);
	}
	if (!rc) {
		json_t *st = json_object_get(cred, "status");
		const char *tok = json_string_value(json_object_get(st, "token"));
		const char *cert = json_string_value(json_object_get(st, "clientCertificateData"));
		const char *key = json_string_value(json_object_get(st, "clientKeyData"));
		if (!tok && !(cert && key)) {
			rc = gitops_error_set(GITOPS_EAUTH, "exec plugin %s: ExecCredential has no token or client certificate",
					      e->command);
		} else {
			kube_creds_clear(cr);
			if (tok)
				cr->token = gitops_strdup(tok);
			if (cert && key) {
				cr->cert_pem = gitops_strdup(cert);
				cr->cert_len = strlen(cert);
				cr->key_pem = gitops_strdup(key);
				cr->key_len = strlen(key);
			}
			cr->expires = parse_time(json_string_value(json_object_get(st, "expirationTimestamp")));
			cr->loaded = time(NULL);
			cr->generation++;
		}
	}
	json_decref(cred);
	if (out.ptr)
		OPENSSL_cleanse(out.ptr, out.len);
	gitops_buf_free(&out);
	return rc;
}

static int read_token_file(struct kube_creds *cr, const char *path)
{
	gitops_buf b = GITOPS_BUF_INIT;
	int rc = gitops_read_file(&b, path, 64 << 10);
	if (rc) {
		gitops_buf_free(&b);
		return gitops_error_set(GITOPS_EAUTH, "token file %s: %s", path, gitops_error_last());
	}
	while (b.len > 0 && (b.ptr[b.len - 1] == '\n' || b.ptr[b.len - 1] == '\r' || b.ptr[b.len - 1] == ' '))
		b.ptr[--b.len] = '\0';
	kube_creds_clear(cr);
	cr->token = gitops_buf_detach(&b);
	struct stat st;
	if (stat(path, &st) == 0) {
		cr->file_ino = st.st_ino;
		cr->file_size = (unsigned long long)st.st_size;
		cr->file_mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	}
	cr->loaded = time(NULL);
	cr->generation++;
	return GITOPS_OK;
}

int kube_creds_refresh(kube_client *c, bool force)
{
	const kube_config *cfg = c->cfg;
	struct kube_creds *cr = &c->creds;
	time_t now = time(NULL);
	if (cfg->exec) {
		bool stale = !cr->loaded || (cr->expires && now >= cr->expires - 10);
		if (force || stale)
			return run_exec(cr, cfg);
		return GITOPS_OK;
	}
	if (cfg->token_file && !cfg->token) {
		struct stat st;
		bool changed = stat(cfg->token_file, &st) == 0 &&
			       (st.st_ino != cr->file_ino || (unsigned long long)st.st_size != cr->file_size ||
				(long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != cr->file_mtime_ns);
		if (force || changed || !cr->loaded || now - cr->loaded >= TOKEN_FILE_MAX_AGE)
			return read_token_file(cr, cfg->token_file);
	}
	return GITOPS_OK;
}
