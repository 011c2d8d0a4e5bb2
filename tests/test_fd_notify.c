/*
 * test_fd_notify.c - readiness as a message (kr_fd_notify, Erlang's
 * {active, once}): the message comes once, when the descriptor is ready,
 * to a process that receives other messages or hibernates meanwhile; a
 * close answers with EBADF; a request can be withdrawn, asked again
 * without a second message, and outlives a process that ends with it; bad
 * arguments; and thousands of hibernating readers on socketpairs, each
 * woken by its line, holding no stack while they wait.
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(fd_notify, .fini = vm_fini, .timeout = 60);

static void socket_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0,
	             "socketpair: %s", strerror(errno));
}

static kr_io_stats io_stats(void)
{
	kr_io_stats s = { 0 };
	cr_assert_eq(kr_io_stats_get(&s), 0);
	return s;
}

static size_t io_notifying(void)
{
	kr_io_stats s;
	return kr_io_stats_get(&s) == 0 ? s.notifying : (size_t)-1;
}

/* ---- one reader that hibernates between lines ---- */

typedef struct reader {
	int fd;
	atomic_int lines;    /* lines read so far */
	atomic_int notified; /* KR_TAG_FD messages received */
	atomic_int others;   /* other messages received meanwhile */
	atomic_int ebadf;    /* a message said the descriptor was closed */
	atomic_int ready;    /* its first request is made */
} reader;

/* Read what there is, then ask for the next readiness and hibernate: the
 * process holds no stack until the next line (or another message) comes. */
static void reader_loop(void *arg)
{
	reader *r = arg;
	kr_msg *m;
	while (kr_recv(&m, 0) == 0) {
		const kr_fd_msg *f = kr_msg_fd(m);
		if (f) {
			VM_CHECK(f->fd == r->fd, "message for fd %d, not %d", f->fd, r->fd);
			if (f->err == EBADF) {
				VM_CHECK(f->events == 0, "EBADF with events %u", f->events);
				atomic_fetch_add(&r->ebadf, 1);
				kr_msg_free(m);
				return;
			}
			VM_CHECK(f->err == 0 && (f->events & KR_READABLE), "events %u err %d", f->events,
			         f->err);
			atomic_fetch_add(&r->notified, 1);
		} else {
			atomic_fetch_add(&r->others, 1);
		}
		kr_msg_free(m);
	}
	char buf[64];
	ssize_t n;
	while ((n = kr_read(r->fd, buf, sizeof buf, 0)) > 0)
		atomic_fetch_add(&r->lines, (int)n); /* a byte a line */
	if (n == 0)
		return; /* the peer closed */
	VM_CHECK(n == KR_ETIMEDOUT, "kr_read: %zd", n);
	VM_CHECK(kr_fd_notify(r->fd, KR_READABLE) == 0, "kr_fd_notify");
	atomic_store(&r->ready, 1);
	kr_hibernate(reader_loop, r);
}

static void host_write(int fd)
{
	cr_assert_eq(write(fd, "x", 1), 1, "write: %s", strerror(errno));
}

Test(fd_notify, a_hibernating_reader_wakes_once_per_readiness_and_takes_other_messages)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	reader r = { .fd = sv[0] };
	kr_pid pid = vm_spawn(reader_loop, &r);
	cr_assert(VM_WAIT(atomic_load(&r.ready) && vm_stats().hibernating == 1, 5000));
	cr_assert_eq(io_notifying(), 1);
	cr_assert_eq(vm_stats().stacks_in_use, 0, "a waiting reader holds a stack");
	for (int i = 1; i <= 5; i++) {
		host_write(sv[1]);
		cr_assert(VM_WAIT(atomic_load(&r.lines) == i && vm_stats().hibernating == 1, 5000),
		          "line %d: read %d", i, atomic_load(&r.lines));
	}
	cr_assert_eq(atomic_load(&r.notified), 5, "one message a readiness, not %d",
	             atomic_load(&r.notified));
	/* Another message wakes it too, and it goes back to waiting. */
	cr_assert_eq(kr_send(pid, 7, "hi", 2), 0);
	cr_assert(VM_WAIT(atomic_load(&r.others) == 1 && vm_stats().hibernating == 1, 5000));
	cr_assert_eq(io_notifying(), 1, "asking again made a second request");
	host_write(sv[1]);
	cr_assert(VM_WAIT(atomic_load(&r.lines) == 6, 5000));
	cr_assert_eq(atomic_load(&r.notified), 6);
	close(sv[1]); /* end of file: it ends */
	cr_assert(VM_WAIT(!kr_is_alive(pid), 5000));
	cr_assert(VM_WAIT(io_notifying() == 0, 5000));
	vm_assert_clean();
	vm_stop();
	close(sv[0]);
}

Test(fd_notify, a_close_answers_the_request_with_ebadf)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	reader r = { .fd = sv[0] };
	kr_pid pid = vm_spawn(reader_loop, &r);
	cr_assert(VM_WAIT(atomic_load(&r.ready) && vm_stats().hibernating == 1, 5000));
	cr_assert_eq(kr_close(sv[0]), 0);
	cr_assert(VM_WAIT(!kr_is_alive(pid), 5000), "no answer to the closed descriptor");
	cr_assert_eq(atomic_load(&r.ebadf), 1);
	cr_assert_eq(io_notifying(), 0);
	vm_assert_clean();
	vm_stop();
	close(sv[1]);
}

/* ---- withdrawing, asking twice, ending with a request ---- */

typedef struct asker {
	int fd;
	atomic_int step; /* the test thread's go-aheads and the process's answers */
	atomic_int done;
} asker;

/* Receive for ms: the number of KR_TAG_FD messages for fd. */
static int fd_msgs(int fd, long ms)
{
	int n = 0;
	kr_msg *m;
	while (kr_recv(&m, ms) == 0) {
		const kr_fd_msg *f = kr_msg_fd(m);
		n += f && f->fd == fd;
		kr_msg_free(m);
	}
	return n;
}

static void cancel_and_twice(void *arg)
{
	asker *a = arg;
	int r;
	/* Withdrawn: 1, then 0; no message when data comes. */
	VM_CHECK((r = kr_fd_notify(a->fd, KR_READABLE)) == 0, "notify: %d", r);
	VM_CHECK((r = kr_fd_notify_cancel(a->fd)) == 1, "cancel: %d", r);
	VM_CHECK((r = kr_fd_notify_cancel(a->fd)) == 0, "cancel again: %d", r);
	atomic_store(&a->step, 1); /* the test writes */
	VM_CHECK((r = fd_msgs(a->fd, 200)) == 0, "%d messages after a cancel", r);
	/* Asked twice (the second time for writing too): one request, one
	 * message, with what is ready of what the second asked. */
	VM_CHECK(kr_fd_notify(a->fd, KR_READABLE) == 0, "notify");
	VM_CHECK(kr_fd_notify(a->fd, KR_READABLE | KR_WRITABLE) == 0, "notify again");
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 5000) == 0 && kr_msg_fd(m), "no message");
	const kr_fd_msg *f = kr_msg_fd(m);
	VM_CHECK(f && f->events == (KR_READABLE | KR_WRITABLE), "events %u", f ? f->events : 0);
	kr_msg_free(m);
	VM_CHECK((r = fd_msgs(a->fd, 200)) == 0, "%d more messages", r);
	VM_CHECK((r = kr_fd_notify_cancel(a->fd)) == 0, "a request left: %d", r);
	atomic_store(&a->done, 1);
}

Test(fd_notify, a_request_is_withdrawn_and_asking_again_makes_no_second_message)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	asker a = { .fd = sv[0] };
	vm_spawn(cancel_and_twice, &a);
	cr_assert(VM_WAIT(atomic_load(&a.step) == 1, 5000));
	host_write(sv[1]);
	cr_assert(VM_WAIT(atomic_load(&a.done) || atomic_load(&vm_fails), 10000));
	vm_assert_clean();
	cr_assert_eq(io_notifying(), 0);
	vm_stop();
	close(sv[0]);
	close(sv[1]);
}

static void ask_and_end(void *arg)
{
	VM_CHECK(kr_fd_notify((int)(intptr_t)arg, KR_READABLE) == 0, "notify");
}

Test(fd_notify, a_request_outlives_its_process_until_the_descriptor_is_ready)
{
	vm_start(2);
	int sv[2];
	socket_pair(sv);
	kr_pid pid = vm_spawn(ask_and_end, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(!kr_is_alive(pid), 5000));
	cr_assert_eq(io_notifying(), 1);
	uint64_t dead = vm_dead_letters();
	host_write(sv[1]); /* the answer finds no one: dropped, not a dead letter */
	cr_assert(VM_WAIT(io_notifying() == 0, 5000));
	cr_assert_eq(vm_dead_letters(), dead);
	/* One left pending at the VM's stop is freed with it (ASan's leak
	 * check sees it otherwise). */
	pid = vm_spawn(ask_and_end, (void *)(intptr_t)sv[1]);
	cr_assert(VM_WAIT(!kr_is_alive(pid) && io_notifying() == 1, 5000));
	vm_assert_clean();
	vm_stop();
	close(sv[0]);
	close(sv[1]);
}

/* ---- arguments, files, host threads ---- */

static atomic_int args_done;

static void bad_args(void *arg)
{
	int closed = (int)(intptr_t)arg, r;
	VM_CHECK(kr_fd_notify(-1, KR_READABLE) == KR_EINVAL, "fd -1");
	VM_CHECK(kr_fd_notify(0, 0) == KR_EINVAL, "no events");
	VM_CHECK(kr_fd_notify(0, KR_HANGUP) == KR_EINVAL, "KR_HANGUP asked for");
	VM_CHECK(kr_fd_notify_cancel(-1) == KR_EINVAL, "cancel fd -1");
	VM_CHECK((r = kr_fd_notify(closed, KR_READABLE)) == KR_EIO && kr_last_errno() == EBADF,
	         "a closed descriptor: %d errno %d", r, kr_last_errno());
	atomic_store(&args_done, 1);
}

Test(fd_notify, bad_arguments_and_host_threads)
{
	cr_assert_eq(kr_fd_notify(0, KR_READABLE), KR_ENOTPROC);
	cr_assert_null(kr_msg_fd(NULL));
	vm_start(1);
	cr_assert_eq(kr_fd_notify(0, KR_READABLE), KR_ENOTPROC);
	cr_assert_eq(kr_fd_notify_cancel(0), KR_ENOTPROC);
	int sv[2];
	socket_pair(sv);
	close(sv[0]);
	close(sv[1]); /* a number no descriptor has now */
	vm_spawn(bad_args, (void *)(intptr_t)sv[0]);
	cr_assert(VM_WAIT(atomic_load(&args_done), 5000));
	vm_assert_clean();
	cr_assert_eq(io_notifying(), 0);
	vm_stop();
}

static void file_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	VM_CHECK(kr_fd_notify(fd, KR_READABLE) == 0, "notify");
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 0) == 0, "a regular file is ready at once");
	const kr_fd_msg *f = kr_msg_fd(m);
	VM_CHECK(f && f->fd == fd && f->events == KR_READABLE && f->err == 0, "message");
	atomic_store(&args_done, 1);
}

Test(fd_notify, a_regular_file_is_ready_at_once)
{
	char path[] = "/tmp/krill-notify-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	atomic_store(&args_done, 0);
	vm_start(1);
	vm_spawn(file_reader, (void *)(intptr_t)fd);
	cr_assert(VM_WAIT(atomic_load(&args_done) || atomic_load(&vm_fails), 5000));
	vm_assert_clean();
	cr_assert_eq(io_notifying(), 0);
	vm_stop();
	close(fd);
}

/* ---- many ---- */

#define MANY (20000 / VM_LIGHT_DIV)

Test(fd_notify, thousands_of_hibernating_readers_hold_no_stack_and_each_wakes_for_its_line,
     .timeout = 120)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	size_t n = MANY;
	if (rl.rlim_cur < 2 * n + 64)
		n = (rl.rlim_cur - 64) / 2;
	vm_start(2);
	int (*sv)[2] = calloc(n, sizeof *sv);
	reader *r = calloc(n, sizeof *r);
	cr_assert(sv && r);
	for (size_t i = 0; i < n; i++) {
		socket_pair(sv[i]);
		r[i].fd = sv[i][0];
		vm_spawn(reader_loop, &r[i]);
	}
	cr_assert(VM_WAIT(vm_stats().hibernating == n, 30000), "%zu of %zu hibernating",
	          vm_stats().hibernating, n);
	cr_assert_eq(io_notifying(), n);
	cr_assert_eq(vm_stats().stacks_in_use, 0);
	cr_assert_eq(io_stats().waiting, 0, "readers parked on their descriptors");
	for (size_t i = 0; i < n; i++)
		host_write(sv[i][1]);
	size_t read = 0;
	int64_t end = vm_now_ns() + 60 * (int64_t)1000000000;
	while (read < n && vm_now_ns() < end) {
		read = 0;
		for (size_t i = 0; i < n; i++)
			read += atomic_load(&r[i].lines) == 1;
		if (read < n)
			vm_host_sleep_ms(5);
	}
	cr_assert_eq(read, n, "%zu of %zu lines read", read, n);
	cr_assert(VM_WAIT(vm_stats().hibernating == n && io_notifying() == n, 30000));
	for (size_t i = 0; i < n; i++)
		close(sv[i][1]);
	cr_assert(VM_WAIT(vm_alive() == 0, 30000), "%zu readers left", vm_alive());
	cr_assert(VM_WAIT(io_notifying() == 0, 5000));
	vm_assert_clean();
	vm_stop();
	for (size_t i = 0; i < n; i++)
		close(sv[i][0]);
	free(sv);
	free(r);
}
