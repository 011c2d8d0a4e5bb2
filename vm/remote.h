/*
 * remote.h - the one seam where vm/ learns that a pid can be another
 * node's.
 *
 * A pid whose node bits (proc.h) are nonzero names a process on another
 * node; dist/ gives those bits their meaning. vm/ knows nothing of
 * sockets, terms or nodes: where a call meets a remote pid, it hands the
 * call to the operations dist/ installed here when its node started. With
 * no node running, a remote pid is malformed (KR_EINVAL), as before
 * distribution existed.
 */
#ifndef KRX_REMOTE_H
#define KRX_REMOTE_H

#include <stdbool.h>

#include "proc.h"

typedef struct krx_remote_ops {
	/* A message of kind (KRX_MSG_USER, KRX_MSG_CALL) from `from` (0: a host
	 * thread) to the remote pid `to`, with a copy of len bytes at data or
	 * a reference to bin. 0 sent (or dropped as a dead letter: the peer's
	 * incarnation is gone), or a negative KR_E... code. */
	int (*send)(kr_pid from, kr_pid to, unsigned kind, uint64_t tag, kr_ref ref,
	            const void *data, size_t len, kr_bin *bin);
	/* A signal (mailbox.h's KRX_SIG_ kinds: link, unlink, exit, monitor,
	 * demonitor, down, a call's reply or down) from the local process
	 * `from` (0: a host thread) to the remote pid `to`, with ref, tag and
	 * payload as krx_signal_send's. Never refused: a peer that cannot be
	 * reached answers later, as Erlang's does (noconnection). */
	void (*signal)(kr_pid from, kr_pid to, unsigned kind, kr_ref ref, uint64_t tag,
	               const void *payload, size_t len);
	/* Whether len bytes at data are one whole term in the external format
	 * (from the version byte on): what a KR_TAG_TERM message carries. */
	bool (*term_ok)(const void *data, size_t len);
	/* The VM is stopping (its schedulers are joined): free everything. */
	void (*vm_stopped)(void);
} krx_remote_ops;

/* Install ops (dist/, at its first node start; they stay until the VM
 * stops). */
void krx_remote_install(const krx_remote_ops *ops);
/* The installed operations, or NULL. */
const krx_remote_ops *krx_remote(void);

/* A pid of another node: positive with node bits. */
static inline bool krx_pid_remote(kr_pid pid)
{
	return pid > 0 && KRX_PID_NODE(pid) != 0;
}

/* A pid that kr_link, kr_monitor, kr_exit_sig ... take: a well-formed
 * local pid, or a remote one while dist/'s operations are installed. */
static inline bool krx_pid_ok(kr_pid pid)
{
	return krx_pid_valid(pid) || (krx_pid_remote(pid) && krx_remote());
}

/* The tag and data of a kr_call or kr_reply to a remote pid may be a term
 * (KR_TAG_TERM, checked whole) as well as a program's tag below tag_end. */
static inline bool krx_remote_tag_ok(kr_pid to, uint64_t tag, uint64_t tag_end, const void *data,
                                     size_t len)
{
	const krx_remote_ops *ops;
	if (tag < tag_end)
		return true;
	return tag == KR_TAG_TERM && krx_pid_remote(to) && (ops = krx_remote()) &&
	       ops->term_ok(data, len);
}

/* kr_send and friends on a remote pid: the installed send, or KR_EINVAL
 * when no node runs. */
int krx_remote_send(kr_pid from, kr_pid to, unsigned kind, uint64_t tag, kr_ref ref,
                    const void *data, size_t len, kr_bin *bin);

/* At VM stop, after the schedulers are joined: dist/'s vm_stopped, then
 * forget the operations. */
void krx_remote_vm_stopped(void);

/* What dist/ calls in vm/. */

/* Deliver a message that came from another node, from the remote pid
 * `from`, to the local process `to`, as a user message with tag (any tag:
 * KR_TAG_TERM too) and a copy of len bytes at data or a reference to bin.
 * From a process (the connection's reader). 0 (also when `to` is gone, or
 * is 0, a pid of this node's earlier incarnation: a dead letter), KR_EINVAL
 * (not a local pid), KR_ELIMIT, KR_ENOMEM. */
int krx_remote_deliver(kr_pid from, kr_pid to, uint64_t tag, const void *data, size_t len,
                       kr_bin *bin);

/* A signal from the remote pid `from` to the local process `to` (a link,
 * an exit, a monitor, a call's reply ... as krx_signal_send takes them).
 * true when it was delivered; false when `to` is gone (or memory is
 * short): the caller answers for it (noproc). */
bool krx_remote_signal_in(kr_pid from, kr_pid to, unsigned kind, kr_ref ref, uint64_t tag,
                          const void *payload, size_t len);

/* A kr_call request from the remote pid `from` (gen_server's '$gen_call')
 * to the local process `to`, with ref standing for the caller's tag: the
 * server's kr_reply comes back through the remote signal op as a
 * KRX_SIG_REPLY with that ref. true when delivered. */
bool krx_remote_call_in(kr_pid from, kr_pid to, kr_ref ref, uint64_t tag, const void *data,
                        size_t len);

/* A process spawned for a peer's SPAWN_REQUEST: kr_spawn_opt's, and
 * before anyone can see it, linked to the remote pid link_to (0: none)
 * and monitored by the remote pid watcher with ref (0: none), so that it
 * cannot end unnoticed in between. */
kr_pid krx_remote_spawn(kr_fn *fn, void *arg, const kr_spawn_opts *opts, kr_pid link_to,
                        kr_pid watcher, kr_ref ref);

/* For kr_spawn_at's monitor option, in the calling process: a fresh
 * reference, noted as a monitor of target (0 while the pid is not known
 * yet: its DOWN still counts), or set to monitor target, or dropped. */
kr_ref krx_remote_ref_new(void);
int krx_remote_monitor_note(kr_ref ref, kr_pid target);
void krx_remote_monitor_drop(kr_ref ref);

/* kr_send with any tag below KR_TAG_RESERVED's own (krill's reserved
 * tags included): dist/'s processes talk to each other with tags no
 * program can send them by mistake. */
int krx_remote_queue(kr_pid to, uint64_t tag, const void *data, size_t len);

/* Deliver what the caller's scheduler holds back in its outbox now. Order
 * is kept per pair of processes only (as in Erlang): a message held for one
 * process can be overtaken by a later one to another, and by anything that
 * other one then does. dist/ calls this where it needs more: a spawn reply
 * queued to the writer must be there before the process it names runs and
 * sends its first signal through the same writer. */
void krx_remote_flush(void);

#endif
