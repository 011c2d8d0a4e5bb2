/*
 * bench_touch.c - what the first touch of a fresh page costs on this
 * machine, the floor under spawning waiting processes: each one's stack
 * commits a page the first time it runs.
 *
 * N pages, one word written in each, at a stride (68 KiB by default: a
 * stack slot, its 64 KiB stack and a guard page), in a fresh mapping with
 * transparent huge pages off; the time per touch is reported for each tenth
 * of the run, because on a virtual machine the cost can change as the
 * guest's memory grows. Then as many pages again, contiguous, in 2 MiB huge
 * pages (where the kernel gives them on request), for comparison.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <sys/mman.h>

#include "bench.h"

#define TENTHS 10

/* ns per touch for each tenth of n touches at stride bytes; -1 if no map. */
static int touch_run(long n, size_t stride, int advice, double per[TENTHS])
{
	size_t bytes = (size_t)n * stride;
	char *b = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b == MAP_FAILED) {
		perror("krbench touch: mmap");
		return -1;
	}
	(void)madvise(b, bytes, advice);
	for (int k = 0; k < TENTHS; k++) {
		long from = n * k / TENTHS, to = n * (k + 1) / TENTHS;
		uint64_t t0 = bench_now_ns();
		for (long i = from; i < to; i++)
			((volatile char *)b)[(size_t)(i + 1) * stride - 8] = 1;
		per[k] = (double)(bench_now_ns() - t0) / (double)(to - from);
	}
	munmap(b, bytes);
	return 0;
}

static void print_run(const char *what, long n, size_t stride, const double per[TENTHS])
{
	double sorted[TENTHS];
	for (int k = 0; k < TENTHS; k++)
		sorted[k] = per[k];
	printf("RESULT bench=touch impl=machine pages=%ld stride=%zu mode=%s ns_per_touch=%.0f "
	       "first_tenth_ns=%.0f last_tenth_ns=%.0f\n",
	       n, stride, what, bench_median(sorted, TENTHS), per[0], per[TENTHS - 1]);
	printf("touch %s: ns per touch by tenths of %ld:", what, n);
	for (int k = 0; k < TENTHS; k++)
		printf(" %.0f", per[k]);
	printf("\n");
}

int bench_touch(int argc, char **argv)
{
	static const char *const names[] = { "--pages", "--stride-kb" };
	long opt[] = { 1000000, 68 };
	if (bench_opts(argc, argv, names, opt, 2) < 0)
		return 2;
	if (opt[0] < TENTHS || opt[1] < 4) {
		fprintf(stderr, "krbench touch: --pages at least %d, --stride-kb at least 4\n", TENTHS);
		return 2;
	}
	long n = opt[0];
	size_t stride = (size_t)opt[1] * 1024;
	double per[TENTHS];

	if (touch_run(n, stride, MADV_NOHUGEPAGE, per) < 0)
		return 1;
	print_run("4k", n, stride, per);
	/* As many pages again, contiguous, in 2 MiB huge pages: one fault
	 * serves 512 touches. */
	if (touch_run(n, 4096, MADV_HUGEPAGE, per) < 0)
		return 1;
	print_run("huge", n, 4096, per);
	fflush(stdout);
	return 0;
}
