/*
 * chat_server.h - the chat server as a small library: start its
 * supervision tree on a port, find the port, stop it. Used by build/chat
 * (chat.c) and by the integration test (tests/test_chat.c), so that the
 * test runs the real server in-process. README.md beside this file says
 * what the server does and why it is built the way it is.
 *
 * One server per VM at a time: its processes have registered names
 * ("chat:rooms", "rsup:ROOM", "room:ROOM").
 */
#ifndef CHAT_SERVER_H
#define CHAT_SERVER_H

#include <krill.h>
#include <stddef.h>

#define CHAT_NAME_MAX 24 /* bytes of a nick or a room name */

/* The server's settings. A zeroed struct means every default. */
typedef struct chat_opts {
	int port;              /* TCP port on 127.0.0.1; 0 = any free port (see chat_port) */
	size_t line_max;       /* longest line a client may send, without its \n; 0 = 4096 */
	size_t out_max;        /* bytes a connection may have waiting to be written beyond what
	                        * its socket holds, before it is dropped as a slow client;
	                        * 0 = 256 KiB */
	int sndbuf;            /* SO_SNDBUF of accepted sockets; 0 = the kernel's (auto-tuned) */
	int room_max_restarts; /* a room's supervisor restarts its room at most this often */
	long room_period_ms;   /* ... within this period; 0, 0 = 3 in 5000 ms */
	long hibernate_after_ms; /* a connection's reader or writer idle this long hibernates
	                          * (holds no stack until it is needed); 0 = 1000, < 0 = never */
} chat_opts;

/*
 * Start the server: bind the port, start the tree (top supervisor, rooms
 * supervisor with the lobby, acceptor) linked to the calling process, as
 * kr_sup_start_link does: the tree stops when the caller ends, and the
 * caller gets the top supervisor's exit signal when the tree ends (trap
 * exits to outlive it). Returns the top supervisor's pid, or a negative
 * KR_E... code: KR_EEXIST (a server runs in this VM), KR_ESTART (the port
 * could not be bound, say), KR_ENOTPROC from a host thread.
 */
kr_pid chat_start(const chat_opts *opts);

/* The port the server listens on (after chat_start), or 0. */
int chat_port(void);

/*
 * Stop the server whose top supervisor is top, from the process that
 * started it (a supervisor takes orders only from its parent): every
 * connection is closed. Returns once the tree has ended, with its exit
 * message taken out of the caller's mailbox: 0, KR_ENOPROC if it was not
 * running, KR_ENOTPROC from a host thread.
 */
int chat_stop(kr_pid top);

#endif
