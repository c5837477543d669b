/* reconcile: definitions shared by the module's files (not part of the public API). */
#ifndef GITOPS_RECONCILE_INTERNAL_H
#define GITOPS_RECONCILE_INTERNAL_H

#include <pthread.h>

#include "reconcile/reconcile.h"

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
	mf_renderer *renderer;
	struct rec_client_entry *clients;
	size_t n_clients;
	pthread_mutex_t progress_lock;
};

/* One planned object, with what the sync engine needs beyond the public fields. */
struct rec_entry {
	struct rec_item item;
	const struct kube_resource *resource; /* NULL: kind not served yet (its CRD is in this plan) */
	char *key;                             /* group/kind/namespace/name */
	char *app_s, *source_s;
	bool written;                          /* applied or pruned by the last sync */
	bool failed;
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
	size_t n;
	json_t *inventory;  /* the inventory document read before the plan */
	bool inventory_exists;
	char *only_app;
};

void rec_progress(rec_workspace *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* hooks.c: keeps the plan's hooks (obj is stolen; skipped hooks are dropped), frees them, and runs
 * one phase's hooks in weight order: delete per policy, apply, wait for a Job or Pod to finish,
 * delete per policy. Returns GITOPS_OK, or an error naming the first hook that failed (the
 * phase stops there). Never deletes an object that is not labelled as this environment's. */
void rec_hook_add(rec_plan *p, json_t *obj, const struct mf_object *mo, const char *source);
void rec_hooks_free(rec_plan *p);
int rec_hooks_run(rec_workspace *ws, rec_plan *p, enum mf_hook phase, bool dry_run);

/* inventory.c */
int rec_inventory_load(json_t **doc, bool *exists, kube_client *c, const char *env);
int rec_inventory_store(kube_client *c, const char *env, json_t *doc, bool exists);
/* "group/kind/namespace/name" of an object or an inventory reference. Caller frees. */
char *rec_object_key(const json_t *obj);
char *rec_ref_key(const json_t *ref);

#endif
