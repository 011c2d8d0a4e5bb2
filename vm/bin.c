/*
 * bin.c - binaries: immutable byte strings shared by reference count, so a
 * large payload travels to many processes without a copy (as the BEAM does
 * for binaries over 64 bytes). A binary is not on any process heap; each
 * message that carries one holds a reference, dropped when the message is
 * freed or its receiver exits.
 */
#include <string.h>

#include <atomic_ops.h>

#include "krill.h"
#include "mi.h"

struct kr_bin {
	AO_t refs;
	size_t len;
	_Alignas(16) unsigned char data[];
};

KR_API kr_bin *kr_bin_new(const void *data, size_t len)
{
	if (len && !data)
		return NULL;
	kr_bin *b = krx_alloc_raw(sizeof *b + len);
	if (!b)
		return NULL;
	AO_store(&b->refs, 1);
	b->len = len;
	if (len)
		memcpy(b->data, data, len);
	return b;
}

KR_API kr_bin *kr_bin_ref(kr_bin *b)
{
	/* Relaxed: taking a reference needs an existing one, which already
	 * orders the contents for us. */
	if (b)
		AO_fetch_and_add1(&b->refs);
	return b;
}

KR_API void kr_bin_unref(kr_bin *b)
{
	/* Full: the last dropper must see every other holder's reads done
	 * before it frees (release by all, acquire by the last). */
	if (b && AO_fetch_and_sub1_full(&b->refs) == 1)
		krx_free_raw(b);
}

KR_API const void *kr_bin_data(const kr_bin *b)
{
	return b ? b->data : NULL;
}

KR_API size_t kr_bin_size(const kr_bin *b)
{
	return b ? b->len : 0;
}
