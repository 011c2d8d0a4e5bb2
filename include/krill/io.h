/*
 * krill/io.h - I/O in processes: waiting on file descriptors, and reading,
 * writing, accepting and connecting without ever blocking a scheduler.
 *
 * Included by krill.h; a program includes krill.h only.
 *
 * A process whose descriptor is not ready parks, and its scheduler runs
 * other processes; the VM's poller (epoll) wakes it when the descriptor is
 * ready, when its timeout passes, or when an exit signal ends it. The
 * descriptors must be non-blocking (O_NONBLOCK): every call here tries its
 * system call first and parks only when the call says EAGAIN. A blocking
 * descriptor would hold the scheduler's thread, and every process queued
 * on it, for as long as the call blocks. kr_accept's descriptors are
 * non-blocking already.
 *
 * Errors are the KR_E... codes of krill.h, plus KR_EIO: a system call
 * failed, and kr_last_errno() says why (ECONNREFUSED, ECONNRESET, EPIPE,
 * EBADF ...). Timeouts follow krill.h's rule (at KR_INFINITY): in
 * milliseconds, 0 tries once without waiting, KR_INFINITY waits for ever,
 * any other negative value is KR_EINVAL at once. Every call here but kr_close,
 * kr_fd_give, kr_fd_owner, kr_msg_fd and kr_io_stats needs a process: from a host
 * thread it returns KR_ENOTPROC. Unlike errno, which a process must read
 * before its next krill call (it may resume on another thread),
 * kr_last_errno() is the process's own and keeps its value until the
 * process's next KR_EIO.
 *
 * Ownership: a process may own descriptors (kr_fd_own; kr_accept's new
 * descriptor is owned by its caller). When the process ends, for whatever
 * reason (it returned, crashed, faulted, was killed), the descriptors it
 * owns are closed, as Erlang closes a port when its owner dies; a process
 * waiting on one of them wakes with KR_EIO, errno EBADF. An owned
 * descriptor must be closed with kr_close, never close(2): its number could
 * be reused by the time the owner ends, and the owner's end would then
 * close someone else's descriptor.
 *
 * SIGPIPE: scheduler threads (and the kr_blocking helpers they start) block
 * it, so writing to a peer that has gone fails with KR_EIO, errno EPIPE,
 * instead of killing the program.
 */
#ifndef KRILL_IO_H
#define KRILL_IO_H

#include <sys/socket.h>
#include <sys/types.h>

#include "../krill.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of this header (krill.h's are from -1 down; these start
 * clear of them). */
enum kr_io_error {
	KR_EIO = -20 /* a system call failed: kr_last_errno() tells its errno */
};

/* What kr_wait_fd waits for, and what it reports. */
#define KR_READABLE 1u /* data to read, a connection to accept, or the peer's end */
#define KR_WRITABLE 2u /* room to write, or a connect that finished */
#define KR_HANGUP 4u   /* reported only: the peer hung up or the descriptor has an
                        * error (the requested bits are reported with it, so that
                        * the next read or write tells what happened) */

/*
 * Park the calling process until fd is ready for events (KR_READABLE,
 * KR_WRITABLE or both), or timeout_ms passes. Returns the events that
 * fired (> 0: the requested ones that are ready, with KR_HANGUP if the
 * peer hung up or fd has an error), KR_ETIMEDOUT, KR_EINVAL (fd < 0,
 * events empty or with other bits, timeout_ms < 0 other than
 * KR_INFINITY), KR_EIO (fd is not open: errno EBADF, or was closed with
 * kr_close while waiting), KR_ENOMEM, or KR_ENOTPROC from a host thread.
 * Like poll(2), readiness may be gone by the time the caller acts (another
 * process read first): treat EAGAIN as "wait again". Messages do not wake
 * the process; an exit signal ends it as it would a receiving one (a
 * trapped one becomes a message and the wait goes on). A regular file is
 * always ready.
 */
KR_API int kr_wait_fd(int fd, unsigned events, long timeout_ms);

/*
 * Readiness as a message, as Erlang's {active, once}: ask for one KR_TAG_FD
 * message (kr_fd_msg) when fd is ready for events, and meanwhile receive
 * other messages, or hibernate (kr_hibernate): a process waiting this way
 * holds no stack, where one parked in kr_read or kr_wait_fd holds its own.
 * The message comes once; ask again for the next (then read or write with
 * a timeout of 0 until the call says KR_ETIMEDOUT, as readiness may be gone
 * by the time the message is received). A process has at most one request
 * per descriptor: asking again changes its events. If fd is closed with
 * kr_close (or by its owner's end) first, the message comes with err EBADF
 * and events 0. A request outlives a process that ends with it pending
 * until fd is ready or closed, and is then dropped. 0; KR_EINVAL (fd < 0,
 * events empty or with other bits); KR_EIO (kr_last_errno: EBADF, fd is
 * not open); KR_ENOMEM; KR_ENOTPROC. A regular file is always ready.
 */
KR_API int kr_fd_notify(int fd, unsigned events);
/* Withdraw the caller's kr_fd_notify request on fd: 1 if one was pending
 * (no message will come for it), 0 if none was (its message may be in the
 * mailbox already, as with Erlang's {active, false}: flush it if need be);
 * KR_EINVAL (fd < 0), KR_ENOTPROC. */
KR_API int kr_fd_notify_cancel(int fd);

#define KR_TAG_FD (KR_TAG_RESERVED + 6) /* data: kr_fd_msg */

typedef struct kr_fd_msg {
	int fd;          /* the descriptor the request named */
	unsigned events; /* what is ready, as kr_wait_fd reports it (KR_HANGUP too) */
	int err;         /* 0, or EBADF: fd was closed before it was ready */
} kr_fd_msg;

/* The payload of a KR_TAG_FD message, or NULL if msg is not one. Safe from
 * any thread. */
KR_API const kr_fd_msg *kr_msg_fd(const kr_msg *msg);

/*
 * Read at most len bytes into buf, as read(2), waiting up to timeout_ms for
 * data. Returns the bytes read (> 0), 0 at end of file (the peer closed),
 * KR_ETIMEDOUT, KR_EIO (kr_last_errno: ECONNRESET, EBADF ...), KR_EINVAL
 * (fd < 0, buf NULL with len > 0, a bad timeout), KR_ENOTPROC.
 */
KR_API ssize_t kr_read(int fd, void *buf, size_t len, long timeout_ms);

/*
 * Write all len bytes of buf, waiting for room as often as needed, for at
 * most timeout_ms in all. Returns len, or a negative code: KR_ETIMEDOUT,
 * KR_EIO (kr_last_errno: EPIPE, ECONNRESET ...), KR_EINVAL (fd < 0, buf
 * NULL with len > 0, a bad timeout), KR_ENOTPROC.
 * A write that fails may have written part of buf first: kr_last_written()
 * then says how many bytes went out (0 to len - 1), so that a caller who
 * wants to can go on from there; on a stream socket, a peer has received
 * those bytes and no others.
 */
KR_API ssize_t kr_write(int fd, const void *buf, size_t len, long timeout_ms);

/*
 * Accept a connection on the listening socket fd, waiting up to timeout_ms
 * for one. Returns the new descriptor, non-blocking and close-on-exec, and
 * owned by the caller (see kr_fd_own; kr_fd_give hands it on). Errors:
 * KR_ETIMEDOUT, KR_EIO (kr_last_errno: EINVAL if fd does not listen,
 * EMFILE ...), KR_EINVAL (fd < 0, a bad timeout), KR_ENOMEM, KR_ENOTPROC.
 */
KR_API int kr_accept(int fd, long timeout_ms);

/*
 * Connect the non-blocking socket fd to addr, waiting up to timeout_ms for
 * the connection to be made. 0 once connected; KR_ETIMEDOUT (the attempt
 * is still under way: close the socket); KR_EIO (kr_last_errno:
 * ECONNREFUSED, ENETUNREACH ...); KR_EINVAL (fd < 0, addr NULL, a bad
 * timeout); KR_ENOTPROC.
 */
KR_API int kr_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, long timeout_ms);

/* The errno of the system call behind the calling process's last KR_EIO;
 * 0 if it has had none (or from a host thread). */
KR_API int kr_last_errno(void);
/* The bytes the calling process's last failed kr_write wrote before it
 * failed; 0 if it wrote none (or from a host thread). */
KR_API size_t kr_last_written(void);

/*
 * Own fd: it is closed (as by kr_close) when the calling process ends,
 * however it ends. 0 (also if the caller owns it already); KR_EEXIST if
 * another process owns it; KR_EINVAL if fd is not an open descriptor;
 * KR_ENOMEM; KR_ENOTPROC.
 */
KR_API int kr_fd_own(int fd);
/* Stop owning fd (it stays open). 0, or KR_EINVAL if the caller does not
 * own it; KR_ENOTPROC. */
KR_API int kr_fd_disown(int fd);
/*
 * Hand fd over to process pid, as Erlang's controlling_process: from a
 * process, fd must be the caller's; from a host thread, fd must be owned by
 * no one. From then on fd is pid's, and closed when pid ends (even if pid
 * ends before it ever runs again). 0; KR_ENOPROC if pid is gone (fd stays
 * the caller's); KR_EINVAL if the caller does not own fd (or, from a host
 * thread, someone does), or pid is malformed; KR_ESTOPPED. Giving a
 * descriptor one owns to oneself does nothing.
 */
KR_API int kr_fd_give(int fd, kr_pid pid);
/* The pid of the process that owns fd, 0 if none, or KR_EINVAL for a bad
 * fd, KR_ESTOPPED. Safe from any thread; the answer may be stale at once. */
KR_API kr_pid kr_fd_owner(int fd);

/*
 * Close fd: every process waiting on it wakes (with KR_EIO, errno EBADF),
 * its owner, if any, no longer owns it, and it is closed. 0, KR_EIO
 * (close(2) failed: kr_last_errno, from a process), KR_EINVAL (fd < 0),
 * KR_ESTOPPED. Safe from host threads.
 */
KR_API int kr_close(int fd);

/* Figures of the poller, for tests and monitoring. */
typedef struct kr_io_stats {
	size_t waiting;   /* processes parked on a descriptor now */
	size_t notifying; /* kr_fd_notify requests pending now */
	size_t owned;     /* descriptors owned by processes now */
	uint64_t wakeups; /* processes woken and requests answered by the poller since the VM started */
} kr_io_stats;

/* Fill *out. KR_EINVAL (out NULL), KR_ESTOPPED. Safe from any thread. */
KR_API int kr_io_stats_get(kr_io_stats *out);

#ifdef __cplusplus
}
#endif

#endif
