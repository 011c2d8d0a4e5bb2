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

#endif
