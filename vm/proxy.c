/*
 * proxy.c - a host thread's question put by a process (see proxy.h).
 *
 * The call's memory (struct krx_proxy) has two owners, the host thread and
 * the proxy process, each holding a reference; the last to let go frees
 * it. The state word is also the futex the host thread sleeps on: RUNNING
 * until the proxy's end stores DONE (with release, after rc and out), once.
 */
#include "proxy.h"

#include <string.h>

#include "futex.h"
#include "mi.h"
#include "proc.h"

enum { RUNNING, DONE };

struct krx_proxy {
	unsigned state;       /* RUNNING, DONE: the futex word */
	AO_t refs;            /* the host thread's and the process's */
	bool finished;        /* fn returned: rc and out are its */
	int rc;
	krx_proxy_fn *fn;
	krx_proxy_out out;
	_Alignas(16) unsigned char arg[]; /* the host thread's argument, copied */
};

static void unref(struct krx_proxy *px)
{
	/* Full: the last owner frees, after every access of the other's. */
	if (AO_fetch_and_sub1_full(&px->refs) != 1)
		return;
	krx_free_raw(px->out.data);
	krx_free_raw(px);
}

/* The proxy process: fn's result goes where its exit path finds it. */
static void proxy_main(void *arg)
{
	struct krx_proxy *px = arg;
	px->rc = px->fn(px->arg, &px->out);
	px->finished = true;
}

void krx_proxy_ended(struct krx_proxy *px, bool stopped)
{
	/* The proxy's own fields, written on its thread (its exit path runs
	 * there; the VM's stop joined that thread first). */
	if (!px->finished) {
		px->rc = stopped ? KR_ESTOPPED : KR_ENOPROC;
		krx_free_raw(px->out.data);
		px->out = (krx_proxy_out){ 0 };
	}
	/* Release: a host thread that loads DONE with acquire sees rc and
	 * out. The wake comes before our unref: the memory is still ours. */
	AO_int_store_release(&px->state, DONE);
	krx_futex_wake(&px->state, 1);
	unref(px);
}

/* Wait for the proxy's end until deadline_ns (0: for ever): true if it came. */
static bool wait_done(struct krx_proxy *px, uint64_t deadline_ns)
{
	for (;;) {
		/* Acquire: pairs with krx_proxy_ended's release. */
		if (AO_int_load_acquire(&px->state) == DONE)
			return true;
		int64_t left = -1;
		if (deadline_ns) {
			uint64_t now = krx_now_ns();
			if (now >= deadline_ns)
				return false;
			left = (int64_t)(deadline_ns - now);
		}
		krx_futex_wait(&px->state, RUNNING, left);
	}
}

int krx_proxy_put(krx_proxy_out *out, const void *data, size_t len)
{
	out->data = krx_alloc_raw(len ? len : 1);
	if (!out->data)
		return KR_ENOMEM;
	if (len)
		memcpy(out->data, data, len);
	out->len = len;
	return 0;
}

int krx_proxy_run(krx_proxy_fn *fn, const void *arg, size_t size, long timeout_ms,
                  krx_proxy_out *out)
{
	*out = (krx_proxy_out){ 0 };
	uint64_t deadline = 0;
	if (timeout_ms != KR_INFINITY)
		deadline = krx_now_ns() + (uint64_t)timeout_ms * 1000000u + (timeout_ms == 0);
	struct krx_proxy *px = krx_calloc_raw(1, sizeof *px + size);
	if (!px)
		return KR_ENOMEM;
	px->fn = fn;
	memcpy(px->arg, arg, size);
	AO_store(&px->refs, 2); /* relaxed: published by the spawn */
	kr_pid pid = krx_spawn_proxy(proxy_main, px);
	if (pid < 0) {
		krx_free_raw(px);
		return (int)pid;
	}
	if (!wait_done(px, deadline)) {
		unref(px); /* the proxy's end frees it, and what it made */
		return KR_ETIMEDOUT;
	}
	int rc = px->rc;
	if (rc == 0) {
		*out = px->out;
		px->out = (krx_proxy_out){ 0 };
	}
	unref(px);
	return rc;
}
