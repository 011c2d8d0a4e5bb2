/*
 * chat_demo.c - a scripted session with the chat server, for `make demo`:
 * the tree, a connection's crash, a room's crashes and restarts, a room
 * crashing too often and restarted afresh, and another room that never
 * notices.
 *
 *     build/chat_demo
 *
 * The server (chat_server.c) runs in this program's VM; the clients are
 * plain blocking sockets of the main thread, so the transcript comes out
 * in the order the script runs. "alice <" is what alice's client reads;
 * "alice >" what it sends. krill's own reports (crashes, restarts, giving
 * up) are printed after a "|", at the step that caused them.
 */
#include <arpa/inet.h>
#include <krill.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat_server.h"

#define WAIT_MS 5000

/* ---- krill's reports, held until the script prints them ------------------ */

static pthread_mutex_t reports_lock = PTHREAD_MUTEX_INITIALIZER;
static char reports[16 * 1024];
static size_t nreports;

static void keep_report(int level, const char *line, void *ctx)
{
	(void)ctx;
	int n = (int)strcspn(line, "\n"); /* the first line: a backtrace follows */
	pthread_mutex_lock(&reports_lock);
	int w = snprintf(reports + nreports, sizeof reports - nreports, "    | %s: %.*s\n",
	                 kr_log_level_name(level), n, line);
	if (w > 0 && (size_t)w < sizeof reports - nreports)
		nreports += (size_t)w;
	pthread_mutex_unlock(&reports_lock);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Print the reports that came (waiting a moment for those on their way). */
static void print_reports(void)
{
	sleep_ms(100);
	pthread_mutex_lock(&reports_lock);
	fputs(reports, stdout);
	nreports = 0;
	reports[0] = 0;
	pthread_mutex_unlock(&reports_lock);
}

/* ---- the server, and a look at its tree ----------------------------------- */

enum { STOP = 1 };
static atomic_llong top;
static atomic_int stopped;

static void server(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	chat_opts o = { 0 };
	kr_pid t = chat_start(&o);
	atomic_store(&top, t);
	kr_msg *m;
	if (t > 0 && kr_recv_tag(&m, STOP, KR_INFINITY) == 0)
		chat_stop(t);
	atomic_store(&stopped, 1);
}

static char tree[4096];
static atomic_int tree_done;

static void show(kr_pid sup, int depth, size_t *n)
{
	kr_sup_child kids[16];
	int k = kr_sup_which_children(sup, kids, 16);
	for (int i = 0; i < k && i < 16; i++) {
		kr_proc_info info;
		const char *name = kr_info(kids[i].pid, &info) == 0 ? info.name : "?";
		*n += (size_t)snprintf(tree + *n, sizeof tree - *n, "    %*s%s%s\n", 2 * depth, "",
		                       name, kids[i].type == KR_SUPERVISOR ? " (supervisor)" : "");
		if (kids[i].type == KR_SUPERVISOR)
			show(kids[i].pid, depth + 1, n);
	}
}

static void walk_tree(void *arg)
{
	(void)arg;
	size_t n = (size_t)snprintf(tree, sizeof tree, "    chat (supervisor)\n");
	show(atomic_load(&top), 1, &n);
	atomic_store(&tree_done, 1);
}

static void print_tree(const char *when)
{
	printf("  the tree %s:\n", when);
	atomic_store(&tree_done, 0);
	kr_spawn(walk_tree, NULL);
	while (!atomic_load(&tree_done))
		sleep_ms(1);
	fputs(tree, stdout);
}

/* ---- clients ------------------------------------------------------------- */

typedef struct client {
	const char *name;
	int fd;
	size_t n;
	char buf[8192];
} client;

static int port;

static client *connect_as(const char *name)
{
	client *c = calloc(1, sizeof *c);
	c->name = name;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a)) {
		perror("chat_demo: connect");
		exit(1);
	}
	return c;
}

static void send_line(client *c, const char *line)
{
	printf("  %-5s > %s\n", c->name, line);
	char s[256];
	int n = snprintf(s, sizeof s, "%s\n", line);
	if (write(c->fd, s, (size_t)n) != n) {
		perror("chat_demo: write");
		exit(1);
	}
}

/* Print what c reads until a line starts with until (or the connection
 * ends, if until is NULL). */
static void read_until(client *c, const char *until)
{
	for (;;) {
		char *nl;
		while ((nl = memchr(c->buf, '\n', c->n))) {
			*nl = 0;
			printf("  %-5s < %s\n", c->name, c->buf);
			int done = until && !strncmp(c->buf, until, strlen(until));
			c->n -= (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, c->n);
			if (done)
				return;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		ssize_t r = poll(&p, 1, WAIT_MS) > 0 ? read(c->fd, c->buf + c->n, sizeof c->buf - c->n) : -1;
		if (r <= 0) {
			if (until)
				printf("  %-5s : (no \"%s\" came)\n", c->name, until);
			else
				printf("  %-5s : (the server closed the connection)\n", c->name);
			return;
		}
		c->n += (size_t)r;
	}
}

static client *enter(const char *name, const char *room)
{
	char cmd[64], want[64];
	client *c = connect_as(name);
	read_until(c, "* joined lobby");
	snprintf(cmd, sizeof cmd, "/nick %s", name);
	send_line(c, cmd);
	read_until(c, "* you are now");
	snprintf(cmd, sizeof cmd, "/join %s", room);
	snprintf(want, sizeof want, "* joined %s", room);
	send_line(c, cmd);
	read_until(c, want);
	return c;
}

static void leave(client *c)
{
	close(c->fd);
	free(c);
}

static void step(const char *what)
{
	printf("\n-- %s\n", what);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The default level, notice: crash and supervisor reports (errors),
	 * not the progress reports (info) of every connection's start. */
	kr_config cfg = { .log_handler = keep_report };
	if (kr_vm_start(&cfg)) {
		fprintf(stderr, "chat_demo: the VM did not start\n");
		return 1;
	}
	kr_pid root = kr_spawn(server, NULL);
	while (!atomic_load(&top))
		sleep_ms(1);
	if (atomic_load(&top) < 0) {
		fprintf(stderr, "chat_demo: the server did not start\n");
		return 1;
	}
	port = chat_port();
	printf("the chat server listens on 127.0.0.1:%d (build/chat is the same server)\n", port);

	step("alice and bob meet in room games, carol is in room music");
	client *alice = enter("alice", "games"), *bob = enter("bob", "games");
	client *carol = enter("carol", "music");
	send_line(alice, "hi bob");
	read_until(alice, "alice: hi bob");
	read_until(bob, "alice: hi bob");
	print_tree("now");

	step("bob's connection crashes (/crash): its socket closes, the room carries on");
	send_line(bob, "/crash");
	read_until(bob, NULL);
	leave(bob);
	print_reports();
	send_line(alice, "/who");
	read_until(alice, "* in games");
	bob = enter("bob", "games");

	step("the room games crashes (/crashroom): its supervisor restarts it, its members rejoin");
	send_line(alice, "/crashroom");
	read_until(alice, "* room games restarted");
	read_until(bob, "* room games restarted");
	print_reports();
	send_line(bob, "still here");
	read_until(alice, "bob: still here");
	read_until(bob, "bob: still here");

	step("games crashes three times more within 5 s: its supervisor gives up (3 restarts "
	     "allowed), the rooms supervisor starts games afresh, its members are disconnected");
	for (int i = 0; i < 3; i++) {
		send_line(alice, "/crashroom");
		read_until(alice, i < 2 ? "* room games restarted" : "* disconnected");
	}
	read_until(alice, NULL);
	read_until(bob, NULL);
	print_reports();
	leave(alice);
	leave(bob);

	step("music never noticed; games is there again, empty, for whoever comes");
	send_line(carol, "anyone?");
	read_until(carol, "carol: anyone?");
	client *dave = enter("dave", "games");
	send_line(dave, "/who");
	read_until(dave, "* in games");
	print_tree("now");

	step("stopping the server");
	leave(carol);
	leave(dave);
	kr_send(root, STOP, NULL, 0);
	while (!atomic_load(&stopped))
		sleep_ms(1);
	print_reports();
	kr_vm_stop();
	printf("stopped\n");
	return 0;
}
