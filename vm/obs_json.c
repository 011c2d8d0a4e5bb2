/*
 * obs_json.c - the observer's response buffer and JSON's small pieces (see
 * obs.h). The buffer lives on the calling process's heap: kr_realloc past
 * the connection's heap limit ends that process alone (KR_EXIT_HEAP_LIMIT),
 * and a buffer that cannot grow (memory short) stops growing and says so
 * (failed): the connection's process then answers 500 (obs_conn.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "obs.h"

void krx_obs_buf_free(krx_obs_buf *b)
{
	kr_free(b->p);
	*b = (krx_obs_buf){ 0 };
}

/* Room for n more bytes (and a NUL): false if memory is short. */
static bool reserve(krx_obs_buf *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->cap - b->len > n)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len <= n)
		cap *= 2;
	char *p = kr_realloc(b->p, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void krx_obs_put(krx_obs_buf *b, const void *s, size_t n)
{
	if (!n || !reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void krx_obs_puts(krx_obs_buf *b, const char *s)
{
	krx_obs_put(b, s, strlen(s));
}

void krx_obs_printf(krx_obs_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char small[256];
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		krx_obs_put(b, small, (size_t)n);
		return;
	}
	if (!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* The length of the UTF-8 sequence at s (n bytes left) if it is a valid
 * one (no overlong forms, no surrogates, at most U+10FFFF), else 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	unsigned cp = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void krx_obs_json_strn(krx_obs_buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	krx_obs_put(b, "\"", 1);
	size_t run = 0; /* bytes at u + i - run that need no escape */
	for (size_t i = 0; i < n;) {
		unsigned c = u[i];
		size_t len = c >= 0x20 && c != '"' && c != '\\' ? utf8_len(u + i, n - i) : 0;
		if (len) {
			i += len;
			run += len;
			continue;
		}
		krx_obs_put(b, u + i - run, run);
		run = 0;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			krx_obs_put(b, e, 2);
		} else if (c < 0x20) {
			krx_obs_printf(b, "\\u%04x", c);
		} else {
			krx_obs_puts(b, "\\ufffd"); /* not UTF-8 */
		}
		i++;
	}
	krx_obs_put(b, u + n - run, run);
	krx_obs_put(b, "\"", 1);
}

void krx_obs_json_str(krx_obs_buf *b, const char *s)
{
	if (!s) {
		krx_obs_puts(b, "null");
		return;
	}
	krx_obs_json_strn(b, s, strlen(s));
}

void krx_obs_json_u64(krx_obs_buf *b, uint64_t v)
{
	krx_obs_printf(b, "%llu", (unsigned long long)v);
}

void krx_obs_json_double(krx_obs_buf *b, double v)
{
	if (!isfinite(v))
		v = 0; /* JSON has no NaN nor infinity */
	krx_obs_printf(b, "%.6g", v);
}

void krx_obs_json_error(krx_obs_buf *b, const char *msg)
{
	krx_obs_puts(b, "{\"error\": ");
	krx_obs_json_str(b, msg);
	krx_obs_puts(b, "}");
}
