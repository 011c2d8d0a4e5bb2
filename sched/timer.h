/*
 * timer.h - a scheduler's timers: receive timeouts and sleeps.
 *
 * Each scheduler owns a binary min-heap of (deadline, task, waiting state)
 * and only its own thread touches it. A timer is never cancelled: when the
 * task is woken by something else first, the wake-up the timer would have
 * to win (a CAS expecting the exact waiting word, or for a receive, the
 * mailbox's mark of that very park) is gone, and it fails harmlessly. So that such stale entries cannot pile up (a server that receives
 * with a long timeout many times a second), the heap drops them whenever it
 * has doubled since it was last cleaned.
 */
#ifndef KRX_TIMER_H
#define KRX_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

typedef struct krx_timer {
	uint64_t deadline; /* CLOCK_MONOTONIC ns */
	krx_task *task;
	AO_t expect;       /* the task's waiting state word */
} krx_timer;

typedef struct krx_timers {
	krx_timer *heap;
	size_t n, cap, clean_at;
} krx_timers;

void krx_timers_init(krx_timers *t);
void krx_timers_free(krx_timers *t);
/* 0, or -1 when out of memory. */
int krx_timers_add(krx_timers *t, uint64_t deadline, krx_task *task, AO_t expect);
/* The earliest deadline, or UINT64_MAX. */
static inline uint64_t krx_timers_next(const krx_timers *t)
{
	return t->n ? t->heap[0].deadline : UINT64_MAX;
}
/* Pop every timer due at now and call expire(task, expect) for each: it
 * tries to win the wake-up, and returns whether it did. Returns how many
 * tasks were woken. */
unsigned krx_timers_fire(krx_timers *t, uint64_t now, bool (*expire)(krx_task *, AO_t));

#endif
