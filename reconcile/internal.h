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
	mf_config_log *cfglog; /* gitops.yaml over time, for history/'s verification (lazy) */
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

struct rec_plan {
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

/* inventory.c */
int rec_inventory_load(json_t **doc, bool *exists, kube_client *c, const char *env);
int rec_inventory_store(kube_client *c, const char *env, json_t *doc, bool exists);
/* "group/kind/namespace/name" of an object or an inventory reference. Caller frees. */
char *rec_object_key(const json_t *obj);
char *rec_ref_key(const json_t *ref);

#endif
