/*
 * san.h - which sanitizer this file is being built for.
 *
 * gcc says __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__; clang says
 * __has_feature(...). Code asks KRX_ASAN and KRX_TSAN instead of either.
 */
#ifndef KRX_SAN_H
#define KRX_SAN_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KRX_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define KRX_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(KRX_ASAN)
#define KRX_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(KRX_TSAN)
#define KRX_TSAN 1
#endif

#endif
