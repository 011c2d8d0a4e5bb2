/*
 * handshake.c - the distribution handshake, version 6: a machine per side
 * that takes the peer's frames and leaves its answers in a buffer
 * (krd_hs_step), and the two drivers that run it over a socket from a
 * krill process (krd_handshake_connect, krd_handshake_accept).
 *
 * What keeps it safe against any peer: a frame's length is checked against
 * KRD_HS_FRAME_MAX before its body is read, every message is parsed with
 * its exact length (a name's length must match the bytes that carry it),
 * every name is checked to be a node name before it is copied, and the
 * machine accepts only the one message its state expects. Digests are
 * compared in constant time; our challenges come from getrandom().
 */
#include "handshake.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "krill.h"

/*
 * libei's MD5 (erl_interface's src/misc/eimd5.h, which Debian's erlang-dev
 * does not install): libei.a, linked into libkrill, exports these three.
 * The context's layout is eimd5.h's MD5_CTX: four 32-bit words of state, a
 * 64-bit bit count in two words, a 64-byte block.
 */
typedef struct krd_md5_ctx {
	unsigned int state[4];
	unsigned int count[2];
	unsigned char buffer[64];
} krd_md5_ctx;
void ei_MD5Init(krd_md5_ctx *ctx);
void ei_MD5Update(krd_md5_ctx *ctx, unsigned char *data, unsigned int len);
void ei_MD5Final(unsigned char digest[16], krd_md5_ctx *ctx);

/* What the next frame must be. */
enum {
	S_STATUS,     /* initiator: 's' status */
	S_CHALLENGE,  /* initiator: 'N' challenge */
	S_ACK,        /* initiator: 'a' digest */
	S_NAME,       /* acceptor: 'N' (or old 'n') send_name */
	S_ALIVE,      /* acceptor: 's' true/false, after our "alive" */
	S_COMPLEMENT, /* acceptor: 'c', after an old 'n' send_name */
	S_REPLY,      /* acceptor: 'r' challenge reply */
	S_OVER        /* done or failed: no frame is taken */
};

/* Sizes of the fixed parts of the messages. */
#define NAME_N_HDR 15 /* 'N' Flags(8) Creation(4) Nlen(2) */
#define NAME_n_HDR 7  /* 'n' Version(2) Flags(4) */
#define CHAL_N_HDR 19 /* 'N' Flags(8) Challenge(4) Creation(4) Nlen(2) */
#define COMPL_LEN 9   /* 'c' FlagsHigh(4) Creation(4) */
#define REPLY_LEN 21  /* 'r' Challenge(4) Digest(16) */
#define ACK_LEN 17    /* 'a' Digest(16) */

static const char *const status_text[] = {
	[KRD_HS_OK] = "ok",
	[KRD_HS_OK_SIMULTANEOUS] = "ok_simultaneous",
	[KRD_HS_NOK] = "nok",
	[KRD_HS_ALIVE] = "alive",
	[KRD_HS_NOT_ALLOWED] = "not_allowed",
};

const char *krd_hs_error(int err)
{
	switch (err) {
	case KRD_E_REFUSED: return "the connection was refused (not_allowed)";
	case KRD_E_COOKIE: return "the digests do not match: the cookies differ";
	case KRD_E_FLAGS: return "the peer lacks a required distribution flag";
	case KRD_E_PROTO: return "a malformed or unexpected handshake message";
	case KRD_E_TOOBIG: return "a handshake frame over the limit";
	case KRD_E_WRONG_NODE: return "the node reached is not the one asked for";
	default: return kr_strerror(err);
	}
}

/* ---- bytes ---- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p = put16(p, (uint16_t)(v >> 16));
	return put16(p, (uint16_t)v);
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	p = put32(p, (uint32_t)(v >> 32));
	return put32(p, (uint32_t)v);
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* Start a frame in hs->out: the body goes at the returned pointer, and
 * end_frame writes its length. Every frame we make is at most
 * KRD_HS_FRAME_MAX, and out holds two (a status and a challenge). */
static uint8_t *begin_frame(krd_hs *hs)
{
	return hs->out + hs->out_len + 2;
}

static void end_frame(krd_hs *hs, const uint8_t *end)
{
	uint8_t *hdr = hs->out + hs->out_len;
	size_t len = (size_t)(end - (hdr + 2));
	put16(hdr, (uint16_t)len);
	hs->out_len += 2 + len;
}

/* ---- pieces ---- */

void krd_hs_digest(const char *cookie, uint32_t challenge, uint8_t out[16])
{
	char dec[11];
	int n = snprintf(dec, sizeof dec, "%" PRIu32, challenge);
	krd_md5_ctx ctx;
	ei_MD5Init(&ctx);
	ei_MD5Update(&ctx, (unsigned char *)(uintptr_t)cookie, (unsigned int)strlen(cookie));
	ei_MD5Update(&ctx, (unsigned char *)dec, (unsigned int)n);
	ei_MD5Final(out, &ctx);
}

/* Whether the 16 bytes at a and b are equal, in a time that does not
 * depend on where they differ (a peer must not learn a digest byte by byte). */
static int digest_eq(const uint8_t *a, const uint8_t *b)
{
	unsigned diff = 0;
	for (int i = 0; i < 16; i++)
		diff |= (unsigned)(a[i] ^ b[i]);
	return diff == 0;
}

int krd_is_node_name(const char *name, size_t len)
{
	if (len == 0 || len > KRD_NODE_NAME_MAX || memchr(name, '\0', len))
		return 0;
	const char *at = memchr(name, '@', len);
	if (!at || at == name || at == name + len - 1)
		return 0;
	return memchr(at + 1, '@', (size_t)(name + len - (at + 1))) == NULL;
}

int krd_hs_frame_len(const uint8_t hdr[2])
{
	uint16_t len = get16(hdr);
	return len > KRD_HS_FRAME_MAX ? KRD_E_TOOBIG : len;
}

static void set_peer_name(krd_hs *hs, const uint8_t *name, size_t len)
{
	memcpy(hs->peer.name, name, len);
	hs->peer.name[len] = '\0';
}

static int lacks(const krd_hs *hs, uint64_t required)
{
	return (required & ~hs->peer.flags) != 0;
}

static void send_status(krd_hs *hs, const char *text)
{
	uint8_t *p = begin_frame(hs);
	*p++ = 's';
	p = put_bytes(p, text, strlen(text));
	end_frame(hs, p);
}

/* Whether frame is the status 's' text, exactly. */
static int is_status(const uint8_t *frame, size_t len, const char *text)
{
	size_t n = strlen(text);
	return len == n + 1 && frame[0] == 's' && memcmp(frame + 1, text, n) == 0;
}

static int init_common(krd_hs *hs, const krd_hs_self *me)
{
	memset(hs, 0, sizeof *hs);
	if (!me || !me->name || !me->cookie || !krd_is_node_name(me->name, strlen(me->name)))
		return KR_EINVAL;
	hs->me = me;
	if (getrandom(&hs->challenge, sizeof hs->challenge, 0) != (ssize_t)sizeof hs->challenge)
		return KR_EIO;
	return 0;
}

/* ---- the initiating side ---- */

int krd_hs_init_connect(krd_hs *hs, const krd_hs_self *me, const char *want)
{
	int rc = init_common(hs, me);
	if (rc != 0)
		return rc;
	if (!want || !krd_is_node_name(want, strlen(want)))
		return KR_EINVAL;
	hs->want = want;
	size_t nlen = strlen(me->name);
	uint8_t *p = begin_frame(hs);
	*p++ = 'N';
	p = put64(p, me->flags);
	p = put32(p, me->creation);
	p = put16(p, (uint16_t)nlen);
	p = put_bytes(p, me->name, nlen);
	end_frame(hs, p);
	hs->state = S_STATUS;
	return 0;
}

static int on_status(krd_hs *hs, const uint8_t *f, size_t len)
{
	if (is_status(f, len, "ok") || is_status(f, len, "ok_simultaneous")) {
		hs->state = S_CHALLENGE;
		return KRD_HS_MORE;
	}
	if (is_status(f, len, "alive")) {
		if (hs->me->still_pending && !hs->me->still_pending(hs->me->pending_ctx)) {
			send_status(hs, "false");
			return KR_EEXIST;
		}
		send_status(hs, "true");
		hs->state = S_CHALLENGE;
		return KRD_HS_MORE;
	}
	if (is_status(f, len, "nok"))
		return KR_EEXIST;
	if (is_status(f, len, "not_allowed"))
		return KRD_E_REFUSED;
	return KRD_E_PROTO;
}

static int on_challenge(krd_hs *hs, const uint8_t *f, size_t len)
{
	if (len < CHAL_N_HDR || f[0] != 'N')
		return KRD_E_PROTO;
	size_t nlen = get16(f + 17);
	if (len != CHAL_N_HDR + nlen || !krd_is_node_name((const char *)f + CHAL_N_HDR, nlen))
		return KRD_E_PROTO;
	if (nlen != strlen(hs->want) || memcmp(f + CHAL_N_HDR, hs->want, nlen) != 0)
		return KRD_E_WRONG_NODE;
	hs->peer.flags = get64(f + 1);
	hs->peer.creation = get32(f + 13);
	set_peer_name(hs, f + CHAL_N_HDR, nlen);
	if (lacks(hs, hs->me->required))
		return KRD_E_FLAGS;
	uint8_t *p = begin_frame(hs);
	*p++ = 'r';
	p = put32(p, hs->challenge);
	krd_hs_digest(hs->me->cookie, get32(f + 9), p);
	end_frame(hs, p + 16);
	hs->state = S_ACK;
	return KRD_HS_MORE;
}

static int on_ack(krd_hs *hs, const uint8_t *f, size_t len)
{
	if (len != ACK_LEN || f[0] != 'a')
		return KRD_E_PROTO;
	uint8_t want[16];
	krd_hs_digest(hs->me->cookie, hs->challenge, want);
	return digest_eq(f + 1, want) ? 0 : KRD_E_COOKIE;
}

/* ---- the accepting side ---- */

int krd_hs_init_accept(krd_hs *hs, const krd_hs_self *me, krd_hs_admit_fn *admit, void *ctx)
{
	int rc = init_common(hs, me);
	if (rc != 0)
		return rc;
	if (!admit)
		return KR_EINVAL;
	hs->admit = admit;
	hs->ctx = ctx;
	hs->state = S_NAME;
	return 0;
}

/* Parse a send_name, 'N' or the old 'n', into hs->peer. */
static int parse_name(krd_hs *hs, const uint8_t *f, size_t len)
{
	const uint8_t *name;
	size_t nlen;
	if (len >= NAME_N_HDR && f[0] == 'N') {
		nlen = get16(f + 13);
		if (len != NAME_N_HDR + nlen)
			return KRD_E_PROTO;
		hs->peer.flags = get64(f + 1);
		hs->peer.creation = get32(f + 9);
		name = f + NAME_N_HDR;
	} else if (len >= NAME_n_HDR && f[0] == 'n') {
		/* The version (f + 1) is 5 whatever the peer speaks: its flags say. */
		hs->peer.flags = get32(f + 3);
		hs->peer.creation = 0; /* comes with the complement */
		hs->old_start = 1;
		name = f + NAME_n_HDR;
		nlen = len - NAME_n_HDR;
	} else {
		return KRD_E_PROTO;
	}
	if (!krd_is_node_name((const char *)name, nlen))
		return KRD_E_PROTO;
	set_peer_name(hs, name, nlen);
	return 0;
}

static void send_challenge(krd_hs *hs)
{
	size_t nlen = strlen(hs->me->name);
	uint8_t *p = begin_frame(hs);
	*p++ = 'N';
	p = put64(p, hs->me->flags);
	p = put32(p, hs->challenge);
	p = put32(p, hs->me->creation);
	p = put16(p, (uint16_t)nlen);
	p = put_bytes(p, hs->me->name, nlen);
	end_frame(hs, p);
	hs->state = hs->old_start ? S_COMPLEMENT : S_REPLY;
}

static int on_name(krd_hs *hs, const uint8_t *f, size_t len)
{
	int rc = parse_name(hs, f, len);
	if (rc != 0)
		return rc;
	/* An old start carries only the low 32 flags: the complement brings
	 * the rest, which are checked then. Without HANDSHAKE_23 the peer
	 * would not send the complement, nor take our 'N' challenge. */
	uint64_t need = hs->me->required;
	if (hs->old_start)
		need = (need & 0xffffffffu) | KRD_DFLAG_HANDSHAKE_23;
	if (lacks(hs, need)) {
		send_status(hs, status_text[KRD_HS_NOT_ALLOWED]);
		return KRD_E_FLAGS;
	}
	krd_hs_status st = hs->admit(&hs->peer, hs->ctx);
	switch (st) {
	case KRD_HS_OK:
	case KRD_HS_OK_SIMULTANEOUS:
		send_status(hs, status_text[st]);
		send_challenge(hs);
		return KRD_HS_MORE;
	case KRD_HS_ALIVE:
		send_status(hs, status_text[st]);
		hs->state = S_ALIVE;
		return KRD_HS_MORE;
	case KRD_HS_NOK:
		send_status(hs, status_text[st]);
		return KR_EEXIST;
	case KRD_HS_NOT_ALLOWED:
	default:
		send_status(hs, status_text[KRD_HS_NOT_ALLOWED]);
		return KRD_E_REFUSED;
	}
}

static int on_alive_answer(krd_hs *hs, const uint8_t *f, size_t len)
{
	if (is_status(f, len, "false"))
		return KR_EEXIST;
	if (!is_status(f, len, "true"))
		return KRD_E_PROTO;
	send_challenge(hs);
	return KRD_HS_MORE;
}

static int on_complement(krd_hs *hs, const uint8_t *f, size_t len)
{
	if (len != COMPL_LEN || f[0] != 'c')
		return KRD_E_PROTO;
	hs->peer.flags |= (uint64_t)get32(f + 1) << 32;
	hs->peer.creation = get32(f + 5);
	if (lacks(hs, hs->me->required))
		return KRD_E_FLAGS;
	hs->state = S_REPLY;
	return KRD_HS_MORE;
}

static int on_reply(krd_hs *hs, const uint8_t *f, size_t len)
{
	if (len != REPLY_LEN || f[0] != 'r')
		return KRD_E_PROTO;
	uint8_t want[16];
	krd_hs_digest(hs->me->cookie, hs->challenge, want);
	if (!digest_eq(f + 5, want))
		return KRD_E_COOKIE;
	uint8_t *p = begin_frame(hs);
	*p++ = 'a';
	krd_hs_digest(hs->me->cookie, get32(f + 1), p);
	end_frame(hs, p + 16);
	return 0;
}

int krd_hs_step(krd_hs *hs, const uint8_t *frame, size_t len)
{
	if (len > KRD_HS_FRAME_MAX)
		return KRD_E_TOOBIG;
	/* Each handler checks the length first: an empty frame is too short
	 * for every message. */
	int rc;
	switch (hs->state) {
	case S_STATUS: rc = on_status(hs, frame, len); break;
	case S_CHALLENGE: rc = on_challenge(hs, frame, len); break;
	case S_ACK: rc = on_ack(hs, frame, len); break;
	case S_NAME: rc = on_name(hs, frame, len); break;
	case S_ALIVE: rc = on_alive_answer(hs, frame, len); break;
	case S_COMPLEMENT: rc = on_complement(hs, frame, len); break;
	case S_REPLY: rc = on_reply(hs, frame, len); break;
	default: return KRD_E_PROTO;
	}
	if (rc != KRD_HS_MORE)
		hs->state = S_OVER;
	return rc;
}

/* ---- the drivers: frames over a socket, one deadline for the whole ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline for timeout_ms from now; -1 for none (KR_INFINITY). */
static int64_t deadline_of(long timeout_ms)
{
	return timeout_ms == KR_INFINITY ? -1 : now_ms() + timeout_ms;
}

/* What is left of the deadline, as a krill timeout (0 once it passed). */
static long left(int64_t deadline)
{
	if (deadline < 0)
		return KR_INFINITY;
	int64_t ms = deadline - now_ms();
	return ms > 0 ? (long)ms : 0;
}

static int read_exact(int fd, uint8_t *buf, size_t n, int64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = kr_read(fd, buf + got, n - got, left(deadline));
		if (r == 0)
			return KR_EIO; /* the peer closed mid-handshake */
		if (r < 0)
			return (int)r;
		got += (size_t)r;
	}
	return 0;
}

/* Send what the machine left in out. */
static int flush(int fd, krd_hs *hs, int64_t deadline)
{
	if (hs->out_len == 0)
		return 0;
	ssize_t w = kr_write(fd, hs->out, hs->out_len, left(deadline));
	hs->out_len = 0;
	return w < 0 ? (int)w : 0;
}

/* Run hs over fd until it is done or fails. */
static int drive(int fd, krd_hs *hs, krd_hs_peer *peer, int64_t deadline)
{
	uint8_t frame[KRD_HS_FRAME_MAX];
	for (;;) {
		int rc = flush(fd, hs, deadline);
		if (rc != 0)
			return rc;
		uint8_t hdr[2];
		if ((rc = read_exact(fd, hdr, 2, deadline)) != 0)
			return rc;
		int len = krd_hs_frame_len(hdr);
		if (len < 0)
			return len;
		if ((rc = read_exact(fd, frame, (size_t)len, deadline)) != 0)
			return rc;
		rc = krd_hs_step(hs, frame, (size_t)len);
		/* A status that ends the handshake (nok, not_allowed) goes out
		 * before the caller closes; its own failure adds nothing. */
		int wrc = flush(fd, hs, deadline);
		if (rc == 0 && wrc != 0)
			return wrc;
		if (rc != KRD_HS_MORE) {
			if (rc == 0)
				*peer = hs->peer;
			return rc;
		}
	}
}

static int check_timeout(long timeout_ms)
{
	return timeout_ms < 0 && timeout_ms != KR_INFINITY ? KR_EINVAL : 0;
}

int krd_handshake_connect(int fd, const krd_hs_self *me, const char *peer_name,
                          krd_hs_peer *peer, long timeout_ms)
{
	if (fd < 0 || !peer || check_timeout(timeout_ms) != 0)
		return KR_EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	krd_hs hs;
	int rc = krd_hs_init_connect(&hs, me, peer_name);
	if (rc != 0)
		return rc;
	return drive(fd, &hs, peer, deadline);
}

int krd_handshake_accept(int fd, const krd_hs_self *me, krd_hs_admit_fn *admit, void *ctx,
                         krd_hs_peer *peer, long timeout_ms)
{
	if (fd < 0 || !peer || check_timeout(timeout_ms) != 0)
		return KR_EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	krd_hs hs;
	int rc = krd_hs_init_accept(&hs, me, admit, ctx);
	if (rc != 0)
		return rc;
	return drive(fd, &hs, peer, deadline);
}
