/*
 * conn.h - a connection to a peer: the processes that make and keep it.
 *
 * Per peer, one writer: the peer's outgoing queue. Senders queue whole
 * frames in its mailbox (krd_frame_queue), from PENDING on; once a
 * connection is up, it writes them in batches (one write for all that
 * queued while the last one ran) and a tick when it has been idle for a
 * quarter of net_ticktime.
 *
 * Per connection, one process that makes it (a connector, when we call
 * the peer; an accepted connection, when it calls us), runs the handshake,
 * then reads: frames in batches (one read for as many as arrived), each
 * handed to ctrl.c. A peer silent for net_ticktime is down. Whichever way
 * the connection ends, its process tells the peer table, and the writer of
 * a peer that is down stops (its queue is dropped, as Erlang drops what a
 * lost connection held).
 *
 * The socket is the connection process's; the writer owns a dup of it, so
 * that neither can ever write to a descriptor number reused by someone
 * else after the other closed it. Ending the connection shuts the socket
 * down for both.
 */
#ifndef KRD_CONN_H
#define KRD_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "krill.h"
#include "peer.h"

/* Tags between dist/'s processes (krill's own range; see sup.h). */
#define KRD_TAG_FRAME (KR_TAG_SUP + 0x80) /* to a writer: krd_frame_msg, then the frame */
#define KRD_TAG_UP (KR_TAG_SUP + 0x81)    /* to a writer: krd_up_msg */

/* The head of a frame queued to a writer. A message to a pid of the
 * peer's earlier incarnation is dropped here, as Erlang drops it; what
 * needs the peer's answer (links, monitors) goes with KRD_ANY_CREATION. */
typedef struct krd_frame_msg {
	uint32_t creation; /* the incarnation it is for, or KRD_ANY_CREATION */
	uint32_t unused;
} krd_frame_msg;
#define KRD_ANY_CREATION 0u /* a send to a name, a signal: for whoever is there */

kr_pid krd_writer_spawn(krd_peer *p);
kr_pid krd_connector_spawn(krd_peer *p);
/* A connection accepted on fd (the acceptor owns it): hand it to a new
 * connection process. 0, or an error (fd is closed). */
int krd_conn_accepted(int fd);

/* Queue frame (len bytes: a krd_frame_msg, the 4-byte length, the rest)
 * to writer w. */
int krd_frame_queue(kr_pid w, const void *frame, size_t len);

#endif
