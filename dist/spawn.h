/*
 * spawn.h - spawning across nodes (SPAWN_REQUEST, SPAWN_REPLY): the
 * functions registered with kr_spawnable, kr_spawn_at, and the two
 * control messages as they arrive.
 */
#ifndef KRD_SPAWN_H
#define KRD_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.h"

/* {29, ReqId, From, GroupLeader, {M, F, A}, OptList} + ArgList from p:
 * spawn, answer with SPAWN_REPLY, then let the new process run. false for
 * a malformed one. */
bool krd_spawn_request_in(krd_peer *p, const uint8_t *c, int i, int arity, const uint8_t *msg,
                          size_t mlen);
/* {31, ReqId, To, Flags, Result}: the answer to a kr_spawn_at of ours. */
bool krd_spawn_reply_in(krd_peer *p, const uint8_t *c, int i, int arity);

/* Forget the registered functions (the VM stops). */
void krd_spawnables_free(void);

#endif
