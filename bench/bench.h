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

/* The median of v[0..n) (sorts v in place). */
double bench_median(double *v, int n);

/* Parse "--name VALUE" options into longs: for each of argv, if it matches
 * one of names[i], store the next argument in vals[i]. Unknown options are
 * an error (returns -1 after printing usage hints). */
int bench_opts(int argc, char **argv, const char *const *names, long *vals, int n);

typedef int bench_fn(int argc, char **argv);
int bench_ctx(int argc, char **argv);

#endif
