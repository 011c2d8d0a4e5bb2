/*
 * spawn.c - spawning across nodes (spawn.h).
 *
 * A new process for a peer does not run its function until the reply
 * that names it is queued to the peer's writer: its first words (an exit
 * signal, a message) can then never reach the spawner before the reply,
 * as OTP promises. It waits for a KRD_TAG_GO message, which also carries
 * the argument onto its own heap.
 */
#include "spawn.h"

#include <ei.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ctrl.h"
#include "ext.h"
#include "node.h"
#include "remote.h"

#define KRD_TAG_GO (KR_TAG_SUP + 0x82)          /* to a new process: its argument */
#define KRD_TAG_SPAWN_REPLY (KR_TAG_SUP + 0x83) /* to kr_spawn_at's caller: spawn_reply */

enum { F_LINK = 1, F_MONITOR = 2 }; /* SPAWN_REPLY's flags */

typedef struct spawnable {
	char name[KR_NAME_MAX + 1];
	kr_remote_fn *fn;
} spawnable;

typedef struct spawn_reply {
	kr_ref ref;
	kr_pid pid;
	int err;
	unsigned flags;
} spawn_reply;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static spawnable **tab; /* entries never move: a new process holds its own */
static size_t ntab, captab;

static const spawnable *lookup(const char *name)
{
	const spawnable *found = NULL;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < ntab && !found; i++)
		if (!strcmp(tab[i]->name, name))
			found = tab[i];
	pthread_mutex_unlock(&lock);
	return found;
}

KR_API int kr_spawnable(const char *name, kr_remote_fn *fn)
{
	if (!name || !*name || strlen(name) > KR_NAME_MAX || strchr(name, ':') || !fn)
		return KR_EINVAL;
	spawnable *e = malloc(sizeof *e);
	if (!e)
		return KR_ENOMEM;
	memcpy(e->name, name, strlen(name) + 1);
	e->fn = fn;
	int rc = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < ntab && !rc; i++)
		if (!strcmp(tab[i]->name, name))
			rc = KR_EEXIST;
	if (!rc && ntab == captab) {
		size_t cap = captab ? captab * 2 : 16;
		spawnable **t = realloc(tab, cap * sizeof *t);
		if (t)
			tab = t, captab = cap;
	}
	if (!rc && ntab < captab)
		tab[ntab++] = e, e = NULL;
	else if (!rc)
		rc = KR_ENOMEM;
	pthread_mutex_unlock(&lock);
	free(e);
	return rc;
}

void krd_spawnables_free(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < ntab; i++)
		free(tab[i]);
	free(tab);
	tab = NULL;
	ntab = captab = 0;
	pthread_mutex_unlock(&lock);
}

/*
 * A process a peer spawned with a link or a monitor starts its function a
 * millisecond after the go. OTP 25.2's receiving side can take an exit
 * signal or a DOWN from the new process that arrives microseconds after
 * the SPAWN_REPLY before the reply itself, and lose it: the BEAM keeps the
 * monitor and the DOWN never comes. Measured with a BEAM's spawn_monitor
 * of a krill function that crashes at once, two CPU hogs running: 5 to 12
 * DOWNs lost in 200 without the pause, none in 200 with it (the order on
 * the wire was right each time). A BEAM's own spawned process takes longer
 * than this to start and end, which is why BEAM peers do not meet it.
 */
#define SETTLE_MS 1

/* The new process: wait for the go, then run the function (or end as
 * Erlang's undef, naming the Module:Function/Arity the go carries then). */
static void run(const spawnable *sp, bool settle)
{
	kr_msg *m;
	if (kr_recv_tag(&m, KRD_TAG_GO, KR_INFINITY) != 0)
		return;
	if (settle)
		(void)kr_sleep(SETTLE_MS);
	if (!sp)
		kr_crash("undef: %.*s is not kr_spawnable", (int)m->len, (const char *)m->data);
	sp->fn(m->data, m->len);
}

static void trampoline(void *arg)
{
	run(arg, false);
}

static void trampoline_settled(void *arg)
{
	run(arg, true);
}

/* What an undef names: "krill:worker/1". */
static size_t mfa_text(char *out, size_t n, const char *mod, const char *fun, long arity)
{
	int k = snprintf(out, n, "%s:%s/%ld", mod, fun, arity);
	return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}

/* Spawn here: for a peer (ties) or for kr_spawn_at on this node's name. */
static kr_pid spawn_here(const char *name, const void *arg, size_t len, const kr_spawn_opts *opts,
                         kr_pid link_to, kr_pid watcher, kr_ref ref, bool remote)
{
	const spawnable *sp = name ? lookup(name) : NULL;
	kr_spawn_opts o = opts ? *opts : (kr_spawn_opts){0};
	o.name = name ? name : "undef";
	kr_fn *fn = remote && (link_to || watcher) ? trampoline_settled : trampoline;
	kr_pid pid = remote ? krx_remote_spawn(fn, (void *)sp, &o, link_to, watcher, ref)
	                    : kr_spawn_opt(fn, (void *)sp, &o);
	if (pid > 0 && !remote) {
		char undef[KR_NAME_MAX + 16];
		size_t n = mfa_text(undef, sizeof undef, "krill", name, 1);
		(void)krx_remote_queue(pid, KRD_TAG_GO, sp ? arg : undef, sp ? len : n);
	}
	return pid;
}

/* ---- a peer spawns here ---- */

/* OptList: link, monitor and {monitor, _} are ours to honour. */
static bool spawn_opts(const uint8_t *c, int *i, bool *link, bool *monitor)
{
	int n, type, size;
	*link = *monitor = false;
	if (ei_decode_list_header((const char *)c, i, &n) != 0)
		return false;
	for (int k = 0; k < n; k++) {
		char atom[KRD_MAX_ATOM_CHARS * 4 + 1];
		int j = *i, arity;
		if (krd_get_atom(c, &j, atom)) {
			*link |= !strcmp(atom, "link");
			*monitor |= !strcmp(atom, "monitor");
		} else if (krd_get_tuple(c, &j, &arity) && arity == 2 && krd_get_atom(c, &j, atom)) {
			*monitor |= !strcmp(atom, "monitor");
		}
		if (!krd_skip(c, i))
			return false;
	}
	/* A proper list ends in [] (ei gives n == 0 for [] itself). */
	if (n && (ei_get_type((const char *)c, i, &type, &size) != 0 || type != ERL_NIL_EXT ||
	          ei_decode_list_header((const char *)c, i, &n) != 0))
		return false;
	return true;
}

/* The ArgList, as long as the arity says: [] (no bytes), [Binary] (its
 * bytes), [Term] (the term, with its version byte, in scratch). */
static bool spawn_arg(const uint8_t *msg, size_t mlen, long arity, uint8_t *scratch,
                      const uint8_t **arg, size_t *len)
{
	int i = 1, n, type, size;
	*arg = NULL, *len = 0;
	if (!mlen || ei_decode_list_header((const char *)msg, &i, &n) != 0 || n > 1 || n != arity)
		return false;
	if (n == 0)
		return true;
	int at = i;
	if (ei_get_type((const char *)msg, &i, &type, &size) == 0 && type == ERL_BINARY_EXT) {
		*arg = msg + at + 5, *len = (size_t)size;
	} else {
		int end = at;
		if (!krd_skip(msg, &end))
			return false;
		scratch[0] = KRD_VERSION_MAGIC;
		memcpy(scratch + 1, msg + at, (size_t)(end - at));
		*arg = scratch, *len = (size_t)(end - at) + 1;
	}
	return true;
}

static void put_spawn_reply(krd_buf *b, const uint8_t *rid, size_t rid_len, kr_pid to,
                            unsigned flags, kr_pid pid, const char *error)
{
	krd_put_tuple(b, 5);
	krd_put_uint(b, KRD_SPAWN_REPLY);
	krd_put(b, rid, rid_len);
	krd_put_pid(b, to);
	krd_put_uint(b, flags);
	if (error)
		krd_put_atom(b, error);
	else
		krd_put_pid(b, pid);
}

bool krd_spawn_request_in(krd_peer *p, const uint8_t *c, int i, int arity, const uint8_t *msg,
                          size_t mlen)
{
	int rid_at = i, mfa;
	kr_pid from;
	char mod[KRD_MAX_ATOM_CHARS * 4 + 1], fun[KRD_MAX_ATOM_CHARS * 4 + 1];
	long a;
	bool link, monitor;
	if ((arity != 6 && arity != 7) || !krd_skip(c, &i)) /* 7: a trace token last */
		return false;
	int rid_len = i - rid_at;
	if (!krd_get_pid(c, &i, &from) || !krd_skip(c, &i) || !krd_get_tuple(c, &i, &mfa) ||
	    mfa != 3 || !krd_get_atom(c, &i, mod) || !krd_get_atom(c, &i, fun) ||
	    !krd_get_long(c, &i, &a) || !spawn_opts(c, &i, &link, &monitor))
		return false;
	uint8_t *scratch = malloc(mlen + 1);
	const uint8_t *arg;
	size_t len;
	const char *error = NULL;
	if (!scratch)
		error = "system_limit";
	else if (!from || (size_t)rid_len > KRD_EREF_MAX)
		error = "badarg";
	/* What krill does not have (another module, another arity, a name
	 * nobody registered) is spawned all the same and ends with undef, as
	 * on a BEAM that lacks the module: erpc and rpc then return their
	 * error instead of failing on a badarg. */
	const spawnable *sp = NULL;
	if (!error && !strcmp(mod, "krill") && spawn_arg(msg, mlen, a, scratch, &arg, &len))
		sp = lookup(fun);
	kr_ref kref = krd_remote_ref(c + rid_at, (size_t)rid_len);
	kr_pid pid = 0;
	if (!error) {
		pid = spawn_here(sp ? fun : NULL, NULL, 0, NULL, link ? from : 0, monitor ? from : 0,
		                 kref, true);
		if (pid <= 0)
			error = "system_limit";
	}
	if (!error && link)
		krd_track_link(&p->track, pid, from);
	if (!error && monitor) {
		krd_mon_in m = {.watcher = from, .target = pid, .eref_len = (uint16_t)rid_len};
		memcpy(m.eref, c + rid_at, (size_t)rid_len);
		(void)krd_track_mon_in(&p->track, kref, &m);
	}
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	uint32_t creation = 0;
	(void)krd_peer_of(from, &creation);
	krd_frame_begin(&b, creation);
	put_spawn_reply(&b, c + rid_at, (size_t)rid_len, from,
	                error ? 0 : (link ? F_LINK : 0) | (monitor ? F_MONITOR : 0), pid, error);
	(void)krd_frame_send(p, &b);
	krd_buf_free(&b);
	krx_remote_flush(); /* the reply in the writer's mailbox before the go */
	char undef[2 * sizeof mod + 24];
	if (!error) /* now it may run: its first signal follows the reply */
		(void)krx_remote_queue(pid, KRD_TAG_GO, sp ? (const void *)arg : undef,
		                       sp ? len : mfa_text(undef, sizeof undef, mod, fun, a));
	free(scratch);
	return true;
}

/* ---- we spawn there ---- */

static int error_code(const char *atom)
{
	if (!strcmp(atom, "system_limit"))
		return KR_ELIMIT;
	if (!strcmp(atom, "notsup"))
		return KR_ENOSYS;
	if (!strcmp(atom, "noconnection"))
		return KR_ENOCONN;
	return KR_EINVAL;
}

bool krd_spawn_reply_in(krd_peer *p, const uint8_t *c, int i, int arity)
{
	kr_ref ref;
	kr_pid to, pid = 0;
	long flags;
	char atom[KRD_MAX_ATOM_CHARS * 4 + 1];
	if ((arity != 5 && arity != 6) || !krd_get_ref(c, &i, &ref) || !krd_get_pid(c, &i, &to) ||
	    !krd_get_long(c, &i, &flags))
		return false;
	spawn_reply r = {.ref = ref, .flags = (unsigned)flags};
	int j = i;
	if (krd_get_atom(c, &j, atom))
		r.err = error_code(atom);
	else if (!krd_get_pid(c, &i, &pid))
		return false;
	if (!ref || !to || to < 0 || (uint64_t)to >> 50)
		return true; /* not ours */
	r.pid = pid;
	if (!r.err && (flags & F_LINK)) { /* in the caller's links before any exit can come */
		krd_track_link(&p->track, to, pid);
		(void)krx_remote_signal_in(pid, to, KRX_SIG_LINK, 0, 0, NULL, 0);
	}
	if (!r.err && (flags & F_MONITOR))
		krd_track_mon_out(&p->track, ref, to, pid, false, NULL);
	(void)krx_remote_deliver(0, to, KRD_TAG_SPAWN_REPLY, &r, sizeof r, NULL);
	return true;
}

/* What kr_spawn_at waits for: the reply to its request, or its node's end. */
typedef struct awaited {
	const char *node;
	kr_ref ref;
} awaited;

static int is_reply(const kr_msg *m, void *ctx)
{
	const awaited *w = ctx;
	if (m->tag == KRD_TAG_SPAWN_REPLY && m->len == sizeof(spawn_reply))
		return ((const spawn_reply *)m->data)->ref == w->ref;
	return m->tag == KR_TAG_NODEDOWN && m->len == strlen(w->node) + 1 &&
	       !memcmp(m->data, w->node, m->len);
}

static void put_request(krd_buf *b, kr_ref ref, kr_pid self, const char *name, bool link,
                        bool monitor, const void *arg, size_t len)
{
	char mod[KR_NAME_MAX + 1] = "krill";
	const char *fun = name, *colon = strchr(name, ':');
	if (colon) {
		snprintf(mod, sizeof mod, "%.*s", (int)(colon - name), name);
		fun = colon + 1;
	}
	krd_put_tuple(b, 6);
	krd_put_uint(b, KRD_SPAWN_REQUEST);
	krd_put_ref(b, ref);
	krd_put_pid(b, self);
	krd_put_pid(b, self); /* the group leader: krill has none, the spawner stands in */
	krd_put_tuple(b, 3);
	krd_put_atom(b, mod);
	krd_put_atom(b, fun);
	krd_put_uint(b, 1);
	if (link || monitor) { /* [link, monitor], [link] or [monitor] */
		krd_put_u8(b, ERL_LIST_EXT);
		krd_put_u32(b, (uint32_t)link + monitor);
		if (link)
			krd_put_atom(b, "link");
		if (monitor)
			krd_put_atom(b, "monitor");
	}
	krd_put_u8(b, ERL_NIL_EXT);
	krd_put_u8(b, KRD_VERSION_MAGIC); /* the arguments: [Binary] */
	krd_put_u8(b, ERL_LIST_EXT);
	krd_put_u32(b, 1);
	krd_put_binary(b, arg, len);
	krd_put_u8(b, ERL_NIL_EXT);
}

KR_API kr_pid kr_spawn_at(const char *node, const char *name, const void *arg, size_t len,
                          const kr_spawn_opts *opts)
{
	kr_pid self = kr_self();
	if (self < 0)
		return self;
	const char *colon = name ? strchr(name, ':') : NULL;
	if (!node || !strchr(node, '@') || strlen(node) > KRD_NODE_NAME_MAX || !name || !*name ||
	    strlen(name) > KR_NAME_MAX || (colon && (colon == name || !colon[1])) || (len && !arg) ||
	    len > UINT32_MAX)
		return KR_EINVAL;
	if (!krd_node_running())
		return KR_ENODIST;
	bool link = opts && opts->link, monitor = opts && opts->monitor;
	if (!strcmp(node, krd_me.name))
		return colon ? KR_EINVAL : spawn_here(name, arg, len, opts, 0, 0, 0, false);
	krd_peer *p = krd_peer_find(node, true);
	if (!p)
		return KR_ENOMEM;
	kr_ref ref = krx_remote_ref_new();
	if (monitor && krx_remote_monitor_note(ref, 0) != 0)
		return KR_ENOMEM;
	int rc = kr_monitor_node(node, 1); /* the answer, or nodedown */
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, 0);
	put_request(&b, ref, self, name, link, monitor, arg, len);
	if (!rc)
		rc = krd_frame_send(p, &b);
	krd_buf_free(&b);
	kr_msg *m = NULL;
	if (!rc) {
		awaited w = {.node = node, .ref = ref};
		rc = kr_recv_match(&m, is_reply, &w, KR_INFINITY);
	}
	kr_monitor_node(node, 0);
	spawn_reply r = {.err = KR_ENOCONN};
	if (!rc && m->tag == KRD_TAG_SPAWN_REPLY)
		memcpy(&r, m->data, sizeof r);
	kr_msg_free(m);
	if (rc)
		r.err = rc;
	if (monitor && !r.err && (r.flags & F_MONITOR)) {
		(void)krx_remote_monitor_note(ref, r.pid);
		*opts->monitor = ref;
	} else if (monitor) {
		krx_remote_monitor_drop(ref);
	}
	return r.err ? r.err : r.pid;
}
