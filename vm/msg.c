/*
 * msg.c - message blocks and their per-scheduler cache (see msg.h). A cache
 * is touched only by its scheduler's thread: no atomics.
 */
#include "msg.h"

#include "san.h"
#if KRX_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* Blocks host threads hold (c NULL): few, and off the processes' path,
 * so one shared word. */
static AO_t host_bytes;

uint64_t krx_msg_host_bytes(void)
{
	/* Relaxed: a figure. */
	return AO_load(&host_bytes);
}

/* Count a block of size bytes taken (sign 1) or given back (-1) by the
 * owner of c, or by a host thread. */
static void count_bytes(krx_msg_cache *c, size_t size, int sign)
{
	uint64_t d = sign > 0 ? (uint64_t)size : -(uint64_t)size;
	if (c)
		krx_stat_add(&c->bytes, d);
	else
		AO_fetch_and_add(&host_bytes, (AO_t)d); /* relaxed: a figure */
}

static void free_block(krx_msg_cache *c, krx_msg *m)
{
	count_bytes(c, sizeof *m + m->hb.size, -1);
	krx_free_raw(m);
}

krx_msg *krx_msg_new_slow(krx_msg_cache *c, size_t len)
{
	size_t room = KRX_MSG_CACHING && len <= KRX_MSG_SMALL ? KRX_MSG_SMALL : len;
	krx_msg *m = krx_alloc_raw(sizeof *m + room);
	if (!m)
		return NULL;
	count_bytes(c, sizeof *m + room, 1);
	m->hb.size = room;
	m->hb.magic = 0;
	m->hb.kind = KRX_MSG_USER;
	m->pub.bin = NULL;
	m->pub.ref = 0;
	m->pub.data = m + 1;
	return m;
}

/* ASan: a held block is dead; poison all but its header, which kr_msg_free
 * reads to see that it is. */
static void poison_held(krx_msg *m, bool poison)
{
#if KRX_ASAN
	char *body = (char *)&m->next;
	size_t n = (size_t)((char *)(m + 1) + m->hb.size - body);
	if (poison)
		ASAN_POISON_MEMORY_REGION(body, n);
	else
		ASAN_UNPOISON_MEMORY_REGION(body, n);
#else
	(void)m;
	(void)poison;
#endif
}

void krx_msg_free_slow(krx_msg_cache *c, krx_msg *m)
{
	if (m->pub.bin) {
		kr_bin_unref(m->pub.bin);
		m->pub.bin = NULL;
		m->pub.data = m + 1;
	}
	if (!c || m->hb.size > KRX_MSG_HOLD_MAX) {
		free_block(c, m);
		return;
	}
	krx_msg **slot = KRX_MSG_CACHING && m->hb.size == KRX_MSG_SMALL ? &c->held : &c->held_big;
	krx_msg *prev = *slot;
	poison_held(m, true);
	*slot = m;
	if (!prev)
		return;
	poison_held(prev, false);
	if (KRX_MSG_CACHING && prev->hb.size == KRX_MSG_SMALL && c->n < KRX_MSG_CACHE)
		c->v[c->n++] = prev;
	else
		free_block(c, prev);
}

void krx_msg_free_chain(krx_msg_cache *c, krx_msg *m)
{
	while (m) {
		krx_msg *next = m->next;
		krx_msg_free(c, m);
		m = next;
	}
}

void krx_msg_cache_flush(krx_msg_cache *c)
{
	krx_msg **held[] = { &c->held, &c->held_big };
	for (int i = 0; i < 2; i++) {
		if (*held[i]) {
			poison_held(*held[i], false);
			free_block(c, *held[i]);
			*held[i] = NULL;
		}
	}
	while (c->n)
		free_block(c, c->v[--c->n]);
}

void krx_msg_free_hblk(krx_hblk *b, void *cache)
{
	krx_msg_free(cache, (krx_msg *)b);
}
