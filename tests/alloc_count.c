/*
 * alloc_count.c - how many blocks krill holds from its allocator, so that
 * the native and aarch64 suites find leaks too (vm_util.h's vm_stop).
 *
 * krill allocates everything it frees itself (messages, binaries, process
 * heaps, its tables) through sched/mi.h: mimalloc in those builds, which
 * LeakSanitizer cannot see and whose own statistics count only whole
 * segments of 32 MiB. The test binary is linked with --wrap for the four
 * functions mi.h calls (Makefile: TEST_WRAP), so krill's calls, and only
 * krill's, come here; mimalloc's own internal calls and the malloc of
 * libc, Criterion and the tests do not. In the sanitizer builds mi.h
 * calls libc instead, nothing comes here, and LeakSanitizer does the job.
 */
#include <stdatomic.h>
#include <stddef.h>

/* Declared for the tests in vm_util.h. */
long vm_krill_blocks(void);
void vm_watch_free(const void *block);
long vm_watched_frees(void);

void *__real_mi_malloc(size_t size);
void *__real_mi_calloc(size_t n, size_t size);
void *__real_mi_realloc(void *p, size_t size);
void __real_mi_free(void *p);
void *__wrap_mi_malloc(size_t size);
void *__wrap_mi_calloc(size_t n, size_t size);
void *__wrap_mi_realloc(void *p, size_t size);
void __wrap_mi_free(void *p);

/* Relaxed: a count read by the test thread once the VM's threads are
 * joined (kr_vm_stop), which orders every update before the read. */
static atomic_long live_blocks;
/* One block a test watches, and how often it has been freed since. */
static _Atomic(const void *) watched;
static atomic_long watched_frees;

void *__wrap_mi_malloc(size_t size)
{
	void *p = __real_mi_malloc(size);
	if (p)
		atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
	return p;
}

void *__wrap_mi_calloc(size_t n, size_t size)
{
	void *p = __real_mi_calloc(n, size);
	if (p)
		atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
	return p;
}

/* realloc moves a block or fails leaving it: the count changes only when
 * it allocates (p NULL). */
void *__wrap_mi_realloc(void *p, size_t size)
{
	void *q = __real_mi_realloc(p, size);
	if (!p && q)
		atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
	return q;
}

void __wrap_mi_free(void *p)
{
	if (p) {
		atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
		/* Relaxed: set before the racers start, read after they end. */
		if (p == atomic_load_explicit(&watched, memory_order_relaxed))
			atomic_fetch_add_explicit(&watched_frees, 1, memory_order_relaxed);
	}
	__real_mi_free(p);
}

long vm_krill_blocks(void)
{
	return atomic_load_explicit(&live_blocks, memory_order_relaxed);
}

void vm_watch_free(const void *block)
{
	atomic_store(&watched_frees, 0);
	atomic_store(&watched, block);
}

long vm_watched_frees(void)
{
	return atomic_load(&watched_frees);
}
