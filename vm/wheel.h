/*
 * wheel.h - a hierarchical timing wheel: entries keyed by a tick (vm/'s
 * message timers use milliseconds), inserted, removed and expired in O(1)
 * each, however many are pending.
 *
 * Eight levels of 64 slots; level L's slots are 64^L ticks wide, so the
 * wheel spans 2^48 ticks past `elapsed` (8,900 years of milliseconds). An
 * entry goes to the level of the highest 6-bit digit in which its tick
 * differs from `elapsed`, in the slot that digit names. When time reaches
 * a level-0 slot, its entries are due; when it reaches the start of a
 * higher slot, its entries move down (each moves at most seven times in
 * its life). A 64-bit mask per level says which slots hold entries, so
 * the next slot with work is found in a few instructions and empty
 * stretches of time cost nothing: a wheel with one entry an hour away
 * wakes its owner twice, not every tick (the layout is tokio's).
 *
 * Entries are intrusive, linked in circular lists through a sentinel per
 * slot, appended at the tail. An entry of a given tick reaches the due
 * list only after every entry inserted before it with the same tick: a
 * slot's entries move down in their order, and into slots that are empty
 * then (no entry goes straight into a level-0 slot of a block before that
 * block's higher slot has moved down: `elapsed` is not yet in it). So due
 * entries come out by tick, and within a tick in insertion order.
 *
 * Not thread-safe: its owner locks around it.
 */
#ifndef KRX_WHEEL_H
#define KRX_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#define KRX_WHEEL_BITS 6
#define KRX_WHEEL_SLOTS (1u << KRX_WHEEL_BITS)
#define KRX_WHEEL_LEVELS 8

typedef struct krx_wlink {
	struct krx_wlink *prev, *next;
} krx_wlink;

typedef struct krx_wentry {
	krx_wlink link;
	uint64_t when;     /* the tick it is due at */
	uint8_t level;     /* where it is: level and slot, or KRX_WHEEL_DUE */
	uint8_t slot;
	/* The rest of the word is the owner's, so that an entry embedded
	 * first in a larger structure costs it no padding. */
	uint8_t own8[2];
	uint32_t own32;
} krx_wentry;

#define KRX_WHEEL_DUE 0xff

typedef struct krx_wheel {
	uint64_t elapsed;                 /* ticks processed: everything up to it is due */
	uint64_t occupied[KRX_WHEEL_LEVELS];
	krx_wlink due;                    /* entries whose tick has come, in order */
	krx_wlink slots[KRX_WHEEL_LEVELS][KRX_WHEEL_SLOTS];
} krx_wheel;

/* An empty wheel at tick 0. */
void krx_wheel_init(krx_wheel *w);
/* Add e (e->when set): to the due list at once if its tick has come. */
void krx_wheel_insert(krx_wheel *w, krx_wentry *e);
/* Take e out, wherever it is (a slot or the due list). */
void krx_wheel_remove(krx_wheel *w, krx_wentry *e);
/* Advance to tick now: every entry due by then joins the due list. */
void krx_wheel_advance(krx_wheel *w, uint64_t now);
/* The oldest due entry, taken off the due list; NULL if none. */
krx_wentry *krx_wheel_pop_due(krx_wheel *w);
/* The tick at which krx_wheel_advance next has work: `elapsed` if entries
 * are due now, UINT64_MAX if the wheel is empty. For an entry in a higher
 * level it is the start of its slot, which may be earlier than its own
 * tick (its owner then wakes to move it down, and sleeps again). */
uint64_t krx_wheel_next(const krx_wheel *w);
/* The tick at which advance would next have work for e alone (e in the
 * wheel): a bound for krx_wheel_next after inserting e. */
uint64_t krx_wheel_entry_next(const krx_wheel *w, const krx_wentry *e);

#endif
