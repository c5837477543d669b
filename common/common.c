/* common: error state, allocation, the growable buffer and small file helpers shared by every
 * module. Out of memory aborts: the reconciler cannot do anything useful without memory. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[2048];
static _Thread_local int last_code;

int gitops_error_set(int code, const char *fmt, ...)
{
	/* Format aside first: callers may pass gitops_error_last() itself as an argument. */
	char msg[sizeof(last_error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(last_error, msg, sizeof(last_error));
	last_code = code;
	return code;
}

int gitops_error_prefix(const char *fmt, ...)
{
	char prefix[512], old[sizeof(last_error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, last_error, sizeof(old));
	size_t n = strlen(prefix);
	if (n > sizeof(last_error) - 3)
		n = sizeof(last_error) - 3;
	memcpy(last_error, prefix, n);
	memcpy(last_error + n, ": ", 2);
	size_t rest = sizeof(last_error) - n - 3;
	size_t olen = strnlen(old, rest);
	memcpy(last_error + n + 2, old, olen);
	last_error[n + 2 + olen] = '\0';
	if (last_code == GITOPS_OK)
		last_code = GITOPS_ERROR;
	return last_code;
}

const char *gitops_error_last(void) { return last_error; }
int gitops_error_code(void) { return last_code; }
void gitops_error_clear(void) { last_error[0] = '\0'; last_code = GITOPS_OK; }

const char *gitops_strerror(int err)
{
	/* glibc >= 2.32: a static, untranslated description (no shared buffer, unlike strerror) */
	const char *d = strerrordesc_np(err);
	if (d)
		return d;
	static _Thread_local char unknown[32];
	snprintf(unknown, sizeof(unknown), "Unknown error %d", err);
	return unknown;
}

const char *gitops_error_name(int code)
{
	switch (code) {
	case GITOPS_OK: return "OK";
	case GITOPS_ENOTFOUND: return "NotFound";
	case GITOPS_EEXISTS: return "AlreadyExists";
	case GITOPS_EINVALID: return "Invalid";
	case GITOPS_ECONFLICT: return "Conflict";
	case GITOPS_EFORBIDDEN: return "Forbidden";
	case GITOPS_EUNAUTHORIZED: return "Unauthorized";
	case GITOPS_EGONE: return "Gone";
	case GITOPS_ETOOMANY: return "TooManyRequests";
	case GITOPS_ENETWORK: return "Network";
	case GITOPS_ETLS: return "TLS";
	case GITOPS_EPARSE: return "Parse";
	case GITOPS_EIO: return "IO";
	case GITOPS_ETIMEOUT: return "Timeout";
	case GITOPS_ESERVER: return "ServerError";
	case GITOPS_EUNSUPPORTED: return "Unsupported";
	case GITOPS_EAUTH: return "Auth";
	case GITOPS_EGIT: return "Git";
	case GITOPS_EPOLICY: return "Policy";
	default: return "Error";
	}
}

static void oom(void)
{
	fputs("gitops: out of memory\n", stderr);
	abort();
}

void *gitops_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) oom();
	return p;
}

void *gitops_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) oom();
	return p;
}

void *gitops_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) oom();
	return q;
}

char *gitops_strdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p) oom();
	return p;
}

char *gitops_strndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p) oom();
	return p;
}

char *gitops_sprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = gitops_vsprintf(fmt, ap);
	va_end(ap);
	return s;
}

char *gitops_vsprintf(const char *fmt, va_list ap)
{
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_vprintf(&b, fmt, ap);
	return gitops_buf_detach(&b);
}

void gitops_buf_grow(gitops_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->ptr = gitops_realloc(b->ptr, cap);
	b->cap = cap;
}

void gitops_buf_put(gitops_buf *b, const void *data, size_t len)
{
	gitops_buf_grow(b, len);
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
}

void gitops_buf_puts(gitops_buf *b, const char *s) { gitops_buf_put(b, s, strlen(s)); }
void gitops_buf_putc(gitops_buf *b, char c) { gitops_buf_put(b, &c, 1); }

void gitops_buf_vprintf(gitops_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	gitops_buf_grow(b, (size_t)n);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void gitops_buf_printf(gitops_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	gitops_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void gitops_buf_clear(gitops_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

char *gitops_buf_detach(gitops_buf *b)
{
	char *p = b->ptr ? b->ptr : gitops_strdup("");
	b->ptr = NULL;
	b->len = b->cap = 0;
	return p;
}

void gitops_buf_free(gitops_buf *b)
{
	if (!b)
		return;
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}

const char *gitops_buf_cstr(const gitops_buf *b) { return b->ptr ? b->ptr : ""; }

int gitops_read_file(gitops_buf *out, const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return gitops_error_set(errno == ENOENT ? GITOPS_ENOTFOUND : GITOPS_EIO,
					"%s: %s", path, gitops_strerror(errno));
	char chunk[16384];
	size_t n;
	int rc = GITOPS_OK;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (max && out->len + n > max) {
			rc = gitops_error_set(GITOPS_EINVALID, "%s: larger than the limit of %zu bytes", path, max);
			break;
		}
		gitops_buf_put(out, chunk, n);
	}
	if (rc == GITOPS_OK && ferror(f))
		rc = gitops_error_set(GITOPS_EIO, "%s: read error", path);
	fclose(f);
	if (rc == GITOPS_OK && !out->ptr)
		gitops_buf_put(out, "", 0);
	return rc;
}

int gitops_write_file(const char *path, const void *data, size_t len, int mode)
{
	char *tmp = gitops_sprintf("%s.tmp.%ld", path, (long)getpid());
	int rc = GITOPS_OK;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0) {
		rc = gitops_error_set(GITOPS_EIO, "%s: %s", tmp, gitops_strerror(errno));
		goto done;
	}
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = gitops_error_set(GITOPS_EIO, "%s: %s", tmp, gitops_strerror(errno));
			close(fd);
			unlink(tmp);
			goto done;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		rc = gitops_error_set(GITOPS_EIO, "%s: %s", tmp, gitops_strerror(errno));
		unlink(tmp);
		goto done;
	}
	if (rename(tmp, path) != 0) {
		rc = gitops_error_set(GITOPS_EIO, "%s: %s", path, gitops_strerror(errno));
		unlink(tmp);
	}
done:
	free(tmp);
	return rc;
}

int gitops_utf8_check(const char *text, size_t len, int *line, int *col)
{
	const unsigned char *s = (const unsigned char *)text;
	int ln = 1, cl = 1;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t n;
		unsigned cp;
		if (c < 0x80) {
			if (c == '\n') {
				ln++;
				cl = 1;
			} else {
				cl++;
			}
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			goto bad;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			goto bad;
		i += n + 1;
		cl++;
	}
	return 0;
bad:
	*line = ln;
	*col = cl;
	return -1;
}

long long gitops_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
