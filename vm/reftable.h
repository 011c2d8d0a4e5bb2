/*
 * reftable.h - an intrusive hash table from kr_ref to an entry, which grows
 * and shrinks a few buckets at a time, so that no call ever rehashes the
 * whole table at once (a million timers took 36 ms to rehash in one go,
 * most of it the first touch of the new table's pages: long enough for the
 * watchdog to report the process that happened to start the next timer).
 *
 * The bucket of a reference is its count (the reference less its low bits,
 * signal.h): the references one scheduler hands out are consecutive counts,
 * so a burst of entries walks the table in order instead of missing the
 * cache at every step, and entries made fewer than a table's size apart
 * never share a chain.
 *
 * While the table resizes, there are two: the buckets of the old one below
 * `moved` have gone to the new one. An entry lives in the new table if its
 * old bucket is below `moved`, else in the old one, so a lookup looks in
 * one place; every call moves a bucket or two.
 *
 * Not thread-safe: its owner locks around it.
 */
#ifndef KRX_REFTABLE_H
#define KRX_REFTABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "krill.h"

typedef struct krx_refent {
	struct krx_refent *next;
	kr_ref ref;
} krx_refent;

typedef struct krx_reftable {
	krx_refent **b[2];  /* the table, and while resizing, the new one */
	unsigned bits[2];
	size_t moved;       /* while resizing: the old buckets below it are moved */
	bool resizing;
	size_t n;           /* entries */
} krx_reftable;

/* An empty table: 0, or KR_ENOMEM. */
int krx_reftable_init(krx_reftable *t);
/* Free the table (not the entries: see krx_reftable_drain). */
void krx_reftable_free(krx_reftable *t);
/* Add e (e->ref set, not in the table). */
void krx_reftable_put(krx_reftable *t, krx_refent *e);
/* The entry with ref, or NULL. */
krx_refent *krx_reftable_get(krx_reftable *t, kr_ref ref);
/* Take e (in the table) out. */
void krx_reftable_del(krx_reftable *t, krx_refent *e);
/* Take every entry out, passing each to fn (which may free it). */
void krx_reftable_drain(krx_reftable *t, void (*fn)(krx_refent *e));

#endif
