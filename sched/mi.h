/*
 * mi.h - the allocator under everything krill allocates: mimalloc.
 *
 * Memory that crosses threads (messages, process structures, heap blocks of
 * processes that migrate) is freed by whichever thread is done with it;
 * mimalloc's mi_free handles frees from any thread.
 */
#ifndef KRX_MI_H
#define KRX_MI_H

#include <mimalloc.h>

#define krx_alloc_raw(n) mi_malloc(n)
#define krx_calloc_raw(n, s) mi_calloc((n), (s))
#define krx_realloc_raw(p, n) mi_realloc((p), (n))
#define krx_free_raw(p) mi_free(p)

#endif
