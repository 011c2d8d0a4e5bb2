/*
 * chat_load.c - a load generator for the chat server (build/chat, or the
 * BEAM's bench/erlang/chat.erl: they speak the same protocol).
 *
 *     build/chat_load --clients N --rooms R --msgs M [--port P] [--host H]
 *                     [--window W | --inflight K] [--size B] [--impl NAME] [--schedulers S]
 *                     [--connect K] [--timeout SECS] [--hold SECS --server-pid PID]
 *
 * It opens N connections (client i is "c<i>" in room "r<i mod R>"), at
 * most K (default 200) being set up at once, and waits until every client
 * has joined its room. Then, all at once, the clients send M messages in
 * all (M/N each, the first M mod N one more), each line carrying the
 * sender's sequence number and its send time, which the server delivers
 * as
 *
 *     c<i>: <seq> <send time, ns> [padding: --size B makes the text B bytes]
 *
 * A client has at most W (default 1) of its own messages in flight: it
 * sends the next when the server has brought one back to it (the sender
 * gets its own lines too), so the load is closed-loop, and the server's
 * speed sets the pace. With every client sending at once, that is as many
 * lines in flight as there are clients, each to be delivered to its whole
 * room: a saturating load, whose latencies are mostly queueing. --inflight
 * K bounds the queues instead: each room has K lines in flight, passed
 * round its members as tokens (member j says its next line when it has
 * seen the line of member j-1), so latency is measured at a load the
 * server can keep up with (M must then be a multiple of N). Every client reads everything its room says and
 * checks it: each member's lines arrive exactly once and in sequence, and
 * all members of a room see the room's lines in the same order (a hash of
 * the order, compared at the end). A failed check, a lost connection, a
 * connection silent for 60 s, or a run longer than --timeout (default
 * 300 s) ends it with status 1 (3 for the timeout) and says what went
 * wrong; a long run says how far it is every 10 s. All N connections stay open until
 * every client has received everything.
 *
 * It prints, besides a human summary,
 *
 *     RESULT bench=chat impl=krill clients=N rooms=R msgs=M msgs_per_s=X p50_us=Y p99_us=Z ...
 *
 * msgs_per_s counts DELIVERED lines per second: a line said in a room of k
 * members is k deliveries (the sender's own copy included), from the moment
 * the clients are told to start until the last one has received everything.
 * Latency is from a line's send to its receipt by each of the room's OTHER
 * members (the sender's own copy is not counted), from an HDR-style
 * histogram (bench/hist.h). --impl only changes the RESULT line's impl
 * field (say --impl beam when pointed at the BEAM's server).
 *
 * --hold SECS keeps every connection open and silent for SECS once the
 * run is over, and then reads the server's resident memory (VmRSS of
 * process PID, --server-pid): what its idle connections cost, against
 * what it held before the first connection, printed as
 *
 *     RESULT bench=chat_idle impl=krill clients=N rss_before_kb=A rss_kb=B bytes_per_conn=X
 *
 * (with --msgs 0, connections that joined, were greeted and said nothing).
 *
 * Every client is a krill process with its own socket (kr_connect,
 * kr_read, kr_write), so 10,000 connections are 10,000 small processes;
 * the soft RLIMIT_NOFILE is raised to the hard limit, and a run that would
 * need more descriptors than that is refused at once.
 */
#include <arpa/inet.h>
#include <krill.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../bench/hist.h"

enum { JOINED = 1, GO, DONE, FAILED };

static kr_pid root_pid;
static atomic_ullong received; /* lines received by all clients, for progress notes */

#define READ_BUF (16 * 1024)
#define IO_MS 60000 /* a connection silent this long during the run is a failure */

static struct {
	long clients, rooms, msgs, port, window, inflight, size, schedulers, connect, timeout;
	long hold, server_pid;
	const char *host, *impl;
	struct sockaddr_in addr;
	uint64_t epoch_ns;
} O = { .rooms = 1, .port = 5555, .window = 1, .connect = 200, .timeout = 300,
	.host = "127.0.0.1", .impl = "krill" };

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latencies: a histogram per scheduler thread ------------------------ */

/*
 * Each scheduler thread records into its own histogram; the root merges
 * them once every client is done (their DONE messages order the records
 * before the merge). A process may move to another thread whenever it
 * calls krill, so the histogram is looked up afresh, through a function
 * the compiler may neither inline nor fold (see DESIGN.md, "Thread-local
 * storage across a switch"), right where it is used.
 */
static __thread hist *tl_hist;
static pthread_mutex_t hists_lock = PTHREAD_MUTEX_INITIALIZER;
static hist *hists[256];
static int nhists;

static __attribute__((noipa)) hist *thread_hist(void)
{
	if (tl_hist)
		return tl_hist;
	hist *h = hist_new();
	pthread_mutex_lock(&hists_lock);
	if (h && nhists < (int)(sizeof hists / sizeof hists[0]))
		hists[nhists++] = h;
	else if (h) {
		hist_free(h);
		h = NULL;
	}
	pthread_mutex_unlock(&hists_lock);
	if (!h) {
		fprintf(stderr, "chat_load: out of memory for a histogram\n");
		exit(1);
	}
	return tl_hist = h;
}

/* ---- the layout of the load -------------------------------------------- */

static long room_of(long i)
{
	return i % O.rooms;
}

static long members(long r)
{
	return O.clients / O.rooms + (r < O.clients % O.rooms);
}

static long sends_of(long i)
{
	return O.msgs / O.clients + (i < O.msgs % O.clients);
}

/* Lines said in room r: what each of its members receives. */
static long said_in(long r)
{
	long n = 0;
	for (long i = r; i < O.clients; i += O.rooms)
		n += sends_of(i);
	return n;
}

/* ---- a client ------------------------------------------------------------ */

typedef struct done {
	long client;
	long received;
	uint64_t order; /* a hash of the order its room's lines came in */
} done;

typedef struct client {
	long id, room;
	int fd;
	kr_pid root;
	uint32_t *next;    /* the sequence number expected next from member j (client room + j*R) */
	long expected, received, sent, in_flight, to_send;
	long pred;         /* --inflight: the member whose lines give us our turns */
	long turns;        /* --inflight: lines we may say now */
	uint64_t order;
	char *buf;
	size_t nbuf;
} client;

static _Noreturn void fail(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void fail(client *c, const char *fmt, ...)
{
	char text[200];
	int n = snprintf(text, sizeof text, "client c%ld (room r%ld): ", c->id, c->room);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
	va_end(ap);
	kr_send(c->root, FAILED, text, strlen(text) + 1);
	kr_exit(KR_EXIT_NORMAL);
	abort();
}

static void put(client *c, const char *s, size_t len)
{
	ssize_t n = kr_write(c->fd, s, len, IO_MS);
	if (n < 0)
		fail(c, "write: %s (errno %d)", kr_strerror((int)n), kr_last_errno());
}

/* Read more into buf; returns the time of the read. */
static uint64_t fill(client *c)
{
	if (c->nbuf == READ_BUF)
		fail(c, "a line longer than %d bytes", READ_BUF);
	ssize_t n = kr_read(c->fd, c->buf + c->nbuf, READ_BUF - c->nbuf, IO_MS);
	if (n == 0)
		fail(c, "the server closed the connection (%ld of %ld lines received)", c->received,
		     c->expected);
	if (n < 0)
		fail(c, "read: %s (errno %d; %ld of %ld lines received)", kr_strerror((int)n),
		     kr_last_errno(), c->received, c->expected);
	c->nbuf += (size_t)n;
	return now_ns();
}

static void consume(client *c, size_t used)
{
	memmove(c->buf, c->buf + used, c->nbuf - used);
	c->nbuf -= used;
}

/* Connect, name ourselves, join our room, and wait for the server to say
 * we are in it. */
static void join(client *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || kr_fd_own(c->fd))
		fail(c, "socket: out of descriptors?");
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int rc = kr_connect(c->fd, (struct sockaddr *)&O.addr, sizeof O.addr, IO_MS);
	if (rc)
		fail(c, "connect: %s (errno %d)", kr_strerror(rc), kr_last_errno());
	char cmd[96], want[48];
	int n = snprintf(cmd, sizeof cmd, "/nick c%ld\n/join r%ld\n", c->id, c->room);
	put(c, cmd, (size_t)n);
	int wn = snprintf(want, sizeof want, "* joined r%ld ", c->room);
	for (;;) {
		char *nl;
		while ((nl = memchr(c->buf, '\n', c->nbuf))) {
			size_t len = (size_t)(nl - c->buf) + 1;
			int joined = len > (size_t)wn && !memcmp(c->buf, want, (size_t)wn);
			consume(c, len);
			if (joined)
				return;
		}
		fill(c);
	}
}

static void send_next(client *c)
{
	char line[64 + 4096];
	int n = snprintf(line, 64, "%ld %llu", c->sent, (unsigned long long)(now_ns() - O.epoch_ns));
	if (O.size > n + 1) {
		memset(line + n, 'x', (size_t)(O.size - 1 - n));
		n = (int)O.size - 1;
	}
	line[n++] = '\n';
	put(c, line, (size_t)n);
	c->sent++;
	c->in_flight++;
}

static uint64_t parse_num(client *c, const char **p, const char *end)
{
	uint64_t v = 0;
	const char *s = *p;
	if (s >= end || *s < '0' || *s > '9')
		fail(c, "a malformed line: %.*s", (int)(end - *p < 80 ? end - *p : 80), *p);
	while (s < end && *s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	*p = s;
	return v;
}

/* One line of our room: check it, time it. */
static void chat_line(client *c, const char *s, const char *end, uint64_t t)
{
	const char *p = s + 1;
	long from = (long)parse_num(c, &p, end);
	if (end - p < 2 || p[0] != ':' || p[1] != ' ')
		fail(c, "a malformed line");
	p += 2;
	uint64_t seq = parse_num(c, &p, end);
	p++;
	uint64_t sent_at = parse_num(c, &p, end);
	if (from >= O.clients || room_of(from) != c->room)
		fail(c, "a line from c%ld, who is not in our room", from);
	uint32_t *next = &c->next[from / O.rooms];
	if (seq != *next)
		fail(c, "from c%ld, line %llu where %u was due (%s)", from, (unsigned long long)seq,
		     *next, seq < *next ? "a duplicate, or out of order" : "lost lines");
	(*next)++;
	c->received++;
	c->order = (c->order ^ ((uint64_t)from << 32 | seq)) * 0x100000001b3ull;
	if (from == c->pred)
		c->turns++;
	if (from == c->id)
		c->in_flight--;
	else
		hist_record(thread_hist(), t - O.epoch_ns - sent_at);
}

/* Everything in buf that is a whole line. */
static void lines(client *c, uint64_t t)
{
	char *p = c->buf, *end = c->buf + c->nbuf, *nl;
	long before = c->received;
	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (p[0] == 'c')
			chat_line(c, p, nl, t);
		else if (p[0] != '*') /* "* ..." are the server's notices */
			fail(c, "an unexpected line: %.*s", (int)(nl - p < 80 ? nl - p : 80), p);
		p = nl + 1;
	}
	consume(c, (size_t)(p - c->buf));
	atomic_fetch_add_explicit(&received, (unsigned long long)(c->received - before),
	                          memory_order_relaxed);
}

static void client_main(void *arg)
{
	client c = { .id = (long)(intptr_t)arg, .fd = -1, .root = root_pid };
	kr_msg *m;
	c.room = room_of(c.id);
	long j = c.id / O.rooms, size = members(c.room);
	c.pred = O.inflight ? c.room + (j + size - 1) % size * O.rooms : -1;
	c.turns = j < O.inflight;
	c.expected = said_in(c.room);
	c.to_send = sends_of(c.id);
	c.buf = kr_alloc(READ_BUF);
	c.next = kr_calloc((size_t)members(c.room), sizeof *c.next);
	if (!c.buf || !c.next)
		fail(&c, "out of memory");
	join(&c);
	kr_send(c.root, JOINED, &c.id, sizeof c.id);
	if (kr_recv_tag(&m, GO, KR_INFINITY))
		return;
	kr_msg_free(m);
	while (c.received < c.expected || c.sent < c.to_send) {
		while (c.sent < c.to_send && (O.inflight ? c.turns > 0 : c.in_flight < O.window)) {
			send_next(&c);
			c.turns--;
		}
		if (c.received < c.expected || c.in_flight)
			lines(&c, fill(&c));
	}
	done d = { c.id, c.received, c.order };
	kr_send(c.root, DONE, &d, sizeof d);
	/* Hold the connection until the run is over. */
	if (kr_recv_tag(&m, GO, KR_INFINITY) == 0)
		kr_msg_free(m);
}

/* ---- the run ---------------------------------------------------------------- */

static int status = 1;

static kr_pid spawn_client(long i)
{
	kr_pid p = kr_spawn(client_main, (void *)(intptr_t)i);
	if (p < 0) {
		fprintf(stderr, "chat_load: cannot start client %ld: %s\n", i, kr_strerror((int)p));
		exit(1);
	}
	return p;
}

/* Take the next JOINED or DONE (tag), or die on a FAILED; every 10 s
 * without one, say how far the run is (--timeout ends a stalled one). */
static kr_msg *expect(uint64_t tag, const char *what, long have)
{
	kr_msg *m;
	for (;;) {
		if (kr_recv(&m, 10000)) {
			fprintf(stderr, "chat_load: %s: %ld of %ld clients so far, %llu lines received\n",
			        what, have, O.clients, (unsigned long long)atomic_load(&received));
			continue;
		}
		if (m->tag == FAILED) {
			fprintf(stderr, "chat_load: %s\n", (const char *)m->data);
			kr_exit(KR_EXIT_NORMAL);
		}
		if (m->tag == tag)
			return m;
		kr_msg_free(m);
	}
}

static void report(double secs)
{
	hist *all = hist_new();
	for (int i = 0; i < nhists; i++)
		hist_merge(all, hists[i]);
	double delivered = 0;
	for (long r = 0; r < O.rooms; r++)
		delivered += (double)said_in(r) * (double)members(r);
	double rate = delivered / secs;
	double p50 = (double)hist_percentile(all, 50) / 1e3, p99 = (double)hist_percentile(all, 99) / 1e3;
	double p999 = (double)hist_percentile(all, 99.9) / 1e3;
	printf("chat_load: %.0f lines delivered in %.3f s: %.0f a second; latency to the other "
	       "members: p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
	       delivered, secs, rate, p50, p99, p999, (double)all->max / 1e3);
	printf("RESULT bench=chat impl=%s clients=%ld rooms=%ld msgs=%ld msgs_per_s=%.0f p50_us=%.0f "
	       "p99_us=%.0f p999_us=%.0f window=%ld inflight=%ld size=%ld secs=%.3f\n",
	       O.impl, O.clients, O.rooms, O.msgs, rate, p50, p99, p999, O.inflight ? 0 : O.window,
	       O.inflight, O.size, secs);
	hist_free(all);
}

/* The server's resident memory (VmRSS), kB; 0 if it cannot be read. */
static long server_rss_kb(void)
{
	char path[64], line[128];
	snprintf(path, sizeof path, "/proc/%ld/status", O.server_pid);
	FILE *f = fopen(path, "r");
	long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* --hold: the connections stay open and silent for O.hold seconds; then
 * what the server holds for them. */
static void report_idle(long rss_before)
{
	printf("chat_load: holding %ld idle connections for %ld s\n", O.clients, O.hold);
	kr_sleep(O.hold * 1000);
	long rss = server_rss_kb();
	double per = (double)(rss - rss_before) * 1024 / (double)O.clients;
	printf("chat_load: the server's resident memory: %ld kB before the first connection, %ld kB "
	       "with %ld idle ones: %.0f bytes a connection\n", rss_before, rss, O.clients, per);
	printf("RESULT bench=chat_idle impl=%s clients=%ld rss_before_kb=%ld rss_kb=%ld "
	       "bytes_per_conn=%.0f\n", O.impl, O.clients, rss_before, rss, per);
}

static void root(void *arg)
{
	(void)arg;
	root_pid = kr_self();
	long rss_before = O.hold ? server_rss_kb() : 0;
	kr_pid *pids = kr_calloc((size_t)O.clients, sizeof *pids);
	uint64_t *order = kr_calloc((size_t)O.rooms, sizeof *order);
	char *seen = kr_calloc((size_t)O.rooms, 1);
	if (!pids || !order || !seen)
		exit(1);
	uint64_t t0 = now_ns();
	/* Connect and join, at most O.connect clients at a time. */
	long started = 0, joined = 0;
	while (started < O.clients && started < O.connect)
		pids[started] = spawn_client(started), started++;
	while (joined < O.clients) {
		kr_msg_free(expect(JOINED, "joining", joined));
		joined++;
		if (started < O.clients)
			pids[started] = spawn_client(started), started++;
	}
	uint64_t t1 = now_ns();
	printf("chat_load: %ld clients connected and joined %ld rooms in %.2f s\n", O.clients,
	       O.rooms, (double)(t1 - t0) / 1e9);
	for (long i = 0; i < O.clients; i++)
		kr_send(pids[i], GO, NULL, 0);
	/* Every client's DONE; each room's order, as the first to finish saw
	 * it, must be everyone's. */
	for (long n = 0; n < O.clients; n++) {
		kr_msg *m = expect(DONE, "running", n);
		done d;
		memcpy(&d, m->data, sizeof d);
		kr_msg_free(m);
		long r = room_of(d.client);
		if (!seen[r]) {
			seen[r] = 1;
			order[r] = d.order;
		} else if (d.order != order[r]) {
			fprintf(stderr, "chat_load: c%ld saw room r%ld's lines in another order than "
			                "its other members\n", d.client, r);
			kr_exit(KR_EXIT_NORMAL);
		}
	}
	double secs = (double)(now_ns() - t1) / 1e9;
	printf("chat_load: %ld connections held open at once; every member got every line of its "
	       "room, once, in one order\n", O.clients);
	report(secs);
	if (O.hold)
		report_idle(rss_before);
	status = 0;
	for (long i = 0; i < O.clients; i++)
		kr_send(pids[i], GO, NULL, 0);
}

static void on_timeout(int sig)
{
	(void)sig;
	static const char msg[] = "chat_load: still running after --timeout: a hang?\n";
	if (write(2, msg, sizeof msg - 1) < 0) {
	}
	_exit(3);
}

static int opt_long(const char *name, const char *v, long min, long *out)
{
	char *end;
	long x = strtol(v, &end, 10);
	if (*v == 0 || *end || x < min) {
		fprintf(stderr, "chat_load: %s wants a number >= %ld, not '%s'\n", name, min, v);
		return -1;
	}
	*out = x;
	return 0;
}

static int options(int argc, char **argv)
{
	static const struct {
		const char *name;
		long *val;
		long min;
	} nums[] = {
		{ "--clients", &O.clients, 1 },  { "--rooms", &O.rooms, 1 },  { "--msgs", &O.msgs, 0 },
		{ "--port", &O.port, 1 },        { "--window", &O.window, 1 }, { "--size", &O.size, 0 },
		{ "--inflight", &O.inflight, 1 },
		{ "--schedulers", &O.schedulers, 0 }, { "--connect", &O.connect, 1 },
		{ "--timeout", &O.timeout, 1 }, { "--hold", &O.hold, 0 },
		{ "--server-pid", &O.server_pid, 1 },
	};
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			goto usage;
		const char *a = argv[i], *v = argv[++i];
		if (!strcmp(a, "--host")) {
			O.host = v;
			continue;
		}
		if (!strcmp(a, "--impl")) {
			O.impl = v;
			continue;
		}
		size_t j = 0;
		while (j < sizeof nums / sizeof nums[0] && strcmp(a, nums[j].name))
			j++;
		if (j == sizeof nums / sizeof nums[0])
			goto usage;
		if (opt_long(a, v, nums[j].min, nums[j].val))
			return -1;
	}
	if (O.hold && !O.server_pid) {
		fprintf(stderr, "chat_load: --hold needs --server-pid\n");
		return -1;
	}
	if (!O.clients || O.rooms > O.clients || O.size > 4096) {
		fprintf(stderr, "chat_load: --clients is needed, --rooms at most --clients, --size at "
		                "most 4096\n");
		return -1;
	}
	if (O.inflight && (O.msgs % O.clients || O.inflight > O.clients / O.rooms)) {
		fprintf(stderr, "chat_load: with --inflight K, --msgs must be a multiple of --clients, "
		                "and K at most the members of a room\n");
		return -1;
	}
	O.addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)O.port) };
	if (inet_pton(AF_INET, O.host, &O.addr.sin_addr) != 1) {
		fprintf(stderr, "chat_load: --host wants an IPv4 address, not '%s'\n", O.host);
		return -1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: chat_load --clients N --rooms R --msgs M [--port P] [--host H] "
	                "[--window W | --inflight K] [--size B] [--impl NAME] [--schedulers S] [--connect K] "
	                "[--timeout SECS] [--hold SECS --server-pid PID]\n");
	return -1;
}

/* One descriptor per client, and a few for the VM itself. */
static int raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if ((rlim_t)O.clients + 64 > rl.rlim_cur) {
		fprintf(stderr, "chat_load: %ld clients need %ld descriptors, and the limit is %llu "
		                "(ulimit -Hn)\n", O.clients, O.clients + 64, (unsigned long long)rl.rlim_cur);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (options(argc, argv) || raise_fd_limit())
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_timeout;
	sa.sa_flags = SA_ONSTACK; /* a scheduler thread may take it on a process stack */
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)O.timeout);
	O.epoch_ns = now_ns();
	kr_config cfg = { .schedulers = (unsigned)O.schedulers };
	int rc = kr_main(&cfg, root, NULL);
	return rc < 0 ? 1 : status;
}
