/*
 * test_stack.c - tests for sched/stack.c, the stack pool.
 *
 * They must mean something both natively and on aarch64 under qemu-user,
 * where MADV_GUARD_INSTALL is accepted but installs nothing: there the probe
 * falls back to mprotect, the guard_install tests skip, and the mprotect
 * tests (which force no_guard_install) always run. KR_TEST_SCALE divides
 * the big loop counts for slow targets (qemu, TSan).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/logging.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "stack.h"
#include "test_util.h" /* KR_TEST_SCALE; KRX_ASAN, KRX_TSAN through ctx.h */

#if KRX_ASAN
#include <sanitizer/asan_interface.h>
#endif

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Lines of /proc/self/maps, read without stdio so reading allocates nothing. */
static long maps_lines(void)
{
	static char buf[1 << 16];
	long lines = 0;
	ssize_t n;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	while ((n = read(fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

static long read_long(const char *path, int field)
{
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	for (int i = 0; i <= field; i++)
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
	fclose(f);
	return v;
}

static long rss_pages(void)
{
	return read_long("/proc/self/statm", 1);
}

static long max_map_count(void)
{
	long v = read_long("/proc/sys/vm/max_map_count", 0);

	return v > 0 ? v : 65530;
}

/* Resident pages in [p, p + len), both page-aligned. */
static size_t resident(const char *p, size_t len)
{
	size_t pages = len / page_size(), n = 0;
	unsigned char vec[pages];

	cr_assert_eq(mincore((void *)p, len, vec), 0);
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	return n;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* Write the top word of every page in [lo, hi), as a stack growing down does. */
__attribute__((noinline)) static void touch_pages(char *lo, char *hi, uintptr_t v)
{
	for (char *p = hi; p > lo; p -= page_size())
		((volatile uintptr_t *)p)[-1] = v;
}

static void pool_init(krx_stack_pool *pool, const krx_stack_opts *opts)
{
	cr_assert_eq(krx_stack_pool_init(pool, opts), 0);
}

/* A fault on purpose must end in SIGSEGV, not in a sanitizer's report. */
static void default_segv(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };

	sigaction(SIGSEGV, &sa, NULL);
}

static krx_stack_pool pool;

Test(stack, guard_kind_names)
{
	cr_assert_str_eq(krx_guard_kind_name(KRX_GUARD_INSTALL), "guard_install");
	cr_assert_str_eq(krx_guard_kind_name(KRX_GUARD_MPROTECT), "mprotect");
	cr_assert_str_eq(krx_guard_kind_name(KRX_GUARD_CANARY), "canary");
}

Test(stack, defaults_and_rounding)
{
	const size_t pg = page_size();
	krx_stack_opts o = { .stack_size = 3 * pg + 1, .keep_bytes = 64 * pg };

	pool_init(&pool, NULL);
	cr_assert_eq(pool.stack_size, (64 * 1024 + pg - 1) / pg * pg);
	cr_assert_eq(pool.slot_size, pool.stack_size + pg);
	cr_assert_eq(pool.slots_per_region, 4096);
	cr_assert_eq(pool.keep_bytes, pg <= 16 * 1024 ? 16 * 1024 : pool.stack_size);
	cr_assert_eq(AO_load(&pool.mprotect_left), (AO_t)(max_map_count() / 4));
	krx_stack_pool_destroy(&pool);

	pool_init(&pool, &o);
	cr_assert_eq(pool.stack_size, 4 * pg);
	cr_assert_eq(pool.keep_bytes, pool.stack_size); /* never trims */
	krx_stack_pool_destroy(&pool);
}

/*
 * Criterion 2.4 reports a skipped .signal test as failed (Snaipe/Criterion
 * #342: the skip exits 0 where a signal is expected), so cr_skip_test cannot
 * skip this one. Instead the runner asks the same probe before any test runs
 * and disables the test when MADV_GUARD_INSTALL does not really fault; it
 * then shows as skipped. mprotect_faults below always runs.
 */
Test(stack, guard_install_faults, .signal = SIGSEGV)
{
	krx_stack *st;

	pool_init(&pool, NULL);
	cr_assert_eq(pool.best, KRX_GUARD_INSTALL);
	st = krx_stack_get(&pool, NULL);
	cr_assert_not_null(st);
	cr_assert_eq(st->guard, KRX_GUARD_INSTALL);
	st->hi[-1] = 1;
	default_segv();
	((volatile char *)st->lo)[-1] = 1;
	cr_assert_fail("writing the guard page did not fault");
}

/* Its own function so the two FOREACH_SETs do not shadow each other. */
static void disable_test(struct criterion_ordered_set *tests, const char *name)
{
	struct criterion_test *t;

	FOREACH_SET(t, tests)
		if (!strcmp(t->category, "stack") && !strcmp(t->name, name))
			t->data->disabled = true;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	struct criterion_suite_set *suite;
	krx_guard_kind best;

	if (krx_stack_pool_init(&pool, NULL) != 0)
		return;
	best = pool.best;
	krx_stack_pool_destroy(&pool);
	if (best == KRX_GUARD_INSTALL)
		return;
	cr_log_warn("stack::guard_install_faults skipped: the probe found %s",
	            krx_guard_kind_name(best));
	FOREACH_SET(suite, set->suites)
		if (suite->tests)
			disable_test(suite->tests, "guard_install_faults");
}

Test(stack, mprotect_faults, .signal = SIGSEGV)
{
	krx_stack_opts o = { .no_guard_install = true };
	krx_stack *st;

	pool_init(&pool, &o);
	cr_assert_eq(pool.best, KRX_GUARD_MPROTECT, "best is %s", krx_guard_kind_name(pool.best));
	st = krx_stack_get(&pool, NULL);
	cr_assert_not_null(st);
	cr_assert_eq(st->guard, KRX_GUARD_MPROTECT);
	st->hi[-1] = 1;
	default_segv();
	((volatile char *)st->lo)[-1] = 1;
	cr_assert_fail("writing the guard page did not fault");
}

Test(stack, guard_install_adds_no_vmas)
{
	krx_stack_opts o = { .slots_per_region = 1 << 17 };
	const long n = 100000 / KR_TEST_SCALE;
	krx_stack_stats s;
	long before;

	pool_init(&pool, &o);
	if (pool.best != KRX_GUARD_INSTALL) {
		krx_guard_kind best = pool.best;
		krx_stack_pool_destroy(&pool);
		cr_skip_test("the probe found no working MADV_GUARD_INSTALL (best: %s)",
		             krx_guard_kind_name(best));
	}
	before = maps_lines();
	for (long i = 0; i < n; i++) {
		krx_stack *st = krx_stack_get(&pool, NULL);
		cr_assert_not_null(st);
		cr_assert_eq(st->guard, KRX_GUARD_INSTALL);
	}
	/* mprotect guards would have added 2n lines; allow a stray mapping. */
	cr_assert_leq(maps_lines() - before, 2);
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.best, KRX_GUARD_INSTALL);
	cr_assert_eq(s.by_guard[KRX_GUARD_INSTALL], (size_t)n);
	cr_assert_eq(s.carved, (size_t)n);
	krx_stack_pool_destroy(&pool);
}

/* With no_guard_install (so this runs everywhere): mprotect guards stop at the
 * default budget, max_map_count / 4, and the rest get canaries. */
Test(stack, mprotect_budget_then_canary, .timeout = 120)
{
	krx_stack_opts o = { .no_guard_install = true };
	const long mmc = max_map_count(), extra = 2000 / KR_TEST_SCALE;
	long budget = mmc / 4, before, after;
	krx_stack_stats s;

	if (budget > 100000) /* a huge vm.max_map_count: test a budget we choose */
		o.mprotect_budget = budget = 16382;
	pool_init(&pool, &o);
	cr_assert_eq(pool.best, KRX_GUARD_MPROTECT);
	before = maps_lines();
	for (long i = 0; i < budget + extra; i++) {
		krx_stack *st = krx_stack_get(&pool, NULL);
		cr_assert_not_null(st);
		cr_assert_eq(st->guard, i < budget ? KRX_GUARD_MPROTECT : KRX_GUARD_CANARY,
		             "stack %ld has guard %s", i, krx_guard_kind_name(st->guard));
		cr_assert(krx_stack_intact(st));
	}
	after = maps_lines();
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.by_guard[KRX_GUARD_MPROTECT], (size_t)budget);
	cr_assert_eq(s.by_guard[KRX_GUARD_CANARY], (size_t)extra);
	cr_assert_eq(s.by_guard[KRX_GUARD_INSTALL], 0);
	/* Two VMAs per guard, none after the budget (extra would add 2 * extra);
	 * the slack is for regions and a sanitizer's own mappings. */
	cr_assert_leq(after - before, 2 * budget + 64, "%ld new maps lines", after - before);
	cr_assert_lt(after, mmc * 3 / 4, "%ld maps lines, max_map_count %ld", after, mmc);
	krx_stack_pool_destroy(&pool);
}

Test(stack, canary_detects_overwrite)
{
	krx_stack_opts o = { .no_guard_install = true, .mprotect_budget = -1 };
	krx_stack_cache cache = { 0 };
	krx_stack *st[8], *again;
	krx_stack_stats s;
	size_t pg = page_size();

	pool_init(&pool, &o);
	for (int i = 0; i < 8; i++) {
		st[i] = krx_stack_get(&pool, &cache);
		cr_assert_not_null(st[i]);
		cr_assert_eq(st[i]->guard, KRX_GUARD_CANARY);
		cr_assert(krx_stack_intact(st[i]));
	}
	*(volatile uintptr_t *)st[3]->lo = 0; /* an overflow reached the bottom */
	for (int i = 0; i < 8; i++)
		cr_assert_eq(krx_stack_intact(st[i]), i != 3, "stack %d", i);
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.by_guard[KRX_GUARD_CANARY], 8);

	/* Put re-arms the canary; a deep canary stack keeps its bottom page. */
	memset(st[3]->lo + sizeof(uintptr_t), 0x5a, pool.stack_size - sizeof(uintptr_t));
	krx_stack_put(&pool, &cache, st[3]);
	again = krx_stack_get(&pool, &cache);
	cr_assert_eq(again, st[3]);
	cr_assert(krx_stack_intact(again));
	cr_assert_eq(resident(again->lo, pg), 1);
	cr_assert_eq(resident(again->lo + pg, pool.stack_size - pool.keep_bytes - pg), 0);
	cr_assert_eq(resident(again->hi - pool.keep_bytes, pool.keep_bytes), pool.keep_bytes / pg);
	krx_stack_pool_destroy(&pool);
}

/* An idle process touches one word at the top of its stack: one page. */
Test(stack, idle_stack_costs_one_page)
{
	enum { N = 2000 };
	static krx_stack *st[N];
	long rss0, rss1;

	pool_init(&pool, NULL);
	rss0 = rss_pages();
	for (int i = 0; i < N; i++) {
		st[i] = krx_stack_get(&pool, NULL);
		cr_assert_not_null(st[i]);
		cr_assert_neq(st[i]->guard, KRX_GUARD_CANARY); /* a canary costs a page */
		((volatile uintptr_t *)st[i]->hi)[-1] = (uintptr_t)i + 1;
	}
	rss1 = rss_pages();
	for (int i = 0; i < N; i++)
		cr_assert_eq(resident(st[i]->lo, pool.stack_size), 1, "stack %d", i);
	cr_assert_gt(rss0, 0);
/* TSan's shadow of a touched word is a page of RSS too (ASan's is shared
 * between many stacks). */
#if KRX_TSAN
	cr_assert_lt((double)(rss1 - rss0) / N, 4.0, "RSS grew %ld pages", rss1 - rss0);
#else
	cr_assert_lt((double)(rss1 - rss0) / N, 2.0, "RSS grew %ld pages", rss1 - rss0);
#endif
	krx_stack_pool_destroy(&pool);
}

/* A recycled stack comes back with its touched pages: no new faults. */
Test(stack, reuse_keeps_pages)
{
	const size_t pg = page_size(), used = 16 * pg;
	krx_stack_opts o = { .stack_size = 64 * pg, .keep_bytes = 16 * pg };
	krx_stack_cache cache = { 0 };
	char *scratch = mmap(NULL, used, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	krx_stack *st, *again;
	long flt;

	cr_assert_neq(scratch, MAP_FAILED);
	pool_init(&pool, &o);
	cr_assert_geq(pool.keep_bytes, used);
	st = krx_stack_get(&pool, &cache);
	touch_pages(st->hi - used, st->hi, 1);
	cr_assert_eq(resident(st->lo, pool.stack_size), 16);
	krx_stack_put(&pool, &cache, st);
	again = krx_stack_get(&pool, &cache);
	cr_assert_eq(again, st);
	cr_assert_eq(resident(st->hi - used, used), 16);
	/* Make the same calls once on resident scratch pages, so that faults of
	 * the runtime's own (qemu-user's copy-on-write after fork) are paid
	 * before we count. */
	touch_pages(scratch, scratch + used, 1);
	(void)minor_faults();
	touch_pages(scratch, scratch + used, 2);
	flt = minor_faults();
	touch_pages(st->hi - used, st->hi, 2);
	flt = minor_faults() - flt;
	cr_assert_leq(flt, 2, "%ld minor faults re-touching a recycled stack", flt);
	munmap(scratch, used);
	krx_stack_pool_destroy(&pool);
}

/* A stack that grew deep goes back trimmed to its top keep_bytes. */
Test(stack, deep_stack_trimmed)
{
	const size_t pg = page_size();
	krx_stack_opts o = { .stack_size = 16 * pg, .keep_bytes = 4 * pg };
	krx_stack_cache cache = { 0 };
	krx_stack *st, *again;
	size_t below;

	pool_init(&pool, &o);
	cr_assert_eq(pool.stack_size, 16 * pg);
	cr_assert_eq(pool.keep_bytes, 4 * pg);
	below = pool.stack_size - pool.keep_bytes;
	st = krx_stack_get(&pool, &cache);
	cr_assert_neq(st->guard, KRX_GUARD_CANARY);
	memset(st->lo, 0x5a, pool.stack_size);
	cr_assert_eq(resident(st->lo, pool.stack_size), pool.stack_size / pg);
	krx_stack_put(&pool, &cache, st);
	cr_assert_eq(resident(st->lo, below), 0);
	cr_assert_eq(resident(st->hi - pool.keep_bytes, pool.keep_bytes), pool.keep_bytes / pg);
	again = krx_stack_get(&pool, &cache);
	cr_assert_eq(again, st);
	cr_assert_eq(((volatile uintptr_t *)st->hi)[-1], (uintptr_t)0x5a5a5a5a5a5a5a5aull);
	cr_assert_eq(*(volatile char *)st->lo, 0); /* trimmed pages read back zero */
	krx_stack_pool_destroy(&pool);
}

#if KRX_ASAN
/* A coroutine that died mid-call leaves poisoned redzones on its stack; put
 * must clear them before it reads the stack, and so must the next owner. */
Test(stack, asan_poison_cleared_on_put)
{
	krx_stack_cache cache = { 0 };
	krx_stack *st;

	pool_init(&pool, NULL);
	st = krx_stack_get(&pool, &cache);
	ASAN_POISON_MEMORY_REGION(st->lo, pool.stack_size);
	krx_stack_put(&pool, &cache, st);
	cr_assert_eq(krx_stack_get(&pool, &cache), st);
	cr_assert_not(__asan_region_is_poisoned(st->lo, pool.stack_size));
	memset(st->lo, 1, pool.stack_size);
	krx_stack_pool_destroy(&pool);
}
#endif

/* A full cache spills its oldest half to the shared list in one go. */
Test(stack, cache_spills_and_flushes)
{
	enum { N = KRX_STACK_CACHE + 1 };
	krx_stack_cache cache = { 0 };
	krx_stack *st[N];
	krx_stack_stats s;
	char seen[N] = { 0 };

	pool_init(&pool, NULL);
	for (int i = 0; i < N; i++)
		st[i] = krx_stack_get(&pool, &cache);
	for (int i = 0; i < N; i++)
		krx_stack_put(&pool, &cache, st[i]);
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(cache.n, KRX_STACK_CACHE / 2 + 1);
	cr_assert_eq(s.shared_free, KRX_STACK_CACHE / 2);
	cr_assert_eq(s.carved, N);
	/* The newest stays hot in the cache; the oldest went to the list. */
	cr_assert_eq(cache.v[cache.n - 1], st[N - 1]);
	cr_assert_eq(krx_stack_get(&pool, NULL), st[0]);
	krx_stack_put(&pool, NULL, st[0]);

	krx_stack_cache_flush(&pool, &cache);
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(cache.n, 0);
	cr_assert_eq(s.shared_free, N);
	for (int i = 0; i < N; i++) {
		krx_stack *x = krx_stack_get(&pool, NULL);
		cr_assert_lt(x->id, N);
		cr_assert_not(seen[x->id], "stack %u handed out twice", x->id);
		seen[x->id] = 1;
	}
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.shared_free, 0);
	cr_assert_eq(s.carved, N);
	krx_stack_pool_destroy(&pool);
}

/* Stacks beyond the warm reserve give their pages back and are handed out
 * only after the warm ones; none is lost or handed out twice. */
Test(stack, trim_gives_pages_back_and_cold_stacks_come_last)
{
	enum { N = 300, KEEP = 100 };
	krx_stack *st[N];
	krx_stack_stats s;
	char seen[N] = { 0 };
	size_t pg = page_size();

	pool_init(&pool, NULL);
	for (int i = 0; i < N; i++) {
		st[i] = krx_stack_get(&pool, NULL);
		touch_pages(st[i]->hi - 2 * pg, st[i]->hi, 1); /* two pages, as a run leaves */
	}
	for (int i = 0; i < N; i++)
		krx_stack_put(&pool, NULL, st[i]);
	/* The first interval: the list was empty at its start. */
	cr_assert_eq(krx_stack_trim(&pool, 0), 0, "trimmed what the interval used");
	/* Stacks taken and given back in an interval stay warm. */
	krx_stack *busy[10];
	for (int i = 0; i < 10; i++)
		busy[i] = krx_stack_get(&pool, NULL);
	for (int i = 0; i < 10; i++)
		krx_stack_put(&pool, NULL, busy[i]);
	cr_assert_eq(krx_stack_trim(&pool, KEEP), N - 10 - KEEP);
	cr_assert_eq(krx_stack_trim(&pool, KEEP), 10, "what was busy is idle now");
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.shared_free, KEEP);
	cr_assert_eq(s.cold, N - KEEP);
	/* The newest were trimmed (the top of the list): the oldest stay warm. */
	for (int i = 0; i < N; i++)
		cr_assert_eq(resident(st[i]->hi - 2 * pg, 2 * pg), i < KEEP ? 2u : 0u, "stack %d", i);
	/* Warm first, then cold, then no new slot. */
	for (int i = 0; i < N; i++) {
		krx_stack *x = krx_stack_get(&pool, NULL);
		cr_assert_lt(x->id, N);
		cr_assert_not(seen[x->id], "stack %u handed out twice", x->id);
		seen[x->id] = 1;
		cr_assert_eq(x->id < KEEP, i < KEEP, "handout %d: stack %u", i, x->id);
		touch_pages(x->hi - pg, x->hi, 2); /* usable */
	}
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.carved, N);
	cr_assert_eq(s.shared_free + s.cold, 0);
	for (int i = 0; i < N; i++)
		krx_stack_put(&pool, NULL, st[i]);
	krx_stack_pool_destroy(&pool);
}

Test(stack, regions_grow)
{
	enum { N = 100 };
	krx_stack_opts o = { .slots_per_region = 4 };
	krx_stack *st[N];
	krx_stack_stats s;

	pool_init(&pool, &o);
	for (int i = 0; i < N; i++) {
		st[i] = krx_stack_get(&pool, NULL);
		cr_assert_not_null(st[i]);
		cr_assert_eq(st[i]->id, (uint32_t)i);
		cr_assert_eq((size_t)(st[i]->hi - st[i]->lo), pool.stack_size);
		((volatile uintptr_t *)st[i]->hi)[-1] = (uintptr_t)st[i];
	}
	cr_assert_eq(AO_load(&pool.nregions), N / 4);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(((volatile uintptr_t *)st[i]->hi)[-1], (uintptr_t)st[i]);
		krx_stack_put(&pool, NULL, st[i]);
	}
	for (int i = 0; i < N; i++)
		cr_assert_not_null(krx_stack_get(&pool, NULL));
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.carved, N);
	krx_stack_pool_destroy(&pool);
}

/* Past KRX_STACK_REGIONS, get fails cleanly and recycling still works. */
Test(stack, region_limit)
{
	krx_stack_opts o = { .stack_size = 4096, .slots_per_region = 1 };
	krx_stack *st = NULL;
	krx_stack_stats s;

	pool_init(&pool, &o);
	for (int i = 0; i < KRX_STACK_REGIONS; i++) {
		st = krx_stack_get(&pool, NULL);
		cr_assert_not_null(st, "stack %d", i);
	}
	cr_assert_null(krx_stack_get(&pool, NULL));
	cr_assert_null(krx_stack_get(&pool, NULL));
	krx_stack_put(&pool, NULL, st);
	cr_assert_eq(krx_stack_get(&pool, NULL), st);
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.carved, KRX_STACK_REGIONS);
	krx_stack_pool_destroy(&pool);
}

Test(stack, bad_options)
{
	krx_stack_opts o = { .slots_per_region = UINT32_MAX };

	cr_assert_lt(krx_stack_pool_init(&pool, &o), 0);
}

/*
 * Threads get and put at random, each with its own cache, holding up to HOLD
 * stacks. The bias flips between getting and putting every PHASE operations,
 * so caches overflow into the shared list and drain from it; half the
 * operations bypass the cache, and small regions make the threads grow the
 * pool concurrently. An ownership table (one CAS per get and per put) and a tag
 * in each held stack's top word catch a stack handed out twice. Eight threads
 * on fewer cores get preempted inside pops: without the head's tag, the ABA
 * this test exists for showed up in every run on a 2-vCPU machine.
 */
enum { THREADS = 8, HOLD = 200, PHASE = 128, OWNERS = 1 << 16 };
#define STRESS_OPS (500000 / KR_TEST_SCALE) /* per thread */

static AO_t owner[OWNERS];
static AO_t stress_errors;
static krx_stack_cache caches[THREADS];

static void *stress_thread(void *arg)
{
	const uintptr_t me = (uintptr_t)arg + 1;
	krx_stack *held[HOLD];
	uint64_t rng = 0x9e3779b97f4a7c15ull * me;
	int n = 0;

	for (long op = 0; op < STRESS_OPS || n; op++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		bool getting = (op / PHASE + me) & 1;
		bool get = op < STRESS_OPS && n < HOLD &&
		           (n == 0 || (rng & 3) < (getting ? 3u : 1u));
		krx_stack_cache *cache = (rng >> 2 & 1) ? &caches[me - 1] : NULL;

		if (get) {
			krx_stack *st = krx_stack_get(&pool, cache);
			if (!st || st->id >= OWNERS ||
			    AO_fetch_compare_and_swap_full(&owner[st->id], 0, me) != 0) {
				AO_fetch_and_add1(&stress_errors);
				break;
			}
			((volatile uintptr_t *)st->hi)[-1] = me << 32 | (uintptr_t)op;
			if (op % 1024 == 0) /* now and then, grow deep: put trims */
				memset(st->lo, (int)me, pool.stack_size - sizeof(uintptr_t));
			held[n++] = st;
		} else {
			int k = (int)((rng >> 8) % (uint64_t)n);
			krx_stack *st = held[k];
			held[k] = held[--n];
			if (((volatile uintptr_t *)st->hi)[-1] >> 32 != me ||
			    AO_fetch_compare_and_swap_full(&owner[st->id], me, 0) != me)
				AO_fetch_and_add1(&stress_errors);
			krx_stack_put(&pool, cache, st);
		}
		if (op % 8192 == 8191)
			krx_stack_cache_flush(&pool, &caches[me - 1]);
	}
	return NULL;
}

Test(stack, concurrent_get_put, .timeout = 120)
{
	pthread_t t[THREADS];
	krx_stack_stats s;
	size_t cached = 0;
	static char seen[OWNERS];
	krx_stack_opts o = { .slots_per_region = 64 };

	pool_init(&pool, &o);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, stress_thread, (void *)(uintptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(AO_load(&stress_errors), 0, "a stack was handed out twice");

	krx_stack_pool_stats(&pool, &s);
	for (int i = 0; i < THREADS; i++)
		cached += caches[i].n;
	cr_assert_eq(s.carved, s.shared_free + cached, "carved %zu, shared %zu, cached %zu",
	             s.carved, s.shared_free, cached);
	for (int i = 0; i < THREADS; i++)
		krx_stack_cache_flush(&pool, &caches[i]);
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.carved, s.shared_free);

	/* The shared list holds each carved stack exactly once. */
	for (size_t i = 0; i < s.carved; i++) {
		krx_stack *st = krx_stack_get(&pool, NULL);
		cr_assert_lt(st->id, s.carved);
		cr_assert_not(seen[st->id], "stack %u on the free list twice", st->id);
		seen[st->id] = 1;
	}
	krx_stack_pool_stats(&pool, &s);
	cr_assert_eq(s.shared_free, 0);
	krx_stack_pool_destroy(&pool);
}
