/*
 * embed.c - krill inside an ordinary threaded C program.
 *
 *     build/embed [N]      (default 100,000 requests)
 *
 * The host program starts a VM and keeps its own thread. A registered
 * process, "squarer", answers requests; it is supervised by nothing but a
 * host-side restart loop, to show that a crash inside the VM leaves the host
 * running. The host thread asks with kr_call, as a process would: its first
 * call gives it a mailbox of its own, the answer comes back there, and it
 * waits on a futex (a short spin first), not on a pipe. Halfway through,
 * the host asks the squarer to crash: the crash is reported, the host's
 * next call finds no squarer (KR_ENOPROC), spawns a new one under the same
 * name, and carries on.
 *
 * Read docs/embedding.md alongside.
 */
#include <krill.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SQUARE = 1, CRASH = 2 };

/* Answers SQUARE(x) with x*x; CRASH crashes it. */
static void squarer(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		if (m->tag == CRASH)
			kr_crash("asked to crash by the host");
		int64_t x;
		if (m->tag == SQUARE && m->len == sizeof x) {
			memcpy(&x, m->data, sizeof x);
			int64_t y = x * x;
			kr_reply(m, SQUARE, &y, sizeof y); /* to the caller, host thread or not */
		}
		kr_msg_free(m);
	}
}

static kr_pid start_squarer(void)
{
	kr_pid p = kr_spawn(squarer, NULL);
	if (p < 0 || kr_register("squarer", p) < 0) {
		fprintf(stderr, "embed: could not start the squarer: %s\n", kr_strerror((int)p));
		exit(1);
	}
	return p;
}

/* The host's side of one request: a call, with a timeout. */
static int ask(int64_t x, int64_t *y)
{
	for (;;) {
		kr_msg *r;
		kr_pid sq = kr_whereis("squarer");
		int rc = sq < 0 ? (int)sq : kr_call(sq, SQUARE, &x, sizeof x, &r, 5000);
		if (rc == KR_ENOPROC) { /* gone, or ended before answering */
			start_squarer();
			continue;
		}
		if (rc < 0)
			return rc;
		memcpy(y, r->data, sizeof *y);
		kr_msg_free(r);
		return 0;
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	if (n <= 0)
		return 2;
	int rc = kr_vm_start(NULL); /* one scheduler per CPU */
	if (rc < 0) {
		fprintf(stderr, "embed: kr_vm_start: %s\n", kr_strerror(rc));
		return 1;
	}
	kr_pid first = start_squarer();
	/* The host thread watches the first squarer: its crash comes to the
	 * thread's mailbox as a DOWN message. */
	kr_ref watch = kr_monitor(first);
	int64_t sum = 0, y;
	for (long i = 0; i < n; i++) {
		if (i == n / 2) {
			/* Crash it on purpose and wait for its DOWN: the next
			 * request finds no "squarer" and restarts it. */
			kr_send(first, CRASH, NULL, 0);
			kr_msg *m;
			if (kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0) {
				const kr_down_msg *d = kr_msg_down(m);
				char why[160];
				printf("embed: the squarer ended (%s), as asked\n",
				       d && d->ref == watch ? kr_reason_format(&d->reason, why, sizeof why)
				                            : "?");
				kr_msg_free(m);
			}
		}
		if ((rc = ask(i % 1000, &y)) < 0) {
			fprintf(stderr, "embed: request %ld failed: %s\n", i, kr_strerror(rc));
			return 1;
		}
		sum += y;
	}
	kr_pid now = kr_whereis("squarer");
	printf("embed: %ld requests answered from the host thread, sum of squares %lld\n", n,
	       (long long)sum);
	printf("embed: the squarer crashed halfway and was restarted (%s pid now)\n",
	       now != first ? "a new" : "the same");
	kr_vm_stop();
	return 0;
}
