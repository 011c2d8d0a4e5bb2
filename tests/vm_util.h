/*
 * vm_util.h - what the VM test files (test_proc.c, test_mailbox.c,
 * test_sched.c, test_embed.c) share.
 *
 * Criterion's asserts longjmp back into the test's own thread, so they must
 * not run inside a krill process (a scheduler thread). Processes record a
 * failure with VM_CHECK instead; the test thread waits for the processes
 * (VM_WAIT, always with a deadline) and then asserts vm_assert_clean().
 *
 * vm_stop() asserts vm_assert_clean() too, so a test that stops its VM
 * through it cannot drop its processes' failures; a test that ends its VM
 * another way (kr_main) asserts vm_assert_clean() itself.
 *
 * Every suite's .fini calls vm_fini(): it raises vm_abort, which every
 * endless loop in a test process watches, and stops the VM, so a failed
 * assert never leaves scheduler threads running into exit().
 */
#ifndef KR_VM_UTIL_H
#define KR_VM_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include "san.h"
#if KRX_ASAN
#include <sanitizer/lsan_interface.h>
#endif
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "krill.h"
#include "test_util.h"

/* The heavy tests (a million processes, ten million messages) divide their
 * sizes by this: KR_TEST_SCALE for qemu, and 50 more under TSan (10-20 times
 * slower, and it caps live coroutines). ASan runs them at full size. */
#if KRX_TSAN
#define VM_HEAVY_DIV (KR_TEST_SCALE * 50)
#else
#define VM_HEAVY_DIV KR_TEST_SCALE
#endif

/* Lighter tests (timer races, bursts) slow down less under TSan. */
#if KRX_TSAN
#define VM_LIGHT_DIV (KR_TEST_SCALE * 10)
#else
#define VM_LIGHT_DIV KR_TEST_SCALE
#endif

/* ---- time ---- */

static inline int64_t vm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double vm_ms_since(int64_t t0)
{
	return (double)(vm_now_ns() - t0) / 1e6;
}

/* CPU time the whole test process has used, user and system, in ms. */
static inline double vm_cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* Busy for about us microseconds of wall time, with no krill call. */
static inline void vm_spin_us(long us)
{
	int64_t end = vm_now_ns() + (int64_t)us * 1000;
	while (vm_now_ns() < end)
		;
}

static inline void vm_host_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Evaluate cond every half millisecond until it holds or ms pass; the
 * value is whether it held. For the test (host) thread only. */
#define VM_WAIT(cond, ms)                                                        \
	__extension__({                                                          \
		int64_t vm_wait_end_ = vm_now_ns() + (int64_t)(ms) * 1000000;    \
		int vm_wait_ok_;                                                 \
		while (!(vm_wait_ok_ = !!(cond)) && vm_now_ns() < vm_wait_end_) \
			usleep(500);                                             \
		vm_wait_ok_;                                                     \
	})

/* ---- failures inside processes ---- */

static atomic_int vm_fails;
static atomic_int vm_abort; /* set by vm_fini: endless test loops end */
static pthread_mutex_t vm_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char vm_fail_msg[512];

static inline __attribute__((format(printf, 3, 4))) void
vm_fail(const char *file, int line, const char *fmt, ...)
{
	pthread_mutex_lock(&vm_fail_lock);
	if (atomic_fetch_add(&vm_fails, 1) == 0) {
		int n = snprintf(vm_fail_msg, sizeof vm_fail_msg, "%s:%d: ", file, line);
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(vm_fail_msg + n, sizeof vm_fail_msg - (size_t)n, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&vm_fail_lock);
}

/* VM_CHECK(cond, "format", ...): record a failure if cond is false. */
#define VM_CHECK(cond, ...)                                       \
	do {                                                      \
		if (!(cond))                                      \
			vm_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

static inline void vm_assert_clean(void)
{
	int n = atomic_load(&vm_fails);
	pthread_mutex_lock(&vm_fail_lock);
	char msg[sizeof vm_fail_msg];
	memcpy(msg, vm_fail_msg, sizeof msg);
	pthread_mutex_unlock(&vm_fail_lock);
	cr_assert_eq(n, 0, "%d check(s) failed inside processes; the first: %s", n, msg);
}

/* ---- starting and stopping ---- */

/* Blocks krill holds from mimalloc now (tests/alloc_count.c): counted in
 * the native and aarch64 builds, always 0 in the sanitizer builds. */
long vm_krill_blocks(void);
/* Count the frees of one block krill allocated (native and aarch64 builds;
 * in the sanitizer builds the count stays 0). */
void vm_watch_free(const void *block);
long vm_watched_frees(void);
/* The count when vm_start_cfg started the VM; -1: not started that way. */
static long vm_blocks_at_start = -1;

static inline void vm_start_cfg(kr_config *cfg)
{
	vm_blocks_at_start = vm_krill_blocks();
	int rc = kr_vm_start(cfg);
	cr_assert_eq(rc, 0, "kr_vm_start: %d (%s)", rc, kr_strerror(rc));
}

static inline void vm_start(unsigned schedulers)
{
	kr_config cfg = { .schedulers = schedulers };
	vm_start_cfg(&cfg);
}

/*
 * Stop the VM, assert that no process recorded a failure, and check right
 * then that the VM left nothing behind. In ASan builds LeakSanitizer looks
 * (Criterion's test workers end without its usual exit check, so a test
 * that wants leaks found must ask); in the native and aarch64 builds, the
 * blocks krill holds must be no more than when vm_start_cfg started it
 * (a block leaked per message, per process or per binary shows). Every
 * test that stops its VM through here is a leak test of everything krill
 * allocated for it, the binaries it made from the test thread included.
 */
static inline void vm_stop(void)
{
	int rc = kr_vm_stop();
	cr_assert_eq(rc, 0, "kr_vm_stop: %d (%s)", rc, kr_strerror(rc));
	vm_assert_clean();
#if KRX_ASAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
	             "memory leaked (LeakSanitizer's report is above)");
#endif
	long at_start = vm_blocks_at_start, now = vm_krill_blocks();
	vm_blocks_at_start = -1;
	cr_assert(at_start < 0 || now <= at_start,
	          "krill leaked: it holds %ld blocks after the VM stopped, %ld before it started",
	          now, at_start);
}

static inline kr_vm_stats vm_stats(void)
{
	kr_vm_stats s;
	int rc = kr_vm_stats_get(&s);
	cr_assert_eq(rc, 0, "kr_vm_stats_get: %d", rc);
	return s;
}

/* Stats from the test thread, without asserting (for VM_WAIT conditions). */
static inline size_t vm_alive(void)
{
	kr_vm_stats s;
	return kr_vm_stats_get(&s) == 0 ? s.procs_alive : (size_t)-1;
}

static inline size_t vm_stacks(void)
{
	kr_vm_stats s;
	return kr_vm_stats_get(&s) == 0 ? s.stacks_in_use : (size_t)-1;
}

static inline void vm_fini(void)
{
	atomic_store(&vm_abort, 1);
	kr_vm_stop(); /* KR_ESTOPPED when the test already stopped it */
}

static inline kr_pid vm_spawn(kr_fn *fn, void *arg)
{
	kr_pid p = kr_spawn(fn, arg);
	cr_assert_gt(p, 0, "kr_spawn: %lld (%s)", (long long)p, kr_strerror((int)p));
	return p;
}

static inline kr_pid vm_spawn_on(kr_fn *fn, void *arg, unsigned bind)
{
	kr_spawn_opts o = { .bind_scheduler = bind };
	kr_pid p = kr_spawn_opt(fn, arg, &o);
	cr_assert_gt(p, 0, "kr_spawn_opt: %lld (%s)", (long long)p, kr_strerror((int)p));
	return p;
}

/* The scheduler the calling process runs on, or -1. */
static inline int vm_my_scheduler(void)
{
	kr_proc_info i;
	return kr_info(kr_self(), &i) == 0 ? i.scheduler : -1;
}

static inline int vm_status(kr_pid p)
{
	kr_proc_info i;
	return kr_info(p, &i) == 0 ? i.status : 0;
}

static inline size_t vm_heap(kr_pid p)
{
	kr_proc_info i;
	return kr_info(p, &i) == 0 ? i.heap_bytes : (size_t)-1;
}

static inline uint64_t vm_dead_letters(void)
{
	kr_vm_stats s;
	return kr_vm_stats_get(&s) == 0 ? s.dead_letters : UINT64_MAX;
}

/* A log hook for tests whose processes crash on purpose: reports are
 * counted, not printed. */
static atomic_int vm_reports;
static inline void vm_quiet_log(const char *line, void *ctx)
{
	(void)line;
	(void)ctx;
	atomic_fetch_add(&vm_reports, 1);
}

static inline void vm_start_quiet(unsigned schedulers)
{
	kr_config cfg = { .schedulers = schedulers, .log = vm_quiet_log };
	vm_start_cfg(&cfg);
}

/* A process that takes whatever comes until the test ends (or it is ended). */
static inline void vm_wait_forever(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, 100) == 0)
			kr_msg_free(m);
}

/* A small, fast, per-caller pseudo-random sequence. */
static inline uint32_t vm_rand(uint32_t *state)
{
	*state = *state * 1664525u + 1013904223u;
	return *state >> 8;
}

#endif
