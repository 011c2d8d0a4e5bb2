/*
 * track.c - links and monitors across one connection (track.h).
 *
 * One chained hash table per peer, under its own mutex, which is never
 * held across a krill call: krd_track_lost detaches the whole table under
 * the lock and fires its entries after letting go.
 */
#include "track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

enum { LINK, MON_OUT, CALL_OUT, MON_IN, CALL_IN, NODE_MON };

struct krd_tracked {
	krd_tracked *next;
	uint64_t key;
	int type;
	kr_pid local, remote;
	kr_ref ref;
	krd_mon_in *in; /* MON_IN, CALL_IN: the monitor or call as noted */
	char *name;     /* MON_OUT by registered name: the name */
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t link_key(kr_pid local, kr_pid remote)
{
	return mix((uint64_t)local * 31 + mix((uint64_t)remote));
}

void krd_track_init(krd_track *t)
{
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->lock, NULL);
}

static void free_all(krd_tracked **b, size_t nb)
{
	for (size_t i = 0; i < nb; i++)
		for (krd_tracked *e = b[i], *next; e; e = next) {
			next = e->next;
			free(e->in);
			free(e->name);
			free(e);
		}
	free(b);
}

void krd_track_free(krd_track *t)
{
	free_all(t->b, t->nb);
	pthread_mutex_destroy(&t->lock);
}

/* Under the lock: room for one more (the table doubles at load 1). */
static void grow(krd_track *t)
{
	if (t->n < t->nb)
		return;
	size_t nb = t->nb ? t->nb * 2 : 64;
	krd_tracked **b = calloc(nb, sizeof *b);
	if (!b)
		return; /* the chains get longer; nothing is lost */
	for (size_t i = 0; i < t->nb; i++)
		for (krd_tracked *e = t->b[i], *next; e; e = next) {
			next = e->next;
			e->next = b[e->key & (nb - 1)];
			b[e->key & (nb - 1)] = e;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

/* Under the lock: the link of chain where e of this shape is, or NULL. */
static krd_tracked **find(krd_track *t, uint64_t key, int type, kr_pid local, kr_pid remote)
{
	if (!t->nb)
		return NULL;
	for (krd_tracked **at = &t->b[key & (t->nb - 1)]; *at; at = &(*at)->next) {
		krd_tracked *e = *at;
		if (e->key == key && e->type == type &&
		    (type != LINK || (e->local == local && e->remote == remote)))
			return at;
	}
	return NULL;
}

static void add(krd_track *t, krd_tracked *e)
{
	grow(t);
	if (!t->nb) {
		free(e->in);
		free(e);
		return; /* no memory for a table at all: it is not tracked */
	}
	e->next = t->b[e->key & (t->nb - 1)];
	t->b[e->key & (t->nb - 1)] = e;
	t->n++;
}

/* Under the lock: unchain and return the entry, or NULL. */
static krd_tracked *take(krd_track *t, uint64_t key, int type, kr_pid local, kr_pid remote)
{
	krd_tracked **at = find(t, key, type, local, remote);
	if (!at)
		return NULL;
	krd_tracked *e = *at;
	*at = e->next;
	t->n--;
	return e;
}

void krd_track_link(krd_track *t, kr_pid local, kr_pid remote)
{
	uint64_t key = link_key(local, remote);
	krd_tracked *e = calloc(1, sizeof *e);
	pthread_mutex_lock(&t->lock);
	if (e && !find(t, key, LINK, local, remote)) { /* linking twice is one link */
		*e = (krd_tracked){.key = key, .type = LINK, .local = local, .remote = remote};
		add(t, e);
		e = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	free(e);
}

void krd_track_unlink(krd_track *t, kr_pid local, kr_pid remote)
{
	pthread_mutex_lock(&t->lock);
	krd_tracked *e = take(t, link_key(local, remote), LINK, local, remote);
	pthread_mutex_unlock(&t->lock);
	free(e);
}

void krd_track_mon_out(krd_track *t, kr_ref ref, kr_pid watcher, kr_pid target, bool call,
                       const char *name)
{
	krd_tracked *e = calloc(1, sizeof *e);
	char *n = name ? strdup(name) : NULL;
	if (!e || (name && !n)) {
		free(e);
		free(n);
		return;
	}
	*e = (krd_tracked){.key = mix((uint64_t)ref), .type = call ? CALL_OUT : MON_OUT,
	                   .local = watcher, .remote = target, .ref = ref, .name = n};
	pthread_mutex_lock(&t->lock);
	add(t, e);
	pthread_mutex_unlock(&t->lock);
}

/* Unchain the entry of type a or b keyed by ref, or NULL. */
static krd_tracked *take_ref(krd_track *t, kr_ref ref, int a, int b)
{
	uint64_t key = mix((uint64_t)ref);
	pthread_mutex_lock(&t->lock);
	krd_tracked **at = t->nb ? &t->b[key & (t->nb - 1)] : NULL;
	krd_tracked *e = NULL;
	for (; at && *at; at = &(*at)->next)
		if (((*at)->type == a || (*at)->type == b) && (*at)->ref == ref) {
			e = *at;
			*at = e->next;
			t->n--;
			break;
		}
	pthread_mutex_unlock(&t->lock);
	return e;
}

bool krd_track_mon_out_end(krd_track *t, kr_ref ref, kr_pid *target, bool *call, char *name)
{
	krd_tracked *e = take_ref(t, ref, MON_OUT, CALL_OUT);
	if (!e)
		return false;
	if (target)
		*target = e->remote;
	if (call)
		*call = e->type == CALL_OUT;
	if (name)
		snprintf(name, KR_NAME_MAX + 1, "%s", e->name ? e->name : "");
	free(e->name);
	free(e);
	return true;
}

kr_ref krd_remote_ref(const uint8_t *eref, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
	for (size_t i = 0; i < len; i++)
		h = mix(h ^ eref[i]);
	return KRD_REMOTE_REF_BIT | (kr_ref)(h & (((uint64_t)1 << 62) - 1));
}

static bool in_add(krd_track *t, int type, kr_ref kref, const krd_mon_in *m)
{
	krd_tracked *e = calloc(1, sizeof *e);
	krd_mon_in *in = malloc(sizeof *in);
	if (!e || !in) {
		free(e);
		free(in);
		return false;
	}
	*in = *m;
	*e = (krd_tracked){.key = mix((uint64_t)kref), .type = type, .local = m->target,
	                   .remote = m->watcher, .ref = kref, .in = in};
	pthread_mutex_lock(&t->lock);
	add(t, e);
	pthread_mutex_unlock(&t->lock);
	return true;
}

static bool in_end(krd_track *t, int type, kr_ref kref, krd_mon_in *out)
{
	krd_tracked *e = take_ref(t, kref, type, type);
	if (!e)
		return false;
	if (out)
		*out = *e->in;
	free(e->in);
	free(e);
	return true;
}

bool krd_track_mon_in(krd_track *t, kr_ref kref, const krd_mon_in *m)
{
	return in_add(t, MON_IN, kref, m);
}

bool krd_track_mon_in_end(krd_track *t, kr_ref kref, krd_mon_in *out)
{
	return in_end(t, MON_IN, kref, out);
}

bool krd_track_call_in(krd_track *t, kr_ref kref, const krd_mon_in *m)
{
	return in_add(t, CALL_IN, kref, m);
}

bool krd_track_call_in_end(krd_track *t, kr_ref kref, krd_mon_in *out)
{
	return in_end(t, CALL_IN, kref, out);
}

void krd_track_node(krd_track *t, kr_pid pid)
{
	krd_tracked *e = calloc(1, sizeof *e);
	if (!e)
		return;
	*e = (krd_tracked){.key = mix((uint64_t)pid), .type = NODE_MON, .local = pid};
	pthread_mutex_lock(&t->lock);
	add(t, e);
	pthread_mutex_unlock(&t->lock);
}

bool krd_track_node_end(krd_track *t, kr_pid pid)
{
	uint64_t key = mix((uint64_t)pid);
	pthread_mutex_lock(&t->lock);
	krd_tracked **at = t->nb ? &t->b[key & (t->nb - 1)] : NULL;
	krd_tracked *e = NULL;
	for (; at && *at; at = &(*at)->next)
		if ((*at)->type == NODE_MON && (*at)->local == pid) {
			e = *at;
			*at = e->next;
			t->n--;
			break;
		}
	pthread_mutex_unlock(&t->lock);
	free(e);
	return e != NULL;
}

static void fire(const krd_tracked *e, const char *name)
{
	kr_reason noconn = {.kind = KR_EXIT_NOCONNECTION};
	switch (e->type) {
	case LINK: {
		kr_exit_msg x = {.from = e->remote, .reason = noconn};
		(void)krx_remote_signal_in(e->remote, e->local, KRX_SIG_EXIT_LINK, 0, 0, &x, sizeof x);
		break;
	}
	case MON_OUT:
	case CALL_OUT: {
		kr_down_msg d = {.ref = e->ref, .pid = e->remote, .reason = noconn};
		(void)krx_remote_signal_in(e->remote, e->local,
		                           e->type == MON_OUT ? KRX_SIG_DOWN : KRX_SIG_CALL_DOWN, e->ref,
		                           0, &d, sizeof d);
		break;
	}
	case MON_IN: /* its watcher is gone: the target forgets it */
		(void)krx_remote_signal_in(e->remote, e->local, KRX_SIG_DEMONITOR, e->ref, 0, NULL, 0);
		break;
	case CALL_IN: /* its caller is gone: the reply, if any, is dropped */
		break;
	case NODE_MON:
		(void)krx_remote_deliver(0, e->local, KR_TAG_NODEDOWN, name, strlen(name) + 1, NULL);
		break;
	}
}

void krd_track_lost(krd_track *t, const char *name)
{
	pthread_mutex_lock(&t->lock);
	krd_tracked **b = t->b;
	size_t nb = t->nb;
	t->b = NULL;
	t->nb = t->n = 0;
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < nb; i++)
		for (krd_tracked *e = b[i]; e; e = e->next)
			fire(e, name);
	free_all(b, nb);
}
