/*
 * krill/observer.h - the observer: a live page of the running VM, a small
 * JSON API behind it, and /metrics in the Prometheus text format, served
 * over HTTP by krill processes themselves (docs/observer.md).
 *
 * Included by krill.h; a program includes krill.h only.
 *
 * Off unless started. Once started, the observer is a supervision tree of
 * its own ("krill observer", under a root process of that name): an
 * acceptor on the listening socket, a process per connection (under a
 * simple_one_for_one supervisor, at most max_connections of them), a
 * sampler that records the VM's figures once a second (the last 300 kept),
 * and a process registered as "krill_observer" that tells other krill
 * nodes where this page is (GET /api/nodes). They are bounded and
 * supervised like any other processes: a request that is garbage, too big
 * or too slow ends its own connection (with 400, 413, 431 or 408), a
 * connection beyond the limit gets 503, and none of it touches the rest of
 * the program.
 *
 * The endpoints (docs/observer.md, "The API"): GET / and the page's files,
 * GET /api/stats?since=T, /api/processes, /api/process?pid=N, /api/trees,
 * /api/nodes, POST /api/kill?pid=N (only with allow_kill), GET /metrics.
 *
 * No authentication: anyone who can reach the address sees every process
 * (and, with allow_kill, may kill any). The default address is loopback.
 */
#ifndef KRILL_OBSERVER_H
#define KRILL_OBSERVER_H

#include <stdint.h>

#include "../krill.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The observer's settings. Zeroed fields take their defaults. */
typedef struct kr_observer_opts {
	const char *addr;          /* the address to listen on, an IPv4 or IPv6 literal
	                            * ("0.0.0.0" for every interface); NULL = "127.0.0.1" */
	uint16_t port;             /* 0 = any free port (kr_observer_port says which) */
	int allow_kill;            /* nonzero: POST /api/kill sends the exit signal kill
	                            * (else it answers 403) */
	unsigned max_connections;  /* connections served at once; 0 = 64. One more gets
	                            * 503 and is closed */
	long request_timeout_ms;   /* a request must arrive whole within this, counted
	                            * from when the connection starts waiting for it
	                            * (408 and close after); 0 = 10,000 */
} kr_observer_opts;

/*
 * Start the observer with these settings (NULL: every default), listening
 * before this returns. 0; KR_EEXIST (an observer runs already, or is
 * stopping); KR_EINVAL (addr not an address literal, request_timeout_ms
 * negative); KR_EIO (the socket could not be made, bound or listened on:
 * errno says why, read at once, before any other call); KR_ESTOPPED (no
 * VM runs); KR_ENOMEM; or an error of its processes' start (kr_spawn's,
 * KR_ESTART). Safe from host threads and processes (not from the
 * observer's own processes).
 */
KR_API int kr_observer_start_opts(const kr_observer_opts *opts);

/* kr_observer_start_opts with addr and port (addr NULL: 127.0.0.1; port 0:
 * any free port), and the other settings' defaults. Same returns. */
KR_API int kr_observer_start(const char *addr, uint16_t port);

/* The port the observer listens on (> 0), or KR_ESTOPPED if no observer
 * runs. Safe from any thread. */
KR_API int kr_observer_port(void);

/*
 * Stop the observer: its processes end (connections are closed where they
 * are) and the socket is closed; returns once they have, so that it may be
 * started again at once, on the same port too. 0, or KR_ESTOPPED if no
 * observer runs (or another call is stopping it). kr_vm_stop stops it as
 * well. Safe from host threads and processes (not from the observer's own
 * processes: KR_EINVAL).
 */
KR_API int kr_observer_stop(void);

#ifdef __cplusplus
}
#endif

#endif
