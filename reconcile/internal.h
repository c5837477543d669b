/* reconcile: definitions shared by the module's files (not part of the public API). */
#ifndef GITOPS_RECONCILE_INTERNAL_H
#define GITOPS_RECONCILE_INTERNAL_H

#include <pthread.h>

#include "reconcile/reconcile.h"

typedef struct rec_inventory rec_inventory;

struct rec_client_entry {
	char *key; /* kubeconfig + context */
	kube_client *client;
};

struct rec_workspace {
	struct rec_workspace_options opt;
	char *repo_url;
	mf_repo *repo;
	char main_sha[41];
	struct mf_config *cfg;
	mf_config_log *cfglog; /* gitops.yaml over time, for history/'s verification (lazy) */
	mf_renderer *renderer;
	struct rec_client_entry *clients; /* guarded by clients_lock */
	size_t n_clients;
	pthread_mutex_t clients_lock;
	pthread_mutex_t progress_lock;
	char pipeline[64];     /* the pipeline identity, computed once (rec_workspace_pipeline) */
	char root_commit[41];
};

/* One planned object, with what the sync engine needs beyond the public fields. */
struct rec_entry {
	struct rec_item item;
	const struct kube_resource *resource; /* NULL: kind not served yet (its CRD is in this plan) */
	char *key;                             /* group/kind/namespace/name: a map key, never parsed */
	char *ref_mem;                         /* the strings of item.ref */
	char *app_s, *source_s;
	bool written;                          /* applied or pruned by the last sync */
	bool skip;                             /* not written: exists, not managed (no adoption) */
	bool adopt;                            /* taken over by this sync (--adopt) */
	bool app_moved;                        /* its inventory entry names another app */
	char *owner_s;                         /* item.owner */
	bool failed;
	bool desired_dropped;                  /* in sync, in a results_only plan */
	char *text;                            /* desired object still as text (a compact object of
						* the render: item.desired is NULL until compare_one
						* parses it) */
	size_t text_len;
	char *text_ns;                         /* the namespace its text has (NULL: none, or the */
	bool text_ns_same;                     /* one resolved, when text_ns_same) */
};

/* A hook of the plan (see enum mf_hook): not desired state; the sync applies it around the app's
 * other objects (hooks.c). */
struct rec_hook {
	json_t *obj;       /* labelled as this environment's */
	char *app, *source;
	enum mf_hook phase;
	int weight;
	unsigned del;      /* MF_HOOK_DELETE_* */
	size_t order;      /* position in the render: ties of weight keep it */
};

struct rec_plan {
	struct rec_hook *hooks;
	size_t n_hooks;
	char env[128];
	char revision[41];
	const struct mf_environment *envp;
	kube_client *client;
	struct rec_entry *entries;
	size_t n;           /* entries; the first n_visible have a result, the rest are inventory
			     * entries whose object is gone (dropped from the inventory by a sync) */
	size_t n_visible;
	rec_inventory *inv;  /* the inventory as read before the plan */
	char *inv_rv;        /* its resourceVersion then ("" when it did not exist) */
	char *only_app;
	char *prune_blocked; /* why nothing may be pruned (with --app: another app does not render) */
	rec_workspace *ws;
	struct rec_live_source live; /* get NULL: lists */
	bool results_only;
	bool keep_live;
	gitops_json_arena *desired_arena; /* desired objects parsed from text, while comparing */
#define REC_PLAN_AHEAD 2
	kube_list_ahead *ahead[REC_PLAN_AHEAD]; /* lists asked for before they are read */
	size_t n_ahead;
	json_t *lv_managed, *lv_pipeline, *lv_env, *lv_app; /* label values the desired objects share */
};

/* plan.c: builds the plan again at the same revision (under the sync lock). */
int rec_plan_refresh(rec_plan *p);
/* Steps 2 to 4 of a plan on a rendered set (taken: freed here): entries from the set and from
 * p->inv (opened by the caller, with p->envp, p->client and p->live set), live objects read and
 * compared (ownership decided), modifications confirmed, entries ordered. plan_build's tail,
 * exported so that the unit tests can run it on recorded objects. */
int rec_plan_compare_set(rec_plan *p, mf_objects *set);
/* The confirm step's rule: applying changes nothing when the server's dry-run answer equals the
 * live object apart from managedFields, resourceVersion and generation. */
bool rec_dry_run_is_noop(const json_t *live, const json_t *dry);

void rec_progress(rec_workspace *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* hooks.c: keeps the plan's hooks (obj is stolen; skipped hooks are dropped), frees them, and runs
 * one phase's hooks in weight order: delete per policy, apply, wait for a Job or Pod to finish,
 * delete per policy. Returns GITOPS_OK, or an error naming the first hook that failed (the
 * phase stops there). Never deletes an object that is not labelled as this environment's. */
void rec_hook_add(rec_plan *p, json_t *obj, const struct mf_object *mo, const char *source);
void rec_hooks_free(rec_plan *p);
int rec_hooks_run(rec_workspace *ws, rec_plan *p, enum mf_hook phase, bool dry_run);

/* inventory.c: the inventory of one pipeline and environment, read and written compare-and-swap. */
struct rec_inventory {
	kube_client *c;
	char *pipeline, *env, *repository, *name;
	char root_commit[41];
	json_t *cm;   /* the ConfigMap as read or last written (NULL: does not exist) */
	json_t *doc;  /* its inventory.json */
	bool legacy;  /* doc came from an earlier release's inventory (not written yet) */
};
int rec_inventory_open(rec_inventory **out, rec_workspace *ws, kube_client *c, const struct mf_environment *env);
void rec_inventory_free(rec_inventory *inv);
/* Re-reads the ConfigMap. */
int rec_inventory_reload(rec_inventory *inv);
/* The resourceVersion read, or NULL when the ConfigMap does not exist. */
const char *rec_inventory_rv(const rec_inventory *inv);
/* Applies `edit` to the document and writes it with the resourceVersion read as precondition;
 * on a conflict re-reads and applies `edit` again (so edits must be idempotent changes, not
 * replacements of the whole list). Nothing is written when the edit changes nothing. */
typedef void (*rec_inventory_edit_fn)(json_t *doc, void *ud);
int rec_inventory_edit(rec_inventory *inv, rec_inventory_edit_fn edit, void *ud);
char *rec_inventory_name(const char *pipeline, const char *env);
/* The pure steps of reading and writing it (exported for the unit tests): parses ConfigMap
 * `cm`'s inventory.json (either form) into the `objects` form (GITOPS_EINVALID naming ConfigMap
 * `name` when missing or damaged); checks that inv->doc is this pipeline's, environment's and
 * repository's (GITOPS_EINVALID otherwise: a foreign inventory is never written over); and
 * serializes a document (sorted keys), in the grouped form when the objects form exceeds
 * REC_INVENTORY_MAX_BYTES (*len above it: too large either way). */
int rec_inventory_parse(json_t **doc, const json_t *cm, const char *name);
int rec_inventory_check(const rec_inventory *inv);
char *rec_inventory_encode(const json_t *doc, size_t *len);
/* A ConfigMap holds at most 1 MiB (data and metadata together); leave room for metadata. */
#define REC_INVENTORY_MAX_BYTES (1000 * 1000)

/* The sync lock: a Lease per pipeline and environment, renewed by a thread while held. */
typedef struct rec_lock rec_lock;
int rec_lock_acquire(rec_lock **out, rec_workspace *ws, kube_client *c, const char *pipeline, const char *env,
		     long timeout_ms);
/* The lock's pure parts (exported for the unit tests): may Lease `lease` (as read) be taken,
 * its record having stayed unchanged for `unchanged_ms` on this host's clock (no holder, a
 * holder process on this host that is gone, or unchanged for its leaseDurationSeconds)? And the
 * body written to take or renew it as `holder`: `old` (NULL: a new Lease) with its
 * resourceVersion kept as the precondition; acquireTime set anew only when the holder changes.
 * Caller decrefs. */
bool rec_lock_free(const json_t *lease, long long unchanged_ms);
json_t *rec_lock_body(const char *name, const char *holder, const json_t *old);
/* lease.c, the daemon's leader election: may replica `identity` write Lease `lease` (read at
 * now_ms, its record unchanged since seen_ms on the local clock; default_ms when it names no
 * duration), holding `held` Leases of a fair `share`? Its own: always (a renewal, *mine set);
 * another's: only when free (no holder, or expired) and held < share. */
bool rec_lease_may_take(const json_t *lease, const char *identity, long long seen_ms, long long now_ms,
			long long default_ms, size_t held, size_t share, bool *mine);
/* True when another holder took the lock over (this one stopped renewing in time). */
bool rec_lock_lost(rec_lock *l);
void rec_lock_release(rec_lock *l);

/* workspace.c */
const char *rec_workspace_repo_url(const rec_workspace *ws);
/* GITOPS_OK when `sha` (40 hex) is a commit of the repository. */
int rec_workspace_has_commit(rec_workspace *ws, const char *sha);
/* "group/kind/namespace/name" of an object or an inventory reference: a map key, never taken
 * apart again (struct rec_ref carries the parts). Caller frees. */
char *rec_object_key(const json_t *obj);
char *rec_ref_key(const json_t *ref);
char *rec_make_key(const char *api_version, const char *kind, const char *ns, const char *name);
/* Fills *r from an object's (or an inventory entry's) apiVersion, kind, metadata.namespace or
 * namespace, and name; the strings are copied into *mem, which the caller frees. */
void rec_ref_of(struct rec_ref *r, char **mem, const json_t *obj);
/* The same from the four strings (ns NULL: none). */
void rec_ref_from(struct rec_ref *r, char **mem, const char *api_version, const char *kind, const char *ns,
		  const char *name);

#endif
