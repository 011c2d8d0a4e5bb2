/*
 * krill/dist.h - distribution: a krill VM as a node of an Erlang cluster.
 *
 * Included by krill.h; a program includes krill.h only.
 *
 * A node speaks Erlang's own distribution protocol (EPMD, the version 6
 * handshake, the external term format, ticks), so krill nodes and BEAM
 * nodes join one cluster. Once a node runs, a kr_pid may name a process on
 * another node, and kr_send works on it unchanged; a send to a node not yet
 * connected connects first, as Erlang does. docs/distribution.md tells how
 * to run a cluster and what travels how.
 *
 * Messages between nodes. A krill message (tag, bytes) travels as the
 * Erlang term {Tag, Binary}, Tag an integer; a term of that shape from
 * another node arrives as (tag, bytes). Any other term arrives with the tag
 * KR_TAG_TERM, its data the term in the external format (starting with the
 * version byte 131), as erlang:term_to_binary/1 would give it; kr_send_term
 * sends such bytes as they are.
 */
#ifndef KRILL_DIST_H
#define KRILL_DIST_H

#include "../krill.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A message holding any other term, in the external format (see above). */
#define KR_TAG_TERM (KR_TAG_RESERVED + 3)
/* kr_monitor_node and kr_monitor_nodes: data is the node's name, with its NUL. */
#define KR_TAG_NODEUP (KR_TAG_RESERVED + 4)
#define KR_TAG_NODEDOWN (KR_TAG_RESERVED + 5)

/* Error codes of this header (krill.h's are from -1 down, krill/io.h's at -20). */
enum kr_dist_error {
	KR_ENOCONN = -30,  /* the node could not be reached, or refused us */
	KR_ENODIST = -31   /* the call needs a running node (kr_node_start) */
};

/* Node settings. Zeroed fields take their defaults. */
typedef struct kr_node_config {
	const char *name;        /* "alive@host", or "alive" for alive@ this host's short
	                          * name (erl -sname); alive: letters, digits, '-', '_' */
	const char *cookie;      /* NULL: the contents of ~/.erlang.cookie, which is
	                          * created (20 random capitals, mode 0400) when missing,
	                          * as erl does */
	const char *listen_addr; /* NULL: the address name's host resolves to, so that
	                          * "k@127.0.0.1" listens on loopback only */
	unsigned port;           /* the port to listen on; 0: any free one */
	unsigned fixed_port;     /* nonzero: no EPMD at all; this node listens on
	                          * fixed_port and finds every other node there too
	                          * (OTP's -erl_epmd_port) */
	int hidden;              /* nonzero: a hidden node (erl -hidden): not in the
	                          * peers' nodes() */
	unsigned net_ticktime;   /* seconds; a peer silent this long is down; 0 = 60 */
	size_t max_frame;        /* the largest frame a peer may send (a bigger one ends
	                          * the connection); 0 = 128 MiB */
	size_t busy_limit;       /* bytes queued for one peer past which a process that
	                          * sends to it waits until they drain (the BEAM's
	                          * dist_buf_busy_limit); 0 = 1 MiB */
} kr_node_config;

/*
 * Make the running VM a distributed node: listen for peers, register with
 * EPMD (starting `epmd -daemon` when none answers, as erl does) unless
 * fixed_port is set, and answer net_kernel's questions (net_adm:ping). 0;
 * KR_EEXIST (a node runs already, or EPMD has the name), KR_EINVAL (a bad
 * name, cookie or setting), KR_EIO (listening failed: kr_last_errno),
 * KR_ENOSYS (no epmd program to start), KR_ESTOPPED (no VM). Safe from a
 * process or a host thread; returns once the node is reachable.
 */
KR_API int kr_node_start(const kr_node_config *cfg);

/* Stop being a node: every connection is closed (as if each peer went
 * down), EPMD forgets the name. 0, or KR_ENODIST. kr_vm_stop does it too.
 * Safe from a process or a host thread. */
KR_API int kr_node_stop(void);

/* This node's full name ("alive@host"), or NULL when no node runs. The
 * string stays valid until kr_node_stop. Safe from any thread. */
KR_API const char *kr_node_name(void);

/* Write up to n names of the connected nodes (visible and hidden) into
 * out (each valid until kr_node_stop); returns how many are connected (may
 * be more than n), or KR_ENODIST. Safe from any thread. */
KR_API int kr_nodes(const char **out, int n);

/*
 * Monitor the process registered as name on node, as Erlang's
 * monitor(process, {Name, Node}): one KR_TAG_DOWN message when it ends,
 * at once with KR_EXIT_NOPROC if no process has the name there, with
 * KR_EXIT_NOCONNECTION if node cannot be reached or is lost. Its
 * kr_down_msg.pid names the node (kr_pid_node), not a process. Remove it
 * with kr_demonitor. Returns the ref; KR_EINVAL (a bad name or node),
 * KR_ENODIST, KR_ENOTPROC, KR_ENOMEM. On this node's own name it monitors
 * the local process of that name.
 */
KR_API kr_ref kr_monitor_name_at(const char *node, const char *name);

/*
 * Monitor node, as erlang:monitor_node(Node, true): the caller gets one
 * KR_TAG_NODEDOWN message when the connection to node is lost, or, if it
 * is not connected and cannot be (krill tries, as Erlang does), at once.
 * Each call is one more monitor, each fires once; with on zero, one is
 * removed (none left: nothing happens). Monitoring this node itself does
 * nothing. 0, KR_EINVAL (a bad node name), KR_ENODIST, KR_ENOTPROC.
 */
KR_API int kr_monitor_node(const char *node, int on);

/* As net_kernel:monitor_nodes(true): with on nonzero, the caller gets a
 * KR_TAG_NODEUP message for each node that connects and KR_TAG_NODEDOWN
 * for each that goes, until it calls this with zero or ends. 0,
 * KR_ENODIST, KR_ENOTPROC. */
KR_API int kr_monitor_nodes(int on);

/*
 * Remote spawn. A C function registered by name may be spawned from other
 * nodes: kr_spawn_at from a krill node, or erlang:spawn(KrillNode, krill,
 * Name, [Binary]) (spawn_link, spawn_monitor, spawn_opt with link and
 * monitor too) from a BEAM. It runs as fn(arg, len) in a new process, arg
 * the spawner's bytes (a binary's; another term's in the external format),
 * valid for the process's life. A name nobody registered spawns a process
 * that ends at once with an error, as Erlang's undef does.
 */
typedef void kr_remote_fn(const void *arg, size_t len);

/* Register fn under name (1 to KR_NAME_MAX bytes). 0, KR_EEXIST (name
 * taken), KR_EINVAL, KR_ENOMEM. Safe from any thread, node running or not. */
KR_API int kr_spawnable(const char *name, kr_remote_fn *fn);

/*
 * Spawn name's function on node with len bytes at arg, over Erlang's
 * SPAWN_REQUEST: as erlang:spawn_opt(Node, krill, Name, [Binary], Opts).
 * "module:function" names an Erlang function instead, for a BEAM node
 * (spawn_opt(Node, module, function, [Binary], Opts)). Of opts, link and
 * monitor apply (the link is made before the process runs; the monitor's
 * ref is stored in *opts->monitor); the rest are the remote node's
 * business. On this node's own name it spawns here. Returns the new pid;
 * KR_ENOCONN (the node cannot be reached, or went down meanwhile),
 * KR_EINVAL (a bad node or name; the remote node said badarg), KR_ELIMIT
 * (it said system_limit), KR_ENOSYS (it does not spawn: notsup),
 * KR_ENODIST, KR_ENOTPROC (a host thread). Waits for the remote node's
 * answer (a connection is made first if need be).
 */
KR_API kr_pid kr_spawn_at(const char *node, const char *name, const void *arg, size_t len,
                          const kr_spawn_opts *opts);

/* The name of the node pid lives on (this node's for a local pid), or NULL
 * for a pid that names no node krill has heard of. */
KR_API const char *kr_pid_node(kr_pid pid);

/* Send (tag, data, len) to the process registered as name on node (Erlang's
 * {Name, Node} ! Msg): as kr_send, connecting first if need be; name not
 * registered there is not an error (a dead letter). With tag KR_TAG_TERM,
 * data is a term in the external format, sent as it is (kr_send_term). On
 * this node's own name it is kr_send_named. KR_EINVAL (a bad name, node or
 * tag, a term that is not one), KR_ENODIST, kr_send's errors. */
KR_API int kr_send_named_at(const char *node, const char *name, uint64_t tag, const void *data,
                            size_t len);

/* Send a term in the external format (len bytes at term, from the version
 * byte 131 on) to pid, local or remote; a local receiver gets it as a
 * KR_TAG_TERM message. KR_EINVAL if the bytes are not one whole term;
 * kr_send's errors. */
KR_API int kr_send_term(kr_pid to, const void *term, size_t len);

/*
 * Pids inside terms. A program reads and writes terms with libei (Debian's
 * erlang-dev, the reference codec of the format); these two convert the
 * pid terms in them from and to kr_pids, which only krill can do.
 */
/* The pid term at p (len bytes there, no version byte: NEW_PID_EXT or
 * PID_EXT) as a kr_pid in *pid (0 for a pid of this node's earlier
 * incarnation, which no process has). Returns the bytes it took, or
 * KR_EINVAL (not a whole pid term), KR_ENOMEM/KR_ELIMIT (the table of
 * remote pids is full). */
KR_API long kr_term_get_pid(const void *p, size_t len, kr_pid *pid);
/* Write pid as a NEW_PID_EXT term into out (n bytes of room): returns the
 * bytes it takes (written only when that is at most n), or KR_EINVAL for
 * a pid that names no node (a local pid needs a running node). */
KR_API long kr_term_put_pid(void *out, size_t n, kr_pid pid);

#ifdef __cplusplus
}
#endif

#endif
