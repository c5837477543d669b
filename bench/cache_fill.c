/* bench: list-then-watch of N ConfigMaps (default 10,000) into the kube/ object cache: time to
 * fill it and the resident memory it takes. Creates the objects with server-side apply from 8
 * threads first (also timed), and deletes them with one deletecollection at the end.
 * usage: cache_fill [N]   (needs KUBECONFIG pointing at a cluster) */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube.h"

#define NS "bench-cache"
#define THREADS 8

static kube_client *client;
static int total;

/* Resident memory after returning freed heap (and the JSON arenas' spare chunks) to the
 * system, as gitops run does after each pass, so only live data counts. */
static long rss_kib(void)
{
	malloc_trim(0);
	gitops_json_arena_trim();
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static void *creator(void *arg)
{
	long id = (long)arg;
	for (int i = (int)id; i < total; i += THREADS) {
		char name[32];
		snprintf(name, sizeof(name), "cm-%05d", i);
		json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
				       "ConfigMap", "metadata", "name", name, "namespace", NS, "labels", "bench", "cache",
				       "data", "index", name, "payload", "0123456789abcdef0123456789abcdef");
		if (kube_apply(NULL, NULL, client, cm, NULL)) {
			fprintf(stderr, "cache_fill: %s\n", gitops_error_last());
			exit(1);
		}
		json_decref(cm);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	total = argc > 1 ? atoi(argv[1]) : 10000;
	kube_config *cfg;
	struct kube_client_options o = {.qps = 2000, .burst = 2000};
	if (kube_config_load(&cfg, NULL) || kube_client_new(&client, cfg, &o)) {
		fprintf(stderr, "cache_fill: %s\n", gitops_error_last());
		return 1;
	}
	json_t *nsobj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", NS);
	if (kube_apply(NULL, NULL, client, nsobj, NULL)) {
		fprintf(stderr, "cache_fill: %s\n", gitops_error_last());
		return 1;
	}
	json_decref(nsobj);
	long long t0 = gitops_now_ms();
	pthread_t th[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, creator, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	long long t_create = gitops_now_ms() - t0;

	const struct kube_resource *r;
	kube_resource_for(&r, client, "v1", "ConfigMap");
	long rss0 = rss_kib();
	struct kube_stats s0;
	kube_client_stats(client, &s0);
	t0 = gitops_now_ms();
	kube_cache *kc;
	struct kube_cache_options co = {.namespace = NS, .label_selector = "bench=cache", .keep_manager = "gitops"};
	if (kube_cache_start(&kc, client, r, &co) || kube_cache_wait_synced(kc, 120000)) {
		fprintf(stderr, "cache_fill: %s\n", gitops_error_last());
		return 1;
	}
	long long t_fill = gitops_now_ms() - t0;
	long rss1 = rss_kib();
	size_t n = kube_cache_size(kc);
	struct kube_stats s1;
	kube_client_stats(client, &s1);
	kube_cache_free(kc);
	long rss2 = rss_kib();

	printf("cache_fill: %d ConfigMaps created by server-side apply in %lld ms (%.0f objects/s, 8 threads)\n",
	       total, t_create, t_create ? total * 1000.0 / (double)t_create : 0.0);
	printf("cache_fill: list-then-watch filled %zu objects in %lld ms with %lu list requests\n", n, t_fill,
	       s1.requests - s0.requests);
	printf("cache_fill: resident memory of the cache: %.1f MiB (%.0f bytes per object); %.1f MiB returned when "
	       "it is freed\n", (double)(rss1 - rss0) / 1024.0, n ? (double)(rss1 - rss0) * 1024.0 / (double)n : 0.0,
	       (double)(rss1 - rss2) / 1024.0);
	long status;
	json_t *body = NULL;
	kube_request(client, "DELETE", "/api/v1/namespaces/" NS "/configmaps?labelSelector=bench%3Dcache", NULL, NULL,
		     &status, &body);
	json_decref(body);
	kube_client_free(client);
	return n == (size_t)total ? 0 : 1;
}
