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
 */
#ifndef KRX_HEAP_H
#define KRX_HEAP_H

#include <atomic_ops.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct krx_hblk {
	struct krx_hblk *prev, *next;
	size_t size;    /* bytes accounted to the heap */
	uint32_t magic; /* KRX_HBLK_ALLOC or KRX_HBLK_MSG while on a heap, else 0 */
	uint32_t kind;  /* a message's kind (mailbox.h); 0 for kr_alloc blocks */
} krx_hblk;         /* 32 bytes: what follows stays 16-byte aligned */

#define KRX_HBLK_ALLOC 0x6b726870u /* "krhp": from kr_alloc */
#define KRX_HBLK_MSG 0x6b726d73u   /* "krms": a received message */

typedef struct krx_heap {
	krx_hblk list;   /* circular, with this as sentinel */
	AO_t bytes;      /* written by the owner, read by kr_info */
	size_t max;      /* 0 = unlimited */
} krx_heap;

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
/* The bytes of a kr_alloc block (0 for NULL or a pointer that is not one). */
size_t krx_heap_block_size(void *ptr);
void *krx_heap_alloc(krx_heap *h, size_t size);
void *krx_heap_realloc(krx_heap *h, void *ptr, size_t size);
void krx_heap_free(krx_heap *h, void *ptr);
/* Link a block into h (magic says what it is), or unlink it (the caller
 * frees it). Inline: receiving and freeing a message do one each. */
static inline void krx_heap_link(krx_heap *h, krx_hblk *b, uint32_t magic)
{
	b->next = h->list.next;
	b->prev = &h->list;
	h->list.next->prev = b;
	h->list.next = b;
	b->magic = magic;
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
