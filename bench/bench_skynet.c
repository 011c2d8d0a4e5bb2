/*
 * bench_skynet.c - the skynet benchmark: a 10-ary tree of 1,111,111
 * processes, six levels below the root. Each leaf sends its index to its
 * parent; each parent sums its ten children's answers and sends the sum up.
 * The sum of 0..999,999 is 499,999,500,000.
 *
 * Each answer also carries how many processes its subtree spawned, counted
 * by the spawning parents, so procs is what was really created (and it is
 * checked against the VM's own procs_spawned counter).
 *
 * A parent hands its children their arguments in an array on its own stack:
 * it outlives them (it waits for all ten answers) and each child copies its
 * argument before doing anything else.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "krill.h"

#define SKYNET_SIZE 1000000u  /* leaves */
#define SKYNET_PROCS 1111111u /* 1 + 10 + ... + 10^6 */
#define SKYNET_SUM 499999500000u

enum { TAG_ANSWER = 1 };

typedef struct sky_arg {
	uint64_t num, size;
	kr_pid parent;
} sky_arg;

typedef struct sky_answer {
	uint64_t sum, procs, errors;
} sky_answer;

static void node_fn(void *arg)
{
	sky_arg a = *(const sky_arg *)arg;
	sky_answer ans = { .sum = a.num, .procs = 0, .errors = 0 };
	if (a.size > 1) {
		sky_arg kids[10];
		kr_pid self = kr_self();
		uint64_t step = a.size / 10;
		int spawned = 0;
		ans.sum = 0;
		for (int i = 0; i < 10; i++) {
			kids[i] = (sky_arg){ .num = a.num + (uint64_t)i * step, .size = step, .parent = self };
			if (kr_spawn(node_fn, &kids[i]) < 0) {
				ans.errors++;
				continue;
			}
			spawned++;
			ans.procs++;
		}
		for (int i = 0; i < spawned; i++) {
			kr_msg *m;
			if (kr_recv(&m, KR_INFINITY) < 0) {
				ans.errors++;
				break;
			}
			sky_answer c;
			if (m->len == sizeof c) {
				memcpy(&c, m->data, sizeof c);
				ans.sum += c.sum;
				ans.procs += c.procs;
				ans.errors += c.errors;
			} else {
				ans.errors++;
			}
			kr_msg_free(m);
		}
	}
	kr_send(a.parent, TAG_ANSWER, &ans, sizeof ans);
}

typedef struct skynet {
	int rc;
} skynet;

static void root_fn(void *arg)
{
	skynet *sk = arg;
	sk->rc = 1;
	kr_vm_stats st0, st1;
	if (kr_vm_stats_get(&st0) < 0) {
		fprintf(stderr, "krbench skynet: kr_vm_stats_get failed\n");
		return;
	}
	sky_arg top = { .num = 0, .size = SKYNET_SIZE, .parent = kr_self() };
	fprintf(stderr, "skynet: %u processes\n", SKYNET_PROCS);
	uint64_t t0 = bench_now_ns();
	kr_pid p = kr_spawn(node_fn, &top);
	if (p < 0) {
		fprintf(stderr, "krbench skynet: spawning the top: %s\n", kr_strerror((int)p));
		return;
	}
	kr_msg *m;
	for (;;) {
		int r = kr_recv_tag(&m, TAG_ANSWER, 2000);
		if (r == 0)
			break;
		if (r != KR_ETIMEDOUT) {
			fprintf(stderr, "krbench skynet: waiting for the answer: %s\n", kr_strerror(r));
			return;
		}
		kr_vm_stats s;
		if (kr_vm_stats_get(&s) == 0)
			fprintf(stderr, "skynet: still running after %.0f s: %" PRIu64 " spawned, %zu alive\n",
				(double)(bench_now_ns() - t0) / 1e9, s.procs_spawned - st0.procs_spawned,
				s.procs_alive);
	}
	uint64_t ns = bench_now_ns() - t0;
	sky_answer ans;
	if (m->len != sizeof ans) {
		fprintf(stderr, "krbench skynet: a malformed answer\n");
		return;
	}
	memcpy(&ans, m->data, sizeof ans);
	kr_msg_free(m);
	ans.procs++; /* the top itself */
	if (kr_vm_stats_get(&st1) < 0)
		st1 = st0;
	uint64_t vm_spawned = st1.procs_spawned - st0.procs_spawned;
	printf("skynet: %" PRIu64 " processes summed to %" PRIu64 " in %.3f s (%.0f ns per process); "
	       "the VM counted %" PRIu64 " spawns\n",
	       ans.procs, ans.sum, (double)ns / 1e9, (double)ns / (double)ans.procs, vm_spawned);
	fflush(stdout);
	if (ans.errors) {
		fprintf(stderr, "krbench skynet: %" PRIu64 " spawns or receives failed\n", ans.errors);
		return;
	}
	if (ans.sum != SKYNET_SUM || ans.procs != SKYNET_PROCS) {
		fprintf(stderr, "krbench skynet: wrong result: sum %" PRIu64 " (want %" PRIu64
			"), procs %" PRIu64 " (want %u)\n",
			ans.sum, (uint64_t)SKYNET_SUM, ans.procs, SKYNET_PROCS);
		return;
	}
	if (vm_spawned != SKYNET_PROCS) {
		fprintf(stderr, "krbench skynet: the VM's procs_spawned went up by %" PRIu64 ", not %u\n",
			vm_spawned, SKYNET_PROCS);
		return;
	}
	printf("RESULT bench=skynet impl=krill schedulers=%zu secs=%.4f sum=%" PRIu64 " procs=%" PRIu64
	       "\n",
	       st0.schedulers, (double)ns / 1e9, ans.sum, ans.procs);
	fflush(stdout);
	sk->rc = 0;
}

int bench_skynet(int argc, char **argv)
{
	unsigned sched;
	if (bench_vm_opts(argc, argv, NULL, 0, &sched) < 0)
		return 2;
	skynet sk = { 0 };
	/* Up to all 1.1 M processes may be alive at once. */
	kr_config cfg = { .schedulers = sched, .max_procs = 2000000 };
	int r = kr_main(&cfg, root_fn, &sk);
	if (bench_vm_failed("skynet", r))
		return 1;
	return sk.rc;
}
