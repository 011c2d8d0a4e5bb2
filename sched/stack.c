/*
 * stack.c - the stack pool: coroutine stacks carved from MAP_NORESERVE
 * reservations, a guard below each, recycled through per-scheduler caches and
 * a shared free list under a lock.
 *
 * A region is slots_per_region slots; a slot is one guard page followed by
 * stack_size usable bytes. The kernel commits a page only when a coroutine
 * touches it, so an idle process costs about one page. Slot id
 * r * slots_per_region + i names region r's slot i for the pool's whole life.
 *
 * Invariants:
 *  - regions[r] is filled once, under grow_lock, before the release store
 *    that makes nregions > r. Lock-free code reads regions[r] only for an id
 *    reached through an acquire ordered after that store: the carver's load
 *    of nregions, or the free list's acquire chain (every id on the list was
 *    carved before it was pushed).
 *  - The shared free list is a stack of slot ids under free_lock, and so is
 *    the cold list (a slot is on one of them at most: they share the link
 *    array). The warm list's stacks keep their touched pages, so that the
 *    next process to run takes no page fault; krx_stack_trim gives the
 *    pages of those beyond a reserve back and moves them to the cold list,
 *    handed out only when the warm list is empty. The
 *    schedulers' caches take and give stacks in batches of half a cache,
 *    so the lock is taken once per KRX_STACK_CACHE / 2 stacks; a lock
 *    instead of a lock-free stack because a tagged lock-free pop can be
 *    fooled once its tag wraps (a pop stalled through 2^32 changes of the
 *    head), and nothing here is hot enough to need one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "stack.h"
#include "san.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>

#if KRX_ASAN
#include <sanitizer/asan_interface.h>
#define KRX_NO_ASAN __attribute__((no_sanitize_address))
#else
#define KRX_NO_ASAN
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on x86-64 and aarch64 */
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#define GUARD_BATCH 1024 /* iovecs per process_madvise (UIO_MAXIOV) */

#define DEFAULT_STACK_SIZE (64 * 1024)
#define DEFAULT_KEEP_BYTES (16 * 1024)
#define DEFAULT_SLOTS 4096
#define DEFAULT_MAX_MAP_COUNT 65530
#define PROBE_WORDS 8 /* one cache line: what put reads to spot a deep stack */


static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static krx_stack *slot_of(krx_stack_pool *pool, uint32_t id)
{
	return &pool->regions[id / pool->slots_per_region].slots[id % pool->slots_per_region];
}

static unsigned *link_of(krx_stack_pool *pool, uint32_t id)
{
	return &pool->regions[id / pool->slots_per_region].next[id % pool->slots_per_region];
}

/* The canary depends on the address, so a stale copy of another slot's
 * bottom page never passes for intact. */
static uintptr_t canary_of(const krx_stack *st)
{
	return (uintptr_t)0x6b72696c6c2d7374u ^ (uintptr_t)st->lo;
}

/*
 * Does a guard of this kind really fault? Fault without a signal: hand the
 * guarded page to write(2), which fails with EFAULT when the kernel refuses
 * to read it. qemu-user accepts MADV_GUARD_INSTALL and installs nothing; this
 * is how we notice.
 */
static bool guard_faults(size_t page, krx_guard_kind kind)
{
	int fd[2], rc;
	bool faults = false;
	char *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return false;
	if (kind == KRX_GUARD_INSTALL)
		rc = madvise(p, page, MADV_GUARD_INSTALL);
	else
		rc = mprotect(p, page, PROT_NONE);
	if (rc == 0 && pipe2(fd, O_CLOEXEC | O_NONBLOCK) == 0) {
		faults = write(fd[1], p, 1) < 0 && errno == EFAULT;
		close(fd[0]);
		close(fd[1]);
	} else if (rc == 0) {
		/* No descriptor to probe with: trust POSIX, not the new advice. */
		faults = kind == KRX_GUARD_MPROTECT;
	}
	munmap(p, page);
	return faults;
}

static krx_guard_kind probe_guard(size_t page, bool no_guard_install)
{
	if (!no_guard_install && guard_faults(page, KRX_GUARD_INSTALL))
		return KRX_GUARD_INSTALL;
	if (guard_faults(page, KRX_GUARD_MPROTECT))
		return KRX_GUARD_MPROTECT;
	return KRX_GUARD_CANARY;
}

/* Each mprotect guard splits its region's VMA twice; keep a quarter of
 * vm.max_map_count for them and leave the rest to the host program. */
static long default_mprotect_budget(void)
{
	long max = DEFAULT_MAX_MAP_COUNT, v;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%ld", &v) == 1 && v > 0)
			max = v;
		fclose(f);
	}
	return max / 4;
}

/*
 * Install the guards of a whole region's slots with a few process_madvise
 * calls (GUARD_BATCH guards each) instead of one madvise per slot as it is
 * carved: a system call costs about a microsecond here, a good part of what
 * spawning a process costs. Linux 6.13 lets process_madvise apply any advice
 * to the calling process. Returns how many leading slots are guarded; the
 * rest (an older kernel, a failure) get theirs one by one when carved.
 */
static uint32_t guard_region(krx_stack_pool *pool, char *base)
{
	/* Valgrind 3.19 does not know pidfd_open, and says so on stderr:
	 * one madvise per slot there. */
	if (RUNNING_ON_VALGRIND)
		return 0;
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		return 0;
	struct iovec iov[GUARD_BATCH];
	uint32_t done = 0;
	while (done < pool->slots_per_region) {
		uint32_t k = pool->slots_per_region - done;
		if (k > GUARD_BATCH)
			k = GUARD_BATCH;
		for (uint32_t j = 0; j < k; j++) {
			iov[j].iov_base = base + (size_t)(done + j) * pool->slot_size;
			iov[j].iov_len = pool->page;
		}
		long n = syscall(SYS_process_madvise, pidfd, iov, (size_t)k, MADV_GUARD_INSTALL, 0u);
		if (n < 0)
			break;
		done += (uint32_t)((size_t)n / pool->page); /* whole guards, in order */
		if ((size_t)n < (size_t)k * pool->page)
			break;
	}
	close(pidfd);
	return done;
}

static int map_region(krx_stack_pool *pool, krx_stack_region *reg)
{
	size_t bytes = pool->slot_size * pool->slots_per_region;
	char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (base == MAP_FAILED)
		return -errno;
	/* Transparent huge pages would back a stack's first touch with 2 MiB.
	 * Failure (a kernel without THP) is harmless. */
	(void)madvise(base, bytes, MADV_NOHUGEPAGE);
	reg->slots = calloc(pool->slots_per_region, sizeof *reg->slots);
	reg->next = calloc(pool->slots_per_region, sizeof *reg->next);
	if (!reg->slots || !reg->next) {
		free(reg->slots);
		free(reg->next);
		munmap(base, bytes);
		return -ENOMEM;
	}
	reg->base = base;
	reg->guarded = pool->best == KRX_GUARD_INSTALL ? guard_region(pool, base) : 0;
	return 0;
}

/* Make region r exist. False when out of regions or address space. */
static bool grow_to(krx_stack_pool *pool, size_t r)
{
	bool ok = true;

	if (r >= KRX_STACK_REGIONS)
		return false;
	pthread_mutex_lock(&pool->grow_lock);
	/* Relaxed: nregions is written only under grow_lock, which we hold. */
	for (AO_t n = AO_load(&pool->nregions); ok && n <= r; n++) {
		ok = map_region(pool, &pool->regions[n]) == 0;
		/* Release: a reader whose acquire load sees n + 1 sees regions[n]
		 * filled in. */
		if (ok)
			AO_store_release(&pool->nregions, n + 1);
	}
	pthread_mutex_unlock(&pool->grow_lock);
	return ok;
}

static bool take_mprotect_budget(krx_stack_pool *pool)
{
	/* Relaxed: the budget bounds a count and publishes no memory. */
	AO_t left = AO_load(&pool->mprotect_left);

	while (left > 0) {
		AO_t seen = AO_fetch_compare_and_swap(&pool->mprotect_left, left, left - 1);
		if (seen == left)
			return true;
		left = seen;
	}
	return false;
}

static krx_guard_kind guard_slot(krx_stack_pool *pool, char *guard)
{
	if (pool->best == KRX_GUARD_INSTALL &&
	    madvise(guard, pool->page, MADV_GUARD_INSTALL) == 0)
		return KRX_GUARD_INSTALL;
	if (pool->best != KRX_GUARD_CANARY && take_mprotect_budget(pool)) {
		if (mprotect(guard, pool->page, PROT_NONE) == 0)
			return KRX_GUARD_MPROTECT;
		/* ENOMEM: the host spent the map count; stop asking (relaxed,
		 * as above). */
		AO_store(&pool->mprotect_left, 0);
	}
	return KRX_GUARD_CANARY;
}

/*
 * A slot never handed out before. The fetch-and-add gives each carver its own
 * id; an id whose region cannot be mapped is lost for good (we cannot give it
 * back without racing later carvers), which is why stats count carved slots
 * from guards[], not from the counter.
 */
static krx_stack *carve(krx_stack_pool *pool)
{
	/* No ordering: the add only has to hand each id out once. */
	AO_t n = AO_fetch_and_add1(&pool->carved);
	size_t r = n / pool->slots_per_region, i = n % pool->slots_per_region;
	krx_stack *st;
	char *guard;

	/* Acquire: pairs with the release in grow_to, so regions[r] is whole. */
	if (r >= AO_load_acquire(&pool->nregions) && !grow_to(pool, r))
		return NULL;
	guard = pool->regions[r].base + i * pool->slot_size;
	st = &pool->regions[r].slots[i];
	st->lo = guard + pool->page;
	st->hi = st->lo + pool->stack_size;
	st->id = (uint32_t)n;
	st->guard = i < pool->regions[r].guarded ? KRX_GUARD_INSTALL
	                                         : (uint8_t)guard_slot(pool, guard);
	if (st->guard == KRX_GUARD_CANARY)
		*(uintptr_t *)st->lo = canary_of(st);
	/* Relaxed: a statistic. */
	AO_fetch_and_add1(&pool->guards[st->guard]);
	return st;
}

/* Push v[0..k) as one chain; v[0] ends up on top. */
static void push_batch(krx_stack_pool *pool, krx_stack **v, uint32_t k)
{
	/* The links of stacks we hold are ours until the push. */
	for (uint32_t j = 0; j + 1 < k; j++)
		*link_of(pool, v[j]->id) = v[j + 1]->id + 1;
	pthread_mutex_lock(&pool->free_lock);
	*link_of(pool, v[k - 1]->id) = pool->free_top;
	pool->free_top = v[0]->id + 1;
	/* Relaxed: written under the lock, read racily by the stats. */
	AO_store(&pool->nfree, AO_load(&pool->nfree) + k);
	pthread_mutex_unlock(&pool->free_lock);
}

/* Pop up to max stacks from the list at *top into out (the most recently
 * pushed first); free_lock held. */
static uint32_t pop_locked(krx_stack_pool *pool, uint32_t *top, AO_t *count, krx_stack **out,
                           uint32_t max)
{
	uint32_t k = 0;
	while (k < max && *top) {
		uint32_t id = *top - 1;
		*top = *link_of(pool, id);
		out[k++] = slot_of(pool, id);
	}
	/* Relaxed: written under the lock, read racily by the stats. */
	AO_store(count, AO_load(count) - k);
	return k;
}

/* Pop up to max stacks into out: warm ones first, then cold. */
static uint32_t pop_batch(krx_stack_pool *pool, krx_stack **out, uint32_t max)
{
	pthread_mutex_lock(&pool->free_lock);
	uint32_t k = pop_locked(pool, &pool->free_top, &pool->nfree, out, max);
	if (AO_load(&pool->nfree) < pool->low_free)
		pool->low_free = AO_load(&pool->nfree);
	k += pop_locked(pool, &pool->cold_top, &pool->ncold, out + k, max - k);
	pthread_mutex_unlock(&pool->free_lock);
	return k;
}

/* Give back the pages of stacks v[0..k): a process_madvise for them all
 * where the kernel takes MADV_DONTNEED there (Linux 6.13), else one
 * madvise each. A canary stack keeps its bottom page: it holds the canary. */
static void release_pages(krx_stack_pool *pool, krx_stack **v, uint32_t k, int pidfd)
{
	struct iovec iov[GUARD_BATCH];
	for (uint32_t j = 0; j < k; j++) {
		char *from = v[j]->lo + (v[j]->guard == KRX_GUARD_CANARY ? pool->page : 0);
		iov[j] = (struct iovec){ .iov_base = from, .iov_len = (size_t)(v[j]->hi - from) };
	}
	if (pidfd >= 0 &&
	    syscall(SYS_process_madvise, pidfd, iov, (size_t)k, MADV_DONTNEED, 0u) >= 0)
		return;
	for (uint32_t j = 0; j < k; j++)
		(void)madvise(iov[j].iov_base, iov[j].iov_len, MADV_DONTNEED);
}

/*
 * The stacks below the warm list's low-water mark were not taken since the
 * last trim (the list is a stack: takers and givers work at its top), so
 * that many, less keep, are surplus; the others are what the last
 * interval's processes cycled through. Which of the list's stacks are
 * trimmed does not matter (the top ones, cheap to pop): only how many stay
 * warm.
 */
size_t krx_stack_trim(krx_stack_pool *pool, size_t keep)
{
	pthread_mutex_lock(&pool->free_lock);
	size_t surplus = pool->low_free > keep ? pool->low_free - keep : 0;
	pool->low_free = AO_load(&pool->nfree); /* the next interval starts */
	pthread_mutex_unlock(&pool->free_lock);
	if (!surplus)
		return 0;
	/* Valgrind does not know pidfd_open: one madvise a stack there. */
	int pidfd = RUNNING_ON_VALGRIND ? -1 : (int)syscall(SYS_pidfd_open, getpid(), 0);
	krx_stack *v[GUARD_BATCH];
	size_t trimmed = 0;
	while (trimmed < surplus) {
		size_t want = surplus - trimmed;
		pthread_mutex_lock(&pool->free_lock);
		uint32_t k = pop_locked(pool, &pool->free_top, &pool->nfree, v,
		                        want > GUARD_BATCH ? GUARD_BATCH : (uint32_t)want);
		if (AO_load(&pool->nfree) < pool->low_free)
			pool->low_free = AO_load(&pool->nfree);
		pthread_mutex_unlock(&pool->free_lock);
		if (!k)
			break;
		/* Ours while neither list holds them: no lock for the calls. */
		release_pages(pool, v, k, pidfd);
		pthread_mutex_lock(&pool->free_lock);
		for (uint32_t j = 0; j < k; j++) {
			*link_of(pool, v[j]->id) = pool->cold_top;
			pool->cold_top = v[j]->id + 1;
		}
		AO_store(&pool->ncold, AO_load(&pool->ncold) + k);
		pthread_mutex_unlock(&pool->free_lock);
		trimmed += k;
	}
	if (pidfd >= 0)
		close(pidfd);
	return trimmed;
}

/*
 * Make a returned stack fit to hand out again.
 *
 * Trim a stack that grew deep, cheaply: stacks grow down without gaps, so a
 * coroutine that went below hi - keep_bytes laid frames over the top of the
 * page just below that line. We read that page's top PROBE_WORDS words; any
 * nonzero word means it was used, and we drop everything below the line.
 * This is a heuristic, honestly:
 *  - it misses a stack whose frames left those words zero (a large
 *    uninitialised or zeroed buffer spanning them; stack-clash probes write
 *    zero) - its pages stay committed until a later put sees a mark;
 *  - the first read of a never-touched probe page maps the shared zero page:
 *    one minor fault per slot, no memory (mincore calls that page resident);
 *  - a false "deep" costs one needless madvise, never correctness.
 */
static void recycle(krx_stack_pool *pool, krx_stack *st)
{
	char *edge = st->hi - pool->keep_bytes, *from = st->lo;
	uintptr_t mark = 0;

#if KRX_ASAN
	/* A coroutine that died mid-call leaves poisoned redzones behind. */
	ASAN_UNPOISON_MEMORY_REGION(st->lo, pool->stack_size);
#endif
	if (edge > st->lo) {
		const uintptr_t *w = (const uintptr_t *)edge - PROBE_WORDS;
		/* Words of dead frames, or never written: memcheck would call
		 * the read invalid or its value undefined. Any value will do. */
		(void)VALGRIND_MAKE_MEM_DEFINED(w, PROBE_WORDS * sizeof *w);
		for (int i = 0; i < PROBE_WORDS; i++)
			mark |= w[i];
	}
	/* A canary stack keeps its bottom page: it holds the canary. */
	if (st->guard == KRX_GUARD_CANARY)
		from += pool->page;
	if (mark && from < edge)
		(void)madvise(from, (size_t)(edge - from), MADV_DONTNEED);
	/* Re-arm a canary an overflow broke (krx_stack_intact told the caller). */
	if (st->guard == KRX_GUARD_CANARY && *(uintptr_t *)st->lo != canary_of(st))
		*(uintptr_t *)st->lo = canary_of(st);
}

int krx_stack_pool_init(krx_stack_pool *pool, const krx_stack_opts *opts)
{
	/* No options, or zeroed ones, mean every default. */
	krx_stack_opts o = opts ? *opts : (krx_stack_opts){ 0 };
	long page = sysconf(_SC_PAGESIZE);
	size_t size, keep, spr;
	long budget;
	int err;

	if (page <= 0)
		return -EINVAL;
	size = o.stack_size ? o.stack_size : DEFAULT_STACK_SIZE;
	keep = o.keep_bytes ? o.keep_bytes : DEFAULT_KEEP_BYTES;
	spr = o.slots_per_region ? o.slots_per_region : DEFAULT_SLOTS;
	if (size > SIZE_MAX / 2 || keep > SIZE_MAX / 2)
		return -EINVAL;
	size = round_up(size, (size_t)page);
	/* Every id + 1 must fit the low half of the free list's head word. */
	if (spr > (UINT32_MAX - 1) / KRX_STACK_REGIONS ||
	    spr > SIZE_MAX / (size + (size_t)page))
		return -EINVAL;

	memset(pool, 0, sizeof *pool);
	pool->page = (size_t)page;
	pool->stack_size = size;
	pool->slot_size = size + pool->page;
	pool->keep_bytes = round_up(keep, pool->page);
	if (pool->keep_bytes > size)
		pool->keep_bytes = size;
	pool->slots_per_region = (uint32_t)spr;
	pool->best = probe_guard(pool->page, o.no_guard_install);
	budget = o.mprotect_budget == 0 ? default_mprotect_budget()
	       : o.mprotect_budget < 0   ? 0
	                                 : o.mprotect_budget;
	/* Plain stores below: nothing shares the pool before init returns. */
	AO_store(&pool->mprotect_left, (AO_t)budget);
	if ((err = pthread_mutex_init(&pool->grow_lock, NULL)))
		return -err;
	if ((err = pthread_mutex_init(&pool->free_lock, NULL))) {
		pthread_mutex_destroy(&pool->grow_lock);
		return -err;
	}
	if ((err = map_region(pool, &pool->regions[0]))) {
		pthread_mutex_destroy(&pool->grow_lock);
		pthread_mutex_destroy(&pool->free_lock);
		return err;
	}
	AO_store(&pool->nregions, 1);
	return 0;
}

void krx_stack_pool_destroy(krx_stack_pool *pool)
{
	/* Relaxed: the pool is quiescent; its users have been joined. */
	AO_t n = AO_load(&pool->nregions);

	for (AO_t r = 0; r < n; r++) {
		munmap(pool->regions[r].base, pool->slot_size * pool->slots_per_region);
		free(pool->regions[r].slots);
		free(pool->regions[r].next);
	}
	pthread_mutex_destroy(&pool->grow_lock);
	pthread_mutex_destroy(&pool->free_lock);
	memset(pool, 0, sizeof *pool);
}

krx_stack *krx_stack_get(krx_stack_pool *pool, krx_stack_cache *cache)
{
	krx_stack *st;

	if (cache && cache->n)
		return cache->v[--cache->n];
	/* Refill half the cache under one lock: the shared list is touched
	 * once per KRX_STACK_CACHE / 2 stacks a scheduler takes. */
	if (cache && (cache->n = pop_batch(pool, cache->v, KRX_STACK_CACHE / 2)))
		return cache->v[--cache->n];
	if (!cache && pop_batch(pool, &st, 1))
		return st;
	return carve(pool);
}

void krx_stack_put(krx_stack_pool *pool, krx_stack_cache *cache, krx_stack *st)
{
	const uint32_t half = KRX_STACK_CACHE / 2;

	recycle(pool, st);
	if (!cache) {
		push_batch(pool, &st, 1);
		return;
	}
	if (cache->n == KRX_STACK_CACHE) {
		/* Spill the oldest half; the newest are likeliest warm. */
		push_batch(pool, cache->v, half);
		memmove(cache->v, cache->v + half, (cache->n - half) * sizeof *cache->v);
		cache->n -= half;
	}
	cache->v[cache->n++] = st;
}

void krx_stack_cache_flush(krx_stack_pool *pool, krx_stack_cache *cache)
{
	if (cache->n)
		push_batch(pool, cache->v, cache->n);
	cache->n = 0;
}

/* Reads the bottom word of a stack that may be running and poisoned. */
KRX_NO_ASAN bool krx_stack_intact(const krx_stack *st)
{
	/* The fault-based guards need no look: an overflow has already trapped. */
	if (st->guard != KRX_GUARD_CANARY)
		return true;
	return *(const volatile uintptr_t *)st->lo == canary_of(st);
}

void krx_stack_pool_stats(krx_stack_pool *pool, krx_stack_stats *out)
{
	memset(out, 0, sizeof *out);
	/* Relaxed: figures, exact only while the pool is quiescent. */
	for (int k = 0; k < KRX_GUARD_KINDS; k++) {
		out->by_guard[k] = AO_load(&pool->guards[k]);
		out->carved += out->by_guard[k];
	}
	out->shared_free = AO_load(&pool->nfree);
	out->cold = AO_load(&pool->ncold);
	out->best = pool->best;
}

const char *krx_guard_kind_name(krx_guard_kind kind)
{
	static const char *const names[KRX_GUARD_KINDS] = {
		[KRX_GUARD_INSTALL] = "guard_install",
		[KRX_GUARD_MPROTECT] = "mprotect",
		[KRX_GUARD_CANARY] = "canary",
	};

	return (unsigned)kind < KRX_GUARD_KINDS ? names[kind] : "unknown";
}
