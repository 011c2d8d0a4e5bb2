/*
 * msgtimer.c - timers that send a message (msgtimer.h, include/krill/timer.h).
 *
 * Each scheduler owns a set of timers: a timing wheel of 1 ms ticks
 * (wheel.h), a table from reference to timer (reftable.h), and a mutex over
 * both.
 * A process's timer joins the set of the scheduler it runs on; a host
 * thread's, the set of a scheduler picked for that thread once. The owner
 * fires its set's timers from its loop (the timers_due hook) and sleeps no
 * later than the earliest, which it reads from s->vm.timer_next; a thread
 * that makes a timer earlier than that in another scheduler's set kicks
 * that scheduler (krx_sched_kick), which may be asleep.
 *
 * Exactly one of fire and cancel wins. Both take the timer out of its set
 * under the set's mutex, and whichever finds it there has it: the owner
 * takes due timers out a batch at a time and delivers their messages after
 * unlocking, so a cancel that comes later finds nothing (KR_ENOTIMER) and
 * the message is delivered; a cancel that came first took the timer away,
 * and nothing is delivered. The mutex orders everything about a timer;
 * the one atomic, timer_next, is there for the owner's loop and its sleep
 * (see publish and sched/idle.c's krx_sched_kick).
 *
 * A reference names its set: a process's timer has the reference
 * krx_ref_new makes on its scheduler, whose low bits are that scheduler's
 * index + 1; a host thread's, a host reference (low bits 0) with the low
 * bits set to HOST_LOW + its set's index (signal.h). So cancel and read go
 * straight to the set, and a reference that was never a timer's (a
 * monitor's, a call's) finds nothing.
 *
 * A timer to a pid whose process has ended is cancelled, as in Erlang:
 * cancel and read find it so, say KR_ENOTIMER and drop it; the owner drops
 * it at its tick (krx_deliver finds the process gone). Either way its
 * message is counted as a dead letter. A pid's serial keeps it from ever
 * reaching a later process in the same slot (proc.h).
 */
#include "msgtimer.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "futex.h"
#include "mi.h"
#include "outbox.h"
#include "proc.h"
#include "reftable.h"
#include "send.h"
#include "signal.h"
#include "vm.h"
#include "wheel.h"

#define TICK_NS 1000000u   /* a tick: a millisecond, as the BEAM's timers */
#define FIRE_BATCH 64      /* timers taken out under one lock */
#define FIRE_MAX 1024      /* timers one hook call fires: then the loop runs processes */
#define HOST_LOW 1025u     /* a host thread's timer: reference low bits HOST_LOW + set */
#define HOST_SETS ((1u << KRX_REF_LOW_BITS) - HOST_LOW)

/* A timer. The wheel entry is first; its spare bytes hold the lengths. */
typedef struct tmr {
	krx_wentry w;          /* own8[0]: the name's bytes with its NUL (0: to a pid);
	                        * own8[1]: the message carries ref; own32: payload bytes */
	krx_refent r;          /* its reference, in the set's table */
	kr_pid to;             /* 0: to the name at data */
	kr_pid from;
	uint64_t tag;
	unsigned char data[];  /* the name, then the payload */
} tmr;

_Static_assert(sizeof(tmr) == 72, "a timer is 72 bytes and its payload");

typedef struct tset {
	pthread_mutex_t lock;
	size_t n;              /* timers in the set */
	AO_t count;            /* n, for kr_vm_stats: written under the lock */
	uint64_t next;         /* the tick last published as timer_next: at most the
	                        * wheel's next (a cancel may leave it earlier) */
	krx_reftable refs;
	krx_wheel wheel;
} tset;

static struct {
	unsigned n;            /* sets: one per scheduler */
	uint64_t base;         /* CLOCK_MONOTONIC ns of tick 0 */
	size_t max_len;        /* payload bytes at most */
	tset *sets;
} T;

/* ---- ticks ---- */

/* The tick under way at ns (whose start is at or before ns). */
static uint64_t tick_floor(uint64_t ns)
{
	return ns > T.base ? (ns - T.base) / TICK_NS : 0;
}

/* The first tick that starts at or after ns. */
static uint64_t tick_ceil(uint64_t ns)
{
	return ns > T.base ? (ns - T.base + TICK_NS - 1) / TICK_NS : 0;
}

/* ---- a set (under its lock) ---- */

/* Make tick the set's published next: its owner's loop fires then, and its
 * sleep ends no later. Relaxed: the owner reads it in its own loop, or,
 * about to sleep, after a full fence that pairs with krx_sched_kick's
 * (which the caller makes when it lowered the tick from another thread). */
static void publish(tset *o, krx_sched *owner, uint64_t tick)
{
	o->next = tick;
	AO_store(&owner->vm.timer_next, tick == UINT64_MAX ? UINT64_MAX : T.base + tick * TICK_NS);
}

static void take_out(tset *o, tmr *t)
{
	krx_wheel_remove(&o->wheel, &t->w);
	krx_reftable_del(&o->refs, &t->r);
	o->n--;
	AO_store(&o->count, o->n); /* relaxed: a figure */
}

/* ---- starting ---- */

static bool name_ok(const char *name)
{
	return name && name[0] && strnlen(name, KR_NAME_MAX + 1) <= KR_NAME_MAX;
}

/* The set a host thread's timers join: the same for all of one thread's,
 * so that they fire in order; threads are spread over the schedulers. */
static unsigned host_set(void)
{
	static __thread unsigned mine; /* this thread's number + 1; 0: none yet */
	static AO_t threads;
	if (!mine)
		mine = (unsigned)AO_fetch_and_add1(&threads) + 1; /* relaxed: a number handed out once */
	unsigned sets = T.n < HOST_SETS ? T.n : HOST_SETS;
	return (mine - 1) % sets;
}

/* Into set i, which s (the caller's scheduler, or NULL) may not own. */
static void insert(unsigned i, krx_sched *s, tmr *t)
{
	tset *o = &T.sets[i];
	krx_sched *owner = krx_sched_get(i);
	pthread_mutex_lock(&o->lock);
	krx_wheel_insert(&o->wheel, &t->w);
	krx_reftable_put(&o->refs, &t->r);
	o->n++;
	AO_store(&o->count, o->n); /* relaxed: a figure */
	uint64_t tick = krx_wheel_entry_next(&o->wheel, &t->w);
	bool earlier = tick < o->next;
	if (earlier)
		publish(o, owner, tick);
	pthread_mutex_unlock(&o->lock);
	/* The owner runs the caller, or may be asleep until a later tick. */
	if (earlier && owner != s)
		krx_sched_kick(owner);
}

static kr_ref start(krx_sched *s, long ms, kr_pid to, const char *name, size_t name_len,
                    uint64_t tag, const void *data, size_t len, bool with_ref)
{
	if (len > T.max_len)
		return KR_ELIMIT;
	uint64_t now = krx_now_ns();
	unsigned i = s ? s->id : host_set();
	kr_ref ref = (s ? krx_ref_new(s) : krx_ref_new(NULL) | (kr_ref)(HOST_LOW + i)) | KRX_REF_TIMER;
	if (!name_len && !krx_proc_live(to)) {
		/* Gone already: cancelled with its process before it starts. */
		krx_dead_letters(1);
		return ref;
	}
	tmr *t = krx_alloc_raw(sizeof *t + name_len + len);
	if (!t)
		return KR_ENOMEM;
	t->w.when = tick_ceil(now) + (uint64_t)ms;
	t->w.own8[0] = (uint8_t)name_len;
	t->w.own8[1] = with_ref;
	t->w.own32 = (uint32_t)len;
	t->r.ref = ref;
	t->to = to;
	krx_proc *self = krx_proc_on(s);
	t->from = self ? (kr_pid)AO_load(&self->live_pid) : 0; /* ours: relaxed */
	t->tag = tag;
	if (name_len)
		memcpy(t->data, name, name_len);
	if (len)
		memcpy(t->data + name_len, data, len);
	insert(i, s, t);
	return ref;
}

/* What the four starts share: the checks, the VM's door, the charge. */
static kr_ref start_call(long ms, kr_pid to, const char *name, uint64_t tag, const void *data,
                         size_t len, bool with_ref)
{
	if (tag >= KR_TAG_SUP || ms < 0 || ms > KR_TIMER_MAX_MS || (len && !data))
		return KR_EINVAL;
	if (name ? !name_ok(name) : !krx_pid_valid(to))
		return KR_EINVAL; /* another node's pid too: Erlang's badarg */
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	kr_ref r = start(s, ms, to, name, name ? strlen(name) + 1 : 0, tag, data, len, with_ref);
	krx_vm_leave(s);
	if (s && r > 0)
		krx_task_charge(1);
	return r;
}

KR_API kr_ref kr_send_after(long ms, kr_pid pid, uint64_t tag, const void *data, size_t len)
{
	return start_call(ms, pid, NULL, tag, data, len, false);
}

KR_API kr_ref kr_start_timer(long ms, kr_pid pid, uint64_t tag, const void *data, size_t len)
{
	return start_call(ms, pid, NULL, tag, data, len, true);
}

KR_API kr_ref kr_send_after_named(long ms, const char *name, uint64_t tag, const void *data,
                                  size_t len)
{
	return start_call(ms, 0, name, tag, data, len, false);
}

KR_API kr_ref kr_start_timer_named(long ms, const char *name, uint64_t tag, const void *data,
                                   size_t len)
{
	return start_call(ms, 0, name, tag, data, len, true);
}

/* ---- cancelling and reading ---- */

/* The set a timer's reference names, or -1 if it names none. */
static int set_of(kr_ref ref)
{
	unsigned low = (unsigned)((uint64_t)ref & ((1u << KRX_REF_LOW_BITS) - 1));
	if (!low)
		return -1; /* a host thread's reference of another kind */
	unsigned i = low >= HOST_LOW ? low - HOST_LOW : low - 1;
	return i < T.n ? (int)i : -1;
}

/* The milliseconds left of ref's timer, or KR_ENOTIMER; with cancel, or
 * when its process has ended, take it out. */
static long look_up(kr_ref ref, bool cancel)
{
	int i = set_of(ref);
	if (i < 0)
		return KR_ENOTIMER;
	tset *o = &T.sets[i];
	uint64_t now = tick_ceil(krx_now_ns());
	pthread_mutex_lock(&o->lock);
	krx_refent *re = krx_reftable_get(&o->refs, ref);
	tmr *t = re ? (tmr *)((char *)re - offsetof(tmr, r)) : NULL;
	if (!t) {
		pthread_mutex_unlock(&o->lock);
		return KR_ENOTIMER;
	}
	bool gone = !t->w.own8[0] && !krx_proc_live(t->to);
	long left = t->w.when > now ? (long)(t->w.when - now) : 0;
	if (cancel || gone)
		take_out(o, t);
	pthread_mutex_unlock(&o->lock);
	if (!cancel && !gone)
		return left;
	krx_free_raw(t);
	if (!gone)
		return left;
	krx_dead_letters(1); /* its message, which will never be sent */
	return KR_ENOTIMER;
}

static long look_up_call(kr_ref ref, bool cancel)
{
	if (ref <= 0)
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	long r = look_up(ref, cancel);
	krx_vm_leave(s);
	if (s && cancel)
		krx_task_charge(1);
	return r;
}

KR_API long kr_cancel_timer(kr_ref ref)
{
	return look_up_call(ref, true);
}

KR_API long kr_read_timer(kr_ref ref)
{
	return look_up_call(ref, false);
}

/* ---- firing (the owner's loop) ---- */

/* Take out up to FIRE_BATCH timers due by tick, into batch; publish the
 * next tick. Returns how many. */
static unsigned take_due(tset *o, krx_sched *s, uint64_t tick, tmr **batch)
{
	unsigned k = 0;
	krx_wentry *e;
	pthread_mutex_lock(&o->lock);
	krx_wheel_advance(&o->wheel, tick);
	while (k < FIRE_BATCH && (e = krx_wheel_pop_due(&o->wheel))) {
		tmr *t = (tmr *)e;
		krx_reftable_del(&o->refs, &t->r);
		batch[k++] = t;
	}
	o->n -= k;
	AO_store(&o->count, o->n); /* relaxed: a figure */
	publish(o, s, krx_wheel_next(&o->wheel));
	pthread_mutex_unlock(&o->lock);
	return k;
}

/* Send t's message, from the loop of s, and free t. */
static void fire(krx_sched *s, tmr *t)
{
	size_t name_len = t->w.own8[0];
	kr_pid to = t->to;
	if (name_len) {
		to = kr_whereis((const char *)t->data);
		if (to < 0) {
			krx_dead_letters(1); /* no one has the name: dropped */
			krx_free_raw(t);
			return;
		}
	}
	krx_msg *m = krx_msg_build(s, KRX_MSG_USER, t->from, t->tag, t->w.own8[1] ? t->r.ref : 0,
	                           t->data + name_len, t->w.own32, NULL);
	if (m)
		(void)krx_deliver(s, to, m); /* a process gone: a dead letter there */
	else
		krx_log(KR_LOG_ERROR, "krill: out of memory: the message of a timer was lost");
	krx_free_raw(t);
}

void krx_msgtimer_due(krx_sched *s, uint64_t now)
{
	tset *o = &T.sets[s->id];
	uint64_t tick = tick_floor(now);
	tmr *batch[FIRE_BATCH];
	for (unsigned fired = 0; fired < FIRE_MAX;) {
		unsigned k = take_due(o, s, tick, batch);
		for (unsigned j = 0; j < k; j++)
			fire(s, batch[j]);
		fired += k;
		if (k < FIRE_BATCH)
			break;
	}
	/* Messages held for busy processes elsewhere go now: no task of ours
	 * leaves the CPU to flush them. */
	if (s->vm.pending)
		krx_outbox_flush(s);
}

/* ---- the VM's life ---- */

int krx_msgtimer_init(unsigned schedulers, size_t max_message)
{
	T.n = schedulers;
	T.base = krx_now_ns();
	T.max_len = max_message < UINT32_MAX ? max_message : UINT32_MAX;
	T.sets = krx_calloc_raw(schedulers, sizeof *T.sets);
	if (!T.sets)
		return KR_ENOMEM;
	for (unsigned i = 0; i < schedulers; i++) {
		tset *o = &T.sets[i];
		if (krx_reftable_init(&o->refs)) {
			T.n = i;
			krx_msgtimer_free();
			return KR_ENOMEM;
		}
		o->next = UINT64_MAX;
		pthread_mutex_init(&o->lock, NULL);
		krx_wheel_init(&o->wheel);
	}
	return 0;
}

/* A timer that never fired (the VM stops). */
static void free_timer(krx_refent *e)
{
	krx_free_raw((char *)e - offsetof(tmr, r));
}

void krx_msgtimer_free(void)
{
	for (unsigned i = 0; i < T.n; i++) {
		tset *o = &T.sets[i];
		krx_reftable_drain(&o->refs, free_timer);
		krx_reftable_free(&o->refs);
		pthread_mutex_destroy(&o->lock);
	}
	krx_free_raw(T.sets);
	T.sets = NULL;
	T.n = 0;
}

size_t krx_msgtimer_pending(void)
{
	size_t n = 0;
	for (unsigned i = 0; i < T.n; i++)
		n += AO_load(&T.sets[i].count); /* relaxed: a figure */
	return n;
}
