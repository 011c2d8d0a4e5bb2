/*
 * msg.h - message blocks, and a per-scheduler cache of small ones.
 *
 * A message is one block: its header, then its payload. A sender allocates
 * it, the receiver frees it (or its exit does), so blocks flow from one
 * scheduler to another. Small blocks, the common case, go through a cache
 * owned by the scheduler thread at hand: a message ping-pong then never
 * enters the allocator. The cache is bounded; a block freed into a full
 * cache goes back to mimalloc, which takes frees from any thread.
 *
 * The block freed last on a scheduler is held back (one deep, a small one
 * and one of another size up to KRX_MSG_HOLD_MAX payload bytes): it is
 * cached or freed when the next one of its class is, so an allocation never
 * gets the block just freed.
 * A message freed twice, with a receive in between, then still finds its
 * block dead (magic 0, heap.h) and kr_msg_free crashes the caller, instead
 * of freeing the message received in between that would otherwise have
 * reused the block.
 *
 * A payload starts at m + 1, 16-byte aligned (krill.h promises it): the
 * block comes from malloc (16-byte aligned on x86-64 and aarch64) and the
 * header's size is a multiple of 16.
 *
 * Sanitizer builds cache nothing, so that a use after free of a message is
 * seen as one. They hold a block back all the same (libc's allocator, like
 * the cache, would hand the block just freed to the next allocation), and
 * ASan's poisons all of it but the header while it is held.
 */
#ifndef KRX_MSG_H
#define KRX_MSG_H

#include "mailbox.h"
#include "san.h"
#include "stat.h"

#define KRX_MSG_SMALL 32   /* payload bytes of a cached block (128 in all) */
#define KRX_MSG_CACHE 1024 /* blocks one scheduler keeps (128 KiB): a broadcast
                            * to hundreds comes back to the cache in a burst */
#define KRX_MSG_HOLD_MAX (64u << 10) /* larger blocks are freed at once, not held */

#if KRX_ASAN || KRX_TSAN
#define KRX_MSG_CACHING 0
#else
#define KRX_MSG_CACHING 1
#endif

_Static_assert(sizeof(krx_msg) % 16 == 0, "a payload (at m + 1) must be 16-byte aligned");
_Static_assert(sizeof(krx_msg) + KRX_MSG_SMALL == 128, "a cached block is two cache lines");

typedef struct krx_msg_cache {
	unsigned n;
	uint64_t sent;          /* messages sent from processes running here (send.c): a
	                         * figure, beside n so that the send path adds to it
	                         * through the pointer it holds already; stat.h */
	uint64_t bytes;         /* blocks taken from the allocator here, less those
	                         * given back here (mod 2^64: a block may go back on
	                         * another scheduler); stat.h */
	krx_msg *held;          /* the small block freed last: cached when the next is freed */
	krx_msg *held_big;      /* the same for the other blocks (sanitizer builds: all) */
	krx_msg *v[KRX_MSG_CACHE];
} krx_msg_cache;

krx_msg *krx_msg_new_slow(krx_msg_cache *c, size_t len);
/* The bytes of message blocks host threads took and gave back (c NULL),
 * as krx_msg_cache.bytes: the sum over every cache and this is what krill
 * holds. Any thread. */
uint64_t krx_msg_host_bytes(void);
void krx_msg_free_slow(krx_msg_cache *c, krx_msg *m);

/* A user message from c, which holds one (c->n > 0). */
static inline krx_msg *krx_msg_from_cache(krx_msg_cache *c)
{
	krx_msg *m = c->v[--c->n];
	m->hb.magic = 0;
	m->hb.kind = KRX_MSG_USER;
	m->pub.bin = NULL;
	m->pub.ref = 0;
	return m;
}

/* A user message with room for len bytes of payload, its fields set but for
 * sender, tag and len; c: the calling scheduler's cache, or NULL. Small
 * blocks have hb.size KRX_MSG_SMALL, the payload room, which tells them
 * apart when they are freed. */
static inline krx_msg *krx_msg_new(krx_msg_cache *c, size_t len)
{
	if (!KRX_MSG_CACHING || !c || !c->n || len > KRX_MSG_SMALL)
		return krx_msg_new_slow(c, len);
	return krx_msg_from_cache(c);
}

/* Drop the message's binary, if any, and free the block: hold it back,
 * and cache (or free) the one held before. c: the calling scheduler's
 * cache, or NULL (a host thread: freed at once). */
static inline void krx_msg_free(krx_msg_cache *c, krx_msg *m)
{
	krx_msg *prev;
	if (!KRX_MSG_CACHING || !c || m->pub.bin || m->hb.size != KRX_MSG_SMALL ||
	    !(prev = c->held) || c->n == KRX_MSG_CACHE) {
		krx_msg_free_slow(c, m);
		return;
	}
	c->held = m;
	c->v[c->n++] = prev;
}

/* krx_msg_free for a message block found on a heap (krx_heap_destroy's
 * free_msg; ctx: the caller's cache or NULL). */
void krx_msg_free_hblk(krx_hblk *b, void *cache);
/* Free every message of a chain linked through next. */
void krx_msg_free_chain(krx_msg_cache *c, krx_msg *m);
/* Give every cached block back (a scheduler that stops). */
void krx_msg_cache_flush(krx_msg_cache *c);

#endif
