/*
 * io.h - descriptors in processes (io.c): what the rest of vm/ calls. The
 * public calls (kr_read, kr_accept, kr_fd_own ...) are in include/krill/io.h.
 */
#ifndef KRX_IO_H
#define KRX_IO_H

#include "mailbox.h"
#include "poll.h"
#include "proc.h"

/* p's exit path, once its mailbox is closed: close the descriptors it owns. */
void krx_io_exited(krx_proc *p, kr_pid pid);
/* VM stop, for a process that never ended: the same, without waking anyone
 * (every task is discarded already). */
void krx_io_stopped(krx_proc *p);
/* A KRX_SIG_FD signal (kr_fd_give), taken in by p: it owns the descriptor. */
void krx_io_adopt(krx_proc *p, krx_msg *m);
/* ... left in p's mailbox at its end: the descriptor is closed. */
void krx_io_orphan(krx_proc *p, krx_msg *m);
/* ... left in the mailbox of a process discarded at VM stop (a
 * krx_mailbox_close late callback; ctx is the process). */
void krx_io_late_stop(krx_msg *m, void *ctx);

#endif
