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


void *krx_heap_alloc(krx_heap *h, size_t size)
{
	if (size > SIZE_MAX - sizeof(krx_hblk) || krx_heap_over_limit(h, size))
		return NULL;
	krx_hblk *b = krx_alloc_raw(sizeof *b + size);
	if (!b)
		return NULL;
	b->size = size;
	krx_heap_link(h, b, KRX_HBLK_ALLOC);
	return b + 1;
}

/* The block behind a pointer kr_alloc returned, or NULL if it is not one of
 * this heap's live blocks (a double free, a foreign pointer). */
static krx_hblk *block_of(void *ptr)
{
	krx_hblk *b = (krx_hblk *)ptr - 1;
	return b->magic == KRX_HBLK_ALLOC ? b : NULL;
}

size_t krx_heap_block_size(void *ptr)
{
	krx_hblk *b = ptr ? block_of(ptr) : NULL;
	return b ? b->size : 0;
}

void krx_heap_free(krx_heap *h, void *ptr)
{
	krx_hblk *b;
	if (!ptr || !(b = block_of(ptr)))
		return;
	krx_heap_unlink(h, b);
	krx_free_raw(b);
}

void *krx_heap_realloc(krx_heap *h, void *ptr, size_t size)
{
	if (!ptr)
		return krx_heap_alloc(h, size);
	krx_hblk *b = block_of(ptr);
	if (!b || size > SIZE_MAX - sizeof(krx_hblk))
		return NULL;
	if (size > b->size && krx_heap_over_limit(h, size - b->size))
		return NULL;
	krx_heap_unlink(h, b);
	krx_hblk *nb = krx_realloc_raw(b, sizeof *nb + size);
	if (!nb) {
		krx_heap_link(h, b, KRX_HBLK_ALLOC);
		return NULL;
	}
	nb->size = size;
	krx_heap_link(h, nb, KRX_HBLK_ALLOC);
	return nb + 1;
}
