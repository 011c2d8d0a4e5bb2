/*
 * chat.c - the chat server's program (the server itself is chat_server.c).
 *
 *     build/chat [--port P] [--schedulers N] [--hibernate-after MS]
 *
 * The default port is 5555 on 127.0.0.1 (0 picks one). A connection's
 * processes hibernate after MS idle (default 1000; -1: never).
 *
 * Try it with two or three `nc 127.0.0.1 5555`: type lines, /nick, /join,
 * /who; /crash ends your own connection's process (and only it), and
 * /crashroom crashes your room's process, which its supervisor restarts
 * (four times in five seconds and the room's supervisor gives up: the
 * rooms supervisor restarts the room fresh, and its members are
 * disconnected). README.md beside this file says more. krill's reports
 * (crashes, restarts) go to stderr. Stop the server with Ctrl-C.
 */
#include <krill.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "chat_server.h"

static chat_opts opts = { .port = 5555 };

/* Start the tree and live as long as it does. */
static void root(void *arg)
{
	(void)arg;
	kr_trap_exit(1); /* to hear of the tree's end rather than share it */
	kr_pid top = chat_start(&opts);
	if (top < 0) {
		fprintf(stderr, "chat: cannot start on port %d: %s\n", opts.port,
		        kr_strerror((int)top));
		kr_exit(KR_EXIT_ERROR);
	}
	printf("chat: listening on 127.0.0.1:%d\n", chat_port());
	kr_msg *m;
	while (kr_recv_tag(&m, KR_TAG_EXIT, KR_INFINITY) == 0) {
		const kr_exit_msg *e = kr_msg_exit(m);
		if (e->from == top) {
			char why[160];
			fprintf(stderr, "chat: the server's tree ended (%s)\n",
			        kr_reason_format(&e->reason, why, sizeof why));
			kr_exit(KR_EXIT_ERROR);
		}
		kr_msg_free(m);
	}
}

/* A connection is a descriptor: allow as many as the hard limit does. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	kr_config cfg = { 0 };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			opts.port = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--schedulers") && i + 1 < argc) {
			cfg.schedulers = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--hibernate-after") && i + 1 < argc) {
			opts.hibernate_after_ms = atol(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--port P] [--schedulers N] [--hibernate-after MS]\n",
			        argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	raise_fd_limit();
	int rc = kr_main(&cfg, root, NULL);
	return rc < 0 ? 1 : rc;
}
