/*
 * krill.h - the one public header of krill, an Erlang-style process VM for C.
 *
 * Everything a host program may call is declared here, with the `kr_` prefix
 * for functions and types and `KR_` for macros and constants. Calls that can
 * fail return 0 (or a non-negative value) on success and a negative KR_E...
 * code on failure; kr_strerror() names the code. No call aborts on bad input
 * from its caller.
 */
#ifndef KRILL_H
#define KRILL_H

#ifdef __cplusplus
extern "C" {
#endif

#define KR_VERSION_MAJOR 0
#define KR_VERSION_MINOR 1
#define KR_VERSION_PATCH 0

#if defined(__GNUC__)
#define KR_API __attribute__((visibility("default")))
#else
#define KR_API
#endif

/* Error codes: every failing call returns one of these (all negative). */
enum kr_error {
	KR_OK = 0,
	KR_EINVAL = -1,    /* an argument is out of range or malformed */
	KR_ENOMEM = -2,    /* memory or address space is exhausted */
	KR_ENOPROC = -3,   /* no such process (never existed, or has exited) */
	KR_ETIMEDOUT = -4, /* a receive, call or wait timed out */
	KR_ENOTPROC = -5,  /* the call needs a krill process, and the caller is a host thread */
	KR_ESTOPPED = -6,  /* the VM is not running */
	KR_ELIMIT = -7,    /* a configured limit (processes, message size) was reached */
	KR_EEXIST = -8,    /* the name or object already exists */
	KR_ENOSYS = -9     /* not supported on this system */
};

/* A short, constant English description of a KR_E... code (or "unknown error").
 * Safe from any thread. */
KR_API const char *kr_strerror(int err);

/* The library's version as "MAJOR.MINOR.PATCH". Safe from any thread. */
KR_API const char *kr_version(void);

#ifdef __cplusplus
}
#endif

#endif
