/*
 * test_hibernate.c - kr_hibernate (erlang:hibernate/3): a process that
 * waits without a stack keeps everything else, starts again as fn(arg) when
 * a message or an exit signal comes (at once if a message is already
 * there), can be killed, linked, monitored and named while it sleeps, and
 * a million of them on two schedulers hold no stacks.
 *
 * Processes record failures with VM_CHECK; the test thread asserts
 * vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(hibernate, .fini = vm_fini, .timeout = 120);

/* ---- state kept across a hibernation ---- */

typedef struct keeper {
	kr_pid pid;       /* its own, as kr_self said before */
	int64_t *state;   /* on its heap, made before it slept */
	atomic_int phase; /* 1 asleep (about to), 2 woke and checked */
	kr_pid watcher;   /* linked to it */
} keeper;

static void keeper_woke(void *arg)
{
	keeper *k = arg;
	VM_CHECK(kr_self() == k->pid, "a new pid after waking");
	VM_CHECK(*k->state == 42, "the state on its heap: %lld", (long long)*k->state);
	VM_CHECK(kr_whereis("keeper") == k->pid, "its registered name");
	kr_proc_info info;
	VM_CHECK(kr_info(k->pid, &info) == 0 && info.reductions > 0 && !info.hibernating,
	         "its reductions, or it still says hibernating");
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 0) == 0 && m->tag == 7 && m->len == 4 && !memcmp(m->data, "wake", 4),
	         "the message that woke it");
	/* The link and trap_exit were kept: the linked watcher's end is a
	 * message. */
	VM_CHECK(kr_exit_sig(k->watcher, KR_EXIT_KILL) == 0, "kr_exit_sig");
	VM_CHECK(kr_recv_tag(&m, KR_TAG_EXIT, 10000) == 0 && kr_msg_exit(m)->from == k->watcher,
	         "the link or trap_exit was lost");
	atomic_store(&k->phase, 2);
}

static void keeper_main(void *arg)
{
	keeper *k = arg;
	k->pid = kr_self();
	k->state = kr_alloc(sizeof *k->state);
	VM_CHECK(k->state, "kr_alloc");
	*k->state = 42;
	VM_CHECK(kr_register("keeper", kr_self()) == 0, "kr_register");
	kr_trap_exit(1);
	VM_CHECK(kr_link(k->watcher) == 0, "kr_link");
	atomic_store(&k->phase, 1);
	int rc = kr_hibernate(keeper_woke, k);
	VM_CHECK(0, "kr_hibernate returned %d", rc);
}

Test(hibernate, a_hibernating_process_keeps_pid_heap_name_links_and_trap_exit_and_holds_no_stack)
{
	vm_start(2);
	keeper k = {.watcher = vm_spawn(vm_wait_forever, NULL)};
	cr_assert(VM_WAIT(vm_status(k.watcher) == KR_WAITING, 10000));
	size_t before = vm_stacks(); /* the watcher's, in its receive */
	kr_pid p = vm_spawn(keeper_main, &k);
	cr_assert(VM_WAIT(atomic_load(&k.phase) == 1 && vm_stats().hibernating == 1, 10000),
	          "it never hibernated");
	cr_assert(VM_WAIT(vm_stacks() == before, 10000), "stacks in use %zu, %zu before it ran",
	          vm_stacks(), before);
	/* The count goes up as the stack goes back, a moment before the wait
	 * is published, which kr_info reads. */
	kr_proc_info info;
	cr_assert(VM_WAIT(kr_info(p, &info) == 0 && info.hibernating, 10000),
	          "kr_info does not say hibernating");
	cr_assert_eq(info.status, KR_WAITING);
	cr_assert_str_eq(info.stack_protection, "none");
	cr_assert_eq(kr_whereis("keeper"), p, "its name, while it sleeps");
	cr_assert_eq(kr_send(p, 7, "wake", 4), 0);
	cr_assert(VM_WAIT(atomic_load(&k.phase) == 2 || atomic_load(&vm_fails), 10000));
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000), "it did not end when its function returned");
	cr_assert_eq(vm_stats().hibernating, 0);
	vm_stop();
}

/* ---- a message already there ---- */

typedef struct quick {
	atomic_int woke;
	atomic_int order_ok;
} quick;

static void quick_woke(void *arg)
{
	quick *q = arg;
	/* The two tag-1 messages the selective receive passed come first, in
	 * the order sent. */
	kr_msg *a, *b;
	bool ok = kr_recv(&a, 0) == 0 && kr_recv(&b, 0) == 0 && a->len == 1 && b->len == 1 &&
	          ((const char *)a->data)[0] == 'a' && ((const char *)b->data)[0] == 'b';
	atomic_store(&q->order_ok, ok);
	atomic_store(&q->woke, 1);
}

static void quick_main(void *arg)
{
	quick *q = arg;
	kr_msg *m;
	/* Tag 1 "a", tag 1 "b", tag 9: the receive takes the 9 and leaves
	 * the others queued, taken in but not received. */
	VM_CHECK(kr_recv_tag(&m, 9, 10000) == 0, "no tag 9");
	kr_hibernate(quick_woke, q);
}

Test(hibernate, with_messages_already_queued_it_starts_again_at_once_and_sees_them_in_order)
{
	vm_start(2);
	quick q = {0};
	kr_pid p = vm_spawn(quick_main, &q);
	cr_assert_eq(kr_send(p, 1, "a", 1), 0);
	cr_assert_eq(kr_send(p, 1, "b", 1), 0);
	cr_assert_eq(kr_send(p, 9, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&q.woke), 10000), "it slept with messages queued");
	cr_assert(atomic_load(&q.order_ok), "the older messages, not in order");
	vm_stop();
}

/* ---- killed, monitored, exit signals while asleep ---- */

static atomic_int sleeper_woke;

static void sleeper_woke_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&sleeper_woke, 1);
}

static void sleeper_main(void *arg)
{
	if (arg)
		kr_trap_exit(1);
	kr_hibernate(sleeper_woke_fn, NULL);
}

typedef struct linker {
	kr_pid target;
	int kind; /* what the target ends with */
	atomic_int done;
} linker;

/* Link to and monitor a sleeping target, kill it, see both reasons. */
static void linker_main(void *arg)
{
	linker *l = arg;
	kr_trap_exit(1);
	VM_CHECK(kr_link(l->target) == 0, "kr_link to a hibernating process");
	kr_ref ref = kr_monitor(l->target);
	VM_CHECK(ref > 0, "kr_monitor of a hibernating process");
	VM_CHECK(kr_exit_sig(l->target, l->kind) == 0, "kr_exit_sig");
	int want = l->kind == KR_EXIT_KILL ? KR_EXIT_KILLED : l->kind;
	bool got_exit = false, got_down = false;
	kr_msg *m;
	while ((!got_exit || !got_down) && kr_recv(&m, 10000) == 0) {
		const kr_exit_msg *e = kr_msg_exit(m);
		const kr_down_msg *d = kr_msg_down(m);
		if (e && e->from == l->target) {
			VM_CHECK(e->reason.kind == want, "exit %s", kr_exit_kind_name(e->reason.kind));
			got_exit = true;
		}
		if (d && d->ref == ref) {
			VM_CHECK(d->reason.kind == want, "DOWN %s", kr_exit_kind_name(d->reason.kind));
			got_down = true;
		}
		kr_msg_free(m);
	}
	VM_CHECK(got_exit && got_down, "exit %d, DOWN %d", got_exit, got_down);
	atomic_store(&l->done, 1);
}

Test(hibernate, an_exit_signal_ends_a_hibernating_process_and_its_links_and_monitors_fire)
{
	vm_start(2);
	int kinds[] = {KR_EXIT_KILL, KR_EXIT_SHUTDOWN};
	for (int i = 0; i < 2; i++) {
		kr_pid p = vm_spawn(sleeper_main, NULL);
		cr_assert(VM_WAIT(vm_status(p) == KR_WAITING && vm_stats().hibernating == 1, 10000));
		linker l = {.target = p, .kind = kinds[i]};
		vm_spawn(linker_main, &l);
		cr_assert(VM_WAIT(atomic_load(&l.done) || atomic_load(&vm_fails), 10000));
		cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	}
	cr_assert_eq(atomic_load(&sleeper_woke), 0, "a killed sleeper ran its function");
	cr_assert_eq(vm_stats().hibernating, 0);
	vm_stop();
}

Test(hibernate, a_trapped_exit_signal_wakes_it_with_the_exit_message)
{
	vm_start(2);
	atomic_store(&sleeper_woke, 0);
	kr_pid p = vm_spawn(sleeper_main, (void *)1);
	cr_assert(VM_WAIT(vm_stats().hibernating == 1, 10000));
	cr_assert_eq(kr_exit_sig(p, KR_EXIT_SHUTDOWN), 0);
	cr_assert(VM_WAIT(atomic_load(&sleeper_woke) == 1, 10000), "the trapped exit did not wake it");
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	vm_stop();
}

/* ---- a server loop that hibernates between messages ---- */

typedef struct counter {
	long *count; /* on the server's heap */
	long want;
	atomic_long seen;
} counter;

static void counter_loop(void *arg)
{
	counter *c = arg;
	kr_msg *m;
	while (kr_recv(&m, 0) == 0) {
		++*c->count;
		if (m->sender)
			VM_CHECK(kr_send(m->sender, 2, c->count, sizeof *c->count) == 0, "answer");
		kr_msg_free(m);
	}
	atomic_store(&c->seen, *c->count);
	if (*c->count < c->want)
		kr_hibernate(counter_loop, c); /* the stack never grows */
}

static void counter_main(void *arg)
{
	counter *c = arg;
	c->count = kr_alloc(sizeof *c->count);
	*c->count = 0;
	kr_hibernate(counter_loop, c);
}

typedef struct pinger {
	kr_pid server;
	long rounds;
	atomic_int done;
} pinger;

static void pinger_main(void *arg)
{
	pinger *pg = arg;
	for (long i = 0; i < pg->rounds; i++) {
		VM_CHECK(kr_send(pg->server, 1, NULL, 0) == 0, "send");
		kr_msg *m;
		if (kr_recv(&m, 10000) != 0) {
			VM_CHECK(0, "round %ld: no answer", i);
			return;
		}
		long n;
		memcpy(&n, m->data, sizeof n);
		VM_CHECK(n == i + 1, "round %ld: count %ld", i, n);
		kr_msg_free(m);
	}
	atomic_store(&pg->done, 1);
}

Test(hibernate, a_server_hibernating_after_every_message_answers_each_and_never_grows_its_stack)
{
	vm_start(2);
	long rounds = 20000 / VM_LIGHT_DIV;
	counter c = {.want = rounds};
	pinger pg = {.server = vm_spawn(counter_main, &c), .rounds = rounds};
	vm_spawn(pinger_main, &pg);
	cr_assert(VM_WAIT(atomic_load(&pg.done) || atomic_load(&vm_fails), 60000));
	cr_assert(VM_WAIT(!kr_is_alive(pg.server), 10000), "the server did not end");
	cr_assert_eq(atomic_load(&c.seen), rounds);
	vm_stop();
}

/* ---- many at once ---- */

typedef struct crowd {
	atomic_long asleep, answered;
	kr_pid reply_to;
} crowd;

static void crowd_woke(void *arg)
{
	crowd *c = arg;
	kr_msg *m;
	if (kr_recv(&m, 0) == 0) {
		atomic_fetch_add(&c->answered, 1);
		kr_msg_free(m);
	}
}

static void crowd_main(void *arg)
{
	crowd *c = arg;
	atomic_fetch_add(&c->asleep, 1);
	kr_hibernate(crowd_woke, c);
}

Test(hibernate, a_million_processes_hibernate_with_no_stacks_and_each_wakes_once)
{
	vm_start(2);
	long n = 1000000 / VM_HEAVY_DIV;
	crowd c = {0};
	kr_pid *pids = malloc((size_t)n * sizeof *pids);
	cr_assert(pids);
	for (long i = 0; i < n; i++) {
		pids[i] = kr_spawn(crowd_main, &c);
		cr_assert_gt(pids[i], 0, "spawn %ld: %s", i, kr_strerror((int)pids[i]));
	}
	cr_assert(VM_WAIT(atomic_load(&c.asleep) == n && vm_stats().hibernating == (size_t)n, 120000),
	          "%ld asleep, %zu hibernating of %ld", atomic_load(&c.asleep), vm_stats().hibernating,
	          n);
	/* The stacks are back in the pool: none held but by whoever runs now. */
	cr_assert(VM_WAIT(vm_stacks() <= 4, 10000), "%zu stacks held by %ld sleepers", vm_stacks(), n);
	for (long i = 0; i < n; i++)
		cr_assert_eq(kr_send(pids[i], 1, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&c.answered) == n, 120000), "%ld of %ld woke",
	          atomic_load(&c.answered), n);
	cr_assert(VM_WAIT(vm_alive() == 0 && vm_stats().hibernating == 0, 60000),
	          "%zu alive, %zu hibernating", vm_alive(), vm_stats().hibernating);
	free(pids);
	vm_stop();
}

/* Sleepers that ran deep enough to touch a few pages of stack first: once
 * they hibernate, the pool's stacks beyond its warm reserve give their
 * memory back (the watchdog trims them after a second unused), and the
 * sleepers wake on the trimmed stacks as on any. */
__attribute__((noinline)) static int deep_enough(int depth)
{
	volatile char page[1024];
	page[0] = (char)depth;
	return depth ? deep_enough(depth - 1) + page[0] : page[0];
}

/* Deep, then waiting with its stack until told to hibernate: all hold
 * stacks at once, as a burst of connections does. */
static void deep_main(void *arg)
{
	crowd *c = arg;
	(void)deep_enough(8);
	atomic_fetch_add(&c->asleep, 1);
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0)
		kr_msg_free(m);
	kr_hibernate(crowd_woke, c);
}

Test(hibernate, the_stacks_hibernating_processes_gave_back_return_their_memory_to_the_system)
{
	vm_start(2);
	long n = KR_TEST_MIN(20000 / VM_LIGHT_DIV, 4000) + 1000;
	crowd c = {0};
	kr_pid *pids = malloc((size_t)n * sizeof *pids);
	cr_assert(pids);
	for (long i = 0; i < n; i++)
		cr_assert_gt(pids[i] = kr_spawn(deep_main, &c), 0);
	cr_assert(VM_WAIT(atomic_load(&c.asleep) == n, 60000));
	cr_assert_geq(vm_stacks(), (size_t)n, "the processes do not hold their stacks");
	for (long i = 0; i < n; i++)
		cr_assert_eq(kr_send(pids[i], 1, NULL, 0), 0);
	cr_assert(VM_WAIT(vm_stats().hibernating == (size_t)n, 60000));
	/* At most the warm reserve and the schedulers' caches stay warm. */
	size_t warm = 256 + 2 * 64;
	cr_assert(VM_WAIT(vm_stats().stacks_warm <= 256 && vm_stats().stacks_trimmed > 0, 10000),
	          "%zu stacks warm, %zu trimmed", vm_stats().stacks_warm, vm_stats().stacks_trimmed);
	kr_vm_stats s = vm_stats();
	cr_assert_geq(s.stacks_trimmed + warm, (size_t)n / 2, "%zu trimmed of %ld stacks",
	              s.stacks_trimmed, n);
	for (long i = 0; i < n; i++)
		cr_assert_eq(kr_send(pids[i], 1, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&c.answered) == n, 60000), "%ld of %ld woke",
	          atomic_load(&c.answered), n);
	cr_assert(VM_WAIT(vm_alive() == 0, 30000));
	vm_assert_clean();
	free(pids);
	vm_stop();
}

/* ---- bad calls ---- */

static atomic_int bad_rc = 1;

static void bad_main(void *arg)
{
	(void)arg;
	atomic_store(&bad_rc, kr_hibernate(NULL, NULL));
}

Test(hibernate, bad_calls_return_errors)
{
	vm_start(1);
	cr_assert_eq(kr_hibernate(sleeper_woke_fn, NULL), KR_ENOTPROC, "from a host thread");
	vm_spawn(bad_main, NULL);
	cr_assert(VM_WAIT(atomic_load(&bad_rc) != 1, 10000));
	cr_assert_eq(atomic_load(&bad_rc), KR_EINVAL);
	vm_stop();
}

/* ---- no stack before the first run ---- */

static atomic_int hold_cpu;

static void hog(void *arg)
{
	(void)arg;
	while (atomic_load(&hold_cpu)) /* no krill call: the scheduler is ours */
		;
}

static atomic_long not_yet_ran;

static void ran(void *arg)
{
	(void)arg;
	atomic_fetch_add(&not_yet_ran, 1);
}

Test(hibernate, spawned_processes_take_no_stack_until_they_first_run)
{
	vm_start_quiet(1); /* the watchdog would report the hog */
	atomic_store(&hold_cpu, 1);
	kr_pid h = vm_spawn(hog, NULL);
	cr_assert(VM_WAIT(vm_status(h) == KR_RUNNING, 10000), "the hog never ran");
	long n = 100000 / VM_LIGHT_DIV;
	for (long i = 0; i < n; i++)
		cr_assert_gt(kr_spawn(ran, NULL), 0);
	kr_vm_stats st = vm_stats();
	cr_assert_eq(st.procs_alive, (size_t)n + 1);
	cr_assert_eq(st.stacks_in_use, 1, "%zu stacks for %ld processes that have not run",
	             st.stacks_in_use, n);
	cr_assert_eq(atomic_load(&not_yet_ran), 0);
	atomic_store(&hold_cpu, 0);
	cr_assert(VM_WAIT(atomic_load(&not_yet_ran) == n, 30000));
	vm_stop();
}

/* ---- krill's own supervisors hibernate when idle ---- */

typedef struct idle_sup {
	kr_pid sup;
	atomic_llong first, second; /* its child before and after the kill */
	atomic_int phase; /* test -> owner: 2 ask, 4 wait for the restart, 6 end */
	atomic_int done;  /* owner -> test: 1 started, 3 asked, 5 restarted */
} idle_sup;

static kr_pid only_child(kr_pid sup)
{
	kr_sup_child c;
	return kr_sup_which_children(sup, &c, 1) == 1 ? c.pid : 0;
}

static void wait_phase(idle_sup *is, int phase)
{
	while (atomic_load(&is->phase) < phase)
		kr_sleep(5);
}

/* The supervisor's owner (the supervisor API is for processes). */
static void idle_sup_owner(void *arg)
{
	idle_sup *is = arg;
	kr_child_spec spec = {.id = "w", .start = vm_wait_forever, .restart = KR_PERMANENT};
	is->sup = kr_sup_start_link(NULL, &spec, 1, NULL);
	VM_CHECK(is->sup > 0, "kr_sup_start_link: %lld", (long long)is->sup);
	atomic_store(&is->done, 1);
	wait_phase(is, 2);
	atomic_store(&is->first, only_child(is->sup)); /* a call wakes it */
	atomic_store(&is->done, 3);
	wait_phase(is, 4);
	kr_pid second = 0;
	for (int i = 0; i < 2000 && (!second || second == atomic_load(&is->first)); i++) {
		kr_sleep(5);
		second = only_child(is->sup);
	}
	atomic_store(&is->second, second);
	atomic_store(&is->done, 5);
	wait_phase(is, 6);
}

Test(hibernate, an_idle_supervisor_hibernates_and_still_restarts_a_child_and_answers_calls)
{
	vm_start(2);
	idle_sup is = {0};
	vm_spawn(idle_sup_owner, &is);
	cr_assert(VM_WAIT(atomic_load(&is.done) == 1, 10000));
	kr_proc_info info;
	/* Idle past its hibernate_after (a second): no stack. */
	cr_assert(VM_WAIT(kr_info(is.sup, &info) == 0 && info.hibernating, 10000),
	          "the idle supervisor did not hibernate");
	atomic_store(&is.phase, 2);
	cr_assert(VM_WAIT(atomic_load(&is.done) == 3, 10000));
	kr_pid first = (kr_pid)atomic_load(&is.first);
	cr_assert_gt(first, 0, "which_children after waking");
	cr_assert(VM_WAIT(kr_info(is.sup, &info) == 0 && info.hibernating, 10000), "not again");
	cr_assert_eq(kr_exit_sig(first, KR_EXIT_KILL), 0);
	atomic_store(&is.phase, 4);
	cr_assert(VM_WAIT(atomic_load(&is.done) == 5, 20000));
	kr_pid second = (kr_pid)atomic_load(&is.second);
	cr_assert(second > 0 && second != first,
	          "the child killed while its supervisor slept was not restarted");
	atomic_store(&is.phase, 6);
	cr_assert(VM_WAIT(!kr_is_alive(is.sup), 10000), "the supervisor outlived its owner");
	vm_stop();
}

/* ---- kr_sup_run's supervisor does not hibernate ---- */

static atomic_int magic_seen, magic_starts;
static atomic_llong magic_pid;

static void magic_child(void *arg)
{
	atomic_store(&magic_seen, *(const int *)arg);
	atomic_store(&magic_pid, kr_self());
	atomic_fetch_add(&magic_starts, 1);
	vm_wait_forever(NULL);
}

/* A supervisor in the caller's own process, its child's argument on the
 * caller's stack: legal, as kr_sup_run never returns and that stack lives
 * on. Hibernating would give it back. */
static void sup_runner(void *arg)
{
	(void)arg;
	int magic = 0x5eed;
	kr_child_spec spec = {.id = "c", .start = magic_child, .arg = &magic};
	kr_sup_run(NULL, &spec, 1);
}

/* Takes a stack (the one the pool gives next) and writes over it. */
static void scribbler(void *arg)
{
	(void)arg;
	volatile char junk[8192];
	memset((char *)junk, 0xab, sizeof junk);
	vm_wait_forever(NULL);
}

Test(hibernate, a_supervisor_run_in_its_callers_process_keeps_that_stack)
{
	vm_start(1);
	kr_pid s = vm_spawn(sup_runner, NULL);
	cr_assert(VM_WAIT(atomic_load(&magic_starts) == 1, 10000));
	cr_assert_eq(atomic_load(&magic_seen), 0x5eed);
	vm_host_sleep_ms(1500); /* past a supervisor's hibernate_after */
	kr_proc_info info;
	cr_assert_eq(kr_info(s, &info), 0);
	cr_assert_eq(info.hibernating, 0, "kr_sup_run's supervisor hibernated");
	kr_pid w = vm_spawn(scribbler, NULL);
	cr_assert(VM_WAIT(vm_status(w) == KR_WAITING, 10000));
	/* The child, killed, is restarted with the argument its spec gave. */
	cr_assert_eq(kr_exit_sig((kr_pid)atomic_load(&magic_pid), KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(atomic_load(&magic_starts) == 2, 10000), "no restart");
	cr_assert_eq(atomic_load(&magic_seen), 0x5eed, "the restarted child's argument is %#x",
	             (unsigned)atomic_load(&magic_seen));
	cr_assert_eq(kr_exit_sig(s, KR_EXIT_SHUTDOWN), 0);
	cr_assert_eq(kr_exit_sig(w, KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}
