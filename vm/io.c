/*
 * io.c - I/O in processes: kr_wait_fd, kr_read, kr_write, kr_accept,
 * kr_connect, and descriptor ownership (include/krill/io.h), on top of the
 * poller (sched/poll.c).
 *
 * Each call tries its system call first and parks on the poller only when
 * the call says EAGAIN (or EINPROGRESS), and tries again when woken. A
 * process parked on a descriptor is not in a receive, so an exit signal
 * wakes it through krx_poll_interrupt (signal.c), with p->sigs as the wait's
 * cancel word: the process acts on the signal here, and ends or waits on.
 *
 * errno: a process may resume on another thread after a park, and the
 * compiler may keep errno's address (__errno_location() is const) in a
 * register across the call that parked. So errno is only ever read in
 * neg_errno, a function of its own, right after the system call, never in
 * a frame that has parked since.
 *
 * Ownership: who owns descriptor fd is one word per descriptor (the
 * poller's krx_poll_fd_word): the owner's pid, or 0. The owner also lists
 * its descriptors in its extension, so that its exit path finds them; the
 * word decides (a listed descriptor whose word names someone else, because
 * it was given away or closed, is not the owner's to close). A descriptor
 * given to another process travels as a signal (KRX_SIG_FD) through its
 * mailbox, with the word already naming it: taken in, it joins the new
 * owner's list; left in the mailbox at its end, it is closed there.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "futex.h"
#include "signal.h"
#include "timeout.h"
#include "vm.h"

#define IO_REDS 10 /* reductions per call: a system call costs a microsecond or more */

static AO_t owned; /* descriptors owned by processes now */

/* r, or -errno when r < 0. Never inlined: see the comment at the top. */
static __attribute__((noinline)) long neg_errno(long r)
{
	return r < 0 ? -(long)errno : r;
}

static kr_pid pid_of(krx_proc *p)
{
	/* Relaxed: our own pid, written before we first ran. */
	return (kr_pid)AO_load(&p->live_pid);
}

/* Record a failed system call's errno for kr_last_errno: KR_EIO. */
static int fail(int err)
{
	krx_proc_ext *x = krx_proc_ext_get(krx_proc_self());
	if (x)
		x->io_errno = err;
	return KR_EIO;
}

/*
 * The start of every call that may wait: a process, sane arguments (ok:
 * the call's own checks passed), and a timeout, turned into a deadline (0:
 * none; timeout_ms 0 never waits). Charges the call's reductions, which may
 * yield. 0 or the error to return.
 */
static int io_enter(int fd, bool ok, long timeout_ms, uint64_t *deadline)
{
	if (!krx_proc_self())
		return KR_ENOTPROC;
	if (fd < 0 || !ok || !krx_timeout_valid(timeout_ms))
		return KR_EINVAL;
	krx_task_charge(IO_REDS);
	*deadline = timeout_ms > 0 ? krx_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
	return 0;
}

/*
 * Wait until fd is ready for events, or the deadline passes (timeout_ms 0:
 * at once). Exit signals that come meanwhile are acted on here: one that
 * ends the process ends it; one that does not (trapped, or a normal
 * reason) leaves a message or nothing, and the wait goes on. Returns the
 * events that fired (> 0), KR_ETIMEDOUT, or an error code.
 */
static int wait_ready(int fd, unsigned events, long timeout_ms, uint64_t deadline)
{
	if (timeout_ms == 0)
		return KR_ETIMEDOUT;
	for (;;) {
		if (deadline && krx_now_ns() >= deadline)
			return KR_ETIMEDOUT;
		krx_proc *p = krx_proc_self();
		int err = 0;
		int r = krx_poll_wait(fd, events, deadline, &p->sigs, &err);
		if (r == KR_EIO)
			return fail(err);
		if (r != 0)
			return r;
		/* Interrupted: what a process does when it resumes from a yield,
		 * act on the exit signals that came. */
		krx_proc_yielded(&krx_proc_self()->task);
	}
}

/* ---- the owner's list (its extension; only the owner touches it) ---- */

static bool list_has(const krx_proc_ext *x, int fd)
{
	for (unsigned i = 0; i < x->nfds; i++)
		if (x->fds[i] == fd)
			return true;
	return false;
}

/* Make room for one more; false if memory is short. */
static bool list_room(krx_proc_ext *x)
{
	if (x->nfds < x->capfds)
		return true;
	unsigned cap = x->capfds ? 2 * x->capfds : 4;
	int *v = krx_realloc_raw(x->fds, cap * sizeof *v);
	if (!v)
		return false;
	x->fds = v;
	x->capfds = cap;
	return true;
}

static void list_del(krx_proc_ext *x, int fd)
{
	for (unsigned i = 0; x && i < x->nfds; i++) {
		if (x->fds[i] == fd) {
			x->fds[i] = x->fds[--x->nfds];
			return;
		}
	}
}

static void list_free(krx_proc_ext *x)
{
	krx_free_raw(x->fds);
	x->fds = NULL;
	x->nfds = x->capfds = 0;
	x->io_errno = 0;
	x->io_written = 0;
}

/* ---- ownership ---- */

/* Make p the owner of fd. fresh: fd was just made (accept), so an owner
 * the word still names closed it behind our back and owns nothing. */
static int own(krx_proc *p, int fd, bool fresh)
{
	AO_t *word = krx_poll_fd_word(fd);
	krx_proc_ext *x = krx_proc_ext_get(p);
	/* No word for an open fd: memory is short (the table covers every
	 * descriptor RLIMIT_NOFILE allows). */
	if (!word || !x || !list_room(x))
		return KR_ENOMEM;
	AO_t me = (AO_t)pid_of(p);
	AO_t was = AO_load(word);
	while (was != me) {
		if (was && !fresh)
			return KR_EEXIST;
		/* Full: against other would-be owners, and kr_close. */
		if (AO_compare_and_swap_full(word, was, me)) {
			if (!was)
				AO_fetch_and_add1(&owned); /* relaxed: a statistic */
			break;
		}
		was = AO_load(word);
	}
	if (!list_has(x, fd))
		x->fds[x->nfds++] = fd;
	return 0;
}

/* fd's owner is pid: end that (the word's CAS decides, once), and close it
 * (waking its waiters unless the VM is stopping). */
static void close_owned(int fd, kr_pid pid, bool wake)
{
	AO_t *word = krx_poll_fd_word(fd);
	/* Full: one of the exit path, kr_close and kr_fd_disown wins. */
	if (!word || !AO_compare_and_swap_full(word, (AO_t)pid, 0))
		return;
	AO_fetch_and_sub1(&owned);
	if (wake)
		krx_poll_close(fd);
	else
		close(fd);
}

void krx_io_exited(krx_proc *p, kr_pid pid)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	if (!x)
		return;
	for (unsigned i = 0; i < x->nfds; i++)
		close_owned(x->fds[i], pid, true);
	list_free(x);
}

void krx_io_stopped(krx_proc *p)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	if (!x)
		return;
	for (unsigned i = 0; i < x->nfds; i++)
		close_owned(x->fds[i], pid_of(p), false);
	list_free(x);
}

static int gift_fd(const krx_msg *m)
{
	int fd;
	memcpy(&fd, m + 1, sizeof fd);
	return fd;
}

void krx_io_adopt(krx_proc *p, krx_msg *m)
{
	int fd = gift_fd(m);
	AO_t *word = krx_poll_fd_word(fd);
	krx_proc_ext *x = krx_proc_ext_get(p);
	/* Still ours (not closed or disowned since)? Then list it. If memory
	 * is too short for that, the word keeps it ours but the exit path will
	 * not find it: as with links, memory exhaustion loses the promise. */
	if (word && AO_load(word) == (AO_t)pid_of(p) && x && !list_has(x, fd) && list_room(x))
		x->fds[x->nfds++] = fd;
}

void krx_io_orphan(krx_proc *p, krx_msg *m)
{
	close_owned(gift_fd(m), pid_of(p), true);
}

void krx_io_late_stop(krx_msg *m, void *ctx)
{
	if (m->hb.kind == KRX_SIG_FD)
		close_owned(gift_fd(m), pid_of(ctx), false);
}

KR_API int kr_fd_own(int fd)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return KR_ENOTPROC;
	if (fd < 0 || neg_errno(fcntl(fd, F_GETFD)) < 0)
		return KR_EINVAL;
	krx_task_charge(1);
	return own(krx_proc_self(), fd, false);
}

KR_API int kr_fd_disown(int fd)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return KR_ENOTPROC;
	AO_t *word = fd < 0 ? NULL : krx_poll_fd_word(fd);
	/* Full: see own. */
	if (!word || !AO_compare_and_swap_full(word, (AO_t)pid_of(p), 0))
		return KR_EINVAL;
	AO_fetch_and_sub1(&owned);
	list_del(krx_proc_ext_peek(p), fd);
	return 0;
}

static int give(krx_sched *s, int fd, kr_pid to)
{
	krx_proc *p = krx_proc_on(s);
	kr_pid me = p ? pid_of(p) : 0;
	AO_t *word = fd < 0 ? NULL : krx_poll_fd_word(fd);
	if (word && to == me)
		return AO_load(word) == (AO_t)me ? 0 : KR_EINVAL;
	/* Full: see own. From a host thread, me is 0: only an unowned fd. */
	if (!word || !AO_compare_and_swap_full(word, (AO_t)me, (AO_t)to))
		return KR_EINVAL;
	if (krx_signal_send(s, me, to, KRX_SIG_FD, 0, 0, &fd, sizeof fd) == KRX_PUSH_DEAD) {
		/* Gone (or no memory for the signal): fd stays the caller's,
		 * unless the target somehow owned and closed it meanwhile. */
		(void)AO_compare_and_swap_full(word, (AO_t)to, (AO_t)me);
		return KR_ENOPROC;
	}
	if (p)
		list_del(krx_proc_ext_peek(p), fd);
	else
		AO_fetch_and_add1(&owned);
	return 0;
}

KR_API int kr_fd_give(int fd, kr_pid pid)
{
	if (!krx_pid_valid(pid))
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	int err = give(s, fd, pid);
	krx_vm_leave(s);
	if (krx_task_on(s))
		krx_task_charge(1);
	return err;
}

KR_API kr_pid kr_fd_owner(int fd)
{
	if (fd < 0)
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	AO_t *word = krx_poll_fd_word(fd);
	kr_pid owner = word ? (kr_pid)AO_load(word) : KR_EINVAL;
	krx_vm_leave(s);
	return owner;
}

KR_API int kr_close(int fd)
{
	if (fd < 0)
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	krx_proc *p = krx_proc_on(s);
	AO_t *word = krx_poll_fd_word(fd);
	/* Whoever owns it owns it no more. Full: see own. */
	AO_t was = word ? AO_load(word) : 0;
	while (was && !AO_compare_and_swap_full(word, was, 0))
		was = AO_load(word);
	if (was) {
		AO_fetch_and_sub1(&owned);
		if (p && was == (AO_t)pid_of(p))
			list_del(krx_proc_ext_peek(p), fd);
	}
	long rc = neg_errno(krx_poll_close(fd));
	krx_vm_leave(s);
	if (rc < 0)
		return p ? fail((int)-rc) : KR_EIO;
	return 0;
}

/* ---- waiting, reading, writing ---- */

/* One look without parking, as poll(2) with timeout 0. */
static int poll_once(int fd, unsigned events)
{
	struct pollfd pfd = { .fd = fd,
	                      .events = (short)((events & KR_READABLE ? POLLIN : 0) |
	                                        (events & KR_WRITABLE ? POLLOUT : 0)) };
	long n = neg_errno(poll(&pfd, 1, 0));
	if (n < 0)
		return fail((int)-n);
	if (pfd.revents & POLLNVAL)
		return fail(EBADF);
	unsigned fired = (pfd.revents & POLLIN ? KR_READABLE : 0u) | (pfd.revents & POLLOUT ? KR_WRITABLE : 0u);
	if (pfd.revents & (POLLHUP | POLLERR))
		fired |= events | KR_HANGUP;
	return fired ? (int)fired : KR_ETIMEDOUT;
}

KR_API int kr_wait_fd(int fd, unsigned events, long timeout_ms)
{
	uint64_t deadline;
	int err = io_enter(fd, events && !(events & ~(KR_READABLE | KR_WRITABLE)), timeout_ms, &deadline);
	if (err)
		return err;
	if (timeout_ms == 0)
		return poll_once(fd, events);
	return wait_ready(fd, events, timeout_ms, deadline);
}

KR_API ssize_t kr_read(int fd, void *buf, size_t len, long timeout_ms)
{
	uint64_t deadline;
	int err = io_enter(fd, (buf || !len) && len <= SSIZE_MAX, timeout_ms, &deadline);
	if (err)
		return err;
	for (;;) {
		long n = neg_errno(read(fd, buf, len));
		if (n >= 0)
			return n;
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN && n != -EWOULDBLOCK)
			return fail((int)-n);
		int r = wait_ready(fd, KR_READABLE, timeout_ms, deadline);
		if (r < 0)
			return r;
	}
}

KR_API ssize_t kr_write(int fd, const void *buf, size_t len, long timeout_ms)
{
	uint64_t deadline;
	int r = io_enter(fd, (buf || !len) && len <= SSIZE_MAX, timeout_ms, &deadline);
	if (r)
		return r;
	size_t done = 0;
	while (done < len) {
		long n = neg_errno(write(fd, (const char *)buf + done, len - done));
		if (n >= 0) {
			done += (size_t)n;
		} else if (n == -EAGAIN || n == -EWOULDBLOCK) {
			if ((r = wait_ready(fd, KR_WRITABLE, timeout_ms, deadline)) < 0)
				break;
		} else if (n != -EINTR) {
			r = fail((int)-n);
			break;
		}
	}
	if (done == len)
		return (ssize_t)len;
	krx_proc_ext *x = krx_proc_ext_get(krx_proc_self());
	if (x)
		x->io_written = done;
	return r;
}

KR_API int kr_accept(int fd, long timeout_ms)
{
	uint64_t deadline;
	int err = io_enter(fd, true, timeout_ms, &deadline);
	if (err)
		return err;
	for (;;) {
		long n = neg_errno(accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
		if (n >= 0) {
			err = own(krx_proc_self(), (int)n, true);
			if (err)
				close((int)n);
			return err ? err : (int)n;
		}
		/* ECONNABORTED: that connection is gone, the next may come. */
		if (n == -EINTR || n == -ECONNABORTED)
			continue;
		if (n != -EAGAIN && n != -EWOULDBLOCK)
			return fail((int)-n);
		int r = wait_ready(fd, KR_READABLE, timeout_ms, deadline);
		if (r < 0)
			return r;
	}
}

KR_API int kr_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, long timeout_ms)
{
	uint64_t deadline;
	int err = io_enter(fd, addr != NULL, timeout_ms, &deadline);
	if (err)
		return err;
	long n = neg_errno(connect(fd, addr, addrlen));
	if (n == 0 || n == -EISCONN)
		return 0;
	/* Under way (EINTR too: the connect goes on without us). */
	if (n != -EINPROGRESS && n != -EINTR && n != -EALREADY)
		return fail((int)-n);
	int r = wait_ready(fd, KR_WRITABLE, timeout_ms, deadline);
	if (r < 0)
		return r;
	int so_error = 0;
	socklen_t sl = sizeof so_error;
	n = neg_errno(getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &sl));
	if (n < 0)
		return fail((int)-n);
	return so_error ? fail(so_error) : 0;
}

/* ---- readiness as a message ---- */

/* The poller's answer to kr_fd_notify (any thread, no lock held): a signal
 * that becomes a KR_TAG_FD message as the owner takes it in; dropped if
 * the owner has ended. */
static void fd_ready(uint64_t owner, int fd, unsigned fired, int err)
{
	kr_fd_msg f = { .fd = fd, .events = fired, .err = err };
	(void)krx_signal_send(NULL, 0, (kr_pid)owner, KRX_SIG_FD_READY, 0, KR_TAG_FD, &f, sizeof f);
}

KR_API int kr_fd_notify(int fd, unsigned events)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return KR_ENOTPROC;
	if (fd < 0 || !events || (events & ~(KR_READABLE | KR_WRITABLE)))
		return KR_EINVAL;
	krx_task_charge(IO_REDS);
	int err = 0;
	int rc = krx_poll_notify(fd, events, (uint64_t)pid_of(krx_proc_self()), fd_ready, &err);
	return rc == KR_EIO ? fail(err) : rc;
}

KR_API int kr_fd_notify_cancel(int fd)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return KR_ENOTPROC;
	if (fd < 0)
		return KR_EINVAL;
	return krx_poll_notify_cancel(fd, (uint64_t)pid_of(p));
}

KR_API const kr_fd_msg *kr_msg_fd(const kr_msg *msg)
{
	return msg && msg->tag == KR_TAG_FD && msg->len == sizeof(kr_fd_msg) ? msg->data : NULL;
}

/* ---- figures ---- */

KR_API int kr_last_errno(void)
{
	krx_proc *p = krx_proc_self();
	krx_proc_ext *x = p ? krx_proc_ext_peek(p) : NULL;
	return x ? x->io_errno : 0;
}

KR_API size_t kr_last_written(void)
{
	krx_proc *p = krx_proc_self();
	krx_proc_ext *x = p ? krx_proc_ext_peek(p) : NULL;
	return x ? x->io_written : 0;
}

KR_API int kr_io_stats_get(kr_io_stats *out)
{
	if (!out)
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	/* Relaxed: figures. */
	*out = (kr_io_stats){
		.waiting = krx_poll_waiting(),
		.notifying = krx_poll_notes(),
		.owned = AO_load(&owned),
		.wakeups = krx_poll_wakeups(),
	};
	krx_vm_leave(s);
	return 0;
}
