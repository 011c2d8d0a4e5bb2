/*
 * msg.c - message blocks and their per-scheduler cache (see msg.h). A cache
 * is touched only by its scheduler's thread: no atomics.
 */
#include "msg.h"

krx_msg *krx_msg_new_slow(krx_msg_cache *c, size_t len)
{
	(void)c;
	size_t room = KRX_MSG_CACHING && len <= KRX_MSG_SMALL ? KRX_MSG_SMALL : len;
	krx_msg *m = krx_alloc_raw(sizeof *m + room);
	if (!m)
		return NULL;
	m->hb.size = room;
	m->hb.magic = 0;
	m->hb.kind = KRX_MSG_USER;
	m->pub.bin = NULL;
	m->pub.ref = 0;
	m->pub.data = m + 1;
	return m;
}

void krx_msg_free_slow(krx_msg_cache *c, krx_msg *m)
{
	if (m->pub.bin) {
		kr_bin_unref(m->pub.bin);
		m->pub.bin = NULL;
		if (KRX_MSG_CACHING && c && m->hb.size == KRX_MSG_SMALL && c->n < KRX_MSG_CACHE) {
			m->pub.data = m + 1;
			c->v[c->n++] = m;
			return;
		}
	}
	krx_free_raw(m);
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
	while (c->n)
		krx_free_raw(c->v[--c->n]);
}
