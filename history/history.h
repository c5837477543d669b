/* history: the gitops/state branch: an append-only log of events (one commit each, the event as
 * one JSON object in the message) whose newest tree holds the current snapshot (pins, healthy
 * deploys, pending promotions); promotions, signed approvals, rollback, queries, DORA, verify.
 *
 * Conventions: every public symbol starts with hist_; functions return 0 or a negative
 * enum gitops_error code with the message in gitops_error_last(); out-parameters come first;
 * every *_free accepts NULL. Events cross the API as jansson objects (the schema is in
 * README.md, "Events"). Refusals by policy (upstream not healthy, bad signature,
 * duplicate approver...) are GITOPS_EFORBIDDEN with the reason as the message.
 * This module never talks to Kubernetes. */
#ifndef GITOPS_HISTORY_H
#define GITOPS_HISTORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"
#include "manifests/manifests.h"

#define HIST_DEFAULT_BRANCH "gitops/state"
/* Decided promotions and healthy deploys kept per environment in the snapshot (the log keeps all). */
#define HIST_DEPLOYED_KEEP 100

/* ---- The store: a repository and its state branch -------------------------------------- */

/* Threads: a hist handle is used by one thread at a time; open one per thread (or per call).
 * Writers on several threads or processes are safe: appends are compare-and-swap. */
typedef struct hist hist;

struct hist_options {
	/* Repository holding the state branch: a local path (worktree or bare; appends use a
	 * compare-and-swap reference update) or a URL (file://, https, ssh: appends are fetch +
	 * push with the old value checked). Required. */
	const char *repo;
	const char *branch;   /* NULL: HIST_DEFAULT_BRANCH */
	const char *data_dir; /* query index and remote working copies; NULL: mf_data_dir() */
};

/* Opens a store. Does not create the branch (the first append does). The caller owns *out:
 * free with hist_free. GITOPS_EGIT when the repository cannot be opened. */
int hist_open(hist **out, const struct hist_options *opt);
/* Opens the store the commands use: repository `state_repo`, else `manifests_repo`, else the git
 * repository of the working directory; branch `branch`, else HIST_DEFAULT_BRANCH. Any argument
 * may be NULL. A file:// URL is opened as a local path (compare-and-swap on the reference).
 * Configuration is explicit: the library never reads $GITOPS_STATE_REPO / $GITOPS_STATE_BRANCH
 * (cli/ does, next to --state-repo / --state-branch, and passes them down). */
int hist_open_default(hist **out, const char *state_repo, const char *branch, const char *manifests_repo);
void hist_free(hist *h);
/* "repository#branch", for messages (owned by h). */
const char *hist_describe(const hist *h);

/* ---- Events ------------------------------------------------------------------------------ */

/* Every known event type, NULL-terminated. */
extern const char *const hist_event_types[];
bool hist_type_known(const char *type);

/* What started an event (its "trigger"): a person, a CI job, the daemon on its own (a new
 * commit, self-heal, an automatic rollback), or a webhook. */
#define HIST_TRIGGER_MANUAL "manual"
#define HIST_TRIGGER_CI "ci"
#define HIST_TRIGGER_AUTO "auto"
#define HIST_TRIGGER_WEBHOOK "webhook"

/* An event to append. NULL / negative fields are left out of the record. */
struct hist_event {
	const char *type;        /* one of hist_event_types */
	const char *environment;
	const char *app;
	const char *sha;         /* 40 hex */
	const char *actor;       /* NULL: hist_default_actor() */
	const char *trigger;     /* one of HIST_TRIGGER_*; NULL: hist_default_trigger() */
	const char *reason;
	bool has_counts;
	unsigned created, updated, unchanged, pruned, failed;
	long long duration_ms;   /* < 0: none */
	long long commit_time;   /* commit time of `sha`, seconds since the epoch; 0: none */
	const char *promotion;   /* promotion id */
	const char *object;      /* drift.*: "Kind namespace/name" */
	long long count;         /* drift.*: detections folded into the event; 0: none */
	/* sync.*: the apps whose objects the sync changed (an environment-wide sync that changed
	 * app api is found by `history --app api`); may be empty. */
	const char *const *apps;
	size_t n_apps;
	/* sync.failed: each failed object and why (apiserver text; masked when the event is
	 * built). At most HIST_MAX_FAILURES are kept, each reason cut at HIST_MAX_REASON bytes. */
	const struct hist_failure *failures;
	size_t n_failures;
};
struct hist_failure {
	const char *object; /* "Kind namespace/name" */
	const char *reason;
};
#define HIST_MAX_FAILURES 20
#define HIST_MAX_REASON 512

/* Builds the JSON record of `ev` with a fresh id and the current UTC time (the caller owns
 * *out). GITOPS_EINVALID when the type is unknown or a required field is missing. */
int hist_event_build(json_t **out, const struct hist_event *ev);
/* Checks one record against the schema; GITOPS_EINVALID naming the field. */
int hist_event_validate(const json_t *ev);
/* Appends one event as given (id and time filled in), updating the snapshot. Use the
 * promotion functions below for promotion.* and rollback events: they check preconditions.
 * *out (may be NULL) receives the record (caller decrefs). */
int hist_record(json_t **out, hist *h, const struct hist_event *ev);
/* Appends events [0, n) in order as n commits with one compare-and-swap of the branch (all or
 * none land), their objects in one packfile: for producers that buffer (and the benchmark).
 * Same types as hist_record. */
int hist_record_batch(hist *h, const struct hist_event *evs, size_t n);
/* Records a sync (ev->type sync.succeeded or sync.failed; GITOPS_EINVALID for another type):
 * counts, duration, reason, apps, failures and the trigger as given. ev->commit_time (the commit
 * time of ev->sha, for lead-time metrics) is the caller's to fill from the manifests repository
 * it has open (reconcile's rec_env_sync does); when 0 it is looked up in the state repository
 * only, never by opening another. A no-op (nothing created, updated, pruned or failed at the
 * SHA the environment, or for an app sync the app, last synced successfully) is not recorded:
 * 0 with *out NULL. *out (may be NULL) receives the record (caller decrefs).
 * Thread-safety: as every append, one hist per thread; appends from several are CAS-safe. */
int hist_record_sync(json_t **out, hist *h, const struct hist_event *ev);

/* The actor when an event names none: git's user.name (the working directory's repository,
 * else the global and system configuration), else "unknown". Caller frees. The library reads no
 * environment variable: cli/ names the actor from $GITLAB_USER_LOGIN, $GITHUB_ACTOR, this, then
 * $USER (cli_actor). */
char *hist_default_actor(void);
/* The trigger when an event names none: "manual" (cli/ says "ci" in a CI job). Static string. */
const char *hist_default_trigger(void);

/* ---- Snapshot ---------------------------------------------------------------------------- */

/* The environment's snapshot object (pinned, lastHealthy, deployed[], ...); an empty object
 * when nothing was recorded. The caller owns *out (json_decref). */
int hist_env_state(json_t **out, hist *h, const char *env);
/* The SHA the environment is pinned to (40 hex + NUL). GITOPS_ENOTFOUND when not pinned. */
int hist_pin(char out[41], hist *h, const char *env);
/* A pending (or recently decided) promotion by id; GITOPS_ENOTFOUND otherwise. Caller decrefs. */
int hist_promotion_get(json_t **out, hist *h, const char *id);
/* The pending promotions of `env` (every environment when NULL), oldest request first, as a
 * JSON array of promotion objects (id, environment, sha, required, approvals, ...). The caller
 * owns *out (json_decref). */
int hist_pending(json_t **out, hist *h, const char *env);

/* ---- Promotions, approvals, rollback --------------------------------------------------- */

struct hist_action {
	const char *actor;   /* NULL: hist_default_actor() */
	const char *trigger; /* NULL: hist_default_trigger() */
	const char *reason;  /* may be NULL */
};

/* Promotes `sha` (40 hex, known to exist) to `env` of `cfg`. Refused (GITOPS_EFORBIDDEN) when the
 * SHA never ran healthy in env's upstream. Not gated: pins env at once (status "applied").
 * Gated (approval.required > 0): a pending promotion. The same SHA promoted twice to the same
 * environment gives the same promotion (*existing set, nothing appended). GITOPS_EINVALID for
 * an environment without `from`. *out is the promotion object with an "id" key (caller decrefs). */
int hist_promote(json_t **out, bool *existing, hist *h, const struct mf_config *cfg, const char *env,
		 const char *sha, const struct hist_action *act);

/* Ed25519 keys. hist_keygen writes the private key (PKCS#8 PEM, mode 0600) to `path` and the
 * public key line ("ed25519:<base64 of the 32-byte key>") to `path`.pub; it refuses to
 * overwrite (GITOPS_EEXISTS). *out_pub (may be NULL) receives the line (caller frees). */
int hist_keygen(char **out_pub, const char *path);
/* The public key line of a private key file. Caller frees *out. */
int hist_key_public(char **out, const char *key_file);
/* The signed text: "gitops-approval-v1\n<decision>\n<promotion id>\n<environment>\n<sha>\n",
 * decision "approve" or "reject". Caller frees. */
char *hist_signed_text(const char *decision, const char *id, const char *env, const char *sha);
/* Signs with a private key file; *out_sig is base64 (caller frees). */
int hist_sign(char **out_sig, const char *key_file, const char *decision, const char *id, const char *env,
	      const char *sha);
/* Verifies a base64 signature against a public key line: 0, GITOPS_EFORBIDDEN when it does not
 * verify, GITOPS_EINVALID for a malformed key or signature. */
int hist_verify_signature(const char *pub, const char *sig, const char *decision, const char *id, const char *env,
			  const char *sha);

/* Appends an approval (reject = false) or a rejection of pending promotion `id`, signed by the
 * approver whose public key is `pub` (must be listed for the environment in `cfg`). `sig` is
 * the base64 signature over hist_signed_text. Refused (GITOPS_EFORBIDDEN, with the reason):
 * unknown key, bad signature, a signature made for another promotion (replay), the same
 * approver twice, a promotion not pending. The promotion takes effect (env pinned) when the
 * required number of distinct approvers signed. *out (may be NULL): the promotion after. */
int hist_decide(json_t **out, hist *h, const struct mf_config *cfg, const char *id, const char *pub,
		const char *sig, bool reject, const struct hist_action *act);

/* Pins `env` to an earlier SHA that was deployed healthy there: `to_sha` (full or unique
 * prefix) when given, else `steps` deploys back (1: the one before the current). Refused
 * (GITOPS_EFORBIDDEN) when there is no such deploy. *out (may be NULL): the rollback event. */
int hist_rollback(json_t **out, hist *h, const struct mf_environment *env, const char *to_sha, int steps,
		  const struct hist_action *act);
/* The public key line of approver `name` of environment `env` in `cfg` (gitops.yaml), for a
 * decision signed elsewhere (gitops approve --approver NAME --signature SIG). The caller frees
 * *out. GITOPS_EFORBIDDEN "refused: NAME is not an approver of ENV" when not listed.
 * Thread-safe (reads cfg only). */
int hist_approver_key(char **out, const struct mf_config *cfg, const char *env, const char *name);
/* Waits until `env` ran `sha` healthy (its lastHealthy), reading the state branch every poll_ms
 * (0: 2 s). GITOPS_EFORBIDDEN when promotion `promotion` (may be NULL) was rejected or
 * superseded meanwhile, GITOPS_ETIMEOUT after timeout_ms, GITOPS_ERROR when `cancel` (may be
 * NULL) was set. Uses h for the whole wait: one thread. */
int hist_wait_deployed(hist *h, const char *env, const char *sha, const char *promotion, long long timeout_ms,
		       long long poll_ms, gitops_cancel *cancel);
/* Ends a suspension (hist_suspend) and drops the pin of a tracking environment (it follows its
 * branch again). Not suspended: GITOPS_EINVALID for an environment with `from` (a promotion
 * moves it), GITOPS_ENOTFOUND when not pinned. */
int hist_resume(json_t **out, hist *h, const struct mf_environment *env, const struct hist_action *act);

/* Suspends `env`: the daemon stops syncing and self-healing it (drift is still reported) until
 * hist_resume, which also ends a suspension (and, for a tracking environment, drops its pin).
 * GITOPS_EFORBIDDEN when already suspended. *out (may be NULL): the event. */
int hist_suspend(json_t **out, hist *h, const struct mf_environment *env, const struct hist_action *act);
/* The daemon's automatic rollback after `failed_sha` failed its health gate: pins `env` to its
 * last healthy SHA (trigger "auto"; act->reason names the failed objects) and remembers
 * failed_sha as rolled back, so that no promotion to or from `env` accepts it again.
 * GITOPS_EFORBIDDEN when there is no other healthy deploy to go back to. */
int hist_rollback_failed(json_t **out, hist *h, const struct mf_environment *env, const char *failed_sha,
			 const struct hist_action *act);

/* ---- Queries, DORA, verification ------------------------------------------------------- */

struct hist_filter {
	const char *env, *app, *type, *actor, *sha, *promotion; /* NULL: any; sha may be a prefix;
								  type may end with '.' or '*' */
	long long since_ms, until_ms; /* epoch ms; 0: unbounded */
	size_t limit;                 /* 0: no limit */
};

/* Completes `f` from the text of the filters (`gitops history` options and /api/v1/history
 * query parameters alike): since/until as hist_parse_time reads them, limit a number >= 0 (NULL:
 * f->limit stays), and checks f->type (a known type, or a prefix ending in '.' or '*').
 * GITOPS_EINVALID with the message. Thread-safe. */
int hist_filter_parse(struct hist_filter *f, const char *since, const char *until, const char *limit);
/* Matching events, newest first, as a JSON array (caller decrefs). Reads through a local index
 * (under the data directory) brought up to date from the branch first. */
int hist_query(json_t **out, hist *h, const struct hist_filter *f);
/* One event by id, or a promotion (id of its promotion.requested event) as
 * {"promotion": {...}, "events": [...]}. GITOPS_ENOTFOUND. Caller decrefs. */
int hist_show(json_t **out, hist *h, const char *id);

struct hist_dora {
	long long since_ms, until_ms;
	unsigned deployments;          /* healthy deploys of a new SHA */
	double per_day;                /* deployments per day over the window */
	unsigned lead_samples;
	long long lead_median_ms, lead_mean_ms; /* commit time -> first healthy deploy; -1: none */
	unsigned changes, failed_changes; /* deploy attempts of a new SHA, and those that failed */
	double failure_rate;           /* failed_changes / changes, 0 when none */
	unsigned restores;
	long long restore_median_ms, restore_mean_ms; /* failure -> next healthy deploy; -1: none */
};
/* DORA metrics of `env` (NULL: every environment) over [since_ms, until_ms) (0: now). */
int hist_dora(struct hist_dora *out, hist *h, const char *env, long long since_ms, long long until_ms);

struct hist_verify_report {
	size_t events, signatures;
	bool absent;   /* the branch does not exist and was never seen */
	char *problem; /* NULL when valid; else the first problem (owned: hist_verify_report_clear) */
};
/* ---- Trust: what readers check before they obey (README "Trust model") ------------------
 *
 * The policy gives the pipeline configs (gitops.yaml of the main branch) in effect at a time:
 * approvers, reporters, upstreams and approval counts are checked against them, never against
 * keys stored in events. reconcile's rec_workspace_policy provides it from the main branch's
 * history. Without a policy, hist_check and hist_verify refuse (GITOPS_EINVALID). */
struct hist_policy {
	/* Fills out[0, max) with the configs in effect at epoch ms `ms` (borrowed until the
	 * policy's owner frees them); returns how many (0: none). */
	int (*configs_at)(void *ud, const struct mf_config **out, size_t max, long long ms);
	void *ud;
};
/* Attaches a policy: from then on every read of the snapshot (pins, promotions, env state) and
 * every append first verifies the chain incrementally (hist_check). */
void hist_set_policy(hist *h, const struct hist_policy *pol);
/* Ends the appends' compare-and-swap retries (up to 500 against other writers, about 100 s)
 * once *flag is set (gitops_cancel_flag; it must outlive h): an append still makes 10 attempts
 * (about 2 s) so that a stopping process records its last event, then returns GITOPS_ETIMEOUT. */
void hist_set_cancel(hist *h, const atomic_bool *flag);
/* Sync, health and drift events appended through `h` are signed with this Ed25519 private key
 * (gitops keygen; a reporter's key). GITOPS_EINVALID / GITOPS_ENOTFOUND for a bad key file. */
int hist_set_signing_key(hist *h, const char *key_file);

/* Verifies the branch incrementally, from the tip last verified (remembered under the data
 * directory, per repository and branch) to the current tip: a linear chain, the tip verified
 * before still in it (else: rewound or rewritten), every event valid, times not decreasing,
 * every approval signed by an approver of that environment in the gitops.yaml in effect at
 * that time, every record signature valid, every precondition replayed (a promotion only of a
 * SHA healthy upstream, with the required count and status of that config; a rollback only to
 * a SHA deployed healthy there; a pin only from an applied promotion or a rollback), and every
 * snapshot tree equal to the replay (nothing else changed). A branch that was seen and is gone:
 * an error. Never seen and absent: 0 with report->absent. Problems are GITOPS_EPOLICY naming
 * the offending commit (report->problem too).
 * Thread-safety: not for one hist from two threads; separate hist handles (one per thread, as
 * the daemon does per fetch) may check the same branch at once (the remembered tip is
 * replaced atomically). */
int hist_check(struct hist_verify_report *out, hist *h);
/* The same over the whole branch from its first event (the remembered tip must still be in
 * it). A branch that never existed: GITOPS_ENOTFOUND "no state branch X". */
int hist_verify(struct hist_verify_report *out, hist *h);
void hist_verify_report_clear(struct hist_verify_report *r);

/* Checks an OpenSSH signature (sshsig armor, as git writes with gpg.format=ssh) over msg in
 * namespace `ns` ("git"), with OpenSSL; *out_blob (may be NULL) receives the signer's public key
 * (SSH wire encoding, 51 bytes) to compare with mf_signer.blob. 0 valid; GITOPS_EFORBIDDEN it
 * does not verify; GITOPS_EINVALID malformed or not ssh-ed25519. Thread-safe. */
int hist_sshsig_verify(unsigned char out_blob[51], const char *armored, size_t alen, const void *msg, size_t mlen,
		       const char *ns);
/* "SHA256:<base64>" of an SSH public key blob, as ssh-keygen and git print it. */
void hist_ssh_fingerprint(char out[64], const unsigned char blob[51]);
/* True when the public key line `pub` (ed25519:...) is one of v[0, n); *name gets its name. */
bool hist_key_listed(const char *pub, const struct mf_signer *v, size_t n, const char **name);

/* Parses "30d", "12h", "90m", "45s", "2w" (ago, from now) or an RFC 3339 date/time into epoch
 * ms. GITOPS_EINVALID. */
int hist_parse_time(long long *out_ms, const char *text);
/* Formats epoch ms as RFC 3339 UTC with milliseconds into out (32 bytes). */
void hist_format_time(char out[32], long long ms);

#endif
