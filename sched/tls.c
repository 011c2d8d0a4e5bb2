/*
 * tls.c - the thread-local block and its offset from the thread pointer
 * (see tls.h for why krill reaches it this way).
 */
#include "tls.h"

#include <stdint.h>

static __thread struct krx_tls krx_tls_block __attribute__((tls_model("initial-exec")));

/* Set before main() by the constructor below; never changes. krill's own
 * code reads it through a hidden alias: one load, not two through the GOT. */
KR_API long kr__tls_offset;
extern long krx_tls_offset __attribute__((alias("kr__tls_offset"), visibility("hidden")));

__attribute__((constructor)) static void krx_tls_init(void)
{
	/* While the offset is still 0, krill.h's reader yields the thread
	 * pointer itself. */
	char *tp = (char *)kr__reductions_left();
	kr__tls_offset = (long)((char *)&krx_tls_block - tp);
}
