/*
 * coroutines.c - the layer under krill's processes: stackful coroutines.
 *
 * krill runs every process on a coroutine: a stack of its own from the stack
 * pool (sched/stack.c) and a hand-written context switch (sched/ctx_*.S).
 * This program drives that layer by hand, with no scheduler, to show what a
 * switch is: a generator that hands values to its caller one at a time, and
 * three coroutines taking turns. Processes, mailboxes and supervisors are
 * built on exactly this.
 *
 * (It uses krill's internal headers; programs normally use only krill.h.)
 */
#include <stdio.h>

#include "ctx.h"
#include "stack.h"

static krx_ctx main_ctx;

/* A generator: yields Fibonacci numbers through a shared slot. */
static krx_ctx gen_ctx;
static unsigned long long gen_value;

static void fibonacci(void *arg)
{
	unsigned long long a = 0, b = 1;
	for (;;) {
		gen_value = a;
		krx_ctx_switch(&gen_ctx, &main_ctx); /* "yield a" */
		unsigned long long next = a + b;
		a = b;
		b = next;
	}
}

/* Three workers that take turns: each runs a step, then passes control. */
#define WORKERS 3
static krx_ctx worker_ctx[WORKERS];

static void worker(void *arg)
{
	long id = (long)arg;
	for (int step = 1; step <= 3; step++) {
		printf("  worker %ld: step %d on its own stack (local at %p)\n", id, step, (void *)&step);
		/* Hand over to the next worker, or back to main after the last one. */
		krx_ctx_switch(&worker_ctx[id], id + 1 < WORKERS ? &worker_ctx[id + 1] : &main_ctx);
	}
	printf("  worker %ld: done, returning (its context switches to main)\n", id);
}

int main(void)
{
	krx_stack_pool pool;
	if (krx_stack_pool_init(&pool, &(krx_stack_opts){ 0 }) != 0) {
		fprintf(stderr, "coroutines: cannot reserve stacks\n");
		return 1;
	}
	krx_stack_stats st;
	krx_stack_pool_stats(&pool, &st);
	printf("stack pool: 64 KiB stacks, guard protection: %s\n", krx_guard_kind_name(st.best));

	krx_ctx_init_thread(&main_ctx);
	krx_stack *gs = krx_stack_get(&pool, NULL);
	krx_ctx_make(&gen_ctx, gs->lo, (size_t)(gs->hi - gs->lo), fibonacci, NULL, &main_ctx);
	printf("generator:");
	for (int i = 0; i < 15; i++) {
		krx_ctx_switch(&main_ctx, &gen_ctx); /* "next()" */
		printf(" %llu", gen_value);
	}
	printf("\n");

	printf("round robin:\n");
	krx_stack *ws[WORKERS];
	for (long i = 0; i < WORKERS; i++) {
		ws[i] = krx_stack_get(&pool, NULL);
		krx_ctx_make(&worker_ctx[i], ws[i]->lo, (size_t)(ws[i]->hi - ws[i]->lo), worker,
		             (void *)i, &main_ctx);
	}
	/* Each round starts at worker 0; the last worker switches back here.
	 * The fourth round lets them finish: each returns into main in turn. */
	for (int round = 0; round < 3; round++)
		krx_ctx_switch(&main_ctx, &worker_ctx[0]);
	for (int i = 0; i < WORKERS; i++)
		krx_ctx_switch(&main_ctx, &worker_ctx[i]);

	for (int i = 0; i < WORKERS; i++) {
		krx_ctx_destroy(&worker_ctx[i]);
		krx_stack_put(&pool, NULL, ws[i]);
	}
	krx_ctx_destroy(&gen_ctx);
	krx_stack_put(&pool, NULL, gs);
	krx_stack_pool_destroy(&pool);
	return 0;
}
