/*
 * obs_conn.c - a connection to the observer: one process, which reads a
 * request, answers it, and reads the next while the client keeps the
 * connection alive (see obs.h).
 *
 * Bounds, so that no client can hold more than its own process: a request
 * (line, headers and body) must arrive whole within request_timeout_ms of
 * the moment the process starts waiting for it (408 after, or a silent
 * close if nothing came: an idle kept-alive connection), its head within
 * KRX_OBS_MAX_HEAD bytes (431), its body within KRX_OBS_MAX_BODY (413); a
 * response must be taken by the client within the same time, or the
 * connection is closed. Every error closes the connection after its
 * answer. The process's heap has a limit (KRX_OBS_CONN_HEAP), and its
 * descriptor is its own (given by the acceptor), closed however it ends.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "obs.h"
#include "obs_assets.h"

/* The time left until deadline (krx_now_ns), in ms for a krill call:
 * at least 1 while any is left, 0 when none is. */
static long left_ms(uint64_t deadline)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (now >= deadline)
		return 0;
	return (long)((deadline - now + 999999) / 1000000);
}

static uint64_t deadline_in(long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000u;
}

/* Write head and body: false if the client did not take them in time. */
static bool send_response(int fd, int status, const char *type, const krx_obs_buf *body,
                          bool keep_alive, bool head_only, const char *allow, long timeout_ms)
{
	krx_obs_buf out = { 0 };
	size_t blen = body->len;
	krx_obs_http_head(&out, status, type, blen, keep_alive, allow);
	/* One write for a head and a body of up to 64 KiB: two small writes
	 * would each be a segment, and the client's delayed ACK of the first
	 * (with Nagle's algorithm, were it on) would hold the second. */
	bool one = !head_only && blen && blen <= 64 << 10;
	if (one)
		krx_obs_put(&out, body->p, blen);
	bool ok = !out.failed;
	if (ok && out.len && kr_write(fd, out.p, out.len, timeout_ms) < 0)
		ok = false;
	if (ok && !one && !head_only && blen && kr_write(fd, body->p, blen, timeout_ms) < 0)
		ok = false;
	krx_obs_buf_free(&out);
	return ok;
}

/* An error's answer, {"error": msg}; the connection closes after it. */
static void send_error(int fd, int status, const char *msg, long timeout_ms)
{
	krx_obs_buf body = { 0 };
	krx_obs_json_error(&body, msg);
	send_response(fd, status, "application/json", &body, false, false, NULL, timeout_ms);
	krx_obs_buf_free(&body);
}

void krx_obs_refuse(int fd, int status, const char *msg)
{
	char buf[512];
	char body[128];
	int blen = snprintf(body, sizeof body, "{\"error\": \"%s\"}", msg);
	int n = snprintf(buf, sizeof buf,
	                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
	                 status, krx_obs_http_reason(status), blen, body);
	if (n > 0 && (size_t)n < sizeof buf)
		(void)kr_write(fd, buf, (size_t)n, 0);
}

static bool path_is(const krx_obs_req *rq, const char *p)
{
	size_t n = strlen(p);
	return rq->path_len == n && !memcmp(rq->path, p, n);
}

/* What a request is answered with. */
typedef struct answer {
	int status;
	const char *type;
	const char *allow; /* 405's Allow */
	krx_obs_buf body;
	const unsigned char *raw; /* an asset's bytes, instead of body */
	size_t raw_len;
} answer;

static const char JSON[] = "application/json";

/* An endpoint of the API, with the methods it takes. */
typedef struct route {
	const char *path;
	int method; /* KRX_OBS_GET (HEAD too) or KRX_OBS_POST */
	int (*fn)(const krx_obs_req *rq, krx_obs_buf *body);
	const char *type;
} route;

static int r_stats(const krx_obs_req *rq, krx_obs_buf *b) { return krx_obs_api_stats(rq, b); }
static int r_procs(const krx_obs_req *rq, krx_obs_buf *b) { (void)rq; return krx_obs_api_processes(b); }
static int r_proc(const krx_obs_req *rq, krx_obs_buf *b) { return krx_obs_api_process(rq, b); }
static int r_trees(const krx_obs_req *rq, krx_obs_buf *b) { (void)rq; return krx_obs_api_trees(b); }
static int r_nodes(const krx_obs_req *rq, krx_obs_buf *b) { (void)rq; return krx_obs_api_nodes(b); }
static int r_kill(const krx_obs_req *rq, krx_obs_buf *b) { return krx_obs_api_kill(rq, b); }
static int r_metrics(const krx_obs_req *rq, krx_obs_buf *b) { (void)rq; return krx_obs_metrics(b); }

static const route routes[] = {
	{ "/api/stats", KRX_OBS_GET, r_stats, JSON },
	{ "/api/processes", KRX_OBS_GET, r_procs, JSON },
	{ "/api/process", KRX_OBS_GET, r_proc, JSON },
	{ "/api/trees", KRX_OBS_GET, r_trees, JSON },
	{ "/api/nodes", KRX_OBS_GET, r_nodes, JSON },
	{ "/api/kill", KRX_OBS_POST, r_kill, JSON },
	{ "/metrics", KRX_OBS_GET, r_metrics, "text/plain; version=0.0.4; charset=utf-8" },
};

static bool method_ok(int want, int method)
{
	return want == KRX_OBS_GET ? method == KRX_OBS_GET || method == KRX_OBS_HEAD
	                           : method == want;
}

static void route_request(const krx_obs_req *rq, answer *a)
{
	a->type = JSON;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const route *r = &routes[i];
		if (!path_is(rq, r->path))
			continue;
		if (!method_ok(r->method, rq->method)) {
			a->status = 405;
			a->allow = r->method == KRX_OBS_GET ? "GET, HEAD" : "POST";
			krx_obs_json_error(&a->body, "method not allowed");
			return;
		}
		a->type = r->type;
		a->status = r->fn(rq, &a->body);
		return;
	}
	krx_obs_asset asset;
	if (krx_obs_asset_find(rq->path, rq->path_len, &asset)) {
		if (!method_ok(KRX_OBS_GET, rq->method)) {
			a->status = 405;
			a->allow = "GET, HEAD";
			krx_obs_json_error(&a->body, "method not allowed");
			return;
		}
		a->status = 200;
		a->type = asset.content_type;
		a->raw = asset.data;
		a->raw_len = asset.len;
		return;
	}
	a->status = 404;
	krx_obs_json_error(&a->body, "not found");
}

/* Answer one parsed request; false: close the connection. */
static bool answer_request(int fd, const krx_obs_req *rq, long timeout_ms)
{
	answer a = { 0 };
	route_request(rq, &a);
	if (a.body.failed) {
		krx_obs_buf_free(&a.body);
		send_error(fd, 500, "out of memory", timeout_ms);
		return false;
	}
	bool keep = rq->keep_alive && a.status < 400;
	bool ok;
	if (a.raw) {
		krx_obs_buf view = { .p = (char *)a.raw, .len = a.raw_len };
		ok = send_response(fd, a.status, a.type, &view, keep, rq->method == KRX_OBS_HEAD, NULL,
		                   timeout_ms);
	} else {
		ok = send_response(fd, a.status, a.type, &a.body, keep, rq->method == KRX_OBS_HEAD,
		                   a.allow, timeout_ms);
	}
	krx_obs_buf_free(&a.body);
	return ok && keep;
}

/* Read into buf (have bytes there already, cap in all) until a whole head
 * is there: its length, or a status (negative) to answer with: -408 (the
 * deadline passed, something came), -431 (the head is too long), or -1
 * (the client closed, or nothing came: close without a word). */
static long read_head(int fd, char *buf, size_t *have, size_t cap, uint64_t deadline)
{
	size_t end;
	while (!(end = krx_obs_http_head_end(buf, *have))) {
		if (*have >= cap)
			return -431;
		long ms = left_ms(deadline);
		ssize_t n = ms ? kr_read(fd, buf + *have, cap - *have, ms) : KR_ETIMEDOUT;
		if (n == KR_ETIMEDOUT)
			return *have ? -408 : -1;
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
	return (long)end;
}

/* Skip a body of len bytes, of which have (after the head) are in buf
 * already: true once it is read. */
static bool skip_body(int fd, char *buf, size_t cap, size_t *have, size_t head, size_t len,
                      uint64_t deadline)
{
	size_t got = *have - head;
	if (got >= len) {
		/* Keep what follows (a pipelined request) at the front. */
		memmove(buf, buf + head + len, got - len);
		*have = got - len;
		return true;
	}
	size_t left = len - got;
	*have = 0;
	while (left) {
		long ms = left_ms(deadline);
		ssize_t n = ms ? kr_read(fd, buf, left < cap ? left : cap, ms) : KR_ETIMEDOUT;
		if (n <= 0)
			return false;
		left -= (size_t)n;
	}
	return true;
}

static void serve(int fd, long timeout_ms)
{
	size_t cap = KRX_OBS_MAX_HEAD;
	char *buf = kr_alloc(cap);
	if (!buf)
		return;
	size_t have = 0;
	for (;;) {
		uint64_t deadline = deadline_in(timeout_ms);
		long end = read_head(fd, buf, &have, cap, deadline);
		if (end == -1)
			break;
		if (end < 0) {
			send_error(fd, (int)-end,
			           end == -408 ? "request timed out" : "request header fields too large",
			           timeout_ms);
			break;
		}
		krx_obs_req rq;
		int status = krx_obs_http_parse(buf, (size_t)end, &rq);
		if (status) {
			send_error(fd, status, krx_obs_http_reason(status), timeout_ms);
			break;
		}
		/* The request's parts point into buf: answer before the body
		 * (which we do not need) is read over them. */
		bool keep = answer_request(fd, &rq, timeout_ms);
		if (!keep || !skip_body(fd, buf, cap, &have, (size_t)end, rq.content_length, deadline))
			break;
	}
	kr_free(buf);
}

void krx_obs_conn_main(void *arg)
{
	(void)arg;
	kr_msg *m;
	/* The acceptor gives us the descriptor, then says so. */
	if (kr_recv_tag(&m, KRX_OBS_TAG_GO, 10000))
		return;
	int fd = -1;
	if (m->len == sizeof fd)
		memcpy(&fd, m->data, sizeof fd);
	kr_msg_free(m);
	if (fd < 0)
		return;
	/* A setting, written before the observer's processes were spawned
	 * (the spawn orders it) and not again while they run. */
	long timeout_ms = krx_obs_state.request_timeout_ms;
	serve(fd, timeout_ms);
	kr_close(fd);
}
