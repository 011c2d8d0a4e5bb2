/*
 * embed.c - krill inside an ordinary threaded C program.
 *
 *     build/embed [N]      (default 100,000 requests)
 *
 * The host program starts a VM and keeps its own thread. A registered
 * process, "squarer", answers requests; it is supervised by nothing but a
 * host-side restart loop, to show that a crash inside the VM leaves the host
 * running. The host thread sends requests with kr_send (sender 0: a host
 * thread has no pid) and gets the answers back through a pipe, the simplest
 * channel a host can wait on; a real program might use an eventfd in its
 * own event loop instead. Halfway through, the host asks the squarer to
 * crash: the crash is reported, the host notices the process is gone,
 * spawns a new one under the same name, and carries on.
 *
 * Read docs/embedding.md alongside.
 */
#include <errno.h>
#include <krill.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SQUARE = 1, CRASH = 2 };

static int answers[2]; /* the pipe: [0] the host reads, [1] processes write */

/* Answers SQUARE(x) with x*x on the pipe; CRASH crashes it. */
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
			/* The host reads each answer before it asks again, so
			 * the pipe never fills and this write never blocks a
			 * scheduler (a write that might would go through
			 * kr_blocking). */
			if (write(answers[1], &y, sizeof y) != (ssize_t)sizeof y)
				kr_crash("the answer pipe failed");
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

/* The host's side of one request: send, then read the answer. */
static int ask(int64_t x, int64_t *y)
{
	for (;;) {
		int rc = kr_send_named("squarer", SQUARE, &x, sizeof x);
		if (rc == KR_ENOPROC) { /* between a crash and its restart */
			start_squarer();
			continue;
		}
		if (rc < 0)
			return rc;
		break;
	}
	ssize_t n;
	while ((n = read(answers[0], y, sizeof *y)) < 0 && errno == EINTR)
		;
	return n == (ssize_t)sizeof *y ? 0 : -1;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	if (n <= 0 || pipe(answers) != 0)
		return 2;
	int rc = kr_vm_start(NULL); /* one scheduler per CPU */
	if (rc < 0) {
		fprintf(stderr, "embed: kr_vm_start: %s\n", kr_strerror(rc));
		return 1;
	}
	kr_pid first = start_squarer();
	int64_t sum = 0, y;
	for (long i = 0; i < n; i++) {
		if (i == n / 2) {
			/* Crash it on purpose, wait until it is gone: the next
			 * request finds no "squarer" and restarts it. */
			kr_send(first, CRASH, NULL, 0);
			while (kr_is_alive(first))
				usleep(100);
		}
		if (ask(i % 1000, &y) < 0) {
			fprintf(stderr, "embed: request %ld failed\n", i);
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
