/*
 * bench_overload.c - K fast senders, one slow receiver: what the sender
 * penalty (vm/send.c backlog_penalty) and a mailbox limit
 * (kr_spawn_opts.max_mailbox) do to the receiver's backlog and the senders.
 *
 * Each sender sends M 8-byte messages as fast as it can; the receiver does
 * --work W iterations of an empty loop per message and samples its own
 * mailbox length (kr_info) every 64 messages. It watches the senders with
 * monitors (a DOWN is a signal: a full mailbox never refuses it) and ends
 * when every sender has ended and its mailbox is empty.
 *
 *   RESULT bench=overload impl=krill limit=L policy=none|drop|kill senders=K
 *     msgs=M peak_queue=Q sent_per_s=X received=R dead_letters=D secs=S
 *
 * sent_per_s: K*M over the time from the go to the last sender's end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "krill.h"

enum { TAG_GO = 1, TAG_DATA = 2 };

static struct {
	long senders, msgs, work, limit, drop;
	uint64_t t_go, t_sent, peak, received;
	int rc;
} ov;

static void sender_fn(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	for (uint64_t s = 0; s < (uint64_t)ov.msgs; s++)
		(void)kr_send(to, TAG_DATA, &s, sizeof s);
}

static void receiver_fn(void *arg)
{
	(void)arg;
	kr_pid me = kr_self();
	long downs = 0;
	ov.t_go = bench_now_ns();
	for (long i = 0; i < ov.senders; i++) {
		kr_ref ref = 0;
		kr_spawn_opts o = { .monitor = &ref };
		if (kr_spawn_opt(sender_fn, (void *)(intptr_t)me, &o) < 0) {
			fprintf(stderr, "krbench overload: spawn failed\n");
			return;
		}
	}
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY) < 0)
			return;
		if (m->tag == KR_TAG_DOWN) {
			if (++downs == ov.senders)
				ov.t_sent = bench_now_ns();
		} else {
			for (volatile long j = 0; j < ov.work; j++)
				;
			if ((++ov.received & 63) == 0) {
				kr_proc_info in;
				if (kr_info(me, &in) == 0 && in.mailbox_len > ov.peak)
					ov.peak = in.mailbox_len;
			}
		}
		kr_msg_free(m);
		if (downs == ov.senders) {
			kr_proc_info in;
			if (kr_info(me, &in) == 0 && in.mailbox_len == 0)
				break;
		}
	}
	ov.rc = 0;
}

static void root_fn(void *arg)
{
	(void)arg;
	kr_vm_stats s0, s1;
	kr_vm_stats_get(&s0);
	kr_ref ref = 0;
	kr_spawn_opts o = { .monitor = &ref, .max_mailbox = (size_t)ov.limit,
	                    .mailbox_policy = ov.drop ? KR_MAILBOX_DROP : KR_MAILBOX_KILL };
	if (kr_spawn_opt(receiver_fn, NULL, &o) < 0)
		return;
	kr_msg *m;
	if (kr_recv_tag(&m, KR_TAG_DOWN, KR_INFINITY) < 0)
		return;
	const kr_down_msg *d = kr_msg_down(m);
	int kind = d ? d->reason.kind : -1;
	kr_msg_free(m);
	kr_vm_stats_get(&s1);
	if (!ov.t_sent)
		ov.t_sent = bench_now_ns();
	double secs = (double)(ov.t_sent - ov.t_go) / 1e9;
	const char *policy = !ov.limit ? "none" : ov.drop ? "drop" : "kill";
	printf("RESULT bench=overload impl=krill schedulers=%zu limit=%ld policy=%s senders=%ld "
	       "msgs=%ld peak_queue=%" PRIu64 " sent_per_s=%.0f received=%" PRIu64
	       " dead_letters=%" PRIu64 " secs=%.3f end=%s\n",
	       s1.schedulers, ov.limit, policy, ov.senders, ov.msgs, ov.peak,
	       (double)ov.senders * (double)ov.msgs / secs, ov.received,
	       s1.dead_letters - s0.dead_letters, secs, kr_exit_kind_name(kind));
	fflush(stdout);
}

int bench_overload(int argc, char **argv)
{
	long senders = 8, msgs = 200000, work = 200, limit = 0, drop = 0;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--senders", .val = &senders },
				   { .name = "--msgs", .val = &msgs },
				   { .name = "--work", .val = &work },
				   { .name = "--limit", .val = &limit },
				   { .name = "--drop", .val = &drop, .flag = 1 } };
	if (bench_vm_opts(argc, argv, opts, 5, &sched) < 0)
		return 2;
	memset(&ov, 0, sizeof ov);
	ov.senders = senders;
	ov.msgs = msgs;
	ov.work = work;
	ov.limit = limit;
	ov.drop = drop;
	ov.rc = 1;
	kr_config cfg = { .schedulers = sched };
	int r = kr_main(&cfg, root_fn, NULL);
	if (bench_vm_failed("overload", r))
		return 1;
	return ov.limit && !ov.drop ? 0 : ov.rc;
}
