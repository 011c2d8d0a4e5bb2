/*
 * fuzz_term.c - libFuzzer target for the external term format as peers
 * send it (dist/ext.c) and for the control messages built of it
 * (dist/ctrl.c): the input is a term, or a frame as the connection's
 * reader hands it to krd_ctrl_handle.
 *
 * (a) The walk. krd_term_size runs on the raw input (after a version byte
 * 131, when there is one); a term it passes is copied so that it ends
 * exactly where a guard page begins, and libei's ei_skip_term, every
 * krd_get_* reader and krd_get_reason (ei_s_print_term under it) run over
 * it. libei.a is not instrumented, so ASan cannot see its reads: the guard
 * page is what shows that a term that passed the walk never leads libei
 * past its end, and ei_skip_term must never end the term later than the
 * walk does (krd_skip steps with the walk, the readers with libei: two
 * answers would let a reader start outside the checked bytes). The bytes
 * before the copy are poisoned, for ASan to see a read before it.
 * A frame (112, 131, ...) is also walked this way: its control message,
 * and the message after it.
 *
 * (b) The frame. krd_ctrl_handle takes the input as a frame from the peer
 * "peer@fuzz" (the same guarded copy). What it does with it goes into the
 * VM, which the fuzzer does not run: the seam is stubbed below, where vm/
 * begins (krx_remote_deliver, krx_remote_signal_in, kr_whereis ...) and
 * where conn.c spawns processes (krd_writer_spawn, krd_frame_queue); the
 * rest of dist/ that a frame reaches is the real code: ext.c, ctrl.c, the
 * peer and pid tables (peer.c) and the link and monitor notes (track.c),
 * reset after every input. The stubs check what they are given: a deliver
 * copies readable bytes and never a krill tag, and every frame ctrl.c sends back
 * is itself well formed (length, pass-through, a control message and a
 * message that pass the walk).
 *
 * The readers and the frame run on a thread whose stack is sized like a
 * krill process's (KR default 64 KiB, doubled for the sanitizers' larger
 * frames): the connection's reader is a process, and libei recurses.
 *
 *   make fuzz-term-short    about 20 s (what make test runs)
 *   make fuzz-term          FUZZ_SECONDS, 600 by default
 */
#include <ei.h>
#include <pthread.h>
#include <semaphore.h>
#include <sanitizer/asan_interface.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conn.h"
#include "ctrl.h"
#include "ext.h"
#include "node.h"
#include "peer.h"
#include "remote.h"

#define MAX_INPUT (1 << 20)          /* the largest input copied before the guard */
#define PROC_STACK (2 * 64 * 1024)   /* a process's default stack, sanitizer-sized */
#define LOCAL_WRITER ((kr_pid)1 << 26 | 77) /* the pid the stubbed writer "has" */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the VM's side, stubbed ---- */

krd_node krd_me = {.name = "me@fuzz", .host = "fuzz", .creation = 7};

bool krd_node_running(void)
{
	return true;
}

/* Every byte of [p, p+n) is read, so that ASan checks the whole range. */
static void touch(const void *p, size_t n)
{
	volatile uint8_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += ((const uint8_t *)p)[i];
	(void)sum;
}

static bool is_local(kr_pid pid)
{
	return pid >= 0 && !((uint64_t)pid >> 50);
}

/* As vm/send.c's: 0 for a dead letter (to 0), KR_EINVAL for a pid that is
 * not a local one (a peer may name anything); what it copies must be
 * readable, and a peer can never reach krill's own tags. */
int krx_remote_deliver(kr_pid from, kr_pid to, uint64_t tag, const void *data, size_t len,
                       kr_bin *bin)
{
	if (bin || (len && !data))
		abort();
	if (!to)
		return 0;
	if (!is_local(to))
		return KR_EINVAL;
	if (tag >= KR_TAG_SUP && tag != KR_TAG_TERM)
		abort();
	touch(data, len);
	return 0;
}

/* As vm/signal.c's: false for a pid that is not a local one; true or
 * false otherwise (alive or gone: both ways are taken). */
bool krx_remote_signal_in(kr_pid from, kr_pid to, unsigned kind, kr_ref ref, uint64_t tag,
                          const void *payload, size_t len)
{
	if (len && !payload)
		abort();
	if (!to || !is_local(to))
		return false;
	touch(payload, len);
	return (to & 1) != 0;
}

/* A call from a peer: as krx_remote_signal_in. */
bool krx_remote_call_in(kr_pid from, kr_pid to, kr_ref ref, uint64_t tag, const void *data,
                        size_t len)
{
	return krx_remote_signal_in(from, to, 0, ref, tag, data, len);
}

/* A spawn for a peer (spawn.c): a local pid, or a failure now and then. */
kr_pid krx_remote_spawn(kr_fn *fn, void *arg, const kr_spawn_opts *opts, kr_pid link_to,
                        kr_pid watcher, kr_ref ref)
{
	if (!fn || (watcher && !ref))
		abort();
	return (link_to & 3) == 3 ? KR_ELIMIT : (kr_pid)((uint64_t)1 << 26 | 43);
}

/* The new process's go: its argument must be readable. */
int krx_remote_queue(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	touch(data, len);
	return 0;
}

void krx_remote_flush(void)
{
}

void krd_node_event(const char *name, bool up)
{
	touch(name, strlen(name));
}

/* What only a process calling into dist/ reaches (kr_spawn_at, a sender
 * waiting past busy_limit), never a frame from a peer. */
int kr_sleep(long ms)
{
	abort();
}

/* spawn.c's kr_spawn_at and its new processes: a caller's side, which no
 * frame from a peer reaches. */
kr_pid kr_self(void)
{
	abort();
}

kr_pid kr_spawn_opt(kr_fn *fn, void *arg, const kr_spawn_opts *opts)
{
	abort();
}

int kr_recv_tag(kr_msg **out, uint64_t tag, long timeout_ms)
{
	abort();
}

int kr_recv_match(kr_msg **out, kr_match_fn *pred, void *ctx, long timeout_ms)
{
	abort();
}

void kr_msg_free(kr_msg *msg)
{
	abort();
}

int kr_crash(const char *fmt, ...)
{
	abort();
}

int kr_monitor_node(const char *node, int on)
{
	abort();
}

kr_ref krx_remote_ref_new(void)
{
	abort();
}

int krx_remote_monitor_note(kr_ref ref, kr_pid target)
{
	abort();
}

void krx_remote_monitor_drop(kr_ref ref)
{
	abort();
}

kr_pid kr_whereis(const char *name)
{
	if (strlen(name) > KR_NAME_MAX)
		abort(); /* ctrl.c looks up only a name that could be registered */
	return name[0] == 'e' ? (kr_pid)((uint64_t)1 << 26 | 42) : KR_ENOPROC;
}

int kr_is_alive(kr_pid pid)
{
	return 1;
}

int kr_exit_sig(kr_pid pid, int kind)
{
	return 0;
}

kr_pid krd_writer_spawn(krd_peer *p)
{
	return LOCAL_WRITER;
}

kr_pid krd_connector_spawn(krd_peer *p)
{
	return 0;
}

const void *kr_bin_data(const kr_bin *bin)
{
	abort(); /* nothing in a frame from a peer is a kr_bin */
}

size_t kr_bin_size(const kr_bin *bin)
{
	abort();
}

const char *kr_exit_kind_name(int kind)
{
	/* vm/exit.c's names (it brings the VM along): what krd_get_reason
	 * matches atoms against. */
	static const char *const names[] = {
		[KR_EXIT_NORMAL] = "normal", [KR_EXIT_SHUTDOWN] = "shutdown",
		[KR_EXIT_KILLED] = "killed", [KR_EXIT_NOPROC] = "noproc",
		[KR_EXIT_ERROR] = "error", [KR_EXIT_SEGFAULT] = "segfault",
		[KR_EXIT_BUS_ERROR] = "bus_error", [KR_EXIT_FPE] = "fpe",
		[KR_EXIT_ILLEGAL] = "illegal_instruction",
		[KR_EXIT_STACK_OVERFLOW] = "stack_overflow", [KR_EXIT_HEAP_LIMIT] = "heap_limit",
		[KR_EXIT_MAILBOX_LIMIT] = "mailbox_limit",
		[KR_EXIT_NOCONNECTION] = "noconnection", [KR_EXIT_KILL] = "kill",
	};
	if (kind < 0 || kind >= (int)(sizeof names / sizeof names[0]))
		return "unknown";
	return names[kind];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What ctrl.c sends back (a link answered noproc, a DOWN, an UNLINK_ID_ACK)
 * must be a frame a peer can read. */
int krd_frame_queue(kr_pid w, const void *frame, size_t len)
{
	const uint8_t *f = frame;
	size_t head = sizeof(krd_frame_msg) + 4;
	if (w != LOCAL_WRITER || len < head + 3 || be32(f + sizeof(krd_frame_msg)) != len - head)
		abort();
	f += head, len -= head;
	if (f[0] != KRD_PASS_THROUGH || f[1] != KRD_VERSION_MAGIC)
		abort();
	long cs = krd_term_size(f + 2, len - 2);
	if (cs < 0)
		abort();
	size_t rest = len - 2 - (size_t)cs;
	if (rest && (f[2 + cs] != KRD_VERSION_MAGIC ||
	             krd_term_size(f + 3 + cs, rest - 1) != (long)rest - 1))
		abort();
	return 0;
}

/* ---- the guarded copy ---- */

static uint8_t *region; /* MAX_INPUT bytes, then a page that cannot be read */

static void region_init(void)
{
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *m = mmap(NULL, MAX_INPUT + (size_t)page, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || mprotect(m + MAX_INPUT, (size_t)page, PROT_NONE) != 0)
		abort();
	region = m;
}

/* A copy of the n bytes at p that ends where the guard page begins, the
 * bytes before it poisoned; NULL when it does not fit. */
static uint8_t *guarded(const uint8_t *p, size_t n)
{
	if (n > MAX_INPUT)
		return NULL;
	ASAN_UNPOISON_MEMORY_REGION(region, MAX_INPUT);
	uint8_t *g = region + MAX_INPUT - n;
	memcpy(g, p, n);
	ASAN_POISON_MEMORY_REGION(region, MAX_INPUT - n);
	return g;
}

/* ---- (a) the walk, then libei and the readers ---- */

/* Every reader at offset i of v (v[0] the version byte, a term that passed
 * the walk ending at v + end); each must stay inside it. */
static void readers_at(const uint8_t *v, int at, int end)
{
	int i, n;
	long l;
	uint64_t u;
	kr_pid pid;
	kr_ref ref;
	kr_reason r;
	char atom[KRD_MAX_ATOM_CHARS * 4 + 1];
#define STAYS(call) \
	do { \
		i = at; \
		if ((call) && (i <= at || i > end)) \
			abort(); \
	} while (0)
	STAYS(krd_get_tuple(v, &i, &n));
	STAYS(krd_get_long(v, &i, &l));
	STAYS(krd_get_uint64(v, &i, &u));
	STAYS(krd_get_atom(v, &i, atom));
	STAYS(krd_get_pid(v, &i, &pid));
	STAYS(krd_get_ref(v, &i, &ref));
	STAYS(krd_skip(v, &i));
	STAYS(krd_get_reason(v, &i, &r));
#undef STAYS
	if (krd_get_reason(v, &(int){at}, &r) && strnlen(r.text, sizeof r.text) == sizeof r.text)
		abort(); /* the text is a C string */
}

/* The readers at the term at v + 1 and at each of its elements, when it
 * is a tuple or a list (the places ctrl.c reads from). */
static void readers(const uint8_t *v, int end)
{
	readers_at(v, 1, end);
	int i = 1, n = 0;
	if (ei_decode_tuple_header((const char *)v, &i, &n) != 0) {
		i = 1;
		if (ei_decode_list_header((const char *)v, &i, &n) != 0)
			return;
	}
	for (int k = 0; k < n && i < end; k++) {
		readers_at(v, i, end);
		if (!krd_skip(v, &i))
			abort(); /* an element of a walked term walks */
	}
}

/* The term at p (len bytes, no version byte) as (a) takes it: walked, and
 * when whole, copied before the guard with its version byte. Returns the
 * copy (v[0] 131) and its length through *vlen, or NULL. */
static const uint8_t *walked(const uint8_t *p, size_t len, size_t *vlen)
{
	long n = krd_term_size(p, len);
	if (n < 0)
		return NULL;
	if ((size_t)n > len)
		abort();
	if (n + 1 > MAX_INPUT)
		return NULL;
	static uint8_t tmp[MAX_INPUT];
	tmp[0] = KRD_VERSION_MAGIC;
	memcpy(tmp + 1, p, (size_t)n);
	*vlen = (size_t)n + 1;
	const uint8_t *v = guarded(tmp, *vlen);
	int i = 1;
	/* libei may end the term earlier than the walk (its skip of a tuple or
	 * list steps over an element it cannot decode, a FLOAT_EXT that is no
	 * number, without saying so), never later. */
	if (ei_skip_term((const char *)v, &i) == 0 && i > n + 1)
		abort();
	return v;
}

/* ---- (b) the frame, and the process-sized stack ---- */

typedef struct job {
	const uint8_t *p;
	size_t len;
	bool frame;
} job;

static void *run_job(void *arg)
{
	job *j = arg;
	if (!j->frame) {
		readers(j->p, (int)j->len);
		return NULL;
	}
	krd_peer *peer = krd_peer_find("peer@fuzz", true);
	if (!peer)
		abort();
	char why[128];
	why[0] = 0;
	if (krd_ctrl_handle(peer, j->p, j->len, why, sizeof why) < 0 && !why[0])
		abort(); /* a refusal says why */
	krd_track_lost(&peer->track, peer->name); /* the connection ends: every note fires */
	return NULL;
}

/* One thread with a process-sized stack runs every job in turn: a thread
 * per input would cost the sanitizers memory for each one made. */
static sem_t go, done;
static job *current;

static void *worker(void *arg)
{
	for (;;) {
		while (sem_wait(&go) != 0)
			;
		run_job(current);
		sem_post(&done);
	}
	return arg;
}

static void worker_init(void)
{
	pthread_attr_t a;
	pthread_t t;
	if (sem_init(&go, 0, 0) || sem_init(&done, 0, 0) || pthread_attr_init(&a) ||
	    pthread_attr_setstacksize(&a, PROC_STACK) || pthread_create(&t, &a, worker, NULL))
		abort();
	pthread_attr_destroy(&a);
}

static void on_process_stack(const uint8_t *p, size_t len, bool frame)
{
	job j = {p, len, frame};
	current = &j;
	sem_post(&go);
	while (sem_wait(&done) != 0)
		;
}

static void check_term(const uint8_t *p, size_t len)
{
	size_t vlen;
	const uint8_t *v = walked(p, len, &vlen);
	if (v)
		on_process_stack(v, vlen, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!region) {
		region_init();
		worker_init();
	}
	if (size < 1 || size > MAX_INPUT)
		return 0;
	if (data[0] == KRD_PASS_THROUGH && size >= 2 && data[1] == KRD_VERSION_MAGIC) {
		/* A frame: its control message and its message as terms (a) ... */
		long cs = krd_term_size(data + 2, size - 2);
		check_term(data + 2, size - 2);
		if (cs >= 0 && (size_t)cs + 3 < size && data[2 + cs] == KRD_VERSION_MAGIC)
			check_term(data + 3 + cs, size - 3 - (size_t)cs);
	} else {
		/* A term, with or without its version byte. */
		size_t skip = data[0] == KRD_VERSION_MAGIC;
		check_term(data + skip, size - skip);
	}
	/* ... and (b), any input as a frame. */
	on_process_stack(guarded(data, size), size, true);
	krd_peers_free();
	return 0;
}
