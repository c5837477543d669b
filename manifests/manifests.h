/* manifests: turns "this environment at this commit" into Kubernetes objects: the git source
 * (libgit2 mirror), the pipeline config (gitops.yaml), renderers (plain, kustomize, helm), YAML ->
 * jansson objects read the way kubectl reads them, and the render cache.
 *
 * Conventions: every public symbol starts with mf_; functions return 0 or a negative
 * enum gitops_error code with the message in gitops_error_last() (it names file:line where there
 * is one); out-parameters come first; every *_free accepts NULL. */
#ifndef GITOPS_MANIFESTS_H
#define GITOPS_MANIFESTS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "common/common.h"

/* ---- Threads and ownership, per type -----------------------------------------------------
 *
 * mf_config        immutable once parsed (mf_config_parse/load): readable from any thread; one
 *                  owner frees it (mf_config_free) once no thread reads it.
 * mf_config_log    not thread-safe (lazy walk and cache): one per thread; borrows its mf_repo.
 * mf_repo          not thread-safe (a libgit2 repository): one per thread, opened on the same
 *                  mirror directory is fine (the mirror's fetch is locked on disk).
 * mf_renderer      not thread-safe (its in-memory cache and checkout): one per thread; the disk
 *                  render cache under data_dir may be shared by renderers of several threads and
 *                  processes (entries are written atomically).
 * mf_objects       not thread-safe: one owner builds it; once built, reading it (mf_objects_at,
 *                  the objects' JSON) from several threads is safe while nobody adds to it.
 * YAML and keys    mf_yaml_* (common/yaml.c), mf_key_parse_*: pure, reentrant.
 * Process state    the library reads the environment ($GITOPS_DATA_DIR, $XDG_CACHE_HOME, $HOME,
 *                  $TMPDIR, the git credentials $GITOPS_GIT_*, $GITOPS_SSH_*, the renderer
 *                  timeout): no thread may call setenv while any thread uses manifests/.
 * Every returned string or object is the caller's, to free as each function says. */

/* ---------------------------------------------------------------------------------------------
 * Limits applied to every manifest read (hazards: huge files, alias bombs, deep nesting).
 * A zero field means "use the default" (MF_DEFAULT_*). */
#define MF_DEFAULT_MAX_FILE_SIZE (8u * 1024 * 1024) /* bytes per manifest file / renderer output */
#define MF_DEFAULT_MAX_NODES (1000000u)             /* YAML nodes per document, aliases expanded */
#define MF_DEFAULT_MAX_ALIAS_NODES (100000u)        /* nodes copied by alias expansion per document */
#define MF_DEFAULT_MAX_DEPTH (200u)                 /* nesting depth */
/* (the same as common/yaml.h's GITOPS_YAML_DEFAULT_*: the reader is common/yaml.c) */
#define MF_DEFAULT_TIMEOUT_MS (60000)               /* renderer process timeout */

struct mf_limits {
	size_t max_file_size;
	size_t max_nodes;
	unsigned max_depth;
	size_t max_alias_nodes;
};

/* ---------------------------------------------------------------------------------------------
 * YAML values (common/yaml.c's reader, the one for manifests, gitops.yaml and kubeconfig alike):
 * one document or a stream, read the way kubectl (sigs.k8s.io/yaml, YAML 1.1) reads
 * them: yes/no/on/off/y/n are booleans, unquoted 0755 is octal (493), 0x1F hex, 1_000 is 1000,
 * integral numbers become integers, ints beyond int64 become reals, quoted scalars stay strings,
 * timestamps stay strings, aliases and << merge keys are expanded (bounded by max_alias_nodes;
 * go-yaml v2 merge order: a later merge overwrites). A JSON file (name ending .json) is read as
 * JSON.
 * Duplicate keys, invalid UTF-8 and oversize input are errors naming file:line:col. */

/* Called once per non-empty document with the document's value (borrowed: json_incref to keep)
 * and the 1-based line where it starts. A non-zero return stops the parse and is returned. */
typedef int (*mf_yaml_doc_fn)(void *data, json_t *doc, int line);

/* Parses a YAML (or JSON) stream. `file` is used in messages only. `lim` may be NULL. */
int mf_yaml_parse_stream(const char *text, size_t len, const char *file,
			 const struct mf_limits *lim, mf_yaml_doc_fn fn, void *data);
/* Parses a single-document YAML text into *out (the caller owns it: json_decref). An empty
 * document gives a JSON null. */
int mf_yaml_parse(json_t **out, const char *text, size_t len, const char *file,
		  const struct mf_limits *lim);
/* Writes `value` as block YAML (libfyaml emitter) to `out`, quoting every string that a YAML 1.1
 * reader would take for something else. Appends to `out`. */
int mf_yaml_emit(gitops_buf *out, json_t *value);

/* ---------------------------------------------------------------------------------------------
 * Object sets: the desired objects of one environment (or one app), each with its source. */

typedef struct mf_objects mf_objects;

/* Hooks, as Argo CD reads them from `argocd.argoproj.io/hook` (PreSync, PostSync, Skip) or, when
 * that is absent, from Helm's `helm.sh/hook`: pre-install/pre-upgrade run before the app's other
 * objects, post-install/post-upgrade after them; test, test-success, test-failure and the
 * delete and rollback hooks are never applied. Hooks are not part of the desired state: never
 * drift, never in the inventory, never pruned. */
enum mf_hook {
	MF_HOOK_NONE = 0,  /* an ordinary object */
	MF_HOOK_PRE_SYNC,  /* applied (and waited for) before the app's other objects */
	MF_HOOK_POST_SYNC, /* applied after them */
	MF_HOOK_SKIP,      /* never applied */
};
/* Delete policies (helm.sh/hook-delete-policy, argocd.argoproj.io/hook-delete-policy); none
 * given means before-hook-creation, as in both tools. */
#define MF_HOOK_DELETE_BEFORE_CREATION 1u
#define MF_HOOK_DELETE_SUCCEEDED 2u
#define MF_HOOK_DELETE_FAILED 4u

/* One object of a set. Everything is owned by the set; valid until the set is freed.
 * A compact object (only in a set rendered with mf_render_env_options.compact, from the render
 * cache) has no tree yet: obj is NULL, text is its JSON as rendered (namespace not filled in) and
 * the four identity fields name it (namespace_ as mf_objects_resolve decided: NULL when it has
 * none); mf_object_parse (or the plan, once it took the text) turns it into the object. A
 * compact object is never a hook or a CustomResourceDefinition (those are always parsed). */
struct mf_object {
	json_t *obj;            /* the object (borrowed from the set); NULL for a compact object */
	const char *text;       /* a compact object's JSON text (text_len bytes), else NULL */
	size_t text_len;
	const char *api_version, *kind, *namespace_, *name; /* a compact object's identity */
	const char *text_ns;    /* a compact object's namespace as its text has it (NULL: none) */
	const char *app;        /* app name, "" when none */
	const char *file;       /* source file, relative to the repository (or renderer name) */
	int line;               /* 1-based line of the document in `file` */
	const char *default_ns; /* the namespace filled in when the kind is namespaced, or NULL */
	enum mf_hook hook;      /* from the object's annotations */
	int hook_weight;        /* helm.sh/hook-weight or argocd.argoproj.io/sync-wave: lower first */
	unsigned hook_delete;   /* MF_HOOK_DELETE_* */
};

/* Scope lookup for kinds that neither the built-in table nor a CRD of the same set knows.
 * Sets *namespaced and returns 0, or returns GITOPS_ENOTFOUND (the kind is then taken as
 * namespaced). */
typedef int (*mf_scope_fn)(void *data, const char *api_version, const char *kind, bool *namespaced);

/* Creates an empty set; free with mf_objects_free. */
int mf_objects_new(mf_objects **out);
void mf_objects_free(mf_objects *set);
size_t mf_objects_count(const mf_objects *set);
/* The i-th object (i < count), owned by the set. */
const struct mf_object *mf_objects_at(const mf_objects *set, size_t i);

/* Reads every document of a manifest text into the set: List kinds flattened, empty documents
 * skipped; every object needs apiVersion, kind and metadata.name. `app` and `default_ns`
 * (may be NULL) are recorded on each object. `lim` may be NULL. */
int mf_objects_add_yaml(mf_objects *set, const char *text, size_t len, const char *file,
			const char *app, const char *default_ns, const struct mf_limits *lim);
/* Adds one object (the set takes a new reference; the caller keeps its own). Validates and
 * flattens like mf_objects_add_yaml. */
int mf_objects_add(mf_objects *set, json_t *obj, const char *file, int line, const char *app,
		   const char *default_ns);
/* Adds a compact object (see struct mf_object): `text` (len bytes of JSON) is taken (the set
 * frees it), identity as read from the text (namespace NULL when it has none). For the render
 * cache, whose entries were checked when they were written: nothing is validated here. */
void mf_objects_add_compact(mf_objects *set, char *text, size_t len, const char *api_version, const char *kind,
			    const char *namespace_, const char *name, const char *file, int line, const char *app,
			    const char *default_ns);
/* Takes the text of compact object i (the caller frees it; *len its length); the entry keeps its
 * identity but can no longer be parsed. NULL when object i is not compact. */
char *mf_objects_take_text(mf_objects *set, size_t i, size_t *len);
/* The object of a compact object's text, with metadata.namespace set as resolved (removed when
 * `namespace_` is NULL): a new reference. NULL with GITOPS_EINVALID when the text is not JSON or
 * not the object its identity names (apiVersion, kind, name, and `text_ns`: its own namespace as
 * the cache's row says the text has it, NULL for none), or is a hook (a damaged or altered render
 * cache entry: `source` names it in the message). */
json_t *mf_compact_parse(const char *text, size_t len, const char *api_version, const char *kind,
			 const char *namespace_, const char *name, const char *text_ns, const char *source);
/* The object of any entry: a new reference to obj, or mf_compact_parse of its text. */
json_t *mf_object_parse(const struct mf_object *o);
/* Moves every object of `from` to the end of `set`; `from` is left empty. */
void mf_objects_take(mf_objects *set, mf_objects *from);
/* Fills metadata.namespace from each object's default_ns for namespaced kinds (built-in table of
 * cluster-scoped kinds, CRDs in the set, then `scope` if given: may be NULL), and fails with
 * GITOPS_EINVALID naming both sources when one object (group, kind, namespace, name) appears
 * twice. Cluster-scoped objects keep no namespace. */
int mf_objects_resolve(mf_objects *set, mf_scope_fn scope, void *scope_data);
/* True when the kind is cluster-scoped per the built-in table (group from apiVersion). */
bool mf_kind_is_cluster_scoped(const char *api_version, const char *kind);

/* Masks the set's Secrets for output meant to be read, with gitops_mask_object (common/mask.h):
 * data and stringData values (a scalar data/stringData as a whole) and the last-applied
 * annotation become "***"; the keys stay. Returns how many values were masked. */
size_t mf_objects_mask_secrets(mf_objects *set);

/* Serializations. YAML: documents separated by "---"; JSON: always a kubectl-style List
 * {"apiVersion":"v1","kind":"List","items":[...]}, even for one object. Appended to `out`. */
int mf_objects_to_yaml(gitops_buf *out, const mf_objects *set);
int mf_objects_to_json(gitops_buf *out, const mf_objects *set);

/* ---------------------------------------------------------------------------------------------
 * Pipeline config (gitops.yaml). Plain structs, read-only for callers; owned by mf_config. */

enum mf_renderer_kind {
	MF_RENDERER_AUTO = 0, /* kustomization.yaml -> kustomize, Chart.yaml -> helm, else plain */
	MF_RENDERER_PLAIN,
	MF_RENDERER_KUSTOMIZE,
	MF_RENDERER_HELM,
};
const char *mf_renderer_name(enum mf_renderer_kind kind);

struct mf_ignore_rule {
	char *group, *kind, *name, *namespace; /* NULL: any */
	char **json_pointers;                  /* RFC 6901 pointers, each starting with '/' */
	size_t n_json_pointers;
	int line;
};

struct mf_app {
	char *name;
	char *path;         /* directory relative to the repository root, no leading '/' or '..' */
	enum mf_renderer_kind renderer;
	char *namespace;    /* default namespace for this app; NULL: the environment's */
	char *release_name; /* helm release name; NULL: the app name */
	char **values;      /* helm values files, relative to the repository root */
	size_t n_values;
	int line;
};

struct mf_approver {
	char *name;
	char *key; /* Ed25519 public key as written in the config */
};

/* A reporter (Ed25519 key from gitops keygen, "ed25519:<base64>") or a commit signer (OpenSSH
 * line "ssh-ed25519 AAAA... [comment]"); the key is checked when the config is parsed. */
struct mf_signer {
	char *name;
	char *key;               /* as written in the config */
	unsigned char raw[32];   /* the Ed25519 public key */
	unsigned char blob[51];  /* commit signers: the SSH wire encoding (sshsig's publickey) */
	int key_line;
};

struct mf_environment {
	char *name;
	char *track;     /* branch followed; NULL when the environment is promoted `from` another */
	char *from;      /* upstream environment; NULL for tracking environments */
	char *namespace; /* default namespace for namespaced objects without one; may be NULL */
	char *cluster_context;    /* kubeconfig context; NULL: current context / in-cluster */
	char *cluster_kubeconfig; /* kubeconfig path; NULL: $KUBECONFIG / default */
	struct mf_app *apps;
	size_t n_apps;
	bool sync_auto, sync_prune, sync_self_heal;
	bool sync_adopt;  /* take over existing objects no pipeline owns (sync --adopt) */
	int approval_required;
	struct mf_approver *approvers;
	size_t n_approvers;
	bool rollback_on_failure;
	long long rollback_health_timeout_ms;
	struct mf_ignore_rule *ignore; /* the file's top-level rules first, then the environment's */
	size_t n_ignore;
	int line;
	/* reporters: whose signed sync/health records count here (promotion gate, rollback);
	 * none listed: any record counts. commit_signers: whose git SSH signature a commit needs
	 * to deploy here; none listed: any commit. */
	struct mf_signer *reporters;
	size_t n_reporters;
	struct mf_signer *commit_signers;
	size_t n_commit_signers;
};

/* One outgoing notification sink (`notifications:` in gitops.yaml). Its URL and secret are
 * never in the file: each comes from an environment variable or a file named here. */
enum mf_notify_kind { MF_NOTIFY_WEBHOOK, MF_NOTIFY_SLACK };
struct mf_notification {
	char *name;                 /* names the sink in logs (never the URL) */
	enum mf_notify_kind kind;   /* webhook: signed JSON; slack: incoming-webhook format */
	char *url_env, *url_file;   /* exactly one is set */
	char *secret_env, *secret_file; /* webhook: exactly one is set; slack: none */
	char **events;              /* event types (e.g. sync.failed) or "*"; checked by reconcile/ */
	size_t n_events;
	char **envs;                /* environments; none: every one */
	size_t n_envs;
	int line;
};

struct mf_config {
	char *file;   /* as given to the parser, for messages */
	char *branch; /* main branch, default "main" */
	char *name;   /* pipeline name (DNS label); NULL: derived from the repository (reconcile/) */
	struct mf_environment *envs;
	size_t n_envs;
	struct mf_notification *notifications;
	size_t n_notifications;
};

/* Parses gitops.yaml text; `file` names it in messages ("gitops.yaml:12:5: ..."). The caller owns
 * *out: free with mf_config_free. Unknown keys and bad values are GITOPS_EPARSE / EINVALID. */
int mf_config_parse(struct mf_config **out, const char *text, size_t len, const char *file);
/* Reads and parses a config file. */
int mf_config_load(struct mf_config **out, const char *path);
void mf_config_free(struct mf_config *cfg);
/* The environment named `name` (owned by cfg), or NULL. */
const struct mf_environment *mf_config_env(const struct mf_config *cfg, const char *name);
/* The app named `name` in env (owned by cfg), or NULL. */
const struct mf_app *mf_environment_app(const struct mf_environment *env, const char *name);
/* Public key lines: "ed25519:<base64 of 32 bytes>" (gitops keygen) and "ssh-ed25519 <base64>
 * [comment]" (OpenSSH; *blob, may be NULL, receives its 51-byte wire encoding). 0 or
 * GITOPS_EINVALID with the reason. Thread-safe. */
int mf_key_parse_ed25519(unsigned char out[32], const char *line);
int mf_key_parse_ssh(unsigned char out[32], unsigned char blob[51], const char *line);
/* Parses a duration "90s", "5m", "1h30m", "250ms" into milliseconds. */
int mf_parse_duration(long long *out_ms, const char *text);

/* ---------------------------------------------------------------------------------------------
 * Git source: a bare mirror under the data directory, fed from a path, file://, https or ssh URL.
 * Credentials: https from GITOPS_GIT_TOKEN (or GITOPS_GIT_TOKEN_FILE) as a bearer/basic token,
 * or GITOPS_GIT_USERNAME + GITOPS_GIT_PASSWORD(_FILE); ssh from GITOPS_SSH_KEY (private key file,
 * default ~/.ssh/id_ed25519), checked against GITOPS_SSH_KNOWN_HOSTS (default ~/.ssh/known_hosts). */

typedef struct mf_repo mf_repo;

/* Opens (creating when needed) the mirror of `url` under `data_dir` (NULL: mf_data_dir()):
 * <data_dir>/mirrors/<sha256(url)>.git, a bare repository. A path is made absolute first.
 * Does not fetch. Not thread-safe: one mf_repo per thread. The caller owns *out: free with
 * mf_repo_free. */
int mf_repo_open(mf_repo **out, const char *url, const char *data_dir);
void mf_repo_free(mf_repo *repo);
/* Fetches every branch and tag. On failure the mirror keeps what it had (usable) and the error
 * is GITOPS_ENETWORK (unreachable), GITOPS_EUNAUTHORIZED (auth) or GITOPS_ERROR. */
int mf_repo_fetch(mf_repo *repo);
/* Resolves a branch, tag, full or unique short SHA (or HEAD) to a commit; writes the 40-hex id
 * into out (41 bytes). GITOPS_ENOTFOUND for an unknown ref, GITOPS_EINVALID for an ambiguous one. */
int mf_repo_resolve(char out[41], mf_repo *repo, const char *rev);
/* Resolves a branch exactly: refs/heads/<branch>, else refs/remotes/origin/<branch> (a clone
 * without the local branch); never a tag, HEAD or a SHA. GITOPS_ENOTFOUND naming both. */
int mf_repo_resolve_branch(char out[41], mf_repo *repo, const char *branch);
/* The git signature of `commit` (header gpgsig, continuation spaces removed, no trailing newline)
 * and the signed payload (the commit object without that header). GITOPS_ENOTFOUND when the
 * commit is unsigned. Appends to both buffers. */
int mf_repo_commit_signature(gitops_buf *sig, gitops_buf *payload, mf_repo *repo, const char *commit);
/* The committer time of `commit` (40 hex), seconds since the epoch. GITOPS_ENOTFOUND. */
int mf_repo_commit_time(long long *out, mf_repo *repo, const char *commit);
/* The renderer `app` uses at `commit`: its own, or for auto the one its directory's files
 * select (kustomization.yaml: kustomize, Chart.yaml: helm, else plain). */
int mf_renderer_detect(enum mf_renderer_kind *out, mf_repo *repo, const char *commit, const struct mf_app *app);

/* gitops.yaml over time: the main branch's first-parent history, walked lazily from `main_sha`,
 * each distinct gitops.yaml parsed once. Not thread-safe; borrows `repo`. */
typedef struct mf_config_log mf_config_log;
int mf_config_log_open(mf_config_log **out, mf_repo *repo, const char *main_sha);
void mf_config_log_free(mf_config_log *l);
/* The configs in effect around epoch ms `ms`: the newest commit not after ms - skew_ms, plus
 * every commit up to ms + skew_ms (clocks and push delays differ); at most `max` distinct configs
 * into out (owned by the log), newest first.
 * Returns how many (0: none readable). A gitops.yaml this version cannot parse is skipped. */
int mf_config_log_at(const struct mf_config **out, size_t max, mf_config_log *l, long long ms, long long skew_ms);

/* Reads the blob at `path` in commit `commit` (40 hex) into out. GITOPS_ENOTFOUND when absent. */
int mf_repo_read(gitops_buf *out, mf_repo *repo, const char *commit, const char *path);
/* Writes the id (40 hex) of the tree or blob at `path` ("" or "." for the root) into out. */
int mf_repo_entry_id(char out[41], mf_repo *repo, const char *commit, const char *path);
/* Lists the blobs under directory `path` of `commit`, recursively, as repo-relative paths in
 * byte order. The caller owns *out_paths (each string and the array: mf_strv_free). */
int mf_repo_list(char ***out_paths, size_t *out_n, mf_repo *repo, const char *commit,
		 const char *path);
/* Checks out the whole tree of `commit` into a new private (0700) temporary directory; the
 * caller owns *out_dir (free()) and removes the directory with mf_rmtree. */
int mf_repo_checkout(char **out_dir, mf_repo *repo, const char *commit);
/* Finds the git repository containing directory `start`; *out_path (caller frees) is its git
 * directory, usable as a URL for mf_repo_open. */
int mf_repo_discover(char **out_path, const char *start);
/* The root commit reached from `commit` by first parents (40 hex into out): an identity every
 * clone of the repository shares. */
int mf_repo_root_commit(char out[41], mf_repo *repo, const char *commit);
/* The repositories to use when none is given (manifests/origin.c): the repository around
 * `start`, or origin's URL where the clone lacks what gitops needs. `manifests` is origin's URL
 * when the clone has no local branch at all (a CI job's detached checkout), else the git
 * directory; `state` (else NULL) is origin's URL when the clone has no local refs/heads/<state_branch>
 * (an approver's clone: the state branch lives on origin, fetched or not) and origin is reached
 * over http(s) or a path (the state branch cannot be pushed over ssh yet).
 * Credentials written into origin's URL (user:password@, as GitLab CI does) are taken out of the
 * URLs into `username`/`password`, for GITOPS_GIT_USERNAME/PASSWORD. `state_branch` NULL means
 * gitops/state. Free with mf_repo_default_clear. Errors: mf_repo_discover's. */
struct mf_repo_default {
	char *manifests, *state, *username, *password;
};
int mf_repo_default(struct mf_repo_default *out, const char *start, const char *state_branch);
void mf_repo_default_clear(struct mf_repo_default *d);
/* True when the mirror holds any branch or tag (a fetch succeeded once). */
bool mf_repo_has_refs(mf_repo *repo);
/* The mirror's directory (owned by repo). */
const char *mf_repo_path(const mf_repo *repo);
/* Removes a directory tree (no symlinks followed). */
int mf_rmtree(const char *dir);
void mf_strv_free(char **v, size_t n);

/* An https credential for libgit2 from GITOPS_GIT_TOKEN(_FILE), or GITOPS_GIT_USERNAME and
 * GITOPS_GIT_PASSWORD(_FILE) (a token goes as the password of `user_from_url`, else of
 * "x-access-token"). Shared by the mirror's fetch and the state branch's push. Returns 0 with
 * *out set (libgit2 owns it once returned from a credential callback), GITOPS_ENOTFOUND when no
 * credential is configured, or a libgit2 error (< 0). */
struct git_credential;
int mf_git_userpass_credential(struct git_credential **out, const char *user_from_url);
/* Credentials found in origin's URL (mf_repo_default's username/password), used when neither
 * GITOPS_GIT_TOKEN nor GITOPS_GIT_PASSWORD(_FILE) is set. Copied; thread-safe; NULL clears. */
void mf_git_set_url_credentials(const char *user, const char *password);

/* The data directory: $GITOPS_DATA_DIR, else ${XDG_CACHE_HOME:-~/.cache}/gitops. Owned by the
 * caller (free()). */
char *mf_data_dir(void);

/* ---------------------------------------------------------------------------------------------
 * Rendering: apps of an environment at a commit, through the render cache. */

typedef struct mf_renderer mf_renderer;

/* The target cluster of `env` as `helm install` would see it, for `helm template --kube-version
 * --api-versions`: sets *kube_version ("v1.36.3"; caller frees; NULL: unknown) and *api_versions
 * (a JSON array of "group/version" and "group/version/Kind" strings; caller decrefs; NULL:
 * unknown). Asked once per environment per mf_render_env (and at most once a minute for renders
 * of single apps), only when a helm app is rendered. A non-zero return fails the render. */
typedef int (*mf_capabilities_fn)(void *data, const struct mf_environment *env, char **kube_version,
				  json_t **api_versions);

struct mf_render_options {
	const char *data_dir; /* cache root; NULL: mf_data_dir(); "" disables the disk cache */
	int timeout_ms;       /* per renderer run; 0: MF_DEFAULT_TIMEOUT_MS (cli/ maps $GITOPS_RENDER_TIMEOUT) */
	struct mf_limits limits;
	mf_scope_fn scope;    /* optional scope lookup for unknown kinds */
	void *scope_data;
	mf_capabilities_fn capabilities; /* optional: without it helm renders with its defaults */
	void *capabilities_data;
	bool no_memory_cache; /* keep no render in memory (a one-shot command renders each app once;
			       * the disk cache still serves) */
};

/* Creates a renderer (holds the in-memory cache: the newest renders as compact JSON text, at
 * most 16 MiB; the counters; a checkout of the last commit rendered with helm/kustomize). Not
 * thread-safe: one renderer per thread. `opts` may be NULL.
 * The caller owns *out: free with mf_renderer_free (removes the checkout). */
int mf_renderer_new(mf_renderer **out, const struct mf_render_options *opts);
void mf_renderer_free(mf_renderer *r);
/* Renders one app at `commit` (objects not yet namespace-resolved: see mf_objects_resolve).
 * Adds the objects to `set`. */
int mf_render_app(mf_objects *set, mf_renderer *r, mf_repo *repo, const char *commit,
		  const struct mf_environment *env, const struct mf_app *app);
/* Renders every app of `env` (or only `only_app` when not NULL) at `commit`, then resolves
 * namespaces and duplicates. The caller owns *out: free with mf_objects_free. */
int mf_render_env(mf_objects **out, mf_renderer *r, mf_repo *repo, const char *commit,
		  const struct mf_environment *env, const char *only_app);
/* mf_render_env_with: what to render and what to do when an app fails. */
struct mf_render_env_options {
	const char *only_app;  /* NULL: every app */
	bool all_apps;         /* with only_app: render the others too (their objects are kept, each
				* mf_object names its app), e.g. so that a sync of one app never prunes
				* what another desires */
	/* Called when `app` fails to render with `rc` (its message in gitops_error_last()): return
	 * 0 to go on without that app's objects, or the code to stop with. NULL: stop. */
	int (*failed)(void *data, const struct mf_app *app, int rc);
	void *failed_data;
	mf_scope_fn scope;     /* NULL: the renderer's (mf_render_options.scope) */
	void *scope_data;
	bool compact;          /* objects from the render cache stay text (compact objects, see
				* struct mf_object) until the caller parses them, one at a time */
};
/* The one render loop (mf_render_env and reconcile/'s plan use it): renders the apps of `env` at
 * `commit` as `opt` says (NULL: every app), then resolves namespaces and duplicates. The caller
 * owns *out: free with mf_objects_free. */
int mf_render_env_with(mf_objects **out, mf_renderer *r, mf_repo *repo, const char *commit,
		       const struct mf_environment *env, const struct mf_render_env_options *opt);
/* How many renders actually ran (cache misses) since creation. */
unsigned long mf_renderer_executed(const mf_renderer *r);
/* How many renders were served from the memory or disk cache. */
unsigned long mf_renderer_cache_hits(const mf_renderer *r);

/* Runs the renderer on a directory of files (no git, no cache): `dir` is the app directory,
 * `root` the checkout root it lives in, values files relative to root. Adds objects to `set`;
 * `file` names are relative to root. */
int mf_render_dir(mf_objects *set, mf_renderer *r, const char *root, const struct mf_app *app,
		  const struct mf_environment *env);

/* The path of the helm / kustomize binary (GITOPS_HELM / GITOPS_KUSTOMIZE, else PATH). The
 * caller owns *out (free()). GITOPS_ENOTFOUND when missing. */
int mf_find_binary(char **out, const char *name);

#endif
