/*
 * wheel.c - the hierarchical timing wheel (see wheel.h).
 */
#include "wheel.h"

#include <stddef.h>

static void list_init(krx_wlink *h)
{
	h->prev = h->next = h;
}

static bool list_empty(const krx_wlink *h)
{
	return h->next == h;
}

static void list_append(krx_wlink *h, krx_wlink *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

static void list_unlink(krx_wlink *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

void krx_wheel_init(krx_wheel *w)
{
	w->elapsed = 0;
	list_init(&w->due);
	for (unsigned l = 0; l < KRX_WHEEL_LEVELS; l++) {
		w->occupied[l] = 0;
		for (unsigned s = 0; s < KRX_WHEEL_SLOTS; s++)
			list_init(&w->slots[l][s]);
	}
}

/* The level for tick `when` seen from `elapsed`: that of the highest digit
 * in which they differ (level 0 if none but the lowest). */
static unsigned level_for(uint64_t elapsed, uint64_t when)
{
	uint64_t masked = (elapsed ^ when) | (KRX_WHEEL_SLOTS - 1);
	unsigned level = (unsigned)(63 - __builtin_clzll(masked)) / KRX_WHEEL_BITS;
	/* Past the top (2^48 ticks away: never, with krill's limits), the
	 * top level's slots serve as a ring. */
	return level < KRX_WHEEL_LEVELS ? level : KRX_WHEEL_LEVELS - 1;
}

static void place(krx_wheel *w, krx_wentry *e)
{
	if (e->when <= w->elapsed) {
		e->level = KRX_WHEEL_DUE;
		list_append(&w->due, &e->link);
		return;
	}
	unsigned level = level_for(w->elapsed, e->when);
	unsigned slot = (unsigned)(e->when >> (level * KRX_WHEEL_BITS)) & (KRX_WHEEL_SLOTS - 1);
	e->level = (uint8_t)level;
	e->slot = (uint8_t)slot;
	list_append(&w->slots[level][slot], &e->link);
	w->occupied[level] |= (uint64_t)1 << slot;
}

void krx_wheel_insert(krx_wheel *w, krx_wentry *e)
{
	place(w, e);
}

void krx_wheel_remove(krx_wheel *w, krx_wentry *e)
{
	list_unlink(&e->link);
	if (e->level != KRX_WHEEL_DUE && list_empty(&w->slots[e->level][e->slot]))
		w->occupied[e->level] &= ~((uint64_t)1 << e->slot);
}

krx_wentry *krx_wheel_pop_due(krx_wheel *w)
{
	if (list_empty(&w->due))
		return NULL;
	krx_wlink *l = w->due.next;
	list_unlink(l);
	return (krx_wentry *)((char *)l - offsetof(krx_wentry, link));
}

/* The start of the next occupied slot of level l at or after `elapsed`,
 * and that slot; false if the level is empty. */
static bool level_next(const krx_wheel *w, unsigned l, uint64_t *start, unsigned *slot)
{
	uint64_t occ = w->occupied[l];
	if (!occ)
		return false;
	unsigned shift = l * KRX_WHEEL_BITS;
	unsigned now_slot = (unsigned)(w->elapsed >> shift) & (KRX_WHEEL_SLOTS - 1);
	/* Rotate so that the slot of `elapsed` is bit 0: the first set bit
	 * from there on is the next slot with entries. */
	uint64_t rot = now_slot ? occ >> now_slot | occ << (KRX_WHEEL_SLOTS - now_slot) : occ;
	unsigned s = ((unsigned)__builtin_ctzll(rot) + now_slot) & (KRX_WHEEL_SLOTS - 1);
	uint64_t slot_range = (uint64_t)1 << shift;
	uint64_t level_range = slot_range << KRX_WHEEL_BITS;
	uint64_t t = (w->elapsed & ~(level_range - 1)) + s * slot_range;
	/* Below the top, an occupied slot always lies ahead of `elapsed` (its
	 * entries differ from it in this digit and agree above); only the top
	 * level wraps round. */
	if (t <= w->elapsed)
		t += level_range;
	*start = t;
	*slot = s;
	return true;
}

/* The earliest slot with entries: its level, slot and start tick. */
static bool next_slot(const krx_wheel *w, unsigned *level, unsigned *slot, uint64_t *start)
{
	for (unsigned l = 0; l < KRX_WHEEL_LEVELS; l++) {
		if (level_next(w, l, start, slot)) {
			/* A lower level's slots all lie before any higher one's. */
			*level = l;
			return true;
		}
	}
	return false;
}

uint64_t krx_wheel_next(const krx_wheel *w)
{
	if (!list_empty(&w->due))
		return w->elapsed;
	unsigned level, slot;
	uint64_t start;
	return next_slot(w, &level, &slot, &start) ? start : UINT64_MAX;
}

uint64_t krx_wheel_entry_next(const krx_wheel *w, const krx_wentry *e)
{
	if (e->level == KRX_WHEEL_DUE)
		return w->elapsed;
	/* The start of its slot: its tick with the lower digits cleared. */
	return e->when & ~(((uint64_t)1 << (e->level * KRX_WHEEL_BITS)) - 1);
}

/* Time has reached the start of slot (level, slot): its entries move down,
 * or, at level 0, become due, in their order. All are taken off first: at
 * the top level an entry may go back into the very slot it came from. */
static void expire_slot(krx_wheel *w, unsigned level, unsigned slot)
{
	krx_wlink *h = &w->slots[level][slot];
	krx_wlink taken;
	list_init(&taken);
	if (!list_empty(h)) {
		taken.next = h->next;
		taken.prev = h->prev;
		taken.next->prev = &taken;
		taken.prev->next = &taken;
		list_init(h);
	}
	w->occupied[level] &= ~((uint64_t)1 << slot);
	while (!list_empty(&taken)) {
		krx_wlink *l = taken.next;
		list_unlink(l);
		place(w, (krx_wentry *)((char *)l - offsetof(krx_wentry, link)));
	}
}

void krx_wheel_advance(krx_wheel *w, uint64_t now)
{
	unsigned level, slot;
	uint64_t start;
	while (next_slot(w, &level, &slot, &start) && start <= now) {
		w->elapsed = start;
		expire_slot(w, level, slot);
	}
	if (now > w->elapsed)
		w->elapsed = now;
}
