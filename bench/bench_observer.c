/*
 * bench_observer.c - `--observer` for the VM benchmarks that call
 * bench_observer_start: the observer runs while they measure, with its
 * page "open": a host thread fetches /api/stats?since=T, /api/processes
 * and /api/trees once a second over one kept-alive connection, as the
 * page does, so that what the benchmark loses is the observer's whole
 * cost (its sampler, its answers, the statistics it reads).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "krill.h"

int bench_observer;

static struct {
	pthread_t thread;
	atomic_int stop;
	int port;
	long requests, bytes, failures;
	uint64_t wait_ns; /* waiting for the answers, in all */
	int running;
} po;

static int connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		return fd;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

/* One GET on fd; the body's length, or -1. The last sample's t into *t
 * for /api/stats. */
static long get(int fd, const char *target, long *t)
{
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", target);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		return -1;
	static char buf[1 << 22];
	size_t have = 0;
	char *end = NULL;
	long want = -1;
	for (;;) {
		if (have >= sizeof buf - 1)
			return -1;
		ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = 0;
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			const char *cl = strstr(buf, "Content-Length: ");
			if (!cl || cl > end)
				return -1;
			want = atol(cl + 16);
		}
		if (end && have >= (size_t)(end + 4 - buf) + (size_t)want)
			break;
	}
	if (t) {
		/* The last "t": of the newest sample. */
		for (char *p = end; (p = strstr(p, "{\"t\": ")); p += 6)
			*t = atol(p + 6);
	}
	return want;
}

static void *poll_page(void *arg)
{
	(void)arg;
	int fd = -1;
	long since = 0;
	while (!atomic_load(&po.stop)) {
		uint64_t t0 = bench_now_ns();
		if (fd < 0)
			fd = connect_to(po.port);
		char stats[64];
		snprintf(stats, sizeof stats, "/api/stats?since=%ld", since);
		const char *targets[] = { stats, "/api/processes", "/api/trees" };
		for (int i = 0; i < 3 && fd >= 0; i++) {
			uint64_t r0 = bench_now_ns();
			long n = get(fd, targets[i], i == 0 ? &since : NULL);
			po.wait_ns += bench_now_ns() - r0;
			if (n < 0) {
				po.failures++;
				close(fd);
				fd = -1;
				break;
			}
			po.requests++;
			po.bytes += n;
		}
		/* The next second, in steps that notice a stop. */
		while (!atomic_load(&po.stop) && bench_now_ns() - t0 < 1000000000u)
			usleep(20000);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

void bench_observer_start(void)
{
	if (!bench_observer)
		return;
	int rc = kr_observer_start(NULL, 0);
	if (rc) {
		fprintf(stderr, "krbench: the observer did not start: %s\n", kr_strerror(rc));
		return;
	}
	po.port = kr_observer_port();
	atomic_store(&po.stop, 0);
	po.requests = po.bytes = po.failures = 0;
	po.wait_ns = 0;
	if (pthread_create(&po.thread, NULL, poll_page, NULL) == 0)
		po.running = 1;
	fprintf(stderr, "observer: http://127.0.0.1:%d/, fetched once a second\n", po.port);
}

static long join_poller(void *arg)
{
	(void)arg;
	pthread_join(po.thread, NULL);
	return 0;
}

void bench_observer_stop(void)
{
	if (!bench_observer || !po.running)
		return;
	atomic_store(&po.stop, 1);
	/* On a helper thread: the poller may wait for an answer that needs
	 * this scheduler. */
	kr_blocking(join_poller, NULL);
	po.running = 0;
	/* Let the poller's connection process see its end first: one ending
	 * as the supervisor stops it is reported (noproc). */
	kr_sleep(50);
	kr_observer_stop();
	fprintf(stderr, "observer: %ld requests answered (%ld bytes), %ld failed; %.1f ms waiting "
	        "for answers in all\n", po.requests, po.bytes, po.failures, (double)po.wait_ns / 1e6);
}
