/*
 * bench_ring.c - a token passed round a ring of N processes R times.
 *
 * The token carries the number of hops still to make: the root sends it in
 * with N*R - 1, each process forwards it to the next with one less, and the
 * process that receives 0 tells the root. That is exactly N*R messages, and
 * the last one must land on the ring's last process (checked). One lap is
 * run first, untimed, to start every process and fault its stack in.
 *
 * The processes are not bound: where they run, and whether the token stays
 * on one core, is the scheduler's business, and part of what is measured.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "krill.h"

enum { TAG_NEXT = 1, TAG_TOKEN, TAG_DONE, TAG_STOP };

typedef struct ring {
	long procs, rounds;
	kr_pid root;
	kr_pid *pids;
	int rc;
} ring;

static void node_fn(void *arg)
{
	ring *rg = arg;
	kr_msg *m;
	kr_pid next;
	if (kr_recv_tag(&m, TAG_NEXT, KR_INFINITY) < 0)
		return;
	memcpy(&next, m->data, sizeof next);
	kr_msg_free(m);
	for (;;) {
		if (kr_recv(&m, KR_INFINITY) < 0)
			return;
		uint64_t left;
		int tag = (int)m->tag;
		if (tag == TAG_TOKEN)
			memcpy(&left, m->data, sizeof left);
		kr_msg_free(m);
		if (tag == TAG_STOP)
			return;
		if (tag != TAG_TOKEN)
			continue;
		if (left == 0) {
			kr_send(rg->root, TAG_DONE, NULL, 0);
			continue;
		}
		left--;
		kr_send(next, TAG_TOKEN, &left, sizeof left);
	}
}

/* Send the token round `laps` times; 0, or -1 after saying what went wrong. */
static int run_laps(ring *rg, long laps)
{
	uint64_t left = (uint64_t)rg->procs * (uint64_t)laps - 1;
	int r = kr_send(rg->pids[0], TAG_TOKEN, &left, sizeof left);
	if (r < 0) {
		fprintf(stderr, "krbench ring: sending the token: %s\n", kr_strerror(r));
		return -1;
	}
	uint64_t t0 = bench_now_ns();
	for (;;) {
		kr_msg *m;
		r = kr_recv_tag(&m, TAG_DONE, 2000);
		if (r == KR_ETIMEDOUT) {
			fprintf(stderr, "ring: token still going after %.0f s\n",
				(double)(bench_now_ns() - t0) / 1e9);
			continue;
		}
		if (r < 0) {
			fprintf(stderr, "krbench ring: waiting for the token: %s\n", kr_strerror(r));
			return -1;
		}
		kr_pid from = m->sender;
		kr_msg_free(m);
		if (from != rg->pids[rg->procs - 1]) {
			fprintf(stderr, "krbench ring: the token ended at the wrong process\n");
			return -1;
		}
		return 0;
	}
}

static void root_fn(void *arg)
{
	ring *rg = arg;
	long n = rg->procs;
	rg->rc = 1;
	rg->root = kr_self();
	kr_vm_stats st;
	if (kr_vm_stats_get(&st) < 0)
		st.schedulers = 0;
	for (long i = 0; i < n; i++) {
		rg->pids[i] = kr_spawn(node_fn, rg);
		if (rg->pids[i] < 0) {
			fprintf(stderr, "krbench ring: spawning process %ld: %s\n", i,
				kr_strerror((int)rg->pids[i]));
			return;
		}
	}
	for (long i = 0; i < n; i++) {
		kr_pid next = rg->pids[(i + 1) % n];
		int r = kr_send(rg->pids[i], TAG_NEXT, &next, sizeof next);
		if (r < 0) {
			fprintf(stderr, "krbench ring: linking the ring: %s\n", kr_strerror(r));
			return;
		}
	}
	fprintf(stderr, "ring: %ld processes, %ld laps\n", n, rg->rounds);
	bench_observer_start();
	if (run_laps(rg, 1) < 0)
		return;
	uint64_t t0 = bench_now_ns();
	if (run_laps(rg, rg->rounds) < 0)
		return;
	uint64_t ns = bench_now_ns() - t0;
	double msgs = (double)n * (double)rg->rounds;
	for (long i = 0; i < n; i++)
		kr_send(rg->pids[i], TAG_STOP, NULL, 0);
	printf("RESULT bench=ring impl=krill schedulers=%zu procs=%ld rounds=%ld ns_per_msg=%.2f "
	       "secs=%.4f\n",
	       st.schedulers, n, rg->rounds, (double)ns / msgs, (double)ns / 1e9);
	printf("ring: %.0f messages round %ld processes in %.3f s: %.2f ns per message\n", msgs, n,
	       (double)ns / 1e9, (double)ns / msgs);
	fflush(stdout);
	bench_observer_stop();
	rg->rc = 0;
}

int bench_ring(int argc, char **argv)
{
	long procs = 1000, rounds = 1000;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--procs", .val = &procs },
				   { .name = "--rounds", .val = &rounds } };
	if (bench_vm_opts(argc, argv, opts, 2, &sched) < 0)
		return 2;
	ring rg = { .procs = procs, .rounds = rounds, .pids = calloc((size_t)procs, sizeof(kr_pid)) };
	if (!rg.pids) {
		fprintf(stderr, "krbench ring: out of memory\n");
		return 1;
	}
	kr_config cfg = { .schedulers = sched, .max_procs = (size_t)procs + 16 > 1048576 ? (size_t)procs + 16 : 0 };
	int r = kr_main(&cfg, root_fn, &rg);
	free(rg.pids);
	if (bench_vm_failed("ring", r))
		return 1;
	return rg.rc;
}
