/*
 * msgtimer.h - timers that send a message when they fire: kr_send_after,
 * kr_start_timer, kr_cancel_timer, kr_read_timer (include/krill/timer.h),
 * Erlang's erlang:send_after/3 and friends. The mechanism is msgtimer.c's.
 */
#ifndef KRX_MSGTIMER_H
#define KRX_MSGTIMER_H

#include <stddef.h>
#include <stdint.h>

#include "sched.h"

/* At VM start, before the schedulers run: 0, or KR_ENOMEM. */
int krx_msgtimer_init(unsigned schedulers, size_t max_message);
/* At VM stop, once the schedulers are joined and no host call is inside:
 * free every timer still pending. */
void krx_msgtimer_free(void);
/* The scheduler hook (krx_sched_hooks.timers_due): fire s's due timers. */
void krx_msgtimer_due(krx_sched *s, uint64_t now);
/* Timers pending now, for kr_vm_stats. */
size_t krx_msgtimer_pending(void);

#endif
