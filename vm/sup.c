/*
 * sup.c - supervisors (include/krill/sup.h): ordinary processes, built on
 * the public API, with the semantics of OTP's supervisor module.
 *
 * A supervisor traps exits and is linked to each child. Its loop takes one
 * message at a time: a child's exit message (restart it, and perhaps its
 * siblings), its parent's (stop everything and end with that reason), a
 * request (kr_call from kr_sup_start_child and the others), or its own
 * reminder to retry a restart that failed. Everything it does happens in
 * that one process, so restarts and requests are serialised without a
 * lock, and all its state lives on its own heap (kr_alloc), freed however
 * it ends.
 *
 * Two invariants keep the bookkeeping exact:
 *  - A child is in the pid index exactly while `pid` is set: from the
 *    moment it reported that it started until the supervisor has seen it
 *    end. An exit message from a pid not in the index is not a child's
 *    (or is a stale one's) and is ignored.
 *  - The supervisor unlinks a child before it stops it, and takes the exit
 *    message that child may already have queued, so no exit message of a
 *    child it stopped on purpose is ever mistaken for a crash (the monitor
 *    it set tells it when the child has gone, and with what reason).
 *
 * The start handshake (OTP's proc_lib:init_ack): a child is spawned linked
 * running child_main, and sent its start function, init and arg in a first
 * message (a message, not a pointer into the supervisor's heap: the child
 * may outlive the supervisor's memory). A worker reports TAG_ACK after its
 * init returned 0; a supervisor child reports from kr_sup_run once its own
 * children have started. The supervisor waits for that report or for the
 * child's exit message, whichever comes first; other messages stay queued.
 *
 * The client side (kr_sup_start_child and the others) first asks the
 * process table whether the pid is a supervisor's: sup_new marks its
 * process as one (krx_proc_mark_supervisor), so a request to a process
 * that is not one, which would never be answered, is refused at once
 * (KR_ENOTSUP). A host thread's request is made for it by a proxy process
 * (proxy.h). kr_sup_tree (suptree.c) walks whole trees with these calls.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "msg.h"
#include "proc.h"
#include "proxy.h"
#include "send.h"
#include "str.h"
#include "supinfo.h"
#include "timeout.h"
#include "vm.h"

/* The protocol's tags (sup.h reserves KR_TAG_SUP and up). */
enum {
	TAG_INIT = KR_TAG_SUP, /* kr_sup_start_link -> the new supervisor: init_msg */
	TAG_ACK,               /* child -> supervisor: started; supervisor -> its
	                        * kr_sup_start_link caller: int, 0 or an error */
	TAG_START,             /* supervisor -> new child: start_msg */
	TAG_PARENT,            /* a supervisor child -> itself: its parent's pid */
	TAG_RETRY,             /* supervisor -> itself: retry a failed restart (key) */
	TAG_REQ_START,
	TAG_REQ_TERMINATE,
	TAG_REQ_RESTART,
	TAG_REQ_DELETE,
	TAG_REQ_WHICH,
	TAG_REQ_COUNT,
	TAG_REQ_DESCRIBE, /* the observer's: strategy, children, their last restarts */
	TAG_REPLY
};

#define DEFAULT_PERIOD_MS 5000
/* A supervisor idle this long hibernates (kr_hibernate): its stack goes
 * back to the pool until a child ends or a call comes. As gen_server's
 * hibernate_after, and long enough that a busy supervisor never pays for
 * a restart from the top. */
#define HIBERNATE_AFTER_MS 1000
#define DEFAULT_WORKER_SHUTDOWN_MS 5000

/* A child spec as the supervisor keeps it: flat, so it travels in a message. */
typedef struct spec {
	char id[KR_SUP_ID_MAX + 1];
	char label[32];
	kr_fn *start;
	void *arg;
	kr_child_init_fn *init;
	int restart, type;
	long shutdown; /* > 0 (ms), KR_SHUTDOWN_INFINITY or KR_SHUTDOWN_BRUTAL */
	size_t stack_size, max_heap, max_mailbox;
	int mailbox_policy;
} spec;

typedef struct child {
	struct child *prev, *next; /* start order */
	struct child *hnext;       /* pid index chain */
	struct child *inext;       /* id index chain (a child with its own spec) */
	struct child *snext;       /* the list being stopped */
	spec *sp;                  /* its own, or the template (simple_one_for_one) */
	void *arg;
	kr_pid pid;                /* 0: not running */
	uint64_t key;              /* names it in a TAG_RETRY */
	bool restarting;           /* a restart failed; a retry is queued */
	int stop;                  /* while being stopped: enum stop_state */
	bool ended_first;          /* while being stopped: it had ended before it was asked to */
	unsigned restarts;         /* started again by restart() (kr_sup_child.restarts) */
	int64_t restarted_ms;      /* when restart() last started it (now_ms), 0 never */
	kr_ref mon;
	kr_reason why;
} child;

enum stop_state { STOP_NONE, STOP_ASKED, STOP_EXITED, STOP_DONE };

typedef struct sup {
	int strategy, max_restarts; /* resolved: KR_SUP_NO_RESTARTS is 0 */
	long period_ms;
	kr_pid self, parent;        /* parent 0: exit signals from host threads */
	child *first, *last;
	size_t nchildren;
	child **index;              /* pid -> running child */
	size_t nbuckets, nrunning;
	child **ids;                /* id -> child with its own spec; NULL: none yet */
	size_t nids;                /* buckets in ids */
	spec tmpl;                  /* simple_one_for_one's template */
	uint64_t next_key;
	int64_t *ring;              /* times of recent restarts (ms), a growable ring */
	int ring_cap, ring_head, ring_n;
	bool hibernates;            /* kr_sup_start_link's own process: it may hibernate when
	                             * idle. Not kr_sup_run's: the caller's stack, which
	                             * hibernation gives back, may hold its children's args */
} sup;

/* kr_sup_start_link's first message to its supervisor. */
typedef struct init_msg {
	kr_sup_flags flags;
	char name[KR_NAME_MAX + 1];
	size_t n;
	spec specs[];
} init_msg;

typedef struct start_msg {
	kr_child_init_fn *init;
	kr_fn *start;
	void *arg;
	int type;
} start_msg;

/* ---- small things ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool abnormal(int kind)
{
	return kind != KR_EXIT_NORMAL && kind != KR_EXIT_SHUTDOWN;
}

static char *pid_str(kr_pid pid, char *buf, size_t len)
{
	snprintf(buf, len, "<0.%llu.%llu>", (unsigned long long)KRX_PID_INDEX(pid),
	         (unsigned long long)KRX_PID_SERIAL(pid));
	return buf;
}

static bool valid_id(const char *id)
{
	return id && id[0] && strnlen(id, KR_SUP_ID_MAX + 1) <= KR_SUP_ID_MAX;
}

static int flags_resolve(const kr_sup_flags *f, size_t n, kr_sup_flags *out)
{
	static const kr_sup_flags none;
	if (!f)
		f = &none;
	if (f->strategy < KR_ONE_FOR_ONE || f->strategy > KR_SIMPLE_ONE_FOR_ONE ||
	    f->max_restarts < KR_SUP_NO_RESTARTS || f->period_ms < 0)
		return KR_EINVAL;
	if (f->strategy == KR_SIMPLE_ONE_FOR_ONE && n != 1)
		return KR_EINVAL;
	out->strategy = f->strategy;
	out->max_restarts = f->max_restarts == KR_SUP_NO_RESTARTS ? 0
	                    : f->max_restarts == 0              ? 1
	                                                        : f->max_restarts;
	out->period_ms = f->period_ms ? f->period_ms : DEFAULT_PERIOD_MS;
	return 0;
}

/* Check a user's spec and copy it, defaults filled in. */
static int spec_resolve(const kr_child_spec *c, spec *out)
{
	if (!c || !valid_id(c->id) || !c->start || c->restart < KR_PERMANENT ||
	    c->restart > KR_TEMPORARY || c->type < KR_WORKER || c->type > KR_SUPERVISOR ||
	    c->shutdown < KR_SHUTDOWN_BRUTAL)
		return KR_EINVAL;
	if (c->stack_size && (c->stack_size < KRX_MIN_STACK || c->stack_size > KRX_MAX_STACK))
		return KR_EINVAL;
	if (c->max_mailbox > KR_MAILBOX_MAX ||
	    (c->mailbox_policy != KR_MAILBOX_KILL && c->mailbox_policy != KR_MAILBOX_DROP))
		return KR_EINVAL;
	memset(out, 0, sizeof *out);
	krx_str_copy(out->id, sizeof out->id, c->id);
	krx_str_copy(out->label, sizeof out->label, c->name ? c->name : c->id);
	out->start = c->start;
	out->arg = c->arg;
	out->init = c->init;
	out->restart = c->restart;
	out->type = c->type;
	out->shutdown = c->shutdown;
	if (out->shutdown == KR_SHUTDOWN_DEFAULT)
		out->shutdown = c->type == KR_SUPERVISOR ? KR_SHUTDOWN_INFINITY
		                                         : DEFAULT_WORKER_SHUTDOWN_MS;
	out->stack_size = c->stack_size;
	out->max_heap = c->max_heap;
	out->max_mailbox = c->max_mailbox;
	out->mailbox_policy = c->mailbox_policy;
	return 0;
}

/* Check and copy n specs: KR_EINVAL for a bad one or a repeated id. */
static int specs_resolve(const kr_child_spec *specs, size_t n, spec *out)
{
	if (n && !specs)
		return KR_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (spec_resolve(&specs[i], &out[i]))
			return KR_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(out[j].id, out[i].id))
				return KR_EINVAL;
	}
	return 0;
}

/* ---- the children: start order, and the pid index ---- */

static size_t bucket(const sup *s, kr_pid pid)
{
	return (size_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ull) >> 32) & (s->nbuckets - 1);
}

static child *by_pid(const sup *s, kr_pid pid)
{
	child *c = s->index[bucket(s, pid)];
	while (c && c->pid != pid)
		c = c->hnext;
	return c;
}

/* ---- the id index: children with a spec of their own, by id ---- */

static size_t id_bucket(size_t nb, const char *id)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 32) & (nb - 1);
}

static child *by_id(const sup *s, const char *id)
{
	child *c = s->ids ? s->ids[id_bucket(s->nids, id)] : NULL;
	while (c && strcmp(c->sp->id, id))
		c = c->inext;
	return c;
}

/* Make room for one more id: the first table, or twice the buckets when
 * they hold twice as many children. False only for a first table that
 * memory cannot give (a full table's chains just grow longer). */
static bool ids_reserve(sup *s)
{
	if (s->ids && s->nchildren < 2 * s->nids)
		return true;
	size_t nb = s->ids ? 2 * s->nids : 16;
	child **v = kr_calloc(nb, sizeof *v);
	if (!v)
		return s->ids != NULL;
	kr_free(s->ids);
	s->ids = v;
	s->nids = nb;
	for (child *c = s->first; c; c = c->next) {
		size_t i = id_bucket(nb, c->sp->id);
		c->inext = v[i];
		v[i] = c;
	}
	return true;
}

static void ids_remove(sup *s, child *c)
{
	child **p = &s->ids[id_bucket(s->nids, c->sp->id)];
	while (*p != c)
		p = &(*p)->inext;
	*p = c->inext;
}

static child *by_key(const sup *s, uint64_t key)
{
	for (child *c = s->first; c; c = c->next)
		if (c->key == key)
			return c;
	return NULL;
}

/* Double the index when it holds twice as many children as buckets (if
 * memory is short, chains just grow longer). */
static void index_grow(sup *s)
{
	if (s->nrunning < 2 * s->nbuckets)
		return;
	size_t nb = 2 * s->nbuckets;
	child **v = kr_calloc(nb, sizeof *v);
	if (!v)
		return;
	child **old = s->index;
	size_t ob = s->nbuckets;
	s->index = v;
	s->nbuckets = nb;
	for (size_t b = 0; b < ob; b++) {
		for (child *c = old[b], *next; c; c = next) {
			next = c->hnext;
			size_t i = bucket(s, c->pid);
			c->hnext = v[i];
			v[i] = c;
		}
	}
	kr_free(old);
}

static void set_running(sup *s, child *c, kr_pid pid)
{
	c->pid = pid;
	c->restarting = false;
	size_t b = bucket(s, pid);
	c->hnext = s->index[b];
	s->index[b] = c;
	s->nrunning++;
	index_grow(s);
}

static void set_stopped(sup *s, child *c)
{
	child **p = &s->index[bucket(s, c->pid)];
	while (*p != c)
		p = &(*p)->hnext;
	*p = c->hnext;
	c->hnext = NULL;
	c->pid = 0;
	s->nrunning--;
}

/* A new child after the others (not running). sp NULL: the template. */
static child *child_add(sup *s, const spec *sp, void *arg)
{
	if (sp && !ids_reserve(s))
		return NULL;
	child *c = kr_calloc(1, sizeof *c);
	if (!c)
		return NULL;
	if (sp) {
		if (!(c->sp = kr_alloc(sizeof *c->sp))) {
			kr_free(c);
			return NULL;
		}
		*c->sp = *sp;
		c->arg = sp->arg;
		size_t i = id_bucket(s->nids, sp->id);
		c->inext = s->ids[i];
		s->ids[i] = c;
	} else {
		c->sp = &s->tmpl;
		c->arg = arg;
	}
	c->key = ++s->next_key;
	c->prev = s->last;
	if (s->last)
		s->last->next = c;
	else
		s->first = c;
	s->last = c;
	s->nchildren++;
	return c;
}

/* Forget a child that is not running. */
static void child_del(sup *s, child *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->last = c->prev;
	s->nchildren--;
	if (c->sp != &s->tmpl) {
		ids_remove(s, c);
		kr_free(c->sp);
	}
	kr_free(c);
}

/* simple_one_for_one children and temporary ones are forgotten once they
 * are not running; the others keep their spec. */
static void child_forget_maybe(sup *s, child *c)
{
	if (s->strategy == KR_SIMPLE_ONE_FOR_ONE || c->sp->restart == KR_TEMPORARY)
		child_del(s, c);
}

/* ---- reports ---- */

static void child_name(const child *c, kr_pid pid, char *buf, size_t len)
{
	char p[32] = "";
	if (pid)
		pid_str(pid, p, sizeof p);
	snprintf(buf, len, "%s%s%s", c->sp->id, pid ? " " : "", p);
}

/* "<0.5.1> name": the supervisor, for a report (made only when one is). */
static const char *sup_who(const sup *s, char *buf, size_t len)
{
	kr_proc_info info;
	char p[32];
	if (kr_info(s->self, &info) != 0)
		info.name[0] = 0;
	snprintf(buf, len, "%s%s%s", pid_str(s->self, p, sizeof p), info.name[0] ? " " : "",
	         info.name);
	return buf;
}

/* A child ended, or did not start, or did not stop as told: an error, as
 * OTP's supervisor reports (child_terminated, start_error, shutdown_error). */
static void report_reason(const sup *s, const child *c, kr_pid pid, const char *what,
                          const kr_reason *r)
{
	if (!krx_log_take(KR_LOG_ERROR))
		return;
	char me[80], who[112], why[160], line[512];
	child_name(c, pid, who, sizeof who);
	snprintf(line, sizeof line, "krill: supervisor %s: child %s %s: %s",
	         sup_who(s, me, sizeof me), who, what, kr_reason_format(r, why, sizeof why));
	krx_log_put(KR_LOG_ERROR, line);
}

/* A child started (what: "started" or "restarted"): OTP's progress report,
 * an info, so not made at the default level. */
static void report_progress(const sup *s, const child *c, const char *what)
{
	if (!krx_log_take(KR_LOG_INFO))
		return;
	char me[80], p[32], line[256];
	snprintf(line, sizeof line, "krill: supervisor %s: child %s %s as %s",
	         sup_who(s, me, sizeof me), c->sp->id, what, pid_str(c->pid, p, sizeof p));
	krx_log_put(KR_LOG_INFO, line);
}

/* ---- starting a child ---- */

/* A new child's process: take the start message, run init, report, run. */
static void child_main(void *unused)
{
	(void)unused;
	kr_msg *m;
	if (kr_recv_tag(&m, TAG_START, KR_INFINITY))
		return;
	start_msg sm;
	memcpy(&sm, m->data, sizeof sm);
	kr_pid parent = m->sender;
	kr_msg_free(m);
	if (sm.init) {
		int rc = sm.init(sm.arg);
		if (rc)
			kr_crash("init failed (returned %d)", rc);
	}
	/* A supervisor reports from kr_sup_run, once its children have
	 * started: it finds its parent in this note to itself. */
	if (sm.type == KR_SUPERVISOR)
		krx_send(kr_self(), TAG_PARENT, &parent, sizeof parent);
	else
		krx_send(parent, TAG_ACK, NULL, 0);
	sm.start(sm.arg);
}

typedef struct await {
	kr_pid child, parent;
} await;

/* The child's report, or an exit message from the child or the parent. */
static int is_start_answer(const kr_msg *m, void *ctx)
{
	const await *a = ctx;
	if (m->tag == TAG_ACK)
		return m->sender == a->child;
	const kr_exit_msg *e = kr_msg_exit(m);
	return e && (e->from == a->child || e->from == a->parent);
}

static _Noreturn void stop_all_and_end(sup *s, const kr_reason *reason);

/* Spawn c and wait until it reports that it started: 0, or KR_ESTART
 * (reported). If the parent's exit message comes first, the supervisor
 * stops everything and ends (with c among its children). */
static int start_child(sup *s, child *c)
{
	const spec *sp = c->sp;
	kr_spawn_opts o = { .stack_size = sp->stack_size, .max_heap = sp->max_heap,
		            .name = sp->label, .link = 1, .max_mailbox = sp->max_mailbox,
		            .mailbox_policy = sp->mailbox_policy };
	kr_pid pid = krx_spawn_child(child_main, NULL, &o, s->self); /* kr_info names us */
	kr_reason why = { .kind = KR_EXIT_ERROR };
	if (pid < 0) {
		snprintf(why.text, sizeof why.text, "spawn: %s", kr_strerror((int)pid));
		report_reason(s, c, 0, "failed to start", &why);
		return KR_ESTART;
	}
	start_msg sm = { .init = sp->init, .start = sp->start, .arg = c->arg, .type = sp->type };
	int rc = krx_send(pid, TAG_START, &sm, sizeof sm);
	if (rc) {
		kr_unlink(pid);
		kr_exit_sig(pid, KR_EXIT_KILL);
		snprintf(why.text, sizeof why.text, "send: %s", kr_strerror(rc));
		report_reason(s, c, pid, "failed to start", &why);
		return KR_ESTART;
	}
	await a = { pid, s->parent };
	kr_msg *m;
	kr_recv_match(&m, is_start_answer, &a, KR_INFINITY);
	const kr_exit_msg *e = kr_msg_exit(m);
	if (!e) {
		kr_msg_free(m);
		set_running(s, c, pid);
		return 0;
	}
	why = e->reason;
	kr_pid from = e->from;
	kr_msg_free(m);
	if (from != pid) {
		set_running(s, c, pid);
		stop_all_and_end(s, &why);
	}
	report_reason(s, c, pid, "failed to start", &why);
	return KR_ESTART;
}

/* ---- stopping children ---- */

static int is_exit_of_stopping(const kr_msg *m, void *ctx)
{
	const kr_exit_msg *e = kr_msg_exit(m);
	child *c = e ? by_pid(ctx, e->from) : NULL;
	return c && c->stop == STOP_ASKED;
}

static int is_down_of_stopping(const kr_msg *m, void *ctx)
{
	const kr_down_msg *d = kr_msg_down(m);
	child *c = d ? by_pid(ctx, d->pid) : NULL;
	return c && (c->stop == STOP_ASKED || c->stop == STOP_EXITED) && c->mon == d->ref;
}

/* Did c end as a stop with this shutdown setting should end it? OTP's
 * rule: shutdown (killed for brutal_kill), or normal for a child that is
 * not permanent. */
static bool stopped_cleanly(const child *c, long shutdown)
{
	int want = shutdown == KR_SHUTDOWN_BRUTAL ? KR_EXIT_KILLED : KR_EXIT_SHUTDOWN;
	return c->why.kind == want ||
	       (c->why.kind == KR_EXIT_NORMAL && c->sp->restart != KR_PERMANENT);
}

/* c did not end as a stop should end it (OTP's shutdown_error): say how it
 * ended instead, in words a reader of the log needs no source for. */
static void report_unclean_stop(const sup *s, const child *c, long shutdown, bool killed)
{
	char what[80];
	if (c->ended_first)
		snprintf(what, sizeof what, "had already ended by itself when it was to be stopped");
	else if (killed && c->why.kind == KR_EXIT_KILLED)
		snprintf(what, sizeof what, "did not stop within %ld ms", shutdown);
	else
		snprintf(what, sizeof what, "ended with another reason than %s while being stopped",
		         shutdown == KR_SHUTDOWN_BRUTAL ? "kill" : "shutdown");
	report_reason(s, c, c->pid, what, &c->why);
}

/*
 * Stop the running children on the list (linked by snext), all at once,
 * as `shutdown` says. Each is monitored and unlinked first, so that no
 * exit message can come from it afterwards; an exit message it already
 * queued is taken here (it ended by itself, and that is its reason).
 * Then shutdown (or kill) goes to the others, and the DOWNs are awaited:
 * until the timeout, after which the ones left are killed, or for as long
 * as it takes. Afterwards none of them is running.
 */
static void stop_list(sup *s, child *list, long shutdown)
{
	size_t pending = 0;
	for (child *c = list; c; c = c->snext) {
		c->mon = kr_monitor(c->pid);
		kr_unlink(c->pid);
		c->stop = STOP_ASKED;
		if (c->mon < 0) { /* no memory for a monitor: kill, and poll */
			kr_exit_sig(c->pid, KR_EXIT_KILL);
			while (kr_is_alive(c->pid))
				kr_sleep(1);
			c->why = (kr_reason){ .kind = KR_EXIT_KILLED };
			c->stop = STOP_DONE;
			continue;
		}
		pending++;
	}
	kr_msg *m;
	while (kr_recv_match(&m, is_exit_of_stopping, s, 0) == 0) {
		const kr_exit_msg *e = kr_msg_exit(m);
		child *c = by_pid(s, e->from);
		c->why = e->reason;
		c->stop = STOP_EXITED;
		c->ended_first = true;
		kr_msg_free(m);
	}
	int sig = shutdown == KR_SHUTDOWN_BRUTAL ? KR_EXIT_KILL : KR_EXIT_SHUTDOWN;
	for (child *c = list; c; c = c->snext)
		if (c->stop == STOP_ASKED)
			kr_exit_sig(c->pid, sig);
	int64_t deadline = shutdown > 0 ? now_ms() + shutdown : -1;
	bool killed = false;
	while (pending) {
		long wait = KR_INFINITY;
		if (deadline >= 0 && !killed) {
			int64_t left = deadline - now_ms();
			wait = left > 0 ? (long)left : 0;
		}
		if (kr_recv_match(&m, is_down_of_stopping, s, wait) == KR_ETIMEDOUT) {
			for (child *c = list; c; c = c->snext)
				if (c->stop == STOP_ASKED)
					kr_exit_sig(c->pid, KR_EXIT_KILL);
			killed = true;
			continue;
		}
		const kr_down_msg *d = kr_msg_down(m);
		child *c = by_pid(s, d->pid);
		if (c->stop == STOP_ASKED)
			c->why = d->reason;
		c->stop = STOP_DONE;
		pending--;
		kr_msg_free(m);
	}
	for (child *c = list, *next; c; c = next) {
		next = c->snext;
		if (!stopped_cleanly(c, shutdown))
			report_unclean_stop(s, c, shutdown, killed);
		c->stop = STOP_NONE;
		c->ended_first = false;
		c->snext = NULL;
		c->restarting = false;
		set_stopped(s, c);
	}
}

static void stop_one(sup *s, child *c)
{
	if (c->pid) {
		c->snext = NULL;
		stop_list(s, c, c->sp->shutdown);
	}
	c->restarting = false;
}

/* Stop the running children from the last one back to (not including)
 * `until` (NULL: all), one after the other; temporary ones are then
 * forgotten. simple_one_for_one's children are all stopped at once, as
 * OTP does (their order means nothing). */
static void stop_back_to(sup *s, child *until)
{
	if (s->strategy == KR_SIMPLE_ONE_FOR_ONE) {
		child *list = NULL;
		for (child *c = s->last; c; c = c->prev) {
			if (c->pid) {
				c->snext = list;
				list = c;
			}
		}
		if (list)
			stop_list(s, list, s->tmpl.shutdown);
		while (s->first)
			child_del(s, s->first);
		return;
	}
	for (child *c = s->last, *prev; c && c != until; c = prev) {
		prev = c->prev;
		stop_one(s, c);
		if (c->sp->restart == KR_TEMPORARY)
			child_del(s, c);
	}
}

/* End the calling process with this reason (a reason taken from an exit
 * message is always a valid one to end with; shutdown if not). */
static _Noreturn void end_with(const kr_reason *reason)
{
	kr_exit_reason(reason);
	kr_exit(KR_EXIT_SHUTDOWN);
	__builtin_unreachable();
}

static _Noreturn void stop_all_and_end(sup *s, const kr_reason *reason)
{
	stop_back_to(s, NULL);
	end_with(reason);
}

/* ---- restarts ---- */

/* Count a restart now: false if that makes more than max_restarts within
 * period_ms (OTP keeps the restarts no older than the period and fails
 * when there are more than the intensity). */
static bool add_restart(sup *s)
{
	int64_t now = now_ms();
	while (s->ring_n && now - s->ring[s->ring_head] > s->period_ms) {
		s->ring_head = (s->ring_head + 1) % s->ring_cap;
		s->ring_n--;
	}
	if (s->ring_n >= s->max_restarts)
		return false;
	if (s->ring_n == s->ring_cap) {
		/* Grow, oldest first: the ring holds at most max_restarts. */
		int cap = s->ring_cap ? 2 * s->ring_cap : 4;
		if (cap > s->max_restarts)
			cap = s->max_restarts;
		int64_t *v = kr_alloc((size_t)cap * sizeof *v);
		if (!v)
			return false; /* no memory to count with: give up */
		for (int i = 0; i < s->ring_n; i++)
			v[i] = s->ring[(s->ring_head + i) % s->ring_cap];
		kr_free(s->ring);
		s->ring = v;
		s->ring_cap = cap;
		s->ring_head = 0;
	}
	s->ring[(s->ring_head + s->ring_n) % s->ring_cap] = now;
	s->ring_n++;
	return true;
}

/* start_child for a restart, counted and reported. */
static int restart_child(sup *s, child *c)
{
	int rc = start_child(s, c);
	if (rc == 0) {
		c->restarts++;
		c->restarted_ms = now_ms();
		krx_vm_count_restart();
		report_progress(s, c, "restarted");
	}
	return rc;
}

/* Restart, in order, every child from c on that is not running; the
 * first that fails is returned (and those after it are left stopped). */
static child *restart_from(sup *s, child *c)
{
	for (; c; c = c->next)
		if (!c->pid && restart_child(s, c))
			return c;
	return NULL;
}

/* c (not running) is to be restarted: count it, and apply the strategy.
 * A restart that fails is retried through a message to ourselves, as OTP
 * does, so that requests and exits queued meanwhile are served first;
 * each retry counts as a restart. */
static void restart(sup *s, child *c)
{
	if (!add_restart(s)) {
		char me[80];
		if (krx_log_on(KR_LOG_ERROR))
			krx_log(KR_LOG_ERROR,
			        "krill: supervisor %s: reached max restart intensity "
			        "(more than %d restarts in %ld ms), shutting down",
			        sup_who(s, me, sizeof me), s->max_restarts, s->period_ms);
		kr_reason r = { .kind = KR_EXIT_SHUTDOWN };
		snprintf(r.text, sizeof r.text, "reached max restart intensity");
		stop_all_and_end(s, &r);
	}
	child *failed;
	switch (s->strategy) {
	case KR_ONE_FOR_ALL:
		stop_back_to(s, NULL);
		failed = restart_from(s, s->first);
		break;
	case KR_REST_FOR_ONE:
		stop_back_to(s, c);
		failed = restart_from(s, c);
		break;
	default:
		failed = restart_child(s, c) ? c : NULL;
		break;
	}
	if (failed) {
		failed->restarting = true;
		krx_send(s->self, TAG_RETRY, &failed->key, sizeof failed->key);
	}
}

/* A child's exit message. */
static void child_ended(sup *s, child *c, const kr_reason *reason)
{
	kr_pid pid = c->pid;
	set_stopped(s, c);
	/* As OTP's child_terminated: every end of a permanent child (it was
	 * meant to run for ever, so even a normal end is news), and the
	 * abnormal ends of the others. */
	if (abnormal(reason->kind) || c->sp->restart == KR_PERMANENT)
		report_reason(s, c, pid, "terminated", reason);
	bool again = c->sp->restart == KR_PERMANENT ||
	             (c->sp->restart == KR_TRANSIENT && abnormal(reason->kind));
	if (!again) {
		child_forget_maybe(s, c);
		return;
	}
	restart(s, c);
}

static void retry(sup *s, uint64_t key)
{
	child *c = by_key(s, key);
	if (c && c->restarting && !c->pid)
		restart(s, c);
}

/* ---- requests ---- */

typedef struct req_start {
	int has_spec;
	spec sp;
	void *arg;
} req_start;

typedef struct req_id {
	char id[KR_SUP_ID_MAX + 1];
	kr_pid pid;
} req_id;

typedef struct reply {
	int rc;
	kr_pid pid;
} reply;

static reply do_start_child(sup *s, const req_start *rq)
{
	bool simple = s->strategy == KR_SIMPLE_ONE_FOR_ONE;
	if (simple == (rq->has_spec != 0))
		return (reply){ KR_EINVAL, 0 };
	if (!simple && by_id(s, rq->sp.id))
		return (reply){ KR_EEXIST, 0 };
	child *c = child_add(s, simple ? NULL : &rq->sp, rq->arg);
	if (!c)
		return (reply){ KR_ENOMEM, 0 };
	if (start_child(s, c)) {
		child_del(s, c);
		return (reply){ KR_ESTART, 0 };
	}
	if (!simple)
		report_progress(s, c, "started");
	return (reply){ 0, c->pid };
}

static reply do_terminate_child(sup *s, const req_id *rq)
{
	bool simple = s->strategy == KR_SIMPLE_ONE_FOR_ONE;
	if (simple != (rq->id[0] == 0))
		return (reply){ KR_EINVAL, 0 };
	child *c = simple ? by_pid(s, rq->pid) : by_id(s, rq->id);
	if (!c)
		return (reply){ KR_ENOPROC, 0 };
	stop_one(s, c);
	child_forget_maybe(s, c);
	return (reply){ 0, 0 };
}

/* The child named by the request, if it is not running and no restart of
 * it is pending (for restart_child and delete_child). */
static int stopped_child(sup *s, const req_id *rq, child **out)
{
	if (s->strategy == KR_SIMPLE_ONE_FOR_ONE)
		return KR_EINVAL;
	child *c = by_id(s, rq->id);
	if (!c)
		return KR_ENOPROC;
	if (c->pid || c->restarting)
		return KR_EEXIST;
	*out = c;
	return 0;
}

static reply do_restart_child(sup *s, const req_id *rq)
{
	child *c;
	int rc = stopped_child(s, rq, &c);
	if (!rc && start_child(s, c))
		rc = KR_ESTART;
	if (!rc)
		report_progress(s, c, "started");
	return (reply){ rc, rc ? 0 : c->pid };
}

static reply do_delete_child(sup *s, const req_id *rq)
{
	child *c;
	int rc = stopped_child(s, rq, &c);
	if (!rc)
		child_del(s, c);
	return (reply){ rc, 0 };
}

static void do_which_children(sup *s, const kr_msg *m)
{
	size_t max = 0;
	if (m->len == sizeof max)
		memcpy(&max, m->data, sizeof max);
	if (max > s->nchildren)
		max = s->nchildren;
	size_t len = sizeof(int) + max * sizeof(kr_sup_child);
	char *out = kr_alloc(len);
	if (!out) {
		int rc = KR_ENOMEM;
		krx_reply(m, TAG_REPLY, &rc, sizeof rc);
		return;
	}
	int total = (int)s->nchildren;
	memcpy(out, &total, sizeof total);
	kr_sup_child *v = (kr_sup_child *)(out + sizeof total);
	size_t i = 0;
	for (child *c = s->first; c && i < max; c = c->next, i++) {
		kr_sup_child w = { .pid = c->pid, .type = c->sp->type, .restart = c->sp->restart,
			           .restarts = c->restarts };
		if (s->strategy != KR_SIMPLE_ONE_FOR_ONE)
			memcpy(w.id, c->sp->id, sizeof w.id);
		memcpy(&v[i], &w, sizeof w);
	}
	krx_reply(m, TAG_REPLY, out, len);
	kr_free(out);
}

static void do_describe(sup *s, const kr_msg *m)
{
	size_t max = 0;
	if (m->len == sizeof max)
		memcpy(&max, m->data, sizeof max);
	if (max > s->nchildren)
		max = s->nchildren;
	int head[2] = { (int)s->nchildren, s->strategy };
	size_t len = sizeof head + max * sizeof(krx_sup_desc_child);
	char *out = kr_alloc(len);
	if (!out) {
		int rc = KR_ENOMEM;
		krx_reply(m, TAG_REPLY, &rc, sizeof rc);
		return;
	}
	memcpy(out, head, sizeof head);
	krx_sup_desc_child *v = (krx_sup_desc_child *)(void *)(out + sizeof head);
	int64_t now = now_ms();
	size_t i = 0;
	for (child *c = s->first; c && i < max; c = c->next, i++) {
		krx_sup_desc_child w = { .c = { .pid = c->pid, .type = c->sp->type,
			                         .restart = c->sp->restart, .restarts = c->restarts },
			                 .restarted_ago_ms = c->restarted_ms ? now - c->restarted_ms : -1 };
		if (s->strategy != KR_SIMPLE_ONE_FOR_ONE)
			memcpy(w.c.id, c->sp->id, sizeof w.c.id);
		memcpy(&v[i], &w, sizeof w);
	}
	krx_reply(m, TAG_REPLY, out, len);
	kr_free(out);
}

static kr_sup_counts do_count_children(const sup *s)
{
	kr_sup_counts n = { .specs = s->strategy == KR_SIMPLE_ONE_FOR_ONE ? 1 : s->nchildren,
		            .active = s->nrunning };
	for (child *c = s->first; c; c = c->next) {
		if (c->sp->type == KR_SUPERVISOR)
			n.supervisors++;
		else
			n.workers++;
	}
	return n;
}

static void serve(sup *s, const kr_msg *m)
{
	reply r = { KR_EINVAL, 0 };
	switch (m->tag) {
	case TAG_REQ_START:
		if (m->len == sizeof(req_start))
			r = do_start_child(s, m->data);
		break;
	case TAG_REQ_TERMINATE:
		if (m->len == sizeof(req_id))
			r = do_terminate_child(s, m->data);
		break;
	case TAG_REQ_RESTART:
		if (m->len == sizeof(req_id))
			r = do_restart_child(s, m->data);
		break;
	case TAG_REQ_DELETE:
		if (m->len == sizeof(req_id))
			r = do_delete_child(s, m->data);
		break;
	case TAG_REQ_WHICH:
		do_which_children(s, m);
		return;
	case TAG_REQ_DESCRIBE:
		do_describe(s, m);
		return;
	case TAG_REQ_COUNT: {
		kr_sup_counts n = do_count_children(s);
		krx_reply(m, TAG_REPLY, &n, sizeof n);
		return;
	}
	}
	krx_reply(m, TAG_REPLY, &r, sizeof r);
}

/* ---- the supervisor ---- */

static _Noreturn void loop(void *arg)
{
	sup *s = arg;
	for (;;) {
		kr_msg *m;
		int rc = kr_recv(&m, s->hibernates ? HIBERNATE_AFTER_MS : KR_INFINITY);
		if (rc == KR_ETIMEDOUT)
			kr_hibernate(loop, s); /* starts again here, on a fresh stack */
		if (rc)
			continue;
		const kr_exit_msg *e = kr_msg_exit(m);
		if (e) {
			kr_pid from = e->from;
			kr_reason reason = e->reason;
			kr_msg_free(m);
			if (from == s->parent)
				stop_all_and_end(s, &reason);
			child *c = by_pid(s, from);
			if (c)
				child_ended(s, c, &reason);
			continue; /* not a child's: ignored, as OTP does */
		}
		if (m->tag == TAG_RETRY && m->sender == s->self && m->len == sizeof(uint64_t)) {
			uint64_t key;
			memcpy(&key, m->data, sizeof key);
			kr_msg_free(m);
			retry(s, key);
			continue;
		}
		if (m->ref > 0 && m->tag >= TAG_REQ_START && m->tag < TAG_REPLY)
			serve(s, m);
		kr_msg_free(m); /* and anything else: late reports, strays */
	}
}

/* A supervisor's state, on the calling process's heap; NULL if memory is
 * short. From here the process is a supervisor (kr_sup_* requests to it
 * are sent, not refused with KR_ENOTSUP: they wait in its mailbox until
 * its loop runs). */
static sup *sup_new(const kr_sup_flags *f, const spec *specs, size_t n, kr_pid parent)
{
	sup *s = kr_calloc(1, sizeof *s);
	if (!s || !(s->index = kr_calloc(16, sizeof *s->index)))
		return NULL;
	s->nbuckets = 16;
	s->strategy = f->strategy;
	s->max_restarts = f->max_restarts;
	s->period_ms = f->period_ms;
	s->self = kr_self();
	s->parent = parent;
	if (s->strategy == KR_SIMPLE_ONE_FOR_ONE)
		s->tmpl = specs[0];
	for (size_t i = 0; s->strategy != KR_SIMPLE_ONE_FOR_ONE && i < n; i++)
		if (!child_add(s, &specs[i], NULL))
			return NULL;
	return krx_proc_mark_supervisor(krx_proc_self()) ? NULL : s;
}

/* Start the children in order: 0, or KR_ESTART having stopped those that
 * had started (in reverse order). */
static int start_all(sup *s, kr_reason *why)
{
	child *failed = NULL;
	for (child *c = s->first; c && !failed; c = c->next)
		if (start_child(s, c))
			failed = c;
		else
			report_progress(s, c, "started");
	if (!failed)
		return 0;
	stop_back_to(s, NULL);
	why->kind = KR_EXIT_SHUTDOWN;
	snprintf(why->text, sizeof why->text, "failed to start child %s", failed->sp->id);
	return KR_ESTART;
}

static int is_exit_from(const kr_msg *m, void *ctx)
{
	const kr_exit_msg *e = kr_msg_exit(m);
	return e && e->from == *(const kr_pid *)ctx;
}

/* kr_sup_start_link's process: arg is the caller's pid. */
static void sup_main(void *arg)
{
	kr_pid parent = (kr_pid)(intptr_t)arg;
	kr_trap_exit(1);
	kr_msg *m;
	for (;;) {
		kr_recv(&m, KR_INFINITY);
		if (m->tag == TAG_INIT && m->sender == parent)
			break;
		if (is_exit_from(m, &parent)) /* the caller ended first */
			end_with(&kr_msg_exit(m)->reason);
		kr_msg_free(m);
	}
	const init_msg *im = m->data;
	char name[sizeof im->name];
	memcpy(name, im->name, sizeof name);
	kr_reason why = { .kind = KR_EXIT_SHUTDOWN };
	int rc = name[0] ? kr_register(name, kr_self()) : 0;
	sup *s = NULL;
	if (rc)
		snprintf(why.text, sizeof why.text, "name %s: %s", name, kr_strerror(rc));
	else if (!(s = sup_new(&im->flags, im->specs, im->n, parent)))
		rc = KR_ENOMEM;
	kr_msg_free(m);
	if (s && (rc = start_all(s, &why)) == 0) {
		krx_send(parent, TAG_ACK, &rc, sizeof rc);
		s->hibernates = true;
		loop(s);
	}
	/* Failed. The name goes now: the exit path frees it only after the
	 * caller has seen us end, and the caller may want it at once. Unlinked
	 * before the answer, so that our end does not end the caller. */
	if (name[0] && rc != KR_EEXIST)
		kr_unregister(name);
	kr_unlink(parent);
	krx_send(parent, TAG_ACK, &rc, sizeof rc);
	end_with(&why);
}

typedef struct start_wait {
	kr_pid sup;
	kr_ref ref;
} start_wait;

static int is_sup_answer(const kr_msg *m, void *ctx)
{
	const start_wait *w = ctx;
	const kr_down_msg *d = kr_msg_down(m);
	return d ? d->ref == w->ref : m->tag == TAG_ACK && m->sender == w->sup;
}

KR_API kr_pid kr_sup_start_link(const kr_sup_flags *flags, const kr_child_spec *specs, size_t n,
                                const char *name)
{
	kr_pid self = kr_self();
	if (self < 0)
		return self;
	kr_sup_flags f;
	if (flags_resolve(flags, n, &f) || (name && (!name[0] || strlen(name) > KR_NAME_MAX)))
		return KR_EINVAL;
	size_t len = sizeof(init_msg) + n * sizeof(spec);
	init_msg *im = kr_calloc(1, len);
	if (!im)
		return KR_ENOMEM;
	if (specs_resolve(specs, n, im->specs)) {
		kr_free(im);
		return KR_EINVAL;
	}
	im->flags = f;
	im->n = n;
	if (name)
		snprintf(im->name, sizeof im->name, "%s", name);
	start_wait w = { 0 };
	kr_spawn_opts o = { .name = name ? name : "supervisor", .link = 1, .monitor = &w.ref };
	w.sup = kr_spawn_opt(sup_main, (void *)(intptr_t)self, &o);
	int rc = w.sup < 0 ? (int)w.sup : krx_send(w.sup, TAG_INIT, im, len);
	kr_free(im);
	if (w.sup < 0)
		return w.sup;
	if (rc) {
		kr_unlink(w.sup);
		kr_exit_sig(w.sup, KR_EXIT_KILL);
		kr_demonitor(w.ref, 1);
		return rc;
	}
	kr_msg *m;
	kr_recv_match(&m, is_sup_answer, &w, KR_INFINITY);
	rc = KR_ESTART; /* a DOWN: it ended before answering */
	if (!kr_msg_down(m) && m->len == sizeof rc)
		memcpy(&rc, m->data, sizeof rc);
	bool down = kr_msg_down(m) != NULL;
	kr_msg_free(m);
	if (rc == 0) {
		kr_demonitor(w.ref, 1);
		return w.sup;
	}
	/* It is ending: return once it has (and its children with it). */
	if (!down && kr_recv_match(&m, is_sup_answer, &w, KR_INFINITY) == 0)
		kr_msg_free(m);
	return rc;
}

static int is_parent_note(const kr_msg *m, void *ctx)
{
	return m->tag == TAG_PARENT && m->sender == *(const kr_pid *)ctx &&
	       m->len == sizeof(kr_pid);
}

KR_API int kr_sup_run(const kr_sup_flags *flags, const kr_child_spec *specs, size_t n)
{
	if (!krx_proc_self())
		return KR_ENOTPROC; /* a host thread's mailbox cannot supervise */
	kr_pid self = kr_self();
	if (self < 0)
		return (int)self;
	kr_sup_flags f;
	if (flags_resolve(flags, n, &f))
		return KR_EINVAL;
	spec *v = kr_calloc(n ? n : 1, sizeof *v);
	if (!v)
		return KR_ENOMEM;
	if (specs_resolve(specs, n, v)) {
		kr_free(v);
		return KR_EINVAL;
	}
	/* Trapping from here on, so that no exit signal from the parent,
	 * not even a normal one, can be missed. */
	int trapped = kr_trap_exit(1);
	/* Started by a supervisor (child_main left a note): that is the
	 * parent to report to. Otherwise the parent is "host threads". */
	kr_pid parent = 0;
	kr_msg *m;
	if (kr_recv_match(&m, is_parent_note, &self, 0) == 0) {
		memcpy(&parent, m->data, sizeof parent);
		kr_msg_free(m);
	}
	sup *s = sup_new(&f, v, n, parent);
	kr_free(v);
	if (!s) {
		kr_trap_exit(trapped);
		return KR_ENOMEM;
	}
	kr_reason why;
	if (start_all(s, &why))
		end_with(&why);
	if (parent)
		krx_send(parent, TAG_ACK, NULL, 0);
	loop(s);
}

/* ---- the requests' client side ---- */

/* A request's answer: the reply's payload, in the reply message (a
 * process asked) or in raw memory (a host thread asked, through a proxy). */
typedef struct answer {
	const void *data;
	size_t len;
	kr_msg *msg;
	void *raw;
} answer;

static void answer_free(answer *a)
{
	kr_msg_free(a->msg);
	krx_free_raw(a->raw);
}

/* A host thread's request, as its proxy makes it. */
typedef struct host_req {
	kr_pid sup;
	uint64_t tag;
	long timeout_ms;
	size_t len;
	_Alignas(16) char req[sizeof(req_start)]; /* the largest request */
} host_req;

static int call_sup(kr_pid sup_pid, uint64_t tag, const void *req, size_t len, kr_msg **m,
                    long timeout_ms)
{
	int rc = krx_call(sup_pid, tag, req, len, m, timeout_ms);
	return rc == KR_EINVAL ? KR_ENOPROC : rc; /* a malformed pid names no supervisor */
}

static int request_for_host(const void *arg, krx_proxy_out *out)
{
	const host_req *h = arg;
	kr_msg *m;
	int rc = call_sup(h->sup, h->tag, h->len ? h->req : NULL, h->len, &m, h->timeout_ms);
	if (rc)
		return rc;
	rc = krx_proxy_put(out, m->data, m->len);
	kr_msg_free(m);
	return rc;
}

/* Send sup_pid a request and wait for the answer (see sup.h): 0 and *a
 * (answer_free it), or an error. */
static int request(kr_pid sup_pid, uint64_t tag, const void *req, size_t len, long timeout_ms,
                   answer *a)
{
	memset(a, 0, sizeof *a);
	if (!krx_timeout_valid(timeout_ms))
		return KR_EINVAL;
	if (sup_pid <= 0)
		return KR_ENOPROC;
	krx_proc *me = krx_proc_self();
	/* Relaxed: our own pid. */
	if (me && sup_pid == (kr_pid)AO_load(&me->live_pid))
		return KR_EINVAL;
	int rc = krx_proc_sup_check(sup_pid);
	if (rc)
		return rc;
	if (me) {
		if ((rc = call_sup(sup_pid, tag, req, len, &a->msg, timeout_ms)))
			return rc;
		a->data = a->msg->data;
		a->len = a->msg->len;
		return 0;
	}
	host_req h = { .sup = sup_pid, .tag = tag, .timeout_ms = timeout_ms, .len = len };
	if (len)
		memcpy(h.req, req, len);
	krx_proxy_out o;
	if ((rc = krx_proxy_run(request_for_host, &h, sizeof h, timeout_ms, &o)))
		return rc;
	a->data = a->raw = o.data;
	a->len = o.len;
	return 0;
}

/* A request answered with a `reply`: its pid, or its error. */
static kr_pid request_reply(kr_pid sup_pid, uint64_t tag, const void *req, size_t len,
                            long timeout_ms)
{
	answer a;
	int rc = request(sup_pid, tag, req, len, timeout_ms, &a);
	if (rc)
		return rc;
	reply r = { KR_EINVAL, 0 };
	if (a.len == sizeof r)
		memcpy(&r, a.data, sizeof r);
	answer_free(&a);
	return r.rc ? r.rc : r.pid;
}

static int id_request(req_id *rq, const char *id)
{
	memset(rq, 0, sizeof *rq);
	if (!valid_id(id))
		return KR_EINVAL;
	snprintf(rq->id, sizeof rq->id, "%s", id);
	return 0;
}

KR_API kr_pid kr_sup_start_child_timeout(kr_pid sup_pid, const kr_child_spec *spec_in, void *arg,
                                         long timeout_ms)
{
	req_start rq;
	memset(&rq, 0, sizeof rq);
	rq.has_spec = spec_in != NULL;
	rq.arg = arg;
	if (spec_in && spec_resolve(spec_in, &rq.sp))
		return KR_EINVAL;
	return request_reply(sup_pid, TAG_REQ_START, &rq, sizeof rq, timeout_ms);
}

KR_API kr_pid kr_sup_start_child(kr_pid sup_pid, const kr_child_spec *spec_in, void *arg)
{
	return kr_sup_start_child_timeout(sup_pid, spec_in, arg, KR_INFINITY);
}

KR_API int kr_sup_terminate_child_timeout(kr_pid sup_pid, const char *id, kr_pid child_pid,
                                          long timeout_ms)
{
	req_id rq;
	if (id) {
		if (child_pid != 0 || id_request(&rq, id))
			return KR_EINVAL;
	} else {
		if (child_pid <= 0)
			return KR_EINVAL;
		memset(&rq, 0, sizeof rq);
		rq.pid = child_pid;
	}
	return (int)request_reply(sup_pid, TAG_REQ_TERMINATE, &rq, sizeof rq, timeout_ms);
}

KR_API int kr_sup_terminate_child(kr_pid sup_pid, const char *id, kr_pid child_pid)
{
	return kr_sup_terminate_child_timeout(sup_pid, id, child_pid, KR_INFINITY);
}

KR_API kr_pid kr_sup_restart_child_timeout(kr_pid sup_pid, const char *id, long timeout_ms)
{
	req_id rq;
	if (id_request(&rq, id))
		return KR_EINVAL;
	return request_reply(sup_pid, TAG_REQ_RESTART, &rq, sizeof rq, timeout_ms);
}

KR_API kr_pid kr_sup_restart_child(kr_pid sup_pid, const char *id)
{
	return kr_sup_restart_child_timeout(sup_pid, id, KR_INFINITY);
}

KR_API int kr_sup_delete_child_timeout(kr_pid sup_pid, const char *id, long timeout_ms)
{
	req_id rq;
	if (id_request(&rq, id))
		return KR_EINVAL;
	return (int)request_reply(sup_pid, TAG_REQ_DELETE, &rq, sizeof rq, timeout_ms);
}

KR_API int kr_sup_delete_child(kr_pid sup_pid, const char *id)
{
	return kr_sup_delete_child_timeout(sup_pid, id, KR_INFINITY);
}

KR_API int kr_sup_which_children_timeout(kr_pid sup_pid, kr_sup_child *out, size_t max,
                                         long timeout_ms)
{
	if (max && !out)
		return KR_EINVAL;
	answer a;
	int rc = request(sup_pid, TAG_REQ_WHICH, &max, sizeof max, timeout_ms, &a);
	if (rc)
		return rc;
	int total = KR_EINVAL;
	if (a.len >= sizeof total) {
		memcpy(&total, a.data, sizeof total);
		size_t got = (a.len - sizeof total) / sizeof *out;
		if (got)
			memcpy(out, (const char *)a.data + sizeof total, got * sizeof *out);
	}
	answer_free(&a);
	return total;
}

KR_API int kr_sup_which_children(kr_pid sup_pid, kr_sup_child *out, size_t max)
{
	return kr_sup_which_children_timeout(sup_pid, out, max, KR_INFINITY);
}

KR_API int kr_sup_count_children_timeout(kr_pid sup_pid, kr_sup_counts *out, long timeout_ms)
{
	if (!out)
		return KR_EINVAL;
	answer a;
	int rc = request(sup_pid, TAG_REQ_COUNT, NULL, 0, timeout_ms, &a);
	if (rc)
		return rc;
	rc = KR_EINVAL;
	if (a.len == sizeof *out) {
		memcpy(out, a.data, sizeof *out);
		rc = 0;
	}
	answer_free(&a);
	return rc;
}

KR_API int kr_sup_count_children(kr_pid sup_pid, kr_sup_counts *out)
{
	return kr_sup_count_children_timeout(sup_pid, out, KR_INFINITY);
}

int krx_sup_describe(kr_pid sup_pid, int *strategy, krx_sup_desc_child *out, size_t max,
                     long timeout_ms)
{
	if (max && !out)
		return KR_EINVAL;
	answer a;
	int rc = request(sup_pid, TAG_REQ_DESCRIBE, &max, sizeof max, timeout_ms, &a);
	if (rc)
		return rc;
	int head[2] = { KR_EINVAL, 0 };
	if (a.len == sizeof(int))
		memcpy(head, a.data, sizeof(int)); /* its error */
	if (a.len >= sizeof head) {
		memcpy(head, a.data, sizeof head);
		*strategy = head[1];
		size_t got = (a.len - sizeof head) / sizeof *out;
		if (got)
			memcpy(out, (const char *)a.data + sizeof head, got * sizeof *out);
	}
	answer_free(&a);
	return head[0];
}
