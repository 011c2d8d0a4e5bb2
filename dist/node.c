/*
 * node.c - this node's life: kr_node_start and kr_node_stop, the
 * acceptor (listening socket and EPMD registration), the net_kernel
 * process, and the public calls of krill/dist.h that are not a
 * connection's (node.h).
 *
 * A node is started once at a time: a state word moves OFF -> STARTING ->
 * RUNNING -> STOPPING -> OFF. krd_me is written while STARTING, by the
 * starter and (its port and creation) by the acceptor before it reports
 * back; RUNNING is published with a release store after that, so every
 * reader that sees RUNNING sees krd_me whole.
 */
#include "node.h"

#include <atomic_ops.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ei.h>

#include "conn.h"
#include "ctrl.h"
#include "epmd.h"
#include "ext.h"
#include "remote.h"
#include "spawn.h"

enum { OFF, STARTING, RUNNING, STOPPING };

krd_node krd_me;
static AO_t state = OFF;

bool krd_node_running(void)
{
	/* Acquire: pairs with kr_node_start's release; krd_me is whole. */
	return AO_load_acquire(&state) == RUNNING;
}

/* ---- the remote operations vm/ calls ---- */

static void vm_stopped(void)
{
	/* Every process is gone, and with them the sockets they owned. */
	krd_peers_free();
	krd_spawnables_free();
	AO_store(&state, OFF);
}

static bool whole_term(const void *term, size_t len);

static const krx_remote_ops ops = {
	.send = krd_send, .signal = krd_signal, .term_ok = whole_term, .vm_stopped = vm_stopped};

/* ---- waiting for the acceptor, from a process or a host thread ---- */

typedef struct start_box {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int rc;
} start_box;

static void box_post(start_box *b, int rc)
{
	pthread_mutex_lock(&b->mu);
	b->rc = rc;
	b->done = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static long box_wait(void *arg)
{
	start_box *b = arg;
	pthread_mutex_lock(&b->mu);
	while (!b->done)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	return b->rc;
}

/* ---- the acceptor ---- */

typedef struct acceptor_arg {
	start_box *box;
	struct sockaddr_storage addr;
	socklen_t addrlen;
} acceptor_arg;

static int listen_on(const acceptor_arg *a, int *fdp)
{
	int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return KR_EIO;
	if (kr_fd_own(fd) != 0) {
		close(fd);
		return KR_ENOMEM;
	}
	*fdp = fd;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&a->addr, a->addrlen) != 0 || listen(fd, 128) != 0)
		return errno == EADDRINUSE ? KR_EEXIST : KR_EIO;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return KR_EIO;
	krd_me.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                             : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static uint32_t random_creation(void)
{
	uint32_t c = 0;
	while (!c && getrandom(&c, sizeof c, 0) != sizeof c)
		;
	return c ? c : 1;
}

static void acceptor_main(void *arg)
{
	acceptor_arg *a = arg;
	int lfd = -1, efd = -1;
	int rc = listen_on(a, &lfd);
	if (!rc && krd_me.fixed_port) {
		krd_me.creation = random_creation();
	} else if (!rc) {
		char alive[KRD_NODE_NAME_MAX + 1];
		snprintf(alive, sizeof alive, "%.*s", (int)(strchr(krd_me.name, '@') - krd_me.name),
		         krd_me.name);
		rc = krd_epmd_register(alive, (uint16_t)krd_me.port, krd_me.hidden, &efd,
		                       &krd_me.creation, 5000);
	}
	box_post(a->box, rc); /* a is the starter's: not touched after this */
	if (rc)
		return;
	for (;;) {
		int fd = kr_accept(lfd, KR_INFINITY);
		if (fd >= 0)
			(void)krd_conn_accepted(fd);
		else if (fd != KR_EIO || kr_last_errno() != EMFILE)
			kr_sleep(10); /* a transient error (ECONNABORTED ...): go on */
		else
			kr_sleep(100); /* out of descriptors: let some close */
	}
}

/* ---- net_kernel ---- */

/* net_adm:ping's question, gen_server:call(net_kernel, {is_auth, Node}),
 * arrives as a kr_call (ctrl.c makes '$gen_call's calls): the answer is
 * yes. Other requests get no answer (the caller times out, as with a
 * net_kernel that does not know them). */
static void net_kernel_call(const kr_msg *m)
{
	const uint8_t *t = m->data;
	int i = 1, arity;
	char atom[KRD_MAX_ATOM_CHARS * 4 + 1];
	if (!m->ref || m->tag != KR_TAG_TERM || !krd_get_tuple(t, &i, &arity) || arity != 2 ||
	    !krd_get_atom(t, &i, atom) || strcmp(atom, "is_auth"))
		return;
	static const uint8_t yes[] = {KRD_VERSION_MAGIC, ERL_SMALL_ATOM_UTF8_EXT, 3, 'y', 'e', 's'};
	(void)kr_reply(m, KR_TAG_TERM, yes, sizeof yes);
}

static void net_kernel_main(void *arg)
{
	(void)arg;
	kr_register("net_kernel", kr_self());
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY) != 0)
			continue;
		net_kernel_call(m);
		kr_msg_free(m);
	}
}

/* ---- starting and stopping ---- */

/* name -> krd_me.name and krd_me.host: "alive@host", or "alive" on this
 * host's short name (erl -sname). */
static int parse_name(const char *name)
{
	if (!name || !*name || strlen(name) > KRD_NODE_NAME_MAX)
		return KR_EINVAL;
	const char *at = strchr(name, '@');
	size_t alive = at ? (size_t)(at - name) : strlen(name);
	if (!alive)
		return KR_EINVAL;
	for (size_t i = 0; i < alive; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
			return KR_EINVAL;
	char host[KRD_NODE_NAME_MAX + 1];
	if (at) {
		if (!at[1] || strchr(at + 1, '@'))
			return KR_EINVAL;
		snprintf(host, sizeof host, "%s", at + 1);
	} else {
		if (gethostname(host, sizeof host) != 0)
			return KR_EINVAL;
		host[sizeof host - 1] = 0;
		char *dot = strchr(host, '.');
		if (dot)
			*dot = 0;
	}
	if (alive + 1 + strlen(host) > KRD_NODE_NAME_MAX)
		return KR_EINVAL;
	size_t hl = strlen(host);
	memcpy(krd_me.name, name, alive);
	krd_me.name[alive] = '@';
	memcpy(krd_me.name + alive + 1, host, hl + 1);
	memcpy(krd_me.host, host, hl + 1);
	return 0;
}

static bool cookie_ok(const char *c)
{
	size_t n = strlen(c);
	if (!n || n >= sizeof krd_me.cookie)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
			return false;
	return true;
}

/* ~/.erlang.cookie, made as erl makes it when missing: 20 random capitals,
 * mode 0400. */
static int home_cookie(void)
{
	const char *home = getenv("HOME");
	if (!home)
		return KR_EINVAL;
	char path[4096];
	snprintf(path, sizeof path, "%s/.erlang.cookie", home);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		char fresh[21];
		uint8_t r[20];
		if (getrandom(r, sizeof r, 0) != sizeof r)
			return KR_EIO;
		for (int i = 0; i < 20; i++)
			fresh[i] = (char)('A' + r[i] % 26);
		fresh[20] = 0;
		int w = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
		if (w >= 0) {
			bool ok = write(w, fresh, 20) == 20;
			close(w);
			if (!ok)
				return KR_EIO;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC); /* ours, or one made meanwhile */
	}
	if (fd < 0)
		return KR_EIO;
	ssize_t n = read(fd, krd_me.cookie, sizeof krd_me.cookie - 1);
	close(fd);
	if (n <= 0)
		return KR_EINVAL;
	krd_me.cookie[n] = 0;
	while (n > 0 && isspace((unsigned char)krd_me.cookie[n - 1]))
		krd_me.cookie[--n] = 0;
	return cookie_ok(krd_me.cookie) ? 0 : KR_EINVAL;
}

static int configure(const kr_node_config *cfg, acceptor_arg *a)
{
	memset(&krd_me, 0, sizeof krd_me);
	int rc = parse_name(cfg->name);
	if (rc)
		return rc;
	if (cfg->cookie) {
		if (!cookie_ok(cfg->cookie))
			return KR_EINVAL;
		snprintf(krd_me.cookie, sizeof krd_me.cookie, "%s", cfg->cookie);
	} else if ((rc = home_cookie()) != 0) {
		return rc;
	}
	if (cfg->port > 65535 || cfg->fixed_port > 65535 || cfg->net_ticktime > 3600 * 24)
		return KR_EINVAL;
	krd_me.fixed_port = cfg->fixed_port;
	krd_me.hidden = cfg->hidden != 0;
	krd_me.flags = KRD_FLAGS_OURS | (krd_me.hidden ? 0 : KRD_F_PUBLISHED);
	krd_me.tick_ms = (cfg->net_ticktime ? cfg->net_ticktime : 60) * 1000u;
	krd_me.max_frame = cfg->max_frame ? cfg->max_frame : (size_t)128 << 20;
	if (krd_me.max_frame > UINT32_MAX)
		krd_me.max_frame = UINT32_MAX;
	krd_me.busy_limit = cfg->busy_limit ? cfg->busy_limit : (size_t)1 << 20;
	unsigned port = cfg->fixed_port ? cfg->fixed_port : cfg->port;
	const char *where = cfg->listen_addr ? cfg->listen_addr : krd_me.host;
	if (krd_resolve(where, (uint16_t)port, &a->addr, &a->addrlen) != 0)
		return KR_EINVAL;
	return 0;
}

static int start(const kr_node_config *cfg)
{
	acceptor_arg a = {0};
	int rc = configure(cfg, &a);
	if (rc)
		return rc;
	krx_remote_install(&ops);
	start_box box = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	a.box = &box;
	kr_spawn_opts o = {.name = "dist_acceptor", .stack_size = KRD_STACK};
	kr_pid acc = kr_spawn_opt(acceptor_main, &a, &o);
	if (acc < 0)
		return (int)acc;
	rc = (int)kr_blocking(box_wait, &box); /* a process waits on a helper thread */
	pthread_cond_destroy(&box.cv);
	pthread_mutex_destroy(&box.mu);
	if (rc)
		return rc; /* the acceptor has ended, closing what it opened */
	krd_me.acceptor = acc;
	o.name = "net_kernel";
	krd_me.net_kernel = kr_spawn_opt(net_kernel_main, NULL, &o);
	if (krd_me.net_kernel < 0) {
		kr_exit_sig(acc, KR_EXIT_SHUTDOWN);
		return (int)krd_me.net_kernel;
	}
	return 0;
}

KR_API int kr_node_start(const kr_node_config *cfg)
{
	kr_vm_stats st;
	if (kr_vm_stats_get(&st) != 0)
		return KR_ESTOPPED;
	if (!cfg)
		return KR_EINVAL;
	if (!AO_compare_and_swap_full(&state, OFF, STARTING))
		return KR_EEXIST;
	int rc = start(cfg);
	/* Release: krd_me, written above (and by the acceptor before it
	 * posted), is whole for everyone who sees RUNNING. */
	AO_store_release(&state, rc ? OFF : RUNNING);
	return rc;
}


KR_API int kr_node_stop(void)
{
	if (!AO_compare_and_swap_full(&state, RUNNING, STOPPING))
		return KR_ENODIST;
	kr_pid procs[256];
	int n;
	kr_exit_sig(krd_me.acceptor, KR_EXIT_SHUTDOWN);
	kr_exit_sig(krd_me.net_kernel, KR_EXIT_SHUTDOWN);
	while ((n = krd_peers_procs(procs, 256)) > 0) {
		for (int i = 0; i < n; i++)
			kr_exit_sig(procs[i], KR_EXIT_SHUTDOWN);
		krd_peers_reset(); /* killed processes do not say they went */
	}
	/* The listening socket and the EPMD registration go with the
	 * acceptor: wait for it, so that a new node may take the name. */
	for (int i = 0; i < 500 && kr_is_alive(krd_me.acceptor); i++)
		kr_sleep(2); /* a process or a host thread alike */
	AO_store_release(&state, OFF);
	return 0;
}

KR_API const char *kr_node_name(void)
{
	return krd_node_running() ? krd_me.name : NULL;
}

KR_API int kr_nodes(const char **out, int n)
{
	if (!krd_node_running())
		return KR_ENODIST;
	if (n < 0 || (n && !out))
		return KR_EINVAL;
	return krd_peers_up(out, n);
}

KR_API const char *kr_pid_node(kr_pid pid)
{
	if (pid <= 0)
		return NULL;
	if ((uint64_t)pid >> 50 == 0)
		return krd_node_running() ? krd_me.name : "nonode@nohost";
	uint32_t creation;
	krd_peer *p = krd_peer_of(pid, &creation);
	return p ? p->name : NULL;
}

static bool whole_term(const void *term, size_t len)
{
	const uint8_t *t = term;
	return t && len >= 2 && t[0] == KRD_VERSION_MAGIC && krd_term_size(t + 1, len - 1) == (long)len - 1;
}

static kr_pid self_or_0(void)
{
	kr_pid self = kr_self();
	return self > 0 ? self : 0;
}

KR_API int kr_send_named_at(const char *node, const char *name, uint64_t tag, const void *data,
                            size_t len)
{
	bool term = tag == KR_TAG_TERM;
	if (!node || !name || !*name || strlen(name) > KR_NAME_MAX || (tag >= KR_TAG_SUP && !term) ||
	    (len && !data) || (term && !whole_term(data, len)))
		return KR_EINVAL;
	if (!krd_node_running())
		return KR_ENODIST;
	if (!strcmp(node, krd_me.name)) {
		if (!term)
			return kr_send_named(name, tag, data, len);
		kr_pid to = kr_whereis(name);
		return to > 0 ? krx_remote_deliver(self_or_0(), to, tag, data, len, NULL) : (int)to;
	}
	if (!strchr(node, '@'))
		return KR_EINVAL;
	krd_peer *p = krd_peer_find(node, true);
	return p ? krd_send_named(self_or_0(), p, name, tag, data, len) : KR_ENOMEM;
}

KR_API int kr_send_term(kr_pid to, const void *term, size_t len)
{
	if (!whole_term(term, len))
		return KR_EINVAL;
	if (krx_pid_remote(to))
		return krx_remote_send(self_or_0(), to, KRX_MSG_USER, KR_TAG_TERM, 0, term, len, NULL);
	return krx_remote_deliver(self_or_0(), to, KR_TAG_TERM, term, len, NULL);
}

KR_API long kr_term_get_pid(const void *p, size_t len, kr_pid *pid)
{
	const uint8_t *t = p;
	if (!t || !pid || !len || (t[0] != ERL_NEW_PID_EXT && t[0] != ERL_PID_EXT))
		return KR_EINVAL;
	long n = krd_term_size(t, len);
	if (n < 0)
		return KR_EINVAL;
	int i = 0;
	kr_pid got = 0;
	if (!krd_get_pid(t, &i, &got))
		return got < 0 ? got : KR_EINVAL;
	*pid = got;
	return n;
}

KR_API long kr_term_put_pid(void *out, size_t n, kr_pid pid)
{
	uint8_t stack[KRD_NODE_NAME_MAX + 32];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	bool ok = krd_put_pid(&b, pid);
	long len = ok && !b.fail ? (long)b.len : KR_EINVAL;
	if (len > 0 && out && (size_t)len <= n)
		memcpy(out, b.p, b.len);
	krd_buf_free(&b);
	return len;
}

/* ---- node monitors ---- */

/* kr_monitor_nodes' subscribers (a pid once per subscription). */
static pthread_mutex_t subs_lock = PTHREAD_MUTEX_INITIALIZER;
static kr_pid *subs;
static size_t nsubs, subs_cap;

void krd_node_event(const char *name, bool up)
{
	pthread_mutex_lock(&subs_lock);
	size_t n = nsubs;
	kr_pid *to = n ? malloc(n * sizeof *to) : NULL;
	if (to)
		memcpy(to, subs, n * sizeof *to);
	pthread_mutex_unlock(&subs_lock);
	for (size_t i = 0; to && i < n; i++)
		(void)krx_remote_deliver(0, to[i], up ? KR_TAG_NODEUP : KR_TAG_NODEDOWN, name,
		                         strlen(name) + 1, NULL);
	free(to);
}

KR_API int kr_monitor_nodes(int on)
{
	kr_pid self = kr_self();
	if (self < 0)
		return (int)self;
	if (!krd_node_running())
		return KR_ENODIST;
	int rc = 0;
	pthread_mutex_lock(&subs_lock);
	size_t w = 0;
	for (size_t i = 0; i < nsubs; i++) /* the gone go, and with on zero, self */
		if (subs[i] != self && kr_is_alive(subs[i]))
			subs[w++] = subs[i];
	nsubs = w;
	if (on) {
		if (nsubs == subs_cap) {
			size_t cap = subs_cap ? subs_cap * 2 : 8;
			kr_pid *v = realloc(subs, cap * sizeof *v);
			if (v)
				subs = v, subs_cap = cap;
		}
		if (nsubs < subs_cap)
			subs[nsubs++] = self;
		else
			rc = KR_ENOMEM;
	}
	pthread_mutex_unlock(&subs_lock);
	return rc;
}

KR_API int kr_monitor_node(const char *node, int on)
{
	kr_pid self = kr_self();
	if (self < 0)
		return (int)self;
	if (!node || !strchr(node, '@') || strlen(node) > KRD_NODE_NAME_MAX)
		return KR_EINVAL;
	if (!krd_node_running())
		return KR_ENODIST;
	if (!strcmp(node, krd_me.name))
		return 0;
	krd_peer *p = krd_peer_find(node, true);
	if (!p)
		return KR_ENOMEM;
	if (!on) {
		(void)krd_track_node_end(&p->track, self);
		return 0;
	}
	krd_track_node(&p->track, self);
	/* Not connected: connect, as Erlang does; a failure fires it. */
	return krd_peer_writer(p) ? 0 : KR_ENOMEM;
}

KR_API kr_ref kr_monitor_name_at(const char *node, const char *name)
{
	kr_pid self = kr_self();
	if (self < 0)
		return self;
	if (!node || !strchr(node, '@') || strlen(node) > KRD_NODE_NAME_MAX || !name || !*name ||
	    strlen(name) > KR_NAME_MAX)
		return KR_EINVAL;
	if (!krd_node_running())
		return KR_ENODIST;
	kr_ref ref = krx_remote_ref_new();
	if (!strcmp(node, krd_me.name)) {
		kr_pid pid = kr_whereis(name);
		if (pid > 0)
			return kr_monitor(pid);
		if (krx_remote_monitor_note(ref, 0) != 0)
			return KR_ENOMEM;
		kr_down_msg d = {.ref = ref, .reason = {.kind = KR_EXIT_NOPROC}};
		(void)krx_remote_signal_in(0, self, KRX_SIG_DOWN, ref, 0, &d, sizeof d);
		return ref;
	}
	krd_peer *p = krd_peer_find(node, true);
	kr_pid anchor = p ? krd_peer_anchor(p) : KR_ENOMEM;
	if (anchor < 0)
		return anchor;
	if (krx_remote_monitor_note(ref, anchor) != 0)
		return KR_ENOMEM;
	krd_track_mon_out(&p->track, ref, self, anchor, false, name);
	uint8_t stack[512];
	krd_buf b;
	krd_buf_init(&b, stack, sizeof stack);
	krd_frame_begin(&b, 0);
	krd_put_tuple(&b, 4);
	krd_put_uint(&b, KRD_MONITOR_P);
	krd_put_pid(&b, self);
	krd_put_atom(&b, name);
	krd_put_ref(&b, ref);
	int rc = krd_frame_send(p, &b); /* connects first; a failure fires the DOWN */
	krd_buf_free(&b);
	return rc ? rc : ref;
}
