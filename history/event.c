/* history/event.c: the event record: building one from the public struct, the schema check that
 * verification runs on every commit, ids, UTC times, and who/what triggered an event. */
#include "history/internal.h"
#include "common/mask.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const hist_event_types[] = {
	"promotion.requested", "promotion.approved", "promotion.rejected",
	"sync.started", "sync.succeeded", "sync.failed",
	"drift.detected", "drift.corrected",
	"health.degraded", "health.recovered",
	"rollback", "resume", "suspend",
	"daemon.error", "daemon.recovered",
	NULL,
};

bool hist_type_known(const char *type)
{
	for (size_t i = 0; type && hist_event_types[i]; i++)
		if (!strcmp(type, hist_event_types[i]))
			return true;
	return false;
}

static const char *const triggers[] = {"manual", "auto", "ci", "webhook", NULL};

void hist_new_id(char out[13])
{
	unsigned char r[6];
	if (RAND_bytes(r, sizeof(r)) != 1) {
		/* the OpenSSL RNG failing is not recoverable: ids must not repeat */
		fprintf(stderr, "gitops: RAND_bytes failed\n");
		abort();
	}
	for (int i = 0; i < 6; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

long long hist_now_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hist_format_time(char out[32], long long ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	snprintf(out, 32, "%.31s", tmp);
}

/* Accepts YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.fff]](Z|+hh:mm|-hh:mm). */
long long hist_time_ms(const char *t)
{
	if (!t)
		return -1;
	int y, mo, d, h = 0, mi = 0, s = 0, n = 0;
	if (sscanf(t, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	const char *p = t + 10;
	long long frac = 0;
	int off = 0;
	if (*p == 'T' || *p == ' ') {
		int m = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m) != 2 || m != 5)
			return -1;
		p += 1 + m;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &s, &m) != 1 || m != 2)
				return -1;
			p += 3;
		}
		if (*p == '.') {
			int digits = 0;
			for (p++; *p >= '0' && *p <= '9'; p++, digits++)
				if (digits < 3)
					frac = frac * 10 + (*p - '0');
			for (; digits < 3; digits++)
				frac *= 10;
		}
		if (*p == 'Z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int oh, om;
			if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5)
				return -1;
			off = (oh * 60 + om) * (*p == '+' ? 1 : -1);
			p += 1 + m;
		} else {
			return -1;
		}
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
	time_t e = timegm(&tm);
	return ((long long)e - off * 60LL) * 1000 + frac;
}

int hist_parse_time(long long *out_ms, const char *text)
{
	if (!text || !*text)
		return gitops_error_set(GITOPS_EINVALID, "empty time");
	char *end;
	long long n = strtoll(text, &end, 10);
	if (end != text && n >= 0 && end[0] && !end[1] && strchr("smhdw", end[0])) {
		long long unit = end[0] == 's' ? 1000LL : end[0] == 'm' ? 60000LL : end[0] == 'h' ? 3600000LL
			       : end[0] == 'd' ? 86400000LL : 7 * 86400000LL;
		*out_ms = hist_now_wall_ms() - n * unit;
		return 0;
	}
	long long t = hist_time_ms(text);
	if (t < 0)
		return gitops_error_set(GITOPS_EINVALID, "\"%s\" is not a time: use 30d, 12h, 90m, 45s, 2w (ago) or "
					"an RFC 3339 date such as 2026-11-01 or 2026-11-01T08:00:00Z", text);
	*out_ms = t;
	return 0;
}

const char *hist_default_trigger(void) { return HIST_TRIGGER_MANUAL; }

char *hist_default_actor(void)
{
	git_libgit2_init();
	git_config *cfg = NULL;
	git_repository *repo = NULL;
	char *out = NULL;
	/* the working directory's repository first: its own user.name (then global, system), as
	 * git commit would use; outside a repository, the global and system configuration */
	int g = git_repository_open_ext(&repo, ".", 0, NULL) == 0 ? git_repository_config_snapshot(&cfg, repo)
								   : git_config_open_default(&cfg);
	git_repository_free(repo);
	if (g == 0) {
		git_buf b = {0};
		if (git_config_get_string_buf(&b, cfg, "user.name") == 0 && b.ptr && *b.ptr)
			out = gitops_strdup(b.ptr);
		git_buf_dispose(&b);
		git_config_free(cfg);
	}
	git_error_clear();
	git_libgit2_shutdown();
	return out ? out : gitops_strdup("unknown");
}

static bool is_hex40(const char *s)
{
	if (!s || strlen(s) != 40)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Types that name a commit. */
static bool needs_sha(const char *type)
{
	return !strncmp(type, "promotion.", 10) || !strncmp(type, "sync.", 5) || !strcmp(type, "rollback");
}

int hist_event_build(json_t **out, const struct hist_event *ev)
{
	*out = NULL;
	if (!hist_type_known(ev->type))
		return gitops_error_set(GITOPS_EINVALID, "unknown event type \"%s\"", ev->type ? ev->type : "");
	if (!ev->environment || !*ev->environment)
		return gitops_error_set(GITOPS_EINVALID, "event %s: no environment", ev->type);
	if (needs_sha(ev->type) && !is_hex40(ev->sha))
		return gitops_error_set(GITOPS_EINVALID, "event %s: \"%s\" is not a full commit SHA", ev->type,
					ev->sha ? ev->sha : "");
	char id[13], now[32];
	hist_new_id(id);
	hist_format_time(now, hist_now_wall_ms());
	char *actor = ev->actor && *ev->actor ? gitops_strdup(ev->actor) : hist_default_actor();
	json_t *j = json_object();
	json_object_set_new(j, "v", json_integer(1));
	json_object_set_new(j, "id", json_string(id));
	json_object_set_new(j, "time", json_string(now));
	json_object_set_new(j, "type", json_string(ev->type));
	json_object_set_new(j, "environment", json_string(ev->environment));
	if (ev->app && *ev->app)
		json_object_set_new(j, "app", json_string(ev->app));
	if (ev->sha)
		json_object_set_new(j, "sha", json_string(ev->sha));
	json_object_set_new(j, "actor", json_string(actor));
	json_object_set_new(j, "trigger", json_string(ev->trigger ? ev->trigger : hist_default_trigger()));
	if (ev->reason && *ev->reason) {
		/* a failed sync's reason is apiserver text: no Secret value enters the log */
		char *reason = gitops_mask_text(ev->reason, NULL);
		json_object_set_new(j, "reason", json_string(reason));
		free(reason);
	}
	if (ev->has_counts)
		json_object_set_new(j, "counts", json_pack("{s:I, s:I, s:I, s:I, s:I}", "created", (json_int_t)ev->created,
							   "updated", (json_int_t)ev->updated, "unchanged",
							   (json_int_t)ev->unchanged, "pruned", (json_int_t)ev->pruned,
							   "failed", (json_int_t)ev->failed));
	if (ev->duration_ms >= 0)
		json_object_set_new(j, "durationMs", json_integer(ev->duration_ms));
	if (ev->commit_time > 0) {
		char ct[32];
		hist_format_time(ct, ev->commit_time * 1000);
		json_object_set_new(j, "commitTime", json_string(ct));
	}
	if (ev->promotion && *ev->promotion)
		json_object_set_new(j, "promotion", json_string(ev->promotion));
	if (ev->object && *ev->object)
		json_object_set_new(j, "object", json_string(ev->object));
	if (ev->count > 0)
		json_object_set_new(j, "count", json_integer(ev->count));
	if (ev->n_apps) {
		json_t *apps = json_array();
		for (size_t i = 0; i < ev->n_apps; i++)
			json_array_append_new(apps, json_string(ev->apps[i]));
		json_object_set_new(j, "apps", apps);
	}
	if (ev->n_failures) {
		/* bounded: an environment where everything fails must not make a huge commit */
		json_t *fs = json_array();
		for (size_t i = 0; i < ev->n_failures && i < HIST_MAX_FAILURES; i++) {
			char *r = gitops_mask_text(ev->failures[i].reason ? ev->failures[i].reason : "", NULL);
			size_t n = strlen(r);
			if (n > HIST_MAX_REASON) {
				n = HIST_MAX_REASON;
				while (n > 0 && ((unsigned char)r[n] & 0xC0) == 0x80)
					n--; /* not inside a UTF-8 sequence */
				r[n] = '\0';
			}
			json_array_append_new(fs, json_pack("{s:s, s:s}", "object", ev->failures[i].object ? ev->failures[i].object : "?",
							    "reason", r));
			free(r);
		}
		json_object_set_new(j, "failures", fs);
	}
	free(actor);
	int rc = hist_event_validate(j);
	if (rc) {
		json_decref(j);
		return rc;
	}
	*out = j;
	return 0;
}

char *hist_event_dump(const json_t *ev)
{
	char *s = json_dumps(ev, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!s) {
		fprintf(stderr, "gitops: out of memory\n");
		abort();
	}
	return s;
}

static int bad(const json_t *ev, const char *field, const char *why)
{
	const char *id = json_string_value(json_object_get(ev, "id"));
	return gitops_error_set(GITOPS_EINVALID, "event %s: %s %s", id ? id : "(no id)", field, why);
}

static bool is_str(const json_t *ev, const char *k) { return json_is_string(json_object_get(ev, k)); }

int hist_event_validate(const json_t *ev)
{
	if (!json_is_object(ev))
		return gitops_error_set(GITOPS_EINVALID, "event is not a JSON object");
	static const char *const known[] = {"v", "id", "time", "type", "environment", "app", "sha", "actor",
					    "trigger", "reason", "counts", "durationMs", "commitTime", "promotion",
					    "approvals", "status", "required", "from", "previous", "apps", "failures", "object", "count", "signature",
					    NULL};
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)ev, key, val) {
		bool ok = false;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = !strcmp(known[i], key);
		if (!ok)
			return bad(ev, key, "is not a known field");
	}
	if (json_integer_value(json_object_get(ev, "v")) != 1)
		return bad(ev, "v", "must be 1");
	const char *id = json_string_value(json_object_get(ev, "id"));
	if (!id || strlen(id) < 8 || strlen(id) > 40)
		return bad(ev, "id", "missing or malformed");
	if (!is_str(ev, "time") || hist_time_ms(json_string_value(json_object_get(ev, "time"))) < 0)
		return bad(ev, "time", "missing or not RFC 3339");
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!hist_type_known(type))
		return bad(ev, "type", "missing or unknown");
	const char *env = json_string_value(json_object_get(ev, "environment"));
	if (!env || !*env)
		return bad(ev, "environment", "missing");
	if (!is_str(ev, "actor") || !*json_string_value(json_object_get(ev, "actor")))
		return bad(ev, "actor", "missing");
	const char *trig = json_string_value(json_object_get(ev, "trigger"));
	bool tok = false;
	for (size_t i = 0; trig && triggers[i] && !tok; i++)
		tok = !strcmp(trig, triggers[i]);
	if (!tok)
		return bad(ev, "trigger", "must be manual, auto, ci or webhook");
	json_t *sha = json_object_get(ev, "sha");
	if (needs_sha(type) && !is_hex40(json_string_value(sha)))
		return bad(ev, "sha", "must be a 40-hex commit id");
	if (sha && !is_hex40(json_string_value(sha)))
		return bad(ev, "sha", "must be a 40-hex commit id");
	static const char *const strs[] = {"app", "reason", "promotion", "status", "from", "previous", "object", NULL};
	for (size_t i = 0; strs[i]; i++)
		if (json_object_get(ev, strs[i]) && !is_str(ev, strs[i]))
			return bad(ev, strs[i], "must be a string");
	json_t *c = json_object_get(ev, "counts");
	if (c) {
		static const char *const cn[] = {"created", "updated", "unchanged", "pruned", "failed", NULL};
		if (!json_is_object(c))
			return bad(ev, "counts", "must be an object");
		for (size_t i = 0; cn[i]; i++)
			if (!json_is_integer(json_object_get(c, cn[i])) || json_integer_value(json_object_get(c, cn[i])) < 0)
				return bad(ev, "counts", "needs non-negative integers created, updated, unchanged, pruned, failed");
	}
	json_t *cnt = json_object_get(ev, "count");
	if (cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 1))
		return bad(ev, "count", "must be a positive integer");
	json_t *d = json_object_get(ev, "durationMs");
	if (d && (!json_is_integer(d) || json_integer_value(d) < 0))
		return bad(ev, "durationMs", "must be a non-negative integer");
	if (json_object_get(ev, "commitTime") && hist_time_ms(json_string_value(json_object_get(ev, "commitTime"))) < 0)
		return bad(ev, "commitTime", "must be RFC 3339");
	json_t *apps = json_object_get(ev, "apps"), *fails = json_object_get(ev, "failures");
	if (apps && (strncmp(type, "sync.", 5) || !json_is_array(apps)))
		return bad(ev, "apps", "must be an array of app names, on sync events only");
	size_t k;
	json_t *x;
	json_array_foreach(apps, k, x) if (!json_is_string(x)) return bad(ev, "apps", "must be an array of app names");
	if (fails && (strcmp(type, "sync.failed") || !json_is_array(fails) || json_array_size(fails) > HIST_MAX_FAILURES))
		return bad(ev, "failures", "must be an array of at most 20 {object, reason}, on sync.failed only");
	json_array_foreach(fails, k, x) {
		if (!json_is_object(x) || json_object_size(x) != 2 || !is_str(x, "object") || !is_str(x, "reason") ||
		    strlen(json_string_value(json_object_get(x, "reason"))) > HIST_MAX_REASON)
			return bad(ev, "failures", "entries must be {object, reason} with a reason of at most 512 bytes");
	}
	json_t *req = json_object_get(ev, "required");
	if (req && (!json_is_integer(req) || json_integer_value(req) < 0))
		return bad(ev, "required", "must be a non-negative integer");
	if (!strncmp(type, "promotion.", 10) && !is_str(ev, "promotion"))
		return bad(ev, "promotion", "missing (the promotion id)");
	if (!strcmp(type, "promotion.requested")) {
		const char *st = json_string_value(json_object_get(ev, "status"));
		if (!st || (strcmp(st, "pending") && strcmp(st, "applied")))
			return bad(ev, "status", "must be pending or applied");
		if (!json_is_integer(req))
			return bad(ev, "required", "missing");
	}
	json_t *ap = json_object_get(ev, "approvals");
	if (!strcmp(type, "promotion.approved") || !strcmp(type, "promotion.rejected")) {
		if (!json_is_array(ap) || json_array_size(ap) != 1)
			return bad(ev, "approvals", "must hold exactly one signed record");
	} else if (ap) {
		return bad(ev, "approvals", "only belongs to promotion.approved / promotion.rejected");
	}
	json_t *sg = json_object_get(ev, "signature");
	if (sg) {
		if (!strncmp(type, "promotion.", 10) || !strcmp(type, "rollback") || !strcmp(type, "resume"))
			return bad(ev, "signature", "only belongs to sync, health and drift records");
		if (!json_is_object(sg) || json_object_size(sg) != 2 || !is_str(sg, "key") || !is_str(sg, "value"))
			return bad(ev, "signature", "must be {key, value}");
	}
	size_t i;
	json_t *a;
	json_array_foreach(ap, i, a) {
		const char *dec = json_string_value(json_object_get(a, "decision"));
		if (!json_is_object(a) || !is_str(a, "approver") || !is_str(a, "key") || !is_str(a, "signature") || !dec ||
		    strcmp(dec, !strcmp(type, "promotion.approved") ? "approve" : "reject"))
			return bad(ev, "approvals", "need approver, key, signature and the matching decision");
	}
	return 0;
}
