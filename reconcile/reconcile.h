/* reconcile: one environment's loop: resolve the revision, render, plan (compare desired with
 * live), apply the difference with server-side apply, prune what gitops created and no longer
 * wants, and keep the inventory of what it applied. The CLI's diff, sync, drift and status
 * commands and the daemon are thin layers over this module.
 *
 * Ownership: every applied object is labelled with the pipeline, environment and app, and listed
 * in the inventory of its pipeline and environment (a ConfigMap written compare-and-swap, intent
 * recorded before acting); prune, adoption and every inventory write are checked against it.
 *
 * Thread-safety: a workspace, and the plans made from it, belong to one thread at a time (the
 * daemon gives each worker its own workspace); the kube clients under them are thread-safe.
 * Syncs of one pipeline and environment from several threads or processes serialize on the
 * environment's sync lock (a Lease in the cluster). */
#ifndef GITOPS_RECONCILE_H
#define GITOPS_RECONCILE_H

#include <jansson.h>
#include <stdbool.h>

#include "common/common.h"
#include "drift/drift.h"
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

/* Threads: a workspace (its repository mirror, config and render cache) is used by one thread
 * at a time; a daemon opens one per thread (cheap: the mirror and the render cache on disk are
 * shared through their locks). Its kube_clients are thread-safe and may be handed to other
 * threads for as long as the workspace lives. */
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
 * gitops.yaml is read from the main branch only: $GITOPS_MAIN_BRANCH, else refs/heads/main, else
 * refs/heads/master (or refs/remotes/origin/<name> in a clone without the local branch); a
 * config there naming another `branch:` is followed once. Never a tag, never HEAD. */
struct hist_policy;
struct hist;
/* The main branch's commit gitops.yaml was read from (40 hex, owned by ws). */
const char *rec_workspace_main_sha(const rec_workspace *ws);
/* The configs in effect over time (the main branch's history of gitops.yaml), for
 * history/'s verification. Valid while ws lives; not thread-safe (one workspace per thread). */
void rec_workspace_policy(rec_workspace *ws, struct hist_policy *out);
/* Opens the state branch (--state-repo / --state-branch, else $GITOPS_STATE_REPO /
 * $GITOPS_STATE_BRANCH, else the manifests repository) with the workspace's policy attached:
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
/* The client for an environment's cluster (created once, owned by the workspace). */
int rec_workspace_client(kube_client **out, rec_workspace *ws, const struct mf_environment *env);

/* ---- Plan: desired against live ---------------------------------------------------------- */

typedef struct rec_plan rec_plan;

struct rec_item {
	drift_result *result;   /* state and differing fields (owned by the plan) */
	json_t *desired;        /* the object to apply, labels added; NULL for EXTRA */
	json_t *live;           /* the live object; NULL when absent */
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

/* Renders `env` at `revision` (see rec_resolve_revision), reads the inventory of this pipeline
 * and environment and the live
 * objects (one list per kind and namespace touched; no read per object),
 * compares them, and confirms every suspected modification with a server-side dry run.
 * `only_app` may be NULL; with it, every app is still rendered so that nothing another app
 * desires is planned for pruning. The caller owns *out: free with rec_plan_free. */
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

/* ---- Health: the rules and the wait of the health gate ------------------------------------ */

#include "reconcile/health.h"

#endif
