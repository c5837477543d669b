/* Integration tests for manifests/: real git repositories made with the git CLI, the real helm and
 * kustomize binaries (PATH from build/cluster/env), the git source, the renderers, the render
 * cache and the errors each failure gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "manifests/manifests.h"

static char *tmp;      /* per-run scratch directory */
static char *data_dir; /* GITOPS_DATA_DIR for the run */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	int rc = system(b.ptr);
	gitops_buf_free(&b);
	return rc;
}

static void put(const char *dir, const char *rel, const char *text)
{
	char *p = gitops_sprintf("%s/%s", dir, rel);
	char *d = gitops_strdup(p);
	*strrchr(d, '/') = '\0';
	assert_int_equal(sh("mkdir -p '%s'", d), 0);
	assert_int_equal(gitops_write_file(p, text, strlen(text), 0644), 0);
	free(d);
	free(p);
}

static void commit(const char *repo, const char *msg)
{
	assert_int_equal(sh("cd '%s' && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm '%s'",
			    repo, msg), 0);
}

static char *new_repo(const char *name)
{
	char *p = gitops_sprintf("%s/%s", tmp, name);
	assert_int_equal(sh("rm -rf '%s' && mkdir -p '%s' && git -C '%s' init -q -b main", p, p, p), 0);
	return p;
}

static char *head_of(const char *repo)
{
	char *cmd = gitops_sprintf("git -C '%s' rev-parse HEAD", repo);
	FILE *f = popen(cmd, "r");
	char buf[64] = "";
	assert_non_null(fgets(buf, sizeof(buf), f));
	pclose(f);
	free(cmd);
	buf[strcspn(buf, "\n")] = '\0';
	return gitops_strdup(buf);
}

static const char *cm(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  k: v\n", name);
	return buf;
}

static json_t *find(const mf_objects *set, const char *kind, const char *name, const struct mf_object **src)
{
	for (size_t i = 0; i < mf_objects_count(set); i++) {
		const struct mf_object *o = mf_objects_at(set, i);
		json_t *md = json_object_get(o->obj, "metadata");
		if (!strcmp(json_string_value(json_object_get(o->obj, "kind")), kind) &&
		    !strcmp(json_string_value(json_object_get(md, "name")), name)) {
			if (src)
				*src = o;
			return o->obj;
		}
	}
	fail_msg("no %s %s among %zu objects", kind, name, mf_objects_count(set));
	return NULL;
}

static const char *jstr(json_t *o, const char *path)
{
	json_t *v = o;
	char *p = gitops_strdup(path), *save = NULL;
	for (char *t = strtok_r(p, ".", &save); t && v; t = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(t)) : json_object_get(v, t);
	free(p);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long jint(json_t *o, const char *path)
{
	json_t *v = o;
	char *p = gitops_strdup(path), *save = NULL;
	for (char *t = strtok_r(p, ".", &save); t && v; t = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(t)) : json_object_get(v, t);
	free(p);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

/* The sandbox probe (tests/fixtures/manifests/sandbox/probe.c), built statically once per run: a
 * stand-in renderer that reports what it can see and do. The caller frees the path. */
static char *probe_binary(void)
{
	char *bin = gitops_sprintf("%s/probe", tmp);
	if (access(bin, X_OK))
		assert_int_equal(sh("cc -static -O1 -o '%s' tests/fixtures/manifests/sandbox/probe.c", bin), 0);
	return bin;
}

/* ---- git source ------------------------------------------------------------------------------ */

static void git_source_resolves_reads_lists_and_checks_out(void **state)
{
	(void)state;
	char *src = new_repo("src1");
	put(src, "apps/a/cm.yaml", cm("a"));
	put(src, "apps/a/sub/deep.yml", cm("deep"));
	put(src, "README.md", "hello\n");
	commit(src, "one");
	assert_int_equal(sh("git -C '%s' tag v1", src), 0);
	char *c1 = head_of(src);
	put(src, "apps/a/cm.yaml", cm("a2"));
	commit(src, "two");
	char *c2 = head_of(src);

	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	assert_string_equal(sha, c2);
	assert_int_equal(mf_repo_resolve(sha, repo, "HEAD"), 0);
	assert_string_equal(sha, c2);
	assert_int_equal(mf_repo_resolve(sha, repo, "v1"), 0);
	assert_string_equal(sha, c1);
	assert_int_equal(mf_repo_resolve(sha, repo, c1), 0);
	assert_string_equal(sha, c1);
	char shortsha[9];
	snprintf(shortsha, sizeof(shortsha), "%.8s", c1);
	assert_int_equal(mf_repo_resolve(sha, repo, shortsha), 0);
	assert_string_equal(sha, c1);
	assert_int_equal(mf_repo_resolve(sha, repo, "no-such-branch"), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "unknown revision no-such-branch"));
	assert_int_equal(mf_repo_resolve(sha, repo, "--upload-pack=x"), GITOPS_EINVALID);

	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(mf_repo_read(&b, repo, c1, "apps/a/cm.yaml"), 0);
	assert_non_null(strstr(b.ptr, "name: a\n"));
	gitops_buf_free(&b);
	assert_int_equal(mf_repo_read(&b, repo, c1, "apps/missing.yaml"), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "apps/missing.yaml"));
	gitops_buf_free(&b);

	char **paths;
	size_t n;
	assert_int_equal(mf_repo_list(&paths, &n, repo, c2, "apps/a"), 0);
	assert_int_equal(n, 2);
	assert_string_equal(paths[0], "apps/a/cm.yaml");
	assert_string_equal(paths[1], "apps/a/sub/deep.yml");
	mf_strv_free(paths, n);

	char t1[41], t2[41];
	assert_int_equal(mf_repo_entry_id(t1, repo, c1, "apps/a/sub"), 0);
	assert_int_equal(mf_repo_entry_id(t2, repo, c2, "apps/a/sub"), 0);
	assert_string_equal(t1, t2); /* untouched directory: same tree id */
	assert_int_equal(mf_repo_entry_id(t1, repo, c1, "apps/a"), 0);
	assert_int_equal(mf_repo_entry_id(t2, repo, c2, "apps/a"), 0);
	assert_string_not_equal(t1, t2);

	char *dir;
	assert_int_equal(mf_repo_checkout(&dir, repo, c1), 0);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char *f = gitops_sprintf("%s/apps/a/sub/deep.yml", dir);
	assert_int_equal(access(f, R_OK), 0);
	free(f);
	assert_int_equal(mf_rmtree(dir), 0);
	assert_int_not_equal(access(dir, F_OK), 0);
	free(dir);
	mf_repo_free(repo);
	mf_repo_free(NULL);
	free(c1);
	free(c2);
	free(src);
}

static void fetch_follows_new_commits_and_keeps_the_mirror_when_unreachable(void **state)
{
	(void)state;
	char *src = new_repo("src2");
	put(src, "a.yaml", cm("a"));
	commit(src, "one");
	char *url = gitops_sprintf("file://%s", src);
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, url, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	put(src, "b.yaml", cm("b"));
	commit(src, "two");
	char *c2 = head_of(src);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	assert_string_equal(sha, c2);

	char *moved = gitops_sprintf("%s.moved", src);
	assert_int_equal(rename(src, moved), 0);
	assert_int_equal(mf_repo_fetch(repo), GITOPS_ENETWORK);
	assert_non_null(strstr(gitops_error_last(), "last fetched mirror is kept"));
	assert_non_null(strstr(gitops_error_last(), src));
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	assert_string_equal(sha, c2);
	mf_repo_free(repo);

	/* a fresh open of the same URL finds the same mirror */
	assert_int_equal(mf_repo_open(&repo, url, data_dir), 0);
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	assert_string_equal(sha, c2);
	mf_repo_free(repo);
	assert_int_equal(rename(moved, src), 0);
	free(moved);
	free(url);
	free(c2);
	free(src);
}

static void https_without_credentials_is_a_clear_error(void **state)
{
	(void)state;
	/* nothing listens on port 9 of loopback: unreachable, not a crash, mirror untouched */
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, "https://127.0.0.1:9/shop.git", data_dir), 0);
	int rc = mf_repo_fetch(repo);
	assert_int_equal(rc, GITOPS_ENETWORK);
	assert_non_null(strstr(gitops_error_last(), "https://127.0.0.1:9/shop.git"));
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), GITOPS_ENOTFOUND);
	mf_repo_free(repo);
}

/* ---- rendering the example repository --------------------------------------------------------- */

static char *shop_repo(const char *name)
{
	char *p = new_repo(name);
	assert_int_equal(sh("cp -r examples/shop/. '%s/'", p), 0);
	commit(p, "shop");
	return p;
}

static struct mf_config *load_config(mf_repo *repo, const char *sha)
{
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(mf_repo_read(&b, repo, sha, "gitops.yaml"), 0);
	struct mf_config *cfg;
	if (mf_config_parse(&cfg, b.ptr, b.len, "gitops.yaml"))
		fail_msg("%s", gitops_error_last());
	gitops_buf_free(&b);
	return cfg;
}

static void renders_plain_kustomize_and_helm_per_environment(void **state)
{
	(void)state;
	char *src = shop_repo("shop1");
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	struct mf_config *cfg = load_config(repo, sha);
	struct mf_render_options o = {.data_dir = ""};
	mf_renderer *r;
	assert_int_equal(mf_renderer_new(&r, &o), 0);

	static const struct {
		const char *env, *ns, *level, *maxmem;
		int replicas;
	} want[] = {
		{"dev", "shop-dev", "debug", "32mb", 1},
		{"staging", "shop-staging", "info", "64mb", 2},
		{"prod", "shop-prod", "warn", "256mb", 3},
	};
	for (size_t i = 0; i < 3; i++) {
		mf_objects *set;
		if (mf_render_env(&set, r, repo, sha, mf_config_env(cfg, want[i].env), NULL))
			fail_msg("%s: %s", want[i].env, gitops_error_last());
		assert_int_equal(mf_objects_count(set), 8);
		const struct mf_object *src_obj;
		json_t *ns = find(set, "Namespace", want[i].ns, &src_obj);
		assert_null(jstr(ns, "metadata.namespace"));
		assert_string_equal(src_obj->app, "platform");
		json_t *fe = find(set, "Deployment", "frontend", &src_obj);
		assert_string_equal(jstr(fe, "metadata.namespace"), want[i].ns);
		assert_string_equal(src_obj->file, "apps/frontend/deployment.yaml");
		assert_int_equal(src_obj->line, 1);
		json_t *api = find(set, "Deployment", "api", &src_obj);
		assert_string_equal(jstr(api, "metadata.namespace"), want[i].ns);
		assert_int_equal(jint(api, "spec.replicas"), want[i].replicas);
		assert_string_equal(jstr(api, "spec.template.spec.containers.0.env.0.value"), want[i].level);
		assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(api, "metadata"), "labels"),
								      "shop.example.com/env")), want[i].env);
		assert_string_equal(src_obj->app, "api");
		json_t *cache = find(set, "Deployment", "cache", &src_obj);
		assert_string_equal(jstr(cache, "spec.template.spec.containers.0.args.1"), want[i].maxmem);
		assert_string_equal(jstr(cache, "metadata.namespace"), want[i].ns);
		assert_non_null(strstr(src_obj->file, "charts/cache/templates/deployment.yaml"));
		mf_objects_free(set);
	}
	/* one app only */
	mf_objects *set;
	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "dev"), "cache"), 0);
	assert_int_equal(mf_objects_count(set), 2);
	mf_objects_free(set);
	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "dev"), "nope"), GITOPS_ENOTFOUND);
	assert_null(set);

	gitops_buf out = GITOPS_BUF_INIT;
	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "prod"), "frontend"), 0);
	assert_int_equal(mf_objects_to_yaml(&out, set), 0);
	assert_non_null(strstr(out.ptr, "---\napiVersion: v1\n"));
	assert_non_null(strstr(out.ptr, "namespace: shop-prod"));
	mf_objects *back;
	mf_objects_new(&back);
	assert_int_equal(mf_objects_add_yaml(back, out.ptr, out.len, "out.yaml", "x", NULL, NULL), 0);
	assert_int_equal(mf_objects_count(back), mf_objects_count(set));
	for (size_t i = 0; i < mf_objects_count(set); i++)
		assert_true(json_equal(mf_objects_at(set, i)->obj, mf_objects_at(back, i)->obj));
	mf_objects_free(back);
	mf_objects_free(set);
	gitops_buf_free(&out);

	mf_renderer_free(r);
	mf_config_free(cfg);
	mf_repo_free(repo);
	free(src);
}

/* ---- the render cache ------------------------------------------------------------------------ */

static void cache_twenty_apps_one_commit_rerenders_one(void **state)
{
	(void)state;
	char *src = new_repo("many");
	gitops_buf cfgtext = GITOPS_BUF_INIT;
	gitops_buf_puts(&cfgtext, "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    namespace: many\n    apps:\n");
	for (int i = 0; i < 20; i++) {
		char rel[64], name[32];
		snprintf(rel, sizeof(rel), "apps/app%02d/cm.yaml", i);
		snprintf(name, sizeof(name), "cm%02d", i);
		put(src, rel, cm(name));
		gitops_buf_printf(&cfgtext, "      - {name: app%02d, path: apps/app%02d}\n", i, i);
	}
	put(src, "gitops.yaml", cfgtext.ptr);
	gitops_buf_free(&cfgtext);
	commit(src, "twenty apps");

	char *cache_dir = gitops_sprintf("%s/cache-many", tmp);
	struct mf_render_options o = {.data_dir = cache_dir};
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char c1[41], c2[41];
	assert_int_equal(mf_repo_resolve(c1, repo, "main"), 0);
	struct mf_config *cfg = load_config(repo, c1);
	const struct mf_environment *env = mf_config_env(cfg, "dev");
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	assert_int_equal(mf_render_env(&set, r, repo, c1, env, NULL), 0);
	assert_int_equal(mf_objects_count(set), 20);
	mf_objects_free(set);
	assert_int_equal(mf_renderer_executed(r), 20);
	assert_int_equal(mf_render_env(&set, r, repo, c1, env, NULL), 0);
	mf_objects_free(set);
	assert_int_equal(mf_renderer_executed(r), 20);
	assert_int_equal(mf_renderer_cache_hits(r), 20);

	put(src, "apps/app07/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm07\ndata:\n  k: changed\n");
	commit(src, "touch one app");
	assert_int_equal(mf_repo_fetch(repo), 0);
	assert_int_equal(mf_repo_resolve(c2, repo, "main"), 0);
	assert_string_not_equal(c1, c2);
	assert_int_equal(mf_render_env(&set, r, repo, c2, env, NULL), 0);
	assert_int_equal(mf_renderer_executed(r), 21); /* exactly one re-render */
	assert_string_equal(jstr(find(set, "ConfigMap", "cm07", NULL), "data.k"), "changed");
	mf_objects_free(set);
	mf_renderer_free(r);

	/* a new process (new renderer) finds every render on disk */
	mf_renderer_new(&r, &o);
	assert_int_equal(mf_render_env(&set, r, repo, c2, env, NULL), 0);
	assert_int_equal(mf_renderer_executed(r), 0);
	assert_int_equal(mf_renderer_cache_hits(r), 20);
	assert_string_equal(jstr(find(set, "ConfigMap", "cm07", NULL), "data.k"), "changed");
	assert_string_equal(jstr(find(set, "ConfigMap", "cm07", NULL), "metadata.namespace"), "many");
	mf_objects_free(set);
	mf_renderer_free(r);
	mf_config_free(cfg);
	mf_repo_free(repo);
	free(cache_dir);
	free(src);
}

/* A damaged cache entry (format 2: an index or line of the wrong type or out of range) is
 * rendered again, never read with a made-up source. */
/* The cache tests' repository: `src` (made by new_repo, its app files put under apps/one) gets a
 * gitops.yaml of one environment "dev" (namespace `ns`) with one app "one" at apps/one, is
 * committed, opened and fetched; the render cache goes to tmp/cache-<name>. one_app_close frees. */
struct one_app {
	char *src, *cache_dir;
	struct mf_render_options o;
	mf_repo *repo;
	char c1[41];
	struct mf_config *cfg;
	const struct mf_environment *env;
};

static void one_app_open(struct one_app *f, char *src, const char *name, const char *ns)
{
	memset(f, 0, sizeof(*f));
	f->src = src;
	char *y = gitops_sprintf("apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    namespace: %s\n"
				 "    apps:\n      - {name: one, path: apps/one}\n", ns);
	put(src, "gitops.yaml", y);
	free(y);
	commit(src, "one app");
	f->cache_dir = gitops_sprintf("%s/cache-%s", tmp, name);
	f->o.data_dir = f->cache_dir;
	assert_int_equal(mf_repo_open(&f->repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(f->repo), 0);
	assert_int_equal(mf_repo_resolve(f->c1, f->repo, "main"), 0);
	f->cfg = load_config(f->repo, f->c1);
	f->env = mf_config_env(f->cfg, "dev");
}

static void one_app_close(struct one_app *f)
{
	mf_config_free(f->cfg);
	mf_repo_free(f->repo);
	free(f->cache_dir);
	free(f->src);
}

static void cache_damaged_positions_are_rendered_again(void **state)
{
	(void)state;
	struct one_app f;
	char *src = new_repo("damaged");
	put(src, "apps/one/cm.yaml", cm("cm01"));
	one_app_open(&f, src, "damaged", "dmg");
	struct mf_render_options o = f.o;
	mf_repo *repo = f.repo;
	const char *c1 = f.c1, *cache_dir = f.cache_dir;
	const struct mf_environment *env = f.env;
	/* what the damage puts in the row (index, value): a file index or line of the wrong type, a
	 * negative or huge number, an identity that is not a string, a hook flag that is not a
	 * boolean; or the row cut short (NULL at 7); or the object lines: one more (at 8), none
	 * (at 9), one that is not JSON (at 10) */
	struct {
		size_t at;
		json_t *v;
	} bad[] = {{0, json_string("0")}, {0, json_real(0.0)}, {1, json_string("1")}, {1, json_null()},
		   {1, json_integer((json_int_t)1 << 40)}, {1, json_integer(-7)}, {0, json_integer(-1)},
		   {0, json_integer(5)}, {2, json_null()}, {3, json_integer(1)}, {4, json_integer(1)},
		   {5, json_false()}, {6, json_string("no")}, {7, NULL}, {8, NULL}, {9, NULL}, {10, NULL}};
	for (size_t b = 0; b < sizeof(bad) / sizeof(*bad); b++) {
		mf_renderer *r;
		mf_renderer_new(&r, &o);
		mf_objects *set;
		assert_int_equal(mf_render_env(&set, r, repo, c1, env, NULL), 0);
		mf_objects_free(set);
		mf_renderer_free(r);
		assert_int_equal(sh("test $(find %s/render-cache -name '*.json' | wc -l) = 1", cache_dir), 0);
		char *cmd = gitops_sprintf("find %s/render-cache -name '*.json'", cache_dir);
		FILE *ls = popen(cmd, "r");
		free(cmd);
		char line[4096];
		assert_non_null(fgets(line, sizeof(line), ls));
		pclose(ls);
		line[strcspn(line, "\n")] = '\0';
		char *file = gitops_strdup(line);
		gitops_buf text = GITOPS_BUF_INIT, out = GITOPS_BUF_INIT;
		assert_int_equal(gitops_read_file(&text, file, 1 << 20), 0);
		const char *nl = memchr(text.ptr, '\n', text.len);
		assert_non_null(nl); /* the first line, then the object's */
		json_error_t je;
		json_t *doc = json_loadb(text.ptr, (size_t)(nl - text.ptr), 0, &je);
		assert_non_null(doc);
		json_t *row = json_array_get(json_object_get(doc, "rows"), 0);
		assert_int_equal(json_array_size(json_object_get(doc, "rows")), 1);
		assert_int_equal(json_array_size(row), 7);
		assert_null(memchr(nl + 1, '\n', text.len - (size_t)(nl + 1 - text.ptr))); /* one object line */
		if (bad[b].v)
			json_array_set(row, bad[b].at, bad[b].v);
		else if (bad[b].at == 7)
			json_array_remove(row, 6);
		char *h = json_dumps(doc, JSON_COMPACT);
		gitops_buf_puts(&out, h);
		free(h);
		if (bad[b].at == 8)
			gitops_buf_printf(&out, "%s\n{}", nl);
		else if (bad[b].at == 10)
			gitops_buf_puts(&out, "\n{\"apiVersion\": v1");
		else if (bad[b].at != 9)
			gitops_buf_puts(&out, nl);
		assert_int_equal(gitops_write_file(file, out.ptr, out.len, 0600), 0);
		gitops_buf_free(&out);
		gitops_buf_free(&text);
		json_decref(doc);

		mf_renderer_new(&r, &o);
		assert_int_equal(mf_render_env(&set, r, repo, c1, env, NULL), 0);
		assert_int_equal(mf_renderer_cache_hits(r), 0); /* rejected */
		assert_int_equal(mf_renderer_executed(r), 1);   /* and rendered again */
		const struct mf_object *mo;
		assert_non_null(find(set, "ConfigMap", "cm01", &mo));
		assert_string_equal(mo->file, "apps/one/cm.yaml");
		assert_int_equal(mo->line, 1);
		mf_objects_free(set);
		mf_renderer_free(r);
		sh("rm -rf %s/render-cache", cache_dir);
		free(file);
		json_decref(bad[b].v);
	}
	one_app_close(&f);
}

/* A render asked for compact objects gets, from the cache, each ordinary object as its text and
 * identity (namespace resolved), parsing to exactly what an ordinary render gives; hooks and
 * CRDs come parsed; an entry altered to hold another object than its identity names (or a hook
 * dressed as an ordinary object) is refused, never parsed as something else. */
static void cache_hit_gives_compact_objects_that_parse_as_rendered(void **state)
{
	(void)state;
	char *src = new_repo("compact");
	put(src, "apps/one/cm.yaml", cm("cm01"));
	put(src, "apps/one/more.yaml",
	    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere, namespace: other}\ndata: {n: \"1\"}\n---\n"
	    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader, namespace: dropped}\n"
	    "rules: []\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n"
	    "    argocd.argoproj.io/hook: PreSync\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n"
	    "      containers: [{name: m, image: busybox}]\n---\napiVersion: apiextensions.k8s.io/v1\n"
	    "kind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n"
	    "  scope: Namespaced\n  names: {kind: Widget, plural: widgets}\n  versions: []\n");
	struct one_app f;
	one_app_open(&f, src, "compact", "cpt");
	struct mf_render_options o = f.o;
	mf_repo *repo = f.repo;
	const char *c1 = f.c1;
	const struct mf_environment *env = f.env;
	struct mf_render_env_options ro = {.compact = true};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *plain, *set;
	assert_int_equal(mf_render_env(&plain, r, repo, c1, env, NULL), 0); /* fills the cache */
	mf_renderer_free(r);
	for (int from_memory = 0; from_memory < 2; from_memory++) {
		mf_renderer_new(&r, &o);
		if (from_memory) { /* a first render fills the memory cache, the second reads it */
			assert_int_equal(mf_render_env_with(&set, r, repo, c1, env, &ro), 0);
			mf_objects_free(set);
		}
		assert_int_equal(mf_render_env_with(&set, r, repo, c1, env, &ro), 0);
		assert_int_equal(mf_renderer_executed(r), 0);
		assert_int_equal(mf_objects_count(set), mf_objects_count(plain));
		size_t compact = 0;
		for (size_t i = 0; i < mf_objects_count(set); i++) {
			const struct mf_object *mo = mf_objects_at(set, i), *po = mf_objects_at(plain, i);
			const char *kind = json_string_value(json_object_get(po->obj, "kind"));
			bool parsed = !strcmp(kind, "CustomResourceDefinition") || po->hook != MF_HOOK_NONE;
			assert_int_equal(mo->obj != NULL, parsed);
			assert_int_equal(mo->hook, po->hook);
			assert_string_equal(mo->file, po->file);
			assert_int_equal(mo->line, po->line);
			json_t *got = mf_object_parse(mo);
			assert_non_null(got);
			assert_true(json_equal(got, po->obj));
			json_decref(got);
			if (parsed)
				continue;
			compact++;
			json_t *md = json_object_get(po->obj, "metadata");
			assert_string_equal(mo->api_version, json_string_value(json_object_get(po->obj, "apiVersion")));
			assert_string_equal(mo->kind, kind);
			assert_string_equal(mo->name, json_string_value(json_object_get(md, "name")));
			const char *ns = json_string_value(json_object_get(md, "namespace"));
			if (ns)
				assert_string_equal(mo->namespace_, ns);
			else
				assert_null(mo->namespace_);
		}
		assert_int_equal(compact, 3); /* cm01 (namespace cpt filled in), elsewhere, reader (none) */
		/* the text can be taken (the plan does) and parsed on its own */
		size_t len = 0;
		char *text = mf_objects_take_text(set, 0, &len);
		assert_non_null(text);
		assert_null(mf_objects_at(set, 0)->text);
		json_t *again = mf_compact_parse(text, len, "v1", "ConfigMap", "cpt", "cm01", NULL, "x");
		assert_non_null(again);
		assert_string_equal(jstr(again, "metadata.namespace"), "cpt");
		json_decref(again);
		/* what the identity does not name is refused: another name, kind or apiVersion */
		assert_null(mf_compact_parse(text, len, "v1", "ConfigMap", "cpt", "cm02", NULL, "apps/one/cm.yaml:1"));
		assert_non_null(strstr(gitops_error_last(), "apps/one/cm.yaml:1: ConfigMap cm02: the render cache entry is damaged"));
		assert_null(mf_compact_parse(text, len, "v1", "Secret", "cpt", "cm01", NULL, "x"));
		assert_null(mf_compact_parse(text, len, "apps/v1", "ConfigMap", "cpt", "cm01", NULL, "x"));
		assert_null(mf_compact_parse(text, len - 1, "v1", "ConfigMap", "cpt", "cm01", NULL, "x")); /* cut */
		/* nor a namespace of its own other than the one its text has (none here) */
		assert_null(mf_compact_parse(text, len, "v1", "ConfigMap", "cpt", "cm01", "kube-system", "x"));
		free(text);
		mf_objects_free(set);
		mf_renderer_free(r);
	}
	/* a hook dressed as an ordinary object in the cache: parsed as nothing */
	const char *hook = "{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":{\"name\":\"migrate\","
			   "\"annotations\":{\"helm.sh/hook\":\"pre-install\"}}}";
	assert_null(mf_compact_parse(hook, strlen(hook), "batch/v1", "Job", "cpt", "migrate", NULL, "x"));
	mf_objects_free(plain);
	one_app_close(&f);
}

/* An annotation that makes no hook when rendered (helm 2's crd-install alone, an empty Argo CD
 * hook) makes none when read back compact from the cache either: the object parses as rendered
 * (it was refused as a "damaged" entry, so every diff after the first failed). */
static void cache_compact_object_with_hook_annotation_that_is_no_hook(void **state)
{
	(void)state;
	char *src = new_repo("nohook");
	put(src, "apps/one/cm.yaml",
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: crdinstall\n  annotations: {helm.sh/hook: crd-install}\n"
	    "data: {a: \"1\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: emptyhook\n"
	    "  annotations: {argocd.argoproj.io/hook: \"\"}\ndata: {a: \"2\"}\n");
	struct one_app f;
	one_app_open(&f, src, "nohook", "nh");
	struct mf_render_options o = f.o;
	mf_repo *repo = f.repo;
	const char *c1 = f.c1;
	const struct mf_environment *env = f.env;
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *plain, *set;
	assert_int_equal(mf_render_env(&plain, r, repo, c1, env, NULL), 0); /* fills the cache */
	mf_renderer_free(r);
	assert_int_equal(mf_objects_count(plain), 2);
	mf_renderer_new(&r, &o);
	struct mf_render_env_options ro = {.compact = true};
	assert_int_equal(mf_render_env_with(&set, r, repo, c1, env, &ro), 0);
	assert_int_equal(mf_renderer_executed(r), 0);
	assert_int_equal(mf_objects_count(set), 2);
	for (size_t i = 0; i < 2; i++) {
		const struct mf_object *mo = mf_objects_at(set, i), *po = mf_objects_at(plain, i);
		assert_int_equal(po->hook, MF_HOOK_NONE);
		assert_null(mo->obj); /* compact: an ordinary object */
		json_t *got = mf_object_parse(mo);
		if (!got)
			fail_msg("%s", gitops_error_last());
		assert_true(json_equal(got, po->obj));
		json_decref(got);
	}
	mf_objects_free(set);
	mf_renderer_free(r);
	mf_objects_free(plain);
	one_app_close(&f);
}

static void cache_key_follows_kustomize_bases_and_helm_values(void **state)
{
	(void)state;
	char *src = shop_repo("shop2");
	char *cache_dir = gitops_sprintf("%s/cache-shop", tmp);
	struct mf_render_options o = {.data_dir = cache_dir};
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char c1[41], c2[41], c3[41];
	assert_int_equal(mf_repo_resolve(c1, repo, "main"), 0);
	struct mf_config *cfg = load_config(repo, c1);
	const struct mf_environment *dev = mf_config_env(cfg, "dev");
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	assert_int_equal(mf_render_env(&set, r, repo, c1, dev, NULL), 0);
	mf_objects_free(set);
	assert_int_equal(mf_renderer_executed(r), 4);

	/* the api overlay's base changes: only the api app renders again */
	assert_int_equal(sh("sed -i 's/LOG_LEVEL, value: info/LOG_LEVEL, value: trace/; s/replicas: 1/replicas: 5/' '%s/apps/api/base/deployment.yaml'", src), 0);
	put(src, "apps/api/base/extra-cm.yaml", cm("api-extra"));
	put(src, "apps/api/base/kustomization.yaml", "resources: [deployment.yaml, service.yaml, extra-cm.yaml]\n");
	commit(src, "api base");
	assert_int_equal(mf_repo_fetch(repo), 0);
	assert_int_equal(mf_repo_resolve(c2, repo, "main"), 0);
	assert_int_equal(mf_render_env(&set, r, repo, c2, dev, NULL), 0);
	assert_int_equal(mf_renderer_executed(r), 5);
	find(set, "ConfigMap", "api-extra", NULL);
	mf_objects_free(set);

	/* the dev values file changes: only the cache app renders again */
	put(src, "envs/dev/cache.yaml", "maxMemory: 48mb\n");
	commit(src, "dev cache values");
	assert_int_equal(mf_repo_fetch(repo), 0);
	assert_int_equal(mf_repo_resolve(c3, repo, "main"), 0);
	assert_int_equal(mf_render_env(&set, r, repo, c3, dev, NULL), 0);
	assert_int_equal(mf_renderer_executed(r), 6);
	assert_string_equal(jstr(find(set, "Deployment", "cache", NULL), "spec.template.spec.containers.0.args.1"), "48mb");
	mf_objects_free(set);
	mf_renderer_free(r);
	mf_config_free(cfg);
	mf_repo_free(repo);
	free(cache_dir);
	free(src);
}

static void cache_key_follows_bases_reached_through_subdirectories(void **state)
{
	(void)state;
	char *src = new_repo("nested");
	put(src, "gitops.yaml", "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    apps: [{name: app, path: app}]\n");
	put(src, "base/kustomization.yaml", "resources: [cm.yaml]\n");
	put(src, "base/cm.yaml", cm("from-base"));
	put(src, "app/kustomization.yaml", "resources: [sub]\n");
	put(src, "app/sub/kustomization.yaml", "resources: [../../base]\n");
	commit(src, "nested");
	char *cache_dir = gitops_sprintf("%s/cache-nested", tmp);
	struct mf_render_options o = {.data_dir = cache_dir};
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char c1[41], c2[41];
	assert_int_equal(mf_repo_resolve(c1, repo, "main"), 0);
	struct mf_config *cfg = load_config(repo, c1);
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	if (mf_render_env(&set, r, repo, c1, mf_config_env(cfg, "dev"), NULL))
		fail_msg("%s", gitops_error_last());
	assert_string_equal(jstr(find(set, "ConfigMap", "from-base", NULL), "data.k"), "v");
	mf_objects_free(set);
	put(src, "base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-base\ndata:\n  k: changed\n");
	commit(src, "base changes");
	assert_int_equal(mf_repo_fetch(repo), 0);
	assert_int_equal(mf_repo_resolve(c2, repo, "main"), 0);
	assert_int_equal(mf_render_env(&set, r, repo, c2, mf_config_env(cfg, "dev"), NULL), 0);
	assert_int_equal(mf_renderer_executed(r), 2);
	assert_string_equal(jstr(find(set, "ConfigMap", "from-base", NULL), "data.k"), "changed");
	mf_objects_free(set);
	mf_renderer_free(r);
	mf_config_free(cfg);
	mf_repo_free(repo);
	free(cache_dir);
	free(src);
}

/* ---- renderer and input errors --------------------------------------------------------------- */

static void renderer_failures_are_clear_errors(void **state)
{
	(void)state;
	char *root = gitops_sprintf("%s/fs1", tmp);
	put(root, "chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\ndependencies:\n  - {name: redis, version: 1.0.0, repository: https://charts.example.com}\n");
	put(root, "chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
	put(root, "kust/kustomization.yaml", "resources: [cm.yaml]\n");
	put(root, "kust/cm.yaml", cm("k"));
	put(root, "remote/kustomization.yaml", "resources: [https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0]\n");
	/* renderers run in a sandbox and must be static executables: the stand-in is one */
	put(root, "bin/script", "#!/bin/sh\necho 'apiVersion: v1'\n");
	assert_int_equal(sh("chmod +x '%s/bin/script'", root), 0);
	struct mf_render_options o = {.data_dir = "", .timeout_ms = 20000};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	mf_objects_new(&set);

	struct mf_app chart = {.name = "c", .path = "chart", .renderer = MF_RENDERER_AUTO};
	assert_int_equal(mf_render_dir(set, r, root, &chart, NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "chart/Chart.yaml: chart dependency \"redis\" is not vendored"));

	/* an exec KRM function: kustomize must refuse it (plugins are never enabled) */
	put(root, "kexec/kustomization.yaml", "generators: [gen.yaml]\n");
	char *marker = gitops_sprintf("%s/exec-ran", root);
	char *gen = gitops_sprintf("apiVersion: example.com/v1\nkind: Gen\nmetadata:\n  name: g\n  annotations:\n"
				   "    config.kubernetes.io/function: |\n      exec:\n        path: ./gen.sh\n");
	put(root, "kexec/gen.yaml", gen);
	char *gen_sh = gitops_sprintf("#!/bin/sh\ntouch '%s'\necho 'apiVersion: v1'\n", marker);
	put(root, "kexec/gen.sh", gen_sh);
	assert_int_equal(sh("chmod +x '%s/kexec/gen.sh'", root), 0);
	struct mf_app kexec = {.name = "kexec", .path = "kexec", .renderer = MF_RENDERER_AUTO};
	assert_int_not_equal(mf_render_dir(set, r, root, &kexec, NULL), 0);
	assert_non_null(strstr(gitops_error_last(), "app kexec: kustomize build kexec"));
	assert_int_not_equal(access(marker, F_OK), 0);
	free(gen_sh);
	free(gen);
	free(marker);

	struct mf_app remote = {.name = "rem", .path = "remote", .renderer = MF_RENDERER_KUSTOMIZE};
	long long t0 = gitops_now_ms();
	assert_int_not_equal(mf_render_dir(set, r, root, &remote, NULL), 0);
	assert_non_null(strstr(gitops_error_last(), "app rem: kustomize build remote"));
	assert_true(gitops_now_ms() - t0 < 20000);
	mf_renderer_free(r);

	struct mf_app kust = {.name = "k", .path = "kust", .renderer = MF_RENDERER_AUTO};
	struct mf_app kfail = {.name = "k", .path = "kfail", .renderer = MF_RENDERER_KUSTOMIZE};
	struct mf_app kslow = {.name = "k", .path = "kslow", .renderer = MF_RENDERER_KUSTOMIZE};
	put(root, "kfail/probe-fail", "");
	put(root, "kslow/probe-sleep", "");
	char *probe = probe_binary();
	setenv("GITOPS_KUSTOMIZE", probe, 1);
	mf_renderer_new(&r, &o);
	assert_int_equal(mf_render_dir(set, r, root, &kfail, NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "probe: failing as asked"));
	mf_renderer_free(r);

	o.timeout_ms = 300;
	mf_renderer_new(&r, &o);
	t0 = gitops_now_ms();
	assert_int_equal(mf_render_dir(set, r, root, &kslow, NULL), GITOPS_ETIMEOUT);
	assert_true(gitops_now_ms() - t0 < 5000);
	assert_non_null(strstr(gitops_error_last(), "did not finish within 300 ms"));
	mf_renderer_free(r);

	char *script = gitops_sprintf("%s/bin/script", root);
	setenv("GITOPS_KUSTOMIZE", script, 1);
	mf_renderer_new(&r, &o);
	assert_int_equal(mf_render_dir(set, r, root, &kust, NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "not a 64-bit ELF executable (a script?)"));
	assert_non_null(strstr(gitops_error_last(), "statically linked"));
	mf_renderer_free(r);
	free(script);
	free(probe);

	setenv("GITOPS_KUSTOMIZE", "/nonexistent/kustomize", 1);
	mf_renderer_new(&r, &o);
	assert_int_equal(mf_render_dir(set, r, root, &kust, NULL), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "GITOPS_KUSTOMIZE=/nonexistent/kustomize"));
	mf_renderer_free(r);
	unsetenv("GITOPS_KUSTOMIZE");

	char *path = gitops_strdup(getenv("PATH"));
	setenv("PATH", "/nonexistent", 1);
	mf_renderer_new(&r, &o);
	assert_int_equal(mf_render_dir(set, r, root, &kust, NULL), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "kustomize not found"));
	mf_renderer_free(r);
	setenv("PATH", path, 1);
	free(path);

	/* the real kustomize works on the same directory */
	mf_renderer_new(&r, &o);
	o.timeout_ms = 20000;
	assert_int_equal(mf_render_dir(set, r, root, &kust, NULL), 0);
	assert_int_equal(mf_objects_count(set), 1);
	mf_renderer_free(r);
	mf_objects_free(set);
	free(root);
}

static void plain_dirs_are_recursive_ordered_and_bad_input_names_the_line(void **state)
{
	(void)state;
	char *src = new_repo("plain");
	put(src, "gitops.yaml",
	    "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n"
	    "  - name: dev\n    namespace: dev\n    apps:\n      - {name: web, path: web}\n"
	    "  - name: dup\n    namespace: dev\n    apps:\n      - {name: web, path: web}\n      - {name: web2, path: web2}\n"
	    "  - name: bad\n    apps:\n      - {name: broken, path: broken}\n"
	    "  - name: gone\n    apps:\n      - {name: ghost, path: ghost}\n"
	    "  - name: big\n    apps:\n      - {name: big, path: big}\n");
	put(src, "big/large.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: large\ndata:\n"
				   "  k: 0123456789012345678901234567890123456789012345678901234567890123456789\n");
	put(src, "web/b.yaml", cm("b"));
	put(src, "web/a.yml", cm("a"));
	put(src, "web/z/c.json", "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"c\"}}");
	put(src, "web/README.md", "not a manifest\n");
	put(src, "web/.hidden/x.yaml", "this: [is not: parsed\n");
	put(src, "web2/dup.yaml", "# the same ConfigMap as web/b.yaml\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: dev\n");
	put(src, "broken/ok.yaml", cm("ok"));
	put(src, "broken/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  name: y\n");
	commit(src, "plain");
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	struct mf_config *cfg = load_config(repo, sha);
	struct mf_render_options o = {.data_dir = ""};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "dev"), NULL), 0);
	assert_int_equal(mf_objects_count(set), 3);
	assert_string_equal(mf_objects_at(set, 0)->file, "web/a.yml");
	assert_string_equal(mf_objects_at(set, 1)->file, "web/b.yaml");
	assert_string_equal(mf_objects_at(set, 2)->file, "web/z/c.json");
	mf_objects_free(set);

	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "dup"), NULL), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "web2/dup.yaml:3: ConfigMap dev/b is defined twice"));
	assert_non_null(strstr(gitops_error_last(), "web/b.yaml:1 (app web)"));

	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "bad"), NULL), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), "broken/bad.yaml:5:3: duplicate key \"name\""));

	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "gone"), NULL), GITOPS_ENOTFOUND);
	if (!strstr(gitops_error_last(), "app ghost (gitops.yaml:18): path ghost does not exist"))
		fail_msg("%s", gitops_error_last());
	mf_renderer_free(r);

	o.limits.max_file_size = 100;
	mf_renderer_new(&r, &o);
	assert_int_equal(mf_render_env(&set, r, repo, sha, mf_config_env(cfg, "big"), NULL), GITOPS_EINVALID);
	if (!strstr(gitops_error_last(), "big/large.yaml:1: file is 137 bytes, over the 100-byte limit"))
		fail_msg("%s", gitops_error_last());
	mf_renderer_free(r);
	mf_config_free(cfg);
	mf_repo_free(repo);
	free(src);
}


/* ---- isolation: what a renderer can reach ------------------------------------------------------ */

/* A renderer sees the checkout (read-only), itself and /dev/null; no host file, no /proc, no
 * network, no mount, no privilege. */
static void renderers_see_only_the_repository_and_no_network(void **state)
{
	(void)state;
	char *root = gitops_sprintf("%s/iso", tmp);
	char *secret = gitops_sprintf("%s/outside/secret.txt", tmp);
	put(tmp, "outside/secret.txt", "top secret\n");
	put(root, "app/kustomization.yaml", "resources: []\n");
	put(root, "app/probe-open", secret);
	/* a TCP port that listens on the host's loopback */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	char port[16];
	snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
	put(root, "app/probe-port", port);
	char *probe = probe_binary();
	setenv("GITOPS_KUSTOMIZE", probe, 1);
	struct mf_render_options o = {.data_dir = ""};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	mf_objects_new(&set);
	struct mf_app app = {.name = "a", .path = "app", .renderer = MF_RENDERER_KUSTOMIZE};
	if (mf_render_dir(set, r, root, &app, NULL))
		fail_msg("%s", gitops_error_last());
	json_t *cm = find(set, "ConfigMap", "probe", NULL);
	/* the root holds exactly bin dev home src tmp */
	const char *seen = jstr(cm, "data.root");
	static const char *const want[] = {"bin ", "dev ", "home ", "src ", "tmp "};
	for (size_t i = 0; i < 5; i++)
		if (!strstr(seen, want[i]))
			fail_msg("root '%s' lacks %s", seen, want[i]);
	assert_int_equal(strlen(seen), strlen("bin dev home src tmp "));
	assert_string_equal(jstr(cm, "data.cwd"), "/src");
	assert_string_equal(jstr(cm, "data.arg2"), "yes");       /* /src/app, the app directory */
	assert_string_equal(jstr(cm, "data.open"), "no");        /* a host file outside the repository */
	assert_string_equal(jstr(cm, "data.etcPasswd"), "no");
	assert_string_equal(jstr(cm, "data.procSelf"), "no");
	assert_string_equal(jstr(cm, "data.pid"), "1");          /* its own PID namespace */
	assert_string_equal(jstr(cm, "data.connect"), "Network is unreachable");
	assert_string_equal(jstr(cm, "data.mount"), "no");       /* no capability left */
	assert_string_equal(jstr(cm, "data.writeSrc"), "no");    /* the checkout is read-only */
	assert_string_equal(jstr(cm, "data.writeTmp"), "yes");
	assert_string_equal(jstr(cm, "data.home"), "/home");
	/* nothing of the sandbox outlives the run */
	char *work = gitops_sprintf("%s/work", data_dir);
	assert_int_equal(sh("test -z \"$(find '%s' -mindepth 2 -name 'root-*')\"", work), 0);
	mf_objects_free(set);
	mf_renderer_free(r);
	/* the host's own check: the probe could reach the port outside the sandbox */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(c);
	close(ls);
	unsetenv("GITOPS_KUSTOMIZE");
	free(work);
	free(probe);
	free(secret);
	free(root);
}

/* Even with the path checks bypassed (mf_render_dir does not run them), the real kustomize cannot
 * read a base that exists on the host outside the repository: it is not in its world. */
static void kustomize_cannot_read_host_files_even_unchecked(void **state)
{
	(void)state;
	char *root = gitops_sprintf("%s/esc/repo", tmp);
	put(tmp, "esc/outside/kustomization.yaml", "resources: [cm.yaml]\n");
	put(tmp, "esc/outside/cm.yaml", cm("stolen"));
	put(root, "app/kustomization.yaml", "resources: [../../outside]\n");
	/* on the host the reference resolves: repo/app/../../outside */
	char *host = gitops_sprintf("%s/app/../../outside/cm.yaml", root);
	assert_int_equal(access(host, R_OK), 0);
	struct mf_render_options o = {.data_dir = ""};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	mf_objects_new(&set);
	struct mf_app app = {.name = "a", .path = "app", .renderer = MF_RENDERER_KUSTOMIZE};
	assert_int_not_equal(mf_render_dir(set, r, root, &app, NULL), 0);
	assert_non_null(strstr(gitops_error_last(), "app a: kustomize build app"));
	assert_non_null(strstr(gitops_error_last(), "/outside"));
	assert_int_equal(mf_objects_count(set), 0);
	mf_objects_free(set);
	mf_renderer_free(r);
	free(host);
	free(root);
}

/* Before kustomize runs, every reference of the kustomization (and of its bases) is checked: no
 * remote (https, git, file:// to another local repository), no absolute path, nothing outside the
 * repository, no chart inflation; the error names the kustomization, the field and the value. */
static void kustomize_references_outside_the_repository_are_refused(void **state)
{
	(void)state;
	char *other = new_repo("other-local");
	put(other, "secret/kustomization.yaml", "resources: [s.yaml]\n");
	put(other, "secret/s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n");
	commit(other, "other");
	char *src = new_repo("escapes");
	static const struct {
		const char *app, *kustomization, *want;
	} cases[] = {
		{"up", "resources: [../../../../tmp/x]\n", "resources: \"../../../../tmp/x\" is outside the repository"},
		{"abs", "resources: [/etc/kubernetes]\n", "resources: \"/etc/kubernetes\" is outside the repository"},
		{"fileurl", "resources: [\"file:///OTHER//secret\"]\n", "is remote"},
		{"https", "resources: [\"https://github.com/org/repo//base?ref=v1\"]\n", "is remote"},
		{"gh", "bases: [github.com/org/repo/base]\n", "bases: \"github.com/org/repo/base\" is remote"},
		{"scp", "components: [\"git@github.com:org/repo.git//c\"]\n", "components:"},
		{"patch", "resources: []\npatches:\n  - path: ../../../etc/p.yaml\n", "patches: \"../../../etc/p.yaml\" is outside"},
		{"gen", "configMapGenerator:\n  - name: g\n    files: [k=../../../../etc/passwd]\n", "configMapGenerator: \"../../../../etc/passwd\""},
		{"env", "secretGenerator:\n  - name: g\n    envs: [/etc/environment]\n", "secretGenerator: \"/etc/environment\""},
		{"charts", "helmCharts:\n  - name: x\n    repo: https://charts.example.com\n", "helmCharts: kustomize's chart inflation"},
		{"deep", "resources: [../base]\n", "base/kustomization.yaml: resources: \"../../../x\" is outside the repository"},
	};
	gitops_buf cfg = GITOPS_BUF_INIT;
	gitops_buf_puts(&cfg, "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    namespace: dev\n    apps:\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *rel = gitops_sprintf("apps/%s/kustomization.yaml", cases[i].app);
		char *text = gitops_strdup(cases[i].kustomization);
		char *at = strstr(text, "OTHER");
		if (at) {
			char *t2 = gitops_sprintf("%.*s%s%s", (int)(at - text), text, other + 1, at + 5);
			free(text);
			text = t2;
		}
		put(src, rel, text);
		gitops_buf_printf(&cfg, "      - {name: %s, path: apps/%s}\n", cases[i].app, cases[i].app);
		free(rel);
		free(text);
	}
	put(src, "apps/base/kustomization.yaml", "resources: [../../../x]\n");
	put(src, "gitops.yaml", cfg.ptr);
	commit(src, "escapes");
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	struct mf_config *c = load_config(repo, sha);
	const struct mf_environment *env = mf_config_env(c, "dev");
	struct mf_render_options o = {.data_dir = ""};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mf_objects *set;
		mf_objects_new(&set);
		assert_int_equal(mf_render_app(set, r, repo, sha, env, mf_environment_app(env, cases[i].app)), GITOPS_EINVALID);
		char *app = gitops_sprintf("app %s: ", cases[i].app);
		if (!strstr(gitops_error_last(), cases[i].want) || !strstr(gitops_error_last(), app))
			fail_msg("%s: '%s' lacks '%s'", cases[i].app, gitops_error_last(), cases[i].want);
		free(app);
		assert_int_equal(mf_objects_count(set), 0);
		mf_objects_free(set);
	}
	assert_int_equal(mf_renderer_executed(r), 0); /* kustomize never ran */
	mf_renderer_free(r);
	mf_config_free(c);
	mf_repo_free(repo);
	gitops_buf_free(&cfg);
	free(src);
	free(other);
}

/* A symlink or a submodule under an app is an error naming it (never skipped, never followed);
 * "./apps/a/" is apps/a. */
static void symlinks_and_submodules_are_errors_and_dot_paths_work(void **state)
{
	(void)state;
	char *sub = new_repo("sub-src");
	put(sub, "cm.yaml", cm("from-submodule"));
	commit(sub, "sub");
	char *src = new_repo("links");
	put(src, "gitops.yaml",
	    "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    namespace: dev\n    apps:\n"
	    "      - {name: dot, path: ./apps/dot/}\n      - {name: link, path: apps/link}\n"
	    "      - {name: linkdir, path: apps/linkdir}\n      - {name: sub, path: apps/sub}\n"
	    "      - {name: kustlink, path: apps/kustlink}\n");
	put(src, "apps/dot/cm.yaml", cm("dot"));
	put(src, "apps/link/real.yaml", cm("real"));
	assert_int_equal(sh("ln -s /etc/hostname '%s/apps/link/host.yaml'", src), 0);
	put(src, "apps/real/cm.yaml", cm("r"));
	assert_int_equal(sh("ln -s real '%s/apps/linkdir'", src), 0);
	put(src, "apps/kustlink/kustomization.yaml", "resources: [../shared]\n");
	assert_int_equal(sh("ln -s real '%s/apps/shared'", src), 0);
	assert_int_equal(sh("cd '%s' && git -c protocol.file.allow=always submodule add -q '%s' apps/sub/lib >/dev/null 2>&1", src, sub), 0);
	put(src, "apps/sub/cm.yaml", cm("s"));
	commit(src, "links");
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	struct mf_config *c = load_config(repo, sha);
	const struct mf_environment *env = mf_config_env(c, "dev");
	assert_string_equal(mf_environment_app(env, "dot")->path, "apps/dot");
	struct mf_render_options o = {.data_dir = ""};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	mf_objects_new(&set);
	assert_int_equal(mf_render_app(set, r, repo, sha, env, mf_environment_app(env, "dot")), 0);
	find(set, "ConfigMap", "dot", NULL);
	static const struct {
		const char *app, *want;
	} cases[] = {
		{"link", "apps/link/host.yaml: a symbolic link"},
		{"linkdir", "apps/linkdir: a symbolic link"},
		{"sub", "apps/sub/lib: a git submodule"},
		{"kustlink", "resources: apps/shared: a symbolic link"},
	};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(mf_render_app(set, r, repo, sha, env, mf_environment_app(env, cases[i].app)), GITOPS_EINVALID);
		if (!strstr(gitops_error_last(), cases[i].want))
			fail_msg("%s: '%s' lacks '%s'", cases[i].app, gitops_error_last(), cases[i].want);
	}
	assert_int_equal(mf_objects_count(set), 1);
	mf_objects_free(set);
	mf_renderer_free(r);
	mf_config_free(c);
	mf_repo_free(repo);
	free(src);
	free(sub);
}

/* A render killed in the middle leaves its checkout under the data directory, never in /tmp;
 * the next renderer to start removes it. */
static void killed_render_leaves_nothing_behind(void **state)
{
	(void)state;
	char *src = new_repo("killed");
	put(src, "gitops.yaml", "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    apps:\n"
				"      - {name: k, path: k, renderer: kustomize}\n");
	put(src, "k/kustomization.yaml", "resources: []\n");
	put(src, "k/probe-sleep", "");
	commit(src, "sleepy");
	char *probe = probe_binary();
	char *work = gitops_sprintf("%s/killdata/work", tmp);
	char *dd = gitops_sprintf("%s/killdata", tmp);
	char *killtmp = gitops_sprintf("%s/killtmp", tmp);
	assert_int_equal(mkdir(killtmp, 0700), 0);
	pid_t pid = fork();
	if (pid == 0) {
		setenv("TMPDIR", killtmp, 1);
		setenv("GITOPS_KUSTOMIZE", probe, 1);
		mf_repo *repo;
		char sha[41];
		if (mf_repo_open(&repo, src, dd) || mf_repo_fetch(repo) || mf_repo_resolve(sha, repo, "main"))
			_exit(2);
		struct mf_config *c = load_config(repo, sha);
		struct mf_render_options o = {.data_dir = dd};
		mf_renderer *r;
		mf_renderer_new(&r, &o);
		mf_objects *set;
		mf_objects_new(&set);
		mf_render_app(set, r, repo, sha, mf_config_env(c, "dev"), mf_environment_app(mf_config_env(c, "dev"), "k"));
		_exit(0);
	}
	/* wait until its checkout is there, then kill it */
	int found = 0;
	for (int i = 0; i < 600 && !found; i++) {
		found = sh("test -n \"$(find '%s' -mindepth 2 -maxdepth 2 -name 'checkout-*' 2>/dev/null)\"", work) == 0;
		if (!found)
			usleep(50000);
	}
	assert_true(found);
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(sh("test -n \"$(find '%s' -mindepth 2 -maxdepth 2 -name 'checkout-*')\"", work), 0);
	/* the next renderer to start sweeps it (once the kernel has dropped the dead one's lock: the
	 * sandbox's processes die with it, a moment later) */
	struct mf_render_options o = {.data_dir = dd};
	bool swept = false;
	for (int i = 0; i < 100 && !swept; i++) {
		mf_renderer *r;
		mf_renderer_new(&r, &o);
		swept = sh("test -z \"$(find '%s' -mindepth 1)\"", work) == 0;
		mf_renderer_free(r);
		if (!swept)
			usleep(50000);
	}
	assert_true(swept);
	assert_int_equal(sh("test -z \"$(ls -A '%s/killtmp')\"", tmp), 0); /* its TMPDIR: nothing */
	free(killtmp);
	free(dd);
	free(work);
	free(probe);
	free(src);
}

/* ---- helm as `helm install` would render ------------------------------------------------------- */

struct caps {
	const char *version;
	int calls;
};

static int test_caps(void *data, const struct mf_environment *env, char **kube_version, json_t **api_versions)
{
	(void)env;
	struct caps *c = data;
	c->calls++;
	*kube_version = gitops_strdup(c->version);
	*api_versions = json_pack("[s,s,s]", "policy/v1", "policy/v1/PodDisruptionBudget", "monitoring.coreos.com/v1");
	return 0;
}

/* podinfo's chart (kubeVersion >=1.23.0-0) renders with the cluster's version; the version and the
 * API versions reach .Capabilities and the render cache key; test hooks are marked never to apply. */
static void helm_renders_podinfo_for_the_target_cluster(void **state)
{
	(void)state;
	char *src = new_repo("podinfo");
	assert_int_equal(sh("cp -r tests/fixtures/manifests/podinfo/podinfo '%s/podinfo'", src), 0);
	put(src, "caps/Chart.yaml", "apiVersion: v2\nname: caps\nversion: 0.1.0\nkubeVersion: \">=1.23.0-0\"\n");
	put(src, "caps/templates/cm.yaml",
	    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata:\n"
	    "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
	    "  pdb: {{ .Capabilities.APIVersions.Has \"policy/v1/PodDisruptionBudget\" | quote }}\n"
	    "  monitoring: {{ .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" | quote }}\n");
	put(src, "gitops.yaml", "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    namespace: web\n    apps:\n"
				"      - {name: podinfo, path: podinfo}\n      - {name: caps, path: caps}\n");
	commit(src, "podinfo");
	mf_repo *repo;
	assert_int_equal(mf_repo_open(&repo, src, data_dir), 0);
	assert_int_equal(mf_repo_fetch(repo), 0);
	char sha[41];
	assert_int_equal(mf_repo_resolve(sha, repo, "main"), 0);
	struct mf_config *c = load_config(repo, sha);
	const struct mf_environment *env = mf_config_env(c, "dev");
	struct caps caps = {"v1.36.3", 0};
	struct mf_render_options o = {.data_dir = "", .capabilities = test_caps, .capabilities_data = &caps};
	mf_renderer *r;
	mf_renderer_new(&r, &o);
	mf_objects *set;
	if (mf_render_env(&set, r, repo, sha, env, NULL))
		fail_msg("%s", gitops_error_last());
	assert_int_equal(caps.calls, 1); /* once per environment and render */
	find(set, "Deployment", "podinfo", NULL);
	json_t *cm = find(set, "ConfigMap", "caps", NULL);
	assert_string_equal(jstr(cm, "data.kube"), "v1.36.3");
	assert_string_equal(jstr(cm, "data.pdb"), "true");
	assert_string_equal(jstr(cm, "data.monitoring"), "true");
	size_t tests = 0;
	for (size_t i = 0; i < mf_objects_count(set); i++) {
		const struct mf_object *mo = mf_objects_at(set, i);
		if (strstr(mo->file, "templates/tests/")) {
			assert_int_equal(mo->hook, MF_HOOK_SKIP);
			tests++;
		} else {
			assert_int_equal(mo->hook, MF_HOOK_NONE);
		}
	}
	assert_true(tests >= 1);
	mf_objects_free(set);
	unsigned long runs = mf_renderer_executed(r);
	/* same cluster: served from the cache; an upgraded cluster: rendered again */
	assert_int_equal(mf_render_env(&set, r, repo, sha, env, NULL), 0);
	mf_objects_free(set);
	assert_int_equal(mf_renderer_executed(r), runs);
	caps.version = "v1.37.1";
	assert_int_equal(mf_render_env(&set, r, repo, sha, env, NULL), 0);
	assert_int_equal(mf_renderer_executed(r), runs + 2);
	assert_string_equal(jstr(find(set, "ConfigMap", "caps", NULL), "data.kube"), "v1.37.1");
	mf_objects_free(set);
	/* a cluster older than the chart allows: helm's own refusal */
	caps.version = "v1.22.0";
	assert_int_equal(mf_render_env(&set, r, repo, sha, env, "podinfo"), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "incompatible with Kubernetes v1.22.0"));
	mf_renderer_free(r);
	mf_config_free(c);
	mf_repo_free(repo);
	free(src);
}

static int setup(void **state)
{
	(void)state;
	char t[] = "/tmp/gitops-mf-test-XXXXXX";
	assert_non_null(mkdtemp(t));
	tmp = gitops_strdup(t);
	data_dir = gitops_sprintf("%s/data", tmp);
	setenv("GITOPS_DATA_DIR", data_dir, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mf_rmtree(tmp);
	free(tmp);
	free(data_dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(git_source_resolves_reads_lists_and_checks_out),
		cmocka_unit_test(fetch_follows_new_commits_and_keeps_the_mirror_when_unreachable),
		cmocka_unit_test(https_without_credentials_is_a_clear_error),
		cmocka_unit_test(renders_plain_kustomize_and_helm_per_environment),
		cmocka_unit_test(cache_twenty_apps_one_commit_rerenders_one),
		cmocka_unit_test(cache_damaged_positions_are_rendered_again),
		cmocka_unit_test(cache_hit_gives_compact_objects_that_parse_as_rendered),
		cmocka_unit_test(cache_compact_object_with_hook_annotation_that_is_no_hook),
		cmocka_unit_test(cache_key_follows_kustomize_bases_and_helm_values),
		cmocka_unit_test(cache_key_follows_bases_reached_through_subdirectories),
		cmocka_unit_test(renderer_failures_are_clear_errors),
		cmocka_unit_test(plain_dirs_are_recursive_ordered_and_bad_input_names_the_line),
		cmocka_unit_test(renderers_see_only_the_repository_and_no_network),
		cmocka_unit_test(kustomize_cannot_read_host_files_even_unchecked),
		cmocka_unit_test(kustomize_references_outside_the_repository_are_refused),
		cmocka_unit_test(symlinks_and_submodules_are_errors_and_dot_paths_work),
		cmocka_unit_test(killed_render_leaves_nothing_behind),
		cmocka_unit_test(helm_renders_podinfo_for_the_target_cluster),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
