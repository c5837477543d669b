/* drift: compares a desired object with its live counterpart (normalization, ownership-aware
 * comparison, ignore rules, classification, Secret masking, diff and JSON output). No I/O. */
#ifndef GITOPS_DRIFT_H
#define GITOPS_DRIFT_H

#include <stddef.h>
#include <jansson.h>

#include "common/common.h"

/* The field manager gitops applies with; its managedFields entry says which fields are ours. */
#define DRIFT_FIELD_MANAGER "gitops"

/* How one object compares. */
/* ---- Threads and ownership, per type -----------------------------------------------------
 *
 * drift does no I/O and keeps no global state: every function is reentrant.
 * drift_ignore     read-only once built (drift_ignore_add is not thread-safe): then shared by any
 *                  number of comparing threads; one owner frees it.
 * drift_result     owned by the caller that received it (drift_result_free); not locked: one
 *                  thread uses it at a time, or several only read it.
 * Inputs           desired and live objects are borrowed, never changed nor reference-counted, so
 *                  objects shared with a watch cache may be compared from several threads.
 * Output           every string drift returns (diffs, JSON text) is the caller's to free. */

typedef enum {
	DRIFT_IN_SYNC = 0, /* every field gitops sets has its desired value live */
	DRIFT_MODIFIED,    /* live exists, at least one of our fields differs (see the fields) */
	DRIFT_MISSING,     /* desired, but no live object */
	DRIFT_EXTRA,       /* live and recorded as ours (caller's inventory), no longer desired */
} drift_state;

/* "IN-SYNC", "MODIFIED", "MISSING", "EXTRA": the words used in tables and JSON. Static. */
const char *drift_state_name(drift_state state);

/* ---- ignore rules -------------------------------------------------------------------------- */

/* A set of ignore rules from the pipeline config: each names a JSON pointer (RFC 6901) into the
 * object and, optionally, the objects it applies to. Opaque; build with drift_ignore_new and
 * drift_ignore_add, free with drift_ignore_free. Read-only once built, so one set may be shared
 * by threads comparing objects in parallel. */
typedef struct drift_ignore drift_ignore;

/* Creates an empty rule set in *out; the caller owns it (drift_ignore_free). Returns 0. */
int drift_ignore_new(drift_ignore **out);
/* Adds a rule ignoring `pointer` (e.g. "/spec/replicas",
 * "/metadata/annotations/example.com~1stamp", "/spec/template/spec/containers/0/image") in the
 * objects matching every non-NULL selector: `group` ("" is the core group, "apps", ...), `kind`,
 * `namespace`, `name`. NULL or "*" matches any. The strings are copied. Returns 0, or
 * GITOPS_EINVALID when the pointer is not a valid JSON pointer (must be "" or start with '/';
 * '~' only as "~0" or "~1"). The whole object ("") is a valid, if blunt, rule. */
int drift_ignore_add(drift_ignore *ignore, const char *group, const char *kind,
		     const char *namespace_, const char *name, const char *pointer);
/* Frees the set; NULL is fine. */
void drift_ignore_free(drift_ignore *ignore);

/* ---- comparing ----------------------------------------------------------------------------- */

/* Options for drift_compare; zero-initialise (or DRIFT_OPTIONS_INIT) for the defaults. */
typedef struct {
	const char *field_manager;  /* our manager name; NULL means DRIFT_FIELD_MANAGER */
	const drift_ignore *ignore; /* borrowed; NULL: no ignore rules */
} drift_options;
#define DRIFT_OPTIONS_INIT {NULL, NULL}

/* One field that differs. Values are borrowed from the result (valid until drift_result_free)
 * and already masked for Secrets; NULL means "absent on that side". */
typedef struct {
	const char *path;      /* e.g. ".spec.template.spec.containers[name=web].image" */
	const json_t *desired; /* the value gitops would apply (normalized) */
	const json_t *live;    /* the value in the cluster (normalized) */
} drift_field;

/* The outcome for one object. Opaque; free with drift_result_free. Holds no clear-text Secret
 * value (data/stringData values are replaced by markers when the result is built), so it may be
 * logged, printed or recorded freely. */
typedef struct drift_result drift_result;

/* Compares `desired` (a rendered manifest, as gitops would apply it, including the labels the
 * sync engine adds) with `live` (the object as read from the apiserver, with
 * metadata.managedFields). Neither is modified, kept or even reference-counted, so several
 * threads may compare objects shared with a watch cache at the same time.
 *   desired and live: DRIFT_IN_SYNC or DRIFT_MODIFIED with the differing fields;
 *   desired, live NULL: DRIFT_MISSING;
 *   desired NULL, live: DRIFT_EXTRA (the caller only passes live objects its inventory records as
 *                       ours and that are no longer desired).
 * `options` may be NULL. On success *out is a new result the caller owns (drift_result_free) and
 * 0 is returned; GITOPS_EINVALID (the message says which side) when both are NULL or one is
 * not a Kubernetes object (a JSON object with "kind").
 * Ownership needs gitops' managedFields entry; the other managers' entries (a cache may drop
 * them) only serve to keep a field that we and another manager own from being reported when
 * the manifest no longer sets it. */
int drift_compare(drift_result **out, const json_t *desired, const json_t *live,
		  const drift_options *options);

/* Frees a result; NULL is fine. */
void drift_result_free(drift_result *result);

drift_state drift_result_state(const drift_result *result);
/* The object's identity, taken from desired (or live for EXTRA). Borrowed from the result;
 * namespace is "" for cluster-scoped objects, group "" for the core group. */
const char *drift_result_api_version(const drift_result *result);
const char *drift_result_group(const drift_result *result);
const char *drift_result_kind(const drift_result *result);
const char *drift_result_namespace(const drift_result *result);
const char *drift_result_name(const drift_result *result);
/* The differing fields of a MODIFIED result, in object order (0 for the other states). */
size_t drift_result_field_count(const drift_result *result);
/* Field `i` (< drift_result_field_count); borrowed from the result. */
const drift_field *drift_result_field(const drift_result *result, size_t i);

/* ---- output -------------------------------------------------------------------------------- */

/* Flags for drift_result_format_diff. */
#define DRIFT_FORMAT_COLOR 0x1u /* ANSI colours (red removed, green added, cyan hunk headers) */

/* Appends a unified-diff-style text to `out`: "--- live <Kind ns/name>" / "+++ desired ...",
 * then one "@@ <path> @@" hunk per differing field with "-" live and "+" desired lines (values
 * as YAML-ish lines). MISSING prints the whole desired object as "+" lines, EXTRA the whole
 * live object as "-" lines, IN-SYNC nothing. Returns 0. */
int drift_result_format_diff(gitops_buf *out, const drift_result *result, unsigned flags);

/* Appends one table line and a newline to `out`, e.g.
 *   "MODIFIED  Deployment shop-dev/web  .spec.replicas, .metadata.labels.app"
 * Returns 0. */
int drift_result_format_summary(gitops_buf *out, const drift_result *result);

/* The result as JSON in *out (a new reference the caller owns: json_decref):
 * {"apiVersion","group","kind","namespace","name","state","fields":[{"path","desired","live"}]}
 * where an absent side is omitted. Returns 0. */
int drift_result_to_json(json_t **out, const drift_result *result);

/* ---- normalization ------------------------------------------------------------------------- */

/* A normalized deep copy of a desired or live object in *out (the caller owns it: json_decref):
 * null values, metadata.creationTimestamp and managedFields/resourceVersion/uid/generation are
 * dropped, status too except on CustomResourceDefinitions, protocol "TCP" is defaulted on
 * container and Service ports, and a Secret's stringData is folded into data as base64.
 * drift_compare does this itself; it is exposed so a sync engine can show or hash the same
 * form. Unlike a result, the copy of a Secret holds its values: never print or log it.
 * Returns 0, or GITOPS_EINVALID when `object` is not a JSON object. */
int drift_normalize(json_t **out, const json_t *object);

/* Compares two Kubernetes quantities ("500m", "0.5", "1Gi", "1073741824", "1e3") exactly.
 * Sets *equal; returns 0, or GITOPS_EINVALID when either is not a valid quantity. */
int drift_quantity_equal(int *equal, const char *a, const char *b);

#endif
