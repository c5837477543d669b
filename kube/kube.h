/* kube: the Kubernetes client. Connection settings from kubeconfig or in-cluster files, a
 * libcurl transport (TLS, retries, rate limit, HTTP/2), discovery, get/list/apply/delete/watch,
 * and a watch-fed object cache. It knows nothing of git or of gitops' own concepts. */
#ifndef GITOPS_KUBE_H
#define GITOPS_KUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"

/* ---- Threads and ownership, per type -----------------------------------------------------
 *
 * kube_config      immutable once loaded: readable from any thread. The caller frees it with
 *                  kube_config_free, unless kube_client_new took it (it always does, also on
 *                  failure).
 * kube_client      thread-safe: every call may be made from any number of threads at once
 *                  (connection pool, credentials, rate limiter, counters and discovery table each
 *                  have their own lock). One client per cluster is the rule; the daemon's threads
 *                  share it. kube_client_free only once no call on it is in flight and every
 *                  kube_cache on it was freed.
 * kube_resource    entries of the client's discovery table: immutable, never freed before the
 *                  client, so pointers may be kept and shared across threads and refreshes.
 * kube_cache       its own thread fills it; kube_cache_get/list/size/stats may be called from any
 *                  thread (one lock) and return copies the caller owns. on_event runs on the
 *                  cache's thread: it must not call kube_cache_free on its own cache.
 * json_t results   every json_t returned is the caller's (json_decref). jansson values are not
 *                  locked: one thread changes a value at a time; reading a value that no thread
 *                  changes is safe from several threads.
 * Errors           the last error (gitops_error_last) is per thread, so a failed call on one
 *                  thread never overwrites another thread's message.
 * Waits            the client's cancel flag (kube_client_options.cancel, from a gitops_cancel)
 *                  stops retries, their backoff sleeps and kube_wait_crds at once. */

/* ---- Configuration ---------------------------------------------------------------------- */

/* Resolved connection settings for one cluster/user pair. Opaque. */
typedef struct kube_config kube_config;

struct kube_config_options {
	/* kubeconfig file(s), ':'-separated like $KUBECONFIG. NULL: $KUBECONFIG, else
	 * ~/.kube/config, else the in-cluster service account. */
	const char *kubeconfig;
	/* Context name; NULL: current-context. */
	const char *context;
	/* Use the in-cluster service account even when a kubeconfig exists. */
	bool in_cluster;
};

/* The environment lookups above ($KUBECONFIG, $HOME, the in-cluster KUBERNETES_SERVICE_HOST/PORT
 * and service account files) are kubectl's own, read-only, and the only ones kube/ makes. */
/* Loads the configuration. Errors: GITOPS_ENOTFOUND (no kubeconfig, unknown context/cluster/
 * user), GITOPS_EPARSE (malformed kubeconfig, naming the file), GITOPS_EIO.
 * The caller owns *out; free with kube_config_free. */
int kube_config_load(kube_config **out, const struct kube_config_options *opt);
void kube_config_free(kube_config *cfg);
/* The API server URL (e.g. "https://127.0.0.1:6443"); owned by cfg. */
const char *kube_config_server(const kube_config *cfg);
/* The context name in use ("in-cluster" for the service account); owned by cfg. */
const char *kube_config_context(const kube_config *cfg);

/* ---- Client ----------------------------------------------------------------------------- */

typedef struct kube_client kube_client;

struct kube_client_options {
	double qps;          /* client-side rate limit, requests per second; 0: 50 */
	int burst;           /* bucket size; 0: 100 */
	long timeout_ms;     /* per request (not watches); 0: 30000 */
	int max_retries;     /* on connection errors, 429 and 5xx; 0: 5, -1: none */
	/* When set (from any thread), retries and their backoff sleeps stop at once and the call
	 * fails with GITOPS_ETIMEOUT ("cancelled"); a request in flight still ends by its timeout.
	 * May be NULL; must outlive the client. */
	const atomic_bool *cancel;
};

/* Creates a client; takes ownership of cfg (also on failure). Thread-safe: calls may be made
 * from several threads at once; connections, TLS sessions and DNS are shared. The caller owns
 * *out; free with kube_client_free. */
int kube_client_new(kube_client **out, kube_config *cfg, const struct kube_client_options *opt);
void kube_client_free(kube_client *c);

/* Counters since the client was created. */
struct kube_stats {
	unsigned long requests;  /* HTTP requests sent, retries included */
	unsigned long retries;
	unsigned long writes;    /* PATCH/POST/PUT/DELETE that were not dry runs */
	unsigned long http2;     /* requests answered over HTTP/2 */
	unsigned long connects;  /* new connections opened (TLS handshakes) */
};
void kube_client_stats(const kube_client *c, struct kube_stats *out);

/* A raw request to `path` (e.g. "/api/v1/namespaces"). `body` may be NULL. On any HTTP reply
 * returns 0 with *status set and *out the parsed JSON body (NULL when empty, or when an error
 * status came with a body that is not JSON; the caller owns it, json_decref). Returns an error
 * when no reply was obtained, and GITOPS_EPARSE (*status set, no text of the reply in the
 * message) for a 2xx reply that is not JSON: a success is never read as one with nothing in it. */
int kube_request(kube_client *c, const char *method, const char *path, const char *content_type,
		 const char *body, long *status, json_t **out);

/* ---- Discovery -------------------------------------------------------------------------- */

/* One served resource, e.g. {"apps","v1","Deployment","deployments",namespaced}. */
struct kube_resource {
	const char *group;     /* "" for the core group */
	const char *version;
	const char *kind;
	const char *resource;  /* plural, used in URLs */
	bool namespaced;
};

/* Maps apiVersion ("v1", "apps/v1") and kind to its resource, refreshing discovery once on a
 * miss. *out points into the client's table, valid until kube_client_free.
 * Errors: GITOPS_ENOTFOUND ("no resource for kind X in apiVersion Y"). */
int kube_resource_for(const struct kube_resource **out, kube_client *c, const char *api_version,
		      const char *kind);
/* Re-reads discovery (aggregated v2 when served, else per-group lists). */
int kube_discovery_refresh(kube_client *c);
/* The served API versions as helm's .Capabilities.APIVersions lists them for `helm install`:
 * every "group/version" ("v1" for the core group) and "group/version/Kind", sorted. Loads
 * discovery when it has not been. *out is a JSON array of strings (caller owns: json_decref).
 * Thread-safe like discovery itself (the client's discovery lock). */
int kube_api_versions(json_t **out, kube_client *c);
/* The server's version (GET /version: gitVersion, e.g. "v1.36.3"). The caller frees *out. */
int kube_server_version(char **out, kube_client *c);
/* Waits until the CustomResourceDefinitions crds[0..n) (the objects as applied: spec.group,
 * spec.names, spec.versions) are all Established and every version they serve is discoverable,
 * together: each poll reads the small resource list of each group-version still awaited
 * (GET /apis/G/V) and, every 2 s, the CRDs not listed there yet one after another until one is
 * not Established (discovery can lag
 * seconds behind the CRD's Established condition, from which the apiserver serves it). A kind
 * listed or Established goes into the client's discovery table, so no full discovery refresh
 * is needed.
 * ready (may be NULL) gets, per CRD, whether it is served. GITOPS_ETIMEOUT after timeout_ms
 * (the message names the CRDs not served and the reason their conditions give), or as soon as
 * the client's cancel flag is set ("wait cancelled"). Thread-safe like every call on a client. */
int kube_wait_crds(kube_client *c, const json_t *const *crds, size_t n, bool *ready, long timeout_ms);
/* kube_wait_crds for one CRD known by name (read from the server first). */
int kube_wait_crd(kube_client *c, const char *name, long timeout_ms);

/* ---- Operations ------------------------------------------------------------------------- */

/* The URL path of an object or collection: name may be NULL (collection), ns may be NULL
 * (cluster-scoped, or all namespaces). The caller owns the string (free). */
char *kube_path(const struct kube_resource *r, const char *ns, const char *name);

/* GET one object. The caller owns *out. GITOPS_ENOTFOUND when absent. */
int kube_get(json_t **out, kube_client *c, const char *api_version, const char *kind,
	     const char *ns, const char *name);

/* Lists objects (every page: see kube_list_pages), optionally in one namespace and with a label
 * selector. *items is a JSON array (caller owns); *resource_version (caller frees, may be
 * NULL to ignore) is the list's resourceVersion to start a watch from. */
int kube_list(json_t **items, char **resource_version, kube_client *c,
	      const struct kube_resource *r, const char *ns, const char *label_selector);

/* kube_list page by page: one GET without a limit, read as it arrives (the apiserver streams a
 * list's items), parsed on a helper thread into pages of about 512 kB of JSON, each in a JSON
 * arena of its own (common.h: keep what the callback takes for long as a copy, or it pins the
 * arena's chunk); `page` gets each page's items (borrowed for the call: take a reference to
 * keep one) while the helper parses the next. Memory: two pages parsed, whatever the list's
 * size (the helper stops reading until the callback is done with the page before; before the
 * callback's first call it keeps the text unparsed instead, so the transfer never waits on a
 * caller that has not come yet). `restart` is called when the transport retried the GET
 * (connection lost, timeout, 429, 5xx): what the pages gave so far must be dropped (NULL only
 * for a caller that does not mind objects given twice). A list the apiserver answers with one
 * page of (a continue token) is an error. *resource_version (may be NULL) as for
 * kube_list. A reply that cannot be read (malformed, nested too deep, cut short) is an error
 * naming the kind, never a shorter list. Thread-safe like every call on a client; the
 * callbacks run on the calling thread. */
int kube_list_pages(kube_client *c, const struct kube_resource *r, const char *ns, const char *label_selector,
		    void (*page)(void *ud, json_t *items), void (*restart)(void *ud), void *ud,
		    char **resource_version);
/* kube_list_pages in two steps, so the apiserver works while the caller does something else:
 * kube_list_ahead_start sends the GET at once (read on a helper thread, which parses one page
 * ahead and keeps the rest of the text as it comes); kube_list_ahead_pages then reads the list as kube_list_pages does, and
 * frees `la`; kube_list_ahead_free drops a list that will not be read (its transfer is aborted).
 * A kube_list_ahead belongs to the thread that started it; several may be under way at once,
 * each holding at most one page parsed and its text until read. */
typedef struct kube_list_ahead kube_list_ahead;
kube_list_ahead *kube_list_ahead_start(kube_client *c, const struct kube_resource *r, const char *ns,
				       const char *label_selector);
int kube_list_ahead_pages(kube_list_ahead *la, void (*page)(void *ud, json_t *items), void (*restart)(void *ud),
			  void *ud, char **resource_version);
void kube_list_ahead_free(kube_list_ahead *la);
/* What it lists: the resource and namespace (NULL: cluster-scoped or every namespace). */
const struct kube_resource *kube_list_ahead_resource(const kube_list_ahead *la);
const char *kube_list_ahead_namespace(const kube_list_ahead *la);

struct kube_apply_options {
	const char *field_manager; /* NULL: "gitops" */
	bool force;                /* take over conflicting fields */
	bool dry_run;              /* dryRun=All: nothing persisted */
	bool strict;               /* fieldValidation=Strict: unknown/duplicate fields fail */
};

/* Server-side apply of `obj` (apiVersion, kind, metadata.name, [metadata.namespace]).
 * *out (may be NULL to ignore) gets the resulting object (caller owns); *created (may be NULL)
 * is true when the server created it (201). Errors decoded from the Status reply:
 * GITOPS_ECONFLICT (message names the other manager and the fields), GITOPS_EINVALID (with the
 * causes), GITOPS_EFORBIDDEN, GITOPS_ENOTFOUND (namespace or kind), ... */
int kube_apply(json_t **out, bool *created, kube_client *c, const json_t *obj,
	       const struct kube_apply_options *opt);

/* The outcome of one object of kube_apply_batch. */
struct kube_apply_result {
	int rc;        /* 0, or the error code kube_apply would return */
	bool created;  /* 201 */
	char *error;   /* the one-line message when rc != 0 (caller frees) */
};

/* Called as each object of a batch is done (in completion order), on the caller's thread;
 * results[i] is final when it is called. */
typedef void (*kube_apply_done_fn)(void *ud, size_t i, const struct kube_apply_result *result);

/* Applies n objects concurrently, multiplexed as HTTP/2 streams on one connection (at most
 * max_in_flight at once; 0: 32), with kube_apply's semantics, retries and messages for each.
 * results[i] is object i's outcome (free each .error). `done` may be NULL. Returns 0 (outcomes
 * are per object). */
int kube_apply_batch(struct kube_apply_result *results, kube_client *c, json_t *const *objs, size_t n,
		     const struct kube_apply_options *opt, int max_in_flight, kube_apply_done_fn done, void *ud);
/* kube_apply_batch that also keeps each object's resulting object (the server's answer; with
 * dry_run, what applying would make it) in outs[i], NULL when it failed. The caller owns them. */
int kube_apply_batch_out(struct kube_apply_result *results, json_t **outs, kube_client *c, json_t *const *objs,
			 size_t n, const struct kube_apply_options *opt, int max_in_flight, kube_apply_done_fn done,
			 void *ud);

/* Compare-and-swap writes (PUT/POST), for objects read, changed and written back (the
 * inventory, locks). kube_update replaces `obj`, which must carry metadata.resourceVersion (the
 * version it was read at): when the object changed since, the server refuses and the return is
 * GITOPS_ECONFLICT (409, "the object has been modified"): re-read, merge and try again. No
 * other failure of kube_update is GITOPS_ECONFLICT. kube_create creates `obj`; GITOPS_EEXISTS
 * when it exists already. *out (may be NULL) gets the stored object, with its new
 * resourceVersion (caller owns). Thread-safe like every call on a client. */
int kube_update(json_t **out, kube_client *c, const json_t *obj);
int kube_create(json_t **out, kube_client *c, const json_t *obj);

/* The resources discovery found served (current), in discovery order (the preferred version
 * of a group first). *out (caller frees the array, not the entries) points into the client's
 * table, valid until kube_client_free. Discovery is loaded first when it never was. */
int kube_resources(const struct kube_resource ***out, size_t *n, kube_client *c);

/* Deletes an object. propagation: "Background", "Foreground", "Orphan" or NULL (server
 * default). Deleting an absent object is GITOPS_ENOTFOUND. */
int kube_delete(kube_client *c, const char *api_version, const char *kind, const char *ns,
		const char *name, const char *propagation, bool dry_run);

/* ---- Watch and cache -------------------------------------------------------------------- */

enum kube_event { KUBE_ADDED, KUBE_MODIFIED, KUBE_DELETED };
const char *kube_event_name(enum kube_event ev);

/* Called on the cache's thread for every change. `obj` (and `old` for MODIFIED, else NULL)
 * are borrowed for the duration of the call. */
typedef void (*kube_cache_fn)(void *ud, enum kube_event ev, const json_t *obj, const json_t *old);

struct kube_cache_options {
	const char *namespace;       /* NULL: all namespaces */
	const char *label_selector;  /* NULL: all objects */
	/* Keep only this manager's managedFields entry (memory); NULL keeps none, "*" keeps all. */
	const char *keep_manager;
	kube_cache_fn on_event;      /* may be NULL */
	void *ud;
};

/* A list-then-watch cache of one resource. It relists on 410 (HTTP or in-stream), re-watches
 * from the last resourceVersion (bookmarks included) when the server closes the stream, and
 * retries with backoff while the server is unreachable. Opaque. */
typedef struct kube_cache kube_cache;

/* Starts the cache's thread. The client must outlive the cache. The caller owns *out; free
 * with kube_cache_free (which stops the thread). */
int kube_cache_start(kube_cache **out, kube_client *c, const struct kube_resource *r,
		     const struct kube_cache_options *opt);
/* Waits until the first list has been loaded. GITOPS_ETIMEOUT after timeout_ms. */
int kube_cache_wait_synced(kube_cache *kc, long timeout_ms);
/* A copy of one object (caller owns, json_decref), or NULL. ns is NULL for cluster-scoped. */
json_t *kube_cache_get(kube_cache *kc, const char *ns, const char *name);
/* All objects as a new JSON array (caller owns). */
json_t *kube_cache_list(kube_cache *kc);
size_t kube_cache_size(kube_cache *kc);

struct kube_cache_stats {
	unsigned long lists;       /* full lists done (1 + relists) */
	unsigned long relists_410; /* relists caused by an expired resourceVersion */
	unsigned long watches;     /* watch requests opened */
	unsigned long events;      /* callbacks made */
	unsigned long bookmarks;
};
void kube_cache_stats(kube_cache *kc, struct kube_cache_stats *out);
/* Test hook: makes the next watch resume from `rv` and ends the current stream now. */
void kube_cache_debug_resume_from(kube_cache *kc, const char *rv);
void kube_cache_free(kube_cache *kc);

#endif
