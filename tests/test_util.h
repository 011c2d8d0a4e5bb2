/*
 * test_util.h - what the test files share.
 *
 * KR_TEST_SCALE divides the sizes of the heavy tests: the aarch64 suite runs
 * under qemu-user, an order of magnitude slower, with -DKR_TEST_SCALE=10.
 */
#ifndef KR_TEST_UTIL_H
#define KR_TEST_UTIL_H

#ifndef KR_TEST_SCALE
#define KR_TEST_SCALE 1
#endif

/* TSan gives every fiber (coroutine) a thread slot and allows 8,128 of them
 * at once: tests that keep more coroutines alive cap them under TSan. */
#include "san.h"
#if KRX_TSAN
#define KR_TEST_MAX_LIVE_CTX 4000
#else
#define KR_TEST_MAX_LIVE_CTX 100000000
#endif

#define KR_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

#endif
