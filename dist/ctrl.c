/*
 * ctrl.c - control messages out and in (ctrl.h).
 *
 * Out: a remote send is encoded by the sending process itself into one
 * frame, which goes to the peer's writer as a message (conn.h); so frames
 * from one sender to one peer keep their order, as Erlang promises.
 * In: the reader hands each frame here; the control message is walked
 * whole (ext.c) before anything in it is believed.
 */
#include "ctrl.h"

#include <atomic_ops.h>
#include <ei.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ext.h"
#include "node.h"
#include "remote.h"
#include "spawn.h"

/* ---- out ---- */

/* The frame's head: room for the writer's krd_frame_msg and the length. */
void krd_frame_begin(krd_buf *b, uint32_t creation)
{
	krd_frame_msg head = {.creation = creation};
	krd_put(b, &head, sizeof head);
	krd_put_u32(b, 0); /* the length, set by krd_frame_send */
	krd_put_u8(b, KRD_PASS_THROUGH);
	krd_put_u8(b, KRD_VERSION_MAGIC);
}

/* A krill message as a term, without the version byte: the term as
 * given (KR_TAG_TERM), or {Tag, Binary}. */
static void put_body(krd_buf *b, uint64_t tag, const void *data, size_t len)
{
	if (tag == KR_TAG_TERM) {
		krd_put(b, (const uint8_t *)data + 1, len - 1); /* checked whole, from 131 on */
		return;
	}
	krd_put_tuple(b, 2);
	krd_put_uint(b, tag);
	krd_put_binary(b, data, len);
}

/* The message itself, after a control message. */
static void put_message(krd_buf *b, uint64_t tag, const void *data, size_t len)
{
	krd_put_u8(b, KRD_VERSION_MAGIC);
	put_body(b, tag, data, len);
}

/* Set the length and queue the frame to p's writer. A peer that cannot
 * be reached drops it, as a send to a lost node is dropped. */
int krd_frame_send(krd_peer *p, krd_buf *b)
{
	if (b->fail)
		return KR_ENOMEM;
	size_t n = b->len - sizeof(krd_frame_msg) - 4;
	if (n > UINT32_MAX)
		return KR_ELIMIT;
	uint8_t *len = b->p + sizeof(krd_frame_msg);
	len[0] = (uint8_t)(n >> 24), len[1] = (uint8_t)(n >> 16);
	len[2] = (uint8_t)(n >> 8), len[3] = (uint8_t)n;
	kr_pid w = krd_peer_writer(p);
	if (!w)
		return 0;
	int rc = krd_frame_queue(w, b->p, b->len);
	if (rc == 0)
		AO_fetch_and_add(&p->queued, (AO_t)b->len); /* relaxed: a gauge */
	return rc == KR_ENOPROC ? 0 : rc;
}

/*
 * Backpressure, as the BEAM's dist_buf_busy_limit: a process that sends
 * to a peer whose writer has more than busy_limit bytes queued waits (a
 * millisecond at a time) until the writer has taken the excess, or the
 * peer is down. Only senders of messages wait: dist/'s own processes
 * (the reader answering a link or a call) never do, so that a slow peer
 * cannot stop the reading of its own connection.
 */
static void wait_while_busy(krd_peer *p)
{
	while (AO_load(&p->queued) > krd_me.busy_limit && krd_peer_writer_alive(p))
		(void)kr_sleep(1); /* a process or a host thread alike */
}

/* kr_call to a peer's process, as gen_server:call does it: monitor the
 * server (its DOWN is the call's), then {'$gen_call', {From, Ref}, Msg}.
 * The reply {Ref, Reply} comes back as a plain message (ctrl's deliver). */
static int send_call(krd_peer *p, uint32_t creation, kr_pid from, kr_pid to, uint64_t tag,
                     kr_ref ref, const void *data, size_t len)
{
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, KRD_ANY_CREATION); /* a stale server's DOWN noproc ends the call */
	krd_track_mon_out(&p->track, ref, from, to, true, NULL);
	krd_put_tuple(&b, 4);
	krd_put_uint(&b, KRD_MONITOR_P);
	krd_put_pid(&b, from);
	krd_put_pid(&b, to);
	krd_put_ref(&b, ref);
	int rc = krd_frame_send(p, &b);
	krd_buf_free(&b);
	if (rc)
		return rc;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, creation);
	krd_put_tuple(&b, 3);
	krd_put_uint(&b, KRD_SEND_SENDER);
	krd_put_pid(&b, from);
	krd_put_pid(&b, to);
	krd_put_u8(&b, KRD_VERSION_MAGIC);
	krd_put_tuple(&b, 3);
	krd_put_atom(&b, "$gen_call");
	krd_put_tuple(&b, 2);
	krd_put_pid(&b, from);
	krd_put_ref(&b, ref);
	put_body(&b, tag, data, len);
	rc = krd_frame_send(p, &b);
	krd_buf_free(&b);
	return rc;
}

int krd_send(kr_pid from, kr_pid to, unsigned kind, uint64_t tag, kr_ref ref, const void *data,
             size_t len, kr_bin *bin)
{
	uint32_t creation;
	krd_peer *p = krd_peer_of(to, &creation);
	if (!p)
		return KR_EINVAL;
	if (!krd_node_running())
		return 0; /* no node: nowhere to send it */
	if (bin)
		data = kr_bin_data(bin), len = kr_bin_size(bin);
	if (kind == KRX_MSG_CALL)
		return from ? send_call(p, creation, from, to, tag, ref, data, len) : KR_EINVAL;
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, creation);
	if (from) {
		krd_put_tuple(&b, 3);
		krd_put_uint(&b, KRD_SEND_SENDER);
		krd_put_pid(&b, from);
	} else { /* a host thread: no sender */
		krd_put_tuple(&b, 3);
		krd_put_uint(&b, KRD_SEND);
		krd_put_atom(&b, "");
	}
	krd_put_pid(&b, to);
	put_message(&b, tag, data, len);
	int rc = krd_frame_send(p, &b);
	krd_buf_free(&b);
	wait_while_busy(p);
	return rc;
}

int krd_send_named(kr_pid from, krd_peer *p, const char *name, uint64_t tag, const void *data,
                   size_t len)
{
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, 0);
	krd_put_tuple(&b, 4);
	krd_put_uint(&b, KRD_REG_SEND);
	krd_put_from(&b, from); /* REG_SEND names a sender always */
	krd_put_atom(&b, "");
	krd_put_atom(&b, name);
	put_message(&b, tag, data, len);
	int rc = krd_frame_send(p, &b);
	krd_buf_free(&b);
	wait_while_busy(p);
	return rc;
}

/* A sender where the protocol needs a pid and a host thread has none:
 * this node's pid 0, which no process has. */
void krd_put_from(krd_buf *b, kr_pid from)
{
	if (from && krd_put_pid(b, from))
		return;
	krd_put_u8(b, ERL_NEW_PID_EXT);
	krd_put_atom(b, krd_me.name);
	krd_put_u32(b, 0);
	krd_put_u32(b, 0);
	krd_put_u32(b, krd_me.creation);
}

static void put_reason_payload(krd_buf *b, const kr_reason *r)
{
	krd_put_u8(b, KRD_VERSION_MAGIC);
	krd_put_reason(b, r);
}

/* An exit signal's frame: {Op, From, To} and the reason after it. */
static void put_exit(krd_buf *b, long op, kr_pid from, kr_pid to, const kr_reason *r)
{
	krd_put_tuple(b, 3);
	krd_put_uint(b, (uint64_t)op);
	krd_put_from(b, from);
	krd_put_pid(b, to);
	put_reason_payload(b, r);
}

/* Build the frame for one of vm/'s signals to the remote pid `to`, noting
 * the link or monitor it makes or ends: false when there is nothing to
 * send. */
static bool put_signal(krd_buf *b, krd_peer *p, kr_pid from, kr_pid to, unsigned kind, kr_ref ref,
                       uint64_t tag, const void *payload, size_t len)
{
	static AO_t unlink_ids;
	kr_exit_msg e;
	kr_down_msg d;
	krd_mon_in in;
	switch (kind) {
	case KRX_SIG_LINK:
		krd_track_link(&p->track, from, to);
		krd_put_tuple(b, 3);
		krd_put_uint(b, KRD_LINK);
		break;
	case KRX_SIG_UNLINK:
		krd_track_unlink(&p->track, from, to);
		krd_put_tuple(b, 4);
		krd_put_uint(b, KRD_UNLINK_ID);
		/* Relaxed: ids only have to differ. */
		krd_put_uint(b, AO_fetch_and_add1(&unlink_ids) + 1);
		break;
	case KRX_SIG_EXIT_LINK: /* from ended, linked to `to` */
	case KRX_SIG_EXIT:      /* kr_exit_sig */
		if (len != sizeof e)
			return false;
		memcpy(&e, payload, sizeof e);
		if (kind == KRX_SIG_EXIT_LINK)
			krd_track_unlink(&p->track, from, to);
		put_exit(b, kind == KRX_SIG_EXIT ? KRD_PAYLOAD_EXIT2 : KRD_PAYLOAD_EXIT, from, to,
		         &e.reason);
		return true;
	case KRX_SIG_MONITOR:
		krd_track_mon_out(&p->track, ref, from, to, false, NULL);
		krd_put_tuple(b, 4);
		krd_put_uint(b, KRD_MONITOR_P);
		krd_put_from(b, from);
		krd_put_pid(b, to);
		krd_put_ref(b, ref);
		return true;
	case KRX_SIG_DEMONITOR: {
		char name[KR_NAME_MAX + 1] = "";
		(void)krd_track_mon_out_end(&p->track, ref, NULL, NULL, name);
		krd_put_tuple(b, 4);
		krd_put_uint(b, KRD_DEMONITOR_P);
		krd_put_from(b, from);
		if (name[0])
			krd_put_atom(b, name); /* monitored by name: demonitored by name */
		else
			krd_put_pid(b, to);
		krd_put_ref(b, ref);
		return true;
	}
	case KRX_SIG_DOWN: /* from ended, watched by `to` */
		if (len != sizeof d || !krd_track_mon_in_end(&p->track, ref, &in))
			return false; /* demonitored, or the connection was lost meanwhile */
		memcpy(&d, payload, sizeof d);
		krd_put_tuple(b, 4);
		krd_put_uint(b, KRD_PAYLOAD_MONITOR_P_EXIT);
		if (in.name[0])
			krd_put_atom(b, in.name); /* monitored by name: the DOWN names it */
		else
			krd_put_from(b, from);
		krd_put_pid(b, to);
		krd_put(b, in.eref, in.eref_len);
		put_reason_payload(b, &d.reason);
		return true;
	case KRX_SIG_REPLY: /* {Tag, Reply} to the caller, Tag as it sent it */
		if (!krd_track_call_in_end(&p->track, ref, &in))
			return false; /* its node was lost meanwhile */
		krd_put_tuple(b, 3);
		krd_put_uint(b, KRD_SEND_SENDER);
		krd_put_from(b, from);
		krd_put_pid(b, to);
		krd_put_u8(b, KRD_VERSION_MAGIC);
		krd_put_tuple(b, 2);
		krd_put(b, in.eref, in.eref_len);
		put_body(b, tag, payload, len);
		return true;
	case KRX_SIG_CALL_DOWN: /* the server ended: the caller's own monitor tells it */
		(void)krd_track_call_in_end(&p->track, ref, NULL);
		return false;
	default:
		return false;
	}
	krd_put_from(b, from);
	krd_put_pid(b, to);
	return true;
}

/* A signal goes to the peer whichever incarnation `to` is of: a link or a
 * monitor of an earlier one's pid is answered noproc by the peer, as
 * Erlang's nodes answer it (dropped here, its link would wait for the
 * noconnection of a later loss). */
void krd_signal(kr_pid from, kr_pid to, unsigned kind, kr_ref ref, uint64_t tag,
                const void *payload, size_t len)
{
	uint32_t creation;
	krd_peer *p = krd_peer_of(to, &creation);
	if (!p || !krd_node_running())
		return;
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, KRD_ANY_CREATION);
	if (put_signal(&b, p, from, to, kind, ref, tag, payload, len))
		(void)krd_frame_send(p, &b);
	krd_buf_free(&b);
}

/* ---- in ---- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A term (t, n bytes, no version byte) of krill's shape, {Tag, Binary}
 * with Tag a program's tag: true and its parts. */
static bool krill_shaped(const uint8_t *t, size_t n, uint64_t *tag, const uint8_t **data,
                         size_t *len)
{
	if (n < 5 || t[0] != ERL_SMALL_TUPLE_EXT || t[1] != 2)
		return false;
	size_t k; /* the integer's bytes */
	uint64_t v = 0;
	switch (t[2]) {
	case ERL_SMALL_INTEGER_EXT:
		v = t[3], k = 2;
		break;
	case ERL_INTEGER_EXT:
		if (n < 7 || (t[3] & 0x80))
			return false; /* negative */
		v = be32(t + 3), k = 5;
		break;
	case ERL_SMALL_BIG_EXT:
		if (t[3] > 8 || t[4] != 0 || n < 5u + t[3])
			return false; /* too big, or negative */
		for (unsigned i = t[3]; i-- > 0;)
			v = v << 8 | t[5 + i];
		k = 3 + (size_t)t[3];
		break;
	default:
		return false;
	}
	const uint8_t *b = t + 2 + k;
	if (v >= KR_TAG_SUP || (size_t)(b - t) + 5 > n || b[0] != ERL_BINARY_EXT ||
	    (size_t)(b - t) + 5 + be32(b + 1) != n)
		return false;
	*tag = v, *data = b + 5, *len = be32(b + 1);
	return true;
}

/* A term inside a message (t, n bytes, no version byte) as krill gives it
 * to a process: (tag, bytes) for krill's shape, else (KR_TAG_TERM, the
 * term with its version byte), made in scratch (n + 1 bytes). */
void krd_as_krill(const uint8_t *t, size_t n, uint8_t *scratch, uint64_t *tag,
                  const uint8_t **data, size_t *len)
{
	if (krill_shaped(t, n, tag, data, len))
		return;
	scratch[0] = KRD_VERSION_MAGIC;
	memcpy(scratch + 1, t, n);
	*tag = KR_TAG_TERM, *data = scratch, *len = n + 1;
}

/* {Ref, Reply} with Ref one of ours: the reply to a kr_call of ours, for
 * the caller (dropped there unless it still waits), and the call's
 * monitor ends as gen_server's does. */
static bool reply_in(krd_peer *p, kr_pid from, kr_pid to, const uint8_t *msg, size_t n)
{
	int i = 1, arity;
	kr_ref ref = 0;
	if (n < 4 || msg[1] != ERL_SMALL_TUPLE_EXT || msg[2] != 2 ||
	    msg[3] != ERL_NEWER_REFERENCE_EXT || !krd_get_tuple(msg, &i, &arity) ||
	    !krd_get_ref(msg, &i, &ref) || !ref)
		return false;
	kr_pid server;
	bool call;
	if (krd_track_mon_out_end(&p->track, ref, &server, &call, NULL)) {
		uint8_t stack[256];
		krd_buf b;
		krd_buf_init(&b, stack, sizeof stack);
		uint32_t creation = 0;
		(void)krd_peer_of(server, &creation);
		krd_frame_begin(&b, creation);
		krd_put_tuple(&b, 4);
		krd_put_uint(&b, KRD_DEMONITOR_P);
		krd_put_pid(&b, to);
		krd_put_pid(&b, server);
		krd_put_ref(&b, ref);
		(void)krd_frame_send(p, &b);
		krd_buf_free(&b);
	}
	uint8_t *scratch = malloc(n);
	uint64_t tag;
	const uint8_t *data;
	size_t len;
	if (scratch) {
		krd_as_krill(msg + i, n - (size_t)i, scratch, &tag, &data, &len);
		(void)krx_remote_signal_in(from, to, KRX_SIG_REPLY, ref, tag, data, len);
	}
	free(scratch);
	return true;
}

/* {'$gen_call', {From, Tag}, Request}: a gen_server call, made a kr_call
 * request so that kr_reply answers it; the reply goes to From as
 * {Tag, Reply} (krd_signal's REPLY). */
static bool call_in(krd_peer *p, kr_pid to, const uint8_t *msg, size_t n)
{
	int i = 1, arity;
	char atom[KRD_MAX_ATOM_CHARS * 4 + 1];
	kr_pid caller;
	if (n < 14 || msg[1] != ERL_SMALL_TUPLE_EXT || msg[2] != 3 || !krd_get_tuple(msg, &i, &arity) ||
	    !krd_get_atom(msg, &i, atom) || strcmp(atom, "$gen_call") ||
	    !krd_get_tuple(msg, &i, &arity) || arity != 2 || !krd_get_pid(msg, &i, &caller))
		return false;
	int tag_at = i;
	if (!krd_skip(msg, &i) || (size_t)(i - tag_at) > KRD_EREF_MAX || !caller)
		return false;
	krd_mon_in c = {.watcher = caller, .target = to, .eref_len = (uint16_t)(i - tag_at)};
	memcpy(c.eref, msg + tag_at, c.eref_len);
	kr_ref kref = krd_remote_ref(c.eref, c.eref_len);
	uint8_t *scratch = malloc(n);
	uint64_t tag;
	const uint8_t *data;
	size_t len;
	if (!scratch || !krd_track_call_in(&p->track, kref, &c)) {
		free(scratch);
		return true; /* no memory: the call is lost, the caller times out */
	}
	krd_as_krill(msg + i, n - (size_t)i, scratch, &tag, &data, &len);
	if (!to || !krx_remote_call_in(caller, to, kref, tag, data, len))
		(void)krd_track_call_in_end(&p->track, kref, NULL); /* gone: its monitor says so */
	free(scratch);
	return true;
}

static void deliver(krd_peer *p, kr_pid from, kr_pid to, const uint8_t *msg, size_t n)
{
	uint64_t tag;
	const uint8_t *data;
	size_t len;
	if (to > 0 && (reply_in(p, from, to, msg, n) || call_in(p, to, msg, n)))
		return;
	if (!krill_shaped(msg + 1, n - 1, &tag, &data, &len))
		tag = KR_TAG_TERM, data = msg, len = n;
	(void)krx_remote_deliver(from, to, tag, data, len, NULL);
}

static void deliver_named(krd_peer *p, kr_pid from, const char *name, const uint8_t *msg,
                          size_t n)
{
	kr_pid to = strlen(name) <= KR_NAME_MAX ? kr_whereis(name) : KR_ENOPROC;
	deliver(p, from, to > 0 ? to : 0, msg, n); /* 0: a dead letter */
}

/* The reason of an exit or DOWN: in the control message at c[*i] when
 * it carries one, else the message after it. */
static bool reason_in(const uint8_t *c, int *i, bool in_payload, const uint8_t *msg, size_t mlen,
                      kr_reason *r)
{
	if (!in_payload)
		return krd_get_reason(c, i, r);
	int j = 1;
	return mlen && krd_get_reason(msg, &j, r);
}

/* A local pid to act on: 0 (a pid of an earlier incarnation of this
 * node: gone) is fine, a remote one is not. */
static bool local(kr_pid pid)
{
	return pid >= 0 && !((uint64_t)pid >> 50);
}

/* An exit signal back to a peer's process: its link or monitor named a
 * process of ours that is gone. */
/* A peer's link or monitor found none of ours: answer noproc at once,
 * naming what it named exactly as it did (its bytes `named`: a pid, maybe
 * of an earlier incarnation of this node, which maps to no kr_pid, or a
 * registered name), so that the peer's own link or monitor ends. With a
 * reference (eref), the answer is a DOWN; without, a link's EXIT. */
static void answer_noproc(krd_peer *p, const uint8_t *named, size_t named_len, kr_pid theirs,
                          const uint8_t *eref, size_t eref_len)
{
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, KRD_ANY_CREATION);
	krd_put_tuple(&b, eref ? 4 : 3);
	krd_put_uint(&b, eref ? KRD_PAYLOAD_MONITOR_P_EXIT : KRD_PAYLOAD_EXIT);
	krd_put(&b, named, named_len);
	krd_put_pid(&b, theirs);
	if (eref)
		krd_put(&b, eref, eref_len);
	put_reason_payload(&b, &(kr_reason){.kind = KR_EXIT_NOPROC});
	(void)krd_frame_send(p, &b);
	krd_buf_free(&b);
}

/* {1, From, To}, {4, From, To}, {35, Id, From, To}, {36, Id, From, To}. */
static bool link_in(krd_peer *p, long op, const uint8_t *c, int i, int arity)
{
	uint64_t id = 0;
	kr_pid from, to;
	bool with_id = op == KRD_UNLINK_ID || op == KRD_UNLINK_ID_ACK;
	if (arity != (with_id ? 4 : 3) || (with_id && !krd_get_uint64(c, &i, &id)) ||
	    !krd_get_pid(c, &i, &from))
		return false;
	int to_at = i;
	if (!krd_get_pid(c, &i, &to))
		return false;
	if (op == KRD_UNLINK_ID_ACK || !local(to))
		return true;
	if (op == KRD_LINK) {
		krd_track_link(&p->track, to, from);
		if (!to || !krx_remote_signal_in(from, to, KRX_SIG_LINK, 0, 0, NULL, 0)) {
			krd_track_unlink(&p->track, to, from);
			answer_noproc(p, c + to_at, (size_t)(i - to_at), from, NULL, 0);
		}
		return true;
	}
	krd_track_unlink(&p->track, to, from);
	if (to)
		(void)krx_remote_signal_in(from, to, KRX_SIG_UNLINK, 0, 0, NULL, 0);
	if (op == KRD_UNLINK_ID) { /* {36, Id, From, To}: we, To, are done with it */
		uint8_t stack[256];
		krd_buf b;
		krd_buf_init(&b, stack, sizeof stack);
		uint32_t creation;
		(void)krd_peer_of(from, &creation);
		krd_frame_begin(&b, creation);
		krd_put_tuple(&b, 4);
		krd_put_uint(&b, KRD_UNLINK_ID_ACK);
		krd_put_uint(&b, id);
		krd_put_from(&b, to);
		krd_put_pid(&b, from);
		(void)krd_frame_send(p, &b);
		krd_buf_free(&b);
	}
	return true;
}

/* EXIT (a linked process of theirs ended) and EXIT2 (exit/2), in their
 * four shapes each: {Op, From, To, Reason}, with a trace token before the
 * reason (_TT), or the reason as the message (PAYLOAD_). */
static bool exit_in(krd_peer *p, long op, const uint8_t *c, int i, int arity, const uint8_t *msg,
                    size_t mlen)
{
	bool payload = op == KRD_PAYLOAD_EXIT || op == KRD_PAYLOAD_EXIT_TT ||
	               op == KRD_PAYLOAD_EXIT2 || op == KRD_PAYLOAD_EXIT2_TT;
	bool tt = op == KRD_EXIT_TT || op == KRD_EXIT2_TT || op == KRD_PAYLOAD_EXIT_TT ||
	          op == KRD_PAYLOAD_EXIT2_TT;
	bool link = op == KRD_EXIT || op == KRD_EXIT_TT || op == KRD_PAYLOAD_EXIT ||
	            op == KRD_PAYLOAD_EXIT_TT;
	kr_pid from, to;
	kr_exit_msg e;
	if (arity != 3 + tt + !payload || !krd_get_pid(c, &i, &from) || !krd_get_pid(c, &i, &to) ||
	    (tt && !krd_skip(c, &i)) || !reason_in(c, &i, payload, msg, mlen, &e.reason))
		return false;
	if (!local(to) || !to)
		return true; /* to a process gone with an earlier incarnation */
	e.from = from;
	if (link) {
		krd_track_unlink(&p->track, to, from);
		if (e.reason.kind == KR_EXIT_KILL)
			e.reason.kind = KR_EXIT_KILLED; /* kill over a link is not untrappable */
	}
	(void)krx_remote_signal_in(from, to, link ? KRX_SIG_EXIT_LINK : KRX_SIG_EXIT, 0, 0, &e,
	                           sizeof e);
	return true;
}

/* {19, From, ToProc, Ref} and {20, From, ToProc, Ref}: a peer's process
 * (de)monitors one of ours, by pid or by registered name. */
static bool monitor_in(krd_peer *p, long op, const uint8_t *c, int i, int arity)
{
	kr_pid from, to = 0;
	krd_mon_in m = {0};
	if (arity != 4 || !krd_get_pid(c, &i, &from))
		return false;
	int j = i, to_at = i;
	char name[KRD_MAX_ATOM_CHARS * 4 + 1];
	if (krd_get_atom(c, &j, name)) {
		i = j;
		if (strlen(name) <= KR_NAME_MAX) {
			memcpy(m.name, name, strlen(name) + 1);
			kr_pid w = kr_whereis(name);
			to = w > 0 ? w : 0;
		}
	} else if (!krd_get_pid(c, &i, &to)) {
		return false;
	}
	int ref_at = i;
	size_t to_len = (size_t)(ref_at - to_at);
	if (!krd_skip(c, &i) || (size_t)(i - ref_at) > sizeof m.eref)
		return false;
	m.eref_len = (uint16_t)(i - ref_at);
	memcpy(m.eref, c + ref_at, m.eref_len);
	kr_ref kref = krd_remote_ref(m.eref, m.eref_len);
	if (op == KRD_DEMONITOR_P) {
		krd_mon_in had;
		if (krd_track_mon_in_end(&p->track, kref, &had) && had.target)
			(void)krx_remote_signal_in(from, had.target, KRX_SIG_DEMONITOR, kref, 0, NULL, 0);
		return true;
	}
	if (!local(to))
		return true;
	m.watcher = from;
	m.target = to;
	bool noted = to && krd_track_mon_in(&p->track, kref, &m);
	if (noted && krx_remote_signal_in(from, to, KRX_SIG_MONITOR, kref, 0, NULL, 0))
		return true;
	/* Gone, never there, or no memory. */
	if (noted)
		(void)krd_track_mon_in_end(&p->track, kref, NULL);
	answer_noproc(p, c + to_at, to_len, from, m.eref, m.eref_len);
	return true;
}

/* {21, FromProc, To, Ref, Reason} and {28, FromProc, To, Ref} + Reason:
 * a process of theirs that one of ours monitored has ended. */
static bool down_in(krd_peer *p, long op, const uint8_t *c, int i, int arity, const uint8_t *msg,
                    size_t mlen)
{
	bool payload = op == KRD_PAYLOAD_MONITOR_P_EXIT;
	kr_pid to, target = 0;
	kr_ref ref;
	kr_down_msg d;
	if (arity != (payload ? 4 : 5) || !krd_skip(c, &i) || !krd_get_pid(c, &i, &to) ||
	    !krd_get_ref(c, &i, &ref) || !reason_in(c, &i, payload, msg, mlen, &d.reason))
		return false;
	bool call;
	if (!ref || !local(to) || !to || !krd_track_mon_out_end(&p->track, ref, &target, &call, NULL))
		return true; /* not ours, or demonitored since */
	d.ref = ref;
	d.pid = target;
	(void)krx_remote_signal_in(target, to, call ? KRX_SIG_CALL_DOWN : KRX_SIG_DOWN, ref, 0, &d,
	                           sizeof d);
	return true;
}

#define BAD(...) (snprintf(why, whylen, __VA_ARGS__), -1)

int krd_ctrl_handle(krd_peer *p, const uint8_t *f, size_t len, char *why, size_t whylen)
{
	if (len < 2 || f[0] != KRD_PASS_THROUGH || f[1] != KRD_VERSION_MAGIC)
		return BAD("a frame that is not a pass-through control message");
	long cs = krd_term_size(f + 2, len - 2);
	if (cs < 0)
		return BAD("a malformed control message");
	const uint8_t *msg = f + 2 + cs;
	size_t mlen = len - 2 - (size_t)cs;
	if (mlen && (msg[0] != KRD_VERSION_MAGIC || krd_term_size(msg + 1, mlen - 1) !=
	                                                (long)mlen - 1))
		return BAD("a malformed message after a control message");
	const uint8_t *c = f + 1;
	int i = 1, arity;
	long op;
	if (!krd_get_tuple(c, &i, &arity) || arity < 1 || !krd_get_long(c, &i, &op))
		return BAD("a control message that is not a tuple with an operation");
	kr_pid from = 0, to = 0;
	char name[KRD_MAX_ATOM_CHARS * 4 + 1];
	bool sends = op == KRD_SEND || op == KRD_SEND_TT || op == KRD_SEND_SENDER ||
	             op == KRD_SEND_SENDER_TT || op == KRD_REG_SEND || op == KRD_REG_SEND_TT ||
	             op == KRD_ALIAS_SEND || op == KRD_ALIAS_SEND_TT;
	if (sends && !mlen)
		return BAD("operation %ld without its message", op);
	switch (op) {
	case KRD_SEND:
	case KRD_SEND_TT: /* {2, Unused, To} and a trace token */
		if (arity < 3 || !krd_skip(c, &i) || !krd_get_pid(c, &i, &to))
			return BAD("a malformed SEND");
		deliver(p, 0, to, msg, mlen);
		return 0;
	case KRD_SEND_SENDER:
	case KRD_SEND_SENDER_TT: /* {22, From, To} */
		if (arity < 3 || !krd_get_pid(c, &i, &from) || !krd_get_pid(c, &i, &to))
			return BAD("a malformed SEND_SENDER");
		deliver(p, from, to, msg, mlen);
		return 0;
	case KRD_REG_SEND:
	case KRD_REG_SEND_TT: /* {6, From, Unused, ToName} */
		if (arity < 4 || !krd_get_pid(c, &i, &from) || !krd_skip(c, &i) ||
		    !krd_get_atom(c, &i, name))
			return BAD("a malformed REG_SEND");
		deliver_named(p, from, name, msg, mlen);
		return 0;
	case KRD_ALIAS_SEND:
	case KRD_ALIAS_SEND_TT: /* {33, From, Alias}: krill makes no aliases yet */
		(void)krx_remote_deliver(0, 0, 0, NULL, 0, NULL);
		return 0;
	case KRD_LINK:
	case KRD_UNLINK:
	case KRD_UNLINK_ID:
	case KRD_UNLINK_ID_ACK:
		return link_in(p, op, c, i, arity) ? 0 : BAD("a malformed link operation %ld", op);
	case KRD_EXIT:
	case KRD_EXIT_TT:
	case KRD_PAYLOAD_EXIT:
	case KRD_PAYLOAD_EXIT_TT:
	case KRD_EXIT2:
	case KRD_EXIT2_TT:
	case KRD_PAYLOAD_EXIT2:
	case KRD_PAYLOAD_EXIT2_TT:
		return exit_in(p, op, c, i, arity, msg, mlen) ? 0 : BAD("a malformed exit operation %ld", op);
	case KRD_MONITOR_P:
	case KRD_DEMONITOR_P:
		return monitor_in(p, op, c, i, arity) ? 0 : BAD("a malformed monitor operation %ld", op);
	case KRD_MONITOR_P_EXIT:
	case KRD_PAYLOAD_MONITOR_P_EXIT:
		return down_in(p, op, c, i, arity, msg, mlen) ? 0 : BAD("a malformed MONITOR_P_EXIT");
	case KRD_SPAWN_REQUEST:
	case KRD_SPAWN_REQUEST_TT:
		return krd_spawn_request_in(p, c, i, arity, msg, mlen) ? 0
		                                                          : BAD("a malformed SPAWN_REQUEST");
	case KRD_SPAWN_REPLY:
	case KRD_SPAWN_REPLY_TT:
		return krd_spawn_reply_in(p, c, i, arity) ? 0 : BAD("a malformed SPAWN_REPLY");
	case KRD_GROUP_LEADER: /* krill processes have no group leader */
		return 0;
	default:
		return BAD("an unknown control operation %ld", op);
	}
}
