/*
 * chat_server.c - a chat server over TCP: a process per room, two per
 * connection, a supervisor per room, a supervisor of all rooms.
 *
 *     top "chat" (one_for_one, 3 restarts in 60 s)
 *      ├─ rooms "chat:rooms" (one_for_one, 10 in 10 s): one supervisor per room
 *      │   └─ room supervisor "rsup:NAME" (one_for_one, 3 in 5 s by default)
 *      │       ├─ the room "room:NAME" (permanent): its members, the broadcast
 *      │       └─ a reader per member connection (temporary, added dynamically)
 *      │           └─ its writer (linked, not supervised)
 *      └─ acceptor: accepts, starts a reader under the lobby's supervisor
 *
 * A connection is two processes, so that reading never waits for writing
 * nor writing for reading (an idle connection's processes both hibernate,
 * so it holds no stack): the reader reads lines and acts on them (chat lines go
 * straight to its room process), the writer takes what is to be written
 * (the room's lines, notices) and writes it, many lines a write. The writer
 * is also the room's member: it joins and leaves rooms, and joins its room
 * again when the room process is restarted after a crash.
 *
 * Who owns the socket: the writer. A descriptor owned by a process is
 * closed when that process ends, and from then its number may be given to
 * the next accepted connection: a process still using it would read or
 * write a stranger's socket. So the owner must be the one that outlives
 * the other, and the writer does, by construction: it ends only when its
 * reader has ended (it monitors it), or when the reader asked it to
 * (/quit, end of file, and then the reader no longer touches the socket).
 * When the writer must end the connection itself (a slow client, a failed
 * write), it sends its reader an exit signal and waits for its DOWN before
 * ending. When the reader crashes, the writer sees the DOWN and ends, and
 * the socket closes with it. On /join the writer stays, the socket stays
 * its own, and only the reader is replaced (under the new room's
 * supervisor), so nothing is handed over but the reading.
 *
 * Everything here uses only the public API (krill.h).
 */
#include "chat_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Message tags, all below KR_TAG_SUP. */
enum {
	T_HANDOVER = 1, /* -> a new reader: its connection (struct handover + unread input) */
	T_START,        /* reader -> its new writer: struct start */
	T_MOVE,         /* reader -> writer, a call: leave the room, join another (struct move) */
	T_NICK,         /* reader -> writer: the new nick */
	T_SAY,          /* -> writer: text to write as it is */
	T_QUIT,         /* reader -> writer: write what is left (and "bye" if asked), end */
	T_LINE,         /* room -> writer: chat lines to write */
	T_CHAT,         /* reader -> room: chat lines ("NAME: text\n"...) to broadcast */
	T_JOIN,         /* writer -> room, a call: add me, with this nick; reply: members (int) */
	T_LEAVE,        /* writer -> room, a call: remove me */
	T_RENAME,       /* writer -> room: my nick is now this */
	T_WHO,          /* reader -> room: send this writer (kr_pid) the member list */
	T_CRASH,        /* reader -> room: crash (/crashroom); data: who asked */
	T_OK,           /* a reply */
	T_ERR           /* a reply: what went wrong (text) */
};

#define LINE_MAX_DEFAULT 4096
#define OUT_MAX_DEFAULT (256 * 1024)
#define ROOMS_MAX 1000        /* rooms a server may have (they live until it stops) */
#define WHO_MAX 4000          /* bytes of names a /who answer lists */
#define CALL_MS 5000          /* a request between two of our processes */
#define HANDOVER_MS 10000     /* a new reader waits this long for its connection */
#define FIND_MS 2000          /* looking for a room being restarted */
#define WAIT_SLICE_MS 20      /* a writer with a full socket looks at its mailbox this often */
#define FLUSH_AT (64 * 1024)  /* a writer writes once it holds this much */
#define TAKE_MAX 4096         /* ... or once it has taken this many messages */
#define IDLE_MS 1000          /* a reader or writer with nothing to do this long hibernates
                               * (chat_opts.hibernate_after_ms's default) */
#define OUT_KEEP (16 * 1024)  /* a writer keeps an output buffer this big when it is idle */
#define CHAT_BATCH 4096       /* a reader sends its room what it has once it holds this much */
#define READ_CHUNK 4096       /* a reader reads this much at a time (and holds a line more) */
#define IN_FIRST 512          /* ... but starts with this much, growing as lines need */
#define BIN_MIN 512           /* lines this long are broadcast by reference (kr_bin) */
#define KEY_MAX (5 + CHAT_NAME_MAX + 1) /* "room:" / "rsup:" + a name */
#define PEER_MAX 24

/* ---- the server's settings and names ------------------------------------ */

/* One server per VM: its settings, its port, and the room names, which the
 * supervisors' child specs point to for as long as the server runs. */
typedef struct room_name {
	struct room_name *next;
	char name[CHAT_NAME_MAX + 1];
} room_name;

static struct {
	chat_opts o;
	atomic_int port;
	int lfd; /* the listening socket, from the acceptor's init to its start */
	atomic_ullong next_conn;  /* numbers the readers' child ids */
	atomic_ullong next_guest; /* numbers the default nicks */
	pthread_mutex_t lock; /* guards names and nnames */
	room_name *names;
	int nnames;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The name, as a string that lives as long as the server; NULL when there
 * are ROOMS_MAX rooms already. */
static const char *intern(const char *name, size_t len)
{
	const char *found = NULL;
	pthread_mutex_lock(&S.lock);
	for (room_name *r = S.names; r && !found; r = r->next)
		if (strlen(r->name) == len && !memcmp(r->name, name, len))
			found = r->name;
	room_name *r = NULL;
	if (!found && S.nnames < ROOMS_MAX && (r = calloc(1, sizeof *r))) {
		memcpy(r->name, name, len);
		r->next = S.names;
		S.names = r;
		S.nnames++;
		found = r->name;
	}
	pthread_mutex_unlock(&S.lock);
	return found;
}

static void names_free(void)
{
	pthread_mutex_lock(&S.lock);
	while (S.names) {
		room_name *r = S.names;
		S.names = r->next;
		free(r);
	}
	S.nnames = 0;
	pthread_mutex_unlock(&S.lock);
}

/* Nicks and room names: 1 to CHAT_NAME_MAX of [A-Za-z0-9_.-]. */
static int valid_name(const char *s, size_t len)
{
	if (len == 0 || len > CHAT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

static int is_down_of(const kr_msg *m, void *ctx)
{
	const kr_down_msg *d = kr_msg_down(m);
	return d && d->ref == *(const kr_ref *)ctx;
}

/* Wait for the DOWN of monitor ref (other messages stay queued): 0 or
 * KR_ETIMEDOUT. */
static int wait_down(kr_ref ref, long timeout_ms)
{
	kr_msg *m;
	int rc = kr_recv_match(&m, is_down_of, &ref, timeout_ms);
	if (rc == 0)
		kr_msg_free(m);
	return rc;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The pid registered as prefix + name, waiting up to FIND_MS for it to be
 * there (a process being restarted registers again when it starts). */
static kr_pid find(const char *prefix, const char *name)
{
	char key[KEY_MAX];
	snprintf(key, sizeof key, "%s%s", prefix, name);
	uint64_t until = now_ms() + FIND_MS;
	for (;;) {
		kr_pid p = kr_whereis(key);
		if (p > 0 || now_ms() >= until)
			return p;
		kr_sleep(5);
	}
}

/* ---- the room ----------------------------------------------------------- */

/*
 * A room process keeps its members (their writers, with their nicks) in an
 * array, and an index from pid to place in an open-addressed table, so that
 * joining and leaving cost the same in a room of ten or of ten thousand.
 * It monitors its members and forgets those that end. It never waits for
 * anyone: it only answers and sends.
 */
typedef struct member {
	kr_pid pid;
	kr_ref ref;
	char nick[CHAT_NAME_MAX + 1];
} member;

typedef struct room_state {
	const char *name;
	member *m;
	size_t n, cap;
	uint32_t *slot; /* index + 1 of the member in the table, 0 = empty */
	size_t nslots;  /* a power of two, at least twice n */
} room_state;

static size_t slot_of(const room_state *r, kr_pid pid)
{
	size_t i = (size_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ull) >> 32) & (r->nslots - 1);
	while (r->slot[i] && r->m[r->slot[i] - 1].pid != pid)
		i = (i + 1) & (r->nslots - 1);
	return i;
}

static member *member_find(const room_state *r, kr_pid pid)
{
	uint32_t s = r->slot[slot_of(r, pid)];
	return s ? &r->m[s - 1] : NULL;
}

static void room_grow(room_state *r)
{
	r->cap = r->cap ? 2 * r->cap : 16;
	r->m = kr_realloc(r->m, r->cap * sizeof *r->m);
	kr_free(r->slot);
	r->nslots = 2 * r->cap;
	r->slot = kr_calloc(r->nslots, sizeof *r->slot);
	if (!r->m || !r->slot)
		kr_crash("room %s: out of memory", r->name);
	for (size_t i = 0; i < r->n; i++)
		r->slot[slot_of(r, r->m[i].pid)] = (uint32_t)i + 1;
}

static member *member_add(room_state *r, kr_pid pid)
{
	if (r->n == r->cap)
		room_grow(r);
	member *m = &r->m[r->n++];
	memset(m, 0, sizeof *m);
	m->pid = pid;
	r->slot[slot_of(r, pid)] = (uint32_t)r->n;
	return m;
}

/* Remove the member with this pid: the last member takes its place in the
 * array, and the table closes the gap (backward-shift deletion, so that no
 * lookup chain is broken). */
static void member_del(room_state *r, kr_pid pid)
{
	size_t i = slot_of(r, pid);
	uint32_t s = r->slot[i];
	if (!s)
		return;
	size_t mask = r->nslots - 1;
	r->slot[i] = 0;
	for (size_t j = (i + 1) & mask; r->slot[j]; j = (j + 1) & mask) {
		uint32_t v = r->slot[j];
		r->slot[j] = 0;
		r->slot[slot_of(r, r->m[v - 1].pid)] = v;
	}
	size_t at = s - 1, last = r->n - 1;
	if (at != last) {
		r->m[at] = r->m[last];
		r->slot[slot_of(r, r->m[at].pid)] = (uint32_t)at + 1;
	}
	r->n--;
}

static void copy_nick(char *dst, const void *src, size_t len)
{
	len = len < CHAT_NAME_MAX ? len : CHAT_NAME_MAX;
	memcpy(dst, src, len);
	dst[len] = 0;
}

/* Every member gets the lines, the sender's own writer included. Long
 * lines travel as one shared binary instead of a copy each. */
static void broadcast(const room_state *r, const void *data, size_t len)
{
	if (len < BIN_MIN) {
		for (size_t i = 0; i < r->n; i++)
			kr_send(r->m[i].pid, T_LINE, data, len);
		return;
	}
	kr_bin *b = kr_bin_new(data, len);
	if (!b)
		kr_crash("room %s: out of memory", r->name);
	for (size_t i = 0; i < r->n; i++)
		kr_send_bin(r->m[i].pid, T_LINE, b);
	kr_bin_unref(b);
}

static void join(room_state *r, const kr_msg *m)
{
	member *x = member_find(r, m->sender);
	if (!x) {
		x = member_add(r, m->sender);
		x->ref = kr_monitor(m->sender);
	}
	copy_nick(x->nick, m->data, m->len);
	int n = (int)r->n;
	kr_reply(m, T_OK, &n, sizeof n);
}

static void leave(room_state *r, kr_pid pid)
{
	member *x = member_find(r, pid);
	if (!x)
		return;
	kr_demonitor(x->ref, 1);
	member_del(r, pid);
}

/* "* in ROOM (N): a b c\n", to the writer that asked. */
static void who(const room_state *r, kr_pid to)
{
	char *s = kr_alloc(WHO_MAX + 128);
	if (!s)
		return;
	size_t n = (size_t)snprintf(s, WHO_MAX, "* in %s (%zu):", r->name, r->n);
	size_t i;
	for (i = 0; i < r->n && n + CHAT_NAME_MAX + 2 < WHO_MAX; i++)
		n += (size_t)snprintf(s + n, WHO_MAX - n, " %s", r->m[i].nick);
	if (i < r->n)
		n += (size_t)snprintf(s + n, 64, " ... and %zu more", r->n - i);
	s[n++] = '\n';
	kr_send(to, T_SAY, s, n);
	kr_free(s);
}

static void room_main(void *arg)
{
	room_state r = { .name = arg };
	char key[KEY_MAX];
	snprintf(key, sizeof key, "room:%s", r.name);
	int rc = kr_register(key, kr_self());
	if (rc)
		kr_crash("room %s: cannot register %s: %s", r.name, key, kr_strerror(rc));
	room_grow(&r);
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		const kr_down_msg *d;
		switch (m->tag) {
		case T_CHAT:
			broadcast(&r, m->data, m->len);
			break;
		case T_JOIN:
			join(&r, m);
			break;
		case T_LEAVE:
			leave(&r, m->sender);
			kr_reply(m, T_OK, NULL, 0);
			break;
		case T_RENAME: {
			member *x = member_find(&r, m->sender);
			if (x)
				copy_nick(x->nick, m->data, m->len);
			break;
		}
		case T_WHO:
			if (m->len == sizeof(kr_pid))
				who(&r, *(const kr_pid *)m->data);
			break;
		case T_CRASH:
			kr_crash("/crashroom by %.*s", (int)(m->len < CHAT_NAME_MAX ? m->len : CHAT_NAME_MAX),
			         (const char *)m->data);
			break;
		case KR_TAG_DOWN:
			d = kr_msg_down(m);
			if (member_find(&r, d->pid))
				member_del(&r, d->pid);
			break;
		}
		kr_msg_free(m);
	}
}

/* ---- the writer ------------------------------------------------------------ */

/* From a reader to the writer it has just started: the socket, now the
 * writer's, and the nick to greet. */
typedef struct start {
	int fd;
	char nick[CHAT_NAME_MAX + 1];
} start;

/* A move to another room, and the reader that will serve the connection
 * there. */
typedef struct move {
	const char *room;
	kr_pid reader;
	char nick[CHAT_NAME_MAX + 1];
} move;

typedef struct writer {
	int fd;                      /* ours: closed when we end */
	kr_pid reader;               /* the reader we serve, monitored */
	kr_ref reader_ref;
	const char *room_name;       /* the room we are in, or NULL */
	kr_pid room;                 /* its process, monitored; 0 while it restarts */
	kr_ref room_ref;
	uint64_t rejoin_at;          /* when to look for the restarted room next (ms) */
	char nick[CHAT_NAME_MAX + 1];
	char *buf;                   /* output not yet written: buf[off, len) */
	size_t off, len, cap;
	int dead;                    /* output is dropped: the socket failed, or we end it */
} writer;

static size_t pending(const writer *w)
{
	return w->len - w->off;
}

static void leave_room(writer *w);

/* The connection cannot go on (a slow client, a failed write): leave the
 * room, drop the output and end the reader with this reason; its DOWN
 * ends us. */
static void end_connection(writer *w, int kind, const char *why)
{
	if (w->dead)
		return;
	w->dead = 1;
	w->off = w->len = 0;
	kr_reason r = { .kind = kind };
	snprintf(r.text, sizeof r.text, "%s", why);
	kr_exit_sig_reason(w->reader, &r);
	leave_room(w);
}

static void put(writer *w, const void *data, size_t len)
{
	if (w->dead || !len)
		return;
	if (pending(w) + len > S.o.out_max) {
		char why[96];
		snprintf(why, sizeof why, "slow client: over %zu bytes waiting to be written",
		         S.o.out_max);
		end_connection(w, KR_EXIT_ERROR, why);
		return;
	}
	if (w->off && w->len + len > w->cap) { /* room at the front: use it first */
		memmove(w->buf, w->buf + w->off, pending(w));
		w->len -= w->off;
		w->off = 0;
	}
	if (w->len + len > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + len)
			cap *= 2;
		char *b = kr_realloc(w->buf, cap);
		if (!b)
			kr_crash("writer: out of memory");
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
}

static void say(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(writer *w, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	put(w, line, (size_t)n);
}

/* Write what the socket takes now, waiting at most timeout_ms. A failed
 * write ends the connection. */
static void flush(writer *w, long timeout_ms)
{
	if (w->dead || !pending(w))
		return;
	ssize_t n = kr_write(w->fd, w->buf + w->off, pending(w), timeout_ms);
	if (n >= 0) {
		w->off = w->len = 0;
		/* A burst made the buffer big: give the memory back (ten
		 * thousand idle connections should not hold their peak). */
		if (w->cap > OUT_KEEP) {
			kr_free(w->buf);
			w->buf = NULL;
			w->cap = 0;
		}
		return;
	}
	w->off += kr_last_written();
	if (n != KR_ETIMEDOUT)
		end_connection(w, KR_EXIT_SHUTDOWN, "write failed"); /* the client has gone */
}

/* Join the room's current process: its number of members, or an error. */
static int join_room(writer *w, const char *name)
{
	kr_pid room = find("room:", name);
	if (room < 0)
		return (int)room;
	kr_msg *r;
	int rc = kr_call(room, T_JOIN, w->nick, strlen(w->nick), &r, CALL_MS);
	if (rc)
		return rc;
	int n = 0;
	if (r->len == sizeof n)
		memcpy(&n, r->data, sizeof n);
	kr_msg_free(r);
	w->room_name = name;
	w->room = room;
	w->room_ref = kr_monitor(room);
	w->rejoin_at = 0;
	return n;
}

static void leave_room(writer *w)
{
	if (w->room > 0) {
		kr_demonitor(w->room_ref, 1);
		kr_msg *r;
		if (kr_call(w->room, T_LEAVE, NULL, 0, &r, CALL_MS) == 0)
			kr_msg_free(r);
	}
	w->room_name = NULL;
	w->room = 0;
	w->rejoin_at = 0;
}

static void serve_reader(writer *w, kr_pid reader)
{
	if (w->reader > 0)
		kr_demonitor(w->reader_ref, 1);
	w->reader = reader;
	w->reader_ref = kr_monitor(reader);
}

/* T_MOVE, a call from the reader: into another room, served by another
 * reader. On failure we stay where we were. */
static void do_move(writer *w, const kr_msg *m)
{
	move mv;
	memcpy(&mv, m->data, sizeof mv);
	const char *from = w->room_name;
	memcpy(w->nick, mv.nick, sizeof w->nick);
	leave_room(w);
	int n = join_room(w, mv.room);
	if (n < 0) {
		const char *err = kr_strerror(n);
		if (from && join_room(w, from) < 0) {
			w->room_name = from; /* try again later */
			w->rejoin_at = now_ms();
		}
		kr_reply(m, T_ERR, err, strlen(err));
		return;
	}
	serve_reader(w, mv.reader);
	say(w, "* joined %s (%d member%s)", mv.room, n, n == 1 ? "" : "s");
	kr_reply(m, T_OK, NULL, 0);
}

/* Our room process ended: unless it was our doing, it will be restarted
 * (or its supervisor gave up, and our reader is being stopped too). Join
 * the next one as soon as it is there. */
static void room_down(writer *w, const kr_down_msg *d)
{
	w->room = 0;
	w->rejoin_at = now_ms();
	char why[160];
	if (d->reason.kind != KR_EXIT_NORMAL && d->reason.kind != KR_EXIT_SHUTDOWN)
		say(w, "* room %s crashed (%s)", w->room_name,
		    kr_reason_format(&d->reason, why, sizeof why));
}

static void rejoin(writer *w)
{
	if (!w->rejoin_at || now_ms() < w->rejoin_at)
		return;
	char key[KEY_MAX];
	snprintf(key, sizeof key, "room:%s", w->room_name);
	kr_pid room = kr_whereis(key);
	int n = room > 0 ? join_room(w, w->room_name) : KR_ENOPROC;
	if (n < 0) {
		w->rejoin_at = now_ms() + 5;
		return;
	}
	say(w, "* room %s restarted: you are back in it (%d member%s)", w->room_name, n,
	    n == 1 ? "" : "s");
}

static _Noreturn void linger(writer *w);

/* Our reader ended: so do we (and the socket closes). A last word to the
 * client if it crashed or was stopped. */
static _Noreturn void reader_down(writer *w, const kr_down_msg *d)
{
	if (d->reason.kind != KR_EXIT_NORMAL && !w->dead) {
		char why[160];
		say(w, "* disconnected: %s", kr_reason_format(&d->reason, why, sizeof why));
		linger(w);
	}
	kr_exit(KR_EXIT_NORMAL);
	abort(); /* kr_exit does not return to a process */
}

/*
 * End the connection gracefully: write what is left, send our FIN, and
 * take (and drop) what the client still sends until it closes too, for a
 * second at most. Closing a socket with unread input makes the kernel
 * send a reset, and a client that gets a reset may lose the last lines we
 * wrote ("* line too long": the rest of its line is still coming). The
 * reader has stopped reading, so the socket's input is ours to take.
 */
static _Noreturn void linger(writer *w)
{
	leave_room(w); /* the room forgets us now, not when we have ended */
	flush(w, 1000);
	shutdown(w->fd, SHUT_WR);
	char sink[4096];
	uint64_t until = now_ms() + 1000;
	for (uint64_t t = now_ms(); t < until; t = now_ms())
		if (kr_read(w->fd, sink, sizeof sink, (long)(until - t)) <= 0)
			break;
	kr_exit(KR_EXIT_NORMAL);
	abort();
}

static void handle(writer *w, kr_msg *m)
{
	const kr_down_msg *d;
	switch (m->tag) {
	case T_LINE:
	case T_SAY:
		put(w, m->data, m->len);
		break;
	case T_MOVE:
		do_move(w, m);
		break;
	case T_NICK:
		copy_nick(w->nick, m->data, m->len);
		if (w->room > 0)
			kr_send(w->room, T_RENAME, w->nick, strlen(w->nick));
		say(w, "* you are now %s", w->nick);
		break;
	case T_QUIT:
		if (m->len && *(const char *)m->data)
			say(w, "* bye");
		linger(w);
		break;
	case KR_TAG_DOWN:
		d = kr_msg_down(m);
		if (d->ref == w->reader_ref)
			reader_down(w, d);
		else if (d->ref == w->room_ref && w->room > 0)
			room_down(w, d);
		break;
	}
	kr_msg_free(m); /* and KR_TAG_EXIT: we watch by monitors */
}

static int is_start(const kr_msg *m, void *ctx)
{
	(void)ctx;
	return m->tag == T_START || m->tag == KR_TAG_EXIT;
}

/* The writer's loop, its state on its heap: an idle connection's writer
 * (nothing to write, no room to find again) hibernates after
 * chat_opts.hibernate_after_ms (IDLE_MS by default), so that it holds no
 * stack until the next line for it comes, and starts again here. */
static void writer_loop(void *arg)
{
	writer *w = arg;
	kr_msg *m;
	for (;;) {
		/* Take what has come (waiting only if there is nothing to
		 * write), up to a batch, then write it in one go. */
		long wait = S.o.hibernate_after_ms;
		if (w->rejoin_at) {
			uint64_t t = now_ms();
			wait = w->rejoin_at > t ? (long)(w->rejoin_at - t) : 0;
		}
		for (int taken = 0; taken < TAKE_MAX && pending(w) < FLUSH_AT; taken++) {
			bool idle = taken == 0 && !pending(w);
			int rc = kr_recv(&m, idle ? wait : 0);
			if (rc == KR_ETIMEDOUT && idle && !w->rejoin_at) {
				/* Empty: its memory goes too, until the next line. */
				kr_free(w->buf);
				w->buf = NULL;
				w->off = w->len = w->cap = 0;
				kr_hibernate(writer_loop, w);
			}
			if (rc)
				break;
			handle(w, m);
		}
		rejoin(w);
		flush(w, 0);
		/* The socket is full: wait for room, a little at a time, taking
		 * messages in between (the slow-client bound applies to them). */
		if (pending(w) && !w->dead)
			kr_wait_fd(w->fd, KR_WRITABLE, WAIT_SLICE_MS);
	}
}

/* arg: the reader that spawned us, linked. */
static void writer_main(void *arg)
{
	/* A reader's crash must not end us before we have closed the socket
	 * cleanly; we end when its DOWN comes. */
	kr_trap_exit(1);
	writer *w = kr_alloc(sizeof *w);
	if (!w)
		return; /* the reader sees us gone */
	*w = (writer){ .fd = -1 };
	serve_reader(w, (kr_pid)(intptr_t)arg);
	kr_msg *m;
	if (kr_recv_match(&m, is_start, NULL, HANDOVER_MS))
		return;
	start st = { .fd = -1 };
	if (m->tag == T_START && m->len == sizeof st)
		memcpy(&st, m->data, sizeof st);
	kr_msg_free(m);
	if (st.fd < 0)
		return; /* the reader has gone: the socket, if it gave it, closes with us */
	w->fd = st.fd;
	/* The greeting is written here, where the socket is: the reader
	 * need not send it (T_START is waited for first). */
	say(w,
	    "* welcome to krill chat, %s. Commands: /nick NAME, /join ROOM, /who, /quit; "
	    "to see crashes repaired: /crash, /crashroom",
	    st.nick);
	writer_loop(w);
}

/* ---- the reader ------------------------------------------------------------ */

/* A new reader's connection: from the acceptor (writer 0: a new
 * connection) or from the reader it replaces (/join). Unread input
 * follows. fd < 0 cancels. */
typedef struct handover {
	int fd;
	kr_pid writer;
	const char *room;
	char nick[CHAT_NAME_MAX + 1];
	char peer[PEER_MAX];
} handover;

static void reader_main(void *arg);

typedef struct conn {
	int fd;
	kr_pid writer;
	const char *room_name;
	kr_pid room;             /* the room's process as last seen */
	char nick[CHAT_NAME_MAX + 1];
	char peer[PEER_MAX];
	char *in;                /* input not yet handled: in[0, nin) */
	size_t nin, incap;
	char *batch;             /* chat lines for the room: batch[0, nbatch) */
	size_t nbatch;
} conn;

/* A notice for the client: text is written as it is (with its \n). */
static void say_to(const conn *c, const char *text)
{
	kr_send(c->writer, T_SAY, text, strlen(text));
}

/* The room's process (it changes when the room is restarted). */
static kr_pid room_pid(conn *c)
{
	if (c->room <= 0 || !kr_is_alive(c->room))
		c->room = find("room:", c->room_name);
	return c->room;
}

static void send_batch(conn *c)
{
	if (!c->nbatch)
		return;
	kr_pid room = room_pid(c);
	if (room > 0)
		kr_send(room, T_CHAT, c->batch, c->nbatch);
	else
		say_to(c, "* the room is down: your message was not delivered\n");
	c->nbatch = 0;
}

static void chat_line(conn *c, const char *text, size_t len)
{
	if (!c->batch && !(c->batch = kr_alloc(CHAT_BATCH + S.o.line_max + CHAT_NAME_MAX + 3)))
		kr_crash("out of memory");
	size_t nl = strlen(c->nick);
	if (c->nbatch + nl + len + 3 > CHAT_BATCH + S.o.line_max + CHAT_NAME_MAX + 3)
		send_batch(c);
	char *p = c->batch + c->nbatch;
	memcpy(p, c->nick, nl);
	p[nl] = ':';
	p[nl + 1] = ' ';
	memcpy(p + nl + 2, text, len);
	p[nl + 2 + len] = '\n';
	c->nbatch += nl + len + 3;
	if (c->nbatch >= CHAT_BATCH)
		send_batch(c);
}

/* End the connection: the writer writes what it has (and "bye") and ends,
 * closing the socket; we must not touch the socket after asking. */
static _Noreturn void quit(conn *c, int bye)
{
	send_batch(c);
	char b = (char)bye;
	kr_ref ref = kr_monitor(c->writer);
	kr_send(c->writer, T_QUIT, &b, 1);
	wait_down(ref, 2 * CALL_MS);
	kr_exit(KR_EXIT_NORMAL);
	abort();
}

static kr_pid start_reader(kr_pid sup, const char *room, const char *peer)
{
	char id[48], label[64];
	snprintf(id, sizeof id, "conn %s #%llu", peer,
	         (unsigned long long)atomic_fetch_add(&S.next_conn, 1));
	snprintf(label, sizeof label, "conn %s in %s", peer, room);
	kr_child_spec spec = { .id = id, .start = reader_main, .restart = KR_TEMPORARY, .name = label };
	return kr_sup_start_child(sup, &spec, NULL);
}

static void handover_to(kr_pid reader, const handover *h, const char *rest, size_t nrest)
{
	char *m = kr_alloc(sizeof *h + nrest);
	if (!m)
		kr_crash("out of memory");
	memcpy(m, h, sizeof *h);
	if (nrest)
		memcpy(m + sizeof *h, rest, nrest);
	kr_send(reader, T_HANDOVER, m, sizeof *h + nrest);
	kr_free(m);
}

static kr_child_spec room_sup_spec(const char *name, char *label);

/* The room's supervisor, started under the rooms supervisor if the room
 * is new. */
static kr_pid room_sup(const char *name)
{
	char key[KEY_MAX];
	snprintf(key, sizeof key, "rsup:%s", name);
	uint64_t until = now_ms() + FIND_MS;
	for (;;) {
		kr_pid p = kr_whereis(key);
		if (p > 0)
			return p;
		kr_pid rooms = kr_whereis("chat:rooms");
		if (rooms > 0) {
			char label[40];
			kr_child_spec spec = room_sup_spec(name, label);
			p = kr_sup_start_child(rooms, &spec, NULL);
			if (p > 0)
				return p;
		}
		/* KR_EEXIST: it is there but restarting; or the rooms
		 * supervisor is. */
		if (now_ms() >= until)
			return KR_ENOPROC;
		kr_sleep(5);
	}
}

/* /join NAME: a new reader under the room's supervisor takes over the
 * connection (with what we have read and not handled), the writer moves
 * its membership, and we end. On failure, we stay. */
static void join_cmd(conn *c, const char *name, size_t len, const char *rest, size_t nrest)
{
	if (!valid_name(name, len)) {
		say_to(c, "* a room name is 1 to 24 letters, digits, '_', '.' or '-'\n");
		return;
	}
	if (strlen(c->room_name) == len && !memcmp(c->room_name, name, len)) {
		say_to(c, "* you are in that room already\n");
		return;
	}
	const char *room = intern(name, len);
	kr_pid sup = room ? room_sup(room) : KR_ELIMIT;
	kr_pid next = sup > 0 ? start_reader(sup, room, c->peer) : sup;
	if (next < 0) {
		char e[128];
		snprintf(e, sizeof e, "* cannot join %.*s: %s\n", (int)len, name,
		         room ? kr_strerror((int)next) : "too many rooms");
		say_to(c, e);
		return;
	}
	handover h = { .fd = c->fd, .writer = c->writer, .room = room, .peer = "" };
	memcpy(h.nick, c->nick, sizeof h.nick);
	memcpy(h.peer, c->peer, sizeof h.peer);
	move mv = { .room = room, .reader = next };
	memcpy(mv.nick, c->nick, sizeof mv.nick);
	kr_msg *r;
	int rc = kr_call(c->writer, T_MOVE, &mv, sizeof mv, &r, 2 * CALL_MS);
	if (rc || r->tag != T_OK) {
		h.fd = -1; /* the new reader is not needed */
		handover_to(next, &h, NULL, 0);
		if (rc)
			quit(c, 0); /* the writer has gone, or is stuck: we cannot know what it did */
		char e[160];
		snprintf(e, sizeof e, "* cannot join %s: %.*s\n", room, (int)r->len,
		         (const char *)r->data);
		kr_msg_free(r);
		say_to(c, e);
		return;
	}
	kr_msg_free(r);
	handover_to(next, &h, rest, nrest);
	kr_unlink(c->writer);
	kr_exit(KR_EXIT_NORMAL);
}

static void nick_cmd(conn *c, const char *name, size_t len)
{
	if (!valid_name(name, len)) {
		say_to(c, "* a nick is 1 to 24 letters, digits, '_', '.' or '-'\n");
		return;
	}
	memcpy(c->nick, name, len);
	c->nick[len] = 0;
	kr_send(c->writer, T_NICK, c->nick, len);
}

static int is_cmd(const char *line, size_t len, const char *cmd, const char **arg, size_t *alen)
{
	size_t n = strlen(cmd);
	if (len < n || memcmp(line, cmd, n) || (len > n && line[n] != ' '))
		return 0;
	*arg = line + n;
	*alen = len - n;
	while (*alen && **arg == ' ') {
		(*arg)++;
		(*alen)--;
	}
	while (*alen && (*arg)[*alen - 1] == ' ')
		(*alen)--;
	return 1;
}

/* One line from the client (without its \n). rest: what follows it. */
static void handle_line(conn *c, const char *line, size_t len, const char *rest, size_t nrest)
{
	if (len && line[len - 1] == '\r')
		len--;
	if (!len)
		return;
	if (line[0] != '/') {
		chat_line(c, line, len);
		return;
	}
	send_batch(c); /* what was said before a command goes first */
	const char *arg;
	size_t alen;
	if (is_cmd(line, len, "/nick", &arg, &alen)) {
		nick_cmd(c, arg, alen);
	} else if (is_cmd(line, len, "/join", &arg, &alen)) {
		join_cmd(c, arg, alen, rest, nrest);
	} else if (is_cmd(line, len, "/who", &arg, &alen)) {
		kr_pid room = room_pid(c);
		if (room > 0)
			kr_send(room, T_WHO, &c->writer, sizeof c->writer);
	} else if (is_cmd(line, len, "/quit", &arg, &alen)) {
		quit(c, 1);
	} else if (is_cmd(line, len, "/crash", &arg, &alen)) {
		kr_crash("/crash by %s", c->nick);
	} else if (is_cmd(line, len, "/crashroom", &arg, &alen)) {
		kr_pid room = room_pid(c);
		if (room > 0)
			kr_send(room, T_CRASH, c->nick, strlen(c->nick));
	} else {
		char e[64];
		snprintf(e, sizeof e, "* unknown command %.*s\n", (int)(len < 24 ? len : 24), line);
		say_to(c, e);
	}
}

/* Handle every complete line in c->in; keep the incomplete rest. */
static void handle_input(conn *c)
{
	char *p = c->in, *end = c->in + c->nin;
	char *nl;
	while ((nl = memchr(p, '\n', (size_t)(end - p))) && (size_t)(nl - p) <= S.o.line_max) {
		handle_line(c, p, (size_t)(nl - p), nl + 1, (size_t)(end - nl - 1));
		p = nl + 1;
	}
	send_batch(c);
	if (nl || (size_t)(end - p) > S.o.line_max) {
		char e[96];
		snprintf(e, sizeof e, "* line too long (over %zu bytes): goodbye\n", S.o.line_max);
		say_to(c, e);
		quit(c, 0);
	}
	c->nin = (size_t)(end - p);
	memmove(c->in, p, c->nin);
}

/* A new connection: start its writer, hand it the socket, greet, and
 * join the room. */
static void start_writer(conn *c)
{
	char label[40];
	snprintf(label, sizeof label, "out %s", c->peer);
	kr_spawn_opts o = { .link = 1, .name = label };
	c->writer = kr_spawn_opt(writer_main, (void *)(intptr_t)kr_self(), &o);
	if (c->writer < 0)
		kr_crash("spawn writer: %s", kr_strerror((int)c->writer));
	int rc = kr_fd_give(c->fd, c->writer);
	if (rc)
		kr_crash("give the socket to the writer: %s", kr_strerror(rc));
	start st = { .fd = c->fd };
	memcpy(st.nick, c->nick, sizeof st.nick);
	kr_send(c->writer, T_START, &st, sizeof st);
	move mv = { .room = c->room_name, .reader = kr_self() };
	memcpy(mv.nick, c->nick, sizeof mv.nick);
	kr_msg *r;
	rc = kr_call(c->writer, T_MOVE, &mv, sizeof mv, &r, 2 * CALL_MS);
	if (rc || r->tag != T_OK)
		kr_crash("cannot join %s: %s", c->room_name, rc ? kr_strerror(rc) : "refused");
	kr_msg_free(r);
}

/* A reader that replaces another: link to the writer, unless it has gone
 * meanwhile (then there is nothing to serve). */
static void adopt_writer(conn *c)
{
	kr_trap_exit(1);
	kr_link(c->writer);
	kr_trap_exit(0);
	kr_msg *m;
	while (kr_recv_tag(&m, KR_TAG_EXIT, 0) == 0) {
		int gone = kr_msg_exit(m)->from == c->writer;
		kr_msg_free(m);
		if (gone)
			kr_exit(KR_EXIT_NORMAL);
	}
}

/* The reader's input buffer: made when it starts or wakes (IN_FIRST
 * bytes: most lines are short), twice as big whenever a line in progress
 * fills it, up to a longest line and a read; given back when it hibernates
 * with nothing in it, as is the batch (made by the first chat line): an
 * idle connection holds only its conn. */
static void take_buffers(conn *c)
{
	size_t most = S.o.line_max + 1 + READ_CHUNK;
	if (c->in && c->nin < c->incap)
		return;
	size_t cap = c->in ? c->incap : IN_FIRST;
	while (cap <= c->nin && cap < most)
		cap *= 2;
	if (cap > most)
		cap = most;
	char *in = kr_realloc(c->in, cap);
	if (!in)
		kr_crash("out of memory");
	c->in = in;
	c->incap = cap;
}

static void drop_buffers(conn *c)
{
	kr_free(c->batch); /* empty: handle_input sent it */
	c->batch = NULL;
	if (!c->nin) { /* half a line waits in it otherwise */
		kr_free(c->in);
		c->in = NULL;
		c->incap = 0;
	}
}

/* The reader's loop, its state on its heap: a client silent for
 * chat_opts.hibernate_after_ms (IDLE_MS by default) has its next input
 * announced as a message (kr_fd_notify) while the reader hibernates,
 * holding no stack until the client speaks; it starts again here. */
static void reader_loop(void *arg)
{
	conn *c = arg;
	kr_msg *m;
	/* What woke us: the announcement (or anything else sent to a reader,
	 * which has no use for it). */
	while (kr_recv(&m, 0) == 0)
		kr_msg_free(m);
	for (;;) {
		take_buffers(c);
		ssize_t n = kr_read(c->fd, c->in + c->nin, c->incap - c->nin, S.o.hibernate_after_ms);
		if (n == KR_ETIMEDOUT) {
			if (kr_fd_notify(c->fd, KR_READABLE) == 0) {
				drop_buffers(c);
				kr_hibernate(reader_loop, c);
			}
			continue; /* kr_read says what is wrong with the socket */
		}
		if (n <= 0)
			quit(c, 0); /* the client closed, or the connection failed */
		c->nin += (size_t)n;
		handle_input(c);
	}
}

static void reader_main(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv_tag(&m, T_HANDOVER, HANDOVER_MS))
		return; /* whoever started us has gone */
	handover h;
	memcpy(&h, m->data, sizeof h);
	if (h.fd < 0) {
		kr_msg_free(m);
		return;
	}
	conn *c = kr_alloc(sizeof *c);
	if (!c)
		kr_crash("out of memory");
	*c = (conn){ .fd = h.fd, .writer = h.writer, .room_name = h.room };
	memcpy(c->nick, h.nick, sizeof c->nick);
	memcpy(c->peer, h.peer, sizeof c->peer);
	c->nin = m->len - sizeof h; /* what the reader before us had not handled */
	take_buffers(c);
	memcpy(c->in, (const char *)m->data + sizeof h, c->nin);
	kr_msg_free(m);
	if (!c->writer)
		start_writer(c);
	else
		adopt_writer(c);
	if (c->nin)
		handle_input(c);
	reader_loop(c);
}

/* ---- the acceptor ------------------------------------------------------- */

static void tune(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 6;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* A peer that vanished without a word is found out in about two
	 * minutes, even in a silent room. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	if (S.o.sndbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &S.o.sndbuf, sizeof S.o.sndbuf);
}

/* "51234" for a loopback client (its port is what tells it apart), else
 * "10.1.2.3:51234". */
static void peer_label(int fd, char *out)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	if (getpeername(fd, (struct sockaddr *)&a, &len) || a.sin_family != AF_INET) {
		snprintf(out, PEER_MAX, "fd%d", fd);
		return;
	}
	if (ntohl(a.sin_addr.s_addr) == INADDR_LOOPBACK) {
		snprintf(out, PEER_MAX, "%u", ntohs(a.sin_port));
		return;
	}
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
	snprintf(out, PEER_MAX, "%s:%u", ip, ntohs(a.sin_port));
}

/* Hand a new connection to a reader under the lobby's supervisor. */
static void welcome(int fd)
{
	tune(fd);
	handover h = { .fd = fd, .room = intern("lobby", 5) };
	peer_label(fd, h.peer);
	snprintf(h.nick, sizeof h.nick, "guest%llu",
	         (unsigned long long)atomic_fetch_add(&S.next_guest, 1));
	kr_pid sup = find("rsup:", "lobby");
	kr_pid r = sup > 0 ? start_reader(sup, "lobby", h.peer) : sup;
	if (r < 0 || kr_fd_give(fd, r) != 0) {
		kr_close(fd);
		return;
	}
	handover_to(r, &h, NULL, 0);
}

/* The acceptor's init: listen (on the port of the first start, after a
 * restart). The socket is the acceptor's: closed if it ends. */
static int acceptor_init(void *arg)
{
	(void)arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET,
		                 .sin_port = htons((uint16_t)atomic_load(&S.port)),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&a, &len) || kr_fd_own(fd)) {
		close(fd);
		return 2;
	}
	atomic_store(&S.port, ntohs(a.sin_port));
	S.lfd = fd;
	return 0;
}

static void acceptor_main(void *arg)
{
	(void)arg;
	int lfd = S.lfd;
	for (;;) {
		int fd = kr_accept(lfd, KR_INFINITY);
		if (fd >= 0) {
			welcome(fd);
			continue;
		}
		/* Out of descriptors, say: let connections end, then go on. */
		fprintf(stderr, "chat: accept: %s (errno %d)\n", kr_strerror(fd), kr_last_errno());
		kr_sleep(100);
	}
}

/* ---- the supervisors ------------------------------------------------------ */

static void room_sup_main(void *arg)
{
	const char *name = arg;
	char key[KEY_MAX], label[40];
	snprintf(key, sizeof key, "rsup:%s", name);
	snprintf(label, sizeof label, "room %s", name); /* in crash reports */
	if (kr_register(key, kr_self()))
		kr_crash("cannot register %s", key);
	kr_child_spec room = { .id = "room", .start = room_main, .arg = arg, .name = label };
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ONE, .max_restarts = S.o.room_max_restarts,
		           .period_ms = S.o.room_period_ms };
	kr_sup_run(&f, &room, 1);
}

/* The spec of a room's supervisor; label: 40 bytes for its name in
 * reports (the supervisor copies it). */
static kr_child_spec room_sup_spec(const char *name, char *label)
{
	snprintf(label, 40, "rsup %s", name);
	return (kr_child_spec){ .id = name, .start = room_sup_main, .arg = (void *)name,
		                .type = KR_SUPERVISOR, .name = label };
}

static void rooms_main(void *arg)
{
	(void)arg;
	if (kr_register("chat:rooms", kr_self()))
		kr_crash("cannot register chat:rooms");
	char label[40];
	kr_child_spec spec = room_sup_spec(intern("lobby", 5), label);
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 10, .period_ms = 10000 };
	kr_sup_run(&f, &spec, 1);
}

kr_pid chat_start(const chat_opts *opts)
{
	if (kr_self() < 0)
		return KR_ENOTPROC;
	if (kr_whereis("chat:rooms") > 0 || kr_whereis("chat") > 0)
		return KR_EEXIST;
	chat_opts o = opts ? *opts : (chat_opts){ 0 };
	if (!o.line_max)
		o.line_max = LINE_MAX_DEFAULT;
	if (!o.out_max)
		o.out_max = OUT_MAX_DEFAULT;
	if (!o.room_max_restarts)
		o.room_max_restarts = 3;
	if (!o.room_period_ms)
		o.room_period_ms = 5000;
	if (!o.hibernate_after_ms)
		o.hibernate_after_ms = IDLE_MS;
	else if (o.hibernate_after_ms < 0)
		o.hibernate_after_ms = KR_INFINITY; /* a wait that never ends in hibernation */
	names_free();
	S.o = o;
	S.lfd = -1;
	atomic_store(&S.port, o.port);
	atomic_store(&S.next_conn, 1);
	atomic_store(&S.next_guest, 1);
	kr_child_spec kids[] = {
		{ .id = "rooms", .start = rooms_main, .type = KR_SUPERVISOR, .name = "chat rooms" },
		{ .id = "acceptor", .start = acceptor_main, .init = acceptor_init, .shutdown = 1000,
		  .name = "chat acceptor" },
	};
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 3, .period_ms = 60000 };
	return kr_sup_start_link(&f, kids, 2, "chat");
}

int chat_port(void)
{
	return atomic_load(&S.port);
}

static int is_exit_of(const kr_msg *m, void *ctx)
{
	const kr_exit_msg *e = kr_msg_exit(m);
	return e && e->from == *(const kr_pid *)ctx;
}

int chat_stop(kr_pid top)
{
	if (kr_self() < 0)
		return KR_ENOTPROC;
	if (!kr_is_alive(top))
		return KR_ENOPROC;
	int trapped = kr_trap_exit(1);
	kr_ref ref = kr_monitor(top);
	kr_exit_sig(top, KR_EXIT_SHUTDOWN);
	wait_down(ref, KR_INFINITY);
	/* Its exit message, through the link. */
	kr_msg *m;
	if (kr_recv_match(&m, is_exit_of, &top, 0) == 0)
		kr_msg_free(m);
	kr_trap_exit(trapped);
	return 0;
}
