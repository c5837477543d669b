/* normalize: rewrites desired and live objects into one comparable form, so spellings the
 * apiserver changes on the way in (defaults, stringData, nulls) are not reported as drift. */
#include <stdbool.h>
#include <string.h>

#include <openssl/evp.h>

#include "drift/drift.h"
#include "drift/drift_internal.h"
#include "common/mask.h"

/* Removes null members everywhere: the apiserver never stores a null (SSA reads it as "unset"),
 * and kubectl-generated manifests carry "creationTimestamp: null" in pod templates. */
static void drop_nulls(json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		void *tmp;
		json_object_foreach_safe(v, tmp, k, c) {
			if (json_is_null(c))
				json_object_del(v, k);
			else
				drop_nulls(c);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c) drop_nulls(c);
	}
}

/* Defaults "protocol: TCP" on the items of every "ports" list that have a port or containerPort
 * and no protocol, as the apiserver does for containers (anywhere: pod templates also live in
 * custom resources), Services, NetworkPolicies and EndpointSlices. Done on both sides, so for a
 * list the server does not default it changes nothing; and it completes the merge key
 * (port, protocol) that list items are matched by. */
static void default_protocols(json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		json_object_foreach(v, k, c) {
			if (strcmp(k, "ports") == 0 && json_is_array(c)) {
				size_t i;
				json_t *p;
				json_array_foreach(c, i, p) {
					if (json_is_object(p) && !json_object_get(p, "protocol") &&
					    (json_object_get(p, "containerPort") ||
					     json_object_get(p, "port")))
						json_object_set_new(p, "protocol", json_string("TCP"));
				}
			}
			default_protocols(c);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c) default_protocols(c);
	}
}

/* Rewrites each base64 value of a Secret's data in the canonical form the apiserver stores
 * (it decodes on write, ignoring line breaks as Go's decoder does, and encodes on read), so a
 * manifest holding wrapped base64 is not drift. Values that do not decode stay as they are. */
static void canonical_base64(json_t *data)
{
	const char *k;
	json_t *c;
	json_object_foreach(data, k, c) {
		if (!json_is_string(c))
			continue;
		const char *in = json_string_value(c);
		size_t n = json_string_length(c);
		if (!memchr(in, '\n', n) && !memchr(in, '\r', n))
			continue; /* already flat (then canonical or rejected by the server) */
		unsigned char *raw;
		size_t len;
		if (gitops_base64_decode(&raw, &len, in, n, GITOPS_BASE64_LINES))
			continue;
		char *enc = gitops_base64_encode(raw, len);
		json_object_set_new(data, k, json_string(enc));
		OPENSSL_cleanse(enc, strlen(enc));
		free(enc);
		gitops_base64_free(raw, len);
	}
}

/* Folds stringData into data as base64, as the apiserver does on write (stringData wins over a
 * data key of the same name). */
static void fold_string_data(json_t *secret)
{
	json_t *sd = json_object_get(secret, "stringData");
	if (!json_is_object(sd)) {
		json_object_del(secret, "stringData");
		return;
	}
	json_t *data = json_object_get(secret, "data");
	if (!json_is_object(data)) {
		data = json_object();
		json_object_set_new(secret, "data", data);
	}
	const char *k;
	json_t *c;
	json_object_foreach(sd, k, c) {
		if (!json_is_string(c))
			continue;
		char *enc = gitops_base64_encode(json_string_value(c), json_string_length(c));
		json_object_set_new(data, k, json_string(enc));
		OPENSSL_cleanse(enc, strlen(enc));
		free(enc);
	}
	json_object_del(secret, "stringData");
}

/* 1 when default_protocols would complete an item of this "ports" list. */
static int ports_incomplete(const json_t *list)
{
	size_t i;
	json_t *p;
	json_array_foreach((json_t *)list, i, p)
		if (json_is_object(p) && !json_object_get(p, "protocol") &&
		    (json_object_get(p, "containerPort") || json_object_get(p, "port")))
			return 1;
	return 0;
}

/* 1 when normalizing would change member `k` of an object, of value `v`: a null in it (or it),
 * or a "ports" list in it (or it) with an item default_protocols completes. Read-only, so the
 * common case (nothing to rewrite) shares the member instead of copying it. */
static int needs_rewrite(const char *k, const json_t *v)
{
	if (json_is_null(v))
		return 1;
	if (json_is_array(v) && k && strcmp(k, "ports") == 0 && ports_incomplete(v))
		return 1;
	if (json_is_object(v)) {
		const char *ck;
		json_t *c;
		json_object_foreach((json_t *)v, ck, c)
			if (needs_rewrite(ck, c))
				return 1;
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach((json_t *)v, i, c)
			if (needs_rewrite(NULL, c))
				return 1;
	}
	return 0;
}

int drift__normalize(json_t **out, const json_t *object, int share)
{
	*out = NULL;
	if (!json_is_object(object))
		return gitops_error_set(GITOPS_EINVALID, "drift: object is not a JSON object");
	/* status belongs to controllers; a CRD's is kept because Flux does (its intent may carry
	 * one), and comparing only desired fields makes it harmless either way */
	const char *kind0 = json_string_value(json_object_get(object, "kind"));
	const char *api0 = json_string_value(json_object_get(object, "apiVersion"));
	bool keep_status = kind0 && strcmp(kind0, "CustomResourceDefinition") == 0;
	bool secret = kind0 && api0 && strcmp(kind0, "Secret") == 0 && strcmp(api0, "v1") == 0;
	/* written by the server only; never part of an intent */
	static const char *const server_only[] = {"creationTimestamp", "managedFields",
		"resourceVersion", "uid", "generation", "selfLink"};
	/* A new top level and metadata without what is dropped anyway (managedFields are most of a
	 * live object, and copying them to delete them was most of a comparison's cost). Below
	 * that, members are copied only when something in them is rewritten (a null, a port's
	 * protocol, a Secret's data) or the caller asks for a copy; otherwise they are shared,
	 * and the result must then be read only below its top level and its metadata. */
	json_t *o = json_object();
	bool copied = false;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)object, k, v) {
		if (!keep_status && strcmp(k, "status") == 0)
			continue;
		if (strcmp(k, "metadata") == 0 && json_is_object(v)) {
			json_t *md = json_object();
			const char *mk;
			json_t *mv;
			json_object_foreach(v, mk, mv) {
				size_t i = 0;
				while (i < sizeof(server_only) / sizeof(*server_only) && strcmp(mk, server_only[i]))
					i++;
				if (i < sizeof(server_only) / sizeof(*server_only))
					continue;
				if (share && !needs_rewrite(mk, mv)) {
					json_object_set(md, mk, mv);
				} else {
					json_object_set_new(md, mk, json_deep_copy(mv));
					copied = true;
				}
			}
			json_object_set_new(o, k, md);
		} else if (share && !secret && !needs_rewrite(k, v)) {
			json_object_set(o, k, v);
		} else {
			json_object_set_new(o, k, json_deep_copy(v));
			copied = true;
		}
	}
	if (!copied)
		goto done; /* nothing shared needs a rewrite; nothing else was kept */
	drop_nulls(o);
	default_protocols(o);
	if (secret) {
		if (json_is_object(json_object_get(o, "data")))
			canonical_base64(json_object_get(o, "data"));
		fold_string_data(o);
	}
done:
	*out = o;
	return 0;
}

int drift_normalize(json_t **out, const json_t *object)
{
	return drift__normalize(out, object, 0);
}

/* Masking itself lives in common/mask.c (one place for objects and text). */
json_t *drift__mask_secret_part(const json_t *value, int is_root)
{
	json_t *o = json_deep_copy(value);
	if (is_root) {
		gitops_mask_object(o);
		return o;
	}
	/* A part of a Secret (e.g. its annotations): masked as the Secret it belongs to would be. */
	json_t *wrap = json_pack("{s:s, s:s, s:o}", "apiVersion", "v1", "kind", "Secret", "part", o);
	gitops_mask_object(wrap);
	o = json_incref(json_object_get(wrap, "part"));
	json_decref(wrap);
	return o;
}

json_t *drift__mask_secret_object(const json_t *secret)
{
	return drift__mask_secret_part(secret, 1);
}
