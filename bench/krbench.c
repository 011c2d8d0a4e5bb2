/*
 * krbench - krill's benchmarks, one subcommand each:
 *
 *     krbench ctx [--switches N] [--runs R]
 *     krbench pingpong [--rounds N] [--cross] [--hibernate] [--cdf FILE]
 *     krbench ring [--procs N] [--rounds R]
 *     krbench skynet
 *     krbench spawn [--procs N] [--short | --hibernate]
 *     krbench fanin [--senders K] [--msgs M]
 *     krbench call [--rounds N] [--cross] [--server] [--cdf FILE]
 *     krbench restart [--restarts N]
 *     krbench tree [--sups N] [--workers M]
 *     krbench cpu [--jobs N] [--work W] [--reps R] [--check-from T] [--at-start]
 *     krbench touch [--pages N] [--stride-kb K]
 *     krbench line
 *     krbench dist_pingpong [--peer krill|beam] [--rounds N]
 *     krbench dist_stream [--peer krill|beam] [--msgs M] [--size S]
 *     krbench tcp [--rounds N]
 *     krbench timers [--timers N]
 *     krbench host_call [--threads N] [--ms MS] [--runs R]
 *
 * The VM benchmarks also take --schedulers N (0 = online CPUs) and
 * --timeout SECS (see bench_vm_opts); ring and fanin take --observer (the
 * observer runs, its page polled once a second: bench_observer.c).
 *
 * Each prints RESULT lines (see bench.h) that scripts collect.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "krill.h"

static const struct {
	const char *name;
	bench_fn *fn;
	const char *usage;
} benches[] = {
	{ "ctx", bench_ctx, "[--switches N] [--runs R]  context switch: krill against swapcontext" },
	{ "pingpong", bench_pingpong,
	  "[--rounds N] [--cross] [--hibernate] [--cdf FILE]  message round trip between two processes "
	  "(--hibernate: the answering one hibernates between messages)" },
	{ "ring", bench_ring, "[--procs N] [--rounds R]  a token passed round a ring of processes" },
	{ "skynet", bench_skynet, "  a 10-ary tree of 1,111,111 processes summing their indices" },
	{ "spawn", bench_spawn,
	  "[--procs N] [--short | --hibernate]  spawn rate and memory per waiting (or hibernating) process" },
	{ "fanin", bench_fanin, "[--senders K] [--msgs M]  K senders flooding one receiver" },
	{ "overload", bench_overload,
	  "[--senders K] [--msgs M] [--work W] [--limit L [--drop]]  fast senders, a slow receiver: "
	  "its peak queue and the senders' rate" },
	{ "call", bench_call,
	  "[--rounds N] [--cross] [--server] [--cdf FILE]  request and reply: kr_call, kr_reply "
	  "(--server: kr_server_call to a kr_server)" },
	{ "restart", bench_restart, "[--restarts N]  a supervisor restarting a crashing worker" },
	{ "tree", bench_tree, "[--sups N] [--workers M]  build and shut down a supervision tree" },
	{ "cpu", bench_cpu,
	  "[--jobs N] [--work W] [--reps R] [--check-from T] [--at-start]  supervised CPU-bound jobs: "
	  "1 scheduler against all, and against a plain loop" },
	{ "touch", bench_touch,
	  "[--pages N] [--stride-kb K]  the machine's cost of a first touch of a page" },
	{ "line", bench_line, "  the machine's cost of a cache line's round trip between two CPUs" },
	{ "dist_pingpong", bench_dist_pingpong,
	  "[--peer krill|beam] [--rounds N]  round trip of a message to another node (build/krnode or erl)" },
	{ "dist_stream", bench_dist_stream,
	  "[--peer krill|beam] [--msgs M] [--size S]  one-way messages to another node: throughput" },
	{ "tcp", bench_tcp,
	  "[--rounds N]  the machine's loopback TCP round trip between two blocking threads (under dist_pingpong)" },
	{ "timers", bench_timers,
	  "[--timers N]  N timers pending: memory, starts, cancels of half, the other half firing" },
	{ "host_call", bench_host_call,
	  "[--threads N] [--ms MS] [--runs R]  host threads calling a process: kr_call against a pipe per thread" },
};

#define VM_OPTS "(VM benchmarks also take --schedulers N, 0 = online CPUs, and --timeout SECS;\n" \
                " ring and fanin take --observer: the observer runs, its page polled once a second)"

int bench_ticks_are_ns;

/* Is the TSC invariant (constant rate, running in every C-state)? */
static int tsc_invariant(void)
{
#if defined(__x86_64__)
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0));
	if (a < 0x80000007u)
		return 0;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000007u), "c"(0));
	return (d >> 8) & 1;
#elif defined(__aarch64__)
	return 1; /* the generic timer's virtual count is constant-rate by definition */
#else
	return 0;
#endif
}

double bench_ns_per_tick(void)
{
	static double ns_per_tick;
	if (ns_per_tick > 0)
		return ns_per_tick;
	if (!tsc_invariant()) {
		bench_ticks_are_ns = 1;
		return ns_per_tick = 1.0;
	}
	/* Against CLOCK_MONOTONIC over ~50 ms: the error of the two reads at
	 * each end is well under 0.1%. */
	uint64_t n0 = bench_now_ns(), t0 = bench_ticks_raw(), n1, t1;
	do {
		n1 = bench_now_ns();
		t1 = bench_ticks_raw();
	} while (n1 - n0 < 50000000u);
	if (t1 <= t0) {
		bench_ticks_are_ns = 1;
		return ns_per_tick = 1.0;
	}
	return ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

long bench_rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	int n = fscanf(f, "%ld %ld", &pages, &resident);
	fclose(f);
	return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench_opts(int argc, char **argv, const char *const *names, long *vals, int n)
{
	for (int i = 1; i < argc; i++) {
		int j = 0;
		while (j < n && strcmp(argv[i], names[j]) != 0)
			j++;
		if (j == n || i + 1 >= argc) {
			fprintf(stderr, "krbench %s: unknown option or missing value: %s\n", argv[0], argv[i]);
			return -1;
		}
		char *end;
		vals[j] = strtol(argv[++i], &end, 10);
		if (*end || vals[j] <= 0) {
			fprintf(stderr, "krbench %s: %s wants a positive number\n", argv[0], names[j]);
			return -1;
		}
	}
	return 0;
}

static char timeout_msg[128];

static void on_timeout(int sig)
{
	(void)sig;
	/* Only async-signal-safe calls here: write and _exit. */
	if (write(2, timeout_msg, strlen(timeout_msg)) < 0)
		_exit(3);
	_exit(3);
}

static int parse_long(const char *bench, const char *name, const char *s, long min, long *out)
{
	char *end;
	*out = strtol(s, &end, 10);
	if (*s && !*end && *out >= min)
		return 0;
	fprintf(stderr, "krbench %s: %s wants a number >= %ld, not '%s'\n", bench, name, min, s);
	return -1;
}

int bench_vm_opts(int argc, char **argv, const bench_opt *opts, int n, unsigned *schedulers)
{
	long sched = 0, timeout = 600;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int j = 0;
		while (j < n && strcmp(a, opts[j].name) != 0)
			j++;
		if (j < n && opts[j].flag) {
			*opts[j].val = 1;
			continue;
		}
		if (j == n && !strcmp(a, "--observer")) {
			bench_observer = 1;
			continue;
		}
		if (i + 1 >= argc || (j == n && strcmp(a, "--schedulers") && strcmp(a, "--timeout"))) {
			fprintf(stderr, "krbench %s: unknown option or missing value: %s\n", argv[0], a);
			return -1;
		}
		const char *v = argv[++i];
		if (j < n && opts[j].str) {
			*opts[j].str = v;
			continue;
		}
		int r = j < n                        ? parse_long(argv[0], a, v, 1, opts[j].val)
			: !strcmp(a, "--schedulers") ? parse_long(argv[0], a, v, 0, &sched)
						     : parse_long(argv[0], a, v, 1, &timeout);
		if (r < 0)
			return -1;
	}
	if (sched > 4096) {
		fprintf(stderr, "krbench %s: --schedulers %ld is too many\n", argv[0], sched);
		return -1;
	}
	*schedulers = (unsigned)sched;
	snprintf(timeout_msg, sizeof timeout_msg, "\nkrbench %s: still running after %ld s (--timeout): a hang?\n",
		 argv[0], timeout);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_timeout;
	sa.sa_flags = SA_ONSTACK; /* a scheduler thread may take it on a process stack */
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)timeout);
	return 0;
}

unsigned bench_schedulers(unsigned s)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return s ? s : n > 0 ? (unsigned)n : 1;
}

int bench_vm_failed(const char *bench, int r)
{
	if (r < 0)
		fprintf(stderr, "krbench %s: cannot start the VM: %s\n", bench, kr_strerror(r));
	else if (r != 0)
		fprintf(stderr, "krbench %s: the root process exited with status %d\n", bench, r);
	return r != 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: krbench BENCHMARK [options]\n");
	for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
		fprintf(f, "  %-13s %s\n", benches[i].name, benches[i].usage);
	fprintf(f, "%s\n", VM_OPTS);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
		if (!strcmp(argv[1], benches[i].name))
			return benches[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "krbench: no benchmark named '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
