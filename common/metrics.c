/* common: the process-wide metrics registry behind /metrics. The table below is the one place
 * where a metric's name, type, help and buckets are declared; README "Metrics" mirrors it. */
#include "common/common.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mtype { COUNTER, GAUGE, HISTOGRAM };

/* Seconds: from a fast no-op pass to a slow health gate (Flux spans 0.01 to 1800 s). */
static const double RECONCILE_BUCKETS[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900};
static const double FETCH_BUCKETS[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

struct series {
	char *labels;     /* rendered: environment="dev",result="succeeded" ("" none) */
	double value;     /* counter, gauge */
	double sum;       /* histogram */
	unsigned long long count, *buckets; /* histogram: per bucket (not cumulative) */
};

struct family {
	const char *name, *help;
	enum mtype type;
	const double *bounds;
	size_t n_bounds;
	struct series *s;
	size_t n;
};

#define B(a) a, sizeof(a) / sizeof(a[0])
static struct family families[] = {
	{"gitops_build_info", "gitops version (value 1)", GAUGE, NULL, 0, NULL, 0},
	{"gitops_sync_total", "Syncs by environment and result (succeeded: applied and its health gate passed)", COUNTER,
	 NULL, 0, NULL, 0},
	{"gitops_reconcile_duration_seconds", "Duration of one reconcile pass (fetch, plan, sync, health gate)", HISTOGRAM,
	 B(RECONCILE_BUCKETS), NULL, 0},
	{"gitops_drift_detected_total", "Drift episodes opened (an object changed away from git)", COUNTER, NULL, 0, NULL, 0},
	{"gitops_drift_corrected_total", "Drift corrections applied by self-heal", COUNTER, NULL, 0, NULL, 0},
	{"gitops_managed_objects", "Objects gitops manages and watches in the environment", GAUGE, NULL, 0, NULL, 0},
	{"gitops_environment_healthy", "1 when the last health gate passed, 0 when it failed", GAUGE, NULL, 0, NULL, 0},
	{"gitops_git_fetch_total", "Fetches of the manifests repository by result (succeeded, failed)", COUNTER, NULL, 0,
	 NULL, 0},
	{"gitops_git_fetch_duration_seconds", "Duration of one fetch of the manifests repository", HISTOGRAM,
	 B(FETCH_BUCKETS), NULL, 0},
	{"gitops_kube_requests_total", "Requests to Kubernetes API servers by HTTP verb and status code (0: no reply)",
	 COUNTER, NULL, 0, NULL, 0},
	{"gitops_promotions_pending", "Promotions requested and not yet applied, per target environment", GAUGE, NULL, 0,
	 NULL, 0},
	{"gitops_webhook_requests_total",
	 "Incoming webhooks by provider and result (accepted, ignored, unauthorized, too_large, bad_request)", COUNTER,
	 NULL, 0, NULL, 0},
	{"gitops_leader", "1 on the replica that holds the environment's Lease and reconciles it, else 0", GAUGE, NULL, 0,
	 NULL, 0},
	{"gitops_notifications_total", "Outgoing notifications by sink kind and result (delivered, retried, dropped)",
	 COUNTER, NULL, 0, NULL, 0},
};
#undef B
#define N_FAMILIES (sizeof(families) / sizeof(families[0]))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct family *family(const char *name, enum mtype type)
{
	for (size_t i = 0; i < N_FAMILIES; i++)
		if (!strcmp(families[i].name, name)) {
			assert(families[i].type == type && "metric used with the wrong type");
			return &families[i];
		}
	assert(!"metric not declared in common/metrics.c");
	abort();
}

/* `k="v",...` with the text format's escapes (\\, \", \n). */
static char *render_labels(va_list ap)
{
	gitops_buf b = GITOPS_BUF_INIT;
	const char *k;
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		gitops_buf_printf(&b, "%s%s=\"", b.len ? "," : "", k);
		for (const char *p = v ? v : ""; *p; p++) {
			if (*p == '\\' || *p == '"')
				gitops_buf_putc(&b, '\\');
			if (*p == '\n')
				gitops_buf_puts(&b, "\\n");
			else
				gitops_buf_putc(&b, *p);
		}
		gitops_buf_putc(&b, '"');
	}
	char *s = gitops_buf_detach(&b);
	return s ? s : gitops_strdup("");
}

/* The series of `f` with these labels, created at zero. Called with the lock held. */
static struct series *series(struct family *f, char *labels)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->s[i].labels, labels)) {
			free(labels);
			return &f->s[i];
		}
	f->s = gitops_realloc(f->s, (f->n + 1) * sizeof(*f->s));
	struct series *s = &f->s[f->n++];
	memset(s, 0, sizeof(*s));
	s->labels = labels;
	if (f->type == HISTOGRAM)
		s->buckets = gitops_calloc(f->n_bounds, sizeof(*s->buckets));
	return s;
}

void gitops_metric_add(const char *name, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	char *labels = render_labels(ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	series(family(name, COUNTER), labels)->value += v;
	pthread_mutex_unlock(&lock);
}

void gitops_metric_set(const char *name, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	char *labels = render_labels(ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	series(family(name, GAUGE), labels)->value = v;
	pthread_mutex_unlock(&lock);
}

void gitops_metric_observe(const char *name, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	char *labels = render_labels(ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	struct family *f = family(name, HISTOGRAM);
	struct series *s = series(f, labels);
	s->sum += v;
	s->count++;
	for (size_t i = 0; i < f->n_bounds; i++)
		if (v <= f->bounds[i]) {
			s->buckets[i]++;
			break;
		}
	pthread_mutex_unlock(&lock);
}

/* A sample value in Go's float syntax: integers without a fraction, else %.17g. */
static void put_value(gitops_buf *b, double v)
{
	if (isnan(v))
		gitops_buf_puts(b, "NaN");
	else if (isinf(v))
		gitops_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		gitops_buf_printf(b, "%.0f", v);
	else {
		char t[64];
		for (int prec = 15; prec <= 17; prec++) { /* the shortest that reads back the same */
			snprintf(t, sizeof(t), "%.*g", prec, v);
			if (strtod(t, NULL) == v)
				break;
		}
		gitops_buf_puts(b, t);
	}
}

static void put_sample(gitops_buf *b, const char *name, const char *suffix, const char *labels, const char *extra,
		       double v)
{
	bool any = *labels || extra;
	gitops_buf_printf(b, "%s%s%s%s%s%s%s ", name, suffix, any ? "{" : "", labels, *labels && extra ? "," : "",
			  extra ? extra : "", any ? "}" : "");
	put_value(b, v);
	gitops_buf_putc(b, '\n');
}

void gitops_metrics_write(gitops_buf *out)
{
	static const char *types[] = {"counter", "gauge", "histogram"};
	pthread_mutex_lock(&lock);
	series(family("gitops_build_info", GAUGE), gitops_sprintf("version=\"%s\"", GITOPS_VERSION))->value = 1;
	for (size_t i = 0; i < N_FAMILIES; i++) {
		struct family *f = &families[i];
		/* an unlabelled histogram is shown from the start (zero observations) */
		if (f->type == HISTOGRAM && !f->n)
			series(f, gitops_strdup(""));
		if (!f->n)
			continue;
		gitops_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->type]);
		for (size_t j = 0; j < f->n; j++) {
			struct series *s = &f->s[j];
			if (f->type != HISTOGRAM) {
				put_sample(out, f->name, "", s->labels, NULL, s->value);
				continue;
			}
			unsigned long long cum = 0;
			for (size_t k = 0; k < f->n_bounds; k++) {
				cum += s->buckets[k];
				gitops_buf b = GITOPS_BUF_INIT;
				gitops_buf_puts(&b, "le=\"");
				put_value(&b, f->bounds[k]);
				gitops_buf_putc(&b, '"');
				put_sample(out, f->name, "_bucket", s->labels, gitops_buf_cstr(&b), (double)cum);
				gitops_buf_free(&b);
			}
			put_sample(out, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
			put_sample(out, f->name, "_sum", s->labels, NULL, s->sum);
			put_sample(out, f->name, "_count", s->labels, NULL, (double)s->count);
		}
	}
	pthread_mutex_unlock(&lock);
}

void gitops_metrics_reset(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < N_FAMILIES; i++) {
		for (size_t j = 0; j < families[i].n; j++) {
			free(families[i].s[j].labels);
			free(families[i].s[j].buckets);
		}
		free(families[i].s);
		families[i].s = NULL;
		families[i].n = 0;
	}
	pthread_mutex_unlock(&lock);
}
