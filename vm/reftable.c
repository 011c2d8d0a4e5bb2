/*
 * reftable.c - the hash table from references to entries (see reftable.h).
 */
#include "reftable.h"

#include <stdint.h>

#include "mi.h"
#include "signal.h"

#define MIN_BITS 6
#define STEP_BUCKETS 2     /* buckets with entries moved per call while resizing */
#define STEP_EMPTY 16      /* empty buckets passed over per call, at most */

static size_t bucket(kr_ref ref, unsigned bits)
{
	return (size_t)((uint64_t)ref >> KRX_REF_LOW_BITS) & (((size_t)1 << bits) - 1);
}

/* Which table holds (or will hold) ref, and the head of its chain. */
static krx_refent **chain(krx_reftable *t, kr_ref ref)
{
	size_t i = bucket(ref, t->bits[0]);
	if (t->resizing && i < t->moved)
		return &t->b[1][bucket(ref, t->bits[1])];
	return &t->b[0][i];
}

int krx_reftable_init(krx_reftable *t)
{
	*t = (krx_reftable){ .bits = { MIN_BITS, 0 } };
	t->b[0] = krx_calloc_raw((size_t)1 << MIN_BITS, sizeof *t->b[0]);
	return t->b[0] ? 0 : KR_ENOMEM;
}

void krx_reftable_free(krx_reftable *t)
{
	krx_free_raw(t->b[0]);
	krx_free_raw(t->b[1]);
	*t = (krx_reftable){ 0 };
}

/* Start moving to a table of 2^bits buckets; if memory is short, stay (the
 * chains grow longer: lookups stay right). */
static void start_resize(krx_reftable *t, unsigned bits)
{
	/* calloc: a large table comes as zero pages, first touched as the
	 * buckets are moved in, a few per call. */
	krx_refent **nb = krx_calloc_raw((size_t)1 << bits, sizeof *nb);
	if (!nb)
		return;
	t->b[1] = nb;
	t->bits[1] = bits;
	t->moved = 0;
	t->resizing = true;
}

/* Move a bucket or two to the new table; the last one makes it the table. */
static void step(krx_reftable *t)
{
	size_t size = (size_t)1 << t->bits[0];
	for (unsigned full = 0, empty = 0; t->moved < size && full < STEP_BUCKETS && empty < STEP_EMPTY;) {
		krx_refent *e = t->b[0][t->moved];
		t->b[0][t->moved++] = NULL;
		if (!e) {
			empty++;
			continue;
		}
		full++;
		for (krx_refent *next; e; e = next) {
			next = e->next;
			krx_refent **h = &t->b[1][bucket(e->ref, t->bits[1])];
			e->next = *h;
			*h = e;
		}
	}
	if (t->moved < size)
		return;
	krx_free_raw(t->b[0]);
	t->b[0] = t->b[1];
	t->bits[0] = t->bits[1];
	t->b[1] = NULL;
	t->resizing = false;
}

/* A call's share of the work: a step of a resize under way, or the start
 * of one when the entries outgrow the buckets, or number fewer than an
 * eighth of them. */
static void maintain(krx_reftable *t)
{
	if (t->resizing) {
		step(t);
		return;
	}
	size_t size = (size_t)1 << t->bits[0];
	if (t->n > size)
		start_resize(t, t->bits[0] + 1);
	else if (t->bits[0] > MIN_BITS && t->n < size / 8)
		start_resize(t, t->bits[0] - 1);
}

void krx_reftable_put(krx_reftable *t, krx_refent *e)
{
	maintain(t);
	krx_refent **h = chain(t, e->ref);
	e->next = *h;
	*h = e;
	t->n++;
}

krx_refent *krx_reftable_get(krx_reftable *t, kr_ref ref)
{
	maintain(t);
	krx_refent *e = *chain(t, ref);
	while (e && e->ref != ref)
		e = e->next;
	return e;
}

void krx_reftable_del(krx_reftable *t, krx_refent *e)
{
	maintain(t);
	krx_refent **p = chain(t, e->ref);
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	t->n--;
}

static void drain_one(krx_refent **b, size_t from, size_t n, void (*fn)(krx_refent *e))
{
	for (size_t i = from; i < n; i++) {
		for (krx_refent *e = b[i], *next; e; e = next) {
			next = e->next;
			fn(e);
		}
		b[i] = NULL;
	}
}

void krx_reftable_drain(krx_reftable *t, void (*fn)(krx_refent *e))
{
	drain_one(t->b[0], t->resizing ? t->moved : 0, (size_t)1 << t->bits[0], fn);
	if (t->resizing)
		drain_one(t->b[1], 0, (size_t)1 << t->bits[1], fn);
	t->n = 0;
}
