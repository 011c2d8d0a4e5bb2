/*
 * dist_util.h - what the distribution tests share: other nodes as OS
 * processes (build/<flavour>/krnode, and the BEAM's erl when installed),
 * started with a deadline, read line by line, and killed at the end.
 */
#ifndef KR_DIST_UTIL_H
#define KR_DIST_UTIL_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	int out;          /* its stdout and stderr, non-blocking */
	char text[16384]; /* everything it printed so far */
	size_t len;
} dist_proc;

/* Start argv with stdout and stderr into a pipe. */
static inline void dist_start(dist_proc *p, char *const argv[])
{
	int fds[2];
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	memset(p, 0, sizeof *p);
	int rc = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));
	p->out = fds[0];
	fcntl(p->out, F_SETFL, O_NONBLOCK);
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
		p->pid = 0;
	}
	if (p->out > 0)
		close(p->out);
	p->out = -1;
}

/* A krnode (of this test flavour, beside the test binary) as name. */
static inline void dist_krnode(dist_proc *p, const char *name, const char *cookie,
                               const char *extra)
{
	char *argv[12] = {"./krnode", "--name", (char *)name, "--cookie", (char *)cookie};
	int n = 5;
	char buf[64];
	if (extra) {
		snprintf(buf, sizeof buf, "%s", extra);
		char *save;
		for (char *t = strtok_r(buf, " ", &save); t && n < 11; t = strtok_r(NULL, " ", &save))
			argv[n++] = t;
	}
	argv[n] = NULL;
	dist_start(p, argv);
	cr_assert(dist_expect(p, "ready", 10000), "krnode did not start: %s", p->text);
}

static inline bool dist_have_erl(void)
{
	return system("command -v erl >/dev/null 2>&1") == 0;
}

/* erl as a node named name running expr (which should end with halt()),
 * killed by a timeout of its own after secs. */
static inline void dist_erl(dist_proc *p, const char *name, const char *cookie, const char *expr,
                            int secs)
{
	char t[16];
	snprintf(t, sizeof t, "%d", secs);
	char *argv[] = {"timeout", "-s", "KILL", t, "erl", "-noshell", "-name", (char *)name,
	                "-setcookie", (char *)cookie, "-eval", (char *)expr, NULL};
	dist_start(p, argv);
}

#endif
