/*
 * stat.h - counters that one thread writes and any thread reads: the
 * figures of a scheduler (steals, messages sent, restarts ...), kept per
 * scheduler so that the message path never pays for a shared atomic
 * read-modify-write (a locked add costs ~20 cycles and a cache line that
 * bounces between cores; a plain add to a line the owner has in cache
 * costs one instruction).
 *
 * The owner adds with a plain load and store, never a locked instruction;
 * readers on other threads load the word whole. An aligned 64-bit word is
 * written and read in one access on x86-64 and aarch64, so a reader sees
 * an old value or the new one, never a torn one, and a count read twice
 * never goes back. In TSan builds both sides are relaxed atomics, so that
 * the tool sees the intent; elsewhere the owner's add is a plain one
 * (`addq $1, mem` on x86-64), since a relaxed atomic load and store (or a
 * volatile add) is three instructions where the message path can afford
 * one. The compiler may hold a plain count in a register for a while (a
 * loop that sends); it stores it before the function returns, so a
 * reader is at worst a call behind.
 */
#ifndef KRX_STAT_H
#define KRX_STAT_H

#include <stdint.h>

#include "san.h"

/* Owner only: *c += n. */
static inline void krx_stat_add(uint64_t *c, uint64_t n)
{
#if KRX_TSAN
	/* Relaxed: a figure; only the owner writes it. */
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
#else
	*c += n; /* one `add` to memory; see above */
#endif
}

/* Any thread: the count now, or a moment ago. */
static inline uint64_t krx_stat_read(const uint64_t *c)
{
	/* Relaxed: a figure, with no other memory to order. */
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

#endif
