/*
 * bench_tcp.c - the machine under dist_pingpong: a small message's round
 * trip over loopback TCP between two plain threads blocking in read()
 * (TCP_NODELAY), with no runtime at all (krbench tcp; dist_pingpong prints
 * it as tcp_rtt_ns). A round trip between two nodes is the same two hops
 * plus each node's work, so this is what a runtime that sleeps in the
 * kernel between messages pays at least. It moves with the host's state
 * (13.6 us in one hour, 48-52 us in another on the same VM); a runtime
 * whose threads spin a while before sleeping, as krill's schedulers do,
 * can come in under it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MSG 16 /* about a SEND_SENDER frame's head */

static int full(int fd, void *buf, int write_it)
{
	size_t done = 0;
	while (done < MSG) {
		ssize_t n = write_it ? write(fd, (char *)buf + done, MSG - done)
		                     : read(fd, (char *)buf + done, MSG - done);
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

typedef struct echo_arg {
	int fd;
	long rounds;
} echo_arg;

static void *echo_main(void *arg)
{
	echo_arg *e = arg;
	char buf[MSG];
	for (long i = 0; i < e->rounds; i++)
		if (full(e->fd, buf, 0) || full(e->fd, buf, 1))
			break;
	return NULL;
}

/* The round trip's p50 and mean in ns over rounds (after a tenth as
 * warm-up); -1 when loopback TCP cannot be set up. */
static int tcp_rtt(long rounds, double *p50, double *mean)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), a = -1, b = -1, one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	long warm = rounds / 10;
	double *t = malloc((size_t)rounds * sizeof *t);
	int rc = -1;
	if (ls < 0 || !t || bind(ls, (struct sockaddr *)&sa, sizeof sa) ||
	    getsockname(ls, (struct sockaddr *)&sa, &len) || listen(ls, 1) ||
	    (a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(a, (struct sockaddr *)&sa, sizeof sa) || (b = accept(ls, NULL, NULL)) < 0)
		goto out;
	setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	echo_arg e = {.fd = b, .rounds = warm + rounds};
	pthread_t th;
	if (pthread_create(&th, NULL, echo_main, &e))
		goto out;
	char buf[MSG] = {0};
	double sum = 0;
	for (long i = 0; i < warm + rounds; i++) {
		uint64_t t0 = bench_now_ns();
		if (full(a, buf, 1) || full(a, buf, 0))
			break;
		if (i >= warm)
			sum += t[i - warm] = (double)(bench_now_ns() - t0);
		if (i + 1 == warm + rounds)
			rc = 0;
	}
	shutdown(a, SHUT_RDWR);
	pthread_join(th, NULL);
	if (rc == 0) {
		*p50 = bench_median(t, (int)rounds);
		*mean = sum / (double)rounds;
	}
out:
	free(t);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	if (ls >= 0)
		close(ls);
	return rc;
}

double bench_tcp_rtt_ns(long rounds)
{
	double p50, mean;
	return tcp_rtt(rounds, &p50, &mean) ? -1 : p50;
}

/* krbench tcp [--rounds N]: the floor, alone. */
int bench_tcp(int argc, char **argv)
{
	long rounds = 20000;
	const char *const names[] = {"--rounds"};
	if (bench_opts(argc, argv, names, &rounds, 1) < 0 || rounds < 10)
		return 2;
	double p50, mean;
	if (tcp_rtt(rounds, &p50, &mean)) {
		fprintf(stderr, "krbench tcp: loopback TCP failed\n");
		return 1;
	}
	printf("RESULT bench=tcp impl=none rounds=%ld tcp_rtt_ns=%.0f tcp_rtt_mean_ns=%.0f\n", rounds,
	       p50, mean);
	printf("tcp: a %d-byte round trip over loopback TCP between two threads: p50 %.1f us, mean "
	       "%.1f us\n", MSG, p50 / 1e3, mean / 1e3);
	return 0;
}
