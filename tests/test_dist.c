/*
 * test_dist.c - distribution (dist/, krill/dist.h): a node's life, krill
 * nodes talking to each other, and to real BEAM nodes when erl is
 * installed. The other nodes are OS processes: build/<flavour>/krnode
 * (examples/dist/krnode.c) and erl.
 */
#include <netinet/in.h>
#include <sys/socket.h>

#include "dist_util.h"

TestSuite(dist, .fini = vm_fini, .timeout = 90);

static void start_node(const char *name, unsigned ticktime)
{
	kr_node_config cfg = {.name = name, .cookie = DIST_COOKIE, .net_ticktime = ticktime};
	int rc = kr_node_start(&cfg);
	cr_assert_eq(rc, 0, "kr_node_start(%s): %s", name, kr_strerror(rc));
}

/* ---- a node's life ---- */

Test(dist, a_node_starts_stops_and_starts_again_with_its_name)
{
	char name[96];
	dist_name(name, sizeof name, "life");
	cr_assert_eq(kr_node_start(&(kr_node_config){.name = name}), KR_ESTOPPED);
	vm_start(2);
	cr_assert_null(kr_node_name());
	cr_assert_eq(kr_nodes(NULL, 0), KR_ENODIST);
	start_node(name, 0);
	cr_assert_str_eq(kr_node_name(), name);
	cr_assert_eq(kr_node_start(&(kr_node_config){.name = name, .cookie = "x"}), KR_EEXIST);
	cr_assert_eq(kr_nodes(NULL, 0), 0);
	cr_assert_eq(kr_node_stop(), 0);
	cr_assert_eq(kr_node_stop(), KR_ENODIST);
	cr_assert_null(kr_node_name());
	start_node(name, 0); /* EPMD let the name go with the old node */
	cr_assert_str_eq(kr_node_name(), name);
	vm_stop();
}

Test(dist, bad_settings_are_refused_with_einval)
{
	vm_start(1);
	const char *names[] = {"", "@h", "a@", "a@b@c", "a b@h", "a.b@h", NULL};
	for (int i = 0; i < 7; i++) {
		kr_node_config cfg = {.name = names[i], .cookie = "c"};
		cr_assert_eq(kr_node_start(&cfg), KR_EINVAL, "name %s", names[i] ? names[i] : "NULL");
	}
	char name[96];
	dist_name(name, sizeof name, "bad");
	cr_assert_eq(kr_node_start(&(kr_node_config){.name = name, .cookie = "a\nb"}), KR_EINVAL);
	cr_assert_eq(kr_node_start(&(kr_node_config){.name = name, .cookie = ""}), KR_EINVAL);
	cr_assert_eq(kr_node_start(&(kr_node_config){.name = name, .cookie = "c", .port = 70000}),
	             KR_EINVAL);
	cr_assert_eq(kr_node_start(NULL), KR_EINVAL);
	cr_assert_null(kr_node_name());
	vm_stop();
}

/* ---- krill to krill ---- */

typedef struct talk {
	const char *peer;
	int rounds;
	atomic_int done;
} talk;

/* Send rounds messages to {echo, peer}; each comes back from the remote
 * echo process, in order; then the same straight to its pid. */
static void talker(void *arg)
{
	talk *t = arg;
	kr_pid echo = 0;
	for (int i = 0; i < t->rounds; i++) {
		int rc = kr_send_named_at(t->peer, "echo", (uint64_t)i, &i, sizeof i);
		VM_CHECK(rc == 0, "kr_send_named_at: %s", kr_strerror(rc));
	}
	for (int i = 0; i < t->rounds; i++) {
		kr_msg *m;
		int rc = kr_recv(&m, 10000);
		VM_CHECK(rc == 0, "round %d: %s", i, kr_strerror(rc));
		if (rc)
			return;
		VM_CHECK(m->tag == (uint64_t)i && m->len == sizeof i && *(const int *)m->data == i,
		         "round %d: tag %llu len %zu", i, (unsigned long long)m->tag, m->len);
		const char *node = kr_pid_node(m->sender);
		VM_CHECK(node && !strcmp(node, t->peer), "sender's node %s", node ? node : "NULL");
		echo = m->sender;
		kr_msg_free(m);
	}
	VM_CHECK(kr_send(echo, 77, "to the pid", 10) == 0, "send to the remote pid");
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 10000) == 0 && m->tag == 77 && m->len == 10 &&
	                 !memcmp(m->data, "to the pid", 10),
	         "the echo of a send to the remote pid");
	atomic_store(&t->done, 1);
}

Test(dist, messages_go_to_another_krill_node_and_back_in_order)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	talk t = {.peer = peer, .rounds = 1000 / KR_TEST_SCALE};
	vm_spawn(talker, &t);
	int ok = VM_WAIT(atomic_load(&t.done) || atomic_load(&vm_fails), 30000);
	const char *nodes[4];
	int n = kr_nodes(nodes, 4);
	cr_assert_eq(n, 1, "kr_nodes: %d", n);
	cr_assert_str_eq(nodes[0], peer);
	vm_stop();
	dist_kill(&k);
	cr_assert(ok, "the talk did not end");
}

/* ---- with the BEAM ---- */

#define NEED_ERL()                                                         \
	do {                                                               \
		if (!dist_have_erl())                                      \
			cr_skip_test("erl is not installed (erlang-nox)"); \
	} while (0)

Test(dist, a_beam_node_pings_sends_to_and_calls_a_krill_node)
{
	NEED_ERL();
	char k[96], b[96], expr[1024];
	dist_name(k, sizeof k, "k");
	dist_name(b, sizeof b, "b");
	dist_proc kn, erl;
	dist_krnode(&kn, k, DIST_COOKIE, NULL);
	snprintf(expr, sizeof expr,
	         "K = '%s',"
	         "io:format(\"ping ~p~n\", [net_adm:ping(K)]),"
	         "io:format(\"nodes ~p~n\", [nodes()]),"
	         "{echo, K} ! {self(), {hello, [1, 2.5, <<\"bin\">>, #{a => b}]}},"
	         "receive X -> io:format(\"echo ~p~n\", [X]) after 5000 -> io:format(\"no echo~n\") end,"
	         "io:format(\"call ~p~n\", [catch gen_server:call({echo, K}, ping, 5000)]),"
	         "halt().",
	         k);
	dist_erl(&erl, b, DIST_COOKIE, expr, 30);
	bool ok = dist_expect(&erl, "call ", 30000) && dist_expect(&erl, "\n", 1000);
	dist_kill(&erl);
	dist_kill(&kn);
	cr_assert(ok, "erl said: %s", erl.text);
	char want[160];
	snprintf(want, sizeof want, "nodes ['%s']", k);
	cr_assert(strstr(erl.text, "ping pong"), "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, want), "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, "echo {hello,[1,2.5,<<\"bin\">>,#{a => b}]}"), "erl said: %s",
	          erl.text);
	cr_assert(strstr(erl.text, "call ping"), "erl said: %s", erl.text);
}

typedef struct beam_talk {
	const char *beam;
	atomic_int done;
} beam_talk;

/* Send {7, <<"hi">>} to {rcv, beam}; its answer {8, <<"hi back">>} comes
 * to us, registered as ktest, as (8, "hi back") from a pid of the BEAM's. */
static void beam_talker(void *arg)
{
	beam_talk *t = arg;
	kr_register("ktest", kr_self());
	kr_msg *m;
	int rc = KR_ETIMEDOUT;
	for (int i = 0; i < 100 && rc == KR_ETIMEDOUT; i++) { /* until the BEAM's rcv exists */
		VM_CHECK(kr_send_named_at(t->beam, "rcv", 7, "hi", 2) == 0, "send to rcv");
		rc = kr_recv(&m, 200);
	}
	VM_CHECK(rc == 0, "no answer from the BEAM: %s", kr_strerror(rc));
	if (rc)
		return;
	VM_CHECK(m->tag == 8 && m->len == 7 && !memcmp(m->data, "hi back", 7), "tag %llu len %zu",
	         (unsigned long long)m->tag, m->len);
	const char *node = kr_pid_node(m->sender);
	VM_CHECK(node && !strcmp(node, t->beam), "sender's node %s", node ? node : "NULL");
	/* And a term of any other shape arrives as KR_TAG_TERM, as the BEAM
	 * encoded it: {8, <<"hi back">>} was krill's shape, [1,2,3] is not. */
	VM_CHECK(kr_send(m->sender, 9, "list", 4) == 0, "send to the BEAM's pid");
	kr_msg_free(m);
	rc = kr_recv(&m, 10000);
	VM_CHECK(rc == 0 && m->tag == KR_TAG_TERM, "the list: %s", kr_strerror(rc));
	static const uint8_t list[] = {131, 107, 0, 3, 1, 2, 3}; /* [1,2,3] as a STRING_EXT */
	VM_CHECK(!rc && m->len == sizeof list && !memcmp(m->data, list, sizeof list), "the list's bytes");
	atomic_store(&t->done, 1);
}

Test(dist, a_krill_node_sends_to_a_beam_process_and_gets_its_answer)
{
	NEED_ERL();
	char k[96], b[96], expr[1024];
	dist_name(k, sizeof k, "k");
	dist_name(b, sizeof b, "b");
	snprintf(expr, sizeof expr,
	         "register(rcv, self()),"
	         "receive {7, <<\"hi\">>} -> {ktest, '%s'} ! {8, <<\"hi back\">>} end,"
	         "receive {9, <<\"list\">>} -> {ktest, '%s'} ! [1, 2, 3] end,"
	         "io:format(\"done~n\"), timer:sleep(500), halt().",
	         k, k);
	dist_proc erl;
	dist_erl(&erl, b, DIST_COOKIE, expr, 30);
	vm_start(2);
	start_node(k, 0);
	beam_talk t = {.beam = b};
	vm_spawn(beam_talker, &t);
	int ok = VM_WAIT(atomic_load(&t.done) || atomic_load(&vm_fails), 30000);
	vm_stop();
	dist_kill(&erl);
	cr_assert(ok, "no answer; erl said: %s", erl.text);
}

Test(dist, a_wrong_cookie_is_refused_and_reported)
{
	NEED_ERL();
	char k[96], b[96], expr[512];
	dist_name(k, sizeof k, "k");
	dist_name(b, sizeof b, "b");
	dist_proc kn, erl;
	dist_krnode(&kn, k, DIST_COOKIE, NULL);
	snprintf(expr, sizeof expr, "io:format(\"ping ~p~n\", [net_adm:ping('%s')]), halt().", k);
	dist_erl(&erl, b, "not_the_cookie", expr, 30);
	bool ok = dist_expect(&erl, "ping ", 30000) && dist_expect(&erl, "\n", 1000);
	bool reported = dist_expect(&kn, "cookie", 5000);
	dist_kill(&erl);
	dist_kill(&kn);
	cr_assert(ok, "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, "ping pang"), "erl said: %s", erl.text);
	cr_assert(reported, "krnode said: %s", kn.text);
}

/* ---- failures ---- */

typedef struct ping {
	const char *peer;
	kr_pid got;
	int rc;
	atomic_int done;
} ping;

/* Sends again every half second: a message to a name not (yet) registered is
 * dropped, as in Erlang, and the peer's supervisor may still be restarting
 * echo after a crash. */
static void pinger(void *arg)
{
	ping *p = arg;
	kr_msg *m;
	for (int i = 0; i < 30; i++) {
		p->rc = kr_send_named_at(p->peer, "echo", 5, "ping", 4);
		if (p->rc || !(p->rc = kr_recv(&m, 500)))
			break;
	}
	if (!p->rc) {
		p->got = m->sender;
		kr_msg_free(m);
	}
	atomic_store(&p->done, 1);
}

/* A message to {echo, peer} and its echo: the echo process's pid. */
static kr_pid ping_echo(const char *peer)
{
	ping p = {.peer = peer};
	vm_spawn(pinger, &p);
	cr_assert(VM_WAIT(atomic_load(&p.done), 20000), "no ping");
	cr_assert_eq(p.rc, 0, "ping %s: %s", peer, kr_strerror(p.rc));
	return p.got;
}

static int nodes_up(void)
{
	return kr_nodes(NULL, 0);
}

Test(dist, a_peer_killed_is_down_at_once_and_its_restart_is_a_new_incarnation)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	kr_pid old = ping_echo(peer);
	cr_assert_eq(nodes_up(), 1);
	dist_kill(&k);
	cr_assert(VM_WAIT(nodes_up() == 0, 10000), "still %d nodes up", nodes_up());
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	kr_pid fresh = ping_echo(peer); /* the send connects again */
	cr_assert_neq(fresh, old, "the new incarnation's echo has the old pid");
	cr_assert_str_eq(kr_pid_node(old), peer);
	uint64_t dead = vm_dead_letters();
	cr_assert_eq(kr_send(old, 1, "lost", 4), 0);
	cr_assert(VM_WAIT(vm_dead_letters() > dead, 10000),
	          "a message to the old incarnation was not dropped");
	vm_stop();
	dist_kill(&k);
}

/* The error report of a peer that stopped answering, as OTP's "Node ...
 * not responding": how many, and the first's level and text. */
static atomic_int silent_reports, silent_level;
static char silent_line[256];

static void keep_silent_report(int level, const char *line, void *ctx)
{
	(void)ctx;
	if (!strstr(line, "not responding") || atomic_fetch_add(&silent_reports, 1))
		return;
	snprintf(silent_line, sizeof silent_line, "%s", line);
	atomic_store(&silent_level, level);
}

Test(dist, a_stopped_peer_is_down_after_net_ticktime)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, "--ticktime 2");
	vm_start_cfg(&(kr_config){.schedulers = 2, .log_handler = keep_silent_report});
	start_node(me, 2);
	(void)ping_echo(peer);
	int64_t t0 = vm_now_ns();
	kill(k.pid, SIGSTOP);
	bool down = VM_WAIT(nodes_up() == 0, 10000);
	double ms = (double)(vm_now_ns() - t0) / 1e6;
	bool said = VM_WAIT(atomic_load(&silent_reports) > 0, 5000);
	kill(k.pid, SIGCONT);
	vm_stop();
	dist_kill(&k);
	cr_assert(down, "the stopped peer is still up");
	cr_assert_geq(ms, 1500, "down after %.0f ms, before net_ticktime", ms);
	cr_assert(said, "no report of the peer that stopped answering");
	cr_assert_eq(atomic_load(&silent_reports), 1);
	cr_assert_eq(atomic_load(&silent_level), KR_LOG_ERROR, "at level %s: %s",
	             kr_log_level_name(atomic_load(&silent_level)), silent_line);
	cr_assert(strstr(silent_line, peer), "the report does not name the peer: %s", silent_line);
}

/* Connect to port, write len bytes, and wait for the node to close. */
static void throw_at(unsigned port, const void *bytes, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char buf[256];
	while (read(fd, buf, sizeof buf) > 0) /* a status 'not_allowed', then the close */
		;
	close(fd);
}

Test(dist, garbage_on_the_port_drops_that_connection_only)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start_quiet(2);
	unsigned port = dist_free_port();
	kr_node_config cfg = {.name = me, .cookie = DIST_COOKIE, .port = port};
	cr_assert_eq(kr_node_start(&cfg), 0);
	uint32_t seed = 12345;
	uint8_t junk[1000];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)vm_rand(&seed);
	throw_at(port, junk, sizeof junk);
	throw_at(port, "\x00\x05N\x00", 4);               /* a truncated send_name */
	throw_at(port, "\xff\xff", 2);                    /* a frame over the maximum */
	uint8_t name[300] = {0, 250, 'N'};                /* a name of 239 bytes and no '@' */
	memset(name + 3, 'x', sizeof name - 3);
	throw_at(port, name, 252);
	cr_assert(VM_WAIT(atomic_load(&vm_reports) >= 4, 10000), "%d reports",
	          atomic_load(&vm_reports));
	(void)ping_echo(peer); /* the node works on */
	cr_assert_eq(nodes_up(), 1);
	vm_stop();
	dist_kill(&k);
}

/* ---- links, monitors and exit signals across nodes ---- */

/* {Atom, Pid} in the external format into out: its length. */
static size_t term_atom_pid(uint8_t *out, size_t n, const char *atom, kr_pid pid)
{
	size_t a = strlen(atom), at = 5 + a;
	out[0] = 131, out[1] = 104, out[2] = 2, out[3] = 119, out[4] = (uint8_t)a;
	memcpy(out + 5, atom, a);
	long k = kr_term_put_pid(out + at, n - at, pid);
	return k > 0 ? at + (size_t)k : 0;
}

static size_t term_atom(uint8_t *out, const char *atom)
{
	size_t a = strlen(atom);
	out[0] = 131, out[1] = 119, out[2] = (uint8_t)a;
	memcpy(out + 3, atom, a);
	return 3 + a;
}

/* Wait for an exit message from `from`, or a DOWN for ref: its reason. */
static bool wait_signal(uint64_t tag, kr_pid from, kr_ref ref, kr_reason *r, long ms)
{
	kr_msg *m;
	while (kr_recv(&m, ms) == 0) {
		const kr_exit_msg *e = kr_msg_exit(m);
		const kr_down_msg *d = kr_msg_down(m);
		bool hit = (tag == KR_TAG_EXIT && e && e->from == from) ||
		           (tag == KR_TAG_DOWN && d && d->ref == ref && d->pid == from);
		if (hit)
			*r = e ? e->reason : d->reason;
		kr_msg_free(m);
		if (hit)
			return true;
	}
	return false;
}

/* Both the exit message from `from` and the DOWN for ref, in whichever
 * order they come: their reasons. */
static bool wait_exit_and_down(kr_pid from, kr_ref ref, kr_reason *exit_r, kr_reason *down_r,
                               long ms)
{
	bool got_exit = false, got_down = false;
	kr_msg *m;
	while (!(got_exit && got_down) && kr_recv(&m, ms) == 0) {
		const kr_exit_msg *e = kr_msg_exit(m);
		const kr_down_msg *d = kr_msg_down(m);
		if (e && e->from == from)
			*exit_r = e->reason, got_exit = true;
		if (d && d->ref == ref && d->pid == from)
			*down_r = d->reason, got_down = true;
		kr_msg_free(m);
	}
	return got_exit && got_down;
}

typedef struct linker {
	const char *peer;
	int monitors;
	kr_pid echo;
	atomic_int ready, done;
} linker;

/* Link to and monitor the remote echo (monitors times), say ready, then
 * expect the link's exit and every DOWN with noconnection. */
static void noconn_linker(void *arg)
{
	linker *l = arg;
	kr_trap_exit(1);
	VM_CHECK(kr_link(l->echo) == 0, "kr_link to a remote pid");
	kr_ref *refs = kr_alloc((size_t)l->monitors * sizeof *refs);
	for (int i = 0; i < l->monitors; i++)
		VM_CHECK((refs[i] = kr_monitor(l->echo)) > 0, "kr_monitor %d", i);
	atomic_store(&l->ready, 1);
	int downs = 0, exits = 0;
	kr_msg *m;
	while ((downs < l->monitors || !exits) && kr_recv(&m, 20000) == 0) {
		const kr_down_msg *d = kr_msg_down(m);
		const kr_exit_msg *e = kr_msg_exit(m);
		if (d && d->pid == l->echo && d->reason.kind == KR_EXIT_NOCONNECTION)
			downs++;
		if (e && e->from == l->echo && e->reason.kind == KR_EXIT_NOCONNECTION)
			exits++;
		kr_msg_free(m);
	}
	VM_CHECK(exits == 1, "%d exits noconnection from the lost node", exits);
	VM_CHECK(downs == l->monitors, "%d DOWNs of %d", downs, l->monitors);
	atomic_store(&l->done, 1);
}

Test(dist, a_killed_node_fires_every_link_and_monitor_with_noconnection)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	linker l = {.peer = peer, .monitors = 10000 / VM_LIGHT_DIV, .echo = ping_echo(peer)};
	vm_spawn(noconn_linker, &l);
	cr_assert(VM_WAIT(atomic_load(&l.ready) || atomic_load(&vm_fails), 20000));
	ping_echo(peer); /* the link and monitors are there before the kill */
	dist_kill(&k);
	int ok = VM_WAIT(atomic_load(&l.done) || atomic_load(&vm_fails), 30000);
	vm_stop();
	cr_assert(ok, "the linked process did not hear of the lost node");
}

typedef struct crash_watch {
	kr_pid echo;
	int round, kill; /* kill 0: make it segfault; 1: kr_exit_sig KR_EXIT_KILL */
	atomic_int done;
} crash_watch;

/* Link to and monitor the remote echo, end it, and see its reason twice.
 * Both, in either order: Erlang orders the signals of one pair of
 * processes, but not a dying process's exit signals against its DOWNs. */
static void crash_watcher(void *arg)
{
	crash_watch *c = arg;
	kr_trap_exit(1);
	VM_CHECK(kr_link(c->echo) == 0, "kr_link");
	kr_ref ref = kr_monitor(c->echo);
	VM_CHECK(ref > 0, "kr_monitor");
	uint8_t t[32];
	if (c->kill)
		VM_CHECK(kr_exit_sig(c->echo, KR_EXIT_KILL) == 0, "kr_exit_sig");
	else
		VM_CHECK(kr_send_term(c->echo, t, term_atom(t, "segfault")) == 0, "send segfault");
	int want = c->kill ? KR_EXIT_KILLED : KR_EXIT_SEGFAULT;
	kr_reason er = {0}, dr = {0}, r;
	VM_CHECK(wait_exit_and_down(c->echo, ref, &er, &dr, 20000), "round %d: no exit and DOWN",
	         c->round);
	VM_CHECK(er.kind == want, "exit reason %s", kr_exit_kind_name(er.kind));
	VM_CHECK(dr.kind == want, "DOWN reason %s (%s)", kr_exit_kind_name(dr.kind), dr.text);
	/* The node is still up: echo was restarted by its supervisor. */
	ref = kr_monitor(c->echo);
	VM_CHECK(ref > 0 && wait_signal(KR_TAG_DOWN, c->echo, ref, &r, 20000) &&
	                 r.kind == KR_EXIT_NOPROC,
	         "a monitor of the dead echo: no DOWN noproc");
	atomic_store(&c->done, 1);
}

Test(dist, a_remote_crash_and_a_remote_kill_reach_links_and_monitors)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	/* Rounds: the peer's notices of one end once waited in its outbox,
	 * for a run in a few dozen under qemu (vm/exit.c). */
	for (int round = 0; round < 16; round++) {
		crash_watch c = {.echo = ping_echo(peer), .round = round, .kill = round & 1};
		vm_spawn(crash_watcher, &c);
		cr_assert(VM_WAIT(atomic_load(&c.done) || atomic_load(&vm_fails), 30000));
		vm_assert_clean();
	}
	cr_assert_eq(nodes_up(), 1);
	vm_stop();
	dist_kill(&k);
}

typedef struct stale_watch {
	kr_pid old; /* a pid of the peer's earlier incarnation */
	atomic_int done;
} stale_watch;

/* Link to and monitor a pid of an incarnation that is gone: as in Erlang,
 * the peer's new incarnation answers noproc to both (and the link is not
 * left waiting for a noconnection that the next loss would fire). */
static void stale_watcher(void *arg)
{
	stale_watch *w = arg;
	kr_trap_exit(1);
	VM_CHECK(kr_link(w->old) == 0, "kr_link");
	kr_reason r;
	VM_CHECK(wait_signal(KR_TAG_EXIT, w->old, 0, &r, 20000), "no exit from the stale pid");
	VM_CHECK(r.kind == KR_EXIT_NOPROC, "exit reason %s", kr_exit_kind_name(r.kind));
	kr_ref ref = kr_monitor(w->old);
	VM_CHECK(ref > 0, "kr_monitor");
	VM_CHECK(wait_signal(KR_TAG_DOWN, w->old, ref, &r, 20000), "no DOWN for the stale pid");
	VM_CHECK(r.kind == KR_EXIT_NOPROC, "DOWN reason %s", kr_exit_kind_name(r.kind));
	atomic_store(&w->done, 1);
}

Test(dist, a_link_or_monitor_to_an_earlier_incarnation_gets_noproc)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	stale_watch w = {.old = ping_echo(peer)};
	dist_kill(&k);
	cr_assert(VM_WAIT(nodes_up() == 0, 10000), "still %d nodes up", nodes_up());
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	(void)ping_echo(peer); /* connected to the new incarnation */
	vm_spawn(stale_watcher, &w);
	cr_assert(VM_WAIT(atomic_load(&w.done) || atomic_load(&vm_fails), 30000));
	vm_assert_clean();
	vm_stop();
	dist_kill(&k);
}

typedef struct beam_link {
	const char *beam;
	atomic_int done;
} beam_link;

/* Send {link_me, self()} to {rcv, beam} until a term comes back. */
static bool introduce(const char *beam, kr_msg **reply)
{
	uint8_t t[300];
	size_t n = term_atom_pid(t, sizeof t, "link_me", kr_self());
	for (int i = 0; i < 100; i++) {
		VM_CHECK(n && kr_send_named_at(beam, "rcv", KR_TAG_TERM, t, n) == 0, "link_me");
		if (kr_recv_tag(reply, KR_TAG_TERM, 200) == 0)
			return true;
	}
	return false;
}

/* The BEAM links to and monitors us, says go; we crash. */
static void crash_for_beam(void *arg)
{
	beam_link *b = arg;
	kr_msg *m;
	VM_CHECK(introduce(b->beam, &m), "no go from the BEAM");
	atomic_store(&b->done, 1);
	kr_crash("bang");
}

Test(dist, a_krill_crash_reaches_a_linked_and_monitoring_beam_process)
{
	NEED_ERL();
	char k[96], b[96];
	dist_name(k, sizeof k, "k");
	dist_name(b, sizeof b, "b");
	const char *expr =
		"register(rcv, self()), process_flag(trap_exit, true),"
		"P = receive {link_me, X} -> X end,"
		"link(P), M = erlang:monitor(process, P), P ! go,"
		"receive {'EXIT', P, R} -> io:format(\"exit ~p~n\", [R]) after 10000 -> io:format(\"no exit~n\") end,"
		"receive {'DOWN', M, process, P, R2} -> io:format(\"down ~p~n\", [R2])"
		"  after 10000 -> io:format(\"no down~n\") end,"
		"halt().";
	dist_proc erl;
	dist_erl(&erl, b, DIST_COOKIE, expr, 30);
	vm_start_quiet(2);
	start_node(k, 0);
	beam_link t = {.beam = b};
	vm_spawn(crash_for_beam, &t);
	bool ok = dist_expect(&erl, "down ", 30000) && dist_expect(&erl, "\n", 1000);
	vm_stop();
	dist_kill(&erl);
	cr_assert(ok, "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, "exit {error,<<\"bang\">>}"), "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, "down {error,<<\"bang\">>}"), "erl said: %s", erl.text);
}

/* A BEAM process says {ready, W}; we link to and monitor W, say linked;
 * W exits with boom, which we see twice. */
static void watch_beam(void *arg)
{
	beam_link *b = arg;
	kr_trap_exit(1);
	kr_msg *m;
	if (!introduce(b->beam, &m)) {
		VM_CHECK(0, "no {ready, W} from the BEAM");
		return;
	}
	kr_pid w = 0;
	const uint8_t *d = m->data;
	VM_CHECK(m->len > 10 && d[1] == 104 && d[2] == 2 &&
	                 kr_term_get_pid(d + 10, m->len - 10, &w) > 0 && w > 0,
	         "{ready, W}: no pid in %zu bytes", m->len);
	kr_msg_free(m);
	VM_CHECK(kr_link(w) == 0, "kr_link");
	kr_ref ref = kr_monitor(w);
	uint8_t t[32];
	VM_CHECK(kr_send_term(w, t, term_atom(t, "linked")) == 0, "linked");
	kr_reason er = {0}, dr = {0};
	VM_CHECK(wait_exit_and_down(w, ref, &er, &dr, 20000), "no exit and DOWN from W");
	VM_CHECK(er.kind == KR_EXIT_ERROR && !strcmp(er.text, "boom"), "exit reason %s %s",
	         kr_exit_kind_name(er.kind), er.text);
	VM_CHECK(dr.kind == KR_EXIT_ERROR && !strcmp(dr.text, "boom"), "DOWN reason %s %s",
	         kr_exit_kind_name(dr.kind), dr.text);
	atomic_store(&b->done, 1);
}

Test(dist, a_beam_exit_reaches_a_linked_and_monitoring_krill_process)
{
	NEED_ERL();
	char k[96], b[96];
	dist_name(k, sizeof k, "k");
	dist_name(b, sizeof b, "b");
	const char *expr =
		"register(rcv, self()),"
		"L = receive {link_me, X} -> X end,"
		"spawn(fun() -> L ! {ready, self()}, receive linked -> exit(boom) end end),"
		"timer:sleep(10000), halt().";
	dist_proc erl;
	dist_erl(&erl, b, DIST_COOKIE, expr, 30);
	vm_start(2);
	start_node(k, 0);
	beam_link t = {.beam = b};
	vm_spawn(watch_beam, &t);
	int ok = VM_WAIT(atomic_load(&t.done) || atomic_load(&vm_fails), 30000);
	vm_stop();
	dist_kill(&erl);
	cr_assert(ok, "erl said: %s", erl.text);
}

/* ---- calls across nodes ---- */

typedef struct caller {
	const char *peer;
	kr_pid server;
	dist_proc *kill_me; /* kill this node during the last call */
	int rc;
	atomic_int calling, done;
} caller;

static void remote_caller(void *arg)
{
	caller *c = arg;
	for (int i = 0; i < 100; i++) {
		kr_msg *r;
		int rc = kr_call(c->server, (uint64_t)i, &i, sizeof i, &r, 10000);
		VM_CHECK(rc == 0, "call %d: %s", i, kr_strerror(rc));
		if (rc)
			return;
		VM_CHECK(r->tag == (uint64_t)i && r->len == sizeof i && *(const int *)r->data == i &&
		                 r->sender == c->server,
		         "reply %d: tag %llu len %zu", i, (unsigned long long)r->tag, r->len);
		kr_msg_free(r);
	}
	/* Nothing of the calls is left behind: no reply, no DOWN. */
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 200) == KR_ETIMEDOUT, "a message left after the calls: tag %llu",
	         (unsigned long long)m->tag);
	/* A call whose server's node is lost ends with KR_ENOCONN. */
	uint8_t t[32];
	atomic_store(&c->calling, 1);
	c->rc = kr_call(c->server, KR_TAG_TERM, t, term_atom(t, "noreply"), &m, 20000);
	atomic_store(&c->done, 1);
}

Test(dist, kr_call_reaches_a_remote_server_and_a_lost_node_ends_it)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	caller c = {.peer = peer, .server = ping_echo(peer)};
	vm_spawn(remote_caller, &c);
	cr_assert(VM_WAIT(atomic_load(&c.calling) || atomic_load(&vm_fails), 30000));
	vm_assert_clean();
	vm_host_sleep_ms(100);
	dist_kill(&k);
	int ok = VM_WAIT(atomic_load(&c.done), 20000);
	vm_stop();
	cr_assert(ok, "the call did not end when the node was lost");
	cr_assert_eq(c.rc, KR_ENOCONN, "the call ended with %s", kr_strerror(c.rc));
}

/* ---- node monitors ---- */

typedef struct nodewatch {
	const char *peer;
	atomic_int ready, done;
} nodewatch;

static bool wait_node_msg(uint64_t tag, const char *name, long ms)
{
	kr_msg *m;
	while (kr_recv(&m, ms) == 0) {
		bool hit = m->tag == tag && m->len == strlen(name) + 1 && !memcmp(m->data, name, m->len);
		kr_msg_free(m);
		if (hit)
			return true;
	}
	return false;
}

static void node_watcher(void *arg)
{
	nodewatch *w = arg;
	VM_CHECK(kr_monitor_nodes(1) == 0, "kr_monitor_nodes");
	/* A node that cannot be reached: nodedown at once. */
	VM_CHECK(kr_monitor_node("nobody@127.0.0.1", 1) == 0, "kr_monitor_node");
	VM_CHECK(wait_node_msg(KR_TAG_NODEDOWN, "nobody@127.0.0.1", 20000),
	         "no nodedown for a node that is not there");
	VM_CHECK(kr_monitor_node(w->peer, 1) == 0 && kr_monitor_node(w->peer, 1) == 0 &&
	                 kr_monitor_node(w->peer, 1) == 0 && kr_monitor_node(w->peer, 0) == 0,
	         "kr_monitor_node x3, then one off");
	VM_CHECK(wait_node_msg(KR_TAG_NODEUP, w->peer, 20000), "no nodeup");
	atomic_store(&w->ready, 1);
	int downs = 0;
	kr_msg *m;
	while (kr_recv(&m, 2000) == 0) { /* two node monitors and monitor_nodes: three */
		downs += m->tag == KR_TAG_NODEDOWN && !strcmp(m->data, w->peer);
		kr_msg_free(m);
	}
	VM_CHECK(downs == 3, "%d nodedowns, not 3", downs);
	atomic_store(&w->done, 1);
}

Test(dist, node_monitors_hear_of_nodes_that_come_and_go)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	nodewatch w = {.peer = peer};
	vm_spawn(node_watcher, &w);
	cr_assert(VM_WAIT(atomic_load(&w.ready) || atomic_load(&vm_fails), 30000));
	dist_kill(&k);
	int ok = VM_WAIT(atomic_load(&w.done) || atomic_load(&vm_fails), 30000);
	vm_stop();
	cr_assert(ok, "the watcher did not finish");
}

/* ---- remote spawn ---- */

typedef struct spawner {
	const char *peer;
	atomic_int done;
} spawner;

static void remote_spawner(void *arg)
{
	spawner *s = arg;
	kr_trap_exit(1);
	/* A worker there answers a message with its argument. */
	kr_pid w = kr_spawn_at(s->peer, "worker", "hello", 5, NULL);
	VM_CHECK(w > 0 && !strcmp(kr_pid_node(w), s->peer), "kr_spawn_at: %s",
	         kr_strerror((int)w));
	kr_msg *m;
	VM_CHECK(kr_send(w, 4, NULL, 0) == 0 && kr_recv(&m, 10000) == 0 && m->tag == 4 &&
	                 m->len == 5 && !memcmp(m->data, "hello", 5) && m->sender == w,
	         "the worker's answer");
	/* spawn_link and spawn_monitor: a worker that crashes at once is seen
	 * by both, with its reason. */
	kr_ref ref = 0;
	kr_spawn_opts o = {.link = 1, .monitor = &ref};
	w = kr_spawn_at(s->peer, "worker", "crash", 5, &o);
	VM_CHECK(w > 0 && ref > 0, "kr_spawn_at with link and monitor: %s", kr_strerror((int)w));
	kr_reason er = {0}, dr = {0};
	VM_CHECK(wait_exit_and_down(w, ref, &er, &dr, 20000), "no exit and DOWN from the worker");
	VM_CHECK(er.kind == KR_EXIT_ERROR && !strcmp(er.text, "asked to crash"), "exit: %s %s",
	         kr_exit_kind_name(er.kind), er.text);
	VM_CHECK(dr.kind == KR_EXIT_ERROR, "DOWN: %s", kr_exit_kind_name(dr.kind));
	/* A name nobody registered: the process ends at once, as undef. */
	o.link = 0;
	w = kr_spawn_at(s->peer, "nosuch", NULL, 0, &o);
	VM_CHECK(w > 0 && wait_signal(KR_TAG_DOWN, w, ref, &dr, 20000) &&
	                 dr.kind == KR_EXIT_ERROR && strstr(dr.text, "undef"),
	         "undef: %s", dr.text);
	/* Bad arguments, and a node that is not there. */
	VM_CHECK(kr_spawn_at(s->peer, "", NULL, 0, NULL) == KR_EINVAL, "an empty name");
	VM_CHECK(kr_spawn_at("nohost", "worker", NULL, 0, NULL) == KR_EINVAL, "a node name without @");
	VM_CHECK(kr_spawn_at("nobody@127.0.0.1", "worker", NULL, 0, NULL) == KR_ENOCONN,
	         "a node that is not there");
	/* On this node's own name it spawns here. */
	w = kr_spawn_at(kr_node_name(), "worker", "local", 5, NULL);
	VM_CHECK(w > 0 && kr_send(w, 6, NULL, 0) == 0 && kr_recv(&m, 10000) == 0 && m->len == 5 &&
	                 !memcmp(m->data, "local", 5),
	         "kr_spawn_at on our own name: %s", kr_strerror((int)w));
	atomic_store(&s->done, 1);
}

static void local_worker(const void *arg, size_t len)
{
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0 && m->sender)
		kr_send(m->sender, m->tag, arg, len);
}

Test(dist, kr_spawn_at_spawns_links_and_monitors_on_another_node)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start_quiet(2);
	cr_assert_eq(kr_spawnable("worker", local_worker), 0);
	cr_assert_eq(kr_spawnable("worker", local_worker), KR_EEXIST);
	cr_assert_eq(kr_spawnable("a:b", local_worker), KR_EINVAL);
	start_node(me, 0);
	spawner s = {.peer = peer};
	vm_spawn(remote_spawner, &s);
	int ok = VM_WAIT(atomic_load(&s.done) || atomic_load(&vm_fails), 60000);
	vm_stop();
	dist_kill(&k);
	cr_assert(ok, "the spawner did not finish");
}

Test(dist, a_beam_node_spawns_krill_processes)
{
	NEED_ERL();
	char k[96], b[96], expr[1400];
	dist_name(k, sizeof k, "k");
	dist_name(b, sizeof b, "b");
	dist_proc kn, erl;
	dist_krnode(&kn, k, DIST_COOKIE, NULL);
	snprintf(expr, sizeof expr,
	         "K = '%s', pong = net_adm:ping(K),"
	         "P = spawn(K, krill, worker, [<<\"hello\">>]), P ! {1, <<>>},"
	         "receive {1, B} -> io:format(\"worker ~p~n\", [B]) after 5000 -> io:format(\"no answer~n\") end,"
	         "{P2, M} = spawn_monitor(K, krill, worker, [<<\"crash\">>]),"
	         "receive {'DOWN', M, process, P2, R} -> io:format(\"down ~p~n\", [R]) after 5000 -> io:format(\"no down ~p ~p~n\", [P2, process_info(self(), messages)]) end,"
	         "process_flag(trap_exit, true), P3 = spawn_link(K, krill, nosuch, []),"
	         "receive {'EXIT', P3, R3} -> io:format(\"exit ~p~n\", [R3]) after 5000 -> io:format(\"no exit~n\") end,"
	         "{P4, M4} = spawn_monitor(K, lists, seq, [1, 2]),"
	         "receive {'DOWN', M4, process, P4, R4} -> io:format(\"other ~p~n\", [R4]) after 5000 -> io:format(\"other none~n\") end,"
	         "io:format(\"erpc ~p~n\", [catch erpc:call(K, erlang, node, [], 5000)]),"
	         "halt().",
	         k);
	dist_erl(&erl, b, DIST_COOKIE, expr, 30);
	bool ok = dist_expect(&erl, "erpc ", 30000) && dist_expect(&erl, "}\n", 3000);
	dist_kill(&erl);
	(void)dist_expect(&kn, "\n\n", 100); /* what it said, for the messages below */
	dist_kill(&kn);
	cr_assert(ok, "erl said: %s\nkrnode said: %s", erl.text, kn.text);
	cr_assert(strstr(erl.text, "worker <<\"hello\">>"), "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, "down {error,<<\"asked to crash\">>}"), "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, "exit {error,<<\"undef: krill:nosuch/0"), "erl said: %s", erl.text);
	/* What krill does not have is undef, as on a BEAM without the module. */
	cr_assert(strstr(erl.text, "other {error,<<\"undef: lists:seq/2"), "erl said: %s", erl.text);
	cr_assert(strstr(erl.text, "erpc {'EXIT',{signal,{error,<<\"undef: erpc:execute_call/4"),
	          "erl said: %s", erl.text);
}

/* ---- monitors by name ---- */

typedef struct name_watch {
	const char *peer;
	atomic_int done;
} name_watch;

static void name_watcher(void *arg)
{
	name_watch *w = arg;
	/* No such name there: DOWN noproc. */
	kr_ref ref = kr_monitor_name_at(w->peer, "nobody");
	VM_CHECK(ref > 0, "kr_monitor_name_at: %s", kr_strerror((int)ref));
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 20000) == 0 && kr_msg_down(m)->ref == ref &&
	                 kr_msg_down(m)->reason.kind == KR_EXIT_NOPROC &&
	                 !strcmp(kr_pid_node(kr_msg_down(m)->pid), w->peer),
	         "no DOWN noproc for a name nobody has");
	/* A demonitored name monitor stays quiet; a live one sees the end. */
	kr_ref quiet = kr_monitor_name_at(w->peer, "echo");
	ref = kr_monitor_name_at(w->peer, "echo");
	VM_CHECK(quiet > 0 && ref > 0 && kr_demonitor(quiet, 1) == 0, "monitors of echo");
	uint8_t t[32];
	VM_CHECK(kr_send_named_at(w->peer, "echo", KR_TAG_TERM, t, term_atom(t, "segfault")) == 0,
	         "segfault to echo");
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 20000) == 0 && kr_msg_down(m)->ref == ref &&
	                 kr_msg_down(m)->reason.kind == KR_EXIT_SEGFAULT,
	         "no DOWN segfault for echo");
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 500) == KR_ETIMEDOUT, "a DOWN for the demonitored one");
	/* This node's own names too. */
	ref = kr_monitor_name_at(kr_node_name(), "nobody");
	VM_CHECK(ref > 0 && kr_recv_tag(&m, KR_TAG_DOWN, 1000) == 0 && kr_msg_down(m)->ref == ref &&
	                 kr_msg_down(m)->reason.kind == KR_EXIT_NOPROC,
	         "a local name nobody has");
	VM_CHECK(kr_monitor_name_at("nohost", "x") == KR_EINVAL, "a bad node");
	atomic_store(&w->done, 1);
}

Test(dist, monitors_by_name_on_another_node)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	start_node(me, 0);
	name_watch w = {.peer = peer};
	vm_spawn(name_watcher, &w);
	int ok = VM_WAIT(atomic_load(&w.done) || atomic_load(&vm_fails), 60000);
	vm_stop();
	dist_kill(&k);
	cr_assert(ok, "the watcher did not finish");
}

/* ---- backpressure ---- */

typedef struct flood {
	const char *peer;
	int msgs;
	atomic_int sent, done;
} flood;

static void flooder(void *arg)
{
	flood *f = arg;
	static char kb[1024];
	for (int i = 0; i < f->msgs; i++) {
		VM_CHECK(kr_send_named_at(f->peer, "sink", 1, kb, sizeof kb) == 0, "send %d", i);
		atomic_store(&f->sent, i + 1);
	}
	atomic_store(&f->done, 1);
}

Test(dist, a_sender_to_a_peer_that_does_not_read_waits_past_busy_limit)
{
	char me[96], peer[96];
	dist_name(me, sizeof me, "a");
	dist_name(peer, sizeof peer, "b");
	dist_proc k;
	dist_krnode(&k, peer, DIST_COOKIE, NULL);
	vm_start(2);
	kr_node_config cfg = {.name = me, .cookie = DIST_COOKIE, .busy_limit = 256 << 10};
	cr_assert_eq(kr_node_start(&cfg), 0);
	(void)ping_echo(peer);
	kill(k.pid, SIGSTOP);
	flood f = {.peer = peer, .msgs = 40000}; /* 40 MB */
	vm_spawn(flooder, &f);
	vm_host_sleep_ms(2000);
	int stuck_at = atomic_load(&f.sent);
	kill(k.pid, SIGCONT);
	int ok = VM_WAIT(atomic_load(&f.done) || atomic_load(&vm_fails), 60000);
	vm_stop();
	dist_kill(&k);
	/* The kernel's socket buffers take some megabytes; the rest waits. */
	cr_assert_lt(stuck_at, 24000, "%d KiB sent to a peer that reads nothing", stuck_at);
	cr_assert(ok, "the sender did not finish once the peer read again");
}
