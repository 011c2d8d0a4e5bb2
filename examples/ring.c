/*
 * ring.c - the classic first krill (and Erlang) program: N processes in a
 * ring pass a token around M times.
 *
 *     build/ring [N] [M]      (default 10,000 processes, 100 laps)
 *
 * Each process waits for a message, forwards it to the next, and exits after
 * the last lap. The root process builds the ring, starts the token and waits
 * for it to come home. Everything here uses only the public API (krill.h).
 */
#include <krill.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { TOKEN = 1 };

typedef struct ring {
	long procs, laps;
	kr_pid root;
} ring;

/* Every process but the root: forward each token to the next in the ring,
 * whose pid is the payload of the first message this process receives. */
static void member(void *arg)
{
	ring *r = arg;
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY))
		return;
	kr_pid next = *(const kr_pid *)m->data;
	kr_msg_free(m);
	for (long lap = 0; lap < r->laps; lap++) {
		if (kr_recv_tag(&m, TOKEN, KR_INFINITY))
			return;
		kr_send(next, TOKEN, m->data, m->len);
		kr_msg_free(m);
	}
}

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void root(void *arg)
{
	ring *r = arg;
	r->root = kr_self();
	double t0 = seconds();
	/* Spawn the ring backwards, so each member can be told its successor. */
	kr_pid next = r->root;
	for (long i = 0; i < r->procs - 1; i++) {
		kr_pid p = kr_spawn(member, r);
		if (p < 0) {
			fprintf(stderr, "ring: spawn failed: %s\n", kr_strerror((int)p));
			return;
		}
		kr_send(p, 0, &next, sizeof next);
		next = p;
	}
	double t1 = seconds();
	long hops = 0, payload = 0;
	kr_send(next, TOKEN, &hops, sizeof hops);
	for (long lap = 0; lap < r->laps; lap++) {
		kr_msg *m;
		kr_recv_tag(&m, TOKEN, KR_INFINITY);
		payload = *(const long *)m->data;
		kr_msg_free(m);
		if (lap + 1 < r->laps)
			kr_send(next, TOKEN, &payload, sizeof payload);
	}
	double t2 = seconds();
	long msgs = r->procs * r->laps;
	printf("ring: %ld processes spawned in %.1f ms (%.0f ns each)\n", r->procs,
	       (t1 - t0) * 1e3, (t1 - t0) * 1e9 / (double)r->procs);
	printf("ring: %ld laps, %ld messages in %.1f ms: %.1f ns per message\n", r->laps, msgs,
	       (t2 - t1) * 1e3, (t2 - t1) * 1e9 / (double)msgs);
}

int main(int argc, char **argv)
{
	ring r = { .procs = argc > 1 ? atol(argv[1]) : 10000, .laps = argc > 2 ? atol(argv[2]) : 100 };
	if (r.procs < 2 || r.laps < 1) {
		fprintf(stderr, "usage: ring [PROCESSES >= 2] [LAPS >= 1]\n");
		return 2;
	}
	int rc = kr_main(NULL, root, &r);
	if (rc < 0)
		fprintf(stderr, "ring: %s\n", kr_strerror(rc));
	return rc < 0;
}
