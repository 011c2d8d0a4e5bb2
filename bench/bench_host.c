/*
 * bench_host.c - host threads asking a process a question (krbench
 * host_call): N host threads each making request/reply calls to one server
 * process, two ways side by side in one VM, alternating runs so that both
 * see the same machine noise:
 *
 *   krill  kr_call from the host thread (its own mailbox: vm/host.c), the
 *          server answering with kr_reply;
 *   pipe   what docs/embedding.md showed before host threads had
 *          mailboxes: each thread owns a pipe, sends its request with
 *          kr_send (the write end's number in the payload), and blocks in
 *          read() until the server write()s the answer there.
 *
 * Each run lasts --ms milliseconds; every thread calls as fast as it can,
 * timing each call (bench_ticks) into its own histogram. calls_per_s is
 * every thread's calls over the run's wall time; p50_ns and p99_ns come
 * from the run's merged histogram. The RESULT line of each way gives the
 * medians of its --runs runs. The pipe server's write()s are system calls
 * that krill cannot count, and with several threads the watchdog reports
 * it (the cause the issue named); the reports are counted, not printed,
 * and shown on stderr.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "hist.h"
#include "krill.h"

enum { TAG_SQUARE = 1, TAG_ANSWER, TAG_PIPE, TAG_STOP };
enum { IMPL_KRILL, IMPL_PIPE };
#define MAX_THREADS 64

static const char *const impl_name[] = { "krill", "pipe" };

typedef struct host_bench {
	long threads, ms, runs;
	kr_pid server;
	atomic_int go, stop, failed;
	pthread_barrier_t ready;
} host_bench;

typedef struct caller {
	host_bench *hb;
	int impl;
	int fd[2]; /* pipe: [0] this thread reads, [1] the server writes */
	long calls;
	hist *h;
} caller;

static atomic_int watchdog_reports;

static void count_reports(const char *line, void *ctx)
{
	(void)ctx;
	if (strstr(line, "without yielding"))
		atomic_fetch_add(&watchdog_reports, 1);
	else
		fprintf(stderr, "%s\n", line);
}

/* The server: a kr_call's request is answered with kr_reply; a pipe
 * request (the fd first, then the number) with a write() to that fd. */
static void server(void *arg)
{
	host_bench *hb = arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		if (m->tag == TAG_STOP) {
			kr_msg_free(m);
			return;
		}
		int64_t x = 0;
		int fd = -1;
		if (m->tag == TAG_SQUARE && m->len == sizeof x) {
			memcpy(&x, m->data, sizeof x);
			x *= x;
			if (kr_reply(m, TAG_ANSWER, &x, sizeof x) != 0)
				atomic_store(&hb->failed, 1);
		} else if (m->tag == TAG_PIPE && m->len == sizeof fd + sizeof x) {
			memcpy(&fd, m->data, sizeof fd);
			memcpy(&x, (const char *)m->data + sizeof fd, sizeof x);
			x *= x;
			/* Never blocks: the thread reads each answer before it asks
			 * again (docs/embedding.md's pattern, as it was). */
			if (write(fd, &x, sizeof x) != (ssize_t)sizeof x)
				atomic_store(&hb->failed, 1);
		}
		kr_msg_free(m);
	}
}

static int call_krill(host_bench *hb, int64_t x, int64_t *y)
{
	kr_msg *r;
	int rc = kr_call(hb->server, TAG_SQUARE, &x, sizeof x, &r, 10000);
	if (rc)
		return rc;
	memcpy(y, r->data, sizeof *y);
	kr_msg_free(r);
	return 0;
}

static int call_pipe(caller *c, int64_t x, int64_t *y)
{
	char req[sizeof(int) + sizeof x];
	memcpy(req, &c->fd[1], sizeof(int));
	memcpy(req + sizeof(int), &x, sizeof x);
	int rc = kr_send(c->hb->server, TAG_PIPE, req, sizeof req);
	if (rc)
		return rc;
	return read(c->fd[0], y, sizeof *y) == (ssize_t)sizeof *y ? 0 : -1;
}

static void *caller_main(void *arg)
{
	caller *c = arg;
	host_bench *hb = c->hb;
	double ns_per_tick = bench_ns_per_tick();
	pthread_barrier_wait(&hb->ready);
	while (!atomic_load(&hb->go))
		;
	for (int64_t i = 1; !atomic_load_explicit(&hb->stop, memory_order_relaxed); i++) {
		int64_t x = i & 0xffff, y = 0;
		uint64_t t0 = bench_ticks();
		int rc = c->impl == IMPL_KRILL ? call_krill(hb, x, &y) : call_pipe(c, x, &y);
		uint64_t t1 = bench_ticks();
		if (rc || y != x * x) {
			atomic_store(&hb->failed, 1);
			break;
		}
		hist_record(c->h, (uint64_t)((double)(t1 - t0) * ns_per_tick));
		c->calls++;
	}
	return NULL;
}

/* One run of impl: calls per second, and the merged histogram in h. */
static double one_run(host_bench *hb, int impl, caller *cs, hist *h)
{
	pthread_t t[MAX_THREADS];
	atomic_store(&hb->go, 0);
	atomic_store(&hb->stop, 0);
	pthread_barrier_init(&hb->ready, NULL, (unsigned)hb->threads + 1);
	for (long i = 0; i < hb->threads; i++) {
		cs[i].impl = impl;
		cs[i].calls = 0;
		hist_reset(cs[i].h);
		pthread_create(&t[i], NULL, caller_main, &cs[i]);
	}
	pthread_barrier_wait(&hb->ready);
	uint64_t t0 = bench_now_ns();
	atomic_store(&hb->go, 1);
	struct timespec ts = { hb->ms / 1000, (hb->ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	atomic_store(&hb->stop, 1);
	long calls = 0;
	for (long i = 0; i < hb->threads; i++) {
		pthread_join(t[i], NULL);
		calls += cs[i].calls;
		hist_merge(h, cs[i].h);
	}
	uint64_t wall = bench_now_ns() - t0;
	pthread_barrier_destroy(&hb->ready);
	return (double)calls * 1e9 / (double)wall;
}

int bench_host_call(int argc, char **argv)
{
	long threads = 1, ms = 300, runs = 5;
	const bench_opt opts[] = {
		{ "--threads", &threads, 0, NULL },
		{ "--ms", &ms, 0, NULL },
		{ "--runs", &runs, 0, NULL },
	};
	unsigned schedulers;
	if (bench_vm_opts(argc, argv, opts, 3, &schedulers) < 0)
		return 2;
	if (threads > MAX_THREADS) {
		fprintf(stderr, "krbench host_call: at most %d threads\n", MAX_THREADS);
		return 2;
	}
	kr_config cfg = { .schedulers = schedulers, .log = count_reports };
	int rc = kr_vm_start(&cfg);
	if (rc) {
		fprintf(stderr, "krbench host_call: kr_vm_start: %s\n", kr_strerror(rc));
		return 1;
	}
	host_bench hb = { .threads = threads, .ms = ms, .runs = runs };
	hb.server = kr_spawn(server, &hb);
	caller *cs = calloc((size_t)threads, sizeof *cs);
	hist *h = hist_new();
	double *rate[2], *p50[2], *p99[2];
	int reports[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		rate[k] = calloc((size_t)runs, sizeof(double));
		p50[k] = calloc((size_t)runs, sizeof(double));
		p99[k] = calloc((size_t)runs, sizeof(double));
	}
	for (long i = 0; i < threads; i++) {
		cs[i].hb = &hb;
		cs[i].h = hist_new();
		if (pipe(cs[i].fd) != 0 || !cs[i].h) {
			perror("krbench host_call");
			return 1;
		}
	}
	/* A short warm-up of each, then the runs, alternating. */
	long timed = hb.ms;
	hb.ms = 50;
	for (int k = 0; k < 2; k++) {
		hist_reset(h);
		(void)one_run(&hb, k, cs, h);
	}
	hb.ms = timed;
	for (long r = 0; r < runs && !atomic_load(&hb.failed); r++) {
		for (int k = 0; k < 2; k++) {
			hist_reset(h);
			int before = atomic_load(&watchdog_reports);
			rate[k][r] = one_run(&hb, k, cs, h);
			reports[k] += atomic_load(&watchdog_reports) - before;
			p50[k][r] = (double)hist_percentile(h, 50);
			p99[k][r] = (double)hist_percentile(h, 99);
		}
		fprintf(stderr, "\rhost_call: run %ld/%ld", r + 1, runs);
	}
	fprintf(stderr, "\n");
	kr_send(hb.server, TAG_STOP, NULL, 0);
	kr_vm_stop();
	if (atomic_load(&hb.failed)) {
		fprintf(stderr, "krbench host_call: a call failed or was answered wrong\n");
		return 1;
	}
	for (int k = 0; k < 2; k++) {
		printf("RESULT bench=host_call impl=%s schedulers=%u threads=%ld ms=%ld runs=%ld "
		       "calls_per_s=%.0f p50_ns=%.0f p99_ns=%.0f watchdog_reports=%d\n",
		       impl_name[k], bench_schedulers(schedulers), threads, ms, runs,
		       bench_median(rate[k], (int)runs), bench_median(p50[k], (int)runs),
		       bench_median(p99[k], (int)runs), reports[k]);
		free(rate[k]);
		free(p50[k]);
		free(p99[k]);
	}
	for (long i = 0; i < threads; i++) {
		close(cs[i].fd[0]);
		close(cs[i].fd[1]);
		hist_free(cs[i].h);
	}
	free(cs);
	hist_free(h);
	return 0;
}
