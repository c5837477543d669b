/* history: definitions shared by the module's files and its unit tests (not public API). */
#ifndef GITOPS_HISTORY_INTERNAL_H
#define GITOPS_HISTORY_INTERNAL_H

#include <git2.h>
#include <openssl/evp.h>

#include "common/git.h"
#include "history/history.h"

struct hist {
	git_repository *repo; /* the repository itself (local) or a working copy (remote) */
	char *url;            /* remote URL; NULL for a local repository */
	char *path;           /* local repository path, or the working copy */
	char *branch;         /* "gitops/state" */
	char *ref;            /* "refs/heads/gitops/state" */
	char *desc;
	char *data_dir;
	/* last snapshot we read or wrote, reused when the tip did not move */
	git_oid cache_tip;
	struct hist_snap *cache;
	bool log_ensured;
	/* trust */
	struct hist_policy policy;
	bool has_policy;
	EVP_PKEY *signer;  /* reporter key: sync/health/drift events are signed */
	char *signer_pub;
	git_oid checked;   /* the tip verified in this process (skip re-checking it) */
	bool has_checked;
	const atomic_bool *cancel; /* hist_set_cancel: ends the append retry loops */
};

/* ---- snapshot.c: the state as JSON, loaded lazily from a tree ---------------------------- */

struct hist_snap {
	git_repository *repo; /* NULL: in memory only (verification replay) */
	git_tree *root;       /* NULL: empty state */
	json_t *envs;         /* name -> env object (loaded ones) */
	json_t *proms;        /* id -> promotion object, or JSON null when removed */
	json_t *decided;      /* array of recently decided promotions, NULL until loaded */
	json_t *dirty_envs, *dirty_proms; /* name -> true */
	bool dirty_decided;
	bool proms_listed;    /* every pending promotion is in proms */
};

struct hist_snap *hist_snap_new(git_repository *repo, git_tree *root /* borrowed, dup'ed */);
void hist_snap_free(struct hist_snap *s);
/* The environment's object (borrowed; created empty when absent). */
int hist_snap_env(json_t **out, struct hist_snap *s, const char *env);
/* A pending promotion (borrowed) or NULL. */
int hist_snap_prom(json_t **out, struct hist_snap *s, const char *id);
/* Every pending promotion (object id -> promotion, borrowed). */
int hist_snap_pending(json_t **out, struct hist_snap *s);
/* Recently decided promotions (array, borrowed). */
int hist_snap_decided(json_t **out, struct hist_snap *s);
/* Applies one event to the state. Deterministic: verification replays it. */
int hist_snap_apply(struct hist_snap *s, const json_t *ev);
/* Writes the changed entries on top of the root tree; *out is the new tree id. */
int hist_snap_write(git_oid *out, struct hist_snap *s);
void hist_snap_clear_dirty(struct hist_snap *s);

/* ---- store.c ----------------------------------------------------------------------------- */

/* Called inside the append loop with the newest snapshot: check preconditions, complete the
 * event, or set *skip (nothing appended, not an error). Return 0 or an error (stops). */
typedef int (*hist_prepare_fn)(void *ud, struct hist_snap *s, json_t *ev, bool *skip);
/* Appends `ev` with compare-and-swap, retrying after `prep` re-checked the new snapshot. */
int hist_append(hist *h, json_t *ev, hist_prepare_fn prep, void *ud, bool *skipped);
/* The current tip (false when the branch does not exist) after a fetch for remotes. */
int hist_tip(git_oid *out, bool *exists, hist *h);
/* A snapshot of the tip (caller frees). */
int hist_snapshot(struct hist_snap **out, hist *h);

/* ---- verify.c ---------------------------------------------------------------------------- */

/* The path prefix of this store's local files (index, remembered tip) under the data dir. */
char *hist_index_base(hist *h);
/* hist_tip, then hist_check_tip, read again while another process moves the branch. */
int hist_tip_verified(git_oid *tip, bool *exists, hist *h);
/* With a policy attached: verifies up to `tip` (incremental; no-op when already checked).
 * GITOPS_ECONFLICT: the branch moved on since `tip` was read (read it again). */
int hist_check_tip(hist *h, const git_oid *tip, bool exists);
/* After an append landed: verifies it (with a policy) so the branch counts as seen. */
int hist_checked_append(hist *h, const git_oid *commit);
/* Errors when the branch is absent or rewound although a tip was verified before. */
int hist_seen_check(hist *h, const git_oid *tip, bool exists);

/* ---- sign.c ------------------------------------------------------------------------------ */

int hist_load_key(EVP_PKEY **out, char **out_pub, const char *key_file);
int hist_event_sign(json_t *ev, EVP_PKEY *k, const char *pub);
/* 0 when the event's "signature" verifies with its own key; GITOPS_EFORBIDDEN / EINVALID. */
int hist_event_verify_signature(const json_t *ev);

/* ---- event.c ----------------------------------------------------------------------------- */

void hist_new_id(char out[13]);
/* Epoch ms of an RFC 3339 time; -1 when malformed. */
long long hist_time_ms(const char *rfc3339);
long long hist_now_wall_ms(void);
/* An event's JSON message (compact, one line). Caller frees. */
char *hist_event_dump(const json_t *ev);

/* ---- query.c: the index and DORA arithmetic ---------------------------------------------- */

struct hist_rec {
	long long time_ms, commit_time_ms; /* commit_time_ms 0: unknown */
	const char *commit, *id, *type, *env, *app, *sha, *actor, *promotion, *json;
	unsigned failed;
};
/* DORA over records in append order (pure arithmetic; unit-tested). */
void hist_dora_compute(struct hist_dora *out, const struct hist_rec *recs, size_t n, const char *env,
		       long long since_ms, long long until_ms);

#endif
