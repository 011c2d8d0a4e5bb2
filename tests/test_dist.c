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
