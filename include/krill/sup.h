/*
 * krill/sup.h - supervisors: processes that start, watch and restart other
 * processes, with the semantics of Erlang/OTP's supervisor module.
 *
 * Included by krill.h; a program includes krill.h only.
 *
 * A supervisor is an ordinary process that traps exits and is linked to
 * each of its children. It starts its children in order, each one
 * synchronously (the child reports that it started before the next one
 * is started), and when one ends it restarts it, and perhaps its
 * siblings, according to the child's restart type and the supervisor's
 * strategy. Restarts are limited: more than max_restarts of them within
 * period_ms and the supervisor gives up: it shuts its children down in
 * reverse start order and ends with KR_EXIT_SHUTDOWN, and its own
 * supervisor decides what to do. Supervisors of supervisors make trees.
 *
 * Reports (a child ended abnormally, or a permanent one ended at all; a
 * child did not start, or did not end as a stop should end it; the
 * restart intensity was reached) are errors, as OTP's supervisor reports;
 * a child started or restarted is a progress report, an info, not made at
 * the default level (krill.h, enum kr_log_level). One line each.
 */
#ifndef KRILL_SUP_H
#define KRILL_SUP_H

#include "../krill.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of this header (krill.h's are from -1 down, krill/io.h's at
 * -20, krill/dist.h's at -30, krill/timer.h's at -40). */
enum kr_sup_error {
	KR_ENOTSUP = -50 /* the process is alive but not a supervisor */
};

/* What a supervisor does when a child ends and is to be restarted. */
enum kr_sup_strategy {
	KR_ONE_FOR_ONE = 0,    /* restart that child */
	KR_ONE_FOR_ALL,        /* stop all the others (reverse start order), restart all
	                        * (start order; as in OTP, also those that had been
	                        * stopped by kr_sup_terminate_child) */
	KR_REST_FOR_ONE,       /* stop the children started after it (reverse order),
	                        * restart it and them (start order) */
	KR_SIMPLE_ONE_FOR_ONE  /* one_for_one over children made from one template spec,
	                        * all started dynamically (kr_sup_start_child) */
};

/* kr_sup_flags.max_restarts: no restart at all (the first child to be
 * restarted makes the supervisor give up). */
#define KR_SUP_NO_RESTARTS (-1)

/* A supervisor's settings. Zeroed: one_for_one, at most 1 restart in
 * 5000 ms (OTP's defaults). */
typedef struct kr_sup_flags {
	int strategy;     /* enum kr_sup_strategy */
	int max_restarts; /* restarts allowed within period_ms; 0 = 1; KR_SUP_NO_RESTARTS */
	long period_ms;   /* 0 = 5000 */
} kr_sup_flags;

enum kr_restart {
	KR_PERMANENT = 0, /* always restarted */
	KR_TRANSIENT,     /* restarted only after an abnormal end (not normal, not shutdown) */
	KR_TEMPORARY      /* never restarted; its spec is forgotten when it ends */
};

enum kr_child_type { KR_WORKER = 0, KR_SUPERVISOR };

/* kr_child_spec.shutdown: how a child is stopped. A positive value is a
 * timeout in ms: the child gets an exit signal KR_EXIT_SHUTDOWN, and
 * KR_EXIT_KILL if it has not ended by then. As for every timeout (krill.h,
 * at KR_INFINITY), a negative value other than the two below is
 * KR_EINVAL. */
#define KR_SHUTDOWN_DEFAULT 0             /* 5000 ms for a worker, infinity for a supervisor */
#define KR_SHUTDOWN_INFINITY KR_INFINITY  /* KR_EXIT_SHUTDOWN, and wait as long as it takes */
#define KR_SHUTDOWN_BRUTAL (-2L)          /* KR_EXIT_KILL at once (brutal_kill) */

#define KR_SUP_ID_MAX 63 /* bytes of a child's id, without the NUL */

/* Run in a new child before its start function: 0 = started; nonzero =
 * it failed to start (the child then ends with KR_EXIT_ERROR). */
typedef int kr_child_init_fn(void *arg);

/*
 * A child specification. Zeroed fields take their defaults: a permanent
 * worker, the default shutdown, no init, the VM's stack size, no heap
 * limit, its id as its label. Strings are copied.
 *
 * A worker reports that it started when init returns 0 (at once if it
 * has none). A child of type KR_SUPERVISOR reports when its own children
 * have started: its start function must call kr_sup_run before it
 * receives any message.
 */
typedef struct kr_child_spec {
	const char *id;          /* unique in its supervisor, 1 to KR_SUP_ID_MAX bytes */
	kr_fn *start;            /* the child's process function, run as start(arg) */
	void *arg;
	int restart;             /* enum kr_restart */
	long shutdown;           /* KR_SHUTDOWN_DEFAULT, _BRUTAL, _INFINITY or a timeout in ms */
	int type;                /* enum kr_child_type */
	kr_child_init_fn *init;  /* may be NULL; run as init(arg) */
	size_t stack_size;       /* 0 = the VM's default (see kr_spawn_opts) */
	size_t max_heap;         /* 0 = unlimited (see kr_spawn_opts) */
	const char *name;        /* a label for reports (kr_spawn_opts.name); NULL = id */
	size_t max_mailbox;      /* 0 = unlimited (see kr_spawn_opts): a child that
	                          * falls behind ends with mailbox_limit under
	                          * KR_MAILBOX_KILL, and its supervisor restarts it */
	int mailbox_policy;      /* KR_MAILBOX_KILL (0) or KR_MAILBOX_DROP */
} kr_child_spec;

/*
 * Start a supervisor process linked to the caller, with these flags and
 * children (n specs; exactly one, the template, for simple_one_for_one,
 * which starts no child here). Each child is started in order and must
 * report that it started before the next one is; this returns the
 * supervisor's pid only once they all have. If one fails to start (its
 * init fails, it ends before reporting, or it cannot be spawned), the
 * supervisor stops the ones already started (reverse order) and ends, and
 * this returns KR_ESTART. name, if not NULL, is registered for the
 * supervisor (KR_EEXIST if taken). Other errors: KR_EINVAL (bad flags, a
 * bad spec, two specs with one id), KR_ESTOPPED, KR_ELIMIT, KR_ENOMEM. From
 * a host thread, the supervisor is linked to the thread's mailbox (see
 * kr_host_release), and stops when the mailbox ends.
 *
 * The supervisor treats an exit signal from the caller (the link: the
 * caller's end) as an order to stop: it stops its children in reverse
 * start order and ends with the same reason. It ignores exit signals from
 * processes that are neither its children nor its parent.
 */
KR_API kr_pid kr_sup_start_link(const kr_sup_flags *flags, const kr_child_spec *specs, size_t n,
                                const char *name);

/*
 * Make the calling process a supervisor, as kr_sup_start_link's process
 * is: for the start function of a child of type KR_SUPERVISOR,
 *
 *     static void rooms_sup(void *arg) { kr_sup_run(&flags, specs, n); }
 *
 * It starts the children, reports to the parent supervisor that it
 * started, and supervises until it ends the process (it never returns
 * then): with KR_EXIT_SHUTDOWN when a child fails to start or the
 * restart intensity is reached, with the parent's reason when the parent
 * tells it to stop. Called by a process that no supervisor started, it
 * takes exit signals from host threads (sender 0) as its parent's.
 * Returns only if the process cannot become a supervisor: KR_EINVAL (bad
 * flags or specs), KR_ENOTPROC (host thread), KR_ENOMEM.
 */
KR_API int kr_sup_run(const kr_sup_flags *flags, const kr_child_spec *specs, size_t n);

/*
 * The calls below are requests to the supervisor process (kr_call), so
 * they are served one at a time, between restarts. They are safe from any
 * thread (a host thread's request is made by a short-lived helper
 * process, about a spawn and a futex wake more), and must not be made by
 * a child of sup while it starts (sup is then waiting for that child: the
 * call waits for its timeout), nor by sup itself (KR_EINVAL).
 *
 * Every one returns at once KR_ENOPROC if sup is not a live process, and
 * KR_ENOTSUP if it is one that is not a supervisor (it never called
 * kr_sup_run, and is not kr_sup_start_link's): a supervisor says so in its
 * process when it starts (another node's pid cannot be checked here: the
 * request is sent and the timeout covers it). KR_ENOPROC also if sup ends
 * before answering.
 *
 * Each has a _timeout form taking timeout_ms (the rule at KR_INFINITY:
 * KR_EINVAL for a bad one; KR_ETIMEDOUT when it passes, and the
 * supervisor may still carry the request out afterwards, as after
 * gen_server:call's timeout). The forms without it wait for ever, as
 * OTP's supervisor calls do (they call with infinity): since a pid that
 * is not a supervisor is refused and a dead one is KR_ENOPROC, for ever
 * is only ever spent on a live supervisor still busy, say starting a
 * child whose init takes long.
 */

/* Start a new child. For simple_one_for_one: spec must be NULL, and the
 * child is made from the template with arg in place of the template's
 * arg. Otherwise: spec is added to the supervisor's children (after the
 * others) and started; arg is ignored. Returns the child's pid, or
 * KR_EINVAL (a bad spec), KR_EEXIST (its id is taken), KR_ESTART (it
 * failed to start; the spec is then not kept). */
KR_API kr_pid kr_sup_start_child(kr_pid sup, const kr_child_spec *spec, void *arg);
KR_API kr_pid kr_sup_start_child_timeout(kr_pid sup, const kr_child_spec *spec, void *arg,
                                         long timeout_ms);

/* Stop a child as its shutdown setting says; it is not restarted. Name it
 * by id (and child 0), or, for simple_one_for_one, by pid (and id NULL):
 * KR_EINVAL otherwise. A child named by id keeps its spec (for
 * kr_sup_restart_child), unless it is temporary; a simple_one_for_one
 * child is forgotten. 0 (also if it was not running), or KR_ENOPROC: no
 * child has that id or pid. */
KR_API int kr_sup_terminate_child(kr_pid sup, const char *id, kr_pid child);
KR_API int kr_sup_terminate_child_timeout(kr_pid sup, const char *id, kr_pid child,
                                          long timeout_ms);

/* Start again a child that is not running (stopped by
 * kr_sup_terminate_child, or a transient child that ended normally); it
 * does not count as a restart. Returns its pid, or KR_ENOPROC (no such
 * id), KR_EEXIST (it is running, or a restart of it is pending),
 * KR_ESTART (it failed to start), KR_EINVAL (simple_one_for_one). */
KR_API kr_pid kr_sup_restart_child(kr_pid sup, const char *id);
KR_API kr_pid kr_sup_restart_child_timeout(kr_pid sup, const char *id, long timeout_ms);

/* Forget the spec of a child that is not running. 0, or KR_ENOPROC (no
 * such id), KR_EEXIST (it is running, or a restart of it is pending),
 * KR_EINVAL (simple_one_for_one). */
KR_API int kr_sup_delete_child(kr_pid sup, const char *id);
KR_API int kr_sup_delete_child_timeout(kr_pid sup, const char *id, long timeout_ms);

typedef struct kr_sup_child {
	char id[KR_SUP_ID_MAX + 1]; /* "" for a simple_one_for_one child */
	kr_pid pid;                 /* 0 if not running */
	int type;                   /* enum kr_child_type */
	int restart;                /* enum kr_restart */
	unsigned restarts;          /* times the supervisor started it again since it
	                             * first started: after it ended, or (one_for_all,
	                             * rest_for_one) after a sibling did; not
	                             * kr_sup_restart_child's starts */
} kr_sup_child;

/* Describe the supervisor's children in start order: the first max of
 * them go into out (which may be NULL if max is 0). Returns how many
 * children it has (which may be more than max), or an error. */
KR_API int kr_sup_which_children(kr_pid sup, kr_sup_child *out, size_t max);
KR_API int kr_sup_which_children_timeout(kr_pid sup, kr_sup_child *out, size_t max,
                                         long timeout_ms);

typedef struct kr_sup_counts {
	size_t specs;       /* child specs (1 for simple_one_for_one: the template) */
	size_t active;      /* children running */
	size_t supervisors; /* children of type KR_SUPERVISOR, running or not */
	size_t workers;     /* children of type KR_WORKER, running or not */
} kr_sup_counts;

/* Count the supervisor's children into *out. 0 or an error. */
KR_API int kr_sup_count_children(kr_pid sup, kr_sup_counts *out);
KR_API int kr_sup_count_children_timeout(kr_pid sup, kr_sup_counts *out, long timeout_ms);

/* One child in a walk of a supervision tree (kr_sup_tree). */
typedef struct kr_sup_node {
	kr_sup_child child; /* as kr_sup_which_children describes it */
	kr_pid sup;         /* its supervisor */
	int depth;          /* 1 for a child of the walk's root, 2 for a grandchild ... */
} kr_sup_node;

/* Called for each child of a walk, in order; nonzero stops the walk. */
typedef int kr_sup_tree_fn(const kr_sup_node *node, void *ctx);

/*
 * Walk the supervision tree under sup: every child, and under each
 * running child of type KR_SUPERVISOR its own children, depth first in
 * start order (a child, then its subtree, then its next sibling), calling
 * fn(node, ctx) for each, on the calling thread. The tree is read first,
 * one kr_sup_which_children per supervisor, then walked, so fn may call
 * anything, krill included; it is not one snapshot (OTP has none either):
 * each supervisor answers when asked. A child supervisor that ends
 * meanwhile, or a child of type KR_SUPERVISOR that is not one, is listed
 * without children. Returns how many children fn was called for, or
 * KR_ENOPROC, KR_ENOTSUP (sup itself), KR_ETIMEDOUT (timeout_ms is for the
 * whole walk: fn is then not called at all), KR_EINVAL (fn NULL, a bad
 * timeout, sup the caller itself), KR_ENOMEM, KR_ESTOPPED. Safe from any
 * thread.
 */
KR_API int kr_sup_tree(kr_pid sup, kr_sup_tree_fn *fn, void *ctx, long timeout_ms);

/* Message tags from KR_TAG_SUP up to KR_TAG_RESERVED are krill's own (the
 * supervisors' requests and start handshake with children, and the
 * messages between distribution's processes): a program
 * cannot send them (kr_send, kr_send_bin, kr_send_named, kr_call and
 * kr_reply return KR_EINVAL). */
#define KR_TAG_SUP (KR_TAG_RESERVED - 0x100)

#ifdef __cplusplus
}
#endif

#endif
