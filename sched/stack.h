/*
 * stack.h - the stack pool: coroutine stacks carved from large MAP_NORESERVE
 * reservations, each with a guard region below it, recycled through a
 * per-scheduler cache and a shared free list, whose stacks beyond a warm
 * reserve give their memory back to the system (krx_stack_trim).
 *
 * Invariants:
 *  - A stack slot is either handed out (owned by exactly one caller), in one
 *    cache, or on the shared free list; never two of these at once.
 *  - A slot's guard protection is decided once, when the slot is first carved,
 *    and never changes; a recycled stack keeps its touched top pages.
 */
#ifndef KRX_STACK_H
#define KRX_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic_ops.h>
#include <pthread.h>

/* How the region below a stack is protected. */
typedef enum krx_guard_kind {
	KRX_GUARD_INSTALL,  /* madvise(MADV_GUARD_INSTALL): faults, adds no VMA */
	KRX_GUARD_MPROTECT, /* mprotect(PROT_NONE): faults, costs two VMAs */
	KRX_GUARD_CANARY,   /* a word checked on every switch: detects, late */
	KRX_GUARD_KINDS
} krx_guard_kind;

/* One stack. Usable memory is [lo, hi); the guard is the page below lo. */
typedef struct krx_stack {
	char *lo;
	char *hi;
	uint32_t id;   /* slot index in its pool */
	uint8_t guard; /* krx_guard_kind */
} krx_stack;

typedef struct krx_stack_opts {
	size_t stack_size;        /* usable bytes; 0 = 64 KiB; rounded up to pages */
	size_t keep_bytes;        /* a recycled deep stack keeps this much of its top; 0 = 16 KiB */
	long mprotect_budget;     /* most mprotect guards; 0 = vm.max_map_count / 4; < 0 = none */
	bool no_guard_install;    /* never use MADV_GUARD_INSTALL (to test the fallbacks) */
	uint32_t slots_per_region; /* stacks per reservation; 0 = 4096 */
} krx_stack_opts;

#define KRX_STACK_CACHE 64  /* stacks a per-scheduler cache holds */
#define KRX_STACK_REGIONS 1024

/* A per-scheduler cache: used by one thread only, so it needs no atomics. */
typedef struct krx_stack_cache {
	uint32_t n;
	krx_stack *v[KRX_STACK_CACHE];
} krx_stack_cache;

typedef struct krx_stack_region {
	char *base;          /* the reservation */
	krx_stack *slots;    /* metadata, one per slot */
	uint32_t *next;      /* free-list links (slot ids + 1; 0 ends), under free_lock */
	uint32_t guarded;    /* slots [0, guarded) got MADV_GUARD_INSTALL when mapped */
} krx_stack_region;

typedef struct krx_stack_pool {
	size_t stack_size, slot_size, keep_bytes, page;
	uint32_t slots_per_region;
	krx_guard_kind best;            /* what the probe found works */
	pthread_mutex_t free_lock;      /* the shared free list: */
	uint32_t free_top;              /* slot id + 1 of its top; 0: empty */
	AO_t nfree;                     /* stacks on it (read racily by the stats) */
	uint32_t cold_top;              /* the cold list (under free_lock too): stacks whose
	                                 * pages were given back, handed out after the warm */
	AO_t ncold;                     /* stacks on it (read racily) */
	size_t low_free;                /* the fewest on the warm list since the last
	                                 * krx_stack_trim (under free_lock) */
	AO_t carved;                    /* slot ids taken by carvers (fetch-and-add); ids whose
	                                 * region could not be mapped are lost, so stats count
	                                 * carved slots from guards[] */
	AO_t mprotect_left;             /* remaining mprotect budget */
	AO_t guards[KRX_GUARD_KINDS];   /* slots carved with each protection */
	AO_t nregions;                  /* regions published (release) */
	pthread_mutex_t grow_lock;      /* serialises mapping a new region */
	krx_stack_region regions[KRX_STACK_REGIONS];
} krx_stack_pool;

typedef struct krx_stack_stats {
	size_t carved;      /* slots ever carved */
	size_t shared_free; /* on the shared free list, warm */
	size_t cold;        /* on the cold list: their memory given back */
	size_t by_guard[KRX_GUARD_KINDS];
	krx_guard_kind best;
} krx_stack_stats;

/* Reserve the first region and probe which guard really faults. 0 or -errno. */
int krx_stack_pool_init(krx_stack_pool *pool, const krx_stack_opts *opts);
/* Unmap everything. Every stack must have been put back. */
void krx_stack_pool_destroy(krx_stack_pool *pool);

/* A stack, from the cache (may be NULL), the shared list, or a fresh slot.
 * NULL when the address space or KRX_STACK_REGIONS is exhausted. */
krx_stack *krx_stack_get(krx_stack_pool *pool, krx_stack_cache *cache);
/* Give a stack back; a stack that grew deep is trimmed to keep_bytes first. */
void krx_stack_put(krx_stack_pool *pool, krx_stack_cache *cache, krx_stack *st);
/* Move every cached stack to the shared list (a scheduler that exits). */
void krx_stack_cache_flush(krx_stack_pool *pool, krx_stack_cache *cache);
/* Give back to the system the memory of the stacks on the shared free list
 * that no one took since the last trim, all but keep of them, moving them to
 * the cold list (a few system calls for a thousand stacks): what the
 * processes of the last interval cycled through stays warm. Returns how
 * many were trimmed. Any thread; meant to be called now and then (once a
 * second) by one that is not running processes (the watchdog's). */
size_t krx_stack_trim(krx_stack_pool *pool, size_t keep);

/* False when a canary-guarded stack's canary was overwritten (it overflowed). */
bool krx_stack_intact(const krx_stack *st);

void krx_stack_pool_stats(krx_stack_pool *pool, krx_stack_stats *out);
const char *krx_guard_kind_name(krx_guard_kind kind);

#endif
