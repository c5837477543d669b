/* drift internals shared by the module's files: the result's layout and helpers that are not
 * part of the public API. Not installed; include only from drift/ *.c. */
#ifndef GITOPS_DRIFT_INTERNAL_H
#define GITOPS_DRIFT_INTERNAL_H

#include "drift/drift.h"

struct drift_result {
	drift_state state;
	char *api_version, *group, *kind, *namespace_, *name;
	/* MISSING: the normalized, masked desired object; EXTRA: the live one; else NULL. */
	json_t *object;
	/* paths are owned (free), values are owned references (json_decref); both masked. */
	drift_field *fields;
	size_t nfields, cap;
};

/* 1 when `s` is a valid Kubernetes quantity. */
int drift__quantity_parse_ok(const char *s);

/* Deletes from `object` every path the rules in `ignore` name for this object's identity. */
void drift__ignore_apply(const drift_ignore *ignore, const char *group, const char *kind,
			 const char *namespace_, const char *name, json_t *object);
/* 1 when a rule with the empty pointer ("the whole object") matches this identity. */
int drift__ignore_whole(const drift_ignore *ignore, const char *group, const char *kind,
			const char *namespace_, const char *name);

/* 1 when a rule naming a path (which drift__ignore_apply deletes) matches this identity. */
int drift__ignore_paths(const drift_ignore *ignore, const char *group, const char *kind,
			const char *namespace_, const char *name);

/* drift_normalize; with `share`, members nothing rewrites are shared with `object` instead of
 * copied (the result's top level and metadata are its own; below them it must not be
 * changed). */
int drift__normalize(json_t **out, const json_t *object, int share);

/* A deep copy of a Secret with every data/stringData value (and the last-applied annotation,
 * which embeds them) replaced by a marker. New reference. */
json_t *drift__mask_secret_object(const json_t *secret);
/* A deep copy of part of a Secret (the whole object when is_root) with the same masking; for
 * any part it replaces the last-applied annotation wherever it appears. New reference. */
json_t *drift__mask_secret_part(const json_t *value, int is_root);

#endif
