/*
 * bench_ctx.c - the cost of one context switch, krill's against glibc's
 * swapcontext, measured side by side in one run (alternating runs, so both
 * see the same machine noise), medians reported.
 *
 * A switch here is one direction: main -> coroutine or coroutine -> main.
 * Both sides switch through an ordinary C call, the path a scheduler takes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "bench.h"
#include "ctx.h"
#include "stack.h"

static krx_ctx k_main, k_co;

static void k_loop(void *arg)
{
	for (;;)
		krx_ctx_switch(&k_co, &k_main);
}

static double run_krill(long rounds)
{
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < rounds; i++)
		krx_ctx_switch(&k_main, &k_co);
	return (double)(bench_now_ns() - t0) / (double)(2 * rounds);
}

static ucontext_t u_main, u_co;

static void u_loop(void)
{
	for (;;)
		swapcontext(&u_co, &u_main);
}

static double run_ucontext(long rounds)
{
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < rounds; i++)
		swapcontext(&u_main, &u_co);
	return (double)(bench_now_ns() - t0) / (double)(2 * rounds);
}

int bench_ctx(int argc, char **argv)
{
	static const char *const names[] = { "--switches", "--runs" };
	long opt[] = { 20000000, 7 };
	if (bench_opts(argc, argv, names, opt, 2) < 0)
		return 2;
	long k_rounds = opt[0] / 2, runs = opt[1];
	/* swapcontext makes a syscall per switch: give it fewer, so that each
	 * run takes about as long as krill's. */
	long u_rounds = k_rounds / 100 > 1000 ? k_rounds / 100 : 1000;

	krx_stack_pool pool;
	if (krx_stack_pool_init(&pool, &(krx_stack_opts){ 0 }) != 0) {
		fprintf(stderr, "krbench ctx: cannot reserve stacks\n");
		return 1;
	}
	krx_stack *ks = krx_stack_get(&pool, NULL), *us = krx_stack_get(&pool, NULL);
	krx_ctx_init_thread(&k_main);
	krx_ctx_make(&k_co, ks->lo, (size_t)(ks->hi - ks->lo), k_loop, NULL, &k_main);
	getcontext(&u_co);
	u_co.uc_stack.ss_sp = us->lo;
	u_co.uc_stack.ss_size = (size_t)(us->hi - us->lo);
	u_co.uc_link = NULL;
	makecontext(&u_co, u_loop, 0);

	run_krill(k_rounds / 10); /* warm up: fault the stacks in, train predictors */
	run_ucontext(u_rounds / 10);
	double *kv = calloc((size_t)runs, sizeof *kv), *uv = calloc((size_t)runs, sizeof *uv);
	for (long r = 0; r < runs; r++) {
		kv[r] = run_krill(k_rounds);
		uv[r] = run_ucontext(u_rounds);
		fprintf(stderr, "\rctx: run %ld/%ld", r + 1, runs);
	}
	fprintf(stderr, "\n");
	double k = bench_median(kv, (int)runs), u = bench_median(uv, (int)runs);
	printf("RESULT bench=ctx impl=krill switches=%ld runs=%ld ns_per_switch=%.2f\n",
	       2 * k_rounds, runs, k);
	printf("RESULT bench=ctx impl=ucontext switches=%ld runs=%ld ns_per_switch=%.2f\n",
	       2 * u_rounds, runs, u);
	printf("ctx: krill %.2f ns/switch, swapcontext %.1f ns/switch: krill %.0fx faster "
	       "(medians of %ld runs)\n", k, u, u / k, runs);
	free(kv);
	free(uv);
	/* The coroutines loop forever: they are simply abandoned. */
	krx_ctx_destroy(&k_co);
	krx_stack_put(&pool, NULL, ks);
	krx_stack_put(&pool, NULL, us);
	krx_stack_pool_destroy(&pool);
	return 0;
}
