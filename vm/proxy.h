/*
 * proxy.h - a host thread's question put by a process: for the calls that
 * must wait for a process's answer (kr_info_links, the kr_sup_* requests,
 * kr_sup_tree) but are safe from any thread.
 *
 * A host thread has no mailbox to take an answer in, so the call spawns a
 * short-lived process (the proxy) that asks as any process would, copies
 * the answer into memory the call owns, and ends; the host thread waits
 * on a futex for that end. Whatever ends the proxy ends the call exactly
 * once: its function's return, a kill, or the VM's stop, which discards
 * it (proc.c calls krx_proxy_ended from its exit path and from
 * krx_procs_free). A host thread that gives up (its timeout) leaves the
 * call's memory to the proxy's end.
 */
#ifndef KRX_PROXY_H
#define KRX_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "krill.h"

/* What a proxy's function leaves for the host thread: raw memory
 * (krx_alloc_raw), stored here as soon as it is made, so that it is freed
 * if no one takes it. */
typedef struct krx_proxy_out {
	void *data;
	size_t len;
} krx_proxy_out;

/* Run in the proxy process: arg is the call's copy of the host thread's
 * argument. 0 or a KR_E... code. */
typedef int krx_proxy_fn(const void *arg, krx_proxy_out *out);

/* For a krx_proxy_fn: leave a copy of len bytes at data (len may be 0) in
 * *out. 0 or KR_ENOMEM. */
int krx_proxy_put(krx_proxy_out *out, const void *data, size_t len);

/*
 * From a host thread: run fn on a copy of arg (size bytes) in a new
 * process and wait up to timeout_ms (the rule at KR_INFINITY; the caller
 * has checked it) for it to end. fn's result and, on 0, *out (the caller
 * frees out->data with krx_free_raw). KR_ETIMEDOUT; KR_ESTOPPED (the VM
 * stopped meanwhile, or was not running); KR_ENOPROC (the proxy was
 * killed before fn returned); kr_spawn's errors; KR_ENOMEM.
 */
int krx_proxy_run(krx_proxy_fn *fn, const void *arg, size_t size, long timeout_ms,
                  krx_proxy_out *out);

struct krx_proxy;
/* The proxy process ended (its exit path), or was discarded at the VM's
 * stop (stopped): tell its host thread. */
void krx_proxy_ended(struct krx_proxy *px, bool stopped);

#endif
