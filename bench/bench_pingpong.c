/*
 * bench_pingpong.c - the round trip of a small message between two
 * processes (krbench pingpong), and the same through kr_call and kr_reply
 * (krbench call).
 *
 * ping sends an 8-byte message (the round's number) to pong, pong sends it
 * back, and ping times each round trip into a log-linear histogram (hist.h):
 * mean, p50, p99 and p99.9 come from there. The clock is the CPU's invariant
 * counter (bench_ticks, bench.h), calibrated against CLOCK_MONOTONIC:
 * clock_gettime costs ~20 ns here, a fifth of what it would time. Each
 * timed interval still includes one counter read, so the figures are a
 * little pessimistic, never flattering; clock_ns reports that cost as
 * measured in the same run (the p50 of back-to-back reads), for whoever
 * wants to take it off. wall_ns_per_rtt, total time over rounds from
 * CLOCK_MONOTONIC, is a check on the counter's calibration.
 *
 * By default both processes are bound to scheduler 0 (bind_scheduler = 1):
 * the honest "same scheduler" figure, a send, a park and a switch each way,
 * with no help from another core. --cross binds ping to scheduler 0 and pong
 * to scheduler 1, so every message crosses cores and every wake-up is a
 * cross-thread one (needs two schedulers): exactly what a program does that
 * binds two processes to two schedulers (kr_spawn_opts.bind_scheduler), and
 * what it measures with clock_gettime agrees within the clock's cost.
 *
 * Across schedulers the round trip is bound by the cost of moving a cache
 * line between the two CPUs, about 2.5-3 times a line's round trip here,
 * and that cost is the host's, not krill's: on the 2-CPU virtual machines
 * this was measured on it flips between ~130 ns and ~500 ns as the host
 * moves the virtual CPUs (sharing a core complex or not). So --cross also
 * measures a line's round trip between two CPUs before the VM starts and
 * after it stops (line_rtt_ns, line_rtt_after_ns): a figure whose two
 * differ much straddled a move.
 *
 * call: the same rounds as requests. ping calls pong with kr_call (which
 * monitors pong, sends the request with a fresh reference, waits for the
 * reply carrying it and removes the monitor) and pong answers with
 * kr_reply: what gen_server:call and gen_server:reply do on the BEAM.
 * --server: pong is a generic server (kr_server) whose handle_call
 * replies, and ping calls it with kr_server_call: what the loop and its
 * callback add to a raw kr_call (RESULT ... via=kr_server).
 *
 * --cdf FILE writes the round trips' distribution (hist_write_cdf) for a plot.
 *
 * krbench line: that cache line's round trip alone, without a VM, for
 * scripts that time other programs across two CPUs (scripts/bench-cross.sh).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "hist.h"
#include "krill.h"

enum { TAG_PING = 1, TAG_STOP, TAG_DONE };

typedef struct pingpong {
	const char *bench; /* "pingpong" or "call" */
	long rounds, warmup;
	int cross, call, hibernate, server;
	const char *cdf;   /* where to write the distribution, or NULL */
	kr_pid root, pong;
	hist *h;
	uint64_t wall_ns;     /* the timed rounds, end to end */
	uint64_t clock_ns;    /* p50 of the interval between two back-to-back clock reads */
	char err[160];        /* set by a process that saw something wrong */
	int rc;
	unsigned schedulers;  /* the VM's, for the RESULT line */
} pingpong;

/* ---- a cache line's round trip between two CPUs ---- */

enum { LINE_WARMUP = 1000, LINE_ROUNDS = 20000 };

typedef struct line_pair {
	_Alignas(64) atomic_long ping; /* A writes i, B waits for it... */
	_Alignas(64) atomic_long pong; /* ...and writes it back here */
	int cpu[2];
	double *rtt_ns;                /* LINE_ROUNDS of them */
} line_pair;

static void pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *line_b(void *arg)
{
	line_pair *lp = arg;
	pin_to(lp->cpu[1]);
	/* Acquire/release: the pair is a handshake, one line each way; the
	 * ordering costs nothing more on x86 and is what a mailbox pays too. */
	for (long i = 1; i <= LINE_WARMUP + LINE_ROUNDS; i++) {
		while (atomic_load_explicit(&lp->ping, memory_order_acquire) != i)
			;
		atomic_store_explicit(&lp->pong, i, memory_order_release);
	}
	return NULL;
}

static void line_a(line_pair *lp)
{
	pin_to(lp->cpu[0]);
	double ns_per_tick = bench_ns_per_tick();
	for (long i = 1; i <= LINE_WARMUP + LINE_ROUNDS; i++) {
		uint64_t t0 = bench_ticks();
		atomic_store_explicit(&lp->ping, i, memory_order_release);
		while (atomic_load_explicit(&lp->pong, memory_order_acquire) != i)
			;
		if (i > LINE_WARMUP)
			lp->rtt_ns[i - LINE_WARMUP - 1] = (double)(bench_ticks() - t0) * ns_per_tick;
	}
}

/* The round trip of a cache line between the first two CPUs this process
 * may run on, in ns: the median of LINE_ROUNDS round trips, each timed
 * alone, so that those a neighbour interrupted do not move it (each time
 * includes a clock read, as the ping-pong's do). A few ms; 0 if the process
 * may not use two CPUs. */
static double line_rtt_ns(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) < 0)
		return 0;
	line_pair *lp = aligned_alloc(64, sizeof *lp);
	double *rtt = malloc(LINE_ROUNDS * sizeof *rtt);
	double med = 0;
	if (lp && rtt) {
		memset(lp, 0, sizeof *lp);
		lp->rtt_ns = rtt;
		int n = 0;
		for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
			if (CPU_ISSET(c, &set))
				lp->cpu[n++] = c;
		pthread_t tb;
		if (n == 2 && pthread_create(&tb, NULL, line_b, lp) == 0) {
			line_a(lp); /* pinned for the while: restore our mask, which the VM's threads inherit */
			pthread_setaffinity_np(pthread_self(), sizeof set, &set);
			pthread_join(tb, NULL);
			med = bench_median(rtt, LINE_ROUNDS);
		}
	}
	free(rtt);
	free(lp);
	return med;
}

static void fail(pingpong *pp, const char *what, int code)
{
	if (!pp->err[0])
		snprintf(pp->err, sizeof pp->err, "%s: %s", what, code ? kr_strerror(code) : "wrong");
}

static void pong_fn(void *arg)
{
	pingpong *pp = arg;
	for (;;) {
		kr_msg *m;
		int r = kr_recv(&m, KR_INFINITY);
		if (r < 0) {
			fail(pp, "pong: kr_recv", r);
			return;
		}
		if (m->tag == TAG_STOP) {
			kr_msg_free(m);
			return;
		}
		r = pp->call ? kr_reply(m, TAG_PING, m->data, m->len)
			     : kr_send(m->sender, TAG_PING, m->data, m->len);
		kr_msg_free(m);
		if (r < 0) {
			fail(pp, "pong: kr_reply/kr_send", r);
			return;
		}
	}
}

/* --server: pong as a kr_server, answering each call from its callback. */
static kr_server_ret pong_call(const kr_msg *req, kr_server_from from, void *state)
{
	(void)state;
	return kr_server_ret_reply(from, TAG_PING, req->data, req->len);
}

/* ping's TAG_STOP: a plain message, so handle_info. */
static kr_server_ret pong_info(const kr_msg *msg, void *state)
{
	(void)state;
	return msg->tag == TAG_STOP ? kr_server_ret_stop(KR_EXIT_NORMAL) : kr_server_ret_ok();
}

static const kr_server_callbacks pong_server = { .handle_call = pong_call,
						 .handle_info = pong_info };

/* --hibernate: pong answers one message, then waits without a stack; each
 * round wakes it, on a stack from the pool, from the top. */
static void pong_hibernating(void *arg)
{
	pingpong *pp = arg;
	kr_msg *m;
	int r = kr_recv(&m, 0);
	if (r < 0) {
		fail(pp, "pong: kr_recv after waking", r);
		return;
	}
	if (m->tag == TAG_STOP) {
		kr_msg_free(m);
		return;
	}
	r = kr_send(m->sender, TAG_PING, m->data, m->len);
	kr_msg_free(m);
	if (r < 0) {
		fail(pp, "pong: kr_send", r);
		return;
	}
	kr_hibernate(pong_hibernating, pp);
}

static void pong_hibernate_first(void *arg)
{
	kr_hibernate(pong_hibernating, arg);
}

static void ping_fn(void *arg)
{
	pingpong *pp = arg;
	uint64_t total = (uint64_t)(pp->warmup + pp->rounds), warm = (uint64_t)pp->warmup;
	uint64_t wall0 = 0, last_note = bench_now_ns();
	double ns_per_tick = bench_ns_per_tick();
	for (uint64_t i = 0; i < total; i++) {
		kr_msg *m;
		uint64_t back, t0 = bench_ticks();
		int r;
		if (pp->call) {
			r = pp->server ? kr_server_call(pp->pong, TAG_PING, &i, sizeof i, &m, KR_INFINITY)
				       : kr_call(pp->pong, TAG_PING, &i, sizeof i, &m, KR_INFINITY);
		} else {
			r = kr_send(pp->pong, TAG_PING, &i, sizeof i);
			if (r == 0)
				r = kr_recv(&m, KR_INFINITY);
		}
		uint64_t t1 = bench_ticks();
		if (r < 0) {
			fail(pp, pp->call ? "ping: kr_call" : "ping: kr_send/kr_recv", r);
			break;
		}
		int ok = m->tag == TAG_PING && m->len == sizeof back && m->sender == pp->pong;
		if (ok) {
			memcpy(&back, m->data, sizeof back);
			ok = back == i;
		}
		kr_msg_free(m);
		if (!ok) {
			snprintf(pp->err, sizeof pp->err, "ping: round %" PRIu64 " got back a wrong message", i);
			break;
		}
		if (i == warm)
			wall0 = bench_now_ns();
		if (i >= warm)
			hist_record(pp->h, (uint64_t)((double)(t1 - t0) * ns_per_tick + 0.5));
		if ((i & 0xffff) == 0 && bench_now_ns() - last_note > 1000000000u) {
			fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 " rounds\n", pp->bench, i, total);
			last_note = bench_now_ns();
		}
	}
	pp->wall_ns = bench_now_ns() - wall0;
	kr_send(pp->pong, TAG_STOP, NULL, 0);
	kr_send(pp->root, TAG_DONE, NULL, 0);
}

/* The p50 of what an empty timed interval measures. */
static uint64_t clock_cost(hist *h)
{
	double ns_per_tick = bench_ns_per_tick();
	hist_reset(h);
	for (int i = 0; i < 100000; i++) {
		uint64_t t0 = bench_ticks();
		hist_record(h, (uint64_t)((double)(bench_ticks() - t0) * ns_per_tick + 0.5));
	}
	uint64_t p50 = hist_percentile(h, 50);
	hist_reset(h);
	return p50;
}

static void root_fn(void *arg)
{
	pingpong *pp = arg;
	pp->rc = 1;
	pp->root = kr_self();
	kr_vm_stats st;
	if (kr_vm_stats_get(&st) < 0)
		st.schedulers = 0;
	pp->clock_ns = clock_cost(pp->h);
	kr_spawn_opts po = { .name = "pong", .bind_scheduler = pp->cross ? 2 : 1 };
	kr_spawn_opts pi = { .name = "ping", .bind_scheduler = 1 };
	if (pp->server) {
		kr_server_opts so = { .spawn = po };
		pp->pong = kr_server_start(&pong_server, pp, &so);
	} else {
		pp->pong = kr_spawn_opt(pp->hibernate ? pong_hibernate_first : pong_fn, pp, &po);
	}
	if (pp->pong < 0) {
		fprintf(stderr, "krbench %s: spawning pong: %s\n", pp->bench, kr_strerror((int)pp->pong));
		return;
	}
	kr_pid ping = kr_spawn_opt(ping_fn, pp, &pi);
	if (ping < 0) {
		fprintf(stderr, "krbench %s: spawning ping: %s\n", pp->bench, kr_strerror((int)ping));
		return;
	}
	fprintf(stderr, "%s: %ld rounds (+%ld warm-up), %s\n", pp->bench, pp->rounds, pp->warmup,
		pp->cross ? "ping on scheduler 0, pong on scheduler 1" : "both on scheduler 0");
	for (;;) {
		kr_msg *m;
		int r = kr_recv_tag(&m, TAG_DONE, 5000);
		if (r == 0) {
			kr_msg_free(m);
			break;
		}
		if (r != KR_ETIMEDOUT) {
			fprintf(stderr, "krbench %s: waiting for ping: %s\n", pp->bench, kr_strerror(r));
			return;
		}
		fprintf(stderr, "%s: still waiting for ping to finish\n", pp->bench);
	}
	if (pp->err[0]) {
		fprintf(stderr, "krbench %s: %s\n", pp->bench, pp->err);
		return;
	}
	hist *h = pp->h;
	if (hist_count(h) != (uint64_t)pp->rounds) {
		fprintf(stderr, "krbench %s: timed %" PRIu64 " rounds, wanted %ld\n", pp->bench,
			hist_count(h), pp->rounds);
		return;
	}
	if (pp->cdf && hist_write_cdf(h, pp->cdf, "krill round trips") < 0) {
		fprintf(stderr, "krbench %s: cannot write %s\n", pp->bench, pp->cdf);
		return;
	}
	pp->schedulers = (unsigned)st.schedulers;
	pp->rc = 0;
}

/* The RESULT line and its reading, once the VM has stopped; line_before and
 * line_after (--cross) are a cache line's round trip before and after. */
static void report(const pingpong *pp, double line_before, double line_after)
{
	const hist *h = pp->h;
	const char *placement = pp->cross ? "cross" : "same";
	/* call's ns_per_call (issue 4's name for it) is the mean round trip. */
	char per_call[64] = "", line[80] = "", line_note[120] = "";
	if (strcmp(pp->bench, "call") == 0)
		snprintf(per_call, sizeof per_call, " ns_per_call=%.1f%s", hist_mean(h),
			 pp->server ? " via=kr_server" : "");
	if (pp->cross) {
		snprintf(line, sizeof line, " line_rtt_ns=%.0f line_rtt_after_ns=%.0f", line_before,
			 line_after);
		snprintf(line_note, sizeof line_note,
			 "; a cache line's round trip between two CPUs: %.0f ns before, %.0f ns after",
			 line_before, line_after);
	}
	printf("RESULT bench=%s impl=krill schedulers=%u placement=%s pong=%s rtt_mean_ns=%.1f "
	       "p50_ns=%" PRIu64 " p99_ns=%" PRIu64 " p999_ns=%" PRIu64 " max_ns=%" PRIu64
	       " wall_ns_per_rtt=%.1f clock_ns=%" PRIu64 " rounds=%ld%s%s\n",
	       pp->bench, pp->schedulers, placement, pp->hibernate ? "hibernating" : "receiving",
	       hist_mean(h), hist_percentile(h, 50),
	       hist_percentile(h, 99), hist_percentile(h, 99.9), hist_percentile(h, 100),
	       (double)pp->wall_ns / (double)pp->rounds, pp->clock_ns, pp->rounds, per_call, line);
	printf("%s (%s scheduler): round trip mean %.1f ns, p50 %" PRIu64 " ns, p99 %" PRIu64
	       " ns, p99.9 %" PRIu64 " ns, max %" PRIu64 " ns over %ld rounds (a clock read: %" PRIu64
	       " ns%s)\n",
	       pp->bench, placement, hist_mean(h), hist_percentile(h, 50), hist_percentile(h, 99),
	       hist_percentile(h, 99.9), hist_percentile(h, 100), pp->rounds, pp->clock_ns, line_note);
	fflush(stdout);
}

/* krbench pingpong and krbench call: the same rounds, two ways. */
static int run(int argc, char **argv, int call)
{
	long rounds = 1000000, cross = 0, hibernate = 0, server = 0;
	const char *cdf = NULL;
	unsigned sched;
	/* The last one is pingpong's --hibernate or call's --server. */
	const bench_opt opts[] = { { .name = "--rounds", .val = &rounds },
				   { .name = "--cross", .val = &cross, .flag = 1 },
				   { .name = "--cdf", .str = &cdf },
				   call ? (bench_opt){ .name = "--server", .val = &server, .flag = 1 }
					: (bench_opt){ .name = "--hibernate", .val = &hibernate, .flag = 1 } };
	if (bench_vm_opts(argc, argv, opts, 4, &sched) < 0)
		return 2;
	if (cross && bench_schedulers(sched) < 2) {
		fprintf(stderr, "krbench %s: --cross needs at least 2 schedulers (have %u)\n", argv[0],
			bench_schedulers(sched));
		return 2;
	}
	pingpong pp = { .bench = call ? "call" : "pingpong", .rounds = rounds,
			.warmup = rounds / 10 < 10000 ? rounds / 10 : 10000, .cross = (int)cross,
			.call = call, .hibernate = (int)hibernate, .server = (int)server, .cdf = cdf,
			.h = hist_new() };
	if (!pp.h) {
		fprintf(stderr, "krbench %s: out of memory\n", pp.bench);
		return 1;
	}
	/* Calibrate the clock (~50 ms of busy waiting) before the VM starts,
	 * not in a process, which the watchdog would report. */
	bench_ns_per_tick();
	double line_before = cross ? line_rtt_ns() : 0;
	kr_config cfg = { .schedulers = sched };
	int r = kr_main(&cfg, root_fn, &pp);
	if (!bench_vm_failed(pp.bench, r) && pp.rc == 0)
		report(&pp, line_before, cross ? line_rtt_ns() : 0);
	else if (pp.rc == 0)
		pp.rc = 1;
	hist_free(pp.h);
	return pp.rc;
}

int bench_pingpong(int argc, char **argv)
{
	return run(argc, argv, 0);
}

int bench_call(int argc, char **argv)
{
	return run(argc, argv, 1);
}

/* krbench line: a cache line's round trip between two CPUs, alone. */
int bench_line(int argc, char **argv)
{
	if (bench_opts(argc, argv, NULL, NULL, 0) < 0)
		return 2;
	bench_ns_per_tick();
	double rtt = line_rtt_ns();
	if (rtt <= 0) {
		fprintf(stderr, "krbench line: needs two CPUs\n");
		return 1;
	}
	printf("RESULT bench=line impl=none line_rtt_ns=%.0f\n", rtt);
	printf("line: a cache line's round trip between two CPUs: %.0f ns (median of %d)\n", rtt,
	       LINE_ROUNDS);
	return 0;
}
