/* manifests/git.c: the git source. A bare mirror per repository URL under the data directory,
 * fetched with libgit2 (path, file://, https with token/basic auth, ssh with a key and
 * known_hosts); refs resolved to commits; trees and blobs read without a checkout. */
#include "manifests/internal.h"
#include "common/git.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <ftw.h>
#include <git2.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mf_repo {
	git_repository *repo;
	char *url;
	char *path;
};

static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static void git_init_once(void) { git_libgit2_init(); }

char *mf_data_dir(void)
{
	const char *d = getenv("GITOPS_DATA_DIR");
	if (d && *d)
		return gitops_strdup(d);
	const char *x = getenv("XDG_CACHE_HOME");
	if (x && *x)
		return gitops_sprintf("%s/gitops", x);
	const char *h = getenv("HOME");
	return gitops_sprintf("%s/.cache/gitops", h && *h ? h : "/tmp");
}

static int mkdir_p(const char *dir, mode_t mode)
{
	char *p = gitops_strdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) && errno != EEXIST) {
			int rc = gitops_error_set(GITOPS_EIO, "mkdir %s: %s", p, gitops_strerror(errno));
			free(p);
			return rc;
		}
		*s = '/';
	}
	int rc = 0;
	if (mkdir(p, mode) && errno != EEXIST)
		rc = gitops_error_set(GITOPS_EIO, "mkdir %s: %s", p, gitops_strerror(errno));
	free(p);
	return rc;
}

static void sha256_hex(char out[65], const char *s)
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static bool is_url(const char *s)
{
	if (strstr(s, "://"))
		return true;
	/* scp-like ssh: user@host:path */
	const char *at = strchr(s, '@'), *colon = strchr(s, ':'), *slash = strchr(s, '/');
	return at && colon && at < colon && (!slash || colon < slash);
}

int mf_repo_open(mf_repo **out, const char *url, const char *data_dir)
{
	*out = NULL;
	pthread_once(&git_once, git_init_once);
	char *norm;
	if (is_url(url)) {
		norm = gitops_strdup(url);
	} else {
		char *abs = realpath(url, NULL);
		if (!abs)
			return gitops_error_set(GITOPS_ENOTFOUND, "repository %s: %s", url, gitops_strerror(errno));
		norm = abs;
	}
	char *dd = data_dir ? gitops_strdup(data_dir) : mf_data_dir();
	char hex[65];
	sha256_hex(hex, norm);
	hex[20] = '\0';
	char *mirrors = gitops_sprintf("%s/mirrors", dd);
	char *path = gitops_sprintf("%s/%s.git", mirrors, hex);
	git_repository *repo = NULL;
	int rc = mkdir_p(mirrors, 0700);
	if (rc)
		goto out;
	if (git_repository_open_bare(&repo, path) < 0) {
		/* create in a temporary directory, then rename: a half-made mirror is never seen */
		char *tmp = gitops_sprintf("%s.tmp.%d", path, (int)getpid());
		mf_rmtree(tmp);
		/* no configured remote: fetches use an anonymous remote with explicit refspecs
		 * (libgit2 1.5 leaks in git_remote_lookup's config regex) */
		int g = git_repository_init(&repo, tmp, 1);
		git_repository_free(repo);
		repo = NULL;
		if (g < 0) {
			rc = gitops_git_fail(g, GITOPS_EIO, path);
			mf_rmtree(tmp);
			free(tmp);
			goto out;
		}
		if (rename(tmp, path) && errno != ENOTEMPTY && errno != EEXIST) {
			rc = gitops_error_set(GITOPS_EIO, "rename %s: %s", path, gitops_strerror(errno));
			mf_rmtree(tmp);
			free(tmp);
			goto out;
		}
		mf_rmtree(tmp); /* lost a race with another process: use theirs */
		free(tmp);
		int g2 = git_repository_open_bare(&repo, path);
		if (g2 < 0) {
			rc = gitops_git_fail(g2, GITOPS_EIO, path);
			goto out;
		}
	}
	mf_repo *r = gitops_calloc(1, sizeof(*r));
	r->repo = repo;
	r->url = norm;
	r->path = path;
	norm = path = NULL;
	*out = r;
out:
	free(norm);
	free(path);
	free(mirrors);
	free(dd);
	return rc;
}

void mf_repo_free(mf_repo *r)
{
	if (!r)
		return;
	git_repository_free(r->repo);
	free(r->url);
	free(r->path);
	free(r);
}

const char *mf_repo_path(const mf_repo *r) { return r->path; }

bool mf_repo_has_refs(mf_repo *r)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	bool any = false;
	if (git_reference_iterator_new(&it, r->repo) == 0) {
		any = git_reference_next(&ref, it) == 0;
		git_reference_free(ref);
	}
	git_reference_iterator_free(it);
	git_error_clear();
	return any;
}

int mf_repo_discover(char **out_path, const char *start)
{
	*out_path = NULL;
	pthread_once(&git_once, git_init_once);
	git_buf b = {0};
	int g = git_repository_discover(&b, start, 0, NULL);
	if (g < 0) {
		git_buf_dispose(&b);
		return gitops_error_set(GITOPS_ENOTFOUND, "%s is not inside a git repository (use --repo)", start);
	}
	*out_path = gitops_strdup(b.ptr);
	git_buf_dispose(&b);
	return 0;
}

/* ---- fetch: credentials and host key checks ----------------------------------------------- */

struct fetch_ctx {
	const char *url;
	int attempts;
	bool auth_failed_locally; /* no credentials could be offered */
	char *why;
};

/* Reads a secret from env NAME, else from the file named by NAME_FILE; the caller frees. */
static char *secret(const char *name)
{
	const char *v = getenv(name);
	if (v && *v)
		return gitops_strdup(v);
	char *fname = gitops_sprintf("%s_FILE", name);
	const char *f = getenv(fname);
	free(fname);
	if (!f || !*f)
		return NULL;
	gitops_buf b = GITOPS_BUF_INIT;
	if (gitops_read_file(&b, f, 65536)) {
		gitops_buf_free(&b);
		return NULL;
	}
	while (b.len && (b.ptr[b.len - 1] == '\n' || b.ptr[b.len - 1] == '\r'))
		b.ptr[--b.len] = '\0';
	return gitops_buf_detach(&b);
}

/* Credentials taken out of origin's URL by the CLI (mf_git_set_url_credentials). */
static pthread_mutex_t url_cred_lock = PTHREAD_MUTEX_INITIALIZER;
static char *url_cred_user, *url_cred_pass;

void mf_git_set_url_credentials(const char *user, const char *password)
{
	pthread_mutex_lock(&url_cred_lock);
	free(url_cred_user);
	if (url_cred_pass)
		OPENSSL_cleanse(url_cred_pass, strlen(url_cred_pass));
	free(url_cred_pass);
	url_cred_user = user ? gitops_strdup(user) : NULL;
	url_cred_pass = password ? gitops_strdup(password) : NULL;
	pthread_mutex_unlock(&url_cred_lock);
}

int mf_git_userpass_credential(git_credential **out, const char *user_from_url)
{
	char *token = secret("GITOPS_GIT_TOKEN");
	char *user = secret("GITOPS_GIT_USERNAME");
	char *pass = token ? token : secret("GITOPS_GIT_PASSWORD");
	if (!pass) {
		pthread_mutex_lock(&url_cred_lock);
		if (url_cred_pass) {
			pass = gitops_strdup(url_cred_pass);
			free(user);
			user = url_cred_user ? gitops_strdup(url_cred_user) : NULL;
		}
		pthread_mutex_unlock(&url_cred_lock);
	}
	int rc = GITOPS_ENOTFOUND;
	if (pass)
		rc = git_credential_userpass_plaintext_new(out, user ? user : (user_from_url ? user_from_url : "x-access-token"),
							   pass);
	free(user);
	if (pass)
		OPENSSL_cleanse(pass, strlen(pass));
	free(pass);
	return rc;
}

static int cred_cb(git_credential **out, const char *url, const char *user_from_url,
		   unsigned int allowed, void *payload)
{
	struct fetch_ctx *c = payload;
	if (++c->attempts > 1)
		return GIT_EAUTH; /* the credentials we had were refused */
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		int rc = mf_git_userpass_credential(out, user_from_url);
		if (rc == GITOPS_ENOTFOUND) {
			c->why = gitops_strdup("the server wants credentials: set GITOPS_GIT_TOKEN(_FILE) or GITOPS_GIT_USERNAME and GITOPS_GIT_PASSWORD(_FILE)");
			rc = GIT_EAUTH;
		}
		return rc;
	}
	if (allowed & GIT_CREDENTIAL_SSH_KEY) {
		const char *key = getenv("GITOPS_SSH_KEY");
		char *def = NULL;
		if (!key || !*key) {
			const char *h = getenv("HOME");
			def = gitops_sprintf("%s/.ssh/id_ed25519", h ? h : "");
			key = def;
		}
		int rc = GIT_EAUTH;
		if (access(key, R_OK) == 0) {
			char *pp = secret("GITOPS_SSH_KEY_PASSPHRASE");
			rc = git_credential_ssh_key_new(out, user_from_url ? user_from_url : "git", NULL, key, pp);
			free(pp);
		} else {
			c->why = gitops_sprintf("ssh key %s is not readable (set GITOPS_SSH_KEY)", key);
		}
		free(def);
		return rc;
	}
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user_from_url ? user_from_url : "git");
	return GIT_EAUTH;
}

static unsigned char *b64dec(const char *s, size_t len, size_t *out_len)
{
	unsigned char *buf;
	return gitops_base64_decode(&buf, out_len, s, len, 0) ? NULL : buf;
}

/* True when `pattern` (one comma-separated entry of a known_hosts line) names `host`. */
static bool host_matches(const char *pattern, size_t plen, const char *host)
{
	if (plen > 3 && !strncmp(pattern, "|1|", 3)) {
		const char *salt = pattern + 3, *bar = memchr(salt, '|', plen - 3);
		if (!bar)
			return false;
		size_t sl, hl;
		unsigned char *sb = b64dec(salt, (size_t)(bar - salt), &sl);
		unsigned char *hb = b64dec(bar + 1, plen - (size_t)(bar + 1 - pattern), &hl);
		bool ok = false;
		if (sb && hb && hl == 20) {
			unsigned char md[20];
			unsigned int mdl = 0;
			HMAC(EVP_sha1(), sb, (int)sl, (const unsigned char *)host, strlen(host), md, &mdl);
			ok = mdl == 20 && !memcmp(md, hb, 20);
		}
		free(sb);
		free(hb);
		return ok;
	}
	return strlen(host) == plen && !strncmp(pattern, host, plen);
}

/* Checks the raw host key against a known_hosts file: 0 when listed. */
static int known_hosts_check(const char *file, const char *host, const char *key, size_t key_len)
{
	gitops_buf b = GITOPS_BUF_INIT;
	if (gitops_read_file(&b, file, 4 << 20)) {
		gitops_buf_free(&b);
		return -1;
	}
	int rc = -1;
	char *save = NULL;
	for (char *line = strtok_r(b.ptr, "\n", &save); line && rc; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '#' || *line == '@' || !*line)
			continue;
		char *hosts = line, *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		char *type = sp + 1, *sp2 = strchr(type, ' ');
		if (!sp2)
			continue;
		char *b64 = sp2 + 1, *end = b64 + strcspn(b64, " \r");
		bool hm = false;
		for (char *h = hosts; *h && !hm;) {
			size_t n = strcspn(h, ",");
			hm = host_matches(h, n, host);
			h += n + (h[n] == ',');
		}
		if (!hm)
			continue;
		size_t kl;
		unsigned char *kb = b64dec(b64, (size_t)(end - b64), &kl);
		if (kb && kl == key_len && !memcmp(kb, key, kl))
			rc = 0;
		free(kb);
	}
	gitops_buf_free(&b);
	return rc;
}

static int cert_cb(git_cert *cert, int valid, const char *host, void *payload)
{
	struct fetch_ctx *c = payload;
	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
		return valid ? 0 : GIT_ECERTIFICATE; /* TLS: libgit2's verification decides */
	git_cert_hostkey *hk = (git_cert_hostkey *)cert;
	const char *kh = getenv("GITOPS_SSH_KNOWN_HOSTS");
	char *def = NULL;
	if (!kh || !*kh) {
		const char *h = getenv("HOME");
		def = gitops_sprintf("%s/.ssh/known_hosts", h ? h : "");
		kh = def;
	}
	/* OpenSSH writes hosts on another port than 22 as [host]:port */
	char *name = gitops_strdup(host);
	const char *hp = strstr(c->url, "://");
	if (hp) {
		hp += 3;
		const char *at = strchr(hp, '@'), *slash = strchr(hp, '/');
		if (at && (!slash || at < slash))
			hp = at + 1;
		const char *colon = hp[0] == '[' ? strstr(hp, "]:") : strchr(hp, ':');
		if (colon && (!slash || colon < slash)) {
			const char *port = colon + (hp[0] == '[' ? 2 : 1);
			int pl = (int)strspn(port, "0123456789");
			if (pl && strncmp(port, "22/", 3)) {
				free(name);
				name = gitops_sprintf("[%s]:%.*s", host, pl, port);
			}
		}
	}
	int rc = GIT_ECERTIFICATE;
	if ((hk->type & GIT_CERT_SSH_RAW) && known_hosts_check(kh, name, hk->hostkey, hk->hostkey_len) == 0)
		rc = 0;
	else
		c->why = gitops_sprintf("ssh host key of %s is not in %s", name, kh);
	free(name);
	free(def);
	return rc;
}

static int fetch_locked(mf_repo *r);

/* Fetches of one mirror run one at a time (several gitops processes may share a data
 * directory): concurrent fetches race on libgit2's reference locks and fail. The lock is a
 * flock, so a killed process releases it. Returns the fd to close, or -1. */
static int lock_mirror(mf_repo *r)
{
	char *path = gitops_sprintf("%s/gitops-fetch.lock", mf_repo_path(r));
	int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	free(path);
	if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int mf_repo_fetch(mf_repo *r)
{
	int lock = lock_mirror(r);
	long long t0 = gitops_now_ms();
	int rc = fetch_locked(r);
	if (lock >= 0)
		close(lock);
	gitops_metric_observe("gitops_git_fetch_duration_seconds", (double)(gitops_now_ms() - t0) / 1000.0, NULL);
	gitops_metric_add("gitops_git_fetch_total", 1, "result", rc ? "failed" : "succeeded", NULL);
	return rc;
}

static int fetch_locked(mf_repo *r)
{
	git_remote *remote = NULL;
	/* anonymous, and no url.insteadOf lookup: libgit2 1.5 leaks in its config regex search */
	git_remote_create_options copts;
	git_remote_create_options_init(&copts, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	copts.repository = r->repo;
	copts.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	int g = git_remote_create_with_opts(&remote, r->url, &copts);
	if (g < 0)
		return gitops_git_fail(g, GITOPS_EIO, r->url);
	/* origin's remote-tracking branches: a CI clone often has no local branch */
	char *specs[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
			 "+refs/remotes/origin/*:refs/remotes/origin/*"};
	git_strarray refspecs = {specs, 3};
	struct fetch_ctx ctx = {r->url, 0, false, NULL};
	git_fetch_options opts;
	git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
	opts.callbacks.credentials = cred_cb;
	opts.callbacks.certificate_check = cert_cb;
	opts.callbacks.payload = &ctx;
	opts.prune = GIT_FETCH_PRUNE;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	g = git_remote_fetch(remote, &refspecs, &opts, "gitops fetch");
	int rc = 0;
	if (g < 0) {
		/* our callbacks know more than libgit2's last error, which a callback failure leaves stale */
		char *reason = NULL;
		int code = gitops_git_fetch_error(&reason, g, ctx.why, ctx.attempts);
		rc = gitops_error_set(code, "fetch %s: %s%s%s (the last fetched mirror is kept)", r->url, reason,
				      ctx.why ? ": " : "", ctx.why ? ctx.why : "");
		free(reason);
	} else {
		/* point HEAD at the remote's default branch, so "HEAD" means what it means upstream */
		git_buf def = {0};
		git_reference *ref = NULL;
		if (git_remote_default_branch(&def, remote) == 0 && def.ptr)
			git_repository_set_head(r->repo, def.ptr);
		else if (git_reference_lookup(&ref, r->repo, "refs/heads/main") == 0)
			git_repository_set_head(r->repo, "refs/heads/main");
		else if (git_reference_lookup(&ref, r->repo, "refs/heads/master") == 0)
			git_repository_set_head(r->repo, "refs/heads/master");
		git_reference_free(ref);
		git_buf_dispose(&def);
		git_error_clear();
	}
	free(ctx.why);
	git_remote_free(remote);
	return rc;
}

/* ---- reading -------------------------------------------------------------------------------- */

int mf_repo_resolve(char out[41], mf_repo *r, const char *rev)
{
	if (!rev || !*rev || rev[0] == '-')
		return gitops_error_set(GITOPS_EINVALID, "invalid revision \"%s\"", rev ? rev : "");
	git_object *obj = NULL, *commit = NULL;
	int g = git_revparse_single(&obj, r->repo, rev);
	if (g < 0) {
		if (g == GIT_EAMBIGUOUS)
			return gitops_error_set(GITOPS_EINVALID, "revision %s is ambiguous: give more of the SHA", rev);
		if (g == GIT_ENOTFOUND || g == GIT_EINVALIDSPEC || g == GIT_EUNBORNBRANCH)
			return gitops_error_set(GITOPS_ENOTFOUND, "unknown revision %s: no such branch, tag or commit in %s",
						rev, r->url);
		return gitops_git_fail(g, 0, rev);
	}
	g = git_object_peel(&commit, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (g < 0)
		return gitops_error_set(GITOPS_EINVALID, "revision %s does not name a commit", rev);
	git_oid_tostr(out, 41, git_object_id(commit));
	git_object_free(commit);
	return 0;
}

int mf_repo_resolve_branch(char out[41], mf_repo *r, const char *branch)
{
	if (!branch || !*branch || branch[0] == '-' || !strcmp(branch, "HEAD"))
		return gitops_error_set(GITOPS_EINVALID, "invalid branch name \"%s\" (a branch is named; HEAD is never "
					"used)", branch ? branch : "");
	const char *forms[] = {"refs/heads/%s", "refs/remotes/origin/%s"};
	for (size_t i = 0; i < 2; i++) {
		char *ref = gitops_sprintf(forms[i], branch);
		git_oid oid;
		git_object *c = NULL;
		int g = git_reference_is_valid_name(ref) ? git_reference_name_to_id(&oid, r->repo, ref) : GIT_EINVALIDSPEC;
		free(ref);
		if (g == 0 && git_object_lookup(&c, r->repo, &oid, GIT_OBJECT_COMMIT) == 0) {
			git_oid_tostr(out, 41, git_object_id(c));
			git_object_free(c);
			return 0;
		}
		git_object_free(c);
		git_error_clear();
		if (g == GIT_EINVALIDSPEC)
			return gitops_error_set(GITOPS_EINVALID, "invalid branch name \"%s\"", branch);
	}
	return gitops_error_set(GITOPS_ENOTFOUND, "no branch %s in %s (refs/heads/%s or refs/remotes/origin/%s; tags and "
				"HEAD are never used for a branch)", branch, r->url, branch, branch);
}

int mf_repo_commit_signature(gitops_buf *sig, gitops_buf *payload, mf_repo *r, const char *commit)
{
	git_oid oid;
	if (git_oid_fromstr(&oid, commit) < 0)
		return gitops_error_set(GITOPS_EINVALID, "\"%s\" is not a full commit id", commit);
	git_buf s = {0}, p = {0};
	int g = git_commit_extract_signature(&s, &p, r->repo, &oid, NULL);
	int rc = 0;
	if (g == GIT_ENOTFOUND) {
		rc = gitops_error_set(GITOPS_ENOTFOUND, "commit %.12s is not signed", commit);
	} else if (g < 0) {
		rc = gitops_git_fail(g, 0, commit);
	} else {
		gitops_buf_put(sig, s.ptr, s.size);
		gitops_buf_put(payload, p.ptr, p.size);
	}
	git_buf_dispose(&s);
	git_buf_dispose(&p);
	git_error_clear();
	return rc;
}

/* ---- gitops.yaml over time: the main branch's first-parent history ----------------------- */

struct cfg_entry {
	long long ms;        /* commit time */
	git_oid blob;        /* gitops.yaml; zero when absent */
	struct mf_config *cfg;
	bool parsed;
};

struct mf_config_log {
	mf_repo *repo;       /* borrowed */
	git_oid next;        /* the next commit to walk (first parent) */
	bool more;
	struct cfg_entry *v; /* newest first */
	size_t n;
};

int mf_config_log_open(mf_config_log **out, mf_repo *repo, const char *main_sha)
{
	*out = NULL;
	mf_config_log *l = gitops_calloc(1, sizeof(*l));
	l->repo = repo;
	if (git_oid_fromstr(&l->next, main_sha) < 0) {
		free(l);
		return gitops_error_set(GITOPS_EINVALID, "\"%s\" is not a full commit id", main_sha);
	}
	l->more = true;
	*out = l;
	return 0;
}

void mf_config_log_free(mf_config_log *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (!i || l->v[i].cfg != l->v[i - 1].cfg)
			mf_config_free(l->v[i].cfg);
	free(l->v);
	free(l);
}

/* Walks one more first-parent commit. 0, or 1 when there is none. */
static int log_step(mf_config_log *l)
{
	if (!l->more)
		return 1;
	git_commit *c = NULL;
	git_tree *t = NULL;
	git_tree_entry *e = NULL;
	if (git_commit_lookup(&c, l->repo->repo, &l->next) < 0 || git_commit_tree(&t, c) < 0) {
		git_commit_free(c);
		git_error_clear();
		l->more = false; /* a shallow mirror: the history ends here */
		return 1;
	}
	l->v = gitops_realloc(l->v, (l->n + 1) * sizeof(*l->v));
	struct cfg_entry *x = &l->v[l->n++];
	memset(x, 0, sizeof(*x));
	x->ms = (long long)git_commit_time(c) * 1000;
	if (git_tree_entry_bypath(&e, t, "gitops.yaml") == 0)
		git_oid_cpy(&x->blob, git_tree_entry_id(e));
	git_error_clear();
	if (git_commit_parentcount(c) > 0)
		git_oid_cpy(&l->next, git_commit_parent_id(c, 0));
	else
		l->more = false;
	git_tree_entry_free(e);
	git_tree_free(t);
	git_commit_free(c);
	return 0;
}

static struct mf_config *entry_config(mf_config_log *l, size_t i)
{
	struct cfg_entry *x = &l->v[i];
	if (x->parsed)
		return x->cfg;
	x->parsed = true;
	if (i && git_oid_equal(&l->v[i - 1].blob, &x->blob) && l->v[i - 1].parsed) {
		x->cfg = l->v[i - 1].cfg; /* shared: freed once (see mf_config_log_free) */
		return x->cfg;
	}
	if (git_oid_is_zero(&x->blob))
		return NULL;
	git_blob *b = NULL;
	if (git_blob_lookup(&b, l->repo->repo, &x->blob) == 0 && (size_t)git_blob_rawsize(b) <= MF_REPO_MAX_BLOB &&
	    mf_config_parse(&x->cfg, git_blob_rawcontent(b), (size_t)git_blob_rawsize(b), "gitops.yaml"))
		x->cfg = NULL; /* an old config this version cannot read: not in effect */
	git_blob_free(b);
	git_error_clear();
	gitops_error_clear();
	return x->cfg;
}

int mf_config_log_at(const struct mf_config **out, size_t max, mf_config_log *l, long long ms, long long skew_ms)
{
	/* walk until a commit at or before ms - skew (or the root) */
	while (!l->n || l->v[l->n - 1].ms > ms - skew_ms)
		if (log_step(l))
			break;
	size_t n = 0;
	/* the commits in effect from ms - skew to ms + skew: the newest not after ms - skew, and
	 * every one committed in the window (a change pushed a little before or after its commit
	 * time, or clocks that differ) */
	size_t at = l->n;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].ms <= ms - skew_ms) {
			at = i;
			break;
		}
	if (at == l->n && l->n) /* no commit that old: from the oldest one */
		at = l->n - 1;
	size_t first = at;
	while (first > 0 && l->v[first - 1].ms <= ms + skew_ms)
		first--;
	/* newest first: the config of the main branch's tip wins a full list */
	for (size_t i = first; i <= at && i < l->n && n < max; i++) {
		const struct mf_config *c = entry_config(l, i);
		bool dup = false;
		for (size_t k = 0; k < n && !dup; k++)
			dup = out[k] == c;
		if (c && !dup)
			out[n++] = c;
	}
	return (int)n;
}

static int commit_tree(git_tree **out, mf_repo *r, const char *commit)
{
	git_oid oid;
	git_commit *c = NULL;
	if (git_oid_fromstr(&oid, commit) < 0)
		return gitops_error_set(GITOPS_EINVALID, "\"%s\" is not a full commit id", commit);
	int g = git_commit_lookup(&c, r->repo, &oid);
	if (g < 0)
		return gitops_git_fail(g, 0, commit);
	g = git_commit_tree(out, c);
	git_commit_free(c);
	return g < 0 ? gitops_git_fail(g, 0, commit) : 0;
}

static bool is_root(const char *path) { return !path || !*path || !strcmp(path, ".") || !strcmp(path, "/"); }

int mf_repo_read(gitops_buf *out, mf_repo *r, const char *commit, const char *path)
{
	return mf_repo_read_max(out, r, commit, path, MF_REPO_MAX_BLOB);
}

int mf_repo_read_max(gitops_buf *out, mf_repo *r, const char *commit, const char *path, size_t max)
{
	git_tree *tree = NULL;
	git_tree_entry *e = NULL;
	git_blob *blob = NULL;
	int rc = commit_tree(&tree, r, commit);
	if (rc)
		return rc;
	int g = git_tree_entry_bypath(&e, tree, path);
	if (g < 0) {
		rc = gitops_error_set(GITOPS_ENOTFOUND, "%s: not found at commit %.12s", path, commit);
		goto out;
	}
	if (git_tree_entry_type(e) != GIT_OBJECT_BLOB) {
		rc = gitops_error_set(GITOPS_EINVALID, "%s: not a file at commit %.12s", path, commit);
		goto out;
	}
	g = git_blob_lookup(&blob, r->repo, git_tree_entry_id(e));
	if (g < 0) {
		rc = gitops_git_fail(g, 0, path);
		goto out;
	}
	if ((size_t)git_blob_rawsize(blob) > max) {
		rc = gitops_error_set(GITOPS_EINVALID, "%s:1: file is %lld bytes, over the %zu-byte limit", path,
				      (long long)git_blob_rawsize(blob), max);
		goto out;
	}
	gitops_buf_put(out, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
out:
	git_blob_free(blob);
	git_tree_entry_free(e);
	git_tree_free(tree);
	return rc;
}

int mf_repo_entry_id(char out[41], mf_repo *r, const char *commit, const char *path)
{
	git_tree *tree = NULL;
	int rc = commit_tree(&tree, r, commit);
	if (rc)
		return rc;
	if (is_root(path)) {
		git_oid_tostr(out, 41, git_tree_id(tree));
	} else {
		git_tree_entry *e = NULL;
		if (git_tree_entry_bypath(&e, tree, path) < 0)
			rc = gitops_error_set(GITOPS_ENOTFOUND, "%s: not found at commit %.12s", path, commit);
		else
			git_oid_tostr(out, 41, git_tree_entry_id(e));
		git_tree_entry_free(e);
	}
	git_tree_free(tree);
	return rc;
}

struct list_ctx {
	char **v;
	size_t n, cap;
	const char *prefix;
};

static int list_cb(const char *root, const git_tree_entry *e, void *payload)
{
	struct list_ctx *c = payload;
	if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 32;
		c->v = gitops_realloc(c->v, c->cap * sizeof(char *));
	}
	c->v[c->n++] = gitops_sprintf("%s%s%s%s", c->prefix, *c->prefix ? "/" : "", root, git_tree_entry_name(e));
	return 0;
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mf_repo_list(char ***out_paths, size_t *out_n, mf_repo *r, const char *commit, const char *path)
{
	*out_paths = NULL;
	*out_n = 0;
	git_tree *tree = NULL, *sub = NULL;
	int rc = commit_tree(&tree, r, commit);
	if (rc)
		return rc;
	if (is_root(path)) {
		sub = tree;
		tree = NULL;
	} else {
		git_tree_entry *e = NULL;
		if (git_tree_entry_bypath(&e, tree, path) < 0 || git_tree_entry_type(e) != GIT_OBJECT_TREE) {
			rc = gitops_error_set(GITOPS_ENOTFOUND, "%s: no such directory at commit %.12s", path, commit);
		} else if (git_tree_lookup(&sub, r->repo, git_tree_entry_id(e)) < 0) {
			rc = gitops_git_fail(-1, 0, path);
		}
		git_tree_entry_free(e);
	}
	if (!rc) {
		struct list_ctx c = {NULL, 0, 0, is_root(path) ? "" : path};
		git_tree_walk(sub, GIT_TREEWALK_PRE, list_cb, &c);
		if (c.n)
			qsort(c.v, c.n, sizeof(char *), cmp_path);
		*out_paths = c.v;
		*out_n = c.n;
	}
	git_tree_free(sub);
	git_tree_free(tree);
	return rc;
}

/* Writes every blob of `tree` under dir; symlinks and submodules are skipped on purpose (a link
 * could point a renderer at host files). */
static int write_tree(mf_repo *r, git_tree *tree, const char *dir)
{
	size_t n = git_tree_entrycount(tree);
	for (size_t i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(e);
		char *p = gitops_sprintf("%s/%s", dir, name);
		int rc = 0;
		git_filemode_t mode = git_tree_entry_filemode(e);
		if (mode == GIT_FILEMODE_TREE) {
			git_tree *sub = NULL;
			if (mkdir(p, 0700))
				rc = gitops_error_set(GITOPS_EIO, "mkdir %s: %s", p, gitops_strerror(errno));
			else if (git_tree_lookup(&sub, r->repo, git_tree_entry_id(e)) < 0)
				rc = gitops_git_fail(-1, GITOPS_EIO, name);
			else
				rc = write_tree(r, sub, p);
			git_tree_free(sub);
		} else if (mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE) {
			git_blob *b = NULL;
			if (git_blob_lookup(&b, r->repo, git_tree_entry_id(e)) < 0) {
				rc = gitops_git_fail(-1, GITOPS_EIO, name);
			} else {
				int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0700 : 0600);
				const char *data = git_blob_rawcontent(b);
				size_t len = (size_t)git_blob_rawsize(b), off = 0;
				if (fd < 0) {
					rc = gitops_error_set(GITOPS_EIO, "create %s: %s", p, gitops_strerror(errno));
				} else {
					while (off < len) {
						ssize_t w = write(fd, data + off, len - off);
						if (w < 0 && errno == EINTR)
							continue;
						if (w <= 0) {
							rc = gitops_error_set(GITOPS_EIO, "write %s: %s", p, gitops_strerror(errno));
							break;
						}
						off += (size_t)w;
					}
					close(fd);
				}
			}
			git_blob_free(b);
		}
		free(p);
		if (rc)
			return rc;
	}
	return 0;
}

int mf_repo_checkout_into(mf_repo *r, const char *commit, const char *dir)
{
	git_tree *tree = NULL;
	int rc = commit_tree(&tree, r, commit);
	if (rc)
		return rc;
	rc = write_tree(r, tree, dir);
	git_tree_free(tree);
	return rc;
}

int mf_repo_checkout(char **out_dir, mf_repo *r, const char *commit)
{
	*out_dir = NULL;
	const char *tmp = getenv("TMPDIR");
	char *dir = gitops_sprintf("%s/gitops-checkout-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		int rc = gitops_error_set(GITOPS_EIO, "mkdtemp %s: %s", dir, gitops_strerror(errno));
		free(dir);
		return rc;
	}
	int rc = mf_repo_checkout_into(r, commit, dir);
	if (rc) {
		mf_rmtree(dir);
		free(dir);
		return rc;
	}
	*out_dir = dir;
	return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int mf_rmtree(const char *dir)
{
	if (!dir || !*dir)
		return 0;
	struct stat st;
	if (lstat(dir, &st))
		return 0;
	if (nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return gitops_error_set(GITOPS_EIO, "remove %s: %s", dir, gitops_strerror(errno));
	return 0;
}

int mf_repo_root_commit(char out[41], mf_repo *r, const char *commit)
{
	git_oid oid;
	if (git_oid_fromstr(&oid, commit) < 0)
		return gitops_error_set(GITOPS_EINVALID, "\"%s\" is not a full commit id", commit);
	git_commit *c = NULL;
	int g = git_commit_lookup(&c, r->repo, &oid);
	while (g >= 0 && git_commit_parentcount(c) > 0) {
		git_commit *parent = NULL;
		g = git_commit_parent(&parent, c, 0);
		git_commit_free(c);
		c = parent;
	}
	if (g < 0) {
		git_commit_free(c);
		return gitops_git_fail(g, 0, commit);
	}
	git_oid_tostr(out, 41, git_commit_id(c));
	git_commit_free(c);
	return 0;
}

struct special_ctx {
	const char *prefix;
	char *found;
	bool link;
};

static int special_cb(const char *root, const git_tree_entry *e, void *payload)
{
	struct special_ctx *c = payload;
	git_filemode_t mode = git_tree_entry_filemode(e);
	if (mode != GIT_FILEMODE_LINK && mode != GIT_FILEMODE_COMMIT)
		return 0;
	c->found = gitops_sprintf("%s%s%s%s", c->prefix, *c->prefix ? "/" : "", root, git_tree_entry_name(e));
	c->link = mode == GIT_FILEMODE_LINK;
	return -1; /* stop at the first */
}

/* Symbolic links and submodules are never followed (a link could point a renderer at host files, a
 * submodule is another repository): one under an app is an error naming it, never skipped. */
int mf_repo_check_plain_tree(mf_repo *r, const char *commit, const char *path)
{
	git_tree *tree = NULL, *sub = NULL;
	int rc = commit_tree(&tree, r, commit);
	if (rc)
		return rc;
	struct special_ctx c = {is_root(path) ? "" : path, NULL, false};
	if (is_root(path)) {
		sub = tree;
		tree = NULL;
	} else {
		git_tree_entry *e = NULL;
		if (git_tree_entry_bypath(&e, tree, path) < 0) {
			rc = gitops_error_set(GITOPS_ENOTFOUND, "%s: not found at commit %.12s", path, commit);
		} else if (git_tree_entry_filemode(e) == GIT_FILEMODE_LINK || git_tree_entry_filemode(e) == GIT_FILEMODE_COMMIT) {
			c.found = gitops_strdup(path);
			c.link = git_tree_entry_filemode(e) == GIT_FILEMODE_LINK;
		} else if (git_tree_entry_type(e) == GIT_OBJECT_TREE && git_tree_lookup(&sub, r->repo, git_tree_entry_id(e)) < 0) {
			rc = gitops_git_fail(-1, 0, path);
		}
		git_tree_entry_free(e);
	}
	if (!rc && sub)
		git_tree_walk(sub, GIT_TREEWALK_PRE, special_cb, &c);
	if (!rc && c.found)
		rc = gitops_error_set(GITOPS_EINVALID, c.link ?
				      "%s: a symbolic link at commit %.12s; gitops does not follow links in the "
				      "repository (they could point outside it): commit the file or directory itself" :
				      "%s: a git submodule at commit %.12s; gitops renders one repository and does not "
				      "fetch submodules: vendor the files into this repository", c.found, commit);
	free(c.found);
	git_tree_free(sub);
	git_tree_free(tree);
	return rc;
}

int mf_repo_commit_time(long long *out, mf_repo *r, const char *commit)
{
	*out = 0;
	git_oid oid;
	git_commit *c = NULL;
	if (git_oid_fromstr(&oid, commit) < 0 || git_commit_lookup(&c, r->repo, &oid) < 0) {
		git_error_clear();
		return gitops_error_set(GITOPS_ENOTFOUND, "no commit %.40s in %s", commit, r->url);
	}
	*out = (long long)git_commit_time(c);
	git_commit_free(c);
	return 0;
}
