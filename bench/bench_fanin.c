/*
 * bench_fanin.c - K senders flooding one receiver with M messages each.
 *
 * The senders are spawned first and wait for a "go"; each notes the time of
 * its first send, then sends its M messages (8 bytes: a sequence number,
 * with the sender's index in the tag) to the root, which receives them all.
 * msgs_per_s = K*M / (last receive - earliest first send). The receiver
 * checks that every message arrives exactly once and that each sender's
 * messages arrive in the order sent.
 *
 * Nothing slows the senders down (there is no flow control, as in Erlang),
 * so when they outrun the receiver its mailbox grows: the peak backlog is
 * part of the picture, and shows in the RSS the run reaches.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "krill.h"

enum { TAG_GO = 1, TAG_DATA0 = 16 }; /* sender i sends with tag TAG_DATA0 + i */

typedef struct fanin {
	long senders, msgs;
	kr_pid root;
	uint64_t *t_first; /* per sender, written before its first send */
	uint64_t *next;    /* per sender, the sequence number the root expects */
	int rc;
} fanin;

static fanin *fi; /* the one run; a sender's argument is its index */

static void sender_fn(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	kr_msg *m;
	if (kr_recv_tag(&m, TAG_GO, KR_INFINITY) < 0)
		return;
	kr_msg_free(m);
	kr_pid to = fi->root;
	uint64_t n = (uint64_t)fi->msgs, tag = TAG_DATA0 + i;
	/* The root reads this after it has received all of this sender's
	 * messages, which the VM orders after this store. */
	fi->t_first[i] = bench_now_ns();
	for (uint64_t s = 0; s < n; s++)
		if (kr_send(to, tag, &s, sizeof s) < 0)
			return; /* the root will count what is missing */
}

static void root_fn(void *arg)
{
	fanin *f = arg;
	f->rc = 1;
	f->root = kr_self();
	kr_vm_stats st;
	if (kr_vm_stats_get(&st) < 0)
		st.schedulers = 0;
	long k = f->senders;
	bench_observer_start();
	kr_pid *pids = calloc((size_t)k, sizeof *pids);
	if (!pids) {
		fprintf(stderr, "krbench fanin: out of memory\n");
		return;
	}
	for (long i = 0; i < k; i++) {
		pids[i] = kr_spawn(sender_fn, (void *)(uintptr_t)i);
		if (pids[i] < 0) {
			fprintf(stderr, "krbench fanin: spawning sender %ld: %s\n", i, kr_strerror((int)pids[i]));
			free(pids);
			return;
		}
	}
	uint64_t total = (uint64_t)k * (uint64_t)f->msgs;
	fprintf(stderr, "fanin: %ld senders x %ld messages\n", k, f->msgs);
	for (long i = 0; i < k; i++) {
		int r = kr_send(pids[i], TAG_GO, NULL, 0);
		if (r < 0) {
			fprintf(stderr, "krbench fanin: starting sender %ld: %s\n", i, kr_strerror(r));
			free(pids);
			return;
		}
	}
	free(pids);

	uint64_t got = 0, note = bench_now_ns();
	while (got < total) {
		kr_msg *m;
		/* No timeout here: arming a timer on every park would be measured
		 * too. A hang is caught by --timeout. */
		int r = kr_recv(&m, KR_INFINITY);
		if (r < 0) {
			fprintf(stderr, "krbench fanin: after %" PRIu64 " of %" PRIu64 " messages: %s\n", got,
				total, kr_strerror(r));
			return;
		}
		uint64_t i = m->tag - TAG_DATA0, seq;
		if (m->tag < TAG_DATA0 || i >= (uint64_t)k || m->len != sizeof seq) {
			fprintf(stderr, "krbench fanin: a stray message (tag %" PRIu64 ")\n", m->tag);
			kr_msg_free(m);
			return;
		}
		memcpy(&seq, m->data, sizeof seq);
		kr_msg_free(m);
		if (seq != f->next[i]) {
			fprintf(stderr, "krbench fanin: sender %" PRIu64 ": message %" PRIu64
				" arrived where %" PRIu64 " was due\n", i, seq, f->next[i]);
			return;
		}
		f->next[i]++;
		if ((++got & 0xfffff) == 0) {
			uint64_t t = bench_now_ns();
			if (t - note > 1000000000u) {
				fprintf(stderr, "fanin: %" PRIu64 "/%" PRIu64 " messages\n", got, total);
				note = t;
			}
		}
	}
	uint64_t t_end = bench_now_ns();
	uint64_t t0 = UINT64_MAX;
	for (long i = 0; i < k; i++)
		if (f->t_first[i] < t0)
			t0 = f->t_first[i];
	double secs = (double)(t_end - t0) / 1e9;
	printf("RESULT bench=fanin impl=krill schedulers=%zu senders=%ld msgs=%ld msgs_per_s=%.0f "
	       "secs=%.4f\n",
	       st.schedulers, k, f->msgs, (double)total / secs, secs);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("fanin: %" PRIu64 " messages from %ld senders in %.3f s: %.2f M messages per second "
	       "(peak RSS %.0f MB)\n",
	       total, k, secs, (double)total / secs / 1e6, (double)ru.ru_maxrss / 1024);
	fflush(stdout);
	bench_observer_stop();
	f->rc = 0;
}

int bench_fanin(int argc, char **argv)
{
	long senders = 100, msgs = 100000;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--senders", .val = &senders },
				   { .name = "--msgs", .val = &msgs } };
	if (bench_vm_opts(argc, argv, opts, 2, &sched) < 0)
		return 2;
	fanin f = { .senders = senders, .msgs = msgs,
		    .t_first = calloc((size_t)senders, sizeof(uint64_t)),
		    .next = calloc((size_t)senders, sizeof(uint64_t)) };
	if (!f.t_first || !f.next) {
		fprintf(stderr, "krbench fanin: out of memory\n");
		return 1;
	}
	fi = &f;
	kr_config cfg = { .schedulers = sched,
			  .max_procs = (size_t)senders + 1024 > 1048576 ? (size_t)senders + 1024 : 0 };
	int r = kr_main(&cfg, root_fn, &f);
	free(f.t_first);
	free(f.next);
	if (bench_vm_failed("fanin", r))
		return 1;
	return f.rc;
}
