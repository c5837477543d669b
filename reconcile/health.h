/* reconcile/health: is a live object healthy? The rules of the health gate that follows a sync
 * (kstatus's, with Argo CD's Degraded where kstatus says Failed), and a wait until a set of applied objects is
 * healthy, fed by one list-then-watch per kind and namespace (no read per object).
 *
 * Threads: rec_health_assess and rec_health_name are pure and thread-safe. rec_health_wait may
 * run on several threads at once (one wait per call, each with its own watches); the client is
 * shared and thread-safe. Its `cancel` flag may be set from any thread; its `on_change` callback
 * runs on the waiting thread. A report belongs to the caller. */
#ifndef GITOPS_RECONCILE_HEALTH_H
#define GITOPS_RECONCILE_HEALTH_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "kube/kube.h"

/* Ordered from best to worst. */
enum rec_health {
	REC_HEALTHY = 0,     /* rolled out, complete, bound, established, Ready, or no rule */
	REC_PROGRESSING = 1, /* not there yet; may get there (also: not found, being deleted) */
	REC_DEGRADED = 2,    /* failed: will not get there by itself (Job failed, deadline exceeded) */
};

/* "Healthy", "Progressing", "Degraded". */
const char *rec_health_name(enum rec_health h);

/* Size of a reason buffer that never truncates the rules' own text. */
#define REC_HEALTH_REASON_MAX 256

/* The health of one live object (as the apiserver returns it), with a one-line reason in
 * `reason` (truncated to `size`; may be NULL). First match wins:
 *  1. metadata.deletionTimestamp set: Progressing.
 *  2. metadata.generation and status.observedGeneration both set and different: Progressing.
 *  3. condition Stalled=True: Degraded; Reconciling=True: Progressing.
 *  4. by kind: Deployment, StatefulSet, DaemonSet, ReplicaSet rolled out (updated, ready and
 *     available replicas; a Deployment also Available and, with a progress deadline, Progressing
 *     for NewReplicaSetAvailable; past its deadline it is Degraded, paused it is Healthy); Job Complete (Failed or FailureTarget: Degraded; suspended: Healthy); Pod
 *     (Succeeded or Running and Ready; Failed or a container in CrashLoopBackOff, ImagePullBackOff,
 *     ErrImagePull or another *Error: Degraded); PersistentVolumeClaim Bound (Lost: Degraded);
 *     Service of type LoadBalancer with an ingress address; CustomResourceDefinition Established
 *     (names not accepted, or not established and not installing: Degraded); APIService Available.
 *  5. any other kind with a Ready condition: Ready=True is Healthy, else Progressing.
 *  6. otherwise Healthy ("applied"). */
enum rec_health rec_health_assess(const json_t *obj, char *reason, size_t size);

/* One object of a wait and its last known health. */
struct rec_health_result {
	char *api_version, *kind, *ns, *name; /* ns NULL for cluster-scoped objects */
	enum rec_health health;
	char *reason;                          /* one line */
};

enum rec_health_outcome {
	REC_HEALTH_ALL_HEALTHY = 0,
	REC_HEALTH_TIMED_OUT,   /* the timeout passed with objects not healthy */
	REC_HEALTH_FAILED,      /* fail_fast: an object became Degraded */
	REC_HEALTH_CANCELLED,   /* the cancel flag was set */
};

struct rec_health_report {
	enum rec_health_outcome outcome;
	size_t healthy;                       /* objects healthy at the end */
	struct rec_health_result *unhealthy;  /* the others, in input order, with their reasons */
	size_t n_unhealthy;
	long long ms;                         /* time waited */
	unsigned watches;                     /* list-then-watch streams opened (kind x namespace) */
};
void rec_health_report_free(struct rec_health_report *r);

struct rec_health_wait_options {
	long timeout_ms;                /* 0: wait until healthy, failed or cancelled */
	/* Set to true (from any thread, e.g. a signal handler's flag) to end the wait: it is
	 * seen within 100 ms, and the watches take up to a second more to close. May be NULL. */
	atomic_bool *cancel;
	/* End as soon as an object is Degraded (a failed Job, a Deployment past its deadline)
	 * instead of waiting for the timeout. */
	bool fail_fast;
	/* Called on the waiting thread whenever an object's health or reason changes (for progress
	 * lines). `r` is borrowed for the call. May be NULL. */
	void (*on_change)(void *ud, const struct rec_health_result *r);
	void *ud;
};

/* Waits until every object of objs[0..n) (apiVersion, kind, metadata.name and, for namespaced
 * kinds, metadata.namespace; e.g. the applied objects) is Healthy, or the timeout passes, or
 * fail_fast sees a Degraded object, or the cancel flag is set. Objects are read from one
 * list-then-watch cache per kind and namespace, selected by the labels the group's objects have in
 * common (for applied objects: gitops' own), so other objects of the kind are not listed. Kinds
 * with no status (ConfigMap, Secret, ServiceAccount, RBAC, NetworkPolicy, CronJob, PDB, ...) are
 * healthy once applied and not watched. An
 * object not found (yet, deleted, or without those labels) is Progressing, one whose kind the
 * server does not serve is Degraded.
 * Always fills *report (free with rec_health_report_free). Returns 0 when all are healthy,
 * else GITOPS_ETIMEOUT (timed out), GITOPS_ERROR (failed or cancelled: see report->outcome),
 * or GITOPS_EINVALID (an object without kind or name; report is then empty), with a one-line
 * message naming the first unhealthy object and the count. */
int rec_health_wait(struct rec_health_report *report, kube_client *c, json_t *const *objs, size_t n,
		    const struct rec_health_wait_options *opt);

#endif
