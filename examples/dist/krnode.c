/*
 * krnode - a krill node to talk to from other nodes, krill's or the BEAM's.
 *
 *   build/krnode --name NAME [--cookie COOKIE] [--port P] [--fixed-port P]
 *                [--ticktime SECONDS] [--hidden] [--commands] [--observer]
 *
 * Its registered process `echo`:
 *  - sends every message {Pid, Term} back to Pid as Term;
 *  - answers a call (gen_server:call({echo, Node}, Request), or kr_call
 *    from krill) with Request, but for the atom `noreply` (for tests of
 *    calls that time out or lose their node);
 *  - crashes with a segfault on the atom `segfault`;
 *  - sends a krill message (tag, bytes) from a process back to its sender.
 * Its registered process `sink` (for krbench dist_stream) counts the
 * messages it gets, of any kind; a krill message with the tag KRNODE_SINK_END
 * (0xe0f) makes it send (KRNODE_SINK_END, the count so far, as 8 bytes
 * little-endian, the end message not counted) back to that message's sender
 * and count from zero again.
 * Its functions `worker` and `duet` may be spawned from other nodes (see
 * worker() and duet()).
 * With --commands it reads lines from its standard input (for tests that
 * need it to act at a moment of their choosing), and ends when that ends:
 *  - `send NODE NAME N` sends N krill messages (tag i, i as 4 bytes) to
 *    {NAME, NODE}, i from 0 up, from a new process, then prints "sent N";
 *  - `nodes` prints "nodes K:" and the names of the K connected nodes.
 * With --observer it runs the observer (include/krill/observer.h) on a free
 * port of loopback too, and prints "krnode observer PORT" before "ready".
 * It prints "krnode NAME ready" once the node is reachable, and runs until
 * killed. From a BEAM node:
 *
 *   {echo, 'k@127.0.0.1'} ! {self(), hello}, receive X -> X end.
 *   gen_server:call({echo, 'k@127.0.0.1'}, ping).
 *   P = spawn('k@127.0.0.1', krill, worker, [<<"hi">>]), P ! {1, <<>>}.
 */
#include <ei.h>
#include <fcntl.h>
#include <krill.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KRNODE_SINK_END 0xe0f

static int with_commands; /* --commands */
static int with_observer; /* --observer */

/* Send term (the bytes at t, a whole term without the version byte) to pid. */
static void send_term(kr_pid to, const char *t, int len)
{
	char *buf = kr_alloc((size_t)len + 1);
	if (!buf)
		return;
	buf[0] = (char)131;
	memcpy(buf + 1, t, (size_t)len);
	kr_send_term(to, buf, (size_t)len + 1);
	kr_free(buf);
}

/* {Pid, Term}: send Term to Pid. */
static int echo_pair(const char *b, int i)
{
	int arity;
	if (ei_decode_tuple_header(b, &i, &arity) || arity != 2)
		return 0;
	kr_pid to;
	long n = kr_term_get_pid(b + i, 1 << 16, &to);
	if (n < 0)
		return 0;
	i += (int)n;
	int at = i;
	if (ei_skip_term(b, &i))
		return 0;
	send_term(to, b + at, i - at);
	return 1;
}

/* A store through NULL: the crash `segfault` asks for. Volatile both (a
 * compiler may turn a known null store into a trap, or drop it), and not
 * sanitized (UBSan would report it before krill contains it). */
__attribute__((no_sanitize("null"), noinline)) static void store_null(void)
{
	volatile int *volatile p = NULL;
	*p = 1;
}

static int is_atom(const kr_msg *m, const char *name)
{
	char atom[MAXATOMLEN_UTF8];
	int i = 1;
	return m->tag == KR_TAG_TERM && !ei_decode_atom(m->data, &i, atom) && !strcmp(atom, name);
}

static void on_term(const kr_msg *m)
{
	if (is_atom(m, "segfault"))
		store_null(); /* it ends this process only: its supervisor restarts it */
	echo_pair(m->data, 1);
}

static void echo(void *arg)
{
	(void)arg;
	kr_register("echo", kr_self());
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY) != 0)
			continue;
		if (m->ref) { /* a call (gen_server:call from the BEAM too): the request is the reply */
			if (!is_atom(m, "noreply"))
				kr_reply(m, m->tag, m->data, m->len);
		}
		else if (m->tag == KR_TAG_TERM)
			on_term(m);
		else if (m->sender && m->tag < KR_TAG_SUP)
			kr_send(m->sender, m->tag, m->data, m->len);
		kr_msg_free(m);
	}
}

static void sink(void *arg)
{
	(void)arg;
	kr_register("sink", kr_self());
	uint64_t count = 0;
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY) != 0)
			continue;
		if (m->tag == KRNODE_SINK_END && m->sender) {
			uint8_t le[8];
			for (int i = 0; i < 8; i++)
				le[i] = (uint8_t)(count >> (8 * i));
			kr_send(m->sender, KRNODE_SINK_END, le, sizeof le);
			count = 0;
		} else if (m->tag < KR_TAG_SUP || m->tag == KR_TAG_TERM) {
			count++;
		}
		kr_msg_free(m);
	}
}

/* Spawnable from other nodes as "worker" (kr_spawn_at, or a BEAM's
 * spawn(Node, krill, worker, [Binary])): with the argument "crash" it
 * crashes at once; otherwise it answers the first message it gets with
 * that message's tag and its own argument, and ends. */
static void worker(const void *arg, size_t len)
{
	if (len == 5 && !memcmp(arg, "crash", 5))
		kr_crash("asked to crash");
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0 && m->sender && m->tag < KR_TAG_SUP)
		kr_send(m->sender, m->tag, arg, len);
}

/* Spawnable as "duet" (a partner in a stress test): its argument is a
 * count n (4 bytes). Its first message (any) names its partner, the
 * sender; then it sends the partner n messages (tag 1, i as 4 bytes, i
 * from 0 up) while it sends back, as it comes, each message of tag 2 the
 * partner sends, until it has done both n times. */
static void duet(const void *arg, size_t len)
{
	uint32_t n, sent = 0, echoed = 0;
	kr_msg *m;
	if (len != sizeof n || kr_recv(&m, 60000) != 0)
		return;
	memcpy(&n, arg, sizeof n);
	kr_pid partner = m->sender;
	kr_msg_free(m);
	while (sent < n || echoed < n) {
		if (sent < n && kr_send(partner, 1, &sent, sizeof sent) == 0)
			sent++;
		while (echoed < n && kr_recv(&m, sent < n ? 0 : 60000) == 0) {
			if (m->tag == 2)
				echoed += kr_send(partner, 2, m->data, m->len) == 0;
			kr_msg_free(m);
		}
		if (sent == n && echoed < n)
			return; /* a minute without a message: the partner is gone */
	}
}

/* ---- commands on the standard input (--commands) ---- */

typedef struct sending {
	char node[256], name[KR_NAME_MAX + 1]; /* the sscanf below knows these sizes */
	unsigned n;
} sending;

static void sender(void *arg)
{
	sending *s = arg;
	unsigned ok = 0;
	for (uint32_t i = 0; i < s->n; i++)
		ok += kr_send_named_at(s->node, s->name, i, &i, sizeof i) == 0;
	printf("sent %u\n", ok);
	fflush(stdout);
	free(s);
}

static void command(const char *line)
{
	sending s;
	if (sscanf(line, "send %255s %63s %u", s.node, s.name, &s.n) == 3) {
		sending *copy = malloc(sizeof s); /* not kr_alloc: that is the caller's heap */
		if (copy) {
			*copy = s;
			if (kr_spawn(sender, copy) < 0)
				free(copy);
		}
	} else if (!strcmp(line, "nodes")) {
		const char *names[64];
		int k = kr_nodes(names, 64);
		printf("nodes %d:", k);
		for (int i = 0; i < k && i < 64; i++)
			printf(" %s", names[i]);
		printf("\n");
		fflush(stdout);
	}
}

/* Read commands, a line each; the end of the input ends the program (so
 * that a test that dies leaves no node behind). */
static void commands(void *arg)
{
	(void)arg;
	char buf[1024];
	size_t have = 0;
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	for (;;) {
		ssize_t r = kr_read(0, buf + have, sizeof buf - 1 - have, KR_INFINITY);
		if (r <= 0)
			_exit(0); /* not exit(): the schedulers run on */
		have += (size_t)r;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			command(line);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof buf - 1)
			have = 0; /* a line too long: dropped */
	}
}

/* The node, then echo and sink under a supervisor (so that a segfault
 * costs one restart, as it would in an OTP application), then wait to be
 * killed. */
static void root(void *arg)
{
	const kr_node_config *cfg = arg;
	kr_spawnable("worker", worker);
	kr_spawnable("duet", duet);
	int rc = kr_node_start(cfg);
	if (rc != 0) {
		fprintf(stderr, "krnode: %s\n", kr_strerror(rc));
		exit(1);
	}
	kr_child_spec children[] = {{.id = "echo", .start = echo, .restart = KR_PERMANENT},
	                            {.id = "sink", .start = sink, .restart = KR_PERMANENT}};
	kr_sup_flags flags = {.strategy = KR_ONE_FOR_ONE, .max_restarts = 1000, .period_ms = 1000};
	kr_pid sup = kr_sup_start_link(&flags, children, 2, "echo_sup");
	if (sup < 0) {
		fprintf(stderr, "krnode: supervisor: %s\n", kr_strerror((int)sup));
		exit(1);
	}
	if (with_commands)
		kr_spawn(commands, NULL);
	if (with_observer) {
		rc = kr_observer_start(NULL, 0);
		if (rc != 0) {
			fprintf(stderr, "krnode: observer: %s\n", kr_strerror(rc));
			exit(1);
		}
		printf("krnode observer %d\n", kr_observer_port());
	}
	printf("krnode %s ready\n", kr_node_name());
	fflush(stdout);
	kr_sleep(KR_INFINITY);
}

static void usage(void)
{
	fprintf(stderr, "usage: krnode --name NAME [--cookie COOKIE] [--port P] [--fixed-port P]\n"
	                "              [--ticktime SECONDS] [--hidden] [--commands] [--observer]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	kr_node_config cfg = {0};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hidden")) {
			cfg.hidden = 1;
			continue;
		}
		if (!strcmp(argv[i], "--commands")) {
			with_commands = 1;
			continue;
		}
		if (!strcmp(argv[i], "--observer")) {
			with_observer = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--name"))
			cfg.name = argv[++i];
		else if (!strcmp(argv[i], "--cookie"))
			cfg.cookie = argv[++i];
		else if (!strcmp(argv[i], "--port"))
			cfg.port = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--fixed-port"))
			cfg.fixed_port = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ticktime"))
			cfg.net_ticktime = (unsigned)atoi(argv[++i]);
		else
			usage();
	}
	if (!cfg.name)
		usage();
	return kr_main(NULL, root, &cfg) == 0 ? 0 : 1;
}
