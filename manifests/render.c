/* manifests/render.c: renders apps (plain directories, kustomize, helm) at a commit, through a
 * render cache keyed by the git ids of everything the render reads (memory and disk). */
#include "manifests/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bump when the cached form or the YAML reading changes: old entries are then ignored. */
#define CACHE_FORMAT "gitops-render-cache/4"

/* A render in the memory cache: the cache file's text (see set_to_cache), compact. Text, not a parsed tree: a tree takes about 8 times the memory, and a
 * hit parses it straight into the caller's set (which needs its own objects anyway). */
struct mem_entry {
	char key[65];
	char *text;
	size_t len;
};

struct mf_renderer {
	char *data_dir; /* NULL: no disk cache */
	bool no_mem;    /* no memory cache */
	int timeout_ms;
	struct mf_limits lim;
	mf_scope_fn scope;
	void *scope_data;
	struct mem_entry *mem;
	size_t n_mem, cap_mem, mem_bytes;
	unsigned long executed, hits;
	char *bin[2], *version[2]; /* [0] helm, [1] kustomize */
	char *work;                /* <data dir>/work/<pid>-XXXXXX: checkouts and sandbox mount points */
	int work_lock;             /* fd holding an flock on work/lock while this renderer lives */
	unsigned long runs;
	mf_capabilities_fn caps_fn;
	void *caps_data;
	const struct mf_environment *caps_env; /* whose capabilities caps_* hold; NULL: none asked */
	long long caps_at;                     /* when they were asked (a cluster gets upgraded) */
	char *caps_version;                    /* --kube-version, or NULL */
	char *caps_apis;                       /* --api-versions (comma-separated), or NULL */
	mf_repo *co_repo;
	char co_commit[41];
	char *co_dir;
};

/* Removes the work directories of renderers that are gone (killed, crashed): each live one holds
 * an flock on its `lock` file, released by the kernel when its process ends. */
static void sweep_work(const char *root)
{
	DIR *d = opendir(root);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		bool hidden = de->d_name[0] == '.';
		char *dir = gitops_sprintf("%s/%s", root, de->d_name);
		char *lock = gitops_sprintf("%s/lock", dir);
		struct stat st;
		int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		/* A directory is left over when nobody holds its lock. A renderer makes its directory
		 * under a hidden name (".<pid>-XXXXXX"), takes the lock inside, and only then gives it
		 * its name, so a sweep never sees a live directory unlocked; a hidden one is left over
		 * when over a minute old (a renderer killed while making it). */
		bool old = !lstat(dir, &st) && S_ISDIR(st.st_mode) && time(NULL) - st.st_mtime > 60;
		bool dead = hidden ? old : fd < 0 ? old : flock(fd, LOCK_EX | LOCK_NB) == 0;
		if (dead)
			mf_rmtree(dir);
		if (fd >= 0)
			close(fd);
		free(lock);
		free(dir);
	}
	closedir(d);
	gitops_error_clear();
}

int mf_renderer_new(mf_renderer **out, const struct mf_render_options *opts)
{
	mf_renderer *r = gitops_calloc(1, sizeof(*r));
	if (opts && opts->data_dir)
		r->data_dir = *opts->data_dir ? gitops_strdup(opts->data_dir) : NULL;
	else
		r->data_dir = mf_data_dir();
	r->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : MF_DEFAULT_TIMEOUT_MS;
	r->no_mem = opts && opts->no_memory_cache;
	if (opts)
		r->lim = opts->limits;
	if (!r->lim.max_file_size)
		r->lim.max_file_size = MF_DEFAULT_MAX_FILE_SIZE;
	r->scope = opts ? opts->scope : NULL;
	r->scope_data = opts ? opts->scope_data : NULL;
	r->work_lock = -1;
	/* what renderers that died (killed, crashed) left under the data directory goes now */
	char *base = r->data_dir ? gitops_strdup(r->data_dir) : mf_data_dir();
	char *root = gitops_sprintf("%s/work", base);
	sweep_work(root);
	free(root);
	free(base);
	r->caps_fn = opts ? opts->capabilities : NULL;
	r->caps_data = opts ? opts->capabilities_data : NULL;
	*out = r;
	return 0;
}

static void drop_checkout(mf_renderer *r)
{
	if (r->co_dir) {
		mf_rmtree(r->co_dir);
		free(r->co_dir);
		r->co_dir = NULL;
	}
	r->co_repo = NULL;
}

void mf_renderer_free(mf_renderer *r)
{
	if (!r)
		return;
	drop_checkout(r);
	for (size_t i = 0; i < r->n_mem; i++)
		free(r->mem[i].text);
	free(r->mem);
	for (int i = 0; i < 2; i++) {
		free(r->bin[i]);
		free(r->version[i]);
	}
	if (r->work) {
		mf_rmtree(r->work);
		free(r->work);
	}
	if (r->work_lock >= 0)
		close(r->work_lock);
	free(r->caps_version);
	free(r->caps_apis);
	free(r->data_dir);
	free(r);
}

unsigned long mf_renderer_executed(const mf_renderer *r) { return r->executed; }
unsigned long mf_renderer_cache_hits(const mf_renderer *r) { return r->hits; }

/* ---- running the binaries ------------------------------------------------------------------ */

static int tool(mf_renderer *r, int which, const char **bin)
{
	static const char *const names[] = {"helm", "kustomize"};
	if (!r->bin[which]) {
		int rc = mf_find_binary(&r->bin[which], names[which]);
		if (rc)
			return rc;
	}
	*bin = r->bin[which];
	return 0;
}

/* ---- the work directory: checkouts and sandbox roots under the data directory ------------------ */

static int ensure_work(mf_renderer *r)
{
	if (r->work)
		return 0;
	char *base = r->data_dir ? gitops_strdup(r->data_dir) : mf_data_dir();
	char *root = gitops_sprintf("%s/work", base);
	mkdir(base, 0700);
	mkdir(root, 0700);
	sweep_work(root);
	/* made hidden, locked, then named: see sweep_work */
	char *hid = gitops_sprintf("%s/.%ld-XXXXXX", root, (long)getpid());
	char *dir = NULL;
	int rc = 0;
	if (!mkdtemp(hid)) {
		rc = gitops_error_set(GITOPS_EIO, "mkdtemp %s: %s (set GITOPS_DATA_DIR to a writable directory)", hid,
				      gitops_strerror(errno));
	} else {
		char *lock = gitops_sprintf("%s/lock", hid);
		r->work_lock = open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (r->work_lock < 0 || flock(r->work_lock, LOCK_EX | LOCK_NB))
			rc = gitops_error_set(GITOPS_EIO, "lock %s: %s", lock, gitops_strerror(errno));
		free(lock);
		char *slash = strrchr(hid, '/');
		dir = gitops_sprintf("%.*s/%s", (int)(slash - hid), hid, slash + 2);
		if (!rc && renameat2(AT_FDCWD, hid, AT_FDCWD, dir, RENAME_NOREPLACE))
			rc = gitops_error_set(GITOPS_EIO, "rename %s: %s", hid, gitops_strerror(errno));
	}
	if (rc) {
		mf_rmtree(hid);
		free(dir);
	} else {
		r->work = dir;
	}
	free(hid);
	free(root);
	free(base);
	return rc;
}

/* Runs a renderer in its sandbox (see mf_proc_run): `src` is the host directory shown read-only at
 * /src (NULL: none), `cwd` a path inside. The environment holds nothing of the host's: a private
 * HOME and TMPDIR on the sandbox's tmpfs, no kubeconfig, no plugins, git limited to local files. */
static int run_tool(mf_renderer *r, gitops_buf *out, char **argv, const char *src, const char *cwd)
{
	int rc = ensure_work(r);
	if (rc)
		return rc;
	char *mnt = gitops_sprintf("%s/root-%lu", r->work, ++r->runs);
	if (mkdir(mnt, 0700)) {
		rc = gitops_error_set(GITOPS_EIO, "mkdir %s: %s", mnt, gitops_strerror(errno));
		free(mnt);
		return rc;
	}
	char *envp[] = {
		"PATH=/bin",
		"HOME=/home",
		"TMPDIR=/tmp",
		"HELM_CACHE_HOME=/home/cache",
		"HELM_CONFIG_HOME=/home/config",
		"HELM_DATA_HOME=/home/data",
		"XDG_CONFIG_HOME=/home/config",
		"KUSTOMIZE_PLUGIN_HOME=/home/no-plugins",
		"KUBECONFIG=/dev/null/none",
		"GIT_ALLOW_PROTOCOL=file",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
		NULL,
	};
	struct mf_sandbox sb = {src, mnt};
	rc = mf_proc_run(out, argv, envp, cwd, r->timeout_ms, r->lim.max_file_size * 4, &sb);
	rmdir(mnt);
	free(mnt);
	return rc;
}

static int tool_version(mf_renderer *r, int which, const char **version)
{
	if (!r->version[which]) {
		const char *bin;
		int rc = tool(r, which, &bin);
		if (rc)
			return rc;
		gitops_buf out = GITOPS_BUF_INIT;
		char *argv[] = {(char *)bin, "version", which == 0 ? "--short" : NULL, NULL};
		rc = run_tool(r, &out, argv, NULL, "/");
		if (rc) {
			gitops_buf_free(&out);
			return gitops_error_prefix("%s version", bin);
		}
		const char *s = gitops_buf_cstr(&out);
		r->version[which] = gitops_strndup(s, strcspn(s, "\r\n"));
		gitops_buf_free(&out);
	}
	*version = r->version[which];
	return 0;
}

/* ---- plain directories on disk ---------------------------------------------------------------- */

static bool manifest_name(const char *name)
{
	size_t n = strlen(name);
	return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml")) ||
	       (n > 5 && !strcmp(name + n - 5, ".json"));
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int plain_fs(mf_objects *set, mf_renderer *r, const char *root, const char *rel,
		    const char *app, const char *ns, int depth)
{
	char *dir = gitops_sprintf("%s/%s", root, rel);
	DIR *d = opendir(dir);
	if (!d) {
		int rc = gitops_error_set(errno == ENOENT ? GITOPS_ENOTFOUND : GITOPS_EIO, "%s: %s", rel, gitops_strerror(errno));
		free(dir);
		return rc;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue; /* ., .., and hidden files such as .github */
		names = gitops_realloc(names, (n + 1) * sizeof(char *));
		names[n++] = gitops_strdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(char *), cmp_cstr);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		char *p = gitops_sprintf("%s/%s", dir, names[i]);
		char *relp = gitops_sprintf("%s/%s", rel, names[i]);
		struct stat st;
		if (lstat(p, &st)) {
			rc = gitops_error_set(GITOPS_EIO, "%s: %s", relp, gitops_strerror(errno));
		} else if (S_ISLNK(st.st_mode)) {
			rc = gitops_error_set(GITOPS_EINVALID, "%s: a symbolic link; gitops does not follow links in the "
					      "repository (they could point outside it): commit the file or directory itself", relp);
		} else if (S_ISDIR(st.st_mode)) {
			if (depth > 32)
				rc = gitops_error_set(GITOPS_EINVALID, "%s: directories nested too deep", relp);
			else
				rc = plain_fs(set, r, root, relp, app, ns, depth + 1);
		} else if (S_ISREG(st.st_mode) && manifest_name(names[i])) {
			if ((size_t)st.st_size > r->lim.max_file_size) {
				rc = gitops_error_set(GITOPS_EINVALID, "%s:1: file is %lld bytes, over the %zu-byte limit",
						      relp, (long long)st.st_size, r->lim.max_file_size);
			} else {
				gitops_buf b = GITOPS_BUF_INIT;
				rc = gitops_read_file(&b, p, r->lim.max_file_size);
				if (!rc)
					rc = mf_objects_add_yaml(set, gitops_buf_cstr(&b), b.len, relp, app, ns, &r->lim);
				gitops_buf_free(&b);
			}
		}
		free(p);
		free(relp);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(dir);
	return rc;
}

/* ---- helm / kustomize on a directory ----------------------------------------------------------- */

static bool path_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static enum mf_renderer_kind detect_fs(const char *dir)
{
	static const char *const kust[] = {"kustomization.yaml", "kustomization.yml", "Kustomization"};
	for (size_t i = 0; i < 3; i++) {
		char *p = gitops_sprintf("%s/%s", dir, kust[i]);
		bool ok = path_exists(p);
		free(p);
		if (ok)
			return MF_RENDERER_KUSTOMIZE;
	}
	char *p = gitops_sprintf("%s/Chart.yaml", dir);
	bool chart = path_exists(p);
	free(p);
	return chart ? MF_RENDERER_HELM : MF_RENDERER_PLAIN;
}

/* Chart dependencies must be vendored under charts/: no network at render time. */
static int helm_deps_vendored(const char *dir, const char *label)
{
	char *p = gitops_sprintf("%s/Chart.yaml", dir);
	gitops_buf b = GITOPS_BUF_INIT;
	json_t *chart = NULL;
	int rc = gitops_read_file(&b, p, MF_DEFAULT_MAX_FILE_SIZE);
	if (!rc)
		rc = mf_yaml_parse(&chart, gitops_buf_cstr(&b), b.len, label, NULL);
	json_t *deps = json_object_get(chart, "dependencies");
	size_t i;
	json_t *dep;
	json_array_foreach(deps, i, dep) {
		const char *name = json_string_value(json_object_get(dep, "name"));
		if (!name || rc)
			continue;
		char *cdir = gitops_sprintf("%s/charts", dir);
		bool found = false;
		DIR *d = opendir(cdir);
		struct dirent *de;
		size_t nl = strlen(name);
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, name, nl) && (de->d_name[nl] == '\0' || de->d_name[nl] == '-'))
				found = true;
		if (d)
			closedir(d);
		free(cdir);
		if (!found)
			rc = gitops_error_set(GITOPS_EINVALID, "%s: chart dependency \"%s\" is not vendored under charts/ "
					      "(run 'helm dependency build' and commit charts/; gitops renders without network)",
					      label, name);
	}
	json_decref(chart);
	gitops_buf_free(&b);
	free(p);
	return rc;
}

/* Adds helm output document by document, naming each object's template ("# Source: chart/x"). */
static int add_helm_output(mf_objects *set, mf_renderer *r, const char *text, const char *app_path,
			   const char *app, const char *ns)
{
	const char *p = text;
	int rc = 0;
	while (*p && !rc) {
		/* a chunk runs to the next line that is exactly "---" */
		const char *end = p;
		for (;;) {
			const char *nl = strchr(end, '\n');
			if (!nl) {
				end += strlen(end);
				break;
			}
			if (!strncmp(nl + 1, "---", 3) && (nl[4] == '\n' || nl[4] == '\0' || nl[4] == ' ')) {
				end = nl + 1;
				break;
			}
			end = nl + 1;
		}
		const char *src = strstr(p, "# Source: ");
		char *label;
		if (src && src < end) {
			src += 10;
			size_t n = strcspn(src, "\r\n");
			const char *slash = memchr(src, '/', n);
			if (slash)
				label = gitops_sprintf("%s/%.*s (rendered)", app_path, (int)(n - (size_t)(slash + 1 - src)), slash + 1);
			else
				label = gitops_sprintf("%s/%.*s (rendered)", app_path, (int)n, src);
		} else {
			label = gitops_sprintf("%s (helm template)", app_path);
		}
		rc = mf_objects_add_yaml(set, p, (size_t)(end - p), label, app, ns, &r->lim);
		free(label);
		p = end;
		if (!strncmp(p, "---", 3))
			p += strcspn(p, "\n") + (p[strcspn(p, "\n")] == '\n');
	}
	return rc;
}

static const char *app_namespace(const struct mf_app *app, const struct mf_environment *env)
{
	if (app->namespace)
		return app->namespace;
	return env ? env->namespace : NULL;
}

static void caps_forget(mf_renderer *r)
{
	r->caps_env = NULL;
	free(r->caps_version);
	free(r->caps_apis);
	r->caps_version = r->caps_apis = NULL;
}

/* The capabilities of env's cluster (mf_capabilities_fn), asked once per environment and render. */
static int caps_get(mf_renderer *r, const struct mf_environment *env)
{
	if (!r->caps_fn || !env || (r->caps_env == env && gitops_now_ms() - r->caps_at < 60000))
		return 0;
	caps_forget(r);
	char *ver = NULL;
	json_t *apis = NULL;
	int rc = r->caps_fn(r->caps_data, env, &ver, &apis);
	if (rc) {
		free(ver);
		json_decref(apis);
		return rc;
	}
	r->caps_env = env;
	r->caps_at = gitops_now_ms();
	r->caps_version = ver;
	if (json_array_size(apis)) {
		gitops_buf b = GITOPS_BUF_INIT;
		size_t i;
		json_t *v;
		json_array_foreach(apis, i, v)
			if (json_is_string(v) && !strchr(json_string_value(v), ','))
				gitops_buf_printf(&b, "%s%s", b.len ? "," : "", json_string_value(v));
		r->caps_apis = gitops_buf_detach(&b);
	}
	json_decref(apis);
	return 0;
}

int mf_render_dir(mf_objects *set, mf_renderer *r, const char *root, const struct mf_app *app,
		  const struct mf_environment *env)
{
	const char *ns = app_namespace(app, env);
	char *dir = gitops_sprintf("%s/%s", root, app->path);
	enum mf_renderer_kind kind = app->renderer != MF_RENDERER_AUTO ? app->renderer : detect_fs(dir);
	int rc = 0;
	gitops_buf out = GITOPS_BUF_INIT;
	const char *bin;
	if (!path_exists(dir)) {
		rc = gitops_error_set(GITOPS_ENOTFOUND, "app %s: directory %s does not exist", app->name, app->path);
	} else if (kind == MF_RENDERER_PLAIN) {
		rc = plain_fs(set, r, root, app->path, app->name, ns, 0);
	} else if (kind == MF_RENDERER_KUSTOMIZE) {
		rc = tool(r, 1, &bin);
		if (!rc) {
			char *in = gitops_sprintf(MF_SANDBOX_SRC "/%s", app->path);
			char *argv[] = {(char *)bin, "build", in, NULL};
			rc = run_tool(r, &out, argv, root, MF_SANDBOX_SRC);
			free(in);
			if (rc)
				gitops_error_prefix("app %s: kustomize build %s", app->name, app->path);
		}
		if (!rc) {
			char *label = gitops_sprintf("%s (kustomize build)", app->path);
			rc = mf_objects_add_yaml(set, gitops_buf_cstr(&out), out.len, label, app->name, ns, &r->lim);
			free(label);
		}
	} else {
		char *label = gitops_sprintf("%s/Chart.yaml", app->path);
		rc = helm_deps_vendored(dir, label);
		free(label);
		if (!rc)
			rc = tool(r, 0, &bin);
		if (!rc) {
			size_t n = 0;
			char **argv = gitops_calloc(16 + 2 * app->n_values, sizeof(char *));
			char **owned = gitops_calloc(app->n_values + 1, sizeof(char *));
			argv[n++] = (char *)bin;
			argv[n++] = "template";
			char *in = gitops_sprintf(MF_SANDBOX_SRC "/%s", app->path);
			argv[n++] = app->release_name ? app->release_name : app->name;
			argv[n++] = in;
			argv[n++] = "--include-crds";
			/* as `helm install` would render it: the target cluster's version and APIs */
			rc = caps_get(r, env);
			if (r->caps_version) {
				argv[n++] = "--kube-version";
				argv[n++] = r->caps_version;
			}
			if (r->caps_apis) {
				argv[n++] = "--api-versions";
				argv[n++] = r->caps_apis;
			}
			if (ns) {
				argv[n++] = "--namespace";
				argv[n++] = (char *)ns;
			}
			for (size_t i = 0; i < app->n_values && !rc; i++) {
				char *host = gitops_sprintf("%s/%s", root, app->values[i]);
				struct stat st;
				if (lstat(host, &st) || !S_ISREG(st.st_mode))
					rc = gitops_error_set(GITOPS_ENOTFOUND, "app %s: values file %s %s", app->name, app->values[i],
							      lstat(host, &st) ? "does not exist" : "is not a regular file");
				free(host);
				owned[i] = gitops_sprintf(MF_SANDBOX_SRC "/%s", app->values[i]);
				argv[n++] = "-f";
				argv[n++] = owned[i];
			}
			if (!rc) {
				rc = run_tool(r, &out, argv, root, MF_SANDBOX_SRC);
				if (rc)
					gitops_error_prefix("app %s: helm template %s", app->name, app->path);
			}
			if (!rc)
				rc = add_helm_output(set, r, gitops_buf_cstr(&out), app->path, app->name, ns);
			mf_strv_free(owned, app->n_values);
			free(argv);
			free(in);
		}
	}
	gitops_buf_free(&out);
	free(dir);
	return rc;
}

/* ---- git-backed rendering with the cache --------------------------------------------------------- */

static int detect_git(enum mf_renderer_kind *out, mf_repo *repo, const char *commit, const char *path)
{
	char id[41];
	static const char *const kust[] = {"kustomization.yaml", "kustomization.yml", "Kustomization"};
	for (size_t i = 0; i < 3; i++) {
		char *p = gitops_sprintf("%s/%s", path, kust[i]);
		int rc = mf_repo_entry_id(id, repo, commit, p);
		free(p);
		if (!rc) {
			*out = MF_RENDERER_KUSTOMIZE;
			return 0;
		}
	}
	char *p = gitops_sprintf("%s/Chart.yaml", path);
	int rc = mf_repo_entry_id(id, repo, commit, p);
	free(p);
	*out = rc ? MF_RENDERER_PLAIN : MF_RENDERER_HELM;
	gitops_error_clear();
	return 0;
}

int mf_renderer_detect(enum mf_renderer_kind *out, mf_repo *repo, const char *commit, const struct mf_app *app)
{
	*out = app->renderer;
	if (*out == MF_RENDERER_AUTO)
		return detect_git(out, repo, commit, app->path);
	return 0;
}

/* Joins a kustomization-relative reference onto dir, resolving "." and "..". NULL when it
 * leaves the repository. */
static char *join_norm(const char *dir, const char *ref)
{
	char *all = gitops_sprintf("%s/%s", dir, ref);
	char **parts = NULL;
	size_t n = 0;
	char *save = NULL;
	bool bad = false;
	for (char *t = strtok_r(all, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (!strcmp(t, "."))
			continue;
		if (!strcmp(t, "..")) {
			if (!n)
				bad = true;
			else
				n--;
			continue;
		}
		parts = gitops_realloc(parts, (n + 1) * sizeof(char *));
		parts[n++] = t;
	}
	char *res = NULL;
	if (!bad) {
		gitops_buf b = GITOPS_BUF_INIT;
		for (size_t i = 0; i < n; i++)
			gitops_buf_printf(&b, "%s%s", i ? "/" : "", parts[i]);
		res = gitops_buf_detach(&b);
	}
	free(parts);
	free(all);
	return res;
}

/* True for a kustomize reference to something remote: a URL (any scheme, file:// included: another
 * repository on this host is outside the repository too), scp-like git (git@host:x), or a go-getter
 * style host path (github.com/org/repo//dir?ref=v1). */
static bool remote_ref(const char *ref)
{
	if (strstr(ref, "://") || !strncmp(ref, "git@", 4) || strstr(ref, "?ref=") || strstr(ref, "?version=") ||
	    strstr(ref, "?timeout=") || strstr(ref, "?submodules="))
		return true;
	static const char *const hosts[] = {"github.com", "gitlab.com", "bitbucket.org", "git::", "gh:", NULL};
	for (const char *const *h = hosts; *h; h++)
		if (!strncmp(ref, *h, strlen(*h)))
			return true;
	/* scp-like "host:path" before any slash */
	const char *colon = strchr(ref, ':'), *slash = strchr(ref, '/');
	return colon && (!slash || colon < slash);
}

struct kctx {
	gitops_buf *key;
	mf_repo *repo;
	const char *commit, *app_name, *app_dir;
};

/* Checks one path-like value of a kustomization in `dir` (`kfile` names it): no URL, no absolute
 * path, nothing outside the repository, no symlink or submodule. Returns the normalized
 * repository path (caller frees) or NULL with the error set. */
static char *kustomize_ref(const struct kctx *c, const char *kfile, const char *field, const char *dir,
			   const char *ref)
{
	if (remote_ref(ref)) {
		gitops_error_set(GITOPS_EINVALID, "app %s: %s: %s: \"%s\" is remote; gitops renders from this repository "
				 "only, without network: vendor it into the repository and refer to it by a relative path",
				 c->app_name, kfile, field, ref);
		return NULL;
	}
	char *p = ref[0] == '/' ? NULL : join_norm(dir, ref);
	if (!p) {
		gitops_error_set(GITOPS_EINVALID, "app %s: %s: %s: \"%s\" is outside the repository; kustomize may only "
				 "read files of this repository", c->app_name, kfile, field, ref);
		return NULL;
	}
	if (mf_repo_check_plain_tree(c->repo, c->commit, p) && gitops_error_code() == GITOPS_EINVALID) {
		gitops_error_prefix("app %s: %s: %s", c->app_name, kfile, field);
		free(p);
		return NULL;
	}
	gitops_error_clear(); /* a missing path is kustomize's to report */
	return p;
}

/* Walks a kustomization and what it refers to: every path is checked (kustomize_ref) and the ids
 * of directories and files outside the app directory go into the cache key, recursively: an
 * overlay's key changes with its base. */
static int kustomize_check(const struct kctx *c, const char *dir_in, int depth)
{
	const char *dir = strcmp(dir_in, ".") ? dir_in : ""; /* the repository root */
	if (depth > 16)
		return gitops_error_set(GITOPS_EINVALID, "app %s: kustomizations nested more than 16 deep at %s",
					c->app_name, dir);
	static const char *const names[] = {"kustomization.yaml", "kustomization.yml", "Kustomization"};
	gitops_buf b = GITOPS_BUF_INIT;
	char *kfile = NULL;
	int rc = -1;
	for (size_t i = 0; i < 3 && rc; i++) {
		free(kfile);
		kfile = *dir ? gitops_sprintf("%s/%s", dir, names[i]) : gitops_strdup(names[i]);
		gitops_buf_clear(&b);
		rc = mf_repo_read(&b, c->repo, c->commit, kfile);
	}
	gitops_error_clear();
	json_t *k = NULL;
	if (rc) { /* a plain directory of resources: nothing more to follow */
		rc = 0;
		goto out;
	}
	rc = mf_yaml_parse(&k, gitops_buf_cstr(&b), b.len, kfile, NULL);
	if (rc || !json_is_object(k))
		goto out; /* kustomize reports a malformed kustomization itself */
	static const char *const unsupported[] = {"helmCharts", "helmChartInflationGenerator", "helmGlobals", NULL};
	for (const char *const *u = unsupported; *u; u++)
		if (json_object_get(k, *u)) {
			rc = gitops_error_set(GITOPS_EINVALID, "app %s: %s: %s: kustomize's chart inflation runs helm and "
					      "downloads charts; gitops does not enable it: vendor the chart into the "
					      "repository and render it as a helm app", c->app_name, kfile, *u);
			goto out;
		}
	/* directories (or files) that are kustomizations or resources themselves */
	static const char *const dirs[] = {"resources", "bases", "components", NULL};
	/* plain file lists */
	static const char *const files[] = {"crds", "configurations", "patchesStrategicMerge", "generators",
					    "transformers", "validators", NULL};
	for (int pass = 0; pass < 2 && !rc; pass++) {
		const char *const *list = pass ? files : dirs;
		for (size_t f = 0; list[f] && !rc; f++) {
			size_t i;
			json_t *v;
			json_array_foreach(json_object_get(k, list[f]), i, v) {
				const char *ref = json_string_value(v);
				/* an inline patch or plugin config is YAML text, not a path */
				if (!ref || strchr(ref, '\n'))
					continue;
				char *p = kustomize_ref(c, kfile, list[f], dir, ref);
				if (!p) {
					rc = gitops_error_code();
					break;
				}
				char id[41];
				size_t dl = strlen(c->app_dir);
				bool inside = !strcmp(c->app_dir, ".") ||
					      (!strncmp(p, c->app_dir, dl) && (p[dl] == '/' || p[dl] == '\0'));
				if (!mf_repo_entry_id(id, c->repo, c->commit, p)) {
					if (!inside)
						gitops_buf_printf(c->key, "dep %s %s\n", p, id);
					if (!pass && strcmp(p, dir))
						rc = kustomize_check(c, p, depth + 1);
				}
				if (!rc)
					gitops_error_clear();
				free(p);
				if (rc)
					break;
			}
		}
	}
	/* objects with a path: patches, patchesJson6902, replacements, openapi */
	static const char *const with_path[] = {"patches", "patchesJson6902", "replacements", NULL};
	for (size_t f = 0; with_path[f] && !rc; f++) {
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(k, with_path[f]), i, v) {
			const char *ref = json_string_value(json_object_get(v, "path"));
			char *p = ref ? kustomize_ref(c, kfile, with_path[f], dir, ref) : NULL;
			if (ref && !p) {
				rc = gitops_error_code();
				break;
			}
			free(p);
		}
	}
	const char *oa = json_string_value(json_object_get(json_object_get(k, "openapi"), "path"));
	char *op = !rc && oa ? kustomize_ref(c, kfile, "openapi", dir, oa) : NULL;
	if (!rc && oa && !op)
		rc = gitops_error_code();
	free(op);
	/* generators' files ("key=path" or "path"), envs and env (paths) */
	static const char *const gens[] = {"configMapGenerator", "secretGenerator", NULL};
	for (size_t g = 0; gens[g] && !rc; g++) {
		size_t i, j;
		json_t *gen, *v;
		json_array_foreach(json_object_get(k, gens[g]), i, gen) {
			json_t *refs = json_array();
			json_array_foreach(json_object_get(gen, "files"), j, v)
				if (json_is_string(v)) {
					const char *eq = strchr(json_string_value(v), '=');
					json_array_append_new(refs, json_string(eq ? eq + 1 : json_string_value(v)));
				}
			json_array_extend(refs, json_object_get(gen, "envs"));
			if (json_is_string(json_object_get(gen, "env")))
				json_array_append(refs, json_object_get(gen, "env"));
			json_array_foreach(refs, j, v) {
				char *p = json_is_string(v) ? kustomize_ref(c, kfile, gens[g], dir, json_string_value(v)) : NULL;
				if (json_is_string(v) && !p)
					rc = gitops_error_code();
				free(p);
				if (rc)
					break;
			}
			json_decref(refs);
			if (rc)
				break;
		}
	}
out:
	json_decref(k);
	gitops_buf_free(&b);
	free(kfile);
	return rc;
}

static void sha256_hex(char out[65], const char *s, size_t len)
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(s, len, md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The cache text: a first line {"format", "files": [name...], "rows": [[file index, line,
 * apiVersion, kind, namespace or null, name, hook], ...]}, then each object's compact JSON on a
 * line of its own, in the order of the rows (compact JSON has no raw newline). So a hit can keep
 * objects as text until they are compared (a parsed object takes about eight times its text) and
 * parse them one at a time, and reading the file parses only the first line. Appends to `out`;
 * GITOPS_ERROR when an object cannot be serialized (then nothing is cached). */
static int set_to_cache(gitops_buf *out, const mf_objects *set)
{
	json_t *rows = json_array(), *files = json_array();
	gitops_buf objs = GITOPS_BUF_INIT;
	size_t last = 0;
	int rc = 0;
	for (size_t i = 0; i < mf_objects_count(set) && !rc; i++) {
		const struct mf_object *o = mf_objects_at(set, i);
		size_t f = last;
		if (f >= json_array_size(files) || strcmp(json_string_value(json_array_get(files, f)), o->file)) {
			for (f = 0; f < json_array_size(files); f++)
				if (!strcmp(json_string_value(json_array_get(files, f)), o->file))
					break;
			if (f == json_array_size(files))
				json_array_append_new(files, json_string(o->file));
		}
		last = f;
		/* serialized before namespaces are filled in, as the render gave it */
		char *text = json_dumps(o->obj, JSON_COMPACT | JSON_REAL_PRECISION(17));
		json_t *md = json_object_get(o->obj, "metadata"), *ns = json_object_get(md, "namespace");
		json_t *row = json_pack("[IIOOOOb]", (json_int_t)f, (json_int_t)o->line, json_object_get(o->obj, "apiVersion"),
					json_object_get(o->obj, "kind"), json_is_string(ns) ? ns : json_null(),
					json_object_get(md, "name"), o->hook != MF_HOOK_NONE);
		if (!text || strchr(text, '\n') || json_array_append_new(rows, row))
			rc = GITOPS_ERROR; /* never a cache entry short of an object */
		else
			gitops_buf_printf(&objs, "\n%s", text);
		free(text);
	}
	json_t *head = json_pack("{s:s, s:o, s:o}", "format", CACHE_FORMAT, "files", files, "rows", rows);
	char *h = rc ? NULL : json_dumps(head, JSON_COMPACT);
	json_decref(head);
	if (h) {
		gitops_buf_puts(out, h);
		gitops_buf_put(out, objs.ptr ? objs.ptr : "", objs.len);
	} else {
		rc = GITOPS_ERROR;
	}
	free(h);
	gitops_buf_free(&objs);
	return rc;
}

/* Reads a cache text into the set; with `compact`, its objects stay text (compact objects),
 * except hooks and CRDs. GITOPS_ENOTFOUND for a text of another format or a damaged one (then
 * rendered again). */
static int cache_to_set(mf_objects *set, const char *text, size_t len, const char *app, const char *ns, bool compact)
{
	json_error_t je;
	const char *nl = memchr(text, '\n', len), *end = text + len;
	/* the first line in an arena of its own (no malloc and free per node); so are the objects
	 * parsed here: a plan drops them in the order they were parsed, so the arena's chunks go
	 * back one by one */
	gitops_json_arena *arena = gitops_json_arena_open();
	gitops_json_arena *was = gitops_json_arena_use(arena);
	json_t *doc = json_loadb(text, nl ? (size_t)(nl - text) : len, 0, &je);
	json_t *rows = json_object_get(doc, "rows"), *files = json_object_get(doc, "files");
	const char *fmt = json_string_value(json_object_get(doc, "format"));
	int rc = json_is_array(rows) && json_is_array(files) && fmt && !strcmp(fmt, CACHE_FORMAT) ? 0 : GITOPS_ENOTFOUND;
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		if (rc)
			break;
		/* the object's line */
		const char *t = nl ? nl + 1 : end;
		nl = t < end ? memchr(t, '\n', (size_t)(end - t)) : NULL;
		size_t tl = (size_t)((nl ? nl : end) - t);
		json_t *fi = json_array_get(row, 0), *li = json_array_get(row, 1), *jns = json_array_get(row, 4);
		const char *file = json_is_integer(fi) ? json_string_value(json_array_get(files, (size_t)json_integer_value(fi))) : NULL;
		const char *av = json_string_value(json_array_get(row, 2)), *kind = json_string_value(json_array_get(row, 3));
		const char *name = json_string_value(json_array_get(row, 5));
		if (json_array_size(row) != 7 || t >= end || tl == 0 || !file || !json_is_integer(li) || json_integer_value(li) < 0 ||
		    json_integer_value(li) > INT_MAX || !av || !kind || !name || !(json_is_null(jns) || json_is_string(jns)) ||
		    !json_is_boolean(json_array_get(row, 6))) {
			rc = GITOPS_ENOTFOUND; /* damaged: rendered again */
			break;
		}
		int line = (int)json_integer_value(li);
		if (compact && !json_is_true(json_array_get(row, 6)) && strcmp(kind, "CustomResourceDefinition")) {
			mf_objects_add_compact(set, gitops_strndup(t, tl), tl, av, kind, json_string_value(jns), name, file, line,
					       app, ns);
			continue;
		}
		json_t *obj = json_loadb(t, tl, 0, &je);
		rc = obj ? mf_objects_add(set, obj, file, line, app, ns) : GITOPS_ENOTFOUND;
		json_decref(obj);
	}
	if (!rc && nl)
		rc = GITOPS_ENOTFOUND; /* more lines than rows */
	gitops_json_arena_use(was);
	gitops_json_arena_close(arena);
	json_decref(doc);
	return rc;
}

static const struct mem_entry *mem_get(mf_renderer *r, const char *key)
{
	for (size_t i = 0; i < r->n_mem; i++)
		if (!strcmp(r->mem[i].key, key))
			return &r->mem[i];
	return NULL;
}

/* The memory cache keeps the newest renders, MEM_MAX of them and MEM_MAX_BYTES of text at most
 * (a daemon runs for weeks); the newest is always kept. */
#define MEM_MAX 4096
#define MEM_MAX_BYTES (16u << 20)

static void mem_put(mf_renderer *r, const char *key, const char *text, size_t len)
{
	if (r->no_mem)
		return;
	while (r->n_mem > 0 && (r->n_mem == MEM_MAX || r->mem_bytes + len > MEM_MAX_BYTES)) {
		r->mem_bytes -= r->mem[0].len;
		free(r->mem[0].text);
		memmove(r->mem, r->mem + 1, (r->n_mem - 1) * sizeof(*r->mem));
		r->n_mem--;
	}
	if (r->n_mem == r->cap_mem) {
		r->cap_mem = r->cap_mem ? r->cap_mem * 2 : 32;
		r->mem = gitops_realloc(r->mem, r->cap_mem * sizeof(*r->mem));
	}
	snprintf(r->mem[r->n_mem].key, sizeof(r->mem[r->n_mem].key), "%s", key);
	r->mem[r->n_mem].text = gitops_strndup(text, len);
	r->mem[r->n_mem].len = len;
	r->mem_bytes += len;
	r->n_mem++;
}

static char *disk_path(mf_renderer *r, const char *key)
{
	return r->data_dir ? gitops_sprintf("%s/render-cache/%.2s/%s.json", r->data_dir, key, key) : NULL;
}

/* The cache file's text (0), or GITOPS_ENOTFOUND. */
static int disk_get(gitops_buf *out, mf_renderer *r, const char *key)
{
	char *p = disk_path(r, key);
	if (!p)
		return GITOPS_ENOTFOUND;
	int rc = gitops_read_file(out, p, (size_t)1 << 30);
	free(p);
	if (rc) {
		gitops_error_clear();
		return GITOPS_ENOTFOUND;
	}
	return 0;
}

static void disk_put(mf_renderer *r, const char *key, const char *text, size_t len)
{
	char *p = disk_path(r, key);
	if (!p)
		return;
	char *dir = gitops_sprintf("%s/render-cache", r->data_dir);
	mkdir(r->data_dir, 0700);
	mkdir(dir, 0700);
	char *sub = gitops_sprintf("%s/%.2s", dir, key);
	mkdir(sub, 0700);
	if (gitops_write_file(p, text, len, 0600))
		gitops_error_clear(); /* a cache that cannot be written is only slower */
	free(sub);
	free(dir);
	free(p);
}

static int ensure_checkout(mf_renderer *r, mf_repo *repo, const char *commit)
{
	if (r->co_dir && r->co_repo == repo && !strcmp(r->co_commit, commit))
		return 0;
	drop_checkout(r);
	int rc = ensure_work(r);
	if (rc)
		return rc;
	/* under the data directory, not /tmp: a killed render's checkout is swept at the next start */
	char *dir = gitops_sprintf("%s/checkout-%.12s", r->work, commit);
	if (mkdir(dir, 0700)) {
		rc = gitops_error_set(GITOPS_EIO, "mkdir %s: %s", dir, gitops_strerror(errno));
		free(dir);
		return rc;
	}
	rc = mf_repo_checkout_into(repo, commit, dir);
	if (rc) {
		mf_rmtree(dir);
		free(dir);
		return rc;
	}
	r->co_dir = dir;
	r->co_repo = repo;
	snprintf(r->co_commit, sizeof(r->co_commit), "%s", commit);
	return 0;
}

static int plain_git(mf_objects *set, mf_renderer *r, mf_repo *repo, const char *commit,
		     const struct mf_app *app, const char *ns)
{
	char **paths = NULL;
	size_t n = 0;
	int rc = mf_repo_list(&paths, &n, repo, commit, app->path);
	for (size_t i = 0; i < n && !rc; i++) {
		const char *base = strrchr(paths[i], '/');
		base = base ? base + 1 : paths[i];
		/* hidden files and directories (.github/...) are not manifests */
		if (!manifest_name(base) || strstr(paths[i], "/.") || paths[i][0] == '.')
			continue;
		gitops_buf b = GITOPS_BUF_INIT;
		rc = mf_repo_read_max(&b, repo, commit, paths[i], r->lim.max_file_size);
		if (!rc)
			rc = mf_objects_add_yaml(set, gitops_buf_cstr(&b), b.len, paths[i], app->name, ns, &r->lim);
		gitops_buf_free(&b);
	}
	mf_strv_free(paths, n);
	return rc;
}

static int render_app(mf_objects *set, mf_renderer *r, mf_repo *repo, const char *commit,
		      const struct mf_environment *env, const struct mf_app *app, bool compact)
{
	const char *ns = app_namespace(app, env);
	char tree[41];
	int rc = mf_repo_entry_id(tree, repo, commit, app->path);
	if (rc)
		return gitops_error_set(GITOPS_ENOTFOUND, "app %s (gitops.yaml:%d): path %s does not exist at commit %.12s",
					app->name, app->line, app->path, commit);
	enum mf_renderer_kind kind = app->renderer;
	if (kind == MF_RENDERER_AUTO)
		detect_git(&kind, repo, commit, app->path);

	/* the cache key: everything the render reads */
	gitops_buf key = GITOPS_BUF_INIT;
	gitops_buf_printf(&key, "%s\nrenderer %s\ntree %s\n", CACHE_FORMAT, mf_renderer_name(kind), tree);
	if (kind == MF_RENDERER_PLAIN) {
		gitops_buf_printf(&key, "version gitops %s\n", GITOPS_VERSION);
	} else {
		const char *ver = NULL;
		rc = tool_version(r, kind == MF_RENDERER_HELM ? 0 : 1, &ver);
		if (rc)
			goto out;
		gitops_buf_printf(&key, "version %s\npath %s\n", ver, app->path);
	}
	/* no symlink or submodule in the app, and a kustomization reads nothing outside the repository */
	rc = mf_repo_check_plain_tree(repo, commit, app->path);
	if (rc) {
		gitops_error_prefix("app %s (gitops.yaml:%d)", app->name, app->line);
		goto out;
	}
	if (kind == MF_RENDERER_KUSTOMIZE) {
		struct kctx kc = {&key, repo, commit, app->name, app->path};
		rc = kustomize_check(&kc, app->path, 0);
		if (rc)
			goto out;
	}
	if (kind == MF_RENDERER_HELM) {
		gitops_buf_printf(&key, "release %s\nnamespace %s\n", app->release_name ? app->release_name : app->name,
				  ns ? ns : "");
		if ((rc = caps_get(r, env)))
			goto out;
		gitops_buf_printf(&key, "kube-version %s\napi-versions %s\n", r->caps_version ? r->caps_version : "",
				  r->caps_apis ? r->caps_apis : "");
		for (size_t i = 0; i < app->n_values; i++) {
			char id[41];
			if (!mf_repo_entry_id(id, repo, commit, app->values[i]) &&
			    mf_repo_check_plain_tree(repo, commit, app->values[i])) {
				gitops_error_prefix("app %s (gitops.yaml:%d): values file", app->name, app->line);
				goto out;
			}
			if (mf_repo_entry_id(id, repo, commit, app->values[i])) {
				rc = gitops_error_set(GITOPS_ENOTFOUND, "app %s (gitops.yaml:%d): values file %s does not exist at commit %.12s",
						      app->name, app->line, app->values[i], commit);
				goto out;
			}
			gitops_buf_printf(&key, "values %s %s\n", app->values[i], id);
		}
	}
	char hex[65];
	sha256_hex(hex, key.ptr, key.len);

	const struct mem_entry *me = mem_get(r, hex);
	if (me) {
		r->hits++;
		rc = cache_to_set(set, me->text, me->len, app->name, ns, compact);
		goto out;
	}
	gitops_buf text = GITOPS_BUF_INIT;
	if (disk_get(&text, r, hex) == 0) {
		mf_objects *got;
		mf_objects_new(&got);
		if (cache_to_set(got, text.ptr, text.len, app->name, ns, compact) == 0) {
			/* a valid entry (one of another format or a damaged one is rendered again) */
			r->hits++;
			mem_put(r, hex, text.ptr, text.len);
			mf_objects_take(set, got);
			mf_objects_free(got);
			gitops_buf_free(&text);
			goto out;
		}
		mf_objects_free(got);
		gitops_error_clear();
	}
	gitops_buf_free(&text);

	mf_objects *fresh;
	mf_objects_new(&fresh);
	r->executed++;
	if (kind == MF_RENDERER_PLAIN) {
		rc = plain_git(fresh, r, repo, commit, app, ns);
	} else {
		rc = ensure_checkout(r, repo, commit);
		if (!rc) {
			struct mf_app a = *app;
			a.renderer = kind;
			rc = mf_render_dir(fresh, r, r->co_dir, &a, env);
		}
	}
	if (!rc) {
		gitops_buf dump = GITOPS_BUF_INIT;
		if (set_to_cache(&dump, fresh) == 0) {
			mem_put(r, hex, dump.ptr, dump.len);
			disk_put(r, hex, dump.ptr, dump.len);
		}
		gitops_buf_free(&dump);
		mf_objects_take(set, fresh);
	}
	mf_objects_free(fresh);
out:
	gitops_buf_free(&key);
	return rc;
}

int mf_render_app(mf_objects *set, mf_renderer *r, mf_repo *repo, const char *commit,
		  const struct mf_environment *env, const struct mf_app *app)
{
	return render_app(set, r, repo, commit, env, app, false);
}

/* The one render loop: every command and the daemon render an environment through it. */
int mf_render_env_with(mf_objects **out, mf_renderer *r, mf_repo *repo, const char *commit,
		       const struct mf_environment *env, const struct mf_render_env_options *opt)
{
	*out = NULL;
	static const struct mf_render_env_options none;
	if (!opt)
		opt = &none;
	const char *only_app = opt->only_app;
	if (only_app && !mf_environment_app(env, only_app))
		return gitops_error_set(GITOPS_ENOTFOUND, "environment %s has no app \"%s\"", env->name, only_app);
	mf_objects *set;
	mf_objects_new(&set);
	int rc = 0;
	caps_forget(r); /* asked again: the cluster may have been upgraded since the last render */
	for (size_t i = 0; i < env->n_apps && !rc; i++) {
		if (only_app && !opt->all_apps && strcmp(env->apps[i].name, only_app))
			continue;
		/* each app into its own set: a failed app the caller goes on without leaves nothing */
		mf_objects *app;
		mf_objects_new(&app);
		rc = render_app(app, r, repo, commit, env, &env->apps[i], opt->compact);
		if (rc && opt->failed && !(rc = opt->failed(opt->failed_data, &env->apps[i], rc)))
			gitops_error_clear();
		else if (!rc)
			mf_objects_take(set, app);
		mf_objects_free(app);
	}
	if (!rc)
		rc = opt->scope ? mf_objects_resolve(set, opt->scope, opt->scope_data)
				: mf_objects_resolve(set, r->scope, r->scope_data);
	if (rc) {
		mf_objects_free(set);
		return rc;
	}
	*out = set;
	return 0;
}

int mf_render_env(mf_objects **out, mf_renderer *r, mf_repo *repo, const char *commit,
		  const struct mf_environment *env, const char *only_app)
{
	struct mf_render_env_options o = {.only_app = only_app};
	return mf_render_env_with(out, r, repo, commit, env, &o);
}
