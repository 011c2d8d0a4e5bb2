/*
 * ctrl.h - distribution control messages: building the ones krill sends,
 * acting on the ones peers send.
 *
 * A frame (after its 4-byte length) is the pass-through byte 112, the
 * control message (a tuple whose first element names the operation), and
 * for the sending operations the message itself. krill declines the atom
 * cache and fragments in the handshake, so a peer sends nothing else.
 */
#ifndef KRD_CTRL_H
#define KRD_CTRL_H

#include <stddef.h>
#include <stdint.h>

#include "ext.h"
#include "krill.h"
#include "peer.h"

/* The operations (erts/emulator/beam/dist.h). */
enum krd_op {
	KRD_LINK = 1,
	KRD_SEND = 2,
	KRD_EXIT = 3,
	KRD_UNLINK = 4,
	KRD_REG_SEND = 6,
	KRD_GROUP_LEADER = 7,
	KRD_EXIT2 = 8,
	KRD_SEND_TT = 12,
	KRD_EXIT_TT = 13,
	KRD_REG_SEND_TT = 16,
	KRD_EXIT2_TT = 18,
	KRD_MONITOR_P = 19,
	KRD_DEMONITOR_P = 20,
	KRD_MONITOR_P_EXIT = 21,
	KRD_SEND_SENDER = 22,
	KRD_SEND_SENDER_TT = 23,
	KRD_PAYLOAD_EXIT = 24,
	KRD_PAYLOAD_EXIT_TT = 25,
	KRD_PAYLOAD_EXIT2 = 26,
	KRD_PAYLOAD_EXIT2_TT = 27,
	KRD_PAYLOAD_MONITOR_P_EXIT = 28,
	KRD_SPAWN_REQUEST = 29,
	KRD_SPAWN_REQUEST_TT = 30,
	KRD_SPAWN_REPLY = 31,
	KRD_SPAWN_REPLY_TT = 32,
	KRD_ALIAS_SEND = 33,
	KRD_ALIAS_SEND_TT = 34,
	KRD_UNLINK_ID = 35,
	KRD_UNLINK_ID_ACK = 36
};

/* Building frames (for spawn.c too): the head a writer reads and the
 * length's room, the pass-through byte and the control message's version
 * byte; then the control tuple and any message; krd_frame_send sets the
 * length and queues it to p's writer (0 also when p cannot be reached:
 * dropped, as a send to a lost node is). */
void krd_frame_begin(krd_buf *b, uint32_t creation);
int krd_frame_send(krd_peer *p, krd_buf *b);
/* A sender pid, or this node's pid 0 for a host thread (which has none). */
void krd_put_from(krd_buf *b, kr_pid from);
/* A term inside a message (t, n bytes, no version byte) as a process gets
 * it: (tag, bytes) for {Tag, Binary}, else (KR_TAG_TERM, the term with its
 * version byte, made in scratch: n + 1 bytes). */
void krd_as_krill(const uint8_t *t, size_t n, uint8_t *scratch, uint64_t *tag,
                  const uint8_t **data, size_t *len);

/* vm/'s remote send (remote.h): a message from `from` to the remote pid
 * `to`, as {Tag, Binary}, or as the term itself for KR_TAG_TERM. */
int krd_send(kr_pid from, kr_pid to, unsigned kind, uint64_t tag, kr_ref ref, const void *data,
             size_t len, kr_bin *bin);
/* A message to the process registered as name on peer p (REG_SEND). */
int krd_send_named(kr_pid from, krd_peer *p, const char *name, uint64_t tag, const void *data,
                   size_t len);

/* vm/'s remote signal (remote.h): a link, unlink, exit, monitor,
 * demonitor or DOWN from `from` to the remote pid `to`, noted in the
 * peer's track.h as it passes. */
void krd_signal(kr_pid from, kr_pid to, unsigned kind, kr_ref ref, uint64_t tag,
                const void *payload, size_t len);

/* Act on one frame from peer p (len bytes after the length). 0, or -1
 * for a frame that breaks the protocol: the connection must end, and
 * why (at most whylen bytes) says what was wrong. */
int krd_ctrl_handle(krd_peer *p, const uint8_t *f, size_t len, char *why, size_t whylen);

#endif
