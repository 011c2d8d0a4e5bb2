/*
 * heap.c - per-process heaps (see heap.h).
 */
#include "heap.h"

#include <stdint.h>
#include <string.h>

#include "exit.h"
#include "host.h"
#include "mi.h"
#include "vm.h"

/* A salt for the next incarnation of h: the splitmix64 finaliser of the
 * heap's address and its count of incarnations, so that two processes,
 * whether they live at once or one after the other in the same slot,
 * almost never share one (a chance of 2^-32). Never a kind's magic, so a
 * live block's magic is never 0. */
static uint32_t next_salt(krx_heap *h)
{
	uint64_t x = ((uint64_t)(uintptr_t)h ^ ((uint64_t)++h->gen << 40)) + 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	uint32_t s = (uint32_t)(x ^ (x >> 31));
	return s == KRX_HBLK_ALLOC || s == KRX_HBLK_MSG ? s ^ 0x100u : s;
}

void krx_heap_init(krx_heap *h, size_t max)
{
	h->list.prev = h->list.next = &h->list;
	h->list.size = 0;
	h->list.magic = 0;
	h->max = max;
	h->salt = next_salt(h);
	AO_store(&h->bytes, 0);
}

void krx_heap_destroy(krx_heap *h, void (*free_msg)(krx_hblk *b, void *ctx), void *ctx)
{
	krx_hblk *b = h->list.next;
	while (b != &h->list) {
		krx_hblk *next = b->next;
		bool msg = krx_heap_live(h, b, KRX_HBLK_MSG);
		b->magic = 0; /* off the heap: a stale pointer to it is not live */
		if (msg)
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
	b->kind = 0;
	krx_heap_link(h, b, KRX_HBLK_ALLOC);
	return b + 1;
}

void krx_heap_free(krx_heap *h, krx_hblk *b)
{
	krx_heap_unlink(h, b);
	krx_free_raw(b);
}

void *krx_heap_realloc(krx_heap *h, krx_hblk *b, size_t size)
{
	if (size > SIZE_MAX - sizeof(krx_hblk))
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

/* ---- the process heap calls ----
 * A host thread that has a mailbox (host.c) has its heap too, freed with
 * the mailbox; one without gets NULL, and a bad block is ignored (a thread
 * cannot be crashed). */

enum host_op { HOST_ALLOC, HOST_REALLOC, HOST_FREE };

static __attribute__((noinline, cold)) void *host_heap(enum host_op op, void *ptr, size_t size)
{
	int err;
	krx_proc *p = krx_host_enter(false, &err);
	if (!p)
		return NULL;
	void *r = NULL;
	krx_hblk *b = ptr ? krx_heap_block(&p->heap, ptr) : NULL;
	if (op == HOST_ALLOC || (op == HOST_REALLOC && !ptr))
		r = krx_heap_alloc(&p->heap, size);
	else if (op == HOST_REALLOC && b)
		r = krx_heap_realloc(&p->heap, b, size);
	else if (op == HOST_FREE && b)
		krx_heap_free(&p->heap, b);
	krx_vm_leave_host();
	return r;
}

KR_API void *kr_alloc(size_t size)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return host_heap(HOST_ALLOC, NULL, size);
	if (krx_heap_over_limit(&p->heap, size))
		krx_proc_heap_limit(p, size);
	return krx_heap_alloc(&p->heap, size);
}

KR_API void *kr_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *ptr = kr_alloc(n * size);
	if (ptr)
		memset(ptr, 0, n * size);
	return ptr;
}

/* kr_free or kr_realloc of a block that is not a live one of the caller's:
 * crash the caller, as Erlang crashes a caller on a bad argument, rather
 * than corrupt its heap or another process's. */
static _Noreturn __attribute__((cold, noinline)) void not_live(const char *call, const char *hint)
{
	kr_crash("%s: not a live block of this process (%s)", call, hint);
	__builtin_unreachable();
}

KR_API void *kr_realloc(void *ptr, size_t size)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return host_heap(HOST_REALLOC, ptr, size);
	if (!ptr)
		return kr_alloc(size);
	krx_hblk *b = krx_heap_block(&p->heap, ptr);
	if (!b)
		not_live("kr_realloc", "freed already?");
	if (size > b->size && krx_heap_over_limit(&p->heap, size - b->size))
		krx_proc_heap_limit(p, size - b->size);
	return krx_heap_realloc(&p->heap, b, size);
}

KR_API void kr_free(void *ptr)
{
	krx_proc *p = krx_proc_self();
	if (!ptr)
		return;
	if (!p) {
		(void)host_heap(HOST_FREE, ptr, 0);
		return;
	}
	krx_hblk *b = krx_heap_block(&p->heap, ptr);
	if (!b)
		not_live("kr_free", "freed twice?");
	krx_heap_free(&p->heap, b);
}
