/*
 * bench.h - what krbench's subcommands share: a clock, medians, option
 * parsing and the RESULT line format scripts read.
 *
 * Every benchmark prints one machine-readable line per implementation:
 *     RESULT bench=NAME impl=IMPL key=value ...
 * and may print human-readable lines around it (never starting with RESULT).
 */
#ifndef KRBENCH_H
#define KRBENCH_H

#include <stdint.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Ticks: a cheaper clock for timing intervals of a few tens of ns, where
 * clock_gettime's own ~20 ns would be much of what is measured. It is the
 * CPU's invariant counter (x86-64 TSC, aarch64 CNTVCT_EL0), which is
 * monotonic and runs at a constant rate; bench_ns_per_tick() measures that
 * rate against CLOCK_MONOTONIC once (about 50 ms). Where the TSC is not
 * invariant, ticks are CLOCK_MONOTONIC nanoseconds.
 */
static inline uint64_t bench_ticks_raw(void)
{
#if defined(__x86_64__)
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
#elif defined(__aarch64__)
	uint64_t v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
	return bench_now_ns();
#endif
}
extern int bench_ticks_are_ns;
static inline uint64_t bench_ticks(void)
{
	return bench_ticks_are_ns ? bench_now_ns() : bench_ticks_raw();
}
/* Nanoseconds per tick (calibrated on first call); sets bench_ticks_are_ns
 * when the counter cannot be trusted. */
double bench_ns_per_tick(void);

/* The median of v[0..n) (sorts v in place). */
double bench_median(double *v, int n);

/* This process's resident memory in bytes (/proc/self/statm), or -1. */
long bench_rss_bytes(void);

/* Parse "--name VALUE" options into longs: for each of argv, if it matches
 * one of names[i], store the next argument in vals[i]. Unknown options are
 * an error (returns -1 after printing usage hints). */
int bench_opts(int argc, char **argv, const char *const *names, long *vals, int n);

/* Options of a benchmark that runs on the VM: "--name VALUE" (a positive
 * number, stored in *val), with flag set a bare "--name" that stores 1 in
 * *val, or with str set "--name TEXT" (a file name, say) stored in *str. */
typedef struct bench_opt {
	const char *name;
	long *val;
	int flag;
	const char **str;
} bench_opt;

/* Parse argv (argv[0] is the subcommand) against opts, plus the options every
 * VM benchmark takes:
 *     --schedulers N   scheduler threads, 0 = online CPUs (the default)
 *     --timeout SECS   give up with exit status 3 after SECS (default 600),
 *                      so that a hang fails a scripted run instead of stalling it
 * Stores the schedulers setting in *schedulers and arms the timeout. Returns 0,
 * or -1 after printing what was wrong. */
int bench_vm_opts(int argc, char **argv, const bench_opt *opts, int n, unsigned *schedulers);

/* How many schedulers a VM started with kr_config.schedulers = s runs. */
unsigned bench_schedulers(unsigned s);

/* After kr_main: nonzero (with a message) if the VM could not start or its
 * root process did not end normally. */
int bench_vm_failed(const char *bench, int kr_main_result);

/* --observer (bench_vm_opts sets it): bench_observer_start, from the
 * benchmark's root process before it measures, starts the observer and a
 * host thread that fetches /api/stats, /api/processes and /api/trees once
 * a second, as its page does; bench_observer_stop, after, ends both and
 * says how many requests were answered. Both do nothing without the flag
 * (bench_observer.c). */
extern int bench_observer;
void bench_observer_start(void);
void bench_observer_stop(void);
typedef int bench_fn(int argc, char **argv);
int bench_ctx(int argc, char **argv);
int bench_pingpong(int argc, char **argv);
int bench_ring(int argc, char **argv);
int bench_skynet(int argc, char **argv);
int bench_spawn(int argc, char **argv);
int bench_fanin(int argc, char **argv);
int bench_overload(int argc, char **argv);
int bench_call(int argc, char **argv);
int bench_restart(int argc, char **argv);
int bench_tree(int argc, char **argv);
int bench_cpu(int argc, char **argv);
int bench_touch(int argc, char **argv);
int bench_line(int argc, char **argv);
int bench_dist_pingpong(int argc, char **argv);
int bench_dist_stream(int argc, char **argv);
int bench_tcp(int argc, char **argv);
int bench_timers(int argc, char **argv);
int bench_host_call(int argc, char **argv);

/* A small message's round trip over loopback TCP between two threads,
 * p50 in ns over rounds (bench_tcp.c); -1 if it cannot be measured. */
double bench_tcp_rtt_ns(long rounds);

#endif
