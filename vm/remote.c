/*
 * remote.c - the seam to dist/ (remote.h).
 */
#include <atomic_ops.h>

#include "remote.h"

static AO_t installed; /* const krx_remote_ops * */

void krx_remote_install(const krx_remote_ops *ops)
{
	/* Release: a sender that sees the pointer sees the table dist/ set up
	 * before installing it. */
	AO_store_release(&installed, (AO_t)ops);
}

const krx_remote_ops *krx_remote(void)
{
	/* Acquire: pairs with krx_remote_install's release. */
	return (const krx_remote_ops *)AO_load_acquire(&installed);
}

int krx_remote_send(kr_pid from, kr_pid to, unsigned kind, uint64_t tag, kr_ref ref,
                    const void *data, size_t len, kr_bin *bin)
{
	const krx_remote_ops *ops = krx_remote();
	return ops ? ops->send(from, to, kind, tag, ref, data, len, bin) : KR_EINVAL;
}

void krx_remote_vm_stopped(void)
{
	const krx_remote_ops *ops = krx_remote();
	if (!ops)
		return;
	ops->vm_stopped();
	AO_store(&installed, 0); /* the schedulers are joined: no reader is left */
}
