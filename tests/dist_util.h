/*
 * dist_util.h - what the distribution tests share: other nodes as OS
 * processes (build/<flavour>/krnode, and the BEAM's erl when installed),
 * started with a deadline, read line by line, and killed at the end.
 */
#ifndef KR_DIST_UTIL_H
#define KR_DIST_UTIL_H

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm_util.h"

extern char **environ;

#define DIST_COOKIE "krill_test_cookie"

/* Node names unique to this test process (Criterion runs tests side by
 * side, and EPMD is shared by the machine). */
static inline const char *dist_name(char *buf, size_t n, const char *base)
{
	static int count;
	snprintf(buf, n, "%s%d_%d@127.0.0.1", base, (int)getpid(), count++);
	return buf;
}

typedef struct dist_proc {
	pid_t pid;
	int in;           /* its stdin (dist_start_in), or -1 */
	int out;          /* its stdout and stderr, non-blocking */
	char text[16384]; /* everything it printed so far */
	size_t len;
} dist_proc;

/* The processes started and not yet killed, by pid, for dist_kill_all. */
static pid_t dist_started[32];

static inline void dist_note(pid_t pid, pid_t was)
{
	for (int i = 0; i < 32; i++)
		if (dist_started[i] == was) {
			dist_started[i] = pid;
			return;
		}
}

/* Start argv with stdout and stderr into a pipe, and stdin from a pipe
 * of ours (p->in, for dist_say) if with_in, else from /dev/null. */
static inline void dist_start_in(dist_proc *p, char *const argv[], bool with_in)
{
	int fds[2], ins[2] = {-1, -1};
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	if (with_in)
		cr_assert_eq(pipe2(ins, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	if (with_in)
		posix_spawn_file_actions_adddup2(&fa, ins[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	memset(p, 0, sizeof *p);
	int rc = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (with_in)
		close(ins[0]);
	p->in = ins[1];
	cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));
	dist_note(p->pid, 0);
	p->out = fds[0];
	fcntl(p->out, F_SETFL, O_NONBLOCK);
}

static inline void dist_start(dist_proc *p, char *const argv[])
{
	dist_start_in(p, argv, false);
}

/* Write a line (a command, for krnode --commands) to p's stdin. */
static inline __attribute__((format(printf, 2, 3))) void dist_say(dist_proc *p, const char *fmt,
                                                                  ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof line - 1 && p->in >= 0);
	line[n++] = '\n';
	cr_assert_eq(write(p->in, line, (size_t)n), n);
}

/* How many times s occurs in what p printed so far. */
static inline int dist_count(dist_proc *p, const char *s)
{
	int k = 0;
	p->text[p->len] = 0;
	for (const char *at = p->text; (at = strstr(at, s)); at += strlen(s))
		k++;
	return k;
}

/* Read what p printed until want appears (true) or ms pass (false). */
static inline bool dist_expect(dist_proc *p, const char *want, long ms)
{
	int64_t end = vm_now_ns() + (int64_t)ms * 1000000;
	for (;;) {
		p->text[p->len] = 0;
		if (strstr(p->text, want))
			return true;
		int64_t left = (end - vm_now_ns()) / 1000000;
		if (left <= 0)
			return false;
		struct pollfd pf = {.fd = p->out, .events = POLLIN};
		if (poll(&pf, 1, (int)(left < 100 ? left : 100)) <= 0)
			continue;
		ssize_t n = read(p->out, p->text + p->len, sizeof p->text - 1 - p->len);
		if (n > 0)
			p->len += (size_t)n;
		else if (n == 0 && !strstr(p->text, want))
			return false; /* it ended */
	}
}

static inline void dist_kill(dist_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		dist_note(0, p->pid);
		p->pid = 0;
	}
	if (p->out > 0)
		close(p->out);
	if (p->in > 0)
		close(p->in);
	p->out = p->in = -1;
}

/* Kill what is still running of what this test started: for a suite's
 * .fini, so that a failed assert leaves no node behind. */
static inline void dist_kill_all(void)
{
	for (int i = 0; i < 32; i++)
		if (dist_started[i] > 0) {
			kill(dist_started[i], SIGKILL);
			waitpid(dist_started[i], NULL, 0);
			dist_started[i] = 0;
		}
}

/* A krnode (of this test flavour, beside the test binary) as name; with
 * a stdin to command it (--commands) if with_in. */
static inline void dist_krnode_in(dist_proc *p, const char *name, const char *cookie,
                                  const char *extra, bool with_in)
{
	char *argv[13] = {"./krnode", "--name", (char *)name, "--cookie", (char *)cookie};
	int n = 5;
	if (with_in)
		argv[n++] = "--commands";
	char buf[64];
	if (extra) {
		snprintf(buf, sizeof buf, "%s", extra);
		char *save;
		for (char *t = strtok_r(buf, " ", &save); t && n < 11; t = strtok_r(NULL, " ", &save))
			argv[n++] = t;
	}
	argv[n] = NULL;
	dist_start_in(p, argv, with_in);
	cr_assert(dist_expect(p, "ready", 10000), "krnode did not start: %s", p->text);
}

static inline void dist_krnode(dist_proc *p, const char *name, const char *cookie,
                               const char *extra)
{
	dist_krnode_in(p, name, cookie, extra, false);
}

static inline bool dist_have_erl(void)
{
	return system("command -v erl >/dev/null 2>&1") == 0;
}

/* erl as a node named name running expr (which should end with halt()),
 * killed by a timeout of its own after secs; extra: more of erl's
 * arguments, separated by spaces (NULL: none). */
static inline void dist_erl_opts(dist_proc *p, const char *name, const char *cookie,
                                 const char *extra, const char *expr, int secs)
{
	char t[16], buf[256];
	snprintf(t, sizeof t, "%d", secs);
	char *argv[24] = {"timeout", "-s", "KILL", t, "erl", "-noshell", "-name", (char *)name,
	                  "-setcookie", (char *)cookie};
	int n = 10;
	if (extra) {
		snprintf(buf, sizeof buf, "%s", extra);
		char *save;
		for (char *a = strtok_r(buf, " ", &save); a && n < 21; a = strtok_r(NULL, " ", &save))
			argv[n++] = a;
	}
	argv[n++] = "-eval";
	argv[n++] = (char *)expr;
	argv[n] = NULL;
	dist_start(p, argv);
}

static inline void dist_erl(dist_proc *p, const char *name, const char *cookie, const char *expr,
                            int secs)
{
	dist_erl_opts(p, name, cookie, NULL, expr, secs);
}

/* A TCP port free on loopback when looked at. */
static inline unsigned dist_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, l), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

#endif
