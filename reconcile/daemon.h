/* reconcile/daemon: `gitops run`, the reconciler that keeps environments in sync with git: a
 * fetch every interval, a sync when the target revision moves (sync.auto), a health gate and an
 * automatic rollback after a sync that changed something, and self-heal fed by one
 * list-then-watch cache per managed kind and namespace.
 *
 * Threads: rec_daemon_run runs one reconciler thread and one healer thread per environment (of
 * every pipeline), and one fetcher thread per repository (it fetches every interval or when a
 * webhook asks, re-reads `notifications:`, and wakes the repository's reconcilers, which read the
 * shared mirror without fetching); it returns once they all stopped. Each reconciler owns its
 * own rec_workspace (a workspace is not shared between threads: one per thread is the rule, the
 * mirror and render cache on disk are shared through their locks); its healer shares the
 * workspace's kube_client (thread-safe) and the desired objects under the environment's lock.
 * A sync stops between chunks when the token is set or the environment's Lease is lost. */
#ifndef GITOPS_RECONCILE_DAEMON_H
#define GITOPS_RECONCILE_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"
#include "reconcile/control.h"

/* How long an object must stay as git says after a correction before its drift episode is
 * closed with one drift.corrected event (every detection in between is folded into its count). */
#define REC_DRIFT_QUIET_MS 10000
/* Detections in one episode from which it is reported as a fight with another writer. */
#define REC_DRIFT_FIGHT 3
/* Backoff after failures: 1 s doubling up to this cap (then the interval, whichever is larger). */
#define REC_BACKOFF_CAP_MS 300000
/* Health gate timeout when the environment sets no rollback.healthTimeout. */
#define REC_HEALTH_TIMEOUT_MS 300000

struct rec_daemon_options {
	const char *repo;        /* manifests repository (path or URL); NULL: the working directory's */
	/* Several manifests repositories, one pipeline each (--repo repeated); n_repos > 0 replaces
	 * `repo`. Their pipelines must differ; an environment is named by pipeline and name (log
	 * lines say "pipeline/env" then; history and metrics carry both). */
	const char *const *repos;
	size_t n_repos;
	const char *data_dir;    /* NULL: mf_data_dir() */
	const char *kubeconfig;  /* overrides the environments' cluster settings (may be NULL) */
	const char *context;
	const char *signing_key; /* reporter key for signed records; passed through (may be NULL) */
	/* Configuration, explicit (cli/ maps the GITOPS_* variables): see rec_workspace_options. */
	const char *state_repo, *state_branch, *main_branch;
	double kube_qps;
	int render_timeout_ms;
	long long interval_ms;   /* fetch interval; 0: 30 s. Each wait gets +-10 % jitter */
	const char *const *envs; /* environments to reconcile (in every pipeline that has them, one at
				  * least); NULL or n_envs == 0: every one */
	size_t n_envs;
	bool once;               /* reconcile each environment once (sync, gate, rollback), then return */
	gitops_cancel *cancel;   /* required: set it to stop (SIGINT/SIGTERM) */
	/* One line per thing done, e.g. env "dev", "synced 1a2b3c4d5e6f: 2 created ...". Called from
	 * several threads, serialised by the daemon. May be NULL. */
	void (*log)(void *ud, const char *env, const char *line);
	void *log_ud;
	/* When set, lines that name an app, an object ("Kind ns/name") or a recorded event's id come
	 * here with those fields apart (any may be NULL); every other line still goes to `log`.
	 * Same threads and serialisation as `log`; receives log_ud. */
	void (*log_fields)(void *ud, const char *env, const char *app, const char *object, const char *event_id,
			   const char *line);
	/* Readiness, status, pokes and leader election shared with web/ (reconcile/control.h);
	 * NULL: none (every environment is reconciled, waits end only by the interval). */
	rec_control *control;
};

/* Runs until opt->cancel is set (or, with `once`, until every environment was reconciled once).
 * Failures of one environment (unreachable cluster or remote, refused apply, failed gate) are
 * retried with capped exponential backoff, recorded as daemon.error events when they change, and
 * never stop the others. Returns 0 when stopped by the cancel token or when every environment
 * of a `once` run succeeded; GITOPS_EINVALID for an unknown environment or a bad gitops.yaml at
 * start, GITOPS_EGIT when the repository cannot be opened at start, GITOPS_ERROR when some
 * environment of a `once` run failed (the message names them). */
int rec_daemon_run(const struct rec_daemon_options *opt);

#endif
