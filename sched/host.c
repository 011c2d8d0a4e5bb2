/*
 * host.c - host tasks: the scheduler's side of a host thread's mailbox
 * (vm/host.c). A host task is a process slot's task that no scheduler ever
 * runs: its own thread runs it, and parks it in a receive.
 *
 * Parking is a process's, but for the switch. The thread publishes its
 * waiting word and makes the receive's commit (vm/'s announce_waiting: the
 * full CAS that sets its mailbox's WAITING mark), then waits for the state
 * word to change. Its wake-up is won exactly as a process's is, by one CAS
 * on the mailbox word: a sender that clears the mark stores RUNNABLE in
 * the state word (with release: the thread reads the hand-off after it)
 * and calls krx_task_ready, which comes here instead of queueing the task;
 * a timeout, or kr_vm_stop's kick, clears the mark with the recv_timeout
 * hook's CAS, as a timer does. A thread whose timeout loses that CAS waits
 * for the winner's store, which is on its way.
 *
 * Waiting: a short spin first (a reply that comes within microseconds is
 * the common case, and a futex sleep and wake-up costs 10-100 us on these
 * machines), then a futex sleep on the low half of the state word, which
 * every winner changes before it wakes, so a sleep that starts too late
 * returns at once. The waker makes the FUTEX_WAKE system call only when
 * the thread may sleep (host_asleep): the thread stores host_asleep,
 * fences, then looks at the state word; the waker stores the state word,
 * fences, then looks at host_asleep (Dekker): one of the two sees the
 * other's store, so either the thread does not sleep or it is woken.
 */
#include "sched_int.h"

#include <sched.h>

#include "futex.h"

#define HOST_SPIN_MAX_NS 20000u /* how long a host thread spins, at most, before it sleeps */
#define HOST_SPIN_MIN_NS 1000u  /* ... at least, when spinning has not paid lately */

/* This host thread's spin, adapted: doubled when a spin saw its wake-up,
 * halved when it did not. On a machine with CPUs to spare the answer
 * comes within microseconds and the thread spins; on one whose CPUs are
 * all taken its spin would only delay the thread that is to answer, and
 * it soon sleeps at once, as a blocking read would. */
static __thread uint32_t spin_ns = HOST_SPIN_MAX_NS;

char krx_host_bound_mark;

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "a host thread sleeps on the state word's low half, its first four bytes");

static unsigned *futex_word(krx_task *t)
{
	return (unsigned *)(void *)&t->state;
}

void krx_task_init_host(krx_task *t)
{
	/* Keep seq across reuse of the structure, as krx_task_init does.
	 * Relaxed, here and below: the slot is published by the release of
	 * its pid (vm/proc.c), and no one wakes a task not yet published. */
	AO_t seq = AO_load(&t->state) & ~(AO_t)(KRX_ST_SEQ_ONE - 1);
	t->stack = NULL;
	t->pool = &krx_scheds.pool;
	t->next = NULL;
	t->bound = KRX_BOUND_HOST;
	AO_int_store(&t->last_sched, 0);
	AO_store(&t->reductions, 0);
	AO_int_store(&t->guard, 0);
	AO_int_store(&t->io_fd, 0);
	AO_int_store(&t->host_asleep, 0);
	AO_store(&t->state, seq + KRX_ST_SEQ_ONE + KRX_RUNNING);
}

/* Woken: back to RUNNING; the word it was woken with. */
static AO_t resume(krx_task *t)
{
	/* Acquire: pairs with the winner's release; what it handed over
	 * (the mailbox's hand-off slot) is visible. */
	AO_t woke = AO_load_acquire(&t->state);
	/* Relaxed: the task is ours again; no waker looks at a running word. */
	AO_store(&t->state, (woke & ~(AO_t)(KRX_ST_STATUS | KRX_ST_TIMEDOUT)) | KRX_RUNNING);
	return woke;
}

static bool spin_while(krx_task *t, AO_t word, uint64_t deadline)
{
	uint64_t until = krx_now_ns() + spin_ns;
	if (deadline && deadline < until)
		until = deadline;
	for (unsigned round = 1;; round++) {
		/* Relaxed: a look; resume() acquires. */
		if (AO_load(&t->state) != word) {
			spin_ns = spin_ns * 2 < HOST_SPIN_MAX_NS ? spin_ns * 2 : HOST_SPIN_MAX_NS;
			return true;
		}
		if (!(round & 63) && krx_now_ns() >= until) {
			spin_ns = spin_ns / 2 > HOST_SPIN_MIN_NS ? spin_ns / 2 : HOST_SPIN_MIN_NS;
			return false;
		}
		/* More host threads than CPUs: let the thread that would wake
		 * us (a scheduler running the server) have this one. */
		if (!(round & 255))
			sched_yield();
		krx_cpu_relax();
	}
}

static AO_t spinners; /* host threads spinning now */

/* Until word changes, spin_ns or the deadline, giving the CPU away
 * between looks: true if it did. */
static bool yield_while(krx_task *t, AO_t word, uint64_t deadline)
{
	uint64_t until = krx_now_ns() + spin_ns;
	if (deadline && deadline < until)
		until = deadline;
	while (krx_now_ns() < until) {
		/* Relaxed: a look; resume() acquires. */
		if (AO_load(&t->state) != word)
			return true;
		sched_yield();
	}
	return false;
}

/* Spin until word changes, spin_ns or the deadline: true if it did. No
 * more host threads spin at once than there are schedulers; the others
 * wait as long, but give their CPU away between looks (a system call
 * each): with more threads waiting than CPUs, spinning takes the CPU that
 * the scheduler running their server needs, and sleeping costs the
 * server a futex wake for each answer. With four threads on two
 * schedulers, krbench host_call made 340-380 k calls a second when those
 * beyond two slept at once, and 690-710 k when they yielded; half as many
 * spinners did worse still (200-450 k with two or four threads). */
static bool spin(krx_task *t, AO_t word, uint64_t deadline)
{
	unsigned most = krx_scheds.n;
	/* Relaxed: a count of its own, a hint to the others. */
	if (AO_fetch_and_add1(&spinners) >= most) {
		AO_fetch_and_sub1(&spinners);
		return yield_while(t, word, deadline);
	}
	bool changed = spin_while(t, word, deadline);
	AO_fetch_and_sub1(&spinners);
	return changed;
}

AO_t krx_task_park_host(krx_task *t, uint64_t deadline, bool (*commit)(krx_task *t, void *arg),
                        void *arg)
{
	AO_t run = AO_load(&t->state);
	AO_t word = (run & ~(AO_t)(KRX_ST_SEQ_ONE - 1)) + KRX_ST_SEQ_ONE + KRX_WAIT_RECV;
	/* Relaxed: the commit's full CAS publishes it before any waker can
	 * see the mark that leads it here. */
	AO_store(&t->state, word);
	if (!commit(t, arg)) {
		/* Messages came meanwhile; no waker could see us waiting
		 * (relaxed: the word is still ours alone). */
		AO_store(&t->state, (word & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNING);
		return (word & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE;
	}
	if (spin(t, word, deadline))
		return resume(t);
	for (;;) {
		int64_t left = -1;
		if (deadline) {
			uint64_t now = krx_now_ns();
			if (now < deadline) {
				left = (int64_t)(deadline - now);
			} else if (krx_scheds.cfg.hooks.recv_timeout(t, word)) {
				/* The timeout won: no waker will touch the word
				 * (relaxed: ours alone again). */
				AO_store(&t->state, (word & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNING);
				return (word & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE | KRX_ST_TIMEDOUT;
			} else {
				deadline = 0; /* a waker won: its store is on its way */
			}
		}
		AO_int_store(&t->host_asleep, 1);
		/* Full: host_asleep before the look at the state word (Dekker
		 * with krx_task_wake_host, see the top). */
		AO_nop_full();
		/* Relaxed after the fence; if the word changes after this
		 * look, the kernel sees it changed and does not sleep, or the
		 * waker's FUTEX_WAKE finds us asleep. */
		if (AO_load(&t->state) == word)
			krx_futex_wait(futex_word(t), (unsigned)word, left);
		/* Relaxed: the flag only tells wakers to make the system
		 * call; one that still sees 1 makes a needless one. */
		AO_int_store(&t->host_asleep, 0);
		/* Relaxed: a look; resume() acquires. */
		if (AO_load(&t->state) != word)
			return resume(t);
	}
}

void krx_task_wake_host(krx_task *t)
{
	/* Full: the caller's store of the state word before our look at
	 * host_asleep (Dekker with the sleeper, see the top). */
	AO_nop_full();
	/* Relaxed after the fence. A stale read (the thread has woken and
	 * left, perhaps parked again) costs at most a spurious wake-up, which
	 * the thread tells from its own word. */
	if (!AO_int_load(&t->host_asleep))
		return; /* it spins, and sees the word change */
	krx_futex_wake(futex_word(t), 1);
	krx_task_spend(KRX_WAKE_REDS);
}

bool krx_task_kick_host(krx_task *t)
{
	/* Relaxed: a look, as a timer's; the hook's CAS on the mailbox word
	 * decides, and a word from an earlier park no longer matches it. */
	AO_t st = AO_load(&t->state);
	if (krx_st_status(st) != KRX_WAIT_RECV || !krx_scheds.cfg.hooks.recv_timeout(t, st))
		return false;
	/* Release: as a sender's store (resume() acquires). */
	AO_store_release(&t->state, (st & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE | KRX_ST_TIMEDOUT);
	krx_task_wake_host(t);
	return true;
}
