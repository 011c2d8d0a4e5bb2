/*
 * echo.c - a TCP echo server: an acceptor process, and a process per
 * connection that sends back whatever it reads.
 *
 *     build/echo [--port P]      (default 7777, on 127.0.0.1; 0 picks a free port)
 *
 * Try it with `nc 127.0.0.1 7777`. A line starting with "crash" makes that
 * connection's process crash: its socket is closed all the same (the
 * process owns it), the crash is reported, and every other connection
 * carries on. A connection silent for a minute is closed. Stop the server
 * with Ctrl-C.
 *
 * Everything here uses only the public API (krill.h, which includes
 * krill/io.h). No call here ever blocks a scheduler thread: a process whose
 * socket is not ready parks, and the scheduler runs the others.
 */
#include <arpa/inet.h>
#include <krill.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDLE_MS 60000  /* a connection silent this long is closed */
#define WRITE_MS 10000 /* a client that will not take its echo this long is dropped */

/* One connection: read, write back, until the client closes. The socket
 * was given to this process by the acceptor, so it is closed when this
 * process ends, whether it returns or crashes. */
static void connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	size_t echoed = 0;
	for (;;) {
		ssize_t n = kr_read(fd, buf, sizeof buf, IDLE_MS);
		if (n == 0)
			break; /* the client closed */
		if (n < 0) {
			printf("echo: connection %d: %s\n", fd, kr_strerror((int)n));
			break;
		}
		if (n >= 5 && memcmp(buf, "crash", 5) == 0)
			kr_crash("connection %d was asked to crash", fd);
		if (kr_write(fd, buf, (size_t)n, WRITE_MS) < 0)
			break;
		echoed += (size_t)n;
	}
	printf("echo: connection %d closed after %zu bytes\n", fd, echoed);
}

/* Accept connections for ever, each handed to a process of its own. */
static void acceptor(void *arg)
{
	int lfd = *(const int *)arg;
	kr_fd_own(lfd);
	for (;;) {
		int fd = kr_accept(lfd, KR_INFINITY); /* owned by us until given */
		if (fd < 0) {
			/* Out of descriptors, say: wait a little, then go on. */
			fprintf(stderr, "echo: accept: %s (errno %d)\n", kr_strerror(fd), kr_last_errno());
			kr_sleep(100);
			continue;
		}
		kr_spawn_opts o = { .name = "connection" };
		kr_pid p = kr_spawn_opt(connection, (void *)(intptr_t)fd, &o);
		if (p < 0 || kr_fd_give(fd, p) != 0)
			kr_close(fd);
		else
			printf("echo: connection %d opened\n", fd);
	}
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1024) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		close(fd);
		return -1;
	}
	printf("echo: listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
	fflush(stdout);
	return fd;
}

int main(int argc, char **argv)
{
	int port = 7777;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--port P]\n", argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int lfd = listen_on(port);
	if (lfd < 0) {
		perror("echo: listen");
		return 1;
	}
	int rc = kr_main(NULL, acceptor, &lfd);
	return rc < 0 ? 1 : rc;
}
