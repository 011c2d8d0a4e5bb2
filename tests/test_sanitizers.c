/*
 * test_sanitizers.c - the sanitizer builds see what happens on coroutine
 * stacks. A sanitizer run that reports nothing because the tool is blind to
 * coroutines would prove nothing; these tests plant a bug the tool must catch
 * and expect the process to die with the tool's exit code.
 *
 * Only the matching build runs each test: ASan (make test-asan) and TSan
 * (make test-tsan). The native and aarch64 builds have nothing to check here.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "ctx.h"

#if KRX_ASAN || KRX_TSAN
static char *map_stack(size_t size)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}
#endif

#if KRX_ASAN
static krx_ctx main_ctx;
static volatile int overflow_index = 16;

static void overflow_co(void *arg)
{
	char buf[16];
	char *volatile p = buf; /* through a pointer: UBSan's bounds check cannot see it, ASan must */
	memset(buf, 0, sizeof buf);
	p[overflow_index] = 1; /* one past the end, on a coroutine stack */
	krx_ctx_switch((krx_ctx *)arg, &main_ctx);
}

/* ASan reports and exits with status 1 (abort_on_error=0). */
Test(sanitizers, asan_catches_stack_overflow_on_a_coroutine, .exit_code = 1)
{
	size_t size = 64 << 10;
	static krx_ctx co;
	krx_ctx_init_thread(&main_ctx);
	krx_ctx_make(&co, map_stack(size), size, overflow_co, &co, &main_ctx);
	fprintf(stderr, "sanitizers: the ASan report that follows is expected\n");
	krx_ctx_switch(&main_ctx, &co);
	cr_assert_fail("ASan did not see the overflow");
}
#endif

#if KRX_TSAN
/* Two threads each run a coroutine; both coroutines write one plain variable
 * with nothing ordering the writes. TSan must report the race (exit 66). */
static int racy;
static pthread_barrier_t start;

struct racer { krx_ctx self, co; };

static void racer_co(void *arg)
{
	struct racer *r = arg;
	racy++;
	krx_ctx_switch(&r->co, &r->self);
}

static void *racer_thread(void *arg)
{
	struct racer *r = arg;
	size_t size = 64 << 10;
	krx_ctx_init_thread(&r->self);
	krx_ctx_make(&r->co, map_stack(size), size, racer_co, r, &r->self);
	pthread_barrier_wait(&start);
	krx_ctx_switch(&r->self, &r->co);
	return NULL;
}

Test(sanitizers, tsan_catches_a_race_between_coroutines, .exit_code = 66)
{
	static struct racer r[2];
	pthread_t t[2];
	pthread_barrier_init(&start, NULL, 2);
	fprintf(stderr, "sanitizers: the TSan report that follows is expected\n");
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, racer_thread, &r[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_fail("TSan did not see the race");
}
#endif
