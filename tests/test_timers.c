/*
 * test_timers.c - timers that send a message (vm/msgtimer.c, vm/wheel.c,
 * include/krill/timer.h), as Erlang's erlang:send_after/3, start_timer/3,
 * cancel_timer/1 and read_timer/1: no message before its time, in order of
 * deadline, from the right sender with the right reference; cancel and
 * read; names looked up when the timer fires; timers to processes that end
 * dropped and freed, never reaching a later process in the slot; exactly
 * one of a cancel and the firing winning, from another thread; many timers
 * with nothing leaked; timers pending at stop freed; host threads; and a
 * sleeping scheduler woken for an earlier timer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "krill.h"
#include "proc.h"
#include "vm_util.h"

TestSuite(timers, .fini = vm_fini, .timeout = 120);

static size_t pending_timers(void)
{
	kr_vm_stats s;
	return kr_vm_stats_get(&s) == 0 ? s.timers : (size_t)-1;
}

/* ---- firing: time, order, sender, reference, payload ---- */

static atomic_int order_done;
static atomic_llong helper_started; /* ns */

/* Starts a timer to the pid it is given (from itself), then ends. */
static void starts_one_for(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	uint64_t v = 77;
	atomic_store(&helper_started, vm_now_ns());
	kr_ref r = kr_send_after(15, to, 4, &v, sizeof v);
	VM_CHECK(r > 0, "kr_send_after from a helper: %lld", (long long)r);
}

static void receives_in_order(void *arg)
{
	(void)arg;
	kr_pid me = kr_self();
	int64_t t0 = vm_now_ns();
	uint64_t v[3] = { 30, 10, 20 };
	kr_ref r30 = kr_send_after(30, me, 3, &v[0], sizeof v[0]);
	kr_ref r10 = kr_start_timer(10, me, 1, &v[1], sizeof v[1]);
	kr_ref r20 = kr_send_after(20, me, 2, &v[2], sizeof v[2]);
	VM_CHECK(r30 > 0 && r10 > 0 && r20 > 0, "refs %lld %lld %lld", (long long)r30,
	         (long long)r10, (long long)r20);
	VM_CHECK(r30 != r10 && r10 != r20 && r30 != r20, "three timers, three references");
	kr_pid helper = kr_spawn(starts_one_for, (void *)(intptr_t)me);
	VM_CHECK(helper > 0, "spawn: %lld", (long long)helper);
	/* Ours come in deadline order (tags 1, 2, 3), the helper's (tag 4)
	 * somewhere among them: its 15 ms count from its own start. */
	uint64_t next_tag = 1;
	for (int i = 0; i < 4; i++) {
		kr_msg *m;
		int rc = kr_recv(&m, 5000);
		VM_CHECK(rc == 0, "message %d: %d", i, rc);
		if (rc)
			return;
		int64_t now = vm_now_ns();
		VM_CHECK(m->len == sizeof(uint64_t), "payload length %zu", m->len);
		uint64_t got;
		memcpy(&got, m->data, sizeof got);
		if (m->tag == 4) {
			double ms = (double)(now - atomic_load(&helper_started)) / 1e6;
			VM_CHECK(ms >= 15, "the helper's timer after %.3f ms, before its 15 ms", ms);
			VM_CHECK(m->sender == helper, "the helper's timer names the helper as sender");
			VM_CHECK(got == 77, "payload %llu", (unsigned long long)got);
			VM_CHECK(m->ref == 0, "a kr_send_after message carries no reference");
		} else {
			double ms = (double)(now - t0) / 1e6;
			long want_ms = (long)m->tag * 10;
			VM_CHECK(m->tag == next_tag, "tag %llu came, tag %llu is due first (deadline order)",
			         (unsigned long long)m->tag, (unsigned long long)next_tag);
			next_tag = m->tag + 1;
			VM_CHECK(ms >= (double)want_ms, "tag %llu after %.3f ms, before its %ld ms",
			         (unsigned long long)m->tag, ms, want_ms);
			VM_CHECK(m->sender == me, "sender %lld, wanted the starter %lld",
			         (long long)m->sender, (long long)me);
			VM_CHECK(got == (uint64_t)want_ms, "payload %llu", (unsigned long long)got);
			kr_ref want_ref = m->tag == 1 ? r10 : 0;
			VM_CHECK(m->ref == want_ref, "tag %llu carries ref %lld, wanted %lld",
			         (unsigned long long)m->tag, (long long)m->ref, (long long)want_ref);
			/* A timer's message is no request, though it carries a ref. */
			if (want_ref)
				VM_CHECK(kr_reply(m, 1, NULL, 0) == KR_EINVAL, "kr_reply to a timer's message");
		}
		kr_msg_free(m);
	}
	atomic_store(&order_done, 1);
}

Test(timers, fire_no_sooner_than_asked_in_deadline_order_from_the_starter_with_its_ref)
{
	vm_start(2);
	/* Bound, so that its timers are all in one scheduler's set. */
	vm_spawn_on(receives_in_order, NULL, 1);
	cr_assert(VM_WAIT(atomic_load(&order_done), 10000));
	cr_assert_eq(pending_timers(), 0);
	vm_stop();
}

/* ---- cancel and read ---- */

static atomic_int cancel_done;

static void cancels_and_reads(void *arg)
{
	(void)arg;
	kr_pid me = kr_self();
	/* Cancelled before it fires: the time left, and nothing comes. */
	kr_ref r = kr_send_after(300, me, 1, NULL, 0);
	long left = kr_cancel_timer(r);
	VM_CHECK(left >= 0 && left <= 300, "cancel of a pending timer: %ld", left);
	VM_CHECK(kr_cancel_timer(r) == KR_ENOTIMER, "a second cancel");
	VM_CHECK(kr_read_timer(r) == KR_ENOTIMER, "a read after the cancel");

	/* Read counts down; at least 50 ms later, at least 50 less. */
	kr_ref r2 = kr_start_timer(1000, me, 2, NULL, 0);
	long a = kr_read_timer(r2);
	VM_CHECK(a >= 0 && a <= 1000, "first read: %ld", a);
	kr_sleep(50);
	long b = kr_read_timer(r2);
	VM_CHECK(b >= 0 && b <= a - 50, "read after sleeping 50 ms: %ld, first %ld", b, a);
	long c = kr_cancel_timer(r2);
	VM_CHECK(c >= 0 && c <= b, "cancel after the reads: %ld", c);

	kr_msg *m;
	int rc = kr_recv(&m, 400);
	VM_CHECK(rc == KR_ETIMEDOUT, "a cancelled timer's message came: %d (tag %llu)", rc,
	         rc == 0 ? (unsigned long long)m->tag : 0ull);

	/* Fired: cancel and read say so, and the message is there. */
	kr_ref r3 = kr_send_after(5, me, 3, NULL, 0);
	rc = kr_recv(&m, 5000);
	VM_CHECK(rc == 0 && m->tag == 3, "the 5 ms timer: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	VM_CHECK(kr_cancel_timer(r3) == KR_ENOTIMER, "cancel after it fired");
	VM_CHECK(kr_read_timer(r3) == KR_ENOTIMER, "read after it fired");

	/* 0 ms: sent at the next tick, not at once from the call. */
	kr_ref r4 = kr_send_after(0, me, 4, NULL, 0);
	VM_CHECK(r4 > 0, "0 ms: %lld", (long long)r4);
	rc = kr_recv(&m, 5000);
	VM_CHECK(rc == 0 && m->tag == 4, "the 0 ms timer: %d", rc);
	if (rc == 0)
		kr_msg_free(m);

	/* References of other kinds, and never-made ones, name no timer. */
	kr_ref mon = kr_monitor(me);
	VM_CHECK(kr_cancel_timer(mon) == KR_ENOTIMER, "a monitor's reference");
	VM_CHECK(kr_read_timer(r + 2048 * 1000) == KR_ENOTIMER, "a reference never made");
	VM_CHECK(kr_cancel_timer(1) == KR_ENOTIMER, "1");
	atomic_store(&cancel_done, 1);
}

Test(timers, cancel_returns_the_time_left_and_stops_it_and_read_counts_down)
{
	vm_start(2);
	vm_spawn(cancels_and_reads, NULL);
	cr_assert(VM_WAIT(atomic_load(&cancel_done), 10000));
	cr_assert_eq(pending_timers(), 0);
	vm_stop();
}

/* ---- bad arguments ---- */

Test(timers, bad_arguments_are_refused_with_a_clear_code)
{
	kr_config cfg = { .schedulers = 1, .max_message = 100 };
	vm_start_cfg(&cfg);
	kr_pid p = vm_spawn(vm_wait_forever, NULL);
	char b[200] = { 0 };
	cr_assert_eq(kr_send_after(-1, p, 1, NULL, 0), KR_EINVAL, "ms < 0");
	cr_assert_eq(kr_send_after(KR_INFINITY, p, 1, NULL, 0), KR_EINVAL, "KR_INFINITY");
	cr_assert_eq(kr_start_timer(KR_TIMER_MAX_MS + 1, p, 1, NULL, 0), KR_EINVAL, "past the limit");
	cr_assert_eq(kr_send_after(10, 0, 1, NULL, 0), KR_EINVAL, "pid 0");
	cr_assert_eq(kr_send_after(10, -3, 1, NULL, 0), KR_EINVAL, "pid < 0");
	kr_pid remote = p | ((kr_pid)5 << 50);
	cr_assert_eq(kr_send_after(10, remote, 1, NULL, 0), KR_EINVAL, "another node's pid");
	cr_assert_eq(kr_start_timer(10, remote, 1, NULL, 0), KR_EINVAL, "another node's pid");
	cr_assert_eq(kr_send_after(10, p, KR_TAG_SUP, NULL, 0), KR_EINVAL, "a supervisor's tag");
	cr_assert_eq(kr_send_after(10, p, KR_TAG_EXIT, NULL, 0), KR_EINVAL, "a reserved tag");
	cr_assert_eq(kr_send_after(10, p, 1, NULL, 4), KR_EINVAL, "data NULL, len 4");
	cr_assert_eq(kr_send_after(10, p, 1, b, 101), KR_ELIMIT, "past max_message");
	cr_assert_eq(kr_send_after_named(10, NULL, 1, NULL, 0), KR_EINVAL, "name NULL");
	cr_assert_eq(kr_send_after_named(10, "", 1, NULL, 0), KR_EINVAL, "empty name");
	memset(b, 'x', KR_NAME_MAX + 1);
	cr_assert_eq(kr_start_timer_named(10, b, 1, NULL, 0), KR_EINVAL, "a name too long");
	cr_assert_eq(kr_cancel_timer(0), KR_EINVAL);
	cr_assert_eq(kr_cancel_timer(-7), KR_EINVAL);
	cr_assert_eq(kr_read_timer(-7), KR_EINVAL);
	cr_assert_eq(kr_read_timer(123456789), KR_ENOTIMER);
	cr_assert_str_neq(kr_strerror(KR_ENOTIMER), "unknown error");
	cr_assert_eq(pending_timers(), 0, "no refused call left a timer");
	/* The largest ms is taken, and read back. */
	kr_ref far = kr_send_after(KR_TIMER_MAX_MS, p, 1, NULL, 0);
	cr_assert_gt(far, 0);
	long left = kr_read_timer(far);
	cr_assert(left > KR_TIMER_MAX_MS - 1000 && left <= KR_TIMER_MAX_MS, "left %ld", left);
	vm_stop();
	cr_assert_eq(kr_send_after(10, p, 1, NULL, 0), KR_ESTOPPED);
	cr_assert_eq(kr_cancel_timer(far), KR_ESTOPPED);
	cr_assert_eq(kr_read_timer(far), KR_ESTOPPED);
}

/* ---- named destinations ---- */

static atomic_int named_got, named_tag;
static atomic_llong named_ref_got; /* the ref of the message with tag 2 */

static void named_receiver(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, 100) == 0) {
			atomic_store(&named_tag, (int)m->tag);
			if (m->tag == 2)
				atomic_store(&named_ref_got, m->ref);
			atomic_fetch_add(&named_got, 1);
			kr_msg_free(m);
		}
}

Test(timers, a_name_is_looked_up_when_the_timer_fires)
{
	vm_start(2);
	uint64_t dead0 = vm_dead_letters();
	/* Registered after the start: it gets the message. */
	kr_ref r = kr_send_after_named(80, "later", 1, NULL, 0);
	cr_assert_gt(r, 0);
	kr_pid a = vm_spawn(named_receiver, NULL);
	cr_assert_eq(kr_register("later", a), 0);
	cr_assert(VM_WAIT(atomic_load(&named_got) == 1, 5000));
	cr_assert_eq(atomic_load(&named_tag), 1);
	/* kr_start_timer_named: the message carries the reference. */
	kr_ref named_ref = kr_start_timer_named(10, "later", 2, NULL, 0);
	cr_assert_gt(named_ref, 0);
	cr_assert(VM_WAIT(atomic_load(&named_got) == 2, 5000));
	cr_assert_eq(atomic_load(&named_ref_got), named_ref,
	             "the named start_timer message carries its reference");
	/* Unregistered before it fires: dropped, a dead letter; the process
	 * that had the name gets nothing. A named timer is not cancelled by
	 * a read. */
	kr_ref r2 = kr_send_after_named(80, "later", 3, NULL, 0);
	cr_assert_geq(kr_read_timer(r2), 0);
	cr_assert_eq(kr_unregister("later"), 0);
	cr_assert_geq(kr_read_timer(r2), 0, "a named timer does not depend on the name until it fires");
	cr_assert(VM_WAIT(vm_dead_letters() == dead0 + 1, 5000), "dead letters %llu, before %llu",
	          (unsigned long long)vm_dead_letters(), (unsigned long long)dead0);
	cr_assert_eq(kr_read_timer(r2), KR_ENOTIMER, "it fired");
	vm_host_sleep_ms(50);
	cr_assert_eq(atomic_load(&named_got), 2, "the unregistered process got the message");
	cr_assert_eq(pending_timers(), 0);
	vm_stop();
}

/* ---- a destination that ends ---- */

static void stale_receiver(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, 100) == 0) {
			VM_CHECK(m->tag != 66, "a timer to an earlier process in this slot reached us");
			kr_msg_free(m);
		}
}

Test(timers, a_timer_to_a_process_that_ended_is_dropped_freed_and_never_reaches_the_next_in_its_slot)
{
	/* A freed slot is handed out again at once (test_races.c does the
	 * same), so that the next process gets the dead one's slot. */
	krx_slot_policy = (krx_slot_policy_t){ .batch = 1, .cool = 0 };
	vm_start(1);
	uint64_t dead0 = vm_dead_letters();
	enum { N = 50 };
	size_t alive0 = vm_alive();
	kr_pid p = vm_spawn(vm_wait_forever, NULL);
	kr_ref refs[N];
	for (int i = 0; i < N; i++) {
		refs[i] = kr_send_after(100 + i, p, 66, "x", 1);
		cr_assert_gt(refs[i], 0);
	}
	cr_assert_eq(pending_timers(), N);
	cr_assert_geq(kr_read_timer(refs[0]), 0, "pending while its process lives");
	cr_assert_eq(kr_exit_sig(p, KR_EXIT_KILL), 0);
	/* Finished exiting, its slot given back (before the count drops), not
	 * only dead (live_pid cleared): qemu once spawned in between. */
	cr_assert(VM_WAIT(!kr_is_alive(p) && vm_alive() == alive0, 5000));
	/* Its slot's next process. */
	kr_pid q = vm_spawn(stale_receiver, NULL);
	cr_assert_eq(KRX_PID_INDEX(q), KRX_PID_INDEX(p), "the slot was not reused: the test proves nothing");
	/* Cancelled with its process, as Erlang's: read and cancel say so. */
	cr_assert_eq(kr_read_timer(refs[0]), KR_ENOTIMER);
	cr_assert_eq(kr_cancel_timer(refs[1]), KR_ENOTIMER);
	cr_assert_eq(pending_timers(), N - 2, "the two found gone were freed at once");
	/* The rest go at their deadlines, as dead letters, and reach no one. */
	cr_assert(VM_WAIT(pending_timers() == 0, 5000), "%zu timers still held", pending_timers());
	cr_assert(VM_WAIT(vm_dead_letters() == dead0 + N, 5000), "dead letters %llu, wanted %llu",
	          (unsigned long long)vm_dead_letters(), (unsigned long long)(dead0 + N));
	/* To a pid already gone: a reference, nothing kept, a dead letter. */
	kr_ref r = kr_start_timer(10, p, 66, NULL, 0);
	cr_assert_gt(r, 0);
	cr_assert_eq(pending_timers(), 0);
	cr_assert_eq(vm_dead_letters(), dead0 + N + 1);
	cr_assert_eq(kr_cancel_timer(r), KR_ENOTIMER);
	vm_host_sleep_ms(50);
	vm_stop();
	krx_slot_policy = KRX_SLOT_POLICY_DEFAULT;
}

/* ---- cancel racing the firing ---- */

#define RACE_N (20000 / VM_LIGHT_DIV)
#define RACE_BATCH 64
static atomic_int race_busy_stop;
static atomic_uchar race_got[20000];
static atomic_int race_total;

static void race_receiver(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, 100) == 0) {
			uint32_t i;
			memcpy(&i, m->data, sizeof i);
			atomic_fetch_add(&race_got[i], 1);
			atomic_fetch_add(&race_total, 1);
			kr_msg_free(m);
		}
}

/* Timers i = from .. from + n - 1 to `to`, of 1 ms, into refs: all due at
 * one tick, so that their firing is one burst. */
static bool race_start(kr_pid to, uint32_t from, uint32_t n, kr_ref *refs)
{
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = from + k;
		refs[k] = kr_send_after(1, to, 9, &i, sizeof i);
		if (refs[k] <= 0)
			return false;
	}
	return true;
}

/* Cancel them one by one, last started first, a microsecond or two apart,
 * from a moment between 0.8 and 2.2 ms after they started (they are due 1
 * to 2 ms after), so that sweeps meet the firing, which takes them in the
 * order started: the two pass each other. How many cancels won, or -1. */
static int race_cancel(const kr_ref *refs, uint32_t from, uint32_t n, unsigned char *won,
                       uint32_t *seed, int64_t started)
{
	int cancelled = 0;
	int64_t at = started + 800000 + (int64_t)(vm_rand(seed) % 1400) * 1000;
	while (vm_now_ns() < at)
		;
	for (uint32_t k = n; k-- > 0;) {
		long left = kr_cancel_timer(refs[k]);
		if (left != KR_ENOTIMER && left < 0)
			return -1;
		won[from + k] = left >= 0;
		cancelled += left >= 0;
		vm_spin_us((long)(vm_rand(seed) % 3));
	}
	return cancelled;
}

/* Keeps the receiver's scheduler busy, so that it fires its timers as
 * soon as they are due rather than when a sleep of its ends. */
static void race_busy(void *arg)
{
	(void)arg;
	while (!atomic_load(&vm_abort) && !atomic_load(&race_busy_stop))
		kr_yield();
}

static unsigned char race_won[20000];
static atomic_int race_proc_done;
static kr_pid race_to;

/* On the receiver's scheduler: starts each batch it is asked for there
 * (so its timers are that scheduler's to fire) and replies with the
 * references. */
static void race_starter(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, 100) == 0) {
			uint32_t spec[2];
			memcpy(spec, m->data, sizeof spec);
			struct { int64_t started; kr_ref refs[RACE_BATCH]; } r;
			r.started = vm_now_ns();
			bool ok = race_start(race_to, spec[0], spec[1], r.refs);
			VM_CHECK(ok, "kr_send_after failed");
			kr_reply(m, 1, &r, sizeof r.started + spec[1] * sizeof *r.refs);
			kr_msg_free(m);
		}
}

/* On the other scheduler: cancels them, racing the first one's loop. */
static void race_canceller(void *arg)
{
	kr_pid starter = (kr_pid)(intptr_t)arg;
	uint32_t seed = 7;
	for (uint32_t i = RACE_N / 2; i < RACE_N; i += RACE_BATCH) {
		uint32_t spec[2] = { i, KR_TEST_MIN(RACE_BATCH, RACE_N - i) };
		kr_msg *reply;
		int rc = kr_call(starter, 1, spec, sizeof spec, &reply, 5000);
		VM_CHECK(rc == 0, "kr_call: %d", rc);
		if (rc)
			break;
		int64_t started;
		memcpy(&started, reply->data, sizeof started);
		int c = race_cancel((const kr_ref *)((const char *)reply->data + sizeof started), i,
		                    spec[1], race_won, &seed, started);
		kr_msg_free(reply);
		VM_CHECK(c >= 0, "a cancel failed");
		if (c < 0)
			break;
	}
	atomic_store(&race_proc_done, 1);
}

Test(timers, a_cancel_racing_the_firing_wins_or_loses_never_both_never_neither)
{
	vm_start(2);
	race_to = vm_spawn_on(race_receiver, NULL, 1);
	vm_spawn_on(race_busy, NULL, 1);
	/* The host half: timers of a host thread's set, fired by its owner,
	 * while nothing but that owner's busy process competes for the two
	 * CPUs this is made for. */
	uint32_t seed = 3;
	int host_won = 0;
	for (uint32_t i = 0; i < RACE_N / 2; i += RACE_BATCH) {
		uint32_t n = KR_TEST_MIN(RACE_BATCH, RACE_N / 2 - i);
		kr_ref refs[RACE_BATCH];
		int64_t started = vm_now_ns();
		cr_assert(race_start(race_to, i, n, refs), "kr_send_after from the host failed");
		int c = race_cancel(refs, i, n, race_won, &seed, started);
		cr_assert_geq(c, 0, "a cancel from the host failed");
		host_won += c;
	}
	/* The process half: timers started on scheduler 0, cancelled from 1. */
	kr_pid starter = vm_spawn_on(race_starter, NULL, 1);
	vm_spawn_on(race_canceller, (void *)(intptr_t)starter, 2);
	cr_assert(VM_WAIT(atomic_load(&race_proc_done), 60000));
	atomic_store(&race_busy_stop, 1);
	int won = 0;
	for (int i = 0; i < RACE_N; i++)
		won += race_won[i];
	cr_assert(VM_WAIT(atomic_load(&race_total) == RACE_N - won, 10000),
	          "%d messages came, %d cancels lost", atomic_load(&race_total), RACE_N - won);
	vm_host_sleep_ms(30); /* nothing more may come */
	for (int i = 0; i < RACE_N; i++)
		cr_assert_eq(atomic_load(&race_got[i]) + race_won[i], 1,
		             "timer %d: %d message(s) came and its cancel %s", i, atomic_load(&race_got[i]),
		             race_won[i] ? "won" : "lost");
	cr_assert_eq(pending_timers(), 0);
	/* Both outcomes must have happened, or the race was not run. */
	cr_assert(won > 0 && won < RACE_N, "%d of %d cancels won (host %d)", won, RACE_N, host_won);
	cr_log_info("timers race: %d of %d cancels won (host %d)", won, RACE_N, host_won);
	vm_stop();
}

/* ---- many timers ---- */

#define MANY (100000 / VM_HEAVY_DIV)
static atomic_int many_done;

/* When timer i may fire: its ms after the clock read just before its
 * start (lo) and just after (hi; the tick it is due at lies between, or
 * a tick later). */
typedef struct many_due {
	int64_t lo, hi;
} many_due;

/* Bound to one scheduler, so that all its timers are in one set, which
 * fires them by tick and within a tick in the order started: so in the
 * order of their deadlines, give or take a tick. */
static void many_timers(void *arg)
{
	(void)arg;
	kr_pid me = kr_self();
	kr_ref *refs = kr_alloc(MANY * sizeof *refs);
	many_due *due = kr_alloc(MANY * sizeof *due);
	uint32_t seed = 11;
	for (uint32_t i = 0; i < MANY; i++) {
		long ms = (long)(vm_rand(&seed) % 300);
		due[i].lo = vm_now_ns() + ms * 1000000;
		refs[i] = kr_send_after(ms, me, 5, &i, sizeof i);
		due[i].hi = vm_now_ns() + ms * 1000000;
		VM_CHECK(refs[i] > 0, "timer %u: %lld", i, (long long)refs[i]);
	}
	/* Every third cancelled: those still pending. */
	int cancelled = 0;
	for (uint32_t i = 0; i < MANY; i += 3)
		cancelled += kr_cancel_timer(refs[i]) >= 0;
	unsigned char *seen = kr_calloc(MANY, 1);
	int got = 0, late_order = 0;
	int64_t last_lo = 0;
	for (;;) {
		kr_msg *m;
		int rc = kr_recv(&m, 1000);
		if (rc == KR_ETIMEDOUT)
			break;
		int64_t now = vm_now_ns();
		uint32_t i;
		memcpy(&i, m->data, sizeof i);
		VM_CHECK(i < MANY && !seen[i], "timer %u came twice", i);
		if (i < MANY) {
			seen[i] = 1;
			VM_CHECK(now >= due[i].lo, "timer %u came %.3f ms early", i,
			         (double)(due[i].lo - now) / 1e6);
			/* Not after one that was surely due over a tick later. */
			if (due[i].hi + 1000000 < last_lo)
				late_order++;
			if (due[i].lo > last_lo)
				last_lo = due[i].lo;
			VM_CHECK(i % 3 != 0 || kr_cancel_timer(refs[i]) == KR_ENOTIMER, "timer %u fired", i);
		}
		got++;
		kr_msg_free(m);
	}
	VM_CHECK(late_order == 0, "%d timers came after one due over a tick later", late_order);
	VM_CHECK(got + cancelled == MANY, "%d came, %d cancelled, of %d", got, cancelled, MANY);
	atomic_store(&many_done, 1);
}

Test(timers, a_hundred_thousand_timers_start_cancel_fire_in_order_and_leave_nothing)
{
	vm_start(2);
	vm_spawn_on(many_timers, NULL, 2);
	cr_assert(VM_WAIT(atomic_load(&many_done), 60000));
	cr_assert_eq(pending_timers(), 0);
	vm_stop(); /* the leak check: every timer's memory is back */
}

/* ---- stop with timers pending ---- */

static atomic_int stop_started;

static void starts_long_timers(void *arg)
{
	(void)arg;
	kr_pid me = kr_self();
	char big[300] = { 1 };
	for (int i = 0; i < 500; i++) {
		kr_send_after(3600000, me, 1, big, (size_t)(i % 3) * 100);
		kr_start_timer_named(3600000 + i, "someone", 1, big, 8);
	}
	atomic_store(&stop_started, 1);
	vm_wait_forever(NULL);
}

Test(timers, timers_pending_when_the_vm_stops_are_freed)
{
	vm_start(2);
	vm_spawn(starts_long_timers, NULL);
	kr_pid p = vm_spawn(vm_wait_forever, NULL);
	for (int i = 0; i < 500; i++)
		cr_assert_gt(kr_start_timer(3600000, p, 1, "host", 4), 0);
	cr_assert(VM_WAIT(atomic_load(&stop_started), 5000));
	cr_assert_eq(pending_timers(), 1500);
	vm_stop(); /* LeakSanitizer, or the block count, must find nothing */
	/* And a VM started again starts with none. */
	vm_start(1);
	cr_assert_eq(pending_timers(), 0);
	vm_stop();
}

/* ---- host threads ---- */

static atomic_int host_got, host_sender_ok;
static atomic_llong host_ref_got; /* the ref of the message with tag 2 */

static void host_receiver(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, 100) == 0) {
			if (m->sender == 0)
				atomic_fetch_add(&host_sender_ok, 1);
			if (m->tag == 2)
				atomic_store(&host_ref_got, m->ref);
			atomic_fetch_add(&host_got, 1);
			kr_msg_free(m);
		}
}

static kr_pid host_to;
#define HOST_EACH 1000

static void *host_starter(void *arg)
{
	(void)arg;
	for (int i = 0; i < HOST_EACH; i++)
		if (kr_send_after(i % 20, host_to, 1, &i, sizeof i) <= 0)
			return (void *)1;
	return NULL;
}

static atomic_llong proc_ref;
static atomic_int proc_ref_read;

/* A process's timer for the host to read and cancel, and a host's timer
 * for the process to cancel. */
static void cross_canceller(void *arg)
{
	kr_ref host_ref = (kr_ref)(intptr_t)arg;
	VM_CHECK(kr_cancel_timer(host_ref) >= 0, "a process cancels a host thread's timer");
	atomic_store(&proc_ref, kr_send_after(60000, kr_self(), 1, NULL, 0));
	while (!atomic_load(&proc_ref_read) && !atomic_load(&vm_abort))
		kr_sleep(1);
}

Test(timers, from_host_threads)
{
	vm_start(2);
	host_to = vm_spawn(host_receiver, NULL);
	/* kr_start_timer from a host thread: sender 0, its reference. */
	kr_ref r = kr_start_timer(5, host_to, 2, NULL, 0);
	cr_assert_gt(r, 0);
	cr_assert(VM_WAIT(atomic_load(&host_got) == 1, 5000));
	cr_assert_eq(atomic_load(&host_ref_got), r, "the message carries the host timer's reference");
	cr_assert_eq(kr_cancel_timer(r), KR_ENOTIMER);
	/* Threads at once. */
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, host_starter, NULL), 0);
	for (int i = 0; i < 3; i++) {
		void *rc;
		pthread_join(th[i], &rc);
		cr_assert_null(rc, "a host thread's kr_send_after failed");
	}
	cr_assert(VM_WAIT(atomic_load(&host_got) == 1 + 3 * HOST_EACH, 10000), "%d came",
	          atomic_load(&host_got));
	cr_assert_eq(atomic_load(&host_sender_ok), 1 + 3 * HOST_EACH, "sender 0 from host threads");
	/* Across: a process cancels the host's timer, the host reads and
	 * cancels the process's. */
	kr_ref h = kr_send_after(60000, host_to, 1, NULL, 0);
	vm_spawn(cross_canceller, (void *)(intptr_t)h);
	cr_assert(VM_WAIT(atomic_load(&proc_ref) > 0, 5000));
	kr_ref pr = (kr_ref)atomic_load(&proc_ref);
	long left = kr_read_timer(pr);
	cr_assert(left > 0 && left <= 60000, "the host reads a process's timer: %ld", left);
	cr_assert_geq(kr_cancel_timer(pr), 0, "the host cancels a process's timer");
	atomic_store(&proc_ref_read, 1);
	cr_assert(VM_WAIT(pending_timers() == 0, 5000));
	vm_stop();
}

/* ---- a sleeping scheduler wakes for an earlier timer ---- */

static atomic_int wake_got;

static void wake_receiver(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, KR_INFINITY) == 0) {
			atomic_store(&wake_got, (int)m->tag);
			kr_msg_free(m);
		}
}

Test(timers, a_scheduler_asleep_until_a_later_timer_wakes_for_an_earlier_one)
{
	vm_start(2);
	kr_pid p = vm_spawn(wake_receiver, NULL);
	/* One host thread's timers share a scheduler: the first makes it
	 * sleep for 20 s, the second must wake it. */
	kr_ref far = kr_send_after(20000, p, 1, NULL, 0);
	cr_assert_gt(far, 0);
	vm_host_sleep_ms(50); /* every scheduler parks meanwhile */
	cr_assert_gt(kr_send_after(20, p, 2, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&wake_got) == 2, 10000), "the 20 ms timer did not come");
	cr_assert_geq(kr_cancel_timer(far), 0);
	vm_stop();
}

/* ---- the wheel and the table alone (vm/wheel.c, vm/reftable.c) ---- */

#include "reftable.h"
#include "signal.h" /* KRX_REF_LOW_BITS: how references are made */
#include "wheel.h"

typedef struct went {
	krx_wentry e;
	uint32_t seq; /* insertion order */
	int state;    /* 0 out, 1 in the wheel, 2 popped, 3 removed */
} went;

static uint64_t rand64(uint32_t *s)
{
	return (uint64_t)vm_rand(s) << 24 ^ vm_rand(s);
}

/* Random ticks over every level, removals, and advances by random steps:
 * each entry comes out once, not before its tick and by the first advance
 * that reaches it, in tick order and, within a tick, in insertion order;
 * krx_wheel_next is never later than the earliest entry and an advance
 * short of it finds nothing. */
Test(timers, the_wheel_gives_each_entry_at_its_tick_in_order_across_all_levels)
{
	enum { N = 20000 };
	static krx_wheel w;
	went *v = calloc(N, sizeof *v);
	cr_assert_not_null(v);
	krx_wheel_init(&w);
	uint32_t seed = 5;
	uint64_t now = 0, nin = 0;
	uint32_t seq = 0, inserted = 0;
	for (int round = 0; round < 400; round++) {
		/* Insert a few, at distances of every magnitude (0 to 2^44). */
		for (int k = 0; k < 60 && inserted < N; k++, inserted++) {
			went *x = &v[inserted];
			unsigned mag = vm_rand(&seed) % 45;
			uint64_t d = mag ? rand64(&seed) & (((uint64_t)1 << mag) - 1) : 0;
			/* Some share a tick with an earlier one: insertion order counts. */
			if (inserted && vm_rand(&seed) % 4 == 0 && v[inserted - 1].state == 1)
				x->e.when = v[inserted - 1].e.when;
			else
				x->e.when = now + d;
			x->seq = seq++;
			x->state = 1;
			krx_wheel_insert(&w, &x->e);
			nin++;
		}
		/* Remove a few. */
		for (int k = 0; k < 10; k++) {
			went *x = &v[vm_rand(&seed) % inserted];
			if (x->state == 1) {
				krx_wheel_remove(&w, &x->e);
				x->state = 3;
				nin--;
			}
		}
		/* Advance: a little, to the next's tick exactly or just short of
		 * it, or far. */
		uint64_t next = krx_wheel_next(&w);
		uint64_t min_when = UINT64_MAX;
		for (uint32_t i = 0; i < inserted; i++)
			if (v[i].state == 1 && v[i].e.when < min_when)
				min_when = v[i].e.when;
		cr_assert(next <= min_when || (next == now && min_when <= now),
		          "next %llu is after the earliest entry %llu", (unsigned long long)next,
		          (unsigned long long)min_when);
		unsigned how = vm_rand(&seed) % 4;
		uint64_t to = how == 0   ? now + vm_rand(&seed) % 100
		              : how == 1 ? (min_when == UINT64_MAX ? now : KR_TEST_MIN(min_when, now + ((uint64_t)1 << 44)))
		              : how == 2 ? (min_when > now + 1 && min_when != UINT64_MAX ? min_when - 1 : now)
		                         : now + (rand64(&seed) & (((uint64_t)1 << (vm_rand(&seed) % 44)) - 1));
		if (to < now)
			to = now;
		krx_wheel_advance(&w, to);
		now = to;
		uint64_t last_when = 0;
		uint32_t last_seq = 0;
		bool first = true;
		krx_wentry *e;
		while ((e = krx_wheel_pop_due(&w))) {
			went *x = (went *)e;
			cr_assert_eq(x->state, 1, "an entry came out twice, or after its removal");
			cr_assert(x->e.when <= now, "tick %llu came out at %llu", (unsigned long long)x->e.when,
			          (unsigned long long)now);
			cr_assert(first || x->e.when > last_when || (x->e.when == last_when && x->seq > last_seq),
			          "out of order: tick %llu (#%u) after tick %llu (#%u)",
			          (unsigned long long)x->e.when, x->seq, (unsigned long long)last_when, last_seq);
			last_when = x->e.when;
			last_seq = x->seq;
			first = false;
			x->state = 2;
			nin--;
		}
		for (uint32_t i = 0; i < inserted; i++)
			cr_assert(v[i].state != 1 || v[i].e.when > now, "tick %llu still in at %llu",
			          (unsigned long long)v[i].e.when, (unsigned long long)now);
	}
	/* Drain: all the rest come out, in order. */
	krx_wheel_advance(&w, UINT64_MAX - 1);
	while (krx_wheel_pop_due(&w))
		nin--;
	cr_assert_eq(nin, 0, "%llu entries lost", (unsigned long long)nin);
	cr_assert_eq(krx_wheel_next(&w), UINT64_MAX);
	free(v);
}

static size_t drained;

static void count_drained(krx_refent *e)
{
	(void)e;
	drained++;
}

/* Puts, gets and deletes against a plain array, across many resizes up
 * and down, with references of several schedulers' counts. */
Test(timers, the_reference_table_finds_every_entry_while_it_grows_and_shrinks)
{
	enum { N = 60000 };
	krx_refent *v = calloc(N, sizeof *v);
	bool *in = calloc(N, sizeof *in);
	cr_assert(v && in);
	for (int i = 0; i < N; i++)
		v[i].ref = (kr_ref)((uint64_t)(i / 3 + 1) << KRX_REF_LOW_BITS | (uint64_t)(i % 3 + 1));
	krx_reftable t;
	cr_assert_eq(krx_reftable_init(&t), 0);
	uint32_t seed = 9;
	size_t n = 0;
	for (int phase = 0; phase < 6; phase++) {
		/* Fill up (phase even) or empty out (odd), touching others. */
		for (int k = 0; k < 4 * N; k++) {
			int i = (int)(vm_rand(&seed) % N);
			bool fill = phase % 2 == 0;
			if (!in[i] && (fill ? vm_rand(&seed) % 4 != 0 : vm_rand(&seed) % 4 == 0)) {
				krx_reftable_put(&t, &v[i]);
				in[i] = true;
				n++;
			} else if (in[i] && (fill ? vm_rand(&seed) % 4 == 0 : vm_rand(&seed) % 4 != 0)) {
				cr_assert_eq(krx_reftable_get(&t, v[i].ref), &v[i]);
				krx_reftable_del(&t, &v[i]);
				in[i] = false;
				n--;
			} else {
				krx_refent *got = krx_reftable_get(&t, v[i].ref);
				cr_assert_eq(got, in[i] ? &v[i] : NULL, "entry %d: %p", i, (void *)got);
			}
		}
		cr_assert_eq(t.n, n);
		for (int i = 0; i < N; i++)
			cr_assert_eq(krx_reftable_get(&t, v[i].ref), in[i] ? &v[i] : NULL, "entry %d", i);
	}
	drained = 0;
	krx_reftable_drain(&t, count_drained);
	cr_assert_eq(drained, n, "drain passed %zu entries of %zu", drained, n);
	krx_reftable_free(&t);
	free(v);
	free(in);
}
