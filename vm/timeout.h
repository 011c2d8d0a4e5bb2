/*
 * timeout.h - the one rule for every call that takes a timeout (krill.h,
 * beside KR_INFINITY): milliseconds; KR_INFINITY waits for ever, 0 does not
 * wait, and any other negative value is KR_EINVAL, returned before the call
 * does anything else.
 */
#ifndef KRX_TIMEOUT_H
#define KRX_TIMEOUT_H

#include <stdbool.h>

#include "krill.h"

static inline bool krx_timeout_valid(long timeout_ms)
{
	return timeout_ms >= 0 || timeout_ms == KR_INFINITY;
}

#endif
