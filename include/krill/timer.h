/*
 * krill/timer.h - timers that send a message, as Erlang's erlang:send_after/3,
 * erlang:start_timer/3, erlang:cancel_timer/1 and erlang:read_timer/1.
 * Included by krill.h.
 *
 * A timer sends its message once, after at least ms milliseconds, "as if
 * sent by the caller" at that time: sender is the pid of the process that
 * started it (0 from a host thread), and the payload is a copy taken when
 * it starts. Timers count in whole milliseconds (as the BEAM's): a timer
 * fires at the first millisecond tick at or after its deadline, so up to a
 * millisecond late besides the time its scheduler takes to get to it (a
 * scheduler busy in a process that does not yield delays the timers it
 * holds, as it delays everything else). Each scheduler fires the timers it
 * holds in the order of their ticks, and those due at one tick in the order
 * they were started: a process's timers go to the scheduler it runs on
 * when it starts them, a host thread's always to one scheduler.
 *
 * A timer to a pid is cancelled when that process ends (Erlang's rule): it
 * never reaches a later process, kr_cancel_timer and kr_read_timer then
 * return KR_ENOTIMER, and its message is counted as a dead letter
 * (kr_vm_stats), as kr_send's to a process that is gone would be. Its
 * memory goes at its deadline, or sooner if kr_cancel_timer or
 * kr_read_timer is called on it. A timer to a process already gone when it
 * starts is such a timer from the start: its reference is returned, no
 * memory is kept, and the dead letter is counted then.
 *
 * A timer to a registered name looks the name up when it fires (Erlang's
 * rule for an atom destination): a process registered after the start gets
 * it, and if no process has the name then, the message is dropped and
 * counted as a dead letter. Such a timer is not cancelled by anyone's end.
 *
 * Pids of other nodes are refused with KR_EINVAL, as Erlang refuses them
 * (badarg): send to the remote process from a local one when the timer
 * fires (kr_send takes remote pids).
 *
 * Timers pending when the VM stops are freed, unfired. kr_vm_stats counts
 * the pending ones (timers), those whose process has ended among them
 * until their memory goes.
 *
 * Memory and time: a pending timer takes a 72-byte block with its payload
 * (and a named one's name) and a share of a table, about 89 bytes with an
 * 8-byte payload (krbench timers measures it); starting, cancelling and
 * firing one each take constant time, however many are pending.
 */
#ifndef KRILL_TIMER_H
#define KRILL_TIMER_H

#include "../krill.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of this header (krill.h's are from -1 down; these start
 * clear of them). */
enum kr_timer_error {
	KR_ENOTIMER = -40 /* no such timer: it has fired, was cancelled, its process
	                   * ended, or the reference never named one (Erlang's false) */
};

/* The longest a timer may run: 2^63 nanoseconds in milliseconds (292
 * years), the BEAM's limit too. */
#define KR_TIMER_MAX_MS 9223372036854L

/*
 * After ms milliseconds (0 to KR_TIMER_MAX_MS; 0 sends at the next tick),
 * deliver (tag, a copy of len bytes at data) to pid, from the caller.
 * Returns the timer's reference (> 0; unique, as every kr_ref), or
 * KR_EINVAL (ms out of range, pid not a pid of this node, data NULL with
 * len > 0, a tag at or above KR_TAG_SUP), KR_ELIMIT (len above
 * kr_config.max_message, or 4 GiB), KR_ENOMEM, KR_ESTOPPED. A pid that is
 * well formed but gone is not an error (see the top). Safe from processes
 * (one reduction) and host threads.
 */
KR_API kr_ref kr_send_after(long ms, kr_pid pid, uint64_t tag, const void *data, size_t len);

/*
 * As kr_send_after, but the message carries the timer's reference in
 * kr_msg.ref (Erlang's {timeout, TRef, Msg}), so that a receiver can tell
 * a timer it has since cancelled or restarted from the current one
 * (kr_recv_match on ref). It is not a kr_call request: do not kr_reply to
 * it.
 */
KR_API kr_ref kr_start_timer(long ms, kr_pid pid, uint64_t tag, const void *data, size_t len);

/* kr_send_after and kr_start_timer to the process registered as name when
 * the timer fires (see the top); KR_EINVAL for a bad name (empty, NULL, or
 * longer than KR_NAME_MAX), else as they. */
KR_API kr_ref kr_send_after_named(long ms, const char *name, uint64_t tag, const void *data,
                                  size_t len);
KR_API kr_ref kr_start_timer_named(long ms, const char *name, uint64_t tag, const void *data,
                                   size_t len);

/*
 * Cancel the timer ref names, whoever started it: it will not fire. Returns
 * the milliseconds that were left (>= 0; 0 if it was due and about to
 * fire), or KR_ENOTIMER if there was no pending timer (it fired: its
 * message may be in the mailbox; it was cancelled before; its process
 * ended; ref is not a timer's), KR_EINVAL for ref <= 0, KR_ESTOPPED.
 * Exactly one of a cancel and the firing wins: when this returns >= 0 the
 * message is never delivered, and when it returns KR_ENOTIMER for a timer
 * that had fired, it is delivered (or counted as a dead letter). Safe from
 * processes (one reduction) and host threads.
 */
KR_API long kr_cancel_timer(kr_ref ref);

/* The milliseconds left before the timer ref names fires (>= 0), or
 * KR_ENOTIMER, KR_EINVAL, KR_ESTOPPED, as kr_cancel_timer. Changes nothing
 * (but frees a timer whose process has ended). Safe from any thread. */
KR_API long kr_read_timer(kr_ref ref);

#ifdef __cplusplus
}
#endif

#endif
