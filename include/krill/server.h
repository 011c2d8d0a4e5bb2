/*
 * krill/server.h - a generic server: the loop of Erlang/OTP's gen_server,
 * written once, around callbacks a program supplies.
 *
 * Included by krill.h; a program includes krill.h only.
 *
 * A server is an ordinary process that keeps a state on its own heap and
 * serves one message at a time: a call (kr_server_call, a request that
 * waits for its reply) goes to handle_call, a cast (kr_server_cast, fire
 * and forget) to handle_cast, anything else (a plain kr_send, an exit
 * message while it traps exits, a DOWN, a timer's message) to
 * handle_info. Each callback returns what the server does next: go on,
 * go on after replying, hibernate, or stop (terminate runs, then the
 * process ends with the reason). Callbacks run in the server process, so
 * they may call any of krill (send, call other servers, kr_alloc);
 * messages that come meanwhile wait their turn.
 *
 *     static kr_server_ret counter_init(void *arg, void **state)
 *     {
 *             long *n = kr_alloc(sizeof *n);     // on the server's heap
 *             *n = 0;
 *             *state = n;
 *             return kr_server_ret_ok();
 *     }
 *     static kr_server_ret counter_call(const kr_msg *req, kr_server_from from, void *state)
 *     {
 *             long *n = state;
 *             *n += 1;
 *             return kr_server_ret_reply(from, COUNT, n, sizeof *n);
 *     }
 *     static const kr_server_callbacks counter = { .init = counter_init,
 *                                                  .handle_call = counter_call };
 *
 *     kr_pid srv = kr_server_start(&counter, NULL, NULL);
 *     kr_msg *r;
 *     kr_server_call(srv, BUMP, NULL, 0, &r, 5000);
 *
 * Where C differs from Erlang: a callback that crashes (kr_crash, a failed
 * KR_ASSERT, a fault) ends the process at once, with the usual crash
 * report, and terminate does not run (there is no exception to catch);
 * its callers get KR_ENOPROC and its supervisor restarts it. Messages are
 * krill's (tag, bytes), and a server's state is whatever init makes of it.
 */
#ifndef KRILL_SERVER_H
#define KRILL_SERVER_H

#include "../krill.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Who made a call: kept by a server that answers later (kr_server_reply),
 * as gen_server's From. A plain value: copy it anywhere. */
typedef struct kr_server_from {
	kr_pid pid; /* the caller */
	kr_ref ref; /* its call's reference */
} kr_server_from;

/* What a callback tells the server to do next. */
enum kr_server_action {
	KR_SERVER_GO_ON = 0, /* go on serving: init's {ok, S}, {noreply, S}, and
	                      * {reply, R, S} once kr_server_ret_reply has replied */
	KR_SERVER_STOP,      /* terminate(reason), send the held reply if any, end
	                      * with reason ({stop, Reason, S}, {stop, Reason, Reply, S}) */
	KR_SERVER_IGNORE     /* init only: the server ends normally without serving,
	                      * and kr_server_start returns 0 (ignore) */
};

/*
 * A callback's result. Make it with a kr_server_ret_ function, then set
 * timeout_ms or hibernate if wanted:
 *
 *     kr_server_ret r = kr_server_ret_noreply();
 *     r.timeout_ms = 500;     // {noreply, S, 500}
 *     return r;
 *
 * (A zeroed struct means go on with a timeout of 0 ms: not what you want.)
 */
typedef struct kr_server_ret {
	int action;       /* enum kr_server_action */
	int hibernate;    /* KR_SERVER_GO_ON: nonzero hibernates now (kr_hibernate):
	                   * the server waits for its next message without a stack */
	long timeout_ms;  /* KR_SERVER_GO_ON: KR_INFINITY (none), or the server's
	                   * handle_info gets a KR_TAG_SERVER_TIMEOUT message if no
	                   * message comes within this many ms (0: at once, unless
	                   * one is queued); any message cancels it. Ignored with
	                   * hibernate, as in OTP */
	kr_reason reason; /* KR_SERVER_STOP: why; what terminate gets and the process ends with */
	void *kr__reply;  /* krill's own: a reply held until terminate has run */
} kr_server_ret;

/* handle_info's message when a callback's timeout_ms passed in silence
 * (OTP's `timeout`): sender the server itself, no payload. */
#define KR_TAG_SERVER_TIMEOUT (KR_TAG_RESERVED + 0x20)

/*
 * The callbacks. Each runs in the server process; `state` is what init
 * stored in *state (change it in place: it is the server's until it ends).
 * The message a callback gets is the server's, freed when the callback
 * returns: copy what must outlive it. A NULL callback does what OTP does
 * for a callback the module does not export.
 */
typedef struct kr_server_callbacks {
	/* Build the state (on the process heap: kr_alloc) from
	 * kr_server_start's arg. Return kr_server_ret_ok() (timeout_ms and
	 * hibernate apply), kr_server_ret_stop(kind) (the start fails: the
	 * process ends with that reason, terminate does not run) or
	 * kr_server_ret_ignore(). NULL: the state is arg itself. */
	kr_server_ret (*init)(void *arg, void **state);
	/* A call. Reply now (kr_server_ret_reply), or later
	 * (kr_server_ret_noreply, then kr_server_reply(from, ...) from any
	 * point of the server, or from another process), or stop, with a reply
	 * (kr_server_ret_stop_reply) or without. NULL: a call crashes the
	 * server, as a call to a module without handle_call/3 would. */
	kr_server_ret (*handle_call)(const kr_msg *req, kr_server_from from, void *state);
	/* A cast. NULL: a cast crashes the server (OTP: handle_cast/2 is needed). */
	kr_server_ret (*handle_cast)(const kr_msg *msg, void *state);
	/* Any other message: plain sends, KR_TAG_EXIT (trapping exits; but the
	 * parent's exit message stops the server, see below), KR_TAG_DOWN,
	 * KR_TAG_SERVER_TIMEOUT, I/O and timer messages. NULL: ignored (OTP
	 * logs and ignores). */
	kr_server_ret (*handle_info)(const kr_msg *msg, void *state);
	/* The server is stopping with reason: a callback returned stop,
	 * kr_server_stop asked, or (trapping exits) its parent's exit message
	 * came: its supervisor's shutdown, or the end of the process that
	 * started it linked. Not called when init fails, when an exit signal
	 * ends a server that does not trap exits, nor on a crash. Free what
	 * lives outside the heap here. NULL: nothing to do. */
	void (*terminate)(const kr_reason *reason, void *state);
} kr_server_callbacks;

/* ---- a callback's result ---- */

/* Go on serving (init's {ok, State}; handle_cast's and handle_info's
 * {noreply, State}). */
static inline kr_server_ret kr_server_ret_ok(void)
{
	kr_server_ret r = { KR_SERVER_GO_ON, 0, KR_INFINITY, { KR_EXIT_NORMAL, "" }, NULL };
	return r;
}

/* handle_call: go on without replying now ({noreply, State}); reply later
 * with kr_server_reply. The same value as kr_server_ret_ok. */
static inline kr_server_ret kr_server_ret_noreply(void)
{
	return kr_server_ret_ok();
}

/* Go on, and hibernate now ({noreply, State, hibernate}). */
static inline kr_server_ret kr_server_ret_hibernate(void)
{
	kr_server_ret r = kr_server_ret_ok();
	r.hibernate = 1;
	return r;
}

/* init only: do not start (ignore). */
static inline kr_server_ret kr_server_ret_ignore(void)
{
	kr_server_ret r = kr_server_ret_ok();
	r.action = KR_SERVER_IGNORE;
	return r;
}

/* Stop with this reason kind ({stop, Reason, State}); reason.text may be
 * filled in afterwards. The process ends as kr_exit_reason would end it
 * (KR_EXIT_KILL as KR_EXIT_KILLED); a kind out of range ends it with
 * KR_EXIT_ERROR saying so. */
static inline kr_server_ret kr_server_ret_stop(int kind)
{
	kr_server_ret r = kr_server_ret_ok();
	r.action = KR_SERVER_STOP;
	r.reason.kind = kind;
	return r;
}

/* handle_call: reply (tag, data, len) to from now, and go on ({reply,
 * Reply, State}). data is copied before this returns: a local is fine.
 * If the reply cannot be sent (a tag at or above KR_TAG_SUP, data NULL
 * with len > 0, too big: kr_reply's errors), the result is a stop with
 * KR_EXIT_ERROR naming the error, as OTP stops on a bad return value.
 * Call it from the server process. */
KR_API kr_server_ret kr_server_ret_reply(kr_server_from from, uint64_t tag, const void *data,
                                         size_t len);

/* handle_call: stop with this reason kind, and reply (tag, data, len) to
 * from once terminate has run ({stop, Reason, Reply, State}): the caller
 * has its reply when the server has cleaned up. data is copied (onto the
 * server's heap) before this returns. If memory is short or the reply is
 * bad, the stop's reason is KR_EXIT_ERROR naming it. Call it from the
 * server process. */
KR_API kr_server_ret kr_server_ret_stop_reply(int kind, kr_server_from from, uint64_t tag,
                                              const void *data, size_t len);

/* ---- starting ---- */

typedef struct kr_server_opts {
	int link;               /* nonzero: link the caller and the server once init
	                         * has succeeded (gen_server:start_link); the caller
	                         * is then the server's parent (see terminate) */
	const char *name;       /* non-NULL: register the server under this name before
	                         * init runs ({local, Name}); KR_EEXIST if taken */
	long hibernate_after;   /* > 0: after this many ms without a message (and no
	                         * callback timeout pending) the server hibernates;
	                         * 0: never */
	long timeout_ms;        /* how long kr_server_start waits for init; past it the
	                         * server is killed and KR_ETIMEDOUT returned; 0 = no
	                         * limit */
	kr_spawn_opts spawn;    /* stack_size, max_heap, name (a label for reports;
	                         * NULL: the registered name), bind_scheduler; link
	                         * and monitor must be 0 (KR_EINVAL): use link above */
	kr_reason *error;       /* non-NULL: when init fails (KR_ESTART), why: its stop
	                         * reason, or how it crashed */
} kr_server_opts;

/*
 * Start a server process and wait until its init has run, as
 * gen_server:start and start_link. Returns the server's pid (> 0) once
 * init returned ok; 0 if init returned ignore (the process has ended);
 * or an error, the process having ended when it returns: KR_ESTART (init
 * returned stop, or crashed; opts->error says why), KR_EEXIST (the name is
 * taken), KR_ETIMEDOUT (opts->timeout_ms passed), KR_EINVAL (cb NULL, a
 * bad option or name), and kr_spawn's errors (KR_ESTOPPED, KR_ELIMIT,
 * KR_ENOMEM). opts NULL: defaults. From a host thread too: it waits, and
 * links (opts->link), from its mailbox (kr_host_release).
 *
 * As OTP 26's start_link: a failed start does not hit the caller with an
 * exit signal (the link is made only once init has succeeded), and leaves
 * no message of it in the caller's mailbox.
 */
KR_API kr_pid kr_server_start(const kr_server_callbacks *cb, void *arg, const kr_server_opts *opts);

/*
 * Supervised servers. A child spec whose start is kr_server_child_start,
 * init kr_server_child_init, and arg a kr_server_child runs a server:
 *
 *     static const kr_server_child kv_child = { .cb = &kv, .name = "kv" };
 *     kr_child_spec spec = { .id = "kv", .start = kr_server_child_start,
 *                            .init = kr_server_child_init, .arg = (void *)&kv_child };
 *
 * The server's init runs before the child reports that it started, so a
 * failing init fails the start (the child ends with init's reason). Its
 * parent is the supervisor: a server that traps exits runs terminate when
 * the supervisor shuts it down, as OTP's; one that does not is simply
 * ended. The kr_server_child must outlive the child (restarts read it
 * again); for KR_SIMPLE_ONE_FOR_ONE, pass one as kr_sup_start_child's
 * arg. krill's supervisors have no `ignore`: init's ignore there ends the
 * child normally before it reports, a failed start.
 */
typedef struct kr_server_child {
	const kr_server_callbacks *cb;
	void *arg;             /* init's argument */
	const char *name;      /* non-NULL: registered before init (taken: the start fails) */
	long hibernate_after;  /* as kr_server_opts.hibernate_after */
} kr_server_child;

/* A supervisor child's init (kr_child_spec.init): run the server's init.
 * 0, or it does not return (the child ends with init's reason). */
KR_API int kr_server_child_init(void *child);
/* A supervisor child's start function (kr_child_spec.start): serve. */
KR_API void kr_server_child_start(void *child);

/* ---- talking to a server ---- */

/*
 * Call the server and wait for its reply, as gen_server:call: the request
 * (tag, req, len) goes to its handle_call. 0 and *reply set (the caller's:
 * kr_msg_free it); KR_ENOPROC if the server is not there or ends before
 * replying; KR_ETIMEDOUT (the late reply is dropped on arrival);
 * KR_EINVAL for a call to oneself (which would wait for ever) and for
 * kr_call's bad arguments. Otherwise as kr_call (which threads may call,
 * its errors).
 */
KR_API int kr_server_call(kr_pid server, uint64_t tag, const void *req, size_t len,
                          kr_msg **reply, long timeout_ms);
/* kr_server_call to the process registered as name: KR_ENOPROC if none
 * is, KR_EINVAL for a bad name. */
KR_API int kr_server_call_named(const char *name, uint64_t tag, const void *req, size_t len,
                                kr_msg **reply, long timeout_ms);
/* kr_server_call that also says why it got KR_ENOPROC (why may be NULL):
 * KR_EXIT_NOPROC if the server was not there, else the reason it ended
 * with (gen_server:call's exit reason). why is untouched on other returns. */
KR_API int kr_server_call_reason(kr_pid server, uint64_t tag, const void *req, size_t len,
                                 kr_msg **reply, long timeout_ms, kr_reason *why);

/* Cast (tag, data, len) to the server's handle_cast, and return at once,
 * as gen_server:cast: 0 also when the server is gone (or, for
 * kr_server_cast_named, no process has the name). KR_EINVAL only for
 * arguments kr_send refuses (a bad pid or name, a tag at or above
 * KR_TAG_SUP, data NULL with len > 0), KR_ELIMIT, KR_ENOMEM, KR_ESTOPPED.
 * Safe from processes and host threads. A server on another node gets a
 * cast as a plain message (handle_info). */
KR_API int kr_server_cast(kr_pid server, uint64_t tag, const void *data, size_t len);
KR_API int kr_server_cast_named(const char *name, uint64_t tag, const void *data, size_t len);

/* Reply to a call that handle_call did not answer (gen_server:reply):
 * the caller's kr_server_call returns with (tag, data, len). From the
 * server or any other process, or a host thread. 0 also if the caller
 * has gone or given up; KR_EINVAL (from not a call's, a tag at or above
 * KR_TAG_SUP, data NULL with len > 0). Reply once per call: a second
 * reply is dropped. A reply from another process than the server leaves
 * the server its record of the call (a few bytes, so that its end would
 * answer it) until the server ends. */
KR_API int kr_server_reply(kr_server_from from, uint64_t tag, const void *data, size_t len);

/*
 * Stop the server as gen_server:stop: it runs terminate with this reason
 * kind (after the messages already queued), and ends with it; this waits
 * until it has ended. 0 once it has (if terminate crashed, the reason was
 * that crash, reported as such); KR_ENOPROC if it was not there;
 * KR_ETIMEDOUT if it has not ended within timeout_ms (it is left to
 * finish); KR_EINVAL (a bad pid or kind, a bad timeout, the caller's own
 * pid). From a host thread too, from its mailbox. kind: KR_EXIT_NORMAL,
 * KR_EXIT_SHUTDOWN or another reason a process may end with (not
 * KR_EXIT_KILL: kr_exit_sig does that).
 */
KR_API int kr_server_stop(kr_pid server, int kind, long timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
