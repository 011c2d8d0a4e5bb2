/*
 * ext.c - the external term format: a bounds-checking walk over what
 * peers send, and hand-written encoders for what krill sends (ext.h).
 */
#include "ext.h"

#include <ei.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "peer.h"

/* ---- writing ---- */

void krd_buf_init(krd_buf *b, void *stack, size_t cap)
{
	*b = (krd_buf){.p = stack, .cap = stack ? cap : 0};
}

void krd_buf_free(krd_buf *b)
{
	if (b->heap)
		free(b->p);
	*b = (krd_buf){0};
}

static bool grow(krd_buf *b, size_t need)
{
	if (b->fail)
		return false;
	if (need <= b->cap - b->len)
		return true;
	size_t cap = b->cap < 128 ? 256 : b->cap * 2;
	while (cap - b->len < need)
		cap *= 2;
	uint8_t *p = b->heap ? realloc(b->p, cap) : malloc(cap);
	if (!p) {
		b->fail = true;
		return false;
	}
	if (!b->heap && b->len)
		memcpy(p, b->p, b->len);
	b->p = p;
	b->cap = cap;
	b->heap = true;
	return true;
}

void krd_put(krd_buf *b, const void *data, size_t len)
{
	if (!grow(b, len))
		return;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

void krd_put_u8(krd_buf *b, uint8_t v)
{
	krd_put(b, &v, 1);
}

void krd_put_u16(krd_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	krd_put(b, x, 2);
}

void krd_put_u32(krd_buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	krd_put(b, x, 4);
}

void krd_put_tuple(krd_buf *b, unsigned arity)
{
	if (arity < 256) {
		krd_put_u8(b, ERL_SMALL_TUPLE_EXT);
		krd_put_u8(b, (uint8_t)arity);
	} else {
		krd_put_u8(b, ERL_LARGE_TUPLE_EXT);
		krd_put_u32(b, arity);
	}
}

void krd_put_atom(krd_buf *b, const char *name)
{
	size_t n = strlen(name);
	if (n < 256) {
		krd_put_u8(b, ERL_SMALL_ATOM_UTF8_EXT);
		krd_put_u8(b, (uint8_t)n);
	} else {
		krd_put_u8(b, ERL_ATOM_UTF8_EXT);
		krd_put_u16(b, (uint16_t)n);
	}
	krd_put(b, name, n);
}

void krd_put_uint(krd_buf *b, uint64_t v)
{
	if (v < 256) {
		krd_put_u8(b, ERL_SMALL_INTEGER_EXT);
		krd_put_u8(b, (uint8_t)v);
		return;
	}
	if (v <= INT32_MAX) {
		krd_put_u8(b, ERL_INTEGER_EXT);
		krd_put_u32(b, (uint32_t)v);
		return;
	}
	uint8_t digits[8];
	unsigned n = 0;
	for (; v; v >>= 8)
		digits[n++] = (uint8_t)v; /* little-endian, as SMALL_BIG_EXT wants */
	krd_put_u8(b, ERL_SMALL_BIG_EXT);
	krd_put_u8(b, (uint8_t)n);
	krd_put_u8(b, 0); /* sign: positive */
	krd_put(b, digits, n);
}

void krd_put_binary(krd_buf *b, const void *data, size_t len)
{
	krd_put_u8(b, ERL_BINARY_EXT);
	krd_put_u32(b, (uint32_t)len);
	krd_put(b, data, len);
}

bool krd_put_pid(krd_buf *b, kr_pid pid)
{
	krd_pid_parts parts;
	if (!krd_pid_split(pid, &parts))
		return false;
	krd_put_u8(b, ERL_NEW_PID_EXT);
	krd_put_atom(b, parts.node);
	krd_put_u32(b, parts.id);
	krd_put_u32(b, parts.serial);
	krd_put_u32(b, parts.creation);
	return true;
}

void krd_put_ref(krd_buf *b, kr_ref ref)
{
	krd_put_u8(b, ERL_NEWER_REFERENCE_EXT);
	krd_put_u16(b, 3);
	krd_put_atom(b, krd_me.name);
	krd_put_u32(b, krd_me.creation);
	krd_put_u32(b, 0);
	krd_put_u32(b, (uint32_t)ref);
	krd_put_u32(b, (uint32_t)((uint64_t)ref >> 32));
}

void krd_put_reason(krd_buf *b, const kr_reason *r)
{
	switch (r->kind) {
	case KR_EXIT_NORMAL:
	case KR_EXIT_SHUTDOWN:
	case KR_EXIT_KILLED:
	case KR_EXIT_NOPROC:
	case KR_EXIT_NOCONNECTION:
	case KR_EXIT_KILL:
		krd_put_atom(b, kr_exit_kind_name(r->kind));
		return;
	}
	krd_put_tuple(b, 2);
	krd_put_atom(b, kr_exit_kind_name(r->kind));
	krd_put_binary(b, r->text, strnlen(r->text, sizeof r->text));
}

/* ---- reading: the walk ---- */

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Characters of a UTF-8 atom: bytes that do not continue a sequence. */
static size_t utf8_chars(const uint8_t *p, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += (p[i] & 0xc0) != 0x80;
	return c;
}

/* An atom at p[0..len): its total size, or 0 when malformed. */
static size_t atom_size(const uint8_t *p, size_t len)
{
	if (len < 2)
		return 0;
	size_t head, n;
	switch (p[0]) {
	case ERL_SMALL_ATOM_EXT:
	case ERL_SMALL_ATOM_UTF8_EXT:
		head = 2, n = p[1];
		break;
	case ERL_ATOM_EXT:
	case ERL_ATOM_UTF8_EXT:
		if (len < 3)
			return 0;
		head = 3, n = be16(p + 1);
		break;
	default:
		return 0;
	}
	if (n > len - head)
		return 0;
	bool utf8 = p[0] == ERL_SMALL_ATOM_UTF8_EXT || p[0] == ERL_ATOM_UTF8_EXT;
	if ((utf8 ? utf8_chars(p + head, n) : n) > KRD_MAX_ATOM_CHARS)
		return 0;
	return head + n;
}

/* A node-bound term (pid, port, reference): an atom, then fixed bytes. */
static size_t node_term_size(const uint8_t *p, size_t len, size_t before, size_t after)
{
	if (len < before)
		return 0;
	size_t a = atom_size(p + before, len - before);
	if (!a || after > len - before - a)
		return 0;
	return before + a + after;
}

static size_t head_size(const uint8_t *p, size_t len, uint64_t *kids);

/* One of the terms inside a fun: of one of the n tags (none of them a term
 * with elements, so this never comes back to fun_size), else 0. */
static size_t fun_part(const uint8_t *p, size_t len, const char *tags, size_t n)
{
	uint64_t kids;
	if (!len || !memchr(tags, p[0], n))
		return 0;
	return head_size(p, len, &kids);
}

/* A NEW_FUN_EXT: Size (counting itself, not the tag), Arity, Uniq[16],
 * Index, NumFree, then Module (an atom), OldIndex and OldUniq (integers)
 * and Pid, then the free variables. libei decodes those four terms
 * without looking at Size, so they must lie inside it; the free variables
 * it takes as bytes, and so does the walk. */
static size_t fun_size(const uint8_t *p, size_t len)
{
	static const struct {
		char tags[4];
		size_t n;
	} parts[4] = {
		{{ERL_ATOM_EXT, ERL_SMALL_ATOM_EXT, ERL_ATOM_UTF8_EXT, ERL_SMALL_ATOM_UTF8_EXT}, 4},
		{{ERL_SMALL_INTEGER_EXT, ERL_INTEGER_EXT, ERL_SMALL_BIG_EXT, ERL_LARGE_BIG_EXT}, 4},
		{{ERL_SMALL_INTEGER_EXT, ERL_INTEGER_EXT, ERL_SMALL_BIG_EXT, ERL_LARGE_BIG_EXT}, 4},
		{{ERL_PID_EXT, ERL_NEW_PID_EXT}, 2},
	};
	size_t at = 1 + 4 + 1 + 16 + 4 + 4, n;
	if (len < at || (n = be32(p + 1)) > len - 1 || n + 1 < at)
		return 0;
	size_t end = 1 + n;
	for (int i = 0; i < 4; i++) {
		size_t k = fun_part(p + at, end - at, parts[i].tags, parts[i].n);
		if (!k)
			return 0;
		at += k;
	}
	return end;
}

/*
 * One term's own bytes (not its elements'): its size, and in *kids the
 * number of terms that follow as its elements. 0 when malformed. Funs
 * and bit strings are walked as opaque sizes: krill passes them on, never
 * looks inside.
 */
static size_t head_size(const uint8_t *p, size_t len, uint64_t *kids)
{
	*kids = 0;
	if (!len)
		return 0;
	size_t n;
	switch (p[0]) {
	case ERL_SMALL_INTEGER_EXT:
		return len >= 2 ? 2 : 0;
	case ERL_INTEGER_EXT:
		return len >= 5 ? 5 : 0;
	case ERL_FLOAT_EXT: /* 31 bytes of text, NUL-padded by every encoder: libei
	                     * reads it with sscanf, which runs on to a NUL */
		return len >= 32 && memchr(p + 1, 0, 31) ? 32 : 0;
	case 'F': /* NEW_FLOAT_EXT */
		return len >= 9 ? 9 : 0;
	case ERL_ATOM_EXT:
	case ERL_SMALL_ATOM_EXT:
	case ERL_ATOM_UTF8_EXT:
	case ERL_SMALL_ATOM_UTF8_EXT:
		return atom_size(p, len);
	case ERL_PID_EXT:
		return node_term_size(p, len, 1, 9);
	case ERL_NEW_PID_EXT:
		return node_term_size(p, len, 1, 12);
	case ERL_PORT_EXT:
		return node_term_size(p, len, 1, 5);
	case ERL_NEW_PORT_EXT:
		return node_term_size(p, len, 1, 8);
	case ERL_V4_PORT_EXT:
		return node_term_size(p, len, 1, 12);
	case ERL_REFERENCE_EXT:
		return node_term_size(p, len, 1, 5);
	case ERL_NEW_REFERENCE_EXT:
	case ERL_NEWER_REFERENCE_EXT:
		if (len < 3 || (n = be16(p + 1)) > 5 || n == 0)
			return 0;
		return node_term_size(p, len, 3, (p[0] == ERL_NEW_REFERENCE_EXT ? 1 : 4) + 4 * n);
	case ERL_NIL_EXT:
		return 1;
	case ERL_SMALL_TUPLE_EXT:
		if (len < 2)
			return 0;
		*kids = p[1];
		return 2;
	case ERL_LARGE_TUPLE_EXT:
		if (len < 5)
			return 0;
		*kids = be32(p + 1);
		return 5;
	case ERL_MAP_EXT:
		if (len < 5)
			return 0;
		*kids = 2 * (uint64_t)be32(p + 1);
		return 5;
	case ERL_LIST_EXT:
		if (len < 5)
			return 0;
		*kids = (uint64_t)be32(p + 1) + 1; /* the elements and the tail */
		return 5;
	case ERL_STRING_EXT:
		if (len < 3 || be16(p + 1) > len - 3)
			return 0;
		return 3 + be16(p + 1);
	case ERL_BINARY_EXT:
		if (len < 5 || be32(p + 1) > len - 5)
			return 0;
		return 5 + (size_t)be32(p + 1);
	case ERL_BIT_BINARY_EXT:
		if (len < 6 || be32(p + 1) > len - 6 || p[5] > 8 || p[5] == 0)
			return 0;
		return 6 + (size_t)be32(p + 1);
	case ERL_SMALL_BIG_EXT:
		if (len < 3 || p[1] > len - 3)
			return 0;
		return 3 + (size_t)p[1];
	case ERL_LARGE_BIG_EXT:
		if (len < 6 || be32(p + 1) > len - 6)
			return 0;
		return 6 + (size_t)be32(p + 1);
	case ERL_NEW_FUN_EXT:
		return fun_size(p, len);
	case ERL_EXPORT_EXT:
		*kids = 3; /* module, function, arity */
		return 1;
	default: /* the atom cache, compressed terms, OTP 26's LOCAL_EXT, garbage */
		return 0;
	}
}

long krd_term_size(const uint8_t *p, size_t len)
{
	size_t at = 0;
	uint64_t pending = 1; /* terms still to walk */
	while (pending) {
		uint64_t kids;
		size_t n = head_size(p + at, len - at, &kids);
		if (!n)
			return -1;
		at += n;
		pending += kids - 1;
		/* Every term takes a byte at least: a count past the bytes
		 * left is a lie (and bounds the count). */
		if (pending > len - at)
			return -1;
	}
	return (long)at;
}

/* ---- reading: values, with libei ---- */

bool krd_get_tuple(const uint8_t *buf, int *i, int *arity)
{
	return ei_decode_tuple_header((const char *)buf, i, arity) == 0;
}

bool krd_get_long(const uint8_t *buf, int *i, long *v)
{
	return ei_decode_long((const char *)buf, i, v) == 0;
}

bool krd_get_uint64(const uint8_t *buf, int *i, uint64_t *v)
{
	EI_ULONGLONG x;
	if (ei_decode_ulonglong((const char *)buf, i, &x) != 0)
		return false;
	*v = (uint64_t)x;
	return true;
}

bool krd_get_atom(const uint8_t *buf, int *i, char out[KRD_MAX_ATOM_CHARS * 4 + 1])
{
	erlang_char_encoding was;
	return ei_decode_atom_as((const char *)buf, i, out, KRD_MAX_ATOM_CHARS * 4 + 1, ERLANG_UTF8,
	                         &was, NULL) == 0;
}

bool krd_get_pid(const uint8_t *buf, int *i, kr_pid *pid)
{
	erlang_pid e;
	if (ei_decode_pid((const char *)buf, i, &e) != 0)
		return false;
	*pid = krd_pid_join(e.node, e.num, e.serial, e.creation);
	return *pid >= 0;
}

bool krd_skip(const uint8_t *buf, int *i)
{
	long n = krd_term_size(buf + *i, (size_t)-1 / 2); /* the whole term was checked */
	if (n < 0)
		return false;
	*i += (int)n;
	return true;
}

bool krd_get_ref(const uint8_t *buf, int *i, kr_ref *ref)
{
	erlang_ref e;
	if (ei_decode_ref((const char *)buf, i, &e) != 0)
		return false;
	bool ours = krd_node_running() && !strcmp(e.node, krd_me.name) &&
	            e.creation == krd_me.creation && e.len == 3 && e.n[0] == 0;
	*ref = ours ? (kr_ref)((uint64_t)e.n[2] << 32 | e.n[1]) : 0;
	return true;
}

/* The kind an atom names, or -1. */
static int kind_named(const char *atom)
{
	for (int k = KR_EXIT_NORMAL; k <= KR_EXIT_KILL; k++)
		if (!strcmp(atom, kr_exit_kind_name(k)))
			return k;
	return -1;
}

/* libei's printer recurses once per level of a term, in frames of over
 * 2 KiB, on the stack of the connection's process (64 KiB by default), and
 * never frees what it allocates for a fun (a closure's free variables; an
 * external fun's function name when it does not fit beside the module's):
 * it is given only a term nested at most this deep, with no fun in it. */
#define PRINT_DEPTH_MAX 10

/* Whether the term at p (it passed the walk) is one for libei's printer,
 * found without recursing. */
static bool printable(const uint8_t *p)
{
	uint64_t left[PRINT_DEPTH_MAX]; /* terms still to walk at each level */
	int sp = 0;
	size_t at = 0;
	left[0] = 1;
	while (sp >= 0) {
		if (!left[sp]) {
			sp--;
			continue;
		}
		left[sp]--;
		if (p[at] == ERL_NEW_FUN_EXT || p[at] == ERL_EXPORT_EXT)
			return false;
		uint64_t kids;
		at += head_size(p + at, (size_t)-1 / 2 - at, &kids);
		if (kids && ++sp == PRINT_DEPTH_MAX)
			return false;
		if (kids)
			left[sp] = kids;
	}
	return true;
}

static void printed(const uint8_t *buf, int at, kr_reason *r)
{
	char *s = NULL;
	int i = at;
	if (!printable(buf + at)) {
		snprintf(r->text, sizeof r->text, "(a term nested over %d deep, or with a fun)",
		         PRINT_DEPTH_MAX);
		return;
	}
	if (ei_s_print_term(&s, (const char *)buf, &i) >= 0 && s)
		snprintf(r->text, sizeof r->text, "%s", s);
	free(s);
}

bool krd_get_reason(const uint8_t *buf, int *i, kr_reason *r)
{
	int at = *i, j = *i, arity, k;
	char atom[KRD_MAX_ATOM_CHARS * 4 + 1];
	*r = (kr_reason){.kind = KR_EXIT_ERROR};
	if (!krd_skip(buf, i))
		return false;
	if (krd_get_atom(buf, &j, atom)) {
		if ((k = kind_named(atom)) >= 0)
			r->kind = k;
		else
			snprintf(r->text, sizeof r->text, "%.115s", atom);
		return true;
	}
	j = at;
	if (krd_get_tuple(buf, &j, &arity) && arity == 2 && krd_get_atom(buf, &j, atom) &&
	    (k = kind_named(atom)) >= 0) {
		long n;
		int type, size;
		if (ei_get_type((const char *)buf, &j, &type, &size) == 0 && type == ERL_BINARY_EXT &&
		    (size_t)size < sizeof r->text && ei_decode_binary((const char *)buf, &j, r->text, &n) == 0) {
			r->kind = k;
			r->text[n] = 0;
			return true;
		}
		if (k == KR_EXIT_SHUTDOWN) { /* {shutdown, Term}: a quiet end, as OTP's */
			r->kind = k;
			printed(buf, j, r);
			return true;
		}
	}
	printed(buf, at, r);
	return true;
}
