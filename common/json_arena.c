/* common: jansson's memory, through one pair of allocation functions installed when the
 * library loads (see common.h, "JSON arenas").
 *
 * Outside an arena jansson gets plain malloc and free (so what json_dumps returns is still
 * free()d by its caller). An arena cuts blocks from chunks by bumping a pointer; freeing a block
 * only counts it in its chunk, and a chunk goes back once the arena has moved on and its last
 * block is freed. The chunks come from one address range reserved at load, CHUNK_SIZE-aligned,
 * each starting with its count: a pointer is an arena block when it lies in the range, and its
 * count is at the start of its chunk. A list page parsed into an arena costs no malloc or free per node
 * (half of a no-op diff's CPU went to them) and gives its memory back a chunk at a time,
 * whichever thread frees its objects. jansson's types need 8-byte alignment at most (pointers,
 * size_t, long long, double). */
#include "common/common.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
/* In the sanitizer build each block is preceded by its size and only its own bytes are
 * addressable: the rest of a chunk, the bytes past a block's end and a freed block are poisoned,
 * so ASan catches an overflow or a use after free as it does for malloc's blocks (not only once
 * the whole chunk went back). */
#define BLOCK_HDR ((size_t)8)
#else
#define BLOCK_HDR ((size_t)0)
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK_SIZE ((uintptr_t)256 * 1024)
/* 4,096 chunks of address space, none of it memory until used: 1 GiB of JSON parsed into arenas
 * at once, far above what a plan holds; beyond it arenas hand out plain blocks. Kept small for
 * a process under an address-space limit (ulimit -v). */
#define RANGE_SIZE ((uintptr_t)1 << 30)
/* Free chunks kept without giving their pages back: about two list pages parsed (each ~2 MiB), so
 * the pages of a list reuse the same memory instead of faulting fresh pages in (half the minor
 * faults of a no-op diff at 11,000 objects). The daemon gives them back after each pass. */
#define WARM_CHUNKS 32
/* The reference of the arena cutting a chunk: larger than any count of blocks, so frees before
 * the arena moves on never reach 0. */
#define CUT_BIAS (LONG_MAX / 2)

/* Each chunk counts its own blocks, so a chunk goes back as soon as its blocks are freed, while
 * other chunks of the same arena still hold objects (a plan drops its desired objects in the
 * order they were parsed: their chunks then hold the list pages read after them). */
struct chunk {
	atomic_long live;   /* CUT_BIAS while an arena cuts it, plus blocks counted after, minus frees */
	struct chunk *next; /* in the free pool */
};

struct gitops_json_arena {
	struct chunk *chunk; /* being cut */
	long cut;            /* blocks cut from it */
	char *cur, *end;
	size_t nchunks;
};

static uintptr_t range_lo, range_hi; /* set once before main, read only after */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *pool;            /* free chunks */
static size_t pool_warm;
static uintptr_t range_next;          /* the first chunk never used */
static size_t chunks_out;             /* taken and not given back (under pool_lock) */
static _Thread_local gitops_json_arena *current;

static struct chunk *chunk_take(void)
{
	struct chunk *c = NULL;
	pthread_mutex_lock(&pool_lock);
	if (pool) {
		c = pool;
		UNPOISON(c, sizeof(*c)); /* its blocks become addressable one by one (BLOCK_HDR) */
		pool = c->next;
		if (pool_warm)
			pool_warm--;
	} else if (range_next + CHUNK_SIZE <= range_hi) {
		c = (struct chunk *)range_next;
		range_next += CHUNK_SIZE;
		POISON(c + 1, CHUNK_SIZE - sizeof(*c));
	}
	if (c)
		chunks_out++;
	pthread_mutex_unlock(&pool_lock);
	return c;
}

static void chunk_give(struct chunk *c)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_warm >= WARM_CHUNKS)
		madvise(c, CHUNK_SIZE, MADV_DONTNEED); /* its pages go back; zero-filled on reuse */
	else
		pool_warm++;
	c->next = pool;
	pool = c;
	chunks_out--;
	POISON(c, CHUNK_SIZE);
	pthread_mutex_unlock(&pool_lock);
}

static void chunk_unref(struct chunk *c, long n)
{
	if (atomic_fetch_sub_explicit(&c->live, n, memory_order_acq_rel) == n)
		chunk_give(c);
}

/* The arena stops cutting its chunk: the blocks cut are counted in, its reference dropped. */
static void arena_retire(gitops_json_arena *a)
{
	if (!a->chunk)
		return;
	atomic_fetch_add_explicit(&a->chunk->live, a->cut, memory_order_acq_rel);
	chunk_unref(a->chunk, CUT_BIAS);
	a->chunk = NULL;
	a->cut = 0;
	a->cur = a->end = NULL;
}

static void *json_alloc(size_t n)
{
	gitops_json_arena *a = current;
	size_t need = BLOCK_HDR + ((n + 7) & ~(size_t)7);
	if (!a || n > CHUNK_SIZE || need > CHUNK_SIZE - sizeof(struct chunk))
		return malloc(n);
	if ((size_t)(a->end - a->cur) < need) {
		arena_retire(a);
		struct chunk *c = chunk_take();
		if (!c)
			return malloc(n); /* the range is used up: plain blocks still work */
		atomic_init(&c->live, CUT_BIAS);
		a->chunk = c;
		a->nchunks++;
		a->cur = (char *)(c + 1);
		a->end = (char *)c + CHUNK_SIZE;
	}
	char *p = a->cur;
	a->cur += need;
	a->cut++;
#if defined(__SANITIZE_ADDRESS__)
	UNPOISON(p, BLOCK_HDR);
	*(size_t *)p = need;
	POISON(p, BLOCK_HDR);
	p += BLOCK_HDR;
	UNPOISON(p, n);
#endif
	return p;
}

static void json_release(void *p)
{
	uintptr_t u = (uintptr_t)p;
	if (u >= range_lo && u < range_hi) {
#if defined(__SANITIZE_ADDRESS__)
		char *b = (char *)p - BLOCK_HDR;
		UNPOISON(b, BLOCK_HDR);
		size_t need = *(size_t *)b;
		POISON(b, need);
#endif
		chunk_unref((struct chunk *)(u & ~(CHUNK_SIZE - 1)), 1);
	} else {
		free(p);
	}
}

/* Installed before main, so no jansson block predates the functions that free it. Without the
 * range (an mmap refused, e.g. under strict overcommit) arenas hand out plain blocks. */
__attribute__((constructor)) static void json_arena_install(void)
{
	void *m = mmap(NULL, RANGE_SIZE + CHUNK_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m != MAP_FAILED) {
		range_lo = ((uintptr_t)m + CHUNK_SIZE - 1) & ~(CHUNK_SIZE - 1);
		range_hi = range_lo + RANGE_SIZE;
		range_next = range_lo;
	}
	json_set_alloc_funcs(json_alloc, json_release);
}

gitops_json_arena *gitops_json_arena_open(void)
{
	return gitops_calloc(1, sizeof(gitops_json_arena));
}

gitops_json_arena *gitops_json_arena_use(gitops_json_arena *a)
{
	gitops_json_arena *was = current;
	current = range_lo ? a : NULL;
	return was;
}

size_t gitops_json_arena_bytes(const gitops_json_arena *a)
{
	return a ? a->nchunks * CHUNK_SIZE : 0;
}

void gitops_json_arena_trim(void)
{
	pthread_mutex_lock(&pool_lock);
	struct chunk *next;
	for (struct chunk *c = pool; c; c = next) {
		UNPOISON(c, sizeof(*c));
		next = c->next;
		madvise(c, CHUNK_SIZE, MADV_DONTNEED);
		c->next = next; /* the page holding the link comes back; the rest stays given back */
		POISON(c, CHUNK_SIZE);
	}
	pool_warm = 0;
	pthread_mutex_unlock(&pool_lock);
}

size_t gitops_json_arena_in_use(void)
{
	pthread_mutex_lock(&pool_lock);
	size_t n = chunks_out;
	pthread_mutex_unlock(&pool_lock);
	return n * CHUNK_SIZE;
}

void gitops_json_arena_close(gitops_json_arena *a)
{
	if (!a)
		return;
	if (current == a)
		current = NULL;
	arena_retire(a);
	free(a);
}
