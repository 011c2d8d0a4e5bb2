/*
 * bench_restart.c - how fast a supervisor replaces a child that crashes.
 *
 * A one_for_one supervisor with one permanent worker and a restart
 * intensity it never reaches (10^9 restarts within 1 s). The worker sends
 * the root a hello as soon as it starts, then waits; told to crash, it
 * crashes (kr_crash). The root times each round, from sending the order to
 * crash to the new child's hello: one message to the worker, its crash (a
 * backtrace and a crash report), the supervisor's restart (the exit signal,
 * a new process, the start handshake) and the new child's first message.
 * N timed rounds follow N/10 (at most 1,000) untimed ones; restarts_per_s
 * is N over the timed rounds' total time, and the percentiles come from a
 * histogram (hist.h).
 *
 * Reports are off (kr_config.log_level KR_LOG_NONE: no crash report, no
 * backtrace, no supervisor report), as the BEAM side sets its logger's
 * level to none: printing them would measure the terminal. With --reports,
 * the VM makes them all (level info, no burst limit: three a round, the
 * crash with its backtrace, the supervisor's child_terminated and its
 * progress report of the restart) and a log hook counts and drops them.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include "bench.h"
#include "hist.h"
#include "krill.h"

enum { TAG_HELLO = 1, TAG_CRASH };

typedef struct restart {
	long rounds, warmup;
	kr_pid root;
	hist *h;
	double secs;
	atomic_long reports;
	int rc;
} restart;

static restart *rs; /* the one run: the worker's argument is not needed */

static void drop_report(const char *line, void *ctx)
{
	(void)line;
	/* relaxed: a count read after the VM has stopped. */
	atomic_fetch_add_explicit(&((restart *)ctx)->reports, 1, memory_order_relaxed);
}

static void worker_fn(void *arg)
{
	kr_send(rs->root, TAG_HELLO, NULL, 0);
	kr_msg *m;
	if (kr_recv_tag(&m, TAG_CRASH, KR_INFINITY) == 0)
		kr_crash("told to crash");
}

/* The pid of the next child to say hello; negative if none does in 5 s. */
static kr_pid hello(void)
{
	kr_msg *m;
	int r = kr_recv_tag(&m, TAG_HELLO, 5000);
	if (r < 0) {
		fprintf(stderr, "krbench restart: waiting for a child's hello: %s\n", kr_strerror(r));
		return r;
	}
	kr_pid from = m->sender;
	kr_msg_free(m);
	return from;
}

/* Crash the child `w` `n` times (recording each round into h if it is not
 * NULL); 0, or -1 after saying what was wrong. */
static int rounds(kr_pid *w, long n, hist *h)
{
	uint64_t note = bench_now_ns();
	for (long i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns();
		int r = kr_send(*w, TAG_CRASH, NULL, 0);
		if (r < 0) {
			fprintf(stderr, "krbench restart: ordering a crash: %s\n", kr_strerror(r));
			return -1;
		}
		kr_pid next = hello();
		uint64_t t1 = bench_now_ns();
		if (next < 0)
			return -1;
		if (next == *w) {
			fprintf(stderr, "krbench restart: the crashed child said hello again\n");
			return -1;
		}
		*w = next;
		if (h)
			hist_record(h, t1 - t0);
		if (t1 - note > 1000000000u) {
			fprintf(stderr, "restart: %ld/%ld restarts\n", i, n);
			note = t1;
		}
	}
	return 0;
}

static void root_fn(void *arg)
{
	restart *r = arg;
	r->rc = 1;
	r->root = kr_self();
	kr_vm_stats st;
	if (kr_vm_stats_get(&st) < 0)
		st.schedulers = 0;
	kr_trap_exit(1); /* the supervisor is linked to us: its end must not be ours */
	kr_child_spec spec = { .id = "crasher", .start = worker_fn, .restart = KR_PERMANENT };
	kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 1000000000, .period_ms = 1000 };
	kr_pid sup = kr_sup_start_link(&flags, &spec, 1, "crash_sup");
	if (sup < 0) {
		fprintf(stderr, "krbench restart: starting the supervisor: %s\n", kr_strerror((int)sup));
		return;
	}
	kr_pid w = hello();
	fprintf(stderr, "restart: %ld restarts (+%ld warm-up)\n", r->rounds, r->warmup);
	if (w < 0 || rounds(&w, r->warmup, NULL) < 0)
		return;
	uint64_t t0 = bench_now_ns();
	if (rounds(&w, r->rounds, r->h) < 0)
		return;
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	kr_exit_sig(sup, KR_EXIT_SHUTDOWN);
	hist *h = r->h;
	printf("RESULT bench=restart impl=krill schedulers=%zu restarts=%ld restarts_per_s=%.0f "
	       "mean_ns=%.0f p50_ns=%" PRIu64 " p99_ns=%" PRIu64 " p999_ns=%" PRIu64 " max_ns=%" PRIu64
	       "\n",
	       st.schedulers, r->rounds, (double)r->rounds / r->secs, hist_mean(h),
	       hist_percentile(h, 50), hist_percentile(h, 99), hist_percentile(h, 99.9),
	       hist_percentile(h, 100));
	printf("restart: %ld restarts in %.3f s: %.0f per second; from the order to crash to the new "
	       "child's hello: mean %.1f us, p50 %.1f us, p99 %.1f us\n",
	       r->rounds, r->secs, (double)r->rounds / r->secs, hist_mean(h) / 1e3,
	       (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 99) / 1e3);
	fflush(stdout);
	r->rc = 0;
}

int bench_restart(int argc, char **argv)
{
	long n = 20000;
	unsigned sched;
	long with_reports = 0;
	const bench_opt opts[] = { { .name = "--restarts", .val = &n },
				   { .name = "--reports", .val = &with_reports, .flag = 1 } };
	if (bench_vm_opts(argc, argv, opts, 2, &sched) < 0)
		return 2;
	restart r = { .rounds = n, .warmup = n / 10 < 1000 ? n / 10 : 1000, .h = hist_new() };
	if (!r.h) {
		fprintf(stderr, "krbench restart: out of memory\n");
		return 1;
	}
	rs = &r;
	kr_config cfg = { .schedulers = sched, .log = drop_report, .log_ctx = &r,
			  .log_level = with_reports ? KR_LOG_INFO : KR_LOG_NONE, .log_burst = -1 };
	int rc = kr_main(&cfg, root_fn, &r);
	hist_free(r.h);
	if (bench_vm_failed("restart", rc))
		return 1;
	long want = with_reports ? 2 * (r.rounds + r.warmup) : 0;
	if (r.rc == 0 && atomic_load(&r.reports) < want) {
		fprintf(stderr, "krbench restart: %ld reports, expected at least %ld\n",
			atomic_load(&r.reports), want);
		return 1;
	}
	return r.rc;
}
