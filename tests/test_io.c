/*
 * test_io.c - I/O in processes (sched/poll.c, vm/io.c) through the public
 * API: waiting on descriptors, reads, writes, accepts and connects with
 * their timeouts, errors, several processes on one descriptor, exit
 * signals reaching a process parked on a descriptor, descriptor ownership
 * (closed at the owner's end, however it ends; handed over), and an idle
 * VM with a process waiting on a descriptor burning no CPU. The heavy ones:
 * echo over thousands of socketpairs and of loopback TCP connections.
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"
#include "krill.h"
#include "vm_util.h"

TestSuite(io, .fini = vm_fini, .timeout = 60);

/* ---- helpers ---- */

/* Thousands of connections need thousands of descriptors. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void socket_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0,
	             "socketpair: %s", strerror(errno));
}

static bool fd_is_closed(int fd)
{
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/* What the peer of a closed descriptor reads: 0 (end of file), at once. */
static ssize_t host_read(int fd)
{
	char c;
	ssize_t n;
	int64_t end = vm_now_ns() + 10 * (int64_t)1000000000;
	while ((n = read(fd, &c, 1)) < 0 && errno == EAGAIN && vm_now_ns() < end)
		usleep(500);
	return n;
}

static kr_io_stats io_stats(void)
{
	kr_io_stats s = { 0 };
	cr_assert_eq(kr_io_stats_get(&s), 0);
	return s;
}

static size_t io_waiting(void)
{
	kr_io_stats s;
	return kr_io_stats_get(&s) == 0 ? s.waiting : (size_t)-1;
}

static size_t io_owned(void)
{
	kr_io_stats s;
	return kr_io_stats_get(&s) == 0 ? s.owned : (size_t)-1;
}

static int tcp_listener(struct sockaddr_in *addr, int backlog)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	*addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof *addr), 0, "bind: %s", strerror(errno));
	socklen_t len = sizeof *addr;
	cr_assert_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	cr_assert_eq(listen(fd, backlog), 0, "listen: %s", strerror(errno));
	return fd;
}

static int tcp_socket(void)
{
	return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* ---- bad arguments, and host threads ---- */

static atomic_int args_done;

typedef struct fd_pid {
	int fd;
	kr_pid pid;
} fd_pid;

/* fd belongs to another process: none of it is ours to do. */
static void try_to_take(void *arg)
{
	int fd = (int)(intptr_t)arg, r;
	VM_CHECK((r = kr_fd_own(fd)) == KR_EEXIST, "own another's: %d", r);
	VM_CHECK((r = kr_fd_disown(fd)) == KR_EINVAL, "disown another's: %d", r);
	VM_CHECK((r = kr_fd_give(fd, kr_self())) == KR_EINVAL, "give another's to oneself: %d", r);
	VM_CHECK(kr_fd_owner(fd) != kr_self(), "took it");
}

static void bad_arguments(void *arg)
{
	const fd_pid *a = arg;
	int fd = a->fd;
	char buf[8];
	int r;
	VM_CHECK((r = kr_wait_fd(-1, KR_READABLE, 10)) == KR_EINVAL, "fd -1: %d", r);
	VM_CHECK((r = kr_wait_fd(fd, 0, 10)) == KR_EINVAL, "no events: %d", r);
	VM_CHECK((r = kr_wait_fd(fd, 8, 10)) == KR_EINVAL, "unknown events: %d", r);
	VM_CHECK((r = kr_wait_fd(fd, KR_READABLE, -5)) == KR_EINVAL, "timeout -5: %d", r);
	VM_CHECK((r = (int)kr_read(fd, NULL, 4, 10)) == KR_EINVAL, "read into NULL: %d", r);
	VM_CHECK((r = (int)kr_write(-3, buf, 4, 10)) == KR_EINVAL, "write to -3: %d", r);
	VM_CHECK((r = kr_connect(fd, NULL, 0, 10)) == KR_EINVAL, "connect to NULL: %d", r);
	VM_CHECK((r = kr_accept(-1, 10)) == KR_EINVAL, "accept -1: %d", r);
	VM_CHECK((r = kr_fd_own(-1)) == KR_EINVAL, "own -1: %d", r);
	VM_CHECK((r = kr_fd_disown(fd)) == KR_EINVAL, "disown what is not ours: %d", r);
	VM_CHECK((r = kr_fd_give(fd, a->pid)) == KR_EINVAL, "give what is not ours: %d", r);
	VM_CHECK((r = kr_fd_give(fd, -7)) == KR_EINVAL, "give to a bad pid: %d", r);

	/* A descriptor that is not open: KR_EIO, errno EBADF. */
	int spare = dup(fd);
	close(spare);
	VM_CHECK((r = kr_wait_fd(spare, KR_READABLE, 100)) == KR_EIO, "closed fd: %d", r);
	VM_CHECK(kr_last_errno() == EBADF, "errno %d, want EBADF", kr_last_errno());
	VM_CHECK((r = (int)kr_read(spare, buf, 1, 100)) == KR_EIO, "read closed fd: %d", r);
	VM_CHECK((r = kr_fd_own(spare)) == KR_EINVAL, "own a closed fd: %d", r);
	/* Accepting on a socket that does not listen. */
	VM_CHECK((r = kr_accept(fd, 100)) == KR_EIO, "accept on a socketpair: %d", r);
	VM_CHECK(kr_last_errno() != 0, "no errno for the failed accept");

	/* Owning: twice is once; another process cannot; disown ends it. */
	VM_CHECK(kr_fd_own(fd) == 0 && kr_fd_own(fd) == 0, "own twice");
	VM_CHECK(kr_fd_owner(fd) == kr_self(), "owner %lld", (long long)kr_fd_owner(fd));
	kr_ref ref;
	kr_spawn_opts o = { .monitor = &ref };
	VM_CHECK(kr_spawn_opt(try_to_take, (void *)(intptr_t)fd, &o) > 0, "spawn");
	kr_msg *down;
	VM_CHECK(kr_recv_tag(&down, KR_TAG_DOWN, 10000) == 0, "no DOWN from try_to_take");
	VM_CHECK(kr_fd_disown(fd) == 0 && kr_fd_owner(fd) == 0, "disown");
	/* Giving to a process that is gone: it stays ours. */
	VM_CHECK(kr_fd_own(fd) == 0, "own again");
	VM_CHECK((r = kr_fd_give(fd, a->pid)) == KR_ENOPROC, "give to the dead: %d", r);
	VM_CHECK(kr_fd_owner(fd) == kr_self(), "still ours after a failed give");
	VM_CHECK(kr_fd_disown(fd) == 0, "disown at the end");
	atomic_store(&args_done, 1);
}

static void ends_at_once(void *arg)
{
	(void)arg;
}

Test(io, bad_arguments_give_clear_errors)
{
	vm_start_quiet(2);
	char buf[4];
	/* From a host thread. */
	cr_assert_eq(kr_wait_fd(0, KR_READABLE, 0), KR_ENOTPROC);
	cr_assert_eq(kr_read(0, buf, 1, 0), KR_ENOTPROC);
	cr_assert_eq(kr_write(1, buf, 1, 0), KR_ENOTPROC);
	cr_assert_eq(kr_accept(0, 0), KR_ENOTPROC);
	cr_assert_eq(kr_fd_own(0), KR_ENOTPROC);
	cr_assert_eq(kr_fd_disown(0), KR_ENOTPROC);
	cr_assert_eq(kr_last_errno(), 0);
	cr_assert_eq(kr_close(-1), KR_EINVAL);
	cr_assert_eq(kr_fd_owner(-1), KR_EINVAL);
	cr_assert_eq(kr_io_stats_get(NULL), KR_EINVAL);
	cr_assert_str_neq(kr_strerror(KR_EIO), "unknown error");

	int sv[2];
	socket_pair(sv);
	fd_pid a = { sv[0], vm_spawn(ends_at_once, NULL) }; /* a pid dead by the time it is used */
	cr_assert(VM_WAIT(!kr_is_alive(a.pid), 10000));
	vm_spawn(bad_arguments, &a);
	cr_assert(VM_WAIT(atomic_load(&args_done), 15000));
	vm_assert_clean();
	cr_assert_eq(io_owned(), 0);
	vm_stop();
	cr_assert_eq(kr_io_stats_get(&(kr_io_stats){ 0 }), KR_ESTOPPED);
	close(sv[0]);
	close(sv[1]);
}

/* ---- waiting on a descriptor ---- */

static atomic_int wait_stage;

static void waiter_on_pair(void *arg)
{
	int fd = (int)(intptr_t)arg;
	int r;
	VM_CHECK((r = kr_wait_fd(fd, KR_WRITABLE, 1000)) == (int)KR_WRITABLE, "writable: %d", r);
	VM_CHECK((r = kr_wait_fd(fd, KR_READABLE | KR_WRITABLE, 0)) == (int)KR_WRITABLE,
	         "a poll sees writable only: %d", r);
	VM_CHECK((r = kr_wait_fd(fd, KR_READABLE, 0)) == KR_ETIMEDOUT, "a poll: %d", r);
	int64_t t0 = vm_now_ns();
	VM_CHECK((r = kr_wait_fd(fd, KR_READABLE, 50)) == KR_ETIMEDOUT, "timeout: %d", r);
	VM_CHECK(vm_ms_since(t0) >= 50.0, "timed out after %.1f ms, before 50", vm_ms_since(t0));
	atomic_store(&wait_stage, 1);
	/* The test writes a byte now. */
	VM_CHECK((r = kr_wait_fd(fd, KR_READABLE, 10000)) == (int)KR_READABLE, "readable: %d", r);
	char c;
	VM_CHECK(kr_read(fd, &c, 1, 0) == 1 && c == 'x', "the byte");
	/* The peer hangs up: readable, with KR_HANGUP. */
	atomic_store(&wait_stage, 2);
	r = kr_wait_fd(fd, KR_READABLE, 10000);
	VM_CHECK(r > 0 && (r & KR_READABLE) && (r & KR_HANGUP), "hang-up: %d", r);
	VM_CHECK(kr_read(fd, &c, 1, 1000) == 0, "end of file");
	kr_proc_info info;
	VM_CHECK(kr_info(kr_self(), &info) == 0, "info");
	atomic_store(&wait_stage, 3);
}

static void waiting_status(void *arg)
{
	int fd = (int)(intptr_t)arg;
	int r = kr_wait_fd(fd, KR_READABLE, 10000);
	VM_CHECK(r == (int)KR_READABLE, "readable: %d", r);
}

Test(io, wait_fd_reports_readiness_timeouts_and_hangups)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	vm_spawn(waiter_on_pair, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(atomic_load(&wait_stage) == 1, 10000));
	vm_host_sleep_ms(20);
	cr_assert_eq(write(sv[1], "x", 1), 1);
	cr_assert(VM_WAIT(atomic_load(&wait_stage) == 2, 10000));
	vm_host_sleep_ms(20);
	close(sv[1]);
	cr_assert(VM_WAIT(atomic_load(&wait_stage) == 3, 10000));
	vm_assert_clean();

	/* A process waiting on a descriptor is KR_WAITING, and counted. */
	socket_pair(sv);
	kr_pid p = vm_spawn(waiting_status, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(vm_status(p) == KR_WAITING && io_waiting() == 1, 10000));
	uint64_t woken = io_stats().wakeups;
	cr_assert_eq(write(sv[1], "y", 1), 1);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	cr_assert_eq(io_waiting(), 0);
	cr_assert_gt(io_stats().wakeups, woken);
	vm_assert_clean();
	vm_stop();
	close(sv[0]);
	close(sv[1]);
}

static atomic_int file_done;

static void wait_on_file(void *arg)
{
	int fd = (int)(intptr_t)arg;
	int r = kr_wait_fd(fd, KR_READABLE | KR_WRITABLE, 5000);
	VM_CHECK(r == (int)(KR_READABLE | KR_WRITABLE), "a regular file is ready: %d", r);
	atomic_store(&file_done, 1);
}

Test(io, a_regular_file_is_always_ready)
{
	vm_start(1);
	FILE *f = tmpfile();
	cr_assert(f);
	vm_spawn(wait_on_file, (void *)(intptr_t)fileno(f));
	cr_assert(VM_WAIT(atomic_load(&file_done), 10000));
	vm_assert_clean();
	vm_stop();
	fclose(f);
}

/* ---- timeouts ---- */

static atomic_int timeouts_done;

static void read_times_out(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16];
	int64_t t0 = vm_now_ns();
	ssize_t n = kr_read(fd, buf, sizeof buf, 60);
	VM_CHECK(n == KR_ETIMEDOUT, "kr_read: %zd", n);
	VM_CHECK(vm_ms_since(t0) >= 60.0, "after %.1f ms", vm_ms_since(t0));
	VM_CHECK((n = kr_read(fd, buf, sizeof buf, 0)) == KR_ETIMEDOUT, "kr_read, timeout 0: %zd", n);
	atomic_fetch_add(&timeouts_done, 1);
}

/* The peer does not read: the socket's buffers fill, the write stops part
 * way, and says how far it got. */
static void write_times_out(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t len = 16u << 20;
	char *big = malloc(len);
	VM_CHECK(big != NULL, "malloc");
	if (!big)
		return;
	memset(big, 'w', len);
	int64_t t0 = vm_now_ns();
	ssize_t n = kr_write(fd, big, len, 80);
	size_t done = kr_last_written();
	VM_CHECK(n == KR_ETIMEDOUT, "kr_write: %zd", n);
	VM_CHECK(vm_ms_since(t0) >= 80.0, "after %.1f ms", vm_ms_since(t0));
	VM_CHECK(done > 0 && done < len, "kr_last_written %zu of %zu", done, len);
	free(big);
	atomic_fetch_add(&timeouts_done, 1);
}

static void accept_times_out(void *arg)
{
	int fd = (int)(intptr_t)arg;
	int64_t t0 = vm_now_ns();
	int r = kr_accept(fd, 70);
	VM_CHECK(r == KR_ETIMEDOUT, "kr_accept: %d", r);
	VM_CHECK(vm_ms_since(t0) >= 70.0, "after %.1f ms", vm_ms_since(t0));
	atomic_fetch_add(&timeouts_done, 1);
}

static struct sockaddr_in full_addr;

/* The listener's accept queue is full and it never accepts: Linux drops
 * the SYN, and the connect stays under way. */
static void connect_times_out(void *arg)
{
	(void)arg;
	int fd = tcp_socket();
	VM_CHECK(fd >= 0 && kr_fd_own(fd) == 0, "socket");
	int64_t t0 = vm_now_ns();
	int r = kr_connect(fd, (struct sockaddr *)&full_addr, sizeof full_addr, 90);
	VM_CHECK(r == KR_ETIMEDOUT, "kr_connect: %d (errno %d)", r, kr_last_errno());
	VM_CHECK(vm_ms_since(t0) >= 90.0, "after %.1f ms", vm_ms_since(t0));
	atomic_fetch_add(&timeouts_done, 1);
}

static void connect_refused(void *arg)
{
	struct sockaddr_in *addr = arg;
	int fd = tcp_socket();
	VM_CHECK(fd >= 0 && kr_fd_own(fd) == 0, "socket");
	int r = kr_connect(fd, (struct sockaddr *)addr, sizeof *addr, 5000);
	VM_CHECK(r == KR_EIO && kr_last_errno() == ECONNREFUSED, "kr_connect: %d, errno %d", r,
	         kr_last_errno());
	atomic_fetch_add(&timeouts_done, 1);
}

Test(io, read_write_accept_and_connect_time_out)
{
	vm_start(2);
	int rd[2], wr[2];
	socket_pair(rd);
	socket_pair(wr);
	struct sockaddr_in acc_addr, refused;
	int acc = tcp_listener(&acc_addr, 16);
	/* A port nobody listens on. */
	int gone = tcp_listener(&refused, 1);
	close(gone);
	/* A listener whose queue is full: connect until one does not finish. */
	int full = tcp_listener(&full_addr, 0);
	int fillers[8], nfill = 0;
	for (; nfill < 8; nfill++) {
		fillers[nfill] = tcp_socket();
		connect(fillers[nfill], (struct sockaddr *)&full_addr, sizeof full_addr);
		struct pollfd pfd = { .fd = fillers[nfill], .events = POLLOUT };
		if (poll(&pfd, 1, 100) == 0) {
			nfill++;
			break;
		}
	}
	vm_spawn(read_times_out, (void *)(intptr_t)rd[0]);
	vm_spawn(write_times_out, (void *)(intptr_t)wr[0]);
	vm_spawn(accept_times_out, (void *)(intptr_t)acc);
	vm_spawn(connect_times_out, NULL);
	vm_spawn(connect_refused, &refused);
	cr_assert(VM_WAIT(atomic_load(&timeouts_done) == 5, 20000), "%d of 5 done",
	          atomic_load(&timeouts_done));
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	cr_assert_eq(io_waiting(), 0);
	cr_assert_eq(io_owned(), 0);
	vm_stop();
	for (int i = 0; i < nfill; i++)
		close(fillers[i]);
	close(full);
	close(acc);
	close(rd[0]);
	close(rd[1]);
	close(wr[0]);
	close(wr[1]);
}

/* ---- a peer that has gone: EPIPE and ECONNRESET, never SIGPIPE ----
 *
 * Writing to a peer that has closed fails with KR_EIO and kr_last_errno
 * EPIPE, and the program lives on: scheduler threads block SIGPIPE, whose
 * default action would end the test's whole process. A TCP peer that
 * reset the connection gives ECONNRESET, then EPIPE. A write parked for
 * room wakes when its peer goes, with EPIPE, having written part of its
 * buffer (kr_last_written). */
static atomic_int gone_done;
static atomic_llong gone_parked_written;

static void write_to_closed_peer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	ssize_t n = kr_write(fd, "x", 1, 1000);
	VM_CHECK(n == KR_EIO && kr_last_errno() == EPIPE, "kr_write: %zd, errno %d", n,
	         kr_last_errno());
	atomic_fetch_add(&gone_done, 1);
}

static void write_to_reset_peer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	ssize_t n = kr_write(fd, "x", 1, 1000);
	VM_CHECK(n == KR_EIO && kr_last_errno() == ECONNRESET, "first kr_write: %zd, errno %d", n,
	         kr_last_errno());
	n = kr_write(fd, "x", 1, 1000);
	VM_CHECK(n == KR_EIO && kr_last_errno() == EPIPE, "second kr_write: %zd, errno %d", n,
	         kr_last_errno());
	atomic_fetch_add(&gone_done, 1);
}

static void write_until_peer_goes(void *arg)
{
	int fd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	size_t len = 16u << 20;
	char *big = malloc(len);
	VM_CHECK(big != NULL, "malloc");
	if (!big)
		return;
	memset(big, 'w', len);
	ssize_t n = kr_write(fd, big, len, 20000);
	VM_CHECK(n == KR_EIO && kr_last_errno() == EPIPE, "kr_write: %zd, errno %d", n,
	         kr_last_errno());
	atomic_store(&gone_parked_written, (long long)kr_last_written());
	free(big);
	atomic_fetch_add(&gone_done, 1);
}

Test(io, writing_to_a_peer_that_has_gone_is_epipe_or_econnreset)
{
	vm_start(2);
	/* A socketpair whose peer closed. */
	int closed[2];
	socket_pair(closed);
	close(closed[1]);
	vm_spawn(write_to_closed_peer, (void *)(intptr_t)closed[0]);
	/* A TCP connection whose peer reset it (SO_LINGER 0, then close). */
	struct sockaddr_in addr;
	int lst = tcp_listener(&addr, 4);
	int c = tcp_socket();
	cr_assert_geq(c, 0);
	int rc = connect(c, (struct sockaddr *)&addr, sizeof addr);
	cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
	struct pollfd pfd = { .fd = c, .events = POLLOUT };
	cr_assert_eq(poll(&pfd, 1, 10000), 1, "the connection was not made");
	struct pollfd lp = { .fd = lst, .events = POLLIN };
	cr_assert_eq(poll(&lp, 1, 10000), 1);
	int a = accept(lst, NULL, NULL);
	cr_assert_geq(a, 0, "accept: %s", strerror(errno));
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	cr_assert_eq(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(a);
	pfd = (struct pollfd){ .fd = c, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 10000), 1, "the reset did not arrive");
	vm_spawn(write_to_reset_peer, (void *)(intptr_t)c);
	/* A write parked for room when its peer closes. */
	int full[2];
	socket_pair(full);
	vm_spawn(write_until_peer_goes, (void *)(intptr_t)full[0]);
	cr_assert(VM_WAIT(io_waiting() == 1, 10000), "the writer did not wait for room");
	close(full[1]);
	cr_assert(VM_WAIT(atomic_load(&gone_done) == 3, 20000), "%d of 3 writers done",
	          atomic_load(&gone_done));
	long long w = atomic_load(&gone_parked_written);
	cr_assert(w > 0 && w < 16ll << 20, "kr_last_written %lld", w);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	cr_assert_eq(io_owned(), 0, "the writers' descriptors were not closed at their end");
	vm_stop();
	close(lst);
}

/* ---- several processes on one descriptor ---- */

static atomic_int multi_ready, multi_done;

/* Two readers of one socket, and a writer on it whose buffer is full. */
static void multi_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	atomic_fetch_add(&multi_ready, 1);
	int r = kr_wait_fd(fd, KR_READABLE, 10000);
	VM_CHECK(r == (int)KR_READABLE, "reader woken with %d", r);
	atomic_fetch_add(&multi_done, 1);
}

static void multi_writer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char chunk[4096];
	memset(chunk, 'z', sizeof chunk);
	while (write(fd, chunk, sizeof chunk) > 0)
		;
	atomic_fetch_add(&multi_ready, 1);
	int r = kr_wait_fd(fd, KR_WRITABLE, 10000);
	VM_CHECK(r == (int)KR_WRITABLE, "writer woken with %d", r);
	atomic_fetch_add(&multi_done, 1);
}

Test(io, a_reader_and_writers_wait_on_one_descriptor)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	vm_spawn(multi_reader, (void *)(intptr_t)sv[0]);
	vm_spawn(multi_reader, (void *)(intptr_t)sv[0]);
	vm_spawn(multi_writer, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(atomic_load(&multi_ready) == 3 && io_waiting() == 3, 10000));
	/* Data for the readers: both wake, the writer waits on. */
	cr_assert_eq(write(sv[1], "r", 1), 1);
	cr_assert(VM_WAIT(atomic_load(&multi_done) == 2, 10000));
	vm_host_sleep_ms(50);
	cr_assert_eq(atomic_load(&multi_done), 2, "the writer woke with the readers");
	cr_assert_eq(io_waiting(), 1);
	/* Drain: room for the writer. */
	char buf[65536];
	while (read(sv[1], buf, sizeof buf) > 0)
		;
	cr_assert(VM_WAIT(atomic_load(&multi_done) == 3, 10000));
	vm_assert_clean();
	cr_assert_eq(io_waiting(), 0);
	vm_stop();
	close(sv[0]);
	close(sv[1]);
}

/* kr_close wakes whoever waits on the descriptor. */
static atomic_int closed_seen;

static void wait_for_close(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;
	ssize_t n = kr_read(fd, &c, 1, 10000);
	VM_CHECK(n == KR_EIO && kr_last_errno() == EBADF, "kr_read: %zd, errno %d", n, kr_last_errno());
	atomic_fetch_add(&closed_seen, 1);
}

Test(io, kr_close_wakes_the_waiters)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	vm_spawn(wait_for_close, (void *)(intptr_t)sv[0]);
	vm_spawn(wait_for_close, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(io_waiting() == 2, 10000));
	cr_assert_eq(kr_close(sv[0]), 0); /* from a host thread */
	cr_assert(VM_WAIT(atomic_load(&closed_seen) == 2, 10000));
	cr_assert(fd_is_closed(sv[0]));
	cr_assert_eq(host_read(sv[1]), 0);
	vm_assert_clean();
	vm_stop();
	close(sv[1]);
}

/* ---- exit signals reach a process parked on a descriptor ---- */

static void read_forever(void *arg)
{
	int fd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	char c;
	ssize_t n = kr_read(fd, &c, 1, KR_INFINITY);
	VM_CHECK(0, "kr_read returned %zd to a process that was to be killed", n);
}

/* Killed, from a host thread or by a process, or ended by a linked
 * process's crash: woken, its registration gone, its descriptor closed. */
static void killer(void *arg)
{
	kr_exit_sig((kr_pid)(intptr_t)arg, KR_EXIT_KILL);
}

static atomic_llong link_target;

static void linked_crasher(void *arg)
{
	(void)arg;
	kr_link((kr_pid)atomic_load(&link_target));
	kr_crash("takes its link down");
}

Test(io, a_process_killed_while_parked_on_a_descriptor_ends_and_closes_it)
{
	vm_start_quiet(2);
	for (int how = 0; how < 3; how++) {
		int sv[2];
		socket_pair(sv);
		kr_pid p = vm_spawn(read_forever, (void *)(intptr_t)sv[0]);
		cr_assert(VM_WAIT(io_waiting() == 1 && vm_status(p) == KR_WAITING, 10000));
		cr_assert_eq(kr_fd_owner(sv[0]), p);
		if (how == 0) {
			cr_assert_eq(kr_exit_sig(p, KR_EXIT_KILL), 0);
		} else if (how == 1) {
			vm_spawn(killer, (void *)(intptr_t)p);
		} else {
			atomic_store(&link_target, p);
			vm_spawn(linked_crasher, NULL);
		}
		cr_assert(VM_WAIT(!kr_is_alive(p), 10000), "case %d: still alive", how);
		cr_assert_eq(io_waiting(), 0, "case %d: a registration is left", how);
		cr_assert_eq(io_owned(), 0, "case %d", how);
		cr_assert(fd_is_closed(sv[0]), "case %d: its descriptor is open", how);
		cr_assert_eq(host_read(sv[1]), 0, "case %d: the peer sees no end of file", how);
		close(sv[1]);
	}
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	vm_stop();
}

/* A trapped exit signal, or a normal one, does not end the wait. */
static atomic_int trap_stage;

static void trapping_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	kr_trap_exit(1);
	atomic_store(&trap_stage, 1);
	char c;
	ssize_t n = kr_read(fd, &c, 1, 20000);
	VM_CHECK(n == 1 && c == 'd', "kr_read after the signals: %zd", n);
	kr_msg *m;
	int r = kr_recv_tag(&m, KR_TAG_EXIT, 0);
	VM_CHECK(r == 0, "the trapped exit signal is a message: %d", r);
	if (r == 0) {
		VM_CHECK(kr_msg_exit(m)->reason.kind == KR_EXIT_SHUTDOWN, "reason %d",
		         kr_msg_exit(m)->reason.kind);
		kr_msg_free(m);
	}
	atomic_store(&trap_stage, 2);
}

static void plain_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	atomic_store(&trap_stage, 1);
	char c;
	ssize_t n = kr_read(fd, &c, 1, 20000);
	VM_CHECK(n == 1 && c == 'd', "kr_read after a normal exit signal: %zd", n);
	atomic_store(&trap_stage, 2);
}

Test(io, a_trapped_or_normal_exit_signal_does_not_end_the_wait)
{
	vm_start(2);
	for (int trap = 1; trap >= 0; trap--) {
		int sv[2];
		socket_pair(sv);
		atomic_store(&trap_stage, 0);
		kr_pid p = vm_spawn(trap ? trapping_reader : plain_reader, (void *)(intptr_t)sv[0]);
		cr_assert(VM_WAIT(atomic_load(&trap_stage) == 1 && io_waiting() == 1, 10000));
		cr_assert_eq(kr_exit_sig(p, trap ? KR_EXIT_SHUTDOWN : KR_EXIT_NORMAL), 0);
		/* It wakes, takes the signal in, and waits again. */
		cr_assert(VM_WAIT(io_waiting() == 1 && vm_status(p) == KR_WAITING, 10000));
		vm_host_sleep_ms(20);
		cr_assert(kr_is_alive(p));
		cr_assert_eq(write(sv[1], "d", 1), 1);
		cr_assert(VM_WAIT(atomic_load(&trap_stage) == 2, 10000));
		close(sv[0]);
		close(sv[1]);
	}
	vm_assert_clean();
	vm_stop();
}

/* ---- races: readiness against timeouts, kills against everything ---- */

#define RACE_PAIRS (200 / VM_LIGHT_DIV)
#define RACE_BYTES 300

static atomic_int race_done, race_almost;
static atomic_long race_timeouts;

/* Reads RACE_BYTES bytes, 0, 1, 2 ... in order, with a 1 ms timeout that
 * keeps racing the writer's bytes: none may be lost, none seen twice. After
 * a wait that timed out, the next one has no timeout (another byte always
 * comes): a wake-up lost as a byte raced a timeout, or lost at all, then
 * shows as a wait that never ends, where another 1 ms try would have found
 * the byte and hidden it. Not even a long timeout: a timer firing makes
 * its scheduler poll, and finds the byte as surely. */

static void race_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	unsigned char buf[64];
	int got = 0;
	long timeouts = 0;
	long wait = 1;
	while (got < RACE_BYTES) {
		ssize_t n = kr_read(fd, buf, sizeof buf, wait);
		if (n == KR_ETIMEDOUT && wait == 1) {
			timeouts++;
			wait = KR_INFINITY;
			continue;
		}
		VM_CHECK(n > 0, "kr_read (timeout %ld ms) after byte %d: %zd (errno %d)", wait, got, n,
		         kr_last_errno());
		if (n <= 0)
			break;
		wait = 1;
		for (ssize_t i = 0; i < n; i++, got++)
			VM_CHECK(buf[i] == (unsigned char)got, "byte %d is %d", got, buf[i]);
		if (got == RACE_BYTES - 1)
			atomic_fetch_add(&race_almost, 1);
	}
	atomic_fetch_add(&race_timeouts, timeouts);
	atomic_fetch_add(&race_done, 1);
}

/* Writes all bytes but the last, which the test thread writes. */
static void race_writer(void *arg)
{
	int fd = (int)((intptr_t)arg >> 8), seed = (int)((intptr_t)arg & 0xff);
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	uint32_t r = (uint32_t)seed * 2654435761u + 1;
	for (int i = 0; i < RACE_BYTES - 1; i++) {
		unsigned char b = (unsigned char)i;
		VM_CHECK(kr_write(fd, &b, 1, 10000) == 1, "kr_write");
		switch (vm_rand(&r) % 8) {
		case 0: kr_sleep(1); break;
		case 1: case 2: kr_yield(); break;
		default: break;
		}
	}
	/* Stay until the reader has it all (our end closes when we end),
	 * with no timer: the test says when. */
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0)
		kr_msg_free(m);
}

Test(io, readiness_races_timeouts_without_loss_or_double, .timeout = 120)
{
	static kr_pid writers[RACE_PAIRS];
	static int ends[RACE_PAIRS];
	vm_start(0);
	for (int i = 0; i < RACE_PAIRS; i++) {
		int sv[2];
		socket_pair(sv);
		ends[i] = sv[1];
		vm_spawn(race_reader, (void *)(intptr_t)sv[0]);
		writers[i] = vm_spawn(race_writer, (void *)((intptr_t)sv[1] << 8 | (i & 0xff)));
	}
	/* The last bytes come from outside, once every reader has waited for
	 * its own long enough for the 1 ms timeout to have passed: into waits
	 * with no timer, in a VM with nothing to do (a byte written by a
	 * process is found at once by its scheduler's next poll, with or
	 * without a wake-up; one from outside needs the poller's). */
	cr_assert(VM_WAIT(atomic_load(&race_almost) == RACE_PAIRS || atomic_load(&vm_fails), 100000),
	          "%d of %d readers near the end", atomic_load(&race_almost), RACE_PAIRS);
	vm_assert_clean();
	vm_host_sleep_ms(20);
	for (int i = 0; i < RACE_PAIRS; i++) {
		unsigned char b = (unsigned char)(RACE_BYTES - 1);
		cr_assert_eq(write(ends[i], &b, 1), 1, "write: %s", strerror(errno));
	}
	cr_assert(VM_WAIT(atomic_load(&race_done) == RACE_PAIRS || atomic_load(&vm_fails), 30000),
	          "%d of %d readers done: the others still wait for their last byte",
	          atomic_load(&race_done), RACE_PAIRS);
	vm_assert_clean();
	cr_log_info("%ld timeouts raced the bytes", atomic_load(&race_timeouts));
	for (int i = 0; i < RACE_PAIRS; i++)
		cr_assert_eq(kr_send(writers[i], 1, NULL, 0), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	cr_assert_eq(io_waiting(), 0);
	cr_assert_eq(io_owned(), 0);
	vm_stop();
}

/* Processes that keep parking and waking on their descriptors (timeouts,
 * a peer that writes now and then), killed at random moments: every one
 * ends, no registration is left, every descriptor is closed. Each makes 0
 * to 3 waits with a 1 ms timeout, then waits with none: a kill that does
 * not wake a process parked on a descriptor leaves it there for good,
 * where a timeout would have let it notice the kill at its next call. */
#define KILL_PROCS (400 / VM_LIGHT_DIV)

static void restless(void *arg)
{
	int fd = (int)(intptr_t)arg; /* given by the test, before we may have run */
	int shorts = (int)((uint32_t)fd * 2654435761u >> 30); /* 0 to 3 */
	char buf[16];
	for (int i = 0;; i++) {
		long wait = i < shorts ? 1 : KR_INFINITY;
		ssize_t n = kr_read(fd, buf, sizeof buf, wait);
		VM_CHECK(n > 0 || (n == KR_ETIMEDOUT && wait == 1), "kr_read (timeout %ld): %zd", wait,
		         n);
		if (n <= 0 && n != KR_ETIMEDOUT)
			return;
	}
}

Test(io, kills_race_wake_ups_and_leave_nothing_behind, .timeout = 120)
{
	vm_start_quiet(0);
	static int peers[KILL_PROCS], ends[KILL_PROCS];
	static kr_pid pids[KILL_PROCS];
	for (int i = 0; i < KILL_PROCS; i++) {
		int sv[2];
		socket_pair(sv);
		ends[i] = sv[0];
		peers[i] = sv[1];
		pids[i] = vm_spawn(restless, (void *)(intptr_t)sv[0]);
		/* Given at once: a kill may come before the process first runs,
		 * and its descriptor must be closed all the same. */
		cr_assert_eq(kr_fd_give(sv[0], pids[i]), 0);
	}
	uint32_t r = 7;
	for (int i = 0; i < KILL_PROCS; i++) {
		/* Some get a byte first, so the kill may meet a wake-up. */
		if (vm_rand(&r) % 2)
			(void)!write(peers[i], "k", 1);
		if (vm_rand(&r) % 4 == 0)
			usleep(vm_rand(&r) % 1000);
		cr_assert_eq(kr_exit_sig(pids[i], KR_EXIT_KILL), 0);
	}
	cr_assert(VM_WAIT(vm_alive() == 0, 30000), "%zu processes survived their kill", vm_alive());
	vm_assert_clean();
	cr_assert_eq(io_waiting(), 0);
	cr_assert_eq(io_owned(), 0);
	for (int i = 0; i < KILL_PROCS; i++) {
		cr_assert(fd_is_closed(ends[i]), "process %d's descriptor is open", i);
		close(peers[i]);
	}
	vm_stop();
}

/* ---- ownership ---- */

static atomic_int owned_ready;

/* Own three descriptors, then end: 0 returns, 1 crashes, 2 faults. */
static void own_then_end(void *arg)
{
	const int *fds = arg;
	int how = fds[3]; /* read before the test, told we are ready, reuses fds */
	for (int i = 0; i < 3; i++)
		VM_CHECK(kr_fd_own(fds[i]) == 0, "own %d", fds[i]);
	atomic_store(&owned_ready, 1);
	kr_sleep(20);
	switch (how) {
	case 1: kr_crash("with three descriptors"); break;
	case 2: fault_store_null(); break;
	}
}

Test(io, an_owners_descriptors_are_closed_however_it_ends)
{
	vm_start_quiet(2);
	for (int how = 0; how < 3; how++) {
		int a[2], b[2], c[2];
		socket_pair(a);
		socket_pair(b);
		socket_pair(c);
		int fds[4] = { a[0], b[0], c[0], how };
		atomic_store(&owned_ready, 0);
		kr_pid p = vm_spawn(own_then_end, fds);
		cr_assert(VM_WAIT(atomic_load(&owned_ready), 10000));
		cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
		cr_assert(fd_is_closed(a[0]) && fd_is_closed(b[0]) && fd_is_closed(c[0]),
		          "case %d: an owned descriptor is open", how);
		cr_assert(host_read(a[1]) == 0 && host_read(b[1]) == 0 && host_read(c[1]) == 0,
		          "case %d: a peer sees no end of file", how);
		cr_assert_eq(io_owned(), 0);
		close(a[1]);
		close(b[1]);
		close(c[1]);
	}
	cr_assert_geq(atomic_load(&vm_reports), 2, "the crash and the fault are reported");
	vm_assert_clean();
	vm_stop();
}

/* kr_fd_give: the descriptor is the receiver's, closed at its end, not at
 * the giver's; even if the receiver never takes its mailbox in. */
static atomic_int give_stage;

static void receiver_spins(void *arg)
{
	(void)arg;
	/* Never receives: the gift stays in its mailbox. */
	while (atomic_load(&give_stage) < 2 && !atomic_load(&vm_abort))
		kr_yield();
}

static void receiver_sleeps(void *arg)
{
	(void)arg;
	while (atomic_load(&give_stage) < 2 && !atomic_load(&vm_abort))
		kr_sleep(5);
}

static void giver(void *arg)
{
	const fd_pid *a = arg;
	VM_CHECK(kr_fd_own(a->fd) == 0, "own");
	int r = kr_fd_give(a->fd, a->pid);
	VM_CHECK(r == 0, "give: %d", r);
	VM_CHECK(kr_fd_owner(a->fd) == a->pid, "owner after the give: %lld",
	         (long long)kr_fd_owner(a->fd));
	VM_CHECK(kr_fd_give(a->fd, a->pid) == KR_EINVAL, "gave it twice");
	atomic_store(&give_stage, 1);
}

Test(io, a_given_descriptor_is_closed_at_the_receivers_end)
{
	vm_start(2);
	for (int how = 0; how < 3; how++) {
		int sv[2];
		socket_pair(sv);
		atomic_store(&give_stage, 0);
		kr_pid to = vm_spawn(how == 0 ? receiver_spins : receiver_sleeps, NULL);
		fd_pid arg = { sv[0], to };
		if (how < 2) {
			kr_pid g = vm_spawn(giver, &arg);
			cr_assert(VM_WAIT(atomic_load(&give_stage) == 1 && !kr_is_alive(g), 10000));
		} else {
			/* From a host thread: an unowned descriptor. */
			cr_assert_eq(kr_fd_give(sv[0], to), 0);
			cr_assert_eq(kr_fd_give(sv[0], to), KR_EINVAL, "given twice");
		}
		/* The giver is gone; the descriptor is the receiver's. */
		vm_host_sleep_ms(20);
		cr_assert(!fd_is_closed(sv[0]), "case %d: closed at the giver's end", how);
		cr_assert_eq(kr_fd_owner(sv[0]), to);
		cr_assert_eq(io_owned(), 1);
		atomic_store(&give_stage, 2);
		cr_assert(VM_WAIT(!kr_is_alive(to), 10000));
		cr_assert(VM_WAIT(fd_is_closed(sv[0]), 10000), "case %d: open after the receiver's end", how);
		cr_assert_eq(host_read(sv[1]), 0);
		cr_assert_eq(io_owned(), 0);
		close(sv[1]);
	}
	vm_assert_clean();
	vm_stop();
}

/* Descriptors owned by processes still alive when the VM stops are closed. */
static void own_and_wait(void *arg)
{
	int fd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	char c;
	(void)kr_read(fd, &c, 1, KR_INFINITY);
}

Test(io, the_vm_stop_closes_what_live_processes_own)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	vm_spawn(own_and_wait, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(io_waiting() == 1, 10000));
	vm_stop();
	cr_assert(fd_is_closed(sv[0]));
	cr_assert_eq(host_read(sv[1]), 0);
	close(sv[1]);
}

/* ---- echo: thousands of processes over socketpairs and loopback TCP ---- */

#define ECHO_PAIRS KR_TEST_MIN(2000 / VM_LIGHT_DIV, KR_TEST_MAX_LIVE_CTX / 2)
#define ECHO_LINES (100 / KR_TEST_SCALE)
#define IO_WAIT_MS 60000

static atomic_int echo_done, echo_served;

/* Echo what comes until the peer closes. The descriptor is this process's
 * (given by the acceptor, or owned by pair_server), so it closes when this
 * ends. */
static void echo_server(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[512];
	for (;;) {
		ssize_t n = kr_read(fd, buf, sizeof buf, IO_WAIT_MS);
		if (n <= 0) {
			VM_CHECK(n == 0, "server kr_read: %zd (errno %d)", n, kr_last_errno());
			break;
		}
		ssize_t w = kr_write(fd, buf, (size_t)n, IO_WAIT_MS);
		VM_CHECK(w == n, "server kr_write: %zd of %zd", w, n);
	}
	atomic_fetch_add(&echo_served, 1);
}

/* Send ECHO_LINES lines and read each back whole. */
static void echo_lines(int fd, int id)
{
	for (int i = 0; i < ECHO_LINES; i++) {
		char line[96], back[96];
		int len = snprintf(line, sizeof line, "client %d says line %d of %d, over and out\n", id, i,
		                   ECHO_LINES);
		ssize_t w = kr_write(fd, line, (size_t)len, IO_WAIT_MS);
		VM_CHECK(w == len, "client %d kr_write: %zd", id, w);
		int got = 0;
		while (got < len) {
			ssize_t n = kr_read(fd, back + got, (size_t)(len - got), IO_WAIT_MS);
			VM_CHECK(n > 0, "client %d kr_read: %zd (errno %d)", id, n, kr_last_errno());
			if (n <= 0)
				return;
			got += (int)n;
		}
		VM_CHECK(!memcmp(line, back, (size_t)len), "client %d line %d came back changed", id, i);
	}
}

static void pair_server(void *arg)
{
	VM_CHECK(kr_fd_own((int)(intptr_t)arg) == 0, "own");
	echo_server(arg);
}

static void pair_client(void *arg)
{
	int fd = (int)((intptr_t)arg >> 20), id = (int)((intptr_t)arg & 0xfffff);
	VM_CHECK(kr_fd_own(fd) == 0, "own");
	echo_lines(fd, id);
	atomic_fetch_add(&echo_done, 1);
}

Test(io, echo_over_thousands_of_socketpairs, .timeout = 300)
{
	raise_fd_limit();
	vm_start(0);
	for (int i = 0; i < ECHO_PAIRS; i++) {
		int sv[2];
		socket_pair(sv);
		vm_spawn(pair_server, (void *)(intptr_t)sv[0]);
		vm_spawn(pair_client, (void *)((intptr_t)sv[1] << 20 | i));
	}
	cr_assert(VM_WAIT(atomic_load(&echo_done) == ECHO_PAIRS, 240000), "%d of %d clients done",
	          atomic_load(&echo_done), ECHO_PAIRS);
	cr_assert(VM_WAIT(atomic_load(&echo_served) == ECHO_PAIRS && vm_alive() == 0, 30000),
	          "%d of %d servers done", atomic_load(&echo_served), ECHO_PAIRS);
	vm_assert_clean();
	cr_assert_eq(io_owned(), 0);
	cr_assert_eq(io_waiting(), 0);
	vm_stop();
}

static struct sockaddr_in echo_addr;
static atomic_int accepted;

/* Accept ECHO_PAIRS connections, each handed to a process of its own. */
static void acceptor(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_own(lfd) == 0, "own the listener");
	while (atomic_load(&accepted) < ECHO_PAIRS && !atomic_load(&vm_abort)) {
		int fd = kr_accept(lfd, IO_WAIT_MS);
		VM_CHECK(fd >= 0, "kr_accept: %d (errno %d)", fd, kr_last_errno());
		if (fd < 0)
			return;
		VM_CHECK(kr_fd_owner(fd) == kr_self(), "an accepted descriptor is the acceptor's");
		kr_pid h = kr_spawn(echo_server, (void *)(intptr_t)fd);
		VM_CHECK(h > 0, "spawn: %lld", (long long)h);
		int r = kr_fd_give(fd, h);
		VM_CHECK(r == 0, "give: %d", r);
		atomic_fetch_add(&accepted, 1);
	}
}

static void tcp_client(void *arg)
{
	int id = (int)(intptr_t)arg;
	int fd = tcp_socket();
	VM_CHECK(fd >= 0, "socket: %d", errno);
	if (fd < 0)
		return;
	int r = kr_fd_own(fd);
	VM_CHECK(r == 0, "client %d: own %d: %d (owner %lld)", id, fd, r, (long long)kr_fd_owner(fd));
	r = kr_connect(fd, (struct sockaddr *)&echo_addr, sizeof echo_addr, IO_WAIT_MS);
	VM_CHECK(r == 0, "client %d kr_connect: %d (errno %d)", id, r, kr_last_errno());
	if (r == 0)
		echo_lines(fd, id);
	atomic_fetch_add(&echo_done, 1);
}

Test(io, echo_over_thousands_of_tcp_connections, .timeout = 300)
{
	raise_fd_limit();
	vm_start(0);
	int lfd = tcp_listener(&echo_addr, 4096);
	vm_spawn(acceptor, (void *)(intptr_t)lfd);
	for (int i = 0; i < ECHO_PAIRS; i++)
		vm_spawn(tcp_client, (void *)(intptr_t)i);
	cr_assert(VM_WAIT(atomic_load(&echo_done) == ECHO_PAIRS, 240000), "%d of %d clients done, %d accepted",
	          atomic_load(&echo_done), ECHO_PAIRS, atomic_load(&accepted));
	cr_assert(VM_WAIT(atomic_load(&echo_served) == ECHO_PAIRS && vm_alive() == 0, 30000),
	          "%d of %d servers done", atomic_load(&echo_served), ECHO_PAIRS);
	vm_assert_clean();
	cr_assert(fd_is_closed(lfd), "the acceptor's listener outlived it");
	cr_assert_eq(io_owned(), 0);
	vm_stop();
}

/* ---- the poller and the schedulers ---- */

/* A VM whose only process waits on a descriptor sleeps (in epoll). */
Test(io, an_idle_vm_with_a_process_waiting_on_a_descriptor_uses_no_cpu, .timeout = 30)
{
	vm_start(0);
	int sv[2];
	socket_pair(sv);
	kr_pid p = vm_spawn(waiting_status, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(io_waiting() == 1, 10000));
	vm_host_sleep_ms(200); /* let spinning schedulers park */
	double c0 = vm_cpu_ms();
	vm_host_sleep_ms(1000);
	double used = vm_cpu_ms() - c0;
	cr_log_info("VM with a process on a descriptor: %.2f ms of CPU in 1 s", used);
	cr_assert_lt(used, 30.0, "used %.1f ms of CPU in 1 s", used);
	/* And it is still woken. */
	cr_assert_eq(write(sv[1], "w", 1), 1);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	vm_assert_clean();
	vm_stop();
	close(sv[0]);
	close(sv[1]);
}

/* One scheduler, kept busy for ever by a process that only yields: a
 * descriptor that becomes ready is still seen (the poller's tick). */
static atomic_int busy_stop, busy_woken;

static void busy_yielder(void *arg)
{
	(void)arg;
	while (!atomic_load(&busy_stop) && !atomic_load(&vm_abort))
		kr_yield();
}

static void busy_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;
	ssize_t n = kr_read(fd, &c, 1, 20000);
	VM_CHECK(n == 1, "kr_read: %zd", n);
	atomic_store(&busy_woken, 1);
}

Test(io, a_busy_scheduler_still_sees_ready_descriptors)
{
	vm_start(1);
	int sv[2];
	socket_pair(sv);
	vm_spawn(busy_reader, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(io_waiting() == 1, 10000));
	vm_spawn(busy_yielder, NULL);
	vm_host_sleep_ms(50);
	cr_assert_eq(write(sv[1], "b", 1), 1);
	cr_assert(VM_WAIT(atomic_load(&busy_woken), 15000), "the reader was starved");
	atomic_store(&busy_stop, 1);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	vm_stop();
	close(sv[0]);
	close(sv[1]);
}
