/*
 * test_chaos.c - a supervised message workload survives a fixed count of
 * faults of every kind: the tree heals whole, no message is lost but those
 * to processes that ended before taking them, and nothing is left behind.
 *
 * The tree: a top supervisor ("top", one_for_one, never gives up), GROUPS
 * group supervisors under it (one_for_one, at most GROUP_INTENSITY
 * restarts in GROUP_PERIOD_MS), PER_GROUP workers under each: 10,000
 * workers in 100 groups natively, fewer under qemu and TSan (vm_util.h's
 * dividers). Workers have small stacks and a heap limit (their specs say
 * so), so that an overflow or a runaway allocation ends quickly.
 *
 * The workload: a worker that has been quiet for a few milliseconds sends
 * one to three numbered messages to random workers of its group, as long
 * as the chaos's events have left tokens for them (200 messages an event,
 * so that a slow build on a busy machine does not drown its own chaos);
 * it takes in whatever it is sent, and answers calls.
 *
 * The chaos: one process makes a fixed count of events (EVENTS, or
 * KR_CHAOS_EVENTS), drawn from a PRNG seeded with KR_CHAOS_SEED or the
 * clock and printed, so that a run's draws can be replayed (its timing
 * cannot). The first events are one of each kind, in the order of
 * `kinds` below; the rest are drawn by weight. Each event strikes a live
 * worker, or kills a whole group supervisor: an exit signal (kill, or an
 * error reason), or a message that makes the worker crash (kr_crash, a
 * failed KR_ASSERT, a store through NULL, a bus error, an integer division
 * by zero, an illegal instruction or __builtin_trap, a stack overflow into
 * the guard page, an allocation past max_heap). Up to IN_FLIGHT worker
 * events are under way at once, each watched by a monitor whose DOWN must
 * carry the reason that event makes: so each kind was contained, as that
 * kind. The chaos keeps under each group's intensity (at most GROUP_QUOTA
 * events per group and period: with the restarts still owed, fewer than
 * the group allows), so no group gives up by accident. Once, half way, a
 * burst kills one group's workers again and again until the group gives
 * up; the top restarts it.
 *
 * What "no message lost" means, exactly. A message may go untaken only
 * because its receiver ended first, with the message still queued, or
 * sent after its end. Two checks hold krill to that, one for the
 * processes that end and one for those that do not:
 *
 * - Streams. Each worker process (an incarnation: a restart is a new one)
 *   numbers the messages it sends to each other incarnation 1, 2, 3 ...
 *   Messages from one sender to one receiver arrive in the order sent, so
 *   a receiver that takes number n from a sender must have taken n - 1
 *   from it last: n - 1 reached it first, while it was alive. Any other
 *   number is a message lost (or taken twice, or out of order). So the
 *   only messages an incarnation that ended may have missed are the last
 *   of each stream to it.
 * - Counts. Each incarnation has a record that outlives it, with two
 *   counters: messages sent to its pid, and messages it took in. A sender
 *   counts a message before kr_send (which, once it has started, cannot
 *   end its caller before the message is delivered or dropped as a dead
 *   letter); the receiver counts it when kr_recv returns it (with no
 *   krill call in between, nothing can end it there). Once the workload
 *   stops, every incarnation still alive has taken in exactly what was
 *   sent to it, the last of every stream included; the others are
 *   counted, not checked. Along the way a receiver checks that a message
 *   was addressed to its own pid and that it never took in more than was
 *   sent to it.
 *
 * At the end: the top is the process it was and never gave up, and it
 * restarted exactly the groups that were killed or gave up; exactly one
 * group gave up; every group is alive with all its workers, which are the
 * incarnations the records say, and every worker answers a call. Then the
 * tree is stopped, and the processes alive, the stacks in use and the
 * heap bytes of the live processes are what they were before the tree
 * started (and under ASan, vm_stop's leak check passes).
 *
 * By hand, longer: run it alone with KR_CHAOS_EVENTS=1000000 (docs/testing.md).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../fault_util.h"
#include "../vm_util.h"
#include "krill.h"

/* No Criterion timeout (it could only be a constant): the test sets an
 * alarm that grows with the count of events. */
TestSuite(chaos, .fini = vm_fini);

#define WORKERS (10000 / VM_HEAVY_DIV)
#define GROUPS KR_TEST_MIN(100, 100 / VM_LIGHT_DIV)
#define PER_GROUP (WORKERS / GROUPS)
#if KRX_ASAN
#define EVENTS 10000 /* an event costs about ten times as much under ASan */
#else
#define EVENTS (50000 / VM_LIGHT_DIV)
#endif
#define IN_FLIGHT 16
#define WORKER_STACK (32 << 10)
#define WORKER_MAX_HEAP (64 << 10)
/* Restarts a group survives in a period, and the events the chaos allows
 * itself in a group per period (its own windows, one after the other): a
 * group's window of GROUP_PERIOD_MS sees the restarts for the events of
 * at most two of the chaos's windows, plus those still owed for earlier
 * events (at most one per worker), which is fewer than GROUP_INTENSITY by
 * a margin. The burst alone makes a group give up. */
#define GROUP_PERIOD_MS 5000
#define GROUP_QUOTA 100
#define GROUP_INTENSITY (2 * GROUP_QUOTA + PER_GROUP + 100)
#define WAIT_MS 60000 /* the longest any step may take before the test fails */

enum { T_DATA = 1, T_CALL, T_ANSWER, T_FAULT };

/* ---- the kinds of events ---- */

enum kind { K_KILL, K_EXIT, K_CRASH, K_ASSERT, K_SEGV, K_BUS, K_FPE, K_ILL, K_OVERFLOW, K_HEAP,
	    K_GROUP, NKINDS };

static const struct kind_info {
	const char *name;
	int weight;       /* draws in 1000 */
	int reason;       /* the DOWN's reason */
	const char *text; /* in the DOWN's reason text, if not NULL */
} kinds[NKINDS] = {
	[K_KILL] = { "kill", 210, KR_EXIT_KILLED, NULL },
	[K_EXIT] = { "exit_signal", 100, KR_EXIT_ERROR, "chaos: exit signal" },
	[K_CRASH] = { "kr_crash", 100, KR_EXIT_ERROR, "chaos: crash" },
	[K_ASSERT] = { "assert", 100, KR_EXIT_ERROR, "assertion" },
	[K_SEGV] = { "segfault", 90, KR_EXIT_SEGFAULT, NULL },
	[K_BUS] = { "bus_error", 80, KR_EXIT_BUS_ERROR, NULL },
	[K_FPE] = { "fpe", 80, KR_EXIT_FPE, NULL },
	[K_ILL] = { "illegal", 80, KR_EXIT_ILLEGAL, NULL },
	[K_OVERFLOW] = { "stack_overflow", 70, KR_EXIT_STACK_OVERFLOW, NULL },
	[K_HEAP] = { "heap_limit", 70, KR_EXIT_HEAP_LIMIT, NULL },
	[K_GROUP] = { "group_kill", 20, KR_EXIT_KILLED, NULL },
};

static long chaos_events;
static uint32_t chaos_seed;
static atomic_long landed[NKINDS]; /* events whose DOWN came with the right reason */
static atomic_long burst_kills;
static atomic_int burst_group = -1; /* the group under the burst, while it lasts */
static atomic_int overflow_possible;

/* ---- what outlives the processes ---- */

typedef struct incarnation {
	kr_pid pid;
	int slot;                 /* 0 .. WORKERS-1: which child of which group */
	atomic_bool running;      /* its start function runs: it has reported that it
	                           * started, so its end is a restart, not a failed start */
	atomic_ullong sent;       /* messages sent to pid, counted before kr_send */
	atomic_ullong received;   /* messages pid took in */
	struct incarnation *next; /* every incarnation, newest first */
} incarnation;

static _Atomic(incarnation *) current[WORKERS]; /* each slot's newest */
static _Atomic(incarnation *) incarnations;
static atomic_llong group_pid[GROUPS];
static atomic_int quiet; /* the workload stops sending */

/* Filled in by the driver for the summary. */
static struct {
	atomic_int done;
	unsigned long long sent, received;
	unsigned long long to_alive;   /* sent to incarnations alive at the end */
	unsigned long long unreceived; /* sent to ended incarnations, not taken in */
	size_t incarnations, alive, tree_heap;
} result;

/* Reports: counted, not printed (there are tens of thousands). */
static atomic_long reports, top_restarts, group_restarts, burst_restarts, top_gave_up,
        groups_gave_up;

/* Does a supervisor's report come from group g ("supervisor <0.5.1> g7: ...")? */
static bool from_group(const char *line, int g)
{
	char label[24];
	snprintf(label, sizeof label, " g%d: ", g);
	return g >= 0 && strstr(line, label) != NULL;
}

static void count_report(const char *line, void *ctx)
{
	(void)ctx;
	bool top = strstr(line, " top: ") != NULL;
	if (!strncmp(line, "krill: process ", 15))
		atomic_fetch_add(&reports, 1);
	else if (strstr(line, " restarted as ") && top)
		atomic_fetch_add(&top_restarts, 1);
	else if (strstr(line, " restarted as "))
		atomic_fetch_add(from_group(line, atomic_load(&burst_group)) ? &burst_restarts
		                                                            : &group_restarts,
		                 1);
	else if (strstr(line, "reached max restart intensity ("))
		atomic_fetch_add(top ? &top_gave_up : &groups_gave_up, 1);
}

/* ---- workers ---- */

typedef struct data {
	kr_pid to;
	uint64_t seq; /* in the stream from this sender to this receiver: 1, 2, 3 ... */
	int64_t from; /* the sender's slot */
} data;

/* One end of a stream between two incarnations: the other's pid, and the
 * last number sent to it or taken from it. A worker keeps one per slot
 * of its group, each way. */
typedef struct stream {
	kr_pid pid;
	uint64_t seq;
} stream;

static int worker_init(void *arg)
{
	incarnation *me = calloc(1, sizeof *me);
	if (!me)
		return -1;
	me->pid = kr_self();
	me->slot = (int)(intptr_t)arg;
	me->next = atomic_load(&incarnations);
	while (!atomic_compare_exchange_weak(&incarnations, &me->next, me))
		;
	atomic_store(&current[me->slot], me);
	return 0;
}

/* The workload is paced by the chaos: each event lets the workers send
 * TOKENS_PER_EVENT more messages. Paced by the clock instead, a slow build
 * on a busy machine fell behind: its workers' wake-ups and messages filled
 * the run queues, the chaos process waited behind thousands of them at
 * every step, the run got slower still, and more messages were sent per
 * event (2,600 under ASan at a load of 10, against 200 natively) until the
 * test ran out of time. Workers without a token wait longer. */
#define TOKENS_PER_EVENT 200
static atomic_long send_tokens;

static bool take_token(void)
{
	if (atomic_fetch_sub(&send_tokens, 1) > 0)
		return true;
	atomic_fetch_add(&send_tokens, 1);
	return false;
}

static void send_some(int k, stream *out, uint32_t *rnd)
{
	int g = k / PER_GROUP;
	for (int n = 1 + (int)(vm_rand(rnd) % 3); n > 0 && take_token(); n--) {
		int j = (int)(vm_rand(rnd) % PER_GROUP);
		incarnation *to = atomic_load(&current[g * PER_GROUP + j]);
		if (!to)
			continue; /* not started yet: the tree is starting */
		if (out[j].pid != to->pid)
			out[j] = (stream){ to->pid, 0 }; /* a new incarnation: a new stream */
		data d = { .to = to->pid, .seq = ++out[j].seq, .from = k };
		atomic_fetch_add(&to->sent, 1);
		kr_send(to->pid, T_DATA, &d, sizeof d);
	}
}

static void take(incarnation *me, stream *in, const kr_msg *m)
{
	data d;
	memcpy(&d, m->data, sizeof d);
	unsigned long long got = atomic_fetch_add(&me->received, 1) + 1;
	VM_CHECK(d.to == me->pid, "a message for %lld reached %lld", (long long)d.to,
	         (long long)me->pid);
	VM_CHECK(got <= atomic_load(&me->sent), "%lld took in %llu messages, more than were sent",
	         (long long)me->pid, got);
	VM_CHECK(d.from / PER_GROUP == me->slot / PER_GROUP, "a message from another group");
	/* The next of its stream: anything else is a message lost (the later
	 * one reached us, so the one before did too, while we were alive),
	 * taken twice or out of order. Messages from another incarnation of
	 * the slot in between (an older one's, late) start the count afresh. */
	stream *s = &in[d.from % PER_GROUP];
	VM_CHECK(s->pid != m->sender || d.seq == s->seq + 1,
	         "from %lld to %lld: number %llu after %llu", (long long)m->sender,
	         (long long)me->pid, (unsigned long long)d.seq, (unsigned long long)s->seq);
	*s = (stream){ m->sender, d.seq };
}

/* The fault an event asked for; never returns. */
static void fault(int kind, int variant)
{
	switch (kind) {
	case K_CRASH:
		kr_crash("chaos: crash");
		break;
	case K_ASSERT:
		KR_ASSERT(kind != K_ASSERT);
		break;
	case K_SEGV:
		fault_store_null();
		break;
	case K_BUS:
		fault_bus_touch();
		break;
	case K_FPE:
		fault_fpe();
		break;
	case K_ILL:
		if (variant)
			fault_trap();
		else
			fault_illegal();
		break;
	case K_OVERFLOW:
		fault_overflow();
		break;
	case K_HEAP:
		for (;;)
			kr_alloc(4096);
	}
	VM_CHECK(0, "a worker survived %s", kinds[kind].name);
}

static void worker(void *arg)
{
	int k = (int)(intptr_t)arg;
	incarnation *me = atomic_load(&current[k]);
	VM_CHECK(me->pid == kr_self(), "worker %d: its init did not record it", k);
	atomic_store(&me->running, true);
	stream *out = kr_calloc(2 * PER_GROUP, sizeof *out), *in = out + PER_GROUP;
	uint32_t rnd = (uint32_t)k * 2654435761u ^ (uint32_t)kr_self();
	while (!atomic_load(&vm_abort)) {
		kr_msg *m;
		long quiet_ms = atomic_load(&send_tokens) > 0 ? 10 + vm_rand(&rnd) % 40
		                                               : 100 + vm_rand(&rnd) % 400;
		if (kr_recv(&m, quiet_ms) != 0) {
			if (!atomic_load(&quiet))
				send_some(k, out, &rnd);
			continue;
		}
		switch (m->tag) {
		case T_DATA:
			take(me, in, m);
			break;
		case T_CALL:
			kr_reply(m, T_ANSWER, &k, sizeof k);
			break;
		case T_FAULT: {
			int f[2];
			memcpy(f, m->data, sizeof f);
			fault(f[0], f[1]);
			break;
		}
		}
		kr_msg_free(m);
	}
}

/* ---- supervisors ---- */

static void group_sup(void *arg)
{
	int g = (int)(intptr_t)arg;
	char ids[PER_GROUP][16];
	kr_child_spec specs[PER_GROUP];
	for (int i = 0; i < PER_GROUP; i++) {
		snprintf(ids[i], sizeof ids[i], "w%d", i);
		specs[i] = (kr_child_spec){ .id = ids[i],
			                    .start = worker,
			                    .init = worker_init,
			                    .arg = (void *)(intptr_t)(g * PER_GROUP + i),
			                    .stack_size = WORKER_STACK,
			                    .max_heap = WORKER_MAX_HEAP };
	}
	atomic_store(&group_pid[g], kr_self());
	kr_sup_flags f = { .max_restarts = GROUP_INTENSITY, .period_ms = GROUP_PERIOD_MS };
	kr_sup_run(&f, specs, PER_GROUP);
	VM_CHECK(0, "kr_sup_run returned");
}

/* Is group g alive with all its workers? (A call to its supervisor.) */
static bool group_whole(int g)
{
	kr_sup_counts n;
	return kr_sup_count_children((kr_pid)atomic_load(&group_pid[g]), &n) == 0 &&
	       n.active == PER_GROUP;
}

static bool tree_whole(void)
{
	for (int g = 0; g < GROUPS; g++)
		if (!group_whole(g))
			return false;
	return true;
}

/* ---- the chaos ---- */

typedef struct shot {
	kr_ref ref;
	kr_pid pid;
	int kind;
} shot;

/* The chaos's own state (there is one chaos process). */
static struct {
	uint32_t rnd;
	shot flight[IN_FLIGHT]; /* worker events under way */
	int nflight;
	int64_t window[GROUPS]; /* the start of each group's quota window, ns */
	int used[GROUPS];       /* events in it */
	bool burst_done;
	bool failed;
} cs;

static bool reason_is(int kind, kr_pid pid, const kr_reason *r)
{
	const struct kind_info *ki = &kinds[kind];
	char why[160];
	bool ok = r->kind == ki->reason && (!ki->text || strstr(r->text, ki->text));
	VM_CHECK(ok, "%s of %lld: it ended with %s", ki->name, (long long)pid,
	         kr_reason_format(r, why, sizeof why));
	return ok;
}

/* The next DOWN, within WAIT_MS. */
static kr_msg *next_down(const char *waiting_for)
{
	kr_msg *m;
	int rc = kr_recv_tag(&m, KR_TAG_DOWN, WAIT_MS);
	VM_CHECK(rc == 0, "no DOWN within %d ms: %s", WAIT_MS, waiting_for);
	return rc == 0 ? m : NULL;
}

/* One worker event ends: check its DOWN. */
static void land(void)
{
	kr_msg *m = next_down("a worker struck");
	if (!m) {
		cs.failed = true;
		return;
	}
	const kr_down_msg *d = kr_msg_down(m);
	int i = 0;
	while (i < cs.nflight && cs.flight[i].ref != d->ref)
		i++;
	VM_CHECK(i < cs.nflight, "a DOWN no event expected");
	if (i < cs.nflight) {
		shot s = cs.flight[i];
		cs.flight[i] = cs.flight[--cs.nflight];
		if (reason_is(s.kind, s.pid, &d->reason))
			atomic_fetch_add(&landed[s.kind], 1);
		else
			cs.failed = true;
	}
	kr_msg_free(m);
}

static void drain(void)
{
	while (cs.nflight && !cs.failed)
		land();
}

static bool quota_left(int g)
{
	int64_t now = vm_now_ns();
	if (now - cs.window[g] >= (int64_t)GROUP_PERIOD_MS * 1000000) {
		cs.window[g] = now;
		cs.used[g] = 0;
	}
	return cs.used[g] < GROUP_QUOTA;
}

static bool in_flight(kr_pid pid)
{
	for (int i = 0; i < cs.nflight; i++)
		if (cs.flight[i].pid == pid)
			return true;
	return false;
}

/* Does a stack overflow of pid fault (rather than run into a canary)? */
static bool guard_faults(kr_pid pid)
{
	kr_proc_info i;
	return kr_info(pid, &i) == 0 && (!strcmp(i.stack_protection, "guard_install") ||
	                                 !strcmp(i.stack_protection, "mprotect"));
}

/* A worker slot to strike with this kind, or -1 if a few tries find none:
 * its incarnation running and not struck yet, its group under its quota. */
static int pick(int kind)
{
	for (int tries = 0; tries < 64; tries++) {
		int k = (int)(vm_rand(&cs.rnd) % WORKERS);
		incarnation *w = atomic_load(&current[k]);
		if (quota_left(k / PER_GROUP) && atomic_load(&w->running) && kr_is_alive(w->pid) &&
		    !in_flight(w->pid) && (kind != K_OVERFLOW || guard_faults(w->pid)))
			return k;
	}
	return -1;
}

static void strike(int k, int kind)
{
	kr_pid pid = atomic_load(&current[k])->pid;
	atomic_fetch_add(&send_tokens, TOKENS_PER_EVENT);
	cs.used[k / PER_GROUP]++;
	cs.flight[cs.nflight++] = (shot){ kr_monitor(pid), pid, kind };
	if (kind == K_KILL) {
		kr_exit_sig(pid, KR_EXIT_KILL);
	} else if (kind == K_EXIT) {
		kr_reason r = { .kind = KR_EXIT_ERROR, .text = "chaos: exit signal" };
		kr_exit_sig_reason(pid, &r);
	} else {
		int f[2] = { kind, (int)(vm_rand(&cs.rnd) & 1) };
		kr_send(pid, T_FAULT, f, sizeof f);
	}
}

/* Wait until group g has a supervisor other than old, with all its workers. */
static void await_group(int g, kr_pid old)
{
	int64_t end = vm_now_ns() + (int64_t)WAIT_MS * 1000000;
	while ((atomic_load(&group_pid[g]) == old || !group_whole(g)) && vm_now_ns() < end)
		kr_sleep(1);
	VM_CHECK(vm_now_ns() < end, "group %d did not come back whole", g);
	cs.failed |= vm_now_ns() >= end;
	cs.window[g] = 0; /* a new supervisor: no restarts yet */
	cs.used[g] = 0;
}

/* Kill group g's supervisor, with its workers (through their links); the
 * top restarts it. First the group is whole, so that every restart owed
 * for the events before has been made. */
static void kill_group(int g)
{
	drain();
	await_group(g, 0);
	kr_pid sup = (kr_pid)atomic_load(&group_pid[g]);
	kr_monitor(sup);
	kr_exit_sig(sup, KR_EXIT_KILL);
	kr_msg *m = next_down("a group supervisor killed");
	if (m && reason_is(K_GROUP, sup, &kr_msg_down(m)->reason))
		atomic_fetch_add(&landed[K_GROUP], 1);
	else
		cs.failed = true;
	kr_msg_free(m);
	await_group(g, sup);
}

/* Kill all of group g's workers, again and again, until it gives up. The
 * workers are those its supervisor names: once it has given up, the top
 * starts a new group g, whose workers must not be hit. */
static void burst(int g)
{
	static kr_sup_child v[PER_GROUP];
	drain();
	await_group(g, 0);
	kr_pid sup = (kr_pid)atomic_load(&group_pid[g]);
	kr_monitor(sup);
	atomic_store(&burst_group, g);
	kr_msg *m;
	int rc;
	int64_t end = vm_now_ns() + (int64_t)WAIT_MS * 1000000;
	while ((rc = kr_recv_tag(&m, KR_TAG_DOWN, 0)) != 0 && vm_now_ns() < end) {
		int n = kr_sup_which_children(sup, v, PER_GROUP);
		for (int i = 0; i < n && i < PER_GROUP; i++)
			if (v[i].pid > 0 && kr_exit_sig(v[i].pid, KR_EXIT_KILL) == 0)
				atomic_fetch_add(&burst_kills, 1);
	}
	atomic_store(&burst_group, -1);
	cs.burst_done = true;
	if (rc != 0)
		m = NULL;
	VM_CHECK(m, "group %d did not give up under a burst", g);
	if (m) {
		const kr_reason *r = &kr_msg_down(m)->reason;
		VM_CHECK(r->kind == KR_EXIT_SHUTDOWN && strstr(r->text, "intensity"),
		         "group %d ended with %d (%s), not giving up", g, r->kind, r->text);
	}
	kr_msg_free(m);
	cs.failed |= !m;
	await_group(g, sup);
}

static int draw_kind(void)
{
	int total = 0;
	for (int i = 0; i < NKINDS; i++)
		total += i == K_OVERFLOW && !atomic_load(&overflow_possible) ? 0 : kinds[i].weight;
	int r = (int)(vm_rand(&cs.rnd) % (uint32_t)total), kind = 0;
	for (;; kind++) {
		if (kind == K_OVERFLOW && !atomic_load(&overflow_possible))
			continue;
		if ((r -= kinds[kind].weight) < 0)
			return kind;
	}
}

static void chaos(void *arg)
{
	(void)arg;
	cs.rnd = chaos_seed;
	int64_t progress = vm_now_ns();
	int kind = -1;
	for (long n = 0; n < chaos_events && !cs.failed && !atomic_load(&vm_abort);) {
		if (n == chaos_events / 2 && !cs.burst_done)
			burst((int)(vm_rand(&cs.rnd) % GROUPS));
		/* One of each kind first; a kind drawn waits for a worker to strike. */
		if (kind < 0)
			kind = n < NKINDS ? (int)n : draw_kind();
		if (kind == K_OVERFLOW && !atomic_load(&overflow_possible))
			kind = K_KILL;
		if (kind == K_GROUP) {
			kill_group((int)(vm_rand(&cs.rnd) % GROUPS));
		} else {
			int k = pick(kind);
			if (k < 0) {
				/* Every group used its quota, or the workers
				 * struck are still being restarted. */
				VM_CHECK(vm_now_ns() - progress < (int64_t)WAIT_MS * 1000000,
				         "no worker to strike with %s", kinds[kind].name);
				cs.failed |= vm_now_ns() - progress >= (int64_t)WAIT_MS * 1000000;
				if (cs.nflight)
					land();
				else
					kr_sleep(1);
				continue;
			}
			strike(k, kind);
			if (cs.nflight == IN_FLIGHT)
				land();
		}
		progress = vm_now_ns();
		kind = -1;
		n++;
	}
	drain();
}

/* ---- the driver ---- */

static size_t heap_of(kr_pid pid)
{
	kr_proc_info i;
	return kr_info(pid, &i) == 0 ? i.heap_bytes : 0;
}

/* Each group's workers are the incarnations the records name, and each
 * answers a call. */
static void check_workers(void)
{
	kr_sup_child *v = kr_calloc(PER_GROUP, sizeof *v);
	for (int g = 0; g < GROUPS; g++) {
		kr_pid sup = (kr_pid)atomic_load(&group_pid[g]);
		int n = kr_sup_which_children(sup, v, PER_GROUP);
		VM_CHECK(n == PER_GROUP, "group %d has %d children", g, n);
		result.tree_heap += heap_of(sup);
		for (int i = 0; i < n && i < PER_GROUP; i++) {
			int k = g * PER_GROUP + i;
			VM_CHECK(v[i].pid == atomic_load(&current[k])->pid,
			         "worker %d is %lld, its record says %lld", k, (long long)v[i].pid,
			         (long long)atomic_load(&current[k])->pid);
			result.tree_heap += heap_of(v[i].pid);
			kr_msg *m;
			int rc = kr_call(v[i].pid, T_CALL, NULL, 0, &m, WAIT_MS);
			VM_CHECK(rc == 0, "worker %d did not answer: %s", k, kr_strerror(rc));
			if (rc == 0) {
				VM_CHECK(*(const int *)m->data == k, "worker %d answered for %d", k,
				         *(const int *)m->data);
				kr_msg_free(m);
			}
		}
	}
	kr_free(v);
}

/* The processes of the whole tree, and the driver. */
#define TREE_PROCS (WORKERS + GROUPS + 2)

static size_t procs_alive(void)
{
	kr_vm_stats st;
	return kr_vm_stats_get(&st) == 0 ? st.procs_alive : 0;
}

/* Are only the tree and the driver alive (the incarnations ended by the
 * chaos have finished exiting), and has every incarnation still alive
 * taken in all that was sent to it? */
static bool all_taken_in(void)
{
	if (procs_alive() != TREE_PROCS)
		return false;
	for (int k = 0; k < WORKERS; k++) {
		incarnation *w = atomic_load(&current[k]);
		if (atomic_load(&w->received) != atomic_load(&w->sent) && kr_is_alive(w->pid))
			return false;
	}
	return true;
}

/* The workload stops; what is in flight arrives; then the count. */
static void check_messages(void)
{
	atomic_store(&quiet, 1);
	/* A worker answers a call only between its rounds of sending: after
	 * this, no send that began before `quiet` is still under way. */
	check_workers();
	int64_t end = vm_now_ns() + (int64_t)WAIT_MS * 1000000;
	while (!all_taken_in() && vm_now_ns() < end)
		kr_sleep(10);
	VM_CHECK(procs_alive() == TREE_PROCS, "%zu processes alive with the tree whole, not %d",
	         procs_alive(), TREE_PROCS);
	for (incarnation *w = atomic_load(&incarnations); w; w = w->next) {
		unsigned long long sent = atomic_load(&w->sent), got = atomic_load(&w->received);
		result.incarnations++;
		result.sent += sent;
		result.received += got;
		if (!kr_is_alive(w->pid)) {
			result.unreceived += sent - got;
			continue;
		}
		result.alive++;
		result.to_alive += sent;
		VM_CHECK(w == atomic_load(&current[w->slot]),
		         "%lld, an old incarnation of worker %d, is alive", (long long)w->pid,
		         w->slot);
		VM_CHECK(got == sent, "worker %d (%lld) is alive and took in %llu of %llu messages",
		         w->slot, (long long)w->pid, got, sent);
	}
	VM_CHECK(result.alive == WORKERS, "%zu incarnations alive, not %d", result.alive, WORKERS);
}

static void driver(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	atomic_store(&send_tokens, 10 * TOKENS_PER_EVENT);
	kr_vm_stats before, after;
	kr_vm_stats_get(&before);
	size_t heap_before = heap_of(kr_self());
	atomic_store(&overflow_possible, strcmp(before.stack_protection, "canary") != 0);

	static char ids[GROUPS][16];
	static kr_child_spec specs[GROUPS];
	for (int g = 0; g < GROUPS; g++) {
		snprintf(ids[g], sizeof ids[g], "g%d", g);
		specs[g] = (kr_child_spec){ .id = ids[g],
			                    .start = group_sup,
			                    .arg = (void *)(intptr_t)g,
			                    .type = KR_SUPERVISOR };
	}
	/* The top must never give up: far more restarts than chaos makes. */
	kr_sup_flags f = { .max_restarts = 1000000, .period_ms = 1000 };
	kr_pid top = kr_sup_start_link(&f, specs, GROUPS, "top");
	VM_CHECK(top > 0, "start the tree: %lld", (long long)top);
	if (top < 0)
		return;
	VM_CHECK(tree_whole(), "the tree did not start whole");

	kr_ref ref;
	kr_spawn_opts o = { .monitor = &ref, .name = "chaos" };
	VM_CHECK(kr_spawn_opt(chaos, NULL, &o) > 0, "spawn the chaos");
	kr_msg *m;
	while (kr_recv_tag(&m, KR_TAG_DOWN, 1000) != 0 && !atomic_load(&vm_abort))
		;
	if (atomic_load(&vm_abort))
		return;
	VM_CHECK(kr_msg_down(m)->reason.kind == KR_EXIT_NORMAL, "the chaos crashed");
	kr_msg_free(m);

	int64_t end = vm_now_ns() + (int64_t)WAIT_MS * 1000000;
	while (!tree_whole() && vm_now_ns() < end)
		kr_sleep(20);
	VM_CHECK(tree_whole(), "the tree did not heal");
	kr_sup_counts n;
	VM_CHECK(kr_is_alive(top) && kr_whereis("top") == top,
	         "the top supervisor is not the same");
	VM_CHECK(kr_sup_count_children(top, &n) == 0 && n.active == GROUPS &&
	                 n.supervisors == GROUPS,
	         "the top's children: %zu active", n.active);
	check_messages();

	/* Stop the tree, as its parent. */
	ref = kr_monitor(top);
	kr_exit_sig(top, KR_EXIT_SHUTDOWN);
	m = next_down("the top stopping");
	VM_CHECK(m && kr_msg_down(m)->ref == ref &&
	                 kr_msg_down(m)->reason.kind == KR_EXIT_SHUTDOWN,
	         "the top's end");
	kr_msg_free(m);

	/* Back to the baseline, once the last processes have finished exiting. */
	end = vm_now_ns() + (int64_t)WAIT_MS * 1000000;
	while ((kr_vm_stats_get(&after), after.procs_alive != before.procs_alive ||
	                                         after.stacks_in_use != before.stacks_in_use) &&
	       vm_now_ns() < end)
		kr_sleep(10);
	VM_CHECK(after.procs_alive == before.procs_alive, "%zu processes alive, %zu before",
	         after.procs_alive, before.procs_alive);
	VM_CHECK(after.stacks_in_use == before.stacks_in_use, "%zu stacks in use, %zu before",
	         after.stacks_in_use, before.stacks_in_use);
	VM_CHECK(heap_of(kr_self()) == heap_before, "%zu heap bytes, %zu before",
	         heap_of(kr_self()), heap_before);
	atomic_store(&result.done, 1);
}

static long env_long(const char *name, long dflt)
{
	const char *s = getenv(name);
	return s && *s ? strtol(s, NULL, 0) : dflt;
}

static void free_incarnations(void)
{
	incarnation *w = atomic_load(&incarnations);
	while (w) {
		incarnation *next = w->next;
		free(w);
		w = next;
	}
}

Test(chaos, a_supervised_workload_heals_after_faults_of_every_kind)
{
	chaos_events = env_long("KR_CHAOS_EVENTS", EVENTS);
	chaos_seed = (uint32_t)env_long("KR_CHAOS_SEED", (long)(uint32_t)(vm_now_ns() ^ getpid()));
	cr_assert_geq(chaos_events, NKINDS, "KR_CHAOS_EVENTS: at least one of each kind");
	fprintf(stderr, "chaos: %ld events, seed %u (to replay: KR_CHAOS_SEED=%u)\n", chaos_events,
	        chaos_seed, chaos_seed);
	/* The deadline of a run that hangs: five minutes, and 10 ms an event
	 * (a hundred times what one takes natively) times the build's
	 * slowness. */
	long budget_s = 300 + chaos_events * VM_LIGHT_DIV / 100;
	alarm((unsigned)budget_s);
	cr_assert_eq(fault_bus_map(), 0, "a page of an empty file: %s", strerror(errno));

	/* Every report, progress (info) and exit signals (debug) included, and
	 * no burst limit: the counts are checked. */
	kr_config cfg = { .schedulers = 2, .log = count_report, .log_level = KR_LOG_DEBUG,
		          .log_burst = -1 };
	vm_start_cfg(&cfg);
	int64_t t0 = vm_now_ns();
	kr_pid d = vm_spawn(driver, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(d), (budget_s - 10) * 1000), "the driver did not finish");
	vm_assert_clean();
	cr_assert(atomic_load(&result.done));
	cr_assert(VM_WAIT(vm_alive() == 0 && vm_stacks() == 0, WAIT_MS), "%zu processes left",
	          vm_alive());

	long events = 0, worker_events = 0;
	char counts[512];
	int len = 0;
	for (int i = 0; i < NKINDS; i++) {
		long n = atomic_load(&landed[i]);
		events += n;
		worker_events += i == K_GROUP ? 0 : n;
		len += snprintf(counts + len, sizeof counts - (size_t)len, "%s%s %ld",
		                i ? ", " : "", kinds[i].name, n);
		cr_assert(n > 0 || (i == K_OVERFLOW && !atomic_load(&overflow_possible)),
		          "no %s event", kinds[i].name);
	}
	cr_assert_eq(events, chaos_events);
	cr_assert_eq(atomic_load(&top_gave_up), 0, "the top supervisor gave up");
	cr_assert_eq(atomic_load(&groups_gave_up), 1, "%ld groups gave up, not just the burst's",
	             atomic_load(&groups_gave_up));
	cr_assert_eq(atomic_load(&top_restarts), atomic_load(&landed[K_GROUP]) + 1,
	             "the top restarted %ld groups; %ld were killed and 1 gave up",
	             atomic_load(&top_restarts), atomic_load(&landed[K_GROUP]));
	/* One restart for each worker struck, no more (the burst's apart). */
	long gr = atomic_load(&group_restarts);
	cr_assert_eq(gr, worker_events, "the groups restarted %ld workers after %ld worker events",
	             gr, worker_events);

	fprintf(stderr,
	        "chaos: %d workers in %d groups, %.1f s, seed %u; events: %s%s\n"
	        "chaos: burst: %ld kill signals, %ld restarts; restarts besides: %ld by the "
	        "groups, %ld by the top; %ld exit reports\n"
	        "chaos: messages: %llu sent, %llu taken in; %llu to the %zu incarnations alive at "
	        "the end, all taken in; %llu not taken in by %zu that ended; %zu heap bytes in "
	        "the tree\n",
	        WORKERS, GROUPS, vm_ms_since(t0) / 1000, chaos_seed, counts,
	        atomic_load(&overflow_possible) ? "" : " (stacks have no faulting guard)",
	        atomic_load(&burst_kills), atomic_load(&burst_restarts), gr,
	        atomic_load(&top_restarts), atomic_load(&reports),
	        result.sent, result.received, result.to_alive, result.alive, result.unreceived,
	        result.incarnations - result.alive, result.tree_heap);
	vm_stop();
	free_incarnations();
	fault_bus_unmap();
	alarm(0);
}
