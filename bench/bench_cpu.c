/*
 * bench_cpu.c - CPU-bound jobs as supervised processes: how well they spread
 * over the schedulers, and what running them as processes costs.
 *
 * A job is a naive fib(W) (default fib(27): 635,621 calls). The coordinator
 * starts a simple_one_for_one supervisor whose template is a transient
 * worker, starts N workers under it (kr_sup_start_child, each a synchronous
 * start), sends each its job (W, in a message) and collects the N results,
 * checking every one. secs runs from the supervisor's start to the last
 * result. The VM is started anew for each run, in one invocation: with one
 * scheduler (secs_1) and with --schedulers N (secs_n; all online CPUs by
 * default), and speedup = secs_1 / secs_n.
 *
 * plain_secs is the same N fib(W) called in a plain loop on the main
 * thread, outside any VM, by a function with no check in it; overhead_pct
 * = (secs_1 / plain_secs - 1) * 100 is what doing the jobs as supervised
 * processes on one scheduler costs: the reduction checks, the starts, the
 * messages, the switches. On a shared machine the other tenants decide how
 * much of a second core there is to have, so the same plain loops are also
 * run split over N threads: machine_speedup = plain_secs / plain_n_secs is
 * the ceiling for secs_1 / secs_n at that moment. The four runs are
 * repeated --reps times (default 3), interleaved so that they all see the
 * same machine, and each figure is the median of its runs.
 *
 * Where the reduction check goes. A job must call KR_CHECK() now and then,
 * or it would hold its scheduler for its whole run. On every call of a
 * function as small as fib it costs much of the function (a thread-local
 * decrement and a branch, against a call and an add), and a guard such as
 * `if (n >= T) KR_CHECK();` inside the one function still keeps gcc from
 * turning one of the two recursive calls into a loop. What costs nothing
 * measurable is a check at the top of the recursion only: fib_checked(n)
 * checks and recurses while n >= check_from (default 12) and hands smaller
 * arguments to the unchecked function, the very one the plain loop runs.
 * That is 2,583 checks in a fib(27), one per ~250 calls, so a scheduler's
 * budget of 4,000 reductions lasts about one and a half jobs.
 * --check-from 1 checks on (almost) every call, to see what that costs.
 *
 * Why the jobs come by message, after all the workers have started: a
 * worker that goes to work as soon as it has started holds its supervisor
 * hostage. Its start report wakes the supervisor into its scheduler's LIFO
 * slot, which other schedulers never steal from, so the supervisor, and so
 * the coordinator's next start, waits until the worker's budget is spent:
 * here, after its whole job. --at-start runs the jobs that way, to see it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "krill.h"

enum { TAG_JOB = 1, TAG_RESULT };

typedef struct cpu_run {
	long jobs, work, check_from;
	long at_start;     /* workers work as soon as they start, unasked */
	long expect;       /* fib(work), from the plain loop */
	kr_pid coord;
	kr_pid *pids;      /* per job: its worker */
	unsigned char *seen; /* per job: its result came in */
	double secs;       /* of the last VM run */
	int rc;
} cpu_run;

static cpu_run *cr; /* the one run: a worker's argument is its job's index */

/* noinline: the plain loop and the workers run this very code. */
__attribute__((noinline)) static long fib_plain(long n)
{
	return n < 2 ? n : fib_plain(n - 1) + fib_plain(n - 2);
}

static long fib_checked(long n, long check_from)
{
	if (n < check_from)
		return fib_plain(n);
	KR_CHECK();
	return n < 2 ? n : fib_checked(n - 1, check_from) + fib_checked(n - 2, check_from);
}

static void worker_fn(void *arg)
{
	kr_msg *m;
	long w = cr->work;
	if (!cr->at_start) {
		if (kr_recv_tag(&m, TAG_JOB, KR_INFINITY) < 0 || m->len != sizeof w)
			kr_crash("no job");
		memcpy(&w, m->data, sizeof w);
		kr_msg_free(m);
	}
	uint64_t msg[2] = { (uintptr_t)arg, (uint64_t)fib_checked(w, cr->check_from) };
	kr_send(cr->coord, TAG_RESULT, msg, sizeof msg);
}

/* Take the N results; 0, or -1 after saying what was wrong. */
static int collect(cpu_run *c)
{
	uint64_t note = bench_now_ns();
	for (long got = 0; got < c->jobs;) {
		kr_msg *m;
		int r = kr_recv_tag(&m, TAG_RESULT, 1000);
		if (bench_now_ns() - note > 1000000000u) {
			fprintf(stderr, "cpu: %ld/%ld results in\n", got, c->jobs);
			note = bench_now_ns();
		}
		if (r == KR_ETIMEDOUT)
			continue;
		if (r < 0) {
			fprintf(stderr, "krbench cpu: receiving results: %s\n", kr_strerror(r));
			return -1;
		}
		uint64_t res[2];
		int ok = m->len == sizeof res;
		if (ok)
			memcpy(res, m->data, sizeof res);
		kr_msg_free(m);
		if (!ok || res[0] >= (uint64_t)c->jobs || c->seen[res[0]] || res[1] != (uint64_t)c->expect) {
			fprintf(stderr, "krbench cpu: a wrong or repeated result\n");
			return -1;
		}
		c->seen[res[0]] = 1;
		got++;
	}
	return 0;
}

static void coord_fn(void *arg)
{
	cpu_run *c = arg;
	c->rc = 1;
	c->coord = kr_self();
	memset(c->seen, 0, (size_t)c->jobs);
	/* The supervisor is linked to us: its end must not be ours. */
	kr_trap_exit(1);
	kr_child_spec tmpl = { .id = "job", .start = worker_fn, .restart = KR_TRANSIENT };
	kr_sup_flags flags = { .strategy = KR_SIMPLE_ONE_FOR_ONE };
	uint64_t t0 = bench_now_ns();
	kr_pid sup = kr_sup_start_link(&flags, &tmpl, 1, "jobs");
	if (sup < 0) {
		fprintf(stderr, "krbench cpu: starting the supervisor: %s\n", kr_strerror((int)sup));
		return;
	}
	for (long i = 0; i < c->jobs; i++) {
		c->pids[i] = kr_sup_start_child(sup, NULL, (void *)(uintptr_t)i);
		if (c->pids[i] < 0) {
			fprintf(stderr, "krbench cpu: starting worker %ld: %s\n", i,
				kr_strerror((int)c->pids[i]));
			return;
		}
	}
	for (long i = 0; i < c->jobs && !c->at_start; i++)
		kr_send(c->pids[i], TAG_JOB, &c->work, sizeof c->work);
	if (collect(c) < 0)
		return;
	c->secs = (double)(bench_now_ns() - t0) / 1e9;
	/* Every worker has ended normally (transient: not restarted); stop the
	 * supervisor, as its parent, and wait for it. */
	kr_exit_sig(sup, KR_EXIT_SHUTDOWN);
	for (;;) {
		kr_msg *m;
		int r = kr_recv_tag(&m, KR_TAG_EXIT, 10000);
		if (r < 0) {
			fprintf(stderr, "krbench cpu: the supervisor did not stop: %s\n", kr_strerror(r));
			return;
		}
		kr_pid from = kr_msg_exit(m)->from;
		kr_msg_free(m);
		if (from == sup)
			break;
	}
	c->rc = 0;
}

/* One VM run with `sched` schedulers; its time, or a negative value. */
static double vm_run(cpu_run *c, unsigned sched)
{
	kr_config cfg = { .schedulers = sched };
	int r = kr_main(&cfg, coord_fn, c);
	if (bench_vm_failed("cpu", r) || c->rc)
		return -1;
	fprintf(stderr, "cpu: %ld jobs on %u scheduler(s): %.3f s\n", c->jobs, bench_schedulers(sched),
		c->secs);
	return c->secs;
}

/* A share of the plain runs: `jobs` calls of fib_plain(work). */
typedef struct plain_share {
	long jobs, work, result;
} plain_share;

static void *plain_loop(void *arg)
{
	plain_share *p = arg;
	/* The work is read through a volatile each time, so the compiler cannot
	 * see that the calls are all the same one and make one call of them. */
	volatile long w = p->work;
	for (long i = 0; i < p->jobs; i++)
		p->result = fib_plain(w);
	return NULL;
}

/* The N jobs in plain loops, without krill: on this thread alone, or split
 * over `threads` threads (what the machine gives two threads at the moment
 * is the ceiling for any scheduler's speedup). Their time, or -1. */
static double plain_run(cpu_run *c, unsigned threads)
{
	plain_share *sh = calloc(threads, sizeof *sh);
	pthread_t *tid = calloc(threads, sizeof *tid);
	double secs = -1;
	if (!sh || !tid)
		goto out;
	for (unsigned i = 0; i < threads; i++)
		sh[i] = (plain_share){ .jobs = c->jobs / threads + (i < c->jobs % threads), .work = c->work };
	uint64_t t0 = bench_now_ns();
	if (threads == 1) {
		plain_loop(sh);
	} else {
		unsigned i = 0;
		while (i < threads && pthread_create(&tid[i], NULL, plain_loop, &sh[i]) == 0)
			i++;
		for (unsigned j = 0; j < i; j++)
			pthread_join(tid[j], NULL);
		if (i < threads)
			goto out;
	}
	secs = (double)(bench_now_ns() - t0) / 1e9;
	c->expect = sh[0].result;
	fprintf(stderr, "cpu: %ld jobs in plain loops on %u thread(s): %.3f s\n", c->jobs, threads, secs);
out:
	if (secs < 0)
		fprintf(stderr, "krbench cpu: cannot run %u threads\n", threads);
	free(sh);
	free(tid);
	return secs;
}

int bench_cpu(int argc, char **argv)
{
	long jobs = 1000, work = 27, check_from = 12, reps = 3, at_start = 0;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--jobs", .val = &jobs },
				   { .name = "--work", .val = &work },
				   { .name = "--check-from", .val = &check_from },
				   { .name = "--reps", .val = &reps },
				   { .name = "--at-start", .val = &at_start, .flag = 1 } };
	if (bench_vm_opts(argc, argv, opts, 5, &sched) < 0)
		return 2;
	if (work > 50 || reps > 100) {
		fprintf(stderr, "krbench cpu: --work %ld --reps %ld would take years\n", work, reps);
		return 2;
	}
	cpu_run c = { .jobs = jobs, .work = work, .check_from = check_from, .at_start = at_start,
		      .pids = calloc((size_t)jobs, sizeof(kr_pid)), .seen = malloc((size_t)jobs) };
	unsigned n = bench_schedulers(sched);
	double *v = calloc(4 * (size_t)reps, sizeof *v), *plain = v, *plain_n = v + reps,
	       *s1 = v + 2 * reps, *sn = v + 3 * reps;
	int rc = 1;
	if (!c.pids || !c.seen || !v) {
		fprintf(stderr, "krbench cpu: out of memory\n");
		goto out;
	}
	cr = &c;
	fprintf(stderr, "cpu: %ld jobs of fib(%ld), %ld times each way\n", jobs, work, reps);
	for (long r = 0; r < reps; r++) {
		if ((plain[r] = plain_run(&c, 1)) < 0 || (s1[r] = vm_run(&c, 1)) < 0 ||
		    (plain_n[r] = plain_run(&c, n)) < 0 || (sn[r] = vm_run(&c, sched)) < 0)
			goto out;
	}
	double p = bench_median(plain, (int)reps), pn = bench_median(plain_n, (int)reps),
	       a = bench_median(s1, (int)reps), b = bench_median(sn, (int)reps);
	printf("RESULT bench=cpu impl=krill schedulers=%u jobs=%ld work=%ld secs_1=%.4f secs_n=%.4f "
	       "speedup=%.3f plain_secs=%.4f overhead_pct=%.2f plain_n_secs=%.4f machine_speedup=%.3f "
	       "check_from=%ld reps=%ld\n",
	       n, jobs, work, a, b, a / b, p, (a / p - 1) * 100, pn, p / pn, check_from, reps);
	printf("cpu: %ld supervised jobs of fib(%ld): %.3f s on 1 scheduler, %.3f s on %u: speedup "
	       "%.2f (plain loops on %u threads: %.2f); one plain loop took %.3f s, so the processes "
	       "cost %.1f%% (medians of %ld)\n",
	       jobs, work, a, b, n, a / b, n, p / pn, p, (a / p - 1) * 100, reps);
	fflush(stdout);
	rc = 0;
out:
	free(c.pids);
	free(c.seen);
	free(v);
	return rc;
}
