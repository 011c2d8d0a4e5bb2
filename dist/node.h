/*
 * node.h - this node: its name, cookie, creation and settings, written
 * once by kr_node_start before the node is published as running, and
 * read freely after that (node.c).
 */
#ifndef KRD_NODE_H
#define KRD_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krill.h"
#include "peer.h"

/* Distribution flags (erts/emulator/beam/dist.h). */
#define KRD_F_PUBLISHED 0x1ull
#define KRD_F_EXTENDED_REFERENCES 0x4ull
#define KRD_F_DIST_MONITOR 0x8ull
#define KRD_F_FUN_TAGS 0x10ull
#define KRD_F_DIST_MONITOR_NAME 0x20ull
#define KRD_F_NEW_FUN_TAGS 0x80ull
#define KRD_F_EXTENDED_PIDS_PORTS 0x100ull
#define KRD_F_EXPORT_PTR_TAG 0x200ull
#define KRD_F_BIT_BINARIES 0x400ull
#define KRD_F_NEW_FLOATS 0x800ull
#define KRD_F_UNICODE_IO 0x1000ull
#define KRD_F_SMALL_ATOM_TAGS 0x4000ull
#define KRD_F_UTF8_ATOMS 0x10000ull
#define KRD_F_MAP_TAG 0x20000ull
#define KRD_F_BIG_CREATION 0x40000ull
#define KRD_F_SEND_SENDER 0x80000ull
#define KRD_F_BIG_SEQTRACE_LABELS 0x100000ull
#define KRD_F_EXIT_PAYLOAD 0x400000ull
#define KRD_F_HANDSHAKE_23 0x1000000ull
#define KRD_F_UNLINK_ID 0x2000000ull
#define KRD_F_MANDATORY_25_DIGEST 0x4000000ull
#define KRD_F_SPAWN (1ull << 32)
#define KRD_F_V4_NC (1ull << 34)
#define KRD_F_ALIAS (1ull << 35)

/* What OTP 25 requires of a peer (dist_util.erl), and SEND_SENDER, which
 * krill's sends use. Declined: the atom cache and fragments (so peers send
 * plain pass-through frames), NAME_ME. */
#define KRD_FLAGS_REQUIRED                                                                     \
	(KRD_F_EXTENDED_REFERENCES | KRD_F_FUN_TAGS | KRD_F_NEW_FUN_TAGS |                       \
	 KRD_F_EXTENDED_PIDS_PORTS | KRD_F_EXPORT_PTR_TAG | KRD_F_BIT_BINARIES | KRD_F_NEW_FLOATS | \
	 KRD_F_UTF8_ATOMS | KRD_F_MAP_TAG | KRD_F_BIG_CREATION | KRD_F_HANDSHAKE_23 |             \
	 KRD_F_SEND_SENDER)
/* What krill advertises: OTP 26's set, so that no OTP release's newly
 * mandatory flag shuts krill out (PUBLISHED added for a visible node). */
#define KRD_FLAGS_OURS                                                                       \
	(KRD_FLAGS_REQUIRED | KRD_F_DIST_MONITOR | KRD_F_DIST_MONITOR_NAME | KRD_F_UNICODE_IO |   \
	 KRD_F_SMALL_ATOM_TAGS | KRD_F_BIG_SEQTRACE_LABELS | KRD_F_EXIT_PAYLOAD | KRD_F_UNLINK_ID | \
	 KRD_F_MANDATORY_25_DIGEST | KRD_F_SPAWN | KRD_F_V4_NC | KRD_F_ALIAS)

/* The stack of dist/'s own processes, whatever the VM's default: a
 * connection reads terms with libei, whose printer recurses (ext.c
 * bounds the depth it lets it go for this size). */
#define KRD_STACK ((size_t)64 << 10)

typedef struct krd_node {
	char name[KRD_NODE_NAME_MAX + 1]; /* alive@host */
	char host[KRD_NODE_NAME_MAX + 1];
	char cookie[256];
	uint32_t creation;
	uint64_t flags;       /* what we advertise */
	unsigned tick_ms;     /* net_ticktime in milliseconds */
	size_t max_frame;
	size_t busy_limit;    /* bytes queued for one peer past which senders wait */
	unsigned fixed_port;  /* 0: EPMD */
	int hidden;
	unsigned port;        /* the port we listen on */
	kr_pid acceptor;      /* listens; holds the EPMD registration */
	kr_pid net_kernel;    /* answers net_kernel's calls */
} krd_node;

/* This node; meaningful while krd_node_running(). */
extern krd_node krd_me;
/* A node runs: krd_me is set. */
bool krd_node_running(void);
/* A peer came up or went down: tell kr_monitor_nodes' subscribers. */
void krd_node_event(const char *name, bool up);

#endif
