/*
 * signal.h - exit signals, links and monitors, and the process extension
 * that holds them.
 *
 * Everything here follows one rule: a process's links, monitors and
 * trap_exit setting are changed only by the process itself, on its own
 * stack, or by its exit path on its scheduler's. Other processes never
 * touch them; they send signals (mailbox.h's kinds) that the owner acts on
 * as it takes them in, in the order they were sent. So none of it needs a
 * lock, and "signals between one pair of processes arrive in the order
 * sent" is the mailbox's own guarantee. A signal that finds its target
 * gone (its mailbox closed) is answered by the sender itself: a link or a
 * monitor then sees noproc at once. A process's exit path answers the link
 * and monitor requests it had not yet taken in, so each request is
 * answered exactly once, by one side or the other.
 */
#ifndef KRX_SIGNAL_H
#define KRX_SIGNAL_H

#include "exit.h"
#include "proc.h"
#include "sets.h"

#define KRX_BACKTRACE 32

typedef struct krx_proc_ext {
	AO_t name[4];          /* 31 chars + NUL, in words: read racily by kr_info */
	krx_pidset links;
	krx_monset monitors;   /* the monitors it holds: ref -> target */
	krx_monset watchers;   /* the monitors on it: ref -> watcher */
	kr_ref call_ref;       /* the reply kr_call waits for; 0: none */
	krx_monset calls;      /* requests taken but not replied to: ref -> caller */
	kr_reason reason;      /* why it ends (kind mirrored in krx_proc.exit_kind) */
	kr_pid ended_by;       /* the exit signal's sender (0: a host thread); -1 if
	                        * it ended itself */
	int nbt;               /* frames in bt: where it crashed, if it did */
	void *bt[KRX_BACKTRACE];
	/* I/O (io.c): the descriptors it owns, and its last failure's figures. */
	int *fds;
	unsigned nfds, capfds;
	int io_errno;          /* kr_last_errno */
	size_t io_written;     /* kr_last_written */
	/* Introspection (kr_info, krill/sup.h), read racily by any thread,
	 * which checks afterwards that the pid is still alive (proc.c). */
	AO_t sup;              /* the supervisor that started it (kr_pid), 0: none;
	                        * written by its spawner before the spawn publishes it */
	AO_t is_sup;           /* nonzero once it runs a supervisor's loop (sup.c) */
	struct krx_prio *prio; /* its priority aliases and marks (priority.h), or
	                        * NULL: it never asked for priority messages */
	struct krx_proxy *proxy; /* the host thread's call it runs (proxy.c), or NULL;
	                        * set before the spawn publishes it */
} krx_proc_ext;

/* p's extension, made if it has none (by p itself, or by its spawner before
 * p is published); NULL if memory is short. */
krx_proc_ext *krx_proc_ext_get(krx_proc *p);
/* p's extension or NULL, from any thread. */
static inline krx_proc_ext *krx_proc_ext_peek(krx_proc *p)
{
	/* Acquire: pairs with the release that published it. */
	return (krx_proc_ext *)AO_load_acquire(&p->ext);
}
/* The process is ending: clear what its extension held (on its exit path). */
void krx_proc_ext_reset(krx_proc_ext *x);

/* Owner: act on signal m, being taken in. KEEP: m stays queued, now a
 * message the process can receive; PRIORITY: the same, as a priority
 * message (priority.h); DROP: the caller frees it. A signal that ends the
 * process sets p->ending (see krx_proc_end_if_told). */
enum krx_take { KRX_TAKE_DROP = 0, KRX_TAKE_KEEP, KRX_TAKE_PRIORITY };
enum krx_take krx_signal_take(krx_proc *p, krx_msg *m);

/* Send a signal of this kind from `from` (0: a host thread) to `to`, with
 * ref, tag and payload. s: the caller's scheduler or NULL. Returns the
 * push's result (KRX_PUSH_DEAD: the target is gone, or memory was too
 * short to make the signal), having woken the target if it waited. */
enum krx_push krx_signal_send(krx_sched *s, kr_pid from, kr_pid to, unsigned kind, kr_ref ref,
                              uint64_t tag, const void *payload, size_t len);

/* call.c: m, a kr_call request, was just received by p (its owner): record
 * it, so that p's end tells the caller if p ends before replying. */
void krx_call_taken(krx_proc *p, krx_msg *m);
/* p replies to the request with ref: true if it was one p had taken. */
bool krx_call_replied(krx_proc *p, kr_ref ref);

/* A fresh reference: a count of s's own << 11 | (s->id + 1), or from a
 * host thread (s NULL) a shared count << 11, its low bits 0. msgtimer.c
 * relies on that layout: it names the timers of host threads with the low
 * values 1,025 to 2,047, which no other reference has. */
#define KRX_REF_LOW_BITS 11
kr_ref krx_ref_new(krx_sched *s);
/* A timer's reference (kr_start_timer) is a fresh one with this bit set,
 * so that kr_reply can tell a timer's message from a request: local
 * references stay below it (2^50 counts) and remote ones have bit 62 set
 * (dist/track.h). */
#define KRX_REF_TIMER ((kr_ref)1 << 61)
static inline bool krx_ref_is_timer(kr_ref ref)
{
	return ((uint64_t)ref >> 61) == 1;
}

/* On p's exit path (the scheduler's stack): close its mailbox, answering
 * the link and monitor requests still in it; then, once its pid is dead,
 * send exit signals to its links, DOWN messages to its watchers, and drop
 * the monitors it held. */
void krx_signal_close(krx_proc *p);
void krx_signal_notify(krx_proc *p, kr_pid pid, const kr_reason *reason);

/* The link and monitor a spawn makes atomically: child is not yet
 * published, parent is the calling process. 0 or KR_ENOMEM. */
int krx_signal_spawn_link(krx_proc *parent, kr_pid parent_pid, krx_proc *child, kr_pid child_pid);
int krx_signal_spawn_monitor(krx_proc *parent, krx_proc *child, kr_pid child_pid, kr_ref *ref);
/* The same for a remote spawner (remote.h's krx_remote_spawn): link_to and
 * watcher are remote pids (0: none). */
int krx_signal_spawn_remote(krx_proc *child, kr_pid link_to, kr_pid watcher, kr_ref ref);

#endif
