/* common: what every module shares: the error codes and the thread-local last error message,
 * one growable buffer type, and allocation helpers that abort on out-of-memory. */
#ifndef GITOPS_COMMON_H
#define GITOPS_COMMON_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define GITOPS_VERSION "0.1.0"

/* ---- Threads and ownership, per type (common/) -------------------------------------------
 *
 * Last error       thread-local: each thread sees only its own (gitops_error_*).
 * gitops_buf       not locked: one owner thread; the owner frees it (gitops_buf_free) or takes
 *                  its string (gitops_buf_detach, then free()).
 * gitops_cancel    thread-safe and async-signal-safe to set; one owner frees it after every
 *                  thread that waits on it stopped.
 * Metrics          thread-safe (one lock around the registry).
 * gitops_strerror  thread-safe: the one way to word an errno (strerror is not thread-safe).
 * Base64, apiVersion, masking (mask.h), YAML (yaml.h), git errors (git.h): pure or thread-local
 *                  only, reentrant.
 * JSON arenas      one thread at a time opens, uses and closes an arena (it may be handed to
 *                  another thread under a lock, as kube/'s list pages are); the objects parsed
 *                  into it may be read, kept and freed on any thread (the count is atomic).
 * Allocation       gitops_malloc and friends abort on out-of-memory; what they return is the
 *                  caller's (free()). */

/* Error codes returned by every library function: 0 on success, one of these on failure.
 * The list only grows; values are stable. The message beside the code is in
 * gitops_error_last(). */
enum gitops_error {
	GITOPS_OK = 0,
	GITOPS_ERROR = -1,        /* generic failure */
	GITOPS_ENOTFOUND = -2,    /* object, file, ref or context not found */
	GITOPS_EEXISTS = -3,      /* already exists */
	GITOPS_EINVALID = -4,     /* rejected as invalid (bad input or Kubernetes Invalid) */
	GITOPS_ECONFLICT = -5,    /* field-manager or optimistic-lock conflict */
	GITOPS_EFORBIDDEN = -6,   /* authorization denied */
	GITOPS_EUNAUTHORIZED = -7,/* authentication failed */
	GITOPS_EGONE = -8,        /* resource version too old (410) */
	GITOPS_ETOOMANY = -9,     /* rate limited (429) after retries */
	GITOPS_ENETWORK = -10,    /* cannot connect, connection reset */
	GITOPS_ETLS = -11,        /* TLS handshake or certificate verification failed */
	GITOPS_EPARSE = -12,      /* malformed YAML, JSON or config */
	GITOPS_EIO = -13,         /* local file or process I/O */
	GITOPS_ETIMEOUT = -14,    /* operation timed out */
	GITOPS_ESERVER = -15,     /* server error (5xx) after retries */
	GITOPS_EUNSUPPORTED = -16,/* not supported (unknown kind, unknown option) */
	GITOPS_EAUTH = -17,       /* credentials could not be obtained (exec plugin, token file) */
	GITOPS_EGIT = -18,        /* git: unknown revision, unreachable remote, repository error */
	GITOPS_EPOLICY = -19,     /* refused by trust policy: unverified state branch, unsigned commit */
};

/* Sets the thread's last error (printf format) and returns `code`, so a failure site reads
 * `return gitops_error_set(GITOPS_EIO, "%s: %s", path, gitops_strerror(errno));`. */
int gitops_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to the current message, keeping the code; returns the code. */
int gitops_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The thread's last error message ("" when none); valid until the next error on this thread. */
const char *gitops_error_last(void);
/* The code of the thread's last error (GITOPS_OK when none). */
int gitops_error_code(void);
void gitops_error_clear(void);
/* A short name for a code, e.g. "NotFound". */
const char *gitops_error_name(int code);
/* errno's text, e.g. "No such file or directory" (strerror's in the C locale; "Unknown error N"
 * for a value libc does not know). Thread-safe, unlike strerror: the text is libc's static
 * description, or for an unknown value this thread's own buffer, valid until its next call. */
const char *gitops_strerror(int err);

/* Allocation that aborts with a message on out-of-memory. */
void *gitops_malloc(size_t n);
void *gitops_calloc(size_t n, size_t size);
void *gitops_realloc(void *p, size_t n);
char *gitops_strdup(const char *s);
char *gitops_strndup(const char *s, size_t n);
/* printf into a new string; the caller owns it (free()). */
char *gitops_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with a va_list, for a printf-like function of a caller (the log helpers of the
 * daemon, the notifier and the web server); `ap` is consumed. The caller owns the string. */
char *gitops_vsprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* The one growable buffer. Always NUL-terminated once anything was written.
 * Initialise with GITOPS_BUF_INIT; free with gitops_buf_free. */
typedef struct {
	char *ptr;
	size_t len;
	size_t cap;
} gitops_buf;
#define GITOPS_BUF_INIT {NULL, 0, 0}

void gitops_buf_grow(gitops_buf *b, size_t extra);
void gitops_buf_put(gitops_buf *b, const void *data, size_t len);
void gitops_buf_puts(gitops_buf *b, const char *s);
void gitops_buf_putc(gitops_buf *b, char c);
void gitops_buf_printf(gitops_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gitops_buf_vprintf(gitops_buf *b, const char *fmt, va_list ap);
void gitops_buf_clear(gitops_buf *b);
/* Hands the string to the caller (who frees it) and resets the buffer. Never NULL. */
char *gitops_buf_detach(gitops_buf *b);
void gitops_buf_free(gitops_buf *b);
/* A C string view of the buffer: "" when empty. */
const char *gitops_buf_cstr(const gitops_buf *b);

/* Reads a whole file into a new buffer; fails with GITOPS_EIO (or ENOTFOUND) naming the path.
 * `max` bounds the size (0: no bound). */
int gitops_read_file(gitops_buf *out, const char *path, size_t max);
/* Writes `len` bytes to `path` atomically (temp file + rename) with `mode`. */
int gitops_write_file(const char *path, const void *data, size_t len, int mode);

/* Returns 0 when `text` is valid UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF); else -1 with the 1-based line and column of the first bad byte. Every YAML input
 * is checked with it before libfyaml sees it. */
int gitops_utf8_check(const char *text, size_t len, int *line, int *col);

/* ---- Base64 (common/base64.c): the only base64 code; everything else calls these. ---- */

/* Standard alphabet, padded (RFC 4648 section 4). Returns a new NUL-terminated string; the
 * caller frees it (free()). Thread-safe. */
char *gitops_base64_encode(const void *data, size_t len);
/* Line breaks (\r, \n) anywhere are ignored, as Go's decoder (the apiserver's, kubectl's)
 * and PEM/SSH armour do; without it only the alphabet and final '=' padding are accepted. */
#define GITOPS_BASE64_LINES 1u
/* Decodes the n bytes at s: the padded standard alphabet only, length a multiple of 4, '='
 * only as the last one or two characters (Go's StdEncoding); "" decodes to 0 bytes. On success
 * 0, *out (NUL-terminated after *out_len bytes; the caller frees it with gitops_base64_free,
 * which wipes it: decoded values are often secrets) and *out_len. -1 when malformed, with
 * *out NULL and no error set: the caller says what was malformed. Thread-safe. */
int gitops_base64_decode(unsigned char **out, size_t *out_len, const char *s, size_t n, unsigned flags);
/* Wipes `len` bytes and frees p (NULL is fine). */
void gitops_base64_free(unsigned char *p, size_t len);

/* ---- apiVersion (common/apiversion.c) ---- */

/* The length of the API group at the start of an apiVersion: "apps/v1" -> 4 ("apps"), "v1" -> 0
 * (the core group ""). *version (may be NULL) gets the version part ("v1"). NULL reads as "".
 * Pure and thread-safe, like gitops_api_group. */
size_t gitops_api_group_len(const char *api_version, const char **version);
/* The API group as a new string ("" for the core group); the caller frees it. */
char *gitops_api_group(const char *api_version);

/* Monotonic clock in milliseconds. */
long long gitops_now_ms(void);

/* ---- Cancellation ------------------------------------------------------------------------ */

/* A cancellation token shared by the threads of a long-running caller (the daemon): set once
 * (from any thread, or from a signal handler), then every wait that honours it returns early.
 * Thread-safe. Free with gitops_cancel_free once no thread uses it. */
typedef struct gitops_cancel gitops_cancel;
/* Creates an unset token; the caller owns *out. GITOPS_EIO when no eventfd can be made. */
int gitops_cancel_new(gitops_cancel **out);
void gitops_cancel_free(gitops_cancel *c);
/* Sets the token (idempotent, async-signal-safe). NULL is fine. */
void gitops_cancel_set(gitops_cancel *c);
/* True once set. NULL: never set. */
bool gitops_cancel_is_set(const gitops_cancel *c);
/* The flag itself, for waits that poll an atomic_bool (rec_health_wait); owned by c. */
const atomic_bool *gitops_cancel_flag(const gitops_cancel *c);
/* A file descriptor that becomes readable once the token is set (for poll); owned by c. */
int gitops_cancel_fd(const gitops_cancel *c);
/* Sleeps `ms` milliseconds or until the token is set; returns true when it was set. */
bool gitops_cancel_sleep(gitops_cancel *c, long long ms);

/* ---- JSON arenas (common/json_arena.c) ----------------------------------------------------
 *
 * jansson allocates through this file's functions in every program that links it (installed
 * before main). While a thread uses an arena, what jansson allocates on that thread is cut from
 * the arena's large chunks: no malloc or free per node. Objects from an arena are ordinary
 * jansson values (refcounted, changed, freed as usual, on any thread); the arena's memory goes
 * back once it is closed and the last of its objects freed, so anything kept for long should
 * be copied out (json_deep_copy while no arena is in use) rather than pin the chunk it is in
 * (256 KiB; a chunk goes back once all its objects are freed).
 * Meant for a parse whose result is mostly dropped soon: a list page. */
typedef struct gitops_json_arena gitops_json_arena;
/* A new, open arena; the caller closes it. */
gitops_json_arena *gitops_json_arena_open(void);
/* Makes `a` (NULL: none, plain malloc) the calling thread's arena; returns the previous one. */
gitops_json_arena *gitops_json_arena_use(gitops_json_arena *a);
/* Bytes of the chunks the arena has cut from (statistics). */
size_t gitops_json_arena_bytes(const gitops_json_arena *a);
/* Gives the pages of the spare chunks kept for reuse back to the system (a long-running caller,
 * after its work, as with malloc_trim). */
void gitops_json_arena_trim(void);
/* Bytes of the chunks of every arena not yet given back, process-wide (statistics, tests). */
size_t gitops_json_arena_in_use(void);
/* Ends the owner's use (and the calling thread's, if current); the memory goes back when the
 * last object cut from the arena is freed, which may be now. NULL is fine. */
void gitops_json_arena_close(gitops_json_arena *a);

/* ---- Metrics ----------------------------------------------------------------------------- */

/* One process-wide registry of Prometheus metrics, fed by the library (kube requests, git
 * fetches, the daemon) and written by web/'s /metrics. Every family (name, type, help, buckets)
 * is declared once, in common/metrics.c's table; a name not in it is a programmer error
 * (assertion). Labels are given as name/value pairs ending with NULL, always in the same order
 * for one family. Thread-safe: one lock guards the registry. */
__attribute__((sentinel)) void gitops_metric_add(const char *name, double v, ...);     /* counter += v */
__attribute__((sentinel)) void gitops_metric_set(const char *name, double v, ...);     /* gauge = v */
__attribute__((sentinel)) void gitops_metric_observe(const char *name, double v, ...); /* histogram */
/* Appends the registry in the Prometheus text format 0.0.4 to `out`. */
void gitops_metrics_write(gitops_buf *out);
/* Forgets every series (tests). */
void gitops_metrics_reset(void);

#endif
