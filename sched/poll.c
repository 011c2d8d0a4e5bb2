/*
 * poll.c - the I/O poller: one epoll instance for the VM, tasks parked on
 * descriptors, and the scheduler that sleeps in epoll_wait (see poll.h).
 *
 * A task that waits on a descriptor puts a waiter record (on its own stack)
 * on that descriptor's entry, in a table indexed by descriptor number, and
 * arms the descriptor in epoll, EPOLLONESHOT, for what all its waiters
 * want. A notification request (krx_poll_notify: vm/'s kr_fd_notify, for a
 * process that waits for other things meanwhile, or hibernates) is a
 * record of the same kind, on the heap, on the entry's second list: it has
 * no task to wake, but a function to call once, after which it is freed.
 * Several tasks may wait on one descriptor (a reader and a writer,
 * several acceptors): an event wakes those it concerns and arms the
 * descriptor again for the others. Every wait arms afresh (one epoll_ctl),
 * so a descriptor that was closed and its number reused behind our back is
 * simply added anew.
 *
 * Invariants:
 *  - A waiter record is linked into its entry, and unlinked, only under the
 *    entry's lock, and its task unlinks it (under the lock) before
 *    krx_poll_wait returns, unless the waker that unlinked it said so
 *    (woken). So whoever holds the lock and finds a record may touch it.
 *  - One CAS on the task's state word, from the waiting word recorded when
 *    the record was linked (KRX_WAIT_IO), decides the wake-up. The poller,
 *    kr_close and an interrupt (an exit signal) try it under the entry's
 *    lock; the wait's timer tries it from its scheduler loop. Exactly one
 *    wins, and only the winner queues the task.
 *  - The record is linked in the park's commit, after the waiting word is
 *    published: an event can never find the task still running. Until the
 *    commit drops the lock no one can wake the task (the wakers above need
 *    the lock, and the timer fires on the commit's own thread), so the
 *    record the commit was given is alive throughout.
 *  - While tasks wait, a ready descriptor is always seen: a scheduler that
 *    parks waits in epoll if no other does (the sleeper) and on its futex
 *    otherwise; busy schedulers poll without waiting every INJECT_EVERY
 *    ticks and whenever they run out of work, if no scheduler sleeps in
 *    epoll. A task can only start waiting from a running scheduler, which
 *    polls or becomes the sleeper in its turn.
 */
#include "poll.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mi.h"

#define CHUNK_BITS 10
#define CHUNK (1u << CHUNK_BITS)
#define MAX_FDS ((size_t)1 << 24) /* entries at most, whatever RLIMIT_NOFILE says */
#define EVENTS 64                 /* events taken per epoll_wait, per scheduler */
#define KICK_TAG UINT64_MAX       /* epoll data of the eventfd that kicks the sleeper */

typedef struct waiter {
	struct waiter *prev, *next;
	krx_task *task;     /* NULL for a notification request */
	krx_poll_notify_fn *notify; /* ... which calls notify(owner ...) instead */
	uint64_t owner;
	AO_t word;          /* the waiting state word the wake-up CAS expects */
	const AO_t *cancel; /* nonzero: do not park (an exit signal waits) */
	int fd;
	unsigned events;    /* KR_READABLE | KR_WRITABLE */
	unsigned fired;     /* set by the waker that won */
	int err;            /* errno: arming failed, or kr_close closed fd */
	bool linked;
	bool woken;         /* a waker won and unlinked it */
} waiter;

typedef struct fd_entry {
	pthread_mutex_t lock;
	waiter *waiters;    /* parked tasks' records, on their stacks */
	waiter *notes;      /* notification requests, on the heap */
	AO_t word;          /* vm/'s (krx_poll_fd_word) */
} fd_entry;

static struct {
	int epfd, kickfd;
	size_t max_fds;
	AO_t *chunks;              /* fd_entry[CHUNK] each, published with release */
	pthread_mutex_t grow;
	struct epoll_event *bufs;  /* EVENTS per scheduler, its thread's alone */
	AO_t nwait;                /* waiter records of tasks linked */
	AO_t nnote;                /* notification requests linked */
	AO_t sleeper;              /* id + 1 of the scheduler in a blocking epoll_wait */
	AO_t polling;              /* a non-blocking poll is under way */
	AO_t wakeups;
	AO_t no_pwait2;            /* epoll_pwait2 said ENOSYS (qemu-user) */
} P = { .epfd = -1, .kickfd = -1 };

/* ---- the table ---- */

static fd_entry *make_chunk(AO_t *cp)
{
	pthread_mutex_lock(&P.grow);
	fd_entry *c = (fd_entry *)AO_load(cp);
	if (!c && (c = krx_calloc_raw(CHUNK, sizeof *c))) {
		for (unsigned i = 0; i < CHUNK; i++)
			pthread_mutex_init(&c[i].lock, NULL);
		/* Release: whoever sees the chunk sees its locks made. */
		AO_store_release(cp, (AO_t)c);
	}
	pthread_mutex_unlock(&P.grow);
	return c;
}

/* fd's entry; with make, its chunk is made if need be. NULL: fd out of
 * range, or (make) memory is short, or (!make) never used. */
static fd_entry *entry(int fd, bool make)
{
	if (fd < 0 || (size_t)fd >= P.max_fds)
		return NULL;
	AO_t *cp = &P.chunks[(size_t)fd >> CHUNK_BITS];
	/* Acquire: pairs with make_chunk's release. */
	fd_entry *c = (fd_entry *)AO_load_acquire(cp);
	if (!c && make)
		c = make_chunk(cp);
	return c ? &c[fd & (CHUNK - 1)] : NULL;
}

AO_t *krx_poll_fd_word(int fd)
{
	fd_entry *e = entry(fd, true);
	return e ? &e->word : NULL;
}

int krx_poll_start(unsigned schedulers)
{
	memset(&P, 0, sizeof P);
	P.epfd = P.kickfd = -1;
	P.max_fds = MAX_FDS;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < MAX_FDS)
		P.max_fds = (size_t)rl.rlim_max;
	pthread_mutex_init(&P.grow, NULL);
	P.chunks = krx_calloc_raw((P.max_fds + CHUNK - 1) / CHUNK, sizeof *P.chunks);
	P.bufs = krx_calloc_raw((size_t)schedulers * EVENTS, sizeof *P.bufs);
	P.epfd = epoll_create1(EPOLL_CLOEXEC);
	P.kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event kick = { .events = EPOLLIN, .data.u64 = KICK_TAG };
	if (!P.chunks || !P.bufs || P.epfd < 0 || P.kickfd < 0 ||
	    epoll_ctl(P.epfd, EPOLL_CTL_ADD, P.kickfd, &kick)) {
		krx_poll_free();
		return KR_ENOMEM;
	}
	return 0;
}

void krx_poll_free(void)
{
	size_t nchunks = (P.max_fds + CHUNK - 1) / CHUNK;
	for (size_t i = 0; P.chunks && i < nchunks; i++) {
		fd_entry *c = (fd_entry *)AO_load(&P.chunks[i]);
		if (!c)
			continue;
		for (unsigned k = 0; k < CHUNK; k++) {
			/* Requests whose descriptors never became ready nor were
			 * closed (the tasks' records went with their stacks). */
			for (waiter *w = c[k].notes, *next; w; w = next) {
				next = w->next;
				krx_free_raw(w);
			}
			pthread_mutex_destroy(&c[k].lock);
		}
		krx_free_raw(c);
	}
	krx_free_raw(P.chunks);
	krx_free_raw(P.bufs);
	if (P.epfd >= 0)
		close(P.epfd);
	if (P.kickfd >= 0)
		close(P.kickfd);
	pthread_mutex_destroy(&P.grow);
	memset(&P, 0, sizeof P);
	P.epfd = P.kickfd = -1;
}

size_t krx_poll_waiting(void)
{
	return AO_load(&P.nwait);
}

uint64_t krx_poll_wakeups(void)
{
	return AO_load(&P.wakeups);
}

/* ---- waiters (the entry's lock held) ---- */

/* The list w belongs on, and the count of such records. */
static waiter **list_of(fd_entry *e, const waiter *w)
{
	return w->task ? &e->waiters : &e->notes;
}

static AO_t *count_of(const waiter *w)
{
	return w->task ? &P.nwait : &P.nnote;
}

static void link_waiter(fd_entry *e, waiter *w)
{
	waiter **head = list_of(e, w);
	w->prev = NULL;
	w->next = *head;
	if (*head)
		(*head)->prev = w;
	*head = w;
	w->linked = true;
	/* Relaxed: a count for heuristics and statistics. */
	AO_fetch_and_add1(count_of(w));
}

static void unlink_waiter(fd_entry *e, waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		*list_of(e, w) = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->linked = false;
	AO_fetch_and_sub1(count_of(w));
}

/* Do records wait on any descriptor? Relaxed: a hint (see the invariants
 * at the top). */
static bool anyone_waits(void)
{
	return AO_load(&P.nwait) || AO_load(&P.nnote);
}

/* Arm fd in epoll for what e's waiters want, if any. 0 or an errno. */
static int arm_fd(fd_entry *e, int fd)
{
	unsigned want = 0;
	for (waiter *w = e->waiters; w; w = w->next)
		want |= w->events;
	for (waiter *w = e->notes; w; w = w->next)
		want |= w->events;
	if (!want)
		return 0;
	struct epoll_event ev = {
		.events = EPOLLONESHOT | (want & KR_READABLE ? EPOLLIN : 0u) |
		          (want & KR_WRITABLE ? EPOLLOUT : 0u),
		.data.u64 = (uint64_t)fd,
	};
	if (epoll_ctl(P.epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	if (errno == ENOENT && epoll_ctl(P.epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return 0;
	return errno;
}

/* What a waker found to do once it drops the entry's lock. */
typedef struct wakeups {
	krx_task *tasks; /* to queue, chained through their next links */
	waiter *notes;   /* notification requests fired, chained through next */
} wakeups;

/* Try to win w's wake-up; w is unlinked either way (a loser's task finds it
 * so). The winner records why and chains the task on wk, to be queued once
 * the lock is dropped: until then the task cannot run, so w stays alive. A
 * notification request always wins: nothing else can take it once it is
 * unlinked. Returns 1 if won. */
static unsigned wake_locked(fd_entry *e, waiter *w, unsigned fired, int err, wakeups *wk)
{
	krx_task *t = w->task;
	unlink_waiter(e, w);
	/* Full: against the timer's CAS on the same word (the other wakers
	 * hold this lock); acquire, to see what the parked task published. */
	if (t && !AO_compare_and_swap_full(&t->state, w->word,
	                                    (w->word & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE))
		return 0;
	w->fired = fired;
	w->err = err;
	if (!t) {
		w->next = wk->notes;
		wk->notes = w;
		return 1;
	}
	w->woken = true;
	/* The task is in no queue while parked: its link is free. */
	t->next = wk->tasks;
	wk->tasks = t;
	return 1;
}

/* Wake every record on *head (tasks' or notes'): with err (fd was
 * closed), or else as if what each waits for had fired. Returns how many
 * were woken. */
static unsigned wake_list(fd_entry *e, waiter **head, int err, wakeups *wk)
{
	unsigned woke = 0;
	while (*head)
		woke += wake_locked(e, *head, err ? 0 : (*head)->events, err, wk);
	return woke;
}

/* The wakers' second half, the lock dropped: queue the tasks, send the
 * notifications (and free their records). */
static void ready_all(wakeups *wk)
{
	for (krx_task *t = wk->tasks, *next; t; t = next) {
		next = t->next;
		t->next = NULL;
		krx_task_ready(t);
	}
	for (waiter *w = wk->notes, *next; w; w = next) {
		next = w->next;
		w->notify(w->owner, w->fd, w->fired, w->err);
		krx_free_raw(w);
	}
}

/* ---- the task's side ---- */

/* The park's commit: link the record and arm the descriptor, unless an
 * exit signal is waiting or epoll refuses the descriptor. */
static bool arm(krx_task *t, void *arg)
{
	waiter *w = arg;
	fd_entry *e = entry(w->fd, false); /* made by krx_poll_wait */
	bool parked = true;
	/* Full: t's io_fd (stored before it parked) is visible before we look
	 * at the cancel word; see krx_poll_interrupt. */
	AO_nop_full();
	pthread_mutex_lock(&e->lock);
	if (w->cancel && AO_load(w->cancel)) {
		parked = false;
	} else {
		/* Relaxed: the waiting word just published by this thread; no
		 * one else can have moved it (see the invariants). */
		w->word = AO_load(&t->state);
		link_waiter(e, w);
		int err = arm_fd(e, w->fd);
		if (err) {
			unlink_waiter(e, w);
			parked = false;
			/* epoll takes no regular files: they are always ready,
			 * as poll(2) says. */
			if (err == EPERM)
				w->fired = w->events;
			else
				w->err = err;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return parked;
}

int krx_poll_wait(int fd, unsigned events, uint64_t deadline, const AO_t *cancel, int *err)
{
	krx_task *t = krx_task_self();
	fd_entry *e = entry(fd, true);
	if (!e)
		return fd < 0 || (size_t)fd >= P.max_fds ? KR_EINVAL : KR_ENOMEM;
	waiter w = { .task = t, .fd = fd, .events = events, .cancel = cancel };
	/* Relaxed: the commit's full fence publishes it (see arm). */
	AO_int_store(&t->io_fd, (unsigned)fd + 1);
	AO_t woke = krx_task_park(KRX_WAIT_IO, deadline, arm, &w);
	/* Resumed, perhaps on another thread: t is the same task. */
	if (!w.woken) {
		/* The timer won, or the commit did not park: take the record
		 * back if it is still there. */
		pthread_mutex_lock(&e->lock);
		if (w.linked)
			unlink_waiter(e, &w);
		pthread_mutex_unlock(&e->lock);
	}
	AO_int_store(&t->io_fd, 0);
	if (w.err) {
		*err = w.err;
		return KR_EIO;
	}
	if (w.fired)
		return (int)w.fired;
	return woke & KRX_ST_TIMEDOUT ? KR_ETIMEDOUT : 0;
}

void krx_poll_interrupt(krx_task *t)
{
	/* Full: the caller's cancel word is visible before we look at io_fd
	 * (the parking side: io_fd, full fence, then the cancel word). Either
	 * its commit sees the cancel word and does not park, or we see io_fd
	 * and find its record under the entry's lock. */
	AO_nop_full();
	unsigned f = AO_int_load(&t->io_fd);
	fd_entry *e = f ? entry((int)(f - 1), false) : NULL;
	if (!e)
		return;
	wakeups wk = { 0 };
	pthread_mutex_lock(&e->lock);
	for (waiter *w = e->waiters; w; w = w->next) {
		if (w->task == t) {
			wake_locked(e, w, 0, 0, &wk);
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
	ready_all(&wk);
}

int krx_poll_close(int fd)
{
	fd_entry *e = entry(fd, false);
	if (!e)
		return close(fd);
	wakeups wk = { 0 };
	pthread_mutex_lock(&e->lock);
	wake_list(e, &e->waiters, EBADF, &wk);
	wake_list(e, &e->notes, EBADF, &wk);
	/* Out of epoll before the close: a duplicate of fd elsewhere would
	 * keep the registration, and its events would name a reused number. */
	(void)epoll_ctl(P.epfd, EPOLL_CTL_DEL, fd, NULL);
	/* Closed under the lock, so no waiter can arm the old file after its
	 * wakers were woken. */
	int rc = close(fd);
	int close_errno = errno;
	pthread_mutex_unlock(&e->lock);
	ready_all(&wk);
	errno = close_errno;
	return rc;
}

/* ---- notification requests ---- */

static waiter *find_note(fd_entry *e, uint64_t owner)
{
	for (waiter *w = e->notes; w; w = w->next)
		if (w->owner == owner)
			return w;
	return NULL;
}

int krx_poll_notify(int fd, unsigned events, uint64_t owner, krx_poll_notify_fn *notify, int *err)
{
	fd_entry *e = entry(fd, true);
	if (!e)
		return fd < 0 || (size_t)fd >= P.max_fds ? KR_EINVAL : KR_ENOMEM;
	/* Made before the lock is taken, and freed unused if owner asks again. */
	waiter *fresh = krx_calloc_raw(1, sizeof *fresh);
	if (!fresh)
		return KR_ENOMEM;
	wakeups wk = { 0 };
	pthread_mutex_lock(&e->lock);
	waiter *w = find_note(e, owner);
	if (w) {
		w->events = events;
	} else {
		w = fresh, fresh = NULL;
		*w = (waiter){ .notify = notify, .owner = owner, .fd = fd, .events = events };
		link_waiter(e, w);
	}
	int rc = arm_fd(e, fd);
	/* epoll takes no regular files: always ready, as poll(2) says. */
	if (rc == EPERM)
		wake_locked(e, w, events, 0, &wk);
	else if (rc)
		unlink_waiter(e, w), fresh = w;
	pthread_mutex_unlock(&e->lock);
	ready_all(&wk);
	krx_free_raw(fresh);
	if (rc && rc != EPERM) {
		*err = rc;
		return KR_EIO;
	}
	return 0;
}

bool krx_poll_notify_cancel(int fd, uint64_t owner)
{
	fd_entry *e = entry(fd, false);
	if (!e)
		return false;
	pthread_mutex_lock(&e->lock);
	waiter *w = find_note(e, owner);
	if (w)
		unlink_waiter(e, w);
	pthread_mutex_unlock(&e->lock);
	/* Left armed in epoll: an event that finds no one is ignored. */
	krx_free_raw(w);
	return w != NULL;
}

size_t krx_poll_notes(void)
{
	return AO_load(&P.nnote);
}

/* ---- the schedulers' side ---- */

static unsigned fired_of(uint32_t ev)
{
	unsigned f = (ev & (EPOLLIN | EPOLLPRI) ? KR_READABLE : 0u) | (ev & EPOLLOUT ? KR_WRITABLE : 0u);
	/* A hang-up or an error concerns every waiter: its next call says what. */
	if (ev & (EPOLLHUP | EPOLLERR))
		f |= KR_READABLE | KR_WRITABLE | KR_HANGUP;
	return f;
}

/* Wake the records on *head that fired concerns. */
static unsigned wake_concerned(fd_entry *e, waiter **head, unsigned fired, wakeups *wk)
{
	unsigned woke = 0;
	for (waiter *w = *head, *next; w; w = next) {
		next = w->next;
		if (w->events & fired)
			woke += wake_locked(e, w, fired & (w->events | KR_HANGUP), 0, wk);
	}
	return woke;
}

/* Wake the waiters the events in ev concern, arming each descriptor again
 * for the waiters left. */
static unsigned dispatch(struct epoll_event *ev, int n)
{
	unsigned woke = 0;
	for (int i = 0; i < n; i++) {
		int fd = (int)ev[i].data.u64;
		fd_entry *e = entry(fd, false);
		if (!e)
			continue;
		unsigned fired = fired_of(ev[i].events);
		wakeups wk = { 0 };
		pthread_mutex_lock(&e->lock);
		woke += wake_concerned(e, &e->waiters, fired, &wk);
		woke += wake_concerned(e, &e->notes, fired, &wk);
		/* The one-shot registration has fired: arm it again for those
		 * left. If that fails (fd was closed behind our back), wake
		 * them too: their own calls will say what became of fd. */
		if (arm_fd(e, fd)) {
			woke += wake_list(e, &e->waiters, 0, &wk);
			woke += wake_list(e, &e->notes, 0, &wk);
		}
		pthread_mutex_unlock(&e->lock);
		ready_all(&wk);
	}
	/* Relaxed: a statistic. */
	if (woke)
		AO_fetch_and_add(&P.wakeups, woke);
	return woke;
}

/* Drop the kick from the n events in ev (reading it if we were the
 * sleeper it was meant for); returns the events left. */
static int drop_kick(struct epoll_event *ev, int n, bool sleeper)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 != KICK_TAG) {
			ev[k++] = ev[i];
		} else if (sleeper) {
			uint64_t v;
			if (read(P.kickfd, &v, sizeof v) < 0) {
				/* EAGAIN: already read. Harmless. */
			}
		}
		/* A busy scheduler's poll leaves the kick alone: it is
		 * level-triggered and stays there for the sleeper. */
	}
	return k;
}

static struct epoll_event *buf_of(krx_sched *s)
{
	return P.bufs + (size_t)s->id * EVENTS;
}

static int wait_events(struct epoll_event *buf, int64_t timeout_ns)
{
#ifdef SYS_epoll_pwait2
	/* Relaxed: a flag that only ever goes up. */
	if (!AO_load(&P.no_pwait2)) {
		struct timespec ts = { (time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000) };
		long n = syscall(SYS_epoll_pwait2, P.epfd, buf, EVENTS, timeout_ns < 0 ? NULL : &ts, NULL,
		                 (size_t)0);
		if (n >= 0 || errno != ENOSYS)
			return (int)n;
		AO_store(&P.no_pwait2, 1);
	}
#endif
	/* Milliseconds, rounded up: a timer must never fire early. */
	int ms = -1;
	if (timeout_ns >= 0)
		ms = timeout_ns / 1000000 >= INT32_MAX ? INT32_MAX : (int)((timeout_ns + 999999) / 1000000);
	return epoll_wait(P.epfd, buf, EVENTS, ms);
}

int krx_poll_sleep(krx_sched *s, int64_t timeout_ns)
{
	/* Relaxed: anyone_waits is a hint (see the invariants). Full: a
	 * waker stores our wake word, then looks at sleeper (krx_poll_kick);
	 * we publish sleeper, then look at the word: one sees the other. */
	if (!anyone_waits() || !AO_compare_and_swap_full(&P.sleeper, 0, (AO_t)s->id + 1))
		return -1;
	struct epoll_event *buf = buf_of(s);
	int n = 0;
	/* Acquire: pairs with wake_sched's release. */
	if (!AO_int_load_acquire(&s->wake_word))
		n = wait_events(buf, timeout_ns);
	AO_store(&P.sleeper, 0);
	/* Full: a waker that saw us as the sleeper kicked the eventfd instead
	 * of the futex; the caller's next look at its wake word, after this
	 * fence, sees that waker's store. */
	AO_nop_full();
	return n > 0 ? drop_kick(buf, n, true) : 0;
}

unsigned krx_poll_dispatch(krx_sched *s, int n)
{
	return dispatch(buf_of(s), n);
}

unsigned krx_poll_now(krx_sched *s)
{
	/* Relaxed: hints. With no waiter there is nothing to find; with a
	 * sleeper, the kernel wakes it for whatever becomes ready; and one
	 * non-blocking poll at a time is enough. */
	if (!anyone_waits() || AO_load(&P.sleeper) ||
	    !AO_compare_and_swap_acquire(&P.polling, 0, 1))
		return 0;
	struct epoll_event *buf = buf_of(s);
	int n = epoll_wait(P.epfd, buf, EVENTS, 0);
	AO_store_release(&P.polling, 0);
	n = n > 0 ? drop_kick(buf, n, false) : 0;
	return n ? dispatch(buf, n) : 0;
}

void krx_poll_kick(krx_sched *s)
{
	/* Full: see krx_poll_sleep. */
	AO_nop_full();
	if (AO_load(&P.sleeper) == (AO_t)s->id + 1) {
		uint64_t one = 1;
		if (write(P.kickfd, &one, sizeof one) < 0) {
			/* EAGAIN: the counter is full of kicks already. */
		}
	}
}
