/*
 * test_intro.c - introspection, from processes and host threads:
 * kr_processes (every live process listed, none that ended, while others
 * come and go), kr_registered, kr_info's supervisor and registered name,
 * kr_info_links / kr_info_monitors / kr_info_monitored_by (answered in
 * order after the asker's own signals, by a process that is busy, asleep
 * in kr_hibernate, parked in kr_read or sleeping; a timeout for one that
 * never calls krill), kr_sup_tree over three levels with restart counts,
 * the kr_sup_* calls on a pid that is not a supervisor (KR_ENOTSUP at
 * once) or is dead (KR_ENOPROC), their timeouts, and the helper process a
 * host thread's call runs in, killed or stopped with the VM.
 *
 * Processes record failures with VM_CHECK; the test thread asserts
 * vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "krill.h"
#include "proc.h" /* krx_slot_policy, KRX_PID_INDEX: slot reuse */
#include "vm_util.h"

TestSuite(intro, .fini = vm_fini, .timeout = 120);

enum { T_GO = 1, T_STOP };

static int count_in(const kr_pid *v, int n, kr_pid p)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += v[i] == p;
	return k;
}

/* Is v (n of them) exactly want (m of them), in any order, repeats counted? */
static bool same_pids(const kr_pid *v, int n, const kr_pid *want, int m)
{
	if (n != m)
		return false;
	for (int i = 0; i < m; i++)
		if (count_in(v, n, want[i]) != count_in(want, m, want[i]))
			return false;
	return true;
}

/* ---- kr_processes ---- */

typedef struct lister {
	const kr_pid *alive; /* must be listed */
	int nalive;
	const kr_pid *dead; /* must not be */
	int ndead;
	atomic_int done;
} lister;

static void check_listing(const kr_pid *got, int n, const lister *l)
{
	for (int i = 0; i < l->nalive; i++)
		VM_CHECK(count_in(got, n, l->alive[i]) == 1, "live pid %d listed %d times", i,
		         count_in(got, n, l->alive[i]));
	for (int i = 0; i < l->ndead; i++)
		VM_CHECK(count_in(got, n, l->dead[i]) == 0, "a pid that ended is listed");
}

static void lister_main(void *arg)
{
	lister *l = arg;
	int cap = l->nalive + l->ndead + 64;
	kr_pid *got = kr_alloc((size_t)cap * sizeof *got);
	int n = kr_processes(got, (size_t)cap);
	VM_CHECK(n > l->nalive && n <= cap, "kr_processes from a process: %d", n);
	VM_CHECK(count_in(got, n < cap ? n : cap, kr_self()) == 1, "the caller is not listed");
	check_listing(got, n < cap ? n : cap, l);
	atomic_store(&l->done, 1);
}

Test(intro, kr_processes_lists_every_live_process_once_and_none_that_ended)
{
	vm_start_quiet(2); /* the kills are reported */
	int n = 3000 / VM_LIGHT_DIV;
	kr_pid *pids = calloc((size_t)n, sizeof *pids), *alive = calloc((size_t)n, sizeof *pids),
	       *dead = calloc((size_t)n, sizeof *pids);
	int na = 0, nd = 0;
	for (int i = 0; i < n; i++)
		pids[i] = vm_spawn(vm_wait_forever, NULL);
	for (int i = 0; i < n; i++) {
		if (i % 3 == 1) {
			cr_assert_eq(kr_exit_sig(pids[i], KR_EXIT_KILL), 0);
			dead[nd++] = pids[i];
		} else {
			alive[na++] = pids[i];
		}
	}
	for (int i = 0; i < nd; i++)
		cr_assert(VM_WAIT(!kr_is_alive(dead[i]), 10000), "a killed process lives on");
	cr_assert(VM_WAIT(vm_alive() == (size_t)na, 10000));

	/* From the host thread: exactly the live ones. */
	kr_pid *got = calloc((size_t)n + 64, sizeof *got);
	int total = kr_processes(got, (size_t)n + 64);
	cr_assert_eq(total, na, "kr_processes: %d, %d alive", total, na);
	lister l = { .alive = alive, .nalive = na, .dead = dead, .ndead = nd };
	check_listing(got, total, &l);
	vm_assert_clean();

	/* Too small a buffer: the first 10 written, nothing past them, and
	 * the count still the whole. */
	for (int i = 0; i < n + 64; i++)
		got[i] = -7;
	cr_assert_eq(kr_processes(got, 10), na);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(count_in(alive, na, got[i]), 1);
	cr_assert_eq(got[10], -7, "written past max");
	cr_assert_eq(kr_processes(NULL, 0), na);
	cr_assert_eq(kr_processes(NULL, 5), KR_EINVAL);

	/* From a process: the same, and itself. */
	vm_spawn(lister_main, &l);
	cr_assert(VM_WAIT(atomic_load(&l.done) || atomic_load(&vm_fails), 10000));
	vm_stop();
	cr_assert_eq(kr_processes(got, 1), KR_ESTOPPED);
	free(pids);
	free(alive);
	free(dead);
	free(got);
}

/* Processes spawned and ended all the time, by churners on both
 * schedulers, while the stable ones, scattered among freed slots, must be
 * listed by every walk. */
static atomic_int churn_stop;
static atomic_long churned;

static void short_life(void *arg)
{
	(void)arg;
	kr_sleep(2);
}

#define CHURN_MAX (2000 / VM_LIGHT_DIV) /* alive at once, about */

static void churner(void *arg)
{
	size_t cap = (size_t)(intptr_t)arg + CHURN_MAX;
	while (!atomic_load(&churn_stop) && !atomic_load(&vm_abort)) {
		kr_vm_stats st;
		if (kr_vm_stats_get(&st) == 0 && st.procs_alive < cap &&
		    kr_spawn(short_life, NULL) > 0)
			atomic_fetch_add(&churned, 1);
		kr_yield();
	}
}

static void walker(void *arg)
{
	lister *l = arg;
	int cap = 8192;
	kr_pid *got = kr_alloc((size_t)cap * sizeof *got);
	/* Enough walks that some yield half way (a reduction per 16 slots). */
	for (int k = 0; k < 200; k++) {
		int n = kr_processes(got, (size_t)cap);
		VM_CHECK(n > 0 && n <= cap, "kr_processes: %d", n);
		check_listing(got, n, l);
	}
	kr_free(got);
	atomic_store(&l->done, 1);
}

Test(intro, kr_processes_lists_the_processes_alive_throughout_while_others_come_and_go)
{
	vm_start_quiet(2);
	/* Fillers first, the stable ones after them: once the fillers end,
	 * the churn lives in the slots the walks pass before the stable ones. */
	int n = 4000 / VM_LIGHT_DIV, ns = 0;
	kr_pid *pids = calloc((size_t)n, sizeof *pids), *stable = calloc((size_t)n, sizeof *pids);
	for (int i = 0; i < n; i++)
		pids[i] = vm_spawn(vm_wait_forever, NULL);
	for (int i = 0; i < n; i++) {
		if (i >= n - n / 4)
			stable[ns++] = pids[i];
		else
			kr_exit_sig(pids[i], KR_EXIT_KILL);
	}
	cr_assert(VM_WAIT(vm_alive() == (size_t)ns, 10000));
	atomic_store(&churn_stop, 0);
	vm_spawn_on(churner, (void *)(intptr_t)ns, 1);
	vm_spawn_on(churner, (void *)(intptr_t)ns, 2);
	cr_assert(VM_WAIT(atomic_load(&churned) > 4 * CHURN_MAX, 10000));
	lister l = { .alive = stable, .nalive = ns };
	vm_spawn(walker, &l);
	kr_pid *got = calloc(8192, sizeof *got);
	for (int k = 0; k < 20; k++) {
		int total = kr_processes(got, 8192);
		cr_assert(total > 0 && total <= 8192, "kr_processes: %d", total);
		check_listing(got, total, &l);
	}
	cr_assert(VM_WAIT(atomic_load(&l.done) || atomic_load(&vm_fails), 20000));
	atomic_store(&churn_stop, 1);
	vm_stop();
	free(pids);
	free(stable);
	free(got);
}

/* ---- kr_registered ---- */

typedef struct reg_check {
	const kr_name_entry *want;
	int n;
	atomic_int done;
} reg_check;

static bool same_names(const kr_name_entry *got, int n, const kr_name_entry *want, int m)
{
	if (n != m)
		return false;
	for (int i = 0; i < m; i++) {
		int k = 0;
		for (int j = 0; j < n; j++)
			k += !strcmp(got[j].name, want[i].name) && got[j].pid == want[i].pid;
		if (k != 1)
			return false;
	}
	return true;
}

static void reg_main(void *arg)
{
	reg_check *r = arg;
	kr_name_entry got[16];
	int n = kr_registered(got, 16);
	VM_CHECK(same_names(got, n, r->want, r->n), "kr_registered from a process: %d names", n);
	atomic_store(&r->done, 1);
}

Test(intro, kr_registered_lists_each_name_with_its_pid)
{
	vm_start_quiet(2);
	static const char *const names[] = { "alpha", "beta", "gamma", "delta", "epsilon" };
	kr_name_entry want[5];
	kr_pid p[5];
	for (int i = 0; i < 5; i++) {
		p[i] = vm_spawn(vm_wait_forever, NULL);
		cr_assert_eq(kr_register(names[i], p[i]), 0);
	}
	/* One name taken back, one process ended: neither is listed. */
	cr_assert_eq(kr_unregister("beta"), 0);
	cr_assert_eq(kr_exit_sig(p[3], KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(kr_whereis("delta") == KR_ENOPROC, 10000));
	int m = 0;
	for (int i = 0; i < 5; i++) {
		if (i == 1 || i == 3)
			continue;
		snprintf(want[m].name, sizeof want[m].name, "%s", names[i]);
		want[m++].pid = p[i];
	}
	kr_name_entry got[16];
	memset(got, 0x5a, sizeof got);
	int n = kr_registered(got, 16);
	cr_assert(same_names(got, n, want, m), "kr_registered: %d names, want %d", n, m);
	/* Too small a buffer: the count is the whole; one entry written. */
	memset(got, 0x5a, sizeof got);
	cr_assert_eq(kr_registered(got, 1), m);
	cr_assert(same_names(got, 1, want, 1) || same_names(got, 1, want + 1, 1) ||
	          same_names(got, 1, want + 2, 1));
	cr_assert_eq((unsigned char)got[1].name[0], 0x5a, "written past max");
	cr_assert_eq(kr_registered(NULL, 0), m);
	cr_assert_eq(kr_registered(NULL, 1), KR_EINVAL);
	reg_check r = { .want = want, .n = m };
	vm_spawn(reg_main, &r);
	cr_assert(VM_WAIT(atomic_load(&r.done) || atomic_load(&vm_fails), 10000));
	vm_stop();
	cr_assert_eq(kr_registered(got, 16), KR_ESTOPPED);
}

/* ---- a supervision tree, three levels deep ----
 * root (one_for_one): w1, mid (supervisor), w5
 *   mid (one_for_one): w2, leaf (supervisor)
 *     leaf (one_for_all): w3, w4
 */

static const kr_sup_flags lenient = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 100,
	                              .period_ms = 60000 };

static void worker(void *arg)
{
	vm_wait_forever(arg);
}

static void leaf_sup(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { { .id = "w3", .start = worker }, { .id = "w4", .start = worker } };
	kr_sup_flags f = lenient;
	f.strategy = KR_ONE_FOR_ALL;
	kr_sup_run(&f, specs, 2);
}

static void mid_sup(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { { .id = "w2", .start = worker },
		                  { .id = "leaf", .start = leaf_sup, .type = KR_SUPERVISOR } };
	kr_sup_run(&lenient, specs, 2);
}

typedef struct tree_ctl {
	atomic_llong root;
} tree_ctl;

/* The root's parent: starts it, then waits (its end would stop the tree). */
static void tree_driver(void *arg)
{
	tree_ctl *t = arg;
	kr_child_spec specs[] = { { .id = "w1", .start = worker },
		                  { .id = "mid", .start = mid_sup, .type = KR_SUPERVISOR },
		                  { .id = "w5", .start = worker } };
	kr_pid root = kr_sup_start_link(&lenient, specs, 3, NULL);
	VM_CHECK(root > 0, "kr_sup_start_link: %lld", (long long)root);
	atomic_store(&t->root, root);
	vm_wait_forever(NULL);
}

static kr_pid start_tree(tree_ctl *t)
{
	vm_spawn(tree_driver, t);
	cr_assert(VM_WAIT(atomic_load(&t->root) != 0, 10000));
	cr_assert_gt(atomic_load(&t->root), 0);
	return (kr_pid)atomic_load(&t->root);
}

/* The pid of child id under sup, from the host thread; 0 if not running. */
static kr_pid child_pid(kr_pid sup, const char *id)
{
	kr_sup_child c[8];
	int n = kr_sup_which_children_timeout(sup, c, 8, 10000);
	for (int i = 0; i < n && i < 8; i++)
		if (!strcmp(c[i].id, id))
			return c[i].pid;
	return 0;
}

/* Crash child id of sup and wait until it runs again, restarted. */
static void crash_and_wait(kr_pid sup, const char *id)
{
	kr_pid old = child_pid(sup, id);
	cr_assert_gt(old, 0, "%s is not running", id);
	cr_assert_eq(kr_exit_sig(old, KR_EXIT_ERROR), 0);
	cr_assert(VM_WAIT(child_pid(sup, id) > 0 && child_pid(sup, id) != old, 10000),
	          "%s was not restarted", id);
}

#define MAX_NODES 16
typedef struct walk {
	kr_sup_node v[MAX_NODES];
	int n;
	int stop_at; /* fn stops the walk after this many (0: never) */
} walk;

static int collect_node(const kr_sup_node *node, void *ctx)
{
	walk *w = ctx;
	if (w->n < MAX_NODES)
		w->v[w->n] = *node;
	w->n++;
	return w->stop_at && w->n >= w->stop_at;
}

typedef struct expect_node {
	const char *id;
	int depth;
	const char *sup_id; /* its supervisor's id, "" for the root */
	int type;
	unsigned restarts;
} expect_node;

static const expect_node expected_tree[] = {
	{ "w1", 1, "", KR_WORKER, 1 },        { "mid", 1, "", KR_SUPERVISOR, 0 },
	{ "w2", 2, "mid", KR_WORKER, 0 },     { "leaf", 2, "mid", KR_SUPERVISOR, 0 },
	{ "w3", 3, "leaf", KR_WORKER, 2 },    { "w4", 3, "leaf", KR_WORKER, 2 },
	{ "w5", 1, "", KR_WORKER, 0 },
};
#define EXPECTED_NODES ((int)(sizeof expected_tree / sizeof expected_tree[0]))

/* Does walk w show the expected tree under root? (An empty string when it
 * does, else what differs.) */
static const char *tree_differs(const walk *w, kr_pid root)
{
	static __thread char why[160];
	if (w->n != EXPECTED_NODES) {
		snprintf(why, sizeof why, "%d nodes, want %d", w->n, EXPECTED_NODES);
		return why;
	}
	for (int i = 0; i < EXPECTED_NODES; i++) {
		const kr_sup_node *nd = &w->v[i];
		const expect_node *e = &expected_tree[i];
		kr_pid sup = root;
		for (int j = 0; j < i && e->sup_id[0]; j++)
			if (!strcmp(w->v[j].child.id, e->sup_id))
				sup = w->v[j].child.pid;
		kr_proc_info info;
		bool info_ok = kr_info(nd->child.pid, &info) == 0 && info.supervisor == sup;
		if (strcmp(nd->child.id, e->id) || nd->depth != e->depth || nd->sup != sup ||
		    nd->child.type != e->type || nd->child.restarts != e->restarts ||
		    nd->child.pid <= 0 || !info_ok) {
			snprintf(why, sizeof why,
			         "node %d: %s depth %d type %d restarts %u (sup %s, kr_info %s); want %s %d %d %u",
			         i, nd->child.id, nd->depth, nd->child.type, nd->child.restarts,
			         nd->sup == sup ? "right" : "wrong", info_ok ? "agrees" : "disagrees",
			         e->id, e->depth, e->type, e->restarts);
			return why;
		}
	}
	return "";
}

typedef struct proc_walk {
	kr_pid root;
	walk w;
	int rc, rc_stopped;
	atomic_int done;
} proc_walk;

static void walk_from_process(void *arg)
{
	proc_walk *pw = arg;
	pw->rc = kr_sup_tree(pw->root, collect_node, &pw->w, 10000);
	walk stop = { .stop_at = 3 };
	pw->rc_stopped = kr_sup_tree(pw->root, collect_node, &stop, 10000);
	atomic_store(&pw->done, 1);
}

Test(intro, kr_sup_tree_walks_three_levels_with_each_childs_supervisor_depth_and_restarts)
{
	vm_start_quiet(2);
	tree_ctl t = { 0 };
	kr_pid root = start_tree(&t);
	kr_pid mid = child_pid(root, "mid");
	kr_pid leaf = child_pid(mid, "leaf");
	cr_assert(mid > 0 && leaf > 0);
	/* w3 twice (leaf is one_for_all: w4 goes with it), w1 once. */
	crash_and_wait(leaf, "w3");
	crash_and_wait(leaf, "w3");
	crash_and_wait(root, "w1");
	cr_assert(VM_WAIT(child_pid(leaf, "w4") > 0, 10000));

	/* From the host thread. */
	walk w = { 0 };
	int rc = kr_sup_tree(root, collect_node, &w, 10000);
	cr_assert_eq(rc, EXPECTED_NODES, "kr_sup_tree: %d (%s)", rc, rc < 0 ? kr_strerror(rc) : "");
	const char *why = tree_differs(&w, root);
	cr_assert_str_empty(why, "%s", why);
	/* fn stops the walk. */
	walk stop = { .stop_at = 3 };
	cr_assert_eq(kr_sup_tree(root, collect_node, &stop, 10000), 3);
	cr_assert_str_eq(stop.v[2].child.id, "w2");
	/* The root itself was started by a plain process: no supervisor. */
	kr_proc_info info;
	cr_assert_eq(kr_info(root, &info), 0);
	cr_assert_eq(info.supervisor, 0);

	/* From a process. */
	proc_walk pw = { .root = root };
	vm_spawn(walk_from_process, &pw);
	cr_assert(VM_WAIT(atomic_load(&pw.done), 10000));
	cr_assert_eq(pw.rc, EXPECTED_NODES, "from a process: %d", pw.rc);
	why = tree_differs(&pw.w, root);
	cr_assert_str_empty(why, "from a process: %s", why);
	cr_assert_eq(pw.rc_stopped, 3);

	/* which_children says the same counts. */
	kr_sup_child c[4];
	cr_assert_eq(kr_sup_which_children(leaf, c, 4), 2);
	cr_assert(c[0].restarts == 2 && c[1].restarts == 2);
	cr_assert_eq(kr_sup_tree(root, NULL, NULL, 100), KR_EINVAL);
	cr_assert_eq(kr_sup_tree(root, collect_node, &w, -5), KR_EINVAL);
	vm_stop();
}

/* ---- kr_info: registered name and supervisor ---- */

Test(intro, kr_info_gives_the_registered_name_and_the_supervisor)
{
	vm_start_quiet(2);
	kr_pid p = vm_spawn(vm_wait_forever, NULL);
	kr_proc_info info;
	cr_assert_eq(kr_info(p, &info), 0);
	cr_assert_str_eq(info.registered_name, "");
	cr_assert_eq(info.supervisor, 0, "a process no supervisor started");
	char longname[KR_NAME_MAX + 1];
	memset(longname, 'n', KR_NAME_MAX);
	longname[KR_NAME_MAX] = 0;
	cr_assert_eq(kr_register(longname, p), 0);
	cr_assert_eq(kr_info(p, &info), 0);
	cr_assert_str_eq(info.registered_name, longname);
	cr_assert_eq(kr_unregister(longname), 0);
	cr_assert_eq(kr_info(p, &info), 0);
	cr_assert_str_eq(info.registered_name, "");

	tree_ctl t = { 0 };
	kr_pid root = start_tree(&t);
	kr_pid w1 = child_pid(root, "w1"), mid = child_pid(root, "mid");
	kr_pid leaf = child_pid(mid, "leaf"), w3 = child_pid(leaf, "w3");
	cr_assert_eq(kr_info(w1, &info), 0);
	cr_assert_eq(info.supervisor, root);
	cr_assert_eq(kr_info(mid, &info), 0);
	cr_assert_eq(info.supervisor, root);
	cr_assert_eq(kr_info(w3, &info), 0);
	cr_assert_eq(info.supervisor, leaf);
	/* A restarted child names the same supervisor. */
	crash_and_wait(root, "w1");
	cr_assert_eq(kr_info(child_pid(root, "w1"), &info), 0);
	cr_assert_eq(info.supervisor, root);
	vm_stop();
}

/* A slot's next process starts with neither its predecessor's supervisor
 * nor its mark of being one (slots reused at once, as test_races.c does). */
static void reuse_fini(void)
{
	vm_fini();
	krx_slot_policy = KRX_SLOT_POLICY_DEFAULT;
}

typedef struct reuse {
	atomic_int done;
	kr_pid q1_sup; /* the supervisor kr_info gives for the child's successor */
	int q2_rc;     /* kr_sup_count_children on the supervisor's successor */
} reuse;

static void reuse_driver(void *arg)
{
	reuse *r = arg;
	kr_child_spec spec = { .id = "t", .start = worker, .restart = KR_TEMPORARY };
	kr_pid sup = kr_sup_start_link(&lenient, &spec, 1, NULL);
	VM_CHECK(sup > 0, "kr_sup_start_link");
	kr_sup_child c;
	VM_CHECK(kr_sup_which_children(sup, &c, 1) == 1 && c.pid > 0, "which_children");
	VM_CHECK(kr_sup_terminate_child(sup, "t", 0) == 0, "terminate_child");
	kr_pid q1 = kr_spawn(vm_wait_forever, NULL);
	VM_CHECK(KRX_PID_INDEX(q1) == KRX_PID_INDEX(c.pid), "the child's slot was not reused");
	kr_proc_info info;
	VM_CHECK(kr_info(q1, &info) == 0, "kr_info");
	r->q1_sup = info.supervisor;
	kr_unlink(sup);
	kr_exit_sig(sup, KR_EXIT_SHUTDOWN);
	while (kr_is_alive(sup))
		kr_sleep(1);
	kr_pid q2 = kr_spawn(vm_wait_forever, NULL);
	VM_CHECK(KRX_PID_INDEX(q2) == KRX_PID_INDEX(sup), "the supervisor's slot was not reused");
	kr_sup_counts k;
	r->q2_rc = kr_sup_count_children(q2, &k); /* would wait for ever if it looked like one */
	atomic_store(&r->done, 1);
}

Test(intro, a_slots_next_process_has_no_supervisor_and_is_none, .fini = reuse_fini)
{
	krx_slot_policy = (krx_slot_policy_t){ .batch = 1, .cool = 0 };
	vm_start_quiet(1);
	reuse r = { 0 };
	vm_spawn(reuse_driver, &r);
	cr_assert(VM_WAIT(atomic_load(&r.done) || atomic_load(&vm_fails), 10000),
	          "a call to a process in a supervisor's slot hangs");
	vm_assert_clean();
	cr_assert_eq(r.q1_sup, 0, "inherited its slot's supervisor");
	cr_assert_eq(r.q2_rc, KR_ENOTSUP);
	vm_stop();
}

/* ---- links and monitors ---- */

typedef struct hub {
	kr_pid b, c, d;
	kr_ref dref;
	atomic_int phase; /* 1: links and monitors made; 2: one link, one monitor undone */
	atomic_llong self_links, self_monitors;
} hub;

static void hub_main(void *arg)
{
	hub *h = arg;
	kr_trap_exit(1);
	VM_CHECK(kr_link(h->b) == 0 && kr_link(h->c) == 0, "kr_link");
	h->dref = kr_monitor(h->d);
	VM_CHECK(h->dref > 0 && kr_monitor(h->d) > 0 && kr_monitor(h->b) > 0, "kr_monitor");
	kr_pid v[8];
	/* Its own lists, read at once. */
	atomic_store(&h->self_links, kr_info_links(kr_self(), v, 8, 0));
	atomic_store(&h->self_monitors, kr_info_monitors(kr_self(), v, 8, 0));
	atomic_store(&h->phase, 1);
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, T_GO, 10000) == 0, "no go");
	kr_msg_free(m);
	kr_unlink(h->c);
	kr_demonitor(h->dref, 1);
	atomic_store(&h->phase, 2);
	vm_wait_forever(NULL);
}

typedef struct watcher {
	kr_pid target;
	atomic_int ready;
} watcher;

static void watcher_main(void *arg)
{
	watcher *w = arg;
	VM_CHECK(kr_monitor(w->target) > 0, "kr_monitor");
	atomic_store(&w->ready, 1);
	vm_wait_forever(NULL);
}

typedef struct asker {
	kr_pid target;
	kr_pid links[4], monitors[4], watchers[4];
	int nl, nm, nw;
	atomic_int done;
} asker;

static void asker_main(void *arg)
{
	asker *a = arg;
	a->nl = kr_info_links(a->target, a->links, 4, 10000);
	a->nm = kr_info_monitors(a->target, a->monitors, 4, 10000);
	a->nw = kr_info_monitored_by(a->target, a->watchers, 4, 10000);
	atomic_store(&a->done, 1);
}

Test(intro, kr_info_links_monitors_and_monitored_by_as_process_info_has_them)
{
	vm_start_quiet(2);
	hub h = { .b = vm_spawn(vm_wait_forever, NULL),
		  .c = vm_spawn(vm_wait_forever, NULL),
		  .d = vm_spawn(vm_wait_forever, NULL) };
	kr_pid hp = vm_spawn(hub_main, &h);
	watcher e = { .target = hp }, f = { .target = hp };
	kr_pid ep = vm_spawn(watcher_main, &e), fp = vm_spawn(watcher_main, &f);
	cr_assert(VM_WAIT(atomic_load(&h.phase) == 1 && atomic_load(&e.ready) &&
	                          atomic_load(&f.ready),
	                  10000));
	cr_assert_eq(atomic_load(&h.self_links), 2);
	cr_assert_eq(atomic_load(&h.self_monitors), 3);

	kr_pid links[] = { h.b, h.c }, mons[] = { h.d, h.d, h.b }, by[] = { ep, fp }, v[8];
	int n = kr_info_links(hp, v, 8, 10000);
	cr_assert(same_pids(v, n, links, 2), "links: %d", n);
	n = kr_info_monitors(hp, v, 8, 10000);
	cr_assert(same_pids(v, n, mons, 3), "monitors: %d", n);
	n = kr_info_monitored_by(hp, v, 8, 10000);
	cr_assert(same_pids(v, n, by, 2), "monitored_by: %d", n);
	/* The other ends see their side. */
	n = kr_info_links(h.b, v, 8, 10000);
	cr_assert(same_pids(v, n, &hp, 1), "b's links: %d", n);
	kr_pid hh[] = { hp, hp };
	n = kr_info_monitored_by(h.d, v, 8, 10000);
	cr_assert(same_pids(v, n, hh, 2), "d's monitored_by: %d", n);
	n = kr_info_monitors(ep, v, 8, 10000);
	cr_assert(same_pids(v, n, &hp, 1), "e's monitors: %d", n);
	/* Too small a buffer: the count is the whole; nothing past max. */
	v[1] = -7;
	cr_assert_eq(kr_info_monitors(hp, v, 1, 10000), 3);
	cr_assert(count_in(mons, 3, v[0]) > 0 && v[1] == -7);
	cr_assert_eq(kr_info_links(hp, NULL, 0, 10000), 2);

	/* From a process. */
	asker a = { .target = hp };
	vm_spawn(asker_main, &a);
	cr_assert(VM_WAIT(atomic_load(&a.done), 10000));
	cr_assert(same_pids(a.links, a.nl, links, 2), "from a process: links %d", a.nl);
	cr_assert(same_pids(a.monitors, a.nm, mons, 3), "from a process: monitors %d", a.nm);
	cr_assert(same_pids(a.watchers, a.nw, by, 2), "from a process: monitored_by %d", a.nw);

	/* Undone: gone from the lists. */
	cr_assert_eq(kr_send(hp, T_GO, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&h.phase) == 2, 10000));
	n = kr_info_links(hp, v, 8, 10000);
	cr_assert(same_pids(v, n, links, 1), "links after kr_unlink: %d", n);
	n = kr_info_monitors(hp, v, 8, 10000);
	cr_assert(same_pids(v, n, mons + 1, 2), "monitors after kr_demonitor: %d", n);

	/* Bad calls. */
	cr_assert_eq(kr_info_links(hp, NULL, 1, 100), KR_EINVAL);
	cr_assert_eq(kr_info_links(hp, v, 8, -2), KR_EINVAL);
	cr_assert_eq(kr_info_links((kr_pid)1 << 50 | 5, v, 8, 100), KR_EINVAL, "another node's pid");
	cr_assert_eq(kr_exit_sig(h.c, KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(!kr_is_alive(h.c), 10000));
	cr_assert_eq(kr_info_links(h.c, v, 8, 100), KR_ENOPROC);
	cr_assert_eq(kr_info_monitored_by(0, v, 8, 100), KR_ENOPROC);
	vm_stop();
	cr_assert_eq(kr_info_links(hp, v, 8, 100), KR_ESTOPPED);
}

/* A process busy in a loop with KR_CHECK answers at its next yield, after
 * the signals its asker sent before (a link, a monitor), and goes on. */
static atomic_int busy_stop;
static atomic_long busy_laps;

static void busy_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&busy_stop) && !atomic_load(&vm_abort)) {
		atomic_fetch_add_explicit(&busy_laps, 1, memory_order_relaxed);
		KR_CHECK();
	}
}

typedef struct orderly {
	kr_pid target;
	atomic_int done;
} orderly;

static void link_then_ask(void *arg)
{
	orderly *o = arg;
	kr_pid me = kr_self(), v[8];
	VM_CHECK(kr_link(o->target) == 0, "kr_link");
	int n = kr_info_links(o->target, v, 8, 10000);
	VM_CHECK(n >= 1 && count_in(v, n, me) == 1, "a link just made is not in the answer (%d)", n);
	VM_CHECK(kr_monitor(o->target) > 0, "kr_monitor");
	n = kr_info_monitored_by(o->target, v, 8, 10000);
	VM_CHECK(n == 1 && v[0] == me, "a monitor just made is not in the answer (%d)", n);
	VM_CHECK(kr_unlink(o->target) == 0, "kr_unlink");
	n = kr_info_links(o->target, v, 8, 10000);
	VM_CHECK(n >= 0 && count_in(v, n, me) == 0, "an unlink just made is not in the answer");
	atomic_store(&o->done, 1);
}

Test(intro, a_busy_process_answers_after_the_askers_own_signals_and_keeps_running)
{
	vm_start(2);
	atomic_store(&busy_stop, 0);
	kr_pid b = vm_spawn_on(busy_main, NULL, 1);
	cr_assert(VM_WAIT(atomic_load(&busy_laps) > 100000, 10000));
	orderly o = { .target = b };
	vm_spawn_on(link_then_ask, &o, 2);
	cr_assert(VM_WAIT(atomic_load(&o.done) || atomic_load(&vm_fails), 20000));
	vm_assert_clean();
	kr_pid v[4];
	cr_assert_eq(kr_info_links(b, v, 4, 10000), 0, "from the host thread");
	long laps = atomic_load(&busy_laps);
	cr_assert(VM_WAIT(atomic_load(&busy_laps) > laps + 100000, 10000), "it stopped");
	cr_assert(kr_is_alive(b));
	atomic_store(&busy_stop, 1);
	vm_stop();
}

/* Asleep in kr_hibernate: it answers, and sleeps on without running its
 * function; a message then wakes it as ever. */
static atomic_int hib_runs;

static void hib_woke(void *arg)
{
	atomic_fetch_add(&hib_runs, 1);
	kr_msg *m;
	if (kr_recv(&m, 0) == 0)
		kr_msg_free(m);
	kr_hibernate(hib_woke, arg);
}

static void hib_main(void *arg)
{
	kr_pid partner = (kr_pid)(intptr_t)arg;
	VM_CHECK(kr_link(partner) == 0, "kr_link");
	kr_hibernate(hib_woke, arg);
}

static int hibernating(kr_pid p)
{
	kr_proc_info i;
	return kr_info(p, &i) == 0 && i.hibernating;
}

Test(intro, a_hibernating_process_answers_and_sleeps_on)
{
	vm_start(2);
	atomic_store(&hib_runs, 0);
	kr_pid partner = vm_spawn(vm_wait_forever, NULL);
	kr_pid p = vm_spawn(hib_main, (void *)(intptr_t)partner);
	cr_assert(VM_WAIT(hibernating(p), 10000));
	size_t stacks = vm_stacks();
	for (int i = 0; i < 3; i++) {
		kr_pid v[4];
		cr_assert_eq(kr_info_links(p, v, 4, 10000), 1);
		cr_assert_eq(v[0], partner);
		cr_assert(VM_WAIT(hibernating(p), 10000), "it stayed awake");
	}
	cr_assert(VM_WAIT(vm_stacks() == stacks, 10000), "it kept a stack");
	cr_assert_eq(atomic_load(&hib_runs), 0, "an info request ran its function");
	cr_assert_eq(kr_send(p, 5, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&hib_runs) == 1, 10000), "a message did not wake it");
	vm_stop();
}

/* Parked in kr_read on a pipe: interrupted, it answers, and reads on. */
typedef struct reader {
	int fd;
	kr_pid partner;
	atomic_int parked;
	char got[8];
	atomic_int done;
} reader;

static void reader_main(void *arg)
{
	reader *r = arg;
	VM_CHECK(kr_link(r->partner) == 0, "kr_link");
	atomic_store(&r->parked, 1);
	ssize_t n = kr_read(r->fd, r->got, sizeof r->got - 1, KR_INFINITY);
	VM_CHECK(n == 5, "kr_read: %zd", n);
	atomic_store(&r->done, 1);
}

Test(intro, a_process_parked_in_kr_read_answers_and_reads_on)
{
	vm_start(2);
	int fds[2];
	cr_assert_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	reader r = { .fd = fds[0], .partner = vm_spawn(vm_wait_forever, NULL) };
	kr_pid p = vm_spawn(reader_main, &r);
	cr_assert(VM_WAIT(atomic_load(&r.parked) && vm_status(p) == KR_WAITING, 10000));
	for (int i = 0; i < 3; i++) {
		kr_pid v[4];
		cr_assert_eq(kr_info_links(p, v, 4, 10000), 1);
		cr_assert_eq(v[0], r.partner);
		cr_assert(VM_WAIT(vm_status(p) == KR_WAITING, 10000));
	}
	cr_assert(!atomic_load(&r.done), "kr_read returned");
	cr_assert_eq(write(fds[1], "hello", 5), 5);
	cr_assert(VM_WAIT(atomic_load(&r.done), 10000));
	cr_assert_str_eq(r.got, "hello");
	vm_stop();
	close(fds[0]);
	close(fds[1]);
}

/* Sleeping in kr_sleep: it answers and sleeps on. And a process that
 * never calls krill cannot answer: the timeout. */
static atomic_int spin_stop;

static void spinner(void *arg)
{
	(void)arg;
	while (!atomic_load(&spin_stop) && !atomic_load(&vm_abort))
		;
}

typedef struct timed_ask {
	kr_pid target;
	int rc;
	double ms;
	atomic_int done;
} timed_ask;

static void ask_with_timeout(void *arg)
{
	timed_ask *t = arg;
	kr_pid v[4];
	int64_t t0 = vm_now_ns();
	t->rc = kr_info_monitored_by(t->target, v, 4, 100);
	t->ms = vm_ms_since(t0);
	atomic_store(&t->done, 1);
}

static void long_sleeper(void *arg)
{
	atomic_int *done = arg;
	kr_sleep(60000);
	atomic_store(done, 1);
}

Test(intro, a_sleeping_process_answers_and_one_that_never_calls_krill_times_out)
{
	vm_start_quiet(2); /* the spinner trips the watchdog */
	atomic_int slept = 0;
	kr_pid s = vm_spawn(long_sleeper, &slept);
	cr_assert(VM_WAIT(vm_status(s) == KR_WAITING, 10000));
	kr_pid v[4];
	cr_assert_eq(kr_info_links(s, v, 4, 10000), 0);
	cr_assert_eq(kr_info_monitored_by(s, v, 4, 10000), 0);
	cr_assert(!atomic_load(&slept), "its sleep ended");

	atomic_store(&spin_stop, 0);
	kr_pid p = vm_spawn_on(spinner, NULL, 1);
	cr_assert(VM_WAIT(vm_status(p) == KR_RUNNING, 10000));
	int64_t t0 = vm_now_ns();
	cr_assert_eq(kr_info_links(p, v, 4, 100), KR_ETIMEDOUT);
	cr_assert_geq(vm_ms_since(t0), 100.0);
	cr_assert_eq(kr_info_links(p, v, 4, 0), KR_ETIMEDOUT);
	timed_ask ta = { .target = p };
	vm_spawn_on(ask_with_timeout, &ta, 2);
	cr_assert(VM_WAIT(atomic_load(&ta.done), 10000), "the timeout of a process's call");
	cr_assert_eq(ta.rc, KR_ETIMEDOUT);
	cr_assert_geq(ta.ms, 100.0);
	atomic_store(&spin_stop, 1);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	vm_stop();
}

/* ---- kr_sup_* on what is not a supervisor ---- */

typedef struct not_sup {
	kr_pid target;
	int rc[8];
	atomic_int done;
} not_sup;

static int count_nodes(const kr_sup_node *n, void *ctx)
{
	(void)n;
	(void)ctx;
	return 0;
}

/* Every supervisor call, in their forms that wait for ever. */
static void all_sup_calls(kr_pid target, int rc[8])
{
	kr_sup_child c[2];
	kr_sup_counts k;
	kr_child_spec spec = { .id = "x", .start = worker };
	rc[0] = kr_sup_which_children(target, c, 2);
	rc[1] = kr_sup_count_children(target, &k);
	rc[2] = (int)kr_sup_start_child(target, &spec, NULL);
	rc[3] = kr_sup_terminate_child(target, "x", 0);
	rc[4] = (int)kr_sup_restart_child(target, "x");
	rc[5] = kr_sup_delete_child(target, "x");
	rc[6] = kr_sup_tree(target, count_nodes, NULL, KR_INFINITY);
	rc[7] = kr_sup_terminate_child(target, NULL, 12345);
}

static void not_sup_main(void *arg)
{
	not_sup *ns = arg;
	all_sup_calls(ns->target, ns->rc);
	atomic_store(&ns->done, 1);
}

static void assert_all(const int rc[8], int want, const char *what)
{
	for (int i = 0; i < 8; i++)
		cr_assert_eq(rc[i], want, "%s: call %d returned %d (%s), want %s", what, i, rc[i],
		             kr_strerror(rc[i]), kr_strerror(want));
}

/* A process that becomes a supervisor later, when told. */
static void late_sup(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv_tag(&m, T_GO, KR_INFINITY) == 0)
		kr_msg_free(m);
	kr_child_spec spec = { .id = "w", .start = worker };
	kr_sup_run(&lenient, &spec, 1);
}

Test(intro, sup_calls_on_a_process_that_is_not_a_supervisor_fail_at_once)
{
	vm_start_quiet(2);
	/* A process waiting for messages, and one that never calls krill:
	 * neither could ever answer a request. */
	atomic_store(&spin_stop, 0);
	kr_pid targets[] = { vm_spawn(vm_wait_forever, NULL), vm_spawn_on(spinner, NULL, 1) };
	for (int i = 0; i < 2; i++) {
		not_sup ns = { .target = targets[i] };
		vm_spawn_on(not_sup_main, &ns, 2);
		cr_assert(VM_WAIT(atomic_load(&ns.done), 10000), "a call hangs");
		assert_all(ns.rc, KR_ENOTSUP, "from a process");
		int rc[8];
		all_sup_calls(targets[i], rc); /* from the host thread */
		assert_all(rc, KR_ENOTSUP, "from the host thread");
	}
	atomic_store(&spin_stop, 1);
	/* Gone, or never a pid: KR_ENOPROC. */
	cr_assert(VM_WAIT(!kr_is_alive(targets[1]), 10000));
	int rc[8];
	all_sup_calls(targets[1], rc);
	assert_all(rc, KR_ENOPROC, "a dead pid");
	all_sup_calls(0, rc);
	assert_all(rc, KR_ENOPROC, "pid 0");
	not_sup ns = { .target = targets[1] };
	vm_spawn(not_sup_main, &ns);
	cr_assert(VM_WAIT(atomic_load(&ns.done), 10000));
	assert_all(ns.rc, KR_ENOPROC, "a dead pid, from a process");
	cr_assert_str_eq(kr_strerror(KR_ENOTSUP), "the process is not a supervisor");

	/* A process that becomes one is one from then on. */
	kr_pid late = vm_spawn(late_sup, NULL);
	kr_sup_counts k;
	cr_assert_eq(kr_sup_count_children(late, &k), KR_ENOTSUP);
	cr_assert_eq(kr_send(late, T_GO, NULL, 0), 0);
	cr_assert(VM_WAIT(kr_sup_count_children_timeout(late, &k, 1000) == 0 && k.active == 1, 10000));
	vm_stop();
}

/* ---- timeouts ---- */

static atomic_int gate_open;

/* A child whose init waits for the gate: its supervisor is busy until then. */
static int gated_init(void *arg)
{
	(void)arg;
	while (!atomic_load(&gate_open) && !atomic_load(&vm_abort))
		kr_sleep(1);
	return 0;
}

typedef struct busy_sup {
	kr_pid sup;
	atomic_int started; /* 1: the gated child is being started; 2: it has */
	int rc_which, rc_count;
	double which_ms;
	bool nothing_left;
	atomic_int asked; /* the timed calls have returned */
	atomic_int done;
} busy_sup;

static void sup_driver(void *arg)
{
	busy_sup *b = arg;
	kr_child_spec tmpl = { .id = "g", .start = worker, .init = gated_init };
	kr_sup_flags f = { .strategy = KR_SIMPLE_ONE_FOR_ONE };
	b->sup = kr_sup_start_link(&f, &tmpl, 1, NULL);
	VM_CHECK(b->sup > 0, "kr_sup_start_link");
	atomic_store(&b->started, 1);
	kr_pid c = kr_sup_start_child(b->sup, NULL, NULL);
	VM_CHECK(c > 0, "kr_sup_start_child: %lld", (long long)c);
	atomic_store(&b->started, 2);
	vm_wait_forever(NULL);
}

static void impatient(void *arg)
{
	busy_sup *b = arg;
	kr_sup_child c[2];
	kr_sup_counts k;
	int64_t t0 = vm_now_ns();
	b->rc_which = kr_sup_which_children_timeout(b->sup, c, 2, 50);
	b->which_ms = vm_ms_since(t0);
	b->rc_count = kr_sup_count_children_timeout(b->sup, &k, 0);
	atomic_store(&b->asked, 1);
	/* The answers that come later are dropped as they arrive. */
	while (!atomic_load(&gate_open))
		kr_sleep(1);
	VM_CHECK(kr_sup_count_children(b->sup, &k) == 0 && k.active == 1, "after the gate");
	kr_msg *m;
	b->nothing_left = kr_recv(&m, 50) == KR_ETIMEDOUT;
	atomic_store(&b->done, 1);
}

Test(intro, sup_calls_time_out_on_a_busy_supervisor_and_leave_nothing_behind)
{
	vm_start(2);
	atomic_store(&gate_open, 0);
	busy_sup b = { 0 };
	vm_spawn(sup_driver, &b);
	cr_assert(VM_WAIT(atomic_load(&b.started) == 1, 10000));
	vm_host_sleep_ms(20); /* the request is in, the supervisor waits for the child */
	vm_spawn(impatient, &b);
	cr_assert(VM_WAIT(atomic_load(&b.asked), 10000), "a call with a timeout hangs");
	/* From the host thread too. */
	kr_sup_counts k;
	int64_t t0 = vm_now_ns();
	cr_assert_eq(kr_sup_count_children_timeout(b.sup, &k, 50), KR_ETIMEDOUT);
	cr_assert_geq(vm_ms_since(t0), 50.0);
	cr_assert_eq(kr_sup_count_children_timeout(b.sup, &k, -3), KR_EINVAL);
	walk w = { 0 };
	cr_assert_eq(kr_sup_tree(b.sup, collect_node, &w, 50), KR_ETIMEDOUT);
	cr_assert_eq(w.n, 0, "fn called on a walk that timed out");
	atomic_store(&gate_open, 1);
	cr_assert(VM_WAIT(atomic_load(&b.done) || atomic_load(&vm_fails), 10000));
	cr_assert_eq(b.rc_which, KR_ETIMEDOUT);
	cr_assert_geq(b.which_ms, 50.0);
	cr_assert_eq(b.rc_count, KR_ETIMEDOUT);
	cr_assert(b.nothing_left, "a late answer was left in the mailbox");
	cr_assert(VM_WAIT(atomic_load(&b.started) == 2, 10000));
	cr_assert_eq(kr_sup_count_children_timeout(b.sup, &k, 10000), 0);
	cr_assert_eq(k.active, 1);
	vm_stop(); /* every helper process's memory is back (the leak check) */
}

/* ---- host threads: their calls, the helper killed, the VM stopped ---- */

Test(intro, a_host_thread_manages_a_supervisors_children)
{
	vm_start(2);
	atomic_store(&gate_open, 1);
	busy_sup b = { 0 };
	vm_spawn(sup_driver, &b);
	cr_assert(VM_WAIT(atomic_load(&b.started) == 2, 10000));
	kr_pid c1 = kr_sup_start_child(b.sup, NULL, NULL), c2 = kr_sup_start_child(b.sup, NULL, NULL);
	cr_assert(c1 > 0 && c2 > 0);
	kr_proc_info info;
	cr_assert_eq(kr_info(c1, &info), 0);
	cr_assert_eq(info.supervisor, b.sup);
	cr_assert_eq(kr_sup_terminate_child(b.sup, NULL, c1), 0);
	cr_assert(!kr_is_alive(c1));
	kr_sup_counts k;
	cr_assert_eq(kr_sup_count_children(b.sup, &k), 0);
	cr_assert_eq(k.active, 2);
	kr_sup_child v[4];
	cr_assert_eq(kr_sup_which_children(b.sup, v, 4), 2);
	cr_assert(v[0].pid == c2 || v[1].pid == c2);
	cr_assert_eq(kr_sup_restart_child(b.sup, "g"), KR_EINVAL, "simple_one_for_one");
	vm_stop();
}

typedef struct host_call {
	kr_pid sup;
	atomic_int rc;
	atomic_int done;
} host_call;

static void *host_count(void *arg)
{
	host_call *h = arg;
	kr_sup_counts k;
	atomic_store(&h->rc, kr_sup_count_children(h->sup, &k));
	atomic_store(&h->done, 1);
	return NULL;
}

/* The helper process of a host thread's call, found by its label. */
static kr_pid find_helper(void)
{
	kr_pid v[256];
	int n = kr_processes(v, 256);
	for (int i = 0; i < n && i < 256; i++) {
		kr_proc_info info;
		if (kr_info(v[i], &info) == 0 && !strcmp(info.name, "krill host call"))
			return v[i];
	}
	return 0;
}

Test(intro, a_host_threads_call_ends_when_its_helper_is_killed_or_the_vm_stops)
{
	vm_start_quiet(2);
	atomic_store(&gate_open, 0);
	busy_sup b = { 0 };
	vm_spawn(sup_driver, &b);
	cr_assert(VM_WAIT(atomic_load(&b.started) == 1, 10000));
	vm_host_sleep_ms(20);

	/* Killed: KR_ENOPROC. */
	host_call h = { .sup = b.sup };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, host_count, &h), 0);
	kr_pid helper;
	cr_assert(VM_WAIT((helper = find_helper()) > 0, 10000), "no helper process");
	cr_assert_eq(kr_exit_sig(helper, KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(atomic_load(&h.done), 10000), "the call goes on without its helper");
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&h.rc), KR_ENOPROC);

	/* The VM stops: KR_ESTOPPED, and nothing is left behind. */
	host_call h2 = { .sup = b.sup };
	cr_assert_eq(pthread_create(&t, NULL, host_count, &h2), 0);
	cr_assert(VM_WAIT(find_helper() > 0, 10000), "no helper process");
	cr_assert_eq(kr_vm_stop(), 0);
	cr_assert(VM_WAIT(atomic_load(&h2.done), 10000), "the call outlives the VM");
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&h2.rc), KR_ESTOPPED);
	vm_assert_clean();
	long now = vm_krill_blocks();
	cr_assert(vm_blocks_at_start < 0 || now <= vm_blocks_at_start,
	          "krill leaked: %ld blocks, %ld before", now, vm_blocks_at_start);
	vm_blocks_at_start = -1;
	kr_sup_counts k;
	cr_assert_eq(kr_sup_count_children(b.sup, &k), KR_ESTOPPED);
}

/* A host thread's call keeps its timeout even when no scheduler is free to
 * run its helper process (the only one is busy in a loop without krill
 * calls); the helper runs later, and its memory is still given back. */
typedef struct starved {
	kr_pid target;
	atomic_int rc;
	atomic_int done;
	atomic_llong ms;
} starved;

static void *starved_call(void *arg)
{
	starved *st = arg;
	kr_pid v[4];
	int64_t t0 = vm_now_ns();
	atomic_store(&st->rc, kr_info_links(st->target, v, 4, 100));
	atomic_store(&st->ms, (long long)vm_ms_since(t0));
	atomic_store(&st->done, 1);
	return NULL;
}

Test(intro, a_host_threads_call_times_out_when_no_scheduler_runs_its_helper)
{
	vm_start_quiet(1);
	starved st = { .target = vm_spawn(vm_wait_forever, NULL) };
	cr_assert(VM_WAIT(vm_status(st.target) == KR_WAITING, 10000));
	atomic_store(&spin_stop, 0);
	kr_pid sp = vm_spawn(spinner, NULL);
	cr_assert(VM_WAIT(vm_status(sp) == KR_RUNNING, 10000));
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, starved_call, &st), 0);
	bool done = VM_WAIT(atomic_load(&st.done), 10000);
	atomic_store(&spin_stop, 1);
	pthread_join(t, NULL);
	cr_assert(done, "the call waited past its timeout");
	cr_assert_eq(atomic_load(&st.rc), KR_ETIMEDOUT);
	cr_assert_geq(atomic_load(&st.ms), 100);
	cr_assert(VM_WAIT(!kr_is_alive(sp), 10000));
	vm_stop();
}
