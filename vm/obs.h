/*
 * obs.h - the observer (include/krill/observer.h): what its files share.
 *
 *   observer.c     start and stop, the shared state, the supervision tree and
 *                  its root, the acceptor
 *   obs_conn.c     a connection's process: reads requests within their
 *                  deadline, routes them, writes the responses
 *   obs_http.c     the request parser and the response's head (no I/O)
 *   obs_json.c     the response buffer and JSON's strings
 *   obs_api.c      the JSON endpoints but /api/stats and /api/nodes
 *   obs_sample.c   the sampler (once a second) and its ring of 300 samples,
 *                  and /api/stats
 *   obs_metrics.c  GET /metrics, the Prometheus text format
 *   obs_nodes.c    GET /api/nodes, and the registered process that tells
 *                  other nodes where this node's page is
 *
 * Everything a request makes is on its connection process's heap
 * (kr_alloc), which has a limit (KRX_OBS_CONN_HEAP): a request cannot make
 * the observer take memory without bound, and a process that reaches the
 * limit ends alone. The state shared between the observer's processes (the
 * ring of samples, the settings) is krx_obs, under its lock, which is never
 * held across a krill call (a call may yield, and another process on the
 * same thread could then wait for the lock for ever) nor across kr_alloc
 * (which ends a process at its heap limit, lock held).
 */
#ifndef KRX_OBS_H
#define KRX_OBS_H

#include <atomic_ops.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krill.h"

#define KRX_OBS_SAMPLES 300      /* samples kept: 5 minutes at one a second */
#define KRX_OBS_INTERVAL_MS 1000 /* between samples */
#define KRX_OBS_MAX_ROWS 10000   /* rows of /api/processes at most */
#define KRX_OBS_MAX_HEAD 8192    /* a request's line and headers at most (431 past it) */
#define KRX_OBS_MAX_BODY 1024    /* a request's body at most (413 past it) */
#define KRX_OBS_CONN_HEAP ((size_t)64 << 20) /* a connection process's heap limit */
#define KRX_OBS_NAME "krill_observer"        /* the registered process of obs_nodes.c */

/* Message tags between the observer's processes (user tags: the observer
 * is built on the public API). */
enum {
	KRX_OBS_TAG_STARTED = 0x6b6f627300000001ull, /* root -> starter: int, 0 or an error */
	KRX_OBS_TAG_STOP,                             /* kr_observer_stop -> root */
	KRX_OBS_TAG_GO,                               /* acceptor -> connection: int fd */
	KRX_OBS_TAG_WHERE,                            /* another node -> KRX_OBS_NAME: where? */
	KRX_OBS_TAG_HERE                              /* KRX_OBS_NAME -> asker: the URL */
};

/* One sample: the VM's figures over the interval before t_ms. Per
 * scheduler arrays are the ring's (krx_obs.per_sched), nsched each. */
typedef struct krx_obs_sample {
	uint64_t t_ms;          /* ms since the VM started */
	uint64_t interval_ns;   /* since the sample before */
	uint64_t procs;
	uint64_t sent, spawns, restarts, dead_letters; /* in the interval */
	uint64_t heap_bytes, stack_bytes, msg_bytes;   /* at t */
} krx_obs_sample;

/* A scheduler's share of a sample. */
typedef struct krx_obs_sched_sample {
	float util;      /* busy / interval, 0..1 */
	uint32_t runq;   /* at t */
	uint32_t steals; /* in the interval */
} krx_obs_sched_sample;

/* The totals a sample is the difference of (obs_sample.c, obs_metrics.c). */
typedef struct krx_obs_totals {
	uint64_t now_ns;
	uint64_t sent, spawns, restarts, dead_letters, procs;
	uint64_t heap_bytes, stack_bytes, msg_bytes;
	unsigned nsched;
	uint64_t *idle_ns; /* nsched each, the caller's */
	uint64_t *steals;
	uint64_t *runq;
} krx_obs_totals;

/* The observer's shared state (observer.c), under lock. */
typedef struct krx_obs {
	pthread_mutex_t lock;
	/* Settings, fixed while it runs. */
	int allow_kill;
	unsigned max_connections;
	long request_timeout_ms;
	int listen_fd;
	int port;
	char url_host[64];       /* for other nodes' pages: where this one is */
	/* The processes (pids published with release, read with acquire). */
	AO_t root, sup, conns_sup;
	AO_t gen;                /* one per start: a stale sampler stops writing */
	/* The ring (obs_sample.c), nsched per-scheduler entries per sample. */
	unsigned nsched;
	krx_obs_sample *samples;
	krx_obs_sched_sample *per_sched;
	size_t head, count;      /* next to write; how many are valid */
} krx_obs;

extern krx_obs krx_obs_state __attribute__((visibility("hidden")));

/* ---- obs_json.c: a response being made, on the process's heap ---- */

typedef struct krx_obs_buf {
	char *p;
	size_t len, cap;
	bool failed; /* memory was short: what it holds is cut */
} krx_obs_buf;

void krx_obs_buf_free(krx_obs_buf *b);
void krx_obs_put(krx_obs_buf *b, const void *s, size_t n);
void krx_obs_puts(krx_obs_buf *b, const char *s);
void krx_obs_printf(krx_obs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string, quoted and escaped (NULL: null); bytes that are not
 * UTF-8 become U+FFFD, so the output is always valid JSON. */
void krx_obs_json_str(krx_obs_buf *b, const char *s);
/* The same for n bytes at s. */
void krx_obs_json_strn(krx_obs_buf *b, const char *s, size_t n);
/* A JSON number for an unsigned figure, a pid (a number too), a ratio. */
void krx_obs_json_u64(krx_obs_buf *b, uint64_t v);
void krx_obs_json_double(krx_obs_buf *b, double v);
/* {"error": msg} */
void krx_obs_json_error(krx_obs_buf *b, const char *msg);

/* ---- obs_http.c: requests and the heads of responses ---- */

enum krx_obs_method { KRX_OBS_GET = 1, KRX_OBS_HEAD, KRX_OBS_POST, KRX_OBS_OTHER };

typedef struct krx_obs_req {
	int method;              /* enum krx_obs_method */
	const char *path;        /* into the head's buffer: not terminated */
	size_t path_len;
	const char *query;       /* after '?', or NULL */
	size_t query_len;
	size_t content_length;
	bool keep_alive;         /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
} krx_obs_req;

/* Where the head ends in buf (len bytes): the offset past its blank line,
 * or 0 if it has not ended yet. */
size_t krx_obs_http_head_end(const char *buf, size_t len);
/* Parse the head in buf[0..len) (up to and including the blank line) into
 * *rq (pointing into buf): 0, or the status to answer with (400 malformed,
 * 413 a body over KRX_OBS_MAX_BODY, 501 a transfer coding, 505 not
 * HTTP/1.x). */
int krx_obs_http_parse(const char *buf, size_t len, krx_obs_req *rq);
/* The value of name in a query (len bytes at q, NULL: none) as a number
 * in *out: 1; 0 if it is absent; -1 if it is not a whole decimal number
 * (that fits 64 bits). */
int krx_obs_query_u64(const char *q, size_t len, const char *name, uint64_t *out);
/* The reason phrase of an HTTP status. */
const char *krx_obs_http_reason(int status);
/* The head of a response with a body of body_len bytes of type. allow:
 * the Allow header's value (405), or NULL. */
void krx_obs_http_head(krx_obs_buf *b, int status, const char *type, size_t body_len,
                       bool keep_alive, const char *allow);

/* ---- the endpoints: each fills body (JSON or text) and returns a status ---- */

int krx_obs_api_processes(krx_obs_buf *body);
int krx_obs_api_process(const krx_obs_req *rq, krx_obs_buf *body);
int krx_obs_api_trees(krx_obs_buf *body);
int krx_obs_api_kill(const krx_obs_req *rq, krx_obs_buf *body);
int krx_obs_api_stats(const krx_obs_req *rq, krx_obs_buf *body);
int krx_obs_api_nodes(krx_obs_buf *body);
int krx_obs_metrics(krx_obs_buf *body);
/* Forget obs_api.c's snapshot of reductions (the VM stops). */
void krx_obs_api_free(void);

/* ---- obs_sample.c ---- */

/* The totals now into *t (its arrays, nsched each, the caller's). */
void krx_obs_totals_get(krx_obs_totals *t);
/* The sampler's process (a child of the observer's supervisor). */
void krx_obs_sampler_main(void *arg);
/* Empty the ring (observer.c, at a start, under the lock). */
void krx_obs_ring_reset(krx_obs *o);

/* ---- obs_conn.c ---- */

/* A connection's process (a child of the connections' supervisor): it
 * waits for its descriptor (KRX_OBS_TAG_GO), then serves it. */
void krx_obs_conn_main(void *arg);
/* Write a whole response, small, to fd without waiting (the acceptor's
 * 503): best effort. */
void krx_obs_refuse(int fd, int status, const char *msg);

/* ---- obs_nodes.c ---- */

/* The registered process that answers other nodes' KRX_OBS_TAG_WHERE. */
void krx_obs_where_main(void *arg);

/* ---- observer.c ---- */

/* The VM stops (vm.c, once no process is left): forget the observer. */
void krx_observer_vm_stopped(void);
/* Is pid one of the observer's own processes' root or tree? (A process
 * may not stop the observer from inside it.) */
bool krx_obs_is_mine(kr_pid pid);

#endif
