/* common/mask.h: the one place that keeps Secret values out of output. Every path that prints,
 * logs or records an object or text that came from the apiserver or a renderer goes through
 * these two functions: render output and drift results (gitops_mask_object), apiserver Status
 * messages, renderer stderr, progress lines, CLI error lines and history events
 * (gitops_mask_text). Both are pure functions (no global state): safe from any thread. */
#ifndef GITOPS_COMMON_MASK_H
#define GITOPS_COMMON_MASK_H

#include <stddef.h>
#include <jansson.h>

/* What a masked value is replaced by. */
#define GITOPS_MASK "***"

/* Masks `obj` in place when it is a Secret (apiVersion v1, kind Secret): every value of `data`
 * and `stringData` whatever its type (a `data` or `stringData` that is not a map is masked as a
 * whole), and the `kubectl.kubernetes.io/last-applied-configuration` annotation, which embeds the
 * whole Secret, wherever it appears in the object. Other kinds are left alone. Returns how many
 * values were masked. */
size_t gitops_mask_object(json_t *obj);

/* Masks a copy of `text` (an apiserver message, a renderer's stderr, a progress line, an event's
 * reason). `objects` is what the text is about, when known: one object, an array of objects, or
 * NULL. Replaced by "***":
 *  - every value the Secrets among `objects` carry (data values in base64 and decoded,
 *    stringData values, scalars as the apiserver prints them, the last-applied annotation), in
 *    clear and in their JSON/Go-quoted escaped forms;
 *  - whatever the objects, what embeds Secret content: the last-applied annotation's value, and
 *    in text that names a Secret, the `data`/`stringData` maps of an object dump (Go
 *    `data:map[...]`, JSON `"data":{...}`) and the values the apiserver quotes
 *    (`Invalid value: ...`, `Value:...}`).
 * Returns a new string the caller frees; NULL text gives NULL. */
char *gitops_mask_text(const char *text, const json_t *objects);

#endif
