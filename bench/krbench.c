/*
 * krbench - krill's benchmarks, one subcommand each:
 *
 *     krbench ctx [--switches N] [--runs R]
 *
 * Each prints RESULT lines (see bench.h) that scripts collect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const struct {
	const char *name;
	bench_fn *fn;
	const char *usage;
} benches[] = {
	{ "ctx", bench_ctx, "[--switches N] [--runs R]  context switch: krill against swapcontext" },
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
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

static void usage(FILE *f)
{
	fprintf(f, "usage: krbench BENCHMARK [options]\n");
	for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
		fprintf(f, "  %-10s %s\n", benches[i].name, benches[i].usage);
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
