/* bench: the history state branch at scale: appends N events (default 100,000) through the
 * public API (one commit and one compare-and-swap each), then times the first query (which
 * builds the local index from the branch), filtered queries and DORA over the warm index.
 * usage: build/bench/history_bench [N] [DIR]   (DIR: where the bare repository goes; a temp dir) */
#include "history/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double secs(long long a, long long b) { return (double)(b - a) / 1000.0; }

/* The policy verification replays preconditions against: one gitops.yaml at every time. */
static struct mf_config *bench_cfg;
static int configs_at(void *ud, const struct mf_config **out, size_t max, long long ms)
{
	(void)ud;
	(void)ms;
	out[0] = bench_cfg;
	return max ? 1 : 0;
}

static void sha_for(char out[41], unsigned n)
{
	/* a fake, stable commit id per deploy number */
	snprintf(out, 41, "%08x%032x", n * 2654435761u, n);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	char tmpl[] = "/tmp/gitops-history-bench-XXXXXX";
	const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
	if (!dir || n <= 0) {
		fprintf(stderr, "usage: history_bench [N] [DIR]\n");
		return 2;
	}
	char *repo = gitops_sprintf("%s/state.git", dir), *data = gitops_sprintf("%s/data", dir);
	char *cmd = gitops_sprintf("git init -q --bare %s", repo);
	if (system(cmd) != 0)
		return 1;
	free(cmd);
	setenv("GITOPS_DATA_DIR", data, 1);
	hist *h = NULL;
	struct hist_options o = {.repo = repo, .data_dir = data};
	if (hist_open(&h, &o)) {
		fprintf(stderr, "history_bench: %s\n", gitops_error_last());
		return 1;
	}
	static const char *const envs[] = {"dev", "staging", "prod"};
	static const char *const apps[] = {"web", "api", "cache", "worker", "db"};
	long long now_s = (long long)time(NULL);
	long n_single = n < 2000 ? n : 2000, batch = 1000;
	struct hist_event *buf = gitops_calloc((size_t)batch, sizeof(*buf));
	char (*shas)[41] = gitops_calloc((size_t)batch, sizeof(*shas));
	unsigned deploy = 0;
	long long t0 = gitops_now_ms(), t_single = 0;
	size_t nb = 0;
	for (long i = 0; i < n; i++) {
		unsigned r = (unsigned)(i * 7919u) % 100;
		/* syncs of the whole environment (deploys); drift and health events name an app */
		struct hist_event ev = {.environment = envs[i % 3], .actor = "bench", .trigger = "auto",
					.duration_ms = 1000 + i % 5000};
		if (r >= 80)
			ev.app = apps[i % 5];
		char *sha = shas[nb];
		if (r < 70) {
			ev.type = "sync.succeeded";
			deploy += (i % 4 == 0);
			sha_for(sha, deploy);
			ev.sha = sha;
			ev.has_counts = true;
			ev.updated = 3;
			ev.unchanged = 40;
			ev.commit_time = now_s - 3600 - (i % 7200);
		} else if (r < 80) {
			ev.type = "sync.failed";
			sha_for(sha, deploy);
			ev.sha = sha;
			ev.has_counts = true;
			ev.failed = 1;
			ev.reason = "Deployment web: progress deadline exceeded";
		} else if (r < 90) {
			ev.type = "drift.detected";
			ev.reason = "ConfigMap settings: .data.color";
		} else if (r < 95) {
			ev.type = "health.degraded";
		} else {
			ev.type = "health.recovered";
		}
		int rc;
		if (i < n_single) { /* one commit + one compare-and-swap per event, like every CLI writer */
			rc = hist_record(NULL, h, &ev);
			if (i + 1 == n_single)
				t_single = gitops_now_ms();
		} else {
			buf[nb++] = ev;
			rc = 0;
			if ((long)nb == batch || i + 1 == n) {
				rc = hist_record_batch(h, buf, nb);
				nb = 0;
			}
		}
		if (rc) {
			fprintf(stderr, "history_bench: append %ld: %s\n", i, gitops_error_last());
			return 1;
		}
		if ((i + 1) % 20000 == 0)
			fprintf(stderr, "  %ld events appended (%.1fs)\n", i + 1, secs(t0, gitops_now_ms()));
	}
	long long t1 = gitops_now_ms();
	free(buf);
	free(shas);
	printf("append: %ld events in %.1fs: the first %ld one by one (one commit + CAS each): %.2f ms/event; "
	       "the rest in batches of %ld (one CAS + one packfile per batch): %.3f ms/event\n", n, secs(t0, t1),
	       n_single, (double)(t_single - t0) / n_single, batch,
	       n > n_single ? (double)(t1 - t_single) / (n - n_single) : 0.0);

	json_t *arr = NULL;
	struct hist_filter f = {.env = "prod", .type = "sync.failed", .limit = 50};
	long long a = gitops_now_ms();
	if (hist_query(&arr, h, &f))
		return 1;
	long long b = gitops_now_ms();
	printf("index build from the branch (first query): %.0f ms\n", (double)(b - a));
	json_decref(arr);

	double best = 1e9;
	size_t got = 0;
	for (int k = 0; k < 5; k++) {
		a = gitops_now_ms();
		if (hist_query(&arr, h, &f))
			return 1;
		b = gitops_now_ms();
		got = json_array_size(arr);
		json_decref(arr);
		if (b - a < best)
			best = (double)(b - a);
	}
	printf("query --env prod --type sync.failed --limit 50: %.0f ms (%zu events)\n", best, got);

	struct hist_filter f2 = {.app = "api", .type = "drift.", .since_ms = (now_s - 86400) * 1000};
	best = 1e9;
	for (int k = 0; k < 5; k++) {
		a = gitops_now_ms();
		if (hist_query(&arr, h, &f2))
			return 1;
		b = gitops_now_ms();
		got = json_array_size(arr);
		json_decref(arr);
		if (b - a < best)
			best = (double)(b - a);
	}
	printf("query --app api --type drift. --since 1d (no limit): %.0f ms (%zu events)\n", best, got);

	struct hist_dora d;
	best = 1e9;
	for (int k = 0; k < 5; k++) {
		a = gitops_now_ms();
		if (hist_dora(&d, h, "prod", (now_s - 30 * 86400) * 1000, 0))
			return 1;
		b = gitops_now_ms();
		if (b - a < best)
			best = (double)(b - a);
	}
	printf("dora --env prod --since 30d: %.0f ms (%u deploys, lead median %.1f min, failure rate %.1f%%, "
	       "%u restores)\n", best, d.deployments, d.lead_median_ms / 60000.0, d.failure_rate * 100, d.restores);
	static const char y[] = "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - {name: dev, track: main}\n"
				"  - {name: staging, track: main}\n  - {name: prod, track: main}\n";
	if (mf_config_parse(&bench_cfg, y, sizeof(y) - 1, "gitops.yaml"))
		return 1;
	struct hist_policy pol = {configs_at, NULL};
	hist_set_policy(h, &pol);
	struct hist_verify_report vr;
	a = gitops_now_ms();
	int vrc = hist_verify(&vr, h);
	b = gitops_now_ms();
	printf("verify: %s, %zu events in %.1fs\n", vrc ? "INVALID" : "valid", vr.events, secs(a, b));
	hist_verify_report_clear(&vr);
	/* what every reader pays before it obeys: the incremental check of what is new */
	struct hist_event one = {.type = "drift.detected", .environment = "prod", .actor = "bench", .trigger = "auto",
				 .duration_ms = -1};
	hist *h2 = NULL;
	if (!vrc && hist_open(&h2, &o) == 0 && hist_record(NULL, h2, &one) == 0) {
		hist_set_policy(h, &pol);
		a = gitops_now_ms();
		vrc = hist_check(&vr, h);
		b = gitops_now_ms();
		printf("check (incremental, 1 new event after %ld): %s in %lld ms\n", n, vrc ? "INVALID" : "valid", b - a);
		hist_verify_report_clear(&vr);
	}
	hist_free(h2);
	mf_config_free(bench_cfg);
	hist_free(h);
	if (argc <= 2) {
		cmd = gitops_sprintf("rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "history_bench: could not remove %s\n", dir);
		free(cmd);
	}
	free(repo);
	free(data);
	return vrc ? 1 : 0;
}
