/*
 * heap.h - per-process heaps.
 *
 * A process heap is a list of blocks taken from mimalloc, each with a small
 * header linking it to its process, so that everything left is freed when
 * the process exits, normally or not. A block may be freed by a thread other
 * than the one that allocated it (processes migrate; mimalloc allows this),
 * which is why a krill heap is not a mi_heap_t (bound to its thread).
 *
 * Received messages are heap blocks too: the sender allocates the block, and
 * the receiver links it into its heap when it takes the message.
 *
 * Whether a block is live, and whose it is, is in its magic: while it is on
 * a heap, its kind's magic (KRX_HBLK_ALLOC or KRX_HBLK_MSG) xor that heap's
 * salt, a value drawn afresh for each process that uses the heap; 0 once it
 * is off every heap. So kr_free and kr_msg_free can tell a live block of the
 * caller's from one freed already (magic 0) and from another process's (the
 * salt differs), and crash the caller instead of corrupting a heap. What
 * they cannot tell: a freed block that a later allocation of the same
 * process has reused is live again, and a stale pointer to it frees the new
 * block (the header says so).
 */
#ifndef KRX_HEAP_H
#define KRX_HEAP_H

#include <atomic_ops.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct krx_hblk {
	/* Aligned to 16: a header is 32 bytes, and a message's header (a
	 * krx_hblk first) rounds up to 16 too, so that what follows either is
	 * aligned as malloc's memory is (the payload promise of krill.h). */
	_Alignas(16) struct krx_hblk *prev;
	struct krx_hblk *next;
	size_t size;    /* bytes accounted to the heap */
	uint32_t magic; /* on a heap: KRX_HBLK_ALLOC or KRX_HBLK_MSG xor its salt; else 0 */
	uint32_t kind;  /* a message's kind (mailbox.h); 0 for kr_alloc blocks */
} krx_hblk;

#define KRX_HBLK_ALLOC 0x6b726870u /* "krhp": from kr_alloc */
#define KRX_HBLK_MSG 0x6b726d73u   /* "krms": a received message */

typedef struct krx_heap {
	krx_hblk list;   /* circular, with this as sentinel */
	AO_t bytes;      /* written by the owner, read by kr_info */
	size_t max;      /* 0 = unlimited */
	uint32_t salt;   /* this incarnation's: never KRX_HBLK_ALLOC nor _MSG */
	uint32_t gen;    /* incarnations of this heap, for the next salt */
} krx_heap;

/* A new incarnation of h: empty, with a fresh salt. */
void krx_heap_init(krx_heap *h, size_t max);
/* Free every block still on the heap; message blocks go to free_msg(b, ctx)
 * (which releases what they reference, then the block). */
void krx_heap_destroy(krx_heap *h, void (*free_msg)(krx_hblk *b, void *ctx), void *ctx);
/* Would size more bytes take h past its limit? */
static inline bool krx_heap_over_limit(krx_heap *h, size_t more)
{
	/* Relaxed: the owner's own figure. */
	return h->max && (more > h->max || AO_load(&h->bytes) > h->max - more);
}

/* Is the block whose header is at b a live block of h, of this kind
 * (KRX_HBLK_ALLOC or KRX_HBLK_MSG)? b comes from a caller's pointer, which
 * may be anything: the magic is read as bytes, without assuming that b is
 * a header, or even aligned as one (UBSan would stop there; a bad pointer
 * should end the caller, or fault, not be undefined in krill's own check). */
static inline bool krx_heap_live(const krx_heap *h, const void *b, uint32_t kind)
{
	uint32_t magic;
	memcpy(&magic, (const char *)b + offsetof(krx_hblk, magic), sizeof magic);
	return magic == (kind ^ h->salt);
}

/* The block of h behind a pointer kr_alloc returned, or NULL if it is not
 * a live one (freed already, another process's, or a message's). */
static inline krx_hblk *krx_heap_block(const krx_heap *h, void *ptr)
{
	char *b = (char *)ptr - sizeof(krx_hblk);
	return krx_heap_live(h, b, KRX_HBLK_ALLOC) ? (krx_hblk *)b : NULL;
}

void *krx_heap_alloc(krx_heap *h, size_t size);
/* Resize b, a live block of h (krx_heap_block), to size bytes: the new
 * payload, or NULL with b untouched. */
void *krx_heap_realloc(krx_heap *h, krx_hblk *b, size_t size);
/* Free b, a live block of h (krx_heap_block). */
void krx_heap_free(krx_heap *h, krx_hblk *b);
/* Link a block into h (kind says what it is), or unlink it (the caller
 * frees it). Inline: receiving and freeing a message do one each. */
static inline void krx_heap_link(krx_heap *h, krx_hblk *b, uint32_t kind)
{
	b->next = h->list.next;
	b->prev = &h->list;
	h->list.next->prev = b;
	h->list.next = b;
	b->magic = kind ^ h->salt;
	/* Relaxed: only the owner writes; kr_info reads a figure. */
	AO_store(&h->bytes, AO_load(&h->bytes) + b->size);
}

static inline void krx_heap_unlink(krx_heap *h, krx_hblk *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
	b->magic = 0;
	AO_store(&h->bytes, AO_load(&h->bytes) - b->size);
}

#endif
