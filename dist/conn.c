/*
 * conn.c - the processes of a connection: the writer, and the process
 * that makes a connection (calling or called) and then reads it
 * (conn.h).
 */
#include "conn.h"

#include <atomic_ops.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctrl.h"
#include "epmd.h"
#include "handshake.h"
#include "node.h"
#include "remote.h"

#define SETUP_MS 7000                       /* net_setuptime's default */
#define PENDING_MS (2 * SETUP_MS + 1000)    /* a writer waits this long for a connection */
#define BATCH ((size_t)64 << 10)            /* bytes a writer gathers for one write */
#define READ_BUF ((size_t)64 << 10)

typedef struct krd_up_msg {
	int fd;            /* the writer's own dup of the socket, given to it */
	uint32_t creation; /* the peer's */
} krd_up_msg;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int krd_frame_queue(kr_pid w, const void *frame, size_t len)
{
	return krx_remote_queue(w, KRD_TAG_FRAME, frame, len);
}

/* ---- the writer ---- */

typedef struct writer {
	krd_peer *peer;
	int fd;
	uint32_t creation;
	kr_pid reader;
	kr_ref reader_mon;
	uint8_t *buf;
	size_t len;
	bool failed;
} writer;

static void write_out(writer *w, const void *data, size_t len)
{
	if (w->failed || !len)
		return;
	if (kr_write(w->fd, data, len, KR_INFINITY) < 0) {
		/* The peer is gone or the socket broken: let the reader see it. */
		shutdown(w->fd, SHUT_RDWR);
		w->failed = true;
	}
}

static void flush(writer *w)
{
	write_out(w, w->buf, w->len);
	w->len = 0;
}

/* A new connection for this peer (the first, or one that took over). */
static void writer_up(writer *w, const kr_msg *m)
{
	krd_up_msg up;
	memcpy(&up, m->data, sizeof up);
	if (w->fd >= 0)
		kr_close(w->fd);
	if (w->reader_mon > 0)
		kr_demonitor(w->reader_mon, 1);
	w->fd = up.fd;
	w->creation = up.creation;
	w->reader = m->sender;
	w->reader_mon = kr_monitor(m->sender);
	w->failed = false;
}

/* One queued message: a frame to gather, a connection, or the reader's
 * end. false when the writer is done. */
static bool writer_take(writer *w, const kr_msg *m)
{
	if (m->tag == KRD_TAG_UP && m->len == sizeof(krd_up_msg)) {
		flush(w);
		writer_up(w, m);
		return true;
	}
	const kr_down_msg *d = kr_msg_down(m);
	if (d && d->ref == w->reader_mon) /* the reader ended however it ended */
		return krd_peer_gone(w->peer, w->reader) == 0;
	if (m->tag != KRD_TAG_FRAME || m->len < sizeof(krd_frame_msg) + 4)
		return true; /* nothing of ours */
	krd_frame_msg head;
	memcpy(&head, m->data, sizeof head);
	if (head.creation && head.creation != w->creation) {
		(void)krx_remote_deliver(0, 0, 0, NULL, 0, NULL); /* to an incarnation that is gone */
		return true;
	}
	const uint8_t *f = (const uint8_t *)m->data + sizeof head;
	size_t n = m->len - sizeof head;
	AO_fetch_and_add(&w->peer->queued, (AO_t)-(AO_t)m->len); /* relaxed: a gauge */
	if (n > BATCH - w->len) {
		flush(w);
		if (n > BATCH) {
			write_out(w, f, n);
			return true;
		}
	}
	memcpy(w->buf + w->len, f, n);
	w->len += n;
	return true;
}

static void writer_main(void *arg)
{
	writer w = {.peer = arg, .fd = -1};
	kr_msg *m;
	while (kr_recv_tag(&m, KRD_TAG_UP, PENDING_MS) != 0)
		if (krd_peer_writer_gone(w.peer, kr_self()))
			return; /* no connection came: what queued is dropped */
	writer_up(&w, m);
	kr_msg_free(m);
	if (!(w.buf = kr_alloc(BATCH)))
		return;
	static const uint8_t tick[4];
	for (;;) {
		int rc = kr_recv(&m, krd_me.tick_ms / 4);
		if (rc == KR_ETIMEDOUT) {
			write_out(&w, tick, sizeof tick);
			continue;
		}
		bool go_on;
		do {
			go_on = writer_take(&w, m);
			kr_msg_free(m);
		} while (go_on && w.len < BATCH && kr_recv(&m, 0) == 0);
		flush(&w);
		if (!go_on)
			return;
	}
}

kr_pid krd_writer_spawn(krd_peer *p)
{
	kr_spawn_opts o = {.name = "dist_writer", .stack_size = KRD_STACK};
	return kr_spawn_opt(writer_main, p, &o);
}

/* ---- reading a connection ---- */

/* Read frames until the connection ends; what ended it into why. */
static void read_frames(krd_peer *p, int fd, char *why, size_t whylen, bool *bad)
{
	size_t cap = READ_BUF, have = 0;
	uint8_t *buf = kr_alloc(cap);
	if (!buf) {
		snprintf(why, whylen, "out of memory");
		return;
	}
	for (;;) {
		ssize_t n = kr_read(fd, buf + have, cap - have, krd_me.tick_ms);
		if (n == KR_ETIMEDOUT) {
			snprintf(why, whylen, "net_tick_timeout");
			return;
		}
		if (n <= 0) {
			snprintf(why, whylen, n ? "connection error" : "connection closed");
			return;
		}
		have += (size_t)n;
		size_t at = 0;
		while (have - at >= 4) {
			uint32_t len = be32(buf + at);
			if (len > krd_me.max_frame) {
				snprintf(why, whylen, "a frame of %u bytes, over the maximum", len);
				*bad = true;
				return;
			}
			if (have - at - 4 < len)
				break;
			if (len && krd_ctrl_handle(p, buf + at + 4, len, why, whylen) < 0) {
				*bad = true;
				return;
			}
			at += 4 + (size_t)len;
		}
		memmove(buf, buf + at, have - at);
		have -= at;
		size_t need = have >= 4 ? 4 + (size_t)be32(buf) : 0;
		if (need > cap) {
			uint8_t *b = kr_realloc(buf, need);
			if (!b) {
				snprintf(why, whylen, "out of memory for a frame of %zu bytes", need);
				return;
			}
			buf = b, cap = need;
		}
	}
}

/* A handshake that succeeded: the peer is up over fd until it ends. */
static void run(krd_peer *p, int fd, const krd_hs_peer *hp, char *why, size_t whylen, bool *bad)
{
	kr_pid self = kr_self();
	kr_pid w = krd_peer_writer(p);
	if (!w || krd_peer_up(p, self, hp->creation, hp->flags) != w) {
		snprintf(why, whylen, "the connection lost its claim to the peer");
		return;
	}
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d < 0 || kr_fd_own(d) != 0 || kr_fd_give(d, w) != 0) {
		if (d >= 0)
			kr_close(d);
		snprintf(why, whylen, "could not hand the socket to the writer");
		return;
	}
	krd_up_msg up = {.fd = d, .creation = hp->creation};
	if (krx_remote_queue(w, KRD_TAG_UP, &up, sizeof up) != 0) {
		snprintf(why, whylen, "the writer is gone");
		return;
	}
	read_frames(p, fd, why, whylen, bad);
}

static krd_hs_self hs_self(void)
{
	return (krd_hs_self){.name = krd_me.name,
	                     .cookie = krd_me.cookie,
	                     .flags = krd_me.flags,
	                     .required = KRD_FLAGS_REQUIRED,
	                     .creation = krd_me.creation};
}

/* The connection process's end, however the connection went. A peer
 * silent past net_ticktime is an error report, as OTP's dist_util makes
 * one ("Node ... not responding"); a connection closed is not. */
static void conn_end(krd_peer *p, int fd, const char *why, bool bad)
{
	kr_pid w = p ? krd_peer_gone(p, kr_self()) : 0;
	if (w)
		kr_exit_sig(w, KR_EXIT_SHUTDOWN);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR); /* the writer's dup too */
	if (p && !bad && !strcmp(why, "net_tick_timeout"))
		krx_log(KR_LOG_ERROR, "krill: node %s not responding: connection removed (%s)",
		        p->name, why);
	if (bad)
		kr_crash("dist: connection %s%s dropped: %s", p ? "with " : "", p ? p->name : "", why);
}

/* ---- calling a peer ---- */

static int dial(krd_peer *p, int *fdp)
{
	char alive[KRD_NODE_NAME_MAX + 1];
	const char *at = strchr(p->name, '@');
	if (!at || (size_t)(at - p->name) > KRD_NODE_NAME_MAX)
		return KR_EINVAL;
	memcpy(alive, p->name, (size_t)(at - p->name));
	alive[at - p->name] = 0;
	const char *host = at + 1;
	uint16_t port = (uint16_t)krd_me.fixed_port;
	int rc = 0;
	if (!port && (rc = krd_epmd_port_please(host, alive, &port, NULL, SETUP_MS)) != 0)
		return rc;
	struct sockaddr_storage ss;
	socklen_t sl;
	if ((rc = krd_resolve(host, port, &ss, &sl)) != 0)
		return rc;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return KR_EIO;
	if ((rc = kr_fd_own(fd)) != 0) {
		close(fd);
		return rc;
	}
	*fdp = fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return kr_connect(fd, (struct sockaddr *)&ss, sl, SETUP_MS);
}

/* The connector's answer to "alive" (handshake.h). */
typedef struct attempt {
	krd_peer *p;
	kr_pid self;
} attempt;

static bool still_pending(void *ctx)
{
	const attempt *a = ctx;
	return krd_peer_still_pending(a->p, a->self);
}

static void connector_main(void *arg)
{
	krd_peer *p = arg;
	kr_pid self = kr_self();
	if (!krd_peer_connecting(p, self))
		return;
	/* Who we are, taken now, before the dial's waits: a node stopped and
	 * started again meanwhile (another name) must not find a call of the
	 * old one introducing itself as the new, which the peer would take for
	 * the new node's call and refuse the real one (a lost round of
	 * dist_more's simultaneous connects, all its messages dropped). */
	krd_hs_self me = hs_self();
	int fd = -1;
	char why[160] = "";
	bool bad = false;
	krd_hs_peer hp;
	int rc = dial(p, &fd);
	attempt at = {p, self};
	me.still_pending = still_pending;
	me.pending_ctx = &at;
	if (!rc)
		rc = krd_handshake_connect(fd, &me, p->name, &hp, SETUP_MS);
	if (rc == KR_EEXIST) { /* theirs wins: it comes in through the acceptor */
		krd_peer_connector_lost(p, self);
		if (fd >= 0)
			kr_close(fd);
		return;
	}
	if (!rc && strcmp(hp.name, p->name) != 0)
		rc = KR_EINVAL; /* someone else answered at that port */
	if (!rc)
		run(p, fd, &hp, why, sizeof why, &bad);
	/* A failed call is quiet, as net_kernel's are: the sender's message
	 * is dropped, and the next send tries again. */
	conn_end(p, fd, why, bad);
}

kr_pid krd_connector_spawn(krd_peer *p)
{
	kr_spawn_opts o = {.name = "dist_connect", .stack_size = KRD_STACK};
	return kr_spawn_opt(connector_main, p, &o);
}

/* ---- a peer calling us ---- */

typedef struct admit_ctx {
	krd_peer *peer;
	kr_pid self;
} admit_ctx;

static krd_hs_status admit(const krd_hs_peer *hp, void *arg)
{
	admit_ctx *c = arg;
	const char *at = strchr(hp->name, '@');
	if (!at || at == hp->name || !at[1] || strchr(at + 1, '@') || !strcmp(hp->name, krd_me.name))
		return KRD_HS_NOT_ALLOWED;
	if (!(c->peer = krd_peer_find(hp->name, true)))
		return KRD_HS_NOT_ALLOWED;
	return krd_peer_admit(c->peer, c->self);
}

static void accepted_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	admit_ctx c = {.self = kr_self()};
	krd_hs_self me = hs_self();
	krd_hs_peer hp;
	char why[160] = "";
	bool bad = false;
	int rc = krd_handshake_accept(fd, &me, admit, &c, &hp, SETUP_MS);
	if (!rc) {
		run(c.peer, fd, &hp, why, sizeof why, &bad);
	} else if (rc != KR_EEXIST) { /* nok is the simultaneous case, not a fault */
		snprintf(why, sizeof why, "handshake failed: %s", krd_hs_error(rc));
		bad = true;
	}
	conn_end(c.peer, fd, why, bad);
}

int krd_conn_accepted(int fd)
{
	kr_spawn_opts o = {.name = "dist_accepted", .stack_size = KRD_STACK};
	kr_pid pid = kr_spawn_opt(accepted_main, (void *)(intptr_t)fd, &o);
	int rc = pid > 0 ? kr_fd_give(fd, pid) : (int)pid;
	if (rc != 0)
		kr_close(fd);
	return rc;
}
