/*
 * epmd.h - the client of EPMD, the Erlang port mapper daemon: registering
 * our node's name and port (ALIVE2), and asking another host's EPMD for the
 * port of a node there (PORT_PLEASE2). erts/doc/src/erl_dist_protocol.xml
 * has the messages. Every call here runs in a krill process on
 * non-blocking sockets; what blocks (getaddrinfo, starting epmd) runs
 * under kr_blocking.
 */
#ifndef KRD_EPMD_H
#define KRD_EPMD_H

#include <stdint.h>
#include <sys/socket.h>

/* EPMD's port: $ERL_EPMD_PORT if set and valid (1..65535), else 4369. */
uint16_t krd_epmd_port(void);

/*
 * Register `alive` (the part of the node name before '@') listening on
 * `port` at the local EPMD (127.0.0.1), node type 77 (normal) or 72
 * (hidden), protocol 0 (TCP/IPv4), highest version 6, lowest 5, no extra.
 * On success *fd is the registration socket, owned by the calling process
 * (the registration lasts while it stays open; kr_close, or the process's
 * end, unregisters) and *creation the 32-bit creation from ALIVE2_X_RESP
 * (or the 16-bit one of an old EPMD's ALIVE2_RESP). If nothing answers on
 * EPMD's port, it starts `epmd -daemon` (found on PATH) once and retries for
 * up to 2 s, as every OTP node does. All of it within timeout_ms
 * (KR_INFINITY: no limit, other than the 2 s for a new epmd to answer).
 * Returns 0, KR_EEXIST (EPMD refused: the name is taken), KR_EIO (no EPMD
 * and none could be started to answer, or I/O failed: kr_last_errno),
 * KR_ETIMEDOUT, KR_ENOSYS (no epmd binary on PATH), KR_EINVAL (alive empty,
 * over 255 bytes, or with '@' or NUL in it; fd or creation NULL; a bad
 * timeout), KR_ENOTPROC from a host thread.
 */
int krd_epmd_register(const char *alive, uint16_t port, int hidden, int *fd, uint32_t *creation,
                      long timeout_ms);

/*
 * PORT_PLEASE2_REQ for `alive` at the EPMD of `host` (a name or an address,
 * IPv4 or IPv6; resolved as krd_resolve does). 0, with *port and, if
 * highest_version is not NULL, *highest_version from PORT2_RESP;
 * KR_ENOPROC when EPMD does not know the name; KR_EIO (the host does not
 * resolve, no EPMD there, the connection refused or cut short:
 * kr_last_errno), KR_ETIMEDOUT, KR_EINVAL (a bad alive or host, port NULL,
 * a bad timeout), KR_ENOTPROC.
 */
int krd_epmd_port_please(const char *host, const char *alive, uint16_t *port,
                         uint16_t *highest_version, long timeout_ms);

/*
 * Resolve host to one address with port set: 0 and *ss, *len; KR_EIO (it
 * does not resolve), KR_EINVAL (host NULL or empty, ss or len NULL). An IPv4
 * address is preferred when the host has both kinds, since the BEAM's
 * default distribution (inet_tcp) listens on IPv4 only. getaddrinfo runs
 * under kr_blocking, so a process may call it (a host thread too).
 */
int krd_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

#endif
