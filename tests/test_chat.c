/*
 * test_chat.c - the chat server (examples/chat/) end to end: the real
 * server, started in-process on an ephemeral port, and real TCP clients.
 *
 * The clients are the test thread's own blocking sockets, read with
 * poll() and a deadline, so every check runs on the test thread (where
 * Criterion's asserts belong) and a hung server fails a test instead of
 * hanging it. What is checked: the greeting, delivery (every member gets
 * every line of its room, in one order, the sender included, as
 * "NAME: text"), /nick /join /who /quit; a connection's crash (its socket
 * closes, its room carries on, the report names it); a room crashing
 * (its supervisor restarts it and its members join it again) and crashing
 * too often (its supervisor gives up, its members are disconnected, the
 * rooms supervisor starts it afresh) while another room keeps delivering;
 * bad input (long lines, NULs and invalid UTF-8, \r\n, abrupt resets,
 * half-closed connections) and a client that never reads (dropped, while
 * the others get everything). Every test ends by stopping the server and
 * checking that no process and no descriptor of it is left.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../examples/chat/chat_server.h"
#include "krill.h"
#include "vm_util.h"

TestSuite(chat, .fini = vm_fini, .timeout = 120);

/* A reply or a line may take this long under qemu or TSan. */
#define WAIT_MS 20000

/* ---- the server, run by a process of the test ---------------------------- */

enum { STOP = 1 };

static chat_opts srv_opts;
static atomic_llong srv_top;
static atomic_llong srv_root;
static atomic_int srv_done;

static void server_root(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_pid top = chat_start(&srv_opts);
	VM_CHECK(top > 0, "chat_start: %lld", (long long)top);
	atomic_store(&srv_top, top);
	kr_msg *m;
	if (top > 0 && kr_recv_tag(&m, STOP, KR_INFINITY) == 0) {
		kr_msg_free(m);
		int rc = chat_stop(top);
		VM_CHECK(rc == 0, "chat_stop: %d", rc);
	}
	atomic_store(&srv_done, 1);
}

/* krill's reports, kept for the tests to look at. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[64 * 1024];
static size_t log_len;

static void keep_log(const char *line, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	size_t n = strcspn(line, "\n"); /* the first line: a backtrace follows */
	if (log_len + n + 2 < sizeof log_buf) {
		memcpy(log_buf + log_len, line, n);
		log_len += n;
		log_buf[log_len++] = '\n';
		log_buf[log_len] = 0;
	}
	pthread_mutex_unlock(&log_lock);
}

/* Is there a report line holding all of these (NULL-terminated)? */
static bool logged(const char *first, ...)
{
	bool found = false;
	pthread_mutex_lock(&log_lock);
	for (char *line = log_buf; *line && !found;) {
		char *end = strchr(line, '\n');
		*end = 0;
		found = true;
		va_list ap;
		va_start(ap, first);
		for (const char *s = first; s && found; s = va_arg(ap, const char *))
			found = strstr(line, s) != NULL;
		va_end(ap);
		*end = '\n';
		line = end + 1;
	}
	pthread_mutex_unlock(&log_lock);
	return found;
}

static int server_start(const chat_opts *o)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	srv_opts = o ? *o : (chat_opts){ 0 };
	kr_config cfg = { .log = keep_log };
	vm_start_cfg(&cfg);
	atomic_store(&srv_done, 0);
	atomic_store(&srv_top, 0);
	atomic_store(&srv_root, vm_spawn(server_root, NULL));
	cr_assert(VM_WAIT(atomic_load(&srv_top) != 0 || atomic_load(&srv_done), WAIT_MS));
	cr_assert_gt(atomic_load(&srv_top), 0, "the server did not start");
	int port = chat_port();
	cr_assert_gt(port, 0);
	return port;
}

static size_t io_owned(void)
{
	kr_io_stats s;
	return kr_io_stats_get(&s) == 0 ? s.owned : (size_t)-1;
}

/* Stop the server: every process of it ends, every socket it owned is
 * closed, nothing is leaked. */
static void server_stop(void)
{
	cr_assert_eq(kr_send(atomic_load(&srv_root), STOP, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&srv_done), WAIT_MS), "chat_stop did not return");
	cr_assert(VM_WAIT(vm_alive() == 0, WAIT_MS), "%zu processes left", vm_alive());
	cr_assert_eq(io_owned(), 0, "%zu descriptors still owned", io_owned());
	vm_assert_clean();
	vm_stop();
}

/* ---- clients: the test thread's own sockets -------------------------------- */

typedef struct client {
	int fd;
	size_t n;
	char buf[64 * 1024];
} client;

/* A line as read: its bytes (NULs allowed) and length, without the \n. */
typedef struct line {
	size_t len;
	char s[8192];
} line;

static client *connect_to(int port, int rcvbuf)
{
	client *c = calloc(1, sizeof *c);
	cr_assert_not_null(c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(c->fd, 0, "socket: %s", strerror(errno));
	if (rcvbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s",
	             strerror(errno));
	return c;
}

static void client_free(client *c)
{
	close(c->fd);
	free(c);
}

/* Read more, waiting up to ms: bytes read, 0 at the end, -1 on timeout or
 * a reset. */
static ssize_t more(client *c, long ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	if (poll(&p, 1, (int)ms) <= 0)
		return -1;
	cr_assert_lt(c->n, sizeof c->buf, "a line longer than the buffer");
	ssize_t n = read(c->fd, c->buf + c->n, sizeof c->buf - c->n);
	if (n > 0)
		c->n += (size_t)n;
	return n < 0 ? -1 : n;
}

/* The next line: true, or false at the end of the stream or after ms. */
static bool next_line(client *c, line *l, long ms)
{
	int64_t end = vm_now_ns() + ms * 1000000;
	char *nl;
	while (!(nl = memchr(c->buf, '\n', c->n))) {
		long left = (long)((end - vm_now_ns()) / 1000000);
		if (left <= 0 || more(c, left) <= 0)
			return false;
	}
	l->len = (size_t)(nl - c->buf);
	cr_assert_lt(l->len, sizeof l->s);
	memcpy(l->s, c->buf, l->len);
	l->s[l->len] = 0;
	c->n -= l->len + 1;
	memmove(c->buf, nl + 1, c->n);
	return true;
}

static void say(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(client *c, const char *fmt, ...)
{
	char s[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(s, sizeof s - 1, fmt, ap);
	va_end(ap);
	s[n++] = '\n';
	cr_assert_eq(write(c->fd, s, (size_t)n), n, "write: %s", strerror(errno));
}

/* Skip lines until one starts with prefix; it is left in l. */
static void expect(client *c, line *l, const char *prefix)
{
	for (;;) {
		cr_assert(next_line(c, l, WAIT_MS), "no line starting with \"%s\"", prefix);
		if (!strncmp(l->s, prefix, strlen(prefix)))
			return;
	}
}

/* The next chat line (notices, "* ...", are skipped) must be exactly s. */
static void expect_chat(client *c, const char *s)
{
	line l;
	do
		cr_assert(next_line(c, &l, WAIT_MS), "no line, waiting for \"%s\"", s);
	while (l.s[0] == '*');
	cr_assert_str_eq(l.s, s);
}

/* The connection ends (end of file or reset) within ms, whatever comes first. */
static bool ends(client *c, long ms)
{
	int64_t end = vm_now_ns() + ms * 1000000;
	for (;;) {
		long left = (long)((end - vm_now_ns()) / 1000000);
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			return false;
		char sink[4096];
		if (read(c->fd, sink, sizeof sink) <= 0)
			return true;
	}
}

/* The end of a test: close these clients (a NULL-terminated list), then
 * stop the server. */
static void finish(client *c, ...)
{
	va_list ap;
	va_start(ap, c);
	for (; c; c = va_arg(ap, client *))
		client_free(c);
	va_end(ap);
	server_stop();
}

/* A client greeted and in the lobby, then named. */
static client *join_as(int port, const char *nick, const char *room)
{
	client *c = connect_to(port, 0);
	line l;
	expect(c, &l, "* welcome to krill chat, guest");
	expect(c, &l, "* joined lobby (");
	say(c, "/nick %s", nick);
	expect(c, &l, "* you are now ");
	cr_assert_str_eq(l.s + strlen("* you are now "), nick);
	if (room && strcmp(room, "lobby")) {
		char want[64];
		say(c, "/join %s", room);
		snprintf(want, sizeof want, "* joined %s (", room);
		expect(c, &l, want);
	}
	return c;
}

/* /who until the room lists exactly n members (membership changes are
 * asynchronous: a member that has gone is forgotten when its room sees it
 * end), and the list holds each of the names given. */
static void who_is(client *c, int n, ...)
{
	char want[32];
	snprintf(want, sizeof want, "(%d):", n);
	line l;
	int64_t end = vm_now_ns() + WAIT_MS * (int64_t)1000000;
	for (;;) {
		say(c, "/who");
		expect(c, &l, "* in ");
		if (strstr(l.s, want))
			break;
		cr_assert_lt(vm_now_ns(), end, "the room never had %d members: %s", n, l.s);
		vm_host_sleep_ms(20);
	}
	va_list ap;
	va_start(ap, n);
	for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
		cr_assert_not_null(strstr(l.s, s), "%s is not in \"%s\"", s, l.s);
	va_end(ap);
}

/* ---- delivery ------------------------------------------------------------ */

Test(chat, greets_and_delivers_every_line_to_every_member_in_one_order)
{
	int port = server_start(NULL);
	client *c[3];
	const char *nick[3] = { "alice", "bob", "carol" };
	for (int i = 0; i < 3; i++)
		c[i] = join_as(port, nick[i], NULL);
	/* Interleaved: each says k lines, one at a time, round robin. */
	int k = 200 / VM_LIGHT_DIV + 5;
	for (int j = 0; j < k; j++)
		for (int i = 0; i < 3; i++)
			say(c[i], "line %d from %s", j, nick[i]);
	/* Everyone, the sender included, gets all 3k as "NAME: text", each
	 * sender's in order, and all in the same order. */
	char (*seen)[64] = calloc((size_t)(3 * k), 64);
	for (int i = 0; i < 3; i++) {
		int next[3] = { 0 };
		for (int n = 0; n < 3 * k; n++) {
			line l;
			do
				cr_assert(next_line(c[i], &l, WAIT_MS), "%s got %d lines of %d", nick[i], n,
				          3 * k);
			while (l.s[0] == '*');
			int from = -1, j = -1;
			char name[16], name2[16];
			cr_assert_eq(sscanf(l.s, "%15[a-z]: line %d from %15s", name, &j, name2), 3,
			             "a malformed line: %s", l.s);
			for (int x = 0; x < 3; x++)
				if (!strcmp(name, nick[x]))
					from = x;
			cr_assert(from >= 0 && !strcmp(name, name2), "%s", l.s);
			cr_assert_eq(j, next[from], "%s: line %d from %s where %d was due", nick[i], j,
			             name, next[from]);
			next[from]++;
			if (i == 0)
				snprintf(seen[n], 64, "%.63s", l.s);
			else
				cr_assert_str_eq(l.s, seen[n], "%s saw another order than alice", nick[i]);
		}
	}
	free(seen);
	for (int i = 0; i < 3; i++)
		client_free(c[i]);
	server_stop();
}

/* An idle connection's reader and writer hibernate (they hold no stack
 * while nothing comes for them) and wake for the next line. */
Test(chat, idle_connections_readers_and_writers_hibernate_and_wake_for_the_next_line)
{
	int port = server_start(NULL);
	client *a = join_as(port, "alice", NULL), *b = join_as(port, "bob", NULL);
	line l;
	while (next_line(a, &l, 200)) /* bob's arrival */
		;
	/* Past every idle time (the writers' and the supervisors' a join
	 * woke): whatever hibernates has. */
	vm_host_sleep_ms(2500);
	size_t asleep = vm_stats().hibernating;
	say(a, "after a nap");
	expect_chat(b, "alice: after a nap");
	expect_chat(a, "alice: after a nap");
	/* The line woke alice's reader and the two writers (the room does
	 * not hibernate; nothing else took part). */
	size_t awake = vm_stats().hibernating;
	cr_assert(awake + 3 <= asleep, "%zu hibernating before the line, %zu after it: the reader "
	          "and the writers were not all asleep", asleep, awake);
	cr_assert(VM_WAIT(vm_stats().hibernating == asleep, 10000), "they did not go back to sleep");
	client_free(a);
	client_free(b);
	server_stop();
}

/* Many clients in several rooms, all talking at once: each gets exactly
 * its room's lines. */
Test(chat, many_clients_in_several_rooms_each_get_exactly_their_rooms_lines)
{
	int port = server_start(NULL);
	int n = KR_TEST_MIN(200 / VM_LIGHT_DIV + 8, 200), rooms = 4, k = 10;
	client **c = calloc((size_t)n, sizeof *c);
	char nick[16], room[16];
	for (int i = 0; i < n; i++) {
		snprintf(nick, sizeof nick, "c%d", i);
		snprintf(room, sizeof room, "r%d", i % rooms);
		c[i] = join_as(port, nick, room);
	}
	for (int j = 0; j < k; j++)
		for (int i = 0; i < n; i++)
			say(c[i], "%d", j);
	int *next = calloc((size_t)n, sizeof *next);
	for (int i = 0; i < n; i++) {
		int members = n / rooms + (i % rooms < n % rooms);
		memset(next, 0, (size_t)n * sizeof *next);
		for (int got = 0; got < members * k; got++) {
			line l;
			do
				cr_assert(next_line(c[i], &l, WAIT_MS), "c%d got %d lines of %d", i, got,
				          members * k);
			while (l.s[0] == '*');
			int from, j;
			cr_assert_eq(sscanf(l.s, "c%d: %d", &from, &j), 2, "%s", l.s);
			cr_assert(from >= 0 && from < n && from % rooms == i % rooms,
			          "c%d (room r%d) got a line of c%d", i, i % rooms, from);
			cr_assert_eq(j, next[from], "c%d: line %d of c%d where %d was due", i, j, from,
			             next[from]);
			next[from]++;
		}
	}
	free(next);
	for (int i = 0; i < n; i++)
		client_free(c[i]);
	free(c);
	server_stop();
}

/* ---- commands ------------------------------------------------------------ */

Test(chat, nick_join_who_and_quit)
{
	int port = server_start(NULL);
	client *a = join_as(port, "alice", NULL), *b = join_as(port, "bob", NULL);
	line l;
	who_is(a, 2, "alice", "bob", NULL);

	say(a, "/nick no spaces");
	expect(a, &l, "* a nick is ");
	say(a, "/nick %s", "x123456789012345678901234"); /* 25: one too many */
	expect(a, &l, "* a nick is ");
	say(a, "/frobnicate");
	expect(a, &l, "* unknown command /frobnicate");

	/* /join: the lobby's lines no longer reach alice; x's do. */
	say(a, "/join x");
	expect(a, &l, "* joined x (1 member)");
	say(a, "/join x");
	expect(a, &l, "* you are in that room already");
	say(a, "/join bad/name");
	expect(a, &l, "* a room name is ");
	say(b, "in the lobby");
	expect_chat(b, "bob: in the lobby");
	say(a, "in x");
	expect_chat(a, "alice: in x");
	who_is(a, 1, "alice", NULL);
	who_is(b, 1, "bob", NULL);
	say(b, "/join x");
	expect(b, &l, "* joined x (2 members)");
	who_is(b, 2, "alice", "bob", NULL);

	/* Lines sent right behind a /join, in one write, are said in the new
	 * room: the new reader gets what the old one had read. */
	cr_assert_eq(write(a->fd, "/join y\nfirst in y\n", 19), 19);
	expect(a, &l, "* joined y (1 member)");
	expect_chat(a, "alice: first in y");

	/* /nick in a room: the room knows the new name. */
	say(b, "/nick robert");
	expect(b, &l, "* you are now robert");
	say(b, "hello");
	expect_chat(b, "robert: hello");
	who_is(b, 1, "robert", NULL);

	/* /quit: a goodbye, then the end. */
	say(a, "/quit");
	expect(a, &l, "* bye");
	cr_assert(ends(a, WAIT_MS));
	finish(a, b, NULL);
}

/* The counts of the top, rooms, x's and the lobby's supervisors, asked
 * from a process (supervisor requests are for processes). */
static kr_sup_counts shape[4];
static int shape_rc[4];
static atomic_int shape_done;

static void ask_shape(void *arg)
{
	(void)arg;
	kr_pid sups[4] = { atomic_load(&srv_top), kr_whereis("chat:rooms"), kr_whereis("rsup:x"),
		           kr_whereis("rsup:lobby") };
	for (int i = 0; i < 4; i++)
		shape_rc[i] = kr_sup_count_children(sups[i], &shape[i]);
	atomic_store(&shape_done, 1);
}

static void ask(void)
{
	atomic_store(&shape_done, 0);
	vm_spawn(ask_shape, NULL);
	cr_assert(VM_WAIT(atomic_load(&shape_done), WAIT_MS));
}

/* Ask until supervisor i has this many specs: a reader that has ended
 * (after a /join, a /quit) is forgotten when its supervisor has taken its
 * exit, which may come after the client has seen the end. */
static void ask_until(int i, size_t specs)
{
	int64_t end = vm_now_ns() + WAIT_MS * (int64_t)1000000;
	do
		ask();
	while (shape[i].specs != specs && vm_now_ns() < end);
}

static void expect_counts(int i, size_t specs, size_t active, size_t supervisors, size_t workers)
{
	cr_assert_eq(shape_rc[i], 0, "count_children of supervisor %d: %d", i, shape_rc[i]);
	cr_assert_eq(shape[i].specs, specs, "supervisor %d: %zu specs", i, shape[i].specs);
	cr_assert_eq(shape[i].active, active, "supervisor %d: %zu active", i, shape[i].active);
	cr_assert_eq(shape[i].supervisors, supervisors);
	cr_assert_eq(shape[i].workers, workers);
}

Test(chat, the_tree_has_a_supervisor_per_room_under_the_rooms_supervisor)
{
	int port = server_start(NULL);
	client *a = join_as(port, "alice", "x"), *b = join_as(port, "bob", NULL);
	client *c = join_as(port, "carol", NULL);
	cr_assert_gt(kr_whereis("room:lobby"), 0);
	cr_assert_gt(kr_whereis("room:x"), 0);
	ask_until(3, 3);
	expect_counts(0, 2, 2, 1, 1); /* top: the rooms supervisor, the acceptor */
	expect_counts(1, 2, 2, 2, 0); /* rooms: lobby's and x's supervisors */
	expect_counts(2, 2, 2, 0, 2); /* x: its room, alice's connection */
	expect_counts(3, 3, 3, 0, 3); /* lobby: its room, bob's and carol's */
	/* A connection that ends is forgotten (temporary child). */
	say(c, "/quit");
	cr_assert(ends(c, WAIT_MS));
	client_free(c);
	ask_until(3, 2);
	expect_counts(3, 2, 2, 0, 2);
	finish(a, b, NULL);
}

/* ---- crashes ------------------------------------------------------------- */

Test(chat, a_crashed_connection_is_closed_and_its_room_carries_on)
{
	int port = server_start(NULL);
	client *a = join_as(port, "alice", NULL), *b = join_as(port, "bob", NULL);
	line l;
	say(b, "/crash");
	/* bob is told, and his socket closes (its owner ended). */
	expect(b, &l, "* disconnected: error: /crash by bob");
	cr_assert(ends(b, WAIT_MS), "bob's connection was not closed");
	/* The report names the connection and its room; its supervisor's
	 * report comes after it, once the supervisor has taken the exit
	 * signal in: wait for each. */
	cr_assert(VM_WAIT(logged("conn ", " in lobby", "crashed: error: /crash by bob", NULL), WAIT_MS),
	          "no crash report naming the connection:\n%s", log_buf);
	cr_assert(VM_WAIT(logged("supervisor", "rsup lobby", "/crash by bob", NULL), WAIT_MS),
	          "no report from the connection's supervisor:\n%s", log_buf);
	/* The room forgot bob and goes on, for alice and for newcomers. */
	who_is(a, 1, "alice", NULL);
	client *c = join_as(port, "carol", NULL);
	say(a, "still here");
	expect_chat(a, "alice: still here");
	expect_chat(c, "alice: still here");
	who_is(c, 2, "alice", "carol", NULL);
	finish(a, b, c, NULL);
}

/* Crash the room's process and wait until both its members are back in
 * the restarted one. */
static void crash_room(client *crasher, client *other, const char *room, const char *by)
{
	char crashed[96], back[96];
	snprintf(crashed, sizeof crashed, "* room %s crashed (error: /crashroom by %s)", room, by);
	snprintf(back, sizeof back, "* room %s restarted: you are back in it", room);
	say(crasher, "/crashroom");
	line l;
	expect(crasher, &l, crashed);
	expect(crasher, &l, back);
	expect(other, &l, crashed);
	expect(other, &l, back);
}

Test(chat, a_crashing_room_is_restarted_and_one_crashing_too_often_afresh)
{
	/* A long period, so that the fourth crash is surely within it even
	 * under qemu: 3 restarts are allowed, the fourth crash is one too many. */
	chat_opts o = { .room_period_ms = 120000 };
	int port = server_start(&o);
	client *a = join_as(port, "alice", "x"), *b = join_as(port, "bob", "x");
	client *c = join_as(port, "carol", "y"), *d = join_as(port, "dave", "y");
	kr_pid x_sup = kr_whereis("rsup:x"), y_sup = kr_whereis("rsup:y");
	kr_pid y_room = kr_whereis("room:y");
	cr_assert_gt(x_sup, 0);
	/* Three crashes: each time x's supervisor restarts the room, its
	 * members join it again and it delivers; y delivers throughout. */
	for (int i = 0; i < 3; i++) {
		kr_pid x_room = kr_whereis("room:x");
		crash_room(a, b, "x", "alice");
		cr_assert_neq(kr_whereis("room:x"), x_room, "room x was not restarted");
		cr_assert_eq(kr_whereis("rsup:x"), x_sup, "x's supervisor should have restarted it");
		char s[32];
		snprintf(s, sizeof s, "after crash %d", i + 1);
		say(b, "%s", s);
		snprintf(s, sizeof s, "bob: after crash %d", i + 1);
		expect_chat(a, s);
		expect_chat(b, s);
		say(c, "y goes on %d", i);
		snprintf(s, sizeof s, "carol: y goes on %d", i);
		expect_chat(c, s);
		expect_chat(d, s);
	}
	cr_assert(VM_WAIT(logged("room x", "crashed: error: /crashroom by alice", NULL), WAIT_MS), "%s",
	          log_buf);
	/* The fourth: x's supervisor gives up, its members are disconnected,
	 * and the rooms supervisor starts x afresh. */
	say(a, "/crashroom");
	line l;
	expect(a, &l, "* disconnected: shutdown");
	cr_assert(ends(a, WAIT_MS));
	expect(b, &l, "* disconnected: shutdown");
	cr_assert(ends(b, WAIT_MS));
	cr_assert(VM_WAIT(kr_whereis("rsup:x") > 0 && kr_whereis("rsup:x") != x_sup, WAIT_MS),
	          "x's supervisor was not restarted");
	cr_assert(VM_WAIT(logged("rsup x", "max restart intensity", NULL), WAIT_MS), "%s", log_buf);
	client *e = join_as(port, "erin", "x");
	say(e, "a fresh x");
	expect_chat(e, "erin: a fresh x");
	who_is(e, 1, "erin", NULL);
	/* y never noticed. */
	cr_assert_eq(kr_whereis("rsup:y"), y_sup);
	cr_assert_eq(kr_whereis("room:y"), y_room);
	say(d, "y is fine");
	expect_chat(c, "dave: y is fine");
	expect_chat(d, "dave: y is fine");
	who_is(c, 2, "carol", "dave", NULL);
	finish(a, b, c, d, e, NULL);
}

/* ---- bad input ----------------------------------------------------------- */

Test(chat, long_lines_end_the_connection_and_others_go_on)
{
	int port = server_start(NULL);
	client *a = join_as(port, "alice", NULL), *b = join_as(port, "bob", NULL);
	line l;
	/* 4096 bytes is the limit: that line goes through. */
	char *big = malloc(200000);
	memset(big, 'x', 200000);
	big[4096] = '\n';
	cr_assert_eq(write(a->fd, big, 4097), 4097);
	expect(b, &l, "alice: xxx");
	cr_assert_eq(l.len, 4096 + 7);
	expect(a, &l, "alice: xxx");
	/* 4097 is one too many: told, and disconnected. */
	big[4096] = 'x';
	big[4097] = '\n';
	cr_assert_eq(write(a->fd, big, 4098), 4098);
	expect(a, &l, "* line too long (over 4096 bytes): goodbye");
	cr_assert(ends(a, WAIT_MS));
	/* A line that never ends: the same, however much of it comes. */
	client *c = join_as(port, "carol", NULL);
	ssize_t w = write(c->fd, big, 200000); /* may be cut short by the close */
	cr_assert_gt(w, 0);
	expect(c, &l, "* line too long");
	cr_assert(ends(c, WAIT_MS));
	free(big);
	say(b, "fine");
	expect_chat(b, "bob: fine");
	who_is(b, 1, "bob", NULL);
	finish(a, b, c, NULL);
}

Test(chat, binary_garbage_passes_through_byte_for_byte)
{
	int port = server_start(NULL);
	client *a = join_as(port, "alice", NULL), *b = join_as(port, "bob", NULL);
	/* NULs, invalid UTF-8 (a lone continuation byte, an overlong form,
	 * 0xff), control bytes: all delivered as they came; a final \r is
	 * dropped (so "\r\n" ends a line too). */
	static const char garbage[] = "\x00\xff\xfe\x80 \xc0\xaf\x01\x1b[2J\x00end";
	size_t glen = sizeof garbage - 1;
	char msg[64];
	memcpy(msg, garbage, glen);
	memcpy(msg + glen, "\r\n", 2);
	cr_assert_eq(write(a->fd, msg, glen + 2), (ssize_t)(glen + 2));
	for (int i = 0; i < 2; i++) {
		client *c = i ? b : a;
		line l;
		do
			cr_assert(next_line(c, &l, WAIT_MS));
		while (l.s[0] == '*');
		cr_assert_eq(l.len, 7 + glen, "%zu bytes", l.len);
		cr_assert_eq(memcmp(l.s, "alice: ", 7), 0);
		cr_assert_eq(memcmp(l.s + 7, garbage, glen), 0, "the bytes changed on the way");
	}
	/* Empty lines and lone \r are nothing. */
	cr_assert_eq(write(a->fd, "\n\r\n\n", 4), 4);
	say(a, "after");
	expect_chat(b, "alice: after");
	finish(a, b, NULL);
}

Test(chat, abrupt_and_half_closed_connections_leave_the_room_and_the_others_go_on)
{
	int port = server_start(NULL);
	client *a = join_as(port, "alice", NULL);
	size_t base = io_owned(); /* the listening socket and alice's */
	/* A reset (SO_LINGER 0), in the middle of a line. */
	client *b = join_as(port, "bob", NULL);
	cr_assert_eq(write(b->fd, "half a li", 9), 9);
	struct linger lg = { 1, 0 };
	setsockopt(b->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	client_free(b);
	/* A client that closes its sending side: its connection ends, what was
	 * said before the end is delivered. */
	client *c = join_as(port, "carol", NULL);
	say(c, "last words");
	shutdown(c->fd, SHUT_WR);
	expect_chat(a, "carol: last words");
	cr_assert(ends(c, WAIT_MS), "a half-closed connection was not ended");
	client_free(c);
	/* A client that closes at once, with lines on their way to it. */
	client *d = join_as(port, "dave", NULL);
	say(a, "to dave");
	expect_chat(a, "alice: to dave");
	client_free(d);
	/* Nobody is left but alice, and the sockets are closed. */
	who_is(a, 1, "alice", NULL);
	cr_assert(VM_WAIT(io_owned() == base, WAIT_MS), "%zu descriptors owned, want %zu", io_owned(),
	          base);
	say(a, "alone");
	expect_chat(a, "alice: alone");
	finish(a, NULL);
}

/* A client that never reads: its writer's backlog passes the bound and it
 * is dropped; the others, reading, get every line. Small buffers (the
 * server's send buffer, the client's receive buffer, the bound) so that
 * little traffic is needed. */
Test(chat, a_slow_reader_is_dropped_and_the_others_get_everything)
{
	chat_opts o = { .out_max = 16 * 1024, .sndbuf = 4096 };
	int port = server_start(&o);
	client *a = join_as(port, "alice", NULL), *b = join_as(port, "bob", NULL);
	client *slow = connect_to(port, 2048);
	line l;
	expect(slow, &l, "* joined lobby (3 members)");
	who_is(a, 3, "alice", "bob", NULL);
	char text[1024];
	memset(text, 'z', sizeof text - 1);
	text[sizeof text - 1] = 0;
	int n = 0;
	/* Talk (and read) until the slow one is dropped, then a little more. */
	for (int after = 0; after < 20; n++) {
		say(n % 2 ? b : a, "%d %s", n, text);
		char want[16];
		snprintf(want, sizeof want, "%d zzz", n);
		for (int i = 0; i < 2; i++) {
			client *c = i ? b : a;
			do
				cr_assert(next_line(c, &l, WAIT_MS), "line %d did not come", n);
			while (l.s[0] == '*');
			cr_assert_not_null(strstr(l.s, want), "line %d: %.40s", n, l.s);
		}
		if (after || logged("slow client", NULL))
			after++;
		cr_assert_lt(n, 100000, "the slow reader was never dropped");
	}
	/* Its end is a signal's (no crash report: OTP makes none), which its
	 * supervisor reports. */
	cr_assert(logged("rsup lobby: child conn ", "terminated: error: slow client: over 16384 bytes",
	                 NULL),
	          "%s", log_buf);
	/* Its connection was closed: what it was sent, then the end. */
	cr_assert(ends(slow, WAIT_MS));
	who_is(a, 2, "alice", "bob", NULL);
	finish(a, b, slow, NULL);
}
