/*
 * track.h - the links and monitors that cross one peer's connection.
 *
 * vm/ keeps a process's links and monitors as pids and refs, remote ones
 * too; what vm/ cannot know is when a whole node is lost. So every link
 * and monitor between a local process and a peer's is also noted here, as
 * its signals pass (both ways), and forgotten as they end; when the peer
 * goes down, each one still noted fires: a link as an exit signal
 * noconnection, a monitor of ours as a DOWN noconnection (a call's: the
 * call ends with KR_ENOCONN), a monitor of theirs on one of ours is
 * dropped (its watcher is gone), and so is a call of theirs; a node
 * monitor sends its KR_TAG_NODEDOWN.
 *
 * A peer's monitor reference is made into a kr_ref for vm/ (its watcher
 * sets hold kr_refs): bit 62 and a hash of the reference's bytes, so the
 * same reference always gives the same kr_ref, and a DEMONITOR_P finds its
 * monitor without a second table. (Two different references of one peer
 * giving one kr_ref, a 1-in-2^62 chance per pair, would make their DOWNs
 * ambiguous; nothing else.)
 */
#ifndef KRD_TRACK_H
#define KRD_TRACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krill.h"

#define KRD_EREF_MAX 300 /* bytes of a peer's reference term we keep */
#define KRD_REMOTE_REF_BIT ((kr_ref)1 << 62)

typedef struct krd_tracked krd_tracked;

typedef struct krd_track {
	pthread_mutex_t lock;
	krd_tracked **b; /* chained, by key */
	size_t nb, n;
} krd_track;

/* A monitor of a peer's process on one of ours, as noted. */
typedef struct krd_mon_in {
	kr_pid watcher;          /* the peer's */
	kr_pid target;           /* ours */
	char name[KR_NAME_MAX + 1]; /* what it monitored by, if a name; "" */
	uint16_t eref_len;
	uint8_t eref[KRD_EREF_MAX]; /* its reference, as the peer encoded it */
} krd_mon_in;

void krd_track_init(krd_track *t);
void krd_track_free(krd_track *t);

/* Links (local, remote). */
void krd_track_link(krd_track *t, kr_pid local, kr_pid remote);
void krd_track_unlink(krd_track *t, kr_pid local, kr_pid remote);

/* Monitors of ours on a peer's process, by our ref; `call` for the one a
 * kr_call to that process makes (its DOWN is the call's); name for one by
 * registered name (kr_monitor_name_at; target is then the peer's anchor,
 * krd_peer_anchor), else NULL. */
void krd_track_mon_out(krd_track *t, kr_ref ref, kr_pid watcher, kr_pid target, bool call,
                       const char *name);
/* Forget it; true (and *target, *call, the name or "" into name if not
 * NULL: KR_NAME_MAX + 1 bytes) if it was noted. */
bool krd_track_mon_out_end(krd_track *t, kr_ref ref, kr_pid *target, bool *call, char *name);

/* The kr_ref a peer's reference (its term's bytes) stands for. */
kr_ref krd_remote_ref(const uint8_t *eref, size_t len);
/* Note a monitor of the peer's; false when memory is short. */
bool krd_track_mon_in(krd_track *t, kr_ref kref, const krd_mon_in *m);
/* Forget it, copying it out; false if it was not noted. */
bool krd_track_mon_in_end(krd_track *t, kr_ref kref, krd_mon_in *out);

/* Calls from a peer's process to one of ours, waiting for the reply, by
 * the kr_ref its reply tag stands for (eref: the tag's bytes; watcher the
 * caller, target the server). */
bool krd_track_call_in(krd_track *t, kr_ref kref, const krd_mon_in *m);
bool krd_track_call_in_end(krd_track *t, kr_ref kref, krd_mon_in *out);

/* Node monitors (kr_monitor_node) on this peer: one more for pid, or one
 * less (false when pid had none). */
void krd_track_node(krd_track *t, kr_pid pid);
bool krd_track_node_end(krd_track *t, kr_pid pid);

/* The peer (name) is down: fire and forget everything noted (module
 * comment). */
void krd_track_lost(krd_track *t, const char *name);

#endif
