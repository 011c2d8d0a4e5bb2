/*
 * bench_pingpong.c - the round trip of a small message between two processes.
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
 * cross-thread one (needs two schedulers).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "hist.h"
#include "krill.h"

enum { TAG_PING = 1, TAG_STOP, TAG_DONE };

typedef struct pingpong {
	long rounds, warmup;
	int cross;
	kr_pid root, pong;
	hist *h;
	uint64_t wall_ns;     /* the timed rounds, end to end */
	uint64_t clock_ns;    /* p50 of the interval between two back-to-back clock reads */
	char err[160];        /* set by a process that saw something wrong */
	int rc;
} pingpong;

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
		r = kr_send(m->sender, TAG_PING, m->data, m->len);
		kr_msg_free(m);
		if (r < 0) {
			fail(pp, "pong: kr_send", r);
			return;
		}
	}
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
		int r = kr_send(pp->pong, TAG_PING, &i, sizeof i);
		if (r == 0)
			r = kr_recv(&m, KR_INFINITY);
		uint64_t t1 = bench_ticks();
		if (r < 0) {
			fail(pp, "ping: kr_send/kr_recv", r);
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
			fprintf(stderr, "pingpong: %" PRIu64 "/%" PRIu64 " rounds\n", i, total);
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
	pp->pong = kr_spawn_opt(pong_fn, pp, &po);
	if (pp->pong < 0) {
		fprintf(stderr, "krbench pingpong: spawning pong: %s\n", kr_strerror((int)pp->pong));
		return;
	}
	kr_pid ping = kr_spawn_opt(ping_fn, pp, &pi);
	if (ping < 0) {
		fprintf(stderr, "krbench pingpong: spawning ping: %s\n", kr_strerror((int)ping));
		return;
	}
	fprintf(stderr, "pingpong: %ld rounds (+%ld warm-up), %s\n", pp->rounds, pp->warmup,
		pp->cross ? "ping on scheduler 0, pong on scheduler 1" : "both on scheduler 0");
	for (;;) {
		kr_msg *m;
		int r = kr_recv_tag(&m, TAG_DONE, 5000);
		if (r == 0) {
			kr_msg_free(m);
			break;
		}
		if (r != KR_ETIMEDOUT) {
			fprintf(stderr, "krbench pingpong: waiting for ping: %s\n", kr_strerror(r));
			return;
		}
		fprintf(stderr, "pingpong: still waiting for ping to finish\n");
	}
	if (pp->err[0]) {
		fprintf(stderr, "krbench pingpong: %s\n", pp->err);
		return;
	}
	hist *h = pp->h;
	if (hist_count(h) != (uint64_t)pp->rounds) {
		fprintf(stderr, "krbench pingpong: timed %" PRIu64 " rounds, wanted %ld\n", hist_count(h),
			pp->rounds);
		return;
	}
	printf("RESULT bench=pingpong impl=krill schedulers=%zu placement=%s rtt_mean_ns=%.1f "
	       "p50_ns=%" PRIu64 " p99_ns=%" PRIu64 " p999_ns=%" PRIu64 " max_ns=%" PRIu64
	       " wall_ns_per_rtt=%.1f clock_ns=%" PRIu64 " rounds=%ld\n",
	       st.schedulers, pp->cross ? "cross" : "same", hist_mean(h), hist_percentile(h, 50),
	       hist_percentile(h, 99), hist_percentile(h, 99.9), hist_percentile(h, 100),
	       (double)pp->wall_ns / (double)pp->rounds, pp->clock_ns, pp->rounds);
	printf("pingpong (%s scheduler): round trip mean %.1f ns, p50 %" PRIu64 " ns, p99 %" PRIu64
	       " ns, p99.9 %" PRIu64 " ns, max %" PRIu64 " ns over %ld rounds (a clock read: %" PRIu64
	       " ns)\n",
	       pp->cross ? "cross" : "same", hist_mean(h), hist_percentile(h, 50), hist_percentile(h, 99),
	       hist_percentile(h, 99.9), hist_percentile(h, 100), pp->rounds, pp->clock_ns);
	fflush(stdout);
	pp->rc = 0;
}

int bench_pingpong(int argc, char **argv)
{
	long rounds = 1000000, cross = 0;
	unsigned sched;
	const bench_opt opts[] = { { "--rounds", &rounds, 0 }, { "--cross", &cross, 1 } };
	if (bench_vm_opts(argc, argv, opts, 2, &sched) < 0)
		return 2;
	if (cross && bench_schedulers(sched) < 2) {
		fprintf(stderr, "krbench pingpong: --cross needs at least 2 schedulers (have %u)\n",
			bench_schedulers(sched));
		return 2;
	}
	pingpong pp = { .rounds = rounds, .warmup = rounds / 10 < 10000 ? rounds / 10 : 10000,
			.cross = (int)cross, .h = hist_new() };
	if (!pp.h) {
		fprintf(stderr, "krbench pingpong: out of memory\n");
		return 1;
	}
	kr_config cfg = { .schedulers = sched };
	int r = kr_main(&cfg, root_fn, &pp);
	hist_free(pp.h);
	if (bench_vm_failed("pingpong", r))
		return 1;
	return pp.rc;
}
