/*
 * test_observer.c - the observer (include/krill/observer.h, vm/observer.c
 * and vm/obs_*.c), driven over plain sockets by a small HTTP client on the
 * test thread: every endpoint's JSON, checked by a strict parser for the
 * contract's fields and for live values (a process spawned here appears
 * with its name, a tree built here with its restarts, a kill refused and
 * then done), /metrics checked as the Prometheus text format by a strict
 * checker, the bad requests (garbage, huge heads and bodies, slow ones,
 * more connections than allowed, wrong methods) answered as they should be
 * while the program goes on, and the observer's life (start, stop, start
 * again, port 0, twice, from a process, with the VM's stop).
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist_util.h"
#include "krill.h"
#include "vm_util.h"

static void obs_fini(void)
{
	dist_kill_all();
	vm_fini();
}

TestSuite(observer, .fini = obs_fini, .timeout = 120);

/* ---- a strict little JSON parser ---- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
	int type;
	bool b;
	double num;
	char *str;          /* J_STR */
	struct jv **items;  /* J_ARR elements, J_OBJ values */
	char **keys;        /* J_OBJ */
	size_t n;
	struct jv *all;     /* every node of a parse, for json_free */
} jv;

typedef struct jparse {
	const char *s, *end;
	jv *all;
	bool bad;
} jparse;

static jv *j_new(jparse *p, int type)
{
	jv *v = calloc(1, sizeof *v);
	cr_assert(v);
	v->type = type;
	v->all = p->all;
	p->all = v;
	return v;
}

static void j_ws(jparse *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static jv *j_value(jparse *p, int depth);

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	                                      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string (at its quote): its bytes, escapes decoded, UTF-8 checked. */
static char *j_string(jparse *p)
{
	if (p->s >= p->end || *p->s != '"')
		return p->bad = true, NULL;
	p->s++;
	size_t cap = 64, n = 0;
	char *out = malloc(cap);
	while (p->s < p->end && *p->s != '"') {
		if (n + 8 >= cap)
			out = realloc(out, cap *= 2);
		unsigned char c = (unsigned char)*p->s;
		if (c < 0x20) {
			p->bad = true;
			break;
		}
		if (c != '\\') {
			out[n++] = (char)c;
			p->s++;
			continue;
		}
		if (++p->s >= p->end) {
			p->bad = true;
			break;
		}
		char e = *p->s++;
		const char *simple = strchr("\"\\/bfnrt", e);
		if (e && simple) {
			out[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
			continue;
		}
		if (e != 'u' || p->end - p->s < 4) {
			p->bad = true;
			break;
		}
		unsigned cp = 0;
		for (int i = 0; i < 4; i++) {
			int h = hexval(p->s[i]);
			if (h < 0)
				p->bad = true;
			cp = cp << 4 | (unsigned)(h < 0 ? 0 : h);
		}
		p->s += 4;
		if (cp < 0x80) {
			out[n++] = (char)cp;
		} else if (cp < 0x800) {
			out[n++] = (char)(0xc0 | cp >> 6);
			out[n++] = (char)(0x80 | (cp & 0x3f));
		} else {
			out[n++] = (char)(0xe0 | cp >> 12);
			out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[n++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	if (p->s >= p->end)
		p->bad = true;
	else
		p->s++;
	out[n] = 0;
	/* Valid UTF-8 only. */
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)out[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (!len || i + len > n)
			return p->bad = true, out;
		for (size_t k = 1; k < len; k++)
			if (((unsigned char)out[i + k] >> 6) != 2)
				return p->bad = true, out;
		i += len;
	}
	return out;
}

static jv *j_number(jparse *p)
{
	const char *s = p->s;
	if (s < p->end && *s == '-')
		s++;
	if (s >= p->end || !isdigit((unsigned char)*s))
		return p->bad = true, NULL;
	if (*s == '0' && s + 1 < p->end && isdigit((unsigned char)s[1]))
		return p->bad = true, NULL; /* no leading zeros */
	while (s < p->end && isdigit((unsigned char)*s))
		s++;
	if (s < p->end && *s == '.') {
		s++;
		if (s >= p->end || !isdigit((unsigned char)*s))
			return p->bad = true, NULL;
		while (s < p->end && isdigit((unsigned char)*s))
			s++;
	}
	if (s < p->end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < p->end && (*s == '+' || *s == '-'))
			s++;
		if (s >= p->end || !isdigit((unsigned char)*s))
			return p->bad = true, NULL;
		while (s < p->end && isdigit((unsigned char)*s))
			s++;
	}
	char buf[64];
	size_t n = (size_t)(s - p->s);
	if (n >= sizeof buf)
		return p->bad = true, NULL;
	memcpy(buf, p->s, n);
	buf[n] = 0;
	jv *v = j_new(p, J_NUM);
	v->num = strtod(buf, NULL);
	p->s = s;
	return v;
}

static bool j_lit(jparse *p, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(p->end - p->s) < n || memcmp(p->s, lit, n))
		return false;
	p->s += n;
	return true;
}

static void j_push(jv *v, jv *item, char *key)
{
	v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
	v->items[v->n] = item;
	if (v->type == J_OBJ) {
		v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
		v->keys[v->n] = key;
	}
	v->n++;
}

static jv *j_value(jparse *p, int depth)
{
	j_ws(p);
	if (p->s >= p->end || depth > 64)
		return p->bad = true, NULL;
	char c = *p->s;
	if (c == '{' || c == '[') {
		jv *v = j_new(p, c == '{' ? J_OBJ : J_ARR);
		p->s++;
		j_ws(p);
		if (p->s < p->end && *p->s == (c == '{' ? '}' : ']')) {
			p->s++;
			return v;
		}
		for (;;) {
			char *key = NULL;
			if (c == '{') {
				j_ws(p);
				key = j_string(p);
				j_ws(p);
				if (p->bad || p->s >= p->end || *p->s != ':') {
					free(key);
					return p->bad = true, NULL;
				}
				p->s++;
				for (size_t i = 0; i < v->n; i++)
					if (!strcmp(v->keys[i], key))
						p->bad = true; /* a key twice */
			}
			jv *item = j_value(p, depth + 1);
			j_push(v, item, key);
			if (p->bad)
				return NULL;
			j_ws(p);
			if (p->s < p->end && *p->s == ',') {
				p->s++;
				continue;
			}
			if (p->s < p->end && *p->s == (c == '{' ? '}' : ']')) {
				p->s++;
				return v;
			}
			return p->bad = true, NULL;
		}
	}
	if (c == '"') {
		jv *v = j_new(p, J_STR);
		v->str = j_string(p);
		return v;
	}
	if (j_lit(p, "true") || j_lit(p, "false")) {
		jv *v = j_new(p, J_BOOL);
		v->b = p->s[-1] == 'e' && p->s[-2] == 'u';
		return v;
	}
	if (j_lit(p, "null"))
		return j_new(p, J_NULL);
	return j_number(p);
}

/* Parse all of s (len bytes): NULL unless it is exactly one JSON value.
 * *all: the nodes to free. */
static jv *json_parse(const char *s, size_t len, jv **all)
{
	jparse p = { .s = s, .end = s + len };
	jv *v = j_value(&p, 0);
	j_ws(&p);
	if (p.s != p.end)
		p.bad = true;
	*all = p.all;
	return p.bad ? NULL : v;
}

static void json_free(jv *all)
{
	while (all) {
		jv *next = all->all;
		for (size_t i = 0; all->keys && i < all->n; i++)
			free(all->keys[i]);
		free(all->keys);
		free(all->items);
		free(all->str);
		free(all);
		all = next;
	}
}

static jv *jget(const jv *o, const char *key)
{
	if (!o || o->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return o->items[i];
	return NULL;
}

/* o's key, which must be there with this type. */
static jv *jneed(const jv *o, const char *key, int type)
{
	jv *v = jget(o, key);
	cr_assert(v, "no \"%s\"", key);
	cr_assert_eq(v->type, type, "\"%s\" has type %d, not %d", key, v->type, type);
	return v;
}

static double jnum(const jv *o, const char *key)
{
	return jneed(o, key, J_NUM)->num;
}

/* ---- a small HTTP client ---- */

typedef struct http_res {
	int status;
	char head[8192];
	char *body;
	size_t len;
} http_res;

static int obs_port;

/* Bytes read past a response (the next one's, on a kept-alive
 * connection), kept for the next http_read on that descriptor. */
static char carry[sizeof ((http_res *)0)->head];
static size_t carry_len;
static int carry_fd = -1;


static int http_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	if (carry_fd == fd)
		carry_fd = -1; /* a new connection: nothing carried */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
	struct timeval tv = { .tv_sec = 20 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the server closed: what it answered is read next */
		p += n;
		len -= (size_t)n;
	}
}

/* The value of header name in r->head ("" if none), into buf. */
static const char *http_header(const http_res *r, const char *name, char *buf, size_t n)
{
	buf[0] = 0;
	size_t nl = strlen(name);
	for (const char *l = strstr(r->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (!strncasecmp(h, name, nl) && h[nl] == ':') {
			h += nl + 1;
			while (*h == ' ')
				h++;
			const char *e = strstr(h, "\r\n");
			size_t k = e ? (size_t)(e - h) : strlen(h);
			if (k >= n)
				k = n - 1;
			memcpy(buf, h, k);
			buf[k] = 0;
			break;
		}
	}
	return buf;
}

/* Read one response from fd: false if the connection ended before a
 * whole one came (r->status 0 if no head came at all). head_only: a
 * response to HEAD, no body whatever Content-Length says. */
static bool http_read(int fd, http_res *r, bool head_only)
{
	memset(r, 0, sizeof *r);
	size_t have = 0;
	if (carry_fd == fd) {
		memcpy(r->head, carry, carry_len);
		have = carry_len;
	}
	carry_fd = -1;
	carry_len = 0;
	r->head[have] = 0;
	char *end = strstr(r->head, "\r\n\r\n");
	while (!end) {
		if (have >= sizeof r->head - 1)
			return false;
		ssize_t n = recv(fd, r->head + have, sizeof r->head - 1 - have, 0);
		if (n <= 0)
			return false;
		have += (size_t)n;
		r->head[have] = 0;
		end = strstr(r->head, "\r\n\r\n");
	}
	size_t head_len = (size_t)(end - r->head) + 4;
	cr_assert_eq(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1, "status line: %.40s", r->head);
	char cl[32];
	http_header(r, "Content-Length", cl, sizeof cl);
	cr_assert(cl[0], "no Content-Length in %s", r->head);
	size_t want = head_only ? 0 : (size_t)strtoull(cl, NULL, 10);
	r->body = malloc(want + 1);
	size_t extra = have - head_len;
	size_t got = extra < want ? extra : want;
	memcpy(r->body, r->head + head_len, got);
	if (extra > got) {
		carry_fd = fd;
		carry_len = extra - got;
		memcpy(carry, r->head + head_len + got, carry_len);
	}
	r->head[head_len] = 0;
	while (got < want) {
		ssize_t n = recv(fd, r->body + got, want - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	r->body[got] = 0;
	r->len = got;
	return got == want;
}

static void http_free(http_res *r)
{
	free(r->body);
	r->body = NULL;
}

/* One request on a connection of its own: method, target, extra headers
 * (each ending \r\n, or NULL), a body. */
static void http_do(const char *method, const char *target, const char *extra, const char *body,
                    http_res *r)
{
	int fd = http_connect(obs_port);
	char req[4096];
	int n;
	if (body)
		n = snprintf(req, sizeof req,
		             "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
		             method, target, extra ? extra : "", strlen(body), body);
	else
		n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n",
		             method, target, extra ? extra : "");
	send_all(fd, req, (size_t)n);
	cr_assert(http_read(fd, r, !strcmp(method, "HEAD")), "%s %s: no whole response (status %d)",
	          method, target, r->status);
	close(fd);
}

/* GET target, which must answer 200 with JSON: the parsed value (free
 * *all with json_free). */
static jv *get_json(const char *target, jv **all)
{
	http_res r;
	http_do("GET", target, NULL, NULL, &r);
	cr_assert_eq(r.status, 200, "GET %s: %d %s", target, r.status, r.body);
	char type[128];
	cr_assert_str_eq(http_header(&r, "Content-Type", type, sizeof type), "application/json");
	jv *v = json_parse(r.body, r.len, all);
	cr_assert(v, "GET %s: not JSON: %.300s", target, r.body);
	http_free(&r);
	return v;
}

/* The answer to a request that must fail: its status, and its body must
 * be {"error": "..."}. */
static int error_status(const char *method, const char *target, const char *extra)
{
	http_res r;
	http_do(method, target, extra, NULL, &r);
	jv *all;
	jv *v = json_parse(r.body, r.len, &all);
	cr_assert(v && jget(v, "error") && jget(v, "error")->type == J_STR,
	          "%s %s: %d, body not {\"error\": ...}: %s", method, target, r.status, r.body);
	json_free(all);
	int status = r.status;
	http_free(&r);
	return status;
}

/* ---- the VM and the observer ---- */

static void start_vm_and_observer(unsigned schedulers, const kr_observer_opts *o)
{
	vm_start(schedulers);
	kr_observer_opts def = { 0 };
	int rc = kr_observer_start_opts(o ? o : &def);
	cr_assert_eq(rc, 0, "kr_observer_start_opts: %d (%s, errno %s)", rc, kr_strerror(rc),
	             strerror(errno));
	obs_port = kr_observer_port();
	cr_assert(obs_port > 0, "port %d", obs_port);
}

static void stop_all(void)
{
	cr_assert_eq(kr_observer_stop(), 0);
	vm_stop();
}

/* A process that takes what comes, until told to end (tag 99). */
static void idler(void *arg)
{
	(void)arg;
	for (;;) {
		kr_msg *m;
		if (kr_recv_tag(&m, 99, 100) == 0) {
			kr_msg_free(m);
			return;
		}
		if (atomic_load(&vm_abort))
			return;
	}
}

/* ---- the observer's life ---- */

Test(observer, starts_on_port_0_refuses_a_second_start_stops_and_starts_again)
{
	cr_assert_eq(kr_observer_start(NULL, 0), KR_ESTOPPED, "no VM: KR_ESTOPPED");
	cr_assert_eq(kr_observer_port(), KR_ESTOPPED);
	cr_assert_eq(kr_observer_stop(), KR_ESTOPPED);
	start_vm_and_observer(2, NULL);
	int port = obs_port;
	cr_assert_eq(kr_observer_start(NULL, 0), KR_EEXIST, "a second start");
	cr_assert_eq(kr_observer_port(), port, "the first one is untouched");
	jv *all;
	get_json("/api/stats", &all);
	json_free(all);
	cr_assert_eq(kr_observer_stop(), 0);
	cr_assert_eq(kr_observer_port(), KR_ESTOPPED);
	cr_assert_eq(kr_observer_stop(), KR_ESTOPPED, "stopped twice");
	/* Nothing listens there any more. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_neq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "still listening");
	close(fd);
	/* Again, on the same port this time. */
	cr_assert_eq(kr_observer_start("127.0.0.1", (uint16_t)port), 0);
	cr_assert_eq(kr_observer_port(), port);
	get_json("/api/processes", &all);
	json_free(all);
	stop_all();
}

Test(observer, bad_settings_are_refused)
{
	vm_start(1);
	cr_assert_eq(kr_observer_start("not an address", 0), KR_EINVAL);
	cr_assert_eq(kr_observer_start("127.0.0.1.5", 0), KR_EINVAL);
	kr_observer_opts o = { .request_timeout_ms = -5 };
	cr_assert_eq(kr_observer_start_opts(&o), KR_EINVAL);
	/* A port someone else holds: KR_EIO, errno EADDRINUSE. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof a;
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, l), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	int rc = kr_observer_start(NULL, ntohs(a.sin_port));
	int err = errno;
	cr_assert_eq(rc, KR_EIO);
	cr_assert_eq(err, EADDRINUSE, "errno %s", strerror(err));
	close(fd);
	cr_assert_eq(kr_observer_port(), KR_ESTOPPED);
	/* And then a good one works. */
	cr_assert_eq(kr_observer_start(NULL, 0), 0);
	cr_assert_eq(kr_observer_stop(), 0);
	vm_stop();
}

static _Atomic int from_process_port;

static void start_and_stop_from_a_process(void *arg)
{
	(void)arg;
	int rc = kr_observer_start(NULL, 0);
	VM_CHECK(rc == 0, "start from a process: %d", rc);
	atomic_store(&from_process_port, kr_observer_port());
	VM_CHECK(kr_observer_start(NULL, 0) == KR_EEXIST, "a second start from a process");
	/* Its starter's end, a crash even, does not take the observer along:
	 * stopped below. */
	kr_crash("the observer's starter crashes");
}

static void stop_from_a_process(void *arg)
{
	(void)arg;
	VM_CHECK(kr_observer_stop() == 0, "stop from a process");
	VM_CHECK(kr_observer_port() == KR_ESTOPPED, "stopped");
}

Test(observer, a_process_starts_it_and_another_stops_it)
{
	vm_start(2);
	kr_pid p = kr_spawn(start_and_stop_from_a_process, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	vm_assert_clean();
	obs_port = atomic_load(&from_process_port);
	cr_assert(obs_port > 0);
	cr_assert_eq(kr_observer_port(), obs_port, "it outlives its starter");
	jv *all;
	get_json("/api/trees", &all);
	json_free(all);
	p = kr_spawn(stop_from_a_process, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 15000));
	vm_assert_clean();
	cr_assert_eq(kr_observer_port(), KR_ESTOPPED);
	vm_stop();
}

Test(observer, the_vm_stop_takes_it_along_and_a_new_vm_starts_a_new_one)
{
	start_vm_and_observer(2, NULL);
	jv *all;
	get_json("/api/stats", &all);
	json_free(all);
	vm_stop(); /* leaks nothing (vm_stop checks) */
	cr_assert_eq(kr_observer_port(), KR_ESTOPPED);
	start_vm_and_observer(1, NULL);
	jv *v = get_json("/api/stats", &all);
	cr_assert_eq(jnum(v, "schedulers"), 1);
	json_free(all);
	stop_all();
}

/* ---- GET /api/stats ---- */

static _Atomic int busy_until_told;

static void busy(void *arg)
{
	(void)arg;
	while (!atomic_load(&busy_until_told) && !atomic_load(&vm_abort))
		KR_CHECK();
}

static void chatter(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	while (!atomic_load(&busy_until_told) && !atomic_load(&vm_abort)) {
		for (int i = 0; i < 100; i++)
			kr_send(to, 1, &i, sizeof i);
		kr_sleep(1);
	}
}

static void swallower(void *arg)
{
	(void)arg;
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, 100) == 0)
			kr_msg_free(m);
		else if (atomic_load(&busy_until_told) || atomic_load(&vm_abort))
			return;
	}
}

static void holder(void *arg)
{
	(void)arg;
	void *big = kr_alloc((size_t)4 << 20);
	VM_CHECK(big, "kr_alloc");
	memset(big, 1, (size_t)4 << 20);
	while (!atomic_load(&busy_until_told) && !atomic_load(&vm_abort))
		kr_sleep(20);
	kr_free(big);
}

/* Each sample has the contract's fields, with arrays of n schedulers. */
static void check_sample(const jv *s, unsigned n)
{
	jnum(s, "t");
	jv *util = jneed(s, "util", J_ARR);
	jv *runq = jneed(s, "runq", J_ARR);
	jv *steals = jneed(s, "steals", J_ARR);
	cr_assert_eq(util->n, n);
	cr_assert_eq(runq->n, n);
	cr_assert_eq(steals->n, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(util->items[i]->type, J_NUM);
		cr_assert(util->items[i]->num >= 0 && util->items[i]->num <= 1);
		cr_assert_eq(runq->items[i]->type, J_NUM);
		cr_assert_eq(steals->items[i]->type, J_NUM);
	}
	cr_assert(jnum(s, "procs") >= 1);
	jnum(s, "msgs_per_s");
	jnum(s, "spawns_per_s");
	jnum(s, "restarts");
	jnum(s, "dead_letters");
	jv *mem = jneed(s, "mem", J_OBJ);
	jnum(mem, "heaps");
	jnum(mem, "stacks");
	jnum(mem, "msgs");
}

/* The first sample, waited for. */
static double first_sample_max_util(void)
{
	jv *all = NULL;
	for (int i = 0; i < 100; i++) {
		jv *samples = jneed(get_json("/api/stats", &all), "samples", J_ARR);
		if (samples->n) {
			jv *util = jneed(samples->items[0], "util", J_ARR);
			double max = 0;
			for (size_t k = 0; k < util->n; k++)
				max = util->items[k]->num > max ? util->items[k]->num : max;
			json_free(all);
			return max;
		}
		json_free(all);
		usleep(100000);
	}
	cr_assert_fail("no sample after 10 s");
	return 0;
}

Test(observer, stats_has_a_sample_a_second_with_live_figures)
{
	start_vm_and_observer(2, NULL);
	/* An idle VM: its schedulers are idle (the sampler and this test's
	 * requests take a few milliseconds of the second). */
	double idle_util = first_sample_max_util();
	cr_assert(idle_util < 0.5, "an idle VM's busiest scheduler: %.2f", idle_util);
	atomic_store(&busy_until_told, 0);
	kr_pid sink = kr_spawn(swallower, NULL);
	kr_spawn(busy, NULL);
	kr_spawn(chatter, (void *)(intptr_t)sink);
	kr_spawn(holder, NULL);
	for (int i = 0; i < 50; i++)
		kr_send(kr_spawn(idler, NULL), 99, NULL, 0); /* spawns */
	/* Dead letters: to a process that has ended. */
	kr_pid gone = kr_spawn(idler, NULL);
	kr_send(gone, 99, NULL, 0);
	cr_assert(VM_WAIT(!kr_is_alive(gone), 5000));
	for (int i = 0; i < 7; i++)
		kr_send(gone, 1, NULL, 0);
	/* Two samples at least: the second covers all of the above. */
	jv *all = NULL, *v = NULL;
	int64_t t0 = vm_now_ns();
	for (;;) {
		json_free(all);
		v = get_json("/api/stats", &all);
		if (jneed(v, "samples", J_ARR)->n >= 3 || vm_ms_since(t0) > 20000)
			break;
		usleep(200000);
	}
	atomic_store(&busy_until_told, 1);
	cr_assert(jget(v, "node") && jget(v, "node")->type == J_NULL, "no node: null");
	cr_assert(jnum(v, "now_ms") > 0);
	cr_assert(jnum(v, "uptime_ms") > 0);
	cr_assert_eq(jnum(v, "schedulers"), 2);
	cr_assert_eq(jneed(v, "kill_allowed", J_BOOL)->b, false);
	cr_assert_eq(jnum(v, "interval_ms"), 1000);
	jv *samples = jneed(v, "samples", J_ARR);
	cr_assert(samples->n >= 3, "%zu samples after 20 s", samples->n);
	double max_util = 0, msgs = 0, spawns = 0, dead = 0, heaps = 0, stacks = 0, last_t = 0;
	for (size_t i = 0; i < samples->n; i++) {
		jv *s = samples->items[i];
		check_sample(s, 2);
		cr_assert(jnum(s, "t") > last_t, "in order");
		last_t = jnum(s, "t");
		for (int k = 0; k < 2; k++)
			if (jneed(s, "util", J_ARR)->items[k]->num > max_util)
				max_util = jneed(s, "util", J_ARR)->items[k]->num;
		if (jnum(s, "msgs_per_s") > msgs)
			msgs = jnum(s, "msgs_per_s");
		spawns += jnum(s, "spawns_per_s");
		dead += jnum(s, "dead_letters");
		jv *mem = jneed(s, "mem", J_OBJ);
		if (jnum(mem, "heaps") > heaps)
			heaps = jnum(mem, "heaps");
		if (jnum(mem, "stacks") > stacks)
			stacks = jnum(mem, "stacks");
	}
	/* A process that never waits keeps its scheduler busy. */
	cr_assert(max_util > 0.5, "busiest scheduler %.2f", max_util);
	cr_assert(msgs >= 100, "msgs_per_s %.0f", msgs);
	cr_assert(spawns >= 1, "spawns_per_s");
	cr_assert(dead >= 7, "dead letters %.0f", dead);
	cr_assert(heaps >= 4 << 20, "heaps %.0f", heaps);
	cr_assert(stacks >= 4096, "stacks %.0f", stacks);
	/* since: only what is newer. */
	char target[64];
	snprintf(target, sizeof target, "/api/stats?since=%.0f", last_t);
	json_free(all);
	v = get_json(target, &all);
	jv *newer = jneed(v, "samples", J_ARR);
	for (size_t i = 0; i < newer->n; i++)
		cr_assert(jnum(newer->items[i], "t") > last_t);
	json_free(all);
	snprintf(target, sizeof target, "/api/stats?since=%.0f", last_t - 1);
	v = get_json(target, &all);
	cr_assert(jneed(v, "samples", J_ARR)->n >= 1, "the last one is newer than its t - 1");
	json_free(all);
	cr_assert_eq(error_status("GET", "/api/stats?since=soon", NULL), 400);
	stop_all();
}

/* Sends n messages to itself and takes them in, rounds times: the sends
 * of a ping-pong on one scheduler, the message cache's fast path. */
static void self_sender(void *arg)
{
	long rounds = (long)(intptr_t)arg;
	kr_pid me = kr_self();
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < 1000; i++)
			kr_send(me, 1, &i, sizeof i);
		for (int i = 0; i < 1000; i++) {
			kr_msg *m;
			VM_CHECK(kr_recv(&m, 5000) == 0, "recv");
			kr_msg_free(m);
		}
	}
}

Test(observer, stats_counts_message_blocks_that_wait_in_a_mailbox)
{
	start_vm_and_observer(1, NULL);
	/* Every send counts, the fast path's too. */
	kr_vm_stats s0 = vm_stats();
	kr_pid ss = kr_spawn(self_sender, (void *)(intptr_t)10);
	cr_assert(VM_WAIT(!kr_is_alive(ss), 20000));
	kr_vm_stats s1 = vm_stats();
	cr_assert(s1.messages_sent >= s0.messages_sent + 10000, "%llu sends counted of 10000",
	          (unsigned long long)(s1.messages_sent - s0.messages_sent));
	kr_pid p = kr_spawn(idler, NULL);
	kr_vm_stats before = vm_stats();
	char payload[1000] = { 0 };
	for (int i = 0; i < 2000; i++)
		kr_send(p, 1, payload, sizeof payload);
	kr_vm_stats after = vm_stats();
	cr_assert(after.message_bytes >= before.message_bytes + 2000 * sizeof payload,
	          "message_bytes %zu -> %zu", before.message_bytes, after.message_bytes);
	cr_assert(after.messages_sent >= before.messages_sent + 2000);
	/* ... and the sampler sees it. */
	jv *all = NULL;
	bool seen = false;
	for (int i = 0; i < 100 && !seen; i++) {
		json_free(all);
		jv *samples = jneed(get_json("/api/stats", &all), "samples", J_ARR);
		for (size_t k = 0; k < samples->n; k++)
			seen |= jnum(jneed(samples->items[k], "mem", J_OBJ), "msgs") >= 2000 * 1000;
		usleep(100000);
	}
	json_free(all);
	cr_assert(seen, "no sample counts the queued messages");
	kr_send(p, 99, NULL, 0);
	stop_all();
}

/* ---- GET /api/processes ---- */

static void named_idler(void *arg)
{
	(void)arg;
	VM_CHECK(kr_register("obs_test_idler", kr_self()) == 0, "register");
	idler(NULL);
}

static jv *find_row(jv *procs, kr_pid pid)
{
	for (size_t i = 0; i < procs->n; i++)
		if (jnum(procs->items[i], "pid") == (double)pid)
			return procs->items[i];
	return NULL;
}

Test(observer, processes_lists_a_process_with_its_name_mailbox_and_supervisor)
{
	start_vm_and_observer(2, NULL);
	kr_spawn_opts so = { .name = "obs label" };
	kr_pid p = kr_spawn_opt(named_idler, NULL, &so);
	cr_assert(VM_WAIT(kr_whereis("obs_test_idler") == p, 5000));
	for (int i = 0; i < 3; i++)
		kr_send(p, 1, "x", 1); /* tag 1: it keeps them */
	kr_child_spec spec = { .id = "kid", .start = idler };
	kr_pid sup = kr_sup_start_link(NULL, &spec, 1, NULL);
	cr_assert(sup > 0);
	kr_sup_child kid;
	cr_assert_eq(kr_sup_which_children(sup, &kid, 1), 1);
	atomic_store(&busy_until_told, 0);
	kr_pid b = kr_spawn(busy, NULL);
	jv *all;
	jv *v = get_json("/api/processes", &all);
	cr_assert_eq(jneed(v, "truncated", J_BOOL)->b, false);
	jv *procs = jneed(v, "processes", J_ARR);
	cr_assert(procs->n >= 5);
	for (size_t i = 0; i < procs->n; i++) {
		jv *r = procs->items[i];
		jnum(r, "pid");
		cr_assert(jget(r, "name") && (jget(r, "name")->type == J_STR || jget(r, "name")->type == J_NULL));
		cr_assert(jget(r, "registered"));
		jneed(r, "status", J_STR);
		jnum(r, "reductions");
		jnum(r, "reds_per_s");
		jnum(r, "mailbox");
		jnum(r, "heap_bytes");
		cr_assert(jget(r, "scheduler"));
		jnum(r, "supervisor");
	}
	jv *r = find_row(procs, p);
	cr_assert(r, "the process spawned is listed");
	cr_assert_str_eq(jneed(r, "name", J_STR)->str, "obs label");
	cr_assert_str_eq(jneed(r, "registered", J_STR)->str, "obs_test_idler");
	cr_assert_str_eq(jneed(r, "status", J_STR)->str, "waiting");
	cr_assert_eq(jnum(r, "mailbox"), 3);
	cr_assert(jnum(r, "heap_bytes") >= 0);
	cr_assert_eq(jnum(r, "supervisor"), 0);
	r = find_row(procs, kid.pid);
	cr_assert(r, "the supervisor's child is listed");
	cr_assert_eq(jnum(r, "supervisor"), (double)sup);
	cr_assert_str_eq(jneed(r, "name", J_STR)->str, "kid");
	cr_assert_eq(jget(r, "registered")->type, J_NULL);
	json_free(all);
	/* Rates: a second later, the busy process has a rate, the idle one
	 * about none. */
	bool rated = false;
	for (int i = 0; i < 30 && !rated; i++) {
		usleep(300000);
		v = get_json("/api/processes", &all);
		r = find_row(jneed(v, "processes", J_ARR), b);
		cr_assert(r);
		rated = jnum(r, "reds_per_s") > 1000;
		json_free(all);
	}
	atomic_store(&busy_until_told, 1);
	cr_assert(rated, "no reductions per second for a busy process");
	kr_send(p, 99, NULL, 0);
	stop_all();
}

Test(observer, processes_says_truncated_past_ten_thousand_rows)
{
	start_vm_and_observer(2, NULL);
	int n = 10050;
	for (int i = 0; i < n; i++)
		cr_assert(kr_spawn(idler, NULL) > 0);
	jv *all;
	jv *v = get_json("/api/processes", &all);
	cr_assert_eq(jneed(v, "truncated", J_BOOL)->b, true);
	cr_assert(jneed(v, "processes", J_ARR)->n <= 10000);
	cr_assert(jneed(v, "processes", J_ARR)->n >= 9900);
	json_free(all);
	atomic_store(&vm_abort, 1); /* the idlers end */
	cr_assert(VM_WAIT(vm_stats().procs_alive < 20, 30000));
	atomic_store(&vm_abort, 0);
	stop_all();
}

/* ---- GET /api/process?pid=N ---- */

static _Atomic int64_t linker_ref;

static void linker(void *arg)
{
	kr_pid *two = arg;
	VM_CHECK(kr_link(two[0]) == 0, "link");
	kr_ref ref = kr_monitor(two[1]);
	VM_CHECK(ref > 0, "monitor");
	atomic_store(&linker_ref, ref);
	idler(NULL);
}

Test(observer, process_gives_links_monitors_with_their_refs_and_monitored_by)
{
	start_vm_and_observer(2, NULL);
	static kr_pid two[2];
	two[0] = kr_spawn(idler, NULL);
	two[1] = kr_spawn(idler, NULL);
	atomic_store(&linker_ref, 0);
	kr_pid a = kr_spawn(linker, two);
	cr_assert(VM_WAIT(atomic_load(&linker_ref) > 0, 5000));
	char target[64];
	snprintf(target, sizeof target, "/api/process?pid=%lld", (long long)a);
	jv *all;
	jv *v = get_json(target, &all);
	cr_assert_eq(jnum(v, "pid"), (double)a);
	jneed(v, "status", J_STR);
	jnum(v, "reductions");
	jv *links = jneed(v, "links", J_ARR);
	cr_assert_eq(links->n, 1);
	cr_assert_eq(links->items[0]->num, (double)two[0]);
	jv *mons = jneed(v, "monitors", J_ARR);
	cr_assert_eq(mons->n, 1);
	cr_assert_eq(jnum(mons->items[0], "pid"), (double)two[1]);
	cr_assert_eq(jnum(mons->items[0], "ref"), (double)atomic_load(&linker_ref));
	cr_assert_eq(jneed(v, "monitored_by", J_ARR)->n, 0);
	json_free(all);
	snprintf(target, sizeof target, "/api/process?pid=%lld", (long long)two[1]);
	v = get_json(target, &all);
	jv *by = jneed(v, "monitored_by", J_ARR);
	cr_assert_eq(by->n, 1);
	cr_assert_eq(by->items[0]->num, (double)a);
	jv *l = jneed(v, "links", J_ARR);
	cr_assert_eq(l->n, 0);
	json_free(all);
	/* Gone, or never a pid: 404 and 400. */
	kr_send(two[0], 99, NULL, 0);
	cr_assert(VM_WAIT(!kr_is_alive(two[0]), 5000));
	snprintf(target, sizeof target, "/api/process?pid=%lld", (long long)two[0]);
	cr_assert_eq(error_status("GET", target, NULL), 404);
	cr_assert_eq(error_status("GET", "/api/process?pid=abc", NULL), 400);
	cr_assert_eq(error_status("GET", "/api/process", NULL), 400);
	cr_assert_eq(error_status("GET", "/api/process?pid=0", NULL), 400);
	kr_send(two[1], 99, NULL, 0);
	stop_all();
}

static _Atomic int spinning;

/* A loop that never calls krill: it cannot answer questions. */
static void deaf(void *arg)
{
	(void)arg;
	atomic_store(&spinning, 1);
	vm_spin_us(2500000);
}

Test(observer, a_process_that_cannot_answer_is_shown_without_its_links)
{
	start_vm_and_observer(2, NULL);
	atomic_store(&spinning, 0);
	kr_pid p = kr_spawn(deaf, NULL);
	cr_assert(VM_WAIT(atomic_load(&spinning), 5000));
	char target[64];
	snprintf(target, sizeof target, "/api/process?pid=%lld", (long long)p);
	int64_t t0 = vm_now_ns();
	jv *all;
	jv *v = get_json(target, &all);
	cr_assert(vm_ms_since(t0) >= 900, "it waited for an answer: %.0f ms", vm_ms_since(t0));
	cr_assert_eq(jnum(v, "pid"), (double)p);
	cr_assert_str_eq(jneed(v, "status", J_STR)->str, "running");
	cr_assert_eq(jneed(v, "links", J_ARR)->n, 0);
	cr_assert_str_eq(jneed(v, "links_error", J_STR)->str, kr_strerror(KR_ETIMEDOUT));
	json_free(all);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	stop_all();
}

/* ---- GET /api/trees ---- */

static void crasher(void *arg)
{
	(void)arg;
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, 100) == 0) {
			if (m->tag == 66)
				kr_crash("asked to");
			kr_msg_free(m);
		} else if (atomic_load(&vm_abort)) {
			return;
		}
	}
}

static void middle_sup(void *arg)
{
	(void)arg;
	kr_child_spec kids[] = { { .id = "w1", .start = crasher }, { .id = "w2", .start = crasher } };
	kr_sup_flags f = { .strategy = KR_REST_FOR_ONE, .max_restarts = 10, .period_ms = 10000 };
	kr_sup_run(&f, kids, 2);
}

static jv *tree_child(jv *node, const char *id)
{
	jv *kids = jneed(node, "children", J_ARR);
	for (size_t i = 0; i < kids->n; i++) {
		jv *k = jget(kids->items[i], "id");
		if (k && k->type == J_STR && !strcmp(k->str, id))
			return kids->items[i];
	}
	return NULL;
}

static void check_node(const jv *n)
{
	jnum(n, "pid");
	cr_assert(jget(n, "name"));
	cr_assert(jget(n, "id"));
	jv *type = jneed(n, "type", J_STR);
	cr_assert(!strcmp(type->str, "supervisor") || !strcmp(type->str, "worker"));
	cr_assert(jget(n, "strategy"));
	jnum(n, "restarts");
	jneed(n, "recent", J_BOOL);
	jv *kids = jneed(n, "children", J_ARR);
	for (size_t i = 0; i < kids->n; i++)
		check_node(kids->items[i]);
}

Test(observer, trees_shows_a_tree_with_strategies_and_a_restart_marked_recent)
{
	start_vm_and_observer(2, NULL);
	kr_child_spec specs[] = {
		{ .id = "middle", .start = middle_sup, .type = KR_SUPERVISOR },
		{ .id = "side", .start = crasher },
	};
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ALL, .max_restarts = 10, .period_ms = 10000 };
	kr_pid top = kr_sup_start_link(&f, specs, 2, "obs_test_top");
	cr_assert(top > 0);
	kr_sup_child kids[2];
	cr_assert_eq(kr_sup_which_children(top, kids, 2), 2);
	kr_sup_child w[2];
	cr_assert_eq(kr_sup_which_children(kids[0].pid, w, 2), 2);
	/* w2 crashes: rest_for_one restarts it alone. */
	kr_send(w[1].pid, 66, NULL, 0);
	cr_assert(VM_WAIT(kr_sup_which_children(kids[0].pid, w, 2) == 2 && w[1].restarts == 1, 5000));
	jv *all;
	jv *v = get_json("/api/trees", &all);
	jv *trees = jneed(v, "trees", J_ARR);
	jv *t = NULL;
	for (size_t i = 0; i < trees->n; i++) {
		check_node(trees->items[i]);
		if (jnum(trees->items[i], "pid") == (double)top)
			t = trees->items[i];
		cr_assert_eq(jget(trees->items[i], "id")->type, J_NULL, "a root has no id");
	}
	cr_assert(t, "our tree is listed");
	cr_assert_str_eq(jneed(t, "name", J_STR)->str, "obs_test_top");
	cr_assert_str_eq(jneed(t, "strategy", J_STR)->str, "one_for_all");
	cr_assert_str_eq(jneed(t, "type", J_STR)->str, "supervisor");
	jv *mid = tree_child(t, "middle");
	cr_assert(mid, "the child supervisor");
	cr_assert_str_eq(jneed(mid, "type", J_STR)->str, "supervisor");
	cr_assert_str_eq(jneed(mid, "strategy", J_STR)->str, "rest_for_one");
	cr_assert_eq(jnum(mid, "pid"), (double)kids[0].pid);
	jv *side = tree_child(t, "side");
	cr_assert(side);
	cr_assert_str_eq(jneed(side, "type", J_STR)->str, "worker");
	cr_assert_eq(jnum(side, "restarts"), 0);
	cr_assert_eq(jneed(side, "recent", J_BOOL)->b, false);
	jv *w1 = tree_child(mid, "w1"), *w2 = tree_child(mid, "w2");
	cr_assert(w1 && w2);
	cr_assert_eq(jnum(w2, "restarts"), 1);
	cr_assert_eq(jneed(w2, "recent", J_BOOL)->b, true);
	cr_assert_eq(jnum(w2, "pid"), (double)w[1].pid, "the restarted child's new pid");
	cr_assert_eq(jnum(w1, "restarts"), 0);
	cr_assert_eq(jneed(w1, "recent", J_BOOL)->b, false);
	/* The children of a root are not roots themselves. */
	for (size_t i = 0; i < trees->n; i++)
		cr_assert_neq(jnum(trees->items[i], "pid"), (double)kids[0].pid);
	json_free(all);
	stop_all();
}

/* ---- POST /api/kill ---- */

static void trapper(void *arg)
{
	kr_trap_exit(1);
	idler(arg);
}

static void watch_it(void *arg)
{
	kr_pid target = (kr_pid)(intptr_t)arg;
	kr_ref ref = kr_monitor(target);
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 20000) == 0, "no DOWN");
	const kr_down_msg *d = kr_msg_down(m);
	VM_CHECK(d && d->ref == ref && d->reason.kind == KR_EXIT_KILLED, "killed: %d",
	         d ? d->reason.kind : -1);
}

Test(observer, kill_is_refused_without_the_power)
{
	start_vm_and_observer(2, NULL);
	kr_pid p = kr_spawn(idler, NULL);
	char target[64];
	snprintf(target, sizeof target, "/api/kill?pid=%lld", (long long)p);
	http_res r;
	http_do("POST", target, NULL, NULL, &r);
	cr_assert_eq(r.status, 403);
	cr_assert(strstr(r.body, "kill not allowed"), "%s", r.body);
	http_free(&r);
	usleep(100000);
	cr_assert(kr_is_alive(p), "refused, and alive");
	kr_send(p, 99, NULL, 0);
	stop_all();
}

Test(observer, kill_with_the_power_sends_kill)
{
	kr_observer_opts o = { .allow_kill = 1 };
	start_vm_and_observer(2, &o);
	jv *all;
	cr_assert_eq(jneed(get_json("/api/stats", &all), "kill_allowed", J_BOOL)->b, true);
	json_free(all);
	/* Trapping exits does not help: kill cannot be trapped. */
	kr_pid p = kr_spawn(trapper, NULL);
	kr_pid w = kr_spawn(watch_it, (void *)(intptr_t)p);
	usleep(50000);
	char target[64];
	snprintf(target, sizeof target, "/api/kill?pid=%lld", (long long)p);
	http_res r;
	http_do("POST", target, NULL, NULL, &r);
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	jv *v = json_parse(r.body, r.len, &all);
	cr_assert(v && jget(v, "ok") && jget(v, "ok")->type == J_BOOL && jget(v, "ok")->b);
	json_free(all);
	http_free(&r);
	cr_assert(VM_WAIT(!kr_is_alive(p) && !kr_is_alive(w), 10000));
	vm_assert_clean();
	/* Gone now: 404. A body is taken (and ignored). */
	http_do("POST", target, NULL, "{}", &r);
	cr_assert_eq(r.status, 404, "%d", r.status);
	http_free(&r);
	cr_assert_eq(error_status("POST", "/api/kill?pid=x", NULL), 400);
	cr_assert_eq(error_status("GET", target, NULL), 405);
	stop_all();
}

/* ---- GET /api/nodes ---- */

Test(observer, nodes_without_distribution_is_empty)
{
	start_vm_and_observer(1, NULL);
	jv *all;
	jv *v = get_json("/api/nodes", &all);
	cr_assert_eq(jget(v, "self")->type, J_NULL);
	cr_assert_eq(jneed(v, "nodes", J_ARR)->n, 0);
	json_free(all);
	stop_all();
}

static void ping_peer(void *arg)
{
	/* A send connects, as in Erlang. */
	VM_CHECK(kr_send_named_at(arg, "echo", 1, "hi", 2) == 0, "send");
}

Test(observer, nodes_gives_a_krill_peers_observer_and_null_for_others)
{
	static char self[64], peer_name[64], plain[64];
	dist_name(self, sizeof self, "obs_a");
	dist_name(peer_name, sizeof peer_name, "obs_b");
	dist_name(plain, sizeof plain, "obs_c");
	start_vm_and_observer(2, NULL);
	kr_node_config nc = { .name = self, .cookie = DIST_COOKIE };
	cr_assert_eq(kr_node_start(&nc), 0);
	dist_proc peer, other;
	dist_krnode(&peer, peer_name, DIST_COOKIE, "--observer");
	dist_krnode(&other, plain, DIST_COOKIE, NULL);
	const char *seen = strstr(peer.text, "krnode observer ");
	cr_assert(seen, "%s", peer.text);
	int peer_port = atoi(seen + strlen("krnode observer "));
	kr_spawn(ping_peer, peer_name);
	kr_spawn(ping_peer, plain);
	cr_assert(VM_WAIT(kr_nodes(NULL, 0) == 2, 10000), "two nodes connected");
	jv *all;
	jv *v = get_json("/api/nodes", &all);
	cr_assert(jget(v, "self") && jget(v, "self")->type == J_STR);
	cr_assert_str_eq(jget(v, "self")->str, kr_node_name());
	jv *nodes = jneed(v, "nodes", J_ARR);
	cr_assert_eq(nodes->n, 2);
	int found = 0;
	for (size_t i = 0; i < nodes->n; i++) {
		jv *n = nodes->items[i];
		const char *name = jneed(n, "name", J_STR)->str;
		jv *url = jget(n, "observer");
		cr_assert(url);
		if (!strcmp(name, peer_name)) {
			char want[64];
			snprintf(want, sizeof want, "http://127.0.0.1:%d/", peer_port);
			cr_assert_eq(url->type, J_STR, "the krill peer's observer");
			cr_assert_str_eq(url->str, want);
			found++;
		} else {
			cr_assert_eq(url->type, J_NULL, "a node without an observer: null");
			found++;
		}
	}
	cr_assert_eq(found, 2);
	json_free(all);
	dist_kill(&peer);
	dist_kill(&other);
	kr_node_stop();
	stop_all();
}

Test(observer, nodes_gives_null_for_a_beam_peer)
{
	if (!dist_have_erl())
		cr_skip_test("erl is not installed");
	char self[64], beam[64];
	dist_name(self, sizeof self, "obs_k");
	dist_name(beam, sizeof beam, "obs_e");
	start_vm_and_observer(2, NULL);
	kr_node_config nc = { .name = self, .cookie = DIST_COOKIE };
	cr_assert_eq(kr_node_start(&nc), 0);
	dist_proc e;
	char expr[256];
	snprintf(expr, sizeof expr, "true = net_adm:ping('%s') =:= pong, io:format(\"up~n\"), "
	                            "timer:sleep(60000), halt().", self);
	dist_erl(&e, beam, DIST_COOKIE, expr, 90);
	cr_assert(dist_expect(&e, "up", 30000), "erl: %s", e.text);
	cr_assert(VM_WAIT(kr_nodes(NULL, 0) == 1, 10000));
	jv *all;
	jv *v = get_json("/api/nodes", &all);
	jv *nodes = jneed(v, "nodes", J_ARR);
	cr_assert_eq(nodes->n, 1);
	cr_assert_str_eq(jneed(nodes->items[0], "name", J_STR)->str, beam);
	cr_assert_eq(jget(nodes->items[0], "observer")->type, J_NULL);
	json_free(all);
	dist_kill(&e);
	kr_node_stop();
	stop_all();
}

/* ---- GET /metrics ---- */

static bool name_ok(const char *s, size_t n, bool colon)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool value_ok(const char *s)
{
	if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN"))
		return true;
	char *end;
	errno = 0;
	strtod(s, &end);
	return *s && !*end && !isspace((unsigned char)*s) && strncasecmp(s, "inf", 3) &&
	       strncasecmp(s, "nan", 3) && !strchr(s, 'x') && !strchr(s, 'X');
}

typedef struct family {
	char name[128];
	char type[16];
	bool help, typed, had_samples, closed;
} family;

/* Check text as the Prometheus text format, version 0.0.4, strictly: each
 * line a HELP, a TYPE, or a sample (name{label="value",...} number); a
 * family's TYPE (and HELP) once, before its samples, its samples together;
 * a counter's name ends in _total; no series twice. NULL, or what is
 * wrong (in why). */
static const char *prom_check(const char *text, char *why, size_t whylen)
{
	static family fams[256];
	static char series[4096][200];
	size_t nf = 0, ns = 0;
	family *cur = NULL;
	const char *line = text;
	if (!*text || text[strlen(text) - 1] != '\n')
		return snprintf(why, whylen, "does not end with a newline"), why;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = (size_t)(nl - line);
		char l[1024];
		if (len >= sizeof l)
			return snprintf(why, whylen, "line too long"), why;
		memcpy(l, line, len);
		l[len] = 0;
		line = nl + 1;
		if (!len)
			return snprintf(why, whylen, "empty line"), why;
		if (l[0] == '#') {
			char kind[8], name[128];
			int used = 0;
			if (sscanf(l, "# %7s %127s %n", kind, name, &used) < 2)
				return snprintf(why, whylen, "bad comment: %.200s", l), why;
			bool is_help = !strcmp(kind, "HELP"), is_type = !strcmp(kind, "TYPE");
			if (!is_help && !is_type)
				continue; /* another comment */
			if (!name_ok(name, strlen(name), true))
				return snprintf(why, whylen, "bad name: %.200s", l), why;
			family *f = NULL;
			for (size_t i = 0; i < nf; i++)
				if (!strcmp(fams[i].name, name))
					f = &fams[i];
			if (!f) {
				f = &fams[nf++];
				memset(f, 0, sizeof *f);
				snprintf(f->name, sizeof f->name, "%s", name);
			}
			if (cur && cur != f)
				cur->closed = true;
			cur = f;
			if (f->closed || f->had_samples)
				return snprintf(why, whylen, "%s after %s's samples: %.200s", kind, name, l), why;
			if (is_help) {
				if (f->help)
					return snprintf(why, whylen, "two HELPs for %s", name), why;
				f->help = true;
			} else {
				const char *t = l + used;
				if (f->typed)
					return snprintf(why, whylen, "two TYPEs for %s", name), why;
				if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") &&
				    strcmp(t, "summary") && strcmp(t, "untyped"))
					return snprintf(why, whylen, "bad type: %.200s", l), why;
				snprintf(f->type, sizeof f->type, "%s", t);
				f->typed = true;
				if (!strcmp(t, "counter") &&
				    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
					return snprintf(why, whylen, "a counter not named _total: %s", name), why;
			}
			continue;
		}
		/* A sample: name, labels, value. */
		size_t i = 0;
		while (l[i] && l[i] != '{' && l[i] != ' ')
			i++;
		if (!name_ok(l, i, true))
			return snprintf(why, whylen, "bad metric name: %.200s", l), why;
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)i, l);
		family *f = NULL;
		for (size_t k = 0; k < nf; k++)
			if (!strcmp(fams[k].name, name))
				f = &fams[k];
		if (!f || !f->typed)
			return snprintf(why, whylen, "a sample before its TYPE: %.200s", l), why;
		if (f != cur || f->closed)
			return snprintf(why, whylen, "%s's samples are not together", name), why;
		f->had_samples = true;
		if (l[i] == '{') {
			i++;
			for (;;) {
				size_t s = i;
				while (l[i] && l[i] != '=')
					i++;
				if (!name_ok(l + s, i - s, false) || l[i] != '=' || l[i + 1] != '"')
					return snprintf(why, whylen, "bad label: %.200s", l), why;
				i += 2;
				while (l[i] && l[i] != '"') {
					if (l[i] == '\\') {
						if (l[i + 1] != '\\' && l[i + 1] != '"' && l[i + 1] != 'n')
							return snprintf(why, whylen, "bad escape: %.200s", l), why;
						i++;
					}
					i++;
				}
				if (l[i] != '"')
					return snprintf(why, whylen, "unterminated label value: %.200s", l), why;
				i++;
				if (l[i] == ',') {
					i++;
					continue;
				}
				if (l[i] == '}') {
					i++;
					break;
				}
				return snprintf(why, whylen, "bad labels: %.200s", l), why;
			}
		}
		if (l[i] != ' ')
			return snprintf(why, whylen, "no value: %.200s", l), why;
		char key[200];
		snprintf(key, sizeof key, "%.*s", (int)i, l);
		for (size_t k = 0; k < ns; k++)
			if (!strcmp(series[k], key))
				return snprintf(why, whylen, "a series twice: %s", key), why;
		if (ns < sizeof series / sizeof series[0])
			snprintf(series[ns++], sizeof series[0], "%s", key);
		char value[64], ts[64];
		int k = sscanf(l + i + 1, "%63s %63s", value, ts);
		if (k < 1 || !value_ok(value))
			return snprintf(why, whylen, "bad value: %.200s", l), why;
		if (k == 2) {
			for (char *c = ts + (ts[0] == '-'); *c; c++)
				if (!isdigit((unsigned char)*c))
					return snprintf(why, whylen, "bad timestamp: %.200s", l), why;
		}
	}
	return NULL;
}

/* The value of the sample key ("name" or "name{labels}") in text. */
static double prom_value(const char *text, const char *key)
{
	char pat[256];
	snprintf(pat, sizeof pat, "\n%s ", key);
	const char *p = strstr(text, pat);
	cr_assert(p, "no %s", key);
	return strtod(p + strlen(pat), NULL);
}

Test(observer, the_prometheus_checker_catches_what_it_should)
{
	char why[256];
	cr_assert_null(prom_check("# HELP a_total x\n# TYPE a_total counter\na_total 1\n", why, sizeof why));
	cr_assert_not_null(prom_check("a 1\n", why, sizeof why), "no TYPE");
	cr_assert_not_null(prom_check("# TYPE a counter\na 1\n", why, sizeof why), "counter without _total");
	cr_assert_not_null(prom_check("# TYPE a gauge\na 1\na 2\n", why, sizeof why), "twice");
	cr_assert_not_null(prom_check("# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 1\n",
	                              why, sizeof why), "apart");
	cr_assert_not_null(prom_check("# TYPE a gauge\na{1x=\"1\"} 1\n", why, sizeof why), "label name");
	cr_assert_not_null(prom_check("# TYPE a gauge\na{x=1} 1\n", why, sizeof why), "label quotes");
	cr_assert_not_null(prom_check("# TYPE a gauge\na one\n", why, sizeof why), "value");
	cr_assert_not_null(prom_check("# TYPE a-b gauge\na-b 1\n", why, sizeof why), "name");
	cr_assert_not_null(prom_check("# TYPE a gauge\n# TYPE a gauge\na 1\n", why, sizeof why), "TYPE twice");
	cr_assert_not_null(prom_check("# TYPE a gauge\na 1", why, sizeof why), "last newline");
	cr_assert_null(prom_check("# TYPE a gauge\na{x=\"q\\\"\\n\"} -1.5e3 1700000000000\n", why, sizeof why),
	               "%s", why);
}

Test(observer, metrics_parse_as_prometheus_text_with_live_values)
{
	start_vm_and_observer(2, NULL);
	kr_child_spec spec = { .id = "c", .start = crasher };
	kr_pid sup = kr_sup_start_link(NULL, &spec, 1, NULL);
	kr_sup_child c;
	cr_assert_eq(kr_sup_which_children(sup, &c, 1), 1);
	http_res r;
	http_do("GET", "/metrics", NULL, NULL, &r);
	cr_assert_eq(r.status, 200);
	char type[128];
	cr_assert_str_eq(http_header(&r, "Content-Type", type, sizeof type),
	                 "text/plain; version=0.0.4; charset=utf-8");
	char why[512];
	const char *bad = prom_check(r.body, why, sizeof why);
	cr_assert_null(bad, "%s\n%s", bad, r.body);
	double sent = prom_value(r.body, "krill_messages_sent_total");
	double restarts = prom_value(r.body, "krill_supervisor_restarts_total");
	double procs = prom_value(r.body, "krill_processes");
	cr_assert(procs >= 3, "processes %.0f", procs);
	for (int i = 0; i < 2; i++) {
		char key[128];
		snprintf(key, sizeof key, "krill_scheduler_busy_seconds_total{scheduler=\"%d\"}", i);
		cr_assert(prom_value(r.body, key) >= 0);
		snprintf(key, sizeof key, "krill_scheduler_run_queue{scheduler=\"%d\"}", i);
		prom_value(r.body, key);
	}
	cr_assert(prom_value(r.body, "krill_memory_bytes{kind=\"stacks\"}") > 0);
	cr_assert_null(strstr(r.body, "scheduler=\"2\""), "two schedulers");
	http_free(&r);
	/* Messages sent and a restart show at the next scrape. */
	for (int i = 0; i < 500; i++)
		kr_send(c.pid, 1, NULL, 0);
	kr_send(c.pid, 66, NULL, 0);
	kr_sup_child c2;
	cr_assert(VM_WAIT(kr_sup_which_children(sup, &c2, 1) == 1 && c2.restarts == 1, 5000));
	http_do("GET", "/metrics", NULL, NULL, &r);
	cr_assert_null(prom_check(r.body, why, sizeof why), "%s", why);
	cr_assert(prom_value(r.body, "krill_messages_sent_total") >= sent + 500);
	cr_assert_eq(prom_value(r.body, "krill_supervisor_restarts_total"), restarts + 1);
	http_free(&r);
	stop_all();
}

/* ---- the page's files ---- */

Test(observer, serves_the_page_and_its_files_and_head)
{
	start_vm_and_observer(1, NULL);
	const char *paths[] = { "/", "/index.html", "/app.js", "/app.css" };
	const char *types[] = { "text/html", "text/html", "text/javascript", "text/css" };
	for (int i = 0; i < 4; i++) {
		http_res r;
		http_do("GET", paths[i], NULL, NULL, &r);
		cr_assert_eq(r.status, 200, "%s", paths[i]);
		cr_assert(r.len > 0, "%s is empty", paths[i]);
		char type[128];
		cr_assert(!strncmp(http_header(&r, "Content-Type", type, sizeof type), types[i],
		                   strlen(types[i])), "%s: %s", paths[i], type);
		size_t len = r.len;
		http_free(&r);
		http_do("HEAD", paths[i], NULL, NULL, &r);
		cr_assert_eq(r.status, 200);
		char cl[32];
		cr_assert_eq((size_t)atol(http_header(&r, "Content-Length", cl, sizeof cl)), len);
		cr_assert_eq(r.len, 0, "HEAD has no body");
		http_free(&r);
		/* ... and nothing follows the head: a GET on the same
		 * connection gets its own answer. */
		int fd = http_connect(obs_port);
		char req[128];
		int n = snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\n\r\nGET /api/nodes HTTP/1.1\r\n\r\n",
		                 paths[i]);
		send_all(fd, req, (size_t)n);
		cr_assert(http_read(fd, &r, true));
		http_free(&r);
		cr_assert(http_read(fd, &r, false));
		cr_assert_eq(r.status, 200);
		cr_assert(r.body[0] == '{', "the GET's answer, not the page: %.40s", r.body);
		http_free(&r);
		close(fd);
	}
	cr_assert_eq(error_status("GET", "/nothing/here", NULL), 404);
	cr_assert_eq(error_status("GET", "/api/nothing", NULL), 404);
	stop_all();
}

/* ---- bad requests ---- */

/* A program's own work goes on while the observer is abused: a ping-pong
 * counts its rounds. */
static _Atomic long rounds;

static void pong(void *arg)
{
	(void)arg;
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, 100))
			continue;
		if (m->tag == 99) {
			kr_msg_free(m);
			return;
		}
		kr_send(m->sender, 2, NULL, 0);
		kr_msg_free(m);
	}
}

static void ping(void *arg)
{
	kr_pid p = (kr_pid)(intptr_t)arg;
	while (!atomic_load(&busy_until_told) && !atomic_load(&vm_abort)) {
		kr_send(p, 1, NULL, 0);
		kr_msg *m;
		if (kr_recv_tag(&m, 2, 5000) == 0) {
			kr_msg_free(m);
			atomic_fetch_add(&rounds, 1);
		}
	}
	kr_send(p, 99, NULL, 0);
}

static void start_program(void)
{
	atomic_store(&busy_until_told, 0);
	atomic_store(&rounds, 0);
	kr_spawn(ping, (void *)(intptr_t)kr_spawn(pong, NULL));
}

/* The program made progress since a count of rounds was taken. */
static void program_goes_on(long since)
{
	cr_assert(VM_WAIT(atomic_load(&rounds) > since + 100, 10000), "the program stalled");
}

/* What comes back on a raw connection after sending bytes: the status
 * (0 if none came), and whether the connection was closed after it. */
static int raw_exchange(const void *bytes, size_t len, bool *closed)
{
	int fd = http_connect(obs_port);
	send_all(fd, bytes, len);
	http_res r;
	bool whole = http_read(fd, &r, false);
	int status = r.status;
	if (status) {
		jv *all;
		cr_assert(whole && json_parse(r.body, r.len, &all), "%d: %s", status, r.body);
		json_free(all);
	}
	http_free(&r);
	char c;
	*closed = recv(fd, &c, 1, 0) <= 0;
	close(fd);
	return status;
}

Test(observer, garbage_gets_400_and_the_program_goes_on)
{
	start_vm_and_observer(2, NULL);
	start_program();
	const char *bad[] = {
		"\x01\x02\x03\x04 hello\r\n\r\n",
		"GET\r\n\r\n",
		"GET /api/stats\r\n\r\n",
		"GET api/stats HTTP/1.1\r\n\r\n",
		"GET /api/stats HTTP/1.1\r\nno colon here\r\n\r\n",
		"GET /api/stats HTTP/1.1\r\nContent-Length: twelve\r\n\r\n",
		"GET /api/stats HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"GET /api/st\x7f" "ats HTTP/1.1\r\n\r\n",
		"GET /api/stats HTTP/1.1\r\nX: a\x01z\r\n\r\n",
		"GET /api/stats HTTX/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long before = atomic_load(&rounds);
		bool closed;
		int status = raw_exchange(bad[i], strlen(bad[i]), &closed);
		cr_assert_eq(status, 400, "request %zu: %d", i, status);
		cr_assert(closed, "request %zu: not closed", i);
		program_goes_on(before);
	}
	bool closed;
	cr_assert_eq(raw_exchange("GET / HTTP/2.0\r\n\r\n", 18, &closed), 505);
	const char *chunked = "POST /api/kill?pid=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
	cr_assert_eq(raw_exchange(chunked, strlen(chunked), &closed), 501);
	/* Random bytes by the kilobyte. */
	srand(7);
	for (int k = 0; k < 20; k++) {
		char junk[2000];
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = (char)(rand() & 0xff);
		junk[sizeof junk - 4] = '\r', junk[sizeof junk - 3] = '\n';
		junk[sizeof junk - 2] = '\r', junk[sizeof junk - 1] = '\n';
		int status = raw_exchange(junk, sizeof junk, &closed);
		cr_assert(status == 400 || status == 431, "%d", status);
	}
	jv *all;
	get_json("/api/stats", &all);
	json_free(all);
	atomic_store(&busy_until_told, 1);
	stop_all();
}

Test(observer, huge_headers_get_431_and_huge_bodies_413)
{
	start_vm_and_observer(2, NULL);
	start_program();
	size_t n = 64 << 10;
	char *big = malloc(n + 64);
	int k = snprintf(big, 64, "GET /api/stats HTTP/1.1\r\nX-Big: ");
	memset(big + k, 'a', n - (size_t)k);
	memcpy(big + n, "\r\n\r\n", 5);
	long before = atomic_load(&rounds);
	bool closed;
	cr_assert_eq(raw_exchange(big, n + 4, &closed), 431);
	cr_assert(closed);
	/* Many small headers add up the same way. */
	size_t at = (size_t)snprintf(big, n, "GET /api/stats HTTP/1.1\r\n");
	while (at < n - 40)
		at += (size_t)snprintf(big + at, n - at, "X-H%zu: v\r\n", at);
	at += (size_t)snprintf(big + at, n - at, "\r\n");
	cr_assert_eq(raw_exchange(big, at, &closed), 431);
	free(big);
	const char *huge = "POST /api/kill?pid=1 HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n";
	cr_assert_eq(raw_exchange(huge, strlen(huge), &closed), 413);
	cr_assert(closed);
	const char *over = "POST /api/kill?pid=1 HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
	cr_assert_eq(raw_exchange(over, strlen(over), &closed), 413);
	char small[3000];
	k = snprintf(small, sizeof small, "POST /api/kill?pid=1 HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
	memset(small + k, 'b', 2000);
	cr_assert_eq(raw_exchange(small, (size_t)k + 2000, &closed), 413);
	program_goes_on(before);
	atomic_store(&busy_until_told, 1);
	stop_all();
}

Test(observer, a_slow_request_gets_408_after_its_deadline)
{
	kr_observer_opts o = { .request_timeout_ms = 300 };
	start_vm_and_observer(2, &o);
	start_program();
	long before = atomic_load(&rounds);
	/* Slowloris: a line, then a header a byte at a time, never ending. */
	int fd = http_connect(obs_port);
	int64_t t0 = vm_now_ns();
	send_all(fd, "GET /api/stats HTTP/1.1\r\n", 25);
	http_res r;
	bool got = false;
	for (int i = 0; i < 100 && !got; i++) {
		send_all(fd, "X", 1);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		got = poll(&p, 1, 50) > 0;
	}
	cr_assert(got, "no answer to a request that never ends");
	cr_assert(http_read(fd, &r, false));
	double ms = vm_ms_since(t0);
	cr_assert_eq(r.status, 408, "%d", r.status);
	cr_assert(ms >= 290, "answered after %.0f ms, before its deadline", ms);
	http_free(&r);
	char c;
	cr_assert(recv(fd, &c, 1, 0) <= 0, "closed after");
	close(fd);
	/* An idle connection is closed without a word. */
	fd = http_connect(obs_port);
	cr_assert(recv(fd, &c, 1, 0) == 0, "an idle connection is closed");
	close(fd);
	program_goes_on(before);
	/* And a request that comes in time, in pieces, is answered. */
	fd = http_connect(obs_port);
	const char *req = "GET /api/stats HTTP/1.1\r\nConnection: close\r\n\r\n";
	for (const char *p = req; *p; p++) {
		send_all(fd, p, 1);
		usleep(1000);
	}
	cr_assert(http_read(fd, &r, false));
	cr_assert_eq(r.status, 200);
	http_free(&r);
	close(fd);
	atomic_store(&busy_until_told, 1);
	stop_all();
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

Test(observer, connections_past_the_limit_get_503_and_the_rest_are_served)
{
	raise_fd_limit();
	kr_observer_opts o = { .max_connections = 16 };
	start_vm_and_observer(2, &o);
	start_program();
	long before = atomic_load(&rounds);
	int n = 2000 / VM_LIGHT_DIV + 100;
	int *fds = malloc((size_t)n * sizeof *fds);
	for (int i = 0; i < n; i++)
		fds[i] = http_connect(obs_port); /* idle: each holds its connection */
	int refused = 0, silent = 0;
	for (int i = 0; i < n; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		if (poll(&p, 1, i < 16 ? 0 : 10000) <= 0) {
			silent++;
			continue;
		}
		http_res r;
		if (http_read(fds[i], &r, false) && r.status == 503)
			refused++;
		http_free(&r);
	}
	cr_assert(silent <= 16, "%d connections held at once (at most 16)", silent);
	cr_assert(refused >= n - 16, "%d refused of %d", refused, n);
	program_goes_on(before);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	/* Once they have gone, connections are served again. */
	jv *all = NULL;
	bool served = false;
	for (int i = 0; i < 100 && !served; i++) {
		int fd = http_connect(obs_port);
		send_all(fd, "GET /api/stats HTTP/1.1\r\nConnection: close\r\n\r\n", 47);
		http_res r;
		served = http_read(fd, &r, false) && r.status == 200;
		http_free(&r);
		close(fd);
		if (!served)
			usleep(100000);
	}
	cr_assert(served);
	json_free(all);
	atomic_store(&busy_until_told, 1);
	stop_all();
}

Test(observer, wrong_methods_get_405_with_allow)
{
	start_vm_and_observer(1, NULL);
	const char *get_only[] = { "/api/stats", "/api/processes", "/api/trees", "/api/nodes",
		                   "/api/process?pid=1", "/metrics", "/" };
	for (size_t i = 0; i < sizeof get_only / sizeof get_only[0]; i++) {
		const char *methods[] = { "POST", "DELETE", "PUT" };
		for (int k = 0; k < 3; k++) {
			http_res r;
			http_do(methods[k], get_only[i], NULL, NULL, &r);
			cr_assert_eq(r.status, 405, "%s %s: %d", methods[k], get_only[i], r.status);
			char allow[64];
			cr_assert_str_eq(http_header(&r, "Allow", allow, sizeof allow), "GET, HEAD");
			http_free(&r);
		}
	}
	http_res r;
	http_do("GET", "/api/kill?pid=1", NULL, NULL, &r);
	cr_assert_eq(r.status, 405);
	char allow[64];
	cr_assert_str_eq(http_header(&r, "Allow", allow, sizeof allow), "POST");
	http_free(&r);
	stop_all();
}

Test(observer, a_kept_alive_connection_takes_requests_one_after_another)
{
	start_vm_and_observer(1, NULL);
	int fd = http_connect(obs_port);
	const char *two = "GET /api/nodes HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n";
	send_all(fd, two, strlen(two)); /* pipelined */
	http_res r;
	cr_assert(http_read(fd, &r, false));
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "\"nodes\""));
	http_free(&r);
	cr_assert(http_read(fd, &r, false));
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "krill_processes"));
	http_free(&r);
	for (int i = 0; i < 5; i++) {
		send_all(fd, "GET /api/stats HTTP/1.1\r\n\r\n", 27);
		cr_assert(http_read(fd, &r, false));
		cr_assert_eq(r.status, 200);
		http_free(&r);
	}
	/* HTTP/1.0 closes unless asked. */
	send_all(fd, "GET /api/stats HTTP/1.0\r\n\r\n", 27);
	cr_assert(http_read(fd, &r, false));
	http_free(&r);
	char c;
	cr_assert(recv(fd, &c, 1, 0) <= 0);
	close(fd);
	stop_all();
}

/* ---- the observer's processes are supervised ---- */

Test(observer, its_acceptor_killed_is_restarted_and_it_serves_on)
{
	start_vm_and_observer(2, NULL);
	jv *all;
	jv *v = get_json("/api/trees", &all);
	jv *trees = jneed(v, "trees", J_ARR);
	kr_pid acceptor = 0, sup = 0;
	for (size_t i = 0; i < trees->n; i++) {
		jv *a = tree_child(trees->items[i], "acceptor");
		if (a) {
			acceptor = (kr_pid)jnum(a, "pid");
			sup = (kr_pid)jnum(trees->items[i], "pid");
			cr_assert_str_eq(jneed(trees->items[i], "name", J_STR)->str, "krill_observer_sup");
		}
	}
	json_free(all);
	cr_assert(acceptor > 0, "the observer's tree is listed, with its acceptor");
	cr_assert_eq(kr_exit_sig(acceptor, KR_EXIT_KILL), 0);
	kr_sup_child kids[4];
	cr_assert(VM_WAIT(kr_sup_which_children(sup, kids, 4) == 4 && kids[3].restarts == 1 &&
	                          kids[3].pid != acceptor, 5000));
	v = get_json("/api/trees", &all);
	json_free(all);
	stop_all();
}
