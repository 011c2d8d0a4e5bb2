/*
 * test_host.c - host threads as callers (vm/host.c, sched/host.c): a host
 * thread that calls kr_self, a receive, kr_call, kr_monitor or kr_link gets
 * a mailbox of its own, waits on a futex, and loses the mailbox at
 * kr_host_release or when it ends, as a process that ended normally.
 *
 * The Criterion test thread is itself a host thread; tests that need more
 * run them on threads of their own (host_thread below), which record
 * failures with VM_CHECK as processes do.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(host, .fini = vm_fini, .timeout = 60);

enum { T_SQUARE = 1, T_ANSWER, T_GO, T_NOTE, T_DONE };

/* ---- helpers ---- */

/* Answers T_SQUARE(x) with T_ANSWER(x * x), checking that the request
 * comes from a pid (a host thread's mailbox, not pid 0); counts them. */
static atomic_long served;

static void squarer(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		int64_t x = 0;
		if (m->len == sizeof x)
			memcpy(&x, m->data, sizeof x);
		VM_CHECK(m->sender > 0, "a request from pid %lld", (long long)m->sender);
		x *= x;
		/* Counted before the answer goes: a caller that has its last
		 * answer, and the test thread after it, must see the count. */
		atomic_fetch_add(&served, 1);
		if (m->ref)
			VM_CHECK(kr_reply(m, T_ANSWER, &x, sizeof x) == 0, "kr_reply");
		else
			VM_CHECK(kr_send(m->sender, T_ANSWER, &x, sizeof x) == 0, "kr_send");
		kr_msg_free(m);
	}
}

static int64_t payload_i64(const kr_msg *m)
{
	int64_t v = -1;
	if (m && m->len == sizeof v)
		memcpy(&v, m->data, sizeof v);
	return v;
}

/* Is thread tid of this process asleep (state S in /proc)? */
static bool thread_sleeps(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *close = strrchr(buf, ')');
	return close && close[1] == ' ' && close[2] == 'S';
}

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static pthread_t host_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
	return t;
}

/* ---- request and reply ---- */

Test(host, a_host_thread_calls_a_server)
{
	vm_start(2);
	kr_pid srv = vm_spawn(squarer, NULL);
	kr_pid me = kr_self();
	cr_assert_gt(me, 0, "kr_self from a host thread: %lld", (long long)me);
	cr_assert_eq(kr_self(), me, "a second kr_self made another mailbox");
	kr_proc_info info;
	cr_assert_eq(kr_info(me, &info), 0);
	cr_assert_str_eq(info.name, "host");
	cr_assert_eq(info.scheduler, -1, "a host thread's mailbox ran on scheduler %d", info.scheduler);
	for (int64_t x = 1; x <= 1000; x++) {
		kr_msg *r = NULL;
		int rc = kr_call(srv, T_SQUARE, &x, sizeof x, &r, 10000);
		cr_assert_eq(rc, 0, "kr_call %lld: %d", (long long)x, rc);
		cr_assert_eq(r->tag, T_ANSWER);
		cr_assert_eq(r->sender, srv);
		cr_assert_eq(payload_i64(r), x * x);
		kr_msg_free(r);
	}
	/* A plain send and a receive: the server answers the sender's pid. */
	int64_t x = 12;
	cr_assert_eq(kr_send(srv, T_SQUARE, &x, sizeof x), 0);
	kr_msg *m;
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_eq(payload_i64(m), 144);
	kr_msg_free(m);
	/* Nothing of the calls is left, and the messages were freed. */
	cr_assert_eq(kr_recv(&m, 0), KR_ETIMEDOUT);
	cr_assert_eq(kr_info(me, &info), 0);
	cr_assert_eq(info.heap_bytes, 0, "%zu bytes of messages left", info.heap_bytes);
	vm_assert_clean();
	vm_stop();
}

/* A host thread's calls with bad arguments make no mailbox. */
Test(host, bad_arguments_from_a_host_thread)
{
	vm_start(1);
	size_t before = vm_alive();
	kr_msg *m = (kr_msg *)1;
	cr_assert_eq(kr_recv(NULL, 0), KR_EINVAL);
	cr_assert_eq(kr_recv(&m, -5), KR_EINVAL);
	cr_assert_null(m);
	cr_assert_eq(kr_recv_match(&m, NULL, NULL, 0), KR_EINVAL);
	cr_assert_eq(kr_call(0, T_SQUARE, NULL, 0, &m, 10), KR_EINVAL);
	cr_assert_eq(kr_call(1 << 26 | 1, T_SQUARE, NULL, 0, NULL, 10), KR_EINVAL);
	cr_assert_eq(kr_call(1 << 26 | 1, KR_TAG_DOWN, NULL, 0, &m, 10), KR_EINVAL);
	cr_assert_eq(kr_link(-1), KR_EINVAL);
	cr_assert_eq(kr_monitor(0), KR_EINVAL);
	cr_assert_eq(kr_unlink(1 << 26 | 1), 0, "no mailbox, no link");
	cr_assert_eq(kr_demonitor(5, 1), 0, "no mailbox, no monitor");
	cr_assert_eq(kr_trap_exit(0), KR_ENOTPROC, "a host mailbox traps exits");
	cr_assert_eq(kr_trap_exit(1), 1);
	cr_assert_null(kr_alloc(16), "a heap without a mailbox");
	cr_assert_eq(kr_host_release(), 0, "releasing no mailbox");
	cr_assert_eq(vm_alive(), before, "a bad call made a mailbox");
	/* With one: a call to itself is refused, as a process's is. */
	kr_pid me = kr_self();
	cr_assert_gt(me, 0);
	cr_assert_eq(vm_alive(), before + 1);
	cr_assert_eq(kr_call(me, T_SQUARE, NULL, 0, &m, 10), KR_EINVAL);
	void *p = kr_alloc(100);
	cr_assert_not_null(p, "a host mailbox's heap");
	p = kr_realloc(p, 200);
	cr_assert_not_null(p);
	kr_free(p);
	cr_assert_eq(kr_host_release(), 0);
	cr_assert_eq(vm_alive(), before);
	vm_stop();
	cr_assert_eq(kr_host_release(), KR_ESTOPPED);
	cr_assert_eq(kr_self(), KR_ESTOPPED);
	cr_assert_eq(kr_recv(&m, 0), KR_ESTOPPED);
}

/* kr_host_release from a process is refused. */
static atomic_int release_rc = 1;

static void releases(void *arg)
{
	(void)arg;
	atomic_store(&release_rc, kr_host_release());
}

Test(host, kr_host_release_from_a_process_is_einval)
{
	vm_start(1);
	vm_spawn(releases, NULL);
	cr_assert(VM_WAIT(atomic_load(&release_rc) != 1, 5000));
	cr_assert_eq(atomic_load(&release_rc), KR_EINVAL);
	vm_stop();
}

/* ---- receiving ---- */

static void sends_after(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	kr_sleep(20);
	int64_t v = 7;
	kr_send(to, T_NOTE, &v, sizeof v);
}

Test(host, receive_timeouts_on_a_host_thread)
{
	vm_start(2);
	kr_msg *m;
	cr_assert_eq(kr_recv(&m, 0), KR_ETIMEDOUT);
	int64_t t0 = vm_now_ns();
	cr_assert_eq(kr_recv(&m, 50), KR_ETIMEDOUT);
	cr_assert_geq(vm_ms_since(t0), 50.0, "a 50 ms receive timed out after %.1f ms", vm_ms_since(t0));
	t0 = vm_now_ns();
	cr_assert_eq(kr_recv_tag(&m, T_NOTE, 30), KR_ETIMEDOUT);
	cr_assert_geq(vm_ms_since(t0), 30.0, "a 30 ms receive timed out after %.1f ms", vm_ms_since(t0));
	/* A message that comes before the timeout is taken. */
	vm_spawn(sends_after, (void *)(intptr_t)kr_self());
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_eq(m->tag, T_NOTE);
	cr_assert_eq(payload_i64(m), 7);
	kr_msg_free(m);
	/* Many short timeouts, each racing nothing: each one times out. */
	for (int i = 0; i < 20; i++) {
		t0 = vm_now_ns();
		cr_assert_eq(kr_recv(&m, 2), KR_ETIMEDOUT);
		cr_assert_geq(vm_ms_since(t0), 2.0);
	}
	vm_stop();
}

/* Tags 1, 2, 3 and 4 in that order, to the pid in arg. */
static void sends_four(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	for (uint64_t tag = 1; tag <= 4; tag++)
		kr_send(to, 10 + tag, &tag, sizeof tag);
}

static int tag_is(const kr_msg *m, void *ctx)
{
	return m->tag == *(uint64_t *)ctx;
}

Test(host, selective_receive_on_a_host_thread)
{
	vm_start(2);
	vm_spawn(sends_four, (void *)(intptr_t)kr_self());
	kr_msg *m;
	/* The last first, then one in the middle; the others stay, in order. */
	cr_assert_eq(kr_recv_tag(&m, 14, 10000), 0);
	cr_assert_eq(m->tag, 14);
	kr_msg_free(m);
	uint64_t want = 12;
	cr_assert_eq(kr_recv_match(&m, tag_is, &want, 10000), 0);
	cr_assert_eq(m->tag, 12);
	kr_msg_free(m);
	cr_assert_eq(kr_recv_tag(&m, 99, 10), KR_ETIMEDOUT, "a tag nobody sent");
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_eq(m->tag, 11);
	kr_msg_free(m);
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_eq(m->tag, 13);
	kr_msg_free(m);
	cr_assert_eq(kr_recv(&m, 0), KR_ETIMEDOUT);
	vm_stop();
}

/* ---- many host threads ---- */

#define CROSS_CALLS (20000 / VM_LIGHT_DIV)

typedef struct caller_arg {
	kr_pid srv;
	int64_t id;
	long calls;
	atomic_long ok;
} caller_arg;

/* Calls the server with id * 2^32 + i and checks each answer is its own. */
static void *caller(void *arg)
{
	caller_arg *a = arg;
	kr_pid me = kr_self();
	VM_CHECK(me > 0, "kr_self: %lld", (long long)me);
	for (long i = 0; i < a->calls; i++) {
		int64_t x = (a->id << 16) + (i & 0xffff), want = x * x;
		kr_msg *r = NULL;
		int rc = kr_call(a->srv, T_SQUARE, &x, sizeof x, &r, 30000);
		if (rc != 0) {
			VM_CHECK(rc == 0, "caller %lld, call %ld: %d", (long long)a->id, i, rc);
			break;
		}
		VM_CHECK(payload_i64(r) == want, "caller %lld got %lld for %lld", (long long)a->id,
		         (long long)payload_i64(r), (long long)x);
		kr_msg_free(r);
		atomic_fetch_add(&a->ok, 1);
	}
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 0) == KR_ETIMEDOUT, "caller %lld: something left", (long long)a->id);
	return NULL;
}

static void run_callers(int n, long calls)
{
	vm_start(2);
	atomic_store(&served, 0);
	kr_pid srv = vm_spawn(squarer, NULL);
	caller_arg a[8];
	pthread_t t[8];
	for (int i = 0; i < n; i++) {
		a[i] = (caller_arg){ .srv = srv, .id = i + 1, .calls = calls };
		t[i] = host_thread(caller, &a[i]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	vm_assert_clean();
	for (int i = 0; i < n; i++)
		cr_assert_eq(atomic_load(&a[i].ok), calls, "caller %d: %ld of %ld answered", i + 1,
		             atomic_load(&a[i].ok), calls);
	cr_assert_eq(atomic_load(&served), (long)n * calls);
	/* The threads ended: their mailboxes with them. */
	cr_assert(VM_WAIT(vm_alive() == 1, 10000), "%zu alive", vm_alive());
	cr_assert_eq(vm_dead_letters(), 0);
	vm_stop();
}

Test(host, replies_to_two_host_threads_do_not_cross)
{
	run_callers(2, CROSS_CALLS);
}

Test(host, eight_host_threads_hammer_one_server, .timeout = 120)
{
	run_callers(8, CROSS_CALLS);
}

/* ---- monitors, links, exit signals ---- */

static void waits_then_crashes(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv_tag(&m, T_GO, 20000) == 0)
		kr_crash("asked to");
}

Test(host, a_host_thread_monitors_a_process_and_gets_its_down)
{
	vm_start_quiet(2);
	kr_pid p = vm_spawn(waits_then_crashes, NULL);
	kr_ref ref = kr_monitor(p);
	cr_assert_gt(ref, 0, "kr_monitor from a host thread: %lld", (long long)ref);
	cr_assert_eq(kr_send(p, T_GO, NULL, 0), 0);
	kr_msg *m;
	cr_assert_eq(kr_recv(&m, 10000), 0);
	const kr_down_msg *d = kr_msg_down(m);
	cr_assert_not_null(d, "tag %llu, not a DOWN", (unsigned long long)m->tag);
	cr_assert_eq(d->ref, ref);
	cr_assert_eq(d->pid, p);
	cr_assert_eq(d->reason.kind, KR_EXIT_ERROR);
	cr_assert_str_eq(d->reason.text, "asked to");
	kr_msg_free(m);
	/* One already gone: noproc at once. */
	ref = kr_monitor(p);
	cr_assert_gt(ref, 0);
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_not_null(kr_msg_down(m));
	cr_assert_eq(kr_msg_down(m)->reason.kind, KR_EXIT_NOPROC);
	kr_msg_free(m);
	/* Demonitored with flush: nothing comes. */
	p = vm_spawn(waits_then_crashes, NULL);
	ref = kr_monitor(p);
	cr_assert_eq(kr_demonitor(ref, 1), 0);
	kr_send(p, T_GO, NULL, 0);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	cr_assert_eq(kr_recv(&m, 50), KR_ETIMEDOUT, "a DOWN after kr_demonitor");
	/* A spawn with a monitor, from a host thread. */
	kr_spawn_opts o = { .monitor = &ref };
	p = kr_spawn_opt(waits_then_crashes, NULL, &o);
	cr_assert_gt(p, 0, "kr_spawn_opt with monitor from a host thread: %lld", (long long)p);
	kr_send(p, T_GO, NULL, 0);
	cr_assert_eq(kr_recv_tag(&m, KR_TAG_DOWN, 10000), 0);
	cr_assert_eq(kr_msg_down(m)->ref, ref);
	kr_msg_free(m);
	vm_stop();
}

Test(host, a_host_thread_linked_to_a_process_that_crashes_gets_an_exit_message)
{
	vm_start_quiet(2);
	kr_pid p = vm_spawn(waits_then_crashes, NULL);
	cr_assert_eq(kr_link(p), 0);
	kr_pid me = kr_self();
	kr_send(p, T_GO, NULL, 0);
	kr_msg *m;
	cr_assert_eq(kr_recv(&m, 10000), 0);
	const kr_exit_msg *e = kr_msg_exit(m);
	cr_assert_not_null(e, "tag %llu, not an EXIT", (unsigned long long)m->tag);
	cr_assert_eq(e->from, p);
	cr_assert_eq(e->reason.kind, KR_EXIT_ERROR);
	kr_msg_free(m);
	cr_assert_eq(kr_self(), me, "the link's signal ended the mailbox");
	cr_assert(kr_is_alive(me));
	/* Linking to a process that is gone: an EXIT with noproc. */
	cr_assert_eq(kr_link(p), 0);
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_not_null(kr_msg_exit(m));
	cr_assert_eq(kr_msg_exit(m)->reason.kind, KR_EXIT_NOPROC);
	kr_msg_free(m);
	/* A spawn_link: the child's crash comes the same way. */
	kr_spawn_opts o = { .link = 1 };
	p = kr_spawn_opt(waits_then_crashes, NULL, &o);
	cr_assert_gt(p, 0);
	kr_send(p, T_GO, NULL, 0);
	cr_assert_eq(kr_recv_tag(&m, KR_TAG_EXIT, 10000), 0);
	cr_assert_eq(kr_msg_exit(m)->from, p);
	kr_msg_free(m);
	vm_stop();
}

static void signals_host(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	kr_exit_sig(to, KR_EXIT_KILL);
	kr_reason r = { .kind = KR_EXIT_ERROR };
	strcpy(r.text, "go away");
	kr_exit_sig_reason(to, &r);
	kr_exit_sig(to, KR_EXIT_NORMAL);
}

Test(host, exit_signals_to_a_host_pid_arrive_as_messages)
{
	vm_start_quiet(2);
	kr_pid me = kr_self();
	kr_pid p = vm_spawn(signals_host, (void *)(intptr_t)me);
	static const int kinds[] = { KR_EXIT_KILL, KR_EXIT_ERROR, KR_EXIT_NORMAL };
	for (int i = 0; i < 3; i++) {
		kr_msg *m;
		cr_assert_eq(kr_recv(&m, 10000), 0, "signal %d", i);
		const kr_exit_msg *e = kr_msg_exit(m);
		cr_assert_not_null(e);
		cr_assert_eq(e->from, p);
		cr_assert_eq(e->reason.kind, kinds[i], "signal %d: kind %d", i, e->reason.kind);
		kr_msg_free(m);
	}
	/* The thread and its mailbox are unharmed; its own exit signals too. */
	cr_assert(kr_is_alive(me));
	cr_assert_eq(kr_self(), me);
	cr_assert_eq(kr_exit_sig(me, KR_EXIT_KILL), 0);
	kr_msg *m;
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_not_null(kr_msg_exit(m));
	cr_assert_eq(kr_msg_exit(m)->from, me);
	kr_msg_free(m);
	cr_assert(kr_is_alive(me));
	vm_stop();
}

/* ---- the mailbox's end ---- */

/* Monitors and links (trapping) the pid in arg, says so, and reports the
 * DOWN and the EXIT it gets. */
static atomic_int down_kind = -1, exit_kind = -1;

static void watches(void *arg)
{
	kr_pid h = (kr_pid)(intptr_t)arg;
	kr_trap_exit(1);
	kr_ref ref = kr_monitor(h);
	VM_CHECK(kr_link(h) == 0, "kr_link");
	kr_send(h, T_GO, NULL, 0);
	kr_msg *m;
	for (int got = 0; got < 2; got++) {
		if (kr_recv(&m, 20000) != 0) {
			VM_CHECK(0, "the host mailbox's end was not told");
			return;
		}
		if (kr_msg_down(m)) {
			VM_CHECK(kr_msg_down(m)->ref == ref, "another ref");
			atomic_store(&down_kind, kr_msg_down(m)->reason.kind);
		} else if (kr_msg_exit(m)) {
			VM_CHECK(kr_msg_exit(m)->from == h, "an EXIT from elsewhere");
			atomic_store(&exit_kind, kr_msg_exit(m)->reason.kind);
		}
		kr_msg_free(m);
	}
}

Test(host, releasing_a_host_mailbox_fires_its_links_and_monitors_and_frees_its_name)
{
	vm_start(2);
	atomic_store(&down_kind, -1);
	atomic_store(&exit_kind, -1);
	kr_pid me = kr_self();
	cr_assert_eq(kr_register("the_host", me), 0);
	cr_assert_eq(kr_whereis("the_host"), me);
	vm_spawn(watches, (void *)(intptr_t)me);
	kr_msg *m;
	cr_assert_eq(kr_recv_tag(&m, T_GO, 10000), 0); /* it monitors and links now */
	kr_msg_free(m);
	size_t alive = vm_alive();
	cr_assert_eq(kr_host_release(), 0);
	cr_assert_eq(kr_is_alive(me), 0);
	cr_assert_eq(kr_whereis("the_host"), KR_ENOPROC, "the name outlived the mailbox");
	cr_assert(VM_WAIT(atomic_load(&down_kind) >= 0 && atomic_load(&exit_kind) >= 0, 10000));
	cr_assert_eq(atomic_load(&down_kind), KR_EXIT_NORMAL);
	cr_assert_eq(atomic_load(&exit_kind), KR_EXIT_NORMAL);
	vm_assert_clean();
	cr_assert(VM_WAIT(vm_alive() == alive - 2, 10000), "%zu alive, want %zu", vm_alive(), alive - 2);
	/* The next call that needs one makes a fresh mailbox. */
	kr_pid again = kr_self();
	cr_assert_gt(again, 0);
	cr_assert_neq(again, me);
	cr_assert_eq(kr_register("the_host", again), 0, "the name is free");
	vm_stop();
}

/* A process calls a host thread, which takes the request and releases
 * its mailbox without answering: the caller hears of its end. */
static atomic_int server_call_rc = 1;

static void calls_host(void *arg)
{
	kr_pid h = (kr_pid)(intptr_t)arg;
	kr_msg *r;
	int64_t x = 5;
	int rc = kr_call(h, T_SQUARE, &x, sizeof x, &r, 10000);
	VM_CHECK(rc == 0 && payload_i64(r) == 25, "the first call: %d", rc);
	if (rc == 0)
		kr_msg_free(r);
	atomic_store(&server_call_rc, kr_call(h, T_SQUARE, &x, sizeof x, &r, 20000));
}

Test(host, a_process_calls_a_host_thread)
{
	vm_start(2);
	atomic_store(&server_call_rc, 1);
	vm_spawn(calls_host, (void *)(intptr_t)kr_self());
	kr_msg *m;
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_gt(m->ref, 0, "a call's request");
	int64_t y = payload_i64(m) * payload_i64(m);
	cr_assert_eq(kr_reply(m, T_ANSWER, &y, sizeof y), 0);
	kr_msg_free(m);
	cr_assert_eq(kr_recv(&m, 10000), 0);
	cr_assert_gt(m->ref, 0);
	/* Taken, not answered: the release tells the caller. */
	cr_assert_eq(kr_host_release(), 0);
	cr_assert(VM_WAIT(atomic_load(&server_call_rc) != 1, 10000));
	cr_assert_eq(atomic_load(&server_call_rc), KR_ENOPROC);
	vm_assert_clean();
	vm_stop();
}

/* A thread that ends releases its mailbox (the key's destructor). */
static atomic_llong ended_pid;

static void *ends_with_a_mailbox(void *arg)
{
	(void)arg;
	kr_pid me = kr_self();
	VM_CHECK(me > 0, "kr_self: %lld", (long long)me);
	VM_CHECK(kr_register("short_lived", me) == 0, "kr_register");
	atomic_store(&ended_pid, me);
	return NULL;
}

Test(host, a_host_thread_that_ends_releases_its_mailbox)
{
	vm_start(2);
	for (int round = 0; round < 3; round++) {
		atomic_store(&ended_pid, 0);
		pthread_t t = host_thread(ends_with_a_mailbox, NULL);
		cr_assert(VM_WAIT(atomic_load(&ended_pid) != 0, 10000));
		kr_pid h = (kr_pid)atomic_load(&ended_pid);
		/* The test thread watches it: the DOWN comes to its own mailbox
		 * (or noproc, if the thread ended before the monitor). */
		kr_ref ref = kr_monitor(h);
		cr_assert_gt(ref, 0);
		pthread_join(t, NULL);
		kr_msg *m;
		cr_assert_eq(kr_recv_tag(&m, KR_TAG_DOWN, 10000), 0, "round %d: no DOWN", round);
		int kind = kr_msg_down(m)->reason.kind;
		cr_assert(kind == KR_EXIT_NORMAL || kind == KR_EXIT_NOPROC, "reason %d", kind);
		kr_msg_free(m);
		cr_assert_eq(kr_is_alive(h), 0);
		cr_assert_eq(kr_whereis("short_lived"), KR_ENOPROC);
	}
	vm_assert_clean();
	vm_stop();
}

/* ---- the VM's life ---- */

static atomic_int blocked_rc = 1;
static atomic_llong blocked_pid;

static void *blocks_in_a_receive(void *arg)
{
	(void)arg;
	atomic_store(&blocked_pid, kr_self());
	kr_msg *m;
	atomic_store(&blocked_rc, kr_recv(&m, KR_INFINITY));
	return NULL;
}

Test(host, the_vm_stops_and_starts_again_under_host_threads)
{
	vm_start(2);
	atomic_store(&blocked_rc, 1);
	atomic_store(&blocked_pid, 0);
	kr_pid first = kr_self();
	cr_assert_gt(first, 0);
	pthread_t t = host_thread(blocks_in_a_receive, NULL);
	cr_assert(VM_WAIT(atomic_load(&blocked_pid) > 0 &&
	                          vm_status((kr_pid)atomic_load(&blocked_pid)) == KR_WAITING,
	                  10000));
	vm_stop();
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&blocked_rc), KR_ESTOPPED, "a receive across kr_vm_stop: %d",
	             atomic_load(&blocked_rc));
	kr_msg *m;
	cr_assert_eq(kr_self(), KR_ESTOPPED);
	cr_assert_eq(kr_recv(&m, 10), KR_ESTOPPED);
	/* A new VM: fresh mailboxes that work. */
	for (int round = 0; round < 2; round++) {
		vm_start(2);
		kr_pid srv = vm_spawn(squarer, NULL);
		kr_pid now = kr_self();
		cr_assert_gt(now, 0);
		kr_proc_info info;
		cr_assert_eq(kr_info(now, &info), 0, "the new mailbox is not alive");
		int64_t x = 9;
		kr_msg *r;
		cr_assert_eq(kr_call(srv, T_SQUARE, &x, sizeof x, &r, 10000), 0);
		cr_assert_eq(payload_i64(r), 81);
		kr_msg_free(r);
		vm_stop();
	}
}

/* A host thread asleep on its futex in a receive is woken by a process's
 * send (not by a timeout: it waits for ever). */
static atomic_int sleeper_got;
static atomic_int sleeper_tid;
static atomic_llong sleeper_pid;

static void *sleeps_in_a_receive(void *arg)
{
	(void)arg;
	atomic_store(&sleeper_tid, my_tid());
	atomic_store(&sleeper_pid, kr_self());
	kr_msg *m;
	int rc = kr_recv(&m, KR_INFINITY);
	VM_CHECK(rc == 0, "kr_recv: %d", rc);
	if (rc == 0) {
		VM_CHECK(m->tag == T_NOTE, "tag %llu", (unsigned long long)m->tag);
		kr_msg_free(m);
		atomic_store(&sleeper_got, 1);
	}
	return NULL;
}

static void relays(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv_tag(&m, T_GO, 20000) != 0)
		return;
	kr_pid to;
	memcpy(&to, m->data, sizeof to);
	kr_msg_free(m);
	kr_send(to, T_NOTE, NULL, 0);
}

Test(host, a_process_wakes_a_host_thread_asleep_in_a_receive, .timeout = 30)
{
	vm_start(2);
	for (int round = 0; round < 3; round++) {
		atomic_store(&sleeper_got, 0);
		atomic_store(&sleeper_tid, 0);
		atomic_store(&sleeper_pid, 0);
		kr_pid relay = vm_spawn(relays, NULL);
		pthread_t t = host_thread(sleeps_in_a_receive, NULL);
		/* Asleep: waiting in its mailbox, and its thread in the kernel. */
		cr_assert(VM_WAIT(atomic_load(&sleeper_pid) > 0 &&
		                          vm_status((kr_pid)atomic_load(&sleeper_pid)) == KR_WAITING &&
		                          thread_sleeps(atomic_load(&sleeper_tid)),
		                  10000));
		vm_host_sleep_ms(20);
		cr_assert(thread_sleeps(atomic_load(&sleeper_tid)));
		kr_pid to = (kr_pid)atomic_load(&sleeper_pid);
		cr_assert_eq(kr_send(relay, T_GO, &to, sizeof to), 0);
		cr_assert(VM_WAIT(atomic_load(&sleeper_got), 10000), "round %d: not woken", round);
		pthread_join(t, NULL);
	}
	vm_assert_clean();
	vm_stop();
}

/*
 * The watchdog's cause: reductions count calls, and a call that wakes a
 * sleeping thread spends microseconds in the kernel. A server answering
 * host threads asleep in their receives at one reduction a reply ran for
 * tens of milliseconds without yielding. Each wake-up now costs the waker
 * KRX_WAKE_REDS (200): here a process wakes sixteen sleeping host threads,
 * and has spent at least 16 * 200 reductions, so it yields after 20 such
 * wake-ups at most.
 */
#define SLEEPERS 16
static atomic_int woken_count;
static atomic_int sleepers_ready;
static atomic_int sleeper_tids[SLEEPERS];
static atomic_llong sleeper_pids[SLEEPERS];

static void *one_of_many_sleepers(void *arg)
{
	int i = (int)(intptr_t)arg;
	atomic_store(&sleeper_tids[i], my_tid());
	atomic_store(&sleeper_pids[i], kr_self());
	atomic_fetch_add(&sleepers_ready, 1);
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0) {
		kr_msg_free(m);
		atomic_fetch_add(&woken_count, 1);
	}
	return NULL;
}

static atomic_int waker_done;

static void wakes_them_all(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv_tag(&m, T_GO, 20000) != 0)
		return;
	kr_msg_free(m);
	for (int i = 0; i < SLEEPERS; i++)
		kr_send((kr_pid)atomic_load(&sleeper_pids[i]), T_NOTE, NULL, 0);
	atomic_store(&waker_done, 1);
	if (kr_recv_tag(&m, T_DONE, 20000) == 0)
		kr_msg_free(m);
}

static bool all_asleep(void)
{
	for (int i = 0; i < SLEEPERS; i++)
		if (!thread_sleeps(atomic_load(&sleeper_tids[i])) ||
		    vm_status((kr_pid)atomic_load(&sleeper_pids[i])) != KR_WAITING)
			return false;
	return true;
}

Test(host, waking_a_sleeping_host_thread_costs_the_waker_reductions)
{
	vm_start(2);
	atomic_store(&sleepers_ready, 0);
	atomic_store(&woken_count, 0);
	atomic_store(&waker_done, 0);
	pthread_t t[SLEEPERS];
	for (int i = 0; i < SLEEPERS; i++)
		t[i] = host_thread(one_of_many_sleepers, (void *)(intptr_t)i);
	cr_assert(VM_WAIT(atomic_load(&sleepers_ready) == SLEEPERS, 10000));
	cr_assert(VM_WAIT(all_asleep(), 10000), "the host threads did not all fall asleep");
	kr_pid w = vm_spawn(wakes_them_all, NULL);
	kr_send(w, T_GO, NULL, 0);
	cr_assert(VM_WAIT(atomic_load(&woken_count) == SLEEPERS, 10000), "%d of %d woken",
	          atomic_load(&woken_count), SLEEPERS);
	/* Its reductions are counted when it leaves the CPU: wait for that. */
	cr_assert(VM_WAIT(atomic_load(&waker_done) && vm_status(w) == KR_WAITING, 10000));
	kr_proc_info info;
	cr_assert_eq(kr_info(w, &info), 0);
	cr_assert_geq(info.reductions, (uint64_t)SLEEPERS * 200,
	              "%d wake-ups of sleeping threads cost %llu reductions", SLEEPERS,
	              (unsigned long long)info.reductions);
	kr_send(w, T_DONE, NULL, 0);
	for (int i = 0; i < SLEEPERS; i++)
		pthread_join(t[i], NULL);
	vm_assert_clean();
	vm_stop();
}
