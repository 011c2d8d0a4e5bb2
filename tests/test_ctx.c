/*
 * test_ctx.c - the context switch (sched/ctx*.{c,h,S}) on its own: registers,
 * FP state, arguments, alignment, deep stacks, many coroutines, the entry
 * trampoline's unwinding, and a coroutine that migrates between threads.
 */
#include <criterion/criterion.h>
#include <execinfo.h>
#include <fenv.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctx.h"
#include "test_util.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define NREGS 6 /* rbx rbp r12 r13 r14 r15 */
#else
#define NREGS 19 /* x19-x29, d8-d15 */
#endif

/* Assembly helpers: tests/ctx_regs_<arch>.S */
void krx_test_swap_regs(void **save, void *resume, const uint64_t *in, uint64_t *out);
uintptr_t krx_test_caller_sp(void);

/* A stack for tests, independent of the stack pool: a mapping with a
 * PROT_NONE guard page below it. */
typedef struct test_stack {
	char *map, *lo;
	size_t size;
} test_stack;

static test_stack stack_new(size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	test_stack s = { .size = size };
	s.map = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(s.map, MAP_FAILED);
	cr_assert_eq(mprotect(s.map, page, PROT_NONE), 0);
	s.lo = s.map + page;
	return s;
}

static void stack_free(test_stack *s)
{
	munmap(s->map, s->size + (size_t)sysconf(_SC_PAGESIZE));
}

/* The same sanitizer bracketing as krx_ctx_switch, around the register
 * helper instead of the bare swap. */
static void switch_with_regs(krx_ctx *from, krx_ctx *to, const uint64_t *in, uint64_t *out)
{
#if KRX_ASAN
	__sanitizer_start_switch_fiber(&from->fake_stack, to->stack_lo, to->stack_size);
#endif
#if KRX_TSAN
	__tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
	krx_test_swap_regs(&from->sp, to->sp, in, out);
#if KRX_ASAN
	__sanitizer_finish_switch_fiber(from->fake_stack, NULL, NULL);
#endif
}

static krx_ctx main_ctx, co_ctx;

/* ---- every callee-saved register survives a switch, on both sides ---- */

static uint64_t co_in[NREGS], co_out[NREGS];

static void fill(uint64_t *v, uint64_t seed)
{
	for (int i = 0; i < NREGS; i++)
		v[i] = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0x0101010101010101ull;
}

static void regs_co(void *arg)
{
	(void)arg;
	/* Clobber every callee-saved register with other values, then go back. */
	for (int round = 0; round < 3; round++) {
		fill(co_in, 1000 + (uint64_t)round);
		switch_with_regs(&co_ctx, &main_ctx, co_in, co_out);
		cr_assert_arr_eq(co_out, co_in, sizeof co_in, "coroutine registers lost, round %d", round);
	}
}

Test(ctx, callee_saved_registers_survive)
{
	test_stack s = stack_new(64 << 10);
	krx_ctx_init_thread(&main_ctx);
	krx_ctx_make(&co_ctx, s.lo, s.size, regs_co, NULL, &main_ctx);
	uint64_t in[NREGS], out[NREGS];
	for (int round = 0; round < 4; round++) {
		fill(in, 7 + (uint64_t)round);
		switch_with_regs(&main_ctx, &co_ctx, in, out);
		cr_assert_arr_eq(out, in, sizeof in, "main registers lost, round %d", round);
	}
	krx_ctx_destroy(&co_ctx);
	stack_free(&s);
}

/* ---- arguments reach the entry; returning switches to exit_to ---- */

struct args { int a; const char *s; int seen; };

static void args_co(void *arg)
{
	struct args *p = arg;
	cr_assert_eq(p->a, 42);
	cr_assert_str_eq(p->s, "krill");
	p->seen = 1;
}

Test(ctx, arguments_reach_entry_and_return_goes_to_exit_to)
{
	test_stack s = stack_new(64 << 10);
	struct args a = { 42, "krill", 0 };
	krx_ctx_init_thread(&main_ctx);
	krx_ctx_make(&co_ctx, s.lo, s.size, args_co, &a, &main_ctx);
	krx_ctx_switch(&main_ctx, &co_ctx);
	cr_assert_eq(a.seen, 1, "the entry function did not run");
	krx_ctx_destroy(&co_ctx);
	stack_free(&s);
}

/* A coroutine's end may start another: exit_to is any context. */
static krx_ctx second_ctx;
static int order[4], norder;

static void chain_first(void *arg)
{
	order[norder++] = 1;
}

static void chain_second(void *arg)
{
	order[norder++] = 2;
}

Test(ctx, a_coroutine_that_returns_may_finish_into_another)
{
	test_stack s1 = stack_new(64 << 10), s2 = stack_new(64 << 10);
	krx_ctx_init_thread(&main_ctx);
	/* The first finishes into the second, which finishes into main. */
	krx_ctx_make(&co_ctx, s1.lo, s1.size, chain_first, NULL, &second_ctx);
	krx_ctx_make(&second_ctx, s2.lo, s2.size, chain_second, NULL, &main_ctx);
	krx_ctx_switch(&main_ctx, &co_ctx);
	order[norder++] = 3;
	cr_assert_eq(norder, 3);
	cr_assert(order[0] == 1 && order[1] == 2 && order[2] == 3);
	krx_ctx_destroy(&co_ctx);
	krx_ctx_destroy(&second_ctx);
	stack_free(&s1);
	stack_free(&s2);
}

/* ---- floating point: values in registers and the control state ---- */

static volatile double sink;

static void float_co(void *arg)
{
	/* Another rounding mode here, and every FP register in use. */
	cr_assert_eq(fegetround(), FE_TONEAREST, "a fresh coroutine starts rounding to nearest");
	fesetround(FE_UPWARD);
	for (int i = 0; i < 3; i++) {
		double x[16];
		for (int j = 0; j < 16; j++)
			x[j] = (double)(i * 100 + j) * 1.25;
		sink = x[0] + x[15];
		krx_ctx_switch(&co_ctx, &main_ctx);
		cr_assert_eq(fegetround(), FE_UPWARD, "coroutine lost its rounding mode");
	}
}

Test(ctx, float_state_survives)
{
	test_stack s = stack_new(64 << 10);
	krx_ctx_init_thread(&main_ctx);
	krx_ctx_make(&co_ctx, s.lo, s.size, float_co, NULL, &main_ctx);
	fesetround(FE_TOWARDZERO);
	volatile double seed = 1.0 / 3.0;
	double a = seed * 2, b = seed * 3, c = seed * 5, d = seed * 7;
	double e = seed * 11, f = seed * 13, g = seed * 17, h = seed * 19;
	for (int i = 0; i < 4; i++) {
		krx_ctx_switch(&main_ctx, &co_ctx);
		cr_assert_eq(fegetround(), FE_TOWARDZERO, "main lost its rounding mode");
	}
	/* Live doubles across the switches, compared with fresh computations. */
	cr_assert_float_eq(a + b + c + d + e + f + g + h, seed * 77, 1e-12);
	fesetround(FE_TONEAREST);
	krx_ctx_destroy(&co_ctx);
	stack_free(&s);
}

/* ---- stack alignment at every call, as the ABI requires ---- */

static __attribute__((noinline)) int aligned_leaf(void)
{
	int ok = (krx_test_caller_sp() % 16) == 0;
	ok &= ((uintptr_t)__builtin_frame_address(0) % 16) == 0;
	_Alignas(16) float v[4] = { 1, 2, 3, 4 };
#if defined(__x86_64__)
	/* movaps faults on a misaligned address; the compiler trusts the ABI's
	 * alignment to place v, so a misaligned stack would crash here. */
	__m128 m = _mm_load_ps(v);
	_mm_store_ps(v, _mm_add_ps(m, m));
#endif
	ok &= v[3] >= 4.0f;
	return ok;
}

static __attribute__((noinline)) int aligned_nested(int depth)
{
	if (depth == 0)
		return aligned_leaf();
	char pad[24 + depth]; /* odd-sized frames on the way down */
	memset(pad, depth, sizeof pad);
	return aligned_leaf() & aligned_nested(depth - 1) & (pad[0] == (char)depth);
}

static void align_co(void *arg)
{
	int *ok = arg;
	/* The first call out of the entry function, then deeper ones. */
	*ok = aligned_leaf();
	*ok &= aligned_nested(7);
	krx_ctx_switch(&co_ctx, &main_ctx);
	*ok &= aligned_nested(5);
}

Test(ctx, stack_is_abi_aligned_at_every_call)
{
	test_stack s = stack_new(64 << 10);
	int ok = 0;
	krx_ctx_init_thread(&main_ctx);
	/* An odd top: krx_ctx_make must realign it. */
	krx_ctx_make(&co_ctx, s.lo, s.size - 24, align_co, &ok, &main_ctx);
	krx_ctx_switch(&main_ctx, &co_ctx);
	cr_assert(ok, "misaligned stack on first entry");
	krx_ctx_switch(&main_ctx, &co_ctx);
	cr_assert(ok, "misaligned stack after a resume");
	krx_ctx_destroy(&co_ctx);
	stack_free(&s);
}

/* ---- deep recursion on a coroutine stack ---- */

static __attribute__((noinline)) uint64_t deep(int n)
{
	volatile char frame[256];
	frame[0] = (char)n;
	if (n == 0)
		return 0;
	uint64_t below = deep(n - 1);
	return below + 1 + (frame[0] != (char)n); /* the frame must be intact on return */
}

static void deep_co(void *arg)
{
	uint64_t *depth = arg;
	uint64_t want = *depth;
	*depth = deep((int)want);
	krx_ctx_switch(&co_ctx, &main_ctx); /* switch with the deep pages still mapped */
	*depth += deep((int)want);
}

Test(ctx, deep_recursion_on_a_coroutine_stack)
{
	/* ~3,000 frames of >= 256 bytes: about 1 MiB deep on a 4 MiB stack. */
	test_stack s = stack_new(4 << 20);
	uint64_t depth = 3000;
	krx_ctx_init_thread(&main_ctx);
	krx_ctx_make(&co_ctx, s.lo, s.size, deep_co, &depth, &main_ctx);
	krx_ctx_switch(&main_ctx, &co_ctx);
	cr_assert_eq(depth, 3000);
	krx_ctx_switch(&main_ctx, &co_ctx);
	cr_assert_eq(depth, 6000);
	krx_ctx_destroy(&co_ctx);
	stack_free(&s);
}

/* ---- 10,000 coroutines switched round robin ---- */

#define RR_COROS KR_TEST_MIN(10000 / KR_TEST_SCALE, KR_TEST_MAX_LIVE_CTX)
#define RR_ROUNDS 5

static krx_ctx *rr_ctx;
static unsigned long rr_turn; /* which coroutine must run next */
static unsigned rr_bad;

static void rr_co(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	for (int r = 0; r < RR_ROUNDS; r++) {
		if (rr_turn != (unsigned long)r * RR_COROS + id)
			rr_bad++;
		rr_turn++;
		krx_ctx_switch(&rr_ctx[id], &main_ctx);
	}
}

Test(ctx, ten_thousand_coroutines_round_robin, .timeout = 120)
{
	size_t size = 16 << 10;
	char *mem = mmap(NULL, RR_COROS * size, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	rr_ctx = calloc(RR_COROS, sizeof *rr_ctx);
	krx_ctx_init_thread(&main_ctx);
	for (uintptr_t i = 0; i < RR_COROS; i++)
		krx_ctx_make(&rr_ctx[i], mem + i * size, size, rr_co, (void *)i, &main_ctx);
	/* RR_ROUNDS resumptions each, then one more to let each return. */
	for (int r = 0; r <= RR_ROUNDS; r++)
		for (size_t i = 0; i < RR_COROS; i++)
			krx_ctx_switch(&main_ctx, &rr_ctx[i]);
	cr_assert_eq(rr_bad, 0, "%u coroutines ran out of turn", rr_bad);
	cr_assert_eq(rr_turn, (unsigned long)RR_ROUNDS * RR_COROS);
	for (size_t i = 0; i < RR_COROS; i++)
		krx_ctx_destroy(&rr_ctx[i]);
	free(rr_ctx);
	munmap(mem, RR_COROS * size);
}

/* ---- the trampoline is the outermost frame for the unwinder ---- */

static int bt_frames;
static void *bt_last;

static __attribute__((noinline)) void bt_inner(void)
{
	void *frames[64];
	bt_frames = backtrace(frames, 64);
	bt_last = frames[bt_frames - 1];
}

static __attribute__((noinline)) void bt_co(void *arg)
{
	bt_inner();
	__asm__ volatile("" ::: "memory"); /* keep bt_inner a real call, not a tail call */
}

Test(ctx, backtrace_stops_at_the_trampoline)
{
	test_stack s = stack_new(64 << 10);
	krx_ctx_init_thread(&main_ctx);
	krx_ctx_make(&co_ctx, s.lo, s.size, bt_co, NULL, &main_ctx);
	krx_ctx_switch(&main_ctx, &co_ctx);
	/* bt_inner, bt_co, krx_ctx_entry, the trampoline: nothing beyond. */
	cr_assert(bt_frames >= 3 && bt_frames <= 8, "backtrace walked %d frames", bt_frames);
	uintptr_t off = (uintptr_t)bt_last - (uintptr_t)krx_ctx_trampoline;
	cr_assert_lt(off, 64, "the last frame is not in the trampoline (offset %zu)", (size_t)off);
	krx_ctx_destroy(&co_ctx);
	stack_free(&s);
}

/* ---- a coroutine resumed by several threads in turn ---- */

#define MIGRATIONS (2000 / KR_TEST_SCALE)

static krx_ctx *mig_back; /* the context that resumed the coroutine; mig_lock orders it */
static pthread_t mig_seen[MIGRATIONS];
static int mig_steps;

/* pthread_self() is declared const: the compiler may call it once and reuse
 * the answer after a switch, though the coroutine now runs on another thread.
 * Calling it through a volatile pointer forces a fresh read each time. */
static pthread_t (*volatile fresh_pthread_self)(void) = pthread_self;

static void mig_co(void *arg)
{
	for (int i = 0; i < MIGRATIONS; i++) {
		mig_seen[i] = fresh_pthread_self();
		mig_steps++;
		krx_ctx_switch(&co_ctx, mig_back);
	}
}

static pthread_mutex_t mig_lock = PTHREAD_MUTEX_INITIALIZER;

static void *mig_thread(void *arg)
{
	krx_ctx self;
	krx_ctx_init_thread(&self);
	for (int i = 0; i < MIGRATIONS / 2; i++) {
		/* The lock orders one thread's run of the coroutine before the next. */
		pthread_mutex_lock(&mig_lock);
		mig_back = &self;
		krx_ctx_switch(&self, &co_ctx);
		pthread_mutex_unlock(&mig_lock);
	}
	return NULL;
}

Test(ctx, coroutine_migrates_between_threads)
{
	test_stack s = stack_new(64 << 10);
	krx_ctx_init_thread(&main_ctx);
	krx_ctx_make(&co_ctx, s.lo, s.size, mig_co, NULL, &main_ctx);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, mig_thread, NULL), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(mig_steps, MIGRATIONS);
	int on0 = 0, on1 = 0;
	for (int i = 0; i < MIGRATIONS; i++) {
		on0 += pthread_equal(mig_seen[i], t[0]);
		on1 += pthread_equal(mig_seen[i], t[1]);
	}
	cr_assert_eq(on0 + on1, MIGRATIONS);
	cr_assert(on0 == MIGRATIONS / 2 && on1 == MIGRATIONS / 2, "ran %d and %d times", on0, on1);
	/* One last resumption from here lets mig_co return into main_ctx. */
	krx_ctx_switch(&main_ctx, &co_ctx);
	krx_ctx_destroy(&co_ctx);
	stack_free(&s);
}
