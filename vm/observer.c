/*
 * observer.c - the observer's life (include/krill/observer.h): start and
 * stop, the state its processes share (obs.h), its supervision tree, and
 * the acceptor.
 *
 * The tree, all ordinary krill processes:
 *
 *   "krill observer" (root: traps exits, owns the listening socket)
 *     supervisor (one_for_one, at most 5 restarts in 10 s)
 *       sampler       (obs_sample.c) the figures, once a second
 *       where         (obs_nodes.c)  registered as "krill_observer"
 *       connections   a simple_one_for_one supervisor of temporary
 *                     children, one per connection (obs_conn.c)
 *       acceptor      accepts, and hands each connection to a new child
 *
 * The root is not linked to whoever started the observer (a process that
 * starts it and ends does not take it along). kr_observer_stop asks the
 * root to stop; the root stops its supervisor (an exit signal shutdown,
 * from its parent: an orderly stop, children in reverse order), closes the
 * socket and ends. A supervisor that gives up (its children crash too
 * often) ends the root too. Since a root may also be killed (kill is for
 * everyone, and /api/kill), "running" means "the root is alive", asked
 * anew each time.
 *
 * Start and stop must wait for processes, which only a process can do: a
 * host thread's call runs in a proxy process (proxy.h), a process's runs
 * in the caller. One at a time: `busy` holds the pid of the process doing
 * one; a call that finds it held by a process that has since died takes it
 * over (a starter killed half-way must not bar every later start).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mi.h"
#include "obs.h"
#include "proxy.h"
#include "sched.h"

krx_obs krx_obs_state = { .lock = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1 };

static AO_t busy; /* the pid of the process starting or stopping the observer, or 0 */

#define DEFAULT_MAX_CONNECTIONS 64
#define DEFAULT_REQUEST_TIMEOUT_MS 10000
#define STOP_WAIT_MS 10000 /* a root that has not stopped by then is killed */

/* ---- the acceptor ---- */

/* Hand connection fd to a new child of the connections' supervisor, or
 * refuse it (503) when max_connections are served already. */
static void admit(int fd)
{
	krx_obs *o = &krx_obs_state;
	/* Acquire: pairs with the supervisor's release of its pid. */
	kr_pid conns = (kr_pid)AO_load_acquire(&o->conns_sup);
	kr_sup_counts c;
	if (kr_sup_count_children_timeout(conns, &c, 1000) || c.active >= o->max_connections) {
		krx_obs_refuse(fd, 503, "too many connections");
		kr_close(fd);
		return;
	}
	kr_pid child = kr_sup_start_child_timeout(conns, NULL, NULL, 1000);
	if (child < 0) {
		krx_obs_refuse(fd, 503, "no process for the connection");
		kr_close(fd);
		return;
	}
	/* Answers go out as they are written: a response's last segment must
	 * not wait for the ACK of the one before (Nagle's algorithm against
	 * the client's delayed ACK: 40 ms a request). */
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (kr_fd_give(fd, child)) { /* it has ended already */
		kr_close(fd);
		return;
	}
	kr_send(child, KRX_OBS_TAG_GO, &fd, sizeof fd);
}

static void acceptor_main(void *arg)
{
	(void)arg;
	int lfd = krx_obs_state.listen_fd;
	for (;;) {
		int fd = kr_accept(lfd, KR_INFINITY);
		if (fd >= 0) {
			admit(fd);
			continue;
		}
		/* Out of descriptors (EMFILE), a connection reset before we took
		 * it: let the moment pass. The socket's close ends us anyway. */
		kr_sleep(50);
	}
}

/* ---- the connections' supervisor ---- */

static void conns_sup_main(void *arg)
{
	(void)arg;
	/* Release: the acceptor that reads the pid finds a supervisor behind it
	 * (it started after us: we report to our parent from kr_sup_run). */
	AO_store_release(&krx_obs_state.conns_sup, (AO_t)kr_self());
	kr_sup_flags f = { .strategy = KR_SIMPLE_ONE_FOR_ONE, .max_restarts = 1000, .period_ms = 1000 };
	kr_child_spec conn = {
		.id = "connection",
		.start = krx_obs_conn_main,
		.restart = KR_TEMPORARY,
		.shutdown = KR_SHUTDOWN_BRUTAL,
		.max_heap = KRX_OBS_CONN_HEAP,
		.name = "krill observer connection",
	};
	kr_sup_run(&f, &conn, 1);
}

/* ---- the root ---- */

/* Wait for sup's exit message (it is linked to us, and we trap exits). */
static void wait_sup_end(kr_pid sup)
{
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY))
			continue;
		const kr_exit_msg *e = kr_msg_exit(m);
		bool done = e && e->from == sup;
		kr_msg_free(m);
		if (done)
			return;
	}
}

static void root_main(void *arg)
{
	kr_pid starter = (kr_pid)(intptr_t)arg;
	krx_obs *o = &krx_obs_state;
	kr_trap_exit(1);
	static const kr_child_spec specs[] = {
		{ .id = "sampler", .start = krx_obs_sampler_main, .shutdown = KR_SHUTDOWN_BRUTAL,
		  .name = "krill observer sampler" },
		{ .id = "where", .start = krx_obs_where_main, .shutdown = KR_SHUTDOWN_BRUTAL,
		  .name = "krill observer where" },
		{ .id = "connections", .start = conns_sup_main, .type = KR_SUPERVISOR,
		  .shutdown = KR_SHUTDOWN_INFINITY, .name = "krill observer connections" },
		{ .id = "acceptor", .start = acceptor_main, .shutdown = KR_SHUTDOWN_BRUTAL,
		  .name = "krill observer acceptor" },
	};
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 5, .period_ms = 10000 };
	kr_pid sup = kr_sup_start_link(&f, specs, sizeof specs / sizeof specs[0], "krill_observer_sup");
	int rc = sup < 0 ? (int)sup : 0;
	if (!rc)
		AO_store_release(&o->sup, (AO_t)sup); /* release: as conns_sup */
	kr_send(starter, KRX_OBS_TAG_STARTED, &rc, sizeof rc);
	while (!rc) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY))
			continue;
		const kr_exit_msg *e = kr_msg_exit(m);
		bool stop = m->tag == KRX_OBS_TAG_STOP;
		bool sup_ended = e && e->from == sup;
		kr_msg_free(m);
		if (stop) {
			/* From its parent: an orderly stop of the whole tree. */
			kr_exit_sig(sup, KR_EXIT_SHUTDOWN);
			wait_sup_end(sup);
			break;
		}
		if (sup_ended)
			break; /* it gave up */
	}
	kr_close(o->listen_fd);
}

/* ---- start and stop, in a process ---- */

/* Take `busy` for the calling process (pid me): false if another live
 * process has it. */
static bool take_busy(kr_pid me)
{
	for (;;) {
		/* Relaxed: the CAS below decides; the state it guards is read
		 * under the lock or through acquires of its own. */
		kr_pid cur = (kr_pid)AO_load(&busy);
		if (cur && kr_is_alive(cur))
			return false;
		/* Full: the state a dead holder left is ours to see. */
		if (AO_compare_and_swap_full(&busy, (AO_t)cur, (AO_t)me))
			return true;
	}
}

static void drop_busy(kr_pid me)
{
	/* Release: what we did is visible to the next holder. */
	(void)AO_compare_and_swap_release(&busy, (AO_t)me, 0);
}

static bool running(void)
{
	/* Acquire: pairs with the starter's release of root. */
	kr_pid root = (kr_pid)AO_load_acquire(&krx_obs_state.root);
	return root && kr_is_alive(root);
}

/* What a start is asked, and answers (a proxy copies both). */
typedef struct start_req {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int allow_kill;
	unsigned max_connections;
	long request_timeout_ms;
	char url_host[64];
} start_req;

typedef struct start_res {
	int rc;
	int err; /* errno, for KR_EIO */
} start_res;

/* A listening socket on rq's address, owned by the caller: the descriptor,
 * or KR_EIO with *err set. */
static int listen_on(const start_req *rq, int *err)
{
	int fd = socket(rq->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = errno;
		return KR_EIO;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* SOMAXCONN: a burst of connections waits in the kernel's queue for
	 * the acceptor (which refuses those past the limit at once) instead of
	 * having its SYNs dropped and retried a second later. */
	if (bind(fd, (const struct sockaddr *)&rq->addr, rq->addrlen) || listen(fd, SOMAXCONN)) {
		*err = errno;
		close(fd);
		return KR_EIO;
	}
	if (kr_fd_own(fd)) {
		close(fd);
		*err = ENOMEM;
		return KR_EIO;
	}
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* The ring for this VM's schedulers: made at the first start, kept until
 * the VM stops (a stale sampler may still look at it). Under the lock. */
static int ring_ready(krx_obs *o)
{
	if (o->samples)
		return 0;
	unsigned n = krx_sched_count();
	o->samples = krx_calloc_raw(KRX_OBS_SAMPLES, sizeof *o->samples);
	o->per_sched = krx_calloc_raw((size_t)KRX_OBS_SAMPLES * n, sizeof *o->per_sched);
	if (!o->samples || !o->per_sched) {
		krx_free_raw(o->samples);
		krx_free_raw(o->per_sched);
		o->samples = NULL;
		o->per_sched = NULL;
		return KR_ENOMEM;
	}
	o->nsched = n;
	return 0;
}

static int is_started(const kr_msg *m, void *ctx)
{
	kr_ref ref = *(const kr_ref *)ctx;
	const kr_down_msg *d = kr_msg_down(m);
	return m->tag == KRX_OBS_TAG_STARTED || (d && d->ref == ref);
}

/* Spawn the root for listening socket fd and wait until its tree runs.
 * *given: fd is the root's now (closed by it, or by its end). */
static int start_root(int fd, kr_pid me, bool *given)
{
	krx_obs *o = &krx_obs_state;
	kr_ref ref;
	kr_spawn_opts so = { .name = "krill observer", .monitor = &ref };
	kr_pid root = kr_spawn_opt(root_main, (void *)(intptr_t)me, &so);
	if (root < 0)
		return (int)root;
	int rc = kr_fd_give(fd, root);
	if (rc) {
		kr_exit_sig(root, KR_EXIT_KILL);
		kr_demonitor(ref, 1);
		return rc;
	}
	*given = true;
	kr_msg *m;
	kr_recv_match(&m, is_started, &ref, KR_INFINITY);
	rc = KR_ESTART; /* it ended first */
	if (m->tag == KRX_OBS_TAG_STARTED && m->len == sizeof rc)
		memcpy(&rc, m->data, sizeof rc);
	kr_msg_free(m);
	kr_demonitor(ref, 1);
	if (!rc)
		AO_store_release(&o->root, (AO_t)root); /* release: the state is set up */
	return rc;
}

static int start_here(const start_req *rq, int *err)
{
	krx_obs *o = &krx_obs_state;
	kr_pid me = kr_self();
	if (!take_busy(me))
		return KR_EEXIST;
	int rc = KR_EEXIST;
	if (running())
		goto out;
	int fd = rc = listen_on(rq, err);
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&o->lock);
	rc = ring_ready(o);
	if (!rc) {
		krx_obs_ring_reset(o);
		o->allow_kill = rq->allow_kill;
		o->max_connections = rq->max_connections;
		o->request_timeout_ms = rq->request_timeout_ms;
		o->listen_fd = fd;
		o->port = bound_port(fd);
		memcpy(o->url_host, rq->url_host, sizeof o->url_host);
		AO_store(&o->root, 0);
		AO_store(&o->sup, 0);
		AO_store(&o->conns_sup, 0);
		AO_store(&o->gen, AO_load(&o->gen) + 1); /* relaxed: under the lock */
	}
	pthread_mutex_unlock(&o->lock);
	bool given = false;
	if (!rc)
		rc = start_root(fd, me, &given);
	if (rc && !given)
		kr_close(fd);
out:
	drop_busy(me);
	return rc;
}

static int is_down(const kr_msg *m, void *ctx)
{
	const kr_down_msg *d = kr_msg_down(m);
	return d && d->ref == *(const kr_ref *)ctx;
}

static int stop_here(void)
{
	krx_obs *o = &krx_obs_state;
	kr_pid me = kr_self();
	if (krx_obs_is_mine(me))
		return KR_EINVAL;
	if (!take_busy(me))
		return KR_ESTOPPED;
	int rc = KR_ESTOPPED;
	/* Acquire: pairs with the starter's release. */
	kr_pid root = (kr_pid)AO_load_acquire(&o->root);
	if (!root || !kr_is_alive(root))
		goto out;
	kr_ref ref = kr_monitor(root);
	kr_send(root, KRX_OBS_TAG_STOP, NULL, 0);
	kr_msg *m;
	if (kr_recv_match(&m, is_down, &ref, STOP_WAIT_MS) == KR_ETIMEDOUT) {
		kr_exit_sig(root, KR_EXIT_KILL);
		kr_recv_match(&m, is_down, &ref, KR_INFINITY);
	}
	kr_msg_free(m);
	AO_store(&o->root, 0); /* relaxed: busy's release publishes it */
	rc = 0;
out:
	drop_busy(me);
	return rc;
}

/* The same, run by a host thread's proxy. */
static int start_proxied(const void *arg, krx_proxy_out *out)
{
	start_res res = { 0 };
	res.rc = start_here(arg, &res.err);
	int rc = krx_proxy_put(out, &res, sizeof res);
	return rc ? rc : 0;
}

static int stop_proxied(const void *arg, krx_proxy_out *out)
{
	(void)arg;
	(void)out;
	return stop_here();
}

/* ---- the API ---- */

/* Parse addr (NULL: loopback) and port into rq: 0 or KR_EINVAL. */
static int resolve(const char *addr, uint16_t port, start_req *rq)
{
	if (!addr)
		addr = "127.0.0.1";
	struct sockaddr_in *v4 = (struct sockaddr_in *)&rq->addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&rq->addr;
	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		rq->addrlen = sizeof *v4;
		bool any = v4->sin_addr.s_addr == htonl(INADDR_ANY);
		snprintf(rq->url_host, sizeof rq->url_host, "%s", any ? "" : addr);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		rq->addrlen = sizeof *v6;
		bool any = !memcmp(&v6->sin6_addr, &in6addr_any, sizeof in6addr_any);
		snprintf(rq->url_host, sizeof rq->url_host, any ? "%s" : "[%s]", any ? "" : addr);
		return 0;
	}
	return KR_EINVAL;
}

KR_API int kr_observer_start_opts(const kr_observer_opts *opts)
{
	static const kr_observer_opts none;
	if (!opts)
		opts = &none;
	start_req rq;
	memset(&rq, 0, sizeof rq);
	if (opts->request_timeout_ms < 0 || resolve(opts->addr, opts->port, &rq))
		return KR_EINVAL;
	rq.allow_kill = opts->allow_kill != 0;
	rq.max_connections = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
	rq.request_timeout_ms =
	        opts->request_timeout_ms ? opts->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
	if (!krx_sched_running())
		return KR_ESTOPPED;
	start_res res = { 0 };
	if (krx_task_self()) {
		res.rc = start_here(&rq, &res.err);
	} else {
		krx_proxy_out out;
		int rc = krx_proxy_run(start_proxied, &rq, sizeof rq, KR_INFINITY, &out);
		if (rc)
			return rc;
		if (out.len == sizeof res)
			memcpy(&res, out.data, sizeof res);
		krx_free_raw(out.data);
	}
	if (res.rc == KR_EIO)
		errno = res.err; /* last: nothing may touch errno after it */
	return res.rc;
}

KR_API int kr_observer_start(const char *addr, uint16_t port)
{
	kr_observer_opts o = { .addr = addr, .port = port };
	return kr_observer_start_opts(&o);
}

KR_API int kr_observer_port(void)
{
	if (!krx_sched_running() || !running())
		return KR_ESTOPPED;
	pthread_mutex_lock(&krx_obs_state.lock);
	int port = krx_obs_state.port;
	pthread_mutex_unlock(&krx_obs_state.lock);
	return port;
}

KR_API int kr_observer_stop(void)
{
	if (!krx_sched_running())
		return KR_ESTOPPED;
	if (krx_task_self())
		return stop_here();
	krx_proxy_out out;
	int none = 0; /* the proxy copies its argument: give it one */
	int rc = krx_proxy_run(stop_proxied, &none, sizeof none, KR_INFINITY, &out);
	if (!rc)
		krx_free_raw(out.data);
	return rc;
}

bool krx_obs_is_mine(kr_pid pid)
{
	krx_obs *o = &krx_obs_state;
	/* Acquire: pairs with the releases that published them. */
	kr_pid root = (kr_pid)AO_load_acquire(&o->root);
	kr_pid sup = (kr_pid)AO_load_acquire(&o->sup);
	kr_pid conns = (kr_pid)AO_load_acquire(&o->conns_sup);
	if (!root)
		return false;
	if (pid == root || pid == sup)
		return true;
	kr_proc_info info;
	return kr_info(pid, &info) == 0 && info.supervisor &&
	       (info.supervisor == sup || info.supervisor == conns);
}

void krx_observer_vm_stopped(void)
{
	krx_obs *o = &krx_obs_state;
	pthread_mutex_lock(&o->lock);
	krx_free_raw(o->samples);
	krx_free_raw(o->per_sched);
	o->samples = NULL;
	o->per_sched = NULL;
	o->nsched = 0;
	o->head = o->count = 0;
	o->listen_fd = -1;
	AO_store(&o->root, 0);
	AO_store(&o->sup, 0);
	AO_store(&o->conns_sup, 0);
	krx_obs_api_free();
	pthread_mutex_unlock(&o->lock);
	AO_store(&busy, 0);
}
