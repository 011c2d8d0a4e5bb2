/*
 * idxstack.h - a lock-free stack of 32-bit indices (the free lists of the
 * stack pool and of the process table).
 *
 * The head word is (tag << 32) | (index + 1), 0 in the low half meaning
 * empty. Every change of the head is a CAS that bumps the tag, so a pop that
 * read a stale link (its top was popped and pushed again meanwhile) cannot
 * succeed: no ABA, and no double-width CAS. Links live in memory the caller
 * owns and names through `link` (index + 1 of the next entry, 0 at the end);
 * they are read and written atomically, because a pop may read the link of
 * an entry that another thread is pushing again. That memory must outlive
 * the stack: a pop may read the link of an entry popped meanwhile.
 */
#ifndef KRX_IDXSTACK_H
#define KRX_IDXSTACK_H

#include <atomic_ops.h>
#include <stdint.h>

#define KRX_IDX_TAG_ONE ((AO_t)1 << 32)
#define KRX_IDX_TAG(h) ((h) & ~(AO_t)0xffffffffu)
#define KRX_IDX_TOP1(h) ((uint32_t)(h)) /* index + 1 of the top; 0 = empty */

typedef unsigned *krx_idx_link_fn(void *ctx, uint32_t idx);

/* Push the chain first..last, already linked from first to last. */
static inline void krx_idxstack_push(AO_t *head, krx_idx_link_fn *link, void *ctx, uint32_t first,
                                     uint32_t last)
{
	/* Relaxed: a value to try; the CAS validates it. */
	AO_t old = AO_load(head);
	for (;;) {
		AO_int_store(link(ctx, last), KRX_IDX_TOP1(old));
		/* Release: a popper that acquires this head (or a later one: every
		 * change is an RMW, so a release sequence) sees the links and
		 * whatever the pusher wrote to the entries. */
		AO_t seen = AO_fetch_compare_and_swap_release(head, old,
		                                              KRX_IDX_TAG(old) + KRX_IDX_TAG_ONE + first + 1);
		if (seen == old)
			return;
		old = seen;
	}
}

/* Pop an index, or return -1 when the stack is empty. */
static inline int64_t krx_idxstack_pop(AO_t *head, krx_idx_link_fn *link, void *ctx)
{
	/* Acquire: pairs with the pushers' release. */
	AO_t old = AO_load_acquire(head);
	while (KRX_IDX_TOP1(old)) {
		uint32_t top = KRX_IDX_TOP1(old) - 1;
		/* Stale if top was popped and pushed again meanwhile; then the
		 * tag has moved and the CAS fails. */
		unsigned next = AO_int_load(link(ctx, top));
		/* Acquire, also on failure: a retry reads the new top's link. */
		AO_t seen = AO_fetch_compare_and_swap_acquire(head, old,
		                                              KRX_IDX_TAG(old) + KRX_IDX_TAG_ONE + next);
		if (seen == old)
			return top;
		old = seen;
	}
	return -1;
}

#endif
