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

struct run_opts {
	const char *interval, *signing_key, *kubeconfig, *context, *state_repo, *state_branch, *listen,
		*secret_file, *log_format, *lease_ns, *identity, *lease_dur;
	struct cli_list envs, repos;
	bool once, quiet, leader_elect;
};
static const struct cli_opt_spec run_opts[] = {
	CLI_VALUE("interval", 0, "D", CLI_SEC_COMMAND, 0, struct run_opts, interval, "fetch interval (default 30s; e.g. 5s, 1m)"),
	CLI_LIST("env", 0, "E", CLI_SEC_COMMAND, struct run_opts, envs,
		 "reconcile only E, in every pipeline that has it (repeatable)"),
	CLI_SWITCH("once", 0, CLI_SEC_COMMAND, struct run_opts, once,
		   "reconcile each environment once (sync, health gate, rollback), then exit: for CI and cron"),
	CLI_VALUE("signing-key", 0, "FILE", CLI_SEC_COMMAND, 0, struct run_opts, signing_key,
		  "reporter key that signs the sync, health and drift records it writes"),
	CLI_SWITCH("quiet", 'q', CLI_SEC_OUTPUT, struct run_opts, quiet, "no log lines"),
	CLI_VALUE("log-format", 0, "F", CLI_SEC_OUTPUT, 0, struct run_opts, log_format,
		  "json (one object per line; the default when stderr is not a terminal) or text"),
	CLI_VALUE("listen", 0, "ADDR", CLI_SEC_SERVE, 0, struct run_opts, listen,
		  "HTTP endpoints: /healthz, /readyz, /metrics, /api/v1/status, /api/v1/history, /hooks/github, "
		  "/hooks/gitlab (default 127.0.0.1:9090; 0.0.0.0:9090 in a pod; \"off\": none)"),
	CLI_VALUE("webhook-secret-file", 0, "FILE", CLI_SEC_SERVE, 0, struct run_opts, secret_file,
		  "the webhooks' secret (GitHub HMAC key, GitLab token); without it /hooks/ answers 404"),
	CLI_SWITCH("leader-elect", 0, CLI_SEC_LEADER, struct run_opts, leader_elect,
		   "several replicas share the environments: one Lease per pipeline and environment in "
		   "--lease-namespace, each replica taking its fair share"),
	CLI_VALUE("lease-namespace", 0, "NS", CLI_SEC_LEADER, 0, struct run_opts, lease_ns,
		  "where the Leases are (default $POD_NAMESPACE, else gitops-system)"),
	CLI_VALUE("identity", 0, "ID", CLI_SEC_LEADER, 0, struct run_opts, identity,
		  "this replica in the Leases (default $POD_NAME, else host-pid)"),
	CLI_VALUE("lease-duration", 0, "D", CLI_SEC_LEADER, 0, struct run_opts, lease_dur,
		  "take-over delay after a leader stops renewing (default 15s)"),
	CLI_OPTS_CLUSTER(struct run_opts),
	CLI_LIST("repo", 0, "URL|PATH", CLI_SEC_REPO, struct run_opts, repos,
		 "a manifests repository (repeatable: one pipeline each, served by this one process; default the "
		 "git repository of the working directory)"),
	CLI_VALUE("state-repo", 0, "URL|PATH", CLI_SEC_REPO, 0, struct run_opts, state_repo,
		  "the repository holding the state branch (default: $GITOPS_STATE_REPO, else the manifests "
		  "repository)"),
	CLI_VALUE("state-branch", 0, "B", CLI_SEC_REPO, 0, struct run_opts, state_branch,
		  "the state branch (default: $GITOPS_STATE_BRANCH, else gitops/state)"),
	CLI_END,
};
static const struct cli_command run_cmd = {
	"run", run_opts,
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
	"SIGINT or SIGTERM stops it: the apply stops at its next chunk (recorded), waits end at once.",
	"Exit codes: 0 stopped by SIGINT/SIGTERM, or --once and every environment reconciled;\n"
	"2 usage; 3 bad gitops.yaml or unknown environment; 5 repository cannot be opened;\n"
	"6 --once and some environment failed (named on stderr).",
	NULL,
};

void cmd_run_help(void) { cli_opt_help(stdout, &run_cmd); }

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
	struct run_opts ro = {0};
	gitops_buf secret = GITOPS_BUF_INIT;
	rec_leases *leases = NULL;
	kube_client *lease_client = NULL;
	web_server *web = NULL;
	char *ident = NULL;
	int code = cli_opt_parse(&run_cmd, &ro, argc, argv);
	if (code != CLI_PARSED)
		goto out;
	code = EXIT_OK;
	const char *interval = ro.interval, *state_repo = ro.state_repo, *state_branch = ro.state_branch;
	const char *listen = ro.listen, *secret_file = ro.secret_file, *log_format = ro.log_format, *lease_ns = ro.lease_ns,
		   *identity = ro.identity, *lease_dur = ro.lease_dur;
	bool leader_elect = ro.leader_elect, quiet = ro.quiet;
	o.repos = ro.repos.items;
	o.n_repos = ro.repos.n;
	o.signing_key = ro.signing_key;
	o.kubeconfig = ro.kubeconfig;
	o.context = ro.context;
	o.once = ro.once;
	o.n_envs = ro.envs.n;
	if (interval && (mf_parse_duration(&o.interval_ms, interval) || o.interval_ms < 100)) {
		code = cli_fail(EXIT_USAGE, "--interval wants a duration of at least 100ms (e.g. 30s, 1m), got %s", interval);
		goto out;
	}
	/* the library's configuration, explicit (the signing key only from --signing-key, as before) */
	struct rec_workspace_options cfg = {0};
	cli_config(&cfg, state_repo, state_branch);
	o.state_repo = cfg.state_repo;
	o.state_branch = cfg.state_branch;
	o.main_branch = cfg.main_branch;
	o.kube_qps = cfg.kube_qps;
	o.render_timeout_ms = cfg.render_timeout_ms;
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
	o.envs = ro.envs.items;
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
	cli_opts_free(&run_cmd, &ro);
	return code;
}
