/*
 * bench_tree.c - building a supervision tree, and shutting it down in order.
 *
 * A top supervisor with S supervisor children (default 100), each with W
 * workers (default 10): 1 + S + S*W processes (1,101). Every start is
 * synchronous, as in OTP: a supervisor starts its children one by one, each
 * reporting that it started before the next is started, and reports to its
 * own parent only once all of its children have. All strategies are
 * one_for_one, all shutdowns the defaults (5,000 ms for a worker, infinity
 * for a supervisor).
 *
 * start_ms runs from kr_sup_start_link until it returns with the whole tree
 * up; the VM's count of live processes must then have grown by exactly
 * 1 + S + S*W (checked: procs). shutdown_ms runs from the exit signal
 * (shutdown) the root sends the top, as its parent, until the VM counts
 * them all gone: each supervisor stops its children in reverse start order,
 * one at a time, waiting for each to end. Workers wait in a receive and do
 * not trap exits, so a shutdown signal ends one at once.
 *
 * The tree is built and shut down --rounds times (default 7) in one VM;
 * start_ms and shutdown_ms are the medians, start_ms_first the first round's
 * (whose stacks are all fresh pages, a cost that later rounds reuse).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "krill.h"

typedef struct tree {
	long sups, workers, rounds;
	kr_child_spec *group_specs, *worker_specs;
	char (*ids)[32]; /* the specs' ids: sups of them, then workers */
	int rc;
} tree;

static tree *tr; /* the one run */

static void worker_fn(void *arg)
{
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY) == 0)
			kr_msg_free(m);
	}
}

static void group_fn(void *arg)
{
	kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE };
	int r = kr_sup_run(&flags, tr->worker_specs, (size_t)tr->workers);
	kr_crash("kr_sup_run: %s", kr_strerror(r)); /* it returns only on error */
}

static size_t alive(void)
{
	kr_vm_stats st;
	return kr_vm_stats_get(&st) == 0 ? st.procs_alive : 0;
}

static void root_fn(void *arg)
{
	tree *t = arg;
	t->rc = 1;
	kr_vm_stats st;
	if (kr_vm_stats_get(&st) < 0)
		st.schedulers = 0;
	kr_trap_exit(1); /* the top is linked to us: its end must not be ours */
	size_t base = alive(), want = 1 + (size_t)t->sups + (size_t)(t->sups * t->workers);
	fprintf(stderr, "tree: %ld supervisors of %ld workers under one: %zu processes\n", t->sups,
		t->workers, want);
	double *start_ms = calloc((size_t)t->rounds, sizeof *start_ms);
	double *shutdown_ms = calloc((size_t)t->rounds, sizeof *shutdown_ms);
	if (!start_ms || !shutdown_ms) {
		fprintf(stderr, "krbench tree: out of memory\n");
		return;
	}
	size_t procs = 0;
	for (long round = 0; round < t->rounds; round++) {
		kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE };
		uint64_t t0 = bench_now_ns();
		kr_pid top = kr_sup_start_link(&flags, t->group_specs, (size_t)t->sups, "top");
		uint64_t t1 = bench_now_ns();
		if (top < 0) {
			fprintf(stderr, "krbench tree: starting the tree: %s\n", kr_strerror((int)top));
			return;
		}
		procs = alive() - base;
		uint64_t t2 = bench_now_ns();
		kr_exit_sig(top, KR_EXIT_SHUTDOWN);
		kr_msg *m;
		int r;
		while ((r = kr_recv_tag(&m, KR_TAG_EXIT, 5000)) == KR_ETIMEDOUT)
			fprintf(stderr, "tree: %zu processes still alive\n", alive() - base);
		if (r < 0) {
			fprintf(stderr, "krbench tree: waiting for the top to end: %s\n", kr_strerror(r));
			return;
		}
		kr_msg_free(m);
		/* The top has seen every child end; their last steps may still run. */
		for (unsigned spins = 0; alive() > base; spins++)
			spins < 1000 ? kr_yield() : kr_sleep(1);
		uint64_t t3 = bench_now_ns();
		if (procs != want) {
			fprintf(stderr, "krbench tree: %zu processes alive in the tree, expected %zu\n",
				procs, want);
			return;
		}
		start_ms[round] = (double)(t1 - t0) / 1e6;
		shutdown_ms[round] = (double)(t3 - t2) / 1e6;
		fprintf(stderr, "tree: round %ld: built in %.2f ms, shut down in %.2f ms\n", round + 1,
			start_ms[round], shutdown_ms[round]);
	}
	double first = start_ms[0];
	double start_med = bench_median(start_ms, (int)t->rounds);
	double shutdown_med = bench_median(shutdown_ms, (int)t->rounds);
	free(start_ms);
	free(shutdown_ms);
	printf("RESULT bench=tree impl=krill schedulers=%zu sups=%ld workers=%ld procs=%zu "
	       "rounds=%ld start_ms=%.3f shutdown_ms=%.3f start_ms_first=%.3f\n",
	       st.schedulers, t->sups, t->workers, procs, t->rounds, start_med, shutdown_med, first);
	printf("tree: %zu processes started in %.2f ms (%.2f us each), shut down in %.2f ms "
	       "(medians of %ld rounds; the first start: %.2f ms)\n",
	       procs, start_med, start_med * 1e3 / (double)procs, shutdown_med, t->rounds, first);
	fflush(stdout);
	t->rc = 0;
}

int bench_tree(int argc, char **argv)
{
	long sups = 100, workers = 10, rounds = 7;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--sups", .val = &sups },
				   { .name = "--workers", .val = &workers },
				   { .name = "--rounds", .val = &rounds } };
	if (bench_vm_opts(argc, argv, opts, 3, &sched) < 0)
		return 2;
	tree t = { .sups = sups, .workers = workers, .rounds = rounds,
		   .group_specs = calloc((size_t)sups, sizeof(kr_child_spec)),
		   .worker_specs = calloc((size_t)workers, sizeof(kr_child_spec)),
		   .ids = calloc((size_t)(sups + workers), sizeof *t.ids) };
	if (!t.group_specs || !t.worker_specs || !t.ids) {
		fprintf(stderr, "krbench tree: out of memory\n");
		return 1;
	}
	for (long i = 0; i < sups; i++) {
		snprintf(t.ids[i], sizeof t.ids[i], "group%ld", i);
		t.group_specs[i] = (kr_child_spec){ .id = t.ids[i], .start = group_fn, .type = KR_SUPERVISOR };
	}
	for (long i = 0; i < workers; i++) {
		snprintf(t.ids[sups + i], sizeof t.ids[0], "worker%ld", i);
		t.worker_specs[i] = (kr_child_spec){ .id = t.ids[sups + i], .start = worker_fn };
	}
	tr = &t;
	size_t procs = 1 + (size_t)sups + (size_t)(sups * workers);
	kr_config cfg = { .schedulers = sched, .max_procs = procs + 1024 > 1048576 ? procs + 1024 : 0 };
	int r = kr_main(&cfg, root_fn, &t);
	free(t.group_specs);
	free(t.worker_specs);
	free(t.ids);
	if (bench_vm_failed("tree", r))
		return 1;
	return t.rc;
}
