/*
 * epmd.c - the EPMD client: ALIVE2 (register our name and port, keep the
 * socket open for as long as the registration should last) and
 * PORT_PLEASE2 (the port of a node on some host), over non-blocking
 * sockets in a krill process, and starting `epmd -daemon` when none
 * answers.
 *
 * Every request is a 2-byte big-endian length and the request; the answers
 * are not framed. The one rule that keeps a caller from hanging: every wait
 * is bounded by the caller's deadline, and the blocking pieces (getaddrinfo,
 * posix_spawnp and waitpid) run under kr_blocking, off the schedulers.
 */
#include "epmd.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "krill.h"

extern char **environ;

#define EPMD_DEFAULT_PORT 4369
#define ALIVE2_REQ 120
#define ALIVE2_X_RESP 118
#define ALIVE2_RESP 121
#define PORT_PLEASE2_REQ 122
#define PORT2_RESP 119
#define NODE_NORMAL 77
#define NODE_HIDDEN 72
#define ALIVE_MAX 255
/* How long a freshly started epmd gets to answer, and how often we ask. */
#define EPMD_START_MS 2000
#define EPMD_RETRY_MS 50

uint16_t krd_epmd_port(void)
{
	const char *s = getenv("ERL_EPMD_PORT");
	if (!s || !*s)
		return EPMD_DEFAULT_PORT;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return EPMD_DEFAULT_PORT;
	return (uint16_t)v;
}

/* ---- time ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline for timeout_ms from now; -1 for none (KR_INFINITY). */
static int64_t deadline_of(long timeout_ms)
{
	return timeout_ms == KR_INFINITY ? -1 : now_ms() + timeout_ms;
}

/* What is left of the deadline, as a krill timeout (0 once it passed). */
static long left(int64_t deadline)
{
	if (deadline < 0)
		return KR_INFINITY;
	int64_t ms = deadline - now_ms();
	return ms > 0 ? (long)ms : 0;
}

static int bad_timeout(long timeout_ms)
{
	return timeout_ms < 0 && timeout_ms != KR_INFINITY;
}

/* ---- resolving ---- */

struct resolve_args {
	const char *host;
	uint16_t port;
	struct sockaddr_storage *ss;
	socklen_t *len;
};

/* The first IPv4 address, else the first of any kind. */
static const struct addrinfo *pick(const struct addrinfo *ai)
{
	for (const struct addrinfo *a = ai; a; a = a->ai_next)
		if (a->ai_family == AF_INET)
			return a;
	for (const struct addrinfo *a = ai; a; a = a->ai_next)
		if (a->ai_family == AF_INET6)
			return a;
	return NULL;
}

static long resolve_blocking(void *arg)
{
	struct resolve_args *ra = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	if (getaddrinfo(ra->host, NULL, &hints, &ai) != 0)
		return KR_EIO;
	const struct addrinfo *a = pick(ai);
	int rc = KR_EIO;
	if (a && a->ai_addrlen <= sizeof *ra->ss) {
		memcpy(ra->ss, a->ai_addr, a->ai_addrlen);
		*ra->len = (socklen_t)a->ai_addrlen;
		if (a->ai_family == AF_INET)
			((struct sockaddr_in *)ra->ss)->sin_port = htons(ra->port);
		else
			((struct sockaddr_in6 *)ra->ss)->sin6_port = htons(ra->port);
		rc = 0;
	}
	freeaddrinfo(ai);
	return rc;
}

int krd_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	if (!host || !*host || !ss || !len)
		return KR_EINVAL;
	struct resolve_args ra = { host, port, ss, len };
	return (int)kr_blocking(resolve_blocking, &ra);
}

/* ---- sockets ---- */

/* A socket owned by the caller, connected to addr: 0 and *fd, or an error
 * (the socket is closed then). */
static int connect_to(const struct sockaddr_storage *ss, socklen_t len, int64_t deadline, int *fd)
{
	int s = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return KR_EIO;
	int rc = kr_fd_own(s);
	if (rc != 0) {
		close(s);
		return rc;
	}
	rc = kr_connect(s, (const struct sockaddr *)ss, len, left(deadline));
	if (rc != 0) {
		kr_close(s);
		return rc;
	}
	*fd = s;
	return 0;
}

static int read_exact(int fd, uint8_t *buf, size_t n, int64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = kr_read(fd, buf + got, n - got, left(deadline));
		if (r == 0)
			return KR_EIO; /* EPMD closed before it answered in full */
		if (r < 0)
			return (int)r;
		got += (size_t)r;
	}
	return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t n, int64_t deadline)
{
	ssize_t w = kr_write(fd, buf, n, left(deadline));
	return w < 0 ? (int)w : 0;
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int alive_ok(const char *alive)
{
	size_t n = alive ? strlen(alive) : 0;
	return n > 0 && n <= ALIVE_MAX && !strchr(alive, '@');
}

/* ---- starting epmd ---- */

/* posix_spawnp `epmd -daemon` with /dev/null for its standard descriptors,
 * no blocked signals and SIGPIPE at its default, and wait for it: the
 * daemon forks and its first process exits at once. 0 (it ran), KR_ENOSYS
 * if there is no epmd on PATH, KR_EIO if it could not be started. */
static long start_epmd_blocking(void *arg)
{
	(void)arg;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	for (int i = 0; i < 3; i++)
		posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
	posix_spawnattr_init(&at);
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char *argv[] = { "epmd", "-daemon", NULL };
	pid_t pid;
	int err = posix_spawnp(&pid, "epmd", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (err != 0)
		return err == ENOENT ? KR_ENOSYS : KR_EIO;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return KR_EIO;
	/* Where posix_spawnp cannot report a failed exec (qemu-user runs
	 * glibc's vfork-like clone as a fork), its child exits with 127, as a
	 * shell does for a command it cannot find. Any other failure is no
	 * answer yet: another node may have started an epmd just before us
	 * (ours then finds the port taken), so the caller asks the port. */
	return WIFEXITED(st) && WEXITSTATUS(st) == 127 ? KR_ENOSYS : 0;
}

/* Connect to the local EPMD; if none answers, start one and ask again
 * every EPMD_RETRY_MS for up to EPMD_START_MS (and the deadline). */
static int connect_local_epmd(int64_t deadline, int *fd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(krd_epmd_port()),
		                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, &sin, sizeof sin);
	int rc = connect_to(&ss, sizeof sin, deadline, fd);
	if (rc != KR_EIO || kr_last_errno() != ECONNREFUSED)
		return rc;
	rc = (int)kr_blocking(start_epmd_blocking, NULL);
	if (rc != 0)
		return rc;
	int64_t until = now_ms() + EPMD_START_MS;
	if (deadline >= 0 && deadline < until)
		until = deadline;
	for (;;) {
		rc = connect_to(&ss, sizeof sin, deadline, fd);
		if (rc != KR_EIO || kr_last_errno() != ECONNREFUSED)
			return rc;
		if (now_ms() >= until)
			return deadline >= 0 && now_ms() >= deadline ? KR_ETIMEDOUT : KR_EIO;
		kr_sleep(EPMD_RETRY_MS);
	}
}

/* ---- ALIVE2 ---- */

/* Send ALIVE2_REQ on fd and read the answer. */
static int alive2(int fd, const char *alive, uint16_t port, int hidden, uint32_t *creation,
                  int64_t deadline)
{
	size_t nlen = strlen(alive);
	uint8_t req[2 + 13 + ALIVE_MAX], *p = req + 2;
	*p++ = ALIVE2_REQ;
	p = put16(p, port);
	*p++ = hidden ? NODE_HIDDEN : NODE_NORMAL;
	*p++ = 0; /* protocol: TCP/IPv4 */
	p = put16(p, 6); /* highest version */
	p = put16(p, 5); /* lowest version */
	p = put16(p, (uint16_t)nlen);
	memcpy(p, alive, nlen);
	p += nlen;
	p = put16(p, 0); /* no extra */
	put16(req, (uint16_t)(p - (req + 2)));
	int rc = write_all(fd, req, (size_t)(p - req), deadline);
	if (rc != 0)
		return rc;
	uint8_t resp[6];
	if ((rc = read_exact(fd, resp, 2, deadline)) != 0)
		return rc;
	if (resp[0] != ALIVE2_X_RESP && resp[0] != ALIVE2_RESP)
		return KR_EIO;
	if (resp[1] != 0)
		return KR_EEXIST;
	if (resp[0] == ALIVE2_RESP) {
		if ((rc = read_exact(fd, resp + 2, 2, deadline)) != 0)
			return rc;
		*creation = get16(resp + 2);
		return 0;
	}
	if ((rc = read_exact(fd, resp + 2, 4, deadline)) != 0)
		return rc;
	*creation = (uint32_t)get16(resp + 2) << 16 | get16(resp + 4);
	return 0;
}

int krd_epmd_register(const char *alive, uint16_t port, int hidden, int *fd, uint32_t *creation,
                      long timeout_ms)
{
	if (!alive_ok(alive) || !fd || !creation || bad_timeout(timeout_ms))
		return KR_EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	int s;
	int rc = connect_local_epmd(deadline, &s);
	if (rc != 0)
		return rc;
	rc = alive2(s, alive, port, hidden, creation, deadline);
	if (rc != 0) {
		kr_close(s);
		return rc;
	}
	*fd = s;
	return 0;
}

/* ---- PORT_PLEASE2 ---- */

static int port2(int fd, const char *alive, uint16_t *port, uint16_t *highest, int64_t deadline)
{
	size_t nlen = strlen(alive);
	uint8_t req[2 + 1 + ALIVE_MAX];
	put16(req, (uint16_t)(1 + nlen));
	req[2] = PORT_PLEASE2_REQ;
	memcpy(req + 3, alive, nlen);
	int rc = write_all(fd, req, 3 + nlen, deadline);
	if (rc != 0)
		return rc;
	/* Tag, result; then port, node type, protocol, highest, lowest (the
	 * name and extra after them are not needed). */
	uint8_t resp[10];
	if ((rc = read_exact(fd, resp, 2, deadline)) != 0)
		return rc;
	if (resp[0] != PORT2_RESP)
		return KR_EIO;
	if (resp[1] != 0)
		return KR_ENOPROC;
	if ((rc = read_exact(fd, resp + 2, 8, deadline)) != 0)
		return rc;
	*port = get16(resp + 2);
	if (highest)
		*highest = get16(resp + 6);
	return 0;
}

int krd_epmd_port_please(const char *host, const char *alive, uint16_t *port,
                         uint16_t *highest_version, long timeout_ms)
{
	if (!host || !*host || !alive_ok(alive) || !port || bad_timeout(timeout_ms))
		return KR_EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = krd_resolve(host, krd_epmd_port(), &ss, &len);
	if (rc != 0)
		return rc;
	int s;
	if ((rc = connect_to(&ss, len, deadline, &s)) != 0)
		return rc;
	rc = port2(s, alive, port, highest_version, deadline);
	kr_close(s);
	return rc;
}
