/*
 * timer.c - the per-scheduler timer heap (see timer.h).
 */
#include "timer.h"

#include <stdlib.h>

#include "mi.h"

void krx_timers_init(krx_timers *t)
{
	t->heap = NULL;
	t->n = t->cap = 0;
	t->clean_at = 1024;
}

void krx_timers_free(krx_timers *t)
{
	krx_free_raw(t->heap);
	krx_timers_init(t);
}

static void sift_up(krx_timer *h, size_t i)
{
	krx_timer x = h[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (h[parent].deadline <= x.deadline)
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = x;
}

static void sift_down(krx_timer *h, size_t n, size_t i)
{
	krx_timer x = h[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1].deadline < h[c].deadline)
			c++;
		if (x.deadline <= h[c].deadline)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

/* Relaxed loads: a stale judgement only delays dropping an entry; the
 * firing CAS is what decides a wake-up. */
static int is_stale(const krx_timer *e)
{
	return AO_load(&e->task->state) != e->expect;
}

static void drop_stale(krx_timers *t)
{
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++)
		if (!is_stale(&t->heap[i]))
			t->heap[k++] = t->heap[i];
	t->n = k;
	for (size_t i = k / 2; i-- > 0;)
		sift_down(t->heap, t->n, i);
	t->clean_at = 2 * t->n > 1024 ? 2 * t->n : 1024;
}

int krx_timers_add(krx_timers *t, uint64_t deadline, krx_task *task, AO_t expect)
{
	if (t->n >= t->clean_at)
		drop_stale(t);
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		krx_timer *h = krx_realloc_raw(t->heap, cap * sizeof *h);
		if (!h)
			return -1;
		t->heap = h;
		t->cap = cap;
	}
	t->heap[t->n] = (krx_timer){ deadline, task, expect };
	sift_up(t->heap, t->n++);
	return 0;
}

unsigned krx_timers_fire(krx_timers *t, uint64_t now, bool (*expire)(krx_task *, AO_t))
{
	unsigned woke = 0;
	while (t->n && t->heap[0].deadline <= now) {
		krx_timer e = t->heap[0];
		t->heap[0] = t->heap[--t->n];
		if (t->n)
			sift_down(t->heap, t->n, 0);
		woke += expire(e.task, e.expect);
	}
	return woke;
}
