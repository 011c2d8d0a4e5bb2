/*
 * poll.h - the I/O poller: tasks parked on file descriptors, and schedulers
 * that wait in epoll instead of on their futex when tasks wait for I/O.
 *
 * sched/ knows descriptors and tasks, never processes: vm/io.c builds the
 * public calls (kr_read, kr_accept, ownership ...) on what is here.
 */
#ifndef KRX_POLL_H
#define KRX_POLL_H

#include <stdbool.h>
#include <stdint.h>

#include "sched.h"

/* VM start (before the scheduler threads) and VM end (after them and after
 * every process is gone). 0 or KR_ENOMEM. */
int krx_poll_start(unsigned schedulers);
void krx_poll_free(void);

/*
 * Park the running task until fd is ready for events (KR_READABLE,
 * KR_WRITABLE), until deadline (CLOCK_MONOTONIC ns, 0 = none), or until it
 * is interrupted. Returns the events that fired (> 0, KR_HANGUP included
 * when the peer hung up or fd has an error); 0 when interrupted (*cancel
 * was nonzero when it came to park, or krx_poll_interrupt woke it);
 * KR_ETIMEDOUT; KR_EIO with *err set (epoll refused fd, or kr_close closed
 * it meanwhile: EBADF); KR_EINVAL for an fd past the table; KR_ENOMEM.
 */
int krx_poll_wait(int fd, unsigned events, uint64_t deadline, const AO_t *cancel, int *err);

/* Wake t if it is parked in krx_poll_wait (it returns 0). The caller has
 * just set the cancel word t's wait was given (release); the full fence
 * here pairs with the one the parking side makes after publishing its
 * waiting word, so either the wait sees the cancel word or we see it
 * waiting. */
void krx_poll_interrupt(krx_task *t);

/*
 * A notification request: once fd is ready for events (or is closed with
 * krx_poll_close), call notify(owner, fd, fired, err) from whichever thread
 * finds it (a scheduler's loop, or krx_poll_close's caller), without locks
 * held, and forget the request. fired as krx_poll_wait returns it; err
 * EBADF (fired 0) when fd was closed. One request per owner and fd: asking
 * again changes its events. A regular file is ready at once (notify is
 * called before this returns). 0; KR_EIO with *err (epoll refused fd);
 * KR_EINVAL for an fd past the table; KR_ENOMEM.
 */
typedef void krx_poll_notify_fn(uint64_t owner, int fd, unsigned fired, int err);
int krx_poll_notify(int fd, unsigned events, uint64_t owner, krx_poll_notify_fn *notify, int *err);
/* Withdraw owner's request on fd: true if there was one (notify will not
 * be called for it), false if none (it fired already, or never was). */
bool krx_poll_notify_cancel(int fd, uint64_t owner);

/* Close fd, first waking every task waiting on it (they return KR_EIO,
 * EBADF) and every notification request on it (err EBADF), and dropping
 * it from epoll. Returns close(2)'s result; errno is
 * close's. */
int krx_poll_close(int fd);

/* A word per descriptor for vm/ (who owns it), zero until vm/ sets it;
 * NULL for an fd past the table or when memory is short. Type-stable until
 * krx_poll_free. */
AO_t *krx_poll_fd_word(int fd);

/* Tasks parked in krx_poll_wait now, notification requests pending, and
 * tasks and requests the poller has woken. */
size_t krx_poll_waiting(void);
size_t krx_poll_notes(void);
uint64_t krx_poll_wakeups(void);

/* ---- for sched.c ---- */

/* A scheduler with nothing to run, on the idle list: wait in epoll for at
 * most timeout_ns (< 0: no limit), if tasks wait for I/O and no other
 * scheduler waits there already. -1: not done (sleep on the futex
 * instead); otherwise the events found (0: timed out or woken), which the
 * caller hands to krx_poll_dispatch once it has left the idle list. */
int krx_poll_sleep(krx_sched *s, int64_t timeout_ns);
/* Wake the tasks whose descriptors the last n events of s's poll name;
 * returns how many were woken. */
unsigned krx_poll_dispatch(krx_sched *s, int n);
/* A busy scheduler's look: if tasks wait for I/O and no scheduler sleeps
 * in epoll, poll without waiting and wake the tasks found ready. Returns
 * how many were woken. */
unsigned krx_poll_now(krx_sched *s);
/* wake_sched's part: s has a wake word set; if s sleeps in epoll, kick it
 * out (the futex wake does not reach it there). */
void krx_poll_kick(krx_sched *s);

#endif
