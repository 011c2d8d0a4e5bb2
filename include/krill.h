/*
 * krill.h - the one public header of krill, an Erlang-style process VM for C.
 *
 * Everything a host program may call is declared here, with the `kr_` prefix
 * for functions and types and `KR_` for macros and constants. Calls that can
 * fail return 0 (or a non-negative value) on success and a negative KR_E...
 * code on failure; kr_strerror() names the code. No call aborts the program
 * on bad input from its caller. Three calls end the calling process instead
 * (KR_EXIT_ERROR, as Erlang crashes a caller on a bad argument), because
 * going on would corrupt memory: kr_msg_free, kr_free and kr_realloc of a
 * block that is not a live one of the caller's (freed twice, say).
 */
#ifndef KRILL_H
#define KRILL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KR_VERSION_MAJOR 0
#define KR_VERSION_MINOR 1
#define KR_VERSION_PATCH 0

#if defined(__GNUC__)
#define KR_API __attribute__((visibility("default")))
#else
#define KR_API
#endif

/* Error codes: every failing call returns one of these (all negative). */
enum kr_error {
	KR_OK = 0,
	KR_EINVAL = -1,    /* an argument is out of range or malformed */
	KR_ENOMEM = -2,    /* memory or address space is exhausted */
	KR_ENOPROC = -3,   /* no such process (never existed, or has exited) */
	KR_ETIMEDOUT = -4, /* a receive, call or wait timed out */
	KR_ENOTPROC = -5,  /* the call needs a krill process, and the caller is a host thread */
	KR_ESTOPPED = -6,  /* the VM is not running */
	KR_ELIMIT = -7,    /* a configured limit (processes, message size) was reached */
	KR_EEXIST = -8,    /* the name or object already exists */
	KR_ENOSYS = -9,    /* not supported on this system */
	KR_ESTART = -10    /* a process that had to start (a supervisor's child) did not */
};

/* A short, constant English description of a KR_E... code (or "unknown error").
 * Safe from any thread. */
KR_API const char *kr_strerror(int err);

/* The library's version as "MAJOR.MINOR.PATCH". Safe from any thread. */
KR_API const char *kr_version(void);

/* ------------------------------------------------------------------------ */
/* The VM                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A process id: positive for a process. A table index plus that slot's
 * generation; a freed slot is reused only after 1,024 other processes have
 * ended, so a pid comes back only after some 2^34 process ends (hours of
 * the fastest spawning), and a message or signal to a dead pid never
 * reaches a later process. Functions that return a pid return a negative
 * KR_E... code on failure.
 */
typedef int64_t kr_pid;

/*
 * Timeouts. Every call that takes one (kr_recv, kr_recv_tag, kr_recv_match,
 * kr_call, kr_sleep, and kr_wait_fd, kr_read, kr_write, kr_accept,
 * kr_connect of krill/io.h) follows one rule: it is in milliseconds;
 * KR_INFINITY waits for ever; 0 does not wait (a receive looks at what is
 * there, kr_sleep yields); any other negative value is KR_EINVAL, returned
 * at once, before the call does anything else.
 */
#define KR_INFINITY (-1L)

/*
 * Report levels, as OTP's logger's, most severe first. A report is made
 * when it is as severe as the VM's level or more (kr_config.log_level,
 * kr_log_set_level), which is notice unless set, as OTP's primary level:
 *   error    a crash report (a process that ended itself abnormally:
 *            kr_crash, KR_ASSERT, a fault, the heap limit ...), a
 *            supervisor's reports (a child terminated, failed to start, did
 *            not stop cleanly; the restart intensity reached)
 *   warning  the watchdog's (a process ran too long without yielding)
 *   info     a supervisor's progress reports (a child started or restarted)
 *   debug    a process ended by an exit signal from another (killed, or a
 *            linked process's abnormal end): OTP makes no report at all
 * docs/guide.md, "Logging", has the whole list and where krill differs.
 */
enum kr_log_level {
	KR_LOG_DEFAULT = 0, /* as a setting: notice */
	KR_LOG_NONE,        /* as a setting: no reports at all (OTP's none) */
	KR_LOG_EMERGENCY,
	KR_LOG_ALERT,
	KR_LOG_CRITICAL,
	KR_LOG_ERROR,
	KR_LOG_WARNING,
	KR_LOG_NOTICE,
	KR_LOG_INFO,
	KR_LOG_DEBUG,
	KR_LOG_ALL = KR_LOG_DEBUG /* as a setting: every report (OTP's all) */
};

/* Where krill writes reports (kr_config.log): one call per report made,
 * with the report's text; a crash report's backtrace follows its first
 * line, one frame a line, in the same string. Called from scheduler
 * threads and the watchdog's, several at once: it must be thread-safe, and
 * must not call krill. */
typedef void kr_log_fn(const char *line, void *ctx);
/* The same with the report's level (kr_config.log_handler): an enum
 * kr_log_level from KR_LOG_EMERGENCY to KR_LOG_DEBUG. */
typedef void kr_log_handler_fn(int level, const char *line, void *ctx);

/* VM settings. A zeroed struct (or NULL) means every default. */
typedef struct kr_config {
	unsigned schedulers;   /* scheduler threads; 0 = online CPUs */
	size_t max_procs;      /* live processes at most; 0 = 1,048,576 (like erl +P);
	                        * at most 2^26 - 64 * schedulers */
	size_t stack_size;     /* default stack per process; 0 = 64 KiB; 16 KiB to 1 GiB */
	int pin;               /* nonzero: pin scheduler i to CPU i */
	unsigned watchdog_ms;  /* report a process that runs this long without
	                        * yielding; 0 = 10 ms */
	size_t max_message;    /* largest payload kr_send copies; 0 = 64 MiB */
	kr_log_fn *log;        /* reports; NULL (and no log_handler) = one line
	                        * each on stderr */
	void *log_ctx;         /* the last argument of log or log_handler */
	int no_reports;        /* deprecated: nonzero means log_level KR_LOG_NONE */
	int log_level;         /* enum kr_log_level: reports less severe are
	                        * not made; 0 = KR_LOG_NOTICE */
	kr_log_handler_fn *log_handler; /* reports with their level, instead of
	                        * log (setting both is KR_EINVAL) */
	int log_burst;         /* reports at most in one second; past it they are
	                        * dropped, and a report says how many; 0 = 500
	                        * (OTP's default handler's burst limit); negative =
	                        * no limit */
} kr_config;

/* Start the VM: its scheduler threads, stack pool and process table.
 * KR_EEXIST if a VM is running, KR_EINVAL for bad settings (more than 1,024
 * schedulers, max_procs past its ceiling, stack_size out of range,
 * log_level not an enum kr_log_level, both log and log_handler set),
 * KR_ENOMEM. Call from a host thread. */
KR_API int kr_vm_start(const kr_config *cfg);

/* Stop the VM: every process is stopped where it is (at its next call into
 * krill), the threads are joined and all memory krill holds is freed; the VM
 * may then be started again. A process that never calls into krill cannot be
 * stopped. KR_ESTOPPED if no VM runs; KR_EINVAL if called from a process
 * (it would wait for itself). */
KR_API int kr_vm_stop(void);

typedef void kr_fn(void *arg);

/* Start a VM, run fn(arg) as its first process, and stop the VM when that
 * process exits. Returns the root's exit status: 0 when it ended normally,
 * else its exit reason's kind (a KR_EXIT_... value, positive); or a negative
 * KR_E... code if the VM could not start (KR_EINVAL for a NULL fn, and
 * kr_vm_start's). */
KR_API int kr_main(const kr_config *cfg, kr_fn *fn, void *arg);

/* Counters of the whole VM, for tests and monitoring. */
typedef struct kr_vm_stats {
	size_t schedulers;
	size_t procs_alive;     /* processes that have not finished exiting */
	uint64_t procs_spawned; /* since start */
	uint64_t dead_letters;  /* messages sent to processes that were gone */
	size_t stacks_in_use;   /* stacks held by processes */
	const char *stack_protection; /* "guard_install", "mprotect" or "canary" */
	size_t hibernating;     /* processes waiting without a stack (kr_hibernate) */
	size_t stacks_warm;     /* free stacks that keep their memory, so that the next
	                         * process to run takes no page fault (besides a few
	                         * cached per scheduler) */
	size_t stacks_trimmed;  /* free stacks whose memory went back to the system: those
	                         * no process took for a second, beyond 256 (after a
	                         * burst of processes ended or hibernated) */
	size_t timers;          /* timers pending (krill/timer.h), and those whose
	                         * process has ended until their memory goes */
	uint64_t messages_sent; /* since start: user messages, kr_call requests and
	                         * replies, from processes and host threads (dead
	                         * letters too) */
	uint64_t restarts;      /* since start: children restarted by supervisors */
	size_t message_bytes;   /* message blocks krill holds from the allocator:
	                         * queued, received and not yet freed (these are in
	                         * their receivers' heap_bytes too), and cached for
	                         * reuse (up to 128 KiB per scheduler) */
	uint64_t busy_ns;       /* since start, summed over the schedulers: time not
	                         * spent idle (spinning or asleep for want of work) */
	uint64_t uptime_ns;     /* since the VM started */
} kr_vm_stats;

/* Fill *out. KR_EINVAL (out NULL), KR_ESTOPPED if no VM runs. Safe from
 * any thread. */
KR_API int kr_vm_stats_get(kr_vm_stats *out);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */
/* ------------------------------------------------------------------------ */

/* Set the VM's report level (logger:set_primary_config(level, L)): reports
 * less severe are not made from now on. KR_LOG_DEFAULT is notice. Returns the
 * level it replaces (positive), KR_EINVAL for a level that is not an enum
 * kr_log_level, KR_ESTOPPED if no VM runs. Safe from any thread; a report
 * being made on another thread at that moment may still go out. */
KR_API int kr_log_set_level(int level);
/* The VM's report level (KR_LOG_NONE to KR_LOG_DEBUG), or KR_ESTOPPED.
 * Safe from any thread. */
KR_API int kr_log_get_level(void);
/* Make a report of one's own at level (logger:log/3), formatted as printf:
 * made as krill's are, if it is as severe as the VM's level or more, through
 * kr_config.log (or log_handler, or stderr), and counted in the burst
 * limit. 0 (also when the level or the burst limit leaves it out),
 * KR_EINVAL (fmt NULL, or level not one from KR_LOG_EMERGENCY to
 * KR_LOG_DEBUG), KR_ESTOPPED. Safe from any thread. */
KR_API int kr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "emergency" ... "debug", "none" for KR_LOG_NONE, "unknown" for anything
 * else (KR_LOG_DEFAULT too). Safe from any thread. */
KR_API const char *kr_log_level_name(int level);

/* ------------------------------------------------------------------------ */
/* Processes                                                                 */
/* ------------------------------------------------------------------------ */

typedef int64_t kr_ref; /* a monitor or call reference: positive, unique in a VM */

typedef struct kr_spawn_opts {
	size_t stack_size;       /* 0 = the VM's default; 16 KiB to 1 GiB (at most 8
	                          * sizes besides the default in one VM: a ninth
	                          * is KR_ELIMIT) */
	size_t max_heap;         /* bytes of kr_alloc heap; 0 = unlimited; past it the
	                          * process exits with KR_EXIT_HEAP_LIMIT */
	const char *name;        /* a label for reports (copied); may be NULL */
	unsigned bind_scheduler; /* 0 = may run anywhere; k = only on scheduler k-1 */
	int link;                /* nonzero: link the caller and the new process,
	                          * atomically with the spawn (spawn_link) */
	kr_ref *monitor;         /* non-NULL: the caller monitors the new process,
	                          * atomically with the spawn; the ref is stored here */
	size_t max_mailbox;      /* messages; 0 = unlimited, at most KR_MAILBOX_MAX
	                          * (more is KR_EINVAL). A message that finds this many
	                          * already queued is refused: see mailbox_policy */
	int mailbox_policy;      /* what a refused message does: KR_MAILBOX_KILL (0)
	                          * or KR_MAILBOX_DROP */
} kr_spawn_opts;

/*
 * The mailbox limit (kr_spawn_opts.max_mailbox; docs/guide.md "Overload").
 * Only ordinary messages and kr_call requests are refused; signals (exit
 * signals, DOWN messages, replies to the process's own kr_call, file
 * descriptors) always get in, and count in the length they find. A refused
 * message is a dead letter (kr_vm_stats.dead_letters): kr_send still returns
 * 0, as a send to a dead process does; kr_call returns KR_ENOPROC at once.
 * The count is read as messages arrive while others are in flight, so the
 * mailbox may hold up to max_mailbox plus, for each other scheduler, one
 * batch of its outbox (64 messages) plus the signals.
 *  KR_MAILBOX_KILL: the first refused message also ends the process with
 *    KR_EXIT_MAILBOX_LIMIT (untrappable, reported at error level, as
 *    max_heap's heap_limit); messages after it are refused too.
 *  KR_MAILBOX_DROP: the process goes on; messages are refused while its
 *    mailbox is full and accepted again once it has received some.
 */
#define KR_MAILBOX_KILL 0
#define KR_MAILBOX_DROP 1
#define KR_MAILBOX_MAX (((size_t)1 << 30) - 1)

/* Create a process running fn(arg); it runs when a scheduler picks it up.
 * Returns its pid, or KR_EINVAL (fn NULL), KR_ESTOPPED, KR_ELIMIT
 * (max_procs reached), KR_ENOMEM. Safe from processes and host threads. */
KR_API kr_pid kr_spawn(kr_fn *fn, void *arg);
/* kr_spawn with options (NULL = defaults); KR_EINVAL for a bad option.
 * From a host thread, link and monitor tie the new process to the thread's
 * mailbox (made then: see kr_host_release). */
KR_API kr_pid kr_spawn_opt(kr_fn *fn, void *arg, const kr_spawn_opts *opts);

/* The calling process's pid. From a host thread, the pid of its mailbox,
 * made on first use (kr_host_release), or KR_ESTOPPED (no VM), KR_ELIMIT,
 * KR_ENOMEM (no mailbox could be made). */
KR_API kr_pid kr_self(void);

/* Let other processes run; returns 0 when this one is scheduled again.
 * From a host thread: sched_yield(), 0. */
KR_API int kr_yield(void);

/* Sleep at least ms milliseconds, as Erlang's `receive after ms`: messages
 * that arrive stay queued for later, and an exit signal ends the sleeper
 * as it would any process. KR_INFINITY sleeps until an exit signal ends the
 * process (timer:sleep(infinity)); 0 yields. 0, or KR_EINVAL (a negative
 * ms other than KR_INFINITY). From a host thread the thread sleeps (no VM
 * needed; messages to its mailbox stay queued), and KR_INFINITY, which
 * would never return there, is KR_EINVAL. */
KR_API int kr_sleep(long ms);

/* 1 if pid names a live process, 0 if not. Safe from any thread. Another
 * node's pid gives 0: whether it lives cannot be known here without asking
 * its node (Erlang's is_process_alive/1 refuses it with badarg); monitor it
 * instead. */
KR_API int kr_is_alive(kr_pid pid);

enum kr_status {
	KR_RUNNING = 1, /* on a scheduler now */
	KR_RUNNABLE,    /* waiting for a scheduler */
	KR_WAITING,     /* in a receive, a sleep, kr_blocking or an I/O wait */
	KR_EXITING
};

typedef struct kr_proc_info {
	int status;                   /* enum kr_status */
	size_t mailbox_len;           /* messages not yet received */
	size_t heap_bytes;            /* bytes held on its heap (received messages included) */
	uint64_t reductions;          /* work done so far */
	int scheduler;                /* the scheduler it runs or last ran on (0-based), -1 if none yet */
	const char *stack_protection; /* "guard_install", "mprotect" or "canary"; "none" while it
	                               * holds no stack (before it first runs, hibernating) */
	char name[32];                /* from kr_spawn_opts (truncated), or "" */
	int hibernating;              /* 1: waiting in kr_hibernate, without a stack */
	kr_pid supervisor;            /* the supervisor that started it (krill/sup.h; OTP's
	                               * first '$ancestors'), 0 if none started it */
	char registered_name[64];     /* its registered name (kr_register; KR_NAME_MAX + 1
	                               * bytes), or "" */
} kr_proc_info;

/* Fill *out for a live process. KR_ENOPROC if it is gone, KR_EINVAL (out
 * NULL), KR_ESTOPPED. Safe from any thread; the figures may be stale by the
 * time they are read. It does not ask the process (nothing waits): its
 * links and monitors, which only it knows, are kr_info_links' and
 * kr_info_monitors'. */
KR_API int kr_info(kr_pid pid, kr_proc_info *out);

/*
 * The live processes of this node, as erlang:processes/0: their pids go
 * into out, the first max of them (out may be NULL if max is 0), in no
 * particular order. Returns how many there are (more than max if out was
 * too small), or KR_EINVAL, KR_ESTOPPED. Every process that exists
 * throughout the call is listed (an exiting one too, until its exit path
 * has told the others: OTP lists exiting processes as well), and none
 * that had ended before it began; one spawned or ending during the call
 * may be listed or not. It walks the process table without stopping
 * anything: from a process it costs a reduction per 16 slots and may
 * yield. Safe from any thread.
 */
KR_API int kr_processes(kr_pid *out, size_t max);

/*
 * What a process's links and monitors are, as process_info/2's links,
 * monitors and monitored_by: the pids it is linked to (kr_info_links),
 * those it monitors (kr_info_monitors: one entry per monitor, so a pid
 * monitored twice is there twice), and those monitoring it
 * (kr_info_monitored_by, one per monitor too). Another node's pids are
 * listed as they are. The first max go into out (NULL if max is 0), in no
 * particular order; returns how many there are, or an error.
 *
 * Only the process knows these, and changes them as it takes signals in,
 * so the call asks it, with a signal it answers when it next takes its
 * mailbox in (as process_info/2 on another process is a signal the target
 * handles): the answer comes after everything the caller sent it before
 * (a kr_link just made is in it). A process answers when it waits in a
 * receive, a kr_sleep or a kr_call, when parked on a descriptor (kr_read,
 * kr_accept ...: it answers and goes on waiting), when hibernating (it
 * answers and sleeps on, without running its function), and when busy, at
 * its next yield or KR_CHECK that ends its budget. It cannot answer while
 * in kr_blocking (it does when fn returns) or in a loop that never calls
 * krill: the call then waits up to timeout_ms (the rule at KR_INFINITY)
 * and returns KR_ETIMEDOUT. The caller's own lists are read at once. From
 * a process the call costs 2 reductions, as kr_call.
 *
 * KR_ENOPROC: pid is not a live process (or ends before answering);
 * KR_EINVAL: out NULL with max > 0, a bad timeout, another node's pid
 * (process_info/2 refuses one too); KR_ETIMEDOUT; KR_ENOMEM; KR_ESTOPPED.
 * Safe from any thread (a host thread's call runs in a short-lived helper
 * process, about a spawn and a futex wake more).
 */
KR_API int kr_info_links(kr_pid pid, kr_pid *out, size_t max, long timeout_ms);
KR_API int kr_info_monitors(kr_pid pid, kr_pid *out, size_t max, long timeout_ms);
KR_API int kr_info_monitored_by(kr_pid pid, kr_pid *out, size_t max, long timeout_ms);

/*
 * Reductions. Each time a process is scheduled it gets a budget of 4,000
 * reductions (the BEAM's figure), and krill calls spend them: kr_send,
 * kr_send_bin, kr_send_named, kr_reply, a receive (kr_recv, kr_recv_tag,
 * kr_recv_match; kr_call is a send and a receive: 2), kr_link, kr_unlink,
 * kr_monitor, kr_demonitor, kr_exit_sig, kr_info, kr_fd_own, kr_fd_give,
 * the timer calls but kr_read_timer (krill/timer.h) and KR_CHECK cost 1;
 * kr_spawn and the I/O calls kr_wait_fd, kr_read,
 * kr_write, kr_accept, kr_connect cost 10. The call that spends the last
 * one yields. So a process yields every 4,000 sends, receives or
 * KR_CHECKs, sooner if it waits (a receive that waits, kr_sleep,
 * kr_blocking and kr_yield end the run; the next starts with a fresh
 * budget). Three rules shorten a run further: a send to a process with
 * more than 1,024 messages queued costs 64 more for each 1,024 (at most
 * 4,000), so that a sender cannot outrun its receiver for ever; a process
 * that has just woken another while a scheduler idles keeps at most 200, so
 * that the woken one soon runs (or is taken by the idle scheduler); and a
 * call that has to wake a sleeping thread (a parked scheduler, a host
 * thread asleep in a receive) costs 200 more, for the microseconds its
 * system call takes. The other calls (kr_alloc, kr_free, kr_msg_free,
 * kr_self, kr_register ...) cost nothing.
 *
 * A loop that makes no krill calls should call KR_CHECK() now and then: it
 * costs a decrement and a branch, and yields when the budget is spent.
 * Harmless on a host thread. The budget counts calls, not time: a loop
 * that makes system calls of its own (a write to a pipe) should make them
 * through krill (kr_write, krill/io.h, costs 10) or call KR_CHECK() often,
 * or the watchdog reports it.
 */
KR_API extern long kr__tls_offset; /* internal, for KR_CHECK */
/* Internal, for KR_CHECK: the budget is spent; yield (a process) or reset it
 * (a host thread, which gets KR_ENOTPROC). */
KR_API int kr__budget_spent(void);

static inline long *kr__reductions_left(void)
{
	char *tp;
#if defined(__x86_64__)
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
	__asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#else
#error "krill supports x86-64 and aarch64"
#endif
	/* Read afresh every time: after a yield this process may run on another
	 * thread, and a cached thread-local address would be the old thread's. */
	return (long *)(tp + kr__tls_offset);
}

#define KR_CHECK()                                                   \
	do {                                                         \
		if (__builtin_expect(--*kr__reductions_left() <= 0, 0)) \
			kr__budget_spent();                          \
	} while (0)

/* ------------------------------------------------------------------------ */
/* Exits: reasons, crashes, exit signals                                     */
/* ------------------------------------------------------------------------ */

/*
 * Why a process ended. As in Erlang, `normal` and `shutdown` are the
 * quiet ends; every other reason is abnormal: it is reported (see
 * kr_log_fn) and propagates over links.
 */
enum kr_exit_kind {
	KR_EXIT_NORMAL = 0,     /* returned from its function, or kr_exit(KR_EXIT_NORMAL) */
	KR_EXIT_SHUTDOWN,       /* asked to stop (by its supervisor, usually) */
	KR_EXIT_KILLED,         /* killed by the untrappable KR_EXIT_KILL */
	KR_EXIT_NOPROC,         /* the other process did not exist (links, monitors) */
	KR_EXIT_ERROR,          /* kr_crash, KR_ASSERT, kr_exit(KR_EXIT_ERROR) */
	KR_EXIT_SEGFAULT,       /* a bad memory access in the process's code */
	KR_EXIT_BUS_ERROR,
	KR_EXIT_FPE,            /* arithmetic fault: integer division by zero */
	KR_EXIT_ILLEGAL,        /* illegal instruction (a trap, __builtin_trap) */
	KR_EXIT_STACK_OVERFLOW, /* ran into the guard under its stack */
	KR_EXIT_HEAP_LIMIT,     /* kr_alloc past kr_spawn_opts.max_heap */
	KR_EXIT_MAILBOX_LIMIT,  /* a message would pass kr_spawn_opts.max_mailbox
	                         * (policy KR_MAILBOX_KILL): "mailbox_limit" */
	KR_EXIT_NOCONNECTION,   /* the other process's node could not be reached, or its
	                         * connection was lost (links, monitors; krill/dist.h) */
	KR_EXIT_KILL            /* only sent (kr_exit_sig): ends the target, trapping
	                         * or not, with KR_EXIT_KILLED */
};

typedef struct kr_reason {
	int kind;        /* enum kr_exit_kind */
	char text[116];  /* details ("assertion n > 0 failed at f.c:12", a fault's
	                  * address, a kr_crash message); may be empty */
} kr_reason;

/* "normal", "shutdown", "killed", "noproc", "error", "segfault", ... */
KR_API const char *kr_exit_kind_name(int kind);
/* Write "kind" or "kind: text" into buf (truncated, always terminated);
 * returns buf. */
KR_API char *kr_reason_format(const kr_reason *r, char *buf, size_t len);

/* End the calling process now with this reason kind (its stack is
 * abandoned: memory it took from malloc is not freed, but its krill heap,
 * messages, links, monitors and name are). Returns only from a host
 * thread, with KR_ENOTPROC, or for a bad kind, with KR_EINVAL. */
KR_API int kr_exit(int kind);
/* The same with a full reason (KR_EINVAL for NULL). */
KR_API int kr_exit_reason(const kr_reason *reason);
/* End the calling process with KR_EXIT_ERROR and the formatted text
 * (printf-style, truncated to fit kr_reason.text). Returns only from a
 * host thread, with KR_ENOTPROC. */
KR_API int kr_crash(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Internal, for KR_ASSERT. */
KR_API int kr__assert_failed(const char *cond, const char *file, int line);
/* Crash the calling process (KR_EXIT_ERROR, naming cond, file and line)
 * unless cond holds. Always evaluated: not disabled by NDEBUG. */
#define KR_ASSERT(cond) ((cond) ? (void)0 : (void)kr__assert_failed(#cond, __FILE__, __LINE__))

/*
 * Send an exit signal to pid, as Erlang's exit/2: with KR_EXIT_KILL it ends
 * the target whatever it does (reason KR_EXIT_KILLED); otherwise a target
 * that traps exits gets a KR_TAG_EXIT message instead, and one that does
 * not ends with the same reason, unless the reason is KR_EXIT_NORMAL, which
 * it ignores. A process that sends KR_EXIT_NORMAL to itself is the
 * exception, as in Erlang (exit(self(), normal)): it ends, with reason
 * normal, at once if it does not trap exits (a normal end: no report, and
 * linked processes ignore it); if it traps exits it gets the KR_TAG_EXIT
 * message (from itself) instead. A process that never calls krill (not
 * even KR_CHECK) cannot be ended until it does. 0, KR_EINVAL (a bad pid or kind), KR_ESTOPPED;
 * sending to a process that is gone does nothing. Safe from host threads
 * (the signal then comes from the thread's mailbox's pid, or from pid 0 if
 * it has none). A host thread's mailbox is never ended by one: it gets a
 * KR_TAG_EXIT message, whatever the reason (see kr_host_release).
 */
KR_API int kr_exit_sig(kr_pid pid, int kind);
/* kr_exit_sig with a full reason (kind and text); KR_EINVAL for NULL. */
KR_API int kr_exit_sig_reason(kr_pid pid, const kr_reason *reason);

/* ------------------------------------------------------------------------ */
/* Links and monitors                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Link the calling process and pid (both ways; linking twice is one link).
 * When either ends with an abnormal reason, the other receives an exit
 * signal with that reason (see kr_exit_sig; normal ends are ignored unless
 * trapped). Linking to a process that is gone is Erlang's link/1: a
 * trapping caller gets an exit message with KR_EXIT_NOPROC and kr_link
 * returns 0; a caller that does not trap exits ends with KR_EXIT_NOPROC.
 * Linking to oneself does nothing and returns 0 (Erlang's link(self())).
 * KR_EINVAL for a bad pid, KR_ENOMEM. From a host thread: its mailbox's
 * link (made on first use; it traps exits: see kr_host_release), or
 * KR_ESTOPPED. Signals between one pair of processes arrive in the order
 * sent.
 */
KR_API int kr_link(kr_pid pid);
/* Remove the link, if any (0 either way): no exit signal due to it arrives
 * after this returns (an exit message it already caused may be queued).
 * KR_EINVAL for a bad pid; KR_ESTOPPED. A host thread removes its
 * mailbox's (none without one: 0). */
KR_API int kr_unlink(kr_pid pid);
/* Trap exits (on nonzero) or not: a trapping process gets exit signals as
 * KR_TAG_EXIT messages (kr_exit_msg), except KR_EXIT_KILL. Returns the
 * previous setting. A host thread's mailbox always traps (an exit signal
 * cannot end a thread): 1 for on, KR_ENOTPROC for off. */
KR_API int kr_trap_exit(int on);

/*
 * Monitor pid: when it ends, the caller gets one KR_TAG_DOWN message
 * (kr_down_msg) with this reference, the pid and its reason; at once, with
 * KR_EXIT_NOPROC, if it is already gone. Monitoring is one way and may be
 * repeated (each monitor has its own reference). Returns the reference
 * (> 0), or KR_EINVAL, KR_ENOMEM. From a host thread the DOWN comes to its
 * mailbox (made on first use), or KR_ESTOPPED.
 */
KR_API kr_ref kr_monitor(kr_pid pid);
/* Remove a monitor: no DOWN message for it arrives after this returns. With
 * flush nonzero, a DOWN message already queued for it is removed too.
 * 0, also if the monitor had fired or ref is not one of the caller's
 * monitors (then nothing changes: as OTP's demonitor/2, which returns
 * true); KR_EINVAL for ref <= 0 (no reference at all); KR_ESTOPPED. A host
 * thread removes its mailbox's (none without one: 0). */
KR_API int kr_demonitor(kr_ref ref, int flush);

/* The messages signals turn into. Their tags are reserved, as are the
 * supervisors' (from KR_TAG_SUP up, krill/sup.h): a program's tags must
 * stay below KR_TAG_SUP, and kr_send, kr_send_bin, kr_send_named, kr_call
 * and kr_reply return KR_EINVAL for a tag at or above it. */
#define KR_TAG_RESERVED 0xffffffffffff0000ull
#define KR_TAG_EXIT (KR_TAG_RESERVED + 1)  /* data: kr_exit_msg */
#define KR_TAG_DOWN (KR_TAG_RESERVED + 2)  /* data: kr_down_msg */

typedef struct kr_exit_msg {
	kr_pid from;      /* the linked process that ended, or the exit signal's sender */
	kr_reason reason;
} kr_exit_msg;

typedef struct kr_down_msg {
	kr_ref ref;       /* what kr_monitor returned */
	kr_pid pid;       /* the process that ended */
	kr_reason reason;
} kr_down_msg;

/* ------------------------------------------------------------------------ */
/* Priority messages (EEP 76, OTP 28)                                        */
/* ------------------------------------------------------------------------ */

/*
 * A priority message is received before every ordinary message already in
 * the mailbox, and after the priority messages that came before it: every
 * receive (kr_recv, kr_recv_tag, kr_recv_match, and so kr_call's and a
 * server's) looks at the priority messages first, then at the rest, each
 * part in the order it arrived. Nothing else changes: signals between a
 * pair of processes still arrive in the order sent (an ordinary message
 * sent before a priority one arrives first, and is merely overtaken in the
 * queue), a received message does not say which kind it was, and
 * kr_info's mailbox length counts both. As in Erlang the receiver opts in,
 * so code that expects arrival order never meets one unasked:
 *  - a message is a priority message only when sent with kr_send_priority
 *    to an active priority alias of the receiver (alias([priority]) and
 *    erlang:send(Alias, Msg, [priority]));
 *  - an exit signal, when sent with kr_exit_sig_priority to such an alias
 *    (exit(Alias, Reason, [priority])), or when it comes through a link the
 *    receiver made with kr_link_priority (link(Pid, [priority]));
 *  - a DOWN, for a monitor made with kr_monitor_priority (monitor(process,
 *    Pid, [priority])).
 * An exit signal is a message only for a process that traps exits; for one
 * that does not, priority changes nothing. A process that never asks for
 * priority pays nothing for it (one predictable branch a receive).
 * Aliases belong to one node: across nodes these calls return KR_ENOSYS
 * (krill does not yet speak OTP 28's ALTACT_SIG_SEND), while priority links
 * and monitors to remote processes work.
 */
typedef struct kr_alias {
	kr_pid pid; /* the process that made it */
	kr_ref ref; /* which of its aliases */
} kr_alias;

/* Make a priority alias of the caller, active until kr_unalias or the
 * caller's end; give it to the processes that may send priority messages.
 * 0, KR_EINVAL (out NULL), KR_ENOMEM, KR_ESTOPPED. From a host thread: an
 * alias of its mailbox (made on first use). */
KR_API int kr_alias_priority(kr_alias *out);
/* Deactivate one of the caller's aliases (unalias/1): from now on what is
 * sent to it is dropped as it arrives, even if sent before. 1 if it was an
 * active alias of the caller's, 0 if not; KR_EINVAL (pid or ref <= 0),
 * KR_ESTOPPED. */
KR_API int kr_unalias(kr_alias alias);
/* Send a priority message to alias (as kr_send otherwise): received before
 * the ordinary messages queued, if alias is active when it arrives; dropped
 * as a dead letter if it is not (Erlang drops messages to an inactive
 * alias). 0 (also when dropped), KR_EINVAL (a bad alias or tag, data NULL
 * with len > 0), KR_ELIMIT, KR_ENOMEM, KR_ENOSYS (an alias of another
 * node), KR_ESTOPPED. Safe from host threads. */
KR_API int kr_send_priority(kr_alias alias, uint64_t tag, const void *data, size_t len);
/* kr_exit_sig_reason through alias: the same signal, which a trapping
 * receiver gets as a priority KR_TAG_EXIT message; dropped if the alias is
 * not active when it arrives. Errors as kr_exit_sig_reason, KR_ENOSYS. */
KR_API int kr_exit_sig_priority(kr_alias alias, const kr_reason *reason);
/* kr_link, and if the link breaks the exit signal this process gets is a
 * priority one (link(Pid, [priority])); linking to a process that is gone
 * gives a trapping caller its noproc KR_TAG_EXIT message as a priority
 * message. The mark is this side's, lasts until the link goes, and is set
 * on a link that exists already; kr_link on a marked link keeps the mark.
 * Returns and threads as kr_link. */
KR_API int kr_link_priority(kr_pid pid);
/* kr_monitor whose DOWN message is a priority message. As kr_monitor. */
KR_API kr_ref kr_monitor_priority(kr_pid pid);

/* ------------------------------------------------------------------------ */
/* Registered names                                                          */
/* ------------------------------------------------------------------------ */

#define KR_NAME_MAX 63 /* bytes of a registered name, without the NUL */

/* Give pid a name (at most KR_NAME_MAX bytes). A process has at most one
 * name, and a name at most one process; the name is freed when the process
 * ends. KR_EEXIST (name taken, or pid already named), KR_ENOPROC, KR_EINVAL
 * (a bad name or pid), KR_ENOMEM, KR_ESTOPPED. Safe from host threads. */
KR_API int kr_register(const char *name, kr_pid pid);
/* Free a name: 0, or KR_ENOPROC if no process has it, KR_EINVAL (a bad
 * name), KR_ESTOPPED. */
KR_API int kr_unregister(const char *name);
/* The pid with this name, or KR_ENOPROC, KR_EINVAL (a bad name),
 * KR_ESTOPPED. Safe from host threads. */
KR_API kr_pid kr_whereis(const char *name);
/* kr_send to the process with this name; KR_ENOPROC if none has it,
 * KR_EINVAL for a bad name or tag; else kr_send's errors. */
KR_API int kr_send_named(const char *name, uint64_t tag, const void *data, size_t len);

typedef struct kr_name_entry {
	char name[KR_NAME_MAX + 1];
	kr_pid pid;
} kr_name_entry;

/* The registered names and their pids, as erlang:registered/0: the first
 * max go into out (NULL if max is 0), in no particular order. Returns how
 * many names there are (more than max if out was too small), or
 * KR_EINVAL, KR_ESTOPPED. One consistent view (taken under the registry's
 * lock). Safe from any thread. */
KR_API int kr_registered(kr_name_entry *out, size_t max);

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct kr_bin kr_bin;

/* A received message. It lives on the receiving process's heap: free it
 * with kr_msg_free, or let it go when the process exits. Its payload (data)
 * is aligned to 16 bytes, as malloc's memory is on x86-64 and aarch64
 * (alignof(max_align_t)), whatever its size and whether it was copied or
 * is a binary's, so it may be read in place as any C type. */
typedef struct kr_msg {
	kr_pid sender;     /* 0 when a host thread without a mailbox sent it */
	uint64_t tag;      /* the sender's choice: what kind of message */
	size_t len;        /* payload bytes */
	const void *data;  /* the payload (a copy, or the binary's bytes) */
	kr_bin *bin;       /* set for kr_send_bin: the binary, referenced by the message */
	kr_ref ref;        /* a kr_call request's or reply's reference, a
	                    * kr_start_timer message's timer reference; 0 otherwise */
} kr_msg;

/* The payload of a KR_TAG_EXIT message, or NULL if msg is not one (or is
 * NULL). Safe from any thread. */
KR_API const kr_exit_msg *kr_msg_exit(const kr_msg *msg);
/* The payload of a KR_TAG_DOWN message, or NULL if msg is not one. */
KR_API const kr_down_msg *kr_msg_down(const kr_msg *msg);

/* Copy len bytes at data into a message for pid. Sending to a process that
 * is gone, or to a well-formed pid that never named one, is not an error
 * (it is counted as a dead letter), as in Erlang. KR_EINVAL for a pid that
 * cannot be this VM's (<= 0, or another node's), KR_ELIMIT above
 * max_message, KR_ENOMEM,
 * KR_ESTOPPED. Safe from processes and host threads (sender: the thread's
 * mailbox's pid if it has one, else 0; a send does not make one). Messages
 * from one sender to one receiver arrive in the order sent. A message to a
 * busy process on another scheduler may be held and delivered in a batch:
 * at the latest when the sending process next waits, yields or exits. An
 * exit signal that ends the sender takes effect only after the message is
 * delivered (or counted as a dead letter). KR_EINVAL also for data NULL
 * with len > 0, and for a tag at or above KR_TAG_SUP (krill's own). */
KR_API int kr_send(kr_pid to, uint64_t tag, const void *data, size_t len);

/* Take the oldest message, waiting up to timeout_ms (the rule is at
 * KR_INFINITY: 0 polls, KR_INFINITY waits for ever). 0 and *out set;
 * KR_ETIMEDOUT; KR_EINVAL (out NULL, a bad timeout). The message is the
 * caller's: free it with kr_msg_free, or let the process's end do it.
 * From a host thread: from its mailbox (made on first use: see
 * kr_host_release), waiting on a futex; KR_ESTOPPED if no VM runs or
 * kr_vm_stop stops it meanwhile; KR_ELIMIT, KR_ENOMEM if no mailbox could
 * be made. */
KR_API int kr_recv(kr_msg **out, long timeout_ms);

/*
 * Wait for a message without a stack, as erlang:hibernate/3: the caller's
 * stack goes back to the pool, and when a message or an exit signal comes
 * the process starts again as fn(arg) on a stack it takes then (at once if
 * a message is already queued). Signals that leave nothing to receive (a
 * link, a monitor, kr_info_links' question, an exit signal it ignores) are
 * acted on and it sleeps on, without running fn. Everything but the stack
 * is kept: pid, heap (keep the state there, with kr_alloc: locals are
 * gone), mailbox in order, links, monitors, registered name, trap_exit,
 * reductions. An exit signal ends it as it would any process. When fn
 * returns, the process ends normally. Never returns, but for KR_ENOTPROC (a host thread) and
 * KR_EINVAL (fn NULL).
 */
KR_API int kr_hibernate(kr_fn *fn, void *arg);
/* As kr_recv, but take the oldest message with this tag; the others stay,
 * in order, for later receives. */
KR_API int kr_recv_tag(kr_msg **out, uint64_t tag, long timeout_ms);
/* A selective receive's test: nonzero takes the message. */
typedef int kr_match_fn(const kr_msg *msg, void *ctx);
/* As kr_recv, but take the oldest message for which pred(msg, ctx) returns
 * nonzero; the others stay, in order. pred must not call krill (KR_EINVAL
 * if it is NULL). */
KR_API int kr_recv_match(kr_msg **out, kr_match_fn *pred, void *ctx, long timeout_ms);

/*
 * Free a received message (from the process that received it, or the host
 * thread, whose mailbox's messages these are; NULL is ignored, and so, from
 * a host thread, which cannot be ended, is a pointer to another's message;
 * a host thread's message goes back to the allocator at once, so its
 * second free is undefined). Freeing a message that is not a
 * live one of the caller's ends the caller with KR_EXIT_ERROR ("kr_msg_free:
 * not a live message of this process (freed twice?)"), rather than free
 * what another message or process now uses. Caught: another process's
 * message (each process's heap marks its blocks its own way); a message
 * freed already, until its block is reused (the block freed last on a
 * scheduler is never the next one handed out, so a free, a receive and a
 * second free are always caught). Not caught: a block reused for a later
 * message to the same process is live again, and a stale pointer to it
 * frees that message. Undefined: a pointer that never was a message's, and
 * a second free of a message of over 64 KiB, whose block goes back to the
 * allocator at once.
 */
KR_API void kr_msg_free(kr_msg *msg);

/* Binaries: immutable byte strings shared by reference count, so large
 * payloads travel without copying. All of these are safe from any thread,
 * VM running or not. */
/* A binary holding a copy of len bytes at data, with one reference; NULL if
 * memory is short (or data is NULL with len > 0). */
KR_API kr_bin *kr_bin_new(const void *data, size_t len);
/* Take one more reference to bin; returns bin (NULL stays NULL). */
KR_API kr_bin *kr_bin_ref(kr_bin *bin);
/* Drop one reference; the last one frees the binary. NULL is ignored. */
KR_API void kr_bin_unref(kr_bin *bin);
/* The binary's bytes (NULL for NULL), valid while a reference is held. */
KR_API const void *kr_bin_data(const kr_bin *bin);
/* The binary's length in bytes (0 for NULL). */
KR_API size_t kr_bin_size(const kr_bin *bin);

/* Send bin by reference: the message holds its own reference, the caller
 * keeps theirs. Errors as kr_send (KR_EINVAL for bin NULL too). */
KR_API int kr_send_bin(kr_pid to, uint64_t tag, kr_bin *bin);

/* ------------------------------------------------------------------------ */
/* Request and reply                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Send a request to pid and wait for its reply, as gen_server:call: the
 * caller monitors the server, sends (tag, req, len) with a fresh reference,
 * and waits only for the reply carrying that reference (messages queued
 * before the call are not even looked at) or for the server's end.
 * 0 and *reply set (free it with kr_msg_free); KR_ENOPROC if the server is
 * gone or ends before replying; KR_ETIMEDOUT; KR_EINVAL (a bad pid, the
 * caller's own, a tag at or above KR_TAG_SUP, req NULL with len > 0, reply
 * NULL, a bad timeout: nothing is sent); KR_ELIMIT (len above max_message);
 * KR_ENOMEM. Afterwards nothing of the call is left in the mailbox: a
 * reply that comes after a timeout is dropped on arrival. From a host
 * thread the call is its mailbox's (made on first use: see
 * kr_host_release), and it waits on a futex; KR_ESTOPPED if no VM runs or
 * kr_vm_stop stops it meanwhile.
 */
KR_API int kr_call(kr_pid pid, uint64_t tag, const void *req, size_t len, kr_msg **reply,
                   long timeout_ms);
/* Reply to a request received from kr_call (its ref is nonzero): the caller
 * gets (tag, data, len). KR_EINVAL if request is not a call's, for data
 * NULL with len > 0, or a tag at or above KR_TAG_SUP; replying to a caller
 * that is gone or gave up is not an error. KR_ESTOPPED from a host thread
 * when no VM runs. */
KR_API int kr_reply(const kr_msg *request, uint64_t tag, const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Host threads                                                              */
/* ------------------------------------------------------------------------ */

/*
 * A host thread (one that is not a krill process) may send, spawn, register
 * and look processes up at any time. The first time it calls kr_self, a
 * receive (kr_recv, kr_recv_tag, kr_recv_match), kr_call, kr_monitor,
 * kr_link, or kr_spawn_opt with link or monitor, it gets a mailbox of its
 * own: a pid that processes send to, reply to, link to and monitor as any
 * process's (kr_info names it "host"; it counts as a process, against
 * max_procs too). From then on its sends carry that pid, so that answers
 * reach it (a plain kr_send never makes one). It waits in a receive on its
 * own thread, spinning for a few microseconds and then asleep on a futex;
 * timeouts work as for a process. An exit signal cannot end a thread, so
 * the mailbox always traps exits: exit signals arrive as KR_TAG_EXIT
 * messages, KR_EXIT_KILL too. The messages it received, and what it took
 * with kr_alloc (NULL for a thread without a mailbox), are its mailbox's.
 * The calls that need a process and cannot be a thread's still return
 * KR_ENOTPROC: kr_hibernate, kr_exit, kr_crash (kr_yield and kr_sleep
 * yield and sleep the thread).
 *
 * The mailbox ends when its thread ends or calls kr_host_release, as a
 * process that ended normally: its links and monitors fire with reason
 * normal, its registered name is freed, callers whose requests it took and
 * did not answer get KR_ENOPROC, and its messages and heap are freed (so
 * messages it still holds must not be read after). The next call that
 * needs one makes a fresh one, with a new pid. kr_vm_stop ends every host
 * thread's mailbox with the VM (a thread waiting in a receive gets
 * KR_ESTOPPED); after kr_vm_start, a thread that calls in gets a new one.
 */
/* End the calling host thread's mailbox now (see above). 0, also if it had
 * none; KR_ESTOPPED if no VM runs (its mailbox went with the VM); KR_EINVAL
 * from a process. */
KR_API int kr_host_release(void);

/* ------------------------------------------------------------------------ */
/* The process heap                                                          */
/* ------------------------------------------------------------------------ */

/* Allocate on the calling process's heap: everything still allocated is
 * freed when the process exits. An allocation that would take the process
 * past its max_heap ends it with KR_EXIT_HEAP_LIMIT (it does not return).
 * The block is aligned to 16 bytes, as malloc's. NULL when out of memory,
 * or from a host thread without a mailbox (one with a mailbox allocates on
 * its heap, freed with it: see kr_host_release). */
KR_API void *kr_alloc(size_t size);
/* kr_alloc of n zeroed elements of size bytes; NULL on overflow too. */
KR_API void *kr_calloc(size_t n, size_t size);
/* Resize a block from kr_alloc (NULL: allocate), as realloc; NULL, with ptr
 * untouched, when memory is short, or from a host thread without a mailbox
 * (or for a ptr that is not a live block of its mailbox's). Past max_heap, as
 * kr_alloc. A ptr that is not a live block of the caller's ends the caller,
 * as kr_free ("kr_realloc: not a live block of this process (freed
 * already?)"). */
KR_API void *kr_realloc(void *ptr, size_t size);
/* Free a block from kr_alloc. NULL is ignored, and so, from a host thread,
 * is anything but a live block of its mailbox's heap. A ptr that is not a
 * live block of the caller's ends the caller
 * with KR_EXIT_ERROR ("kr_free: not a live block of this process (freed
 * twice?)"). Caught: another process's block; a block freed already, unless
 * a later kr_alloc of the same process got it back from the allocator
 * (which hands a block just freed to the next allocation of its size):
 * then it is live again, and a stale pointer to it frees the new block.
 * Undefined: a pointer that kr_alloc never returned. */
KR_API void kr_free(void *ptr);

/* ------------------------------------------------------------------------ */
/* Blocking calls                                                            */
/* ------------------------------------------------------------------------ */

/* What kr_blocking runs. */
typedef long kr_blocking_fn(void *arg);
/* Run fn(arg), which may block (a read(), a sleep, a library call), on a
 * helper thread while the calling process waits, so the scheduler goes on
 * running others. Returns fn's result (KR_EINVAL if fn is NULL). From a
 * host thread fn simply runs. The process cannot be ended while fn runs:
 * an exit signal takes effect when it returns. */
KR_API long kr_blocking(kr_blocking_fn *fn, void *arg);

#include "krill/sup.h" /* supervisors */
#include "krill/server.h" /* generic servers (gen_server) */
#include "krill/io.h"  /* I/O in processes: descriptors, sockets */
#include "krill/dist.h" /* distribution: nodes, remote pids */
#include "krill/timer.h" /* timers: kr_send_after, kr_start_timer, kr_cancel_timer */
#include "krill/observer.h" /* the observer: a live page, a JSON API, /metrics */

#ifdef __cplusplus
}
#endif

#endif
