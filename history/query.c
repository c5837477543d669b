/* history/query.c: reading the log: a local index (one tab-separated line per event, rebuilt
 * from the branch, brought up to date incrementally), filtered queries, `history show`, DORA
 * metrics (`history verify` is in verify.c). */
#include "history/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* ---- index files ------------------------------------------------------------------------- */

char *hist_index_base(hist *h)
{
	unsigned char md[32];
	unsigned int n = 0;
	char *key = gitops_sprintf("%s\n%s", h->url ? h->url : h->path, h->ref);
	char *abs = h->url ? NULL : realpath(h->path, NULL);
	if (abs) {
		free(key);
		key = gitops_sprintf("%s\n%s", abs, h->ref);
		free(abs);
	}
	EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL);
	free(key);
	char hex[41];
	for (int i = 0; i < 20; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	char *dir = gitops_sprintf("%s/history", h->data_dir);
	mkdir(h->data_dir, 0700);
	mkdir(dir, 0700);
	char *base = gitops_sprintf("%s/%s", dir, hex);
	free(dir);
	return base;
}

struct index {
	gitops_buf data;
	struct hist_rec *recs;
	size_t n;
};

static void index_free(struct index *x)
{
	gitops_buf_free(&x->data);
	free(x->recs);
}

static void field(gitops_buf *b, const char *s)
{
	for (; s && *s; s++)
		gitops_buf_putc(b, (*s == '\t' || *s == '\n') ? ' ' : *s);
	gitops_buf_putc(b, '\t');
}

/* Appends one index line for commit `c` (its message is the event). */
static void index_line(gitops_buf *b, const git_oid *id, const json_t *ev)
{
	char hex[41];
	git_oid_tostr(hex, sizeof(hex), id);
	field(b, hex);
	field(b, str(ev, "id"));
	gitops_buf_printf(b, "%lld\t", hist_time_ms(str(ev, "time")));
	field(b, str(ev, "type"));
	field(b, str(ev, "environment"));
	field(b, str(ev, "app"));
	field(b, str(ev, "sha"));
	field(b, str(ev, "actor"));
	field(b, str(ev, "promotion"));
	long long ct = str(ev, "commitTime") ? hist_time_ms(str(ev, "commitTime")) : 0;
	gitops_buf_printf(b, "%lld\t%lld\t", ct > 0 ? ct : 0,
			  (long long)json_integer_value(json_object_get(json_object_get(ev, "counts"), "failed")));
	char *j = hist_event_dump(ev);
	gitops_buf_puts(b, j);
	free(j);
	gitops_buf_putc(b, '\n');
}

static int parse_index(struct index *x)
{
	size_t cap = 0;
	char *p = x->data.ptr, *end = x->data.ptr + x->data.len;
	while (p && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		*nl = '\0';
		char *f[12];
		int k = 0;
		f[k++] = p;
		for (char *q = p; k < 12 && (q = strchr(q, '\t')); q++) {
			*q = '\0';
			f[k++] = q + 1;
		}
		if (k == 12) {
			if (x->n == cap) {
				cap = cap ? cap * 2 : 1024;
				x->recs = gitops_realloc(x->recs, cap * sizeof(*x->recs));
			}
			struct hist_rec *r = &x->recs[x->n++];
			r->commit = f[0];
			r->id = f[1];
			r->time_ms = strtoll(f[2], NULL, 10);
			r->type = f[3];
			r->env = f[4];
			r->app = f[5];
			r->sha = f[6];
			r->actor = f[7];
			r->promotion = f[8];
			r->commit_time_ms = strtoll(f[9], NULL, 10);
			r->failed = (unsigned)strtoul(f[10], NULL, 10);
			r->json = f[11];
		}
		p = nl + 1;
	}
	return 0;
}

/* Loads the index, bringing it up to date with the branch first. */
static int index_load(struct index *x, hist *h)
{
	memset(x, 0, sizeof(*x));
	git_oid tip;
	bool exists;
	int rc = hist_tip_verified(&tip, &exists, h);
	if (!rc && !exists)
		rc = gitops_error_set(GITOPS_ENOTFOUND, "no state branch %s: nothing was recorded there yet (a mistyped "
				      "--state-branch or --state-repo?)", h->desc);
	if (rc)
		return rc;
	char *base = hist_index_base(h);
	char *datap = gitops_sprintf("%s.idx", base), *metap = gitops_sprintf("%s.meta", base);
	gitops_buf meta = GITOPS_BUF_INIT;
	git_oid old;
	bool have_old = false;
	size_t len = 0;
	if (gitops_read_file(&meta, metap, 4096) == 0) {
		char hex[41] = "";
		unsigned long long l = 0;
		if (sscanf(gitops_buf_cstr(&meta), "%40s %llu", hex, &l) == 2 && git_oid_fromstr(&old, hex) == 0) {
			have_old = true;
			len = (size_t)l;
		}
	}
	gitops_error_clear();
	if (have_old && gitops_read_file(&x->data, datap, 0) == 0 && x->data.len >= len) {
		x->data.len = len; /* a writer killed after appending lines but before the meta: drop them */
	} else {
		have_old = false;
		gitops_buf_clear(&x->data);
	}
	gitops_error_clear();
	if (!exists) {
		gitops_buf_clear(&x->data);
		goto parse;
	}
	if (have_old && git_oid_equal(&old, &tip))
		goto parse;
	if (have_old && git_graph_descendant_of(h->repo, &tip, &old) != 1) {
		have_old = false;
		gitops_buf_clear(&x->data);
	}
	git_error_clear();
	git_revwalk *w = NULL;
	int g = git_revwalk_new(&w, h->repo);
	if (g == 0)
		g = git_revwalk_push(w, &tip);
	if (g == 0 && have_old)
		g = git_revwalk_hide(w, &old);
	if (g == 0)
		git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
	if (g < 0) {
		rc = gitops_git_fail(g, GITOPS_EGIT, h->ref);
		git_revwalk_free(w);
		goto out;
	}
	size_t appended_from = x->data.len;
	git_oid id;
	while ((g = git_revwalk_next(&id, w)) == 0) {
		git_commit *c = NULL;
		if (git_commit_lookup(&c, h->repo, &id) < 0)
			continue;
		json_t *ev = json_loads(git_commit_message(c), 0, NULL);
		git_commit_free(c);
		if (ev && json_is_object(ev))
			index_line(&x->data, &id, ev);
		json_decref(ev);
	}
	git_revwalk_free(w);
	git_error_clear();
	/* persist: append the new lines, then the meta (the meta names the valid length) */
	int fd = open(datap, O_WRONLY | O_CREAT | (appended_from ? 0 : O_TRUNC), 0600);
	if (fd >= 0) {
		bool okw = ftruncate(fd, (off_t)appended_from) == 0 && lseek(fd, (off_t)appended_from, SEEK_SET) >= 0;
		size_t left = x->data.len - appended_from;
		const char *p = x->data.ptr + appended_from;
		while (okw && left) {
			ssize_t w2 = write(fd, p, left);
			if (w2 <= 0)
				break;
			p += w2;
			left -= (size_t)w2;
		}
		close(fd);
		if (okw && !left) {
			char hex[41];
			git_oid_tostr(hex, sizeof(hex), &tip);
			char *m = gitops_sprintf("%s %zu\n", hex, x->data.len);
			gitops_write_file(metap, m, strlen(m), 0600);
			free(m);
		}
	}
	gitops_error_clear(); /* the index is a cache: failing to persist it is not an error */
parse:
	if (x->data.len) {
		gitops_buf_putc(&x->data, '\0'); /* keep the NUL inside for parse_index's strchr */
		x->data.len--;
	}
	parse_index(x);
out:
	gitops_buf_free(&meta);
	free(datap);
	free(metap);
	free(base);
	return rc;
}

/* ---- queries ----------------------------------------------------------------------------- */

static bool type_match(const char *want, const char *type)
{
	size_t n = strlen(want);
	if (n && (want[n - 1] == '.' || want[n - 1] == '*'))
		return !strncmp(type, want, want[n - 1] == '*' ? n - 1 : n);
	return !strcmp(want, type);
}

/* An environment-wide sync matches --app when the app is among the apps it changed. */
static bool changed_app(const struct hist_rec *r, const char *app)
{
	if (*r->app || strncmp(r->type, "sync.", 5) || !strstr(r->json, "\"apps\""))
		return false;
	json_t *ev = json_loads(r->json, 0, NULL);
	bool found = false;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(ev, "apps"), i, a) found = found || (json_is_string(a) && !strcmp(json_string_value(a), app));
	json_decref(ev);
	return found;
}

static bool rec_match(const struct hist_rec *r, const struct hist_filter *f)
{
	if (f->env && strcmp(f->env, r->env))
		return false;
	if (f->app && strcmp(f->app, r->app) && !changed_app(r, f->app))
		return false;
	if (f->type && !type_match(f->type, r->type))
		return false;
	if (f->actor && strcmp(f->actor, r->actor))
		return false;
	if (f->sha && (!*r->sha || strncmp(r->sha, f->sha, strlen(f->sha))))
		return false;
	if (f->promotion && strcmp(f->promotion, r->promotion))
		return false;
	if (f->since_ms && r->time_ms < f->since_ms)
		return false;
	if (f->until_ms && r->time_ms >= f->until_ms)
		return false;
	return true;
}

int hist_query(json_t **out, hist *h, const struct hist_filter *f)
{
	*out = NULL;
	struct index x;
	int rc = index_load(&x, h);
	if (rc)
		return rc;
	json_t *arr = json_array();
	for (size_t i = x.n; i-- > 0;) {
		if (!rec_match(&x.recs[i], f))
			continue;
		json_t *ev = json_loads(x.recs[i].json, 0, NULL);
		if (ev)
			json_array_append_new(arr, ev);
		if (f->limit && json_array_size(arr) >= f->limit)
			break;
	}
	index_free(&x);
	*out = arr;
	return 0;
}

int hist_show(json_t **out, hist *h, const char *id)
{
	*out = NULL;
	struct index x;
	int rc = index_load(&x, h);
	if (rc)
		return rc;
	json_t *ev = NULL, *events = json_array();
	bool promo = false;
	for (size_t i = 0; i < x.n; i++) {
		if (!strcmp(x.recs[i].id, id) && !ev)
			ev = json_loads(x.recs[i].json, 0, NULL);
		if (!strcmp(x.recs[i].promotion, id)) {
			promo = true;
			json_array_append_new(events, json_loads(x.recs[i].json, 0, NULL));
		}
	}
	index_free(&x);
	if (promo && (!ev || !strcmp(str(ev, "type"), "promotion.requested"))) {
		json_t *p = NULL;
		if (hist_promotion_get(&p, h, id))
			gitops_error_clear();
		if (!p)
			p = json_pack("{s:s, s:s}", "id", id, "status", "unknown");
		if (!json_object_get(p, "approvals")) {
			/* decided: the snapshot keeps a summary; the events have the rest */
			json_t *apps = json_array(), *e2;
			size_t i;
			json_array_foreach(events, i, e2) {
				if (!strcmp(str(e2, "type"), "promotion.requested")) {
					json_object_set(p, "from", json_object_get(e2, "from"));
					json_object_set(p, "required", json_object_get(e2, "required"));
					json_object_set(p, "requestedBy", json_object_get(e2, "actor"));
					json_object_set(p, "requestedAt", json_object_get(e2, "time"));
				}
				json_t *a = json_array_get(json_object_get(e2, "approvals"), 0);
				if (a) {
					json_t *c = json_deep_copy(a);
					json_object_set(c, "time", json_object_get(e2, "time"));
					json_object_set(c, "event", json_object_get(e2, "id"));
					json_array_append_new(apps, c);
				}
			}
			json_object_set_new(p, "approvals", apps);
		}
		json_decref(ev);
		*out = json_pack("{s:o, s:o}", "promotion", p ? p : json_pack("{s:s}", "id", id), "events", events);
		return 0;
	}
	json_decref(events);
	if (!ev)
		return gitops_error_set(GITOPS_ENOTFOUND, "no event or promotion %s in %s", id, h->desc);
	*out = ev;
	return 0;
}

/* ---- DORA -------------------------------------------------------------------------------- */

/* An open-addressing set of "env\nsha" strings (first healthy deploy per environment). */
struct sset {
	char **k;
	size_t cap, n;
};

static unsigned long long fnv(const char *a, const char *b)
{
	unsigned long long x = 1469598103934665603ULL;
	for (; *a; a++)
		x = (x ^ (unsigned char)*a) * 1099511628211ULL;
	x = (x ^ '\n') * 1099511628211ULL;
	for (; *b; b++)
		x = (x ^ (unsigned char)*b) * 1099511628211ULL;
	return x;
}

/* Adds (a, b); true when it was not there. */
static bool sset_add(struct sset *s, const char *a, const char *b)
{
	if ((s->n + 1) * 2 > s->cap) {
		struct sset t = {gitops_calloc(s->cap ? s->cap * 2 : 256, sizeof(char *)), s->cap ? s->cap * 2 : 256, 0};
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->k[i])
				continue;
			char *nl = strchr(s->k[i], '\n');
			*nl = '\0';
			sset_add(&t, s->k[i], nl + 1);
			free(s->k[i]);
		}
		free(s->k);
		*s = t;
	}
	size_t al = strlen(a);
	for (size_t i = fnv(a, b) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!s->k[i]) {
			s->k[i] = gitops_sprintf("%s\n%s", a, b);
			s->n++;
			return true;
		}
		if (!strncmp(s->k[i], a, al) && s->k[i][al] == '\n' && !strcmp(s->k[i] + al + 1, b))
			return false;
	}
}

static void sset_free(struct sset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->k[i]);
	free(s->k);
}

struct env_track {
	const char *env;
	const char *last_healthy; /* SHA last deployed healthy */
	const char *attempt;      /* SHA of the current change */
	bool attempt_failed;
	long long failing_since;  /* -1: not failing */
};

struct samples {
	long long *v;
	size_t n, cap;
};

static void push_sample(struct samples *s, long long v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = gitops_realloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = v;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static void stats(const struct samples *s, long long *median, long long *mean)
{
	if (!s->n) {
		*median = *mean = -1;
		return;
	}
	qsort(s->v, s->n, sizeof(*s->v), cmp_ll);
	*median = s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
	long double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	*mean = (long long)(sum / s->n);
}

void hist_dora_compute(struct hist_dora *out, const struct hist_rec *recs, size_t n, const char *env,
		       long long since_ms, long long until_ms)
{
	memset(out, 0, sizeof(*out));
	if (!until_ms)
		until_ms = hist_now_wall_ms();
	struct env_track *envs = NULL;
	size_t ne = 0;
	struct sset seen = {0};
	struct samples lead = {0}, restore = {0};
	long long first = -1;
	for (size_t i = 0; i < n; i++) {
		const struct hist_rec *r = &recs[i];
		if (env && strcmp(env, r->env))
			continue;
		if (*r->app && !strncmp(r->type, "sync.", 5))
			continue; /* one app's sync is not a deploy of the environment */
		if (r->time_ms >= until_ms)
			break;
		bool in = r->time_ms >= since_ms;
		if (in && first < 0)
			first = r->time_ms;
		struct env_track *t = NULL;
		for (size_t k = 0; k < ne && !t; k++)
			if (!strcmp(envs[k].env, r->env))
				t = &envs[k];
		if (!t) {
			envs = gitops_realloc(envs, (ne + 1) * sizeof(*envs));
			t = &envs[ne++];
			*t = (struct env_track){r->env, NULL, NULL, false, -1};
		}
		bool healthy = !strcmp(r->type, "sync.succeeded") && r->failed == 0;
		bool failed_sync = !strcmp(r->type, "sync.failed") || (!strcmp(r->type, "sync.succeeded") && r->failed);
		bool failure = failed_sync || !strcmp(r->type, "health.degraded") || !strcmp(r->type, "rollback");
		if ((healthy || failed_sync) && *r->sha && (!t->attempt || strcmp(t->attempt, r->sha))) {
			/* a new change reaches the environment */
			t->attempt = r->sha;
			t->attempt_failed = false;
			if (in)
				out->changes++;
		}
		if (failure) {
			if (t->attempt && !t->attempt_failed && !(t->last_healthy && !strcmp(t->attempt, t->last_healthy) &&
								   !strcmp(r->type, "sync.failed"))) {
				t->attempt_failed = true;
				if (in)
					out->failed_changes++;
			}
			if (t->failing_since < 0)
				t->failing_since = r->time_ms;
		}
		if (healthy) {
			if (!t->last_healthy || strcmp(t->last_healthy, r->sha)) {
				if (in)
					out->deployments++;
				t->last_healthy = r->sha;
			}
			if (sset_add(&seen, r->env, r->sha) && in && r->commit_time_ms > 0 && r->time_ms >= r->commit_time_ms)
				push_sample(&lead, r->time_ms - r->commit_time_ms);
		}
		if ((healthy || !strcmp(r->type, "health.recovered")) && t->failing_since >= 0) {
			if (in)
				push_sample(&restore, r->time_ms - t->failing_since);
			t->failing_since = -1;
		}
	}
	out->since_ms = since_ms ? since_ms : (first > 0 ? first : until_ms);
	out->until_ms = until_ms;
	double days = (double)(out->until_ms - out->since_ms) / 86400000.0;
	out->per_day = days > 0 ? out->deployments / (days < 1.0 / 24 ? 1.0 / 24 : days) : 0;
	out->failure_rate = out->changes ? (double)out->failed_changes / out->changes : 0;
	out->lead_samples = (unsigned)lead.n;
	out->restores = (unsigned)restore.n;
	stats(&lead, &out->lead_median_ms, &out->lead_mean_ms);
	stats(&restore, &out->restore_median_ms, &out->restore_mean_ms);
	free(lead.v);
	free(restore.v);
	free(envs);
	sset_free(&seen);
}

int hist_dora(struct hist_dora *out, hist *h, const char *env, long long since_ms, long long until_ms)
{
	struct index x;
	int rc = index_load(&x, h);
	if (rc)
		return rc;
	hist_dora_compute(out, x.recs, x.n, env, since_ms, until_ms);
	index_free(&x);
	return 0;
}

