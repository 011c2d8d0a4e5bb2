/*
 * task.h - what the scheduler knows of a process: a coroutine, a stack, and
 * one atomic state word through which every wake-up passes.
 *
 * The state word is (seq << 4) | flags | status. A task that parks bumps seq,
 * so a wake-up aimed at an earlier park (a stale timer) cannot match. Every
 * transition out of a waiting status is a CAS on the exact waiting word, so
 * when a message, a timeout and a helper thread race to wake one park,
 * exactly one wins: a wake-up is never lost and never doubled.
 *
 *   RUNNING --park--> WAIT_* --CAS by one waker--> RUNNABLE --scheduler--> RUNNING
 *
 * Only the task itself (or its scheduler, on its behalf) moves it out of
 * RUNNING; wakers only ever CAS WAIT_* -> RUNNABLE.
 *
 * A host task (bound == KRX_BOUND_HOST, host.c) is a host thread's mailbox:
 * it never runs on a scheduler. Its thread parks and wakes through the same
 * word, on a futex instead of a switch.
 */
#ifndef KRX_TASK_H
#define KRX_TASK_H

#include <atomic_ops.h>
#include <stdint.h>

#include "ctx.h"
#include "stack.h"

enum krx_status {
	KRX_RUNNING = 0,
	KRX_RUNNABLE = 1,
	KRX_WAIT_RECV = 2,  /* a wait whose wake-up is won outside the state word:
	                     * vm/'s receive, on its mailbox word (the sender that
	                     * clears the mark, or the recv_timeout hook). Its
	                     * waker stores RUNNABLE plainly, and its commit is
	                     * the one that may be deferred (handoff.c) */
	KRX_WAIT_OTHER = 3, /* in a sleep or kr_blocking: only its own waker */
	KRX_DONE = 4,
	KRX_WAIT_IO = 5     /* on a descriptor (poll.c): its poller, its timer, an
	                     * interrupt or kr_close wakes it */
};

#define KRX_ST_STATUS 0x7u
#define KRX_ST_TIMEDOUT 0x8u /* set by the timer that won the wake-up */
#define KRX_ST_SEQ_ONE 0x10u

static inline unsigned krx_st_status(AO_t st)
{
	return (unsigned)(st & KRX_ST_STATUS);
}

struct krx_sched;

typedef struct krx_task {
	krx_ctx ctx;
	AO_t state;
	struct krx_task *next;   /* link in the global queue or an inbox */
	krx_stack *stack;        /* NULL until it first runs, and while it hibernates */
	struct krx_stack_pool *pool;
	struct krx_sched *bound; /* runs only there, or NULL, or KRX_BOUND_HOST */
	AO_t reductions;         /* spent in total (written by its scheduler) */
	unsigned last_sched;     /* index + 1 of where it runs or last ran; 0 = never */
	unsigned guard;          /* its stack's krx_guard_kind + 1; 0 before it runs */
	unsigned io_fd;          /* fd + 1 while it waits on fd (poll.c); else 0 */
	union {
		uint32_t inject_due_us; /* in the inject queue: overdue after this (runq.c); 0 = never */
		unsigned host_asleep;   /* a host task (never queued): 1 while its thread may
		                         * sleep on the futex, so its waker makes the call */
	};
} krx_task;

/* bound's value for a host task: a host thread's mailbox, never run by a
 * scheduler; a waker wakes its thread (host.c). Every path that queues a
 * task already turns aside for a task bound elsewhere, so telling a host
 * task apart costs the process paths nothing. */
extern char krx_host_bound_mark __attribute__((visibility("hidden")));
#define KRX_BOUND_HOST ((struct krx_sched *)(void *)&krx_host_bound_mark)

#endif
