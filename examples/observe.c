/*
 * observe.c - the demonstration's supervision trees, running, with the
 * observer on: open the address it prints in a browser and watch them.
 *
 *     make observe                 (build/observe [PORT], PORT 8086 by default)
 *
 * Three trees, each failing in its own way, all the time:
 *   - the chat server (examples/chat/): a supervisor per room; simulated
 *     clients talk in three rooms, one crashes its connection now and then
 *     (/crash), and every 15 s a room is crashed (/crashroom) and restarted
 *     by its supervisor;
 *   - "math" (as in examples/supervised.c): a divider asked for 100 / 0
 *     every 5 s, which crashes and is restarted;
 *   - "chatter": 24 workers sending each other a message every 10 ms, so
 *     that the charts have traffic, and a "cruncher" that computes for
 *     about 150 ms of every second (the busiest row of the table, and a
 *     scheduler's utilisation that moves).
 * The observer may kill here (allow_kill): try the button on a worker and
 * watch its supervisor restart it. Ctrl-C stops everything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <krill.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat/chat_server.h"

enum { DIVIDE = 1, ANSWER, HELLO };

/* ---- math: a worker that crashes on bad input -------------------------- */

static void divider(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		int n;
		memcpy(&n, m->data, sizeof n);
		if (n == 0)
			kr_crash("asked to divide 100 by zero");
		int q = 100 / n;
		kr_reply(m, ANSWER, &q, sizeof q);
		kr_msg_free(m);
	}
}

/* Asks the divider (by its registered name) a question a second, the
 * fifth one bad. */
static void asker(void *arg)
{
	(void)arg;
	for (int i = 1;; i++) {
		kr_sleep(1000);
		kr_pid d = kr_whereis("divider");
		int n = i % 5 ? i : 0;
		kr_msg *reply;
		if (d > 0 && kr_call(d, DIVIDE, &n, sizeof n, &reply, 1000) == 0)
			kr_msg_free(reply);
	}
}

static int register_divider(void *arg)
{
	(void)arg;
	return kr_register("divider", kr_self());
}

static void math(void *arg)
{
	(void)arg;
	static const kr_child_spec kids[] = {
		{ .id = "divider", .start = divider, .init = register_divider },
		{ .id = "asker", .start = asker },
	};
	static const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 3,
		                            .period_ms = 5000 };
	kr_sup_run(&flags, kids, 2);
}

/* ---- chatter: steady messages between workers -------------------------- */

#define CHATTERS 24
static _Atomic kr_pid chatters[CHATTERS];

static void chatter(void *arg)
{
	int me = (int)(intptr_t)arg;
	atomic_store(&chatters[me], kr_self());
	unsigned seed = (unsigned)me * 2654435761u;
	for (;;) {
		kr_msg *m;
		while (kr_recv(&m, 0) == 0)
			kr_msg_free(m);
		seed = seed * 1664525u + 1013904223u;
		kr_pid to = atomic_load(&chatters[(seed >> 8) % CHATTERS]);
		if (to > 0)
			kr_send(to, HELLO, &me, sizeof me);
		kr_sleep(10);
	}
}

/* Busy for about ms of wall time, yielding at every KR_CHECK's budget. */
static void crunch(long ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	volatile unsigned long x = 1;
	do {
		for (int i = 0; i < 10000; i++)
			x = x * 6364136223846793005ul + 1442695040888963407ul;
		KR_CHECK();
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

static void cruncher(void *arg)
{
	(void)arg;
	for (;;) {
		crunch(150);
		kr_sleep(850);
	}
}

static void chatter_sup(void *arg)
{
	(void)arg;
	kr_child_spec kids[CHATTERS + 1] = { { .id = "cruncher", .start = cruncher } };
	char ids[CHATTERS][16];
	for (int i = 0; i < CHATTERS; i++) {
		snprintf(ids[i], sizeof ids[i], "chatter%d", i);
		kids[i + 1] = (kr_child_spec){ .id = ids[i], .start = chatter, .arg = (void *)(intptr_t)i };
	}
	static const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 10,
		                            .period_ms = 10000 };
	kr_sup_run(&flags, kids, CHATTERS + 1);
}

/* ---- the root ------------------------------------------------------------ */

static void root(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	chat_opts co = { .port = 0 };
	if (chat_start(&co) < 0)
		fprintf(stderr, "observe: the chat server did not start\n");
	static const kr_child_spec trees[] = {
		{ .id = "math", .start = math, .type = KR_SUPERVISOR },
		{ .id = "chatter", .start = chatter_sup, .type = KR_SUPERVISOR },
	};
	static const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 5,
		                            .period_ms = 10000 };
	if (kr_sup_start_link(&flags, trees, 2, "demo") < 0)
		fprintf(stderr, "observe: the demo tree did not start\n");
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) /* exit messages; the VM's stop ends us */
		kr_msg_free(m);
}

/* ---- the chat clients: plain sockets of the main thread ------------------- */

#define CLIENTS 9
static const char *rooms[] = { "lobby", "ops", "random" };

static void say(int fd, const char *text)
{
	if (fd >= 0) /* a line fits the socket's buffer; a closed one is seen by read */
		(void)!send(fd, text, strlen(text), MSG_NOSIGNAL);
}

/* Client i, connected, named and in its room; -1 if the server is gone. */
static int client_connect(int i)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)chat_port()),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	char line[64];
	snprintf(line, sizeof line, "/nick user%d\n/join %s\n", i, rooms[i % 3]);
	say(fd, line);
	return fd;
}

/* Read what the room said; reconnect a client whose connection ended. */
static void drain(int *fd, int i)
{
	char junk[4096];
	ssize_t r = -1;
	while (*fd >= 0 && (r = read(*fd, junk, sizeof junk)) > 0)
		;
	if (*fd >= 0 && (r == 0 || (r < 0 && errno != EAGAIN))) {
		close(*fd);
		*fd = -1;
	}
	if (*fd < 0)
		*fd = client_connect(i); /* after a /crash, come back */
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 8086;
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* before the schedulers start: they inherit it */
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	kr_config cfg = { .log_level = KR_LOG_NONE }; /* the page shows the crashes */
	if (kr_vm_start(&cfg) != 0)
		return 1;
	kr_observer_opts o = { .port = (uint16_t)port, .allow_kill = 1 };
	int rc = kr_observer_start_opts(&o);
	if (rc != 0 && port != 0) {
		fprintf(stderr, "observe: port %d: %s; taking any free port\n", port, kr_strerror(rc));
		o.port = 0;
		rc = kr_observer_start_opts(&o);
	}
	if (rc != 0) {
		fprintf(stderr, "observe: the observer did not start: %s\n", kr_strerror(rc));
		return 1;
	}
	kr_spawn(root, NULL);
	while (chat_port() == 0)
		usleep(1000);
	printf("krill observer: http://127.0.0.1:%d/\n", kr_observer_port());
	printf("(the chat server of examples/chat/ listens on 127.0.0.1:%d; Ctrl-C stops)\n",
	       chat_port());
	fflush(stdout);

	int fds[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		fds[i] = client_connect(i);
	for (long tick = 1;; tick++) {
		struct pollfd pf = { .fd = sfd, .events = POLLIN };
		if (poll(&pf, 1, 100) > 0)
			break;
		for (int i = 0; i < CLIENTS; i++) {
			drain(&fds[i], i);
			if (tick % CLIENTS == i)
				say(fds[i], "hello, room\n");
		}
		if (tick % 30 == 0) /* every 3 s a connection crashes */
			say(fds[(tick / 30) % CLIENTS], "/crash\n");
		if (tick % 150 == 0) /* every 15 s a room */
			say(fds[(tick / 150) % 3], "/crashroom\n");
	}
	printf("\nstopping\n");
	for (int i = 0; i < CLIENTS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	kr_observer_stop();
	kr_vm_stop();
	return 0;
}
