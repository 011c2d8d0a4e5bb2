/*
 * sets.h - the small sets a process keeps of its links, monitors and
 * priority marks: arrays, owned by the process alone (no locks), searched
 * linearly (a process has few).
 */
#ifndef KRX_SETS_H
#define KRX_SETS_H

#include <stdbool.h>

#include "krill.h"
#include "mi.h"

typedef struct krx_pidset {
	kr_pid *v;
	unsigned n, cap;
} krx_pidset;

typedef struct krx_mon {
	kr_ref ref;
	kr_pid pid;
} krx_mon;

typedef struct krx_monset {
	krx_mon *v;
	unsigned n, cap;
} krx_monset;

static inline bool krx_set_grow(void **v, unsigned *cap, size_t elem)
{
	unsigned ncap = *cap ? 2 * *cap : 4;
	void *nv = krx_realloc_raw(*v, ncap * elem);
	if (!nv)
		return false;
	*v = nv;
	*cap = ncap;
	return true;
}

static inline bool pidset_has(const krx_pidset *s, kr_pid p)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->v[i] == p)
			return true;
	return false;
}

static inline int pidset_add(krx_pidset *s, kr_pid p)
{
	if (pidset_has(s, p))
		return 0;
	if (s->n == s->cap && !krx_set_grow((void **)&s->v, &s->cap, sizeof *s->v))
		return KR_ENOMEM;
	s->v[s->n++] = p;
	return 0;
}

static inline bool pidset_del(krx_pidset *s, kr_pid p)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->v[i] == p) {
			s->v[i] = s->v[--s->n];
			return true;
		}
	}
	return false;
}

static inline int monset_add(krx_monset *s, kr_ref ref, kr_pid pid)
{
	if (s->n == s->cap && !krx_set_grow((void **)&s->v, &s->cap, sizeof *s->v))
		return KR_ENOMEM;
	s->v[s->n++] = (krx_mon){ ref, pid };
	return 0;
}

/* Remove the monitor with this reference; its pid in *pid. */
static inline bool monset_del(krx_monset *s, kr_ref ref, kr_pid *pid)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->v[i].ref == ref) {
			if (pid)
				*pid = s->v[i].pid;
			s->v[i] = s->v[--s->n];
			return true;
		}
	}
	return false;
}

static inline bool monset_has(const krx_monset *s, kr_ref ref)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->v[i].ref == ref)
			return true;
	return false;
}

#endif
