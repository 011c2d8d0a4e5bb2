/*
 * heap.c - per-process heaps (see heap.h).
 */
#include "heap.h"

#include <stdint.h>
#include <string.h>

#include "mi.h"

void krx_heap_init(krx_heap *h, size_t max)
{
	h->list.prev = h->list.next = &h->list;
	h->list.size = 0;
	h->max = max;
	AO_store(&h->bytes, 0);
}

static void link_block(krx_heap *h, krx_hblk *b, size_t magic)
{
	b->next = h->list.next;
	b->prev = &h->list;
	h->list.next->prev = b;
	h->list.next = b;
	b->magic = magic;
	/* Relaxed: only the owner writes; kr_info reads a figure. */
	AO_store(&h->bytes, AO_load(&h->bytes) + b->size);
}

static void unlink_block(krx_heap *h, krx_hblk *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
	b->magic = 0;
	AO_store(&h->bytes, AO_load(&h->bytes) - b->size);
}

void krx_heap_destroy(krx_heap *h, void (*free_msg)(krx_hblk *b, void *ctx), void *ctx)
{
	krx_hblk *b = h->list.next;
	while (b != &h->list) {
		krx_hblk *next = b->next;
		if (b->magic == KRX_HBLK_MSG)
			free_msg(b, ctx);
		else
			krx_free_raw(b);
		b = next;
	}
	krx_heap_init(h, h->max);
}

static int over_limit(krx_heap *h, size_t more)
{
	return h->max && AO_load(&h->bytes) + more > h->max;
}

void *krx_heap_alloc(krx_heap *h, size_t size)
{
	if (size > SIZE_MAX - sizeof(krx_hblk) || over_limit(h, size))
		return NULL;
	krx_hblk *b = krx_alloc_raw(sizeof *b + size);
	if (!b)
		return NULL;
	b->size = size;
	link_block(h, b, KRX_HBLK_ALLOC);
	return b + 1;
}

/* The block behind a pointer kr_alloc returned, or NULL if it is not one of
 * this heap's live blocks (a double free, a foreign pointer). */
static krx_hblk *block_of(void *ptr)
{
	krx_hblk *b = (krx_hblk *)ptr - 1;
	return b->magic == KRX_HBLK_ALLOC ? b : NULL;
}

void krx_heap_free(krx_heap *h, void *ptr)
{
	krx_hblk *b;
	if (!ptr || !(b = block_of(ptr)))
		return;
	unlink_block(h, b);
	krx_free_raw(b);
}

void *krx_heap_realloc(krx_heap *h, void *ptr, size_t size)
{
	if (!ptr)
		return krx_heap_alloc(h, size);
	krx_hblk *b = block_of(ptr);
	if (!b || size > SIZE_MAX - sizeof(krx_hblk))
		return NULL;
	if (size > b->size && over_limit(h, size - b->size))
		return NULL;
	unlink_block(h, b);
	krx_hblk *nb = krx_realloc_raw(b, sizeof *nb + size);
	if (!nb) {
		link_block(h, b, KRX_HBLK_ALLOC);
		return NULL;
	}
	nb->size = size;
	link_block(h, nb, KRX_HBLK_ALLOC);
	return nb + 1;
}

void krx_heap_adopt(krx_heap *h, krx_hblk *b)
{
	link_block(h, b, KRX_HBLK_MSG);
}

void krx_heap_unlink(krx_heap *h, krx_hblk *b)
{
	unlink_block(h, b);
}
