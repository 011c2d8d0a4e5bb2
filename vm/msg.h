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
 * Sanitizer builds cache nothing, so that a use after free of a message is
 * seen as one.
 */
#ifndef KRX_MSG_H
#define KRX_MSG_H

#include "mailbox.h"
#include "san.h"

#define KRX_MSG_SMALL 40   /* payload bytes of a cached block (128 in all) */
#define KRX_MSG_CACHE 1024 /* blocks one scheduler keeps (128 KiB): a broadcast
                            * to hundreds comes back to the cache in a burst */

#if KRX_ASAN || KRX_TSAN
#define KRX_MSG_CACHING 0
#else
#define KRX_MSG_CACHING 1
#endif

typedef struct krx_msg_cache {
	unsigned n;
	krx_msg *v[KRX_MSG_CACHE];
} krx_msg_cache;

krx_msg *krx_msg_new_slow(krx_msg_cache *c, size_t len);
void krx_msg_free_slow(krx_msg_cache *c, krx_msg *m);

/* A user message with room for len bytes of payload, its fields set but for
 * sender, tag and len; c: the calling scheduler's cache, or NULL. Small
 * blocks have hb.size KRX_MSG_SMALL, the payload room, which tells them
 * apart when they are freed. */
static inline krx_msg *krx_msg_new(krx_msg_cache *c, size_t len)
{
	if (!KRX_MSG_CACHING || !c || !c->n || len > KRX_MSG_SMALL)
		return krx_msg_new_slow(c, len);
	krx_msg *m = c->v[--c->n];
	m->hb.magic = 0;
	m->hb.kind = KRX_MSG_USER;
	m->pub.bin = NULL;
	m->pub.ref = 0;
	return m;
}

/* Drop the message's binary, if any, and free the block. */
static inline void krx_msg_free(krx_msg_cache *c, krx_msg *m)
{
	if (!KRX_MSG_CACHING || !c || m->pub.bin || m->hb.size != KRX_MSG_SMALL ||
	    c->n == KRX_MSG_CACHE) {
		krx_msg_free_slow(c, m);
		return;
	}
	c->v[c->n++] = m;
}

/* Free every message of a chain linked through next. */
void krx_msg_free_chain(krx_msg_cache *c, krx_msg *m);
/* Give every cached block back (a scheduler that stops). */
void krx_msg_cache_flush(krx_msg_cache *c);

#endif
