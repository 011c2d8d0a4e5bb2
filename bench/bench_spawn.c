/*
 * bench_spawn.c - how fast processes are made, and what a waiting one costs.
 *
 * Default: the root spawns N processes that each wait in a receive. The
 * spawn phase runs from the first kr_spawn until every process has started
 * (each bumps a counter just before its receive); then kr_info must show all
 * of them parked (KR_WAITING) before the resident set is read, so
 * bytes_per_proc = (RSS with all N parked - RSS before the first spawn) / N
 * is the whole cost of a live, idle process: its stack pages, process
 * struct, table slot and whatever else the VM keeps. Then each is sent one
 * message, and the run ends when the VM counts them all gone.
 *
 * --hibernate: the same, but each waits in kr_hibernate instead of a
 * receive (no stack while it waits), and takes its message when woken:
 * bytes_per_proc is then what a hibernating process costs.
 *
 * --short: N processes that start, send one message to the root and exit;
 * spawn_per_s covers everything, from the first spawn until all N messages
 * are in and the VM counts all N processes gone.
 */
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "krill.h"

enum { TAG_GO = 1, TAG_HI };

typedef struct spawnb {
	long procs;
	int short_lived, hibernate;
	kr_pid root;
	kr_pid *pids;
	atomic_long started, released;
	int rc;
} spawnb;

static spawnb *sb; /* the one run: the processes' argument is not needed */

static void waiter_fn(void *arg)
{
	/* relaxed: the root only counts; nothing is published through it. */
	atomic_fetch_add_explicit(&sb->started, 1, memory_order_relaxed);
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) < 0)
		return;
	kr_msg_free(m);
	atomic_fetch_add_explicit(&sb->released, 1, memory_order_relaxed);
}

static void woken_fn(void *arg)
{
	kr_msg *m;
	if (kr_recv(&m, 0) < 0)
		return;
	kr_msg_free(m);
	atomic_fetch_add_explicit(&sb->released, 1, memory_order_relaxed);
}

static void hibernator_fn(void *arg)
{
	atomic_fetch_add_explicit(&sb->started, 1, memory_order_relaxed);
	kr_hibernate(woken_fn, NULL);
}

static void short_fn(void *arg)
{
	kr_send(sb->root, TAG_HI, NULL, 0);
}

static size_t alive(void)
{
	kr_vm_stats st;
	return kr_vm_stats_get(&st) == 0 ? st.procs_alive : (size_t)-1;
}

/* Wait until no more than `base` processes are alive; 0, or -1 if the count
 * stops falling for 10 s. */
static int wait_gone(size_t base, const char *what)
{
	size_t last = alive();
	uint64_t since = bench_now_ns(), note = since;
	for (unsigned spins = 0;; spins++) {
		size_t now = alive();
		if (now <= base)
			return 0;
		uint64_t t = bench_now_ns();
		if (now != last) {
			last = now;
			since = t;
		} else if (t - since > 10000000000u) {
			fprintf(stderr, "krbench spawn: %zu processes still alive %s, none gone for 10 s\n",
				now - base, what);
			return -1;
		}
		if (t - note > 1000000000u) {
			fprintf(stderr, "spawn: %zu processes still alive %s\n", now - base, what);
			note = t;
		}
		if (spins < 100000)
			kr_yield();
		else
			kr_sleep(1);
	}
}

static int spawn_all(spawnb *s, kr_fn *fn)
{
	for (long i = 0; i < s->procs; i++) {
		kr_pid p = kr_spawn(fn, NULL);
		if (p < 0) {
			fprintf(stderr, "krbench spawn: spawning process %ld: %s\n", i, kr_strerror((int)p));
			return -1;
		}
		if (s->pids)
			s->pids[i] = p;
	}
	return 0;
}

static void run_short(spawnb *s, size_t base, unsigned sched)
{
	long n = s->procs;
	uint64_t t0 = bench_now_ns();
	if (spawn_all(s, short_fn) < 0)
		return;
	uint64_t t_spawned = bench_now_ns();
	for (long got = 0; got < n;) {
		kr_msg *m;
		int r = kr_recv_tag(&m, TAG_HI, 2000);
		if (r == KR_ETIMEDOUT) {
			fprintf(stderr, "spawn: %ld/%ld messages in\n", got, n);
			continue;
		}
		if (r < 0) {
			fprintf(stderr, "krbench spawn: receiving: %s\n", kr_strerror(r));
			return;
		}
		kr_msg_free(m);
		got++;
	}
	uint64_t t_msgs = bench_now_ns();
	if (wait_gone(base, "after sending") < 0)
		return;
	uint64_t t_end = bench_now_ns();
	double secs = (double)(t_end - t0) / 1e9;
	printf("RESULT bench=spawn impl=krill schedulers=%u mode=short procs=%ld spawn_per_s=%.0f "
	       "secs=%.4f\n",
	       sched, n, (double)n / secs, secs);
	printf("spawn --short: %ld processes spawned, run and gone in %.3f s: %.0f per second "
	       "(spawn calls done at %.3f s, all messages in at %.3f s)\n",
	       n, secs, (double)n / secs, (double)(t_spawned - t0) / 1e9, (double)(t_msgs - t0) / 1e9);
	fflush(stdout);
	s->rc = 0;
}

/* Every pid in KR_WAITING; 0, or -1 if that does not happen within 10 s. */
static int wait_parked(spawnb *s)
{
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < s->procs; i++) {
		kr_proc_info info;
		/* kr_info costs no reductions: yield now and then, or a sweep of
		 * a million pids runs long enough to set off the watchdog. */
		if ((i & 1023) == 1023)
			kr_yield();
		for (;;) {
			int r = kr_info(s->pids[i], &info);
			if (r < 0) {
				fprintf(stderr, "krbench spawn: kr_info of waiting process %ld: %s\n", i,
					kr_strerror(r));
				return -1;
			}
			if (info.status == KR_WAITING)
				break;
			if (bench_now_ns() - t0 > 10000000000u) {
				fprintf(stderr, "krbench spawn: process %ld still not parked (status %d) after 10 s\n",
					i, info.status);
				return -1;
			}
			kr_yield();
		}
	}
	return 0;
}

static void run_waiting(spawnb *s, size_t base, unsigned sched)
{
	long n = s->procs;
	long rss0 = bench_rss_bytes();
	uint64_t t0 = bench_now_ns();
	if (spawn_all(s, s->hibernate ? hibernator_fn : waiter_fn) < 0)
		return;
	uint64_t t_spawned = bench_now_ns(), note = t_spawned;
	fprintf(stderr, "spawn: %ld spawn calls in %.3f s, %ld started by then\n", n,
		(double)(t_spawned - t0) / 1e9, atomic_load_explicit(&s->started, memory_order_relaxed));
	for (unsigned spins = 0; atomic_load_explicit(&s->started, memory_order_relaxed) < n; spins++) {
		uint64_t t = bench_now_ns();
		if (t - note > 1000000000u) {
			fprintf(stderr, "spawn: %ld/%ld started\n",
				atomic_load_explicit(&s->started, memory_order_relaxed), n);
			note = t;
		}
		if (t - t_spawned > 60000000000u) {
			fprintf(stderr, "krbench spawn: only %ld of %ld processes started within 60 s\n",
				atomic_load_explicit(&s->started, memory_order_relaxed), n);
			return;
		}
		if (spins < 100000)
			kr_yield();
		else
			kr_sleep(1);
	}
	uint64_t t_started = bench_now_ns();
	if (wait_parked(s) < 0)
		return;
	long rss1 = bench_rss_bytes();
	double secs = (double)(t_started - t0) / 1e9;
	fprintf(stderr, "spawn: all %ld started and parked; releasing them\n", n);

	uint64_t t1 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		int r = kr_send(s->pids[i], TAG_GO, NULL, 0);
		if (r < 0) {
			fprintf(stderr, "krbench spawn: releasing process %ld: %s\n", i, kr_strerror(r));
			return;
		}
	}
	if (wait_gone(base, "after release") < 0)
		return;
	uint64_t t_gone = bench_now_ns();
	long released = atomic_load_explicit(&s->released, memory_order_relaxed);
	if (released != n) {
		fprintf(stderr, "krbench spawn: %ld of %ld processes got their message\n", released, n);
		return;
	}
	if (rss0 < 0 || rss1 < 0) {
		fprintf(stderr, "krbench spawn: cannot read /proc/self/statm\n");
		return;
	}
	double per = (double)(rss1 - rss0) / (double)n;
	struct rusage ru;
	long peak_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
	printf("RESULT bench=spawn impl=krill schedulers=%u mode=%s procs=%ld spawn_per_s=%.0f "
	       "bytes_per_proc=%.0f release_per_s=%.0f secs=%.4f peak_rss_kb=%ld\n",
	       sched, s->hibernate ? "hibernate" : "wait", n, (double)n / secs, per,
	       (double)n / ((double)(t_gone - t1) / 1e9), secs, peak_kb);
	printf("spawn: %ld processes started and waiting in %.3f s (%.0f per second; spawn calls "
	       "alone %.0f per second); %.0f bytes resident each; released and gone in %.3f s\n",
	       n, secs, (double)n / secs, (double)n / ((double)(t_spawned - t0) / 1e9), per,
	       (double)(t_gone - t1) / 1e9);
	fflush(stdout);
	s->rc = 0;
}

static void root_fn(void *arg)
{
	spawnb *s = arg;
	s->rc = 1;
	s->root = kr_self();
	kr_vm_stats st;
	if (kr_vm_stats_get(&st) < 0) {
		fprintf(stderr, "krbench spawn: kr_vm_stats_get failed\n");
		return;
	}
	fprintf(stderr, "spawn: %ld processes%s\n", s->procs, s->short_lived ? ", short-lived" : "");
	if (s->short_lived)
		run_short(s, st.procs_alive, (unsigned)st.schedulers);
	else
		run_waiting(s, st.procs_alive, (unsigned)st.schedulers);
}

int bench_spawn(int argc, char **argv)
{
	long procs = 1000000, short_lived = 0, hibernate = 0;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--procs", .val = &procs },
				   { .name = "--short", .val = &short_lived, .flag = 1 },
				   { .name = "--hibernate", .val = &hibernate, .flag = 1 } };
	if (bench_vm_opts(argc, argv, opts, 3, &sched) < 0)
		return 2;
	if (short_lived && hibernate) {
		fprintf(stderr, "krbench spawn: --short or --hibernate, not both\n");
		return 2;
	}
	spawnb s = { .procs = procs, .short_lived = (int)short_lived, .hibernate = (int)hibernate };
	if (!short_lived) {
		/* Allocated and touched now, so it is in the RSS baseline. */
		s.pids = malloc((size_t)procs * sizeof(kr_pid));
		if (!s.pids) {
			fprintf(stderr, "krbench spawn: out of memory\n");
			return 1;
		}
		memset(s.pids, 0, (size_t)procs * sizeof(kr_pid));
	}
	sb = &s;
	kr_config cfg = { .schedulers = sched,
			  .max_procs = (size_t)procs + 1024 > 1048576 ? (size_t)procs + 1024 : 0 };
	int r = kr_main(&cfg, root_fn, &s);
	free(s.pids);
	if (bench_vm_failed("spawn", r))
		return 1;
	return s.rc;
}
