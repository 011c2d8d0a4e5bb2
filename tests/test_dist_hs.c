/*
 * test_dist_hs.c - the distribution handshake (dist/handshake.c) and the
 * EPMD client (dist/epmd.c).
 *
 * The handshake machine alone (two machines trading frames in memory, the
 * digest, node names); both sides as krill processes over a socketpair (a
 * good handshake each way, ok_simultaneous, alive, nok, not_allowed, wrong
 * cookies, missing flags); one side against the test thread speaking raw
 * bytes (the old 'n' start with its complement, a bad ack, a wrong node,
 * garbage, truncated, oversized and silent peers); EPMD: registering,
 * port_please, names taken and unknown, starting epmd, no epmd binary; and
 * the real BEAM both ways when `erl` is on PATH.
 *
 * Every test that talks to EPMD sets ERL_EPMD_PORT to a free port of its
 * own (Criterion runs each test in a process of its own, so the variable
 * stays there), so that it starts and kills an epmd of its own and never
 * touches the machine's epmd on 4369 or another test's; the BEAMs it starts
 * inherit the variable. Every BEAM runs under timeout(1) in a process group
 * of its own, which the test kills at its end.
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "epmd.h"
#include "handshake.h"
#include "krill.h"
#include "vm_util.h"

extern char **environ;

static void hs_fini(void);
TestSuite(dist_hs, .fini = hs_fini, .timeout = 60);

/* The flags OTP 25 requires of a peer (dist.h, DFLAG_DIST_MANDATORY_25),
 * and what the tests advertise: those, published, both monitor flags,
 * UNLINK_ID and V4_NC (OTP 26's additions, above bit 31). */
#define F_MANDATORY_25 (0x4ull | 0x10 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | \
                        0x20000 | 0x40000 | KRD_DFLAG_HANDSHAKE_23)
#define F_OURS (F_MANDATORY_25 | KRD_DFLAG_PUBLISHED | 0x8 | 0x20 | 0x2000000ull | (1ull << 34))
#define F_ALIAS (1ull << 35)

/* ---- the test thread as a raw peer ---- */

/* A socketpair: sv[0] non-blocking, for a krill process; sv[1] blocking,
 * for the test thread. */
static void pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0, "socketpair: %s",
	             strerror(errno));
	cr_assert_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

static void host_send(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		cr_assert_gt(w, 0, "write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static void host_frame(int fd, const void *body, size_t n)
{
	uint8_t hdr[2] = { (uint8_t)(n >> 8), (uint8_t)n };
	host_send(fd, hdr, 2);
	host_send(fd, body, n);
}

/* Read n bytes within ms: 0, or -1 at end of file or when time is up. */
static int host_read(int fd, uint8_t *buf, size_t n, long ms)
{
	int64_t end = vm_now_ns() + (int64_t)ms * 1000000;
	size_t got = 0;
	while (got < n) {
		long left = (long)((end - vm_now_ns()) / 1000000);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* One frame's body into buf (cap bytes): its length, or -1. */
static int host_recv_frame(int fd, uint8_t *buf, size_t cap, long ms)
{
	uint8_t hdr[2];
	if (host_read(fd, hdr, 2, ms) != 0)
		return -1;
	size_t n = (size_t)(hdr[0] << 8 | hdr[1]);
	if (n > cap || host_read(fd, buf, n, ms) != 0)
		return -1;
	return (int)n;
}

static void host_expect_status(int fd, const char *text)
{
	uint8_t f[64];
	int n = host_recv_frame(fd, f, sizeof f, 5000);
	size_t tl = strlen(text);
	cr_assert(n == (int)tl + 1 && f[0] == 's' && memcmp(f + 1, text, tl) == 0,
	          "expected status %s, got a frame of %d bytes ('%c')", text, n, n > 0 ? f[0] : '-');
}

static uint8_t *p16(uint8_t *p, uint16_t v)
{
	*p++ = (uint8_t)(v >> 8);
	*p++ = (uint8_t)v;
	return p;
}

static uint8_t *p32(uint8_t *p, uint32_t v)
{
	return p16(p16(p, (uint16_t)(v >> 16)), (uint16_t)v);
}

static uint8_t *p64(uint8_t *p, uint64_t v)
{
	return p32(p32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t g64(const uint8_t *p)
{
	return (uint64_t)g32(p) << 32 | g32(p + 4);
}

/* A version 6 send_name ('N') for name into f: its length. */
static size_t name_frame(uint8_t *f, uint64_t flags, uint32_t creation, const char *name)
{
	uint8_t *p = f;
	*p++ = 'N';
	p = p32(p64(p, flags), creation);
	p = p16(p, (uint16_t)strlen(name));
	memcpy(p, name, strlen(name));
	return (size_t)(p - f) + strlen(name);
}

/* ---- both sides as krill processes ---- */

typedef struct side {
	int fd;
	krd_hs_self me;
	const char *want;     /* initiator: the node it connected to */
	krd_hs_status answer; /* acceptor: what admit says */
	long timeout_ms;
	krd_hs_peer peer;
	krd_hs_peer admitted; /* what admit was shown */
	int admits;
	int rc;
	atomic_int done;
} side;

static krd_hs_status admit(const krd_hs_peer *peer, void *ctx)
{
	side *s = ctx;
	s->admitted = *peer;
	s->admits++;
	return s->answer;
}

/* The side's process owns its end, so that the end closes when the
 * handshake ends, as the node would close it: a peer still waiting then
 * reads the end of file. */
static void accept_proc(void *arg)
{
	side *s = arg;
	VM_CHECK(kr_fd_own(s->fd) == 0, "own the acceptor's end");
	s->rc = krd_handshake_accept(s->fd, &s->me, admit, s, &s->peer, s->timeout_ms);
	atomic_store(&s->done, 1); /* seq_cst: the test thread reads rc and peer after it */
}

static void connect_proc(void *arg)
{
	side *s = arg;
	VM_CHECK(kr_fd_own(s->fd) == 0, "own the initiator's end");
	s->rc = krd_handshake_connect(s->fd, &s->me, s->want, &s->peer, s->timeout_ms);
	atomic_store(&s->done, 1);
}

static side side_of(const char *name, const char *cookie, uint64_t flags, uint32_t creation)
{
	return (side){ .me = { .name = name, .cookie = cookie, .flags = flags,
		               .required = F_MANDATORY_25, .creation = creation },
		       .answer = KRD_HS_OK, .timeout_ms = 5000 };
}

/* Run initiator c against acceptor a over a socketpair, both as processes. */
static void run_pair(side *c, side *a)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	c->fd = sv[0];
	a->fd = sv[1];
	c->want = c->want ? c->want : a->me.name;
	atomic_store(&c->done, 0);
	atomic_store(&a->done, 0);
	vm_spawn(accept_proc, a);
	vm_spawn(connect_proc, c);
	cr_assert(VM_WAIT(atomic_load(&c->done) && atomic_load(&a->done), 10000),
	          "the handshake did not end");
}

static void assert_peer(const krd_hs_peer *p, const krd_hs_self *who)
{
	cr_assert_str_eq(p->name, who->name);
	cr_assert_eq(p->flags, who->flags, "flags %#llx, not %#llx", (unsigned long long)p->flags,
	             (unsigned long long)who->flags);
	cr_assert_eq(p->creation, who->creation);
}

/* ---- the machine alone, no VM ---- */

Test(dist_hs, the_digest_is_md5_of_the_cookie_and_the_decimal_challenge)
{
	/* erlang:md5("COOKIE12345") and erlang:md5("c4294967295"), from erl and md5sum. */
	static const uint8_t a[16] = { 232, 50, 107, 173, 137, 103, 108, 218,
		                       223, 41, 251, 83, 140, 143, 43, 12 };
	uint8_t d[16];
	krd_hs_digest("COOKIE", 12345, d);
	cr_assert_arr_eq(d, a, 16);
	/* The largest challenge stays unsigned. */
	static const uint8_t b[16] = { 0xb6, 0xb9, 0x42, 0x8e, 0xf0, 0x79, 0xfc, 0x89,
		                       0xea, 0x04, 0xbb, 0x26, 0xbb, 0xf1, 0xa0, 0xda };
	krd_hs_digest("c", 4294967295u, d);
	cr_assert_arr_eq(d, b, 16);
}

Test(dist_hs, node_names_have_exactly_one_at_with_something_on_each_side)
{
	static const char *const good[] = { "a@b", "krill@127.0.0.1", "x@::1" };
	static const char *const bad[] = { "", "ab", "@b", "a@", "a@b@c", "@", "a@@b" };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		cr_assert(krd_is_node_name(good[i], strlen(good[i])), "%s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		cr_assert(!krd_is_node_name(bad[i], strlen(bad[i])), "'%s'", bad[i]);
	cr_assert(!krd_is_node_name("a@b\0c", 5), "a NUL inside");
	char longest[257];
	memset(longest, 'a', 256);
	longest[1] = '@';
	longest[256] = '\0';
	cr_assert(krd_is_node_name(longest, 255));
	cr_assert(!krd_is_node_name(longest, 256), "over 255 bytes");
}

/* Move the frames one machine left in its out buffer into the other. */
static int hand_over(krd_hs *from, krd_hs *to)
{
	int rc = KRD_HS_MORE;
	size_t at = 0;
	uint8_t out[sizeof from->out];
	size_t n = from->out_len;
	memcpy(out, from->out, n);
	from->out_len = 0;
	while (at < n && rc == KRD_HS_MORE) {
		int len = krd_hs_frame_len(out + at);
		cr_assert_geq(len, 0);
		rc = krd_hs_step(to, out + at + 2, (size_t)len);
		at += 2 + (size_t)len;
	}
	cr_assert_eq(at, n, "frames left after the machine stopped");
	return rc;
}

Test(dist_hs, two_machines_complete_a_handshake_in_memory)
{
	krd_hs_self me_a = { "a@h", "secret", F_OURS, F_MANDATORY_25, 7, NULL, NULL };
	krd_hs_self me_b = { "b@h", "secret", F_OURS | F_ALIAS, F_MANDATORY_25, 0x80000001u, NULL, NULL };
	side acc = { .answer = KRD_HS_OK };
	krd_hs c, a;
	cr_assert_eq(krd_hs_init_connect(&c, &me_a, "b@h"), 0);
	cr_assert_eq(krd_hs_init_accept(&a, &me_b, admit, &acc), 0);
	cr_assert_eq(hand_over(&c, &a), KRD_HS_MORE); /* name -> status, challenge */
	cr_assert_eq(hand_over(&a, &c), KRD_HS_MORE); /* -> reply */
	cr_assert_eq(hand_over(&c, &a), 0);           /* reply -> ack */
	cr_assert_eq(hand_over(&a, &c), 0);
	assert_peer(&c.peer, &me_b);
	assert_peer(&a.peer, &me_a);
	/* A finished machine takes nothing more. */
	uint8_t f[17] = { 'a' };
	cr_assert_eq(krd_hs_step(&c, f, sizeof f), KRD_E_PROTO);
	/* Bad arguments. */
	krd_hs_self noname = { "nohost", "secret", 0, 0, 0, NULL, NULL };
	cr_assert_eq(krd_hs_init_connect(&c, &noname, "b@h"), KR_EINVAL);
	cr_assert_eq(krd_hs_init_connect(&c, &me_a, "b"), KR_EINVAL);
	cr_assert_eq(krd_hs_init_connect(&c, NULL, "b@h"), KR_EINVAL);
	cr_assert_eq(krd_hs_init_accept(&a, &me_b, NULL, NULL), KR_EINVAL);
	cr_assert_str_eq(krd_hs_error(KRD_E_COOKIE), "the digests do not match: the cookies differ");
	cr_assert_str_eq(krd_hs_error(KR_ETIMEDOUT), kr_strerror(KR_ETIMEDOUT));
}

/* ---- both sides as processes ---- */

Test(dist_hs, a_good_handshake_both_ways_carries_names_flags_and_creations)
{
	vm_start(2);
	for (int dir = 0; dir < 2; dir++) {
		side x = side_of("x@127.0.0.1", "c00kie", F_OURS, 0x01020304u);
		side y = side_of("y@127.0.0.1", "c00kie", F_OURS | F_ALIAS, 0xfedcba98u);
		side *c = dir ? &y : &x, *a = dir ? &x : &y;
		run_pair(c, a);
		cr_assert_eq(c->rc, 0, "initiator: %s", krd_hs_error(c->rc));
		cr_assert_eq(a->rc, 0, "acceptor: %s", krd_hs_error(a->rc));
		assert_peer(&c->peer, &a->me);
		assert_peer(&a->peer, &c->me);
		cr_assert_eq(a->admits, 1);
		assert_peer(&a->admitted, &c->me);
	}
	/* ok_simultaneous goes on like ok. */
	side c = side_of("x@h", "k", F_OURS, 1), a = side_of("y@h", "k", F_OURS, 2);
	a.answer = KRD_HS_OK_SIMULTANEOUS;
	run_pair(&c, &a);
	cr_assert_eq(c.rc, 0, "%s", krd_hs_error(c.rc));
	cr_assert_eq(a.rc, 0, "%s", krd_hs_error(a.rc));
	vm_stop();
}

Test(dist_hs, a_wrong_cookie_is_refused)
{
	vm_start(2);
	side c = side_of("x@h", "cookie-one", F_OURS, 1), a = side_of("y@h", "cookie-two", F_OURS, 2);
	run_pair(&c, &a);
	/* The acceptor checks first: the initiator's reply does not match. */
	cr_assert_eq(a.rc, KRD_E_COOKIE, "acceptor: %d %s", a.rc, krd_hs_error(a.rc));
	cr_assert_eq(c.rc, KR_EIO, "initiator: %d %s", c.rc, krd_hs_error(c.rc));
	vm_stop();
}

/* The test thread as the acceptor: it answers the initiator's reply with an
 * ack made with another cookie (the initiator's check of the ack), or
 * names another node in its challenge. */
static void acceptor_by_hand(int fd, const char *chal_name, const char *ack_cookie, side *c)
{
	uint8_t f[512];
	int n = host_recv_frame(fd, f, sizeof f, 5000);
	cr_assert_eq(n, 15 + (int)strlen(c->me.name), "send_name");
	cr_assert_eq(f[0], 'N');
	cr_assert_eq(g64(f + 1), c->me.flags);
	cr_assert_eq(g32(f + 9), c->me.creation);
	host_frame(fd, "sok", 3);
	uint32_t chal = 987654321u;
	uint8_t *p = f;
	*p++ = 'N';
	p = p32(p32(p64(p, F_OURS), chal), 42);
	p = p16(p, (uint16_t)strlen(chal_name));
	memcpy(p, chal_name, strlen(chal_name));
	host_frame(fd, f, (size_t)(p - f) + strlen(chal_name));
	if (!ack_cookie)
		return;
	n = host_recv_frame(fd, f, sizeof f, 5000);
	cr_assert_eq(n, 21, "challenge_reply");
	cr_assert_eq(f[0], 'r');
	uint8_t d[16];
	krd_hs_digest(c->me.cookie, chal, d);
	cr_assert_arr_eq(f + 5, d, 16, "the initiator's digest of our challenge");
	uint8_t ack[17] = { 'a' };
	krd_hs_digest(ack_cookie, g32(f + 1), ack + 1);
	host_frame(fd, ack, sizeof ack);
}

static void run_initiator_by_hand(side *c, const char *chal_name, const char *ack_cookie)
{
	int sv[2];
	pair(sv);
	c->fd = sv[0];
	atomic_store(&c->done, 0);
	vm_spawn(connect_proc, c);
	acceptor_by_hand(sv[1], chal_name, ack_cookie, c);
	cr_assert(VM_WAIT(atomic_load(&c->done), 10000));
	close(sv[1]);
}

Test(dist_hs, the_initiator_checks_the_ack_and_the_node_it_reached)
{
	vm_start(2);
	side c = side_of("x@h", "right", F_OURS, 5);
	c.want = "y@h";
	run_initiator_by_hand(&c, "y@h", "right");
	cr_assert_eq(c.rc, 0, "a right ack: %s", krd_hs_error(c.rc));
	cr_assert_str_eq(c.peer.name, "y@h");
	cr_assert_eq(c.peer.creation, 42);
	run_initiator_by_hand(&c, "y@h", "wrong");
	cr_assert_eq(c.rc, KRD_E_COOKIE, "a wrong ack: %d %s", c.rc, krd_hs_error(c.rc));
	run_initiator_by_hand(&c, "z@h", NULL);
	cr_assert_eq(c.rc, KRD_E_WRONG_NODE, "another node: %d %s", c.rc, krd_hs_error(c.rc));
	vm_stop();
}

Test(dist_hs, a_peer_lacking_a_required_flag_is_refused)
{
	vm_start(2);
	/* The acceptor requires ALIAS, which the initiator lacks: not_allowed. */
	side c = side_of("x@h", "k", F_OURS, 1), a = side_of("y@h", "k", F_OURS | F_ALIAS, 2);
	a.me.required |= F_ALIAS;
	run_pair(&c, &a);
	cr_assert_eq(a.rc, KRD_E_FLAGS, "acceptor: %d %s", a.rc, krd_hs_error(a.rc));
	cr_assert_eq(c.rc, KRD_E_REFUSED, "initiator: %d %s", c.rc, krd_hs_error(c.rc));
	cr_assert_eq(a.admits, 0, "admit asked about a refused peer");
	/* The initiator requires ALIAS, which the acceptor lacks. */
	c = side_of("x@h", "k", F_OURS | F_ALIAS, 1);
	a = side_of("y@h", "k", F_OURS, 2);
	c.me.required |= F_ALIAS;
	run_pair(&c, &a);
	cr_assert_eq(c.rc, KRD_E_FLAGS, "initiator: %d %s", c.rc, krd_hs_error(c.rc));
	cr_assert_eq(a.rc, KR_EIO, "acceptor: %d %s", a.rc, krd_hs_error(a.rc));
	vm_stop();
}

Test(dist_hs, admit_saying_nok_or_not_allowed_ends_both_sides)
{
	vm_start(2);
	side c = side_of("x@h", "k", F_OURS, 1), a = side_of("y@h", "k", F_OURS, 2);
	a.answer = KRD_HS_NOK;
	run_pair(&c, &a);
	cr_assert_eq(c.rc, KR_EEXIST, "initiator after nok: %d %s", c.rc, krd_hs_error(c.rc));
	cr_assert_eq(a.rc, KR_EEXIST, "acceptor after nok: %d %s", a.rc, krd_hs_error(a.rc));
	c = side_of("x@h", "k", F_OURS, 1);
	a = side_of("y@h", "k", F_OURS, 2);
	a.answer = KRD_HS_NOT_ALLOWED;
	run_pair(&c, &a);
	cr_assert_eq(c.rc, KRD_E_REFUSED, "initiator after not_allowed: %d %s", c.rc,
	             krd_hs_error(c.rc));
	cr_assert_eq(a.rc, KRD_E_REFUSED, "acceptor after not_allowed: %d", a.rc);
	vm_stop();
}

Test(dist_hs, alive_is_answered_true_and_a_false_ends_the_acceptor)
{
	vm_start(2);
	side c = side_of("x@h", "k", F_OURS, 1), a = side_of("y@h", "k", F_OURS, 2);
	a.answer = KRD_HS_ALIVE;
	run_pair(&c, &a);
	cr_assert_eq(c.rc, 0, "initiator after alive: %s", krd_hs_error(c.rc));
	cr_assert_eq(a.rc, 0, "acceptor after alive: %s", krd_hs_error(a.rc));
	/* The test thread as an initiator that answers false. */
	a = side_of("y@h", "k", F_OURS, 2);
	a.answer = KRD_HS_ALIVE;
	int sv[2];
	pair(sv);
	a.fd = sv[0];
	vm_spawn(accept_proc, &a);
	uint8_t f[64];
	host_frame(sv[1], f, name_frame(f, F_OURS, 1, "x@h"));
	host_expect_status(sv[1], "alive");
	host_frame(sv[1], "sfalse", 6);
	cr_assert(VM_WAIT(atomic_load(&a.done), 10000));
	cr_assert_eq(a.rc, KR_EEXIST, "acceptor after false: %d %s", a.rc, krd_hs_error(a.rc));
	close(sv[1]);
	vm_stop();
}

/* ---- the acceptor against raw bytes ---- */

/* Start an acceptor on sv[0]; the test thread has sv[1]. */
static void start_acceptor(side *a, int sv[2], long timeout_ms)
{
	*a = side_of("y@h", "k", F_OURS, 2);
	a->timeout_ms = timeout_ms;
	pair(sv);
	a->fd = sv[0];
	vm_spawn(accept_proc, a);
}

static int end_acceptor(side *a, int sv[2])
{
	cr_assert(VM_WAIT(atomic_load(&a->done), 10000), "the acceptor did not end");
	close(sv[1]);
	return a->rc;
}

Test(dist_hs, an_old_n_start_with_its_complement_is_accepted)
{
	vm_start(2);
	side a;
	int sv[2];
	start_acceptor(&a, sv, 5000);
	uint64_t flags = F_OURS | F_ALIAS;
	uint8_t f[512], *p = f;
	*p++ = 'n';
	p = p32(p16(p, 5), (uint32_t)flags);
	memcpy(p, "old@h", 5);
	host_frame(sv[1], f, (size_t)(p - f) + 5);
	host_expect_status(sv[1], "ok");
	int n = host_recv_frame(sv[1], f, sizeof f, 5000);
	cr_assert_eq(n, 19 + 3, "the 'N' challenge");
	cr_assert_eq(f[0], 'N');
	cr_assert_eq(g64(f + 1), a.me.flags);
	cr_assert_eq(g32(f + 13), a.me.creation);
	cr_assert_eq(memcmp(f + 19, "y@h", 3), 0);
	uint32_t chal = g32(f + 9);
	p = f;
	*p++ = 'c';
	p = p32(p32(p, (uint32_t)(flags >> 32)), 0xc0ffee);
	host_frame(sv[1], f, (size_t)(p - f));
	p = f;
	*p++ = 'r';
	p = p32(p, 77);
	krd_hs_digest("k", chal, p);
	host_frame(sv[1], f, 21);
	n = host_recv_frame(sv[1], f, sizeof f, 5000);
	uint8_t d[16];
	krd_hs_digest("k", 77, d);
	cr_assert(n == 17 && f[0] == 'a', "the ack");
	cr_assert_arr_eq(f + 1, d, 16);
	cr_assert_eq(end_acceptor(&a, sv), 0, "%s", krd_hs_error(a.rc));
	cr_assert_str_eq(a.peer.name, "old@h");
	cr_assert_eq(a.peer.flags, flags, "the complement's high flags: %#llx",
	             (unsigned long long)a.peer.flags);
	cr_assert_eq(a.peer.creation, 0xc0ffee);
	cr_assert_eq(a.admitted.creation, 0, "the creation is not known before the complement");

	/* Without HANDSHAKE_23 an old start is refused, even by a node that
	 * requires nothing (it could not take our 'N' challenge). */
	a = side_of("y@h", "k", F_OURS, 2);
	a.me.required = 0;
	pair(sv);
	a.fd = sv[0];
	vm_spawn(accept_proc, &a);
	p = f;
	*p++ = 'n';
	p = p32(p16(p, 5), (uint32_t)(F_OURS & ~KRD_DFLAG_HANDSHAKE_23));
	memcpy(p, "old@h", 5);
	host_frame(sv[1], f, (size_t)(p - f) + 5);
	host_expect_status(sv[1], "not_allowed");
	cr_assert_eq(end_acceptor(&a, sv), KRD_E_FLAGS, "%d", a.rc);
	vm_stop();
}

Test(dist_hs, garbage_truncated_oversized_and_silent_peers_end_with_an_error)
{
	vm_start(2);
	side a;
	int sv[2];
	uint8_t f[512];

	/* A frame longer than the limit: refused from its header. */
	start_acceptor(&a, sv, 5000);
	host_send(sv[1], "\xff\xff", 2);
	cr_assert_eq(end_acceptor(&a, sv), KRD_E_TOOBIG, "%d %s", a.rc, krd_hs_error(a.rc));

	/* A name over 255 bytes in a frame under the limit. */
	start_acceptor(&a, sv, 5000);
	char big[262];
	memset(big, 'a', sizeof big - 1);
	big[1] = '@';
	big[sizeof big - 1] = '\0';
	host_frame(sv[1], f, name_frame(f, F_OURS, 1, big));
	cr_assert_eq(end_acceptor(&a, sv), KRD_E_PROTO, "%d %s", a.rc, krd_hs_error(a.rc));

	/* A name length that does not match the frame, a name without '@',
	 * an empty frame, a message of the wrong kind. */
	start_acceptor(&a, sv, 5000);
	size_t n = name_frame(f, F_OURS, 1, "x@h");
	f[14] = 4;
	host_frame(sv[1], f, n);
	cr_assert_eq(end_acceptor(&a, sv), KRD_E_PROTO, "%d", a.rc);
	start_acceptor(&a, sv, 5000);
	host_frame(sv[1], f, name_frame(f, F_OURS, 1, "xh"));
	cr_assert_eq(end_acceptor(&a, sv), KRD_E_PROTO, "%d", a.rc);
	start_acceptor(&a, sv, 5000);
	host_frame(sv[1], f, 0);
	cr_assert_eq(end_acceptor(&a, sv), KRD_E_PROTO, "%d", a.rc);
	start_acceptor(&a, sv, 5000);
	host_frame(sv[1], f, name_frame(f, F_OURS, 1, "x@h"));
	host_expect_status(sv[1], "ok");
	cr_assert_gt(host_recv_frame(sv[1], f, sizeof f, 5000), 0);
	uint8_t ack[17] = { 'a' };
	host_frame(sv[1], ack, sizeof ack);
	cr_assert_eq(end_acceptor(&a, sv), KRD_E_PROTO, "an ack for a reply: %d", a.rc);

	/* Truncated: half a frame, then the end. */
	start_acceptor(&a, sv, 5000);
	n = name_frame(f, F_OURS, 1, "x@h");
	uint8_t hdr[2] = { 0, (uint8_t)n };
	host_send(sv[1], hdr, 2);
	host_send(sv[1], f, n / 2);
	shutdown(sv[1], SHUT_WR);
	cr_assert_eq(end_acceptor(&a, sv), KR_EIO, "%d %s", a.rc, krd_hs_error(a.rc));

	/* Silent: the whole handshake's timeout. */
	start_acceptor(&a, sv, 300);
	int64_t t0 = vm_now_ns();
	cr_assert_eq(end_acceptor(&a, sv), KR_ETIMEDOUT, "%d %s", a.rc, krd_hs_error(a.rc));
	cr_assert_geq(vm_ms_since(t0), 290.0);
	/* Slow: every frame in time, the whole not. */
	start_acceptor(&a, sv, 300);
	t0 = vm_now_ns();
	host_frame(sv[1], f, name_frame(f, F_OURS, 1, "x@h"));
	host_expect_status(sv[1], "ok");
	cr_assert(VM_WAIT(atomic_load(&a.done), 10000));
	cr_assert_eq(end_acceptor(&a, sv), KR_ETIMEDOUT, "%d", a.rc);

	/* Random bytes, as a stream and as frames: an error every time. */
	uint32_t seed = 12345;
	int rounds = 200 / VM_LIGHT_DIV + 20;
	for (int i = 0; i < rounds; i++) {
		start_acceptor(&a, sv, 2000);
		size_t len = vm_rand(&seed) % 300;
		for (size_t j = 0; j < len; j++)
			f[j] = (uint8_t)vm_rand(&seed);
		if (i % 2) {
			f[0] = "Nnsrca"[vm_rand(&seed) % 6];
			host_frame(sv[1], f, len);
		} else {
			host_send(sv[1], f, len);
		}
		shutdown(sv[1], SHUT_WR);
		int rc = end_acceptor(&a, sv);
		cr_assert_lt(rc, 0, "round %d: %d", i, rc);
		cr_assert_neq(rc, KR_ETIMEDOUT, "round %d: a closed peer is not a timeout", i);
	}

	/* The initiator against garbage and silence. */
	side c = side_of("x@h", "k", F_OURS, 1);
	c.want = "y@h";
	pair(sv);
	c.fd = sv[0];
	vm_spawn(connect_proc, &c);
	cr_assert_gt(host_recv_frame(sv[1], f, sizeof f, 5000), 0);
	host_frame(sv[1], "sbogus", 6);
	cr_assert(VM_WAIT(atomic_load(&c.done), 10000));
	cr_assert_eq(c.rc, KRD_E_PROTO, "%d", c.rc);
	close(sv[1]);
	c = side_of("x@h", "k", F_OURS, 1);
	c.want = "y@h";
	c.timeout_ms = 300;
	pair(sv);
	c.fd = sv[0];
	vm_spawn(connect_proc, &c);
	cr_assert(VM_WAIT(atomic_load(&c.done), 10000));
	cr_assert_eq(c.rc, KR_ETIMEDOUT, "%d", c.rc);
	close(sv[1]);
	vm_stop();
}

/* ---- EPMD ---- */

static uint16_t free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sin;
	cr_assert_eq(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	close(s);
	return ntohs(sin.sin_port);
}

/* This test's own epmd port (see the header). */
static int own_epmd;
static void use_own_epmd(void)
{
	char v[8];
	snprintf(v, sizeof v, "%u", free_port());
	cr_assert_eq(setenv("ERL_EPMD_PORT", v, 1), 0);
	own_epmd = 1;
}

/* Kill this test's epmd: `epmd -kill` refuses while a node is registered,
 * and a node's end reaches epmd a moment later, so it is asked again. */
static void kill_own_epmd(void)
{
	if (!own_epmd)
		return;
	own_epmd = 0;
	for (int i = 0; i < 40; i++) {
		int st = system("epmd -kill >/dev/null 2>&1");
		if (st == 0 || (WIFEXITED(st) && WEXITSTATUS(st) != 1))
			return;
		vm_host_sleep_ms(50);
	}
}

static pid_t beam_pid;
static void kill_beam(void);

static void hs_fini(void)
{
	vm_fini();
	kill_beam();
	kill_own_epmd();
}

Test(dist_hs, krd_epmd_port_reads_erl_epmd_port)
{
	unsetenv("ERL_EPMD_PORT");
	cr_assert_eq(krd_epmd_port(), 4369);
	static const char *const bad[] = { "", "0", "65536", "12x", "-5", "99999999999999999999" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		setenv("ERL_EPMD_PORT", bad[i], 1);
		cr_assert_eq(krd_epmd_port(), 4369, "'%s'", bad[i]);
	}
	setenv("ERL_EPMD_PORT", "4370", 1);
	cr_assert_eq(krd_epmd_port(), 4370);
	setenv("ERL_EPMD_PORT", "65535", 1);
	cr_assert_eq(krd_epmd_port(), 65535);
}

typedef struct epmd_run {
	char alive[64];
	int reg_rc, again_rc, unknown_rc, after_close_rc, v6_rc, gone_rc, bad[4];
	uint32_t creation;
	uint16_t port, highest, v6_port;
	atomic_int done;
} epmd_run;

static void epmd_proc(void *arg)
{
	epmd_run *r = arg;
	int fd, fd2;
	uint32_t cr2;
	r->reg_rc = krd_epmd_register(r->alive, 12345, 0, &fd, &r->creation, 5000);
	if (r->reg_rc == 0) {
		VM_CHECK(kr_fd_owner(fd) == kr_self(), "the registration socket is the caller's");
		VM_CHECK(krd_epmd_port_please("127.0.0.1", r->alive, &r->port, &r->highest, 5000) == 0,
		         "port_please of a registered name");
		r->v6_rc = krd_epmd_port_please("::1", r->alive, &r->v6_port, NULL, 5000);
		r->again_rc = krd_epmd_register(r->alive, 12346, 1, &fd2, &cr2, 5000);
		uint16_t p;
		r->unknown_rc = krd_epmd_port_please("localhost", "no_such_krill_node", &p, NULL, 5000);
		kr_close(fd);
		/* epmd sees the close a moment later. */
		for (int i = 0; i < 100; i++) {
			r->after_close_rc = krd_epmd_port_please("127.0.0.1", r->alive, &p, NULL, 5000);
			if (r->after_close_rc != 0)
				break;
			kr_sleep(20);
		}
	}
	uint16_t p;
	char big[300];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	r->bad[0] = krd_epmd_register("", 1, 0, &fd, &cr2, 1000);
	r->bad[1] = krd_epmd_register(big, 1, 0, &fd, &cr2, 1000);
	r->bad[2] = krd_epmd_register("a@b", 1, 0, &fd, &cr2, 1000);
	r->bad[3] = krd_epmd_port_please("", "a", &p, NULL, 1000);
	atomic_store(&r->done, 1);
}

Test(dist_hs, epmd_registers_answers_port_please_and_unregisters_on_close)
{
	use_own_epmd(); /* nothing answers there: krd_epmd_register starts epmd */
	vm_start(2);
	epmd_run r = { .reg_rc = 1 };
	snprintf(r.alive, sizeof r.alive, "krhs%d", (int)getpid());
	vm_spawn(epmd_proc, &r);
	cr_assert(VM_WAIT(atomic_load(&r.done), 20000));
	cr_assert_eq(r.reg_rc, 0, "register: %d %s", r.reg_rc, kr_strerror(r.reg_rc));
	cr_assert_neq(r.creation, 0);
	cr_assert_eq(r.port, 12345);
	cr_assert_eq(r.highest, 6);
	cr_assert_eq(r.v6_rc, 0, "port_please over IPv6: %d", r.v6_rc);
	cr_assert_eq(r.v6_port, 12345);
	cr_assert_eq(r.again_rc, KR_EEXIST, "the same name again: %d", r.again_rc);
	cr_assert_eq(r.unknown_rc, KR_ENOPROC, "an unknown name: %d", r.unknown_rc);
	cr_assert_eq(r.after_close_rc, KR_ENOPROC, "after the close: %d", r.after_close_rc);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(r.bad[i], KR_EINVAL, "bad argument %d: %d", i, r.bad[i]);
	vm_stop();
	kill_own_epmd();
}

typedef struct noepmd_run {
	int enosys_rc, eio_rc;
	atomic_int done;
} noepmd_run;

static void noepmd_proc(void *arg)
{
	noepmd_run *r = arg;
	uint16_t p;
	r->eio_rc = krd_epmd_port_please("127.0.0.1", "nobody", &p, NULL, 5000);
	int fd;
	uint32_t cr;
	r->enosys_rc = krd_epmd_register("nobody", 1, 0, &fd, &cr, 5000);
	atomic_store(&r->done, 1);
}

Test(dist_hs, without_epmd_port_please_fails_and_without_the_binary_register_says_enosys)
{
	char v[8];
	snprintf(v, sizeof v, "%u", free_port());
	setenv("ERL_EPMD_PORT", v, 1);
	setenv("PATH", "/nonexistent-krill-path", 1);
	vm_start(2);
	noepmd_run r = { 0 };
	vm_spawn(noepmd_proc, &r);
	cr_assert(VM_WAIT(atomic_load(&r.done), 10000));
	cr_assert_eq(r.eio_rc, KR_EIO, "port_please with no epmd: %d", r.eio_rc);
	cr_assert_eq(r.enosys_rc, KR_ENOSYS, "register with no epmd binary: %d", r.enosys_rc);
	vm_stop();
}

/* ---- the BEAM ---- */

static int have_erl(void)
{
	return system("command -v erl >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1") == 0;
}

/* Start `timeout -s KILL 30 erl -noshell <args>` in a process group of its
 * own, its output (both streams) into *out. */
static void beam_start(int *out, const char *name_opt, const char *name, const char *cookie,
                       const char *script)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	char *argv[] = { "timeout", "-s", "KILL", "30", "erl", "-noshell", (char *)name_opt,
		         (char *)name, "-setcookie", (char *)cookie, "-eval", (char *)script, NULL };
	int err = posix_spawnp(&beam_pid, "timeout", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[1]);
	cr_assert_eq(err, 0, "posix_spawnp erl: %s", strerror(err));
	*out = p[0];
}

static void kill_beam(void)
{
	if (beam_pid <= 0)
		return;
	kill(-beam_pid, SIGKILL);
	waitpid(beam_pid, NULL, 0);
	beam_pid = 0;
}

/* Read the BEAM's output until a line starting with prefix (copied into
 * line), within ms. All it said is kept in seen, for the failure message. */
static int beam_line(int fd, const char *prefix, char *line, size_t cap, char *seen, size_t scap,
                     long ms)
{
	static char buf[8192];
	static size_t have;
	int64_t end = vm_now_ns() + (int64_t)ms * 1000000;
	for (;;) {
		char *nl;
		while ((nl = memchr(buf, '\n', have))) {
			size_t ll = (size_t)(nl - buf);
			size_t sl = strlen(seen);
			snprintf(seen + sl, scap - sl, "%.*s|", (int)ll, buf);
			int hit = ll >= strlen(prefix) && memcmp(buf, prefix, strlen(prefix)) == 0;
			if (hit)
				snprintf(line, cap, "%.*s", (int)ll, buf);
			memmove(buf, nl + 1, have - ll - 1);
			have -= ll + 1;
			if (hit)
				return 1;
		}
		long left = (long)((end - vm_now_ns()) / 1000000);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return 0;
		ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
		if (r <= 0)
			return 0;
		have += (size_t)r;
	}
}

typedef struct beam_acc {
	char alive[64], name[96];
	krd_hs_self me;
	int reg_rc, rc;
	krd_hs_peer peer;
	atomic_int ready, done;
} beam_acc;

static krd_hs_status admit_ok(const krd_hs_peer *peer, void *ctx)
{
	return KRD_HS_OK;
}

static void beam_accept_proc(void *arg)
{
	beam_acc *b = arg;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	VM_CHECK(l >= 0 && kr_fd_own(l) == 0, "listener");
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sin;
	VM_CHECK(bind(l, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(l, 4) == 0 &&
	                 getsockname(l, (struct sockaddr *)&sin, &len) == 0,
	         "bind, listen: %s", strerror(errno));
	int efd;
	b->reg_rc = krd_epmd_register(b->alive, ntohs(sin.sin_port), 0, &efd, &b->me.creation, 5000);
	atomic_store(&b->ready, 1);
	if (b->reg_rc != 0) {
		atomic_store(&b->done, 1);
		return;
	}
	int c = kr_accept(l, 20000);
	b->rc = c;
	if (c >= 0)
		b->rc = krd_handshake_accept(c, &b->me, admit_ok, b, &b->peer, 10000);
	atomic_store(&b->done, 1);
	/* Hold the connection until the BEAM has said what it saw and halted. */
	char buf[512];
	while (c >= 0 && b->rc == 0 && kr_read(c, buf, sizeof buf, 20000) > 0)
		;
}

Test(dist_hs, a_beam_node_connects_to_a_krill_node, .timeout = 60)
{
	if (!have_erl())
		cr_skip_test("erl is not on PATH: BEAM interop not tested");
	use_own_epmd();
	vm_start(2);
	beam_acc b = { .rc = 1 };
	int id = (int)getpid();
	snprintf(b.alive, sizeof b.alive, "krhsk%d", id);
	snprintf(b.name, sizeof b.name, "%s@127.0.0.1", b.alive);
	char cookie[32], beam[64], script[256];
	snprintf(cookie, sizeof cookie, "krhs_cookie_%d", id);
	snprintf(beam, sizeof beam, "krhsb%d@127.0.0.1", id);
	b.me = (krd_hs_self){ b.name, cookie, F_OURS, F_MANDATORY_25, 0, NULL, NULL };
	vm_spawn(beam_accept_proc, &b);
	cr_assert(VM_WAIT(atomic_load(&b.ready), 10000));
	cr_assert_eq(b.reg_rc, 0, "register: %d %s", b.reg_rc, kr_strerror(b.reg_rc));
	snprintf(script, sizeof script,
	         "io:format(\"connect ~p~n\", [net_kernel:connect_node('%s')]), halt().", b.name);
	int out;
	beam_start(&out, "-name", beam, cookie, script);
	char line[256], seen[4096] = "";
	int said = beam_line(out, "connect ", line, sizeof line, seen, sizeof seen, 30000);
	cr_assert(VM_WAIT(atomic_load(&b.done), 20000), "the krill side did not end");
	cr_assert_eq(b.rc, 0, "krill's accept: %d %s (the BEAM said: %s)", b.rc, krd_hs_error(b.rc),
	             seen);
	cr_assert_str_eq(b.peer.name, beam);
	cr_assert_neq(b.peer.creation, 0);
	cr_assert(b.peer.flags & KRD_DFLAG_HANDSHAKE_23);
	cr_assert(said, "the BEAM said: %s", seen);
	cr_assert_str_eq(line, "connect true", "the BEAM said: %s", seen);
	close(out);
	kill_beam();
	vm_stop();
	kill_own_epmd();
}

typedef struct beam_conn {
	char alive[64], want[96], name[96];
	krd_hs_self me;
	int pp_rc, rc;
	uint16_t port, highest;
	krd_hs_peer peer;
	atomic_int done;
} beam_conn;

static void beam_connect_proc(void *arg)
{
	beam_conn *b = arg;
	b->pp_rc = krd_epmd_port_please("127.0.0.1", b->alive, &b->port, &b->highest, 5000);
	if (b->pp_rc != 0) {
		atomic_store(&b->done, 1);
		return;
	}
	struct sockaddr_storage ss;
	socklen_t len;
	VM_CHECK(krd_resolve("127.0.0.1", b->port, &ss, &len) == 0, "resolve");
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	VM_CHECK(fd >= 0 && kr_fd_own(fd) == 0, "socket");
	b->rc = kr_connect(fd, (struct sockaddr *)&ss, len, 5000);
	if (b->rc == 0)
		b->rc = krd_handshake_connect(fd, &b->me, b->want, &b->peer, 10000);
	atomic_store(&b->done, 1);
	char buf[512];
	while (b->rc == 0 && kr_read(fd, buf, sizeof buf, 20000) > 0)
		;
}

Test(dist_hs, a_krill_node_connects_to_a_beam_node, .timeout = 60)
{
	if (!have_erl())
		cr_skip_test("erl is not on PATH: BEAM interop not tested");
	use_own_epmd(); /* the BEAM starts it */
	vm_start(2);
	beam_conn b = { .rc = 1 };
	int id = (int)getpid();
	snprintf(b.alive, sizeof b.alive, "krhsa%d", id);
	snprintf(b.want, sizeof b.want, "%s@127.0.0.1", b.alive);
	snprintf(b.name, sizeof b.name, "krhsk%d@127.0.0.1", id);
	char cookie[32];
	snprintf(cookie, sizeof cookie, "krhs_cookie_%d", id);
	b.me = (krd_hs_self){ b.name, cookie, F_OURS, F_MANDATORY_25, 0x5eed, NULL, NULL };
	const char *script =
		"net_kernel:monitor_nodes(true, [{node_type, all}]),"
		"io:format(\"creation ~p~n\", [erlang:system_info(creation)]),"
		"receive {nodeup, N, _} -> io:format(\"nodeup ~s~n\", [N])"
		" after 20000 -> io:format(\"nodeup none~n\") end, halt().";
	int out;
	beam_start(&out, "-name", b.want, cookie, script);
	char line[256], seen[4096] = "";
	cr_assert(beam_line(out, "creation ", line, sizeof line, seen, sizeof seen, 30000),
	          "the BEAM did not start: %s", seen);
	uint32_t creation = (uint32_t)strtoul(line + 9, NULL, 10);
	vm_spawn(beam_connect_proc, &b);
	int said = beam_line(out, "nodeup ", line, sizeof line, seen, sizeof seen, 30000);
	cr_assert(VM_WAIT(atomic_load(&b.done), 20000), "the krill side did not end");
	cr_assert_eq(b.pp_rc, 0, "port_please: %d (the BEAM said: %s)", b.pp_rc, seen);
	cr_assert_eq(b.highest, 6);
	cr_assert_eq(b.rc, 0, "krill's connect: %d %s (the BEAM said: %s)", b.rc, krd_hs_error(b.rc),
	             seen);
	cr_assert_str_eq(b.peer.name, b.want);
	cr_assert_eq(b.peer.creation, creation);
	cr_assert(b.peer.flags & KRD_DFLAG_HANDSHAKE_23);
	cr_assert(said, "the BEAM said: %s", seen);
	char expect[128];
	snprintf(expect, sizeof expect, "nodeup %s", b.name);
	cr_assert_str_eq(line, expect, "the BEAM said: %s", seen);
	close(out);
	kill_beam();
	vm_stop();
	kill_own_epmd();
}
