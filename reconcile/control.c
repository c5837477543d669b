/* reconcile/control: readiness, status and pokes shared between `gitops run`'s reconcilers and
 * web/. One lock guards the environment table; waits poll an eventfd per environment beside the
 * cancellation token's, so a poke or SIGTERM ends them at once. */
#include "reconcile/control.h"
#include "history/history.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct cpipe {
	char *name, *repo_url, *main_ref;
	int fetch_fd;        /* eventfd: its fetcher is asked to fetch now */
	bool fetcher;        /* a fetcher waits on fetch_fd: pokes go there, not to the environments */
};

struct cenv {
	size_t pipe;         /* index into rec_control.p */
	char *name, *branch; /* branch: "refs/heads/x", NULL for promoted environments */
	int fd;              /* eventfd: poked */
	bool ready, leader;
	int rc;
	char *error, *target;
	long objects;
	int healthy;
	long long last_ms;
};

struct rec_control {
	pthread_mutex_t lock;
	rec_leases *leases;
	struct cpipe *p;     /* the pipelines, in the order registered */
	size_t n_p;
	/* how the daemon opens its workspaces and the state branch (rec_control_configure) */
	struct rec_workspace_options wo;
	char *wo_strs[7];
	struct cenv *e;
	size_t n;
};

static char *full_ref(const char *b)
{
	return !b ? NULL : !strncmp(b, "refs/", 5) ? gitops_strdup(b) : gitops_sprintf("refs/heads/%s", b);
}

static struct cenv *find(rec_control *c, const char *pipeline, const char *env);

static void poke_env(void *ud, const char *pipeline, const char *env)
{
	rec_control *c = ud;
	pthread_mutex_lock(&c->lock);
	struct cenv *e = find(c, pipeline, env);
	int fd = !e ? -1 : c->p[e->pipe].fetcher ? c->p[e->pipe].fetch_fd : e->fd;
	uint64_t one = 1;
	if (fd >= 0 && write(fd, &one, sizeof(one)) != sizeof(one))
		e = NULL;
	pthread_mutex_unlock(&c->lock);
}

rec_control *rec_control_new(rec_leases *leases)
{
	rec_control *c = gitops_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->leases = leases;
	if (leases)
		rec_leases_on_request(leases, poke_env, c);
	return c;
}

void rec_control_free(rec_control *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->e[i].name);
		free(c->e[i].branch);
		free(c->e[i].error);
		free(c->e[i].target);
		if (c->e[i].fd >= 0)
			close(c->e[i].fd);
	}
	free(c->e);
	for (size_t i = 0; i < c->n_p; i++) {
		free(c->p[i].name);
		free(c->p[i].repo_url);
		free(c->p[i].main_ref);
		if (c->p[i].fetch_fd >= 0)
			close(c->p[i].fetch_fd);
	}
	free(c->p);
	for (size_t i = 0; i < sizeof(c->wo_strs) / sizeof(c->wo_strs[0]); i++)
		free(c->wo_strs[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void rec_control_pipeline(rec_control *c, const char *pipeline, const char *repo_url, const char *main_branch)
{
	pthread_mutex_lock(&c->lock);
	struct cpipe *p = NULL;
	for (size_t i = 0; i < c->n_p && !p; i++)
		if (!strcmp(c->p[i].name, pipeline))
			p = &c->p[i];
	if (!p) {
		c->p = gitops_realloc(c->p, (c->n_p + 1) * sizeof(*c->p));
		p = &c->p[c->n_p++];
		memset(p, 0, sizeof(*p));
		p->name = gitops_strdup(pipeline);
		p->fetch_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	}
	free(p->repo_url);
	free(p->main_ref);
	p->repo_url = repo_url ? gitops_strdup(repo_url) : NULL;
	p->main_ref = full_ref(main_branch ? main_branch : "main");
	pthread_mutex_unlock(&c->lock);
}

static long pipe_index(rec_control *c, const char *pipeline)
{
	for (size_t i = 0; i < c->n_p; i++)
		if (!strcmp(c->p[i].name, pipeline ? pipeline : ""))
			return (long)i;
	return -1;
}

/* The environment `env` of `pipeline` (NULL: of any pipeline, the first one registered). */
static struct cenv *find(rec_control *c, const char *pipeline, const char *env)
{
	long pi = pipeline ? pipe_index(c, pipeline) : -1;
	if (pipeline && pi < 0)
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->e[i].name, env) && (!pipeline || c->e[i].pipe == (size_t)pi))
			return &c->e[i];
	return NULL;
}

void rec_control_env_add(rec_control *c, const char *pipeline, const char *env, const char *branch)
{
	pthread_mutex_lock(&c->lock);
	long pi = pipe_index(c, pipeline);
	if (pi >= 0 && !find(c, pipeline, env)) {
		c->e = gitops_realloc(c->e, (c->n + 1) * sizeof(*c->e));
		struct cenv *e = &c->e[c->n++];
		memset(e, 0, sizeof(*e));
		e->pipe = (size_t)pi;
		e->name = gitops_strdup(env);
		e->branch = full_ref(branch);
		e->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		e->objects = -1;
		e->healthy = -1;
		e->target = gitops_strdup("");
		if (c->leases)
			rec_leases_add(c->leases, pipeline, env);
	}
	pthread_mutex_unlock(&c->lock);
}

bool rec_control_may_act(rec_control *c, const char *pipeline, const char *env)
{
	if (!c || !c->leases)
		return true;
	bool held = rec_leases_held(c->leases, pipeline, env);
	pthread_mutex_lock(&c->lock);
	struct cenv *e = find(c, pipeline, env);
	if (e)
		e->leader = held;
	pthread_mutex_unlock(&c->lock);
	return held;
}

void rec_control_pass_done(rec_control *c, const char *pipeline, const char *env, int rc, const char *error, const char *target,
			   long objects, int healthy)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	struct cenv *e = find(c, pipeline, env);
	if (e) {
		e->ready = true;
		e->rc = rc;
		free(e->error);
		e->error = rc && error ? gitops_strdup(error) : NULL;
		if (target) {
			free(e->target);
			e->target = gitops_strdup(target);
		}
		if (objects >= 0)
			e->objects = objects;
		if (healthy >= 0)
			e->healthy = healthy;
		e->last_ms = gitops_now_ms();
	}
	pthread_mutex_unlock(&c->lock);
}

static bool wait_fd(int fd, gitops_cancel *cancel, long long ms);

bool rec_control_wait(rec_control *c, const char *pipeline, const char *env, gitops_cancel *cancel, long long ms)
{
	if (!c)
		return gitops_cancel_sleep(cancel, ms);
	pthread_mutex_lock(&c->lock);
	struct cenv *e = find(c, pipeline, env);
	int fd = e ? e->fd : -1;
	pthread_mutex_unlock(&c->lock);
	return wait_fd(fd, cancel, ms);
}

bool rec_control_fetch_wait(rec_control *c, const char *pipeline, gitops_cancel *cancel, long long ms)
{
	if (!c)
		return gitops_cancel_sleep(cancel, ms);
	pthread_mutex_lock(&c->lock);
	long pi = pipe_index(c, pipeline);
	int fd = -1;
	if (pi >= 0) {
		c->p[pi].fetcher = true;
		fd = c->p[pi].fetch_fd;
	}
	pthread_mutex_unlock(&c->lock);
	return wait_fd(fd, cancel, ms);
}

void rec_control_wake(rec_control *c, const char *pipeline)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	long pi = pipe_index(c, pipeline);
	for (size_t i = 0; i < c->n && pi >= 0; i++) {
		uint64_t one = 1;
		if (c->e[i].pipe == (size_t)pi && c->e[i].fd >= 0 && write(c->e[i].fd, &one, sizeof(one)) != sizeof(one))
			continue;
	}
	pthread_mutex_unlock(&c->lock);
}

/* Waits `ms` or until `fd` (an eventfd, -1: none) is written or the token is set; true when
 * cancelled. */
static bool wait_fd(int fd, gitops_cancel *cancel, long long ms)
{
	long long end = gitops_now_ms() + ms;
	for (;;) {
		if (gitops_cancel_is_set(cancel))
			return true;
		long long left = end - gitops_now_ms();
		if (left <= 0)
			return false;
		struct pollfd p[2] = {{.fd = gitops_cancel_fd(cancel), .events = POLLIN}, {.fd = fd, .events = POLLIN}};
		int r = poll(p, fd >= 0 ? 2 : 1, (int)(left > 1000 ? 1000 : left));
		if (r > 0 && fd >= 0 && (p[1].revents & POLLIN)) {
			uint64_t v;
			while (read(fd, &v, sizeof(v)) > 0)
				;
			return gitops_cancel_is_set(cancel);
		}
		if (r < 0 && errno != EINTR)
			return gitops_cancel_sleep(cancel, left);
	}
}

bool rec_control_ready(rec_control *c, char **why)
{
	*why = NULL;
	pthread_mutex_lock(&c->lock);
	if (!c->n_p)
		*why = gitops_strdup("the daemon is starting: gitops.yaml not read yet");
	for (size_t i = 0; i < c->n && !*why; i++)
		if (!c->e[i].ready)
			*why = c->n_p > 1 ? gitops_sprintf("environment %s of pipeline %s: first reconcile not finished",
							  c->e[i].name, c->p[c->e[i].pipe].name)
					  : gitops_sprintf("environment %s: first reconcile not finished", c->e[i].name);
	pthread_mutex_unlock(&c->lock);
	return *why == NULL;
}

size_t rec_control_poke(rec_control *c, const char *ref)
{
	pthread_mutex_lock(&c->lock);
	size_t n = 0;
	/* per pipeline: a push to its main branch or to one of its tracked branches */
	for (size_t pi = 0; pi < c->n_p; pi++) {
		bool match = !ref || (c->p[pi].main_ref && !strcmp(ref, c->p[pi].main_ref));
		for (size_t i = 0; i < c->n && !match; i++)
			match = c->e[i].pipe == pi && c->e[i].branch && !strcmp(c->e[i].branch, ref);
		size_t woken = 0;
		uint64_t one = 1;
		if (match && c->p[pi].fetcher) {
			/* one fetch for all of them; the fetcher wakes them once it is done */
			if (c->p[pi].fetch_fd >= 0 && write(c->p[pi].fetch_fd, &one, sizeof(one)) == sizeof(one))
				for (size_t i = 0; i < c->n; i++)
					woken += c->e[i].pipe == pi;
		} else {
			for (size_t i = 0; i < c->n && match; i++)
				if (c->e[i].pipe == pi && c->e[i].fd >= 0 && write(c->e[i].fd, &one, sizeof(one)) == sizeof(one))
					woken++;
		}
		if (woken && c->leases)
			rec_leases_request(c->leases, c->p[pi].name);
		n += woken;
	}
	pthread_mutex_unlock(&c->lock);
	return n;
}

char *rec_control_repo(rec_control *c, const char *pipeline)
{
	pthread_mutex_lock(&c->lock);
	long pi = pipeline ? pipe_index(c, pipeline) : c->n_p ? 0 : -1;
	char *r = pi >= 0 && c->p[pi].repo_url ? gitops_strdup(c->p[pi].repo_url) : NULL;
	pthread_mutex_unlock(&c->lock);
	return r;
}

char *rec_control_pipeline_name(rec_control *c, size_t i)
{
	pthread_mutex_lock(&c->lock);
	char *r = i < c->n_p && c->p[i].name ? gitops_strdup(c->p[i].name) : NULL;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int rec_control_status(json_t **out, rec_control *c, const char *env)
{
	*out = NULL;
	json_t *arr = json_array();
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++) {
		struct cenv *e = &c->e[i];
		if (env && strcmp(env, e->name))
			continue;
		json_t *row = json_pack("{s:s, s:s, s:s, s:b, s:b}", "environment", e->name, "pipeline", c->p[e->pipe].name,
					"target", e->target, "leader", c->leases ? e->leader : true, "ready", e->ready);
		json_object_set_new(row, "state", json_string(!e->ready ? "Unknown" : e->rc ? "Error" : e->target[0] ? "Synced" : "Never"));
		if (e->objects >= 0)
			json_object_set_new(row, "objects", json_pack("{s:I}", "managed", (json_int_t)e->objects));
		if (e->error)
			json_object_set_new(row, "error", json_string(e->error));
		json_array_append_new(arr, row);
	}
	pthread_mutex_unlock(&c->lock);
	if (env && !json_array_size(arr)) {
		json_decref(arr);
		return gitops_error_set(GITOPS_ENOTFOUND, "no environment %s in this daemon", env);
	}
	/* The state branch's part, read as gitops status reads it (each pipeline's own). */
	size_t i;
	json_t *row;
	json_array_foreach(arr, i, row) {
		char *pipeline = gitops_strdup(json_string_value(json_object_get(row, "pipeline")));
		hist *h = NULL;
		if (rec_control_history(&h, c, pipeline) == 0) {
			rec_status_history(row, h, json_string_value(json_object_get(row, "environment")));
			/* the daemon's view: the revision of the last sync recorded (status: the inventory's) */
			const char *synced = json_string_value(json_object_get(json_object_get(row, "lastSync"), "sha"));
			json_object_set_new(row, "synced", json_string(synced ? synced : ""));
		}
		hist_free(h);
		free(pipeline);
		gitops_error_clear();
	}
	*out = arr;
	return GITOPS_OK;
}

void rec_control_count_pending(rec_control *c, const char *pipeline, const char *env)
{
	char *repo = c ? rec_control_repo(c, pipeline) : NULL;
	hist *h = NULL;
	json_t *arr = NULL;
	/* recent requests only: a promotion stays pending until applied, rejected or superseded */
	struct hist_filter f = {.env = env, .type = "promotion.requested", .limit = 50};
	int rc = !repo ? GITOPS_ERROR : rec_control_history(&h, c, pipeline);
	if (!rc && (rc = hist_query(&arr, h, &f)) == GITOPS_ENOTFOUND) {
		arr = json_array(); /* no state branch yet: nothing is pending */
		rc = 0;
	}
	if (rc) {
		gitops_error_clear();
		hist_free(h);
		free(repo);
		return;
	}
	size_t i, pending = 0;
	json_t *ev;
	json_array_foreach(arr, i, ev) {
		json_t *p = NULL;
		const char *id = json_string_value(json_object_get(ev, "promotion"));
		if (!id)
			id = json_string_value(json_object_get(ev, "id"));
		if (id && hist_promotion_get(&p, h, id) == 0) {
			const char *st = json_string_value(json_object_get(p, "status"));
			pending += st && !strcmp(st, "pending");
		}
		json_decref(p);
		gitops_error_clear();
	}
	json_decref(arr);
	hist_free(h);
	free(repo);
	gitops_metric_set("gitops_promotions_pending", (double)pending, "pipeline", pipeline, "environment", env, NULL);
}

void rec_control_configure(rec_control *c, const struct rec_workspace_options *wo)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < sizeof(c->wo_strs) / sizeof(c->wo_strs[0]); i++)
		free(c->wo_strs[i]);
	const char *src[7] = {wo->repo, wo->data_dir, wo->kubeconfig, wo->context, wo->state_repo, wo->state_branch,
			      wo->main_branch};
	for (size_t i = 0; i < 7; i++)
		c->wo_strs[i] = src[i] ? gitops_strdup(src[i]) : NULL;
	c->wo = (struct rec_workspace_options){.repo = c->wo_strs[0], .data_dir = c->wo_strs[1], .kubeconfig = c->wo_strs[2],
					       .context = c->wo_strs[3], .state_repo = c->wo_strs[4],
					       .state_branch = c->wo_strs[5], .main_branch = c->wo_strs[6],
					       .kube_qps = wo->kube_qps, .render_timeout_ms = wo->render_timeout_ms,
					       .no_fetch = true, .pins_best_effort = true};
	pthread_mutex_unlock(&c->lock);
}

/* Runs fn with a copy of the configuration taken under the lock (strings duplicated). */
static int with_config(rec_control *c, const char *pipeline,
		       int (*fn)(void *out, const struct rec_workspace_options *wo, const char *repo), void *out)
{
	pthread_mutex_lock(&c->lock);
	struct rec_workspace_options wo = c->wo;
	char *s[8];
	const char **dst[7] = {&wo.repo, &wo.data_dir, &wo.kubeconfig, &wo.context, &wo.state_repo, &wo.state_branch,
			       &wo.main_branch};
	for (size_t i = 0; i < 7; i++)
		*dst[i] = s[i] = c->wo_strs[i] ? gitops_strdup(c->wo_strs[i]) : NULL;
	long pi = pipeline ? pipe_index(c, pipeline) : c->n_p ? 0 : -1;
	s[7] = pi >= 0 && c->p[pi].repo_url ? gitops_strdup(c->p[pi].repo_url) : NULL;
	pthread_mutex_unlock(&c->lock);
	int rc = s[7] ? fn(out, &wo, s[7]) : gitops_error_set(GITOPS_ERROR, "the daemon is starting");
	for (size_t i = 0; i < 8; i++)
		free(s[i]);
	return rc;
}

static int open_history(void *out, const struct rec_workspace_options *wo, const char *repo)
{
	return hist_open_default(out, wo->state_repo, wo->state_branch, repo);
}

static int open_workspace(void *out, const struct rec_workspace_options *wo, const char *repo)
{
	struct rec_workspace_options o = *wo;
	o.repo = repo;
	return rec_workspace_open(out, &o);
}

int rec_control_history(hist **out, rec_control *c, const char *pipeline)
{
	*out = NULL;
	return with_config(c, pipeline, open_history, out);
}

int rec_control_workspace(rec_workspace **out, rec_control *c, const char *pipeline)
{
	*out = NULL;
	return with_config(c, pipeline, open_workspace, out);
}
