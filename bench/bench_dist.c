/*
 * bench_dist.c - distribution: a small message's round trip between two
 * nodes (krbench dist_pingpong) and one-way streaming on one connection
 * (krbench dist_stream), from a krill node to another krill node or to a
 * BEAM node.
 *
 * krbench's own VM becomes a node (name krbenchPID@127.0.0.1, a cookie of
 * its own) and starts the other node as an OS process on the same loopback:
 *   --peer krill  build/krnode (beside krbench; --krnode PATH), whose
 *                 registered `echo` sends a krill message back to its
 *                 sender and `sink` counts messages (examples/dist/krnode.c);
 *   --peer beam   erl running bench/erlang/bench_dist.erl's peer (compiled
 *                 into build/erlang, beside krbench; --beam-dir DIR), whose
 *                 `echo` and `sink` do the same for Erlang terms.
 * The peer runs under `timeout` (our --timeout and a little more) and is
 * killed when we end, however we end; a BEAM peer also halts when it loses
 * the connection to us. Each waits for the other's "ready" line.
 *
 * dist_pingpong: the benchmark process sends an 8-byte message (the round's
 * number) to echo and waits for it to come back, --rounds times after a
 * warm-up, timing each round trip (bench_ticks, into a histogram as
 * krbench pingpong does). To krill's echo the message is a krill message
 * (tag, bytes), the {Tag, Binary} term on the wire, which echo sends back
 * to its sender; a BEAM process cannot see a message's sender, so to the
 * BEAM's echo it is the term {Pid, {Tag, Binary}} (kr_send_term), and echo
 * sends {Tag, Binary} to Pid, which arrives as the krill message. The first
 * message goes to the name echo on the peer (REG_SEND); its answer names
 * echo's pid, which every later one goes to (SEND_SENDER), as an Erlang
 * program would do.
 *
 * dist_stream: the benchmark process sends --msgs messages of --size bytes
 * (krill messages: {Tag, Binary} on the wire) to sink as fast as kr_send
 * takes them, then an end message; the sink, which counts every message it
 * gets, answers the end one with its count (to the sender of a krill
 * message of tag 0xe0f on krnode, to Pid of the term {Pid, {0xe0f, _}} on
 * the BEAM), which must be --msgs. The time runs from the first send to the
 * answer: messages per second and payload megabytes (10^6) per second.
 * A warm-up stream (a tenth, at most 10,000) goes first.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "hist.h"
#include "krill.h"

extern char **environ;

enum { TAG_PING = 1, TAG_DATA = 2, TAG_END = 0xe0f };

#define PEER_READY_MS 30000 /* erl's boot, on a loaded machine */
#define ANSWER_MS 20000     /* a round or a stream's answer */

typedef struct dist_bench {
	const char *bench;    /* "dist_pingpong" or "dist_stream" */
	int beam;             /* the peer is a BEAM node */
	long rounds, warmup;  /* dist_pingpong */
	long msgs, size;      /* dist_stream */
	long timeout;         /* --timeout, for the peer's guard */
	const char *krnode, *erl, *beam_dir;
	char self_name[64], peer_name[64], cookie[64];
	pid_t peer;           /* the peer's `timeout` guard, while it runs */
	int peer_out;         /* its stdout and stderr */
	char peer_text[4096]; /* what it printed */
	size_t peer_len;
	hist *h;
	unsigned schedulers;  /* this VM's, for the RESULT line */
	uint64_t wall_ns;     /* pingpong: the timed rounds; stream: the timed stream */
	double tcp_rtt_ns;    /* pingpong: the machine's floor, measured before (bench_tcp.c) */
	char err[256];
	int rc;
} dist_bench;

static dist_bench *the_bench; /* for the alarm's handler */

static const char *peer_kind(const dist_bench *db)
{
	return db->beam ? "beam" : "krill";
}

static void fail(dist_bench *db, const char *what, int code)
{
	if (!db->err[0])
		snprintf(db->err, sizeof db->err, "%s: %s", what, code ? kr_strerror(code) : "wrong");
}

/* ---- the peer, an OS process ---- */

/* The directory krbench lives in, for its neighbours krnode and erlang/. */
static void exe_dir(char *out, size_t n)
{
	char path[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
	if (len <= 0) {
		snprintf(out, n, "build");
		return;
	}
	path[len] = 0;
	snprintf(out, n, "%s", dirname(path));
}

/* Start argv under `timeout --foreground -s KILL` (so that it stays in our
 * process group, which a guard around us may kill, and dies by itself if
 * we die without killing it), stdout and stderr into a pipe. */
static int peer_spawn(dist_bench *db, char **argv)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	int rc = posix_spawnp(&db->peer, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (rc != 0) {
		close(fds[0]);
		db->peer = 0;
		return -rc;
	}
	db->peer_out = fds[0];
	fcntl(db->peer_out, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Kill the peer (its guard kills it with SIGKILL on SIGTERM) and reap
 * the guard. Safe to call twice. */
static void peer_kill(dist_bench *db)
{
	if (db->peer > 0) {
		kill(db->peer, SIGTERM);
		waitpid(db->peer, NULL, 0);
		db->peer = 0;
	}
	if (db->peer_out > 0)
		close(db->peer_out);
	db->peer_out = -1;
}

/* From a process: read the peer's output until its "ready" line. */
static int peer_wait_ready(dist_bench *db)
{
	uint64_t end = bench_now_ns() + (uint64_t)PEER_READY_MS * 1000000;
	for (;;) {
		db->peer_text[db->peer_len] = 0;
		if (strstr(db->peer_text, "ready"))
			return 0;
		uint64_t now = bench_now_ns();
		if (now >= end || db->peer_len + 1 >= sizeof db->peer_text)
			return KR_ETIMEDOUT;
		ssize_t n = kr_read(db->peer_out, db->peer_text + db->peer_len,
				    sizeof db->peer_text - 1 - db->peer_len, (long)((end - now) / 1000000));
		if (n == 0)
			return KR_ENOPROC; /* it ended */
		if (n < 0 && n != KR_ETIMEDOUT)
			return (int)n;
		if (n > 0)
			db->peer_len += (size_t)n;
	}
}

static int peer_start(dist_bench *db)
{
	char guard[32];
	snprintf(guard, sizeof guard, "%ld", db->timeout + 30);
	char *krill[] = { "timeout", "--foreground", "-s", "KILL", guard, (char *)db->krnode,
			  "--name", db->peer_name, "--cookie", db->cookie, NULL };
	char *beam[] = { "timeout", "--foreground", "-s", "KILL", guard, (char *)db->erl,
			 "-noshell", "-name", db->peer_name, "-setcookie", db->cookie,
			 "-pa", (char *)db->beam_dir, "-s", "bench_dist", "peer",
			 "-extra", db->self_name, NULL };
	int rc = peer_spawn(db, db->beam ? beam : krill);
	if (rc < 0) {
		snprintf(db->err, sizeof db->err, "cannot start the peer: %s", strerror(-rc));
		return -1;
	}
	rc = peer_wait_ready(db);
	if (rc < 0) {
		snprintf(db->err, sizeof db->err, "the peer did not say it was ready (%s); it printed: %.160s",
			 kr_strerror(rc), db->peer_text);
		return -1;
	}
	return 0;
}

/* The alarm of --timeout: kill the peer as well, then what krbench's own
 * handler does. Only async-signal-safe calls. */
static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "\nkrbench dist: still running after --timeout: a hang?\n";
	if (the_bench && the_bench->peer > 0)
		kill(the_bench->peer, SIGTERM);
	if (write(2, msg, sizeof msg - 1) < 0)
		_exit(3);
	_exit(3);
}

/* ---- messages ---- */

/* Wait for a message with tag; it goes to *m. */
static int wait_tag(kr_msg **m, uint64_t tag)
{
	return kr_recv_tag(m, tag, ANSWER_MS);
}

/* The term {Pid, {Tag, Binary}} (len bytes of payload) with us as Pid,
 * into out: its size, or a negative error. The payload is the last
 * len bytes, for the caller to fill in. */
static long pair_term(uint8_t *out, size_t n, uint64_t tag, size_t len)
{
	if (n < 3)
		return KR_EINVAL;
	size_t at = 0;
	out[at++] = 131, out[at++] = 104, out[at++] = 2; /* version, SMALL_TUPLE_EXT 2 */
	long p = kr_term_put_pid(out + at, n - at, kr_self());
	if (p < 0 || (size_t)p > n - at)
		return p < 0 ? p : KR_ELIMIT;
	at += (size_t)p;
	if (n - at < 2 + 5 + 5 + len)
		return KR_ELIMIT;
	out[at++] = 104, out[at++] = 2;
	out[at++] = 98; /* INTEGER_EXT: the tags here are below 2^31 */
	for (int i = 3; i >= 0; i--)
		out[at++] = (uint8_t)(tag >> (8 * i));
	out[at++] = 109; /* BINARY_EXT */
	for (int i = 3; i >= 0; i--)
		out[at++] = (uint8_t)(len >> (8 * i));
	return (long)(at + len);
}

/* One message to the peer's process `name`, or to *to once known:
 * (tag, data) as a krill message, or for a BEAM peer with want_pair as
 * {Pid, {Tag, Binary}}. */
typedef struct target {
	const char *name;
	kr_pid to;     /* 0 until an answer named it */
	int pair;      /* send {Pid, {Tag, Binary}} */
	uint8_t *term; /* room for it */
	size_t room;
} target;

static int send_to(dist_bench *db, target *t, uint64_t tag, const void *data, size_t len)
{
	if (!t->pair)
		return t->to ? kr_send(t->to, tag, data, len)
			     : kr_send_named_at(db->peer_name, t->name, tag, data, len);
	long n = pair_term(t->term, t->room, tag, len);
	if (n < 0)
		return (int)n;
	memcpy(t->term + n - (long)len, data, len);
	return t->to ? kr_send_term(t->to, t->term, (size_t)n)
		     : kr_send_named_at(db->peer_name, t->name, KR_TAG_TERM, t->term, (size_t)n);
}

static int target_init(target *t, const char *name, int pair, size_t len)
{
	*t = (target){ .name = name, .pair = pair, .room = 64 + len };
	if (pair && !(t->term = kr_alloc(t->room)))
		return KR_ENOMEM;
	return 0;
}

/* ---- dist_pingpong ---- */

static int pingpong(dist_bench *db)
{
	target t;
	int rc = target_init(&t, "echo", db->beam, 8);
	if (rc < 0)
		return fail(db, "pingpong", rc), -1;
	double ns_per_tick = bench_ns_per_tick();
	uint64_t total = (uint64_t)(db->warmup + db->rounds), warm = (uint64_t)db->warmup;
	uint64_t wall0 = bench_now_ns(), last_note = wall0;
	for (uint64_t i = 0; i < total && !db->err[0]; i++) {
		kr_msg *m;
		uint64_t t0 = bench_ticks();
		rc = send_to(db, &t, TAG_PING, &i, sizeof i);
		if (rc == 0)
			rc = wait_tag(&m, TAG_PING);
		uint64_t t1 = bench_ticks();
		if (rc < 0) {
			snprintf(db->err, sizeof db->err, "round %" PRIu64 ": %s", i, kr_strerror(rc));
			break;
		}
		uint64_t back;
		if (m->len != sizeof back || (memcpy(&back, m->data, sizeof back), back != i))
			snprintf(db->err, sizeof db->err, "round %" PRIu64 " got back a wrong message", i);
		if (!t.to && m->sender)
			t.to = m->sender; /* echo's pid, for the rounds to come */
		kr_msg_free(m);
		if (i == warm)
			wall0 = bench_now_ns();
		if (i >= warm)
			hist_record(db->h, (uint64_t)((double)(t1 - t0) * ns_per_tick + 0.5));
		if ((i & 0x3ff) == 0 && bench_now_ns() - last_note > 1000000000u) {
			fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 " rounds\n", db->bench, i, total);
			last_note = bench_now_ns();
		}
	}
	db->wall_ns = bench_now_ns() - wall0;
	kr_free(t.term);
	return db->err[0] ? -1 : 0;
}

/* ---- dist_stream ---- */

/* n messages of db->size bytes to the sink, then the end message; its
 * answer must count n. */
static int stream_once(dist_bench *db, target *data, target *end, uint8_t *buf, long n)
{
	for (long i = 0; i < n; i++) {
		memcpy(buf, &i, sizeof i < (size_t)db->size ? sizeof i : (size_t)db->size);
		int rc = send_to(db, data, TAG_DATA, buf, (size_t)db->size);
		if (rc < 0) {
			snprintf(db->err, sizeof db->err, "message %ld: %s", i, kr_strerror(rc));
			return -1;
		}
	}
	uint8_t le[8] = { 0 };
	int rc = send_to(db, end, TAG_END, le, sizeof le);
	kr_msg *m;
	if (rc == 0)
		rc = wait_tag(&m, TAG_END);
	if (rc < 0) {
		snprintf(db->err, sizeof db->err, "the sink's answer: %s", kr_strerror(rc));
		return -1;
	}
	uint64_t count = 0;
	if (m->len == 8)
		for (int i = 7; i >= 0; i--)
			count = count << 8 | ((const uint8_t *)m->data)[i];
	if (!data->to && m->sender)
		data->to = end->to = m->sender; /* the sink's pid, for the messages to come */
	kr_msg_free(m);
	if (count != (uint64_t)n) {
		snprintf(db->err, sizeof db->err, "the sink counted %" PRIu64 " of %ld messages", count, n);
		return -1;
	}
	return 0;
}

static int stream(dist_bench *db)
{
	target data, end;
	uint8_t *buf = kr_alloc((size_t)db->size);
	int rc = buf ? target_init(&data, "sink", 0, 0) : KR_ENOMEM;
	if (rc == 0)
		rc = target_init(&end, "sink", db->beam, 8);
	if (rc < 0) {
		kr_free(buf);
		return fail(db, "stream", rc), -1;
	}
	memset(buf, 0x5a, (size_t)db->size);
	rc = stream_once(db, &data, &end, buf, db->warmup);
	if (rc == 0) {
		uint64_t t0 = bench_now_ns();
		rc = stream_once(db, &data, &end, buf, db->msgs);
		db->wall_ns = bench_now_ns() - t0;
	}
	kr_free(end.term);
	kr_free(buf);
	return rc;
}

/* ---- the run ---- */

static void root_fn(void *arg)
{
	dist_bench *db = arg;
	db->rc = 1;
	kr_node_config cfg = { .name = db->self_name, .cookie = db->cookie };
	int rc = kr_node_start(&cfg);
	if (rc < 0) {
		fail(db, "kr_node_start", rc);
		return;
	}
	if (peer_start(db) == 0) {
		fprintf(stderr, "%s: %s against %s (peer=%s), ", db->bench, db->self_name, db->peer_name,
			peer_kind(db));
		if (!strcmp(db->bench, "dist_pingpong")) {
			fprintf(stderr, "%ld rounds (+%ld warm-up)\n", db->rounds, db->warmup);
			rc = pingpong(db);
		} else {
			fprintf(stderr, "%ld messages of %ld bytes (+%ld warm-up)\n", db->msgs, db->size,
				db->warmup);
			rc = stream(db);
		}
		if (rc == 0)
			db->rc = 0;
	}
	peer_kill(db);
	kr_node_stop();
}

static void report(const dist_bench *db)
{
	const char *peer = peer_kind(db);
	if (!strcmp(db->bench, "dist_pingpong")) {
		const hist *h = db->h;
		printf("RESULT bench=dist_pingpong impl=krill peer=%s schedulers=%u rounds=%ld p50_ns=%" PRIu64
		       " p99_ns=%" PRIu64 " p999_ns=%" PRIu64 " max_ns=%" PRIu64
		       " mean_ns=%.1f wall_ns_per_rtt=%.1f tcp_rtt_ns=%.0f\n",
		       peer, db->schedulers, db->rounds, hist_percentile(h, 50), hist_percentile(h, 99),
		       hist_percentile(h, 99.9), hist_percentile(h, 100), hist_mean(h),
		       (double)db->wall_ns / (double)db->rounds, db->tcp_rtt_ns);
		printf("dist_pingpong (krill to %s): round trip p50 %.1f us, p99 %.1f us, mean %.1f us over %ld rounds\n",
		       peer, (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 99) / 1e3,
		       hist_mean(h) / 1e3, db->rounds);
	} else {
		double secs = (double)db->wall_ns / 1e9;
		double mps = (double)db->msgs / secs, mbps = (double)db->msgs * (double)db->size / secs / 1e6;
		printf("RESULT bench=dist_stream impl=krill peer=%s schedulers=%u size=%ld msgs=%ld "
		       "msgs_per_s=%.0f MB_per_s=%.1f secs=%.3f\n",
		       peer, db->schedulers, db->size, db->msgs, mps, mbps, secs);
		printf("dist_stream (krill to %s): %ld messages of %ld bytes in %.3f s: %.0f messages/s, %.1f MB/s\n",
		       peer, db->msgs, db->size, secs, mps, mbps);
	}
	fflush(stdout);
}

static int run(int argc, char **argv, int stream_bench)
{
	long rounds = 20000, msgs = 1000000, size = 64, timeout = 600;
	const char *peer = "krill", *krnode = NULL, *erl = "erl", *beam_dir = NULL;
	unsigned sched;
	const bench_opt opts[] = { { .name = "--rounds", .val = &rounds },
				   { .name = "--msgs", .val = &msgs },
				   { .name = "--size", .val = &size },
				   { .name = "--peer", .str = &peer },
				   { .name = "--krnode", .str = &krnode },
				   { .name = "--erl", .str = &erl },
				   { .name = "--beam-dir", .str = &beam_dir } };
	if (bench_vm_opts(argc, argv, opts, 7, &sched) < 0)
		return 2;
	for (int i = 1; i + 1 < argc; i++) /* bench_vm_opts keeps it to itself */
		if (!strcmp(argv[i], "--timeout"))
			timeout = atol(argv[i + 1]);
	if (strcmp(peer, "krill") && strcmp(peer, "beam")) {
		fprintf(stderr, "krbench %s: --peer krill or beam, not '%s'\n", argv[0], peer);
		return 2;
	}
	char dir[PATH_MAX], krnode_path[PATH_MAX + 16], beam_path[PATH_MAX + 16];
	exe_dir(dir, sizeof dir);
	snprintf(krnode_path, sizeof krnode_path, "%s/krnode", dir);
	snprintf(beam_path, sizeof beam_path, "%s/erlang", dir);
	dist_bench db = { .bench = stream_bench ? "dist_stream" : "dist_pingpong",
			  .beam = !strcmp(peer, "beam"), .rounds = rounds, .msgs = msgs, .size = size,
			  .timeout = timeout, .schedulers = bench_schedulers(sched), .krnode = krnode ? krnode : krnode_path, .erl = erl,
			  .beam_dir = beam_dir ? beam_dir : beam_path, .peer_out = -1, .h = hist_new() };
	long base = stream_bench ? msgs : rounds;
	db.warmup = base / 10 < 10000 ? base / 10 : 10000;
	if (db.warmup < 1)
		db.warmup = 1;
	if (!db.h)
		return 1;
	struct stat st;
	char probe[PATH_MAX + 32];
	snprintf(probe, sizeof probe, "%s/bench_dist.beam", db.beam_dir);
	if (db.beam ? stat(probe, &st) != 0 : access(db.krnode, X_OK) != 0) {
		fprintf(stderr, "krbench %s: %s is missing (%s)\n", db.bench, db.beam ? probe : db.krnode,
			db.beam ? "erlc -o build/erlang bench/erlang/*.erl, or scripts/bench.sh" : "make build/krnode");
		hist_free(db.h);
		return 2;
	}
	unsigned salt = (unsigned)bench_now_ns();
	snprintf(db.self_name, sizeof db.self_name, "krbench%d@127.0.0.1", (int)getpid());
	snprintf(db.peer_name, sizeof db.peer_name, "krpeer%d@127.0.0.1", (int)getpid());
	snprintf(db.cookie, sizeof db.cookie, "krbench_%d_%08x", (int)getpid(), salt);
	the_bench = &db;
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_ONSTACK };
	sigaction(SIGALRM, &sa, NULL);
	bench_ns_per_tick(); /* before the VM: ~50 ms of busy waiting */
	if (!stream_bench)
		db.tcp_rtt_ns = bench_tcp_rtt_ns(5000); /* the floor, on the machine as it is now */
	kr_config cfg = { .schedulers = sched };
	int r = kr_main(&cfg, root_fn, &db);
	peer_kill(&db); /* whatever happened in there */
	the_bench = NULL;
	if (db.err[0])
		fprintf(stderr, "krbench %s: %s\n", db.bench, db.err);
	if (!bench_vm_failed(db.bench, r) && db.rc == 0)
		report(&db);
	else if (db.rc == 0)
		db.rc = 1;
	hist_free(db.h);
	return db.rc;
}

int bench_dist_pingpong(int argc, char **argv)
{
	return run(argc, argv, 0);
}

int bench_dist_stream(int argc, char **argv)
{
	return run(argc, argv, 1);
}
