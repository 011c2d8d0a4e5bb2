/*
 * mi.h - the allocator under everything krill allocates: mimalloc.
 *
 * Memory that crosses threads (messages, process structures, heap blocks of
 * processes that migrate) is freed by whichever thread is done with it;
 * mimalloc's mi_free handles frees from any thread.
 */
#ifndef KRX_MI_H
#define KRX_MI_H

#include "san.h"

#if KRX_TSAN || KRX_ASAN
/* In sanitizer builds, the libc allocator, which the sanitizers intercept:
 * mimalloc is not instrumented, so ASan could not see a leak or a use after
 * free of krill's own blocks (messages, binaries), and TSan would take a block
 * freed on one thread and reused on another for a race between its owners. */
#include <stdlib.h>
#define krx_alloc_raw(n) malloc(n)
#define krx_calloc_raw(n, s) calloc((n), (s))
#define krx_realloc_raw(p, n) realloc((p), (n))
#define krx_free_raw(p) free(p)
#else
#include <mimalloc.h>
#define krx_alloc_raw(n) mi_malloc(n)
#define krx_calloc_raw(n, s) mi_calloc((n), (s))
#define krx_realloc_raw(p, n) mi_realloc((p), (n))
#define krx_free_raw(p) mi_free(p)
#endif

#include <stdint.h>
#include <string.h>

/* n zeroed elements of size bytes (a multiple of 64: a struct whose first
 * member is _Alignas(64)) starting on a cache line, so that two neighbours
 * (one per scheduler, each written by its own thread) never share one.
 * The allocator's block is 128 bytes longer; its address is kept in the
 * word before the array. Free with krx_free_lines. NULL if memory is short. */
static inline void *krx_calloc_lines(size_t n, size_t size)
{
	char *raw = krx_calloc_raw(1, n * size + 128);
	if (!raw)
		return NULL;
	char *p = (char *)(((uintptr_t)raw + 64 + 63) & ~(uintptr_t)63);
	memcpy(p - sizeof raw, &raw, sizeof raw);
	return p;
}

static inline void krx_free_lines(void *p)
{
	if (!p)
		return;
	char *raw;
	memcpy(&raw, (char *)p - sizeof raw, sizeof raw);
	krx_free_raw(raw);
}

#endif
