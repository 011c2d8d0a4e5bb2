/*
 * handshake.h - the distribution handshake, version 6 (OTP 23 and later),
 * both sides: the node that connected (krd_handshake_connect) and the node
 * that accepted (krd_handshake_accept).
 *
 * The protocol (erts/doc/src/erl_dist_protocol.xml, lib/kernel/src/
 * dist_util.erl): every message is a frame, a 2-byte big-endian length and
 * that many bytes.
 *
 *   initiator                              acceptor
 *   'N' Flags(8) Creation(4) Nlen(2) Name  ->                    send_name
 *                                          <-  's' Status        ok, ok_simultaneous, nok,
 *                                                                not_allowed, alive
 *   ('s' "true" | "false"                  ->  after "alive")
 *                                          <-  'N' Flags(8) Challenge(4) Creation(4) Nlen(2) Name
 *   ('c' FlagsHigh(4) Creation(4)          ->  only after an old 'n' send_name)
 *   'r' Challenge(4) Digest(16)            ->                    digest of the acceptor's challenge
 *                                          <-  'a' Digest(16)    digest of the initiator's
 *
 * Digest = MD5(cookie ++ the challenge, a 32-bit unsigned, in decimal). An
 * OTP node that does not know our version (no EPMD: a fixed port) starts
 * with the old send_name 'n' Version(2)=5 Flags(4) Name; the acceptor
 * takes it when its flags have DFLAG_HANDSHAKE_23, answers with the 'N'
 * challenge, and the initiator then sends the complement 'c' with its high
 * flags and its creation before its 'r'. A peer without DFLAG_HANDSHAKE_23
 * (OTP 22 and older) is refused, as OTP 25 refuses it.
 *
 * Each side is a machine with no I/O of its own (krd_hs, krd_hs_step): it
 * takes the peer's frames one at a time and leaves the frames to send in
 * its out buffer. krd_handshake_connect and krd_handshake_accept drive it
 * over a socket from a krill process; the fuzz target
 * (tests/fuzz/fuzz_handshake.c) drives it from bytes alone.
 */
#ifndef KRD_HANDSHAKE_H
#define KRD_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Flags the handshake itself depends on (the lead's dist flags list the rest). */
#define KRD_DFLAG_PUBLISHED 0x1ull
#define KRD_DFLAG_HANDSHAKE_23 0x1000000ull

/* A node name is "alive@host", at most this many bytes. */
#define KRD_NODE_NAME_MAX 255
/* The largest handshake frame taken: 'N' with a name of 255 bytes is 274
 * bytes; anything longer is refused before it is read. */
#define KRD_HS_FRAME_MAX 300

/* Errors of the handshake, below -100, clear of krill's KR_E... codes.
 * krd_hs_error names them (and krill's own codes too). */
enum krd_hs_error {
	KRD_E_REFUSED = -101,    /* refused: the peer said not_allowed, or our admit did */
	KRD_E_COOKIE = -102,     /* a digest did not match: the cookies differ */
	KRD_E_FLAGS = -103,      /* the peer lacks a required flag (or DFLAG_HANDSHAKE_23) */
	KRD_E_PROTO = -104,      /* a malformed or unexpected message, a bad node name */
	KRD_E_TOOBIG = -105,     /* a frame over KRD_HS_FRAME_MAX */
	KRD_E_WRONG_NODE = -106, /* the node we reached is not the one we asked for */
};

/* A short English description of a krd_hs_error or KR_E... code. */
const char *krd_hs_error(int err);

typedef struct krd_hs_self {
	const char *name;  /* our full node name, "alive@host" */
	const char *cookie;
	uint64_t flags;    /* the distribution flags we advertise */
	uint64_t required; /* flags a peer must have, or it is refused */
	uint32_t creation;
	/* Initiator: is this attempt still the one the peer table waits for?
	 * The peer says "alive" when it holds a connection to us; we answer
	 * "true" (that connection is dead: replace it) only if so, else
	 * "false" and give up, as net_kernel does. NULL: always. */
	bool (*still_pending)(void *ctx);
	void *pending_ctx;
} krd_hs_self;

/* The peer as it named itself. flags are what it advertised; the flags in
 * force on the connection are ours & its (dist_util:adjust_flags). */
typedef struct krd_hs_peer {
	char name[KRD_NODE_NAME_MAX + 1]; /* the peer's full node name */
	uint64_t flags;                   /* the peer's flags */
	uint32_t creation;
} krd_hs_peer;

/* What an accepting node answers a peer that names itself (the node table
 * decides: for a simultaneous connect, compare node names; "alive" when a
 * connection to that node exists already). */
typedef enum {
	KRD_HS_OK,
	KRD_HS_OK_SIMULTANEOUS,
	KRD_HS_NOK,
	KRD_HS_ALIVE,
	KRD_HS_NOT_ALLOWED
} krd_hs_status;
typedef krd_hs_status krd_hs_admit_fn(const krd_hs_peer *peer, void *ctx);

/*
 * We connected fd (non-blocking, connected TCP) to the node peer_name: run
 * the initiating side, for at most timeout_ms in all (KR_INFINITY: no
 * limit). 0, *peer filled, once the peer's 'a' digest checks out. Errors:
 * KR_EEXIST (the peer answered nok: it has, or is making, a connection to
 * us; use that one); KRD_E_REFUSED (not_allowed); KRD_E_COOKIE;
 * KRD_E_FLAGS; KRD_E_WRONG_NODE (the challenge names another node);
 * KRD_E_PROTO, KRD_E_TOOBIG; KR_ETIMEDOUT; KR_EIO (I/O failed or the peer
 * closed: kr_last_errno, 0 for a close); KR_EINVAL (a bad argument, our own
 * name not a node name). To the status "alive" it answers "true". Call from
 * a krill process; fd stays open whatever the outcome.
 */
int krd_handshake_connect(int fd, const krd_hs_self *me, const char *peer_name,
                          krd_hs_peer *peer, long timeout_ms);

/*
 * A peer connected to us on fd: run the accepting side, for at most
 * timeout_ms in all. admit(peer, ctx) is asked once the peer has named
 * itself (peer->creation is 0 then for an old 'n' start: it comes with the
 * complement). 0, *peer filled, when the peer's digest checks out. Errors as
 * krd_handshake_connect's, and: KR_EEXIST when admit said nok, or said
 * alive and the peer answered false; KRD_E_REFUSED when admit said
 * not_allowed. A peer lacking a required flag is told not_allowed
 * (KRD_E_FLAGS).
 */
int krd_handshake_accept(int fd, const krd_hs_self *me, krd_hs_admit_fn *admit, void *ctx,
                         krd_hs_peer *peer, long timeout_ms);

/* ---- the machine, without I/O (for the two calls above and the fuzzer) ---- */

/* One side of one handshake. Fields are the machine's; a driver reads out,
 * out_len and peer, and a test may set challenge after init. */
typedef struct krd_hs {
	const krd_hs_self *me;
	const char *want;        /* initiator: the node we connected to */
	krd_hs_admit_fn *admit;  /* acceptor */
	void *ctx;
	int state;               /* what the next frame must be (handshake.c) */
	int old_start;           /* acceptor: the peer began with 'n' */
	uint32_t challenge;      /* ours, from getrandom() */
	krd_hs_peer peer;
	uint8_t out[2 * (KRD_HS_FRAME_MAX + 2)]; /* frames to send, with their lengths */
	size_t out_len;
} krd_hs;

/* The result of krd_hs_step besides errors: another frame is wanted. */
#define KRD_HS_MORE 1

/*
 * Set up hs for the initiating side and put our send_name in hs->out.
 * 0, or KR_EINVAL (me, its name, cookie or want missing or not node names),
 * KR_EIO (getrandom failed).
 */
int krd_hs_init_connect(krd_hs *hs, const krd_hs_self *me, const char *want);
/* Set up hs for the accepting side (nothing to send yet). 0, KR_EINVAL, KR_EIO. */
int krd_hs_init_accept(krd_hs *hs, const krd_hs_self *me, krd_hs_admit_fn *admit, void *ctx);
/*
 * Take the peer's next frame (its body, len bytes, without the length).
 * The driver empties hs->out before each call and sends what the call
 * appends to it, whatever the result: an error may leave a status to send
 * (not_allowed, nok) before the connection closes. Returns KRD_HS_MORE
 * (send out, read the next frame), 0 (done: send out, then the connection
 * is up) or an error code as krd_handshake_connect's.
 */
int krd_hs_step(krd_hs *hs, const uint8_t *frame, size_t len);
/* The length of the frame whose 2-byte header is hdr: 0..KRD_HS_FRAME_MAX,
 * or KRD_E_TOOBIG. */
int krd_hs_frame_len(const uint8_t hdr[2]);

/* MD5(cookie ++ decimal challenge) into out. */
void krd_hs_digest(const char *cookie, uint32_t challenge, uint8_t out[16]);
/* Whether name is a node name: 1..255 bytes, exactly one '@', something on
 * both sides of it, no NUL in it. len bytes of name are looked at. */
int krd_is_node_name(const char *name, size_t len);

#endif
