/*
 * peer.h - the nodes this node knows of, and what gives a remote pid its
 * meaning.
 *
 * A peer is a node name with at most one connection at a time. Its state
 * moves DOWN -> PENDING (a connection is being made: ours, theirs, or
 * both at once) -> UP -> DOWN, under one lock, by the processes of
 * conn.c; the peer's writer (its outgoing queue, a process) exists from
 * PENDING on, so that a send never waits for a connection: it queues.
 *
 * A remote kr_pid is slot << 50 | serial << 26 | id, where the slot (1 to
 * 8,191) stands for one incarnation of one peer (its name and creation):
 * a pid of a peer that restarted names a new slot, and messages to the old
 * one are dropped, as Erlang drops them. A pid whose id or serial does not
 * fit (a serial of 2^23 or more) is kept in a table and named by its index
 * there, with bit 49 set. Slots and table entries live until the VM stops.
 */
#ifndef KRD_PEER_H
#define KRD_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include <atomic_ops.h>

#include "handshake.h"
#include "krill.h"
#include "track.h"



enum krd_peer_state { KRD_DOWN, KRD_PENDING, KRD_UP };

typedef struct krd_peer {
	char name[KRD_NODE_NAME_MAX + 1];
	/* The rest under the table's lock (peer.c). */
	int state;
	kr_pid writer;    /* PENDING, UP: the outgoing queue */
	kr_pid connector; /* PENDING: our own attempt, while it runs */
	kr_pid reader;    /* the connection that is (or is being) admitted */
	kr_pid asked_alive; /* UP: the accepted connection told "alive", which may replace it */
	uint32_t creation; /* UP: the peer's */
	uint64_t flags;    /* UP: the peer's */
	krd_track track;   /* links and monitors across its connection */
	AO_t queued;       /* bytes of frames queued to its writer and not yet taken:
	                    * relaxed, a gauge for backpressure (ctrl.c) */
} krd_peer;

/* The peer of this name, made (DOWN) if create; NULL if unknown (or out
 * of memory). Never this node's own name. */
krd_peer *krd_peer_find(const char *name, bool create);
/* The peer a remote pid's slot names, and that slot's creation. */
krd_peer *krd_peer_of(kr_pid pid, uint32_t *creation);

/* The writer to queue a frame to, connecting first when the peer is
 * DOWN (a connector process is started). 0 when no process could be
 * spawned. A writer found dead (killed from outside) is replaced. */
kr_pid krd_peer_writer(krd_peer *p);
/* Whether the peer has a live writer (the peer is PENDING or UP). */
bool krd_peer_writer_alive(krd_peer *p);
/* The peer's creation when UP, 0 otherwise. */
uint32_t krd_peer_creation(krd_peer *p);

/* A connection process (self) that a peer named itself to asks to be let
 * in; the answer is the handshake's status (simultaneous attempts settled
 * by comparing names, as net_kernel does). */
krd_hs_status krd_peer_admit(krd_peer *p, kr_pid self);
/* Our connector (self) was refused with nok: the other side's attempt
 * wins; the writer stays, for the connection that comes. */
void krd_peer_connector_lost(krd_peer *p, kr_pid self);
/* The handshake of self succeeded: the peer is UP over it. Returns the
 * writer to hand the socket to, or 0 if self lost its claim meanwhile. */
kr_pid krd_peer_up(krd_peer *p, kr_pid self, uint32_t creation, uint64_t flags);
/* Connection process self ends (its handshake failed, or the connection
 * is lost). Returns the writer to stop when it held the peer (the peer is
 * DOWN then, and its links and monitors have fired), else 0. */
kr_pid krd_peer_gone(krd_peer *p, kr_pid self);
/* A connector (self) starting: true when it is the peer's attempt (the
 * peer is PENDING with no connection under way), false when it has no
 * work (another attempt, or theirs, got there first). */
bool krd_peer_connecting(krd_peer *p, kr_pid self);
/* Connector self is still p's pending attempt (nothing else admitted). */
bool krd_peer_still_pending(krd_peer *p, kr_pid self);
/* Writer w waited for a connection long enough: true when it may end (the
 * peer is DOWN now if w was its writer), false when a connection came up
 * meanwhile and w is needed. */
bool krd_peer_writer_gone(krd_peer *p, kr_pid w);
/* Every peer DOWN (kr_node_stop, after ending the processes). */
void krd_peers_reset(void);

/* Names of the peers that are UP (valid until the VM stops): at most n
 * into out; returns how many are UP. */
int krd_peers_up(const char **out, int n);
/* Every connection process of every peer (for kr_node_stop): at most n. */
int krd_peers_procs(kr_pid *out, int n);

/* A pid that stands for the peer itself rather than a process (its slot
 * with creation 0, id 0, serial 0): the target vm/ notes for a monitor by
 * registered name, so that signals about it reach the peer. */
kr_pid krd_peer_anchor(krd_peer *p);

/* A pid's parts as a peer would see them. */
typedef struct krd_pid_parts {
	const char *node;
	uint32_t id, serial, creation;
} krd_pid_parts;
/* Split a local or remote pid; false for one that names no node. */
bool krd_pid_split(kr_pid pid, krd_pid_parts *out);
/* The kr_pid of a pid from the wire: local for this node's name and
 * creation, 0 for this node's name with another creation (an earlier
 * incarnation: no one lives there), remote otherwise; KR_ENOMEM or
 * KR_ELIMIT when the tables are full. */
kr_pid krd_pid_join(const char *node, uint32_t id, uint32_t serial, uint32_t creation);

/* Free every table (the VM stops). */
void krd_peers_free(void);

#endif
