/* reconcile/control: what runs beside `gitops run`'s reconcilers and talks to them: readiness,
 * the status the web endpoints show, a poke that ends an environment's wait at once (webhooks),
 * and the leader election that says which environments this replica may reconcile.
 *
 * Threads: every function is thread-safe (one lock inside each object). The daemon registers
 * its environments and reports each pass; web/ reads and pokes; the lease thread renews. */
#ifndef GITOPS_RECONCILE_CONTROL_H
#define GITOPS_RECONCILE_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"
#include "kube/kube.h"
#include "reconcile/reconcile.h"

/* ---- Leader election: one coordination.k8s.io/v1 Lease per pipeline and environment ---- */

typedef struct rec_leases rec_leases;

struct rec_lease_options {
	kube_client *client;       /* the cluster holding the Leases (borrowed; thread-safe) */
	const char *namespace;     /* where the Leases live (must exist) */
	const char *identity;      /* this replica (unique: pod name, or host_pid) */
	long long duration_ms;     /* leaseDurationSeconds; 0: 15 s */
	long long renew_ms;        /* retry period; 0: 2 s. The renew deadline is 2/3 of the duration */
	/* Called on the lease thread when this replica gains (held true) or loses an environment. */
	void (*on_change)(void *ud, const char *pipeline, const char *env, bool held);
	void *ud;
};

/* Starts the lease thread (candidates come with rec_leases_add). Each round it renews what it
 * holds, counts the live replicas (each holds a member Lease gitops-replica-<identity>), and
 * takes free or expired Leases up to its fair share, ceil(environments / replicas), releasing
 * one above it. Caller frees with rec_leases_stop, which releases every Lease held. */
int rec_leases_start(rec_leases **out, const struct rec_lease_options *opt);
/* Adds an environment to contend for (idempotent). */
void rec_leases_add(rec_leases *ls, const char *pipeline, const char *env);
/* True while this replica holds the environment's Lease and renewed it within the deadline. */
bool rec_leases_held(rec_leases *ls, const char *pipeline, const char *env);
/* A webhook reached this replica: ask the holders of the pipeline's Leases this replica does not
 * hold to fetch now, by stamping the annotation gitops.dev/requested-at on them (the holder sees
 * it at its next renewal, within the retry period, and calls the on_request callback). */
void rec_leases_request(rec_leases *ls, const char *pipeline);
/* Sets the callback run on the lease thread when a follower asked for `env` of `pipeline`
 * (rec_control wakes the environment's wait). */
void rec_leases_on_request(rec_leases *ls, void (*fn)(void *ud, const char *pipeline, const char *env), void *ud);
/* Releases every Lease (empty holder) and stops the thread. NULL is fine. */
void rec_leases_stop(rec_leases *ls);
/* The Lease object name for a pipeline and environment ("gitops-<pipeline>-<env>"); caller frees. */
char *rec_lease_name(const char *pipeline, const char *env);

/* ---- Control: readiness, status, poke ----------------------------------------------------- */

typedef struct rec_control rec_control;

/* The caller owns *out; free with rec_control_free once the daemon, the web server and the
 * leases (rec_leases_stop: their thread may poke through the control) stopped.
 * `leases` may be NULL (no election: this replica reconciles everything); borrowed. */
rec_control *rec_control_new(rec_leases *leases);
void rec_control_free(rec_control *ctl);

/* Daemon side. Each pipeline (one per --repo; registered again: updated), its repository and
 * the branches whose pushes matter (the main branch and every tracked branch, "refs/heads/..."
 * or short), then its environments. Environments are named by pipeline and name everywhere:
 * two pipelines may both have a "dev". */
void rec_control_pipeline(rec_control *ctl, const char *pipeline, const char *repo_url, const char *main_branch);
void rec_control_env_add(rec_control *ctl, const char *pipeline, const char *env, const char *branch);
/* May this replica reconcile and write `env` now (it holds the Lease, or there is no election)? */
bool rec_control_may_act(rec_control *ctl, const char *pipeline, const char *env);
/* One pass ended: rc 0 or its error; `target` the revision applied ("" none); `objects` managed
 * (-1: unknown); `healthy` -1 unknown, 0, 1. Marks the environment ready after its first pass. */
void rec_control_pass_done(rec_control *ctl, const char *pipeline, const char *env, int rc, const char *error, const char *target,
			   long objects, int healthy);
/* Sets gitops_promotions_pending{pipeline,environment} from the state branch (the recent
 * promotion requests of `env` still pending). Errors leave the gauge as it was. */
void rec_control_count_pending(rec_control *ctl, const char *pipeline, const char *env);
/* Waits `ms` or until poked or cancelled; true when cancelled. */
bool rec_control_wait(rec_control *ctl, const char *pipeline, const char *env, gitops_cancel *cancel, long long ms);
/* The pipeline's fetcher (one per repository): waits `ms` or until a webhook or a follower asks
 * for a fetch, or cancelled (true). Once called, pokes of the pipeline go to the fetcher instead
 * of its environments; the fetcher wakes them with rec_control_wake after each fetch. */
bool rec_control_fetch_wait(rec_control *ctl, const char *pipeline, gitops_cancel *cancel, long long ms);
void rec_control_wake(rec_control *ctl, const char *pipeline);

/* Web side. True once every registered environment finished its first pass (or is led by
 * another replica); otherwise *why (caller frees) names the first that did not. */
bool rec_control_ready(rec_control *ctl, char **why);
/* Wakes every environment of each pipeline whose main branch or a tracked one is `ref`
 * ("refs/heads/x"), or of every pipeline when ref is NULL; with leader election, also asks the
 * holders of the others (through their Leases) to fetch. Returns how many were woken (0: the
 * ref matters to none). */
size_t rec_control_poke(rec_control *ctl, const char *ref);
/* The daemon's view of each environment of every pipeline (or those named `env`; GET
 * /api/v1/daemon), with its pipeline's state branch part of a status row (rec_status_history):
 * no cluster read; plus pipeline, leader, ready, objects.managed and the last pass's error.
 * Caller decrefs *out. GITOPS_ENOTFOUND for an unknown env. (GET /api/v1/status is rec_status
 * on rec_control_workspace, per pipeline.) */
int rec_control_status(json_t **out, rec_control *ctl, const char *env);
/* The manifests repository's URL of `pipeline` (NULL: the first registered), for history
 * reads; caller frees. NULL before the daemon registered it. */
char *rec_control_repo(rec_control *ctl, const char *pipeline);
/* The name of the i-th pipeline registered (caller frees), NULL past the last. */
char *rec_control_pipeline_name(rec_control *ctl, size_t i);
/* Daemon side: how it opens workspaces (data directory, kubeconfig, context, state branch, main
 * branch, QPS, render timeout; strings are copied); the same for every pipeline. */
void rec_control_configure(rec_control *ctl, const struct rec_workspace_options *wo);
/* Web side: the state branch of `pipeline` (NULL: the first registered) as the daemon opens it
 * (caller frees with hist_free), and a workspace on its mirror as the daemon last fetched it
 * (no fetch; its own clients; caller frees with rec_workspace_free; one per request thread).
 * GITOPS_ERROR "the daemon is starting" before it registered the pipeline. */
int rec_control_history(hist **out, rec_control *ctl, const char *pipeline);
int rec_control_workspace(rec_workspace **out, rec_control *ctl, const char *pipeline);

/* ---- Outgoing notifications (`notifications:` in gitops.yaml) -------------------------------- */

typedef struct rec_notifier rec_notifier;
struct mf_config;

struct rec_notify_options {
	const struct mf_config *cfg; /* its notifications are copied */
	const char *repo_url;        /* the state branch is read through it */
	const char *state_repo, *state_branch; /* NULL: repo_url, HIST_DEFAULT_BRANCH */
	const char *pipeline;
	/* Only the replica leading an event's environment sends it (NULL: this one sends all);
	 * events without an environment (approvals) are sent by the leader of the first one. */
	rec_control *control;
	long long poll_ms;           /* how often the history is read; 0: 1 s */
	/* One line per delivery problem, naming the sink, never its URL or secret. May be NULL. */
	void (*log)(void *ud, const char *line);
	void *log_ud;
};

/* Starts two threads: one reads the events recorded since the start (by this daemon, a CI's
 * promote, an approver) and queues those a sink asked for; one delivers the queue, retrying
 * with backoff (1 s doubling, capped at 30 s, 6 tries; Retry-After honoured) on connection
 * errors, 429 and 5xx. A reconcile never waits for it. GITOPS_EINVALID (naming gitops.yaml's
 * line) for an unknown event type. Caller frees with rec_notify_stop. */
int rec_notify_start(rec_notifier **out, const struct rec_notify_options *opt);
/* Replaces the sinks with those of `cfg` (gitops.yaml changed on the main branch); events read
 * from then on go to the new sinks, what is queued is delivered as it was. *changed: the sinks
 * differ. GITOPS_EINVALID (the old sinks kept) as rec_notify_start. Thread-safe. */
int rec_notify_reload(rec_notifier *n, const struct mf_config *cfg, bool *changed);
/* Stops both threads; what is still queued is dropped (and logged). NULL is fine. */
void rec_notify_stop(rec_notifier *n);

#endif
