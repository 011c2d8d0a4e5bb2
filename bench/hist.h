/*
 * hist.h - a latency histogram with bounded relative error, in the manner of
 * HdrHistogram: log-linear buckets.
 *
 * Values below 2*HIST_SUB are counted exactly, one bucket each. Above that,
 * each power of two [2^e, 2^(e+1)) is split into HIST_SUB equal sub-buckets,
 * so a bucket is never wider than 1/HIST_SUB of the values it holds: with
 * HIST_SUB = 128 a reported percentile is within 0.4% of a recorded value
 * (bucket midpoints are reported). All of uint64_t fits in 7,424 buckets
 * (58 KiB), so nothing is ever clipped; allocate a hist with hist_new, never
 * on a process stack.
 *
 * Percentiles are read from the buckets, never from stored samples; count,
 * min, max and mean are exact. Not thread-safe: one writer, or merge later.
 */
#ifndef KRBENCH_HIST_H
#define KRBENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
/* shift runs 0..(63 - HIST_SUB_BITS), and each shift owns HIST_SUB buckets
 * above the first 2*HIST_SUB exact ones. */
#define HIST_BUCKETS ((64 - HIST_SUB_BITS) * HIST_SUB + HIST_SUB)

typedef struct hist {
	uint64_t count;
	uint64_t sum; /* ns: overflows after 584 years of recorded time */
	uint64_t min, max;
	uint64_t b[HIST_BUCKETS];
} hist;

hist *hist_new(void); /* zeroed; NULL if out of memory */
void hist_free(hist *h);
void hist_reset(hist *h);

/* The bucket of v: exact below 2*HIST_SUB; above, the top HIST_SUB_BITS+1
 * bits of v select the bucket within its power of two. */
static inline unsigned hist_index(uint64_t v)
{
	unsigned e = v ? 63u - (unsigned)__builtin_clzll(v) : 0;
	unsigned shift = e > HIST_SUB_BITS ? e - HIST_SUB_BITS : 0;
	return shift * HIST_SUB + (unsigned)(v >> shift);
}

static inline void hist_record(hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min || h->count == 1)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* The value at percentile p (0 < p <= 100): the midpoint of the bucket that
 * holds the sample of rank ceil(p% of count), clamped to [min, max]. 0 when
 * empty. */
uint64_t hist_percentile(const hist *h, double p);
double hist_mean(const hist *h);
uint64_t hist_count(const hist *h);
/* Add src's samples to dst. */
void hist_merge(hist *dst, const hist *src);
/* Write the distribution to path as text, for plotting a CDF: a comment
 * line, then one "value fraction" line per non-empty bucket, in increasing
 * order: the bucket's midpoint (clamped to [min, max], as percentiles are)
 * and the fraction of samples at or below that bucket; the last line's
 * fraction is 1. 0, or -1 with errno set if the file cannot be written. */
int hist_write_cdf(const hist *h, const char *path, const char *what);

#endif
