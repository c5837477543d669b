/* cli: `gitops run`: the reconciler in the foreground. Parses options, turns SIGINT/SIGTERM into
 * the daemon's cancellation token (a thread waits for them; every other thread blocks them),
 * prints the daemon's log lines, maps the outcome to an exit code. */
#include "cmd.h"
#include "manifests/manifests.h"
#include "reconcile/daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cmd_run_help(void)
{
	puts("usage: gitops run [--repo URL|PATH] [--interval 30s] [--env E]... [--once]\n"
	     "                  [--signing-key FILE] [--kubeconfig F] [--context C] [--quiet]\n\n"
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
	     "SIGINT or SIGTERM stops it: the apply in flight finishes, waits end at once.\n\n"
	     "Options:\n"
	     "  --interval D        fetch interval (default 30s; e.g. 5s, 1m)\n"
	     "  --env E             reconcile only E (repeatable)\n"
	     "  --once              reconcile each environment once (sync, health gate, rollback), then\n"
	     "                      exit: for CI and cron\n"
	     "  --signing-key FILE  reporter key that signs the sync, health and drift records it writes\n"
	     "  --kubeconfig FILE, --context NAME\n"
	     "                      cluster settings instead of the environments' own\n"
	     "  --quiet             no log lines\n"
	     CLI_STATE_HELP "\n"
	     "Exit codes: 0 stopped by SIGINT/SIGTERM, or --once and every environment reconciled;\n"
	     "2 usage; 3 bad gitops.yaml or unknown environment; 5 repository cannot be opened;\n"
	     "6 --once and some environment failed (named on stderr).");
}

static void log_line(void *ud, const char *env, const char *line)
{
	if (ud) /* --quiet */
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: %s\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, env, line);
}

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
	const char **envs = gitops_calloc((size_t)argc + 1, sizeof(*envs));
	bool quiet = false;
	int code = EXIT_OK;
	for (int i = 1; i < argc; i++) {
		int r = 0;
		const char *env = NULL;
		if ((r = cli_opt("--repo", argc, argv, &i, &o.repo)) || (r = cli_opt("--interval", argc, argv, &i, &interval)) ||
		    (r = cli_opt("--env", argc, argv, &i, &env)) || (r = cli_opt("--signing-key", argc, argv, &i, &o.signing_key)) ||
		    (r = cli_opt("--kubeconfig", argc, argv, &i, &o.kubeconfig)) ||
		    (r = cli_opt("--context", argc, argv, &i, &o.context)) ||
		    (r = cli_opt("--state-repo", argc, argv, &i, &state_repo)) ||
		    (r = cli_opt("--state-branch", argc, argv, &i, &state_branch))) {
			if (r < 0) {
				code = EXIT_USAGE;
				goto out;
			}
			if (env)
				envs[o.n_envs++] = env;
		} else if (!strcmp(argv[i], "--once")) {
			o.once = true;
		} else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
			quiet = true;
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
	o.envs = envs;
	o.log = log_line;
	o.log_ud = quiet ? (void *)1 : NULL;
	if (gitops_cancel_new(&o.cancel)) {
		code = cli_fail(EXIT_INTERNAL, "%s", gitops_error_last());
		goto out;
	}
	struct sigctx sc = {.cancel = o.cancel};
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	pthread_t sig_thread;
	bool sig_started = pthread_create(&sig_thread, NULL, signal_main, &sc) == 0;
	int rc = rec_daemon_run(&o);
	if (sig_started) {
		if (!gitops_cancel_is_set(o.cancel)) {
			gitops_cancel_set(o.cancel);
			pthread_kill(sig_thread, SIGTERM); /* blocked here: ends its sigwait */
		}
		pthread_join(sig_thread, NULL);
	}
	gitops_cancel_free(o.cancel);
	if (rc == GITOPS_ERROR)
		code = cli_fail(EXIT_PARTIAL, "%s", gitops_error_last());
	else if (rc)
		code = cli_fail(cli_exit_for(rc), "%s", gitops_error_last());
out:
	free(envs);
	return code;
}
