/* cli: `gitops run`: the reconciler in the foreground. Parses options, turns SIGINT/SIGTERM into
 * the daemon's cancellation token (a thread waits for them; every other thread blocks them),
 * prints the daemon's log lines, maps the outcome to an exit code. */
#include "cmd.h"
#include "kube/kube.h"
#include "manifests/manifests.h"
#include "reconcile/daemon.h"
#include "web/web.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cmd_run_help(void)
{
	puts("usage: gitops run [--repo URL|PATH]... [--interval 30s] [--env E]... [--once]\n"
	     "                  [--signing-key FILE] [--kubeconfig F] [--context C] [--quiet]\n"
	     "                  [--listen ADDR] [--webhook-secret-file F] [--log-format json|text]\n"
	     "                  [--leader-elect] [--lease-namespace NS] [--identity ID] [--lease-duration 15s]\n\n"
	     "The reconciler, in the foreground, for every environment of gitops.yaml (or those named):\n"
	     "  - fetches the repository every interval (+-10 % jitter); an environment with sync.auto\n"
	     "    follows its target (branch head, or the pin of a promotion or rollback) and syncs\n"
	     "    when it moves; without sync.auto it logs OutOfSync and waits for gitops sync;\n"
	     "  - after a sync that changed something, waits for every object to be healthy\n"
	     "    (rollback.healthTimeout, default 5m): only then is it recorded as a healthy deploy\n"
	     "    (sync.succeeded); a failed gate is sync.failed + health.degraded and, with\n"
	     "    rollback.onFailure, an automatic rollback to the last healthy commit, which stays\n"
	     "    pinned until gitops resume <env>;\n"
	     "  - watches every object it applied (one list-then-watch per kind and namespace); a\n"
	     "    change is compared with git at once and, with sync.selfHeal, corrected at once;\n"
	     "    drift is recorded folded per object (one drift.detected, one drift.corrected with a\n"
	     "    count); a suspended environment (gitops suspend) is neither synced nor healed;\n"
	     "  - retries failures per environment with exponential backoff (1 s doubling, capped at\n"
	     "    5 min); one environment's failure never stops the others; the last error is recorded\n"
	     "    in the state branch when it changes (gitops status shows it).\n"
	     "SIGINT or SIGTERM stops it: the apply stops at its next chunk (recorded), waits end at once.\n\n"
	     "Options:\n"
	     "  --repo URL|PATH     a manifests repository (repeatable: one pipeline each, served by this\n"
	     "                      one process; default the working directory's)\n"
	     "  --interval D        fetch interval (default 30s; e.g. 5s, 1m)\n"
	     "  --env E             reconcile only E, in every pipeline that has it (repeatable)\n"
	     "  --once              reconcile each environment once (sync, health gate, rollback), then\n"
	     "                      exit: for CI and cron\n"
	     "  --signing-key FILE  reporter key that signs the sync, health and drift records it writes\n"
	     "  --kubeconfig FILE, --context NAME\n"
	     "                      cluster settings instead of the environments' own\n"
	     "  --quiet             no log lines\n"
	     "  --listen ADDR       HTTP endpoints: /healthz, /readyz, /metrics, /api/v1/status,\n"
	     "                      /api/v1/history, /hooks/github, /hooks/gitlab (default\n"
	     "                      127.0.0.1:9090; 0.0.0.0:9090 in a pod; \"off\": none)\n"
	     "  --webhook-secret-file FILE\n"
	     "                      the webhooks' secret (GitHub HMAC key, GitLab token); without it\n"
	     "                      /hooks/ answers 404\n"
	     "  --log-format F      json (one object per line; the default when stderr is not a\n"
	     "                      terminal) or text\n"
	     "  --leader-elect      several replicas share the environments: one Lease per pipeline\n"
	     "                      and environment in --lease-namespace (default $POD_NAMESPACE, else\n"
	     "                      gitops-system), each replica taking its fair share\n"
	     "  --identity ID       this replica in the Leases (default $POD_NAME, else host-pid)\n"
	     "  --lease-duration D  take-over delay after a leader stops renewing (default 15s)\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 stopped by SIGINT/SIGTERM, or --once and every environment reconciled;\n"
	     "2 usage; 3 bad gitops.yaml or unknown environment; 5 repository cannot be opened;\n"
	     "6 --once and some environment failed (named on stderr).");
}

enum log_mode { LOG_QUIET, LOG_TEXT, LOG_JSON };

static void log_fields(void *ud, const char *env, const char *app, const char *object, const char *event_id,
		       const char *line);

static void log_line(void *ud, const char *env, const char *line) { log_fields(ud, env, NULL, NULL, NULL, line); }

/* One log line: text for people, or one JSON object per line (time, level, environment, msg,
 * and app, object, event when the line names them). */
static void log_fields(void *ud, const char *env, const char *app, const char *object, const char *event_id,
		       const char *line)
{
	enum log_mode m = (enum log_mode)(intptr_t)ud;
	if (m == LOG_QUIET)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[64];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	if (m == LOG_TEXT) {
		fprintf(stderr, "%s %s: %s\n", when, env, line);
		return;
	}
	const char *level = !strncmp(line, "error", 5) ? "error" : !strncmp(line, "warning", 7) ? "warning" : "info";
	json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s}", "time", when, "level", level, "environment", env,
			      "app", app, "object", object, "event", event_id, "msg", line);
	char *s = json_dumps(j, JSON_COMPACT);
	fprintf(stderr, "%s\n", s);
	free(s);
	json_decref(j);
}

static void web_log(void *ud, const char *line) { log_line(ud, "-", line); }

struct sigctx {
	sigset_t set;
	gitops_cancel *cancel;
};

/* Waits for SIGINT or SIGTERM (blocked everywhere else) and sets the token. */
static void *signal_main(void *arg)
{
	struct sigctx *s = arg;
	int sig = 0;
	sigwait(&s->set, &sig);
	if (!gitops_cancel_is_set(s->cancel))
		fprintf(stderr, "gitops: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	gitops_cancel_set(s->cancel);
	return NULL;
}

int cmd_run(int argc, char **argv)
{
	struct rec_daemon_options o = {0};
	const char *interval = NULL, *state_repo = NULL, *state_branch = NULL;
	const char *listen = NULL, *secret_file = NULL, *log_format = NULL, *lease_ns = NULL, *identity = NULL,
		   *lease_dur = NULL;
	bool leader_elect = false;
	gitops_buf secret = GITOPS_BUF_INIT;
	rec_leases *leases = NULL;
	kube_client *lease_client = NULL;
	web_server *web = NULL;
	char *ident = NULL;
	const char **envs = gitops_calloc((size_t)argc + 1, sizeof(*envs));
	const char **repos = gitops_calloc((size_t)argc + 1, sizeof(*repos));
	bool quiet = false;
	int code = EXIT_OK;
	for (int i = 1; i < argc; i++) {
		int r = 0;
		const char *env = NULL, *repo = NULL;
		if ((r = cli_opt("--repo", argc, argv, &i, &repo)) || (r = cli_opt("--interval", argc, argv, &i, &interval)) ||
		    (r = cli_opt("--env", argc, argv, &i, &env)) || (r = cli_opt("--signing-key", argc, argv, &i, &o.signing_key)) ||
		    (r = cli_opt("--kubeconfig", argc, argv, &i, &o.kubeconfig)) ||
		    (r = cli_opt("--context", argc, argv, &i, &o.context)) ||
		    (r = cli_opt("--state-repo", argc, argv, &i, &state_repo)) ||
		    (r = cli_opt("--state-branch", argc, argv, &i, &state_branch)) ||
		    (r = cli_opt("--listen", argc, argv, &i, &listen)) ||
		    (r = cli_opt("--webhook-secret-file", argc, argv, &i, &secret_file)) ||
		    (r = cli_opt("--log-format", argc, argv, &i, &log_format)) ||
		    (r = cli_opt("--lease-namespace", argc, argv, &i, &lease_ns)) ||
		    (r = cli_opt("--identity", argc, argv, &i, &identity)) ||
		    (r = cli_opt("--lease-duration", argc, argv, &i, &lease_dur))) {
			if (r < 0) {
				code = EXIT_USAGE;
				goto out;
			}
			if (env)
				envs[o.n_envs++] = env;
			if (repo)
				repos[o.n_repos++] = repo;
		} else if (!strcmp(argv[i], "--once")) {
			o.once = true;
		} else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
			quiet = true;
		} else if (!strcmp(argv[i], "--leader-elect")) {
			leader_elect = true;
		} else {
			code = cli_fail(EXIT_USAGE, "unexpected %s; see 'gitops run --help'", argv[i]);
			goto out;
		}
	}
	if (interval && (mf_parse_duration(&o.interval_ms, interval) || o.interval_ms < 100)) {
		code = cli_fail(EXIT_USAGE, "--interval wants a duration of at least 100ms (e.g. 30s, 1m), got %s", interval);
		goto out;
	}
	/* before any thread starts: the library reads the state branch's location from these */
	if (state_repo)
		setenv("GITOPS_STATE_REPO", state_repo, 1);
	if (state_branch)
		setenv("GITOPS_STATE_BRANCH", state_branch, 1);
	long long lease_ms = 15000;
	if (lease_dur && (mf_parse_duration(&lease_ms, lease_dur) || lease_ms < 3000)) {
		code = cli_fail(EXIT_USAGE, "--lease-duration wants a duration of at least 3s, got %s", lease_dur);
		goto out;
	}
	if (log_format && strcmp(log_format, "json") && strcmp(log_format, "text")) {
		code = cli_fail(EXIT_USAGE, "--log-format wants json or text, got %s", log_format);
		goto out;
	}
	enum log_mode mode = quiet ? LOG_QUIET
			   : (log_format ? !strcmp(log_format, "json") : !isatty(STDERR_FILENO)) ? LOG_JSON : LOG_TEXT;
	if (secret_file) {
		/* read once; never printed (errors name the file only) */
		if (gitops_read_file(&secret, secret_file, 4096)) {
			code = cli_fail(EXIT_INPUT, "--webhook-secret-file: %s", gitops_error_last());
			goto out;
		}
		while (secret.len && (secret.ptr[secret.len - 1] == '\n' || secret.ptr[secret.len - 1] == '\r'))
			secret.ptr[--secret.len] = '\0';
		if (!secret.len) {
			code = cli_fail(EXIT_INPUT, "--webhook-secret-file %s is empty", secret_file);
			goto out;
		}
	}
	o.envs = envs;
	o.repos = repos;
	o.log = log_line;
	o.log_fields = log_fields;
	o.log_ud = (void *)(intptr_t)mode;
	if (gitops_cancel_new(&o.cancel)) {
		code = cli_fail(EXIT_INTERNAL, "%s", gitops_error_last());
		goto out;
	}
	/* blocked before any thread starts, so that every thread inherits it */
	struct sigctx sc = {.cancel = o.cancel};
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	if (leader_elect) {
		kube_config *kc = NULL;
		struct kube_config_options kco = {.kubeconfig = o.kubeconfig, .context = o.context};
		int lrc = kube_config_load(&kc, &kco);
		if (!lrc)
			lrc = kube_client_new(&lease_client, kc, NULL);
		char host[128] = "gitops";
		gethostname(host, sizeof(host) - 1);
		ident = identity ? gitops_strdup(identity)
			: getenv("POD_NAME") ? gitops_strdup(getenv("POD_NAME")) : gitops_sprintf("%s-%d", host, (int)getpid());
		const char *ns = lease_ns ? lease_ns : getenv("POD_NAMESPACE") ? getenv("POD_NAMESPACE") : "gitops-system";
		struct rec_lease_options lo = {.client = lease_client, .namespace = ns, .identity = ident, .duration_ms = lease_ms};
		if (!lrc)
			lrc = rec_leases_start(&leases, &lo);
		if (lrc) {
			code = cli_fail(cli_exit_for(lrc), "--leader-elect: %s", gitops_error_last());
			goto stop;
		}
		char *m = gitops_sprintf("leader election: identity %s, Leases in namespace %s, duration %llds", ident, ns,
					 lease_ms / 1000);
		log_line(o.log_ud, "-", m);
		free(m);
	}
	o.control = rec_control_new(leases);
	if (!listen || strcmp(listen, "off")) {
		struct web_options wopt = {.listen = listen, .control = o.control, .webhook_secret = secret.len ? secret.ptr : NULL,
					   .log = web_log, .log_ud = o.log_ud};
		int wrc = web_start(&web, &wopt);
		if (wrc) {
			code = cli_fail(wrc == GITOPS_EINVALID ? EXIT_USAGE : EXIT_INTERNAL, "%s", gitops_error_last());
			goto stop;
		}
		char *m = gitops_sprintf("listening on %s (port %d)", listen ? listen : WEB_DEFAULT_LISTEN, web_port(web));
		log_line(o.log_ud, "-", m);
		free(m);
	}
	pthread_t sig_thread;
	bool sig_started = pthread_create(&sig_thread, NULL, signal_main, &sc) == 0;
	int rc = rec_daemon_run(&o);
	/* the reconcilers stopped (the apply in flight finished and was recorded): hand the Leases
	 * over at once, then stop answering */
	rec_leases_stop(leases);
	leases = NULL;
	web_stop(web);
	web = NULL;
	if (sig_started) {
		if (!gitops_cancel_is_set(o.cancel)) {
			gitops_cancel_set(o.cancel);
			pthread_kill(sig_thread, SIGTERM); /* blocked here: ends its sigwait */
		}
		pthread_join(sig_thread, NULL);
	}
	if (rc == GITOPS_ERROR)
		code = cli_fail(EXIT_PARTIAL, "%s", gitops_error_last());
	else if (rc)
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
stop:
	rec_leases_stop(leases);
	web_stop(web);
	rec_control_free(o.control);
	kube_client_free(lease_client);
	gitops_cancel_free(o.cancel);
	free(ident);
out:
	if (secret.ptr)
		OPENSSL_cleanse(secret.ptr, secret.len);
	gitops_buf_free(&secret);
	free(envs);
	free(repos);
	return code;
}
