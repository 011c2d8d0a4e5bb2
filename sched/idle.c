/*
 * idle.c - a scheduler with nothing to run: spinning, parking, and being
 * woken. It owns the idle list and the counts of parked (npidle) and
 * spinning (nspinning) schedulers.
 *
 * When to block a thread, and when to wake one (after Go's runtime):
 *  - An idle scheduler first *spins*, stealing from the others, for up to
 *    SPIN_NS (loop.c): waking a parked thread costs 10-100 us on these machines, so
 *    a short gap between messages must not put a scheduler to sleep. At most
 *    about half the busy schedulers spin at once.
 *  - A scheduler that finds nothing parks on its own futex word after
 *    putting itself on the idle list and looking once more for work; while
 *    tasks wait on descriptors, one parked scheduler waits in epoll instead
 *    (poll.c), and is woken from there by an eventfd. A waker takes a
 *    scheduler off that list before waking it, so each wake is aimed and
 *    used once.
 *  - Making a task runnable wakes one parked scheduler only when no
 *    scheduler is spinning and there is a backlog another could take: a
 *    task in the LIFO slot alone is the running task's partner and wakes no
 *    one. That keeps futex calls off the per-message path.
 *  - A task in a run queue is always run eventually by that queue's owner,
 *    so a missed wake-up there costs parallelism, never progress. Work that
 *    only a sleeper could run (the inject queue, a parked scheduler's inbox)
 *    is published with a full fence before the waker looks at the idle list,
 *    and the parker looks at the queues after a full fence of its own.
 */
#include "sched_int.h"

#include "futex.h"
#include "poll.h"

/* ---- the idle scheduler: spinning, then parking ---- */

/* A spinner may steal (loop.c): count s as one unless about half the busy
 * schedulers spin already (see the top). */
void krx_sched_start_spinning(krx_sched *s)
{
	unsigned busy = krx_scheds.n - (unsigned)AO_load(&krx_scheds.npidle);
	if (!s->spinning && 2 * AO_load(&krx_scheds.nspinning) < busy) {
		s->spinning = true;
		AO_fetch_and_add1(&krx_scheds.nspinning);
	}
}

void krx_sched_stop_spinning(krx_sched *s, bool found)
{
	if (!s->spinning)
		return;
	s->spinning = false;
	/* The last spinner to find work hands the watch to another, in case
	 * there is more (Go's rule). */
	if (AO_fetch_and_sub1(&krx_scheds.nspinning) == 1 && found)
		krx_sched_wake_one();
}

static bool work_visible(krx_sched *s)
{
	if (!krx_injectq_empty(&krx_scheds.inject) || !krx_inbox_empty(&s->inbox))
		return true;
	for (unsigned i = 0; i < krx_scheds.n; i++)
		if (krx_runq_len(&krx_scheds.scheds[i].rq) > 0)
			return true;
	return false;
}

void krx_sched_park(krx_sched *s)
{
	uint64_t next = krx_timers_next(&s->timers);
	pthread_mutex_lock(&krx_scheds.idle_lock);
	krx_scheds.idle_list[krx_scheds.nidle_list++] = s->id;
	AO_store(&s->idle, 1);
	AO_fetch_and_add1(&krx_scheds.npidle);
	pthread_mutex_unlock(&krx_scheds.idle_lock);
	/* Full: our place on the idle list is visible before we look at the
	 * queues, and a waker publishes its work before it looks at the list. */
	AO_nop_full();
	/* vm/'s earliest timer, read after the fence (Dekker with
	 * krx_sched_kick): a thread that lowers it after this load sees us
	 * idle and wakes us. Relaxed: the fences order it. */
	uint64_t vm_next = AO_load(&s->vm.timer_next);
	if (vm_next < next)
		next = vm_next;
	if (work_visible(s) || AO_load(&krx_scheds.stopping)) {
		if (!krx_sched_unidle(s))
			goto woken; /* a waker chose us meanwhile */
		return;
	}
	for (;;) {
		/* Acquire: pairs with krx_sched_wake's release. */
		if (AO_int_load_acquire(&s->wake_word))
			goto woken;
		if (AO_load(&krx_scheds.stopping)) {
			if (!krx_sched_unidle(s))
				goto woken;
			return;
		}
		int64_t timeout = -1;
		if (next != UINT64_MAX) {
			uint64_t now = krx_now_ns();
			if (now >= next) {
				if (!krx_sched_unidle(s))
					goto woken;
				return;
			}
			timeout = (int64_t)(next - now);
		}
		int ready = krx_poll_sleep(s, timeout);
		if (ready < 0) {
			krx_futex_wait(&s->wake_word, 0, timeout);
		} else if (ready > 0) {
			/* Descriptors are ready: leave the idle list before their
			 * tasks are queued here, so that no waker picks us for them. */
			bool mine = krx_sched_unidle(s);
			krx_poll_dispatch(s, ready);
			if (!mine)
				goto woken;
			krx_watchdog_poke();
			return;
		}
	}
woken:
	krx_watchdog_poke();
	/* Acquire: pairs with krx_sched_wake's release. A waker that chose
	 * us as a spinner counted us in nspinning already. The waker may store
	 * its word after we stopped waiting; we then see it at our next park
	 * and return at once, which is harmless. */
	while (!AO_int_load_acquire(&s->wake_word))
		krx_cpu_relax();
	if (AO_int_load_acquire(&s->wake_word) == KRX_WOKEN_SPINNING)
		s->spinning = true;
	AO_int_store(&s->wake_word, KRX_WOKEN_NO);
}

/* ---- the waker ---- */

void krx_sched_kick(krx_sched *s)
{
	/* Full: the caller's store to s->vm.timer_next is visible before we
	 * look at s->idle, as krx_sched_park stores idle before it reads
	 * timer_next (Dekker): either it sleeps until the new deadline, or we
	 * find it idle here and wake it, and it looks again. */
	AO_nop_full();
	if (AO_load(&s->idle) && krx_sched_unidle(s))
		krx_sched_wake(s, KRX_WOKEN_PLAIN);
}

void krx_sched_wake_one(void)
{
	/* Relaxed: hints; see the comment at the top for why a stale look
	 * costs at worst parallelism. */
	if (AO_load(&krx_scheds.npidle) == 0 || AO_load(&krx_scheds.nspinning) != 0)
		return;
	krx_sched *s = NULL;
	pthread_mutex_lock(&krx_scheds.idle_lock);
	if (krx_scheds.nidle_list && AO_load(&krx_scheds.nspinning) == 0) {
		s = &krx_scheds.scheds[krx_scheds.idle_list[--krx_scheds.nidle_list]];
		AO_store(&s->idle, 0);
		AO_fetch_and_sub1(&krx_scheds.npidle);
		/* Counted as spinning before it runs, so that concurrent
		 * wakers do not wake a second one for the same work; it learns
		 * so from its wake word. */
		AO_fetch_and_add1(&krx_scheds.nspinning);
	}
	pthread_mutex_unlock(&krx_scheds.idle_lock);
	if (s)
		krx_sched_wake(s, KRX_WOKEN_SPINNING);
}

bool krx_sched_unidle(krx_sched *s)
{
	bool found = false;
	pthread_mutex_lock(&krx_scheds.idle_lock);
	for (unsigned i = 0; i < krx_scheds.nidle_list; i++) {
		if (krx_scheds.idle_list[i] == s->id) {
			krx_scheds.idle_list[i] = krx_scheds.idle_list[--krx_scheds.nidle_list];
			found = true;
			break;
		}
	}
	if (found) {
		AO_store(&s->idle, 0);
		AO_fetch_and_sub1(&krx_scheds.npidle);
	}
	pthread_mutex_unlock(&krx_scheds.idle_lock);
	return found;
}

void krx_sched_wake(krx_sched *s, unsigned why)
{
	/* Release: the woken scheduler sees the work published before. */
	AO_int_store_release(&s->wake_word, why);
	krx_poll_kick(s); /* it may be asleep in epoll, where the futex wake does not reach */
	krx_futex_wake(&s->wake_word, 1);
	krx_task_spend(KRX_WAKE_REDS); /* the running task's, if a task woke it */
}
