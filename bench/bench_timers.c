/*
 * bench_timers.c - what timers cost: kr_send_after, kr_cancel_timer and the
 * firing, with N (default 1,000,000) pending at once; the BEAM's side
 * (bench/erlang/bench_timers.erl) does the same with erlang:send_after/3
 * and erlang:cancel_timer/1.
 *
 *  1. Memory: a helper process starts N timers of an hour to itself,
 *     keeping no reference, and reads the resident set before and after:
 *     bytes_per_timer = its growth / N, what a pending timer costs (its
 *     8-byte payload included). The helper then ends, and its timers are
 *     cancelled with it (Erlang's rule).
 *  2. Starts: the root starts N timers to itself, keeping each reference in
 *     an array made before, all due at one moment D after the phase starts
 *     (each asks for D less the time gone, read every 1,024 starts):
 *     starts_per_s. D is 1 s + 3 times what phase 1's starts took, so
 *     that phases 2 and 3 end before it.
 *  3. Cancels: it cancels every second one (each must still be pending):
 *     cancels_per_s.
 *  4. Fires: it receives the other N/2, checking each comes once:
 *     fires_per_s = N/2 / (the last one's arrival - D), the firing and the
 *     delivery and receipt of each message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "krill.h"

enum { TAG_T = 1, TAG_DONE };

typedef struct timersb {
	long n;
	kr_ref *refs;
	long rss0, rss1;
	uint64_t mem_ns;       /* phase 1's starts took this long */
	int rc;
} timersb;

/* Phase 1: N timers of an hour, no references kept; then ends. */
static void memory_helper(void *arg)
{
	timersb *b = arg;
	kr_pid me = kr_self();
	b->rss0 = bench_rss_bytes();
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < b->n; i++) {
		uint64_t v = (uint64_t)i;
		if (kr_send_after(3600000, me, TAG_T, &v, sizeof v) <= 0) {
			fprintf(stderr, "krbench timers: kr_send_after failed\n");
			b->rss1 = -1;
			break;
		}
	}
	b->mem_ns = bench_now_ns() - t0;
	if (b->rss1 == 0)
		b->rss1 = bench_rss_bytes();
	kr_send(kr_whereis("timers_root"), TAG_DONE, NULL, 0);
}

static void root_fn(void *arg)
{
	timersb *b = arg;
	b->rc = 1;
	long n = b->n, half = n / 2;
	kr_pid me = kr_self();
	kr_register("timers_root", me);
	kr_vm_stats st;
	kr_vm_stats_get(&st);
	unsigned sched = (unsigned)st.schedulers;

	kr_msg *m;
	if (kr_spawn(memory_helper, b) < 0 || kr_recv_tag(&m, TAG_DONE, 600000) < 0) {
		fprintf(stderr, "krbench timers: the memory phase failed\n");
		return;
	}
	kr_msg_free(m);
	if (b->rss0 < 0 || b->rss1 < 0)
		return;
	double per = (double)(b->rss1 - b->rss0) / (double)n;
	fprintf(stderr, "timers: %ld pending timers took %.0f bytes each\n", n, per);

	/* Phase 2: starts, all due at t0 + D. */
	long d_ms = 1000 + (long)(b->mem_ns / 333333u); /* 1 s + 3 x phase 1 */
	uint64_t t0 = bench_now_ns(), due = t0 + (uint64_t)d_ms * 1000000u;
	long ms = d_ms;
	for (long i = 0; i < n; i++) {
		if ((i & 1023) == 0) {
			uint64_t now = bench_now_ns();
			ms = now < due ? (long)((due - now) / 1000000u) : 0;
		}
		uint64_t v = (uint64_t)i;
		b->refs[i] = kr_send_after(ms, me, TAG_T, &v, sizeof v);
		if (b->refs[i] <= 0) {
			fprintf(stderr, "krbench timers: kr_send_after: %s\n", kr_strerror((int)b->refs[i]));
			return;
		}
	}
	uint64_t t1 = bench_now_ns();

	/* Phase 3: cancel every second one. */
	for (long i = 0; i < n; i += 2) {
		long left = kr_cancel_timer(b->refs[i]);
		if (left < 0) {
			fprintf(stderr, "krbench timers: timer %ld was not pending when cancelled (%s): "
			                "the starts took longer than D = %ld ms\n",
			        i, kr_strerror((int)left), d_ms);
			return;
		}
	}
	uint64_t t2 = bench_now_ns();
	if (t2 >= due) {
		fprintf(stderr, "krbench timers: starting and cancelling took longer than D = %ld ms\n", d_ms);
		return;
	}

	/* Phase 4: the other half fire. */
	unsigned char *seen = calloc((size_t)n, 1);
	if (!seen)
		return;
	long got = 0;
	while (got < half) {
		if (kr_recv(&m, 10000) < 0) {
			fprintf(stderr, "krbench timers: %ld of %ld timers fired\n", got, n - half);
			free(seen);
			return;
		}
		uint64_t v;
		memcpy(&v, m->data, sizeof v);
		if (m->tag != TAG_T || v >= (uint64_t)n || (v & 1) == 0 || seen[v]) {
			fprintf(stderr, "krbench timers: a wrong message (timer %" PRIu64 ")\n", v);
			free(seen);
			return;
		}
		seen[v] = 1;
		got++;
		kr_msg_free(m);
	}
	uint64_t t3 = bench_now_ns();
	free(seen);
	double starts = (double)n / ((double)(t1 - t0) / 1e9);
	double cancels = (double)(n - half) / ((double)(t2 - t1) / 1e9);
	double fires = (double)got / ((double)(t3 - due) / 1e9);
	printf("RESULT bench=timers impl=krill schedulers=%u timers=%ld starts_per_s=%.0f "
	       "cancels_per_s=%.0f fires_per_s=%.0f bytes_per_timer=%.0f\n",
	       sched, n, starts, cancels, fires, per);
	printf("timers: %ld started in %.3f s (%.0f per second), %ld cancelled in %.3f s (%.0f per "
	       "second), %ld fired and received in %.3f s after their deadline (%.0f per second); "
	       "%.0f bytes each while pending\n",
	       n, (double)(t1 - t0) / 1e9, starts, n - half, (double)(t2 - t1) / 1e9, cancels, got,
	       (double)(t3 - due) / 1e9, fires, per);
	fflush(stdout);
	b->rc = 0;
}

int bench_timers(int argc, char **argv)
{
	long n = 1000000;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--timers", .val = &n } };
	if (bench_vm_opts(argc, argv, opts, 1, &sched) < 0)
		return 2;
	timersb b = { .n = n };
	/* Made and touched now, so that it is in the memory phase's baseline. */
	b.refs = malloc((size_t)n * sizeof *b.refs);
	if (!b.refs) {
		fprintf(stderr, "krbench timers: out of memory\n");
		return 1;
	}
	memset(b.refs, 0, (size_t)n * sizeof *b.refs);
	kr_config cfg = { .schedulers = sched };
	int r = kr_main(&cfg, root_fn, &b);
	free(b.refs);
	if (bench_vm_failed("timers", r))
		return 1;
	return b.rc;
}
