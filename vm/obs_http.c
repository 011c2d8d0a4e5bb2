/*
 * obs_http.c - the observer's HTTP/1.x: parsing a request's head and
 * writing a response's (see obs.h). No I/O here: obs_conn.c reads and
 * writes. The parser reads only the bytes it is given, trusts nothing in
 * them, and answers anything it does not take with a status: a request
 * line that is not METHOD SP /target SP HTTP/1.x, a header line without a
 * name and a colon, a control byte, a Content-Length that is not one
 * number, are 400; a body over KRX_OBS_MAX_BODY is 413; a transfer coding
 * (chunked bodies) 501; another HTTP version 505. Lines end with CRLF or,
 * as RFC 9112 allows a recipient to accept, a bare LF.
 */
#include <string.h>

#include "obs.h"

size_t krx_obs_http_head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* RFC 9110's tchar: what a method or a header's name is made of. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The line at *at (up to LF, without the CR before it): its start and
 * length, *at moved past it. False at the end of the head. */
static bool next_line(const char *buf, size_t len, size_t *at, const char **line, size_t *n)
{
	if (*at >= len)
		return false;
	const char *s = buf + *at;
	const char *lf = memchr(s, '\n', len - *at);
	if (!lf)
		return false;
	*line = s;
	*n = (size_t)(lf - s);
	if (*n && s[*n - 1] == '\r')
		(*n)--;
	*at = (size_t)(lf - buf) + 1;
	return true;
}

static bool eq_nocase(const char *a, size_t n, const char *b)
{
	if (strlen(b) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

/* Does the comma-separated list (n bytes at v) hold token (lower case)? */
static bool list_has(const char *v, size_t n, const char *token)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t start = i;
		while (i < n && v[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end > start && eq_nocase(v + start, end - start, token))
			return true;
	}
	return false;
}

/* The request line: 0 or a status. */
static int parse_request_line(const char *l, size_t n, krx_obs_req *rq, int *minor)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)l[i]))
		i++;
	if (i == 0 || i >= n || l[i] != ' ')
		return 400;
	if (i == 3 && !memcmp(l, "GET", 3))
		rq->method = KRX_OBS_GET;
	else if (i == 4 && !memcmp(l, "HEAD", 4))
		rq->method = KRX_OBS_HEAD;
	else if (i == 4 && !memcmp(l, "POST", 4))
		rq->method = KRX_OBS_POST;
	else
		rq->method = KRX_OBS_OTHER;
	size_t t = ++i;
	while (i < n && l[i] != ' ') {
		unsigned char c = (unsigned char)l[i];
		if (c <= 0x20 || c == 0x7f)
			return 400;
		i++;
	}
	if (i == t || l[t] != '/' || i >= n)
		return 400; /* origin-form only: "/path?query" */
	const char *target = l + t;
	size_t tlen = i - t;
	const char *q = memchr(target, '?', tlen);
	rq->path = target;
	rq->path_len = q ? (size_t)(q - target) : tlen;
	rq->query = q ? q + 1 : NULL;
	rq->query_len = q ? tlen - rq->path_len - 1 : 0;
	const char *v = l + i + 1;
	size_t vn = n - i - 1;
	if (vn != 8 || memcmp(v, "HTTP/", 5) || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
	    v[7] < '0' || v[7] > '9')
		return 400;
	if (v[5] != '1')
		return 505;
	*minor = v[7] - '0';
	return 0;
}

/* Content-Length's value (n bytes at v): 0, 400 (not a number, or not the
 * one given before), 413 (too big). */
static int content_length(const char *v, size_t n, krx_obs_req *rq, bool *seen)
{
	if (!n)
		return 400;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 400;
		if (x > (UINT64_MAX - 9) / 10)
			return 413;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (*seen && x != rq->content_length)
		return 400;
	*seen = true;
	rq->content_length = (size_t)x;
	return x > KRX_OBS_MAX_BODY ? 413 : 0;
}

int krx_obs_http_parse(const char *buf, size_t len, krx_obs_req *rq)
{
	*rq = (krx_obs_req){ 0 };
	size_t at = 0;
	const char *l;
	size_t n;
	int minor = 0;
	if (!next_line(buf, len, &at, &l, &n))
		return 400;
	int rc = parse_request_line(l, n, rq, &minor);
	if (rc)
		return rc;
	bool close = false, keep = false, length_seen = false;
	while (next_line(buf, len, &at, &l, &n) && n) {
		size_t i = 0;
		while (i < n && is_tchar((unsigned char)l[i]))
			i++;
		if (i == 0 || i >= n || l[i] != ':')
			return 400; /* no name, or a space before the colon (RFC 9112) */
		const char *name = l;
		size_t nlen = i++;
		while (i < n && (l[i] == ' ' || l[i] == '\t'))
			i++;
		size_t end = n;
		while (end > i && (l[end - 1] == ' ' || l[end - 1] == '\t'))
			end--;
		for (size_t k = i; k < end; k++) {
			unsigned char c = (unsigned char)l[k];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return 400;
		}
		const char *v = l + i;
		size_t vn = end - i;
		if (eq_nocase(name, nlen, "content-length")) {
			if ((rc = content_length(v, vn, rq, &length_seen)))
				return rc;
		} else if (eq_nocase(name, nlen, "transfer-encoding")) {
			return 501;
		} else if (eq_nocase(name, nlen, "connection")) {
			close |= list_has(v, vn, "close");
			keep |= list_has(v, vn, "keep-alive");
		}
	}
	rq->keep_alive = !close && (minor >= 1 || keep);
	return 0;
}

int krx_obs_query_u64(const char *q, size_t len, const char *name, uint64_t *out)
{
	size_t nlen = strlen(name);
	size_t i = 0;
	while (q && i < len) {
		size_t start = i;
		while (i < len && q[i] != '&')
			i++;
		const char *p = q + start;
		size_t plen = i - start;
		i++;
		if (plen < nlen || memcmp(p, name, nlen) || (plen > nlen && p[nlen] != '='))
			continue;
		if (plen <= nlen + 1)
			return -1; /* "name" or "name=" */
		uint64_t x = 0;
		for (size_t k = nlen + 1; k < plen; k++) {
			if (p[k] < '0' || p[k] > '9' || x > (UINT64_MAX - 9) / 10)
				return -1;
			x = x * 10 + (uint64_t)(p[k] - '0');
		}
		*out = x;
		return 1;
	}
	return 0;
}

const char *krx_obs_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

void krx_obs_http_head(krx_obs_buf *b, int status, const char *type, size_t body_len,
                       bool keep_alive, const char *allow)
{
	krx_obs_printf(b,
	               "HTTP/1.1 %d %s\r\n"
	               "Content-Type: %s\r\n"
	               "Content-Length: %zu\r\n"
	               "Cache-Control: no-store\r\n"
	               "X-Content-Type-Options: nosniff\r\n"
	               "Connection: %s\r\n",
	               status, krx_obs_http_reason(status), type, body_len,
	               keep_alive ? "keep-alive" : "close");
	if (allow)
		krx_obs_printf(b, "Allow: %s\r\n", allow);
	krx_obs_puts(b, "\r\n");
}
