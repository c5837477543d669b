/* reconcile: one environment's loop: resolve the revision, render, plan (compare desired with
 * live), apply the difference with server-side apply, prune what gitops created and no longer
 * wants, and keep the inventory of what it applied. The CLI's diff, sync, drift and status
 * commands and the daemon are thin layers over this module (the verbs themselves: env.c).
 *
 * Configuration is explicit (rec_workspace_options): the module reads no GITOPS_* environment
 * variable and never calls setenv; only KUBECONFIG is read, as kubectl reads it, to key the
 * render capabilities cache.
 *
 * Ownership: every applied object is labelled with the pipeline, environment and app, and listed
 * in the inventory of its pipeline and environment (a ConfigMap written compare-and-swap, intent
 * recorded before acting); prune, adoption and every inventory write are checked against it.
 *
 * Thread-safety: a workspace, and the plans made from it, belong to one thread at a time (the
 * daemon gives each worker its own workspace), except rec_workspace_client and progress lines,
 * which any thread may use; the kube clients under them are thread-safe.
 * Syncs of one pipeline and environment from several threads or processes serialize on the
 * environment's sync lock (a Lease in the cluster). */
#ifndef GITOPS_RECONCILE_H
#define GITOPS_RECONCILE_H

#include <jansson.h>
#include <stdbool.h>

#include "common/common.h"
#include "drift/drift.h"
#include "history/history.h"
#include "kube/kube.h"
#include "manifests/manifests.h"

/* Labels every applied object carries: what prune and drift use to recognise gitops' objects. */
#define REC_LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
#define REC_LABEL_ENV "gitops.dev/environment"
#define REC_LABEL_APP "gitops.dev/app"
#define REC_LABEL_PIPELINE "gitops.dev/pipeline"
/* On a desired object: `disabled` keeps it in the cluster when it later leaves git. */
#define REC_ANNOTATION_PRUNE "gitops.dev/prune"
/* Where the inventories and sync locks live: ConfigMap <namespace>/gitops-inventory.<pipeline>.<env>,
 * Lease <namespace>/gitops-lock.<pipeline>.<env>. */
#define REC_INVENTORY_NAMESPACE "gitops-system"

/* ---- Workspace: the repository, its pipeline config, and cluster clients ---------------- */

/* Threads: a workspace's repository mirror, config and render cache are used by one thread at a
 * time: every function below taking a rec_workspace, and every plan made from it, belongs to
 * the thread using the workspace, except two that any thread may call at any time:
 * rec_workspace_client (the client list is guarded by a lock; a client, once returned, stays
 * where it is until rec_workspace_free) and the progress callback (serialized by the
 * workspace). The kube_clients are thread-safe and may be handed to other threads for as long
 * as the workspace lives. A thread that needs its own repository and renderer opens its own
 * workspace with rec_workspace_open and .no_fetch = true: that costs opening the mirror and
 * reading gitops.yaml (milliseconds); the mirror and the render cache on disk are shared
 * through their locks. The daemon opens one per environment worker. */
typedef struct rec_workspace rec_workspace;

struct rec_workspace_options {
	const char *repo;       /* path or URL; NULL: the git repository of the working directory */
	const char *data_dir;   /* mirror and render cache; NULL: mf_data_dir() */
	const char *kubeconfig; /* overrides the environments' cluster settings */
	const char *context;
	bool no_fetch;          /* use the mirror as it is (open and refresh; the daemon's fetcher fetches) */
	/* Read-only callers (render): when the state branch cannot be read, warn and resolve
	 * without pins. Writers never set it: a rollback's pin must not be silently skipped. */
	bool pins_best_effort;
	/* Sync and the daemon: the revision resolved is what deploys, so it must carry a valid git
	 * SSH signature by one of the environment's commitSigners (when any are listed). */
	bool deploy;
	/* Configuration, explicit: the library reads no GITOPS_* environment variable (cli/ maps
	 * $GITOPS_STATE_REPO, $GITOPS_STATE_BRANCH, $GITOPS_MAIN_BRANCH, $GITOPS_SIGNING_KEY,
	 * $GITOPS_KUBE_QPS and $GITOPS_RENDER_TIMEOUT to these). Strings are borrowed for the
	 * workspace's life. */
	const char *state_repo;   /* repository of the state branch; NULL: the manifests repository */
	const char *state_branch; /* NULL: HIST_DEFAULT_BRANCH */
	const char *main_branch;  /* the branch gitops.yaml is read from; NULL: main, else master */
	const char *signing_key;  /* reporter key signing the syncs rec_env_sync records; NULL: unsigned */
	double kube_qps;          /* client-side request limit per cluster; <= 0: 1000 */
	int render_timeout_ms;    /* per renderer run; <= 0: MF_DEFAULT_TIMEOUT_MS */
	bool render_once;         /* one-shot commands: renders are not kept in memory (the disk
				   * cache serves a second render of the same commit) */
	/* Cancellation of the workspace's clients' retries (the daemon's token); may be NULL. */
	const atomic_bool *cancel;
	/* Progress lines ("applying 12 objects..."); may be NULL. */
	void (*progress)(void *ud, const char *line);
	void *progress_ud;
};

/* Opens the repository mirror (fetching it), and reads gitops.yaml from the main branch.
 * Errors: GITOPS_EGIT (repository, fetch with no usable mirror, no gitops.yaml), GITOPS_EPARSE /
 * GITOPS_EINVALID (config). The caller owns *out: free with rec_workspace_free. */
int rec_workspace_open(rec_workspace **out, const struct rec_workspace_options *opt);
void rec_workspace_free(rec_workspace *ws);
const struct mf_config *rec_workspace_config(const rec_workspace *ws);
/* Fetches the repository again and, when the main branch moved, re-reads gitops.yaml. Every
 * mf_environment pointer taken from the workspace before is invalid afterwards when
 * *config_changed is set. A failed fetch is GITOPS_EGIT (the mirror keeps its last state); a
 * bad new gitops.yaml is GITOPS_EPARSE / EINVALID and the previous config stays in use. */
int rec_workspace_refresh(rec_workspace *ws, bool *config_changed);
/* The environment `name`; GITOPS_EINVALID naming the known ones when there is none. */
int rec_workspace_env(const struct mf_environment **out, rec_workspace *ws, const char *name);
/* The revision to deploy: `rev` when given (branch, tag, SHA), else the environment's pin in the
 * state branch (history/: a promotion or a rollback; the branch is verified first, GITOPS_EPOLICY
 * when it does not verify), else the tracked branch's head (refs/heads/<track> exactly). With
 * opt.deploy the commit must pass rec_commit_trusted.
 * An environment promoted `from` another without a pin: GITOPS_EINVALID asks to promote.
 * Unknown revisions are GITOPS_EGIT. */
int rec_resolve_revision(char out[41], rec_workspace *ws, const struct mf_environment *env, const char *rev);
/* ---- Trust (README "Trust model") --------------------------------------------------------
 * gitops.yaml is read from the main branch only: opt.main_branch, else refs/heads/main, else
 * refs/heads/master (or refs/remotes/origin/<name> in a clone without the local branch); a
 * config there naming another `branch:` is followed once. Never a tag, never HEAD. */
struct hist_policy;
struct hist;
/* The main branch's commit gitops.yaml was read from (40 hex, owned by ws). */
const char *rec_workspace_main_sha(const rec_workspace *ws);
/* The configs in effect over time (the main branch's history of gitops.yaml), for
 * history/'s verification. Valid while ws lives; not thread-safe (one workspace per thread). */
void rec_workspace_policy(rec_workspace *ws, struct hist_policy *out);
/* Opens the state branch (state_repo / state_branch when not NULL, else the workspace's
 * opt.state_repo / opt.state_branch, else the manifests repository) with the workspace's policy attached:
 * every read and append through it is verified first (history.h, hist_check). */
int rec_workspace_history(struct hist **out, rec_workspace *ws, const char *state_repo, const char *state_branch);
/* 0 when `sha` may deploy to `env`: no commitSigners listed, or a valid git SSH signature
 * (sshsig, namespace "git", ssh-ed25519) by one of them. Else GITOPS_EPOLICY naming the commit. */
int rec_commit_trusted(rec_workspace *ws, const struct mf_environment *env, const char *sha);

/* Renders `env` at commit `sha` (every app, or only `only_app`) through the workspace's render
 * cache, with namespaces filled in without asking a cluster (kinds neither the built-in table
 * nor the render's CRDs know are taken as namespaced). Render failures are GITOPS_EINVALID
 * (bad input), local I/O failures GITOPS_EIO. The caller owns *out: mf_objects_free. */
int rec_render_env(mf_objects **out, rec_workspace *ws, const struct mf_environment *env, const char *sha,
		   const char *only_app);
/* The pipeline's identity: gitops.yaml's `name`, else "repo-" and the first 16 hex digits of the
 * main branch's root commit (the same in every clone). *root gets the root commit (40 hex).
 * Both owned by the workspace. */
int rec_workspace_pipeline(const char **pipeline, const char **root, rec_workspace *ws);
/* The client for an environment's cluster (created once, owned by the workspace). Thread-safe:
 * may be called from any thread while the workspace lives. */
int rec_workspace_client(kube_client **out, rec_workspace *ws, const struct mf_environment *env);

/* ---- Plan: desired against live ---------------------------------------------------------- */

typedef struct rec_plan rec_plan;

/* Which object: the parts of its identity, never a "group/kind/namespace/name" string to take
 * apart again. The strings belong to whatever holds the reference (a plan's item: the plan). */
struct rec_ref {
	const char *group;     /* "" for the core group */
	const char *version;
	const char *kind;
	const char *namespace; /* NULL for cluster-scoped objects */
	const char *name;
};

struct rec_item {
	struct rec_ref ref;
	drift_result *result;   /* state and differing fields (owned by the plan) */
	json_t *desired;        /* the object to apply, labels added; NULL for EXTRA (and for
				 * IN_SYNC in a results_only plan) */
	json_t *live;           /* the live object; NULL when absent. IN_SYNC (unless the plan
				 * keep_live): only apiVersion, kind and metadata's name, namespace,
				 * annotations, generation, deletionTimestamp; NULL in a results_only
				 * plan unless unmanaged */
	const char *app;
	const char *source;     /* "file:line" of the desired object, or "inventory" */
	bool in_inventory;      /* in this pipeline and environment's inventory */
	bool owned;             /* live carries this pipeline and environment's labels */
	/* Desired and live, but not in this pipeline and environment's inventory: sync leaves it
	 * alone (skipped, exit 6) unless adopting. */
	bool unmanaged;
	/* For unmanaged objects labelled by gitops elsewhere: "pipeline P, environment E" (never
	 * adopted, even with --adopt); NULL otherwise. */
	const char *owner;
};

/* Where a plan reads live objects: the daemon's watch caches instead of lists. get() puts the
 * live object `ref` (of resource r) in *out, a new reference the plan owns, or NULL when it
 * does not exist, and returns GITOPS_OK; GITOPS_ENOTFOUND when the source does not watch that
 * resource and namespace (the plan lists those); any other error stops the plan. Called on the
 * planning thread. A source that drops other managers' managedFields entries is fine (see
 * drift_compare). */
struct rec_live_source {
	int (*get)(void *ud, const struct kube_resource *r, const struct rec_ref *ref, json_t **out);
	void *ud;
};

struct rec_plan_options {
	const char *revision;  /* NULL: the environment's revision (rec_resolve_revision) */
	/* Plan one app; every app is still rendered so that nothing another app desires is
	 * planned for pruning. NULL: every app. */
	const char *only_app;
	const struct rec_live_source *live; /* NULL: list the live objects */
	/* Only what a diff reads: an object's desired form is dropped once it is compared in sync
	 * (its item's desired is then NULL), and the inventory once the entries are made. Such a
	 * plan must not be synced. */
	bool results_only;
	/* Keep in-sync live objects whole (their status: health is judged on them, as by
	 * gitops status --apps); otherwise they are cut down to their metadata once compared. */
	bool keep_live;
};

/* The plan, in four steps (plan.c): render `env` at the revision; read the live objects (from
 * opt->live, else one list per kind and namespace touched, streamed page by page and keeping
 * only the objects the plan names; never a read per object) and the inventory of this pipeline
 * and environment; compare each pair with drift/; confirm every suspected modification with a
 * server-side dry run (sent together, as HTTP/2 streams). `opt` may be NULL. The caller owns
 * *out: free with rec_plan_free. A plan belongs to the thread that uses it. */
int rec_plan_new(rec_plan **out, rec_workspace *ws, const char *env, const struct rec_plan_options *opt);
/* rec_plan_new with revision and only_app (both may be NULL) and lists for the live objects. */
int rec_plan_env(rec_plan **out, rec_workspace *ws, const char *env, const char *revision, const char *only_app);
void rec_plan_free(rec_plan *p);
size_t rec_plan_count(const rec_plan *p);
const struct rec_item *rec_plan_item(const rec_plan *p, size_t i);
/* The commit planned (40 hex) and the environment; owned by the plan. */
const char *rec_plan_revision(const rec_plan *p);
const char *rec_plan_env_name(const rec_plan *p);
/* Counts by state. */
void rec_plan_counts(const rec_plan *p, size_t counts[4]);
/* The inventory's name (ConfigMap in REC_INVENTORY_NAMESPACE) and the pipeline; owned by the plan. */
const char *rec_plan_inventory_name(const rec_plan *p);
const char *rec_plan_pipeline(const rec_plan *p);
/* True when every desired object is in sync and managed, and nothing extra is live. */
bool rec_plan_in_sync(const rec_plan *p);
/* For `gitops diff` (reconcile/validate.c): sends every object the plan would write (MISSING,
 * MODIFIED) to the apiserver as a server-side apply dry run, and calls refused(ud, item index,
 * masked message) for each one the apiserver refuses (Invalid, BadRequest, admission, a
 * namespace that neither exists nor is created by the plan). Kinds and namespaces the sync
 * would create first are not refusals. Returns 0, or the error reaching the cluster. */
typedef void (*rec_refused_fn)(void *ud, size_t item, const char *message);
int rec_plan_validate(rec_workspace *ws, const rec_plan *plan, rec_refused_fn refused, void *ud);

/* ---- Sync -------------------------------------------------------------------------------- */

struct rec_sync_options {
	bool prune;     /* delete EXTRA objects (inventory entries no longer desired) */
	bool dry_run;   /* server-side dry run: nothing is written, inventory included; nothing deleted */
	bool adopt;     /* take over existing objects no gitops pipeline owns (also sync.adopt) */
	int parallel;   /* objects applied at once (HTTP/2 streams); 0: 32 */
	long lock_timeout_ms; /* waiting for another sync of the environment; 0: 10 minutes */
	/* Asked before each chunk of at most REC_SYNC_CHUNK objects is applied, and before pruning
	 * and the PostSync hooks: true (SIGTERM, the environment's Lease lost) stops the sync
	 * there, with nothing more written (rep->interrupted). May be NULL; called on the caller's
	 * thread. */
	bool (*stop)(void *ud);
	void *stop_ud;
};
/* Objects applied between two checks of rec_sync_options.stop. */
#define REC_SYNC_CHUNK 128

struct rec_sync_report {
	unsigned created, updated, unchanged, pruned, failed, extra_kept;
	unsigned skipped;  /* dry run: objects whose Namespace or CRD this sync would create first */
	unsigned unmanaged; /* exist, not managed by this pipeline and environment: left alone */
	unsigned adopted;   /* taken over (--adopt) */
	bool interrupted;   /* stopped by opt->stop: nothing pruned, the inventory keeps its revision */
	unsigned not_applied; /* interrupted: objects left to apply (the next sync applies them) */
	unsigned kept;      /* not pruned: prune disabled, or a Namespace/CRD holding others' objects */
	long long ms;
};

/* Applies the plan: Namespaces and CRDs first (waiting until CRDs are established and served),
 * then cluster-scoped objects, then namespaced ones, in parallel within each step. Only MISSING
 * and MODIFIED objects are written. A failed object is reported (progress line with the
 * apiserver's reason) and does not stop the others; the return is then GITOPS_ERROR with the
 * count in the message. Ownership: objects about to be applied are added to the inventory
 * (compare-and-swap) before they are applied; pruned ones are removed after they are deleted;
 * existing objects the inventory does not list are skipped (rep->unmanaged, GITOPS_ERROR)
 * unless adopting. Writes happen under the environment's sync lock; a dry run writes nothing.
 * Stopped by opt->stop: GITOPS_ETIMEOUT ("interrupted"), rep->interrupted set, the counts say
 * what was applied; objects never attempted leave the inventory again unless they exist.
 * Not thread-safe for one plan; different plans may sync at once. */
int rec_sync(struct rec_sync_report *rep, rec_workspace *ws, rec_plan *plan, const struct rec_sync_options *opt);

/* ---- Status ------------------------------------------------------------------------------ */

struct rec_inventory_info {
	char pipeline[64];   /* this pipeline's identity */
	char name[160];      /* the inventory ConfigMap */
	char revision[41];   /* last synced commit, "" when never synced */
	char synced_at[32];  /* UTC, RFC 3339 */
	size_t objects;
};
/* Reads the inventory of this pipeline and environment (counts zero when there is none). */
int rec_inventory_info(struct rec_inventory_info *out, rec_workspace *ws, const struct mf_environment *env);

/* ---- Environment verbs (reconcile/env.c): what `gitops sync/status/drift/render` do -------
 *
 * Thread-safety: like the workspace they take, one thread at a time per workspace; results
 * belong to the caller and may go to any thread. Errors follow the module's rules. */

/* The revision `gitops render` shows: rec_resolve_revision's, and for an environment promoted
 * `from` another with nothing promoted yet (and no `rev`), the main branch's commit, which is
 * what its first promotion would be made from. */
int rec_resolve_shown_revision(char out[41], rec_workspace *ws, const struct mf_environment *env, const char *rev);

struct rec_env_sync_options {
	struct rec_sync_options sync;
	const char *only_app;   /* the plan was made for one app (rec_plan_env's only_app); NULL: all */
	/* Append sync.succeeded / sync.failed to the state branch (never for a dry run), signed
	 * with the workspace's opt.signing_key when set. A no-op sync is not recorded. */
	bool record;
	const char *actor;      /* NULL: hist_default_actor() */
	const char *trigger;    /* HIST_TRIGGER_*; NULL: hist_default_trigger() */
};

/* What a sync did, for printing and for its history event. The caller clears it with
 * rec_env_sync_result_clear (also after an error). */
struct rec_env_sync_result {
	struct rec_sync_report rep;
	char revision[41];
	/* objects that failed or were skipped as not gitops' ("Kind ns/name", apiserver reason,
	 * masked), at most HIST_MAX_FAILURES (history.h) */
	struct hist_failure failures[HIST_MAX_FAILURES];
	size_t n_failures;
	char **apps;            /* the apps whose objects the sync changed (environment-wide syncs) */
	size_t n_apps;
	char *event_id;         /* the recorded event; NULL: nothing recorded (dry run, no-op, error) */
	char *record_error;     /* why recording failed; NULL when it did not */
};
/* Syncs the plan (rec_sync) and, with opt->record, records it in the state branch. Returns
 * rec_sync's result with its message as the thread's last error: a recording failure never
 * replaces it (it is in out->record_error; the sync itself happened). Progress lines still go
 * to the workspace's progress callback. */
int rec_env_sync(struct rec_env_sync_result *out, rec_workspace *ws, rec_plan *plan,
		 const struct rec_env_sync_options *opt);
/* Records a sync result as a sync.* event: `base` gives type, environment, app, actor, trigger
 * and reason; revision, counts, duration, apps and failures come from `r`, the commit time from
 * the workspace's mirror. `h` may be NULL: the workspace's state branch is opened (verified,
 * signed with opt.signing_key) for this call. *out: the record, NULL for a skipped no-op
 * (caller decrefs). For callers that record after more work (the daemon's health gate). */
int rec_env_record_sync(json_t **out, rec_workspace *ws, struct hist *h, const struct rec_env_sync_result *r,
			const struct hist_event *base);
void rec_env_sync_result_clear(struct rec_env_sync_result *r);
/* True for the progress lines of objects that failed or were skipped as not gitops' (printed
 * even with --quiet). */
bool rec_progress_is_failure(const char *line);

/* Drift since the last sync: the environment planned at the revision its inventory records,
 * as a JSON array of drift_result_to_json objects with "state" MODIFIED (a field gitops sets
 * changed), DELETED (missing, and in the inventory: gitops applied it), EXTRA (in the
 * inventory, no longer desired), plus "environment" and "app". Objects gitops does not manage
 * are left out. Never synced: an empty array and *never_synced (may be NULL). Caller decrefs. */
int rec_env_drift(json_t **out, bool *never_synced, rec_workspace *ws, const struct mf_environment *env);

struct rec_status_options {
	bool apps; /* add "apps": a row per app (app, source, path, revision, state, health,
		    * healthReason, objects, counts) */
};
/* The status row of one environment, as `gitops status --json` prints it (README "JSON
 * output"): environment, target, synced, syncedAt, state (Synced, OutOfSync, Never, Unknown),
 * counts, pin, pending, lastSync, suspended, suspension, health, daemonError, error. `h` (may be
 * NULL) is the state branch. The row is always made (caller decrefs); the return is the error
 * reading the cluster or git, also in the row's "error". */
int rec_env_status(json_t **out, rec_workspace *ws, struct hist *h, const struct mf_environment *env,
		   const struct rec_status_options *opt);
/* The state branch's part of a status row, set on `row`: syncedAt, pin, pending, lastSync,
 * suspended, suspension, health, daemonError (h NULL or unreadable: the empty values). Shared by
 * rec_env_status and the daemon's own view (rec_control_status). */
void rec_status_history(json_t *row, struct hist *h, const char *env);
/* Every environment's row (or only `only_env`'s), each with "pipeline": the JSON of
 * `gitops status --json` and of GET /api/v1/status. *out is set whenever the environments
 * could be listed; the return is the first environment's error (the rest are still there), or
 * the error naming an unknown `only_env` / the pipeline (then *out is NULL). Caller decrefs. */
int rec_status(json_t **out, rec_workspace *ws, struct hist *h, const char *only_env,
	       const struct rec_status_options *opt);

/* ---- Health: the rules and the wait of the health gate ------------------------------------ */

#include "reconcile/health.h"

#endif
