/*
 * test_dist_more.c - distribution (dist/, krill/dist.h) under the
 * conditions issue 13 names beyond test_dist.c's: connections made from
 * both sides at once, wrong cookies each way, fixed-port mode without
 * EPMD, hidden nodes, frames over a node's maximum, a peer restarted while
 * we keep sending, and many processes on both sides sharing one
 * connection. The other nodes are OS processes: build/<flavour>/krnode
 * (examples/dist/krnode.c; --commands makes it send when told, on its
 * stdin) and erl when installed.
 */
#include <arpa/inet.h>

#include "dist_util.h"

static void fini(void)
{
	vm_fini();
	dist_kill_all();
}

TestSuite(dist_more, .fini = fini, .timeout = 90);

#define NEED_ERL()                                                         \
	do {                                                               \
		if (!dist_have_erl())                                      \
			cr_skip_test("erl is not installed (erlang-nox)"); \
	} while (0)

/* ---- what the tests share ---- */

/* The VM's reports, kept (a test looks for what was said, and how often). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];
static size_t log_len;

static void keep_log(const char *line, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	size_t n = strlen(line);
	if (n + 2 < sizeof log_text - log_len) {
		memcpy(log_text + log_len, line, n);
		log_len += n;
		log_text[log_len++] = '\n';
		log_text[log_len] = 0;
	}
	pthread_mutex_unlock(&log_lock);
	atomic_fetch_add(&vm_reports, 1);
}

/* How many reports so far contain s. */
static int log_count(const char *s)
{
	int k = 0;
	pthread_mutex_lock(&log_lock);
	for (const char *at = log_text; (at = strstr(at, s)); at += strlen(s))
		k++;
	pthread_mutex_unlock(&log_lock);
	return k;
}

/* A copy of the reports so far, taken under the lock (the
 * schedulers may be writing one). */
static char log_seen[sizeof log_text];

static const char *log_now(void)
{
	pthread_mutex_lock(&log_lock);
	memcpy(log_seen, log_text, sizeof log_seen);
	pthread_mutex_unlock(&log_lock);
	return log_seen;
}

/* The first failure a process recorded, copied under its lock. */
static const char *fail_now(void)
{
	static char msg[sizeof vm_fail_msg];
	pthread_mutex_lock(&vm_fail_lock);
	memcpy(msg, vm_fail_msg, sizeof msg);
	pthread_mutex_unlock(&vm_fail_lock);
	return msg;
}

static void vm_start_logged(unsigned schedulers)
{
	kr_config cfg = {.schedulers = schedulers, .log = keep_log};
	vm_start_cfg(&cfg);
}

static void start_node_cfg(kr_node_config cfg)
{
	if (!cfg.cookie)
		cfg.cookie = DIST_COOKIE;
	int rc = kr_node_start(&cfg);
	cr_assert_eq(rc, 0, "kr_node_start(%s): %s", cfg.name, kr_strerror(rc));
}

static int nodes_up(void)
{
	return kr_nodes(NULL, 0);
}

/* Established TCP connections whose remote end is port a or port b (each
 * connection between two local nodes listening on a and b counts once: by
 * the end that called). */
static int tcp_conns(unsigned a, unsigned b)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	if (!f)
		return -1;
	char line[512];
	int k = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned rport, st;
		if (sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &st) == 2 && st == 1 &&
		    (rport == a || rport == b))
			k++;
	}
	fclose(f);
	return k;
}

/* Does the EPMD on this host know the node alive? (false too when no EPMD
 * runs.) A PORT_PLEASE2_REQ, from the test thread. */
static bool epmd_knows(const char *node)
{
	char alive[96];
	snprintf(alive, sizeof alive, "%s", node);
	*strchr(alive, '@') = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(4369),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return false;
	}
	uint8_t req[128];
	size_t n = strlen(alive);
	req[0] = (uint8_t)((n + 1) >> 8), req[1] = (uint8_t)(n + 1), req[2] = 122;
	memcpy(req + 3, alive, n);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	uint8_t resp[2] = {0, 1};
	bool ok = write(fd, req, n + 3) == (ssize_t)(n + 3) && read(fd, resp, 2) == 2;
	close(fd);
	return ok && resp[0] == 119 && resp[1] == 0;
}

/* Wait for n messages (tag i, i as 4 bytes, i from 0 up: krnode's `send`
 * command) from a process of node: false, with a failure recorded, if one
 * is missing or out of order. */
static bool take_sequence(const char *node, int n, long ms)
{
	for (int i = 0; i < n; i++) {
		kr_msg *m;
		int rc = kr_recv(&m, ms);
		VM_CHECK(rc == 0, "message %d of %d: %s", i, n, kr_strerror(rc));
		if (rc)
			return false;
		uint32_t v = 0;
		if (m->len == sizeof v)
			memcpy(&v, m->data, sizeof v);
		const char *from = kr_pid_node(m->sender);
		bool ok = m->tag == (uint64_t)i && m->len == sizeof v && v == (uint32_t)i && from &&
		          !strcmp(from, node);
		VM_CHECK(ok, "message %d: tag %llu len %zu from %s", i, (unsigned long long)m->tag,
		         m->len, from ? from : "NULL");
		kr_msg_free(m);
		if (!ok)
			return false;
	}
	return true;
}

/* Send n messages (tag i, i) to {echo, peer}, then take their n echoes, in
 * order. */
static bool echo_sequence(const char *peer, int n, long ms)
{
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		int rc = kr_send_named_at(peer, "echo", i, &i, sizeof i);
		VM_CHECK(rc == 0, "kr_send_named_at: %s", kr_strerror(rc));
		if (rc)
			return false;
	}
	return take_sequence(peer, n, ms);
}

/* A process registered as "collect" that takes a sequence of n from node. */
typedef struct collect {
	const char *node;
	int n;
	long ms;
	atomic_int ready, done, got_any;
} collect;

static void collector(void *arg)
{
	collect *c = arg;
	VM_CHECK(kr_register("collect", kr_self()) == 0, "register collect");
	atomic_store(&c->ready, 1);
	if (c->n == 0) { /* nothing may come */
		kr_msg *m;
		if (kr_recv(&m, c->ms) == 0) {
			atomic_store(&c->got_any, 1);
			kr_msg_free(m);
		}
	} else if (!take_sequence(c->node, c->n, c->ms)) {
		return;
	}
	atomic_store(&c->done, 1);
}

static void spawn_collector(collect *c)
{
	vm_spawn(collector, c);
	cr_assert(VM_WAIT(atomic_load(&c->ready), 10000));
}

/* ---- simultaneous connect ---- */

#define SIM_ROUNDS 20
#define SIM_MSGS 100

typedef struct sim {
	const char *peer;
	atomic_int done;
} sim;

/* On the go message, send SIM_MSGS to {echo, peer} and take their echoes. */
static void sim_sender(void *arg)
{
	sim *s = arg;
	kr_msg *m;
	int rc = kr_recv(&m, 20000);
	VM_CHECK(rc == 0, "no go: %s", kr_strerror(rc));
	if (rc)
		return;
	kr_msg_free(m);
	if (echo_sequence(s->peer, SIM_MSGS, 20000))
		atomic_store(&s->done, 1);
}

/* One round: this node (a fresh name) and krnode k start sending to each
 * other at about the same moment (within a random 300 us either way), so
 * that each calls the other while the other's call is under way. */
static void sim_round(dist_proc *k, const char *peer, unsigned kport, int round, uint32_t *seed)
{
	char me[96];
	dist_name(me, sizeof me, round % 2 ? "a" : "z"); /* below the peer's name, then above */
	unsigned port = dist_free_port();
	start_node_cfg((kr_node_config){.name = me, .port = port});
	collect c = {.node = peer, .n = SIM_MSGS, .ms = 20000};
	spawn_collector(&c);
	sim s = {.peer = peer};
	kr_pid sender = vm_spawn(sim_sender, &s);
	long d = (long)(vm_rand(seed) % 601) - 300;
	if (d < 0) {
		cr_assert_eq(kr_send(sender, 1, NULL, 0), 0);
		vm_spin_us(-d);
		dist_say(k, "send %s collect %d", me, SIM_MSGS);
	} else {
		dist_say(k, "send %s collect %d", me, SIM_MSGS);
		vm_spin_us(d);
		cr_assert_eq(kr_send(sender, 1, NULL, 0), 0);
	}
	int ok = VM_WAIT((atomic_load(&c.done) && atomic_load(&s.done)) || atomic_load(&vm_fails),
	                 30000);
	cr_assert(ok && !atomic_load(&vm_fails),
	          "round %d (%s, offset %ld us): %s; %s (%s); the VM said: %s; krnode said: %s",
	          round, me, d,
	          atomic_load(&c.done) ? "its messages came" : "its messages did not all come",
	          atomic_load(&s.done) ? "ours came back" : "ours did not all come back",
	          fail_now(), log_now(), k->text);
	/* One connection left between the two (the other attempt closed). */
	cr_assert(VM_WAIT(tcp_conns(port, kport) == 1, 5000), "round %d: %d connections", round,
	          tcp_conns(port, kport));
	cr_assert_eq(nodes_up(), 1, "round %d", round);
	char want[128];
	snprintf(want, sizeof want, "nodes 1: %s\n", me);
	bool seen = false;
	for (int i = 0; i < 50 && !seen; i++) { /* it may not have seen the last round's node go */
		dist_say(k, "nodes");
		seen = dist_expect(k, want, 100);
	}
	cr_assert(seen, "round %d: krnode said: %s", round, k->text);
	cr_assert_eq(kr_node_stop(), 0);
}

Test(dist_more, simultaneous_connects_leave_one_connection_and_lose_no_message)
{
	char peer[96];
	dist_name(peer, sizeof peer, "m");
	unsigned kport = dist_free_port();
	char extra[32];
	snprintf(extra, sizeof extra, "--port %u", kport);
	dist_proc k;
	dist_krnode_in(&k, peer, DIST_COOKIE, extra, true);
	vm_start_logged(2);
	uint32_t seed = (uint32_t)getpid();
	for (int r = 0; r < SIM_ROUNDS; r++)
		sim_round(&k, peer, kport, r, &seed);
	vm_stop();
	dist_kill(&k);
}

/* ---- what the remaining tests share ---- */

/* name@host, unique to this test process. */
static const char *name_at(char *buf, size_t n, const char *base, const char *host)
{
	static int count;
	snprintf(buf, n, "%s%d_%d@%s", base, (int)getpid(), count++, host);
	return buf;
}

/* Print what a failed test saw of a node (erl or krnode), read to the end
 * of what it has said so far. */
static const char *said(dist_proc *p)
{
	(void)dist_expect(p, "\x01", 50); /* reads what is there; never matches */
	return p->text;
}

typedef struct beam_ask {
	const char *beam;  /* ask {rcv, beam} */
	const char *me;    /* our node name, sent as the data, for the BEAM's answer */
	int tries;         /* sends, 200 ms apart, until one is answered */
	atomic_int answered, done;
} beam_ask;

/* Registered as ktest: send (7, our node's name) to {rcv, beam} until
 * (8, ...) comes back from a process of beam, or the tries run out. */
static void beam_asker(void *arg)
{
	beam_ask *a = arg;
	VM_CHECK(kr_register("ktest", kr_self()) == 0, "register ktest");
	kr_msg *m;
	int rc = KR_ETIMEDOUT;
	for (int i = 0; i < a->tries && rc == KR_ETIMEDOUT; i++) {
		int s = kr_send_named_at(a->beam, "rcv", 7, a->me, strlen(a->me));
		VM_CHECK(s == 0, "send to {rcv, %s}: %s", a->beam, kr_strerror(s));
		rc = kr_recv(&m, 200);
	}
	if (!rc) {
		const char *node = kr_pid_node(m->sender);
		VM_CHECK(m->tag == 8 && node && !strcmp(node, a->beam), "tag %llu from %s",
		         (unsigned long long)m->tag, node ? node : "NULL");
		atomic_store(&a->answered, 1);
		kr_msg_free(m);
	}
	atomic_store(&a->done, 1);
}

/* The Erlang side of beam_asker: rcv answers {7, NodeName} with
 * {ktest, Node} ! {8, <<"back">>}, for ever (the test kills it). */
#define BEAM_RCV                                                                          \
	"Rcv = fun L() -> receive {7, N} -> {ktest, binary_to_atom(N)} ! {8, <<\"back\">>} end," \
	"L() end, register(rcv, spawn(Rcv)),"

typedef struct refused {
	const char *peer, *name; /* send to {name, peer} */
	atomic_int nodedown, answered, done;
} refused;

/* Monitor node peer, send to {name, peer}: a NODEDOWN must come (the
 * connection cannot be made) and no answer within two seconds after it. */
static void refused_sender(void *arg)
{
	refused *r = arg;
	VM_CHECK(kr_monitor_node(r->peer, 1) == 0, "kr_monitor_node");
	const char *me = kr_node_name();
	int s = kr_send_named_at(r->peer, r->name, 7, me, strlen(me));
	VM_CHECK(s == 0, "a send to a node that refuses us is dropped, not an error: %s",
	         kr_strerror(s));
	kr_msg *m;
	long wait = 15000;
	while (kr_recv(&m, wait) == 0) {
		if (m->tag == KR_TAG_NODEDOWN) {
			atomic_store(&r->nodedown, 1);
			wait = 2000;
		} else {
			atomic_store(&r->answered, 1);
		}
		kr_msg_free(m);
	}
	atomic_store(&r->done, 1);
}

static void expect_refused(const char *peer, const char *name)
{
	refused r = {.peer = peer, .name = name};
	vm_spawn(refused_sender, &r);
	cr_assert(VM_WAIT(atomic_load(&r.done), 30000));
	cr_assert(atomic_load(&r.nodedown), "no nodedown for %s", peer);
	cr_assert(!atomic_load(&r.answered), "an answer came from %s", peer);
	cr_assert_eq(nodes_up(), 0);
}

typedef struct echoes {
	const char *peer;
	int n;
	atomic_int done;
} echoes;

static void echoes_main(void *arg)
{
	echoes *e = arg;
	/* The first message of a new connection may reach echo before... no:
	 * echo is registered before krnode says ready; one try is enough. */
	if (echo_sequence(e->peer, e->n, 20000))
		atomic_store(&e->done, 1);
}

static void expect_echoes(const char *peer, int n)
{
	echoes e = {.peer = peer, .n = n};
	vm_spawn(echoes_main, &e);
	cr_assert(VM_WAIT(atomic_load(&e.done) || atomic_load(&vm_fails), 30000));
	vm_assert_clean();
}

/* ---- wrong cookies ---- */

#define OTHER_COOKIE "some_other_cookie"

Test(dist_more, a_wrong_cookie_between_krill_nodes_is_refused_both_ways_then_the_right_one_works)
{
	char me[96], me2[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(me2, sizeof me2, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode_in(&k, peer, OTHER_COOKIE, NULL, true);
	vm_start_logged(2);
	start_node_cfg((kr_node_config){.name = me});

	/* We call: refused; the node called (krnode) reports it, we do not
	 * (a failed call is quiet, as net_kernel's are). */
	expect_refused(peer, "echo");
	cr_assert(dist_expect(&k, "cookies differ", 10000), "krnode said: %s; the VM said: %s",
	          said(&k), log_now());
	cr_assert_eq(log_count("cookies differ"), 0, "we reported: %s", log_now());

	/* They call: refused, reported once by us, nothing delivered. */
	collect c = {.node = peer, .n = 0, .ms = 3000};
	spawn_collector(&c);
	dist_say(&k, "send %s collect 1", me);
	cr_assert(VM_WAIT(log_count("cookies differ") == 1, 10000), "the VM said: %s", log_now());
	cr_assert(VM_WAIT(atomic_load(&c.done), 10000));
	cr_assert(!atomic_load(&c.got_any), "a message came through a refused connection");
	cr_assert_eq(nodes_up(), 0);
	dist_say(&k, "nodes");
	cr_assert(dist_expect(&k, "nodes 0:", 5000), "krnode said: %s", said(&k));
	cr_assert_eq(log_count("cookies differ"), 1, "the VM said: %s", log_now());

	/* The right cookie: both ways work. */
	cr_assert_eq(kr_node_stop(), 0);
	start_node_cfg((kr_node_config){.name = me2, .cookie = OTHER_COOKIE});
	collect c2 = {.node = peer, .n = 10, .ms = 10000};
	spawn_collector(&c2);
	dist_say(&k, "send %s collect 10", me2);
	cr_assert(VM_WAIT(atomic_load(&c2.done) || atomic_load(&vm_fails), 20000), "krnode: %s",
	          said(&k));
	expect_echoes(peer, 10);
	cr_assert_eq(nodes_up(), 1);
	cr_assert_eq(log_count("cookies differ"), 1, "the VM said: %s", log_now());
	vm_stop();
	dist_kill(&k);
}

Test(dist_more, a_wrong_cookie_with_a_beam_is_refused_both_ways_then_the_right_one_works)
{
	NEED_ERL();
	char me[96], me2[96], b[96], expr[1024];
	dist_name(me, sizeof me, "k");
	dist_name(me2, sizeof me2, "k");
	dist_name(b, sizeof b, "b");
	/* The BEAM's cookie is OTHER_COOKIE, but for me2 it uses ours: first
	 * a wrong one, then the right one, as a BEAM sets cookies per node. */
	snprintf(expr, sizeof expr,
	         BEAM_RCV "io:format(\"rcv up~n\"),"
	         "K = '%s', [A, H] = string:split(atom_to_list(K), \"@\"),"
	         "W = fun W() -> case erl_epmd:port_please(A, H) of {port, _, _} -> ok;"
	         "                _ -> timer:sleep(100), W() end end, W(),"
	         "erlang:set_cookie(K, wrong_cookie),"
	         "io:format(\"ping1 ~p~n\", [net_adm:ping(K)]),"
	         "receive after 2000 -> ok end,"
	         "erlang:set_cookie(K, '%s'),"
	         "io:format(\"ping2 ~p~n\", [net_adm:ping(K)]),"
	         "receive after 60000 -> ok end, halt().",
	         me2, DIST_COOKIE);
	dist_proc erl;
	dist_erl(&erl, b, OTHER_COOKIE, expr, 60);
	cr_assert(dist_expect(&erl, "rcv up", 20000), "erl said: %s", said(&erl));
	vm_start_logged(2);

	/* We call the BEAM with a cookie it does not take: refused, quietly here. */
	start_node_cfg((kr_node_config){.name = me});
	expect_refused(b, "rcv");
	cr_assert_eq(log_count("cookies differ"), 0, "we reported: %s", log_now());
	cr_assert_eq(kr_node_stop(), 0);

	/* The BEAM calls us with a wrong cookie (ping1), then the right one. */
	start_node_cfg((kr_node_config){.name = me2});
	cr_assert(dist_expect(&erl, "ping1 ", 20000), "erl said: %s", said(&erl));
	cr_assert(dist_expect(&erl, "ping1 pang", 1000), "erl said: %s", said(&erl));
	cr_assert(VM_WAIT(log_count("cookies differ") == 1, 10000), "the VM said: %s", log_now());
	cr_assert_eq(nodes_up(), 0);
	cr_assert(dist_expect(&erl, "ping2 pong", 20000), "erl said: %s", said(&erl));
	cr_assert_eq(nodes_up(), 1);
	beam_ask a = {.beam = b, .me = me2, .tries = 50};
	vm_spawn(beam_asker, &a);
	cr_assert(VM_WAIT(atomic_load(&a.done), 30000));
	cr_assert(atomic_load(&a.answered), "no answer; erl said: %s", said(&erl));
	cr_assert_eq(log_count("cookies differ"), 1, "the VM said: %s", log_now());
	vm_stop();
	dist_kill(&erl);
}

/* ---- fixed ports, no EPMD ---- */

/* Three nodes listen on one port P, each on its own loopback address
 * (127.0.0.1, .2, .3), as nodes on three hosts would: fixed-port mode
 * finds every peer on P. */
Test(dist_more, fixed_port_krill_nodes_reach_each_other_without_epmd)
{
	char me[96], b[96], c[96], extra[32];
	name_at(me, sizeof me, "a", "127.0.0.1");
	name_at(b, sizeof b, "b", "127.0.0.2");
	name_at(c, sizeof c, "c", "127.0.0.3");
	unsigned port = dist_free_port();
	snprintf(extra, sizeof extra, "--fixed-port %u", port);
	dist_proc kb, kc;
	dist_krnode_in(&kb, b, DIST_COOKIE, extra, true);
	dist_krnode(&kc, c, DIST_COOKIE, extra);
	vm_start_logged(2);
	start_node_cfg((kr_node_config){.name = me, .fixed_port = port});
	/* b calls us at our fixed port. */
	collect col = {.node = b, .n = 10, .ms = 10000};
	spawn_collector(&col);
	dist_say(&kb, "send %s collect 10", me);
	cr_assert(VM_WAIT(atomic_load(&col.done) || atomic_load(&vm_fails), 20000), "b said: %s",
	          said(&kb));
	vm_assert_clean();
	/* We call c at its fixed port. */
	expect_echoes(c, 10);
	cr_assert_eq(nodes_up(), 2);
	/* And none of the three asked EPMD for anything. */
	cr_assert(!epmd_knows(me) && !epmd_knows(b) && !epmd_knows(c));
	vm_stop();
	dist_kill(&kb);
	dist_kill(&kc);
}

/* A BEAM with -erl_epmd_port P (OTP 23+: listen on P, and find every node
 * on P; -start_epmd false) calls a krill node in fixed-port mode, then
 * drops the connection, and the krill node calls it. */
Test(dist_more, fixed_port_mode_talks_to_a_beam_with_erl_epmd_port_both_ways)
{
	NEED_ERL();
	char me[96], b[96], expr[1024], opts[128];
	name_at(me, sizeof me, "k", "127.0.0.1");
	name_at(b, sizeof b, "b", "127.0.0.3");
	unsigned port = dist_free_port();
	snprintf(opts, sizeof opts,
	         "-erl_epmd_port %u -start_epmd false -kernel inet_dist_use_interface {127,0,0,3}",
	         port);
	vm_start_logged(2);
	start_node_cfg((kr_node_config){.name = me, .fixed_port = port});
	snprintf(expr, sizeof expr,
	         BEAM_RCV "K = '%s',"
	         "io:format(\"ping ~p~n\", [net_adm:ping(K)]),"
	         "io:format(\"nodes ~p~n\", [nodes()]),"
	         "erlang:disconnect_node(K),"
	         "io:format(\"disconnected~n\"),"
	         "receive after 60000 -> ok end, halt().",
	         me);
	dist_proc erl;
	dist_erl_opts(&erl, b, DIST_COOKIE, opts, expr, 60);
	/* It calls us. */
	cr_assert(dist_expect(&erl, "disconnected", 20000), "erl said: %s", said(&erl));
	char want[160];
	snprintf(want, sizeof want, "nodes ['%s']", me);
	cr_assert(strstr(erl.text, "ping pong") && strstr(erl.text, want), "erl said: %s",
	          erl.text);
	cr_assert(VM_WAIT(nodes_up() == 0, 10000), "the BEAM's disconnect did not reach us");
	/* We call it, at the same port on its address. */
	beam_ask a = {.beam = b, .me = me, .tries = 50};
	vm_spawn(beam_asker, &a);
	cr_assert(VM_WAIT(atomic_load(&a.done), 30000));
	cr_assert(atomic_load(&a.answered), "no answer; erl said: %s; the VM said: %s", said(&erl),
	          log_now());
	cr_assert_eq(nodes_up(), 1);
	vm_stop();
	dist_kill(&erl);
}

/* ---- hidden nodes ---- */

/* A hidden krill node (this one) connects to two BEAMs that do not know
 * each other, and a BEAM pings a hidden krnode. Erlang's rules for a
 * hidden node: each BEAM has it in nodes(hidden), not in nodes(); and
 * connections to it are not transitive: the two BEAMs it talks to are not
 * connected through it. */
Test(dist_more, a_hidden_node_is_in_nodes_hidden_only_and_passes_on_no_nodes)
{
	NEED_ERL();
	char me[96], b1[96], b2[96], h[96], expr1[2048], expr2[1024];
	dist_name(me, sizeof me, "k");
	dist_name(b1, sizeof b1, "b");
	dist_name(b2, sizeof b2, "c");
	dist_name(h, sizeof h, "h");
	dist_proc kh, e1, e2;
	dist_krnode(&kh, h, DIST_COOKIE, "--hidden");
	/* Each BEAM waits for our message, gives global a second to pass us
	 * on, then says what it sees. */
	const char *report =
	        "receive after 1000 -> ok end,"
	        "io:format(\"~s visible ~p hidden ~p other ~p~n\","
	        "  [node(), lists:member(K, nodes()), lists:member(K, nodes(hidden)),"
	        "   lists:member(Other, nodes(connected))]),";
	snprintf(expr1, sizeof expr1,
	         "K = '%s', Other = '%s', register(rcv, self()),"
	         "receive {7, _} -> {ktest, K} ! {8, <<\"back\">>} end, %s"
	         "H = '%s', io:format(\"pingh ~p~n\", [net_adm:ping(H)]),"
	         "io:format(\"h visible ~p hidden ~p~n\","
	         "  [lists:member(H, nodes()), lists:member(H, nodes(hidden))]),"
	         "receive after 60000 -> ok end, halt().",
	         me, b2, report, h);
	snprintf(expr2, sizeof expr2,
	         "K = '%s', Other = '%s', register(rcv, self()),"
	         "receive {7, _} -> {ktest, K} ! {8, <<\"back\">>} end, %s"
	         "receive after 60000 -> ok end, halt().",
	         me, b1, report);
	dist_erl(&e1, b1, DIST_COOKIE, expr1, 60);
	dist_erl(&e2, b2, DIST_COOKIE, expr2, 60);
	vm_start_logged(2);
	start_node_cfg((kr_node_config){.name = me, .hidden = 1});
	beam_ask a1 = {.beam = b1, .me = me, .tries = 100};
	vm_spawn(beam_asker, &a1);
	cr_assert(VM_WAIT(atomic_load(&a1.done), 30000));
	cr_assert(atomic_load(&a1.answered), "no answer; erl said: %s", said(&e1));
	beam_ask a2 = {.beam = b2, .me = me, .tries = 100};
	vm_spawn(beam_asker, &a2);
	cr_assert(VM_WAIT(atomic_load(&a2.done), 30000));
	cr_assert(atomic_load(&a2.answered), "no answer; erl said: %s", said(&e2));
	char want[160];
	snprintf(want, sizeof want, "%s visible false hidden true other false", b1);
	cr_assert(dist_expect(&e1, want, 20000), "erl said: %s", said(&e1));
	snprintf(want, sizeof want, "%s visible false hidden true other false", b2);
	cr_assert(dist_expect(&e2, want, 20000), "erl said: %s", said(&e2));
	cr_assert_eq(nodes_up(), 2); /* both, and no other */
	/* krnode --hidden, pinged from a BEAM. */
	cr_assert(dist_expect(&e1, "h visible", 20000) && dist_expect(&e1, "\n", 1000),
	          "erl said: %s", said(&e1));
	cr_assert(strstr(e1.text, "pingh pong") && strstr(e1.text, "h visible false hidden true"),
	          "erl said: %s", e1.text);
	vm_stop();
	dist_kill(&e1);
	dist_kill(&e2);
	dist_kill(&kh);
}

/* ---- frames over max_frame ---- */

typedef struct big {
	const char *peer;
	size_t small, large;
	atomic_int small_back, large_sent, large_back, done;
} big;

/* A message of `small` bytes to {echo, peer} comes back; one of `large`
 * bytes comes back as a frame over our max_frame: the connection ends and
 * it never arrives. */
static void big_sender(void *arg)
{
	big *b = arg;
	uint8_t *data = kr_alloc(b->large);
	VM_CHECK(data != NULL, "kr_alloc");
	if (!data)
		return;
	memset(data, 0xab, b->large);
	kr_msg *m;
	int rc = KR_ETIMEDOUT;
	for (int i = 0; i < 30 && rc == KR_ETIMEDOUT; i++) {
		VM_CHECK(kr_send_named_at(b->peer, "echo", 1, data, b->small) == 0, "send small");
		rc = kr_recv(&m, 500);
	}
	VM_CHECK(rc == 0 && m->tag == 1 && m->len == b->small, "the small message: %s",
	         kr_strerror(rc));
	if (!rc)
		kr_msg_free(m);
	atomic_store(&b->small_back, 1);
	VM_CHECK(kr_send_named_at(b->peer, "echo", 2, data, b->large) == 0, "send large");
	atomic_store(&b->large_sent, 1);
	if (kr_recv(&m, 3000) == 0) {
		atomic_store(&b->large_back, 1);
		kr_msg_free(m);
	}
	kr_free(data);
	atomic_store(&b->done, 1);
}

Test(dist_more, a_frame_over_max_frame_ends_that_connection_with_a_report_and_the_node_goes_on)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start_logged(2);
	size_t max = 64 << 10;
	start_node_cfg((kr_node_config){.name = me, .max_frame = max});
	big b = {.peer = peer, .small = max - 1024, .large = max + 1};
	vm_spawn(big_sender, &b);
	cr_assert(VM_WAIT(atomic_load(&b.done) || atomic_load(&vm_fails), 30000));
	vm_assert_clean();
	cr_assert(!atomic_load(&b.large_back), "a frame over max_frame was taken");
	cr_assert(VM_WAIT(log_count("over the maximum") == 1, 10000), "the VM said: %s", log_now());
	cr_assert(VM_WAIT(nodes_up() == 0, 10000), "the connection is still up");
	/* Our frames over our own maximum were the peer's to take; and the
	 * node works on: the next send connects again. */
	expect_echoes(peer, 10);
	cr_assert_eq(nodes_up(), 1);
	cr_assert_eq(log_count("over the maximum"), 1, "the VM said: %s", log_now());
	vm_stop();
	dist_kill(&k);
}

/* ---- a peer restarted while we send ---- */

typedef struct steady {
	const char *peer;
	atomic_int stop, done;
	atomic_int back[2]; /* echoes from the first incarnation's echo, and the next's */
	atomic_int incarnations;
} steady;

/* Send (1, i) to {echo, peer}, i = 0, 1, ..., a millisecond apart, until
 * told to stop, and take the echoes: each one's number above the last's,
 * and, from one echo process, one after the other with no gap (only the
 * messages in flight when a node is lost, and those before the new
 * incarnation's echo took its name, may be missing). */
static void steady_sender(void *arg)
{
	steady *s = arg;
	uint32_t i = 0, last = 0;
	kr_pid from = 0;
	int inc = -1;
	while (!atomic_load(&s->stop) && !atomic_load(&vm_abort)) {
		int rc = kr_send_named_at(s->peer, "echo", 1, &i, sizeof i);
		VM_CHECK(rc == 0, "send %u: %s", i, kr_strerror(rc));
		i++;
		kr_msg *m;
		for (long wait = 1; kr_recv(&m, wait) == 0; wait = 0) {
			uint32_t v = 0;
			if (m->len == sizeof v)
				memcpy(&v, m->data, sizeof v);
			bool ok = m->tag == 1 && m->len == sizeof v;
			if (ok && m->sender != from) { /* a new incarnation's echo */
				ok = inc < 0 || v > last;
				from = m->sender;
				inc++;
			} else if (ok) {
				ok = v == last + 1;
			}
			VM_CHECK(ok, "echo %u after %u (incarnation %d), tag %llu", v, last, inc,
			         (unsigned long long)m->tag);
			last = v;
			if (inc >= 0 && inc < 2)
				atomic_fetch_add(&s->back[inc], 1);
			atomic_store(&s->incarnations, inc + 1);
			kr_msg_free(m);
		}
	}
	atomic_store(&s->done, 1);
}

Test(dist_more, a_peer_killed_and_restarted_while_we_send_loses_no_order_and_comes_back)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start_logged(2);
	start_node_cfg((kr_node_config){.name = me});
	steady s = {.peer = peer};
	kr_pid sender = vm_spawn(steady_sender, &s);
	int want = 300 / KR_TEST_SCALE;
	cr_assert(VM_WAIT(atomic_load(&s.back[0]) >= want || atomic_load(&vm_fails), 20000));
	vm_assert_clean();
	cr_assert_eq(nodes_up(), 1);
	dist_kill(&k);
	cr_assert(VM_WAIT(nodes_up() == 0, 10000), "the killed peer is still up");
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	cr_assert(VM_WAIT(atomic_load(&s.back[1]) >= want || atomic_load(&vm_fails), 30000),
	          "%d echoes from the new incarnation; the VM said: %s", atomic_load(&s.back[1]),
	          log_now());
	vm_assert_clean();
	cr_assert_eq(nodes_up(), 1);
	cr_assert_eq(atomic_load(&s.incarnations), 2);
	cr_assert(kr_is_alive(sender), "the sender ended");
	atomic_store(&s.stop, 1);
	cr_assert(VM_WAIT(atomic_load(&s.done), 10000));
	/* Nothing crashed (a slow build may log the watchdog's notes). */
	cr_assert_eq(log_count("crashed"), 0, "the VM said: %s", log_now());
	vm_stop();
	dist_kill(&k);
}

/* ---- many processes on both sides, one connection ---- */

typedef struct stress {
	const char *peer;
	uint32_t n; /* messages each way per pair */
	atomic_int done, spawned;
} stress;

/* One pair: spawn a duet on the peer (krnode's: it sends us n messages
 * (1, i) and echoes each (2, i) we send), name ourselves its partner, send
 * our n and take its n and our n echoes: each stream exactly once and in
 * order. */
static void stress_pair(void *arg)
{
	stress *s = arg;
	kr_pid d = kr_spawn_at(s->peer, "duet", &s->n, sizeof s->n, NULL);
	VM_CHECK(d > 0, "kr_spawn_at duet: %s", kr_strerror((int)d));
	if (d <= 0)
		return;
	atomic_fetch_add(&s->spawned, 1);
	VM_CHECK(kr_send(d, 3, NULL, 0) == 0, "hello");
	uint32_t sent = 0, got[3] = {0};
	kr_msg *m;
	while (got[1] < s->n || got[2] < s->n) {
		if (sent < s->n && kr_send(d, 2, &sent, sizeof sent) == 0)
			sent++;
		int rc;
		while ((rc = kr_recv(&m, sent < s->n ? 0 : 30000)) == 0) {
			uint32_t v = UINT32_MAX;
			if (m->len == sizeof v)
				memcpy(&v, m->data, sizeof v);
			bool ok = m->sender == d && (m->tag == 1 || m->tag == 2) && v == got[m->tag];
			uint64_t tag = m->tag;
			VM_CHECK(ok, "from duet %llx: tag %llu value %u, expected %u",
			         (unsigned long long)d, (unsigned long long)tag, v,
			         tag < 3 ? got[tag] : 0);
			kr_msg_free(m);
			if (!ok)
				return;
			got[tag]++;
			if (got[1] == s->n && got[2] == s->n)
				break;
		}
		if (rc && sent == s->n) {
			VM_CHECK(0, "pair stalled: got %u and %u of %u: %s", got[1], got[2], s->n,
			         kr_strerror(rc));
			return;
		}
	}
	atomic_fetch_add(&s->done, 1);
}

Test(dist_more, hundreds_of_process_pairs_share_one_connection_and_every_message_arrives_once_in_order)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	unsigned port = dist_free_port(), kport = dist_free_port();
	char extra[32];
	snprintf(extra, sizeof extra, "--port %u", kport);
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, extra);
	vm_start_logged(2);
	start_node_cfg((kr_node_config){.name = me, .port = port});
	int pairs = 200 / VM_LIGHT_DIV;
	stress s = {.peer = peer, .n = 500};
	for (int i = 0; i < pairs; i++)
		vm_spawn(stress_pair, &s);
	cr_assert(VM_WAIT(atomic_load(&s.done) == pairs || atomic_load(&vm_fails), 60000),
	          "%d of %d pairs done (%d spawned)", atomic_load(&s.done), pairs,
	          atomic_load(&s.spawned));
	vm_assert_clean();
	cr_assert_eq(nodes_up(), 1);
	cr_assert_eq(tcp_conns(port, kport), 1);
	cr_assert_eq(log_count("crashed"), 0, "the VM said: %s", log_now());
	vm_stop();
	dist_kill(&k);
}
