/*
 * str.h - a bounded string copy, for the names and reason texts a process
 * carries: snprintf("%s") did the same at ten times the cost, once for
 * every spawn with a name and every exit.
 */
#ifndef KRX_STR_H
#define KRX_STR_H

#include <stddef.h>
#include <string.h>

/* Copy src (NULL: "") into dst of size bytes (size > 0), cut to fit and
 * always terminated. */
static inline void krx_str_copy(char *dst, size_t size, const char *src)
{
	size_t n = src ? strnlen(src, size - 1) : 0;
	memcpy(dst, src ? src : "", n);
	dst[n] = 0;
}

#endif
