/*
 * ext.h - Erlang's external term format, as far as dist/ speaks it.
 *
 * Two halves. Reading: a term from a peer is first walked by
 * krd_term_size, which checks every length against the bytes there are
 * (libei, which decodes it afterwards, trusts the lengths it reads); only
 * a term that passed is given to libei. Writing: the few shapes krill
 * sends (control tuples of pids, atoms and integers, and {Tag, Binary})
 * are written by hand into a growable buffer, the hot path of a remote
 * send.
 */
#ifndef KRD_EXT_H
#define KRD_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krill.h"

#define KRD_VERSION_MAGIC 131 /* the byte before every term */
#define KRD_PASS_THROUGH 112  /* before the control message, without an atom cache */
#define KRD_MAX_ATOM_CHARS 255

/* A growable output buffer (malloc'd; `fail` set once memory ran out, and
 * every later write is dropped, so that callers check once at the end). */
typedef struct krd_buf {
	uint8_t *p;
	size_t len, cap;
	bool heap; /* p is malloc's (else the caller's, given to krd_buf_init) */
	bool fail;
} krd_buf;

void krd_buf_init(krd_buf *b, void *stack, size_t cap); /* starts on caller's memory */
void krd_buf_free(krd_buf *b);
void krd_put(krd_buf *b, const void *data, size_t len);
void krd_put_u8(krd_buf *b, uint8_t v);
void krd_put_u16(krd_buf *b, uint16_t v);
void krd_put_u32(krd_buf *b, uint32_t v);
void krd_put_tuple(krd_buf *b, unsigned arity);
void krd_put_atom(krd_buf *b, const char *name);
void krd_put_uint(krd_buf *b, uint64_t v);
void krd_put_binary(krd_buf *b, const void *data, size_t len);
/* A NEW_PID_EXT for pid (local or remote); false for a pid that names no
 * node (nothing written). */
bool krd_put_pid(krd_buf *b, kr_pid pid);

/* One of this node's kr_refs as a reference term (NEWER_REFERENCE_EXT,
 * three words: 0, then the ref's low and high halves; the BEAM keeps only
 * 18 bits of the first word). Needs a running node. */
void krd_put_ref(krd_buf *b, kr_ref ref);

/* An exit reason as a term: normal, shutdown, killed, noproc,
 * noconnection and kill as those atoms; the others {Kind, Text}
 * ({segfault, <<"...">>}, Kind as kr_exit_kind_name names it). */
void krd_put_reason(krd_buf *b, const kr_reason *r);

/* The size of the one well-formed term at p (at most len bytes, no
 * version byte), or -1: a length past the end, an unknown tag, an atom
 * over 255 characters, nesting past what len could hold. */
long krd_term_size(const uint8_t *p, size_t len);

/* Read helpers over a term that passed krd_term_size (libei under them).
 * Each advances *i and returns false on a type mismatch. */
bool krd_get_tuple(const uint8_t *buf, int *i, int *arity);
bool krd_get_long(const uint8_t *buf, int *i, long *v);
bool krd_get_uint64(const uint8_t *buf, int *i, uint64_t *v);
bool krd_get_atom(const uint8_t *buf, int *i, char out[KRD_MAX_ATOM_CHARS * 4 + 1]);
/* A pid: a local one (this node, this creation) as its kr_pid, a remote
 * one through the peer table (peer.c); 0 for a pid of this node's
 * earlier incarnation (nobody lives there), false on a mismatch or when
 * the peer table is full. */
bool krd_get_pid(const uint8_t *buf, int *i, kr_pid *pid);
bool krd_skip(const uint8_t *buf, int *i);
/* A reference: *ref the kr_ref when it is one of this node's (as
 * krd_put_ref makes them), 0 when it is someone else's. */
bool krd_get_ref(const uint8_t *buf, int *i, kr_ref *ref);
/* A reason from a peer, any term: an atom naming a kind (kill too) is that
 * kind; {Kind, Binary} with a kind's name that kind with the text;
 * {shutdown, Term} shutdown; anything else KR_EXIT_ERROR with the term's
 * printed form as text. */
bool krd_get_reason(const uint8_t *buf, int *i, kr_reason *r);

#endif
